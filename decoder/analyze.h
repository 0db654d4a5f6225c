/*
 * decoder/analyze.h - the findings (DESIGN.md "Findings, defined").
 *
 * Third stage of the decoder: reads a built model and names the bugs that
 * are hard to see in a raw trace: lost_wakeup (three causes), starvation
 * (with what kept the workers busy), long_poll, hung (with the last await
 * label), never_polled and protocol. Any finding that rests on an event being
 * absent from a span is only made when every thread's ring covers that span
 * (frd_model_covered). Findings are sorted by severity, then time.
 */
#ifndef FRD_ANALYZE_H
#define FRD_ANALYZE_H

#include <stdint.h>

#include "model.h"

/* Kinds in order of severity (most severe first). */
enum frd_kind {
    FRD_LOST_WAKEUP,
    FRD_PROTOCOL,
    FRD_HUNG,
    FRD_STARVATION,
    FRD_NEVER_POLLED,
    FRD_LONG_POLL,
    FRD_KIND_COUNT
};

struct frd_thresholds {
    int64_t starvation_ns; /* default 10 ms */
    int64_t long_poll_ns;  /* default 10 ms */
    int64_t hang_ns;       /* default 1 s */
};

#define FRD_DEFAULT_STARVATION_NS 10000000
#define FRD_DEFAULT_LONG_POLL_NS 10000000
#define FRD_DEFAULT_HANG_NS 1000000000

struct frd_finding {
    int kind;           /* enum frd_kind */
    int32_t task;       /* instance index into the model, FRD_NONE if none */
    uint32_t thread;    /* index into dump->threads */
    int64_t at_ns;      /* absolute (CLOCK_MONOTONIC) ns */
    int64_t duration_ns;
    char message[320];
};

struct frd_findings {
    struct frd_finding *v;
    size_t n, cap;
};

/*
 * frd_analyze - compute every finding of model @m with thresholds @th into
 * @out (which must be zeroed or freed before). Return: 0 or -ENOMEM.
 */
int frd_analyze(const struct frd_model *m, const struct frd_thresholds *th,
                struct frd_findings *out);

void frd_findings_free(struct frd_findings *f);

/* frd_kind_name - "lost_wakeup", "starvation", ... (the JSON "kind"). */
const char *frd_kind_name(int kind);

/*
 * frd_culprit - what kept the workers busy during [@a_ns, @b_ns]: the poll of
 * a task other than @victim that overlaps the span most, as a phrase in @buf
 * ("behind task 17 \"hog\"'s 180.0 ms poll on worker-1"), or "" if none.
 */
const char *frd_culprit(const struct frd_model *m, int32_t victim, int64_t a_ns, int64_t b_ns,
                        char *buf, size_t len);

/* frd_fmt_ms - format @ns as milliseconds ("12.345 ms" style, no unit) in @buf. */
const char *frd_fmt_dur(int64_t ns, char *buf, size_t len);

#endif /* FRD_ANALYZE_H */
