/* mime.c: file name extensions to Content-Type values.
 *
 * Owns: the built-in table of the web's common types, the types read from a mime.types file
 * (which add extensions the table lacks and change none of its own), and one sorted array of
 * both for lookups. Must not include Python.h nor be shared between servers (each has its own
 * copy, read once when its first --static mount is made).
 */
#include "mime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AW_MIME_EXT_MAX 32 /* an extension's length, at most, plus its NUL */
#define AW_MIME_DEFAULT "application/octet-stream"

/* What browsers need right (HTML, scripts, styles, images, fonts, media, manifests) and what
 * mime.types files disagree on or lack. */
static const struct {
    const char *ext, *type;
} builtin[] = {
    {.ext = "html", .type = "text/html"},
    {.ext = "htm", .type = "text/html"},
    {.ext = "css", .type = "text/css"},
    {.ext = "js", .type = "text/javascript"}, /* RFC 9239 */
    {.ext = "mjs", .type = "text/javascript"},
    {.ext = "json", .type = "application/json"},
    {.ext = "map", .type = "application/json"},
    {.ext = "webmanifest", .type = "application/manifest+json"},
    {.ext = "xml", .type = "text/xml"},
    {.ext = "xhtml", .type = "application/xhtml+xml"},
    {.ext = "txt", .type = "text/plain"},
    {.ext = "md", .type = "text/markdown"},
    {.ext = "csv", .type = "text/csv"},
    {.ext = "vtt", .type = "text/vtt"},
    {.ext = "ics", .type = "text/calendar"},
    {.ext = "rss", .type = "application/rss+xml"},
    {.ext = "atom", .type = "application/atom+xml"},
    {.ext = "wasm", .type = "application/wasm"},
    {.ext = "pdf", .type = "application/pdf"},
    {.ext = "zip", .type = "application/zip"},
    {.ext = "gz", .type = "application/gzip"},
    {.ext = "tar", .type = "application/x-tar"},
    {.ext = "swf", .type = "application/x-shockwave-flash"},
    {.ext = "png", .type = "image/png"},
    {.ext = "apng", .type = "image/apng"},
    {.ext = "jpg", .type = "image/jpeg"},
    {.ext = "jpeg", .type = "image/jpeg"},
    {.ext = "gif", .type = "image/gif"},
    {.ext = "webp", .type = "image/webp"},
    {.ext = "avif", .type = "image/avif"},
    {.ext = "svg", .type = "image/svg+xml"},
    {.ext = "ico", .type = "image/vnd.microsoft.icon"},
    {.ext = "bmp", .type = "image/bmp"},
    {.ext = "tif", .type = "image/tiff"},
    {.ext = "tiff", .type = "image/tiff"},
    {.ext = "woff", .type = "font/woff"},
    {.ext = "woff2", .type = "font/woff2"},
    {.ext = "ttf", .type = "font/ttf"},
    {.ext = "otf", .type = "font/otf"},
    {.ext = "eot", .type = "application/vnd.ms-fontobject"},
    {.ext = "mp4", .type = "video/mp4"},
    {.ext = "m4v", .type = "video/mp4"},
    {.ext = "webm", .type = "video/webm"},
    {.ext = "ogv", .type = "video/ogg"},
    {.ext = "mov", .type = "video/quicktime"},
    {.ext = "mp3", .type = "audio/mpeg"},
    {.ext = "m4a", .type = "audio/mp4"},
    {.ext = "ogg", .type = "audio/ogg"},
    {.ext = "oga", .type = "audio/ogg"},
    {.ext = "opus", .type = "audio/ogg"},
    {.ext = "wav", .type = "audio/wav"},
    {.ext = "flac", .type = "audio/flac"},
};

#define N_BUILTIN (sizeof(builtin) / sizeof(builtin[0]))

typedef struct {
    char ext[AW_MIME_EXT_MAX]; /* lower case */
    uint32_t type;             /* offset of the Content-Type value in the arena */
    uint32_t seq;              /* order of addition: the first of equal extensions wins */
} aw_mime_entry_t;

struct aw_mime {
    aw_mime_entry_t *entries;
    size_t n, cap;
    char *arena; /* NUL-terminated Content-Type values */
    size_t alen, acap;
};

/* Append a Content-Type value (with a charset for text); returns its offset, or -ENOMEM. */
static long long add_type(aw_mime_t *m, const char *type, size_t len)
{
    int text = len > 5 && memcmp(type, "text/", 5) == 0;
    size_t need = len + (text ? 15 : 0) + 1;
    if (m->alen + need > m->acap) {
        size_t cap = m->acap ? m->acap * 2 : 4096;
        while (cap < m->alen + need)
            cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a)
            return -ENOMEM;
        m->arena = a;
        m->acap = cap;
    }
    long long off = (long long)m->alen;
    memcpy(m->arena + m->alen, type, len);
    if (text)
        memcpy(m->arena + m->alen + len, "; charset=utf-8", 15);
    m->arena[m->alen + need - 1] = '\0';
    m->alen += need;
    return off;
}

/* Returns 0 (an extension too long is skipped), or -ENOMEM. */
static int add_ext(aw_mime_t *m, const char *ext, size_t len, long long type)
{
    if (len == 0 || len >= AW_MIME_EXT_MAX)
        return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        aw_mime_entry_t *e = realloc(m->entries, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        m->entries = e;
        m->cap = cap;
    }
    aw_mime_entry_t *e = &m->entries[m->n];
    *e = (aw_mime_entry_t){.type = (uint32_t)type, .seq = (uint32_t)m->n};
    for (size_t i = 0; i < len; i++)
        e->ext[i] = (char)(ext[i] >= 'A' && ext[i] <= 'Z' ? ext[i] + 32 : ext[i]);
    m->n++;
    return 0;
}

/* One line of a mime.types file: "type ext ext ...", '#' starts a comment. */
static int add_line(aw_mime_t *m, char *line)
{
    static const char *const space = " \t\r\n";
    char *hash = strchr(line, '#'), *save = NULL;
    if (hash)
        *hash = '\0';
    const char *type = strtok_r(line, space, &save);
    const char *ext = type ? strtok_r(NULL, space, &save) : NULL;
    if (!ext || !strchr(type, '/'))
        return 0;
    long long off = add_type(m, type, strlen(type));
    for (; off >= 0 && ext; ext = strtok_r(NULL, space, &save)) {
        if (add_ext(m, ext, strlen(ext), off) < 0)
            return -ENOMEM;
    }
    return off < 0 ? (int)off : 0;
}

/* A missing or unreadable file is no error: the built-in table serves alone. */
static int add_file(aw_mime_t *m, const char *path)
{
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return 0;
    char line[1024];
    int r = 0;
    while (r == 0 && fgets(line, sizeof(line), f))
        r = add_line(m, line);
    fclose(f);
    return r;
}

static int by_ext_only(const void *a, const void *b)
{
    return strcmp(((const aw_mime_entry_t *)a)->ext, ((const aw_mime_entry_t *)b)->ext);
}

static int by_ext(const void *a, const void *b)
{
    const aw_mime_entry_t *x = a, *y = b;
    int c = strcmp(x->ext, y->ext);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sort by extension and keep the first of each (the built-in one, when it has it). */
static void sort_unique(aw_mime_t *m)
{
    qsort(m->entries, m->n, sizeof(*m->entries), by_ext);
    size_t kept = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (kept == 0 || strcmp(m->entries[kept - 1].ext, m->entries[i].ext) != 0)
            m->entries[kept++] = m->entries[i];
    }
    m->n = kept;
}

/* The built-in table plus types_file (NULL: none). Returns NULL when out of memory. */
aw_mime_t *aw_mime_new(const char *types_file)
{
    aw_mime_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    int r = add_type(m, AW_MIME_DEFAULT, strlen(AW_MIME_DEFAULT)) < 0 ? -ENOMEM : 0;
    for (size_t i = 0; r == 0 && i < N_BUILTIN; i++) {
        long long off = add_type(m, builtin[i].type, strlen(builtin[i].type));
        r = off < 0 ? (int)off : add_ext(m, builtin[i].ext, strlen(builtin[i].ext), off);
    }
    if (r == 0)
        r = add_file(m, types_file);
    if (r < 0) {
        aw_mime_free(m);
        return NULL;
    }
    sort_unique(m);
    return m;
}

void aw_mime_free(aw_mime_t *m)
{
    if (!m)
        return;
    free(m->entries);
    free(m->arena);
    free(m);
}

/* The Content-Type of a file called name[0..len) (a path: its last segment counts). */
const char *aw_mime_type(const aw_mime_t *m, const char *name, size_t len)
{
    aw_mime_entry_t key = {.ext = ""};
    size_t i = len, n = 0;
    while (i > 0 && name[i - 1] != '.' && name[i - 1] != '/')
        i--;
    if (i == 0 || name[i - 1] != '.' || len - i >= AW_MIME_EXT_MAX)
        return m->arena; /* the default comes first */
    for (; i < len; i++, n++)
        key.ext[n] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    const aw_mime_entry_t *e = bsearch(&key, m->entries, m->n, sizeof(key), by_ext_only);
    return e ? m->arena + e->type : m->arena;
}
