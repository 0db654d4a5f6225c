/*
 * dump.c - the one dump writer behind all three triggers: fr_dump(), the
 * dumper thread (dump signal) and the crash handler.
 *
 * It is async-signal-safe so that a crash handler can run it: the zstd
 * context lives in a workspace mapped at fr_init (ZSTD_initStaticCCtx), output
 * goes through a static staging buffer and write(2), pages are copied with the
 * seqlock reader of ring.c into a static page buffer. Nothing allocates.
 *
 * There are two writer contexts: FR_CTX_NORMAL, shared by fr_dump() and the
 * dumper thread under a try-lock, and FR_CTX_CRASH, owned by the first thread
 * that crashes. A crash therefore never waits for a dump in progress.
 *
 * The file is a zstd stream (see flightrec/format.h): a skippable frame with
 * the header, then one checksummed frame per section, crash info first so
 * that a dump cut short still says what happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCCtx: no malloc in a crash handler */
#include <zstd.h>

#include "internal.h"

struct dump_ctx {
    ZSTD_CCtx *cctx;
    uint8_t *out; /* staging buffer of out_cap bytes; out_len are pending */
    size_t out_cap, out_len;
    struct fr_page_copy *page;
    struct fr_dumpfile file;
    int err; /* first error of this dump, 0 if none */
    uint32_t sections;
    enum fr_section section;  /* being written */
    uint64_t written;         /* bytes written to the file so far */
    uint64_t whole;           /* file offset just past the last complete frame */
    _Atomic int active; /* a file is open: fr__dump_salvage may finish it */
    char notes[1024];   /* NOTES text of this dump: what could not be captured, and why */
    size_t notes_len;
    uint32_t ncopied;   /* entries of copied[] filled by this dump */
    struct copied {     /* the COPIED section, gathered while the rings are copied */
        uint32_t tid, slot, gen;
        uint64_t ticks;
    } copied[FR_MAX_THREADS];
};

static struct dump_ctx ctxs[FR_CTX_COUNT] = {
    [FR_CTX_NORMAL] = { .file = { .dirfd = -1, .fd = -1, .spare = { .fd = -1 } } },
    [FR_CTX_CRASH] = { .file = { .dirfd = -1, .fd = -1, .spare = { .fd = -1 } } },
};
static const struct fr_dump_extra *extras[FR_CTX_COUNT]; /* see fr__dump_set_extra */
static _Atomic uint64_t dump_seq;
static _Atomic int normal_lock;
static _Atomic int last_reported_err;
static struct fr_fd maps_h = { .fd = -1 }; /* /proc/self/maps, held from fr_init */
static _Atomic int unreachable_reported;

/* ---- output: staging buffer, zstd frames --------------------------------- */

static void flush_out(struct dump_ctx *c)
{
    if (c->out_len && !c->err) {
        c->err = fr__dumpfile_write(&c->file, c->out, c->out_len);
        if (!c->err)
            c->written += c->out_len;
    }
    c->out_len = 0;
}

/* The bytes staged and written so far end on a frame boundary. */
static void mark_whole(struct dump_ctx *c)
{
    c->whole = c->written + c->out_len;
}

#ifdef FR_TEST_HOOKS
/*
 * Fault injection for the crash tests, compiled only into the test build
 * (-DFR_TEST_HOOKS): FLIGHTREC_TEST_FAULT=writer:<section>[:<n>] makes the
 * crash writer fault with SIGSEGV at the end of the n-th (default first)
 * section of that kind, with part of the frame already staged or written.
 */
static const char *const section_names[] = {
    [FR_SEC_PROCESS] = "process", [FR_SEC_CLOCK] = "clock",     [FR_SEC_CRASH] = "crash",
    [FR_SEC_STRINGS] = "strings", [FR_SEC_MODULES] = "modules", [FR_SEC_THREAD] = "thread",
    [FR_SEC_END] = "end",     [FR_SEC_COPIED] = "copied",   [FR_SEC_SPAWNS] = "spawns",
    [FR_SEC_RUN_DELAY] = "run-delay",
};
static enum fr_section fault_section;
static unsigned fault_nth, fault_seen;

/* Called by fr_dump()'s writer right after it copied the ring of thread @tid:
 * a test records events that the copy misses. */
void (*fr__test_after_copy)(uint32_t tid);

static void test_hooks_init(void)
{
    fault_section = 0;
    fault_nth = 1;
    const char *v = secure_getenv("FLIGHTREC_TEST_FAULT");
    if (!v || strncmp(v, "writer:", 7) != 0)
        return;
    v += 7;
    for (unsigned k = 1; k < sizeof section_names / sizeof section_names[0]; k++) {
        if (!section_names[k])
            continue;
        size_t n = strlen(section_names[k]);
        if (strncmp(v, section_names[k], n) == 0 && (v[n] == '\0' || v[n] == ':')) {
            fault_section = (enum fr_section)k;
            if (v[n] == ':')
                fault_nth = (unsigned)atoi(v + n + 1);
        }
    }
}

__attribute__((noinline, no_sanitize("undefined"))) static void test_fault(struct dump_ctx *c)
{
    if (c != &ctxs[FR_CTX_CRASH] || !fault_section || c->section != fault_section)
        return;
    if (++fault_seen == fault_nth)
        *(volatile int *)(uintptr_t)c->sections = 0; /* a small number: unmapped */
}
#else
static void test_hooks_init(void)
{
}
static void test_fault(struct dump_ctx *c)
{
    (void)c;
}
#endif

static void test_after_copy(struct dump_ctx *c, uint32_t tid)
{
#ifdef FR_TEST_HOOKS
    if (c == &ctxs[FR_CTX_NORMAL] && fr__test_after_copy)
        fr__test_after_copy(tid);
#else
    (void)c;
    (void)tid;
#endif
}

static void put_raw(struct dump_ctx *c, const void *p, size_t n)
{
    if (n > c->out_cap - c->out_len)
        flush_out(c);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void feed(struct dump_ctx *c, const void *p, size_t n)
{
    ZSTD_inBuffer in = { p, n, 0 };
    while (in.pos < in.size && !c->err) {
        ZSTD_outBuffer out = { c->out, c->out_cap, c->out_len };
        size_t r = ZSTD_compressStream2(c->cctx, &out, &in, ZSTD_e_continue);
        if (ZSTD_isError(r)) {
            c->err = -EIO;
            return;
        }
        c->out_len = out.pos;
        if (c->out_len == c->out_cap)
            flush_out(c);
    }
}

static void section_begin(struct dump_ctx *c, enum fr_section kind)
{
    ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only); /* keeps level + checksum */
    c->section = kind;
    uint8_t h[FR_SECTION_HEADER_SIZE];
    fr__put32(h, (uint32_t)kind);
    fr__put32(h + 4, 1);
    feed(c, h, sizeof h);
}

static void section_end(struct dump_ctx *c)
{
    test_fault(c);
    for (int guard = 0; guard < 1 << 20 && !c->err; guard++) {
        ZSTD_inBuffer in = { NULL, 0, 0 };
        ZSTD_outBuffer out = { c->out, c->out_cap, c->out_len };
        size_t left = ZSTD_compressStream2(c->cctx, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(left)) {
            c->err = -EIO;
            return;
        }
        c->out_len = out.pos;
        if (left == 0)
            break;
        flush_out(c);
    }
    c->sections++;
    mark_whole(c);
}

/* ---- notes: what a dump could not capture ------------------------------- */

/* One line of the NOTES section: @a, then @b if not NULL, then " (errno N)"
 * if @err. Silently cut at the buffer's end. */
static void note(struct dump_ctx *c, const char *a, const char *b, int err)
{
    char num[24];
    const char *parts[] = { a, b, err ? " (errno " : NULL, NULL, err ? ")" : NULL, "\n" };
    if (err) {
        num[fr__fmt_u64(num, (uint64_t)err)] = '\0';
        parts[3] = num;
    }
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i])
            continue;
        size_t n = strlen(parts[i]);
        if (n > sizeof c->notes - c->notes_len)
            n = sizeof c->notes - c->notes_len;
        memcpy(c->notes + c->notes_len, parts[i], n);
        c->notes_len += n;
    }
}

/* ---- sections ----------------------------------------------------------- */

static void write_header(struct dump_ctx *c, enum fr_trigger trigger, int signo,
                         const char *reason, uint64_t real_ns, uint64_t seq)
{
    uint8_t b[8 + FR_HEADER_SIZE];
    memset(b, 0, sizeof b);
    fr__put32(b, FR_SKIPPABLE_MAGIC);
    fr__put32(b + 4, FR_HEADER_SIZE);
    uint8_t *h = b + 8;
    memcpy(h, FR_FILE_MAGIC, 8);
    fr__put16(h + 8, FR_FORMAT_VERSION);
    fr__put16(h + 10, FR_HEADER_SIZE);
    fr__put32(h + 12, FR_ENDIAN_MARK);
    fr__put32(h + 16, (uint32_t)trigger);
    fr__put32(h + 20, (uint32_t)signo);
    fr__put32(h + 24, (uint32_t)getpid());
    fr__put32(h + 28, FR_PAGE_SIZE);
    fr__put64(h + 32, fr__cfg.ring_bytes / FR_PAGE_SIZE * FR_PAGE_SIZE);
    fr__put64(h + 40, real_ns);
    fr__put64(h + 48, seq);
    fr__put32(h + 56, FR_MAX_THREADS);
    fr__put32(h + 60, (fr__clock_tsc ? FR_HDR_TSC : 0) | (fr__run_delay_on() ? FR_HDR_RUN_DELAY : 0));
    if (reason)
        strncpy((char *)h + 64, reason, FR_REASON_MAX - 1);
    put_raw(c, b, sizeof b);
    mark_whole(c);
}

static void feed_blob(struct dump_ctx *c, const char *p, uint32_t len)
{
    uint8_t l[4];
    fr__put32(l, len);
    feed(c, l, 4);
    feed(c, p, len);
}

static void write_process(struct dump_ctx *c)
{
    struct fr_blob exe, cmd, host;
    uint64_t start;
    fr__procinfo_get(&exe, &cmd, &host, &start);
    uint8_t b[16];
    fr__put32(b, (uint32_t)getpid());
    fr__put32(b + 4, (uint32_t)getppid());
    fr__put64(b + 8, start);
    section_begin(c, FR_SEC_PROCESS);
    feed(c, b, sizeof b);
    feed_blob(c, exe.p, exe.len);
    feed_blob(c, cmd.p, cmd.len);
    feed_blob(c, host.p, host.len);
    feed_blob(c, FR_VERSION_STRING, (uint32_t)strlen(FR_VERSION_STRING));
    section_end(c);
}

static void write_clock(struct dump_ctx *c)
{
    struct fr_clock_pair now;
    fr__clock_pair_now(&now);
    int n = atomic_load_explicit(&fr__clock_npairs, FR_ACQUIRE); /* pairs with clock.c/signal.c */
    uint8_t b[8];
    fr__put32(b, fr__clock_tsc ? FR_CLOCK_TSC : FR_CLOCK_MONOTONIC);
    fr__put32(b + 4, (uint32_t)n + 1);
    section_begin(c, FR_SEC_CLOCK);
    feed(c, b, sizeof b);
    for (int i = 0; i <= n; i++) {
        const struct fr_clock_pair *p = i < n ? &fr__clock_pairs[i] : &now;
        uint8_t e[24];
        fr__put64(e, p->ticks);
        fr__put64(e + 8, p->mono_ns);
        fr__put64(e + 16, p->real_ns);
        feed(c, e, sizeof e);
    }
    section_end(c);
}

static void crash_notes(struct dump_ctx *c, const struct fr_crash_info *ci)
{
    switch (ci->unwind) {
    case FR_UNWIND_TIMEOUT:
        note(c, "backtrace cut short: the unwinder did not finish in time (a lock it needs, such "
                "as the dynamic loader's, may be held by a thread waiting for this one); these are "
                "the frames it had taken",
             NULL, 0);
        break;
    case FR_UNWIND_FAULT:
        note(c, "backtrace cut short: the unwinder faulted reading the stack; these are the "
                "frames it had taken",
             NULL, 0);
        break;
    case FR_UNWIND_FDS_TAKEN:
        note(c, "backtrace has the faulting frame only: the unwinder's descriptors were closed "
                "by the program and their numbers reused (libunwind would write into them)",
             NULL, 0);
        break;
    case FR_UNWIND_INLINE:
        note(c, "backtrace taken on the crashing thread itself: the unwinder thread was not "
                "running, so the unwind was not bounded in time",
             NULL, 0);
        break;
    default:
        break;
    }
}

static void write_crash(struct dump_ctx *c, const struct fr_crash_info *ci)
{
    uint8_t b[56];
    fr__put32(b, (uint32_t)ci->signo);
    fr__put32(b + 4, (uint32_t)ci->code);
    fr__put64(b + 8, ci->addr);
    fr__put32(b + 16, ci->tid);
    fr__put32(b + 20, (uint32_t)ci->nframes);
    fr__put64(b + 24, ci->task);
    fr__put64(b + 32, ci->ticks);
    fr__put64(b + 40, ci->ip);
    fr__put64(b + 48, ci->sp);
    section_begin(c, FR_SEC_CRASH);
    feed(c, b, sizeof b);
    for (int i = 0; i < ci->nframes; i++) {
        uint8_t f[8];
        fr__put64(f, ci->frames[i]);
        feed(c, f, 8);
    }
    section_end(c);
}

/* A section the trigger serialised itself (watchdog.c's STALL). */
static void write_extra(struct dump_ctx *c, const struct fr_dump_extra *x)
{
    section_begin(c, x->kind);
    feed(c, x->body, x->len);
    section_end(c);
}

void fr__dump_set_extra(enum fr_dump_ctx_id ctx, const struct fr_dump_extra *x)
{
    extras[ctx] = x;
}

static int feed_string(void *arg, uint32_t id, const char *s, uint32_t len)
{
    struct dump_ctx *c = arg;
    uint8_t b[8];
    fr__put32(b, id);
    fr__put32(b + 4, len);
    feed(c, b, 8);
    feed(c, s, len);
    return c->err;
}

static uint32_t write_strings(struct dump_ctx *c, uint32_t from_off)
{
    section_begin(c, FR_SEC_STRINGS);
    uint32_t mark = fr__intern_foreach(from_off, feed_string, c);
    section_end(c);
    return mark;
}

/*
 * MODULES: /proc/self/maps read through the descriptor held since fr_init
 * (pread from 0 gives the current map, so dlopen after fr_init is seen, and a
 * process out of descriptors or chrooted away from /proc still has it). If
 * that descriptor was taken, the file is opened again; if that fails too the
 * section is empty and NOTES says why: the backtrace is then raw addresses.
 */
static void write_modules(struct dump_ctx *c)
{
    int fd = -1, own = 0, err = 0;
    if (fr__fd_ours(&maps_h)) {
        fd = maps_h.fd;
    } else {
        fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        own = 1;
        if (fd < 0)
            err = errno;
    }
    section_begin(c, FR_SEC_MODULES);
    uint64_t total = 0;
    if (fd >= 0) {
        for (off_t off = 0;;) {
            ssize_t n = pread(fd, c->page->data, sizeof c->page->data, off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                err = errno;
            if (n <= 0)
                break;
            feed(c, c->page->data, (size_t)n);
            off += n;
            total += (uint64_t)n;
        }
        if (own)
            close(fd);
    }
    section_end(c);
    if (!total)
        note(c, "module map unavailable: /proc/self/maps could not be read, "
                "the backtrace has raw addresses only", NULL, err);
}

static void write_thread(struct dump_ctx *c, struct fr_slot *s)
{
    /* Pairs with the release store of LIVE in fr__writer_attach. */
    uint32_t state = atomic_load_explicit(&s->state, FR_ACQUIRE);
    if (state != FR_SLOT_LIVE && state != FR_SLOT_EXITED)
        return;
    uint32_t gen = atomic_load_explicit(&s->gen, FR_RELAXED);
    uint32_t tid = atomic_load_explicit(&s->tid, FR_RELAXED);
    struct fr_ring *r = &s->ring;
    /* Before anything of the ring is read: every event recorded before this
     * is in the copy unless overwritten; later ones may be missing. */
    if (c->ncopied < FR_MAX_THREADS)
        c->copied[c->ncopied++] =
            (struct copied){ tid, (uint32_t)(s - fr__slots), gen, fr__ticks() };

    /* Pairs with the release store in fr__writer_next_page: page `last` is
     * published. Page seq s lives at index (s - 1) % npages. */
    uint64_t last = atomic_load_explicit(&r->pages_started, FR_ACQUIRE);
    uint64_t first = last > r->npages ? last - r->npages + 1 : 1;

    uint8_t b[88];
    memset(b, 0, sizeof b);
    fr__put32(b, tid);
    fr__put32(b + 4, (uint32_t)(s - fr__slots));
    fr__put32(b + 8, state == FR_SLOT_LIVE ? 1 : 2);
    fr__put32(b + 12, FR_PAGE_SIZE);
    fr__put64(b + 16, atomic_load_explicit(&r->current_task, FR_RELAXED));
    fr__put64(b + 24, last);
    fr__put64(b + 32, atomic_load_explicit(&r->events_overwritten, FR_RELAXED));
    fr__put64(b + 40, atomic_load_explicit(&r->events_dropped, FR_RELAXED));
    uint32_t nl = atomic_load_explicit(&s->name_len, FR_ACQUIRE); /* pairs with registry.c */
    if (nl > FR_THREAD_NAME_MAX - 1)
        nl = FR_THREAD_NAME_MAX - 1;
    memcpy(b + 48, s->name, nl);
    fr__put32(b + 80, gen);

    section_begin(c, FR_SEC_THREAD);
    feed(c, b, sizeof b);
    /* Newest first, from page `last` down, and no page newer than `last`: the
     * owner keeps writing while we copy, and page `last` is copied only as far
     * as it was committed then (a newer page after that prefix would leave a
     * hole in the middle of the history that no sequence number shows). The
     * page the owner recycles next is the oldest: copied oldest first, the
     * copy started right where the owner recycles, and an owner faster than
     * the copy overtook it again and again, leaving holes all through the
     * history. From the newest end, what the owner takes before the copy gets
     * there is only the oldest pages, and the copy is one run up to `last`. */
    for (uint64_t seq = last; seq >= first && !c->err; seq--) {
        struct fr_page_copy *pc = c->page;
        if (!fr__ring_snapshot(r, (uint32_t)((seq - 1) % r->npages), gen, pc) || pc->seq != seq)
            break; /* recycled under us: so is every older page, lost to overwrite */
        uint8_t h[FR_PAGE_HEADER_SIZE];
        fr__put64(h, pc->seq);
        fr__put64(h + 8, pc->base_ticks);
        fr__put32(h + 16, pc->used);
        fr__put32(h + 20, pc->count);
        feed(c, h, sizeof h);
        feed(c, pc->data, pc->used);
    }
    section_end(c);
    test_after_copy(c, tid);
}

static void write_copied(struct dump_ctx *c)
{
    section_begin(c, FR_SEC_COPIED);
    for (uint32_t i = 0; i < c->ncopied; i++) {
        uint8_t b[24];
        fr__put32(b, c->copied[i].tid);
        fr__put32(b + 4, c->copied[i].slot);
        fr__put32(b + 8, c->copied[i].gen);
        fr__put32(b + 12, 0);
        fr__put64(b + 16, c->copied[i].ticks);
        feed(c, b, sizeof b);
    }
    section_end(c);
}

/* One 32-byte entry as SPAWNS and RUN_DELAY lay theirs out (docs/format.md):
 * three u64 fields, then two u32. */
static void feed_entry32(struct dump_ctx *c, uint64_t a, uint64_t b, uint64_t d, uint32_t x,
                         uint32_t y)
{
    uint8_t e[32];
    fr__put64(e, a);
    fr__put64(e + 8, b);
    fr__put64(e + 16, d);
    fr__put32(e + 24, x);
    fr__put32(e + 28, y);
    feed(c, e, sizeof e);
}

/* SPAWNS: the spawn table's whole entries (spawns.c), in batches. */
static void write_spawns(struct dump_ctx *c)
{
    section_begin(c, FR_SEC_SPAWNS);
    struct fr_spawn_copy batch[64];
    for (size_t at = 0; at < FR_SPAWN_SLOTS && !c->err;) {
        size_t n = fr__spawns_copy(at, batch, sizeof batch / sizeof *batch, &at);
        for (size_t i = 0; i < n; i++)
            feed_entry32(c, batch[i].task, batch[i].parent, batch[i].ticks, batch[i].name,
                         batch[i].tid);
    }
    section_end(c);
}

/* RUN_DELAY: the run-delay sampler's entries (rundelay.c), oldest first. */
static void write_run_delay(struct dump_ctx *c)
{
    section_begin(c, FR_SEC_RUN_DELAY);
    struct fr_run_delay_copy batch[64];
    for (uint64_t at = UINT64_MAX, was = 0; at != was && !c->err;) {
        was = at;
        size_t n = fr__run_delay_copy(&at, batch, sizeof batch / sizeof *batch);
        for (size_t i = 0; i < n; i++)
            feed_entry32(c, batch[i].from_ns, batch[i].to_ns, batch[i].delay_ns, batch[i].tid,
                         batch[i].older_dropped);
    }
    section_end(c);
}

/* NOTES: only when there is something to say. */
static void write_notes(struct dump_ctx *c)
{
    if (!c->notes_len)
        return;
    section_begin(c, FR_SEC_NOTES);
    feed(c, c->notes, c->notes_len);
    section_end(c);
}

static void write_end(struct dump_ctx *c)
{
    uint8_t b[8];
    fr__put32(b, c->sections);
    fr__put32(b + 4, 0);
    section_begin(c, FR_SEC_END);
    feed(c, b, sizeof b);
    section_end(c);
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Map and prepare both writer contexts. Called by fr_init only. */
int fr__dump_init(void)
{
    test_hooks_init();
    size_t ws = ZSTD_estimateCStreamSize(FR_ZSTD_LEVEL);
    size_t out = ZSTD_CStreamOutSize();
    size_t pg = (sizeof(struct fr_page_copy) + 63) & ~(size_t)63;
    ws = (ws + 63) & ~(size_t)63;
    for (int i = 0; i < FR_CTX_COUNT; i++) {
        struct dump_ctx *c = &ctxs[i];
        if (c->cctx)
            continue; /* kept across fr_shutdown/fr_init */
        uint8_t *mem = mmap(NULL, ws + out + pg, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (mem == MAP_FAILED)
            return -errno;
        c->cctx = ZSTD_initStaticCCtx(mem, ws);
        if (!c->cctx)
            return -ENOMEM;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, FR_ZSTD_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1)))
            return -EINVAL;
        c->page = (struct fr_page_copy *)(void *)(mem + ws);
        c->out = mem + ws + pg;
        c->out_cap = out;
    }
    struct fr_dumpfile *files[FR_CTX_COUNT];
    for (int i = 0; i < FR_CTX_COUNT; i++)
        files[i] = &ctxs[i].file;
    fr__dumpfile_init(files, FR_CTX_COUNT);
    fr__fd_release(&maps_h);
    fr__fd_hold(&maps_h, open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
    atomic_store(&unreachable_reported, 0);
    return 0;
}

/* fr_shutdown: close the descriptors held for dumps (only those still ours). */
void fr__dump_fini(void)
{
    struct fr_dumpfile *files[FR_CTX_COUNT];
    for (int i = 0; i < FR_CTX_COUNT; i++)
        files[i] = &ctxs[i].file;
    fr__dumpfile_fini(files, FR_CTX_COUNT);
    fr__fd_release(&maps_h);
}

void fr__dump_reset_after_fork(void)
{
    atomic_store(&normal_lock, 0);
    atomic_store(&dump_seq, 0);
    fr__dumpfile_after_fork();
    fr__fd_release(&maps_h); /* the parent's map: open our own */
    fr__fd_hold(&maps_h, open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < FR_CTX_COUNT; i++)
        atomic_store(&ctxs[i].active, 0);
}

int fr__dump_lock(unsigned timeout_ms)
{
    for (unsigned waited = 0;; waited++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&normal_lock, &expect, 1))
            return 0;
        if (waited >= timeout_ms)
            return -EBUSY;
        fr__sleep_ms(1);
    }
}

void fr__dump_unlock(void)
{
    atomic_store_explicit(&normal_lock, 0, FR_RELEASE);
}

static int dump_path(struct dump_ctx *c, char *path, size_t path_size);

static void report(int err, const char *what)
{
    /* Once per distinct failure: a signal storm at a full disk prints one line. */
    if (atomic_exchange(&last_reported_err, err) != err)
        fr__warn(what, fr__cfg.dump_dir, -err);
}

/*
 * fr__dump_write - write one whole dump.
 * @ctx: FR_CTX_NORMAL (caller holds fr__dump_lock) or FR_CTX_CRASH (caller
 *       is the crash owner).
 * @trigger, @signo, @reason: recorded in the header.
 * @crash: crash details, or NULL.
 * @path, @path_size: if @path is not NULL, receives "<dir>/<file>".
 *
 * Async-signal-safe. On any error the temporary file is removed, so a final
 * name never names a partial dump; the error is printed once on stderr.
 * Return: 0, -ENAMETOOLONG if @path is too small (the dump exists), or -errno.
 */
int fr__dump_write(enum fr_dump_ctx_id ctx, enum fr_trigger trigger, int signo, const char *reason,
                   const struct fr_crash_info *crash, char *path, size_t path_size)
{
    struct dump_ctx *c = &ctxs[ctx];
    if (!c->cctx)
        return -ENOTCONN;
    uint64_t seq = atomic_fetch_add(&dump_seq, 1);
    uint64_t real_ns = fr__realtime_ns();
    int err = fr__dumpfile_open(&c->file, seq, real_ns);
    if (err) {
        report(err, "cannot create a dump in");
        return err;
    }
    c->err = 0;
    c->out_len = 0;
    c->sections = 0;
    c->written = c->whole = 0;
    c->notes_len = 0;
    c->ncopied = 0;
    atomic_store(&c->active, 1);
    if (c->file.flags & FR_DF_DIR_REOPENED)
        note(c, "the dump directory's descriptor held since fr_init was closed by the program; "
                "it was opened again by path", NULL, 0);
    if (c->file.flags & FR_DF_SPARE_USED)
        note(c, "the process was out of file descriptors; the spare held since fr_init was used",
             NULL, 0);
    uint64_t unrecorded = atomic_load_explicit(&fr__threads_unrecorded, FR_RELAXED);
    if (unrecorded) {
        char num[24];
        num[fr__fmt_u64(num, unrecorded)] = '\0';
        note(c, num, " threads recorded nothing: every slot of the thread registry was taken by a "
                     "live thread when they started", 0);
    }
    if (c->file.flags & FR_DF_DIR_UNREACHABLE) {
        note(c, "the dump directory's path no longer leads to it in this process (chroot, rename "
                "or mount); written through the descriptor held since fr_init: ",
             fr__cfg.dump_dir, 0);
        if (!atomic_exchange(&unreachable_reported, 1))
            fr__warn("the dump directory's path no longer leads to it in this process (chroot, "
                     "rename or mount?); dumps still go to the directory opened at fr_init",
                     fr__cfg.dump_dir, 0);
    }
    if (crash)
        crash_notes(c, crash);

    write_header(c, trigger, signo, reason, real_ns, seq);
    if (crash)
        write_crash(c, crash);
    if (extras[ctx])
        write_extra(c, extras[ctx]);
    write_process(c);
    write_clock(c);
    uint32_t mark = write_strings(c, 0);
    write_modules(c);
    write_notes(c);
    struct fr_slot *first = NULL;
    if (crash) {
        for (uint32_t i = 0; i < FR_MAX_THREADS; i++)
            if (atomic_load_explicit(&fr__slots[i].tid, FR_RELAXED) == crash->tid &&
                atomic_load_explicit(&fr__slots[i].state, FR_RELAXED) == FR_SLOT_LIVE)
                first = &fr__slots[i];
        if (first)
            write_thread(c, first);
    }
    for (uint32_t i = 0; i < FR_MAX_THREADS && !c->err; i++)
        if (&fr__slots[i] != first)
            write_thread(c, &fr__slots[i]);
    write_copied(c);
    write_spawns(c);
    if (fr__run_delay_on())
        write_run_delay(c);
    write_strings(c, mark);
    write_end(c);
    flush_out(c);

    if (c->err) {
        err = c->err;
        fr__dumpfile_abort(&c->file);
        atomic_store(&c->active, 0);
        report(err, "cannot write a dump in");
        return err;
    }
    err = fr__dumpfile_commit(&c->file, fr__cfg.max_dumps);
    atomic_store(&c->active, 0);
    if (err) {
        report(err, "cannot finish a dump in");
        return err;
    }
    atomic_store(&last_reported_err, 0);
    if (path && path_size)
        return dump_path(c, path, path_size);
    return 0;
}

/* "<dir>/<file>": the configured directory if its path still leads to where
 * the dump went; otherwise where the kernel says the held directory is now
 * (/proc/self/fd: after a rename, or outside a chroot), else the configured
 * path, which is where the directory was at fr_init. */
static int dump_path(struct dump_ctx *c, char *path, size_t path_size)
{
    char where[4096];
    const char *dir = fr__cfg.dump_dir;
    if (c->file.flags & FR_DF_DIR_UNREACHABLE) {
        char link[64] = "/proc/self/fd/";
        size_t k = strlen(link);
        link[k + fr__fmt_u64(link + k, (uint64_t)c->file.used_dirfd)] = '\0';
        ssize_t n = readlink(link, where, sizeof where - 1);
        if (n > 0 && where[0] == '/') {
            where[n] = '\0';
            dir = where;
        }
    }
    size_t dl = strlen(dir), fl = strlen(c->file.final);
    if (dl + 1 + fl + 1 > path_size) {
        path[0] = '\0';
        return -ENAMETOOLONG;
    }
    memcpy(path, dir, dl);
    path[dl] = '/';
    memcpy(path + dl + 1, c->file.final, fl + 1);
    return 0;
}

/*
 * fr__dump_salvage - a second fault hit the thread writing @ctx's dump. The
 * frames completed so far are whole and checksummed; keep exactly them under
 * the final name (the dump lacks an END section, which the decoder reports)
 * rather than lose the only record of the crash. The frame that was being
 * written is cut off: from the staging buffer, or with ftruncate if part of
 * it already reached the file. Async-signal-safe.
 */
void fr__dump_salvage(enum fr_dump_ctx_id ctx)
{
    struct dump_ctx *c = &ctxs[ctx];
    if (!atomic_exchange(&c->active, 0))
        return;
    if (!c->err && c->whole > c->written) {
        size_t n = (size_t)(c->whole - c->written);
        if (n > c->out_len)
            n = c->out_len;
        if (fr__dumpfile_write(&c->file, c->out, n) == 0)
            c->written += n;
    } else if (c->written > c->whole && ftruncate(c->file.fd, (off_t)c->whole) == 0) {
        c->written = c->whole;
    }
    c->out_len = 0;
    fr__dumpfile_commit(&c->file, 0);
}
