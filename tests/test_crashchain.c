/*
 * test_crashchain.c - a crash handler the program installs after fr_init,
 * through the adapters' sigaction/signal wrappers (linked into this
 * executable as a preloaded adapter would bring them, the way `flightrec run`
 * runs every program): the crash is still dumped, first, and then the
 * program's handler runs as it would have; the program's queries see its own
 * action, never ours; with FR_CHAIN_FIRST its handler sees a fault first and
 * a fault it resolves is no crash. Each case runs in a child process.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

static volatile sig_atomic_t dumps_seen_in_handler = -1;

static void start(const char *chain_first)
{
    if (chain_first)
        setenv("FLIGHTREC_CHAIN_FIRST", chain_first, 1);
    else
        unsetenv("FLIGHTREC_CHAIN_FIRST");
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    if (fr_init(&cfg) != 0)
        _exit(93);
    fr_thread_name("chain-main");
    fr_spawn(1, 0, "job");
    fr_poll_begin(1); /* the crash comes inside this poll */
}

/* Installs @fn on @sig as a program does after fr_init, and checks the
 * program's view: what was there before is the default, and a query
 * returns its own handler. Exits 90-92 if not. */
static void install(int sig, void (*fn)(int))
{
    struct sigaction sa, old, now;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) != 0)
        _exit(90);
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        _exit(91);
    if (sigaction(sig, NULL, &now) != 0 || (now.sa_flags & SA_SIGINFO) || now.sa_handler != fn)
        _exit(92);
}

static int dumps_now(void)
{
    char paths[MAX_DUMPS_LISTED][512];
    return th_list_dumps(th_tmpdir(), paths, MAX_DUMPS_LISTED);
}

/* A service's last-words handler: looks, then ends the process itself. */
static void exiting_handler(int sig)
{
    (void)sig;
    _exit(dumps_now() == 1 ? 3 : 96);
}

static int segv_after_init(void *arg)
{
    (void)arg;
    start(NULL);
    install(SIGSEGV, exiting_handler);
    th_crash_null();
    return 97;
}

Test(crashchain, a_segv_handler_installed_after_init_runs_after_the_dump)
{
    th_tmpdir();
    int st = th_run_child(segv_after_init, NULL);
    cr_assert(WIFEXITED(st), "status 0x%x", st);
    cr_assert_eq(WEXITSTATUS(st), 3, "exit %d (96: no dump when the handler ran)",
                 WEXITSTATUS(st));
    struct frd_dump *d = th_the_crash_dump(th_tmpdir(), SIGSEGV);
    cr_assert_eq(d->crash.task, 1, "the task running at the crash: %llu",
                 (unsigned long long)d->crash.task);
    frd_close(d);
}

/* The other common shape: note it, give the signal back, raise it again. */
static void reraising_handler(int sig)
{
    dumps_seen_in_handler = dumps_now();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int abort_after_init(void *arg)
{
    (void)arg;
    start(NULL);
    if (signal(SIGABRT, reraising_handler) != SIG_DFL)
        _exit(91);
    th_crash_abort();
    return 97;
}

Test(crashchain, an_abort_handler_that_reraises_ends_the_process_by_the_signal_after_one_dump)
{
    th_tmpdir();
    int st = th_run_child(abort_after_init, NULL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status 0x%x", st);
    frd_close(th_the_crash_dump(th_tmpdir(), SIGABRT)); /* one dump, whole */
}

/* FR_CHAIN_FIRST: a handler that resolves its faults (a guard page made
 * writable) sees them first; none is a crash, and nothing is dumped. */
static char *guarded;
static volatile sig_atomic_t resolved;

static void resolving_handler(int sig)
{
    (void)sig;
    resolved++;
    mprotect(guarded, 4096, PROT_READ | PROT_WRITE);
}

static int resolved_fault(void *arg)
{
    (void)arg;
    guarded = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guarded == MAP_FAILED)
        _exit(89);
    start("1");
    install(SIGSEGV, resolving_handler);
    guarded[10] = 42; /* faults once, resolved by the program's handler */
    fr_poll_end(1, FR_READY);
    return guarded[10] == 42 && resolved == 1 && dumps_now() == 0 ? 4 : 98;
}

Test(crashchain, with_chain_first_a_fault_the_handler_resolves_is_no_crash)
{
    th_tmpdir();
    int st = th_run_child(resolved_fault, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 4, "status 0x%x", st);
    cr_assert_eq(dumps_now(), 0);
}

/* The healthy twin: the same program installs its handler and does not
 * crash; no dump, and its handler is still the one a query returns. */
static int no_crash(void *arg)
{
    (void)arg;
    start(NULL);
    install(SIGSEGV, exiting_handler);
    fr_poll_end(1, FR_READY);
    fr_drop(1);
    fr_shutdown();
    struct sigaction now;
    if (sigaction(SIGSEGV, NULL, &now) != 0 || now.sa_handler != exiting_handler)
        return 99;
    return 0;
}

Test(crashchain, no_crash_no_dump_and_the_handler_stays_the_programs)
{
    th_tmpdir();
    int st = th_run_child(no_crash, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_eq(dumps_now(), 0);
}
