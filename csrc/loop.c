/* loop.c: epoll, the wake-up eventfd, the clock and timer lists.
 *
 * Owns: the epoll descriptor and the eventfd, the interest mask of every registered aw_io_t
 * (touching epoll only when it changes, ADD vs MOD chosen from the stored mask, as Redis' ae.c
 * does), and the intrusive timer lists. Must not include Python.h, nor know what the
 * registered descriptors are: the owner of each aw_io_t handles its events.
 */
#define _GNU_SOURCE /* CLOCK_*_COARSE, epoll_pwait */
#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_wake(aw_io_t *io, uint32_t events)
{
    (void)events;
    aw_loop_t *loop = aw_container_of(io, aw_loop_t, wake);
    unsigned char bytes[64];
    ssize_t n;
    while ((n = read(io->fd, bytes, sizeof(bytes))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            loop->signalled |= bytes[i] != 0;
    }
}

int aw_loop_init(aw_loop_t *loop)
{
    int fds[2] = {-1, -1};
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    int r = pipe2(fds, O_NONBLOCK | O_CLOEXEC);
    loop->wake = (aw_io_t){.fd = fds[0], .on_event = on_wake};
    loop->wake_w = fds[1];
    loop->signalled = 0;
    if (loop->epfd < 0 || r < 0) {
        int err = errno;
        aw_loop_close(loop);
        return -err;
    }
    aw_loop_refresh_clock(loop);
    return aw_loop_watch(loop, &loop->wake, EPOLLIN);
}

void aw_loop_close(aw_loop_t *loop)
{
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wake.fd >= 0)
        close(loop->wake.fd);
    if (loop->wake_w >= 0)
        close(loop->wake_w);
    loop->epfd = loop->wake.fd = loop->wake_w = -1;
}

/* Register io, or change its interest. Interest 0 keeps it registered: epoll still reports
 * EPOLLERR and EPOLLHUP, so a peer's reset is noticed even while nothing is read. Returns 0 or
 * -errno. */
int aw_loop_watch(aw_loop_t *loop, aw_io_t *io, uint32_t events)
{
    if (io->registered && io->events == events)
        return 0;
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    io->registered = 1;
    return 0;
}

/* Drop io's registration: no event at all until aw_loop_watch. Returns 0 or -errno. */
int aw_loop_unwatch(aw_loop_t *loop, aw_io_t *io)
{
    if (!io->registered)
        return 0;
    struct epoll_event ev = {.events = 0, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, &ev) < 0)
        return -errno;
    io->events = 0;
    io->registered = 0;
    return 0;
}

/* epoll_pwait2 (Linux 5.11) takes a timeout in nanoseconds; epoll_wait's is rounded up to the
 * millisecond. */
static int wait_events(aw_loop_t *loop, struct epoll_event *events, int max, long long timeout_ns)
{
#ifdef SYS_epoll_pwait2
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
    int n = (int)syscall(SYS_epoll_pwait2, loop->epfd, events, max, timeout_ns < 0 ? NULL : &ts,
                         NULL, (size_t)0);
    if (n >= 0 || errno != ENOSYS)
        return n;
#endif
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    return epoll_wait(loop->epfd, events, max, ms);
}

/* Wait for events (at most timeout_ns; -1: no limit), then refresh the clock. Returns the number
 * of events, -EINTR when a signal came, or another -errno. */
int aw_loop_poll(aw_loop_t *loop, struct epoll_event *events, int max, long long timeout_ns)
{
    int n = wait_events(loop, events, max, timeout_ns);
    int err = n < 0 ? errno : 0;
    aw_loop_refresh_clock(loop);
    return n >= 0 ? n : -err;
}

/* Make a concurrent or the next aw_loop_poll() return. Safe from any thread. */
int aw_loop_wake(aw_loop_t *loop)
{
    unsigned char zero = 0;
    if (write(loop->wake_w, &zero, 1) < 0 && errno != EAGAIN) /* full: a wake-up is pending */
        return -errno;
    return 0;
}

void aw_loop_refresh_clock(aw_loop_t *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    loop->now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    loop->now_sec = ts.tv_sec;
}

/* ---- timer lists ------------------------------------------------------------------------- */

void aw_timer_cancel(aw_timer_t *t)
{
    aw_tlist_t *l = t->list;
    if (!l)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->prev = t->next = NULL;
    t->list = NULL;
}

/* (Re)arm t to expire list->duration_ms from now, at the end of list. */
void aw_timer_arm(aw_tlist_t *list, aw_timer_t *t, long long now_ms)
{
    aw_timer_cancel(t);
    t->deadline_ms = now_ms + list->duration_ms;
    t->list = list;
    t->prev = list->tail;
    t->next = NULL;
    if (list->tail)
        list->tail->next = t;
    else
        list->head = t;
    list->tail = t;
}

/* The first timer of list whose deadline has passed, or NULL. The caller must cancel or re-arm
 * it before asking again. */
aw_timer_t *aw_tlist_due(const aw_tlist_t *list, long long now_ms)
{
    return list->head && list->head->deadline_ms <= now_ms ? list->head : NULL;
}

/* The earliest deadline on list, or -1 when it is empty. */
long long aw_tlist_next_deadline(const aw_tlist_t *list)
{
    return list->head ? list->head->deadline_ms : -1;
}
