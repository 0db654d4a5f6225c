/*
 * bench_runtime_ab.c - the demo runtime's cost of recording, measured in one
 * process: the module built against the instrumented runtime, the one built
 * with every hook compiled out, and a second copy of that one (the twin;
 * runtime_module.c) are loaded, and their batches take turns, ROUNDS
 * times, which one goes first rotating too. Each round gives the ratio of
 * the on batch's CPU time (user + system of the whole process over the
 * batch) to the off batch's, and the twin's to the off batch's: the twin
 * runs the same code as off, so its ratio is the method's own noise, shown
 * beside the figure. A fourth module, floor (hooks_floor.h), only reads the
 * clock and stores 16 bytes inline at each poll's begin and end: its ratio
 * to off is what any recorder that times polls would cost here, the
 * physical limit of the on ratio. On this shared 2-vCPU VM the host's speed drifts by
 * more than the effect between two processes started seconds apart, while
 * batches a few tens of milliseconds apart see the same host. The recorder
 * is on (fr_init) for the whole run; the off modules call no hook.
 *
 *   bench-runtime-ab [--rounds N] [--tasks N] [--polls K] [--work ITERS]
 *                    [--workers W] [--dir DUMPDIR]
 * Prints "round I on_cpu_ns A off_cpu_ns B twin_cpu_ns C floor_cpu_ns D" per
 * round, then
 * "overhead_pct_median X", "overhead_pct_min X", "overhead_pct_max X",
 * "overhead_pct_p25 X", "overhead_pct_p75 X" (CPU time),
 * "wall_overhead_pct_median X", "control_pct_median X",
 * "control_pct_p25 X", "control_pct_p75 X" (the twin against off, CPU
 * time), and "floor_pct_median X", "floor_pct_p25 X", "floor_pct_p75 X"
 * (floor against off, CPU time). The modules are looked for next to the
 * executable.
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
    char path[PATH_MAX + 64];
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
    enum { ON, OFF, TWIN, FLOOR, NVARIANTS };
    static const char *const names[NVARIANTS] = {
        "bench-runtime-mod-on.so", "bench-runtime-mod-off.so", "bench-runtime-mod-twin.so",
        "bench-runtime-mod-floor.so"};
    struct variant v[NVARIANTS];
    for (int k = 0; k < NVARIANTS; k++)
        if (load(&v[k], dir, names[k]))
            return 1;
    double *cpu = calloc(rounds, sizeof(*cpu)), *wall = calloc(rounds, sizeof(*wall));
    double *control = calloc(rounds, sizeof(*control)), *floor = calloc(rounds, sizeof(*floor));
    if (!cpu || !wall || !control || !floor)
        return 1;
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t cpu_ns[NVARIANTS], wall_ns[NVARIANTS];
        for (int j = 0; j < NVARIANTS; j++) {
            int k = (int)((i + (unsigned)j) % NVARIANTS); /* who goes first rotates */
            wall_ns[k] = v[k].batch(workers, ntasks, polls, work, &cpu_ns[k]);
        }
        cpu[i] = pct(cpu_ns[ON], cpu_ns[OFF]);
        wall[i] = pct(wall_ns[ON], wall_ns[OFF]);
        control[i] = pct(cpu_ns[TWIN], cpu_ns[OFF]);
        floor[i] = pct(cpu_ns[FLOOR], cpu_ns[OFF]);
        printf("round %u on_cpu_ns %llu off_cpu_ns %llu twin_cpu_ns %llu floor_cpu_ns %llu\n", i,
               (unsigned long long)cpu_ns[ON], (unsigned long long)cpu_ns[OFF],
               (unsigned long long)cpu_ns[TWIN], (unsigned long long)cpu_ns[FLOOR]);
    }
    for (int k = 0; k < NVARIANTS; k++)
        v[k].stop();
    fr_shutdown();
    double wall_median = bench_median(wall, rounds); /* each sorts */
    double cpu_median = bench_median(cpu, rounds);
    double control_median = bench_median(control, rounds);
    double floor_median = bench_median(floor, rounds);
    printf("overhead_pct_median %.3f\noverhead_pct_min %.3f\noverhead_pct_max %.3f\n"
           "overhead_pct_p25 %.3f\noverhead_pct_p75 %.3f\nwall_overhead_pct_median %.3f\n"
           "control_pct_median %.3f\ncontrol_pct_p25 %.3f\ncontrol_pct_p75 %.3f\n",
           cpu_median, cpu[0], cpu[rounds - 1], quantile(cpu, rounds, 0.25),
           quantile(cpu, rounds, 0.75), wall_median, control_median,
           quantile(control, rounds, 0.25), quantile(control, rounds, 0.75));
    printf("floor_pct_median %.3f\nfloor_pct_p25 %.3f\nfloor_pct_p75 %.3f\n", floor_median,
           quantile(floor, rounds, 0.25), quantile(floor, rounds, 0.75));
    free(floor);
    free(control);
    free(cpu);
    free(wall);
    return 0;
}
