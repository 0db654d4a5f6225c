/*
 * tests/decoder/test_damage.c - a real dump cut at every offset, and with
 * bytes flipped at many places, is decoded in-process (reader, model,
 * analyses, every renderer) without crashing; a cut dump is always reported
 * as damaged with a "FILE: offset N" message, and what was whole is kept.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "render.h"
#include "helpers.h"
#include "scenario.h"

static uint8_t *buf;
static size_t len;

static void make_dump(void)
{
    sc_recorder_start(0);
    fr_thread_name("main");
    struct sc_worker *w = sc_worker_start("worker-1");
    for (uint64_t t = 1; t <= 40; t++) {
        fr_spawn(t, t > 1 ? t - 1 : 0, t % 2 ? "odd" : "even");
        fr_poll_begin(t);
        fr_await(t, "somewhere");
        fr_poll_end(t, FR_PENDING);
        fr_wake(t);
        fr_mark(t, "note");
    }
    sc_worker_stop(w);
    char path[512];
    sc_dump(path);
    fr_shutdown();
    buf = (uint8_t *)th_read_file(path, &len);
}

/* Everything the CLI would do with a dump, output thrown away. */
static void exercise(struct frd_dump *d)
{
    struct frd_model m;
    cr_assert_eq(frd_model_build(d, &m), 0);
    struct frd_thresholds th = {10000000, 10000000, 1000000000};
    struct frd_findings f;
    cr_assert_eq(frd_analyze(&m, &th, &f), 0);
    struct frd_frame fr[4];
    struct frd_view v = {.d = d, .m = &m, .f = &f, .th = &th, .frames = fr, .nframes = 0};
    if (d->crash.present && d->crash.nframes) {
        v.nframes = d->crash.nframes < 4 ? d->crash.nframes : 4;
        frd_symbolize(d, d->crash.frames, v.nframes, fr);
    }
    FILE *null = fopen("/dev/null", "w");
    struct frd_filter all = {0};
    frd_text_info(null, &v);
    frd_text_tasks(null, &v);
    frd_text_timeline(null, &v, &all);
    frd_text_findings(null, &v);
    frd_json_info(null, &v);
    frd_json_tasks(null, &v);
    frd_json_findings(null, &v);
    frd_json_export(null, &v);
    frd_chrome_export(null, &v);
    frd_csv_export(null, &v);
    fclose(null);
    frd_findings_free(&f);
    frd_model_free(&m);
}

Test(damage, whole_dump_is_whole, .timeout = 60)
{
    make_dump();
    struct frd_dump *d;
    char err[256];
    cr_assert_eq(frd_open_mem(buf, len, "whole.frd", &d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d->damaged, 0, "%s", d->nerrors ? d->errors[0] : "");
    cr_assert(d->have_end);
    cr_assert_geq(d->nthreads, 2);
    exercise(d);
    frd_close(d);
}

/* A shared rings file handed to the reader: refused, and told where it goes. */
Test(damage, a_shared_rings_file_is_pointed_to_recover)
{
    static const uint8_t rings[64] = "FLIGHTRR";
    struct frd_dump *d = NULL;
    char err[256] = "";
    cr_assert_eq(frd_open_mem(rings, sizeof rings, "x.rings", &d, err, sizeof(err)), -EBADMSG);
    cr_assert_not_null(strstr(err, "x.rings: offset 0: "), "%s", err);
    cr_assert_not_null(strstr(err, "flightrec recover"), "%s", err);
}

/* Two dumps one after the other (`cat A.frd A.frd`): the first is read
 * whole, alone, and what follows its END is reported, not merged in. */
Test(damage, a_dump_appended_to_another_is_not_merged_into_it, .timeout = 60)
{
    make_dump();
    uint8_t *two = malloc(2 * len);
    cr_assert_not_null(two);
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    struct frd_dump *one, *d;
    char err[256];
    cr_assert_eq(frd_open_mem(buf, len, "one.frd", &one, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(frd_open_mem(two, 2 * len, "two.frd", &d, err, sizeof(err)), 0, "%s", err);
    cr_assert(d->have_end);
    cr_assert_eq(d->nthreads, one->nthreads, "threads of both dumps: %zu, one has %zu",
                 d->nthreads, one->nthreads);
    cr_assert_eq(d->stopped_at, len);
    cr_assert_eq(d->nerrors, 1);
    char want[64];
    snprintf(want, sizeof want, "two.frd: offset %zu: expected the end of the file", len);
    cr_assert_not_null(strstr(d->errors[0], want), "%s", d->errors[0]);
    struct frd_model m1, m2;
    cr_assert_eq(frd_model_build(one, &m1), 0);
    cr_assert_eq(frd_model_build(d, &m2), 0);
    cr_assert_eq(m2.nevents, m1.nevents);
    cr_assert_eq(m2.nnotes, 0, "protocol notes from a merged history: %zu", m2.nnotes);
    frd_model_free(&m1);
    frd_model_free(&m2);
    frd_close(one);
    frd_close(d);
    free(two);
}

Test(damage, cut_at_every_offset, .timeout = 120)
{
    make_dump();
    size_t opened = 0, refused = 0;
    size_t whole_threads = 0;
    for (size_t cut = 0; cut < len; cut++) {
        struct frd_dump *d = NULL;
        char err[256] = "";
        int r = frd_open_mem(buf, cut, "cut.frd", &d, err, sizeof(err));
        if (r < 0) {
            /* only a cut inside the header frame may refuse the file */
            cr_assert_eq(r, -EBADMSG, "cut at %zu: %d", cut, r);
            cr_assert_lt(cut, 8 + FR_HEADER_SIZE, "cut at %zu refused: %s", cut, err);
            cr_assert_not_null(strstr(err, "cut.frd: offset "), "%s", err);
            refused++;
            continue;
        }
        opened++;
        cr_assert(d->damaged, "cut at %zu of %zu not reported", cut, len);
        cr_assert_eq(d->have_end, 0);
        cr_assert_geq(d->nerrors, 1);
        cr_assert_not_null(strstr(d->errors[0], "cut.frd: offset "), "%s", d->errors[0]);
        cr_assert_leq(d->stopped_at, cut);
        whole_threads += d->nthreads;
        exercise(d);
        frd_close(d);
    }
    cr_assert_gt(opened, len / 2);
    cr_assert_gt(whole_threads, 0);
    cr_log_info("%zu cuts decoded, %zu refused (header)", opened, refused);
}

Test(damage, flipped_bytes_never_crash, .timeout = 120)
{
    make_dump();
    uint8_t *copy = malloc(len);
    srand(12345);
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, buf, len);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++)
            copy[(size_t)rand() % len] ^= (uint8_t)(1 + rand() % 255);
        struct frd_dump *d = NULL;
        char err[256];
        if (frd_open_mem(copy, len, "flip.frd", &d, err, sizeof(err)) == 0) {
            exercise(d);
            frd_close(d);
        }
    }
    free(copy);
}
