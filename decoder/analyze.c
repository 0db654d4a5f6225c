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
 * task that was about to be polled. Whether the workers were parked or busy
 * tells a lost notification apart from starvation: a parked worker during
 * more than half of the wait means the runtime had room and did not use it.
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
        [FRD_LOST_WAKEUP] = "lost_wakeup", [FRD_PROTOCOL] = "protocol",
        [FRD_HUNG] = "hung",               [FRD_STARVATION] = "starvation",
        [FRD_NEVER_POLLED] = "never_polled", [FRD_LONG_POLL] = "long_poll",
    };
    if (kind < 0 || kind >= FRD_KIND_COUNT)
        return "unknown";
    return names[kind];
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

/* `task 7 "fetch"` (or `task 7` when the name is unknown). */
static const char *task_label(const struct frd_model *m, int32_t ti, char *buf, size_t len)
{
    const struct frd_task *t = &m->tasks[ti];
    size_t n = 0;
    const char *s = frd_string(m->dump, t->name, &n);
    if (s)
        snprintf(buf, len, "task %llu \"%.*s\"", (unsigned long long)t->id,
                 (int)(n > 48 ? 48 : n), s);
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

static struct frd_finding *add(struct frd_findings *f, int kind, int32_t task, uint32_t thread,
                               int64_t at, int64_t dur, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static struct frd_finding *add(struct frd_findings *f, int kind, int32_t task, uint32_t thread,
                               int64_t at, int64_t dur, const char *fmt, ...)
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
    x->kind = kind;
    x->task = task;
    x->thread = thread;
    x->at_ns = at;
    x->duration_ns = dur;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof(x->message), fmt, ap);
    va_end(ap);
    return x;
}

/* Was some worker parked for at least half of [a, b]? */
static int workers_parked(const struct frd_model *m, int64_t a, int64_t b)
{
    return b > a && frd_model_parked_ns(m, a, b) * 2 >= b - a;
}

/*
 * What kept the workers busy during [a, b]: the poll of another task that
 * overlaps the span the most. Writes a phrase into @buf ("" if none).
 */
const char *frd_culprit(const struct frd_model *m, int32_t victim, int64_t a, int64_t b,
                           char *buf, size_t len)
{
    int64_t best = 0;
    int32_t bt = FRD_NONE, bp = FRD_NONE;
    for (size_t i = 0; i < m->dump->nthreads; i++) {
        const struct frd_worker *w = &m->workers[i];
        for (size_t j = 0; j < w->npolls; j++) {
            const struct frd_poll_ref *r = &w->polls[j];
            if (r->task == victim)
                continue;
            const struct frd_poll *p = &m->tasks[r->task].polls[r->poll];
            int64_t lo = p->begin_ns > a ? p->begin_ns : a;
            int64_t hi = p->end_ns < b ? p->end_ns : b;
            if (hi - lo > best) {
                best = hi - lo;
                bt = r->task;
                bp = r->poll;
            }
        }
    }
    buf[0] = 0;
    if (bt == FRD_NONE)
        return buf;
    const struct frd_poll *p = &m->tasks[bt].polls[bp];
    char tl[96], d[32], th[48];
    snprintf(buf, len, "behind %s's %s poll on %s", task_label(m, bt, tl, sizeof(tl)),
             frd_fmt_dur(p->end_ns - p->begin_ns, d, sizeof(d)),
             frd_thread_label(m, p->thread, th, sizeof(th)));
    return buf;
}

/* "worker-1 (task 9 "db_pool")" or "worker-1": who delivered a wake. */
static const char *waker_label(const struct frd_model *m, const struct frd_wake *w, char *buf,
                               size_t len)
{
    char th[48], tl[96];
    frd_thread_label(m, w->thread, th, sizeof(th));
    if (w->by_inst != FRD_NONE)
        snprintf(buf, len, "%s (%s)", th, task_label(m, w->by_inst, tl, sizeof(tl)));
    else
        snprintf(buf, len, "%s", th);
    return buf;
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

/* Findings along the task's history: long polls and late polls. */
static int history(const struct frd_model *m, const struct frd_thresholds *th, int32_t ti,
                   struct frd_findings *f)
{
    const struct frd_task *t = &m->tasks[ti];
    char tl[96], d1[32], d2[32], th1[160], why[256], who[192], stuck[512];
    /* labels are formatted only for a finding: most tasks have none */
    tl[0] = 0;
    for (size_t i = 0; i < t->npolls; i++) {
        const struct frd_poll *p = &t->polls[i];
        int64_t dur = p->end_ns - p->begin_ns;
        if (dur > th->long_poll_ns &&
            (p->result != FRD_POLL_RUNNING || frd_model_covered(m, p->begin_ns, m->end_ns))) {
            if (!tl[0])
                task_label(m, ti, tl, sizeof(tl));
            frd_thread_label(m, p->thread, th1, sizeof(th1));
            if (!add(f, FRD_LONG_POLL, ti, p->thread, p->begin_ns, dur,
                     "poll #%zu of %s held %s for %s (%s)%s", i + 1, tl, th1,
                     frd_fmt_dur(dur, d1, sizeof(d1)),
                     p->result == FRD_POLL_RUNNING ? "still running at the dump"
                     : p->result == FRD_POLL_READY ? "returned ready"
                                                   : "returned pending",
                     stuck_at(m, t, p, stuck, sizeof(stuck))))
                return -ENOMEM;
        }
        if (p->ready_ns == INT64_MIN)
            continue;
        int64_t delay = p->begin_ns - p->ready_ns;
        if (delay <= th->starvation_ns || !frd_model_covered(m, p->ready_ns, p->begin_ns) ||
            workers_parked(m, p->ready_ns, p->begin_ns))
            continue;
        if (!tl[0])
            task_label(m, ti, tl, sizeof(tl));
        frd_culprit(m, ti, p->ready_ns, p->begin_ns, why, sizeof(why));
        if (p->ready_wake != FRD_NONE)
            snprintf(who, sizeof(who), "woken by %s",
                     waker_label(m, &t->wakes[p->ready_wake], th1, sizeof(th1)));
        else if (i == 0 && t->spawn_seen)
            snprintf(who, sizeof(who), "spawned");
        else
            snprintf(who, sizeof(who), "woken during its own poll #%zu", i);
        if (!add(f, FRD_STARVATION, ti, p->thread, p->ready_ns, delay,
                 "%s was %s but not polled for %s while the workers were busy%s%s "
                 "(poll #%zu came at last on %s)",
                 tl, who, frd_fmt_dur(delay, d2, sizeof(d2)), why[0] ? ", " : "", why, i + 1,
                 frd_thread_label(m, p->thread, th1, sizeof(th1))))
            return -ENOMEM;
    }
    return 0;
}

/* Findings about the state the task was left in at the end. */
static int at_end(const struct frd_model *m, const struct frd_thresholds *th, int32_t ti,
                  struct frd_findings *f)
{
    const struct frd_task *t = &m->tasks[ti];
    const int64_t E = m->end_ns;
    char tl[96], d1[32], th1[160], why[256], lab[128], who[192];
    if (t->state != FRD_TASK_SPAWNED && t->state != FRD_TASK_RUNNABLE &&
        t->state != FRD_TASK_IDLE)
        return 0; /* nothing to say about a task that finished or is running */
    task_label(m, ti, tl, sizeof(tl));
    struct frd_finding *x = (struct frd_finding *)1;

    switch (t->state) {
    case FRD_TASK_SPAWNED: {
        /* runnable since its spawn, or since a wake that ended a wait it
         * started outside any poll (a handle started, then ready) */
        int64_t R = t->ready_wake != FRD_NONE ? t->ready_ns : t->spawn_ns;
        if ((!t->spawn_seen && t->ready_wake == FRD_NONE) || R == INT64_MIN ||
            E - R <= th->starvation_ns || !frd_model_covered(m, R, E))
            break;
        frd_culprit(m, ti, R, E, why, sizeof(why));
        x = add(f, FRD_NEVER_POLLED, ti, t->spawn_thread, R, E - R,
                "%s was %s on %s and never polled in %s%s%s", tl,
                t->ready_wake != FRD_NONE ? "woken" : "spawned",
                frd_thread_label(m, t->ready_wake != FRD_NONE ? t->wakes[t->ready_wake].thread
                                                              : t->spawn_thread,
                                 th1, sizeof(th1)),
                frd_fmt_dur(E - R, d1, sizeof(d1)),
                why[0] && !workers_parked(m, R, E) ? "; the workers were busy, " : "",
                why[0] && !workers_parked(m, R, E) ? why : "");
        break;
    }
    case FRD_TASK_RUNNABLE: {
        const struct frd_poll *last = &t->polls[t->npolls - 1];
        int64_t R = t->ready_ns, wait = E - R;
        if (wait <= th->starvation_ns || !frd_model_covered(m, R, E))
            break;
        int parked = workers_parked(m, R, E);
        if (!parked) {
            frd_culprit(m, ti, R, E, why, sizeof(why));
            x = add(f, FRD_STARVATION, ti,
                    t->ready_wake != FRD_NONE ? t->wakes[t->ready_wake].thread : last->thread,
                    R, wait, "%s was %s but not polled for %s up to the dump while the workers "
                    "were busy%s%s", tl,
                    t->ready_wake != FRD_NONE ? "woken" : "woken during its last poll",
                    frd_fmt_dur(wait, d1, sizeof(d1)), why[0] ? ", " : "", why);
        } else if (t->ready_wake == FRD_NONE) {
            /* (c): woken inside its own poll, which then returned pending */
            x = add(f, FRD_LOST_WAKEUP, ti, last->thread, last->end_ns, wait,
                    "wake during poll lost: %s was woken during its own poll #%zu on %s, the "
                    "poll returned pending, and no later poll came in %s although workers "
                    "were parked (check-then-park race)",
                    tl, t->npolls, frd_thread_label(m, last->thread, th1, sizeof(th1)),
                    frd_fmt_dur(wait, d1, sizeof(d1)));
        } else {
            /* (b): woken while idle, the runtime never acted on it */
            const struct frd_wake *w = &t->wakes[t->ready_wake];
            x = add(f, FRD_LOST_WAKEUP, ti, w->thread, R, wait,
                    "notification lost: %s was woken by %s while idle after poll #%zu but "
                    "never polled again in %s although workers were parked (%s parked)",
                    tl, waker_label(m, w, who, sizeof(who)), t->npolls,
                    frd_fmt_dur(wait, d1, sizeof(d1)),
                    frd_fmt_dur(frd_model_parked_ns(m, R, E), lab, sizeof(lab)));
        }
        break;
    }
    case FRD_TASK_IDLE: {
        /* waiting on the outside world, or stopped: not a bug however long */
        if (t->wait == FRD_WAIT_EXTERNAL || t->wait == FRD_WAIT_STOPPED)
            break;
        if (t->npolls == 0) {
            /* started outside any poll and never called back */
            int64_t P = t->await_ns;
            if (E - P > th->hang_ns && frd_model_covered(m, P, E))
                x = add(f, FRD_HUNG, ti, t->spawn_thread, P, E - P,
                        "%s is blocked at %s for %s: never polled, with no wake since", tl,
                        label_text(m, t->await_str, lab, sizeof(lab)),
                        frd_fmt_dur(E - P, d1, sizeof(d1)));
            break;
        }
        const struct frd_poll *last = &t->polls[t->npolls - 1];
        int64_t P = last->end_ns;
        frd_thread_label(m, last->thread, th1, sizeof(th1));
        if (!frd_model_covered(m, P, E))
            break;
        /* (a): the waker count is exact only if the whole life is covered */
        if (t->spawn_seen && frd_model_covered(m, t->spawn_ns, E) && t->waker_drops > 0 &&
            t->waker_refs == 0 && t->waker_zero_ns >= last->begin_ns) {
            int64_t since = t->waker_zero_ns > P ? t->waker_zero_ns : P;
            if (E - since > th->starvation_ns) {
                x = add(f, FRD_LOST_WAKEUP, ti, last->thread, since, E - since,
                        "waker dropped: %s went idle after poll #%zu on %s (pending%s%s%s) "
                        "and its last waker reference was dropped with no wake since; "
                        "nothing can wake it (idle %s)",
                        tl, t->npolls, th1, last->await_str ? ", awaiting \"" : "",
                        last->await_str ? label_text(m, last->await_str, lab, sizeof(lab))
                                        : "",
                        last->await_str ? "\"" : "", frd_fmt_dur(E - since, d1, sizeof(d1)));
                break;
            }
        }
        if (E - P > th->hang_ns) {
            uint32_t a = last->await_str ? last->await_str : t->await_str;
            if (a)
                snprintf(why, sizeof(why), "blocked at %s for %s",
                         label_text(m, a, lab, sizeof(lab)), frd_fmt_dur(E - P, d1, sizeof(d1)));
            else
                snprintf(why, sizeof(why), "blocked (no fr_await label) for %s",
                         frd_fmt_dur(E - P, d1, sizeof(d1)));
            x = add(f, FRD_HUNG, ti, last->thread, P, E - P,
                    "%s is %s: pending since poll #%zu on %s with no wake since", tl, why,
                    t->npolls, th1);
        }
        break;
    }
    default:
        break;
    }
    return x ? 0 : -ENOMEM;
}

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
    for (size_t i = 0; i < m->ntasks; i++) {
        if (history(m, th, (int32_t)i, out) || at_end(m, th, (int32_t)i, out)) {
            frd_findings_free(out);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < m->nnotes; i++) {
        const struct frd_protocol_note *n = &m->notes[i];
        char tl[96], th1[48];
        if (!add(out, FRD_PROTOCOL, n->task, n->thread, n->ns, 0, "%s: %s on %s",
                 task_label(m, n->task, tl, sizeof(tl)), n->what,
                 frd_thread_label(m, n->thread, th1, sizeof(th1)))) {
            frd_findings_free(out);
            return -ENOMEM;
        }
    }
    if (out->n) /* qsort(NULL, 0, ...) is undefined: a clean run has no findings */
        qsort(out->v, out->n, sizeof(*out->v), cmp_finding);
    return 0;
}

void frd_findings_free(struct frd_findings *f)
{
    free(f->v);
    memset(f, 0, sizeof(*f));
}
