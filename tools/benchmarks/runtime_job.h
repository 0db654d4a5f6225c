/*
 * runtime_job.h - the demo-runtime benchmarks' workload, shared by
 * bench_runtime.c (one variant per process) and runtime_module.c (both
 * variants in one process, bench_runtime_ab.c). Included once per program
 * or module; compiled against the instrumented runtime, or with every hook
 * removed (hooks_off.h), by the build.
 *
 * TASKS tasks are spawned from outside the runtime, each polled POLLS times.
 * Each poll does WORK iterations of a dependent multiply chain (calibrated
 * to ~2 us by the caller, or 0 for empty polls); a poll that is not the last
 * one registers a waker and an await point and wakes itself through the
 * waker, as a task yielding to an I/O source would. Hooks per pending poll:
 * poll_begin, waker_clone, await, wake, waker_drop, poll_end.
 */
#ifndef FR_BENCH_RUNTIME_JOB_H
#define FR_BENCH_RUNTIME_JOB_H

#include <flightrec.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bench.h"
#include "runtime.h"

static unsigned work_iters, polls_per_task, tasks_total;
static __thread uint64_t sink;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static unsigned tasks_done;

static void work(unsigned n)
{
    uint64_t x = sink;
    for (unsigned i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        __asm__ volatile("" : "+r"(x));
    }
    sink = x;
}

struct job {
    unsigned left;
};

static enum rt_poll job_poll(struct rt_task *self, void *state)
{
    struct job *j = state;
    work(work_iters);
    if (--j->left == 0) {
        pthread_mutex_lock(&done_lock);
        if (++tasks_done == tasks_total)
            pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&done_lock);
        return RT_READY;
    }
    struct rt_task *waker = rt_waker_clone(self);
    FR_AWAIT(rt_task_id(self), "yield");
    rt_waker_wake(waker);
    return RT_PENDING;
}

static uint64_t cpu_now_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t run_batch(struct rt_runtime *rt, unsigned ntasks, uint64_t *cpu_ns)
{
    pthread_mutex_lock(&done_lock);
    tasks_done = 0;
    tasks_total = ntasks;
    pthread_mutex_unlock(&done_lock);
    uint64_t t0 = bench_now_ns(), c0 = cpu_now_ns();
    for (unsigned i = 0; i < ntasks; i++) {
        struct job *j = malloc(sizeof(*j));
        if (!j)
            abort();
        j->left = polls_per_task;
        rt_spawn(rt, "job", job_poll, j, free);
    }
    pthread_mutex_lock(&done_lock);
    while (tasks_done < tasks_total)
        pthread_cond_wait(&done_cv, &done_lock);
    pthread_mutex_unlock(&done_lock);
    *cpu_ns = cpu_now_ns() - c0;
    return bench_now_ns() - t0;
}

#endif /* FR_BENCH_RUNTIME_JOB_H */
