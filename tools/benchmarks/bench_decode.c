/*
 * bench_decode.c - decoder throughput and memory, on two dump shapes:
 *
 *  - mixed (keys decode_*): at least 10 million events, THREADS threads with
 *    large rings, the bench's mixed sequence (bench.h);
 *  - task-heavy (keys decode_task_heavy_*): one thread, one 256 MiB ring,
 *    TASKS tasks that each live 10 events (spawn with a name, poll begin,
 *    await with a label, waker clone, poll end pending, wake, waker drop,
 *    poll begin, poll end ready, drop): the shape of a service with many
 *    short requests, where decoding costs per task, not per event.
 *
 * Each dump is recorded in a child process (one recorder per process), then
 * `flightrec analyze DUMP --json` runs REPS times back to back, timed, its
 * peak RSS read from wait4(). Prints "name value" lines: the median rate,
 * its spread and the first run's rate (*_first_events_per_s).
 *
 *   bench-decode --dir DIR --cli PATH/TO/flightrec [--reps N] [--threads N]
 *                [--ring-mb MIB] [--tasks N] [--case mixed|task-heavy|both]
 */
#include <fcntl.h>
#include <flightrec.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static pthread_barrier_t recorded, dumped;
static uint64_t seqs_per_thread;

static void *recorder_thread(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * 100000000u + 1;
    char name[32];
    snprintf(name, sizeof(name), "worker-%u", (unsigned)(uintptr_t)arg);
    fr_thread_name(name);
    for (uint64_t i = 0; i < seqs_per_thread; i++) {
        uint64_t id = base + i;
        BENCH_SEQUENCE(fr_, id);
    }
    pthread_barrier_wait(&recorded);
    pthread_barrier_wait(&dumped); /* alive while the dump copies the ring */
    return NULL;
}

/* The task-heavy shape: @ntasks lives of 10 events on this thread. */
static void task_heavy(uint64_t ntasks)
{
    fr_thread_name("server");
    for (uint64_t id = 1; id <= ntasks; id++) {
        fr_spawn(id, 0, "request");
        fr_poll_begin(id);
        fr_await(id, "read_body (src/http.c:212)");
        fr_waker_clone(id);
        fr_poll_end(id, FR_PENDING);
        fr_wake(id);
        fr_waker_drop(id);
        fr_poll_begin(id);
        fr_poll_end(id, FR_READY);
        fr_drop(id);
    }
}

static long long json_events(const char *file)
{
    char buf[4096];
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "\"events\"");
    if (!p || !(p = strchr(p, ':')))
        return -1;
    return atoll(p + 1);
}

/*
 * Record one dump of shape @task_heavy_case into @dir, in a child process so
 * that each shape has a recorder of its own; its path into @dump.
 * Return: 0, or -1 with a message printed.
 */
static int record(const char *dir, int task_heavy_case, int nthreads, int ring_mb,
                  uint64_t ntasks, char *dump, size_t dump_size)
{
    int pfd[2];
    if (pipe(pfd) < 0) {
        perror("bench-decode: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-decode: fork");
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        size_t ring = task_heavy_case ? (size_t)256 << 20 : (size_t)ring_mb << 20;
        struct fr_config cfg = {.dump_dir = dir, .ring_bytes = ring};
        int rc = fr_init(&cfg);
        if (rc < 0) {
            fprintf(stderr, "bench-decode: fr_init: %s\n", strerror(-rc));
            _exit(1);
        }
        char path[4096];
        if (task_heavy_case) {
            task_heavy(ntasks);
            rc = fr_dump("bench-decode task-heavy", path, sizeof(path));
        } else {
            pthread_t th[64];
            pthread_barrier_init(&recorded, NULL, (unsigned)nthreads + 1);
            pthread_barrier_init(&dumped, NULL, (unsigned)nthreads + 1);
            for (int i = 0; i < nthreads; i++)
                pthread_create(&th[i], NULL, recorder_thread, (void *)(uintptr_t)i);
            pthread_barrier_wait(&recorded);
            rc = fr_dump("bench-decode", path, sizeof(path));
            pthread_barrier_wait(&dumped);
            for (int i = 0; i < nthreads; i++)
                pthread_join(th[i], NULL);
        }
        fr_shutdown();
        if (rc < 0) {
            fprintf(stderr, "bench-decode: fr_dump: %s\n", strerror(-rc));
            _exit(1);
        }
        size_t len = strlen(path) + 1;
        _exit(write(pfd[1], path, len) == (ssize_t)len ? 0 : 1);
    }
    close(pfd[1]);
    ssize_t n = read(pfd[0], dump, dump_size - 1);
    close(pfd[0]);
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || n <= 1) {
        fprintf(stderr, "bench-decode: recording the %s dump failed\n",
                task_heavy_case ? "task-heavy" : "mixed");
        return -1;
    }
    dump[n] = '\0';
    return 0;
}

/*
 * Run `@cli analyze @dump --json` @reps times; print the figures with @prefix
 * ("decode" or "decode_task_heavy"). Return: 0, or -1 with a message printed.
 */
static int measure(const char *dir, const char *cli, const char *dump, int reps,
                   const char *prefix)
{
    struct stat st;
    if (stat(dump, &st) < 0) {
        perror(dump);
        return -1;
    }
    char out[4096];
    snprintf(out, sizeof(out), "%s/analyze.json", dir);
    double rate[50], rss[50];
    long long events = -1;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = bench_now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 1) < 0)
                _exit(127);
            execl(cli, cli, "analyze", dump, "--json", (char *)NULL);
            _exit(127);
        }
        int status;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) {
            perror("bench-decode: fork/wait4");
            return -1;
        }
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench-decode: %s analyze failed (status %d)\n", cli, status);
            return -1;
        }
        events = json_events(out);
        if (events <= 0) {
            fprintf(stderr, "bench-decode: no event count in %s\n", out);
            return -1;
        }
        rate[r] = (double)events / secs;
        rss[r] = (double)ru.ru_maxrss * 1024.0 / (double)events;
    }
    /* the first run, before the median sorts them: the runs after it find
     * memory the one before freed (README, "Decoding, and what the figure is") */
    printf("%s_first_events_per_s %.0f\n", prefix, rate[0]);
    double m = bench_median(rate, (size_t)reps);
    printf("%s_events %lld\n%s_dump_bytes %lld\n", prefix, events, prefix,
           (long long)st.st_size);
    printf("%s_events_per_s %.0f\n%s_events_per_s_spread_pct %.1f\n", prefix, m, prefix,
           bench_spread_pct(rate, (size_t)reps, m));
    m = bench_median(rss, (size_t)reps);
    /* the mixed case's key predates the second case: kept as it was */
    printf("%s_%s %.2f\n", prefix,
           strcmp(prefix, "decode") == 0 ? "peak_rss_bytes_per_event" : "rss_bytes_per_event", m);
    fflush(stdout);
    unlink(out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = bench_arg_str(argc, argv, "--dir", NULL);
    const char *cli = bench_arg_str(argc, argv, "--cli", NULL);
    const char *which = bench_arg_str(argc, argv, "--case", "both");
    int reps = bench_arg_int(argc, argv, "--reps", 5);
    int nthreads = bench_arg_int(argc, argv, "--threads", 4);
    int ring_mb = bench_arg_int(argc, argv, "--ring-mb", 16);
    int ntasks = bench_arg_int(argc, argv, "--tasks", 3000000);
    int mixed = strcmp(which, "mixed") == 0 || strcmp(which, "both") == 0;
    int heavy = strcmp(which, "task-heavy") == 0 || strcmp(which, "both") == 0;
    if (!dir || !cli || reps < 1 || reps > 50 || nthreads < 1 || nthreads > 64 || ring_mb < 1 ||
        ntasks < 1 || (!mixed && !heavy)) {
        fputs("usage: bench-decode --dir DIR --cli FLIGHTREC [--reps N] [--threads N] "
              "[--ring-mb MIB] [--tasks N] [--case mixed|task-heavy|both]\n",
              stderr);
        return 2;
    }
    /* Fill each ring about 1.1 times at ~5.5 bytes per event. */
    seqs_per_thread = (uint64_t)ring_mb * 1048576u / 5 / BENCH_EVENTS_PER_SEQ;

    char dump[4096];
    if (mixed) {
        if (record(dir, 0, nthreads, ring_mb, 0, dump, sizeof(dump)) < 0 ||
            measure(dir, cli, dump, reps, "decode") < 0)
            return 1;

    }
    if (heavy) {
        if (record(dir, 1, nthreads, ring_mb, (uint64_t)ntasks, dump, sizeof(dump)) < 0 ||
            measure(dir, cli, dump, reps, "decode_task_heavy") < 0)
            return 1;

    }
    return 0;
}
