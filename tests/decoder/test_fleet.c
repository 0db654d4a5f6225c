/*
 * tests/decoder/test_fleet.c - the CLI beyond one dump file: `analyze` over
 * many dumps (and a directory) with its grouped summary, a dump read from
 * standard input, and `flightrec dump PID` against live processes, including
 * ones it must refuse to signal.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"
#include "scenario.h"

static void make_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", th_tmpdir(), name);
    cr_assert(mkdir(buf, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", buf, strerror(errno));
}

/* A process that records one task; with @lost its waker is dropped while it
 * waits at "conn_read" (a lost wakeup), otherwise it completes. Then dumps. */
struct one_dump {
    const char *dir;
    int lost;
};

static int dumping_child(void *arg)
{
    const struct one_dump *a = arg;
    struct fr_config cfg = {.dump_dir = a->dir, .dump_signal = -1,
                            .flags = FR_NO_CRASH_HANDLERS};
    if (fr_init(&cfg))
        return 3;
    fr_thread_name("worker-1");
    fr_spawn(10, 0, "fetch");
    fr_poll_begin(10);
    fr_await(10, "conn_read");
    fr_waker_clone(10);
    fr_poll_end(10, FR_PENDING);
    if (a->lost) {
        fr_waker_drop(10);
    } else {
        fr_wake(10);
        fr_poll_begin(10);
        fr_poll_end(10, FR_READY);
        fr_drop(10);
    }
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return fr_dump("fleet", NULL, 0) == 0 ? 0 : 4;
}

static void record_in(const char *dir, int lost)
{
    struct one_dump a = {dir, lost};
    int st = th_run_child(dumping_child, &a);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
}

Test(fleet, analyze_directory_groups_the_same_bug)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "fleet");
    for (int i = 0; i < 3; i++)
        record_in(dir, 1);
    record_in(dir, 0);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 4);

    snprintf(args, sizeof(args), "analyze '%s' --json", dir);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"summary\": {\"dumps\": 4, \"unreadable\": 0, "
                                   "\"damaged\": 0, \"findings\": 3, \"groups\": ["),
                       "%s", out);
    cr_assert_not_null(strstr(out, "{\"kind\": \"lost_wakeup\", \"name\": \"fetch\", \"await\": "
                                   "\"conn_read\", \"count\": 3, \"dumps\": 3, \"first_file\": "),
                       "%s", out);
    /* one per-dump analysis each, in the single-dump shape */
    size_t n = 0;
    for (const char *p = out; (p = strstr(p, "\"analysis\": {\"events\": ")); p++)
        n++;
    cr_assert_eq(n, 4, "%s", out);

    snprintf(args, sizeof(args), "analyze '%s'", dir);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "summary: 4 dumps, 3 findings in 1 group\n"), "%s", out);
    cr_assert_not_null(strstr(out, "    3     3  lost_wakeup   fetch at conn_read\n"), "%s", out);
    cr_assert_not_null(strstr(out, "== "), "%s", out);
    cr_assert_null(strstr(out, "\033["), "colour on a pipe: %s", out);
}

Test(fleet, analyze_many_keeps_going_past_a_bad_dump)
{
    char dir[512], junk[600], args[2400], *out, *err;
    make_dir(dir, sizeof(dir), "mixed");
    record_in(dir, 1);
    record_in(dir, 1);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 2);
    snprintf(junk, sizeof(junk), "%s/junk.frd", th_tmpdir());
    FILE *f = fopen(junk, "w");
    cr_assert_not_null(f);
    fputs("not a dump\n", f);
    fclose(f);

    snprintf(args, sizeof(args), "analyze '%s' '%s' '%s' --json", paths[0], junk, paths[1]);
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, junk), "%s", err);
    cr_assert_not_null(strstr(err, "offset 0"), "%s", err);
    cr_assert_not_null(strstr(out, "\"error\": "), "%s", out);
    cr_assert_not_null(strstr(out, "\"dumps\": 3, \"unreadable\": 1"), "%s", out);
    cr_assert_not_null(strstr(out, "\"count\": 2, \"dumps\": 2"), "%s", out);

    /* a directory with no dumps is an error, said as such */
    char empty[512];
    make_dir(empty, sizeof(empty), "empty");
    snprintf(args, sizeof(args), "analyze '%s'", empty);
    cr_assert_eq(sc_cli(args, &out, &err), 1);
    cr_assert_not_null(strstr(err, "no dumps"), "%s", err);
    /* and the other commands read one dump */
    snprintf(args, sizeof(args), "info '%s'", dir);
    cr_assert_eq(sc_cli(args, &out, &err), 2, "%s", err);
    snprintf(args, sizeof(args), "tasks '%s' '%s'", paths[0], paths[1]);
    cr_assert_eq(sc_cli(args, &out, &err), 2, "%s", err);
}

Test(fleet, dump_from_standard_input)
{
    char dir[512], args[1200], *out, *err, *out2;
    make_dir(dir, sizeof(dir), "stdin");
    record_in(dir, 1);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 1);
    snprintf(args, sizeof(args), "analyze - --json < '%s'", paths[0]);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    snprintf(args, sizeof(args), "analyze '%s' --json", paths[0]);
    cr_assert_eq(sc_cli(args, &out2, &err), 0, "%s", err);
    cr_assert_str_eq(out, out2);
    cr_assert_not_null(strstr(out, "\"kind\": \"lost_wakeup\""), "%s", out);
}

/* ---- flightrec dump PID --------------------------------------------------- */

static volatile sig_atomic_t stop;

/* A service: fr_init with @dir (NULL: the defaults, i.e. the working
 * directory) and a loop of task hooks until killed. */
static pid_t start_service(const char *dir, const char *cwd)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid)
        return pid;
    if (cwd && chdir(cwd) != 0)
        _exit(5);
    unsetenv("FLIGHTREC_DIR");
    struct fr_config cfg = {.dump_dir = dir, .flags = FR_NO_CRASH_HANDLERS};
    if (fr_init(&cfg))
        _exit(3);
    fr_thread_name("worker-1");
    for (uint64_t id = 1; !stop; id++) {
        fr_spawn(id, 0, "job");
        fr_poll_begin(id);
        fr_poll_end(id, FR_READY);
        fr_drop(id);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    _exit(0);
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* A process that catches SIGUSR1 itself and never writes a dump. */
static pid_t start_deaf(int catch_usr1)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid)
        return pid;
    if (catch_usr1)
        signal(SIGUSR1, on_usr1);
    for (;;)
        pause();
}

/* Wait until @pid's SigCgt shows SIGUSR1 caught (its handler is installed). */
static void wait_catching(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        int caught = 0;
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "SigCgt:", 7) == 0)
                caught = strtoull(line + 7, NULL, 16) >> (SIGUSR1 - 1) & 1;
        fclose(f);
        if (caught)
            return;
        sc_sleep_ms(10);
    }
    cr_assert_fail("process %d never caught SIGUSR1", (int)pid);
}

static void finish(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void strip_newline(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = 0;
}

Test(dump_cmd, dumps_a_live_process_and_prints_the_path, .timeout = 60)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "live");
    pid_t pid = start_service(dir, NULL);
    wait_catching(pid);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 20", (int)pid, dir);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    strip_newline(out);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/flightrec-%d-", (int)pid);
    cr_assert_not_null(strstr(out, prefix), "%s", out);
    struct frd_dump *d = th_open(out);
    cr_assert_eq(d->hdr.pid, (uint32_t)pid);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
    cr_assert(!d->damaged);
    frd_close(d);

    /* a second request gets a second, new dump */
    char first[1024];
    snprintf(first, sizeof(first), "%s", out);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    strip_newline(out);
    cr_assert_str_neq(out, first);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the service must still run");
    finish(pid);
}

/* A daemon that drops privileges after fr_init (memcached -u nobody) into a
 * directory only root can write: its dumps fail, and `flightrec dump` says
 * why instead of "does it write its dumps elsewhere?". */
Test(dump_cmd, says_when_the_process_cannot_write_the_directory, .timeout = 60)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to drop privileges");
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "rootonly");
    cr_assert_eq(chmod(dir, 0755), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        unsetenv("FLIGHTREC_DIR");
        struct fr_config cfg = {.dump_dir = dir, .flags = FR_NO_CRASH_HANDLERS};
        if (fr_init(&cfg))
            _exit(3);
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            _exit(4);
        fr_thread_name("worker-1");
        for (;;)
            pause();
    }
    wait_catching(pid);
    sc_sleep_ms(50); /* past setresuid */
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 0.5", (int)pid, dir);
    int rc = sc_cli(args, &out, &err);
    finish(pid); /* before any assertion: it holds the test's output open */
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert_not_null(strstr(err, "writes as uid 65534, which cannot write"), "%s", err);
    cr_assert_null(strstr(err, "elsewhere"), "%s", err);
}

/* A program whose only thread sleeps: nanosleep returns EINTR when a signal
 * handler runs on that thread (SA_RESTART or not), and then the program
 * exits with status 7. */
static pid_t start_sleeper(const char *dir)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid)
        return pid;
    struct fr_config cfg = {.dump_dir = dir, .flags = FR_NO_CRASH_HANDLERS};
    if (fr_init(&cfg))
        _exit(3);
    fr_thread_name("sleeper");
    for (;;) {
        struct timespec ts = {30, 0};
        if (nanosleep(&ts, NULL) == -1 && errno == EINTR)
            _exit(7);
    }
}

Test(dump_cmd, interrupts_no_thread_of_the_program, .timeout = 60)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "sleeper");
    pid_t pid = start_sleeper(dir);
    wait_catching(pid);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 20", (int)pid, dir);
    int rc = sc_cli(args, &out, &err);
    /* the signal went to the dumper thread: the sleeping thread never ran
     * the handler (a signal sent to the process would have landed on it) */
    sc_sleep_ms(50);
    int st = 0;
    pid_t gone = waitpid(pid, &st, WNOHANG);
    finish(pid);
    cr_assert_eq(gone, 0, "the program's thread was interrupted (exit %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_eq(rc, 0, "%s", err);
    strip_newline(out);
    struct frd_dump *d = th_open(out);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
    frd_close(d);
}

Test(dump_cmd, finds_the_default_directory, .timeout = 60)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "cwd");
    pid_t pid = start_service(NULL, dir); /* dumps into its working directory */
    wait_catching(pid);
    snprintf(args, sizeof(args), "dump %d --timeout 20", (int)pid);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    strip_newline(out);
    cr_assert_eq(strncmp(out, dir, strlen(dir)), 0, "%s not in %s", out, dir);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0, "%s", out);
    finish(pid);
}

Test(dump_cmd, refuses_what_it_cannot_do, .timeout = 60)
{
    char args[1200], *out, *err;
    /* a process without flightrec: SIGUSR1 would kill it, so it is not sent */
    pid_t plain = start_deaf(0);
    sc_sleep_ms(50);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 1", (int)plain, th_tmpdir());
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "does not catch signal"), "%s", err);
    cr_assert_eq(waitpid(plain, NULL, WNOHANG), 0, "the process must not have been killed");
    finish(plain);

    /* a process that catches the signal but writes no dump: the timeout */
    pid_t deaf = start_deaf(1);
    wait_catching(deaf);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 0.3", (int)deaf, th_tmpdir());
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "no new dump"), "%s", err);
    finish(deaf);

    /* no such process */
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    snprintf(args, sizeof(args), "dump %d", (int)gone);
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "no process"), "%s", err);

    cr_assert_eq(sc_cli("dump", NULL, NULL), 2);
    cr_assert_eq(sc_cli("dump abc", NULL, NULL), 2);
    cr_assert_eq(sc_cli("dump 1 --timeout x", NULL, NULL), 2);
    cr_assert_eq(sc_cli("dump --help", &out, &err), 0);
    cr_assert_not_null(strstr(out, "usage: flightrec dump PID"), "%s", out);
}

/* ---- flightrec dump PID: which signal --------------------------------------- */

static void on_usr(int sig)
{
    (void)sig;
}

/*
 * A service whose real recorder takes its dump signal from FLIGHTREC_SIGNAL
 * (@env), writing into @dir. @own_usr1: the program handles SIGUSR1 itself
 * before fr_init (so "auto" moves the dump signal elsewhere); @block: it
 * blocks @block in its own threads (the recorder's dumper still takes it).
 */
static pid_t start_signal_service(const char *dir, const char *env, int own_usr1, int block)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid)
        return pid;
    setenv("FLIGHTREC_SIGNAL", env, 1);
    if (own_usr1)
        signal(SIGUSR1, on_usr);
    if (block) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, block);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    struct fr_config cfg = {.dump_dir = dir, .flags = FR_NO_CRASH_HANDLERS};
    if (fr_init(&cfg))
        _exit(3);
    fr_thread_name("worker-1");
    for (uint64_t id = 1; !stop; id++) {
        fr_spawn(id, 0, "job");
        fr_poll_begin(id);
        fr_poll_end(id, FR_READY);
        fr_drop(id);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    _exit(0);
}

/* Wait until a thread of @pid is named after dump signal @sig (0: none).
 * While fr_init runs, the dumper may first carry the default's name and then
 * the one the signal moved to: wait for the settled one. */
static void wait_named(pid_t pid, int sig)
{
    char cmd[200], name[32];
    if (sig > 0)
        snprintf(name, sizeof(name), "flightrec:sig%d", sig);
    else
        snprintf(name, sizeof(name), "flightrec:nosig");
    snprintf(cmd, sizeof(cmd), "grep -qsx '%s' /proc/%d/task/*/comm", name, (int)pid);
    for (int i = 0; i < 500; i++) {
        if (system(cmd) == 0)
            return;
        sc_sleep_ms(10);
    }
    cr_assert_fail("process %d never named a thread %s", (int)pid, name);
}

/* Dump @pid without --signal; return the dump's signal number. */
static uint32_t dump_signal_of(pid_t pid, const char *dir)
{
    char args[1200], *out, *err;
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 20", (int)pid, dir);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    strip_newline(out);
    struct frd_dump *d = th_open(out);
    cr_assert_eq(d->hdr.pid, (uint32_t)pid);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
    uint32_t sig = d->hdr.signo;
    frd_close(d);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the service must still run");
    return sig;
}

Test(dump_cmd, learns_the_dump_signal_from_the_dumper_thread, .timeout = 60)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "usr2");
    /* FLIGHTREC_SIGNAL=USR2: SIGUSR1 is not caught, sending it would kill */
    pid_t pid = start_signal_service(dir, "USR2", 0, 0);
    wait_named(pid, SIGUSR2);
    cr_assert_eq(dump_signal_of(pid, dir), (uint32_t)SIGUSR2);

    /* --signal overrides what the process announces: USR1 is not caught there */
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 1 --signal USR1", (int)pid, dir);
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "does not catch signal 10"), "%s", err);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the service must still run");
    finish(pid);

    /* auto, with the program handling SIGUSR1 itself: the signal moved */
    pid = start_signal_service(dir, "auto", 1, 0);
    wait_named(pid, SIGUSR2); /* the first free one after SIGUSR1 */
    uint32_t moved = dump_signal_of(pid, dir);
    cr_assert_neq(moved, (uint32_t)SIGUSR1);
    cr_assert_neq(moved, 0);
    finish(pid);

    /* RTMIN+3, blocked in every thread of the program: the dumper takes it */
    pid = start_signal_service(dir, "RTMIN+3", 0, SIGRTMIN + 3);
    wait_named(pid, SIGRTMIN + 3);
    cr_assert_eq(dump_signal_of(pid, dir), (uint32_t)(SIGRTMIN + 3));
    finish(pid);
}

Test(dump_cmd, says_when_the_process_has_no_dump_signal, .timeout = 60)
{
    char dir[512], args[1200], *out, *err;
    make_dir(dir, sizeof(dir), "nosig");
    pid_t pid = start_signal_service(dir, "none", 0, 0);
    wait_named(pid, 0);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 20", (int)pid, dir);
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "no dump signal"), "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the process must not have been signalled");
    finish(pid);
}

Test(dump_cmd, says_when_the_process_does_not_run_flightrec, .timeout = 60)
{
    char args[1200], *out, *err;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        execlp("sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    /* wait for the exec: the maps then show sleep, not this test's libraries */
    char exe[64], link[512];
    snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
    for (int i = 0; i < 500; i++) {
        ssize_t n = readlink(exe, link, sizeof(link) - 1);
        if (n > 0 && (link[n] = 0, strstr(link, "sleep")))
            break;
        sc_sleep_ms(10);
    }
    snprintf(args, sizeof(args), "dump %d --timeout 1", (int)pid);
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    char want[64];
    snprintf(want, sizeof(want), "process %d does not run flightrec", (int)pid);
    cr_assert_not_null(strstr(err, want), "%s", err);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the process must not have been signalled");
    finish(pid);
}

/* Catches SIGUSR1 and blocks it in its only thread. */
static pid_t start_blocking(void)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid)
        return pid;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGUSR1, on_usr1);
    for (;;)
        pause();
}

Test(dump_cmd, says_when_the_signal_is_blocked_in_every_thread, .timeout = 60)
{
    char args[1200], *out, *err;
    pid_t pid = start_blocking();
    wait_catching(pid);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 30", (int)pid, th_tmpdir());
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_not_null(strstr(err, "blocks signal 10 (SIGUSR1) in every thread"), "%s", err);
    cr_assert_not_null(strstr(err, "cannot be delivered"), "%s", err);
    cr_assert_null(strstr(err, "no new dump"), "%s", err);
    /* its healthy twin, the same process not blocking it: the usual timeout */
    finish(pid);
    pid = start_deaf(1);
    wait_catching(pid);
    snprintf(args, sizeof(args), "dump %d --dir '%s' --timeout 0.3", (int)pid, th_tmpdir());
    cr_assert_eq(sc_cli(args, &out, &err), 1, "%s", err);
    cr_assert_null(strstr(err, "every thread"), "%s", err);
    cr_assert_not_null(strstr(err, "no new dump"), "%s", err);
    finish(pid);
}

/* ---- manners ---------------------------------------------------------------- */

/* Colour only on a terminal (script(1) gives the CLI a pseudo-terminal), and
 * never with NO_COLOR. */
Test(fleet, colour_only_on_a_terminal_without_no_color)
{
    if (system("command -v script >/dev/null 2>&1") != 0)
        cr_skip_test("script(1) from util-linux is not installed");
    char dir[512], cmd[2400], *out;
    make_dir(dir, sizeof(dir), "tty");
    record_in(dir, 1);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 1);
    const char *envs[] = {"env -u NO_COLOR TERM=xterm", "env NO_COLOR=1 TERM=xterm"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "script -qec \"%s '%s' analyze '%s'\" /dev/null > '%s/tty.out'",
                 envs[i], FLIGHTREC_CLI, paths[0], th_tmpdir());
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        snprintf(cmd, sizeof(cmd), "%s/tty.out", th_tmpdir());
        out = th_read_file(cmd, NULL);
        cr_assert_not_null(strstr(out, "lost_wakeup"), "%s", out);
        if (i == 0)
            cr_assert_not_null(strstr(out, "\033[1;31mlost_wakeup"), "no colour on a tty: %s", out);
        else
            cr_assert_null(strstr(out, "\033["), "colour despite NO_COLOR: %s", out);
        free(out);
    }
}

/* A decode that takes over a second draws a progress line on a terminal's
 * stderr and erases it; here the input arrives slowly through a pipe. */
Test(fleet, progress_line_for_slow_decodes_on_a_terminal, .timeout = 60)
{
    if (system("command -v script >/dev/null 2>&1") != 0)
        cr_skip_test("script(1) from util-linux is not installed");
    char dir[512], cmd[2400];
    make_dir(dir, sizeof(dir), "slow");
    record_in(dir, 1);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(dir, paths, MAX_DUMPS_LISTED), 1);
    for (int tty = 1; tty >= 0; tty--) {
        const char *inner = "(sleep 1.5; cat '%s') | '%s' analyze - >/dev/null";
        char run[1400];
        snprintf(run, sizeof(run), inner, paths[0], FLIGHTREC_CLI);
        if (tty)
            snprintf(cmd, sizeof(cmd), "script -qec \"%s\" /dev/null > '%s/progress.out'", run,
                     th_tmpdir());
        else
            snprintf(cmd, sizeof(cmd), "%s 2> '%s/progress.out'", run, th_tmpdir());
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        snprintf(cmd, sizeof(cmd), "%s/progress.out", th_tmpdir());
        size_t n;
        char *buf = th_read_file(cmd, &n);
        if (tty) {
            cr_assert_not_null(strstr(buf, "flightrec: -: reading... 1."), "%s", buf);
            cr_assert(n >= 4 && strcmp(buf + n - 4, "\r\033[K") == 0, "line not erased: %s", buf);
        } else {
            cr_assert_eq(n, 0, "progress off a terminal: %s", buf);
        }
        free(buf);
    }
}
