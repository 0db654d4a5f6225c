/*
 * decoder/reader.c - frame walking, section decoding and validation of a dump.
 *
 * The file is read whole into memory (it may come from a pipe; it is freed
 * once its frames are inflated, nothing kept points into it), then walked
 * frame by frame: frame 0 is the skippable frame holding the file header, each
 * later zstd frame is one section. Frame sizes come from
 * ZSTD_findFrameCompressedSize, never from a length we would have to trust,
 * and each frame is inflated by streaming into a buffer that may not grow past
 * FRD_SECTION_MAX. Sections are then parsed field by field through the
 * bounds-checked cursor in bytes.h; the ring pages of THREAD sections are
 * handed to pages.c. When all frames are read, the CLOCK section is turned into
 * a ticks-to-nanoseconds conversion and per-thread coverage is computed.
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "bytes.h"
#include "cursor.h"
#include "prefault.h"
#include "reader_int.h"

/* ---- allocations owned by the dump ------------------------------------- */

struct frd_priv {
    void **allocs;
    size_t nallocs, cap;
    ZSTD_DCtx *dctx;
    struct frd_prefaulter pf; /* while the frames are read (large files only) */
};

/* Files this large or larger are inflated with a prefaulter (prefault.h):
 * each step of a section's buffer is faulted in while the one before it is
 * inflated and checked. */
#ifndef FRD_PREFAULT_FILE
#define FRD_PREFAULT_FILE ((size_t)4 << 20)
#endif

void *frd__keep(struct frd_dump *d, void *p)
{
    struct frd_priv *pv = d->priv;
    if (!p)
        return NULL;
    if (pv->nallocs == pv->cap) {
        size_t ncap = pv->cap ? pv->cap * 2 : 32;
        void **n = realloc(pv->allocs, ncap * sizeof(*n));
        if (!n) {
            free(p);
            return NULL;
        }
        pv->allocs = n;
        pv->cap = ncap;
    }
    pv->allocs[pv->nallocs++] = p;
    return p;
}

void frd__error(struct frd_dump *d, uint64_t off, const char *fmt, ...)
{
    d->damaged = 1;
    d->errors_all++;
    if (d->nerrors >= FRD_MAX_ERRORS)
        return;
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    size_t n = strlen(d->path) + strlen(body) + 48;
    char *msg = malloc(n);
    if (!msg)
        return;
    snprintf(msg, n, "%s: offset %llu: %s", d->path, (unsigned long long)off, body);
    if (!d->errors) {
        d->errors = calloc(FRD_MAX_ERRORS, sizeof(char *));
        if (!d->errors) {
            free(msg);
            return;
        }
    }
    d->errors[d->nerrors++] = msg;
}

/* ---- names ------------------------------------------------------------- */

const char *frd_event_name(unsigned type)
{
    static const char *const names[] = {
        [FR_EV_SPAWN] = "spawn",
        [FR_EV_POLL_BEGIN] = "poll_begin",
        [FR_EV_POLL_PENDING] = "poll_pending",
        [FR_EV_POLL_READY] = "poll_ready",
        [FR_EV_AWAIT] = "await",
        [FR_EV_WAKE] = "wake",
        [FR_EV_WAKER_CLONE] = "waker_clone",
        [FR_EV_WAKER_DROP] = "waker_drop",
        [FR_EV_PARK] = "park",
        [FR_EV_UNPARK] = "unpark",
        [FR_EV_DROP] = "drop",
        [FR_EV_MARK] = "mark",
        [FR_EV_THREAD_NAME] = "thread_name",
        [FR_EV_AWAIT_EXTERNAL] = "await_external",
        [FR_EV_IDLE] = "idle",
        [FR_EV_LOCK_WAIT] = "lock_wait",
        [FR_EV_LOCK_ACQUIRE] = "lock_acquire",
        [FR_EV_LOCK_RELEASE] = "lock_release",
    };
    if (type == 0 || type > FR_EV_MAX)
        return "unknown";
    return names[type];
}

const char *frd_trigger_name(uint32_t trigger)
{
    switch (trigger) {
    case FR_TRIGGER_API: return "api";
    case FR_TRIGGER_SIGNAL: return "signal";
    case FR_TRIGGER_CRASH: return "crash";
    case FR_TRIGGER_STALL: return "stall";
    case FR_TRIGGER_TERMINATION: return "termination";
    case FR_TRIGGER_RECOVERED: return "recovered";
    default: return "unknown";
    }
}

static const char *section_name(uint32_t kind)
{
    switch (kind) {
    case FR_SEC_PROCESS: return "PROCESS";
    case FR_SEC_CLOCK: return "CLOCK";
    case FR_SEC_CRASH: return "CRASH";
    case FR_SEC_STRINGS: return "STRINGS";
    case FR_SEC_MODULES: return "MODULES";
    case FR_SEC_THREAD: return "THREAD";
    case FR_SEC_END: return "END";
    case FR_SEC_NOTES: return "NOTES";
    case FR_SEC_STALL: return "STALL";
    case FR_SEC_RECOVERY: return "RECOVERY";
    case FR_SEC_COPIED: return "COPIED";
    case FR_SEC_SPAWNS: return "SPAWNS";
    case FR_SEC_RUN_DELAY: return "RUN_DELAY";
    default: return "unknown";
    }
}

/* ---- input ------------------------------------------------------------- */

static int read_fd(int fd, uint8_t **out, size_t *outlen)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            uint8_t *n = realloc(buf, cap * 2);
            if (!n) {
                free(buf);
                return -ENOMEM;
            }
            buf = n;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            return e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/* ---- header (frame 0) -------------------------------------------------- */

static int parse_header(struct frd_dump *d, const uint8_t *buf, size_t len, size_t *next,
                        char *err, size_t errlen)
{
    struct frd_cur c = frd_cur_make(buf, len);
    uint32_t magic, size;
    if (frd_get_u32(&c, &magic) || frd_get_u32(&c, &size)) {
        snprintf(err, errlen, "%s: offset 0: expected a flightrec dump header, found %zu bytes",
                 d->path, len);
        return -EBADMSG;
    }
    if (magic != FR_SKIPPABLE_MAGIC) {
        /* a shared rings file, which recover turns into a dump */
        int rings = len >= 8 && memcmp(buf, FR_RINGS_MAGIC, 8) == 0;
        snprintf(err, errlen,
                 "%s: offset 0: expected skippable-frame magic 0x%08x, found 0x%08x "
                 "(%s)",
                 d->path, FR_SKIPPABLE_MAGIC, magic,
                 rings ? "a shared rings file, not a dump: `flightrec recover` makes a dump "
                         "of it"
                       : "not a flightrec dump");
        return -EBADMSG;
    }
    if (size < 64 + FR_REASON_MAX) {
        snprintf(err, errlen, "%s: offset 4: expected a header of at least %u bytes, found size %u",
                 d->path, 64 + FR_REASON_MAX, size);
        return -EBADMSG;
    }
    if (size > frd_cur_left(&c)) {
        snprintf(err, errlen,
                 "%s: offset 8: expected a header of %u bytes, found the file cut short after %zu "
                 "of them", d->path, size, frd_cur_left(&c));
        return -EBADMSG;
    }
    struct frd_cur h = frd_cur_make(c.p + c.pos, size);
    const uint8_t *m = frd_get_bytes(&h, 8);
    if (memcmp(m, FR_FILE_MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s: offset 8: expected magic \"%s\", found other bytes",
                 d->path, FR_FILE_MAGIC);
        return -EBADMSG;
    }
    struct frd_header *hd = &d->hdr;
    uint32_t endian;
    frd_get_u16(&h, &hd->version);
    frd_get_u16(&h, &hd->header_size);
    frd_get_u32(&h, &endian);
    if (endian != FR_ENDIAN_MARK) {
        snprintf(err, errlen, "%s: offset 20: expected endian mark 0x%08x, found 0x%08x%s",
                 d->path, FR_ENDIAN_MARK, endian,
                 endian == 0x04030201u ? " (big-endian writer: unsupported)" : "");
        return -EBADMSG;
    }
    if (hd->version < FR_FORMAT_VERSION_MIN || hd->version > FR_FORMAT_VERSION) {
        snprintf(err, errlen, "%s: offset 16: expected format version %u to %u, found %u",
                 d->path, FR_FORMAT_VERSION_MIN, FR_FORMAT_VERSION, hd->version);
        return -EBADMSG;
    }
    if (hd->header_size < 64 + FR_REASON_MAX || hd->header_size > size) {
        snprintf(err, errlen, "%s: offset 18: expected header_size %u..%u, found %u", d->path,
                 64 + FR_REASON_MAX, size, hd->header_size);
        return -EBADMSG;
    }
    frd_get_u32(&h, &hd->trigger);
    frd_get_u32(&h, &hd->signo);
    frd_get_u32(&h, &hd->pid);
    frd_get_u32(&h, &hd->page_size);
    frd_get_u64(&h, &hd->ring_bytes);
    frd_get_u64(&h, &hd->realtime_ns);
    frd_get_u64(&h, &hd->dump_seq);
    frd_get_u32(&h, &hd->max_threads);
    frd_get_u32(&h, &hd->flags);
    const uint8_t *r = frd_get_bytes(&h, FR_REASON_MAX);
    memcpy(hd->reason, r, FR_REASON_MAX);
    hd->reason[FR_REASON_MAX] = 0;
    *next = 8 + (size_t)size;
    return 0;
}

/* ---- simple sections --------------------------------------------------- */

static int get_blob(struct frd_cur *c, struct frd_blob *b)
{
    uint32_t n;
    size_t save = c->pos;
    if (frd_get_u32(c, &n))
        return -EBADMSG;
    const uint8_t *p = frd_get_bytes(c, n);
    if (!p) {
        c->pos = save;
        return -EBADMSG;
    }
    b->p = (const char *)p;
    b->len = n;
    return 0;
}

static void sec_process(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    struct frd_process *p = &d->proc;
    if (frd_get_u32(c, &p->pid) || frd_get_u32(c, &p->ppid) ||
        frd_get_u64(c, &p->start_realtime_ns) || get_blob(c, &p->exe) ||
        get_blob(c, &p->cmdline) || get_blob(c, &p->host) || get_blob(c, &p->version)) {
        frd__error(d, off, "PROCESS section byte %zu: expected a field, found the end of the "
                   "section (%zu bytes)", c->pos, c->len);
        memset(p, 0, sizeof(*p));
        return;
    }
    p->present = 1;
}

static void sec_clock(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    struct frd_clock *k = &d->clock;
    uint32_t src, n;
    if (frd_get_u32(c, &src) || frd_get_u32(c, &n)) {
        frd__error(d, off, "CLOCK section: expected source and npairs, found %zu bytes",
                   c->len);
        return;
    }
    if ((uint64_t)n * 24 > frd_cur_left(c)) {
        frd__error(d, off, "CLOCK section byte 12: expected %u pairs (%llu bytes), found %zu "
                   "bytes", n, (unsigned long long)n * 24, frd_cur_left(c));
        return;
    }
    if (src != FR_CLOCK_TSC && src != FR_CLOCK_MONOTONIC)
        frd__error(d, off, "CLOCK section byte 8: expected source 1 or 2, found %u", src);
    k->pairs = frd__keep(d, calloc(n ? n : 1, sizeof(*k->pairs)));
    if (!k->pairs)
        return;
    for (uint32_t i = 0; i < n; i++) {
        frd_get_u64(c, &k->pairs[i].ticks);
        frd_get_u64(c, &k->pairs[i].mono_ns);
        frd_get_u64(c, &k->pairs[i].real_ns);
    }
    k->source = src;
    k->npairs = n;
    k->present = 1;
}

static void sec_crash(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    struct frd_crash *k = &d->crash;
    uint32_t code;
    if (frd_get_u32(c, &k->signo) || frd_get_u32(c, &code) || frd_get_u64(c, &k->fault_addr) ||
        frd_get_u32(c, &k->tid) || frd_get_u32(c, &k->nframes) || frd_get_u64(c, &k->task) ||
        frd_get_u64(c, &k->ticks) || frd_get_u64(c, &k->ip) || frd_get_u64(c, &k->sp)) {
        frd__error(d, off, "CRASH section: expected 56 bytes of fields, found %zu", c->len);
        memset(k, 0, sizeof(*k));
        return;
    }
    k->code = (int32_t)code;
    k->frames = frd__read_frames(d, off, c, "CRASH", 20, &k->nframes);
    k->present = k->frames != NULL;
}

/*
 * frd__read_frames - the @n u64 instruction pointers that end a CRASH or
 * STALL section (@what, its frame count at byte @count_at), as far as the
 * section holds them (a shortfall is reported and the count cut to what is
 * there). Return: the frames (kept by @d), or NULL with *@n = 0 on ENOMEM.
 */
uint64_t *frd__read_frames(struct frd_dump *d, uint64_t off, struct frd_cur *c, const char *what,
                           unsigned count_at, uint32_t *n)
{
    if ((uint64_t)*n * 8 > frd_cur_left(c)) {
        frd__error(d, off, "%s section byte %u: expected %u frames (%llu bytes), found %zu bytes",
                   what, count_at, *n, (unsigned long long)*n * 8, frd_cur_left(c));
        *n = (uint32_t)(frd_cur_left(c) / 8);
    }
    uint64_t *f = frd__keep(d, calloc(*n ? *n : 1, sizeof(uint64_t)));
    if (!f) {
        *n = 0;
        return NULL;
    }
    for (uint32_t i = 0; i < *n; i++)
        frd_get_u64(c, &f[i]);
    return f;
}

static int cmp_string(const void *a, const void *b)
{
    const struct frd_string *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * STRINGS may come in more than one section (the recorder writes the strings
 * interned while it was dumping in a second one): entries are appended here
 * and sorted and checked for duplicate ids once all frames are read.
 */
static void sec_strings(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    /* entries to the end of the section; each is at least 8 bytes */
    size_t room = frd_cur_left(c) / 8;
    struct frd_string *s = realloc(d->strings, (d->nstrings + room + 1) * sizeof(*s));
    if (!s)
        return;
    d->strings = s;
    while (frd_cur_left(c)) {
        uint32_t id, len;
        size_t at = c->pos;
        const uint8_t *t = NULL;
        if (frd_get_u32(c, &id) || frd_get_u32(c, &len) || !(t = frd_get_bytes(c, len))) {
            frd__error(d, off, "STRINGS section byte %zu: expected a whole entry, found %zu "
                       "bytes to the end of the section", at + 8, c->len - at);
            break;
        }
        if (id <= FR_STRING_OVERFLOW) {
            frd__error(d, off, "STRINGS section byte %zu: expected an id above %u, found %u",
                       at + 8, FR_STRING_OVERFLOW, id);
            continue;
        }
        s[d->nstrings].id = id;
        s[d->nstrings].len = len;
        s[d->nstrings].text = (const char *)t;
        d->nstrings++;
    }
}

static void sort_strings(struct frd_dump *d)
{
    struct frd_string *s = d->strings;
    if (!s)
        return;
    qsort(s, d->nstrings, sizeof(*s), cmp_string);
    size_t w = 0;
    for (size_t i = 0; i < d->nstrings; i++) {
        if (w && s[w - 1].id == s[i].id) {
            if (s[w - 1].len != s[i].len || memcmp(s[w - 1].text, s[i].text, s[i].len))
                frd__error(d, d->stopped_at, "STRINGS: expected one text per id, found two "
                           "for id %u", s[i].id);
            continue;
        }
        s[w++] = s[i];
    }
    d->nstrings = w;
}

static void sec_end(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    uint32_t flags;
    if (frd_get_u32(c, &d->end_sections) || frd_get_u32(c, &flags)) {
        frd__error(d, off, "END section: expected 8 bytes, found %zu", c->len);
        return;
    }
    d->have_end = 1;
    if (d->end_sections != d->nsections)
        frd__error(d, off, "END section: expected %u sections before it, found %u",
                   d->end_sections, d->nsections);
}

static void sec_copied(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    if (c->len % 24) {
        frd__error(d, off, "COPIED section: expected a multiple of 24 bytes, found %zu "
                   "(ignored)", c->len);
        return;
    }
    size_t n = c->len / 24;
    if (!n)
        return;
    struct frd_copied *v = realloc(d->copied, (d->ncopied + n) * sizeof(*v));
    if (!v)
        return; /* copy times are a refinement: without them, as an older dump */
    d->copied = v;
    for (size_t i = 0; i < n; i++) {
        struct frd_copied *e = &v[d->ncopied + i];
        uint32_t reserved;
        if (frd_get_u32(c, &e->tid) || frd_get_u32(c, &e->slot) || frd_get_u32(c, &e->gen) ||
            frd_get_u32(c, &reserved) || frd_get_u64(c, &e->ticks))
            return;
    }
    d->ncopied += n;
}

static void sec_run_delay(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    if (!d->have_run_delay)
        d->run_delay_from_ns = INT64_MIN;
    d->have_run_delay = 1;
    size_t n = c->len / 32;
    if (c->len % 32)
        frd__error(d, off, "RUN_DELAY section: expected a multiple of 32 bytes, found %zu (the "
                   "%zu whole entries kept)", c->len, n);
    if (!n)
        return;
    struct frd_run_delay *v = realloc(d->run_delays, (d->nrun_delays + n) * sizeof(*v));
    if (!v)
        return; /* a refinement: without it, timing findings are given as in an older dump */
    d->run_delays = v;
    for (size_t i = 0; i < n; i++) {
        struct frd_run_delay *e = &v[d->nrun_delays];
        uint64_t from, to;
        uint32_t flags;
        if (frd_get_u64(c, &from) || frd_get_u64(c, &to) || frd_get_u64(c, &e->delay_ns) ||
            frd_get_u32(c, &e->tid) || frd_get_u32(c, &flags))
            return;
        if ((flags & 1) && to <= INT64_MAX && (int64_t)to > d->run_delay_from_ns)
            d->run_delay_from_ns = (int64_t)to; /* older entries were overwritten */
        if (from > to || to > INT64_MAX || e->delay_ns > INT64_MAX) {
            frd__error(d, off, "RUN_DELAY section byte %zu: expected from <= to, found %llu ns "
                       "in [%llu, %llu] (entry skipped)", 32 * i,
                       (unsigned long long)e->delay_ns, (unsigned long long)from,
                       (unsigned long long)to);
            continue;
        }
        e->from_ns = (int64_t)from;
        e->to_ns = (int64_t)to;
        d->nrun_delays++;
    }
}

static int cmp_copied(const void *a, const void *b)
{
    const struct frd_copied *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* Each thread's copy time: the COPIED entry with its slot, gen and tid. */
static void match_copied(struct frd_dump *d)
{
    if (d->ncopied > 1)
        qsort(d->copied, d->ncopied, sizeof(*d->copied), cmp_copied);
    for (size_t i = 0; i < d->nthreads; i++) {
        struct frd_thread *t = &d->threads[i];
        t->copied = 0;
        t->copied_ticks = 0;
        t->copied_ns = INT64_MAX;
        struct frd_copied key = { t->tid, t->slot, t->gen, 0 };
        const struct frd_copied *e =
            d->ncopied ? bsearch(&key, d->copied, d->ncopied, sizeof(key), cmp_copied) : NULL;
        if (e) {
            t->copied = 1;
            t->copied_ticks = e->ticks;
            t->copied_ns = frd_ticks_to_ns(d, e->ticks);
        }
    }
}

/* ---- frames ------------------------------------------------------------ */

/*
 * Inflate the zstd frame of @n bytes at @src into a new buffer of at most
 * FRD_SECTION_MAX bytes. Return: 0 with *out and *outlen set, -EBADMSG with a
 * message in @why, -ENOMEM.
 */
static int inflate(struct frd_dump *d, const uint8_t *src, size_t n, uint8_t **out,
                   size_t *outlen, char *why, size_t whylen)
{
    ZSTD_DCtx *dc = d->priv->dctx;
    ZSTD_DCtx_reset(dc, ZSTD_reset_session_only);
    unsigned long long hint = ZSTD_getFrameContentSize(src, n);
    size_t cap = 1 << 16;
    if (hint != ZSTD_CONTENTSIZE_UNKNOWN && hint != ZSTD_CONTENTSIZE_ERROR &&
        hint <= FRD_SECTION_MAX)
        cap = (size_t)hint + 1; /* +1 lets the stream say "done" without a retry */
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    frd__hugepages(buf, cap);
    /*
     * zstd is handed the buffer a step at a time, each step prefaulted first
     * (prefault.h): the buffer is filled, but not always to its end (the
     * header's size may lie, the frame may be cut short).
     */
    const size_t step = (size_t)1 << 20;
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_outBuffer ob = {buf, cap < step ? cap : step, 0};
    frd__prefault(buf, ob.size);
    frd__prefaulter_ask(&d->priv->pf, buf + ob.size, cap - ob.size < step ? cap - ob.size : step);
    for (;;) {
        size_t r = ZSTD_decompressStream(dc, &ob, &in);
        if (ZSTD_isError(r)) {
            snprintf(why, whylen, "%s", ZSTD_getErrorName(r));
            frd__prefaulter_forget(&d->priv->pf);
            free(buf);
            return -EBADMSG;
        }
        if (r == 0)
            break; /* frame complete, checksum verified */
        if (ob.pos == ob.size && ob.size < cap) {
            size_t more = cap - ob.size < step ? cap - ob.size : step;
            frd__prefault(buf + ob.size, more); /* quick if the prefaulter did it */
            ob.size += more;
            more = cap - ob.size < step ? cap - ob.size : step;
            frd__prefaulter_ask(&d->priv->pf, buf + ob.size, more);
        } else if (ob.pos == ob.size) {
            if (ob.size >= FRD_SECTION_MAX) {
                snprintf(why, whylen, "more than %u bytes (the section cap)",
                         (unsigned)FRD_SECTION_MAX);
                frd__prefaulter_forget(&d->priv->pf);
                free(buf);
                return -EBADMSG;
            }
            size_t ncap = ob.size * 2 > FRD_SECTION_MAX ? FRD_SECTION_MAX : ob.size * 2;
            frd__prefaulter_forget(&d->priv->pf); /* the buffer may move */
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
            ob.dst = buf;
            size_t more = cap - ob.size < step ? cap - ob.size : step;
            frd__prefault(buf + ob.size, more);
            ob.size += more;
        } else if (in.pos == in.size) {
            snprintf(why, whylen, "a frame that ends early");
            frd__prefaulter_forget(&d->priv->pf);
            free(buf);
            return -EBADMSG;
        }
    }
    /* what is still asked for lies in this buffer, which the caller may
     * shrink or free */
    frd__prefaulter_forget(&d->priv->pf);
    *out = buf;
    *outlen = ob.pos;
    return 0;
}

static void decode_section(struct frd_dump *d, uint64_t off, uint8_t *buf, size_t len)
{
    struct frd_cur c = frd_cur_make(buf, len);
    uint32_t kind, version;
    if (frd_get_u32(&c, &kind) || frd_get_u32(&c, &version)) {
        frd__error(d, off, "expected a section header (8 bytes), found %zu bytes", len);
        return;
    }
    if (version != 1) {
        frd__error(d, off, "%s section: expected layout version 1, found %u (skipped)",
                   section_name(kind), version);
        return;
    }
    d->nsections++;
    struct frd_cur body = frd_cur_make(buf + 8, len - 8);
    switch (kind) {
    case FR_SEC_PROCESS:
        if (d->proc.present)
            frd__error(d, off, "expected one PROCESS section, found another (ignored)");
        else
            sec_process(d, off, &body);
        break;
    case FR_SEC_CLOCK:
        if (d->clock.present)
            frd__error(d, off, "expected one CLOCK section, found another (ignored)");
        else
            sec_clock(d, off, &body);
        break;
    case FR_SEC_CRASH:
        if (d->crash.present)
            frd__error(d, off, "expected one CRASH section, found another (ignored)");
        else
            sec_crash(d, off, &body);
        break;
    case FR_SEC_STALL:
        if (d->stall.present)
            frd__error(d, off, "expected one STALL section, found another (ignored)");
        else
            frd__sec_stall(d, off, &body);
        break;
    case FR_SEC_RECOVERY:
        if (!d->recovery.present)
            frd__sec_recovery(d, off, &body);
        break;
    case FR_SEC_STRINGS:
        sec_strings(d, off, &body);
        break;
    case FR_SEC_MODULES:
        d->modules.p = (const char *)body.p;
        d->modules.len = body.len;
        break;
    case FR_SEC_NOTES:
        if (!d->notes.p) {
            d->notes.p = (const char *)body.p;
            d->notes.len = body.len;
        }
        break;
    case FR_SEC_THREAD: {
        if (d->nthreads >= FRD_THREADS_MAX) {
            frd__error(d, off, "expected at most %u THREAD sections, found more (ignored)",
                       FRD_THREADS_MAX);
            break;
        }
        struct frd_thread *t = frd__thread_new(d);
        if (t)
            frd__sec_thread(d, off, &body, t);
        else
            frd__error(d, off, "expected memory for a THREAD section, found none (ignored)");
        break;
    }
    case FR_SEC_END:
        d->nsections--; /* END counts the sections before it */
        sec_end(d, off, &body);
        break;
    case FR_SEC_COPIED:
        sec_copied(d, off, &body);
        break;
    case FR_SEC_SPAWNS:
        frd__sec_spawns(d, off, &body);
        break;
    case FR_SEC_RUN_DELAY:
        sec_run_delay(d, off, &body);
        break;
    default:
        break; /* unknown kinds are skipped by design */
    }
}

struct frd_thread *frd__thread_new(struct frd_dump *d)
{
    /* d->threads and each thread's events are freed by frd_close, not kept */
    struct frd_thread *n = realloc(d->threads, (d->nthreads + 1) * sizeof(*n));
    if (!n)
        return NULL;
    d->threads = n;
    memset(&n[d->nthreads], 0, sizeof(*n));
    return &n[d->nthreads++];
}

static void walk_frames(struct frd_dump *d, const uint8_t *buf, size_t len, size_t off)
{
    while (off < len) {
        size_t left = len - off;
        if (left < 8) {
            frd__error(d, off, "expected a frame header (at least 8 bytes), found %zu bytes "
                       "before the end of the file", left);
            d->stopped_at = off;
            return;
        }
        uint32_t magic = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                         (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) {
            /* another skippable frame: not ours to read, step over it */
            uint32_t sz = (uint32_t)buf[off + 4] | (uint32_t)buf[off + 5] << 8 |
                          (uint32_t)buf[off + 6] << 16 | (uint32_t)buf[off + 7] << 24;
            if (sz > left - 8) {
                frd__error(d, off, "expected a skippable frame of %u bytes, found %zu bytes "
                           "before the end of the file", sz, left - 8);
                d->stopped_at = off;
                return;
            }
            off += 8 + (size_t)sz;
            continue;
        }
        size_t fsz = ZSTD_findFrameCompressedSize(buf + off, left);
        if (ZSTD_isError(fsz)) {
            if (magic != ZSTD_MAGICNUMBER)
                frd__error(d, off, "expected a zstd frame (magic 0x%08x), found 0x%08x",
                           ZSTD_MAGICNUMBER, magic);
            else
                frd__error(d, off, "expected a whole zstd frame, found %s (%zu bytes before "
                           "the end of the file)", ZSTD_getErrorName(fsz), left);
            d->stopped_at = off;
            return;
        }
        uint8_t *sec;
        size_t seclen;
        char why[128];
        int r = inflate(d, buf + off, fsz, &sec, &seclen, why, sizeof(why));
        if (r == -ENOMEM) {
            frd__error(d, off, "expected memory to inflate a section, found none");
            d->stopped_at = off;
            return;
        }
        if (r < 0) {
            /* the frame's extent is known: report it and go on to the next one */
            frd__error(d, off, "expected a valid zstd frame of %zu bytes, found %s", fsz, why);
        } else if (frd__keep(d, sec)) {
            decode_section(d, off, sec, seclen);
        }
        off += fsz;
        if (d->have_end && off < len) {
            /* END is the dump's last frame: what follows is not this dump's
             * (another dump appended to it, `cat A.frd B.frd`), and merging
             * two processes' threads would make one history of both */
            frd__error(d, off, "expected the end of the file after the END section, found "
                       "%zu more bytes (another dump appended?): ignored, this dump ends "
                       "here", len - off);
            break;
        }
    }
    d->stopped_at = off;
}

/* ---- after all frames: clock, ns, coverage ----------------------------- */

static void calibrate(struct frd_dump *d)
{
    struct frd_clock *k = &d->clock;
    k->ns_per_tick = 1.0;
    k->ref_ticks = 0;
    k->ref_ns = 0;
    k->calibrated = 0;
    if (!k->present || k->npairs == 0) {
        if (d->hdr.flags & FR_HDR_TSC)
            frd__error(d, d->stopped_at, "expected a CLOCK section to convert TSC ticks, "
                       "found none (times are shown in ticks)");
        else
            k->calibrated = 1; /* ticks are already CLOCK_MONOTONIC ns */
        return;
    }
    /* widest-apart pairs: the smallest and largest tick values */
    uint32_t lo = 0, hi = 0;
    for (uint32_t i = 1; i < k->npairs; i++) {
        if (k->pairs[i].ticks < k->pairs[lo].ticks)
            lo = i;
        if (k->pairs[i].ticks > k->pairs[hi].ticks)
            hi = i;
    }
    k->ref_ticks = k->pairs[lo].ticks;
    k->ref_ns = (int64_t)k->pairs[lo].mono_ns;
    if (k->source == FR_CLOCK_MONOTONIC) {
        k->calibrated = 1;
        return;
    }
    /* The widest-apart two pairs whose rate is a TSC's (0.05..10 ns a tick:
     * 100 MHz to 20 GHz); a pair damaged on disk (a flipped byte in a
     * recovered .rings file) gives a rate far outside, and calibrating on
     * it would squeeze the recording into nothing and misorder threads. */
    uint32_t a = 0, b = 0;
    uint64_t span = 0;
    for (uint32_t i = 0; i < k->npairs; i++)
        for (uint32_t j = 0; j < k->npairs; j++) {
            const struct frd_clock_pair *x = &k->pairs[i], *y = &k->pairs[j];
            if (y->ticks <= x->ticks || y->mono_ns <= x->mono_ns)
                continue;
            double rate = (double)(y->mono_ns - x->mono_ns) / (double)(y->ticks - x->ticks);
            if (rate >= 0.05 && rate <= 10.0 && y->ticks - x->ticks > span) {
                a = i;
                b = j;
                span = y->ticks - x->ticks;
            }
        }
    if (!span) {
        frd__error(d, d->stopped_at, "expected two CLOCK pairs apart in time at a TSC's rate "
                   "(100 MHz to 20 GHz), found none of %u (ticks are taken as ns)", k->npairs);
        return;
    }
    if (a != lo || b != hi)
        frd__error(d, d->stopped_at, "expected every CLOCK pair at one TSC rate, found pairs "
                   "that disagree (calibrated on pairs %u and %u of %u)", a + 1, b + 1,
                   k->npairs);
    k->ref_ticks = k->pairs[a].ticks;
    k->ref_ns = (int64_t)k->pairs[a].mono_ns;
    k->ns_per_tick = (double)(k->pairs[b].mono_ns - k->pairs[a].mono_ns) /
                     (double)(k->pairs[b].ticks - k->pairs[a].ticks);
    k->calibrated = 1;
}

const struct frd_thread *frd_thread_by_tid(const struct frd_dump *d, uint32_t tid)
{
    const struct frd_thread *t = NULL;
    for (size_t i = 0; i < d->nthreads; i++)
        if (d->threads[i].tid == tid)
            t = &d->threads[i];
    return t;
}

int64_t frd_ticks_to_ns(const struct frd_dump *d, uint64_t ticks)
{
    return frd__ticks_to_ns(&d->clock, ticks);
}

int64_t frd_end_ns(const struct frd_dump *d)
{
    int64_t end = INT64_MIN;
    for (size_t i = 0; i < d->nthreads; i++)
        if (d->threads[i].nevents && d->threads[i].last_ns > end)
            end = d->threads[i].last_ns;
    if (d->crash.present && d->crash.ns > end)
        end = d->crash.ns;
    if (d->clock.present && d->clock.npairs) {
        /* the pair with the largest ticks was taken at the dump */
        uint32_t hi = 0;
        for (uint32_t i = 1; i < d->clock.npairs; i++)
            if (d->clock.pairs[i].ticks > d->clock.pairs[hi].ticks)
                hi = i;
        int64_t t = frd_ticks_to_ns(d, d->clock.pairs[hi].ticks);
        if (t > end)
            end = t;
    }
    return end == INT64_MIN ? 0 : end;
}

static void finish(struct frd_dump *d)
{
    sort_strings(d);
    calibrate(d);
    if (d->crash.present)
        d->crash.ns = frd_ticks_to_ns(d, d->crash.ticks);
    frd__stall_finish(d);
    for (size_t i = 0; i < d->nthreads; i++)
        frd__thread_coverage(d, &d->threads[i]);
    match_copied(d);
    if (!d->have_end)
        frd__error(d, d->stopped_at, "expected an END section, found %s: the dump was cut "
                   "short; everything before this point is shown",
                   d->stopped_at >= d->file_size ? "the end of the file" : "damage");
}

/* FRD_OPEN_EVENTS: every thread's events into an array of its own. */
static int materialise(struct frd_dump *d)
{
    for (size_t i = 0; i < d->nthreads; i++) {
        struct frd_thread *t = &d->threads[i];
        t->events = malloc((t->nevents ? t->nevents : 1) * sizeof(*t->events));
        if (!t->events)
            return -ENOMEM;
        struct frd_tcur c;
        frd_tcur_init(&c, d, t);
        size_t n = 0;
        while (n < t->nevents && frd_tcur_next(&c, &t->events[n]))
            n++;
    }
    return 0;
}

/* ---- public ------------------------------------------------------------ */

static int open_buffer(uint8_t *buf, size_t len, const char *name, unsigned flags,
                       struct frd_dump **out, char *err, size_t errlen)
{
    struct frd_dump *d = calloc(1, sizeof(*d));
    struct frd_priv *pv = calloc(1, sizeof(*pv));
    if (!d || !pv) {
        free(d);
        free(pv);
        free(buf);
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    d->priv = pv;
    d->path = name;
    d->file_size = len;
    d->flags = flags;
    if (!frd__keep(d, buf)) {
        frd_close(d);
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    pv->dctx = ZSTD_createDCtx();
    if (!pv->dctx) {
        frd_close(d);
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    size_t next = 0;
    int r = parse_header(d, buf, len, &next, err, errlen);
    if (r < 0) {
        frd_close(d);
        return r;
    }
    if (len >= FRD_PREFAULT_FILE || frd__prefault_always)
        (void)frd__prefaulter_start(&pv->pf);
    walk_frames(d, buf, len, next);
    frd__prefaulter_stop(&pv->pf);
    /* everything kept points into the inflated sections: the file can go */
    free(pv->allocs[0]);
    pv->allocs[0] = NULL;
    finish(d);
    ZSTD_freeDCtx(pv->dctx);
    pv->dctx = NULL;
    if ((flags & FRD_OPEN_EVENTS) && materialise(d) < 0) {
        frd_close(d);
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

int frd_open_mem(const void *buf, size_t len, const char *name, struct frd_dump **out,
                 char *err, size_t errlen)
{
    return frd_open_mem_ex(buf, len, name, FRD_OPEN_EVENTS, out, err, errlen);
}

int frd_open_mem_ex(const void *buf, size_t len, const char *name, unsigned flags,
                    struct frd_dump **out, char *err, size_t errlen)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    memcpy(copy, buf, len);
    return open_buffer(copy, len, name, flags, out, err, errlen);
}

int frd_open(const char *path, struct frd_dump **out, char *err, size_t errlen)
{
    return frd_open_ex(path, FRD_OPEN_EVENTS, out, err, errlen);
}

int frd_open_ex(const char *path, unsigned flags, struct frd_dump **out, char *err,
                size_t errlen)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = read_fd(fd, &buf, &len);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    return open_buffer(buf, len, path, flags, out, err, errlen);
}

void frd_close(struct frd_dump *d)
{
    if (!d)
        return;
    if (d->priv) {
        for (size_t i = 0; i < d->priv->nallocs; i++)
            free(d->priv->allocs[i]);
        free(d->priv->allocs);
        if (d->priv->dctx)
            ZSTD_freeDCtx(d->priv->dctx);
        free(d->priv);
    }
    for (size_t i = 0; i < d->nthreads; i++) {
        free(d->threads[i].events);
        free(d->threads[i].pages);
    }
    free(d->threads);
    free(d->copied);
    free(d->spawns);
    free(d->run_delays);
    free(d->strings);
    for (size_t i = 0; i < d->nerrors; i++)
        free(d->errors[i]);
    free(d->errors);
    free(d);
}

const char *frd_blob_next_arg(const struct frd_blob *b, size_t *pos, size_t *len)
{
    if (*pos >= b->len)
        return NULL;
    const char *arg = b->p + *pos;
    const char *z = memchr(arg, 0, b->len - *pos);
    *len = z ? (size_t)(z - arg) : b->len - *pos;
    *pos += *len + 1;
    return arg;
}

const char *frd_string(const struct frd_dump *d, uint32_t id, size_t *len)
{
    size_t lo = 0, hi = d->nstrings;
    if (id <= FR_STRING_OVERFLOW)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->strings[mid].id == id) {
            if (len)
                *len = d->strings[mid].len;
            return d->strings[mid].text;
        }
        if (d->strings[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
