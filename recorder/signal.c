/*
 * signal.c - the dump signal and the dumper threads.
 *
 * The handler does one thing: set a bit in a dumper's request word and, if
 * that dumper sleeps on it, see that it is woken (no descriptor, so a daemon
 * that closes every descriptor keeps its dump signal). The dumper, blocked in
 * FUTEX_WAIT, takes every request that
 * arrived and writes one dump. Signals that arrive while a dump is being
 * written are coalesced into one more dump after it, without a system call
 * in the handler. The application's threads are never stopped: the dumper
 * copies their rings while they run (torn pages are dropped, see ring.c).
 *
 * Where the dumper wakes. Woken from the handler, a dumper may be placed on
 * the CPU of the thread that took the signal when the other CPUs are busy,
 * and the scheduler then often switches to it as soon as that thread returns
 * from the wake: the signalled thread lost its CPU for up to a time slice.
 * So there are two dumper threads when the process may use two CPUs or more,
 * each bound to one half of them, and the handler wakes the one whose half
 * does not hold the CPU it runs on (sched_getcpu). Both are SCHED_BATCH: on
 * their own CPUs they do not preempt on wake-up either.
 *
 * Who wakes the dumper. A FUTEX_WAKE of a thread asleep on another CPU is
 * the handler's only system call, and its costliest part: in a VM, the
 * wake's interrupt to the other vCPU took ~30 us, as much as the signal's
 * delivery and return (bench-dump). So when the run-delay sampler
 * (rundelay.c), which wakes every FR_RUN_DELAY_PERIOD_MS while the program
 * records, will wake within DEFER_NS, the handler only sets the bit and the
 * sampler wakes the dumper (fr__dumper_kick): the dump starts up to 45 ms
 * later (20 ms while the program records steadily), and the signalled
 * thread pays the delivery alone. With the sampler off, or sleeping longer
 * because nothing was recorded, the handler wakes the dumper itself, errno
 * preserved. Ordering: the handler sets its bit before it reads the
 * sampler's next deadline, and the sampler publishes that deadline before it
 * looks at the bits; so a handler that read a deadline already passed has
 * its bit seen by the look that follows it.
 *
 * Which signal. SIGUSR1 unless fr_config.dump_signal or FLIGHTREC_SIGNAL says
 * otherwise. The default is a proposal, not a claim: a program that already
 * handles, ignores or blocks SIGUSR1 when flightrec starts keeps it, and the
 * dump signal becomes the first free one of SIGUSR1, SIGUSR2, SIGRTMAX-1 ..
 * SIGRTMAX-6. A program that takes the dump signal later (a handler, SIG_IGN,
 * sigwait or signalfd on it; seen through the adapters' wrappers, which call
 * fr__signal_claimed) gets it, and the dump signal moves on the same way,
 * whether it was the default or chosen: the program's own handling of every
 * signal keeps working. The dumper threads' names say the current signal
 * ("flightrec:sig12", "flightrec:nosig"; "flightrec:start" until the handler
 * is in place), which is how `flightrec dump PID` learns it without being told.
 *
 * The dumper threads block every signal but the crash signals and the dump
 * signal: when every application thread blocks the dump signal (an inherited
 * mask, a sigwait daemon), the kernel still delivers it, to a dumper, which
 * then serves its own request.
 *
 * The first dumper also takes the second clock calibration pair ~50 ms after
 * fr_init, so short-lived processes still get a usable tick rate.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/*
 * The dumper threads: one, or two when the process may run on two CPUs or
 * more, each bound to one half of them. The handler wakes the one whose half
 * does not hold the CPU it runs on, so the dumper never wakes up on the CPU
 * of the thread that took the signal (the scheduler would often switch to it
 * there at once, when the signalled thread returns from the wake).
 *
 * Each has a request word, a futex: what the handler and tell_dumper() ask
 * for, and whether it sleeps on it.
 */
#define REQ_DUMP 1u
#define REQ_RETUNE 2u
#define REQ_QUIT 4u
#define REQ_SLEEPING 0x80000000u /* the dumper waits (or is about to) */
#define MAX_DUMPERS 2
/* The handler leaves the wake to the sampler when it wakes within this: one
 * period doubled (a thread that recorded nothing in one period), and slack. */
#define DEFER_NS ((uint64_t)(2u * FR_RUN_DELAY_PERIOD_MS + 5u) * 1000000u)
struct dumper {
    pthread_t th;
    unsigned req;  /* __atomic builtins only */
    cpu_set_t cpus; /* its half; written before the thread starts */
    int bound;      /* cpus applies */
};
static struct dumper dumpers[MAX_DUMPERS];
static int ndumpers; /* running */
static int dumper_running;
static __thread struct dumper *on_dumper __attribute__((tls_model("initial-exec")));
static struct sigaction old_action; /* what the current dump signal had before us */
static int handler_installed;       /* on fr__cfg.dump_signal */
static uint64_t claimed;            /* signals the program took (bit n-1 for signal n) */
static _Atomic int moving;          /* fr__signal_claimed in progress (any thread) */
/* Our own sigaction() call in progress, seen by fr__signal_claimed when an
 * adapter's wrapper forwards it there. volatile: glibc declares sigaction
 * "leaf" (it never calls back into this file), so the compiler would drop a
 * plain store around the call; through a preloaded wrapper it does call back. */
static __thread volatile int own_call;

static int current_signal(void)
{
    return __atomic_load_n(&fr__cfg.dump_signal, __ATOMIC_ACQUIRE);
}

static long futex(unsigned *word, int op, unsigned val, const struct timespec *timeout)
{
    return syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, timeout, NULL, 0);
}

/*
 * ask - add @bits to @d's requests and wake it if it sleeps: one futex wake,
 * none while it is awake (it takes every request before it sleeps again).
 * Async-signal-safe; errno preserved.
 */
static void ask(struct dumper *d, unsigned bits)
{
    int saved = errno;
    unsigned old = __atomic_load_n(&d->req, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&d->req, &old, (old | bits) & ~REQ_SLEEPING, 1,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    }
    if (old & REQ_SLEEPING)
        futex(&d->req, FUTEX_WAKE, 1, NULL);
    errno = saved;
}

/* The dumper for a dump asked on this thread: the one bound away from this
 * CPU; this thread itself when it is a dumper. Async-signal-safe. */
static struct dumper *dumper_for_here(void)
{
    if (on_dumper)
        return on_dumper;
    int n = __atomic_load_n(&ndumpers, __ATOMIC_ACQUIRE), cpu = sched_getcpu();
    for (int i = 0; i < n && cpu >= 0 && cpu < CPU_SETSIZE; i++)
        if (dumpers[i].bound && !CPU_ISSET(cpu, &dumpers[i].cpus))
            return &dumpers[i];
    return &dumpers[0];
}

static void on_dump_signal(int sig)
{
    (void)sig;
    struct dumper *d = dumper_for_here();
    /* the bit first, then the deadline (seq_cst both; see "Who wakes") */
    unsigned old = __atomic_fetch_or(&d->req, REQ_DUMP, __ATOMIC_SEQ_CST);
    if ((old & REQ_SLEEPING) && !fr__run_delay_wakes_within(DEFER_NS))
        ask(d, 0); /* clears REQ_SLEEPING and wakes, errno preserved */
}

void fr__dumper_kick(void)
{
    int n = __atomic_load_n(&ndumpers, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        unsigned w = __atomic_load_n(&dumpers[i].req, __ATOMIC_SEQ_CST);
        if ((w & REQ_SLEEPING) && (w & ~REQ_SLEEPING))
            ask(&dumpers[i], 0);
    }
}

/* A request for every dumper thread ('n' a retune, 'q' quit); never blocks. */
static void tell_dumper(char what)
{
    int n = __atomic_load_n(&ndumpers, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        ask(&dumpers[i], what == 'q' ? REQ_QUIT : REQ_RETUNE);
}

/* The dumper's mask: everything blocked but the crash signals (they must
 * reach the crash handler on any thread) and the dump signal. */
static void dumper_mask(sigset_t *m, int dump_sig)
{
    sigfillset(m);
    sigdelset(m, SIGSEGV);
    sigdelset(m, SIGBUS);
    sigdelset(m, SIGILL);
    sigdelset(m, SIGFPE);
    sigdelset(m, SIGABRT);
    if (dump_sig > 0)
        sigdelset(m, dump_sig);
}

/* Name the dumper after its signal ("flightrec:sig12", 15 bytes at most) and
 * take that signal; runs on the dumper thread. */
static void dumper_retune(void)
{
    int sig = current_signal();
    char name[16] = "flightrec:nosig";
    if (sig > 0 && sig < 100) {
        memcpy(name, "flightrec:sig", 13);
        name[13] = (char)(sig >= 10 ? '0' + sig / 10 : '0' + sig);
        name[14] = sig >= 10 ? (char)('0' + sig % 10) : '\0';
        name[15] = '\0';
    }
    prctl(PR_SET_NAME, name, 0, 0, 0);
    sigset_t m;
    dumper_mask(&m, sig);
    pthread_sigmask(SIG_SETMASK, &m, NULL);
}

/* The second calibration pair, ~50 ms after fr_init (shared rings need it: a
 * killed process takes no pair at a dump). Return: how long to sleep before
 * it is due, in ns; 0 when taken or no longer needed. */
static uint64_t calibration_due(void)
{
    if (atomic_load(&fr__clock_npairs) != 1)
        return 0;
    uint64_t since = fr__monotonic_ns() - fr__clock_pairs[0].mono_ns;
    if (since < 50000000u)
        return 50000000u - since;
    fr__clock_pair_now(&fr__clock_pairs[1]);
    atomic_store_explicit(&fr__clock_npairs, 2, FR_RELEASE); /* pairs with dump.c */
    fr__shared_clock();
    return 0;
}

static void *dumper_main(void *arg)
{
    struct dumper *d = arg;
    /* SCHED_BATCH: once awake, the dumper must not preempt an application
     * thread on a busy machine; the dump can wait a scheduler tick. */
    struct sched_param none = { 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
    on_dumper = d;
    /* Named after its signal only once the handler is in place (fr__dumper_start
     * asks for a retune): until then `flightrec dump` reads "starting" and waits. */
    prctl(PR_SET_NAME, "flightrec:start", 0, 0, 0);
    for (;;) {
        uint64_t wait_ns = d == &dumpers[0] ? calibration_due() : 0;
        unsigned w = __atomic_exchange_n(&d->req, 0, __ATOMIC_ACQ_REL);
        if ((w & REQ_RETUNE) && !(w & REQ_QUIT))
            dumper_retune();
        /* Two dumpers asked at once: the second waits for the first's dump
         * and writes one more, as one dumper would for a signal that came
         * during its dump. A dump asked before fr_shutdown is written before
         * the dumper quits (the sampler's last wake, or the quit, wakes it). */
        if ((w & REQ_DUMP) && fr__dump_lock(10000) == 0) {
            fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_SIGNAL, current_signal(), "signal", NULL,
                           NULL, 0);
            fr__dump_unlock();
        }
        if (w & REQ_QUIT)
            break;
        if (w)
            continue; /* what came during the dump is served before sleeping */
        unsigned expect = 0;
        if (!__atomic_compare_exchange_n(&d->req, &expect, REQ_SLEEPING, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue; /* a request arrived meanwhile */
#ifdef __SANITIZE_THREAD__
        /* ThreadSanitizer runs the handler of a signal that arrives outside
         * an intercepted call only at the thread's next intercepted call; a
         * raw futex wait is not one, and SA_RESTART resumes it. So under TSan
         * the dumper looks up every 20 ms through one (pthread_sigmask), else
         * the dump signal sent to this thread (flightrec dump) would wait for
         * an unrelated wake. Not compiled into the library otherwise. */
        if (!wait_ns || wait_ns > 20000000u)
            wait_ns = 20000000u;
        sigset_t mask;
        pthread_sigmask(SIG_SETMASK, NULL, &mask);
#endif
        struct timespec t = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
        futex(&d->req, FUTEX_WAIT, REQ_SLEEPING, wait_ns ? &t : NULL); /* EINTR, EAGAIN: again */
    }
    return NULL;
}

/* Split the CPUs this thread may use (what new threads inherit) into two
 * halves; fewer than two CPUs: one unbound dumper. Return: how many dumpers. */
static int plan_dumpers(void)
{
    cpu_set_t all;
    memset(dumpers, 0, sizeof dumpers);
    if (sched_getaffinity(0, sizeof all, &all) != 0 || CPU_COUNT(&all) < 2)
        return 1;
    int half = (CPU_COUNT(&all) + 1) / 2, seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all))
            CPU_SET(c, &dumpers[seen++ < half ? 0 : 1].cpus);
    dumpers[0].bound = dumpers[1].bound = 1;
    return 2;
}

static int start_thread(void)
{
    int want = plan_dumpers(), err = 0;
    __atomic_store_n(&ndumpers, 0, __ATOMIC_RELEASE);
    /* The dumpers never run the application's signal handlers; they unblock
     * the dump signal themselves once running (dumper_retune). */
    sigset_t all, old;
    dumper_mask(&all, 0);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < want && !err; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (dumpers[i].bound)
            pthread_attr_setaffinity_np(&attr, sizeof dumpers[i].cpus, &dumpers[i].cpus);
        err = pthread_create(&dumpers[i].th, &attr, dumper_main, &dumpers[i]);
        if (err && dumpers[i].bound && i == 0) { /* the affinity refused: one, unbound */
            dumpers[0].bound = 0;
            want = 1;
            pthread_attr_destroy(&attr);
            pthread_attr_init(&attr);
            err = pthread_create(&dumpers[i].th, &attr, dumper_main, &dumpers[i]);
        }
        pthread_attr_destroy(&attr);
        if (!err)
            __atomic_store_n(&ndumpers, i + 1, __ATOMIC_RELEASE);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (__atomic_load_n(&ndumpers, __ATOMIC_RELAXED) == 0)
        return -err;
    if (__atomic_load_n(&ndumpers, __ATOMIC_RELAXED) == 1)
        dumpers[0].bound = 0; /* the only one: wake it wherever the signal runs */
    dumper_running = 1;
    return 0;
}

/* Our own sigaction: the adapters' wrappers see own_call and stay out. */
static int own_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    own_call = 1;
    int r = sigaction(sig, act, old);
    own_call = 0;
    return r;
}

/* Inside one of our own sigaction() calls on this thread (termination.c). */
int fr__in_own_sigaction(void)
{
    return own_call;
}

/* The same for the other files that install handlers (watchdog.c, termination.c). */
int fr__own_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int saved = own_call;
    own_call = 1;
    int r = sigaction(sig, act, old);
    own_call = saved;
    return r;
}

/* Is @sig free for us: not taken by the program, default disposition, not
 * blocked by the calling thread (a sigwait/signalfd user blocks first)? */
static int signal_free(int sig)
{
    if (sig <= 0 || sig > 64 || (claimed & (1ull << (sig - 1))))
        return 0;
    struct sigaction cur;
    sigset_t mask;
    if (own_sigaction(sig, NULL, &cur) != 0 || pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0)
        return 0;
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_dump_signal)
        return 1; /* ours already */
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL && !sigismember(&mask, sig);
}

/* The first free signal of SIGUSR1, SIGUSR2, SIGRTMAX-1 .. SIGRTMAX-6; -1 none. */
static int first_free_signal(void)
{
    int cand[8] = { SIGUSR1, SIGUSR2 };
    for (int i = 0; i < 6; i++)
        cand[2 + i] = SIGRTMAX - 1 - i;
    for (int i = 0; i < 8; i++)
        if (signal_free(cand[i]))
            return cand[i];
    return -1;
}

static int install_on(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (own_sigaction(sig, &sa, &old_action) != 0)
        return -errno;
    handler_installed = 1;
    return 0;
}

/* Appends @t at *@n in @buf (of @len), always NUL-terminated;
 * async-signal-safe (fr__signal_claimed may run in a handler). */
static void put(char *buf, size_t len, size_t *n, const char *t)
{
    while (*t && *n + 1 < len)
        buf[(*n)++] = *t++;
    buf[*n] = '\0';
}

static void put_signal(char *buf, size_t len, size_t *n, int sig)
{
    char num[8];
    int k = 0, v = sig >= SIGRTMIN && sig <= SIGRTMAX && sig != SIGUSR1 && sig != SIGUSR2
                     ? SIGRTMAX - sig
                     : sig;
    if (sig == SIGUSR1) {
        put(buf, len, n, "SIGUSR1");
        return;
    }
    if (sig == SIGUSR2) {
        put(buf, len, n, "SIGUSR2");
        return;
    }
    put(buf, len, n, sig >= SIGRTMIN && sig <= SIGRTMAX ? "SIGRTMAX-" : "signal ");
    do
        num[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 7);
    while (k)
        buf[*n < len - 1 ? (*n)++ : *n] = num[--k];
    buf[*n] = '\0';
}

/* One line on stderr: "SIGUSR1 is the program's (@why); dumps now on SIGUSR2". */
static void say_moved(int from, int to, const char *why)
{
    char line[160];
    size_t n = 0;
    put_signal(line, sizeof line, &n, from);
    put(line, sizeof line, &n, " is the program's (");
    put(line, sizeof line, &n, why);
    put(line, sizeof line, &n, "); ");
    if (to > 0) {
        put(line, sizeof line, &n, "dumps now on ");
        put_signal(line, sizeof line, &n, to);
        put(line, sizeof line, &n, ", which flightrec dump finds by itself");
    } else {
        put(line, sizeof line, &n, "no free signal left: dumps only by fr_dump() or a crash");
    }
    fr__warn(line, NULL, 0);
}

/*
 * fr__dumper_start - start the dumper threads, then install the
 * dump-signal handler (when one is configured). The default signal moves
 * aside for one the program already uses (see the top of this file).
 * Return: 0 or -errno.
 */
int fr__dumper_start(void)
{
    int err = start_thread();
    int sig = fr__cfg.dump_signal;
    if (err)
        return err;
    if (sig <= 0) {
        tell_dumper('n'); /* "flightrec:nosig" */
        return 0;
    }
    if (!fr__cfg.dump_signal_fixed && !signal_free(sig)) {
        int alt = first_free_signal();
        say_moved(sig, alt, "it handles, ignores or blocks it");
        sig = alt;
        __atomic_store_n(&fr__cfg.dump_signal, sig, __ATOMIC_RELEASE);
        if (sig <= 0) {
            tell_dumper('n');
            return 0;
        }
    } else if (fr__cfg.dump_signal_fixed) {
        sigset_t mask;
        if (pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0 && sigismember(&mask, sig)) {
            char a[64];
            size_t n = 0;
            put_signal(a, sizeof a, &n, sig);
            fr__warn(a, "blocked in this thread (and threads it starts): the dumper thread takes it "
                        "instead", 0);
        }
    }
    err = install_on(sig);
    tell_dumper('n'); /* named after the signal now that it is caught */
    return err;
}

/*
 * fr__signal_claimed - the program just set @sig's disposition (a handler or
 * SIG_IGN: @how 1; SIG_DFL: @how 0) or started to wait for it (sigwait,
 * signalfd: @how 1), through a call the adapters wrap. If @sig is the dump
 * signal, the program keeps what it asked for and the dump signal moves to
 * the first free one (none if every candidate is taken); SIG_DFL on the dump
 * signal means the program does not care, and our handler goes back. On a
 * crash signal our handler goes back in front of the program's new action
 * (fr__crash_claimed). Our own calls are ignored. Async-signal-safe apart
 * from the warning's write().
 */
FR_API void fr__signal_claimed(int sig, int how)
{
    if (own_call || sig <= 0 || sig > 64)
        return;
    if (fr__crash_claimed(sig))
        return; /* a crash signal: ours stays in front of the program's handler */
    if (!dumper_running)
        return;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&moving, &expect, 1))
        return; /* another thread is moving it: it re-checks the dump signal */
    if (how)
        claimed |= 1ull << (sig - 1);
    fr__termination_claimed(sig);       /* a dump_on signal: keep dumping before it */
    fr__watchdog_signal_claimed(sig, how); /* the stall sampler's signal moves too */
    int cur = current_signal();
    if (sig == cur) {
        if (!how) {
            install_on(cur);
        } else {
            int alt = first_free_signal();
            say_moved(cur, alt, "it took it");
            handler_installed = 0; /* the program's disposition stays on @cur */
            __atomic_store_n(&fr__cfg.dump_signal, alt, __ATOMIC_RELEASE);
            if (alt > 0)
                install_on(alt);
            tell_dumper('n');
        }
    }
    atomic_store(&moving, 0);
}

void fr__dumper_stop(void)
{
    if (handler_installed) {
        own_sigaction(current_signal(), &old_action, NULL);
        handler_installed = 0;
    }
    if (dumper_running) {
        tell_dumper('q');
        for (int i = 0; i < ndumpers; i++)
            pthread_join(dumpers[i].th, NULL);
        __atomic_store_n(&ndumpers, 0, __ATOMIC_RELEASE);
        dumper_running = 0;
    }
}

/* fork child: the parent's dumper threads do not exist here. Start our own;
 * the handler stays installed and now wakes them. */
void fr__dumper_restart_in_child(void)
{
    dumper_running = 0;
    __atomic_store_n(&ndumpers, 0, __ATOMIC_RELEASE);
    if (start_thread() != 0)
        fr__warn("fork child: cannot start the dumper thread", NULL, 0);
}

/*
 * fr__signal_parse - a dump signal as FLIGHTREC_SIGNAL writes it: a name with
 * or without "SIG" in any case ("USR2", "sigusr2"), a number ("12"),
 * "RTMIN+N" / "RTMAX-N", "none", or "auto" (the default, which may move).
 * Signals that cannot be a dump signal (the crash signals, KILL, STOP) are
 * refused.
 * Return: the signal number; -1 for "none"; 0 for "auto"; -EINVAL otherwise.
 */
int fr__signal_parse(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {
        { "HUP", SIGHUP },     { "INT", SIGINT },       { "QUIT", SIGQUIT },   { "TRAP", SIGTRAP },
        { "USR1", SIGUSR1 },   { "USR2", SIGUSR2 },     { "PIPE", SIGPIPE },   { "ALRM", SIGALRM },
        { "TERM", SIGTERM },   { "CHLD", SIGCHLD },     { "CONT", SIGCONT },   { "TSTP", SIGTSTP },
        { "TTIN", SIGTTIN },   { "TTOU", SIGTTOU },     { "URG", SIGURG },     { "XCPU", SIGXCPU },
        { "XFSZ", SIGXFSZ },   { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },   { "WINCH", SIGWINCH },
        { "IO", SIGIO },       { "POLL", SIGPOLL },     { "PWR", SIGPWR },     { "SYS", SIGSYS },
    };
    if (!s || !*s || strlen(s) > 16)
        return -EINVAL;
    char u[20];
    size_t n = 0;
    for (const char *p = s; *p; p++)
        u[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    u[n] = '\0';
    if (strcmp(u, "NONE") == 0)
        return -1;
    if (strcmp(u, "AUTO") == 0)
        return 0;
    const char *v = strncmp(u, "SIG", 3) == 0 ? u + 3 : u;
    int sig = -EINVAL;
    if (*v >= '0' && *v <= '9') {
        int x = 0;
        for (; *v >= '0' && *v <= '9' && x < 1000; v++)
            x = x * 10 + (*v - '0');
        if (*v == '\0')
            sig = x;
    } else if (strncmp(v, "RTMIN", 5) == 0 || strncmp(v, "RTMAX", 5) == 0) {
        int base = v[4] == 'N' ? SIGRTMIN : SIGRTMAX, off = 0;
        const char *q = v + 5;
        if (*q == (v[4] == 'N' ? '+' : '-')) {
            q++;
            if (!(*q >= '0' && *q <= '9'))
                return -EINVAL;
            for (; *q >= '0' && *q <= '9' && off < 100; q++)
                off = off * 10 + (*q - '0');
        }
        if (*q == '\0')
            sig = v[4] == 'N' ? base + off : base - off;
        if (sig < SIGRTMIN || sig > SIGRTMAX)
            return -EINVAL;
    } else {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(v, names[i].name) == 0)
                sig = names[i].sig;
    }
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
        sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT)
        return -EINVAL;
    return sig;
}
