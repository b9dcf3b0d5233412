/* metrics.c: the counters of --metrics-bind (metrics.h has the block's layout).
 *
 * Owns: counting into a worker's block (a request's end by status class, method, duration
 * bucket and body bytes; the gauges), and the block's description for the Python layer
 * (_core.METRICS_* and _core.metrics_read), so that the layout is written once. Must not
 * allocate, lock or call Python while counting: it runs once per request, on any thread.
 */
#include "metrics.h"

#include <llhttp.h>

/* Upper bounds of the duration buckets, in seconds (Prometheus' "le" labels). */
static const double bucket_bounds[AW_METRICS_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
};

static const char *const method_names[AW_METRICS_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
};

static const char *const class_names[AW_METRICS_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "other",
};

static void add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static int method_index(int method)
{
    switch (method) {
    case HTTP_GET:
        return 0;
    case HTTP_HEAD:
        return 1;
    case HTTP_POST:
        return 2;
    case HTTP_PUT:
        return 3;
    case HTTP_DELETE:
        return 4;
    case HTTP_PATCH:
        return 5;
    case HTTP_OPTIONS:
        return 6;
    default:
        return AW_METRICS_METHODS - 1; /* another method, or none parsed (-1) */
    }
}

static int bucket_index(double seconds)
{
    int i = 0;
    while (i < AW_METRICS_BUCKETS - 1 && seconds > bucket_bounds[i])
        i++;
    return i;
}

/* A request's head is complete: it is in flight. */
void aw_metrics_begin(aw_metrics_t *m)
{
    if (m)
        __atomic_fetch_add(&m->in_flight, 1, __ATOMIC_RELAXED);
}

/* A request was answered (by the app, or by the server itself: 400, 413, a static file...).
 * begun: aw_metrics_begin counted it; method: llhttp's number, or -1 before a head. */
void aw_metrics_end(aw_metrics_t *m, int begun, int method, int status, uint64_t body_bytes,
                    double seconds)
{
    if (!m)
        return;
    int cls = status >= 100 && status < 600 ? status / 100 - 1 : AW_METRICS_CLASSES - 1;
    add(&m->requests[cls][method_index(method)], 1);
    add(&m->duration[bucket_index(seconds)], 1);
    add(&m->duration_ns, seconds > 0 ? (uint64_t)(seconds * 1e9) : 0);
    add(&m->body_bytes, body_bytes);
    if (begun)
        __atomic_fetch_sub(&m->in_flight, 1, __ATOMIC_RELAXED);
}

/* A request in flight ended without an answer (its connection was closed). */
void aw_metrics_cut(aw_metrics_t *m)
{
    if (m)
        __atomic_fetch_sub(&m->in_flight, 1, __ATOMIC_RELAXED);
}

void aw_metrics_connections(aw_metrics_t *m, int delta)
{
    if (m)
        __atomic_fetch_add(&m->connections, delta, __ATOMIC_RELAXED);
}

void aw_metrics_queued(aw_metrics_t *m, int64_t n)
{
    if (m)
        __atomic_store_n(&m->queued, n, __ATOMIC_RELAXED);
}

/* ---- the Python side: the layout, and a block read into plain values ---------------------- */

static PyObject *names_tuple(const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static PyObject *u64_list(const uint64_t *values, int n)
{
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(__atomic_load_n(&values[i], __ATOMIC_RELAXED));
        if (!v) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, v);
    }
    return l;
}

/* metrics_read(block): the block's values as a dict of ints and lists of ints. */
static PyObject *metrics_read(PyObject *Py_UNUSED(module), PyObject *block)
{
    Py_buffer view;
    if (PyObject_GetBuffer(block, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = NULL;
    const aw_metrics_t *m = view.buf;
    if (view.len < (Py_ssize_t)sizeof(*m) || ((uintptr_t)view.buf & 7)) {
        PyErr_Format(PyExc_ValueError, "a metrics block is an aligned buffer of %zu+ bytes",
                     sizeof(*m));
        goto done;
    }
    PyObject *requests = u64_list(&m->requests[0][0], AW_METRICS_CLASSES * AW_METRICS_METHODS);
    PyObject *duration = u64_list(m->duration, AW_METRICS_BUCKETS);
    if (requests && duration)
        out = Py_BuildValue(
            "{sOsOsKsKsLsLsL}", "requests", requests, "duration", duration, "duration_ns",
            (unsigned long long)__atomic_load_n(&m->duration_ns, __ATOMIC_RELAXED), "body_bytes",
            (unsigned long long)__atomic_load_n(&m->body_bytes, __ATOMIC_RELAXED), "connections",
            (long long)__atomic_load_n(&m->connections, __ATOMIC_RELAXED), "in_flight",
            (long long)__atomic_load_n(&m->in_flight, __ATOMIC_RELAXED), "queued",
            (long long)__atomic_load_n(&m->queued, __ATOMIC_RELAXED));
    Py_XDECREF(requests);
    Py_XDECREF(duration);
done:
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef read_def = {
    "metrics_read", metrics_read, METH_O,
    "metrics_read(block): a worker's metrics block as {'requests': [class * METHODS + method], "
    "'duration': [per bucket], 'duration_ns', 'body_bytes', 'connections', 'in_flight', "
    "'queued'}."};

static int add_owned(PyObject *module, const char *name, PyObject *value)
{
    int r = value ? PyModule_AddObjectRef(module, name, value) : -1;
    Py_XDECREF(value);
    return r;
}

/* _core.METRICS_SIZE, METRICS_METHODS, METRICS_CLASSES, METRICS_BUCKETS and metrics_read. */
int aw_metrics_export(PyObject *module)
{
    PyObject *bounds = PyTuple_New(AW_METRICS_BUCKETS - 1);
    for (int i = 0; bounds && i < AW_METRICS_BUCKETS - 1; i++) {
        PyObject *b = PyFloat_FromDouble(bucket_bounds[i]);
        if (!b) {
            Py_CLEAR(bounds);
            break;
        }
        PyTuple_SET_ITEM(bounds, i, b);
    }
    if (add_owned(module, "METRICS_BUCKETS", bounds) < 0 ||
        add_owned(module, "METRICS_METHODS", names_tuple(method_names, AW_METRICS_METHODS)) < 0 ||
        add_owned(module, "METRICS_CLASSES", names_tuple(class_names, AW_METRICS_CLASSES)) < 0 ||
        PyModule_AddIntConstant(module, "METRICS_SIZE", (long)sizeof(aw_metrics_t)) < 0)
        return -1;
    return add_owned(module, "metrics_read", PyCFunction_NewEx(&read_def, module, NULL));
}
