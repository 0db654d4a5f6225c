/*
 * bench_decode.c - decoder throughput and memory: records a dump of at least
 * 10 million events (THREADS threads with large rings, the mixed sequence),
 * then runs `flightrec analyze DUMP --json` REPS times, timing each run and
 * reading its peak RSS from wait4(). Prints "name value" lines.
 *
 *   bench-decode --dir DIR --cli PATH/TO/flightrec [--reps N] [--threads N]
 *                [--ring-mb MIB]
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

int main(int argc, char **argv)
{
    const char *dir = bench_arg_str(argc, argv, "--dir", NULL);
    const char *cli = bench_arg_str(argc, argv, "--cli", NULL);
    int reps = bench_arg_int(argc, argv, "--reps", 5);
    int nthreads = bench_arg_int(argc, argv, "--threads", 4);
    int ring_mb = bench_arg_int(argc, argv, "--ring-mb", 16);
    if (!dir || !cli || reps < 1 || reps > 50 || nthreads < 1 || nthreads > 64 || ring_mb < 1) {
        fputs("usage: bench-decode --dir DIR --cli FLIGHTREC [--reps N] [--threads N] "
              "[--ring-mb MIB]\n",
              stderr);
        return 2;
    }
    /* Fill each ring about 1.1 times at ~5.5 bytes per event. */
    seqs_per_thread = (uint64_t)ring_mb * 1048576u / 5 / BENCH_EVENTS_PER_SEQ;

    struct fr_config cfg = {.dump_dir = dir, .ring_bytes = (size_t)ring_mb << 20};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-decode: fr_init: %s\n", strerror(-rc));
        return 1;
    }
    pthread_t th[64];
    pthread_barrier_init(&recorded, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&dumped, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, recorder_thread, (void *)(uintptr_t)i);
    pthread_barrier_wait(&recorded);
    char dump[4096];
    rc = fr_dump("bench-decode", dump, sizeof(dump));
    pthread_barrier_wait(&dumped);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    fr_shutdown();
    if (rc < 0) {
        fprintf(stderr, "bench-decode: fr_dump: %s\n", strerror(-rc));
        return 1;
    }
    struct stat st;
    stat(dump, &st);

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
            return 1;
        }
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench-decode: %s analyze failed (status %d)\n", cli, status);
            return 1;
        }
        events = json_events(out);
        if (events <= 0) {
            fprintf(stderr, "bench-decode: no event count in %s\n", out);
            return 1;
        }
        rate[r] = (double)events / secs;
        rss[r] = (double)ru.ru_maxrss * 1024.0 / (double)events;
    }
    double m = bench_median(rate, (size_t)reps);
    printf("decode_events %lld\ndecode_dump_bytes %lld\n", events, (long long)st.st_size);
    printf("decode_events_per_s %.0f\ndecode_events_per_s_spread_pct %.1f\n", m,
           bench_spread_pct(rate, (size_t)reps, m));
    m = bench_median(rss, (size_t)reps);
    printf("decode_peak_rss_bytes_per_event %.2f\n", m);
    unlink(out);
    return 0;
}
