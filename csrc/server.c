/* server.c: the Server type.
 *
 * Owns: the server's life (init, run, stop, dealloc), its listening sockets (our dup()s),
 * accepting until EAGAIN, the timer lists' expiry, the Date line, the graceful drain, the
 * heartbeat the master reads for --timeout (and the block it reads for --metrics-bind), and the
 * GIL's release around the wait for events.
 * Must not parse HTTP, call the app, or touch a connection's insides: conn.c does.
 */
#include "server.h"
#include "conn.h"
#include "environ.h"
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define AW_MAX_EVENTS 256
#define AW_ACCEPT_BATCH 64
#define AW_LINGER_MS 2000      /* time to drain a client after an error answer */
#define AW_IO_TIMEOUT_MS 60000 /* no progress on a body read or a response write: close */
#define AW_ACCEPT_PAUSE_MS 100 /* out of descriptors: accept again after this */
#define AW_WRITE_DELAY_NS 1000000 /* the answers of a turn wait at most this for its writes */

/* ---- what connections report ------------------------------------------------------------- */

/* The counters are the loop's; Python reads them from any thread (atomic). */
void aw_server_conn_opened(aw_server_t *s)
{
    __atomic_fetch_add(&s->nconns, 1, __ATOMIC_RELAXED);
    aw_metrics_connections(s->metrics, 1);
}

void aw_server_conn_closed(aw_server_t *s)
{
    __atomic_fetch_sub(&s->nconns, 1, __ATOMIC_RELAXED);
    aw_metrics_connections(s->metrics, -1);
}

/* A response is complete; called where the app ran, before the client can hear back, so that
 * after --max-requests the loop stops accepting before the client's next connection. */
void aw_server_request_done(aw_server_t *s)
{
    unsigned long long n = __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
    if (!s->opt.max_requests || n != (unsigned long long)s->opt.max_requests)
        return;
    /* taken by the loop (at its next turn, or right after its wait): it may be busy */
    aw_stop_t none = AW_STOP_NONE;
    __atomic_compare_exchange_n(&s->stop_req, &none, AW_STOP_GRACEFUL, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    if (s->threads)
        aw_loop_wake(&s->loop);
}

/* While an app call runs, the CLOCK_MONOTONIC time (ns) it began, in the caller's slot (0: the
 * loop's thread, 1..N: the pool's threads); 0 when none runs. The master reads every slot. */
void aw_server_heartbeat(aw_server_t *s, int slot, int busy)
{
    if (!s->has_heartbeat)
        return;
    uint64_t v = 0;
    if (busy) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    __atomic_store_n((uint64_t *)s->heartbeat.buf + slot, v, __ATOMIC_RELAXED);
}

/* The app raised a BaseException that is not an Exception (KeyboardInterrupt, SystemExit):
 * the server stops and run() raises it. With the GIL. */
void aw_server_set_fatal(aw_server_t *s)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb)
        PyException_SetTraceback(v, tb);
    Py_XSETREF(s->fatal, v);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    __atomic_store_n(&s->failed, 1, __ATOMIC_RELEASE);
}

int aw_server_failed(const aw_server_t *s)
{
    return __atomic_load_n(&s->failed, __ATOMIC_ACQUIRE);
}

/* A graceful stop has begun: responses say Connection: close. */
int aw_server_stopping(const aw_server_t *s)
{
    return __atomic_load_n(&s->stopping, __ATOMIC_RELAXED);
}

/* Drop obj now if this thread holds the GIL, else on a thread of the pool. */
void aw_server_defer(aw_server_t *s, PyObject *obj, aw_defer_t action)
{
    if (!aw_threads_gil_held()) {
        aw_threads_defer(s->threads, obj, action);
        return;
    }
    if (action == AW_DEFER_CLOSE) {
        PyObject *r = PyObject_CallMethodNoArgs(obj, s->st->s_close);
        if (!r)
            aw_log_exception(&s->log, "exception in the response iterable's close()");
        Py_XDECREF(r);
    }
    Py_DECREF(obj);
}

/* A Python object the send queue held (output.c's release callback). */
void aw_server_release(void *server, void *ref)
{
    aw_server_defer(server, ref, AW_DEFER_DECREF);
}

/* A connection waits, in order, for room in the pool (READY: its request; paused: its next). */
void aw_server_wait(aw_conn_list_t *list, aw_conn_t *c)
{
    c->wait_prev = list->tail;
    c->wait_next = NULL;
    if (list->tail)
        list->tail->wait_next = c;
    else
        list->head = c;
    list->tail = c;
    list->n++;
}

void aw_server_unwait(aw_conn_list_t *list, aw_conn_t *c)
{
    if (c->wait_prev)
        c->wait_prev->wait_next = c->wait_next;
    else
        list->head = c->wait_next;
    if (c->wait_next)
        c->wait_next->wait_prev = c->wait_prev;
    else
        list->tail = c->wait_prev;
    c->wait_prev = c->wait_next = NULL;
    list->n--;
}

/* --max-queue requests wait for a thread (queued, or READY): no new request is read (SPEC 8). */
int aw_server_full(aw_server_t *s)
{
    return s->threads && aw_threads_backlog(s->threads) + s->ready.n >= s->opt.max_queue;
}

/* Room in the pool: READY requests go first, oldest first; then, while room remains, the
 * paused connections read again. */
static void admit_waiting(aw_server_t *s)
{
    while (s->ready.head && aw_threads_backlog(s->threads) < s->opt.max_queue) {
        aw_conn_t *c = s->ready.head;
        aw_server_unwait(&s->ready, c);
        aw_conn_room(c);
    }
    while (s->paused.head && !aw_server_full(s)) {
        aw_conn_t *c = s->paused.head;
        aw_server_unwait(&s->paused, c);
        aw_conn_unpause(c);
    }
}

/* ---- accepting --------------------------------------------------------------------------- */

static void listeners_watch(aw_server_t *s, int on)
{
    for (int i = 0; i < s->nlisteners; i++) {
        aw_listener_t *l = &s->listeners[i];
        if (l->io.fd < 0)
            continue;
        /* Not EPOLLEXCLUSIVE: it wakes one loop per connection, and a loop that stops
         * accepting right then would swallow the wake-up while its siblings sleep on a queued
         * connection. Every worker hears of it; one accept4 wins, the rest see EAGAIN; cheap at
         * worker counts of a few per core. */
        int r = on ? aw_loop_watch(&s->loop, &l->io, EPOLLIN) : aw_loop_unwatch(&s->loop, &l->io);
        if (r < 0 && on)
            aw_log_message(&s->log, AW_LOG_ERROR, "cannot watch listening socket %d: %s",
                           l->io.fd, strerror(-r));
    }
    s->accepting = on;
}

static void listeners_close(aw_server_t *s)
{
    listeners_watch(s, 0);
    for (int i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].io.fd >= 0) {
            close(s->listeners[i].io.fd);
            s->listeners[i].io.fd = -1;
        }
    }
}

/* One accepted socket becomes a connection. */
static void admit(aw_server_t *s, aw_listener_t *l, int fd, struct sockaddr_storage *ss,
                  socklen_t len)
{
    if (len == 0 || ss->ss_family == AF_UNIX) {
        ss->ss_family = AF_UNIX;
    } else {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (!aw_conn_new(s, l, fd, (struct sockaddr *)ss)) {
        aw_log_message(&s->log, AW_LOG_ERROR, "cannot set up a new connection: %s",
                       strerror(errno));
        close(fd);
    }
}

static void on_accept(aw_io_t *io, uint32_t events)
{
    (void)events;
    aw_listener_t *l = aw_container_of(io, aw_listener_t, io);
    aw_server_t *s = l->srv;
    for (int i = 0; i < AW_ACCEPT_BATCH && s->accepting; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->io.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(s, l, fd, &ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* out of descriptors: pause accepting for a moment rather than spin */
            aw_log_message(&s->log, AW_LOG_ERROR, "accept: %s; pausing accept for %d ms",
                           strerror(errno), AW_ACCEPT_PAUSE_MS);
            listeners_watch(s, 0);
            s->accept_resume_ms = s->loop.now_ms + AW_ACCEPT_PAUSE_MS;
        }
        return; /* EAGAIN: drained; anything else: try again on the next event */
    }
}

/* ---- timers and stopping ----------------------------------------------------------------- */

#define N_TLISTS 4

static void tlists(aw_server_t *s, aw_tlist_t *out[N_TLISTS])
{
    out[0] = &s->t_keepalive;
    out[1] = &s->t_header;
    out[2] = &s->t_io;
    out[3] = &s->t_linger;
}

static void expire_timers(aw_server_t *s)
{
    aw_tlist_t *lists[N_TLISTS];
    tlists(s, lists);
    for (int i = 0; i < N_TLISTS; i++) {
        aw_timer_t *t;
        /* aw_conn_expire closes the connection, taking it off the list */
        while ((t = aw_tlist_due(lists[i], s->loop.now_ms)))
            aw_conn_expire(aw_container_of(t, aw_conn_t, timer));
    }
}

/* How long the loop may sleep: until the first deadline, at most a second (the Date header and
 * Python's signal handlers stay fresh). */
static int next_timeout_ms(aw_server_t *s)
{
    aw_tlist_t *lists[N_TLISTS];
    tlists(s, lists);
    long long first = -1;
    for (int i = 0; i < N_TLISTS; i++) {
        long long d = aw_tlist_next_deadline(lists[i]);
        if (d >= 0 && (first < 0 || d < first))
            first = d;
    }
    if (s->stopping && (first < 0 || s->stop_deadline_ms < first))
        first = s->stop_deadline_ms;
    if (!s->accepting && !s->stopping && (first < 0 || s->accept_resume_ms < first))
        first = s->accept_resume_ms;
    if (first < 0)
        return 1000;
    long long wait = first - s->loop.now_ms + 1; /* +1: coarse clock, never wake a little early */
    return wait < 0 ? 0 : (wait > 1000 ? 1000 : (int)wait);
}

/* Close every connection, or only the idle ones: every open connection is on one timer list
 * (conn.c), so the lists find them all. The busy ones close after their current response. */
static void close_connections(aw_server_t *s, int only_idle)
{
    aw_tlist_t *lists[N_TLISTS];
    tlists(s, lists);
    for (int i = 0; i < N_TLISTS; i++) {
        aw_timer_t *t = lists[i]->head;
        while (t) {
            aw_timer_t *next = t->next;
            aw_conn_t *c = aw_container_of(t, aw_conn_t, timer);
            if (!only_idle || aw_conn_is_idle(c))
                aw_conn_close(c);
            t = next;
        }
    }
    while (!only_idle && s->ready.head)
        aw_conn_close(s->ready.head); /* READY: on no timer list */
}

static void begin_stop(aw_server_t *s, aw_stop_t how, double timeout)
{
    listeners_close(s);
    if (how == AW_STOP_NOW) {
        __atomic_store_n(&s->stopping, 1, __ATOMIC_RELAXED);
        s->stop_deadline_ms = s->loop.now_ms;
        return;
    }
    if (!s->stopping) {
        __atomic_store_n(&s->stopping, 1, __ATOMIC_RELAXED);
        s->stop_deadline_ms = s->loop.now_ms + (long long)(timeout * 1000);
    }
    close_connections(s, 1);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void refresh_date(aw_server_t *s)
{
    if (s->loop.now_sec != s->date_sec) {
        s->date_sec = s->loop.now_sec;
        s->date_len = aw_format_date(s->date_sec, s->date);
    }
}

/* Wait for events. Alone, the loop holds the GIL and releases it for the wait; with a pool it
 * has none. Returns the number of events, or -1 (epoll failed). The wake-up pipe is Python's
 * signal wake-up fd: a signal that lands between the check of signals and the wait still ends
 * the wait. */
static int wait_events(aw_server_t *s, struct epoll_event *events, long long timeout_ns)
{
    int n;
    if (!s->threads) {
        Py_BEGIN_ALLOW_THREADS
        n = aw_loop_poll(&s->loop, events, AW_MAX_EVENTS, timeout_ns);
        Py_END_ALLOW_THREADS
        if (n >= 0 || n == -EINTR)
            s->loop.signalled = 1; /* alone, the loop checks after every wait: it is cheap */
    } else {
        n = aw_loop_poll(&s->loop, events, AW_MAX_EVENTS, timeout_ns);
        s->loop.signalled |= n == -EINTR;
    }
    if (n == -EINTR)
        n = 0;
    if (n < 0)
        s->loop_errno = -n;
    return n;
}

/* Run Python's signal handlers if a signal came (the wake-up pipe's reader noted its byte).
 * Returns -1 if one raised: the loop ends and run() raises it. */
static int check_signals(aw_server_t *s)
{
    if (!s->loop.signalled)
        return 0;
    s->loop.signalled = 0;
    PyGILState_STATE g = PyGILState_Ensure();
    if (PyErr_CheckSignals() < 0)
        aw_server_set_fatal(s);
    PyGILState_Release(g);
    return aw_server_failed(s) ? -1 : 0;
}

/* The connections the pool handed back, then the requests that waited for room. */
void aw_server_take_back(aw_server_t *s)
{
    aw_job_t *job = aw_threads_completed(s->threads), *next;
    for (; job; job = next) {
        next = job->next;
        aw_conn_job_done(job);
    }
    admit_waiting(s);
}

/* One turn: a stop request, the wait, the events, the jobs the pool handed back, the timers.
 * Returns 0 to go on, 1 when the loop is done. */
/* A stop asked for by stop() (any thread) or by --max-requests. */
static void take_stop_request(aw_server_t *s)
{
    aw_stop_t req = __atomic_exchange_n(&s->stop_req, AW_STOP_NONE, __ATOMIC_ACQ_REL);
    double timeout;
    __atomic_load(&s->stop_timeout, &timeout, __ATOMIC_RELAXED);
    if (req != AW_STOP_NONE)
        begin_stop(s, req, timeout);
}

static int turn(aw_server_t *s, struct epoll_event *events)
{
    take_stop_request(s);
    if (s->stopping && (s->nconns == 0 || s->loop.now_ms >= s->stop_deadline_ms))
        return 1;
    long long timeout = next_timeout_ms(s) * 1000000LL;
    long long tick = s->threads ? aw_threads_tick(s->threads) : -1;
    int n = wait_events(s, events, tick >= 0 && tick < timeout ? tick : timeout);
    if (n < 0)
        return 1;
    refresh_date(s);
    if (!s->threads && check_signals(s) < 0)
        return 1;
    take_stop_request(s); /* one that came during the wait: before accepting what came too */
    /* handed-back connections first: a client's next request may be among the events */
    if (s->threads)
        aw_server_take_back(s);
    for (int i = 0; i < n && !aw_server_failed(s); i++) {
        aw_io_t *io = events[i].data.ptr;
        io->on_event(io, events[i].events);
        /* a long turn (slow apps) writes what it has so far: the first answer waits little */
        if (s->dirty_head && aw_threads_now_ns() - s->dirty_since_ns > AW_WRITE_DELAY_NS)
            aw_conn_write_all(s);
    }
    aw_conn_write_all(s);
    if (s->threads && check_signals(s) < 0)
        return 1;
    if (s->threads)
        aw_server_take_back(s);
    if (!aw_server_failed(s)) {
        expire_timers(s);
        if (!s->accepting && !s->stopping && s->loop.now_ms >= s->accept_resume_ms)
            listeners_watch(s, 1);
    }
    aw_conn_reap(s);
    if (s->threads) /* the waiting requests, as this turn leaves them (--metrics-bind) */
        aw_metrics_queued(s->metrics, aw_threads_backlog(s->threads) + s->ready.n);
    return aw_server_failed(s) ? 1 : 0;
}

/* The loop with an app thread pool (the GIL held on entry and on return; released between). */
static void run_pool(aw_server_t *s, struct epoll_event *events)
{
    aw_threads_t *t = calloc(1, sizeof(*t));
    int r = t ? aw_threads_start(t, (int)s->opt.threads, aw_conn_run_job, aw_conn_finish_job, s,
                                 &s->loop)
              : -ENOMEM;
    if (r < 0) {
        s->loop_errno = -r;
        free(t); /* (threads that did start wait, unwoken: a failed start leaks them) */
        return;
    }
    s->threads = t;
    PyThreadState *ts = PyEval_SaveThread();
    while (turn(s, events) == 0) {
    }
    close_connections(s, 0); /* their Python side goes to the pool, which finishes its queue */
    aw_conn_reap(s);
    listeners_close(s);
    /* the graceful timeout's rest, and at least a second (idle threads only have to notice) */
    long long grace = s->stopping ? s->stop_deadline_ms - s->loop.now_ms : 0;
    int left = aw_threads_stop(t, aw_threads_now_ns() + (grace > 1000 ? grace : 1000) * 1000000LL);
    PyEval_RestoreThread(ts);
    aw_job_t *job = aw_threads_completed(t), *next;
    for (; job; job = next) { /* handed back after the loop ended */
        next = job->next;
        aw_conn_close(aw_container_of(job, aw_conn_t, job));
    }
    aw_conn_reap(s); /* with the GIL: freed here */
    if (left) { /* app calls past the graceful timeout: their threads keep the server */
        aw_log_message(&s->log, AW_LOG_WARNING,
                       "%d app thread(s) still running past the graceful timeout: abandoned",
                       left);
        Py_INCREF(s);
        return;
    }
    s->threads = NULL;
    aw_threads_free(t);
    free(t);
}

/* On the main thread, signals write their number to fd (signal.set_wakeup_fd), so that one
 * arriving while the loop is busy still ends its next wait: without it, a SIGTERM could wait
 * for the loop's next timeout. Returns the previous fd (restored when run() ends), or NULL off
 * the main thread, where Python's handlers do not run anyway. */
static PyObject *wakeup_fd(int fd)
{
    PyObject *signal = PyImport_ImportModule("signal");
    PyObject *set = signal ? PyObject_GetAttrString(signal, "set_wakeup_fd") : NULL;
    PyObject *args = Py_BuildValue("(i)", fd);
    PyObject *kwargs = Py_BuildValue("{s:O}", "warn_on_full_buffer", Py_False);
    PyObject *old = set && args && kwargs ? PyObject_Call(set, args, kwargs) : NULL;
    Py_XDECREF(signal);
    Py_XDECREF(set);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    if (!old)
        PyErr_Clear(); /* ValueError: not the main thread */
    return old;
}

static void restore_wakeup_fd(PyObject *old)
{
    if (!old)
        return;
    PyObject *exc_t, *exc, *tb, *signal;
    PyErr_Fetch(&exc_t, &exc, &tb); /* run() may be returning an exception */
    PyObject *r = (signal = PyImport_ImportModule("signal"))
                      ? PyObject_CallMethod(signal, "set_wakeup_fd", "O", old)
                      : NULL;
    Py_XDECREF(signal);
    Py_XDECREF(r);
    Py_DECREF(old);
    PyErr_Clear();
    PyErr_Restore(exc_t, exc, tb);
}

static PyObject *raise_fatal(aw_server_t *s)
{
    PyObject *exc = s->fatal;
    s->fatal = NULL;
    __atomic_store_n(&s->failed, 0, __ATOMIC_RELAXED);
    if (!PyErr_Occurred())
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *Server_run(aw_server_t *s, PyObject *Py_UNUSED(unused))
{
    struct epoll_event events[AW_MAX_EVENTS];
    if (s->running) {
        PyErr_SetString(PyExc_RuntimeError, "this server is already running");
        return NULL;
    }
    if (s->nlisteners > 0 && s->listeners[0].io.fd < 0)
        Py_RETURN_NONE; /* stop() came first (a race with a starting thread): nothing to do */
    s->running = 1;
    __atomic_store_n(&s->stopping, 0, __ATOMIC_RELAXED);
    aw_loop_refresh_clock(&s->loop);
    refresh_date(s);
    listeners_watch(s, 1);
    PyObject *old_wakeup = wakeup_fd(s->loop.wake_w);
    if (s->opt.threads > 1)
        run_pool(s, events);
    else
        while (turn(s, events) == 0) {
        }
    close_connections(s, 0);
    aw_conn_write_all(s);
    aw_conn_reap(s);
    listeners_close(s);
    s->running = 0;
    restore_wakeup_fd(old_wakeup);
    if (s->fatal)
        return raise_fatal(s);
    if (s->loop_errno) {
        errno = s->loop_errno;
        s->loop_errno = 0;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *Server_stop(aw_server_t *s, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"graceful", "timeout", NULL};
    int graceful = 1;
    double timeout = 30.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pd:stop", kwlist, &graceful, &timeout))
        return NULL;
    __atomic_store(&s->stop_timeout, &timeout, __ATOMIC_RELAXED);
    /* Stop accepting at once, even if the loop is busy in an app call, so that new connections
     * are refused rather than parked in the backlog. Safe from any thread: every accept and
     * epoll_ctl on a listener happens with the GIL held, as here, and a listener event still
     * queued in the loop's batch is ignored once accepting is off. The loop of a pool holds no
     * GIL and is never busy in an app call: it closes them itself, on its next turn. */
    if (s->loop.epfd >= 0 && s->opt.threads == 1)
        listeners_close(s);
    /* an immediate stop wins over a graceful one already asked for */
    aw_stop_t want = graceful ? AW_STOP_GRACEFUL : AW_STOP_NOW;
    aw_stop_t cur = __atomic_load_n(&s->stop_req, __ATOMIC_ACQUIRE);
    if (cur != AW_STOP_NOW || want == AW_STOP_NOW)
        __atomic_store_n(&s->stop_req, want, __ATOMIC_RELEASE);
    int r = s->loop.epfd >= 0 ? aw_loop_wake(&s->loop) : 0;
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* ---- construction ------------------------------------------------------------------------ */

static int parse_trusted(aw_server_t *s, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "forwarded_allow_ips must be a sequence of str");
    if (!fast)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        const char *ip = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (!ip || aw_trust_add(&s->trust, ip) < 0) {
            if (ip)
                PyErr_NoMemory();
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* One --static mount; a refusal is a ValueError naming it. */
static int add_mount(aw_server_t *s, PyObject *pair)
{
    PyObject *prefix, *dir = NULL;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyUnicode_Check(prefix = PyTuple_GET_ITEM(pair, 0))) {
        PyErr_Format(PyExc_TypeError, "a static mount is a (prefix, directory) pair, not %R",
                     pair);
        return -1;
    }
    const char *p = PyUnicode_AsUTF8(prefix); /* decoded paths are matched as UTF-8 bytes */
    if (!p || !PyUnicode_FSConverter(PyTuple_GET_ITEM(pair, 1), &dir))
        return -1;
    int r = aw_static_mount(s->statics, p, PyBytes_AS_STRING(dir));
    if (r == -EINVAL)
        PyErr_Format(PyExc_ValueError, "static prefix %R is not a URL path such as '/static'",
                     prefix);
    else if (r == -EEXIST)
        PyErr_Format(PyExc_ValueError, "static prefix %R is given twice", prefix);
    else if (r == -ENOSYS)
        PyErr_Format(PyExc_ValueError, "static %R: this system can neither resolve paths "
                     "beneath a directory (openat2) nor check them (/proc)", dir);
    else if (r < 0)
        PyErr_Format(PyExc_ValueError, "static directory %R: %s", dir, strerror(-r));
    Py_DECREF(dir);
    return r < 0 ? -1 : 0;
}

/* static: {prefix: directory} or (prefix, directory) pairs. None or empty: no mounts. */
static int setup_static(aw_server_t *s, PyObject *mounts)
{
    if (!mounts || Py_IsNone(mounts))
        return 0;
    PyObject *items = PyDict_Check(mounts) ? PyDict_Items(mounts) : Py_NewRef(mounts);
    PyObject *fast = items ? PySequence_Fast(items, "static must be a dict or pairs") : NULL;
    Py_XDECREF(items);
    if (!fast)
        return -1;
    int r = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > 0 && !(s->statics = aw_static_new(s->opt.static_max_age)))
        r = (PyErr_NoMemory(), -1);
    for (Py_ssize_t i = 0; r == 0 && i < n; i++)
        r = add_mount(s, PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    return r;
}

/* SERVER_NAME and SERVER_PORT of a listening socket. */
static int socket_names(int fd, int *family, PyObject **name, PyObject **port, PyObject *empty)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *family = ss.ss_family;
    if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)&ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t plen = len > off ? strnlen(a->sun_path, len - off) : 0;
        *name = PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)plen);
        *port = Py_NewRef(empty);
        return *name ? 0 : -1;
    }
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
        PyErr_Format(PyExc_ValueError, "socket %d: unsupported address family %d", fd,
                     ss.ss_family);
        return -1;
    }
    aw_peer_t peer;
    aw_peer_set(&peer, (struct sockaddr *)&ss);
    *name = PyUnicode_FromString(peer.ip);
    *port = PyUnicode_FromFormat("%d", peer.port);
    return *name && *port ? 0 : -1;
}

static int setup_listener(aw_server_t *s, aw_listener_t *l, int caller_fd, PyObject *scheme)
{
    PyObject *name = NULL, *port = NULL;
    l->srv = s;
    l->io = (aw_io_t){.fd = fcntl(caller_fd, F_DUPFD_CLOEXEC, 3), .on_event = on_accept};
    int flags = l->io.fd >= 0 ? fcntl(l->io.fd, F_GETFL) : -1;
    if (flags < 0 || fcntl(l->io.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (socket_names(l->io.fd, &l->family, &name, &port, s->st->v_empty) == 0)
        l->environ_tpl = aw_environ_template(s->st, name, port, scheme, s->errors,
                                             s->opt.threads > 1, (int)s->opt.multiprocess,
                                             s->empty_input,
                                             s->stream_input ? s->sentinel : NULL);
    Py_XDECREF(name);
    Py_XDECREF(port);
    return l->environ_tpl ? 0 : -1;
}

static int setup_listeners(aw_server_t *s, PyObject *sockets, PyObject *scheme)
{
    PyObject *fast = PySequence_Fast(sockets, "sockets must be a sequence of file descriptors");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "at least one listening socket is needed");
        goto error;
    }
    if (!(s->listeners = PyMem_Calloc((size_t)n, sizeof(aw_listener_t)))) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int fd = PyObject_AsFileDescriptor(PySequence_Fast_GET_ITEM(fast, i));
        s->listeners[i].io.fd = -1;
        if (fd < 0)
            goto error;
        s->nlisteners = (int)i + 1;
        if (setup_listener(s, &s->listeners[i], fd, scheme) < 0)
            goto error;
    }
    Py_DECREF(fast);
    return 0;
error:
    Py_DECREF(fast);
    return -1;
}

/* A block of memory shared with the master (an mmap): writable, 8-byte aligned, need bytes or
 * more. Returns 1 when obj is one (view holds it), 0 for None, -1 with an exception set. */
static int shared_block(PyObject *obj, Py_buffer *view, Py_ssize_t need, const char *what)
{
    if (Py_IsNone(obj))
        return 0;
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0)
        return -1;
    if (view->len < need || ((uintptr_t)view->buf & 7)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must be an aligned buffer of %zd+ bytes", what, need);
        return -1;
    }
    return 1;
}

static int setup_heartbeat(aw_server_t *s, PyObject *heartbeat)
{
    /* the loop's slot, and one per app thread when there is a pool */
    Py_ssize_t need = 8 * (s->opt.threads > 1 ? (Py_ssize_t)s->opt.threads + 1 : 1);
    int r = shared_block(heartbeat, &s->heartbeat, need, "heartbeat");
    if (r <= 0)
        return r;
    s->has_heartbeat = 1;
    for (Py_ssize_t slot = 0; slot < need / 8; slot++)
        aw_server_heartbeat(s, (int)slot, 0);
    return 0;
}

/* --metrics-bind: the counters go to the master's block (counted from zero: a new worker's). */
static int setup_metrics(aw_server_t *s, PyObject *metrics)
{
    int r = shared_block(metrics, &s->metrics_buf, (Py_ssize_t)sizeof(aw_metrics_t), "metrics");
    if (r <= 0)
        return r;
    s->metrics = s->metrics_buf.buf;
    return 0;
}

/* The app's own wish for streaming input (aiowsgi.streaming_input). Returns 0/1, or -1. */
static int app_streams(PyObject *app)
{
    PyObject *flag = PyObject_GetAttrString(app, "__aiowsgi_streaming_input__");
    if (!flag) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int r = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return r;
}

static void setup_timers(aw_server_t *s)
{
    s->t_header.duration_ms = s->opt.header_timeout;
    s->t_keepalive.duration_ms = s->opt.keepalive;
    s->t_io.duration_ms = AW_IO_TIMEOUT_MS > s->opt.header_timeout ? AW_IO_TIMEOUT_MS
                                                                    : s->opt.header_timeout;
    s->t_linger.duration_ms = AW_LINGER_MS;
}

/* The keyword arguments: the option table's (options.c), then the objects. */
typedef struct {
    PyObject *app, *sockets, *url_scheme, *allow, *errors, *log, *access_log, *heartbeat;
    PyObject *statics, *metrics;
} aw_init_args_t;

static int parse_args(aw_server_t *s, PyObject *args, PyObject *kwds, aw_init_args_t *a)
{
    static char *kwlist[] = {"app", "sockets", "url_scheme", "forwarded_allow_ips", "errors",
                             "log", "access_log", "heartbeat", "static", "metrics", NULL};
    *a = (aw_init_args_t){.errors = Py_None, .log = Py_None, .access_log = Py_None,
                          .heartbeat = Py_None, .metrics = Py_None};
    PyObject *rest = kwds ? PyDict_Copy(kwds) : PyDict_New();
    if (!rest)
        return -1;
    int ok = aw_options_parse(&s->opt, rest) == 0 &&
             PyArg_ParseTupleAndKeywords(args, rest, "OO|$UOOOOOOO:Server", kwlist, &a->app,
                                         &a->sockets, &a->url_scheme, &a->allow, &a->errors,
                                         &a->log, &a->access_log, &a->heartbeat, &a->statics,
                                         &a->metrics);
    Py_DECREF(rest);
    if (ok && !PyCallable_Check(a->app)) {
        PyErr_SetString(PyExc_TypeError, "app must be callable");
        ok = 0;
    }
    return ok ? 0 : -1;
}

static int Server_init(aw_server_t *s, PyObject *args, PyObject *kwds)
{
    aw_init_args_t a;
    if (!s->st || s->loop.epfd >= 0 || s->running) {
        PyErr_SetString(PyExc_RuntimeError, "Server.__init__ may be called only once");
        return -1;
    }
    if (parse_args(s, args, kwds, &a) < 0)
        return -1;
    int streams = app_streams(a.app);
    if (streams < 0)
        return -1;
    s->stream_input = s->opt.stream_input || streams;
    s->app = Py_NewRef(a.app);
    if (Py_IsNone(a.errors) && !(a.errors = PySys_GetObject("stderr"))) // borrowed
        a.errors = Py_None;
    s->errors = Py_NewRef(a.errors);
    s->log = (aw_log_t){.log = Py_NewRef(a.log), .access = Py_NewRef(a.access_log)};
    if (setup_heartbeat(s, a.heartbeat) < 0 || setup_static(s, a.statics) < 0 ||
        setup_metrics(s, a.metrics) < 0)
        return -1;
    int trusted = a.allow ? parse_trusted(s, a.allow)
                          : aw_trust_add(&s->trust, "127.0.0.1") | aw_trust_add(&s->trust, "::1");
    if (trusted < 0)
        return a.allow ? -1 : (PyErr_NoMemory(), -1);
    if (!(s->sentinel = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)))
        return -1;
    if (!(s->empty_input = aw_input_new_memory(s->st, NULL, 0)))
        return -1;
    setup_timers(s);
    int r = aw_loop_init(&s->loop);
    if (r < 0) {
        errno = -r;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return setup_listeners(s, a.sockets, a.url_scheme ? a.url_scheme : s->st->v_http);
}

static PyObject *Server_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    aw_server_t *s = (aw_server_t *)type->tp_alloc(type, 0);
    if (!s)
        return NULL;
    s->st = PyType_GetModuleState(type);
    s->loop.epfd = s->loop.wake.fd = s->loop.wake_w = -1;
    s->stop_timeout = 30.0; /* a stop after --max-requests; stop() says its own */
    return (PyObject *)s;
}

static int Server_traverse(aw_server_t *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->app);
    Py_VISIT(s->errors);
    Py_VISIT(s->log.log);
    Py_VISIT(s->log.access);
    Py_VISIT(s->sentinel);
    Py_VISIT(s->empty_input);
    for (int i = 0; i < s->nlisteners; i++)
        Py_VISIT(s->listeners[i].environ_tpl);
    return 0;
}

static int Server_clear(aw_server_t *s)
{
    Py_CLEAR(s->app);
    Py_CLEAR(s->errors);
    Py_CLEAR(s->log.log);
    Py_CLEAR(s->log.access);
    Py_CLEAR(s->sentinel);
    Py_CLEAR(s->empty_input);
    Py_CLEAR(s->fatal);
    for (int i = 0; i < s->nlisteners; i++)
        Py_CLEAR(s->listeners[i].environ_tpl);
    return 0;
}

static void Server_dealloc(aw_server_t *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    for (int i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].io.fd >= 0)
            close(s->listeners[i].io.fd);
    }
    Server_clear(s);
    PyMem_Free(s->listeners);
    if (s->has_heartbeat)
        PyBuffer_Release(&s->heartbeat);
    if (s->metrics)
        PyBuffer_Release(&s->metrics_buf);
    aw_trust_free(&s->trust);
    aw_static_free(s->statics);
    aw_pool_free(&s->pool);
    aw_loop_close(&s->loop);
    tp->tp_free(s);
    Py_DECREF(tp);
}

static PyObject *Server_get_requests(aw_server_t *s, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&s->requests, __ATOMIC_RELAXED));
}

static PyObject *Server_get_connections(aw_server_t *s, void *Py_UNUSED(c))
{
    return PyLong_FromSize_t(__atomic_load_n(&s->nconns, __ATOMIC_RELAXED));
}

static PyObject *Server_get_sentinel(aw_server_t *s, void *Py_UNUSED(c))
{
    return Py_NewRef(s->sentinel ? s->sentinel : Py_None);
}

static PyMethodDef Server_methods[] = {
    {"run", (PyCFunction)Server_run, METH_NOARGS,
     "Serve until stop() or max_requests; the GIL is released while waiting for events."},
    {"stop", (PyCFunction)(void (*)(void))Server_stop, METH_VARARGS | METH_KEYWORDS,
     "stop(graceful=True, timeout=30.0): ask the loop to stop; safe from any thread."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Server_getset[] = {
    {"requests", (getter)Server_get_requests, NULL, "Requests answered so far.", NULL},
    {"connections", (getter)Server_get_connections, NULL, "Connections open now.", NULL},
    {"sentinel", (getter)Server_get_sentinel, NULL, "The would-block sentinel.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Server_slots[] = {
    {Py_tp_doc, "Server(app, sockets, **options): one event loop serving a WSGI app."},
    {Py_tp_new, Server_new},
    {Py_tp_init, Server_init},
    {Py_tp_dealloc, Server_dealloc},
    {Py_tp_traverse, Server_traverse},
    {Py_tp_clear, Server_clear},
    {Py_tp_methods, Server_methods},
    {Py_tp_getset, Server_getset},
    {0, NULL},
};

PyType_Spec aw_server_spec = {
    .name = "aiowsgi._core.Server",
    .basicsize = sizeof(aw_server_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Server_slots,
};
