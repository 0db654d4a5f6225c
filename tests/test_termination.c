/*
 * test_termination.c - FLIGHTREC_DUMP_ON: a dump on SIGTERM (and the like),
 * then exactly what the program would have done: the default action (the
 * process ends by that signal), or the program's own handler, whether it was
 * installed before fr_init or after it (through the adapters' sigaction
 * wrapper, linked into this executable as a preloaded adapter would be).
 * Each case runs in a child process that the test signals from outside.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

enum handler_when { NO_HANDLER, BEFORE_INIT, AFTER_INIT, IGNORED, IGNORED_AFTER_INIT };

static int ready_pipe[2];
static volatile sig_atomic_t got_term;
static volatile sig_atomic_t dump_seen_in_handler = -1;

static void program_handler(int sig)
{
    (void)sig;
    /* the dump must already be whole when the program's handler runs */
    char paths[MAX_DUMPS_LISTED][512];
    dump_seen_in_handler = th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED);
    got_term = 1;
}

static void set_handler(void (*fn)(int))
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, &old) != 0)
        _exit(90);
    /* the program's view: what was there before is the default, never ours */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL)
        _exit(91);
    struct sigaction now;
    if (sigaction(SIGTERM, NULL, &now) != 0 || now.sa_handler != fn)
        _exit(92);
}

/* The child: records a few events, says it is ready, and waits for SIGTERM. */
static void child(enum handler_when when, int dump_on)
{
    if (dump_on)
        setenv("FLIGHTREC_DUMP_ON", "TERM,INT", 1);
    else
        unsetenv("FLIGHTREC_DUMP_ON");
    if (when == BEFORE_INIT)
        set_handler(program_handler);
    if (when == IGNORED)
        signal(SIGTERM, SIG_IGN);
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    if (fr_init(&cfg) != 0)
        _exit(93);
    if (when == AFTER_INIT)
        set_handler(program_handler);
    if (when == IGNORED_AFTER_INIT)
        signal(SIGTERM, SIG_IGN); /* through the adapters' wrapper */
    fr_thread_name("term-main");
    for (uint64_t t = 1; t <= 50; t++) {
        fr_spawn(t, 0, "job");
        fr_poll_begin(t);
        fr_poll_end(t, FR_READY);
        fr_drop(t);
    }
    if (write(ready_pipe[1], "r", 1) != 1)
        _exit(94);
    if (when == IGNORED || when == IGNORED_AFTER_INIT) {
        /* still alive after the ignored SIGTERM, with no dump: it ended
         * nothing; and still ignored, so that a program it execs inherits
         * the ignore (a handler of ours would be reset to the default) */
        struct timespec ts = { 0, 300 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        if (th_wait_for_dumps(th_tmpdir(), 1, 200) != 0)
            _exit(97);
        struct sigaction now; /* the kernel's word, not a wrapper's view: its handler comes first */
        if (syscall(SYS_rt_sigaction, SIGTERM, NULL, &now, 8) != 0 || now.sa_handler != SIG_IGN)
            _exit(98);
        _exit(5);
    }
    for (int i = 0; i < 1000 && !got_term; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (!got_term)
        _exit(95);
    _exit(dump_seen_in_handler == 1 ? 3 : 96);
}

/* Runs the child, sends SIGTERM once it is ready; returns its wait status. */
static int run(enum handler_when when, int dump_on)
{
    cr_assert_eq(pipe(ready_pipe), 0);
    th_tmpdir();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        child(when, dump_on);
    char c;
    cr_assert_eq(read(ready_pipe[0], &c, 1), 1, "the child never got ready");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

static struct frd_dump *the_dump(void)
{
    char paths[MAX_DUMPS_LISTED][512];
    int n = th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED);
    cr_assert_eq(n, 1, "one termination dump expected, found %d", n);
    cr_assert_eq(th_zstd_test(paths[0]), 0);
    struct frd_dump *d = th_open(paths[0]);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_TERMINATION);
    cr_assert_eq(d->hdr.signo, SIGTERM);
    cr_assert_str_eq(d->hdr.reason, "termination");
    cr_assert(!d->damaged);
    size_t events = 0;
    for (size_t i = 0; i < d->nthreads; i++)
        if (strcmp(d->threads[i].name, "term-main") == 0)
            events = d->threads[i].nevents;
    cr_assert_geq(events, 200, "the child's history is in the dump");
    return d;
}

Test(termination, without_a_handler_the_dump_then_death_by_the_signal)
{
    int st = run(NO_HANDLER, 1);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status 0x%x", st);
    frd_close(the_dump());
    cr_assert_eq(th_count_temporaries(th_tmpdir()), 0);
}

Test(termination, the_programs_handler_installed_before_init_runs_after_the_dump)
{
    int st = run(BEFORE_INIT, 1);
    cr_assert(WIFEXITED(st), "status 0x%x", st);
    cr_assert_eq(WEXITSTATUS(st), 3, "exit %d", WEXITSTATUS(st));
    frd_close(the_dump());
}

Test(termination, the_programs_handler_installed_after_init_is_chained_behind_the_dump)
{
    int st = run(AFTER_INIT, 1);
    cr_assert(WIFEXITED(st), "status 0x%x", st);
    cr_assert_eq(WEXITSTATUS(st), 3, "exit %d", WEXITSTATUS(st));
    frd_close(the_dump());
}

/* The child ignoring SIGTERM (@when says since when) survives it, still
 * ignoring it, and nothing is dumped. */
static void assert_ignored_run(enum handler_when when)
{
    int st = run(when, 1);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 5, "status 0x%x (97: a dump, 98: not ignored)",
              st);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 0);
}

Test(termination, an_ignored_signal_stays_ignored_and_dumps_nothing)
{
    assert_ignored_run(IGNORED);
}

Test(termination, a_signal_ignored_after_init_stays_ignored_and_dumps_nothing)
{
    assert_ignored_run(IGNORED_AFTER_INIT);
}

/* The healthy twin: without FLIGHTREC_DUMP_ON nothing changes, no dump. */
Test(termination, off_by_default)
{
    int st = run(NO_HANDLER, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status 0x%x", st);
    char paths[MAX_DUMPS_LISTED][512];
    cr_assert_eq(th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED), 0);
    st = run(AFTER_INIT, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 96, "status 0x%x", st); /* no dump seen */
}

Test(termination, bad_settings_are_refused)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    const char *bad[] = { "TERM,", ",TERM", "CHLD", "SEGV", "KILL", "TERM,,INT", "NOPE", "USR1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("FLIGHTREC_DUMP_ON", bad[i], 1);
        int rc = fr_init(&cfg);
        if (rc == 0)
            fr_shutdown();
        cr_assert_eq(rc, -EINVAL, "FLIGHTREC_DUMP_ON=%s: %d", bad[i], rc);
    }
    unsetenv("FLIGHTREC_DUMP_ON");
    cfg.dump_on = FR_DUMP_ON(SIGTERM) | FR_DUMP_ON(SIGHUP);
    cr_assert_eq(fr_init(&cfg), 0);
    fr_shutdown();
}
