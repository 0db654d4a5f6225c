/*
 * test_shared.c - shared rings (FLIGHTREC_SHARED_RINGS=1) and `flightrec
 * recover`: a process killed by SIGKILL at a random moment, while two threads
 * record numbered events, leaves a .rings file that recovers into a dump
 * that passes `zstd -t`, decodes, and holds each thread's events in sequence
 * with no hole up to where its ring ends; a normal exit and fr_shutdown leave
 * no file; recover refuses a live process's file unless --force.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

#define THREADS 2
#define BASE(t) ((uint64_t)(t + 1) << 32)

static int ready_pipe[2];
static _Atomic int started;

/* Numbered events: wake(BASE + 1), wake(BASE + 2), ... until killed. */
static void *recorder(void *arg)
{
    int t = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "numbered-%d", t);
    fr_thread_name(name);
    for (uint64_t n = 1; n < 400000000u; n++) {
        fr_wake(BASE(t) + n);
        if (n == 20000 && atomic_fetch_add(&started, 1) == THREADS - 1) {
            if (write(ready_pipe[1], "r", 1) != 1)
                _exit(94);
        }
    }
    return NULL;
}

static void start_shared(void)
{
    setenv("FLIGHTREC_SHARED_RINGS", "1", 1);
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .ring_bytes = 64 * 1024 };
    cr_assert_eq(fr_init(&cfg), 0);
}

/* Fork a child that records with shared rings and runs @body, which writes
 * to ready_pipe once it has recorded; return the child's pid once it has. */
static pid_t recording_child(void (*body)(void))
{
    cr_assert_eq(pipe(ready_pipe), 0);
    th_tmpdir();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        start_shared();
        body();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready_pipe[0], &c, 1), 1);
    return pid;
}

static void numbered_threads(void)
{
    /* the second clock calibration pair comes ~50 ms after fr_init */
    struct timespec cal = { 0, 120 * 1000 * 1000 };
    nanosleep(&cal, NULL);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, recorder, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

Test(shared, sigkill_at_a_random_moment_recovers_every_thread_in_sequence)
{
    pid_t pid = recording_child(numbered_threads);
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    struct timespec ts = { 0, (long)(seed.tv_nsec % 50) * 1000000L }; /* 0-49 ms more */
    nanosleep(&ts, NULL);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    char rings[1024], out[1024];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1, "one .rings file left");
    struct stat sb;
    cr_assert_eq(stat(rings, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);

    char args[1200];
    snprintf(args, sizeof args, "%ld --dir %s", (long)pid, th_tmpdir());
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    cr_assert(strstr(out, ".frd"), "recover printed '%s'", out);
    cr_assert_eq(th_zstd_test(out), 0);

    struct frd_dump *d = th_open(out);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_RECOVERED);
    cr_assert_str_eq(d->hdr.reason, "recovered");
    cr_assert_eq(d->hdr.pid, (uint32_t)pid);
    cr_assert(d->recovery.present);
    cr_assert(d->have_end);
    cr_assert(!d->damaged, "%s", d->nerrors ? d->errors[0] : "");
    cr_assert(d->clock.calibrated);
    /* the sampler ran, and its run delays are in the .rings file */
    cr_assert(d->hdr.flags & FR_HDR_RUN_DELAY);
    cr_assert(d->have_run_delay);
    cr_assert_not(frd_run_delay_lost(d));
    int seen = 0;
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct frd_thread *t = &d->threads[i];
        if (strncmp(t->name, "numbered-", 9) != 0)
            continue;
        int k = t->name[9] - '0';
        cr_assert(k >= 0 && k < THREADS);
        seen |= 1 << k;
        cr_assert_gt(t->nevents, 1000, "%s: %zu events", t->name, t->nevents);
        /* every wake numbered one more than the one before, from the oldest
         * page kept to the last committed record */
        struct frd_tcur cur;
        struct frd_event e;
        frd_tcur_init(&cur, d, t);
        uint64_t prev = 0, wakes = 0;
        while (frd_tcur_next(&cur, &e)) {
            if (e.type != FR_EV_WAKE)
                continue;
            cr_assert_eq(e.task >> 32, (uint64_t)(k + 1));
            if (prev)
                cr_assert_eq(e.task, prev + 1, "%s: %llu after %llu", t->name,
                             (unsigned long long)e.task, (unsigned long long)prev);
            prev = e.task;
            wakes++;
        }
        cr_assert_gt(wakes, 1000);
        cr_assert_gt(prev & 0xffffffffu, 20000u, "the newest events are there");
    }
    cr_assert_eq(seen, (1 << THREADS) - 1, "both threads recovered");
    frd_close(d);

    /* info says where it came from */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s info %s 2>&1", FLIGHTREC_CLI, out);
    FILE *p = popen(cmd, "r");
    char line[512], all[8192] = "";
    int said = 0;
    while (fgets(line, sizeof line, p)) {
        if (strstr(line, "recovered from the shared rings") && strstr(line, "torn pages dropped"))
            said = 1;
        strncat(all, line, sizeof all - strlen(all) - 1);
    }
    cr_assert_eq(pclose(p), 0, "%s", all);
    cr_assert(said, "%s", all);
}

Test(shared, a_normal_exit_and_shutdown_leave_no_file)
{
    /* the child's exit runs the helpers' atexit too, which empties the test
     * directory (files only): the child writes in a subdirectory */
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/exit", th_tmpdir());
    cr_assert_eq(mkdir(sub, 0700), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("FLIGHTREC_SHARED_RINGS", "1", 1);
        struct fr_config cfg = { .dump_dir = sub, .ring_bytes = 64 * 1024 };
        if (fr_init(&cfg) != 0)
            _exit(2);
        fr_wake(1);
        if (th_count_rings(sub, NULL, 0) != 1)
            _exit(3);
        exit(0); /* atexit removes it */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_eq(th_count_rings(sub, NULL, 0), 0);
    rmdir(sub);

    start_shared();
    fr_wake(1);
    cr_assert_eq(th_count_rings(th_tmpdir(), NULL, 0), 1);
    /* a dump of a process with shared rings is an ordinary dump */
    char path[1024];
    cr_assert_eq(fr_dump("api", path, sizeof path), 0);
    struct frd_dump *d = th_open(path);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_API);
    frd_close(d);
    fr_shutdown();
    cr_assert_eq(th_count_rings(th_tmpdir(), NULL, 0), 0);
    unsetenv("FLIGHTREC_SHARED_RINGS");
}

Test(shared, recover_refuses_a_live_process_unless_forced)
{
    start_shared();
    fr_thread_name("alive");
    for (uint64_t n = 1; n <= 100; n++)
        fr_wake(n);
    char rings[1024], out[1024];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, rings, out, sizeof out), 1);
    cr_assert_eq(out[0], '\0');
    char args[1200];
    snprintf(args, sizeof args, "%s --force", rings);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    struct frd_dump *d = th_open(out);
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert(t);
    cr_assert_str_eq(t->name, "alive");
    cr_assert_eq(t->nevents, 101); /* the name record and 100 wakes */
    frd_close(d);
    fr_shutdown();
    unsetenv("FLIGHTREC_SHARED_RINGS");
}

/* The healthy twin: private rings leave nothing; a bad value is refused. */
Test(shared, off_by_default)
{
    unsetenv("FLIGHTREC_SHARED_RINGS");
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_wake(1);
    cr_assert_eq(th_count_rings(th_tmpdir(), NULL, 0), 0);
    fr_shutdown();
    setenv("FLIGHTREC_SHARED_RINGS", "yes", 1);
    cr_assert_eq(fr_init(&cfg), -EINVAL);
    unsetenv("FLIGHTREC_SHARED_RINGS");
    cr_assert_eq(th_recover(FLIGHTREC_CLI, "/nonexistent.rings", NULL, 0), 1);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, "", NULL, 0), 2);
}

/* A fork child records into a file of its own, never into its parent's. */
Test(shared, a_fork_child_gets_its_own_file)
{
    start_shared();
    fr_thread_name("parent");
    for (uint64_t n = 1; n <= 10; n++)
        fr_wake(n);
    char rings[1024];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        for (uint64_t n = 1; n <= 1000; n++)
            fr_wake(1000 + n);
        _exit(th_count_rings(th_tmpdir(), NULL, 0) == 2 ? 0 : 3); /* _exit: its file stays */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_eq(th_count_rings(th_tmpdir(), NULL, 0), 2);

    char args[1200], out[1024];
    snprintf(args, sizeof args, "%s --force", rings);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    struct frd_dump *d = th_open(out);
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert(t);
    cr_assert_eq(t->nevents, 11, "the parent's ring holds its own 11 events only");
    frd_close(d);
    snprintf(args, sizeof args, "%ld --dir %s", (long)pid, th_tmpdir());
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    d = th_open(out);
    cr_assert_eq(d->hdr.pid, (uint32_t)pid);
    size_t events = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        events += d->threads[i].nevents;
    cr_assert_eq(events, 1000, "the child's file holds the child's 1000 wakes");
    frd_close(d);
    fr_shutdown();
    cr_assert_eq(th_count_rings(th_tmpdir(), NULL, 0), 1, "the parent removes its own only");
    unsetenv("FLIGHTREC_SHARED_RINGS");
}

static void copy_file(const char *from, const char *to, size_t keep)
{
    size_t len;
    char *b = th_read_file(from, &len);
    FILE *f = fopen(to, "wb");
    cr_assert(f);
    if (keep > len)
        keep = len;
    cr_assert_eq(fwrite(b, 1, keep, f), keep);
    fclose(f);
    free(b);
}

/* A page the process was recycling when it died (seq 0, header in use) is
 * dropped and counted; the events before it stay in sequence. A damaged or
 * cut file is refused with a message, never a crash. */
Test(shared, torn_pages_are_dropped_and_damaged_files_refused)
{
    start_shared();
    fr_thread_name("tearing");
    for (uint64_t n = 1; n <= 30000; n++)
        fr_wake(n);
    char rings[1024], copy[1100], out[1024];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1);
    snprintf(copy, sizeof copy, "%s/copy.rings", th_tmpdir());
    size_t len;
    char *b = th_read_file(rings, &len);
    /* this thread's ring: the slot entry whose tid is ours */
    uint64_t slots_off, rings_off;
    memcpy(&slots_off, b + 152, 8);
    memcpy(&rings_off, b + 224, 8);
    uint64_t ring_bytes;
    memcpy(&ring_bytes, b + 32, 8);
    uint64_t ring = 0;
    for (uint32_t i = 0; i < 1024; i++) {
        uint32_t tid;
        memcpy(&tid, b + slots_off + 64 * i + 8, 4);
        if (tid == (uint32_t)th_gettid())
            memcpy(&ring, b + slots_off + 64 * i + 48, 8);
    }
    cr_assert_geq(ring, rings_off);
    /* the newest page: the one being written; tear it as a recycle would */
    uint64_t best = 0, at = 0;
    for (uint64_t p = 0; p < ring_bytes / 4096; p++) {
        uint64_t seq;
        memcpy(&seq, b + ring + p * 4096, 8);
        if ((seq & 0xffffffffffu) > best) {
            best = seq & 0xffffffffffu;
            at = ring + p * 4096;
        }
    }
    cr_assert_gt(best, 2);
    memset(b + at, 0, 8);
    FILE *f = fopen(copy, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);

    char args[1200];
    snprintf(args, sizeof args, "%s --force", copy);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    struct frd_dump *d = th_open(out);
    cr_assert(d->recovery.present);
    cr_assert_eq(d->recovery.pages_torn, 1);
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert(t);
    cr_assert_gt(t->nevents, 1000);
    cr_assert_lt(t->nevents, 30001);
    struct frd_tcur cur;
    struct frd_event e;
    frd_tcur_init(&cur, d, t);
    uint64_t prev = 0;
    while (frd_tcur_next(&cur, &e)) {
        if (e.type != FR_EV_WAKE)
            continue;
        if (prev)
            cr_assert_eq(e.task, prev + 1);
        prev = e.task;
    }
    cr_assert_lt(prev, 30000, "the torn newest page's events are gone");
    frd_close(d);

    /* cut inside this thread's ring: the rest is recovered, this thread is
     * left out (and said so on stderr) */
    copy_file(rings, copy, (size_t)(ring + 100));
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    d = th_open(out);
    cr_assert_null(th_thread(d, (uint32_t)th_gettid()));
    frd_close(d);
    /* cut inside the metadata, then not a rings file at all: refused */
    size_t cuts[] = { 3000, 5000, 200000 };
    for (size_t i = 0; i < 3; i++) {
        copy_file(rings, copy, cuts[i]);
        cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 1, "cut at %zu", cuts[i]);
    }
    memcpy(b, "NOTRINGS", 8);
    f = fopen(copy, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 1);
    free(b);
    fr_shutdown();
    unsetenv("FLIGHTREC_SHARED_RINGS");
}

/* `flightrec analyze DUMP --json`'s first @len - 1 bytes into @json. */
static void analyze_json(const char *dump, char *json, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s analyze '%s' --json 2>/dev/null", FLIGHTREC_CLI, dump);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(json, 1, len - 1, p);
    json[n] = '\0';
    pclose(p);
}

static void *poll_and_drop(void *arg)
{
    (void)arg;
    fr_thread_name("worker");
    for (uint64_t t = 1; t <= 200; t++) {
        fr_poll_begin(t);
        fr_poll_end(t, FR_READY);
        fr_drop(t);
    }
    return NULL;
}

/* Right after `kill -9` the process is a zombie until its parent reaps it
 * (and stays one under a parent that never does): it writes nothing more,
 * so recover takes its file without --force. */
static void record_then_wait(void)
{
    fr_thread_name("zombie-to-be");
    fr_wake(1);
    if (write(ready_pipe[1], "r", 1) != 1)
        _exit(94);
    for (;;)
        pause();
}

Test(shared, a_killed_process_not_yet_reaped_is_recovered)
{
    pid_t pid = recording_child(record_then_wait);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    char stat_path[64], st[256] = "";
    snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 500; i++) { /* until the kernel made it a zombie */
        FILE *f = fopen(stat_path, "r");
        cr_assert_not_null(f);
        size_t n = fread(st, 1, sizeof st - 1, f);
        fclose(f);
        st[n] = '\0';
        if (strstr(st, ") Z "))
            break;
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    cr_assert_not_null(strstr(st, ") Z "), "%s", st);
    char args[700], out[1024];
    snprintf(args, sizeof args, "%ld --dir %s", (long)pid, th_tmpdir());
    int rc = th_recover(FLIGHTREC_CLI, args, out, sizeof out);
    int wst;
    cr_assert_eq(waitpid(pid, &wst, 0), pid);
    cr_assert_eq(rc, 0, "recover refused the zombie's file");
    cr_assert(strstr(out, ".frd"), "recover printed '%s'", out);
}

/* A .rings file whose second clock pair was damaged on disk: the decoder
 * says so and keeps the events in order (ticks taken as ns), rather than
 * calibrating on the bad pair, which squeezed the recording into a few ns
 * and gave false protocol findings (a poll merged before its spawn); and
 * with no rate for the ticks, the 30 ms poll that the whole file shows as a
 * long_poll is no verdict (withheld, counted). */
Test(shared, a_damaged_clock_pair_is_said_and_changes_no_order)
{
    start_shared();
    fr_thread_name("spawner");
    struct timespec cal = { 0, 120 * 1000 * 1000 }; /* the second pair, ~50 ms after fr_init */
    nanosleep(&cal, NULL);
    fr_spawn(500, 0, "slow"); /* a 30 ms poll: a long_poll with a good clock */
    fr_poll_begin(500);
    struct timespec slow = { 0, 30 * 1000 * 1000 };
    nanosleep(&slow, NULL);
    fr_poll_end(500, FR_READY);
    fr_drop(500);
    for (uint64_t t = 1; t <= 200; t++) {
        fr_spawn(t, 0, "job");
        fr_wake(t);
    }
    pthread_t th;
    pthread_create(&th, NULL, poll_and_drop, NULL);
    pthread_join(th, NULL);
    char rings[1024], copy[1100], out[1024], args[1200];
    static char json[1 << 20];
    cr_assert_eq(th_count_rings(th_tmpdir(), rings, sizeof rings), 1);
    /* the file as it is: the slow poll is a long_poll */
    snprintf(args, sizeof args, "%s --force", rings);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);
    analyze_json(out, json, sizeof json);
    cr_assert_not_null(strstr(json, "\"timing_withheld\": 0, "), "%s", json);
    cr_assert_not_null(strstr(json, "{\"kind\": \"long_poll\", \"task\": 500"), "%s", json);
    size_t len;
    char *b = th_read_file(rings, &len);
    uint64_t npairs, mono1;
    memcpy(&npairs, b + 56, 8);
    cr_assert_eq(npairs, 2);
    memcpy(&mono1, b + 64 + 8, 8);
    uint64_t bad = mono1 + 1; /* pair 2's time 1 ns after pair 1's */
    memcpy(b + 88 + 8, &bad, 8);
    snprintf(copy, sizeof copy, "%s/clock.rings", th_tmpdir());
    FILE *f = fopen(copy, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
    free(b);
    snprintf(args, sizeof args, "%s --force", copy);
    cr_assert_eq(th_recover(FLIGHTREC_CLI, args, out, sizeof out), 0);

    struct frd_dump *d = th_open(out);
    int said = 0;
    for (size_t i = 0; i < d->nerrors; i++)
        said |= strstr(d->errors[i], "CLOCK pairs") != NULL;
    cr_assert(said, "the damaged clock is reported");
    frd_close(d);
    /* damaged: no verdict on a duration, and nothing misordered */
    analyze_json(out, json, sizeof json);
    const char *w = strstr(json, "\"timing_withheld\": ");
    cr_assert_not_null(w, "%s", json);
    cr_assert_geq(atoi(w + strlen("\"timing_withheld\": ")), 1, "%s", json);
    cr_assert_not_null(strstr(json, "\"findings\": []"), "%s", json);
    fr_shutdown();
    unsetenv("FLIGHTREC_SHARED_RINGS");
}
