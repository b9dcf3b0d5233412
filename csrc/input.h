/* input.h: a request's body and its wsgi.input.
 *
 * Buffered (the default): the body is stored as it arrives (a preallocated bytes object for a
 * Content-Length body, a growing buffer for a chunked one, an unlinked temporary file above the
 * spool threshold) and becomes a seekable wsgi.input once complete. Streamed (SPEC 5): the app
 * reads what has arrived; the would-block sentinel when nothing has. Python-aware.
 */
#ifndef AW_INPUT_H
#define AW_INPUT_H

#include "compat.h"
#include "module.h"
#include "parser.h"

#define AW_STREAM_HIGH (256 * 1024) /* streamed bytes read ahead of the app, at most */

typedef enum {
    AW_BODY_OK,
    AW_BODY_GONE,      /* the client disconnected mid-body: ClientDisconnected */
    AW_BODY_TOO_LARGE, /* over max_body_size: RequestTooLarge (and 413) */
    AW_BODY_MALFORMED, /* bad chunked framing: ClientDisconnected (and 400) */
} aw_body_error_t;

struct aw_conn;

/* Fields are input.c's alone. */
typedef struct {
    aw_state_t *st;
    PyObject *input;            /* this request's wsgi.input, when it is not the empty one */
    /* buffered */
    PyObject *bytes;            /* Content-Length body, preallocated */
    char *mem;                  /* chunked body in memory */
    size_t mem_len, mem_cap;
    int spool_fd;               /* body spooled to an unlinked temporary file, or -1 */
    size_t spool_threshold;
    unsigned long long received;
    /* streamed: bytes objects read and not yet consumed by the app */
    PyObject *chunks;
    Py_ssize_t chunk_head;      /* first unconsumed chunk */
    size_t chunk_off;           /* bytes of it already consumed */
    size_t buffered;            /* unconsumed bytes in all */
    unsigned streaming : 1, ended : 1;
    aw_body_error_t error;
} aw_body_t;

extern PyType_Spec aw_input_spec;

void aw_body_init(aw_body_t *b, aw_state_t *st, size_t spool_threshold);
int aw_body_begin(aw_body_t *b, const aw_request_t *r, PyObject *environ, int streaming,
                  PyObject *sentinel, struct aw_conn *conn);
int aw_body_store(void *body, const char *data, size_t len);
int aw_body_finish(aw_body_t *b, const aw_request_t *r, PyObject *environ);
void aw_body_end(aw_body_t *b);
void aw_body_fail(aw_body_t *b, aw_body_error_t error);
int aw_body_streaming(const aw_body_t *b);
int aw_body_complete(const aw_body_t *b);
aw_body_error_t aw_body_error(const aw_body_t *b);
int aw_body_wants_more(const aw_body_t *b);
int aw_body_ready(const aw_body_t *b);
void aw_body_reset(aw_body_t *b);

PyObject *aw_input_new_bytes(aw_state_t *st, PyObject *bytes);

#endif
