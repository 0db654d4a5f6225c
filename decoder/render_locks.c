/*
 * decoder/render_locks.c - `flightrec locks`: one row per lock, as text or as
 * JSON (DESIGN.md "flightrec locks --json"), sorted by total wait, longest
 * first.
 *
 * Figures come from the lock model (locks.h): acquisitions and contended ones
 * as counted during the replay; wait totals and maxima from the waits one by
 * one, a wait still going at the end of the recording counted up to the end
 * (a wait given up has no end and counts nothing); the longest hold among
 * holds released in the recording; the holder at the end (the first, for a
 * lock held by several); the tasks that waited longest in all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "render.h"

#define TOP_WAITERS 3

struct waiter {
    int32_t task;
    int64_t ns;
};

struct row {
    size_t lock;
    int64_t wait_total, wait_max;
    struct waiter top[TOP_WAITERS];
    size_t ntop;
};

/* A wait's length: to its grant, or to the end if still waiting; -1 if given up. */
static int64_t wait_len(const struct frd_model *m, const struct frd_lock_wait *w)
{
    if (w->end_ns != INT64_MIN)
        return w->end_ns - w->begin_ns;
    return w->open ? m->end_ns - w->begin_ns : -1;
}

static const struct frd_locks *sort_locks; /* qsort has no context argument */

/* Waits (indices) by lock, then task, then begin order. */
static int cmp_wait_q(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const struct frd_lock_wait *x = &sort_locks->waits[i], *y = &sort_locks->waits[j];
    if (x->lock != y->lock)
        return x->lock < y->lock ? -1 : 1;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int cmp_row(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->wait_total != y->wait_total)
        return x->wait_total > y->wait_total ? -1 : 1;
    return x->lock < y->lock ? -1 : x->lock > y->lock;
}

/* Rows for every lock of @m, sorted; NULL (and *n 0) when out of memory. */
static struct row *rows(const struct frd_model *m, size_t *n)
{
    const struct frd_locks *l = &m->locks;
    *n = 0;
    struct row *r = calloc(l->n ? l->n : 1, sizeof(*r));
    size_t *ix = malloc((l->nwaits ? l->nwaits : 1) * sizeof(*ix));
    if (!r || !ix) {
        free(r);
        free(ix);
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++)
        r[i].lock = i;
    for (size_t i = 0; i < l->nwaits; i++)
        ix[i] = i;
    sort_locks = l;
    if (l->nwaits)
        qsort(ix, l->nwaits, sizeof(*ix), cmp_wait_q);
    /* runs of one (lock, task): a waiter's total */
    for (size_t i = 0; i < l->nwaits;) {
        const struct frd_lock_wait *w = &l->waits[ix[i]];
        struct row *rw = &r[w->lock];
        int64_t sum = 0;
        size_t j = i;
        for (; j < l->nwaits && l->waits[ix[j]].lock == w->lock &&
               l->waits[ix[j]].task == w->task;
             j++) {
            int64_t len = wait_len(m, &l->waits[ix[j]]);
            if (len < 0)
                continue;
            sum += len;
            if (len > rw->wait_max)
                rw->wait_max = len;
        }
        rw->wait_total += sum;
        if (sum > 0) {
            /* insert into the top list, longest first */
            size_t k = rw->ntop < TOP_WAITERS ? rw->ntop++ : TOP_WAITERS;
            while (k > 0 && rw->top[k - 1].ns < sum) {
                if (k < TOP_WAITERS)
                    rw->top[k] = rw->top[k - 1];
                k--;
            }
            if (k < TOP_WAITERS)
                rw->top[k] = (struct waiter){w->task, sum};
        }
        i = j;
    }
    free(ix);
    if (l->n)
        qsort(r, l->n, sizeof(*r), cmp_row);
    *n = l->n;
    return r;
}

static void json_task(FILE *out, const struct frd_model *m, int32_t ti)
{
    fprintf(out, "\"task\": %llu, \"name\": ", (unsigned long long)m->tasks[ti].id);
    frd_json_strid(out, m->dump, m->tasks[ti].name);
}

int frd_json_locks(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    size_t n;
    struct row *r = rows(m, &n);
    if (!r)
        return -ENOMEM;
    fputs("{\"locks\": [", out);
    for (size_t i = 0; i < n; i++) {
        const struct frd_lock *k = &m->locks.v[r[i].lock];
        fprintf(out, "%s\n{\"lock\": %llu, \"name\": ", i ? "," : "", (unsigned long long)k->id);
        frd_json_strid(out, m->dump, k->name);
        fprintf(out,
                ", \"acquisitions\": %llu, \"contended\": %llu, \"wait_total_ns\": %lld, "
                "\"wait_max_ns\": %lld, \"hold_max_ns\": ",
                (unsigned long long)k->acquisitions, (unsigned long long)k->contended,
                (long long)r[i].wait_total, (long long)r[i].wait_max);
        if (k->hold_max_task != FRD_NONE) /* null: no hold was released in the recording */
            fprintf(out, "%lld", (long long)k->hold_max_ns);
        else
            fputs("null", out);
        fputs(", \"holder\": ", out);
        if (k->nholders)
            fprintf(out, "%llu", (unsigned long long)m->tasks[k->holders[0].task].id);
        else
            fputs("null", out);
        fprintf(out, ", \"holders\": %zu, \"waiting\": %zu, \"top_waiters\": [", k->nholders,
                k->waiting);
        for (size_t j = 0; j < r[i].ntop; j++) {
            fputs(j ? ", {" : "{", out);
            json_task(out, m, r[i].top[j].task);
            fprintf(out, ", \"wait_total_ns\": %lld}", (long long)r[i].top[j].ns);
        }
        fputs("]}", out);
    }
    fputs(n ? "\n]}\n" : "]}\n", out);
    free(r);
    return ferror(out) ? -EIO : 0;
}

static void text_task(FILE *out, const struct frd_model *m, int32_t ti)
{
    const struct frd_task *t = &m->tasks[ti];
    size_t len = 0;
    const char *s = frd_string(m->dump, t->name, &len);
    fprintf(out, "task %llu", (unsigned long long)t->id);
    if (s) {
        fputs(" \"", out);
        frd_text_str(out, s, len > 40 ? 40 : len);
        putc('"', out);
    }
}

int frd_text_locks(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    size_t n;
    struct row *r = rows(m, &n);
    if (!r)
        return -ENOMEM;
    if (n == 0) {
        fputs("no locks recorded (fr_lock_wait, fr_lock_acquire, fr_lock_release)\n", out);
        free(r);
        return ferror(out) ? -EIO : 0;
    }
    char d1[32], d2[32], d3[32];
    for (size_t i = 0; i < n; i++) {
        const struct frd_lock *k = &m->locks.v[r[i].lock];
        size_t len = 0;
        const char *s = frd_string(m->dump, k->name, &len);
        if (s) {
            putc('"', out);
            frd_text_str(out, s, len > 48 ? 48 : len);
            putc('"', out);
        } else {
            fputs("(unnamed)", out);
        }
        fprintf(out, " 0x%llx: %llu acquisitions, %llu contended; waits %s in all, longest %s",
                (unsigned long long)k->id, (unsigned long long)k->acquisitions,
                (unsigned long long)k->contended, frd_fmt_dur(r[i].wait_total, d1, sizeof(d1)),
                frd_fmt_dur(r[i].wait_max, d2, sizeof(d2)));
        if (k->hold_max_task != FRD_NONE) {
            fprintf(out, "; longest hold %s (", frd_fmt_dur(k->hold_max_ns, d3, sizeof(d3)));
            text_task(out, m, k->hold_max_task);
            putc(')', out);
        } else {
            fputs("; no hold released", out);
        }
        putc('\n', out);
        if (k->nholders) {
            fputs("    held at the end by ", out);
            text_task(out, m, k->holders[0].task);
            fprintf(out, " for %s", frd_fmt_dur(m->end_ns - k->holders[0].since_ns, d1,
                                                 sizeof(d1)));
            if (k->nholders > 1)
                fprintf(out, " (and %zu more)", k->nholders - 1);
            if (k->waiting)
                fprintf(out, "; %zu waiting", k->waiting);
            putc('\n', out);
        } else if (k->waiting) {
            fprintf(out, "    %zu waiting at the end, no holder in the recording\n", k->waiting);
        }
        if (r[i].ntop) {
            fputs("    waited most: ", out);
            for (size_t j = 0; j < r[i].ntop; j++) {
                if (j)
                    fputs(", ", out);
                text_task(out, m, r[i].top[j].task);
                fprintf(out, " %s", frd_fmt_dur(r[i].top[j].ns, d1, sizeof(d1)));
            }
            putc('\n', out);
        }
    }
    free(r);
    return ferror(out) ? -EIO : 0;
}
