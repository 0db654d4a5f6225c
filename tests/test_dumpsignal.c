/*
 * test_dumpsignal.c - which signal dumps, and the program's own signals kept.
 *
 * FLIGHTREC_SIGNAL names the dump signal; the default SIGUSR1 steps aside for
 * a program that already uses it; a program that takes the dump signal later
 * (through the wrappers of recorder/adapters/common.c, linked into this test
 * executable as a preloaded adapter would be) keeps it and the dump signal
 * moves; a signal every application thread blocks still reaches the dumper.
 * The dumper thread's name ("flightrec:sig12") tells the current signal.
 * The signalled thread makes no system call while the run-delay sampler
 * wakes the dumper in its place, and wakes it itself when the sampler is off.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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
static int announced(pid_t tid, const char *comm, void *arg)
{
    (void)tid;
    (void)arg;
    if (strcmp(comm, "flightrec:nosig") == 0)
        return -1;
    if (strncmp(comm, "flightrec:sig", 13) == 0)
        return atoi(comm + 13);
    return 0;
}

static int announced_signal(void)
{
    return th_each_thread(announced, NULL);
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

/*
 * The victim: records without end, under a seccomp filter of its own (not
 * the process's: no TSYNC) that turns its futex() calls into SIGSYS, which
 * on_sigsys counts. The call is not made, so a wake the handler attempts
 * does not happen. Nothing else in its loop makes a system call.
 */
static _Atomic int futex_calls, victim_ready, victim_stop;
static _Atomic int victim_filter_errno; /* 0: the filter is in place */

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (si->si_syscall == SYS_futex)
        atomic_fetch_add(&futex_calls, 1);
}

static void *filtered_victim(void *arg)
{
    (void)arg;
    fr_thread_name("victim");
    fr_spawn(1000, 0, "v"); /* the thread's first event: attach, before the filter */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof code / sizeof code[0], code };
    /* asserted on the main thread (Criterion's asserts end the test from it) */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        atomic_store(&victim_filter_errno, errno);
        atomic_store(&victim_ready, 1);
        return NULL;
    }
    atomic_store(&victim_ready, 1);
    for (uint64_t i = 1001; !atomic_load(&victim_stop); i++) {
        fr_spawn(i, 0, NULL);
        fr_poll_begin(i);
        fr_poll_end(i, FR_READY);
        fr_drop(i);
    }
    return NULL;
}

/* Start the victim, let the sampler see it record, send it the dump signal
 * and wait up to @ms for the dump. Return: dumps found. */
static int signal_filtered_victim(unsigned ms)
{
    struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
    sigaction(SIGSYS, &sa, NULL);
    cr_assert_eq(start("USR1"), 0);
    cr_assert_eq(wait_announced(SIGUSR1), SIGUSR1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, filtered_victim, NULL), 0);
    while (!atomic_load(&victim_ready))
        sched_yield();
    if (atomic_load(&victim_filter_errno)) {
        pthread_join(t, NULL);
        cr_assert_fail("the victim's seccomp filter: %s", strerror(victim_filter_errno));
    }
    struct timespec settle = { 0, 100 * 1000 * 1000 }; /* a few sampler periods */
    nanosleep(&settle, NULL);
    pthread_kill(t, SIGUSR1);
    int n = th_wait_for_dumps(th_tmpdir(), 1, ms);
    atomic_store(&victim_stop, 1);
    pthread_join(t, NULL);
    return n;
}

Test(dumpsignal, sampler_wakes_the_dumper_for_a_busy_thread)
{
    unsetenv("FLIGHTREC_RUN_DELAY");
    cr_assert_eq(signal_filtered_victim(5000), 1, "the dump came, woken by the sampler");
    cr_expect_eq(atomic_load(&futex_calls), 0, "the signalled thread made %d futex calls",
                 atomic_load(&futex_calls));
    fr_shutdown();
}

struct sending {
    int sig, sent;
};

static int signal_dumper(pid_t tid, const char *comm, void *arg)
{
    struct sending *s = arg;
    if (strncmp(comm, "flightrec:sig", 13) == 0)
        s->sent += syscall(SYS_tgkill, getpid(), tid, s->sig) == 0;
    return 0;
}

/* Send @sig to flightrec's dumper threads themselves (as `flightrec dump`
 * does). Return: how many were sent. */
static int signal_dumpers(int sig)
{
    struct sending s = { sig, 0 };
    th_each_thread(signal_dumper, &s);
    return s.sent;
}

Test(dumpsignal, a_dump_asked_just_before_shutdown_is_written)
{
    unsetenv("FLIGHTREC_RUN_DELAY");
    signal_filtered_victim(0); /* the dumper is woken by the sampler, later */
    fr_shutdown();
    cr_expect_eq(th_wait_for_dumps(th_tmpdir(), 1, 0), 1, "the asked dump was written");
}

Test(dumpsignal, handler_wakes_the_dumper_without_the_sampler)
{
    setenv("FLIGHTREC_RUN_DELAY", "0", 1);
    /* The filter skips the handler's wake: the dumper, marked awake by the
     * handler, sleeps on until a signal of its own interrupts its wait. */
    cr_expect_eq(signal_filtered_victim(200), 0, "no dump without the wake");
    cr_expect_geq(atomic_load(&futex_calls), 1, "the handler woke the dumper itself");
    cr_assert_geq(signal_dumpers(SIGUSR1), 1);
    cr_expect_geq(th_wait_for_dumps(th_tmpdir(), 1, 5000), 1, "the request was kept");
    fr_shutdown();
}
