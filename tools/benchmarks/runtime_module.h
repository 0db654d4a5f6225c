/*
 * runtime_module.h - what runtime_module.c's builds export, for
 * bench_runtime_ab.c, which finds them with dlsym.
 */
#ifndef FR_BENCH_RUNTIME_MODULE_H
#define FR_BENCH_RUNTIME_MODULE_H

#include <stdint.h>

/*
 * bench_runtime_batch - run one batch of @ntasks tasks of @polls polls of
 * @work iterations on the module's runtime (@workers worker threads,
 * created at the first call, which warms the runtime up with a tenth of a
 * batch first). Sets *@cpu_ns to the process's user + system time over the
 * batch (ns) and returns its wall time (ns).
 */
uint64_t bench_runtime_batch(unsigned workers, unsigned ntasks, unsigned polls, unsigned work,
                             uint64_t *cpu_ns);
typedef uint64_t (*bench_runtime_batch_fn)(unsigned, unsigned, unsigned, unsigned, uint64_t *);

/* bench_runtime_stop - stop the module's runtime (its workers join). */
void bench_runtime_stop(void);
typedef void (*bench_runtime_stop_fn)(void);

#endif /* FR_BENCH_RUNTIME_MODULE_H */
