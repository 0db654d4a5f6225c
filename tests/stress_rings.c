/*
 * stress_rings.c - writers at full speed while dumps run, every decoded event
 * checked. A plain program rather than a Criterion test so that it also runs
 * under ThreadSanitizer (Criterion's worker arena cannot be mapped under
 * TSan): `meson test --suite concurrency`, or built with -Db_sanitize=thread.
 *
 * Each writer emits spawn(i, i-1), poll_begin(i), waker_clone(i), await(i),
 * poll_end(i, READY) for i = 1, 2, ... (the clone and the await are folded
 * into the poll's end record, or into a FOLD record when the signal handler's
 * mark comes between them); within the part of a ring a dump says is whole,
 * every event must follow its predecessor in that pattern. Also SIGUSR1 dumps, thread
 * churn (short-lived threads whose rings must stay dumpable) and a signal
 * handler that calls hooks on a recording thread (re-entrancy), and the spawn
 * table's entries, which the writers overwrite for one another.
 * Usage: stress_rings DIR [ROUNDS]. Exit 0 when every check passed.
 */
#include <flightrec.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "reader.h"

#define WRITERS 3

static _Atomic int stop;
static _Atomic uint32_t tids[WRITERS];
static _Atomic long churned;

static void on_usr2(int sig)
{
    (void)sig;
    fr_mark(0xdead, "from a signal handler"); /* may be dropped if it interrupts a hook */
}

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    fr_thread_name("writer"); /* attaches the ring: only then is it in every dump */
    tids[id] = (uint32_t)syscall(SYS_gettid);
    for (uint64_t i = 1; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        fr_spawn(i, i - 1, "w");
        fr_poll_begin(i);
        fr_waker_clone(i);
        fr_await(i, "w");
        fr_poll_end(i, FR_READY);
    }
    return NULL;
}

static void *short_lived(void *arg)
{
    (void)arg;
    fr_mark(0x5107, "short-lived");
    atomic_fetch_add(&churned, 1);
    return NULL;
}

static int check_thread(const struct frd_thread *t, int w, size_t *checked)
{
    const struct frd_event *prev = NULL;
    for (size_t i = t->first_whole; i < t->nevents; i++) {
        const struct frd_event *e = &t->events[i];
        if (e->type == FR_EV_THREAD_NAME || e->type == FR_EV_MARK)
            continue;
        if (prev) {
            int ok = (prev->type == FR_EV_SPAWN && e->type == FR_EV_POLL_BEGIN &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_POLL_BEGIN && e->type == FR_EV_WAKER_CLONE &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_WAKER_CLONE && e->type == FR_EV_AWAIT &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_AWAIT && e->type == FR_EV_POLL_READY &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_POLL_READY && e->type == FR_EV_SPAWN &&
                      e->task == prev->task + 1 && e->parent == prev->task);
            if (!ok) {
                fprintf(stderr, "writer %d event %zu: type %u task %llu after type %u task %llu\n",
                        w, i, e->type, (unsigned long long)e->task, prev->type,
                        (unsigned long long)prev->task);
                return 1;
            }
        }
        prev = e;
        (*checked)++;
    }
    return 0;
}

/* The spawn table: the writers spawn the same ids at once and never drop
 * them, so entries are written over by other threads all the time while the
 * dump copies them; every entry in the dump must still be one writer's
 * spawn, whole: parent i - 1, name "w", a writer's tid. */
static int check_spawns(const struct frd_dump *d, size_t *checked)
{
    for (size_t i = 0; i < d->nspawns; i++) {
        const struct frd_spawn *e = &d->spawns[i];
        size_t n = 0;
        const char *name = frd_string(d, e->name, &n);
        int writer = 0;
        for (int w = 0; w < WRITERS; w++)
            writer |= e->tid == tids[w];
        if (e->parent != e->task - 1 || !name || n != 1 || name[0] != 'w' || !writer) {
            fprintf(stderr, "spawn entry %zu: task %llu parent %llu name %u tid %u\n", i,
                    (unsigned long long)e->task, (unsigned long long)e->parent, e->name, e->tid);
            return 1;
        }
        (*checked)++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: stress_rings DIR [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    struct fr_config cfg = { .dump_dir = argv[1], .ring_bytes = 64 * 1024, .max_dumps = 4 };
    if (fr_init(&cfg) != 0)
        return 2;
    signal(SIGUSR2, on_usr2);
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < WRITERS; i++)
        while (!tids[i])
            sched_yield();

    size_t checked = 0, dumps = 0, spawns = 0;
    int fail = 0;
    for (int k = 0; k < rounds && !fail; k++) {
        for (int c = 0; c < 20; c++) { /* thread churn */
            pthread_t s;
            pthread_create(&s, NULL, short_lived, NULL);
            pthread_join(s, NULL);
        }
        for (int i = 0; i < WRITERS; i++)
            kill(getpid(), k % 2 ? SIGUSR1 : SIGUSR2);
        char path[512];
        if (fr_dump("stress", path, sizeof path) != 0) {
            fprintf(stderr, "fr_dump failed\n");
            fail = 1;
            break;
        }
        struct frd_dump *d = NULL;
        char err[256];
        if (frd_open(path, &d, err, sizeof err) != 0 || d->damaged) {
            fprintf(stderr, "%s: %s\n", path, d && d->nerrors ? d->errors[0] : err);
            fail = 1;
            frd_close(d);
            break;
        }
        dumps++;
        for (int w = 0; w < WRITERS && !fail; w++) {
            const struct frd_thread *t = NULL;
            for (size_t i = 0; i < d->nthreads; i++)
                if (d->threads[i].tid == tids[w])
                    t = &d->threads[i];
            if (!t || t->pages_bad) {
                fprintf(stderr, "writer %d: %s\n", w, t ? "torn page decoded" : "missing");
                fail = 1;
                break;
            }
            fail = check_thread(t, w, &checked);
        }
        if (!fail)
            fail = check_spawns(d, &spawns);
        size_t exited = 0;
        for (size_t i = 0; i < d->nthreads; i++)
            exited += d->threads[i].state == 2;
        if (exited == 0) {
            fprintf(stderr, "no exited thread's ring in the dump\n");
            fail = 1;
        }
        frd_close(d);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    fr_shutdown();
    printf("%zu dumps, %zu events and %zu spawn entries checked, %ld short-lived threads: %s\n",
           dumps, checked, spawns, (long)churned, fail ? "FAIL" : "ok");
    return fail || checked == 0 || spawns == 0;
}
