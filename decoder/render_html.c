/*
 * decoder/render_html.c - `flightrec report`: one self-contained HTML page
 * with the crash summary, the findings and a zoomable timeline.
 *
 * The page is a template (decoder/report/report.html and report.js, compiled
 * into the binary by decoder/report/embed.py) with two holes: @@SCRIPT@@ gets
 * the JavaScript and @@DATA@@ one JSON object describing the dump, which the
 * script draws. The JSON comes from the model (tasks, polls, wakes, workers),
 * never from the merged event list. Its shape is documented at the top of
 * report.js, the one reader of it.
 *
 * Everything from the dump is hostile: strings go through frd_json_str, and
 * the JSON is written through a filter that turns every '<', '>' and '&' into
 * \u00XX. Those bytes can only occur inside JSON strings, so JSON.parse reads
 * the same object, while no task name can close the <script> element or open
 * an HTML comment in it. The script puts dump text on the page only as text
 * (textContent, canvas fillText), never as markup.
 *
 * Big dumps: each lane keeps at most lim->max_polls polls and as many parked
 * spans (the polls findings are about, long polls and the crashing task's
 * first, then the latest), the page at most lim->max_tasks task rows (tasks
 * with findings and the crashing task's chain first, then the latest) and
 * FRD_REPORT_MAX_FINDINGS findings, and says what it left out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "render.h"

/* The most findings listed on the page (the list is sorted by severity). */
#ifndef FRD_REPORT_MAX_FINDINGS
#define FRD_REPORT_MAX_FINDINGS 2000u
#endif

/* Generated from decoder/report/ by embed.py. */
extern const unsigned char frd_report_html[], frd_report_js[];
extern const size_t frd_report_html_len, frd_report_js_len;

/* ---- JSON safe inside <script> ------------------------------------------ */

static ssize_t esc_write(void *cookie, const char *buf, size_t n)
{
    FILE *out = cookie;
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '<' && buf[i] != '>' && buf[i] != '&')
            continue;
        if (fwrite(buf + from, 1, i - from, out) != i - from ||
            fprintf(out, "\\u%04x", (unsigned char)buf[i]) < 0)
            return -1;
        from = i + 1;
    }
    if (fwrite(buf + from, 1, n - from, out) != n - from)
        return -1;
    return (ssize_t)n;
}

/* ---- what goes on the page ----------------------------------------------- */

struct plan {
    const struct frd_view *v;
    int32_t *lane;       /* per thread: lane index, or -1 (no events) */
    uint32_t *lane_thr;  /* per lane: thread index */
    size_t nlanes;
    int32_t *row;        /* per task instance: row on the page, or -1 */
    size_t nrows;
    char *flagged;       /* per task instance: has a finding or is the crash chain */
    int32_t *finding_of; /* per task instance: its first finding, or -1 */
    int32_t *next_of;    /* per finding: the task's next finding, or -1 */
    int32_t *name_of;    /* per string (index into d->strings): index into names, or -1 */
    uint32_t *names;     /* string ids of the names on the page, in order */
    size_t nnames;
};

static long string_index(const struct frd_dump *d, uint32_t id)
{
    size_t lo = 0, hi = d->nstrings;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->strings[mid].id == id)
            return (long)mid;
        if (d->strings[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Index of string @id in the page's name table, -1 if none. */
static int32_t str_ref(struct plan *p, uint32_t id)
{
    long s = string_index(p->v->d, id);
    if (s < 0)
        return -1;
    if (p->name_of[s] < 0) {
        p->name_of[s] = (int32_t)p->nnames;
        p->names[p->nnames++] = p->v->d->strings[s].id;
    }
    return p->name_of[s];
}

/* Index of task instance @ti's name in the page's name table, -1 if none. */
static int32_t name_ref(struct plan *p, int32_t ti)
{
    return str_ref(p, p->v->m->tasks[ti].name);
}

static int32_t crash_task(const struct frd_view *v)
{
    const struct frd_crash *c = &v->d->crash;
    return c->present && c->task ? frd_model_task_at(v->m, c->task, c->ns) : FRD_NONE;
}

static int plan_build(struct plan *p, const struct frd_view *v, const struct frd_report_limits *lim)
{
    const struct frd_model *m = v->m;
    const struct frd_dump *d = v->d;
    memset(p, 0, sizeof(*p));
    p->v = v;
    p->lane = malloc((d->nthreads + 1) * sizeof(*p->lane));
    p->lane_thr = malloc((d->nthreads + 1) * sizeof(*p->lane_thr));
    p->row = malloc((m->ntasks + 1) * sizeof(*p->row));
    p->flagged = calloc(m->ntasks + 1, 1);
    p->finding_of = malloc((m->ntasks + 1) * sizeof(*p->finding_of));
    p->next_of = malloc(((v->f ? v->f->n : 0) + 1) * sizeof(*p->next_of));
    p->name_of = malloc((d->nstrings + 1) * sizeof(*p->name_of));
    p->names = malloc((d->nstrings + 1) * sizeof(*p->names));
    if (!p->lane || !p->lane_thr || !p->row || !p->flagged || !p->name_of || !p->names ||
        !p->finding_of || !p->next_of)
        return -ENOMEM;
    for (size_t s = 0; s < d->nstrings; s++)
        p->name_of[s] = -1;

    /* Lanes: threads that polled or parked (the workers), then the others
     * that left events (they send wakes). */
    for (size_t i = 0; i < d->nthreads; i++)
        p->lane[i] = -1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < d->nthreads; i++) {
            int worker = m->workers[i].npolls || m->workers[i].nparked;
            if (p->lane[i] >= 0 || (pass == 0 && !worker) || !d->threads[i].nevents)
                continue;
            p->lane[i] = (int32_t)p->nlanes;
            p->lane_thr[p->nlanes++] = (uint32_t)i;
        }
    }

    /* Rows: tasks with findings and the crash chain, then the latest. */
    for (size_t ti = 0; ti < m->ntasks; ti++)
        p->finding_of[ti] = -1;
    for (size_t i = v->f ? v->f->n : 0; i-- > 0;) {
        int32_t ti = v->f->v[i].task;
        p->next_of[i] = -1;
        if (ti == FRD_NONE)
            continue;
        p->flagged[ti] = 1;
        p->next_of[i] = p->finding_of[ti];
        p->finding_of[ti] = (int32_t)i;
        for (size_t k = 0; k < v->f->v[i].ncycle; k++) /* a deadlock's whole cycle */
            p->flagged[v->f->v[i].cycle[k].task] = 1;
    }
    for (int32_t ti = crash_task(v), depth = 0; ti != FRD_NONE && depth < 16; depth++) {
        p->flagged[ti] = 1;
        ti = m->tasks[ti].parent_inst;
    }
    size_t keep = 0;
    for (size_t ti = 0; ti < m->ntasks; ti++) {
        p->row[ti] = -1;
        if (p->flagged[ti] && keep < lim->max_tasks) {
            p->row[ti] = 0;
            keep++;
        }
    }
    for (size_t ti = m->ntasks; ti-- > 0 && keep < lim->max_tasks;) {
        if (p->row[ti] < 0) {
            p->row[ti] = 0;
            keep++;
        }
    }
    for (size_t ti = 0; ti < m->ntasks; ti++)
        if (p->row[ti] == 0)
            p->row[ti] = (int32_t)p->nrows++;
    return 0;
}

static void plan_free(struct plan *p)
{
    free(p->lane);
    free(p->lane_thr);
    free(p->row);
    free(p->flagged);
    free(p->finding_of);
    free(p->next_of);
    free(p->name_of);
    free(p->names);
}

static long long rel(const struct frd_model *m, int64_t ns)
{
    return (long long)(ns - m->start_ns);
}

/*
 * Which of a lane's @n polls to show, at most @max: the important ones
 * (@important says which) first, the latest first among them, then the
 * latest of the rest. Marks @keep; returns how many.
 */
static size_t pick(char *keep, size_t n, size_t max, const char *important)
{
    size_t k = 0;
    if (n <= max) {
        memset(keep, 1, n);
        return n;
    }
    memset(keep, 0, n);
    for (size_t i = n; important && i-- > 0 && k < max;)
        if (important[i]) {
            keep[i] = 1;
            k++;
        }
    for (size_t i = n; i-- > 0 && k < max;)
        if (!keep[i]) {
            keep[i] = 1;
            k++;
        }
    return k;
}

/* ---- the JSON ------------------------------------------------------------ */

static void put_blob(FILE *j, const struct frd_blob *b)
{
    frd_json_str(j, b->p ? b->p : "", b->len);
}

static void put_dump(FILE *j, const struct frd_view *v)
{
    const struct frd_dump *d = v->d;
    const struct frd_model *m = v->m;
    char b[64];
    size_t events = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        events += d->threads[i].nevents;

    fputs("\"dump\": {\"path\": ", j);
    frd_json_cstr(j, d->path);
    fprintf(j, ", \"whole\": %s, \"reason\": ", d->damaged ? "false" : "true");
    frd_json_cstr(j, d->hdr.reason);
    fprintf(j, ", \"trigger\": \"%s\", \"signal_name\": ", frd_trigger_name(d->hdr.trigger));
    frd_json_cstr(j, d->hdr.signo ? frd_signal_name((int)d->hdr.signo, b, sizeof(b)) : NULL);
    time_t secs = (time_t)(d->hdr.realtime_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (gmtime_r(&secs, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(j, ", \"written\": \"%s.%03u UTC\", \"dump_seq\": %llu", when,
            (unsigned)(d->hdr.realtime_ns / 1000000u % 1000u),
            (unsigned long long)d->hdr.dump_seq);
    fprintf(j, ", \"pid\": %u", d->proc.present ? d->proc.pid : d->hdr.pid);
    if (d->proc.present) {
        fputs(", \"executable\": ", j);
        put_blob(j, &d->proc.exe);
        fputs(", \"cmdline\": ", j);
        frd_json_args(j, &d->proc.cmdline);
        fputs(", \"host\": ", j);
        put_blob(j, &d->proc.host);
        fputs(", \"flightrec_version\": ", j);
        put_blob(j, &d->proc.version);
    }
    fprintf(j, ", \"window_ns\": %lld, \"events\": %zu, \"tasks\": %zu, \"threads\": %zu",
            (long long)(m->end_ns - m->start_ns), events, m->ntasks, d->nthreads);
    fputs(", \"errors\": [", j);
    for (size_t i = 0; i < d->nerrors; i++) {
        if (i)
            fputs(", ", j);
        frd_json_cstr(j, d->errors[i]);
    }
    fprintf(j, "], \"errors_all\": %zu}", d->errors_all);
}

static void put_task_ref(FILE *j, const struct plan *p, int32_t ti)
{
    const struct frd_task *t = &p->v->m->tasks[ti];
    fprintf(j, "{\"id\": \"%llu\", \"row\": %d, \"name\": ", (unsigned long long)t->id,
            p->row[ti]);
    frd_json_strid(j, p->v->d, t->name);
    putc('}', j);
}

static void put_crash(FILE *j, const struct plan *p)
{
    const struct frd_view *v = p->v;
    const struct frd_crash *c = &v->d->crash;
    char b[64];
    fputs(", \"crash\": ", j);
    if (!c->present) {
        fputs("null", j);
        return;
    }
    fputs("{\"signal_name\": ", j);
    frd_json_cstr(j, frd_signal_name((int)c->signo, b, sizeof(b)));
    char origin[128];
    fprintf(j, ", \"code\": %d, \"fault_addr\": ", c->code);
    if (c->code > 0 && c->code != 0x80)
        fprintf(j, "\"0x%llx\"", (unsigned long long)c->fault_addr);
    else
        fputs("null", j); /* a sent signal has a sender, not an address */
    fputs(", \"origin\": ", j);
    frd_json_cstr(j, frd_crash_origin(c, origin, sizeof(origin)));
    fprintf(j, ", \"at_ns\": %lld, \"tid\": %u", rel(v->m, c->ns), c->tid);
    const struct frd_thread *ct = frd_thread_by_tid(v->d, c->tid);
    int32_t lane = ct ? p->lane[ct - v->d->threads] : -1;
    const char *tname = ct ? ct->name : NULL;
    fprintf(j, ", \"lane\": %d, \"thread\": ", lane);
    frd_json_cstr(j, tname);
    fprintf(j, ", \"task_id\": \"%llu\", \"chain\": [", (unsigned long long)c->task);
    int32_t ti = crash_task(v);
    for (int depth = 0; ti != FRD_NONE && depth < 16; depth++) {
        if (depth)
            fputs(", ", j);
        put_task_ref(j, p, ti);
        ti = v->m->tasks[ti].parent_inst;
    }
    fputs("], \"backtrace\": [", j);
    for (size_t i = 0; i < v->nframes; i++) {
        const struct frd_frame *f = &v->frames[i];
        fprintf(j, "%s{\"ip\": \"0x%llx\", \"function\": ", i ? ", " : "",
                (unsigned long long)f->ip);
        frd_json_cstr(j, f->function[0] ? f->function : NULL);
        fputs(", \"file\": ", j);
        frd_json_cstr(j, f->file[0] ? f->file : NULL);
        fprintf(j, ", \"line\": %d, \"module\": ", f->line);
        frd_json_cstr(j, f->module[0] ? f->module : NULL);
        fprintf(j, ", \"offset\": \"0x%llx\"}", (unsigned long long)f->offset);
    }
    fputs("]}", j);
}

/* A poll kept before others when a lane is capped: a long one, one of the
 * crashing task, or one that a finding about its task is about: the last
 * poll before the finding starts and those up to the end of it. */
static int important_poll(const struct plan *p, const struct frd_poll_ref *r, int32_t crashed)
{
    const struct frd_model *m = p->v->m;
    const struct frd_task *t = &m->tasks[r->task];
    const struct frd_poll *po = &t->polls[r->poll];
    const struct frd_poll *next = (size_t)r->poll + 1 < t->npolls ? po + 1 : NULL;
    if (r->task == crashed || po->end_ns - po->begin_ns >= p->v->th->long_poll_ns)
        return 1;
    for (int32_t i = p->finding_of[r->task]; i >= 0; i = p->next_of[i]) {
        const struct frd_finding *x = &p->v->f->v[i];
        if (po->begin_ns <= x->at_ns + x->duration_ns + 1000 &&
            (po->end_ns >= x->at_ns || !next || next->begin_ns > x->at_ns))
            return 1;
    }
    return 0;
}

static int put_lanes(FILE *j, struct plan *p, const struct frd_report_limits *lim)
{
    const struct frd_view *v = p->v;
    const struct frd_model *m = v->m;
    size_t most = 1;
    for (size_t l = 0; l < p->nlanes; l++) {
        const struct frd_worker *w = &m->workers[p->lane_thr[l]];
        most = w->npolls > most ? w->npolls : most;
        most = w->nparked > most ? w->nparked : most;
    }
    char *keep = malloc(most), *important = malloc(most);
    if (!keep || !important) {
        free(keep);
        free(important);
        return -ENOMEM;
    }
    int32_t crashed = crash_task(v);
    fputs(", \"lanes\": [", j);
    for (size_t l = 0; l < p->nlanes; l++) {
        uint32_t th = p->lane_thr[l];
        const struct frd_thread *t = &v->d->threads[th];
        const struct frd_worker *w = &m->workers[th];
        fprintf(j, "%s\n{\"tid\": %u, \"name\": ", l ? "," : "", t->tid);
        frd_json_cstr(j, t->name[0] ? t->name : NULL);
        fprintf(j, ", \"events\": %zu, \"first_ns\": %lld, \"last_ns\": %lld, \"busy_ns\": %lld",
                t->nevents, rel(m, t->first_ns), rel(m, t->last_ns), (long long)w->busy_ns);
        /* where this ring's whole history starts (older events were lost) */
        if (!t->complete_head && t->covered_from_ns != INT64_MAX)
            fprintf(j, ", \"covered_from_ns\": %lld", rel(m, t->covered_from_ns));

        for (size_t i = 0; i < w->npolls; i++)
            important[i] = important_poll(p, &w->polls[i], crashed);
        size_t shown = pick(keep, w->npolls, lim->max_polls, important);
        fprintf(j, ", \"polls_total\": %zu, \"polls_shown\": %zu, \"polls\": [", w->npolls, shown);
        /* [row, name, begin, end, result, ready, wake lane] */
        int first = 1;
        for (size_t i = 0; i < w->npolls; i++) {
            if (!keep[i])
                continue;
            const struct frd_poll_ref *r = &w->polls[i];
            const struct frd_task *tk = &m->tasks[r->task];
            const struct frd_poll *po = &tk->polls[r->poll];
            int32_t wlane = -1;
            int64_t ready_ns = frd_poll_ready_ns(tk, po);
            long long ready = ready_ns == INT64_MIN ? -1 : rel(m, ready_ns);
            int32_t wi = frd_poll_ready_wake(po);
            if (wi != FRD_NONE && (size_t)wi < tk->nwakes) {
                const struct frd_wake *wk = &tk->wakes[wi];
                if (wk->thread < v->d->nthreads)
                    wlane = p->lane[wk->thread];
                ready = rel(m, wk->ns);
            }
            fprintf(j, "%s%d,%d,%lld,%lld,%d,%lld,%d", first ? "" : ",", p->row[r->task],
                    name_ref(p, r->task), rel(m, po->begin_ns), rel(m, po->end_ns), po->result,
                    ready, wlane);
            first = 0;
        }
        size_t parks = pick(keep, w->nparked, lim->max_polls, NULL);
        fprintf(j, "], \"parks_total\": %zu, \"parks_shown\": %zu, \"parks\": [", w->nparked,
                parks);
        first = 1;
        for (size_t i = 0; i < w->nparked; i++) {
            if (!keep[i])
                continue;
            fprintf(j, "%s%lld,%lld", first ? "" : ",", rel(m, w->parked[i].begin_ns),
                    rel(m, w->parked[i].end_ns));
            first = 0;
        }
        fputs("]}", j);
    }
    fputs("]", j);
    free(keep);
    free(important);
    return 0;
}

static void put_tasks(FILE *j, struct plan *p)
{
    const struct frd_model *m = p->v->m;
    /* [id, name, parent row, state, first, last, spawn, drop, polls, parent id] */
    fprintf(j, ", \"tasks_total\": %zu, \"tasks\": [", m->ntasks);
    int first = 1;
    for (size_t ti = 0; ti < m->ntasks; ti++) {
        if (p->row[ti] < 0)
            continue;
        const struct frd_task *t = &m->tasks[ti];
        int32_t parent = t->parent_inst != FRD_NONE ? p->row[t->parent_inst] : -1;
        fprintf(j, "%s\n[\"%llu\",%d,%d,\"%s\",%lld,%lld,%lld,%lld,%zu,\"%llu\"]",
                first ? "" : ",", (unsigned long long)t->id, name_ref(p, (int32_t)ti), parent,
                frd_task_state_name(t->state), rel(m, t->first_ns), rel(m, t->last_ns),
                t->spawn_seen ? rel(m, frd_task_spawn_ns(t)) : -1LL, t->dropped ? rel(m, t->drop_ns) : -1LL,
                (size_t)t->npolls, (unsigned long long)frd_task_parent(m, t));
        first = 0;
    }
    fputs("]", j);
}

static void put_findings(FILE *j, const struct plan *p)
{
    const struct frd_view *v = p->v;
    const struct frd_model *m = v->m;
    size_t n = v->f ? v->f->n : 0;
    fprintf(j, ", \"findings_total\": %zu, \"findings\": [", n);
    for (size_t i = 0; i < n && i < FRD_REPORT_MAX_FINDINGS; i++) {
        const struct frd_finding *x = &v->f->v[i];
        fprintf(j, "%s\n{\"kind\": \"%s\", \"row\": %d, \"task\": ", i ? "," : "",
                frd_kind_name(x->kind), x->task != FRD_NONE ? p->row[x->task] : -1);
        if (x->task != FRD_NONE)
            put_task_ref(j, p, x->task);
        else
            fputs("null", j);
        fprintf(j, ", \"lane\": %d, \"at_ns\": %lld, \"duration_ns\": %lld, \"message\": ",
                x->thread < v->d->nthreads ? p->lane[x->thread] : -1, rel(m, x->at_ns),
                (long long)x->duration_ns);
        frd_json_cstr(j, x->message);
        frd_json_finding_facts(j, m, x);
        if (x->ncycle) {
            fputs(", \"cycle_rows\": [", j);
            for (size_t k = 0; k < x->ncycle; k++)
                fprintf(j, "%s%d", k ? "," : "", p->row[x->cycle[k].task]);
            putc(']', j);
        }
        putc('}', j);
    }
    fputs("]", j);
}

/* Lock waits of the tasks on the page: flat [row, lock name, begin, end];
 * a wait still going ends at the end of the window, one given up is left out. */
static void put_lock_waits(FILE *j, struct plan *p)
{
    const struct frd_model *m = p->v->m;
    const struct frd_locks *l = &m->locks;
    fputs(", \"lock_waits\": [", j);
    int first = 1;
    for (size_t i = 0; i < l->nwaits; i++) {
        const struct frd_lock_wait *w = &l->waits[i];
        int64_t end = w->end_ns != INT64_MIN ? w->end_ns : w->open ? m->end_ns : INT64_MIN;
        if (end == INT64_MIN || p->row[w->task] < 0)
            continue;
        fprintf(j, "%s%d,%d,%lld,%lld", first ? "" : ",", p->row[w->task],
                str_ref(p, l->v[w->lock].name), rel(m, w->begin_ns), rel(m, end));
        first = 0;
    }
    fputs("]", j);
}

static int put_data(FILE *j, const struct frd_view *v, const struct frd_report_limits *lim)
{
    struct plan p;
    int r = plan_build(&p, v, lim);
    if (r == 0) {
        fputs("{", j);
        put_dump(j, v);
        fprintf(j, ", \"thresholds\": {\"starvation_ns\": %lld, \"long_poll_ns\": %lld, "
                   "\"hang_ns\": %lld}, \"limits\": {\"max_polls\": %zu, \"max_tasks\": %zu}",
                (long long)v->th->starvation_ns, (long long)v->th->long_poll_ns,
                (long long)v->th->hang_ns, lim->max_polls, lim->max_tasks);
        put_crash(j, &p);
        put_findings(j, &p);
        r = put_lanes(j, &p, lim);
    }
    if (r == 0) {
        put_tasks(j, &p);
        put_lock_waits(j, &p);
        /* last: the table of every name referenced above */
        fputs(", \"names\": [", j);
        for (size_t i = 0; i < p.nnames; i++) {
            if (i)
                fputs(", ", j);
            frd_json_strid(j, v->d, p.names[i]);
        }
        fputs("]}", j);
    }
    plan_free(&p);
    return r;
}

/* ---- the page ------------------------------------------------------------ */

int frd_html_report(FILE *out, const struct frd_view *v, const struct frd_report_limits *lim)
{
    const char *t = (const char *)frd_report_html, *end = t + frd_report_html_len;
    int r = 0;
    while (t < end && r == 0) {
        const char *hole = memmem(t, (size_t)(end - t), "@@", 2);
        const char *close = hole ? memmem(hole + 2, (size_t)(end - hole - 2), "@@", 2) : NULL;
        if (!close) {
            fwrite(t, 1, (size_t)(end - t), out);
            break;
        }
        fwrite(t, 1, (size_t)(hole - t), out);
        size_t n = (size_t)(close - hole - 2);
        if (n == 6 && memcmp(hole + 2, "SCRIPT", 6) == 0) {
            fwrite(frd_report_js, 1, frd_report_js_len, out);
        } else if (n == 4 && memcmp(hole + 2, "DATA", 4) == 0) {
            cookie_io_functions_t io = {.write = esc_write};
            FILE *j = fopencookie(out, "w", io);
            if (!j)
                return -ENOMEM;
            r = put_data(j, v, lim);
            if (fclose(j) != 0 && r == 0)
                r = -EIO;
        } else {
            fwrite(hole, 1, (size_t)(close + 2 - hole), out);
        }
        t = close + 2;
    }
    if (r == 0 && ferror(out))
        r = -EIO;
    return r;
}
