/*
 * workload.c - flightrec-demo: a make-believe service on the demo runtime,
 * with the bugs flightrec exists to catch planted behind flags.
 *
 * An accept loop spawns `request` tasks at a steady rate; each request waits
 * for a connection from a small pool, waits for a (timer-simulated) database
 * query, gives the connection back, fans out to child tasks (`parse_header`,
 * two `render_part`) and joins them. Background tasks come and go beside it:
 * `cache_refresh` asks a slow upstream with a 5 ms deadline, at 0.3 s a
 * `transfer_out` and a `transfer_in` take two async mutexes, `db_migrate`
 * waits for a schema lock that `schema_holder` releases, and at 0.4 s one
 * `report_render` per worker renders a shard of a report. Without bug flags every task finishes
 * or waits with its waker held for something due soon, and flightrec finds
 * nothing. Each flag flips one line into the classic mistake:
 *
 *   --bug-lost-wakeup  cache_refresh's timeout path drops the task's waker
 *                      instead of waking it: the task waits forever, unwakeable.
 *   --bug-blocking     report_render calls a blocking renderer inside its poll:
 *                      200 ms polls on every worker, and the queued tasks starve.
 *   --bug-hang         schema_holder returns early without releasing the schema
 *                      lock: db_migrate hangs at its `schema_lock` await.
 *   --bug-crash        after --crash-after-ms, a malformed request reaches
 *                      parse_header, which dereferences a NULL header.
 *   --bug-deadlock     transfer_in takes the ledger and accounts locks in the
 *                      opposite order to transfer_out: each holds one and waits
 *                      for the other (a deadlock, drawn as a cycle).
 *
 * The process runs for --duration-ms, drains its requests, writes a dump with
 * fr_dump() and exits; SIGUSR1 dumps at any time, and a crash dumps on its way
 * down. See `flightrec-demo --help`.
 */
#include <errno.h>
#include <flightrec.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#define MS 1000000ull /* nanoseconds */
#define US 1000ull

#define POOL_SIZE 4                /* connections in the pool */
#define CACHE_DEADLINE_NS (5 * MS) /* cache_refresh's patience with the upstream */
#define SCHEMA_HOLD_NS (20 * MS)   /* how long schema_holder keeps the lock */
#define RENDER_NS (200 * MS)       /* report rendering time, blocking or not */
#define REPORT_CHUNKS 3
#define MAX_BURST 8 /* requests the accept loop spawns at most per tick when late */
#define TRANSFER_WORK_NS (5 * MS) /* a transfer's work between its two locks */

static struct options {
    bool bug_lost_wakeup, bug_blocking, bug_hang, bug_crash, bug_deadlock;
    bool recorder;
    unsigned duration_ms, workers, rate, crash_after_ms;
    const char *dump_dir;
} opt = {
    .recorder = true,
    .duration_ms = 3000,
    .workers = 2,
    .rate = 250,
    .crash_after_ms = UINT_MAX, /* default: 3/4 of the duration */
};

static struct rt_runtime *rt;
static uint64_t start_ns;
static atomic_bool stopping;      /* the accept loop stops spawning */
static atomic_bool accept_done;   /* ... and has finished */
static atomic_long inflight;      /* requests spawned and not finished */
static atomic_long served, stale; /* finished requests; cache refreshes that timed out */

static uint64_t since_start(uint64_t ms)
{
    return start_ns + ms * MS;
}

/* xorshift32: cheap randomness for latencies; each task owns its state. */
static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void *xcalloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p) {
        fputs("flightrec-demo: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* ---- the connection pool ---------------------------------------------------
 * POOL_SIZE connections; a request that finds none free queues a waiter, and
 * pool_release() hands the connection straight to the first waiter and wakes
 * it (FIFO, so nobody waits behind later arrivals). */

struct conn {
    struct conn *next;
};

static struct pool {
    pthread_mutex_t lock;
    struct conn conns[POOL_SIZE];
    struct conn *free; /* free list; non-empty only while nobody waits */
    struct rt_waitq waiters;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void pool_init(void)
{
    for (int i = 0; i < POOL_SIZE; i++) {
        pool.conns[i].next = pool.free;
        pool.free = &pool.conns[i];
    }
}

/*
 * From a poll of @self: a connection, or NULL after queueing @w (the caller
 * returns pending and is woken when one is handed over through @w).
 */
static struct conn *pool_acquire(struct rt_waiter *w, struct rt_task *self)
{
    struct conn *c = NULL;
    uint64_t id = rt_task_id(self);

    pthread_mutex_lock(&pool.lock);
    if (!w->waker && w->value) { /* handed over by pool_release */
        c = w->value;
        w->value = NULL;
        fr_lock_acquire(id, (uint64_t)(uintptr_t)&pool);
    } else if (!w->waker) {
        /* a pool slot is a resource like a lock: flightrec locks shows its waits */
        fr_lock_wait(id, (uint64_t)(uintptr_t)&pool, "conn_pool");
        if (pool.free && !pool.waiters.head) {
            c = pool.free;
            pool.free = c->next;
            fr_lock_acquire(id, (uint64_t)(uintptr_t)&pool);
        } else {
            rt_waitq_push(&pool.waiters, w, self);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return c;
}

static void pool_release(struct conn *c, struct rt_task *self)
{
    pthread_mutex_lock(&pool.lock);
    fr_lock_release(rt_task_id(self), (uint64_t)(uintptr_t)&pool);
    if (!rt_waitq_wake_one(&pool.waiters, c)) {
        c->next = pool.free;
        pool.free = c;
    }
    pthread_mutex_unlock(&pool.lock);
}

/* ---- children: a countdown that wakes the parent when it reaches zero ---- */

struct child {
    struct rt_task *parent; /* a waker of the parent, given up in child_done() */
    atomic_int *left;       /* in the parent's state, alive while we hold the waker */
    const struct header *header;
    uint64_t wake_at;
    int stage;
};

static struct child *child_new(struct rt_task *parent, atomic_int *left)
{
    struct child *c = xcalloc(sizeof(*c));
    c->parent = rt_waker_clone(parent);
    c->left = left;
    return c;
}

/* The last child to finish wakes the parent; the others just let go. */
static void child_done(struct child *c)
{
    if (atomic_fetch_sub(c->left, 1) == 1)
        rt_waker_wake(c->parent);
    else
        rt_waker_drop(c->parent);
    c->parent = NULL;
}

/* ---- request: pool -> query -> fan out -> join ----------------------------- */

struct header {
    uint32_t len;
    char text[28];
};

enum { REQ_ACQUIRE, REQ_QUERY, REQ_JOIN };

struct request {
    int stage;
    uint32_t seed;
    uint64_t wake_at;
    struct rt_waiter pool_wait;
    struct conn *conn;
    const struct header *header; /* NULL: a malformed request (--bug-crash) */
    struct header header_storage;
    atomic_int children_left;
};

/*
 * Deliberately naive: trusts that every request has a header. With
 * --bug-crash one does not, and this is where the process dies.
 */
__attribute__((no_sanitize("undefined"))) /* the planted crash must be a SIGSEGV under UBSan too */
static enum rt_poll parse_header_poll(struct rt_task *self, void *arg)
{
    struct child *c = arg;
    volatile uint32_t len = c->header->len;

    (void)self;
    (void)len;
    child_done(c);
    return RT_READY;
}

static enum rt_poll render_part_poll(struct rt_task *self, void *arg)
{
    struct child *c = arg;

    if (c->stage == 0) {
        c->stage = 1;
        rt_sleep_until(self, c->wake_at);
        FR_AWAIT(rt_task_id(self), "render_io");
        return RT_PENDING;
    }
    if (rt_now_ns() < c->wake_at) {
        FR_AWAIT(rt_task_id(self), "render_io");
        return RT_PENDING;
    }
    child_done(c);
    return RT_READY;
}

static enum rt_poll request_poll(struct rt_task *self, void *arg)
{
    struct request *r = arg;
    uint64_t id = rt_task_id(self);

    switch (r->stage) {
    case REQ_ACQUIRE:
        r->conn = pool_acquire(&r->pool_wait, self);
        if (!r->conn) {
            FR_AWAIT(id, "pool_acquire");
            return RT_PENDING;
        }
        r->stage = REQ_QUERY;
        r->wake_at = rt_now_ns() + 300 * US + rnd(&r->seed) % (2000 * US);
        rt_sleep_until(self, r->wake_at);
        FR_AWAIT(id, "db_query");
        return RT_PENDING;

    case REQ_QUERY:
        if (rt_now_ns() < r->wake_at) {
            FR_AWAIT(id, "db_query");
            return RT_PENDING;
        }
        pool_release(r->conn, self);
        r->conn = NULL;
        r->stage = REQ_JOIN;
        atomic_store(&r->children_left, 3);
        {
            struct child *h = child_new(self, &r->children_left);
            h->header = r->header;
            rt_spawn(rt_task_runtime(self), "parse_header", parse_header_poll, h, free);
        }
        for (int i = 0; i < 2; i++) {
            struct child *p = child_new(self, &r->children_left);
            p->wake_at = rt_now_ns() + 200 * US + rnd(&r->seed) % (600 * US);
            rt_spawn(rt_task_runtime(self), "render_part", render_part_poll, p, free);
        }
        /* fallthrough */
    case REQ_JOIN:
        if (atomic_load(&r->children_left) > 0) {
            FR_AWAIT(id, "join_children");
            return RT_PENDING;
        }
        atomic_fetch_add(&served, 1);
        atomic_fetch_sub(&inflight, 1);
        return RT_READY;
    }
    abort();
}

/* ---- cache_refresh: an upstream call with a deadline ------------------------
 * The upstream is down in this demo, so the reply never comes and the deadline
 * always wins; the correct timeout path wakes the task, which serves the
 * stale entry. The deadline holds its own waker, the reply waiter another. */

static struct rt_event upstream_reply; /* never set: the upstream is down */

struct cache_refresh {
    int stage;
    struct rt_waiter reply;
    struct rt_timer deadline;
    struct rt_task *deadline_waker;
    atomic_bool timed_out;
};

/* Runs on the timer thread when the upstream took too long. */
static void cache_deadline_fired(void *arg)
{
    struct cache_refresh *c = arg;

    rt_event_cancel(&upstream_reply, &c->reply); /* stop waiting for the reply */
    atomic_store(&c->timed_out, true);
    if (opt.bug_lost_wakeup)
        rt_waker_drop(c->deadline_waker); /* BUG: the timeout path forgets to wake */
    else
        rt_waker_wake(c->deadline_waker);
}

static enum rt_poll cache_refresh_poll(struct rt_task *self, void *arg)
{
    struct cache_refresh *c = arg;
    struct rt_runtime *run = rt_task_runtime(self);

    if (c->stage == 0) {
        if (rt_event_wait(&upstream_reply, &c->reply, self))
            return RT_READY;
        c->stage = 1;
        c->deadline_waker = rt_waker_clone(self);
        rt_timer_init(&c->deadline, cache_deadline_fired, c);
        rt_timer_start(run, &c->deadline, rt_now_ns() + CACHE_DEADLINE_NS);
        FR_AWAIT(rt_task_id(self), "upstream_reply");
        return RT_PENDING;
    }
    if (atomic_load(&c->timed_out)) {
        FR_MARK(rt_task_id(self), "upstream timed out, serving stale entry");
        atomic_fetch_add(&stale, 1);
        return RT_READY;
    }
    if (rt_event_wait(&upstream_reply, &c->reply, self)) {
        if (rt_timer_cancel(run, &c->deadline))
            rt_waker_drop(c->deadline_waker); /* else the firing callback gives it up */
        return RT_READY;
    }
    FR_AWAIT(rt_task_id(self), "upstream_reply");
    return RT_PENDING;
}

/* ---- db_migrate waits for the schema lock that schema_holder holds -------- */

static struct rt_event schema_lock_released;

struct sleeper {
    int stage;
    uint64_t wake_at;
    struct rt_waiter wait;
};

static enum rt_poll schema_holder_poll(struct rt_task *self, void *arg)
{
    struct sleeper *s = arg;

    if (s->stage == 0 || rt_now_ns() < s->wake_at) {
        if (s->stage == 0) {
            s->stage = 1;
            s->wake_at = rt_now_ns() + SCHEMA_HOLD_NS;
            rt_sleep_until(self, s->wake_at);
        }
        FR_AWAIT(rt_task_id(self), "hold_schema_lock");
        return RT_PENDING;
    }
    if (opt.bug_hang)
        return RT_READY; /* BUG: an error path returns without releasing the lock */
    rt_event_set(&schema_lock_released);
    return RT_READY;
}

static enum rt_poll db_migrate_poll(struct rt_task *self, void *arg)
{
    struct sleeper *s = arg;

    if (!rt_event_wait(&schema_lock_released, &s->wait, self)) {
        FR_AWAIT(rt_task_id(self), "schema_lock");
        return RT_PENDING;
    }
    return RT_READY;
}

/* ---- transfers: two handlers, two locks -----------------------------------
 * transfer_out and transfer_in both take the accounts lock and the ledger
 * lock (async mutexes), do a little work between the two, and let both go.
 * Taken in one order, the second waits for the first and then runs. With
 * --bug-deadlock transfer_in takes them the other way round: each holds one
 * and waits for the other, forever. */

static struct rt_mutex accounts_lock, ledger_lock;
static atomic_long transfers_done;

struct transfer {
    int stage;
    bool inbound;
    uint64_t wake_at;
    struct rt_waiter wait;
};

static enum rt_poll transfer_poll(struct rt_task *self, void *arg)
{
    struct transfer *t = arg;
    uint64_t id = rt_task_id(self);
    struct rt_mutex *first = &accounts_lock, *second = &ledger_lock;

    if (t->inbound && opt.bug_deadlock) { /* BUG: the opposite order */
        first = &ledger_lock;
        second = &accounts_lock;
    }
    switch (t->stage) {
    case 0:
        if (!rt_mutex_lock(first, &t->wait, self)) {
            fr_await(id, first->name);
            return RT_PENDING;
        }
        t->stage = 1;
        t->wake_at = rt_now_ns() + TRANSFER_WORK_NS;
        rt_sleep_until(self, t->wake_at);
        FR_AWAIT(id, "debit");
        return RT_PENDING;
    case 1:
        if (rt_now_ns() < t->wake_at) {
            FR_AWAIT(id, "debit");
            return RT_PENDING;
        }
        t->stage = 2;
        /* fall through */
    default:
        if (!rt_mutex_lock(second, &t->wait, self)) {
            fr_await(id, second->name);
            return RT_PENDING;
        }
        rt_mutex_unlock(second, self);
        rt_mutex_unlock(first, self);
        atomic_fetch_add(&transfers_done, 1);
        return RT_READY;
    }
}

static void spawn_transfers(struct rt_runtime *run)
{
    struct transfer *out = xcalloc(sizeof(*out)), *in = xcalloc(sizeof(*in));

    in->inbound = true;
    rt_spawn(run, "transfer_out", transfer_poll, out, free);
    rt_spawn(run, "transfer_in", transfer_poll, in, free);
}

/* ---- report_render: the nightly report, one shard per worker ----------------
 * A reporting job outside the runtime (main, standing in for cron) starts one
 * report_render per worker thread "to use them all". Each fans out chunk
 * tasks, then renders. The correct version hands rendering to "the render
 * farm" (a 200 ms timer) and awaits it; the buggy one calls a blocking
 * renderer inside its poll, so every worker is held for 200 ms while the
 * chunks, the accept loop and the requests sit in the run queues. */

struct report {
    int stage;
    uint64_t wake_at;
    atomic_int chunks_left;
};

static enum rt_poll report_chunk_poll(struct rt_task *self, void *arg)
{
    (void)self;
    child_done(arg);
    return RT_READY;
}

/* A synchronous renderer: sleeps the calling thread, as blocking I/O would.
 * Not inlined, so that a stall dump's stack names it. */
__attribute__((noinline)) static void render_report_blocking(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)RENDER_NS};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    __asm__ volatile("" ::: "memory"); /* keeps its frame: no tail call */
}

static enum rt_poll report_render_poll(struct rt_task *self, void *arg)
{
    struct report *r = arg;
    uint64_t id = rt_task_id(self);

    switch (r->stage) {
    case 0:
        atomic_store(&r->chunks_left, REPORT_CHUNKS);
        for (int i = 0; i < REPORT_CHUNKS; i++)
            rt_spawn(rt_task_runtime(self), "report_chunk", report_chunk_poll,
                     child_new(self, &r->chunks_left), free);
        if (opt.bug_blocking) {
            render_report_blocking(); /* BUG: blocks the worker inside a poll */
            r->stage = 2;
            break;
        }
        r->stage = 1;
        r->wake_at = rt_now_ns() + RENDER_NS;
        rt_sleep_until(self, r->wake_at);
        FR_AWAIT(id, "render_offload");
        return RT_PENDING;
    case 1:
        if (rt_now_ns() < r->wake_at) {
            FR_AWAIT(id, "render_offload");
            return RT_PENDING;
        }
        r->stage = 2;
        break;
    }
    if (atomic_load(&r->chunks_left) > 0) {
        FR_AWAIT(id, "join_chunks");
        return RT_PENDING;
    }
    return RT_READY;
}

/* ---- the accept loop ------------------------------------------------------ */

struct acceptor {
    uint32_t seed;
    uint64_t next_tick, interval;
    uint64_t next_cache; /* next cache_refresh */
    bool migrated, crashed, transferred;
};

static void spawn_request(struct rt_task *self, struct acceptor *a, uint64_t now)
{
    struct request *r = xcalloc(sizeof(*r));

    r->seed = rnd(&a->seed) | 1;
    r->header_storage.len = 12;
    memcpy(r->header_storage.text, "GET /orders", 12);
    r->header = &r->header_storage;
    if (opt.bug_crash && !a->crashed && now >= since_start(opt.crash_after_ms)) {
        r->header = NULL; /* a malformed request: no header at all */
        a->crashed = true;
    }
    atomic_fetch_add(&inflight, 1);
    rt_spawn(rt_task_runtime(self), "request", request_poll, r, free);
}

static enum rt_poll accept_poll(struct rt_task *self, void *arg)
{
    struct acceptor *a = arg;
    struct rt_runtime *run = rt_task_runtime(self);
    uint64_t now = rt_now_ns();

    if (atomic_load(&stopping)) {
        atomic_store(&accept_done, true);
        return RT_READY;
    }
    for (int n = 0; a->next_tick <= now && n < MAX_BURST; n++) {
        spawn_request(self, a, now);
        a->next_tick += a->interval;
    }
    if (a->next_tick <= now) /* far behind: drop the backlog rather than burst */
        a->next_tick = now + a->interval;

    if (!a->migrated && now >= since_start(100)) {
        a->migrated = true;
        rt_spawn(run, "schema_holder", schema_holder_poll, xcalloc(sizeof(struct sleeper)), free);
        rt_spawn(run, "db_migrate", db_migrate_poll, xcalloc(sizeof(struct sleeper)), free);
    }
    if (!a->transferred && now >= since_start(300)) {
        a->transferred = true;
        spawn_transfers(run);
    }
    if (now >= a->next_cache) {
        a->next_cache += 1000 * MS;
        rt_spawn(run, "cache_refresh", cache_refresh_poll, xcalloc(sizeof(struct cache_refresh)),
                 free);
    }

    rt_sleep_until(self, a->next_tick);
    FR_AWAIT(rt_task_id(self), "accept");
    return RT_PENDING;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: flightrec-demo [options]\n"
          "A demo service on the flightrec demo runtime, with plantable bugs.\n"
          "\n"
          "  --bug-lost-wakeup   cache_refresh's timeout path drops its waker (lost wakeup)\n"
          "  --bug-blocking      report_render blocks every worker 200 ms (long polls, starving)\n"
          "  --bug-hang          db_migrate waits forever for the schema lock (hung)\n"
          "  --bug-crash         parse_header dereferences NULL after --crash-after-ms\n"
          "  --bug-deadlock      transfer_in takes the ledger and accounts locks in the\n"
          "                      opposite order to transfer_out (deadlock)\n"
          "  --all-bugs          all of the above\n"
          "  --duration-ms N     run for N ms, then drain, dump and exit (default 3000)\n"
          "  --crash-after-ms N  when --bug-crash fires (default 3/4 of the duration)\n"
          "  --workers N         worker threads (default 2)\n"
          "  --rate N            requests per second (default 250)\n"
          "  --dump-dir DIR      where dumps go (default $FLIGHTREC_DIR, else .)\n"
          "  --no-recorder       do not call fr_init(): hooks cost nothing, no dumps\n"
          "  -h, --help          this text\n"
          "\n"
          "SIGUSR1 writes a dump at any time; a crash writes one on the way down.\n",
          f);
}

static unsigned number(const char *flag, const char *s)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = s ? strtoul(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v > UINT_MAX) {
        fprintf(stderr, "flightrec-demo: %s needs a number\n", flag);
        exit(2);
    }
    return (unsigned)v;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--bug-lost-wakeup")) {
            opt.bug_lost_wakeup = true;
        } else if (!strcmp(a, "--bug-blocking")) {
            opt.bug_blocking = true;
        } else if (!strcmp(a, "--bug-hang")) {
            opt.bug_hang = true;
        } else if (!strcmp(a, "--bug-crash")) {
            opt.bug_crash = true;
        } else if (!strcmp(a, "--bug-deadlock")) {
            opt.bug_deadlock = true;
        } else if (!strcmp(a, "--all-bugs")) {
            opt.bug_lost_wakeup = opt.bug_blocking = opt.bug_hang = opt.bug_crash = true;
            opt.bug_deadlock = true;
        } else if (!strcmp(a, "--duration-ms")) {
            opt.duration_ms = number(a, i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(a, "--crash-after-ms")) {
            opt.crash_after_ms = number(a, i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(a, "--workers")) {
            opt.workers = number(a, i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(a, "--rate")) {
            opt.rate = number(a, i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(a, "--dump-dir")) {
            if (i + 1 >= argc) {
                fputs("flightrec-demo: --dump-dir needs a directory\n", stderr);
                exit(2);
            }
            opt.dump_dir = argv[++i];
        } else if (!strcmp(a, "--no-recorder")) {
            opt.recorder = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "flightrec-demo: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (opt.workers < 1 || opt.workers > 64 || opt.rate < 1 || opt.rate > 100000) {
        fputs("flightrec-demo: --workers must be 1..64 and --rate 1..100000\n", stderr);
        exit(2);
    }
    if (opt.crash_after_ms == UINT_MAX)
        opt.crash_after_ms = opt.duration_ms / 4 * 3;
}

static void sleep_until_ns(uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                          .tv_nsec = (long)(deadline % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int main(int argc, char **argv)
{
    struct acceptor *a;
    char path[PATH_MAX];
    uint64_t drain_deadline;
    int rc;

    parse_args(argc, argv);
    if (opt.recorder) {
        struct fr_config cfg = {.dump_dir = opt.dump_dir};
        rc = fr_init(&cfg);
        if (rc < 0) {
            fprintf(stderr, "flightrec-demo: fr_init: %s\n", strerror(-rc));
            return 1;
        }
        fr_thread_name("main");
    }
    pool_init();
    rt_event_init(&upstream_reply);
    rt_event_init(&schema_lock_released);
    rt_mutex_init(&accounts_lock, "accounts");
    rt_mutex_init(&ledger_lock, "ledger");

    fprintf(
        stderr, "flightrec-demo: pid %d, %u workers, %u requests/s for %u ms; bugs:%s%s%s%s%s%s\n",
        (int)getpid(), opt.workers, opt.rate, opt.duration_ms,
        opt.bug_lost_wakeup ? " lost-wakeup" : "", opt.bug_blocking ? " blocking" : "",
        opt.bug_hang ? " hang" : "", opt.bug_crash ? " crash" : "",
        opt.bug_deadlock ? " deadlock" : "",
        opt.bug_lost_wakeup || opt.bug_blocking || opt.bug_hang || opt.bug_crash ||
                opt.bug_deadlock
            ? ""
            : " none");

    start_ns = rt_now_ns();
    rt = rt_create(opt.workers);
    a = xcalloc(sizeof(*a));
    a->seed = 2463534242u;
    a->interval = 1000000000ull / opt.rate;
    a->next_tick = start_ns;
    a->next_cache = since_start(200);
    rt_spawn(rt, "accept_loop", accept_poll, a, free);

    /* The nightly report (see report_render), then run to the end. */
    if (opt.duration_ms > 400) {
        sleep_until_ns(since_start(400));
        for (unsigned i = 0; i < opt.workers; i++)
            rt_spawn(rt, "report_render", report_render_poll, xcalloc(sizeof(struct report)), free);
    }

    /* Then let the accept loop stop and the requests in flight finish. */
    sleep_until_ns(since_start(opt.duration_ms));
    atomic_store(&stopping, true);
    drain_deadline = rt_now_ns() + 2000 * MS;
    while ((!atomic_load(&accept_done) || atomic_load(&inflight) > 0) &&
           rt_now_ns() < drain_deadline)
        sleep_until_ns(rt_now_ns() + 1 * MS);

    fprintf(stderr,
            "flightrec-demo: served %ld requests, %ld stale cache refreshes, %ld transfers, "
            "%ld tasks still live, %ld requests unfinished\n",
            atomic_load(&served), atomic_load(&stale), atomic_load(&transfers_done),
            rt_live_tasks(rt), atomic_load(&inflight));
    if (opt.recorder) {
        rc = fr_dump("end of run", path, sizeof(path));
        if (rc < 0) {
            fprintf(stderr, "flightrec-demo: fr_dump: %s\n", strerror(-rc));
            return 1;
        }
        fprintf(stderr, "flightrec-demo: wrote %s\n", path);
    }
    rt_destroy(rt);
    if (opt.recorder)
        fr_shutdown();
    return 0;
}
