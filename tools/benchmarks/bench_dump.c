/*
 * bench_dump.c - what a dump costs: fr_dump() wall time and file size with 8
 * threads whose 1 MiB rings are full, and how long a thread that receives
 * the dump signal is held up (the dumper thread does the work).
 *
 * Stall: a victim thread loops reading CLOCK_MONOTONIC and calling a hook,
 * keeping every gap over 1 us between two reads. The main thread notes the
 * time, sends SIGUSR1 to the victim with pthread_kill() and waits for the
 * dump file. The stall is the first gap that ends after the send: signal
 * delivery, the library's handler (one write(2) to the dumper's pipe) and
 * the return. Prints "name value" lines.
 *
 *   bench-dump --dir DUMP_DIR [--reps N]
 */
#include <dirent.h>
#include <flightrec.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define FILLERS 8
#define MAX_GAPS 4096

static pthread_barrier_t filled;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;
static _Atomic int victim_stop, victim_ready;

static void *filler(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * 10000000u + 1;
    char name[32];
    snprintf(name, sizeof(name), "filler-%u", (unsigned)(uintptr_t)arg);
    fr_thread_name(name);
    /* ~480k events: more than a 1 MiB ring holds, so it has wrapped. */
    for (uint64_t i = 0; i < 40000; i++) {
        uint64_t id = base + i;
        BENCH_SEQUENCE(fr_, id);
    }
    pthread_barrier_wait(&filled);
    pthread_mutex_lock(&lock); /* stay alive (LIVE slot) while dumps run */
    while (!done)
        pthread_cond_wait(&cv, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

struct gap {
    uint64_t from, to;
};
static struct gap gaps[MAX_GAPS];
static _Atomic unsigned ngaps;

static void *victim(void *arg)
{
    (void)arg;
    fr_thread_name("victim");
    uint64_t prev = bench_now_ns(), id = 1;
    atomic_store(&victim_ready, 1);
    while (!atomic_load_explicit(&victim_stop, memory_order_relaxed)) {
        uint64_t now = bench_now_ns();
        if (now - prev > 1000) {
            unsigned n = atomic_load_explicit(&ngaps, memory_order_relaxed);
            if (n < MAX_GAPS) {
                gaps[n] = (struct gap){prev, now};
                atomic_store_explicit(&ngaps, n + 1, memory_order_release);
            }
        }
        prev = now;
        fr_wake(id++);
    }
    return NULL;
}

static int count_dumps(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".frd") != NULL && strstr(e->d_name, ".frd.") == NULL;
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    const char *dir = bench_arg_str(argc, argv, "--dir", NULL);
    int reps = bench_arg_int(argc, argv, "--reps", 7);
    if (!dir || reps < 1 || reps > 40) {
        fputs("usage: bench-dump --dir DUMP_DIR [--reps 1..40]\n", stderr);
        return 2;
    }
    struct fr_config cfg = {.dump_dir = dir, .max_dumps = 2 * 40 + 2};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-dump: fr_init: %s\n", strerror(-rc));
        return 1;
    }
    fr_thread_name("main");

    pthread_t th[FILLERS], vt;
    pthread_barrier_init(&filled, NULL, FILLERS + 1);
    for (uintptr_t i = 0; i < FILLERS; i++)
        pthread_create(&th[i], NULL, filler, (void *)i);
    pthread_barrier_wait(&filled);

    double ms[40], stall[40], size = 0;
    for (int r = 0; r < reps; r++) {
        char path[4096];
        uint64_t t0 = bench_now_ns();
        rc = fr_dump("bench", path, sizeof(path));
        uint64_t t1 = bench_now_ns();
        if (rc < 0) {
            fprintf(stderr, "bench-dump: fr_dump: %s\n", strerror(-rc));
            return 1;
        }
        ms[r] = (double)(t1 - t0) / 1e6;
        struct stat st;
        if (stat(path, &st) == 0)
            size = (double)st.st_size;
    }

    pthread_create(&vt, NULL, victim, NULL);
    while (!atomic_load(&victim_ready))
        usleep(1000);
    usleep(20000);
    uint64_t sent[40];
    for (int r = 0; r < reps; r++) {
        int before = count_dumps(dir);
        sent[r] = bench_now_ns();
        pthread_kill(vt, SIGUSR1);
        for (int i = 0; i < 5000 && count_dumps(dir) == before; i++)
            usleep(1000);
        usleep(20000);
    }
    atomic_store(&victim_stop, 1);
    pthread_join(vt, NULL);

    unsigned n = atomic_load(&ngaps);
    int found = 0;
    double worst = 0;
    for (int r = 0; r < reps; r++) {
        stall[r] = -1;
        for (unsigned i = 0; i < n; i++)
            if (gaps[i].to >= sent[r]) {
                stall[r] = (double)(gaps[i].to - gaps[i].from) / 1e3;
                found++;
                break;
            }
        if (stall[r] < 0)
            stall[r] = 1.0; /* no gap over 1 us: the stall was under the threshold */
        if (stall[r] > worst)
            worst = stall[r];
    }

    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < FILLERS; i++)
        pthread_join(th[i], NULL);

    double m = bench_median(ms, (size_t)reps);
    printf("dump_ms %.3f\ndump_ms_spread_pct %.1f\ndump_bytes %.0f\n", m,
           bench_spread_pct(ms, (size_t)reps, m), size);
    m = bench_median(stall, (size_t)reps);
    printf("signal_stall_us %.3f\nsignal_stall_us_max %.3f\nsignal_gaps_found %d\n", m, worst, found);
    fr_shutdown();
    return 0;
}
