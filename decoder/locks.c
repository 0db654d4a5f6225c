/*
 * decoder/locks.c - replay of the lock events into holders, waiters and
 * per-lock figures (see locks.h). The model calls frd__locks_step for each
 * FR_EV_LOCK_* event in merge order; this file keeps the only state about
 * locks, so the task model knows nothing of them.
 *
 * An acquisition counts as contended when, as its wait began, another task
 * was already waiting for the lock, or when another task released it during
 * the wait (the grant had to wait for a holder). Holding alone is not enough:
 * a semaphore or a pool may have room beside its holders. Waits
 * are kept one by one (they feed the report and the Chrome export); a wait
 * that a task abandons (it asks for another lock, or asks again) is closed
 * without a grant.
 */
#include "locks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *q = realloc(*p, nc * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

static uint32_t hash32(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

int64_t frd_lock_find(const struct frd_locks *l, uint64_t id)
{
    if (!l->map_cap)
        return -1;
    for (size_t j = hash32(id) & (l->map_cap - 1);; j = (j + 1) & (l->map_cap - 1)) {
        uint32_t s = l->map[j];
        if (s == 0)
            return -1;
        if (l->v[s - 1].id == id)
            return s - 1;
    }
}

static int map_put(struct frd_locks *l, uint64_t id, uint32_t idx)
{
    if ((l->n + 1) * 2 > l->map_cap) {
        size_t nc = l->map_cap ? l->map_cap * 2 : 16;
        uint32_t *nm = calloc(nc, sizeof(*nm));
        if (!nm)
            return -ENOMEM;
        for (size_t i = 0; i < l->map_cap; i++) {
            uint32_t s = l->map[i];
            if (!s)
                continue;
            size_t j = hash32(l->v[s - 1].id) & (nc - 1);
            while (nm[j])
                j = (j + 1) & (nc - 1);
            nm[j] = s;
        }
        free(l->map);
        l->map = nm;
        l->map_cap = nc;
    }
    size_t j = hash32(id) & (l->map_cap - 1);
    while (l->map[j])
        j = (j + 1) & (l->map_cap - 1);
    l->map[j] = idx + 1;
    return 0;
}

/* The lock named @id, created on first sight; NULL when out of memory. */
static struct frd_lock *lock_for(struct frd_locks *l, uint64_t id)
{
    int64_t i = frd_lock_find(l, id);
    if (i >= 0)
        return &l->v[i];
    if (l->n >= UINT32_MAX - 1 || grow((void **)&l->v, &l->cap_v, l->n, sizeof(*l->v)))
        return NULL;
    struct frd_lock *k = &l->v[l->n];
    memset(k, 0, sizeof(*k));
    k->id = id;
    k->hold_max_task = FRD_NONE;
    k->last_release_task = FRD_NONE;
    k->last_release_ns = INT64_MIN;
    if (map_put(l, id, (uint32_t)l->n))
        return NULL;
    l->n++;
    return k;
}

/* The slot for task @task's open wait, growing the table; NULL when out of memory. */
static int32_t *wait_slot(struct frd_locks *l, int32_t task)
{
    size_t need = (size_t)task + 1;
    if (need > l->cap_task_wait) {
        size_t nc = l->cap_task_wait ? l->cap_task_wait : 64;
        while (nc < need)
            nc *= 2;
        int32_t *q = realloc(l->task_wait, nc * sizeof(*q));
        if (!q)
            return NULL;
        for (size_t i = l->cap_task_wait; i < nc; i++)
            q[i] = FRD_NONE;
        l->task_wait = q;
        l->cap_task_wait = nc;
    }
    if (need > l->ntask_wait)
        l->ntask_wait = need;
    return &l->task_wait[task];
}

/* Close task's open wait (if any) without a grant. */
static void abandon(struct frd_locks *l, int32_t *slot)
{
    if (*slot == FRD_NONE)
        return;
    struct frd_lock_wait *w = &l->waits[*slot];
    w->open = 0;
    if (l->v[w->lock].waiting)
        l->v[w->lock].waiting--;
    *slot = FRD_NONE;
}

void frd__locks_step(struct frd_locks *l, int32_t task, uint32_t thread,
                     const struct frd_event *e, int64_t ns)
{
    if (task < 0 || l->nomem || e->lock == 0)
        return; /* lock ids are nonzero (flightrec.h); a 0 names nothing */
    struct frd_lock *k = lock_for(l, e->lock);
    int32_t *slot = wait_slot(l, task);
    if (!k || !slot) {
        l->nomem = 1;
        return;
    }
    uint32_t li = (uint32_t)(k - l->v);
    switch (e->type) {
    case FR_EV_LOCK_WAIT: {
        abandon(l, slot);
        if (e->str)
            k->name = e->str;
        if (grow((void **)&l->waits, &l->cap_waits, l->nwaits, sizeof(*l->waits)) ||
            l->nwaits >= INT32_MAX) {
            l->nomem = 1;
            return;
        }
        struct frd_lock_wait *w = &l->waits[l->nwaits];
        memset(w, 0, sizeof(*w));
        w->task = task;
        w->lock = li;
        w->begin_ns = ns;
        w->end_ns = INT64_MIN;
        w->after_task = FRD_NONE;
        w->after_ns = INT64_MIN;
        w->thread = thread;
        w->open = 1;
        w->contended = k->waiting > 0;
        k->waiting++;
        *slot = (int32_t)l->nwaits++;
        break;
    }
    case FR_EV_LOCK_ACQUIRE: {
        int contended = 0;
        if (*slot != FRD_NONE && l->waits[*slot].lock == li) {
            struct frd_lock_wait *w = &l->waits[*slot];
            w->open = 0;
            w->end_ns = ns;
            w->end_thread = thread;
            if (k->last_release_task != FRD_NONE && k->last_release_task != task &&
                k->last_release_ns >= w->begin_ns) {
                w->after_task = k->last_release_task;
                w->after_ns = k->last_release_ns;
                w->after_thread = k->last_release_thread;
                w->contended = 1;
            }
            contended = w->contended;
            int64_t wait = ns - w->begin_ns;
            k->wait_total_ns += wait;
            if (wait > k->wait_max_ns)
                k->wait_max_ns = wait;
            if (k->waiting)
                k->waiting--;
            *slot = FRD_NONE;
        } else {
            abandon(l, slot); /* it waited for something else: gave that up */
        }
        k->acquisitions++;
        k->contended += contended != 0;
        if (grow((void **)&k->holders, &k->cap_holders, k->nholders, sizeof(*k->holders))) {
            l->nomem = 1;
            return;
        }
        k->holders[k->nholders++] = (struct frd_lock_hold){task, ns};
        break;
    }
    case FR_EV_LOCK_RELEASE: {
        size_t i = k->nholders;
        while (i > 0 && k->holders[i - 1].task != task)
            i--;
        if (i == 0) {
            if (grow((void **)&l->strays, &l->cap_strays, l->nstrays, sizeof(*l->strays))) {
                l->nomem = 1;
                return;
            }
            l->strays[l->nstrays++] = (struct frd_lock_stray){task, li, thread, ns};
        } else {
            int64_t hold = ns - k->holders[i - 1].since_ns;
            if (hold > k->hold_max_ns || k->hold_max_task == FRD_NONE) {
                k->hold_max_ns = hold;
                k->hold_max_task = task;
            }
            memmove(&k->holders[i - 1], &k->holders[i],
                    (k->nholders - i) * sizeof(*k->holders));
            k->nholders--;
        }
        k->last_release_task = task;
        k->last_release_ns = ns;
        k->last_release_thread = thread;
        break;
    }
    default:
        break;
    }
}

void frd__locks_free(struct frd_locks *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].holders);
    free(l->v);
    free(l->waits);
    free(l->strays);
    free(l->task_wait);
    free(l->map);
    memset(l, 0, sizeof(*l));
}

const struct frd_lock_wait *frd_lock_open_wait(const struct frd_locks *l, int32_t task)
{
    if (task < 0 || (size_t)task >= l->ntask_wait || l->task_wait[task] == FRD_NONE)
        return NULL;
    const struct frd_lock_wait *w = &l->waits[l->task_wait[task]];
    return w->open ? w : NULL;
}
