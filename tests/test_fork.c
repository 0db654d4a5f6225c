/*
 * test_fork.c - a fork child starts with empty rings and its own dumper: its
 * dumps carry its pid and only its own events, and SIGUSR1 still works.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

static const char *dir;
static _Atomic int stop;

static void *busy_writer(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; !stop; i++)
        fr_mark(0xbad0000 + (i & 0xffff), "parent-thread");
    return NULL;
}

static int child(void *arg)
{
    (void)arg;
    fr_mark(0xc41d, "child");
    char path[512];
    if (fr_dump("child", path, sizeof path) != 0)
        return 20;
    struct frd_dump *d = NULL;
    char err[256];
    if (frd_open(path, &d, err, sizeof err) != 0)
        return 21;
    int rc = 0;
    if (d->hdr.pid != (uint32_t)getpid())
        rc = 22;
    for (size_t i = 0; i < d->nthreads && !rc; i++)
        for (size_t j = 0; j < d->threads[i].nevents; j++) {
            uint64_t task = d->threads[i].events[j].task;
            if (task == 0xc0ffee || (task & ~0xffffull) == 0xbad0000)
                rc = 23; /* a parent event leaked into the child */
        }
    if (d->nthreads != 1)
        rc = rc ? rc : 24;
    frd_close(d);
    if (rc)
        return rc;
    /* The child's dumper thread answers the dump signal. */
    kill(getpid(), SIGUSR1);
    return th_wait_for_dumps(dir, 2, 2000) >= 2 ? 0 : 25;
}

Test(fork, child_has_empty_rings_and_its_own_dumper, .timeout = 60)
{
    dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_mark(0xc0ffee, "parent");
    pthread_t t;
    pthread_create(&t, NULL, busy_writer, NULL);
    usleep(20 * 1000);
    int st = th_run_child(child, NULL);
    stop = 1;
    pthread_join(t, NULL);
    cr_assert(WIFEXITED(st), "child died (%#x)", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child check %d failed", WEXITSTATUS(st));
    /* The parent still dumps, with its own events. */
    char path[512];
    cr_assert_eq(fr_dump("parent", path, sizeof path), 0);
    struct frd_dump *d = th_open(path);
    cr_assert_eq(d->hdr.pid, (uint32_t)getpid());
    cr_assert_geq(d->nthreads, 2);
    frd_close(d);
    fr_shutdown();
}
