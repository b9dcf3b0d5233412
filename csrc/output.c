/* output.c: the send queue and the writes to the client socket.
 *
 * Owns: the queue's buffer (from the connection's pool), the references it holds, the file
 * position of a sendfile response, and the socket's writability as last seen. Must not know
 * HTTP: what is queued is already formatted (response.c) and when to flush is conn.c's call.
 */
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A file this small follows its head in the same segment (MSG_MORE holds the head back until
 * sendfile adds the file): one packet instead of two. Not for larger files, which fill many
 * segments anyway: measured on loopback, holding the head back there made the server's CPU per
 * 1 MB response 15-25% higher (the client's, three times lower: nginx with tcp_nopush does the
 * same). 64 KiB: the largest segment the kernel hands a device (GSO). */
#define AW_CORK_MAX (64 * 1024)

void aw_out_init(aw_out_t *out, aw_pool_t *pool, aw_release_fn release, void *ctx)
{
    *out = (aw_out_t){.pool = pool, .release = release, .release_ctx = ctx, .file_fd = -1};
}

static void release(aw_out_t *out, aw_seg_t *sg)
{
    if (sg->ref) {
        out->release(out->release_ctx, sg->ref);
        sg->ref = NULL;
    }
}

static int reserve(aw_out_t *out, size_t extra)
{
    if (!out->buf) {
        if (!(out->buf = aw_pool_get(out->pool)))
            return -ENOMEM;
        out->cap = AW_BUF_SIZE;
    }
    if (out->len + extra <= out->cap)
        return 0;
    size_t cap = out->cap;
    while (cap < out->len + extra)
        cap *= 2;
    char *nb = realloc(out->buf, cap);
    if (!nb)
        return -ENOMEM;
    out->buf = nb;
    out->cap = cap;
    return 0;
}

/* Take a buffer from the pool now, on the pool's thread, for whoever queues next (an app thread
 * then only grows it, with realloc). Returns 0 or -ENOMEM. */
int aw_out_prepare(aw_out_t *out)
{
    return reserve(out, 0);
}

/* The last queued piece, if it is copied bytes ending at the end of the buffer (so more
 * copied bytes can extend it). */
static aw_seg_t *extendable(aw_out_t *out)
{
    aw_seg_t *last = out->nsegs > out->head ? &out->segs[out->nsegs - 1] : NULL;
    return last && !last->ref && last->off + last->len == out->len ? last : NULL;
}

/* Room for len bytes at the end of the buffer, to be filled and then queued with
 * aw_out_commit; NULL when out of memory or pieces. */
char *aw_out_reserve(aw_out_t *out, size_t len)
{
    if (reserve(out, len) < 0)
        return NULL;
    if (!extendable(out) && out->nsegs == AW_MAX_SEGS)
        return NULL;
    return out->buf + out->len;
}

void aw_out_commit(aw_out_t *out, size_t len)
{
    aw_seg_t *last = extendable(out);
    if (last)
        last->len += len;
    else
        out->segs[out->nsegs++] = (aw_seg_t){.ref = NULL, .off = out->len, .len = len};
    out->len += len;
    out->queued += len;
}

/* Queue a copy of data. Returns 0 or -errno. */
int aw_out_copy(aw_out_t *out, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    char *p = aw_out_reserve(out, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, data, len);
    aw_out_commit(out, len);
    return 0;
}

/* Queue data without copying it; ref (a reference the caller gives the queue) keeps it alive
 * until it is sent or dropped, then goes to the release callback. Returns 0, or -errno (then
 * the caller keeps ref). */
int aw_out_ref(aw_out_t *out, void *ref, const char *data, size_t len)
{
    if (len == 0 || out->nsegs == AW_MAX_SEGS)
        return len == 0 ? 0 : -ENOBUFS;
    out->segs[out->nsegs++] = (aw_seg_t){.ref = ref, .ptr = data, .len = len};
    out->queued += len;
    return 0;
}

int aw_out_segments_left(const aw_out_t *out)
{
    return AW_MAX_SEGS - out->nsegs;
}

/* Send len bytes of fd from off once what is queued now has gone (the caller keeps fd open
 * until then). */
void aw_out_file(aw_out_t *out, int fd, long long off, long long len)
{
    out->file_fd = fd;
    out->file_off = off;
    out->file_left = len;
}

/* The same, but the queue owns fd: it is closed once sent, or when the queue is cleared. */
void aw_out_file_owned(aw_out_t *out, int fd, long long off, long long len)
{
    aw_out_file(out, fd, off, len);
    out->file_owned = 1;
}

/* The file is out, or will never be. */
static void file_done(aw_out_t *out)
{
    if (out->file_owned && out->file_fd >= 0)
        close(out->file_fd);
    out->file_fd = -1;
    out->file_owned = 0;
    out->file_left = 0;
}

/* Drop the pieces that sent bytes covered. */
static void consumed(aw_out_t *out, size_t sent)
{
    out->queued -= sent;
    out->sent += sent;
    while (sent > 0) {
        aw_seg_t *sg = &out->segs[out->head];
        if (sent >= sg->len) {
            sent -= sg->len;
            release(out, sg);
            out->head++;
        } else {
            sg->len -= sent;
            if (sg->ref)
                sg->ptr += sent;
            else
                sg->off += sent;
            sent = 0;
        }
    }
}

static int send_queue(aw_out_t *out, int sock)
{
    while (out->head < out->nsegs) {
        struct iovec iov[AW_MAX_SEGS];
        int n = 0;
        for (int i = out->head; i < out->nsegs; i++, n++) {
            aw_seg_t *sg = &out->segs[i];
            iov[n] = (struct iovec){.iov_base = (void *)(sg->ref ? sg->ptr : out->buf + sg->off),
                                    .iov_len = sg->len};
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        int more = out->file_left > 0 && out->file_left <= AW_CORK_MAX ? MSG_MORE : 0;
        ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | more);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
        }
        consumed(out, (size_t)sent);
    }
    out->nsegs = out->head = 0;
    out->len = 0;
    return 0;
}

static int send_file(aw_out_t *out, int sock)
{
    while (out->file_left > 0) {
        off_t off = (off_t)out->file_off;
        size_t want = out->file_left > (1 << 30) ? (size_t)1 << 30 : (size_t)out->file_left;
        ssize_t n = sendfile(sock, out->file_fd, &off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 1 : -errno;
        }
        if (n == 0)
            return -EPIPE; /* the file is shorter than announced: cut the response */
        out->file_off += n;
        out->file_left -= n;
        out->sent += (unsigned long long)n;
    }
    file_done(out);
    return 0;
}

/* Send as much as the socket takes. Returns 0 when everything queued is out, 1 when the
 * socket is full (wait for EPOLLOUT, then aw_out_writable), or -errno when the client is
 * gone (and every later call fails too). */
int aw_out_flush(aw_out_t *out, int sock)
{
    if (out->failed)
        return -EPIPE;
    int r = send_queue(out, sock);
    if (r == 0)
        r = send_file(out, sock);
    out->blocked = r == 1;
    out->failed = r < 0;
    return r;
}

int aw_out_pending(const aw_out_t *out)
{
    return out->nsegs > out->head || out->file_left > 0;
}

/* No more may be queued until some is sent: room for a chunk header, the data and its CRLF
 * must remain, and a file being sent goes out before anything queued behind it. */
int aw_out_full(const aw_out_t *out)
{
    return out->queued >= AW_OUT_HIGH || out->nsegs + 3 > AW_MAX_SEGS || out->file_left > 0;
}

/* Enough has been sent to pull the app's iterable again. */
int aw_out_drained(const aw_out_t *out)
{
    return out->queued < AW_OUT_LOW && !aw_out_full(out);
}

int aw_out_blocked(const aw_out_t *out)
{
    return out->blocked;
}

/* The socket reported it can take more. */
void aw_out_writable(aw_out_t *out)
{
    out->blocked = 0;
}

int aw_out_failed(const aw_out_t *out)
{
    return out->failed;
}

unsigned long long aw_out_sent(const aw_out_t *out)
{
    return out->sent;
}

/* Nothing queued: give the buffer back to the pool. */
void aw_out_trim(aw_out_t *out)
{
    if (out->buf && !aw_out_pending(out)) {
        aw_pool_put(out->pool, out->buf, out->cap);
        out->buf = NULL;
        out->cap = out->len = 0;
    }
}

/* Drop everything queued (the connection is going away). */
void aw_out_clear(aw_out_t *out)
{
    for (int i = out->head; i < out->nsegs; i++)
        release(out, &out->segs[i]);
    out->nsegs = out->head = 0;
    out->len = out->queued = 0;
    file_done(out);
    aw_pool_put(out->pool, out->buf, out->cap);
    out->buf = NULL;
    out->cap = 0;
}
