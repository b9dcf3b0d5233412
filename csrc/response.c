/* response.c: bytes of HTTP that go to the client.
 *
 * Owns: the Date header, validation and serialisation of the status and headers an app gives
 * start_response (PEP 3333), the body framing and its enforcement (the app's Content-Length;
 * chunked on HTTP/1.1; close-delimited on HTTP/1.0), the server's own answers (100 Continue,
 * 4xx/5xx, the health check's; status lines from http.c's table), and queueing static.c's.
 * Must not call the app nor write to a socket: everything is queued on the connection's
 * aw_out_t.
 */
#include "response.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>

/* ---- status lines and the Date header --------------------------------------------------- */

/* _core.STATUS_REASONS: http.c's table as {code: reason}. */
int aw_status_table_export(PyObject *dict)
{
    for (int i = 0; i < aw_status_count(); i++) {
        const char *reason;
        PyObject *k = PyLong_FromLong(aw_status_at(i, &reason));
        PyObject *v = PyUnicode_FromString(reason);
        int r = (k && v) ? PyDict_SetItem(dict, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* "Date: <IMF-fixdate>\r\n" (RFC 9110 6.6.1). Returns its length. */
size_t aw_format_date(time_t t, char out[AW_DATE_MAX])
{
    char date[AW_HTTP_DATE_LEN + 1];
    size_t n = aw_http_date(t, date);
    int len = snprintf(out, AW_DATE_MAX, "Date: %.*s\r\n", (int)n, date);
    return len > 0 ? (size_t)len : 0;
}

/* ---- validation of what start_response was given ----------------------------------------- */

typedef struct {
    int has_date, has_server, has_connection;
} aw_hdr_flags_t;

static int latin1_view(PyObject *o, const char **p, Py_ssize_t *n, const char *what)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "%s must be latin-1: %R", what, o);
        return -1;
    }
    *p = (const char *)PyUnicode_1BYTE_DATA(o);
    *n = PyUnicode_GET_LENGTH(o);
    return 0;
}

static int is_token_char(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int name_is(const char *p, Py_ssize_t n, const char *lower)
{
    size_t ln = strlen(lower);
    return (size_t)n == ln && strncasecmp(p, lower, ln) == 0;
}

/* "NNN reason" with three digits and no control characters. Returns the code, or -1. */
static int parse_status(PyObject *status)
{
    const char *p;
    Py_ssize_t n;
    if (latin1_view(status, &p, &n, "status") < 0)
        return -1;
    if (n < 3 || !(p[0] >= '1' && p[0] <= '9') || !(p[1] >= '0' && p[1] <= '9') ||
        !(p[2] >= '0' && p[2] <= '9') || (n > 3 && p[3] != ' ')) {
        PyErr_Format(PyExc_ValueError, "status must be '<3 digits> <reason>', not %R", status);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f) {
            PyErr_Format(PyExc_ValueError, "control character in status %R", status);
            return -1;
        }
    }
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* A (name, value) pair of str: a token name, a value without control characters. */
static int check_pair(PyObject *item, const char **np, Py_ssize_t *nn, const char **vp,
                      Py_ssize_t *vn)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_Format(PyExc_TypeError, "a header must be a (name, value) tuple, not %R", item);
        return -1;
    }
    PyObject *name = PyTuple_GET_ITEM(item, 0); // borrowed
    if (latin1_view(name, np, nn, "header name") < 0 ||
        latin1_view(PyTuple_GET_ITEM(item, 1), vp, vn, "header value") < 0)
        return -1;
    if (*nn == 0) {
        PyErr_SetString(PyExc_ValueError, "empty header name");
        return -1;
    }
    for (Py_ssize_t j = 0; j < *nn; j++) {
        if (!is_token_char((unsigned char)(*np)[j])) {
            PyErr_Format(PyExc_ValueError, "invalid header name %R", name);
            return -1;
        }
    }
    for (Py_ssize_t j = 0; j < *vn; j++) {
        unsigned char ch = (unsigned char)(*vp)[j];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            PyErr_Format(PyExc_ValueError, "control character in the value of header %R", name);
            return -1;
        }
    }
    return 0;
}

static int parse_content_length(aw_resp_t *r, const char *v, Py_ssize_t n)
{
    long long cl = 0;
    if (n == 0 || n > 18 || r->content_length >= 0)
        goto bad;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (v[j] < '0' || v[j] > '9')
            goto bad;
        cl = cl * 10 + (v[j] - '0');
    }
    r->content_length = cl;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "invalid or repeated Content-Length header");
    return -1;
}

/* PEP 3333: hop-by-hop headers (RFC 2616 13.5.1, wsgiref's list, "Trailers" spelt as there)
 * are the server's business; Connection is allowed. */
static int is_hop_by_hop(const char *n, Py_ssize_t len)
{
    static const char *const names[] = {"transfer-encoding", "keep-alive", "te", "trailers",
                                        "upgrade", "proxy-authenticate", "proxy-authorization"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (name_is(n, len, names[i]))
            return 1;
    }
    return 0;
}

/* One header: validated, and what the server must know of it noted. */
static int check_header(aw_resp_t *r, aw_hdr_flags_t *f, PyObject *item)
{
    const char *np, *vp;
    Py_ssize_t nn, vn;
    if (check_pair(item, &np, &nn, &vp, &vn) < 0)
        return -1;
    if (name_is(np, nn, "content-length"))
        return parse_content_length(r, vp, vn);
    if (name_is(np, nn, "connection")) {
        f->has_connection = 1;
        for (Py_ssize_t j = 0; j + 5 <= vn; j++)
            r->close |= strncasecmp(vp + j, "close", 5) == 0;
    } else if (name_is(np, nn, "date")) {
        f->has_date = 1;
    } else if (name_is(np, nn, "server")) {
        f->has_server = 1;
    } else if (is_hop_by_hop(np, nn)) {
        PyErr_Format(PyExc_ValueError, "hop-by-hop header %R is not allowed in a WSGI app",
                     PyTuple_GET_ITEM(item, 0));
        return -1;
    }
    return 0;
}

static int validate(aw_resp_t *r, aw_hdr_flags_t *f, PyObject *status, PyObject *headers)
{
    int code = parse_status(status);
    if (code < 0)
        return -1;
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "response headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    r->content_length = -1;
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < nh; i++) {
        if (check_header(r, f, PySequence_Fast_GET_ITEM(headers, i)) < 0)
            return -1;
    }
    r->status = code;
    return 0;
}

/* ---- serialisation ----------------------------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

static char *put(char *p, const char *data, size_t len)
{
    if (len)
        memcpy(p, data, len); /* memcpy from NULL is undefined, even for 0 bytes */
    return p + len;
}

static char *put_str(char *p, PyObject *s)
{
    return put(p, (const char *)PyUnicode_1BYTE_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
}

/* The framing header of ours, if any (it may make the connection close). */
static size_t framing(aw_resp_t *r, long long known_len, const aw_resp_ctx_t *ctx,
                      char out[48])
{
    int code = r->status;
    if (code < 200 || code == 204 || code == 304)
        return 0; /* RFC 9110 8.6: no body, no framing headers of ours */
    if (r->content_length >= 0)
        return 0; /* the app's, used and enforced */
    if (known_len >= 0) {
        r->content_length = known_len;
        return (size_t)snprintf(out, 48, "Content-Length: %lld\r\n", known_len);
    }
    if (ctx->is_head)
        return 0; /* the length is unknown and no body follows: say nothing */
    if (ctx->http_minor >= 1) {
        r->chunked = 1;
        memcpy(out, "Transfer-Encoding: chunked\r\n", 28);
        return 28;
    }
    r->close = 1; /* HTTP/1.0: the end of the body is the end of the connection */
    return 0;
}

static size_t headers_size(PyObject *status, PyObject *headers)
{
    size_t total = 9 + (size_t)PyUnicode_GET_LENGTH(status) + 2;
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(headers, i); // borrowed
        total += (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(item, 0)) +
                 (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(item, 1)) + 4;
    }
    return total;
}

/* Queue the status line and headers. known_len: the whole body's length when the server knows
 * it (a one-item list or tuple, a file), else -1. Returns 0, or -1 with an exception set (an app
 * error; nothing was queued). One reservation, then straight copies. */
int aw_response_headers(aw_resp_t *r, aw_out_t *out, PyObject *status, PyObject *headers,
                        long long known_len, const aw_resp_ctx_t *ctx)
{
    aw_hdr_flags_t f = {0};
    if (validate(r, &f, status, headers) < 0)
        return -1;
    r->no_body = ctx->is_head || r->status < 200 || r->status == 204 || r->status == 304;
    char frame[48];
    size_t frame_len = framing(r, known_len, ctx, frame);
    const char *conn = NULL;
    size_t conn_len = 0;
    if (!f.has_connection && (r->close || !ctx->keep_alive))
        conn = "Connection: close\r\n", conn_len = 19;
    else if (!f.has_connection && ctx->http_minor == 0)
        conn = "Connection: keep-alive\r\n", conn_len = 24;
    size_t total = headers_size(status, headers) + frame_len + conn_len +
                   (f.has_date ? 0 : ctx->date_len) + (f.has_server ? 0 : 17) + 2;
    char *start = aw_out_reserve(out, total);
    if (!start) {
        PyErr_NoMemory();
        return -1;
    }
    char *p = put(start, LIT("HTTP/1.1 "));
    p = put(put_str(p, status), LIT("\r\n"));
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(headers, i); // borrowed
        p = put(put_str(p, PyTuple_GET_ITEM(item, 0)), LIT(": "));
        p = put(put_str(p, PyTuple_GET_ITEM(item, 1)), LIT("\r\n"));
    }
    p = put(p, frame, frame_len);
    if (!f.has_date)
        p = put(p, ctx->date, ctx->date_len);
    if (!f.has_server)
        p = put(p, LIT("Server: aiowsgi\r\n"));
    p = put(p, conn, conn_len);
    p = put(p, LIT("\r\n"));
    aw_out_commit(out, (size_t)(p - start));
    r->headers_sent = 1;
    return 0;
}

/* Queue body bytes (data/len inside obj, kept alive while queued; obj may be NULL). Returns 0,
 * or -1 (no memory) with an exception set. */
int aw_response_body(aw_resp_t *r, aw_out_t *out, aw_log_t *log, PyObject *obj,
                     const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (r->content_length >= 0) {
        unsigned long long left = (unsigned long long)r->content_length - r->body_bytes;
        if (len > left) {
            aw_log_message(log, AW_LOG_WARNING,
                           "app returned more than its Content-Length (%lld); the excess is "
                           "dropped",
                           r->content_length);
            len = (size_t)left;
        }
    }
    r->body_bytes += len;
    if (r->no_body || len == 0)
        return 0;
    char head[24];
    size_t hlen = r->chunked ? (size_t)snprintf(head, sizeof(head), "%zx\r\n", len) : 0;
    size_t tlen = r->chunked ? 2 : 0;
    if (len > AW_COPY_MAX && obj && aw_out_segments_left(out) >= 3) {
        /* large: referenced, not copied (the queue's reference is released once it is sent) */
        if (aw_out_copy(out, head, hlen) < 0)
            goto nomem;
        if (aw_out_ref(out, Py_NewRef(obj), data, len) < 0) {
            Py_DECREF(obj);
            goto nomem;
        }
        if (aw_out_copy(out, "\r\n", tlen) < 0)
            goto nomem;
        return 0;
    }
    /* small (or no piece left to reference it): chunk head, data and CRLF copied in one piece;
     * the buffer grows, so a copy always fits */
    char *p = aw_out_reserve(out, hlen + len + tlen);
    if (!p)
        goto nomem;
    put(put(put(p, head, hlen), data, len), "\r\n", tlen);
    aw_out_commit(out, hlen + len + tlen);
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

/* The body is complete. Returns 0, or -1 when the app sent less than its Content-Length (the
 * connection must then be cut: the client sees a truncated response). */
int aw_response_end(aw_resp_t *r, aw_out_t *out, aw_log_t *log)
{
    if (r->chunked && aw_out_copy(out, LIT("0\r\n\r\n")) < 0)
        return -1;
    if (!r->no_body && r->content_length >= 0 &&
        r->body_bytes < (unsigned long long)r->content_length) {
        aw_log_message(log, AW_LOG_ERROR,
                       "app returned %llu bytes but announced Content-Length %lld; connection "
                       "cut",
                       r->body_bytes, r->content_length);
        return -1;
    }
    return 0;
}

/* A file of file_len bytes is the body (headers already queued with its length as known_len):
 * how much of it to send. A Content-Length of the app's shorter than the file stops there; a
 * longer one cannot be honoured: the file is sent and the connection cut after it. */
long long aw_response_file_length(aw_resp_t *r, aw_log_t *log, long long file_len)
{
    long long want = r->no_body ? 0 : r->content_length;
    if (want > file_len) {
        aw_log_message(log, AW_LOG_ERROR,
                       "file is shorter (%lld bytes) than its Content-Length (%lld); connection "
                       "cut after it",
                       file_len, want);
        r->close = 1;
        want = file_len;
    }
    r->body_bytes = (unsigned long long)want;
    return want;
}

/* Queue a complete answer of the server's own (4xx/5xx), with Connection: close. */
int aw_response_error(aw_resp_t *r, aw_out_t *out, int status, const aw_resp_ctx_t *ctx)
{
    const char *reason = aw_status_reason(status);
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%.*sServer: aiowsgi\r\n\r\n"
                     "%s\n",
                     status, reason, strlen(reason) + 1, (int)ctx->date_len, ctx->date, reason);
    r->status = status;
    r->body_bytes = strlen(reason) + 1;
    r->headers_sent = 1;
    r->close = 1;
    return aw_out_copy(out, buf, (size_t)n);
}

/* Queue the answer to a request for --health-path: 200 while serving; 503 once the server is
 * stopping, so that a load balancer sends it no more (--shutdown-delay gives it the time to
 * notice); 405 to methods other than GET and HEAD. Pure C: on the loop's thread, which may not
 * hold the GIL. Returns 0, or -ENOMEM (nothing queued). */
int aw_response_health(aw_resp_t *r, aw_out_t *out, int method, int stopping,
                       const aw_resp_ctx_t *ctx)
{
    int get = method == HTTP_GET || method == HTTP_HEAD;
    int status = !get ? 405 : stopping ? 503 : 200;
    const char *body = status == 200 ? "ok\n" : status == 503 ? "stopping\n" : "use GET\n";
    size_t blen = strlen(body);
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: %s\r\n"
                     "%.*sServer: aiowsgi\r\n\r\n%s",
                     status, aw_status_reason(status), get ? "" : "Allow: GET, HEAD\r\n", blen,
                     ctx->keep_alive ? "keep-alive" : "close", (int)ctx->date_len, ctx->date,
                     ctx->is_head ? "" : body);
    r->status = status;
    r->body_bytes = ctx->is_head ? 0 : blen;
    r->headers_sent = 1;
    r->close = !ctx->keep_alive;
    return aw_out_copy(out, buf, (size_t)n);
}

/* Queue the answer to a request under a --static prefix (static.c writes it straight into the
 * queue's buffer; its file follows, sent with sendfile), and record what the access log and
 * the keep-alive decision need. Runs on the loop's thread, which may not hold the GIL: nothing
 * of Python here (the error log takes it itself). Returns 0, or -ENOMEM (nothing queued). */
int aw_response_static(aw_resp_t *r, aw_out_t *out, aw_log_t *log, aw_static_route_t *route,
                       const aw_resp_ctx_t *ctx, long long now_ms)
{
    aw_static_ctx_t sctx = {.keep_alive = ctx->keep_alive, .date = ctx->date,
                            .date_len = ctx->date_len, .now_ms = now_ms};
    aw_static_answer_t a;
    char *buf = aw_out_reserve(out, aw_static_room(route));
    if (!buf)
        return -ENOMEM;
    aw_static_answer(route, &sctx, buf, &a);
    aw_out_commit(out, a.len);
    if (a.fd >= 0)
        aw_out_file_owned(out, a.fd, a.off, a.count);
    if (a.status >= 500)
        aw_log_message(log, AW_LOG_ERROR, "static file %.200s: %s", route->path,
                       strerror(a.err));
    r->status = a.status;
    r->body_bytes = a.body_bytes;
    r->headers_sent = 1;
    r->close = a.close;
    return 0;
}

/* RFC 9110 10.1.1: the client may send the body. */
int aw_response_continue(aw_out_t *out)
{
    return aw_out_copy(out, LIT("HTTP/1.1 100 Continue\r\n\r\n"));
}

void aw_response_init(aw_resp_t *r)
{
    *r = (aw_resp_t){.content_length = -1};
}

int aw_response_headers_sent(const aw_resp_t *r)
{
    return r->headers_sent;
}

int aw_response_status(const aw_resp_t *r)
{
    return r->status;
}

/* The connection cannot carry another request after this response. */
int aw_response_must_close(const aw_resp_t *r)
{
    return r->close;
}

unsigned long long aw_response_body_bytes(const aw_resp_t *r)
{
    return r->body_bytes;
}

/* The app has produced every byte its Content-Length announced: nothing more may follow. */
int aw_response_body_complete(const aw_resp_t *r)
{
    return r->content_length >= 0 && r->body_bytes >= (unsigned long long)r->content_length;
}
