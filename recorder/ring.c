/*
 * ring.c - the per-thread ring: fixed-size pages of delta-encoded records,
 * overwritten oldest-first, readable by a dumper while the owner writes.
 *
 * Glossary
 *   ring     npages pages of FR_PAGE_SIZE bytes, one ring per recording thread.
 *   page     a 24-byte header (seq, base_ticks, commit) and a payload of records.
 *   record   u8 type, ULEB128 tick delta, arguments, in version 2 maybe a fold
 *            list of events held while a poll ran (see flightrec/format.h).
 *   seq      page sequence number: (slot generation << 40) | n, n = 1, 2, ...;
 *            0 while a page has never been written or is being recycled.
 *   commit   used | count << 32: how many payload bytes and records are whole.
 *   owner    the one thread that writes a ring (the thread that claimed the slot).
 *   reader   a dumper: the dumper thread, a thread in fr_dump(), or a crashing
 *            thread in its signal handler (possibly the owner itself).
 *
 * Who writes, who reads: only the owner writes its ring, so the record path
 * needs no atomic read-modify-write, only release stores. Any number of
 * readers may copy pages at the same time; they never write.
 *
 * What is lost when the ring is full: the oldest page, whole. The owner moves
 * to the next page in index order and recycles it; its records are counted in
 * ring->events_overwritten. History is thus always npages-1 to npages pages.
 *
 * Page states:
 *
 *      +---------+  owner: seq=0, fence,   +------------+  owner: append records,
 *      | EMPTY   |  commit=0, base, seq=n  | CURRENT    |  release-store commit
 *      | seq = 0 | ----------------------> | seq = n    | <-------+  after each
 *      +---------+                         +------------+ --------+
 *           ^                                    |  owner moves on (page full)
 *           |  owner recycles it                 v
 *           |  (ring wrapped)              +------------+
 *           +----------------------------- | FULL       |  immutable until recycled
 *                                          | seq = n    |
 *                                          +------------+
 *
 * The reader's side is a seqlock (fr__ring_snapshot): load seq (acquire),
 * load commit (acquire), copy `used` bytes, acquire fence, load seq again. A
 * page whose seq changed was recycled under the reader: it is dropped whole,
 * never decoded half old, half new. An interrupted record (a crash in the
 * middle of a hook) is past `used` and therefore invisible.
 */
#include <string.h>

#include "internal.h"

/*
 * fr__writer_next_page - move the owner to the next page, recycling it.
 * @w: the calling thread's writer (attached).
 * @now: timestamp of the record about to be written; becomes the page base.
 *
 * Runs on the record path once per ~800 records: no syscalls, no locks.
 */
void fr__writer_next_page(struct fr_writer *w, uint64_t now)
{
    struct fr_ring *r = &w->slot->ring;
    uint32_t idx = w->page ? w->page_index + 1 : 0;
    if (idx == r->npages)
        idx = 0;
    struct fr_page *pg = fr__ring_page(r, idx);

    uint64_t old = atomic_load_explicit(&pg->seq, FR_RELAXED);
    if (old) {
        uint64_t lost = atomic_load_explicit(&pg->commit, FR_RELAXED) >> 32;
        atomic_store_explicit(&r->events_overwritten,
                              atomic_load_explicit(&r->events_overwritten, FR_RELAXED) + lost,
                              FR_RELAXED);
    }
    /* Invalidate first. The release fence orders seq=0 before every payload
     * store below; it pairs with the acquire fence in fr__ring_snapshot, so a
     * reader that saw any new payload byte also sees seq change. */
    atomic_store_explicit(&pg->seq, 0, FR_RELAXED);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&pg->commit, 0, FR_RELAXED);
    atomic_store_explicit(&pg->base_ticks, now, FR_RELAXED);

    uint64_t n = atomic_load_explicit(&r->pages_started, FR_RELAXED) + 1;
    /* Publish: pairs with the acquire load of seq in fr__ring_snapshot, which
     * then sees commit=0 and the new base_ticks. */
    atomic_store_explicit(&pg->seq, ((uint64_t)w->gen << FR_SEQ_GEN_SHIFT) | (n & FR_SEQ_MASK),
                          FR_RELEASE);
    /* After the page: a dumper that reads n (acquire) finds page n published. */
    atomic_store_explicit(&r->pages_started, n, FR_RELEASE);

    w->page = pg;
    w->page_index = idx;
    w->pos = pg->data;
    w->limit = pg->data + FR_PAGE_PAYLOAD - FR_MAX_RECORD;
    w->last_ticks = now;
    w->last_task = 0;
    w->count = 0;
}

/* The payload copy races with the owner by design: the seqlock check after it
 * decides whether the bytes are kept. TSan cannot see that protocol, so this
 * one loop is excluded from instrumentation rather than suppressing the file. */
__attribute__((no_sanitize("thread"))) static void racy_copy(uint8_t *dst, const uint8_t *src,
                                                           size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ((const volatile uint8_t *)src)[i];
}

/*
 * fr__ring_snapshot - copy one page if it is whole and belongs to @gen.
 * @r: the ring. @idx: page index. @gen: the slot generation read beforehand.
 * @out: receives the header fields (seq without the generation bits) and data.
 *
 * Async-signal-safe; never blocks the owner.
 * Return: 1 if @out holds a consistent page; 0 if the page is empty, belongs
 * to another generation, or was recycled while being copied.
 */
int fr__ring_snapshot(const struct fr_ring *r, uint32_t idx, uint32_t gen, struct fr_page_copy *out)
{
    struct fr_page *pg = fr__ring_page(r, idx);
    uint64_t s1 = atomic_load_explicit(&pg->seq, FR_ACQUIRE);
    if (s1 == 0 || (uint32_t)(s1 >> FR_SEQ_GEN_SHIFT) != (gen & 0xffffffu))
        return 0;
    /* Pairs with the owner's release store of commit after each record. */
    uint64_t c = atomic_load_explicit(&pg->commit, FR_ACQUIRE);
    uint32_t used = (uint32_t)c, count = (uint32_t)(c >> 32);
    if (used > FR_PAGE_PAYLOAD)
        return 0;
    out->base_ticks = atomic_load_explicit(&pg->base_ticks, FR_RELAXED);
    racy_copy(out->data, pg->data, used);
    /* Pairs with the release fence in fr__writer_next_page. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&pg->seq, FR_RELAXED) != s1)
        return 0;
    out->seq = s1 & FR_SEQ_MASK;
    out->used = used;
    out->count = count;
    return 1;
}

/* Reset a ring for a new owner. Only called on a slot in FR_SLOT_CLAIMED
 * state (readers skip those); stale readers are caught by the generation. */
void fr__ring_reset(struct fr_ring *r)
{
    for (uint32_t i = 0; i < r->npages; i++) {
        struct fr_page *pg = fr__ring_page(r, i);
        atomic_store_explicit(&pg->seq, 0, FR_RELAXED);
        atomic_store_explicit(&pg->commit, 0, FR_RELAXED);
    }
    atomic_store_explicit(&r->pages_started, 0, FR_RELAXED);
    atomic_store_explicit(&r->events_overwritten, 0, FR_RELAXED);
    atomic_store_explicit(&r->events_dropped, 0, FR_RELAXED);
    atomic_store_explicit(&r->current_task, 0, FR_RELAXED);
}
