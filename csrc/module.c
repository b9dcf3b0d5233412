/* module.c: the aiowsgi._core module.
 *
 * Owns: multi-phase initialisation, the module state (heap types, exceptions, interned
 * environ keys and constant values). Must not do I/O.
 */
#include "module.h"
#include "environ.h"
#include "filewrapper.h"
#include "input.h"
#include "metrics.h"
#include "options.h"
#include "response.h"
#include "server.h"
#include "wsgi.h"

static int intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

static int state_init_strings(aw_state_t *st)
{
    static const struct {
        size_t offset;
        const char *text;
    } keys[] = {
#define K(field, str) {.offset = offsetof(aw_state_t, field), .text = str}
        K(k_REQUEST_METHOD, "REQUEST_METHOD"),
        K(k_SCRIPT_NAME, "SCRIPT_NAME"),
        K(k_PATH_INFO, "PATH_INFO"),
        K(k_QUERY_STRING, "QUERY_STRING"),
        K(k_RAW_URI, "RAW_URI"),
        K(k_SERVER_NAME, "SERVER_NAME"),
        K(k_SERVER_PORT, "SERVER_PORT"),
        K(k_SERVER_PROTOCOL, "SERVER_PROTOCOL"),
        K(k_REMOTE_ADDR, "REMOTE_ADDR"),
        K(k_REMOTE_PORT, "REMOTE_PORT"),
        K(k_CONTENT_TYPE, "CONTENT_TYPE"),
        K(k_CONTENT_LENGTH, "CONTENT_LENGTH"),
        K(k_wsgi_version, "wsgi.version"),
        K(k_wsgi_url_scheme, "wsgi.url_scheme"),
        K(k_wsgi_input, "wsgi.input"),
        K(k_wsgi_errors, "wsgi.errors"),
        K(k_wsgi_multithread, "wsgi.multithread"),
        K(k_wsgi_multiprocess, "wsgi.multiprocess"),
        K(k_wsgi_run_once, "wsgi.run_once"),
        K(k_wsgi_file_wrapper, "wsgi.file_wrapper"),
        K(k_wsgi_input_terminated, "wsgi.input_terminated"),
        K(k_aiowsgi_input_sentinel, "aiowsgi.input_sentinel"),
        K(k_wsgi_input_sentinel, "wsgi.input_sentinel"),
        K(k_HTTP_X_FORWARDED_FOR, "HTTP_X_FORWARDED_FOR"),
        K(k_HTTP_X_FORWARDED_PROTO, "HTTP_X_FORWARDED_PROTO"),
        K(v_empty, ""),
        K(v_http10, "HTTP/1.0"),
        K(v_http11, "HTTP/1.1"),
        K(v_http, "http"),
        K(v_https, "https"),
        K(s_close, "close"),
        K(s_read, "read"),
        K(s_fileno, "fileno"),
        K(s_write, "write"),
        K(s_flush, "flush"),
        K(s_tell, "tell"),
#undef K
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (intern((PyObject **)((char *)st + keys[i].offset), keys[i].text) < 0)
            return -1;
    }
    st->v_wsgi_version = Py_BuildValue("(ii)", 1, 0);
    if (!st->v_wsgi_version)
        return -1;
    /* llhttp's own table of request methods (llhttp_method_name aborts on unused numbers) */
#define AW_METHOD(num, name, string)                                                            \
    if ((num) < AW_N_METHODS && intern(&st->methods[(num)], #string) < 0)                                 \
        return -1;
    HTTP_METHOD_MAP(AW_METHOD)
#undef AW_METHOD
    return aw_environ_init_keys(st);
}

static PyObject *add_type(PyObject *m, PyType_Spec *spec, PyObject *base)
{
    PyObject *t = PyType_FromModuleAndSpec(m, spec, base);
    if (!t)
        return NULL;
    const char *dot = strrchr(spec->name, '.');
    if (PyModule_AddObjectRef(m, dot ? dot + 1 : spec->name, t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static int module_exec(PyObject *m)
{
    aw_state_t *st = PyModule_GetState(m);
    PyObject *io = NULL;
    if (state_init_strings(st) < 0)
        goto error;
    if (!(st->server_type = (PyTypeObject *)add_type(m, &aw_server_spec, NULL)))
        goto error;
    if (!(st->start_response_type = (PyTypeObject *)PyType_FromModuleAndSpec(
              m, &aw_start_response_spec, NULL)))
        goto error;
    if (!(st->input_type = (PyTypeObject *)add_type(m, &aw_input_spec, NULL)))
        goto error;
    if (!(st->filewrapper_type = (PyTypeObject *)add_type(m, &aw_filewrapper_spec, NULL)))
        goto error;
    st->ClientDisconnected = PyErr_NewExceptionWithDoc(
        "aiowsgi.ClientDisconnected",
        "The client went away while the app was reading a streamed request body.",
        PyExc_OSError, NULL);
    if (!st->ClientDisconnected || PyModule_AddObjectRef(m, "ClientDisconnected",
                                                         st->ClientDisconnected) < 0)
        goto error;
    st->RequestTooLarge = PyErr_NewExceptionWithDoc(
        "aiowsgi.RequestTooLarge", "The streamed request body exceeded max_body_size.",
        PyExc_Exception, NULL);
    if (!st->RequestTooLarge ||
        PyModule_AddObjectRef(m, "RequestTooLarge", st->RequestTooLarge) < 0)
        goto error;
    if (!(io = PyImport_ImportModule("io")))
        goto error;
    if (!(st->io_open = PyObject_GetAttrString(io, "open")))
        goto error;
    static const char *const file_types[AW_N_FILE_READS] = {"FileIO", "BufferedReader",
                                                            "BufferedRandom"};
    for (int i = 0; i < AW_N_FILE_READS; i++) {
        PyObject *type = PyObject_GetAttrString(io, file_types[i]);
        st->file_reads[i] = type ? PyObject_GetAttrString(type, "read") : NULL;
        Py_XDECREF(type);
        if (!st->file_reads[i])
            goto error;
    }
    Py_CLEAR(io);
    if (!(st->status_lines = PyDict_New()) || aw_status_table_export(st->status_lines) < 0)
        goto error;
    if (PyModule_AddObjectRef(m, "STATUS_REASONS", st->status_lines) < 0)
        goto error;
    if (PyModule_AddStringConstant(m, "__version__", AW_VERSION) < 0 ||
        PyModule_AddStringConstant(m, "STREAMING_ATTR", "__aiowsgi_streaming_input__") < 0)
        goto error;
    PyObject *options = aw_options_export();
    int added = options ? PyModule_AddObjectRef(m, "OPTIONS", options) : -1;
    Py_XDECREF(options);
    if (added < 0 || aw_metrics_export(m) < 0)
        goto error;
    if (PyModule_AddIntConstant(m, "LLHTTP_VERSION_MAJOR", LLHTTP_VERSION_MAJOR) < 0)
        goto error;
    return 0;
error:
    Py_XDECREF(io);
    return -1;
}

#define STATE_FIELDS(X)                                                                         \
    X(server_type) X(start_response_type) X(input_type) X(filewrapper_type)                   \
    X(ClientDisconnected) X(RequestTooLarge) X(io_open) X(status_lines) X(k_REQUEST_METHOD)   \
    X(k_SCRIPT_NAME) X(k_PATH_INFO) X(k_QUERY_STRING) X(k_RAW_URI) X(k_SERVER_NAME)           \
    X(k_SERVER_PORT) X(k_SERVER_PROTOCOL) X(k_REMOTE_ADDR) X(k_REMOTE_PORT)                   \
    X(k_CONTENT_TYPE) X(k_CONTENT_LENGTH) X(k_wsgi_version) X(k_wsgi_url_scheme)              \
    X(k_wsgi_input) X(k_wsgi_errors) X(k_wsgi_multithread) X(k_wsgi_multiprocess)             \
    X(k_wsgi_run_once) X(k_wsgi_file_wrapper) X(k_wsgi_input_terminated)                      \
    X(k_aiowsgi_input_sentinel) X(k_wsgi_input_sentinel) X(k_HTTP_X_FORWARDED_FOR)            \
    X(k_HTTP_X_FORWARDED_PROTO) X(v_empty) X(v_http10) X(v_http11) X(v_wsgi_version)          \
    X(v_http) X(v_https) X(s_close) X(s_read) X(s_fileno) X(s_write) X(s_flush) X(s_tell)

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    aw_state_t *st = PyModule_GetState(m);
#define VISIT(f) Py_VISIT(st->f);
    STATE_FIELDS(VISIT)
#undef VISIT
    for (int i = 0; i < AW_N_METHODS; i++)
        Py_VISIT(st->methods[i]);
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++)
        Py_VISIT(st->header_keys[i]);
    for (int i = 0; i < AW_N_FILE_READS; i++)
        Py_VISIT(st->file_reads[i]);
    return 0;
}

static int module_clear(PyObject *m)
{
    aw_state_t *st = PyModule_GetState(m);
#define CLEAR(f) Py_CLEAR(st->f);
    STATE_FIELDS(CLEAR)
#undef CLEAR
    for (int i = 0; i < AW_N_METHODS; i++)
        Py_CLEAR(st->methods[i]);
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++)
        Py_CLEAR(st->header_keys[i]);
    for (int i = 0; i < AW_N_FILE_READS; i++)
        Py_CLEAR(st->file_reads[i]);
    return 0;
}

static void module_free(void *m)
{
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiowsgi._core",
    .m_doc = "aiowsgi's C core: epoll loop, llhttp parsing, PEP 3333 environ and responses.",
    .m_size = sizeof(aw_state_t),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}
