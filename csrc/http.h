/* http.h: HTTP's vocabulary, shared by the pure-C layers and the Python-aware ones: the one
 * table of status lines, HTTP-dates (RFC 9110 5.6.7) both ways, and a request target's parts
 * (path, query) with the path's percent-decoding.
 *
 * Pure C: no Python here, so static.c can answer requests without it.
 */
#ifndef AW_HTTP_H
#define AW_HTTP_H

#include <stddef.h>
#include <time.h>

#define AW_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

const char *aw_status_reason(int status);
int aw_status_count(void);
int aw_status_at(int i, const char **reason);

size_t aw_http_date(time_t t, char out[AW_HTTP_DATE_LEN + 1]);
int aw_http_date_parse(const char *s, size_t n, time_t *t);

/* The path and query of a request target: spans into it. */
typedef struct {
    const char *path, *query; /* query is NULL when there is no '?' */
    size_t path_len, query_len;
} aw_target_t;

void aw_path_split(const char *p, size_t n, aw_target_t *t);
size_t aw_percent_decode(const char *p, size_t n, char *out);

#endif
