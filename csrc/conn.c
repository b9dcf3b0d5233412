/* conn.c: one client connection.
 *
 * Owns: the connection's own fields (state, read buffer, timer, flags), the state machine
 * below, reading and feeding the parser, the epoll interest, the timers, every flush of the
 * send queue (the one place writes to the client start), and the one teardown. Decide first,
 * act in one place: next_step() decides what the connection does next from its state alone,
 * run() acts on it in one switch, and the parser's and the pump's outcomes are handled the same
 * way. Must not build Python objects (environ.c, input.c and wsgi.c do) nor format HTTP
 * (response.c).
 *
 * States (aw_conn_state_t) and transitions, timers in brackets:
 *
 *   new --> HEAD [header] --head--> BODY [io] --end of body--> APP
 *   new --> PROXY [header] --its PROXY header--> HEAD                 (--proxy-protocol)
 *           HEAD --head, streaming input--> APP
 *   APP --pump: done, keep-alive--> IDLE [io, then keep-alive] or HEAD (pipelined bytes)
 *   APP --pump: done, must close--> CLOSE_AFTER [io], or LINGER_AFTER if input may be unread
 *   APP --pump: queue full--> WAIT_OUT [io] --queue drained--> APP
 *   APP --pump: sentinel--> WAIT_IN [io] --body bytes, end or error--> APP
 *   IDLE --first byte--> HEAD
 *   IDLE --keep-alive timer, nothing received--> closed; bytes waiting unread--> HEAD
 *   HEAD, BODY --malformed, too large, ...--> LINGER_AFTER (an error answer is queued)
 *   CLOSE_AFTER --all sent--> closed
 *   LINGER_AFTER --all sent--> LINGER [linger] --client's EOF or timer--> closed
 *   any --client gone, write error, timer--> closed (aw_conn_close)
 *   PROXY --malformed or missing header, untrusted peer--> closed (logged)
 *
 *   APP --no room in the thread pool--> READY --room--> APP               (--threads N > 1)
 *
 * With --threads 1, APP lasts only while the app's response is pulled, within one event. With
 * a thread pool, APP means the connection is a job of the pool: queued or running on an app
 * thread, which owns it until it hands it back with the outcome of the app's turn; the loop
 * does not touch it meanwhile. Outside of an event, every other open connection is on exactly
 * one timer list, or READY in the server's waiting list, or (APP_FLUSH, until the end of the
 * turn) on the turn's write list: that is how the server finds them all.
 * The app's turn (app_turn) runs where the app runs, with the GIL; everything else runs on the
 * loop's thread, which with a thread pool does not hold the GIL: the Python side of a request
 * is done in the app's turn, and what the loop must still drop goes to the pool.
 *
 * While the server stops gracefully (server.c), every response says Connection: close and
 * ends its connection; a connection between requests is never closed at once, since a request
 * may be on its way (a load balancer reusing it): it closes after answering that request, or
 * when its keep-alive timer runs out with nothing received, as at any other time.
 */
#include "conn.h"
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AW_LEFT 1 /* an action's result: the connection is gone, or an app thread's now */

typedef enum {
    STEP_PARSE,  /* feed buffered bytes to the parser */
    STEP_PUMP,   /* pull the app's response */
    STEP_FLUSH,  /* send what is queued */
    STEP_DEFER,  /* send what is queued with the turn's writes (aw_conn_write_all) */
    STEP_LINGER, /* everything is sent: half-close and drain the client */
    STEP_PAUSE,  /* read no new request until the pool has room */
    STEP_CLOSE,  /* close now */
    STEP_WAIT,   /* nothing to do until the next event */
} aw_step_t;

static void run(aw_conn_t *c);

/* ---- state, timers, interest ------------------------------------------------------------- */

static void set_state(aw_conn_t *c, aw_conn_state_t state)
{
    aw_server_t *s = c->srv;
    aw_tlist_t *timer = &s->t_io;
    if (state == AW_CONN_HEAD || state == AW_CONN_PROXY)
        timer = &s->t_header;
    else if (state == AW_CONN_LINGER)
        timer = &s->t_linger;
    c->state = state;
    if (state == AW_CONN_APP || state == AW_CONN_APP_FLUSH || state == AW_CONN_READY)
        aw_timer_cancel(&c->timer); /* the app runs, or its request waits for a thread */
    else
        aw_timer_arm(timer, &c->timer, s->loop.now_ms);
}

/* Progress on a body or a response: the I/O timer starts again. */
static void progress(aw_conn_t *c)
{
    if (c->timer.list == &c->srv->t_io)
        aw_timer_arm(&c->srv->t_io, &c->timer, c->srv->loop.now_ms);
}

static int unparsed(const aw_conn_t *c)
{
    return c->rpos < c->rlen || aw_parser_pending(&c->parser);
}

/* A streamed body may be read further while the app's response waits. */
static int stream_readable(const aw_conn_t *c)
{
    return aw_body_wants_more(&c->body) && !aw_parser_error(&c->parser);
}

/* Tell epoll what the connection waits for. */
static void watch(aw_conn_t *c)
{
    int pending = aw_out_pending(&c->out);
    uint32_t ev = pending ? EPOLLOUT : 0;
    switch (c->state) {
    case AW_CONN_PROXY:
    case AW_CONN_IDLE:
    case AW_CONN_HEAD:
    case AW_CONN_BODY:
        /* back-pressure: a client that does not read its answers gets no more parsing, nor
         * does anyone while the pool is full */
        if (!pending && !c->read_eof && !c->paused)
            ev |= EPOLLIN;
        break;
    case AW_CONN_WAIT_OUT:
    case AW_CONN_WAIT_IN:
        if (stream_readable(c) && !c->read_eof)
            ev |= EPOLLIN;
        break;
    case AW_CONN_LINGER:
        ev |= EPOLLIN;
        break;
    case AW_CONN_APP:
    case AW_CONN_APP_FLUSH:
    case AW_CONN_READY:
    case AW_CONN_CLOSE_AFTER:
    case AW_CONN_LINGER_AFTER:
    case AW_CONN_CLOSED:
        break;
    }
    int r = aw_loop_watch(&c->srv->loop, &c->io, ev);
    if (r < 0)
        aw_log_message(&c->srv->log, AW_LOG_ERROR, "epoll_ctl on connection %d: %s", c->io.fd,
                       strerror(-r));
}

/* ---- creation and teardown --------------------------------------------------------------- */

static void on_event(aw_io_t *io, uint32_t events);

/* A connection for an accepted socket fd. Returns NULL with errno set on failure (the caller
 * closes fd). */
aw_conn_t *aw_conn_new(aw_server_t *s, aw_listener_t *l, int fd, const struct sockaddr *sa)
{
    aw_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->io = (aw_io_t){.fd = fd, .on_event = on_event};
    c->srv = s;
    c->lst = l;
    aw_parser_init(&c->parser, (size_t)s->opt.max_header_size,
                   (unsigned long long)s->opt.max_body_size, aw_body_store, &c->body);
    aw_body_init(&c->body, (size_t)s->opt.spool_threshold);
    aw_response_init(&c->resp);
    aw_out_init(&c->out, &s->pool, aw_server_release, s);
    aw_app_init(&c->app);
    aw_peer_set(&c->peer, sa);
    int r = aw_loop_watch(&s->loop, &c->io, EPOLLIN);
    if (r < 0) {
        free(c);
        errno = -r;
        return NULL;
    }
    aw_server_conn_opened(s);
    if (l->proxy == AW_PROXY_OFF) {
        set_state(c, AW_CONN_HEAD); /* waiting for the first request's head */
        return c;
    }
    set_state(c, AW_CONN_PROXY);
    if (!aw_peer_trusted(&c->peer, &s->trust, l->family == AF_UNIX)) {
        /* the PROXY protocol lets the peer name any client: only trusted ones may */
        aw_log_peer_warning(&s->log, s->loop.now_ms, "connection from %s refused: "
                            "--proxy-protocol is on and it is not in --forwarded-allow-ips",
                            aw_peer_ip(&c->peer));
        aw_conn_close(c); /* freed at the end of the turn */
    }
    return c;
}

/* The Python side of a connection: the iterable's close() (once), the references. Where the
 * app runs (GIL held). */
static void drop_python(aw_conn_t *c)
{
    aw_wsgi_detach(c);
    aw_peer_clear(&c->peer);
}

static int holds_python(aw_conn_t *c)
{
    return aw_wsgi_holds_objects(c) || aw_peer_holds_objects(&c->peer);
}

static void free_conn(aw_conn_t *c)
{
    aw_body_reset(&c->body);
    aw_parser_free(&c->parser);
    free(c);
}

/* The one teardown, in a fixed order: no timer and no wait, nothing queued, the iterable's
 * close() (once) and the Python references, the descriptor (which drops its epoll registration:
 * it is never dup()ed). The memory goes at the end of the loop's turn (aw_conn_reap), so that an
 * event of this turn's batch for it finds a closed connection, not freed memory. With a thread
 * pool the loop has no GIL: the Python side of a connection that still holds some is dropped
 * by an app thread then. */
void aw_conn_close(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    aw_timer_cancel(&c->timer);
    if (c->state == AW_CONN_READY)
        aw_server_unwait(&s->ready, c);
    if (c->paused)
        aw_server_unwait(&s->paused, c);
    c->paused = 0;
    if (c->metered) /* a request in flight that gets no answer */
        aw_metrics_cut(s->metrics);
    c->metered = 0;
    aw_out_clear(&c->out);
    if (!holds_python(c) || aw_threads_gil_held())
        drop_python(c);
    close(c->io.fd);
    aw_pool_put(&s->pool, c->rbuf, c->rcap);
    c->rbuf = NULL;
    aw_server_conn_closed(s);
    c->state = AW_CONN_CLOSED;
    aw_server_wait(&s->closed, c);
}

/* The end of the loop's turn: free the connections it closed, or have the pool drop their
 * Python side first. */
void aw_conn_reap(aw_server_t *s)
{
    while (s->closed.head) {
        aw_conn_t *c = s->closed.head;
        aw_server_unwait(&s->closed, c);
        if (holds_python(c) && !aw_threads_gil_held())
            aw_threads_submit(s->threads, &c->job, 1);
        else
            free_conn(c);
    }
}

/* Whether the client has sent bytes not read yet. The loop reads the clock when it wakes and
 * expires deadlines after the turn's events: a request that came in meanwhile (while an app
 * call ran) is waiting, unread. */
static int bytes_waiting(const aw_conn_t *c)
{
    char byte;
    return recv(c->io.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* The connection's deadline passed (it is at the head of its timer list). */
void aw_conn_expire(aw_conn_t *c)
{
    if (c->state == AW_CONN_IDLE && !aw_out_pending(&c->out) && bytes_waiting(c)) {
        /* not idle: a request arrived as the keep-alive ran out (a load balancer reusing the
         * connection); closing would lose it. It is read on the next turn (level-triggered),
         * under the header timer. */
        set_state(c, AW_CONN_HEAD);
        return;
    }
    if (c->state == AW_CONN_PROXY && c->rlen > 0)
        aw_log_peer_warning(&c->srv->log, c->srv->loop.now_ms, "connection from %s closed: "
                            "no complete PROXY header within --header-timeout",
                            aw_peer_ip(&c->peer));
    else if (c->state == AW_CONN_HEAD && c->rlen > c->head_start) {
        /* part of a head arrived, too slowly: say so before closing (RFC 9110 15.5.9) */
        aw_resp_ctx_t ctx;
        aw_conn_resp_ctx(c, &ctx);
        aw_response_error(&c->resp, &c->out, 408, &ctx);
        aw_out_flush(&c->out, c->io.fd);
    }
    aw_conn_close(c);
}

/* ---- what other files ask of the connection ---------------------------------------------- */

static int flush(aw_conn_t *c);

/* The app read its streamed body: answer Expect: 100-continue, once (SPEC 5). The answer goes
 * out with the next flush, before the app next waits. */
void aw_conn_input_read(aw_conn_t *c)
{
    if (c->continue_owed) {
        c->continue_owed = 0;
        aw_response_continue(&c->out);
    }
}

/* write(): send what is queued now. On an app thread, a full queue also waits for the client
 * (the thread is the app's: back-pressure costs it time, not the server memory); on the loop's
 * thread nothing may wait, and the queue grows. Returns 0, or -1 when the client is gone. */
int aw_conn_send(aw_conn_t *c)
{
    int r = flush(c);
    while (r == 1 && c->worker && aw_out_full(&c->out)) {
        r = aw_worker_wait_writable(c->worker, c->io.fd, (int)c->srv->t_io.duration_ms);
        r = r > 0 ? flush(c) : -1; /* a client that takes nothing for that long is gone */
    }
    return r < 0 ? -1 : 0;
}

/* What response.c needs to know of the request and the server. */
void aw_conn_resp_ctx(aw_conn_t *c, aw_resp_ctx_t *ctx)
{
    const aw_request_t *req = aw_parser_request(&c->parser);
    *ctx = (aw_resp_ctx_t){
        .is_head = req->method == HTTP_HEAD,
        .http_minor = req->http_minor,
        /* a body not read to its end leaves the connection unusable */
        .keep_alive = req->keep_alive && !req->upgrade && !aw_server_stopping(c->srv) &&
                      aw_body_complete(&c->body),
    };
    if (c->worker) /* on an app thread: its own Date (the server's is the loop's) */
        aw_worker_date(c->worker, &ctx->date, &ctx->date_len);
    else
        ctx->date = c->srv->date, ctx->date_len = c->srv->date_len;
}

/* While the app (or its iterable) runs: the heartbeat the master reads for --timeout. */
void aw_conn_heartbeat(aw_conn_t *c, int busy)
{
    aw_server_heartbeat(c->srv, c->worker ? c->worker->slot : 0, busy);
}

/* What environ.c needs; src->req is NULL while no head is complete. */
void aw_conn_environ_src(aw_conn_t *c, aw_environ_src_t *src)
{
    const aw_request_t *req = aw_parser_head_complete(&c->parser) ? aw_parser_request(&c->parser)
                                                                   : NULL;
    aw_server_t *s = c->srv;
    *src = (aw_environ_src_t){
        .st = s->st,
        .tpl = c->lst->environ_tpl,
        .trust = &s->trust,
        .unix_listener = c->lst->family == AF_UNIX,
        .peer = &c->peer,
        .req = req,
    };
}

/* ---- acting: the send queue -------------------------------------------------------------- */

/* Write what is queued. Returns aw_out_flush's result; a file response completely sent has its
 * wrapper closed (so the next pipelined request starts clean). */
static int flush(aw_conn_t *c)
{
    int r = aw_out_flush(&c->out, c->io.fd);
    if (r == 0)
        aw_wsgi_file_sent(c);
    return r;
}

static int enter_app(aw_conn_t *c, int resume);

static int do_flush(aw_conn_t *c)
{
    if (flush(c) < 0) {
        aw_conn_close(c);
        return AW_LEFT;
    }
    if (c->state == AW_CONN_WAIT_OUT && aw_out_drained(&c->out))
        return enter_app(c, 1);
    return 0;
}

/* ---- acting: requests -------------------------------------------------------------------- */

/* A request was answered (by the app or by the server): once per request, it is counted
 * (--metrics-bind) and logged (--access-log). */
static void log_request(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (s->metrics) {
        int head = aw_parser_head_complete(&c->parser);
        const aw_resp_t *r = &c->resp;
        aw_metrics_end(s->metrics, c->metered, head ? aw_parser_request(&c->parser)->method : -1,
                       aw_response_status(r), aw_response_body_bytes(r),
                       c->t_start ? aw_log_clock() - c->t_start : 0.0);
        c->metered = 0;
    }
    if (!aw_log_wants_access(&s->log))
        return;
    aw_environ_src_t src;
    aw_conn_environ_src(c, &src);
    aw_wsgi_access_log(c, &src, c->t_start);
}

/* Queue a 4xx/5xx of our own; the connection closes once it is out, after lingering so that
 * the client reads it rather than a reset. */
static int answer_error(aw_conn_t *c, int status)
{
    aw_log_pending_error(&c->srv->log, "internal error while handling a request");
    if (!aw_response_headers_sent(&c->resp)) {
        aw_resp_ctx_t ctx;
        aw_conn_resp_ctx(c, &ctx);
        aw_response_error(&c->resp, &c->out, status, &ctx);
        log_request(c);
    }
    set_state(c, AW_CONN_LINGER_AFTER);
    return 0;
}

/* The app's turn: its first call, or a suspended response resumed. With --threads 1 it runs
 * here, from run(); with a pool the connection becomes a job (resumed ones first), or waits in
 * READY when --max-queue requests already wait for a thread. */
static int enter_app(aw_conn_t *c, int resume)
{
    aw_server_t *s = c->srv;
    if (!s->threads) {
        set_state(c, AW_CONN_APP);
        return 0;
    }
    if (!resume && aw_threads_backlog(s->threads) >= s->opt.max_queue) {
        set_state(c, AW_CONN_READY);
        aw_server_wait(&s->ready, c);
        return 0;
    }
    if (aw_out_prepare(&c->out) < 0) { /* the buffer pool is the loop's alone */
        aw_log_message(&s->log, AW_LOG_ERROR, "out of memory for a response");
        aw_conn_close(c);
        return AW_LEFT;
    }
    set_state(c, AW_CONN_APP);
    aw_threads_submit(s->threads, &c->job, resume);
    return AW_LEFT;
}

/* A streamed body's bytes, end or error reached an app waiting on the sentinel. */
static int wake_app(aw_conn_t *c)
{
    if (c->state == AW_CONN_WAIT_IN && aw_body_ready(&c->body))
        return enter_app(c, 1);
    return 0;
}

static int request_done(aw_conn_t *c);

/* An answer the server gave itself, without the app: it is counted and logged, then the
 * request ends as any other. */
static void answered_here(aw_conn_t *c)
{
    aw_server_request_done(c->srv);
    log_request(c);
    request_done(c);
}

/* --health-path is answered here, on the loop's thread and without Python (but for the access
 * log): 200 while the server serves, 503 once it is stopping (unless only this worker is
 * retired while others serve). Returns 1 when it was that. */
static int answer_health(aw_conn_t *c, const aw_request_t *req)
{
    aw_server_t *s = c->srv;
    aw_resp_ctx_t ctx;
    if (!s->health_path ||
        !aw_path_is(req->head + req->path.off, req->path.len, s->health_path, s->health_len))
        return 0;
    if (!req->has_body)
        aw_body_end(&c->body); /* nothing to read: the connection may carry another request */
    aw_conn_resp_ctx(c, &ctx);
    if (aw_response_health(&c->resp, &c->out, req->method, aw_server_health_failing(s),
                           &ctx) < 0) {
        aw_log_message(&s->log, AW_LOG_ERROR, "out of memory for a health check");
        answer_error(c, 500);
        return 1;
    }
    answered_here(c);
    return 1;
}

/* A request under a --static prefix is answered here, on the loop's thread, from a file and
 * without Python (but for the access log), and then ends as any other. Returns 1 when it was
 * one. */
static int answer_static(aw_conn_t *c, const aw_request_t *req)
{
    aw_static_route_t route;
    aw_resp_ctx_t ctx;
    if (!aw_static_route(c->srv->statics, req, &route))
        return 0;
    if (!req->has_body)
        aw_body_end(&c->body); /* nothing to read: the connection may carry another request */
    aw_conn_resp_ctx(c, &ctx);
    int r = aw_response_static(&c->resp, &c->out, &c->srv->log, &route, &ctx,
                               c->srv->loop.now_ms);
    if (r < 0) {
        aw_log_message(&c->srv->log, AW_LOG_ERROR, "out of memory for a static file");
        answer_error(c, 500);
        return 1;
    }
    answered_here(c);
    return 1;
}

/* The head is complete and valid: a static file, or the app, called now (streaming input) or
 * once the body is in; the environ is built then. */
static int on_head(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    const aw_request_t *req = aw_parser_request(&c->parser);
    c->t_start = aw_log_wants_access(&s->log) || s->metrics ? aw_log_clock() : 0;
    if (s->metrics) {
        aw_metrics_begin(s->metrics);
        c->metered = 1;
    }
    if (answer_health(c, req) || answer_static(c, req))
        return 0;
    c->continue_owed = req->expect_continue;
    int r = aw_body_begin(&c->body, req, s->stream_input);
    if (r < 0) {
        aw_log_message(&s->log, AW_LOG_ERROR, "cannot store a request body: %s", strerror(-r));
        return answer_error(c, 500);
    }
    c->head_start = c->rpos; /* the parser copied the head: its bytes can go */
    if (s->stream_input)
        return enter_app(c, 0); /* 100 Continue waits for the app's first read */
    if (c->continue_owed) {
        c->continue_owed = 0;
        aw_response_continue(&c->out);
    }
    set_state(c, AW_CONN_BODY);
    return 0;
}

/* The request is complete. Buffered: the app is called. Streamed: the app learns that its
 * body ended; or, if its response was already done, there is nothing to do. */
static int on_end(aw_conn_t *c)
{
    /* a request answered at its head (a static file, the health check) ends after its answer:
     * the body state is already the next request's, which must not look read */
    if (c->state == AW_CONN_HEAD || c->state == AW_CONN_IDLE)
        return 0;
    aw_body_end(&c->body);
    return c->state == AW_CONN_BODY ? enter_app(c, 0) : wake_app(c);
}

static int on_parse_error(aw_conn_t *c, int status)
{
    if (c->state != AW_CONN_WAIT_IN && c->state != AW_CONN_WAIT_OUT)
        return answer_error(c, status);
    /* streaming: the app learns it through its input (RequestTooLarge, ClientDisconnected);
     * what follows the bad framing is not trusted as HTTP */
    aw_body_fail(&c->body, status == 413 ? AW_BODY_TOO_LARGE : AW_BODY_MALFORMED);
    c->rpos = c->rlen;
    return wake_app(c);
}

static int do_parse(aw_conn_t *c)
{
    const char *buf = c->rbuf ? c->rbuf : "";
    size_t used;
    aw_parse_t r = aw_parser_feed(&c->parser, buf + c->head_start, buf + c->rpos,
                                  c->rlen - c->rpos, &used);
    c->rpos += used;
    switch (r) {
    case AW_PARSE_MORE:
        return wake_app(c);
    case AW_PARSE_HEAD:
        return on_head(c);
    case AW_PARSE_END:
        return on_end(c);
    case AW_PARSE_ERROR:
        return on_parse_error(c, aw_parser_error(&c->parser));
    }
    return 0;
}

/* Whether the connection can carry the next request. */
static int keep_alive(aw_conn_t *c)
{
    const aw_request_t *req = aw_parser_request(&c->parser);
    return req->keep_alive && !req->upgrade && !aw_response_must_close(&c->resp) &&
           !aw_server_stopping(c->srv) && !c->read_eof && aw_body_complete(&c->body);
}

/* The response is complete (queued), and its Python side done in the app's turn: decide what
 * comes next. */
static int request_done(aw_conn_t *c)
{
    int keep = keep_alive(c), input_read = aw_body_complete(&c->body);
    aw_body_reset(&c->body);
    aw_response_init(&c->resp);
    c->continue_owed = 0;
    c->t_start = 0;
    c->head_start = c->rpos;
    if (!keep)
        set_state(c, input_read ? AW_CONN_CLOSE_AFTER : AW_CONN_LINGER_AFTER);
    else
        set_state(c, c->rpos < c->rlen ? AW_CONN_HEAD : AW_CONN_IDLE);
    return 0;
}

/* The app's turn, where the app runs (the GIL held): pull the response until it is done or
 * must wait for the loop. An iterator's item is sent before the next is pulled (PEP 3333: the
 * app may take its time making the next): a pool's thread writes it at once (it owns the
 * connection), unless it completes the body its Content-Length announced (the next pull can
 * only end the iterator, and the answer then goes out with the pool's others); the loop's
 * thread leaves it for the turn's writes (AW_PUMP_FLUSH), so that the answers of one turn reach
 * their clients together, not one wake-up of the client each. A finished or cut request's
 * Python side is done here: close() of the iterable, the access log, the references. */
static aw_pump_t app_turn(aw_conn_t *c)
{
    aw_pump_t o;
    while ((o = aw_wsgi_pump(c)) == AW_PUMP_FLUSH) {
        if (!c->worker)
            return o; /* the loop sends it with the turn's writes, then pulls again */
        if (aw_response_body_complete(&c->resp))
            continue; /* (frameworks' responses: one item from an iterator, Content-Length) */
        if (flush(c) < 0) {
            o = AW_PUMP_ABORT;
            break;
        }
    }
    if (o == AW_PUMP_DONE)
        aw_server_request_done(c->srv); /* before the client can hear back: --max-requests */
    if (o == AW_PUMP_DONE || o == AW_PUMP_ABORT) {
        aw_wsgi_finish(c);
        int failed = aw_server_failed(c->srv);
        if (!failed)
            log_request(c);
        aw_wsgi_reset(c); /* (a spooled body's file is closed before the client hears back) */
        /* a cut response: what is queued (earlier answers, part of this one) goes out if it
         * can; a finished one goes with the turn's (or the thread's) other answers */
        if (!failed && o == AW_PUMP_ABORT)
            flush(c);
    }
    if (c->worker && o == AW_PUMP_ABORT)
        drop_python(c); /* the loop, without the GIL, closes it: nothing of Python is left */
    return o;
}

/* Act on how the app's turn ended (here, or on an app thread that handed the connection back). */
static int after_app(aw_conn_t *c, aw_pump_t o)
{
    switch (o) {
    case AW_PUMP_DONE:
        return request_done(c);
    case AW_PUMP_WAIT_OUT:
        set_state(c, AW_CONN_WAIT_OUT);
        return 0;
    case AW_PUMP_WAIT_IN:
        set_state(c, AW_CONN_WAIT_IN);
        return 0;
    case AW_PUMP_FLUSH: /* the loop's: an item out with the turn's writes, then on */
        set_state(c, AW_CONN_APP_FLUSH);
        return 0;
    case AW_PUMP_ABORT:
        break;
    }
    aw_conn_close(c);
    return AW_LEFT;
}

static int do_pump(aw_conn_t *c)
{
    return after_app(c, app_turn(c));
}

/* ---- the thread pool's side -------------------------------------------------------------- */

/* A job, on an app thread with the GIL (threads.c's callback): the app's turn, or the Python
 * side of a connection the loop closed. */
void aw_conn_run_job(void *server, aw_job_t *job, aw_worker_t *w)
{
    aw_server_t *s = server;
    aw_conn_t *c = aw_container_of(job, aw_conn_t, job);
    if (c->state == AW_CONN_CLOSED) { /* aw_conn_reap's */
        drop_python(c);
        free_conn(c);
        return;
    }
    c->worker = w;
    c->outcome = app_turn(c);
    c->worker = NULL;
    if (c->outcome == AW_PUMP_DONE && aw_out_pending(&c->out))
        aw_worker_hold(w, job); /* its answer goes out with the pool's next ones */
    else
        aw_conn_finish_job(s, job, w);
}

/* A job's answer goes out (if it was held), and the connection back to the loop; one that
 * cannot carry another request first drops its Python side, for the loop, without the GIL,
 * closes it (threads.c's callback). */
void aw_conn_finish_job(void *server, aw_job_t *job, aw_worker_t *w)
{
    aw_server_t *s = server;
    aw_conn_t *c = aw_container_of(job, aw_conn_t, job);
    c->worker = w;
    if (c->outcome == AW_PUMP_DONE) {
        flush(c); /* a failure shows in the send queue: the loop closes the connection */
        if (!keep_alive(c) && !aw_out_pending(&c->out)) /* (a file still going out keeps its */
            drop_python(c);                             /* wrapper until it is sent) */
    }
    c->worker = NULL;
    aw_threads_complete(s->threads, job);
}

/* Back on the loop from an app thread. */
void aw_conn_job_done(aw_job_t *job)
{
    aw_conn_t *c = aw_container_of(job, aw_conn_t, job);
    if (after_app(c, c->outcome) != AW_LEFT)
        run(c);
}

/* Room in the pool for a READY connection's request. */
void aw_conn_room(aw_conn_t *c)
{
    if (enter_app(c, 0) != AW_LEFT)
        run(c);
}

/* ---- acting: waiting and closing --------------------------------------------------------- */

/* RFC 9112 9.6: half-close, then drain what the client still sends, so that the answer is not
 * destroyed by a reset. */
static int start_linger(aw_conn_t *c)
{
    shutdown(c->io.fd, SHUT_WR);
    set_state(c, AW_CONN_LINGER);
    return 0;
}

/* The output goes out with the turn's writes (aw_conn_write_all), just before the loop waits. */
static void defer_write(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    c->dirty = 1;
    c->dirty_next = NULL;
    if (s->dirty_tail)
        s->dirty_tail->dirty_next = c;
    else
        s->dirty_head = c, s->dirty_since_ns = aw_threads_now_ns();
    s->dirty_tail = c;
}

/* The turn's writes, one after the other (a client woken once gets them all), then what each
 * connection does next: an iterator is pulled again, an idle connection rests. Before the wait,
 * or in the middle of a long turn (server.c bounds the delay). */
void aw_conn_write_all(aw_server_t *s)
{
    while (s->dirty_head) {
        aw_conn_t *c = s->dirty_head;
        s->dirty_head = c->dirty_next;
        if (!s->dirty_head)
            s->dirty_tail = NULL;
        c->dirty = 0;
        if (c->state == AW_CONN_CLOSED || do_flush(c) == AW_LEFT)
            continue;
        if (c->state == AW_CONN_APP_FLUSH)
            set_state(c, AW_CONN_APP);
        run(c);
    }
}

/* --max-queue requests wait for a thread: this connection reads no new request until there
 * is room (its timer runs on: an idle one may still be closed). One whose client hung up is
 * not watched at all meanwhile, or epoll would report it again and again. */
static int pause_reading(aw_conn_t *c)
{
    c->paused = 1;
    aw_server_wait(&c->srv->paused, c);
    if (c->read_eof)
        aw_loop_unwatch(&c->srv->loop, &c->io);
    return 0;
}

void aw_conn_unpause(aw_conn_t *c)
{
    c->paused = 0;
    run(c);
}

/* Nothing in flight: give the buffers back, so that an idle keep-alive connection costs only
 * its struct (SPEC: 10,000 idle clients stay cheap), and start the keep-alive timer. */
static void go_idle(aw_conn_t *c)
{
    aw_server_t *s = c->srv;
    if (c->timer.list == &s->t_keepalive)
        return;
    if (c->rbuf && c->rpos == c->rlen) {
        aw_pool_put(&s->pool, c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = c->rlen = c->rpos = c->head_start = 0;
    }
    aw_out_trim(&c->out);
    aw_parser_trim(&c->parser);
    aw_timer_arm(&s->t_keepalive, &c->timer, s->loop.now_ms);
}

static void do_wait(aw_conn_t *c)
{
    if (c->dirty)
        return; /* after the turn's writes, run() comes back here with the real picture */
    if (c->state == AW_CONN_IDLE && !aw_out_pending(&c->out))
        go_idle(c);
    watch(c);
}

/* ---- deciding ---------------------------------------------------------------------------- */

/* The client sent its last byte and nothing it sent is left to answer. */
static aw_step_t after_eof(aw_conn_t *c)
{
    if (aw_out_pending(&c->out) && !aw_out_failed(&c->out))
        return aw_out_blocked(&c->out) ? STEP_WAIT : STEP_FLUSH;
    return STEP_CLOSE;
}

static aw_step_t next_step(aw_conn_t *c)
{
    const aw_out_t *out = &c->out;
    if (aw_server_failed(c->srv))
        return STEP_WAIT; /* run() is ending: everything is closed there */
    switch (c->state) {
    case AW_CONN_PROXY: /* its bytes are looked at as they arrive (on_readable) */
        return c->read_eof ? STEP_CLOSE : STEP_WAIT;
    case AW_CONN_IDLE:
    case AW_CONN_HEAD:
    case AW_CONN_BODY:
        if (aw_out_full(out)) /* pipelined answers piling up unread: send them first */
            return aw_out_blocked(out) ? STEP_WAIT : STEP_FLUSH;
        if (c->state != AW_CONN_BODY && !c->paused && aw_server_full(c->srv))
            return STEP_PAUSE;
        if (c->paused)
            break;
        if (unparsed(c))
            return STEP_PARSE;
        if (c->read_eof)
            return after_eof(c);
        break;
    case AW_CONN_APP:
        return STEP_PUMP;
    case AW_CONN_APP_FLUSH:
        return c->dirty ? STEP_WAIT : STEP_DEFER;
    case AW_CONN_READY:
    case AW_CONN_CLOSED:
        break;
    case AW_CONN_WAIT_OUT:
    case AW_CONN_WAIT_IN:
        if (stream_readable(c) && unparsed(c))
            return STEP_PARSE;
        break;
    case AW_CONN_CLOSE_AFTER:
    case AW_CONN_LINGER_AFTER:
        if (aw_out_pending(out))
            break;
        return c->state == AW_CONN_CLOSE_AFTER || c->read_eof ? STEP_CLOSE : STEP_LINGER;
    case AW_CONN_LINGER:
        return STEP_WAIT;
    }
    /* before waiting, what this event produced goes out in one write: with the turn's other
     * writes when the loop runs the app, at once from a pool's loop (it rarely writes) */
    if (aw_out_pending(out) && !aw_out_blocked(out) && !c->dirty)
        return c->srv->threads ? STEP_FLUSH : STEP_DEFER;
    return STEP_WAIT;
}

/* Act on next_step() until the connection waits or is gone. */
static void run(aw_conn_t *c)
{
    for (;;) {
        int r = 0;
        switch (next_step(c)) {
        case STEP_PARSE:
            r = do_parse(c);
            break;
        case STEP_PUMP:
            r = do_pump(c);
            break;
        case STEP_FLUSH:
            r = do_flush(c);
            break;
        case STEP_DEFER:
            defer_write(c);
            break;
        case STEP_LINGER:
            r = start_linger(c);
            break;
        case STEP_PAUSE:
            r = pause_reading(c);
            break;
        case STEP_CLOSE:
            aw_conn_close(c);
            return;
        case STEP_WAIT:
            do_wait(c);
            return;
        }
        if (r == AW_LEFT)
            return;
    }
}

/* ---- events ------------------------------------------------------------------------------ */

/* Room at the end of the read buffer. While a head is being read its bytes are kept (the
 * parser's spans point into them); otherwise everything already parsed is dead. */
static int make_room(aw_conn_t *c)
{
    if (!c->rbuf) {
        if (!(c->rbuf = aw_pool_get(&c->srv->pool)))
            return -ENOMEM;
        c->rcap = AW_BUF_SIZE;
        c->rlen = c->rpos = c->head_start = 0;
    }
    if (c->rlen < c->rcap)
        return 0;
    size_t dead = c->state == AW_CONN_HEAD ? c->head_start : c->rpos;
    if (dead > 0) { /* spans are relative to head_start: shifting keeps them valid */
        memmove(c->rbuf, c->rbuf + dead, c->rlen - dead);
        c->rlen -= dead;
        c->rpos -= dead;
        c->head_start = c->head_start > dead ? c->head_start - dead : 0;
        return 0;
    }
    size_t cap = c->rcap * 2, most = (size_t)c->srv->opt.max_header_size + AW_BUF_SIZE;
    cap = cap > most ? most : cap;
    if (cap <= c->rcap)
        return -ENOBUFS; /* cannot happen: the parser answers 431 first */
    char *nb = realloc(c->rbuf, cap);
    if (!nb)
        return -ENOMEM;
    c->rbuf = nb;
    c->rcap = cap;
    return 0;
}

/* The client will send nothing more (reset: it is gone altogether). */
static int on_eof(aw_conn_t *c, int reset)
{
    c->read_eof = 1;
    switch (c->state) {
    case AW_CONN_WAIT_IN:
    case AW_CONN_WAIT_OUT:
    case AW_CONN_APP_FLUSH:
        if (aw_body_streaming(&c->body) && !aw_body_complete(&c->body)) {
            aw_body_fail(&c->body, AW_BODY_GONE); /* ClientDisconnected for the app */
            return wake_app(c);
        }
        return reset ? (aw_conn_close(c), AW_LEFT) : 0; /* finish this answer, then close */
    case AW_CONN_IDLE:
    case AW_CONN_HEAD:
        return reset ? (aw_conn_close(c), AW_LEFT) : 0; /* answer what was sent, then close */
    case AW_CONN_CLOSE_AFTER:
    case AW_CONN_LINGER_AFTER:
        if (!reset && aw_out_pending(&c->out))
            return 0;
        break;
    case AW_CONN_READY: /* half-closed: answer it, then close */
        return reset ? (aw_conn_close(c), AW_LEFT) : 0;
    case AW_CONN_PROXY:
        if (c->rlen > 0) /* (a port probe that sends nothing is not worth a line) */
            aw_log_peer_warning(&c->srv->log, c->srv->loop.now_ms, "connection from %s closed "
                                "inside its PROXY header", aw_peer_ip(&c->peer));
        break;
    case AW_CONN_BODY: /* the client stopped mid-request */
    case AW_CONN_APP:
    case AW_CONN_LINGER:
    case AW_CONN_CLOSED:
        break;
    }
    aw_conn_close(c);
    return AW_LEFT;
}

static int drain_linger(aw_conn_t *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = read(c->io.fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        aw_conn_close(c);
        return AW_LEFT;
    }
}

/* The PROXY header, looked at again whenever more of it arrives: once complete, the peer is
 * the client it names and what follows it is HTTP; a malformed or missing one (a request
 * straight away) closes the connection. Returns AW_LEFT then. */
static int take_proxy(aw_conn_t *c)
{
    aw_proxy_info_t info;
    long r = aw_proxy_parse(c->lst->proxy, (const unsigned char *)c->rbuf, c->rlen, &info);
    if (r == 0)
        return 0;
    if (r < 0) {
        aw_log_peer_warning(&c->srv->log, c->srv->loop.now_ms, "connection from %s closed: %s",
                            aw_peer_ip(&c->peer), aw_proxy_strerror(r));
        aw_conn_close(c);
        return AW_LEFT;
    }
    aw_peer_proxied(&c->peer, &info);
    c->rpos = c->head_start = (size_t)r; /* pipelined bytes after it are the first request's */
    set_state(c, AW_CONN_HEAD);
    return 0;
}

static int on_readable(aw_conn_t *c)
{
    if (c->state == AW_CONN_LINGER)
        return drain_linger(c);
    if (make_room(c) < 0) {
        aw_conn_close(c);
        return AW_LEFT;
    }
    ssize_t n = read(c->io.fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return on_eof(c, n < 0); /* an error (ECONNRESET and friends): the client is gone */
    c->rlen += (size_t)n;
    if (c->state == AW_CONN_PROXY)
        return take_proxy(c);
    if (c->state == AW_CONN_IDLE)
        set_state(c, AW_CONN_HEAD); /* a new request begins */
    else if (c->state != AW_CONN_HEAD)
        progress(c); /* on a body */
    return 0;
}

static void on_event(aw_io_t *io, uint32_t events)
{
    aw_conn_t *c = aw_container_of(io, aw_conn_t, io);
    if (c->state == AW_CONN_CLOSED)
        return; /* closed earlier in this turn; its memory goes at the turn's end */
    if (c->state == AW_CONN_APP && c->srv->threads) {
        aw_server_take_back(c->srv); /* it may be done already: the client's next request */
        if (c->state == AW_CONN_CLOSED)
            return;
    }
    if (c->state == AW_CONN_APP && c->srv->threads) {
        /* an app thread owns it: quiet until it is handed back (watch() then registers it) */
        aw_loop_unwatch(&c->srv->loop, &c->io);
        return;
    }
    if (events & EPOLLERR) {
        aw_conn_close(c);
        return;
    }
    if (events & EPOLLOUT) {
        aw_out_writable(&c->out);
        progress(c); /* on a response */
    }
    if ((events & (EPOLLIN | EPOLLHUP)) && on_readable(c) == AW_LEFT)
        return;
    run(c);
}
