/* body.h: a request's body as it arrives, in plain C.
 *
 * Buffered (the default): stored whole, in memory (a Content-Length body in one exact
 * allocation, a chunked one in a growing buffer) or, above the spool threshold, in an unlinked
 * temporary file; input.c turns it into a seekable wsgi.input once complete. Streamed (SPEC 5):
 * a FIFO of bytes read ahead of the app, which input.c hands out as they come. No Python here:
 * the loop stores bodies without the GIL.
 */
#ifndef AW_BODY_H
#define AW_BODY_H

#include "parser.h"

#include <stddef.h>

#define AW_STREAM_HIGH (256 * 1024) /* streamed bytes read ahead of the app, at most */

typedef enum {
    AW_BODY_OK,
    AW_BODY_GONE,      /* the client disconnected mid-body: ClientDisconnected */
    AW_BODY_TOO_LARGE, /* over max_body_size: RequestTooLarge (and 413) */
    AW_BODY_MALFORMED, /* bad chunked framing: ClientDisconnected (and 400) */
} aw_body_error_t;

/* Fields are body.c's alone. */
typedef struct {
    char *mem;                  /* buffered, in memory */
    size_t mem_len, mem_cap;
    int spool_fd;               /* buffered, spooled to an unlinked temporary file; or -1 */
    size_t spool_threshold;
    unsigned long long received;
    char *fifo;                 /* streamed: bytes read and not yet taken by the app */
    size_t fifo_head, fifo_len, fifo_cap;
    unsigned streaming : 1, ended : 1, chunked : 1;
    aw_body_error_t error;
} aw_body_t;

void aw_body_init(aw_body_t *b, size_t spool_threshold);
int aw_body_begin(aw_body_t *b, const aw_request_t *r, int streaming);
int aw_body_store(void *body, const char *data, size_t len);
void aw_body_end(aw_body_t *b);
void aw_body_fail(aw_body_t *b, aw_body_error_t error);
int aw_body_streaming(const aw_body_t *b);
int aw_body_chunked(const aw_body_t *b);
int aw_body_spooled(const aw_body_t *b);
int aw_body_complete(const aw_body_t *b);
aw_body_error_t aw_body_error(const aw_body_t *b);
int aw_body_wants_more(const aw_body_t *b);
int aw_body_ready(const aw_body_t *b);
size_t aw_body_buffered(const aw_body_t *b);
unsigned long long aw_body_received(const aw_body_t *b);
size_t aw_body_peek(const aw_body_t *b, const char **data);
void aw_body_consume(aw_body_t *b, size_t n);
int aw_body_rewind(aw_body_t *b);
char *aw_body_release_mem(aw_body_t *b, size_t *len);
int aw_body_release_spool(aw_body_t *b);
void aw_body_reset(aw_body_t *b);

#endif
