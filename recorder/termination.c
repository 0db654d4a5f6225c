/*
 * termination.c - a dump on the signals that end a service (SIGTERM from a
 * supervisor, SIGINT, ...), before the program's own handling of them.
 *
 * fr_config.dump_on / FLIGHTREC_DUMP_ON=TERM,INT lists the signals. For each,
 * our handler is installed at fr_init and the program's action is kept as
 * `prog[sig]`: what the program believes is installed. When the signal comes:
 *
 *   1. a dump is written on the thread that took it (trigger TERMINATION,
 *      reason "termination", the signal number in the header), waiting at most
 *      TERM_LOCK_WAIT_MS for a dump in progress; the dump writer is async-
 *      signal-safe (dump.c);
 *   2. then exactly what the program would have had: its handler, called with
 *      its sa_mask blocked and its flags honoured (SA_SIGINFO, SA_RESETHAND);
 *      SIG_DFL: the default action, which for the signals we
 *      accept ends the process by that signal (the handler restores SIG_DFL and
 *      sends the signal to its own thread; it is delivered when the handler
 *      returns), so the exit status and any core dump are unchanged. The shared
 *      rings file (shared.c) is removed first: the dump holds its history.
 *
 * A signal the program ignores (SIG_IGN, at fr_init or set later) gets no
 * handler of ours and no dump: it ends nothing, and an ignore stays in place
 * for the programs it execs (a handler would be reset to the default there),
 * as nohup's SIGHUP must.
 *
 * A program that sets its own handler after fr_init, through the adapters'
 * sigaction/signal wrappers, is chained the same way: the wrapper lets the
 * real call happen, signal.c's fr__signal_claimed tells us, and we take the
 * new action as prog[sig] and put our handler back in front of it. The
 * wrapper also answers the program's queries from prog[sig] (fr__signal_view)
 * so it never sees our handler. Without the adapters, a handler installed
 * after fr_init replaces ours and that signal no longer dumps.
 *
 * Signals whose default action is to stop, continue or be ignored (TSTP,
 * TTIN, TTOU, CONT, CHLD, URG, WINCH), the crash signals, KILL, STOP and the
 * dump signal cannot be listed.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef TERM_LOCK_WAIT_MS
#define TERM_LOCK_WAIT_MS 2000u
#endif

static struct sigaction prog[65]; /* the program's action, as it believes */
static uint64_t wanted;           /* bit n-1: signal n is a dump_on signal */
static uint64_t installed;        /* bit n-1: our handler is on signal n (not ignored) */
static _Atomic int dumping;       /* one termination dump at a time */

static int acceptable(int sig)
{
    return sig > 0 && sig <= 64 && sig != SIGCHLD && sig != SIGCONT && sig != SIGTSTP &&
           sig != SIGTTIN && sig != SIGTTOU && sig != SIGURG && sig != SIGWINCH;
}

/*
 * fr__termination_parse - "TERM,INT,RTMIN+2,1" (names as FLIGHTREC_SIGNAL
 * takes them, comma-separated) into FR_DUMP_ON bits in @mask.
 * Return: 0; -EINVAL for an unknown or unacceptable signal, or an empty item.
 */
int fr__termination_parse(const char *s, uint64_t *mask)
{
    uint64_t m = 0;
    while (s && *s) {
        char item[20];
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof item)
            return -EINVAL;
        memcpy(item, s, n);
        item[n] = '\0';
        int sig = fr__signal_parse(item);
        if (sig <= 0 || !acceptable(sig))
            return -EINVAL;
        m |= FR_DUMP_ON(sig);
        s += n;
        if (*s == ',')
            s++;
        if (*s == '\0' && s[-1] == ',')
            return -EINVAL;
    }
    *mask = m;
    return 0;
}

/* @a ignores its signal (SIG_IGN). */
static int ignored(const struct sigaction *a)
{
    return !(a->sa_flags & SA_SIGINFO) && a->sa_handler == SIG_IGN;
}

static void on_termination(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    int expect = 0;
    if (atomic_compare_exchange_strong(&dumping, &expect, 1)) {
        if (atomic_load_explicit(&fr__epoch, FR_ACQUIRE) != 0 &&
            fr__dump_lock(TERM_LOCK_WAIT_MS) == 0) {
            fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_TERMINATION, sig, "termination", NULL, NULL,
                           0);
            fr__dump_unlock();
        }
        atomic_store(&dumping, 0);
    }

    struct sigaction act = prog[sig];
    if (ignored(&act)) { /* the program ignored it while this one was in flight */
        errno = saved;
        return;
    }
    if (!(act.sa_flags & SA_SIGINFO) && act.sa_handler == SIG_DFL) {
        /* The default action: end by this very signal. It is blocked while we
         * run, so the one sent here is delivered as the handler returns. */
        fr__shared_close();
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        fr__own_sigaction(sig, &dfl, NULL);
        syscall(SYS_tgkill, getpid(), fr__gettid(), sig);
        errno = saved;
        return;
    }
    if (act.sa_flags & SA_RESETHAND) { /* one-shot: the next one takes the default */
        memset(&prog[sig], 0, sizeof prog[sig]);
        prog[sig].sa_handler = SIG_DFL;
    }
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &act.sa_mask, &old);
    errno = saved; /* the program's handler sees the errno of the code it interrupted */
    if (act.sa_flags & SA_SIGINFO)
        act.sa_sigaction(sig, si, uc);
    else
        act.sa_handler(sig);
    saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
}

static int put_ours(int sig, struct sigaction *prev)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_termination;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return fr__own_sigaction(sig, &sa, prev) == 0 ? 0 : -errno;
}

/* Install our handler on every fr__cfg.dump_on signal. Return: 0 or -errno
 * (-EINVAL if the dump signal is among them). */
int fr__termination_install(void)
{
    uint64_t m = fr__cfg.dump_on;
    int ds = __atomic_load_n(&fr__cfg.dump_signal, __ATOMIC_ACQUIRE);
    if (ds > 0 && ds <= 64 && (m & FR_DUMP_ON(ds)))
        return -EINVAL;
    for (int sig = 1; sig <= 64; sig++) {
        if (!(m & FR_DUMP_ON(sig)))
            continue;
        if (!acceptable(sig))
            return -EINVAL;
        struct sigaction prev;
        if (fr__own_sigaction(sig, NULL, &prev) != 0) {
            int err = -errno;
            fr__termination_uninstall();
            return err;
        }
        wanted |= FR_DUMP_ON(sig);
        if (ignored(&prev)) {
            prog[sig] = prev;
            continue; /* stays ignored: no dump (see the header) */
        }
        int err = put_ours(sig, &prev);
        if (err) {
            fr__termination_uninstall();
            return err;
        }
        prog[sig] = prev;
        installed |= FR_DUMP_ON(sig);
    }
    return 0;
}

void fr__termination_uninstall(void)
{
    for (int sig = 1; sig <= 64; sig++)
        if (installed & FR_DUMP_ON(sig))
            fr__own_sigaction(sig, &prog[sig], NULL);
    installed = 0;
    wanted = 0;
}

/*
 * fr__termination_claimed - the program just changed @sig's disposition
 * through an adapter's wrapper (the real call is done). If @sig dumps, the
 * new action becomes the program's and ours goes back in front of it; an
 * ignore (SIG_IGN) stays as the program set it, with no handler of ours.
 * Return: 1 if @sig is one of ours.
 */
int fr__termination_claimed(int sig)
{
    if (sig <= 0 || sig > 64 || !(wanted & FR_DUMP_ON(sig)))
        return 0;
    struct sigaction cur;
    if (fr__own_sigaction(sig, NULL, &cur) != 0)
        return 1;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_termination)
        return 1; /* ours still (a query, or our own call) */
    prog[sig] = cur;
    if (ignored(&cur)) {
        installed &= ~FR_DUMP_ON(sig);
        return 1;
    }
    struct sigaction prev;
    if (put_ours(sig, &prev) == 0)
        installed |= FR_DUMP_ON(sig);
    return 1;
}

/*
 * fr__signal_view - for the adapters' sigaction/signal wrappers: if @sig is
 * chained behind a dump (a dump_on signal here, or a crash signal: crash.c's
 * fr__crash_view), store the action the program believes it has in
 * @view (what a query must return instead of our handler). Return: 1 if so,
 * else 0 (@view untouched).
 */
FR_API int fr__signal_view(int sig, struct sigaction *view)
{
    if (fr__in_own_sigaction())
        return 0;
    if (fr__crash_view(sig, view))
        return 1; /* a crash signal (crash.c) */
    if (sig <= 0 || sig > 64 || !(installed & FR_DUMP_ON(sig)))
        return 0;
    *view = prog[sig];
    return 1;
}
