/* environ.c: the PEP 3333 environ.
 *
 * Owns: the per-listener template of constant entries (copied per request: cheaper than
 * setting them one by one), interned keys for common headers, PATH_INFO decoding, joining
 * repeated headers, X-Forwarded-* from trusted peers, and the peer's address as Python
 * objects. Must not read sockets nor touch the connection: aw_environ_src_t says it all.
 */
#include "environ.h"
#include "http.h"

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

int aw_environ_init_keys(aw_state_t *st)
{
    char buf[64];
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++) {
        size_t n = strlen(common_headers[i]);
        header_key(common_headers[i], n, buf);
        buf[5 + n] = 0;
        if (!(st->header_keys[i] = PyUnicode_InternFromString(buf)))
            return -1;
    }
    return 0;
}

PyObject *aw_environ_template(aw_state_t *st, PyObject *server_name, PyObject *server_port,
                              PyObject *url_scheme, PyObject *errors, int multithread,
                              int multiprocess, PyObject *input, PyObject *sentinel)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    const struct {
        PyObject *key, *value;
    } items[] = {
        {.key = st->k_SCRIPT_NAME, .value = st->v_empty},
        {.key = st->k_SERVER_NAME, .value = server_name},
        {.key = st->k_SERVER_PORT, .value = server_port},
        {.key = st->k_wsgi_version, .value = st->v_wsgi_version},
        {.key = st->k_wsgi_url_scheme, .value = url_scheme},
        {.key = st->k_wsgi_errors, .value = errors},
        {.key = st->k_wsgi_multithread, .value = multithread ? Py_True : Py_False},
        {.key = st->k_wsgi_multiprocess, .value = multiprocess ? Py_True : Py_False},
        {.key = st->k_wsgi_run_once, .value = Py_False},
        {.key = st->k_wsgi_file_wrapper, .value = (PyObject *)st->filewrapper_type},
        {.key = st->k_wsgi_input_terminated, .value = Py_True},
        {.key = st->k_wsgi_input, .value = input},
        {.key = sentinel ? st->k_aiowsgi_input_sentinel : NULL, .value = sentinel},
        {.key = sentinel ? st->k_wsgi_input_sentinel : NULL, .value = sentinel},
    };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        if (items[i].key && PyDict_SetItem(d, items[i].key, items[i].value) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* ---- the peer ---------------------------------------------------------------------------- */

void aw_peer_set(aw_peer_t *peer, const struct sockaddr *sa)
{
    *peer = (aw_peer_t){.family = sa->sa_family};
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, peer->ip, sizeof(peer->ip));
        peer->port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, peer->ip, sizeof(peer->ip));
        peer->port = ntohs(a->sin6_port);
    }
}

void aw_peer_clear(aw_peer_t *peer)
{
    Py_CLEAR(peer->addr);
    Py_CLEAR(peer->port_str);
}

int aw_peer_holds_objects(const aw_peer_t *peer)
{
    return peer->addr || peer->port_str;
}

/* REMOTE_ADDR and REMOTE_PORT ("" for a unix socket), made once per connection. */
static int set_peer(aw_state_t *st, aw_peer_t *peer, PyObject *d)
{
    if (!peer->addr && !(peer->addr = PyUnicode_FromString(peer->ip)))
        return -1;
    if (!peer->port_str) {
        peer->port_str = peer->family == AF_UNIX ? Py_NewRef(st->v_empty)
                                                 : PyUnicode_FromFormat("%d", peer->port);
        if (!peer->port_str)
            return -1;
    }
    if (PyDict_SetItem(d, st->k_REMOTE_ADDR, peer->addr) < 0)
        return -1;
    return PyDict_SetItem(d, st->k_REMOTE_PORT, peer->port_str);
}

/* ---- the target -------------------------------------------------------------------------- */

/* PATH_INFO: the percent-decoded path, as a latin-1 str (PEP 3333: bytes as code points). */
static PyObject *decode_path(const char *p, size_t n)
{
    char stackbuf[1024];
    if (n == 0)
        return PyUnicode_FromStringAndSize(NULL, 0);
    char *out = n <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(n);
    if (!out)
        return PyErr_NoMemory();
    size_t o = aw_percent_decode(p, n, out);
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

/* The common "/path": RAW_URI and PATH_INFO are the same string, QUERY_STRING is empty. */
static int set_plain_path(aw_state_t *st, PyObject *d, const char *u, size_t n)
{
    PyObject *path = PyUnicode_DecodeLatin1(u, (Py_ssize_t)n, NULL);
    int r = path && PyDict_SetItem(d, st->k_RAW_URI, path) == 0 &&
                    PyDict_SetItem(d, st->k_PATH_INFO, path) == 0 &&
                    PyDict_SetItem(d, st->k_QUERY_STRING, st->v_empty) == 0
                ? 0
                : -1;
    Py_XDECREF(path);
    return r;
}

/* PATH_INFO for an absolute-form target whose path is empty: "/" (RFC 9112 3.2.1), or "*" for
 * OPTIONS, which then asks about the server as a whole (3.2.4). */
static PyObject *empty_path(const aw_request_t *req)
{
    return PyUnicode_FromString(req->method == HTTP_OPTIONS ? "*" : "/");
}

/* RAW_URI (the target as sent), then PATH_INFO and QUERY_STRING from the parts parser.c found:
 * the path (and query) of the origin or absolute form, or the whole asterisk or authority
 * form; a fragment is dropped. */
static int set_target(aw_state_t *st, PyObject *d, const aw_request_t *req)
{
    const char *base = req->head, *u = base + req->target.off;
    size_t n = req->target.len;
    if (req->form == AW_TARGET_ORIGIN && !memchr(u, '%', n) && !memchr(u, '?', n) &&
        !memchr(u, '#', n))
        return set_plain_path(st, d, u, n);
    if (set_str(d, st->k_RAW_URI, u, n) < 0)
        return -1;
    aw_target_t t;
    aw_path_split(base + req->path.off, req->path.len, &t);
    PyObject *pi = t.path_len == 0 && req->form == AW_TARGET_ABSOLUTE
                       ? empty_path(req)
                       : decode_path(t.path, t.path_len);
    if (!pi || PyDict_SetItem(d, st->k_PATH_INFO, pi) < 0) {
        Py_XDECREF(pi);
        return -1;
    }
    Py_DECREF(pi);
    if (!t.query)
        return PyDict_SetItem(d, st->k_QUERY_STRING, st->v_empty);
    return set_str(d, st->k_QUERY_STRING, t.query, t.query_len);
}

/* ---- headers ----------------------------------------------------------------------------- */

/* The environ key of a header (a new reference). */
static PyObject *key_for(aw_state_t *st, const char *name, size_t n)
{
    if (n == 12 && strncasecmp(name, "content-type", 12) == 0)
        return Py_NewRef(st->k_CONTENT_TYPE);
    if (n == 14 && strncasecmp(name, "content-length", 14) == 0)
        return Py_NewRef(st->k_CONTENT_LENGTH);
    for (int i = 0; i < AW_N_COMMON_HEADERS; i++) {
        const char *h = common_headers[i];
        if (h[0] == (name[0] | 0x20) && strlen(h) == n && strncasecmp(h, name, n) == 0)
            return Py_NewRef(st->header_keys[i]);
    }
    char stackbuf[256];
    char *buf = n + 5 <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(n + 5);
    if (!buf)
        return PyErr_NoMemory();
    header_key(name, n, buf);
    PyObject *k = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)(n + 5));
    if (buf != stackbuf)
        PyMem_Free(buf);
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

/* Every field as HTTP_* (CONTENT_TYPE, CONTENT_LENGTH). Sets *forwarded when X-Forwarded-For
 * or -Proto came. */
static int set_headers(aw_state_t *st, PyObject *d, const aw_request_t *req, int *forwarded)
{
    const char *base = req->head;
    for (int i = 0; i < req->nfields; i++) {
        const aw_field_t *f = &req->fields[i];
        const char *name = base + f->name.off, *v = base + f->value.off;
        size_t nlen = f->name.len, vlen = f->value.len;
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--; /* RFC 9112 5: trailing whitespace is not part of the value */
        if (nlen == 0 || memchr(name, '_', nlen))
            continue; /* "X_Forwarded_For" must not pose as X-Forwarded-For */
        PyObject *key = key_for(st, name, nlen);
        if (!key)
            return -1;
        *forwarded |= key == st->k_HTTP_X_FORWARDED_FOR || key == st->k_HTTP_X_FORWARDED_PROTO;
        int r = set_header(d, key, v, vlen);
        Py_DECREF(key);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* RFC 9112 3.2.2: with an absolute-form target, the target's authority stands for the Host
 * field (which must still have come, and be valid). */
static int set_authority_host(aw_state_t *st, PyObject *d, const aw_request_t *req)
{
    PyObject *key = key_for(st, "host", 4);
    if (!key)
        return -1;
    int r = set_str(d, key, req->head + req->authority.off, req->authority.len);
    Py_DECREF(key);
    return r;
}

/* X-Forwarded-For / -Proto, applied only when the peer is a trusted proxy: the address the
 * nearest proxy saw is the last element of the list. */
static int apply_forwarded(aw_state_t *st, PyObject *d)
{
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

static PyObject *method_name(aw_state_t *st, const aw_request_t *req)
{
    PyObject *m = req->method >= 0 && req->method < AW_N_METHODS ? st->methods[req->method]
                                                                  : NULL;
    if (!m)
        PyErr_SetString(PyExc_ValueError, "unknown method");
    return m; // borrowed
}

/* The environ of a complete head. Returns a new dict, or NULL with an exception set. */
PyObject *aw_environ_build(const aw_environ_src_t *src)
{
    aw_state_t *st = src->st;
    const aw_request_t *req = src->req;
    int forwarded = 0;
    PyObject *d = PyDict_Copy(src->tpl);
    PyObject *method = method_name(st, req); // borrowed
    if (!d || !method)
        goto error;
    if (PyDict_SetItem(d, st->k_REQUEST_METHOD, method) < 0 ||
        PyDict_SetItem(d, st->k_SERVER_PROTOCOL, req->http_minor ? st->v_http11 : st->v_http10) <
            0 ||
        set_peer(st, src->peer, d) < 0 ||
        set_target(st, d, req) < 0 || set_headers(st, d, req, &forwarded) < 0 ||
        (req->form == AW_TARGET_ABSOLUTE && set_authority_host(st, d, req) < 0))
        goto error;
    /* a unix-socket peer is a local process the socket file's permissions let in (a reverse
     * proxy on the same host): trusted, as gunicorn does */
    if (forwarded && (src->unix_listener || aw_trust_has(src->trust, src->peer->ip)) &&
        apply_forwarded(st, d) < 0)
        goto error;
    return d;
error:
    Py_XDECREF(d);
    return NULL;
}

/* For an answer the server gives itself (the access log's environ): the peer, and what the
 * head said when it was complete (src->req not NULL). */
PyObject *aw_environ_minimal(const aw_environ_src_t *src)
{
    aw_state_t *st = src->st;
    const aw_request_t *req = src->req;
    PyObject *d = PyDict_New();
    if (!d || set_peer(st, src->peer, d) < 0)
        goto error;
    if (req) {
        PyObject *method = req->method >= 0 && req->method < AW_N_METHODS
                               ? st->methods[req->method]
                               : NULL; // borrowed
        if ((method ? PyDict_SetItem(d, st->k_REQUEST_METHOD, method)
                    : set_str(d, st->k_REQUEST_METHOD, req->head + req->method_token.off,
                              req->method_token.len)) < 0 ||
            set_str(d, st->k_RAW_URI, req->head + req->target.off, req->target.len) < 0 ||
            PyDict_SetItem(d, st->k_SERVER_PROTOCOL, req->http_minor ? st->v_http11
                                                                     : st->v_http10) < 0)
            goto error;
    }
    return d;
error:
    Py_XDECREF(d);
    return NULL;
}
