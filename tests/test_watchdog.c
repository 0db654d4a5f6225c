/*
 * test_watchdog.c - the stall watchdog: a poll that runs past stall_ms gets a
 * dump by itself, while it still runs, with the stuck thread's stack taken on
 * that thread; a storm of stalls gives a bounded number of dumps; healthy
 * polls give none; it is off by default.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "flightrec.h"
#include "helpers.h"
#include "model.h"
#include "stall.h"
#include "symbolize.h"

/* Sleeps @ms in full, through the EINTR the stack sampler causes. */
static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* The known function the stuck thread is in (not static, not inlined: the
 * symbolizer must find it by name). */
__attribute__((noinline)) void parse_giant_config(unsigned ms);
__attribute__((noinline)) void parse_giant_config(unsigned ms)
{
    sleep_ms(ms);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
}

struct named {
    const char *name;
    int n;
};

static int count_named(pid_t tid, const char *comm, void *arg)
{
    (void)tid;
    struct named *c = arg;
    c->n += strncmp(comm, c->name, strlen(c->name)) == 0;
    return 0;
}

static int count_threads_named(const char *name)
{
    struct named c = { name, 0 };
    th_each_thread(count_named, &c);
    return c.n;
}

static void start(unsigned stall_ms)
{
    unsetenv("FLIGHTREC_STALL_MS");
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .stall_ms = stall_ms };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_thread_name("worker-0");
}

Test(watchdog, stall_dumps_the_stuck_thread_with_its_stack)
{
    start(100);
    fr_spawn(7, 0, "report_builder");
    fr_poll_begin(7);
    fr_poll_end(7, FR_PENDING); /* some history before the stall */
    fr_wake(7);
    fr_poll_begin(7);
    parse_giant_config(600);
    /* No signal was sent and fr_dump was not called: the dump is already
     * there, written while the poll ran. */
    char paths[MAX_DUMPS_LISTED][512];
    int n = th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED);
    fr_poll_end(7, FR_READY);
    fr_shutdown();
    cr_assert_eq(n, 1, "one stall dump expected, found %d", n);
    cr_assert_eq(th_zstd_test(paths[0]), 0);

    struct frd_dump *d = th_open(paths[0]);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_STALL);
    cr_assert_str_eq(d->hdr.reason, "stall");
    cr_assert(!d->damaged);
    const struct frd_stall *s = &d->stall;
    cr_assert(s->present);
    cr_assert_eq(s->tid, (uint32_t)th_gettid());
    cr_assert_eq(s->task, 7);
    cr_assert_eq(s->threshold_ns, 100000000u);
    cr_assert(s->sample_ns - s->begin_ns >= 100000000, "held %lld ns at the sample",
              (long long)(s->sample_ns - s->begin_ns));
    cr_assert(s->sample_ns - s->begin_ns < 600000000, "the dump came after the poll");
    /* the poll was still running in the dump */
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert(t);
    cr_assert_eq(t->current_task, 7);
    cr_assert_str_eq(t->name, "worker-0");

    cr_assert(s->flags & FR_STALL_STACK);
    cr_assert_gt(s->nframes, 2);
    struct frd_frame *fr = calloc(s->nframes, sizeof(*fr));
    cr_assert(fr);
    frd_symbolize(d, s->frames, s->nframes, fr);
    int found = -1;
    for (uint32_t i = 0; i < s->nframes && found < 0; i++)
        if (strcmp(fr[i].function, "parse_giant_config") == 0)
            found = (int)i;
    cr_assert_geq(found, 1, "parse_giant_config not in the stuck stack");
    cr_assert(strstr(fr[found].file, "test_watchdog.c"));
    free(fr);

    /* The long_poll finding says where the poll was stuck. */
    struct frd_model m;
    cr_assert_eq(frd_model_build(d, &m), 0);
    struct frd_thresholds th = { .starvation_ns = FRD_DEFAULT_STARVATION_NS,
                                 .long_poll_ns = FRD_DEFAULT_LONG_POLL_NS,
                                 .hang_ns = FRD_DEFAULT_HANG_NS };
    struct frd_findings f = { 0 };
    cr_assert_eq(frd_analyze(&m, &th, &f), 0);
    int quoted = 0;
    for (size_t i = 0; i < f.n; i++)
        if (f.v[i].kind == FRD_LONG_POLL && strstr(f.v[i].message, "it was in") &&
            strstr(f.v[i].message, "parse_giant_config"))
            quoted = 1;
    cr_assert(quoted, "no long_poll finding quotes parse_giant_config (%zu findings: %s)", f.n,
              f.n ? f.v[0].message : "");
    frd_findings_free(&f);
    frd_model_free(&m);
    frd_close(d);
}

Test(watchdog, a_storm_of_stalls_gives_a_bounded_number_of_dumps)
{
    start(20);
    for (uint64_t task = 1; task <= 20; task++) {
        fr_spawn(task, 0, "slow");
        fr_poll_begin(task);
        sleep_ms(60);
        fr_poll_end(task, FR_READY);
        fr_drop(task);
    }
    fr_shutdown();
    char paths[MAX_DUMPS_LISTED][512];
    int n = th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED);
    cr_assert_geq(n, 1, "the watchdog saw none of 20 stalls");
    cr_assert_leq(n, 3, "20 stalls gave %d dumps (limit 3 per window)", n);
    cr_assert_eq(th_count_temporaries(th_tmpdir()), 0);
}

Test(watchdog, the_limits_are_settings)
{
    setenv("FLIGHTREC_STALL_DUMPS", "1", 1);
    start(20);
    for (uint64_t task = 1; task <= 5; task++) {
        fr_poll_begin(task);
        sleep_ms(60);
        fr_poll_end(task, FR_READY);
    }
    fr_shutdown();
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 1);
    setenv("FLIGHTREC_STALL_DUMPS", "0", 1);
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .stall_ms = 20 };
    cr_assert_eq(fr_init(&cfg), -EINVAL);
    unsetenv("FLIGHTREC_STALL_DUMPS");
    setenv("FLIGHTREC_STALL_MS", "12x", 1);
    cfg.stall_ms = 0;
    cr_assert_eq(fr_init(&cfg), -EINVAL);
}

/* The healthy twin: short polls, parks, and waits outside polls never dump. */
Test(watchdog, healthy_polls_give_no_dump)
{
    start(100);
    for (uint64_t task = 1; task <= 30; task++) {
        fr_spawn(task, 0, "quick");
        fr_poll_begin(task);
        sleep_ms(5);
        fr_poll_end(task, FR_PENDING);
        fr_park();
        sleep_ms(10); /* idle time outside any poll is no stall */
        fr_unpark();
    }
    fr_poll_begin(99);
    fr_poll_end(99, FR_READY);
    sleep_ms(300); /* the last poll ended: a long quiet time after it is not a stall */
    fr_shutdown();
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 0);
}

/* libuv's thread pool blocks by design: a long work callback there (a thread
 * named FR_BLOCKING_POOL_THREAD) gets no stall dump, and no sampler signal
 * cuts its sleep short. (Its twin is the first test: the same on a worker.) */
Test(watchdog, a_pool_made_to_block_is_left_alone)
{
    start(100);
    fr_thread_name(FR_BLOCKING_POOL_THREAD);
    fr_spawn(5, 0, "uv work slow_cb");
    fr_poll_begin(5);
    struct timespec ts = { 0, 400 * 1000000L };
    int r = nanosleep(&ts, NULL);
    int err = errno;
    fr_poll_end(5, FR_PENDING);
    fr_shutdown();
    cr_assert_eq(r, 0, "the pool's sleep was cut short: %s", strerror(err));
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 0);
}

Test(watchdog, off_by_default)
{
    unsetenv("FLIGHTREC_STALL_MS");
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    cr_assert_eq(count_threads_named("flightrec-watch"), 0);
    fr_poll_begin(1);
    sleep_ms(150);
    fr_poll_end(1, FR_READY);
    fr_shutdown();
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 0);

    setenv("FLIGHTREC_STALL_MS", "50", 1);
    cr_assert_eq(fr_init(&cfg), 0);
    for (int i = 0; i < 200 && count_threads_named("flightrec-watch") == 0; i++)
        sleep_ms(5); /* the thread names itself once running */
    cr_assert_eq(count_threads_named("flightrec-watch"), 1);
    fr_shutdown();
    cr_assert_eq(count_threads_named("flightrec-watch"), 0);
}
