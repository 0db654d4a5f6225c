/*
 * stress_triggers.c - the recorder's own triggers under concurrency: two
 * writers recording at full speed into shared rings (FR_SHARED_RINGS), with
 * polls that stall past the watchdog's threshold now and then, while the
 * watchdog scans, samples the stuck thread's stack with its signal and dumps,
 * and the main thread calls fr_dump at the same time. A plain program, like
 * stress_rings, so that it runs under ThreadSanitizer (suite concurrency).
 *
 * Checks: at least one stall dump and no more than the rate limit; every dump
 * decodes whole; each writer's events within the part of a dump that is
 * whole follow one another (wake i+1 after wake i); the .rings file is gone
 * after fr_shutdown.
 * Usage: stress_triggers DIR. Exit 0 when every check passed.
 */
#include <dirent.h>
#include <errno.h>
#include <flightrec.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"

#define WRITERS 2

static _Atomic int stop;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { 0, (long)ms * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void *writer(void *arg)
{
    uint64_t base = ((uint64_t)(intptr_t)arg + 1) << 32;
    fr_thread_name("writer");
    for (uint64_t i = 1; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        fr_wake(base + i);
        if (i % 50000 == 0) { /* a stall: 60 ms inside one poll */
            fr_poll_begin(base);
            sleep_ms(60);
            fr_poll_end(base, FR_PENDING);
        }
    }
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: stress_triggers DIR\n", stderr);
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/stress-triggers-XXXXXX", argv[1]);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    struct fr_config cfg = { .dump_dir = dir, .ring_bytes = 64 * 1024, .max_dumps = 100,
                             .stall_ms = 20, .flags = FR_SHARED_RINGS };
    int rc = fr_init(&cfg);
    if (rc) {
        fprintf(stderr, "fr_init: %s\n", strerror(-rc));
        return 1;
    }
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < 20; i++) {
        sleep_ms(50);
        char path[4200];
        fr_dump("api", path, sizeof path);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    fr_shutdown();

    int fails = 0, stalls = 0, dumps = 0, rings = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (ends_with(e->d_name, ".rings"))
            rings++;
        if (!ends_with(e->d_name, ".frd"))
            continue;
        char path[8300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct frd_dump *fd = NULL;
        char err[512];
        if (frd_open(path, &fd, err, sizeof err) != 0 || fd->damaged) {
            fprintf(stderr, "%s: does not decode whole: %s\n", path, err);
            fails++;
            frd_close(fd);
            unlink(path);
            continue;
        }
        dumps++;
        if (fd->hdr.trigger == FR_TRIGGER_STALL) {
            stalls++;
            if (!fd->stall.present || (fd->stall.task >> 32) < 1) {
                fprintf(stderr, "%s: stall dump without its STALL section\n", path);
                fails++;
            }
        }
        /* Only the part the dump says is whole: a writer that laps the
         * dumper recycles pages under it, a hole the reader reports. */
        for (size_t t = 0; t < fd->nthreads; t++) {
            const struct frd_thread *rt = &fd->threads[t];
            uint64_t prev = 0;
            for (size_t k = rt->first_whole; k < rt->nevents; k++) {
                const struct frd_event ev = rt->events[k];
                if (ev.type != FR_EV_WAKE)
                    continue;
                if (prev && ev.task != prev + 1) {
                    fprintf(stderr, "%s: thread %u: wake %llx after %llx\n", path, rt->tid, (unsigned long long)ev.task,
                            (unsigned long long)prev);
                    fails++;
                    break;
                }
                prev = ev.task;
            }
        }
        frd_close(fd);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    if (stalls < 1 || stalls > 3) {
        fprintf(stderr, "%d stall dumps (want 1..3, the default rate limit)\n", stalls);
        fails++;
    }
    if (rings) {
        fprintf(stderr, "%d .rings files left after fr_shutdown\n", rings);
        fails++;
    }
    printf("%d dumps, %d of them stall dumps, %d failures\n", dumps, stalls, fails);
    return fails ? 1 : 0;
}
