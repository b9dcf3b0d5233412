/* pool.h: a free list of fixed-size I/O buffers, so that idle connections hold none.
 *
 * Pure C, one owner thread. Buffers of another size (grown by their user) are freed, not kept.
 */
#ifndef AW_POOL_H
#define AW_POOL_H

#include <stddef.h>

#define AW_BUF_SIZE 16384 /* a pooled read or write buffer */
#define AW_POOL_MAX 256   /* buffers kept for reuse, at most */

typedef struct {
    char *bufs[AW_POOL_MAX];
    int n;
} aw_pool_t;

char *aw_pool_get(aw_pool_t *pool);
void aw_pool_put(aw_pool_t *pool, char *buf, size_t cap);
void aw_pool_free(aw_pool_t *pool);

#endif
