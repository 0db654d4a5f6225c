/*
 * bench_runtime.c - the demo runtime's throughput, built twice: against the
 * instrumented runtime with the recorder on (bench-runtime-on), and against a
 * copy of the runtime compiled with every hook removed (bench-runtime-off,
 * -DFLIGHTREC_DISABLE plus hooks_off.h). The workload is runtime_job.h's.
 * bench-runtime-ab runs both variants in one process instead.
 *
 *   bench-runtime-{on,off} [--tasks N] [--polls K] [--work ITERS] [--workers W]
 *   bench-runtime-{on,off} --calibrate NS     prints ITERS for NS of work
 * Prints "elapsed_ns N" (wall), "cpu_ns N" (user + system time of the whole
 * process over the same batch) and "polls_per_s N". tools/bench compares
 * cpu_ns: on a shared 2-core machine, other processes stealing a core swing
 * the wall time by +-20 % while the CPU time the workload needs stays put.
 */
#include <stdio.h>

#include "runtime_job.h"

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
