/*
 * signal.c - the dump signal and the dumper thread.
 *
 * The handler does one thing: write a byte to a non-blocking pipe (a few
 * hundred nanoseconds; errno preserved). The dumper thread, blocked in read()
 * on the other end, wakes, drains every byte that arrived, and writes one
 * dump. Signals that arrive while a dump is being written are coalesced into
 * one more dump after it; a full pipe simply means a dump is already due. The
 * application's threads are never stopped: the dumper copies their rings while
 * they run (torn pages are dropped, see ring.c).
 *
 * Which signal. SIGUSR1 unless fr_config.dump_signal or FLIGHTREC_SIGNAL says
 * otherwise. The default is a proposal, not a claim: a program that already
 * handles, ignores or blocks SIGUSR1 when flightrec starts keeps it, and the
 * dump signal becomes the first free one of SIGUSR1, SIGUSR2, SIGRTMAX-1 ..
 * SIGRTMAX-6. A program that takes the dump signal later (a handler, SIG_IGN,
 * sigwait or signalfd on it; seen through the adapters' wrappers, which call
 * fr__signal_claimed) gets it, and the dump signal moves on the same way,
 * whether it was the default or chosen: the program's own handling of every
 * signal keeps working. The dumper thread's name says the current signal
 * ("flightrec:sig12", "flightrec:nosig"; "flightrec:start" until the handler
 * is in place), which is how `flightrec dump PID` learns it without being told.
 *
 * The dumper thread blocks every signal but the crash signals and the dump
 * signal: when every application thread blocks the dump signal (an inherited
 * mask, a sigwait daemon), the kernel still delivers it, to the dumper.
 *
 * The dumper thread also takes the second clock calibration pair ~50 ms after
 * fr_init, so short-lived processes still get a usable tick rate.
 *
 * The pipe's two descriptors are checked (fr__fd_ours) before each use: a
 * daemon that closes every descriptor >= 3 after fr_init and opens its own
 * files must never get a byte written into them by the handler, nor have them
 * read or closed by the dumper or fr_shutdown. Once ours are gone, the dump
 * signal dumps nothing, and says so once on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "internal.h"

static int pipe_fd[2] = { -1, -1 };
static struct fr_fd pipe_h[2] = { { .fd = -1 }, { .fd = -1 } };
static _Atomic int pipe_lost_reported;

static void pipe_lost(void)
{
    if (!atomic_exchange(&pipe_lost_reported, 1))
        fr__warn("the dump signal's pipe was closed by the program; the dump signal no longer "
                 "dumps (fr_dump still does)",
                 NULL, 0);
}
static pthread_t dumper;
static int dumper_running;
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

static void on_dump_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (fr__fd_ours(&pipe_h[1])) {
        ssize_t r = write(pipe_fd[1], "d", 1); /* EAGAIN: a dump is already pending */
        (void)r;
    } else {
        pipe_lost();
    }
    errno = saved;
}

/* A request byte for the dumper thread; never blocks (a full pipe means the
 * dumper is about to read anyway). */
static void tell_dumper(char what)
{
    if (pipe_fd[1] < 0 || !fr__fd_ours(&pipe_h[1]))
        return; /* never into a descriptor that is no longer ours */
    int saved = errno;
    ssize_t r = write(pipe_fd[1], &what, 1);
    (void)r;
    errno = saved;
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

/* What the bytes in @buf ask for: 'd' a dump, 'n' a retune, 'q' quit. */
static void requests(const char *buf, size_t n, int *dump, int *retune, int *quit)
{
    if (memchr(buf, 'd', n))
        *dump = 1;
    if (memchr(buf, 'n', n))
        *retune = 1;
    if (memchr(buf, 'q', n))
        *quit = 1;
}

static void *dumper_main(void *arg)
{
    (void)arg;
    /* SCHED_BATCH: waking the dumper must not preempt the thread that took
     * the signal (or any application thread) on a busy machine; the dump can
     * wait a scheduler tick. */
    struct sched_param none = { 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
    /* Named after its signal only once the handler is in place (fr__dumper_start
     * sends 'n'): until then `flightrec dump` reads "starting" and waits. */
    prctl(PR_SET_NAME, "flightrec:start", 0, 0, 0);
    int fd = pipe_fd[0];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (;;) {
        char buf[256];
        /* The second calibration pair, ~50 ms after fr_init: requests that
         * come first (the 'n' fr__dumper_start sends at once) are served and
         * the wait resumes. Shared rings need it (a killed process takes no
         * pair at a dump). */
        if (atomic_load(&fr__clock_npairs) == 1) {
            uint64_t since = fr__monotonic_ns() - fr__clock_pairs[0].mono_ns;
            int wait_ms = since >= 50000000u ? 0 : (int)((50000000u - since) / 1000000u) + 1;
            if (wait_ms == 0 || poll(&p, 1, wait_ms) == 0) {
                fr__clock_pair_now(&fr__clock_pairs[1]);
                atomic_store_explicit(&fr__clock_npairs, 2, FR_RELEASE); /* pairs with dump.c */
                fr__shared_clock();
            }
        }
        if (!fr__fd_ours(&pipe_h[0]))
            break; /* the number is the program's now: never read it */
        ssize_t n = read(fd, buf, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        int dump = 0, retune = 0, quit = 0;
        requests(buf, 1, &dump, &retune, &quit);
        /* coalesce whatever else arrived meanwhile */
        while (poll(&p, 1, 0) == 1) {
            n = read(fd, buf, sizeof buf);
            if (n <= 0)
                break;
            requests(buf, (size_t)n, &dump, &retune, &quit);
        }
        if (quit)
            break;
        if (retune)
            dumper_retune();
        if (dump && fr__dump_lock(10000) == 0) {
            fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_SIGNAL, current_signal(), "signal", NULL,
                           NULL, 0);
            fr__dump_unlock();
        }
    }
    return NULL;
}

static int start_thread(void)
{
    if (pipe2(pipe_fd, O_CLOEXEC) != 0)
        return -errno;
    fcntl(pipe_fd[1], F_SETFL, O_NONBLOCK); /* the handler must never block */
    fr__fd_hold(&pipe_h[0], pipe_fd[0]);
    fr__fd_hold(&pipe_h[1], pipe_fd[1]);
    atomic_store(&pipe_lost_reported, 0);

    /* The dumper never runs the application's signal handlers; it unblocks
     * the dump signal itself once running (dumper_retune). */
    sigset_t all, old;
    dumper_mask(&all, 0);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&dumper, NULL, dumper_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fr__fd_release(&pipe_h[0]);
        fr__fd_release(&pipe_h[1]);
        pipe_fd[0] = pipe_fd[1] = -1;
        return -err;
    }
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
 * fr__dumper_start - create the pipe and the dumper thread, then install the
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
 * signal means the program does not care, and our handler goes back. Our own
 * calls are ignored. Async-signal-safe apart from the warning's write().
 */
FR_API void fr__signal_claimed(int sig, int how)
{
    if (own_call || sig <= 0 || sig > 64 || !dumper_running)
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
        /* With our write end gone, the dumper saw end-of-file (no writer
         * left) or stops at its identity check: nothing to send. */
        if (fr__fd_ours(&pipe_h[1])) {
            ssize_t r;
            do
                r = write(pipe_fd[1], "q", 1);
            while (r < 0 && errno == EINTR);
            if (r < 0) { /* pipe full of dump requests: make room for the 'q' */
                int flags = fcntl(pipe_fd[1], F_GETFL);
                fcntl(pipe_fd[1], F_SETFL, flags & ~O_NONBLOCK);
                r = write(pipe_fd[1], "q", 1);
            }
        }
        pthread_join(dumper, NULL);
        dumper_running = 0;
    }
    fr__fd_release(&pipe_h[0]); /* only if still ours */
    fr__fd_release(&pipe_h[1]);
    pipe_fd[0] = pipe_fd[1] = -1;
}

/* fork child: the parent's dumper thread does not exist here and the pipe is
 * shared with the parent. Make our own of both; the handler stays installed
 * and now writes to the child's pipe. */
void fr__dumper_restart_in_child(void)
{
    fr__fd_release(&pipe_h[0]);
    fr__fd_release(&pipe_h[1]);
    pipe_fd[0] = pipe_fd[1] = -1;
    dumper_running = 0;
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
