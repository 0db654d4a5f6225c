/*
 * intern.c - task names and await labels, copied once into a bounded table.
 *
 * Hooks take `const char *` that the caller may free right after the call, so
 * the first sight of a string copies it into a preallocated arena and gives it
 * a small id (its hash slot + 2); records carry the id. The table is an
 * open-addressing hash set with lock-free inserts:
 *
 *   key == 0            empty slot
 *   key == KEY_BUSY     claimed by an inserter that is still copying
 *   key == KEY_DEAD     claimed, but the arena was full: never matches
 *   otherwise           (hash | 1): ready; off/len describe the bytes
 *
 * A lookup compares the bytes of slots whose key equals the hash. It never
 * waits for a BUSY slot (its inserter may be the code this signal handler
 * interrupted): it probes on, so at worst a string gets two ids, which the
 * decoder resolves to the same text. When the probe limit or the arena runs
 * out, the id is FR_STRING_OVERFLOW ("<string table full>"), never an error.
 *
 * Cost: strlen + FNV-1a over the string and one or two acquire loads on a hit;
 * a compare-and-swap and a fetch-add only the first time a string is seen.
 */
#include <link.h>
#include <string.h>

#include "internal.h"

#define KEY_BUSY 2u
#define KEY_DEAD 4u
#define PROBE_LIMIT 64u

_Static_assert((FR_INTERN_SLOTS & (FR_INTERN_SLOTS - 1)) == 0, "FR_INTERN_SLOTS: power of two");

struct entry {
    _Atomic uint64_t key;
    uint32_t off, len; /* written before key is release-stored */
};

static struct entry table[FR_INTERN_SLOTS];
static char arena[FR_INTERN_BYTES];
static _Atomic uint32_t arena_used;

static uint64_t hash_str(const char *s, uint32_t *len_out)
{
    uint64_t h = 0xcbf29ce484222325u;
    uint32_t n = 0;
    while (s[n] && n < FR_INTERN_MAX_LEN) {
        h = (h ^ (uint8_t)s[n]) * 0x100000001b3u;
        n++;
    }
    *len_out = n;
    h ^= h >> 29; /* FNV's low bits are weak; we index with them */
    return h | 1u;
}

uint32_t fr__intern(const char *s)
{
    if (!s)
        return 0;
    uint32_t len;
    uint64_t h = hash_str(s, &len);
    for (uint32_t probe = 0; probe < PROBE_LIMIT; probe++) {
        uint32_t i = (uint32_t)(h + probe) & (FR_INTERN_SLOTS - 1);
        struct entry *e = &table[i];
        /* Pairs with the release store of key below: off/len/bytes are set. */
        uint64_t k = atomic_load_explicit(&e->key, FR_ACQUIRE);
        if (k == h) {
            if (e->len == len && memcmp(arena + e->off, s, len) == 0)
                return i + 2;
            continue;
        }
        if (k != 0)
            continue;
        uint64_t expect = 0;
        if (!atomic_compare_exchange_strong_explicit(&e->key, &expect, KEY_BUSY, FR_ACQUIRE,
                                                     FR_RELAXED)) {
            probe--; /* someone took it; look at the same slot again */
            continue;
        }
        uint32_t off = atomic_fetch_add_explicit(&arena_used, len, FR_RELAXED);
        if (off > FR_INTERN_BYTES || len > FR_INTERN_BYTES - off) {
            atomic_store_explicit(&e->key, KEY_DEAD, FR_RELAXED);
            return FR_STRING_OVERFLOW;
        }
        memcpy(arena + off, s, len);
        e->off = off;
        e->len = len;
        atomic_store_explicit(&e->key, h, FR_RELEASE);
        fr__shared_string(i + 2, s, len); /* FR_SHARED_RINGS: the file's copy */
        return i + 2;
    }
    return FR_STRING_OVERFLOW;
}

/*
 * fr__intern_memo_miss - the memo (internal.h fr__intern_cached) did not
 * hold @s: intern it and remember it. Strings that were truncated or
 * overflowed the table are never memoized.
 */
uint32_t fr__intern_memo_miss(struct fr_writer *w, const char *s)
{
    if (!s)
        return 0;
    uint32_t id = fr__intern(s);
    if (id >= 2) {
        uint32_t len = table[id - 2].len;
        if (len < FR_INTERN_MAX_LEN) {
            struct fr_intern_memo *m = &w->memo[((uintptr_t)s >> 3) % FR_INTERN_CACHE];
            m->ptr = s;
            m->text = arena + table[id - 2].off;
            m->id = id;
            m->len = len | (fr__intern_readonly(s, len + 1) ? FR_MEMO_READONLY : 0);
        }
    }
    return id;
}

/*
 * The main program's read-only segments. A string there (a literal label,
 * a task name) cannot change while the program runs and its mapping is
 * never unmapped, so a memo entry for it is trusted by its address: a hit
 * is one pointer compare, without comparing the bytes again. Segments of
 * shared libraries are left out (dlclose can unmap one, and the address can
 * then hold other text), and so is everything writable.
 */
#define READONLY_MAX 8
static struct {
    uintptr_t lo, hi;
} readonly[READONLY_MAX];
static _Atomic uint32_t nreadonly;

static int find_readonly(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uint32_t *n = arg;
    for (unsigned i = 0; i < info->dlpi_phnum && *n < READONLY_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || !(ph->p_flags & PF_R))
            continue;
        readonly[*n].lo = info->dlpi_addr + ph->p_vaddr;
        readonly[*n].hi = info->dlpi_addr + ph->p_vaddr + ph->p_filesz;
        (*n)++;
    }
    return 1; /* the first object is the main program: stop there */
}

/* fr_init, before any thread attaches: the ranges are found once and then
 * only read (the release pairs with the acquire in fr__intern_readonly). */
void fr__intern_find_readonly(void)
{
    if (atomic_load_explicit(&nreadonly, FR_ACQUIRE))
        return;
    uint32_t n = 0;
    dl_iterate_phdr(find_readonly, &n);
    atomic_store_explicit(&nreadonly, n, FR_RELEASE);
}

int fr__intern_readonly(const char *s, size_t bytes)
{
    uintptr_t a = (uintptr_t)s;
    uint32_t n = atomic_load_explicit(&nreadonly, FR_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (a >= readonly[i].lo && a < readonly[i].hi && bytes <= readonly[i].hi - a)
            return 1;
    return 0;
}

/*
 * fr__intern_foreach - visit the ready entries whose bytes start at or past
 * @from_off in the arena, i.e. those added since a previous call returned
 * @from_off. Async-signal-safe; sees entries completed before it started.
 * Return: the watermark to pass next time: the arena size at the start of
 * this call, or 0 if an insert was in flight (its bytes may lie below the
 * mark, so the next call must look at everything again).
 */
uint32_t fr__intern_foreach(uint32_t from_off, fr_intern_visit_fn fn, void *arg)
{
    uint32_t mark = atomic_load_explicit(&arena_used, FR_ACQUIRE);
    if (mark > FR_INTERN_BYTES)
        mark = FR_INTERN_BYTES;
    for (uint32_t i = 0; i < FR_INTERN_SLOTS; i++) {
        uint64_t k = atomic_load_explicit(&table[i].key, FR_ACQUIRE);
        if (k == KEY_BUSY)
            mark = 0;
        if (k == 0 || k == KEY_BUSY || k == KEY_DEAD)
            continue;
        if (table[i].off < from_off)
            continue;
        if (fn(arg, i + 2, arena + table[i].off, table[i].len) != 0)
            break;
    }
    return mark;
}

/* Only when nothing records (fr_init before the epoch is published). */
void fr__intern_reset(void)
{
    for (uint32_t i = 0; i < FR_INTERN_SLOTS; i++)
        atomic_store_explicit(&table[i].key, 0, FR_RELAXED);
    atomic_store_explicit(&arena_used, 0, FR_RELAXED);
}
