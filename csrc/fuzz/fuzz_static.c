/* fuzz_static.c: libFuzzer target for the --static answer alone (static.c, filecache.c,
 * mime.c, http.c, parser.c), with no CPython anywhere.
 *
 * Owns: a site built once in a temporary folder (files, an index, a precompressed sibling, a
 * FIFO, symlinks inside and out, and a secret file next to the site), two mounts of it (one
 * resolving with openat2, one with the /proc fallback), and a driver that parses the input as
 * a request head and answers it as conn.c would, into a buffer of exactly aw_static_room()
 * bytes. Built by tools/fuzz.sh with no Python include path.
 *
 * Input format: byte 0 bit 1 picks the fallback mount; byte 1 advances the clock by that many
 * milliseconds (so cache entries expire now and then); then the bytes of the requests. The
 * seeds of fuzz_conn (tests/fuzz_corpus) read the same way: flags, write size, requests.
 *
 * Checks, besides ASan/UBSan: the answer fits its room and starts with a status line of a
 * status static.c may send; what follows the head in the buffer is nothing or the reason; a
 * file to send is a regular file inside the site (never the secret), and the bytes to send lie
 * within it.
 */
#define _GNU_SOURCE
#include "../parser.h"
#include "../static.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static aw_static_t *mounts[2]; /* [0] openat2, [1] the fallback */
static char site[PATH_MAX];
static long long clock_ms;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_static: invariant broken: %s\n", what);
        abort();
    }
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    check(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot build the site");
}

static void build_site(void)
{
    char root[] = "/tmp/aiowsgi-fuzz-static-XXXXXX", path[PATH_MAX];
    check(mkdtemp(root) != NULL, "mkdtemp");
    put_file(root, "secret.txt", "SECRET");
    snprintf(site, sizeof(site), "%s/site", root);
    check(mkdir(site, 0755) == 0, "mkdir site");
    snprintf(path, sizeof(path), "%s/d", site);
    check(mkdir(path, 0755) == 0, "mkdir d");
    put_file(site, "a.css", "body{}");
    put_file(site, "app.3f2a1b9c.js", "hashed");
    put_file(site, "app.js", "console.log(1)");
    put_file(site, "app.js.gz", "gzipped");
    put_file(site, "app.js.br", "brotli");
    put_file(site, "d/index.html", "<h1>index</h1>");
    put_file(site, "empty", "");
    snprintf(path, sizeof(path), "%s/fifo", site);
    check(mkfifo(path, 0644) == 0, "mkfifo");
    const char *links[][2] = {{"a.css", "in.css"}, {"../secret.txt", "out.txt"},
                              {"..", "up"}, {"/etc", "etc"}};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", site, links[i][1]);
        check(symlink(links[i][0], path) == 0, "symlink");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    build_site();
    for (int i = 0; i < 2; i++) {
        if (i == 1)
            setenv("AIOWSGI_STATIC_NO_OPENAT2", "1", 1);
        mounts[i] = aw_static_new(60);
        check(mounts[i] && aw_static_mount(mounts[i], "/s", site) == 0 &&
                  aw_static_mount(mounts[i], "/s/d/x", site) == 0,
              "cannot mount the site");
        unsetenv("AIOWSGI_STATIC_NO_OPENAT2");
    }
    return 0;
}

static int known_status(int status)
{
    static const int known[] = {200, 206, 301, 304, 403, 404, 405, 412, 416, 500, 503};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i] == status)
            return 1;
    }
    return 0;
}

/* The file to send lies inside the site, and so do the bytes asked of it. */
static void check_file(const aw_static_answer_t *ans)
{
    char link[64], where[PATH_MAX];
    struct stat st;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", ans->fd);
    ssize_t n = readlink(link, where, sizeof(where) - 1);
    check(n > 0, "the file to send has no path");
    where[n] = '\0';
    size_t len = strlen(site);
    check(strncmp(where, site, len) == 0 && where[len] == '/', "a file outside the site");
    check(fstat(ans->fd, &st) == 0 && S_ISREG(st.st_mode), "not a regular file");
    check(ans->off >= 0 && ans->count > 0 && ans->off + ans->count <= st.st_size,
          "bytes outside the file");
    close(ans->fd);
}

static void answer(const aw_request_t *req, int which)
{
    aw_static_route_t route;
    if (!aw_static_route(mounts[which], req, &route))
        return;
    static const char date[] = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    aw_static_ctx_t ctx = {.keep_alive = 1, .date = date, .date_len = sizeof(date) - 1,
                           .now_ms = clock_ms};
    size_t room = aw_static_room(&route);
    char *buf = malloc(room); /* exactly the room: ASan sees a write past it */
    aw_static_answer_t ans;
    check(buf != NULL, "out of memory");
    aw_static_answer(&route, &ctx, buf, &ans);
    check(ans.len <= room && ans.len > 13 && memcmp(buf, "HTTP/1.1 ", 9) == 0,
          "no status line");
    check(atoi(buf + 9) == ans.status && known_status(ans.status), "an unknown status");
    const char *end = memmem(buf, ans.len, "\r\n\r\n", 4);
    check(end != NULL, "a head without its end");
    size_t body = ans.len - (size_t)(end + 4 - buf); /* only a reason, never a file's bytes */
    check(ans.fd >= 0 ? body == 0 && ans.body_bytes == (unsigned long long)ans.count
                      : body == ans.body_bytes,
          "the body's length is not what the answer says");
    check(ans.fd >= 0 || body == 0 ||
              memcmp(end + 4, aw_status_reason(ans.status), body - 1) == 0,
          "an answer's own body is not its reason");
    if (ans.fd >= 0)
        check_file(&ans);
    free(buf);
}

static int on_body(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int which = (data[0] >> 1) & 1;
    clock_ms += data[1];
    const char *buf = (const char *)data + 2;
    size -= 2;
    aw_parser_t p;
    aw_parser_init(&p, 65536, 1 << 20, on_body, NULL);
    size_t used, pos = 0, head = 0; /* spans are relative to the current head, as in conn.c */
    for (int rounds = 0; rounds < 256; rounds++) {
        aw_parse_t r = aw_parser_feed(&p, buf + head, buf + pos, size - pos, &used);
        pos += used;
        if (r == AW_PARSE_HEAD)
            answer(aw_parser_request(&p), which);
        else if (r == AW_PARSE_END)
            head = pos;
        else if (r == AW_PARSE_ERROR || used == 0)
            break;
    }
    aw_parser_free(&p);
    return 0;
}
