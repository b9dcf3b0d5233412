/* trust.c: matching a peer address against the trusted list.
 *
 * Owns: the copies of the trusted addresses. Must not include Python.h (server.c turns the
 * Python option into aw_trust_add calls).
 */
#include "trust.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Returns 0 or -ENOMEM. */
int aw_trust_add(aw_trust_t *t, const char *ip)
{
    if (strcmp(ip, "*") == 0) {
        t->all = 1;
        return 0;
    }
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 4;
        char **ips = realloc(t->ips, (size_t)cap * sizeof(*ips));
        if (!ips)
            return -ENOMEM;
        t->ips = ips;
        t->cap = cap;
    }
    if (!(t->ips[t->n] = strdup(ip)))
        return -ENOMEM;
    t->n++;
    return 0;
}

int aw_trust_has(const aw_trust_t *t, const char *ip)
{
    if (t->all)
        return 1;
    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->ips[i], ip) == 0)
            return 1;
    }
    return 0;
}

void aw_trust_free(aw_trust_t *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->ips[i]);
    free(t->ips);
    *t = (aw_trust_t){.ips = NULL};
}
