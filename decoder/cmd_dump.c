/*
 * decoder/cmd_dump.c - `flightrec dump PID`: ask a running process for a
 * dump and wait until it is on disk.
 *
 * The dump signal's default action terminates a process, so the command
 * first checks in /proc/PID/status that the process catches it: a process
 * that never called fr_init() is left alone. It then lists the dumps of that
 * pid already in the dump directory, sends the signal and polls the directory
 * for a new name. The recorder renames a dump to its final name only when it
 * is whole, so the first new name is a complete file.
 *
 * The dump directory is --dir, else the FLIGHTREC_DIR the process started
 * with (/proc/PID/environ), else its working directory, which are the
 * recorder's defaults. A program that sets fr_config.dump_dir needs --dir.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

#define POLL_NS (20 * 1000 * 1000)

/* Names already present: a small sorted-free list, dumps per pid are few
 * (retention keeps at most max_dumps), but stay correct with many. */
struct names {
    char **v;
    size_t n, cap;
};

static int names_has(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return 1;
    return 0;
}

static int names_add(struct names *s, const char *name)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(name)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* "flightrec-<pid>-*.frd": a final dump name of that process. */
static int is_dump_of(const char *name, long pid)
{
    char prefix[48];
    int n = snprintf(prefix, sizeof(prefix), "flightrec-%ld-", pid);
    size_t len = strlen(name);
    return strncmp(name, prefix, (size_t)n) == 0 && len > (size_t)n + 4 &&
           strcmp(name + len - 4, ".frd") == 0;
}

/*
 * scan - add every dump of @pid in @dir to @seen; with @found, stop at the
 * first one not yet in @seen and copy its name there instead of adding it.
 * Return: 1 found, 0 none, or a negative errno value.
 */
static int scan(const char *dir, long pid, struct names *seen, char *found, size_t len)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return -errno;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!is_dump_of(de->d_name, pid) || names_has(seen, de->d_name))
            continue;
        if (found) {
            snprintf(found, len, "%s", de->d_name);
            r = 1;
            break;
        }
        if ((r = names_add(seen, de->d_name)) < 0)
            break;
    }
    closedir(dp);
    return r;
}

/* Is @sig in the SigCgt (caught) mask of /proc/PID/status? 1, 0 or -errno. */
static int catches(long pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int r = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "SigCgt:", 7) != 0)
            continue;
        unsigned long long mask = strtoull(line + 7, NULL, 16);
        r = sig >= 1 && sig <= 64 && (mask >> (sig - 1) & 1);
        break;
    }
    fclose(f);
    return r;
}

/* FLIGHTREC_DIR from the process's initial environment into @buf. */
static int env_dir(long pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* The environment block can be large; read it whole, bounded. */
    size_t cap = 1 << 16, n = 0;
    char *env = malloc(cap + 1);
    ssize_t k;
    while (env && (k = read(fd, env + n, cap - n)) > 0) {
        n += (size_t)k;
        if (n == cap) {
            char *bigger = cap < (8u << 20) ? realloc(env, 2 * cap + 1) : NULL;
            if (!bigger)
                break;
            env = bigger;
            cap *= 2;
        }
    }
    close(fd);
    int found = 0;
    if (env) {
        env[n] = 0;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
            const char *v = env + i;
            if (strncmp(v, "FLIGHTREC_DIR=", 14) == 0 && v[14]) {
                snprintf(buf, len, "%s", v + 14);
                found = 1;
            }
        }
    }
    free(env);
    return found;
}

static int signal_number(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } known[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"SIGUSR1", SIGUSR1},
                 {"SIGUSR2", SIGUSR2}};
    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
        if (strcmp(s, known[i].name) == 0)
            return known[i].sig;
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end && n >= 1 && n <= 64)
        return (int)n;
    return -1;
}

/* The process exists and is not a zombie (a zombie never writes a dump). */
static int alive(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT && errno != ESRCH;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *paren = strrchr(buf, ')'); /* the command name may hold anything */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char usage_dump[] =
    "usage: flightrec dump PID [--dir DIR] [--timeout S] [--signal SIG]\n"
    "\n"
    "Ask running process PID for a dump (send its dump signal) and wait until the\n"
    "new dump is whole on disk; print its path. The process must catch the signal\n"
    "(it called fr_init()); one that does not is left alone, not killed.\n"
    "\n"
    "  --dir DIR     where the process writes dumps (default: the FLIGHTREC_DIR it\n"
    "                started with, else its working directory; a program that\n"
    "                sets fr_config.dump_dir needs --dir)\n"
    "  --timeout S   give up after S seconds (default 10)\n"
    "  --signal SIG  the dump signal, USR1 (default), USR2 or a number, when the\n"
    "                program set fr_config.dump_signal\n"
    "\n"
    "exit status: 0 the path was printed; 1 no such process, not permitted, the\n"
    "process does not catch the signal, exited, or no dump before the timeout;\n"
    "2 usage error\n";

int frd_cmd_dump(int argc, char **argv)
{
    const char *pid_arg = NULL, *dir_arg = NULL;
    double timeout_s = 10;
    int sig = SIGUSR1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_dump, stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (pid_arg)
                return frd_usage_error(usage_dump, "unexpected argument '%s'", a);
            pid_arg = a;
            continue;
        }
        if (i + 1 >= argc)
            return frd_usage_error(usage_dump, "option '%s' needs a value", a);
        const char *val = argv[++i];
        char *end;
        if (strcmp(a, "--dir") == 0) {
            dir_arg = val;
        } else if (strcmp(a, "--timeout") == 0) {
            timeout_s = strtod(val, &end);
            if (*end || end == val || !(timeout_s >= 0) || timeout_s > 86400)
                return frd_usage_error(usage_dump, "bad value '%s' for --timeout", val);
        } else if (strcmp(a, "--signal") == 0) {
            if ((sig = signal_number(val)) < 0)
                return frd_usage_error(usage_dump, "bad value '%s' for --signal", val);
        } else {
            return frd_usage_error(usage_dump, "unknown option '%s'", a);
        }
    }
    if (!pid_arg)
        return frd_usage_error(usage_dump, "%s", "missing PID argument");
    char *end;
    errno = 0;
    long pid = strtol(pid_arg, &end, 10);
    if (errno || *end || pid <= 0 || pid > INT_MAX)
        return frd_usage_error(usage_dump, "bad PID '%s'", pid_arg);

    int c = catches(pid, sig);
    if (c == -ENOENT || c == -ESRCH) {
        fprintf(stderr, "flightrec: dump: no process %ld\n", pid);
        return 1;
    }
    if (c < 0) {
        fprintf(stderr, "flightrec: dump: /proc/%ld/status: %s\n", pid, strerror(-c));
        return 1;
    }
    if (!c) {
        fprintf(stderr,
                "flightrec: dump: process %ld does not catch signal %d (%s); not sending it, "
                "since it would kill the process. Did it call fr_init()? Is its dump signal "
                "another one (--signal)?\n",
                pid, sig, strsignal(sig));
        return 1;
    }

    char dir[PATH_MAX];
    if (dir_arg) {
        snprintf(dir, sizeof(dir), "%s", dir_arg);
    } else if (!env_dir(pid, dir, sizeof(dir))) {
        char link[64];
        snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
        ssize_t n = readlink(link, dir, sizeof(dir) - 1);
        if (n < 0) {
            fprintf(stderr, "flightrec: dump: cannot find the dump directory of process %ld "
                            "(%s: %s); use --dir\n", pid, link, strerror(errno));
            return 1;
        }
        dir[n] = 0;
    }

    struct names seen = {0};
    int r = scan(dir, pid, &seen, NULL, 0);
    if (r < 0) {
        fprintf(stderr, "flightrec: dump: %s: %s\n", dir, strerror(-r));
        names_free(&seen);
        return 1;
    }
    if (kill((pid_t)pid, sig) < 0) {
        int e = errno;
        if (e == ESRCH)
            fprintf(stderr, "flightrec: dump: no process %ld\n", pid);
        else
            fprintf(stderr, "flightrec: dump: cannot signal process %ld: %s\n", pid, strerror(e));
        names_free(&seen);
        return 1;
    }

    char found[NAME_MAX + 1];
    int64_t deadline = now_ns() + (int64_t)(timeout_s * 1e9);
    int status = 1;
    for (;;) {
        int running = alive(pid);
        r = scan(dir, pid, &seen, found, sizeof(found)); /* after the liveness check */
        if (r == 1) {
            printf("%s%s%s\n", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", found);
            status = fflush(stdout) == 0 ? 0 : 1;
            break;
        }
        if (r < 0) {
            fprintf(stderr, "flightrec: dump: %s: %s\n", dir, strerror(-r));
            break;
        }
        if (!running) {
            fprintf(stderr, "flightrec: dump: process %ld exited before a dump appeared in %s\n",
                    pid, dir);
            break;
        }
        if (now_ns() >= deadline) {
            fprintf(stderr,
                    "flightrec: dump: no new dump from process %ld in %s after %g s (does it "
                    "write its dumps elsewhere? use --dir)\n",
                    pid, dir, timeout_s);
            break;
        }
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
    }
    names_free(&seen);
    return status;
}
