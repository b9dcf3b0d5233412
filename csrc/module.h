/* module.h: the module state of aiowsgi._core: types, exceptions, interned strings.
 *
 * Filled once by module.c (multi-phase init), read-only afterwards; every Python-aware file
 * reaches it through its server (aw_server_t.st) or its type (PyType_GetModuleState).
 */
#ifndef AW_MODULE_H
#define AW_MODULE_H

#include "compat.h"

#define AW_N_COMMON_HEADERS 32
#define AW_N_FILE_READS 3
#define AW_N_METHODS 64

typedef struct {
    PyTypeObject *server_type;
    PyTypeObject *start_response_type;
    PyTypeObject *input_type;
    PyTypeObject *filewrapper_type;
    PyObject *ClientDisconnected;
    PyObject *RequestTooLarge;
    PyObject *io_open;                     /* io.open, for spooled request bodies */
    PyObject *file_reads[AW_N_FILE_READS]; /* io.FileIO/BufferedReader/BufferedRandom.read */
    PyObject *status_lines;                /* {code: reason}, exported for tests */
    /* interned environ keys */
    PyObject *k_REQUEST_METHOD, *k_SCRIPT_NAME, *k_PATH_INFO, *k_QUERY_STRING, *k_RAW_URI,
        *k_SERVER_NAME, *k_SERVER_PORT, *k_SERVER_PROTOCOL, *k_REMOTE_ADDR, *k_REMOTE_PORT,
        *k_CONTENT_TYPE, *k_CONTENT_LENGTH, *k_wsgi_version, *k_wsgi_url_scheme, *k_wsgi_input,
        *k_wsgi_errors, *k_wsgi_multithread, *k_wsgi_multiprocess, *k_wsgi_run_once,
        *k_wsgi_file_wrapper, *k_wsgi_input_terminated, *k_aiowsgi_input_sentinel,
        *k_wsgi_input_sentinel, *k_HTTP_X_FORWARDED_FOR, *k_HTTP_X_FORWARDED_PROTO;
    /* constant values and attribute names */
    PyObject *v_empty, *v_http10, *v_http11, *v_wsgi_version, *v_http, *v_https;
    PyObject *s_close, *s_read, *s_fileno, *s_write, *s_flush, *s_tell;
    PyObject *methods[AW_N_METHODS];            /* indexed by llhttp_method_t */
    PyObject *header_keys[AW_N_COMMON_HEADERS]; /* "HTTP_HOST", ... (environ.c's table) */
} aw_state_t;

#endif
