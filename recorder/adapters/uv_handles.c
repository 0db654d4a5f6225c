/*
 * uv_handles.c - libuv handles as tasks.
 *
 * A handle becomes a task at its first start call (that is when libuv learns
 * its callback, which the task's name carries: "uv timer @0x<timer_cb>");
 * an async handle at uv_async_init. Each start call is an await on the
 * outside world (fr_await_external, labelled with the call and its caller):
 * a timer waits for the clock, a read for a peer, a signal for a sender. A
 * stop call, or libuv stopping the handle itself (a one-shot timer that
 * fired, a stream at EOF, a process that exited), is fr_idle. Each callback
 * libuv makes is one poll. Readiness is a wake: the fd of a reading stream,
 * a receiving UDP socket or a poll handle returned by the poller (uv.c's
 * ready hook), a timer falling due (uvr_wake_due_timers, before the timer
 * callbacks of a pass run), uv_async_send from any thread. uv_close ends the
 * task (uv.c).
 *
 * A start call the program makes with a callback it read back from the
 * handle (handle->timer_cb is our trampoline) keeps the callback it had.
 */
#include "uvr.h"

#include <string.h>
#include <sys/epoll.h>

typedef void (*uvr_fn)(void);

/* The entry for a start of @h with @cb (trampoline @tramp); a new task is
 * named "@what @0x<cb>". *@old receives the callback to restore if the real
 * call fails. */
static struct uvr_ent *start(void *h, int kind, uvr_fn cb, uvr_fn tramp, const char *what,
                             int *fresh, uvr_fn *old)
{
    *fresh = 0;
    *old = NULL;
    if (cb == tramp)
        return uvr_find(h);
    struct uvr_ent *e = uvr_claim(h, kind, fresh);
    if (!e)
        return NULL;
    *old = e->cb;
    e->cb = cb;
    if (*fresh)
        fr_spawn(e->task, uvr_current, uvr_label(what, (const void *)cb));
    return e;
}

static void started(struct uvr_ent *e, int rc, int fresh, uvr_fn old, const char *call,
                    const void *ret)
{
    if (!e)
        return;
    if (rc == 0) {
        e->armed = 1;
        fr_await_external(e->task, uvr_from(call, ret));
    } else if (fresh) {
        uint64_t task = e->task;
        uvr_remove(e);
        fr_drop(task);
    } else if (old) {
        e->cb = old;
    }
}

static void stopped(const void *h, int kind, const char *call, const void *ret)
{
    struct uvr_ent *e = uvr_find(h);
    if (!e || e->kind != kind || !e->armed)
        return;
    e->armed = 0;
    uvr_fd_disarm(e);
    if (call)
        fr_mark(e->task, uvr_from(call, ret));
    fr_idle(e->task);
}

/* After a callback: did libuv stop the handle itself? Then it is idle. */
static void settle(uv_handle_t *h, uint64_t task)
{
    if (!uvr_layout_ok)
        return;
    struct uvr_ent *e = uvr_find(h);
    if (!e || e->task != task || !e->armed || (h->flags & UVR_HANDLE_CLOSING))
        return;
    unsigned on = e->kind == UVR_READ ? UVR_HANDLE_READING : UVR_HANDLE_ACTIVE;
    if (!(h->flags & on)) {
        e->armed = 0;
        uvr_fd_disarm(e);
        fr_idle(task);
    }
}

#define TRAMP_BEGIN(h, cbtype)                                                                     \
    struct uvr_ent *e = uvr_find(h);                                                               \
    if (!e)                                                                                        \
        return; /* not reached: a trampoline is installed only with its entry */                   \
    uint64_t task = e->task;                                                                       \
    cbtype cb = (cbtype)e->cb;                                                                     \
    uint64_t prev = uvr_poll_begin(task)

#define TRAMP_END(h)                                                                               \
    uvr_poll_end(task, prev, FR_PENDING);                                                          \
    settle((uv_handle_t *)(h), task)

#define INTERNAL() uvr_internal(__builtin_return_address(0))
#define CALLER() __builtin_return_address(0)

/* ---- timers ------------------------------------------------------------- */

static void tramp_timer(uv_timer_t *h)
{
    uvr_wake_due_timers(h->loop);
    /* libuv took this timer off the heap before calling it, so the scan
     * above did not see it: it fell due in this pass unless woken already */
    struct uvr_ent *due = uvr_layout_ok ? uvr_find(h) : NULL;
    if (due && due->kind == UVR_TIMER && due->due != h->loop->time) {
        due->due = h->loop->time;
        fr_wake(due->task);
    }
    TRAMP_BEGIN(h, uv_timer_cb);
    cb(h);
    TRAMP_END(h);
}

int uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_timer_start, (h, cb, timeout, repeat));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_TIMER, (uvr_fn)cb, (uvr_fn)tramp_timer, "uv timer", &fresh,
                              &old);
    int rc = UVR_CALL(uv_timer_start, (h, e ? tramp_timer : cb, timeout, repeat));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_timer_start from", CALLER()));
    return rc;
}

int uv_timer_again(uv_timer_t *h)
{
    int rc = UVR_CALL(uv_timer_again, (h));
    if (rc == 0 && !INTERNAL() && h->repeat) {
        struct uvr_ent *e = uvr_find(h);
        if (e && e->kind == UVR_TIMER)
            UVR_KEEP_ERRNO(started(e, 0, 0, NULL, "uv_timer_again from", CALLER()));
    }
    return rc;
}

int uv_timer_stop(uv_timer_t *h)
{
    int rc = UVR_CALL(uv_timer_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_TIMER, NULL, NULL));
    return rc;
}

/* ---- streams ------------------------------------------------------------ */

static void tramp_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    TRAMP_BEGIN(h, uv_read_cb);
    cb(h, nread, buf);
    TRAMP_END(h);
}

static const char *stream_what(const uv_stream_t *s, int listen)
{
    switch (s->type) {
    case UV_TCP:
        return listen ? "uv tcp listen" : "uv tcp read";
    case UV_NAMED_PIPE:
        return listen ? "uv pipe listen" : "uv pipe read";
    case UV_TTY:
        return "uv tty read";
    default:
        return listen ? "uv stream listen" : "uv stream read";
    }
}

int uv_read_start(uv_stream_t *h, uv_alloc_cb alloc_cb, uv_read_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_read_start, (h, alloc_cb, cb));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_READ, (uvr_fn)cb, (uvr_fn)tramp_read, stream_what(h, 0),
                              &fresh, &old);
    int rc = UVR_CALL(uv_read_start, (h, alloc_cb, e ? tramp_read : cb));
    UVR_KEEP_ERRNO({
        started(e, rc, fresh, old, "uv_read_start from", CALLER());
        if (e && rc == 0 && uvr_layout_ok)
            uvr_fd_arm(e, h->io_watcher.fd, EPOLLIN | EPOLLERR | EPOLLHUP);
    });
    return rc;
}

int uv_read_stop(uv_stream_t *h)
{
    int rc = UVR_CALL(uv_read_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_READ, "uv_read_stop from", CALLER()));
    return rc;
}

static void tramp_connection(uv_stream_t *h, int status)
{
    TRAMP_BEGIN(h, uv_connection_cb);
    cb(h, status);
    TRAMP_END(h);
}

/* A listener is not woken by readiness: with several loops accepting on
 * one socket, the poller returns it to loops whose accept then finds
 * nothing, and no callback follows. Each accepting callback is a poll. */
int uv_listen(uv_stream_t *h, int backlog, uv_connection_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_listen, (h, backlog, cb));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_LISTEN, (uvr_fn)cb, (uvr_fn)tramp_connection,
                              stream_what(h, 1), &fresh, &old);
    int rc = UVR_CALL(uv_listen, (h, backlog, e ? tramp_connection : cb));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_listen from", CALLER()));
    return rc;
}

/* ---- udp ---------------------------------------------------------------- */

static void tramp_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                           const struct sockaddr *addr, unsigned flags)
{
    TRAMP_BEGIN(h, uv_udp_recv_cb);
    cb(h, nread, buf, addr, flags);
    uvr_poll_end(task, prev, FR_PENDING);
}

int uv_udp_recv_start(uv_udp_t *h, uv_alloc_cb alloc_cb, uv_udp_recv_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_udp_recv_start, (h, alloc_cb, cb));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_UDP, (uvr_fn)cb, (uvr_fn)tramp_udp_recv, "uv udp recv",
                              &fresh, &old);
    int rc = UVR_CALL(uv_udp_recv_start, (h, alloc_cb, e ? tramp_udp_recv : cb));
    UVR_KEEP_ERRNO({
        started(e, rc, fresh, old, "uv_udp_recv_start from", CALLER());
        if (e && rc == 0 && uvr_layout_ok)
            uvr_fd_arm(e, h->io_watcher.fd, EPOLLIN);
    });
    return rc;
}

int uv_udp_recv_stop(uv_udp_t *h)
{
    int rc = UVR_CALL(uv_udp_recv_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_UDP, "uv_udp_recv_stop from", CALLER()));
    return rc;
}

/* ---- poll --------------------------------------------------------------- */

static void tramp_poll(uv_poll_t *h, int status, int events)
{
    TRAMP_BEGIN(h, uv_poll_cb);
    cb(h, status, events);
    TRAMP_END(h);
}

int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_poll_start, (h, events, cb));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_POLL, (uvr_fn)cb, (uvr_fn)tramp_poll, "uv poll", &fresh,
                              &old);
    int rc = UVR_CALL(uv_poll_start, (h, events, e ? tramp_poll : cb));
    UVR_KEEP_ERRNO({
        started(e, rc, fresh, old, "uv_poll_start from", CALLER());
        if (e && rc == 0 && uvr_layout_ok) {
            uint32_t mask = EPOLLERR | EPOLLHUP;
            mask |= events & UV_READABLE ? EPOLLIN : 0;
            mask |= events & UV_WRITABLE ? EPOLLOUT : 0;
            mask |= events & UV_DISCONNECT ? EPOLLRDHUP : 0;
            mask |= events & UV_PRIORITIZED ? EPOLLPRI : 0;
            uvr_fd_arm(e, h->io_watcher.fd, mask);
        }
    });
    return rc;
}

int uv_poll_stop(uv_poll_t *h)
{
    int rc = UVR_CALL(uv_poll_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_POLL, NULL, NULL));
    return rc;
}

/* ---- signals ------------------------------------------------------------ */

static void tramp_signal(uv_signal_t *h, int signum)
{
    TRAMP_BEGIN(h, uv_signal_cb);
    cb(h, signum);
    TRAMP_END(h);
}

static int signal_start(uv_signal_t *h, uv_signal_cb cb, int signum, int oneshot, const void *ret)
{
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_SIGNAL, (uvr_fn)cb, (uvr_fn)tramp_signal, "uv signal", &fresh,
                              &old);
    uv_signal_cb pass = e ? tramp_signal : cb;
    int rc = oneshot ? UVR_CALL(uv_signal_start_oneshot, (h, pass, signum))
                     : UVR_CALL(uv_signal_start, (h, pass, signum));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old,
                           oneshot ? "uv_signal_start_oneshot from" : "uv_signal_start from", ret));
    return rc;
}

int uv_signal_start(uv_signal_t *h, uv_signal_cb cb, int signum)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_signal_start, (h, cb, signum));
    return signal_start(h, cb, signum, 0, CALLER());
}

int uv_signal_start_oneshot(uv_signal_t *h, uv_signal_cb cb, int signum)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_signal_start_oneshot, (h, cb, signum));
    return signal_start(h, cb, signum, 1, CALLER());
}

int uv_signal_stop(uv_signal_t *h)
{
    int rc = UVR_CALL(uv_signal_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_SIGNAL, NULL, NULL));
    return rc;
}

/* ---- async -------------------------------------------------------------- */

static void tramp_async(uv_async_t *h)
{
    TRAMP_BEGIN(h, uv_async_cb);
    cb(h);
    uvr_poll_end(task, prev, FR_PENDING);
}

/* An async handle waits for nothing until someone sends to it: idle from
 * init, woken by each uv_async_send (from any thread). */
int uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_async_init, (loop, h, cb));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_ASYNC, (uvr_fn)cb, (uvr_fn)tramp_async, "uv async", &fresh,
                              &old);
    int rc = UVR_CALL(uv_async_init, (loop, h, e ? tramp_async : cb));
    UVR_KEEP_ERRNO({
        if (e && rc == 0) {
            e->armed = 1;
            fr_idle(e->task);
        } else if (e) {
            started(e, rc, fresh, old, NULL, NULL);
        }
    });
    return rc;
}

int uv_async_send(uv_async_t *h)
{
    if (!INTERNAL()) {
        struct uvr_ent *e = uvr_find(h);
        if (e && e->kind == UVR_ASYNC)
            fr_wake(e->task);
    }
    return UVR_CALL(uv_async_send, (h));
}

/* ---- prepare, check, idle ----------------------------------------------- */

/* They run once per loop iteration; between iterations they wait for what
 * the loop waits for (external). */
#define PER_ITERATION(name, kind)                                                                  \
    static void tramp_##name(uv_##name##_t *h)                                                     \
    {                                                                                              \
        TRAMP_BEGIN(h, uv_##name##_cb);                                                            \
        cb(h);                                                                                     \
        uvr_poll_end(task, prev, FR_PENDING);                                                      \
    }                                                                                              \
    int uv_##name##_start(uv_##name##_t *h, uv_##name##_cb cb)                                     \
    {                                                                                              \
        if (INTERNAL() || !cb)                                                                     \
            return UVR_CALL(uv_##name##_start, (h, cb));                                             \
        int fresh;                                                                                 \
        uvr_fn old;                                                                                \
        struct uvr_ent *e = start(h, kind, (uvr_fn)cb, (uvr_fn)tramp_##name, "uv " #name, &fresh, \
                                  &old);                                                           \
        int rc = UVR_CALL(uv_##name##_start, (h, e ? tramp_##name : cb));                            \
        UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_" #name "_start from", CALLER()));           \
        return rc;                                                                                 \
    }                                                                                              \
    int uv_##name##_stop(uv_##name##_t *h)                                                         \
    {                                                                                              \
        int rc = UVR_CALL(uv_##name##_stop, (h));                                                    \
        if (!INTERNAL())                                                                           \
            UVR_KEEP_ERRNO(stopped(h, kind, NULL, NULL));                                          \
        return rc;                                                                                 \
    }

PER_ITERATION(prepare, UVR_PREPARE)
PER_ITERATION(check, UVR_CHECK)
PER_ITERATION(idle, UVR_IDLE)

/* ---- fs_event, fs_poll -------------------------------------------------- */

static void tramp_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    TRAMP_BEGIN(h, uv_fs_event_cb);
    cb(h, filename, events, status);
    TRAMP_END(h);
}

int uv_fs_event_start(uv_fs_event_t *h, uv_fs_event_cb cb, const char *path, unsigned flags)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_fs_event_start, (h, cb, path, flags));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_FS_EVENT, (uvr_fn)cb, (uvr_fn)tramp_fs_event, "uv fs_event",
                              &fresh, &old);
    int rc = UVR_CALL(uv_fs_event_start, (h, e ? tramp_fs_event : cb, path, flags));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_fs_event_start from", CALLER()));
    return rc;
}

int uv_fs_event_stop(uv_fs_event_t *h)
{
    int rc = UVR_CALL(uv_fs_event_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_FS_EVENT, NULL, NULL));
    return rc;
}

static void tramp_fs_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev_stat,
                          const uv_stat_t *curr)
{
    TRAMP_BEGIN(h, uv_fs_poll_cb);
    cb(h, status, prev_stat, curr);
    TRAMP_END(h);
}

int uv_fs_poll_start(uv_fs_poll_t *h, uv_fs_poll_cb cb, const char *path, unsigned interval)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_fs_poll_start, (h, cb, path, interval));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_FS_POLL, (uvr_fn)cb, (uvr_fn)tramp_fs_poll, "uv fs_poll",
                              &fresh, &old);
    int rc = UVR_CALL(uv_fs_poll_start, (h, e ? tramp_fs_poll : cb, path, interval));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_fs_poll_start from", CALLER()));
    return rc;
}

int uv_fs_poll_stop(uv_fs_poll_t *h)
{
    int rc = UVR_CALL(uv_fs_poll_stop, (h));
    if (!INTERNAL())
        UVR_KEEP_ERRNO(stopped(h, UVR_FS_POLL, NULL, NULL));
    return rc;
}

/* ---- processes ---------------------------------------------------------- */

static void tramp_exit(uv_process_t *h, int64_t exit_status, int term_signal)
{
    TRAMP_BEGIN(h, uv_exit_cb);
    cb(h, exit_status, term_signal);
    TRAMP_END(h);
}

/* A child is outside the process: its exit is external input. The options
 * are copied to pass the trampoline; the program's copy is not touched. */
int uv_spawn(uv_loop_t *loop, uv_process_t *h, const uv_process_options_t *options)
{
    if (INTERNAL() || !options || !options->exit_cb)
        return UVR_CALL(uv_spawn, (loop, h, options));
    int fresh;
    uvr_fn old;
    struct uvr_ent *e = start(h, UVR_PROCESS, (uvr_fn)options->exit_cb, (uvr_fn)tramp_exit,
                              "uv process", &fresh, &old);
    if (!e)
        return UVR_CALL(uv_spawn, (loop, h, options));
    uv_process_options_t copy = *options;
    copy.exit_cb = tramp_exit;
    int rc = UVR_CALL(uv_spawn, (loop, h, &copy));
    UVR_KEEP_ERRNO(started(e, rc, fresh, old, "uv_spawn from", CALLER()));
    return rc;
}
