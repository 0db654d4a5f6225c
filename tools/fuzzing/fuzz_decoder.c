/*
 * fuzz_decoder.c - libFuzzer harness for the decoder: every input goes through
 * the reader, the model, the analyses and the text, JSON and HTML renderers,
 * which is what `flightrec info/tasks/timeline/analyze/export/report` do with
 * a file, and the many-dump summary of `analyze`: once with every event
 * decoded into arrays and the timeline kept (timeline, export), once the lean
 * way (events decoded from the pages by cursors, as info, tasks and analyze
 * do). The two must agree, down to every finding's facts and sentence; the
 * harness aborts if not. The lean open checks every THREAD section's pages
 * on two threads (frd__check_split_always, as for a large section), the
 * full one on one: the same errors, pages and events either way.
 * Symbolization of crash frames is left out: it opens files named by the
 * (hostile) module map; the code-address tokens in strings are rewritten
 * (module+offset only, FRD_SYM_NO_FILES) on both paths, as the CLI does before
 * anything reads a name.
 * Built and run by tools/fuzz.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "model.h"
#include "reader.h"
#include "reader_int.h"
#include "render.h"
#include "summary.h"
#include "symbolize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The lean path: what `info`, `tasks` and `analyze` run. */
/* Do two findings lists say the same? */
static int same_findings(const struct frd_findings *a, const struct frd_findings *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct frd_finding *x = &a->v[i], *y = &b->v[i];
        if (x->kind != y->kind || x->cause != y->cause || x->task != y->task ||
            x->thread != y->thread || x->at_ns != y->at_ns || x->duration_ns != y->duration_ns ||
            x->how != y->how || x->poll != y->poll || x->wake != y->wake ||
            x->ran_thread != y->ran_thread || x->culprit.task != y->culprit.task ||
            x->culprit.thread != y->culprit.thread || x->culprit.busy_ns != y->culprit.busy_ns ||
            x->culprit.polls != y->culprit.polls || x->workers != y->workers ||
            x->workers_busy != y->workers_busy || x->workers_parked != y->workers_parked ||
            x->idle_thread != y->idle_thread || x->idle_ns != y->idle_ns ||
            x->lock != y->lock || x->lock_holder != y->lock_holder ||
            x->ncycle != y->ncycle || strcmp(x->message, y->message) != 0)
            return 0;
    }
    return 1;
}

/* Did two opens of one input find the same errors, pages and events? */
static int same_pages(const struct frd_dump *a, const struct frd_dump *b)
{
    if (a->nerrors != b->nerrors || a->errors_all != b->errors_all ||
        a->nthreads != b->nthreads || a->damaged != b->damaged)
        return 0;
    for (size_t i = 0; i < a->nerrors; i++)
        if (strcmp(a->errors[i], b->errors[i]) != 0)
            return 0;
    for (size_t i = 0; i < a->nthreads; i++) {
        const struct frd_thread *x = &a->threads[i], *y = &b->threads[i];
        if (x->npages != y->npages || x->ngood != y->ngood || x->pages_bad != y->pages_bad ||
            x->nevents != y->nevents || x->nspawns != y->nspawns ||
            x->first_whole != y->first_whole)
            return 0;
    }
    return 1;
}

static void lean(const uint8_t *data, size_t size, FILE *sink, const struct frd_dump *full_d,
                 const struct frd_model *full, const struct frd_findings *full_f)
{
    struct frd_dump *d = NULL;
    char err[256];
    frd__check_split_always = 1;
    int rc = frd_open_mem_ex(data, size, "fuzz", 0, &d, err, sizeof err);
    frd__check_split_always = 0;
    if (rc != 0)
        abort(); /* the full path opened it */
    if (!same_pages(d, full_d))
        abort();
    frd_symbolize_strings(d, FRD_SYM_NO_FILES);
    struct frd_model m = { 0 };
    if (frd_model_build_ex(d, 0, &m) == 0) {
        if (full && (m.nevents != full->nevents || m.ntasks != full->ntasks ||
                     m.nnotes != full->nnotes || m.start_ns != full->start_ns ||
                     m.end_ns != full->end_ns || m.locks.n != full->locks.n ||
                     m.locks.nwaits != full->locks.nwaits ||
                     m.locks.nstrays != full->locks.nstrays))
            abort();
        for (size_t i = 0; full && i < m.ntasks; i++)
            if (m.tasks[i].npolls != full->tasks[i].npolls ||
                m.tasks[i].nwakes != full->tasks[i].nwakes ||
                m.tasks[i].state != full->tasks[i].state)
                abort();
        struct frd_thresholds th = { FRD_DEFAULT_STARVATION_NS, FRD_DEFAULT_LONG_POLL_NS,
                                     FRD_DEFAULT_HANG_NS };
        struct frd_findings f = { 0 };
        if (frd_analyze(&m, &th, &f) == 0) {
            if (full_f && !same_findings(&f, full_f))
                abort();
            struct frd_view v = { .d = d, .m = &m, .f = &f, .th = &th };
            frd_text_info(sink, &v);
            frd_text_tasks(sink, &v);
            frd_text_findings(sink, &v);
            frd_json_info(sink, &v);
            frd_json_tasks(sink, &v);
            frd_json_findings(sink, &v);
            frd_chrome_export(sink, &v);
            frd_text_locks(sink, &v);
            frd_json_locks(sink, &v);
        }
        frd_findings_free(&f);
    }
    frd_model_free(&m);
    frd_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    struct frd_dump *d = NULL;
    char err[256];
    if (frd_open_mem(data, size, "fuzz", &d, err, sizeof err) != 0)
        return 0;
    frd_symbolize_strings(d, FRD_SYM_NO_FILES);
    struct frd_model m = { 0 };
    int built = frd_model_build(d, &m) == 0, analyzed = 0;
    struct frd_findings f = { 0 };
    if (built) {
        struct frd_thresholds th = { FRD_DEFAULT_STARVATION_NS, FRD_DEFAULT_LONG_POLL_NS,
                                     FRD_DEFAULT_HANG_NS };
        analyzed = frd_analyze(&m, &th, &f) == 0;
        if (analyzed) {
            struct frd_view v = { .d = d, .m = &m, .f = &f, .th = &th };
            struct frd_filter all = { 0 };
            frd_text_info(sink, &v);
            frd_text_tasks(sink, &v);
            frd_text_timeline(sink, &v, &all);
            frd_text_findings(sink, &v);
            frd_json_info(sink, &v);
            frd_json_tasks(sink, &v);
            frd_json_findings(sink, &v);
            frd_json_export(sink, &v);
            frd_chrome_export(sink, &v);
            frd_csv_export(sink, &v);
            frd_text_locks(sink, &v);
            frd_json_locks(sink, &v);
            struct frd_report_limits lim = { 64, 64 }; /* small: exercise the caps */
            frd_html_report(sink, &v, &lim);
            /* `analyze A B ...`: the same dump twice into one summary */
            struct frd_summary sum = { 0 };
            frd_summary_add(&sum, 0, "a.frd", &m, &f);
            frd_summary_add(&sum, 1, "b.frd", &m, &f);
            frd_summary_sort(&sum);
            frd_summary_text(sink, &sum);
            frd_summary_json(sink, &sum);
            frd_summary_free(&sum);
        }
    }
    lean(data, size, sink, d, built ? &m : NULL, analyzed ? &f : NULL);
    frd_findings_free(&f);
    frd_model_free(&m);
    frd_close(d);
    return 0;
}
