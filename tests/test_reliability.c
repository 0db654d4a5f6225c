/*
 * test_reliability.c - the recorder under abuse: a storm of dump signals at a
 * process whose threads record at full speed, and ten thousand short-lived
 * threads, and more threads alive at once than the registry has slots. The
 * process must keep running, every dump left on disk must decode, retention
 * must hold, memory must stay bounded, and a thread left unrecorded is
 * counted in the dump.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- signal storm --------------------------------------------------------- */

#define STORM_SIGNALS 1000
#define STORM_MAX_DUMPS 4
#define STORM_WRITERS 2

static _Atomic int storm_stop;
static _Atomic uint64_t storm_iters[STORM_WRITERS];

static void *storm_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    fr_thread_name("storm-writer");
    uint64_t base = (uint64_t)(id + 1) << 40;
    for (uint64_t i = 1; !atomic_load_explicit(&storm_stop, memory_order_relaxed); i++) {
        fr_spawn(base + i, base + i - 1, "w");
        fr_poll_begin(base + i);
        fr_poll_end(base + i, FR_READY);
        atomic_store_explicit(&storm_iters[id], i, memory_order_relaxed);
    }
    return NULL;
}

/* What the child answers to a ping after the storm. */
struct storm_reply {
    int dump_rc;      /* fr_dump() after the storm */
    int writers_move; /* both writers advanced after the storm */
};

static int full_read(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int full_write(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int storm_child(const char *dir, int cmd_fd, int reply_fd)
{
    struct fr_config cfg = { .dump_dir = dir, .ring_bytes = 256 * 1024,
                             .max_dumps = STORM_MAX_DUMPS };
    if (fr_init(&cfg) != 0)
        return 10;
    pthread_t th[STORM_WRITERS];
    for (int i = 0; i < STORM_WRITERS; i++)
        pthread_create(&th[i], NULL, storm_writer, (void *)(intptr_t)i);
    for (int i = 0; i < STORM_WRITERS; i++)
        while (!atomic_load(&storm_iters[i]))
            sched_yield();
    if (full_write(reply_fd, "R", 1) != 0)
        return 12;

    char cmd;
    while (full_read(cmd_fd, &cmd, 1) == 0 && cmd == 'p') {
        struct storm_reply r = { 0, 0 };
        uint64_t before[STORM_WRITERS];
        for (int i = 0; i < STORM_WRITERS; i++)
            before[i] = atomic_load(&storm_iters[i]);
        r.dump_rc = fr_dump("after the storm", NULL, 0);
        for (int waited = 0; waited < 10000 && !r.writers_move; waited++) {
            r.writers_move = 1;
            for (int i = 0; i < STORM_WRITERS; i++)
                if (atomic_load(&storm_iters[i]) == before[i])
                    r.writers_move = 0;
            if (!r.writers_move)
                usleep(1000);
        }
        if (full_write(reply_fd, &r, sizeof r) != 0)
            return 13;
    }
    atomic_store(&storm_stop, 1);
    for (int i = 0; i < STORM_WRITERS; i++)
        pthread_join(th[i], NULL);
    fr_shutdown();
    return 0;
}

/* Read with a generous bound: a deadlocked child never answers. */
static int read_within(int fd, void *buf, size_t n, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r == 1 ? full_read(fd, buf, n) : -1;
}

/* The sequence number in "flightrec-<pid>-<time>-<seq>-<unique>.frd". */
static unsigned long dump_seq_of(const char *path)
{
    const char *last = strrchr(path, '-');
    const char *dash = last;
    while (dash && dash > path && dash[-1] != '-')
        dash--;
    return dash && dash > path ? strtoul(dash, NULL, 10) : 0;
}

Test(reliability, signal_storm, .timeout = 120)
{
    const char *dir = th_tmpdir();
    int cmd[2], reply[2];
    cr_assert_eq(pipe(cmd), 0);
    cr_assert_eq(pipe(reply), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(cmd[1]);
        close(reply[0]);
        _exit(storm_child(dir, cmd[0], reply[1]));
    }
    close(cmd[0]);
    close(reply[1]);
    char ready = 0;
    cr_assert_eq(read_within(reply[0], &ready, 1, 30000), 0, "the child did not start");
    cr_assert_eq(ready, 'R');

    /* 1,000 dump signals spread over about a second. */
    int sent = 0;
    for (int i = 0; i < STORM_SIGNALS; i++) {
        if (kill(pid, SIGUSR1) == 0)
            sent++;
        struct timespec ms = { 0, 1000 * 1000 };
        nanosleep(&ms, NULL);
    }
    cr_assert_eq(sent, STORM_SIGNALS);

    /* Still alive, not deadlocked: it answers, dumps on request, and its
     * writers are still writing. */
    struct storm_reply r;
    cr_assert_eq(full_write(cmd[1], "p", 1), 0);
    cr_assert_eq(read_within(reply[0], &r, sizeof r, 60000), 0,
                 "no answer after the storm: dead or deadlocked");
    cr_assert_eq(r.dump_rc, 0, "fr_dump after the storm: %d", r.dump_rc);
    cr_assert(r.writers_move, "the recording threads stopped");
    cr_assert_eq(full_write(cmd[1], "q", 1), 0);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with status %#x", st);

    /* Retention held, nothing half-written is left, every dump decodes. */
    char paths[MAX_DUMPS_LISTED][512];
    int n = th_list_dumps(dir, paths, MAX_DUMPS_LISTED);
    cr_assert_geq(n, 1);
    cr_assert_leq(n, STORM_MAX_DUMPS, "%d dumps kept, max_dumps %d", n, STORM_MAX_DUMPS);
    cr_assert_eq(th_count_temporaries(dir), 0, "a temporary dump was left behind");
    unsigned long written = 0;
    int decoded = 0;
    for (int i = 0; i < n; i++) {
        struct frd_dump *d = th_open(paths[i]);
        cr_assert(d->have_end && !d->damaged, "%s: %s", paths[i],
                  d->nerrors ? d->errors[0] : "cut short");
        cr_assert_geq(d->nthreads, STORM_WRITERS);
        decoded++;
        if (dump_seq_of(paths[i]) + 1 > written)
            written = dump_seq_of(paths[i]) + 1;
        frd_close(d);
    }
    cr_assert_gt(written, 1, "the storm caused no dump");
    fprintf(stderr, "# signal storm: %d SIGUSR1 sent and survived, %lu dumps written, %d kept "
                    "(max_dumps %d), %d decoded\n",
            sent, written, n, STORM_MAX_DUMPS, decoded);
}

/* ---- thread churn ----------------------------------------------------------- */

#define CHURN_THREADS 10000
#define CHURN_BATCH 50
#define CHURN_TASK_BASE 0x7000000

struct mem_use {
    long rss_kb, vm_kb;
};

static struct mem_use mem_now(void)
{
    struct mem_use m = { -1, -1 };
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", &m.rss_kb);
        sscanf(line, "VmSize: %ld", &m.vm_kb);
    }
    fclose(f);
    cr_assert(m.rss_kb > 0 && m.vm_kb > 0);
    return m;
}

static void *churner(void *arg)
{
    uint64_t task = CHURN_TASK_BASE + (uint64_t)(uintptr_t)arg;
    fr_spawn(task, 0, "short");
    fr_poll_begin(task);
    fr_await(task, "churn");
    fr_poll_end(task, FR_READY);
    fr_mark(task, "exiting");
    fr_drop(task);
    return NULL;
}

static void churn(unsigned from, unsigned to)
{
    for (unsigned i = from; i < to; i += CHURN_BATCH) {
        pthread_t th[CHURN_BATCH];
        unsigned n = to - i < CHURN_BATCH ? to - i : CHURN_BATCH;
        for (unsigned k = 0; k < n; k++)
            cr_assert_eq(pthread_create(&th[k], NULL, churner, (void *)(uintptr_t)(i + k)), 0);
        for (unsigned k = 0; k < n; k++)
            pthread_join(th[k], NULL);
    }
}

Test(reliability, thread_churn, .timeout = 120)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir, .ring_bytes = 16 * 1024 };
    cr_assert_eq(fr_init(&cfg), 0);

    churn(0, 1000);
    struct mem_use m1 = mem_now();
    churn(1000, CHURN_THREADS);
    struct mem_use m10 = mem_now();
    /* The registry holds fewer slots than threads came and went; past that,
     * slots and their mappings are reused: ten times the threads may not cost
     * more than the remaining slots' rings and stacks, plus slack for libc. */
    fprintf(stderr, "# thread churn: RSS %ld -> %ld kB, VmSize %ld -> %ld kB (1,000 -> %d threads)\n",
            m1.rss_kb, m10.rss_kb, m1.vm_kb, m10.vm_kb, CHURN_THREADS);
#ifndef UNDER_ASAN
    /* (AddressSanitizer keeps bookkeeping and a quarantine for every thread
     * that ever ran, so there RSS grows whatever flightrec does; VmSize, which
     * would grow by a ring and an alternate stack per thread if slots were
     * not reused, is still checked.) */
    cr_assert_leq(m10.rss_kb, m1.rss_kb + 8 * 1024, "RSS %ld kB after 1,000 threads, %ld kB after %d",
                  m1.rss_kb, m10.rss_kb, CHURN_THREADS);
#endif
    cr_assert_leq(m10.vm_kb, m1.vm_kb + 64 * 1024,
                  "VmSize %ld kB after 1,000 threads, %ld kB after %d", m1.vm_kb, m10.vm_kb,
                  CHURN_THREADS);

    char path[512];
    cr_assert_eq(fr_dump("churn", path, sizeof path), 0);
    struct frd_dump *d = th_open(path);
    cr_assert(d->have_end && !d->damaged);
    cr_assert_lt(d->hdr.max_threads, CHURN_THREADS, "registry capacity %u", d->hdr.max_threads);
    cr_assert_leq(d->nthreads, d->hdr.max_threads);
    uint32_t max_gen = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        if (d->threads[i].gen > max_gen)
            max_gen = d->threads[i].gen;
    cr_assert_geq(max_gen, CHURN_THREADS / d->hdr.max_threads,
                  "slots were not reused: highest generation %u", max_gen);

    /* The last batch of exited threads is whole in the dump. */
    int seen[CHURN_BATCH] = { 0 };
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        for (size_t k = 0; k < t->nevents; k++) {
            const struct frd_event *e = &t->events[k];
            uint64_t first = CHURN_TASK_BASE + CHURN_THREADS - CHURN_BATCH;
            if (e->type == FR_EV_DROP && e->task >= first && e->task < first + CHURN_BATCH) {
                cr_assert_eq(t->state, 2, "thread of task %llx not marked exited",
                             (unsigned long long)e->task);
                seen[e->task - first]++;
            }
        }
    }
    for (int k = 0; k < CHURN_BATCH; k++)
        cr_assert_eq(seen[k], 1, "thread %d of the last batch: %d drop events in the dump",
                     CHURN_THREADS - CHURN_BATCH + k, seen[k]);
    fprintf(stderr,
            "# thread churn: %d threads, %zu rings in the dump (capacity %u, highest slot "
            "generation %u), the last %d threads' events all there\n",
            CHURN_THREADS, d->nthreads, d->hdr.max_threads, max_gen, CHURN_BATCH);
    frd_close(d);
    fr_shutdown();
}

/* ---- a full registry ------------------------------------------------------ */

/* More threads alive at once than the registry has slots: the ones that find
 * every slot live record nothing, and every dump says how many. */
#define CROWD_THREADS 1100
#define CROWD_TASK_BASE 0x9000000

static pthread_barrier_t crowd_recorded, crowd_dumped;

static void *crowd_member(void *arg)
{
    fr_spawn(CROWD_TASK_BASE + (uint64_t)(uintptr_t)arg, 0, "crowd");
    pthread_barrier_wait(&crowd_recorded);
    pthread_barrier_wait(&crowd_dumped);
    return NULL;
}

Test(reliability, full_registry_is_noted, .timeout = 120)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir, .ring_bytes = 16 * 1024 };
    cr_assert_eq(fr_init(&cfg), 0);
    pthread_barrier_init(&crowd_recorded, NULL, CROWD_THREADS + 1);
    pthread_barrier_init(&crowd_dumped, NULL, CROWD_THREADS + 1);
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 256 * 1024);
    static pthread_t th[CROWD_THREADS];
    for (unsigned k = 0; k < CROWD_THREADS; k++)
        cr_assert_eq(pthread_create(&th[k], &small, crowd_member, (void *)(uintptr_t)k), 0);
    pthread_barrier_wait(&crowd_recorded);

    char path[512];
    cr_assert_eq(fr_dump("crowd", path, sizeof path), 0);
    pthread_barrier_wait(&crowd_dumped);
    for (unsigned k = 0; k < CROWD_THREADS; k++)
        pthread_join(th[k], NULL);

    struct frd_dump *d = th_open(path);
    cr_assert(d->have_end && !d->damaged);
    unsigned recorded = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        for (size_t k = 0; k < d->threads[i].nevents; k++) {
            const struct frd_event *e = &d->threads[i].events[k];
            if (e->type == FR_EV_SPAWN && e->task >= CROWD_TASK_BASE &&
                e->task < CROWD_TASK_BASE + CROWD_THREADS)
                recorded++;
        }
    cr_assert_lt(recorded, CROWD_THREADS, "all %u threads recorded in %u slots", recorded,
                 d->hdr.max_threads);
    cr_assert_not_null(d->notes.p, "no NOTES section in a dump taken with a full registry");
    char want[96];
    snprintf(want, sizeof want, "\n%u threads recorded nothing", CROWD_THREADS - recorded);
    char notes[1100];
    snprintf(notes, sizeof notes, "\n%.*s", (int)d->notes.len, d->notes.p);
    cr_assert_not_null(strstr(notes, want), "NOTES: %s (expected \"%s\")", notes, want + 1);
    fprintf(stderr, "# full registry: %u threads, %u recorded in %u slots, NOTES: %s", CROWD_THREADS,
            recorded, d->hdr.max_threads, notes + 1);
    frd_close(d);
    pthread_barrier_destroy(&crowd_recorded);
    pthread_barrier_destroy(&crowd_dumped);
    fr_shutdown();
}
