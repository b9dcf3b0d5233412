/* parser.c: llhttp glue.
 *
 * Owns: the one static settings object, the callbacks that record the request target and
 * headers as spans into the connection's read buffer, the framing checks llhttp leaves to us
 * (RFC 9112 6.1 Transfer-Encoding, obs-fold, HTTP versions), and the mapping of parse errors
 * to status codes. Must not touch Python: environ.c turns the spans into objects.
 */
#include "core.h"

#include <strings.h>

#define CONN(p) ((aw_conn_t *)(p)->data)

static uint32_t rel(aw_conn_t *c, const char *at)
{
    return (uint32_t)(at - (c->rbuf + c->head_start));
}

static int on_message_begin(llhttp_t *p)
{
    aw_conn_t *c = CONN(p);
    c->url.off = c->url.len = 0;
    c->nhdrs = 0;
    c->hstate = 0;
    c->head_done = c->msg_done = c->trailers = c->at_chunk_line = 0;
    c->parse_error_status = 0;
    return 0;
}

/* Spans of one element arrive in pieces when the element straddles two reads; the head
 * stays contiguous in rbuf, so each piece must start where the previous one ended. */
static int extend(aw_conn_t *c, aw_span_t *span, const char *at, size_t len, int fresh)
{
    if (fresh) {
        span->off = rel(c, at);
        span->len = (uint32_t)len;
        return 0;
    }
    if (span->off + span->len != rel(c, at)) {
        /* a value continued on another line: obs-fold (RFC 9112 5.2), refused */
        c->parse_error_status = 400;
        llhttp_set_error_reason(&c->parser, "obsolete line folding");
        return HPE_USER;
    }
    span->len += (uint32_t)len;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    aw_conn_t *c = CONN(p);
    return extend(c, &c->url, at, len, c->url.len == 0);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    aw_conn_t *c = CONN(p);
    if (c->head_done) /* trailer fields of a chunked body: ignored (RFC 9112 7.1.2) */
        return 0;
    if (c->hstate != 1) {
        if (c->nhdrs == c->hcap) {
            int cap = c->hcap ? c->hcap * 2 : 32;
            aw_header_t *h = realloc(c->hdrs, (size_t)cap * sizeof(*h));
            if (!h) {
                c->parse_error_status = 500;
                return HPE_USER;
            }
            c->hdrs = h;
            c->hcap = cap;
        }
        aw_header_t *h = &c->hdrs[c->nhdrs++];
        h->value.off = h->value.len = 0;
        c->hstate = 1;
        return extend(c, &h->name, at, len, 1);
    }
    return extend(c, &c->hdrs[c->nhdrs - 1].name, at, len, 0);
}

/* RFC 9110 5.1: a field name is a token, never empty (llhttp reports ": v" as an empty one). */
static int on_header_field_complete(llhttp_t *p)
{
    aw_conn_t *c = CONN(p);
    if (c->head_done)
        return 0;
    if (c->nhdrs == 0 || c->hstate != 1 || c->hdrs[c->nhdrs - 1].name.len == 0) {
        c->parse_error_status = 400;
        llhttp_set_error_reason(p, "empty header name");
        return HPE_USER;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    aw_conn_t *c = CONN(p);
    if (c->head_done)
        return 0;
    if (c->nhdrs == 0) {
        c->parse_error_status = 400;
        return HPE_USER;
    }
    int fresh = c->hstate != 2;
    c->hstate = 2;
    return extend(c, &c->hdrs[c->nhdrs - 1].value, at, len, fresh);
}

static int on_headers_complete(llhttp_t *p)
{
    aw_conn_t *c = CONN(p);
    c->head_done = 1;
    c->hstate = 0;
    /* A message without a body runs on to on_message_complete, which pauses: conn.c then
     * sees the head and the end together. With a body, pause here so conn.c can validate
     * the head and prepare for the body first. */
    if (!(p->flags & F_CHUNKED) && p->content_length == 0)
        return 0;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    aw_conn_t *c = CONN(p);
    int r = c->streaming ? aw_stream_feed(c, at, len) : aw_body_append(c, at, len);
    if (r < 0) {
        if (!c->parse_error_status)
            c->parse_error_status = 500;
        return HPE_USER;
    }
    return 0;
}

/* llhttp does not bound a chunk-size line (leading zeros, extensions): conn.c does, between
 * the end of one chunk (a pause here) and the next size (on_chunk_header). */
static int on_chunk_header(llhttp_t *p)
{
    CONN(p)->at_chunk_line = 0;
    return 0;
}

static int on_chunk_complete(llhttp_t *p)
{
    aw_conn_t *c = CONN(p);
    c->at_chunk_line = 1;
    c->chunk_line_seen = 0;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    aw_conn_t *c = CONN(p);
    c->msg_done = 1;
    c->at_chunk_line = 0;
    return HPE_PAUSED; /* one request at a time: pipelined ones wait in rbuf */
}

const llhttp_settings_t aw_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

void aw_parser_init(aw_conn_t *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &aw_parser_settings);
    c->parser.data = c;
}

static int is_tchar(unsigned char ch)
{
    /* RFC 9110 5.6.2 token characters */
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Transfer-Encoding of a request (RFC 9112 6.1, 6.3): a comma list of codings, whose last
 * one must be chunked. Returns 0 (only "chunked"), 400 (malformed, or chunked not last, or
 * anything on HTTP/1.0) or 501 (codings we do not decode). */
static int check_transfer_encoding(aw_conn_t *c, const char *v, size_t n)
{
    if (c->parser.http_minor == 0)
        return 400; /* HTTP/1.0 has no chunked framing: a classic smuggling vector */
    int ncodings = 0, last_chunked = 0, other = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        size_t tlen = i - start;
        if (tlen == 0)
            return 400; /* empty element, e.g. a leading comma */
        /* transfer-parameters (";q=...") are not allowed for chunked and we decode nothing
         * else, so any parameter makes it unsupported */
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < n && v[i] == ';')
            return 501;
        ncodings++;
        last_chunked = tlen == 7 && strncasecmp(v + start, "chunked", 7) == 0;
        if (!last_chunked)
            other = 1;
        if (i == n)
            break;
        if (v[i] != ',')
            return 400;
        i++;
    }
    if (!last_chunked)
        return 400;
    if (other || ncodings > 1)
        return ncodings > 1 && !other ? 400 : 501; /* "chunked, chunked" is malformed */
    return 0;
}

/* Checks that llhttp leaves to the server, run once the head is complete. Returns 0, or the
 * status of the error answer. */
int aw_parser_check_head(aw_conn_t *c)
{
    llhttp_t *p = &c->parser;
    if (p->http_major != 1)
        return 505;
    const char *base = c->rbuf + c->head_start;
    int te_seen = 0;
    for (int i = 0; i < c->nhdrs; i++) {
        aw_header_t *h = &c->hdrs[i];
        if (h->name.len == 17 && strncasecmp(base + h->name.off, "transfer-encoding", 17) == 0) {
            if (te_seen)
                return 400; /* one Transfer-Encoding field, please */
            te_seen = 1;
            int r = check_transfer_encoding(c, base + h->value.off, h->value.len);
            if (r)
                return r;
        }
    }
    return 0;
}

/* Every framing error llhttp reports is the client's: 400 (a version that parses but is not
 * 1.x gets its 505 from aw_parser_check_head). */
int aw_parser_error_status(llhttp_errno_t err)
{
    (void)err;
    return 400;
}

/* Before more bytes go to llhttp while it is inside a chunk-size line: is the line still
 * within AW_CHUNK_LINE_MAX? Returns 0, or 400. */
int aw_parser_check_chunk_line(aw_conn_t *c, const char *data, size_t len)
{
    if (!c->at_chunk_line)
        return 0;
    size_t room = AW_CHUNK_LINE_MAX - c->chunk_line_seen;
    if (memchr(data, '\n', len < room ? len : room))
        return 0; /* the line ends in time; llhttp checks its syntax */
    if (len >= room)
        return 400;
    c->chunk_line_seen += len;
    return 0;
}
