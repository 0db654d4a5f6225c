/*
 * tests/decoder/test_cli.c - the `flightrec` command as users and scripts
 * see it: exit statuses (0 ok, 1 bad input, 2 usage), the --json shapes of
 * DESIGN.md, a truncated dump through the CLI, and a crash dump whose info
 * names the signal, the crashing task and the crashing function.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"
#include "scenario.h"

Test(cli, usage_and_version)
{
    char *out, *err;
    cr_assert_eq(sc_cli("--version", &out, &err), 0);
    cr_assert_not_null(strstr(out, "flightrec "));
    const char *cmds[] = {"--help", "info --help", "tasks --help", "timeline --help",
                          "analyze --help", "export --help", "locks --help"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++) {
        cr_assert_eq(sc_cli(cmds[i], &out, &err), 0, "%s", cmds[i]);
        cr_assert_not_null(strstr(out, "usage: flightrec"), "%s", cmds[i]);
    }
    /* the summary gives each command's options as its own --help does */
    cr_assert_eq(sc_cli("--help", &out, &err), 0);
    cr_assert_not_null(strstr(out, "dump PID [--dir DIR] [--timeout S] [--signal SIG]"), "%s", out);
    cr_assert_eq(sc_cli("", NULL, NULL), 2);
    cr_assert_eq(sc_cli("frobnicate x.frd", NULL, NULL), 2);
    cr_assert_eq(sc_cli("info", NULL, NULL), 2);
    cr_assert_eq(sc_cli("analyze x.frd --bogus", NULL, NULL), 2);
    cr_assert_eq(sc_cli("analyze x.frd --hang-ms abc", NULL, NULL), 2);
    cr_assert_eq(sc_cli("export x.frd", NULL, NULL), 2);
    cr_assert_eq(sc_cli("locks", NULL, NULL), 2);
    cr_assert_eq(sc_cli("locks x.frd --hang-ms 5", NULL, NULL), 2);
    cr_assert_eq(sc_cli("export x.frd --format xml", NULL, NULL), 2);
    cr_assert_eq(sc_cli("info /nonexistent/dump.frd", &out, &err), 1);
    cr_assert_not_null(strstr(err, "/nonexistent/dump.frd"), "%s", err);
    cr_assert_eq(sc_cli("info /etc/hostname", &out, &err), 1);
    cr_assert_not_null(strstr(err, "offset 0"), "%s", err);
}

/* A lost wakeup (waker dropped) recorded on a worker thread. */
static void worker_step(void *a)
{
    (void)a;
    fr_spawn(10, 0, "fetch");
    fr_poll_begin(10);
    fr_waker_clone(10);
    fr_poll_end(10, FR_PENDING);
    fr_park();
}

static void record(char *path, int lost)
{
    sc_recorder_start(0);
    struct sc_worker *w = sc_worker_start("worker-1");
    sc_run(w, worker_step, NULL);
    if (lost)
        fr_waker_drop(10);
    else
        fr_wake(10);
    if (!lost) {
        /* the wake is honoured at once: a clean run (a poll only 30 ms later,
         * with worker-1 parked all along, would be a delayed_wakeup) */
        fr_poll_begin(10);
        fr_poll_end(10, FR_READY);
        fr_drop(10);
    }
    sc_sleep_ms(30);
    sc_dump(path);
    sc_worker_stop(w);
    fr_shutdown();
}

Test(cli, analyze_json_names_the_planted_bug)
{
    char path[512], args[700], *out, *err;
    record(path, 1);
    snprintf(args, sizeof(args), "analyze '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "{\"events\": "), "%s", out);
    cr_assert_not_null(strstr(out, "\"kind\": \"lost_wakeup\", \"task\": 10, \"name\": \"fetch\""),
                       "%s", out);
    cr_assert_not_null(strstr(out, "\"window_ns\": "), "%s", out);
    cr_assert_not_null(strstr(out, "\"duration_ns\": "), "%s", out);
    /* one finding only */
    cr_assert_null(strstr(strstr(out, "\"kind\"") + 1, "\"kind\""), "%s", out);

    snprintf(args, sizeof(args), "timeline '%s' --task 10", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "task 10 \"fetch\""), "%s", out);
    cr_assert_not_null(strstr(out, "poll #1 on worker-1"), "%s", out);
    cr_assert_not_null(strstr(out, "waker dropped (0 references)"), "%s", out);
    snprintf(args, sizeof(args), "timeline '%s' --task 12345", path);
    cr_assert_eq(sc_cli(args, &out, &err), 2);

    const char *more[] = {"info '%s'", "info '%s' --json", "tasks '%s'", "tasks '%s' --json",
                          "timeline '%s'", "analyze '%s'", "export '%s' --format json",
                          "export '%s' --format csv", "export '%s' --format chrome"};
    for (size_t i = 0; i < sizeof(more) / sizeof(*more); i++) {
        snprintf(args, sizeof(args), more[i], path);
        cr_assert_eq(sc_cli(args, &out, &err), 0, "%s: %s", args, err);
        cr_assert_gt(strlen(out), 10, "%s", args);
    }
}

Test(cli, clean_run_has_no_findings)
{
    char path[512], args[700], *out, *err;
    record(path, 0);
    snprintf(args, sizeof(args), "analyze '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"findings\": []"), "%s", out);
}

/* `flightrec analyze` of a dump taken now (the recorder then shut down):
 * its text. */
static char *dump_and_analyze(void)
{
    char path[512], args[700], *out, *err;
    sc_dump(path);
    fr_shutdown();
    snprintf(args, sizeof(args), "analyze '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    return out;
}

/* A program none of whose work is a task (redis under `flightrec run`: its
 * own loop, no adapter; only the poller's parks are recorded): "no findings"
 * says that nothing was there to judge. */
Test(cli, no_task_recorded_says_so)
{
    char path[512], args[700], *out, *err;
    sc_recorder_start(0);
    fr_park();
    fr_unpark();
    out = dump_and_analyze();
    cr_assert_not_null(strstr(out, " 0 tasks,"), "%s", out);
    cr_assert_not_null(strstr(out, "no findings: no task was recorded"), "%s", out);
    /* a task alive whose spawn left the ring, nothing else of it: the spawn
     * table knows it, so something was recorded */
    sc_recorder_start(16);
    fr_spawn(5, 0, "sleeper");
    for (int i = 0; i < 20000; i++) {
        fr_park();
        fr_unpark();
    }
    out = dump_and_analyze();
    cr_assert_not_null(strstr(out, " 0 tasks,"), "%s", out);
    cr_assert_not_null(strstr(out, "no findings: no task did anything in the recording (1 alive"),
                       "%s", out);
    /* with tasks, it is plain "no findings" */
    record(path, 0);
    snprintf(args, sizeof(args), "analyze '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\nno findings\n"), "%s", out);
}

/* A poll whose begin the ring overwrote while it ran: the thread's timeline
 * says so in words, not with the record's name; info marks the ring. */
static void long_marking_poll(void *a)
{
    (void)a;
    fr_spawn(98, 0, "long");
    fr_poll_begin(98);
    for (int i = 0; i < 40000; i++)
        fr_mark(91, "tick"); /* another task's: kept as records */
    fr_poll_end(98, FR_PENDING);
}

/* Record @fn on a worker with a @ring_kb ring, dump into @path, and return
 * `timeline PATH --thread WORKER`'s output. */
static char *worker_timeline(unsigned ring_kb, void (*fn)(void *), char path[512])
{
    char args[700], *out, *err;
    sc_recorder_start(ring_kb);
    struct sc_worker *w = sc_worker_start("worker-1");
    sc_run(w, fn, NULL);
    sc_dump(path);
    snprintf(args, sizeof(args), "timeline '%s' --thread %u", path, sc_worker_tid(w));
    sc_worker_stop(w);
    fr_shutdown();
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    return out;
}

Test(cli, thread_timeline_tells_a_poll_end_without_its_begin, .timeout = 60)
{
    char path[512], args[700], *err;
    char *out = worker_timeline(16, long_marking_poll, path);
    const char *tail = strlen(out) > 600 ? out + strlen(out) - 600 : out;
    /* (named "long" when the spawn table kept its name) */
    const char *line = strstr(out, "a poll of task 98");
    cr_assert_not_null(line, "...%s", tail);
    cr_assert_not_null(strstr(line, " ended -> pending, its begin not recorded\n"), "...%s", tail);
    cr_assert_null(strstr(out, "poll_pending"), "...%s", tail);
    /* info marks the wrapped ring, and says what the mark means (the golden
     * dump, whose rings never wrapped, has neither) */
    snprintf(args, sizeof(args), "info '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "*  "), "%s", out);
    cr_assert_not_null(strstr(out, "(* = older history of this thread was overwritten)"), "%s", out);
}

static void spawn_and_await(void *a)
{
    (void)a;
    fr_spawn(77, 0, "fetch");
    fr_await(77, "socket");
}

/* A spawn in a thread's timeline names its task once (the spawn's string is
 * the name); another event's string, an await's label, follows its task. */
Test(cli, thread_timeline_names_a_spawned_task_once, .timeout = 60)
{
    char path[512];
    const char *out = worker_timeline(64, spawn_and_await, path);
    cr_assert_not_null(strstr(out, "spawn task 77 \"fetch\"\n"), "%s", out);
    cr_assert_not_null(strstr(out, "await task 77 \"fetch\" \"socket\"\n"), "%s", out);
}

/* The row of task @id in `tasks` output @out, from its NAME column on. */
static const char *tasks_row(const char *out, const char *id)
{
    char key[32];
    snprintf(key, sizeof(key), "\n%s ", id);
    const char *row = strstr(out, key);
    cr_assert_not_null(row, "no row for task %s in:\n%s", id, out);
    return row + 20;
}

/*
 * Tasks whose spawn left the ring (64 KiB, overwritten by 20000 short
 * requests): a listener still alive is named from the spawn table; a
 * sleeper with no event in the window is listed after the rows as alive
 * and silent, a task dropped before the window is not; task 9,
 * alive across the window's start and dropped inside it, then spawned again
 * as "second", keeps no name for its first instance (the table's entry is
 * the second spawn, inside the window: not the first instance's); task 11,
 * polled but never spawned, is "(spawned earlier)"; task 8, spawned inside
 * the window, has its own name.
 */
Test(cli, tasks_names_tasks_whose_spawn_left_the_ring)
{
    char path[512], args[700], *out, *err;
    sc_recorder_start(64);
    fr_thread_name("main");
    fr_spawn(7, 3, "listener");
    fr_spawn(9, 0, "first");
    fr_spawn(12, 7, "sleeper"); /* alive, and silent all through the window */
    fr_spawn(13, 0, "finished");
    fr_drop(13);
    for (uint64_t id = 100; id < 20100; id++) {
        fr_spawn(id, 0, "request");
        fr_poll_begin(id);
        fr_poll_end(id, FR_READY);
        fr_drop(id);
    }
    fr_spawn(8, 0, "fresh");
    uint64_t polled[] = {7, 8, 9, 11};
    for (size_t i = 0; i < sizeof(polled) / sizeof(*polled); i++) {
        fr_poll_begin(polled[i]);
        fr_poll_end(polled[i], FR_PENDING);
    }
    fr_drop(9);
    fr_spawn(9, 0, "second");
    fr_poll_begin(9);
    fr_poll_end(9, FR_PENDING);
    sc_dump(path);
    fr_shutdown();

    snprintf(args, sizeof(args), "tasks '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_null(strstr(out, "\n100 "), "the oldest requests should have left the ring");
    cr_assert_eq(strncmp(tasks_row(out, "7"), "listener                 3 ", 27), 0, "%s", out);
    cr_assert_eq(strncmp(tasks_row(out, "8"), "fresh ", 6), 0, "%s", out);
    cr_assert_eq(strncmp(tasks_row(out, "11"), "(spawned earlier)", 17), 0, "%s", out);
    const char *nine = tasks_row(out, "9");
    cr_assert_eq(strncmp(nine, "(spawned earlier)", 17), 0, "%s", out);
    cr_assert_eq(strncmp(tasks_row(nine, "9"), "second ", 7), 0, "%s", out);
    cr_assert_null(strstr(out, " first  "), "%s", out);
    /* the silent list: the sleeper alone, after the instances */
    const char *silent = strstr(out, "\n1 more tasks alive at the dump did nothing in the recording");
    cr_assert_not_null(silent, "%s", out);
    cr_assert_eq(strncmp(tasks_row(silent, "12"), "sleeper                  7 ", 27), 0, "%s", silent);
    cr_assert_not_null(strstr(silent, " before the window, on thread "), "%s", silent);
    cr_assert_null(strstr(out, "finished"), "a dropped task is not alive: %s", out);
    snprintf(args, sizeof(args), "tasks '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "], \"silent\": [\n{\"id\": 12, \"name\": \"sleeper\", "
                                   "\"parent\": 7, \"spawned_ns\": -"),
                       "%s", strstr(out, "\"silent\"") ? strstr(out, "\"silent\"") : out);
    /* analyze counts it, and makes no finding of it */
    snprintf(args, sizeof(args), "analyze '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"silent_tasks\": 1, \"timing_withheld\": 0, \"host_withheld\": 0, \"run_delay_lost\": false, \"crash\": null, \"findings\": []"),
                       "%s", out);
    snprintf(args, sizeof(args), "analyze '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\n1 more task alive at the dump did nothing in the recording"),
                       "%s", out);
}

Test(cli, truncated_dump_exits_1_with_where, .timeout = 120)
{
    char path[512], cut[600], args[700], *out, *err;
    record(path, 1);
    size_t whole;
    char *buf = th_read_file(path, &whole);
    long len = (long)whole;
    FILE *f;
    snprintf(cut, sizeof(cut), "%s/cut.frd", th_tmpdir());
    int n = 0;
    for (long at = 0; at < len; at += len / 60 + 1, n++) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, (size_t)at, f);
        fclose(f);
        const char *cmds[] = {"info '%s'", "analyze '%s' --json"};
        for (int k = 0; k < 2; k++) {
            snprintf(args, sizeof(args), cmds[k], cut);
            int st = sc_cli(args, &out, &err);
            cr_assert_eq(st, 1, "cut at %ld of %ld: status %d, stderr: %s", at, len, st, err);
            cr_assert_not_null(strstr(err, "offset "), "cut at %ld: %s", at, err);
        }
    }
    cr_log_info("%d cut points through the CLI", n);
    /* cut inside the file header: said as a cut, with the header's size */
    f = fopen(cut, "wb");
    fwrite(buf, 1, 10, f);
    fclose(f);
    snprintf(args, sizeof(args), "info '%s'", cut);
    cr_assert_eq(sc_cli(args, &out, &err), 1);
    cr_assert_not_null(strstr(err, ": offset 8: expected a header of 128 bytes, found the file cut "
                                   "short after 2 of them"), "%s", err);
    free(buf);
}

/* ---- crash ---------------------------------------------------------------- */

/* read through a volatile object so the compiler cannot see the null store */
static volatile int *volatile bad_address;

__attribute__((noinline, no_sanitize("undefined"))) static void crash_here(void)
{
    *bad_address = 42; /* SIGSEGV */
}

/* worker-1 polls task 99 "handle_request" (parent 98 "accept_loop") and
 * crashes in it, after @requests short requests through a @ring_kb ring. */
static int crash_in_handle_request(const char *dir, size_t ring_kb, uint64_t requests)
{
    struct fr_config cfg = {.dump_dir = dir, .dump_signal = -1, .ring_bytes = ring_kb * 1024};
    if (fr_init(&cfg))
        return 3;
    fr_thread_name("worker-1");
    fr_spawn(98, 0, "accept_loop");
    fr_spawn(99, 98, "handle_request");
    for (uint64_t id = 100; id < 100 + requests; id++) {
        fr_spawn(id, 98, "request");
        fr_poll_begin(id);
        fr_poll_end(id, FR_READY);
        fr_drop(id);
    }
    fr_poll_begin(99);
    crash_here();
    return 0;
}

static int crashing_child(void *arg)
{
    return crash_in_handle_request(arg, 0, 0);
}

/* Run @child in a fork, which must die of SIGSEGV leaving one dump: its
 * path in @path (512 bytes). */
static void crash_dump_of(int (*child)(void *), char *path)
{
    const char *dir = th_tmpdir();
    int st = th_run_child(child, (void *)dir);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status 0x%x", st);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 1);
    memcpy(path, paths[0], 512);
}

Test(cli, crash_info_names_signal_task_and_function, .timeout = 60)
{
    char paths[1][512], args[700], *out, *err;
    crash_dump_of(crashing_child, paths[0]);
    snprintf(args, sizeof(args), "info '%s' --json", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"signal\": 11, \"signal_name\": \"SIGSEGV\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"crash_task\": {\"id\": 99, \"name\": \"handle_request\"}"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "\"crash_task_chain\": [{\"id\": 99"), "%s", out);
    cr_assert_not_null(strstr(out, "{\"id\": 98, \"name\": \"accept_loop\"}]"), "%s", out);
    cr_assert_not_null(strstr(out, "\"function\": \"crash_here\""), "%s", out);
    cr_assert_not_null(strstr(out, "test_cli.c\", \"line\": "), "%s", out);
    snprintf(args, sizeof(args), "info '%s'", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "SIGSEGV"), "%s", out);
    cr_assert_not_null(strstr(out, "SIGSEGV (code 1), fault address 0x0, at "), "its time: %s", out);
    cr_assert_not_null(strstr(out, "99 \"handle_request\" <- 98 \"accept_loop\""), "%s", out);
    cr_assert_not_null(strstr(out, " in crash_here at "), "%s", out);
}

/* analyze names the crash too, in its text and its --json; a dump that is no
 * crash says crash null (tasks_names_tasks_whose_spawn_left_the_ring). */
Test(cli, crash_analyze_names_the_crashing_task, .timeout = 60)
{
    char paths[1][512], args[700], *out, *err;
    crash_dump_of(crashing_child, paths[0]);
    snprintf(args, sizeof(args), "analyze '%s'", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\ncrash: SIGSEGV on thread "), "%s", out);
    cr_assert_not_null(strstr(out, " while it polled task 99 \"handle_request\" <- 98 "
                                   "\"accept_loop\"; info shows the backtrace\n"),
                       "%s", out);
    snprintf(args, sizeof(args), "analyze '%s' --json", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"crash\": {\"signal\": \"SIGSEGV\", \"thread\": "), "%s",
                       out);
    cr_assert_not_null(strstr(out, "\"task\": {\"id\": 99, \"name\": \"handle_request\"}}"),
                       "%s", out);
}

/* A process that crashes before it recorded anything. */
static int crashing_child_at_once(void *arg)
{
    struct fr_config cfg = {.dump_dir = arg, .dump_signal = -1};
    if (fr_init(&cfg))
        return 3;
    crash_here();
    return 0;
}

/* info gives a crash's time from the recording's first event: with no event
 * at all it says so, where it printed a negative time. */
Test(cli, crash_before_any_event_says_so, .timeout = 60)
{
    char paths[1][512], args[700], *out, *err;
    crash_dump_of(crashing_child_at_once, paths[0]);
    snprintf(args, sizeof(args), "info '%s'", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "SIGSEGV"), "%s", out);
    cr_assert_not_null(strstr(out, ", before any event was recorded\n"), "%s", out);
    cr_assert_null(strstr(out, "at -"), "%s", out);
}

/* The spawns of the crashing task and of its parent have left the ring. */
static int crashing_child_late(void *arg)
{
    return crash_in_handle_request(arg, 64, 20000);
}

/* The task that was running at the crash is named even though its spawn is
 * older than the ring: the spawn table gives its name and parent. */
Test(cli, crash_names_a_task_spawned_before_the_window, .timeout = 60)
{
    char paths[1][512], args[700], *out, *err;
    crash_dump_of(crashing_child_late, paths[0]);
    snprintf(args, sizeof(args), "tasks '%s'", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_null(strstr(out, "\n100 "), "the first requests should have left the ring");
    snprintf(args, sizeof(args), "info '%s' --json", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"crash_task\": {\"id\": 99, \"name\": \"handle_request\"}"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "\"crash_task_chain\": [{\"id\": 99"), "%s", out);
    cr_assert_not_null(strstr(out, "\"crash_task_chain\": [{\"id\": 99, \"name\": \"handle_request\"}, "
                                   "{\"id\": 98, \"name\": null}]"),
                       "the parent, from the spawn table (no event of its own in the window): %s",
                       out);
}

/* A dump names files (its module map); the decoder opens them to symbolize.
 * One that has become a FIFO must not hang it: nothing would ever write. */
static char mapped_path[600];

static int crash_with_a_mapped_file(void *arg)
{
    struct fr_config cfg = {.dump_dir = arg, .dump_signal = -1};
    if (fr_init(&cfg))
        return 3;
    int fd = open(mapped_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        return 4;
    if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
        return 5;
    fr_spawn(7, 0, "mapper");
    fr_poll_begin(7);
    crash_here();
    return 0;
}

Test(cli, module_path_turned_fifo_does_not_hang_symbolizing, .timeout = 60)
{
    const char *dir = th_tmpdir();
    snprintf(mapped_path, sizeof mapped_path, "%s/mapped.bin", dir);
    int st = th_run_child(crash_with_a_mapped_file, (void *)dir);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status 0x%x", st);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 1);
    cr_assert_eq(unlink(mapped_path), 0);
    cr_assert_eq(mkfifo(mapped_path, 0600), 0);
    char args[700], *out, *err;
    snprintf(args, sizeof(args), "info '%s' --json", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"function\": \"crash_here\""), "%s", out);
}
