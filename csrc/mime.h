/* mime.h: the Content-Type of a file, from its name's extension.
 *
 * Pure C. A built-in table of the web's common types, extended (never overridden) by a
 * mime.types file such as /etc/mime.types; text types carry "; charset=utf-8".
 */
#ifndef AW_MIME_H
#define AW_MIME_H

#include <stddef.h>

typedef struct aw_mime aw_mime_t;

aw_mime_t *aw_mime_new(const char *types_file);
void aw_mime_free(aw_mime_t *m);
const char *aw_mime_type(const aw_mime_t *m, const char *name, size_t len);

#endif
