/*
 * decoder/analyze.c - turn the model into findings (see analyze.h and
 * DESIGN.md "Findings, defined").
 *
 * Every task instance is looked at twice: along its history (each poll: too
 * long? became runnable long before it ran?) and at the end of the recording
 * (what state was it left in, and can anything still make it progress?).
 * Conclusions that rest on something *not* happening (no wake, no later poll)
 * are drawn only for spans that every ring still covers, and only after the
 * relevant threshold has passed, so a dump taken mid-flight does not accuse a
 * task that was about to be polled.
 *
 * A late poll is judged on the worker that ran it (or, at the end of the
 * recording, the worker it was queued on: the waking worker, or its own for a
 * wake inside its poll): busy with other tasks for half the wait or more is
 * starvation behind the task that held that worker longest, even while other
 * workers were parked (a per-worker queue, a LIFO slot, no stealing). Else a
 * worker parked for half the wait or more means the wake reached no worker:
 * delayed_wakeup when a poll came at last, lost_wakeup when none came. Else
 * the workers were busy elsewhere: starvation behind the busiest task of any
 * worker.
 *
 * Culprits are found from the per-worker poll lists (in begin order): a
 * binary search finds the first poll of the wait, and only the polls inside
 * the wait are summed, per task, in scratch arrays indexed by task instance.
 * The analyses fill in struct frd_finding; frd_finding_format writes the
 * sentence from it.
 */
#include "analyze.h"
#include "stall.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *frd_kind_name(int kind)
{
    static const char *const names[] = {
        [FRD_DEADLOCK] = "deadlock",
        [FRD_LOST_WAKEUP] = "lost_wakeup",   [FRD_PROTOCOL] = "protocol",
        [FRD_HUNG] = "hung",                 [FRD_DELAYED_WAKEUP] = "delayed_wakeup",
        [FRD_STARVATION] = "starvation",     [FRD_NEVER_POLLED] = "never_polled",
        [FRD_LONG_POLL] = "long_poll",
    };
    if (kind < 0 || kind >= FRD_KIND_COUNT)
        return "unknown";
    return names[kind];
}

const char *frd_cause_name(int cause)
{
    static const char *const names[] = {
        [FRD_CAUSE_NONE] = "none",
        [FRD_CAUSE_WAKER_DROPPED] = "waker_dropped",
        [FRD_CAUSE_WAKE_LOST] = "notification_lost",
        [FRD_CAUSE_WAKE_IN_POLL] = "wake_during_poll",
        [FRD_CAUSE_WORKER_BUSY] = "worker_busy",
        [FRD_CAUSE_WORKERS_BUSY] = "workers_busy",
        [FRD_CAUSE_WORKERS_PARKED] = "workers_parked",
        [FRD_CAUSE_NO_WAKE] = "no_wake",
        [FRD_CAUSE_WORKER_STUCK] = "worker_stuck",
        [FRD_CAUSE_BLOCKING] = "blocking",
        [FRD_CAUSE_HOOK_ORDER] = "hook_order",
        [FRD_CAUSE_LOCK_CYCLE] = "lock_cycle",
        [FRD_CAUSE_LOCK_HELD] = "lock_held",
    };
    if (cause < 0 || cause >= FRD_CAUSE_COUNT)
        return "unknown";
    return names[cause];
}

const char *frd_how_name(int how)
{
    switch (how) {
    case FRD_HOW_SPAWNED: return "spawned";
    case FRD_HOW_WOKEN: return "woken";
    case FRD_HOW_SELF_WOKEN: return "self_woken";
    default: return NULL;
    }
}

const char *frd_fmt_dur(int64_t ns, char *buf, size_t len)
{
    double ms = (double)ns / 1e6;
    if (ns >= 1000000000 || ns <= -1000000000)
        snprintf(buf, len, "%.1f s", ms / 1e3);
    else if (ns >= 10000000 || ns <= -10000000)
        snprintf(buf, len, "%.1f ms", ms);
    else
        snprintf(buf, len, "%.3f ms", ms);
    return buf;
}

const char *frd_task_label(const struct frd_model *m, int32_t ti, char *buf, size_t len)
{
    const struct frd_task *t = &m->tasks[ti];
    size_t n = 0;
    const char *s = frd_string(m->dump, t->name, &n);
    if (s && n > FRD_TASK_NAME_SHOWN)
        snprintf(buf, len, "task %llu \"%.*s...\"", (unsigned long long)t->id,
                 FRD_TASK_NAME_SHOWN - 3, s);
    else if (s)
        snprintf(buf, len, "task %llu \"%.*s\"", (unsigned long long)t->id, (int)n, s);
    else
        snprintf(buf, len, "task %llu", (unsigned long long)t->id);
    return buf;
}

static const char *label_text(const struct frd_model *m, uint32_t id, char *buf, size_t len)
{
    size_t n = 0;
    const char *s = frd_string(m->dump, id, &n);
    if (s)
        snprintf(buf, len, "%.*s", (int)(n > 96 ? 96 : n), s);
    else
        snprintf(buf, len, "%s", id == FR_STRING_OVERFLOW ? "(string table full)" : "?");
    return buf;
}

/* "14,200" */
static const char *fmt_count(uint64_t v, char *buf, size_t len)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    size_t w = 0;
    for (int i = 0; i < n && w + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[w++] = ',';
        buf[w++] = tmp[i];
    }
    buf[w] = 0;
    return buf;
}

const char *frd_culprit_phrase(const struct frd_model *m, const struct frd_culprit *c,
                               int64_t wait_ns, char *buf, size_t len)
{
    buf[0] = 0;
    if (c->task == FRD_NONE || (size_t)c->task >= m->ntasks || c->thread >= m->dump->nthreads)
        return buf;
    char tl[FRD_TASK_LABEL_MAX], n[32], d1[32], d2[32], th[48];
    snprintf(buf, len, "behind %s: %s poll%s, %s of the %s on %s",
             frd_task_label(m, c->task, tl, sizeof(tl)), fmt_count(c->polls, n, sizeof(n)),
             c->polls == 1 ? "" : "s", frd_fmt_dur(c->busy_ns, d1, sizeof(d1)),
             frd_fmt_dur(wait_ns, d2, sizeof(d2)), frd_thread_label(m, c->thread, th, sizeof(th)));
    return buf;
}

/* ---- windows: what the workers did during a wait ------------------------- */

struct cx {
    const struct frd_model *m;
    const struct frd_thresholds *th;
    struct frd_findings *out;
    /* per task instance, allocated at the first culprit search */
    int64_t *acc;     /* busy ns inside the current window */
    uint32_t *cnt;    /* polls inside the current window */
    int32_t *touched; /* instances with cnt > 0, to reset */
    size_t ntouched;
    /* per worker, built at its first use (prepare): pre[w][j] = the summed
     * length of its polls before poll j; runs[w]: where each run of
     * consecutive polls of one task starts */
    int64_t **pre;
    size_t **runs;
    size_t *nruns;
    int nomem;
};

static int is_worker(const struct frd_model *m, uint32_t t)
{
    return m->workers[t].npolls || m->workers[t].nparked;
}

static const struct frd_poll *ref_poll(const struct frd_model *m, const struct frd_poll_ref *r)
{
    return &m->tasks[r->task].polls[r->poll];
}

/* The first poll of worker @w that begins at or after @ns. */
static size_t first_poll_from(const struct frd_model *m, uint32_t w, int64_t ns)
{
    const struct frd_worker *wk = &m->workers[w];
    size_t lo = 0, hi = wk->npolls;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_poll(m, &wk->polls[mid])->begin_ns < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Build worker @w's prefix sums of poll lengths (c->pre[w]) and its runs of
 * consecutive polls of one task (c->runs[w]: run k is polls runs[k] up to
 * runs[k + 1]), once. Return: 0, or -ENOMEM (c->nomem set).
 */
static int prepare(struct cx *c, uint32_t w)
{
    const struct frd_model *m = c->m;
    const struct frd_worker *wk = &m->workers[w];
    if (c->nomem)
        return -ENOMEM;
    if (!c->pre) {
        c->pre = calloc(m->dump->nthreads, sizeof(*c->pre));
        c->runs = calloc(m->dump->nthreads, sizeof(*c->runs));
        c->nruns = calloc(m->dump->nthreads, sizeof(*c->nruns));
        if (!c->pre || !c->runs || !c->nruns)
            goto nomem;
    }
    if (c->pre[w])
        return 0;
    int64_t *pre = malloc((wk->npolls + 1) * sizeof(*pre));
    size_t *runs = malloc((wk->npolls + 1) * sizeof(*runs));
    if (!pre || !runs) {
        free(pre);
        free(runs);
        goto nomem;
    }
    size_t n = 0;
    pre[0] = 0;
    for (size_t j = 0; j < wk->npolls; j++) {
        const struct frd_poll *q = ref_poll(m, &wk->polls[j]);
        pre[j + 1] = pre[j] + (q->end_ns - q->begin_ns);
        if (j == 0 || wk->polls[j].task != wk->polls[j - 1].task)
            runs[n++] = j;
    }
    runs[n] = wk->npolls;
    c->pre[w] = pre;
    c->runs[w] = runs;
    c->nruns[w] = n;
    return 0;
nomem:
    c->nomem = 1;
    return -ENOMEM;
}

/* Credit task @ti with @o ns of busy time over @n polls (see worker_busy). */
static void credit(struct cx *c, int32_t ti, int64_t o, uint32_t n, int64_t *busy, int sum)
{
    *busy += o;
    if (!sum)
        return;
    if (!c->cnt[ti])
        c->touched[c->ntouched++] = ti;
    c->cnt[ti] += n;
    c->acc[ti] += o;
}

/*
 * Time worker @w spent in polls of tasks other than @victim during [a, b].
 * With @best, also sum it per task and keep the task that held the worker
 * longest in *@best if it beats what is there.
 *
 * A binary search finds the polls that begin inside the span; the few
 * before it (which may still run at a) and the few at its end (which may run
 * past b) are clipped one by one, and those in between, which lie wholly
 * inside the span, are summed a run of one task's polls at a time from the
 * prefix sums: a task polled 50,000 times in a row costs one step.
 */
static int64_t worker_busy(struct cx *c, uint32_t w, int32_t victim, int64_t a, int64_t b,
                           struct frd_culprit *best)
{
    const struct frd_model *m = c->m;
    const struct frd_worker *wk = &m->workers[w];
    if (best && !c->acc && !c->nomem) {
        size_t n = m->ntasks ? m->ntasks : 1;
        c->acc = calloc(n, sizeof(*c->acc));
        c->cnt = calloc(n, sizeof(*c->cnt));
        c->touched = malloc(n * sizeof(*c->touched));
        if (!c->acc || !c->cnt || !c->touched)
            c->nomem = 1;
    }
    if (!wk->npolls || prepare(c, w))
        return 0;
    int sum = best != NULL;
    size_t lo = first_poll_from(m, w, a), hi = first_poll_from(m, w, b);
    size_t mid = hi > lo + 4 ? hi - 4 : lo;
    int64_t busy = 0;
    c->ntouched = 0;
    /* begun before a: the one before, or polls it was nested in */
    for (size_t j = lo > 4 ? lo - 4 : 0; j < lo; j++) {
        const struct frd_poll *p = ref_poll(m, &wk->polls[j]);
        int64_t e = p->end_ns < b ? p->end_ns : b;
        if (wk->polls[j].task != victim && e > a)
            credit(c, wk->polls[j].task, e - a, 1, &busy, sum);
    }
    /* wholly inside: by runs when summing per task, else in one step */
    if (lo < mid && !sum) {
        busy += c->pre[w][mid] - c->pre[w][lo];
    } else if (lo < mid) {
        const size_t *runs = c->runs[w];
        size_t k0 = 0, k1 = c->nruns[w];
        while (k0 + 1 < k1) { /* the run holding poll lo */
            size_t km = k0 + (k1 - k0) / 2;
            if (runs[km] <= lo)
                k0 = km;
            else
                k1 = km;
        }
        for (size_t j = lo, k = k0; j < mid; k++) {
            size_t e = runs[k + 1] < mid ? runs[k + 1] : mid;
            int32_t ti = wk->polls[j].task;
            if (ti != victim)
                credit(c, ti, c->pre[w][e] - c->pre[w][j], (uint32_t)(e - j), &busy, sum);
            j = e;
        }
    }
    /* begun inside, may run past b */
    for (size_t j = mid; j < hi; j++) {
        const struct frd_poll *p = ref_poll(m, &wk->polls[j]);
        int64_t e = p->end_ns < b ? p->end_ns : b;
        if (wk->polls[j].task != victim)
            credit(c, wk->polls[j].task, e > p->begin_ns ? e - p->begin_ns : 0, 1, &busy, sum);
    }
    if (sum) {
        for (size_t k = 0; k < c->ntouched; k++) {
            int32_t ti = c->touched[k];
            int64_t v = c->acc[ti] < b - a ? c->acc[ti] : b - a;
            if (v > best->busy_ns || (best->task == FRD_NONE && v == best->busy_ns)) {
                best->task = ti;
                best->thread = w;
                best->busy_ns = v;
                best->polls = c->cnt[ti];
            }
            c->acc[ti] = 0;
            c->cnt[ti] = 0;
        }
        c->ntouched = 0;
    }
    return busy > b - a ? b - a : busy; /* nested polls count once at most */
}

/*
 * Fill @x's worker facts for the wait [a, b] of @victim: how many workers
 * there were, how many were busy or parked for half of it or more, and the
 * one parked longest (other than @skip, -1 none). With @culprit, the task
 * that held any worker longest goes there.
 */
static void window(struct cx *c, struct frd_finding *x, int32_t victim, int64_t a, int64_t b,
                   int64_t skip, struct frd_culprit *culprit)
{
    const struct frd_model *m = c->m;
    int64_t span = b - a;
    x->idle_thread = -1;
    x->idle_ns = 0;
    for (uint32_t w = 0; w < m->dump->nthreads; w++) {
        if (!is_worker(m, w))
            continue;
        x->workers++;
        int64_t busy = worker_busy(c, w, victim, a, b, culprit);
        int64_t parked = frd_model_worker_parked_ns(m, w, a, b);
        if (busy * 2 >= span && busy > 0)
            x->workers_busy++;
        if (parked * 2 >= span && parked > 0)
            x->workers_parked++;
        if ((int64_t)w != skip && parked > x->idle_ns) {
            x->idle_ns = parked;
            x->idle_thread = w;
        }
    }
}

/*
 * How much of [a, b] the host may have kept thread @tid from running: the
 * RUN_DELAY entries of that thread (each a delay whose waits lie within
 * [from - delay, to]), each counted up to the part of its span inside
 * [a, b]. At most b - a.
 *
 * "May": an entry says how long the thread waited between two readings, not
 * when, so all of it that fits is counted. A thread that waited for a CPU
 * was runnable, hence woken: the notification a lost wakeup lacks had come.
 */
static int64_t host_delay(const struct frd_dump *d, uint32_t tid, int64_t a, int64_t b)
{
    int64_t sum = 0;
    for (size_t i = 0; i < d->nrun_delays && sum < b - a; i++) {
        const struct frd_run_delay *e = &d->run_delays[i];
        if (e->tid != tid)
            continue;
        int64_t delay = (int64_t)e->delay_ns;
        int64_t from = e->from_ns - delay;
        int64_t lo = from > a ? from : a, hi = e->to_ns < b ? e->to_ns : b;
        if (hi > lo)
            sum += delay < hi - lo ? delay : hi - lo;
    }
    return sum < b - a ? sum : b - a;
}

/* Does finding @x rest on a duration (a clock that cannot be calibrated
 * gives it no verdict)? */
static int rests_on_a_duration(const struct frd_finding *x)
{
    return x->kind == FRD_HUNG || x->kind == FRD_DELAYED_WAKEUP || x->kind == FRD_STARVATION ||
           x->kind == FRD_NEVER_POLLED || x->kind == FRD_LONG_POLL;
}

/*
 * Is @x a finding on a wait that the host, not the program, made: with the
 * time the thread that ran the task (or held the poll) spent waiting for a
 * CPU taken away, the wait is within its threshold? A dump that lost its run
 * delays (frd_run_delay_lost) knows none of that time: every such wait is
 * unknown, as one before the run delays the dump kept is. A wait with no thread
 * that ended it (a task still waiting at the end) keeps its finding: the
 * rule needs the thread the wait was on; hung is not a wait for a CPU. A
 * wait that began before the run delays the dump kept (the recorder's ring
 * of entries had overwritten older ones) is the host's too: no entry there
 * means unknown, not none.
 */
static int host_made(const struct frd_finding *x, const struct frd_model *m,
                     const struct frd_thresholds *th)
{
    const struct frd_dump *d = m->dump;
    int64_t limit = x->kind == FRD_LONG_POLL ? th->long_poll_ns : th->starvation_ns;
    int64_t on = x->kind == FRD_LONG_POLL ? (int64_t)x->thread : x->ran_thread;
    int lost = frd_run_delay_lost(d);
    return (d->have_run_delay || lost) && x->kind != FRD_HUNG && rests_on_a_duration(x) &&
           on >= 0 && (size_t)on < d->nthreads &&
           (lost || x->at_ns < d->run_delay_from_ns ||
            x->duration_ns - host_delay(d, d->threads[on].tid, x->at_ns,
                                        x->at_ns + x->duration_ns) <= limit);
}

static struct frd_finding *add(struct cx *c, int kind, int cause, int32_t task, uint32_t thread,
                               int64_t at, int64_t dur)
{
    struct frd_finding *x = frd__finding_new(c->out, kind, cause, task, thread, at, dur);
    if (!x)
        c->nomem = 1;
    return x;
}

struct frd_finding *frd__finding_new(struct frd_findings *f, int kind, int cause, int32_t task,
                                     uint32_t thread, int64_t at, int64_t dur)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        struct frd_finding *v = realloc(f->v, nc * sizeof(*v));
        if (!v)
            return NULL;
        f->v = v;
        f->cap = nc;
    }
    struct frd_finding *x = &f->v[f->n++];
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->cause = cause;
    x->task = task;
    x->thread = thread;
    x->at_ns = at;
    x->duration_ns = dur;
    x->poll = FRD_NONE;
    x->wake = FRD_NONE;
    x->ran_thread = -1;
    x->idle_thread = -1;
    x->culprit.task = FRD_NONE;
    x->lock_holder = FRD_NONE;
    return x;
}

static const struct frd_culprit no_culprit = {FRD_NONE, 0, 0, 0};

/*
 * A task runnable since @R that waited until @B: polled at last (poll index
 * @pi on @ran) or, with @pi == FRD_NONE, not polled up to the end of the
 * recording. @queued is the worker it waited on (-1 unknown). Adds the
 * starvation, delayed_wakeup, lost_wakeup or never_polled finding it is.
 */
/*
 * Was the worker that finally polled task @ti (poll @pi) woken by something
 * else first: did it poll, between @R and that poll, another task that
 * became runnable late in the wait (a timer, an unrelated event)? That is what a lost
 * notification rescued later looks like; a worker that wakes and polls the
 * victim first was merely slow to be scheduled.
 */
static int rescued_by_other(const struct frd_model *m, int32_t ti, int32_t pi, int64_t R)
{
    const struct frd_poll *vp = &m->tasks[ti].polls[pi];
    const struct frd_worker *w = &m->workers[vp->thread];
    size_t lo = 0, hi = w->npolls;
    while (lo < hi) { /* first poll that begins at or after R */
        size_t mid = lo + (hi - lo) / 2;
        const struct frd_poll_ref *r = &w->polls[mid];
        if (m->tasks[r->task].polls[r->poll].begin_ns < R)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t j = lo; j < w->npolls; j++) {
        const struct frd_poll_ref *r = &w->polls[j];
        const struct frd_poll *p = &m->tasks[r->task].polls[r->poll];
        if (p->begin_ns >= vp->begin_ns)
            break;
        /* woken in the second half of the wait, near when the worker woke:
         * a task woken in the same burst as the victim rescued nothing */
        if (r->task == ti || p->ready_from == FRD_READY_UNKNOWN)
            continue;
        if (frd_poll_ready_ns(&m->tasks[r->task], p) > R + (vp->begin_ns - R) / 2)
            return 1;
    }
    return 0;
}

/* The worker task @t was made runnable on (the one it was queued on) before
 * poll @pi (FRD_NONE: runnable at the end): its spawn's, its waker's, or that
 * of its poll during which it was woken; -1 when the recording does not say. */
static int64_t runnable_on(const struct frd_task *t, int how, int32_t wake, int32_t pi)
{
    if (how == FRD_HOW_WOKEN && wake != FRD_NONE)
        return t->wakes[wake].thread;
    if (how == FRD_HOW_SPAWNED && t->spawn_seen)
        return t->spawn_thread;
    if (how == FRD_HOW_SELF_WOKEN) {
        int32_t before = pi != FRD_NONE ? pi - 1 : (int32_t)t->npolls - 1;
        return before >= 0 ? (int64_t)t->polls[before].thread : -1;
    }
    return -1;
}

static void late(struct cx *c, int32_t ti, int how, int32_t wake, int32_t pi, int64_t R, int64_t B,
                 int64_t queued)
{
    const struct frd_model *m = c->m;
    const struct frd_task *t = &m->tasks[ti];
    int64_t wait = B - R;
    struct frd_culprit mine = no_culprit, any = no_culprit;
    int64_t busy_q = queued >= 0 ? worker_busy(c, (uint32_t)queued, ti, R, B, &mine) : 0;
    struct frd_finding probe = {0};
    window(c, &probe, ti, R, B, queued, NULL);
    int64_t parked_q = queued >= 0 ? frd_model_worker_parked_ns(m, (uint32_t)queued, R, B) : 0;
    int kind, cause;
    if (queued >= 0 && busy_q * 2 >= wait && mine.task != FRD_NONE) {
        cause = FRD_CAUSE_WORKER_BUSY;
        kind = how == FRD_HOW_SPAWNED && pi == FRD_NONE ? FRD_NEVER_POLLED : FRD_STARVATION;
    } else if ((parked_q > probe.idle_ns ? parked_q : probe.idle_ns) * 2 >= wait) {
        cause = FRD_CAUSE_WORKERS_PARKED;
        kind = pi != FRD_NONE            ? FRD_DELAYED_WAKEUP
               : how == FRD_HOW_SPAWNED ? FRD_NEVER_POLLED
                                        : FRD_LOST_WAKEUP;
        if (parked_q > probe.idle_ns) {
            probe.idle_ns = parked_q;
            probe.idle_thread = queued;
        }
    } else {
        window(c, &(struct frd_finding){0}, ti, R, B, -1, &any);
        cause = how == FRD_HOW_SPAWNED && pi == FRD_NONE && !probe.workers_busy
                    ? FRD_CAUSE_NONE
                    : FRD_CAUSE_WORKERS_BUSY;
        kind = how == FRD_HOW_SPAWNED && pi == FRD_NONE ? FRD_NEVER_POLLED : FRD_STARVATION;
        /* "workers busy" with no worker polling for half the wait, nor
         * parked: the recording does not say what held them (the host, or
         * the runtime outside any poll), and a culprit busy for a sliver
         * of the wait would be named as its cause. No verdict. */
        if (kind == FRD_STARVATION && !probe.workers_busy)
            return;
        /* Nor when the culprit held neither the worker the task was queued
         * on nor the one that ran it: a long poll on a third worker never
         * stood in its way (a libuv loop's tasks run on their loop's thread
         * alone; one loop busy says nothing of another still starting up). */
        int64_t on = runnable_on(t, how, wake, pi);
        if (kind == FRD_STARVATION && any.task != FRD_NONE && on >= 0 &&
            (int64_t)any.thread != on && (int64_t)any.thread != queued)
            return;
    }
    /* A parked worker that wakes late and polls the victim first was slow to
     * be scheduled (a loaded machine), or was notified late: only a wait far
     * past the threshold (FRD_DELAYED_NOISE_FACTOR times), or another task
     * polled first by the worker that ran it, makes it a verdict. */
    if (kind == FRD_DELAYED_WAKEUP) {
        /* the worker that finally ran it must itself have slept through the
         * wake: one that was neither parked nor polling (preempted on a
         * loaded machine) is evidence of nothing */
        int64_t parked_ran = frd_model_worker_parked_ns(m, t->polls[pi].thread, R, B);
        if (parked_ran * 2 < wait)
            return;
        if (wait <= c->th->starvation_ns * FRD_DELAYED_NOISE_FACTOR &&
            !rescued_by_other(m, ti, pi, R))
            return;
    }
    if (kind == FRD_LOST_WAKEUP)
        cause = how == FRD_HOW_SELF_WOKEN ? FRD_CAUSE_WAKE_IN_POLL : FRD_CAUSE_WAKE_LOST;
    uint32_t thread = pi != FRD_NONE             ? t->polls[pi].thread
                      : wake != FRD_NONE         ? t->wakes[wake].thread
                      : how == FRD_HOW_SELF_WOKEN ? t->polls[t->npolls - 1].thread
                                                 : t->spawn_thread;
    int64_t at = R;
    if (cause == FRD_CAUSE_WAKE_IN_POLL)
        at = t->polls[t->npolls - 1].end_ns;
    struct frd_finding *x = add(c, kind, cause, ti, thread, at, B - at);
    if (!x)
        return;
    x->how = how;
    x->wake = wake;
    x->poll = pi != FRD_NONE ? pi : (t->npolls ? (int32_t)t->npolls - 1 : FRD_NONE);
    x->ran_thread = pi != FRD_NONE ? (int64_t)t->polls[pi].thread : -1;
    x->await_str = t->await_str;
    x->workers = probe.workers;
    x->workers_busy = probe.workers_busy;
    x->workers_parked = probe.workers_parked;
    x->idle_thread = probe.idle_thread;
    x->idle_ns = probe.idle_ns;
    if (cause == FRD_CAUSE_WORKER_BUSY)
        x->culprit = mine;
    else if (cause == FRD_CAUSE_WORKERS_BUSY)
        x->culprit = any;
}

/* A poll still running at the end: its thread's ring holds everything from
 * its begin to the thread's covered end (where p->end_ns stops). Dumps
 * without copy times ask it of every ring, up to the end of the recording. */
static int running_covered(const struct frd_model *m, const struct frd_poll *p)
{
    if (!m->copy_times)
        return frd_model_covered(m, p->begin_ns, m->end_ns);
    return frd_model_thread_covered(m, p->thread, p->begin_ns, p->end_ns);
}

/* "; at 100 ms it was in nanosleep <- ..." when the dump's STALL section
 * (the stall watchdog) caught poll @p stuck, else "". */
static const char *stuck_at(const struct frd_model *m, const struct frd_task *t,
                            const struct frd_poll *p, char *buf, size_t len)
{
    const struct frd_dump *d = m->dump;
    uint32_t tid = p->thread < d->nthreads ? d->threads[p->thread].tid : 0;
    if (len < 3 || !frd_stall_quote(d, t->id, tid, p->begin_ns, p->end_ns, buf + 2, len - 2))
        return "";
    buf[0] = ';';
    buf[1] = ' ';
    return buf;
}

/*
 * Is thread @w a pool that exists to run blocking work: libuv's thread pool,
 * named "uv-pool" by the libuv adapter (a uv_queue_work callback is a poll
 * there)? A long poll on it that ended is what the pool is for, not blocking
 * in async code: no long_poll. One still running at the dump after the hang
 * threshold is stuck there (on a lock, a device): that is a long_poll. Work
 * queued behind a long one that waits still gives its starvation, with the
 * long work item as the culprit.
 */
static int blocking_pool(const struct frd_model *m, uint32_t w)
{
    return w < m->dump->nthreads && strcmp(m->dump->threads[w].name, FR_BLOCKING_POOL_THREAD) == 0;
}

/* Is poll @p, @dur ns long, a long_poll? A pool made to block gives one only
 * for a poll stuck there (blocking_pool); the thread's name is looked at only
 * for a poll past a threshold, not for every poll. */
static int is_long_poll(const struct frd_model *m, const struct frd_thresholds *th,
                        const struct frd_poll *p, int64_t dur)
{
    if (dur <= th->long_poll_ns && dur <= th->hang_ns)
        return 0;
    if (blocking_pool(m, p->thread))
        return dur > th->hang_ns && p->result == FRD_POLL_RUNNING && running_covered(m, p);
    return dur > th->long_poll_ns && (p->result != FRD_POLL_RUNNING || running_covered(m, p));
}

/* Findings along the task's history: long polls and late polls. */
static void history(struct cx *c, int32_t ti)
{
    const struct frd_model *m = c->m;
    const struct frd_thresholds *th = c->th;
    const struct frd_task *t = &m->tasks[ti];
    for (size_t i = 0; i < t->npolls && !c->nomem; i++) {
        const struct frd_poll *p = &t->polls[i];
        int64_t dur = p->end_ns - p->begin_ns;
        if (is_long_poll(m, th, p, dur)) {
            struct frd_finding *x =
                add(c, FRD_LONG_POLL, FRD_CAUSE_BLOCKING, ti, p->thread, p->begin_ns, dur);
            if (!x)
                return;
            x->poll = (int32_t)i;
            x->ran_thread = p->thread;
            x->await_str = p->await_str;
        }
        if (p->ready_from == FRD_READY_UNKNOWN)
            continue;
        int64_t ready = frd_poll_ready_ns(t, p);
        int64_t delay = p->begin_ns - ready;
        if (delay <= th->starvation_ns || !frd_model_covered(m, ready, p->begin_ns))
            continue;
        int32_t wake = frd_poll_ready_wake(p);
        int how = wake != FRD_NONE              ? FRD_HOW_WOKEN
                  : i == 0 && t->spawn_seen ? FRD_HOW_SPAWNED
                                            : FRD_HOW_SELF_WOKEN;
        late(c, ti, how, wake, (int32_t)i, ready, p->begin_ns, p->thread);
    }
}

/* The worker a runnable task waits on at the end: the waking worker, its own
 * for a wake inside its poll, the spawning worker; -1 if not a worker. */
static int64_t queued_on(const struct frd_model *m, const struct frd_task *t, int how)
{
    uint32_t w = how == FRD_HOW_WOKEN        ? t->wakes[frd_task_ready_wake(t)].thread
                 : how == FRD_HOW_SELF_WOKEN ? t->polls[t->npolls - 1].thread
                                             : t->spawn_thread;
    return is_worker(m, w) ? (int64_t)w : -1;
}

/* Findings about the state the task was left in at the end. */
static void at_end(struct cx *c, int32_t ti)
{
    const struct frd_model *m = c->m;
    const struct frd_thresholds *th = c->th;
    const struct frd_task *t = &m->tasks[ti];
    /* what every ring covers: an absence after it proves nothing */
    const int64_t E = m->covered_end_ns;

    switch (t->state) {
    case FRD_TASK_SPAWNED: {
        /* runnable since its spawn, or since a wake that ended a wait it
         * started outside any poll (a handle started, then ready): the
         * latter is judged as any woken task */
        int how = frd_task_ready_wake(t) != FRD_NONE ? FRD_HOW_WOKEN : FRD_HOW_SPAWNED;
        int64_t R = how == FRD_HOW_WOKEN ? frd_task_ready_ns(t) : frd_task_spawn_ns(t);
        if ((!t->spawn_seen && how == FRD_HOW_SPAWNED) || R == INT64_MIN ||
            E - R <= th->starvation_ns || !frd_model_covered(m, R, E))
            break;
        late(c, ti, how, frd_task_ready_wake(t), FRD_NONE, R, E, queued_on(m, t, how));
        break;
    }
    case FRD_TASK_RUNNABLE: {
        int64_t R = frd_task_ready_ns(t);
        if (E - R <= th->starvation_ns || !frd_model_covered(m, R, E))
            break;
        int how = frd_task_ready_wake(t) != FRD_NONE ? FRD_HOW_WOKEN : FRD_HOW_SELF_WOKEN;
        late(c, ti, how, frd_task_ready_wake(t), FRD_NONE, R, E, queued_on(m, t, how));
        break;
    }
    case FRD_TASK_IDLE: {
        /* waiting on the outside world, or stopped: not a bug however long */
        if (t->wait == FRD_WAIT_EXTERNAL || t->wait == FRD_WAIT_STOPPED)
            break;
        /* no await seen, and a part of its life the rings no longer cover:
         * what it waits on may have been said there (a loop's handle whose
         * start call, uv_udp_recv_start, fell out of the ring long ago) */
        if (t->wait == FRD_WAIT_UNKNOWN && !(t->spawn_seen && frd_model_covered(m, frd_task_spawn_ns(t), E)))
            break;
        if (t->npolls == 0) {
            /* started outside any poll and never called back */
            int64_t P = frd_task_unpolled_await_ns(m, t);
            if (P != INT64_MIN && E - P > th->hang_ns && frd_model_covered(m, P, E)) {
                struct frd_finding *x =
                    add(c, FRD_HUNG, FRD_CAUSE_NO_WAKE, ti, t->spawn_thread, P, E - P);
                if (x)
                    x->await_str = t->await_str;
            }
            break;
        }
        const struct frd_poll *last = &t->polls[t->npolls - 1];
        int64_t P = last->end_ns;
        if (!frd_model_covered(m, P, E))
            break;
        /* (a): the waker count is exact only if the whole life is covered */
        if (t->spawn_seen && frd_model_covered(m, frd_task_spawn_ns(t), E) && t->waker_drops > 0 &&
            t->waker_refs == 0 && t->waker_zero_ns >= last->begin_ns) {
            int64_t since = t->waker_zero_ns > P ? t->waker_zero_ns : P;
            if (E - since > th->starvation_ns) {
                struct frd_finding *x = add(c, FRD_LOST_WAKEUP, FRD_CAUSE_WAKER_DROPPED, ti,
                                            last->thread, since, E - since);
                if (x) {
                    x->poll = (int32_t)t->npolls - 1;
                    x->await_str = last->await_str;
                }
                break;
            }
        }
        if (E - P <= th->hang_ns)
            break;
        /* its only worker (every poll of it ran there) held by another task
         * the whole time: nothing on that worker could have woken it */
        int one = 1;
        for (size_t i = 0; i + 1 < t->npolls && one; i++)
            one = t->polls[i].thread == last->thread;
        struct frd_culprit stuck = no_culprit;
        if (one)
            worker_busy(c, last->thread, ti, P, E, &stuck);
        int by = one && stuck.task != FRD_NONE && stuck.busy_ns * 10 >= (E - P) * 9;
        struct frd_finding *x = add(c, FRD_HUNG, by ? FRD_CAUSE_WORKER_STUCK : FRD_CAUSE_NO_WAKE,
                                    ti, last->thread, P, E - P);
        if (!x)
            break;
        x->poll = (int32_t)t->npolls - 1;
        x->await_str = last->await_str ? last->await_str : t->await_str;
        if (by)
            x->culprit = stuck;
        break;
    }
    default:
        break;
    }
}

/* ---- sentences ---------------------------------------------------------- */

struct sb {
    char *p;
    size_t len, w;
};

static void put(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct sb *s, const char *fmt, ...)
{
    if (s->w + 1 >= s->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(s->p + s->w, s->len - s->w, fmt, ap);
    va_end(ap);
    if (r > 0)
        s->w = (size_t)r >= s->len - s->w ? s->len - 1 : s->w + (size_t)r;
}

/* "woken by worker-1 (task 9 "db_pool")", "spawned", ... */
static void put_how(struct sb *s, const struct frd_model *m, const struct frd_finding *x)
{
    const struct frd_task *t = &m->tasks[x->task];
    char th[48], tl[FRD_TASK_LABEL_MAX];
    switch (x->how) {
    case FRD_HOW_WOKEN: {
        if (x->wake == FRD_NONE || (size_t)x->wake >= t->nwakes) {
            put(s, "woken");
            break;
        }
        const struct frd_wake *w = &t->wakes[x->wake];
        put(s, "woken by %s", frd_thread_label(m, w->thread, th, sizeof(th)));
        if (w->by_inst != FRD_NONE)
            put(s, " (%s)", frd_task_label(m, w->by_inst, tl, sizeof(tl)));
        break;
    }
    case FRD_HOW_SPAWNED:
        put(s, "spawned on %s", frd_thread_label(m, t->spawn_thread, th, sizeof(th)));
        if (x->kind == FRD_NEVER_POLLED && t->parent_inst != FRD_NONE)
            put(s, " by %s", frd_task_label(m, t->parent_inst, tl, sizeof(tl)));
        break;
    case FRD_HOW_SELF_WOKEN:
        if (x->ran_thread >= 0)
            put(s, "woken during its own poll #%d", x->poll);
        else
            put(s, "woken during its last poll");
        break;
    default:
        put(s, "runnable");
    }
}

static void put_culprit(struct sb *s, const struct frd_model *m, const struct frd_finding *x,
                        unsigned flags, const char *sep)
{
    char why[256];
    if (flags & FRD_FMT_NO_CULPRIT)
        return;
    frd_culprit_phrase(m, &x->culprit, x->duration_ns, why, sizeof(why));
    if (why[0])
        put(s, "%s%s", sep, why);
}

/* "; worker-2 sat parked for 300.0 ms of it" */
static void put_idle(struct sb *s, const struct frd_model *m, const struct frd_finding *x)
{
    char th[48], d[32];
    if (x->idle_thread < 0 || (uint64_t)x->idle_thread >= m->dump->nthreads) {
        put(s, "the workers sat parked");
        return;
    }
    put(s, "%s sat parked for %s of it",
        frd_thread_label(m, (uint32_t)x->idle_thread, th, sizeof(th)),
        frd_fmt_dur(x->idle_ns, d, sizeof(d)));
}

static void put_workers(struct sb *s, const struct frd_finding *x)
{
    put(s, "%u of %u worker%s busy, %u parked", x->workers_busy, x->workers,
        x->workers == 1 ? "" : "s", x->workers_parked);
}

const char *frd_finding_format(const struct frd_model *m, const struct frd_finding *x,
                               unsigned flags, char *buf, size_t len)
{
    struct sb s = {buf, len, 0};
    char tl[FRD_TASK_LABEL_MAX], th[48], d1[32], d2[32], lab[128];
    buf[0] = 0;
    if (!len)
        return buf;
    if (x->task == FRD_NONE || (size_t)x->task >= m->ntasks) {
        put(&s, "%s", x->what);
        return buf;
    }
    const struct frd_task *t = &m->tasks[x->task];
    const struct frd_poll *p =
        x->poll != FRD_NONE && (size_t)x->poll < t->npolls ? &t->polls[x->poll] : NULL;
    frd_task_label(m, x->task, tl, sizeof(tl));
    frd_fmt_dur(x->duration_ns, d1, sizeof(d1));
    int late_idle = x->idle_thread >= 0 && x->idle_ns * 2 >= x->duration_ns;
    switch (x->kind) {
    case FRD_LONG_POLL:
        put(&s, "poll #%d of %s held %s for %s (%s)", x->poll + 1, tl,
            frd_thread_label(m, x->thread, th, sizeof(th)), d1,
            !p || p->result == FRD_POLL_RUNNING ? "still running at the dump"
            : p->result == FRD_POLL_READY      ? "returned ready"
                                               : "returned pending");
        if (p) {
            char stuck[320];
            put(&s, "%s", stuck_at(m, t, p, stuck, sizeof(stuck)));
        }
        break;
    case FRD_STARVATION:
    case FRD_DELAYED_WAKEUP:
        put(&s, "%s was ", tl);
        put_how(&s, m, x);
        put(&s, " but not polled for %s%s", d1, x->ran_thread < 0 ? " up to the dump" : "");
        if (x->kind == FRD_DELAYED_WAKEUP) {
            put(&s, " while ");
            put_idle(&s, m, x);
            put(&s, ": the wake reached no worker until something else woke one");
        } else {
            put(&s, " while %s", x->cause == FRD_CAUSE_WORKER_BUSY
                                     ? (x->ran_thread >= 0 ? "its worker was busy"
                                                           : "the worker it waits on was busy")
                                     : "the workers were busy");
            put_culprit(&s, m, x, flags, ", ");
            if (x->cause == FRD_CAUSE_WORKER_BUSY && late_idle) {
                put(&s, "; ");
                put_idle(&s, m, x);
                put(&s, ": the work was not stolen");
            }
        }
        if (x->ran_thread >= 0) {
            put(&s, " (poll #%d came at last on %s)", x->poll + 1,
                frd_thread_label(m, (uint32_t)x->ran_thread, th, sizeof(th)));
        } else {
            put(&s, " (");
            put_workers(&s, x);
            put(&s, ")");
        }
        break;
    case FRD_NEVER_POLLED:
        put(&s, "%s was ", tl);
        put_how(&s, m, x);
        put(&s, " and never polled in %s", d1);
        if (x->cause == FRD_CAUSE_WORKER_BUSY || x->cause == FRD_CAUSE_WORKERS_BUSY) {
            put(&s, "; %s busy", x->cause == FRD_CAUSE_WORKER_BUSY ? "its worker was"
                                                                  : "the workers were");
            put_culprit(&s, m, x, flags, ", ");
        } else if (x->cause == FRD_CAUSE_WORKERS_PARKED) {
            put(&s, "; ");
            put_idle(&s, m, x);
            put(&s, ": no notification reached a worker");
        } else {
            put(&s, "; no worker was busy or parked for most of it");
        }
        put(&s, " (");
        put_workers(&s, x);
        put(&s, ")");
        break;
    case FRD_LOST_WAKEUP:
        if (x->cause == FRD_CAUSE_WAKER_DROPPED) {
            put(&s, "waker dropped: %s went idle after poll #%d on %s (pending", tl, x->poll + 1,
                frd_thread_label(m, x->thread, th, sizeof(th)));
            if (x->await_str)
                put(&s, ", awaiting \"%s\"", label_text(m, x->await_str, lab, sizeof(lab)));
            put(&s, ") and its last waker reference was dropped with no wake since; nothing "
                    "can wake it (idle %s)", d1);
        } else if (x->cause == FRD_CAUSE_WAKE_IN_POLL) {
            put(&s, "wake during poll lost: %s was woken during its own poll #%d on %s, the "
                    "poll returned pending, and no later poll came in %s although workers "
                    "were parked (check-then-park race",
                tl, x->poll + 1, frd_thread_label(m, x->thread, th, sizeof(th)), d1);
            if (x->idle_thread >= 0)
                put(&s, "; %s",
                    frd_thread_label(m, (uint32_t)x->idle_thread, th, sizeof(th)));
            if (x->idle_thread >= 0)
                put(&s, " parked %s", frd_fmt_dur(x->idle_ns, d2, sizeof(d2)));
            put(&s, ")");
        } else {
            put(&s, "notification lost: %s was ", tl);
            put_how(&s, m, x);
            if (p)
                put(&s, " while idle after poll #%d but never polled again", x->poll + 1);
            else
                put(&s, " while waiting (started outside any poll%s%s%s) but never polled",
                    x->await_str ? ", at \"" : "",
                    x->await_str ? label_text(m, x->await_str, lab, sizeof(lab)) : "",
                    x->await_str ? "\"" : "");
            put(&s, " in %s although workers were parked (%s parked)", d1,
                frd_fmt_dur(x->idle_ns, d2, sizeof(d2)));
        }
        break;
    case FRD_HUNG:
        if (!p) {
            put(&s, "%s is blocked at %s for %s: never polled, with no wake since", tl,
                label_text(m, x->await_str, lab, sizeof(lab)), d1);
            break;
        }
        if (x->await_str)
            put(&s, "%s is blocked at %s for %s", tl,
                label_text(m, x->await_str, lab, sizeof(lab)), d1);
        else
            put(&s, "%s is blocked (no fr_await label) for %s", tl, d1);
        put(&s, ": pending since poll #%d on %s with no wake since", x->poll + 1,
            frd_thread_label(m, x->thread, th, sizeof(th)));
        if (x->cause == FRD_CAUSE_WORKER_STUCK) {
            put(&s, "; its only worker was held the whole time");
            put_culprit(&s, m, x, 0, ", ");
            put(&s, ", so nothing there could wake it");
        }
        if (x->lock) {
            char lk[256];
            put(&s, "%s", frd__lock_phrase(m, x, lk, sizeof(lk)));
        }
        break;
    case FRD_DEADLOCK: {
        char cyc[320];
        put(&s, "%s: deadlocked for %s", frd__lock_phrase(m, x, cyc, sizeof(cyc)), d1);
        break;
    }
    case FRD_PROTOCOL:
        put(&s, "%s: %s on %s", tl, x->what, frd_thread_label(m, x->thread, th, sizeof(th)));
        break;
    default:
        put(&s, "%s", tl);
    }
    return buf;
}

/* ---- all of it ---------------------------------------------------------- */

static int cmp_finding(const void *a, const void *b)
{
    const struct frd_finding *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->at_ns != y->at_ns)
        return x->at_ns < y->at_ns ? -1 : 1;
    return x->task < y->task ? -1 : x->task > y->task;
}

int frd_analyze(const struct frd_model *m, const struct frd_thresholds *th,
                struct frd_findings *out)
{
    memset(out, 0, sizeof(*out));
    struct cx c = {.m = m, .th = th, .out = out};
    for (size_t i = 0; i < m->ntasks && !c.nomem; i++) {
        history(&c, (int32_t)i);
        if (!c.nomem)
            at_end(&c, (int32_t)i);
    }
    for (size_t i = 0; i < m->nnotes && !c.nomem; i++) {
        const struct frd_protocol_note *n = &m->notes[i];
        struct frd_finding *x = add(&c, FRD_PROTOCOL, FRD_CAUSE_HOOK_ORDER, n->task, n->thread,
                                    n->ns, 0);
        if (x)
            snprintf(x->what, sizeof(x->what), "%s", n->what);
    }
    if (!c.nomem && frd__analyze_locks(m, th, out))
        c.nomem = 1;
    free(c.acc);
    free(c.cnt);
    free(c.touched);
    for (size_t i = 0; c.pre && i < m->dump->nthreads; i++) {
        free(c.pre[i]);
        free(c.runs ? c.runs[i] : NULL);
    }
    free(c.pre);
    free(c.runs);
    free(c.nruns);
    if (c.nomem) {
        frd_findings_free(out);
        return -ENOMEM;
    }
    /* Withheld: what rests on a duration when TSC ticks have no rate, and
     * waits the host made. */
    int calibrated = m->dump->clock.calibrated;
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++) {
        struct frd_finding *x = &out->v[i];
        size_t *withheld = !calibrated && rests_on_a_duration(x) ? &out->timing_withheld
                           : host_made(x, m, th)                 ? &out->host_withheld
                                                                 : NULL;
        if (withheld) {
            free(x->cycle);
            (*withheld)++;
            continue;
        }
        out->v[w++] = *x;
    }
    out->n = w;
    if (out->n) /* qsort(NULL, 0, ...) is undefined: a clean run has no findings */
        qsort(out->v, out->n, sizeof(*out->v), cmp_finding);
    for (size_t i = 0; i < out->n; i++)
        frd_finding_format(m, &out->v[i], 0, out->v[i].message, sizeof(out->v[i].message));
    return 0;
}

void frd_findings_free(struct frd_findings *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].cycle);
    free(f->v);
    memset(f, 0, sizeof(*f));
}
