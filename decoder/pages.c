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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader_int.h"

struct page {
    uint64_t seq;
    size_t first, n; /* slice of the decoded events */
};

/* Arguments each event type carries (format.h enum fr_event). */
enum { A_TASK = 1, A_PARENT = 2, A_STR = 4 };
static const uint8_t args_of[FR_EV_MAX + 1] = {
    [FR_EV_SPAWN] = A_TASK | A_PARENT | A_STR,
    [FR_EV_POLL_BEGIN] = A_TASK,
    [FR_EV_POLL_PENDING] = A_TASK,
    [FR_EV_POLL_READY] = A_TASK,
    [FR_EV_AWAIT] = A_TASK | A_STR,
    [FR_EV_WAKE] = A_TASK,
    [FR_EV_WAKER_CLONE] = A_TASK,
    [FR_EV_WAKER_DROP] = A_TASK,
    [FR_EV_PARK] = 0,
    [FR_EV_UNPARK] = 0,
    [FR_EV_DROP] = A_TASK,
    [FR_EV_MARK] = A_TASK | A_STR,
    [FR_EV_THREAD_NAME] = A_STR,
};

/*
 * Decode the @count records in @used bytes at @p into @ev (room for @count).
 * Return: 0, or -EBADMSG with @why describing the first mismatch.
 */
static int decode_records(const uint8_t *p, uint32_t used, uint32_t count, uint64_t base,
                          struct frd_event *ev, char *why, size_t whylen)
{
    struct frd_cur c = frd_cur_make(p, used);
    uint64_t ticks = base, prev_task = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t at = c.pos;
        uint8_t type;
        uint64_t delta, z, s;
        if (frd_get_u8(&c, &type)) {
            snprintf(why, whylen, "%u records in %u bytes, found %u", count, used, i);
            return -EBADMSG;
        }
        if (type == 0 || type > FR_EV_MAX) {
            snprintf(why, whylen, "an event type 1..%u at record %u (byte %zu), found %u",
                     FR_EV_MAX, i, at, type);
            return -EBADMSG;
        }
        struct frd_event *e = &ev[i];
        memset(e, 0, sizeof(*e));
        e->type = type;
        if (frd_get_uleb(&c, &delta))
            goto short_record;
        ticks += delta;
        e->ticks = ticks;
        uint8_t a = args_of[type];
        if (a & A_TASK) {
            if (frd_get_uleb(&c, &z))
                goto short_record;
            e->task = prev_task + (uint64_t)frd_unzigzag(z);
            prev_task = e->task;
        }
        if (a & A_PARENT) {
            if (frd_get_uleb(&c, &z))
                goto short_record;
            e->parent = e->task + (uint64_t)frd_unzigzag(z);
        }
        if (a & A_STR) {
            if (frd_get_uleb(&c, &s))
                goto short_record;
            if (s > UINT32_MAX) {
                snprintf(why, whylen, "a 32-bit string id at record %u, found %llu", i,
                         (unsigned long long)s);
                return -EBADMSG;
            }
            e->str = (uint32_t)s;
        }
        continue;
    short_record:
        snprintf(why, whylen, "%u records in %u bytes, found record %u (%s, byte %zu) cut "
                 "short", count, used, i, frd_event_name(type), at);
        return -EBADMSG;
    }
    if (c.pos != used) {
        snprintf(why, whylen, "%u records in %u bytes, found them ending at byte %zu", count,
                 used, c.pos);
        return -EBADMSG;
    }
    return 0;
}

static int cmp_page(const void *a, const void *b)
{
    const struct page *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
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
    struct page *pg = calloc(max_pages ? max_pages : 1, sizeof(*pg));
    /* grown page by page; a page's count is checked against its bytes first */
    size_t cap_ev = 1024;
    struct frd_event *ev = malloc(cap_ev * sizeof(*ev));
    if (!pg || !ev) {
        free(pg);
        free(ev);
        frd__error(d, off, "THREAD section (tid %u): expected memory for its pages, found "
                   "none", t->tid);
        return;
    }
    size_t nev = 0, ngood = 0;
    uint32_t npages = 0;
    for (uint32_t i = 0; frd_cur_left(c) > 0; i++) {
        npages++;
        size_t at = c->pos + 8; /* offset in the section, for messages */
        uint64_t seq, base;
        uint32_t used, count;
        if (frd_get_u64(c, &seq) || frd_get_u64(c, &base) || frd_get_u32(c, &used) ||
            frd_get_u32(c, &count)) {
            frd__error(d, off, "THREAD section (tid %u) byte %zu: expected a %u-byte page "
                       "header, found %zu bytes", t->tid, at, FR_PAGE_HEADER_SIZE,
                       frd_cur_left(c));
            t->pages_bad++;
            break;
        }
        const uint8_t *body = frd_get_bytes(c, used);
        if (!body) {
            /* the page runs past the section: the pages after it cannot be found */
            frd__error(d, off, "THREAD section (tid %u) byte %zu: expected a page of %u "
                       "bytes, found %zu bytes to the end of the section", t->tid, at, used,
                       frd_cur_left(c));
            t->pages_bad++;
            break;
        }
        char why[160];
        int bad = 0;
        if (used > t->page_size - FR_PAGE_HEADER_SIZE) {
            snprintf(why, sizeof(why), "at most %u used bytes, found %u",
                     t->page_size - FR_PAGE_HEADER_SIZE, used);
            bad = 1;
        } else if (seq == 0) {
            /* a page started while the dump ran may carry a seq past
             * pages_started (read before the copy): accepted, see below */
            snprintf(why, sizeof(why), "a sequence number from 1, found 0");
            bad = 1;
        } else if ((uint64_t)count * 2 > used) {
            snprintf(why, sizeof(why), "%u records in %u bytes, found too few bytes", count,
                     used);
            bad = 1;
        } else {
            if (nev + count > cap_ev) {
                size_t nc = cap_ev;
                while (nc < nev + count)
                    nc *= 2;
                struct frd_event *ne = realloc(ev, nc * sizeof(*ev));
                if (!ne) {
                    frd__error(d, off, "THREAD section (tid %u): expected memory for %zu "
                               "events, found none", t->tid, nc);
                    t->pages_bad++;
                    break;
                }
                ev = ne;
                cap_ev = nc;
            }
            if (decode_records(body, used, count, base, ev + nev, why, sizeof(why)))
                bad = 1;
        }
        if (bad) {
            frd__error(d, off, "THREAD section (tid %u) byte %zu, page seq %llu: expected %s "
                       "(page dropped)", t->tid, at, (unsigned long long)seq, why);
            t->pages_bad++;
            continue;
        }
        pg[ngood].seq = seq;
        pg[ngood].first = nev;
        pg[ngood].n = count;
        ngood++;
        nev += count;
    }
    t->npages = npages;

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

    struct frd_event *out = malloc((nev ? nev : 1) * sizeof(*out));
    if (!out) {
        free(pg);
        free(ev);
        frd__error(d, off, "THREAD section (tid %u): expected memory for events, found none",
                   t->tid);
        return;
    }
    size_t n = 0;
    t->first_whole = 0;
    for (size_t i = 0; i < ngood; i++) {
        /* a hole before this page: only what follows it is known whole */
        uint64_t want = i ? pg[i - 1].seq + 1 : 1;
        if (pg[i].seq != want)
            t->first_whole = n;
        memcpy(out + n, ev + pg[i].first, pg[i].n * sizeof(*out));
        n += pg[i].n;
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
    t->events = out;
    t->nevents = n;
    free(pg);
    free(ev);
}

void frd__thread_coverage(struct frd_dump *d, struct frd_thread *t)
{
    if (t->nevents) {
        t->first_ns = t->events[0].ns;
        t->last_ns = t->events[t->nevents - 1].ns;
    }
    if (t->complete_head)
        t->covered_from_ns = INT64_MIN;
    else if (t->first_whole < t->nevents)
        t->covered_from_ns = t->events[t->first_whole].ns;
    else
        t->covered_from_ns = INT64_MAX;
    if (t->name[0] == 0) {
        /* no name in the header: the last fr_thread_name() the ring still holds */
        for (size_t i = t->nevents; i-- > 0;) {
            if (t->events[i].type != FR_EV_THREAD_NAME)
                continue;
            size_t len;
            const char *s = frd_string(d, t->events[i].str, &len);
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
