/* response.c: bytes that go to the client.
 *
 * Owns: the per-connection send queue (small pieces copied into one buffer, large bytes
 * objects referenced, all sent with one sendmsg; then a file with sendfile), validation and
 * serialisation of the status line and headers, body framing (Content-Length, chunked,
 * close-delimited), error answers, and the one table of status lines. Must not call the app.
 */
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <time.h>

/* ---- status lines: one table, checked by a test ------------------------------------------ */

static const struct {
    int code;
    const char *reason;
} status_table[] = {
    {.code = 100, .reason = "Continue"},
    {.code = 400, .reason = "Bad Request"},
    {.code = 408, .reason = "Request Timeout"},
    {.code = 413, .reason = "Content Too Large"},
    {.code = 431, .reason = "Request Header Fields Too Large"},
    {.code = 500, .reason = "Internal Server Error"},
    {.code = 501, .reason = "Not Implemented"},
    {.code = 503, .reason = "Service Unavailable"},
    {.code = 505, .reason = "HTTP Version Not Supported"},
};

const char *aw_status_reason(int status)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++) {
        if (status_table[i].code == status)
            return status_table[i].reason;
    }
    return "Error";
}

int aw_status_table_export(PyObject *dict)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++) {
        PyObject *k = PyLong_FromLong(status_table[i].code);
        PyObject *v = PyUnicode_FromString(status_table[i].reason);
        int r = (k && v) ? PyDict_SetItem(dict, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* RFC 9110 5.6.7 IMF-fixdate, formatted by hand: strftime would follow the C locale. */
void aw_format_date(time_t t, char *out, size_t *len)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    int n = snprintf(out, 64, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
    *len = n > 0 ? (size_t)n : 0;
}

/* ---- the send queue ---------------------------------------------------------------------- */

static int wbuf_reserve(aw_conn_t *c, size_t extra)
{
    if (!c->wbuf) {
        c->wbuf = aw_pool_get(c->srv);
        if (!c->wbuf)
            return -ENOMEM;
        c->wcap = AW_BUF_SIZE;
    }
    if (c->wlen + extra <= c->wcap)
        return 0;
    size_t cap = c->wcap;
    while (cap < c->wlen + extra)
        cap *= 2;
    char *nb = realloc(c->wbuf, cap);
    if (!nb)
        return -ENOMEM;
    c->wbuf = nb;
    c->wcap = cap;
    return 0;
}

/* Room for len bytes at the end of the write buffer, to be filled by the caller and then
 * queued with aw_out_commit; NULL when out of memory or segments. */
char *aw_out_reserve(aw_conn_t *c, size_t len)
{
    if (wbuf_reserve(c, len) < 0)
        return NULL;
    aw_seg_t *last = c->nsegs > c->shead ? &c->segs[c->nsegs - 1] : NULL;
    if (!(last && !last->obj && last->off + last->len == c->wlen) && c->nsegs == AW_MAX_SEGS)
        return NULL;
    return c->wbuf + c->wlen;
}

void aw_out_commit(aw_conn_t *c, size_t len)
{
    aw_seg_t *last = c->nsegs > c->shead ? &c->segs[c->nsegs - 1] : NULL;
    if (last && !last->obj && last->off + last->len == c->wlen)
        last->len += len;
    else
        c->segs[c->nsegs++] = (aw_seg_t){.obj = NULL, .off = c->wlen, .len = len};
    c->wlen += len;
    c->out_bytes += len;
}

int aw_out_copy(aw_conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (wbuf_reserve(c, len) < 0)
        return -ENOMEM;
    memcpy(c->wbuf + c->wlen, data, len);
    aw_seg_t *last = c->nsegs > c->shead ? &c->segs[c->nsegs - 1] : NULL;
    if (last && !last->obj && last->off + last->len == c->wlen) {
        last->len += len;
    } else {
        if (c->nsegs == AW_MAX_SEGS)
            return -ENOBUFS;
        c->segs[c->nsegs++] = (aw_seg_t){.obj = NULL, .off = c->wlen, .len = len};
    }
    c->wlen += len;
    c->out_bytes += len;
    return 0;
}

int aw_out_ref(aw_conn_t *c, PyObject *obj, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (c->nsegs == AW_MAX_SEGS)
        return -ENOBUFS;
    c->segs[c->nsegs++] = (aw_seg_t){.obj = Py_NewRef(obj), .ptr = data, .len = len};
    c->out_bytes += len;
    return 0;
}

int aw_out_full(aw_conn_t *c)
{
    /* room for a chunk header, the data and its CRLF must remain; a file being sent must
     * go out before anything else is queued behind it */
    return c->out_bytes >= AW_OUT_HIGH || c->nsegs + 3 > AW_MAX_SEGS || c->sf_left > 0;
}

void aw_out_clear(aw_conn_t *c)
{
    for (int i = c->shead; i < c->nsegs; i++)
        Py_XDECREF(c->segs[i].obj);
    c->nsegs = c->shead = 0;
    c->wlen = 0;
    c->out_bytes = 0;
    Py_CLEAR(c->sf_obj);
    c->sf_fd = -1;
    c->sf_left = 0;
}

/* Send as much as the socket takes. Returns 0 when everything queued is sent, 1 when the
 * socket is full (wait for EPOLLOUT), or a negative errno when the peer is gone. */
int aw_out_flush(aw_conn_t *c)
{
    while (c->shead < c->nsegs) {
        struct iovec iov[AW_MAX_SEGS];
        int n = 0;
        for (int i = c->shead; i < c->nsegs; i++, n++) {
            aw_seg_t *sg = &c->segs[i];
            iov[n].iov_base = (void *)(sg->obj ? sg->ptr : c->wbuf + sg->off);
            iov[n].iov_len = sg->len;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t sent = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -errno;
        }
        c->out_bytes -= (size_t)sent;
        c->bytes_out += (size_t)sent;
        while (sent > 0) {
            aw_seg_t *sg = &c->segs[c->shead];
            if ((size_t)sent >= sg->len) {
                sent -= (ssize_t)sg->len;
                Py_CLEAR(sg->obj);
                c->shead++;
            } else {
                sg->len -= (size_t)sent;
                if (sg->obj)
                    sg->ptr += sent;
                else
                    sg->off += (size_t)sent;
                sent = 0;
            }
        }
    }
    c->nsegs = c->shead = 0;
    c->wlen = 0;
    while (c->sf_left > 0) {
        off_t off = (off_t)c->sf_off;
        size_t want = c->sf_left > (1 << 30) ? (size_t)1 << 30 : (size_t)c->sf_left;
        ssize_t n = sendfile(c->io.fd, c->sf_fd, &off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 1;
            return -errno;
        }
        if (n == 0)
            return -EPIPE; /* the file is shorter than announced: cut the response */
        c->sf_off += n;
        c->sf_left -= n;
        c->bytes_out += (size_t)n;
    }
    return 0;
}

/* ---- status and headers ------------------------------------------------------------------ */

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

/* PEP 3333 and SPEC 4: validate what start_response was given; learn the flags we need. */
static int validate(aw_conn_t *c, aw_hdr_flags_t *f)
{
    const char *p;
    Py_ssize_t n;
    if (latin1_view(c->status, &p, &n, "status") < 0)
        return -1;
    if (n < 3 || !(p[0] >= '1' && p[0] <= '9') || !(p[1] >= '0' && p[1] <= '9') ||
        !(p[2] >= '0' && p[2] <= '9') || (n > 3 && p[3] != ' ')) {
        PyErr_Format(PyExc_ValueError, "status must be '<3 digits> <reason>', not %R", c->status);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f) {
            PyErr_Format(PyExc_ValueError, "control character in status %R", c->status);
            return -1;
        }
    }
    c->resp_status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (!PyList_Check(c->headers) && !PyTuple_Check(c->headers)) {
        PyErr_Format(PyExc_TypeError, "response headers must be a list, not %.100s",
                     Py_TYPE(c->headers)->tp_name);
        return -1;
    }
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(c->headers);
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(c->headers, i); // borrowed
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "a header must be a (name, value) tuple, not %R", item);
            return -1;
        }
        const char *np, *vp;
        Py_ssize_t nn, vn;
        if (latin1_view(PyTuple_GET_ITEM(item, 0), &np, &nn, "header name") < 0 ||
            latin1_view(PyTuple_GET_ITEM(item, 1), &vp, &vn, "header value") < 0)
            return -1;
        if (nn == 0) {
            PyErr_SetString(PyExc_ValueError, "empty header name");
            return -1;
        }
        for (Py_ssize_t j = 0; j < nn; j++) {
            if (!is_token_char((unsigned char)np[j])) {
                PyErr_Format(PyExc_ValueError, "invalid header name %R", PyTuple_GET_ITEM(item, 0));
                return -1;
            }
        }
        for (Py_ssize_t j = 0; j < vn; j++) {
            unsigned char ch = (unsigned char)vp[j];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                PyErr_Format(PyExc_ValueError, "control character in the value of header %R",
                             PyTuple_GET_ITEM(item, 0));
                return -1;
            }
        }
        if (name_is(np, nn, "content-length")) {
            long long v = 0;
            if (vn == 0 || vn > 18 || c->resp_cl >= 0)
                goto bad_cl;
            for (Py_ssize_t j = 0; j < vn; j++) {
                if (vp[j] < '0' || vp[j] > '9')
                    goto bad_cl;
                v = v * 10 + (vp[j] - '0');
            }
            c->resp_cl = v;
        } else if (name_is(np, nn, "connection")) {
            f->has_connection = 1;
            for (Py_ssize_t j = 0; j + 5 <= vn; j++) {
                if (strncasecmp(vp + j, "close", 5) == 0)
                    c->close_after = 1;
            }
        } else if (name_is(np, nn, "date")) {
            f->has_date = 1;
        } else if (name_is(np, nn, "server")) {
            f->has_server = 1;
        } else if (name_is(np, nn, "transfer-encoding") || name_is(np, nn, "keep-alive") ||
                   name_is(np, nn, "te") || name_is(np, nn, "trailers") ||
                   name_is(np, nn, "upgrade") || name_is(np, nn, "proxy-authenticate") ||
                   name_is(np, nn, "proxy-authorization")) {
            /* PEP 3333: hop-by-hop headers (RFC 2616 13.5.1, wsgiref's list, "Trailers"
             * spelt as there) are the server's business */
            PyErr_Format(PyExc_ValueError, "hop-by-hop header %R is not allowed in a WSGI app",
                         PyTuple_GET_ITEM(item, 0));
            return -1;
        }
    }
    return 0;
bad_cl:
    PyErr_SetString(PyExc_ValueError, "invalid or repeated Content-Length header");
    return -1;
}

#define LIT(s) s, sizeof(s) - 1

/* Append to the write buffer; the caller reserved the room. */
static char *put(char *p, const char *data, size_t len)
{
    memcpy(p, data, len);
    return p + len;
}

static char *put_str(char *p, PyObject *s)
{
    return put(p, (const char *)PyUnicode_1BYTE_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
}

/* Queue the status line and headers. known_len: the whole body's length when the server
 * knows it (a one-item list or tuple, a file), else -1. Returns 0, or -1 with an exception
 * set (an app error: nothing has been queued). One reservation, then straight copies: this
 * runs once per response. */
int aw_response_headers(aw_conn_t *c, long long known_len)
{
    aw_hdr_flags_t f = {0};
    c->resp_cl = -1;
    if (validate(c, &f) < 0)
        return -1;
    int code = c->resp_status;
    c->no_body = c->is_head || code < 200 || code == 204 || code == 304;
    if (c->streaming && !c->msg_done)
        c->close_after = 1; /* a body not read to its end: this connection ends after */
    /* framing decided first: it may change close_after */
    char framing[48];
    size_t framing_len = 0;
    if (code < 200 || code == 204 || code == 304) {
        /* RFC 9110 8.6: no body, no framing headers of ours */
    } else if (c->resp_cl >= 0) {
        /* the app's length is used, and enforced in aw_response_body/end */
    } else if (known_len >= 0) {
        c->resp_cl = known_len;
        framing_len = (size_t)snprintf(framing, sizeof(framing), "Content-Length: %lld\r\n",
                                       known_len);
    } else if (c->is_head) {
        /* the length is unknown and no body follows: say nothing */
    } else if (c->parser.http_minor >= 1) {
        c->chunked_out = 1;
        framing_len = sizeof("Transfer-Encoding: chunked\r\n") - 1;
        memcpy(framing, "Transfer-Encoding: chunked\r\n", framing_len);
    } else {
        c->close_after = 1; /* HTTP/1.0: the end of the body is the end of the connection */
    }
    static const char conn_close[] = "Connection: close\r\n";
    static const char conn_keep[] = "Connection: keep-alive\r\n";
    const char *conn_hdr = NULL;
    size_t conn_len = 0;
    if (!f.has_connection) {
        if (c->close_after || !c->keep_alive || c->srv->stopping)
            conn_hdr = conn_close, conn_len = sizeof(conn_close) - 1;
        else if (c->parser.http_minor == 0)
            conn_hdr = conn_keep, conn_len = sizeof(conn_keep) - 1;
    }
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(c->headers);
    size_t total = 9 + (size_t)PyUnicode_GET_LENGTH(c->status) + 2 + framing_len + conn_len +
                   (f.has_date ? 0 : c->srv->date_len) + (f.has_server ? 0 : 17) + 2;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(c->headers, i); // borrowed
        total += (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(item, 0)) +
                 (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(item, 1)) + 4;
    }
    char *start = aw_out_reserve(c, total);
    if (!start) {
        PyErr_NoMemory();
        return -1;
    }
    char *p = put(start, LIT("HTTP/1.1 "));
    p = put_str(p, c->status);
    p = put(p, LIT("\r\n"));
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(c->headers, i); // borrowed
        p = put_str(p, PyTuple_GET_ITEM(item, 0));
        p = put(p, LIT(": "));
        p = put_str(p, PyTuple_GET_ITEM(item, 1));
        p = put(p, LIT("\r\n"));
    }
    p = put(p, framing, framing_len);
    if (!f.has_date)
        p = put(p, c->srv->date_line, c->srv->date_len);
    if (!f.has_server)
        p = put(p, LIT("Server: aiowsgi\r\n"));
    if (conn_hdr)
        p = put(p, conn_hdr, conn_len); /* memcpy from NULL is undefined, even for 0 bytes */
    p = put(p, LIT("\r\n"));
    aw_out_commit(c, (size_t)(p - start));
    c->headers_sent = 1;
    return 0;
}

#define PUT_LIT(c, lit) aw_out_copy((c), (lit), sizeof(lit) - 1)

/* Queue body bytes (data/len inside obj, which is kept alive while queued). Returns 0, or
 * -1 (no memory) with an exception set. */
int aw_response_body(aw_conn_t *c, PyObject *obj, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (c->resp_cl >= 0) {
        unsigned long long left = (unsigned long long)c->resp_cl - c->body_sent;
        if (len > left) {
            if (left == 0 || c->body_sent + len > (unsigned long long)c->resp_cl)
                aw_log_message(c->srv, 30,
                               "app returned more than its Content-Length (%lld); "
                               "the excess is dropped",
                               c->resp_cl);
            len = (size_t)left;
        }
    }
    c->body_sent += len;
    if (c->no_body || len == 0)
        return 0;
    char head[24];
    size_t hlen = c->chunked_out ? (size_t)snprintf(head, sizeof(head), "%zx\r\n", len) : 0;
    size_t tlen = c->chunked_out ? 2 : 0;
    if (len <= AW_COPY_MAX || !obj || c->nsegs + 3 > AW_MAX_SEGS) {
        /* small (or no segment left to reference it): chunk head, data and CRLF copied in
         * one piece; the write buffer grows, a copy always fits */
        char *p = aw_out_reserve(c, hlen + len + tlen);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(p, head, hlen);
        memcpy(p + hlen, data, len);
        memcpy(p + hlen + len, "\r\n", tlen);
        aw_out_commit(c, hlen + len + tlen);
        return 0;
    }
    /* large: referenced, not copied */
    if (aw_out_copy(c, head, hlen) < 0 || aw_out_ref(c, obj, data, len) < 0 ||
        aw_out_copy(c, "\r\n", tlen) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The body is complete. Returns 0, or -1 when the app sent less than its Content-Length
 * (the connection must then be cut: the client sees a truncated response). */
int aw_response_end(aw_conn_t *c)
{
    if (c->chunked_out && PUT_LIT(c, "0\r\n\r\n") < 0)
        return -1;
    if (!c->no_body && c->resp_cl >= 0 && c->body_sent < (unsigned long long)c->resp_cl &&
        c->sf_left == 0) {
        aw_log_message(c->srv, 40,
                       "app returned %llu bytes but announced Content-Length %lld; "
                       "connection cut",
                       c->body_sent, c->resp_cl);
        return -1;
    }
    return 0;
}

/* Queue a complete answer of the server's own (4xx/5xx), with Connection: close. */
int aw_response_error(aw_conn_t *c, int status)
{
    const char *reason = aw_status_reason(status);
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%.*sServer: aiowsgi\r\n\r\n"
                     "%s\n",
                     status, reason, strlen(reason) + 1, (int)c->srv->date_len,
                     c->srv->date_line, reason);
    c->resp_status = status;
    c->close_after = 1;
    return aw_out_copy(c, buf, (size_t)n);
}
