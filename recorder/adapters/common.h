/*
 * recorder/adapters/common.h - what both runtime adapters share: the wrappers
 * of the poller and of the signal calls (common.c, compiled into each
 * adapter), and the few library entry points made for them.
 *
 * Each adapter .so carries its own copy of common.c, so `flightrec run` can
 * preload both: a wrapped call then runs through both copies in turn (each
 * forwards to the next definition with dlsym(RTLD_NEXT)), and the state that
 * must be one per process (poller nesting, the dump signal) lives in
 * libflightrec.
 */
#ifndef FRA_COMMON_H
#define FRA_COMMON_H

#include <signal.h>
#include <stdint.h>

#include "flightrec.h"

/* libflightrec entry points for the adapters (not public API). */
FR_API int fr__poller_enter(void);
FR_API int fr__poller_leave(void);
FR_API void fr__signal_claimed(int sig, int how);
FR_API int fr__signal_view(int sig, struct sigaction *view);

/*
 * fra_set_ready_hook - @hook is called on the polling thread, after the
 * thread's epoll_wait/epoll_pwait/epoll_pwait2 returned, once per ready
 * descriptor that the program registered with its own number as the event's
 * data (epoll_event.data.fd == fd, as libuv and libevent do), with the
 * returned event mask. Descriptors registered with other data (a pointer)
 * are never reported. Set it once, from the adapter's constructor.
 */
void fra_set_ready_hook(void (*hook)(int fd, uint32_t events));

/*
 * fra_label - "<prefix> @0x<hex addr>", the form the decoder symbolizes
 * (include/flightrec/format.h, "Code addresses in strings"). The text lives
 * in a small per-thread cache keyed by (@prefix pointer, @addr): the same
 * pair gives the same pointer, so the recorder's string memo costs a compare.
 * @prefix must be a string literal or otherwise live forever and at most 64
 * bytes. For a call site pass the return address minus one.
 * Return: the text, valid until the cache slot is reused on this thread.
 */
const char *fra_label(const char *prefix, const void *addr);

/*
 * fra_start - the adapter's fr_init, from its constructor, for a process that
 * should be recorded. `flightrec run` names the process it runs
 * (FLIGHTREC_RUN_PID): that one is recorded, whatever it loads, as is any
 * process when the variable is unset (LD_PRELOAD set by hand). A process
 * that process execs under another pid inherits LD_PRELOAD, and is recorded
 * only if @uses_loop (the loop library is loaded in it at the constructor: a
 * wrapper script's server is recorded, `sh` or `sleep` run by system() is
 * not, and runs with no thread, handler or dump signal of ours). @who names
 * the adapter in the message printed when fr_init fails.
 */
void fra_start(int uses_loop, const char *who);

/* fra_caller - the call site of the function that calls it, for fra_label. */
#define fra_caller() ((const void *)((const char *)__builtin_return_address(0) - 1))

/* fra_real - the next definition of @name after the adapter (dlsym
 * RTLD_NEXT), else one in the scope of a loaded object that is not the
 * adapter (a library a module dlopen()ed with RTLD_LOCAL), or NULL; resolve
 * once and keep it. Not async-signal-safe (dlopen, dlsym). */
void *fra_real(const char *name);

#endif /* FRA_COMMON_H */
