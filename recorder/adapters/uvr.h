/*
 * uvr.h - what the libuv adapter's files share (not installed).
 *
 * libflightrec-uv.so is preloaded into a program that uses libuv. It defines
 * libuv's public functions itself; each one records the task model's events
 * (docs/adapters.md) and forwards to the real function, resolved once with
 * dlsym(RTLD_NEXT). Callbacks the program hands to libuv are replaced by
 * trampolines; the program's own callback is kept in a side table keyed by the
 * handle or request pointer (uvr_find), so handle->data, req->data and every
 * other field the program reads stay as they were.
 *
 * Files: uv.c (resolution, side table, fd table, labels, ids, init, close,
 * readiness), uv_handles.c (handles: start is an await, stop is idle, each
 * callback a poll), uv_requests.c (requests: a task from submit to callback).
 *
 * Only libuv 1.x's unix layout is assumed (the private fields of uv.h that
 * the adapter reads: handle->flags, loop->time, loop->timer_heap,
 * timer->heap_node/timeout, io_watcher.fd); uvr_layout_ok is false when the
 * running libuv is not 1.x, and those reads are then skipped.
 */
#ifndef FR_ADAPTERS_UVR_H
#define FR_ADAPTERS_UVR_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

#include "flightrec.h"
#include "flightrec/format.h" /* FR_BLOCKING_POOL_THREAD */

/* Everything declared below is private to the adapter; only the uv_*
 * functions it defines are exported. */
#pragma GCC visibility push(hidden)

/* Every libuv function the adapter defines. uvr_real_<name> holds the real
 * one; uvr_resolve() fills them (constructor, and again if still missing). */
#define UVR_FUNCS(X)                                                                               \
    X(uv_close) X(uv_tcp_close_reset) X(uv_timer_start) X(uv_timer_stop) X(uv_timer_again)       \
    X(uv_read_start) X(uv_read_stop) X(uv_listen) X(uv_udp_recv_start) X(uv_udp_recv_stop)      \
    X(uv_poll_start) X(uv_poll_stop) X(uv_signal_start) X(uv_signal_start_oneshot)              \
    X(uv_signal_stop) X(uv_async_init) X(uv_async_send) X(uv_prepare_start) X(uv_prepare_stop)  \
    X(uv_check_start) X(uv_check_stop) X(uv_idle_start) X(uv_idle_stop) X(uv_fs_event_start)    \
    X(uv_fs_event_stop) X(uv_fs_poll_start) X(uv_fs_poll_stop) X(uv_spawn) X(uv_write)          \
    X(uv_write2) X(uv_shutdown) X(uv_tcp_connect) X(uv_pipe_connect) X(uv_udp_send)             \
    X(uv_queue_work) X(uv_getaddrinfo) X(uv_getnameinfo) X(uv_random)                           \
    UVR_FS_FUNCS(X)

/* uv_fs_* calls with a callback (asynchronous when it is not NULL). */
#define UVR_FS_FUNCS(X)                                                                            \
    X(uv_fs_close) X(uv_fs_open) X(uv_fs_read) X(uv_fs_unlink) X(uv_fs_write) X(uv_fs_copyfile)   \
    X(uv_fs_mkdir) X(uv_fs_mkdtemp) X(uv_fs_mkstemp) X(uv_fs_rmdir) X(uv_fs_scandir)             \
    X(uv_fs_opendir) X(uv_fs_readdir) X(uv_fs_closedir) X(uv_fs_stat) X(uv_fs_fstat)            \
    X(uv_fs_rename) X(uv_fs_fsync) X(uv_fs_fdatasync) X(uv_fs_ftruncate) X(uv_fs_sendfile)      \
    X(uv_fs_access) X(uv_fs_chmod) X(uv_fs_utime) X(uv_fs_futime) X(uv_fs_lutime)              \
    X(uv_fs_lstat) X(uv_fs_link) X(uv_fs_symlink) X(uv_fs_readlink) X(uv_fs_realpath)           \
    X(uv_fs_fchmod) X(uv_fs_chown) X(uv_fs_fchown) X(uv_fs_lchown) X(uv_fs_statfs)

#define UVR_DECLARE_REAL(fn) extern __typeof__(&fn) uvr_real_##fn;
UVR_FUNCS(UVR_DECLARE_REAL)
#undef UVR_DECLARE_REAL

/* The real function, resolving again if libuv came after the constructor. */
#define UVR_REAL(fn)                                                                               \
    (__builtin_expect(uvr_real_##fn != NULL, 1) ? uvr_real_##fn : (uvr_resolve(), uvr_real_##fn))

/* Find the real functions (fra_real: dlsym(RTLD_NEXT), else in the scope of
 * the loaded module that brought libuv with RTLD_LOCAL, as Python does for
 * uvloop); the first time libuv is found, also its text range and whether
 * its layout is one the adapter reads. */
void uvr_resolve(void);

/* 1 once libuv was found (uvr_lo/uvr_hi and uvr_layout_ok are set). */
extern int uvr_located;

/* 1 when the running libuv has the 1.x unix layout the adapter reads. */
extern int uvr_layout_ok;

/* How many real libuv calls the adapter is inside on this thread. */
extern __thread unsigned uvr_depth;

/* Forward to the real function (@args in parentheses). A wrapped function
 * entered meanwhile is libuv calling itself (uv_write jumps to uv_write2 as
 * a tail call: the return address alone would not show it). No real call
 * the adapter forwards runs a program callback before it returns. */
#define UVR_CALL(fn, args)                                                                         \
    ({                                                                                             \
        uvr_depth++;                                                                               \
        __typeof__(UVR_REAL(fn) args) uvr_r_ = UVR_REAL(fn) args;                                  \
        uvr_depth--;                                                                               \
        uvr_r_;                                                                                    \
    })
#define UVR_CALL_VOID(fn, args)                                                                    \
    do {                                                                                           \
        uvr_depth++;                                                                               \
        UVR_REAL(fn) args;                                                                         \
        uvr_depth--;                                                                               \
    } while (0)

/* True for a call libuv makes to its own exported functions, which is passed
 * through unrecorded: inside a forwarded call (above), or from libuv's code
 * (@ret, the return address, in its text: uv__run_timers calling
 * uv_timer_stop, uv_fs_poll's timer, uv_loop_init's async handle). */
extern uintptr_t uvr_lo, uvr_hi;
static inline int uvr_internal(const void *ret)
{
    if (__builtin_expect(!__atomic_load_n(&uvr_located, __ATOMIC_ACQUIRE), 0))
        uvr_resolve(); /* libuv was loaded after the constructor ran */
    return uvr_depth > 0 || ((uintptr_t)ret >= uvr_lo && (uintptr_t)ret < uvr_hi);
}

/* What a side-table entry stands for. */
enum uvr_kind {
    UVR_TIMER = 1, UVR_READ, UVR_LISTEN, UVR_UDP, UVR_POLL, UVR_SIGNAL, UVR_ASYNC, UVR_PREPARE,
    UVR_CHECK, UVR_IDLE, UVR_FS_EVENT, UVR_FS_POLL, UVR_PROCESS,
    UVR_REQ, /* any request: write, connect, shutdown, udp send, work, fs, dns, random */
};

/*
 * One handle or request the adapter follows. Written by the thread that owns
 * the handle (its loop's thread) before the key is published with a release
 * store; other threads (uv_async_send, the pool running a work callback) only
 * read entries whose key they found with an acquire load.
 */
struct uvr_ent {
    uint64_t task;         /* its task id (uvr_new_id) */
    void (*cb)(void);      /* the program's callback (read_cb, timer_cb, work_cb, fs cb...) */
    void (*cb2)(void);     /* a second one: after_work_cb, or the close_cb once closing */
    uint64_t due;          /* timer: the loop time of the pass its due-wake was recorded in */
    int fd;                /* the fd whose readiness wakes it, -1 none */
    uint8_t kind;          /* enum uvr_kind */
    uint8_t armed;         /* started and not stopped (handles) */
};

struct uvr_ent *uvr_find(const void *key);
/* The entry for @key: the existing one (*@fresh = 0) or a new one, filled
 * with a new task id, and published (*@fresh = 1). NULL when the table has no
 * room near the key's slot: the object is then not followed. */
struct uvr_ent *uvr_claim(const void *key, int kind, int *fresh);
void uvr_remove(struct uvr_ent *e);
/* A new task id: "uv" in the top bits, a per-thread block of a counter below. */
uint64_t uvr_new_id(void);

/* Readiness: while a handle waits on @fd for @mask (EPOLL* bits), the common
 * poller wrapper's ready hook wakes its task. */
void uvr_fd_arm(struct uvr_ent *e, int fd, uint32_t mask);
void uvr_fd_disarm(struct uvr_ent *e);

/* "prefix @0x<hex>", in a per-thread cache so the same pair gives the same
 * pointer (the recorder's intern memo then costs a pointer compare). */
const char *uvr_label(const char *prefix, const void *addr);
/* The label of a call made from @ret: "uv_read_start from @0x<ret-1>". */
const char *uvr_from(const char *call_from, const void *ret);

/* The task whose callback runs on this thread now (0 none): the parent of
 * what it submits. */
extern __thread uint64_t uvr_current;

static inline uint64_t uvr_poll_begin(uint64_t task)
{
    uint64_t prev = uvr_current;
    uvr_current = task;
    fr_poll_begin(task);
    return prev;
}

static inline void uvr_poll_end(uint64_t task, uint64_t prev, enum fr_poll_result r)
{
    fr_poll_end(task, r);
    uvr_current = prev;
}

/* Wake every followed timer of @loop that is due (runs before a timer
 * callback: the timers due in the same pass became runnable together). The
 * timer libuv calls is no longer in the heap (uv__run_timers stops and
 * re-arms it before its callback): tramp_timer wakes that one itself. */
void uvr_wake_due_timers(const uv_loop_t *loop);

/* libuv 1.x private handle flags (src/uv-common.h), read when uvr_layout_ok. */
#define UVR_HANDLE_CLOSING 0x00000001u
#define UVR_HANDLE_ACTIVE 0x00000004u
#define UVR_HANDLE_READING 0x00001000u

/* Keep errno across the recording that follows a real call. */
#define UVR_KEEP_ERRNO(stmt)                                                                       \
    do {                                                                                           \
        int uvr_errno_ = errno;                                                                    \
        stmt;                                                                                      \
        errno = uvr_errno_;                                                                        \
    } while (0)

#pragma GCC visibility pop

#endif /* FR_ADAPTERS_UVR_H */
