/*
 * bench_runtime_ab.c - the demo runtime's cost of recording, measured in one
 * process: the module built against the instrumented runtime and the one
 * built with every hook compiled out (runtime_module.c) are both loaded, and
 * their batches alternate, ROUNDS times, which one goes first alternating
 * too. Each round gives one ratio of CPU time (user + system of the whole
 * process over the batch): on this shared 2-vCPU VM the host's speed drifts
 * by more than the effect between two processes started seconds apart,
 * while two batches a few tens of milliseconds apart see the same host.
 * The recorder is on (fr_init) for the whole run; the off module calls no
 * hook.
 *
 *   bench-runtime-ab [--rounds N] [--tasks N] [--polls K] [--work ITERS]
 *                    [--workers W] [--dir DUMPDIR]
 * Prints "round I on_cpu_ns A off_cpu_ns B on_wall_ns C off_wall_ns D" per
 * round, then "overhead_pct_median X", "overhead_pct_min X",
 * "overhead_pct_max X", "overhead_pct_p25 X", "overhead_pct_p75 X" (CPU
 * time) and "wall_overhead_pct_median X". The modules are looked for next
 * to the executable.
 */
#include <dlfcn.h>
#include <flightrec.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "runtime_module.h"

struct variant {
    void *handle;
    bench_runtime_batch_fn batch;
    bench_runtime_stop_fn stop;
};

static int load(struct variant *v, const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* RTLD_LOCAL and a module linked -Bsymbolic: each module's runtime
     * calls its own copy of the runtime's functions */
    v->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!v->handle) {
        fprintf(stderr, "bench-runtime-ab: %s\n", dlerror());
        return -1;
    }
    v->batch = (bench_runtime_batch_fn)dlsym(v->handle, "bench_runtime_batch");
    v->stop = (bench_runtime_stop_fn)dlsym(v->handle, "bench_runtime_stop");
    if (!v->batch || !v->stop) {
        fprintf(stderr, "bench-runtime-ab: %s: no bench_runtime_batch/stop\n", path);
        return -1;
    }
    return 0;
}

static double pct(uint64_t on, uint64_t off)
{
    return ((double)on - (double)off) / (double)off * 100.0;
}

static double quantile(const double *sorted, size_t n, double q)
{
    return sorted[(size_t)(q * (double)(n - 1) + 0.5)];
}

int main(int argc, char **argv)
{
    unsigned rounds = (unsigned)bench_arg_int(argc, argv, "--rounds", 40);
    unsigned ntasks = (unsigned)bench_arg_int(argc, argv, "--tasks", 1000);
    unsigned polls = (unsigned)bench_arg_int(argc, argv, "--polls", 50);
    unsigned work = (unsigned)bench_arg_int(argc, argv, "--work", 0);
    unsigned workers = (unsigned)bench_arg_int(argc, argv, "--workers", 2);
    if (rounds < 1 || ntasks < 1 || polls < 1) {
        fputs("usage: bench-runtime-ab [--rounds N] [--tasks N] [--polls K] [--work ITERS] "
              "[--workers W] [--dir DUMPDIR]\n",
              stderr);
        return 2;
    }
    char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (n <= 0) {
        perror("bench-runtime-ab: /proc/self/exe");
        return 1;
    }
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    struct fr_config cfg = {.dump_dir = bench_arg_str(argc, argv, "--dir", NULL)};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-runtime-ab: fr_init: %s\n", strerror(-rc));
        return 1;
    }
    struct variant on, off;
    if (load(&on, dir, "bench-runtime-mod-on.so") || load(&off, dir, "bench-runtime-mod-off.so"))
        return 1;
    double *cpu = calloc(rounds, sizeof(*cpu)), *wall = calloc(rounds, sizeof(*wall));
    if (!cpu || !wall)
        return 1;
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t on_cpu, off_cpu, on_wall, off_wall;
        if (i % 2 == 0) {
            on_wall = on.batch(workers, ntasks, polls, work, &on_cpu);
            off_wall = off.batch(workers, ntasks, polls, work, &off_cpu);
        } else {
            off_wall = off.batch(workers, ntasks, polls, work, &off_cpu);
            on_wall = on.batch(workers, ntasks, polls, work, &on_cpu);
        }
        cpu[i] = pct(on_cpu, off_cpu);
        wall[i] = pct(on_wall, off_wall);
        printf("round %u on_cpu_ns %llu off_cpu_ns %llu on_wall_ns %llu off_wall_ns %llu\n", i,
               (unsigned long long)on_cpu, (unsigned long long)off_cpu,
               (unsigned long long)on_wall, (unsigned long long)off_wall);
    }
    on.stop();
    off.stop();
    fr_shutdown();
    double wall_median = bench_median(wall, rounds); /* sorts */
    double cpu_median = bench_median(cpu, rounds);
    printf("overhead_pct_median %.3f\noverhead_pct_min %.3f\noverhead_pct_max %.3f\n"
           "overhead_pct_p25 %.3f\noverhead_pct_p75 %.3f\nwall_overhead_pct_median %.3f\n",
           cpu_median, cpu[0], cpu[rounds - 1], quantile(cpu, rounds, 0.25),
           quantile(cpu, rounds, 0.75), wall_median);
    free(cpu);
    free(wall);
    return 0;
}
