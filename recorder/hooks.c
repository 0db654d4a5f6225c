/*
 * hooks.c - the task hooks a runtime calls: the record path.
 *
 * Each hook appends one record to the calling thread's current page:
 *
 *   1. one relaxed load of fr__epoch compared with the writer's epoch
 *      (recording off, or this thread not attached yet: the slow path);
 *   2. the re-entrancy guard: a hook called from a signal handler that
 *      interrupted a hook on the same thread drops its event (counted);
 *   3. rdtsc, a page switch every ~800 records, LEB128 encoding into the page;
 *   4. one release store of the page's commit word, which publishes the
 *      record to dumpers (pairs with the acquire load in fr__ring_snapshot).
 *
 * No locks, no system calls, no allocation, no read-modify-write atomics
 * (interning a string seen for the first time is the one exception, and it
 * is lock-free: see intern.c).
 */
#include "internal.h"

/* ARG_LOCK: @parent carries the lock id, encoded like a parent (format.h). */
enum { ARG_TASK = 1, ARG_PARENT = 2, ARG_STR = 4, ARG_LOCK = ARG_PARENT };

static inline uint8_t *put_uleb(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t zigzag(uint64_t delta)
{
    return (delta << 1) ^ (uint64_t)((int64_t)delta >> 63);
}

/* Counts an event lost to re-entrancy. Owner-only counter: plain RMW is fine
 * because the interrupted hook on this thread does not touch it. */
__attribute__((noinline, cold)) static void drop_nested(struct fr_writer *w)
{
    struct fr_ring *r = &w->slot->ring;
    atomic_store_explicit(&r->events_dropped,
                          atomic_load_explicit(&r->events_dropped, FR_RELAXED) + 1, FR_RELAXED);
}

/* Returns the writer when recording is on for this thread (even if this one
 * event was dropped as nested), NULL when it is off: per-thread state beside
 * the ring (current task, thread name) is only touched through it. */
static inline __attribute__((always_inline)) struct fr_writer *
record(unsigned type, unsigned args, uint64_t task, uint64_t parent, const char *str)
{
    struct fr_writer *w = &fr__w;
    uint32_t e = atomic_load_explicit(&fr__epoch, FR_RELAXED);
    /* e == 0 (off) is tested here, not in the attach call: a hook before
     * fr_init must cost a load and two compares, not a function call. */
    if (FR_UNLIKELY(w->epoch != e) && (e == 0 || !fr__writer_attach(w)))
        return NULL;
    if (FR_UNLIKELY(w->busy)) {
        drop_nested(w);
        return w;
    }
    w->busy = 1;
    atomic_signal_fence(memory_order_seq_cst); /* a signal handler sees busy before any write */

    uint32_t sid = 0;
    if (args & ARG_STR)
        sid = fr__intern_cached(w, str);
    uint64_t now = fr__ticks();
    if (FR_UNLIKELY(w->pos > w->limit))
        fr__writer_next_page(w, now);
    if (FR_UNLIKELY(now < w->last_ticks)) /* TSC skew after a migration: never go back */
        now = w->last_ticks;

    uint8_t *p = w->pos;
    *p++ = (uint8_t)type;
    p = put_uleb(p, now - w->last_ticks);
    if (args & ARG_TASK) {
        p = put_uleb(p, zigzag(task - w->last_task));
        w->last_task = task;
    }
    if (args & ARG_PARENT)
        p = put_uleb(p, zigzag(parent - task));
    if (args & ARG_STR)
        p = put_uleb(p, sid);

    w->pos = p;
    w->last_ticks = now;
    w->count++;
    /* Publish: pairs with the acquire load of commit in fr__ring_snapshot. */
    atomic_store_explicit(&w->page->commit,
                          (uint64_t)(uint32_t)(p - w->page->data) | (uint64_t)w->count << 32,
                          FR_RELEASE);
    atomic_signal_fence(memory_order_seq_cst);
    w->busy = 0;
    return w;
}

FR_API void fr_spawn(uint64_t task, uint64_t parent, const char *name)
{
    record(FR_EV_SPAWN, ARG_TASK | ARG_PARENT | ARG_STR, task, parent, name);
}

FR_API void fr_poll_begin(uint64_t task)
{
    struct fr_writer *w = record(FR_EV_POLL_BEGIN, ARG_TASK, task, 0, NULL);
    if (FR_LIKELY(w != NULL)) {
        /* The poll's start for the stall watchdog: the record's own tick,
         * stored before the task (the release pairs with the watchdog's
         * acquire load of current_task, see watchdog.c). */
        atomic_store_explicit(&w->slot->ring.poll_ticks, w->last_ticks, FR_RELAXED);
        atomic_store_explicit(&w->slot->ring.current_task, task, FR_RELEASE);
    }
}

FR_API void fr_poll_end(uint64_t task, enum fr_poll_result result)
{
    struct fr_writer *w = record(result == FR_READY ? FR_EV_POLL_READY : FR_EV_POLL_PENDING,
                                 ARG_TASK, task, 0, NULL);
    if (FR_LIKELY(w != NULL))
        atomic_store_explicit(&w->slot->ring.current_task, 0, FR_RELAXED);
}

FR_API void fr_await(uint64_t task, const char *label)
{
    record(FR_EV_AWAIT, ARG_TASK | ARG_STR, task, 0, label);
}

FR_API void fr_wake(uint64_t task)
{
    record(FR_EV_WAKE, ARG_TASK, task, 0, NULL);
}

FR_API void fr_waker_clone(uint64_t task)
{
    record(FR_EV_WAKER_CLONE, ARG_TASK, task, 0, NULL);
}

FR_API void fr_waker_drop(uint64_t task)
{
    record(FR_EV_WAKER_DROP, ARG_TASK, task, 0, NULL);
}

FR_API void fr_park(void)
{
    record(FR_EV_PARK, 0, 0, 0, NULL);
}

FR_API void fr_unpark(void)
{
    record(FR_EV_UNPARK, 0, 0, 0, NULL);
}

FR_API void fr_drop(uint64_t task)
{
    record(FR_EV_DROP, ARG_TASK, task, 0, NULL);
}

FR_API void fr_mark(uint64_t task, const char *label)
{
    record(FR_EV_MARK, ARG_TASK | ARG_STR, task, 0, label);
}

FR_API void fr_await_external(uint64_t task, const char *label)
{
    record(FR_EV_AWAIT_EXTERNAL, ARG_TASK | ARG_STR, task, 0, label);
}

FR_API void fr_idle(uint64_t task)
{
    record(FR_EV_IDLE, ARG_TASK, task, 0, NULL);
}

FR_API void fr_lock_wait(uint64_t task, uint64_t lock, const char *name)
{
    record(FR_EV_LOCK_WAIT, ARG_TASK | ARG_LOCK | ARG_STR, task, lock, name);
}

FR_API void fr_lock_acquire(uint64_t task, uint64_t lock)
{
    record(FR_EV_LOCK_ACQUIRE, ARG_TASK | ARG_LOCK, task, lock, NULL);
}

FR_API void fr_lock_release(uint64_t task, uint64_t lock)
{
    record(FR_EV_LOCK_RELEASE, ARG_TASK | ARG_LOCK, task, lock, NULL);
}

FR_API void fr_thread_name(const char *name)
{
    struct fr_writer *w = record(FR_EV_THREAD_NAME, ARG_STR, 0, 0, name);
    if (w)
        fr__thread_name_set(w->slot, name);
}
