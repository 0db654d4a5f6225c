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
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

    /* flightrec-<pid>-<UTC time>-<seq>-<unique>.frd */
    char want[64];
    snprintf(want, sizeof want, "flightrec-%d-", (int)getpid());
    const char *base = strrchr(path, '/') + 1;
    cr_assert_eq(strncmp(base, want, strlen(want)), 0, "name %s", base);
    const char *t = base + strlen(want);
    cr_assert_eq(strlen(t), strlen("20260101T000000Z-0-0123abcd.frd"), "name %s", base);
    cr_assert_eq(t[8], 'T');
    cr_assert_eq(strncmp(t + 15, "Z-0-", 4), 0, "name %s", base);
    for (int i = 19; i < 27; i++)
        cr_assert(strchr("0123456789abcdef", t[i]) && t[i], "unique part of %s", base);
    cr_assert_str_eq(t + 27, ".frd");

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

/* ---- the dump directory swapped for a symlink after fr_init -------------- */

Test(dump, dir_swapped_for_a_symlink_is_not_written_through)
{
    const char *base = th_tmpdir();
    char dir[600], moved[600], target[600];
    snprintf(dir, sizeof dir, "%s/dumps", base);
    snprintf(moved, sizeof moved, "%s/dumps.moved", base);
    snprintf(target, sizeof target, "%s/elsewhere", base);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(mkdir(target, 0700), 0);
    struct fr_config cfg = { .dump_dir = dir };
    cr_assert_eq(fr_init(&cfg), 0);
    cr_assert_eq(fr_dump("before", NULL, 0), 0, "the real directory works");

    /* The directory is held open from fr_init: the dump goes where the
     * directory is now, never through the symlink, and the path returned is
     * where it really is. */
    cr_assert_eq(rename(dir, moved), 0);
    cr_assert_eq(symlink(target, dir), 0);
    char path[1024];
    int r = fr_dump("after", path, sizeof path);
    cr_assert_eq(r, 0, "dump after the swap returned %d", r);
    char paths[4][512];
    cr_assert_eq(th_list_dumps(target, paths, 4), 0, "a dump was written through the symlink");
    cr_assert_eq(th_count_temporaries(target), 0);
    cr_assert_eq(th_list_dumps(moved, paths, 4), 2, "both dumps in the real directory");
    cr_assert_eq(strncmp(path, moved, strlen(moved)), 0, "fr_dump said %s", path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "fr_dump returned %s, which does not exist", path);
    struct frd_dump *d = th_open(path);
    cr_assert_not_null(strstr(d->notes.p ? d->notes.p : "", "no longer leads to it"),
                       "the dump does not say its directory moved");
    frd_close(d);
    fr_shutdown();
}

/* ---- a full disk ----------------------------------------------------------- */

/* Results of the ENOSPC scenario, written by the child into shared memory. */
struct enospc_result {
    int setup;                 /* 0 ok; else which step failed (errno in setup_errno) */
    int setup_errno;
    int rc_full1, rc_full2;    /* two dumps into the full filesystem */
    int finals_full, tmps_full; /* dump files left after them */
    int rc_room;               /* a dump after room was made */
    int rc_full3;              /* full again */
    int finals_end, tmps_end;
};

static int count_final(const char *dir)
{
    char paths[8][512];
    return th_list_dumps(dir, paths, 8);
}

/* Write zeros to @path until the filesystem refuses. */
static int fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return -errno;
    static const char zeros[4096];
    int err = 0;
    for (int i = 0; i < 1024 && !err; i++)
        if (write(fd, zeros, sizeof zeros) < 0)
            err = errno;
    close(fd);
    return err == ENOSPC ? 0 : -EIO;
}

/* A private mount namespace: as root directly, otherwise through a user
 * namespace (where the kernel allows one) in which we are root. */
static int private_mounts(void)
{
    if (geteuid() != 0) {
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return -errno;
        char map[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "deny", 4) < 0) {
            }
            close(fd);
        }
        snprintf(map, sizeof map, "0 %d 1", (int)uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0)
            return -EPERM;
        close(fd);
        snprintf(map, sizeof map, "0 %d 1", (int)gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0)
            return -EPERM;
        close(fd);
    } else if (unshare(CLONE_NEWNS) != 0) {
        return -errno;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -errno;
    return 0;
}

static struct enospc_result *enospc;
static char enospc_dir[600], enospc_log[600];

static int run_enospc(void *arg)
{
    (void)arg;
    struct enospc_result *res = enospc;
    int err = private_mounts();
    if (!err && mount("tmpfs", enospc_dir, "tmpfs", 0, "size=64k,mode=0700") != 0)
        err = -errno;
    if (err) {
        res->setup = 1;
        res->setup_errno = -err;
        return 0;
    }
    /* stderr to a file outside the small filesystem, for the parent to read */
    int log = open(enospc_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (log < 0 || dup2(log, STDERR_FILENO) < 0)
        return res->setup = 2, 0;
    char filler[700];
    snprintf(filler, sizeof filler, "%s/filler", enospc_dir);
    if (fill(filler) != 0)
        return res->setup = 3, 0;

    struct fr_config cfg = { .dump_dir = enospc_dir };
    if (fr_init(&cfg) != 0)
        return res->setup = 4, 0;
    fr_spawn(1, 0, "on a full disk");
    res->rc_full1 = fr_dump("full", NULL, 0);
    res->rc_full2 = fr_dump("still full", NULL, 0);
    res->finals_full = count_final(enospc_dir);
    res->tmps_full = th_count_temporaries(enospc_dir);
    unlink(filler);
    res->rc_room = fr_dump("room", NULL, 0);
    if (fill(filler) != 0)
        return res->setup = 5, 0;
    res->rc_full3 = fr_dump("full again", NULL, 0);
    res->finals_end = count_final(enospc_dir);
    res->tmps_end = th_count_temporaries(enospc_dir);
    fr_shutdown();
    return 0;
}

static int count_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

Test(dump, full_disk_fails_cleanly_and_says_so_once_per_cause, .timeout = 60)
{
    const char *base = th_tmpdir();
    snprintf(enospc_dir, sizeof enospc_dir, "%s/small", base);
    snprintf(enospc_log, sizeof enospc_log, "%s/stderr.txt", base);
    cr_assert_eq(mkdir(enospc_dir, 0700), 0);
    enospc = mmap(NULL, sizeof *enospc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(enospc, MAP_FAILED);
    memset(enospc, 0, sizeof *enospc);

    int st = th_run_child(run_enospc, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child crashed (%#x)", st);
    const struct enospc_result *r = enospc;
    if (r->setup == 1 && geteuid() != 0)
        cr_skip_test("a 64 KiB tmpfs needs root or an unprivileged user namespace: %s "
                     "(tools/test in CI runs as root)", strerror(r->setup_errno));
    cr_assert_eq(r->setup, 0, "setting up the full tmpfs failed at step %d: %s", r->setup,
                 strerror(r->setup_errno));

    cr_assert_eq(r->rc_full1, -ENOSPC, "fr_dump on a full disk returned %d", r->rc_full1);
    cr_assert_eq(r->rc_full2, -ENOSPC, "second fr_dump on a full disk returned %d", r->rc_full2);
    cr_assert_eq(r->finals_full, 0, "a partial dump under a final name");
    cr_assert_eq(r->tmps_full, 0, "a temporary left behind");
    cr_assert_eq(r->rc_room, 0, "fr_dump with room again returned %d", r->rc_room);
    cr_assert_eq(r->rc_full3, -ENOSPC);
    cr_assert_eq(r->finals_end, 1, "only the dump made with room is kept");
    cr_assert_eq(r->tmps_end, 0);

    /* Reported once per cause: the two failures in a row print one line; the
     * failure after a successful dump is a new episode and prints again. */
    int lines = count_lines_with(enospc_log, "no space left on device");
    cr_assert_eq(lines, 2, "%d ENOSPC messages on stderr, want 2", lines);
    cr_assert_eq(count_lines_with(enospc_log, enospc_dir), 2, "the message names the directory");
}

/* ---- the dump directory from the environment ----------------------------- */

Test(dump, dump_dir_from_the_environment_is_validated)
{
    const char *dir = th_tmpdir();
    char bad[700];
    snprintf(bad, sizeof bad, "%s\nflightrec: forged message", dir);
    setenv("FLIGHTREC_DIR", bad, 1);
    cr_assert_eq(fr_init(NULL), -EINVAL, "a control character in FLIGHTREC_DIR was accepted");

    setenv("FLIGHTREC_DIR", dir, 1);
    cr_assert_eq(fr_init(NULL), 0);
    char path[512];
    cr_assert_eq(fr_dump("env", path, sizeof path), 0);
    cr_assert_eq(strncmp(path, dir, strlen(dir)), 0, "dump %s not in $FLIGHTREC_DIR", path);
    fr_shutdown();
    unsetenv("FLIGHTREC_DIR");
}
