/*
 * runtime.c - tasks, wakers and worker threads of the demo runtime, and where
 * each flightrec hook goes in such a runtime.
 *
 * Every task has a small scheduling state machine guarded by a per-task
 * mutex; workers take tasks from their own local queue (tasks spawned or woken
 * by that worker) or from the shared injector queue (tasks spawned or woken by
 * other threads), and park on a condition variable when both are empty. There
 * is deliberately no work stealing: a task queued on a worker waits for that
 * worker, which keeps the code short and is exactly how one blocking poll
 * starves the tasks queued behind it (the bug the demo plants with
 * --bug-blocking).
 *
 * The instrumentation rule this file follows: each hook about a task is
 * recorded while holding that task's lock, in the same critical section as the
 * state change it reports. flightrec merges the per-thread rings by timestamp,
 * so this keeps the recorded order equal to the real order (a wake is never
 * recorded after the poll it caused has begun, and nothing about a task is
 * recorded after its fr_drop). A lock-free runtime gets the same guarantee by
 * recording before the atomic operation that publishes a change.
 *
 * Task states (under task->lock):
 *
 *      spawn                      worker pops it
 *   ---------> SCHEDULED ----------------------------> RUNNING
 *                ^   ^                                 |   |  \  returns READY
 *      wake      |   |  poll returns PENDING,          |   |   `--------------> COMPLETE
 *   IDLE --------'   '-------------------- NOTIFIED <--'   |  (also from NOTIFIED)
 *    ^                   woken during the poll      wake   |
 *    '-----------------------------------------------------'
 *                 poll returns PENDING, no wake came
 *
 * A wake in SCHEDULED or NOTIFIED is absorbed (the task will be polled anyway);
 * a wake in COMPLETE does nothing.
 */
#include "runtime.h"

#include <flightrec.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum task_state { IDLE, SCHEDULED, RUNNING, NOTIFIED, COMPLETE };

struct rt_task {
    uint64_t id;
    const char *name;
    struct rt_runtime *rt;
    rt_poll_fn poll;
    void *state;
    void (*free_state)(void *);
    pthread_mutex_t lock; /* guards `sched` and orders the hooks about this task */
    enum task_state sched;
    atomic_uint refs;      /* 1 until COMPLETE, plus 1 per waker; 0 frees the task */
    struct rt_task *next;  /* run-queue link; meaningful only while SCHEDULED */
    struct rt_timer sleep; /* rt_sleep_until's timer; its arg is a waker while armed */
};

/* A FIFO of SCHEDULED tasks linked through task->next. */
struct run_queue {
    struct rt_task *head, *tail;
};

/* Each worker on cache lines of its own (128 bytes: a line and the one the
 * adjacent-line prefetcher pairs with it): a worker writes its queue and
 * ticks at every task, and two workers sharing a line would make each
 * other's queue operations miss, by an amount that depended on where the
 * allocator put the array. */
struct rt_worker {
    struct rt_runtime *rt;
    unsigned index;
    pthread_t thread;
    struct run_queue local; /* touched only by this worker's thread */
    unsigned ticks;         /* tasks taken so far; paces the injector checks */
} __attribute__((aligned(128)));

struct rt_runtime {
    pthread_mutex_t lock;      /* guards injector, parked, started, shutdown */
    pthread_cond_t idle_cv;    /* parked workers wait here */
    pthread_cond_t started_cv; /* rt_create waits here for the workers to start */
    struct run_queue injector;
    unsigned parked;
    unsigned started; /* workers that are up and named; <= nworkers */
    bool shutdown;

    unsigned nworkers;
    struct rt_worker *workers;
    struct rt__timers timers;

    atomic_uint_fast64_t next_id;
    atomic_long live;
};

/*
 * A worker with a long local queue still looks at the injector every
 * INJECTOR_INTERVAL tasks so that tasks woken by other threads are not
 * starved by a busy worker (tokio uses 61 for the same purpose).
 */
#ifndef INJECTOR_INTERVAL
#define INJECTOR_INTERVAL 31
#endif

static __thread struct rt_worker *tls_worker; /* the worker running on this thread */
static __thread struct rt_task *tls_current;  /* the task it is polling */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fputs("runtime: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Zeroed room for @n objects of @size bytes, aligned to @align. */
static void *xcalloc_aligned(size_t align, size_t n, size_t size)
{
    void *p;
    if (posix_memalign(&p, align, n * size) != 0) {
        fputs("runtime: out of memory\n", stderr);
        abort();
    }
    return memset(p, 0, n * size);
}

uint64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void queue_push(struct run_queue *q, struct rt_task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static struct rt_task *queue_pop(struct run_queue *q)
{
    struct rt_task *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        t->next = NULL;
    }
    return t;
}

/*
 * Put a task that just became SCHEDULED on a run queue. On one of this
 * runtime's workers it goes to the local queue: that worker is awake and will
 * get to it. Anywhere else (the timer thread, main, another runtime) it goes
 * to the injector, and one parked worker is woken to take it.
 */
static void schedule(struct rt_task *t)
{
    struct rt_runtime *rt = t->rt;
    if (tls_worker && tls_worker->rt == rt) {
        queue_push(&tls_worker->local, t);
        return;
    }
    pthread_mutex_lock(&rt->lock);
    queue_push(&rt->injector, t);
    if (rt->parked > 0)
        pthread_cond_signal(&rt->idle_cv);
    pthread_mutex_unlock(&rt->lock);
}

static void task_unref(struct rt_task *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->free_state)
        t->free_state(t->state);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

uint64_t rt_task_id(const struct rt_task *task)
{
    return task->id;
}

struct rt_runtime *rt_task_runtime(const struct rt_task *task)
{
    return task->rt;
}

struct rt_task *rt_current(void)
{
    return tls_current;
}

long rt_live_tasks(const struct rt_runtime *rt)
{
    return atomic_load(&rt->live);
}

uint64_t rt_spawn(struct rt_runtime *rt, const char *name, rt_poll_fn poll, void *state,
                  void (*free_state)(void *))
{
    struct rt_task *t = xcalloc(1, sizeof(*t));
    struct rt_task *parent = tls_current;
    uint64_t id;

    t->id = atomic_fetch_add(&rt->next_id, 1);
    t->name = name;
    t->rt = rt;
    t->poll = poll;
    t->state = state;
    t->free_state = free_state;
    pthread_mutex_init(&t->lock, NULL);
    t->sched = SCHEDULED;
    atomic_init(&t->refs, 1);
    rt_timer_init(&t->sleep, NULL, NULL);
    atomic_fetch_add(&rt->live, 1);

    /* Hook: fr_spawn, before the task is on a queue where a worker could poll it. */
    fr_spawn(t->id, parent && parent->rt == rt ? parent->id : 0, name);
    id = t->id; /* once queued, @t may run, finish and be freed at any moment */
    schedule(t);
    return id;
}

/* ---- wakers ---------------------------------------------------------------- */

struct rt_task *rt_waker_clone(struct rt_task *task)
{
    atomic_fetch_add_explicit(&task->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&task->lock);
    if (task->sched != COMPLETE)
        fr_waker_clone(task->id); /* Hook: one more reference to the waker. */
    pthread_mutex_unlock(&task->lock);
    return task;
}

void rt_waker_drop(struct rt_task *waker)
{
    pthread_mutex_lock(&waker->lock);
    /* Hook: one reference fewer. Not after fr_drop: the task instance is gone. */
    if (waker->sched != COMPLETE)
        fr_waker_drop(waker->id);
    pthread_mutex_unlock(&waker->lock);
    task_unref(waker);
}

/*
 * The one place a task is woken. @consume says that the caller's waker is
 * given up in the same step; its fr_waker_drop is then recorded right after
 * fr_wake, under the lock, so a waker count that reaches zero this way always
 * has its wake recorded first.
 */
static void wake(struct rt_task *t, bool consume)
{
    bool run = false;

    pthread_mutex_lock(&t->lock);
    if (t->sched != COMPLETE) {
        fr_wake(t->id); /* Hook: from any thread, and from inside a poll. */
        if (consume)
            fr_waker_drop(t->id);
        if (t->sched == IDLE) {
            t->sched = SCHEDULED;
            run = true;
        } else if (t->sched == RUNNING) {
            t->sched = NOTIFIED; /* the worker re-queues it when the poll returns */
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (run)
        schedule(t);
    if (consume)
        task_unref(t);
}

void rt_waker_wake(struct rt_task *waker)
{
    wake(waker, true);
}

void rt_waker_wake_by_ref(struct rt_task *waker)
{
    wake(waker, false);
}

/* ---- sleeping ------------------------------------------------------------- */

static void sleep_fired(void *arg)
{
    rt_waker_wake(arg);
}

void rt_sleep_until(struct rt_task *self, uint64_t deadline_ns)
{
    rt_timer_init(&self->sleep, sleep_fired, rt_waker_clone(self));
    rt_timer_start(self->rt, &self->sleep, deadline_ns);
}

/* ---- workers -------------------------------------------------------------- */

/*
 * Poll @t once on worker @w and move it to its next state. The poll itself
 * runs without the task lock, so wakes (from timers, other tasks, or the poll
 * itself) can arrive during it; they turn RUNNING into NOTIFIED.
 */
static void run_task(struct rt_worker *w, struct rt_task *t)
{
    enum rt_poll r;

    pthread_mutex_lock(&t->lock);
    t->sched = RUNNING;
    fr_poll_begin(t->id); /* Hook: right before the task's code runs. */
    pthread_mutex_unlock(&t->lock);

    tls_current = t;
    r = t->poll(t, t->state); /* a pending task calls FR_AWAIT in here */
    tls_current = NULL;

    pthread_mutex_lock(&t->lock);
    fr_poll_end(t->id, r == RT_READY ? FR_READY : FR_PENDING); /* Hook: right after. */
    if (r == RT_READY) {
        t->sched = COMPLETE;
        fr_drop(t->id); /* Hook: the task is finished; wakes from now on are no-ops. */
        pthread_mutex_unlock(&t->lock);
        atomic_fetch_sub(&t->rt->live, 1);
        task_unref(t); /* the runtime's own reference */
        return;
    }
    if (t->sched == NOTIFIED) {
        t->sched = SCHEDULED;
        pthread_mutex_unlock(&t->lock);
        queue_push(&w->local, t);
        return;
    }
    t->sched = IDLE;
    pthread_mutex_unlock(&t->lock);
}

/*
 * Next task for worker @w: its local queue first, the injector when the local
 * queue is empty or every INJECTOR_INTERVAL tasks; parks when both are empty.
 * Return: a SCHEDULED task, or NULL when the runtime shuts down.
 */
static struct rt_task *next_task(struct rt_worker *w)
{
    struct rt_runtime *rt = w->rt;
    struct rt_task *t = NULL;
    bool parked = false;

    if (++w->ticks % INJECTOR_INTERVAL != 0 && (t = queue_pop(&w->local)))
        return t;

    pthread_mutex_lock(&rt->lock);
    while (!rt->shutdown) {
        if ((t = queue_pop(&rt->injector)) || (t = queue_pop(&w->local)))
            break;
        if (!parked) {
            fr_park(); /* Hook: this worker goes idle. */
            parked = true;
        }
        rt->parked++;
        pthread_cond_wait(&rt->idle_cv, &rt->lock);
        rt->parked--;
    }
    pthread_mutex_unlock(&rt->lock);
    if (parked)
        fr_unpark(); /* Hook: it resumes, before it polls anything. */
    return t;
}

static void *worker_main(void *arg)
{
    struct rt_worker *w = arg;
    char name[32];
    struct rt_task *t;

    snprintf(name, sizeof(name), "worker-%u", w->index);
    fr_thread_name(name); /* Hook: label this thread in dumps (and get its ring now). */
    tls_worker = w;

    pthread_mutex_lock(&w->rt->lock);
    w->rt->started++;
    pthread_cond_signal(&w->rt->started_cv);
    pthread_mutex_unlock(&w->rt->lock);
    while ((t = next_task(w)))
        run_task(w, t);
    tls_worker = NULL;
    return NULL;
}

struct rt_runtime *rt_create(unsigned workers)
{
    struct rt_runtime *rt = xcalloc(1, sizeof(*rt));

    if (workers == 0)
        workers = 1;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->idle_cv, NULL);
    pthread_cond_init(&rt->started_cv, NULL);
    atomic_init(&rt->next_id, 1);
    atomic_init(&rt->live, 0);
    rt->nworkers = workers;
    rt->workers = xcalloc_aligned(_Alignof(struct rt_worker), workers, sizeof(*rt->workers));
    rt__timers_start(&rt->timers);
    for (unsigned i = 0; i < workers; i++) {
        struct rt_worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fputs("runtime: cannot start a worker thread\n", stderr);
            abort();
        }
    }
    /*
     * Return only once every worker runs: a task spawned right away would
     * otherwise wait for thread creation, and a recording would show it
     * queued while no worker was parked - starvation that is not there.
     */
    pthread_mutex_lock(&rt->lock);
    while (rt->started < workers)
        pthread_cond_wait(&rt->started_cv, &rt->lock);
    pthread_mutex_unlock(&rt->lock);
    return rt;
}

void rt_destroy(struct rt_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    rt->shutdown = true;
    pthread_cond_broadcast(&rt->idle_cv);
    pthread_mutex_unlock(&rt->lock);
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i].thread, NULL);
    rt__timers_stop(&rt->timers);
    pthread_cond_destroy(&rt->idle_cv);
    pthread_cond_destroy(&rt->started_cv);
    pthread_mutex_destroy(&rt->lock);
    free(rt->workers);
    free(rt);
}

struct rt__timers *rt__timers_of(struct rt_runtime *rt)
{
    return &rt->timers;
}
