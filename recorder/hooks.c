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
 * Each exported hook is a fast path that calls nothing: it first checks,
 * writing nothing, that the event needs no more than steps 1-4 (attached,
 * not nested, room in the page, the TSC as clock, any string in the memo,
 * nothing held to write first) and otherwise tail-calls the generic code
 * (record_slow and its siblings), which handles every case.
 *
 * Folding (format version 2). Between fr_poll_begin(T) and fr_poll_end(T) on
 * a thread, the events of T itself that the analyses time by the poll (await,
 * await_external, idle, mark, wake, waker clone and drop: FR_FOLDABLE) read no
 * clock and write no record: they are held in the writer (w->fold, already
 * encoded as fold list entries) and go out
 * with the poll's end record (FR_REC_FOLDED), so a pending poll is two
 * records, its begin and its end. Any other record first writes what is held
 * as an untimed FR_REC_FOLD record, so the order of events on the thread never
 * changes. What is held is invisible to a dump taken by another thread until
 * then; the crash and stall handlers and fr_dump() on this thread flush it
 * (fr__writer_flush).
 *
 * fr_spawn also writes the task's entry in the thread's young spawn table,
 * and fr_drop empties it (spawns.c): a few plain stores to a hot line, so
 * that a dump names a task whose spawn left the ring.
 *
 * No locks, no system calls, no allocation, no read-modify-write atomics
 * (interning a string seen for the first time is the one exception, and it
 * is lock-free: see intern.c).
 */
#include "internal.h"

/* ARG_LOCK: @parent carries the lock id, encoded like a parent (format.h). */
enum { ARG_TASK = 1, ARG_PARENT = 2, ARG_STR = 4, ARG_LOCK = ARG_PARENT };

#ifdef FR_TEST_HOOKS
int fr__test_no_fold;
#define FOLDING (!fr__test_no_fold)
#else
#define FOLDING 1
#endif

_Static_assert(FR_FOLD_MAX >= 1 && FR_FOLD_MAX <= FR_FOLD_LIST_MAX, "FR_FOLD_MAX: 1..16");

#define STR_EVENTS (1u << FR_EV_AWAIT | 1u << FR_EV_MARK | 1u << FR_EV_AWAIT_EXTERNAL)

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

/* Steps 1 and 2: the writer, busy, when this event is to be recorded; NULL
 * when recording is off for this thread, or (*@nested set) when the event is
 * dropped because a hook on this thread was interrupted. */
static inline __attribute__((always_inline)) struct fr_writer *enter(int *nested)
{
    struct fr_writer *w = &fr__w;
    uint32_t e = atomic_load_explicit(&fr__epoch, FR_RELAXED);
    /* e == 0 (off) is tested here, not in the attach call: a hook before
     * fr_init must cost a load and two compares, not a function call. */
    if (FR_UNLIKELY(w->epoch != e) && (e == 0 || !fr__writer_attach(w)))
        return NULL;
    if (FR_UNLIKELY(w->busy)) {
        drop_nested(w);
        *nested = 1;
        return NULL;
    }
    w->busy = 1;
    atomic_signal_fence(memory_order_seq_cst); /* a signal handler sees busy before any write */
    return w;
}

static inline __attribute__((always_inline)) void leave(struct fr_writer *w)
{
    atomic_signal_fence(memory_order_seq_cst);
    w->busy = 0;
}

/* Publish the record that ends at @p in page @pg, the page's @count-th:
 * pairs with the acquire load of commit in fr__ring_snapshot. The caller
 * read w->page and w->count before writing the record's bytes, which the
 * compiler cannot tell apart from the writer's fields (a byte store may
 * alias anything), so nothing is loaded twice. */
static inline __attribute__((always_inline)) void publish(struct fr_writer *w, struct fr_page *pg,
                                                          uint32_t count, uint8_t *p)
{
    w->pos = p;
    w->count = count;
    atomic_store_explicit(&pg->commit, (uint64_t)(uint32_t)(p - pg->data) | (uint64_t)count << 32,
                          FR_RELEASE);
}

/* The fold list: its count, then the held entries, copied whole (the page
 * keeps FR_MAX_RECORD bytes of slack; bytes past the list are not published). */
static inline uint8_t *put_fold_list(uint8_t *p, struct fr_writer *w)
{
    *p++ = (uint8_t)w->nfold;
    __builtin_memcpy(p, w->fold, FR_FOLD_BYTES);
    p += w->fold_len;
    w->nfold = 0;
    w->fold_len = 0;
    return p;
}

/* Write the held events as one untimed FR_REC_FOLD record (w busy). */
__attribute__((noinline)) static void flush_fold(struct fr_writer *w)
{
    if (FR_UNLIKELY(w->pos > w->limit))
        fr__writer_next_page(w, w->last_ticks);
    uint8_t *p = w->pos;
    struct fr_page *pg = w->page;
    uint32_t count = w->count + 1;
    uint64_t task = w->poll_task, last_task = w->last_task;
    *p++ = (uint8_t)(FR_REC_FOLD | FR_REC_SAME_TIME);
    p = put_uleb(p, zigzag(task - last_task));
    w->last_task = task;
    p = put_fold_list(p, w);
    publish(w, pg, count, p);
}

/* The record's bytes at the writer's position, then its publication: the
 * type byte @tag (type | FR_REC_FOLDED when it carries the held events),
 * the clock delta to @now, the arguments @args names, the fold list when
 * folded. The writer's fields are read once before the bytes are stored and
 * written back once after (see publish). Shared by put_record and the fast
 * path's put_fast, inlined into both. */
static inline __attribute__((always_inline)) void put_bytes(struct fr_writer *w, unsigned tag,
                                                            unsigned args, uint64_t task,
                                                            uint64_t parent, uint32_t sid,
                                                            uint64_t now)
{
    uint8_t *p = w->pos;
    struct fr_page *pg = w->page;
    uint32_t count = w->count + 1;
    uint64_t last_ticks = w->last_ticks, last_task = w->last_task;
    if (FR_UNLIKELY(now < last_ticks)) /* TSC skew after a migration: never go back */
        now = last_ticks;
    *p++ = (uint8_t)tag;
    p = put_uleb(p, now - last_ticks);
    if (args & ARG_TASK)
        p = put_uleb(p, zigzag(task - last_task));
    if (args & ARG_PARENT)
        p = put_uleb(p, zigzag(parent - task));
    if (args & ARG_STR)
        p = put_uleb(p, sid);
    if (tag & FR_REC_FOLDED)
        p = put_fold_list(p, w);
    if (args & ARG_TASK)
        w->last_task = task;
    w->last_ticks = now;
    publish(w, pg, count, p);
    /* The spawn table (spawns.c): a constant test where the type is known */
    if (tag == FR_EV_SPAWN)
        fr__spawn_note(w->young, task, parent, now, sid,
                       atomic_load_explicit(&w->slot->tid, FR_RELAXED));
    else if (tag == FR_EV_DROP)
        fr__spawn_forget(w->young, task, now);
}

/* Step 3 and 4 for writer @w (busy): one record of @type, timed, after
 * whatever was held. FR_REC_FOLDED on a poll end of the polled task takes
 * the held events in. */
static inline __attribute__((always_inline)) void
put_record(struct fr_writer *w, unsigned type, unsigned args, uint64_t task, uint64_t parent,
           const char *str)
{
    uint32_t sid = 0;
    if (args & ARG_STR)
        sid = fr__intern_cached(w, str);
    unsigned folded = 0;
    if (FR_UNLIKELY(w->nfold)) {
        if ((type == FR_EV_POLL_PENDING || type == FR_EV_POLL_READY) && task == w->poll_task)
            folded = FR_REC_FOLDED;
        else
            flush_fold(w);
    }
    uint64_t now = fr__ticks();
    if (FR_UNLIKELY(w->pos > w->limit))
        fr__writer_next_page(w, now);
    put_bytes(w, type | folded, args, task, parent, sid, now);
}

/* Everything the fast paths below leave out: the first event of a thread
 * (attach), recording off, a nested hook, a page switch, a clock other than
 * the TSC, held events to write first, a string the memo does not hold. */
__attribute__((noinline)) static void record_slow(unsigned type, unsigned args, uint64_t task,
                                                  uint64_t parent, const char *str)
{
    int nested = 0;
    struct fr_writer *w = enter(&nested);
    if (!w)
        return;
    put_record(w, type, args, task, parent, str);
    leave(w);
}

/*
 * The fast path. A hook first checks, without writing anything, that this
 * event needs nothing but the clock read and the record's bytes: this thread
 * records in the current epoch and is not inside a hook, the record fits in the
 * page, the clock is the TSC. Anything else goes to the generic code above,
 * as a tail call, so the fast path calls nothing and saves no registers.
 */
static inline __attribute__((always_inline)) int writer_ready(const struct fr_writer *w)
{
    /* Two 4-byte loads, not one 8-byte load of both: the previous hook's
     * last store was the 4-byte busy = 0, and a wider load over it cannot
     * be forwarded from the store buffer (a stall of ~10-15 cycles per
     * hook). fr__epoch is never UINT32_MAX and w->epoch is while not
     * attached, so a writer never matches epoch 0 (recording off). */
    uint32_t e = atomic_load_explicit(&fr__epoch, FR_RELAXED);
    return FR_LIKELY(w->epoch == e) && FR_LIKELY(w->busy == 0);
}

static inline __attribute__((always_inline)) int can_record_fast(const struct fr_writer *w)
{
#if defined(__x86_64__) || defined(__i386__)
    return writer_ready(w) && FR_LIKELY(w->pos <= w->limit) && FR_LIKELY(w->tsc);
#else
    (void)w;
    return 0;
#endif
}

static inline __attribute__((always_inline)) uint64_t read_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    return fr__ticks();
#endif
}

/* The memo's answer for @s without a call: 1 and *@sid on a hit (or NULL,
 * id 0), 0 on a miss. The writer is busy: a signal handler's hook does not
 * rewrite the memo under us. */
static inline __attribute__((always_inline)) int memo_hit(const struct fr_writer *w, const char *s,
                                                          uint32_t *sid)
{
    if (!s) {
        *sid = 0;
        return 1;
    }
    const struct fr_intern_memo *m = &w->memo[((uintptr_t)s >> 3) % FR_INTERN_CACHE];
    if (fr__memo_matches(m, s)) {
        *sid = m->id;
        return 1;
    }
    return 0;
}

/* One record of @type on the fast path (can_record_fast(w) held, w not yet
 * busy, nothing held unless this is the polled task's poll end): the bytes
 * as put_record writes them. Returns 0, having written nothing, when a
 * string is not in the memo or held events must be written first: the
 * caller then takes record_slow. */
static inline __attribute__((always_inline)) int
put_fast(struct fr_writer *w, unsigned type, unsigned args, uint64_t task, uint64_t parent,
         const char *str)
{
    unsigned folded = 0;
    if (FR_UNLIKELY(w->nfold)) {
        if ((type == FR_EV_POLL_PENDING || type == FR_EV_POLL_READY) && task == w->poll_task)
            folded = FR_REC_FOLDED;
        else
            return 0;
    }
    w->busy = 1;
    atomic_signal_fence(memory_order_seq_cst); /* a signal handler sees busy before any write */
    uint32_t sid = 0;
    if ((args & ARG_STR) && FR_UNLIKELY(!memo_hit(w, str, &sid))) {
        leave(w);
        return 0;
    }
    put_bytes(w, type | folded, args, task, parent, sid, read_tsc());
    return 1;
}

static inline __attribute__((always_inline)) void
record(unsigned type, unsigned args, uint64_t task, uint64_t parent, const char *str)
{
    struct fr_writer *w = &fr__w;
    if (FR_LIKELY(can_record_fast(w)) && FR_LIKELY(put_fast(w, type, args, task, parent, str))) {
        leave(w);
        return;
    }
    record_slow(type, args, task, parent, str);
}

/* An event that may be folded: held when it is the polled task's, inside its
 * poll, else recorded with its own time. */
__attribute__((noinline)) static void record_foldable_slow(unsigned type, uint64_t task,
                                                           const char *str)
{
    int nested = 0;
    struct fr_writer *w = enter(&nested);
    if (!w)
        return;
    if (FR_LIKELY(w->in_poll && task == w->poll_task)) {
        if (FR_UNLIKELY(w->nfold == FR_FOLD_MAX))
            flush_fold(w);
        uint8_t *p = w->fold + w->fold_len;
        *p++ = (uint8_t)type;
        if ((1u << type) & STR_EVENTS)
            p = put_uleb(p, fr__intern_cached(w, str));
        w->fold_len = (uint32_t)(p - w->fold);
        w->nfold++;
    } else {
        put_record(w, type, ARG_TASK | (((1u << type) & STR_EVENTS) ? ARG_STR : 0), task, 0, str);
    }
    leave(w);
}

/* Held without a call when the writer is ready, the list has room and any
 * string is in the memo; else recorded as usual (record_foldable_slow). */
static inline __attribute__((always_inline)) void record_foldable(unsigned type, uint64_t task,
                                                                  const char *str)
{
    struct fr_writer *w = &fr__w;
    if (FR_LIKELY(writer_ready(w))) {
        uint32_t nfold = w->nfold;
        if (FR_LIKELY(w->in_poll && task == w->poll_task && nfold < FR_FOLD_MAX)) {
            w->busy = 1;
            atomic_signal_fence(memory_order_seq_cst);
            uint32_t sid = 0;
            if (!((1u << type) & STR_EVENTS) || FR_LIKELY(memo_hit(w, str, &sid))) {
                /* indexed stores into w->fold: thread-local addressing,
                 * no pointer into the writer to form first */
                uint32_t len = w->fold_len;
                w->fold[len++] = (uint8_t)type;
                if ((1u << type) & STR_EVENTS) {
                    for (; sid >= 0x80; sid >>= 7)
                        w->fold[len++] = (uint8_t)(sid | 0x80);
                    w->fold[len++] = (uint8_t)sid;
                }
                w->fold_len = len;
                w->nfold = nfold + 1;
                leave(w);
                return;
            }
            leave(w);
        } else if (!w->in_poll || task != w->poll_task) {
            unsigned args = ARG_TASK | (((1u << type) & STR_EVENTS) ? ARG_STR : 0);
            if (FR_LIKELY(can_record_fast(w)) && FR_LIKELY(put_fast(w, type, args, task, 0, str))) {
                leave(w);
                return;
            }
        }
    }
    record_foldable_slow(type, task, str);
}

void fr__writer_flush(void)
{
    struct fr_writer *w = &fr__w;
    if (w->epoch != atomic_load_explicit(&fr__epoch, FR_RELAXED) || w->busy || !w->nfold ||
        !w->page)
        return;
    w->busy = 1;
    atomic_signal_fence(memory_order_seq_cst);
    flush_fold(w);
    leave(w);
}

FR_API void fr_spawn(uint64_t task, uint64_t parent, const char *name)
{
    record(FR_EV_SPAWN, ARG_TASK | ARG_PARENT | ARG_STR, task, parent, name);
}

__attribute__((noinline)) static void poll_begin_slow(uint64_t task)
{
    int nested = 0;
    struct fr_writer *w = enter(&nested);
    if (FR_LIKELY(w != NULL)) {
        put_record(w, FR_EV_POLL_BEGIN, ARG_TASK, task, 0, NULL);
        /* nfold == 0 here: the record wrote whatever was held */
        w->poll_task = task;
        w->in_poll = FOLDING;
    } else if (nested) {
        w = &fr__w; /* the event is lost, but the watchdog must know the poll runs */
    } else {
        return;
    }
    /* The poll's start for the stall watchdog: the record's own tick,
     * stored before the task (the release pairs with the watchdog's
     * acquire load of current_task, see watchdog.c). */
    atomic_store_explicit(&w->slot->ring.poll_ticks, w->last_ticks, FR_RELAXED);
    atomic_store_explicit(&w->slot->ring.current_task, task, FR_RELEASE);
    if (!nested)
        leave(w);
}

__attribute__((noinline)) static void poll_end_slow(uint64_t task, enum fr_poll_result result)
{
    int nested = 0;
    struct fr_writer *w = enter(&nested);
    if (FR_LIKELY(w != NULL)) {
        put_record(w, result == FR_READY ? FR_EV_POLL_READY : FR_EV_POLL_PENDING, ARG_TASK, task,
                   0, NULL);
        w->in_poll = 0; /* an outer poll's events are timed from now on */
        atomic_store_explicit(&w->slot->ring.current_task, 0, FR_RELAXED);
        leave(w);
    } else if (nested) {
        atomic_store_explicit(&fr__w.slot->ring.current_task, 0, FR_RELAXED);
    }
}

FR_API void fr_poll_begin(uint64_t task)
{
    struct fr_writer *w = &fr__w;
    if (FR_LIKELY(can_record_fast(w)) &&
        FR_LIKELY(put_fast(w, FR_EV_POLL_BEGIN, ARG_TASK, task, 0, NULL))) {
        w->poll_task = task;
        w->in_poll = FOLDING;
        /* as in poll_begin_slow: the poll's start, then the task (release) */
        struct fr_ring *r = &w->slot->ring;
        atomic_store_explicit(&r->poll_ticks, w->last_ticks, FR_RELAXED);
        atomic_store_explicit(&r->current_task, task, FR_RELEASE);
        leave(w);
        return;
    }
    poll_begin_slow(task);
}

FR_API void fr_poll_end(uint64_t task, enum fr_poll_result result)
{
    struct fr_writer *w = &fr__w;
    unsigned type = result == FR_READY ? FR_EV_POLL_READY : FR_EV_POLL_PENDING;
    if (FR_LIKELY(can_record_fast(w)) && FR_LIKELY(put_fast(w, type, ARG_TASK, task, 0, NULL))) {
        w->in_poll = 0;
        atomic_store_explicit(&w->slot->ring.current_task, 0, FR_RELAXED);
        leave(w);
        return;
    }
    poll_end_slow(task, result);
}

FR_API void fr_await(uint64_t task, const char *label)
{
    record_foldable(FR_EV_AWAIT, task, label);
}

FR_API void fr_wake(uint64_t task)
{
    record_foldable(FR_EV_WAKE, task, NULL);
}

FR_API void fr_waker_clone(uint64_t task)
{
    record_foldable(FR_EV_WAKER_CLONE, task, NULL);
}

FR_API void fr_waker_drop(uint64_t task)
{
    record_foldable(FR_EV_WAKER_DROP, task, NULL);
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
    record_foldable(FR_EV_MARK, task, label);
}

FR_API void fr_await_external(uint64_t task, const char *label)
{
    record_foldable(FR_EV_AWAIT_EXTERNAL, task, label);
}

FR_API void fr_idle(uint64_t task)
{
    record_foldable(FR_EV_IDLE, task, NULL);
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
    int nested = 0;
    struct fr_writer *w = enter(&nested);
    if (w) {
        put_record(w, FR_EV_THREAD_NAME, ARG_STR, 0, 0, name);
        leave(w);
    } else if (nested) {
        w = &fr__w;
    } else {
        return;
    }
    fr__thread_name_set(w->slot, name);
}
