/* proxy.h: the PROXY protocol header a load balancer sends before the first request
 * (HAProxy's doc/proxy-protocol.txt, versions 1 and 2), checked and read into plain C.
 *
 * Pure C: no Python here, so proxy.c is fuzzed on its own (csrc/fuzz/fuzz_proxy.c). Errors are
 * negative aw_proxy_error_t values.
 */
#ifndef AW_PROXY_H
#define AW_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#define AW_PROXY_V1_MAX 107  /* the longest v1 line, its CRLF included (spec 2.1) */
#define AW_PROXY_V2_MAX 4096 /* a v2 header, its 16 fixed bytes included, at most */

/* --proxy-protocol: what a listener expects at the start of every connection. */
typedef enum {
    AW_PROXY_OFF,  /* nothing: HTTP from the first byte */
    AW_PROXY_V1,   /* the text line */
    AW_PROXY_V2,   /* the binary block */
    AW_PROXY_AUTO, /* either, told apart by the first byte */
} aw_proxy_mode_t;

/* What a complete header says. */
typedef struct {
    int version;                 /* 1 or 2 */
    int local;                   /* LOCAL, UNKNOWN or an unspecified family: the connection's
                                  * own addresses stand */
    struct sockaddr_storage src; /* the client (AF_INET, AF_INET6 or AF_UNIX) unless local */
    int tls;                     /* v2: the client came over TLS (PP2_TYPE_SSL, PP2_CLIENT_SSL) */
} aw_proxy_info_t;

typedef enum {
    AW_PROXY_ERR_NOT_PROXY = -1,  /* the bytes are not the start of a header of the mode */
    AW_PROXY_ERR_V1_LINE = -2,    /* no CRLF in 107 bytes, or a bare CR or LF */
    AW_PROXY_ERR_V1_FIELDS = -3,  /* a protocol, address or port that is not as written */
    AW_PROXY_ERR_V2_VERSION = -4, /* a version other than 2, or a command other than
                                   * LOCAL and PROXY */
    AW_PROXY_ERR_V2_FAMILY = -5,  /* an address family or transport that does not exist */
    AW_PROXY_ERR_V2_LENGTH = -6,  /* longer than AW_PROXY_V2_MAX, or too short for its
                                   * addresses */
    AW_PROXY_ERR_V2_TLV = -7,     /* a TLV that runs past the header, or a short SSL one */
    AW_PROXY_ERR_V2_CRC = -8,     /* PP2_TYPE_CRC32C does not match */
} aw_proxy_error_t;

int aw_proxy_mode(const char *name, aw_proxy_mode_t *mode);
long aw_proxy_parse(aw_proxy_mode_t mode, const unsigned char *p, size_t n,
                    aw_proxy_info_t *info);
const char *aw_proxy_strerror(long err);

#endif
