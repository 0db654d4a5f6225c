/*
 * uv_requests.c - libuv requests as tasks.
 *
 * A request is a task from its submit call to its callback: spawned at the
 * submit (named after the callback: "uv work @0x<work_cb>", "uv fs read
 * @0x<cb>"), its parent the task whose callback submitted it. Its wait is
 * external when the outside world must act (a write, a connect, a shutdown,
 * a UDP send wait on a peer and the kernel) and internal when the process
 * itself must (the thread pool runs fs, DNS and random requests). The
 * callback is one poll that returns ready; the task is dropped after it. The
 * entry is removed before the callback runs, because callbacks reuse their
 * request for the next one.
 *
 * uv_queue_work is followed on both sides: its work callback is a poll on
 * the pool thread that runs it (named "uv-pool"), which ends pending and
 * wakes the task; the after-work callback is the last poll, on the loop.
 * fs, getaddrinfo, getnameinfo and random requests run on the pool through
 * libuv's internal uv__work_submit, which no preload can see: only their
 * submit and their callback are recorded. Requests without a callback (a
 * synchronous fs call, a write with a NULL callback) are not followed.
 */
#include "uvr.h"

typedef void (*uvr_fn)(void);

#define INTERNAL() uvr_internal(__builtin_return_address(0))
#define CALLER() __builtin_return_address(0)

/* A task for @req running @cb (and @cb2), or NULL if it cannot be followed. */
static struct uvr_ent *submit(void *req, uvr_fn cb, uvr_fn cb2, const char *what)
{
    int fresh;
    struct uvr_ent *e = uvr_claim(req, UVR_REQ, &fresh);
    if (!e)
        return NULL;
    if (!fresh) {
        /* reused while we still followed it: its callback never came */
        fr_drop(e->task);
        e->task = uvr_new_id();
    }
    e->cb = cb;
    e->cb2 = cb2;
    fr_spawn(e->task, uvr_current, uvr_label(what, (const void *)cb));
    return e;
}

/* The submit failed: no callback will come. */
static void failed(struct uvr_ent *e)
{
    uint64_t task = e->task;
    uvr_remove(e);
    fr_drop(task);
}

#define REQ_BEGIN(req, cbtype, field)                                                              \
    struct uvr_ent *e = uvr_find(req);                                                             \
    if (!e)                                                                                        \
        return; /* not reached: a trampoline is installed only with its entry */                   \
    uint64_t task = e->task;                                                                       \
    cbtype cb = (cbtype)e->field;                                                                  \
    uvr_remove(e);                                                                                 \
    uint64_t prev = uvr_poll_begin(task)

#define REQ_END()                                                                                  \
    uvr_poll_end(task, prev, FR_READY);                                                            \
    fr_drop(task)

/* ---- stream writes, connect, shutdown, udp send ------------------------- */

static void tramp_write(uv_write_t *req, int status)
{
    REQ_BEGIN(req, uv_write_cb, cb);
    cb(req, status);
    REQ_END();
}

static const char *write_what(const uv_stream_t *s)
{
    return s->type == UV_TCP ? "uv tcp write" : s->type == UV_NAMED_PIPE ? "uv pipe write"
           : s->type == UV_TTY ? "uv tty write" : "uv write";
}

int uv_write(uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[], unsigned nbufs,
             uv_write_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_write, (req, h, bufs, nbufs, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, write_what(h));
    if (e)
        fr_await_external(e->task, uvr_from("uv_write from", CALLER()));
    int rc = UVR_CALL(uv_write, (req, h, bufs, nbufs, e ? tramp_write : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

int uv_write2(uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[], unsigned nbufs,
              uv_stream_t *send_handle, uv_write_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_write2, (req, h, bufs, nbufs, send_handle, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, write_what(h));
    if (e)
        fr_await_external(e->task, uvr_from("uv_write2 from", CALLER()));
    int rc = UVR_CALL(uv_write2, (req, h, bufs, nbufs, send_handle, e ? tramp_write : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

static void tramp_connect(uv_connect_t *req, int status)
{
    REQ_BEGIN(req, uv_connect_cb, cb);
    cb(req, status);
    REQ_END();
}

int uv_tcp_connect(uv_connect_t *req, uv_tcp_t *h, const struct sockaddr *addr, uv_connect_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_tcp_connect, (req, h, addr, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv tcp connect");
    if (e)
        fr_await_external(e->task, uvr_from("uv_tcp_connect from", CALLER()));
    int rc = UVR_CALL(uv_tcp_connect, (req, h, addr, e ? tramp_connect : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

/* Always calls back, errors included. */
void uv_pipe_connect(uv_connect_t *req, uv_pipe_t *h, const char *name, uv_connect_cb cb)
{
    if (INTERNAL() || !cb) {
        UVR_CALL_VOID(uv_pipe_connect, (req, h, name, cb));
        return;
    }
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv pipe connect");
    if (e)
        fr_await_external(e->task, uvr_from("uv_pipe_connect from", CALLER()));
    UVR_CALL_VOID(uv_pipe_connect, (req, h, name, e ? tramp_connect : cb));
}

static void tramp_shutdown(uv_shutdown_t *req, int status)
{
    REQ_BEGIN(req, uv_shutdown_cb, cb);
    cb(req, status);
    REQ_END();
}

int uv_shutdown(uv_shutdown_t *req, uv_stream_t *h, uv_shutdown_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_shutdown, (req, h, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv shutdown");
    if (e)
        fr_await_external(e->task, uvr_from("uv_shutdown from", CALLER()));
    int rc = UVR_CALL(uv_shutdown, (req, h, e ? tramp_shutdown : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

static void tramp_udp_send(uv_udp_send_t *req, int status)
{
    REQ_BEGIN(req, uv_udp_send_cb, cb);
    cb(req, status);
    REQ_END();
}

int uv_udp_send(uv_udp_send_t *req, uv_udp_t *h, const uv_buf_t bufs[], unsigned nbufs,
                const struct sockaddr *addr, uv_udp_send_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_udp_send, (req, h, bufs, nbufs, addr, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv udp send");
    if (e)
        fr_await_external(e->task, uvr_from("uv_udp_send from", CALLER()));
    int rc = UVR_CALL(uv_udp_send, (req, h, bufs, nbufs, addr, e ? tramp_udp_send : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

/* ---- the thread pool: uv_queue_work ------------------------------------- */

static void tramp_work(uv_work_t *req)
{
    static __thread int named;
    struct uvr_ent *e = uvr_find(req);
    if (!e)
        return; /* not reached */
    if (!named) {
        named = 1;
        fr_thread_name(FR_BLOCKING_POOL_THREAD); /* "uv-pool" */
    }
    uint64_t task = e->task;
    uv_work_cb cb = (uv_work_cb)e->cb;
    uint64_t prev = uvr_poll_begin(task);
    cb(req);
    uvr_poll_end(task, prev, FR_PENDING);
    fr_wake(task); /* done: the loop must now run its after-work callback */
}

static void tramp_after_work(uv_work_t *req, int status)
{
    REQ_BEGIN(req, uv_after_work_cb, cb2);
    if (cb)
        cb(req, status);
    REQ_END();
}

/* Queued work is runnable from its submit (spawned, no wait): time in the
 * pool's queue is scheduling delay, and a pool kept busy starves it. The
 * submit's call site is a mark. */
int uv_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work_cb,
                  uv_after_work_cb after_work_cb)
{
    if (INTERNAL() || !work_cb)
        return UVR_CALL(uv_queue_work, (loop, req, work_cb, after_work_cb));
    struct uvr_ent *e = submit(req, (uvr_fn)work_cb, (uvr_fn)after_work_cb, "uv work");
    if (!e)
        return UVR_CALL(uv_queue_work, (loop, req, work_cb, after_work_cb));
    fr_mark(e->task, uvr_from("uv_queue_work from", CALLER()));
    int rc = UVR_CALL(uv_queue_work, (loop, req, tramp_work, tramp_after_work));
    if (rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

/* ---- fs, dns, random: pool work libuv submits internally ---------------- */

static void tramp_fs(uv_fs_t *req)
{
    REQ_BEGIN(req, uv_fs_cb, cb);
    cb(req);
    REQ_END();
}

#define FS(op, params, args)                                                                       \
    int uv_fs_##op params                                                                          \
    {                                                                                              \
        if (INTERNAL() || !cb)                                                                     \
            return UVR_CALL(uv_fs_##op, args);                                                      \
        struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv fs " #op);                           \
        if (e) {                                                                                   \
            fr_await(e->task, uvr_from("uv_fs_" #op " from", CALLER()));                          \
            cb = tramp_fs;                                                                         \
        }                                                                                          \
        int rc = UVR_CALL(uv_fs_##op, args);                                                        \
        if (e && rc < 0)                                                                           \
            UVR_KEEP_ERRNO(failed(e));                                                             \
        return rc;                                                                                 \
    }

FS(close, (uv_loop_t* loop, uv_fs_t* req, uv_file file, uv_fs_cb cb), (loop, req, file, cb))
FS(open, (uv_loop_t* loop, uv_fs_t* req, const char* path, int flags, int mode, uv_fs_cb cb), (loop, req, path, flags, mode, cb))
FS(read, (uv_loop_t* loop, uv_fs_t* req, uv_file file, const uv_buf_t bufs[], unsigned int nbufs, int64_t offset, uv_fs_cb cb), (loop, req, file, bufs, nbufs, offset, cb))
FS(unlink, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(write, (uv_loop_t* loop, uv_fs_t* req, uv_file file, const uv_buf_t bufs[], unsigned int nbufs, int64_t offset, uv_fs_cb cb), (loop, req, file, bufs, nbufs, offset, cb))
FS(copyfile, (uv_loop_t* loop, uv_fs_t* req, const char* path, const char* new_path, int flags, uv_fs_cb cb), (loop, req, path, new_path, flags, cb))
FS(mkdir, (uv_loop_t* loop, uv_fs_t* req, const char* path, int mode, uv_fs_cb cb), (loop, req, path, mode, cb))
FS(mkdtemp, (uv_loop_t* loop, uv_fs_t* req, const char* tpl, uv_fs_cb cb), (loop, req, tpl, cb))
FS(mkstemp, (uv_loop_t* loop, uv_fs_t* req, const char* tpl, uv_fs_cb cb), (loop, req, tpl, cb))
FS(rmdir, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(scandir, (uv_loop_t* loop, uv_fs_t* req, const char* path, int flags, uv_fs_cb cb), (loop, req, path, flags, cb))
FS(opendir, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(readdir, (uv_loop_t* loop, uv_fs_t* req, uv_dir_t* dir, uv_fs_cb cb), (loop, req, dir, cb))
FS(closedir, (uv_loop_t* loop, uv_fs_t* req, uv_dir_t* dir, uv_fs_cb cb), (loop, req, dir, cb))
FS(stat, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(fstat, (uv_loop_t* loop, uv_fs_t* req, uv_file file, uv_fs_cb cb), (loop, req, file, cb))
FS(rename, (uv_loop_t* loop, uv_fs_t* req, const char* path, const char* new_path, uv_fs_cb cb), (loop, req, path, new_path, cb))
FS(fsync, (uv_loop_t* loop, uv_fs_t* req, uv_file file, uv_fs_cb cb), (loop, req, file, cb))
FS(fdatasync, (uv_loop_t* loop, uv_fs_t* req, uv_file file, uv_fs_cb cb), (loop, req, file, cb))
FS(ftruncate, (uv_loop_t* loop, uv_fs_t* req, uv_file file, int64_t offset, uv_fs_cb cb), (loop, req, file, offset, cb))
FS(sendfile, (uv_loop_t* loop, uv_fs_t* req, uv_file out_fd, uv_file in_fd, int64_t in_offset, size_t length, uv_fs_cb cb), (loop, req, out_fd, in_fd, in_offset, length, cb))
FS(access, (uv_loop_t* loop, uv_fs_t* req, const char* path, int mode, uv_fs_cb cb), (loop, req, path, mode, cb))
FS(chmod, (uv_loop_t* loop, uv_fs_t* req, const char* path, int mode, uv_fs_cb cb), (loop, req, path, mode, cb))
FS(utime, (uv_loop_t* loop, uv_fs_t* req, const char* path, double atime, double mtime, uv_fs_cb cb), (loop, req, path, atime, mtime, cb))
FS(futime, (uv_loop_t* loop, uv_fs_t* req, uv_file file, double atime, double mtime, uv_fs_cb cb), (loop, req, file, atime, mtime, cb))
FS(lutime, (uv_loop_t* loop, uv_fs_t* req, const char* path, double atime, double mtime, uv_fs_cb cb), (loop, req, path, atime, mtime, cb))
FS(lstat, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(link, (uv_loop_t* loop, uv_fs_t* req, const char* path, const char* new_path, uv_fs_cb cb), (loop, req, path, new_path, cb))
FS(symlink, (uv_loop_t* loop, uv_fs_t* req, const char* path, const char* new_path, int flags, uv_fs_cb cb), (loop, req, path, new_path, flags, cb))
FS(readlink, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(realpath, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))
FS(fchmod, (uv_loop_t* loop, uv_fs_t* req, uv_file file, int mode, uv_fs_cb cb), (loop, req, file, mode, cb))
FS(chown, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_uid_t uid, uv_gid_t gid, uv_fs_cb cb), (loop, req, path, uid, gid, cb))
FS(fchown, (uv_loop_t* loop, uv_fs_t* req, uv_file file, uv_uid_t uid, uv_gid_t gid, uv_fs_cb cb), (loop, req, file, uid, gid, cb))
FS(lchown, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_uid_t uid, uv_gid_t gid, uv_fs_cb cb), (loop, req, path, uid, gid, cb))
FS(statfs, (uv_loop_t* loop, uv_fs_t* req, const char* path, uv_fs_cb cb), (loop, req, path, cb))

static void tramp_getaddrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    REQ_BEGIN(req, uv_getaddrinfo_cb, cb);
    cb(req, status, res);
    REQ_END();
}

int uv_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req, uv_getaddrinfo_cb cb, const char *node,
                   const char *service, const struct addrinfo *hints)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_getaddrinfo, (loop, req, cb, node, service, hints));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv getaddrinfo");
    if (e)
        fr_await(e->task, uvr_from("uv_getaddrinfo from", CALLER()));
    int rc = UVR_CALL(uv_getaddrinfo, (loop, req, e ? tramp_getaddrinfo : cb, node, service, hints));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

static void tramp_getnameinfo(uv_getnameinfo_t *req, int status, const char *host,
                              const char *service)
{
    REQ_BEGIN(req, uv_getnameinfo_cb, cb);
    cb(req, status, host, service);
    REQ_END();
}

int uv_getnameinfo(uv_loop_t *loop, uv_getnameinfo_t *req, uv_getnameinfo_cb cb,
                   const struct sockaddr *addr, int flags)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_getnameinfo, (loop, req, cb, addr, flags));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv getnameinfo");
    if (e)
        fr_await(e->task, uvr_from("uv_getnameinfo from", CALLER()));
    int rc = UVR_CALL(uv_getnameinfo, (loop, req, e ? tramp_getnameinfo : cb, addr, flags));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}

static void tramp_random(uv_random_t *req, int status, void *buf, size_t buflen)
{
    REQ_BEGIN(req, uv_random_cb, cb);
    cb(req, status, buf, buflen);
    REQ_END();
}

int uv_random(uv_loop_t *loop, uv_random_t *req, void *buf, size_t buflen, unsigned flags,
              uv_random_cb cb)
{
    if (INTERNAL() || !cb)
        return UVR_CALL(uv_random, (loop, req, buf, buflen, flags, cb));
    struct uvr_ent *e = submit(req, (uvr_fn)cb, NULL, "uv random");
    if (e)
        fr_await(e->task, uvr_from("uv_random from", CALLER()));
    int rc = UVR_CALL(uv_random, (loop, req, buf, buflen, flags, e ? tramp_random : cb));
    if (e && rc)
        UVR_KEEP_ERRNO(failed(e));
    return rc;
}
