/*
 * bench_runtime_ab.c - the demo runtime's cost of recording, measured in one
 * process. Four modules (runtime_module.c) are loaded: the one built against
 * the instrumented runtime (on), the one built with every hook compiled out
 * (off), a second copy of that one (the twin), and one whose poll begin and
 * end only read the clock and store 16 bytes inline (the floor,
 * hooks_floor.h). Their batches take turns, ROUNDS times, which one goes
 * first rotating too. Each round gives the ratio of the on batch's CPU time
 * (user + system of the whole process over the batch) to the off batch's,
 * and the twin's and the floor's to the off batch's: the twin runs the same
 * code as off, so its ratio is the method's own noise, shown beside the
 * figure; the floor's is what any recorder that times polls would cost here.
 * On this shared 2-vCPU VM the host's speed drifts by more than the effect
 * between two processes started seconds apart, while batches a few tens of
 * milliseconds apart see the same host. The recorder is on (fr_init) for the
 * whole run; the off modules call no hook.
 *
 *   bench-runtime-ab [--rounds N] [--tasks N] [--polls K] [--work ITERS]
 *                    [--workers W] [--dir DUMPDIR]
 * Prints "round I on_cpu_ns A off_cpu_ns B twin_cpu_ns C floor_cpu_ns D" per
 * round, then for each ratio, in percent, its median, min, max and
 * quartiles over the rounds ("NAME_median X", "NAME_min X", "NAME_max X",
 * "NAME_p25 X", "NAME_p75 X"): overhead_pct (on, CPU time),
 * wall_overhead_pct (on, wall time), control_pct (the twin, CPU time) and
 * floor_pct (the floor, CPU time), each against off. The modules are looked
 * for next to the executable.
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

/* "NAME_median", "_min", "_max", "_p25" and "_p75" lines for the @n ratios
 * at @v (sorted in place). */
static void summarise(const char *name, double *v, size_t n)
{
    double m = bench_median(v, n);
    printf("%s_median %.3f\n%s_min %.3f\n%s_max %.3f\n%s_p25 %.3f\n%s_p75 %.3f\n", name, m,
           name, v[0], name, v[n - 1], name, quantile(v, n, 0.25), name, quantile(v, n, 0.75));
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
    /* per round: on vs off in CPU time and in wall time, the twin and the
     * floor vs off in CPU time */
    enum { CPU, WALL, CONTROL, FLOOR_CPU, NRATIOS };
    static const char *const ratio_names[NRATIOS] = {"overhead_pct", "wall_overhead_pct",
                                                     "control_pct", "floor_pct"};
    double *ratio[NRATIOS];
    for (int r = 0; r < NRATIOS; r++)
        if (!(ratio[r] = calloc(rounds, sizeof(double))))
            return 1;
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t cpu_ns[NVARIANTS], wall_ns[NVARIANTS];
        for (int j = 0; j < NVARIANTS; j++) {
            int k = (int)((i + (unsigned)j) % NVARIANTS); /* who goes first rotates */
            wall_ns[k] = v[k].batch(workers, ntasks, polls, work, &cpu_ns[k]);
        }
        ratio[CPU][i] = pct(cpu_ns[ON], cpu_ns[OFF]);
        ratio[WALL][i] = pct(wall_ns[ON], wall_ns[OFF]);
        ratio[CONTROL][i] = pct(cpu_ns[TWIN], cpu_ns[OFF]);
        ratio[FLOOR_CPU][i] = pct(cpu_ns[FLOOR], cpu_ns[OFF]);
        printf("round %u on_cpu_ns %llu off_cpu_ns %llu twin_cpu_ns %llu floor_cpu_ns %llu\n", i,
               (unsigned long long)cpu_ns[ON], (unsigned long long)cpu_ns[OFF],
               (unsigned long long)cpu_ns[TWIN], (unsigned long long)cpu_ns[FLOOR]);
    }
    for (int k = 0; k < NVARIANTS; k++)
        v[k].stop();
    fr_shutdown();
    for (int r = 0; r < NRATIOS; r++) {
        summarise(ratio_names[r], ratio[r], rounds);
        free(ratio[r]);
    }
    return 0;
}
