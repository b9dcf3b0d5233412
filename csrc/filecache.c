/* filecache.c: opening files beneath a directory, and the cache of what was opened.
 *
 * Owns: the resolution of a relative path beneath a directory (openat2 with RESOLVE_BENEATH
 * where the kernel has it; elsewhere openat followed by a check of where the descriptor really
 * leads, through /proc/self/fd, before the file is opened for reading), and a set-associative
 * cache of open descriptors and stat results, each entry trusted for AW_FCACHE_VALID_MS.
 * Must not include Python.h nor know HTTP (static.c turns kinds into statuses).
 */
#define _GNU_SOURCE /* O_PATH */
#include "filecache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#if !defined(SYS_openat2) && defined(__NR_openat2)
#define SYS_openat2 __NR_openat2
#endif

#define AW_FCACHE_SETS 32
#define AW_FCACHE_WAYS 4 /* at least as many as lookups per request (a file, 3 siblings) */
#define AW_OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) /* a FIFO must not block */

/* ---- opening beneath a directory --------------------------------------------------------- */

/* openat2 with RESOLVE_BENEATH: the kernel refuses ".." above dirfd, absolute symlinks and
 * symlinks leading out (EXDEV), and /proc magic links (ELOOP). -ENOSYS where it cannot. */
static int open_beneath(int dirfd, const char *rel)
{
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
    struct open_how how = {.flags = AW_OPEN_FLAGS,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
#else
    (void)dirfd;
    (void)rel;
    return -ENOSYS;
#endif
}

/* Where fd really leads, from /proc. Returns the length, or -errno (-ENAMETOOLONG rather
 * than a path cut short). */
static int fd_path(int fd, char out[PATH_MAX])
{
    char link[32];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, PATH_MAX);
    if (n < 0)
        return -errno;
    if (n >= PATH_MAX)
        return -ENAMETOOLONG;
    out[n] = '\0';
    return (int)n;
}

/* Whether fd leads to dirfd's directory or below it. */
static int is_beneath(int dirfd, int fd)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int dn = fd_path(dirfd, dir), pn = fd_path(fd, path);
    if (dn < 0 || pn < 0)
        return 0;
    if (dn == 1) /* the root directory holds everything */
        return 1;
    return pn >= dn && memcmp(dir, path, (size_t)dn) == 0 && (pn == dn || path[dn] == '/');
}

/* Without openat2 (before Linux 5.6, or a seccomp filter refusing it): a descriptor that only
 * names the file (O_PATH: no device is opened, no FIFO waited on), the check of where it leads,
 * and only then the file opened for reading, through that same descriptor. */
static int open_checked(int dirfd, const char *rel)
{
    int pfd = openat(dirfd, rel, O_PATH | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    int fd = -EXDEV;
    if (is_beneath(dirfd, pfd)) {
        char link[32];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", pfd);
        fd = open(link, AW_OPEN_FLAGS);
        fd = fd < 0 ? -errno : fd;
    }
    close(pfd);
    return fd;
}

static aw_file_kind_t kind_of_error(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return AW_FILE_MISSING;
    case EXDEV: /* a symlink leading out, or ".." above the directory */
    case ELOOP:
    case EACCES:
    case EPERM:
    case ENXIO: /* a socket */
    case ENODEV:
        return AW_FILE_FORBIDDEN;
    default:
        return AW_FILE_FAILED;
    }
}

/* Open rel ("" is the directory itself) beneath root and describe it in *f. */
static void open_file(const aw_root_t *root, const char *rel, aw_file_t *f)
{
    *f = (aw_file_t){.fd = -1};
    int fd, dirfd = open(root->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fd = -errno;
    } else {
        const char *name = rel[0] ? rel : ".";
        fd = root->beneath ? open_beneath(dirfd, name) : open_checked(dirfd, name);
        close(dirfd);
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        fd = -err;
    }
    if (fd < 0) {
        f->err = -fd;
        f->kind = kind_of_error(-fd);
        return;
    }
    f->kind = S_ISREG(st.st_mode) ? AW_FILE_REGULAR
                                  : (S_ISDIR(st.st_mode) ? AW_FILE_DIR : AW_FILE_FORBIDDEN);
    f->size = (long long)st.st_size;
    f->mtime = st.st_mtim;
    if (f->kind == AW_FILE_REGULAR)
        f->fd = fd;
    else
        close(fd);
}

/* A directory to serve from: it must be one now, and one of the two ways of resolving beneath
 * it must work here. AIOWSGI_STATIC_NO_OPENAT2 (set, non-empty) forces the fallback: the tests
 * run both on a kernel that has openat2. Returns 0 or -errno (-ENOSYS: neither works). */
int aw_root_init(aw_root_t *root, const char *dir)
{
    *root = (aw_root_t){0};
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    const char *force = getenv("AIOWSGI_STATIC_NO_OPENAT2");
    int fd = force && *force ? -ENOSYS : open_beneath(dirfd, ".");
    char where[PATH_MAX];
    int r = fd >= 0 ? 0 : (fd_path(dirfd, where) < 0 ? -ENOSYS : 0);
    root->beneath = fd >= 0;
    if (fd >= 0)
        close(fd);
    close(dirfd);
    if (r < 0)
        return r;
    root->path = strdup(dir);
    return root->path ? 0 : -ENOMEM;
}

void aw_root_free(aw_root_t *root)
{
    free(root->path);
    root->path = NULL;
}

/* ---- the cache --------------------------------------------------------------------------- */

typedef struct {
    const aw_root_t *root; /* NULL: the slot is empty */
    char *rel;
    size_t len;
    uint32_t hash;
    unsigned long long used; /* the request that last used it (aw_fcache_begin's count) */
    long long expires_ms;
    aw_file_t file;
} aw_fentry_t;

struct aw_fcache {
    aw_fentry_t slots[AW_FCACHE_SETS * AW_FCACHE_WAYS];
    unsigned long long request;
    aw_file_t failed; /* what a lookup that could not be cached returns */
};

aw_fcache_t *aw_fcache_new(void)
{
    return calloc(1, sizeof(aw_fcache_t));
}

static void drop(aw_fentry_t *e)
{
    if (e->file.fd >= 0)
        close(e->file.fd);
    free(e->rel);
    *e = (aw_fentry_t){.file = {.fd = -1}};
}

void aw_fcache_free(aw_fcache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < AW_FCACHE_SETS * AW_FCACHE_WAYS; i++) {
        if (c->slots[i].root)
            drop(&c->slots[i]);
    }
    free(c);
}

/* A new request begins: what the previous one looked up may be evicted again. */
void aw_fcache_begin(aw_fcache_t *c)
{
    c->request++;
}

static uint32_t hash_of(const aw_root_t *root, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)(uintptr_t)root; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot for a new entry in a set: an empty one, else the least recently used one that this
 * request has not used (its results stay valid until the next request). NULL when none. */
static aw_fentry_t *victim(aw_fcache_t *c, aw_fentry_t *set)
{
    aw_fentry_t *best = NULL;
    for (int i = 0; i < AW_FCACHE_WAYS; i++) {
        aw_fentry_t *e = &set[i];
        if (!e->root)
            return e;
        if (e->used != c->request && (!best || e->used < best->used))
            best = e;
    }
    return best;
}

static aw_fentry_t *find(aw_fentry_t *set, const aw_root_t *root, uint32_t h, const char *rel,
                         size_t len)
{
    for (int i = 0; i < AW_FCACHE_WAYS; i++) {
        aw_fentry_t *e = &set[i];
        if (e->root == root && e->hash == h && e->len == len && memcmp(e->rel, rel, len) == 0)
            return e;
    }
    return NULL;
}

static const aw_file_t *not_cached(aw_fcache_t *c, int err)
{
    c->failed = (aw_file_t){.kind = AW_FILE_FAILED, .fd = -1, .err = err};
    return &c->failed;
}

/* rel[0..len) beneath root: from the cache while its entry is fresh, else opened now (and
 * cached, unless it failed). The result stays valid until the next aw_fcache_begin(). */
const aw_file_t *aw_fcache_get(aw_fcache_t *c, const aw_root_t *root, const char *rel,
                               size_t len, long long now_ms)
{
    uint32_t h = hash_of(root, rel, len);
    aw_fentry_t *set = &c->slots[(h % AW_FCACHE_SETS) * AW_FCACHE_WAYS];
    aw_fentry_t *e = find(set, root, h, rel, len);
    if (e && (now_ms < e->expires_ms || e->used == c->request)) {
        e->used = c->request;
        return &e->file;
    }
    if (!e && !(e = victim(c, set)))
        return not_cached(c, EBUSY); /* cannot happen: a set has a way per lookup */
    char *copy = malloc(len + 1);
    if (!copy)
        return not_cached(c, ENOMEM);
    memcpy(copy, rel, len);
    copy[len] = '\0';
    if (e->root)
        drop(e);
    open_file(root, copy, &e->file);
    if (e->file.kind == AW_FILE_FAILED) {
        int err = e->file.err;
        free(copy);
        *e = (aw_fentry_t){.file = {.fd = -1}};
        return not_cached(c, err);
    }
    e->root = root;
    e->rel = copy;
    e->len = len;
    e->hash = h;
    e->used = c->request;
    e->expires_ms = now_ms + AW_FCACHE_VALID_MS;
    return &e->file;
}
