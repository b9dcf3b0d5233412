/* conn.c: one client connection.
 *
 * Owns: the connection struct and its states (head, body, app, closing, linger), reading
 * into the pooled buffer and driving llhttp over it, deciding what each parse outcome means
 * (error answer, app call, next pipelined request), the epoll interest, the timeouts, and the
 * one teardown. Decide first, act in one place: handle_pump() and process() switch on an
 * outcome. Must not build Python objects itself: environ.c, input.c and wsgi.c do.
 */
#include "core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define AW_CLOSED 1 /* returned by handlers once the connection has been freed */

static int process(aw_conn_t *c);
static int close_or_linger(aw_conn_t *c);
static void access_log(aw_conn_t *c);

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- creation ---------------------------------------------------------------------------- */

static int set_peer(aw_conn_t *c, struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    c->remote_addr = PyUnicode_FromString(host);
    c->remote_port = sa->sa_family == AF_UNIX ? Py_NewRef(c->srv->st->v_empty)
                                              : PyUnicode_FromFormat("%d", port);
    return c->remote_addr && c->remote_port ? 0 : -1;
}

aw_conn_t *aw_conn_new(aw_server_t *s, aw_listener_t *l, int fd, struct sockaddr *sa)
{
    aw_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        PyErr_NoMemory();
        return NULL;
    }
    c->io.kind = AW_IO_CONN;
    c->io.fd = fd;
    c->srv = s;
    c->lst = l;
    c->spool_fd = -1;
    c->sf_fd = -1;
    c->resp_cl = -1;
    c->keep_alive = 1;
    aw_parser_init(c);
    if (set_peer(c, sa) < 0)
        goto error;
    int r = aw_server_update_events(s, &c->io, EPOLLIN);
    if (r < 0) {
        errno = -r;
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    s->nconns++;
    aw_tlist_append(&s->t_header, c, s->now_ms);
    return c;
error:
    Py_XDECREF(c->remote_addr);
    Py_XDECREF(c->remote_port);
    free(c);
    return NULL;
}

/* ---- teardown: one place, fixed order ---------------------------------------------------- */

void aw_conn_close(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    aw_tlist_remove(c);
    /* closing the fd drops its epoll registration: it is never dup()ed */
    c->state = AW_ST_LINGER;
    c->closing = 1;
    if (c->streaming && !c->input_eof && !c->input_error)
        c->input_error = 1;
    aw_input_detach(c->srv->st, c->input);
    aw_wsgi_finish(c); /* close() of the iterable, exactly once */
    aw_wsgi_file_done(c);
    aw_wsgi_detach(c);
    Py_CLEAR(c->environ);
    Py_CLEAR(c->input);
    Py_CLEAR(c->status);
    Py_CLEAR(c->headers);
    Py_CLEAR(c->remote_addr);
    Py_CLEAR(c->remote_port);
    aw_out_clear(c);
    aw_body_clear(c);
    close(c->io.fd);
    aw_pool_put(s, c->rbuf, c->rcap);
    aw_pool_put(s, c->wbuf, c->wcap);
    free(c->hdrs);
    s->nconns--;
    free(c);
}

static int out_pending(aw_conn_t *c);

int aw_conn_is_idle(aw_conn_t *c)
{
    return c->state == AW_ST_HEAD && c->rpos == c->rlen && !out_pending(c) &&
           c->t_list == &c->srv->t_keepalive;
}

/* ---- epoll interest ---------------------------------------------------------------------- */

static int out_pending(aw_conn_t *c)
{
    return c->nsegs > c->shead || c->sf_left > 0;
}

/* Work out what the connection waits for and tell epoll if that changed. */
void aw_conn_update(aw_conn_t *c)
{
    uint32_t ev = 0;
    int pending = out_pending(c);
    if (pending)
        ev |= EPOLLOUT;
    switch (c->state) {
    case AW_ST_HEAD:
    case AW_ST_BODY:
        /* back-pressure: a client that does not read its answers gets no more parsing */
        if (!pending && !c->read_eof)
            ev |= EPOLLIN;
        break;
    case AW_ST_APP:
        if (c->streaming && !c->msg_done && !c->read_eof && c->stream_bytes < AW_STREAM_HIGH)
            ev |= EPOLLIN;
        break;
    case AW_ST_CLOSING:
        break;
    case AW_ST_LINGER:
        ev |= EPOLLIN;
        break;
    }
    if (aw_server_update_events(c->srv, &c->io, ev) < 0)
        aw_log_message(c->srv, 40, "epoll_ctl on connection %d: %s", c->io.fd, strerror(errno));
}

/* Write what is queued; once a file response is completely sent, close its wrapper (so the
 * next pipelined request starts clean). Returns aw_out_flush's result. */
static int flush(aw_conn_t *c)
{
    int r = aw_out_flush(c);
    if (r == 0 && c->sf_obj)
        aw_wsgi_file_done(c);
    return r;
}

/* ---- the read buffer --------------------------------------------------------------------- */

static int make_room(aw_conn_t *c)
{
    if (!c->rbuf) {
        if (!(c->rbuf = aw_pool_get(c->srv)))
            return -1;
        c->rcap = AW_BUF_SIZE;
        c->rlen = c->rpos = c->head_start = 0;
    }
    if (c->rlen < c->rcap)
        return 0;
    /* While a head is being read its bytes are kept (the spans point into them); otherwise
     * everything already parsed is dead. */
    size_t dead = c->state == AW_ST_HEAD ? c->head_start : c->rpos;
    if (dead > 0) {
        /* spans are relative to head_start, so shifting the buffer keeps them valid */
        memmove(c->rbuf, c->rbuf + dead, c->rlen - dead);
        c->rlen -= dead;
        c->rpos -= dead;
        c->head_start = c->head_start > dead ? c->head_start - dead : 0;
        return 0;
    }
    size_t cap = c->rcap * 2;
    if (cap > c->srv->max_header_size + AW_BUF_SIZE)
        cap = c->srv->max_header_size + AW_BUF_SIZE;
    if (cap <= c->rcap)
        return -1; /* cannot happen: the head-size check answers 431 first */
    char *nb = realloc(c->rbuf, cap);
    if (!nb)
        return -1;
    c->rbuf = nb;
    c->rcap = cap;
    return 0;
}

/* Nothing buffered and nothing in progress: give the buffers back to the pool, so an idle
 * keep-alive connection costs only its struct (SPEC: 10,000 idle clients stay cheap). */
static void go_idle(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (c->rbuf && c->rpos == c->rlen) {
        aw_pool_put(s, c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = c->rlen = c->rpos = c->head_start = 0;
    }
    if (c->wbuf && !out_pending(c)) {
        aw_pool_put(s, c->wbuf, c->wcap);
        c->wbuf = NULL;
        c->wcap = c->wlen = 0;
    }
    free(c->hdrs); /* 512 bytes: a quarter of an idle connection's budget */
    c->hdrs = NULL;
    c->hcap = c->nhdrs = 0;
    aw_tlist_append(&s->t_keepalive, c, s->now_ms);
}

/* ---- answering errors -------------------------------------------------------------------- */

/* Queue a 4xx/5xx of our own; the connection closes once it is out, after lingering so the
 * client reads it rather than a reset. */
static void answer_error(aw_conn_t *c, int status)
{
    if (status == 500 && PyErr_Occurred())
        aw_log_exception(c->srv, "internal error while handling a request");
    PyErr_Clear();
    if (!c->headers_sent) {
        aw_response_error(c, status);
        c->body_sent = strlen(aw_status_reason(status)) + 1;
        access_log(c);
    }
    c->linger = 1;
    c->state = AW_ST_CLOSING;
    aw_tlist_append(&c->srv->t_io, c, c->srv->now_ms);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* For an answer the server gives before (or instead of) building the environ: the peer, and
 * what the head said when it was read far enough. */
static PyObject *minimal_environ(aw_conn_t *c)
{
    aw_state_t *st = c->srv->st;
    PyObject *d = PyDict_New();
    if (!d || PyDict_SetItem(d, st->k_REMOTE_ADDR, c->remote_addr) < 0 ||
        PyDict_SetItem(d, st->k_REMOTE_PORT, c->remote_port) < 0)
        goto error;
    if (c->head_done && c->state == AW_ST_HEAD) {
        PyObject *method = st->methods[c->parser.method & 63]; // borrowed
        PyObject *uri = PyUnicode_DecodeLatin1(c->rbuf + c->head_start + c->url.off,
                                               (Py_ssize_t)c->url.len, NULL);
        int r = !uri || (method && PyDict_SetItem(d, st->k_REQUEST_METHOD, method) < 0) ||
                PyDict_SetItem(d, st->k_RAW_URI, uri) < 0 ||
                PyDict_SetItem(d, st->k_SERVER_PROTOCOL,
                               c->parser.http_minor ? st->v_http11 : st->v_http10) < 0;
        Py_XDECREF(uri);
        if (r)
            goto error;
    }
    return d;
error:
    Py_XDECREF(d);
    return NULL;
}

/* One access-log call per request: finished, refused by the server, or cut. */
static void access_log(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (Py_IsNone(s->access_log))
        return;
    PyObject *env = c->environ ? Py_NewRef(c->environ) : minimal_environ(c);
    PyObject *r = env ? PyObject_CallFunction(s->access_log, "OiKd", env, c->resp_status,
                                              (unsigned long long)c->body_sent,
                                              c->t_start ? now_seconds() - c->t_start : 0.0)
                      : NULL;
    if (!r)
        aw_log_exception(s, "exception in the access log");
    Py_XDECREF(r);
    Py_XDECREF(env);
}

static void reset_request(aw_conn_t *c)
{
    aw_input_detach(c->srv->st, c->input);
    Py_CLEAR(c->environ);
    Py_CLEAR(c->input);
    Py_CLEAR(c->status);
    Py_CLEAR(c->headers);
    aw_body_clear(c);
    c->head_done = c->msg_done = c->is_head = c->expect_continue = c->continue_sent = 0;
    c->chunked_in = c->streaming = c->input_eof = c->headers_sent = c->chunked_out = 0;
    c->no_body = 0;
    c->input_error = 0;
    c->resp_cl = -1;
    c->resp_status = 0;
    c->body_sent = 0;
    c->t_start = 0;
    c->sentinel_spins = 0;
    c->wait = AW_WAIT_NONE;
}

/* The response is complete (queued): close the iterable, log, and decide what comes next. */
static void request_done(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    aw_wsgi_finish(c);
    access_log(c);
    if (c->streaming && !c->msg_done)
        c->close_after = 1; /* body not read to its end: the connection cannot be reused */
    reset_request(c);
    aw_server_request_done(s);
    if (c->close_after || !c->keep_alive || s->stopping || c->read_eof) {
        c->state = AW_ST_CLOSING;
        aw_tlist_append(&s->t_io, c, s->now_ms);
    } else {
        c->state = AW_ST_HEAD;
        c->head_start = c->rpos;
        aw_tlist_append(&s->t_header, c, s->now_ms);
    }
}

/* Act on what the pump decided. Returns AW_CLOSED if the connection is gone. */
static int handle_pump(aw_conn_t *c, aw_pump_t outcome)
{
    aw_server_t *s = c->srv;
    switch (outcome) {
    case AW_PUMP_DONE:
        request_done(c);
        return 0;
    case AW_PUMP_WAIT_OUT:
        c->wait = AW_WAIT_OUT;
        aw_tlist_append(&s->t_io, c, s->now_ms);
        return 0;
    case AW_PUMP_WAIT_IN:
        c->wait = AW_WAIT_IN;
        aw_tlist_append(&s->t_io, c, s->now_ms);
        return 0;
    case AW_PUMP_ABORT:
        /* cut: what is queued (earlier answers, part of this one) goes out if it can */
        aw_wsgi_finish(c);
        if (!s->fatal)
            access_log(c);
        if (!c->peer_gone && !s->fatal)
            flush(c);
        aw_conn_close(c);
        return AW_CLOSED;
    }
    return 0;
}

static int has_expect_continue(aw_conn_t *c)
{
    const char *base = c->rbuf + c->head_start;
    for (int i = 0; i < c->nhdrs; i++) {
        aw_header_t *h = &c->hdrs[i];
        if (h->name.len == 6 && strncasecmp(base + h->name.off, "expect", 6) == 0 &&
            h->value.len >= 12 && strncasecmp(base + h->value.off, "100-continue", 12) == 0)
            return 1;
    }
    return 0;
}

/* The head is complete: validate, build the environ, and either call a streaming app now or
 * get ready to read the body. Returns AW_CLOSED if the connection is gone. */
static int head_complete(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    llhttp_t *p = &c->parser;
    int status = 0;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->is_head = p->method == HTTP_HEAD;
    c->chunked_in = (p->flags & F_CHUNKED) != 0;
    int has_body = c->chunked_in || p->content_length > 0;
    c->t_start = Py_IsNone(s->access_log) ? 0 : now_seconds();
    if (c->rpos - c->head_start > s->max_header_size)
        status = 431;
    if (!status)
        status = aw_parser_check_head(c);
    if (!status && !c->chunked_in && p->content_length > s->max_body_size)
        status = 413;
    if (status) {
        answer_error(c, status);
        return 0;
    }
    c->expect_continue = p->http_minor >= 1 && has_body && has_expect_continue(c);
    if (!(c->environ = aw_environ_build(c))) {
        answer_error(c, 500);
        return 0;
    }
    c->head_start = c->rpos; /* the head lives on in the environ; its bytes can go */
    c->at_chunk_line = c->chunked_in;
    c->chunk_line_seen = 0;
    if (s->stream_input) {
        c->streaming = has_body;
        c->input_eof = !has_body;
        PyObject *input = has_body ? aw_input_new_stream(s->st, c) : Py_NewRef(s->empty_input);
        if (!input || PyDict_SetItem(c->environ, s->st->k_wsgi_input, input) < 0) {
            Py_XDECREF(input);
            answer_error(c, 500);
            return 0;
        }
        c->input = input;
        c->state = AW_ST_APP;
        aw_tlist_remove(c);
        return handle_pump(c, aw_wsgi_start(c));
    }
    if (aw_body_begin(c) < 0) {
        answer_error(c, 500);
        return 0;
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->continue_sent = 1;
        aw_out_copy(c, cont, sizeof(cont) - 1);
    }
    c->state = AW_ST_BODY;
    if (has_body)
        aw_tlist_append(&s->t_io, c, s->now_ms);
    return 0;
}

/* The whole message is in. Buffered: call the app. Streaming: the body has ended. */
static int message_complete(aw_conn_t *c)
{
    if (c->state == AW_ST_APP) {
        c->input_eof = 1;
        if (c->wait == AW_WAIT_IN) {
            c->wait = AW_WAIT_NONE;
            return handle_pump(c, aw_wsgi_pump(c));
        }
        return 0;
    }
    if (aw_body_finish(c) < 0) {
        answer_error(c, 500);
        return 0;
    }
    c->state = AW_ST_APP;
    aw_tlist_remove(c);
    return handle_pump(c, aw_wsgi_start(c));
}

/* Streamed body bytes arrived (or the body failed): wake an app waiting on the sentinel. */
static int stream_progress(aw_conn_t *c)
{
    if (c->state == AW_ST_APP && c->wait == AW_WAIT_IN &&
        (c->stream_bytes > 0 || c->input_eof || c->input_error)) {
        c->wait = AW_WAIT_NONE;
        return handle_pump(c, aw_wsgi_pump(c));
    }
    return 0;
}

/* Run the parser over buffered bytes and act on each outcome, as far as possible; then
 * write what the batch produced in one go and wait for what comes next. */
static int process(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    while (!s->fatal) {
        if (c->state == AW_ST_CLOSING) {
            int r = flush(c);
            if (r < 0) {
                aw_conn_close(c);
                return AW_CLOSED;
            }
            if (r == 0)
                return close_or_linger(c);
            break;
        }
        int parsing = c->state == AW_ST_HEAD || c->state == AW_ST_BODY ||
                      (c->state == AW_ST_APP && c->streaming && !c->msg_done &&
                       c->stream_bytes < AW_STREAM_HIGH);
        /* after a pause llhttp may owe callbacks with no bytes left (the end of a chunked
         * message follows the pause at its last chunk): a zero-length run delivers them */
        if (!parsing || (c->rpos == c->rlen && !c->resume_pending))
            break;
        if (c->state == AW_ST_HEAD && aw_out_full(c)) {
            /* pipelined answers are piling up unread: write them before parsing more */
            int r = flush(c);
            if (r < 0) {
                aw_conn_close(c);
                return AW_CLOSED;
            }
            if (aw_out_full(c))
                break;
        }
        if (c->state == AW_ST_HEAD && c->t_list == &s->t_keepalive)
            aw_tlist_append(&s->t_header, c, s->now_ms); /* a new request has begun */
        const char *start = c->rbuf + c->rpos;
        size_t before = c->stream_bytes;
        llhttp_errno_t err = HPE_USER;
        if (aw_parser_check_chunk_line(c, start, c->rlen - c->rpos) != 0)
            c->parse_error_status = 400;
        else
            err = llhttp_execute(&c->parser, start, c->rlen - c->rpos);
        c->resume_pending = 0;
        if (err == HPE_OK) {
            c->rpos = c->rlen;
        } else if (err == HPE_PAUSED) {
            c->rpos += (size_t)(llhttp_get_error_pos(&c->parser) - start);
            llhttp_resume(&c->parser);
            c->resume_pending = 1;
        } else if (err == HPE_PAUSED_UPGRADE) {
            /* an Upgrade (or CONNECT) we do not do: answer this request, then close; what
             * follows it is not HTTP */
            c->rpos = c->rlen;
            c->close_after = 1;
            c->msg_done = 1;
        } else {
            int status = c->parse_error_status ? c->parse_error_status
                                               : aw_parser_error_status(err);
            if (c->state != AW_ST_APP) {
                answer_error(c, status);
                continue;
            }
            /* streaming: the app learns it through its input (ClientDisconnected, or
             * RequestTooLarge); what follows the bad framing is not trusted as HTTP */
            c->input_error = status == 413 ? 2 : 3;
            c->close_after = 1;
            c->linger = 1;
            c->rpos = c->rlen;
            if (stream_progress(c) == AW_CLOSED)
                return AW_CLOSED;
            continue;
        }
        int r = 0;
        if (c->head_done && c->state == AW_ST_HEAD)
            r = head_complete(c);
        if (r != AW_CLOSED && c->msg_done &&
            (c->state == AW_ST_BODY || (c->state == AW_ST_APP && c->streaming)))
            r = message_complete(c);
        else if (r != AW_CLOSED && c->state == AW_ST_APP && c->stream_bytes != before)
            r = stream_progress(c);
        if (r == AW_CLOSED)
            return AW_CLOSED;
        if (err == HPE_OK) {
            if (c->state == AW_ST_HEAD && c->rlen - c->head_start > s->max_header_size) {
                answer_error(c, 431);
                continue;
            }
            if (c->read_eof && c->state != AW_ST_APP) {
                aw_conn_close(c); /* the client stopped mid-request */
                return AW_CLOSED;
            }
            break;
        }
    }
    if (out_pending(c) && flush(c) < 0) {
        aw_conn_close(c);
        return AW_CLOSED;
    }
    if (c->state == AW_ST_CLOSING && !out_pending(c))
        return close_or_linger(c);
    if (c->state == AW_ST_HEAD && c->rpos == c->rlen) {
        if (c->read_eof && !out_pending(c)) {
            aw_conn_close(c);
            return AW_CLOSED;
        }
        if (out_pending(c))
            /* an answer (a long download, say) is still going out: the I/O timeout, reset
             * on every write, applies, not the keep-alive one */
            aw_tlist_append(&s->t_io, c, s->now_ms);
        else if (c->t_list != &s->t_keepalive && c->rlen == c->head_start)
            go_idle(c);
    }
    aw_conn_update(c);
    return 0;
}

/* Everything is written and the connection must end. */
static int close_or_linger(aw_conn_t *c)
{
    if (!c->linger || c->read_eof) {
        aw_conn_close(c);
        return AW_CLOSED;
    }
    /* RFC 9112 9.6: half-close, then drain what the client still sends, so the answer is not
     * destroyed by a reset */
    shutdown(c->io.fd, SHUT_WR);
    c->state = AW_ST_LINGER;
    aw_tlist_append(&c->srv->t_linger, c, c->srv->now_ms);
    aw_conn_update(c);
    return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

static int on_readable(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (c->state == AW_ST_LINGER) {
        char sink[4096];
        for (;;) {
            ssize_t n = read(c->io.fd, sink, sizeof(sink));
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            aw_conn_close(c);
            return AW_CLOSED;
        }
    }
    if (make_room(c) < 0) {
        aw_conn_close(c);
        return AW_CLOSED;
    }
    ssize_t n = read(c->io.fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        n = 0; /* ECONNRESET and friends: the client is gone */
        c->peer_gone = 1;
    }
    if (n == 0) {
        c->read_eof = 1;
        switch (c->state) {
        case AW_ST_APP:
            if (c->streaming && !c->msg_done) {
                c->input_error = 1; /* ClientDisconnected for the app */
                if (stream_progress(c) == AW_CLOSED)
                    return AW_CLOSED;
            } else if (c->peer_gone) {
                break;
            }
            aw_conn_update(c); /* half-closed: finish this answer, then close */
            return 0;
        case AW_ST_HEAD:
            if (c->peer_gone)
                break;
            if (c->rpos < c->rlen || out_pending(c))
                return process(c); /* answer what was sent; process() closes after */
            break;
        case AW_ST_CLOSING:
            if (c->peer_gone || !out_pending(c))
                break;
            aw_conn_update(c);
            return 0;
        case AW_ST_BODY:
        case AW_ST_LINGER:
            break;
        }
        aw_conn_close(c);
        return AW_CLOSED;
    }
    c->rlen += (size_t)n;
    if (c->state == AW_ST_BODY || c->state == AW_ST_APP)
        aw_tlist_append(&s->t_io, c, s->now_ms); /* progress on a body */
    return process(c);
}

static int on_writable(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    int r = flush(c);
    if (r < 0) {
        aw_conn_close(c);
        return AW_CLOSED;
    }
    if (c->t_list == &s->t_io)
        aw_tlist_append(&s->t_io, c, s->now_ms); /* progress on a response */
    if (c->state == AW_ST_APP && c->wait == AW_WAIT_OUT && c->out_bytes < AW_OUT_LOW &&
        !aw_out_full(c)) {
        c->wait = AW_WAIT_NONE;
        aw_tlist_remove(c);
        if (handle_pump(c, aw_wsgi_pump(c)) == AW_CLOSED)
            return AW_CLOSED;
    }
    return process(c);
}

void aw_conn_on_event(aw_conn_t *c, uint32_t events)
{
    if (events & EPOLLERR) {
        c->peer_gone = 1;
        aw_conn_close(c);
        return;
    }
    if ((events & EPOLLOUT) && on_writable(c) == AW_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLHUP))
        on_readable(c);
}

/* The connection's deadline has passed (it is at the head of its timeout list). */
void aw_conn_expire(aw_conn_t *c)
{
    if (c->t_list == &c->srv->t_header && c->rlen > c->head_start && c->state == AW_ST_HEAD) {
        /* part of a head arrived, too slowly: say so before closing (RFC 9110 15.5.9) */
        aw_response_error(c, 408);
        flush(c);
    }
    aw_conn_close(c);
}
