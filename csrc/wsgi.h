/* wsgi.h: the app's side of a request (PEP 3333): the app call, start_response and write(),
 * pulling the response iterable, and its close().
 *
 * Python-aware. Works on a connection through conn.h's accessors; never reads or writes a
 * socket itself.
 */
#ifndef AW_WSGI_H
#define AW_WSGI_H

#include "compat.h"
#include "environ.h"

struct aw_conn;

/* Fields are wsgi.c's alone. */
typedef struct {
    PyObject *environ, *input;      /* input: when not the template's empty one */
    PyObject *result, *iter;        /* what the app returned, and its iterator */
    PyObject *start_response, *write_cb;
    PyObject *status, *headers;     /* as given to start_response */
    PyObject *file;                 /* a FileWrapper being sent: closed once it is out */
    Py_ssize_t seq_idx;             /* next index when result is a list or tuple */
    int file_fd;                    /* result's file, when sent with sendfile(2); -1 */
    long long file_off, file_len;   /* ... from where, and how much */
    int sentinel_spins;             /* sentinels in a row after the body ended */
    unsigned called : 1;
} aw_app_t;

/* What the pump decided; conn.c acts on it. */
typedef enum {
    AW_PUMP_DONE,     /* the response is complete and queued */
    AW_PUMP_FLUSH,    /* an iterator's item is queued: send it now, then pump again */
    AW_PUMP_WAIT_OUT, /* suspended until the send queue drains */
    AW_PUMP_WAIT_IN,  /* suspended on the would-block sentinel until body data arrives */
    AW_PUMP_ABORT,    /* the connection must be cut */
} aw_pump_t;

extern PyType_Spec aw_start_response_spec;

void aw_app_init(aw_app_t *a);
PyObject *aw_wsgi_environ(struct aw_conn *c);
aw_pump_t aw_wsgi_pump(struct aw_conn *c);
void aw_wsgi_finish(struct aw_conn *c);
void aw_wsgi_file_sent(struct aw_conn *c);
void aw_wsgi_reset(struct aw_conn *c);
void aw_wsgi_detach(struct aw_conn *c);
int aw_wsgi_holds_objects(struct aw_conn *c);
void aw_wsgi_access_log(struct aw_conn *c, const aw_environ_src_t *src, double t_start);

#endif
