/* trust.h: the peers trusted to speak for their clients (--forwarded-allow-ips).
 *
 * Pure C. Addresses are compared as the text inet_ntop gives; "*" trusts every peer.
 */
#ifndef AW_TRUST_H
#define AW_TRUST_H

typedef struct {
    char **ips;
    int n, cap;
    int all; /* "*" was given */
} aw_trust_t;

int aw_trust_add(aw_trust_t *t, const char *ip);
int aw_trust_has(const aw_trust_t *t, const char *ip);
void aw_trust_free(aw_trust_t *t);

#endif
