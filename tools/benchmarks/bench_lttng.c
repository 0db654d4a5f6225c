/*
 * bench_lttng.c - the mixed sequence of bench.h through an LTTng-UST
 * tracepoint, ns per event. tools/bench runs it inside a snapshot-mode
 * session of its own (private LTTNG_HOME, its own lttng-sessiond) with the
 * event enabled; the first pass fills the session's buffers so that the timed
 * passes overwrite, as a flight recorder does. Prints "name value" lines.
 *
 *   bench-lttng [--reps N] [--iters SEQUENCES]
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_lttng_tp.h"

#include <flightrec.h> /* enum fr_poll_result, for the shared sequence */
#include <stdio.h>

#include "bench.h"

#define TP(type, task, parent, label)                                                              \
    lttng_ust_tracepoint(flightrec_bench, event, (type), (task), (parent), (label))

#define LT_FN __attribute__((noinline)) static void
LT_FN lt_spawn(uint64_t t, uint64_t p, const char *n) { TP(1, t, p, n); }
LT_FN lt_poll_begin(uint64_t t) { TP(2, t, 0, ""); }
LT_FN lt_poll_end(uint64_t t, enum fr_poll_result r) { TP(3 + r, t, 0, ""); }
LT_FN lt_await(uint64_t t, const char *l) { TP(5, t, 0, l); }
LT_FN lt_wake(uint64_t t) { TP(6, t, 0, ""); }
LT_FN lt_waker_clone(uint64_t t) { TP(7, t, 0, ""); }
LT_FN lt_waker_drop(uint64_t t) { TP(8, t, 0, ""); }
LT_FN lt_drop(uint64_t t) { TP(9, t, 0, ""); }
LT_FN lt_park(void) { TP(10, 0, 0, ""); }
LT_FN lt_unpark(void) { TP(11, 0, 0, ""); }

static double run(uint64_t iters, uint64_t base)
{
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = base + i;
        BENCH_SEQUENCE(lt_, id);
    }
    return (double)(bench_now_ns() - t0) / (double)(iters * BENCH_EVENTS_PER_SEQ);
}

int main(int argc, char **argv)
{
    int reps = bench_arg_int(argc, argv, "--reps", 7);
    uint64_t iters = (uint64_t)bench_arg_int(argc, argv, "--iters", 200000);
    if (reps < 1 || reps > 100 || iters < 1) {
        fputs("usage: bench-lttng [--reps 1..100] [--iters N]\n", stderr);
        return 2;
    }
    if (!lttng_ust_tracepoint_enabled(flightrec_bench, event)) {
        fputs("bench-lttng: the tracepoint is not enabled (no session?)\n", stderr);
        printf("lttng_enabled 0\n");
    }
    double ns[100];
    run(iters, 1);
    for (int r = 0; r < reps; r++)
        ns[r] = run(iters, (uint64_t)(r + 1) * (iters + 1));
    double m = bench_median(ns, (size_t)reps);
    printf("lttng_ns %.3f\nlttng_ns_spread_pct %.1f\n", m, bench_spread_pct(ns, (size_t)reps, m));
    return 0;
}
