/*
 * flightrec/format.h - the dump file format, version 2 (see docs/format.md).
 *
 * A dump is a valid zstd stream: one skippable frame holding the file header,
 * then one zstd frame (with content checksum) per section. `zstd -t` accepts a
 * whole dump, and a truncated dump still yields every whole frame before the
 * cut. All integers are little-endian; a reader needs nothing but this file.
 *
 * The layouts below are byte offsets, not C structs: readers decode fields one
 * by one with bounds checks, and writers serialise them explicitly, so padding
 * and host byte order never leak into the file.
 */
#ifndef FLIGHTREC_FORMAT_H
#define FLIGHTREC_FORMAT_H

#include <stdint.h>

#define FR_FORMAT_VERSION 2u
/* Oldest version readers of this header still take: version 1 is version 2
 * without the record flags and the FOLD record (see "records" below). */
#define FR_FORMAT_VERSION_MIN 1u

/* ---- frame 0: zstd skippable frame carrying the file header ------------- */
#define FR_SKIPPABLE_MAGIC 0x184D2A5Au /* in zstd's skippable range 0x184D2A5? */
#define FR_FILE_MAGIC "FLIGHTRC"       /* 8 bytes, no NUL */
#define FR_RINGS_MAGIC "FLIGHTRR"      /* a shared rings file's first 8 bytes */
#define FR_ENDIAN_MARK 0x01020304u     /* written as LE; reads 0x04030201 if swapped */

/*
 * File header (payload of the skippable frame), FR_HEADER_SIZE bytes:
 *   0  char[8] magic          FR_FILE_MAGIC
 *   8  u16     version        FR_FORMAT_VERSION
 *  10  u16     header_size    FR_HEADER_SIZE; readers ignore bytes past what they know
 *  12  u32     endian         FR_ENDIAN_MARK
 *  16  u32     trigger        enum fr_trigger
 *  20  u32     signo          crash or dump signal number, 0 for fr_dump()
 *  24  u32     pid
 *  28  u32     page_size      ring page size in bytes (header included)
 *  32  u64     ring_bytes     per-thread ring size
 *  40  u64     realtime_ns    CLOCK_REALTIME when the dump started
 *  48  u64     dump_seq       dumps written by this process before this one
 *  56  u32     max_threads    registry capacity
 *  60  u32     flags          FR_HDR_*
 *  64  char[64] reason        NUL-padded UTF-8
 */
#define FR_HEADER_SIZE 128u
#define FR_REASON_MAX 64u

enum fr_trigger {
    FR_TRIGGER_API = 1,    /* fr_dump() */
    FR_TRIGGER_SIGNAL = 2, /* the dump signal, via the dumper thread */
    FR_TRIGGER_CRASH = 3,  /* a crash signal, written by the crashing thread */
    FR_TRIGGER_STALL = 4,  /* the stall watchdog: one poll ran too long (STALL section) */
    FR_TRIGGER_TERMINATION = 5, /* a FLIGHTREC_DUMP_ON signal (signo), before the program's handling */
    FR_TRIGGER_RECOVERED = 6,   /* `flightrec recover`: shared rings a dead process left */
};

#define FR_HDR_TSC 0x1u /* event ticks are TSC cycles (else CLOCK_MONOTONIC ns) */
/* The name of a thread that belongs to a pool made to run blocking work
 * (libuv's thread pool; the libuv adapter names its threads so): a long poll
 * there is what the pool is for. The stall watchdog leaves such threads
 * alone, and the decoder gives their finished long polls no long_poll. */
#define FR_BLOCKING_POOL_THREAD "uv-pool"

/* The run-delay sampler ran: the dump's RUN_DELAY section says how long its
 * threads waited for a CPU. With this bit and no RUN_DELAY section, the dump
 * lost it (cut short, or recovered from shared rings): how long the host kept
 * a thread from running is unknown, not zero. */
#define FR_HDR_RUN_DELAY 0x2u

/* ---- sections: one zstd frame each -------------------------------------- */
/*
 * Every decompressed section starts with:
 *   0  u32 kind      enum fr_section
 *   4  u32 version   of this section's layout (1)
 * and its body follows at offset 8. Unknown kinds are skipped by readers.
 */
#define FR_SECTION_HEADER_SIZE 8u

enum fr_section {
    FR_SEC_PROCESS = 1,
    FR_SEC_CLOCK = 2,
    FR_SEC_CRASH = 3,
    FR_SEC_STRINGS = 4,
    FR_SEC_MODULES = 5,
    FR_SEC_THREAD = 6,
    FR_SEC_END = 7,
    FR_SEC_NOTES = 8, /* text: what the dump could not capture, and why */
    FR_SEC_STALL = 9,    /* stall dumps: the stuck thread and its stack */
    FR_SEC_RECOVERY = 10, /* recovered dumps: what was left and what was dropped */
    FR_SEC_COPIED = 11, /* when each thread's ring was copied */
    FR_SEC_SPAWNS = 12, /* the spawn table: live tasks' names and parents */
    FR_SEC_RUN_DELAY = 13, /* when the host kept a recorded thread from running */
};

/*
 * PROCESS body:
 *   0  u32 pid   4  u32 ppid   8  u64 start_realtime_ns (fr_init time)
 *  16  then four blobs, each u32 length + bytes (no NUL):
 *      executable path, command line (arguments separated by NUL bytes),
 *      host name, flightrec version string
 *
 * CLOCK body:
 *   0  u32 source (1 = TSC, 2 = CLOCK_MONOTONIC nanoseconds)
 *   4  u32 npairs
 *   8  npairs x { u64 ticks, u64 monotonic_ns, u64 realtime_ns }
 *      taken at fr_init, ~50 ms later, and at the dump; ticks -> ns is the
 *      slope between the widest-apart pairs whose rate is a TSC's (100 MHz
 *      to 20 GHz; readers report pairs that disagree).
 *
 * CRASH body:
 *   0  u32 signo   4  i32 si_code   8  u64 fault_addr
 *  16  u32 tid    20  u32 nframes  24  u64 task (polled on the crashing thread; 0 none)
 *  32  u64 ticks (when the handler ran)   40  u64 ip   48  u64 sp
 *  56  nframes x u64 return/fault addresses, innermost first; frame 0 is the
 *      faulting instruction itself (signal frame)
 *
 * STRINGS body:
 *   entries to the end of the section, each { u32 id, u32 len, len bytes (no NUL) }.
 *   A dump may hold several STRINGS sections (one before the threads, one
 *   after with strings first seen during the dump); an id means the same
 *   text in all of them.
 *   Id 0 means "no string". Id 1 (FR_STRING_OVERFLOW) stands for any string
 *   seen after the table filled up; it is not listed.
 *
 * MODULES body: the text of /proc/self/maps at dump time (to the end of the
 *   section), used to map instruction pointers to file + offset offline.
 *
 * THREAD body:
 *   0  u32 tid        4  u32 slot        8  u32 state (1 live, 2 exited)
 *  12  u32 page_size 16  u64 current_task (being polled at dump time; 0 none)
 *  24  u64 pages_started (page sequence numbers run 1..pages_started)
 *  32  u64 events_overwritten (in pages recycled before the dump)
 *  40  u64 events_dropped (hook re-entered from a signal handler on this thread)
 *  48  char[32] name (NUL-padded)
 *  80  u32 gen (slot generation)   84  u32 reserved (0)
 *  88  pages to the end of the section, each FR_PAGE_HEADER_SIZE + used bytes:
 *        0 u64 seq   8 u64 base_ticks   16 u32 used   20 u32 count
 *        24 used bytes of records
 *      Pages are copied whole or not at all (a page torn by a concurrent
 *      writer is dropped), newest first, from the page that was current
 *      when the copy began (copied as far as it was committed) down to the
 *      oldest; newer pages are left out, and a page recycled under the copy
 *      ends it (every older page went before it), so the history has no
 *      hole in the middle. Readers still sort by seq and must not assume
 *      the order.
 *
 * STALL body (trigger FR_TRIGGER_STALL; older readers skip it):
 *   0  u32 tid        4  u32 nframes    8  u64 task (the poll that ran too long)
 *  16  u64 poll_begin_ticks             24  u64 sample_ticks (when the stack was taken)
 *  32  u64 threshold_ns                 40  u32 flags (FR_STALL_*)   44  u32 reserved (0)
 *  48  u64 ip        56  u64 sp (of the stuck thread when the stack was taken)
 *  64  nframes x u64 addresses, innermost first, as in CRASH: frame 0 is the
 *      interrupted instruction (signal frame), the rest return addresses.
 *   How long so far = sample_ticks - poll_begin_ticks, converted by CLOCK.
 *
 * RECOVERY body (trigger FR_TRIGGER_RECOVERED; older readers skip it):
 *   0  u32 threads      4  u32 pages_kept    8  u32 pages_torn (dropped: being
 *      recycled or half-written when the process died)   12 u32 flags (0)
 *  16  u64 file_size (of the .rings file read)
 *
 * COPIED body: when the writer copied each thread's ring.
 *   entries to the end of the section, one per THREAD section written,
 *   each 24 bytes { u32 tid, u32 slot, u32 gen, u32 reserved (0), u64 ticks }:
 *   ticks read just before that thread's pages were copied (same clock as
 *   event ticks). The writer copies the rings one after the other while the
 *   other threads keep recording, so each ring covers the recording up to
 *   its own copy (or its newest held event, if later) and no further: an
 *   event a thread recorded after its copy is not in the dump. A dump
 *   without this section (older writers) gives no copy times.
 *
 * SPAWNS body: the spawn table at dump time (older readers skip it).
 *   entries to the end of the section, each 32 bytes
 *   { u64 task, u64 parent, u64 ticks, u32 name (string id), u32 tid }:
 *   the latest fr_spawn of a task not dropped since (at most one entry per
 *   table slot; a task whose slot a later spawn took is not listed), its
 *   time in event ticks and the thread that spawned it. Readers use an entry
 *   only for a task whose spawn record is not in the dump, and only when
 *   the entry's time is older than that thread's oldest event (else the
 *   entry is another instance of a reused id). A dump without this section
 *   (older writers, recovered dumps) names such tasks by nothing.
 *
 * END body:
 *   0  u32 sections written before this one   4  u32 flags (0)
 *   A dump without END was cut short (disk full, second crash).
 */
#define FR_STALL_STACK 0x1u /* STALL: frames were captured on the stuck thread */
#define FR_STALL_HEADER_SIZE 64u
#define FR_RECOVERY_SIZE 24u
#define FR_PAGE_HEADER_SIZE 24u
#define FR_THREAD_NAME_MAX 32u
#define FR_STRING_OVERFLOW 1u
#define FR_CLOCK_TSC 1u
#define FR_CLOCK_MONOTONIC 2u

/* ---- records inside a page ---------------------------------------------- */
/*
 * Each record: u8 type byte, ULEB128 tick delta (from the previous record in
 * the page, or from base_ticks for the first), then the arguments in order:
 *   task   zigzag-LEB128 of (task - previous task argument in this page);
 *          the "previous task" starts at 0 on each page
 *   parent zigzag-LEB128 of (parent - task); does not move "previous task"
 *   string ULEB128 string id (see STRINGS)
 *   lock   zigzag-LEB128 of (lock - task); does not move "previous task"
 *          (a lock's address and its task's address are often close, so
 *          the difference stays short)
 * A page holds exactly `count` records in exactly `used` bytes.
 *
 * Version 2 (version 1 never sets these bits nor writes FR_REC_FOLD):
 *   type byte = kind | flags, kind = type & FR_REC_KIND (an enum fr_event,
 *   or FR_REC_FOLD);
 *   FR_REC_SAME_TIME  no tick delta follows: the record has the ticks of the
 *                     previous record (base_ticks for a page's first)
 *   FR_REC_FOLDED     only on POLL_PENDING / POLL_READY: after the task, a
 *                     fold list; its events come before the poll's end
 *   FR_REC_FOLD       a record of folded events alone: always SAME_TIME,
 *                     then task, then a fold list
 *   fold list: u8 n (1..FR_FOLD_LIST_MAX), then n x { u8 event type (one of
 *     FR_FOLDABLE), ULEB128 string id if that type carries a string }.
 *   Each folded event is of the record's task, in list order, with the ticks
 *   of the record before (the list was held while the task's poll ran: only
 *   the poll's begin and end carry their own time). A record is thus one
 *   event, or 1 + n (FOLDED), or n (FOLD); a page's `count` is records.
 */
#define FR_REC_KIND 0x3fu
#define FR_REC_FOLDED 0x40u
#define FR_REC_SAME_TIME 0x80u
#define FR_REC_FOLD 63u
#define FR_FOLD_LIST_MAX 16u
enum fr_event {
    FR_EV_SPAWN = 1,          /* task, parent, string name */
    FR_EV_POLL_BEGIN = 2,     /* task */
    FR_EV_POLL_PENDING = 3,   /* task: poll ended, returned FR_PENDING */
    FR_EV_POLL_READY = 4,     /* task: poll ended, returned FR_READY */
    FR_EV_AWAIT = 5,          /* task, string label */
    FR_EV_WAKE = 6,           /* task */
    FR_EV_WAKER_CLONE = 7,    /* task */
    FR_EV_WAKER_DROP = 8,     /* task */
    FR_EV_PARK = 9,           /* (no arguments) */
    FR_EV_UNPARK = 10,        /* (no arguments) */
    FR_EV_DROP = 11,          /* task */
    FR_EV_MARK = 12,          /* task, string label */
    FR_EV_THREAD_NAME = 13,   /* string name (fr_thread_name) */
    FR_EV_AWAIT_EXTERNAL = 14, /* task, string label: waits on input from outside */
    FR_EV_IDLE = 15,          /* task: stopped, waits for nothing */
    FR_EV_LOCK_WAIT = 16,     /* task, lock, string name: starts waiting for the lock */
    FR_EV_LOCK_ACQUIRE = 17,  /* task, lock: now holds it */
    FR_EV_LOCK_RELEASE = 18,  /* task, lock: lets it go */
};
#define FR_EV_MAX FR_EV_LOCK_RELEASE
/* Events a fold list may hold: the polled task's own, inside its poll, whose
 * time the analyses take from the poll (docs/format.md "Which events carry
 * their own time"). */
#define FR_FOLDABLE                                                                                \
    (1u << FR_EV_AWAIT | 1u << FR_EV_WAKE | 1u << FR_EV_WAKER_CLONE | 1u << FR_EV_WAKER_DROP |     \
     1u << FR_EV_MARK | 1u << FR_EV_AWAIT_EXTERNAL | 1u << FR_EV_IDLE)

/*
 * Code addresses in strings. A name or label may carry a code address as the
 * token "@0x" followed by lowercase hex digits (a callback, a caller's return
 * address), e.g. "uv timer @0x55d0c1a2b3c4". The decoder replaces each such
 * token by the symbol it resolves to through the MODULES section
 * ("uv timer refresh_cache_cb"), or by "module+0xoffset" when nothing names it.
 */

#endif /* FLIGHTREC_FORMAT_H */
