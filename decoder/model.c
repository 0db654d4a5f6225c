/*
 * decoder/model.c - merge the threads' events by time and replay them into
 * task instances and worker histories (see model.h).
 *
 * Merging: within one thread the ring order is the truth, so each event gets
 * a key that is its time made non-decreasing along its thread; all events are
 * then sorted by (key, thread, position). Replaying keeps, per thread, the
 * stack of polls running there and whether it is parked, and per task id the
 * instance that id currently names. A thread whose history has a hole starts
 * over after the hole: a poll end whose begin fell into the hole (or before
 * the ring's oldest page) is expected, not a protocol error.
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable arrays ---------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 2; /* most tasks poll once or twice */
    void *q = realloc(*p, nc * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

/* ---- id -> current instance map (open addressing) ----------------------- */

struct idmap {
    uint64_t *keys; /* 0 = empty (task ids are nonzero) */
    int32_t *vals;
    size_t cap, n;
};

static size_t hash64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

static int32_t *idmap_slot(struct idmap *m, uint64_t k, int insert)
{
    if (insert && (m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        uint64_t *nk = calloc(nc, sizeof(*nk));
        int32_t *nv = calloc(nc, sizeof(*nv));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t j = hash64(m->keys[i]) & (nc - 1);
            while (nk[j])
                j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = nc;
    }
    if (!m->cap)
        return NULL;
    size_t j = hash64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k)
            return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!insert)
        return NULL;
    m->keys[j] = k;
    m->vals[j] = FRD_NONE;
    m->n++;
    return &m->vals[j];
}

/* ---- replay state ------------------------------------------------------- */

struct open_poll {
    int32_t task, poll;
};

struct tstate {
    struct open_poll *stack;
    size_t n, cap;
    int synced;  /* a poll begin was seen since the last hole */
    int parked;
    int64_t parked_since;
    size_t cap_polls, cap_parked;
};

struct replay {
    struct frd_model *m;
    const struct frd_dump *d;
    struct idmap ids;
    struct tstate *ts;
    size_t cap_tasks, cap_notes;
};

static void note(struct replay *r, int32_t task, uint32_t thread, int64_t ns, const char *what)
{
    struct frd_model *m = r->m;
    if (grow((void **)&m->notes, &r->cap_notes, m->nnotes, sizeof(*m->notes)))
        return;
    struct frd_protocol_note *n = &m->notes[m->nnotes++];
    n->task = task;
    n->thread = thread;
    n->ns = ns;
    snprintf(n->what, sizeof(n->what), "%s", what);
}

static int32_t new_task(struct replay *r, uint64_t id, int64_t ns)
{
    struct frd_model *m = r->m;
    if (grow((void **)&m->tasks, &r->cap_tasks, m->ntasks, sizeof(*m->tasks)))
        return FRD_NONE;
    struct frd_task *t = &m->tasks[m->ntasks];
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->parent_inst = FRD_NONE;
    t->first_ns = t->last_ns = ns;
    t->waker_zero_ns = INT64_MIN;
    t->open_poll = FRD_NONE;
    t->ready_ns = INT64_MIN;
    t->ready_wake = FRD_NONE;
    t->delay_p50_ns = t->delay_p99_ns = -1;
    return (int32_t)m->ntasks++;
}

/* The instance an event for @id belongs to; creates one for an id first seen
 * here (its spawn fell before the recording window). */
static int32_t task_for(struct replay *r, uint64_t id, int64_t ns)
{
    int32_t *slot = idmap_slot(&r->ids, id, 1);
    if (!slot)
        return FRD_NONE;
    if (*slot == FRD_NONE)
        *slot = new_task(r, id, ns);
    return *slot;
}

/*
 * Replay one merged event. @pcap and @wcap hold the capacities of each task's
 * polls and wakes arrays (indexed like m->tasks, room for one more task).
 */
static void step(struct replay *r, struct frd_mev *me, size_t *pcap, size_t *wcap)
{
    struct frd_model *m = r->m;
    const struct frd_event *e = me->e;
    struct tstate *ts = &r->ts[me->thread];
    struct frd_worker *w = &m->workers[me->thread];
    int64_t ns = me->ns;
    me->task = FRD_NONE;
    me->ref = FRD_NONE;

    switch (e->type) {
    case FR_EV_PARK:
        if (!ts->parked) {
            ts->parked = 1;
            ts->parked_since = ns;
        }
        return;
    case FR_EV_UNPARK: {
        /* an unpark with no park seen: parked since the thread's oldest event */
        int64_t since = ts->parked ? ts->parked_since : m->dump->threads[me->thread].first_ns;
        ts->parked = 0;
        if (!grow((void **)&w->parked, &ts->cap_parked, w->nparked, sizeof(*w->parked)))
            w->parked[w->nparked++] = (struct frd_span){since, ns};
        return;
    }
    case FR_EV_THREAD_NAME:
        return;
    default:
        break;
    }

    int32_t ti;
    if (e->type == FR_EV_SPAWN) {
        int32_t *slot = idmap_slot(&r->ids, e->task, 1);
        if (!slot)
            return;
        /* a new instance unless this id's current one has not been seen before
         * (spawn is always its first event) */
        *slot = new_task(r, e->task, ns);
        ti = *slot;
    } else {
        ti = task_for(r, e->task, ns);
    }
    if (ti == FRD_NONE)
        return;
    struct frd_task *t = &m->tasks[ti];
    me->task = ti;
    t->last_ns = ns;
    size_t ti_u = (size_t)ti;

    switch (e->type) {
    case FR_EV_SPAWN: {
        t->spawn_seen = 1;
        t->spawn_ns = ns;
        t->spawn_thread = me->thread;
        t->name = e->str;
        t->parent = e->parent;
        if (e->parent) {
            int32_t *ps = idmap_slot(&r->ids, e->parent, 0);
            t->parent_inst = ps ? *ps : FRD_NONE;
        }
        t->ready_ns = ns;
        t->ready_wake = FRD_NONE;
        break;
    }
    case FR_EV_POLL_BEGIN: {
        ts->synced = 1;
        if (t->dropped)
            note(r, ti, me->thread, ns, "poll after drop");
        if (t->open_poll != FRD_NONE)
            note(r, ti, me->thread, ns, "poll begins while another poll of the task runs");
        if (grow((void **)&t->polls, &pcap[ti_u], t->npolls, sizeof(*t->polls)))
            return;
        struct frd_poll *p = &t->polls[t->npolls];
        memset(p, 0, sizeof(*p));
        p->thread = me->thread;
        p->begin_ns = p->end_ns = ns;
        p->result = FRD_POLL_RUNNING;
        p->ready_ns = t->ready_ns;
        p->ready_wake = t->ready_wake;
        t->ready_ns = INT64_MIN;
        t->ready_wake = FRD_NONE;
        t->open_poll = (int32_t)t->npolls;
        me->ref = (int32_t)t->npolls;
        t->npolls++;
        if (!grow((void **)&ts->stack, &ts->cap, ts->n, sizeof(*ts->stack)))
            ts->stack[ts->n++] = (struct open_poll){ti, me->ref};
        if (!grow((void **)&w->polls, &ts->cap_polls, w->npolls, sizeof(*w->polls)))
            w->polls[w->npolls++] = (struct frd_poll_ref){ti, me->ref};
        break;
    }
    case FR_EV_POLL_PENDING:
    case FR_EV_POLL_READY: {
        size_t k = ts->n;
        while (k > 0 && ts->stack[k - 1].task != ti)
            k--;
        if (k == 0) {
            if (ts->synced)
                note(r, ti, me->thread, ns, "poll ends without a poll begin");
            break;
        }
        struct open_poll op = ts->stack[k - 1];
        memmove(&ts->stack[k - 1], &ts->stack[k], (ts->n - k) * sizeof(*ts->stack));
        ts->n--;
        struct frd_poll *p = &t->polls[op.poll];
        p->end_ns = ns;
        p->result = e->type == FR_EV_POLL_READY ? FRD_POLL_READY : FRD_POLL_PENDING;
        w->busy_ns += ns - p->begin_ns;
        t->busy_ns += ns - p->begin_ns;
        if (t->open_poll == op.poll)
            t->open_poll = FRD_NONE;
        me->ref = op.poll;
        if (p->result == FRD_POLL_PENDING && p->woken_during) {
            /* woken while it ran: it should be polled again right away */
            t->ready_ns = ns;
            t->ready_wake = FRD_NONE;
        }
        break;
    }
    case FR_EV_AWAIT:
        t->await_str = e->str;
        t->await_ns = ns;
        if (t->open_poll != FRD_NONE)
            t->polls[t->open_poll].await_str = e->str;
        break;
    case FR_EV_WAKE: {
        if (t->dropped)
            note(r, ti, me->thread, ns, "wake after drop");
        if (grow((void **)&t->wakes, &wcap[ti_u], t->nwakes, sizeof(*t->wakes)))
            return;
        struct frd_wake *wk = &t->wakes[t->nwakes];
        memset(wk, 0, sizeof(*wk));
        wk->ns = ns;
        wk->thread = me->thread;
        wk->by_inst = FRD_NONE;
        if (ts->n) {
            wk->by_inst = ts->stack[ts->n - 1].task;
            wk->by_task = m->tasks[wk->by_inst].id;
        }
        if (t->open_poll != FRD_NONE) {
            wk->during_own_poll = 1;
            t->polls[t->open_poll].woken_during = 1;
        } else if (t->npolls && t->polls[t->npolls - 1].result == FRD_POLL_PENDING &&
                   t->ready_ns == INT64_MIN) {
            wk->while_idle = 1;
            t->ready_ns = ns;
            t->ready_wake = (int32_t)t->nwakes;
        }
        me->ref = (int32_t)t->nwakes;
        t->nwakes++;
        break;
    }
    case FR_EV_WAKER_CLONE:
        t->waker_refs++;
        break;
    case FR_EV_WAKER_DROP:
        t->waker_refs--;
        t->waker_drops++;
        if (t->waker_refs == 0)
            t->waker_zero_ns = ns;
        break;
    case FR_EV_DROP:
        if (!t->dropped) {
            t->dropped = 1;
            t->drop_ns = ns;
            t->drop_thread = me->thread;
        }
        t->ready_ns = INT64_MIN;
        break;
    case FR_EV_MARK:
    default:
        break;
    }
}

/* ---- merge -------------------------------------------------------------- */

struct mkey {
    int64_t ns;
    uint32_t thread;
    size_t idx;
};

static int cmp_mkey(const void *a, const void *b)
{
    const struct mkey *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Per-task figures once the replay is over. */
static void finish_task(struct frd_model *m, struct frd_task *t, int64_t *scratch)
{
    int64_t end = t->dropped ? t->drop_ns : m->end_ns;
    size_t ns = 0;
    for (size_t i = 0; i < t->npolls; i++) {
        struct frd_poll *p = &t->polls[i];
        if (p->result == FRD_POLL_RUNNING) {
            p->end_ns = end > p->begin_ns ? end : p->begin_ns;
            t->busy_ns += p->end_ns - p->begin_ns;
        }
        if (p->ready_ns != INT64_MIN)
            scratch[ns++] = p->begin_ns - p->ready_ns;
        if (p->result == FRD_POLL_PENDING) {
            int64_t next = i + 1 < t->npolls ? t->polls[i + 1].begin_ns : end;
            if (next > p->end_ns)
                t->idle_ns += next - p->end_ns;
        }
    }
    if (ns) {
        qsort(scratch, ns, sizeof(*scratch), cmp_i64);
        t->delay_p50_ns = scratch[(ns - 1) / 2];
        t->delay_p99_ns = scratch[(ns * 99 + 99) / 100 - 1];
    }
    if (t->dropped)
        t->state = FRD_TASK_DROPPED;
    else if (t->open_poll != FRD_NONE)
        t->state = FRD_TASK_RUNNING;
    else if (t->npolls == 0)
        t->state = FRD_TASK_SPAWNED;
    else if (t->ready_ns != INT64_MIN)
        t->state = FRD_TASK_RUNNABLE;
    else if (t->polls[t->npolls - 1].result == FRD_POLL_READY)
        t->state = FRD_TASK_READY;
    else
        t->state = FRD_TASK_IDLE;
}

int frd_model_build(const struct frd_dump *d, struct frd_model *m)
{
    memset(m, 0, sizeof(*m));
    m->dump = d;
    size_t total = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        total += d->threads[i].nevents;
    struct mkey *keys = malloc((total ? total : 1) * sizeof(*keys));
    m->ev = calloc(total ? total : 1, sizeof(*m->ev));
    m->workers = calloc(d->nthreads ? d->nthreads : 1, sizeof(*m->workers));
    struct replay r = {.m = m, .d = d};
    r.ts = calloc(d->nthreads ? d->nthreads : 1, sizeof(*r.ts));
    if (!keys || !m->ev || !m->workers || !r.ts) {
        free(keys);
        free(r.ts);
        frd_model_free(m);
        return -ENOMEM;
    }
    /*
     * Each thread's keys are already sorted (made non-decreasing), so the
     * merge is a k-way merge over a binary heap of thread cursors: O(N log T)
     * rather than a sort of everything.
     */
    size_t k = 0;
    m->start_ns = INT64_MAX;
    size_t *pos = calloc(d->nthreads ? d->nthreads : 1, sizeof(*pos));
    int64_t *last = calloc(d->nthreads ? d->nthreads : 1, sizeof(*last));
    uint32_t *heap = malloc((d->nthreads ? d->nthreads : 1) * sizeof(*heap));
    if (!pos || !last || !heap) {
        free(pos);
        free(last);
        free(heap);
        free(keys);
        free(r.ts);
        frd_model_free(m);
        return -ENOMEM;
    }
    size_t hn = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *th = &d->threads[i];
        last[i] = INT64_MIN;
        if (th->nevents && th->events[0].ns < m->start_ns)
            m->start_ns = th->events[0].ns;
        if (!th->nevents)
            continue;
        last[i] = th->events[0].ns;
        /* sift up */
        size_t c = hn++;
        heap[c] = (uint32_t)i;
        while (c > 0) {
            size_t p = (c - 1) / 2;
            struct mkey a = {last[heap[c]], heap[c], 0}, b = {last[heap[p]], heap[p], 0};
            if (cmp_mkey(&a, &b) >= 0)
                break;
            uint32_t tmp = heap[c];
            heap[c] = heap[p];
            heap[p] = tmp;
            c = p;
        }
    }
    while (hn > 0) {
        uint32_t t = heap[0];
        const struct frd_thread *th = &d->threads[t];
        keys[k++] = (struct mkey){last[t], t, pos[t]};
        if (++pos[t] < th->nevents) {
            if (th->events[pos[t]].ns > last[t])
                last[t] = th->events[pos[t]].ns;
        } else {
            heap[0] = heap[--hn];
        }
        /* sift down */
        size_t c = 0;
        for (;;) {
            size_t l = 2 * c + 1, best = c;
            if (l >= hn)
                break;
            struct mkey bk = {last[heap[best]], heap[best], 0};
            for (size_t j = l; j <= l + 1 && j < hn; j++) {
                struct mkey jk = {last[heap[j]], heap[j], 0};
                if (cmp_mkey(&jk, &bk) < 0) {
                    best = j;
                    bk = jk;
                }
            }
            if (best == c)
                break;
            uint32_t tmp = heap[c];
            heap[c] = heap[best];
            heap[best] = tmp;
            c = best;
        }
    }
    free(pos);
    free(last);
    free(heap);
    for (size_t i = 0; i < total; i++) {
        m->ev[i].e = &d->threads[keys[i].thread].events[keys[i].idx];
        m->ev[i].ns = keys[i].ns;
        m->ev[i].thread = keys[i].thread;
    }
    m->nev = total;
    m->end_ns = frd_end_ns(d);
    if (m->start_ns == INT64_MAX)
        m->start_ns = m->end_ns;
    if (m->end_ns < m->start_ns)
        m->end_ns = m->start_ns;

    /* capacities of each task's poll and wake arrays, parallel to tasks */
    size_t *pcap = NULL, *wcap = NULL, capn = 0;
    int rc = 0;
    for (size_t i = 0; i < total; i++) {
        struct frd_mev *me = &m->ev[i];
        const struct frd_thread *th = &d->threads[me->thread];
        if (!th->complete_head && keys[i].idx == th->first_whole) {
            /* history before this point has holes: forget open polls */
            r.ts[me->thread].n = 0;
            r.ts[me->thread].synced = 0;
        }
        if (m->ntasks + 2 > capn) {
            size_t nc = capn ? capn * 2 : 256;
            size_t *np = realloc(pcap, nc * sizeof(*np));
            if (np)
                pcap = np;
            size_t *nw = np ? realloc(wcap, nc * sizeof(*nw)) : NULL;
            if (nw)
                wcap = nw;
            if (!np || !nw) {
                rc = -ENOMEM;
                break;
            }
            memset(pcap + capn, 0, (nc - capn) * sizeof(*pcap));
            memset(wcap + capn, 0, (nc - capn) * sizeof(*wcap));
            capn = nc;
        }
        step(&r, me, pcap, wcap);
    }
    /* workers still parked at the end */
    for (size_t i = 0; i < d->nthreads; i++) {
        struct tstate *ts = &r.ts[i];
        struct frd_worker *w = &m->workers[i];
        if (ts->parked &&
            !grow((void **)&w->parked, &ts->cap_parked, w->nparked, sizeof(*w->parked)))
            w->parked[w->nparked++] = (struct frd_span){ts->parked_since, m->end_ns};
        free(ts->stack);
    }
    size_t maxp = 1;
    for (size_t i = 0; i < m->ntasks; i++)
        if (m->tasks[i].npolls > maxp)
            maxp = m->tasks[i].npolls;
    int64_t *scratch = malloc(maxp * sizeof(*scratch));
    if (!scratch)
        rc = -ENOMEM;
    for (size_t i = 0; scratch && i < m->ntasks; i++)
        finish_task(m, &m->tasks[i], scratch);
    free(scratch);
    free(pcap);
    free(wcap);
    free(r.ts);
    free(r.ids.keys);
    free(r.ids.vals);
    free(keys);
    if (rc)
        frd_model_free(m);
    return rc;
}

void frd_model_free(struct frd_model *m)
{
    for (size_t i = 0; i < m->ntasks; i++) {
        free(m->tasks[i].polls);
        free(m->tasks[i].wakes);
    }
    if (m->workers && m->dump)
        for (size_t i = 0; i < m->dump->nthreads; i++) {
            free(m->workers[i].polls);
            free(m->workers[i].parked);
        }
    free(m->workers);
    free(m->tasks);
    free(m->ev);
    free(m->notes);
    memset(m, 0, sizeof(*m));
}

/* ---- queries ------------------------------------------------------------ */

int frd_model_covered(const struct frd_model *m, int64_t a_ns, int64_t b_ns)
{
    const struct frd_dump *d = m->dump;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        if (t->pages_started == 0)
            continue; /* never recorded anything */
        if (t->complete_tail && t->nevents && t->last_ns < a_ns && t->state == 2)
            continue; /* exited before the span, nothing lost after its end */
        if (!t->complete_head && t->covered_from_ns > a_ns)
            return 0;
        if (!t->complete_tail && (t->nevents == 0 || t->last_ns < b_ns))
            return 0;
    }
    return 1;
}

int64_t frd_model_parked_ns(const struct frd_model *m, int64_t a_ns, int64_t b_ns)
{
    int64_t best = 0;
    for (size_t i = 0; i < m->dump->nthreads; i++) {
        const struct frd_worker *w = &m->workers[i];
        int64_t sum = 0;
        for (size_t j = 0; j < w->nparked; j++) {
            int64_t lo = w->parked[j].begin_ns > a_ns ? w->parked[j].begin_ns : a_ns;
            int64_t hi = w->parked[j].end_ns < b_ns ? w->parked[j].end_ns : b_ns;
            if (hi > lo)
                sum += hi - lo;
        }
        if (sum > best)
            best = sum;
    }
    return best;
}

int32_t frd_model_task_at(const struct frd_model *m, uint64_t id, int64_t ns)
{
    int32_t best = FRD_NONE;
    for (size_t i = 0; i < m->ntasks; i++)
        if (m->tasks[i].id == id && (best == FRD_NONE || m->tasks[i].first_ns <= ns))
            best = (int32_t)i;
    return best;
}

const char *frd_task_state_name(int state)
{
    switch (state) {
    case FRD_TASK_SPAWNED: return "spawned";
    case FRD_TASK_RUNNING: return "running";
    case FRD_TASK_IDLE: return "idle";
    case FRD_TASK_RUNNABLE: return "runnable";
    case FRD_TASK_READY: return "ready";
    case FRD_TASK_DROPPED: return "dropped";
    default: return "unknown";
    }
}

const char *frd_thread_label(const struct frd_model *m, uint32_t thread, char *buf, size_t len)
{
    const struct frd_thread *t = &m->dump->threads[thread];
    if (t->name[0])
        snprintf(buf, len, "%s", t->name);
    else
        snprintf(buf, len, "tid %u", t->tid);
    return buf;
}
