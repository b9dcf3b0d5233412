/* body.c: storing a request body.
 *
 * Owns: the body's storage (memory, a temporary file, or the streaming FIFO), its byte count,
 * whether it ended and how it failed. Must not include Python.h (it runs on the loop without
 * the GIL), nor block beyond a write to a local temporary file.
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include "body.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void aw_body_init(aw_body_t *b, size_t spool_threshold)
{
    *b = (aw_body_t){.spool_fd = -1, .spool_threshold = spool_threshold};
}

static int make_spool(void)
{
    const char *dir = getenv("TMPDIR");
    int fd;
    if (!dir || !*dir)
        dir = "/tmp";
#ifdef O_TMPFILE
    if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
        return fd;
#endif
    char path[4096];
    snprintf(path, sizeof(path), "%s/aiowsgi-body-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Room for len more bytes in a growing buffer. Returns 0 or -ENOMEM. */
static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *nb = realloc(*buf, n);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = n;
    return 0;
}

/* The head is complete: storage for the body to come. Returns 0 or -errno. */
int aw_body_begin(aw_body_t *b, const aw_request_t *r, int streaming)
{
    b->streaming = streaming;
    b->chunked = r->chunked;
    b->ended = !r->has_body;
    if (streaming || !r->has_body || r->chunked)
        return 0;
    if (r->content_length > b->spool_threshold) {
        b->spool_fd = make_spool();
        return b->spool_fd < 0 ? -errno : 0;
    }
    return grow(&b->mem, &b->mem_cap, (size_t)r->content_length);
}

/* A chunked body grew past the spool threshold: move it to a temporary file. */
static int spool_mem(aw_body_t *b)
{
    if ((b->spool_fd = make_spool()) < 0)
        return -errno;
    int r = write_all(b->spool_fd, b->mem, b->mem_len);
    free(b->mem);
    b->mem = NULL;
    b->mem_len = b->mem_cap = 0;
    return r;
}

static int buffered_store(aw_body_t *b, const char *data, size_t len)
{
    if (b->spool_fd < 0 && b->mem_len + len > b->spool_threshold && spool_mem(b) < 0)
        return -errno;
    if (b->spool_fd >= 0)
        return write_all(b->spool_fd, data, len);
    if (grow(&b->mem, &b->mem_cap, b->mem_len + len) < 0)
        return -ENOMEM;
    memcpy(b->mem + b->mem_len, data, len);
    b->mem_len += len;
    return 0;
}

static int stream_store(aw_body_t *b, const char *data, size_t len)
{
    if (b->fifo_head > 0 && b->fifo_head + b->fifo_len + len > b->fifo_cap) {
        memmove(b->fifo, b->fifo + b->fifo_head, b->fifo_len); /* compact first */
        b->fifo_head = 0;
    }
    if (grow(&b->fifo, &b->fifo_cap, b->fifo_head + b->fifo_len + len) < 0)
        return -ENOMEM;
    memcpy(b->fifo + b->fifo_head + b->fifo_len, data, len);
    b->fifo_len += len;
    return 0;
}

/* The parser's body callback (parser.c checks max_body_size first). Returns 0, or 500. */
int aw_body_store(void *body, const char *data, size_t len)
{
    aw_body_t *b = body;
    if ((b->streaming ? stream_store(b, data, len) : buffered_store(b, data, len)) < 0)
        return 500;
    b->received += len;
    return 0;
}

/* Every byte of the body has been stored. */
void aw_body_end(aw_body_t *b)
{
    b->ended = 1;
}

/* Streaming: the body cannot be completed. */
void aw_body_fail(aw_body_t *b, aw_body_error_t error)
{
    if (!b->ended && !b->error)
        b->error = error;
}

int aw_body_streaming(const aw_body_t *b)
{
    return b->streaming;
}

int aw_body_chunked(const aw_body_t *b)
{
    return b->chunked;
}

/* Buffered in a temporary file (rather than in memory). */
int aw_body_spooled(const aw_body_t *b)
{
    return b->spool_fd >= 0;
}

/* Every byte of the body has been read from the client. */
int aw_body_complete(const aw_body_t *b)
{
    return b->ended;
}

aw_body_error_t aw_body_error(const aw_body_t *b)
{
    return b->error;
}

/* Streaming, and room to read ahead of the app. */
int aw_body_wants_more(const aw_body_t *b)
{
    return b->streaming && !b->ended && !b->error && b->fifo_len < AW_STREAM_HIGH;
}

/* Streaming: an app waiting on the sentinel can make progress. */
int aw_body_ready(const aw_body_t *b)
{
    return b->fifo_len > 0 || b->ended || b->error;
}

size_t aw_body_buffered(const aw_body_t *b)
{
    return b->fifo_len;
}

unsigned long long aw_body_received(const aw_body_t *b)
{
    return b->received;
}

/* Streaming: the bytes read and not yet taken (*data points at them). */
size_t aw_body_peek(const aw_body_t *b, const char **data)
{
    *data = b->fifo ? b->fifo + b->fifo_head : "";
    return b->fifo_len;
}

/* Streaming: the app took the first n buffered bytes. */
void aw_body_consume(aw_body_t *b, size_t n)
{
    b->fifo_head += n;
    b->fifo_len -= n;
    if (b->fifo_len == 0)
        b->fifo_head = 0;
}

/* Buffered and complete: the spooled file is read from its start. Returns 0 or -errno. */
int aw_body_rewind(aw_body_t *b)
{
    return b->spool_fd >= 0 && lseek(b->spool_fd, 0, SEEK_SET) < 0 ? -errno : 0;
}

/* Hand over the in-memory body (the caller frees it); NULL when there is none. */
char *aw_body_release_mem(aw_body_t *b, size_t *len)
{
    char *mem = b->mem;
    *len = b->mem_len;
    b->mem = NULL;
    b->mem_len = b->mem_cap = 0;
    return mem;
}

/* Hand over the spooled body's descriptor (the caller closes it); -1 when there is none. */
int aw_body_release_spool(aw_body_t *b)
{
    int fd = b->spool_fd;
    b->spool_fd = -1;
    return fd;
}

/* The request is over: free the storage. */
void aw_body_reset(aw_body_t *b)
{
    free(b->mem);
    free(b->fifo);
    if (b->spool_fd >= 0)
        close(b->spool_fd);
    aw_body_init(b, b->spool_threshold);
}
