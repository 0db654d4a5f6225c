/*
 * tests/decoder/test_shapes.c - the shapes real runtime bugs take (issue
 * "diagnostic truth"), each recorded with the real recorder on real threads
 * and asserted exactly (kind, task, cause, culprit), each next to its healthy
 * twin, which must give no finding at all:
 *
 *   - a task queued behind a busy worker while another worker is parked is
 *     starvation (the work was not stolen); one whose worker was neither
 *     polling nor parked is no verdict (nothing recorded held it);
 *   - a wake that reaches no parked worker, rescued later, is delayed_wakeup;
 *   - the culprit is the task that held the victim's worker longest, summed
 *     over its polls, not one random poll nor another worker's long poll;
 *   - a poll after the task's poll returned READY is protocol;
 *   - never_polled and end-of-recording starvation say busy or parked and who
 *     woke; a hung task whose only worker was stuck says so; findings with one
 *     cause are told once in the text; outside waits and stopped tasks are
 *     never hung; a task started outside a poll, woken, never polled is a
 *     lost wakeup; a duplicate unpark parks nobody.
 *
 * sc_decode also decodes each dump the lean way and checks both agree.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flightrec.h"
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

TestSuite(shapes, .init = setup, .fini = teardown, .timeout = 60);

#define TASK(a) ((uint64_t)(uintptr_t)(a))
#define ARG(t) ((void *)(uintptr_t)(t))
#define WAIT_MS (6 * SC_STARVATION_MS) /* a wait well past the starvation threshold */
/* a delayed wake with no other task polled first: past the noise factor */
#define LATE_MS (2 * FRD_DELAYED_NOISE_FACTOR * SC_STARVATION_MS)

static void spin_us(unsigned us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < (long)us);
}

static void unpark_poll_ready_drop(void *a) { fr_unpark(); sc_poll_ready_drop(a); }

/* A poll of @task that holds its worker for @ms, then returns ready; dropped. */
static void hog_poll(uint64_t task, unsigned ms)
{
    fr_poll_begin(task);
    sc_spin_ms(ms);
    fr_poll_end(task, FR_READY);
    fr_drop(task);
}

static void decode_now(struct sc_result *r)
{
    char path[512];
    sc_dump(path);
    sc_decode(path, r);
}

static uint64_t id_of(const struct sc_result *r, int32_t inst)
{
    return inst == FRD_NONE ? 0 : r->m.tasks[inst].id;
}

static uint32_t tid_of(const struct sc_result *r, int64_t thread)
{
    return thread < 0 ? 0 : r->d->threads[thread].tid;
}

/* ---- 1. starvation on a busy worker while another is parked ------------- */

static int producer_spins;

static void producer(void *a)
{
    (void)a;
    fr_poll_begin(1);
    fr_wake(2); /* the consumer goes into this worker's own slot */
    if (producer_spins)
        sc_spin_ms(WAIT_MS); /* ...and the producer then blocks the worker */
    fr_poll_end(1, FR_READY);
    fr_drop(1);
    sc_poll_ready_drop(ARG(2));
}

static void producer_consumer(struct sc_result *r, int spins)
{
    producer_spins = spins;
    sc_run(w0, sc_spawn, ARG(1));
    fr_spawn(2, 0, "consumer");
    sc_run(w0, sc_poll_pending, ARG(2));
    sc_run(w1, sc_park, NULL); /* worker-1 sits parked the whole time */
    sc_run(w0, producer, NULL);
    decode_now(r);
}

Test(shapes, starvation_behind_a_busy_worker_while_another_is_parked)
{
    struct sc_result r;
    producer_consumer(&r, 1);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 1), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_STARVATION, 2);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKER_BUSY);
    cr_assert_eq(id_of(&r, x->culprit.task), 1);
    cr_assert_eq(x->culprit.polls, 1);
    cr_assert_eq(tid_of(&r, x->culprit.thread), sc_worker_tid(w0));
    cr_assert_eq(tid_of(&r, x->ran_thread), sc_worker_tid(w0));
    cr_assert_eq(tid_of(&r, x->idle_thread), sc_worker_tid(w1));
    cr_assert_not_null(strstr(x->message, "worker-1 sat parked"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "not stolen"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "woken by worker-0 (task 1 \"job\")"), "%s",
                       x->message);
    sc_result_free(&r);
}

Test(shapes, starvation_behind_a_busy_worker_twin)
{
    struct sc_result r;
    producer_consumer(&r, 0);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* The producer's worker, after its poll, spends WAIT_MS neither polling nor
 * parked (in the runtime's own code, or held by the host) before it polls
 * the consumer: no worker was busy, so there is no culprit to name and no
 * starvation verdict (the recording does not say what held it). */
static void producer_then_away(void *a)
{
    (void)a;
    fr_poll_begin(1);
    fr_wake(2);
    fr_poll_end(1, FR_READY);
    fr_drop(1);
    sc_sleep_ms(WAIT_MS);
    sc_poll_ready_drop(ARG(2));
}

Test(shapes, starvation_twin_worker_away_between_polls_is_no_verdict)
{
    sc_run(w0, sc_spawn, ARG(1));
    fr_spawn(2, 0, "consumer");
    sc_run(w0, sc_poll_pending, ARG(2));
    sc_run(w0, producer_then_away, NULL);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- 2. delayed_wakeup: the wake reached no worker ---------------------- */

static void late_wake(struct sc_result *r, unsigned late_ms)
{
    sc_run(w0, sc_spawn, ARG(10));
    sc_run(w0, sc_poll_pending, ARG(10));
    sc_run(w0, sc_park, NULL); /* about to block in its poller */
    fr_wake(10);            /* from another thread: no notification reaches it */
    sc_sleep_ms(late_ms);   /* an unrelated timer fires at last */
    sc_run(w0, unpark_poll_ready_drop, ARG(10));
    decode_now(r);
}

Test(shapes, delayed_wakeup_woken_while_the_worker_slept)
{
    struct sc_result r;
    late_wake(&r, LATE_MS);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_DELAYED_WAKEUP, 10);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKERS_PARKED);
    cr_assert_eq(x->how, FRD_HOW_WOKEN);
    cr_assert_eq(x->culprit.task, FRD_NONE);
    cr_assert_eq(x->poll, 1);
    cr_assert_eq(tid_of(&r, x->ran_thread), sc_worker_tid(w0));
    cr_assert_eq(tid_of(&r, x->idle_thread), sc_worker_tid(w0));
    cr_assert_geq(x->idle_ns * 2, x->duration_ns);
    cr_assert_geq(x->duration_ns, LATE_MS * 1000000LL);
    cr_assert_not_null(strstr(x->message, "was woken by main but not polled for"), "%s",
                       x->message);
    cr_assert_not_null(strstr(x->message, "worker-0 sat parked"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "poll #2 came at last on worker-0"), "%s", x->message);
    sc_result_free(&r);
}

Test(shapes, delayed_wakeup_twin_wake_honoured_at_once)
{
    struct sc_result r;
    late_wake(&r, 0);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

Test(shapes, delayed_wakeup_of_a_spawn)
{
    sc_run(w0, sc_park, NULL);
    fr_spawn(11, 0, "late");
    sc_sleep_ms(LATE_MS);
    sc_run(w0, unpark_poll_ready_drop, ARG(11));
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_DELAYED_WAKEUP, 11);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->how, FRD_HOW_SPAWNED);
    cr_assert_eq(x->poll, 0);
    sc_result_free(&r);
}

/* The worker wakes for an unrelated timer (task 12, woken after the victim),
 * polls it, and only then the victim: rescued, so a verdict even though the
 * wait is short of the noise factor. */
static void timer_then_victim(void *a)
{
    (void)a;
    fr_unpark();
    sc_poll_ready_drop(ARG(12));
    sc_poll_ready_drop(ARG(10));
}

Test(shapes, delayed_wakeup_rescued_by_an_unrelated_timer)
{
    sc_run(w0, sc_spawn, ARG(10));
    sc_run(w0, sc_poll_pending, ARG(10));
    sc_run(w0, sc_spawn, ARG(12));
    sc_run(w0, sc_poll_pending, ARG(12));
    sc_run(w0, sc_park, NULL);
    fr_wake(10); /* lost */
    sc_sleep_ms(WAIT_MS);
    fr_wake(12); /* the timer that wakes the worker */
    sc_run(w0, timer_then_victim, NULL);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_DELAYED_WAKEUP, 10);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_geq(x->duration_ns, WAIT_MS * 1000000LL);
    sc_result_free(&r);
}

/* Twin: the same short wait, but the worker's first poll is the victim: a
 * thread the OS was slow to run on a loaded machine looks exactly like this,
 * so it is no verdict. */
Test(shapes, delayed_wakeup_twin_slow_to_schedule)
{
    struct sc_result r;
    late_wake(&r, WAIT_MS);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- 3. the culprit: busy time summed per task, on the victim's worker --- */

#define GREEDY_POLLS 3000
#define GREEDY_WAKE_AT 100
static int greedy_prompt;

static void greedy(void *a)
{
    (void)a;
    for (int i = 0; i < GREEDY_POLLS; i++) {
        if (i == GREEDY_WAKE_AT) {
            fr_wake(20); /* the victim joins this worker's queue */
            if (greedy_prompt)
                sc_poll_ready_drop(ARG(20));
        }
        fr_poll_begin(21);
        spin_us(10);
        fr_poll_end(21, FR_PENDING);
    }
    if (!greedy_prompt)
        sc_poll_ready_drop(ARG(20));
    sc_poll_ready_drop(ARG(21));
}

static void greedy_run(struct sc_result *r, char *path, int prompt)
{
    greedy_prompt = prompt;
    sc_run(w0, sc_spawn, ARG(20));
    sc_run(w0, sc_poll_pending, ARG(20));
    fr_spawn(21, 0, "greedy");
    sc_run(w0, greedy, NULL);
    sc_dump(path);
    sc_decode_with(path, r, SC_STARVATION_MS, 1000, SC_HANG_MS * 10); /* no long polls here */
}

Test(shapes, culprit_sums_many_short_polls_of_one_task)
{
    struct sc_result r;
    char path[512], args[700], *out, *err, want[256];
    greedy_run(&r, path, 0);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_STARVATION, 20);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKER_BUSY);
    cr_assert_eq(id_of(&r, x->culprit.task), 21);
    cr_assert_eq(x->culprit.polls, GREEDY_POLLS - GREEDY_WAKE_AT);
    cr_assert_leq(x->culprit.busy_ns, x->duration_ns);
    cr_assert_geq(x->culprit.busy_ns * 2, x->duration_ns);
    cr_assert_not_null(strstr(x->message, "behind task 21 \"greedy\": 2,900 polls, "), "%s",
                       x->message);
    /* the JSON says the same */
    snprintf(args, sizeof(args), "analyze '%s' --json --starvation-ms %d --long-poll-ms 1000",
             path, SC_STARVATION_MS);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    snprintf(want, sizeof(want),
             "\"culprit\": {\"task\": 21, \"name\": \"greedy\", \"thread\": %u, \"busy_ns\": %lld, "
             "\"polls\": %d}",
             sc_worker_tid(w0), (long long)x->culprit.busy_ns, GREEDY_POLLS - GREEDY_WAKE_AT);
    cr_assert_not_null(strstr(out, want), "%s\nwant %s", out, want);
    sc_result_free(&r);
}

Test(shapes, culprit_twin_victim_polled_at_once)
{
    struct sc_result r;
    char path[512];
    greedy_run(&r, path, 1);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* worker-1's poll: far longer than the long-poll threshold the test uses, which
 * itself is far above a time slice lost to a loaded machine */
#define ELSEWHERE_MS (10 * WAIT_MS)

static void long_poll_elsewhere(void *a)
{
    (void)a;
    fr_spawn(32, 0, "long");
    hog_poll(32, ELSEWHERE_MS);
}

static void many_short_polls(void *a)
{
    (void)a;
    fr_spawn(31, 0, "main_loop"); /* spawned here, polled at once: not a victim */
    fr_wake(30);                  /* queued on worker-0 */
    for (int i = 0; i < 2000; i++) {
        fr_poll_begin(31);
        spin_us(10);
        fr_poll_end(31, FR_PENDING);
    }
    sc_poll_ready_drop(ARG(30));
    sc_poll_ready_drop(ARG(31));
}

Test(shapes, culprit_is_on_the_victims_worker_not_the_longest_poll)
{
    sc_run(w0, sc_spawn, ARG(30));
    sc_run(w0, sc_poll_pending, ARG(30));
    sc_start(w1, long_poll_elsewhere, NULL); /* one long poll on worker-1 */
    sc_sleep_ms(1);
    sc_run(w0, many_short_polls, NULL);
    sc_wait(w1);
    struct sc_result r;
    char path[512];
    sc_dump(path);
    /* long polls: the 300 ms one, not a 10 us one that the machine preempted */
    sc_decode_with(path, &r, SC_STARVATION_MS, ELSEWHERE_MS / 2, SC_HANG_MS * 10);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 32), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_STARVATION, 30);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(id_of(&r, x->culprit.task), 31, "%s", x->message);
    cr_assert_eq(x->culprit.polls, 2000);
    cr_assert_eq(tid_of(&r, x->culprit.thread), sc_worker_tid(w0));
    sc_result_free(&r);
}

/* ---- 4. a poll after the task's poll returned READY ---------------------- */

Test(shapes, protocol_poll_after_ready)
{
    sc_run(w0, sc_spawn, ARG(40));
    sc_run(w0, sc_poll_ready, ARG(40));
    fr_wake(40);                      /* a stale waker */
    sc_run(w0, sc_poll_ready_drop, ARG(40)); /* the finished task polled again */
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_PROTOCOL, 40);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_not_null(strstr(x->message, "poll after the task's poll returned ready"), "%s",
                       x->message);
    sc_result_free(&r);
}

Test(shapes, protocol_twin_late_wake_without_poll)
{
    sc_run(w0, sc_spawn, ARG(41));
    sc_run(w0, sc_poll_ready, ARG(41));
    fr_wake(41); /* late, harmless: nothing polls it */
    sc_run(w0, sc_drop, ARG(41));
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- never_polled and starvation at the end: busy or parked ------------- */

Test(shapes, never_polled_while_workers_parked)
{
    sc_run(w0, sc_park, NULL);
    sc_run(w1, sc_park, NULL);
    fr_spawn(60, 0, "orphan");
    sc_sleep_ms(WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_NEVER_POLLED, 60);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKERS_PARKED);
    cr_assert_eq(x->workers, 2);
    cr_assert_eq(x->workers_parked, 2);
    cr_assert_not_null(strstr(x->message, "spawned on main"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "sat parked"), "%s", x->message);
    sc_result_free(&r);
}

static int queued_spins;

static void spawn_then_hog(void *a)
{
    (void)a;
    fr_spawn(61, 0, "queued"); /* into this worker's queue */
    hog_poll(62, queued_spins ? WAIT_MS : 0);
    if (!queued_spins)
        sc_poll_ready_drop(ARG(61));
}

static void never_polled_busy(struct sc_result *r, int spins)
{
    queued_spins = spins;
    sc_run(w1, sc_park, NULL);
    sc_run(w0, spawn_then_hog, NULL);
    decode_now(r);
}

Test(shapes, never_polled_while_its_worker_was_busy)
{
    struct sc_result r;
    never_polled_busy(&r, 1);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 62), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_NEVER_POLLED, 61);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKER_BUSY, "%s", x->message);
    cr_assert_eq(id_of(&r, x->culprit.task), 62);
    cr_assert_not_null(strstr(x->message, "its worker was busy, behind task 62"), "%s",
                       x->message);
    sc_result_free(&r);
}

Test(shapes, never_polled_twin_polled_after_a_short_poll)
{
    struct sc_result r;
    never_polled_busy(&r, 0);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

static void wake_then_hog(void *a)
{
    (void)a;
    fr_wake(70);
    hog_poll(71, WAIT_MS);
}

Test(shapes, starvation_at_the_end_says_who_woke_and_who_was_busy)
{
    sc_run(w0, sc_spawn, ARG(70));
    sc_run(w0, sc_poll_pending, ARG(70));
    sc_run(w1, sc_park, NULL);
    sc_run(w0, wake_then_hog, NULL);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 71), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_STARVATION, 70);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKER_BUSY);
    cr_assert_eq(x->ran_thread, -1);
    cr_assert_eq(id_of(&r, x->culprit.task), 71);
    cr_assert_eq(x->workers, 2);
    cr_assert_eq(x->workers_parked, 1);
    cr_assert_not_null(strstr(x->message, "woken by worker-0"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "up to the dump"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "1 parked"), "%s", x->message);
    sc_result_free(&r);
}

/* ---- hung behind a stuck worker ----------------------------------------- */

static void wait_on_db(void *a)
{
    fr_poll_begin(TASK(a));
    FR_AWAIT(TASK(a), "db_query");
    fr_poll_end(TASK(a), FR_PENDING);
}

static void stuck(void *a)
{
    (void)a;
    fr_poll_begin(81); /* never returns before the dump */
    sc_spin_ms(SC_HANG_MS + 30);
}

Test(shapes, hung_while_its_only_worker_was_stuck)
{
    sc_run(w0, sc_spawn, ARG(80));
    sc_run(w0, wait_on_db, ARG(80));
    fr_spawn(81, 0, "stuck");
    sc_run(w0, stuck, NULL);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 81), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 80);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WORKER_STUCK);
    cr_assert_eq(id_of(&r, x->culprit.task), 81);
    cr_assert_not_null(strstr(x->message, "its only worker was held the whole time"), "%s",
                       x->message);
    sc_result_free(&r);
}

Test(shapes, hung_twin_woken_and_finished)
{
    sc_run(w0, sc_spawn, ARG(80));
    sc_run(w0, wait_on_db, ARG(80));
    fr_spawn(81, 0, "short");
    sc_run(w0, sc_poll_ready_drop, ARG(81));
    fr_wake(80);
    sc_run(w0, sc_poll_ready_drop, ARG(80));
    sc_sleep_ms(SC_HANG_MS + 30);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- waits that are no bug ---------------------------------------------- */

static void wait_outside(void *a)
{
    fr_poll_begin(TASK(a));
    fr_await_external(TASK(a), "accept");
    fr_poll_end(TASK(a), FR_PENDING);
}

static void stop_in_poll(void *a)
{
    fr_poll_begin(TASK(a));
    fr_idle(TASK(a));
    fr_poll_end(TASK(a), FR_PENDING);
}

Test(shapes, outside_input_and_stopped_tasks_are_never_hung)
{
    sc_run(w0, sc_spawn, ARG(90));
    sc_run(w0, wait_outside, ARG(90)); /* a listener, holding its waker */
    fr_waker_clone(90);
    sc_run(w0, sc_spawn, ARG(91));
    sc_run(w0, stop_in_poll, ARG(91)); /* a stopped handle */
    fr_spawn(92, 0, "listener");
    fr_await_external(92, "listen"); /* started outside any poll */
    fr_spawn(93, 0, "timer");
    fr_idle(93); /* started stopped */
    sc_run(w0, sc_spawn, ARG(94));
    fr_waker_clone(94);
    sc_run(w0, wait_outside, ARG(94)); /* an idle connection whose waker the */
    fr_waker_drop(94);                 /* reactor keeps elsewhere: not lost */
    sc_run(w0, sc_park, NULL);
    sc_run(w1, sc_park, NULL);
    sc_sleep_ms(SC_HANG_MS + 50);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    cr_assert_eq(r.m.ntasks, 5);
    sc_result_free(&r);
}

static void started_woken(struct sc_result *r, int polled)
{
    fr_spawn(100, 0, "handle");
    fr_await(100, "read_start"); /* a loop's start call: waits, not runnable */
    sc_run(w0, sc_park, NULL);
    sc_run(w1, sc_park, NULL);
    fr_wake(100);
    if (polled)
        sc_run(w0, unpark_poll_ready_drop, ARG(100));
    sc_sleep_ms(WAIT_MS);
    decode_now(r);
}

Test(shapes, started_outside_a_poll_woken_never_polled_is_a_lost_wakeup)
{
    struct sc_result r;
    started_woken(&r, 0);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_LOST_WAKEUP, 100);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_WAKE_LOST);
    cr_assert_not_null(strstr(x->message, "notification lost"), "%s", x->message);
    cr_assert_not_null(strstr(x->message, "started outside any poll, at \"read_start\""), "%s",
                       x->message);
    sc_result_free(&r);
}

Test(shapes, started_outside_a_poll_woken_and_polled_twin)
{
    struct sc_result r;
    started_woken(&r, 1);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- the model: a duplicate unpark parks nobody ------------------------- */

static void dup_unpark_then_poll(void *a)
{
    (void)a;
    hog_poll(111, WAIT_MS);
    fr_unpark(); /* a duplicate: the adapter recorded one already */
    sc_poll_ready_drop(ARG(110));
}

Test(shapes, duplicate_unpark_is_not_a_parked_span)
{
    sc_run(w0, sc_park, NULL);
    sc_run(w0, sc_unpark, NULL);
    sc_run(w0, sc_spawn, ARG(110));
    sc_run(w0, sc_poll_pending, ARG(110));
    fr_spawn(111, 0, "hog");
    fr_wake(110);
    sc_run(w0, dup_unpark_then_poll, NULL);
    struct sc_result r;
    decode_now(&r);
    const struct frd_worker *w = NULL;
    for (size_t i = 0; i < r.d->nthreads; i++)
        if (r.d->threads[i].tid == sc_worker_tid(w0))
            w = &r.m.workers[i];
    cr_assert_not_null(w);
    cr_assert_eq(w->nparked, 1, "the duplicate unpark made a parked span");
    /* judged busy, not parked: the hog is the culprit */
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    cr_assert_not_null(sc_find(&r, FRD_LONG_POLL, 111), "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_STARVATION, 110);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(id_of(&r, x->culprit.task), 111);
    sc_result_free(&r);
}

Test(shapes, first_unpark_without_park_is_parked_since_the_start)
{
    sc_run(w0, sc_unpark, NULL);
    struct sc_result r;
    decode_now(&r);
    for (size_t i = 0; i < r.d->nthreads; i++)
        if (r.d->threads[i].tid == sc_worker_tid(w0)) {
            cr_assert_eq(r.m.workers[i].nparked, 1);
            cr_assert_eq(r.m.workers[i].parked[0].begin_ns, r.d->threads[i].first_ns);
        }
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- text output: findings sharing one cause are told once -------------- */

static void seven_behind_one(void *a)
{
    (void)a;
    for (uint64_t t = 120; t < 127; t++)
        fr_spawn(t, 0, "victim");
    hog_poll(127, WAIT_MS);
    for (uint64_t t = 120; t < 127; t++)
        sc_poll_ready_drop(ARG(t));
}

Test(shapes, findings_with_one_cause_are_grouped_in_text_not_in_json)
{
    char path[512], args[700], *out, *err;
    fr_spawn(127, 0, "hog");
    sc_run(w0, seven_behind_one, NULL);
    struct sc_result r;
    sc_dump(path);
    sc_decode(path, &r);
    cr_assert_eq(sc_count(&r, FRD_STARVATION, 0), 7, "%s", sc_describe(&r));
    cr_assert_eq(r.f.n, 8, "%s", sc_describe(&r));
    for (size_t i = 0; i < r.f.n; i++)
        if (r.f.v[i].kind == FRD_STARVATION)
            cr_assert_eq(id_of(&r, r.f.v[i].culprit.task), 127);
    snprintf(args, sizeof(args), "analyze '%s' --starvation-ms %d --long-poll-ms %d", path,
             SC_STARVATION_MS, SC_LONG_POLL_MS);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, ": 7 tasks, one cause\n  behind task 127 \"hog\": 1 poll, "),
                       "%s", out);
    size_t lines = 0;
    for (const char *p = out; (p = strstr(p, "\n  - task 12")); p++)
        lines++;
    cr_assert_eq(lines, 7, "%s", out);
    /* the victims' lines do not repeat the cause */
    for (const char *p = out; (p = strstr(p, "\n  - task 12")); p++) {
        const char *eol = strchr(p + 1, '\n');
        const char *b = strstr(p, "behind");
        cr_assert(!b || (eol && b > eol), "%s", out);
    }
    snprintf(args, sizeof(args), "analyze '%s' --json --starvation-ms %d --long-poll-ms %d", path,
             SC_STARVATION_MS, SC_LONG_POLL_MS);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    size_t n = 0;
    for (const char *p = out; (p = strstr(p, "\"kind\": \"starvation\"")); p++)
        n++;
    cr_assert_eq(n, 7, "%s", out);
    sc_result_free(&r);
}
