/*
 * decoder/cmd_dump.c - `flightrec dump PID`: ask a running process for a
 * dump and wait until it is on disk.
 *
 * Which signal: the recorder names its dumper thread "flightrec:sig<N>"
 * after its dump signal N (renamed when the signal moves), or
 * "flightrec:nosig" when it has none, so the command reads the names of the
 * process's threads (/proc/PID/task/ * /comm) and uses that signal; --signal
 * overrides. A process with no such thread but libflightrec in its maps runs
 * an older flightrec, whose signal is SIGUSR1. One with neither does not run
 * flightrec, and is told so.
 *
 * The dump signal's default action terminates a process, so the command then
 * checks in /proc/PID/status that the process catches it, and that some
 * thread does not block it (else it could never be delivered). It then lists
 * the dumps of that pid already in the dump directory, sends the signal and
 * polls the directory for a new name. The signal goes to the dumper thread
 * itself (tgkill) when the process announced it, so none of the program's
 * threads is interrupted; else to the process. The recorder renames a dump to its
 * final name only when it is whole, so the first new name is a complete file.
 *
 * The dump directory is --dir, else the FLIGHTREC_DIR the process started
 * with (/proc/PID/environ), else its working directory, which are the
 * recorder's defaults. A program that sets fr_config.dump_dir needs --dir.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "signame.h"

#define POLL_NS (20 * 1000 * 1000)
#define SETTLE_NS (1000 * 1000 * 1000) /* a recorder still starting: see below */

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

/* The dumper thread's name: "flightrec:sig<N>" or "flightrec:nosig". */
#define DUMPER_PREFIX "flightrec:"

/*
 * dumper_signal - the dump signal the recorder in process @pid announces in
 * its dumper thread's name, and in *@tid that thread's id (0 if none).
 * Return: the signal (1..64), 0 for "flightrec:nosig", -EAGAIN for
 * "flightrec:start" (fr_init in progress), -ENOENT if no thread has such a
 * name, -errno if the threads cannot be listed.
 */
static int dumper_signal(long pid, pid_t *tid)
{
    *tid = 0;
    char path[96];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *dp = opendir(path);
    if (!dp)
        return -errno;
    int r = -ENOENT;
    struct dirent *de;
    while (r == -ENOENT && (de = readdir(dp))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char comm[64];
        snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/comm", pid, de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* the thread exited meanwhile */
        ssize_t n = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (n <= 0)
            continue;
        comm[n] = 0;
        comm[strcspn(comm, "\n")] = 0;
        if (strncmp(comm, DUMPER_PREFIX, strlen(DUMPER_PREFIX)) != 0)
            continue;
        const char *v = comm + strlen(DUMPER_PREFIX);
        if (strcmp(v, "nosig") == 0) {
            r = 0;
        } else if (strcmp(v, "start") == 0) {
            r = -EAGAIN; /* fr_init in progress: the handler is not in place yet */
        } else if (strncmp(v, "sig", 3) == 0 && isdigit((unsigned char)v[3])) {
            char *end;
            long sig = strtol(v + 3, &end, 10);
            if (!*end && sig >= 1 && sig <= 64) {
                r = (int)sig;
                *tid = (pid_t)atol(de->d_name);
            }
        }
    }
    closedir(dp);
    return r;
}

/*
 * send_dump_signal - ask process @pid for a dump with @sig. With the dumper
 * thread's id @tid (not 0), the signal goes to that thread alone (tgkill),
 * which keeps it unblocked: no thread of the program is interrupted, where a
 * signal sent to the process lands on any thread that does not block it,
 * often the main thread, which is then held up for the handler. If that
 * thread is gone (the process restarted its recorder), the signal goes to
 * the process. Return: 0, or -1 with errno set.
 */
static int send_dump_signal(pid_t pid, pid_t tid, int sig)
{
    if (tid > 0 && syscall(SYS_tgkill, pid, tid, sig) == 0)
        return 0;
    if (tid > 0 && errno != ESRCH)
        return -1;
    return kill(pid, sig);
}

/* Does /proc/PID/maps map a file named libflightrec* (the library or an
 * adapter)? 1, 0 or -errno. */
static int maps_flightrec(long pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int r = 0;
    while (!r && fgets(line, sizeof(line), f)) {
        const char *slash = strrchr(line, '/');
        r = slash && strncmp(slash + 1, "libflightrec", 12) == 0;
    }
    fclose(f);
    return r;
}

/* Is @sig blocked in every thread of @pid (SigBlk of each task)? 1, 0 or
 * -errno; a thread that exits meanwhile is skipped. */
static int blocked_everywhere(long pid, int sig)
{
    char path[96], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *dp = opendir(path);
    if (!dp)
        return -errno;
    int threads = 0, blocked = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/status", pid, de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        int state = -1;
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "SigBlk:", 7) == 0) {
                unsigned long long mask = strtoull(line + 7, NULL, 16);
                state = (int)(mask >> (sig - 1) & 1);
                break;
            }
        fclose(f);
        if (state < 0)
            continue;
        threads++;
        blocked += state;
    }
    closedir(dp);
    return threads > 0 && blocked == threads;
}

int frd_process_alive(long pid)
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

/* One of /proc/PID/status's id lines ("Uid:", "Gid:"): the file-system id
 * (the fourth), or -1. @groups (for "Groups:") gets up to @ngroups ids. */
static long status_ids(long pid, const char *key, long *groups, int *ngroups)
{
    char path[64], line[1024];
    int max = groups ? *ngroups : 4;
    if (groups)
        *ngroups = 0;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long id = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) != 0)
            continue;
        char *p = line + klen, *end;
        long v[4];
        int n = 0;
        while (n < max) {
            long x = strtol(p, &end, 10);
            if (end == p)
                break;
            if (groups)
                groups[n] = x;
            else
                v[n] = x;
            n++;
            p = end;
        }
        if (groups)
            *ngroups = n;
        else if (n == 4)
            id = v[3];
        break;
    }
    fclose(f);
    return id;
}

/* Why a process may have written no dump in @dir: its user cannot write
 * there (a daemon that dropped privileges, memcached -u nobody), or the file
 * system is nearly full. Fills @buf with a clause, or leaves it empty. */
static void why_no_dump(long pid, const char *dir, char *buf, size_t len)
{
    buf[0] = 0;
    struct stat st;
    if (stat(dir, &st) != 0)
        return;
    long uid = status_ids(pid, "Uid:", NULL, NULL), gid = status_ids(pid, "Gid:", NULL, NULL);
    long groups[64];
    int ngroups = 64;
    status_ids(pid, "Groups:", groups, &ngroups);
    if (uid > 0) {
        mode_t need;
        if ((uid_t)uid == st.st_uid) {
            need = S_IWUSR | S_IXUSR;
        } else {
            int in = (gid_t)gid == st.st_gid;
            for (int i = 0; i < ngroups && !in; i++)
                in = (gid_t)groups[i] == st.st_gid;
            need = in ? S_IWGRP | S_IXGRP : S_IWOTH | S_IXOTH;
        }
        if ((st.st_mode & need) != need) {
            snprintf(buf, len,
                     "process %ld writes as uid %ld, which cannot write %s (mode %04o, owner "
                     "uid %ld): a daemon that dropped privileges needs a directory its user "
                     "can write",
                     pid, uid, dir, (unsigned)(st.st_mode & 07777), (long)st.st_uid);
            return;
        }
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        if (avail < 1024 * 1024)
            snprintf(buf, len, "the file system of %s has %llu KiB free", dir, avail / 1024);
    }
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
    "  --signal SIG  send this signal (USR2, RTMIN+3, a number) instead of the\n"
    "                one the process's flightrec announces (the name of its\n"
    "                dumper thread, flightrec:sig<N>; SIGUSR1 for an older\n"
    "                flightrec that does not name it)\n"
    "\n"
    "exit status: 0 the path was printed; 1 no such process, not permitted, the\n"
    "process does not run flightrec, has no dump signal, does not catch it or\n"
    "blocks it in every thread, exited, or no dump before the timeout; 2 usage\n"
    "error\n";

int frd_cmd_dump(int argc, char **argv)
{
    const char *pid_arg = NULL, *dir_arg = NULL, *sig_arg = NULL;
    double timeout_s = 10;
    int sig = 0;
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
            sig_arg = val;
            if ((sig = frd_signal_parse(val)) < 0)
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

    char name[16];
    pid_t dumper = 0;
    int announced = dumper_signal(pid, &dumper);
    for (int64_t until = now_ns() + SETTLE_NS; announced == -EAGAIN && now_ns() < until;) {
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
        announced = dumper_signal(pid, &dumper);
    }
    if (announced == -EAGAIN) {
        fprintf(stderr, "flightrec: dump: flightrec in process %ld is still starting (its dump "
                        "signal is not in place yet); try again\n", pid);
        return 1;
    }
    if (announced == -ENOENT && !frd_process_alive(pid))
        announced = -ESRCH;
    if (announced < 0 && announced != -ENOENT) {
        if (announced == -ESRCH)
            fprintf(stderr, "flightrec: dump: no process %ld\n", pid);
        else
            fprintf(stderr, "flightrec: dump: /proc/%ld/task: %s\n", pid, strerror(-announced));
        return 1;
    }
    if (!sig) {
        if (announced == 0) {
            fprintf(stderr, "flightrec: dump: process %ld runs flightrec with no dump signal "
                            "(FLIGHTREC_SIGNAL=none, or the program took every signal "
                            "flightrec could move to); it dumps only through fr_dump() or a "
                            "crash\n", pid);
            return 1;
        }
        if (announced > 0) {
            sig = announced;
        } else {
            int lib = maps_flightrec(pid);
            if (lib == 0) {
                fprintf(stderr, "flightrec: dump: process %ld does not run flightrec (no "
                                "flightrec dumper thread, no libflightrec in its memory map); "
                                "nothing sent. If it links flightrec statically, give "
                                "--signal\n", pid);
                return 1;
            }
            sig = SIGUSR1; /* an older flightrec: its only default */
            if (lib > 0 && catches(pid, sig) == 0) {
                fprintf(stderr, "flightrec: dump: process %ld has libflightrec loaded but names "
                                "no dumper thread (an older flightrec, or fr_init() not called) "
                                "and does not catch signal %d (%s); nothing sent, since it "
                                "would kill the process. Is its dump signal another one "
                                "(--signal)?\n", pid, sig, strsignal(sig));
                return 1;
            }
        }
    }

    /*
     * The recorder names its dumper thread as soon as it runs, which can be a
     * moment before the handler is installed or the dumper unblocks the
     * signal (fr_init in progress), and the signal may move meanwhile: for a
     * signal learned from the name, look again for up to SETTLE_NS before
     * calling it uncaught or blocked.
     */
    int c = catches(pid, sig);
    for (int64_t until = now_ns() + SETTLE_NS;
         !sig_arg && announced > 0 && c >= 0 && now_ns() < until &&
         (c == 0 || blocked_everywhere(pid, sig) == 1);) {
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
        pid_t again_tid;
        int again = dumper_signal(pid, &again_tid);
        if (again > 0) {
            sig = again;
            announced = again;
            dumper = again_tid;
        }
        c = catches(pid, sig);
    }
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
    if (blocked_everywhere(pid, sig) == 1) {
        fprintf(stderr,
                "flightrec: dump: process %ld blocks signal %d (SIG%s) in every thread: the "
                "dump signal cannot be delivered, so no dump can be asked for this way; "
                "nothing sent\n", pid, sig, frd_signal_spell(sig, name, sizeof(name)));
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
    if (send_dump_signal((pid_t)pid, sig == announced ? dumper : 0, sig) < 0) {
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
        int running = frd_process_alive(pid);
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
            char why[PATH_MAX + 256];
            why_no_dump(pid, dir, why, sizeof(why));
            if (why[0])
                fprintf(stderr,
                        "flightrec: dump: no new dump from process %ld in %s after %g s: %s "
                        "(its standard error says why the dump failed)\n",
                        pid, dir, timeout_s, why);
            else
                fprintf(stderr,
                        "flightrec: dump: no new dump from process %ld in %s after %g s (does "
                        "it write its dumps elsewhere? use --dir)\n",
                        pid, dir, timeout_s);
            break;
        }
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
    }
    names_free(&seen);
    return status;
}
