/* log.h: the bridge from the core to Python's logging (the log= and access_log= callables).
 *
 * Python-aware; takes the GIL if the caller does not hold it. Never lets an exception escape: a
 * failing callable is reported as unraisable.
 */
#ifndef AW_LOG_H
#define AW_LOG_H

#include "compat.h"

/* Python's logging levels. */
typedef enum {
    AW_LOG_DEBUG = 10,
    AW_LOG_INFO = 20,
    AW_LOG_WARNING = 30,
    AW_LOG_ERROR = 40,
} aw_level_t;

typedef struct {
    PyObject *log;    /* log(level, message, exc), or None: messages go to sys.stderr */
    PyObject *access; /* access_log(environ, status, nbytes, seconds), or None */
    /* aw_log_peer_warning's limit; the loop's thread alone uses it */
    long long peer_window_ms;    /* when the current second of peer warnings began */
    unsigned peer_logged;        /* peer warnings logged in it */
    unsigned long peer_left_out; /* those not logged since the last one that was */
} aw_log_t;

void aw_log_exception(aw_log_t *log, const char *msg);
void aw_log_message(aw_log_t *log, aw_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void aw_log_peer_warning(aw_log_t *log, long long now_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void aw_log_pending_error(aw_log_t *log, const char *msg);
int aw_log_wants_access(const aw_log_t *log);
void aw_log_access(aw_log_t *log, PyObject *environ, int status, unsigned long long nbytes,
                   double seconds);
double aw_log_clock(void);

#endif
