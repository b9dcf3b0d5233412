/* parser.c: llhttp glue.
 *
 * Owns: the one static llhttp settings object, the callbacks that record the target and the
 * fields as spans, the request's framing (keep-alive, chunked, Content-Length, Expect), the
 * limits on a head and a body, the checks llhttp leaves to us (RFC 9112 6.1 Transfer-Encoding,
 * obs-fold, empty field names, HTTP versions, chunk-size line length), and the status of every
 * parse error. Must not include Python.h nor know where body bytes go (a callback does).
 */
#include "parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PARSER(ll) ((aw_parser_t *)(ll)->data)

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

/* ---- callbacks --------------------------------------------------------------------------- */

static int on_message_begin(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    p->req = (aw_request_t){.fields = p->req.fields}; /* the field array is reused */
    p->fstate = AW_FIELD_NONE;
    return 0;
}

/* The complete head leaves the caller's buffer: spans keep their offsets, into the copy. */
static int copy_head(aw_parser_t *p)
{
    if (p->head_bytes > p->copy_cap) {
        char *nb = realloc(p->copy, p->head_bytes);
        if (!nb)
            return 500;
        p->copy = nb;
        p->copy_cap = p->head_bytes;
    }
    if (p->head_bytes)
        memcpy(p->copy, p->base, p->head_bytes);
    p->req.head = p->copy;
    p->req.head_len = p->head_bytes;
    return 0;
}

/* Pieces of one element arrive separately when it straddles two reads; the head stays
 * contiguous, so each piece must start where the previous one ended. */
static int extend(aw_parser_t *p, aw_span_t *span, const char *at, size_t len, int fresh)
{
    if (fresh) {
        *span = (aw_span_t){.off = rel(p, at), .len = (uint32_t)len};
        return 0;
    }
    if (span->off + span->len != rel(p, at)) /* a value continued on another line */
        return fail(p, 400, "obsolete line folding"); /* RFC 9112 5.2 */
    span->len += (uint32_t)len;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    return extend(p, &p->req.target, at, len, p->req.target.len == 0);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    if (p->head_done) /* trailer fields of a chunked body: ignored (RFC 9112 7.1.2) */
        return 0;
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

/* RFC 9110 5.1: a field name is a token, never empty (llhttp reports ": v" as an empty one). */
static int on_header_field_complete(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    if (p->head_done)
        return 0;
    if (r->nfields == 0 || p->fstate != AW_FIELD_NAME || r->fields[r->nfields - 1].name.len == 0)
        return fail(p, 400, "empty header name");
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    if (p->head_done)
        return 0;
    if (r->nfields == 0)
        return fail(p, 400, "header value without a name");
    int fresh = p->fstate != AW_FIELD_VALUE;
    p->fstate = AW_FIELD_VALUE;
    return extend(p, &r->fields[r->nfields - 1].value, at, len, fresh);
}

static int on_headers_complete(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    aw_request_t *r = &p->req;
    p->head_done = 1;
    p->fstate = AW_FIELD_NONE;
    r->method = ll->method;
    r->http_major = ll->http_major;
    r->http_minor = ll->http_minor;
    r->chunked = (ll->flags & F_CHUNKED) != 0;
    r->content_length = r->chunked ? 0 : ll->content_length;
    r->has_body = r->chunked || r->content_length > 0;
    r->keep_alive = llhttp_should_keep_alive(ll) != 0;
    /* Upgrade or CONNECT, which we do not do: the request is answered, then the connection
     * closes, for what follows it is not HTTP */
    r->upgrade = ll->upgrade != 0;
    p->at_chunk_line = r->chunked;
    p->chunk_line_seen = 0;
    /* Without a body llhttp runs on to on_message_complete, which pauses: the caller then
     * learns of the head and the end together. With one, pause here, so the caller can
     * validate the head and prepare for the body first. */
    if (!r->has_body)
        return 0;
    p->pause = AW_PAUSE_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    aw_parser_t *p = PARSER(ll);
    if (p->body_bytes + len > p->max_body)
        return fail(p, 413, "body too large");
    p->body_bytes += len;
    int status = p->on_body(p->ctx, at, len);
    return status ? fail(p, status, "body not stored") : 0;
}

/* llhttp does not bound a chunk-size line (leading zeros, extensions): aw_parser_feed does,
 * between the end of one chunk (a pause here) and the next size (on_chunk_header). */
static int on_chunk_header(llhttp_t *ll)
{
    PARSER(ll)->at_chunk_line = 0;
    return 0;
}

static int on_chunk_complete(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    p->at_chunk_line = 1;
    p->chunk_line_seen = 0;
    p->pause = AW_PAUSE_CHUNK;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    aw_parser_t *p = PARSER(ll);
    p->msg_done = 1;
    p->at_chunk_line = 0;
    p->pause = AW_PAUSE_END;
    return HPE_PAUSED; /* one request at a time: pipelined ones wait in the caller's buffer */
}

static const llhttp_settings_t settings = {
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

/* ---- checks llhttp leaves to us ---------------------------------------------------------- */

static int is_tchar(unsigned char ch)
{
    /* RFC 9110 5.6.2 token characters */
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static size_t skip_ows(const char *v, size_t i, size_t n)
{
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i;
}

/* Transfer-Encoding of a request (RFC 9112 6.1, 6.3): a comma list of codings, whose last
 * must be chunked. Returns 0 (only "chunked"), 400 (malformed, chunked not last, repeated, or
 * any on HTTP/1.0: a classic smuggling vector) or 501 (codings we do not decode). */
static int check_transfer_encoding(const aw_request_t *r, const char *v, size_t n)
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

/* The index of the first field called lower_name (ASCII lower case), or -1. */
int aw_request_find(const aw_request_t *r, const char *base, const char *lower_name)
{
    size_t n = strlen(lower_name);
    for (int i = 0; i < r->nfields; i++) {
        const aw_field_t *f = &r->fields[i];
        if (f->name.len == n && strncasecmp(base + f->name.off, lower_name, n) == 0)
            return i;
    }
    return -1;
}

/* The head is complete: the checks llhttp leaves to us, then what the caller needs to know.
 * Returns 0, or the status of the error answer. */
static int check_head(aw_parser_t *p)
{
    aw_request_t *r = &p->req;
    if (p->head_bytes > p->max_head)
        return 431;
    if (r->http_major != 1)
        return 505;
    int te = -1;
    for (int i = 0; i < r->nfields; i++) {
        const aw_field_t *f = &r->fields[i];
        if (f->name.len != 17 || strncasecmp(p->base + f->name.off, "transfer-encoding", 17))
            continue;
        if (te >= 0)
            return 400; /* one Transfer-Encoding field, please */
        te = i;
        int status = check_transfer_encoding(r, p->base + f->value.off, f->value.len);
        if (status)
            return status;
    }
    if (!r->chunked && r->content_length > p->max_body)
        return 413;
    int expect = aw_request_find(r, p->base, "expect");
    r->expect_continue = r->http_minor >= 1 && r->has_body && expect >= 0 &&
                         r->fields[expect].value.len >= 12 &&
                         strncasecmp(p->base + r->fields[expect].value.off, "100-continue", 12) == 0;
    return 0;
}

/* ---- feeding ----------------------------------------------------------------------------- */

void aw_parser_init(aw_parser_t *p, size_t max_head, unsigned long long max_body,
                    aw_body_cb on_body, void *ctx)
{
    *p = (aw_parser_t){.max_head = max_head, .max_body = max_body, .on_body = on_body,
                       .ctx = ctx};
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

/* Before more bytes go to llhttp inside a chunk-size line: does the line end within
 * AW_CHUNK_LINE_MAX? Returns 0 (or it cannot tell yet), or 400. */
static int check_chunk_line(aw_parser_t *p, const char *data, size_t len)
{
    if (!p->at_chunk_line)
        return 0;
    size_t room = AW_CHUNK_LINE_MAX - p->chunk_line_seen;
    if (memchr(data, '\n', len < room ? len : room))
        return 0; /* the line ends in time; llhttp checks its syntax */
    if (len >= room)
        return 400;
    p->chunk_line_seen += len;
    return 0;
}

/* What has happened and not been told yet: AW_PARSE_HEAD (or ERROR, when the head fails its
 * checks), then AW_PARSE_END; AW_PARSE_MORE when nothing. */
static aw_parse_t untold(aw_parser_t *p)
{
    if (p->head_done && !p->head_told) {
        p->head_told = 1;
        int status = copy_head(p);
        if (!status)
            status = check_head(p);
        if (status) {
            p->error = status;
            return AW_PARSE_ERROR;
        }
        return AW_PARSE_HEAD;
    }
    if (p->msg_done && !p->end_told) {
        p->end_told = 1;
        return AW_PARSE_END;
    }
    return AW_PARSE_MORE;
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
    if (p->end_told) { /* the next request begins */
        p->head_done = p->msg_done = p->head_told = p->end_told = 0;
        p->head_bytes = 0;
        p->body_bytes = 0;
    }
    p->base = base;
    const char *at = data, *end = data + len;
    for (;;) {
        if (p->pause != AW_PAUSE_NONE) {
            llhttp_resume(&p->ll);
            p->pause = AW_PAUSE_NONE;
        }
        int status = check_chunk_line(p, at, (size_t)(end - at));
        if (status)
            return (p->error = status), AW_PARSE_ERROR;
        int was_head = !p->head_done;
        llhttp_errno_t err = llhttp_execute(&p->ll, at, (size_t)(end - at));
        const char *stop = err == HPE_OK ? end : llhttp_get_error_pos(&p->ll);
        if (was_head)
            p->head_bytes += (size_t)(stop - at);
        at = stop;
        *used = (size_t)(at - data);
        if (err == HPE_PAUSED && p->pause == AW_PAUSE_CHUNK)
            continue; /* ours alone; also delivers what llhttp owes with no bytes left */
        if (err == HPE_PAUSED)
            return untold(p);
        if (err == HPE_PAUSED_UPGRADE) { /* after an upgrade request: not HTTP, discarded */
            *used = len;
            return AW_PARSE_MORE;
        }
        if (err != HPE_OK)
            return (p->error = p->error ? p->error : 400), AW_PARSE_ERROR;
        if (!p->head_done && p->head_bytes > p->max_head)
            return (p->error = 431), AW_PARSE_ERROR;
        return AW_PARSE_MORE;
    }
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
