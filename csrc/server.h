/* server.h: the Server type: one event loop serving one app on some listening sockets.
 *
 * The fields under "read by connections" are set by __init__ and only read afterwards; the
 * shared machinery (loop, pool, timer lists, date) is used by connections through loop.h,
 * pool.h and these functions. Everything runs on the thread in run(), with the GIL held except
 * around the wait for events; stop() may come from any thread.
 */
#ifndef AW_SERVER_H
#define AW_SERVER_H

#include "compat.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "module.h"
#include "options.h"
#include "pool.h"
#include "response.h"
#include "static.h"
#include "threads.h"
#include "trust.h"

typedef struct aw_server aw_server_t;

typedef struct aw_listener {
    aw_io_t io;          /* io.fd is our dup() of the caller's socket, -1 once closed */
    aw_server_t *srv;
    int family;
    PyObject *environ_tpl; /* the constant entries of every environ it produces */
} aw_listener_t;

typedef enum { AW_STOP_NONE, AW_STOP_GRACEFUL, AW_STOP_NOW } aw_stop_t;

/* Connections waiting on the pool, oldest first (linked through aw_conn_t.wait_prev/next). */
typedef struct {
    struct aw_conn *head, *tail;
    int n;
} aw_conn_list_t;

struct aw_server {
    PyObject_HEAD
    aw_state_t *st; /* borrowed: the module outlives its types' instances */
    /* read by connections */
    PyObject *app, *errors, *sentinel, *empty_input;
    aw_options_t opt;
    int stream_input; /* the option, or the app asked for it (aiowsgi.streaming_input) */
    aw_log_t log;
    aw_trust_t trust;
    aw_static_t *statics;  /* the --static mounts, or NULL */
    aw_metrics_t *metrics; /* the counters the master reads (--metrics-bind), or NULL */
    /* shared with connections */
    aw_loop_t loop;
    aw_pool_t pool;
    aw_tlist_t t_header, t_keepalive, t_io, t_linger;
    aw_threads_t *threads;  /* the app thread pool while run() runs, with --threads > 1 */
    aw_conn_list_t ready;   /* READY connections, oldest first */
    aw_conn_list_t paused;  /* connections that read no new request while the pool is full */
    aw_conn_list_t closed;  /* closed in this turn, freed at its end (aw_conn_reap) */
    struct aw_conn *dirty_head, *dirty_tail; /* output to write before the wait, oldest first */
    long long dirty_since_ns; /* when the oldest of it was queued */
    char date[AW_DATE_MAX]; /* "Date: ...\r\n" for this second */
    size_t date_len;
    time_t date_sec;
    /* server.c's own */
    aw_listener_t *listeners;
    int nlisteners;
    Py_buffer heartbeat;
    int has_heartbeat;
    Py_buffer metrics_buf;  /* holds the block metrics points into */
    size_t nconns;
    unsigned long long requests;
    int running, stopping, accepting; /* stopping: atomic (read by app threads) */
    long long stop_deadline_ms, accept_resume_ms;
    aw_stop_t stop_req; /* atomic: set by stop(), taken by the loop */
    double stop_timeout;
    PyObject *fatal; /* a BaseException (KeyboardInterrupt, SystemExit) for run() to raise */
    int failed;      /* atomic: fatal is set */
    int loop_errno;  /* epoll failed (run() raises OSError) */
};

extern PyType_Spec aw_server_spec;

void aw_server_conn_opened(aw_server_t *s);
void aw_server_conn_closed(aw_server_t *s);
void aw_server_request_done(aw_server_t *s);
void aw_server_heartbeat(aw_server_t *s, int slot, int busy);
void aw_server_set_fatal(aw_server_t *s);
int aw_server_failed(const aw_server_t *s);
int aw_server_stopping(const aw_server_t *s);
void aw_server_release(void *server, void *ref);
void aw_server_defer(aw_server_t *s, PyObject *obj, aw_defer_t action);
void aw_server_take_back(aw_server_t *s);
void aw_server_wait(aw_conn_list_t *list, struct aw_conn *c);
void aw_server_unwait(aw_conn_list_t *list, struct aw_conn *c);
int aw_server_full(aw_server_t *s);

#endif
