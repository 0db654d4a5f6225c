/*
 * watchdog.c - the stall watchdog: a dump, by itself, when one poll runs too
 * long, with the stuck thread's stack as it was at that moment.
 *
 * Off unless fr_config.stall_ms or FLIGHTREC_STALL_MS is set. A thread of our
 * own ("flightrec-watch") sleeps in poll() on a pipe for a coarse period
 * (stall_ms / 4, between 1 and 250 ms) and, on each wake, reads two words per
 * live ring (slots below the registry's high-water mark): current_task and
 * poll_ticks, which fr_poll_begin stores (the record path's only cost, one
 * more relaxed store beside the task). A thread whose current poll began
 * stall_ms or more ago is stuck:
 *
 *   1. its stack is taken at that moment: tgkill() with the sampler signal,
 *      whose handler, on the stuck thread, hands its signal context to the
 *      unwinder thread (unwind.c, as the crash handler does: libunwind from
 *      the signal frame, bounded in time, never on a thread that may hold the
 *      loader's lock) and waits for it, the stack frozen meanwhile, then says
 *      it is done; the watchdog waits at most FR_STALL_SAMPLE_WAIT_MS for the
 *      handler to start (a thread that blocks the signal yields a dump
 *      without a stack);
 *   2. the dump is written by the watchdog thread, with a STALL section
 *      (flightrec/format.h) holding the thread, task, when the poll began,
 *      when the stack was taken, and the raw addresses, symbolized offline.
 *
 * The dump comes while the poll is still running, so the history that led to
 * it is still in the rings. One dump per poll, and at most stall_dumps stall
 * dumps per stall_window_s seconds: a storm of stalls gives a few dumps.
 * Threads of a pool made to block (named FR_BLOCKING_POOL_THREAD: libuv's
 * thread pool) are left alone: a long work callback there is the pool's job
 * while the loop runs on, and the sampler signal would cut its blocking call
 * short (EINTR).
 *
 * The sampler signal is the first of SIGRTMAX-7 .. SIGRTMAX-10 that the
 * program leaves alone (default disposition, not blocked); the dump signal's
 * candidates (signal.c) end at SIGRTMAX-6, so the two never collide. When the
 * program takes it later (seen through the adapters' wrappers), the sampler
 * moves to the next free one, or stops sampling stacks. Its handler is
 * SA_RESTART, but a thread blocked in nanosleep/poll/epoll_wait/select
 * returns EINTR once, as it would for any signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

/* How long the watchdog waits for the stuck thread to take its own stack. */
#ifndef FR_STALL_SAMPLE_WAIT_MS
#define FR_STALL_SAMPLE_WAIT_MS 200u
#endif
#define DEFAULT_STALL_DUMPS 3u
#define DEFAULT_STALL_WINDOW_S 300u
#define MAX_STALL_DUMPS 64u

enum { SAMPLE_IDLE = 0, SAMPLE_REQUESTED, SAMPLE_BUSY, SAMPLE_DONE };

/* The one sample in flight. The watchdog writes tid and sets REQUESTED; the
 * handler on that thread moves REQUESTED -> BUSY (so a late handler, after
 * the watchdog gave up, does nothing), fills the rest and stores DONE
 * (release; pairs with the watchdog's acquire load). */
static struct {
    _Atomic int state;
    _Atomic uint32_t tid;
    uint64_t ticks, ip, sp;
    int nframes;
    uint64_t frames[FR_MAX_FRAMES];
} sample;

static int pipe_fd[2] = { -1, -1 };
static pthread_t thread;
static int running;
static _Atomic int sample_sig = -1;      /* -1: no sampler signal */
static struct sigaction sample_old;      /* what sample_sig had before us */
static uint64_t recent[MAX_STALL_DUMPS]; /* monotonic ns of recent stall dumps, a ring */
static unsigned recent_n;
static uint64_t reported_ticks[FR_MAX_THREADS]; /* poll_ticks of the poll already dumped */
static uint32_t reported_gen[FR_MAX_THREADS];
static _Atomic uint64_t stalls_suppressed; /* over the rate limit */

static int env_uint(const char *name, unsigned lo, unsigned hi, unsigned *out)
{
    const char *v = secure_getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || v[0] == '-' || x < lo || x > hi)
        return -EINVAL;
    *out = (unsigned)x;
    return 0;
}

/*
 * fr__watchdog_parse_env - the environment's watchdog settings into fr__cfg:
 * FLIGHTREC_STALL_MS (when the config left stall_ms 0; 0 = off, up to one
 * hour), FLIGHTREC_STALL_DUMPS (1..64, default 3) and FLIGHTREC_STALL_WINDOW
 * (seconds, 1..86400, default 300). Return: 0 or -EINVAL.
 */
int fr__watchdog_parse_env(void)
{
    fr__cfg.stall_dumps = DEFAULT_STALL_DUMPS;
    fr__cfg.stall_window_s = DEFAULT_STALL_WINDOW_S;
    int err = 0;
    if (!fr__cfg.stall_ms)
        err = env_uint("FLIGHTREC_STALL_MS", 0, 3600000u, &fr__cfg.stall_ms);
    if (!err)
        err = env_uint("FLIGHTREC_STALL_DUMPS", 1, MAX_STALL_DUMPS, &fr__cfg.stall_dumps);
    if (!err)
        err = env_uint("FLIGHTREC_STALL_WINDOW", 1, 86400u, &fr__cfg.stall_window_s);
    if (!err && fr__cfg.stall_ms > 3600000u)
        err = -EINVAL;
    return err;
}

/* ---- the sampler: runs on the stuck thread ---------------------------------- */

static void on_sample(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    int expect = SAMPLE_REQUESTED;
    if (atomic_load_explicit(&sample.tid, FR_RELAXED) == (uint32_t)fr__gettid() &&
        atomic_compare_exchange_strong(&sample.state, &expect, SAMPLE_BUSY)) {
        ucontext_t *uc = ucv;
        fr__writer_flush(); /* the stuck poll's folded events, before the dump copies them */
        sample.ticks = fr__ticks();
        sample.ip = sample.sp = 0;
#if defined(__x86_64__)
        sample.ip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
        sample.sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
        sample.ip = (uint64_t)uc->uc_mcontext.pc;
        sample.sp = (uint64_t)uc->uc_mcontext.sp;
#endif
        int status;
        sample.nframes = fr__backtrace(uc, sample.frames, FR_MAX_FRAMES, &status);
        atomic_store_explicit(&sample.state, SAMPLE_DONE, FR_RELEASE);
    }
    errno = saved;
}

/* Free for the sampler: default disposition, not blocked here, not ours yet. */
static int sig_free(int sig)
{
    struct sigaction cur;
    sigset_t mask;
    if (sig == __atomic_load_n(&fr__cfg.dump_signal, __ATOMIC_ACQUIRE))
        return 0;
    if (fr__own_sigaction(sig, NULL, &cur) != 0 || pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0)
        return 0;
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL && !sigismember(&mask, sig);
}

static uint64_t taken; /* sampler candidates the program took (bit n-1 for signal n) */

static int pick_signal(void)
{
    for (int i = 7; i <= 10; i++) {
        int s = SIGRTMAX - i;
        if (s > SIGRTMIN && !(taken & (1ull << (s - 1))) && sig_free(s))
            return s;
    }
    return -1;
}

static void install_sampler(void)
{
    int sig = pick_signal();
    atomic_store(&sample_sig, sig);
    if (sig <= 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sample;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (fr__own_sigaction(sig, &sa, &sample_old) != 0)
        atomic_store(&sample_sig, -1);
}

/* The program set @sig's disposition (adapters' wrappers, via signal.c). */
void fr__watchdog_signal_claimed(int sig, int how)
{
    if (!running || sig != atomic_load(&sample_sig) || !how)
        return;
    taken |= 1ull << (sig - 1);
    install_sampler(); /* the program's disposition stays on @sig */
}

/* ---- the watchdog thread ------------------------------------------------------ */

/* ns per tick from the first calibration pair to now (1 without a TSC). */
static double ns_per_tick(const struct fr_clock_pair *now)
{
    if (!fr__clock_tsc)
        return 1.0;
    const struct fr_clock_pair *p0 = &fr__clock_pairs[0];
    if (now->ticks <= p0->ticks || now->mono_ns <= p0->mono_ns + 1000000u)
        return 0.0; /* too early to tell */
    return (double)(now->mono_ns - p0->mono_ns) / (double)(now->ticks - p0->ticks);
}

static int rate_allows(uint64_t now_ns)
{
    uint64_t window = (uint64_t)fr__cfg.stall_window_s * 1000000000u;
    unsigned cap = fr__cfg.stall_dumps;
    unsigned inside = 0;
    for (unsigned i = 0; i < recent_n && i < cap; i++)
        if (now_ns - recent[i] < window)
            inside++;
    return inside < cap;
}

static void rate_note(uint64_t now_ns)
{
    recent[recent_n % fr__cfg.stall_dumps] = now_ns;
    recent_n++;
}


static uint8_t stall_body[FR_STALL_HEADER_SIZE + 8 * FR_MAX_FRAMES];

/* Take @tid's stack on @tid. Return: 1 with `sample` filled, 0 without. */
static int take_sample(uint32_t tid)
{
    int sig = atomic_load(&sample_sig);
    if (sig <= 0)
        return 0;
    atomic_store_explicit(&sample.tid, tid, FR_RELAXED);
    atomic_store_explicit(&sample.state, SAMPLE_REQUESTED, FR_RELEASE);
    if (syscall(SYS_tgkill, getpid(), (pid_t)tid, sig) != 0) {
        atomic_store(&sample.state, SAMPLE_IDLE);
        return 0;
    }
    for (unsigned waited = 0; waited < FR_STALL_SAMPLE_WAIT_MS; waited++) {
        if (atomic_load_explicit(&sample.state, FR_ACQUIRE) == SAMPLE_DONE)
            return 1;
        fr__sleep_ms(1);
    }
    int expect = SAMPLE_REQUESTED;
    if (atomic_compare_exchange_strong(&sample.state, &expect, SAMPLE_IDLE))
        return 0; /* the thread blocks the signal: no stack; a late handler does nothing */
    for (unsigned waited = 0; waited < 2500; waited++) { /* BUSY: the unwind is under way */
        if (atomic_load_explicit(&sample.state, FR_ACQUIRE) == SAMPLE_DONE)
            return 1;
        fr__sleep_ms(1);
    }
    return 0; /* never reused while BUSY: the next request waits for DONE (see stall) */
}

static void stall(struct fr_slot *s, uint64_t task, uint64_t begin, double npt)
{
    uint32_t tid = atomic_load_explicit(&s->tid, FR_RELAXED);
    if (atomic_load(&sample.state) == SAMPLE_BUSY)
        return; /* a handler from an earlier stall still unwinds: skip rather than mix */
    int have = take_sample(tid);
    uint8_t *b = stall_body;
    memset(b, 0, FR_STALL_HEADER_SIZE);
    int n = have ? sample.nframes : 0;
    if (n < 0)
        n = 0;
    fr__put32(b, tid);
    fr__put32(b + 4, (uint32_t)n);
    fr__put64(b + 8, task);
    fr__put64(b + 16, begin);
    fr__put64(b + 24, have ? sample.ticks : fr__ticks());
    fr__put64(b + 32, (uint64_t)fr__cfg.stall_ms * 1000000u);
    fr__put32(b + 40, have ? FR_STALL_STACK : 0);
    fr__put64(b + 48, have ? sample.ip : 0);
    fr__put64(b + 56, have ? sample.sp : 0);
    for (int i = 0; i < n; i++)
        fr__put64(b + FR_STALL_HEADER_SIZE + 8 * (size_t)i, sample.frames[i]);
    if (have)
        atomic_store(&sample.state, SAMPLE_IDLE);

    struct fr_dump_extra x = { FR_SEC_STALL, b, FR_STALL_HEADER_SIZE + 8 * (size_t)n };
    char path[4096 + 160];
    if (fr__dump_lock(2000) != 0)
        return;
    fr__dump_set_extra(FR_CTX_NORMAL, &x);
    int err = fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_STALL, 0, "stall", NULL, path, sizeof path);
    fr__dump_set_extra(FR_CTX_NORMAL, NULL);
    fr__dump_unlock();
    if (!err) {
        uint64_t ms = npt > 0 ? (uint64_t)((double)(fr__ticks() - begin) * npt / 1e6) : 0;
        char line[96];
        size_t k = 0;
        memcpy(line, "one poll has held thread ", 25);
        k = 25;
        k += fr__fmt_u64(line + k, tid);
        memcpy(line + k, " for ", 5);
        k += 5;
        k += fr__fmt_u64(line + k, ms);
        memcpy(line + k, " ms; stall dump", 15);
        line[k + 15] = '\0';
        fr__warn(line, path, 0);
    }
}

/* Is slot @s's thread one of a pool made to block (FR_BLOCKING_POOL_THREAD)?
 * A rename racing this read can only make it answer wrongly once. */
static int blocking_pool(const struct fr_slot *s)
{
    static const char pool[] = FR_BLOCKING_POOL_THREAD;
    uint32_t n = atomic_load_explicit(&s->name_len, FR_ACQUIRE);
    return n == sizeof pool - 1 && memcmp(s->name, pool, n) == 0;
}

static void scan(void)
{
    struct fr_clock_pair now;
    fr__clock_pair_now(&now);
    double npt = ns_per_tick(&now);
    if (npt <= 0)
        return;
    uint64_t limit_ns = (uint64_t)fr__cfg.stall_ms * 1000000u;
    /* Slots are claimed lowest first: only those below the high-water mark
     * can be live (pairs with its release in registry.c). */
    uint32_t high = atomic_load_explicit(&fr__slots_high, FR_ACQUIRE);
    for (uint32_t i = 0; i < high && i < FR_MAX_THREADS; i++) {
        struct fr_slot *s = &fr__slots[i];
        if (atomic_load_explicit(&s->state, FR_ACQUIRE) != FR_SLOT_LIVE)
            continue;
        /* Pairs with the release store of current_task in fr_poll_begin:
         * poll_ticks is that poll's (or a later poll's) start. */
        uint64_t task = atomic_load_explicit(&s->ring.current_task, FR_ACQUIRE);
        if (!task)
            continue;
        uint64_t begin = atomic_load_explicit(&s->ring.poll_ticks, FR_RELAXED);
        if (atomic_load_explicit(&s->ring.current_task, FR_ACQUIRE) != task)
            continue; /* the poll ended meanwhile */
        uint64_t t = fr__ticks();
        if (t <= begin || (double)(t - begin) * npt < (double)limit_ns)
            continue;
        if (blocking_pool(s))
            continue; /* blocking there is the pool's job, and the loop runs on */
        uint32_t gen = atomic_load_explicit(&s->gen, FR_RELAXED);
        if (reported_ticks[i] == begin && reported_gen[i] == gen)
            continue; /* this poll has had its dump */
        reported_ticks[i] = begin;
        reported_gen[i] = gen;
        uint64_t mono = fr__monotonic_ns();
        if (!rate_allows(mono)) {
            atomic_fetch_add(&stalls_suppressed, 1);
            continue;
        }
        rate_note(mono);
        stall(s, task, begin, npt);
    }
}

static unsigned period_ms(void)
{
    unsigned p = fr__cfg.stall_ms / 4;
    return p < 1 ? 1 : p > 250 ? 250 : p;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "flightrec-watch", 0, 0, 0);
    struct pollfd p = { .fd = pipe_fd[0], .events = POLLIN };
    int ms = (int)period_ms();
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 0)
            break; /* 'q' or the pipe closed */
        scan();
    }
    return NULL;
}

/*
 * fr__watchdog_start - when fr__cfg.stall_ms is set: install the sampler
 * handler and start the watchdog thread with every signal blocked.
 * Return: 0 or -errno.
 */
int fr__watchdog_start(void)
{
    if (!fr__cfg.stall_ms || running)
        return 0;
    if (pipe2(pipe_fd, O_CLOEXEC) != 0)
        return -errno;
    memset(reported_ticks, 0, sizeof reported_ticks);
    recent_n = 0;
    atomic_store(&sample.state, SAMPLE_IDLE);
    install_sampler();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&thread, NULL, watchdog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        close(pipe_fd[0]);
        close(pipe_fd[1]);
        pipe_fd[0] = pipe_fd[1] = -1;
        return -err;
    }
    running = 1;
    return 0;
}

void fr__watchdog_stop(void)
{
    if (!running)
        return;
    ssize_t r;
    do
        r = write(pipe_fd[1], "q", 1);
    while (r < 0 && errno == EINTR);
    pthread_join(thread, NULL);
    close(pipe_fd[0]);
    close(pipe_fd[1]);
    pipe_fd[0] = pipe_fd[1] = -1;
    int sig = atomic_exchange(&sample_sig, -1);
    if (sig > 0)
        fr__own_sigaction(sig, &sample_old, NULL);
    running = 0;
}

/* fork child: the parent's watchdog thread is not here; start our own. */
void fr__watchdog_restart_in_child(void)
{
    if (!running)
        return;
    if (pipe_fd[0] >= 0) {
        close(pipe_fd[0]);
        close(pipe_fd[1]);
    }
    pipe_fd[0] = pipe_fd[1] = -1;
    running = 0;
    int sig = atomic_exchange(&sample_sig, -1);
    if (sig > 0)
        fr__own_sigaction(sig, &sample_old, NULL);
    if (fr__watchdog_start() != 0)
        fr__warn("fork child: cannot start the stall watchdog", NULL, 0);
}
