/*
 * decoder/pages.c - THREAD sections: the ring pages of one thread and the
 * delta-encoded records inside them (format.h, "records inside a page").
 *
 * A page is trusted only if its records fill it exactly: `count` records, no
 * more, no fewer, ending at byte `used`. A page that fails is dropped whole
 * and counted in frd_thread.pages_bad (a hole in the thread's history), the
 * other pages are kept. Pages may appear in any order; they are sorted by
 * sequence number, and the holes in the sequence decide the thread's coverage:
 * only events after the last hole are known to be complete.
 *
 * Validation decodes every record once but keeps none of them: the good pages
 * stay where they are in the section buffer (struct frd_page), and a thread
 * cursor (frd_tcur) decodes the records again, one at a time, whenever they
 * are read. A version-2 record may hold several events (a fold list, format.h):
 * the cursor returns them one by one, so readers see events, never records. Holding ~3.3 bytes an event instead of a 40-byte struct is what
 * lets the decoder take dumps of tens of millions of events.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "reader_int.h"

/* A fold list at @c (format.h): n, then n events of FR_FOLDABLE types, with
 * their string ids. Return: n (1..FR_FOLD_LIST_MAX), or 0 if it is not one.
 * Inlined: a call would keep the page's cursor in memory for every record. */
static inline __attribute__((always_inline)) uint32_t check_fold_list(struct frd_cur *c)
{
    uint8_t n, type;
    uint64_t s;
    if (frd_get_u8(c, &n) || n == 0 || n > FR_FOLD_LIST_MAX)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (frd_get_u8(c, &type) || type > FR_EV_MAX || !((FR_FOLDABLE >> type) & 1u))
            return 0;
        if ((frd__args_of[type] & FRD_A_STR) && (frd_get_uleb(c, &s) || s > UINT32_MAX))
            return 0;
    }
    return n;
}

/*
 * The fast path of check_records: records far enough from the end of their
 * page that none can run past it are read without a bounds test per byte.
 * It only accepts: anything it would have to reject, it leaves to the
 * checked path (which then says why), so both take and refuse exactly the
 * same pages.
 */

/* The most bytes a record can take: type, tick delta, task, parent, string
 * id (ULEB128, at most 10 bytes each), a fold list of FR_FOLD_LIST_MAX types
 * with a string id each and its count. */
#define FAST_RECORD_MAX (1 + 4 * 10 + 1 + FR_FOLD_LIST_MAX * (1 + 10))

/* ULEB128 as frd_get_uleb takes it, from at least 10 readable bytes.
 * Return: the byte after it, or NULL if frd_get_uleb would refuse it. */
static inline const uint8_t *uleb_unchecked(const uint8_t *q, uint64_t *v)
{
    if (*q < 0x80) {
        *v = *q;
        return q + 1;
    }
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        uint8_t b = *q++;
        if (shift == 63 && (b & 0x7e))
            return NULL;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return q;
        }
    }
    return NULL;
}

/* check_fold_list from at least 1 + FR_FOLD_LIST_MAX * 11 readable bytes:
 * the byte after the list and its length in *@n, or NULL. */
static inline const uint8_t *fold_list_unchecked(const uint8_t *q, uint32_t *n)
{
    uint8_t k = *q++;
    uint64_t s;
    if (k == 0 || k > FR_FOLD_LIST_MAX)
        return NULL;
    for (uint32_t i = 0; i < k; i++) {
        uint8_t type = *q++;
        if (type > FR_EV_MAX || !((FR_FOLDABLE >> type) & 1u))
            return NULL;
        if ((frd__args_of[type] & FRD_A_STR) && (!(q = uleb_unchecked(q, &s)) || s > UINT32_MAX))
            return NULL;
    }
    *n = k;
    return q;
}

/* What a record's type byte says, for the fast path: one table look-up
 * instead of the checks on its kind and flags (0: leave it to the checked
 * path). */
enum {
    RD_OK = 1,    /* a type byte check_records accepts */
    RD_DELTA = 2, /* a tick delta follows */
    RD_TASK = 4,  /* then the args of its kind (frd__args_of) */
    RD_PARENT = 8,
    RD_STR = 16,
    RD_LIST = 32,  /* a poll end with a fold list after its task */
    RD_FOLD = 64,  /* a record of folded events alone: task, list */
    RD_NAME = 128, /* THREAD_NAME */
};

/* The table for dumps of format @version (record flags from 2 on). */
static void record_desc(uint8_t desc[256], unsigned version)
{
    const uint8_t flags_known = version >= 2 ? FR_REC_SAME_TIME | FR_REC_FOLDED : 0;
    for (unsigned tb = 0; tb < 256; tb++) {
        unsigned type = tb & FR_REC_KIND;
        int fold = version >= 2 && type == FR_REC_FOLD;
        uint8_t d = 0;
        if (!((tb & ~(FR_REC_KIND | flags_known)) || (!fold && (type == 0 || type > FR_EV_MAX)) ||
              (fold && !(tb & FR_REC_SAME_TIME)) ||
              ((tb & FR_REC_FOLDED) && type != FR_EV_POLL_PENDING && type != FR_EV_POLL_READY))) {
            d = RD_OK | (tb & FR_REC_SAME_TIME ? 0 : RD_DELTA);
            if (fold) {
                d |= RD_FOLD;
            } else {
                uint8_t a = frd__args_of[type];
                d |= (a & FRD_A_TASK ? RD_TASK : 0) | (a & FRD_A_PARENT ? RD_PARENT : 0) |
                     (a & FRD_A_STR ? RD_STR : 0) | (tb & FR_REC_FOLDED ? RD_LIST : 0) |
                     (type == FR_EV_THREAD_NAME ? RD_NAME : 0);
            }
        }
        desc[tb] = d;
    }
}

/* One record at @q (not a page's first) that check_records would accept,
 * with at least FAST_RECORD_MAX readable bytes: its ticks added to *@ticks,
 * its events to *@events, a spawn counted and a THREAD_NAME noted in @pg.
 * Return: the byte after it, or NULL to let the checked path look at it
 * (nothing changed). */
static inline const uint8_t *record_unchecked(const uint8_t *q, const uint8_t desc[256],
                                              uint64_t *ticks, uint32_t *events,
                                              struct frd_page *pg)
{
    uint8_t tb = *q++, d = desc[tb];
    uint64_t delta = 0, z, s = 0;
    uint32_t n = 1, k;
    if (!d)
        return NULL;
    if ((d & RD_DELTA) && !(q = uleb_unchecked(q, &delta)))
        return NULL;
    if (d & RD_FOLD) {
        if (!(q = uleb_unchecked(q, &z)) || !(q = fold_list_unchecked(q, &n)))
            return NULL;
    } else {
        if ((d & RD_TASK) && !(q = uleb_unchecked(q, &z)))
            return NULL;
        if ((d & RD_PARENT) && !(q = uleb_unchecked(q, &z)))
            return NULL;
        if ((d & RD_STR) && (!(q = uleb_unchecked(q, &s)) || s > UINT32_MAX))
            return NULL;
        if (d & RD_LIST) {
            if (!(q = fold_list_unchecked(q, &k)))
                return NULL;
            n += k;
        }
        if (d & RD_NAME) {
            pg->has_name = 1;
            pg->name_str = (uint32_t)s;
        }
        if ((tb & FR_REC_KIND) == FR_EV_SPAWN)
            pg->spawns++;
    }
    *ticks += delta;
    *events += n;
    return q;
}

/*
 * Check that the @count records in @used bytes at @p decode and fill the
 * bytes exactly, noting in @pg the ticks of the first and last record, the
 * events they hold and the last THREAD_NAME. Version-2 record flags and
 * fold lists are taken only if @version >= 2 (@desc is record_desc's table
 * for @version). Nothing is stored per record: frd_tcur_next decodes them
 * again when they are read.
 * Return: 0, or -EBADMSG with @why describing the first mismatch.
 */
static int check_records(const uint8_t *p, uint32_t used, uint32_t count, uint64_t base,
                         unsigned version, const uint8_t desc[256], struct frd_page *pg, char *why,
                         size_t whylen)
{
    struct frd_cur c = frd_cur_make(p, used);
    uint64_t ticks = base;
    uint32_t events = 0;
    const uint8_t flags_known = version >= 2 ? FR_REC_SAME_TIME | FR_REC_FOLDED : 0;
    for (uint32_t i = 0; i < count; i++) {
        if (i > 0 && used - c.pos >= FAST_RECORD_MAX) {
            const uint8_t *q = record_unchecked(p + c.pos, desc, &ticks, &events, pg);
            if (q) {
                c.pos = (size_t)(q - p);
                continue;
            }
        }
        size_t at = c.pos;
        uint8_t tb, type;
        uint64_t delta, z, s;
        if (frd_get_u8(&c, &tb)) {
            snprintf(why, whylen, "%u records in %u bytes, found %u", count, used, i);
            return -EBADMSG;
        }
        type = tb & FR_REC_KIND;
        int fold = version >= 2 && type == FR_REC_FOLD;
        if ((tb & ~(FR_REC_KIND | flags_known)) || (!fold && (type == 0 || type > FR_EV_MAX)) ||
            (fold && !(tb & FR_REC_SAME_TIME)) ||
            ((tb & FR_REC_FOLDED) && type != FR_EV_POLL_PENDING && type != FR_EV_POLL_READY)) {
            snprintf(why, whylen, "an event type 1..%u at record %u (byte %zu), found %u",
                     FR_EV_MAX, i, at, tb);
            return -EBADMSG;
        }
        if (i == 0) /* a folded poll end's list has the ticks before its delta */
            pg->first_ticks = ticks;
        if (!(tb & FR_REC_SAME_TIME)) {
            if (frd_get_uleb(&c, &delta))
                goto short_record;
            ticks += delta;
        }
        if (i == 0 && !(tb & FR_REC_FOLDED))
            pg->first_ticks = ticks;
        if (fold) {
            uint32_t n;
            if (frd_get_uleb(&c, &z) || (n = check_fold_list(&c)) == 0)
                goto bad_list;
            events += n;
            continue;
        }
        events++;
        pg->spawns += type == FR_EV_SPAWN;
        uint8_t a = frd__args_of[type];
        if ((a & FRD_A_TASK) && frd_get_uleb(&c, &z))
            goto short_record;
        if ((a & FRD_A_PARENT) && frd_get_uleb(&c, &z))
            goto short_record;
        if (a & FRD_A_STR) {
            if (frd_get_uleb(&c, &s))
                goto short_record;
            if (s > UINT32_MAX) {
                snprintf(why, whylen, "a 32-bit string id at record %u, found %llu", i,
                         (unsigned long long)s);
                return -EBADMSG;
            }
            if (type == FR_EV_THREAD_NAME) {
                pg->has_name = 1;
                pg->name_str = (uint32_t)s;
            }
        }
        if (tb & FR_REC_FOLDED) {
            uint32_t n = check_fold_list(&c);
            if (n == 0)
                goto bad_list;
            events += n;
        }
        continue;
    short_record:
        snprintf(why, whylen, "%u records in %u bytes, found record %u (%s, byte %zu) cut "
                 "short", count, used, i, frd_event_name(type), at);
        return -EBADMSG;
    bad_list:
        snprintf(why, whylen, "a list of 1..%u foldable events in record %u (byte %zu), found "
                 "none", FR_FOLD_LIST_MAX, i, at);
        return -EBADMSG;
    }
    if (c.pos != used) {
        snprintf(why, whylen, "%u records in %u bytes, found them ending at byte %zu", count,
                 used, c.pos);
        return -EBADMSG;
    }
    pg->last_ticks = ticks;
    pg->events = events;
    return 0;
}

/* Pages of one THREAD section whose records are checked (check_pages). */
struct page_check {
    struct frd_page *pg; /* found whole in the section, in file order */
    size_t n;
    uint32_t page_size;
    unsigned version;
    uint8_t desc[256];   /* record_desc for version */
    char (*why)[160];    /* per page: empty, or why it is dropped */
};

/* Check pages [@from, @to) of @pc: each one's fields and records, filling
 * in what check_records notes; a page found wrong gets its reason. */
static void check_range(struct page_check *pc, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct frd_page *p = &pc->pg[i];
        char *why = pc->why[i];
        size_t whylen = sizeof(pc->why[i]);
        if (p->used > pc->page_size - FR_PAGE_HEADER_SIZE)
            snprintf(why, whylen, "at most %u used bytes, found %u",
                     pc->page_size - FR_PAGE_HEADER_SIZE, p->used);
        else if (p->seq == 0)
            /* a page started while the dump ran may carry a seq past
             * pages_started (read before the copy): accepted, see below */
            snprintf(why, whylen, "a sequence number from 1, found 0");
        else if ((uint64_t)p->count * 2 > p->used)
            snprintf(why, whylen, "%u records in %u bytes, found too few bytes", p->count,
                     p->used);
        else if (check_records(p->body, p->used, p->count, p->base, pc->version, pc->desc, p, why,
                               whylen) == 0)
            why[0] = 0;
    }
}

struct check_half {
    struct page_check *pc;
    size_t from, to;
};

static void *check_half_main(void *arg)
{
    struct check_half *h = arg;
    check_range(h->pc, h->from, h->to);
    return NULL;
}

/* Sections with at least this many bytes of pages are checked by two
 * threads, each taking half of the pages: checking is most of what reading
 * a section costs after inflating it, and every page checks on its own. */
#define CHECK_SPLIT_BYTES ((size_t)4 << 20)
int frd__check_split_always;

static void check_pages(struct page_check *pc)
{
    size_t bytes = 0;
    for (size_t i = 0; i < pc->n; i++)
        bytes += pc->pg[i].used;
    if (pc->n >= 2 && (bytes >= CHECK_SPLIT_BYTES || frd__check_split_always)) {
        /* split where half of the bytes lie */
        size_t mid = 0, half = 0;
        while (mid < pc->n - 1 && half < bytes / 2)
            half += pc->pg[mid++].used;
        struct check_half h = {pc, mid, pc->n};
        pthread_t th;
        if (pthread_create(&th, NULL, check_half_main, &h) == 0) {
            check_range(pc, 0, mid);
            pthread_join(th, NULL);
            return;
        }
    }
    check_range(pc, 0, pc->n);
}

/* By sequence number; equal ones in file order (bodies lie in file order). */
static int cmp_page(const void *a, const void *b)
{
    const struct frd_page *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return (uintptr_t)x->body < (uintptr_t)y->body ? -1 : (uintptr_t)x->body > (uintptr_t)y->body;
}

void frd__sec_thread(struct frd_dump *d, uint64_t off, struct frd_cur *c, struct frd_thread *t)
{
    uint32_t reserved;
    const uint8_t *name;
    if (frd_get_u32(c, &t->tid) || frd_get_u32(c, &t->slot) || frd_get_u32(c, &t->state) ||
        frd_get_u32(c, &t->page_size) || frd_get_u64(c, &t->current_task) ||
        frd_get_u64(c, &t->pages_started) || frd_get_u64(c, &t->events_overwritten) ||
        frd_get_u64(c, &t->events_dropped) || !(name = frd_get_bytes(c, FR_THREAD_NAME_MAX)) ||
        frd_get_u32(c, &t->gen) || frd_get_u32(c, &reserved)) {
        frd__error(d, off, "THREAD section: expected an 88-byte thread header, found %zu "
                   "bytes", c->len);
        return;
    }
    t->file_offset = off;
    memcpy(t->name, name, FR_THREAD_NAME_MAX);
    t->name[FR_THREAD_NAME_MAX] = 0;
    /* history is unknown until pages say otherwise */
    t->covered_from_ns = INT64_MAX;
    if (t->page_size <= FR_PAGE_HEADER_SIZE || t->page_size > FRD_SECTION_MAX) {
        frd__error(d, off, "THREAD section (tid %u) byte 20: expected a page size above %u, "
                   "found %u", t->tid, FR_PAGE_HEADER_SIZE, t->page_size);
        return;
    }
    /* Pages run to the end of the section; each takes at least its header. */
    size_t max_pages = frd_cur_left(c) / FR_PAGE_HEADER_SIZE;
    struct frd_page *pg = malloc((max_pages ? max_pages : 1) * sizeof(*pg));
    if (!pg) {
        frd__error(d, off, "THREAD section (tid %u): expected memory for its pages, found "
                   "none", t->tid);
        return;
    }
    /* First the pages' headers, in order: where each is and how long. */
    size_t nfound = 0;
    uint32_t npages = 0;
    char stop[200] = ""; /* why the pages could not be followed further */
    while (frd_cur_left(c) > 0) {
        npages++;
        size_t at = c->pos + 8; /* offset in the section, for messages */
        struct frd_page *p = &pg[nfound];
        memset(p, 0, sizeof(*p));
        if (frd_get_u64(c, &p->seq) || frd_get_u64(c, &p->base) || frd_get_u32(c, &p->used) ||
            frd_get_u32(c, &p->count)) {
            snprintf(stop, sizeof(stop), "byte %zu: expected a %u-byte page header, found %zu "
                     "bytes", at, FR_PAGE_HEADER_SIZE, frd_cur_left(c));
            break;
        }
        if (!(p->body = frd_get_bytes(c, p->used))) {
            /* the page runs past the section: the pages after it cannot be found */
            snprintf(stop, sizeof(stop), "byte %zu: expected a page of %u bytes, found %zu "
                     "bytes to the end of the section", at, p->used, frd_cur_left(c));
            break;
        }
        p->at = at;
        nfound++;
    }
    t->npages = npages;

    /* Then their records, each page on its own (two threads for a large
     * section); then what was wrong with them, in page order. */
    struct page_check pc = {.pg = pg, .n = nfound, .page_size = t->page_size,
                            .version = d->hdr.version};
    record_desc(pc.desc, d->hdr.version);
    pc.why = calloc(nfound ? nfound : 1, sizeof(*pc.why));
    if (!pc.why) {
        free(pg);
        frd__error(d, off, "THREAD section (tid %u): expected memory for its pages, found "
                   "none", t->tid);
        return;
    }
    check_pages(&pc);
    size_t ngood = 0;
    for (size_t i = 0; i < nfound; i++) {
        if (pc.why[i][0]) {
            frd__error(d, off, "THREAD section (tid %u) byte %zu, page seq %llu: expected %s "
                       "(page dropped)", t->tid, pg[i].at, (unsigned long long)pg[i].seq,
                       pc.why[i]);
            t->pages_bad++;
            continue;
        }
        pg[ngood++] = pg[i];
    }
    free(pc.why);
    if (stop[0]) {
        frd__error(d, off, "THREAD section (tid %u) %s", t->tid, stop);
        t->pages_bad++;
    }

    qsort(pg, ngood, sizeof(*pg), cmp_page);
    /* a duplicate sequence number: keep the first, drop the others */
    size_t w = 0;
    for (size_t i = 0; i < ngood; i++) {
        if (w && pg[w - 1].seq == pg[i].seq) {
            frd__error(d, off, "THREAD section (tid %u): expected unique page sequence "
                       "numbers, found %llu twice (page dropped)", t->tid,
                       (unsigned long long)pg[i].seq);
            t->pages_bad++;
            continue;
        }
        pg[w++] = pg[i];
    }
    ngood = w;

    size_t n = 0, spawns = 0;
    t->first_whole = 0;
    for (size_t i = 0; i < ngood; i++) {
        /* a hole before this page: only what follows it is known whole */
        uint64_t want = i ? pg[i - 1].seq + 1 : 1;
        if (pg[i].seq != want)
            t->first_whole = n;
        n += pg[i].events;
        spawns += pg[i].spawns;
    }
    t->complete_head = t->pages_started == 0 || (ngood > 0 && pg[0].seq == 1 &&
                                                 pg[ngood - 1].seq == ngood);
    t->complete_tail = t->pages_started == 0 || (ngood > 0 && pg[ngood - 1].seq >=
                                                 t->pages_started);
    if (ngood > 0 && pg[ngood - 1].seq > t->pages_started)
        t->pages_started = pg[ngood - 1].seq;
    if (t->complete_head)
        t->first_whole = 0;
    t->pages_missing = t->pages_started > ngood ? t->pages_started - ngood : 0;
    if (ngood < max_pages) {
        struct frd_page *shrunk = realloc(pg, (ngood ? ngood : 1) * sizeof(*pg));
        if (shrunk)
            pg = shrunk;
    }
    t->pages = pg;
    t->ngood = ngood;
    t->nevents = n;
    t->nspawns = spawns;
}

/* The ticks of the first event at or after index @k (at a page start). */
static int first_ticks_from(const struct frd_thread *t, size_t k, uint64_t *ticks)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ngood; i++) {
        if (n >= k && t->pages[i].events) {
            *ticks = t->pages[i].first_ticks;
            return 1;
        }
        n += t->pages[i].events;
    }
    return 0;
}

void frd__thread_coverage(struct frd_dump *d, struct frd_thread *t)
{
    uint64_t ticks = 0;
    if (t->nevents && first_ticks_from(t, 0, &ticks)) {
        t->first_ns = frd_ticks_to_ns(d, ticks);
        for (size_t i = t->ngood; i-- > 0;)
            if (t->pages[i].count) {
                t->last_ns = frd_ticks_to_ns(d, t->pages[i].last_ticks);
                break;
            }
    }
    if (t->complete_head)
        t->covered_from_ns = INT64_MIN;
    else if (t->first_whole < t->nevents && first_ticks_from(t, t->first_whole, &ticks))
        t->covered_from_ns = frd_ticks_to_ns(d, ticks);
    else
        t->covered_from_ns = INT64_MAX;
    if (t->name[0] == 0) {
        /* no name in the header: the last fr_thread_name() the ring still holds */
        for (size_t i = t->ngood; i-- > 0;) {
            if (!t->pages[i].has_name)
                continue;
            size_t len;
            const char *s = frd_string(d, t->pages[i].name_str, &len);
            if (s) {
                if (len > FR_THREAD_NAME_MAX)
                    len = FR_THREAD_NAME_MAX;
                memcpy(t->name, s, len);
                t->name[len] = 0;
            }
            break;
        }
    }
}

/* ---- cursor ------------------------------------------------------------- */

void frd_tcur_init(struct frd_tcur *c, const struct frd_dump *d, const struct frd_thread *t)
{
    memset(c, 0, sizeof(*c));
    c->d = d;
    c->t = t;
    c->memo_ticks = 0;
    c->memo_ns = frd__ticks_to_ns(&d->clock, 0);
}

int frd_tcur_next(struct frd_tcur *c, struct frd_event *e)
{
    return frd__tcur_next(c, e);
}
