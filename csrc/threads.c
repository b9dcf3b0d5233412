/* threads.c: the app thread pool.
 *
 * Owns: the threads, their queue of jobs, the list of jobs handed back to the loop, and the
 * Python references deferred by the loop (dropped by a thread, with the GIL). Policy: a thread
 * takes a job only while it holds the GIL, and keeps the GIL from one job to the next, so a job
 * never waits behind a thread that is itself waiting for the GIL. An idle thread is woken at
 * once when no thread runs jobs, and otherwise only when jobs wait while every running job is
 * older than AW_HANDOFF_NS (those threads are blocked in the app, on a database say): fast apps
 * run on one thread without GIL ping-pong, slow ones on as many threads as they need. Must not
 * touch a job's insides: the run callback does.
 */
#include "threads.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long long aw_threads_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether this thread holds the GIL (the loop of a pool does not). */
int aw_threads_gil_held(void)
{
    return PyGILState_Check();
}

static aw_job_t *pop(aw_threads_t *t)
{
    aw_job_t *job = t->head;
    if (job) {
        t->head = job->next;
        if (!t->head)
            t->tail = NULL;
        job->next = NULL;
        __atomic_fetch_sub(&t->queued, 1, __ATOMIC_RELAXED);
    }
    return job;
}

/* ---- on the threads ---------------------------------------------------------------------- */

/* Without the GIL: wait until a job is queued. Returns 0 when the pool stops and the queue is
 * empty. */
static int wait_work(aw_threads_t *t)
{
    pthread_mutex_lock(&t->lock);
    while (!t->head && !t->stopping) {
        t->idle++;
        pthread_cond_wait(&t->work, &t->lock);
        t->idle--;
    }
    int work = t->head != NULL;
    pthread_mutex_unlock(&t->lock);
    return work;
}

/* With the GIL: the next job, if one is still queued. */
static aw_job_t *take_job(aw_threads_t *t, aw_worker_t *w)
{
    pthread_mutex_lock(&t->lock);
    aw_job_t *job = pop(t);
    t->active += job != NULL;
    __atomic_store_n(&w->job_since, job ? aw_threads_now_ns() : 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->lock);
    return job;
}

static void job_ended(aw_threads_t *t)
{
    pthread_mutex_lock(&t->lock);
    t->active--;
    pthread_mutex_unlock(&t->lock);
}

static void wake_loop(aw_threads_t *t);

/* With the GIL: the held answers go out one after the other (a client woken once gets them
 * all), and their connections go back to the loop; unless all is 0 and the oldest was held
 * less than AW_HOLD_NS ago. Whichever thread finds them due sends every thread's. */
static void release_held(aw_threads_t *t, aw_worker_t *w, int all)
{
    pthread_mutex_lock(&t->lock);
    aw_job_t *job = NULL;
    if (t->held && (all || aw_threads_now_ns() - t->held_since >= AW_HOLD_NS)) {
        job = t->held;
        t->held = t->held_tail = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    while (job) {
        aw_job_t *next = job->next;
        t->finish(t->ctx, job, w);
        job = next;
    }
}

static void *thread_main(void *arg)
{
    aw_worker_t *w = arg;
    aw_threads_t *t = w->pool;
    PyGILState_STATE g = PyGILState_Ensure();
    PyThreadState *ts = PyEval_SaveThread();
    while (wait_work(t)) {
        PyEval_RestoreThread(ts);
        aw_job_t *job;
        while ((job = take_job(t, w))) {
            aw_threads_drain(t);
            t->run(t->ctx, job, w);
            job_ended(t);
            release_held(t, w, 0);
        }
        release_held(t, w, 1);
        wake_loop(t);
        ts = PyEval_SaveThread();
    }
    PyEval_RestoreThread(ts);
    PyGILState_Release(g);
    return NULL;
}

/* A thread hands its job back to the loop. The loop is woken when this thread runs out of
 * jobs (below), not for each: it takes back what is done at every turn anyway, and a thread
 * that wakes it per job costs a context switch per request on a busy core. */
void aw_threads_complete(aw_threads_t *t, aw_job_t *job)
{
    pthread_mutex_lock(&t->lock);
    job->next = t->done;
    t->done = job;
    pthread_mutex_unlock(&t->lock);
}

/* With the GIL, out of jobs: wake the loop if it has not taken back everything (once). */
static void wake_loop(aw_threads_t *t)
{
    pthread_mutex_lock(&t->lock);
    int wake = t->done && !t->wake_pending;
    t->wake_pending |= wake;
    pthread_mutex_unlock(&t->lock);
    if (wake)
        aw_loop_wake(t->loop);
}

/* A done job whose answer goes out with the others the pool's threads finish meanwhile: sent
 * by the first thread that ends a job once the oldest waited AW_HOLD_NS, or runs out of jobs,
 * and by the loop when every thread is still in a long job then (aw_threads_completed). Written
 * one by one, as they are made, every answer costs its client (wrk, a proxy) a wake-up. One
 * list for the pool, not one per thread: threads that each wait on a database finish a job or
 * two each per millisecond, and their answers would go out in as many small bursts. */
void aw_worker_hold(aw_worker_t *w, aw_job_t *job)
{
    aw_threads_t *t = w->pool;
    job->next = NULL;
    pthread_mutex_lock(&t->lock);
    if (t->held_tail)
        t->held_tail->next = job;
    else
        t->held = job, t->held_since = aw_threads_now_ns();
    t->held_tail = job;
    pthread_mutex_unlock(&t->lock);
}

/* This thread's "Date: ...\r\n", formatted again when the second changes. */
void aw_worker_date(aw_worker_t *w, const char **date, size_t *len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != w->date_sec) {
        w->date_sec = ts.tv_sec;
        w->date_len = aw_format_date(ts.tv_sec, w->date);
    }
    *date = w->date;
    *len = w->date_len;
}

/* On an app thread, with the GIL: wait until fd can take more, the GIL released meanwhile.
 * Returns 1 when it can, 0 on the timeout, or -errno. */
int aw_worker_wait_writable(aw_worker_t *w, int fd, int timeout_ms)
{
    (void)w;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r;
    Py_BEGIN_ALLOW_THREADS
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return -errno;
    return r > 0 && (p.revents & POLLOUT) ? 1 : (r > 0 ? -EPIPE : 0);
}

/* ---- on the loop ------------------------------------------------------------------------- */

/* Queue a job; urgent ones (a suspended response to resume, a connection to clean up) go
 * first: they hold resources already. */
void aw_threads_submit(aw_threads_t *t, aw_job_t *job, int urgent)
{
    job->queued_ns = aw_threads_now_ns();
    pthread_mutex_lock(&t->lock);
    job->next = NULL;
    if (!t->head) {
        t->head = t->tail = job;
    } else if (urgent) {
        job->next = t->head;
        t->head = job;
    } else {
        t->tail->next = job;
        t->tail = job;
    }
    __atomic_fetch_add(&t->queued, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->lock); /* a thread is woken at the end of the turn: aw_threads_tick */
}

/* Jobs queued and not yet taken (a snapshot: threads only ever lower it). */
int aw_threads_backlog(aw_threads_t *t)
{
    return __atomic_load_n(&t->queued, __ATOMIC_RELAXED);
}

/* Whether some thread runs a job that began less than AW_HANDOFF_NS ago (it will take the next
 * job soon); else, when the youngest will have that age. */
static long long youngest_job(aw_threads_t *t, long long now, long long *until)
{
    long long youngest = -1;
    for (int i = 0; i < t->nthreads; i++) {
        long long since = __atomic_load_n(&t->workers[i].job_since, __ATOMIC_RELAXED);
        if (since && since > youngest)
            youngest = since;
    }
    *until = youngest < 0 ? 0 : youngest + AW_HANDOFF_NS - now;
    return youngest >= 0 && now - youngest < AW_HANDOFF_NS;
}

/* Once per loop turn, before the loop waits: wake an idle thread if jobs wait and no thread
 * runs jobs, or every running job is old (its thread is blocked in the app). A turn's jobs are
 * woken for together: one context switch for a batch, not one per request. Returns the
 * nanoseconds until it should be called again (while threads run jobs, that is soon: what
 * they hand back is taken at each turn), or -1. */
long long aw_threads_tick(aw_threads_t *t)
{
    long long wait = -1, until;
    pthread_mutex_lock(&t->lock);
    if (t->head && t->idle > 0) {
        if (t->active > 0 && youngest_job(t, aw_threads_now_ns(), &until)) {
            wait = until;
        } else {
            pthread_cond_signal(&t->work);
            wait = AW_HANDOFF_NS;
        }
    }
    if (t->active > 0 && (wait < 0 || wait > AW_TAKE_BACK_NS))
        wait = AW_TAKE_BACK_NS;
    if (t->held) { /* when they are due, should no thread send them first */
        long long due = t->held_since + AW_HOLD_NS - aw_threads_now_ns();
        due = due > 0 ? due : 0;
        if (wait < 0 || wait > due)
            wait = due;
    }
    pthread_mutex_unlock(&t->lock);
    return wait;
}

/* The jobs handed back since the last call, oldest first; then the held ones, if they waited
 * AW_HOLD_NS and no thread has sent them (every thread is in a job that lasts): the loop sends
 * those answers itself. */
aw_job_t *aw_threads_completed(aw_threads_t *t)
{
    pthread_mutex_lock(&t->lock);
    aw_job_t *list = t->done, *late = NULL;
    t->done = NULL;
    t->wake_pending = 0;
    if (t->held && aw_threads_now_ns() - t->held_since >= AW_HOLD_NS) {
        late = t->held;
        t->held = t->held_tail = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    aw_job_t *ordered = late;
    while (list) {
        aw_job_t *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    return ordered;
}

/* Drop obj later, on a thread with the GIL (closing it first for AW_DEFER_CLOSE). Safe from any
 * thread, GIL or not. */
void aw_threads_defer(aw_threads_t *t, PyObject *obj, aw_defer_t action)
{
    pthread_mutex_lock(&t->lock);
    if (t->ndeferred == t->deferred_cap) {
        int cap = t->deferred_cap ? t->deferred_cap * 2 : 64;
        aw_deferred_t *d = realloc(t->deferred, (size_t)cap * sizeof(*d));
        if (!d) { /* out of memory: the object leaks rather than being freed without the GIL */
            pthread_mutex_unlock(&t->lock);
            return;
        }
        t->deferred = d;
        t->deferred_cap = cap;
    }
    t->deferred[t->ndeferred] = (aw_deferred_t){.obj = obj, .action = action};
    __atomic_store_n(&t->ndeferred, t->ndeferred + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->lock);
}

/* With the GIL: drop (or close, then drop) what was deferred. */
void aw_threads_drain(aw_threads_t *t)
{
    if (__atomic_load_n(&t->ndeferred, __ATOMIC_RELAXED) == 0)
        return;
    pthread_mutex_lock(&t->lock);
    aw_deferred_t *items = t->deferred;
    int n = t->ndeferred;
    t->deferred = NULL;
    t->deferred_cap = 0;
    __atomic_store_n(&t->ndeferred, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < n; i++) {
        if (items[i].action == AW_DEFER_CLOSE) {
            PyObject *r = PyObject_CallMethod(items[i].obj, "close", NULL);
            if (!r)
                PyErr_WriteUnraisable(items[i].obj);
            Py_XDECREF(r);
        }
        Py_DECREF(items[i].obj);
    }
    free(items);
}

/* ---- life -------------------------------------------------------------------------------- */

/* Start n threads (the GIL held). Returns 0 or -errno. */
int aw_threads_start(aw_threads_t *t, int n, aw_job_fn run, aw_job_fn finish, void *ctx,
                     aw_loop_t *loop)
{
    *t = (aw_threads_t){.nthreads = n, .run = run, .finish = finish, .ctx = ctx, .loop = loop};
    if (!(t->workers = calloc((size_t)n, sizeof(aw_worker_t))))
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->work, NULL);
    /* the threads start with every signal blocked: signals are the loop thread's */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = 0;
    for (int i = 0; i < n && !err; i++) {
        aw_worker_t *w = &t->workers[i];
        *w = (aw_worker_t){.pool = t, .slot = i + 1};
        err = pthread_create(&w->tid, NULL, thread_main, w);
        w->started = err == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
}

/* Without the GIL: let the threads finish the queue, then wait for them until deadline_ns
 * (CLOCK_MONOTONIC; 0: no limit). Returns how many are still running (abandoned: they end
 * after their job, and the pool must then stay allocated). */
int aw_threads_stop(aw_threads_t *t, long long deadline_ns)
{
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_broadcast(&t->work);
    pthread_mutex_unlock(&t->lock);
    int left = 0;
    for (int i = 0; i < t->nthreads; i++) {
        aw_worker_t *w = &t->workers[i];
        if (!w->started)
            continue;
        if (!deadline_ns) {
            pthread_join(w->tid, NULL);
            w->started = 0;
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long left_ns = deadline_ns - aw_threads_now_ns();
        left_ns = left_ns > 0 ? left_ns : 0;
        until.tv_sec += left_ns / 1000000000LL;
        until.tv_nsec += left_ns % 1000000000LL;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        if (pthread_timedjoin_np(w->tid, NULL, &until) == 0)
            w->started = 0;
        else
            left++;
    }
    return left;
}

/* Every thread has ended; the GIL is held (what was deferred is dropped). */
void aw_threads_free(aw_threads_t *t)
{
    aw_threads_drain(t);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->work);
    free(t->workers);
    free(t->deferred);
    *t = (aw_threads_t){.nthreads = 0};
}
