/* response.h: the HTTP side of a response: status line and headers from what the app gave
 * start_response, body framing (Content-Length, chunked, close-delimited), and the server's
 * own error answers, all queued on an aw_out_t.
 *
 * Python-aware (status and headers are Python objects); never calls the app.
 */
#ifndef AW_RESPONSE_H
#define AW_RESPONSE_H

#include "compat.h"
#include "http.h"
#include "log.h"
#include "output.h"
#include "static.h"

#include <time.h>

#define AW_DATE_MAX 64

/* What the request and the server say about the response to come. */
typedef struct {
    int is_head;        /* HEAD: no body goes out */
    int http_minor;     /* 0: HTTP/1.0 */
    int keep_alive;     /* the connection may stay open after this response */
    const char *date;   /* "Date: ...\r\n" */
    size_t date_len;
} aw_resp_ctx_t;

/* Fields are response.c's alone. */
typedef struct {
    int status;                   /* 0 until the headers are queued (or an error answer) */
    long long content_length;     /* the body's length, -1 while unknown */
    unsigned long long body_bytes; /* body bytes the app produced (what the access log says) */
    unsigned headers_sent : 1, chunked : 1, no_body : 1, close : 1;
} aw_resp_t;

void aw_response_init(aw_resp_t *r);
int aw_response_headers(aw_resp_t *r, aw_out_t *out, PyObject *status, PyObject *headers,
                        long long known_len, const aw_resp_ctx_t *ctx);
int aw_response_body(aw_resp_t *r, aw_out_t *out, aw_log_t *log, PyObject *obj,
                     const char *data, size_t len);
int aw_response_end(aw_resp_t *r, aw_out_t *out, aw_log_t *log);
long long aw_response_file_length(aw_resp_t *r, aw_log_t *log, long long file_len);
int aw_response_error(aw_resp_t *r, aw_out_t *out, int status, const aw_resp_ctx_t *ctx);
int aw_response_static(aw_resp_t *r, aw_out_t *out, aw_log_t *log, aw_static_route_t *route,
                       const aw_resp_ctx_t *ctx, long long now_ms);
int aw_response_health(aw_resp_t *r, aw_out_t *out, int method, int stopping,
                       const aw_resp_ctx_t *ctx);
int aw_response_continue(aw_out_t *out);
int aw_response_headers_sent(const aw_resp_t *r);
int aw_response_status(const aw_resp_t *r);
int aw_response_must_close(const aw_resp_t *r);
unsigned long long aw_response_body_bytes(const aw_resp_t *r);
int aw_response_body_complete(const aw_resp_t *r);

int aw_status_table_export(PyObject *dict);
size_t aw_format_date(time_t t, char out[AW_DATE_MAX]);

#endif
