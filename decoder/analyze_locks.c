/*
 * decoder/analyze_locks.c - the findings about locks (DESIGN.md "deadlock",
 * "hung", "protocol"), run by frd_analyze after the task analyses.
 *
 * The wait-for graph: a task still waiting for a lock at the end of the
 * recording points at the lock's holder when the lock has exactly one (a
 * shared lock with several holders, or none the recording shows, stops the
 * walk). Each task has at most one edge, so the graph is a set of chains
 * ending in cycles; each cycle whose every wait has lasted more than the hang
 * threshold is one `deadlock` finding. An edge is only believed when the
 * rings cover the span it rests on: from the wait's start (no grant since)
 * and from the holder's acquisition (no release since) to the end. A task
 * waiting for a lock whose holder waits on anything outside the cycle is not
 * deadlocked: it stays `hung` (if it is), and its hung finding names the lock
 * and the holder, and what the holder is doing.
 *
 * A release by a task that does not hold the lock is `protocol` when the
 * recording covers the task's whole life up to the release (its spawn seen):
 * otherwise its acquisition may just be older than the rings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"

/* `"accounts"`, or `lock 0x7f00...` when it has no name. */
static const char *lock_text(const struct frd_model *m, uint64_t id, uint32_t name, char *buf,
                             size_t len)
{
    size_t n = 0;
    const char *s = name ? frd_string(m->dump, name, &n) : NULL;
    if (s)
        snprintf(buf, len, "\"%.*s\"", (int)(n > 40 ? 40 : n), s);
    else
        snprintf(buf, len, "lock 0x%llx", (unsigned long long)id);
    return buf;
}

/* The single holder of the lock @w waits for, if the rings cover its hold to
 * the end; else FRD_NONE. */
static int32_t sole_holder(const struct frd_model *m, const struct frd_lock_wait *w)
{
    const struct frd_lock *k = &m->locks.v[w->lock];
    if (k->nholders != 1 || !frd_model_covered(m, k->holders[0].since_ns, m->covered_end_ns))
        return FRD_NONE;
    return k->holders[0].task;
}

/* The task @ti waits for (the lock's sole holder), FRD_NONE if no such edge. */
static int32_t waits_for(const struct frd_model *m, const struct frd_thresholds *th, int32_t ti,
                         const struct frd_lock_wait **wp)
{
    const struct frd_task *t = &m->tasks[ti];
    const struct frd_lock_wait *w = frd_lock_open_wait(&m->locks, ti);
    *wp = w;
    if (!w || t->dropped || m->covered_end_ns - w->begin_ns <= th->hang_ns ||
        !frd_model_covered(m, w->begin_ns, m->covered_end_ns))
        return FRD_NONE;
    int32_t h = sole_holder(m, w);
    if (h == FRD_NONE || m->tasks[h].dropped)
        return FRD_NONE;
    return h;
}

/* Deadlock cycles into @out; @in_cycle[ti] set for their tasks. */
static int cycles(const struct frd_model *m, const struct frd_thresholds *th,
                  struct frd_findings *out, uint8_t *in_cycle)
{
    size_t n = m->ntasks;
    int32_t *next = malloc(n * sizeof(*next));
    uint32_t *stamp = calloc(n, sizeof(*stamp));
    if (!next || !stamp) {
        free(next);
        free(stamp);
        return -ENOMEM;
    }
    const struct frd_lock_wait *w;
    for (size_t i = 0; i < n; i++)
        next[i] = waits_for(m, th, (int32_t)i, &w);
    int rc = 0;
    /* walk from each task; stamp i+1 marks this walk, a node met again with
     * the same stamp closes a cycle; nodes of earlier walks are done */
    for (size_t s = 0; s < n && !rc; s++) {
        if (stamp[s])
            continue;
        int32_t v = (int32_t)s;
        while (v != FRD_NONE && !stamp[v]) {
            stamp[v] = (uint32_t)s + 1;
            v = next[v];
        }
        if (v == FRD_NONE || stamp[v] != (uint32_t)s + 1)
            continue;
        /* v is on a new cycle: start it at its lowest instance (a stable order) */
        size_t len = 0;
        int32_t lo = v, u = v;
        do {
            if (u < lo)
                lo = u;
            len++;
            u = next[u];
        } while (u != v);
        struct frd_cycle_link *cy = malloc(len * sizeof(*cy));
        if (!cy) {
            rc = -ENOMEM;
            break;
        }
        int64_t closed = INT64_MIN;
        u = lo;
        for (size_t j = 0; j < len; j++, u = next[u]) {
            const struct frd_lock_wait *uw = frd_lock_open_wait(&m->locks, u);
            const struct frd_lock *k = &m->locks.v[uw->lock];
            cy[j] = (struct frd_cycle_link){u, uw->thread, k->id, k->name, next[u], uw->begin_ns};
            if (uw->begin_ns > closed)
                closed = uw->begin_ns;
            in_cycle[u] = 1;
        }
        struct frd_finding *x = frd__finding_new(out, FRD_DEADLOCK, FRD_CAUSE_LOCK_CYCLE, lo,
                                                 cy[0].thread, closed,
                                                 m->covered_end_ns - closed);
        if (!x) {
            free(cy);
            rc = -ENOMEM;
            break;
        }
        x->cycle = cy;
        x->ncycle = len;
        x->lock = cy[0].lock;
        x->lock_name = cy[0].lock_name;
        x->lock_holder = cy[0].held_by;
    }
    free(next);
    free(stamp);
    return rc;
}

int frd__analyze_locks(const struct frd_model *m, const struct frd_thresholds *th,
                       struct frd_findings *out)
{
    const struct frd_locks *l = &m->locks;
    if (l->n == 0 || m->ntasks == 0)
        return 0;
    uint8_t *in_cycle = calloc(m->ntasks, 1);
    if (!in_cycle)
        return -ENOMEM;
    size_t before = out->n;
    int rc = cycles(m, th, out, in_cycle);
    if (rc) {
        free(in_cycle);
        return rc;
    }
    /* the hung findings of tasks in a cycle are told by the deadlock; the
     * others that wait for a lock learn its holder */
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        struct frd_finding *x = &out->v[i];
        if (x->kind == FRD_HUNG && x->task != FRD_NONE && i < before) {
            if (in_cycle[x->task])
                continue;
            const struct frd_lock_wait *w = frd_lock_open_wait(l, x->task);
            if (w) {
                const struct frd_lock *lk = &l->v[w->lock];
                x->lock = lk->id;
                x->lock_name = lk->name;
                x->lock_holder = lk->nholders == 1 ? lk->holders[0].task : FRD_NONE;
                if (x->cause == FRD_CAUSE_NO_WAKE)
                    x->cause = FRD_CAUSE_LOCK_HELD;
            }
        }
        out->v[k++] = *x;
    }
    out->n = k;
    free(in_cycle);

    char lt[64], what[96];
    for (size_t i = 0; i < l->nstrays; i++) {
        const struct frd_lock_stray *s = &l->strays[i];
        const struct frd_task *t = &m->tasks[s->task];
        if (!t->spawn_seen || !frd_model_covered(m, frd_task_spawn_ns(t), s->ns))
            continue; /* it may have taken the lock before the rings begin */
        const struct frd_lock *lk = &l->v[s->lock];
        struct frd_finding *x = frd__finding_new(out, FRD_PROTOCOL, FRD_CAUSE_HOOK_ORDER, s->task,
                                                 s->thread, s->ns, 0);
        if (!x)
            return -ENOMEM;
        snprintf(what, sizeof(what), "released %s without holding it",
                 lock_text(m, lk->id, lk->name, lt, sizeof(lt)));
        memcpy(x->what, what, sizeof(x->what));
        x->lock = lk->id;
        x->lock_name = lk->name;
    }
    return 0;
}

/* What holder @h is doing at the end: "which is blocked at ...", ... */
static void holder_doing(const struct frd_model *m, int32_t h, char *buf, size_t len)
{
    const struct frd_task *t = &m->tasks[h];
    char lt[64], d[32];
    size_t n = 0;
    const struct frd_lock_wait *w = frd_lock_open_wait(&m->locks, h);
    if (t->dropped) {
        snprintf(buf, len, ", dropped %s before the dump without releasing it: a leaked lock",
                 frd_fmt_dur(m->end_ns - t->drop_ns, d, sizeof(d)));
    } else if (w) {
        const struct frd_lock *k = &m->locks.v[w->lock];
        snprintf(buf, len, ", which itself waits for %s",
                 lock_text(m, k->id, k->name, lt, sizeof(lt)));
    } else if (t->state == FRD_TASK_RUNNING) {
        snprintf(buf, len, ", which is being polled");
    } else if (t->state == FRD_TASK_READY) {
        snprintf(buf, len, ", which finished (returned ready) without releasing it: a leaked lock");
    } else if (t->state == FRD_TASK_IDLE) {
        const char *s = t->await_str ? frd_string(m->dump, t->await_str, &n) : NULL;
        if (s)
            snprintf(buf, len, ", which waits at its await \"%.*s\"", (int)(n > 80 ? 80 : n), s);
        else
            snprintf(buf, len, ", which is pending (no fr_await label)");
    } else {
        snprintf(buf, len, ", which is %s", frd_task_state_name(t->state));
    }
}

const char *frd__lock_phrase(const struct frd_model *m, const struct frd_finding *x, char *buf,
                             size_t len)
{
    char tl[FRD_TASK_LABEL_MAX], lt[64], doing[160];
    size_t w = 0;
    buf[0] = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (w + 1 < len) {                                                                         \
            int r_ = snprintf(buf + w, len - w, __VA_ARGS__);                                      \
            if (r_ > 0)                                                                            \
                w = (size_t)r_ >= len - w ? len - 1 : w + (size_t)r_;                              \
        }                                                                                          \
    } while (0)
    if (x->kind == FRD_DEADLOCK && x->ncycle) {
        const struct frd_cycle_link *c = x->cycle;
        const struct frd_cycle_link *last = &c[x->ncycle - 1];
        PUT("%s holds %s, waits for %s", frd_task_label(m, c[0].task, tl, sizeof(tl)),
            lock_text(m, last->lock, last->lock_name, lt, sizeof(lt)),
            lock_text(m, c[0].lock, c[0].lock_name, doing, sizeof(doing)));
        for (size_t j = 1; j < x->ncycle; j++)
            PUT(" ← held by %s, which waits for %s", frd_task_label(m, c[j].task, tl, sizeof(tl)),
                lock_text(m, c[j].lock, c[j].lock_name, lt, sizeof(lt)));
        return buf;
    }
    if (!x->lock)
        return buf;
    PUT("; it waits for %s", lock_text(m, x->lock, x->lock_name, lt, sizeof(lt)));
    if (x->lock_holder != FRD_NONE) {
        holder_doing(m, x->lock_holder, doing, sizeof(doing));
        PUT(" held by %s%s", frd_task_label(m, x->lock_holder, tl, sizeof(tl)), doing);
    } else {
        int64_t i = frd_lock_find(&m->locks, x->lock);
        size_t nh = i >= 0 ? m->locks.v[i].nholders : 0;
        if (nh > 1)
            PUT(" held by %zu tasks", nh);
        else
            PUT(" whose holder the recording does not show (taken before its oldest "
                "event, or released with no hand-over)");
    }
#undef PUT
    return buf;
}
