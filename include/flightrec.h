/*
 * flightrec.h - an always-on flight recorder for task runtimes.
 *
 * A runtime calls the task hooks below; each thread writes compact binary
 * events into its own fixed-size ring. A dump signal (SIGUSR1 by default), a
 * crash, or fr_dump() flushes every ring, zstd-compressed, into one file that
 * the `flightrec` command decodes offline.
 *
 * Conventions, stated once:
 *  - Functions that can fail return 0 on success or a negative errno value.
 *  - Task ids are any nonzero uint64_t unique among live tasks (a pointer or a
 *    counter). An id reused after fr_drop() starts a new task instance.
 *  - Strings passed to hooks are copied (interned) on first sight; the caller
 *    may free or reuse them afterwards.
 *  - Every hook is safe from any thread and from a signal handler. After a
 *    thread's first event no hook allocates, locks, or makes a system call.
 *    Hooks called before fr_init() or after fr_shutdown() do nothing.
 *  - Compiling with -DFLIGHTREC_DISABLE turns the FR_* convenience macros
 *    into nothing.
 */
#ifndef FLIGHTREC_H
#define FLIGHTREC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FR_BUILDING_LIBRARY) && defined(__GNUC__)
#define FR_API __attribute__((visibility("default")))
#else
#define FR_API
#endif

/* FR_HOOK: how a program calls the task hooks. On x86-64 with a compiler
 * that has the noplt attribute (GCC), a call goes through the GOT entry
 * instead of a PLT stub: one indirect call instead of a call and a jump, the
 * same symbols and ABI (the library's own build leaves it out). */
#define FR_HOOK FR_API
#if defined(__x86_64__) && defined(__has_attribute) && !defined(FR_BUILDING_LIBRARY)
#if __has_attribute(noplt)
#undef FR_HOOK
#define FR_HOOK FR_API __attribute__((noplt))
#endif
#endif

#define FR_VERSION_MAJOR 0
#define FR_VERSION_MINOR 1
#define FR_VERSION_PATCH 0
#define FR_VERSION_STRING "0.1.0"

/* fr_config.flags */
#define FR_NO_CRASH_HANDLERS 0x1u /* do not install SIGSEGV/SIGBUS/... handlers */
/* Keep the rings, and everything a dump needs, in a shared file mapping
 * `flightrec-<pid>-<unique>.rings` (0600) in the dump directory, so that a
 * process killed by SIGKILL (the OOM killer, a supervisor) leaves its history
 * on disk for `flightrec recover`. Removed on normal exit and fr_shutdown().
 * Also set by FLIGHTREC_SHARED_RINGS=1. */
#define FR_SHARED_RINGS 0x2u

/* fr_config.dump_on: the bit for signal @sig (1..64), e.g.
 * FR_DUMP_ON(SIGTERM) | FR_DUMP_ON(SIGINT). */
#define FR_DUMP_ON(sig) (1ull << ((sig) - 1))
/* A synchronous fault goes first to the SIGSEGV/SIGBUS/SIGILL/SIGFPE handler
 * installed before fr_init (a garbage collector's barrier, a JIT's guard
 * page); only a fault it does not resolve is a crash (env
 * FLIGHTREC_CHAIN_FIRST=1). Without it, flightrec dumps first, then chains. */
#define FR_CHAIN_FIRST 0x4u
/* No spawn table: fr_spawn and fr_drop write their records only, and a dump
 * names a task whose spawn left the ring by nothing. For runtimes that spawn
 * millions of tasks a second on one thread and drop them on another, where
 * the table costs two cache-line transfers per task (env
 * FLIGHTREC_SPAWN_TABLE=0). */
#define FR_NO_SPAWN_TABLE 0x8u
/* No run-delay sampler: no "flightrec-sched" thread reading, every 20 ms
 * (less often while nothing is recorded), how long each thread that recorded
 * meanwhile waited for a CPU. Without it the decoder cannot tell a wait the
 * host caused (a loaded machine) from one the program caused, and gives its
 * timing findings regardless (env FLIGHTREC_RUN_DELAY=0). */
#define FR_NO_RUN_DELAY 0x10u

struct fr_config {
    const char *dump_dir;    /* NULL: $FLIGHTREC_DIR, else the current directory */
    size_t      ring_bytes;  /* per thread; 0: $FLIGHTREC_RING_KB KiB, else 1 MiB */
    int         dump_signal; /* 0: SIGUSR1; -1: no dump signal */
    unsigned    flags;       /* FR_NO_CRASH_HANDLERS, ... */
    unsigned    max_dumps;   /* keep at most this many dumps in dump_dir; 0: 16 */
    /* Added after 0.1. A program built against 0.1's header, whose struct
     * ends at max_dumps, binds to fr_init@FLIGHTREC_0.1 in the shared
     * library, which takes these as 0 (recorder/abi.c). */
    unsigned    stall_ms;    /* dump when one poll runs longer than this many ms;
                                0: $FLIGHTREC_STALL_MS, else off */
    unsigned long long dump_on; /* FR_DUMP_ON(SIGTERM) | ...: dump, then the program's own
                                   handling; 0: $FLIGHTREC_DUMP_ON, else none */
};

/*
 * fr_init - start recording.
 * @cfg: settings, or NULL for all defaults. Zero fields mean "default".
 *
 * Preallocates the compression workspace, opens the dump directory, starts the
 * dumper thread and installs the dump-signal and crash handlers. The calling
 * thread gets its ring and alternate signal stack now; other threads get
 * theirs on their first event.
 *
 * Optional triggers, all off by default:
 *  - stall_ms (FLIGHTREC_STALL_MS): a watchdog thread wakes every stall_ms/4
 *    (at least 1 ms, at most 250 ms) and, when a thread has been inside one
 *    poll for stall_ms or longer, takes that thread's stack on the thread
 *    itself (a signal directed at it) and writes a dump with reason "stall"
 *    while the poll still runs. At most FLIGHTREC_STALL_DUMPS (default 3)
 *    stall dumps per FLIGHTREC_STALL_WINDOW seconds (default 300), one per poll.
 *  - dump_on (FLIGHTREC_DUMP_ON=TERM,INT,...): on those signals, a dump is
 *    written first (waiting at most 2 s for a dump in progress), then the
 *    program's own handler runs or, without one, the default action ends the
 *    process by that signal. Signals whose default is to stop, continue or be
 *    ignored, the crash signals and the dump signal are refused (-EINVAL).
 *  - FR_SHARED_RINGS (FLIGHTREC_SHARED_RINGS=1): see the flag above.
 *
 * Return: 0; -EALREADY if already initialised; -EINVAL for a bad setting
 * (ring smaller than 16 KiB, signal out of range); -errno from the system.
 */
FR_API int fr_init(const struct fr_config *cfg);

/*
 * fr_shutdown - stop recording, stop the dumper thread, restore the signal
 * handlers that were installed before fr_init(). Hooks become no-ops. Ring
 * memory is kept so that threads still inside a hook never touch freed memory.
 * A dump the dump signal asked for and not yet written is written first.
 */
FR_API void fr_shutdown(void);

/*
 * fr_dump - write a dump now, synchronously, from the calling thread.
 * @reason: short text stored in the dump (NULL: "api").
 * @path: if not NULL, receives the final file name (NUL-terminated):
 *        "<dump_dir>/flightrec-<pid>-<UTC time>-<seq>-<unique>.frd". The
 *        directory is the one opened at fr_init(); if its path no longer
 *        leads there (renamed, or a chroot), @path gives where the kernel says
 *        it is now, else its path as fr_init() saw it (outside the jail).
 * @path_size: size of @path.
 *
 * Return: 0; -ENOTCONN if not initialised; -EBUSY if another dump held the
 * writer for over 10 s; -ENAMETOOLONG if @path is too small (the dump is still
 * written); -errno from open/write/rename (no partial file is left behind).
 */
FR_API int fr_dump(const char *reason, char *path, size_t path_size);

/* fr_thread_name - label the calling worker thread in dumps (first 31 bytes). */
FR_HOOK void fr_thread_name(const char *name);

enum fr_poll_result { FR_PENDING = 0, FR_READY = 1 };

/* parent 0: none. Also notes name and parent in the spawn table until
 * fr_drop(task), so a dump names a live task whose spawn left the ring. */
FR_HOOK void fr_spawn(uint64_t task, uint64_t parent, const char *name);
FR_HOOK void fr_poll_begin(uint64_t task);
FR_HOOK void fr_poll_end(uint64_t task, enum fr_poll_result result);
FR_HOOK void fr_await(uint64_t task, const char *label); /* where a pending task waits */
FR_HOOK void fr_wake(uint64_t task);        /* from any thread, or from a poll */
FR_HOOK void fr_waker_clone(uint64_t task); /* one more reference to its waker */
FR_HOOK void fr_waker_drop(uint64_t task);  /* one reference fewer */
FR_HOOK void fr_park(void);                 /* this worker goes idle */
FR_HOOK void fr_unpark(void);               /* this worker resumes */
FR_HOOK void fr_drop(uint64_t task);        /* task finished or cancelled */
FR_HOOK void fr_mark(uint64_t task, const char *label); /* a user annotation */

/*
 * Waits that are not a bug however long they last. A pending task that says
 * where it waits with fr_await() is expected to be woken by the program
 * itself; if no wake comes, `flightrec analyze` reports it as hung. These two
 * say otherwise, and hold until the task's next fr_await*() or fr_idle():
 *
 * fr_await_external - @task waits for input from outside the process: a
 * listener waiting for connections, a keep-alive connection waiting for its
 * next request, a signal watcher, a timer set far ahead. @label is as for
 * fr_await(). Such a task is shown as idle and never reported as hung,
 * lost_wakeup or never_polled while it waits.
 *
 * fr_idle - @task waits for nothing: it was stopped (a timer stopped, reads
 * stopped, an async handle nobody sends to) and runs again only after it is
 * started anew. Shown as idle, never pending.
 *
 * Both may be called inside the task's poll or outside it (a loop's start or
 * stop call); outside a poll they also end a runnable span that had no poll.
 */
FR_HOOK void fr_await_external(uint64_t task, const char *label);
FR_HOOK void fr_idle(uint64_t task);

/*
 * Locks and other resources a task can wait for and hold: an async mutex, a
 * rwlock's writer side, a semaphore permit, a pool slot. @lock is any nonzero
 * id that names the resource for as long as it exists (its address will do).
 *
 * fr_lock_wait - @task asks for @lock and may have to wait; @name ("accounts",
 * "db pool") names the lock in `flightrec locks` and in findings (copied like
 * any string). Call it on every request, before trying the lock: a request
 * granted at once is then an uncontended acquisition, and the lock has its
 * name even when it is never contended. A later fr_lock_wait by the same task
 * (for any lock) ends a wait it gave up.
 *
 * fr_lock_acquire - @task now holds @lock (after a wait or without one).
 *
 * fr_lock_release - @task lets @lock go. Releasing a lock the task does not
 * hold is reported as a `protocol` finding (when the recording covers the
 * task's whole life up to the release).
 *
 * `flightrec analyze` follows holders and waiters: a cycle of tasks each
 * waiting for a lock the next one holds is a `deadlock`; a hung task waiting
 * for a lock names the holder and what the holder is doing.
 */
FR_HOOK void fr_lock_wait(uint64_t task, uint64_t lock, const char *name);
FR_HOOK void fr_lock_acquire(uint64_t task, uint64_t lock);
FR_HOOK void fr_lock_release(uint64_t task, uint64_t lock);

/*
 * The inline gates. While flightrec is not recording (before fr_init(),
 * after fr_shutdown()), a hook called through this header costs one load
 * and a branch in the caller instead of a call into the library: the hooks
 * below are wrapped in static inline functions that test fr__recording
 * first. Arguments are still evaluated exactly once. The library's exported
 * functions are unchanged (their address, dlsym and other languages' bindings
 * see the same ABI), and they test recording themselves, so the gate is only
 * a shortcut. Define FLIGHTREC_NO_INLINE_GATE to call the library directly.
 */
FR_API extern unsigned fr__recording; /* nonzero while recording; not API */

#if defined(__GNUC__) && !defined(FR_BUILDING_LIBRARY) && !defined(FLIGHTREC_NO_INLINE_GATE) && \
    !defined(FLIGHTREC_DISABLE)
static inline int fr__on(void)
{
    return __builtin_expect(__atomic_load_n(&fr__recording, __ATOMIC_RELAXED) != 0, 1);
}
static inline void fr__gate_spawn(uint64_t task, uint64_t parent, const char *name)
{
    if (fr__on())
        fr_spawn(task, parent, name);
}
static inline void fr__gate_poll_begin(uint64_t task)
{
    if (fr__on())
        fr_poll_begin(task);
}
static inline void fr__gate_poll_end(uint64_t task, enum fr_poll_result result)
{
    if (fr__on())
        fr_poll_end(task, result);
}
static inline void fr__gate_await(uint64_t task, const char *label)
{
    if (fr__on())
        fr_await(task, label);
}
static inline void fr__gate_wake(uint64_t task)
{
    if (fr__on())
        fr_wake(task);
}
static inline void fr__gate_waker_clone(uint64_t task)
{
    if (fr__on())
        fr_waker_clone(task);
}
static inline void fr__gate_waker_drop(uint64_t task)
{
    if (fr__on())
        fr_waker_drop(task);
}
static inline void fr__gate_park(void)
{
    if (fr__on())
        fr_park();
}
static inline void fr__gate_unpark(void)
{
    if (fr__on())
        fr_unpark();
}
static inline void fr__gate_drop(uint64_t task)
{
    if (fr__on())
        fr_drop(task);
}
static inline void fr__gate_mark(uint64_t task, const char *label)
{
    if (fr__on())
        fr_mark(task, label);
}
static inline void fr__gate_await_external(uint64_t task, const char *label)
{
    if (fr__on())
        fr_await_external(task, label);
}
static inline void fr__gate_idle(uint64_t task)
{
    if (fr__on())
        fr_idle(task);
}
static inline void fr__gate_lock_wait(uint64_t task, uint64_t lock, const char *name)
{
    if (fr__on())
        fr_lock_wait(task, lock, name);
}
static inline void fr__gate_lock_acquire(uint64_t task, uint64_t lock)
{
    if (fr__on())
        fr_lock_acquire(task, lock);
}
static inline void fr__gate_lock_release(uint64_t task, uint64_t lock)
{
    if (fr__on())
        fr_lock_release(task, lock);
}
/* Function-like macros: `fr_wake(t)` goes through the gate, `&fr_wake` is
 * still the library's function. */
#define fr_spawn(task, parent, name) fr__gate_spawn((task), (parent), (name))
#define fr_poll_begin(task) fr__gate_poll_begin(task)
#define fr_poll_end(task, result) fr__gate_poll_end((task), (result))
#define fr_await(task, label) fr__gate_await((task), (label))
#define fr_wake(task) fr__gate_wake(task)
#define fr_waker_clone(task) fr__gate_waker_clone(task)
#define fr_waker_drop(task) fr__gate_waker_drop(task)
#define fr_park() fr__gate_park()
#define fr_unpark() fr__gate_unpark()
#define fr_drop(task) fr__gate_drop(task)
#define fr_mark(task, label) fr__gate_mark((task), (label))
#define fr_await_external(task, label) fr__gate_await_external((task), (label))
#define fr_idle(task) fr__gate_idle(task)
#define fr_lock_wait(task, lock, name) fr__gate_lock_wait((task), (lock), (name))
#define fr_lock_acquire(task, lock) fr__gate_lock_acquire((task), (lock))
#define fr_lock_release(task, lock) fr__gate_lock_release((task), (lock))
#endif

/*
 * Convenience macros. FR_AWAIT records the await point with its source
 * location ("label (file:line)"); all of them vanish with -DFLIGHTREC_DISABLE.
 */
#define FR__STR2(x) #x
#define FR__STR(x) FR__STR2(x)
#ifndef FLIGHTREC_DISABLE
#define FR_AWAIT(task, label) fr_await((task), label " (" __FILE__ ":" FR__STR(__LINE__) ")")
#define FR_SPAWN(task, parent, name) fr_spawn((task), (parent), (name))
#define FR_POLL_BEGIN(task) fr_poll_begin(task)
#define FR_POLL_END(task, res) fr_poll_end((task), (res))
#define FR_WAKE(task) fr_wake(task)
#define FR_WAKER_CLONE(task) fr_waker_clone(task)
#define FR_WAKER_DROP(task) fr_waker_drop(task)
#define FR_PARK() fr_park()
#define FR_UNPARK() fr_unpark()
#define FR_DROP(task) fr_drop(task)
#define FR_MARK(task, label) fr_mark((task), (label))
#define FR_AWAIT_EXTERNAL(task, label)                                                            \
    fr_await_external((task), label " (" __FILE__ ":" FR__STR(__LINE__) ")")
#define FR_IDLE(task) fr_idle(task)
#define FR_LOCK_WAIT(task, lock, name) fr_lock_wait((task), (lock), (name))
#define FR_LOCK_ACQUIRE(task, lock) fr_lock_acquire((task), (lock))
#define FR_LOCK_RELEASE(task, lock) fr_lock_release((task), (lock))
#else
#define FR_AWAIT(task, label) ((void)(task))
#define FR_SPAWN(task, parent, name) ((void)(task), (void)(parent), (void)(name))
#define FR_POLL_BEGIN(task) ((void)(task))
#define FR_POLL_END(task, res) ((void)(task), (void)(res))
#define FR_WAKE(task) ((void)(task))
#define FR_WAKER_CLONE(task) ((void)(task))
#define FR_WAKER_DROP(task) ((void)(task))
#define FR_PARK() ((void)0)
#define FR_UNPARK() ((void)0)
#define FR_DROP(task) ((void)(task))
#define FR_MARK(task, label) ((void)(task), (void)(label))
#define FR_AWAIT_EXTERNAL(task, label) ((void)(task))
#define FR_IDLE(task) ((void)(task))
#define FR_LOCK_WAIT(task, lock, name) ((void)(task), (void)(lock), (void)(name))
#define FR_LOCK_ACQUIRE(task, lock) ((void)(task), (void)(lock))
#define FR_LOCK_RELEASE(task, lock) ((void)(task), (void)(lock))
#endif

#ifdef __cplusplus
}
#endif
#endif /* FLIGHTREC_H */
