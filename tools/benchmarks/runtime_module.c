/*
 * runtime_module.c - runtime_job.h's workload as a loadable module, built
 * like bench-runtime-{on,off}: against the instrumented demo runtime
 * (bench-runtime-mod-on.so) and, twice, against the copy with every hook
 * compiled out (bench-runtime-mod-off.so and its twin,
 * bench-runtime-mod-twin.so), and against the copy whose poll begin and end
 * only read the clock and store (bench-runtime-mod-floor.so, hooks_floor.h).
 * bench_runtime_ab.c loads the four into one
 * process and runs their batches in turn. Each module has its own runtime,
 * created at its first batch, with its own worker threads.
 */
#include "runtime_module.h"

#include "runtime_job.h"

static struct rt_runtime *rt;

__attribute__((visibility("default"))) uint64_t
bench_runtime_batch(unsigned workers, unsigned ntasks, unsigned polls, unsigned work,
                    uint64_t *cpu_ns)
{
    polls_per_task = polls;
    work_iters = work;
    if (!rt) {
        rt = rt_create(workers);
        run_batch(rt, ntasks / 10 + 1, cpu_ns);
    }
    return run_batch(rt, ntasks, cpu_ns);
}

__attribute__((visibility("default"))) void bench_runtime_stop(void)
{
    if (rt)
        rt_destroy(rt);
    rt = NULL;
}
