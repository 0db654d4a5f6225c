/*
 * test_crash.c - every crash signal produces a dump that zstd accepts and the
 * decoder reads, naming the signal, the crashing thread, the task it was
 * polling and a backtrace through the crashing function; and the process
 * still dies of the original signal.
 *
 * Each case runs in a forked child (core dumps off); the test process checks
 * the child's exit status and its dump. Addresses are comparable because the
 * child is a fork of the same image.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

enum crash_kind { NULL_DEREF, STACK_OVERFLOW, ABORT, BUS, FPE, TRAP, KILL_SEGV, NKINDS };

/* Criterion copies parameters into a re-executed worker: no pointers here. */
struct crash_case {
    enum crash_kind kind;
    int signo;
    char name[32];
};

#define CRASH_TASK 0x5eed
static const char *dump_dir;

static volatile int *volatile null_ptr; /* volatile: the compiler cannot see it is NULL */
static volatile int recurse_forever = 1;

__attribute__((noinline, no_sanitize("undefined"))) static void crash_null(void)
{
    *null_ptr = 1;
}

__attribute__((noinline)) static int crash_recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (!recurse_forever)
        return pad[0];
    return crash_recurse(depth + 1) + pad[0];
}

__attribute__((noinline)) static void crash_abort(void)
{
    abort();
}

__attribute__((noinline)) static void crash_bus(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bus.bin", dump_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (ftruncate(fd, 8192) != 0)
        _exit(90);
    volatile char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ftruncate(fd, 0) != 0)
        _exit(91);
    unlink(path);
    p[4096] = 1;
}

__attribute__((noinline, no_sanitize("undefined"))) static int crash_fpe(volatile int zero)
{
    return 10 / zero;
}

__attribute__((noinline)) static void crash_trap(void)
{
    __builtin_trap();
}

__attribute__((noinline)) static void crash_kill(void)
{
    kill(getpid(), SIGSEGV);
    for (;;)
        pause();
}

static int run_crash(void *arg)
{
    const struct crash_case *c = arg;
    struct fr_config cfg = { .dump_dir = dump_dir };
    if (fr_init(&cfg) != 0)
        return 10;
    fr_spawn(CRASH_TASK, 0, "crasher");
    fr_poll_begin(CRASH_TASK);
    switch (c->kind) {
    case NULL_DEREF: crash_null(); break;
    case STACK_OVERFLOW: crash_recurse(0); break;
    case ABORT: crash_abort(); break;
    case BUS: crash_bus(); break;
    case FPE: crash_fpe(0); break;
    case TRAP: crash_trap(); break;
    case KILL_SEGV: crash_kill(); break;
    default: break;
    }
    return 11; /* survived: the test fails on the exit status */
}

static void *crash_fn(enum crash_kind k)
{
    switch (k) {
    case NULL_DEREF: return (void *)crash_null;
    case STACK_OVERFLOW: return (void *)crash_recurse;
    case ABORT: return (void *)crash_abort;
    case BUS: return (void *)crash_bus;
    case FPE: return (void *)crash_fpe;
    case TRAP: return (void *)crash_trap;
    case KILL_SEGV: return (void *)crash_kill;
    default: return NULL;
    }
}

/* The only dump in the directory, checked whole. */
static struct frd_dump *the_crash_dump(int signo)
{
    char paths[4][512];
    int n = th_list_dumps(dump_dir, paths, 4);
    cr_assert_eq(n, 1, "%d dumps after the crash, want 1", n);
    cr_assert_eq(th_count_temporaries(dump_dir), 0);
    cr_assert_eq(th_zstd_test(paths[0]), 0, "zstd -t rejected %s", paths[0]);
    struct frd_dump *d = th_open(paths[0]);
    cr_assert(d->have_end, "crash dump cut short: %s", d->nerrors ? d->errors[0] : "");
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_CRASH);
    cr_assert(d->crash.present);
    cr_assert_eq(d->crash.signo, (uint32_t)signo);
    return d;
}

ParameterizedTestParameters(crash, each_signal)
{
    static struct crash_case cases[] = {
        { NULL_DEREF, SIGSEGV, "null dereference" },
        { STACK_OVERFLOW, SIGSEGV, "stack overflow" },
        { ABORT, SIGABRT, "abort()" },
        { BUS, SIGBUS, "truncated mmap" },
        { FPE, SIGFPE, "integer divide by zero" },
        { TRAP, SIGILL, "__builtin_trap" },
        { KILL_SEGV, SIGSEGV, "kill -SEGV from outside" },
    };
    return cr_make_param_array(struct crash_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct crash_case *c, crash, each_signal, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_crash, c);
    cr_assert(WIFSIGNALED(st), "%s: child exited with %d instead of dying", c->name,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_eq(WTERMSIG(st), c->signo, "%s: died of %d, want %d", c->name, WTERMSIG(st),
                 c->signo);

    struct frd_dump *d = the_crash_dump(c->signo);
    cr_assert_eq(d->crash.task, CRASH_TASK, "%s: crashing task %llx", c->name,
                 (unsigned long long)d->crash.task);
    cr_assert_gt(d->crash.nframes, 0);
    cr_assert_not_null(th_thread(d, d->crash.tid), "no ring for the crashing thread");
    if (c->kind != KILL_SEGV && c->kind != ABORT) {
        /* Synchronous faults: frame 0 is the faulting instruction. */
        cr_assert_eq(d->crash.frames[0], d->crash.ip);
    }
    /* The backtrace reaches the crashing function. No symbols here: a frame
     * within the function's first 4 KiB is in it, as no other crash_* function
     * is on the crashing stack (instrumented builds make functions large). */
    uintptr_t fn = (uintptr_t)crash_fn(c->kind);
    int found = 0;
    for (uint32_t i = 0; i < d->crash.nframes; i++)
        if (d->crash.frames[i] >= fn && d->crash.frames[i] < fn + 4096)
            found = 1;
    cr_assert(found, "%s: no frame in the crashing function %p (%u frames, frame 0 %llx)",
              c->name, (void *)fn, d->crash.nframes, (unsigned long long)d->crash.frames[0]);
    frd_close(d);
}

/* ---- two threads crashing at once ---------------------------------------- */

static pthread_barrier_t both;

static void *crash_thread(void *arg)
{
    uint64_t task = (uint64_t)(uintptr_t)arg;
    fr_spawn(task, 0, "double");
    fr_poll_begin(task);
    pthread_barrier_wait(&both);
    crash_null();
    return NULL;
}

static int run_double_crash(void *arg)
{
    (void)arg;
    struct fr_config cfg = { .dump_dir = dump_dir };
    if (fr_init(&cfg) != 0)
        return 10;
    pthread_barrier_init(&both, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, crash_thread, (void *)(uintptr_t)0xa);
    pthread_create(&b, NULL, crash_thread, (void *)(uintptr_t)0xb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 11;
}

Test(crash, two_threads_at_once, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_double_crash, NULL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert(d->crash.task == 0xa || d->crash.task == 0xb, "crash task %llx",
              (unsigned long long)d->crash.task);
    const struct frd_thread *t = th_thread(d, d->crash.tid);
    cr_assert_not_null(t);
    cr_assert_eq(t->current_task, d->crash.task);
    frd_close(d);
}

/* ---- the application's own handler still runs (chaining) ---------------- */

static void app_handler(int sig)
{
    static const char msg[] = "app handler ran\n";
    (void)sig;
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) {
    }
    _exit(42);
}

static int run_chained(void *arg)
{
    (void)arg;
    signal(SIGSEGV, app_handler);
    struct fr_config cfg = { .dump_dir = dump_dir };
    if (fr_init(&cfg) != 0)
        return 10;
    fr_spawn(CRASH_TASK, 0, "crasher");
    fr_poll_begin(CRASH_TASK);
    crash_null();
    return 11;
}

Test(crash, chains_to_the_previous_handler, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_chained, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 42, "the application's handler did not run (%#x)",
              st);
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_eq(d->crash.task, CRASH_TASK);
    frd_close(d);
}

/* ---- crash handlers can be left out ------------------------------------- */

static int run_no_handlers(void *arg)
{
    (void)arg;
    struct fr_config cfg = { .dump_dir = dump_dir, .flags = FR_NO_CRASH_HANDLERS };
    if (fr_init(&cfg) != 0)
        return 10;
    crash_null();
    return 11;
}

Test(crash, no_crash_handlers_flag, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_no_handlers, NULL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    char paths[2][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 2), 0);
}
