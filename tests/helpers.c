/*
 * helpers.c - see helpers.h.
 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[512];

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

const char *th_tmpdir(void)
{
    if (tmpdir[0])
        return tmpdir;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/frtest-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    atexit(remove_tmpdir);
    return tmpdir;
}

char *th_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0, k;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    while ((k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n == cap - 1) {
            s = realloc(s, cap *= 2);
            cr_assert_not_null(s);
        }
    }
    cr_assert(!ferror(f), "%s: read error", path);
    fclose(f);
    s[n] = 0;
    if (len)
        *len = n;
    return s;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(a, b);
}

int th_list_dumps(const char *dir, char paths[][512], int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "flightrec-", 10) == 0 && l > 4 &&
            strcmp(e->d_name + l - 4, ".frd") == 0)
            snprintf(paths[n++], 512, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(paths, (size_t)n, 512, cmp_path);
    return n;
}

int th_count_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, ".flightrec-", 11) == 0)
            n++;
    closedir(d);
    return n;
}

int th_zstd_test(const char *path)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "zstd -q -t '%s' 2>&1", path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct frd_dump *th_open(const char *path)
{
    struct frd_dump *d = NULL;
    char err[512] = "";
    int r = frd_open(path, &d, err, sizeof err);
    cr_assert_eq(r, 0, "frd_open(%s) = %d: %s", path, r, err);
    return d;
}

struct frd_dump *th_the_crash_dump(const char *dir, int signo)
{
    char paths[4][512];
    int n = th_list_dumps(dir, paths, 4);
    cr_assert_eq(n, 1, "%d dumps after the crash, want 1", n);
    cr_assert_eq(th_count_temporaries(dir), 0);
    cr_assert_eq(th_zstd_test(paths[0]), 0, "zstd -t rejected %s", paths[0]);
    struct frd_dump *d = th_open(paths[0]);
    cr_assert(d->have_end, "crash dump cut short: %s", d->nerrors ? d->errors[0] : "");
    cr_assert_eq(d->hdr.trigger, FR_TRIGGER_CRASH);
    cr_assert(d->crash.present);
    cr_assert_eq(d->crash.signo, (uint32_t)signo, "crash signal %u", d->crash.signo);
    return d;
}

const struct frd_thread *th_thread(const struct frd_dump *d, uint32_t tid)
{
    for (size_t i = 0; i < d->nthreads; i++)
        if (d->threads[i].tid == tid)
            return &d->threads[i];
    return NULL;
}

const char *th_string(const struct frd_dump *d, uint32_t id)
{
    static char buf[512];
    for (size_t i = 0; i < d->nstrings; i++) {
        if (d->strings[i].id == id) {
            size_t n = d->strings[i].len < sizeof buf - 1 ? d->strings[i].len : sizeof buf - 1;
            memcpy(buf, d->strings[i].text, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

int th_wait_for_dumps(const char *dir, int want, unsigned ms)
{
    char paths[MAX_DUMPS_LISTED][512];
    int n = 0;
    for (unsigned waited = 0; waited <= ms; waited += 10) {
        n = th_list_dumps(dir, paths, MAX_DUMPS_LISTED);
        if (n >= want)
            return n;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return n;
}

int th_run_child(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        _exit(fn(arg));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

pid_t th_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

int th_each_thread(int (*fn)(pid_t tid, const char *comm, void *arg), void *arg)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            rc = fn((pid_t)atoi(e->d_name), comm, arg);
        }
        fclose(f);
    }
    closedir(d);
    return rc;
}

/* ---- planted crashes ------------------------------------------------------ */

static volatile int *volatile null_ptr; /* volatile: the compiler cannot see it is NULL */
static volatile int recurse_forever = 1;

__attribute__((noinline, no_sanitize("undefined"))) void th_crash_null(void)
{
    *null_ptr = 1;
}

__attribute__((noinline)) int th_crash_recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (!recurse_forever)
        return pad[0];
    return th_crash_recurse(depth + 1) + pad[0];
}

__attribute__((noinline)) void th_crash_abort(void)
{
    abort();
}

int th_count_rings(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 6 && strcmp(e->d_name + l - 6, ".rings") == 0) {
            n++;
            if (path)
                snprintf(path, len, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    return n;
}

int th_recover(const char *cli, const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s recover %s 2>/dev/null", cli, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    if (out) {
        out[0] = '\0';
        if (fgets(out, (int)len, p))
            out[strcspn(out, "\n")] = '\0';
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
