/*
 * fuzz_decoder.c - libFuzzer harness for the decoder: every input goes through
 * the reader, the model, the analyses and the text, JSON and HTML renderers,
 * which is what `flightrec info/tasks/timeline/analyze/export/report` do with
 * a file, and the many-dump summary of `analyze`.
 * Symbolization is left out: it opens files named by the (hostile) module map.
 * Built and run by tools/fuzz.
 */
#include <stdint.h>
#include <stdio.h>

#include "analyze.h"
#include "model.h"
#include "reader.h"
#include "render.h"
#include "summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    struct frd_dump *d = NULL;
    char err[256];
    if (frd_open_mem(data, size, "fuzz", &d, err, sizeof err) != 0)
        return 0;
    struct frd_model m = { 0 };
    if (frd_model_build(d, &m) == 0) {
        struct frd_thresholds th = { FRD_DEFAULT_STARVATION_NS, FRD_DEFAULT_LONG_POLL_NS,
                                     FRD_DEFAULT_HANG_NS };
        struct frd_findings f = { 0 };
        if (frd_analyze(&m, &th, &f) == 0) {
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
        frd_findings_free(&f);
    }
    frd_model_free(&m);
    frd_close(d);
    return 0;
}
