/*
 * decoder/stall.c - what the recorder's own triggers add to a dump: the
 * STALL section of a watchdog dump (the stuck thread, its task, how long the
 * poll had run, its stack taken on that thread) and the RECOVERY section of
 * a dump rebuilt by `flightrec recover` (torn pages dropped). The reader calls
 * the section parsers; the long_poll finding and `info` read the results.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "bytes.h"
#include "model.h"
#include "reader_int.h"
#include "stall.h"
#include "symbolize.h"

void frd__sec_stall(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    struct frd_stall *k = &d->stall;
    uint32_t reserved;
    if (frd_get_u32(c, &k->tid) || frd_get_u32(c, &k->nframes) || frd_get_u64(c, &k->task) ||
        frd_get_u64(c, &k->begin_ticks) || frd_get_u64(c, &k->sample_ticks) ||
        frd_get_u64(c, &k->threshold_ns) || frd_get_u32(c, &k->flags) ||
        frd_get_u32(c, &reserved) || frd_get_u64(c, &k->ip) || frd_get_u64(c, &k->sp)) {
        frd__error(d, off, "STALL section: expected 64 bytes of fields, found %zu", c->len);
        memset(k, 0, sizeof(*k));
        return;
    }
    k->frames = frd__read_frames(d, off, c, "STALL", 4, &k->nframes);
    k->present = k->frames != NULL;
}

void frd__sec_recovery(struct frd_dump *d, uint64_t off, struct frd_cur *c)
{
    struct frd_recovery *r = &d->recovery;
    uint32_t flags;
    if (frd_get_u32(c, &r->threads) || frd_get_u32(c, &r->pages_kept) ||
        frd_get_u32(c, &r->pages_torn) || frd_get_u32(c, &flags) ||
        frd_get_u64(c, &r->file_size)) {
        frd__error(d, off, "RECOVERY section: expected 24 bytes, found %zu", c->len);
        memset(r, 0, sizeof(*r));
        return;
    }
    r->present = 1;
}

void frd__stall_finish(struct frd_dump *d)
{
    if (!d->stall.present)
        return;
    d->stall.begin_ns = frd_ticks_to_ns(d, d->stall.begin_ticks);
    d->stall.sample_ns = frd_ticks_to_ns(d, d->stall.sample_ticks);
}

/* "nanosleep" / "parse_giant_config (config.c:88)" / "libc.so.6+0x1234" */
static void frame_name(const struct frd_frame *f, char *buf, size_t len)
{
    const char *base = strrchr(f->file, '/');
    base = base ? base + 1 : f->file;
    if (f->function[0] && f->line)
        snprintf(buf, len, "%s (%s:%d)", f->function, base, f->line);
    else if (f->function[0])
        snprintf(buf, len, "%s", f->function);
    else if (f->module[0]) {
        const char *m = strrchr(f->module, '/');
        snprintf(buf, len, "%s+0x%llx", m ? m + 1 : f->module, (unsigned long long)f->offset);
    } else
        snprintf(buf, len, "0x%llx", (unsigned long long)f->ip);
}

/*
 * frd_stall_quote - where a long poll was stuck, if the dump's STALL section
 * caught it: @task polled on thread @tid from @begin_ns to @end_ns. Writes
 * "at 100 ms it was in nanosleep <- parse_giant_config (config.c:88) <- ..."
 * (the first @max_frames frames, innermost first) into @buf.
 * Return: 1 if @buf holds a quote, 0 if the stall was another poll's or the
 * dump has no stack for it (@buf is then "").
 */
int frd_stall_quote(const struct frd_dump *d, uint64_t task, uint32_t tid, int64_t begin_ns,
                    int64_t end_ns, char *buf, size_t len)
{
    const struct frd_stall *s = &d->stall;
    if (len)
        buf[0] = '\0';
    if (!s->present || !(s->flags & FR_STALL_STACK) || !s->nframes || s->task != task ||
        (tid && s->tid != tid) || s->sample_ns < begin_ns || s->sample_ns > end_ns || len < 16)
        return 0;
    enum { MAX_FRAMES = 4 };
    struct frd_frame fr[MAX_FRAMES];
    size_t n = s->nframes < MAX_FRAMES ? s->nframes : MAX_FRAMES;
    frd_symbolize(d, s->frames, n, fr);
    char dur[32];
    size_t at = (size_t)snprintf(buf, len, "at %s it was in ",
                                 frd_fmt_dur(s->sample_ns - begin_ns, dur, sizeof(dur)));
    for (size_t i = 0; i < n && at < len; i++) {
        char name[200];
        frame_name(&fr[i], name, sizeof(name));
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? " \xe2\x86\x90 " : "", name);
    }
    if (s->nframes > n && at < len)
        snprintf(buf + at, len - at, " \xe2\x86\x90 ...");
    return 1;
}
