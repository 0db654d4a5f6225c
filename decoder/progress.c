/*
 * decoder/progress.c - the progress line (progress.h).
 *
 * The decoding thread only publishes what it is doing (three relaxed stores
 * and a sequence number); the drawing thread reads them and owns stderr's
 * line. The line is always erased before frd_progress_stop() returns.
 */
#include "progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_t thread;
    int running;
    _Atomic int stop;
    size_t count;
    _Atomic size_t index;
    _Atomic(const char *) file;
    _Atomic(const char *) stage;
    struct timespec t0;
    pthread_mutex_t lock; /* held while the line is drawn, and by frd_progress_hold() */
    int drawn;            /* the line is on the screen (under lock) */
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double elapsed_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - P.t0.tv_sec) + (double)(t.tv_nsec - P.t0.tv_nsec) / 1e9;
}

static void erase_locked(void)
{
    if (P.drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        P.drawn = 0;
    }
}

static void *draw(void *arg)
{
    (void)arg;
    while (!atomic_load(&P.stop)) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
        double s = elapsed_s();
        const char *file = atomic_load(&P.file), *stage = atomic_load(&P.stage);
        if (s < 1.0 || !file || atomic_load(&P.stop))
            continue;
        char line[512];
        size_t i = atomic_load(&P.index);
        if (P.count > 1)
            snprintf(line, sizeof(line), "flightrec: [%zu/%zu] %s: %s... %.1f s", i + 1,
                     P.count, file, stage ? stage : "", s);
        else
            snprintf(line, sizeof(line), "flightrec: %s: %s... %.1f s", file,
                     stage ? stage : "", s);
        pthread_mutex_lock(&P.lock);
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        P.drawn = 1;
        pthread_mutex_unlock(&P.lock);
    }
    pthread_mutex_lock(&P.lock);
    erase_locked();
    pthread_mutex_unlock(&P.lock);
    return NULL;
}

void frd_progress_start(size_t count)
{
    if (P.running || !isatty(STDERR_FILENO))
        return;
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        return;
    P.count = count;
    atomic_store(&P.stop, 0);
    clock_gettime(CLOCK_MONOTONIC, &P.t0);
    P.running = pthread_create(&P.thread, NULL, draw, NULL) == 0;
}

void frd_progress_stage(size_t index, const char *file, const char *stage)
{
    atomic_store(&P.index, index);
    atomic_store(&P.stage, stage);
    atomic_store(&P.file, file);
}

void frd_progress_hold(void)
{
    if (!P.running)
        return;
    pthread_mutex_lock(&P.lock);
    erase_locked();
}

void frd_progress_release(void)
{
    if (P.running)
        pthread_mutex_unlock(&P.lock);
}

void frd_progress_stop(void)
{
    if (!P.running)
        return;
    atomic_store(&P.stop, 1);
    pthread_join(P.thread, NULL);
    P.running = 0;
}
