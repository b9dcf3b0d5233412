/* environ.c: the PEP 3333 environ, built from the spans parser.c recorded.
 *
 * Owns: the per-listener template of constant entries (copied per request, which is cheaper
 * than setting them one by one), interned keys for common headers, PATH_INFO decoding,
 * joining repeated headers, X-Forwarded-* from trusted peers. Must not read sockets.
 */
#include "core.h"

#include <strings.h>

/* Common request headers, so their "HTTP_*" keys are interned once, not built per request. */
static const char *const common_headers[AW_N_COMMON_HEADERS] = {
    "host", "connection", "user-agent", "accept", "accept-encoding", "accept-language",
    "cookie", "referer", "cache-control", "upgrade-insecure-requests", "origin", "pragma",
    "authorization", "if-modified-since", "if-none-match", "x-forwarded-for",
    "x-forwarded-proto", "x-requested-with", "x-real-ip", "dnt", "sec-fetch-site",
    "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "range", "expect",
    "transfer-encoding", "te", "upgrade", "keep-alive", "if-range", "x-forwarded-host",
};

static void header_key(const char *name, size_t n, char *out)
{
    memcpy(out, "HTTP_", 5);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        out[5 + i] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch);
    }
}

int aw_state_init_headers(aw_state_t *st)
{
    char buf[64];
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++) {
        size_t n = strlen(common_headers[i]);
        header_key(common_headers[i], n, buf);
        st->header_keys[i] = PyUnicode_InternFromString((buf[5 + n] = 0, buf));
        if (!st->header_keys[i])
            return -1;
    }
    return 0;
}

PyObject *aw_environ_template(aw_server_t *s, aw_listener_t *l, PyObject *server_name,
                              PyObject *server_port, PyObject *url_scheme)
{
    aw_state_t *st = s->st;
    (void)l;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    const struct {
        PyObject *key, *value;
    } items[] = {
        {st->k_SCRIPT_NAME, st->v_empty},
        {st->k_SERVER_NAME, server_name},
        {st->k_SERVER_PORT, server_port},
        {st->k_wsgi_version, st->v_wsgi_version},
        {st->k_wsgi_url_scheme, url_scheme},
        {st->k_wsgi_errors, s->errors},
        {st->k_wsgi_multithread, Py_False},
        {st->k_wsgi_multiprocess, s->multiprocess ? Py_True : Py_False},
        {st->k_wsgi_run_once, Py_False},
        {st->k_wsgi_file_wrapper, (PyObject *)st->filewrapper_type},
        {st->k_wsgi_input_terminated, Py_True},
        {st->k_wsgi_input, s->empty_input},
        {s->stream_input ? st->k_aiowsgi_input_sentinel : NULL, s->sentinel},
        {s->stream_input ? st->k_wsgi_input_sentinel : NULL, s->sentinel},
    };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        if (items[i].key && PyDict_SetItem(d, items[i].key, items[i].value) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* PATH_INFO: the percent-decoded path, as a latin-1 str (PEP 3333: bytes as code points). */
static PyObject *decode_path(const char *p, size_t n)
{
    char stackbuf[1024];
    if (n == 0)
        return PyUnicode_FromStringAndSize(NULL, 0);
    char *out = n <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(n);
    if (!out)
        return PyErr_NoMemory();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n &&
            (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    PyObject *r = PyUnicode_DecodeLatin1(out, (Py_ssize_t)o, NULL);
    if (out != stackbuf)
        PyMem_Free(out);
    return r;
}

static int set_str(PyObject *d, PyObject *key, const char *p, size_t n)
{
    PyObject *v = PyUnicode_DecodeLatin1(p, (Py_ssize_t)n, NULL);
    if (!v)
        return -1;
    int r = PyDict_SetItem(d, key, v);
    Py_DECREF(v);
    return r;
}

/* The request target: origin-form "/path?query", absolute-form "http://host/path?query",
 * asterisk-form "*". */
static int set_target(aw_conn_t *c, PyObject *d, const char *u, size_t n)
{
    aw_state_t *st = c->srv->st;
    if (n > 0 && u[0] == '/' && !memchr(u, '%', n) && !memchr(u, '?', n) && !memchr(u, '#', n)) {
        /* the common "/path": RAW_URI and PATH_INFO are the same string */
        PyObject *path = PyUnicode_DecodeLatin1(u, (Py_ssize_t)n, NULL);
        int r = path && PyDict_SetItem(d, st->k_RAW_URI, path) == 0 &&
                        PyDict_SetItem(d, st->k_PATH_INFO, path) == 0 &&
                        PyDict_SetItem(d, st->k_QUERY_STRING, st->v_empty) == 0
                    ? 0
                    : -1;
        Py_XDECREF(path);
        return r;
    }
    if (set_str(d, st->k_RAW_URI, u, n) < 0)
        return -1;
    const char *path = u, *end = u + n;
    if (n > 0 && u[0] != '/' && u[0] != '*') {
        const char *scheme_end = memchr(u, ':', n);
        if (scheme_end && end - scheme_end > 2 && scheme_end[1] == '/' && scheme_end[2] == '/') {
            const char *slash = memchr(scheme_end + 3, '/', (size_t)(end - scheme_end - 3));
            const char *q = memchr(scheme_end + 3, '?', (size_t)(end - scheme_end - 3));
            path = slash && (!q || slash < q) ? slash : (q ? q : end);
        }
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    const char *frag = memchr(path, '#', (size_t)(end - path));
    const char *path_end = q ? q : (frag ? frag : end);
    PyObject *pi = decode_path(path, (size_t)(path_end - path));
    if (!pi || PyDict_SetItem(d, st->k_PATH_INFO, pi) < 0) {
        Py_XDECREF(pi);
        return -1;
    }
    Py_DECREF(pi);
    if (q) {
        const char *qend = frag && frag > q ? frag : end;
        return set_str(d, st->k_QUERY_STRING, q + 1, (size_t)(qend - q - 1));
    }
    return PyDict_SetItem(d, st->k_QUERY_STRING, st->v_empty);
}

static PyObject *key_for(aw_state_t *st, const char *name, size_t n, int *owned)
{
    *owned = 0;
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++) {
        const char *h = common_headers[i];
        if (h[0] == (name[0] | 0x20) && strlen(h) == n && strncasecmp(h, name, n) == 0)
            return st->header_keys[i];
    }
    char stackbuf[256];
    char *buf = n + 5 <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(n + 5);
    if (!buf)
        return PyErr_NoMemory();
    header_key(name, n, buf);
    PyObject *k = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)(n + 5));
    if (buf != stackbuf)
        PyMem_Free(buf);
    *owned = 1;
    return k;
}

/* Repeated headers are joined with "," (RFC 9110 5.3). */
static int set_header(PyObject *d, PyObject *key, const char *v, size_t n)
{
    PyObject *value = PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL);
    if (!value)
        return -1;
    PyObject *old = PyDict_GetItemWithError(d, key); // borrowed
    if (old) {
        PyObject *joined = PyUnicode_FromFormat("%U,%U", old, value);
        Py_SETREF(value, joined);
        if (!value)
            return -1;
    } else if (PyErr_Occurred()) {
        Py_DECREF(value);
        return -1;
    }
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r;
}

/* X-Forwarded-For / -Proto, applied only when the peer is a trusted proxy: the address the
 * nearest proxy saw is the last element of the list. */
static int apply_forwarded(aw_conn_t *c, PyObject *d)
{
    aw_state_t *st = c->srv->st;
    PyObject *xff = PyDict_GetItemWithError(d, st->k_HTTP_X_FORWARDED_FOR); // borrowed
    if (xff) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(xff);
        Py_ssize_t comma = PyUnicode_FindChar(xff, ',', 0, n, -1);
        PyObject *last = PyUnicode_Substring(xff, comma + 1, n);
        PyObject *stripped = last ? PyObject_CallMethod(last, "strip", NULL) : NULL;
        Py_XDECREF(last);
        if (!stripped)
            return -1;
        int r = PyUnicode_GET_LENGTH(stripped) > 0
                    ? PyDict_SetItem(d, st->k_REMOTE_ADDR, stripped)
                    : 0;
        Py_DECREF(stripped);
        if (r < 0)
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *proto = PyDict_GetItemWithError(d, st->k_HTTP_X_FORWARDED_PROTO); // borrowed
    if (proto) {
        if (PyUnicode_CompareWithASCIIString(proto, "https") == 0)
            return PyDict_SetItem(d, st->k_wsgi_url_scheme, st->v_https);
        if (PyUnicode_CompareWithASCIIString(proto, "http") == 0)
            return PyDict_SetItem(d, st->k_wsgi_url_scheme, st->v_http);
    }
    return PyErr_Occurred() ? -1 : 0;
}

PyObject *aw_environ_build(aw_conn_t *c)
{
    aw_state_t *st = c->srv->st;
    llhttp_t *p = &c->parser;
    const char *base = c->rbuf + c->head_start;
    int forwarded = 0;
    PyObject *d = PyDict_Copy(c->lst->environ_tpl);
    if (!d)
        return NULL;
    PyObject *method = st->methods[p->method & 63];
    if (!method) {
        PyErr_SetString(PyExc_ValueError, "unknown method");
        goto error;
    }
    if (PyDict_SetItem(d, st->k_REQUEST_METHOD, method) < 0 ||
        PyDict_SetItem(d, st->k_SERVER_PROTOCOL, p->http_minor ? st->v_http11 : st->v_http10) <
            0 ||
        PyDict_SetItem(d, st->k_REMOTE_ADDR, c->remote_addr) < 0 ||
        PyDict_SetItem(d, st->k_REMOTE_PORT, c->remote_port) < 0)
        goto error;
    if (set_target(c, d, base + c->url.off, c->url.len) < 0)
        goto error;
    for (int i = 0; i < c->nhdrs; i++) {
        aw_header_t *h = &c->hdrs[i];
        const char *name = base + h->name.off;
        size_t nlen = h->name.len;
        const char *v = base + h->value.off;
        size_t vlen = h->value.len;
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--; /* RFC 9112 5: trailing whitespace is not part of the value */
        if (nlen == 0 || memchr(name, '_', nlen))
            continue; /* "X_Forwarded_For" must not pose as X-Forwarded-For */
        PyObject *key;
        int owned = 0;
        if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0)
            key = st->k_CONTENT_TYPE;
        else if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0)
            key = st->k_CONTENT_LENGTH;
        else if (!(key = key_for(st, name, nlen, &owned)))
            goto error;
        if (key == st->k_HTTP_X_FORWARDED_FOR || key == st->k_HTTP_X_FORWARDED_PROTO)
            forwarded = 1;
        int r = set_header(d, key, v, vlen);
        if (owned)
            Py_DECREF(key);
        if (r < 0)
            goto error;
    }
    if (forwarded) {
        /* a unix-socket peer is a local process the socket file's permissions let in (a
         * reverse proxy on the same host): trusted, as gunicorn does */
        const char *ip = PyUnicode_AsUTF8(c->remote_addr);
        if (!ip)
            goto error;
        if ((c->lst->family == AF_UNIX || aw_server_trusts(c->srv, ip)) &&
            apply_forwarded(c, d) < 0)
            goto error;
    }
    return d;
error:
    Py_DECREF(d);
    return NULL;
}
