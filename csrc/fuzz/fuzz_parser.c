/* fuzz_parser.c: libFuzzer target for parser.c alone, with no CPython anywhere.
 *
 * Owns: a driver that plays the connection's part: the input stands in one buffer, arrives
 * a few bytes at a time, and is fed to aw_parser_feed with the head's base moving on after
 * every head, as conn.c does. Built by tools/fuzz.sh from parser.c and llhttp's sources with
 * no Python include path, which also proves parser.c needs no Python.h.
 *
 * Input format: byte 0 the size of each arrival (0: everything at once), byte 1 the head
 * limit in units of 64 bytes (0: 64 KiB), then the bytes a client sends.
 *
 * Checks, besides ASan/UBSan: every span of a head lies inside the bytes of that head; a
 * request is told as HEAD then END, and nothing follows an ERROR but ERROR; body bytes arrive
 * only between HEAD and END, and a Content-Length body is exactly that long; an error's status
 * is one the server answers with; feeding always makes progress or waits for bytes. And what
 * an accepted head is (RFC 9112, SPEC 4): its lines end in CRLF and nothing else, none is
 * folded, no control byte but HTAB is in it; its method is one the server knows; its target
 * is VCHARs, "*" only for OPTIONS and host:port for CONNECT, its parts inside it; one Host at
 * most, and one on HTTP/1.1; one Content-Type at most.
 */
#include "../parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    int in_body;
    unsigned long long body;
} driver_t;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_parser: invariant broken: %s\n", what);
        abort();
    }
}

static int on_body(void *ctx, const char *data, size_t len)
{
    driver_t *d = ctx;
    check(d->in_body, "body bytes outside a body");
    check(data != NULL && len > 0, "an empty body callback");
    d->body += len;
    return 0;
}

static int span_inside(aw_span_t inner, aw_span_t outer)
{
    return inner.off >= outer.off && inner.off + (size_t)inner.len <= outer.off + (size_t)outer.len;
}

/* The head's bytes: CRLF the only line end, no obs-fold, no control byte but HTAB. */
static void check_head_bytes(const char *head, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)head[i];
        check(ch != '\r' || (i + 1 < len && head[i + 1] == '\n'), "a bare CR in an accepted head");
        check(ch != '\n' || (i > 0 && head[i - 1] == '\r'), "a bare LF in an accepted head");
        check(ch != '\n' || i + 1 == len || (head[i + 1] != ' ' && head[i + 1] != '\t'),
              "an obs-fold in an accepted head");
        check(ch >= 0x20 || ch == '\t' || ch == '\r' || ch == '\n', "a control byte in a head");
        check(ch != 0x7f, "a DEL in an accepted head");
    }
}

static int count_fields(const aw_request_t *r, const char *head, const char *name)
{
    int n = 0;
    for (int i = 0; i < r->nfields; i++) {
        const aw_field_t *f = &r->fields[i];
        n += f->name.len == strlen(name) && strncasecmp(head + f->name.off, name, f->name.len) == 0;
    }
    return n;
}

static void check_target(const aw_request_t *r, const char *head)
{
    check(r->target.len > 0, "an empty target");
    for (size_t i = 0; i < r->target.len; i++) {
        unsigned char ch = (unsigned char)head[r->target.off + i];
        check(ch > 0x20 && ch < 0x7f, "a target byte that is not VCHAR");
    }
    check(span_inside(r->path, r->target), "the path outside the target");
    check(span_inside(r->authority, r->target), "the authority outside the target");
    check((r->form == AW_TARGET_ASTERISK) <= (r->method == HTTP_OPTIONS), "'*' not for OPTIONS");
    check((r->form == AW_TARGET_AUTHORITY) == (r->method == HTTP_CONNECT),
          "authority-form and CONNECT apart");
    check(r->form != AW_TARGET_ORIGIN || head[r->target.off] == '/', "an origin-form without /");
    check(r->form != AW_TARGET_ABSOLUTE || r->authority.len > 0, "an absolute-form without host");
}

static void check_head(const aw_request_t *r, const char *head, size_t head_len)
{
    check(r->target.off + (size_t)r->target.len <= head_len, "the target outside its head");
    check(r->nfields >= 0, "a negative field count");
    for (int i = 0; i < r->nfields; i++) {
        const aw_field_t *f = &r->fields[i];
        check(f->name.len > 0, "an empty field name was accepted");
        check(f->name.off + (size_t)f->name.len <= head_len, "a field name outside its head");
        check(f->value.off + (size_t)f->value.len <= head_len, "a field value outside its head");
    }
    check(r->http_major == 1, "a version other than 1.x was accepted");
    check(!r->has_body || r->chunked || r->content_length > 0, "a body of no length");
    check(r->method != AW_METHOD_UNKNOWN, "a method the server does not know was accepted");
    check_head_bytes(head, head_len);
    check_target(r, head);
    int hosts = count_fields(r, head, "host");
    check(hosts <= 1 && (hosts == 1 || r->http_minor == 0), "not one Host on HTTP/1.1");
    check(count_fields(r, head, "content-type") <= 1, "a repeated Content-Type was accepted");
}

static int known_status(int status)
{
    return status == 400 || status == 413 || status == 431 || status == 500 || status == 501 ||
           status == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = data[0] ? data[0] : size;
    size_t max_head = data[1] ? (size_t)data[1] * 64 : 65536;
    const char *buf = (const char *)data + 2;
    size -= 2;
    driver_t d = {0};
    aw_parser_t p;
    aw_parser_init(&p, max_head, 1 << 20, on_body, &d);
    size_t head_start = 0, rpos = 0, avail = 0;
    int errored = 0, in_request = 0;
    for (int rounds = 0; rounds < 1000000; rounds++) {
        if (rpos == avail && !aw_parser_pending(&p)) {
            if (avail == size)
                break;
            avail = avail + step < size ? avail + step : size; /* more bytes arrive */
        }
        size_t used;
        aw_parse_t r = aw_parser_feed(&p, buf + head_start, buf + rpos, avail - rpos, &used);
        check(used <= avail - rpos, "more bytes used than given");
        rpos += used;
        check(!errored || r == AW_PARSE_ERROR, "parsing went on after an error");
        if (r == AW_PARSE_ERROR) {
            check(known_status(aw_parser_error(&p)), "an error status the server does not use");
            errored = 1;
            break;
        }
        if (r == AW_PARSE_HEAD) {
            check(!in_request, "a second head before the end of a request");
            const aw_request_t *req = aw_parser_request(&p);
            check(req->head_len == rpos - head_start, "the copied head is not the head's length");
            check(memcmp(req->head, buf + head_start, req->head_len) == 0,
                  "the copied head differs from the bytes received");
            check_head(req, req->head, req->head_len);
            in_request = 1;
            d.in_body = 1;
            d.body = 0;
            head_start = rpos;
        } else if (r == AW_PARSE_END) {
            const aw_request_t *req = aw_parser_request(&p);
            check(in_request, "an end without a head");
            check(req->chunked || d.body == req->content_length, "a body of the wrong length");
            in_request = d.in_body = 0;
            head_start = rpos;
        } else {
            check(rpos == avail, "MORE with bytes left unused");
        }
    }
    aw_parser_free(&p);
    return 0;
}
