/*
 * bench_dump.c - what a dump costs: fr_dump() wall time and file size with 8
 * threads whose 1 MiB rings are full, and how long a thread that receives
 * the dump signal is held up (the dumper thread does the work).
 *
 * Stall: a victim thread loops reading CLOCK_MONOTONIC and calling a hook,
 * keeping every gap over 1 us between two reads (and whether the kernel
 * switched it out involuntarily during that gap). The main thread notes the
 * time, sends SIGUSR1 to the victim with pthread_kill() and waits for the
 * dump file. The stall is the first gap that ends after the send, counted
 * from the send at the earliest: signal delivery, the library's handler and
 * the return, and any time the dumper thread it wakes takes the victim's CPU.
 * The victim and the sender are pinned to two different CPUs (when the
 * process may use two): unpinned, the sender's own wake-up from its sleep
 * and its pthread_kill() could run on the victim's CPU just before the
 * signal, and that time was counted as stall.
 *
 * Floor: in each repetition the victim also gets SIGUSR2, whose handler (the
 * benchmark's own) is empty: delivery and sigreturn alone, measured the same
 * way. signal_stall_preempted counts the stalls during which the victim was
 * switched out.
 *
 * Self: the sender also sends SIGUSR2 to itself, on its own CPU, after a
 * millisecond of spinning so that the CPU is awake (signal_self_us, from the
 * call to its return): the tgkill system call, delivery, the empty handler
 * and sigreturn, with no interrupt from another CPU. The floor minus this is
 * what interrupting a thread running on another CPU costs. Prints "name
 * value" lines.
 *
 *   bench-dump --dir DUMP_DIR [--reps N]
 */
#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <flightrec.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define FILLERS 8
#define MAX_GAPS 65536

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
    int preempted; /* the victim was switched out involuntarily in the gap */
};
static struct gap gaps[MAX_GAPS];
static _Atomic unsigned ngaps;
static _Atomic uint64_t armed_from = UINT64_MAX; /* gaps that end earlier are not kept */
static int victim_cpu = -1, sender_cpu = -1; /* -1: not pinned */

static long involuntary_switches(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void on_floor_signal(int sig)
{
    (void)sig; /* the floor: delivery and return only */
}

static void *victim(void *arg)
{
    (void)arg;
    if (victim_cpu >= 0)
        pin(victim_cpu);
    fr_thread_name("victim");
    long nivcsw = involuntary_switches();
    uint64_t prev = bench_now_ns(), id = 1;
    atomic_store(&victim_ready, 1);
    while (!atomic_load_explicit(&victim_stop, memory_order_relaxed)) {
        uint64_t now = bench_now_ns();
        if (now - prev > 1000) {
            unsigned n = atomic_load_explicit(&ngaps, memory_order_relaxed);
            long sw = involuntary_switches();
            if (n < MAX_GAPS && now >= atomic_load_explicit(&armed_from, memory_order_relaxed)) {
                gaps[n] = (struct gap){prev, now, sw != nivcsw};
                atomic_store_explicit(&ngaps, n + 1, memory_order_release);
            }
            nivcsw = sw;
            now = bench_now_ns(); /* the getrusage() call is not a gap */
        }
        prev = now;
        fr_wake(id++);
    }
    return NULL;
}

/* The first gap that ends after @sent, from @sent at the earliest, in us;
 * 1.0 when there was none over 1 us. */
static double stall_after(uint64_t sent, unsigned n, int *found, int *preempted)
{
    *preempted = 0;
    for (unsigned i = 0; i < n; i++)
        if (gaps[i].to >= sent) {
            uint64_t from = gaps[i].from > sent ? gaps[i].from : sent;
            (*found)++;
            *preempted = gaps[i].preempted;
            return (double)(gaps[i].to - from) / 1e3;
        }
    return 1.0;
}

/* Median and maximum of the @n values of @v whose @pre is 0 (-1: none). */
static void unpreempted(const double *v, const int *pre, int n, double *med, double *max)
{
    double keep[40];
    size_t k = 0;
    *med = *max = -1;
    for (int i = 0; i < n; i++)
        if (!pre[i]) {
            keep[k++] = v[i];
            if (v[i] > *max)
                *max = v[i];
        }
    if (k)
        *med = bench_median(keep, k);
}

/* Two CPUs this process may use: the victim's and the sender's. */
static void choose_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (victim_cpu < 0)
                victim_cpu = c;
            else if (sender_cpu < 0)
                sender_cpu = c;
        }
}

/* signal_self_us: @reps SIGUSR2s sent by this thread to itself, each after
 * a millisecond of spinning; the median and worst in us into @med, @max. */
static void self_signal(int reps, double *med, double *max)
{
    double us[40];
    *max = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t spin = bench_now_ns();
        while (bench_now_ns() - spin < 1000000)
            ;
        uint64_t t0 = bench_now_ns();
        pthread_kill(pthread_self(), SIGUSR2);
        us[r] = (double)(bench_now_ns() - t0) / 1e3;
        if (us[r] > *max)
            *max = us[r];
    }
    *med = bench_median(us, (size_t)reps);
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

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_floor_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    choose_cpus();
    if (sender_cpu >= 0)
        pin(sender_cpu); /* after fr_init and the fillers: only main and the victim */
    double self_med, self_max;
    self_signal(reps, &self_med, &self_max);
    pthread_create(&vt, NULL, victim, NULL);
    while (!atomic_load(&victim_ready))
        usleep(1000);
    usleep(20000);
    uint64_t sent[40], floor_sent[40];
    for (int r = 0; r < reps; r++) {
        floor_sent[r] = bench_now_ns();
        if (r == 0)
            atomic_store(&armed_from, floor_sent[0]);
        pthread_kill(vt, SIGUSR2);
        usleep(20000);
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
    int found = 0, preempted = 0, floor_found = 0, floor_preempted = 0, pre[40], floor_pre[40];
    double worst = 0, floor_us[40], floor_worst = 0, up_med, up_max, fup_med, fup_max;
    for (int r = 0; r < reps; r++) {
        stall[r] = stall_after(sent[r], n, &found, &pre[r]);
        floor_us[r] = stall_after(floor_sent[r], n, &floor_found, &floor_pre[r]);
        preempted += pre[r];
        floor_preempted += floor_pre[r];
        if (stall[r] > worst)
            worst = stall[r];
        if (floor_us[r] > floor_worst)
            floor_worst = floor_us[r];
    }

    unpreempted(stall, pre, reps, &up_med, &up_max);
    unpreempted(floor_us, floor_pre, reps, &fup_med, &fup_max);

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
    printf("signal_stall_us %.3f\nsignal_stall_us_max %.3f\nsignal_gaps_found %d\n"
           "signal_stall_preempted %d\n",
           m, worst, found, preempted);
    m = bench_median(floor_us, (size_t)reps);
    printf("signal_floor_us %.3f\nsignal_floor_us_max %.3f\nsignal_floor_preempted %d\n"
           "signal_pinned %d\n",
           m, floor_worst, floor_preempted, victim_cpu >= 0);
    printf("signal_self_us %.3f\nsignal_self_us_max %.3f\n", self_med, self_max);
    /* Without the repetitions in which the victim was switched out (by the
     * dumper or by anything else running on its CPU): -1 when none is left. */
    printf("signal_stall_unpreempted_us %.3f\nsignal_stall_unpreempted_us_max %.3f\n"
           "signal_floor_unpreempted_us %.3f\nsignal_floor_unpreempted_us_max %.3f\n",
           up_med, up_max, fup_med, fup_max);
    fr_shutdown();
    return 0;
}
