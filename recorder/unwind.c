/*
 * unwind.c - the crash backtrace: raw instruction pointers from libunwind,
 * starting at the faulting frame of the signal context, taken by an unwinder
 * thread and waited for with a bound.
 *
 * Why a thread: libunwind looks up unwind tables with dl_iterate_phdr(),
 * which takes the dynamic loader's lock. If the crashing thread held the heap
 * lock and another thread holds the loader's lock while it waits for the heap
 * (a dlopen that mallocs), unwinding on the crashing thread would wait forever
 * and the process would hang with no dump. So the crashing thread hands its
 * signal context to the unwinder thread (futex, no descriptor) and waits at
 * most FR_UNWIND_WAIT_MS; the unwinder publishes each frame as it takes it,
 * so a stuck or faulting unwind still leaves the frames taken so far, and the
 * dump says the backtrace was cut short (NOTES).
 *
 * What the unwinder needs is made ready at fr_init, not in the handler:
 * libunwind's one-time setup (its locks, and the pipe it validates memory
 * with) runs in a warm-up unwind; the pipe's identity is recorded, and a
 * crash after the program closed and reused those descriptors takes frame 0
 * only rather than let libunwind write into the program's files.
 *
 * Only IPs are collected here; symbolizing (unw_get_proc_name, dladdr) may
 * allocate or take locks, so the decoder does it offline from the MODULES
 * section. unw_init_local2 with UNW_INIT_SIGNAL_FRAME tells libunwind that
 * frame 0 is an interrupted instruction, not a return address.
 */
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

/* How long a crashing thread waits for its backtrace. An unwind takes well
 * under a millisecond; this only bounds a stuck one. */
#ifndef FR_UNWIND_WAIT_MS
#define FR_UNWIND_WAIT_MS 2000u
#endif

/* REQ_CLAIMED: a caller won the unwinder and is filling in its request. */
enum { REQ_IDLE = 0, REQ_WORK, REQ_DONE, REQ_QUIT, REQ_CLAIMED };

static pthread_t unwinder;
static int running;
static _Atomic uint32_t req;          /* futex word, REQ_* */
static void *req_uc;                  /* the crashing thread's ucontext */
static uint64_t req_frames[FR_MAX_FRAMES];
static _Atomic int req_n;             /* frames published so far (release) */
static _Atomic int req_faulted;
static _Atomic uint32_t unwinder_tid;
static sigjmp_buf unwinder_jmp;

#define MAX_UNW_FDS 4
static struct fr_fd unw_fds[MAX_UNW_FDS]; /* libunwind's own descriptors (its pipe) */
static int n_unw_fds;

static long futex(_Atomic uint32_t *w, int op, uint32_t v, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)w, op, v, ts, NULL, 0);
}

/* Unwind @uc into @out, publishing the count after each frame. */
static int unwind_into(void *uc, uint64_t *out, int max, _Atomic int *published)
{
    unw_cursor_t cursor;
    int n = 0, flags = UNW_INIT_SIGNAL_FRAME;
#if defined(__x86_64__)
    /* A call through a NULL (or near-NULL) function pointer faults fetching
     * its first instruction: no unwind table covers that pc, so libunwind
     * stops at once. The call pushed its return address, which is on top
     * of the stack: frame 0 is the bad pc, the unwind goes on from the
     * caller, as from a return address (no signal frame). */
    ucontext_t called;
    const ucontext_t *u = uc;
    if (max > 1 && (uint64_t)u->uc_mcontext.gregs[REG_RIP] < 4096) {
        called = *u;
        const uint64_t *sp = (const uint64_t *)(uintptr_t)called.uc_mcontext.gregs[REG_RSP];
        called.uc_mcontext.gregs[REG_RIP] = (greg_t)*sp;
        called.uc_mcontext.gregs[REG_RSP] += 8;
        out[n++] = (uint64_t)u->uc_mcontext.gregs[REG_RIP];
        if (published)
            atomic_store_explicit(published, n, FR_RELEASE);
        uc = &called;
        flags = 0;
    }
#endif
    /* On x86_64 and aarch64 unw_context_t is the kernel's ucontext_t. */
    if (unw_init_local2(&cursor, (unw_context_t *)uc, flags) < 0)
        return n;
    do {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        out[n++] = (uint64_t)ip;
        if (published)
            atomic_store_explicit(published, n, FR_RELEASE); /* pairs with fr__backtrace */
    } while (n < max && unw_step(&cursor) > 0);
    return n;
}

static void *unwinder_main(void *arg)
{
    (void)arg;
    atomic_store(&unwinder_tid, (uint32_t)fr__gettid());
    for (;;) {
        uint32_t r = atomic_load_explicit(&req, FR_ACQUIRE);
        if (r == REQ_QUIT)
            break;
        if (r != REQ_WORK) {
            futex(&req, FUTEX_WAIT_PRIVATE, r, NULL);
            continue;
        }
        if (sigsetjmp(unwinder_jmp, 1) == 0)
            unwind_into(req_uc, req_frames, FR_MAX_FRAMES, &req_n);
        else
            atomic_store(&req_faulted, 1);
        atomic_store_explicit(&req, REQ_DONE, FR_RELEASE);
        futex(&req, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
    return NULL;
}

/* A fault in the unwinder thread (a corrupt stack read without validation):
 * back to its loop, the frames so far kept. Called first by the crash
 * handler; returns 0 on every other thread. */
int fr__unwind_on_fault(void)
{
    if (!running || atomic_load(&unwinder_tid) != (uint32_t)fr__gettid())
        return 0;
    siglongjmp(unwinder_jmp, 1);
}

static int is_fifo(int fd, struct stat *st)
{
    return fstat(fd, st) == 0 && S_ISFIFO(st->st_mode);
}

/* libunwind's one-time setup, outside any handler: its first unwind opens a
 * pipe (memory validation) and initialises its tables. Descriptors that are
 * new FIFOs afterwards are its pipe; their identity is kept. */
static void warm_up(void)
{
    enum { SCAN = 1024 };
    static uint8_t was_fifo[SCAN / 8];
    memset(was_fifo, 0, sizeof was_fifo);
    struct stat st;
    for (int fd = 0; fd < SCAN; fd++)
        if (is_fifo(fd, &st))
            was_fifo[fd / 8] |= (uint8_t)(1u << (fd % 8));
    ucontext_t uc;
    uint64_t frames[8];
    if (getcontext(&uc) == 0)
        unwind_into(&uc, frames, 8, NULL);
    /* Only the first warm-up sees the pipe appear; a later fr_init keeps
     * what the first one found. */
    struct fr_fd found[MAX_UNW_FDS];
    int n = 0;
    for (int fd = 0; fd < SCAN && n < MAX_UNW_FDS; fd++)
        if (!(was_fifo[fd / 8] & (1u << (fd % 8))) && is_fifo(fd, &st))
            fr__fd_hold(&found[n++], fd);
    if (n) {
        memcpy(unw_fds, found, sizeof found[0] * (size_t)n);
        n_unw_fds = n;
    }
}

static int start_thread(void)
{
    atomic_store(&req, REQ_IDLE);
    atomic_store(&unwinder_tid, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u * 1024u);
    /* The unwinder never takes the program's signals. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&unwinder, &attr, unwinder_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    running = 1;
    return 0;
}

int fr__unwind_start(void)
{
    static int warmed; /* libunwind sets itself up once per process */
    if (!warmed) {
        warm_up();
        warmed = 1;
    }
    if (running)
        return 0;
    return start_thread();
}

void fr__unwind_stop(void)
{
    if (!running)
        return;
    atomic_store(&req, REQ_QUIT);
    futex(&req, FUTEX_WAKE_PRIVATE, 1, NULL);
    pthread_join(unwinder, NULL);
    running = 0;
}

void fr__unwind_restart_in_child(void)
{
    running = 0; /* the parent's thread does not exist here */
    if (start_thread() != 0)
        fr__warn("fork child: cannot start the unwinder thread", NULL, 0);
}

static uint64_t now_ms(void)
{
    return fr__monotonic_ns() / 1000000u;
}

/*
 * fr__backtrace - the backtrace of the signal context @ucontext into @frames
 * (at most @max), innermost first. Async-signal-safe; waits at most
 * FR_UNWIND_WAIT_MS. Callers: the crash owner, and a thread the stall
 * watchdog samples (watchdog.c); the first to claim the unwinder thread gets
 * it, another caller at the same time unwinds inline. *@status gets an enum
 * fr_unwind_status.
 * Return: the number of frames.
 */
int fr__backtrace(void *ucontext, uint64_t *frames, int max, int *status)
{
    for (int i = 0; i < n_unw_fds; i++) {
        if (!fr__fd_ours(&unw_fds[i])) {
            *status = FR_UNWIND_FDS_TAKEN;
            return 0; /* the caller has frame 0 from the context */
        }
    }
    uint32_t idle = REQ_IDLE;
    if (!running || !atomic_compare_exchange_strong(&req, &idle, REQ_CLAIMED)) {
        *status = FR_UNWIND_INLINE;
        return unwind_into(ucontext, frames, max, NULL);
    }
    req_uc = ucontext;
    atomic_store(&req_n, 0);
    atomic_store(&req_faulted, 0);
    atomic_store_explicit(&req, REQ_WORK, FR_RELEASE); /* pairs with the unwinder's acquire */
    futex(&req, FUTEX_WAKE_PRIVATE, 1, NULL);
    uint64_t deadline = now_ms() + FR_UNWIND_WAIT_MS;
    int done = 0;
    for (;;) {
        uint32_t r = atomic_load_explicit(&req, FR_ACQUIRE);
        if (r == REQ_DONE) {
            done = 1;
            break;
        }
        uint64_t t = now_ms();
        if (t >= deadline)
            break;
        uint64_t left = deadline - t;
        struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
        futex(&req, FUTEX_WAIT_PRIVATE, r, &ts);
    }
    int n = atomic_load_explicit(&req_n, FR_ACQUIRE);
    if (n > max)
        n = max;
    memcpy(frames, req_frames, (size_t)n * sizeof frames[0]);
    *status = !done ? FR_UNWIND_TIMEOUT
                    : atomic_load(&req_faulted) ? FR_UNWIND_FAULT : FR_UNWIND_OK;
    if (done)
        atomic_store(&req, REQ_IDLE);
    return n;
}
