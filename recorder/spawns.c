/*
 * spawns.c - the spawn table: the latest spawn of each live task, so that a
 * dump still names a long-lived task whose spawn record its ring has
 * overwritten (a listener, a timer, a connection opened an hour ago, the
 * task that was running at a crash) and still knows its parent.
 *
 * Two levels, so that the usual short-lived task costs no cold memory:
 *
 *  - each thread's young table (FR_SPAWN_YOUNG entries, direct-mapped by a
 *    hash of the id, mapped with its slot): fr_spawn writes the task there,
 *    and fr_drop on the same thread empties it again. A request spawned and
 *    dropped on one event loop touches one hot line and nothing else.
 *  - the process-wide table (FR_SPAWN_SLOTS entries in sets of
 *    FR_SPAWN_WAYS, mapped at the first fr_init, faulted in then): a young
 *    entry pushed out by a later spawn while its task lives moves here (the
 *    task has outlived the thread's next spawns into that entry: it may live
 *    long), into an empty way of its set; a set full of live tasks keeps
 *    them, and the newcomer is named by its spawn record alone. A drop that
 *    the dropping thread's young table does not hold (a task spawned on
 *    another thread, or already moved) empties the task's entry here, or,
 *    when there is none yet, leaves a tombstone: the task may still sit in
 *    its spawning thread's young table, and the tombstone stops it when it
 *    moves. Tombstones give way to entries when a set is full.
 *
 * Plain relaxed stores, no read-modify-write, nothing that blocks. Two
 * threads writing one process-wide entry at the same moment may interleave
 * their stores; the check word, stored last, lets the dump skip an entry so
 * mixed. What the table gets wrong it gets wrong by omission: a lost entry
 * leaves a task named by its spawn record only, as without the table; a
 * stale one (a task dropped while a race lost its tombstone) names a dead
 * id, which the decoder uses only for a task with no spawn in the dump whose
 * events all come after the entry's spawn (see decoder/spawns.c).
 *
 * The dump copies every whole, live entry of both levels into a SPAWNS
 * section (format.h). Shared rings (FR_SHARED_RINGS) do not hold the
 * tables: a dump recovered after SIGKILL has no SPAWNS section.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct fr_spawn_entry *fr__spawns;
int fr__spawns_on;

/* Fresh zero-filled entries, faulted in, and with @touch also touched
 * (fr__touch_pages): a spawn hashes to any page of the table, so the
 * table's first use would otherwise trap all over the record path. Nobody
 * uses them yet. */
static void *map_entries(void *at, size_t n, int touch)
{
    size_t bytes = n * sizeof(struct fr_spawn_entry);
    void *p = mmap(at, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE | (at ? MAP_FIXED : 0),
                   -1, 0);
    if (p != MAP_FAILED && touch)
        fr__touch_pages(p, bytes);
    return p;
}

int fr__spawns_init(int on)
{
    fr__spawns_on = 0;
    if (!on)
        return 0;
    if (fr__spawns) {
        fr__spawns_reset();
    } else {
        void *p = map_entries(NULL, FR_SPAWN_SLOTS, 1);
        if (p == MAP_FAILED)
            return -errno;
        fr__spawns = p; /* zero-filled */
    }
    fr__spawns_on = 1;
    return 0;
}

/* Recording is off (fr_init before the epoch is bumped) or this is a fork
 * child's only thread: nobody writes the table meanwhile. Fresh zero pages
 * in place, rather than writing over the parent's copy-on-write ones; not
 * touched, so that fork() costs the host no more than the mapping (a child
 * that execs at once never spawns). */
void fr__spawns_reset(void)
{
    if (fr__spawns && map_entries(fr__spawns, FR_SPAWN_SLOTS, 0) == MAP_FAILED)
        memset(fr__spawns, 0, FR_SPAWN_SLOTS * sizeof(struct fr_spawn_entry));
}

struct fr_spawn_entry *fr__spawn_young_claim(struct fr_spawn_entry *kept)
{
    if (kept) {
        memset(kept, 0, FR_SPAWN_YOUNG * sizeof(*kept)); /* the slot's last thread's tasks */
        return kept;
    }
    void *p = map_entries(NULL, FR_SPAWN_YOUNG, 1);
    return p == MAP_FAILED ? NULL : p;
}

static struct fr_spawn_entry *set_of(uint64_t task)
{
    uint32_t i = (uint32_t)(fr__spawn_hash(task) >> 32);
    return &fr__spawns[i & (FR_SPAWN_SLOTS - FR_SPAWN_WAYS)];
}

/* The way of @set that holds @task (live or a tombstone), or NULL. */
static struct fr_spawn_entry *way_of(struct fr_spawn_entry *set, uint64_t task)
{
    for (uint32_t k = 0; k < FR_SPAWN_WAYS; k++)
        if (atomic_load_explicit(&set[k].check, FR_RELAXED) != 0 &&
            atomic_load_explicit(&set[k].task, FR_RELAXED) == task)
            return &set[k];
    return NULL;
}

/* An empty way of @set, else a tombstone's, else NULL (all live). */
static struct fr_spawn_entry *free_way(struct fr_spawn_entry *set)
{
    struct fr_spawn_entry *tomb = NULL;
    for (uint32_t k = 0; k < FR_SPAWN_WAYS; k++) {
        if (atomic_load_explicit(&set[k].check, FR_RELAXED) == 0)
            return &set[k];
        if (!tomb && atomic_load_explicit(&set[k].dead, FR_RELAXED))
            tomb = &set[k];
    }
    return tomb;
}

void fr__spawn_insert(uint64_t task, uint64_t parent, uint64_t ticks, uint32_t name, uint32_t tid)
{
    if (!fr__spawns_on)
        return;
    struct fr_spawn_entry *set = set_of(task), *e = way_of(set, task);
    if (e && atomic_load_explicit(&e->dead, FR_RELAXED)) {
        /* dropped on another thread before it got here: gone */
        atomic_store_explicit(&e->check, 0, FR_RELAXED);
        return;
    }
    if (!e)
        e = free_way(set);
    if (e)
        fr__spawn_entry_put(e, task, parent, ticks, name, tid, 0);
}

/* Only the owning thread writes its young table, inside a hook: the entry
 * is read whole here. */
void fr__spawn_promote(struct fr_spawn_entry *y)
{
    fr__spawn_insert(atomic_load_explicit(&y->task, FR_RELAXED),
                     atomic_load_explicit(&y->parent, FR_RELAXED),
                     atomic_load_explicit(&y->ticks, FR_RELAXED),
                     atomic_load_explicit(&y->name, FR_RELAXED),
                     atomic_load_explicit(&y->tid, FR_RELAXED));
}

void fr__spawn_forget_far(uint64_t task, uint64_t ticks)
{
    if (!fr__spawns_on)
        return;
    /* the dropping thread's tid, read here and not in the hook: the usual
     * drop (young, same thread) never needs it */
    uint32_t tid = atomic_load_explicit(&fr__w.slot->tid, FR_RELAXED);
    struct fr_spawn_entry *set = set_of(task), *e = way_of(set, task);
    if (e) {
        if (!atomic_load_explicit(&e->dead, FR_RELAXED))
            atomic_store_explicit(&e->check, 0, FR_RELAXED);
        return;
    }
    e = free_way(set);
    if (e)
        fr__spawn_entry_put(e, task, 0, ticks, 0, tid, 1);
}

/* Entry @e copied into *@c if it is whole and live. */
static int copy_entry(const struct fr_spawn_entry *e, struct fr_spawn_copy *c)
{
    uint32_t check = atomic_load_explicit(&e->check, FR_ACQUIRE); /* stored last */
    if (!check)
        return 0;
    uint32_t dead = atomic_load_explicit(&e->dead, FR_RELAXED);
    *c = (struct fr_spawn_copy){
        .task = atomic_load_explicit(&e->task, FR_RELAXED),
        .parent = atomic_load_explicit(&e->parent, FR_RELAXED),
        .ticks = atomic_load_explicit(&e->ticks, FR_RELAXED),
        .name = atomic_load_explicit(&e->name, FR_RELAXED),
        .tid = atomic_load_explicit(&e->tid, FR_RELAXED),
    };
    /* mixed by two writers, or rewritten while read: the check tells */
    return !dead && c->task && fr__spawn_check(c->task, c->parent, c->ticks, c->name, c->tid, dead) == check;
}

size_t fr__spawns_copy(size_t from, struct fr_spawn_copy *out, size_t max, size_t *next)
{
    size_t n = 0, i = fr__spawns_on ? from : FR_SPAWNS_END;
    for (; i < FR_SPAWN_SLOTS && n < max; i++)
        if (fr__spawns && copy_entry(&fr__spawns[i], &out[n]))
            n++;
    for (; i < FR_SPAWNS_END && n < max; i++) {
        size_t k = i - FR_SPAWN_SLOTS;
        const struct fr_slot *s = &fr__slots[k / FR_SPAWN_YOUNG];
        uint32_t state = atomic_load_explicit(&s->state, FR_ACQUIRE); /* young set before LIVE */
        if ((state != FR_SLOT_LIVE && state != FR_SLOT_EXITED) || !s->young) {
            i += FR_SPAWN_YOUNG - 1 - k % FR_SPAWN_YOUNG; /* the next slot */
            continue;
        }
        if (copy_entry(&s->young[k % FR_SPAWN_YOUNG], &out[n]))
            n++;
    }
    *next = i;
    return n;
}
