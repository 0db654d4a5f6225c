/*
 * recorder/adapters/event.c - libflightrec-event.so: libevent 2.1's events as
 * flightrec tasks, with no change to the program (LD_PRELOAD or flightrec run).
 *
 * A struct event is a task (its address is the id). The wrappers below stand
 * in front of libevent's exported calls, record, and forward to the real ones
 * (resolved once with dlsym(RTLD_NEXT)); libevent itself is never linked.
 *
 *   event_assign / event_set / event_new     spawn "event read persist @0x<cb>"
 *                                             (+ idle: assigned is not added)
 *   event_add                                 await: external (socket, listener,
 *                                             tty, timer, signal) or, for a
 *                                             channel the process notifies
 *                                             itself on, internal (one-shot) or
 *                                             idle (persistent)
 *   event_del / _noblock / _block             idle
 *   event_active (any thread)                 wake
 *   the poller returning the fd (common.c)    wake
 *   each callback                             poll (trampoline)
 *   event_free, finalize, re-assign           drop
 *   event_base_once / event_once              a task that ends after one poll
 *   evconnlistener_new / _new_bind            its event is named by the program's callback
 *
 * Callbacks are wrapped: libevent is given a trampoline and, as argument, a
 * slot of a preallocated lock-free table keyed by the struct event pointer,
 * which holds the program's callback and argument. The callback path reads
 * the slot it is handed: no look-up, no lock, no allocation. The calls that
 * give the callback back (event_get_callback, event_get_callback_arg,
 * event_get_assignment) are wrapped to return the program's own.
 * docs/adapters.md lists every call wrapped and not, and what each costs.
 */
#include "common.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/event_compat.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(_EVENT_NUMERIC_VERSION) && !defined(EVENT__NUMERIC_VERSION)
#error "libevent 2.1 headers needed"
#endif

/*
 * Capacity of the event table (live struct events at once). A power of two.
 * Events beyond it run unrecorded (their callbacks are not wrapped). Each
 * slot is 88 bytes of reserved memory, touched only when used.
 */
#ifndef FRA_EVENT_SLOTS
#define FRA_EVENT_SLOTS (1u << 17)
#endif

typedef void cb_fn(evutil_socket_t, short, void *);

/* The callback and argument libevent holds (event_struct.h, the 2.1 layout;
 * libevent's own short names are in its private event-internal.h). */
#define EV_CB(ev) ((ev)->ev_evcallback.evcb_cb_union.evcb_callback)
#define EV_ARG(ev) ((ev)->ev_evcallback.evcb_arg)

/* The class of what an event waits on, decided once per open file. */
enum {
    CLS_NONE = 0,     /* timer or signal: the clock and the kernel are outside */
    CLS_EXTERNAL = 1, /* a socket to a peer, a listener, a tty, a file, stdin */
    CLS_CHANNEL = 2,  /* a pipe, eventfd or socketpair the process notifies itself on */
};

/*
 * One event. key: the struct event's address, 0 empty, 1 a freed slot.
 * Fields other than key are written by the thread assigning the event before
 * libevent can run it (libevent's own locking orders them for other threads).
 */
struct slot {
    _Atomic uintptr_t key;
    cb_fn *cb;                /* the program's callback and argument */
    void *arg;
    uint64_t task;            /* the event's address */
    uint64_t ino, dev;        /* the open file behind fd when assigned */
    event_finalize_callback_fn fin;
    const void *owner;        /* the evconnlistener holding this event, or NULL */
    _Atomic uint32_t woken;   /* a wake was recorded since the last callback */
    uint32_t touch;           /* event_add/event_del/re-assign calls, for the trampoline */
    uint32_t gen;             /* instance counter: bumped at each drop */
    int fd;
    short flags;
    uint8_t cls;
    uint8_t once;             /* event_base_once: ends after its callback */
};
_Static_assert(sizeof(struct slot) == 88, "docs/adapters.md gives the table's size");

/* Per descriptor: the events waiting to read and to write on it, and the
 * class of the open file last seen on it. */
struct fdent {
    _Atomic(struct slot *) rd, wr;
    _Atomic uint64_t ino, dev;
    _Atomic uint8_t cls;
};

/* NULL: nothing is wrapped (no memory, not libevent 2.1, or libevent not
 * loaded yet); set once (ensure_slots) */
static struct slot *slot_table;
static struct fdent *fdtab;
static unsigned nfd;
static _Atomic unsigned long untracked; /* events the full table could not take */

/* The callback being run on this thread, so that a free or re-assign of the
 * event inside its own callback ends the poll before it drops the task. */
struct running {
    struct slot *s;
    uint64_t task;
    int ended;
};
static __thread struct running *cur __attribute__((tls_model("initial-exec")));

/* A call that assigns an event inside libevent is in progress on this
 * thread (event_base_once, evconnlistener_new): the first event_assign it
 * makes names the task by the program's callback, not libevent's own
 * (event_once_cb, listener_read_cb). */
struct hint {
    const void *user_cb; /* NULL: no hint */
    const char *prefix;  /* the name's words; NULL: from the event's flags */
    int once;            /* event_base_once: the task ends after one callback */
    struct slot *s;      /* the slot the hinted assignment got */
};
static __thread struct hint once_hint __attribute__((tls_model("initial-exec")));

/* ---- the real calls ------------------------------------------------------ */

static int (*real_assign)(struct event *, struct event_base *, evutil_socket_t, short, cb_fn *,
                          void *);
static void (*real_set)(struct event *, evutil_socket_t, short, cb_fn *, void *);
static struct event *(*real_new)(struct event_base *, evutil_socket_t, short, cb_fn *, void *);
static void (*real_free)(struct event *);
static int (*real_add)(struct event *, const struct timeval *);
static int (*real_del)(struct event *);
static int (*real_del_noblock)(struct event *);
static int (*real_del_block)(struct event *);
static void (*real_active)(struct event *, int, short);
static int (*real_base_once)(struct event_base *, evutil_socket_t, short, cb_fn *, void *,
                             const struct timeval *);
static int (*real_once)(evutil_socket_t, short, cb_fn *, void *, const struct timeval *);
static int (*real_finalize)(unsigned, struct event *, event_finalize_callback_fn);
static int (*real_free_finalize)(unsigned, struct event *, event_finalize_callback_fn);
static event_callback_fn (*real_get_callback)(const struct event *);
static void *(*real_get_callback_arg)(const struct event *);
static void (*real_get_assignment)(const struct event *, struct event_base **, evutil_socket_t *,
                                   short *, event_callback_fn *, void **);
static void *(*real_self_cbarg)(void);
static void (*real_bev_free)(struct bufferevent *);
static ev_uint32_t (*real_version_number)(void);
static void (*real_listener_free)(struct evconnlistener *);
static evutil_socket_t (*real_listener_get_fd)(struct evconnlistener *);
static struct evconnlistener *(*real_listener_new)(struct event_base *, evconnlistener_cb, void *,
                                                   unsigned, int, evutil_socket_t);
static struct evconnlistener *(*real_listener_new_bind)(struct event_base *, evconnlistener_cb,
                                                        void *, unsigned, int,
                                                        const struct sockaddr *, int);

#define RESOLVE(var, name)                                                                         \
    do {                                                                                           \
        if (!(var))                                                                                \
            *(void **)&(var) = fra_real(name);                                                     \
    } while (0)

static void resolve_all(void)
{
    RESOLVE(real_assign, "event_assign");
    RESOLVE(real_set, "event_set");
    RESOLVE(real_new, "event_new");
    RESOLVE(real_free, "event_free");
    RESOLVE(real_add, "event_add");
    RESOLVE(real_del, "event_del");
    RESOLVE(real_del_noblock, "event_del_noblock");
    RESOLVE(real_del_block, "event_del_block");
    RESOLVE(real_active, "event_active");
    RESOLVE(real_base_once, "event_base_once");
    RESOLVE(real_once, "event_once");
    RESOLVE(real_finalize, "event_finalize");
    RESOLVE(real_free_finalize, "event_free_finalize");
    RESOLVE(real_get_callback, "event_get_callback");
    RESOLVE(real_get_callback_arg, "event_get_callback_arg");
    RESOLVE(real_get_assignment, "event_get_assignment");
    RESOLVE(real_self_cbarg, "event_self_cbarg");
    RESOLVE(real_bev_free, "bufferevent_free");
    RESOLVE(real_version_number, "event_get_version_number");
    RESOLVE(real_listener_new, "evconnlistener_new");
    RESOLVE(real_listener_free, "evconnlistener_free");
    RESOLVE(real_listener_get_fd, "evconnlistener_get_fd");
    RESOLVE(real_listener_new_bind, "evconnlistener_new_bind");
}

static void ensure_slots(void);

/* Calls that arrive before the constructor ran (another library's
 * constructor using libevent), or from a libevent loaded after it (a module
 * that dlopen()ed it with RTLD_LOCAL), resolve on the spot; the slot table
 * is then made if it could not be at start. */
#define REAL(var, name)                                                                            \
    ((var) ? (var) : (resolve_all(), ensure_slots(), (var)))

/* ---- task names ---------------------------------------------------------- */

/* "event read persist": kind (timer, read, write, read|write, signal),
 * persist, once. Built once in the constructor; they live forever, as
 * fra_label wants of its prefix. */
enum { K_TIMER, K_READ, K_WRITE, K_RW, K_SIGNAL };
static char names[5 * 4][40];

static int kind_of(short flags)
{
    if (flags & EV_SIGNAL)
        return K_SIGNAL;
    int r = (flags & (EV_READ | EV_CLOSED)) != 0, w = (flags & EV_WRITE) != 0;
    return r && w ? K_RW : r ? K_READ : w ? K_WRITE : K_TIMER;
}

static const char *name_of(short flags, int once)
{
    return names[kind_of(flags) * 4 + ((flags & EV_PERSIST) ? 1 : 0) + (once ? 2 : 0)];
}

static void build_names(void)
{
    static const char *const kinds[] = {"timer", "read", "write", "read|write", "signal"};
    for (int k = 0; k < 5; k++)
        for (int v = 0; v < 4; v++) {
            char *p = names[k * 4 + v];
            size_t n = 0, len = sizeof(names[0]);
            const char *parts[] = {"event ", (v & 2) ? "once " : "", kinds[k],
                                   (v & 1) ? " persist" : ""};
            for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                size_t m = strlen(parts[i]);
                if (n + m >= len)
                    m = len - 1 - n;
                memcpy(p + n, parts[i], m);
                n += m;
            }
            p[n] = '\0';
        }
}

/* ---- the event table ----------------------------------------------------- */

#define EMPTY ((uintptr_t)0)
#define FREED ((uintptr_t)1)

static inline size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    return (size_t)x & (FRA_EVENT_SLOTS - 1);
}

/* The slot of @ev, or NULL. Linear probing ends at an empty key. */
static struct slot *lookup(const struct event *ev)
{
    struct slot *slots = __atomic_load_n(&slot_table, __ATOMIC_ACQUIRE);
    if (!slots)
        return NULL;
    uintptr_t k = (uintptr_t)ev;
    size_t i = hash_ptr(ev);
    for (size_t n = 0; n < FRA_EVENT_SLOTS; n++, i = (i + 1) & (FRA_EVENT_SLOTS - 1)) {
        uintptr_t v = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        if (v == k)
            return &slots[i];
        if (v == EMPTY)
            return NULL;
    }
    return NULL;
}

/* A slot for @ev, new (*fresh = 1) or its existing one; NULL when full. One
 * event is assigned by one thread at a time, so only different keys race for
 * a free slot, and the compare-and-swap settles that. */
static struct slot *insert(const struct event *ev, int *fresh)
{
    struct slot *s = lookup(ev);
    struct slot *slots = __atomic_load_n(&slot_table, __ATOMIC_ACQUIRE);
    *fresh = 0;
    if (s || !slots)
        return s;
    uintptr_t k = (uintptr_t)ev;
    size_t i = hash_ptr(ev);
    for (size_t n = 0; n < FRA_EVENT_SLOTS; n++, i = (i + 1) & (FRA_EVENT_SLOTS - 1)) {
        uintptr_t v = atomic_load_explicit(&slots[i].key, memory_order_relaxed);
        if ((v == EMPTY || v == FREED) &&
            atomic_compare_exchange_strong_explicit(&slots[i].key, &v, k, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            *fresh = 1;
            return &slots[i];
        }
    }
    atomic_fetch_add_explicit(&untracked, 1, memory_order_relaxed);
    return NULL;
}

/* ---- what a descriptor is ------------------------------------------------ */

/*
 * The class of the open file on @fd (CLS_EXTERNAL or CLS_CHANNEL), from one
 * fstat per call and, when the file is new on this descriptor, getsockopt or
 * readlink: a listener, a TCP/UDP/unix socket to another process, a tty, a
 * file, and descriptors 0-2 are external; a pipe, an eventfd, and a unix
 * socket whose peer is this process (a socketpair) are a channel the process
 * notifies itself on. @ino/@dev receive the file's identity (0 on error).
 */
static uint8_t classify(int fd, uint64_t *ino, uint64_t *dev)
{
    struct stat st;
    *ino = *dev = 0;
    if (fd < 0 || fstat(fd, &st) != 0)
        return CLS_EXTERNAL;
    *ino = (uint64_t)st.st_ino;
    *dev = (uint64_t)st.st_dev;
    struct fdent *e = (unsigned)fd < nfd ? &fdtab[fd] : NULL;
    if (e && atomic_load_explicit(&e->ino, memory_order_relaxed) == *ino &&
        atomic_load_explicit(&e->dev, memory_order_relaxed) == *dev &&
        atomic_load_explicit(&e->cls, memory_order_relaxed) != CLS_NONE)
        return atomic_load_explicit(&e->cls, memory_order_relaxed);

    uint8_t cls = CLS_EXTERNAL;
    if (fd <= 2) {
        cls = CLS_EXTERNAL;
    } else if (S_ISFIFO(st.st_mode)) {
        cls = CLS_CHANNEL;
    } else if (S_ISSOCK(st.st_mode)) {
        int v = 0;
        socklen_t len = sizeof(v);
        int domain = 0;
        socklen_t dlen = sizeof(domain);
        struct ucred cr;
        socklen_t clen = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v)
            cls = CLS_EXTERNAL;
        else if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
                 domain == AF_UNIX &&
                 getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &clen) == 0 && cr.pid == getpid())
            cls = CLS_CHANNEL;
    } else if ((st.st_mode & S_IFMT) == 0) {
        /* anon_inode: eventfd is a channel; signalfd, timerfd, inotify are not */
        char path[32], link[64];
        memcpy(path, "/proc/self/fd/", 14);
        size_t n = 14;
        char digits[12];
        int d = 0;
        for (unsigned u = (unsigned)fd; d == 0 || u; u /= 10)
            digits[d++] = (char)('0' + u % 10);
        while (d)
            path[n++] = digits[--d];
        path[n] = '\0';
        ssize_t r = readlink(path, link, sizeof(link) - 1);
        if (r > 0) {
            link[r] = '\0';
            if (strstr(link, "[eventfd]"))
                cls = CLS_CHANNEL;
        }
    }
    if (e) {
        atomic_store_explicit(&e->ino, *ino, memory_order_relaxed);
        atomic_store_explicit(&e->dev, *dev, memory_order_relaxed);
        atomic_store_explicit(&e->cls, cls, memory_order_relaxed);
    }
    return cls;
}

/* The descriptor's read and write roles point to @s while it is added. */
static void roles_set(struct slot *s)
{
    if (s->fd < 0 || (unsigned)s->fd >= nfd || (s->flags & EV_SIGNAL))
        return;
    struct fdent *e = &fdtab[s->fd];
    if (s->flags & (EV_READ | EV_CLOSED))
        atomic_store_explicit(&e->rd, s, memory_order_relaxed);
    if (s->flags & EV_WRITE)
        atomic_store_explicit(&e->wr, s, memory_order_relaxed);
}

static void roles_clear(struct slot *s)
{
    if (s->fd < 0 || (unsigned)s->fd >= nfd || (s->flags & EV_SIGNAL))
        return;
    struct fdent *e = &fdtab[s->fd];
    struct slot *x = s;
    atomic_compare_exchange_strong_explicit(&e->rd, &x, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
    x = s;
    atomic_compare_exchange_strong_explicit(&e->wr, &x, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
}

/* A wake of @s for readiness the poller returned. */
static inline void ready_wake(struct slot *s)
{
    atomic_store_explicit(&s->woken, 1, memory_order_relaxed);
    fr_wake(s->task);
}

/* The poller (common.c) says @fd is ready: wake whoever waits on it. */
static void on_ready(int fd, uint32_t events)
{
    if ((unsigned)fd >= nfd)
        return;
    struct fdent *e = &fdtab[fd];
    struct slot *r = NULL, *w = NULL;
    if (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        r = atomic_load_explicit(&e->rd, memory_order_relaxed);
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        w = atomic_load_explicit(&e->wr, memory_order_relaxed);
    if (r)
        ready_wake(r);
    if (w && w != r)
        ready_wake(w);
}

/* ---- task life ----------------------------------------------------------- */

/* End @s's task: its poll first if it is the one running on this thread
 * (an event freed or re-assigned inside its own callback), then the drop.
 * With @release the slot is given back. */
static void finish(struct slot *s, int release)
{
    uint64_t task = s->task;
    if (cur && cur->s == s && cur->task == task && !cur->ended) {
        fr_poll_end(task, FR_READY);
        cur->ended = 1;
    }
    fr_drop(task);
    roles_clear(s);
    s->gen++;
    s->touch++;
    if (release)
        atomic_store_explicit(&s->key, FREED, memory_order_release);
}

/* Record the wait that event_add (or event_base_once) starts. */
static void record_add(struct slot *s, const char *label)
{
    s->touch++;
    atomic_store_explicit(&s->woken, 0, memory_order_relaxed);
    roles_set(s);
    if (s->cls == CLS_CHANNEL) {
        /* a standing channel waits like an async handle nobody sends to yet;
         * a one-shot wait on one is a wait on the program itself */
        if (s->flags & EV_PERSIST)
            fr_idle(s->task);
        else
            fr_await(s->task, label);
    } else {
        fr_await_external(s->task, label);
    }
}

static void trampoline(evutil_socket_t fd, short what, void *p);
static void fin_trampoline(struct event *ev, void *p);

/* @ev's slot if libevent holds the trampoline for it and its task is live
 * (not ended by event_free & co. just before libevent's own event_del). */
static inline struct slot *live_slot(const struct event *ev)
{
    if (!ev || EV_CB(ev) != trampoline)
        return NULL;
    struct slot *s = EV_ARG(ev);
    return atomic_load_explicit(&s->key, memory_order_relaxed) == (uintptr_t)ev ? s : NULL;
}

/*
 * Prepare @ev's slot for an assignment of (@fd, @flags, @cb, @arg): a new
 * task, or the same task when the event is re-assigned to the same callback,
 * argument and open file (a loop changing what it waits for: read, then
 * write). Return: the slot to pass libevent with the trampoline, or NULL to
 * pass the program's own callback (table full, or not initialised).
 */
static struct slot *prepare(struct event *ev, evutil_socket_t fd, short flags, cb_fn *cb,
                            void *arg)
{
    if (cb == trampoline)
        return NULL; /* already ours (a nested call) */
    int fresh;
    struct slot *s = insert(ev, &fresh);
    if (!s)
        return NULL;
    void *self = real_self_cbarg ? real_self_cbarg() : NULL;
    if (self && arg == self)
        arg = ev;
    uint64_t ino = 0, dev = 0;
    uint8_t cls = CLS_NONE;
    if (!(flags & EV_SIGNAL) && fd >= 0 && (flags & (EV_READ | EV_WRITE | EV_CLOSED)))
        cls = classify(fd, &ino, &dev);
    int hinted = once_hint.user_cb != NULL && once_hint.s == NULL;
    const void *name_cb = hinted ? once_hint.user_cb : (const void *)cb;
    int once = hinted && once_hint.once;
    const char *prefix = hinted && once_hint.prefix ? once_hint.prefix : name_of(flags, once);
    if (!fresh) {
        if (s->cb == cb && s->arg == arg && s->fd == fd && s->ino == ino && s->dev == dev &&
            s->cls == cls && kind_of(s->flags) != K_SIGNAL && kind_of(flags) != K_SIGNAL &&
            (kind_of(s->flags) == K_TIMER) == (kind_of(flags) == K_TIMER) && !hinted &&
            !s->once) {
            roles_clear(s);
            s->flags = flags;
            s->touch++;
            return s;
        }
        finish(s, 0);
    }
    s->cb = cb;
    s->arg = arg;
    s->task = (uint64_t)(uintptr_t)ev;
    s->fd = fd;
    s->flags = flags;
    s->cls = cls;
    s->ino = ino;
    s->dev = dev;
    s->once = (uint8_t)once;
    s->fin = NULL;
    s->owner = NULL;
    atomic_store_explicit(&s->woken, 0, memory_order_relaxed);
    fr_spawn(s->task, cur ? cur->task : 0, fra_label(prefix, name_cb));
    fr_idle(s->task); /* assigned, not yet added */
    if (hinted)
        once_hint.s = s;
    return s;
}

/* libevent has the program's callback for @ev (the table was full, or the
 * assignment went past the wrapper): forget the slot @s prepared for it. */
static void unprepare(struct slot *s)
{
    finish(s, 1);
}

/*
 * The callback libevent runs for every wrapped event: a poll of its task.
 * Before the poll, a wake unless the poller or event_active already recorded
 * one (a timer falling due and a signal are seen only here). After it, the
 * end of the poll says what the event waits for next; a non-persistent event
 * that is neither re-added nor deleted by its callback waits for the program
 * to add it again (docs/adapters.md, "A read event not re-added").
 */
static void trampoline(evutil_socket_t fd, short what, void *p)
{
    struct slot *s = p;
    cb_fn *cb = s->cb;
    void *arg = s->arg;
    uint64_t task = s->task;
    uint32_t gen = s->gen, touch = s->touch;
    short flags = s->flags;
    /* A load and a plain store, not an exchange (a locked instruction per
     * callback): an event_active from another thread between the two is
     * recorded there, and only costs an extra wake at the next callback. */
    if (atomic_load_explicit(&s->woken, memory_order_relaxed))
        atomic_store_explicit(&s->woken, 0, memory_order_relaxed);
    else
        fr_wake(task);
    struct running me = {s, task, 0}, *prev = cur;
    cur = &me;
    fr_poll_begin(task);
    cb(fd, what, arg);
    cur = prev;
    if (me.ended)
        return;
    if (s->once && s->gen == gen) {
        /* libevent's event_once_cb freed the event after the callback */
        fr_poll_end(task, FR_READY);
        finish(s, 1);
        return;
    }
    if (!(flags & EV_PERSIST) && s->gen == gen && s->touch == touch) {
        if (kind_of(flags) == K_TIMER || kind_of(flags) == K_SIGNAL)
            fr_idle(task); /* a one-shot timer that went off is done until added again */
        else
            fr_await(task, fra_label("not re-added after its callback", (const void *)cb));
    }
    fr_poll_end(task, FR_PENDING);
}

/* The finalizer of event_finalize/event_free_finalize, given the program's
 * argument as it would be without the adapter. */
static void fin_trampoline(struct event *ev, void *p)
{
    struct slot *s = p;
    event_finalize_callback_fn fin = s->fin;
    void *arg = s->arg;
    finish(s, 1);
    if (fin)
        fin(ev, arg);
}

/* ---- the wrapped calls --------------------------------------------------- */

int event_assign(struct event *ev, struct event_base *base, evutil_socket_t fd, short events,
                 cb_fn *callback, void *arg)
{
    if (!REAL(real_assign, "event_assign")) {
        errno = ENOSYS;
        return -1;
    }
    int saved = errno;
    struct slot *s = ev ? prepare(ev, fd, events, callback, arg) : NULL;
    errno = saved;
    if (!s)
        return real_assign(ev, base, fd, events, callback, arg);
    int r = real_assign(ev, base, fd, events, trampoline, s);
    if (r != 0) {
        saved = errno;
        unprepare(s);
        errno = saved;
    }
    return r;
}

/* Forwarded as is: in libevent 2.1 event_set and event_new assign through
 * the exported event_assign, so the wrapper above wraps them. Should a build
 * not do so, the event is assigned again here with the trampoline. */
void event_set(struct event *ev, evutil_socket_t fd, short events, cb_fn *callback, void *arg)
{
    if (!REAL(real_set, "event_set"))
        return;
    real_set(ev, fd, events, callback, arg);
    if (ev && EV_CB(ev) == callback && callback != trampoline) {
        int saved = errno;
        struct slot *s = prepare(ev, fd, events, callback, arg);
        if (s)
            real_set(ev, fd, events, trampoline, s);
        errno = saved;
    }
}

struct event *event_new(struct event_base *base, evutil_socket_t fd, short events,
                        cb_fn *callback, void *arg)
{
    if (!REAL(real_new, "event_new")) {
        errno = ENOSYS;
        return NULL;
    }
    struct event *ev = real_new(base, fd, events, callback, arg);
    if (ev && EV_CB(ev) == callback && callback != trampoline && real_assign) {
        int saved = errno;
        struct slot *s = prepare(ev, fd, events, callback, arg);
        if (s && real_assign(ev, base, fd, events, trampoline, s) != 0)
            unprepare(s);
        errno = saved;
    }
    return ev;
}

void event_free(struct event *ev)
{
    if (!REAL(real_free, "event_free"))
        return;
    int saved = errno;
    struct slot *s = ev ? lookup(ev) : NULL;
    if (s)
        finish(s, 1);
    errno = saved;
    real_free(ev);
}

int event_add(struct event *ev, const struct timeval *tv)
{
    const void *caller = fra_caller();
    if (!REAL(real_add, "event_add")) {
        errno = ENOSYS;
        return -1;
    }
    struct slot *s = live_slot(ev);
    if (s) {
        int saved = errno;
        record_add(s, fra_label("event_add from", caller));
        errno = saved;
        int r = real_add(ev, tv);
        if (r != 0) {
            saved = errno;
            roles_clear(s);
            fr_idle(s->task);
            errno = saved;
        }
        return r;
    }
    return real_add(ev, tv);
}

static int del_common(struct event *ev, int (*real)(struct event *))
{
    struct slot *s = live_slot(ev);
    if (s) {
        s->touch++;
        roles_clear(s);
        fr_idle(s->task);
    }
    return real(ev);
}

int event_del(struct event *ev)
{
    if (!REAL(real_del, "event_del")) {
        errno = ENOSYS;
        return -1;
    }
    return del_common(ev, real_del);
}

int event_del_noblock(struct event *ev)
{
    if (!REAL(real_del_noblock, "event_del_noblock")) {
        errno = ENOSYS;
        return -1;
    }
    return del_common(ev, real_del_noblock);
}

int event_del_block(struct event *ev)
{
    if (!REAL(real_del_block, "event_del_block")) {
        errno = ENOSYS;
        return -1;
    }
    return del_common(ev, real_del_block);
}

void event_active(struct event *ev, int res, short ncalls)
{
    if (!REAL(real_active, "event_active"))
        return;
    struct slot *s = live_slot(ev);
    if (s) {
        atomic_store_explicit(&s->woken, 1, memory_order_relaxed);
        fr_wake(s->task);
    }
    real_active(ev, res, ncalls);
}

/* event_base_once and event_once: libevent allocates the event and assigns
 * it through event_assign with its own event_once_cb; the hint makes that
 * task carry the program's callback, and the wait starts here. */
static int once_common(struct event_base *base, evutil_socket_t fd, short events, cb_fn *cb,
                       void *arg, const struct timeval *tv, const void *caller, int with_base)
{
    struct hint saved_hint = once_hint;
    once_hint = (struct hint){(const void *)cb, NULL, 1, NULL};
    int r = with_base ? real_base_once(base, fd, events, cb, arg, tv)
                      : real_once(fd, events, cb, arg, tv);
    int saved = errno;
    struct slot *s = once_hint.s;
    once_hint = saved_hint;
    if (s) {
        if (r != 0) {
            finish(s, 1); /* libevent freed the event it could not add */
        } else if ((events & (EV_READ | EV_WRITE | EV_CLOSED)) == 0 &&
                   (tv == NULL || (tv->tv_sec == 0 && tv->tv_usec == 0))) {
            atomic_store_explicit(&s->woken, 1, memory_order_relaxed);
            fr_wake(s->task); /* made active at once */
        } else {
            record_add(s, fra_label("event_base_once from", caller));
        }
    }
    errno = saved;
    return r;
}

int event_base_once(struct event_base *base, evutil_socket_t fd, short events, cb_fn *callback,
                    void *arg, const struct timeval *tv)
{
    const void *caller = fra_caller();
    if (!REAL(real_base_once, "event_base_once")) {
        errno = ENOSYS;
        return -1;
    }
    return once_common(base, fd, events, callback, arg, tv, caller, 1);
}

int event_once(evutil_socket_t fd, short events, cb_fn *callback, void *arg,
               const struct timeval *tv)
{
    const void *caller = fra_caller();
    if (!REAL(real_once, "event_once")) {
        errno = ENOSYS;
        return -1;
    }
    return once_common(NULL, fd, events, callback, arg, tv, caller, 0);
}

static int finalize_common(unsigned flags, struct event *ev, event_finalize_callback_fn cb,
                           int (*real)(unsigned, struct event *, event_finalize_callback_fn))
{
    struct slot *s = live_slot(ev);
    if (s) {
        s->fin = cb;
        fr_idle(s->task);
        roles_clear(s);
        return real(flags, ev, fin_trampoline);
    }
    return real(flags, ev, cb);
}

int event_finalize(unsigned flags, struct event *ev, event_finalize_callback_fn cb)
{
    if (!REAL(real_finalize, "event_finalize")) {
        errno = ENOSYS;
        return -1;
    }
    return finalize_common(flags, ev, cb, real_finalize);
}

int event_free_finalize(unsigned flags, struct event *ev, event_finalize_callback_fn cb)
{
    if (!REAL(real_free_finalize, "event_free_finalize")) {
        errno = ENOSYS;
        return -1;
    }
    return finalize_common(flags, ev, cb, real_free_finalize);
}

event_callback_fn event_get_callback(const struct event *ev)
{
    if (!REAL(real_get_callback, "event_get_callback"))
        return NULL;
    event_callback_fn f = real_get_callback(ev);
    if (f == trampoline && real_get_callback_arg)
        return ((struct slot *)real_get_callback_arg(ev))->cb;
    return f;
}

void *event_get_callback_arg(const struct event *ev)
{
    if (!REAL(real_get_callback_arg, "event_get_callback_arg"))
        return NULL;
    void *a = real_get_callback_arg(ev);
    if (real_get_callback && real_get_callback(ev) == trampoline)
        return ((struct slot *)a)->arg;
    return a;
}

void event_get_assignment(const struct event *ev, struct event_base **base_out,
                          evutil_socket_t *fd_out, short *events_out,
                          event_callback_fn *callback_out, void **arg_out)
{
    if (!REAL(real_get_assignment, "event_get_assignment"))
        return;
    real_get_assignment(ev, base_out, fd_out, events_out, callback_out, arg_out);
    if (real_get_callback && real_get_callback(ev) == trampoline && real_get_callback_arg) {
        struct slot *s = real_get_callback_arg(ev);
        if (callback_out)
            *callback_out = s->cb;
        if (arg_out)
            *arg_out = s->arg;
    }
}

/* evconnlistener_new and _new_bind: libevent assigns the listener's event
 * with its own listener_read_cb, which calls the program's callback; the
 * task is named "evconnlistener @0x<program's callback>". */
#define LISTENER_HINTED(call, cb)                                                                  \
    ({                                                                                             \
        struct hint saved_hint_ = once_hint;                                                       \
        once_hint = (struct hint){(const void *)(cb), "evconnlistener", 0, NULL};                  \
        __typeof__(call) r_ = (call);                                                              \
        int e_ = errno;                                                                            \
        if (r_ && once_hint.s)                                                                     \
            once_hint.s->owner = r_;                                                               \
        once_hint = saved_hint_;                                                                   \
        errno = e_;                                                                                \
        r_;                                                                                        \
    })

struct evconnlistener *evconnlistener_new(struct event_base *base, evconnlistener_cb cb,
                                          void *ptr, unsigned flags, int backlog,
                                          evutil_socket_t fd)
{
    if (!REAL(real_listener_new, "evconnlistener_new")) {
        errno = ENOSYS;
        return NULL;
    }
    return LISTENER_HINTED(real_listener_new(base, cb, ptr, flags, backlog, fd), cb);
}

struct evconnlistener *evconnlistener_new_bind(struct event_base *base, evconnlistener_cb cb,
                                               void *ptr, unsigned flags, int backlog,
                                               const struct sockaddr *sa, int socklen)
{
    if (!REAL(real_listener_new_bind, "evconnlistener_new_bind")) {
        errno = ENOSYS;
        return NULL;
    }
    return LISTENER_HINTED(real_listener_new_bind(base, cb, ptr, flags, backlog, sa, socklen),
                           cb);
}

/* The listener's event lives inside it and is freed with it, never through
 * event_free: found through its descriptor's read role (the listener reads
 * its socket) and ended here. */
void evconnlistener_free(struct evconnlistener *lev)
{
    if (!REAL(real_listener_free, "evconnlistener_free"))
        return;
    if (lev && real_listener_get_fd && fdtab) {
        int saved = errno;
        evutil_socket_t fd = real_listener_get_fd(lev);
        struct slot *s = fd >= 0 && (unsigned)fd < nfd
                             ? atomic_load_explicit(&fdtab[fd].rd, memory_order_relaxed)
                             : NULL;
        /* a disabled listener has no read role: its slot stays until the
         * address is assigned again */
        if (s && s->owner == lev)
            finish(s, 1);
        errno = saved;
    }
    real_listener_free(lev);
}

/* A bufferevent's two events live inside it and are freed with it, never
 * through event_free: end their tasks here. libevent then finalizes them
 * with a callback that takes the events' argument for the bufferevent
 * (bufferevent_decref_and_unlock_), so each gets its own callback and
 * argument back first. */
void bufferevent_free(struct bufferevent *bev)
{
    if (!REAL(real_bev_free, "bufferevent_free"))
        return;
    if (bev) {
        int saved = errno;
        struct event *evs[2] = {&bev->ev_read, &bev->ev_write};
        for (int i = 0; i < 2; i++) {
            struct slot *s = lookup(evs[i]);
            if (s && EV_CB(evs[i]) == trampoline && EV_ARG(evs[i]) == s) {
                EV_CB(evs[i]) = s->cb;
                EV_ARG(evs[i]) = s->arg;
                finish(s, 1);
            }
        }
        errno = saved;
    }
    real_bev_free(bev);
}

/* ---- start --------------------------------------------------------------- */

static void *reserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* The slot table, once libevent 2.1 is known to be loaded: the wrappers
 * read struct event as libevent 2.1 lays it out, so with any other libevent
 * at run time they only forward. Made at most once. */
static void ensure_slots(void)
{
    static _Atomic int made;
    if (__atomic_load_n(&slot_table, __ATOMIC_ACQUIRE) || !real_version_number ||
        (real_version_number() >> 16) != 0x0201u || atomic_exchange(&made, 1))
        return;
    struct slot *t = reserve((size_t)FRA_EVENT_SLOTS * sizeof(struct slot));
    if (t)
        __atomic_store_n(&slot_table, t, __ATOMIC_RELEASE);
}

__attribute__((constructor(102))) static void fra_event_start(void)
{
    int saved = errno;
    build_names();
    resolve_all();
    struct rlimit rl;
    rlim_t want = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > want)
        want = rl.rlim_cur;
    if (want > (1u << 20))
        want = 1u << 20;
    struct fdent *f = reserve((size_t)want * sizeof(struct fdent));
    if (f) {
        fdtab = f;
        nfd = (unsigned)want;
    }
    ensure_slots();
    fra_set_ready_hook(on_ready);
    fra_start(real_version_number != NULL, "flightrec-event");
    errno = saved;
}
