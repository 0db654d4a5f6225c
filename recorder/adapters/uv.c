/*
 * uv.c - libflightrec-uv.so's core: the real functions, the side table of
 * followed handles and requests, the fd table readiness goes through, task
 * ids, the constructor, and uv_close (how a handle's task ends).
 *
 * The side table is a fixed open-addressing hash set (UVR_SLOTS entries,
 * mapped once at load time). An entry lives within UVR_PROBE slots of its
 * key's home slot, so a lookup reads at most UVR_PROBE keys and never
 * waits. The keys are an array of their own (eight to a cache line): once
 * churn has left "removed" marks everywhere, a miss still reads only eight
 * consecutive lines. Keys are keys are claimed with a compare-and-swap (empty or removed -> being
 * filled), filled, then published with a release store; removal stores
 * "removed". A key that finds no room is not followed (uvr_untracked counts
 * them) and runs exactly as without the adapter. Nothing here allocates,
 * locks or makes a system call after the constructor.
 */
#include "uvr.h"

#include "common.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef UVR_SLOTS_LOG2
#define UVR_SLOTS_LOG2 16 /* 64 Ki followed handles and requests at once; 48 B each */
#endif
#define UVR_SLOTS (1u << UVR_SLOTS_LOG2)
#define UVR_PROBE 64u
#define UVR_FD_MAX (1u << 20) /* fds past this are not mapped to tasks */

#define KEY_EMPTY 0u
#define KEY_REMOVED 1u
#define KEY_BUSY 2u

#define UVR_DEFINE_REAL(fn) __typeof__(&fn) uvr_real_##fn;
UVR_FUNCS(UVR_DEFINE_REAL)
#undef UVR_DEFINE_REAL

int uvr_layout_ok;
int uvr_located;
uintptr_t uvr_lo, uvr_hi;
__thread unsigned uvr_depth;
__thread uint64_t uvr_current;

static struct uvr_ent *table;     /* entry i belongs to keys[i] */
static _Atomic uintptr_t *keys;   /* 0 empty, 1 removed, 2 being filled, else the key */
static _Atomic uint64_t untracked;

struct fd_slot {
    _Atomic uint64_t task; /* 0: nothing waits on this fd */
    _Atomic uint32_t mask; /* EPOLL* bits that mean its callback will run */
    uint32_t pad;
};
static struct fd_slot *fdtab;
static unsigned fdcap;


/* ---- resolution --------------------------------------------------------- */

static int find_text(struct dl_phdr_info *info, size_t size, void *arg);

/* The executable segment holding an address: libuv's, where calls libuv
 * makes to itself come from. */
struct text_range {
    uintptr_t probe, lo, hi;
};

void uvr_resolve(void)
{
#define UVR_RESOLVE(fn)                                                                            \
    if (!uvr_real_##fn)                                                                            \
        uvr_real_##fn = (__typeof__(&fn))fra_real(#fn);
    UVR_FUNCS(UVR_RESOLVE)
#undef UVR_RESOLVE
    if (!__atomic_load_n(&uvr_located, __ATOMIC_ACQUIRE)) {
        struct text_range r = {(uintptr_t)fra_real("uv_run"), 0, 0};
        unsigned (*version)(void) = (unsigned (*)(void))fra_real("uv_version");
        if (r.probe && version) {
            if (dl_iterate_phdr(find_text, &r)) {
                uvr_lo = r.lo;
                uvr_hi = r.hi;
            }
            uvr_layout_ok = (version() >> 16) == 1 && ((version() >> 8) & 0xff) >= 30;
            __atomic_store_n(&uvr_located, 1, __ATOMIC_RELEASE);
        }
    }
}

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct text_range *r = arg;
    uintptr_t probe = r->probe;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) {
            r->lo = lo;
            r->hi = hi;
            return 1;
        }
    }
    return 0;
}

/* ---- side table --------------------------------------------------------- */

static inline uint32_t home(uintptr_t key)
{
    return (uint32_t)(((uint64_t)(key >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - UVR_SLOTS_LOG2));
}

struct uvr_ent *uvr_find(const void *key)
{
    if (!table || !key)
        return NULL;
    uintptr_t k = (uintptr_t)key;
    uint32_t h = home(k);
    for (uint32_t i = 0; i < UVR_PROBE; i++) {
        uint32_t j = (h + i) & (UVR_SLOTS - 1);
        uintptr_t cur = atomic_load_explicit(&keys[j], memory_order_acquire); /* pairs: publish */
        if (cur == k)
            return &table[j];
        if (cur == KEY_EMPTY)
            return NULL;
    }
    return NULL;
}

uint64_t uvr_new_id(void)
{
    /* Ids carry "uv" in their top bits so they never meet another adapter's. */
    static _Atomic uint64_t next_block = 1;
    static __thread uint64_t next, end;
    if (next == end) {
        next = atomic_fetch_add_explicit(&next_block, 1, memory_order_relaxed) << 12;
        end = next + 4096;
    }
    return (0x7576ull << 48) | (next++ & ((1ull << 48) - 1));
}

struct uvr_ent *uvr_claim(const void *key, int kind, int *fresh)
{
    *fresh = 0;
    struct uvr_ent *e = uvr_find(key);
    if (e) {
        if (e->kind == kind)
            return e;
        /* the memory now holds another kind of object: a new task */
        e->kind = (uint8_t)kind;
        e->task = uvr_new_id();
        e->cb = e->cb2 = NULL;
        e->due = 0;
        e->fd = -1;
        e->armed = 0;
        *fresh = 1;
        return e;
    }
    if (!table || !key)
        return NULL;
    uintptr_t k = (uintptr_t)key;
    uint32_t h = home(k);
    for (uint32_t i = 0; i < UVR_PROBE; i++) {
        uint32_t j = (h + i) & (UVR_SLOTS - 1);
        uintptr_t cur = atomic_load_explicit(&keys[j], memory_order_relaxed);
        if (cur != KEY_EMPTY && cur != KEY_REMOVED)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&keys[j], &cur, KEY_BUSY, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        e = &table[j];
        e->task = uvr_new_id();
        e->cb = e->cb2 = NULL;
        e->due = 0;
        e->fd = -1;
        e->kind = (uint8_t)kind;
        e->armed = 0;
        atomic_store_explicit(&keys[j], k, memory_order_release); /* pairs: uvr_find */
        *fresh = 1;
        return e;
    }
    atomic_fetch_add_explicit(&untracked, 1, memory_order_relaxed);
    return NULL;
}

void uvr_remove(struct uvr_ent *e)
{
    uvr_fd_disarm(e);
    atomic_store_explicit(&keys[e - table], KEY_REMOVED, memory_order_release);
}

/* ---- readiness ---------------------------------------------------------- */

void uvr_fd_arm(struct uvr_ent *e, int fd, uint32_t mask)
{
    if (e->fd >= 0 && e->fd != fd)
        uvr_fd_disarm(e);
    if (fd < 0 || (unsigned)fd >= fdcap)
        return;
    e->fd = fd;
    atomic_store_explicit(&fdtab[fd].mask, mask, memory_order_relaxed);
    atomic_store_explicit(&fdtab[fd].task, e->task, memory_order_release);
}

void uvr_fd_disarm(struct uvr_ent *e)
{
    if (e->fd < 0 || (unsigned)e->fd >= fdcap)
        return;
    /* only if the fd still names this task: another loop may own it now */
    uint64_t t = e->task;
    atomic_compare_exchange_strong_explicit(&fdtab[e->fd].task, &t, 0, memory_order_relaxed,
                                            memory_order_relaxed);
    e->fd = -1;
}

/* Called on the loop's thread with each fd its poller returned. */
static void ready_hook(int fd, uint32_t events)
{
    if (fd < 0 || (unsigned)fd >= fdcap)
        return;
    uint64_t t = atomic_load_explicit(&fdtab[fd].task, memory_order_acquire);
    if (t && (events & atomic_load_explicit(&fdtab[fd].mask, memory_order_relaxed)))
        fr_wake(t);
}

/* ---- timers ------------------------------------------------------------- */

struct heap_node {
    struct heap_node *left, *right, *parent;
};

void uvr_wake_due_timers(const uv_loop_t *loop)
{
    static __thread const uv_loop_t *last_loop;
    static __thread uint64_t last_time;
    if (!uvr_layout_ok || (loop == last_loop && loop->time == last_time))
        return;
    last_loop = loop;
    last_time = loop->time;
    /* the heap is ordered by timeout: a node not due hides no due child */
    struct heap_node *stack[64];
    unsigned n = 0, budget = 256;
    if (loop->timer_heap.min)
        stack[n++] = (struct heap_node *)loop->timer_heap.min;
    while (n && budget--) {
        struct heap_node *node = stack[--n];
        uv_timer_t *t = (uv_timer_t *)((char *)node - offsetof(uv_timer_t, heap_node));
        if (t->timeout > loop->time)
            continue;
        struct uvr_ent *e = uvr_find(t);
        if (e && e->kind == UVR_TIMER && e->due != loop->time) {
            e->due = loop->time;
            fr_wake(e->task);
        }
        if (node->right && n < 64)
            stack[n++] = node->right;
        if (node->left && n < 64)
            stack[n++] = node->left;
    }
}

/* ---- labels ------------------------------------------------------------- */

const char *uvr_label(const char *prefix, const void *addr)
{
    return fra_label(prefix, addr);
}

const char *uvr_from(const char *call_from, const void *ret)
{
    return uvr_label(call_from, (const char *)ret - 1);
}

/* ---- close -------------------------------------------------------------- */

/*
 * A followed handle's task ends when libuv hands it back: at its close
 * callback, or at uv_close itself when there is none. The entry is removed
 * and the task dropped before the program's close_cb runs, because that
 * callback usually frees the memory and may start a new handle there.
 */
static void tramp_close(uv_handle_t *h)
{
    struct uvr_ent *e = uvr_find(h);
    if (!e)
        return; /* not reached: the trampoline is set only with an entry */
    uv_close_cb cb = (uv_close_cb)e->cb2;
    uint64_t task = e->task;
    uvr_remove(e);
    fr_drop(task);
    if (cb)
        cb(h);
}

/* Prepare @h's entry for closing; returns the close callback to pass on. */
static uv_close_cb closing(uv_handle_t *h, uv_close_cb cb)
{
    struct uvr_ent *e = uvr_find(h);
    if (!e)
        return cb;
    uvr_fd_disarm(e);
    e->armed = 0;
    if (cb) {
        e->cb2 = (void (*)(void))cb;
        return tramp_close;
    }
    uint64_t task = e->task;
    uvr_remove(e);
    fr_drop(task);
    return NULL;
}

/* uv_tcp_close_reset closes through libuv's own call to uv_close. */
static __thread int in_close_reset;

void uv_close(uv_handle_t *h, uv_close_cb cb)
{
    if (in_close_reset || !uvr_internal(__builtin_return_address(0)))
        cb = closing(h, cb);
    UVR_CALL_VOID(uv_close, (h, cb));
}

int uv_tcp_close_reset(uv_tcp_t *h, uv_close_cb cb)
{
    int internal = uvr_internal(__builtin_return_address(0));
    in_close_reset = !internal;
    int rc = UVR_CALL(uv_tcp_close_reset, (h, cb));
    in_close_reset = 0;
    return rc;
}

/* ---- init --------------------------------------------------------------- */

__attribute__((constructor)) static void uvr_init(void)
{
    uvr_resolve(); /* libuv may not be loaded yet: then again at its first call */

    table = mmap(NULL, (size_t)UVR_SLOTS * sizeof(*table), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    keys = mmap(NULL, (size_t)UVR_SLOTS * sizeof(*keys), PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (table == MAP_FAILED || keys == MAP_FAILED)
        table = NULL;
    struct rlimit rl;
    fdcap = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > fdcap)
        fdcap = rl.rlim_cur > UVR_FD_MAX ? UVR_FD_MAX : (unsigned)rl.rlim_cur;
    fdtab = mmap(NULL, (size_t)fdcap * sizeof(*fdtab), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (fdtab == MAP_FAILED) {
        fdtab = NULL;
        fdcap = 0;
    }
    fra_set_ready_hook(ready_hook);

    fra_start(__atomic_load_n(&uvr_located, __ATOMIC_ACQUIRE), "flightrec-uv");
}
