/* input.c: request bodies and wsgi.input.
 *
 * Owns: the body's storage in both modes (aw_body_t), the Input type (a complete body in
 * memory, or a streamed body that hands out what has arrived and the would-block sentinel),
 * and closing a spooled body's file when its request ends. Must not block (a streamed read
 * with nothing buffered raises BlockingIOError) nor write to the socket: a read tells the
 * connection (aw_conn_input_read), which answers Expect: 100-continue and reads again.
 */
#include "input.h"
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    aw_state_t *st;
    PyObject *buf;            /* memory mode: the whole body */
    Py_ssize_t pos;
    aw_conn_t *conn;          /* streaming mode: the connection, NULL once it is gone */
    aw_body_t *body;          /* ... and its body (inside it) */
    int streaming;
    aw_body_error_t gone;     /* streaming, connection gone: how the body ended */
    PyObject *sentinel;
} aw_input_t;

static PyObject *input_new(aw_state_t *st, PyObject *bytes, aw_conn_t *c, aw_body_t *b,
                           PyObject *sentinel)
{
    aw_input_t *in = PyObject_GC_New(aw_input_t, st->input_type);
    if (!in)
        return NULL;
    in->st = st;
    in->buf = bytes ? Py_NewRef(bytes) : NULL;
    in->pos = 0;
    in->conn = c;
    in->body = b;
    in->streaming = c != NULL;
    in->gone = AW_BODY_OK;
    in->sentinel = sentinel ? Py_NewRef(sentinel) : NULL;
    PyObject_GC_Track(in);
    return (PyObject *)in;
}

PyObject *aw_input_new_bytes(aw_state_t *st, PyObject *bytes)
{
    return input_new(st, bytes, NULL, NULL, NULL);
}

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

static int mem_append(aw_body_t *b, const char *data, size_t len)
{
    if (b->mem_len + len > b->mem_cap) {
        size_t cap = b->mem_cap ? b->mem_cap : 4096;
        while (cap < b->mem_len + len)
            cap *= 2;
        char *nb = realloc(b->mem, cap);
        if (!nb)
            return -ENOMEM;
        b->mem = nb;
        b->mem_cap = cap;
    }
    memcpy(b->mem + b->mem_len, data, len);
    b->mem_len += len;
    return 0;
}

/* A chunked body grew past the spool threshold: move it to a temporary file. */
static int spool_mem(aw_body_t *b)
{
    if ((b->spool_fd = make_spool()) < 0)
        return -errno;
    int r = write_all(b->spool_fd, b->mem, b->mem_len);
    free(b->mem);
    b->mem = NULL;
    b->mem_len = b->mem_cap = 0;
    return r;
}

static int buffered_store(aw_body_t *b, const char *data, size_t len)
{
    if (b->bytes) {
        memcpy(PyBytes_AS_STRING(b->bytes) + b->received, data, len);
        return 0;
    }
    if (b->spool_fd < 0 && b->mem_len + len > b->spool_threshold && spool_mem(b) < 0)
        return -errno;
    if (b->spool_fd >= 0)
        return write_all(b->spool_fd, data, len);
    return mem_append(b, data, len);
}

static int stream_store(aw_body_t *b, const char *data, size_t len)
{
    if (!b->chunks && !(b->chunks = PyList_New(0)))
        goto error;
    PyObject *chunk = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    if (!chunk)
        goto error;
    int r = PyList_Append(b->chunks, chunk);
    Py_DECREF(chunk);
    if (r < 0)
        goto error;
    b->buffered += len;
    return 0;
error:
    PyErr_Clear();
    return -ENOMEM;
}

/* The parser's body callback (parser.c checks max_body_size first). Returns 0, or 500: then,
 * for a buffered body, with an exception set that the 500 answer reports. */
int aw_body_store(void *body, const char *data, size_t len)
{
    aw_body_t *b = body;
    int r = b->streaming ? stream_store(b, data, len) : buffered_store(b, data, len);
    if (r < 0) {
        errno = -r;
        if (!b->streaming)
            PyErr_SetFromErrno(PyExc_OSError);
        return 500;
    }
    b->received += len;
    return 0;
}

/* The head is complete: prepare for the body. Streaming: wsgi.input in environ is the stream.
 * Returns 0, or -1 with an exception set. */
int aw_body_begin(aw_body_t *b, const aw_request_t *r, PyObject *environ, int streaming,
                  PyObject *sentinel, aw_conn_t *conn)
{
    b->streaming = streaming;
    b->ended = !r->has_body;
    if (streaming) {
        if (!r->has_body)
            return 0; /* the template's empty input stays */
        b->input = input_new(b->st, NULL, conn, b, sentinel);
        return b->input ? PyDict_SetItem(environ, b->st->k_wsgi_input, b->input) : -1;
    }
    if (r->chunked || r->content_length == 0)
        return 0;
    if (r->content_length > b->spool_threshold) {
        if ((b->spool_fd = make_spool()) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 0;
    }
    b->bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)r->content_length);
    return b->bytes ? 0 : -1;
}

static PyObject *spooled_file(aw_body_t *b)
{
    if (lseek(b->spool_fd, 0, SEEK_SET) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *f = PyObject_CallFunction(b->st->io_open, "isi", b->spool_fd, "rb", -1);
    if (f)
        b->spool_fd = -1; /* the file object owns it now */
    return f;
}

/* The whole body is in. Buffered: wsgi.input (and CONTENT_LENGTH, for a chunked body) go
 * into environ. Returns 0, or -1 with an exception set. */
int aw_body_finish(aw_body_t *b, const aw_request_t *r, PyObject *environ)
{
    b->ended = 1;
    if (b->streaming)
        return 0;
    aw_state_t *st = b->st;
    PyObject *input = NULL;
    if (b->spool_fd >= 0) {
        input = spooled_file(b);
    } else if (b->bytes) {
        input = aw_input_new_bytes(st, b->bytes);
        Py_CLEAR(b->bytes);
    } else if (b->mem_len) {
        PyObject *bytes = PyBytes_FromStringAndSize(b->mem, (Py_ssize_t)b->mem_len);
        input = bytes ? aw_input_new_bytes(st, bytes) : NULL;
        Py_XDECREF(bytes);
        free(b->mem);
        b->mem = NULL;
        b->mem_len = b->mem_cap = 0;
    } else if (!r->chunked) {
        return 0; /* no body: the template's empty input stays */
    }
    if (input) {
        b->input = input;
        if (PyDict_SetItem(environ, st->k_wsgi_input, input) < 0)
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    if (!r->chunked)
        return 0;
    PyObject *cl = PyUnicode_FromFormat("%llu", b->received);
    int rc = cl ? PyDict_SetItem(environ, st->k_CONTENT_LENGTH, cl) : -1;
    Py_XDECREF(cl);
    return rc;
}

/* Streaming: the body ended (its last byte was stored). */
void aw_body_end(aw_body_t *b)
{
    b->ended = 1;
}

/* Streaming: the body cannot be completed. */
void aw_body_fail(aw_body_t *b, aw_body_error_t error)
{
    if (!b->ended && !b->error)
        b->error = error;
}

int aw_body_streaming(const aw_body_t *b)
{
    return b->streaming;
}

/* Every byte of the body has been read from the client. */
int aw_body_complete(const aw_body_t *b)
{
    return b->ended;
}

aw_body_error_t aw_body_error(const aw_body_t *b)
{
    return b->error;
}

/* Streaming, and room to read ahead of the app. */
int aw_body_wants_more(const aw_body_t *b)
{
    return b->streaming && !b->ended && !b->error && b->buffered < AW_STREAM_HIGH;
}

/* Streaming: an app waiting on the sentinel can make progress. */
int aw_body_ready(const aw_body_t *b)
{
    return b->buffered > 0 || b->ended || b->error;
}

/* The request is over: detach a streamed input from the connection, close a spooled body's
 * file (the server's, even if the app kept a reference), free the storage. */
void aw_body_reset(aw_body_t *b)
{
    PyObject *input = b->input;
    b->input = NULL;
    if (input && Py_IS_TYPE(input, b->st->input_type)) {
        aw_input_t *in = (aw_input_t *)input;
        if (in->conn) {
            in->gone = b->error ? b->error : (b->ended ? AW_BODY_OK : AW_BODY_GONE);
            in->conn = NULL;
            in->body = NULL;
        }
    } else if (input) {
        PyObject *r = PyObject_CallMethodNoArgs(input, b->st->s_close);
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_XDECREF(input);
    Py_CLEAR(b->bytes);
    free(b->mem);
    if (b->spool_fd >= 0)
        close(b->spool_fd);
    Py_CLEAR(b->chunks);
    aw_state_t *st = b->st;
    size_t threshold = b->spool_threshold;
    aw_body_init(b, st, threshold);
}

void aw_body_init(aw_body_t *b, aw_state_t *st, size_t spool_threshold)
{
    *b = (aw_body_t){.st = st, .spool_fd = -1, .spool_threshold = spool_threshold};
}

/* ---- reading a streamed body ------------------------------------------------------------- */

/* Raise the error the body ended with, if any. Returns -1 with it set, or 0. */
static int stream_error(aw_input_t *in)
{
    aw_body_error_t reason = in->body ? in->body->error : in->gone;
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

/* Up to want bytes of the unconsumed chunks (up to a newline when line), joined. */
static PyObject *take_chunks(aw_body_t *b, size_t want, int line)
{
    PyObject *parts = PyList_New(0), *result = NULL;
    size_t got = 0;
    int done = 0;
    while (parts && got < want && !done && b->chunk_head < PyList_GET_SIZE(b->chunks)) {
        PyObject *chunk = PyList_GET_ITEM(b->chunks, b->chunk_head); // borrowed
        const char *p = PyBytes_AS_STRING(chunk) + b->chunk_off;
        size_t avail = (size_t)PyBytes_GET_SIZE(chunk) - b->chunk_off;
        size_t take = avail < want - got ? avail : want - got;
        const char *nl = line ? memchr(p, '\n', take) : NULL;
        if (nl)
            take = (size_t)(nl - p) + 1, done = 1;
        PyObject *piece = take == (size_t)PyBytes_GET_SIZE(chunk)
                              ? Py_NewRef(chunk)
                              : PyBytes_FromStringAndSize(p, (Py_ssize_t)take);
        if (!piece || PyList_Append(parts, piece) < 0)
            Py_CLEAR(parts);
        Py_XDECREF(piece);
        got += take;
        b->chunk_off += take;
        b->buffered -= take;
        if (b->chunk_off == (size_t)PyBytes_GET_SIZE(chunk))
            b->chunk_head++, b->chunk_off = 0;
    }
    if (parts && b->chunk_head == PyList_GET_SIZE(b->chunks)) {
        if (PyList_SetSlice(b->chunks, 0, b->chunk_head, NULL) < 0)
            Py_CLEAR(parts);
        b->chunk_head = 0;
    }
    if (parts && PyList_GET_SIZE(parts) == 1)
        result = Py_NewRef(PyList_GET_ITEM(parts, 0));
    else if (parts && (result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)got))) {
        char *out = PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
            PyObject *piece = PyList_GET_ITEM(parts, i); // borrowed
            memcpy(out, PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece));
            out += PyBytes_GET_SIZE(piece);
        }
    }
    Py_XDECREF(parts);
    return result;
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
    if (b->buffered == 0) {
        if (stream_error(in) < 0)
            return NULL;
        if (b->ended)
            return PyBytes_FromStringAndSize(NULL, 0);
        PyErr_SetString(PyExc_BlockingIOError, "no request body data is buffered yet");
        return NULL;
    }
    PyObject *r = take_chunks(b, n < 0 ? b->buffered : (size_t)n, line);
    aw_conn_input_read(in->conn); /* consumption may let the connection read again */
    return r;
}

static PyObject *mem_take(aw_input_t *in, Py_ssize_t n, int line)
{
    Py_ssize_t size = PyBytes_GET_SIZE(in->buf);
    Py_ssize_t avail = size - in->pos;
    if (n < 0 || n > avail)
        n = avail;
    const char *p = PyBytes_AS_STRING(in->buf) + in->pos;
    const char *nl = line ? memchr(p, '\n', (size_t)n) : NULL;
    if (nl)
        n = nl - p + 1;
    if (in->pos == 0 && n == size)
        return (in->pos = size, Py_NewRef(in->buf));
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
        return PyLong_FromUnsignedLongLong(in->body ? in->body->received - in->body->buffered
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
