/*
 * registry.c - the fixed-capacity, lock-free registry of thread rings.
 *
 * A thread's first event claims a slot (compare-and-swap on its state), maps
 * the slot's ring and alternate signal stack if the slot has none yet, and
 * registers a thread-exit destructor. A dump walks all FR_MAX_THREADS slots and
 * copies the rings of LIVE and EXITED ones, so the history of a thread that
 * has exited stays dumpable until its slot is reused.
 *
 * Slot life:  FREE --claim--> CLAIMED --ready--> LIVE --thread exit--> EXITED
 *               ^                                                        |
 *               +-- fr_init / fork child        reclaimed, oldest first -+
 *
 * Memory is bounded: a slot keeps its ring and stack mappings when it is
 * reused, so 10,000 short-lived threads cost no more than FR_MAX_THREADS rings.
 * When every slot is LIVE, a new thread records nothing (the dump counts it).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "internal.h"

struct fr_slot fr__slots[FR_MAX_THREADS];
__thread struct fr_writer fr__w __attribute__((tls_model("initial-exec"))) = {
    .epoch = UINT32_MAX,
};
_Atomic uint32_t fr__epoch;
/* Mirrors "fr__epoch != 0" for the inline gates in <flightrec.h>: a plain
 * unsigned read with __atomic_load_n, so the public header needs neither
 * <stdatomic.h> nor C11 (C++ includes it too). */
FR_API unsigned fr__recording;
_Atomic uint64_t fr__threads_unrecorded; /* threads that found the registry full */
_Atomic uint32_t fr__slots_high; /* slots at and past this index were never claimed */

static void note_claimed(struct fr_slot *s)
{
    uint32_t i = (uint32_t)(s - fr__slots) + 1;
    uint32_t cur = atomic_load_explicit(&fr__slots_high, FR_RELAXED);
    while (cur < i && !atomic_compare_exchange_weak_explicit(&fr__slots_high, &cur, i,
                                                            FR_RELEASE, FR_RELAXED)) {
    }
}

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void on_thread_exit(void *arg);

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, on_thread_exit) != 0)
        exit_key = (pthread_key_t)-1;
}

int fr__registry_init(void)
{
    pthread_once(&exit_key_once, make_exit_key);
    return exit_key == (pthread_key_t)-1 ? -EAGAIN : 0;
}

static int cas_state(struct fr_slot *s, uint32_t from, uint32_t to)
{
    return atomic_compare_exchange_strong_explicit(&s->state, &from, to, memory_order_acq_rel,
                                                   FR_RELAXED);
}

/*
 * A free slot if there is one, else the slot of the longest-exited thread.
 * NULL only when every slot is LIVE or being claimed.
 *
 * Threads that start together all race for the same oldest slot: a lost
 * compare-and-swap means another thread took that one, so the scan starts
 * again and takes the next oldest (each retry follows another thread's
 * progress). A won one is checked against the generation seen in the scan:
 * if the slot was claimed, used and exited again in between (ABA), the win
 * would take the newest exited thread's history, so the slot is handed back.
 */
static struct fr_slot *claim_slot(void)
{
    for (;;) {
        for (uint32_t i = 0; i < FR_MAX_THREADS; i++) {
            struct fr_slot *s = &fr__slots[i];
            if (atomic_load_explicit(&s->state, FR_RELAXED) == FR_SLOT_FREE &&
                cas_state(s, FR_SLOT_FREE, FR_SLOT_CLAIMED))
                return s;
        }
        struct fr_slot *oldest = NULL;
        uint64_t oldest_t = UINT64_MAX;
        uint32_t oldest_gen = 0;
        for (uint32_t i = 0; i < FR_MAX_THREADS; i++) {
            struct fr_slot *s = &fr__slots[i];
            /* State first, then what its release store publishes: this
             * exit's time and generation, never the exit time 0 of a slot
             * claimed a moment before (which would look the oldest). A 0
             * still seen means the slot was claimed again meanwhile. */
            if (atomic_load_explicit(&s->state, FR_ACQUIRE) != FR_SLOT_EXITED)
                continue;
            uint32_t gen = atomic_load_explicit(&s->gen, FR_ACQUIRE);
            uint64_t t = atomic_load_explicit(&s->exit_ticks, FR_RELAXED);
            if (t != 0 && t < oldest_t) {
                oldest = s;
                oldest_t = t;
                oldest_gen = gen;
            }
        }
        if (!oldest)
            return NULL;
        if (!cas_state(oldest, FR_SLOT_EXITED, FR_SLOT_CLAIMED))
            continue;
        if (atomic_load_explicit(&oldest->gen, FR_RELAXED) == oldest_gen)
            return oldest;
        atomic_store_explicit(&oldest->state, FR_SLOT_EXITED, FR_RELEASE);
    }
}

static int ensure_ring(struct fr_slot *s)
{
    struct fr_ring *r = &s->ring;
    if (fr__cfg.flags & FR_SHARED_RINGS) { /* the ring lives in the .rings file */
        int err = fr__shared_ring(s);
        if (!err)
            fr__ring_reset(r);
        return err;
    }
    fr__shared_ring_release(s);
    size_t bytes = fr__cfg.ring_bytes / FR_PAGE_SIZE * FR_PAGE_SIZE;
    if (r->mem && r->bytes != bytes) {
        /* Only after a re-init with another size; no reader holds a
         * CLAIMED slot's memory (they skip it). */
        munmap(r->mem, r->bytes);
        r->mem = NULL;
    }
    if (!r->mem) {
        /* MAP_POPULATE: fault the ring in now, not on the record path. */
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        r->mem = p;
        r->bytes = bytes;
        r->npages = (uint32_t)(bytes / FR_PAGE_SIZE);
    }
    fr__ring_reset(r);
    return 0;
}

/*
 * fr__altstack_install - give the calling thread an alternate signal stack,
 * so the crash handler runs even after a stack overflow. Leaves a stack the
 * application installed itself alone. The mapping belongs to the slot.
 */
void fr__altstack_install(struct fr_slot *s)
{
    if (fr__cfg.flags & FR_NO_CRASH_HANDLERS)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    size_t guard = FR_PAGE_SIZE;
    if (!s->altstack) {
        void *p = mmap(NULL, FR_ALTSTACK_SIZE + guard, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return;
        mprotect(p, guard, PROT_NONE); /* overflow of the handler itself faults cleanly */
        s->altstack = p;
    }
    stack_t ss = { .ss_sp = (char *)s->altstack + guard, .ss_size = FR_ALTSTACK_SIZE, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
}

/*
 * fr__writer_attach - the slow path of a thread's first event (or first event
 * after fr_init/fork changed the epoch): claim a slot, prepare its ring, and
 * point the writer at its first page.
 *
 * This is the only hook path that makes system calls and may map memory.
 * Return: 1 if @w may record now; 0 if recording is off, the thread already
 * exited, or the registry is full (then the thread stays silent this epoch).
 */
int fr__writer_attach(struct fr_writer *w)
{
    uint32_t e = atomic_load_explicit(&fr__epoch, FR_ACQUIRE); /* pairs with fr_init */
    if (e == 0 || w->gave_up_epoch == e || w->busy)
        return 0;
    w->busy = 1;
    atomic_signal_fence(memory_order_seq_cst);

    struct fr_slot *s = claim_slot();
    if (s)
        note_claimed(s);
    if (!s || ensure_ring(s) != 0) {
        if (s)
            atomic_store_explicit(&s->state, FR_SLOT_FREE, FR_RELEASE);
        atomic_fetch_add_explicit(&fr__threads_unrecorded, 1, FR_RELAXED);
        w->gave_up_epoch = e;
        w->busy = 0;
        return 0;
    }
    /* exit_ticks before gen, with release: a reclaiming scan that reads the
     * new generation also reads the 0 (claim_slot) */
    atomic_store_explicit(&s->exit_ticks, 0, FR_RELAXED);
    uint32_t gen = atomic_load_explicit(&s->gen, FR_RELAXED) + 1;
    atomic_store_explicit(&s->gen, gen, FR_RELEASE);
    atomic_store_explicit(&s->tid, (uint32_t)fr__gettid(), FR_RELAXED);

    char comm[17] = { 0 };
    atomic_store_explicit(&s->name_len, 0, FR_RELAXED);
    if (prctl(PR_GET_NAME, comm, 0, 0, 0) == 0) {
        size_t n = strnlen(comm, 16);
        memset(s->name, 0, sizeof s->name);
        memcpy(s->name, comm, n);
        atomic_store_explicit(&s->name_len, (uint32_t)n, FR_RELEASE);
    }
    fr__altstack_install(s);
    fr__run_delay_attach(s);
    s->young = fr__spawn_young_claim(s->young); /* before LIVE: dumps read it then */
    pthread_setspecific(exit_key, s);

    w->slot = s;
    w->young = fr__spawns_on ? s->young : NULL;
    w->gen = gen;
    w->page = NULL;
    w->in_poll = 0; /* a poll held open in an earlier epoch is not this one's */
    w->nfold = 0;
    w->fold_len = 0;
    w->tsc = (uint32_t)fr__clock_tsc; /* fr__clock_init ran before this epoch began */
    memset(w->memo, 0, sizeof w->memo); /* ids of an earlier epoch may be gone */
    fr__writer_next_page(w, fr__ticks());
    /* Publish the slot to dumpers: pairs with their acquire load of state. */
    atomic_store_explicit(&s->state, FR_SLOT_LIVE, FR_RELEASE);
    fr__shared_slot(s, 0);
    w->epoch = e;
    atomic_signal_fence(memory_order_seq_cst);
    w->busy = 0;
    return 1;
}

/* pthread key destructor: the thread is exiting. Its ring stays dumpable. */
static void on_thread_exit(void *arg)
{
    struct fr_slot *s = arg;
    struct fr_writer *w = &fr__w;
    if (w->slot != s)
        return;
    fr__writer_flush(); /* events of a poll left open: the ring keeps them */
    stack_t cur;
    if (s->altstack && sigaltstack(NULL, &cur) == 0 &&
        cur.ss_sp == (char *)s->altstack + FR_PAGE_SIZE) {
        stack_t off = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
        sigaltstack(&off, NULL);
    }
    w->gave_up_epoch = w->epoch; /* later hooks on this thread record nothing */
    w->epoch = UINT32_MAX;
    w->slot = NULL;
    w->page = NULL;
    fr__run_delay_exit(s);
    atomic_store_explicit(&s->exit_ticks, fr__ticks(), FR_RELAXED);
    atomic_store_explicit(&s->state, FR_SLOT_EXITED, FR_RELEASE);
    fr__shared_slot(s, 1);
}

/* Forget every thread (fork child, or fr_init after fr_shutdown). Mappings
 * are kept for reuse. */
void fr__registry_reset(void)
{
    for (uint32_t i = 0; i < FR_MAX_THREADS; i++)
        atomic_store_explicit(&fr__slots[i].state, FR_SLOT_FREE, FR_RELAXED);
    atomic_store_explicit(&fr__threads_unrecorded, 0, FR_RELAXED);
    atomic_store_explicit(&fr__slots_high, 0, FR_RELAXED);
}

/* Copy a thread name into the calling thread's slot @s (dumps show it). */
void fr__thread_name_set(struct fr_slot *s, const char *name)
{
    if (!name)
        return;
    size_t n = strnlen(name, FR_THREAD_NAME_MAX - 1);
    atomic_store_explicit(&s->name_len, 0, FR_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    memset(s->name, 0, sizeof s->name);
    memcpy(s->name, name, n);
    atomic_store_explicit(&s->name_len, (uint32_t)n, FR_RELEASE);
    fr__shared_slot(s, 0);
}
