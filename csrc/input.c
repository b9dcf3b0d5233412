/* input.c: wsgi.input.
 *
 * Owns: the Input type in its two modes (a complete body in memory, whose bytes it owns; a
 * streamed body read from the connection's aw_body_t as it arrives, with the would-block
 * sentinel when nothing has), making the wsgi.input of a request once it is dispatched, and
 * closing a spooled body's file when its request ends. Must not block (a streamed read with
 * nothing buffered raises BlockingIOError) nor write to the socket: a read tells the
 * connection (aw_conn_input_read), which answers Expect: 100-continue.
 */
#include "input.h"
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    aw_state_t *st;
    char *data;               /* memory mode: the whole body (ours) */
    Py_ssize_t len, pos;
    aw_conn_t *conn;          /* streaming mode: the connection, NULL once the request is over */
    aw_body_t *body;          /* ... and its body (inside it) */
    int streaming;
    aw_body_error_t gone;     /* streaming, request over: how the body ended */
    PyObject *sentinel;
} aw_input_t;

static aw_input_t *input_alloc(aw_state_t *st)
{
    aw_input_t *in = PyObject_GC_New(aw_input_t, st->input_type);
    if (!in)
        return NULL;
    in->st = st;
    in->data = NULL;
    in->len = in->pos = 0;
    in->conn = NULL;
    in->body = NULL;
    in->streaming = 0;
    in->gone = AW_BODY_OK;
    in->sentinel = NULL;
    PyObject_GC_Track(in);
    return in;
}

/* An Input over len bytes at data, which it takes (and frees); data may be NULL when len is 0.
 * On failure data is freed too. */
PyObject *aw_input_new_memory(aw_state_t *st, char *data, size_t len)
{
    aw_input_t *in = input_alloc(st);
    if (!in) {
        free(data);
        return NULL;
    }
    in->data = data;
    in->len = (Py_ssize_t)len;
    return (PyObject *)in;
}

static PyObject *input_new_stream(aw_state_t *st, aw_conn_t *c, aw_body_t *b, PyObject *sentinel)
{
    aw_input_t *in = input_alloc(st);
    if (in) {
        in->conn = c;
        in->body = b;
        in->streaming = 1;
        in->sentinel = Py_NewRef(sentinel);
    }
    return (PyObject *)in;
}

/* A file object over the spooled body, read from its start. */
static PyObject *spooled_file(aw_state_t *st, aw_body_t *b)
{
    int r = aw_body_rewind(b);
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int fd = aw_body_release_spool(b);
    PyObject *f = PyObject_CallFunction(st->io_open, "isi", fd, "rb", -1);
    if (!f)
        close(fd);
    return f;
}

/* The request's wsgi.input: streamed, or its complete buffered body. *input is NULL when the
 * template's empty input stays (no body). */
static PyObject *make_input(aw_state_t *st, aw_body_t *b, aw_conn_t *conn, PyObject *sentinel)
{
    if (aw_body_streaming(b))
        return aw_body_complete(b) && aw_body_received(b) == 0 && !aw_body_chunked(b)
                   ? NULL
                   : input_new_stream(st, conn, b, sentinel);
    if (aw_body_spooled(b))
        return spooled_file(st, b);
    size_t len;
    char *mem = aw_body_release_mem(b, &len);
    if (!mem && !aw_body_chunked(b))
        return NULL;
    return aw_input_new_memory(st, mem, len);
}

/* The request is dispatched: its wsgi.input (and, for a complete chunked body, its
 * CONTENT_LENGTH) go into environ. Returns 0 with *input a new reference (or NULL: the
 * template's empty input stays), or -1 with an exception set. */
int aw_input_attach(aw_state_t *st, PyObject *environ, aw_body_t *b, aw_conn_t *conn,
                    PyObject *sentinel, PyObject **input)
{
    *input = make_input(st, b, conn, sentinel);
    if (!*input)
        return PyErr_Occurred() ? -1 : 0;
    if (PyDict_SetItem(environ, st->k_wsgi_input, *input) < 0)
        return -1;
    if (aw_body_streaming(b) || !aw_body_chunked(b))
        return 0;
    PyObject *cl = PyUnicode_FromFormat("%llu", aw_body_received(b));
    int r = cl ? PyDict_SetItem(environ, st->k_CONTENT_LENGTH, cl) : -1;
    Py_XDECREF(cl);
    return r;
}

/* The request is over: a streamed input is detached from the connection (keeping how its body
 * ended), a spooled body's file closed (the server's, even if the app kept a reference). */
void aw_input_done(aw_state_t *st, PyObject *input, const aw_body_t *b)
{
    if (!input)
        return;
    if (Py_IS_TYPE(input, st->input_type)) {
        aw_input_t *in = (aw_input_t *)input;
        if (in->streaming && in->body) {
            aw_body_error_t error = aw_body_error(b);
            in->gone = error ? error : (aw_body_complete(b) ? AW_BODY_OK : AW_BODY_GONE);
            in->conn = NULL;
            in->body = NULL;
        }
        return;
    }
    PyObject *r = PyObject_CallMethodNoArgs(input, st->s_close);
    if (!r)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* ---- reading a streamed body ------------------------------------------------------------- */

/* Raise the error the body ended with, if any. Returns -1 with it set, or 0. */
static int stream_error(aw_input_t *in)
{
    aw_body_error_t reason = in->body ? aw_body_error(in->body) : in->gone;
    if (reason == AW_BODY_TOO_LARGE)
        PyErr_SetString(in->st->RequestTooLarge, "request body exceeds max_body_size");
    else if (reason == AW_BODY_MALFORMED)
        PyErr_SetString(in->st->ClientDisconnected, "malformed request body");
    else if (reason == AW_BODY_GONE)
        PyErr_SetString(in->st->ClientDisconnected, "client disconnected mid-body");
    else
        return 0;
    return -1;
}

/* Take up to n bytes (n < 0: all buffered), up to and including a newline if line. */
static PyObject *stream_take(aw_input_t *in, Py_ssize_t n, int line)
{
    aw_body_t *b = in->body;
    if (!b) {
        if (stream_error(in) < 0)
            return NULL;
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    aw_conn_input_read(in->conn); /* the first read answers Expect: 100-continue */
    const char *data;
    size_t avail = aw_body_peek(b, &data);
    if (avail == 0) {
        if (stream_error(in) < 0)
            return NULL;
        if (aw_body_complete(b))
            return PyBytes_FromStringAndSize(NULL, 0);
        PyErr_SetString(PyExc_BlockingIOError, "no request body data is buffered yet");
        return NULL;
    }
    size_t take = n >= 0 && (size_t)n < avail ? (size_t)n : avail;
    const char *nl = line ? memchr(data, '\n', take) : NULL;
    if (nl)
        take = (size_t)(nl - data) + 1;
    PyObject *r = PyBytes_FromStringAndSize(data, (Py_ssize_t)take);
    if (r)
        aw_body_consume(b, take);
    return r;
}

static PyObject *mem_take(aw_input_t *in, Py_ssize_t n, int line)
{
    Py_ssize_t avail = in->len - in->pos;
    if (n < 0 || n > avail)
        n = avail;
    const char *p = in->data ? in->data + in->pos : "";
    const char *nl = line && n ? memchr(p, '\n', (size_t)n) : NULL;
    if (nl)
        n = nl - p + 1;
    in->pos += n;
    return PyBytes_FromStringAndSize(p, n);
}

static PyObject *take(aw_input_t *in, Py_ssize_t n, int line)
{
    return in->streaming ? stream_take(in, n, line) : mem_take(in, n, line);
}

/* ---- the Input type ---------------------------------------------------------------------- */

static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *n)
{
    *n = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument");
        return -1;
    }
    if (nargs == 1 && !Py_IsNone(args[0])) {
        *n = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
        if (*n == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *Input_read(aw_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    return size_arg(args, nargs, &n) < 0 ? NULL : take(in, n, 0);
}

static PyObject *Input_readline(aw_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    return size_arg(args, nargs, &n) < 0 ? NULL : take(in, n, 1);
}

static PyObject *Input_readlines(aw_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (size_arg(args, nargs, &hint) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines) {
        PyObject *line = take(in, -1, 1);
        if (!line) {
            /* streamed: lines already taken are the caller's, even if nothing more is ready */
            if (PyList_GET_SIZE(lines) > 0 && PyErr_ExceptionMatches(PyExc_BlockingIOError))
                PyErr_Clear();
            else
                Py_CLEAR(lines);
            break;
        }
        if (PyBytes_GET_SIZE(line) == 0) {
            Py_DECREF(line);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        int r = PyList_Append(lines, line);
        Py_DECREF(line);
        if (r < 0)
            Py_CLEAR(lines);
        else if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

/* Iteration: lines in memory mode (PEP 3333); in streaming mode, chunks as they arrived, the
 * sentinel when none is buffered yet (SPEC 5). */
static PyObject *Input_next(aw_input_t *in)
{
    if (!in->streaming) {
        PyObject *line = mem_take(in, -1, 1);
        if (line && PyBytes_GET_SIZE(line) == 0)
            Py_CLEAR(line); /* StopIteration */
        return line;
    }
    aw_body_t *b = in->body;
    if (b && !aw_body_ready(b)) {
        aw_conn_input_read(in->conn);
        return Py_NewRef(in->sentinel);
    }
    PyObject *chunk = stream_take(in, -1, 0);
    if (chunk && PyBytes_GET_SIZE(chunk) == 0)
        Py_CLEAR(chunk);
    return chunk;
}

static PyObject *Input_noop(aw_input_t *in, PyObject *Py_UNUSED(a))
{
    (void)in;
    Py_RETURN_NONE;
}

static PyObject *Input_true(aw_input_t *in, PyObject *Py_UNUSED(a))
{
    (void)in;
    Py_RETURN_TRUE;
}

static PyObject *Input_seekable(aw_input_t *in, PyObject *Py_UNUSED(a))
{
    return PyBool_FromLong(!in->streaming);
}

static PyObject *Input_tell(aw_input_t *in, PyObject *Py_UNUSED(a))
{
    if (in->streaming)
        return PyLong_FromUnsignedLongLong(
            in->body ? aw_body_received(in->body) - aw_body_buffered(in->body) : 0);
    return PyLong_FromSsize_t(in->pos);
}

static PyObject *Input_seek(aw_input_t *in, PyObject *args)
{
    Py_ssize_t off;
    int whence = 0;
    if (!PyArg_ParseTuple(args, "n|i:seek", &off, &whence))
        return NULL;
    if (in->streaming) {
        PyErr_SetString(PyExc_OSError, "a streamed request body is not seekable");
        return NULL;
    }
    Py_ssize_t size = in->len;
    Py_ssize_t base = whence == 0 ? 0 : (whence == 1 ? in->pos : size);
    if (whence < 0 || whence > 2 || base + off < 0) {
        PyErr_SetString(PyExc_ValueError, "invalid seek");
        return NULL;
    }
    in->pos = base + off > size ? size : base + off;
    return PyLong_FromSsize_t(in->pos);
}

static int Input_traverse(aw_input_t *in, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(in));
    Py_VISIT(in->sentinel);
    return 0;
}

static int Input_clear(aw_input_t *in)
{
    Py_CLEAR(in->sentinel);
    return 0;
}

static void Input_dealloc(aw_input_t *in)
{
    PyTypeObject *tp = Py_TYPE(in);
    PyObject_GC_UnTrack(in);
    Input_clear(in);
    free(in->data);
    tp->tp_free(in);
    Py_DECREF(tp);
}

static PyMethodDef Input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Input_read, METH_FASTCALL, "read(size=-1)"},
    {"readline", (PyCFunction)(void (*)(void))Input_readline, METH_FASTCALL,
     "readline(size=-1)"},
    {"readlines", (PyCFunction)(void (*)(void))Input_readlines, METH_FASTCALL,
     "readlines(hint=-1)"},
    {"close", (PyCFunction)Input_noop, METH_NOARGS, "Does nothing; the server owns the body."},
    {"readable", (PyCFunction)Input_true, METH_NOARGS, NULL},
    {"seekable", (PyCFunction)Input_seekable, METH_NOARGS, NULL},
    {"tell", (PyCFunction)Input_tell, METH_NOARGS, NULL},
    {"seek", (PyCFunction)Input_seek, METH_VARARGS, "seek(offset, whence=0), memory mode"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Input_slots[] = {
    {Py_tp_doc, "wsgi.input: a request body, complete in memory or streamed (SPEC 5)."},
    {Py_tp_dealloc, Input_dealloc},
    {Py_tp_traverse, Input_traverse},
    {Py_tp_clear, Input_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Input_next},
    {Py_tp_methods, Input_methods},
    {0, NULL},
};

PyType_Spec aw_input_spec = {
    .name = "aiowsgi._core.Input",
    .basicsize = sizeof(aw_input_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Input_slots,
};
