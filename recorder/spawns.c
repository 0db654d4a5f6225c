/*
 * spawns.c - the spawn table: the latest spawn of each live task, so that a
 * dump still names a long-lived task whose spawn record its ring has
 * overwritten (a listener, a timer, a connection opened an hour ago, the
 * task that was running at a crash) and still knows its parent.
 *
 * FR_SPAWN_SLOTS entries in sets of FR_SPAWN_WAYS, the set chosen by a hash
 * of the task id, in one anonymous mapping made at the first fr_init,
 * faulted in then (never on the record path) and cleared at each fr_init
 * and in a fork child. fr_spawn writes the task's entry, in an empty way of
 * its set, right after its record, inside the hook's busy section; fr_drop
 * empties it, on any thread. A live task is never pushed out: short-lived
 * tasks come and go through the empty ways, and a task that finds its set
 * full of live ones is named by its spawn record alone, as without the
 * table. Plain relaxed stores, no read-modify-write: two threads spawning
 * into one entry at the same moment may interleave their stores, and the
 * check word, stored last, lets the dump skip an entry so mixed.
 *
 * The dump copies every whole entry into a SPAWNS section (format.h); the
 * decoder uses an entry only for a task whose spawn is not in the window,
 * and only when the entry's spawn is older than its thread's window.
 * Shared rings (FR_SHARED_RINGS) do not hold the table: a dump recovered
 * after SIGKILL has no SPAWNS section.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct fr_spawn_entry *fr__spawns;

static void *map_table(void *at)
{
    return mmap(at, FR_SPAWN_SLOTS * sizeof(struct fr_spawn_entry), PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE | (at ? MAP_FIXED : 0),
                -1, 0);
}

int fr__spawns_init(void)
{
    if (fr__spawns) {
        fr__spawns_reset();
        return 0;
    }
    void *p = map_table(NULL);
    if (p == MAP_FAILED)
        return -errno;
    fr__spawns = p; /* zero-filled */
    return 0;
}

/* Recording is off (fr_init before the epoch is bumped) or this is a fork
 * child's only thread: nobody writes the table meanwhile. Fresh zero pages
 * in place, rather than writing over the parent's copy-on-write ones. */
void fr__spawns_reset(void)
{
    if (fr__spawns && map_table(fr__spawns) == MAP_FAILED)
        memset(fr__spawns, 0, FR_SPAWN_SLOTS * sizeof(struct fr_spawn_entry));
}

size_t fr__spawns_copy(size_t from, struct fr_spawn_copy *out, size_t max, size_t *next)
{
    size_t n = 0, i = from;
    for (; fr__spawns && i < FR_SPAWN_SLOTS && n < max; i++) {
        const struct fr_spawn_entry *e = &fr__spawns[i];
        uint32_t check = atomic_load_explicit(&e->check, FR_ACQUIRE); /* stored last */
        uint64_t task = atomic_load_explicit(&e->task, FR_RELAXED);
        if (!task || !check)
            continue;
        struct fr_spawn_copy c = {
            .task = task,
            .parent = atomic_load_explicit(&e->parent, FR_RELAXED),
            .ticks = atomic_load_explicit(&e->ticks, FR_RELAXED),
            .name = atomic_load_explicit(&e->name, FR_RELAXED),
            .tid = atomic_load_explicit(&e->tid, FR_RELAXED),
        };
        if (fr__spawn_check(c.task, c.parent, c.ticks, c.name, c.tid) != check)
            continue; /* two spawns mixed, or cleared by a drop meanwhile */
        out[n++] = c;
    }
    *next = i;
    return n;
}
