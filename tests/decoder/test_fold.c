/*
 * test_fold.c - format version 2 folds the polled task's own events into the
 * poll's records (recorder/hooks.c): the decoder must give back exactly the
 * events that were recorded, in order, and the same tasks and findings as
 * with one timed record per event.
 *
 * The recorder here is the test build (FR_TEST_HOOKS): fr__test_no_fold = 1
 * makes it write every event as a timed record of its own, as version 1 did,
 * so one script recorded both ways can be compared.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "helpers.h"
#include "scenario.h"

extern int fr__test_no_fold;

enum { T1 = 0x5000, T2 = 0x5100, T3 = 0x5200, T4 = 0x5300, T5 = 0x5400, T6 = 0x5500 };

/* Every foldable hook inside and outside polls, more than one fold list's
 * worth in one poll, records that interrupt a fold, a nested poll, a long
 * poll, two lost wakeups (waker dropped after and inside the poll) and a
 * hung task. */
static void script(void)
{
    char buf[32];
    fr_thread_name("fold-worker");
    fr_spawn(T1, 0, "conn");
    fr_spawn(T2, T1, "child");
    fr_poll_begin(T1);
    fr_waker_clone(T1);
    FR_AWAIT(T1, "read");
    fr_mark(T1, "m1");
    fr_wake(T1); /* woken during its own poll */
    fr_waker_drop(T1);
    fr_waker_clone(T1); /* the fifth: a second fold list */
    snprintf(buf, sizeof buf, "dyn-%d", 7); /* a label in a buffer */
    fr_mark(T1, buf);
    fr_spawn(T3, T1, "sub"); /* not foldable: what is held goes first */
    fr_wake(T2);             /* another task's wake: timed */
    fr_await_external(T1, "accept");
    fr_idle(T1);
    fr_poll_end(T1, FR_PENDING);
    fr_wake(T1); /* outside any poll: timed */
    fr_poll_begin(T2);
    fr_lock_wait(T2, 0xA000, "accounts");
    fr_lock_acquire(T2, 0xA000);
    fr_await(T2, "after lock");
    fr_lock_release(T2, 0xA000);
    fr_poll_end(T2, FR_READY);
    fr_drop(T2);
    fr_poll_begin(T1);
    fr_waker_clone(T1);
    fr_poll_begin(T3); /* nested */
    fr_await(T3, "inner");
    fr_poll_end(T3, FR_PENDING);
    fr_await(T1, "outer after inner"); /* the outer poll's: timed now */
    sc_spin_ms(SC_LONG_POLL_MS + 3);   /* a long poll */
    fr_poll_end(T1, FR_PENDING);
    /* lost wakeup: the waker dropped after the poll */
    fr_spawn(T4, 0, "lost-after");
    fr_poll_begin(T4);
    fr_waker_clone(T4);
    fr_await(T4, "db");
    fr_poll_end(T4, FR_PENDING);
    fr_waker_drop(T4);
    /* lost wakeup: the waker dropped inside the poll (folded) */
    fr_spawn(T5, 0, "lost-inside");
    fr_poll_begin(T5);
    fr_waker_clone(T5);
    fr_await(T5, "db");
    fr_waker_drop(T5);
    fr_poll_end(T5, FR_PENDING);
    /* hung: awaits, never woken, waker kept */
    fr_spawn(T6, 0, "hung");
    fr_poll_begin(T6);
    fr_waker_clone(T6);
    fr_await(T6, "forever");
    fr_poll_end(T6, FR_PENDING);
    fr_park();
    sc_sleep_ms(SC_HANG_MS + 40);
    fr_unpark();
}

static void record_script(int no_fold, char *path)
{
    fr__test_no_fold = no_fold;
    sc_recorder_start(0);
    script();
    sc_dump(path);
    fr_shutdown();
    fr__test_no_fold = 0;
}

static size_t records_of(const struct frd_thread *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ngood; i++)
        n += t->pages[i].count;
    return n;
}

static const char *text(const struct frd_dump *d, uint32_t id)
{
    static char buf[2][300];
    static int k;
    size_t len;
    const char *s = frd_string(d, id, &len);
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%.*s", s ? (int)len : 6, s ? s : "<none>");
    return buf[k];
}

Test(fold, folded_events_decode_as_recorded_at_the_poll_time, .timeout = 60)
{
    char one[512], folded[512];
    record_script(1, one);
    record_script(0, folded);
    struct frd_dump *a = th_open(one), *b = th_open(folded);
    cr_assert_eq(a->damaged, 0);
    cr_assert_eq(b->damaged, 0);
    cr_assert_eq(a->hdr.version, FR_FORMAT_VERSION);
    const struct frd_thread *ta = th_thread(a, (uint32_t)th_gettid());
    const struct frd_thread *tb = th_thread(b, (uint32_t)th_gettid());
    cr_assert(ta && tb);
    cr_assert_eq(ta->nevents, tb->nevents, "%zu events one by one, %zu folded", ta->nevents,
                 tb->nevents);
    cr_assert_eq(records_of(ta), ta->nevents, "one record per event without folding");
    /* 19 foldable events of the polled task inside their polls: they ride
     * in 5 poll ends and 4 fold records (written before a fifth event, the
     * spawn, the lock release and the nested poll's begin) */
    cr_assert_eq(records_of(tb), tb->nevents - 19 + 4, "%zu records for %zu events",
                 records_of(tb), tb->nevents);
    uint64_t polled = 0;
    for (size_t i = 0; i < ta->nevents; i++) {
        const struct frd_event *x = &ta->events[i], *y = &tb->events[i];
        cr_assert_eq(x->type, y->type, "event %zu: %s one by one, %s folded", i,
                     frd_event_name(x->type), frd_event_name(y->type));
        cr_assert_eq(x->task, y->task, "event %zu (%s)", i, frd_event_name(x->type));
        cr_assert_eq(x->parent, y->parent, "event %zu (%s)", i, frd_event_name(x->type));
        cr_assert_str_eq(text(a, x->str), text(b, y->str), "event %zu (%s)", i,
                         frd_event_name(x->type));
        if (i > 0)
            cr_assert_geq(y->ticks, tb->events[i - 1].ticks, "event %zu goes back in time", i);
        /* the polled task's own foldable events take the previous event's
         * time; everything else has a time of its own */
        int foldable = (FR_FOLDABLE >> y->type) & 1;
        if (i > 0 && polled && y->task == polled && foldable)
            cr_assert_eq(y->ticks, tb->events[i - 1].ticks, "event %zu (%s) folded", i,
                         frd_event_name(y->type));
        if (y->type == FR_EV_POLL_BEGIN)
            polled = y->task;
        else if (y->type == FR_EV_POLL_PENDING || y->type == FR_EV_POLL_READY)
            polled = 0;
    }
    frd_close(a);
    frd_close(b);
}

static size_t findings_of(const struct sc_result *r, int kind, uint64_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < r->f.n; i++) {
        const struct frd_finding *f = &r->f.v[i];
        if (f->kind == kind && f->task != FRD_NONE && r->m.tasks[f->task].id == id)
            n++;
    }
    return n;
}

Test(fold, same_tasks_and_findings_as_one_record_per_event, .timeout = 60)
{
    char one[512], folded[512];
    record_script(1, one);
    record_script(0, folded);
    struct sc_result a, b;
    sc_decode(one, &a);
    sc_decode(folded, &b);
    cr_assert_eq(a.m.ntasks, b.m.ntasks);
    for (size_t i = 0; i < a.m.ntasks; i++) {
        const struct frd_task *x = &a.m.tasks[i], *y = &b.m.tasks[i];
        cr_assert_eq(x->id, y->id);
        cr_assert_eq(x->state, y->state, "task %#llx", (unsigned long long)x->id);
        cr_assert_eq(x->npolls, y->npolls, "task %#llx", (unsigned long long)x->id);
        cr_assert_eq(x->nwakes, y->nwakes, "task %#llx", (unsigned long long)x->id);
        cr_assert_eq(x->waker_refs, y->waker_refs, "task %#llx", (unsigned long long)x->id);
        cr_assert_eq(x->waker_drops, y->waker_drops, "task %#llx", (unsigned long long)x->id);
        cr_assert_str_eq(text(a.d, x->await_str), text(b.d, y->await_str), "task %#llx",
                         (unsigned long long)x->id);
        for (size_t k = 0; k < x->npolls; k++) {
            cr_assert_eq(x->polls[k].result, y->polls[k].result);
            cr_assert_str_eq(text(a.d, x->polls[k].await_str), text(b.d, y->polls[k].await_str),
                             "task %#llx poll %zu", (unsigned long long)x->id, k);
            cr_assert_eq(x->polls[k].woken_during, y->polls[k].woken_during);
        }
    }
    /* the findings the script is built to give, both ways */
    const struct {
        int kind;
        uint64_t task;
    } want[] = {{FRD_LOST_WAKEUP, T4}, {FRD_LOST_WAKEUP, T5}, {FRD_HUNG, T6},
                {FRD_LONG_POLL, T1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(findings_of(&a, want[i].kind, want[i].task), 1, "one by one: %s",
                     sc_describe(&a));
        cr_assert_eq(findings_of(&b, want[i].kind, want[i].task), 1, "folded: %s",
                     sc_describe(&b));
    }
    cr_assert_eq(a.f.n, b.f.n, "one by one:\n%s\nfolded:\n%s", sc_describe(&a), sc_describe(&b));
    for (size_t i = 0; i < a.f.n; i++) {
        const struct frd_finding *x = &a.f.v[i], *y = &b.f.v[i];
        cr_assert_eq(x->kind, y->kind);
        cr_assert_eq(x->cause, y->cause);
        cr_assert_eq(x->task == FRD_NONE ? 0 : a.m.tasks[x->task].id,
                     y->task == FRD_NONE ? 0 : b.m.tasks[y->task].id);
        cr_assert_str_eq(text(a.d, x->await_str), text(b.d, y->await_str));
    }
    sc_result_free(&a);
    sc_result_free(&b);
}

/* A dump written from inside a poll holds what the poll folded so far. */
Test(fold, dump_from_inside_a_poll_holds_its_folded_events, .timeout = 30)
{
    char path[512];
    sc_recorder_start(0);
    fr_spawn(T1, 0, "conn");
    fr_poll_begin(T1);
    fr_waker_clone(T1);
    fr_await(T1, "mid-poll");
    sc_dump(path);
    fr_poll_end(T1, FR_PENDING);
    fr_shutdown();
    struct frd_dump *d = th_open(path);
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert_not_null(t);
    cr_assert_eq(t->nevents, 4, "spawn, poll begin, clone, await: %zu events", t->nevents);
    cr_assert_eq(t->events[2].type, FR_EV_WAKER_CLONE);
    cr_assert_eq(t->events[3].type, FR_EV_AWAIT);
    cr_assert_str_eq(text(d, t->events[3].str), "mid-poll");
    cr_assert_eq(t->current_task, T1);
    frd_close(d);
}

/* The healthy twin: a clean life folded gives no finding. */
Test(fold, clean_folded_life_has_no_findings, .timeout = 30)
{
    char path[512];
    sc_recorder_start(0);
    for (uint64_t t = T1; t < T1 + 50; t++) {
        fr_spawn(t, 0, "req");
        fr_poll_begin(t);
        fr_await(t, "io");
        fr_waker_clone(t);
        fr_poll_end(t, FR_PENDING);
        fr_wake(t);
        fr_waker_drop(t);
        fr_poll_begin(t);
        fr_poll_end(t, FR_READY);
        fr_drop(t);
    }
    sc_dump(path);
    fr_shutdown();
    struct sc_result r;
    sc_decode(path, &r);
    cr_assert_eq(r.m.ntasks, 50);
    cr_assert_eq(r.f.n, 0, "%s", sc_describe(&r));
    sc_result_free(&r);
}
