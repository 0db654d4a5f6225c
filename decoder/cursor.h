/*
 * decoder/cursor.h - decoding one record at a thread cursor, and converting
 * ticks to nanoseconds, as inline functions: the model's merge runs them once
 * per event, so they are compiled into it rather than called. pages.c (the
 * validation and frd_tcur_next) and reader.c (frd_ticks_to_ns) use the same
 * code, so every path gives the same values. Not part of the decoder's API.
 */
#ifndef FRD_CURSOR_H
#define FRD_CURSOR_H

#include "bytes.h"
#include "reader.h"

/* Arguments each event type carries (format.h enum fr_event). */
/* FRD_A_LOCK is encoded and decoded like the parent, into e->lock (the same
 * storage as e->parent). */
enum { FRD_A_TASK = 1, FRD_A_PARENT = 2, FRD_A_STR = 4, FRD_A_LOCK = FRD_A_PARENT };
static const uint8_t frd__args_of[FR_EV_MAX + 1] = {
    [FR_EV_SPAWN] = FRD_A_TASK | FRD_A_PARENT | FRD_A_STR,
    [FR_EV_POLL_BEGIN] = FRD_A_TASK,
    [FR_EV_POLL_PENDING] = FRD_A_TASK,
    [FR_EV_POLL_READY] = FRD_A_TASK,
    [FR_EV_AWAIT] = FRD_A_TASK | FRD_A_STR,
    [FR_EV_WAKE] = FRD_A_TASK,
    [FR_EV_WAKER_CLONE] = FRD_A_TASK,
    [FR_EV_WAKER_DROP] = FRD_A_TASK,
    [FR_EV_PARK] = 0,
    [FR_EV_UNPARK] = 0,
    [FR_EV_DROP] = FRD_A_TASK,
    [FR_EV_MARK] = FRD_A_TASK | FRD_A_STR,
    [FR_EV_THREAD_NAME] = FRD_A_STR,
    [FR_EV_AWAIT_EXTERNAL] = FRD_A_TASK | FRD_A_STR,
    [FR_EV_IDLE] = FRD_A_TASK,
    [FR_EV_LOCK_WAIT] = FRD_A_TASK | FRD_A_LOCK | FRD_A_STR,
    [FR_EV_LOCK_ACQUIRE] = FRD_A_TASK | FRD_A_LOCK,
    [FR_EV_LOCK_RELEASE] = FRD_A_TASK | FRD_A_LOCK,
};

/* Ticks to CLOCK_MONOTONIC ns through the calibration in @k (reader.c). */
/*
 * Times are clamped to +-2^61 ns (73 years either side of the clock's
 * origin): a hostile clock section cannot push them to where the analyses'
 * differences (end - spawn) and sums (start + duration) overflow.
 */
#define FRD_NS_LIMIT ((int64_t)1 << 61)

static inline int64_t frd__ticks_to_ns(const struct frd_clock *k, uint64_t ticks)
{
    /* signed difference: events may precede the first calibration pair */
    double delta = ticks >= k->ref_ticks ? (double)(ticks - k->ref_ticks)
                                         : -(double)(k->ref_ticks - ticks);
    double ns = (double)k->ref_ns + delta * k->ns_per_tick;
    if (!(ns < (double)FRD_NS_LIMIT)) /* also NaN */
        return ns < 0 ? -FRD_NS_LIMIT : FRD_NS_LIMIT;
    if (ns < -(double)FRD_NS_LIMIT)
        return -FRD_NS_LIMIT;
    return (int64_t)ns;
}

/*
 * ULEB128 from a page the reader validated: it decodes, so the only test
 * kept is the end of the page (a cheap guard should the bytes ever differ).
 */
static inline uint64_t frd__uleb_trusted(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    if (__builtin_expect(p < end && *p < 0x80, 1)) {
        /* one byte: most deltas, task steps and string ids */
        *pp = p + 1;
        return *p;
    }
    uint64_t r = 0;
    for (unsigned shift = 0; p < end && shift < 70; shift += 7) {
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *pp = p;
    return r;
}

/* @ticks in ns, through the cursor's memo of the last conversion. */
static inline int64_t frd__tcur_ns(struct frd_tcur *c, uint64_t ticks)
{
    if (ticks != c->memo_ticks) {
        c->memo_ticks = ticks;
        c->memo_ns = frd__ticks_to_ns(&c->d->clock, ticks);
    }
    return c->memo_ns;
}

/* The next event of a version-2 record of several (c->nfold or c->end_type
 * set): a folded event of the list at c->fp, else the poll end after it. */
static inline int frd__tcur_folded(struct frd_tcur *c, struct frd_event *e)
{
    e->parent = 0;
    e->str = 0;
    e->task = c->fold_task;
    if (c->nfold) {
        const uint8_t *p = c->fp, *end = c->end;
        uint8_t type = p < end ? *p++ : 0;
        if (type > FR_EV_MAX)
            type = 0;
        if (frd__args_of[type] & FRD_A_STR)
            e->str = (uint32_t)frd__uleb_trusted(&p, end);
        e->type = type;
        e->ticks = c->fold_ticks;
        c->fp = p;
        if (--c->nfold == 0)
            c->p = p; /* the record ends with its list */
    } else {
        e->type = c->end_type;
        e->ticks = c->ticks;
        c->end_type = 0;
    }
    e->ns = frd__tcur_ns(c, e->ticks);
    c->idx++;
    return 1;
}

/* frd_tcur_next (reader.h), inline. */
static inline int frd__tcur_next(struct frd_tcur *c, struct frd_event *e)
{
    if (__builtin_expect(c->nfold | c->end_type, 0))
        return frd__tcur_folded(c, e);
    while (c->left == 0) {
        if (c->page >= c->t->ngood)
            return 0;
        const struct frd_page *pg = &c->t->pages[c->page++];
        c->p = pg->body;
        c->end = pg->body + pg->used;
        c->left = pg->count;
        c->ticks = pg->base;
        c->prev_task = 0;
    }
    c->left--;
    const uint8_t *p = c->p, *end = c->end;
    uint8_t tb = p < end ? *p++ : 0;
    uint8_t type = tb & FR_REC_KIND;
    uint64_t prev_ticks = c->ticks;
    if (!(tb & FR_REC_SAME_TIME))
        c->ticks += frd__uleb_trusted(&p, end);
    if (__builtin_expect(type == FR_REC_FOLD, 0)) {
        /* folded events alone: task, list */
        c->fold_task = c->prev_task + (uint64_t)frd_unzigzag(frd__uleb_trusted(&p, end));
        c->prev_task = c->fold_task;
        c->fold_ticks = c->ticks;
        c->nfold = p < end ? *p++ : 0;
        c->fp = p;
        c->p = p;
        if (c->nfold == 0) { /* validated pages never hold one; an empty event */
            e->type = 0;
            e->ticks = c->ticks;
            e->task = e->parent = 0;
            e->str = 0;
            e->ns = frd__tcur_ns(c, c->ticks);
            c->idx++;
            return 1;
        }
        return frd__tcur_folded(c, e);
    }
    if (type > FR_EV_MAX)
        type = 0;
    e->type = type;
    e->ticks = c->ticks;
    e->task = 0;
    e->parent = 0;
    e->str = 0;
    uint8_t a = frd__args_of[type];
    if (a & FRD_A_TASK) {
        e->task = c->prev_task + (uint64_t)frd_unzigzag(frd__uleb_trusted(&p, end));
        c->prev_task = e->task;
    }
    if (a & FRD_A_PARENT)
        e->parent = e->task + (uint64_t)frd_unzigzag(frd__uleb_trusted(&p, end));
    if (a & FRD_A_STR)
        e->str = (uint32_t)frd__uleb_trusted(&p, end);
    if (__builtin_expect(tb & FR_REC_FOLDED, 0) && p < end && *p) {
        /* a poll end with a list: the list's events first, at the ticks of
         * the record before, then the poll end itself */
        c->fold_task = e->task;
        c->fold_ticks = prev_ticks;
        c->nfold = *p++;
        c->fp = p;
        c->end_type = type;
        return frd__tcur_folded(c, e);
    }
    c->p = p;
    e->ns = frd__tcur_ns(c, c->ticks);
    c->idx++;
    return 1;
}

#endif /* FRD_CURSOR_H */
