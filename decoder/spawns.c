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

void frd__model_spawn_names(struct frd_model *m)
{
    const struct frd_dump *d = m->dump;
    if (!d->nspawns || !m->ntasks)
        return;
    const struct frd_spawn **by_task = malloc(d->nspawns * sizeof(*by_task));
    if (!by_task)
        return;
    for (size_t i = 0; i < d->nspawns; i++)
        by_task[i] = &d->spawns[i];
    qsort(by_task, d->nspawns, sizeof(*by_task), cmp_task);
    for (size_t i = 0; i < m->ntasks; i++) {
        struct frd_task *t = &m->tasks[i];
        if (t->spawn_seen || t->name)
            continue;
        struct frd_spawn key = {.task = t->id};
        const struct frd_spawn *kp = &key, **hit =
            bsearch(&kp, by_task, d->nspawns, sizeof(*by_task), cmp_task);
        if (!hit)
            continue;
        /* Usually one entry per task; a task spawned again without a drop
         * may have left an older one: the newest that fits is its spawn. */
        while (hit > by_task && hit[-1]->task == t->id)
            hit--;
        const struct frd_spawn *best = NULL;
        for (; hit < by_task + d->nspawns && (*hit)->task == t->id; hit++) {
            int64_t ns = frd_ticks_to_ns(d, (*hit)->ticks);
            if (ns <= t->first_ns && before_its_thread(d, (*hit)->tid, ns) &&
                (!best || (*hit)->ticks > best->ticks))
                best = *hit;
        }
        if (best) {
            t->name = best->name;
            if (!t->parent)
                t->parent = best->parent;
        }
    }
    free(by_task);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_ticks(const void *a, const void *b)
{
    const struct frd_spawn *x = *(const struct frd_spawn *const *)a,
                           *y = *(const struct frd_spawn *const *)b;
    return x->ticks < y->ticks ? -1 : x->ticks > y->ticks;
}

ssize_t frd_silent_tasks(const struct frd_model *m, const struct frd_spawn ***out)
{
    const struct frd_dump *d = m->dump;
    *out = NULL;
    if (!d->nspawns)
        return 0;
    uint64_t *ids = malloc((m->ntasks ? m->ntasks : 1) * sizeof(*ids));
    const struct frd_spawn **v = malloc(d->nspawns * sizeof(*v));
    if (!ids || !v) {
        free(ids);
        free(v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->ntasks; i++)
        ids[i] = m->tasks[i].id;
    qsort(ids, m->ntasks, sizeof(*ids), cmp_u64);
    size_t n = 0;
    for (size_t i = 0; i < d->nspawns; i++) {
        const struct frd_spawn *e = &d->spawns[i];
        if (m->ntasks && bsearch(&e->task, ids, m->ntasks, sizeof(*ids), cmp_u64))
            continue;
        /* a spawn inside its thread's window would be in the model: an entry
         * that says otherwise is not trusted */
        if (!before_its_thread(d, e->tid, frd_ticks_to_ns(d, e->ticks)))
            continue;
        int dup = 0; /* a task listed twice (an older entry left behind): the newest */
        for (size_t k = 0; k < n && !dup; k++)
            if (v[k]->task == e->task) {
                dup = 1;
                if (e->ticks > v[k]->ticks)
                    v[k] = e;
            }
        if (!dup)
            v[n++] = e;
    }
    free(ids);
    qsort(v, n, sizeof(*v), cmp_ticks);
    *out = v;
    return (ssize_t)n;
}
