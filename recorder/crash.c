/*
 * crash.c - the crash handlers: SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT.
 *
 * On a crash the faulting thread, on its alternate stack (registry.c), writes
 * the dump itself with the crash writer context: nothing else may run, the
 * process is about to die. The discipline, after Breakpad and Crashpad:
 *
 *  - one owner: the first crashing thread wins a compare-and-swap; a second
 *    thread crashing at the same time waits (bounded) for the process to die
 *    rather than race it, so the first dump is never lost or mixed;
 *  - re-entrancy: a fault inside the handler (SA_NODEFER lets it reach us)
 *    salvages the frames already written and gives up at once, ending the
 *    process with the original signal, not the handler's own fault;
 *  - chaining: afterwards the program's own action is restored and the
 *    signal re-raised, so the application's own handler runs, and the exit
 *    status and core dump are the original signal's. A synchronous fault
 *    re-executes on return; a sent signal (kill, raise, abort: si_code <= 0)
 *    is re-sent with tgkill. The program's action is the one installed before
 *    fr_init, or one it installed after, through the adapters'
 *    sigaction/signal wrappers (fr__crash_claimed): the wrapper lets the real
 *    call replace our handler, then ours goes back in front and the new
 *    action becomes the one chained to, and a query through the wrapper
 *    returns the program's action, never ours (fr__crash_view). Without the
 *    adapters, a handler installed after fr_init replaces ours, and that
 *    signal no longer dumps;
 *  - its own stack: the kernel runs the handler on whatever alternate stack
 *    the thread has (ours from registry.c, or a small one the program set
 *    itself, e.g. 8 KiB) or on the thread's own stack; the handler moves at
 *    once to a stack of its own, mapped at fr_init (FR_CRASH_STACK_SIZE, with
 *    a guard page), and writes the dump there. Only the crash owner uses it;
 *  - the earlier handler first (FR_CHAIN_FIRST): for a program whose own
 *    SIGSEGV/SIGBUS/SIGILL/SIGFPE handler resolves some faults as normal work
 *    (a garbage collector's barrier, a JIT's guard page), a synchronous fault
 *    goes to that handler first. If it returns with our handler still in
 *    place, the fault is retried; a fault that comes straight back with the
 *    same registers was not resolved, and only that one is a crash. If the
 *    handler gave the signal up instead (set SIG_DFL), it is a crash too.
 *    Nothing is uninstalled for a resolved fault.
 *
 * Everything here is async-signal-safe (see dump.c and unwind.c).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define NCRASH ((int)(sizeof crash_signals / sizeof crash_signals[0]))

static struct sigaction old_actions[NCRASH];
static int installed;
static _Atomic uint32_t crash_owner; /* tid of the thread writing the crash dump */
static __thread int in_crash __attribute__((tls_model("initial-exec")));
static struct fr_crash_info crash_info; /* owner only */

/* The crash owner's stack: the dump writer (zstd, libunwind's caller, the
 * page copies) needs more than a program's small alternate stack holds. */
#ifndef FR_CRASH_STACK_SIZE
#define FR_CRASH_STACK_SIZE (256u * 1024u)
#endif
static uint8_t *crash_stack; /* guard page + FR_CRASH_STACK_SIZE, kept for the process */

/* FR_CHAIN_FIRST: the last synchronous fault handed to the earlier handler
 * on this thread, to tell a resolved fault from one that comes straight back. */
struct fault_sig {
    int signo;
    uintptr_t addr;
#if defined(__x86_64__)
    greg_t regs[NGREG];
#elif defined(__aarch64__)
    unsigned long long regs[31], sp, pc;
#else
    int none;
#endif
};
static __thread struct fault_sig last_fault __attribute__((tls_model("initial-exec")));

/*
 * fr__call_on_stack - call fn(arg) with the stack pointer at @stack_top (16-
 * byte aligned), and come back to the caller's stack afterwards.
 */
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl fr__call_on_stack\n"
        ".hidden fr__call_on_stack\n"
        ".type fr__call_on_stack,@function\n"
        "fr__call_on_stack:\n"
        "  .cfi_startproc\n"
        "  pushq %rbp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset %rbp, -16\n"
        "  movq %rsp, %rbp\n"
        "  .cfi_def_cfa_register %rbp\n"
        "  movq %rdi, %rsp\n"
        "  andq $-16, %rsp\n"
        "  movq %rdx, %rdi\n"
        "  callq *%rsi\n"
        "  movq %rbp, %rsp\n"
        "  popq %rbp\n"
        "  .cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size fr__call_on_stack, .-fr__call_on_stack\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl fr__call_on_stack\n"
        ".hidden fr__call_on_stack\n"
        ".type fr__call_on_stack,%function\n"
        "fr__call_on_stack:\n"
        "  stp x29, x30, [sp, #-16]!\n"
        "  mov x29, sp\n"
        "  and x0, x0, #~15\n"
        "  mov sp, x0\n"
        "  mov x0, x2\n"
        "  blr x1\n"
        "  mov sp, x29\n"
        "  ldp x29, x30, [sp], #16\n"
        "  ret\n"
        ".size fr__call_on_stack, .-fr__call_on_stack\n");
#else
void fr__call_on_stack(void *stack_top, void (*fn)(void *), void *arg)
{
    (void)stack_top;
    fn(arg); /* no stack switch on this architecture */
}
#endif

/* Our own sigaction calls go through fr__own_sigaction: the adapters'
 * wrappers, which interpose sigaction when they are loaded, leave them alone. */
static void restore_all(void)
{
    for (int i = 0; i < NCRASH; i++)
        fr__own_sigaction(crash_signals[i], &old_actions[i], NULL);
}

/* Give the signal back to whoever had it before us, and make it happen. */
static void on_crash(int sig, siginfo_t *si, void *ucv);

static void chain(int sig, siginfo_t *si)
{
    restore_all();
    if (si->si_code <= 0) /* sent, not caused by the instruction: send it again */
        syscall(SYS_tgkill, getpid(), fr__gettid(), sig);
    /* A synchronous fault re-executes the faulting instruction on return. */
}

static void fill_crash_info(int sig, siginfo_t *si, ucontext_t *uc, uint32_t tid)
{
    struct fr_crash_info *ci = &crash_info;
    ci->signo = sig;
    ci->code = si->si_code;
    if (si->si_code <= 0) /* sent: the union holds the sender, not an address */
        ci->addr = (uint64_t)(uint32_t)si->si_pid | (uint64_t)si->si_uid << 32;
    else
        ci->addr = (uint64_t)(uintptr_t)si->si_addr;
    ci->tid = tid;
    fr__writer_flush(); /* the crashing poll's folded events, before the ring is copied */
    ci->ticks = fr__ticks();
    ci->task = 0;
    if (fr__w.slot)
        ci->task = atomic_load_explicit(&fr__w.slot->ring.current_task, FR_RELAXED);
    ci->ip = ci->sp = 0;
#if defined(__x86_64__)
    ci->ip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    ci->sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    ci->ip = (uint64_t)uc->uc_mcontext.pc;
    ci->sp = (uint64_t)uc->uc_mcontext.sp;
#endif
    ci->unwind = FR_UNWIND_OK;
    ci->nframes = fr__backtrace(uc, ci->frames, FR_MAX_FRAMES, &ci->unwind);
    if (ci->nframes == 0 && ci->ip) { /* at least the faulting instruction */
        ci->frames[0] = ci->ip;
        ci->nframes = 1;
    }
}

struct crash_args {
    int sig;
    siginfo_t *si;
    ucontext_t *uc;
    uint32_t tid;
};

static void write_crash_dump(void *arg)
{
    struct crash_args *a = arg;
    fill_crash_info(a->sig, a->si, a->uc, a->tid);
    char reason[FR_REASON_MAX] = "crash";
    fr__dump_write(FR_CTX_CRASH, FR_TRIGGER_CRASH, a->sig, reason, &crash_info, NULL, 0);
}

static int old_index(int sig)
{
    for (int i = 0; i < NCRASH; i++)
        if (crash_signals[i] == sig)
            return i;
    return -1;
}

static void fault_signature(struct fault_sig *f, int sig, const siginfo_t *si, const ucontext_t *uc)
{
    memset(f, 0, sizeof *f);
    f->signo = sig;
    f->addr = (uintptr_t)si->si_addr;
#if defined(__x86_64__)
    memcpy(f->regs, uc->uc_mcontext.gregs, sizeof f->regs);
#elif defined(__aarch64__)
    memcpy(f->regs, uc->uc_mcontext.regs, sizeof f->regs);
    f->sp = uc->uc_mcontext.sp;
    f->pc = uc->uc_mcontext.pc;
#else
    (void)uc;
#endif
}

/*
 * FR_CHAIN_FIRST: hand a synchronous fault to the handler installed before
 * fr_init. Return: 1 if it was handled (return from the signal and let the
 * instruction run again), 0 if it is a crash to dump.
 */
static int earlier_handler_first(int sig, siginfo_t *si, ucontext_t *uc)
{
    int i = old_index(sig);
    if (!(fr__cfg.flags & FR_CHAIN_FIRST) || i < 0 || sig == SIGABRT || si->si_code <= 0)
        return 0;
    const struct sigaction *old = &old_actions[i];
    if (!(old->sa_flags & SA_SIGINFO) &&
        (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN))
        return 0;
    struct fault_sig now;
    fault_signature(&now, sig, si, uc);
    if (memcmp(&now, &last_fault, sizeof now) == 0) {
        memset(&last_fault, 0, sizeof last_fault);
        return 0; /* straight back, nothing changed: the earlier handler could not fix it */
    }
    last_fault = now;
    /* Call it as the kernel would have: its mask, its calling convention. */
    sigset_t mask, saved_mask;
    mask = old->sa_mask;
    if (!(old->sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, &saved_mask);
    if (old->sa_flags & SA_SIGINFO)
        old->sa_sigaction(sig, si, uc);
    else
        old->sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    struct sigaction cur;
    if (fr__own_sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_crash)
        return 1; /* returned, still ours: retry the instruction and see */
    /* It gave the signal up (SIG_DFL, or another handler): a crash. Dump it
     * and leave that disposition for the retried instruction. */
    memset(&last_fault, 0, sizeof last_fault);
    old_actions[i] = cur;
    return 0;
}

static void on_crash(int sig, siginfo_t *si, void *ucv)
{
    int saved = errno;
    fr__unwind_on_fault(); /* on the unwinder thread: back to its loop, never returns */
    if (!in_crash && earlier_handler_first(sig, si, ucv)) {
        errno = saved;
        return;
    }
    if (in_crash) {
        /* A fault while writing the crash dump: keep what is whole, then end
         * the process as the original crash would have. A different original
         * signal is sent again (the previous handler, or the default action,
         * takes it at once: nothing blocks it under SA_NODEFER); the same
         * signal re-executes this fault with the previous handler restored. */
        fr__dump_salvage(FR_CTX_CRASH);
        int orig = atomic_load(&crash_owner) == (uint32_t)fr__gettid() ? crash_info.signo : sig;
        if (orig != sig) {
            restore_all();
            syscall(SYS_tgkill, getpid(), fr__gettid(), orig);
        }
        chain(sig, si);
        errno = saved;
        return;
    }
    in_crash = 1;
    uint32_t tid = (uint32_t)fr__gettid();
    uint32_t expect = 0;
    if (atomic_compare_exchange_strong(&crash_owner, &expect, tid)) {
        struct crash_args a = { sig, si, ucv, tid };
        if (crash_stack)
            fr__call_on_stack(crash_stack + FR_PAGE_SIZE + FR_CRASH_STACK_SIZE, write_crash_dump, &a);
        else
            write_crash_dump(&a);
    } else {
        /* Another thread is writing the crash dump; it will re-raise its signal
         * and end the process. Waiting here (not dying first) keeps its dump
         * whole. If it has not ended the process in 10 s, die anyway. */
        for (int i = 0; i < 1000; i++)
            fr__sleep_ms(10);
    }
    chain(sig, si);
    errno = saved;
}

static void our_action(struct sigaction *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sa_sigaction = on_crash;
    /* SA_ONSTACK: stack overflow. SA_NODEFER: a fault inside the handler
     * reaches it again (salvage) instead of killing the process silently. */
    sa->sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa->sa_mask);
}

/* Our handler holds the crash signal @i's index and no crash is being
 * handled (its chain puts the program's actions back, and the program's
 * handler may then change them as it likes). */
static int holding(int i)
{
    return i >= 0 && installed && !in_crash && atomic_load(&crash_owner) == 0;
}

/*
 * fr__crash_claimed - the program just set crash signal @sig's disposition
 * through an adapter's wrapper, and the real call replaced our handler: its
 * action becomes the one we chain to, and ours goes back in front of it.
 * Async-signal-safe. Return: 1 if @sig is a crash signal we hold, else 0.
 */
int fr__crash_claimed(int sig)
{
    int i = old_index(sig);
    if (!holding(i))
        return 0;
    struct sigaction cur, ours;
    if (fr__own_sigaction(sig, NULL, &cur) != 0)
        return 1;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_crash)
        return 1; /* ours still */
    our_action(&ours);
    if (fr__own_sigaction(sig, &ours, NULL) == 0)
        old_actions[i] = cur;
    return 1;
}

/*
 * fr__crash_view - for the adapters' wrappers: if we hold crash signal @sig,
 * the action the program believes it has (the one we chain to) in @view.
 * Return: 1 if so, else 0 (@view untouched).
 */
int fr__crash_view(int sig, struct sigaction *view)
{
    int i = old_index(sig);
    if (!holding(i))
        return 0;
    *view = old_actions[i];
    return 1;
}

int fr__crash_install(void)
{
    if (fr__cfg.flags & FR_NO_CRASH_HANDLERS)
        return 0;
    if (!crash_stack) {
        void *p = mmap(NULL, FR_PAGE_SIZE + FR_CRASH_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        mprotect(p, FR_PAGE_SIZE, PROT_NONE); /* the handler's own overflow faults cleanly */
        crash_stack = p;
    }
    int uerr = fr__unwind_start();
    if (uerr)
        return uerr;
    struct sigaction sa;
    our_action(&sa);
    for (int i = 0; i < NCRASH; i++) {
        if (fr__own_sigaction(crash_signals[i], &sa, &old_actions[i]) != 0) {
            int err = -errno;
            for (int j = 0; j < i; j++)
                fr__own_sigaction(crash_signals[j], &old_actions[j], NULL);
            fr__unwind_stop();
            return err;
        }
    }
    installed = 1;
    return 0;
}

void fr__crash_uninstall(void)
{
    if (!installed)
        return;
    restore_all();
    installed = 0;
    fr__unwind_stop();
}

void fr__crash_reset_after_fork(void)
{
    atomic_store(&crash_owner, 0);
    if (installed)
        fr__unwind_restart_in_child();
}
