/*
 * test_dumpsignal.c - which signal dumps, and the program's own signals kept.
 *
 * FLIGHTREC_SIGNAL names the dump signal; the default SIGUSR1 steps aside for
 * a program that already uses it; a program that takes the dump signal later
 * (through the wrappers of recorder/adapters/common.c, linked into this test
 * executable as a preloaded adapter would be) keeps it and the dump signal
 * moves; a signal every application thread blocks still reaches the dumper.
 * The dumper thread's name ("flightrec:sig12") tells the current signal.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

/* The dump signal the dumper thread's name announces: the number, -1 for
 * "nosig", 0 if no dumper thread is found. */
static int announced_signal(void)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert(d);
    int sig = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f)) {
            if (strncmp(comm, "flightrec:nosig", 15) == 0)
                sig = -1;
            else if (strncmp(comm, "flightrec:sig", 13) == 0)
                sig = atoi(comm + 13);
        }
        fclose(f);
    }
    closedir(d);
    return sig;
}

/* Waits up to 3 s for the dumper to announce @want. */
static int wait_announced(int want)
{
    for (int i = 0; i < 300; i++) {
        int s = announced_signal();
        if (s == want)
            return s;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return announced_signal();
}

static int start(const char *env)
{
    if (env)
        setenv("FLIGHTREC_SIGNAL", env, 1);
    else
        unsetenv("FLIGHTREC_SIGNAL");
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    int rc = fr_init(&cfg);
    if (rc == 0) {
        fr_spawn(1, 0, "t");
        fr_poll_begin(1);
        fr_poll_end(1, FR_PENDING);
    }
    return rc;
}

static _Atomic int program_handled;
static void program_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&program_handled, 1);
}

Test(dumpsignal, names_numbers_and_none)
{
    struct {
        const char *env;
        int want;
    } ok[] = {
        { "USR2", SIGUSR2 },         { "sigusr2", SIGUSR2 },         { "12", SIGUSR2 },
        { "RTMIN+3", SIGRTMIN + 3 }, { "SIGRTMAX-2", SIGRTMAX - 2 }, { "none", -1 },
        { "HUP", SIGHUP },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(start(ok[i].env), 0, "FLIGHTREC_SIGNAL=%s", ok[i].env);
        cr_expect_eq(wait_announced(ok[i].want), ok[i].want, "FLIGHTREC_SIGNAL=%s", ok[i].env);
        fr_shutdown();
    }
    const char *bad[] = { "KILL", "SEGV", "11", "ABRT", "bogus", "RTMIN+", "RTMAX+1", "0",
                          "USR1x", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = start(bad[i]);
        if (bad[i][0]) {
            cr_expect_eq(rc, -EINVAL, "FLIGHTREC_SIGNAL=%s gave %d", bad[i], rc);
        } else {
            cr_expect_eq(rc, 0, "an empty FLIGHTREC_SIGNAL is the default");
            cr_expect_eq(wait_announced(SIGUSR1), SIGUSR1);
        }
        if (rc == 0)
            fr_shutdown();
    }
}

Test(dumpsignal, chosen_signal_dumps)
{
    cr_assert_eq(start("USR2"), 0);
    cr_assert_eq(wait_announced(SIGUSR2), SIGUSR2);
    kill(getpid(), SIGUSR2);
    cr_assert_eq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1);
}

Test(dumpsignal, default_steps_aside_for_a_handler_set_before)
{
    signal(SIGUSR1, program_handler);
    cr_assert_eq(start(NULL), 0);
    cr_assert_eq(wait_announced(SIGUSR2), SIGUSR2, "the dump signal moved to SIGUSR2");
    raise(SIGUSR1);
    cr_expect_eq(atomic_load(&program_handled), 1, "the program's SIGUSR1 handler ran");
    kill(getpid(), SIGUSR2);
    cr_assert_eq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1);
}

Test(dumpsignal, program_takes_it_after_init)
{
    cr_assert_eq(start("USR1"), 0); /* even a chosen signal gives way */
    cr_assert_eq(wait_announced(SIGUSR1), SIGUSR1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = program_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_assert_eq(wait_announced(SIGUSR2), SIGUSR2);
    raise(SIGUSR1);
    cr_expect_eq(atomic_load(&program_handled), 1, "the program's handler ran, not a dump");
    usleep(200 * 1000);
    static char none[4][512];
    cr_expect_eq(th_list_dumps(th_tmpdir(), none, 4), 0);
    kill(getpid(), SIGUSR2);
    cr_assert_eq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1);

    /* and again: SIGUSR2 taken with signal() moves it to the real-time range */
    cr_assert_neq(signal(SIGUSR2, program_handler), SIG_ERR);
    cr_assert_eq(wait_announced(SIGRTMAX - 1), SIGRTMAX - 1);
    raise(SIGUSR2);
    cr_expect_eq(atomic_load(&program_handled), 2);
}

Test(dumpsignal, sig_dfl_keeps_the_dump_signal)
{
    cr_assert_eq(start(NULL), 0);
    cr_assert_eq(wait_announced(SIGUSR1), SIGUSR1);
    cr_assert_neq(signal(SIGUSR1, SIG_DFL), SIG_ERR); /* a daemon resetting dispositions */
    cr_expect_eq(announced_signal(), SIGUSR1);
    kill(getpid(), SIGUSR1); /* still ours: a dump, not the default action */
    cr_assert_eq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1);
}

Test(dumpsignal, sigwait_takes_it)
{
    cr_assert_eq(start(NULL), 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct timespec t = { 0, 1000 * 1000 };
    sigtimedwait(&set, NULL, &t); /* a sigwait daemon's loop, once */
    cr_assert_eq(wait_announced(SIGUSR2), SIGUSR2);
    kill(getpid(), SIGUSR1);
    siginfo_t si;
    struct timespec t2 = { 5, 0 };
    cr_expect_eq(sigtimedwait(&set, &si, &t2), SIGUSR1, "the program's sigwait got its signal");
}

static void *blocked_worker(void *arg)
{
    (void)arg;
    fr_thread_name("blocked-worker");
    for (uint64_t i = 2; i < 200; i++) {
        fr_spawn(i, 0, "w");
        fr_poll_begin(i);
        fr_poll_end(i, FR_READY);
        fr_drop(i);
    }
    return NULL;
}

Test(dumpsignal, blocked_in_every_application_thread)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* an inherited mask: threads started later too */
    cr_assert_eq(start("USR1"), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, blocked_worker, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(wait_announced(SIGUSR1), SIGUSR1);
    kill(getpid(), SIGUSR1); /* only the dumper thread can take it */
    cr_assert_eq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1);
}
