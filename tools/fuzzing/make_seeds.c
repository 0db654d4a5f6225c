/*
 * make_seeds.c - real dumps, kept small, as the fuzzer's seed corpus: a clean
 * run, a lost wakeup, a long poll, a hung task, a wrapped ring, the monotonic
 * clock, a crash, names and labels full of code-address tokens, the shapes
 * of the round-2 findings (a delayed wakeup, a victim behind many short polls
 * of one task, a poll after READY, outside and stopped waits, a duplicate
 * unpark), and locks (an AB-BA deadlock, a hand-over, a task hung behind a
 * leaked lock, a release of a lock not held). Usage: make_seeds DIR
 */
#include <flightrec.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void spin_us(long us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void *other_worker(void *arg)
{
    (void)arg;
    fr_thread_name("worker-2");
    for (uint64_t t = 100; t < 110; t++) {
        fr_poll_begin(t);
        fr_wake(t + 1);
        fr_poll_end(t, FR_READY);
        fr_drop(t);
    }
    fr_park();
    fr_unpark();
    return NULL;
}

static void scenario(void)
{
    fr_thread_name("worker-1");
    for (uint64_t t = 100; t < 112; t++)
        fr_spawn(t, t > 100 ? 100 : 0, t % 2 ? "handler" : "fetch");
    fr_poll_begin(110); /* lost wakeup: waker dropped while idle */
    fr_waker_clone(110);
    FR_AWAIT(110, "db_query");
    fr_poll_end(110, FR_PENDING);
    fr_waker_drop(110);
    fr_poll_begin(111); /* a long poll */
    spin_us(12000);
    fr_poll_end(111, FR_PENDING);
    fr_mark(111, "annotation");
    pthread_t th;
    pthread_create(&th, NULL, other_worker, NULL);
    pthread_join(th, NULL);
}

static void *waker(void *arg)
{
    (void)arg;
    fr_thread_name("waker");
    fr_wake(200); /* reaches no worker: the worker sleeps on */
    return NULL;
}

static void shapes(void)
{
    fr_thread_name("worker-0");
    /* delayed_wakeup: woken from another thread while this worker is parked */
    fr_spawn(200, 0, "conn");
    fr_poll_begin(200);
    fr_poll_end(200, FR_PENDING);
    fr_spawn(209, 0, "tick");
    fr_poll_begin(209);
    fr_poll_end(209, FR_PENDING);
    fr_park();
    pthread_t th;
    pthread_create(&th, NULL, waker, NULL);
    pthread_join(th, NULL);
    spin_us(12000);
    fr_wake(209); /* an unrelated timer wakes the worker at last... */
    fr_unpark();
    fr_poll_begin(209);
    fr_poll_end(209, FR_READY);
    fr_drop(209);
    fr_poll_begin(200); /* ...and only then is conn polled */
    fr_poll_end(200, FR_READY);
    fr_drop(200);
    fr_unpark(); /* a duplicate */
    /* starvation behind 300 short polls of one task */
    fr_spawn(201, 0, "victim");
    fr_poll_begin(201);
    fr_poll_end(201, FR_PENDING);
    fr_spawn(202, 0, "greedy");
    fr_wake(201);
    for (int i = 0; i < 300; i++) {
        fr_poll_begin(202);
        spin_us(40);
        fr_poll_end(202, FR_PENDING);
    }
    fr_poll_begin(201);
    fr_poll_end(201, FR_READY);
    fr_drop(201);
    /* protocol: polled again after READY */
    fr_spawn(203, 0, "done");
    fr_poll_begin(203);
    fr_poll_end(203, FR_READY);
    fr_wake(203);
    fr_poll_begin(203);
    fr_poll_end(203, FR_READY);
    fr_drop(203);
    /* waits that are no bug */
    fr_spawn(204, 0, "listener");
    fr_await_external(204, "accept");
    fr_spawn(205, 0, "stopped");
    fr_idle(205);
}

/* Locks: every lock event, every lock finding (the deadlock waits out the
 * default 1 s hang threshold). */
static void *lock_other(void *arg)
{
    (void)arg;
    fr_thread_name("lock-worker");
    fr_poll_begin(302);
    fr_lock_wait(302, 0xB000, "ledger");
    fr_lock_acquire(302, 0xB000);
    fr_poll_end(302, FR_PENDING);
    return NULL;
}

static void locks(void)
{
    fr_thread_name("main");
    fr_spawn(301, 0, "transfer_out");
    fr_spawn(302, 0, "transfer_in");
    fr_poll_begin(301);
    fr_lock_wait(301, 0xA000, "accounts");
    fr_lock_acquire(301, 0xA000);
    fr_poll_end(301, FR_PENDING);
    pthread_t t;
    pthread_create(&t, NULL, lock_other, NULL);
    pthread_join(t, NULL);
    fr_poll_begin(301);
    fr_lock_wait(301, 0xB000, "ledger");
    fr_await(301, "ledger");
    fr_poll_end(301, FR_PENDING);
    fr_poll_begin(302);
    fr_lock_wait(302, 0xA000, "accounts");
    fr_await(302, "accounts");
    fr_poll_end(302, FR_PENDING);
    /* a hand-over, a leaked lock and a task hung behind it, a stray release */
    fr_spawn(303, 0, "holder");
    fr_spawn(304, 0, "next");
    fr_poll_begin(303);
    fr_lock_wait(303, 0xC000, "pool");
    fr_lock_acquire(303, 0xC000);
    fr_poll_end(303, FR_PENDING);
    fr_poll_begin(304);
    fr_lock_wait(304, 0xC000, "pool");
    fr_poll_end(304, FR_PENDING);
    fr_poll_begin(303);
    fr_lock_release(303, 0xC000);
    fr_lock_acquire(304, 0xC000);
    fr_wake(304);
    fr_poll_end(303, FR_READY);
    fr_drop(303);
    fr_poll_begin(304);
    fr_poll_end(304, FR_READY);
    fr_drop(304); /* still holding "pool": leaked */
    fr_spawn(305, 0, "behind_leak");
    fr_poll_begin(305);
    fr_lock_wait(305, 0xC000, "pool");
    fr_await(305, "pool");
    fr_poll_end(305, FR_PENDING);
    fr_spawn(306, 0, "confused");
    fr_poll_begin(306);
    fr_lock_release(306, 0xD000);
    fr_poll_end(306, FR_READY);
    struct timespec ts = { 1, 100000000 };
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct fr_config cfg = { .dump_dir = argv[1], .ring_bytes = 16 * 1024, .max_dumps = 100 };
    if (fr_init(&cfg) != 0)
        return 1;
    scenario();
    fr_dump("seed", NULL, 0);
    for (uint64_t i = 0; i < 6000; i++) /* wrap the 16 KiB ring */
        fr_mark(i, "wrap");
    fr_dump("wrapped", NULL, 0);
    fr_shutdown();

    if (fr_init(&cfg) != 0)
        return 1;
    shapes();
    fr_dump("shapes", NULL, 0);
    fr_shutdown();

    if (fr_init(&cfg) != 0)
        return 1;
    locks();
    fr_dump("locks", NULL, 0);
    fr_shutdown();

    setenv("FLIGHTREC_CLOCK", "monotonic", 1);
    if (fr_init(&cfg) != 0)
        return 1;
    scenario();
    fr_dump("monotonic", NULL, 0);
    /* code-address tokens: names and labels the decoder symbolizes */
    for (uint64_t t = 200; t < 232; t++) {
        char name[256];
        size_t n = 0;
        while (n + 24 < sizeof(name))
            n += (size_t)snprintf(name + n, sizeof(name) - n, "@0x%lx",
                                  (unsigned long)((uintptr_t)&scenario + t * 13 + n));
        fr_spawn(t, 0, name);
        fr_poll_begin(t);
        snprintf(name, sizeof(name), "read_start @0x%lx @0x @0xG",
                 (unsigned long)((uintptr_t)__builtin_return_address(0) - 1));
        fr_await(t, name);
        fr_poll_end(t, FR_PENDING);
    }
    fr_dump("tokens", NULL, 0);
    pid_t pid = fork();
    if (pid == 0) {
        fr_spawn(7, 0, "crasher");
        fr_poll_begin(7);
        raise(SIGSEGV);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    fr_shutdown();
    return 0;
}
