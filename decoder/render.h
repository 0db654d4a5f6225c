/*
 * decoder/render.h - the last stage: a dump, its model and findings as text
 * (render_text.c), JSON (render_json.c, shapes fixed by DESIGN.md "CLI"), and
 * CSV (render_csv.c), Chrome trace events (render_chrome.c), and one
 * self-contained HTML page (render_html.c, `flightrec report`).
 *
 * Times are shown relative to the start of the recording window
 * (frd_model.start_ns). All functions write to @out and return 0, or -EIO if
 * the stream reported an error.
 */
#ifndef FRD_RENDER_H
#define FRD_RENDER_H

#include <stdio.h>

#include "analyze.h"
#include "model.h"
#include "symbolize.h"

struct frd_view {
    const struct frd_dump *d;
    const struct frd_model *m;
    const struct frd_findings *f;
    const struct frd_thresholds *th;
    const struct frd_frame *frames; /* symbolized crash backtrace */
    size_t nframes;
    int color; /* text renderers: ANSI colour (a terminal, NO_COLOR unset) */
};

/* Timeline filters: 0 means "all". */
struct frd_filter {
    int by_task;
    uint64_t task;
    int by_thread;
    uint32_t tid;
};

int frd_text_info(FILE *out, const struct frd_view *v);
int frd_text_tasks(FILE *out, const struct frd_view *v);
int frd_text_timeline(FILE *out, const struct frd_view *v, const struct frd_filter *flt);
int frd_text_findings(FILE *out, const struct frd_view *v);

int frd_json_info(FILE *out, const struct frd_view *v);
int frd_json_tasks(FILE *out, const struct frd_view *v);
int frd_json_findings(FILE *out, const struct frd_view *v);
int frd_json_export(FILE *out, const struct frd_view *v);
int frd_chrome_export(FILE *out, const struct frd_view *v);
int frd_csv_export(FILE *out, const struct frd_view *v);

/* `flightrec locks`: one row per lock, by total wait (render_locks.c).
 * Return: 0, -EIO, or -ENOMEM. */
int frd_text_locks(FILE *out, const struct frd_view *v);
int frd_json_locks(FILE *out, const struct frd_view *v);

/* What `flightrec report` embeds at most: polls (and parked spans) per worker
 * lane, and task rows. The page says what it left out. */
struct frd_report_limits {
    size_t max_polls;
    size_t max_tasks;
};

#define FRD_REPORT_MAX_POLLS 20000
#define FRD_REPORT_MAX_TASKS 20000

/*
 * frd_html_report - the report page: crash summary, findings and timeline,
 * with its data as one JSON object and its script inline (no network).
 * Return: 0, -EIO, or -ENOMEM.
 */
int frd_html_report(FILE *out, const struct frd_view *v, const struct frd_report_limits *lim);

/* The signal's abbreviation ("SIGSEGV"), or "signal N" in @buf. */
const char *frd_signal_name(int signo, char *buf, size_t len);
/* "fault address 0x...", "sent by pid P (uid U) with kill", or SI_KERNEL's
 * "fault address unknown": what si_code says about the crash signal. */
const char *frd_crash_origin(const struct frd_crash *c, char *buf, size_t len);

/* Parent chain of task instance @ti (the async call chain), as text in @buf:
 * `7 "fetch" <- 3 "accept_loop"`. */
const char *frd_task_chain(const struct frd_model *m, int32_t ti, char *buf, size_t len);

/* Findings of instance @ti as "kind,kind" in @buf ("" if none); a deadlock counts for
 * every task of its cycle. */
const char *frd_task_findings(const struct frd_view *v, int32_t ti, char *buf, size_t len);
/* frd_task_kind_masks - per task instance, a bit (1 << kind) for each kind
 * of finding about it (a deadlock: every task of its cycle): one pass over
 * the findings instead of one per task.
 * Return: a malloc'ed array of m->ntasks masks, or NULL (out of memory). */
uint32_t *frd_task_kind_masks(const struct frd_view *v);
/* frd_kinds_list - "hung,starvation" for @mask, in kind order, in @buf. */
const char *frd_kinds_list(uint32_t mask, char *buf, size_t len);

/*
 * frd_json_finding_facts - the facts of finding @x beyond kind, task, name,
 * thread, at_ns, duration_ns and message, as JSON members, each preceded by
 * ", ": cause, how, poll (1-based) and its result, parent (the task that
 * spawned it), waker, ran_on, await, culprit (task, name, thread,
 * busy_ns, polls; null when the finding blames no other work), workers
 * (total, busy, parked), idle_worker (thread, parked_ns) and, for protocol,
 * what. Threads are tids.
 */
void frd_json_finding_facts(FILE *out, const struct frd_model *m, const struct frd_finding *x);

#endif /* FRD_RENDER_H */
