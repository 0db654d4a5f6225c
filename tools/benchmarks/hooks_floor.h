/*
 * hooks_floor.h - force-included (-include) when the benchmarks build a third
 * copy of the demo runtime: the least any recorder that times polls must do.
 * fr_poll_begin and fr_poll_end each read the clock and store 16 bytes into a
 * 1 MiB per-thread ring, inline (no call, no encoding, no task table); every
 * other hook is hooks_off.h's no-op. bench-runtime-ab compares this copy with the one built with
 * the hooks compiled out: runtime_floor_pct, the physical limit of
 * runtime_overhead_pct on the machine it runs on.
 */
#ifndef FR_BENCH_HOOKS_FLOOR_H
#define FR_BENCH_HOOKS_FLOOR_H

#include <stdint.h>
#include <stdlib.h>

#include "hooks_off.h" /* every hook a no-op; poll begin and end redefined below */

#define FR_FLOOR_SLOTS 65536u /* 16 bytes each: 1 MiB, the recorder's ring size */

/* Each translation unit that includes this has its own two words (the
 * module is loaded with dlopen: only a few bytes of initial-exec TLS fit). */
static __thread uint64_t *fr_floor_ring __attribute__((tls_model("initial-exec")));
static __thread uint32_t fr_floor_pos __attribute__((tls_model("initial-exec")));

/* A thread's first event: its ring, every page stored into (as the
 * recorder's ring reset does). Never freed: the workers live as long. */
static __attribute__((noinline, unused)) uint64_t *fr_floor_attach(void)
{
    uint64_t *r = aligned_alloc(4096, FR_FLOOR_SLOTS * 16u);
    if (!r)
        abort();
    for (uint32_t i = 0; i < FR_FLOOR_SLOTS * 2u; i += 512)
        r[i] = 0;
    return fr_floor_ring = r;
}

static inline __attribute__((always_inline, unused)) void fr_floor_event(unsigned type,
                                                                         uint64_t task)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    uint64_t *r = fr_floor_ring;
    if (__builtin_expect(!r, 0))
        r = fr_floor_attach();
    uint32_t i = (fr_floor_pos++ & (FR_FLOOR_SLOTS - 1u)) * 2u;
    r[i] = (uint64_t)hi << 32 | lo;
    r[i + 1] = task << 8 | type;
}

#undef fr_poll_begin
#undef fr_poll_end
#define fr_poll_begin(task) fr_floor_event(2, (task))
#define fr_poll_end(task, res) fr_floor_event(3u + (unsigned)(res), (task))

#endif /* FR_BENCH_HOOKS_FLOOR_H */
