/*
 * tests/decoder/test_rundelay_ring.c - the recorder's ring of run-delay
 * entries (recorder/rundelay.c) once it has wrapped: a dump keeps the newest
 * FR_RUN_DELAY_ENTRIES, the oldest of them flagged, and the decoder knows
 * run delays only from that entry's end on; a ring that has not wrapped
 * flags nothing.
 *
 * The recorder here is the test build (FR_TEST_HOOKS): fr__test_run_delay_note
 * writes an entry as the sampler does. No thread records in these tests, so
 * the sampler itself writes none meanwhile.
 *
 * With shared rings the ring lives in the .rings file, so a process that
 * dies without a dump (SIGKILL, _exit) leaves its run delays to `flightrec
 * recover`, and the analyses keep their verdicts on its waits.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"
#include "reader.h"
#include "scenario.h"

#define RING_ENTRIES 4096u /* FR_RUN_DELAY_ENTRIES */
#define TID 4242u

void fr__test_run_delay_note(uint64_t from_ns, uint64_t to_ns, uint64_t delay_ns, uint32_t tid);

/* Entry @i: 1 ms apart, each 0.5 ms long, its delay telling its index. */
static void note_entries(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        fr__test_run_delay_note(1000000ull * (i + 1), 1000000ull * (i + 1) + 500000,
                                1000000ull + i, TID);
}

static char path[512]; /* the dump keeps it for its messages */

static struct frd_dump *dump_and_open(void)
{
    char err[256];
    sc_dump(path);
    fr_shutdown();
    struct frd_dump *d = NULL;
    cr_assert_eq(frd_open(path, &d, err, sizeof(err)), 0, "%s", err);
    cr_assert(d->have_run_delay, "the sampler runs by default: the dump has RUN_DELAY");
    return d;
}

Test(rundelay_ring, a_wrapped_ring_keeps_the_newest_and_says_from_when)
{
    sc_recorder_start(64);
    const uint32_t n = RING_ENTRIES + 904;
    note_entries(n);
    struct frd_dump *d = dump_and_open();
    cr_assert_eq(d->nrun_delays, RING_ENTRIES, "%zu entries kept", d->nrun_delays);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < d->nrun_delays; i++) {
        cr_assert_eq(d->run_delays[i].tid, TID);
        uint64_t k = d->run_delays[i].delay_ns - 1000000ull;
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    cr_assert_eq(hi, n - 1, "the newest entry is kept");
    cr_assert_eq(lo, n - RING_ENTRIES, "the oldest kept is the newest that fits: %llu",
                 (unsigned long long)lo);
    /* known from the end of the oldest entry kept on */
    cr_assert_eq(d->run_delay_from_ns, (int64_t)(1000000ull * (lo + 1) + 500000),
                 "run delays known from %lld", (long long)d->run_delay_from_ns);
    frd_close(d);
}

Test(rundelay_ring, a_ring_that_has_not_wrapped_flags_nothing)
{
    sc_recorder_start(64);
    note_entries(100);
    struct frd_dump *d = dump_and_open();
    cr_assert_eq(d->nrun_delays, 100, "%zu entries kept", d->nrun_delays);
    cr_assert_eq(d->run_delay_from_ns, INT64_MIN, "known from the start: %lld",
                 (long long)d->run_delay_from_ns);
    frd_close(d);
}

static int recorded_then_gone(void *arg)
{
    (void)arg;
    setenv("FLIGHTREC_SHARED_RINGS", "1", 1);
    sc_recorder_start(64);
    note_entries(RING_ENTRIES + 10); /* wrapped: the oldest kept is flagged */
    _exit(0); /* no fr_shutdown, no atexit: the .rings file stays, as after SIGKILL */
}

Test(rundelay_ring, a_recovered_dump_has_the_run_delays)
{
    th_tmpdir(); /* made here, so that the child records into this test's directory */
    int st = th_run_child(recorded_then_gone, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    char rings[600], args[700], out[600];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1, "one .rings file left");
    snprintf(args, sizeof args, "'%s' --force", rings);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    cr_assert(out[0], "recover printed nothing");
    char err[256];
    struct frd_dump *d = NULL;
    cr_assert_eq(frd_open(out, &d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_RECOVERED);
    cr_assert(d->have_run_delay, "the recovered dump has no RUN_DELAY section");
    cr_assert_not(frd_run_delay_lost(d));
    cr_assert_eq(d->nrun_delays, RING_ENTRIES, "%zu entries", d->nrun_delays);
    cr_assert_eq(d->run_delays[d->nrun_delays - 1].delay_ns, 1000000ull + RING_ENTRIES + 9,
                 "the newest entry is the last one noted");
    cr_assert_eq(d->run_delays[0].tid, TID);
    cr_assert_neq(d->run_delay_from_ns, INT64_MIN, "older entries were overwritten: said");
    frd_close(d);
}
