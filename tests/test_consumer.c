/*
 * test_consumer.c - the promise to a user, end to end: a program linked only
 * against include/flightrec.h and libflightrec.so gets a dump within one
 * second of `kill -USR1`, keeps running, and on a crash gets a second dump and
 * dies of SIGSEGV; both dumps pass `zstd -t`.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

Test(consumer, usr1_then_crash, .timeout = 60)
{
    const char *dir = th_tmpdir();
    int out[2];
    cr_assert_eq(pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    pid_t pid;
    char *argv[] = { (char *)CONSUMER_PATH, (char *)dir, NULL };
    cr_assert_eq(posix_spawn(&pid, CONSUMER_PATH, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char buf[16] = "";
    cr_assert_gt(read(out[0], buf, sizeof buf - 1), 0, "consumer did not start");
    cr_assert_eq(strncmp(buf, "ready", 5), 0);

    cr_assert_eq(kill(pid, SIGUSR1), 0);
    cr_assert_eq(th_wait_for_dumps(dir, 1, 1000), 1, "no dump within 1 s of SIGUSR1");
    int st;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the consumer died after SIGUSR1");

    cr_assert_eq(kill(pid, SIGUSR2), 0);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x, want SIGSEGV", st);

    char paths[4][512];
    int ndumps = th_list_dumps(dir, paths, 4);
    cr_assert_eq(ndumps, 2, "%d dumps in %s after SIGUSR1 and a crash, want 2 (the first: %s)",
                 ndumps, dir, ndumps > 0 ? paths[0] : "none");
    int crashes = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(th_zstd_test(paths[i]), 0, "zstd -t rejected %s", paths[i]);
        struct frd_dump *d = th_open(paths[i]);
        cr_assert_eq(d->hdr.pid, (uint32_t)pid);
        if (d->hdr.trigger == FR_TRIGGER_CRASH) {
            crashes++;
            cr_assert_eq(d->crash.signo, SIGSEGV);
            cr_assert_neq(d->crash.task, 0, "the crashing task is named");
        } else {
            cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
        }
        frd_close(d);
    }
    cr_assert_eq(crashes, 1);
}
