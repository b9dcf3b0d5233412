/* proxy.c: the PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2).
 *
 * Owns: recognising a header from however many of its bytes have arrived (TCP may deliver it
 * in pieces: every call starts again from its first byte, which costs little at these sizes),
 * checking every byte of it as the specification writes it (version 1: one line of at most 107
 * bytes ending in CRLF, canonical addresses, ports without leading zeros; version 2: the 16
 * fixed bytes, the address block, then TLVs that must fit, and their CRC32c when one is sent),
 * and what it says: the client's address and port, and whether it came over TLS.
 * Must not include Python.h, read from a socket, or keep anything between calls: the caller
 * holds the bytes, decides whom to believe, and what to do with a bad header.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#define V2_FIXED 16
#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_SSL 0x20
#define PP2_CLIENT_SSL 0x01

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* --proxy-protocol's words. Returns 0, or -1 for a word that is none of them. */
int aw_proxy_mode(const char *name, aw_proxy_mode_t *mode)
{
    static const struct {
        const char *name;
        aw_proxy_mode_t mode;
    } names[] = {
        {.name = "off", .mode = AW_PROXY_OFF},
        {.name = "v1", .mode = AW_PROXY_V1},
        {.name = "v2", .mode = AW_PROXY_V2},
        {.name = "auto", .mode = AW_PROXY_AUTO},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *mode = names[i].mode;
            return 0;
        }
    }
    return -1;
}

const char *aw_proxy_strerror(long err)
{
    switch ((aw_proxy_error_t)err) {
    case AW_PROXY_ERR_NOT_PROXY:
        return "no PROXY protocol header of the version expected";
    case AW_PROXY_ERR_V1_LINE:
        return "PROXY v1 line without CRLF in its first 107 bytes, or with a bare CR or LF";
    case AW_PROXY_ERR_V1_FIELDS:
        return "PROXY v1 line with a malformed protocol, address or port";
    case AW_PROXY_ERR_V2_VERSION:
        return "PROXY v2 header of another version, or with an unknown command";
    case AW_PROXY_ERR_V2_FAMILY:
        return "PROXY v2 header with an unknown address family or transport";
    case AW_PROXY_ERR_V2_LENGTH:
        return "PROXY v2 header too long, or too short for its addresses";
    case AW_PROXY_ERR_V2_TLV:
        return "PROXY v2 header with a malformed TLV";
    case AW_PROXY_ERR_V2_CRC:
        return "PROXY v2 header whose CRC32c does not match";
    }
    return "PROXY protocol error";
}

/* Whether the n bytes that arrived agree with the first bytes of s (of length len). */
static int starts_like(const unsigned char *p, size_t n, const void *s, size_t len)
{
    return memcmp(p, s, n < len ? n : len) == 0;
}

/* ---- version 1 --------------------------------------------------------------------------- */

/* A decimal number of at most five digits, without a leading zero, at most max. Returns how
 * many characters it took (0: none is there). */
static size_t decimal(const char *p, unsigned max, unsigned *out)
{
    size_t i = 0;
    unsigned v = 0;
    while (i < 5 && p[i] >= '0' && p[i] <= '9')
        v = v * 10 + (unsigned)(p[i++] - '0');
    if (i == 0 || (i > 1 && p[0] == '0') || v > max)
        return 0;
    *out = v;
    return i;
}

/* Four decimal numbers up to 255 with a dot between each (spec 2.1: no leading zeros, which
 * could be read as octal). s is NUL-terminated. */
static int ipv4(const char *s, struct in_addr *a)
{
    unsigned char b[4];
    for (int k = 0; k < 4; k++) {
        unsigned v;
        size_t len = decimal(s, 255, &v);
        if (!len || s[len] != (k < 3 ? '.' : '\0'))
            return -1;
        b[k] = (unsigned char)v;
        s += len + 1;
    }
    memcpy(a, b, sizeof(b));
    return 0;
}

/* One address and its port, of the family the line named. Fields are NUL-terminated. */
static int v1_address(int family, const char *addr, const char *port,
                      struct sockaddr_storage *ss)
{
    unsigned pt;
    size_t len = decimal(port, 65535, &pt);
    if (!len || port[len] != '\0')
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)pt);
        return ipv4(addr, &a->sin_addr);
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)pt);
    return inet_pton(AF_INET6, addr, &a->sin6_addr) == 1 ? 0 : -1;
}

/* Split line in place at single spaces into exactly n NUL-terminated fields. */
static int split(char *line, char *fields[], int n)
{
    int k = 0;
    char *start = line;
    for (char *q = line;; q++) {
        if (*q != ' ' && *q != '\0')
            continue;
        if (q == start || k == n)
            return -1; /* an empty field (two spaces), or one too many */
        fields[k++] = start;
        if (*q == '\0')
            break;
        *q = '\0';
        start = q + 1;
    }
    return k == n ? 0 : -1;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT" or "PROXY UNKNOWN ...", without its CRLF. */
static long v1_line(char *line, size_t len, aw_proxy_info_t *info)
{
    char *f[6];
    struct sockaddr_storage dst;
    info->version = 1;
    if (len >= 13 && memcmp(line, "PROXY UNKNOWN", 13) == 0 && (len == 13 || line[13] == ' ')) {
        info->local = 1; /* the rest of the line is to be ignored */
        return 0;
    }
    if (memchr(line, '\0', len) || split(line, f, 6) < 0)
        return AW_PROXY_ERR_V1_FIELDS;
    int family = strcmp(f[1], "TCP4") == 0 ? AF_INET : strcmp(f[1], "TCP6") == 0 ? AF_INET6 : 0;
    if (!family || v1_address(family, f[2], f[4], &info->src) < 0 ||
        v1_address(family, f[3], f[5], &dst) < 0)
        return AW_PROXY_ERR_V1_FIELDS;
    return 0;
}

static long parse_v1(const unsigned char *p, size_t n, aw_proxy_info_t *info)
{
    if (!starts_like(p, n, "PROXY ", 6))
        return AW_PROXY_ERR_NOT_PROXY;
    size_t lim = n < AW_PROXY_V1_MAX ? n : AW_PROXY_V1_MAX, lf = 0;
    for (size_t i = 0; i < lim && !lf; i++) {
        if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n')
            return AW_PROXY_ERR_V1_LINE; /* spec 2.1: a single CR does not end the line */
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            return AW_PROXY_ERR_V1_LINE; /* nor does a single LF */
        if (p[i] == '\n')
            lf = i;
    }
    if (!lf)
        return n >= AW_PROXY_V1_MAX ? AW_PROXY_ERR_V1_LINE : 0;
    char line[AW_PROXY_V1_MAX];
    memcpy(line, p, lf - 1);
    line[lf - 1] = '\0';
    long r = v1_line(line, lf - 1, info);
    return r < 0 ? r : (long)lf + 1;
}

/* ---- version 2 --------------------------------------------------------------------------- */

/* CRC32c (Castagnoli, reflected), continued from crc. */
static uint32_t crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

/* Spec 2.2.3: the CRC32c of the whole header with the checksum's own 4 bytes (at) as zeros,
 * against those bytes (network order). */
static int crc_matches(const unsigned char *p, size_t total, size_t at)
{
    static const unsigned char zeros[4];
    uint32_t c = crc32c(0xFFFFFFFFu, p, at);
    c = crc32c(c, zeros, sizeof(zeros));
    c = ~crc32c(c, p + at + 4, total - at - 4);
    uint32_t sent = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 |
                    (uint32_t)p[at + 2] << 8 | (uint32_t)p[at + 3];
    return c == sent;
}

/* The TLVs from off to the end of the header: each must fit; SSL says TLS, CRC32C is checked,
 * the others are skipped. */
static long v2_tlvs(const unsigned char *p, size_t off, size_t total, aw_proxy_info_t *info)
{
    while (off < total) {
        if (total - off < 3)
            return AW_PROXY_ERR_V2_TLV;
        size_t len = (size_t)p[off + 1] << 8 | p[off + 2];
        if (total - off - 3 < len)
            return AW_PROXY_ERR_V2_TLV;
        if (p[off] == PP2_TYPE_SSL) {
            if (len < 5) /* client (1 byte) and verify (4 bytes), then sub-TLVs */
                return AW_PROXY_ERR_V2_TLV;
            info->tls = (p[off + 3] & PP2_CLIENT_SSL) != 0;
        } else if (p[off] == PP2_TYPE_CRC32C) {
            if (len != 4 || !crc_matches(p, total, off + 3))
                return AW_PROXY_ERR_V2_CRC;
        }
        off += 3 + len;
    }
    return 0;
}

/* The source address of the block at a: families 1 (IPv4), 2 (IPv6), 3 (unix). */
static void v2_source(int family, const unsigned char *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&s->sin_port, a + 8, 2); /* after both addresses; network order as sent */
    } else if (family == 2) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&s->sin6_port, a + 32, 2);
    } else {
        struct sockaddr_un *s = (struct sockaddr_un *)ss;
        s->sun_family = AF_UNIX;
        memcpy(s->sun_path, a, sizeof(s->sun_path) < 108 ? sizeof(s->sun_path) : 108);
    }
}

/* What the fixed bytes that arrived allow to be judged already. */
static long v2_fixed(const unsigned char *p, size_t n)
{
    if (!starts_like(p, n, v2_sig, sizeof(v2_sig)))
        return AW_PROXY_ERR_NOT_PROXY;
    if (n > 12 && ((p[12] >> 4) != 2 || (p[12] & 0xF) > 1))
        return AW_PROXY_ERR_V2_VERSION; /* version 2; commands LOCAL (0) and PROXY (1) */
    if (n > 13 && (p[12] & 0xF) == 1 && ((p[13] >> 4) > 3 || (p[13] & 0xF) > 2))
        return AW_PROXY_ERR_V2_FAMILY; /* (LOCAL's family is ignored) */
    if (n > 15 && V2_FIXED + ((size_t)p[14] << 8 | p[15]) > AW_PROXY_V2_MAX)
        return AW_PROXY_ERR_V2_LENGTH;
    return 0;
}

static long parse_v2(const unsigned char *p, size_t n, aw_proxy_info_t *info)
{
    static const size_t block[4] = {0, 12, 36, 216}; /* addresses and ports, by family */
    long r = v2_fixed(p, n);
    if (r < 0 || n < V2_FIXED)
        return r;
    size_t total = V2_FIXED + ((size_t)p[14] << 8 | p[15]);
    if (n < total)
        return 0;
    info->version = 2;
    int family = p[13] >> 4, transport = p[13] & 0xF;
    if ((p[12] & 0xF) == 0 || family == 0 || transport == 0) {
        info->local = 1; /* LOCAL (a health check), or addresses the spec says to ignore */
        return (long)total;
    }
    if (total - V2_FIXED < block[family])
        return AW_PROXY_ERR_V2_LENGTH;
    v2_source(family, p + V2_FIXED, &info->src);
    r = v2_tlvs(p, V2_FIXED + block[family], total, info);
    return r < 0 ? r : (long)total;
}

/* Parse the header at the start of p[0..n). Returns its length (> 0) with info filled in; 0
 * while the bytes so far are a valid beginning of one; or a negative aw_proxy_error_t as soon
 * as they cannot be (a request without a header fails on its first byte). */
long aw_proxy_parse(aw_proxy_mode_t mode, const unsigned char *p, size_t n,
                    aw_proxy_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (n == 0)
        return 0;
    if (mode == AW_PROXY_AUTO) /* spec 2.2: the first byte tells them apart */
        mode = p[0] == v2_sig[0] ? AW_PROXY_V2 : AW_PROXY_V1;
    if (mode == AW_PROXY_V1)
        return parse_v1(p, n, info);
    if (mode == AW_PROXY_V2)
        return parse_v2(p, n, info);
    return AW_PROXY_ERR_NOT_PROXY;
}
