/*
 * tests/decoder/test_findings.c - each finding of DESIGN.md planted with the
 * real recorder on real worker threads, dumped, decoded, and asserted
 * exactly: the right kind, the right task, nothing else; a clean run has none.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "flightrec.h"
#include "scenario.h"

static struct sc_worker *w1, *w2;

static void setup(void)
{
    sc_two_workers_start(&w1, "worker-1", &w2, "worker-2");
}

static void teardown(void)
{
    sc_two_workers_stop(w1, w2);
}

/* Steps run on a worker (the argument is the task id). */
#define TASK(a) ((uint64_t)(uintptr_t)(a))
#define ARG(t) ((void *)(uintptr_t)(t))

static void decode_now(struct sc_result *r)
{
    char path[512];
    sc_dump(path);
    sc_decode(path, r);
}

TestSuite(findings, .init = setup, .fini = teardown, .timeout = 60);

Test(findings, clean_run_has_none)
{
    /* a request: spawned on worker-1, waits on I/O, woken by main, finished
     * on worker-2; it spawns a child that worker-2 runs to completion */
    sc_run(w1, sc_spawn, ARG(1));
    sc_run(w1, sc_poll_begin, ARG(1));
    fr_waker_clone(1);
    fr_spawn(2, 1, "child");
    sc_run(w1, sc_poll_end_pending, ARG(1));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_poll_ready_drop, ARG(2));
    fr_wake(1);
    fr_waker_drop(1);
    sc_run(w2, sc_poll_ready_drop, ARG(1));
    sc_run(w2, sc_park, NULL);
    sc_sleep_ms(3 * SC_STARVATION_MS);
    sc_run(w1, sc_unpark, NULL);
    sc_run(w1, sc_park, NULL);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "findings on a clean run:%s", sc_describe(&r));
    cr_assert_eq(r.m.ntasks, 2);
    sc_result_free(&r);
}

Test(findings, lost_wakeup_waker_dropped)
{
    sc_run(w1, sc_spawn, ARG(10));
    sc_run(w1, sc_poll_begin, ARG(10));
    fr_waker_clone(10); /* registered with an I/O source */
    sc_run(w1, sc_poll_end_pending, ARG(10));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);
    fr_waker_drop(10); /* ...which drops it without waking */
    sc_sleep_ms(4 * SC_STARVATION_MS);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_LOST_WAKEUP, 10);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "waker dropped"), "%s", x->message);
    sc_result_free(&r);
}

Test(findings, lost_wakeup_notification_lost_while_parked)
{
    sc_run(w1, sc_spawn, ARG(20));
    sc_run(w1, sc_poll_pending, ARG(20));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);
    fr_wake(20); /* the runtime never queues it */
    sc_sleep_ms(4 * SC_STARVATION_MS);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_LOST_WAKEUP, 20);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "notification lost"), "%s", x->message);
    sc_result_free(&r);
}

Test(findings, lost_wakeup_wake_during_own_poll)
{
    sc_run(w1, sc_spawn, ARG(30));
    sc_run(w1, sc_poll_begin, ARG(30));
    fr_wake(30); /* lands between the check and the park */
    sc_run(w1, sc_poll_end_pending, ARG(30));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);
    sc_sleep_ms(4 * SC_STARVATION_MS);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_LOST_WAKEUP, 30);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "during its own poll"), "%s", x->message);
    sc_result_free(&r);
}

static void hog(void *a)
{
    (void)a;
    fr_poll_begin(41);
    sc_spin_ms(6 * SC_LONG_POLL_MS);
    fr_poll_end(41, FR_READY);
    fr_drop(41);
}

Test(findings, starvation_names_the_long_poll)
{
    sc_run(w1, sc_spawn, ARG(40));
    sc_run(w1, sc_poll_pending, ARG(40));
    fr_spawn(41, 0, "hog");
    /* the only worker runs the hog; the victim is woken meanwhile and waits */
    /* a short unrelated poll first; it completes, so that a slow machine
     * stretching the test past the hang threshold cannot make it hung */
    sc_run(w1, sc_poll_ready_drop, ARG(42));
    fr_wake(40);
    sc_run(w1, hog, NULL);
    sc_run(w1, sc_poll_ready_drop, ARG(40));
    sc_run(w2, sc_poll_ready_drop, ARG(43)); /* worker-2 polls only long after */

    struct sc_result r;
    decode_now(&r);
    const struct frd_finding *lp = sc_find(&r, FRD_LONG_POLL, 41);
    const struct frd_finding *st = sc_find(&r, FRD_STARVATION, 40);
    cr_assert_not_null(lp, "%s", sc_describe(&r));
    cr_assert_not_null(st, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(st->message, "task 41 \"hog\""), "%s", st->message);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_geq(st->duration_ns, 6 * SC_LONG_POLL_MS * 1000000LL);
    sc_result_free(&r);
}

static void pool_work(void *a)
{
    fr_poll_begin(TASK(a));
    sc_spin_ms(6 * SC_LONG_POLL_MS);
    fr_poll_end(TASK(a), FR_PENDING);
    fr_wake(TASK(a));
}

/* libuv's thread pool (the adapter names its threads "uv-pool") runs
 * blocking work by design: a long work callback there is no long_poll. Its
 * twin, the same poll on a worker, is. */
Test(findings, a_long_poll_on_a_blocking_pool_is_none)
{
    struct sc_worker *pool = sc_worker_start(FR_BLOCKING_POOL_THREAD);
    fr_spawn(71, 0, "uv work slow_cb");
    sc_run(pool, pool_work, ARG(71));
    fr_spawn(72, 0, "uv timer slow_cb");
    sc_run(w1, pool_work, ARG(72));
    struct sc_result r;
    decode_now(&r);
    sc_worker_stop(pool);
    cr_assert_null(sc_find(&r, FRD_LONG_POLL, 71), "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 72), "%s", sc_describe(&r));
    sc_result_free(&r);
}

static void self_woken_pending(void *a)
{
    fr_poll_begin(TASK(a));
    fr_wake(TASK(a)); /* runnable again from this poll's end, on this worker */
    fr_poll_end(TASK(a), FR_PENDING);
}

static void hog_long(void *a)
{
    fr_poll_begin(TASK(a));
    sc_spin_ms(8 * SC_STARVATION_MS);
    fr_poll_end(TASK(a), FR_READY);
}

static void outside_any_poll(void *a)
{
    (void)a;
    sc_spin_ms(6 * SC_STARVATION_MS); /* the loop's own start-up: nothing recorded */
}

/* A task runnable on worker-2, which then spent the wait outside any poll
 * (a loop thread still starting up), while worker-1 ran a long poll: that
 * poll never stood in its way (a libuv loop's tasks run on its thread
 * alone), so no starvation, and no verdict on what held worker-2. Its twin:
 * a task queued on worker-1 behind the same poll and run at last by
 * worker-2 starves behind it (the golden dump's shape). */
Test(findings, a_long_poll_on_another_worker_is_no_culprit)
{
    sc_run(w2, sc_spawn, ARG(81));
    sc_run(w2, self_woken_pending, ARG(81));
    fr_spawn(82, 0, "hog");
    sc_start(w1, hog_long, ARG(82));
    sc_run(w2, outside_any_poll, NULL);
    sc_run(w2, sc_poll_ready_drop, ARG(81));
    sc_wait(w1);

    struct sc_result r;
    decode_now(&r);
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 82), "%s", sc_describe(&r));
    cr_assert_null(sc_find(&r, FRD_STARVATION, 81), "%s", sc_describe(&r));
    sc_result_free(&r);
}

static void spawn_then_hog(void *a)
{
    fr_spawn(TASK(a), 0, "queued");
    hog_long(ARG(TASK(a) + 1));
}

Test(findings, a_task_queued_behind_a_long_poll_starves_though_another_worker_runs_it)
{
    fr_spawn(84, 0, "hog");
    sc_run(w1, spawn_then_hog, ARG(83)); /* 83 queued on worker-1, behind 84 */
    sc_run(w2, sc_poll_ready_drop, ARG(83)); /* stolen at last by worker-2 */

    struct sc_result r;
    decode_now(&r);
    const struct frd_finding *st = sc_find(&r, FRD_STARVATION, 83);
    cr_assert_not_null(st, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(st->message, "task 84 \"hog\""), "%s", st->message);
    sc_result_free(&r);
}

/* An adapter's task name ends in a module offset: a message that cut it
 * would name another address. Whole up to FRD_TASK_NAME_SHOWN bytes, and a
 * longer one says it was cut. */
Test(findings, a_long_task_name_is_whole_in_the_message)
{
    static const char name[] = "uv async libisc-9.18.49-1~deb12u3-Debian.so+0x29270";
    char longer[FRD_TASK_NAME_SHOWN + 40];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    fr_spawn(41, 0, name);
    sc_run(w1, hog, NULL);
    fr_spawn(61, 0, longer);
    sc_run(w2, sc_poll_ready_drop, ARG(61));

    struct sc_result r;
    decode_now(&r);
    const struct frd_finding *lp = sc_find(&r, FRD_LONG_POLL, 41);
    cr_assert_not_null(lp, "%s", sc_describe(&r));
    char want[96];
    snprintf(want, sizeof want, "task 41 \"%s\"", name);
    cr_assert_not_null(strstr(lp->message, want), "%s", lp->message);
    int32_t ti = -1;
    for (size_t i = 0; i < r.m.ntasks; i++)
        if (r.m.tasks[i].id == 61)
            ti = (int32_t)i;
    cr_assert_geq(ti, 0);
    char label[FRD_TASK_LABEL_MAX];
    frd_task_label(&r.m, ti, label, sizeof label);
    cr_assert_eq(strlen(label), strlen("task 61 \"\"") + FRD_TASK_NAME_SHOWN, "%s", label);
    cr_assert_not_null(strstr(label, "xxx...\""), "%s", label);
    sc_result_free(&r);
}

static void wait_on_db(void *a)
{
    fr_poll_begin(TASK(a));
    FR_AWAIT(TASK(a), "db_query");
    fr_poll_end(TASK(a), FR_PENDING);
}

Test(findings, hung_task_reports_its_await_label)
{
    sc_run(w1, sc_spawn, ARG(50));
    sc_run(w1, wait_on_db, ARG(50));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);
    sc_sleep_ms(SC_HANG_MS + 50);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 50);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "blocked at db_query (" __FILE__ ":"), "%s",
                       x->message);
    cr_assert_geq(x->duration_ns, SC_HANG_MS * 1000000LL);
    sc_result_free(&r);
}

Test(findings, never_polled)
{
    sc_run(w1, sc_spawn, ARG(60));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);
    sc_sleep_ms(4 * SC_STARVATION_MS);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_NEVER_POLLED, 60), "%s", sc_describe(&r));
    sc_result_free(&r);
}

Test(findings, protocol_wake_after_drop)
{
    sc_run(w1, sc_spawn, ARG(70));
    sc_run(w1, sc_poll_ready_drop, ARG(70));
    fr_wake(70);
    sc_run(w1, sc_park, NULL);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_PROTOCOL, 70);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "wake after drop"), "%s", x->message);
    sc_result_free(&r);
}

Test(findings, protocol_overlapping_polls)
{
    sc_run(w1, sc_spawn, ARG(71));
    sc_run(w1, sc_poll_begin, ARG(71));
    sc_run(w2, sc_poll_begin, ARG(71));
    sc_run(w2, sc_poll_end_pending, ARG(71));
    sc_run(w1, sc_poll_end_pending, ARG(71));
    fr_wake(71);
    sc_run(w1, sc_poll_ready_drop, ARG(71));

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_PROTOCOL, 71), "%s", sc_describe(&r));
    sc_result_free(&r);
}

Test(findings, id_reused_after_drop_is_two_tasks)
{
    sc_run(w1, sc_spawn, ARG(80));
    sc_run(w1, sc_poll_ready_drop, ARG(80));
    fr_spawn(80, 0, "second");
    sc_run(w2, sc_poll_ready_drop, ARG(80));
    sc_run(w1, sc_park, NULL);
    sc_run(w2, sc_park, NULL);

    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    size_t n = 0;
    for (size_t i = 0; i < r.m.ntasks; i++)
        if (r.m.tasks[i].id == 80) {
            n++;
            cr_assert_eq(r.m.tasks[i].npolls, 1);
            cr_assert_eq(r.m.tasks[i].state, FRD_TASK_DROPPED);
        }
    cr_assert_eq(n, 2);
    sc_result_free(&r);
}

static void flood(void *a)
{
    (void)a;
    for (int i = 0; i < 40000; i++)
        fr_mark(91, "tick");
}

Test(history, overwritten_history_is_not_never_polled, .timeout = 60)
{
    sc_recorder_start(16); /* the smallest ring: worker-1 overwrites quickly */
    w1 = sc_worker_start("worker-1");
    fr_spawn(90, 0, "early"); /* main's ring keeps this */
    sc_run(w1, sc_poll_pending, ARG(90));
    fr_wake(90);
    sc_run(w1, sc_poll_ready, ARG(90)); /* both polls will be overwritten */
    sc_run(w1, flood, NULL);
    sc_sleep_ms(4 * SC_STARVATION_MS);

    struct sc_result r;
    decode_now(&r);
    const struct frd_thread *t = NULL;
    for (size_t i = 0; i < r.d->nthreads; i++)
        if (r.d->threads[i].tid == sc_worker_tid(w1))
            t = &r.d->threads[i];
    cr_assert_not_null(t);
    cr_assert_gt(t->events_overwritten, 0);
    cr_assert_eq(t->complete_head, 0);
    cr_assert_eq(sc_count(&r, FRD_NEVER_POLLED, 0), 0, "%s", sc_describe(&r));
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
    sc_worker_stop(w1);
    fr_shutdown();
}

/* A loop's handle (uv_udp_recv_start: spawn, then an external wait outside
 * any poll) served for a while, its start then overwritten in the worker's
 * ring; its callbacks are pending polls with no await of their own. */
static void handle_start(void *a)
{
    fr_spawn(TASK(a), 0, "udp recv");
    fr_await_external(TASK(a), "uv_udp_recv_start");
}

static void handle_served(void *a)
{
    for (int i = 0; i < 3; i++) {
        fr_wake(TASK(a));
        sc_poll_pending(a);
    }
}

static void started_long_ago(uint64_t id, void (*last_poll)(void *), struct sc_result *r)
{
    sc_recorder_start(16); /* the smallest ring: worker-1 overwrites quickly */
    w1 = sc_worker_start("worker-1");
    sc_run(w1, handle_start, ARG(id));
    sc_run(w1, handle_served, ARG(id));
    sc_run(w1, flood, NULL); /* the start leaves the ring */
    sc_run(w1, sc_wake, ARG(id));
    sc_run(w1, last_poll, ARG(id));
    sc_run(w1, sc_park, NULL);
    sc_sleep_ms(SC_HANG_MS + 50);
    decode_now(r);
    const struct frd_thread *t = NULL;
    for (size_t i = 0; i < r->d->nthreads; i++)
        if (r->d->threads[i].tid == sc_worker_tid(w1))
            t = &r->d->threads[i];
    cr_assert_not_null(t);
    cr_assert_gt(t->events_overwritten, 0);
    for (size_t i = 0; i < r->m.ntasks; i++)
        if (r->m.tasks[i].id == id)
            cr_assert_eq(r->m.tasks[i].spawn_seen, 0, "the spawn should have been overwritten");
}

Test(history, handle_started_before_the_window_is_not_hung, .timeout = 60)
{
    struct sc_result r;
    started_long_ago(96, sc_poll_pending, &r);
    cr_assert_eq(sc_count(&r, FRD_HUNG, 0), 0, "%s", sc_describe(&r));
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
    sc_worker_stop(w1);
    fr_shutdown();
}

/* its twin: the last poll, inside the window, says what it waits for */
Test(history, task_started_before_the_window_awaiting_is_hung, .timeout = 60)
{
    struct sc_result r;
    started_long_ago(97, wait_on_db, &r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 97);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "blocked at db_query"), "%s", x->message);
    sc_result_free(&r);
    sc_worker_stop(w1);
    fr_shutdown();
}
