/* pool.c: the buffer free list.
 *
 * Owns: up to AW_POOL_MAX buffers of AW_BUF_SIZE bytes. Must not include Python.h; must not
 * be shared between threads (each server's loop has its own).
 */
#include "pool.h"

#include <stdlib.h>

/* A buffer of AW_BUF_SIZE bytes, or NULL when out of memory. */
char *aw_pool_get(aw_pool_t *pool)
{
    if (pool->n > 0)
        return pool->bufs[--pool->n];
    return malloc(AW_BUF_SIZE);
}

/* Give back buf (NULL is fine), whose capacity is cap. */
void aw_pool_put(aw_pool_t *pool, char *buf, size_t cap)
{
    if (!buf)
        return;
    if (cap == AW_BUF_SIZE && pool->n < AW_POOL_MAX)
        pool->bufs[pool->n++] = buf;
    else
        free(buf);
}

void aw_pool_free(aw_pool_t *pool)
{
    while (pool->n > 0)
        free(pool->bufs[--pool->n]);
}
