/*
 * test_poller.c - the adapters' poller wrappers (recorder/adapters/common.c,
 * linked into this executable as a preloaded adapter would bring them): a
 * thread blocking in epoll_wait is parked for that span (every call that may
 * block is, even one that returns at once), and every ready descriptor registered
 * with its number as data reaches the ready hook, once, on the polling
 * thread; one registered with a pointer never does. Return values and errno
 * are the real call's.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "flightrec.h"
#include "helpers.h"

static _Atomic int hook_fd = -1, hook_calls;
static pid_t hook_tid, poll_tid;

static void hook(int fd, uint32_t events)
{
    cr_assert(events & EPOLLIN);
    atomic_store(&hook_fd, fd);
    atomic_fetch_add(&hook_calls, 1);
    hook_tid = th_gettid();
}

static int pipefd[2];

static void *late_writer(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    cr_assert_eq(write(pipefd[1], "x", 1), 1);
    return NULL;
}

/* Counts this thread's park and unpark events in dump @path. */
static void count_parks(const char *path, pid_t tid, int *parks, int *unparks)
{
    struct frd_dump *d = th_open(path);
    const struct frd_thread *t = th_thread(d, (uint32_t)tid);
    cr_assert_not_null(t);
    *parks = *unparks = 0;
    for (size_t i = 0; i < t->nevents; i++) {
        *parks += t->events[i].type == FR_EV_PARK;
        *unparks += t->events[i].type == FR_EV_UNPARK;
    }
    frd_close(d);
}

Test(poller, blocking_wait_is_parked_and_ready_fds_reach_the_hook)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .dump_signal = -1 };
    cr_assert_eq(fr_init(&cfg), 0);
    fra_set_ready_hook(hook);
    poll_tid = th_gettid();
    cr_assert_eq(pipe(pipefd), 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = pipefd[0] };
    cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev), 0);

    /* blocks ~100 ms until the writer writes: one park, one unpark */
    pthread_t w;
    pthread_create(&w, NULL, late_writer, NULL);
    struct epoll_event out[4];
    cr_assert_eq(epoll_wait(ep, out, 4, 5000), 1);
    pthread_join(w, NULL);
    cr_expect_eq(atomic_load(&hook_fd), pipefd[0]);
    cr_expect_eq(atomic_load(&hook_calls), 1);
    cr_expect_eq(hook_tid, poll_tid, "the hook runs on the polling thread");

    /* still readable: returns at once, parked for a moment */
    cr_assert_eq(epoll_wait(ep, out, 4, 5000), 1);
    cr_expect_eq(atomic_load(&hook_calls), 2);

    /* timeout: parked again, no hook; the real result and errno */
    char c;
    cr_assert_eq(read(pipefd[0], &c, 1), 1);
    errno = 1234;
    cr_assert_eq(epoll_pwait(ep, out, 4, 20, NULL), 0);
    cr_expect_eq(errno, 1234, "errno untouched by a call that succeeded");
    cr_expect_eq(atomic_load(&hook_calls), 2);
    cr_assert_eq(epoll_wait(-1, out, 4, 0), -1);
    cr_expect_eq(errno, EBADF);

    char path[512];
    cr_assert_eq(fr_dump("poller", path, sizeof path), 0);
    int parks, unparks;
    count_parks(path, poll_tid, &parks, &unparks);
    cr_expect_eq(parks, 3, "%d parks: one per call that may block", parks);
    cr_expect_eq(unparks, 3, "%d unparks", unparks);
}

Test(poller, descriptors_registered_with_a_pointer_never_reach_the_hook)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .dump_signal = -1 };
    cr_assert_eq(fr_init(&cfg), 0);
    fra_set_ready_hook(hook);
    cr_assert_eq(pipe(pipefd), 0);
    int ep = epoll_create1(0);
    static int cookie;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cookie };
    cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev), 0);
    cr_assert_eq(write(pipefd[1], "x", 1), 1);
    struct epoll_event out[4];
    cr_assert_eq(epoll_wait(ep, out, 4, 1000), 1);
    cr_expect_eq(out[0].data.ptr, &cookie, "the program's data comes back untouched");
    cr_expect_eq(atomic_load(&hook_calls), 0);

    /* re-registered with its number, then removed: reported, then not */
    ev.data.fd = pipefd[0];
    cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_MOD, pipefd[0], &ev), 0);
    cr_assert_eq(epoll_wait(ep, out, 4, 1000), 1);
    cr_expect_eq(atomic_load(&hook_calls), 1);
    cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_DEL, pipefd[0], NULL), 0);
    int ep2 = epoll_create1(0);
    ev.data.fd = pipefd[0];
    cr_assert_eq(epoll_ctl(ep2, EPOLL_CTL_ADD, pipefd[0], &ev), 0);
    cr_assert_eq(epoll_wait(ep2, out, 4, 1000), 1);
    cr_expect_eq(atomic_load(&hook_calls), 2, "registered on the epoll that reported it");
}

Test(poller, label_cache_gives_one_pointer_per_pair)
{
    const char *a = fra_label("uv timer", (const void *)0x55d0c1a2b3c4);
    cr_expect_str_eq(a, "uv timer @0x55d0c1a2b3c4");
    cr_expect_eq(fra_label("uv timer", (const void *)0x55d0c1a2b3c4), a);
    cr_expect_str_eq(fra_label("x", (const void *)0), "x @0x0");
    cr_expect_str_eq(fra_label("y", (const void *)0xffffffffffffffff), "y @0xffffffffffffffff");
}
