/*
 * test_dump.c - the dump writer and its triggers: fr_dump(), the dump signal,
 * file naming and permissions, retention, and failures that must not hurt the
 * host program or leave a partial file under a final name.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

Test(dump, api_dump_is_named_private_and_valid)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_spawn(1, 0, "one");
    char path[512];
    cr_assert_eq(fr_dump("on request", path, sizeof path), 0);
    cr_assert_eq(strncmp(path, dir, strlen(dir)), 0, "path %s not in %s", path, dir);

    /* flightrec-<pid>-<UTC time>-<seq>.frd */
    char want[64];
    snprintf(want, sizeof want, "flightrec-%d-", (int)getpid());
    const char *base = strrchr(path, '/') + 1;
    cr_assert_eq(strncmp(base, want, strlen(want)), 0, "name %s", base);
    const char *t = base + strlen(want);
    cr_assert_eq(strlen(t), strlen("20260101T000000Z-0.frd"), "name %s", base);
    cr_assert_eq(t[8], 'T');
    cr_assert_str_eq(t + 15, "Z-0.frd");

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_assert_eq(th_zstd_test(path), 0);
    cr_assert_eq(th_count_temporaries(dir), 0);

    struct frd_dump *d = th_open(path);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_API);
    cr_assert_str_eq(d->hdr.reason, "on request");
    cr_assert_eq(d->hdr.pid, (uint32_t)getpid());
    cr_assert(d->have_end);
    cr_assert(d->proc.present);
    cr_assert(d->clock.present);
    cr_assert_geq(d->clock.npairs, 2);
    cr_assert_gt(d->modules.len, 0, "module map missing");
    cr_assert_eq(d->crash.present, 0);
    frd_close(d);

    char small[8];
    cr_assert_eq(fr_dump(NULL, small, sizeof small), -ENAMETOOLONG);
    fr_shutdown();
}

Test(dump, sigusr1_dumps_and_process_keeps_running)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir };
    cr_assert_eq(fr_init(&cfg), 0);
    fr_spawn(1, 0, "busy");
    fr_poll_begin(1);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(th_wait_for_dumps(dir, 1, 1000), 1, "no dump within 1 s of SIGUSR1");
    /* Still here, still recording. */
    fr_poll_end(1, FR_READY);
    char paths[4][512];
    cr_assert_eq(th_list_dumps(dir, paths, 4), 1);
    cr_assert_eq(th_zstd_test(paths[0]), 0);
    struct frd_dump *d = th_open(paths[0]);
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
    cr_assert_eq(d->hdr.signo, SIGUSR1);
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert_not_null(t);
    cr_assert_eq(t->current_task, 1, "the task being polled is named");
    frd_close(d);
    fr_shutdown();
}

Test(dump, signal_burst_coalesces, .timeout = 30)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir, .max_dumps = 1000 };
    cr_assert_eq(fr_init(&cfg), 0);
    for (int i = 0; i < 200; i++)
        kill(getpid(), SIGUSR1);
    th_wait_for_dumps(dir, 1, 2000);
    usleep(500 * 1000);
    char paths[MAX_DUMPS_LISTED][512];
    int n = th_list_dumps(dir, paths, MAX_DUMPS_LISTED);
    cr_assert_geq(n, 1);
    cr_assert_lt(n, 200, "%d dumps for 200 signals: not coalesced", n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(th_zstd_test(paths[i]), 0);
    fr_shutdown();
}

Test(dump, keeps_at_most_max_dumps)
{
    const char *dir = th_tmpdir();
    struct fr_config cfg = { .dump_dir = dir, .max_dumps = 3 };
    cr_assert_eq(fr_init(&cfg), 0);
    char first[512], last[512];
    for (int i = 0; i < 7; i++)
        cr_assert_eq(fr_dump("r", i ? last : first, 512), 0);
    char paths[16][512];
    cr_assert_eq(th_list_dumps(dir, paths, 16), 3);
    cr_assert_neq(access(first, F_OK), 0, "the oldest dump should be gone");
    cr_assert_eq(access(last, F_OK), 0, "the newest dump must stay");
    fr_shutdown();
}

Test(dump, missing_dir_fails_cleanly)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/does/not/exist", th_tmpdir());
    struct fr_config cfg = { .dump_dir = dir };
    cr_assert_eq(fr_init(&cfg), 0, "a missing dump dir must not stop the host");
    fr_mark(1, "x");
    char path[512] = "unchanged";
    cr_assert_eq(fr_dump("x", path, sizeof path), -ENOENT);
    cr_assert_str_eq(path, "");
    fr_shutdown();
}

Test(dump, unwritable_dirs_fail_cleanly)
{
    const char *dir = th_tmpdir();
    /* A file where the directory should be. */
    char file[600];
    snprintf(file, sizeof file, "%s/plainfile", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    struct fr_config cfg = { .dump_dir = file };
    cr_assert_eq(fr_init(&cfg), 0);
    cr_assert_eq(fr_dump("x", NULL, 0), -ENOTDIR);
    fr_shutdown();

    /* A symlink to a directory: never written through. */
    char target[600], link[600];
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    cr_assert_eq(mkdir(target, 0700), 0);
    cr_assert_eq(symlink(target, link), 0);
    struct fr_config lcfg = { .dump_dir = link };
    cr_assert_eq(fr_init(&lcfg), 0);
    int r = fr_dump("x", NULL, 0);
    cr_assert(r == -ELOOP || r == -ENOTDIR, "dump through a symlink returned %d", r);
    char paths[4][512];
    cr_assert_eq(th_list_dumps(target, paths, 4), 0, "a dump was written through the symlink");
    fr_shutdown();

    /* A directory nobody may create files in (as root: /proc refuses). */
    const char *ro = geteuid() == 0 ? "/proc/self" : target;
    if (geteuid() != 0)
        chmod(target, 0500);
    struct fr_config rcfg = { .dump_dir = ro };
    cr_assert_eq(fr_init(&rcfg), 0);
    r = fr_dump("x", NULL, 0);
    cr_assert_lt(r, 0, "dump into read-only %s succeeded", ro);
    cr_assert_eq(th_count_temporaries(ro), 0);
    fr_shutdown();
    chmod(target, 0700);
}
