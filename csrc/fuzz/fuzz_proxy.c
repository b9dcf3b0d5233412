/* fuzz_proxy.c: libFuzzer target for the PROXY protocol header alone (proxy.c), with no
 * CPython anywhere.
 *
 * Owns: a driver that parses the input as the bytes at the start of a connection, in every
 * mode, and checks what a caller relies on. Built by tools/fuzz.sh with no Python include
 * path. Input format: byte 0 picks the mode (its low two bits: v1, v2, auto) and byte 1 a
 * prefix length, as the bytes that had arrived at an earlier read; then the bytes. The seeds
 * of tests/fuzz_corpus that tools/make_fuzz_corpus.py writes for fuzz_conn with a PROXY header
 * read the same way (flags, write size, header and requests).
 *
 * Checks, besides ASan/UBSan: a header's length is within the input and within the limit of
 * its version; the header alone parses to the same length and client; every beginning of a
 * valid header asks for more (it is never refused, so a header in pieces works); a refusal is
 * final (more bytes never make it valid) and has a message; an answer of "more" is never given
 * past the limit (no connection waits forever on a header that cannot end); a client that is
 * not the connection's own has a family a peer can have.
 */
#include "../proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_proxy: invariant broken: %s\n", what);
        abort();
    }
}

static size_t limit_of(int version)
{
    return version == 1 ? AW_PROXY_V1_MAX : AW_PROXY_V2_MAX;
}

/* A header was found: its length, its version, its client, and its beginnings. */
static void check_header(aw_proxy_mode_t mode, const uint8_t *p, size_t n, long len,
                         const aw_proxy_info_t *info)
{
    aw_proxy_info_t again;
    check((size_t)len <= n, "a header longer than the input");
    check(info->version == 1 || info->version == 2, "a header of no version");
    check((size_t)len <= limit_of(info->version), "a header past its version's limit");
    check(mode == AW_PROXY_AUTO || (int)mode == info->version, "a header of another version");
    check(info->local || info->src.ss_family == AF_INET || info->src.ss_family == AF_INET6 ||
              info->src.ss_family == AF_UNIX,
          "a client of no family");
    check(aw_proxy_parse(mode, p, (size_t)len, &again) == len, "the header alone differs");
    check(memcmp(&again, info, sizeof(again)) == 0, "the header alone names another client");
    size_t cuts[] = {0, 1, (size_t)len / 2, (size_t)len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        if (cuts[i] < (size_t)len)
            check(aw_proxy_parse(mode, p, cuts[i], &again) == 0,
                  "the beginning of a valid header is refused");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const aw_proxy_mode_t modes[4] = {AW_PROXY_V1, AW_PROXY_V2, AW_PROXY_AUTO,
                                             AW_PROXY_AUTO};
    if (size < 2)
        return 0;
    aw_proxy_mode_t mode = modes[data[0] & 3];
    size_t early = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    early = early < n ? early : n;
    aw_proxy_info_t info, first;
    long r = aw_proxy_parse(mode, p, n, &info);
    long r_early = aw_proxy_parse(mode, p, early, &first);
    if (r > 0)
        check_header(mode, p, n, r, &info);
    if (r == 0)
        check(n == 0 || (n < AW_PROXY_V2_MAX && (p[0] != 'P' || n < AW_PROXY_V1_MAX)),
              "more bytes asked for past the limit");
    if (r < 0)
        check(strlen(aw_proxy_strerror(r)) > 0, "a refusal without a message");
    if (r_early < 0)
        check(r == r_early, "a refusal undone by more bytes");
    if (r_early > 0)
        check(r == r_early, "a header that changed with the bytes after it");
    return 0;
}
