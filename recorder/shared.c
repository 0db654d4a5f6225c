/*
 * shared.c - shared rings: the rings and everything a dump needs, kept in a
 * MAP_SHARED file so that a process killed by SIGKILL leaves them on disk.
 *
 * With FR_SHARED_RINGS (FLIGHTREC_SHARED_RINGS=1), fr_init creates
 * `flightrec-<pid>-<unique>.rings` in the dump directory (0600, O_EXCL |
 * O_NOFOLLOW, through a directory descriptor opened O_NOFOLLOW, as dumps are).
 * Its layout is in docs/format.md ("Shared rings file"): a metadata area
 * (process information, clock pairs, a mirror of the slot registry, a
 * mirror of the interned strings, the module map, the run-delay sampler's
 * entry ring, rundelay.c's own) and then one ring per
 * registry slot, slot i at rings_off + i * ring_bytes. The file grows as
 * slots are first used (fallocate, never shrinking).
 *
 * The record path is the same code writing the same layout as with private
 * rings: only the memory behind r->mem differs. Each ring is written with
 * zeros when mapped, so its pages are allocated and writable before the
 * first event (no page fault on the record path until the kernel's
 * writeback write-protects a page again, at most once per page per
 * writeback period). Everything else is mirrored on slow paths: a thread's
 * attach and exit and fr_thread_name (slot entry), a string's first sight
 * (intern.c), the second clock pair (signal.c), the module map at each
 * thread's attach.
 *
 * The file is removed on normal exit (atexit), by fr_shutdown and before a
 * FLIGHTREC_DUMP_ON signal ends the process by its default action; after
 * SIGKILL, a crash or _exit it stays for `flightrec recover`. A fork child
 * gets its own file when one of its threads first records (a child that
 * only execs creates none); it never writes to its parent's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Bytes the metadata regions reserve (the rings start after them). */
#define PROC_CAP (8u * 1024u)
#define SLOT_ENTRY 64u
#define STR_ENTRY 16u
#define ARENA_CAP (FR_INTERN_BYTES + FR_INTERN_BYTES / 2u) /* room for duplicate inserts */
#ifndef FR_SHARED_MAPS_CAP
#define FR_SHARED_MAPS_CAP (256u * 1024u) /* each of two buffers */
#endif

static int fd = -1, dirfd_ = -1;
static char name[96];
static pid_t owner;       /* the process that created the file */
static uint32_t file_gen; /* bumped per file; slot_gen[i] says which file a ring maps */
static uint32_t slot_gen[FR_MAX_THREADS];
static uint8_t *meta;     /* the metadata area, mapped shared */
static size_t meta_len;
static _Atomic uint64_t file_size;
static _Atomic uint32_t arena_used;
static _Atomic int grow_lock, maps_lock, open_lock;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static uint64_t proc_off, slots_off, strtab_off, arena_off, maps_off, rundelay_off, rings_off;


static uint64_t align_page(uint64_t v)
{
    return (v + FR_PAGE_SIZE - 1) / FR_PAGE_SIZE * FR_PAGE_SIZE;
}

static void on_exit_remove(void)
{
    fr__shared_close();
}

static void register_atexit(void)
{
    atexit(on_exit_remove);
}

/* Release-store a u64 field of the metadata (the file's readers see whole
 * words; ordering only matters within the process's life). */
static void store64(uint8_t *m, uint64_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(m + off), v, __ATOMIC_RELEASE);
}

static void store32(uint8_t *m, uint64_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)(m + off), v, __ATOMIC_RELEASE);
}

static void put_blob(uint8_t **p, const char *s, uint32_t len)
{
    fr__put32(*p, len);
    memcpy(*p + 4, s, len);
    *p += 4 + len;
}

static void write_process(void)
{
    struct fr_blob exe, cmd, host;
    uint64_t start;
    fr__procinfo_get(&exe, &cmd, &host, &start);
    uint8_t *p = meta + proc_off;
    fr__put32(p, (uint32_t)getpid());
    fr__put32(p + 4, (uint32_t)getppid());
    fr__put64(p + 8, start);
    p += 16;
    /* 16 + 4 x 4 + 1024 + 4096 + 256 + version fits PROC_CAP */
    put_blob(&p, exe.p, exe.len);
    put_blob(&p, cmd.p, cmd.len);
    put_blob(&p, host.p, host.len);
    put_blob(&p, FR_VERSION_STRING, (uint32_t)strlen(FR_VERSION_STRING));
}

/* Clock pairs at 64 + 24 * i; count at 56. */
void fr__shared_clock(void)
{
    if (!meta)
        return;
    int n = atomic_load_explicit(&fr__clock_npairs, FR_ACQUIRE);
    for (int i = 0; i < n && i < FR_CLOCK_PAIRS; i++) {
        fr__put64(meta + 64 + 24 * i, fr__clock_pairs[i].ticks);
        fr__put64(meta + 64 + 24 * i + 8, fr__clock_pairs[i].mono_ns);
        fr__put64(meta + 64 + 24 * i + 16, fr__clock_pairs[i].real_ns);
    }
    store64(meta, 56, (uint64_t)n);
}

/* The module map into the buffer not in use, then switch (state at 216:
 * index << 32 | length). Skipped when another thread is at it. */
static void refresh_maps(void)
{
    int expect = 0;
    if (!meta || !atomic_compare_exchange_strong(&maps_lock, &expect, 1))
        return;
    uint64_t st = __atomic_load_n((uint64_t *)(void *)(meta + 216), __ATOMIC_ACQUIRE);
    uint32_t idx = (uint32_t)(st >> 32) ^ 1u;
    uint8_t *buf = meta + maps_off + (uint64_t)idx * FR_SHARED_MAPS_CAP;
    size_t n = fr__read_file("/proc/self/maps", (char *)buf, FR_SHARED_MAPS_CAP);
    store64(meta, 216, (uint64_t)idx << 32 | n);
    atomic_store(&maps_lock, 0);
}

static int mirror_string(void *arg, uint32_t id, const char *s, uint32_t len)
{
    (void)arg;
    fr__shared_string(id, s, len);
    return 0;
}

/* Grow the file to at least @size bytes; never shrinks it. */
static int grow(uint64_t size)
{
    if (atomic_load(&file_size) >= size)
        return 0;
    int expect = 0;
    while (!atomic_compare_exchange_weak(&grow_lock, &expect, 1)) {
        expect = 0;
        sched_yield();
    }
    int err = 0;
    if (atomic_load(&file_size) < size) {
        if (ftruncate(fd, (off_t)size) != 0)
            err = -errno;
        else
            atomic_store(&file_size, size);
    }
    atomic_store(&grow_lock, 0);
    return err;
}

/*
 * fr__shared_open - create this process's .rings file and its metadata
 * (the rings follow as threads attach). Called by fr_init with
 * FR_SHARED_RINGS, and lazily by a fork child's first attach.
 * Return: 0 or -errno (the file is removed again on failure).
 */
int fr__shared_open(void)
{
    if (fd >= 0 && owner == getpid())
        return 0;
    proc_off = 4096;
    slots_off = proc_off + PROC_CAP;
    strtab_off = slots_off + (uint64_t)FR_MAX_THREADS * SLOT_ENTRY;
    arena_off = strtab_off + (uint64_t)FR_INTERN_SLOTS * STR_ENTRY;
    maps_off = arena_off + ARENA_CAP;
    rundelay_off = maps_off + 2u * FR_SHARED_MAPS_CAP;
    rings_off = align_page(rundelay_off + FR_RUN_DELAY_RING_BYTES);
    meta_len = (size_t)rings_off;

    dirfd_ = open(fr__cfg.dump_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd_ < 0)
        return -errno;
    char pid[24], uniq[24];
    pid[fr__fmt_u64(pid, (uint64_t)getpid())] = '\0';
    uniq[fr__fmt_u64(uniq, fr__realtime_ns() % 1000000000000u)] = '\0';
    size_t n = fr__strlcpy(name, "flightrec-", sizeof name);
    n += fr__strlcpy(name + n, pid, sizeof name - n);
    n += fr__strlcpy(name + n, "-", sizeof name - n);
    n += fr__strlcpy(name + n, uniq, sizeof name - n);
    fr__strlcpy(name + n, ".rings", sizeof name - n);
    fd = openat(dirfd_, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int err = fd < 0 ? -errno : 0;
    if (!err && ftruncate(fd, (off_t)rings_off) != 0)
        err = -errno;
    if (!err) {
        void *p = mmap(NULL, meta_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            err = -errno;
        else
            __atomic_store_n(&meta, (uint8_t *)p, __ATOMIC_RELEASE);
    }
    if (err) {
        if (fd >= 0) {
            close(fd);
            unlinkat(dirfd_, name, 0);
        }
        close(dirfd_);
        fd = dirfd_ = -1;
        return err;
    }
    owner = getpid();
    file_gen++;
    atomic_store(&file_size, rings_off);
    atomic_store(&arena_used, 0);

    memcpy(meta, FR_RINGS_MAGIC, 8);
    fr__put16(meta + 8, 1);
    fr__put16(meta + 10, 4096);
    fr__put32(meta + 12, FR_ENDIAN_MARK);
    fr__put32(meta + 16, (uint32_t)getpid());
    fr__put32(meta + 20, (uint32_t)getppid());
    fr__put32(meta + 24, FR_PAGE_SIZE);
    /* the sampler starts in fr_init after this file, unless switched off
     * (fr_init fails if it cannot start) */
    fr__put32(meta + 28, (fr__clock_tsc ? FR_HDR_TSC : 0) |
                             ((fr__cfg.flags & FR_NO_RUN_DELAY) ? 0 : FR_HDR_RUN_DELAY));
    fr__put64(meta + 32, fr__cfg.ring_bytes / FR_PAGE_SIZE * FR_PAGE_SIZE);
    fr__put32(meta + 40, FR_MAX_THREADS);
    fr__put32(meta + 44, fr__clock_tsc ? FR_CLOCK_TSC : FR_CLOCK_MONOTONIC);
    fr__put64(meta + 48, fr__realtime_ns());
    fr__put64(meta + 136, proc_off);
    fr__put64(meta + 144, PROC_CAP);
    fr__put64(meta + 152, slots_off);
    fr__put64(meta + 160, FR_MAX_THREADS);
    fr__put64(meta + 168, strtab_off);
    fr__put64(meta + 176, FR_INTERN_SLOTS);
    fr__put64(meta + 184, arena_off);
    fr__put64(meta + 192, ARENA_CAP);
    fr__put64(meta + 200, maps_off);
    fr__put64(meta + 208, FR_SHARED_MAPS_CAP);
    fr__put64(meta + 224, rings_off);
    fr__put64(meta + 240, rundelay_off);
    fr__put64(meta + 248, FR_RUN_DELAY_ENTRIES);
    /* the run-delay sampler's entries from now on (a fork child's sampler
     * may run already: its entries so far stay in its memory) */
    fr__run_delay_share(meta + rundelay_off);
    write_process();
    fr__shared_clock();
    refresh_maps();
    fr__intern_foreach(0, mirror_string, NULL); /* a fork child's inherited strings */
    store32(meta, 232, 1); /* live */
    pthread_once(&atexit_once, register_atexit);
    return 0;
}

/* Remove the file (ours only: never a parent's). Async-signal-safe. The
 * mappings stay: threads may still be inside a hook. */
void fr__shared_close(void)
{
    if (fd < 0 || owner != getpid())
        return;
    unlinkat(dirfd_, name, 0);
    close(fd);
    close(dirfd_);
    fd = dirfd_ = -1;
    fr__run_delay_share(NULL); /* a sampler writing now still finds the mapping */
    __atomic_store_n(&meta, NULL, __ATOMIC_RELEASE); /* left mapped: see above */
}

/* fork child: forget the parent's file without touching it; the child's own
 * is created at its first attach (fr__shared_ring). */
void fr__shared_after_fork(void)
{
    if (fd >= 0) {
        close(fd);
        close(dirfd_);
    }
    fd = dirfd_ = -1;
    fr__run_delay_share(NULL); /* no sampler runs in the child yet */
    if (meta)
        munmap(meta, meta_len);
    meta = NULL;
    file_gen++; /* every inherited ring mapping is the parent's */
}

/*
 * fr__shared_ring - map slot @s's ring from the file (creating the file in a
 * fork child), replacing a mapping of an earlier file or a private ring, and
 * write it with zeros so its pages are allocated now. Attach path only.
 * Return: 0 or -errno.
 */
int fr__shared_ring(struct fr_slot *s)
{
    uint32_t i = (uint32_t)(s - fr__slots);
    struct fr_ring *r = &s->ring;
    size_t bytes = fr__cfg.ring_bytes / FR_PAGE_SIZE * FR_PAGE_SIZE;
    if (__atomic_load_n(&fd, __ATOMIC_ACQUIRE) < 0 || owner != getpid()) {
        /* a fork child's first attaches may race: one creates the file */
        int expect = 0;
        while (!atomic_compare_exchange_weak(&open_lock, &expect, 1)) {
            expect = 0;
            sched_yield();
        }
        int err = fr__shared_open();
        atomic_store(&open_lock, 0);
        if (err)
            return err;
    }
    if (r->mem && slot_gen[i] == file_gen && r->bytes == bytes) {
        refresh_maps();
        return 0;
    }
    if (r->mem)
        munmap(r->mem, r->bytes);
    r->mem = NULL;
    uint64_t off = rings_off + (uint64_t)i * bytes;
    int err = grow(off + bytes);
    if (err)
        return err;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
    if (p == MAP_FAILED)
        return -errno;
    memset(p, 0, bytes); /* allocate and map every page writable before the first event */
    r->mem = p;
    r->bytes = bytes;
    r->npages = (uint32_t)(bytes / FR_PAGE_SIZE);
    slot_gen[i] = file_gen;
    fr__put64(meta + slots_off + (uint64_t)i * SLOT_ENTRY + 48, off);
    refresh_maps();
    return 0;
}

/* Slot @s goes back to a private ring: drop its file mapping. */
void fr__shared_ring_release(struct fr_slot *s)
{
    uint32_t i = (uint32_t)(s - fr__slots);
    if (!slot_gen[i])
        return;
    if (s->ring.mem)
        munmap(s->ring.mem, s->ring.bytes);
    s->ring.mem = NULL;
    slot_gen[i] = 0;
}

/*
 * fr__shared_slot - mirror slot @s (tid, generation, name, state) into the
 * file's slot table: 0 state free, 1 live, 2 exited. Memory writes only.
 */
void fr__shared_slot(const struct fr_slot *s, int exited)
{
    uint8_t *m = __atomic_load_n(&meta, __ATOMIC_ACQUIRE);
    uint32_t i = (uint32_t)(s - fr__slots);
    if (!m || slot_gen[i] != file_gen || owner != getpid())
        return;
    uint64_t at = slots_off + (uint64_t)i * SLOT_ENTRY;
    store32(m, at, 0); /* a reader after SIGKILL skips an entry caught mid-update */
    fr__put32(m + at + 4, atomic_load_explicit(&s->gen, FR_RELAXED));
    fr__put32(m + at + 8, atomic_load_explicit(&s->tid, FR_RELAXED));
    uint32_t nl = atomic_load_explicit(&s->name_len, FR_ACQUIRE);
    if (nl > FR_THREAD_NAME_MAX - 1)
        nl = FR_THREAD_NAME_MAX - 1;
    memset(m + at + 16, 0, FR_THREAD_NAME_MAX);
    memcpy(m + at + 16, s->name, nl);
    fr__put32(m + at + 12, nl);
    store32(m, at, exited ? 2u : 1u);
}

/*
 * fr__shared_string - mirror interned string @id (@len bytes at @s) into the
 * file: bytes into the file's arena, then the table entry {off, len}, then
 * its ready word. Lock-free; called at a string's first sight.
 */
void fr__shared_string(uint32_t id, const char *s, uint32_t len)
{
    uint8_t *m = __atomic_load_n(&meta, __ATOMIC_ACQUIRE);
    if (!m || id < 2 || id - 2 >= FR_INTERN_SLOTS || owner != getpid())
        return;
    uint32_t off = atomic_fetch_add_explicit(&arena_used, len, FR_RELAXED);
    if (off > ARENA_CAP || len > ARENA_CAP - off)
        return;
    memcpy(m + arena_off + off, s, len);
    uint64_t at = strtab_off + (uint64_t)(id - 2) * STR_ENTRY;
    fr__put32(m + at, off);
    fr__put32(m + at + 4, len);
    store64(m, at + 8, 1);
}
