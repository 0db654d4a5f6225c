/*
 * bench_hooks.c - per-event cost of the hooks through the public API of the
 * shared library, next to the hardware floor, on the mixed sequence of
 * bench.h:
 *
 *   disabled_ns   hooks called before fr_init()
 *   floor_ns      rdtsc + a 16-byte thread-local store per event, same loop
 *   record_ns     one thread recording (ring already faulted in and wrapping)
 *   record_2t_ns  two threads recording at once, per event per thread
 *   life_ns       a task's 10-event life (bench.h BENCH_LIFE), per event
 *   life_floor_ns the floor on the same 10 calls; life_over_floor the ratio
 *   floor_2t_ns   the floor on two threads at once (what the machine loses)
 *   hook_wake_ns, hook_await_ns, hook_lock_wait_ns, hook_lock_acquire_ns,
 *   hook_lock_release_ns
 *                 one hook alone in a loop (a new task id each call; the lock
 *                 a static address, as far from the ids as a lock can be), in
 *                 turn within each repetition, so the lock hooks compare with
 *                 fr_wake (and fr_lock_wait, which carries a string, with
 *                 fr_await) measured beside them
 *   pending_poll_ns a pending poll's six hooks as the demo runtime calls
 *                 them (poll begin, waker clone, await, wake, waker drop,
 *                 poll end), per poll
 *   pending_poll_clock_ns
 *                 two of the floor's clock reads and stores, per pair: what
 *                 timing a poll's start and end costs at least
 *
 * Floor, record and record_2t are measured in turn within each repetition,
 * so the ratios compare neighbours in time on a noisy machine. Prints
 * "name value" lines for tools/bench.
 *
 *   bench-hooks [--reps N] [--iters SEQUENCES] [--dir DUMP_DIR]
 *   bench-hooks --only floor|record|life|life-floor [--iters SEQUENCES]
 *
 * --only runs one loop (after fr_init and a warm ring) and prints nothing but
 * "events N": for `perf stat -e instructions,cycles` per event.
 */
#include <flightrec.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "bench.h"

/* ---- the floor: rdtsc + 16-byte TLS store, one call per event ----------- */

struct floor_rec {
    uint64_t ticks, word;
};
#define FLOOR_SLOTS 4096u
static __thread struct floor_rec floor_buf[FLOOR_SLOTS] __attribute__((tls_model("initial-exec")));
static __thread uint32_t floor_pos __attribute__((tls_model("initial-exec")));

static inline __attribute__((always_inline)) void floor_event(unsigned type, uint64_t task)
{
    uint64_t t;
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    t = ((uint64_t)hi << 32) | lo;
#else
    t = bench_now_ns();
#endif
    uint32_t i = floor_pos++ & (FLOOR_SLOTS - 1);
    floor_buf[i].ticks = t;
    floor_buf[i].word = task << 8 | type;
}

#define FLOOR_FN __attribute__((noinline)) static void
FLOOR_FN floor_spawn(uint64_t t, uint64_t p, const char *n) { (void)p; (void)n; floor_event(1, t); }
FLOOR_FN floor_poll_begin(uint64_t t) { floor_event(2, t); }
FLOOR_FN floor_poll_end(uint64_t t, enum fr_poll_result r) { floor_event(3 + r, t); }
FLOOR_FN floor_await(uint64_t t, const char *l) { (void)l; floor_event(5, t); }
FLOOR_FN floor_wake(uint64_t t) { floor_event(6, t); }
FLOOR_FN floor_waker_clone(uint64_t t) { floor_event(7, t); }
FLOOR_FN floor_waker_drop(uint64_t t) { floor_event(8, t); }
FLOOR_FN floor_drop(uint64_t t) { floor_event(9, t); }
FLOOR_FN floor_park(void) { floor_event(10, 0); }
FLOOR_FN floor_unpark(void) { floor_event(11, 0); }

/* ---- loops -------------------------------------------------------------- */

static uint64_t iters = 200000;
static _Atomic uint64_t next_base = 1;

static uint64_t take_ids(void)
{
    return atomic_fetch_add(&next_base, iters + 1);
}

/* Each returns ns per event. */
static double run_floor(void)
{
    uint64_t base = take_ids(), t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = base + i;
        BENCH_SEQUENCE(floor_, id);
    }
    return (double)(bench_now_ns() - t0) / (double)(iters * BENCH_EVENTS_PER_SEQ);
}

static double run_life_floor(void)
{
    uint64_t base = take_ids(), t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = base + i;
        BENCH_LIFE(floor_, id);
    }
    return (double)(bench_now_ns() - t0) / (double)(iters * BENCH_LIFE_EVENTS);
}

static double run_life(void)
{
    uint64_t base = take_ids(), t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = base + i;
        BENCH_LIFE(fr_, id);
    }
    return (double)(bench_now_ns() - t0) / (double)(iters * BENCH_LIFE_EVENTS);
}

static double run_record(void)
{
    uint64_t base = take_ids(), t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = base + i;
        BENCH_SEQUENCE(fr_, id);
    }
    return (double)(bench_now_ns() - t0) / (double)(iters * BENCH_EVENTS_PER_SEQ);
}

/* One hook alone, ns per call. */
static char bench_lock; /* its address is the lock id */
#define LOCK_ID ((uint64_t)(uintptr_t)&bench_lock)
#define ONE_HOOK_LOOP(call)                                                                        \
    do {                                                                                           \
        uint64_t base = take_ids(), n = iters * BENCH_EVENTS_PER_SEQ / 4, t0 = bench_now_ns();     \
        for (uint64_t i = 0; i < n; i++) {                                                         \
            uint64_t id = base + i;                                                                \
            call;                                                                                  \
        }                                                                                          \
        return (double)(bench_now_ns() - t0) / (double)n;                                          \
    } while (0)

static double run_wake(void) { ONE_HOOK_LOOP(fr_wake(id)); }
static double run_await(void) { ONE_HOOK_LOOP(fr_await(id, BENCH_LABEL)); }
static double run_lock_wait(void) { ONE_HOOK_LOOP(fr_lock_wait(id, LOCK_ID, "accounts")); }
static double run_lock_acquire(void) { ONE_HOOK_LOOP(fr_lock_acquire(id, LOCK_ID)); }
static double run_lock_release(void) { ONE_HOOK_LOOP(fr_lock_release(id, LOCK_ID)); }

/* A pending poll as the demo runtime makes it (runtime_job.h): six hooks,
 * two of which read the clock and write a record, the four between them
 * folded into the poll end. ns per poll. */
static double run_pending_poll(void)
{
    ONE_HOOK_LOOP({
        fr_poll_begin(id);
        fr_waker_clone(id);
        fr_await(id, BENCH_LABEL);
        fr_wake(id);
        fr_waker_drop(id);
        fr_poll_end(id, FR_PENDING);
    });
}

/* What any recorder that times a poll's start and end pays at least: two
 * clock reads (the floor's, stored as the floor stores them). ns per pair. */
static double run_clock_pair(void)
{
    ONE_HOOK_LOOP({
        floor_event(2, id);
        floor_event(3, id);
    });
}

/* Fill a fresh thread's ring once so that the timed pass writes over
 * faulted-in pages, as an always-on recorder does. */
static void warm_ring(void)
{
    uint64_t saved = iters;
    iters = saved < 40000 ? saved : 40000; /* ~480k events: > one 1 MiB ring */
    run_record();
    iters = saved;
}

static pthread_barrier_t start_line, finish_line;

struct two_thread_arg {
    double (*run)(void);
    double ns;
};

static void *two_thread_worker(void *arg)
{
    struct two_thread_arg *a = arg;
    fr_thread_name("bench-2t");
    warm_ring();
    a->run(); /* fault in the floor's buffer */
    pthread_barrier_wait(&start_line);
    a->ns = a->run();
    pthread_barrier_wait(&finish_line);
    return NULL;
}

/* Two threads running @run at once; ns per event per thread. The floor run
 * this way shows what the machine itself loses with both cores busy. */
static double run_2t(double (*run)(void))
{
    pthread_t th[2];
    struct two_thread_arg a[2] = {{run, 0}, {run, 0}};
    pthread_barrier_init(&start_line, NULL, 2);
    pthread_barrier_init(&finish_line, NULL, 2);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, two_thread_worker, &a[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start_line);
    pthread_barrier_destroy(&finish_line);
    return (a[0].ns + a[1].ns) / 2;
}

static void report(const char *name, double *v, size_t n)
{
    double m = bench_median(v, n);
    printf("%s %.3f\n%s_spread_pct %.1f\n", name, m, name, bench_spread_pct(v, n, m));
}

int main(int argc, char **argv)
{
    int reps = bench_arg_int(argc, argv, "--reps", 7);
    iters = (uint64_t)bench_arg_int(argc, argv, "--iters", 200000);
    const char *dir = bench_arg_str(argc, argv, "--dir", NULL);
    if (reps < 1 || reps > 100 || iters < 1) {
        fputs("usage: bench-hooks [--reps 1..100] [--iters N] [--dir DUMP_DIR]\n", stderr);
        return 2;
    }
    double disabled[100], floor_ns[100], floor2[100], rec[100], rec2[100], ratio[100],
        ratio2[100], fratio2[100], wake[100], await_[100], lwait[100], lacq[100], lrel[100],
        life[100], lfloor[100], lratio[100], pending[100], clock2[100];
    const char *only = bench_arg_str(argc, argv, "--only", NULL);

    /* Before fr_init: every hook returns after one compare. */
    for (int r = 0; r < reps; r++)
        disabled[r] = run_record();

    struct fr_config cfg = {.dump_dir = dir};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-hooks: fr_init: %s\n", strerror(-rc));
        return 1;
    }
    fr_thread_name("bench");
    warm_ring();
    if (only) {
        struct {
            const char *name;
            double (*run)(void);
            unsigned events;
        } loops[] = {{"floor", run_floor, BENCH_EVENTS_PER_SEQ},
                     {"record", run_record, BENCH_EVENTS_PER_SEQ},
                     {"life", run_life, BENCH_LIFE_EVENTS},
                     {"life-floor", run_life_floor, BENCH_LIFE_EVENTS}};
        for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
            if (strcmp(only, loops[i].name) == 0) {
                loops[i].run();
                printf("events %llu\n", (unsigned long long)iters * loops[i].events);
                fr_shutdown();
                return 0;
            }
        fprintf(stderr, "bench-hooks: --only: unknown loop '%s'\n", only);
        return 2;
    }
    run_floor(); /* fault in the floor's buffer too */

    for (int r = 0; r < reps; r++) {
        floor_ns[r] = run_floor();
        rec[r] = run_record();
        rec2[r] = run_2t(run_record);
        floor2[r] = run_2t(run_floor);
        ratio[r] = rec[r] / floor_ns[r];
        lfloor[r] = run_life_floor();
        life[r] = run_life();
        lratio[r] = life[r] / lfloor[r];
        ratio2[r] = rec2[r] / rec[r];
        fratio2[r] = floor2[r] / floor_ns[r];
        wake[r] = run_wake();
        await_[r] = run_await();
        lwait[r] = run_lock_wait();
        lacq[r] = run_lock_acquire();
        lrel[r] = run_lock_release();
        clock2[r] = run_clock_pair();
        pending[r] = run_pending_poll();
    }
    report("disabled_ns", disabled, (size_t)reps);
    report("floor_ns", floor_ns, (size_t)reps);
    report("record_ns", rec, (size_t)reps);
    report("record_2t_ns", rec2, (size_t)reps);
    report("floor_2t_ns", floor2, (size_t)reps);
    report("floor_2t_over_floor", fratio2, (size_t)reps);
    report("record_over_floor", ratio, (size_t)reps);
    report("record_2t_over_record", ratio2, (size_t)reps);
    report("life_floor_ns", lfloor, (size_t)reps);
    report("life_ns", life, (size_t)reps);
    report("life_over_floor", lratio, (size_t)reps);
    report("hook_wake_ns", wake, (size_t)reps);
    report("hook_await_ns", await_, (size_t)reps);
    report("hook_lock_wait_ns", lwait, (size_t)reps);
    report("hook_lock_acquire_ns", lacq, (size_t)reps);
    report("hook_lock_release_ns", lrel, (size_t)reps);
    report("pending_poll_ns", pending, (size_t)reps);
    report("pending_poll_clock_ns", clock2, (size_t)reps);
    fr_shutdown();
    return 0;
}
