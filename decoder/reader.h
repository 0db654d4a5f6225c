/*
 * decoder/reader.h - read and validate a flightrec dump (.frd) into memory.
 *
 * The reader is the first stage of the decoder (reader -> model -> analyses ->
 * renderers) and the only part that touches dump bytes. It walks the zstd
 * frames described in include/flightrec/format.h, decompresses each section
 * with a hard size cap, checks every length, offset and count, and validates
 * the per-thread ring pages. The pages stay in memory as recorded (about 3.3
 * bytes an event); events are decoded from them on demand, one at a time,
 * through a thread cursor (frd_tcur), with absolute ticks and nanoseconds.
 * Only when asked (FRD_OPEN_EVENTS, and frd_open) does the reader also
 * decode every event into an array per thread (40 bytes an event).
 *
 * Damage is not fatal: a truncated or corrupt dump yields every whole frame
 * before (and, where the frame boundaries survive, after) the damage. Pages
 * whose records do not fit their header are dropped and counted; the rest of
 * the thread is kept. Each problem is recorded as one message of the form
 *   "FILE: offset N: expected X, found Y"
 * in frd_dump.errors, and frd_dump.damaged is set.
 *
 * Conventions: functions return 0 or a negative errno value. Everything a
 * struct frd_dump points to is owned by it and freed by frd_close().
 * Times: `ticks` are as recorded (TSC cycles or CLOCK_MONOTONIC ns, see
 * FR_HDR_TSC); `ns` are CLOCK_MONOTONIC nanoseconds of the recording process,
 * converted through the CLOCK section.
 */
#ifndef FRD_READER_H
#define FRD_READER_H

#include <stddef.h>
#include <stdint.h>

#include <flightrec/format.h>

/*
 * Decompressed size cap for one section. A section larger than this is
 * reported as corrupt instead of being inflated: it bounds the memory a
 * hostile file can make the decoder allocate. 256 MiB holds a 64 MiB ring
 * (pages plus headers) with a wide margin.
 */
#ifndef FRD_SECTION_MAX
#define FRD_SECTION_MAX (256u << 20)
#endif

/* THREAD sections read from one dump, at most: a recorder has 1024 slots by
 * default (meson option max_threads), and a slot's threads over a long run
 * come and go; more is a damaged file. The model keeps a thread index in 30
 * bits (struct frd_wake). */
#define FRD_THREADS_MAX (1u << 24)

/* Error messages kept per dump; later ones are counted but not stored. */
#ifndef FRD_MAX_ERRORS
#define FRD_MAX_ERRORS 64u
#endif

/* File header fields (frame 0). */
struct frd_header {
    uint16_t version;
    uint16_t header_size;
    uint32_t trigger; /* enum fr_trigger */
    uint32_t signo;
    uint32_t pid;
    uint32_t page_size;
    uint64_t ring_bytes;
    uint64_t realtime_ns;
    uint64_t dump_seq;
    uint32_t max_threads;
    uint32_t flags;                 /* FR_HDR_* */
    char reason[FR_REASON_MAX + 1]; /* NUL-terminated */
};

/* A length-delimited byte string inside the dump (not NUL-terminated). */
struct frd_blob {
    const char *p;
    size_t len;
};

struct frd_process {
    int present;
    uint32_t pid, ppid;
    uint64_t start_realtime_ns;
    struct frd_blob exe;
    struct frd_blob cmdline; /* arguments separated by NUL bytes */
    struct frd_blob host;
    struct frd_blob version;
};

struct frd_clock_pair {
    uint64_t ticks, mono_ns, real_ns;
};

struct frd_clock {
    int present;
    uint32_t source; /* FR_CLOCK_TSC or FR_CLOCK_MONOTONIC */
    uint32_t npairs;
    struct frd_clock_pair *pairs;
    /* Conversion: ns = ref_ns + (ticks - ref_ticks) * ns_per_tick. */
    uint64_t ref_ticks;
    int64_t ref_ns;
    double ns_per_tick;
    int calibrated; /* 0: no usable pairs, ticks are shown as if they were ns */
};

struct frd_crash {
    int present;
    uint32_t signo;
    int32_t code;
    uint64_t fault_addr;
    uint32_t tid;
    uint64_t task; /* polled on the crashing thread, 0 none */
    uint64_t ticks;
    int64_t ns;
    uint64_t ip, sp;
    uint32_t nframes;
    uint64_t *frames; /* innermost first; frames[0] is the faulting ip */
};

/* STALL section (watchdog dumps): one poll ran past the threshold. */
struct frd_stall {
    int present;
    uint32_t tid, nframes, flags; /* flags: FR_STALL_STACK if frames were taken */
    uint64_t task;
    uint64_t begin_ticks, sample_ticks, threshold_ns;
    int64_t begin_ns, sample_ns; /* the poll's start; when its stack was taken */
    uint64_t ip, sp;
    uint64_t *frames; /* innermost first; frames[0] is the interrupted ip */
};

/* RECOVERY section (`flightrec recover`): what the shared rings held. */
struct frd_recovery {
    int present;
    uint32_t threads, pages_kept, pages_torn;
    uint64_t file_size;
};

struct frd_string {
    uint32_t id;
    uint32_t len;
    const char *text; /* len bytes, not NUL-terminated, may hold any byte */
};

/* One decoded record. Fields a type does not carry are 0. */
struct frd_event {
    uint64_t ticks;  /* absolute */
    int64_t ns;      /* CLOCK_MONOTONIC ns */
    uint64_t task;   /* all task hooks */
    union {
        uint64_t parent; /* FR_EV_SPAWN */
        uint64_t lock;   /* FR_EV_LOCK_WAIT, _ACQUIRE, _RELEASE */
    };
    uint32_t str;    /* string id: SPAWN name, AWAIT/MARK label, THREAD_NAME, LOCK_WAIT name */
    uint8_t type;    /* enum fr_event */
};

/*
 * One page of a thread's ring that passed validation: its `count` records
 * fill exactly `used` bytes at `body` (inside the dump's section buffer).
 * first_ticks/last_ticks: of its first and last record (count > 0 only);
 * name_str: the string id of its last THREAD_NAME record if has_name.
 */
struct frd_page {
    uint64_t seq, base;
    const uint8_t *body;
    uint32_t used, count; /* count: records (a version-2 record may hold several events) */
    uint32_t events;      /* events in those records */
    uint32_t spawns;      /* spawn events among them */
    uint64_t first_ticks, last_ticks;
    uint32_t name_str;
    uint32_t has_name;
    size_t at; /* its header's offset in the THREAD section, for messages */
};

struct frd_thread {
    uint32_t tid, slot, state; /* state: 1 live, 2 exited */
    uint32_t gen;              /* slot generation */
    uint32_t page_size;
    char name[FR_THREAD_NAME_MAX + 1]; /* header name, else last THREAD_NAME */
    uint64_t current_task;
    uint64_t pages_started;      /* raised to the highest seq held: pages may start during the dump */
    uint64_t events_overwritten; /* as counted by the recorder */
    uint64_t events_dropped;     /* as counted by the recorder */
    uint64_t file_offset;        /* of this section's frame in the file */

    uint32_t npages;        /* pages in the file (good and bad) */
    uint32_t pages_bad;     /* dropped by the reader: records did not fit */
    uint64_t pages_missing; /* seqs in 1..pages_started not held (overwritten, torn) */

    struct frd_page *pages; /* the good pages, in seq order (unique seqs) */
    size_t ngood;
    size_t nevents;           /* events in the good pages */
    size_t nspawns;           /* spawn events among them */
    struct frd_event *events; /* NULL unless FRD_OPEN_EVENTS: nevents events in
                                 recording order (page seq, then record) */

    /*
     * Coverage. first_ns/last_ns: the oldest and newest event still held.
     * complete_head: the thread's history is whole from its first event
     * (page 1 present, no hole); else every event at or after covered_from_ns
     * is held. complete_tail: nothing is missing after the newest held event.
     */
    int64_t first_ns, last_ns;
    int complete_head, complete_tail;
    int64_t covered_from_ns; /* INT64_MIN if complete_head, INT64_MAX if none */
    size_t first_whole;      /* events from index first_whole on have no hole among them */

    /*
     * When the dump writer copied this ring (COPIED section): events the
     * thread recorded after copied_ns may be missing from the dump.
     * copied: 0 when the dump does not say (older writers); copied_ns is
     * then INT64_MAX.
     */
    int copied;
    uint64_t copied_ticks;
    int64_t copied_ns;
};

/* One entry of the COPIED section, as recorded. */
struct frd_copied {
    uint32_t tid, slot, gen;
    uint64_t ticks;
};

/* One entry of the SPAWNS section: the recorder's spawn table at dump time
 * (a live task's latest spawn, kept after its record left the ring). */
struct frd_spawn {
    uint64_t task, parent;
    uint64_t ticks; /* of the spawn */
    uint32_t name;  /* string id */
    uint32_t tid;   /* the spawning thread */
};

/* A RUN_DELAY entry (CLOCK_MONOTONIC ns): thread @tid waited @delay_ns in
 * all for a CPU, in waits that each ended in (from_ns, to_ns] (the kernel
 * counts a wait when it ends: it may have begun before from_ns, never before
 * from_ns - delay_ns). */
struct frd_run_delay {
    int64_t from_ns, to_ns;
    uint64_t delay_ns;
    uint32_t tid;
};

struct frd_dump {
    const char *path; /* as given to frd_open ("-" for stdin) */
    uint64_t file_size;
    struct frd_header hdr;
    struct frd_process proc;
    struct frd_clock clock;
    struct frd_crash crash;
    struct frd_stall stall;       /* trigger FR_TRIGGER_STALL */
    struct frd_recovery recovery; /* trigger FR_TRIGGER_RECOVERED */
    struct frd_string *strings; /* sorted by id, ids unique */
    size_t nstrings;
    struct frd_blob modules; /* /proc/self/maps text at dump time */
    struct frd_blob notes;   /* NOTES text: what the recorder could not capture; p NULL if none */
    unsigned flags;          /* FRD_OPEN_* it was opened with */
    struct frd_thread *threads;
    size_t nthreads;

    struct frd_copied *copied; /* COPIED entries, as read (matched to threads by finish) */
    size_t ncopied;
    struct frd_spawn *spawns; /* SPAWNS entries, as read (the model uses them) */
    size_t nspawns;
    /* RUN_DELAY entries, as read; have_run_delay: the section was there (the
     * recorder's run-delay sampler was on), even if empty */
    struct frd_run_delay *run_delays;
    size_t nrun_delays;
    int have_run_delay;
    /* Run delays are known from here on (INT64_MIN: from the start): the
     * recorder's ring of entries had overwritten older ones */
    int64_t run_delay_from_ns;

    int have_end;          /* END section seen: the dump is whole */
    uint32_t end_sections; /* count stored in END */
    uint32_t nsections;    /* sections decoded */

    int damaged;       /* nonzero: cut short or corrupt somewhere; see errors */
    char **errors;     /* nerrors messages, "FILE: offset N: ..." */
    size_t nerrors;    /* stored */
    size_t errors_all; /* including those not stored */
    uint64_t stopped_at; /* file offset where decoding stopped (file_size if whole) */

    struct frd_priv *priv; /* the reader's allocations */
};

/* frd_open_ex flags. */
#define FRD_OPEN_EVENTS 1u /* also decode every event into frd_thread.events */

/*
 * frd_open_ex - read the dump at @path ("-": standard input) and decode it.
 * @path: file name; kept (not copied) for messages, must outlive the dump.
 * @flags: FRD_OPEN_EVENTS or 0 (events are then read through frd_tcur only,
 *         and frd_thread.events is NULL).
 * @out:  receives the dump on success.
 * @err, @errlen: receives a one-line message when nothing can be decoded.
 *
 * A damaged dump still opens: check (*out)->damaged and ->errors. Messages,
 * counts and coverage do not depend on @flags.
 *
 * Return: 0; -ENOMEM; -errno from open/read; -EBADMSG if the file is not a
 * flightrec dump of a version this reader knows (no usable header).
 */
int frd_open_ex(const char *path, unsigned flags, struct frd_dump **out, char *err,
                size_t errlen);

/* frd_open - frd_open_ex(@path, FRD_OPEN_EVENTS, ...). */
int frd_open(const char *path, struct frd_dump **out, char *err, size_t errlen);

/*
 * frd_open_mem_ex - as frd_open_ex, reading from @len bytes at @buf, which
 * are copied. @name is used in messages. Return: as frd_open_ex.
 */
int frd_open_mem_ex(const void *buf, size_t len, const char *name, unsigned flags,
                    struct frd_dump **out, char *err, size_t errlen);

/* frd_open_mem - frd_open_mem_ex(..., FRD_OPEN_EVENTS, ...). */
int frd_open_mem(const void *buf, size_t len, const char *name, struct frd_dump **out,
                 char *err, size_t errlen);

/* frd_close - free the dump and everything it points to. NULL is fine. */
void frd_close(struct frd_dump *d);

/*
 * frd_string - the text of string @id, or NULL for 0, FR_STRING_OVERFLOW
 * and unknown ids. @len receives its length (the text is not NUL-terminated).
 */
const char *frd_string(const struct frd_dump *d, uint32_t id, size_t *len);

/*
 * frd_blob_next_arg - the next NUL-separated argument of @b (the command
 * line) at *@pos, its length in *@len; advances *@pos. NULL after the last.
 * A missing final NUL ends the last argument as well.
 */
const char *frd_blob_next_arg(const struct frd_blob *b, size_t *pos, size_t *len);

/* frd_ticks_to_ns - convert recorded ticks to CLOCK_MONOTONIC ns. */
int64_t frd_ticks_to_ns(const struct frd_dump *d, uint64_t ticks);

/*
 * frd_end_ns - the end of the recording: the dump-time clock pair if the
 * CLOCK section has one at or after the newest event, else the newest event.
 */
int64_t frd_end_ns(const struct frd_dump *d);

/*
 * frd_thread_by_tid - the THREAD section of thread @tid in @d: the last one
 * (a tid the kernel reused names the newest thread), or NULL when @tid has
 * no ring in the dump.
 */
const struct frd_thread *frd_thread_by_tid(const struct frd_dump *d, uint32_t tid);

/*
 * frd_run_delay_lost - the recorder's run-delay sampler ran (header flag
 * FR_HDR_RUN_DELAY) but the dump has no RUN_DELAY section: it was cut short,
 * or recovered from shared rings. How long the host kept any thread from
 * running is then unknown, not zero. Return: 1 if so, else 0.
 */
static inline int frd_run_delay_lost(const struct frd_dump *d)
{
    return (d->hdr.flags & FR_HDR_RUN_DELAY) && !d->have_run_delay;
}

/*
 * A cursor over one thread's events in recording order, decoding them from
 * the validated pages as it goes (no allocation). Fields are private.
 */
struct frd_tcur {
    const struct frd_dump *d;
    const struct frd_thread *t;
    size_t page;            /* next page to enter */
    const uint8_t *p, *end; /* records left in the current page */
    uint32_t left;          /* how many */
    uint64_t ticks, prev_task;
    size_t idx; /* events returned so far */
    /* a version-2 record of several events being returned: nfold folded
     * events left at fp (of fold_task, at fold_ticks), then the poll end
     * end_type if nonzero (at ticks); p is past the record once they are out */
    const uint8_t *fp;
    uint32_t nfold;
    uint8_t end_type;
    uint64_t fold_task, fold_ticks;
    /* the last ticks converted to ns: folded events and records at the
     * same time take the ns of the event before them without the division */
    uint64_t memo_ticks;
    int64_t memo_ns;
};

/* frd_tcur_init - a cursor at the first event of thread @t of dump @d. */
void frd_tcur_init(struct frd_tcur *c, const struct frd_dump *d, const struct frd_thread *t);

/*
 * frd_tcur_next - decode the next event into @e (ns included).
 * Return: 1, or 0 at the end of the thread's events.
 */
int frd_tcur_next(struct frd_tcur *c, struct frd_event *e);

/* frd_event_name - "spawn", "poll_begin", ... or "unknown". */
const char *frd_event_name(unsigned type);

/* frd_trigger_name - "api", "signal", "crash" or "unknown". */
const char *frd_trigger_name(uint32_t trigger);

#endif /* FRD_READER_H */
