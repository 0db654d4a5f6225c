/*
 * unwind.c - the crash backtrace: raw instruction pointers from libunwind,
 * starting at the faulting frame of the signal context.
 *
 * Only IPs are collected here; symbolizing (unw_get_proc_name, dladdr) may
 * allocate or take locks, so the decoder does it offline from the MODULES
 * section. unw_init_local2 with UNW_INIT_SIGNAL_FRAME tells libunwind that
 * frame 0 is an interrupted instruction, not a return address, so it neither
 * subtracts one from it nor loses the frame of the faulting function.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "internal.h"

int fr__backtrace(void *ucontext, uint64_t *frames, int max)
{
    unw_cursor_t cursor;
    /* On x86_64 and aarch64 unw_context_t is the kernel's ucontext_t. */
    if (unw_init_local2(&cursor, (unw_context_t *)ucontext, UNW_INIT_SIGNAL_FRAME) < 0)
        return 0;
    int n = 0;
    do {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        frames[n++] = (uint64_t)ip;
    } while (n < max && unw_step(&cursor) > 0);
    return n;
}
