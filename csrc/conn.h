/* conn.h: one client connection, composed of the parts other files own.
 *
 * conn.c owns the struct's own fields (state, read buffer, timer, flags) and the composition;
 * each embedded part belongs to its file and is reached only through that file's functions:
 * parser (parser.c), body (body.c), resp (response.c), out (output.c), app (wsgi.c),
 * peer (environ.c). A connection belongs to one thread at a time: the server's loop, or (in
 * state APP with a thread pool) the app thread running its job, until it is handed back.
 */
#ifndef AW_CONN_H
#define AW_CONN_H

#include "compat.h"
#include "body.h"
#include "environ.h"
#include "loop.h"
#include "output.h"
#include "parser.h"
#include "response.h"
#include "threads.h"
#include "wsgi.h"

typedef struct aw_server aw_server_t;
typedef struct aw_listener aw_listener_t;

/* The connection state machine (conn.c has the diagram). */
typedef enum {
    AW_CONN_IDLE,          /* between requests, nothing buffered (keep-alive timer) */
    AW_CONN_HEAD,          /* reading a request head (header timer) */
    AW_CONN_BODY,          /* reading a buffered body; the app is not called yet (I/O timer) */
    AW_CONN_APP,           /* the app's turn: here within one event, or a job of the pool */
    AW_CONN_APP_FLUSH,     /* --threads 1: an iterator's item is queued; it goes out with the
                            * turn's writes, then the app's turn goes on (no timer) */
    AW_CONN_READY,         /* a complete request waits for room in the pool (no timer) */
    AW_CONN_WAIT_OUT,      /* the response waits for the send queue to drain (I/O timer) */
    AW_CONN_WAIT_IN,       /* the response waits on the sentinel for body data (I/O timer) */
    AW_CONN_CLOSE_AFTER,   /* the last answer is queued: close once it is sent (I/O timer) */
    AW_CONN_LINGER_AFTER,  /* ... then half-close and linger: input may be unread (I/O timer) */
    AW_CONN_LINGER,        /* write side shut; reading and discarding until EOF (linger timer) */
    AW_CONN_CLOSED,        /* closed; freed at the end of the turn (or after the pool drops its
                            * Python side) */
} aw_conn_state_t;

typedef struct aw_conn {
    aw_io_t io; /* first: epoll's data points here */
    aw_timer_t timer;
    aw_server_t *srv;
    aw_listener_t *lst;
    aw_conn_state_t state;
    char *rbuf;             /* the read buffer, from the server's pool while in use */
    size_t rcap, rlen, rpos;
    size_t head_start;      /* where the current request head begins in rbuf */
    double t_start;         /* when the current request's head was complete (access log,
                             * metrics) */
    unsigned read_eof : 1;  /* the client will send nothing more */
    unsigned continue_owed : 1; /* Expect: 100-continue, not answered yet */
    unsigned paused : 1;    /* no new request is read: the pool is full (server's list) */
    unsigned metered : 1;   /* the current request is counted in flight (--metrics-bind) */
    unsigned dirty : 1;     /* its output goes out with the turn's writes (server's list) */
    struct aw_conn *dirty_next;
    aw_job_t job;           /* the pool's handle on it (threads.c) */
    aw_worker_t *worker;    /* the app thread whose job it is, while that runs */
    aw_pump_t outcome;      /* how the app thread's turn ended */
    struct aw_conn *wait_prev, *wait_next; /* READY, paused or CLOSED: one of the server's lists */
    aw_parser_t parser;
    aw_body_t body;
    aw_resp_t resp;
    aw_out_t out;
    aw_app_t app;
    aw_peer_t peer;
} aw_conn_t;

aw_conn_t *aw_conn_new(aw_server_t *s, aw_listener_t *l, int fd, const struct sockaddr *sa);
void aw_conn_close(aw_conn_t *c);
void aw_conn_reap(aw_server_t *s);
void aw_conn_write_all(aw_server_t *s);
void aw_conn_expire(aw_conn_t *c);
int aw_conn_is_idle(const aw_conn_t *c);
void aw_conn_input_read(aw_conn_t *c);
int aw_conn_send(aw_conn_t *c);
void aw_conn_resp_ctx(aw_conn_t *c, aw_resp_ctx_t *ctx);
void aw_conn_environ_src(aw_conn_t *c, aw_environ_src_t *src);
void aw_conn_heartbeat(aw_conn_t *c, int busy);
void aw_conn_run_job(void *server, aw_job_t *job, aw_worker_t *w);
void aw_conn_finish_job(void *server, aw_job_t *job, aw_worker_t *w);
void aw_conn_job_done(aw_job_t *job);
void aw_conn_room(aw_conn_t *c);
void aw_conn_unpause(aw_conn_t *c);

static inline aw_server_t *aw_conn_server(aw_conn_t *c)
{
    return c->srv;
}
static inline aw_body_t *aw_conn_body(aw_conn_t *c)
{
    return &c->body;
}
static inline aw_resp_t *aw_conn_resp(aw_conn_t *c)
{
    return &c->resp;
}
static inline aw_out_t *aw_conn_out(aw_conn_t *c)
{
    return &c->out;
}
static inline aw_app_t *aw_conn_app(aw_conn_t *c)
{
    return &c->app;
}

#endif
