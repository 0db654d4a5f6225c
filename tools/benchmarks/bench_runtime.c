/*
 * bench_runtime.c - the demo runtime's throughput, built twice: against the
 * instrumented runtime with the recorder on (bench-runtime-on), and against a
 * copy of the runtime compiled with every hook removed (bench-runtime-off,
 * -DFLIGHTREC_DISABLE plus hooks_off.h).
 *
 * Workload: TASKS tasks spawned from outside the runtime, each polled POLLS
 * times. Each poll does WORK iterations of a dependent multiply chain (the
 * script calibrates WORK to ~2 us, or 0 for empty polls); a poll that is not
 * the last one registers a waker and an await point and wakes itself through
 * the waker, as a task yielding to an I/O source would. Hooks per pending
 * poll: poll_begin, waker_clone, await, wake, waker_drop, poll_end.
 *
 *   bench-runtime-{on,off} [--tasks N] [--polls K] [--work ITERS] [--workers W]
 *   bench-runtime-{on,off} --calibrate NS     prints ITERS for NS of work
 * Prints "elapsed_ns N" (wall), "cpu_ns N" (user + system time of the whole
 * process over the same batch) and "polls_per_s N". tools/bench compares
 * cpu_ns: on a shared 2-core machine, other processes stealing a core swing
 * the wall time by +-20 % while the CPU time the workload needs stays put.
 */
#include <flightrec.h>
#include <pthread.h>
#include <stdio.h>
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

int main(int argc, char **argv)
{
    int calibrate = bench_arg_int(argc, argv, "--calibrate", 0);
    if (calibrate > 0) {
        /* Median of 9 timings of a million iterations. */
        double per[9];
        for (int i = 0; i < 9; i++) {
            uint64_t t0 = bench_now_ns();
            work(1000000);
            per[i] = (double)(bench_now_ns() - t0) / 1e6;
        }
        printf("%.0f\n", calibrate / bench_median(per, 9));
        return 0;
    }
    unsigned ntasks = (unsigned)bench_arg_int(argc, argv, "--tasks", 2000);
    polls_per_task = (unsigned)bench_arg_int(argc, argv, "--polls", 50);
    work_iters = (unsigned)bench_arg_int(argc, argv, "--work", 0);
    unsigned workers = (unsigned)bench_arg_int(argc, argv, "--workers", 2);
    if (ntasks < 1 || polls_per_task < 1) {
        fputs("usage: bench-runtime [--tasks N] [--polls K] [--work ITERS] [--workers W]\n",
              stderr);
        return 2;
    }
#ifndef FLIGHTREC_DISABLE
    struct fr_config cfg = {.dump_dir = bench_arg_str(argc, argv, "--dir", NULL)};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-runtime: fr_init: %s\n", strerror(-rc));
        return 1;
    }
#endif
    struct rt_runtime *rt = rt_create(workers);
    uint64_t cpu;
    run_batch(rt, ntasks / 10 + 1, &cpu); /* warm up: rings, allocator, queues */
    uint64_t ns = run_batch(rt, ntasks, &cpu);
    rt_destroy(rt);
#ifndef FLIGHTREC_DISABLE
    fr_shutdown();
#endif
    printf("elapsed_ns %llu\ncpu_ns %llu\npolls_per_s %.0f\n", (unsigned long long)ns,
           (unsigned long long)cpu,
           (double)ntasks * polls_per_task / ((double)ns / 1e9));
    return 0;
}
