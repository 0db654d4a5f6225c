/*
 * test_spawns.c - the spawn table: what a dump's SPAWNS section holds after
 * spawns and drops on one thread and across threads. A task is listed while
 * it lives and not after its drop, whichever thread drops it and whether or
 * not its entry had moved from its thread's young table to the process-wide
 * one; a long-lived task outlives a stream of short-lived ones.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "helpers.h"

/* Tasks 1..n spawned and dropped at once: each goes through the young
 * table, and a long-lived task there is pushed to the process-wide one. */
static void short_lived(uint64_t first, uint64_t n)
{
    for (uint64_t id = first; id < first + n; id++) {
        fr_spawn(id, 0, "request");
        fr_drop(id);
    }
}

static struct frd_dump *dump_now(void)
{
    char path[512];
    cr_assert_eq(fr_dump("spawns", path, sizeof path), 0);
    return th_open(path);
}

/* How many SPAWNS entries name @task; the newest one in *@e. */
static int listed(const struct frd_dump *d, uint64_t task, struct frd_spawn *e)
{
    int n = 0;
    for (size_t i = 0; i < d->nspawns; i++)
        if (d->spawns[i].task == task) {
            if (e && (!n || d->spawns[i].ticks > e->ticks))
                *e = d->spawns[i];
            n++;
        }
    return n;
}

static void start(void)
{
    struct fr_config cfg = {.dump_dir = th_tmpdir(), .flags = FR_NO_CRASH_HANDLERS,
                            .dump_signal = -1, .max_dumps = 50};
    cr_assert_eq(fr_init(&cfg), 0);
}

Test(spawns, a_live_task_is_listed_and_a_dropped_one_is_not)
{
    start();
    fr_spawn(7, 3, "listener");
    fr_spawn(8, 0, "gone");
    fr_drop(8);
    struct frd_dump *d = dump_now();
    struct frd_spawn e;
    cr_assert_eq(listed(d, 7, &e), 1);
    cr_assert_eq(e.parent, 3);
    cr_assert_str_eq(th_string(d, e.name), "listener");
    cr_assert_eq(e.tid, (uint32_t)th_gettid());
    cr_assert_eq(listed(d, 8, NULL), 0);
    frd_close(d);
    fr_shutdown();
}

/* 100000 short-lived tasks after it (far more than the young table holds)
 * push the listener to the process-wide table: still listed, once; its
 * drop afterwards, on the same thread, empties that entry. */
Test(spawns, a_long_lived_task_outlives_a_stream_of_short_ones)
{
    start();
    fr_spawn(7, 0, "listener");
    short_lived(1000, 100000);
    struct frd_dump *d = dump_now();
    cr_assert_eq(listed(d, 7, NULL), 1);
    for (uint64_t id = 1000; id < 101000; id += 997)
        cr_assert_eq(listed(d, id, NULL), 0, "task %llu was dropped", (unsigned long long)id);
    frd_close(d);
    fr_drop(7);
    d = dump_now();
    cr_assert_eq(listed(d, 7, NULL), 0);
    frd_close(d);
    fr_shutdown();
}

struct dropper {
    uint64_t first, n;
};

static void *drop_them(void *arg)
{
    const struct dropper *p = arg;
    for (uint64_t id = p->first; id < p->first + p->n; id++)
        fr_drop(id);
    return NULL;
}

static void drop_on_another_thread(uint64_t first, uint64_t n)
{
    pthread_t t;
    struct dropper p = {first, n};
    cr_assert_eq(pthread_create(&t, NULL, drop_them, &p), 0);
    pthread_join(t, NULL);
}

/* Tasks spawned here and dropped on another thread while still in this
 * thread's young table: the drop leaves a tombstone, and when the entries
 * are pushed out later they are not listed. Tasks dropped on the other
 * thread after being pushed out are emptied there. A worker pool's shape. */
Test(spawns, a_drop_on_another_thread_is_seen)
{
    start();
    for (uint64_t id = 1; id <= 64; id++)
        fr_spawn(id, 0, "job");
    drop_on_another_thread(1, 32); /* still young here: tombstones */
    short_lived(1000, 20000);      /* pushes every young entry out */
    drop_on_another_thread(33, 32); /* already moved: emptied */
    struct frd_dump *d = dump_now();
    for (uint64_t id = 1; id <= 64; id++)
        cr_assert_eq(listed(d, id, NULL), 0, "task %llu was dropped", (unsigned long long)id);
    frd_close(d);

    /* and the tombstones were used up: the table still takes 64 live tasks */
    for (uint64_t id = 1; id <= 64; id++)
        fr_spawn(id + 500000, 0, "job");
    short_lived(1000000, 20000);
    d = dump_now();
    for (uint64_t id = 1; id <= 64; id++)
        cr_assert_eq(listed(d, id + 500000, NULL), 1, "task %llu lives", (unsigned long long)id);
    frd_close(d);
    fr_shutdown();
}

/* An id spawned again without a drop: the newest spawn is the one listed
 * (or, if an older entry stayed behind, the newer one is there as well). */
Test(spawns, a_spawn_again_without_a_drop_lists_the_newest)
{
    start();
    fr_spawn(9, 0, "first");
    short_lived(1000, 20000);
    fr_spawn(9, 0, "second");
    struct frd_dump *d = dump_now();
    struct frd_spawn e;
    cr_assert_geq(listed(d, 9, &e), 1);
    cr_assert_str_eq(th_string(d, e.name), "second");
    frd_close(d);
    fr_shutdown();
}

/* Off (the flag, or FLIGHTREC_SPAWN_TABLE=0): nothing is listed; a value
 * other than 0 or 1 is refused. */
Test(spawns, off_lists_nothing)
{
    for (int by_env = 0; by_env < 2; by_env++) {
        struct fr_config cfg = {.dump_dir = th_tmpdir(), .flags = FR_NO_CRASH_HANDLERS,
                                .dump_signal = -1};
        if (by_env)
            setenv("FLIGHTREC_SPAWN_TABLE", "0", 1);
        else
            cfg.flags |= FR_NO_SPAWN_TABLE;
        cr_assert_eq(fr_init(&cfg), 0);
        fr_spawn(7, 0, "listener");
        short_lived(1000, 1000);
        struct frd_dump *d = dump_now();
        cr_assert_eq(d->nspawns, 0, "by %s", by_env ? "env" : "flag");
        frd_close(d);
        fr_shutdown();
        unsetenv("FLIGHTREC_SPAWN_TABLE");
    }
    setenv("FLIGHTREC_SPAWN_TABLE", "yes", 1);
    struct fr_config cfg = {.dump_dir = th_tmpdir(), .flags = FR_NO_CRASH_HANDLERS};
    cr_assert_eq(fr_init(&cfg), -EINVAL);
    unsetenv("FLIGHTREC_SPAWN_TABLE");
    /* and on again after an fr_init with it off */
    cr_assert_eq(fr_init(&cfg), 0);
    fr_spawn(7, 0, "listener");
    struct frd_dump *d = dump_now();
    cr_assert_eq(listed(d, 7, NULL), 1);
    frd_close(d);
    fr_shutdown();
}
