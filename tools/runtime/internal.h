/*
 * internal.h - what the demo runtime's files share and its users do not see:
 * the timer thread's heap, which runtime.c owns inside struct rt_runtime and
 * timer.c drives. Nothing here is part of the runtime's interface.
 */
#ifndef FLIGHTREC_DEMO_RUNTIME_INTERNAL_H
#define FLIGHTREC_DEMO_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime.h"

/*
 * The armed timers of one runtime: a binary min-heap on deadline_ns.
 * heap[i]->index == i for every armed timer; len <= cap.
 */
struct rt__timers {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cv;    /* CLOCK_MONOTONIC; signalled when the first deadline moves, on stop */
    struct rt_timer **heap;
    size_t len, cap;
    bool stop;
    pthread_t thread;
};

/* rt__timers_start - initialise @tm and start the timer thread ("timer"). */
void rt__timers_start(struct rt__timers *tm);

/* rt__timers_stop - stop and join the timer thread; armed timers never fire. */
void rt__timers_stop(struct rt__timers *tm);

/* rt__timers_of - the timers of @rt. */
struct rt__timers *rt__timers_of(struct rt_runtime *rt);

#endif /* FLIGHTREC_DEMO_RUNTIME_INTERNAL_H */
