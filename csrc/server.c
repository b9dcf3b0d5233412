/* server.c: the Server type and its event loop.
 *
 * Owns: epoll and the wake-up eventfd, the listening sockets (our dup()s), accept until EAGAIN,
 * the timeout lists, the buffer pool, stop() and the graceful drain, the heartbeat, logging
 * helpers. Must not parse HTTP nor call the app: connections (conn.c) do that.
 */
#include "core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define AW_MAX_EVENTS 256

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- epoll interest ---------------------------------------------------------------------- */

/* Register, change or drop (events == 0) the interest of io, touching epoll only when the
 * mask really changes (ADD vs MOD chosen from the stored mask, as in Redis' ae.c). */
int aw_server_update_events(aw_server_t *s, aw_io_t *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    int op = events == 0 ? EPOLL_CTL_DEL : (io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(s->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    return 0;
}

/* ---- buffer pool: idle connections hold no buffers ------------------------------------- */

char *aw_pool_get(aw_server_t *s)
{
    if (s->npool > 0)
        return s->pool[--s->npool];
    return malloc(AW_BUF_SIZE);
}

void aw_pool_put(aw_server_t *s, char *buf, size_t cap)
{
    if (!buf)
        return;
    if (cap == AW_BUF_SIZE && s->npool < AW_POOL_MAX)
        s->pool[s->npool++] = buf;
    else
        free(buf);
}

/* ---- timeouts ---------------------------------------------------------------------------- */

void aw_tlist_remove(aw_conn_t *c)
{
    aw_tlist_t *l = c->t_list;
    if (!l)
        return;
    if (c->t_prev)
        c->t_prev->t_next = c->t_next;
    else
        l->head = c->t_next;
    if (c->t_next)
        c->t_next->t_prev = c->t_prev;
    else
        l->tail = c->t_prev;
    c->t_prev = c->t_next = NULL;
    c->t_list = NULL;
}

void aw_tlist_append(aw_tlist_t *l, aw_conn_t *c, long long now_ms)
{
    aw_tlist_remove(c);
    c->deadline_ms = now_ms + l->duration_ms;
    c->t_list = l;
    c->t_prev = l->tail;
    c->t_next = NULL;
    if (l->tail)
        l->tail->t_next = c;
    else
        l->head = c;
    l->tail = c;
}

static void tlist_expire(aw_tlist_t *l, long long now_ms)
{
    /* aw_conn_expire removes c from the list (closing or moving it), so the head advances */
    while (l->head && l->head->deadline_ms <= now_ms)
        aw_conn_expire(l->head);
}

static int next_timeout_ms(aw_server_t *s)
{
    aw_tlist_t *lists[] = {&s->t_header, &s->t_keepalive, &s->t_io, &s->t_linger};
    long long first = -1;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (lists[i]->head && (first < 0 || lists[i]->head->deadline_ms < first))
            first = lists[i]->head->deadline_ms;
    }
    if (s->stopping && (first < 0 || s->stop_deadline_ms < first))
        first = s->stop_deadline_ms;
    if (!s->accepting && !s->stopping && (first < 0 || s->accept_resume_ms < first))
        first = s->accept_resume_ms;
    if (first < 0)
        return 1000; /* wake once a second anyway: the Date header and signals stay fresh */
    long long wait = first - s->now_ms + 1; /* +1: coarse clock, never wake a little early */
    return wait < 0 ? 0 : (wait > 1000 ? 1000 : (int)wait);
}

/* ---- heartbeat for the master's --timeout ------------------------------------------------ */

void aw_heartbeat(aw_server_t *s, int busy)
{
    if (!s->has_heartbeat)
        return;
    uint64_t v = 0;
    if (busy) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    __atomic_store_n((uint64_t *)s->heartbeat.buf, v, __ATOMIC_RELAXED);
}

/* ---- logging ----------------------------------------------------------------------------- */

/* Report the current exception (which is cleared) with msg, through the log callable or, with
 * none, as a traceback on sys.stderr. Never lets an exception escape into the loop. */
void aw_log_exception(aw_server_t *s, const char *msg)
{
    PyObject *exc = NULL, *tb = NULL, *type = NULL;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc && tb)
        PyException_SetTraceback(exc, tb);
    if (s->log && !Py_IsNone(s->log)) {
        PyObject *r = PyObject_CallFunction(s->log, "isO", 40, msg, exc ? exc : Py_None);
        if (!r)
            PyErr_WriteUnraisable(s->log);
        Py_XDECREF(r);
    } else {
        PySys_WriteStderr("aiowsgi: %s\n", msg);
        if (type) {
            PyErr_Restore(type, exc, tb);
            type = exc = tb = NULL;
            PyErr_PrintEx(0);
        }
    }
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    PyErr_Clear();
}

void aw_log_message(aw_server_t *s, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    if (s->log && !Py_IsNone(s->log)) {
        PyObject *r = PyObject_CallFunction(s->log, "isO", level, msg, Py_None);
        if (!r)
            PyErr_WriteUnraisable(s->log);
        Py_XDECREF(r);
    } else {
        PySys_WriteStderr("aiowsgi: %s\n", msg);
    }
    PyErr_Restore(exc_type, exc, tb);
}

/* ---- forwarded headers ------------------------------------------------------------------- */

int aw_server_trusts(aw_server_t *s, const char *ip)
{
    if (s->trust_all)
        return 1;
    for (int i = 0; i < s->ntrusted; i++) {
        if (strcmp(s->trusted[i], ip) == 0)
            return 1;
    }
    return 0;
}

/* ---- accepting --------------------------------------------------------------------------- */

static void listeners_watch(aw_server_t *s, int on)
{
    for (int i = 0; i < s->nlisteners; i++) {
        aw_listener_t *l = &s->listeners[i];
        if (l->io.fd < 0)
            continue;
        /* Not EPOLLEXCLUSIVE: it wakes one loop per connection, and a loop that stops
         * accepting right then would swallow the wake-up while its siblings sleep on a
         * queued connection. Every worker hears of it; one accept4 wins, the rest see
         * EAGAIN; cheap at worker counts of a few per core. */
        if (aw_server_update_events(s, &l->io, on ? EPOLLIN : 0) < 0 && on)
            aw_log_message(s, 40, "cannot watch listening socket %d: %s", l->io.fd,
                           strerror(errno));
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

static void on_accept(aw_server_t *s, aw_listener_t *l)
{
    for (int i = 0; i < AW_ACCEPT_BATCH && s->accepting; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->io.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: pause accepting for a moment rather than spin */
                aw_log_message(s, 40, "accept: %s; pausing accept for 100 ms", strerror(errno));
                listeners_watch(s, 0);
                s->accept_resume_ms = s->now_ms + 100;
            }
            return; /* EAGAIN: drained; anything else: try again on the next event */
        }
        if (len == 0 || ss.ss_family == AF_UNIX)
            ss.ss_family = AF_UNIX;
        else {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (!aw_conn_new(s, l, fd, (struct sockaddr *)&ss)) {
            aw_log_exception(s, "cannot set up a new connection");
            close(fd);
        }
    }
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void close_all(aw_server_t *s, int only_idle)
{
    /* Connections live on the timeout lists or are mid-response; walk every list. */
    aw_tlist_t *lists[] = {&s->t_keepalive, &s->t_header, &s->t_io, &s->t_linger};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        aw_conn_t *c = lists[i]->head;
        while (c) {
            aw_conn_t *next = c->t_next;
            if (!only_idle)
                aw_conn_close(c);
            else if (aw_conn_is_idle(c))
                aw_conn_close(c);
            else
                c->close_after = 1;
            c = next;
        }
    }
}

static void begin_stop(aw_server_t *s, int graceful, double timeout)
{
    listeners_close(s);
    if (!graceful) {
        s->stopping = 1;
        s->stop_deadline_ms = s->now_ms;
        return;
    }
    if (!s->stopping) {
        s->stopping = 1;
        s->stop_deadline_ms = s->now_ms + (long long)(timeout * 1000);
    }
    close_all(s, 1);
}

void aw_server_request_done(aw_server_t *s)
{
    s->requests++;
    /* Deferred to the top of the loop: the caller is in the middle of a connection. */
    if (s->max_requests && s->requests >= s->max_requests && !s->stopping &&
        __atomic_load_n(&s->stop_req, __ATOMIC_ACQUIRE) == 0) {
        s->stop_timeout = 30.0;
        __atomic_store_n(&s->stop_req, 1, __ATOMIC_RELEASE);
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void refresh_clock(aw_server_t *s)
{
    s->now_ms = monotonic_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != s->date_sec) {
        s->date_sec = ts.tv_sec;
        aw_format_date(ts.tv_sec, s->date_line, &s->date_len);
    }
}

/* Close every connection still open: used when run() ends for any reason. Connections that
 * are mid-response are on no timeout list, so they are found through their epoll
 * registration: we keep them on a list too (see conn.c: every open connection is on exactly
 * one list, t_io when mid-response). */
static void close_everything(aw_server_t *s)
{
    close_all(s, 0);
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
    s->stopping = 0;
    refresh_clock(s);
    listeners_watch(s, 1);
    if (aw_server_update_events(s, &s->wake_io, EPOLLIN) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    for (;;) {
        int req = __atomic_exchange_n(&s->stop_req, 0, __ATOMIC_ACQ_REL);
        if (req)
            begin_stop(s, req == 1, s->stop_timeout);
        if (s->stopping && (s->nconns == 0 || s->now_ms >= s->stop_deadline_ms))
            break;
        int timeout = next_timeout_ms(s);
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(s->epfd, events, AW_MAX_EVENTS, timeout);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno != EINTR) {
                PyErr_SetFromErrno(PyExc_OSError);
                goto done;
            }
            n = 0;
        }
        refresh_clock(s);
        if (PyErr_CheckSignals() < 0)
            goto done;
        for (int i = 0; i < n && !s->fatal; i++) {
            aw_io_t *io = events[i].data.ptr;
            switch (io->kind) {
            case AW_IO_CONN:
                aw_conn_on_event((aw_conn_t *)io, events[i].events);
                break;
            case AW_IO_LISTENER:
                if (s->accepting)
                    on_accept(s, (aw_listener_t *)io);
                break;
            case AW_IO_WAKE: {
                uint64_t v;
                while (read(s->wakefd, &v, sizeof(v)) > 0) {
                }
                break;
            }
            }
        }
        if (s->fatal)
            break;
        tlist_expire(&s->t_header, s->now_ms);
        tlist_expire(&s->t_keepalive, s->now_ms);
        tlist_expire(&s->t_io, s->now_ms);
        tlist_expire(&s->t_linger, s->now_ms);
        if (!s->accepting && !s->stopping && s->now_ms >= s->accept_resume_ms)
            listeners_watch(s, 1);
    }
done:
    close_everything(s);
    listeners_close(s);
    aw_server_update_events(s, &s->wake_io, 0);
    s->running = 0;
    if (s->fatal) {
        PyObject *exc = s->fatal;
        s->fatal = NULL;
        if (!PyErr_Occurred())
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Server_stop(aw_server_t *s, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"graceful", "timeout", NULL};
    int graceful = 1;
    double timeout = 30.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pd:stop", kwlist, &graceful, &timeout))
        return NULL;
    s->stop_timeout = timeout;
    /* Stop accepting at once, even if the loop is busy in an app call, so new connections
     * are refused rather than parked in the backlog. Safe from any thread: every accept and
     * epoll_ctl on a listener happens with the GIL held, as here, and a listener event still
     * queued in the loop's batch is ignored once accepting is off. */
    if (s->epfd >= 0)
        listeners_close(s);
    /* an immediate stop wins over a graceful one already asked for */
    int want = graceful ? 1 : 2;
    int cur = __atomic_load_n(&s->stop_req, __ATOMIC_ACQUIRE);
    if (cur != 2 || want == 2)
        __atomic_store_n(&s->stop_req, want, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (s->wakefd >= 0 && write(s->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* ---- construction ------------------------------------------------------------------------ */

static int parse_trusted(aw_server_t *s, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "forwarded_allow_ips must be a sequence of str");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    s->trusted = PyMem_Calloc(n ? n : 1, sizeof(char *));
    if (!s->trusted) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i); // borrowed
        const char *ip = PyUnicode_AsUTF8(item);
        if (!ip) {
            Py_DECREF(fast);
            return -1;
        }
        if (strcmp(ip, "*") == 0)
            s->trust_all = 1;
        s->trusted[s->ntrusted] = strdup(ip);
        if (!s->trusted[s->ntrusted]) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
        s->ntrusted++;
    }
    Py_DECREF(fast);
    return 0;
}

static int setup_listener(aw_server_t *s, aw_listener_t *l, int caller_fd, PyObject *scheme)
{
    PyObject *name = NULL, *port = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    l->io.kind = AW_IO_LISTENER;
    l->io.fd = fcntl(caller_fd, F_DUPFD_CLOEXEC, 3);
    if (l->io.fd < 0 || getsockname(l->io.fd, (struct sockaddr *)&ss, &len) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int flags = fcntl(l->io.fd, F_GETFL);
    if (flags < 0 || fcntl(l->io.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    l->family = ss.ss_family;
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        name = PyUnicode_FromString(host);
        port = PyUnicode_FromFormat("%d", ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        name = PyUnicode_FromString(host);
        port = PyUnicode_FromFormat("%d", ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)&ss;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                          ? strnlen(a->sun_path, len - offsetof(struct sockaddr_un, sun_path))
                          : 0;
        name = PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)plen);
        port = Py_NewRef(s->st->v_empty);
    } else {
        PyErr_Format(PyExc_ValueError, "socket %d: unsupported address family %d", caller_fd,
                     ss.ss_family);
        return -1;
    }
    if (!name || !port)
        goto error;
    l->environ_tpl = aw_environ_template(s, l, name, port, scheme);
    if (!l->environ_tpl)
        goto error;
    Py_DECREF(name);
    Py_DECREF(port);
    return 0;
error:
    Py_XDECREF(name);
    Py_XDECREF(port);
    return -1;
}

static int Server_init(aw_server_t *s, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"app", "sockets", "url_scheme", "forwarded_allow_ips", "errors",
                             "log", "access_log", "heartbeat", NULL};
    PyObject *app, *sockets, *url_scheme = NULL, *allow = NULL, *errors = Py_None,
                            *log = Py_None, *access_log = Py_None, *heartbeat = Py_None;
    PyObject *fast = NULL, *rest = NULL;
    aw_options_t opt;
    if (s->st == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Server is not initialised");
        return -1;
    }
    if (s->epfd >= 0 || s->running) {
        PyErr_SetString(PyExc_RuntimeError, "Server.__init__ may be called only once");
        return -1;
    }
    /* the table's options first (options.c), then the others from what is left */
    if (!(rest = kwds ? PyDict_Copy(kwds) : PyDict_New()))
        return -1;
    int parsed = aw_options_parse(&opt, rest) == 0 &&
                 PyArg_ParseTupleAndKeywords(args, rest, "OO|$UOOOOO:Server", kwlist, &app,
                                             &sockets, &url_scheme, &allow, &errors, &log,
                                             &access_log, &heartbeat);
    Py_DECREF(rest);
    if (!parsed)
        return -1;
    if (!PyCallable_Check(app)) {
        PyErr_SetString(PyExc_TypeError, "app must be callable");
        return -1;
    }
    s->app = Py_NewRef(app);
    s->keepalive_ms = opt.keepalive;
    s->header_timeout_ms = opt.header_timeout;
    s->max_header_size = (size_t)opt.max_header_size;
    s->max_body_size = (unsigned long long)opt.max_body_size;
    s->spool_threshold = (size_t)opt.spool_threshold;
    s->max_requests = (unsigned long long)opt.max_requests;
    s->multiprocess = (int)opt.multiprocess;
    int attr = PyObject_HasAttrString(app, "__aiowsgi_streaming_input__");
    if (attr) {
        PyObject *flag = PyObject_GetAttrString(app, "__aiowsgi_streaming_input__");
        if (!flag)
            return -1;
        attr = PyObject_IsTrue(flag);
        Py_DECREF(flag);
        if (attr < 0)
            return -1;
    }
    s->stream_input = opt.stream_input || attr;
    if (Py_IsNone(errors)) {
        errors = PySys_GetObject("stderr"); // borrowed
        if (!errors)
            errors = Py_None;
    }
    s->errors = Py_NewRef(errors);
    s->log = Py_NewRef(log);
    s->access_log = Py_NewRef(access_log);
    if (!Py_IsNone(heartbeat)) {
        if (PyObject_GetBuffer(heartbeat, &s->heartbeat, PyBUF_WRITABLE) < 0)
            return -1;
        s->has_heartbeat = 1;
        if (s->heartbeat.len < 8 || ((uintptr_t)s->heartbeat.buf & 7)) {
            PyErr_SetString(PyExc_ValueError, "heartbeat must be an aligned buffer of 8+ bytes");
            return -1;
        }
        aw_heartbeat(s, 0);
    }
    if (allow) {
        if (parse_trusted(s, allow) < 0)
            return -1;
    } else {
        PyObject *dflt = Py_BuildValue("(ss)", "127.0.0.1", "::1");
        int r = dflt ? parse_trusted(s, dflt) : -1;
        Py_XDECREF(dflt);
        if (r < 0)
            return -1;
    }
    if (!(s->sentinel = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)))
        return -1;
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (!empty)
        return -1;
    s->empty_input = aw_input_new_bytes(s->st, empty);
    Py_DECREF(empty);
    if (!s->empty_input)
        return -1;
    s->t_header.duration_ms = s->header_timeout_ms;
    s->t_keepalive.duration_ms = s->keepalive_ms;
    s->t_io.duration_ms = AW_IO_TIMEOUT_MS > s->header_timeout_ms ? AW_IO_TIMEOUT_MS
                                                                   : s->header_timeout_ms;
    s->t_linger.duration_ms = AW_LINGER_MS;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->wakefd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    s->wake_io.kind = AW_IO_WAKE;
    s->wake_io.fd = s->wakefd;
    if (!(fast = PySequence_Fast(sockets, "sockets must be a sequence of file descriptors")))
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "at least one listening socket is needed");
        goto error;
    }
    s->listeners = PyMem_Calloc((size_t)n, sizeof(aw_listener_t));
    if (!s->listeners) {
        PyErr_NoMemory();
        goto error;
    }
    PyObject *scheme = url_scheme ? url_scheme : s->st->v_http; // borrowed
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
    Py_XDECREF(fast);
    return -1;
}

static PyObject *Server_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    aw_server_t *s = (aw_server_t *)type->tp_alloc(type, 0);
    if (!s)
        return NULL;
    s->st = PyType_GetModuleState(type);
    s->epfd = s->wakefd = -1;
    return (PyObject *)s;
}

static int Server_traverse(aw_server_t *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->app);
    Py_VISIT(s->errors);
    Py_VISIT(s->log);
    Py_VISIT(s->access_log);
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
    Py_CLEAR(s->log);
    Py_CLEAR(s->access_log);
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
    for (int i = 0; i < s->ntrusted; i++)
        free(s->trusted[i]);
    PyMem_Free(s->trusted);
    while (s->npool > 0)
        free(s->pool[--s->npool]);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wakefd >= 0)
        close(s->wakefd);
    tp->tp_free(s);
    Py_DECREF(tp);
}

static PyObject *Server_get_requests(aw_server_t *s, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(s->requests);
}

static PyObject *Server_get_connections(aw_server_t *s, void *Py_UNUSED(c))
{
    return PyLong_FromSize_t(s->nconns);
}

static PyObject *Server_get_sentinel(aw_server_t *s, void *Py_UNUSED(c))
{
    if (!s->sentinel)
        Py_RETURN_NONE;
    return Py_NewRef(s->sentinel);
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
