/* input.c: request bodies and wsgi.input.
 *
 * Owns: buffered body storage (a preallocated bytes object for Content-Length bodies, a
 * growing buffer for chunked ones, an unlinked temporary file above the spool threshold),
 * and the Input type in its two modes: a complete body in memory, or a streamed body that
 * hands out what has arrived and the would-block sentinel when nothing has (SPEC 5).
 * Must not block: a streamed read with nothing buffered raises BlockingIOError.
 */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    aw_state_t *st;
    PyObject *buf;     /* memory mode: the whole body */
    Py_ssize_t pos;
    aw_conn_t *conn;   /* streaming mode: the connection, NULL once it is gone */
    int streaming;
    int gone_reason;   /* streaming, conn gone: 1 disconnected, 2 too large */
    PyObject *sentinel;
} aw_input_t;

/* ---- buffered bodies --------------------------------------------------------------------- */

static int make_spool(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
#ifdef O_TMPFILE
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    char path[4096];
    snprintf(path, sizeof(path), "%s/aiowsgi-body-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Store body bytes of a buffered request. Returns 0, or -1 with c->parse_error_status set. */
int aw_body_append(aw_conn_t *c, const char *data, size_t len)
{
    aw_server_t *s = c->srv;
    if (c->body_len + len > s->max_body_size) {
        c->parse_error_status = 413;
        return -1;
    }
    if (c->body_bytes) {
        memcpy(PyBytes_AS_STRING(c->body_bytes) + c->body_len, data, len);
    } else if (c->spool_fd >= 0) {
        if (write_all(c->spool_fd, data, len) < 0)
            goto io_error;
    } else if (c->cbody_len + len > s->spool_threshold) {
        if ((c->spool_fd = make_spool()) < 0 ||
            write_all(c->spool_fd, c->cbody, c->cbody_len) < 0 ||
            write_all(c->spool_fd, data, len) < 0)
            goto io_error;
        free(c->cbody);
        c->cbody = NULL;
        c->cbody_len = c->cbody_cap = 0;
    } else {
        if (c->cbody_len + len > c->cbody_cap) {
            size_t cap = c->cbody_cap ? c->cbody_cap : 4096;
            while (cap < c->cbody_len + len)
                cap *= 2;
            char *nb = realloc(c->cbody, cap);
            if (!nb) {
                c->parse_error_status = 500;
                return -1;
            }
            c->cbody = nb;
            c->cbody_cap = cap;
        }
        memcpy(c->cbody + c->cbody_len, data, len);
        c->cbody_len += len;
    }
    c->body_len += len;
    return 0;
io_error:
    aw_log_message(s, 40, "cannot spool a request body to a temporary file: %s",
                   strerror(errno));
    c->parse_error_status = 500;
    return -1;
}

/* Head complete, buffered mode: prepare storage for a body of known length. */
static int body_prepare(aw_conn_t *c, unsigned long long length)
{
    if (length > c->srv->spool_threshold) {
        c->spool_fd = make_spool();
        if (c->spool_fd < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 0;
    }
    c->body_bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    return c->body_bytes ? 0 : -1;
}

/* Body complete: make wsgi.input and put it (and CONTENT_LENGTH for chunked) in environ. */
int aw_body_finish(aw_conn_t *c)
{
    aw_state_t *st = c->srv->st;
    PyObject *input = NULL;
    if (c->spool_fd >= 0) {
        if (lseek(c->spool_fd, 0, SEEK_SET) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        input = PyObject_CallFunction(st->io_open, "isi", c->spool_fd, "rb", -1);
        if (!input)
            return -1;
        c->spool_fd = -1; /* the file object owns it now */
    } else if (c->body_bytes) {
        input = aw_input_new_bytes(st, c->body_bytes);
        Py_CLEAR(c->body_bytes);
    } else if (c->cbody_len) {
        PyObject *b = PyBytes_FromStringAndSize(c->cbody, (Py_ssize_t)c->cbody_len);
        input = b ? aw_input_new_bytes(st, b) : NULL;
        Py_XDECREF(b);
        free(c->cbody);
        c->cbody = NULL;
        c->cbody_len = c->cbody_cap = 0;
    }
    /* with no body, the environ template already holds the shared empty input */
    if (input) {
        Py_XSETREF(c->input, input);
        if (PyDict_SetItem(c->environ, st->k_wsgi_input, input) < 0)
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    if (c->chunked_in) {
        PyObject *cl = PyUnicode_FromFormat("%llu", c->body_len);
        int r = cl ? PyDict_SetItem(c->environ, st->k_CONTENT_LENGTH, cl) : -1;
        Py_XDECREF(cl);
        if (r < 0)
            return -1;
    }
    return 0;
}

void aw_body_clear(aw_conn_t *c)
{
    Py_CLEAR(c->body_bytes);
    free(c->cbody);
    c->cbody = NULL;
    c->cbody_len = c->cbody_cap = 0;
    if (c->spool_fd >= 0) {
        close(c->spool_fd);
        c->spool_fd = -1;
    }
    c->body_len = 0;
    Py_CLEAR(c->stream_chunks);
    c->stream_head = 0;
    c->stream_off = 0;
    c->stream_bytes = 0;
}

int aw_body_begin(aw_conn_t *c)
{
    if (c->streaming)
        return 0;
    if (!c->chunked_in && c->parser.content_length > 0)
        return body_prepare(c, c->parser.content_length);
    return 0;
}

/* ---- streamed bodies --------------------------------------------------------------------- */

int aw_stream_feed(aw_conn_t *c, const char *data, size_t len)
{
    if (c->body_len + len > c->srv->max_body_size) {
        c->parse_error_status = 413;
        return -1;
    }
    if (!c->stream_chunks && !(c->stream_chunks = PyList_New(0)))
        goto error;
    PyObject *b = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    if (!b)
        goto error;
    int r = PyList_Append(c->stream_chunks, b);
    Py_DECREF(b);
    if (r < 0)
        goto error;
    c->stream_bytes += len;
    c->body_len += len;
    return 0;
error:
    PyErr_Clear();
    c->parse_error_status = 500;
    return -1;
}

/* ---- the Input type ---------------------------------------------------------------------- */

PyObject *aw_input_new_bytes(aw_state_t *st, PyObject *bytes)
{
    aw_input_t *in = PyObject_GC_New(aw_input_t, st->input_type);
    if (!in)
        return NULL;
    in->st = st;
    in->buf = Py_NewRef(bytes);
    in->pos = 0;
    in->conn = NULL;
    in->streaming = 0;
    in->gone_reason = 0;
    in->sentinel = NULL;
    PyObject_GC_Track(in);
    return (PyObject *)in;
}

PyObject *aw_input_new_stream(aw_state_t *st, aw_conn_t *c)
{
    aw_input_t *in = PyObject_GC_New(aw_input_t, st->input_type);
    if (!in)
        return NULL;
    in->st = st;
    in->buf = NULL;
    in->pos = 0;
    in->conn = c;
    in->streaming = 1;
    in->gone_reason = 0;
    in->sentinel = Py_NewRef(c->srv->sentinel);
    PyObject_GC_Track(in);
    return (PyObject *)in;
}

/* The connection is going away: the input must not touch it any more. */
void aw_input_detach(aw_state_t *st, PyObject *obj)
{
    /* a spooled body is a plain file object: nothing of ours to detach */
    if (!obj || !Py_IS_TYPE(obj, st->input_type))
        return;
    aw_input_t *in = (aw_input_t *)obj;
    if (!in->streaming || !in->conn)
        return;
    aw_conn_t *c = in->conn;
    in->gone_reason = c->input_error ? c->input_error : (c->input_eof ? 0 : 1);
    in->conn = NULL;
}

/* Streaming: raise the error the body ended with, if any. Returns -1 with it set. */
static int stream_error(aw_input_t *in)
{
    aw_conn_t *c = in->conn;
    int reason = c ? (c->input_error ? c->input_error : 0) : in->gone_reason;
    if (reason == 2)
        PyErr_SetString(in->st->RequestTooLarge, "request body exceeds max_body_size");
    else if (reason == 3)
        PyErr_SetString(in->st->ClientDisconnected, "malformed request body");
    else if (reason == 1)
        PyErr_SetString(in->st->ClientDisconnected, "client disconnected mid-body");
    else
        return 0;
    return -1;
}

/* The app reads for the first time: answer Expect: 100-continue now (SPEC 5). */
static void stream_touch(aw_conn_t *c)
{
    if (c->expect_continue && !c->continue_sent) {
        c->continue_sent = 1;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        aw_out_copy(c, cont, sizeof(cont) - 1);
        aw_out_flush(c);
    }
}

/* Take up to n bytes (n < 0: all buffered), up to and including a newline if line. */
static PyObject *stream_take(aw_input_t *in, Py_ssize_t n, int line)
{
    aw_conn_t *c = in->conn;
    PyObject *parts = NULL, *result = NULL;
    if (!c) {
        if (stream_error(in) < 0)
            return NULL;
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    stream_touch(c);
    if (c->stream_bytes == 0) {
        if (stream_error(in) < 0)
            return NULL;
        if (c->input_eof)
            return PyBytes_FromStringAndSize(NULL, 0);
        PyErr_SetString(PyExc_BlockingIOError, "no request body data is buffered yet");
        return NULL;
    }
    if (!(parts = PyList_New(0)))
        return NULL;
    size_t want = n < 0 ? c->stream_bytes : (size_t)n;
    size_t got = 0;
    int done = 0;
    while (got < want && !done && c->stream_head < PyList_GET_SIZE(c->stream_chunks)) {
        PyObject *chunk = PyList_GET_ITEM(c->stream_chunks, c->stream_head); // borrowed
        const char *p = PyBytes_AS_STRING(chunk) + c->stream_off;
        size_t avail = (size_t)PyBytes_GET_SIZE(chunk) - c->stream_off;
        size_t take = avail < want - got ? avail : want - got;
        if (line) {
            const char *nl = memchr(p, '\n', take);
            if (nl) {
                take = (size_t)(nl - p) + 1;
                done = 1;
            }
        }
        PyObject *piece = PyBytes_FromStringAndSize(p, (Py_ssize_t)take);
        if (!piece || PyList_Append(parts, piece) < 0) {
            Py_XDECREF(piece);
            goto error;
        }
        Py_DECREF(piece);
        got += take;
        c->stream_off += take;
        c->stream_bytes -= take;
        if (c->stream_off == (size_t)PyBytes_GET_SIZE(chunk)) {
            c->stream_head++;
            c->stream_off = 0;
        }
    }
    if (c->stream_head == PyList_GET_SIZE(c->stream_chunks)) {
        if (PyList_SetSlice(c->stream_chunks, 0, c->stream_head, NULL) < 0)
            goto error;
        c->stream_head = 0;
    }
    aw_conn_update(c); /* consumption may let the connection read again */
    if (PyList_GET_SIZE(parts) == 1) {
        result = Py_NewRef(PyList_GET_ITEM(parts, 0));
    } else if ((result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)got))) {
        char *out = PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
            PyObject *piece = PyList_GET_ITEM(parts, i); // borrowed
            memcpy(out, PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece));
            out += PyBytes_GET_SIZE(piece);
        }
    }
error:
    Py_XDECREF(parts);
    return result;
}

static PyObject *mem_take(aw_input_t *in, Py_ssize_t n, int line)
{
    Py_ssize_t size = PyBytes_GET_SIZE(in->buf);
    Py_ssize_t avail = size - in->pos;
    if (n < 0 || n > avail)
        n = avail;
    const char *p = PyBytes_AS_STRING(in->buf) + in->pos;
    if (line) {
        const char *nl = memchr(p, '\n', (size_t)n);
        if (nl)
            n = nl - p + 1;
    }
    if (in->pos == 0 && n == size)
        return (in->pos = size, Py_NewRef(in->buf));
    in->pos += n;
    return PyBytes_FromStringAndSize(p, n);
}

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
    if (size_arg(args, nargs, &n) < 0)
        return NULL;
    return in->streaming ? stream_take(in, n, 0) : mem_take(in, n, 0);
}

static PyObject *Input_readline(aw_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    if (size_arg(args, nargs, &n) < 0)
        return NULL;
    return in->streaming ? stream_take(in, n, 1) : mem_take(in, n, 1);
}

static PyObject *Input_readlines(aw_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (size_arg(args, nargs, &hint) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines) {
        PyObject *line = in->streaming ? stream_take(in, -1, 1) : mem_take(in, -1, 1);
        if (!line) {
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
    aw_conn_t *c = in->conn;
    if (c && c->stream_bytes == 0 && !c->input_eof && !c->input_error) {
        stream_touch(c);
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
        return PyLong_FromUnsignedLongLong(in->conn ? in->conn->body_len - in->conn->stream_bytes
                                                    : 0);
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
    Py_ssize_t size = PyBytes_GET_SIZE(in->buf);
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
    Py_VISIT(in->buf);
    Py_VISIT(in->sentinel);
    return 0;
}

static int Input_clear(aw_input_t *in)
{
    Py_CLEAR(in->buf);
    Py_CLEAR(in->sentinel);
    return 0;
}

static void Input_dealloc(aw_input_t *in)
{
    PyTypeObject *tp = Py_TYPE(in);
    PyObject_GC_UnTrack(in);
    Input_clear(in);
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
