/*
 * test_ring.c - per-thread rings: what is written is read back exactly, a
 * wrapped ring keeps its newest whole pages, and ticks decode to real time.
 * Concurrent writers during dumps are checked by stress_rings.c (a plain
 * program, so that it also runs under ThreadSanitizer).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "helpers.h"

static const struct frd_thread *dump_and_find(struct frd_dump **d, pid_t tid)
{
    char path[512];
    cr_assert_eq(fr_dump("test", path, sizeof path), 0);
    cr_assert_eq(th_zstd_test(path), 0, "zstd -t rejected %s", path);
    *d = th_open(path);
    cr_assert_eq((*d)->damaged, 0, "dump damaged: %s", (*d)->nerrors ? (*d)->errors[0] : "?");
    const struct frd_thread *t = th_thread(*d, (uint32_t)tid);
    cr_assert_not_null(t, "no thread section for tid %d", (int)tid);
    return t;
}

/* The expected event stream, replayed through the hooks and checked back. */
struct want {
    uint8_t type;
    uint64_t task, parent;
    const char *str;
};

Test(ring, round_trip_every_event)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .ring_bytes = 4u << 20 };
    cr_assert_eq(fr_init(&cfg), 0);

    enum { N = 20000 };
    static struct want w[N * 2];
    size_t n = 0;
    char label[64];
    for (uint64_t i = 0; i < N; i++) {
        /* Task ids that exercise every delta: pointers, small, going down. */
        uint64_t task = (i % 3 == 0) ? 0x7f12345678000000ull + i * 64
                        : (i % 3 == 1) ? i + 1 : UINT64_MAX - i;
        switch (i % 12) {
        case 0: {
            snprintf(label, sizeof label, "task-%llu", (unsigned long long)(i % 50));
            uint64_t parent = i ? task - 4096 : 0;
            fr_spawn(task, parent, label);
            w[n++] = (struct want){ FR_EV_SPAWN, task, parent, NULL };
            break;
        }
        case 1: fr_poll_begin(task); w[n++] = (struct want){ FR_EV_POLL_BEGIN, task, 0, NULL }; break;
        case 2: fr_await(task, "db_query (src/db.c:89)");
            w[n++] = (struct want){ FR_EV_AWAIT, task, 0, "db_query (src/db.c:89)" }; break;
        case 3: fr_poll_end(task, FR_PENDING); w[n++] = (struct want){ FR_EV_POLL_PENDING, task, 0, NULL }; break;
        case 4: fr_wake(task); w[n++] = (struct want){ FR_EV_WAKE, task, 0, NULL }; break;
        case 5: fr_waker_clone(task); w[n++] = (struct want){ FR_EV_WAKER_CLONE, task, 0, NULL }; break;
        case 6: fr_waker_drop(task); w[n++] = (struct want){ FR_EV_WAKER_DROP, task, 0, NULL }; break;
        case 7: fr_park(); w[n++] = (struct want){ FR_EV_PARK, 0, 0, NULL }; break;
        case 8: fr_unpark(); w[n++] = (struct want){ FR_EV_UNPARK, 0, 0, NULL }; break;
        case 9: fr_poll_end(task, FR_READY); w[n++] = (struct want){ FR_EV_POLL_READY, task, 0, NULL }; break;
        case 10: fr_mark(task, "checkpoint"); w[n++] = (struct want){ FR_EV_MARK, task, 0, "checkpoint" }; break;
        case 11: fr_drop(task); w[n++] = (struct want){ FR_EV_DROP, task, 0, NULL }; break;
        }
    }
    struct frd_dump *d;
    const struct frd_thread *t = dump_and_find(&d, th_gettid());
    cr_assert_eq(t->events_overwritten, 0);
    cr_assert_eq(t->events_dropped, 0);
    cr_assert_eq(t->pages_missing, 0);
    cr_assert_eq(t->nevents, n, "decoded %zu events, wrote %zu", t->nevents, n);
    for (size_t i = 0; i < n; i++) {
        const struct frd_event *e = &t->events[i];
        cr_assert_eq(e->type, w[i].type, "event %zu: type %u, want %u", i, e->type, w[i].type);
        cr_assert_eq(e->task, w[i].task, "event %zu: task %llx, want %llx", i,
                     (unsigned long long)e->task, (unsigned long long)w[i].task);
        if (w[i].type == FR_EV_SPAWN) {
            cr_assert_eq(e->parent, w[i].parent, "event %zu: parent", i);
            const char *s = th_string(d, e->str);
            cr_assert_not_null(s);
            cr_assert_eq(strncmp(s, "task-", 5), 0, "event %zu: name '%s'", i, s);
        }
        if (w[i].str)
            cr_assert_str_eq(th_string(d, e->str), w[i].str, "event %zu", i);
        if (i)
            cr_assert_geq(e->ticks, t->events[i - 1].ticks, "event %zu: time went back", i);
    }
    frd_close(d);
    fr_shutdown();
}

Test(ring, wrap_keeps_newest_whole_pages)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .ring_bytes = 16 * 1024 };
    cr_assert_eq(fr_init(&cfg), 0);
    enum { N = 100000 };
    /* fr_mark with the sequence number as task: a gap or reorder shows. */
    for (uint64_t i = 1; i <= N; i++)
        fr_mark(i, "seq");
    struct frd_dump *d;
    const struct frd_thread *t = dump_and_find(&d, th_gettid());

    cr_assert_leq(t->npages, 4, "a 16 KiB ring holds at most 4 pages, dump has %u", t->npages);
    cr_assert_geq(t->npages, 3, "the newest pages must survive, dump has %u", t->npages);
    cr_assert_gt(t->events_overwritten, 0);
    cr_assert_gt(t->pages_started, 4);
    /* Every event is accounted for: held + overwritten == written (+ the
     * attach-time records, none here: fr_init writes no event). */
    cr_assert_eq(t->nevents + t->events_overwritten, N, "held %zu + overwritten %llu != %d",
                 t->nevents, (unsigned long long)t->events_overwritten, N);
    cr_assert_eq(t->events[t->nevents - 1].task, N, "the newest event must be last");
    for (size_t i = 1; i < t->nevents; i++)
        cr_assert_eq(t->events[i].task, t->events[i - 1].task + 1, "gap at %zu", i);
    /* History depth: the ring is 16 KiB and a mark is 4-5 bytes. */
    cr_assert_gt(t->nevents, 2000, "only %zu events in 16 KiB", t->nevents);
    frd_close(d);
    fr_shutdown();
}

Test(ring, hooks_before_init_and_after_shutdown_record_nothing)
{
    fr_spawn(1, 0, "before");
    fr_poll_begin(1);
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_dump("x", NULL, 0), -ENOTCONN);
    cr_assert_eq(fr_init(&cfg), 0);
    cr_assert_eq(fr_init(&cfg), -EALREADY);
    fr_mark(7, "inside");
    struct frd_dump *d;
    const struct frd_thread *t = dump_and_find(&d, th_gettid());
    cr_assert_eq(t->nevents, 1);
    cr_assert_eq(t->events[0].type, FR_EV_MARK);
    frd_close(d);
    fr_shutdown();
    fr_mark(8, "after");
    cr_assert_eq(fr_dump("x", NULL, 0), -ENOTCONN);
}

Test(ring, rejects_bad_config)
{
    struct fr_config small = { .dump_dir = th_tmpdir(), .ring_bytes = 1024 };
    cr_assert_eq(fr_init(&small), -EINVAL);
    struct fr_config sig = { .dump_dir = th_tmpdir(), .dump_signal = SIGSEGV };
    cr_assert_eq(fr_init(&sig), -EINVAL);
    setenv("FLIGHTREC_RING_KB", "lots", 1);
    struct fr_config env = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&env), -EINVAL);
    setenv("FLIGHTREC_RING_KB", "64", 1);
    cr_assert_eq(fr_init(&env), 0);
    fr_shutdown();
}

/* ---- clock: ticks decode to real durations, TSC or not ------------------- */

static void check_durations(int want_tsc)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_mark(1, "before");
    usleep(60 * 1000); /* sleeps at least this long: a lower bound that cannot flake */
    fr_mark(2, "after");
    struct frd_dump *d;
    const struct frd_thread *t = dump_and_find(&d, th_gettid());
    cr_assert_eq(!!(d->hdr.flags & FR_HDR_TSC), want_tsc);
    cr_assert_eq(d->clock.source, want_tsc ? FR_CLOCK_TSC : FR_CLOCK_MONOTONIC);
    cr_assert(d->clock.calibrated);
    cr_assert_eq(t->nevents, 2);
    int64_t gap = t->events[1].ns - t->events[0].ns;
    cr_assert_geq(gap, 60 * 1000 * 1000, "60 ms sleep decoded as %lld ns", (long long)gap);
    cr_assert_lt(gap, 10LL * 1000 * 1000 * 1000, "60 ms sleep decoded as %lld ns", (long long)gap);
    frd_close(d);
    fr_shutdown();
}

Test(clock, tsc_ticks_decode_to_real_time)
{
    unsetenv("FLIGHTREC_CLOCK");
    /* On a machine without a usable TSC the recorder falls back by itself. */
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    char path[512];
    cr_assert_eq(fr_dump("probe", path, sizeof path), 0);
    struct frd_dump *d = th_open(path);
    int tsc = !!(d->hdr.flags & FR_HDR_TSC);
    frd_close(d);
    fr_shutdown();
    check_durations(tsc);
}

Test(clock, monotonic_fallback_decodes_to_real_time)
{
    setenv("FLIGHTREC_CLOCK", "monotonic", 1);
    check_durations(0);
}
