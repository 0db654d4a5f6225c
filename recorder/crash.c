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
 *  - chaining: afterwards the handler that was installed before fr_init is
 *    restored and the signal re-raised, so the application's own handler
 *    runs, and the exit status and core dump are the original signal's. A
 *    synchronous fault re-executes on return; a sent signal (kill, raise,
 *    abort: si_code <= 0) is re-sent with tgkill.
 *
 * Everything here is async-signal-safe (see dump.c and unwind.c).
 */
#include <errno.h>
#include <string.h>
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

static void restore_all(void)
{
    for (int i = 0; i < NCRASH; i++)
        sigaction(crash_signals[i], &old_actions[i], NULL);
}

/* Give the signal back to whoever had it before us, and make it happen. */
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
    ci->addr = (uint64_t)(uintptr_t)si->si_addr;
    ci->tid = tid;
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
    ci->nframes = fr__backtrace(uc, ci->frames, FR_MAX_FRAMES);
}

static void on_crash(int sig, siginfo_t *si, void *ucv)
{
    int saved = errno;
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
        fill_crash_info(sig, si, ucv, tid);
        char reason[FR_REASON_MAX] = "crash";
        fr__dump_write(FR_CTX_CRASH, FR_TRIGGER_CRASH, sig, reason, &crash_info, NULL, 0);
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

int fr__crash_install(void)
{
    if (fr__cfg.flags & FR_NO_CRASH_HANDLERS)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    /* SA_ONSTACK: stack overflow. SA_NODEFER: a fault inside the handler
     * reaches it again (salvage) instead of killing the process silently. */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NCRASH; i++) {
        if (sigaction(crash_signals[i], &sa, &old_actions[i]) != 0) {
            int err = -errno;
            for (int j = 0; j < i; j++)
                sigaction(crash_signals[j], &old_actions[j], NULL);
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
}

void fr__crash_reset_after_fork(void)
{
    atomic_store(&crash_owner, 0);
}
