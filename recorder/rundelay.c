/*
 * rundelay.c - the run-delay sampler: when the host, not the program, kept a
 * recorded thread from running.
 *
 * A wait in the recording (a woken task polled 60 ms later, a poll that took
 * 40 ms) is the program's doing only if its thread could run meanwhile. On a
 * loaded machine a woken thread can sit runnable for tens of milliseconds
 * while other processes hold every CPU; in a VM the vCPU itself can be held.
 * The rings cannot tell that from a missed notification or a blocking call,
 * so without this the decoder would give a verdict on the host's behaviour.
 *
 * A thread of our own ("flightrec-sched", every signal blocked) wakes every
 * FR_RUN_DELAY_PERIOD_MS and
 *   - reads, for each live ring's thread that recorded anything since its
 *     last reading (an idle program costs no reading), the kernel's run
 *     delay: the second field of /proc/self/task/TID/schedstat, nanoseconds
 *     the thread spent runnable but waiting for a CPU. A growth of
 *     FR_RUN_DELAY_MIN_NS or more since the reading the last entry (or the
 *     first reading) ended at is an entry {from, to, tid, delay}: the thread
 *     waited `delay` ns in all for a CPU, in waits that ended in (from, to]
 *     (the kernel adds a wait when it ends; it may have begun earlier);
 * A thread's first reading counts from its attach, and its last is the one
 * it takes on its way out (registry.c has it read its own run delay at both),
 * so a wait in its first poll, or in its last before it exits, is not lost.
 * Times are CLOCK_MONOTONIC ns, the decoder's timeline. Each file is opened,
 * read and closed at once, and the sampler sleeps on a futex: no descriptor
 * of ours stays in the host's table.
 *
 * Entries go into a fixed ring (this thread is its only writer; a per-entry
 * sequence word makes a copy taken meanwhile skip the entry being written).
 * Every dump copies it as the RUN_DELAY section (format.h); the crash handler
 * does so with plain loads only. With shared rings the ring itself lives in
 * the .rings file (shared.c), so `flightrec recover` writes the section too;
 * every dump's header says whether the sampler ran (FR_HDR_RUN_DELAY), so a
 * dump that lost the section is told from one that never had it. The
 * decoder withholds a timing finding whose wait, less what the host held its
 * thread, is within the threshold.
 *
 * After each wake it also wakes a dumper thread that a dump signal asked
 * while it slept (fr__dumper_kick): the handler leaves that wake, its one
 * costly system call, to this thread when it wakes soon (signal.c).
 *
 * Off with FR_NO_RUN_DELAY (FLIGHTREC_RUN_DELAY=0), and where the kernel has
 * no schedstat (then no entry).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The entry ring, laid out as the shared rings file holds it (docs/format.md,
 * "Shared rings file"): with FR_SHARED_RINGS it lives there (shared.c hands
 * it over, fr__run_delay_share), so `flightrec recover` finds it after a
 * SIGKILL; else in this process's memory. */
struct rd_entry {
    _Atomic uint64_t seq; /* n + 1 once entry n is whole; 0 while written */
    _Atomic uint64_t from_ns, to_ns, delay_ns;
    _Atomic uint32_t tid;
    uint32_t reserved;
};
struct rd_ring {
    _Atomic uint64_t nentries; /* entries ever written (this epoch) */
    uint64_t reserved;
    struct rd_entry e[FR_RUN_DELAY_ENTRIES];
};
_Static_assert(sizeof(struct rd_entry) == 40 && sizeof(struct rd_ring) == FR_RUN_DELAY_RING_BYTES,
               "the run-delay ring's layout is the shared rings file's");

static struct rd_ring private_ring;
/* Loaded once per use: a ring handed over meanwhile is used from the next. */
static struct rd_ring *_Atomic ring = &private_ring;
static _Atomic int on; /* the sampler runs */

/* What the sampler last read of each slot's thread. */
static struct {
    uint32_t tid, gen;
    uint64_t delay_ns; /* the kernel's total, UINT64_MAX: none read yet */
    uint64_t at_ns;
    uint64_t pages, commit; /* where its ring was then */
    uint32_t exit_gen;      /* the generation whose exit was accounted */
} seen[FR_MAX_THREADS];

/* The sampler sleeps on this word (a futex: no descriptor of ours that a
 * daemon closing every descriptor could take from us, or we from it). */
static _Atomic uint32_t quit;
/* When the sampler wakes next (CLOCK_MONOTONIC ns; 0: not sleeping on a
 * deadline), for the dump signal's handler: fr__run_delay_wakes_within. */
static _Atomic uint64_t next_wake_ns;
static pthread_t thread;
static int running;

void fr__run_delay_share(void *mem)
{
    atomic_store_explicit(&ring, mem ? (struct rd_ring *)mem : &private_ring, FR_RELEASE);
}

static void note(uint64_t from_ns, uint64_t to_ns, uint64_t delay_ns, uint32_t tid)
{
    struct rd_ring *r = atomic_load_explicit(&ring, FR_ACQUIRE);
    uint64_t n = atomic_load_explicit(&r->nentries, FR_RELAXED);
    struct rd_entry *e = &r->e[n % FR_RUN_DELAY_ENTRIES];
    atomic_store_explicit(&e->seq, 0, FR_RELAXED);
    /* release stores: a reader that sees a new field sees seq 0 too */
    atomic_store_explicit(&e->from_ns, from_ns, FR_RELEASE);
    atomic_store_explicit(&e->to_ns, to_ns, FR_RELEASE);
    atomic_store_explicit(&e->delay_ns, delay_ns, FR_RELEASE);
    atomic_store_explicit(&e->tid, tid, FR_RELEASE);
    atomic_store_explicit(&e->seq, n + 1, FR_RELEASE);
    atomic_store_explicit(&r->nentries, n + 1, FR_RELEASE);
}

#ifdef FR_TEST_HOOKS
void fr__test_run_delay_note(uint64_t from_ns, uint64_t to_ns, uint64_t delay_ns, uint32_t tid)
{
    note(from_ns, to_ns, delay_ns, tid);
}
#endif

/* The run delay of thread @tid, ns; -1 when it cannot be read (gone, no
 * schedstat in this kernel). */
static int64_t read_run_delay(uint32_t tid)
{
    char path[64] = "/proc/self/task/";
    size_t k = 16;
    k += fr__fmt_u64(path + k, tid);
    memcpy(path + k, "/schedstat", 11);
    char buf[96];
    size_t n = fr__read_file(path, buf, sizeof buf - 1);
    if (!n)
        return -1;
    buf[n] = '\0';
    /* "<on-cpu ns> <run delay ns> <timeslices>\n" */
    const char *p = buf;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p != ' ')
        return -1;
    p++;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v > INT64_MAX ? -1 : (int64_t)v;
}

/* Thread @tid of slot @i (generation @gen) had run delay @d at @now: an
 * entry if it grew by FR_RUN_DELAY_MIN_NS since the reading the last entry
 * ended at; a thread new to the slot counts from its attach (its first
 * event), so that a wait in its first poll is not lost. */
static void account(uint32_t i, const struct fr_slot *s, uint32_t tid, uint32_t gen, int64_t d,
                    uint64_t now)
{
    if (seen[i].tid != tid || seen[i].gen != gen || seen[i].delay_ns == UINT64_MAX) {
        seen[i].tid = tid;
        seen[i].gen = gen;
        seen[i].delay_ns = atomic_load_explicit(&s->run_delay_base, FR_RELAXED);
        seen[i].at_ns = atomic_load_explicit(&s->run_delay_base_ns, FR_RELAXED);
    }
    if (seen[i].delay_ns == UINT64_MAX || (uint64_t)d < seen[i].delay_ns) {
        /* no base: this reading is it */
    } else if ((uint64_t)d >= seen[i].delay_ns + FR_RUN_DELAY_MIN_NS) {
        note(seen[i].at_ns, now, (uint64_t)d - seen[i].delay_ns, tid);
    } else {
        return; /* less: it adds up, from the same reading, until it counts */
    }
    seen[i].delay_ns = (uint64_t)d;
    seen[i].at_ns = now;
}

/* A thread that exited: its last reading is the one it took itself on its
 * way out (fr__run_delay_exit), accounted once per generation. */
static void account_exit(uint32_t i, const struct fr_slot *s)
{
    uint32_t gen = atomic_load_explicit(&s->gen, FR_ACQUIRE);
    if (seen[i].exit_gen == gen)
        return;
    uint32_t tid = atomic_load_explicit(&s->tid, FR_RELAXED);
    uint64_t d = atomic_load_explicit(&s->run_delay_exit, FR_RELAXED);
    uint64_t at = atomic_load_explicit(&s->run_delay_exit_ns, FR_RELAXED);
    if (atomic_load_explicit(&s->state, FR_ACQUIRE) != FR_SLOT_EXITED ||
        atomic_load_explicit(&s->gen, FR_RELAXED) != gen)
        return; /* claimed again meanwhile: those were not this thread's */
    seen[i].exit_gen = gen;
    if (d != UINT64_MAX && d <= INT64_MAX)
        account(i, s, tid, gen, (int64_t)d, at);
}

/* Read the threads that recorded since their last reading, and account
 * those that exited since. Return: how many were read. */
static unsigned sample_threads(void)
{
    unsigned nread = 0;
    /* Slots are claimed lowest first: only those below the high-water mark
     * can be live (pairs with its release in registry.c). */
    uint32_t high = atomic_load_explicit(&fr__slots_high, FR_ACQUIRE);
    for (uint32_t i = 0; i < high && i < FR_MAX_THREADS; i++) {
        struct fr_slot *s = &fr__slots[i];
        uint32_t state = atomic_load_explicit(&s->state, FR_ACQUIRE);
        if (state == FR_SLOT_EXITED)
            account_exit(i, s);
        if (state != FR_SLOT_LIVE)
            continue;
        uint32_t tid = atomic_load_explicit(&s->tid, FR_RELAXED);
        uint32_t gen = atomic_load_explicit(&s->gen, FR_RELAXED);
        /* A thread that recorded nothing since the last reading is read
         * later: a wait is counted when it ends, and a thread that got its
         * CPU back records soon after (an unpark, a poll), when its wait
         * shows, in a span that begins at the last reading. An idle
         * program costs the sampler no reading at all. */
        uint64_t pages = atomic_load_explicit(&s->ring.pages_started, FR_ACQUIRE), commit = 0;
        if (pages)
            commit = atomic_load_explicit(
                &fr__ring_page(&s->ring, (uint32_t)((pages - 1) % s->ring.npages))->commit,
                FR_RELAXED);
        if (seen[i].tid == tid && seen[i].gen == gen && seen[i].delay_ns != UINT64_MAX &&
            seen[i].pages == pages && seen[i].commit == commit)
            continue;
        seen[i].pages = pages;
        seen[i].commit = commit;
        int64_t d = tid ? read_run_delay(tid) : -1;
        uint64_t now = fr__monotonic_ns();
        nread++;
        if (d >= 0)
            account(i, s, tid, gen, d, now);
    }
    return nread;
}

static void *sampler_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "flightrec-sched", 0, 0, 0);
    const uint64_t base = (uint64_t)FR_RUN_DELAY_PERIOD_MS * 1000000u;
    uint64_t period = base, deadline = fr__monotonic_ns() + period;
    atomic_store(&next_wake_ns, deadline);
    while (!atomic_load_explicit(&quit, FR_ACQUIRE)) {
        /* until the deadline (absolute, CLOCK_MONOTONIC), or fr_shutdown */
        struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
        if (syscall(SYS_futex, &quit, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, &ts, NULL,
                    FUTEX_BITSET_MATCH_ANY) == 0 ||
            errno != ETIMEDOUT)
            continue; /* woken (to quit), or a spurious return: look again */
        uint64_t now;
        /* Nothing recorded: sleep longer, up to 16 periods, so that an idle
         * program is not woken 50 times a second. A thread that records
         * again is read at the next wake, in a span from its last reading. */
        if (sample_threads())
            period = base;
        else if (period < 16 * base)
            period *= 2;
        deadline += period;
        now = fr__monotonic_ns();
        if (deadline < now) /* held for more than a period: no catching up */
            deadline = now + period;
        /* A dump signal that came meanwhile left its wake to us (signal.c):
         * the next deadline is published first, so a handler that read the
         * previous one set its request before this look. */
        atomic_store(&next_wake_ns, deadline);
        fr__dumper_kick();
    }
    atomic_store(&next_wake_ns, 0);
    fr__dumper_kick();
    return NULL;
}

int fr__run_delay_on(void)
{
    return atomic_load_explicit(&on, FR_ACQUIRE);
}

int fr__run_delay_wakes_within(uint64_t ns)
{
    if (!atomic_load(&on))
        return 0;
    uint64_t at = atomic_load(&next_wake_ns);
    return at != 0 && at <= fr__monotonic_ns() + ns;
}

/* The calling thread (slot @s) notes its own run delay into *@delay
 * (UINT64_MAX when unknown, or with the sampler off) and the time into *@at. */
static void note_own(const struct fr_slot *s, _Atomic uint64_t *delay, _Atomic uint64_t *at)
{
    int64_t d = atomic_load_explicit(&on, FR_ACQUIRE)
                    ? read_run_delay(atomic_load_explicit(&s->tid, FR_RELAXED))
                    : -1;
    atomic_store_explicit(delay, d < 0 ? UINT64_MAX : (uint64_t)d, FR_RELAXED);
    atomic_store_explicit(at, fr__monotonic_ns(), FR_RELAXED);
}

void fr__run_delay_attach(struct fr_slot *s)
{
    note_own(s, &s->run_delay_base, &s->run_delay_base_ns);
}

void fr__run_delay_exit(struct fr_slot *s)
{
    note_own(s, &s->run_delay_exit, &s->run_delay_exit_ns);
}

int fr__run_delay_start(void)
{
    if ((fr__cfg.flags & FR_NO_RUN_DELAY) || running)
        return 0;
    for (uint32_t i = 0; i < FR_MAX_THREADS; i++) {
        seen[i].delay_ns = UINT64_MAX;
        seen[i].exit_gen = 0;
    }
    atomic_store_explicit(&atomic_load(&ring)->nentries, 0, FR_RELEASE);
    atomic_store_explicit(&quit, 0, FR_RELEASE);
    atomic_store(&next_wake_ns, 0);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&thread, NULL, sampler_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return -err;
    running = 1;
    atomic_store_explicit(&on, 1, FR_RELEASE);
    return 0;
}

void fr__run_delay_stop(void)
{
    if (!running)
        return;
    atomic_store_explicit(&on, 0, FR_RELEASE);
    atomic_store_explicit(&quit, 1, FR_RELEASE);
    syscall(SYS_futex, &quit, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
    pthread_join(thread, NULL);
    running = 0;
}

/* fork child: the parent's sampler is not here, and its entries were about
 * the parent's threads; start afresh. */
void fr__run_delay_restart_in_child(void)
{
    if (!running)
        return;
    running = 0;
    atomic_store_explicit(&on, 0, FR_RELEASE);
    if (fr__run_delay_start() != 0)
        fr__warn("fork child: cannot start the run-delay sampler", NULL, 0);
}

size_t fr__run_delay_copy(uint64_t *at, struct fr_run_delay_copy *out, size_t max)
{
    struct rd_ring *r = atomic_load_explicit(&ring, FR_ACQUIRE);
    uint64_t n = atomic_load_explicit(&r->nentries, FR_ACQUIRE);
    uint64_t i = *at;
    int first_copy = i == UINT64_MAX;
    if (i == UINT64_MAX || i + FR_RUN_DELAY_ENTRIES < n) /* the start, or overtaken */
        i = n > FR_RUN_DELAY_ENTRIES ? n - FR_RUN_DELAY_ENTRIES : 0;
    size_t k = 0;
    for (; i < n && k < max; i++) {
        struct rd_entry *e = &r->e[i % FR_RUN_DELAY_ENTRIES];
        if (atomic_load_explicit(&e->seq, FR_ACQUIRE) != i + 1)
            continue; /* being rewritten */
        struct fr_run_delay_copy c = {
            /* acquire: had one been rewritten, the seq load below sees it */
            atomic_load_explicit(&e->from_ns, FR_ACQUIRE),
            atomic_load_explicit(&e->to_ns, FR_ACQUIRE),
            atomic_load_explicit(&e->delay_ns, FR_ACQUIRE),
            atomic_load_explicit(&e->tid, FR_ACQUIRE),
            0,
        };
        if (atomic_load_explicit(&e->seq, FR_RELAXED) != i + 1)
            continue;
        /* the first entry kept says whether older ones were overwritten */
        c.older_dropped = first_copy && i > 0;
        first_copy = 0;
        out[k++] = c;
    }
    *at = i;
    return k;
}
