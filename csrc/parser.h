/* parser.h: HTTP/1.x requests checked line by line as RFC 9112 writes them, their heads read
 * with llhttp into plain C (aw_request_t), their bodies decoded.
 *
 * Pure C: no Python here, so the parser is fuzzed on its own (csrc/fuzz/fuzz_parser.c).
 * While a head arrives, its bytes stay contiguous in the caller's buffer from "base" (the caller
 * may move the buffer between feeds, passing the new base each time); once complete, the head is
 * copied, so the request no longer depends on the caller's buffer. Body bytes need not be kept:
 * every byte given is consumed unless a head or the end of a request is reported first.
 */
#ifndef AW_PARSER_H
#define AW_PARSER_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#define AW_CHUNK_LINE_MAX 4096 /* a chunk-size line with its extensions, at most */
#define AW_METHOD_UNKNOWN (-1) /* a well-formed method token llhttp does not know: 501 */

typedef struct {
    uint32_t off, len;
} aw_span_t;

typedef struct {
    aw_span_t name, value;
} aw_field_t;

/* The forms of a request target (RFC 9112 3.2). */
typedef enum {
    AW_TARGET_ORIGIN,    /* "/path?query" */
    AW_TARGET_ABSOLUTE,  /* "http://authority/path?query" */
    AW_TARGET_AUTHORITY, /* "host:port", for CONNECT */
    AW_TARGET_ASTERISK,  /* "*", for OPTIONS */
} aw_target_form_t;

/* One request head, copied out of llhttp and out of the caller's buffer: spans are offsets into
 * head. Valid from AW_PARSE_HEAD (or an error found in a complete head) until the next feed
 * after AW_PARSE_END. */
typedef struct {
    const char *head; /* the head's bytes (parser.c's copy) */
    size_t head_len;
    int method;             /* llhttp_method_t, or AW_METHOD_UNKNOWN */
    aw_span_t method_token; /* as sent (what the access log shows of an unknown one) */
    int http_major, http_minor;
    aw_span_t target;    /* as sent */
    aw_target_form_t form;
    aw_span_t authority; /* absolute and authority forms: host[:port] (empty otherwise) */
    aw_span_t path;      /* origin and absolute forms: from the path on (query, fragment);
                            asterisk and authority forms: the whole target */
    aw_field_t *fields;
    int nfields;
    unsigned long long content_length; /* when not chunked */
    unsigned keep_alive : 1, chunked : 1, has_body : 1, expect_continue : 1, upgrade : 1;
} aw_request_t;

typedef enum {
    AW_PARSE_MORE,    /* every byte given was consumed; more are needed */
    AW_PARSE_HEAD,    /* a head is complete and valid: aw_parser_request() */
    AW_PARSE_END,     /* the request, its body included, is complete */
    AW_PARSE_ERROR,   /* malformed or over a limit: aw_parser_error() is the answer's status */
} aw_parse_t;

/* Body bytes as they are decoded (chunked framing removed). Returns 0, or the status of the
 * error answer (e.g. 500 when they cannot be stored). */
typedef int (*aw_body_cb)(void *ctx, const char *data, size_t len);

typedef enum { AW_FIELD_NONE, AW_FIELD_NAME, AW_FIELD_VALUE } aw_field_state_t;

/* Fields are parser.c's alone. */
typedef struct {
    llhttp_t ll;
    aw_request_t req;
    int fcap;
    char *copy;         /* where a complete head is copied */
    size_t copy_cap;
    aw_field_state_t fstate;
    int scan; /* where the next byte falls in a request (parser.c's aw_scan_t) */
    const char *base;
    uint32_t method_off, method_len, target_off, version_off;
    int version_minor;
    size_t max_head;
    size_t line_bytes;                  /* of this chunk-size line, or of the trailers */
    unsigned long long remaining;       /* bytes left in this chunk or Content-Length body */
    unsigned long long body_bytes, max_body;
    aw_body_cb on_body;
    void *ctx;
    int error;
    unsigned head_done : 1, msg_done : 1, head_told : 1, end_told : 1;
} aw_parser_t;

void aw_parser_init(aw_parser_t *p, size_t max_head, unsigned long long max_body,
                    aw_body_cb on_body, void *ctx);
void aw_parser_free(aw_parser_t *p);
void aw_parser_trim(aw_parser_t *p);
aw_parse_t aw_parser_feed(aw_parser_t *p, const char *base, const char *data, size_t len,
                          size_t *used);
int aw_parser_pending(const aw_parser_t *p);
int aw_parser_error(const aw_parser_t *p);
int aw_parser_head_complete(const aw_parser_t *p);
const aw_request_t *aw_parser_request(const aw_parser_t *p);

#endif
