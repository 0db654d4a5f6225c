/*
 * tests/decoder/test_locks.c - locks and deadlocks (fr_lock_wait,
 * fr_lock_acquire, fr_lock_release), recorded with the real recorder on real
 * worker threads and asserted exactly, each finding next to its healthy twin:
 *
 *   - AB-BA on two workers is one deadlock whose cycle names both tasks and
 *     locks; the same two tasks taking the locks in one order give nothing;
 *   - a three-task cycle is one deadlock of three;
 *   - heavy contention without a cycle (8 tasks, 2 workers, one lock, 3000
 *     acquisitions) gives exact counts in `flightrec locks --json` and no
 *     finding;
 *   - a task hung behind a holder that waits forever at its own await names
 *     the holder and its await, and is no deadlock;
 *   - a lock whose holder was dropped is named a leaked lock;
 *   - releasing a lock one does not hold is protocol;
 *   - a lock whose acquisition fell out of the ring gives no false finding
 *     (no deadlock, no protocol).
 *
 * sc_decode also decodes each dump the lean way and checks both agree.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "scenario.h"

static struct sc_worker *w0, *w1;

static void start(unsigned ring_kb)
{
    sc_recorder_start(ring_kb);
    fr_thread_name("main");
    w0 = sc_worker_start("worker-0");
    w1 = sc_worker_start("worker-1");
}

static void setup(void) { start(0); }

static void teardown(void)
{
    sc_worker_stop(w0);
    sc_worker_stop(w1);
    fr_shutdown();
}

TestSuite(locks, .init = setup, .fini = teardown, .timeout = 120);

#define ARG(t) ((void *)(uintptr_t)(t))
#define U(a) ((uint64_t)(uintptr_t)(a))
#define HANG_WAIT_MS (2 * SC_HANG_MS) /* a wait well past the hang threshold */

/* Lock ids: addresses, as a runtime would pass them. */
static char lock_a, lock_b, lock_c;
#define A ((uint64_t)(uintptr_t)&lock_a)
#define B ((uint64_t)(uintptr_t)&lock_b)
#define C ((uint64_t)(uintptr_t)&lock_c)

static const char *lock_name(uint64_t lock)
{
    return lock == A ? "accounts" : lock == B ? "ledger" : "audit";
}

/* One step of a scripted task: which task, what it does inside one poll. */
struct step {
    uint64_t task;
    uint64_t wait;    /* fr_lock_wait for this lock, then pending (0: none) */
    uint64_t acquire; /* fr_lock_acquire (after the wait, if any) */
    uint64_t release; /* fr_lock_release */
    uint64_t release2;
    uint64_t wake;    /* fr_wake this task */
    int ready;        /* returns ready and is dropped */
};

static void run_step(void *a)
{
    const struct step *s = a;
    fr_poll_begin(s->task);
    if (s->wait) {
        fr_lock_wait(s->task, s->wait, lock_name(s->wait));
        if (!s->acquire)
            fr_await(s->task, "lock");
    }
    if (s->acquire)
        fr_lock_acquire(s->task, s->acquire);
    if (s->release)
        fr_lock_release(s->task, s->release);
    if (s->release2)
        fr_lock_release(s->task, s->release2);
    if (s->wake)
        fr_wake(s->wake);
    fr_poll_end(s->task, s->ready ? FR_READY : FR_PENDING);
    if (s->ready)
        fr_drop(s->task);
}

static void on(struct sc_worker *w, struct step s) { sc_run(w, run_step, &s); }

static void decode_now(struct sc_result *r)
{
    char path[512];
    sc_dump(path);
    sc_decode(path, r);
}

static void decode_path(struct sc_result *r, char *path)
{
    sc_dump(path);
    sc_decode(path, r);
}

/* ---- deadlocks ---------------------------------------------------------- */

Test(locks, ab_ba_on_two_workers_is_one_deadlock)
{
    fr_spawn(301, 0, "transfer_out");
    fr_spawn(302, 0, "transfer_in");
    on(w0, (struct step){.task = 301, .wait = A, .acquire = A});
    on(w1, (struct step){.task = 302, .wait = B, .acquire = B});
    on(w0, (struct step){.task = 301, .wait = B});
    on(w1, (struct step){.task = 302, .wait = A});
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    char path[512];
    decode_path(&r, path);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_DEADLOCK, 301);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_LOCK_CYCLE);
    cr_assert_eq(x->ncycle, 2);
    cr_assert_eq(r.m.tasks[x->cycle[0].task].id, 301);
    cr_assert_eq(x->cycle[0].lock, B);
    cr_assert_eq(r.m.tasks[x->cycle[0].held_by].id, 302);
    cr_assert_eq(r.m.tasks[x->cycle[1].task].id, 302);
    cr_assert_eq(x->cycle[1].lock, A);
    cr_assert_eq(r.m.tasks[x->cycle[1].held_by].id, 301);
    cr_assert_geq(x->duration_ns, (int64_t)SC_HANG_MS * 1000000);
    cr_assert_not_null(strstr(x->message, "task 301 \"transfer_out\" holds \"accounts\", waits "
                                          "for \"ledger\" ← held by task 302 \"transfer_in\", "
                                          "which waits for \"accounts\""),
                       "%s", x->message);

    char *out, *err, args[700];
    snprintf(args, sizeof(args), "analyze '%s' --json --hang-ms %d", path, SC_HANG_MS);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    char want[256];
    snprintf(want, sizeof(want),
             "\"cycle\": [{\"task\": 301, \"name\": \"transfer_out\", \"lock\": %llu, "
             "\"lock_name\": \"ledger\", \"held_by\": 302, ",
             (unsigned long long)B);
    cr_assert_not_null(strstr(out, want), "%s", out);
    snprintf(want, sizeof(want),
             "{\"task\": 302, \"name\": \"transfer_in\", \"lock\": %llu, "
             "\"lock_name\": \"accounts\", \"held_by\": 301, ",
             (unsigned long long)A);
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
    free(err);
    /* neither lock was ever released: no hold to measure, said as null */
    snprintf(args, sizeof(args), "locks '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"hold_max_ns\": null"), "%s", out);
    cr_assert_null(strstr(out, "\"hold_max_ns\": 0"), "%s", out);
    free(out);
    free(err);
    sc_result_free(&r);
}

/* The healthy twin: both take A then B; the second waits, is handed A. */
Test(locks, ab_ab_on_two_workers_is_no_finding)
{
    fr_spawn(301, 0, "transfer_out");
    fr_spawn(302, 0, "transfer_in");
    on(w0, (struct step){.task = 301, .wait = A, .acquire = A});
    on(w1, (struct step){.task = 302, .wait = A});
    on(w0, (struct step){.task = 301, .wait = B, .acquire = B});
    on(w0, (struct step){.task = 301, .release = B, .release2 = A, .wake = 302, .ready = 1});
    on(w1, (struct step){.task = 302, .acquire = A});
    on(w1, (struct step){.task = 302, .wait = B, .acquire = B});
    on(w1, (struct step){.task = 302, .release = B, .release2 = A, .ready = 1});
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    cr_assert_eq(r.m.locks.n, 2);
    int64_t ia = frd_lock_find(&r.m.locks, A);
    cr_assert_geq(ia, 0);
    const struct frd_lock *k = &r.m.locks.v[ia];
    cr_assert_eq(k->acquisitions, 2);
    cr_assert_eq(k->contended, 1);
    cr_assert_eq(k->nholders, 0);
    /* the hand-over: 302's wait for A was granted after 301's release */
    size_t granted = 0;
    for (size_t i = 0; i < r.m.locks.nwaits; i++) {
        const struct frd_lock_wait *w = &r.m.locks.waits[i];
        if (r.m.tasks[w->task].id == 302 && w->lock == (uint32_t)ia) {
            cr_assert_neq(w->after_task, FRD_NONE);
            cr_assert_eq(r.m.tasks[w->after_task].id, 301);
            cr_assert_geq(w->end_ns, w->after_ns);
            granted++;
        }
    }
    cr_assert_eq(granted, 1);
    sc_result_free(&r);
}

Test(locks, three_task_cycle_is_one_deadlock_of_three)
{
    fr_spawn(1, 0, "a");
    fr_spawn(2, 0, "b");
    fr_spawn(3, 0, "c");
    fr_spawn(4, 0, "bystander");
    on(w0, (struct step){.task = 1, .wait = A, .acquire = A});
    on(w1, (struct step){.task = 2, .wait = B, .acquire = B});
    on(w0, (struct step){.task = 3, .wait = C, .acquire = C});
    on(w1, (struct step){.task = 1, .wait = B});
    on(w0, (struct step){.task = 2, .wait = C});
    on(w1, (struct step){.task = 3, .wait = A});
    on(w0, (struct step){.task = 4, .wait = A}); /* waits behind the cycle, not in it */
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(sc_count(&r, FRD_DEADLOCK, 0), 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_DEADLOCK, 1);
    cr_assert_eq(x->ncycle, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(r.m.tasks[x->cycle[i].task].id, i + 1);
        cr_assert_eq(x->cycle[i].held_by, x->cycle[(i + 1) % 3].task);
    }
    cr_assert_eq(x->cycle[0].lock, B);
    cr_assert_eq(x->cycle[1].lock, C);
    cr_assert_eq(x->cycle[2].lock, A);
    /* the tasks of the cycle are told by the deadlock, not as hung; the
     * bystander is hung, behind task 1, which waits for "ledger" */
    for (uint64_t t = 1; t <= 3; t++)
        cr_assert_null(sc_find(&r, FRD_HUNG, t), "%s", sc_describe(&r));
    const struct frd_finding *h = sc_find(&r, FRD_HUNG, 4);
    cr_assert_not_null(h, "%s", sc_describe(&r));
    cr_assert_eq(h->cause, FRD_CAUSE_LOCK_HELD);
    cr_assert_eq(h->lock, A);
    cr_assert_eq(r.m.tasks[h->lock_holder].id, 1);
    cr_assert_not_null(strstr(h->message, "held by task 1 \"a\", which itself waits for "
                                          "\"ledger\""),
                       "%s", h->message);
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    sc_result_free(&r);
}

/* ---- heavy contention, no cycle ----------------------------------------- */

#define NTASKS 8
#define ROUNDS 375 /* 3000 acquisitions */

static void contention_round(void *a)
{
    (void)a;
    /* every task asks; the first gets it at once, the rest queue */
    for (uint64_t t = 1; t <= NTASKS; t++) {
        fr_poll_begin(t);
        fr_lock_wait(t, A, "conn_pool");
        if (t == 1)
            fr_lock_acquire(t, A);
        else
            fr_await(t, "conn_pool");
        fr_poll_end(t, FR_PENDING);
    }
    /* each holder hands it on to the next */
    for (uint64_t t = 1; t <= NTASKS; t++) {
        fr_poll_begin(t);
        if (t > 1)
            fr_lock_acquire(t, A);
        fr_lock_release(t, A);
        if (t < NTASKS)
            fr_wake(t + 1);
        fr_poll_end(t, FR_PENDING);
    }
}

static void finish_all(void *a)
{
    (void)a;
    for (uint64_t t = 1; t <= NTASKS; t++) {
        fr_poll_begin(t);
        fr_poll_end(t, FR_READY);
        fr_drop(t);
    }
}

/* The number after "key": in @s, or -1. */
static long long json_num(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

Test(locks, heavy_contention_without_a_cycle_counts_exactly_and_finds_nothing)
{
    for (uint64_t t = 1; t <= NTASKS; t++)
        fr_spawn(t, 0, "client");
    for (int i = 0; i < ROUNDS; i++)
        sc_run(i % 2 ? w1 : w0, contention_round, NULL);
    sc_run(w0, finish_all, NULL);
    struct sc_result r;
    char path[512];
    decode_path(&r, path);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));

    char *out, *err, args[700];
    snprintf(args, sizeof(args), "locks '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_eq(json_num(out, "\"acquisitions\": "), NTASKS * ROUNDS, "%s", out);
    cr_assert_eq(json_num(out, "\"contended\": "), (NTASKS - 1) * ROUNDS, "%s", out);
    cr_assert_not_null(strstr(out, "\"name\": \"conn_pool\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"holder\": null"), "%s", out);
    cr_assert_eq(json_num(out, "\"waiting\": "), 0, "%s", out);
    long long total = json_num(out, "\"wait_total_ns\": ");
    long long max = json_num(out, "\"wait_max_ns\": ");
    cr_assert_gt(total, 0, "%s", out);
    cr_assert_leq(max, total, "%s", out);
    /* the three tasks that waited longest, longest first, within the total */
    const char *top = strstr(out, "\"top_waiters\": [");
    cr_assert_not_null(top, "%s", out);
    long long prev = total, sum = 0;
    const char *p = top;
    for (int i = 0; i < 3; i++) {
        p = strstr(p + 1, "\"wait_total_ns\": ");
        cr_assert_not_null(p, "%s", out);
        long long v = strtoll(p + strlen("\"wait_total_ns\": "), NULL, 10);
        cr_assert_leq(v, prev, "%s", out);
        prev = v;
        sum += v;
    }
    cr_assert_leq(sum, total, "%s", out);
    cr_assert_null(strstr(p + 1, "\"wait_total_ns\": "), "only three top waiters: %s", out);
    /* the model agrees with what was printed */
    cr_assert_eq(r.m.locks.n, 1);
    cr_assert_eq(r.m.locks.nwaits, NTASKS * ROUNDS);
    free(out);
    free(err);

    snprintf(args, sizeof(args), "locks '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"conn_pool\" 0x"), "%s", out);
    cr_assert_not_null(strstr(out, ": 3000 acquisitions, 2625 contended;"), "%s", out);
    free(out);
    free(err);
    sc_result_free(&r);
}

/* ---- hung tasks name the holder ----------------------------------------- */

static void holder_awaits_forever(void *a)
{
    uint64_t t = U(a);
    fr_poll_begin(t);
    fr_lock_wait(t, A, "accounts");
    fr_lock_acquire(t, A);
    fr_await(t, "upstream reply");
    fr_poll_end(t, FR_PENDING);
}

Test(locks, hung_behind_a_holder_names_the_holder_and_its_await)
{
    fr_spawn(10, 0, "holder");
    fr_spawn(11, 0, "victim");
    sc_run(w0, holder_awaits_forever, ARG(10));
    on(w1, (struct step){.task = 11, .wait = A});
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(sc_count(&r, FRD_DEADLOCK, 0), 0, "%s", sc_describe(&r));
    cr_assert_eq(r.f.n, 2, "%s", sc_describe(&r));
    const struct frd_finding *h = sc_find(&r, FRD_HUNG, 10);
    cr_assert_not_null(h, "%s", sc_describe(&r));
    cr_assert_eq(h->lock, 0, "the holder waits for no lock");
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 11);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->cause, FRD_CAUSE_LOCK_HELD);
    cr_assert_eq(x->lock, A);
    cr_assert_neq(x->lock_holder, FRD_NONE);
    cr_assert_eq(r.m.tasks[x->lock_holder].id, 10);
    cr_assert_not_null(strstr(x->message, "it waits for \"accounts\" held by task 10 \"holder\", "
                                          "which waits at its await \"upstream reply\""),
                       "%s", x->message);
    sc_result_free(&r);
}

/* The healthy twin: the holder's reply comes, it releases and hands over. */
Test(locks, holder_that_gets_its_reply_hands_over_and_nothing_hangs)
{
    fr_spawn(10, 0, "holder");
    fr_spawn(11, 0, "victim");
    sc_run(w0, holder_awaits_forever, ARG(10));
    on(w1, (struct step){.task = 11, .wait = A});
    sc_sleep_ms(HANG_WAIT_MS / 4);
    fr_wake(10);
    on(w0, (struct step){.task = 10, .release = A, .wake = 11, .ready = 1});
    on(w1, (struct step){.task = 11, .acquire = A, .release = A, .ready = 1});
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    const struct frd_lock *k = &r.m.locks.v[0];
    cr_assert_eq(k->acquisitions, 2);
    cr_assert_eq(k->contended, 1);
    cr_assert_eq(r.m.tasks[k->hold_max_task].id, 10);
    cr_assert_geq(k->hold_max_ns, (int64_t)HANG_WAIT_MS / 4 * 1000000);
    sc_result_free(&r);
}

Test(locks, holder_dropped_without_releasing_is_a_leaked_lock)
{
    fr_spawn(20, 0, "leaker");
    fr_spawn(21, 0, "victim");
    on(w0, (struct step){.task = 20, .wait = A, .acquire = A, .ready = 1});
    on(w1, (struct step){.task = 21, .wait = A});
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 21);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(r.m.tasks[x->lock_holder].id, 20);
    cr_assert_not_null(strstr(x->message, "held by task 20 \"leaker\", dropped "), "%s",
                       x->message);
    cr_assert_not_null(strstr(x->message, "without releasing it: a leaked lock"), "%s",
                       x->message);
    sc_result_free(&r);
}

/* ---- protocol ----------------------------------------------------------- */

Test(locks, release_without_acquire_is_protocol)
{
    fr_spawn(30, 0, "confused");
    on(w0, (struct step){.task = 30, .release = A, .ready = 1});
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 1, "%s", sc_describe(&r));
    const struct frd_finding *x = sc_find(&r, FRD_PROTOCOL, 30);
    cr_assert_not_null(x, "%s", sc_describe(&r));
    cr_assert_eq(x->lock, A);
    cr_assert_not_null(strstr(x->message, "task 30 \"confused\": released lock 0x"), "%s",
                       x->message);
    cr_assert_not_null(strstr(x->message, " without holding it on worker-0"), "%s", x->message);
    sc_result_free(&r);
}

Test(locks, release_after_acquire_is_no_finding)
{
    fr_spawn(30, 0, "careful");
    on(w0, (struct step){.task = 30, .wait = A, .acquire = A, .release = A, .ready = 1});
    struct sc_result r;
    decode_now(&r);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    cr_assert_eq(r.m.locks.v[0].acquisitions, 1);
    cr_assert_eq(r.m.locks.v[0].contended, 0);
    sc_result_free(&r);
}

/* ---- history is finite -------------------------------------------------- */

static void flood(void *a)
{
    (void)a;
    for (int i = 0; i < 40000; i++)
        fr_mark(40, "filler");
}

/*
 * Task 40 takes A on worker-0, whose small ring then overflows: the
 * acquisition is gone. Task 41 holds B and waits for A; task 40 waits for B
 * and later releases A. No deadlock (A's holder is unknown), no protocol (40
 * may well have taken A before the ring's oldest event).
 */
static void setup_small_rings(void) { start(16); }

TestSuite(locks_ring, .init = setup_small_rings, .fini = teardown, .timeout = 120);

Test(locks_ring, acquisition_lost_to_the_ring_gives_no_false_finding)
{
    fr_spawn(40, 0, "early");
    fr_spawn(41, 0, "late");
    on(w0, (struct step){.task = 40, .wait = A, .acquire = A});
    on(w1, (struct step){.task = 41, .wait = B, .acquire = B});
    sc_run(w0, flood, NULL);
    on(w0, (struct step){.task = 40, .wait = B});
    on(w1, (struct step){.task = 41, .wait = A});
    on(w0, (struct step){.task = 40, .release = A}); /* gives up A while waiting for B */
    sc_sleep_ms(HANG_WAIT_MS);
    struct sc_result r;
    decode_now(&r);
    int lost = 0;
    for (size_t i = 0; i < r.d->nthreads; i++)
        lost |= !r.d->threads[i].complete_head && r.d->threads[i].tid == sc_worker_tid(w0);
    cr_assert(lost, "worker-0's ring should have lost its oldest pages");
    cr_assert_eq(sc_count(&r, FRD_DEADLOCK, 0), 0, "%s", sc_describe(&r));
    cr_assert_eq(sc_count(&r, FRD_PROTOCOL, 0), 0, "%s", sc_describe(&r));
    /* 41 waits for A, which nobody the recording knows holds */
    const struct frd_finding *x = sc_find(&r, FRD_HUNG, 41);
    if (x) {
        cr_assert_eq(x->lock, A);
        cr_assert_eq(x->lock_holder, FRD_NONE);
    }
    sc_result_free(&r);
}
