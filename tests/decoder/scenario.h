/*
 * tests/decoder/scenario.h - what the decoder tests share: worker threads
 * that run scripted steps on request (so hooks fire on real, distinct threads
 * in a known order), a recorder started for one test, and a dump decoded into
 * model + findings with small thresholds.
 */
#ifndef FRD_TEST_SCENARIO_H
#define FRD_TEST_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "analyze.h"
#include "model.h"
#include "reader.h"

/* Thresholds the scenarios are built around (ms). */
#define SC_STARVATION_MS 5
#define SC_LONG_POLL_MS 5
#define SC_HANG_MS 100

struct sc_worker;

/* Start a named worker thread; it waits for steps. */
struct sc_worker *sc_worker_start(const char *name);
/* Run fn(arg) on the worker and wait until it returns. */
void sc_run(struct sc_worker *w, void (*fn)(void *), void *arg);
/* Hand fn(arg) to the worker and return at once (after its previous step). */
void sc_start(struct sc_worker *w, void (*fn)(void *), void *arg);
/* Wait until the worker's step has returned. */
void sc_wait(struct sc_worker *w);
/* Stop and join the worker. */
void sc_worker_stop(struct sc_worker *w);
uint32_t sc_worker_tid(const struct sc_worker *w);

/* fr_init for this test: a private dump dir, no crash handlers, no dump
 * signal, @ring_kb KiB rings (0: default). */
void sc_recorder_start(unsigned ring_kb);
/* fr_dump into @path (512 bytes). */
void sc_dump(char *path);

/* Steps for sc_run/sc_start: @a is the task id, cast to a pointer (SC_ARG).
 * Each calls the hooks its name says; tasks are spawned with the name "job". */
#define SC_TASK(a) ((uint64_t)(uintptr_t)(a))
#define SC_ARG(t) ((void *)(uintptr_t)(t))
void sc_spawn(void *a);            /* fr_spawn(a, 0, "job") */
void sc_poll_begin(void *a);
void sc_poll_end_pending(void *a);
void sc_poll_pending(void *a);     /* begin, end pending */
void sc_poll_ready(void *a);       /* begin, end ready */
void sc_poll_ready_drop(void *a);  /* begin, end ready, drop */
void sc_drop(void *a);
void sc_wake(void *a);
void sc_park(void *a);             /* fr_park; @a unused */
void sc_unpark(void *a);           /* fr_unpark; @a unused */

/* The usual cast: the recorder started (sc_recorder_start(0)), the calling
 * thread named "main", and two workers started with the names given. */
void sc_two_workers_start(struct sc_worker **a, const char *name_a, struct sc_worker **b,
                          const char *name_b);
/* Stop both workers, then fr_shutdown. */
void sc_two_workers_stop(struct sc_worker *a, struct sc_worker *b);

void sc_sleep_ms(unsigned ms);
void sc_spin_ms(unsigned ms); /* busy @ms of CPU time: a blocking call inside a poll */

struct sc_result {
    struct frd_dump *d;
    struct frd_model m;
    struct frd_findings f;
};

/* Decode @path with the SC_* thresholds; fails the test on error, or if the
 * lean decoding path (no timeline) finds anything different. */
void sc_decode(const char *path, struct sc_result *r);
/* The same with thresholds of its own (a scenario of many tiny polls raises
 * the long-poll one, so that a preempted 10 us poll is no finding). */
void sc_decode_with(const char *path, struct sc_result *r, unsigned starvation_ms,
                    unsigned long_poll_ms, unsigned hang_ms);
void sc_result_free(struct sc_result *r);

/* Number of findings of @kind (any task if @task is 0). */
size_t sc_count(const struct sc_result *r, int kind, uint64_t task);
/* The first finding of @kind about @task, or NULL. */
const struct frd_finding *sc_find(const struct sc_result *r, int kind, uint64_t task);
/* All findings as "kind(task): message" lines, for failure messages. */
const char *sc_describe(const struct sc_result *r);

/* Run the CLI with @args (a shell-quoted string); capture stdout and stderr
 * into malloc'ed strings. Returns the exit status, or -1 if it died. */
int sc_cli(const char *args, char **out, char **err);

#endif
