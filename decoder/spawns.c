/*
 * decoder/spawns.c - the SPAWNS section (the recorder's spawn table at dump
 * time) and what the model takes from it: the name and parent of a task
 * whose spawn record its ring no longer holds (a listener, a timer, a
 * connection older than the window, often the task running at a crash).
 *
 * An entry names a task instance only when nothing contradicts it: the
 * instance has no spawn of its own in the dump, and the entry's spawn is
 * older than the instance's first event and than everything the spawning
 * thread's ring still holds (had the ring held that spawn, the model would
 * have it, so an entry inside the window is a later instance of a reused
 * id). Such a task keeps spawn_seen == 0: when it was spawned is still not
 * known, only what.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "model.h"
#include "reader_int.h"

#define ENTRY_BYTES 32u

void frd__sec_spawns(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    size_t n = c->len / ENTRY_BYTES;
    if (c->len % ENTRY_BYTES)
        frd__error(d, off, "SPAWNS section: expected a multiple of %u bytes, found %zu (the %zu "
                   "whole entries kept)", ENTRY_BYTES, c->len, n);
    if (!n)
        return;
    struct frd_spawn *v = realloc(d->spawns, (d->nspawns + n) * sizeof(*v));
    if (!v)
        return; /* names of old tasks are a refinement: without them, as an older dump */
    d->spawns = v;
    for (size_t i = 0; i < n; i++) {
        struct frd_spawn *e = &v[d->nspawns + i];
        if (frd_get_u64(c, &e->task) || frd_get_u64(c, &e->parent) ||
            frd_get_u64(c, &e->ticks) || frd_get_u32(c, &e->name) || frd_get_u32(c, &e->tid))
            return;
    }
    d->nspawns += n;
}

static int cmp_task(const void *a, const void *b)
{
    const struct frd_spawn *x = *(const struct frd_spawn *const *)a,
                           *y = *(const struct frd_spawn *const *)b;
    return x->task < y->task ? -1 : x->task > y->task;
}

/* Is the spawn at @ns by thread @tid older than all that thread's ring holds?
 * A thread absent from the dump (its slot reused since) holds nothing. */
static int before_its_thread(const struct frd_dump *d, uint32_t tid, int64_t ns)
{
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        if (t->tid == tid && t->ngood && ns >= t->covered_from_ns)
            return 0;
    }
    return 1;
}

/* The dump's entries, as pointers sorted by task (malloc'ed), or NULL. */
static const struct frd_spawn **sorted_by_task(const struct frd_dump *d)
{
    const struct frd_spawn **v = malloc(d->nspawns * sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < d->nspawns; i++)
        v[i] = &d->spawns[i];
    qsort(v, d->nspawns, sizeof(*v), cmp_task);
    return v;
}

/* The entries of @task in @v (@n sorted by task): [*@end, returned) is
 * empty when there are none. Usually one; a task spawned again without a
 * drop may have left an older one too. */
static const struct frd_spawn **entries_of(const struct frd_spawn **v, size_t n, uint64_t task,
                                           const struct frd_spawn ***end)
{
    struct frd_spawn key = {.task = task};
    const struct frd_spawn *kp = &key, **hit = bsearch(&kp, v, n, sizeof(*v), cmp_task);
    if (!hit) {
        *end = v;
        return v;
    }
    const struct frd_spawn **first = hit, **last = hit + 1;
    while (first > v && first[-1]->task == task)
        first--;
    while (last < v + n && (*last)->task == task)
        last++;
    *end = last;
    return first;
}

void frd__model_spawn_names(struct frd_model *m)
{
    const struct frd_dump *d = m->dump;
    if (!d->nspawns || !m->ntasks)
        return;
    const struct frd_spawn **by_task = sorted_by_task(d);
    if (!by_task)
        return;
    for (size_t i = 0; i < m->ntasks; i++) {
        struct frd_task *t = &m->tasks[i];
        if (t->spawn_seen || t->name)
            continue;
        /* the newest entry that fits is its spawn */
        const struct frd_spawn **hit, **end, *best = NULL;
        for (hit = entries_of(by_task, d->nspawns, t->id, &end); hit < end; hit++) {
            int64_t ns = frd_ticks_to_ns(d, (*hit)->ticks);
            if (ns <= t->first_ns && before_its_thread(d, (*hit)->tid, ns) &&
                (!best || (*hit)->ticks > best->ticks))
                best = *hit;
        }
        if (best) {
            t->name = best->name;
            /* (no spawn seen: no parent named yet) */
            if (best->parent)
                (void)frd__model_far_parent(m, (int32_t)i, best->parent);
        }
    }
    free(by_task);
}

static int cmp_ticks(const void *a, const void *b)
{
    const struct frd_spawn *x = *(const struct frd_spawn *const *)a,
                           *y = *(const struct frd_spawn *const *)b;
    return x->ticks < y->ticks ? -1 : x->ticks > y->ticks;
}

/* Entries sorted by task, one pass over the model's tasks marking the ids
 * it has: O(tasks x log entries), for a model of millions of tasks. */
ssize_t frd_silent_tasks(const struct frd_model *m, const struct frd_spawn ***out)
{
    const struct frd_dump *d = m->dump;
    *out = NULL;
    if (!d->nspawns)
        return 0;
    const struct frd_spawn **v = sorted_by_task(d);
    uint8_t *seen = calloc(d->nspawns, 1);
    if (!v || !seen) {
        free(v);
        free(seen);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->ntasks; i++) {
        const struct frd_spawn **h, **end;
        for (h = entries_of(v, d->nspawns, m->tasks[i].id, &end); h < end; h++)
            seen[h - v] = 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->nspawns; i++) {
        const struct frd_spawn *e = v[i];
        /* a spawn inside its thread's window would be in the model: an entry
         * that says otherwise is not trusted */
        if (seen[i] || !before_its_thread(d, e->tid, frd_ticks_to_ns(d, e->ticks)))
            continue;
        if (n && v[n - 1]->task == e->task) { /* an older entry left behind: the newest */
            if (e->ticks > v[n - 1]->ticks)
                v[n - 1] = e;
            continue;
        }
        v[n++] = e;
    }
    free(seen);
    qsort(v, n, sizeof(*v), cmp_ticks);
    *out = v;
    return (ssize_t)n;
}
