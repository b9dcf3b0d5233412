/* filewrapper.c: wsgi.file_wrapper (PEP 3333 "optional platform-specific file handling").
 *
 * Owns: the FileWrapper type: an iterable over filelike.read(blksize), and the test that
 * tells wsgi.c it may send the file with sendfile(2) instead (a regular file with a
 * fileno()). close() closes the file object. Must not do socket I/O.
 */
#include "filewrapper.h"

#include <structmember.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} aw_fw_t;

static int fw_init(aw_fw_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|n:FileWrapper", kwlist, &filelike, &blksize))
        return -1;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return -1;
    }
    Py_XSETREF(self->filelike, Py_NewRef(filelike));
    self->blksize = blksize;
    return 0;
}

static PyObject *fw_next(aw_fw_t *self)
{
    if (!self->filelike) {
        PyErr_SetString(PyExc_ValueError, "FileWrapper is not initialised");
        return NULL;
    }
    PyObject *data = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
    if (!data)
        return NULL;
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return NULL; /* StopIteration */
    }
    return data;
}

static PyObject *fw_close(aw_fw_t *self, PyObject *Py_UNUSED(a))
{
    if (self->filelike && PyObject_HasAttrString(self->filelike, "close"))
        return PyObject_CallMethod(self->filelike, "close", NULL);
    Py_RETURN_NONE;
}

/* When the wrapped object is a regular file with a descriptor, give wsgi.c what sendfile
 * needs: returns the fd (> 0) with the current offset and the bytes left, 0 when the file
 * must be iterated instead, -1 with an exception set. */
int aw_filewrapper_sendfile_fd(PyObject *wrapper, aw_state_t *st, long long *offset,
                               long long *size)
{
    aw_fw_t *fw = (aw_fw_t *)wrapper;
    if (!fw->filelike)
        return 0;
    /* The bytes read() gives must be the bytes on disk: a GzipFile or any wrapper with its
     * own read() has a fileno() too, so only io's binary files (and subclasses that keep
     * io's read) go out with sendfile; everything else is iterated. */
    PyObject *read = PyObject_GetAttr((PyObject *)Py_TYPE(fw->filelike), st->s_read);
    if (!read) {
        PyErr_Clear();
        return 0;
    }
    int plain = 0;
    for (int i = 0; i < AW_N_FILE_READS; i++)
        plain |= read == st->file_reads[i];
    Py_DECREF(read);
    if (!plain)
        return 0;
    PyObject *r = PyObject_CallMethodNoArgs(fw->filelike, st->s_fileno);
    if (!r) {
        PyErr_Clear(); /* no fileno(): BytesIO and friends are iterated */
        return 0;
    }
    int fd = PyLong_AsLong(r) > 0 ? (int)PyLong_AsLong(r) : -1;
    Py_DECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    struct stat sb;
    if (fd <= 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        return 0;
    /* Start from the file object's position: the app may have seeked (PEP 3333). A buffered
     * reader's tell() accounts for what it has read ahead. */
    PyObject *pos = PyObject_CallMethodNoArgs(fw->filelike, st->s_tell);
    long long off = pos ? PyLong_AsLongLong(pos) : -1;
    Py_XDECREF(pos);
    if (off < 0) {
        PyErr_Clear();
        off = lseek(fd, 0, SEEK_CUR);
        if (off < 0)
            return 0;
    }
    *offset = off;
    *size = sb.st_size > off ? sb.st_size - off : 0;
    return fd;
}

static int fw_traverse(aw_fw_t *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->filelike);
    return 0;
}

static int fw_clear(aw_fw_t *self)
{
    Py_CLEAR(self->filelike);
    return 0;
}

static void fw_dealloc(aw_fw_t *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fw_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMemberDef fw_members[] = {
    {"filelike", T_OBJECT, offsetof(aw_fw_t, filelike), READONLY, NULL},
    {"blksize", T_PYSSIZET, offsetof(aw_fw_t, blksize), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef fw_methods[] = {
    {"close", (PyCFunction)fw_close, METH_NOARGS, "Close the wrapped file object."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot fw_slots[] = {
    {Py_tp_doc, "FileWrapper(filelike, blksize=8192): wsgi.file_wrapper."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, fw_init},
    {Py_tp_dealloc, fw_dealloc},
    {Py_tp_traverse, fw_traverse},
    {Py_tp_clear, fw_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, fw_next},
    {Py_tp_methods, fw_methods},
    {Py_tp_members, fw_members},
    {0, NULL},
};

PyType_Spec aw_filewrapper_spec = {
    .name = "aiowsgi._core.FileWrapper",
    .basicsize = sizeof(aw_fw_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = fw_slots,
};
