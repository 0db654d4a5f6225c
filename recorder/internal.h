/*
 * internal.h - what the recorder's files share: the ring and registry types,
 * the per-thread writer, the clock, the interned strings and the dump writer.
 *
 * Naming: public symbols are fr_*, internal non-static symbols fr__*, static
 * ones bare. Nothing here is visible outside libflightrec (-fvisibility=hidden).
 */
#ifndef FR_INTERNAL_H
#define FR_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flightrec.h"
#include "flightrec/format.h"

#define FR_LIKELY(x) __builtin_expect(!!(x), 1)
#define FR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FR_RELAXED memory_order_relaxed
#define FR_ACQUIRE memory_order_acquire
#define FR_RELEASE memory_order_release

/* ---- build-time knobs --------------------------------------------------- */

/* Ring page size. Smaller pages lose less history to a torn read and let a
 * reader start closer to the oldest event after a wrap; larger pages spend
 * less on page headers and page switches. */
#ifndef FR_PAGE_SIZE
#define FR_PAGE_SIZE 4096u
#endif

/* Registry capacity: the rings of at most this many threads are kept. More
 * slots cost 256 bytes of BSS each; when all are live, new threads record
 * nothing (counted in the dump as dropped). Set from meson option max_threads. */
#ifndef FR_MAX_THREADS
#define FR_MAX_THREADS 1024u
#endif

/* Interned strings: hash slots (power of two) and the bytes they may hold.
 * A full table yields the FR_STRING_OVERFLOW placeholder, never a failure. */
#ifndef FR_INTERN_SLOTS
#define FR_INTERN_SLOTS 8192u
#endif
#ifndef FR_INTERN_BYTES
#define FR_INTERN_BYTES (512u * 1024u)
#endif
#define FR_INTERN_MAX_LEN 255u /* longer names and labels are truncated */

/* Frames kept in a crash backtrace. */
#ifndef FR_MAX_FRAMES
#define FR_MAX_FRAMES 128
#endif

/* Alternate signal stack per thread, so a stack overflow still dumps. */
#ifndef FR_ALTSTACK_SIZE
#define FR_ALTSTACK_SIZE (128u * 1024u)
#endif

/* zstd level for dumps: 1 keeps an 8 MiB dump well under 100 ms. */
#ifndef FR_ZSTD_LEVEL
#define FR_ZSTD_LEVEL 1
#endif

#define FR_MIN_RING_BYTES (16u * 1024u)
#define FR_DEFAULT_RING_BYTES (1024u * 1024u)
#define FR_DEFAULT_MAX_DUMPS 16u
/* Events of the polled task folded into one record while its poll runs
 * (hooks.c): more fold fewer records, but a dump taken from another thread
 * meanwhile misses more of the running poll. */
#ifndef FR_FOLD_MAX
#define FR_FOLD_MAX 4u
#endif
/* Bytes the held events take in a fold list: each a type byte and, for a
 * label, a string id of at most 5 bytes; copied whole (FR_FOLD_BYTES, a
 * multiple of 8), so a page keeps that much slack. */
#define FR_FOLD_BYTES ((6u * FR_FOLD_MAX + 7u) & ~7u)
/* Longest record: type + 10-byte delta + 3 x 10-byte varints, or a folded
 * poll end: type + delta + task + count + the fold bytes copied whole. */
#define FR_MAX_RECORD (22u + 1u + FR_FOLD_BYTES > 41u ? 22u + 1u + FR_FOLD_BYTES : 41u)
#define FR_PAGE_PAYLOAD (FR_PAGE_SIZE - FR_PAGE_HEADER_SIZE)
/* Page sequence numbers carry the slot generation in their top bits, so a
 * reader never mixes pages of two threads that used the same slot. */
#define FR_SEQ_GEN_SHIFT 40
#define FR_SEQ_MASK ((UINT64_C(1) << FR_SEQ_GEN_SHIFT) - 1)

/* ---- clock (clock.c) ---------------------------------------------------- */

extern int fr__clock_tsc; /* 1: ticks are TSC cycles; 0: CLOCK_MONOTONIC ns */

static inline uint64_t fr__ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (FR_LIKELY(fr__clock_tsc)) {
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        return ((uint64_t)hi << 32) | lo;
    }
#endif
    extern uint64_t fr__monotonic_ns(void);
    return fr__monotonic_ns();
}

struct fr_clock_pair {
    uint64_t ticks, mono_ns, real_ns;
};
#define FR_CLOCK_PAIRS 2 /* fixed pairs: at init, ~50 ms later; the dump adds its own */
extern struct fr_clock_pair fr__clock_pairs[FR_CLOCK_PAIRS];
extern _Atomic int fr__clock_npairs;

void fr__clock_init(void);
void fr__clock_pair_now(struct fr_clock_pair *p); /* async-signal-safe */
uint64_t fr__monotonic_ns(void);
uint64_t fr__realtime_ns(void);

/* ---- rings and pages (ring.c) ------------------------------------------- */

/*
 * A page: header + payload. Written only by the ring's owner thread; read by
 * any dumper with the seqlock protocol described in ring.c.
 *   seq == 0: never written, or being recycled; otherwise (gen << 40 | n).
 *   commit = used | count << 32; used <= FR_PAGE_PAYLOAD; bytes past `used`
 *   are garbage.
 */
struct fr_page {
    _Atomic uint64_t seq;
    _Atomic uint64_t base_ticks;
    _Atomic uint64_t commit;
    uint8_t data[];
};
_Static_assert(sizeof(struct fr_page) == FR_PAGE_HEADER_SIZE, "page header layout");

struct fr_ring {
    uint8_t *mem;       /* npages * FR_PAGE_SIZE bytes, mmap'd, never unmapped while live */
    size_t bytes;       /* == npages * FR_PAGE_SIZE */
    uint32_t npages;
    _Atomic uint64_t pages_started;      /* owner writes, dumpers read */
    _Atomic uint64_t events_overwritten; /* owner writes, dumpers read */
    _Atomic uint64_t events_dropped;     /* owner writes, dumpers read */
    _Atomic uint64_t current_task;       /* task being polled, 0 if none */
    _Atomic uint64_t poll_ticks;         /* when that poll began; stale while current_task == 0 */
};

static inline struct fr_page *fr__ring_page(const struct fr_ring *r, uint32_t i)
{
    return (struct fr_page *)(void *)(r->mem + (size_t)i * FR_PAGE_SIZE);
}

/* A consistent copy of one page, as a dump writes it. */
struct fr_page_copy {
    uint64_t seq, base_ticks;
    uint32_t used, count;
    uint8_t data[FR_PAGE_PAYLOAD];
};
int fr__ring_snapshot(const struct fr_ring *r, uint32_t idx, uint32_t gen, struct fr_page_copy *out);
void fr__ring_reset(struct fr_ring *r);

/*
 * fr__touch_pages - store a zero into the first byte of every FR_PAGE_SIZE
 * page of [@p, @p + @bytes), which must be fresh zero-filled memory nobody
 * else uses yet. MAP_POPULATE gives the pages, but a VM that shadows the
 * guest's page tables (PVM, shadow paging without EPT/NPT) still traps the
 * first user-space access to each page into the hypervisor: ~8 us a page on
 * the 2-vCPU VM of the README's cost table, 2.2 ms per MiB. Done here, at
 * setup, that trap stays off the record path; on hardware that does not
 * trap, it costs a few nanoseconds a page. (A ring needs no call: its reset
 * stores into every page's header.)
 */
static inline void fr__touch_pages(void *p, size_t bytes)
{
    volatile uint8_t *b = p;
    for (size_t at = 0; at < bytes; at += FR_PAGE_SIZE)
        b[at] = 0;
}

/* ---- registry of threads (registry.c) ----------------------------------- */

enum fr_slot_state { FR_SLOT_FREE = 0, FR_SLOT_CLAIMED, FR_SLOT_LIVE, FR_SLOT_EXITED };

struct fr_slot {
    _Atomic uint32_t state; /* enum fr_slot_state */
    _Atomic uint32_t gen;   /* bumped at each claim; low 24 bits go in page seqs */
    _Atomic uint32_t tid;
    _Atomic uint32_t name_len; /* release-stored after name[] is written */
    _Atomic uint64_t exit_ticks;
    char name[FR_THREAD_NAME_MAX];
    void *altstack; /* FR_ALTSTACK_SIZE + guard page, kept with the slot */
    struct fr_spawn_entry *young; /* the thread's young spawn table, kept with the slot */
    /* The thread's run delay (ns, UINT64_MAX unknown) when it attached, and
     * when (CLOCK_MONOTONIC): the run-delay sampler's first reading of it
     * counts from there (rundelay.c). Written before LIVE. */
    _Atomic uint64_t run_delay_base, run_delay_base_ns;
    _Atomic uint64_t run_delay_exit, run_delay_exit_ns; /* the same at its exit */
    struct fr_ring ring;
} __attribute__((aligned(128))); /* owners of neighbouring slots never share a line */

extern struct fr_slot fr__slots[FR_MAX_THREADS];
extern _Atomic uint64_t fr__threads_unrecorded; /* threads that found every slot live (this epoch) */
extern _Atomic uint32_t fr__slots_high; /* 1 + highest slot index ever claimed (this epoch) */

/* Per-thread memo of recently interned strings, keyed by the caller's pointer
 * (await labels are usually literals, seen again and again). An entry is a
 * hint, never trusted: it is confirmed against the interned copy. 384 bytes
 * of initial-exec TLS, small enough for a dlopen'ed library. */
#define FR_INTERN_CACHE 16
struct fr_intern_memo {
    const char *ptr;  /* the caller's pointer */
    const char *text; /* the interned copy: len bytes */
    uint32_t id, len; /* len | FR_MEMO_READONLY: ptr is in the program's read-only text */
};
#define FR_MEMO_READONLY 0x80000000u /* len < FR_INTERN_MAX_LEN otherwise */

/* The per-thread writer, in initial-exec TLS: never touched by other threads. */
struct fr_writer {
    uint32_t epoch;  /* fr__epoch this writer attached in; UINT32_MAX: never */
    uint32_t busy;   /* inside a hook: a nested hook (signal handler) drops its event */
    struct fr_slot *slot;
    struct fr_page *page;
    uint8_t *pos;    /* next byte in page->data */
    uint8_t *limit;  /* a record may start at pos only if pos <= limit */
    uint64_t last_ticks;
    uint64_t last_task;
    uint32_t count;  /* records in the current page */
    uint32_t page_index;
    /* The poll open on this thread (the innermost one, between its
     * fr_poll_begin and fr_poll_end): events of poll_task wait in fold[]
     * for the poll's end record (or the thread's next record), untimed.
     * nfold <= FR_FOLD_MAX; nfold == 0 whenever in_poll == 0. The held
     * events are kept encoded as their fold list entries (format.h): the
     * first fold_len bytes of fold[]. */
    uint32_t in_poll;
    uint32_t nfold;
    uint64_t poll_task;
    uint32_t fold_len;
    uint8_t fold[FR_FOLD_BYTES];
    uint32_t gen;
    uint32_t gave_up_epoch; /* attach failed (registry full, thread exited) in this epoch */
    uint32_t tsc;           /* fr__clock_tsc at attach: the hooks' fast path tests it here */
    struct fr_intern_memo memo[FR_INTERN_CACHE]; /* cleared at attach: ids die with an epoch */
    struct fr_spawn_entry *young; /* slot->young, for the hooks */
};

extern __thread struct fr_writer fr__w __attribute__((tls_model("initial-exec")));

/* Nonzero while recording; bumped by fr_init and in a fork child so every
 * thread re-attaches. Never UINT32_MAX. Written with release by fr_init. */
extern _Atomic uint32_t fr__epoch;

int fr__writer_attach(struct fr_writer *w); /* 1: ready to record */
/* Write the calling thread's folded events now (hooks.c), unless it is inside
 * a hook. Async-signal-safe: crash and stall handlers and fr_dump() call it so
 * that a dump holds the running poll's events so far. */
void fr__writer_flush(void);
void fr__writer_next_page(struct fr_writer *w, uint64_t now);
void fr__registry_reset(void); /* fork child / re-init: every slot free */
void fr__thread_name_set(struct fr_slot *s, const char *name);
int fr__registry_init(void);
void fr__altstack_install(struct fr_slot *s);

/* ---- the spawn table (spawns.c) ----------------------------------------- */

/* The process-wide table (a power of two, at least FR_SPAWN_WAYS): at most
 * this many long-lived tasks keep their name and parent after their spawn
 * leaves the ring. 40 bytes each: 640 KiB for the process. */
#ifndef FR_SPAWN_SLOTS
#define FR_SPAWN_SLOTS 16384u
#endif
#define FR_SPAWN_WAYS 4u
/* Each thread's young table (a power of two): its latest spawns, 5 KiB. */
#ifndef FR_SPAWN_YOUNG
#define FR_SPAWN_YOUNG 128u
#endif
_Static_assert((FR_SPAWN_SLOTS & (FR_SPAWN_SLOTS - 1)) == 0 && FR_SPAWN_SLOTS >= FR_SPAWN_WAYS,
               "FR_SPAWN_SLOTS: a power of two");
_Static_assert((FR_SPAWN_YOUNG & (FR_SPAWN_YOUNG - 1)) == 0, "FR_SPAWN_YOUNG: a power of two");

struct fr_spawn_entry {
    _Atomic uint64_t task; /* meaningful while check != 0 */
    _Atomic uint64_t parent;
    _Atomic uint64_t ticks; /* the spawn record's time (a tombstone: the drop's) */
    _Atomic uint32_t name;  /* string id */
    _Atomic uint32_t tid;   /* the spawning thread (a tombstone: the dropping one) */
    _Atomic uint32_t check; /* fr__spawn_check of the rest; 0: empty; stored last */
    _Atomic uint32_t dead;  /* 1: a tombstone (process-wide table only, spawns.c) */
};
struct fr_spawn_copy {
    uint64_t task, parent, ticks;
    uint32_t name, tid;
};
extern struct fr_spawn_entry *fr__spawns; /* NULL before the first fr_init */
extern int fr__spawns_on; /* 0: FR_NO_SPAWN_TABLE (the hooks see a NULL young table) */

static inline uint64_t fr__spawn_hash(uint64_t task)
{
    return task * UINT64_C(0x9E3779B97F4A7C15);
}

/* Never 0 (an entry being written, or emptied, has check 0). */
static inline uint32_t fr__spawn_check(uint64_t task, uint64_t parent, uint64_t ticks,
                                       uint32_t name, uint32_t tid, uint32_t dead)
{
    uint64_t x = (task ^ (parent * UINT64_C(0xff51afd7ed558ccd)) ^ ticks ^
                  ((uint64_t)name << 32 | tid) ^ dead) * UINT64_C(0xc4ceb9fe1a85ec53);
    return (uint32_t)(x >> 32) | 1u;
}

/* Write entry @e: check cleared first and stored last, so a dump reading
 * meanwhile (or two writers at once) leaves a mismatch that is skipped. */
static inline void fr__spawn_entry_put(struct fr_spawn_entry *e, uint64_t task, uint64_t parent,
                                       uint64_t ticks, uint32_t name, uint32_t tid, uint32_t dead)
{
    atomic_store_explicit(&e->check, 0, FR_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&e->task, task, FR_RELAXED);
    atomic_store_explicit(&e->parent, parent, FR_RELAXED);
    atomic_store_explicit(&e->ticks, ticks, FR_RELAXED);
    atomic_store_explicit(&e->name, name, FR_RELAXED);
    atomic_store_explicit(&e->tid, tid, FR_RELAXED);
    atomic_store_explicit(&e->dead, dead, FR_RELAXED);
    atomic_store_explicit(&e->check, fr__spawn_check(task, parent, ticks, name, tid, dead),
                          FR_RELEASE);
}

/* The cold halves (spawns.c): a young entry pushed out while its task lives
 * goes to the process-wide table; a drop its young table does not hold
 * empties the task's process-wide entry, or leaves a tombstone there. */
void fr__spawn_promote(struct fr_spawn_entry *young);
void fr__spawn_insert(uint64_t task, uint64_t parent, uint64_t ticks, uint32_t name,
                      uint32_t tid);
void fr__spawn_forget_far(uint64_t task, uint64_t ticks); /* on the dropping thread */

/* fr_spawn's entry, in the spawning thread's young table @young (a hot line:
 * a task spawned and dropped on one thread touches nothing else). The task
 * it pushes out, if still live, moves to the process-wide table. */
static inline void fr__spawn_note(struct fr_spawn_entry *young, uint64_t task, uint64_t parent,
                                  uint64_t ticks, uint32_t name, uint32_t tid)
{
    if (FR_UNLIKELY(!young)) { /* its mapping failed at attach */
        fr__spawn_insert(task, parent, ticks, name, tid);
        return;
    }
    struct fr_spawn_entry *y = &young[(fr__spawn_hash(task) >> 40) & (FR_SPAWN_YOUNG - 1)];
    if (atomic_load_explicit(&y->check, FR_RELAXED) != 0 &&
        atomic_load_explicit(&y->task, FR_RELAXED) != task)
        fr__spawn_promote(y);
    fr__spawn_entry_put(y, task, parent, ticks, name, tid, 0);
}

/* fr_drop: empty @task's entry; its young one when this thread spawned it
 * and still holds it (the usual case), else the process-wide one. */
static inline void fr__spawn_forget(struct fr_spawn_entry *young, uint64_t task, uint64_t ticks)
{
    if (FR_LIKELY(young != NULL)) {
        struct fr_spawn_entry *y = &young[(fr__spawn_hash(task) >> 40) & (FR_SPAWN_YOUNG - 1)];
        if (atomic_load_explicit(&y->task, FR_RELAXED) == task &&
            atomic_load_explicit(&y->check, FR_RELAXED) != 0) {
            atomic_store_explicit(&y->check, 0, FR_RELAXED);
            return;
        }
    }
    fr__spawn_forget_far(task, ticks);
}

int fr__spawns_init(int on); /* fr_init: map the table, or clear it; @on 0: off */
void fr__spawns_reset(void); /* fork child: clear */
/* A young table for a slot (attach): mapped once, kept with the slot, emptied
 * at each claim. The hooks' copy (fr_writer.young) is NULL when the table is
 * off or could not be mapped. */
struct fr_spawn_entry *fr__spawn_young_claim(struct fr_spawn_entry *kept);
/* Copy up to @max whole live entries, the process-wide table's then every
 * live or exited thread's young table, starting at position @from; *@next
 * is where to go on (FR_SPAWNS_END: done). Async-signal-safe. */
#define FR_SPAWNS_END ((size_t)FR_SPAWN_SLOTS + (size_t)FR_MAX_THREADS * FR_SPAWN_YOUNG)
size_t fr__spawns_copy(size_t from, struct fr_spawn_copy *out, size_t max, size_t *next);

/* ---- interned strings (intern.c) ---------------------------------------- */

uint32_t fr__intern(const char *s); /* 0 for NULL; FR_STRING_OVERFLOW when full */
uint32_t fr__intern_memo_miss(struct fr_writer *w, const char *s); /* fr__intern + memo */
void fr__intern_find_readonly(void); /* fr_init: the main program's read-only segments */
/* 1 if the @bytes at @s lie in one of the main program's read-only segments */
int fr__intern_readonly(const char *s, size_t bytes);

/* @s holds exactly the @len bytes at @text, then a NUL. Reads no byte of @s
 * past s[len], and s[len] only when the first @len match (as memcmp, it
 * reads whole words of the first @len bytes). Word compares, the last one
 * overlapping the one before: a label costs two or three loads a side. */
static inline int fr__same_text(const char *text, const char *s, uint32_t len)
{
    uint64_t a, b;
    if (len >= 8) {
        uint32_t i = 0;
        for (; i + 8 < len; i += 8) {
            __builtin_memcpy(&a, text + i, 8);
            __builtin_memcpy(&b, s + i, 8);
            if (a != b)
                return 0;
        }
        __builtin_memcpy(&a, text + len - 8, 8);
        __builtin_memcpy(&b, s + len - 8, 8);
        if (a != b)
            return 0;
    } else if (len >= 4) {
        uint32_t x, y, u, v;
        __builtin_memcpy(&x, text, 4);
        __builtin_memcpy(&y, s, 4);
        __builtin_memcpy(&u, text + len - 4, 4);
        __builtin_memcpy(&v, s + len - 4, 4);
        if ((x ^ y) | (u ^ v))
            return 0;
    } else {
        for (uint32_t i = 0; i < len; i++)
            if (text[i] != s[i])
                return 0;
    }
    return s[len] == '\0';
}

/*
 * fr__intern_cached - fr__intern with the calling thread's memo in front.
 * A hit costs a pointer compare and a compare of the bytes with the interned
 * copy, inline: the caller may have freed and reused the pointer for other
 * text, and the compare (terminating NUL included) catches that. A string in
 * the program's read-only segments (FR_MEMO_READONLY) cannot change: its hit
 * is the pointer compare alone.
 */
static inline int fr__memo_matches(const struct fr_intern_memo *m, const char *s)
{
    return FR_LIKELY(m->ptr == s) &&
           ((int32_t)m->len < 0 || FR_LIKELY(fr__same_text(m->text, s, m->len)));
}

static inline uint32_t fr__intern_cached(struct fr_writer *w, const char *s)
{
    const struct fr_intern_memo *m = &w->memo[((uintptr_t)s >> 3) % FR_INTERN_CACHE];
    if (FR_LIKELY(s != NULL) && fr__memo_matches(m, s))
        return m->id;
    return fr__intern_memo_miss(w, s);
}
void fr__intern_reset(void);
/* Visit every complete entry whose bytes start at or after `from_off`;
 * returns the arena watermark to pass next time. Async-signal-safe. */
typedef int (*fr_intern_visit_fn)(void *arg, uint32_t id, const char *s, uint32_t len);
uint32_t fr__intern_foreach(uint32_t from_off, fr_intern_visit_fn fn, void *arg);

/* ---- process information (procinfo.c) ----------------------------------- */

void fr__procinfo_init(void);
struct fr_blob {
    const char *p;
    uint32_t len;
};
void fr__procinfo_get(struct fr_blob *exe, struct fr_blob *cmdline, struct fr_blob *host,
                      uint64_t *start_real_ns);

/* ---- async-signal-safe helpers (assafe.c) ------------------------------- */

size_t fr__fmt_u64(char *buf, uint64_t v);              /* decimal, no NUL */
size_t fr__strlcpy(char *dst, const char *src, size_t n); /* returns strlen(src) */
void fr__fmt_utc(char *buf, uint64_t real_ns);          /* "YYYYMMDDTHHMMSSZ" + NUL (17 bytes) */
void fr__warn(const char *a, const char *b, int err);   /* one line to stderr via write(2) */
void fr__sleep_ms(unsigned ms);
pid_t fr__gettid(void);
/* Up to @cap bytes of file @path into @buf (no NUL); 0 when it cannot be
 * opened or read. Opened, read and closed at once. */
size_t fr__read_file(const char *path, char *buf, size_t cap);

/* A descriptor the recorder opened, with the identity it had then. */
struct fr_fd {
    int fd; /* -1: none */
    dev_t dev;
    ino_t ino;
};
int fr__fd_hold(struct fr_fd *h, int fd); /* record fd's identity; 0, or -1 (h->fd = -1) */
int fr__fd_ours(const struct fr_fd *h);   /* 1: still the same open file */
void fr__fd_release(struct fr_fd *h);     /* close it only if it is still ours */

/* ---- dumps (dump.c, dumpfile.c) ----------------------------------------- */

enum fr_unwind_status {
    FR_UNWIND_OK = 0,       /* the unwinder thread finished */
    FR_UNWIND_TIMEOUT,      /* it did not finish in time: frames so far */
    FR_UNWIND_FAULT,        /* it faulted reading the stack: frames so far */
    FR_UNWIND_FDS_TAKEN,    /* libunwind's pipe was taken: frame 0 only */
    FR_UNWIND_INLINE,       /* no unwinder thread: unwound on the crashing thread */
};

struct fr_crash_info {
    int signo;
    int code;
    uint64_t addr;
    uint32_t tid;
    uint64_t task;
    uint64_t ticks;
    uint64_t ip, sp;
    int nframes;
    int unwind; /* enum fr_unwind_status */
    uint64_t frames[FR_MAX_FRAMES];
};

enum fr_dump_ctx_id { FR_CTX_NORMAL = 0, FR_CTX_CRASH = 1, FR_CTX_COUNT };

/* Little-endian serialisation for the dump and the shared-rings file: the
 * format is byte offsets, never C structs (flightrec/format.h). */
static inline void fr__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void fr__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void fr__put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

struct fr_settings {
    char dump_dir[4096];
    size_t ring_bytes;
    int dump_signal;        /* the current one, -1 none; moves (signal.c): read it atomically */
    int dump_signal_fixed;  /* chosen by fr_config or FLIGHTREC_SIGNAL=NAME, not the default */
    unsigned flags;
    unsigned max_dumps;
    unsigned stall_ms;        /* 0: no watchdog (watchdog.c) */
    unsigned stall_dumps;     /* at most this many stall dumps ... */
    unsigned stall_window_s;  /* ... per this many seconds */
    uint64_t dump_on;         /* FR_DUMP_ON(sig) bits (termination.c) */
};
extern struct fr_settings fr__cfg;

/* An extra section a trigger adds right after the header (the watchdog's
 * STALL). Set by the holder of @ctx before fr__dump_write, cleared after. */
struct fr_dump_extra {
    enum fr_section kind;
    const void *body;
    size_t len;
};
void fr__dump_set_extra(enum fr_dump_ctx_id ctx, const struct fr_dump_extra *x);

int fr__dump_init(void);
void fr__dump_reset_after_fork(void);
void fr__dump_fini(void);
int fr__dump_write(enum fr_dump_ctx_id ctx, enum fr_trigger trigger, int signo, const char *reason,
                   const struct fr_crash_info *crash, char *path, size_t path_size);
void fr__dump_salvage(enum fr_dump_ctx_id ctx); /* second crash inside a dump: keep its whole frames */
int fr__dump_lock(unsigned timeout_ms);
void fr__dump_unlock(void);
#ifdef FR_TEST_HOOKS
/* Test builds only: nonzero makes every event a record of its own, timed (no
 * folding), so a test can compare both encodings of one run (hooks.c). */
extern int fr__test_no_fold;
/* rundelay.c: write one run-delay entry as the sampler does (the caller
 * makes sure the sampler writes none meanwhile: no thread has recorded) */
void fr__test_run_delay_note(uint64_t from_ns, uint64_t to_ns, uint64_t delay_ns, uint32_t tid);
/* Test builds only: called by fr_dump()'s writer after it copied a ring. */
extern void (*fr__test_after_copy)(uint32_t tid);
#endif

/* dumpfile.c: one dump file's life, all async-signal-safe */
enum {
    FR_DF_DIR_REOPENED = 1,    /* the held directory descriptor was taken by the program */
    FR_DF_DIR_UNREACHABLE = 2, /* the directory's path no longer leads to it (chroot...) */
    FR_DF_SPARE_USED = 4,      /* out of descriptors: the spare made room for the file */
};
struct fr_dumpfile {
    int dirfd, fd;      /* dirfd is borrowed from dumpfile.c, never closed by the caller */
    int used_dirfd;     /* the directory descriptor the last dump went through */
    struct fr_fd spare; /* held for EMFILE; given up to create the file, taken back after */
    unsigned flags;     /* FR_DF_* of the current dump */
    uint64_t seq, real_ns;
    char tmp[96];
    char final[128];
};
void fr__dumpfile_init(struct fr_dumpfile *const *files, int n); /* fr_init: dir, spares */
void fr__dumpfile_fini(struct fr_dumpfile *const *files, int n); /* fr_shutdown */
void fr__dumpfile_after_fork(void);                     /* a new unique name component */
int fr__dumpfile_open(struct fr_dumpfile *f, uint64_t seq, uint64_t real_ns);
int fr__dumpfile_write(struct fr_dumpfile *f, const void *buf, size_t len);
/* fsync, rename to final (never replacing), fsync dir, then keep at most
 * max_dumps (0: no limit) */
int fr__dumpfile_commit(struct fr_dumpfile *f, unsigned max_dumps);
void fr__dumpfile_abort(struct fr_dumpfile *f);  /* close and unlink the temporary */

/* ---- signals (signal.c, crash.c, unwind.c) ------------------------------ */

/* fr_init's body (init.c); fr_init itself is in abi.c or abi_static.c. */
int fr__init(const struct fr_config *cfg);
int fr__dumper_start(void);
void fr__dumper_stop(void);
void fr__dumper_restart_in_child(void);
/* Wake a sleeping dumper that has a request waiting: the dump signal's
 * handler leaves that wake to the run-delay sampler when it wakes soon
 * (signal.c). Called by the sampler after each of its wakes. */
void fr__dumper_kick(void);
FR_API void fr__signal_claimed(int sig, int how); /* for the adapters' wrappers */
FR_API int fr__poller_enter(void);                /* adapter.c */
FR_API int fr__poller_leave(void);
int fr__signal_parse(const char *s);              /* "USR2", "RTMIN+3", "12"; -1 none; 0 auto; -EINVAL */
int fr__crash_install(void);
void fr__crash_uninstall(void);
void fr__crash_reset_after_fork(void);
int fr__crash_claimed(int sig);                          /* adapters' wrappers, via signal.c */
int fr__crash_view(int sig, struct sigaction *view);     /* adapters' wrappers, via termination.c */
/* unwind.c: backtraces taken by an unwinder thread, bounded in time */
int fr__unwind_start(void);          /* fr_init: warm up libunwind, start the thread */
void fr__unwind_stop(void);          /* fr_shutdown */
void fr__unwind_restart_in_child(void);
int fr__unwind_on_fault(void);       /* crash handler: 1 if this is the unwinder thread */
int fr__backtrace(void *ucontext, uint64_t *frames, int max, int *status);
/* crash.c: run fn(arg) on the preallocated crash stack */
void fr__call_on_stack(void *stack_top, void (*fn)(void *), void *arg);
/* sigaction() that the adapters' wrappers recognise as the library's own */
int fr__own_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int fr__in_own_sigaction(void);

/* ---- the run-delay sampler (rundelay.c) ---------------------------------- */

/* How often the sampler reads the run delay of each thread that recorded
 * since its last reading, ms (up to 16 times longer while none did). */
#ifndef FR_RUN_DELAY_PERIOD_MS
#define FR_RUN_DELAY_PERIOD_MS 20u
#endif
/* A growth of a thread's run delay below this is not noted yet (it adds up). */
#ifndef FR_RUN_DELAY_MIN_NS
#define FR_RUN_DELAY_MIN_NS 1000000u
#endif
/* Entries kept, the newest (32 bytes each in the dump). */
#ifndef FR_RUN_DELAY_ENTRIES
#define FR_RUN_DELAY_ENTRIES 4096u
#endif
/* The entry ring's bytes: a u64 count and a reserved u64, then 40 bytes an
 * entry (rundelay.c; the shared rings file holds it so, docs/format.md). */
#define FR_RUN_DELAY_RING_BYTES (16u + 40u * FR_RUN_DELAY_ENTRIES)

struct fr_run_delay_copy {
    uint64_t from_ns, to_ns, delay_ns; /* CLOCK_MONOTONIC */
    uint32_t tid;
    uint32_t older_dropped; /* the first entry copied: older ones were overwritten */
};
int fr__run_delay_start(void); /* no-op with FR_NO_RUN_DELAY; 0 or -errno */
int fr__run_delay_on(void);    /* the sampler runs: dumps carry RUN_DELAY */
/* Keep the entry ring in @mem (FR_RUN_DELAY_RING_BYTES, zeroed, 8-byte
 * aligned: the shared rings file's region), or in private memory again
 * (NULL). Before the sampler starts, or when the file is closed. */
void fr__run_delay_share(void *mem);
/* At a thread's attach (its first event, before LIVE): its run delay so far,
 * into @s. One open, read and close; async-signal-safe. */
void fr__run_delay_attach(struct fr_slot *s);
/* At a thread's exit (before EXITED): the same, for its last waits. */
void fr__run_delay_exit(struct fr_slot *s);
/* The sampler runs and wakes again within @ns of now (it then calls
 * fr__dumper_kick). Async-signal-safe: two atomic loads and a vDSO clock read. */
int fr__run_delay_wakes_within(uint64_t ns);
void fr__run_delay_stop(void);
void fr__run_delay_restart_in_child(void);
/* Copy whole entries from *@at (UINT64_MAX: the oldest kept) into @out, at
 * most @max; *@at moves past what was looked at. Async-signal-safe. Return:
 * how many were copied; the copy is done when *@at stops moving. */
size_t fr__run_delay_copy(uint64_t *at, struct fr_run_delay_copy *out, size_t max);

/* ---- the stall watchdog (watchdog.c) ------------------------------------- */

int fr__watchdog_parse_env(void); /* FLIGHTREC_STALL_MS/_DUMPS/_WINDOW into fr__cfg; 0 or -EINVAL */
int fr__watchdog_start(void);     /* no-op when fr__cfg.stall_ms == 0 */
void fr__watchdog_stop(void);
void fr__watchdog_restart_in_child(void);
void fr__watchdog_signal_claimed(int sig, int how);

/* ---- dump on termination signals (termination.c) ----------------------- */

int fr__termination_parse(const char *s, uint64_t *mask); /* "TERM,INT"; 0 or -EINVAL */
int fr__termination_install(void);
void fr__termination_uninstall(void);
int fr__termination_claimed(int sig); /* 1: @sig is chained behind a dump */
FR_API int fr__signal_view(int sig, struct sigaction *view); /* for the adapters' wrappers */

/* ---- shared rings (shared.c) --------------------------------------------- */

int fr__shared_open(void);  /* FR_SHARED_RINGS: create the .rings file; 0 or -errno */
void fr__shared_close(void); /* unlink it (normal exit, fr_shutdown, a fatal signal) */
void fr__shared_after_fork(void);
int fr__shared_ring(struct fr_slot *s);     /* map @s's ring from the file; 0 or -errno */
void fr__shared_ring_release(struct fr_slot *s); /* a private ring again: drop a file mapping */
void fr__shared_slot(const struct fr_slot *s, int exited); /* mirror tid, gen, name, state */
void fr__shared_string(uint32_t id, const char *s, uint32_t len);
void fr__shared_clock(void); /* mirror fr__clock_pairs */

#endif /* FR_INTERNAL_H */
