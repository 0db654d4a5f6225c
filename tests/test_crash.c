/*
 * test_crash.c - every crash signal produces a dump that zstd accepts and the
 * decoder reads, naming the signal, the crashing thread, the task it was
 * polling and a backtrace through the crashing function; and the process
 * still dies of the original signal.
 *
 * Each case runs in a forked child (core dumps off); the test process checks
 * the child's exit status and its dump. Addresses are comparable because the
 * child is a fork of the same image.
 *
 * This program links a build of the recorder with FR_TEST_HOOKS, so that
 * FLIGHTREC_TEST_FAULT can make the crash writer itself fault (the salvage
 * path); the library users link has no such hook.
 */
#undef NDEBUG /* the assert() case */
#include <assert.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <criterion/parameterized.h>
#include <stdatomic.h>
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

enum crash_kind {
    NULL_DEREF, STACK_OVERFLOW, ABORT, BUS, FPE, TRAP, KILL_SEGV, READONLY_WRITE, ASSERT_FAIL,
    BUSY_NEIGHBOUR, NULL_CALL, NKINDS
};

/* Criterion copies parameters into a re-executed worker: no pointers here. */
struct crash_case {
    enum crash_kind kind;
    int signo;
    int app_handler; /* the program installs its own handler for signo first */
    char name[32];
};

#define CRASH_TASK 0x5eed
static const char *dump_dir;
static char app_marker[600]; /* created by the program's own handler */

/* The program's own crash handler: leaves a mark, then lets the signal do
 * what it would have done (a fault re-executes, abort() raises again). */
static void app_marking_handler(int sig)
{
    int fd = open(app_marker, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    signal(sig, SIG_DFL);
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

__attribute__((noinline)) static void crash_readonly(void)
{
    volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    mprotect((void *)p, 4096, PROT_READ);
    p[1] = 2;
}

static volatile int assert_operand = 1;

__attribute__((noinline)) static void crash_assert(void)
{
    assert(assert_operand == 0);
}

/* A neighbour thread recording the verifiable sequence of stress_rings.c
 * (spawn(i, i-1), poll_begin(i), poll_end(i, READY)) as fast as it can. */
static _Atomic uint64_t neighbour_iters;
static _Atomic uint32_t neighbour_tid;
static uint64_t neighbour_target = 200000; /* iterations before the crash */

static void *neighbour(void *arg)
{
    (void)arg;
    fr_thread_name("neighbour");
    atomic_store(&neighbour_tid, (uint32_t)th_gettid());
    for (uint64_t i = 1;; i++) {
        fr_spawn(i, i - 1, "n");
        fr_poll_begin(i);
        fr_poll_end(i, FR_READY);
        atomic_store_explicit(&neighbour_iters, i, memory_order_relaxed);
    }
    return NULL;
}

static volatile int *volatile null_ptr; /* volatile: the compiler cannot see it is NULL */

__attribute__((noinline, no_sanitize("undefined"))) static void crash_busy(void)
{
    pthread_t t;
    pthread_create(&t, NULL, neighbour, NULL);
    while (atomic_load(&neighbour_iters) < neighbour_target)
        sched_yield();
    *null_ptr = 2; /* the neighbour is still writing */
}

static void (*volatile null_fn)(void); /* a call through it jumps to 0 */
static volatile int after_call;

__attribute__((noinline)) static void crash_null_call(void)
{
    null_fn();
    after_call++; /* not a tail call: the return address is in this function */
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
    if (c->app_handler)
        signal(c->signo, app_marking_handler);
    struct fr_config cfg = { .dump_dir = dump_dir };
    if (fr_init(&cfg) != 0)
        return 10;
    fr_spawn(CRASH_TASK, 0, "crasher");
    fr_poll_begin(CRASH_TASK);
    switch (c->kind) {
    case NULL_DEREF: th_crash_null(); break;
    case STACK_OVERFLOW: th_crash_recurse(0); break;
    case ABORT: th_crash_abort(); break;
    case BUS: crash_bus(); break;
    case FPE: crash_fpe(0); break;
    case TRAP: crash_trap(); break;
    case KILL_SEGV: crash_kill(); break;
    case READONLY_WRITE: crash_readonly(); break;
    case ASSERT_FAIL: crash_assert(); break;
    case BUSY_NEIGHBOUR: crash_busy(); break;
    case NULL_CALL: crash_null_call(); break;
    default: break;
    }
    return 11; /* survived: the test fails on the exit status */
}

static void *crash_fn(enum crash_kind k)
{
    switch (k) {
    case NULL_DEREF: return (void *)th_crash_null;
    case STACK_OVERFLOW: return (void *)th_crash_recurse;
    case ABORT: return (void *)th_crash_abort;
    case BUS: return (void *)crash_bus;
    case FPE: return (void *)crash_fpe;
    case TRAP: return (void *)crash_trap;
    case KILL_SEGV: return (void *)crash_kill;
    case READONLY_WRITE: return (void *)crash_readonly;
    case ASSERT_FAIL: return (void *)crash_assert;
    case BUSY_NEIGHBOUR: return (void *)crash_busy;
    case NULL_CALL: return (void *)crash_null_call;
    default: return NULL;
    }
}

static struct frd_dump *the_crash_dump(int signo)
{
    return th_the_crash_dump(dump_dir, signo);
}

ParameterizedTestParameters(crash, each_signal)
{
    static struct crash_case cases[] = {
        { NULL_DEREF, SIGSEGV, 0, "null dereference" },
        { STACK_OVERFLOW, SIGSEGV, 0, "stack overflow" },
        { ABORT, SIGABRT, 0, "abort()" },
        { BUS, SIGBUS, 0, "truncated mmap" },
        { FPE, SIGFPE, 0, "integer divide by zero" },
        { TRAP, SIGILL, 0, "__builtin_trap" },
        { KILL_SEGV, SIGSEGV, 0, "kill -SEGV from outside" },
        { READONLY_WRITE, SIGSEGV, 1, "write to read-only memory" },
        { ASSERT_FAIL, SIGABRT, 1, "assert() failure" },
        { BUSY_NEIGHBOUR, SIGSEGV, 0, "neighbour at full speed" },
        { NULL_CALL, SIGSEGV, 0, "call through a NULL pointer" },
    };
    return cr_make_param_array(struct crash_case, cases, sizeof cases / sizeof cases[0]);
}

/* The frames the crash backtrace must reach: one in the crashing function.
 * No symbols here: a frame within the function's first 4 KiB is in it, as no
 * other crash_* function is on the crashing stack (instrumented builds make
 * functions large). */
static void assert_backtrace_reaches(const struct frd_dump *d, void *fnp, const char *name)
{
    uintptr_t fn = (uintptr_t)fnp;
    int found = 0;
    for (uint32_t i = 0; i < d->crash.nframes; i++)
        if (d->crash.frames[i] >= fn && d->crash.frames[i] < fn + 4096)
            found = 1;
    cr_assert(found, "%s: no frame in the crashing function %p (%u frames, frame 0 %llx)", name,
              (void *)fn, d->crash.nframes,
              (unsigned long long)(d->crash.nframes ? d->crash.frames[0] : 0));
}

/* The neighbour's ring is in the dump, and every event in its whole part
 * follows the sequence: it was recording while the crash dump copied it.
 * Whatever it overwrote during the copy is its oldest history, never a hole
 * in the middle (the recorder copies a ring newest page first). */
static void assert_neighbour_recorded(const struct frd_dump *d)
{
    const struct frd_thread *t = NULL;
    for (size_t i = 0; i < d->nthreads; i++)
        if (d->threads[i].tid != d->crash.tid && strcmp(d->threads[i].name, "neighbour") == 0)
            t = &d->threads[i];
    cr_assert_not_null(t, "the neighbour's ring is not in the crash dump");
    cr_assert_eq(t->pages_bad, 0, "a torn page decoded");
    cr_assert_eq(t->first_whole, 0,
                 "a hole in the neighbour's history: whole from event %zu of %zu", t->first_whole,
                 t->nevents);
    cr_assert_gt(t->nevents - t->first_whole, 1000, "%zu whole events of the neighbour",
                 t->nevents - t->first_whole);
    const struct frd_event *prev = NULL;
    size_t checked = 0;
    for (size_t i = t->first_whole; i < t->nevents; i++) {
        const struct frd_event *e = &t->events[i];
        if (e->type == FR_EV_THREAD_NAME)
            continue;
        if (prev) {
            int ok = (prev->type == FR_EV_SPAWN && e->type == FR_EV_POLL_BEGIN &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_POLL_BEGIN && e->type == FR_EV_POLL_READY &&
                      e->task == prev->task) ||
                     (prev->type == FR_EV_POLL_READY && e->type == FR_EV_SPAWN &&
                      e->task == prev->task + 1 && e->parent == prev->task);
            cr_assert(ok, "neighbour event %zu: type %u task %llu after type %u task %llu", i,
                      e->type, (unsigned long long)e->task, prev->type,
                      (unsigned long long)prev->task);
        }
        prev = e;
        checked++;
    }
    cr_log_info("neighbour at full speed: %zu events in the crash dump, all in sequence", checked);
}

ParameterizedTest(struct crash_case *c, crash, each_signal, .timeout = 60)
{
    dump_dir = th_tmpdir();
    snprintf(app_marker, sizeof app_marker, "%s/app-handler-ran", dump_dir);
    int st = th_run_child(run_crash, c);
    cr_assert(WIFSIGNALED(st), "%s: child exited with %d instead of dying", c->name,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_eq(WTERMSIG(st), c->signo, "%s: died of %d, want %d", c->name, WTERMSIG(st),
                 c->signo);
    if (c->app_handler) {
        cr_assert_eq(access(app_marker, F_OK), 0, "%s: the program's own handler did not run",
                     c->name);
        unlink(app_marker);
    }

    struct frd_dump *d = the_crash_dump(c->signo);
    cr_assert_eq(d->crash.task, CRASH_TASK, "%s: crashing task %llx", c->name,
                 (unsigned long long)d->crash.task);
    cr_assert_gt(d->crash.nframes, 0, "%s: no frames", c->name);
    cr_assert_not_null(th_thread(d, d->crash.tid), "%s: no ring for the crashing thread", c->name);
    if (c->kind != KILL_SEGV && c->kind != ABORT && c->kind != ASSERT_FAIL) {
        /* Synchronous faults: frame 0 is the faulting instruction. */
        cr_assert_eq(d->crash.frames[0], d->crash.ip, "%s: frame 0 %llx, the ip %llx", c->name,
                     (unsigned long long)d->crash.frames[0], (unsigned long long)d->crash.ip);
    }
    assert_backtrace_reaches(d, crash_fn(c->kind), c->name);
    if (c->kind == BUSY_NEIGHBOUR)
        assert_neighbour_recorded(d);
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
    th_crash_null();
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
    th_crash_null();
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
    th_crash_null();
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

/* ---- a crash inside the crash writer (salvage) --------------------------- */

struct writer_fault_case {
    enum crash_kind kind; /* the original crash */
    int signo;            /* ...and its signal, which must end the process */
    int whole_sections;   /* sections before the faulting one (END is never reached) */
    int threads;          /* thread sections that were whole */
    char fault[32];       /* FLIGHTREC_TEST_FAULT */
    char name[32];
};

static void *record_and_exit(void *arg)
{
    (void)arg;
    fr_thread_name("finished");
    for (uint64_t i = 1; i <= 1000; i++) {
        fr_spawn(0x100 + i, 0, "done");
        fr_drop(0x100 + i);
    }
    return NULL;
}

static int run_writer_fault(void *arg)
{
    const struct writer_fault_case *c = arg;
    setenv("FLIGHTREC_TEST_FAULT", c->fault, 1);
    struct fr_config cfg = { .dump_dir = dump_dir };
    if (c->kind == BUSY_NEIGHBOUR) {
        /* A ring that compresses to more than the writer's staging buffer. */
        cfg.ring_bytes = 16u << 20;
        neighbour_target = 3000000;
    }
    if (fr_init(&cfg) != 0)
        return 10;
    /* Two more rings in the dump after the crashing thread's. */
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        pthread_create(&t, NULL, record_and_exit, NULL);
        pthread_join(t, NULL);
    }
    fr_spawn(CRASH_TASK, 0, "crasher");
    fr_poll_begin(CRASH_TASK);
    switch (c->kind) {
    case NULL_DEREF: th_crash_null(); break;
    case ABORT: th_crash_abort(); break;
    case BUSY_NEIGHBOUR: crash_busy(); break;
    case NULL_CALL: crash_null_call(); break;
    default: break;
    }
    return 11;
}

ParameterizedTestParameters(crash, writer_fault)
{
    /* Sections in order: header frame, crash, process, clock, strings,
     * modules, threads (crashing thread first), copied, spawns, run delay,
     * strings, end. */
    static struct writer_fault_case cases[] = {
        { ABORT, SIGABRT, 4, 0, "writer:modules", "abort, writer faults in modules" },
        { NULL_DEREF, SIGSEGV, 6, 1, "writer:thread:2", "segv, fault in 2nd thread" },
        { ABORT, SIGABRT, 8, 3, "writer:copied", "abort, fault in copy times" },
        { ABORT, SIGABRT, 9, 3, "writer:spawns", "abort, fault in the spawn table" },
        { ABORT, SIGABRT, 10, 3, "writer:run-delay", "abort, fault in the run delays" },
        { ABORT, SIGABRT, 11, 3, "writer:strings:2", "abort, fault in late strings" },
        /* The neighbour's ring compresses to more than the staging buffer:
         * part of the faulting frame is on disk already and is cut off. */
        { BUSY_NEIGHBOUR, SIGSEGV, 8, 3, "writer:thread:4", "fault in a big thread frame" },
    };
    return cr_make_param_array(struct writer_fault_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct writer_fault_case *c, crash, writer_fault, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_writer_fault, c);
    cr_assert(WIFSIGNALED(st), "%s: child exited with %d instead of dying", c->name,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_eq(WTERMSIG(st), c->signo, "%s: died of %d, want the original %d", c->name,
                 WTERMSIG(st), c->signo);

    /* Salvaged under the final name, cut at a frame boundary. */
    char paths[4][512];
    int n = th_list_dumps(dump_dir, paths, 4);
    cr_assert_eq(n, 1, "%s: %d dumps after the crash, want 1", c->name, n);
    cr_assert_eq(th_count_temporaries(dump_dir), 0, "a temporary was left behind");
    cr_assert_eq(th_zstd_test(paths[0]), 0, "%s: zstd -t rejected the salvaged dump", c->name);
    struct frd_dump *d = th_open(paths[0]);
    cr_assert_not(d->have_end, "%s: the writer faulted, yet the dump has an END section", c->name);
    cr_assert_eq(d->nsections, (uint32_t)c->whole_sections, "%s: %u whole sections, want %d",
                 c->name, d->nsections, c->whole_sections);
    cr_assert_eq(d->nthreads, (size_t)c->threads, "%s: %zu threads", c->name, d->nthreads);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_CRASH);
    cr_assert(d->crash.present);
    cr_assert_eq(d->crash.signo, (uint32_t)c->signo);
    cr_assert_eq(d->crash.task, CRASH_TASK);
    assert_backtrace_reaches(d, crash_fn(c->kind), c->name);
    if (c->threads) {
        const struct frd_thread *t = th_thread(d, d->crash.tid);
        cr_assert_not_null(t, "the crashing thread's ring comes first and was whole");
        cr_assert_eq(t->current_task, CRASH_TASK);
    }
    /* copy times come with the COPIED section, for every ring or none; in
     * these cases it follows 8 whole sections (3 threads) */
    int copied = c->whole_sections > 8;
    for (size_t i = 0; i < d->nthreads; i++)
        cr_assert_eq(d->threads[i].copied, copied, "%s: thread %zu: copy time %s", c->name, i,
                     copied ? "missing" : "without a COPIED section");
    if (copied)
        cr_assert_leq(th_thread(d, d->crash.tid)->copied_ns, d->threads[d->nthreads - 1].copied_ns,
                      "the crashing thread's ring is copied first");
    frd_close(d);
}
