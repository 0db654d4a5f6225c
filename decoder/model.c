/*
 * decoder/model.c - merge the threads' events by time and replay them into
 * task instances and worker histories (see model.h).
 *
 * Merging: within one thread the ring order is the truth, so each event gets
 * a key that is its time made non-decreasing along its thread; events are
 * taken in (key, thread, position) order by a k-way merge over a binary heap
 * of thread cursors, each decoding its thread's pages one event ahead. Each
 * event is replayed as it comes out of the merge and then forgotten (unless
 * the caller asked for the timeline), so the model costs memory per task,
 * poll and wake, not per event. Replaying keeps, per thread, the stack of
 * polls running there and whether it is parked, and per task id the instance
 * that id currently names. A thread whose history has a hole starts over
 * after the hole: a poll end whose begin fell into the hole (or before the
 * ring's oldest page) is expected, not a protocol error.
 *
 * Polls and wakes live in chunks owned by the model (struct frd_model_mem)
 * rather than in one malloc per task: most tasks have one or two of each.
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cursor.h"
#include "prefault.h"

/* ---- growable arrays ---------------------------------------------------- */

/* Arrays are prefaulted this much at a time as they fill (see prefault.h). */
#define PREFAULT_STEP ((size_t)1 << 20)

/* Models of this many events or more start a prefaulter (prefault.h): below
 * it, a thread costs more than the faults it would move. */
#ifndef FRD_PREFAULT_EVENTS
#define FRD_PREFAULT_EVENTS ((size_t)1 << 20)
#endif

static struct frd_prefaulter *mem_prefaulter(struct frd_model_mem *a);
static int mem_mapped(const struct frd_model_mem *a, const void *p);
static int unpolled_await(struct frd_model *m, int32_t ti, int64_t ns);

/* grow's slow path: reallocate, or prefault the next step (and ask @a's
 * prefaulter for the one after it). */
static __attribute__((noinline)) int grow_slow(struct frd_model_mem *a, void **p, size_t *cap,
                                               size_t n, size_t size)
{
    if (n >= *cap) {
        size_t nc = *cap ? *cap * 2 : 2;
        /* a reserved array has room for every element there can be */
        if (mem_mapped(a, *p))
            return -ENOMEM;
        frd__prefaulter_forget(mem_prefaulter(a)); /* the array may move */
        void *q = realloc(*p, nc * size);
        if (!q)
            return -ENOMEM;
        *p = q;
        *cap = nc;
    }
    size_t off = n * size, in_step = off & (PREFAULT_STEP - 1);
    if (in_step < size) {
        /* element @n starts the next step: fault it in whole */
        size_t end = off - in_step + PREFAULT_STEP;
        if (end > *cap * size)
            end = *cap * size;
        frd__prefault((char *)*p + off, end - off); /* quick if the prefaulter did it */
        size_t next = end + PREFAULT_STEP < *cap * size ? end + PREFAULT_STEP : *cap * size;
        if (next > end)
            frd__prefaulter_ask(mem_prefaulter(a), (char *)*p + end, next - end);
    }
    return 0;
}

/* Make room for element @n of the array at *@p of capacity *@cap. Inline:
 * it runs for every task and poll, and rarely has anything to do. */
static inline int grow(struct frd_model_mem *a, void **p, size_t *cap, size_t n, size_t size)
{
    /* the first step is never prefaulted: element 0 of a small array (a
     * thread's stack of open polls, emptied and refilled at every poll) has
     * nothing to do here */
    if (n < *cap && (((n * size) & (PREFAULT_STEP - 1)) >= size || n * size < PREFAULT_STEP))
        return 0;
    return grow_slow(a, p, cap, n, size);
}

/* ---- chunks for polls and wakes ----------------------------------------- */

struct chunk {
    struct chunk *next;
    max_align_t data[];
};

/* Bytes per chunk: one huge page with the header, so that a chunk can be
 * one (frd__hugepages); a larger array gets a chunk of its own. */
#ifndef FRD_MODEL_CHUNK
#define FRD_MODEL_CHUNK (FRD_HUGE_PAGE - sizeof(struct chunk))
#endif

/* An array of a large model mapped whole (reserve()). */
struct mapping {
    void *p;
    size_t len;
};

struct frd_model_mem {
    struct chunk *chunks;
    struct mapping *maps; /* arrays reserve() mapped, freed by munmap */
    size_t nmaps;
    char *p, *end; /* free room in the newest ordinary chunk */
    /* while the model is built: the prefaulter (prefault.h), and the next
     * ordinary chunk, which it is faulting in (NULL when it is not running) */
    struct frd_prefaulter pf;
    struct chunk *spare;
};

static struct frd_prefaulter *mem_prefaulter(struct frd_model_mem *a)
{
    return &a->pf;
}

static int mem_mapped(const struct frd_model_mem *a, const void *p)
{
    for (size_t i = 0; i < a->nmaps; i++)
        if (a->maps[i].p == p)
            return 1;
    return 0;
}

/*
 * Give the growable array *@p (empty, capacity *@cap 0) room for @n elements
 * of @size bytes that never moves: address space for all of them, mapped
 * without reserving memory, so that only the pages it fills are ever
 * faulted in. @n must bound the array's final length (a model's tasks
 * cannot outnumber its events). A moved array costs more than its copy on
 * a VM that shadows the page tables: each of its pages traps again at its
 * first access at the new address (4-6 us a page on this project's CI VMs,
 * about what faulting it in cost). Nothing happens when the mapping fails:
 * the array then grows by realloc as usual.
 */
static void reserve(struct frd_model_mem *a, void **p, size_t *cap, size_t n, size_t size)
{
    if (n == 0 || n > (SIZE_MAX >> 1) / size || *cap)
        return;
    size_t len = (n * size + 4095) & ~(size_t)4095;
    void *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (q == MAP_FAILED)
        return;
    frd__hugepages(q, len);
    struct mapping *nm = realloc(a->maps, (a->nmaps + 1) * sizeof(*nm));
    if (!nm) {
        munmap(q, len);
        return;
    }
    a->maps = nm;
    a->maps[a->nmaps++] = (struct mapping){q, len};
    *p = q;
    *cap = n;
}

/* Free an array that may have been reserve()d. */
static void mem_free_array(struct frd_model_mem *a, void *p)
{
    for (size_t i = 0; a && i < a->nmaps; i++)
        if (a->maps[i].p == p) {
            munmap(p, a->maps[i].len);
            a->maps[i] = a->maps[--a->nmaps];
            return;
        }
    free(p);
}

/* The model is built: stop the prefaulter, free the chunk it was readying. */
static void mem_done(struct frd_model_mem *a)
{
    frd__prefaulter_stop(&a->pf);
    free(a->spare);
    a->spare = NULL;
}

/* A chunk for @size bytes, aligned to a huge page and asked to be one
 * (frd__hugepages) when it is at least that large. */
static struct chunk *chunk_new(size_t size)
{
    size_t bytes = sizeof(struct chunk) + size;
    if (bytes < FRD_HUGE_PAGE)
        return malloc(bytes);
    void *c;
    if (posix_memalign(&c, FRD_HUGE_PAGE, bytes) != 0)
        return NULL;
    frd__hugepages(c, bytes);
    return c;
}

/* Arrays in chunks hold polls and wakes, whose widest fields are 8 bytes: 8
 * is all the alignment they need (16 would round a 24-byte wake up to 32). */
#define MEM_ALIGN ((size_t)8)
_Static_assert(_Alignof(struct frd_poll) <= MEM_ALIGN && _Alignof(struct frd_wake) <= MEM_ALIGN,
               "chunk arrays are 8-byte aligned");

static void *mem_alloc(struct frd_model_mem *a, size_t n)
{
    n = (n + MEM_ALIGN - 1) & ~(MEM_ALIGN - 1);
    if ((size_t)(a->end - a->p) >= n) {
        void *r = a->p;
        a->p += n;
        return r;
    }
    size_t size = n > FRD_MODEL_CHUNK / 4 ? n : FRD_MODEL_CHUNK;
    struct chunk *c;
    if (size == FRD_MODEL_CHUNK && a->spare) {
        c = a->spare; /* faulted in by the prefaulter, or being */
        a->spare = NULL;
    } else {
        c = chunk_new(size);
        if (!c)
            return NULL;
        if (size == FRD_MODEL_CHUNK)
            frd__prefault(c, sizeof(*c) + size); /* filled from here on */
    }
    c->next = a->chunks;
    a->chunks = c;
    char *base = (char *)c->data;
    if (size == FRD_MODEL_CHUNK) {
        a->p = base + n;
        a->end = base + size;
        if (a->pf.impl && (a->spare = chunk_new(size)) != NULL)
            frd__prefaulter_ask(&a->pf, a->spare, sizeof(*c) + size);
    }
    return base;
}

/*
 * Make room for element @n of the array at *@p, whose capacity is implied by
 * its length: @min (a power of two) up to @min elements, then the next power
 * of two. Outgrown arrays stay in their chunk until the model is freed.
 */
static __attribute__((noinline)) int grow_in_slow(struct frd_model_mem *a, void **p, size_t n,
                                                  size_t size, size_t min)
{
    size_t nc = n ? n * 2 : min;
    void *q = mem_alloc(a, nc * size);
    if (!q)
        return -ENOMEM;
    if (n)
        memcpy(q, *p, n * size);
    *p = q;
    return 0;
}

static inline int grow_in(struct frd_model_mem *a, void **p, size_t n, size_t size, size_t min)
{
    if (n != 0 && (n < min || (n & (n - 1)) != 0))
        return 0;
    return grow_in_slow(a, p, n, size, min);
}

/* ---- id -> current instance map (open addressing) ----------------------- */

/*
 * A slot is the instance (its id is m->tasks[inst].id) and 32 bits of the
 * id's tag, which also place it in the table: most probes do not have to
 * look at the task, and growing the table does not look at any.
 *
 * The tag keeps ids that differ only in their low 3 bits next to each other:
 * it is a hash of id >> 3 with its low 3 bits replaced by the id's own. Ids
 * handed out by a counter (the common case) then fill a cache line of slots
 * 8 at a time, one cache and TLB miss per 8 new tasks instead of one per
 * task; other ids are spread as by any hash. Groups of 8 make clusters 8
 * slots long at worst, one cache line, which linear probing crosses cheaply.
 */
struct slot {
    uint32_t tag;
    uint32_t inst1; /* the instance + 1; 0: empty, so that a table fresh from
                       calloc (pages the kernel zeroed) needs no filling */
};

struct idmap {
    struct slot *s;
    size_t cap, n; /* cap: a power of two, at most 2^32 */
    uint32_t reused; /* times an id was given a new instance (epoch of the
                        threads' last_inst caches, see struct tstate) */
    struct frd_prefaulter *asked; /* touching the table (idmap_size), or NULL */
};

static inline uint32_t hash32(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static inline uint32_t id_tag(uint64_t id)
{
    return (hash32(id >> 3) & ~(uint32_t)7) | (uint32_t)(id & 7);
}

/* The slot holding @id, or the empty slot where it would go. */
static struct slot *idmap_find(const struct idmap *im, const struct frd_task *tasks, uint64_t id)
{
    uint32_t tag = id_tag(id);
    size_t j = tag & (im->cap - 1);
    for (;;) {
        struct slot *sl = &im->s[j];
        if (!sl->inst1 || (sl->tag == tag && tasks[sl->inst1 - 1].id == id))
            return sl;
        j = (j + 1) & (im->cap - 1);
    }
}

static int32_t idmap_get(const struct idmap *im, const struct frd_task *tasks, uint64_t id)
{
    return im->cap ? (int32_t)(idmap_find(im, tasks, id)->inst1 - 1) : FRD_NONE;
}

/* A zeroed table of @nc slots. */
static struct slot *idmap_table(size_t nc)
{
    struct slot *s = nc <= ((size_t)1 << 32) ? calloc(nc, sizeof(struct slot)) : NULL;
    if (s)
        frd__hugepages(s, nc * sizeof(*s));
    return s;
}

/*
 * Size the empty map for @n ids before the replay (the spawns the pages
 * hold: every spawn gives an id an instance), so that a large model does not
 * rehash its way up, faulting in every smaller table on the way. Ids first
 * seen without their spawn may still grow it. The table's pages are asked of
 * @pf (when running) to be touched ahead of the probes. Nothing happens
 * when memory is short: the map grows as usual.
 */
static void idmap_size(struct idmap *im, size_t n, struct frd_prefaulter *pf)
{
    size_t nc = 64;
    while (nc * 3 < n * 4 && nc < ((size_t)1 << 32))
        nc *= 2;
    if (nc == 64 || im->cap)
        return;
    struct slot *s = idmap_table(nc);
    if (!s)
        return;
    im->s = s;
    im->cap = nc;
    if (pf->impl) {
        frd__prefaulter_ask(pf, s, nc * sizeof(*s));
        im->asked = pf;
    }
}

/* Let @id name instance @inst (of that id) from now on. The table doubles
 * when it is 3/4 full. */
static int idmap_set(struct idmap *im, const struct frd_task *tasks, uint64_t id, int32_t inst)
{
    if ((im->n + 1) * 4 > im->cap * 3) {
        size_t nc = im->cap ? im->cap * 2 : 64;
        struct slot *ns = idmap_table(nc);
        if (!ns)
            return -ENOMEM;
        frd__prefault(ns, nc * sizeof(*ns));
        for (size_t i = 0; i < im->cap; i++) {
            if (!im->s[i].inst1)
                continue;
            size_t j = im->s[i].tag & (nc - 1);
            while (ns[j].inst1)
                j = (j + 1) & (nc - 1);
            ns[j] = im->s[i];
        }
        if (im->asked) /* it may still be touching the table */
            frd__prefaulter_forget(im->asked);
        im->asked = NULL;
        free(im->s);
        im->s = ns;
        im->cap = nc;
    }
    struct slot *sl = idmap_find(im, tasks, id);
    if (!sl->inst1)
        im->n++;
    else
        im->reused++;
    sl->tag = id_tag(id);
    sl->inst1 = (uint32_t)inst + 1;
    return 0;
}

/* ---- replay state ------------------------------------------------------- */

struct open_poll {
    int32_t task, poll;
};

/* Events decoded ahead per thread. */
#define AHEAD 32

struct tstate {
    struct open_poll *stack;
    size_t n, cap;
    int synced;  /* a poll begin was seen since the last hole */
    int parked;
    int park_seen; /* a park or unpark was seen on the thread */
    int64_t parked_since;
    size_t cap_polls, cap_parked;
    /* the instance the last task event on this thread was for: consecutive
     * events of one task need no look-up. Valid while last_epoch equals
     * ids.reused: a new instance of an id that had one makes every thread
     * look its id up again (rare: new ids do not invalidate anything). */
    uint64_t last_id;
    int32_t last_inst;
    uint32_t last_epoch;
    /* merge: the thread's next event, its key and its index in the thread */
    struct frd_tcur cur;
    const struct frd_event *e; /* = &ahead[next]; its key is in the heap */
    size_t idx;
    /* events decoded ahead of the merge, so that the id-map slots of new
     * tasks can be fetched into the cache before they are needed */
    struct frd_event ahead[AHEAD];
    uint32_t nahead, next;
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
    if (grow(m->mem, (void **)&m->notes, &r->cap_notes, m->nnotes, sizeof(*m->notes)))
        return;
    struct frd_protocol_note *n = &m->notes[m->nnotes++];
    n->task = task;
    n->thread = thread;
    n->ns = ns;
    snprintf(n->what, sizeof(n->what), "%s", what);
}

/* A new instance of task @id, which from now on is what @id names. */
static int32_t new_task(struct replay *r, uint64_t id, int64_t ns)
{
    struct frd_model *m = r->m;
    if (m->ntasks >= INT32_MAX ||
        grow(m->mem, (void **)&m->tasks, &r->cap_tasks, m->ntasks, sizeof(*m->tasks)))
        return FRD_NONE;
    struct frd_task *t = &m->tasks[m->ntasks];
    /* the task after the next one will be written soon: its lines start
     * coming in now (they are new memory, in no cache) */
    if (m->ntasks + 2 < r->cap_tasks) {
        const char *ahead = (const char *)&m->tasks[m->ntasks + 2];
        __builtin_prefetch(ahead, 1);
        __builtin_prefetch(ahead + 64, 1);
        __builtin_prefetch(ahead + 128, 1);
    }
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->parent_inst = FRD_NONE;
    t->first_ns = t->last_ns = ns;
    t->waker_zero_ns = INT64_MIN;
    t->ready_ref = FRD_NONE;
    if (idmap_set(&r->ids, m->tasks, id, (int32_t)m->ntasks))
        return FRD_NONE;
    return (int32_t)m->ntasks++;
}

/* The instance an event for @id belongs to; creates one for an id first seen
 * here (its spawn fell before the recording window). */
static int32_t task_for(struct replay *r, uint64_t id, int64_t ns)
{
    int32_t ti = idmap_get(&r->ids, r->m->tasks, id);
    return ti != FRD_NONE ? ti : new_task(r, id, ns);
}

/* The instance event @e on thread @ts is for (a new one for a spawn). */
static int32_t instance(struct replay *r, struct tstate *ts, const struct frd_event *e, int64_t ns)
{
    if (e->type != FR_EV_SPAWN && e->task == ts->last_id && ts->last_inst != FRD_NONE &&
        ts->last_epoch == r->ids.reused)
        return ts->last_inst;
    int32_t ti = e->type == FR_EV_SPAWN ? new_task(r, e->task, ns) : task_for(r, e->task, ns);
    ts->last_id = e->task;
    ts->last_inst = ti;
    ts->last_epoch = r->ids.reused;
    return ti;
}

/*
 * Replay event @e of thread @thread at time @ns (its merge key). *@task and
 * *@ref receive what a timeline entry for it records (see struct frd_mev).
 */
static void step(struct replay *r, uint32_t thread, const struct frd_event *e, int64_t ns,
                 int32_t *task, int32_t *ref)
{
    struct frd_model *m = r->m;
    struct frd_model_mem *mem = m->mem;
    struct tstate *ts = &r->ts[thread];
    struct frd_worker *w = &m->workers[thread];
    *task = FRD_NONE;
    *ref = FRD_NONE;

    switch (e->type) {
    case FR_EV_PARK:
        if (!ts->parked) {
            ts->parked = 1;
            ts->parked_since = ns;
        }
        ts->park_seen = 1;
        return;
    case FR_EV_UNPARK: {
        /* only the thread's first park/unpark event may be an unpark whose
         * park the ring lost (parked since its oldest event); a later unpark
         * with no park before it is a duplicate (an adapter may record one)
         * and parked nobody */
        int was = ts->parked || !ts->park_seen;
        int64_t since = ts->parked ? ts->parked_since : m->dump->threads[thread].first_ns;
        ts->parked = 0;
        ts->park_seen = 1;
        if (was &&
            !grow(m->mem, (void **)&w->parked, &ts->cap_parked, w->nparked, sizeof(*w->parked)))
            w->parked[w->nparked++] = (struct frd_span){since, ns};
        return;
    }
    case FR_EV_THREAD_NAME:
        return;
    default:
        break;
    }

    /* a spawn always starts a new instance: spawn is a task's first event */
    int32_t ti = instance(r, ts, e, ns);
    if (ti == FRD_NONE)
        return;
    struct frd_task *t = &m->tasks[ti];
    *task = ti;
    t->last_ns = ns;

    switch (e->type) {
    case FR_EV_SPAWN: {
        t->spawn_seen = 1;
        t->spawn_thread = thread;
        t->name = e->str;
        if (e->parent) {
            t->parent_inst = idmap_get(&r->ids, m->tasks, e->parent);
            if (t->parent_inst == FRD_NONE)
                (void)frd__model_far_parent(m, ti, e->parent); /* -ENOMEM: parent unknown */
        }
        t->ready_ref = FRD_NONE;
        t->ready_from = FRD_READY_SPAWN;
        break;
    }
    case FR_EV_POLL_BEGIN: {
        ts->synced = 1;
        if (t->dropped)
            note(r, ti, thread, ns, "poll after drop");
        if (frd_task_open_poll(t) != FRD_NONE) {
            note(r, ti, thread, ns, "poll begins while another poll of the task runs");
            t->stale_running = 1;
        } else if (!t->dropped && t->npolls && t->polls[t->npolls - 1].result == FRD_POLL_READY)
            note(r, ti, thread, ns, "poll after the task's poll returned ready");
        if (t->npolls >= INT32_MAX ||
            grow_in(mem, (void **)&t->polls, t->npolls, sizeof(*t->polls), 2))
            return;
        struct frd_poll *p = &t->polls[t->npolls];
        memset(p, 0, sizeof(*p));
        p->thread = thread;
        p->begin_ns = p->end_ns = ns;
        p->result = FRD_POLL_RUNNING;
        p->ready_from = t->ready_from;
        p->ready_ref = t->ready_ref;
        t->ready_ref = FRD_NONE;
        t->ready_from = FRD_READY_UNKNOWN;
        *ref = (int32_t)t->npolls;
        t->npolls++;
        if (!grow(mem, (void **)&ts->stack, &ts->cap, ts->n, sizeof(*ts->stack)))
            ts->stack[ts->n++] = (struct open_poll){ti, *ref};
        if (!grow(mem, (void **)&w->polls, &ts->cap_polls, w->npolls, sizeof(*w->polls)))
            w->polls[w->npolls++] = (struct frd_poll_ref){ti, *ref};
        break;
    }
    case FR_EV_POLL_PENDING:
    case FR_EV_POLL_READY: {
        size_t k = ts->n;
        while (k > 0 && ts->stack[k - 1].task != ti)
            k--;
        if (k == 0) {
            if (ts->synced)
                note(r, ti, thread, ns, "poll ends without a poll begin");
            break;
        }
        struct open_poll op = ts->stack[k - 1];
        if (k < ts->n) /* not the innermost poll: rare, no call otherwise */
            memmove(&ts->stack[k - 1], &ts->stack[k], (ts->n - k) * sizeof(*ts->stack));
        ts->n--;
        struct frd_poll *p = &t->polls[op.poll];
        p->end_ns = ns;
        p->result = e->type == FR_EV_POLL_READY ? FRD_POLL_READY : FRD_POLL_PENDING;
        w->busy_ns += ns - p->begin_ns;
        *ref = op.poll;
        if (p->result == FRD_POLL_PENDING && p->woken_during) {
            /* woken while it ran: it should be polled again right away */
            t->ready_ref = op.poll;
            t->ready_from = FRD_READY_SELF;
        }
        break;
    }
    case FR_EV_AWAIT:
    case FR_EV_AWAIT_EXTERNAL:
    case FR_EV_IDLE:
        t->wait = e->type == FR_EV_AWAIT   ? FRD_WAIT_INTERNAL
                  : e->type == FR_EV_IDLE ? FRD_WAIT_STOPPED
                                          : FRD_WAIT_EXTERNAL;
        if (e->type != FR_EV_IDLE) {
            t->await_str = e->str;
            if (!t->npolls)
                (void)unpolled_await(m, ti, ns); /* -ENOMEM: the time is not known */
        }
        int32_t open = frd_task_open_poll(t);
        if (open != FRD_NONE) {
            if (e->type != FR_EV_IDLE)
                t->polls[open].await_str = e->str;
        } else if (!t->dropped) {
            /* a loop's start call outside any poll (uv_read_start, event_add):
             * the task waits from now on, it is not runnable */
            t->ready_ref = FRD_NONE;
            t->ready_from = FRD_READY_UNKNOWN;
            t->waiting_unpolled = 1;
        }
        break;
    case FR_EV_WAKE: {
        if (t->dropped)
            note(r, ti, thread, ns, "wake after drop");
        if (t->nwakes >= INT32_MAX ||
            grow_in(mem, (void **)&t->wakes, t->nwakes, sizeof(*t->wakes), 1))
            return;
        struct frd_wake *wk = &t->wakes[t->nwakes];
        memset(wk, 0, sizeof(*wk));
        wk->ns = ns;
        wk->thread = thread;
        wk->by_inst = FRD_NONE;
        if (ts->n)
            wk->by_inst = ts->stack[ts->n - 1].task;
        int32_t running = frd_task_open_poll(t);
        if (running != FRD_NONE) {
            wk->during_own_poll = 1;
            t->polls[running].woken_during = 1;
        } else if (((t->npolls && t->polls[t->npolls - 1].result == FRD_POLL_PENDING) ||
                    (!t->npolls && t->waiting_unpolled)) &&
                   t->ready_from == FRD_READY_UNKNOWN) {
            wk->while_idle = 1;
            t->ready_ref = (int32_t)t->nwakes;
            t->ready_from = FRD_READY_WAKE;
        }
        *ref = (int32_t)t->nwakes;
        t->nwakes++;
        break;
    }
    case FR_EV_WAKER_CLONE:
        if (t->waker_refs < INT32_MAX)
            t->waker_refs++;
        break;
    case FR_EV_WAKER_DROP:
        if (t->waker_refs > INT32_MIN)
            t->waker_refs--;
        if (t->waker_drops < UINT32_MAX)
            t->waker_drops++;
        if (t->waker_refs == 0)
            t->waker_zero_ns = ns;
        break;
    case FR_EV_DROP:
        if (!t->dropped) {
            t->dropped = 1;
            t->drop_ns = ns;
        }
        t->ready_ref = FRD_NONE;
        t->ready_from = FRD_READY_UNKNOWN;
        break;
    case FR_EV_LOCK_WAIT:
    case FR_EV_LOCK_ACQUIRE:
    case FR_EV_LOCK_RELEASE:
        /* the lock model is kept apart (locks.c) */
        frd__locks_step(&m->locks, ti, thread, e, ns);
        break;
    case FR_EV_MARK:
    default:
        break;
    }
}

/* ---- merge -------------------------------------------------------------- */

/*
 * Move thread @ts to its next event (ts->e), decoding a batch when the last
 * one is used up. Return: 0 at the end of the thread's events.
 */
static inline int advance(struct tstate *ts, const struct idmap *ids)
{
    if (++ts->next < ts->nahead) {
        ts->e = &ts->ahead[ts->next];
        return 1;
    }
    uint32_t n = 0;
    /* a copy of the cursor on the stack: its fields stay in registers while
     * the batch is decoded */
    struct frd_tcur cur = ts->cur;
    while (n < AHEAD && frd__tcur_next(&cur, &ts->ahead[n])) {
        if (ts->ahead[n].type == FR_EV_SPAWN && ids->cap)
            /* a new id, most likely: its slot is a cache miss, start it now */
            __builtin_prefetch(&ids->s[id_tag(ts->ahead[n].task) & (ids->cap - 1)], 1);
        n++;
    }
    ts->cur = cur;
    ts->nahead = n;
    ts->next = 0;
    ts->e = &ts->ahead[0];
    return n > 0;
}

/* A heap entry: a thread and the key of its next event. */
struct hent {
    int64_t key;
    uint32_t t;
};

/* Merge order of two threads' next events: by key, then by thread index. */
static inline int before(struct hent a, struct hent b)
{
    return a.key < b.key || (a.key == b.key && a.t < b.t);
}

static void sift_down(struct hent *heap, size_t hn)
{
    size_t c = 0;
    for (;;) {
        size_t l = 2 * c + 1, best = c;
        if (l < hn && before(heap[l], heap[best]))
            best = l;
        if (l + 1 < hn && before(heap[l + 1], heap[best]))
            best = l + 1;
        if (best == c)
            return;
        struct hent tmp = heap[c];
        heap[c] = heap[best];
        heap[best] = tmp;
        c = best;
    }
}

static void sift_up(struct hent *heap, size_t c)
{
    while (c > 0) {
        size_t p = (c - 1) / 2;
        if (!before(heap[c], heap[p]))
            return;
        struct hent tmp = heap[c];
        heap[c] = heap[p];
        heap[p] = tmp;
        c = p;
    }
}

/* ---- side tables: what few tasks need, by task ------------------------- */

/* Both begin with the task they are about (side_find reads it there). */
_Static_assert(offsetof(struct frd_far_parent, task) == 0 &&
                   offsetof(struct frd_unpolled_await, task) == 0,
               "side-table entries begin with their task");

/* Room for entry @n of the side table *@v (entries of @size bytes, @n in
 * use): its capacity is implied, doubled at each power of two. Return: 0 or
 * -ENOMEM (then nothing changed). */
static int side_room(void **v, size_t n, size_t size)
{
    if (n & (n - 1))
        return 0;
    void *q = realloc(*v, (n ? 2 * n : 4) * size);
    if (!q)
        return -ENOMEM;
    *v = q;
    return 0;
}

/* The entry of task @ti in the side table @v (@n entries of @size bytes,
 * sorted by task, one per task), or NULL. */
static const void *side_find(const void *v, size_t n, size_t size, int32_t ti)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int32_t k;
        memcpy(&k, (const char *)v + mid * size, sizeof(k));
        if (k < ti)
            lo = mid + 1;
        else
            hi = mid;
    }
    int32_t k;
    if (lo == n || (memcpy(&k, (const char *)v + lo * size, sizeof(k)), k != ti))
        return NULL;
    return (const char *)v + lo * size;
}

/* Note an await by task @ti, not polled yet, at @ns (in merge order: times
 * never go back). Return: 0 or -ENOMEM (then nothing changed). */
static int unpolled_await(struct frd_model *m, int32_t ti, int64_t ns)
{
    size_t n = m->nunpolled_awaits;
    if (n && m->unpolled_awaits[n - 1].task == ti) {
        m->unpolled_awaits[n - 1].ns = ns; /* the same task again: keep the last */
        return 0;
    }
    if (side_room((void **)&m->unpolled_awaits, n, sizeof(*m->unpolled_awaits)))
        return -ENOMEM;
    m->unpolled_awaits[m->nunpolled_awaits++] = (struct frd_unpolled_await){ti, ns};
    return 0;
}

static int cmp_unpolled_await(const void *a, const void *b)
{
    const struct frd_unpolled_await *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/* The replay is over: the awaits by task, each task's last only, and only
 * for tasks still never polled. */
static void last_unpolled_awaits(struct frd_model *m)
{
    struct frd_unpolled_await *v = m->unpolled_awaits;
    size_t n = m->nunpolled_awaits, w = 0;
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_unpolled_await);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && v[i + 1].task == v[i].task)
            continue; /* a later one of the same task follows */
        if (m->tasks[v[i].task].npolls == 0)
            v[w++] = v[i];
    }
    m->nunpolled_awaits = w;
}

int64_t frd_task_unpolled_await_ns(const struct frd_model *m, const struct frd_task *t)
{
    if (t->npolls)
        return INT64_MIN;
    const struct frd_unpolled_await *a = side_find(
        m->unpolled_awaits, m->nunpolled_awaits, sizeof(*a), (int32_t)(t - m->tasks));
    return a ? a->ns : INT64_MIN;
}

int frd__model_far_parent(struct frd_model *m, int32_t ti, uint64_t parent)
{
    if (side_room((void **)&m->far_parents, m->nfar_parents, sizeof(*m->far_parents)))
        return -ENOMEM;
    m->far_parents[m->nfar_parents++] = (struct frd_far_parent){ti, parent};
    return 0;
}

uint64_t frd_task_far_parent(const struct frd_model *m, const struct frd_task *t)
{
    if (t->parent_inst != FRD_NONE)
        return 0;
    const struct frd_far_parent *f =
        side_find(m->far_parents, m->nfar_parents, sizeof(*f), (int32_t)(t - m->tasks));
    return f ? f->parent : 0;
}

uint64_t frd_task_parent(const struct frd_model *m, const struct frd_task *t)
{
    return t->parent_inst != FRD_NONE ? m->tasks[t->parent_inst].id
                                      : frd_task_far_parent(m, t);
}

static int cmp_far_parent(const void *a, const void *b)
{
    const struct frd_far_parent *x = a, *y = b;
    return x->task < y->task ? -1 : x->task > y->task;
}

/* The replay and the SPAWNS section are over: far parents in task order
 * (each added its own in task order, the section's after the replay's). */
static void sort_far_parents(struct frd_model *m)
{
    for (size_t i = 1; i < m->nfar_parents; i++)
        if (m->far_parents[i - 1].task > m->far_parents[i].task) {
            qsort(m->far_parents, m->nfar_parents, sizeof(*m->far_parents), cmp_far_parent);
            return;
        }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int frd_task_figures(const struct frd_model *m, int32_t ti, struct frd_task_figures *f)
{
    const struct frd_task *t = &m->tasks[ti];
    int64_t end = t->dropped ? t->drop_ns : m->end_ns;
    int64_t small[16], *delays = small;
    size_t n = 0;
    for (size_t i = 0; i < t->npolls; i++)
        n += t->polls[i].ready_from != FRD_READY_UNKNOWN;
    if (n > 16 && !(delays = malloc(n * sizeof(*delays))))
        return -ENOMEM;
    *f = (struct frd_task_figures){0, 0, -1, -1};
    n = 0;
    for (size_t i = 0; i < t->npolls; i++) {
        const struct frd_poll *p = &t->polls[i];
        f->busy_ns += p->end_ns - p->begin_ns;
        if (p->ready_from != FRD_READY_UNKNOWN)
            delays[n++] = p->begin_ns - frd_poll_ready_ns(t, p);
        if (p->result == FRD_POLL_PENDING) {
            int64_t next = i + 1 < t->npolls ? t->polls[i + 1].begin_ns : end;
            if (next > p->end_ns)
                f->idle_ns += next - p->end_ns;
        }
    }
    if (n) {
        if (n <= 16) {
            /* most tasks poll once or twice: no qsort call for those */
            for (size_t i = 1; i < n; i++) {
                int64_t v = delays[i];
                size_t k = i;
                for (; k > 0 && delays[k - 1] > v; k--)
                    delays[k] = delays[k - 1];
                delays[k] = v;
            }
        } else {
            qsort(delays, n, sizeof(*delays), cmp_i64);
        }
        f->delay_p50_ns = delays[(n - 1) / 2];
        f->delay_p99_ns = delays[(n * 99 + 99) / 100 - 1];
    }
    if (delays != small)
        free(delays);
    return 0;
}

/* Each thread's covered end and the model's (the earliest), from the copy
 * times the dump gives. An exited thread records nothing more: it covers to
 * the end. */
static void coverage_ends(struct frd_model *m)
{
    const struct frd_dump *d = m->dump;
    m->covered_end_ns = m->end_ns;
    m->copy_times = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *th = &d->threads[i];
        int64_t e = m->end_ns;
        if (th->copied && th->state == 1) {
            m->copy_times = 1;
            e = th->copied_ns;
            if (th->nevents && th->last_ns > e)
                e = th->last_ns;
            if (e > m->end_ns)
                e = m->end_ns;
            if (e < m->start_ns)
                e = m->start_ns;
            if (e < m->covered_end_ns)
                m->covered_end_ns = e;
        }
        m->workers[i].covered_end_ns = e;
    }
}

/* Poll @p of @t, still running at the end of the replay, ends where its
 * thread's ring stops covering (or at the task's drop). */
static void end_running_poll(const struct frd_model *m, const struct frd_task *t,
                             struct frd_poll *p)
{
    int64_t pe = t->dropped ? t->drop_ns : m->workers[p->thread].covered_end_ns;
    p->end_ns = pe > p->begin_ns ? pe : p->begin_ns;
}

/* A task once the replay is over: its polls still running end (only its
 * last can, unless one began while another ran), and its state. */
static void finish_task(struct frd_model *m, struct frd_task *t)
{
    int32_t open = frd_task_open_poll(t); /* (ending it leaves it running) */
    if (t->stale_running) {
        for (size_t i = 0; i < t->npolls; i++)
            if (t->polls[i].result == FRD_POLL_RUNNING)
                end_running_poll(m, t, &t->polls[i]);
    } else if (open != FRD_NONE) {
        end_running_poll(m, t, &t->polls[open]);
    }
    if (t->dropped)
        t->state = FRD_TASK_DROPPED;
    else if (open != FRD_NONE)
        t->state = FRD_TASK_RUNNING;
    else if (t->npolls == 0 && t->ready_from == FRD_READY_UNKNOWN && t->waiting_unpolled)
        t->state = FRD_TASK_IDLE; /* started (awaits), never called back yet */
    else if (t->npolls == 0)
        t->state = FRD_TASK_SPAWNED;
    else if (t->ready_from != FRD_READY_UNKNOWN)
        t->state = FRD_TASK_RUNNABLE;
    else if (t->polls[t->npolls - 1].result == FRD_POLL_READY)
        t->state = FRD_TASK_READY;
    else
        t->state = FRD_TASK_IDLE;
}

int frd_model_build(const struct frd_dump *d, struct frd_model *m)
{
    return frd_model_build_ex(d, (d->flags & FRD_OPEN_EVENTS) ? FRD_MODEL_TIMELINE : 0, m);
}

int frd_model_build_ex(const struct frd_dump *d, unsigned flags, struct frd_model *m)
{
    memset(m, 0, sizeof(*m));
    if ((flags & FRD_MODEL_TIMELINE) && !(d->flags & FRD_OPEN_EVENTS))
        return -EINVAL;
    m->dump = d;
    size_t total = 0, spawns = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        total += d->threads[i].nevents;
        spawns += d->threads[i].nspawns;
    }
    size_t nt = d->nthreads ? d->nthreads : 1;
    struct replay r = {.m = m, .d = d};
    m->workers = calloc(nt, sizeof(*m->workers));
    m->mem = calloc(1, sizeof(*m->mem));
    r.ts = calloc(nt, sizeof(*r.ts));
    struct hent *heap = malloc(nt * sizeof(*heap));
    if (flags & FRD_MODEL_TIMELINE)
        m->ev = malloc((total ? total : 1) * sizeof(*m->ev));
    if (!m->workers || !m->mem || !r.ts || !heap || ((flags & FRD_MODEL_TIMELINE) && !m->ev)) {
        free(r.ts);
        free(heap);
        frd_model_free(m);
        return -ENOMEM;
    }
    /* a large model: its arrays are faulted in by another thread, ahead,
     * and those that grow with the events (tasks, each worker's polls and
     * parked spans) never move */
    if (total >= FRD_PREFAULT_EVENTS || frd__prefault_always) {
        (void)frd__prefaulter_start(&m->mem->pf);
        reserve(m->mem, (void **)&m->tasks, &r.cap_tasks, total, sizeof(*m->tasks));
        /* (only the threads whose polls could fill a prefault step: a
         * dump of many small threads maps nothing per thread) */
        for (size_t i = 0; i < d->nthreads; i++) {
            size_t n = d->threads[i].nevents;
            if (n >= PREFAULT_STEP / sizeof(*m->workers[i].polls))
                reserve(m->mem, (void **)&m->workers[i].polls, &r.ts[i].cap_polls, n,
                        sizeof(*m->workers[i].polls));
            /* a span per unpark, and one for a thread parked at the end */
            if (n >= PREFAULT_STEP / sizeof(*m->workers[i].parked))
                reserve(m->mem, (void **)&m->workers[i].parked, &r.ts[i].cap_parked, n + 1,
                        sizeof(*m->workers[i].parked));
        }
    }
    idmap_size(&r.ids, spawns, &m->mem->pf);
    m->start_ns = INT64_MAX;
    m->end_ns = frd_end_ns(d);
    size_t hn = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *th = &d->threads[i];
        struct tstate *ts = &r.ts[i];
        frd_tcur_init(&ts->cur, d, th);
        ts->last_inst = FRD_NONE;
        ts->next = ts->nahead = 0;
        if (!advance(ts, &r.ids))
            continue;
        if (th->first_ns < m->start_ns)
            m->start_ns = th->first_ns;
        heap[hn] = (struct hent){ts->e->ns, (uint32_t)i};
        sift_up(heap, hn++);
    }
    if (m->start_ns == INT64_MAX)
        m->start_ns = m->end_ns;
    if (m->end_ns < m->start_ns)
        m->end_ns = m->start_ns;
    coverage_ends(m);

    /*
     * Each thread's keys are non-decreasing, so the merge is a k-way merge
     * over a binary heap of thread cursors: O(N log T), one event per thread
     * decoded at a time. The thread on top keeps going without touching the
     * heap while its next key still comes before every other thread's (the
     * smaller of the top's two children): with one thread, or threads whose
     * events come in runs, most events cost no heap operation.
     */
    size_t k = 0;
    while (hn > 0) {
        uint32_t ti = heap[0].t;
        int64_t key = heap[0].key;
        const struct frd_thread *th = &d->threads[ti];
        struct tstate *ts = &r.ts[ti];
        struct hent bound = {INT64_MAX, UINT32_MAX}; /* the next thread's key */
        if (hn > 1)
            bound = hn > 2 && before(heap[2], heap[1]) ? heap[2] : heap[1];
        for (;;) {
            if (!th->complete_head && ts->idx == th->first_whole) {
                /* history before this point has holes: forget open polls */
                ts->n = 0;
                ts->synced = 0;
            }
            int32_t task, ref;
            step(&r, ti, ts->e, key, &task, &ref);
            if (m->ev)
                m->ev[k] = (struct frd_mev){&th->events[ts->idx], key, ti, task, ref};
            k++;
            ts->idx++;
            if (!advance(ts, &r.ids)) {
                heap[0] = heap[--hn];
                break;
            }
            if (ts->e->ns > key)
                key = ts->e->ns;
            if (!before((struct hent){key, ti}, bound)) {
                heap[0].key = key;
                break;
            }
        }
        sift_down(heap, hn);
    }
    free(heap);
    mem_done(m->mem); /* the arrays are filled: no more prefaulting */
    m->nevents = k;
    m->nev = m->ev ? k : 0;

    /* workers still parked at the end */
    for (size_t i = 0; i < d->nthreads; i++) {
        struct tstate *ts = &r.ts[i];
        struct frd_worker *w = &m->workers[i];
        if (ts->parked &&
            !grow(m->mem, (void **)&w->parked, &ts->cap_parked, w->nparked, sizeof(*w->parked)))
            w->parked[w->nparked++] = (struct frd_span){ts->parked_since, w->covered_end_ns};
        free(ts->stack);
    }
    free(r.ts);
    free(r.ids.s);
    for (size_t i = 0; i < m->ntasks; i++)
        finish_task(m, &m->tasks[i]);
    frd__model_spawn_names(m);
    sort_far_parents(m);
    last_unpolled_awaits(m);
    return 0;
}

void frd_model_free(struct frd_model *m)
{
    if (m->mem)
        mem_done(m->mem); /* before any array it may touch is freed */
    if (m->workers && m->dump)
        for (size_t i = 0; i < m->dump->nthreads; i++) {
            mem_free_array(m->mem, m->workers[i].polls);
            mem_free_array(m->mem, m->workers[i].parked);
        }
    mem_free_array(m->mem, m->tasks);
    if (m->mem) {
        for (struct chunk *c = m->mem->chunks, *next; c; c = next) {
            next = c->next;
            free(c);
        }
        free(m->mem->maps);
        free(m->mem);
    }
    free(m->workers);
    free(m->ev);
    free(m->notes);
    free(m->far_parents);
    free(m->unpolled_awaits);
    frd__locks_free(&m->locks);
    memset(m, 0, sizeof(*m));
}

/* ---- queries ------------------------------------------------------------ */

static int thread_covered(const struct frd_model *m, size_t i, int64_t a_ns, int64_t b_ns)
{
    const struct frd_thread *t = &m->dump->threads[i];
    if (m->copy_times && b_ns > m->workers[i].covered_end_ns)
        return 0; /* copied before b: what it did after is not in the dump */
    if (t->pages_started == 0)
        return 1; /* never recorded anything */
    if (t->complete_tail && t->nevents && t->last_ns < a_ns && t->state == 2)
        return 1; /* exited before the span, nothing lost after its end */
    if (!t->complete_head && t->covered_from_ns > a_ns)
        return 0;
    if (!t->complete_tail && (t->nevents == 0 || t->last_ns < b_ns))
        return 0;
    return 1;
}

int frd_model_thread_covered(const struct frd_model *m, uint32_t thread, int64_t a_ns,
                             int64_t b_ns)
{
    return thread < m->dump->nthreads && thread_covered(m, thread, a_ns, b_ns);
}

int frd_model_covered(const struct frd_model *m, int64_t a_ns, int64_t b_ns)
{
    for (size_t i = 0; i < m->dump->nthreads; i++)
        if (!thread_covered(m, i, a_ns, b_ns))
            return 0;
    return 1;
}

int64_t frd_model_worker_parked_ns(const struct frd_model *m, uint32_t thread, int64_t a_ns,
                                   int64_t b_ns)
{
    const struct frd_worker *w = &m->workers[thread];
    /* spans are in order and do not overlap: find the first that ends after a */
    size_t lo = 0, hi = w->nparked;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->parked[mid].end_ns <= a_ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t sum = 0;
    for (size_t j = lo; j < w->nparked && w->parked[j].begin_ns < b_ns; j++) {
        int64_t s = w->parked[j].begin_ns > a_ns ? w->parked[j].begin_ns : a_ns;
        int64_t e = w->parked[j].end_ns < b_ns ? w->parked[j].end_ns : b_ns;
        if (e > s)
            sum += e - s;
    }
    return sum;
}

int64_t frd_model_parked_ns(const struct frd_model *m, int64_t a_ns, int64_t b_ns)
{
    int64_t best = 0;
    for (size_t i = 0; i < m->dump->nthreads; i++) {
        int64_t sum = frd_model_worker_parked_ns(m, (uint32_t)i, a_ns, b_ns);
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

const char *frd_wait_name(int wait)
{
    switch (wait) {
    case FRD_WAIT_INTERNAL: return "internal";
    case FRD_WAIT_EXTERNAL: return "external";
    case FRD_WAIT_STOPPED: return "stopped";
    default: return NULL;
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
