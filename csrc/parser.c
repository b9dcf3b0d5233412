/* parser.c: HTTP/1.1 requests, read as RFC 9112 writes them.
 *
 * Owns: the byte-by-byte check of every line of a request before anything else reads it
 * (request line, field lines, chunk-size lines with their extensions, trailer lines; CRLF and
 * nothing else ends a line), the one static llhttp settings object (llhttp reads a head only
 * once it has been checked whole: its fields as spans, its framing), the checks of a head as a
 * whole (versions, methods, Host, Content-Type, target forms, Transfer-Encoding), the decoding
 * of a body (Content-Length or chunked), the limits on a head and a body, and the status of
 * every parse error. Must not include Python.h nor know where body bytes go (a callback does).
 */
#include "parser.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Where the next byte falls in a request. */
typedef enum {
    AW_SCAN_LEAD, /* before the request line: empty lines are skipped (RFC 9112 2.2) */
    AW_SCAN_LEAD_LF,
    AW_SCAN_METHOD,
    AW_SCAN_TARGET,
    AW_SCAN_VERSION,
    AW_SCAN_REQUEST_LF,
    AW_SCAN_FIELD_START, /* field lines, of the head and of a chunked body's trailers */
    AW_SCAN_FIELD_NAME,
    AW_SCAN_FIELD_VALUE,
    AW_SCAN_FIELD_LF,
    AW_SCAN_FIELDS_END_LF,
    AW_SCAN_CHUNK_SIZE0, /* chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1, 7.1.1) */
    AW_SCAN_CHUNK_SIZE,
    AW_SCAN_EXT_SEMI,   /* BWS after a chunk-size or a value: ";" must follow */
    AW_SCAN_EXT_NAME0,  /* after ";": BWS, then a name */
    AW_SCAN_EXT_NAME,
    AW_SCAN_EXT_EQ,     /* BWS after a name: "=" or ";" must follow */
    AW_SCAN_EXT_VALUE0, /* after "=": BWS, then a token or a quoted-string */
    AW_SCAN_EXT_TOKEN,
    AW_SCAN_EXT_QUOTED,
    AW_SCAN_EXT_QPAIR,
    AW_SCAN_EXT_CLOSED, /* after a quoted-string's closing quote */
    AW_SCAN_CHUNK_LF,
    AW_SCAN_DATA_CR, /* the CRLF after a chunk's data */
    AW_SCAN_DATA_LF,
    AW_SCAN_DATA, /* counted, not scanned: a chunk's data or a Content-Length body */
    AW_SCAN_DONE, /* the request is complete */
} aw_scan_t;

#define PARSER(ll) ((aw_parser_t *)(ll)->data)
#define AW_AUTH_HOST 1 /* an authority's host may not be empty */
#define AW_AUTH_PORT 2 /* an authority must have a port */

static int to(aw_parser_t *p, aw_scan_t next)
{
    p->scan = next;
    return 0;
}

/* ---- characters (RFC 9110 5.5, 5.6; RFC 3986 2, 3) ---------------------------------------- */

enum {
    C_TCHAR = 1,   /* token */
    C_VCHAR = 2,   /* visible ASCII: a request target's bytes */
    C_FIELD = 4,   /* a field value's: HTAB, SP, VCHAR, obs-text; no other control, no DEL */
    C_QDTEXT = 8,  /* a quoted-string's, unescaped: a field value's but '"' and '\\' */
    C_REGNAME = 16 /* unreserved / sub-delims: a reg-name's, percent-encodings aside */
};
#define C_TEXT (C_VCHAR | C_FIELD | C_QDTEXT)
#define C_WORD (C_TEXT | C_TCHAR | C_REGNAME)

static const unsigned char cclass[256] = {
    ['\t'] = C_FIELD | C_QDTEXT, [' '] = C_FIELD | C_QDTEXT,
    ['!'] = C_WORD,  ['"'] = C_VCHAR | C_FIELD, ['#'] = C_TEXT | C_TCHAR,
    ['$'] = C_WORD,  ['%'] = C_TEXT | C_TCHAR,  ['&'] = C_WORD,
    ['\''] = C_WORD, ['('] = C_TEXT | C_REGNAME, [')'] = C_TEXT | C_REGNAME,
    ['*'] = C_WORD,  ['+'] = C_WORD,            [','] = C_TEXT | C_REGNAME,
    ['-'] = C_WORD,  ['.'] = C_WORD,            ['/'] = C_TEXT,
    ['0' ... '9'] = C_WORD,
    [':'] = C_TEXT,  [';'] = C_TEXT | C_REGNAME, ['<'] = C_TEXT,
    ['='] = C_TEXT | C_REGNAME, ['>'] = C_TEXT, ['?'] = C_TEXT,
    ['@'] = C_TEXT,
    ['A' ... 'Z'] = C_WORD,
    ['['] = C_TEXT,  ['\\'] = C_VCHAR | C_FIELD, [']'] = C_TEXT,
    ['^'] = C_TEXT | C_TCHAR, ['_'] = C_WORD,   ['`'] = C_TEXT | C_TCHAR,
    ['a' ... 'z'] = C_WORD,
    ['{'] = C_TEXT,  ['|'] = C_TEXT | C_TCHAR,  ['}'] = C_TEXT,
    ['~'] = C_WORD,
    [0x80 ... 0xff] = C_FIELD | C_QDTEXT,
};

static int is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_alpha(unsigned char ch)
{
    return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z';
}

static int hex_value(unsigned char ch)
{
    if (is_digit(ch))
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

static int is_tchar(unsigned char ch)
{
    return cclass[ch] & C_TCHAR;
}

static int is_vchar(unsigned char ch)
{
    return cclass[ch] & C_VCHAR;
}

static int is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

static int is_field_char(unsigned char ch)
{
    return cclass[ch] & C_FIELD;
}

static int is_qdtext(unsigned char ch)
{
    return cclass[ch] & C_QDTEXT;
}

static int is_regname_char(unsigned char ch)
{
    return cclass[ch] & C_REGNAME;
}

static size_t trim_ows(const char *v, size_t n)
{
    while (n > 0 && is_ws((unsigned char)v[n - 1]))
        n--;
    return n;
}

/* ---- llhttp: a checked head into spans ---------------------------------------------------- */

static uint32_t rel(aw_parser_t *p, const char *at)
{
    return (uint32_t)(at - p->base);
}

static int fail(aw_parser_t *p, int status, const char *reason)
{
    p->error = status;
    llhttp_set_error_reason(&p->ll, reason);
    return HPE_USER;
}

static int on_message_begin(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    p->req = (aw_request_t){.fields = p->req.fields}; /* the field array is reused */
    p->fstate = AW_FIELD_NONE;
    return 0;
}

/* A span in one piece or, should llhttp hand it over in several, in adjacent ones. */
static int extend(aw_parser_t *p, aw_span_t *span, const char *at, size_t len, int fresh)
{
    if (fresh) {
        *span = (aw_span_t){.off = rel(p, at), .len = (uint32_t)len};
        return 0;
    }
    if (len == 0)
        return 0; /* the end of a value fed up to its trailing whitespace */
    if (span->off + span->len != rel(p, at))
        return fail(p, 400, "a field in pieces");
    span->len += (uint32_t)len;
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    if (p->fstate == AW_FIELD_NAME)
        return extend(p, &r->fields[r->nfields - 1].name, at, len, 0);
    if (r->nfields == p->fcap) {
        int cap = p->fcap ? p->fcap * 2 : 32;
        aw_field_t *f = realloc(r->fields, (size_t)cap * sizeof(*f));
        if (!f)
            return fail(p, 500, "out of memory");
        r->fields = f;
        p->fcap = cap;
    }
    aw_field_t *f = &r->fields[r->nfields++];
    f->value = (aw_span_t){.off = 0, .len = 0};
    p->fstate = AW_FIELD_NAME;
    return extend(p, &f->name, at, len, 1);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    if (r->nfields == 0)
        return fail(p, 400, "header value without a name");
    int fresh = p->fstate != AW_FIELD_VALUE;
    p->fstate = AW_FIELD_VALUE;
    return extend(p, &r->fields[r->nfields - 1].value, at, len, fresh);
}

/* llhttp stops here: the body is ours to decode. */
static int on_headers_complete(llhttp_t *ll)
{
    aw_request_t *r = &PARSER(ll)->req;
    r->method = ll->method;
    r->http_major = ll->http_major;
    r->http_minor = ll->http_minor;
    /* Upgrade or CONNECT, which we do not do: the request is answered, then the connection
     * closes, for what follows it is not HTTP. Chunked or not is check_head's to say. */
    r->upgrade = ll->upgrade != 0;
    r->content_length = ll->content_length;
    r->keep_alive = llhttp_should_keep_alive(ll) != 0;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* The methods llhttp knows for HTTP: the server implements those. */
static int known_method(const char *m, size_t n)
{
#define AW_KNOWN(num, name, string)                                                            \
    if (n == sizeof(#string) - 1 && memcmp(m, #string, n) == 0)                                \
        return 1;
    HTTP_METHOD_MAP(AW_KNOWN)
#undef AW_KNOWN
    return 0;
}

/* The field lines from off to head_len, to llhttp, each without the whitespace before its
 * CRLF (OWS, RFC 9112 5): llhttp takes "Content-Length: 1<HTAB>" for invalid, and does not
 * take "Transfer-Encoding: chunked<HTAB>" for chunked. */
static llhttp_errno_t feed_fields(aw_parser_t *p, uint32_t off, uint32_t head_len)
{
    const char *at = p->base + off, *end = p->base + head_len, *cr = at;
    llhttp_errno_t err = HPE_OK;
    while (err == HPE_OK && (cr = memchr(cr, '\r', (size_t)(end - cr))) != NULL) {
        const char *trim = cr;
        while (trim > at && is_ws((unsigned char)trim[-1]))
            trim--; /* a field line starts with a token: this stops within its line */
        if (trim < cr) {
            err = llhttp_execute(&p->ll, at, (size_t)(trim - at));
            at = cr;
        }
        cr++;
    }
    return err == HPE_OK ? llhttp_execute(&p->ll, at, (size_t)(end - at)) : err;
}

/* llhttp reads the checked head of head_len bytes: a request line parser.c writes, since it
 * has read the real one itself (the method, or GET in place of one llhttp does not know: 501
 * later; "/" for the target, which it has checked and llhttp's URL parser would judge
 * otherwise, e.g. refusing the scheme "a1:"; HTTP/1.1 for any version above it, RFC 9110
 * 2.5), then the field lines as they are. Returns 0, or the answer's status. */
static int read_head(aw_parser_t *p, uint32_t head_len)
{
    const char *b = p->base;
    char line[64];
    int known = p->method_len <= 32 && known_method(b + p->method_off, p->method_len);
    size_t n = known ? p->method_len : 3;
    memcpy(line, known ? b + p->method_off : "GET", n);
    memcpy(line + n, p->version_minor ? " / HTTP/1.1" : " / HTTP/1.0", 11);
    n += 11;
    uint32_t line_end = p->version_off + 8; /* the CRLF of the request line */
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
    llhttp_errno_t err = llhttp_execute(&p->ll, line, n);
    if (err == HPE_OK)
        err = feed_fields(p, line_end, head_len);
    if (err != HPE_PAUSED) /* only on_headers_complete pauses, at the head's last byte */
        return p->error ? p->error : 400;
    aw_request_t *r = &p->req;
    if (!known)
        r->method = AW_METHOD_UNKNOWN;
    r->method_token = (aw_span_t){.off = p->method_off, .len = p->method_len};
    r->target = (aw_span_t){.off = p->target_off, .len = p->version_off - 1 - p->target_off};
    return 0;
}

/* ---- checks of a head as a whole ---------------------------------------------------------- */

/* The fields the checks of a head look at. */
typedef enum { AW_F_HOST, AW_F_CONTENT_TYPE, AW_F_TRANSFER_ENCODING, AW_F_EXPECT, AW_NF } aw_f_t;

typedef struct {
    int first, count; /* the first one's index (-1: none), how many came */
} aw_seen_t;

static const struct {
    const char *name;
    uint32_t len;
} checked[AW_NF] = {
    [AW_F_HOST] = {.name = "host", .len = 4},
    [AW_F_CONTENT_TYPE] = {.name = "content-type", .len = 12},
    [AW_F_TRANSFER_ENCODING] = {.name = "transfer-encoding", .len = 17},
    [AW_F_EXPECT] = {.name = "expect", .len = 6},
};

/* One pass over the fields: where each checked one first came, and how often. */
static void find_checked(const aw_request_t *r, const char *base, aw_seen_t seen[AW_NF])
{
    for (int k = 0; k < AW_NF; k++)
        seen[k] = (aw_seen_t){.first = -1, .count = 0};
    for (int i = 0; i < r->nfields; i++) {
        const aw_field_t *f = &r->fields[i];
        for (int k = 0; k < AW_NF; k++) {
            if (f->name.len != checked[k].len ||
                strncasecmp(base + f->name.off, checked[k].name, checked[k].len) != 0)
                continue;
            if (seen[k].count++ == 0)
                seen[k].first = i;
            break;
        }
    }
}

/* IP-literal without its brackets: IPv6address or IPvFuture (RFC 3986 3.2.2). */
static int valid_ip_literal(const char *s, size_t n)
{
    if (n > 0 && (s[0] == 'v' || s[0] == 'V')) {
        size_t i = 1;
        while (i < n && hex_value((unsigned char)s[i]) >= 0)
            i++;
        if (i == 1 || i + 1 >= n || s[i] != '.')
            return 0;
        for (i++; i < n; i++) {
            if (!is_regname_char((unsigned char)s[i]) && s[i] != ':')
                return 0;
        }
        return 1;
    }
    char text[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    if (n == 0 || n >= sizeof(text))
        return 0;
    memcpy(text, s, n);
    text[n] = 0;
    return inet_pton(AF_INET6, text, &addr) == 1;
}

/* uri-host [ ":" port ] (RFC 3986 3.2.2, 3.2.3): an authority without userinfo, which http
 * URIs may not have (RFC 9110 4.2.4). flags: AW_AUTH_HOST, AW_AUTH_PORT. */
static int valid_authority(const char *s, size_t n, int flags)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || !valid_ip_literal(s + 1, (size_t)(close - s) - 1))
            return 0;
        i = (size_t)(close - s) + 1;
    } else {
        while (i < n && s[i] != ':') {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '%' && i + 2 < n && hex_value((unsigned char)s[i + 1]) >= 0 &&
                hex_value((unsigned char)s[i + 2]) >= 0)
                i += 3;
            else if (is_regname_char(ch))
                i++;
            else
                return 0;
        }
        if (i == 0 && (flags & AW_AUTH_HOST))
            return 0;
    }
    if (i == n)
        return !(flags & AW_AUTH_PORT);
    if (s[i++] != ':' || (i == n && (flags & AW_AUTH_PORT)))
        return 0;
    for (; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* RFC 9112 3.2: one Host field, required on HTTP/1.1, whose value is uri-host [ ":" port ].
 * Content-Type is a singleton field (RFC 9110 5.3, 8.3): SPEC 4 refuses it twice. */
static int check_singletons(const aw_parser_t *p, const aw_seen_t seen[AW_NF])
{
    const aw_request_t *r = &p->req;
    const aw_seen_t *host = &seen[AW_F_HOST];
    if (host->count > 1 || (host->count == 0 && r->http_minor >= 1) ||
        seen[AW_F_CONTENT_TYPE].count > 1)
        return 400;
    if (host->count == 0)
        return 0;
    const aw_span_t value = r->fields[host->first].value;
    const char *v = p->base + value.off;
    return valid_authority(v, trim_ows(v, value.len), 0) ? 0 : 400;
}

static int is_scheme_char(unsigned char ch, int first)
{
    return is_alpha(ch) || (!first && (is_digit(ch) || ch == '+' || ch == '-' || ch == '.'));
}

/* The target's form and parts (RFC 9112 3.2): the origin form for any method; "*" for OPTIONS
 * alone (3.2.4); host:port for CONNECT, and only that (3.2.3); otherwise an absolute URI with
 * an authority (3.2.2, RFC 9110 4.2). Its bytes are all VCHAR already. Returns 0 or 400. */
static int check_target(aw_parser_t *p)
{
    aw_request_t *r = &p->req;
    const char *t = p->base + r->target.off;
    size_t n = r->target.len, i = 0;
    r->path = r->target;
    r->authority = (aw_span_t){.off = r->target.off, .len = 0};
    if (r->method == HTTP_CONNECT) {
        r->form = AW_TARGET_AUTHORITY;
        r->authority = r->target;
        return valid_authority(t, n, AW_AUTH_HOST | AW_AUTH_PORT) ? 0 : 400;
    }
    if (t[0] == '/') {
        r->form = AW_TARGET_ORIGIN;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        r->form = AW_TARGET_ASTERISK;
        return r->method == HTTP_OPTIONS ? 0 : 400;
    }
    r->form = AW_TARGET_ABSOLUTE;
    while (i < n && is_scheme_char((unsigned char)t[i], i == 0))
        i++;
    if (i == 0 || n - i < 3 || memcmp(t + i, "://", 3) != 0)
        return 400;
    size_t start = i + 3, end = start;
    while (end < n && t[end] != '/' && t[end] != '?' && t[end] != '#')
        end++;
    if (!valid_authority(t + start, end - start, AW_AUTH_HOST))
        return 400;
    r->authority = (aw_span_t){.off = r->target.off + (uint32_t)start,
                               .len = (uint32_t)(end - start)};
    r->path = (aw_span_t){.off = r->target.off + (uint32_t)end, .len = (uint32_t)(n - end)};
    return 0;
}

static size_t skip_ows(const char *v, size_t i, size_t n)
{
    while (i < n && is_ws((unsigned char)v[i]))
        i++;
    return i;
}

/* Transfer-Encoding of a request (RFC 9112 6.1, 6.3): a comma list of codings, whose last
 * must be chunked. Returns 0 (only "chunked"), 400 (malformed, chunked not last, repeated, or
 * any on HTTP/1.0: a classic smuggling vector) or 501 (codings we do not decode). */
static int check_codings(const aw_request_t *r, const char *v, size_t n)
{
    if (r->http_minor == 0)
        return 400;
    int ncodings = 0, last_chunked = 0, other = 0;
    for (size_t i = skip_ows(v, 0, n);; i = skip_ows(v, i + 1, n)) {
        size_t start = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        size_t tlen = i - start;
        if (tlen == 0)
            return 400; /* an empty element, e.g. a leading comma */
        i = skip_ows(v, i, n);
        if (i < n && v[i] == ';')
            return 501; /* parameters: not for chunked, and we decode nothing else */
        ncodings++;
        last_chunked = tlen == 7 && strncasecmp(v + start, "chunked", 7) == 0;
        other |= !last_chunked;
        if (i == n)
            break;
        if (v[i] != ',')
            return 400;
    }
    if (!last_chunked)
        return 400;
    if (other)
        return 501;
    return ncodings > 1 ? 400 : 0; /* "chunked, chunked" is malformed */
}

/* Transfer-Encoding, then the body's framing from it (not from llhttp's flags, which depend
 * on how it reads the field): chunked, Content-Length, or none; a CONNECT has no body (RFC
 * 9110 9.3.6). */
static int check_framing(aw_parser_t *p, const aw_seen_t *te)
{
    aw_request_t *r = &p->req;
    if (te->count > 1)
        return 400; /* one Transfer-Encoding field, please */
    if (te->count == 1) {
        const aw_span_t value = r->fields[te->first].value;
        int status = check_codings(r, p->base + value.off, value.len);
        if (status)
            return status;
    }
    int bodiless = r->method == HTTP_CONNECT;
    r->chunked = te->count == 1 && !bodiless;
    if (r->chunked || bodiless)
        r->content_length = 0; /* llhttp refused a Content-Length with Transfer-Encoding */
    r->has_body = r->chunked || r->content_length > 0;
    return 0;
}

/* The checks of a head llhttp has read. Returns 0, or the answer's status. */
static int check_head(aw_parser_t *p)
{
    aw_request_t *r = &p->req;
    aw_seen_t seen[AW_NF];
    find_checked(r, p->base, seen);
    int status = check_singletons(p, seen);
    if (!status)
        status = check_target(p);
    if (!status)
        status = check_framing(p, &seen[AW_F_TRANSFER_ENCODING]);
    if (!status && r->method == AW_METHOD_UNKNOWN)
        status = 501; /* RFC 9110 9.1: a method the server does not implement */
    if (!status && !r->chunked && r->content_length > p->max_body)
        status = 413;
    if (status)
        return status;
    int expect = seen[AW_F_EXPECT].first;
    r->expect_continue = r->http_minor >= 1 && r->has_body && expect >= 0 &&
                         r->fields[expect].value.len >= 12 &&
                         strncasecmp(p->base + r->fields[expect].value.off, "100-continue", 12) == 0;
    return 0;
}

/* The complete head of head_len bytes leaves the caller's buffer: spans keep their offsets,
 * into the copy. Returns 0, or 500. */
static int copy_head(aw_parser_t *p, uint32_t head_len)
{
    if (head_len > p->copy_cap) {
        char *nb = realloc(p->copy, head_len);
        if (!nb)
            return 500;
        p->copy = nb;
        p->copy_cap = head_len;
    }
    memcpy(p->copy, p->base, head_len);
    p->req.head = p->copy;
    p->req.head_len = head_len;
    return 0;
}

/* The head's last byte came (head_len bytes from base): read it, copy it, check it, get ready
 * for the body. Returns 0, or the answer's status. */
static int finish_head(aw_parser_t *p, uint32_t head_len)
{
    int status = read_head(p, head_len);
    if (!status)
        status = copy_head(p, head_len);
    if (status)
        return status;
    p->head_done = 1; /* valid or not, its method, target and version can be reported */
    status = check_head(p);
    if (status)
        return status;
    const aw_request_t *r = &p->req;
    p->line_bytes = 0;
    p->remaining = r->content_length;
    if (r->has_body)
        return to(p, r->chunked ? AW_SCAN_CHUNK_SIZE0 : AW_SCAN_DATA);
    p->msg_done = 1;
    return to(p, AW_SCAN_DONE);
}

/* ---- lines, byte by byte ------------------------------------------------------------------ */

/* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3), ending at off; another major
 * version than 1 gets 505 (RFC 9110 6.2). */
static int check_version(aw_parser_t *p, uint32_t off)
{
    const char *v = p->base + p->version_off;
    if (off - p->version_off != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) ||
        v[6] != '.' || !is_digit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1')
        return 505;
    p->version_minor = v[7] - '0';
    return to(p, AW_SCAN_REQUEST_LF);
}

/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 3) */
static int step_request_line(aw_parser_t *p, unsigned char ch, uint32_t off)
{
    switch ((aw_scan_t)p->scan) {
    case AW_SCAN_LEAD:
        if (ch == '\r')
            return to(p, AW_SCAN_LEAD_LF);
        p->method_off = off;
        return is_tchar(ch) ? to(p, AW_SCAN_METHOD) : 400;
    case AW_SCAN_LEAD_LF:
        return ch == '\n' ? to(p, AW_SCAN_LEAD) : 400;
    case AW_SCAN_METHOD:
        if (is_tchar(ch))
            return 0;
        p->method_len = off - p->method_off;
        p->target_off = off + 1;
        return ch == ' ' ? to(p, AW_SCAN_TARGET) : 400;
    case AW_SCAN_TARGET:
        if (is_vchar(ch))
            return 0;
        p->version_off = off + 1;
        return ch == ' ' && off > p->target_off ? to(p, AW_SCAN_VERSION) : 400;
    case AW_SCAN_VERSION:
        if (ch == '\r')
            return check_version(p, off);
        return is_vchar(ch) ? 0 : 400;
    case AW_SCAN_REQUEST_LF:
        return ch == '\n' ? to(p, AW_SCAN_FIELD_START) : 400;
    default:
        return 500; /* not a state of the request line */
    }
}

/* field-line = field-name ":" OWS field-value OWS CRLF (RFC 9112 5), then an empty line: the
 * head's, or the trailer section's (7.1.2). */
static int step_field(aw_parser_t *p, unsigned char ch, uint32_t off)
{
    switch ((aw_scan_t)p->scan) {
    case AW_SCAN_FIELD_START:
        if (ch == '\r')
            return to(p, AW_SCAN_FIELDS_END_LF);
        /* whitespace here is obs-fold (RFC 9112 5.2), or before the first field (2.2) */
        return is_tchar(ch) ? to(p, AW_SCAN_FIELD_NAME) : 400;
    case AW_SCAN_FIELD_NAME:
        if (ch == ':')
            return to(p, AW_SCAN_FIELD_VALUE);
        return is_tchar(ch) ? 0 : 400; /* nothing between the name and the colon (5.1) */
    case AW_SCAN_FIELD_VALUE:
        if (ch == '\r')
            return to(p, AW_SCAN_FIELD_LF);
        return is_field_char(ch) ? 0 : 400; /* RFC 9110 5.5: no NUL, other control, DEL */
    case AW_SCAN_FIELD_LF:
        return ch == '\n' ? to(p, AW_SCAN_FIELD_START) : 400;
    case AW_SCAN_FIELDS_END_LF:
        if (ch != '\n')
            return 400;
        if (!p->head_done)
            return finish_head(p, off + 1);
        p->msg_done = 1; /* trailer fields are checked, not kept (RFC 9112 7.1.2) */
        return to(p, AW_SCAN_DONE);
    default:
        return 500; /* not a state of a field line */
    }
}

/* After a chunk-size or an extension (its name, or its value): ";" starts the next one, BWS
 * may come before that ";", CR ends the line. */
static int after_ext_item(aw_parser_t *p, unsigned char ch)
{
    if (ch == ';')
        return to(p, AW_SCAN_EXT_NAME0);
    if (is_ws(ch))
        return to(p, AW_SCAN_EXT_SEMI);
    return ch == '\r' ? to(p, AW_SCAN_CHUNK_LF) : 400;
}

/* chunk-size, then *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
 * (RFC 9112 7.1, 7.1.1); the extensions are checked and ignored. */
static int step_chunk_line(aw_parser_t *p, unsigned char ch)
{
    int hex = hex_value(ch);
    switch ((aw_scan_t)p->scan) {
    case AW_SCAN_CHUNK_SIZE0:
        if (hex < 0)
            return 400;
        p->remaining = (unsigned)hex;
        return to(p, AW_SCAN_CHUNK_SIZE);
    case AW_SCAN_CHUNK_SIZE:
        if (hex < 0)
            return after_ext_item(p, ch);
        if (p->remaining > (ULLONG_MAX >> 4))
            return 400; /* beyond 64 bits */
        p->remaining = p->remaining << 4 | (unsigned)hex;
        return 0;
    case AW_SCAN_EXT_SEMI:
        if (is_ws(ch))
            return 0;
        return ch == ';' ? to(p, AW_SCAN_EXT_NAME0) : 400;
    case AW_SCAN_EXT_NAME0:
        if (is_ws(ch))
            return 0;
        return is_tchar(ch) ? to(p, AW_SCAN_EXT_NAME) : 400;
    case AW_SCAN_EXT_NAME:
        if (is_tchar(ch))
            return 0;
        if (ch == '=')
            return to(p, AW_SCAN_EXT_VALUE0);
        return is_ws(ch) ? to(p, AW_SCAN_EXT_EQ) : after_ext_item(p, ch);
    case AW_SCAN_EXT_EQ:
        if (is_ws(ch))
            return 0;
        if (ch == '=')
            return to(p, AW_SCAN_EXT_VALUE0);
        return ch == ';' ? to(p, AW_SCAN_EXT_NAME0) : 400;
    case AW_SCAN_EXT_VALUE0:
        if (is_ws(ch))
            return 0;
        if (ch == '"')
            return to(p, AW_SCAN_EXT_QUOTED);
        return is_tchar(ch) ? to(p, AW_SCAN_EXT_TOKEN) : 400;
    case AW_SCAN_EXT_TOKEN:
        return is_tchar(ch) ? 0 : after_ext_item(p, ch);
    case AW_SCAN_EXT_QUOTED:
        if (ch == '"')
            return to(p, AW_SCAN_EXT_CLOSED);
        if (ch == '\\')
            return to(p, AW_SCAN_EXT_QPAIR);
        return is_qdtext(ch) ? 0 : 400;
    case AW_SCAN_EXT_QPAIR: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        return is_field_char(ch) ? to(p, AW_SCAN_EXT_QUOTED) : 400;
    case AW_SCAN_EXT_CLOSED:
        return after_ext_item(p, ch);
    default:
        return 500; /* not a state of a chunk-size line */
    }
}

/* The CRLF ending a chunk-size line, and the CRLF after a chunk's data. */
static int step_chunk_crlf(aw_parser_t *p, unsigned char ch)
{
    switch ((aw_scan_t)p->scan) {
    case AW_SCAN_CHUNK_LF:
        if (ch != '\n')
            return 400;
        p->line_bytes = 0; /* the last chunk's trailers count from here */
        return to(p, p->remaining ? AW_SCAN_DATA : AW_SCAN_FIELD_START);
    case AW_SCAN_DATA_CR:
        return ch == '\r' ? to(p, AW_SCAN_DATA_LF) : 400;
    case AW_SCAN_DATA_LF:
        p->line_bytes = 0;
        return ch == '\n' ? to(p, AW_SCAN_CHUNK_SIZE0) : 400;
    default:
        return 500; /* not a line end of a chunked body */
    }
}

/* One byte of a line, at off from base, which may change the state. */
static int step(aw_parser_t *p, unsigned char ch, uint32_t off)
{
    aw_scan_t s = (aw_scan_t)p->scan;
    if (s < AW_SCAN_FIELD_START)
        return step_request_line(p, ch, off);
    if (s < AW_SCAN_CHUNK_SIZE0)
        return step_field(p, ch, off);
    if (s < AW_SCAN_CHUNK_LF)
        return step_chunk_line(p, ch);
    return step_chunk_crlf(p, ch);
}

/* The bytes that leave a state as it is: most of a head goes by in such runs. */
static unsigned char run_class(aw_scan_t s)
{
    switch (s) {
    case AW_SCAN_METHOD:
    case AW_SCAN_FIELD_NAME:
    case AW_SCAN_EXT_NAME:
    case AW_SCAN_EXT_TOKEN:
        return C_TCHAR;
    case AW_SCAN_TARGET:
    case AW_SCAN_VERSION:
        return C_VCHAR;
    case AW_SCAN_FIELD_VALUE:
        return C_FIELD;
    case AW_SCAN_EXT_QUOTED:
        return C_QDTEXT;
    default:
        return 0;
    }
}

/* n more bytes of a line, ending end_off bytes from base. A head's count against the head
 * limit (431), a chunk-size line's against AW_CHUNK_LINE_MAX, the trailers' against the head
 * limit. Returns 0, or the answer's status. */
static int count_bytes(aw_parser_t *p, size_t n, size_t end_off)
{
    if (!p->head_done)
        return end_off > p->max_head ? 431 : 0;
    p->line_bytes += n;
    if (p->scan <= AW_SCAN_FIELDS_END_LF)
        return p->line_bytes > p->max_head ? 431 : 0;
    return p->line_bytes > AW_CHUNK_LINE_MAX ? 400 : 0;
}

#ifdef __SSE2__
/* 16 bytes at a time, for the classes of most of a head's bytes: a field value's (no control
 * byte but HTAB, no DEL) and a target's (VCHAR). Bytes compare as signed: obs-text is < 0.
 * Returns where the first byte outside the class is, or last when 16 bytes do not remain. */
static const unsigned char *skip_run16(const unsigned char *at, const unsigned char *last,
                                       unsigned char run)
{
    const __m128i del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t');
    const __m128i below = _mm_set1_epi8(run == C_FIELD ? ' ' : '!');
    for (; last - at >= 16; at += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)at);
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(x, below), _mm_cmpeq_epi8(x, del));
        if (run == C_FIELD) /* obs-text and HTAB are a value's */
            bad = _mm_andnot_si128(_mm_or_si128(_mm_cmplt_epi8(x, _mm_setzero_si128()),
                                                _mm_cmpeq_epi8(x, tab)),
                                   bad);
        int mask = _mm_movemask_epi8(bad);
        if (mask)
            return at + __builtin_ctz((unsigned)mask);
    }
    return at;
}
#endif

/* Past the bytes of class run from at. */
static const unsigned char *skip_run(const unsigned char *at, const unsigned char *last,
                                     unsigned char run)
{
#ifdef __SSE2__
    if (run == C_FIELD || run == C_VCHAR)
        at = skip_run16(at, last, run);
#endif
    while (at < last && (cclass[*at] & run))
        at++;
    return at;
}

/* A whole, valid field line at `at` (name ":" value CRLF), where one starts: its end, or NULL
 * when it is not whole or not plain, for the byte-by-byte path to decide. Most of a head goes
 * this way, with few branches to mispredict. */
static const unsigned char *whole_field_line(const unsigned char *at, const unsigned char *last)
{
    const unsigned char *colon = skip_run(at, last, C_TCHAR);
    if (colon == at || colon == last || *colon != ':')
        return NULL;
    const unsigned char *cr = skip_run(colon + 1, last, C_FIELD);
    return last - cr >= 2 && cr[0] == '\r' && cr[1] == '\n' ? cr + 2 : NULL;
}

/* A whole, plain request line at `at`, where one starts ("token SP VCHARs SP HTTP/1.x CRLF"):
 * its end, its parts noted and the state moved on; or NULL, for the byte-by-byte path. */
static const unsigned char *whole_request_line(aw_parser_t *p, const unsigned char *at,
                                               const unsigned char *last)
{
    const unsigned char *sp1 = skip_run(at, last, C_TCHAR);
    if (sp1 == at || sp1 == last || *sp1 != ' ')
        return NULL;
    const unsigned char *sp2 = skip_run(sp1 + 1, last, C_VCHAR);
    if (sp2 == sp1 + 1 || last - sp2 < 11 || *sp2 != ' ' || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        !is_digit(sp2[8]) || sp2[9] != '\r' || sp2[10] != '\n')
        return NULL;
    p->method_off = rel(p, (const char *)at);
    p->method_len = (uint32_t)(sp1 - at);
    p->target_off = rel(p, (const char *)sp1 + 1);
    p->version_off = rel(p, (const char *)sp2 + 1);
    p->version_minor = sp2[8] - '0';
    p->scan = AW_SCAN_FIELD_START;
    return sp2 + 11;
}

/* A whole line where one starts, in the common case: its end, or NULL. */
static const unsigned char *whole_line(aw_parser_t *p, const unsigned char *at,
                                       const unsigned char *last)
{
    if (p->scan == AW_SCAN_FIELD_START)
        return whole_field_line(at, last);
    if (p->scan == AW_SCAN_LEAD)
        return whole_request_line(p, at, last);
    return NULL;
}

/* Line bytes from data[*i]: a run that leaves the state as it is, then the byte after it;
 * *i moves past them. Returns 0, or the answer's status. */
static int scan_line(aw_parser_t *p, const char *data, size_t len, size_t *i)
{
    const unsigned char *at = (const unsigned char *)data + *i;
    const unsigned char *last = (const unsigned char *)data + len;
    const unsigned char *line_end = whole_line(p, at, last);
    if (line_end) {
        size_t n = (size_t)(line_end - at);
        *i += n;
        return count_bytes(p, n, (size_t)((const char *)line_end - p->base));
    }
    unsigned char run = run_class((aw_scan_t)p->scan);
    if (run)
        at = skip_run(at, last, run);
    size_t j = (size_t)(at - (const unsigned char *)data), next = j < len ? j + 1 : j;
    int status = count_bytes(p, next - *i, (size_t)(data + next - p->base));
    *i = next;
    if (status || j == len)
        return status;
    return step(p, *at, (uint32_t)(data + j - p->base));
}

/* Body bytes: as many of the avail at `at` as this chunk or body has left; *taken says how
 * many. Returns 0, or the answer's status. */
static int take_data(aw_parser_t *p, const char *at, size_t avail, size_t *taken)
{
    size_t n = p->remaining < avail ? (size_t)p->remaining : avail;
    *taken = n;
    if (p->body_bytes + n > p->max_body)
        return 413;
    p->body_bytes += n;
    p->remaining -= n;
    int status = p->on_body(p->ctx, at, n);
    if (status || p->remaining > 0)
        return status;
    if (p->req.chunked)
        return to(p, AW_SCAN_DATA_CR);
    p->msg_done = 1;
    return to(p, AW_SCAN_DONE);
}

/* ---- feeding ------------------------------------------------------------------------------ */

void aw_parser_init(aw_parser_t *p, size_t max_head, unsigned long long max_body,
                    aw_body_cb on_body, void *ctx)
{
    *p = (aw_parser_t){.max_head = max_head, .max_body = max_body, .on_body = on_body,
                       .ctx = ctx, .scan = AW_SCAN_LEAD};
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
}

void aw_parser_free(aw_parser_t *p)
{
    free(p->req.fields);
    free(p->copy);
    p->req.fields = NULL;
    p->req.nfields = p->fcap = 0;
    p->copy = NULL;
    p->copy_cap = 0;
    p->req.head = NULL;
    p->req.head_len = 0;
}

/* Between requests: give the field array back (an idle connection should cost little). */
void aw_parser_trim(aw_parser_t *p)
{
    aw_parser_free(p);
}

/* What has happened and not been told yet: AW_PARSE_HEAD, then AW_PARSE_END; AW_PARSE_MORE
 * when nothing. */
static aw_parse_t untold(aw_parser_t *p)
{
    if (p->head_done && !p->head_told) {
        p->head_told = 1;
        return AW_PARSE_HEAD;
    }
    if (p->msg_done && !p->end_told) {
        p->end_told = 1;
        return AW_PARSE_END;
    }
    return AW_PARSE_MORE;
}

static void next_request(aw_parser_t *p)
{
    p->head_done = p->msg_done = p->head_told = p->end_told = 0;
    p->req = (aw_request_t){.fields = p->req.fields};
    p->scan = AW_SCAN_LEAD;
    p->body_bytes = 0;
}

/* Parse data[0..len) (part of the caller's buffer, whose current head starts at base) up to
 * the next event. *used is set to the bytes consumed; the rest must be given again. After
 * AW_PARSE_ERROR nothing more is parsed. */
aw_parse_t aw_parser_feed(aw_parser_t *p, const char *base, const char *data, size_t len,
                          size_t *used)
{
    *used = 0;
    if (p->error)
        return AW_PARSE_ERROR;
    aw_parse_t told = untold(p);
    if (told != AW_PARSE_MORE)
        return told;
    if (p->end_told && len > 0) { /* the request stays as it is until the next one begins */
        if (p->req.upgrade) { /* what follows an upgrade request is not HTTP: discarded */
            *used = len;
            return AW_PARSE_MORE;
        }
        next_request(p);
    }
    p->base = base;
    size_t i = 0;
    int status = 0;
    while (i < len && !status && p->scan != AW_SCAN_DONE && !(p->head_done && !p->head_told)) {
        if (p->scan == AW_SCAN_DATA) {
            size_t taken;
            status = take_data(p, data + i, len - i, &taken);
            i += taken;
        } else {
            status = scan_line(p, data, len, &i);
        }
    }
    *used = i;
    if (status)
        return (p->error = status), AW_PARSE_ERROR;
    return untold(p);
}

/* Whether feeding with no new bytes would report something. */
int aw_parser_pending(const aw_parser_t *p)
{
    return !p->error && ((p->head_done && !p->head_told) || (p->msg_done && !p->end_told));
}

int aw_parser_error(const aw_parser_t *p)
{
    return p->error;
}

/* Whether the current request's head has been read whole (valid or not): its method,
 * target and version can be reported. */
int aw_parser_head_complete(const aw_parser_t *p)
{
    return p->head_done;
}

const aw_request_t *aw_parser_request(const aw_parser_t *p)
{
    return &p->req;
}
