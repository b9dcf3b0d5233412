/* static.c: answers to requests under a --static prefix, from files, on the loop thread.
 *
 * Owns: the mounts (URL prefix to directory, longest prefix first), matching a request's
 * decoded path to one and refusing paths that try to leave it, the choice of the file
 * (index.html for a directory, a precompressed sibling the client accepts), the conditional
 * requests (RFC 9110 13) and byte ranges (RFC 9110 14) on it, Cache-Control, and every byte of
 * the answer's head. Must not include Python.h, call the app nor build an environ: response.c
 * queues what aw_static_answer writes, conn.c ends the request the usual way.
 */
#include "static.h"
#include "filecache.h"
#include "mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define AW_STATIC_YEAR "31536000" /* max-age of a file whose name carries its content's hash */
#define AW_MIME_TYPES "/etc/mime.types"

typedef struct {
    char *prefix;      /* "/static": no trailing '/'; "" for "/" */
    size_t prefix_len;
    aw_root_t root;
} aw_mount_t;

struct aw_static {
    aw_mount_t *mounts; /* longest prefix first */
    int nmounts;
    aw_mime_t *mime;
    aw_fcache_t *cache;
    long long max_age;
};

/* ---- mounts ------------------------------------------------------------------------------ */

/* max_age: Cache-Control's max-age, in seconds. Returns NULL when out of memory. */
aw_static_t *aw_static_new(long long max_age)
{
    aw_static_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->max_age = max_age;
    st->mime = aw_mime_new(AW_MIME_TYPES);
    st->cache = aw_fcache_new();
    if (!st->mime || !st->cache) {
        aw_static_free(st);
        return NULL;
    }
    return st;
}

void aw_static_free(aw_static_t *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nmounts; i++) {
        free(st->mounts[i].prefix);
        aw_root_free(&st->mounts[i].root);
    }
    free(st->mounts);
    aw_fcache_free(st->cache);
    aw_mime_free(st->mime);
    free(st);
}

/* A URL prefix: "/" then segments, none empty, "." or ".."; a trailing '/' is dropped. Returns
 * its length without that '/', or -EINVAL. */
static long prefix_length(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || p[0] != '/')
        return -EINVAL;
    while (n > 0 && p[n - 1] == '/')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t j = i + 1;
        while (j < n && p[j] != '/')
            j++;
        size_t seg = j - i - 1;
        if (seg == 0 || (seg <= 2 && strncmp(p + i + 1, "..", seg) == 0))
            return -EINVAL;
    }
    return (long)n;
}

/* Serve the files beneath dir at URL prefix. Returns 0, or -EINVAL (prefix), -EEXIST (prefix
 * mounted already), an open error of dir (-ENOENT, -ENOTDIR, ...), -ENOSYS (no safe way to
 * resolve paths here) or -ENOMEM. */
int aw_static_mount(aw_static_t *st, const char *prefix, const char *dir)
{
    long plen = prefix_length(prefix);
    if (plen < 0)
        return (int)plen;
    int at = 0;
    for (int i = 0; i < st->nmounts; i++) {
        const aw_mount_t *m = &st->mounts[i];
        if (m->prefix_len == (size_t)plen && memcmp(m->prefix, prefix, (size_t)plen) == 0)
            return -EEXIST;
        at += m->prefix_len > (size_t)plen;
    }
    aw_mount_t m = {.prefix = strndup(prefix, (size_t)plen), .prefix_len = (size_t)plen};
    aw_mount_t *all = realloc(st->mounts, (size_t)(st->nmounts + 1) * sizeof(*all));
    int r = m.prefix && all ? aw_root_init(&m.root, dir) : -ENOMEM;
    if (all)
        st->mounts = all;
    if (r < 0) {
        free(m.prefix);
        return r;
    }
    memmove(&all[at + 1], &all[at], (size_t)(st->nmounts - at) * sizeof(*all));
    all[at] = m;
    st->nmounts++;
    return 0;
}

/* ---- routing ----------------------------------------------------------------------------- */

static const aw_mount_t *match(const aw_static_t *st, const char *path, size_t len)
{
    for (int i = 0; i < st->nmounts; i++) {
        const aw_mount_t *m = &st->mounts[i];
        size_t n = m->prefix_len;
        if (len >= n && memcmp(path, m->prefix, n) == 0 && (len == n || path[n] == '/'))
            return m;
    }
    return NULL;
}

/* Below the prefix, a path that tries to leave the directory or to confuse it: a NUL, a
 * backslash, a "." or ".." segment (decoded, so "%2e%2e" too). Returns 403, or 0. */
static int refusal(const char *p, size_t n)
{
    if (memchr(p, '\0', n) || memchr(p, '\\', n))
        return 403;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        if ((j - i == 1 && p[i] == '.') || (j - i == 2 && p[i] == '.' && p[i + 1] == '.'))
            return 403;
        i = j + 1;
    }
    return 0;
}

/* Whether the request's decoded path (what PATH_INFO would hold) is under a mount; if so,
 * *route holds what aw_static_answer needs. The query string plays no part. */
int aw_static_route(aw_static_t *st, const aw_request_t *req, aw_static_route_t *route)
{
    if (!st)
        return 0;
    const char *base = req->head;
    aw_target_t t;
    aw_path_split(base + req->path.off, req->path.len, &t);
    size_t n = t.path_len < AW_STATIC_PATH_MAX ? t.path_len : AW_STATIC_PATH_MAX;
    size_t len = aw_percent_decode(t.path, n, route->path);
    route->path[len] = '\0';
    const aw_mount_t *m = match(st, route->path, len);
    if (!m)
        return 0;
    route->st = st;
    route->mount = m;
    route->req = req;
    route->base = base;
    route->target = t;
    route->path_len = len;
    route->rel = m->prefix_len;
    while (route->rel < len && route->path[route->rel] == '/')
        route->rel++;
    route->refused = n < t.path_len ? 404 : refusal(route->path + m->prefix_len,
                                                     len - m->prefix_len);
    return 1;
}

/* ---- request fields ---------------------------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

/* The next field called name (lower case) from index from on: its value without surrounding
 * whitespace in *v. Returns the index after it, or 0 when there is none. */
static int next_field(const aw_static_route_t *r, const char *name, size_t n, int from,
                      const char **v, size_t *vn)
{
    const aw_request_t *req = r->req;
    for (int i = from; i < req->nfields; i++) {
        const aw_field_t *f = &req->fields[i];
        if (f->name.len != n || strncasecmp(r->base + f->name.off, name, n) != 0)
            continue;
        const char *p = r->base + f->value.off;
        size_t len = f->value.len;
        while (len > 0 && (p[0] == ' ' || p[0] == '\t'))
            p++, len--;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        *v = p;
        *vn = len;
        return i + 1;
    }
    return 0;
}

enum { AW_CODING_BR = 1, AW_CODING_ZSTD = 2, AW_CODING_GZIP = 4, AW_CODING_ANY = 8 };

static unsigned coding_bit(const char *t, size_t n)
{
    if (n == 2 && strncasecmp(t, "br", 2) == 0)
        return AW_CODING_BR;
    if (n == 4 && strncasecmp(t, "zstd", 4) == 0)
        return AW_CODING_ZSTD;
    if ((n == 4 && strncasecmp(t, "gzip", 4) == 0) || (n == 6 && strncasecmp(t, "x-gzip", 6) == 0))
        return AW_CODING_GZIP;
    return n == 1 && t[0] == '*' ? AW_CODING_ANY : 0;
}

/* Whether the parameters of a list element (";q=0", ";q=0.000") make its weight zero. */
static int weight_is_zero(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p == end || *p != '0')
                return 0;
            for (p++; p < end && (*p == '.' || *p == '0'); p++) {
            }
            return p == end || *p == ' ' || *p == '\t' || *p == ';';
        }
        while (p < end && *p != ';')
            p++;
    }
    return 0;
}

/* The codings of Accept-Encoding (RFC 9110 12.5.3) with a weight above zero: named, or
 * covered by "*" and not named with a zero weight. */
static unsigned accepted_codings(const aw_static_route_t *r)
{
    unsigned yes = 0, no = 0, any = 0;
    const char *v;
    size_t n;
    for (int i = 0; (i = next_field(r, LIT("accept-encoding"), i, &v, &n)) > 0;) {
        for (const char *p = v, *end = v + n; p < end;) {
            const char *e = memchr(p, ',', (size_t)(end - p));
            e = e ? e : end;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            const char *t = p;
            while (p < e && *p != ';' && *p != ' ' && *p != '\t')
                p++;
            unsigned bit = coding_bit(t, (size_t)(p - t));
            int zero = weight_is_zero(p, e);
            if (bit == AW_CODING_ANY)
                any = !zero;
            else if (zero)
                no |= bit;
            else
                yes |= bit;
            p = e + 1;
        }
    }
    if (any)
        yes |= AW_CODING_BR | AW_CODING_ZSTD | AW_CODING_GZIP;
    return yes & ~no;
}

/* ---- conditional requests and ranges ----------------------------------------------------- */

/* Whether a list of entity-tags (If-Match, If-None-Match) holds etag; "*" holds any. Weak
 * comparison (RFC 9110 8.8.3.2) lets W/"x" match "x"; strong comparison never matches a weak
 * tag. A malformed list holds nothing. */
static int etag_listed(const char *v, size_t n, const char *etag, size_t elen, int weak)
{
    size_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == n)
            return 0;
        if (v[i] == '*')
            return 1;
        int is_weak = n - i > 2 && v[i] == 'W' && v[i + 1] == '/';
        i += is_weak ? 2 : 0;
        if (v[i] != '"')
            return 0;
        size_t start = i++;
        while (i < n && v[i] != '"')
            i++;
        if (i++ == n)
            return 0;
        if ((weak || !is_weak) && i - start == elen && memcmp(v + start, etag, elen) == 0)
            return 1;
    }
}

/* Whether any field called name lists etag. Returns -1 when there is no such field. */
static int etag_fields(const aw_static_route_t *r, const char *name, size_t nlen,
                       const char *etag, size_t elen, int weak)
{
    const char *v;
    size_t n;
    int found = -1;
    for (int i = 0; (i = next_field(r, name, nlen, i, &v, &n)) > 0;)
        found = (found == 1) | etag_listed(v, n, etag, elen, weak);
    return found;
}

/* The date in the first field called name, if it is a valid HTTP-date. */
static int date_field(const aw_static_route_t *r, const char *name, size_t nlen, time_t *t)
{
    const char *v;
    size_t n;
    return next_field(r, name, nlen, 0, &v, &n) > 0 && aw_http_date_parse(v, n, t) == 0;
}

/* RFC 9110 13.2.2, in its order, for a GET or HEAD: 412, 304, or 0 (go on). */
static int preconditions(const aw_static_route_t *r, const aw_file_t *f, const char *etag,
                         size_t elen)
{
    time_t t;
    int match = etag_fields(r, LIT("if-match"), etag, elen, 0);
    if (match == 0)
        return 412;
    if (match < 0 && date_field(r, LIT("if-unmodified-since"), &t) && f->mtime.tv_sec > t)
        return 412;
    int none_match = etag_fields(r, LIT("if-none-match"), etag, elen, 1);
    if (none_match >= 0)
        return none_match ? 304 : 0;
    if (date_field(r, LIT("if-modified-since"), &t) && f->mtime.tv_sec <= t)
        return 304;
    return 0;
}

/* If-Range (RFC 9110 13.1.5): the range is wanted only of the version it names, by strong
 * entity-tag or by its exact Last-Modified date. */
static int if_range_holds(const aw_static_route_t *r, const aw_file_t *f, const char *etag,
                          size_t elen)
{
    const char *v;
    size_t n;
    time_t t;
    if (!next_field(r, LIT("if-range"), 0, &v, &n))
        return 1;
    if (n > 0 && (v[0] == '"' || v[0] == 'W'))
        return n == elen && memcmp(v, etag, elen) == 0;
    return aw_http_date_parse(v, n, &t) == 0 && t == f->mtime.tv_sec;
}

/* Digits at *p (at most 18: no overflow). Returns 1 with *v set, or 0 when there are none. */
static int take_number(const char **p, const char *end, long long *v)
{
    int n = 0;
    for (*v = 0; *p < end && **p >= '0' && **p <= '9' && n < 18; (*p)++, n++)
        *v = *v * 10 + (**p - '0');
    return n > 0 && (*p == end || **p < '0' || **p > '9');
}

/* RFC 9110 14.2: one byte range of a GET ("bytes=0-99", "bytes=100-", "bytes=-100"). Returns
 * 200 (the whole file: no Range, several ranges, one that is malformed, or If-Range naming
 * another version), 206 with [*first, *last] set, or 416. */
static int byte_range(const aw_static_route_t *r, const aw_file_t *f, const char *etag,
                      size_t elen, long long *first, long long *last)
{
    const char *v;
    size_t n;
    if (r->req->method != HTTP_GET || !next_field(r, LIT("range"), 0, &v, &n) ||
        !if_range_holds(r, f, etag, elen))
        return 200;
    if (n < 6 || strncasecmp(v, "bytes=", 6) != 0 || memchr(v, ',', n))
        return 200;
    const char *p = v + 6, *end = v + n;
    long long a = 0, b = 0, size = f->size;
    int has_a = take_number(&p, end, &a);
    if (p == end || *p++ != '-')
        return 200;
    int has_b = take_number(&p, end, &b);
    if (p != end || (!has_a && !has_b) || (has_a && has_b && b < a))
        return 200;
    if (!has_a) { /* the last b bytes */
        if (b == 0 || size == 0)
            return 416;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 206;
    }
    if (a >= size)
        return 416;
    *first = a;
    *last = has_b && b < size - 1 ? b : size - 1;
    return 206;
}

/* ---- Cache-Control ----------------------------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether a file name carries a hash of its content, so that a new content gets a new name
 * and the file may be cached for good: "app.3f2a1b9c.js" (8 to 64 hex digits between dots:
 * webpack, Django, Parcel) or "index-B7qzK3xA.js" (8 letters, digits or '_' after a dash,
 * with an upper case letter: Vite, esbuild). Both need a digit and a letter, so that
 * "icon-1024x1024.png" or "backup.20240101.tar" are not mistaken for hashes. */
static int hashed_name(const char *name, size_t n)
{
    size_t seg = n, dot, i;
    while (seg > 0 && name[seg - 1] != '/')
        seg--;
    for (dot = n; dot > seg && name[dot - 1] != '.'; dot--) {
    }
    if (dot <= seg + 1)
        return 0;
    int digits = 0, letters = 0, upper = 0, hex = 1;
    for (i = dot - 1; i > seg && (is_digit(name[i - 1]) || is_letter(name[i - 1]) ||
                                  name[i - 1] == '_');
         i--) {
        char c = name[i - 1];
        digits += is_digit(c);
        letters += is_letter(c);
        upper += c >= 'A' && c <= 'Z';
        hex &= is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    size_t len = dot - 1 - i;
    if (i == seg || !digits || !letters)
        return 0;
    if (name[i - 1] == '.')
        return hex && len >= 8 && len <= 64;
    return name[i - 1] == '-' && len == 8 && upper;
}

/* ---- writing the answer ------------------------------------------------------------------ */

/* Where the answer's bytes go; the room was reserved from aw_static_room(), and a write that
 * would not fit (it cannot happen) marks the buffer full instead. */
typedef struct {
    char *p, *end;
    int full;
} aw_buf_t;

static void put(aw_buf_t *b, const char *s, size_t n)
{
    if (b->full || (size_t)(b->end - b->p) < n) {
        b->full = 1;
        return;
    }
    memcpy(b->p, s, n);
    b->p += n;
}

static void put_str(aw_buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

/* v in base 10 or 16, by hand: snprintf was the most of the user-space time of an answer. */
static void put_num(aw_buf_t *b, unsigned long long v, unsigned base)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    put(b, digits + sizeof(digits) - n, n);
}

/* The status line and what every answer says: Date, Server, Connection. */
static void head_start(aw_buf_t *b, int status, const aw_static_ctx_t *ctx)
{
    put(b, LIT("HTTP/1.1 "));
    put_num(b, (unsigned)status, 10);
    put(b, LIT(" "));
    put_str(b, aw_status_reason(status));
    put(b, LIT("\r\n"));
    put(b, ctx->date, ctx->date_len);
    put(b, LIT("Server: aiowsgi\r\n"));
    if (ctx->keep_alive)
        put(b, LIT("Connection: keep-alive\r\n"));
    else
        put(b, LIT("Connection: close\r\n"));
}

/* An answer without a file, its reason as a short text: the head up to the extra fields the
 * caller adds, then plain_end(). */
static void plain_head(aw_buf_t *b, int status, const aw_static_ctx_t *ctx)
{
    head_start(b, status, ctx);
    put(b, LIT("Content-Type: text/plain; charset=utf-8\r\nContent-Length: "));
    put_num(b, strlen(aw_status_reason(status)) + 1, 10);
    put(b, LIT("\r\n"));
}

static void plain_end(aw_buf_t *b, int status, const aw_static_route_t *r,
                      aw_static_answer_t *ans)
{
    const char *reason = aw_status_reason(status);
    put(b, LIT("\r\n"));
    ans->status = status;
    if (r->req->method == HTTP_HEAD)
        return;
    put(b, reason, strlen(reason));
    put(b, LIT("\n"));
    ans->body_bytes = strlen(reason) + 1;
}

static void answer_plain(aw_buf_t *b, int status, const aw_static_route_t *r,
                         const aw_static_ctx_t *ctx, aw_static_answer_t *ans)
{
    plain_head(b, status, ctx);
    if (status == 405)
        put(b, LIT("Allow: GET, HEAD\r\n"));
    plain_end(b, status, r, ans);
}

/* A directory named without its trailing slash: 301 to the name with one, so that the
 * relative links of its index.html resolve below it. The target's own bytes are reused (they
 * are a valid URI already), the query too; a leading "//" is written "/": it would name
 * another host. */
static void answer_redirect(aw_buf_t *b, const aw_static_route_t *r, const aw_static_ctx_t *ctx,
                            aw_static_answer_t *ans)
{
    const char *p = r->target.path;
    size_t n = r->target.path_len;
    while (n > 0 && p[0] == '/')
        p++, n--;
    plain_head(b, 301, ctx);
    put(b, LIT("Location: /"));
    put(b, p, n);
    put(b, "/", n > 0);
    if (r->target.query) {
        put(b, LIT("?"));
        put(b, r->target.query, r->target.query_len);
    }
    put(b, LIT("\r\n"));
    plain_end(b, 301, r, ans);
}

/* ---- the file ---------------------------------------------------------------------------- */

/* The file that answers, and how. */
typedef struct {
    const aw_file_t *file; /* the representation sent: the file, or a precompressed sibling */
    const char *name;      /* the file's path below the prefix: its type and its caching */
    size_t name_len;
    const char *coding; /* the sibling's Content-Encoding, or NULL */
    int vary;           /* siblings exist: the answer depends on Accept-Encoding */
} aw_pick_t;

/* Precompressed siblings ("app.js.br"), in the order of preference when several are
 * accepted. */
static const struct {
    const char *suffix, *coding;
    size_t len;
    unsigned bit;
} siblings[] = {
    {.suffix = ".br", .coding = "br", .len = 3, .bit = AW_CODING_BR},
    {.suffix = ".zst", .coding = "zstd", .len = 4, .bit = AW_CODING_ZSTD},
    {.suffix = ".gz", .coding = "gzip", .len = 3, .bit = AW_CODING_GZIP},
};

#define N_SIBLINGS (sizeof(siblings) / sizeof(siblings[0]))

/* Which siblings of the file exist, and the one sent instead of it, if the client accepts one. */
static void pick_sibling(aw_static_route_t *r, long long now, aw_pick_t *pick)
{
    const aw_mount_t *m = r->mount;
    unsigned accepted = accepted_codings(r);
    char *name = r->path + r->rel; /* pick->name: r->path has room for a suffix */
    for (size_t i = 0; i < N_SIBLINGS; i++) {
        memcpy(name + pick->name_len, siblings[i].suffix, siblings[i].len);
        const aw_file_t *f =
            aw_fcache_get(r->st->cache, &m->root, name, pick->name_len + siblings[i].len, now);
        if (f->kind != AW_FILE_REGULAR)
            continue;
        pick->vary = 1;
        if ((accepted & siblings[i].bit) && !pick->coding) {
            pick->file = f;
            pick->coding = siblings[i].coding;
        }
    }
    name[pick->name_len] = '\0';
}

/* The file for the route's path (index.html for a directory's): 0 with *pick set, or the
 * status of an answer without one (*err: the error behind a 5xx). */
static int find_file(aw_static_route_t *r, long long now, aw_pick_t *pick, int *err)
{
    const aw_mount_t *m = r->mount;
    char *rel = r->path + r->rel;
    size_t n = r->path_len - r->rel;
    int dir_form = r->path_len > 0 && r->path[r->path_len - 1] == '/';
    if (dir_form) {
        memcpy(rel + n, "index.html", 11);
        n += 10;
    }
    aw_fcache_begin(r->st->cache);
    const aw_file_t *f = aw_fcache_get(r->st->cache, &m->root, rel, n, now);
    switch (f->kind) {
    case AW_FILE_REGULAR:
        break;
    case AW_FILE_DIR:
        return dir_form ? 404 : 301; /* never a listing */
    case AW_FILE_MISSING:
        return 404;
    case AW_FILE_FORBIDDEN:
        return 403;
    case AW_FILE_FAILED:
        *err = f->err;
        return f->err == EMFILE || f->err == ENFILE || f->err == ENOMEM || f->err == EBUSY ? 503
                                                                                           : 500;
    }
    *pick = (aw_pick_t){.file = f, .name = rel, .name_len = n};
    pick_sibling(r, now, pick);
    return 0;
}

/* The representation's entity-tag, from its modification time and size as nginx makes it
 * ("<seconds hex>-<size hex>"), so that both give a file the same one. Returns its length. */
static size_t entity_tag(const aw_file_t *f, char out[48])
{
    aw_buf_t b = {.p = out, .end = out + 48};
    put(&b, LIT("\""));
    put_num(&b, (unsigned long long)f->mtime.tv_sec, 16);
    put(&b, LIT("-"));
    put_num(&b, (unsigned long long)f->size, 16);
    put(&b, LIT("\""));
    return (size_t)(b.p - out);
}

/* What describes the bytes sent (not part of a 304). */
static void representation(aw_buf_t *b, const aw_static_route_t *r, const aw_pick_t *pick,
                           int status, long long first, long long last)
{
    const aw_file_t *f = pick->file;
    char date[AW_HTTP_DATE_LEN + 1];
    size_t n = aw_http_date(f->mtime.tv_sec, date);
    put(b, LIT("Content-Type: "));
    put_str(b, aw_mime_type(r->st->mime, pick->name, pick->name_len));
    put(b, LIT("\r\nContent-Length: "));
    put_num(b, (unsigned long long)(last - first + 1), 10);
    if (status == 206) {
        put(b, LIT("\r\nContent-Range: bytes "));
        put_num(b, (unsigned long long)first, 10);
        put(b, LIT("-"));
        put_num(b, (unsigned long long)last, 10);
        put(b, LIT("/"));
        put_num(b, (unsigned long long)f->size, 10);
    }
    if (pick->coding) {
        put(b, LIT("\r\nContent-Encoding: "));
        put_str(b, pick->coding);
    }
    put(b, LIT("\r\nLast-Modified: "));
    put(b, date, n);
    put(b, LIT("\r\nAccept-Ranges: bytes\r\n"));
}

static void validators(aw_buf_t *b, const aw_static_t *st, const aw_pick_t *pick,
                       const char *etag, size_t elen)
{
    if (pick->vary)
        put(b, LIT("Vary: Accept-Encoding\r\n"));
    put(b, LIT("ETag: "));
    put(b, etag, elen);
    if (hashed_name(pick->name, pick->name_len)) {
        put(b, LIT("\r\nCache-Control: public, max-age=" AW_STATIC_YEAR ", immutable\r\n"));
        return;
    }
    put(b, LIT("\r\nCache-Control: public, max-age="));
    put_num(b, (unsigned long long)st->max_age, 10);
    put(b, LIT("\r\n"));
}

/* 200, 206 or 304 with the file (its bytes follow, sent with sendfile: ans->fd is a duplicate
 * of the cache's descriptor, so a refreshed cache entry cannot close it under the send); or
 * 412, 416, 503 without it. */
static void answer_file(aw_buf_t *b, const aw_static_route_t *r, const aw_static_ctx_t *ctx,
                        const aw_pick_t *pick, aw_static_answer_t *ans)
{
    const aw_file_t *f = pick->file;
    char etag[48];
    size_t elen = entity_tag(f, etag);
    long long first = 0, last = f->size - 1;
    int status = preconditions(r, f, etag, elen);
    status = status ? status : byte_range(r, f, etag, elen, &first, &last);
    if (status == 416) {
        plain_head(b, 416, ctx);
        put(b, LIT("Content-Range: bytes */"));
        put_num(b, (unsigned long long)f->size, 10);
        put(b, LIT("\r\nAccept-Ranges: bytes\r\n"));
        plain_end(b, 416, r, ans);
        return;
    }
    int send = (status == 200 || status == 206) && r->req->method == HTTP_GET && last >= first;
    if (status == 412 || (send && (ans->fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0)) < 0)) {
        ans->err = status == 412 ? 0 : errno;
        answer_plain(b, status == 412 ? 412 : 503, r, ctx, ans);
        return;
    }
    head_start(b, status, ctx);
    if (status != 304)
        representation(b, r, pick, status, first, last);
    validators(b, r->st, pick, etag, elen);
    put(b, LIT("\r\n"));
    ans->status = status;
    if (send) {
        ans->off = first;
        ans->count = last - first + 1;
        ans->body_bytes = (unsigned long long)ans->count;
    }
}

/* ---- the answer -------------------------------------------------------------------------- */

/* Room the answer to route may need (its Location repeats the target). */
size_t aw_static_room(const aw_static_route_t *route)
{
    return 2048 + route->target.path_len + route->target.query_len;
}

/* Write the answer to a routed request into buf (aw_static_room() bytes): GET and HEAD get the
 * file (or 301, 304, 403, 404, 412, 416, 5xx), any other method 405. */
void aw_static_answer(aw_static_route_t *route, const aw_static_ctx_t *ctx, char *buf,
                      aw_static_answer_t *ans)
{
    aw_buf_t b = {.p = buf, .end = buf + aw_static_room(route)};
    aw_pick_t pick;
    int method = route->req->method, err = 0, status = route->refused;
    *ans = (aw_static_answer_t){.fd = -1, .close = !ctx->keep_alive};
    if (!status && method != HTTP_GET && method != HTTP_HEAD)
        status = 405;
    if (!status)
        status = find_file(route, ctx->now_ms, &pick, &err);
    if (status == 0)
        answer_file(&b, route, ctx, &pick, ans);
    else if (status == 301)
        answer_redirect(&b, route, ctx, ans);
    else
        answer_plain(&b, status, route, ctx, ans);
    if (b.full) { /* cannot happen: the room is ample */
        if (ans->fd >= 0)
            close(ans->fd);
        *ans = (aw_static_answer_t){.fd = -1, .close = !ctx->keep_alive, .err = ENOBUFS};
        b = (aw_buf_t){.p = buf, .end = buf + aw_static_room(route)};
        answer_plain(&b, 500, route, ctx, ans);
    }
    ans->len = (size_t)(b.p - buf);
    ans->err = ans->err ? ans->err : err;
}
