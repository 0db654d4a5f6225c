/*
 * recorder/adapters/common.c - the wrappers both adapters share (common.h).
 *
 * The poller: a loop blocking in epoll_wait/epoll_pwait/epoll_pwait2 is a
 * worker going idle: fr_park() before a call that may block (timeout not 0),
 * fr_unpark() after. Only the
 * outermost wrapper on a thread records them
 * (fr__poller_enter). After the call, every ready descriptor that this copy
 * saw registered through epoll_ctl with its own number as data is passed to
 * the adapter's ready hook, which turns it into a wake of the task waiting on
 * it. Only calls that cross into libc are seen: a loop that polls through a
 * raw syscall, or with poll()/select(), is not (docs/adapters.md).
 *
 * The signals: after the program sets a disposition (sigaction, signal) or
 * starts waiting for a signal (sigwait, sigwaitinfo, sigtimedwait,
 * signalfd), the library hears of it (fr__signal_claimed) and moves the dump
 * signal out of the program's way. The real call always happens first and
 * its result and errno are returned untouched.
 */
#include "common.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* The names of the loaded objects, for fra_real's search (pointers into
 * the loader's own records, valid while the objects stay loaded). */
struct objects {
    const char *name[256];
    unsigned n;
};

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct objects *o = arg;
    /* the program itself (no name) is skipped: its scope has the adapter */
    if (info->dlpi_name && info->dlpi_name[0] && o->n < 256)
        o->name[o->n++] = info->dlpi_name;
    return 0;
}

void *fra_real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f)
        return f;
    /* Not in the global scope after the adapter: a module that dlopen()ed
     * the library with RTLD_LOCAL (Python importing uvloop) keeps it in its
     * own scope, though the library's calls to its own exported functions
     * still reach the adapter. Look in each loaded object's scope, taking
     * only a definition that is not the adapter's own. */
    Dl_info self, in;
    if (!dladdr((void *)fra_real, &self))
        return NULL;
    /* the scope that gave the last definition first: a library's functions
     * are all found there, without a search per function (each dlopen is
     * slow, more so under a sanitizer). That handle stays open: it pins the
     * module, which a program that imports uvloop never unloads anyway. */
    static void *_Atomic last;
    void *h = atomic_load_explicit(&last, memory_order_acquire);
    if (h && (f = dlsym(h, name)) && dladdr(f, &in) && in.dli_fbase != self.dli_fbase)
        return f;
    f = NULL;
    struct objects o = {.n = 0}; /* at start and at a library's first call only */
    dl_iterate_phdr(collect, &o);
    for (unsigned i = 0; i < o.n && !f; i++) {
        h = dlopen(o.name[i], RTLD_LAZY | RTLD_NOLOAD);
        if (!h)
            continue;
        void *p = dlsym(h, name);
        void *none = NULL;
        if (p && dladdr(p, &in) && in.dli_fbase != self.dli_fbase) {
            f = p;
            if (atomic_compare_exchange_strong(&last, &none, h))
                continue; /* kept open */
        }
        dlclose(h);
    }
    return f;
}

/* ---- labels ------------------------------------------------------------- */

#define LABEL_SLOTS 64u

struct label_slot {
    const char *prefix;
    uintptr_t addr;
    char text[88]; /* 64 prefix + " @0x" + 16 digits + NUL */
};

static __thread struct label_slot labels[LABEL_SLOTS];

const char *fra_label(const char *prefix, const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    struct label_slot *s = &labels[((a >> 4) ^ ((uintptr_t)prefix >> 3)) % LABEL_SLOTS];
    if (s->prefix == prefix && s->addr == a && s->text[0])
        return s->text;
    size_t n = strnlen(prefix, 64);
    memcpy(s->text, prefix, n);
    memcpy(s->text + n, " @0x", 4);
    n += 4;
    int digits = 1;
    while (digits < 16 && (a >> (4 * digits)) != 0)
        digits++;
    for (int i = digits - 1; i >= 0; i--)
        s->text[n++] = "0123456789abcdef"[(a >> (4 * i)) & 0xf];
    s->text[n] = '\0';
    s->prefix = prefix;
    s->addr = a;
    return s->text;
}

/* ---- the poller ---------------------------------------------------------- */

/* epfd + 1 that each descriptor was last registered on with data.fd == fd,
 * 0 none. Reserved (not committed) once; pages appear as descriptors do. */
#define FD_SLOTS (1u << 20)
static _Atomic int32_t *fd_epoll;
static void (*ready_hook)(int fd, uint32_t events);

typedef int epoll_ctl_fn(int, int, int, struct epoll_event *);
typedef int epoll_wait_fn(int, struct epoll_event *, int, int);
typedef int epoll_pwait_fn(int, struct epoll_event *, int, int, const sigset_t *);
typedef int epoll_pwait2_fn(int, struct epoll_event *, int, const struct timespec *,
                            const sigset_t *);
typedef int sigaction_fn(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t signal_fn(int, sighandler_t);
typedef int sigwait_fn(const sigset_t *, int *);
typedef int sigwaitinfo_fn(const sigset_t *, siginfo_t *);
typedef int sigtimedwait_fn(const sigset_t *, siginfo_t *, const struct timespec *);
typedef int signalfd_fn(int, const sigset_t *, int);

static epoll_ctl_fn *real_epoll_ctl;
static epoll_wait_fn *real_epoll_wait;
static epoll_pwait_fn *real_epoll_pwait;
static epoll_pwait2_fn *real_epoll_pwait2;
static sigaction_fn *real_sigaction;
static signal_fn *real_signal;
static sigwait_fn *real_sigwait;
static sigwaitinfo_fn *real_sigwaitinfo;
static sigtimedwait_fn *real_sigtimedwait;
static signalfd_fn *real_signalfd;

/* Resolved before main() runs (and before any wrapped call can come from
 * another thread); a wrapper called earlier still resolves its own. */
__attribute__((constructor(101))) static void resolve(void)
{
    real_epoll_ctl = (epoll_ctl_fn *)fra_real("epoll_ctl");
    real_epoll_wait = (epoll_wait_fn *)fra_real("epoll_wait");
    real_epoll_pwait = (epoll_pwait_fn *)fra_real("epoll_pwait");
    real_epoll_pwait2 = (epoll_pwait2_fn *)fra_real("epoll_pwait2");
    real_sigaction = (sigaction_fn *)fra_real("sigaction");
    real_signal = (signal_fn *)fra_real("signal");
    real_sigwait = (sigwait_fn *)fra_real("sigwait");
    real_sigwaitinfo = (sigwaitinfo_fn *)fra_real("sigwaitinfo");
    real_sigtimedwait = (sigtimedwait_fn *)fra_real("sigtimedwait");
    real_signalfd = (signalfd_fn *)fra_real("signalfd");
    void *p = mmap(NULL, FD_SLOTS * sizeof(*fd_epoll), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED)
        fd_epoll = p;
}

#define REAL(fn) (real_##fn ? real_##fn : (real_##fn = (fn##_fn *)fra_real(#fn)))

void fra_set_ready_hook(void (*hook)(int fd, uint32_t events))
{
    ready_hook = hook;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    epoll_ctl_fn *f = REAL(epoll_ctl);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    int r = f(epfd, op, fd, ev);
    if (r == 0 && fd_epoll && fd >= 0 && (unsigned)fd < FD_SLOTS) {
        int saved = errno;
        int32_t v = 0;
        if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev && ev->data.fd == fd)
            v = epfd + 1;
        atomic_store_explicit(&fd_epoll[fd], v, memory_order_relaxed);
        errno = saved;
    }
    return r;
}

/*
 * A call that may block (timeout not 0) is bracketed by park and unpark, even
 * when it returns at once: two records cost tens of nanoseconds, a probe with
 * a zero timeout first would cost a system call per loop iteration (measured
 * on memcached: 0.41 -> 0.77 epoll calls per request). A parked span of a
 * microsecond is harmless to the analyses, which weigh parked time, not count.
 */
static inline int poll_leave(int epfd, struct epoll_event *ev, int n, int parked)
{
    int saved = errno;
    if (parked)
        fr_unpark();
    if (n > 0 && ready_hook && fd_epoll) {
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd >= 0 && (unsigned)fd < FD_SLOTS &&
                atomic_load_explicit(&fd_epoll[fd], memory_order_relaxed) == epfd + 1)
                ready_hook(fd, ev[i].events);
        }
    }
    fr__poller_leave();
    errno = saved;
    return n;
}

/* Parks when this is the outermost wrapper and the call may block. */
static inline int poll_enter(int may_block)
{
    int outer = fr__poller_enter();
    if (outer && may_block)
        fr_park();
    return outer && may_block;
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    epoll_wait_fn *f = REAL(epoll_wait);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    int parked = poll_enter(timeout != 0);
    return poll_leave(epfd, ev, f(epfd, ev, max, timeout), parked);
}

int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
    epoll_pwait_fn *f = REAL(epoll_pwait);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    int parked = poll_enter(timeout != 0);
    return poll_leave(epfd, ev, f(epfd, ev, max, timeout, ss), parked);
}

int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *t,
                 const sigset_t *ss)
{
    epoll_pwait2_fn *f = REAL(epoll_pwait2);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    int parked = poll_enter(!t || t->tv_sec != 0 || t->tv_nsec != 0);
    return poll_leave(epfd, ev, f(epfd, ev, max, t, ss), parked);
}

/* ---- starting the recorder ------------------------------------------------ */

void fra_start(int uses_loop, const char *who)
{
    int saved = errno;
    const char *run = getenv("FLIGHTREC_RUN_PID");
    char *end = NULL;
    long pid = run && *run ? strtol(run, &end, 10) : 0;
    int named = run && *run && end && *end == '\0' && pid > 0;
    if (named && pid != (long)getpid() && !uses_loop) {
        errno = saved;
        return; /* a child of the recorded program that runs no loop of ours */
    }
    int rc = fr_init(NULL);
    if (rc < 0 && rc != -EALREADY) { /* -EALREADY: the other adapter or the program came first */
        char msg[128];
        int n = snprintf(msg, sizeof(msg), "%s: fr_init failed: %s\n", who, strerror(-rc));
        if (n > 0) {
            ssize_t w = write(2, msg, (size_t)n);
            (void)w; /* nothing else to tell if standard error is gone */
        }
    }
    errno = saved;
}

/* ---- the signals ---------------------------------------------------------- */

static void claimed_set(const sigset_t *set)
{
    if (!set)
        return;
    int saved = errno;
    for (int s = 1; s < 65; s++)
        if (sigismember(set, s) == 1)
            fr__signal_claimed(s, 1);
    errno = saved;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    sigaction_fn *f = REAL(sigaction);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    /* A signal that dumps first (FLIGHTREC_DUMP_ON) keeps our handler in
     * front; the program sees and gets back only its own action. */
    struct sigaction view;
    int chained = fr__signal_view(sig, &view);
    int r = f(sig, act, old);
    if (r == 0 && old && chained)
        *old = view;
    if (r == 0 && act) {
        int saved = errno;
        int dfl = !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL;
        fr__signal_claimed(sig, !dfl);
        errno = saved;
    }
    return r;
}

sighandler_t signal(int sig, sighandler_t handler)
{
    signal_fn *f = REAL(signal);
    if (!f) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    struct sigaction view;
    int chained = fr__signal_view(sig, &view);
    sighandler_t r = f(sig, handler);
    if (r != SIG_ERR && chained)
        r = view.sa_handler; /* glibc: the same storage as sa_sigaction */
    if (r != SIG_ERR) {
        int saved = errno;
        fr__signal_claimed(sig, handler != SIG_DFL);
        errno = saved;
    }
    return r;
}

int sigwait(const sigset_t *set, int *sig)
{
    sigwait_fn *f = REAL(sigwait);
    if (!f)
        return ENOSYS;
    claimed_set(set);
    return f(set, sig);
}

int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    sigwaitinfo_fn *f = REAL(sigwaitinfo);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    claimed_set(set);
    return f(set, info);
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *t)
{
    sigtimedwait_fn *f = REAL(sigtimedwait);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    claimed_set(set);
    return f(set, info, t);
}

int signalfd(int fd, const sigset_t *mask, int flags)
{
    signalfd_fn *f = REAL(signalfd);
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    int r = f(fd, mask, flags);
    if (r >= 0)
        claimed_set(mask);
    return r;
}
