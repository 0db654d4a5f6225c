/*
 * tests/decoder/test_rundelay.c - a wait the host made is no verdict: the
 * run-delay sampler (recorder/rundelay.c) notes how long each recorded thread
 * waited for a CPU, and the decoder withholds a timing finding whose wait,
 * less that, is within its threshold.
 *
 * The host is played by a SCHED_FIFO thread pinned to the worker's CPU that
 * spins HOG_MS: the woken worker is runnable all that time and cannot run,
 * as on a machine whose CPUs other processes hold. Each case checks:
 *   - the dump holds a RUN_DELAY entry for the worker of most of HOG_MS;
 *   - the finding is withheld, and counted (host_withheld);
 *   - its twin: the same dump analysed without the entries gives the
 *     finding (so the entries, not the shape, are what withheld it);
 * and next to each, a wait of the program's own (the worker asleep through
 * a lost notification, a poll blocked in a call) keeps its finding with the
 * sampler on, since a sleeping thread waits for no CPU.
 *
 * A SCHED_FIFO thread needs CAP_SYS_NICE (root in CI); without it these
 * cases are skipped, saying why.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flightrec.h"
#include "helpers.h"
#include "scenario.h"

static struct sc_worker *w0, *w1;

static void setup(void)
{
    sc_two_workers_start(&w0, "worker-0", &w1, "worker-1");
}

static void teardown(void)
{
    sc_two_workers_stop(w0, w1);
}

TestSuite(rundelay, .init = setup, .fini = teardown, .timeout = 60);

#define ARG(t) ((void *)(uintptr_t)(t))
/* How long the host holds the worker's CPU: past the delayed-wakeup noise
 * factor (10 x 5 ms), so that without the run delay it is a verdict. */
#define HOG_MS 80

static cpu_set_t one_cpu(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return s;
}

static void pin_to_cpu0(void *a)
{
    (void)a;
    cpu_set_t s = one_cpu(0);
    cr_assert_eq(sched_setaffinity(0, sizeof s, &s), 0);
}

static atomic_int hog_running;

static void *hog_main(void *a)
{
    (void)a;
    atomic_store(&hog_running, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < HOG_MS);
    return NULL;
}

/* Start the host's hog on CPU 0, at real-time priority; returns once it
 * runs. The test's own thread moves to CPU 1 first. */
static pthread_t hog_start(void)
{
    cpu_set_t s = one_cpu(1);
    cr_assert_eq(sched_setaffinity(0, sizeof s, &s), 0, "this test needs two CPUs");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    struct sched_param prio = { .sched_priority = 10 };
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
    pthread_attr_setschedparam(&attr, &prio);
    s = one_cpu(0);
    pthread_attr_setaffinity_np(&attr, sizeof s, &s);
    atomic_store(&hog_running, 0);
    pthread_t t;
    int err = pthread_create(&t, &attr, hog_main, NULL);
    pthread_attr_destroy(&attr);
    if (err == EPERM)
        cr_skip_test("a SCHED_FIFO thread needs CAP_SYS_NICE, which this process lacks");
    cr_assert_eq(err, 0, "pthread_create: %s", strerror(err));
    while (!atomic_load(&hog_running))
        sched_yield();
    return t;
}

/* The worker's run delay in the dump: the most of one entry, ns. */
static uint64_t worker_delay(const struct sc_result *r, uint32_t tid)
{
    uint64_t most = 0;
    for (size_t i = 0; i < r->d->nrun_delays; i++)
        if (r->d->run_delays[i].tid == tid && r->d->run_delays[i].delay_ns > most)
            most = r->d->run_delays[i].delay_ns;
    return most;
}

/* The findings of @r's dump with its RUN_DELAY entries left out. */
static struct frd_findings analyze_again(struct sc_result *r)
{
    struct frd_thresholds th = { .starvation_ns = SC_STARVATION_MS * 1000000LL,
                                 .long_poll_ns = SC_LONG_POLL_MS * 1000000LL,
                                 .hang_ns = SC_HANG_MS * 1000000LL };
    struct frd_findings f = { 0 };
    cr_assert_eq(frd_analyze(&r->m, &th, &f), 0);
    return f;
}

static struct frd_findings without_run_delays(struct sc_result *r)
{
    size_t n = r->d->nrun_delays;
    r->d->nrun_delays = 0;
    struct frd_findings f = analyze_again(r);
    r->d->nrun_delays = n;
    return f;
}

static size_t count_kind(const struct frd_findings *f, enum frd_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += (enum frd_kind)f->v[i].kind == kind;
    return n;
}

static void decode_after_a_reading(struct sc_result *r)
{
    /* the sampler reads every 20 ms, up to 16 times less often after a
     * quiet spell (the hog's): wait for a reading after the worker ran */
    sc_sleep_ms(400);
    char path[512];
    sc_dump(path);
    sc_decode(path, r);
    cr_assert(r->d->have_run_delay, "the dump has no RUN_DELAY section");
}

/* Thread @tid waited most of HOG_MS for a CPU, in the dump; no @kind
 * finding but one withheld; and the twin: the same dump, its run delays left
 * out, gives the @kind finding. Frees @r. */
static void assert_withheld_for(struct sc_result *r, uint32_t tid, enum frd_kind kind)
{
    uint64_t held = worker_delay(r, tid);
    cr_assert_geq(held, HOG_MS / 2 * 1000000ULL, "thread %u waited %llu ns for a CPU", tid,
                  (unsigned long long)held);
    cr_assert_eq(count_kind(&r->f, kind), 0, "%s", sc_describe(r));
    cr_assert_geq(r->f.host_withheld, 1, "%s", sc_describe(r));

    struct frd_findings f = without_run_delays(r);
    cr_assert_eq(count_kind(&f, kind), 1, "%zu findings without run delays", f.n);
    cr_assert_eq(f.host_withheld, 0);
    frd_findings_free(&f);
    sc_result_free(r);
}

static void unpark_poll_ready_drop(void *a)
{
    fr_unpark();
    sc_poll_ready_drop(a);
}

/* ---- delayed_wakeup --------------------------------------------------- */

Test(rundelay, delayed_wakeup_of_a_worker_the_host_held_is_withheld)
{
    sc_run(w0, pin_to_cpu0, NULL);
    sc_run(w0, sc_spawn, ARG(10));
    sc_run(w0, sc_poll_pending, ARG(10));
    sc_run(w0, sc_park, NULL);
    pthread_t hog = hog_start();
    fr_wake(10);
    /* the notification comes at once, but worker-0's CPU is the hog's */
    sc_run(w0, unpark_poll_ready_drop, ARG(10));
    pthread_join(hog, NULL);
    struct sc_result r;
    decode_after_a_reading(&r);

    assert_withheld_for(&r, sc_worker_tid(w0), FRD_DELAYED_WAKEUP);
}

Test(rundelay, delayed_wakeup_twin_worker_asleep_keeps_its_verdict)
{
    sc_run(w0, sc_spawn, ARG(10));
    sc_run(w0, sc_poll_pending, ARG(10));
    sc_run(w0, sc_park, NULL);
    fr_wake(10);                                     /* reaches no one */
    sc_sleep_ms(2 * FRD_DELAYED_NOISE_FACTOR * SC_STARVATION_MS); /* worker-0 sleeps */
    sc_run(w0, unpark_poll_ready_drop, ARG(10));
    struct sc_result r;
    decode_after_a_reading(&r);
    cr_assert_eq(count_kind(&r.f, FRD_DELAYED_WAKEUP), 1, "%s", sc_describe(&r));
    cr_assert_eq(r.f.host_withheld, 0, "%s", sc_describe(&r));

    /* the same wait in a dump whose run delays are known only from after it
     * began (the recorder's ring of entries had wrapped): no entry there
     * means unknown, not none, so no verdict */
    const struct frd_finding *x = NULL;
    for (size_t i = 0; i < r.f.n; i++)
        if (r.f.v[i].kind == FRD_DELAYED_WAKEUP)
            x = &r.f.v[i];
    r.d->run_delay_from_ns = x->at_ns + 1;
    struct frd_findings f = analyze_again(&r);
    cr_assert_eq(count_kind(&f, FRD_DELAYED_WAKEUP), 0, "%zu findings", f.n);
    cr_assert_eq(f.host_withheld, 1);
    frd_findings_free(&f);
    sc_result_free(&r);
}

/* ---- long_poll -------------------------------------------------------- */

static atomic_int in_poll, hog_went;

/* A poll of task 30 that waits (asleep, in 200 us naps) for the host to
 * take its CPU, then has 1 ms of work to do, which it can start only when
 * the host gives the CPU back. */
static void short_poll_preempted(void *a)
{
    (void)a;
    fr_poll_begin(30);
    atomic_store(&in_poll, 1);
    while (!atomic_load(&hog_went)) {
        struct timespec nap = { 0, 200000 };
        nanosleep(&nap, NULL);
    }
    sc_spin_ms(1);
    fr_poll_end(30, FR_READY);
    fr_drop(30);
}

Test(rundelay, long_poll_the_host_preempted_is_withheld)
{
    sc_run(w0, pin_to_cpu0, NULL);
    sc_run(w0, sc_spawn, ARG(30));
    atomic_store(&in_poll, 0);
    atomic_store(&hog_went, 0);
    sc_start(w0, short_poll_preempted, NULL);
    while (!atomic_load(&in_poll))
        sched_yield();
    pthread_t hog = hog_start(); /* worker-0's next nap ends with its CPU taken */
    atomic_store(&hog_went, 1);
    sc_wait(w0);
    pthread_join(hog, NULL);
    struct sc_result r;
    decode_after_a_reading(&r);

    assert_withheld_for(&r, sc_worker_tid(w0), FRD_LONG_POLL);
}

static void poll_blocked_in_a_call(void *a)
{
    (void)a;
    fr_poll_begin(31);
    sc_sleep_ms(HOG_MS); /* a blocking call: asleep, not waiting for a CPU */
    fr_poll_end(31, FR_READY);
    fr_drop(31);
}

Test(rundelay, long_poll_twin_blocked_in_a_call_keeps_its_verdict)
{
    sc_run(w0, sc_spawn, ARG(31));
    sc_run(w0, poll_blocked_in_a_call, NULL);
    struct sc_result r;
    decode_after_a_reading(&r);
    cr_assert_eq(count_kind(&r.f, FRD_LONG_POLL), 1, "%s", sc_describe(&r));
    cr_assert_eq(r.f.host_withheld, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* A thread whose very first event is the poll the host preempts, and which
 * exits right after it: its run delay counts from its attach, and its last
 * reading is the one it takes on its way out, so that wait is not lost
 * though the sampler may never have read it live. */
static atomic_uint fresh_tid;

static void *fresh_thread(void *a)
{
    (void)a;
    atomic_store(&fresh_tid, (unsigned)th_gettid());
    pin_to_cpu0(NULL);
    short_poll_preempted(NULL);
    return NULL;
}

Test(rundelay, long_poll_in_the_first_poll_of_a_thread_that_exits_is_withheld)
{
    sc_run(w0, sc_spawn, ARG(30));
    atomic_store(&in_poll, 0);
    atomic_store(&hog_went, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fresh_thread, NULL), 0);
    while (!atomic_load(&in_poll))
        sched_yield();
    pthread_t hog = hog_start();
    atomic_store(&hog_went, 1);
    pthread_join(hog, NULL);
    pthread_join(t, NULL);
    struct sc_result r;
    decode_after_a_reading(&r);
    assert_withheld_for(&r, atomic_load(&fresh_tid), FRD_LONG_POLL);
}

/* A dump that lost its RUN_DELAY section (cut short, or recovered from
 * shared rings: the header says the sampler ran) knows nothing of the host's
 * share of a wait: the long poll is withheld, as a wait before the entries
 * the dump kept is. Its twin below: the sampler off, nothing was lost, and
 * the same wait keeps its verdict. */
Test(rundelay, long_poll_in_a_dump_that_lost_its_run_delays_is_withheld)
{
    sc_run(w0, sc_spawn, ARG(31));
    sc_run(w0, poll_blocked_in_a_call, NULL);
    struct sc_result r;
    decode_after_a_reading(&r);
    cr_assert(r.d->hdr.flags & FR_HDR_RUN_DELAY);
    cr_assert_not(frd_run_delay_lost(r.d));
    cr_assert_eq(count_kind(&r.f, FRD_LONG_POLL), 1, "%s", sc_describe(&r));
    r.d->have_run_delay = 0; /* as a dump cut before the section reads */
    cr_assert(frd_run_delay_lost(r.d));
    struct frd_findings f = analyze_again(&r);
    cr_assert_eq(count_kind(&f, FRD_LONG_POLL), 0, "%zu findings", f.n);
    cr_assert_eq(f.host_withheld, 1);
    frd_findings_free(&f);
    sc_result_free(&r);
}

Test(rundelay, long_poll_twin_with_the_sampler_off_keeps_its_verdict)
{
    fr_shutdown();
    setenv("FLIGHTREC_RUN_DELAY", "0", 1);
    sc_recorder_start(0);
    unsetenv("FLIGHTREC_RUN_DELAY");
    sc_run(w0, sc_spawn, ARG(31));
    sc_run(w0, poll_blocked_in_a_call, NULL);
    char path[512];
    sc_dump(path);
    struct sc_result r;
    sc_decode(path, &r);
    cr_assert_not(r.d->hdr.flags & FR_HDR_RUN_DELAY);
    cr_assert_not(frd_run_delay_lost(r.d));
    cr_assert_eq(count_kind(&r.f, FRD_LONG_POLL), 1, "%s", sc_describe(&r));
    cr_assert_eq(r.f.host_withheld, 0);
    sc_result_free(&r);
}

/* Off (FLIGHTREC_RUN_DELAY=0): no sampler, and no RUN_DELAY section, so that
 * no one reads "none waited" into a dump that never looked. */
Test(rundelay, off_writes_no_section)
{
    char path[512];
    sc_dump(path);
    struct sc_result r;
    sc_decode(path, &r);
    cr_assert(r.d->have_run_delay);
    sc_result_free(&r);
    fr_shutdown();
    setenv("FLIGHTREC_RUN_DELAY", "0", 1);
    sc_recorder_start(0);
    unsetenv("FLIGHTREC_RUN_DELAY");
    fr_spawn(5, 0, "job");
    sc_dump(path);
    sc_decode(path, &r);
    cr_assert_not(r.d->have_run_delay, "a RUN_DELAY section with the sampler off");
    sc_result_free(&r);
}
