/* loop.h: the event loop: epoll, a wake-up eventfd, the clock and deadline-ordered timer lists.
 *
 * Pure C: no Python here (the server releases the GIL around aw_loop_poll). Errors are
 * negative errno values. Everything is owned by the thread that runs the loop, except
 * aw_loop_wake(), which any thread (and a signal handler) may call.
 */
#ifndef AW_LOOP_H
#define AW_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

/* The first member of everything registered with epoll (epoll_data.ptr points to it). */
typedef struct aw_io aw_io_t;
typedef void (*aw_io_cb)(aw_io_t *io, uint32_t events);
struct aw_io {
    int fd;
    uint32_t events; /* the interest currently registered */
    int registered;
    aw_io_cb on_event;
};

/* A deadline, embedded in its owner, on at most one list. */
typedef struct aw_timer aw_timer_t;
typedef struct aw_tlist aw_tlist_t;
struct aw_timer {
    aw_timer_t *prev, *next;
    aw_tlist_t *list; /* NULL when not armed */
    long long deadline_ms;
};

/* Timers sharing one duration, in deadline order (h2o style: appending now + duration keeps the
 * list sorted, so arming, cancelling and expiring are O(1)). */
struct aw_tlist {
    aw_timer_t *head, *tail;
    long long duration_ms;
};

typedef struct {
    int epfd;
    aw_io_t wake;       /* a pipe's read end: a byte on it makes aw_loop_poll() return */
    int wake_w;         /* its write end: 0 from aw_loop_wake(), a signal's number from
                         * Python's signal handler (signal.set_wakeup_fd) */
    int signalled;      /* a signal's byte was read since the caller last cleared this */
    long long now_ms;   /* CLOCK_MONOTONIC_COARSE, refreshed by aw_loop_poll */
    time_t now_sec;     /* CLOCK_REALTIME_COARSE seconds, refreshed with now_ms */
} aw_loop_t;

int aw_loop_init(aw_loop_t *loop);
void aw_loop_close(aw_loop_t *loop);
int aw_loop_watch(aw_loop_t *loop, aw_io_t *io, uint32_t events);
int aw_loop_unwatch(aw_loop_t *loop, aw_io_t *io);
int aw_loop_poll(aw_loop_t *loop, struct epoll_event *events, int max, long long timeout_ns);
int aw_loop_wake(aw_loop_t *loop);
void aw_loop_refresh_clock(aw_loop_t *loop);

void aw_timer_arm(aw_tlist_t *list, aw_timer_t *t, long long now_ms);
void aw_timer_cancel(aw_timer_t *t);
aw_timer_t *aw_tlist_due(const aw_tlist_t *list, long long now_ms);
long long aw_tlist_next_deadline(const aw_tlist_t *list);

#define aw_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
