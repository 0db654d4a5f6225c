/*
 * timer.c - deadlines for the demo runtime: a binary min-heap of armed timers
 * and one thread that sleeps until the earliest deadline and runs its
 * callback. Callbacks run on the timer thread without any runtime lock held,
 * and typically wake a task (rt_sleep_until) or run a timeout path; the wakes
 * they make land in the injector queue. Timers are owned by their users, so
 * arming one allocates nothing beyond an occasional growth of the heap.
 */
#include <flightrec.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

void rt_timer_init(struct rt_timer *timer, void (*fn)(void *arg), void *arg)
{
    timer->deadline_ns = 0;
    timer->fn = fn;
    timer->arg = arg;
    timer->index = -1;
}

static void heap_set(struct rt__timers *tm, size_t i, struct rt_timer *t)
{
    tm->heap[i] = t;
    t->index = (long)i;
}

static void sift_up(struct rt__timers *tm, size_t i)
{
    struct rt_timer *t = tm->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (tm->heap[parent]->deadline_ns <= t->deadline_ns)
            break;
        heap_set(tm, i, tm->heap[parent]);
        i = parent;
    }
    heap_set(tm, i, t);
}

static void sift_down(struct rt__timers *tm, size_t i)
{
    struct rt_timer *t = tm->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= tm->len)
            break;
        if (child + 1 < tm->len && tm->heap[child + 1]->deadline_ns < tm->heap[child]->deadline_ns)
            child++;
        if (t->deadline_ns <= tm->heap[child]->deadline_ns)
            break;
        heap_set(tm, i, tm->heap[child]);
        i = child;
    }
    heap_set(tm, i, t);
}

/* Take the armed timer at heap slot @i out of the heap; it is disarmed (-1). */
static void heap_remove(struct rt__timers *tm, size_t i)
{
    struct rt_timer *t = tm->heap[i];
    struct rt_timer *last = tm->heap[--tm->len];

    t->index = -1;
    if (i == tm->len)
        return;
    heap_set(tm, i, last);
    sift_down(tm, i);
    sift_up(tm, (size_t)last->index);
}

void rt_timer_start(struct rt_runtime *rt, struct rt_timer *timer, uint64_t deadline_ns)
{
    struct rt__timers *tm = rt__timers_of(rt);

    pthread_mutex_lock(&tm->lock);
    if (tm->len == tm->cap) {
        size_t cap = tm->cap ? 2 * tm->cap : 64;
        struct rt_timer **heap = realloc(tm->heap, cap * sizeof(*heap));
        if (!heap) {
            fputs("runtime: out of memory\n", stderr);
            abort();
        }
        tm->heap = heap;
        tm->cap = cap;
    }
    timer->deadline_ns = deadline_ns;
    heap_set(tm, tm->len++, timer);
    sift_up(tm, (size_t)timer->index);
    if (timer->index == 0)
        pthread_cond_signal(&tm->cv); /* the earliest deadline moved: re-arm the wait */
    pthread_mutex_unlock(&tm->lock);
}

bool rt_timer_cancel(struct rt_runtime *rt, struct rt_timer *timer)
{
    struct rt__timers *tm = rt__timers_of(rt);
    bool armed;

    pthread_mutex_lock(&tm->lock);
    armed = timer->index >= 0;
    if (armed)
        heap_remove(tm, (size_t)timer->index);
    pthread_mutex_unlock(&tm->lock);
    return armed;
}

static void *timer_main(void *arg)
{
    struct rt__timers *tm = arg;

    fr_thread_name("timer"); /* its wakes show up on this thread in dumps */
    pthread_mutex_lock(&tm->lock);
    while (!tm->stop) {
        if (tm->len == 0) {
            pthread_cond_wait(&tm->cv, &tm->lock);
            continue;
        }
        struct rt_timer *t = tm->heap[0];
        uint64_t now = rt_now_ns();
        if (t->deadline_ns > now) {
            struct timespec ts = {
                .tv_sec = (time_t)(t->deadline_ns / 1000000000u),
                .tv_nsec = (long)(t->deadline_ns % 1000000000u),
            };
            pthread_cond_timedwait(&tm->cv, &tm->lock, &ts);
            continue;
        }
        /*
         * Disarm before the callback runs, and do not touch @t afterwards: the
         * callback may free it (by dropping the last waker of its task) or its
         * owner may re-arm it once woken.
         */
        void (*fn)(void *) = t->fn;
        void *fn_arg = t->arg;
        heap_remove(tm, 0);
        pthread_mutex_unlock(&tm->lock);
        fn(fn_arg);
        pthread_mutex_lock(&tm->lock);
    }
    pthread_mutex_unlock(&tm->lock);
    return NULL;
}

void rt__timers_start(struct rt__timers *tm)
{
    pthread_condattr_t attr;

    pthread_mutex_init(&tm->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&tm->cv, &attr);
    pthread_condattr_destroy(&attr);
    tm->heap = NULL;
    tm->len = tm->cap = 0;
    tm->stop = false;
    if (pthread_create(&tm->thread, NULL, timer_main, tm) != 0) {
        fputs("runtime: cannot start the timer thread\n", stderr);
        abort();
    }
}

void rt__timers_stop(struct rt__timers *tm)
{
    pthread_mutex_lock(&tm->lock);
    tm->stop = true;
    pthread_cond_signal(&tm->cv);
    pthread_mutex_unlock(&tm->lock);
    pthread_join(tm->thread, NULL);
    for (size_t i = 0; i < tm->len; i++)
        tm->heap[i]->index = -1;
    free(tm->heap);
    pthread_cond_destroy(&tm->cv);
    pthread_mutex_destroy(&tm->lock);
}
