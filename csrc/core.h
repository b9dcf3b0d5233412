/* core.h: the shared declarations of aiowsgi's C core.
 *
 * Owns: the structs every file works on (server, listener, connection, output queue) and the
 * internal API between the files. Ownership per file is stated at the top of each .c file.
 * Conventions: Python-facing functions return NULL/-1 with an exception set; pure-C helpers
 * return negative errno values or enums and never set Python exceptions.
 */
#ifndef AW_CORE_H
#define AW_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define AW_VERSION "0.1.0"

/* Python 3.9 lacks these. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *aw_newref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) aw_newref((PyObject *)(o))
#define Py_IsNone(o) ((o) == Py_None)
#define Py_TPFLAGS_IMMUTABLETYPE 0
static inline int aw_module_add_ref(PyObject *m, const char *name, PyObject *o)
{
    Py_INCREF(o);
    if (PyModule_AddObject(m, name, o) < 0) {
        Py_DECREF(o);
        return -1;
    }
    return 0;
}
#define PyModule_AddObjectRef aw_module_add_ref
#endif

/* ---- limits ------------------------------------------------------------------------------ */
#define AW_BUF_SIZE 16384            /* pooled read/write buffer size */
#define AW_POOL_MAX 256              /* buffers kept per server for reuse */
#define AW_OUT_HIGH (256 * 1024)     /* stop pulling the app iterable above this much queued */
#define AW_OUT_LOW (64 * 1024)       /* resume pulling below this */
#define AW_COPY_MAX 4096             /* body items up to this are copied, larger referenced */
#define AW_MAX_SEGS 16               /* queued segments per connection */
#define AW_STREAM_HIGH (256 * 1024)  /* streamed-input bytes read ahead of the app, at most */
#define AW_LINGER_MS 2000            /* time to drain a client after an error answer */
#define AW_IO_TIMEOUT_MS 60000       /* no progress on a body read or a response write: close */
#define AW_ACCEPT_BATCH 64
#define AW_SENTINEL_SPINS 1000     /* sentinels yielded after the body ended, at most */
#define AW_CHUNK_LINE_MAX 4096      /* a chunk-size line with its extensions, at most */

/* ---- module state ------------------------------------------------------------------------ */
#define AW_N_COMMON_HEADERS 32

typedef struct {
    PyTypeObject *server_type;
    PyTypeObject *start_response_type;
    PyTypeObject *input_type;
    PyTypeObject *filewrapper_type;
    PyObject *ClientDisconnected;
    PyObject *RequestTooLarge;
    PyObject *io_open;           /* io.open, for spooled request bodies */
#define AW_N_FILE_READS 3
    PyObject *file_reads[AW_N_FILE_READS]; /* io.FileIO/BufferedReader/BufferedRandom.read */
    PyObject *status_lines;      /* dict code -> reason phrase, exported for tests */
    /* interned environ keys */
    PyObject *k_REQUEST_METHOD, *k_SCRIPT_NAME, *k_PATH_INFO, *k_QUERY_STRING, *k_RAW_URI,
        *k_SERVER_NAME, *k_SERVER_PORT, *k_SERVER_PROTOCOL, *k_REMOTE_ADDR, *k_REMOTE_PORT,
        *k_CONTENT_TYPE, *k_CONTENT_LENGTH, *k_wsgi_version, *k_wsgi_url_scheme, *k_wsgi_input,
        *k_wsgi_errors, *k_wsgi_multithread, *k_wsgi_multiprocess, *k_wsgi_run_once,
        *k_wsgi_file_wrapper, *k_wsgi_input_terminated, *k_aiowsgi_input_sentinel,
        *k_wsgi_input_sentinel, *k_HTTP_X_FORWARDED_FOR, *k_HTTP_X_FORWARDED_PROTO;
    /* constant values and attribute names */
    PyObject *v_empty, *v_http10, *v_http11, *v_wsgi_version, *v_http, *v_https;
    PyObject *s_close, *s_read, *s_fileno, *s_write, *s_flush;
    PyObject *methods[64];       /* indexed by llhttp_method_t */
    PyObject *header_keys[AW_N_COMMON_HEADERS]; /* "HTTP_HOST", ... */
} aw_state_t;

/* ---- event sources ----------------------------------------------------------------------- */
typedef enum { AW_IO_LISTENER = 1, AW_IO_CONN, AW_IO_WAKE } aw_io_kind_t;

/* The first member of every struct registered with epoll (epoll_data.ptr points to it). */
typedef struct {
    aw_io_kind_t kind;
    int fd;
    uint32_t events; /* the interest mask currently registered, 0 when not registered */
} aw_io_t;

typedef struct aw_server aw_server_t;

/* The numeric and boolean options of a Server, as options.c's table parses them. */
typedef struct {
    long long keepalive, header_timeout; /* milliseconds */
    long long max_header_size, max_body_size, spool_threshold, max_requests;
    long long stream_input, multiprocess;
} aw_options_t;
typedef struct aw_conn aw_conn_t;

typedef struct {
    aw_io_t io;              /* io.fd is our dup() of the caller's socket, -1 once closed */
    int family;
    PyObject *environ_tpl;   /* per-listener constant environ entries, copied per request */
} aw_listener_t;

/* Intrusive, deadline-ordered list of connections sharing one timeout duration (h2o style:
 * appending now+duration keeps the list sorted, so insert, remove and expire are O(1)). */
typedef struct {
    aw_conn_t *head, *tail;
    long long duration_ms;
} aw_tlist_t;

struct aw_server {
    PyObject_HEAD
    aw_state_t *st;          /* borrowed: the module outlives its types' instances */
    PyObject *app;
    PyObject *errors, *log, *access_log, *sentinel, *empty_input;
    int epfd, wakefd;
    aw_io_t wake_io;
    aw_listener_t *listeners;
    int nlisteners;
    /* options */
    long long keepalive_ms, header_timeout_ms;
    size_t max_header_size;
    unsigned long long max_body_size;
    size_t spool_threshold;
    unsigned long long max_requests;
    int stream_input, multiprocess;
    char **trusted;          /* forwarded_allow_ips */
    int ntrusted, trust_all;
    Py_buffer heartbeat;
    int has_heartbeat;
    /* runtime */
    aw_tlist_t t_header, t_keepalive, t_io, t_linger;
    long long now_ms;        /* CLOCK_MONOTONIC_COARSE, refreshed once per loop turn */
    time_t date_sec;
    char date_line[64];      /* "Date: ...\r\n" */
    size_t date_len;
    size_t nconns;
    unsigned long long requests;
    int running, stopping, accepting;
    long long stop_deadline_ms, accept_resume_ms;
    volatile int stop_req;   /* 0 none, 1 graceful, 2 immediate: set by stop(), read by loop */
    volatile double stop_timeout;
    PyObject *fatal;         /* BaseException (KeyboardInterrupt, SystemExit) to re-raise */
    char *pool[AW_POOL_MAX];
    int npool;
};

/* ---- connections ------------------------------------------------------------------------- */
typedef struct {
    uint32_t off, len; /* relative to conn->head_start */
} aw_span_t;

typedef struct {
    aw_span_t name, value;
} aw_header_t;

/* One queued piece of output: bytes copied into the connection's write buffer (obj == NULL,
 * data is an offset into wbuf) or a referenced bytes-like object (data is a pointer). */
typedef struct {
    PyObject *obj;
    const char *ptr;
    size_t off, len;
} aw_seg_t;

typedef enum {
    AW_ST_HEAD = 0,  /* waiting for or reading a request head */
    AW_ST_BODY,      /* reading a buffered request body; app not called yet */
    AW_ST_APP,       /* the app's response is being produced */
    AW_ST_CLOSING,   /* answer queued; close once it is written */
    AW_ST_LINGER,    /* write side shut; draining the client before close */
} aw_conn_state_t;

typedef enum {
    AW_WAIT_NONE = 0,
    AW_WAIT_OUT,     /* iterable suspended until the send queue drains */
    AW_WAIT_IN,      /* iterable suspended on the would-block sentinel */
} aw_wait_t;

struct aw_conn {
    aw_io_t io;
    aw_server_t *srv;
    aw_listener_t *lst;
    aw_conn_state_t state;
    aw_wait_t wait;
    /* timers */
    aw_conn_t *t_prev, *t_next;
    aw_tlist_t *t_list;
    long long deadline_ms;
    /* read side */
    llhttp_t parser;
    char *rbuf;
    size_t rcap, rlen, rpos, head_start;
    aw_span_t url;
    aw_header_t *hdrs;
    int nhdrs, hcap;
    int hstate;              /* 0 none, 1 in a field name, 2 in a value */
    unsigned head_done : 1, msg_done : 1, keep_alive : 1, close_after : 1, is_head : 1,
        expect_continue : 1, continue_sent : 1, chunked_in : 1, upgrade : 1, streaming : 1,
        input_eof : 1, peer_gone : 1, closing : 1, read_eof : 1, linger : 1, started : 1,
        headers_sent : 1,
        chunked_out : 1, no_body : 1, in_app : 1, trailers : 1, at_chunk_line : 1,
        resume_pending : 1;
    int parse_error_status;  /* status for an error our own callbacks detected */
    size_t chunk_line_seen;  /* bytes of the current chunk-size line read so far */
    int sentinel_spins;      /* sentinels in a row after the body ended */
    int input_error;         /* streamed body failed: 1 client gone, 2 too large, 3 malformed */
    unsigned long long body_len;    /* buffered: body bytes received so far */
    /* buffered body storage */
    PyObject *body_bytes;    /* Content-Length body, preallocated */
    char *cbody;             /* chunked body in memory */
    size_t cbody_len, cbody_cap;
    int spool_fd;            /* body spooled to an unlinked temporary file, or -1 */
    /* streamed body storage: list of bytes read but not yet consumed by the app */
    PyObject *stream_chunks;
    Py_ssize_t stream_head;  /* first unconsumed chunk */
    size_t stream_off;       /* bytes of it already consumed */
    size_t stream_bytes;     /* unconsumed bytes in all */
    /* per request Python state */
    PyObject *environ, *input, *result, *iter, *start_response, *write_cb;
    PyObject *status, *headers;      /* as given to start_response */
    PyObject *remote_addr, *remote_port;
    Py_ssize_t seq_idx;      /* next index when result is a list or tuple */
    int resp_status;
    long long resp_cl;       /* app Content-Length, -1 when none */
    unsigned long long body_sent;    /* body bytes the app produced so far */
    unsigned long long bytes_out;    /* for the access log */
    double t_start;
    /* write side */
    char *wbuf;
    size_t wlen, wcap;
    aw_seg_t segs[AW_MAX_SEGS];
    int nsegs, shead;
    size_t out_bytes;
    /* sendfile: a file to send once the queue ahead of it drains */
    PyObject *sf_obj;        /* the FileWrapper, closed at the end */
    int sf_fd;
    long long sf_off, sf_left;
};

/* ---- server.c ---------------------------------------------------------------------------- */
int aw_server_update_events(aw_server_t *s, aw_io_t *io, uint32_t events);
char *aw_pool_get(aw_server_t *s);
void aw_pool_put(aw_server_t *s, char *buf, size_t cap);
void aw_tlist_remove(aw_conn_t *c);
void aw_tlist_append(aw_tlist_t *l, aw_conn_t *c, long long now_ms);
void aw_heartbeat(aw_server_t *s, int busy);
void aw_log_exception(aw_server_t *s, const char *msg);
void aw_log_message(aw_server_t *s, int level, const char *fmt, ...);
void aw_server_request_done(aw_server_t *s);
int aw_server_trusts(aw_server_t *s, const char *ip);

/* ---- options.c --------------------------------------------------------------------------- */
int aw_options_parse(aw_options_t *o, PyObject *kwds);
PyObject *aw_options_export(void);

/* ---- conn.c ------------------------------------------------------------------------------ */
aw_conn_t *aw_conn_new(aw_server_t *s, aw_listener_t *l, int fd, struct sockaddr *sa);
void aw_conn_on_event(aw_conn_t *c, uint32_t events);
void aw_conn_close(aw_conn_t *c);
void aw_conn_expire(aw_conn_t *c);
void aw_conn_resume(aw_conn_t *c);
int aw_conn_is_idle(aw_conn_t *c);
void aw_conn_update(aw_conn_t *c);

/* ---- parser.c ---------------------------------------------------------------------------- */
extern const llhttp_settings_t aw_parser_settings;
void aw_parser_init(aw_conn_t *c);
int aw_parser_check_head(aw_conn_t *c);
int aw_parser_error_status(llhttp_errno_t err);
int aw_parser_check_chunk_line(aw_conn_t *c, const char *data, size_t len);

/* ---- environ.c --------------------------------------------------------------------------- */
PyObject *aw_environ_template(aw_server_t *s, aw_listener_t *l, PyObject *server_name,
                              PyObject *server_port, PyObject *url_scheme);
PyObject *aw_environ_build(aw_conn_t *c);
int aw_state_init_headers(aw_state_t *st);

/* ---- input.c ----------------------------------------------------------------------------- */
extern PyType_Spec aw_input_spec;
PyObject *aw_input_new_bytes(aw_state_t *st, PyObject *bytes);
PyObject *aw_input_new_stream(aw_state_t *st, aw_conn_t *c);
void aw_input_detach(aw_state_t *st, PyObject *input);
int aw_body_append(aw_conn_t *c, const char *data, size_t len);
int aw_body_begin(aw_conn_t *c);
int aw_body_finish(aw_conn_t *c);
void aw_body_clear(aw_conn_t *c);
int aw_stream_feed(aw_conn_t *c, const char *data, size_t len);

/* ---- wsgi.c ------------------------------------------------------------------------------ */
extern PyType_Spec aw_start_response_spec;
typedef enum {
    AW_PUMP_DONE,     /* response complete and queued */
    AW_PUMP_WAIT_OUT, /* suspended: send queue full */
    AW_PUMP_WAIT_IN,  /* suspended: the app yielded the sentinel */
    AW_PUMP_ABORT,    /* the connection must be cut */
} aw_pump_t;
aw_pump_t aw_wsgi_start(aw_conn_t *c);
aw_pump_t aw_wsgi_pump(aw_conn_t *c);
void aw_wsgi_finish(aw_conn_t *c);
void aw_wsgi_detach(aw_conn_t *c);
void aw_wsgi_file_done(aw_conn_t *c);

/* ---- response.c -------------------------------------------------------------------------- */
char *aw_out_reserve(aw_conn_t *c, size_t len);
void aw_out_commit(aw_conn_t *c, size_t len);
int aw_out_copy(aw_conn_t *c, const char *data, size_t len);
int aw_out_ref(aw_conn_t *c, PyObject *obj, const char *data, size_t len);
int aw_out_flush(aw_conn_t *c);
void aw_out_clear(aw_conn_t *c);
int aw_out_full(aw_conn_t *c);
int aw_response_headers(aw_conn_t *c, long long known_len);
int aw_response_body(aw_conn_t *c, PyObject *obj, const char *data, size_t len);
int aw_response_end(aw_conn_t *c);
int aw_response_error(aw_conn_t *c, int status);
const char *aw_status_reason(int status);
int aw_status_table_export(PyObject *dict);
void aw_format_date(time_t t, char *out, size_t *len);

/* ---- filewrapper.c ----------------------------------------------------------------------- */
extern PyType_Spec aw_filewrapper_spec;
int aw_filewrapper_sendfile_fd(PyObject *wrapper, aw_state_t *st, long long *offset,
                               long long *size);

#endif
