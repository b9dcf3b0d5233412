/* environ.h: the PEP 3333 environ of a request, built from the parsed head (parser.h) and
 * the peer's address.
 *
 * Python-aware. Reads nothing from sockets: everything comes in an aw_environ_src_t.
 */
#ifndef AW_ENVIRON_H
#define AW_ENVIRON_H

#include "compat.h"
#include "module.h"
#include "parser.h"
#include "proxy.h"
#include "trust.h"

#include <arpa/inet.h>
#include <sys/socket.h>

/* The client's address: as C text from accept(), as Python objects when first needed. Fields
 * are environ.c's alone. */
typedef struct {
    char ip[INET6_ADDRSTRLEN];
    int port;
    int family;
    int tls; /* a PROXY header said the client came over TLS: wsgi.url_scheme is https */
    PyObject *addr, *port_str;
} aw_peer_t;

/* What one environ is made of. */
typedef struct {
    aw_state_t *st;
    PyObject *tpl;            /* the listener's constant entries */
    const aw_trust_t *trust;  /* peers whose X-Forwarded-* are believed */
    int unix_listener;        /* a unix-socket peer is a local proxy: trusted */
    aw_peer_t *peer;
    const aw_request_t *req;  /* NULL before a head is complete */
} aw_environ_src_t;

void aw_peer_set(aw_peer_t *peer, const struct sockaddr *sa);
void aw_peer_proxied(aw_peer_t *peer, const aw_proxy_info_t *info);
int aw_peer_trusted(const aw_peer_t *peer, const aw_trust_t *trust, int unix_listener);
const char *aw_peer_ip(const aw_peer_t *peer);
void aw_peer_clear(aw_peer_t *peer);
int aw_peer_holds_objects(const aw_peer_t *peer);
PyObject *aw_environ_build(const aw_environ_src_t *src);
PyObject *aw_environ_minimal(const aw_environ_src_t *src);
PyObject *aw_environ_template(aw_state_t *st, PyObject *server_name, PyObject *server_port,
                              PyObject *url_scheme, PyObject *errors, int multithread,
                              int multiprocess, PyObject *input, PyObject *sentinel);
int aw_environ_init_keys(aw_state_t *st);

#endif
