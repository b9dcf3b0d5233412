/* log.c: reporting through the Python layer's callables.
 *
 * Owns: nothing but the calls (the callables belong to the server). Takes the GIL itself when
 * its caller has none (the loop of a thread pool), which only errors make it do. Must not leave
 * an exception set: the loop never sees one.
 */
#include "log.h"

#include <stdarg.h>
#include <time.h>

static void call_log(aw_log_t *log, aw_level_t level, const char *msg, PyObject *exc)
{
    PyObject *r = PyObject_CallFunction(log->log, "isO", (int)level, msg, exc);
    if (!r)
        PyErr_WriteUnraisable(log->log);
    Py_XDECREF(r);
}

/* Report the current exception (which is cleared) with msg, through the log callable or, with
 * none, as a traceback on sys.stderr. */
void aw_log_exception(aw_log_t *log, const char *msg)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *type = NULL, *exc = NULL, *tb = NULL;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc && tb)
        PyException_SetTraceback(exc, tb);
    if (log->log && !Py_IsNone(log->log)) {
        call_log(log, AW_LOG_ERROR, msg, exc ? exc : Py_None);
    } else {
        PySys_WriteStderr("aiowsgi: %s\n", msg);
        if (type) {
            PyErr_Restore(type, exc, tb);
            type = exc = tb = NULL;
            PyErr_PrintEx(0);
        }
    }
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    PyErr_Clear();
    PyGILState_Release(g);
}

/* A message at level; an exception already set is kept as it was. */
void aw_log_message(aw_log_t *log, aw_level_t level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    PyGILState_STATE g = PyGILState_Ensure(); /* the loop of a thread pool has no GIL */
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (log->log && !Py_IsNone(log->log))
        call_log(log, level, msg, Py_None);
    else
        PySys_WriteStderr("aiowsgi: %s\n", msg);
    PyErr_Restore(type, exc, tb);
    PyGILState_Release(g);
}

/* If an exception is set, report it with msg (and clear it). */
void aw_log_pending_error(aw_log_t *log, const char *msg)
{
    PyGILState_STATE g = PyGILState_Ensure();
    if (PyErr_Occurred())
        aw_log_exception(log, msg);
    PyGILState_Release(g);
}

int aw_log_wants_access(const aw_log_t *log)
{
    return log->access && !Py_IsNone(log->access);
}

/* One line of the access log; environ may be a minimal dict (an answer of the server's own). */
void aw_log_access(aw_log_t *log, PyObject *environ, int status, unsigned long long nbytes,
                   double seconds)
{
    PyObject *r = PyObject_CallFunction(log->access, "OiKd", environ, status, nbytes, seconds);
    if (!r)
        aw_log_exception(log, "exception in the access log");
    Py_XDECREF(r);
}

/* Seconds on CLOCK_MONOTONIC, for request durations. */
double aw_log_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
