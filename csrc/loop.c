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
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_wake(aw_io_t *io, uint32_t events)
{
    (void)events;
    uint64_t v;
    while (read(io->fd, &v, sizeof(v)) > 0) {
    }
}

int aw_loop_init(aw_loop_t *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake = (aw_io_t){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .on_event = on_wake};
    if (loop->epfd < 0 || loop->wake.fd < 0) {
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
    loop->epfd = loop->wake.fd = -1;
}

/* Register, change or drop (events == 0) the interest of io. Returns 0 or -errno. */
int aw_loop_watch(aw_loop_t *loop, aw_io_t *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    int op = events == 0 ? EPOLL_CTL_DEL : (io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    return 0;
}

/* epoll_pwait2 (Linux 5.11) takes a timeout in nanoseconds; epoll_pwait's is rounded up to the
 * millisecond. */
static int wait_events(aw_loop_t *loop, struct epoll_event *events, int max, long long timeout_ns,
                       const sigset_t *mask)
{
#ifdef SYS_epoll_pwait2
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
    int n = (int)syscall(SYS_epoll_pwait2, loop->epfd, events, max, timeout_ns < 0 ? NULL : &ts,
                         mask, (size_t)(_NSIG / 8));
    if (n >= 0 || errno != ENOSYS)
        return n;
#endif
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    return epoll_pwait(loop->epfd, events, max, ms, mask);
}

/* Wait for events (at most timeout_ns; -1: no limit), with the signal mask set to mask during
 * the wait if it is not NULL, then refresh the clock. Returns the number of events, -EINTR when
 * a signal came, or another -errno. */
int aw_loop_poll(aw_loop_t *loop, struct epoll_event *events, int max, long long timeout_ns,
                 const sigset_t *mask)
{
    int n = wait_events(loop, events, max, timeout_ns, mask);
    int err = n < 0 ? errno : 0;
    aw_loop_refresh_clock(loop);
    return n >= 0 ? n : -err;
}

/* Make a concurrent or the next aw_loop_poll() return. Safe from any thread. */
int aw_loop_wake(aw_loop_t *loop)
{
    uint64_t one = 1;
    if (write(loop->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
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
