/* options.h: the Server's numeric and boolean options, parsed from one table (options.c).
 *
 * Python-aware (the table parses keyword arguments and is exported as _core.OPTIONS).
 */
#ifndef AW_OPTIONS_H
#define AW_OPTIONS_H

#include "compat.h"

typedef struct {
    long long keepalive, header_timeout; /* milliseconds */
    long long max_header_size, max_body_size, spool_threshold, max_requests;
    long long threads, max_queue; /* app threads (1: the loop calls the app), waiting requests */
    long long stream_input, multiprocess;
    long long static_max_age; /* seconds */
} aw_options_t;

int aw_options_parse(aw_options_t *o, PyObject *kwds);
PyObject *aw_options_export(void);

#endif
