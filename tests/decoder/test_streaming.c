/*
 * tests/decoder/test_streaming.c - the lean decoding path (pages kept, events
 * decoded by thread cursors, no merged timeline) gives exactly what the full
 * path (every event in an array, the timeline kept) gives: the same events in
 * the same order, the same coverage, the same messages and the same model,
 * on a whole dump whose rings wrapped and on that dump cut and corrupted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>

#include "flightrec.h"
#include "helpers.h"
#include "prefault.h"
#include "reader_int.h"
#include "scenario.h"

static uint8_t *buf;
static size_t len;

/* Two threads; the 16 KiB rings wrap, so the oldest pages are gone. */
static void make_dump(void)
{
    sc_recorder_start(16); /* the smallest ring */
    fr_thread_name("main");
    struct sc_worker *w = sc_worker_start("worker-1");
    for (uint64_t t = 1; t <= 6000; t++) {
        fr_spawn(t, t > 1 ? t - 1 : 0, t % 2 ? "odd" : "even");
        fr_poll_begin(t);
        fr_waker_clone(t);
        fr_await(t, "somewhere");
        fr_poll_end(t, FR_PENDING);
        fr_wake(t);
        if (t % 3)
            fr_waker_drop(t);
        if (t % 5 == 0)
            fr_poll_end(t + 1, FR_READY); /* an end without a begin */
        if (t % 7) {
            fr_poll_begin(t);
            fr_poll_end(t, FR_READY);
            fr_drop(t);
        }
        if (t % 11 == 0) {
            fr_park();
            fr_unpark();
        }
        fr_mark(t, "note");
    }
    sc_worker_stop(w);
    char path[512];
    sc_dump(path);
    fr_shutdown();
    buf = (uint8_t *)th_read_file(path, &len);
}

static void same_event(const struct frd_event *a, const struct frd_event *b, size_t i)
{
    cr_assert(a->ticks == b->ticks && a->ns == b->ns && a->task == b->task &&
                  a->parent == b->parent && a->str == b->str && a->type == b->type,
              "event %zu differs", i);
}

static void same_dump(const struct frd_dump *lean, const struct frd_dump *full)
{
    cr_assert_eq(lean->nthreads, full->nthreads);
    cr_assert_eq(lean->nerrors, full->nerrors);
    cr_assert_eq(lean->errors_all, full->errors_all);
    cr_assert_eq(lean->damaged, full->damaged);
    for (size_t i = 0; i < lean->nerrors; i++)
        cr_assert_str_eq(lean->errors[i], full->errors[i]);
    for (size_t i = 0; i < lean->nthreads; i++) {
        const struct frd_thread *a = &lean->threads[i], *b = &full->threads[i];
        cr_assert_null(a->events, "lean threads hold no event array");
        cr_assert_eq(a->nevents, b->nevents);
        cr_assert_eq(a->first_whole, b->first_whole);
        cr_assert_eq(a->complete_head, b->complete_head);
        cr_assert_eq(a->complete_tail, b->complete_tail);
        cr_assert_eq(a->covered_from_ns, b->covered_from_ns);
        cr_assert_str_eq(a->name, b->name);
        if (a->nevents) {
            cr_assert_eq(a->first_ns, b->first_ns);
            cr_assert_eq(a->last_ns, b->last_ns);
            cr_assert_eq(a->first_ns, b->events[0].ns);
            cr_assert_eq(a->last_ns, b->events[b->nevents - 1].ns);
        }
        struct frd_tcur c;
        struct frd_event e;
        size_t n = 0;
        frd_tcur_init(&c, lean, a);
        while (frd_tcur_next(&c, &e)) {
            cr_assert_lt(n, b->nevents, "the cursor runs past the events");
            same_event(&e, &b->events[n], n);
            n++;
        }
        cr_assert_eq(n, b->nevents);
    }
}

static void same_model(const struct frd_model *a, const struct frd_model *b)
{
    cr_assert_null(a->ev);
    cr_assert_eq(a->nev, 0);
    cr_assert_eq(a->nevents, b->nevents);
    cr_assert_eq(b->nev, b->nevents, "the full model keeps the timeline");
    cr_assert_eq(a->start_ns, b->start_ns);
    cr_assert_eq(a->end_ns, b->end_ns);
    cr_assert_eq(a->ntasks, b->ntasks);
    for (size_t i = 0; i < a->ntasks; i++) {
        const struct frd_task *x = &a->tasks[i], *y = &b->tasks[i];
        struct frd_task_figures fx, fy;
        cr_assert_eq(frd_task_figures(a, (int32_t)i, &fx), 0);
        cr_assert_eq(frd_task_figures(b, (int32_t)i, &fy), 0);
        cr_assert(x->id == y->id && x->name == y->name && x->parent_inst == y->parent_inst &&
                      x->state == y->state && fx.busy_ns == fy.busy_ns &&
                      fx.idle_ns == fy.idle_ns && x->waker_refs == y->waker_refs &&
                      x->waker_zero_ns == y->waker_zero_ns && x->dropped == y->dropped &&
                      x->first_ns == y->first_ns && x->last_ns == y->last_ns &&
                      fx.delay_p50_ns == fy.delay_p50_ns && fx.delay_p99_ns == fy.delay_p99_ns,
                  "task %zu differs", i);
        cr_assert_eq(x->npolls, y->npolls);
        cr_assert_eq(x->nwakes, y->nwakes);
        for (size_t k = 0; k < x->npolls; k++)
            cr_assert_eq(memcmp(&x->polls[k], &y->polls[k], sizeof(x->polls[k])), 0,
                         "task %zu poll %zu differs", i, k);
        for (size_t k = 0; k < x->nwakes; k++)
            cr_assert_eq(memcmp(&x->wakes[k], &y->wakes[k], sizeof(x->wakes[k])), 0,
                         "task %zu wake %zu differs", i, k);
    }
    for (size_t i = 0; i < a->dump->nthreads; i++) {
        const struct frd_worker *x = &a->workers[i], *y = &b->workers[i];
        cr_assert_eq(x->npolls, y->npolls);
        cr_assert_eq(x->nparked, y->nparked);
        cr_assert_eq(x->busy_ns, y->busy_ns);
        if (x->npolls)
            cr_assert_eq(memcmp(x->polls, y->polls, x->npolls * sizeof(*x->polls)), 0);
        if (x->nparked)
            cr_assert_eq(memcmp(x->parked, y->parked, x->nparked * sizeof(*x->parked)), 0);
    }
    cr_assert_eq(a->nnotes, b->nnotes);
    for (size_t i = 0; i < a->nnotes; i++)
        cr_assert_str_eq(a->notes[i].what, b->notes[i].what);
}

/* Decode @n bytes both ways and compare everything. */
static void compare(const uint8_t *p, size_t n)
{
    struct frd_dump *lean = NULL, *full = NULL;
    char e1[256], e2[256];
    int r1 = frd_open_mem_ex(p, n, "x.frd", 0, &lean, e1, sizeof(e1));
    int r2 = frd_open_mem(p, n, "x.frd", &full, e2, sizeof(e2));
    cr_assert_eq(r1, r2);
    if (r1 != 0) {
        cr_assert_str_eq(e1, e2);
        return;
    }
    same_dump(lean, full);
    struct frd_model a, b;
    cr_assert_eq(frd_model_build_ex(lean, FRD_MODEL_TIMELINE, &a), -EINVAL,
                 "a timeline needs the events");
    cr_assert_eq(frd_model_build_ex(lean, 0, &a), 0);
    cr_assert_eq(frd_model_build(full, &b), 0);
    same_model(&a, &b);
    frd_model_free(&a);
    frd_model_free(&b);
    frd_close(lean);
    frd_close(full);
}

Test(streaming, wrapped_dump_decodes_the_same_both_ways, .timeout = 60)
{
    make_dump();
    struct frd_dump *d = NULL;
    char err[256];
    cr_assert_eq(frd_open_mem_ex(buf, len, "x.frd", 0, &d, err, sizeof(err)), 0, "%s", err);
    int wrapped = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        wrapped |= d->threads[i].nevents > 0 && !d->threads[i].complete_head;
    cr_assert(wrapped, "the scenario must wrap a ring (holes before first_whole)");
    frd_close(d);
    compare(buf, len);
    free(buf);
}

/* The prefaulter (a helper thread faulting in the arrays ahead of their
 * use, started for large dumps only) is started for this small one: the
 * lean and full paths still agree, on the whole dump and on cut ones, and
 * the sanitizer builds see the helper thread run. */
Test(streaming, prefaulted_decoding_gives_the_same, .timeout = 120)
{
    make_dump();
    frd__prefault_always = 1;
    compare(buf, len);
    for (size_t cut = len / 2; cut < len; cut += 1 + len / 10)
        compare(buf, cut);
    frd__prefault_always = 0;
    free(buf);
}

Test(streaming, cut_and_corrupted_dumps_decode_the_same_both_ways, .timeout = 120)
{
    make_dump();
    for (size_t cut = 0; cut < len; cut += 1 + len / 150)
        compare(buf, cut);
    uint8_t *copy = malloc(len);
    for (size_t at = 0; at < len; at += 1 + len / 150) {
        memcpy(copy, buf, len);
        copy[at] ^= 0x5a;
        compare(copy, len);
    }
    free(copy);
    free(buf);
}

/* Decode @p (@n bytes) with the pages of every THREAD section checked on one
 * thread and on two (frd__check_split_always), and compare what each found:
 * the same errors, pages, events. */
static void split_check_same(const uint8_t *p, size_t n)
{
    struct frd_dump *one = NULL, *two = NULL;
    char e1[256], e2[256];
    int r1 = frd_open_mem(p, n, "x.frd", &one, e1, sizeof(e1));
    frd__check_split_always = 1;
    int r2 = frd_open_mem_ex(p, n, "x.frd", 0, &two, e2, sizeof(e2));
    frd__check_split_always = 0;
    cr_assert_eq(r1, r2);
    if (r1 != 0) {
        cr_assert_str_eq(e1, e2);
        return;
    }
    same_dump(two, one);
    for (size_t i = 0; i < one->nthreads; i++) {
        const struct frd_thread *a = &one->threads[i], *b = &two->threads[i];
        cr_assert(a->npages == b->npages && a->ngood == b->ngood && a->pages_bad == b->pages_bad &&
                      a->nspawns == b->nspawns,
                  "thread %zu: pages %u/%u, good %zu/%zu, bad %llu/%llu, spawns %zu/%zu", i,
                  a->npages, b->npages, a->ngood, b->ngood, (unsigned long long)a->pages_bad,
                  (unsigned long long)b->pages_bad, a->nspawns, b->nspawns);
    }
    frd_close(one);
    frd_close(two);
}

/* Every zstd frame of @src (@n bytes) but skippable ones inflated, @flips bytes of each past
 * its first 128 changed (inside a THREAD section: in its pages), and
 * deflated again into a new file. Return: its length (*@out to free). */
static size_t damage_pages(const uint8_t *src, size_t n, int flips, unsigned seed,
                           uint8_t **out)
{
    size_t cap = n * 4 + 4096, used = 0;
    uint8_t *dst = malloc(cap);
    cr_assert_not_null(dst);
    srand(seed);
    for (size_t off = 0; off < n;) {
        size_t fsz = ZSTD_findFrameCompressedSize(src + off, n - off);
        cr_assert(!ZSTD_isError(fsz), "frame at %zu", off);
        if ((src[off] & 0xF0) == 0x50 && src[off + 1] == 0x2A && src[off + 2] == 0x4D &&
            src[off + 3] == 0x18) {
            /* a skippable frame (the file header): as it is */
            memcpy(dst + used, src + off, fsz);
            used += fsz;
            off += fsz;
            continue;
        }
        /* (the dump streams its frames: their sizes are not in them) */
        size_t raw = 0, room = 1 << 16;
        uint8_t *sec = malloc(room);
        ZSTD_DCtx *dc = ZSTD_createDCtx();
        cr_assert(sec && dc);
        ZSTD_inBuffer in = {src + off, fsz, 0};
        for (;;) {
            if (raw == room) {
                room *= 2;
                sec = realloc(sec, room);
                cr_assert_not_null(sec);
            }
            ZSTD_outBuffer ob = {sec, room, raw};
            size_t r = ZSTD_decompressStream(dc, &ob, &in);
            cr_assert(!ZSTD_isError(r), "frame at %zu: %s", off, ZSTD_getErrorName(r));
            raw = ob.pos;
            if (r == 0)
                break;
        }
        ZSTD_freeDCtx(dc);
        for (int k = 0; k < flips && raw > 256; k++)
            sec[128 + (size_t)rand() % (raw - 128)] ^= (uint8_t)(1 + rand() % 255);
        size_t bound = ZSTD_compressBound(raw);
        if (used + bound > cap) {
            cap = (used + bound) * 2;
            dst = realloc(dst, cap);
            cr_assert_not_null(dst);
        }
        size_t z = ZSTD_compress(dst + used, bound, sec, raw, 1);
        cr_assert(!ZSTD_isError(z));
        used += z;
        free(sec);
        off += fsz;
    }
    *out = dst;
    return used;
}

/* Pages checked on two threads (as for a section of 4 MiB or more) give
 * what one thread gives: on the whole dump, cut ones, and copies whose
 * pages were damaged (errors in page order, the same pages dropped). */
Test(streaming, pages_checked_on_two_threads_give_the_same, .timeout = 120)
{
    make_dump();
    split_check_same(buf, len);
    for (size_t cut = len / 2; cut < len; cut += 1 + len / 7)
        split_check_same(buf, cut);
    int dropped = 0;
    for (unsigned seed = 1; seed <= 12; seed++) {
        uint8_t *bad;
        size_t n = damage_pages(buf, len, 1 + (int)seed % 4, seed, &bad);
        split_check_same(bad, n);
        struct frd_dump *d = NULL;
        char err[256];
        if (frd_open_mem(bad, n, "x.frd", &d, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < d->nthreads; i++)
                dropped += d->threads[i].pages_bad > 0;
            frd_close(d);
        }
        free(bad);
    }
    cr_assert_gt(dropped, 0, "the damaged copies must drop pages somewhere");
    free(buf);
}

/* Task ids that are addresses (the adapters name a handle by its pointer):
 * all share their low bits, and every one of 20000 live tasks must get its
 * own instance. A map that let ids with the same low bits use only one slot
 * in eight filled up and never returned. Decoded twice: the second time
 * with a prefaulter, which reserves the tasks whole (as for a large dump). */
Test(streaming, pointer_ids_each_get_an_instance, .timeout = 60)
{
    sc_recorder_start(4096);
    fr_thread_name("loop");
    const uint64_t base = 0x55d0a3c04a40u, n = 20000;
    for (uint64_t i = 0; i < n; i++) {
        fr_spawn(base + 64 * i, 0, "handle");
        fr_poll_begin(base + 64 * i);
        fr_poll_end(base + 64 * i, FR_PENDING);
    }
    char path[512];
    sc_dump(path);
    fr_shutdown();
    struct sc_result r;
    sc_decode(path, &r);
    cr_assert_eq(r.m.ntasks, n, "%zu instances for %llu tasks", r.m.ntasks,
                 (unsigned long long)n);
    sc_result_free(&r);
    frd__prefault_always = 1;
    sc_decode(path, &r);
    frd__prefault_always = 0;
    cr_assert_eq(r.m.ntasks, n, "with a prefaulter: %zu instances for %llu tasks", r.m.ntasks,
                 (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(r.m.tasks[i].id, base + 64 * i, "task %llu has id %#llx",
                     (unsigned long long)i, (unsigned long long)r.m.tasks[i].id);
    sc_result_free(&r);
}

/* The id map is sized before the replay from the spawns the pages hold
 * (counted while they are checked, on the fast path and on a page's first
 * record alike); ids first seen without their spawn must still grow it, and
 * while the prefaulter may be touching the sized table. 30000 tasks are
 * spawned, then 20000 more are only polled (their spawns outside the ring's
 * reach, as for a dump of a long-running server). Decoded plain and with a
 * prefaulter: every id has its instance, in order. */
Test(streaming, id_map_sized_from_spawns_still_grows, .timeout = 60)
{
    sc_recorder_start(4096);
    fr_thread_name("loop");
    const uint64_t spawned = 30000, polled = 20000;
    for (uint64_t id = 1; id <= spawned; id++) {
        fr_spawn(id, 0, "request");
        fr_poll_begin(id);
        fr_poll_end(id, FR_PENDING);
    }
    for (uint64_t id = spawned + 1; id <= spawned + polled; id++) {
        fr_poll_begin(id);
        fr_poll_end(id, FR_PENDING);
    }
    char path[512];
    sc_dump(path);
    fr_shutdown();
    for (int with_pf = 0; with_pf < 2; with_pf++) {
        struct sc_result r;
        frd__prefault_always = with_pf;
        sc_decode(path, &r);
        frd__prefault_always = 0;
        size_t spawns = 0;
        for (size_t i = 0; i < r.d->nthreads; i++)
            spawns += r.d->threads[i].nspawns;
        cr_assert_eq(spawns, spawned, "%zu spawns counted for %llu", spawns,
                     (unsigned long long)spawned);
        cr_assert_eq(r.m.ntasks, spawned + polled, "prefaulter %d: %zu instances", with_pf,
                     r.m.ntasks);
        for (uint64_t i = 0; i < spawned + polled; i++)
            cr_assert_eq(r.m.tasks[i].id, i + 1, "prefaulter %d: task %llu has id %llu", with_pf,
                         (unsigned long long)i, (unsigned long long)r.m.tasks[i].id);
        sc_result_free(&r);
    }
}

/* The prefaulter reads a byte of each page it faulted in (prefault.h): it
 * must change no byte its owner writes meanwhile, and after
 * frd__prefaulter_forget the owner may unmap what it asked about (the
 * helper reading a range unmapped under it would crash the test). Each
 * round maps 16 MiB, asks for it a megabyte at a time, writes its first
 * megabyte while the helper works on the rest, checks what it wrote, forgets
 * and unmaps it at once (without the forget, this crashes in most runs). */
Test(streaming, prefaulter_changes_nothing_and_forget_lets_memory_go, .timeout = 120)
{
    struct frd_prefaulter pf;
    int rc = frd__prefaulter_start(&pf);
    if (rc == -ENOSYS)
        cr_skip_test("no MADV_POPULATE_WRITE on this system: nothing is prefaulted");
    cr_assert_eq(rc, 0, "prefaulter start: %d", rc);
    const size_t size = (size_t)16 << 20, step = (size_t)1 << 20;
    for (int round = 0; round < 40; round++) {
        uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(p, MAP_FAILED);
        for (size_t off = 0; off < size; off += step)
            frd__prefaulter_ask(&pf, p + off, step);
        for (size_t off = 0; off < step; off += 64)
            p[off] = (uint8_t)(round + off + 1);
        for (size_t off = 0; off < step; off += 64)
            cr_assert_eq(p[off], (uint8_t)(round + off + 1), "round %d, byte %zu changed", round,
                         off);
        frd__prefaulter_forget(&pf);
        munmap(p, size);
    }
    frd__prefaulter_stop(&pf);
    /* a range that is not mapped is refused, not touched */
    cr_assert_eq(frd__prefault(NULL, FRD_PREFAULT_MIN * 4), -1);
}
