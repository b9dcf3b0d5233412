/* static.h: requests under a --static prefix, answered from files without entering Python.
 *
 * Pure C (the loop thread answers them; server.c hands the option over as C strings, and
 * response.c queues the answer). Errors are negative errno values.
 */
#ifndef AW_STATIC_H
#define AW_STATIC_H

#include "http.h"
#include "parser.h"

#define AW_STATIC_PATH_MAX 4096 /* a decoded path longer than this is not found */

typedef struct aw_static aw_static_t;

aw_static_t *aw_static_new(long long max_age);
int aw_static_mount(aw_static_t *st, const char *prefix, const char *dir);
void aw_static_free(aw_static_t *st);

/* A request under a prefix, as aw_static_route found it. Fields are static.c's alone. */
typedef struct {
    aw_static_t *st;
    const void *mount;
    const aw_request_t *req;
    const char *base; /* the head's bytes (req->head) */
    aw_target_t target;
    size_t path_len, rel;       /* path[rel..path_len) is the part below the prefix */
    int refused;                /* a status decided from the path alone, or 0 */
    char path[AW_STATIC_PATH_MAX + 16]; /* decoded, NUL-terminated; room for a suffix */
} aw_static_route_t;

/* What the connection says about the answer to come. */
typedef struct {
    int keep_alive;   /* the connection may carry another request */
    const char *date; /* "Date: ...\r\n" */
    size_t date_len;
    long long now_ms; /* the loop's monotonic clock */
} aw_static_ctx_t;

/* An answer: its bytes are in the caller's buffer; a file's bytes may follow them. */
typedef struct {
    int status;
    size_t len;                    /* bytes written to the buffer (head, a short body) */
    int fd;                        /* a file to send after them, the caller's to close; or -1 */
    long long off, count;          /* ... its bytes */
    unsigned long long body_bytes; /* the body's length as sent */
    int close;                     /* "Connection: close" was said */
    int err;                       /* a 5xx: the error behind it */
} aw_static_answer_t;

int aw_static_route(aw_static_t *st, const aw_request_t *req, aw_static_route_t *route);
size_t aw_static_room(const aw_static_route_t *route);
void aw_static_answer(aw_static_route_t *route, const aw_static_ctx_t *ctx, char *buf,
                      aw_static_answer_t *ans);

#endif
