/*
 * test_runtime.c - the demo runtime (tools/runtime/) keeps the promises its
 * header makes: tasks run to completion, a wake on an idle task schedules it
 * once, a wake during a poll re-polls, finished tasks are never polled again
 * and are freed after their last waker, timers fire in deadline order unless
 * cancelled, events wake every waiter. The recorder is not started here (the
 * hooks are no-ops); tests/demo/planted_bugs.py covers the instrumentation.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <time.h>

#include "runtime.h"

static struct rt_runtime *rt;

static void setup(void)
{
    rt = rt_create(2);
}

static void teardown(void)
{
    rt_destroy(rt);
}

/* Wait up to 2 s for *flag to reach @want. Return: whether it did. */
static bool wait_for(atomic_int *flag, int want)
{
    uint64_t deadline = rt_now_ns() + 2000000000ull;
    while (atomic_load(flag) < want) {
        if (rt_now_ns() > deadline)
            return false;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static void settle(void)
{
    struct timespec ts = {0, 20000000}; /* 20 ms for anything stray to happen */
    nanosleep(&ts, NULL);
}

/* ---- a task that counts its polls and finishes on the Nth ---------------- */

struct counter {
    atomic_int polls;
    int ready_on;            /* poll number that returns RT_READY */
    bool wake_self;          /* on the first poll, wake itself before returning pending */
    struct rt_task *waker;   /* cloned on the first poll if !wake_self */
    atomic_int waker_stored; /* 1 once `waker` is set */
    atomic_int freed;
};

static enum rt_poll counter_poll(struct rt_task *self, void *arg)
{
    struct counter *c = arg;
    int n = atomic_fetch_add(&c->polls, 1) + 1;

    if (n >= c->ready_on)
        return RT_READY;
    if (n == 1 && c->wake_self) {
        rt_waker_wake_by_ref(self);
    } else if (n == 1) {
        c->waker = rt_waker_clone(self);
        atomic_store(&c->waker_stored, 1);
    }
    return RT_PENDING;
}

static void counter_free(void *arg)
{
    struct counter *c = arg;
    atomic_fetch_add(&c->freed, 1);
}

TestSuite(runtime, .init = setup, .fini = teardown, .timeout = 20);

Test(runtime, spawned_task_runs_to_completion_and_is_freed)
{
    static struct counter c = {.ready_on = 1};

    uint64_t id = rt_spawn(rt, "t", counter_poll, &c, counter_free);
    cr_assert(id != 0);
    cr_assert(wait_for(&c.freed, 1), "the task's state was not freed");
    cr_assert_eq(atomic_load(&c.polls), 1);
    cr_assert_eq(rt_live_tasks(rt), 0);
}

Test(runtime, wakes_on_an_idle_task_poll_it_once_and_a_finished_task_never)
{
    static struct counter c = {.ready_on = 2};

    rt_spawn(rt, "t", counter_poll, &c, counter_free);
    cr_assert(wait_for(&c.waker_stored, 1));
    /* Five wakes: the first schedules the last poll, the rest find it queued or finished. */
    for (int i = 0; i < 5; i++)
        rt_waker_wake_by_ref(c.waker);
    cr_assert(wait_for(&c.polls, 2));
    settle();
    cr_assert_eq(atomic_load(&c.polls), 2, "polled %d times", atomic_load(&c.polls));
    cr_assert_eq(atomic_load(&c.freed), 0, "freed while a waker was still held");
    rt_waker_wake(c.waker); /* waking a finished task does nothing, and gives the waker up */
    cr_assert(wait_for(&c.freed, 1), "not freed after its last waker");
    cr_assert_eq(atomic_load(&c.polls), 2);
}

Test(runtime, a_wake_during_the_poll_polls_again_after_it_returns_pending)
{
    static struct counter c = {.ready_on = 2, .wake_self = true};

    rt_spawn(rt, "t", counter_poll, &c, counter_free);
    cr_assert(wait_for(&c.freed, 1), "the self-woken task was not polled again");
    cr_assert_eq(atomic_load(&c.polls), 2);
}

/* ---- timers ---------------------------------------------------------------- */

static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[8], norder;
static atomic_int fired;

static void record_fire(void *arg)
{
    pthread_mutex_lock(&order_lock);
    order[norder++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&order_lock);
    atomic_fetch_add(&fired, 1);
}

Test(runtime, timers_fire_in_deadline_order_and_cancelled_ones_never)
{
    static struct rt_timer t[6];
    uint64_t now = rt_now_ns();

    for (int i = 0; i < 6; i++) {
        rt_timer_init(&t[i], record_fire, (void *)(intptr_t)i);
        rt_timer_start(rt, &t[i], now + (uint64_t)(6 - i) * 2000000u); /* 12 ms .. 2 ms */
    }
    cr_assert(rt_timer_cancel(rt, &t[2]), "an armed timer could not be cancelled");
    cr_assert_not(rt_timer_cancel(rt, &t[2]), "cancelled twice");
    cr_assert(wait_for(&fired, 5));
    settle();
    cr_assert_eq(norder, 5);
    int want[] = {5, 4, 3, 1, 0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(order[i], want[i], "fire #%d was timer %d", i, order[i]);
    cr_assert_not(rt_timer_cancel(rt, &t[0]), "a fired timer reported as cancelled");
}

struct sleeper {
    uint64_t deadline;
    int stage;
    atomic_int done; /* 1: polled again after the deadline; 2: before it */
};

static enum rt_poll sleeper_poll(struct rt_task *self, void *arg)
{
    struct sleeper *s = arg;

    if (s->stage == 0) {
        s->stage = 1;
        s->deadline = rt_now_ns() + 5000000u;
        rt_sleep_until(self, s->deadline);
        return RT_PENDING;
    }
    /* no cr_assert here: this runs on a worker thread */
    atomic_store(&s->done, rt_now_ns() >= s->deadline ? 1 : 2);
    return RT_READY;
}

Test(runtime, rt_sleep_until_wakes_the_task_at_its_deadline)
{
    static struct sleeper s;

    rt_spawn(rt, "sleeper", sleeper_poll, &s, NULL);
    cr_assert(wait_for(&s.done, 1));
    cr_assert_eq(atomic_load(&s.done), 1, "woken before its deadline");
}

/* ---- events ---------------------------------------------------------------- */

static struct rt_event ev;
static atomic_int waiting, woken;

struct waiter_task {
    struct rt_waiter w;
    bool registered;
};

static enum rt_poll event_waiter_poll(struct rt_task *self, void *arg)
{
    struct waiter_task *wt = arg;

    if (rt_event_wait(&ev, &wt->w, self)) {
        atomic_fetch_add(&woken, 1);
        return RT_READY;
    }
    if (!wt->registered) {
        wt->registered = true;
        atomic_fetch_add(&waiting, 1);
    }
    return RT_PENDING;
}

Test(runtime, setting_an_event_wakes_every_waiter)
{
    static struct waiter_task wt[10];

    rt_event_init(&ev);
    for (int i = 0; i < 10; i++)
        rt_spawn(rt, "waiter", event_waiter_poll, &wt[i], NULL);
    cr_assert(wait_for(&waiting, 10));
    settle();
    cr_assert_eq(atomic_load(&woken), 0, "woken before the event was set");
    rt_event_set(&ev);
    cr_assert(wait_for(&woken, 10), "only %d of 10 woken", atomic_load(&woken));
}
