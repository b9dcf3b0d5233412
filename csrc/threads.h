/* threads.h: a pool of app threads (--threads N) that run jobs handed over by the loop.
 *
 * A job is a connection whose app must run (or resume); while it is queued or running, the
 * thread owns the connection and the loop does not touch it; the thread hands it back through
 * the completed list and wakes the loop. The loop never waits for the GIL: Python references
 * it must drop are deferred to the threads, which hold the GIL when they run jobs.
 */
#ifndef AW_THREADS_H
#define AW_THREADS_H

#include "compat.h"
#include "loop.h"
#include "response.h"

#include <pthread.h>

#define AW_HANDOFF_NS 200000 /* a job waits while every running job is this old: wake a thread */
#define AW_TAKE_BACK_NS 1000000 /* while threads run jobs, the loop takes back at least this often */
#define AW_HOLD_NS 1000000   /* held answers wait at most this for the others */

/* Embedded in what is handed over (a connection). */
typedef struct aw_job {
    struct aw_job *next;
    long long queued_ns;
} aw_job_t;

/* One app thread's own state: only that thread writes it. */
typedef struct aw_worker {
    struct aw_threads *pool;
    int slot;                /* 1..n: its heartbeat slot */
    long long job_since;     /* atomic: when its current job began (ns), 0 between jobs */
    pthread_t tid;
    int started;
    char date[AW_DATE_MAX];  /* its own "Date: ...\r\n", refreshed each second */
    size_t date_len;
    time_t date_sec;
} aw_worker_t;

/* Runs a job on a thread, with the GIL held; the job must end with aw_threads_complete. */
typedef void (*aw_job_fn)(void *ctx, aw_job_t *job, aw_worker_t *w);

typedef enum { AW_DEFER_DECREF, AW_DEFER_CLOSE } aw_defer_t;

typedef struct {
    PyObject *obj;
    aw_defer_t action;
} aw_deferred_t;

/* Fields are threads.c's alone. */
typedef struct aw_threads {
    pthread_mutex_t lock;
    pthread_cond_t work;        /* a job was queued, or the pool stops */
    aw_job_t *head, *tail;      /* queued, in order */
    int queued;                 /* jobs in the queue (atomic reads from the loop) */
    aw_job_t *held, *held_tail; /* done jobs whose answers go out together (aw_worker_hold) */
    long long held_since;       /* when the oldest of them was held */
    aw_job_t *done;             /* handed back, not yet taken by the loop (newest first) */
    int wake_pending;           /* the loop was woken for done jobs and has not taken them */
    aw_deferred_t *deferred;    /* references to drop with the GIL */
    int ndeferred, deferred_cap;
    int nthreads, idle, active, stopping;
    aw_worker_t *workers;
    aw_job_fn run, finish;   /* run a job; finish a held one (send its answer, hand it back) */
    void *ctx;
    aw_loop_t *loop;
} aw_threads_t;

int aw_threads_start(aw_threads_t *t, int n, aw_job_fn run, aw_job_fn finish, void *ctx,
                     aw_loop_t *loop);
void aw_threads_submit(aw_threads_t *t, aw_job_t *job, int urgent);
int aw_threads_backlog(aw_threads_t *t);
long long aw_threads_tick(aw_threads_t *t);
void aw_threads_complete(aw_threads_t *t, aw_job_t *job);
aw_job_t *aw_threads_completed(aw_threads_t *t);
void aw_threads_defer(aw_threads_t *t, PyObject *obj, aw_defer_t action);
void aw_threads_drain(aw_threads_t *t);
int aw_threads_stop(aw_threads_t *t, long long deadline_ns);
void aw_threads_free(aw_threads_t *t);
long long aw_threads_now_ns(void);
int aw_threads_gil_held(void);
void aw_worker_date(aw_worker_t *w, const char **date, size_t *len);
void aw_worker_hold(aw_worker_t *w, aw_job_t *job);
int aw_worker_wait_writable(aw_worker_t *w, int fd, int timeout_ms);

#endif
