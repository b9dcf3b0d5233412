/* wsgi.c: calling the app (PEP 3333).
 *
 * Owns: the app's side of a request (aw_app_t: environ, result, iterator, start_response and
 * what it was given), the start_response type and its write(), the exc_info rules, pulling the
 * response iterable while the send queue has room (the pump), and the exactly-once close() of
 * the iterable. Decides, does not act on the connection: the pump returns an outcome that
 * conn.c acts on. Must not format bytes (response.c) nor write to the socket (conn.c).
 */
#include "wsgi.h"
#include "conn.h"
#include "filewrapper.h"
#include "input.h"
#include "server.h"

#include <structmember.h>

#define AW_SENTINEL_SPINS 1000 /* sentinels yielded after the body ended, at most */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    aw_conn_t *conn; /* NULL once the connection is gone */
} aw_sr_t;

void aw_app_init(aw_app_t *a)
{
    *a = (aw_app_t){.file_fd = -1};
}

/* ---- start_response ---------------------------------------------------------------------- */

static PyObject *sr_start(aw_sr_t *self, PyObject *status, PyObject *headers,
                          PyObject *exc_info)
{
    aw_conn_t *c = self->conn;
    aw_app_t *a = c ? aw_conn_app(c) : NULL;
    if (!a || !a->environ) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called outside of a request");
        return NULL;
    }
    if (!Py_IsNone(exc_info)) {
        if (aw_response_headers_sent(aw_conn_resp(c))) {
            /* PEP 3333: too late to change the response; re-raise the app's error */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO:exc_info", &t, &v, &tb))
                return NULL;
            PyErr_Restore(Py_NewRef(t), Py_NewRef(v), Py_NewRef(tb));
            return NULL;
        }
    } else if (a->status) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response called a second time without exc_info");
        return NULL;
    }
    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be str, not %.100s", Py_TYPE(status)->tp_name);
        return NULL;
    }
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return NULL;
    }
    Py_XSETREF(a->status, Py_NewRef(status));
    Py_XSETREF(a->headers, Py_NewRef(headers));
    if (!a->write_cb &&
        !(a->write_cb = PyObject_GetAttr((PyObject *)self, aw_conn_server(c)->st->s_write)))
        return NULL;
    return Py_NewRef(a->write_cb);
}

static PyObject *sr_call(aw_sr_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response", kwlist, &status,
                                     &headers, &exc_info))
        return NULL;
    return sr_start(self, status, headers, exc_info);
}

/* The usual call, start_response(status, headers[, exc_info]) by position, without building
 * an argument tuple; keywords take the general path. */
static PyObject *sr_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames)
{
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (!kwnames && (n == 2 || n == 3))
        return sr_start((aw_sr_t *)self, args[0], args[1], n == 3 ? args[2] : Py_None);
    PyObject *tuple = NULL, *kwds = NULL, *result = NULL;
    if (!(tuple = PyTuple_New(n)))
        goto error;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    if (kwnames) {
        if (!(kwds = PyDict_New()))
            goto error;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwds, PyTuple_GET_ITEM(kwnames, i), args[n + i]) < 0)
                goto error;
        }
    }
    result = sr_call((aw_sr_t *)self, tuple, kwds);
error:
    Py_XDECREF(tuple);
    Py_XDECREF(kwds);
    return result;
}

static int queue_headers(aw_conn_t *c, long long known_len)
{
    aw_app_t *a = aw_conn_app(c);
    aw_resp_ctx_t ctx;
    aw_conn_resp_ctx(c, &ctx);
    return aw_response_headers(aw_conn_resp(c), aw_conn_out(c), a->status, a->headers, known_len,
                               &ctx);
}

/* PEP 3333's write(): the bytes are queued and sent as far as the socket takes them now. */
static PyObject *sr_write(aw_sr_t *self, PyObject *data)
{
    aw_conn_t *c = self->conn;
    if (!c || !aw_conn_app(c)->status) {
        PyErr_SetString(PyExc_RuntimeError, "write() called outside of a started response");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    aw_resp_t *r = aw_conn_resp(c);
    if (len > 0 && !aw_response_headers_sent(r) && queue_headers(c, -1) < 0)
        return NULL;
    if (aw_response_body(r, aw_conn_out(c), &aw_conn_server(c)->log, data,
                         PyBytes_AS_STRING(data), (size_t)len) < 0)
        return NULL;
    if (aw_conn_send(c) < 0) {
        PyErr_SetString(aw_conn_server(c)->st->ClientDisconnected, "the client has gone away");
        return NULL;
    }
    Py_RETURN_NONE;
}

static void sr_dealloc(aw_sr_t *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyMemberDef sr_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(aw_sr_t, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef sr_methods[] = {
    {"write", (PyCFunction)sr_write, METH_O, "write(data): send body bytes (PEP 3333)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sr_slots[] = {
    {Py_tp_doc, "start_response(status, headers, exc_info=None) of one connection."},
    {Py_tp_call, sr_call},
    {Py_tp_dealloc, sr_dealloc},
    {Py_tp_methods, sr_methods},
    {Py_tp_members, sr_members},
    {0, NULL},
};

PyType_Spec aw_start_response_spec = {
    .name = "aiowsgi._core.StartResponse",
    .basicsize = sizeof(aw_sr_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = sr_slots,
};

/* ---- failures ---------------------------------------------------------------------------- */

/* A streamed body failed and the app let the error propagate (SPEC 5): too large is a 413,
 * malformed a 400; a client that has gone needs no answer and its departure no traceback. */
static aw_pump_t input_failed(aw_conn_t *c, aw_body_error_t error)
{
    PyErr_Clear();
    aw_wsgi_finish(c);
    int status = error == AW_BODY_TOO_LARGE ? 413 : (error == AW_BODY_MALFORMED ? 400 : 0);
    aw_resp_t *r = aw_conn_resp(c);
    if (!status || aw_response_headers_sent(r))
        return AW_PUMP_ABORT;
    aw_resp_ctx_t ctx;
    aw_conn_resp_ctx(c, &ctx);
    return aw_response_error(r, aw_conn_out(c), status, &ctx) < 0 ? AW_PUMP_ABORT : AW_PUMP_DONE;
}

/* The app failed (exception set). Before any header went out: log, answer 500. After: log
 * and cut the connection. BaseExceptions that are not Exceptions (KeyboardInterrupt,
 * SystemExit) stop the server: run() re-raises them. */
static aw_pump_t app_failed(aw_conn_t *c, const char *what)
{
    aw_server_t *s = aw_conn_server(c);
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        aw_server_set_fatal(s);
        return AW_PUMP_ABORT;
    }
    aw_body_error_t error = aw_body_error(aw_conn_body(c));
    if (error && (PyErr_ExceptionMatches(s->st->RequestTooLarge) ||
                  PyErr_ExceptionMatches(s->st->ClientDisconnected)))
        return input_failed(c, error);
    aw_log_exception(&s->log, what);
    aw_wsgi_finish(c);
    aw_resp_t *r = aw_conn_resp(c);
    if (aw_response_headers_sent(r))
        return AW_PUMP_ABORT;
    aw_resp_ctx_t ctx;
    aw_conn_resp_ctx(c, &ctx);
    return aw_response_error(r, aw_conn_out(c), 500, &ctx) < 0 ? AW_PUMP_ABORT : AW_PUMP_DONE;
}

/* ---- the app call ------------------------------------------------------------------------ */

PyObject *aw_wsgi_environ(aw_conn_t *c)
{
    return aw_conn_app(c)->environ; // borrowed
}

static PyObject *make_start_response(aw_conn_t *c)
{
    aw_sr_t *sr = PyObject_New(aw_sr_t, aw_conn_server(c)->st->start_response_type);
    if (sr) {
        sr->vectorcall = sr_vectorcall;
        sr->conn = c;
    }
    return (PyObject *)sr;
}

/* A FileWrapper over a regular file is sent with sendfile(2), but only as the whole body:
 * after write() the headers (and their framing) are already out. Returns 0 or -1. */
static int take_file(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_state_t *st = aw_conn_server(c)->st;
    if (!Py_IS_TYPE(a->result, st->filewrapper_type) ||
        aw_response_headers_sent(aw_conn_resp(c)))
        return 0;
    int fd = aw_filewrapper_sendfile_fd(a->result, st, &a->file_off, &a->file_len);
    if (fd > 0)
        a->file_fd = fd;
    return fd < 0 ? -1 : 0;
}

/* The environ of the request, with its wsgi.input. Returns 0, or -1 with an exception set. */
static int make_environ(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_server_t *s = aw_conn_server(c);
    aw_environ_src_t src;
    aw_conn_environ_src(c, &src);
    if (!(a->environ = aw_environ_build(&src)))
        return -1;
    return aw_input_attach(s->st, a->environ, aw_conn_body(c), c, s->sentinel, &a->input);
}

/* Call the app. Returns 0, or -1 with *failed set to what the pump must return. */
static int call_app(aw_conn_t *c, aw_pump_t *failed)
{
    aw_app_t *a = aw_conn_app(c);
    aw_server_t *s = aw_conn_server(c);
    a->called = 1;
    if (make_environ(c) < 0)
        return (*failed = app_failed(c, "cannot make the environ")), -1;
    if (!a->start_response && !(a->start_response = make_start_response(c)))
        return (*failed = app_failed(c, "cannot create start_response")), -1;
    PyObject *args[2] = {a->environ, a->start_response};
    aw_conn_heartbeat(c, 1);
    PyObject *result = PyObject_Vectorcall(s->app, args, 2, NULL);
    aw_conn_heartbeat(c, 0);
    if (!result)
        return (*failed = app_failed(c, "exception in the WSGI app")), -1;
    a->result = result;
    a->seq_idx = 0;
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return 0;
    if (take_file(c) < 0)
        return (*failed = app_failed(c, "error in wsgi.file_wrapper")), -1;
    if (a->file_fd < 0 && !(a->iter = PyObject_GetIter(result)))
        return (*failed = app_failed(c, "the WSGI app did not return an iterable")), -1;
    return 0;
}

/* ---- the pump ---------------------------------------------------------------------------- */

/* The response of a file sent with sendfile(2): headers with the file's length, then the file
 * (output.c sends it once the headers are out). */
static aw_pump_t pump_file(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_resp_t *r = aw_conn_resp(c);
    if (queue_headers(c, a->file_len) < 0)
        return app_failed(c, "invalid response headers");
    long long len = aw_response_file_length(r, &aw_conn_server(c)->log, a->file_len);
    aw_out_file(aw_conn_out(c), a->file_fd, a->file_off, len);
    return AW_PUMP_DONE;
}

/* SPEC 4: a one-item list or tuple gets a computed Content-Length; longer ones are streamed
 * like any iterable. */
static long long sequence_length(PyObject *seq)
{
    if (PySequence_Fast_GET_SIZE(seq) != 1)
        return -1;
    PyObject *item = PySequence_Fast_GET_ITEM(seq, 0); // borrowed
    return PyBytes_Check(item) ? PyBytes_GET_SIZE(item) : -1;
}

/* The next item of the response (a new reference), or NULL at the end or on an error. */
static PyObject *next_item(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    if (!a->iter) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(a->result);
        return a->seq_idx < n ? Py_NewRef(PySequence_Fast_GET_ITEM(a->result, a->seq_idx++))
                              : NULL;
    }
    aw_conn_heartbeat(c, 1);
    PyObject *item = PyIter_Next(a->iter);
    aw_conn_heartbeat(c, 0);
    return item;
}

static aw_pump_t invalid(aw_conn_t *c, const char *msg)
{
    PyErr_SetString(PyExc_RuntimeError, msg);
    return app_failed(c, "invalid WSGI response");
}

/* The iterable is exhausted: headers if none went out yet (an empty body), then the end. */
static aw_pump_t finish_body(aw_conn_t *c)
{
    aw_resp_t *r = aw_conn_resp(c);
    if (!aw_response_headers_sent(r)) {
        if (!aw_conn_app(c)->status)
            return invalid(c, "the app returned without calling start_response");
        if (queue_headers(c, (long long)aw_response_body_bytes(r)) < 0)
            return app_failed(c, "invalid response headers");
    }
    if (aw_response_end(r, aw_conn_out(c), &aw_conn_server(c)->log) < 0)
        return AW_PUMP_ABORT;
    return AW_PUMP_DONE;
}

/* The app yielded the sentinel (SPEC 5). Returns AW_PUMP_WAIT_IN when it must wait for body
 * data, AW_PUMP_FLUSH (meaning: pull again) when nothing more will arrive, within reason. */
static aw_pump_t on_sentinel(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_body_t *b = aw_conn_body(c);
    if (aw_body_streaming(b) && !aw_body_complete(b) && !aw_body_error(b)) {
        a->sentinel_spins = 0; /* suspended until more body, its end or an error arrives */
        return AW_PUMP_WAIT_IN;
    }
    if (++a->sentinel_spins > AW_SENTINEL_SPINS)
        return invalid(c, "the app keeps yielding the would-block sentinel after the request "
                          "body has ended");
    return AW_PUMP_FLUSH;
}

/* Queue one body item. Returns AW_PUMP_FLUSH when it is queued, or a failure's outcome. */
static aw_pump_t queue_item(aw_conn_t *c, PyObject *item, long long known)
{
    aw_resp_t *r = aw_conn_resp(c);
    if (!PyBytes_Check(item)) {
        PyErr_Format(PyExc_TypeError, "response items must be bytes, not %.100s",
                     Py_TYPE(item)->tp_name);
        return app_failed(c, "invalid WSGI response");
    }
    Py_ssize_t len = PyBytes_GET_SIZE(item);
    if (len == 0) /* PEP 3333: the headers wait for the first non-empty item */
        return AW_PUMP_FLUSH;
    if (!aw_response_headers_sent(r)) {
        if (!aw_conn_app(c)->status)
            return invalid(c, "the app yielded body bytes before calling start_response");
        if (queue_headers(c, known) < 0)
            return app_failed(c, "invalid response headers");
    }
    if (aw_response_body(r, aw_conn_out(c), &aw_conn_server(c)->log, item,
                         PyBytes_AS_STRING(item), (size_t)len) < 0)
        return app_failed(c, "cannot queue the response");
    return AW_PUMP_FLUSH;
}

/* Call the app if it has not been, then pull items while the send queue has room. An item
 * of an iterator is sent before the next is pulled (AW_PUMP_FLUSH): a generator streams. */
aw_pump_t aw_wsgi_pump(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_server_t *s = aw_conn_server(c);
    aw_pump_t outcome;
    if (!a->called && call_app(c, &outcome) < 0)
        return outcome;
    if (a->file_fd >= 0)
        return pump_file(c);
    long long known = !a->iter && !aw_response_headers_sent(aw_conn_resp(c))
                          ? sequence_length(a->result)
                          : -1;
    for (;;) {
        if (aw_out_full(aw_conn_out(c)))
            return AW_PUMP_WAIT_OUT;
        PyObject *item = next_item(c);
        if (!item)
            return PyErr_Occurred()
                       ? app_failed(c, "exception in the WSGI app's response iterable")
                       : finish_body(c);
        if (item == s->sentinel && s->stream_input)
            outcome = on_sentinel(c);
        else
            outcome = (a->sentinel_spins = 0, queue_item(c, item, known));
        Py_DECREF(item);
        if (outcome != AW_PUMP_FLUSH)
            return outcome;
        if (a->iter && aw_out_pending(aw_conn_out(c)))
            return AW_PUMP_FLUSH;
    }
}

/* ---- the end of a response --------------------------------------------------------------- */

static void call_close(aw_conn_t *c, PyObject *result)
{
    aw_server_t *s = aw_conn_server(c);
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return;
    PyObject *close = PyObject_GetAttr(result, s->st->s_close);
    if (!close) {
        PyErr_Clear();
        return;
    }
    aw_conn_heartbeat(c, 1);
    PyObject *r = PyObject_CallNoArgs(close);
    aw_conn_heartbeat(c, 0);
    Py_DECREF(close);
    if (r)
        Py_DECREF(r);
    else if (PyErr_ExceptionMatches(PyExc_Exception))
        aw_log_exception(&s->log, "exception in the response iterable's close()");
    else
        PyErr_Clear();
}

/* Call the iterable's close() exactly once (PEP 3333), in every outcome; a file still being
 * sent is closed once it is out (aw_wsgi_file_sent). */
void aw_wsgi_finish(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    PyObject *result = a->result;
    if (!result)
        return;
    a->result = NULL;
    Py_CLEAR(a->iter);
    if (a->file_fd >= 0 && aw_out_pending(aw_conn_out(c))) {
        a->file = result;
        return;
    }
    a->file_fd = -1;
    call_close(c, result);
    Py_DECREF(result);
}

/* The file of a sendfile response is out (or the connection is going): close its wrapper. The
 * loop of a thread pool has no GIL: a thread of the pool closes it then. */
void aw_wsgi_file_sent(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    PyObject *file = a->file;
    if (!file)
        return;
    a->file = NULL;
    a->file_fd = -1;
    if (!aw_threads_gil_held()) {
        aw_server_defer(aw_conn_server(c), file, AW_DEFER_CLOSE);
        return;
    }
    call_close(c, file);
    Py_DECREF(file);
}

/* Whether the connection still holds Python objects of its requests. */
int aw_wsgi_holds_objects(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    return a->environ || a->input || a->result || a->iter || a->start_response ||
           a->write_cb || a->status || a->headers || a->file;
}

/* The request is over: forget it, ready for the next one on this connection. */
void aw_wsgi_reset(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_input_done(aw_conn_server(c)->st, a->input, aw_conn_body(c));
    Py_CLEAR(a->input);
    Py_CLEAR(a->environ);
    Py_CLEAR(a->status);
    Py_CLEAR(a->headers);
    a->called = 0;
    a->sentinel_spins = 0;
    if (!a->file)
        a->file_fd = -1;
}

/* The connection is going away: close() what is open, and its start_response must not reach
 * it any more. */
void aw_wsgi_detach(aw_conn_t *c)
{
    aw_app_t *a = aw_conn_app(c);
    aw_wsgi_finish(c); /* conn.c cleared the send queue first: nothing waits to be sent */
    aw_wsgi_file_sent(c);
    aw_wsgi_reset(c);
    if (a->start_response)
        ((aw_sr_t *)a->start_response)->conn = NULL;
    Py_CLEAR(a->start_response);
    Py_CLEAR(a->write_cb);
}

/* One access-log line for this request: finished, refused by the server (src gives what is
 * known of it then), or cut. */
void aw_wsgi_access_log(aw_conn_t *c, const aw_environ_src_t *src, double t_start)
{
    aw_log_t *log = &aw_conn_server(c)->log;
    aw_resp_t *r = aw_conn_resp(c);
    PyGILState_STATE g = PyGILState_Ensure(); /* the loop of a thread pool has no GIL */
    PyObject *environ = aw_conn_app(c)->environ;
    PyObject *minimal = environ ? NULL : aw_environ_minimal(src);
    if (environ || minimal)
        aw_log_access(log, environ ? environ : minimal, aw_response_status(r),
                      aw_response_body_bytes(r), t_start ? aw_log_clock() - t_start : 0.0);
    else
        aw_log_exception(log, "exception in the access log");
    Py_XDECREF(minimal);
    PyGILState_Release(g);
}
