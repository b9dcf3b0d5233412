/* log.c: reporting through the Python layer's callables.
 *
 * Owns: nothing but the calls (the callables belong to the server). Takes the GIL itself when
 * its caller has none (the loop of a thread pool), which only errors make it do. Must not leave
 * an exception set: the loop never sees one.
 */
#include "log.h"

#include <stdarg.h>
#include <time.h>

#define AW_LOG_PEER_BURST 5 /* peer warnings logged a second, at most */

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

/* A warning about a connection, caused by what its peer sent or by who it is (a PROXY header
 * refused, say): at most AW_LOG_PEER_BURST a second, so that a flood of such connections
 * neither floods the log nor makes a thread pool's loop take the GIL for each. The next one
 * logged says how many were left out meanwhile. Only the loop's thread calls it. */
void aw_log_peer_warning(aw_log_t *log, long long now_ms, const char *fmt, ...)
{
    if (now_ms >= log->peer_window_ms + 1000) {
        log->peer_window_ms = now_ms;
        log->peer_logged = 0;
    }
    if (log->peer_logged >= AW_LOG_PEER_BURST) {
        log->peer_left_out++;
        return;
    }
    log->peer_logged++;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log->peer_left_out)
        aw_log_message(log, AW_LOG_WARNING, "%s (and %lu more such connections, not logged)",
                       msg, log->peer_left_out);
    else
        aw_log_message(log, AW_LOG_WARNING, "%s", msg);
    log->peer_left_out = 0;
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
