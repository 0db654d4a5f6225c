/*
 * tests/decoder/test_copytime.c - a dump copies the threads' rings one after
 * the other while the others keep recording. What a thread records after its
 * own copy is not in the dump, so no finding may rest on its absence there
 * (DESIGN.md "History is finite").
 *
 * The recorder here is the test build (FR_TEST_HOOKS): fr__test_after_copy
 * runs inside fr_dump() right after a ring was copied, so a scenario can
 * record, deterministically, the events that copy misses. Each scenario is
 * also decoded with the copy times wiped, as a dump of an older writer would
 * be: that decoding must show the false finding the copy times prevent.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "scenario.h"

extern void (*fr__test_after_copy)(uint32_t tid);

static struct sc_worker *w1, *waker;

static void setup(void)
{
    /* in this order: worker-1's slot, and so its copy, comes before waker's */
    sc_two_workers_start(&w1, "worker-1", &waker, "waker");
}

static void teardown(void)
{
    fr__test_after_copy = NULL;
    sc_two_workers_stop(w1, waker);
}

TestSuite(copytime, .init = setup, .fini = teardown, .timeout = 60);

#define TASK(a) ((uint64_t)(uintptr_t)(a))
#define ARG(t) ((void *)(uintptr_t)(t))
static void poll_end_ready_drop(void *a) { fr_poll_end(TASK(a), FR_READY); fr_drop(TASK(a)); }
static void rename_waker(void *a) { (void)a; fr_thread_name("waker"); }

/* What a scenario does once worker-1's ring has been copied. */
static void (*after_w1_copy)(void);
static int hook_ran;

static void hook(uint32_t tid)
{
    if (hook_ran || tid != sc_worker_tid(w1))
        return;
    hook_ran = 1;
    after_w1_copy();
}

static const struct frd_thread *thread_of(const struct sc_result *r, const struct sc_worker *w)
{
    for (size_t i = 0; i < r->d->nthreads; i++)
        if (r->d->threads[i].tid == sc_worker_tid(w))
            return &r->d->threads[i];
    cr_assert_fail("thread %u not in the dump", sc_worker_tid(w));
    return NULL;
}

static const struct frd_task *task_of(const struct sc_result *r, uint64_t id)
{
    for (size_t i = 0; i < r->m.ntasks; i++)
        if (r->m.tasks[i].id == id)
            return &r->m.tasks[i];
    cr_assert_fail("task %llu not in the model", (unsigned long long)id);
    return NULL;
}

/* Findings of kind @kind about task @id when the dump is decoded as if it
 * gave no copy times (an older writer's dump). */
static size_t count_without_copy_times(const char *path, int kind, uint64_t id)
{
    char err[512];
    struct frd_dump *d;
    cr_assert_eq(frd_open(path, &d, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < d->nthreads; i++) {
        d->threads[i].copied = 0;
        d->threads[i].copied_ns = INT64_MAX;
    }
    struct frd_model m;
    struct frd_findings f;
    cr_assert_eq(frd_model_build(d, &m), 0);
    cr_assert_eq(m.copy_times, 0);
    cr_assert_eq(m.covered_end_ns, m.end_ns);
    struct frd_thresholds th = {
        .starvation_ns = SC_STARVATION_MS * 1000000LL,
        .long_poll_ns = SC_LONG_POLL_MS * 1000000LL,
        .hang_ns = SC_HANG_MS * 1000000LL,
    };
    cr_assert_eq(frd_analyze(&m, &th, &f), 0);
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++)
        if (f.v[i].kind == kind && f.v[i].task != FRD_NONE && m.tasks[f.v[i].task].id == id)
            n++;
    frd_findings_free(&f);
    frd_model_free(&m);
    frd_close(d);
    return n;
}

/* ---- a wake, and the poll that answered it, after the worker's copy ---- */

static void wake_then_poll(void)
{
    sc_run(waker, sc_wake, ARG(40));
    sc_run(w1, sc_unpark, NULL);
    sc_run(w1, sc_poll_ready_drop, ARG(40));
    sc_run(w1, sc_park, NULL);
    sc_sleep_ms(4 * SC_STARVATION_MS);
    sc_run(waker, rename_waker, NULL); /* the recording goes on past the wake */
}

static void idle_task_on_parked_worker(void)
{
    sc_run(w1, sc_spawn, ARG(40));
    sc_run(w1, sc_poll_pending, ARG(40));
    sc_run(w1, sc_park, NULL);
}

Test(copytime, wake_after_the_workers_copy_is_no_lost_wakeup)
{
    idle_task_on_parked_worker();
    after_w1_copy = wake_then_poll;
    fr__test_after_copy = hook;
    char path[512];
    sc_dump(path);
    cr_assert(hook_ran);

    struct sc_result r;
    sc_decode(path, &r);
    const struct frd_thread *tw = thread_of(&r, w1), *tk = thread_of(&r, waker);
    const struct frd_task *t = task_of(&r, 40);
    /* the shape the dump must have: the wake is in it, the poll is not */
    cr_assert(tw->copied && tk->copied);
    cr_assert_eq(t->nwakes, 1);
    cr_assert_eq(t->npolls, 1, "the poll after the copy is not in the dump");
    cr_assert_lt(tw->copied_ns, t->wakes[0].ns);
    cr_assert_lt(t->wakes[0].ns, tk->copied_ns);
    cr_assert(r.m.copy_times);
    cr_assert_leq(r.m.covered_end_ns, tw->copied_ns);
    cr_assert_lt(r.m.covered_end_ns, r.m.end_ns);

    cr_assert_eq(r.f.n, 0, "findings resting on what worker-1 did after its copy:%s",
                 sc_describe(&r));
    /* without the copy times, the same dump shows the false lost wakeup */
    cr_assert_eq(count_without_copy_times(path, FRD_LOST_WAKEUP, 40), 1);
    sc_result_free(&r);
}

Test(copytime, wake_and_poll_before_the_dump_is_clean)
{
    idle_task_on_parked_worker();
    wake_then_poll();
    char path[512];
    sc_dump(path);

    struct sc_result r;
    sc_decode(path, &r);
    cr_assert_eq(r.f.n, 0, "findings on a clean run:%s", sc_describe(&r));
    const struct frd_task *t = task_of(&r, 40);
    cr_assert_eq(t->npolls, 2);
    cr_assert_eq(t->state, FRD_TASK_DROPPED);
    /* every ring was copied after everything happened */
    cr_assert(r.m.copy_times);
    for (size_t i = 0; i < r.d->nthreads; i++) {
        const struct frd_thread *th = &r.d->threads[i];
        cr_assert(th->copied, "thread %u has no copy time", th->tid);
        cr_assert(!th->nevents || th->copied_ns >= th->last_ns);
        cr_assert_geq(r.m.workers[i].covered_end_ns, r.m.covered_end_ns);
    }
    cr_assert_geq(r.m.covered_end_ns, t->drop_ns);

    /* info --json gives each thread's copy time */
    char cmd[700], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "info --json '%s'", path);
    cr_assert_eq(sc_cli(cmd, &out, &err), 0, "%s", err);
    size_t n = 0;
    for (const char *p = out; (p = strstr(p, "\"copied_ns\": ")) != NULL; p++)
        n++;
    cr_assert_eq(n, r.d->nthreads, "%s", out);
    free(out);
    free(err);
    sc_result_free(&r);
}

/* ---- a poll that ended after its worker's copy ------------------------ */

static void end_poll_later(void)
{
    sc_run(w1, poll_end_ready_drop, ARG(50));
    sc_sleep_ms(4 * SC_LONG_POLL_MS);
    sc_run(waker, rename_waker, NULL);
}

Test(copytime, poll_ended_after_the_copy_is_not_a_long_poll)
{
    sc_run(w1, sc_spawn, ARG(50));
    sc_run(w1, sc_poll_begin, ARG(50));
    after_w1_copy = end_poll_later;
    fr__test_after_copy = hook;
    char path[512];
    sc_dump(path);
    cr_assert(hook_ran);

    struct sc_result r;
    sc_decode(path, &r);
    const struct frd_thread *tw = thread_of(&r, w1);
    const struct frd_task *t = task_of(&r, 50);
    cr_assert_eq(t->npolls, 1);
    cr_assert_eq(t->polls[0].result, FRD_POLL_RUNNING);
    /* running as far as worker-1's ring tells, not to the end */
    cr_assert_leq(t->polls[0].end_ns, tw->copied_ns);
    cr_assert_lt(t->polls[0].end_ns, r.m.end_ns);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    cr_assert_eq(count_without_copy_times(path, FRD_LONG_POLL, 50), 1);
    sc_result_free(&r);
}

Test(copytime, poll_running_through_the_copy_is_a_long_poll)
{
    /* the healthy counterpart's opposite: a poll stuck well before the dump
     * is still told, however the rings were copied */
    sc_run(w1, sc_spawn, ARG(60));
    sc_run(w1, sc_poll_begin, ARG(60));
    sc_sleep_ms(4 * SC_LONG_POLL_MS);
    sc_run(waker, rename_waker, NULL);
    char path[512];
    sc_dump(path);

    struct sc_result r;
    sc_decode(path, &r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_LONG_POLL, 60);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "still running at the dump"), "%s", x->message);
    sc_result_free(&r);
}
