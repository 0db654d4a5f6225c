/*
 * decoder/render_json.c - machine-readable output: `info --json`,
 * `tasks --json`, `analyze --json` (shapes fixed by DESIGN.md "CLI"), and
 * `export --format json` (the Chrome trace is render_chrome.c).
 *
 * Numbers: task ids, tids and nanosecond times are JSON numbers; addresses
 * are "0x..." strings, because 64-bit addresses do not survive a double.
 * Times named *_ns without "abs" are relative to the start of the recording.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "render.h"

static void task_obj(FILE *out, const struct frd_model *m, int32_t ti)
{
    if (ti == FRD_NONE) {
        fputs("null", out);
        return;
    }
    const struct frd_task *t = &m->tasks[ti];
    fprintf(out, "{\"id\": %llu, \"name\": ", (unsigned long long)t->id);
    frd_json_strid(out, m->dump, t->name);
    putc('}', out);
}

/* The task polled on the crashing thread: task_obj's shape, {"id", "name":
 * null} for one with no events left in the rings, null for none (or no
 * crash). Return: its instance, FRD_NONE when it has none. */
static int32_t crash_task_obj(FILE *out, const struct frd_model *m)
{
    const struct frd_crash *c = &m->dump->crash;
    int32_t ti = c->present && c->task ? frd_model_task_at(m, c->task, c->ns) : FRD_NONE;
    if (c->present && c->task && ti == FRD_NONE)
        fprintf(out, "{\"id\": %llu, \"name\": null}", (unsigned long long)c->task);
    else
        task_obj(out, m, ti);
    return ti;
}

/* [{"ip", "function", "file", "line", "module", "offset"}, ...] members,
 * without the brackets: the crash's backtrace and the stall's stack alike
 * (a name the symbolizer did not find is null). */
static void json_frames(FILE *out, const struct frd_frame *fr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct frd_frame *f = &fr[i];
        fprintf(out, "%s{\"ip\": \"0x%llx\", \"function\": ", i ? ", " : "",
                (unsigned long long)f->ip);
        frd_json_cstr(out, f->function[0] ? f->function : NULL);
        fputs(", \"file\": ", out);
        frd_json_cstr(out, f->file[0] ? f->file : NULL);
        if (f->line)
            fprintf(out, ", \"line\": %d", f->line);
        else
            fputs(", \"line\": null", out);
        fputs(", \"module\": ", out);
        frd_json_cstr(out, f->module[0] ? f->module : NULL);
        fprintf(out, ", \"offset\": \"0x%llx\"}", (unsigned long long)f->offset);
    }
}

/* "stall": the watchdog's STALL section or null; "recovery" likewise. */
static void json_triggers(FILE *out, const struct frd_view *v)
{
    const struct frd_dump *d = v->d;
    const struct frd_stall *s = &d->stall;
    fputs(", \"stall\": ", out);
    if (!s->present) {
        fputs("null", out);
    } else {
        fprintf(out, "{\"thread\": %u, \"task\": %llu, \"begin_ns\": %lld, \"held_ns\": %lld, "
                "\"threshold_ns\": %llu, \"stack\": [",
                s->tid, (unsigned long long)s->task, (long long)(s->begin_ns - v->m->start_ns),
                (long long)(s->sample_ns - s->begin_ns), (unsigned long long)s->threshold_ns);
        struct frd_frame *fr = s->nframes ? calloc(s->nframes, sizeof(*fr)) : NULL;
        if (fr && (s->flags & FR_STALL_STACK)) {
            frd_symbolize(d, s->frames, s->nframes, fr);
            json_frames(out, fr, s->nframes);
        }
        free(fr);
        fputs("]}", out);
    }
    fputs(", \"recovery\": ", out);
    if (!d->recovery.present)
        fputs("null", out);
    else
        fprintf(out, "{\"threads\": %u, \"pages_kept\": %u, \"pages_torn\": %u, "
                "\"file_size\": %llu}", d->recovery.threads, d->recovery.pages_kept,
                d->recovery.pages_torn, (unsigned long long)d->recovery.file_size);
}

int frd_json_info(FILE *out, const struct frd_view *v)
{
    const struct frd_dump *d = v->d;
    const struct frd_model *m = v->m;
    char b[64];
    int signo = d->crash.present ? (int)d->crash.signo : (int)d->hdr.signo;
    fputs("{\"path\": ", out);
    frd_json_cstr(out, d->path);
    fprintf(out, ", \"format_version\": %u, \"whole\": %s, \"reason\": ", d->hdr.version,
            d->damaged ? "false" : "true");
    frd_json_cstr(out, d->hdr.reason);
    fprintf(out, ", \"trigger\": \"%s\", \"realtime_ns\": %llu, \"dump_seq\": %llu",
            frd_trigger_name(d->hdr.trigger), (unsigned long long)d->hdr.realtime_ns,
            (unsigned long long)d->hdr.dump_seq);
    fprintf(out, ", \"signal\": %d, \"signal_name\": ", signo);
    if (signo)
        frd_json_cstr(out, frd_signal_name(signo, b, sizeof(b)));
    else
        fputs("null", out);
    fprintf(out, ", \"pid\": %u", d->proc.present ? d->proc.pid : d->hdr.pid);
    if (d->proc.present) {
        fprintf(out, ", \"ppid\": %u, \"executable\": ", d->proc.ppid);
        frd_json_str(out, d->proc.exe.p, d->proc.exe.len);
        fputs(", \"cmdline\": ", out);
        frd_json_args(out, &d->proc.cmdline);
        fputs(", \"host\": ", out);
        frd_json_str(out, d->proc.host.p, d->proc.host.len);
        fputs(", \"flightrec_version\": ", out);
        frd_json_str(out, d->proc.version.p, d->proc.version.len);
    }
    fprintf(out, ", \"clock\": {\"source\": \"%s\", \"ns_per_tick\": %.9g, \"pairs\": %u}",
            d->clock.source == FR_CLOCK_TSC ? "tsc" : "monotonic", d->clock.ns_per_tick,
            d->clock.npairs);
    fprintf(out, ", \"events\": %zu, \"tasks\": %zu, \"threads_count\": %zu, \"window_ns\": %lld",
            m->nevents, m->ntasks, d->nthreads, (long long)(m->end_ns - m->start_ns));
    /* the run-delay sampler's entries; null when the dump has none sampled */
    fputs(", \"run_delay\": ", out);
    fputs(d->have_run_delay ? "[" : "null", out);
    for (size_t i = 0; i < d->nrun_delays; i++) {
        const struct frd_run_delay *e = &d->run_delays[i];
        fprintf(out, "%s{\"tid\": %u, \"from_ns\": %lld, \"to_ns\": %lld, \"delay_ns\": %llu}",
                i ? ", " : "", e->tid, (long long)e->from_ns, (long long)e->to_ns,
                (unsigned long long)e->delay_ns);
    }
    if (d->have_run_delay)
        putc(']', out);

    /* crash */
    const struct frd_crash *c = &d->crash;
    fprintf(out, ", \"crash_thread\": %u", c->present ? c->tid : 0);
    fputs(", \"crash_task\": ", out);
    int32_t ti = crash_task_obj(out, m);
    fputs(", \"crash_task_chain\": [", out);
    for (int depth = 0; ti != FRD_NONE && depth < 16; depth++) {
        if (depth)
            fputs(", ", out);
        task_obj(out, m, ti);
        const struct frd_task *t = &m->tasks[ti];
        uint64_t parent = frd_task_far_parent(m, t);
        if (parent) /* a parent with no event in the window */
            fprintf(out, ", {\"id\": %llu, \"name\": null}", (unsigned long long)parent);
        ti = t->parent_inst;
    }
    fputs("]", out);
    if (c->present) {
        /* fault_addr only for a fault that has one; a sent signal names its sender */
        fprintf(out, ", \"signal_code\": %d, \"fault_addr\": ", c->code);
        if (c->code > 0 && c->code != 0x80)
            fprintf(out, "\"0x%llx\"", (unsigned long long)c->fault_addr);
        else
            fputs("null", out);
        if (c->code <= 0)
            fprintf(out, ", \"sender\": {\"pid\": %u, \"uid\": %u}",
                    (unsigned)(c->fault_addr & 0xffffffffu), (unsigned)(c->fault_addr >> 32));
        else
            fputs(", \"sender\": null", out);
    }
    fputs(", \"backtrace\": [", out);
    json_frames(out, v->frames, v->nframes);
    fputs("], \"notes\": [", out);
    for (size_t pos = 0, k = 0; d->notes.p && pos < d->notes.len; k++) {
        const char *nl = memchr(d->notes.p + pos, '\n', d->notes.len - pos);
        size_t end = nl ? (size_t)(nl - d->notes.p) : d->notes.len;
        if (k)
            fputs(", ", out);
        frd_json_str(out, d->notes.p + pos, end - pos);
        pos = end + 1;
    }
    fputs("]", out);
    json_triggers(out, v);
    fputs(", \"threads\": [", out);
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        fprintf(out, "%s{\"tid\": %u, \"name\": ", i ? ", " : "", t->tid);
        frd_json_cstr(out, t->name);
        fprintf(out, ", \"state\": \"%s\", \"events\": %zu, \"first_ns\": %lld, "
                "\"last_ns\": %lld, \"complete\": %s, \"overwritten\": %llu, \"dropped\": %llu, "
                "\"pages_bad\": %u, \"pages_missing\": %llu, \"current_task\": %llu",
                t->state == 1 ? "live" : t->state == 2 ? "exited" : "unknown", t->nevents,
                (long long)(t->nevents ? t->first_ns - m->start_ns : 0),
                (long long)(t->nevents ? t->last_ns - m->start_ns : 0),
                t->complete_head && t->complete_tail ? "true" : "false",
                (unsigned long long)t->events_overwritten,
                (unsigned long long)t->events_dropped, t->pages_bad,
                (unsigned long long)t->pages_missing, (unsigned long long)t->current_task);
        if (t->copied) /* dumps that say when the ring was copied */
            fprintf(out, ", \"copied_ns\": %lld", (long long)(t->copied_ns - m->start_ns));
        putc('}', out);
    }
    fputs("], \"errors\": [", out);
    for (size_t i = 0; i < d->nerrors; i++) {
        if (i)
            fputs(", ", out);
        frd_json_cstr(out, d->errors[i]);
    }
    fputs("]}\n", out);
    return ferror(out) ? -EIO : 0;
}

int frd_json_tasks(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    uint32_t *masks = frd_task_kind_masks(v); /* NULL: out of memory, look per task */
    fputs("{\"tasks\": [", out);
    for (size_t i = 0; i < m->ntasks; i++) {
        const struct frd_task *t = &m->tasks[i];
        fprintf(out, "%s\n{\"id\": %llu, \"instance\": %zu, \"name\": ", i ? "," : "",
                (unsigned long long)t->id, i);
        frd_json_strid(out, m->dump, t->name);
        uint64_t parent = frd_task_parent(m, t);
        if (parent)
            fprintf(out, ", \"parent\": %llu", (unsigned long long)parent);
        else
            fputs(", \"parent\": null", out);
        struct frd_task_figures fig;
        if (frd_task_figures(m, (int32_t)i, &fig)) {
            free(masks);
            return -ENOMEM;
        }
        fprintf(out, ", \"state\": \"%s\", \"polls\": %zu, \"wakes\": %zu, \"busy_ns\": %lld, "
                "\"idle_ns\": %lld",
                frd_task_state_name(t->state), (size_t)t->npolls, (size_t)t->nwakes,
                (long long)fig.busy_ns, (long long)fig.idle_ns);
        if (frd_wait_name(t->wait))
            fprintf(out, ", \"wait\": \"%s\"", frd_wait_name(t->wait));
        else
            fputs(", \"wait\": null", out);
        if (fig.delay_p50_ns >= 0)
            fprintf(out, ", \"delay_p50_ns\": %lld, \"delay_p99_ns\": %lld",
                    (long long)fig.delay_p50_ns, (long long)fig.delay_p99_ns);
        else
            fputs(", \"delay_p50_ns\": null, \"delay_p99_ns\": null", out);
        if (t->spawn_seen)
            fprintf(out, ", \"spawned_ns\": %lld", (long long)(frd_task_spawn_ns(t) - m->start_ns));
        else
            fputs(", \"spawned_ns\": null", out);
        if (t->dropped)
            fprintf(out, ", \"dropped_ns\": %lld", (long long)(t->drop_ns - m->start_ns));
        else
            fputs(", \"dropped_ns\": null", out);
        fputs(", \"findings\": [", out);
        int first = 1;
        for (int k = 0; k < FRD_KIND_COUNT; k++) {
            int has = 0;
            if (masks) {
                has = (masks[i] >> k) & 1;
            } else {
                for (size_t j = 0; v->f && j < v->f->n && !has; j++) {
                    const struct frd_finding *x = &v->f->v[j];
                    has = x->kind == k && x->task == (int32_t)i;
                    for (size_t c = 0; c < x->ncycle && !has && x->kind == k; c++)
                        has = x->cycle[c].task == (int32_t)i; /* every task of a deadlock */
                }
            }
            if (!has)
                continue;
            fprintf(out, "%s\"%s\"", first ? "" : ", ", frd_kind_name(k));
            first = 0;
        }
        fputs("]}", out);
    }
    free(masks);
    fputs("\n], \"silent\": [", out);
    const struct frd_spawn **silent = NULL;
    ssize_t ns = frd_silent_tasks(m, &silent);
    for (ssize_t i = 0; i < ns; i++) {
        const struct frd_spawn *x = silent[i];
        fprintf(out, "%s\n{\"id\": %llu, \"name\": ", i ? "," : "", (unsigned long long)x->task);
        frd_json_strid(out, m->dump, x->name);
        if (x->parent)
            fprintf(out, ", \"parent\": %llu", (unsigned long long)x->parent);
        else
            fputs(", \"parent\": null", out);
        fprintf(out, ", \"spawned_ns\": %lld, \"thread\": %u}",
                (long long)(frd_ticks_to_ns(m->dump, x->ticks) - m->start_ns), x->tid);
    }
    free(silent);
    fputs(ns > 0 ? "\n]}\n" : "]}\n", out);
    return ferror(out) ? -EIO : 0;
}

/* {"task": 7, "name": "fetch"} members of instance @ti (or nulls). */
static void task_members(FILE *out, const struct frd_model *m, int32_t ti)
{
    if (ti == FRD_NONE || (size_t)ti >= m->ntasks) {
        fputs("\"task\": null, \"name\": null", out);
        return;
    }
    fprintf(out, "\"task\": %llu, \"name\": ", (unsigned long long)m->tasks[ti].id);
    frd_json_strid(out, m->dump, m->tasks[ti].name);
}

void frd_json_finding_facts(FILE *out, const struct frd_model *m, const struct frd_finding *x)
{
    const struct frd_dump *d = m->dump;
    const struct frd_task *t = x->task != FRD_NONE ? &m->tasks[x->task] : NULL;
    fprintf(out, ", \"cause\": \"%s\", \"how\": ", frd_cause_name(x->cause));
    frd_json_cstr(out, frd_how_name(x->how));
    if (t && x->poll != FRD_NONE && (size_t)x->poll < t->npolls) {
        int res = t->polls[x->poll].result;
        fprintf(out, ", \"poll\": %d, \"result\": \"%s\"", x->poll + 1,
                res == FRD_POLL_READY ? "ready" : res == FRD_POLL_PENDING ? "pending" : "running");
    } else {
        fputs(", \"poll\": null, \"result\": null", out);
    }
    fputs(", \"parent\": ", out);
    if (t && t->parent_inst != FRD_NONE) {
        putc('{', out);
        task_members(out, m, t->parent_inst);
        putc('}', out);
    } else {
        fputs("null", out);
    }
    fputs(", \"waker\": ", out);
    if (t && x->wake != FRD_NONE && (size_t)x->wake < t->nwakes) {
        const struct frd_wake *w = &t->wakes[x->wake];
        fprintf(out, "{\"thread\": %u, \"at_ns\": %lld, ", d->threads[w->thread].tid,
                (long long)(w->ns - m->start_ns));
        task_members(out, m, w->by_inst);
        putc('}', out);
    } else {
        fputs("null", out);
    }
    if (x->ran_thread >= 0)
        fprintf(out, ", \"ran_on\": %u", d->threads[x->ran_thread].tid);
    else
        fputs(", \"ran_on\": null", out);
    fputs(", \"await\": ", out);
    if (x->await_str)
        frd_json_strid(out, d, x->await_str);
    else
        fputs("null", out);
    fputs(", \"culprit\": ", out);
    if (x->culprit.task != FRD_NONE) {
        putc('{', out);
        task_members(out, m, x->culprit.task);
        fprintf(out, ", \"thread\": %u, \"busy_ns\": %lld, \"polls\": %u}",
                d->threads[x->culprit.thread].tid, (long long)x->culprit.busy_ns,
                x->culprit.polls);
    } else {
        fputs("null", out);
    }
    fprintf(out, ", \"workers\": {\"total\": %u, \"busy\": %u, \"parked\": %u}",
            x->workers, x->workers_busy, x->workers_parked);
    if (x->idle_thread >= 0)
        fprintf(out, ", \"idle_worker\": {\"thread\": %u, \"parked_ns\": %lld}",
                d->threads[x->idle_thread].tid, (long long)x->idle_ns);
    else
        fputs(", \"idle_worker\": null", out);
    if (x->kind == FRD_PROTOCOL) {
        fputs(", \"what\": ", out);
        frd_json_cstr(out, x->what);
    }
    if (x->lock && x->kind != FRD_DEADLOCK) {
        /* the lock a hung task waits for (and its holder), or a protocol
         * finding is about */
        fprintf(out, ", \"lock\": %llu, \"lock_name\": ", (unsigned long long)x->lock);
        frd_json_strid(out, d, x->lock_name);
        if (x->kind == FRD_HUNG) {
            fputs(", \"held_by\": ", out);
            if (x->lock_holder != FRD_NONE) {
                putc('{', out);
                task_members(out, m, x->lock_holder);
                fprintf(out, ", \"state\": \"%s\"}",
                        frd_task_state_name(m->tasks[x->lock_holder].state));
            } else {
                fputs("null", out);
            }
        }
    }
    if (x->kind == FRD_DEADLOCK) {
        fputs(", \"cycle\": [", out);
        for (size_t i = 0; i < x->ncycle; i++) {
            const struct frd_cycle_link *c = &x->cycle[i];
            fputs(i ? ", {" : "{", out);
            task_members(out, m, c->task);
            fprintf(out, ", \"lock\": %llu, \"lock_name\": ", (unsigned long long)c->lock);
            frd_json_strid(out, d, c->lock_name);
            fprintf(out, ", \"held_by\": %llu, \"since_ns\": %lld}",
                    (unsigned long long)m->tasks[c->held_by].id,
                    (long long)(c->since_ns - m->start_ns));
        }
        putc(']', out);
    }
}

int frd_json_findings(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    const struct frd_spawn **silent = NULL;
    ssize_t nsilent = frd_silent_tasks(m, &silent);
    free(silent);
    fprintf(out, "{\"events\": %zu, \"tasks\": %zu, \"threads\": %zu, \"window_ns\": %lld, "
            "\"silent_tasks\": %zd, \"timing_withheld\": %zu, \"host_withheld\": %zu, "
            "\"run_delay_lost\": %s, \"crash\": ",
            m->nevents, m->ntasks, m->dump->nthreads, (long long)(m->end_ns - m->start_ns),
            nsilent > 0 ? nsilent : 0, v->f->timing_withheld, v->f->host_withheld,
            frd_run_delay_lost(m->dump) ? "true" : "false");
    const struct frd_crash *c = &m->dump->crash;
    if (c->present) {
        char sig[32];
        fprintf(out, "{\"signal\": \"%s\", \"thread\": %u, \"task\": ",
                frd_signal_name((int)c->signo, sig, sizeof(sig)), c->tid);
        crash_task_obj(out, m);
        putc('}', out);
    } else {
        fputs("null", out);
    }
    fputs(", \"findings\": [", out);
    for (size_t i = 0; i < v->f->n; i++) {
        const struct frd_finding *x = &v->f->v[i];
        fprintf(out, "%s\n {\"kind\": \"%s\", \"task\": ", i ? "," : "", frd_kind_name(x->kind));
        if (x->task != FRD_NONE) {
            fprintf(out, "%llu, \"name\": ", (unsigned long long)m->tasks[x->task].id);
            frd_json_strid(out, m->dump, m->tasks[x->task].name);
        } else {
            fputs("null, \"name\": null", out);
        }
        fprintf(out, ", \"thread\": %u, \"at_ns\": %lld, \"duration_ns\": %lld, \"message\": ",
                m->dump->threads[x->thread].tid, (long long)(x->at_ns - m->start_ns),
                (long long)x->duration_ns);
        frd_json_cstr(out, x->message);
        frd_json_finding_facts(out, m, x);
        putc('}', out);
    }
    fputs(v->f->n ? "\n]}\n" : "]}\n", out);
    return ferror(out) ? -EIO : 0;
}

int frd_json_export(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    const struct frd_dump *d = v->d;
    fprintf(out, "{\"pid\": %u, \"start_ns\": %lld, \"end_ns\": %lld, \"threads\": [",
            d->proc.present ? d->proc.pid : d->hdr.pid, (long long)m->start_ns,
            (long long)m->end_ns);
    for (size_t i = 0; i < d->nthreads; i++) {
        fprintf(out, "%s{\"tid\": %u, \"name\": ", i ? ", " : "", d->threads[i].tid);
        frd_json_cstr(out, d->threads[i].name);
        putc('}', out);
    }
    fputs("], \"strings\": {", out);
    for (size_t i = 0; i < d->nstrings; i++) {
        fprintf(out, "%s\"%u\": ", i ? ", " : "", d->strings[i].id);
        frd_json_str(out, d->strings[i].text, d->strings[i].len);
    }
    fputs("}, \"events\": [", out);
    for (size_t i = 0; i < m->nev; i++) {
        const struct frd_mev *me = &m->ev[i];
        const struct frd_event *e = me->e;
        fprintf(out, "%s\n{\"ns\": %lld, \"ticks\": %llu, \"tid\": %u, \"type\": \"%s\"",
                i ? "," : "", (long long)(me->ns - m->start_ns), (unsigned long long)e->ticks,
                d->threads[me->thread].tid, frd_event_name(e->type));
        if (e->task)
            fprintf(out, ", \"task\": %llu", (unsigned long long)e->task);
        if (e->type == FR_EV_SPAWN)
            fprintf(out, ", \"parent\": %llu", (unsigned long long)e->parent);
        if (e->type >= FR_EV_LOCK_WAIT && e->type <= FR_EV_LOCK_RELEASE)
            fprintf(out, ", \"lock\": %llu", (unsigned long long)e->lock);
        if (e->str) {
            fprintf(out, ", \"string_id\": %u, \"string\": ", e->str);
            frd_json_strid(out, d, e->str);
        }
        putc('}', out);
    }
    fputs("\n]}\n", out);
    return ferror(out) ? -EIO : 0;
}
