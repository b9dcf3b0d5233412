/* wsgi.c: calling the app (PEP 3333).
 *
 * Owns: the start_response type and its write(), the exc_info rules, the app call, pulling
 * the response iterable while the send queue has room (the pump: it suspends on a full queue
 * or, for streaming input, on the would-block sentinel, and is resumed by conn.c), and the
 * exactly-once close() of the iterable. Must not format bytes: response.c does.
 */
#include "core.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    aw_conn_t *conn; /* NULL once the connection is gone */
} aw_sr_t;

/* ---- start_response ---------------------------------------------------------------------- */

static PyObject *sr_start(aw_sr_t *self, PyObject *status, PyObject *headers,
                          PyObject *exc_info)
{
    aw_conn_t *c = self->conn;
    if (!c || c->state != AW_ST_APP) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called outside of a request");
        return NULL;
    }
    if (!Py_IsNone(exc_info)) {
        if (c->headers_sent) {
            /* PEP 3333: too late to change the response; re-raise the app's error */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO:exc_info", &t, &v, &tb))
                return NULL;
            PyErr_Restore(Py_NewRef(t), Py_NewRef(v), Py_NewRef(tb));
            return NULL;
        }
    } else if (c->status) {
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
    Py_XSETREF(c->status, Py_NewRef(status));
    Py_XSETREF(c->headers, Py_NewRef(headers));
    if (!c->write_cb) {
        c->write_cb = PyObject_GetAttr((PyObject *)self, c->srv->st->s_write);
        if (!c->write_cb)
            return NULL;
    }
    return Py_NewRef(c->write_cb);
}

/* PEP 3333's write(): the bytes are queued and pushed out as far as the socket takes them. */
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

static PyObject *sr_write(aw_sr_t *self, PyObject *data)
{
    aw_conn_t *c = self->conn;
    if (!c || c->state != AW_ST_APP || !c->status) {
        PyErr_SetString(PyExc_RuntimeError, "write() called outside of a started response");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    if (len > 0 && !c->headers_sent && aw_response_headers(c, -1) < 0)
        return NULL;
    if (aw_response_body(c, data, PyBytes_AS_STRING(data), (size_t)len) < 0)
        return NULL;
    if (aw_out_flush(c) < 0) {
        c->peer_gone = 1;
        PyErr_SetString(c->srv->st->ClientDisconnected, "the client has gone away");
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

/* ---- the app call and the pump ----------------------------------------------------------- */

/* The app failed (exception set). Before any header went out: log, answer 500. After: log
 * and cut the connection. BaseExceptions that are not Exceptions (KeyboardInterrupt,
 * SystemExit) stop the server: they are kept for run() to re-raise. */
static aw_pump_t app_failed(aw_conn_t *c, const char *what)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        if (v && tb)
            PyException_SetTraceback(v, tb);
        Py_XSETREF(c->srv->fatal, v);
        Py_XDECREF(t);
        Py_XDECREF(tb);
        return AW_PUMP_ABORT;
    }
    if (c->input_error && (PyErr_ExceptionMatches(c->srv->st->RequestTooLarge) ||
                           PyErr_ExceptionMatches(c->srv->st->ClientDisconnected))) {
        /* The streamed body failed and the app let the error propagate (SPEC 5): too large
         * is a 413, malformed a 400, lingering so the client reads it rather than a reset;
         * a client that has gone needs no answer and its departure no traceback. */
        int status = c->input_error == 2 ? 413 : (c->input_error == 3 ? 400 : 0);
        PyErr_Clear();
        aw_wsgi_finish(c);
        if (!status || c->headers_sent)
            return AW_PUMP_ABORT;
        c->linger = 1;
        return aw_response_error(c, status) < 0 ? AW_PUMP_ABORT : AW_PUMP_DONE;
    }
    aw_log_exception(c->srv, what);
    aw_wsgi_finish(c);
    if (c->headers_sent)
        return AW_PUMP_ABORT;
    if (aw_response_error(c, 500) < 0)
        return AW_PUMP_ABORT;
    return AW_PUMP_DONE;
}

static PyObject *make_start_response(aw_conn_t *c)
{
    aw_sr_t *sr = PyObject_New(aw_sr_t, c->srv->st->start_response_type);
    if (sr) {
        sr->vectorcall = sr_vectorcall;
        sr->conn = c;
    }
    return (PyObject *)sr;
}

/* SPEC 4: a one-item list or tuple gets a computed Content-Length; longer ones are
 * streamed like any iterable. */
static long long sequence_length(PyObject *seq)
{
    if (PySequence_Fast_GET_SIZE(seq) != 1)
        return -1;
    PyObject *item = PySequence_Fast_GET_ITEM(seq, 0); // borrowed
    return PyBytes_Check(item) ? PyBytes_GET_SIZE(item) : -1;
}

aw_pump_t aw_wsgi_start(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (!c->start_response && !(c->start_response = make_start_response(c)))
        return app_failed(c, "cannot create start_response");
    PyObject *args[2] = {c->environ, c->start_response};
    aw_heartbeat(s, 1);
    c->in_app = 1;
    PyObject *result = PyObject_Vectorcall(s->app, args, 2, NULL);
    c->in_app = 0;
    aw_heartbeat(s, 0);
    if (!result)
        return app_failed(c, "exception in the WSGI app");
    c->result = result;
    c->seq_idx = 0;
    if (!PyList_CheckExact(result) && !PyTuple_CheckExact(result)) {
        /* sendfile only when the whole body is the file: after write() the headers (and
         * their framing) are already out */
        if (Py_IS_TYPE(result, s->st->filewrapper_type) && !c->headers_sent) {
            long long off, size;
            int r = aw_filewrapper_sendfile_fd(result, s->st, &off, &size);
            if (r < 0)
                return app_failed(c, "error in wsgi.file_wrapper");
            if (r > 0) {
                c->sf_fd = r;
                c->sf_off = off;
                c->sf_left = size;
            }
        }
        if (c->sf_fd < 0 && !(c->iter = PyObject_GetIter(result)))
            return app_failed(c, "the WSGI app did not return an iterable");
    }
    return aw_wsgi_pump(c);
}

/* The response of a file sent with sendfile(2): headers with the length, then the file. */
static aw_pump_t pump_file(aw_conn_t *c)
{
    if (!c->headers_sent && aw_response_headers(c, c->sf_left) < 0)
        return app_failed(c, "invalid response headers");
    long long want = c->resp_cl >= 0 ? c->resp_cl : c->sf_left;
    if (c->no_body)
        want = 0;
    if (want < c->sf_left)
        c->sf_left = want; /* stop at the response's Content-Length */
    else if (want > c->sf_left) {
        aw_log_message(c->srv, 40,
                       "file is shorter (%lld bytes) than its Content-Length (%lld); "
                       "connection cut after it",
                       c->sf_left, want);
        c->close_after = 1; /* cut once the file is out: the client sees it is short */
    }
    c->body_sent = (unsigned long long)c->sf_left;
    return AW_PUMP_DONE;
}

/* Pull items while the send queue has room. */
aw_pump_t aw_wsgi_pump(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    long long known = -1;
    if (c->sf_fd >= 0)
        return pump_file(c);
    if (!c->iter && !c->headers_sent)
        known = sequence_length(c->result);
    for (;;) {
        if (aw_out_full(c)) {
            int r = aw_out_flush(c);
            if (r < 0) {
                c->peer_gone = 1;
                return AW_PUMP_ABORT;
            }
            if (aw_out_full(c))
                return AW_PUMP_WAIT_OUT;
        }
        PyObject *item;
        if (!c->iter) {
            Py_ssize_t n = PySequence_Fast_GET_SIZE(c->result);
            item = c->seq_idx < n ? Py_NewRef(PySequence_Fast_GET_ITEM(c->result, c->seq_idx++))
                                  : NULL;
        } else {
            aw_heartbeat(s, 1);
            c->in_app = 1;
            item = PyIter_Next(c->iter);
            c->in_app = 0;
            aw_heartbeat(s, 0);
            if (!item && PyErr_Occurred())
                return app_failed(c, "exception in the WSGI app's response iterable");
        }
        if (!item) {
            if (!c->headers_sent) {
                if (!c->status) {
                    PyErr_SetString(PyExc_RuntimeError,
                                    "the app returned without calling start_response");
                    return app_failed(c, "invalid WSGI response");
                }
                if (aw_response_headers(c, (long long)c->body_sent) < 0)
                    return app_failed(c, "invalid response headers");
            }
            return aw_response_end(c) < 0 ? AW_PUMP_ABORT : AW_PUMP_DONE;
        }
        if (item == s->sentinel && s->stream_input) {
            Py_DECREF(item);
            /* SPEC 5: suspended until more body, its end or an error arrives; never
             * resumed in a loop on data the app has already been offered */
            if (c->streaming && !c->input_eof && !c->input_error) {
                c->sentinel_spins = 0;
                return AW_PUMP_WAIT_IN;
            }
            /* nothing more will arrive: the app is called again, within reason */
            if (++c->sentinel_spins > AW_SENTINEL_SPINS) {
                PyErr_SetString(PyExc_RuntimeError,
                                "the app keeps yielding the would-block sentinel after the "
                                "request body has ended");
                return app_failed(c, "invalid WSGI response");
            }
            continue;
        }
        c->sentinel_spins = 0;
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "response items must be bytes, not %.100s",
                         Py_TYPE(item)->tp_name);
            Py_DECREF(item);
            return app_failed(c, "invalid WSGI response");
        }
        Py_ssize_t len = PyBytes_GET_SIZE(item);
        if (!c->headers_sent) {
            if (len == 0) { /* PEP 3333: headers wait for the first non-empty item */
                Py_DECREF(item);
                continue;
            }
            if (!c->status) {
                Py_DECREF(item);
                PyErr_SetString(PyExc_RuntimeError,
                                "the app yielded body bytes before calling start_response");
                return app_failed(c, "invalid WSGI response");
            }
            if (aw_response_headers(c, known) < 0) {
                Py_DECREF(item);
                return app_failed(c, "invalid response headers");
            }
        }
        int r = aw_response_body(c, item, PyBytes_AS_STRING(item), (size_t)len);
        Py_DECREF(item);
        if (r < 0)
            return app_failed(c, "cannot queue the response");
        if (c->iter && aw_out_flush(c) < 0) {
            /* a generator streams: each item leaves now, not when the queue fills */
            c->peer_gone = 1;
            return AW_PUMP_ABORT;
        }
    }
}

/* The connection is going away: its start_response must not reach it any more. */
void aw_wsgi_detach(aw_conn_t *c)
{
    if (c->start_response)
        ((aw_sr_t *)c->start_response)->conn = NULL;
    Py_CLEAR(c->start_response);
    Py_CLEAR(c->write_cb);
}

/* A file response is complete once sendfile has sent it: until then its wrapper stays open
 * (held in sf_obj), then it is closed like any iterable. */
void aw_wsgi_file_done(aw_conn_t *c)
{
    if (!c->sf_obj)
        return;
    Py_XSETREF(c->result, c->sf_obj);
    c->sf_obj = NULL;
    c->sf_fd = -1;
    c->sf_left = 0;
    aw_wsgi_finish(c);
}

/* Call the iterable's close() exactly once (PEP 3333), in every outcome. */
void aw_wsgi_finish(aw_conn_t *c)
{
    PyObject *result = c->result;
    if (!result)
        return;
    if (c->sf_fd >= 0 && !c->sf_obj && c->sf_left > 0 && !c->closing) {
        /* the file is still being sent: close it when it is out (aw_wsgi_file_done) */
        c->sf_obj = result;
        c->result = NULL;
        Py_CLEAR(c->iter);
        return;
    }
    c->sf_fd = -1;
    c->sf_left = 0;
    c->result = NULL;
    Py_CLEAR(c->iter);
    if (!PyList_CheckExact(result) && !PyTuple_CheckExact(result)) {
        PyObject *close = PyObject_GetAttr(result, c->srv->st->s_close);
        if (close) {
            aw_heartbeat(c->srv, 1);
            PyObject *r = PyObject_CallNoArgs(close);
            aw_heartbeat(c->srv, 0);
            Py_DECREF(close);
            if (r)
                Py_DECREF(r);
            else if (PyErr_ExceptionMatches(PyExc_Exception))
                aw_log_exception(c->srv, "exception in the response iterable's close()");
            else
                PyErr_Clear();
        } else {
            PyErr_Clear();
        }
    }
    Py_DECREF(result);
}
