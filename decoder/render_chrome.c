/*
 * decoder/render_chrome.c - `export --format chrome`: the model as a trace in
 * the Trace Event Format (JSON Object Format), for ui.perfetto.dev,
 * chrome://tracing and Chrome DevTools' Performance panel.
 *
 * Two processes, both made up (their pids are not the dump's):
 *
 *   pid 1 "workers"  one track per recorded thread (its real tid). Each poll
 *                    is an X slice named after its task, category "worker";
 *                    parked spans are X slices "parked", category "park"; each
 *                    wake is a short X slice "wake <task>" on the waking
 *                    thread (nested in the poll that woke, if any).
 *   pid 2 "tasks"    one track per task instance ("fetch #7"; tid
 *                    TASK_TID_BASE + instance): its polls, the spans it spent
 *                    waiting after a pending poll (named after its await
 *                    label) and runnable (woken or spawned, not yet polled),
 *                    so a task's life reads left to right.
 *
 * Each wake that made a task runnable is a flow (s, then f with bp "e") from
 * its wake slice to the poll it caused. Both ends sit on the start time of the
 * slice they belong to: Chrome DevTools binds a flow event to the slice with
 * the same ts, pid, tid and category; Perfetto and chrome://tracing bind it to
 * the slice open on its thread at that time, and order events of equal time
 * as they appear in the file, which is why flows come after every slice.
 *
 * Lock waits (fr_lock_wait to fr_lock_acquire, or to the end for a wait
 * still going) are async slices "wait <lock name>", category "lock", on the
 * waiting task's track (async, since a wait spans poll boundaries); each
 * grant that followed another task's release is a flow "lock handover" from
 * the release on the holder's thread to the acquisition on the next one's.
 *
 * Findings (analyze.c) are process-scoped instants on "tasks", the crash a
 * global instant. Times are microseconds since the start of the recording
 * window, written from integer nanoseconds ("1234.567"), so the output is the
 * same on every machine. Only the model is read, never the merged timeline.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "render.h"

#define PID_WORKERS 1
#define PID_TASKS 2

/* Task tracks get tids above Linux's PID_MAX_LIMIT (2^22), so that they can
 * never be mistaken for a real thread of the workers process. */
#define TASK_TID_BASE 4194304u

/* Longest a wake slice lasts: enough to click on, short enough to stay
 * inside the poll that woke. */
#define WAKE_SLICE_NS 1000

struct cx {
    FILE *out;
    const struct frd_model *m;
    const struct frd_dump *d;
    uint32_t *ordinal; /* per instance: 1-based among instances of its id, 0 unique */
};

/* A wake, for the per-thread sort. */
struct wref {
    int64_t ns;
    uint32_t thread;
    int32_t task, wake;
};

/* @ns relative to the recording start, as microseconds with three decimals. */
static void put_us(FILE *out, int64_t ns)
{
    if (ns < 0) {
        putc('-', out);
        ns = ns == INT64_MIN ? INT64_MAX : -ns;
    }
    fprintf(out, "%lld.%03d", (long long)(ns / 1000), (int)(ns % 1000));
}

static uint32_t tid_of(const struct cx *c, uint32_t thread)
{
    return c->d->threads[thread].tid;
}

static uint32_t task_tid(size_t ti)
{
    return ti < UINT32_MAX - TASK_TID_BASE ? TASK_TID_BASE + (uint32_t)ti : UINT32_MAX;
}

/* Open an event object: `{"ph": "X", "cat": ..., "pid": .., "tid": .., "ts": ..`. */
static void ev_open(struct cx *c, char ph, const char *cat, unsigned pid, uint32_t tid,
                    int64_t ns)
{
    fprintf(c->out, ",\n{\"ph\": \"%c\", \"cat\": \"%s\", \"pid\": %u, \"tid\": %u, \"ts\": ",
            ph, cat, pid, tid);
    put_us(c->out, ns - c->m->start_ns);
}

static void put_dur(struct cx *c, int64_t ns)
{
    fputs(", \"dur\": ", c->out);
    put_us(c->out, ns > 0 ? ns : 0);
}

/* The task's name as JSON string characters, "task" if it has none. */
static void task_name_chars(struct cx *c, size_t ti)
{
    size_t n = 0;
    const char *s = frd_string(c->d, c->m->tasks[ti].name, &n);
    if (s)
        frd_json_chars(c->out, s, n);
    else
        fputs("task", c->out);
}

/* "fetch #7", or "fetch #7 (2)" for the second instance of a reused id. */
static void task_label(struct cx *c, size_t ti)
{
    putc('"', c->out);
    task_name_chars(c, ti);
    fprintf(c->out, " #%llu", (unsigned long long)c->m->tasks[ti].id);
    if (c->ordinal[ti])
        fprintf(c->out, " (%u)", c->ordinal[ti]);
    putc('"', c->out);
}

static void put_strid(struct cx *c, uint32_t id)
{
    frd_json_strid(c->out, c->d, id);
}

static const char *result_name(int r)
{
    return r == FRD_POLL_READY ? "ready" : r == FRD_POLL_PENDING ? "pending" : "running";
}

static int cmp_u64_idx(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b; /* {id, instance} pairs */
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Number the instances of each reused task id (1, 2, ...) in order of appearance. */
static int number_instances(struct cx *c)
{
    size_t n = c->m->ntasks;
    c->ordinal = calloc(n ? n : 1, sizeof(*c->ordinal));
    uint64_t *pairs = malloc((n ? n : 1) * 2 * sizeof(*pairs));
    if (!c->ordinal || !pairs) {
        free(pairs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        pairs[2 * i] = c->m->tasks[i].id;
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, n, 2 * sizeof(*pairs), cmp_u64_idx);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && pairs[2 * j] == pairs[2 * i])
            j++;
        for (size_t k = i; j - i > 1 && k < j; k++)
            c->ordinal[pairs[2 * k + 1]] = (uint32_t)(k - i + 1);
        i = j;
    }
    free(pairs);
    return 0;
}

static int cmp_wref(const void *a, const void *b)
{
    const struct wref *x = a, *y = b;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return x->wake < y->wake ? -1 : x->wake > y->wake;
}

/* Every wake of every task, ordered by thread, then time. */
static struct wref *sorted_wakes(const struct frd_model *m, size_t *count)
{
    size_t n = 0;
    for (size_t ti = 0; ti < m->ntasks; ti++)
        n += m->tasks[ti].nwakes;
    struct wref *w = malloc((n ? n : 1) * sizeof(*w));
    if (!w)
        return NULL;
    size_t k = 0;
    for (size_t ti = 0; ti < m->ntasks; ti++)
        for (size_t i = 0; i < m->tasks[ti].nwakes; i++)
            w[k++] = (struct wref){m->tasks[ti].wakes[i].ns, m->tasks[ti].wakes[i].thread,
                                   (int32_t)ti, (int32_t)i};
    qsort(w, n, sizeof(*w), cmp_wref);
    *count = n;
    return w;
}

static void metadata_events(struct cx *c)
{
    FILE *out = c->out;
    char b[64];
    fprintf(out, "\n{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"tid\": 0, "
            "\"args\": {\"name\": \"workers\"}}", PID_WORKERS);
    fprintf(out, ",\n{\"ph\": \"M\", \"name\": \"process_sort_index\", \"pid\": %d, \"tid\": 0, "
            "\"args\": {\"sort_index\": 1}}", PID_WORKERS);
    fprintf(out, ",\n{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"tid\": 0, "
            "\"args\": {\"name\": \"tasks\"}}", PID_TASKS);
    fprintf(out, ",\n{\"ph\": \"M\", \"name\": \"process_sort_index\", \"pid\": %d, \"tid\": 0, "
            "\"args\": {\"sort_index\": 2}}", PID_TASKS);
    for (size_t i = 0; i < c->d->nthreads; i++) {
        fprintf(out, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": %u, "
                "\"args\": {\"name\": ", PID_WORKERS, tid_of(c, (uint32_t)i));
        frd_json_cstr(out, frd_thread_label(c->m, (uint32_t)i, b, sizeof(b)));
        fprintf(out, "}},\n{\"ph\": \"M\", \"name\": \"thread_sort_index\", \"pid\": %d, "
                "\"tid\": %u, \"args\": {\"sort_index\": %zu}}", PID_WORKERS,
                tid_of(c, (uint32_t)i), i);
    }
    for (size_t ti = 0; ti < c->m->ntasks; ti++) {
        fprintf(out, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": %u, "
                "\"args\": {\"name\": ", PID_TASKS, task_tid(ti));
        task_label(c, ti);
        fprintf(out, "}},\n{\"ph\": \"M\", \"name\": \"thread_sort_index\", \"pid\": %d, "
                "\"tid\": %u, \"args\": {\"sort_index\": %zu}}", PID_TASKS, task_tid(ti), ti);
    }
}

/* The args of poll @k of instance @ti; @thread: also name the worker it ran on. */
static void poll_args(struct cx *c, size_t ti, size_t k, int thread)
{
    const struct frd_task *t = &c->m->tasks[ti];
    const struct frd_poll *p = &t->polls[k];
    fprintf(c->out, ", \"args\": {\"task\": %llu, \"instance\": %zu, \"poll\": %zu, "
            "\"result\": \"%s\", \"await\": ",
            (unsigned long long)t->id, ti, k + 1, result_name(p->result));
    put_strid(c, p->await_str);
    if (p->ready_from != FRD_READY_UNKNOWN)
        fprintf(c->out, ", \"sched_delay_ns\": %lld",
                (long long)(p->begin_ns - frd_poll_ready_ns(t, p)));
    else
        fputs(", \"sched_delay_ns\": null", c->out);
    if (thread) {
        char b[64];
        fputs(", \"thread\": ", c->out);
        frd_json_cstr(c->out, frd_thread_label(c->m, p->thread, b, sizeof(b)));
    }
    putc('}', c->out);
}

/* The worker tracks: polls, parked spans, then wake slices (after the polls,
 * so that a reader ordering equal times by file position nests them). */
static void worker_tracks(struct cx *c, const struct wref *w, size_t nw)
{
    const struct frd_model *m = c->m;
    for (uint32_t i = 0; i < c->d->nthreads; i++) {
        const struct frd_worker *wk = &m->workers[i];
        uint32_t tid = tid_of(c, i);
        for (size_t k = 0; k < wk->npolls; k++) {
            size_t ti = (size_t)wk->polls[k].task, pk = (size_t)wk->polls[k].poll;
            const struct frd_poll *p = &m->tasks[ti].polls[pk];
            ev_open(c, 'X', "worker", PID_WORKERS, tid, p->begin_ns);
            put_dur(c, p->end_ns - p->begin_ns);
            fputs(", \"name\": \"", c->out);
            task_name_chars(c, ti);
            putc('"', c->out);
            poll_args(c, ti, pk, 0);
            putc('}', c->out);
        }
        for (size_t k = 0; k < wk->nparked; k++) {
            ev_open(c, 'X', "park", PID_WORKERS, tid, wk->parked[k].begin_ns);
            put_dur(c, wk->parked[k].end_ns - wk->parked[k].begin_ns);
            fputs(", \"name\": \"parked\"}", c->out);
        }
    }
    /* Wake slices, thread by thread; p and z walk the thread's polls and
     * parked spans in step, so that a wake slice ends before the next one
     * of those begins, or with the poll it is in. */
    for (size_t a = 0; a < nw;) {
        uint32_t th = w[a].thread;
        const struct frd_worker *wk = &m->workers[th];
        size_t p = 0, z = 0;
        for (; a < nw && w[a].thread == th; a++) {
            int64_t ns = w[a].ns, end = ns + WAKE_SLICE_NS;
            while (p < wk->npolls &&
                   m->tasks[wk->polls[p].task].polls[wk->polls[p].poll].end_ns < ns)
                p++;
            if (p < wk->npolls) {
                const struct frd_poll *q = &m->tasks[wk->polls[p].task].polls[wk->polls[p].poll];
                /* inside poll q: end with it; before it: end before it begins */
                int64_t lim = q->begin_ns <= ns ? q->end_ns : q->begin_ns;
                if (lim < end)
                    end = lim;
            }
            while (z < wk->nparked && wk->parked[z].begin_ns < ns)
                z++;
            if (z < wk->nparked && wk->parked[z].begin_ns < end)
                end = wk->parked[z].begin_ns;
            if (a + 1 < nw && w[a + 1].thread == th && w[a + 1].ns > ns && w[a + 1].ns < end)
                end = w[a + 1].ns;
            const struct frd_task *t = &m->tasks[w[a].task];
            const struct frd_wake *wa = &t->wakes[w[a].wake];
            ev_open(c, 'X', "worker", PID_WORKERS, tid_of(c, th), ns);
            put_dur(c, end - ns);
            fputs(", \"name\": \"wake ", c->out);
            task_name_chars(c, (size_t)w[a].task);
            fprintf(c->out, "\", \"args\": {\"task\": %llu, \"instance\": %d, "
                    "\"during_own_poll\": %s, \"while_idle\": %s, \"by_task\": ",
                    (unsigned long long)t->id, w[a].task, wa->during_own_poll ? "true" : "false",
                    wa->while_idle ? "true" : "false");
            uint64_t by_task = wa->by_inst != FRD_NONE ? m->tasks[wa->by_inst].id : 0;
            if (by_task)
                fprintf(c->out, "%llu", (unsigned long long)by_task);
            else
                fputs("null", c->out);
            fputs("}}", c->out);
        }
    }
}

/* A span on a task's track (await or runnable); nothing if it is empty (a
 * task woken during its poll and polled again in the same nanosecond). */
static void task_span(struct cx *c, size_t ti, const char *cat, int64_t a, int64_t b,
                      const char *name, uint32_t label)
{
    if (b <= a)
        return;
    ev_open(c, 'X', cat, PID_TASKS, task_tid(ti), a);
    put_dur(c, b - a);
    fputs(", \"name\": \"", c->out);
    fputs(name, c->out);
    size_t n = 0;
    const char *s = frd_string(c->d, label, &n);
    if (s) {
        putc(' ', c->out);
        frd_json_chars(c->out, s, n);
    }
    fputs("\"", c->out);
    if (strcmp(cat, "await") == 0) {
        fputs(", \"args\": {\"label\": ", c->out);
        put_strid(c, label);
        putc('}', c->out);
    }
    putc('}', c->out);
}

/* The wait after a pending poll ending at @from: await until @ready (when it
 * became runnable, INT64_MIN unknown), runnable from then until @until. */
static void wait_spans(struct cx *c, size_t ti, int64_t from, uint32_t label, int64_t ready,
                       int64_t until)
{
    if (ready != INT64_MIN && ready >= from && ready <= until) {
        task_span(c, ti, "await", from, ready, label ? "await" : "waiting", label);
        task_span(c, ti, "runnable", ready, until, "runnable", 0);
    } else {
        task_span(c, ti, "await", from, until, label ? "await" : "waiting", label);
    }
}

static void task_tracks(struct cx *c)
{
    const struct frd_model *m = c->m;
    char b[64];
    for (size_t ti = 0; ti < m->ntasks; ti++) {
        const struct frd_task *t = &m->tasks[ti];
        uint32_t tid = task_tid(ti);
        if (t->spawn_seen) {
            ev_open(c, 'i', "lifecycle", PID_TASKS, tid, frd_task_spawn_ns(t));
            fputs(", \"s\": \"t\", \"name\": \"spawn\", \"args\": {\"parent\": ", c->out);
            uint64_t parent = frd_task_parent(m, t);
            if (parent)
                fprintf(c->out, "%llu", (unsigned long long)parent);
            else
                fputs("null", c->out);
            fputs(", \"thread\": ", c->out);
            frd_json_cstr(c->out, frd_thread_label(m, t->spawn_thread, b, sizeof(b)));
            fputs("}}", c->out);
        }
        for (size_t k = 0; k < t->npolls; k++) {
            const struct frd_poll *p = &t->polls[k];
            if (k == 0 && t->spawn_seen)
                task_span(c, ti, "runnable", frd_task_spawn_ns(t), p->begin_ns, "runnable", 0);
            else if (k > 0 && t->polls[k - 1].result == FRD_POLL_PENDING)
                wait_spans(c, ti, t->polls[k - 1].end_ns, t->polls[k - 1].await_str,
                           frd_poll_ready_ns(t, p), p->begin_ns);
            ev_open(c, 'X', "task", PID_TASKS, tid, p->begin_ns);
            put_dur(c, p->end_ns - p->begin_ns);
            fputs(", \"name\": \"poll\"", c->out);
            poll_args(c, ti, k, 1);
            putc('}', c->out);
        }
        int64_t until = t->dropped ? t->drop_ns : m->end_ns;
        if (t->npolls == 0 && t->spawn_seen) {
            task_span(c, ti, "runnable", frd_task_spawn_ns(t), until, "runnable", 0);
        } else if (t->npolls && t->polls[t->npolls - 1].result == FRD_POLL_PENDING) {
            const struct frd_poll *p = &t->polls[t->npolls - 1];
            int64_t ready = t->state == FRD_TASK_RUNNABLE ? frd_task_ready_ns(t) : INT64_MIN;
            wait_spans(c, ti, p->end_ns, p->await_str, ready, until);
        }
        if (t->dropped) {
            ev_open(c, 'i', "lifecycle", PID_TASKS, tid, t->drop_ns);
            fputs(", \"s\": \"t\", \"name\": \"drop\"}", c->out);
        }
    }
}

static void finding_events(struct cx *c, const struct frd_findings *f)
{
    const struct frd_model *m = c->m;
    char b[64];
    for (size_t i = 0; f && i < f->n; i++) {
        const struct frd_finding *x = &f->v[i];
        uint32_t tid = x->task != FRD_NONE ? task_tid((size_t)x->task) : 0;
        ev_open(c, 'i', "finding", PID_TASKS, tid, x->at_ns);
        fprintf(c->out, ", \"s\": \"p\", \"name\": \"%s\", \"args\": {\"kind\": \"%s\", \"task\": ",
                frd_kind_name(x->kind), frd_kind_name(x->kind));
        if (x->task != FRD_NONE) {
            fprintf(c->out, "%llu, \"instance\": %d, \"name\": ",
                    (unsigned long long)m->tasks[x->task].id, x->task);
            put_strid(c, m->tasks[x->task].name);
        } else {
            fputs("null, \"instance\": null, \"name\": null", c->out);
        }
        fputs(", \"thread\": ", c->out);
        frd_json_cstr(c->out, frd_thread_label(m, x->thread, b, sizeof(b)));
        fprintf(c->out, ", \"duration_ns\": %lld, \"message\": ", (long long)x->duration_ns);
        frd_json_cstr(c->out, x->message);
        frd_json_finding_facts(c->out, m, x);
        fputs("}}", c->out);
    }
}

static void crash_event(struct cx *c)
{
    const struct frd_crash *k = &c->d->crash;
    const struct frd_model *m = c->m;
    char b[64];
    if (!k->present)
        return;
    const char *sig = frd_signal_name((int)k->signo, b, sizeof(b));
    ev_open(c, 'i', "crash", PID_WORKERS, k->tid, k->ns);
    fputs(", \"s\": \"g\", \"name\": \"crash ", c->out);
    frd_json_chars(c->out, sig, strlen(sig));
    fprintf(c->out, "\", \"args\": {\"signal\": %u, \"signal_name\": ", k->signo);
    frd_json_cstr(c->out, sig);
    fprintf(c->out, ", \"signal_code\": %d, \"fault_addr\": ", k->code);
    if (k->code > 0 && k->code != 0x80)
        fprintf(c->out, "\"0x%llx\"", (unsigned long long)k->fault_addr);
    else
        fputs("null", c->out); /* a sent signal has a sender, not an address */
    char origin[128];
    fputs(", \"origin\": ", c->out);
    frd_json_cstr(c->out, frd_crash_origin(k, origin, sizeof(origin)));
    fprintf(c->out, ", \"thread\": %u, \"thread_name\": ", k->tid);
    const char *tname = NULL;
    for (size_t i = 0; i < c->d->nthreads; i++)
        if (c->d->threads[i].tid == k->tid && c->d->threads[i].name[0])
            tname = c->d->threads[i].name;
    frd_json_cstr(c->out, tname);
    int32_t ti = k->task ? frd_model_task_at(m, k->task, k->ns) : FRD_NONE;
    fputs(", \"task\": ", c->out);
    if (k->task)
        fprintf(c->out, "%llu", (unsigned long long)k->task);
    else
        fputs("null", c->out);
    fputs(", \"task_name\": ", c->out);
    if (ti != FRD_NONE)
        put_strid(c, m->tasks[ti].name);
    else
        fputs("null", c->out);
    fputs(", \"task_chain\": ", c->out);
    char chain[512];
    frd_json_cstr(c->out, ti != FRD_NONE ? frd_task_chain(m, ti, chain, sizeof(chain)) : NULL);
    fputs("}}", c->out);
}

static void flow(struct cx *c, unsigned long long id, uint32_t from_thread, int64_t from_ns,
                 uint32_t to_thread, int64_t to_ns)
{
    ev_open(c, 's', "worker", PID_WORKERS, tid_of(c, from_thread), from_ns);
    fprintf(c->out, ", \"id\": %llu, \"name\": \"wake\"}", id);
    ev_open(c, 'f', "worker", PID_WORKERS, tid_of(c, to_thread), to_ns);
    fprintf(c->out, ", \"bp\": \"e\", \"id\": %llu, \"name\": \"wake\"}", id);
}

/* A flow per wake that caused a poll: the wake that made the task runnable
 * after a pending poll, or the wake that arrived during a pending poll (the
 * task is polled again at once). Return: the number of flows. */
static unsigned long long wake_flows(struct cx *c)
{
    const struct frd_model *m = c->m;
    unsigned long long id = 0;
    for (size_t ti = 0; ti < m->ntasks; ti++) {
        const struct frd_task *t = &m->tasks[ti];
        size_t wp = 0;
        for (size_t k = 0; k < t->npolls; k++) {
            const struct frd_poll *p = &t->polls[k];
            int32_t wi = frd_poll_ready_wake(p);
            if (wi == FRD_NONE && k > 0 && t->polls[k - 1].woken_during &&
                t->polls[k - 1].result == FRD_POLL_PENDING) {
                const struct frd_poll *q = &t->polls[k - 1];
                for (; wp < t->nwakes && t->wakes[wp].ns <= q->end_ns; wp++)
                    if (t->wakes[wp].during_own_poll && t->wakes[wp].ns >= q->begin_ns)
                        wi = (int32_t)wp;
            }
            if (wi == FRD_NONE || (size_t)wi >= t->nwakes)
                continue;
            const struct frd_wake *w = &t->wakes[wi];
            flow(c, ++id, w->thread, w->ns, p->thread, p->begin_ns);
        }
    }
    return id;
}

/* Lock waits as async slices on the waiting task's track. */
static void lock_waits(struct cx *c)
{
    const struct frd_locks *l = &c->m->locks;
    for (size_t i = 0; i < l->nwaits; i++) {
        const struct frd_lock_wait *w = &l->waits[i];
        int64_t end = w->end_ns != INT64_MIN ? w->end_ns : w->open ? c->m->end_ns : INT64_MIN;
        if (end == INT64_MIN)
            continue; /* given up: no end to draw */
        const struct frd_lock *k = &l->v[w->lock];
        for (int e = 0; e < 2; e++) {
            ev_open(c, e ? 'e' : 'b', "lock", PID_TASKS, task_tid((size_t)w->task),
                    e ? end : w->begin_ns);
            fprintf(c->out, ", \"id\": %zu, \"name\": \"wait ", i + 1);
            size_t n = 0;
            const char *s = frd_string(c->d, k->name, &n);
            if (s)
                frd_json_chars(c->out, s, n);
            else
                fprintf(c->out, "0x%llx", (unsigned long long)k->id);
            putc('"', c->out);
            if (!e) {
                fprintf(c->out, ", \"args\": {\"lock\": %llu, \"granted\": %s}",
                        (unsigned long long)k->id, w->end_ns != INT64_MIN ? "true" : "false");
            }
            putc('}', c->out);
        }
    }
}

/* The poll of task instance @ti running at @ns, else the first one that
 * begins after it; NULL if none. */
static const struct frd_poll *poll_from(const struct cx *c, int32_t ti, int64_t ns)
{
    const struct frd_task *t = &c->m->tasks[ti];
    size_t lo = 0, hi = t->npolls;
    while (lo < hi) { /* first poll that begins after ns */
        size_t mid = lo + (hi - lo) / 2;
        if (t->polls[mid].begin_ns <= ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && t->polls[lo - 1].end_ns >= ns)
        return &t->polls[lo - 1];
    return lo < t->npolls ? &t->polls[lo] : NULL;
}

/*
 * A flow per hand-over: from the holder's poll that released the lock to the
 * next holder's poll that ran with it (the one it was granted in, or its next
 * one: a runtime may record the grant from the releasing side). Both ends are
 * polls on the worker tracks; a release or grant with no such poll has no
 * flow.
 */
static void lock_flows(struct cx *c, unsigned long long id)
{
    const struct frd_locks *l = &c->m->locks;
    for (size_t i = 0; i < l->nwaits; i++) {
        const struct frd_lock_wait *w = &l->waits[i];
        if (w->after_task == FRD_NONE || w->end_ns == INT64_MIN)
            continue;
        const struct frd_poll *from = poll_from(c, w->after_task, w->after_ns);
        const struct frd_poll *to = poll_from(c, w->task, w->end_ns);
        if (!from || !to || from->begin_ns > w->after_ns || to->begin_ns < from->begin_ns ||
            (to->thread == from->thread && to->begin_ns == from->begin_ns))
            continue;
        ev_open(c, 's', "worker", PID_WORKERS, tid_of(c, from->thread), from->begin_ns);
        fprintf(c->out, ", \"id\": %llu, \"name\": \"lock handover\"}", ++id);
        ev_open(c, 'f', "worker", PID_WORKERS, tid_of(c, to->thread), to->begin_ns);
        fprintf(c->out, ", \"bp\": \"e\", \"id\": %llu, \"name\": \"lock handover\"}", id);
    }
}

static void metadata_object(struct cx *c)
{
    const struct frd_dump *d = c->d;
    FILE *out = c->out;
    char b[64];
    int signo = d->crash.present ? (int)d->crash.signo : (int)d->hdr.signo;
    fprintf(out, "\"metadata\": {\"source\": \"flightrec\", \"pid\": %u, \"reason\": ",
            d->proc.present ? d->proc.pid : d->hdr.pid);
    frd_json_cstr(out, d->hdr.reason);
    fprintf(out, ", \"trigger\": \"%s\", \"signal\": %d, \"signal_name\": ",
            frd_trigger_name(d->hdr.trigger), signo);
    frd_json_cstr(out, signo ? frd_signal_name(signo, b, sizeof(b)) : NULL);
    fputs(", \"exe\": ", out);
    if (d->proc.present)
        frd_json_str(out, d->proc.exe.p, d->proc.exe.len);
    else
        fputs("null", out);
    fputs(", \"host\": ", out);
    if (d->proc.present)
        frd_json_str(out, d->proc.host.p, d->proc.host.len);
    else
        fputs("null", out);
    fprintf(out, ", \"dump_realtime_ns\": %llu, \"start_ns\": %lld, \"window_ns\": %lld, "
            "\"tasks\": %zu, \"threads\": %zu, \"whole\": %s}",
            (unsigned long long)d->hdr.realtime_ns, (long long)c->m->start_ns,
            (long long)(c->m->end_ns - c->m->start_ns), c->m->ntasks, d->nthreads,
            d->damaged ? "false" : "true");
}

int frd_chrome_export(FILE *out, const struct frd_view *v)
{
    struct cx c = {.out = out, .m = v->m, .d = v->d};
    size_t nw = 0;
    struct wref *w = NULL;
    if (number_instances(&c) < 0 || !(w = sorted_wakes(v->m, &nw))) {
        free(c.ordinal);
        return -ENOMEM;
    }
    fputs("{\"displayTimeUnit\": \"ns\", \"traceEvents\": [", out);
    metadata_events(&c);
    worker_tracks(&c, w, nw);
    task_tracks(&c);
    finding_events(&c, v->f);
    lock_waits(&c);
    crash_event(&c);
    lock_flows(&c, wake_flows(&c));
    fputs("\n],\n", out);
    metadata_object(&c);
    fputs("}\n", out);
    free(w);
    free(c.ordinal);
    return ferror(out) ? -EIO : 0;
}
