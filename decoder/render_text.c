/*
 * decoder/render_text.c - human-readable output: `info`, `tasks`, `timeline`
 * and `analyze` without --json. This is what a person reads after a crash, so
 * it names threads and tasks (`worker-1`, `task 42 "handle_request"`), shows
 * times in milliseconds from the start of the recording, and never prints a
 * raw byte from the dump without making it safe for the terminal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "render.h"

const char *frd_signal_name(int signo, char *buf, size_t len)
{
    const char *s = signo > 0 && signo < 65 ? sigabbrev_np(signo) : NULL;
    if (s)
        snprintf(buf, len, "SIG%s", s);
    else if (signo)
        snprintf(buf, len, "signal %d", signo);
    else
        snprintf(buf, len, "none");
    return buf;
}

/*
 * What the crash's si_code says about where the signal came from. A sent
 * signal (si_code <= 0: kill, raise, abort, sigqueue) has no fault address:
 * the recorder stored the sender's pid (low 32 bits) and uid (high 32 bits).
 * SI_KERNEL (0x80) faults (a general protection fault, a non-canonical
 * address) carry no usable address either.
 */
const char *frd_crash_origin(const struct frd_crash *c, char *buf, size_t len)
{
    static const struct {
        int code;
        const char *how;
    } sent[] = {
        { 0, "kill" }, { -1, "sigqueue" }, { -2, "a POSIX timer" }, { -3, "a message queue" },
        { -4, "asynchronous I/O" }, { -5, "SIGIO" }, { -6, "tkill, raise or abort" },
    };
    if (c->code <= 0) {
        const char *how = "a process";
        for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++)
            if (sent[i].code == c->code)
                how = sent[i].how;
        snprintf(buf, len, "sent by pid %u (uid %u) with %s", (unsigned)(c->fault_addr & 0xffffffffu),
                 (unsigned)(c->fault_addr >> 32), how);
    } else if (c->code == 0x80) {
        snprintf(buf, len, "raised by the kernel (SI_KERNEL): fault address unknown");
    } else {
        snprintf(buf, len, "fault address 0x%llx", (unsigned long long)c->fault_addr);
    }
    return buf;
}

static void put_task(FILE *out, const struct frd_model *m, int32_t ti)
{
    const struct frd_task *t = &m->tasks[ti];
    size_t n = 0;
    const char *s = frd_string(m->dump, t->name, &n);
    fprintf(out, "task %llu", (unsigned long long)t->id);
    if (s) {
        fputs(" \"", out);
        frd_text_str(out, s, n);
        putc('"', out);
    }
}

static void put_str(FILE *out, const struct frd_dump *d, uint32_t id)
{
    size_t n = 0;
    const char *s = frd_string(d, id, &n);
    if (s)
        frd_text_str(out, s, n);
    else
        fputs(id == FR_STRING_OVERFLOW ? "(string table full)" : "?", out);
}

const char *frd_task_chain(const struct frd_model *m, int32_t ti, char *buf, size_t len)
{
    size_t w = 0;
    buf[0] = 0;
    for (int depth = 0; ti != FRD_NONE && depth < 16 && w + 1 < len; depth++) {
        const struct frd_task *t = &m->tasks[ti];
        size_t n = 0;
        const char *s = frd_string(m->dump, t->name, &n);
        char name[64] = "";
        if (s) {
            size_t k = 0;
            for (size_t i = 0; i < n && k + 1 < sizeof(name); i++)
                name[k++] = (s[i] < 0x20 || s[i] == 0x7f || s[i] == '"') ? '?' : s[i];
            name[k] = 0;
        }
        int r = snprintf(buf + w, len - w, "%s%llu%s%s%s", depth ? " <- " : "",
                         (unsigned long long)t->id, s ? " \"" : "", name, s ? "\"" : "");
        if (r < 0 || (size_t)r >= len - w)
            break;
        w += (size_t)r;
        uint64_t parent = frd_task_far_parent(m, t);
        if (parent) {
            snprintf(buf + w, len - w, " <- %llu", (unsigned long long)parent);
            break;
        }
        ti = t->parent_inst;
    }
    return buf;
}

uint32_t *frd_task_kind_masks(const struct frd_view *v)
{
    uint32_t *mask = calloc(v->m->ntasks ? v->m->ntasks : 1, sizeof(*mask));
    for (size_t i = 0; mask && v->f && i < v->f->n; i++) {
        const struct frd_finding *x = &v->f->v[i];
        if (x->task >= 0 && (size_t)x->task < v->m->ntasks)
            mask[x->task] |= 1u << x->kind;
        for (size_t k = 0; k < x->ncycle; k++) /* every task of a deadlock */
            mask[x->cycle[k].task] |= 1u << x->kind;
    }
    return mask;
}

const char *frd_kinds_list(uint32_t mask, char *buf, size_t len)
{
    size_t w = 0;
    buf[0] = 0;
    for (int k = 0; k < FRD_KIND_COUNT; k++) {
        if (!(mask & (1u << k)))
            continue;
        int r = snprintf(buf + w, len - w, "%s%s", w ? "," : "", frd_kind_name(k));
        if (r < 0 || (size_t)r >= len - w)
            break;
        w += (size_t)r;
    }
    return buf;
}

const char *frd_task_findings(const struct frd_view *v, int32_t ti, char *buf, size_t len)
{
    size_t w = 0;
    buf[0] = 0;
    int seen[FRD_KIND_COUNT] = {0};
    for (size_t i = 0; v->f && i < v->f->n; i++) {
        const struct frd_finding *x = &v->f->v[i];
        int mine = x->task == ti;
        for (size_t k = 0; k < x->ncycle && !mine; k++) /* every task of a deadlock */
            mine = x->cycle[k].task == ti;
        if (!mine || seen[x->kind])
            continue;
        seen[x->kind] = 1;
        int r = snprintf(buf + w, len - w, "%s%s", w ? "," : "", frd_kind_name(x->kind));
        if (r < 0 || (size_t)r >= len - w)
            break;
        w += (size_t)r;
    }
    return buf;
}

static double rel_ms(const struct frd_model *m, int64_t ns)
{
    return (double)(ns - m->start_ns) / 1e6;
}

/* ---- info --------------------------------------------------------------- */

static void put_blob(FILE *out, const struct frd_blob *b)
{
    frd_text_str(out, b->p ? b->p : "", b->len);
}

/* One frame of a backtrace or a stall's stack: "  #N 0xIP in F at FILE:LINE
 * (MODULE+0xOFF)", each part only when the symbolizer found it. */
static void put_frame(FILE *out, size_t i, const struct frd_frame *f)
{
    fprintf(out, "  #%-2zu 0x%016llx", i, (unsigned long long)f->ip);
    if (i == 0 && f->ip < 4096)
        fputs(" (no code: a call through a NULL pointer)", out);
    if (f->function[0])
        fprintf(out, " in %s", f->function);
    if (f->file[0])
        fprintf(out, " at %s:%d", f->file, f->line);
    if (f->module[0])
        fprintf(out, " (%s+0x%llx)", f->module, (unsigned long long)f->offset);
    putc('\n', out);
}

/* The watchdog's stuck thread and stack (STALL), or what `recover` dropped. */
static void text_triggers(FILE *out, const struct frd_view *v)
{
    const struct frd_dump *d = v->d;
    const struct frd_model *m = v->m;
    char buf[512], b1[32], b2[32];
    if (d->recovery.present)
        fprintf(out, "\nrecovered from the shared rings a killed process left (%llu bytes): %u "
                "threads, %u pages kept, %u torn pages dropped\n",
                (unsigned long long)d->recovery.file_size, d->recovery.threads,
                d->recovery.pages_kept, d->recovery.pages_torn);
    const struct frd_stall *s = &d->stall;
    if (!s->present)
        return;
    const struct frd_thread *st = frd_thread_by_tid(d, s->tid);
    const char *tn = st ? st->name : "";
    fprintf(out, "\n%sstall%s     one poll has held thread %u \"", v->color ? "\033[1;33m" : "",
            v->color ? "\033[0m" : "", s->tid);
    frd_text_str(out, tn, strlen(tn));
    fprintf(out, "\" for %s so far (threshold %s), still running at the dump\n",
            frd_fmt_dur(s->sample_ns - s->begin_ns, b1, sizeof(b1)),
            frd_fmt_dur((int64_t)s->threshold_ns, b2, sizeof(b2)));
    int32_t ti = frd_model_task_at(m, s->task, s->sample_ns);
    if (ti != FRD_NONE)
        fprintf(out, "task      %s  (async call chain, innermost first)\n",
                frd_task_chain(m, ti, buf, sizeof(buf)));
    else
        fprintf(out, "task      %llu\n", (unsigned long long)s->task);
    if (!(s->flags & FR_STALL_STACK) || !s->nframes) {
        fputs("stack     not taken (the thread blocks the sampler signal, or none was free)\n",
              out);
        return;
    }
    fprintf(out, "stack     taken on the stuck thread at %.3f ms, %s into the poll\n",
            rel_ms(m, s->sample_ns), frd_fmt_dur(s->sample_ns - s->begin_ns, b1, sizeof(b1)));
    struct frd_frame *fr = calloc(s->nframes, sizeof(*fr));
    if (!fr)
        return;
    frd_symbolize(d, s->frames, s->nframes, fr);
    for (size_t i = 0; i < s->nframes; i++)
        put_frame(out, i, &fr[i]);
    free(fr);
}

/* Why dump @d lost its run delays (frd_run_delay_lost): recover writes them
 * from the .rings file, so a recovered dump lost them to a damaged ring. */
static const char *lost_why(const struct frd_dump *d)
{
    return d->hdr.trigger == FR_TRIGGER_RECOVERED ? "recovered from a damaged run-delay ring"
                                                  : "cut short";
}

/* "run delay" line: how long recorded threads waited for a CPU (the dump's
 * RUN_DELAY entries) in all, and the most between two readings. */
static void text_run_delays(FILE *out, const struct frd_dump *d, const struct frd_model *m)
{
    if (frd_run_delay_lost(d)) {
        fprintf(out, "run delay lost: the sampler ran but this dump has no RUN_DELAY section "
                "(%s); findings on a wait are withheld\n",
                lost_why(d));
        return;
    }
    if (!d->have_run_delay)
        return; /* an older recorder, or FLIGHTREC_RUN_DELAY=0 */
    uint64_t total = 0, worst = 0;
    uint32_t worst_tid = 0;
    for (size_t i = 0; i < d->nrun_delays; i++) {
        const struct frd_run_delay *e = &d->run_delays[i];
        total += e->delay_ns;
        if (e->delay_ns > worst) {
            worst = e->delay_ns;
            worst_tid = e->tid;
        }
    }
    char b1[32], b2[32];
    if (!total)
        fputs("run delay none: no recorded thread waited 1 ms or more for a CPU", out);
    else
        fprintf(out, "run delay threads waited %s for a CPU in all (the most between two "
                "readings: %s, thread %u)", frd_fmt_dur((int64_t)total, b1, sizeof(b1)),
                frd_fmt_dur((int64_t)worst, b2, sizeof(b2)), worst_tid);
    if (d->run_delay_from_ns != INT64_MIN)
        fprintf(out, "; known from %.3f ms on (older entries overwritten)",
                rel_ms(m, d->run_delay_from_ns));
    fputs("\n", out);
}

int frd_text_info(FILE *out, const struct frd_view *v)
{
    const struct frd_dump *d = v->d;
    const struct frd_model *m = v->m;
    char buf[512], b2[64];

    fprintf(out, "dump      %s (format %u, %llu bytes, %s)\n", d->path, d->hdr.version,
            (unsigned long long)d->file_size, d->damaged ? "DAMAGED: see errors" : "whole");
    time_t secs = (time_t)(d->hdr.realtime_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (gmtime_r(&secs, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(out, "reason    \"");
    frd_text_str(out, d->hdr.reason, strlen(d->hdr.reason));
    fprintf(out, "\" (%s", frd_trigger_name(d->hdr.trigger));
    if (d->hdr.signo)
        fprintf(out, ", %s", frd_signal_name((int)d->hdr.signo, b2, sizeof(b2)));
    fprintf(out, "), written %s.%03u UTC, dump #%llu of the process\n", when,
            (unsigned)(d->hdr.realtime_ns / 1000000u % 1000u),
            (unsigned long long)d->hdr.dump_seq);
    if (d->proc.present) {
        fprintf(out, "process   pid %u (ppid %u) ", d->proc.pid, d->proc.ppid);
        if (d->proc.exe.len)
            put_blob(out, &d->proc.exe);
        else
            fputs("(executable unknown)", out);
        fputs("\ncommand  ", out);
        /* arguments are NUL-separated */
        size_t pos = 0, len;
        for (const char *arg; (arg = frd_blob_next_arg(&d->proc.cmdline, &pos, &len));) {
            putc(' ', out);
            frd_text_str(out, arg, len);
        }
        fputs("\nhost      ", out);
        put_blob(out, &d->proc.host);
        fputs(", flightrec ", out);
        put_blob(out, &d->proc.version);
        putc('\n', out);
    } else {
        fprintf(out, "process   pid %u (no PROCESS section)\n", d->hdr.pid);
    }
    if (d->clock.present && d->clock.source == FR_CLOCK_TSC)
        if (d->clock.ns_per_tick > 0)
            fprintf(out, "clock     TSC at %.3f GHz (%u calibration pairs)\n",
                    1.0 / d->clock.ns_per_tick, d->clock.npairs);
        else
            fprintf(out, "clock     TSC, rate unknown (%u calibration pairs)\n", d->clock.npairs);
    else
        fprintf(out, "clock     %s\n", d->clock.present ? "CLOCK_MONOTONIC" : "missing");
    fprintf(out, "window    %s of history, %zu events, %zu task instances, %zu threads\n",
            frd_fmt_dur(m->end_ns - m->start_ns, b2, sizeof(b2)), m->nevents, m->ntasks,
            d->nthreads);

    text_run_delays(out, d, m);

    if (d->crash.present) {
        const struct frd_crash *c = &d->crash;
        char origin[128], crash_at[64];
        /* times count from the first event: a crash before it (or with no
         * event at all) is said so, not given a negative time */
        if (!m->nevents)
            snprintf(crash_at, sizeof(crash_at), "before any event was recorded");
        else if (c->ns < m->start_ns)
            snprintf(crash_at, sizeof(crash_at), "%.3f ms before the first event",
                     (double)(m->start_ns - c->ns) / 1e6);
        else
            snprintf(crash_at, sizeof(crash_at), "at %.3f ms", rel_ms(m, c->ns));
        fprintf(out, "\n%scrash%s     %s (code %d), %s, %s\n", v->color ? "\033[1;31m" : "",
                v->color ? "\033[0m" : "", frd_signal_name((int)c->signo, b2, sizeof(b2)),
                c->code, frd_crash_origin(c, origin, sizeof(origin)), crash_at);
        const struct frd_thread *ct = frd_thread_by_tid(d, c->tid);
        fprintf(out, "thread    %u ", c->tid);
        if (ct) {
            putc('"', out);
            frd_text_str(out, ct->name, strlen(ct->name));
            fputs("\"\n", out);
        } else {
            fputs("(no ring in the dump: it never recorded, or its ring was not whole)\n", out);
        }
        if (c->task) {
            int32_t ti = frd_model_task_at(m, c->task, c->ns);
            if (ti != FRD_NONE)
                fprintf(out, "task      %s  (async call chain, innermost first)\n",
                        frd_task_chain(m, ti, buf, sizeof(buf)));
            else
                fprintf(out, "task      %llu (no events of it left in the rings)\n",
                        (unsigned long long)c->task);
        } else if (ct) {
            fputs("task      none was being polled on the crashing thread\n", out);
        } else {
            fputs("task      unknown (the crashing thread has no ring)\n", out);
        }
        fputs(v->nframes                     ? "backtrace\n"
              : d->notes.p && d->notes.len ? "backtrace none captured (see notes)\n"
                                           : "backtrace none captured\n",
              out);
        for (size_t i = 0; i < v->nframes; i++) {
            put_frame(out, i, &v->frames[i]);
        }
    }

    text_triggers(out, v);
    if (d->notes.p && d->notes.len) {
        /* What the recorder could not capture, one note a line. */
        fputs("\nnotes\n", out);
        size_t pos = 0;
        while (pos < d->notes.len) {
            const char *nl = memchr(d->notes.p + pos, '\n', d->notes.len - pos);
            size_t end = nl ? (size_t)(nl - d->notes.p) : d->notes.len;
            fputs("  ", out);
            frd_text_str(out, d->notes.p + pos, end - pos);
            putc('\n', out);
            pos = end + 1;
        }
    }

    fputs("\nthreads\n", out);
    fprintf(out, "  %-8s %-20s %-7s %8s %-24s %s\n", "TID", "NAME", "STATE", "EVENTS",
            "HOLDS (ms)", "LOST");
    int starred = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        char hold[64], lost[160];
        starred |= t->nevents && !t->complete_head;
        if (t->nevents)
            snprintf(hold, sizeof(hold), "%.3f .. %.3f%s", rel_ms(m, t->first_ns),
                     rel_ms(m, t->last_ns), t->complete_head ? "" : "*");
        else
            snprintf(hold, sizeof(hold), "-");
        snprintf(lost, sizeof(lost), "%llu overwritten, %llu dropped, %u bad pages, %llu "
                 "pages missing", (unsigned long long)t->events_overwritten,
                 (unsigned long long)t->events_dropped, t->pages_bad,
                 (unsigned long long)t->pages_missing);
        fprintf(out, "  %-8u ", t->tid);
        char nm[FR_THREAD_NAME_MAX + 1];
        memcpy(nm, t->name[0] ? t->name : "-", t->name[0] ? sizeof(nm) : 2);
        for (char *q = nm; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        fprintf(out, "%-20s %-7s %8zu %-24s %s\n", nm,
                t->state == 1 ? "live" : t->state == 2 ? "exited" : "?", t->nevents, hold,
                lost);
    }
    if (starred)
        fputs("  (* = older history of this thread was overwritten)\n", out);
    return ferror(out) ? -EIO : 0;
}

/* ---- tasks -------------------------------------------------------------- */

static const char *dur_or_dash(int64_t ns, char *buf, size_t len)
{
    if (ns < 0)
        return "-";
    return frd_fmt_dur(ns, buf, len);
}

/* String @sid in @buf as a table cell (control characters as '?', cut to
 * fit); 0 when there is no such string or it is empty. */
static size_t name_cell(const struct frd_model *m, uint32_t sid, char *buf, size_t len)
{
    size_t n = 0, k = 0;
    const char *s = frd_string(m->dump, sid, &n);
    for (size_t j = 0; s && j < n && k + 1 < len; j++)
        buf[k++] = (s[j] < 0x20 || s[j] == 0x7f) ? '?' : s[j];
    buf[k] = 0;
    return k;
}

static void parent_cell(uint64_t parent, char *buf, size_t len)
{
    if (parent)
        snprintf(buf, len, "%llu", (unsigned long long)parent);
    else
        snprintf(buf, len, "-");
}

int frd_text_tasks(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    fprintf(out, "%-18s %-24s %-18s %-8s %5s %10s %10s %10s %10s %s\n", "ID", "NAME", "PARENT",
            "STATE", "POLLS", "BUSY", "IDLE", "DELAY p50", "DELAY p99", "FINDINGS");
    uint32_t *masks = frd_task_kind_masks(v); /* NULL: out of memory, look per task */
    for (size_t i = 0; i < m->ntasks; i++) {
        const struct frd_task *t = &m->tasks[i];
        char name[25], a[32], b[32], c[32], e[32], fnd[96], par[24];
        if (!name_cell(m, t->name, name, sizeof(name))) /* spawned before the window, and */
            snprintf(name, sizeof(name), "%s", t->spawn_seen ? "-" : "(spawned earlier)");
        parent_cell(frd_task_parent(m, t), par, sizeof(par));
        if (masks)
            frd_kinds_list(masks[i], fnd, sizeof(fnd));
        else
            frd_task_findings(v, (int32_t)i, fnd, sizeof(fnd));
        struct frd_task_figures fig;
        if (frd_task_figures(m, (int32_t)i, &fig)) {
            free(masks);
            return -ENOMEM;
        }
        fprintf(out, "%-18llu %-24s %-18s %-8s %5zu %10s %10s %10s %10s %s\n",
                (unsigned long long)t->id, name, par,
                t->state == FRD_TASK_IDLE && t->wait == FRD_WAIT_EXTERNAL  ? "idle-ext"
                : t->state == FRD_TASK_IDLE && t->wait == FRD_WAIT_STOPPED ? "stopped"
                                                                           : frd_task_state_name(t->state),
                (size_t)t->npolls, frd_fmt_dur(fig.busy_ns, a, sizeof(a)),
                frd_fmt_dur(fig.idle_ns, b, sizeof(b)), dur_or_dash(fig.delay_p50_ns, c, sizeof(c)),
                dur_or_dash(fig.delay_p99_ns, e, sizeof(e)), fnd[0] ? fnd : "-");
    }
    free(masks);
    const struct frd_spawn **silent = NULL;
    ssize_t ns = frd_silent_tasks(m, &silent);
    if (ns > 0) {
        fprintf(out, "\n%zd more tasks alive at the dump did nothing in the recording (spawn "
                "table), oldest first\n%-18s %-24s %-18s %s\n", ns, "ID", "NAME", "PARENT",
                "SPAWNED");
        for (ssize_t i = 0; i < ns; i++) {
            const struct frd_spawn *x = silent[i];
            char name[25], par[24], ago[32];
            if (!name_cell(m, x->name, name, sizeof(name)))
                snprintf(name, sizeof(name), "-");
            parent_cell(x->parent, par, sizeof(par));
            int64_t before = m->start_ns - frd_ticks_to_ns(m->dump, x->ticks);
            fprintf(out, "%-18llu %-24s %-18s %s before the window, on thread %u\n",
                    (unsigned long long)x->task, name, par,
                    frd_fmt_dur(before > 0 ? before : 0, ago, sizeof(ago)), x->tid);
        }
    }
    free(silent);
    return ferror(out) ? -EIO : 0;
}

/* ---- timeline ----------------------------------------------------------- */

static void put_thread(FILE *out, const struct frd_model *m, uint32_t th)
{
    char b[48];
    frd_thread_label(m, th, b, sizeof(b));
    frd_text_str(out, b, strlen(b));
}

/* The starvation or delayed_wakeup finding about poll @poll of task @ti. */
static const struct frd_finding *late_poll_finding(const struct frd_view *v, int32_t ti,
                                                   int32_t poll)
{
    for (size_t i = 0; v->f && i < v->f->n; i++) {
        const struct frd_finding *x = &v->f->v[i];
        if ((x->kind == FRD_STARVATION || x->kind == FRD_DELAYED_WAKEUP) && x->task == ti &&
            x->ran_thread >= 0 && x->poll == poll)
            return x;
    }
    return NULL;
}

static void task_event(FILE *out, const struct frd_view *v, const struct frd_mev *me,
                       int64_t origin, int64_t *refs)
{
    const struct frd_model *m = v->m;
    const struct frd_task *t = &m->tasks[me->task];
    const struct frd_event *e = me->e;
    char d1[32], d2[32], why[256];
    if ((e->type == FR_EV_POLL_PENDING || e->type == FR_EV_POLL_READY) && me->ref != FRD_NONE)
        return; /* folded into the poll's line */
    fprintf(out, "%12.3f ms  ", (double)(me->ns - origin) / 1e6);
    switch (e->type) {
    case FR_EV_SPAWN:
        fputs("spawned on ", out);
        put_thread(out, m, me->thread);
        break;
    case FR_EV_POLL_BEGIN: {
        const struct frd_poll *p = &t->polls[me->ref];
        fprintf(out, "poll #%d on ", me->ref + 1);
        put_thread(out, m, me->thread);
        fprintf(out, ", %s -> %s", frd_fmt_dur(p->end_ns - p->begin_ns, d1, sizeof(d1)),
                p->result == FRD_POLL_RUNNING ? "still running at the dump"
                : p->result == FRD_POLL_READY ? "ready"
                                              : "pending");
        if (p->await_str) {
            fputs(", awaiting \"", out);
            put_str(out, m->dump, p->await_str);
            putc('"', out);
        }
        if (p->woken_during)
            fputs(", woken while it ran", out);
        const struct frd_finding *lf =
            p->ready_from != FRD_READY_UNKNOWN ? late_poll_finding(v, me->task, me->ref) : NULL;
        if (lf && lf->kind == FRD_STARVATION) {
            frd_culprit_phrase(m, &lf->culprit, lf->duration_ns, why, sizeof(why));
            fprintf(out, " (starved %s%s%s)", frd_fmt_dur(lf->duration_ns, d2, sizeof(d2)),
                    why[0] ? " " : "", why);
        } else if (lf && lf->idle_thread >= 0) {
            fprintf(out, " (delayed %s: ", frd_fmt_dur(lf->duration_ns, d2, sizeof(d2)));
            put_thread(out, m, (uint32_t)lf->idle_thread);
            fprintf(out, " sat parked for %s of it)", frd_fmt_dur(lf->idle_ns, d1, sizeof(d1)));
        }
        break;
    }
    case FR_EV_POLL_PENDING:
    case FR_EV_POLL_READY:
        fputs("poll ended without a recorded begin on ", out);
        put_thread(out, m, me->thread);
        break;
    case FR_EV_AWAIT:
    case FR_EV_AWAIT_EXTERNAL:
        fputs(e->type == FR_EV_AWAIT ? "awaiting \"" : "awaiting outside input \"", out);
        put_str(out, m->dump, e->str);
        putc('"', out);
        break;
    case FR_EV_IDLE:
        fputs("stopped (waits for nothing)", out);
        break;
    case FR_EV_WAKE: {
        const struct frd_wake *w = &t->wakes[me->ref];
        fputs(w->during_own_poll ? "woken during its own poll by " : "woken by ", out);
        put_thread(out, m, w->thread);
        if (w->by_inst != FRD_NONE) {
            fputs(" (", out);
            put_task(out, m, w->by_inst);
            putc(')', out);
        }
        break;
    }
    case FR_EV_WAKER_CLONE:
        fprintf(out, "waker cloned (%lld references)", (long long)++*refs);
        break;
    case FR_EV_WAKER_DROP:
        fprintf(out, "waker dropped (%lld references)", (long long)--*refs);
        break;
    case FR_EV_DROP:
        fputs("dropped on ", out);
        put_thread(out, m, me->thread);
        break;
    case FR_EV_MARK:
        fputs("mark \"", out);
        put_str(out, m->dump, e->str);
        putc('"', out);
        break;
    case FR_EV_LOCK_WAIT:
    case FR_EV_LOCK_ACQUIRE:
    case FR_EV_LOCK_RELEASE: {
        int64_t li = frd_lock_find(&m->locks, e->lock);
        uint32_t name = e->str ? e->str : li >= 0 ? m->locks.v[li].name : 0;
        fputs(e->type == FR_EV_LOCK_WAIT      ? "waits for lock "
              : e->type == FR_EV_LOCK_ACQUIRE ? "acquired lock "
                                              : "released lock ",
              out);
        if (name) {
            putc('"', out);
            put_str(out, m->dump, name);
            fputs("\" ", out);
        }
        fprintf(out, "(0x%llx)", (unsigned long long)e->lock);
        break;
    }
    default:
        fputs(frd_event_name(e->type), out);
        break;
    }
    for (size_t i = 0; i < m->nnotes; i++)
        if (m->notes[i].task == me->task && m->notes[i].ns == me->ns &&
            m->notes[i].thread == me->thread)
            fprintf(out, "  [protocol: %s]", m->notes[i].what);
    putc('\n', out);
}

static void task_header(FILE *out, const struct frd_view *v, int32_t ti)
{
    const struct frd_model *m = v->m;
    const struct frd_task *t = &m->tasks[ti];
    char f[96];
    put_task(out, m, ti);
    uint64_t parent = frd_task_parent(m, t);
    if (parent) {
        fputs(" (parent ", out);
        if (t->parent_inst != FRD_NONE)
            put_task(out, m, t->parent_inst);
        else
            fprintf(out, "task %llu", (unsigned long long)parent);
        putc(')', out);
    }
    fprintf(out, ", %s at the end", frd_task_state_name(t->state));
    if (!t->spawn_seen)
        fputs(", spawned before the recording window", out);
    frd_task_findings(v, ti, f, sizeof(f));
    if (f[0])
        fprintf(out, ", findings: %s", f);
    /* the lines below count from the instance's first event */
    fprintf(out, "; times from its first event, %.3f ms into the recording\n",
            rel_ms(m, t->first_ns));
}

int frd_text_timeline(FILE *out, const struct frd_view *v, const struct frd_filter *flt)
{
    const struct frd_model *m = v->m;
    if (flt->by_thread) {
        int found = 0;
        for (uint32_t th = 0; th < m->dump->nthreads; th++) {
            if (m->dump->threads[th].tid != flt->tid)
                continue;
            found = 1;
            fprintf(out, "thread %u \"", flt->tid);
            put_thread(out, m, th);
            fprintf(out, "\" (times from the start of the recording)\n");
            int64_t parked = INT64_MIN;
            char d1[32];
            for (size_t i = 0; i < m->nev; i++) {
                const struct frd_mev *me = &m->ev[i];
                if (me->thread != th)
                    continue;
                if (flt->by_task && (me->task == FRD_NONE || m->tasks[me->task].id != flt->task))
                    continue;
                const struct frd_event *e = me->e;
                if (e->type == FR_EV_POLL_PENDING || e->type == FR_EV_POLL_READY) {
                    if (me->ref != FRD_NONE)
                        continue;
                }
                fprintf(out, "%12.3f ms  ", rel_ms(m, me->ns));
                switch (e->type) {
                case FR_EV_PARK:
                    parked = me->ns;
                    fputs("parked", out);
                    break;
                case FR_EV_UNPARK:
                    fputs("unparked", out);
                    if (parked != INT64_MIN)
                        fprintf(out, " after %s", frd_fmt_dur(me->ns - parked, d1, sizeof(d1)));
                    parked = INT64_MIN;
                    break;
                case FR_EV_THREAD_NAME:
                    fputs("named \"", out);
                    put_str(out, m->dump, e->str);
                    putc('"', out);
                    break;
                case FR_EV_POLL_BEGIN: {
                    const struct frd_poll *p = &m->tasks[me->task].polls[me->ref];
                    fputs("polls ", out);
                    put_task(out, m, me->task);
                    fprintf(out, " (#%d), %s -> %s", me->ref + 1,
                            frd_fmt_dur(p->end_ns - p->begin_ns, d1, sizeof(d1)),
                            p->result == FRD_POLL_RUNNING ? "still running at the dump"
                            : p->result == FRD_POLL_READY ? "ready"
                                                          : "pending");
                    break;
                }
                case FR_EV_POLL_PENDING:
                case FR_EV_POLL_READY:
                    /* its begin is not in the ring (older, or lost) */
                    fputs("a poll of ", out);
                    put_task(out, m, me->task);
                    fprintf(out, " ended -> %s, its begin not recorded",
                            e->type == FR_EV_POLL_READY ? "ready" : "pending");
                    break;
                default:
                    fprintf(out, "%s ", frd_event_name(e->type));
                    put_task(out, m, me->task);
                    /* a spawn's string is the name put_task just printed */
                    if (e->str && !(e->type == FR_EV_SPAWN && me->task != FRD_NONE &&
                                    m->tasks[me->task].name == e->str)) {
                        fputs(" \"", out);
                        put_str(out, m->dump, e->str);
                        putc('"', out);
                    }
                    break;
                }
                putc('\n', out);
            }
        }
        if (!found)
            return -ENOENT;
        return ferror(out) ? -EIO : 0;
    }

    /* per task: index the merged timeline by task once */
    size_t *count = calloc(m->ntasks + 1, sizeof(*count));
    size_t *idx = malloc((m->nev ? m->nev : 1) * sizeof(*idx));
    if (!count || !idx) {
        free(count);
        free(idx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->nev; i++)
        if (m->ev[i].task != FRD_NONE)
            count[m->ev[i].task + 1]++;
    for (size_t t = 0; t < m->ntasks; t++)
        count[t + 1] += count[t];
    size_t *fill = calloc(m->ntasks + 1, sizeof(*fill));
    if (!fill) {
        free(count);
        free(idx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->nev; i++)
        if (m->ev[i].task != FRD_NONE) {
            size_t t = (size_t)m->ev[i].task;
            idx[count[t] + fill[t]++] = i;
        }
    int found = 0;
    for (size_t t = 0; t < m->ntasks; t++) {
        if (flt->by_task && m->tasks[t].id != flt->task)
            continue;
        found = 1;
        task_header(out, v, (int32_t)t);
        int64_t refs = 0;
        for (size_t k = count[t]; k < count[t + 1]; k++) {
            const struct frd_mev *me = &m->ev[idx[k]];
            if (flt->by_thread && m->dump->threads[me->thread].tid != flt->tid)
                continue;
            if (me->e->type == FR_EV_AWAIT) {
                /* an await inside a poll is shown on that poll's line */
                const struct frd_task *tk = &m->tasks[t];
                int inside = 0;
                for (size_t p = 0; p < tk->npolls; p++)
                    if (tk->polls[p].begin_ns <= me->ns && me->ns <= tk->polls[p].end_ns &&
                        tk->polls[p].await_str == me->e->str)
                        inside = 1;
                if (inside)
                    continue;
            }
            task_event(out, v, me, m->tasks[t].first_ns, &refs);
        }
        putc('\n', out);
    }
    free(count);
    free(idx);
    free(fill);
    if (flt->by_task && !found)
        return -ENOENT;
    return ferror(out) ? -EIO : 0;
}

/* ---- findings ----------------------------------------------------------- */

/* analyze's line on a crash dump: the signal, the thread, and the task being
 * polled there with its async call chain; info has the backtrace. */
static void text_crash_line(FILE *out, const struct frd_model *m)
{
    const struct frd_crash *c = &m->dump->crash;
    char sig[32], chain[512];
    fprintf(out, "crash: %s on thread %u", frd_signal_name((int)c->signo, sig, sizeof(sig)),
            c->tid);
    int32_t ti = c->task ? frd_model_task_at(m, c->task, c->ns) : FRD_NONE;
    if (ti != FRD_NONE)
        fprintf(out, " while it polled task %s", frd_task_chain(m, ti, chain, sizeof(chain)));
    else if (c->task)
        fprintf(out, " while it polled task %llu (no events of it left in the rings)",
                (unsigned long long)c->task);
    else if (frd_thread_by_tid(m->dump, c->tid))
        fputs(", no task being polled there", out);
    else
        fputs(" (no ring: which task ran there is unknown)", out);
    fputs("; info shows the backtrace\n", out);
}

/* Do findings @a and @b share one cause (the same culprit on the same worker)? */
static int same_cause(const struct frd_finding *a, const struct frd_finding *b)
{
    return a->kind == b->kind && a->cause == b->cause && a->culprit.task != FRD_NONE &&
           a->culprit.task == b->culprit.task && a->culprit.thread == b->culprit.thread;
}

int frd_text_findings(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    char d1[32], d2[32], d3[32], d4[32], msg[sizeof(v->f->v[0].message)];
    fprintf(out, "%zu events, %zu tasks, %zu threads, %s window; thresholds: starvation %s, "
            "long poll %s, hang %s\n",
            m->nevents, m->ntasks, m->dump->nthreads,
            frd_fmt_dur(m->end_ns - m->start_ns, d1, sizeof(d1)),
            frd_fmt_dur(v->th->starvation_ns, d2, sizeof(d2)),
            frd_fmt_dur(v->th->long_poll_ns, d3, sizeof(d3)),
            frd_fmt_dur(v->th->hang_ns, d4, sizeof(d4)));
    if (m->dump->crash.present)
        text_crash_line(out, m);
    const struct frd_spawn **silent = NULL;
    ssize_t nsilent = frd_silent_tasks(m, &silent);
    free(silent);
    if (v->f->timing_withheld)
        fprintf(out, "%zu finding%s resting on a duration withheld: the dump's clock could not "
                "be calibrated (info lists why)\n", v->f->timing_withheld,
                v->f->timing_withheld == 1 ? "" : "s");
    if (v->f->host_withheld && frd_run_delay_lost(m->dump))
        fprintf(out, "%zu finding%s on a wait withheld: this dump lost its run delays (%s), so "
                "how long the host kept each thread from running is unknown\n",
                v->f->host_withheld, v->f->host_withheld == 1 ? "" : "s",
                lost_why(m->dump));
    else if (v->f->host_withheld)
        fprintf(out, "%zu finding%s on a wait withheld: the host kept the thread from running "
                "(waiting for a CPU) for all but the threshold of it (info shows the run delays)\n",
                v->f->host_withheld, v->f->host_withheld == 1 ? "" : "s");
    if (nsilent > 0 && m->ntasks) /* no verdict on them: what they last did is gone */
        fprintf(out, "%zd more task%s alive at the dump did nothing in the recording (spawn "
                "table; no finding can be made without their events: tasks lists them)\n",
                nsilent, nsilent == 1 ? "" : "s");
    if (!v->f->n) {
        if (m->ntasks || nsilent < 0)
            fputs("no findings\n", out);
        else if (nsilent > 0)
            fprintf(out, "no findings: no task did anything in the recording (%zd alive at the "
                    "dump, from the spawn table: tasks lists them)\n", nsilent);
        else if (m->dump->damaged && !m->nevents)
            fputs("no findings: no event could be read (the dump is damaged: see the errors "
                  "on standard error)\n", out);
        else
            fputs("no findings: no task was recorded (a program whose event loop flightrec has "
                  "no adapter for, or a runtime that calls no hook)\n", out);
        return ferror(out) ? -EIO : 0;
    }
    fprintf(out, "%zu finding%s\n", v->f->n, v->f->n == 1 ? "" : "s");
    /* findings that share one cause are told once, with their victims under it */
    char *told = calloc(v->f->n, 1);
    if (!told)
        return -ENOMEM;
    for (size_t i = 0; i < v->f->n; i++) {
        if (told[i])
            continue;
        const struct frd_finding *x = &v->f->v[i];
        size_t n = 1;
        int64_t longest = x->duration_ns;
        size_t worst = i;
        for (size_t j = i + 1; j < v->f->n; j++)
            if (!told[j] && same_cause(x, &v->f->v[j])) {
                n++;
                if (v->f->v[j].duration_ns > longest) {
                    longest = v->f->v[j].duration_ns;
                    worst = j;
                }
            }
        /* the most severe kinds (lost_wakeup, protocol, hung) in red, the rest yellow */
        const char *on = !v->color ? "" : x->kind <= FRD_HUNG ? "\033[1;31m" : "\033[1;33m";
        fprintf(out, "\n%s%-12s%s at %.3f ms", on, frd_kind_name(x->kind), v->color ? "\033[0m" : "",
                rel_ms(m, x->at_ns));
        if (n == 1) {
            if (x->duration_ns)
                fprintf(out, " for %s", frd_fmt_dur(x->duration_ns, d1, sizeof(d1)));
            fputs("\n  ", out);
            frd_text_str(out, x->message, strlen(x->message));
            putc('\n', out);
            continue;
        }
        const struct frd_finding *w = &v->f->v[worst];
        frd_culprit_phrase(m, &w->culprit, w->duration_ns, msg, sizeof(msg));
        fprintf(out, " for up to %s: %zu tasks, one cause\n  ",
                frd_fmt_dur(longest, d1, sizeof(d1)), n);
        frd_text_str(out, msg, strlen(msg));
        fputs(" (the longest wait)\n", out);
        for (size_t j = i; j < v->f->n; j++) {
            if (told[j] || (j != i && !same_cause(x, &v->f->v[j])))
                continue;
            told[j] = 1;
            frd_finding_format(m, &v->f->v[j], FRD_FMT_NO_CULPRIT, msg, sizeof(msg));
            fputs("  - ", out);
            frd_text_str(out, msg, strlen(msg));
            putc('\n', out);
        }
    }
    free(told);
    return ferror(out) ? -EIO : 0;
}
