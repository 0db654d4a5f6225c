/*
 * signal.c - the dump signal (SIGUSR1 by default) and the dumper thread.
 *
 * The handler does one thing: write a byte to a non-blocking pipe (a few
 * hundred nanoseconds; errno preserved). The dumper thread, blocked in read()
 * on the other end, wakes, drains every byte that arrived, and writes one
 * dump. Signals that arrive while a dump is being written are coalesced into
 * one more dump after it; a full pipe simply means a dump is already due. The
 * application's threads are never stopped: the dumper copies their rings while
 * they run (torn pages are dropped, see ring.c).
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
#include <string.h>
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
static struct sigaction old_action;
static int handler_installed;

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

static void drain(int fd, int *quit)
{
    char buf[256];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (poll(&p, 1, 0) == 1) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (memchr(buf, 'q', (size_t)n))
            *quit = 1;
    }
}

static void *dumper_main(void *arg)
{
    (void)arg;
    /* SCHED_BATCH: waking the dumper must not preempt the thread that took
     * the signal (or any application thread) on a busy machine; the dump can
     * wait a scheduler tick. */
    struct sched_param none = { 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
    int fd = pipe_fd[0];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    /* Second calibration pair, unless a dump request comes first. */
    if (poll(&p, 1, 50) == 0 && atomic_load(&fr__clock_npairs) == 1) {
        fr__clock_pair_now(&fr__clock_pairs[1]);
        atomic_store_explicit(&fr__clock_npairs, 2, FR_RELEASE); /* pairs with dump.c */
    }
    for (;;) {
        char ch;
        if (!fr__fd_ours(&pipe_h[0]))
            break; /* the number is the program's now: never read it */
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || ch == 'q')
            break;
        int quit = 0;
        drain(fd, &quit);
        if (quit)
            break;
        if (fr__dump_lock(10000) == 0) {
            fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_SIGNAL, fr__cfg.dump_signal, "signal", NULL,
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

    /* The dumper never runs the application's signal handlers. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGABRT);
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

/*
 * fr__dumper_start - create the pipe and the dumper thread, then install the
 * dump-signal handler (when one is configured).
 * Return: 0 or -errno.
 */
int fr__dumper_start(void)
{
    int err = start_thread();
    if (err || fr__cfg.dump_signal <= 0)
        return err;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(fr__cfg.dump_signal, &sa, &old_action) != 0)
        return -errno;
    handler_installed = 1;
    return 0;
}

void fr__dumper_stop(void)
{
    if (handler_installed) {
        sigaction(fr__cfg.dump_signal, &old_action, NULL);
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
