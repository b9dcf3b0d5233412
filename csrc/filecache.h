/* filecache.h: files beneath a directory, opened so that nothing outside it is ever reached,
 * and a small cache of their descriptors and stat results, each valid for a short time.
 *
 * Pure C. Errors are negative errno values.
 */
#ifndef AW_FILECACHE_H
#define AW_FILECACHE_H

#include <time.h>

#define AW_FCACHE_VALID_MS 1000 /* a changed file is seen after this long, at most */

typedef enum {
    AW_FILE_REGULAR,   /* fd is open for reading */
    AW_FILE_DIR,       /* a directory */
    AW_FILE_MISSING,   /* nothing by that name (ENOENT, ENOTDIR, ENAMETOOLONG) */
    AW_FILE_FORBIDDEN, /* outside the directory, unreadable, or neither a file nor a directory */
    AW_FILE_FAILED,    /* cannot be opened now (err: EMFILE, EIO, ...); never cached */
} aw_file_kind_t;

/* What a lookup found. Valid until the next aw_fcache_begin(). */
typedef struct {
    aw_file_kind_t kind;
    int fd; /* AW_FILE_REGULAR: the cache's descriptor (dup it to keep it); else -1 */
    int err;
    long long size;
    struct timespec mtime;
} aw_file_t;

/* A directory files are served from. Fields are filecache.c's alone. */
typedef struct {
    char *path;  /* absolute; opened again on every lookup that misses, so a directory
                    replaced by a deploy (a symlink switched) is followed */
    int beneath; /* openat2(RESOLVE_BENEATH) works; else the fallback (filecache.c) */
} aw_root_t;

int aw_root_init(aw_root_t *root, const char *dir);
void aw_root_free(aw_root_t *root);

typedef struct aw_fcache aw_fcache_t;

aw_fcache_t *aw_fcache_new(void);
void aw_fcache_free(aw_fcache_t *c);
void aw_fcache_begin(aw_fcache_t *c);
const aw_file_t *aw_fcache_get(aw_fcache_t *c, const aw_root_t *root, const char *rel,
                               size_t len, long long now_ms);

#endif
