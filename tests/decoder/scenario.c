/*
 * tests/decoder/scenario.c - helpers for the decoder tests (see scenario.h).
 */
#include "scenario.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

struct sc_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(void *);
    void *arg;
    int busy, stop;
    uint32_t tid;
    char name[32];
};

static void *worker_main(void *p)
{
    struct sc_worker *w = p;
    fr_thread_name(w->name);
    pthread_mutex_lock(&w->mu);
    w->tid = (uint32_t)th_gettid();
    pthread_cond_broadcast(&w->cv);
    for (;;) {
        while (!w->busy && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->busy) {
            pthread_mutex_unlock(&w->mu);
            w->fn(w->arg);
            pthread_mutex_lock(&w->mu);
            w->busy = 0;
            pthread_cond_broadcast(&w->cv);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct sc_worker *sc_worker_start(const char *name)
{
    struct sc_worker *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    snprintf(w->name, sizeof(w->name), "%s", name);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    cr_assert_eq(pthread_create(&w->th, NULL, worker_main, w), 0);
    pthread_mutex_lock(&w->mu);
    while (!w->tid)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w;
}

void sc_start(struct sc_worker *w, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    w->fn = fn;
    w->arg = arg;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void sc_wait(struct sc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void sc_run(struct sc_worker *w, void (*fn)(void *), void *arg)
{
    sc_start(w, fn, arg);
    sc_wait(w);
}

void sc_worker_stop(struct sc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    free(w);
}

uint32_t sc_worker_tid(const struct sc_worker *w)
{
    return w->tid;
}

void sc_recorder_start(unsigned ring_kb)
{
    struct fr_config cfg = {
        .dump_dir = th_tmpdir(),
        .ring_bytes = (size_t)ring_kb * 1024,
        .dump_signal = -1,
        .flags = FR_NO_CRASH_HANDLERS,
        .max_dumps = 100,
    };
    cr_assert_eq(fr_init(&cfg), 0);
}

void sc_dump(char *path)
{
    cr_assert_eq(fr_dump("scenario", path, 512), 0);
}

void sc_spawn(void *a) { fr_spawn(SC_TASK(a), 0, "job"); }
void sc_poll_begin(void *a) { fr_poll_begin(SC_TASK(a)); }
void sc_poll_end_pending(void *a) { fr_poll_end(SC_TASK(a), FR_PENDING); }
void sc_poll_pending(void *a) { fr_poll_begin(SC_TASK(a)); fr_poll_end(SC_TASK(a), FR_PENDING); }
void sc_poll_ready(void *a) { fr_poll_begin(SC_TASK(a)); fr_poll_end(SC_TASK(a), FR_READY); }
void sc_poll_ready_drop(void *a) { sc_poll_ready(a); fr_drop(SC_TASK(a)); }
void sc_drop(void *a) { fr_drop(SC_TASK(a)); }
void sc_wake(void *a) { fr_wake(SC_TASK(a)); }
void sc_park(void *a) { (void)a; fr_park(); }
void sc_unpark(void *a) { (void)a; fr_unpark(); }

void sc_two_workers_start(struct sc_worker **a, const char *name_a, struct sc_worker **b,
                          const char *name_b)
{
    sc_recorder_start(0);
    fr_thread_name("main");
    *a = sc_worker_start(name_a);
    *b = sc_worker_start(name_b);
}

void sc_two_workers_stop(struct sc_worker *a, struct sc_worker *b)
{
    sc_worker_stop(a);
    sc_worker_stop(b);
    fr_shutdown();
}

void sc_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Busy for @ms of the thread's CPU time, so that a loaded machine (where
 * the time the thread waits for a CPU is the host's, which the run-delay
 * sampler tells apart) does not shorten the work itself. */
void sc_spin_ms(unsigned ms)
{
    int64_t end = cpu_ns() + (int64_t)ms * 1000000;
    while (cpu_ns() < end)
        ;
}

void sc_decode(const char *path, struct sc_result *r)
{
    sc_decode_with(path, r, SC_STARVATION_MS, SC_LONG_POLL_MS, SC_HANG_MS);
}

void sc_decode_with(const char *path, struct sc_result *r, unsigned starvation_ms,
                    unsigned long_poll_ms, unsigned hang_ms)
{
    char err[512];
    memset(r, 0, sizeof(*r));
    cr_assert_eq(frd_open(path, &r->d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(r->d->damaged, 0, "%s", r->d->nerrors ? r->d->errors[0] : "");
    cr_assert_eq(frd_model_build(r->d, &r->m), 0);
    struct frd_thresholds th = {
        .starvation_ns = starvation_ms * 1000000LL,
        .long_poll_ns = long_poll_ms * 1000000LL,
        .hang_ns = hang_ms * 1000000LL,
    };
    cr_assert_eq(frd_analyze(&r->m, &th, &r->f), 0);

    /* the lean path (events read from the pages, no timeline) must find the
     * very same things */
    struct frd_dump *d2 = NULL;
    struct frd_model m2;
    struct frd_findings f2;
    cr_assert_eq(frd_open_ex(path, 0, &d2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(frd_model_build_ex(d2, 0, &m2), 0);
    cr_assert_eq(frd_analyze(&m2, &th, &f2), 0);
    cr_assert_eq(f2.n, r->f.n, "lean path: %zu findings, full path: %zu", f2.n, r->f.n);
    for (size_t i = 0; i < f2.n; i++) {
        const struct frd_finding *a = &r->f.v[i], *b = &f2.v[i];
        cr_assert(a->kind == b->kind && a->cause == b->cause && a->task == b->task &&
                      a->at_ns == b->at_ns && a->duration_ns == b->duration_ns &&
                      a->culprit.task == b->culprit.task &&
                      a->culprit.busy_ns == b->culprit.busy_ns &&
                      a->culprit.polls == b->culprit.polls &&
                      a->workers_busy == b->workers_busy &&
                      a->workers_parked == b->workers_parked,
                  "lean and full paths disagree on finding %zu", i);
        cr_assert_str_eq(a->message, b->message);
    }
    frd_findings_free(&f2);
    frd_model_free(&m2);
    frd_close(d2);
}

void sc_result_free(struct sc_result *r)
{
    frd_findings_free(&r->f);
    frd_model_free(&r->m);
    frd_close(r->d);
}

size_t sc_count(const struct sc_result *r, int kind, uint64_t task)
{
    size_t n = 0;
    for (size_t i = 0; i < r->f.n; i++) {
        const struct frd_finding *x = &r->f.v[i];
        if (x->kind == kind && (!task || (x->task != FRD_NONE && r->m.tasks[x->task].id == task)))
            n++;
    }
    return n;
}

const struct frd_finding *sc_find(const struct sc_result *r, int kind, uint64_t task)
{
    for (size_t i = 0; i < r->f.n; i++) {
        const struct frd_finding *x = &r->f.v[i];
        if (x->kind == kind && x->task != FRD_NONE && r->m.tasks[x->task].id == task)
            return x;
    }
    return NULL;
}

const char *sc_describe(const struct sc_result *r)
{
    static char buf[4096];
    size_t w = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->f.n && w < sizeof(buf) - 1; i++) {
        const struct frd_finding *x = &r->f.v[i];
        int n = snprintf(buf + w, sizeof(buf) - w, "\n  %s(%llu): %s", frd_kind_name(x->kind),
                         x->task != FRD_NONE ? (unsigned long long)r->m.tasks[x->task].id : 0ull,
                         x->message);
        if (n < 0)
            break;
        w += (size_t)n;
    }
    return buf;
}

int sc_cli(const char *args, char **out, char **err)
{
    char o[600], e[600], cmd[4096];
    snprintf(o, sizeof(o), "%s/cli.out", th_tmpdir());
    snprintf(e, sizeof(e), "%s/cli.err", th_tmpdir());
    snprintf(cmd, sizeof(cmd), "'%s' %s >'%s' 2>'%s'", FLIGHTREC_CLI, args, o, e);
    int st = system(cmd);
    if (out)
        *out = th_read_file(o, NULL);
    if (err)
        *err = th_read_file(e, NULL);
    /* the shell reports a child killed by a signal as 128+N */
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) >= 128)
        return -1;
    return WEXITSTATUS(st);
}
