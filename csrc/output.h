/* output.h: one connection's send queue.
 *
 * Small pieces are copied into one growing buffer, large pieces are referenced (kept alive by
 * a reference the queue holds and gives back through the release callback once they are sent
 * or dropped), and all go out with one sendmsg; a file may follow, sent with sendfile(2).
 * aw_out_flush is the one function in the core that writes to a client socket. Pure C.
 */
#ifndef AW_OUTPUT_H
#define AW_OUTPUT_H

#include "pool.h"

#include <stddef.h>

#define AW_OUT_HIGH (256 * 1024) /* stop pulling the app's iterable above this much queued */
#define AW_OUT_LOW (64 * 1024)   /* resume pulling below this */
#define AW_COPY_MAX 4096         /* body pieces up to this are copied, larger referenced */
#define AW_MAX_SEGS 16           /* queued pieces, at most */

/* A queued piece: copied (ref == NULL, off into the buffer) or referenced (ptr inside what ref
 * keeps alive). */
typedef struct {
    void *ref;
    const char *ptr;
    size_t off, len;
} aw_seg_t;

/* Gives back a reference the queue held (ctx is aw_out_init's). */
typedef void (*aw_release_fn)(void *ctx, void *ref);

/* Fields are output.c's alone. */
typedef struct {
    aw_pool_t *pool;
    aw_release_fn release;
    void *release_ctx;
    char *buf;
    size_t len, cap;
    aw_seg_t segs[AW_MAX_SEGS];
    int nsegs, head;
    size_t queued;                  /* bytes queued and not sent, the file excluded */
    int file_fd;                    /* a file to send once the queue ahead of it is out */
    int file_owned;                 /* ... and to close once sent (or dropped) */
    long long file_off, file_left;
    unsigned long long sent;        /* bytes written since aw_out_init */
    unsigned blocked : 1;           /* the socket said EAGAIN: wait for EPOLLOUT */
    unsigned failed : 1;            /* a write failed: the client is gone */
} aw_out_t;

void aw_out_init(aw_out_t *out, aw_pool_t *pool, aw_release_fn release, void *ctx);
int aw_out_prepare(aw_out_t *out);
char *aw_out_reserve(aw_out_t *out, size_t len);
void aw_out_commit(aw_out_t *out, size_t len);
int aw_out_copy(aw_out_t *out, const char *data, size_t len);
int aw_out_ref(aw_out_t *out, void *ref, const char *data, size_t len);
int aw_out_segments_left(const aw_out_t *out);
void aw_out_file(aw_out_t *out, int fd, long long off, long long len);
void aw_out_file_owned(aw_out_t *out, int fd, long long off, long long len);
int aw_out_flush(aw_out_t *out, int sock);
int aw_out_pending(const aw_out_t *out);
int aw_out_full(const aw_out_t *out);
int aw_out_drained(const aw_out_t *out);
int aw_out_blocked(const aw_out_t *out);
void aw_out_writable(aw_out_t *out);
int aw_out_failed(const aw_out_t *out);
unsigned long long aw_out_sent(const aw_out_t *out);
void aw_out_trim(aw_out_t *out);
void aw_out_clear(aw_out_t *out);

#endif
