/*
 * decoder/cmd_run.c - `flightrec run`: run a program with the adapter of its
 * event loop preloaded, so that a libuv or libevent program is recorded
 * with no change to its code.
 *
 * The command is found on PATH as a shell would, its ELF dependencies are
 * read without running it (elfdeps.c), and the adapters it needs are put in
 * front of LD_PRELOAD: libflightrec-uv.so when it loads libuv.so.1,
 * libflightrec-event.so when it loads libevent 2.1, both when that cannot be
 * known (a script, a static binary, a program that loads neither and may
 * dlopen one, like python with uvloop). The recorder's settings go in the
 * environment (FLIGHTREC_DIR, FLIGHTREC_STALL_MS, FLIGHTREC_SIGNAL, and
 * FLIGHTREC_RUN_PID: this pid, so that a process CMD execs that runs no loop
 * of the adapters', `sh` or `sleep`, runs unrecorded and unchanged) and then
 * flightrec execs the command: same pid, same standard streams, and the
 * command's own exit status or death by signal. flightrec writes nothing on
 * standard output, and one line on standard error saying where dumps go.
 *
 * Adapters are looked for in $FLIGHTREC_ADAPTER_DIR, then next to this
 * binary in a build tree (build/decoder/flightrec -> build/recorder/adapters/),
 * then in the library directory flightrec was configured to install into.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "elfdeps.h"
#include "signame.h"

#ifndef FRD_LIBDIR
#define FRD_LIBDIR "/usr/local/lib"
#endif

static const char usage_run[] =
    "usage: flightrec run [--dir DIR] [--stall-ms N] [--signal SIG] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD recorded: the flightrec adapter of the event loop it uses is\n"
    "preloaded (libflightrec-uv.so for libuv, libflightrec-event.so for\n"
    "libevent 2.1, read from CMD's ELF dependencies; both when that cannot be\n"
    "known, e.g. for a script), ahead of any LD_PRELOAD already set. CMD keeps\n"
    "flightrec's pid, standard streams and exit status; flightrec prints nothing\n"
    "on standard output and one line on standard error: where dumps go and how\n"
    "to take one (flightrec dump PID). A process CMD execs is recorded only if\n"
    "it links libuv or libevent (not a sh or sleep it runs).\n"
    "\n"
    "  --dir DIR      dump directory, an existing one (FLIGHTREC_DIR; default:\n"
    "                 the FLIGHTREC_DIR already set, else the current directory)\n"
    "  --stall-ms N   FLIGHTREC_STALL_MS: dump when a loop callback runs longer\n"
    "                 than N ms (0: off)\n"
    "  --signal SIG   the dump signal (FLIGHTREC_SIGNAL): USR2, RTMIN+3, a\n"
    "                 number, or none; default: a FLIGHTREC_SIGNAL already set,\n"
    "                 else auto (USR1, moved to a free signal if CMD catches it)\n"
    "\n"
    "environment: FLIGHTREC_ADAPTER_DIR, a directory searched for the adapters\n"
    "before the build tree and the installed library directory\n"
    "\n"
    "exit status: CMD's; 127 CMD or an adapter it needs was not found, 126 CMD\n"
    "could not be executed; 2 usage error\n";

/* The directory holding this executable, from /proc/self/exe. */
static int self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * find_adapter - the absolute path of adapter @file into @out. @tried
 * collects the directories looked at, for the message when none has it.
 * Return: 0 found, -1 not found.
 */
static int find_adapter(const char *file, char *out, size_t len, char *tried, size_t tlen)
{
    char dirs[3][PATH_MAX];
    int nd = 0;
    const char *env = getenv("FLIGHTREC_ADAPTER_DIR");
    if (env && *env)
        snprintf(dirs[nd++], PATH_MAX, "%s", env);
    char self[PATH_MAX], build[PATH_MAX + 32];
    if (self_dir(self, sizeof(self)) == 0 &&
        snprintf(build, sizeof(build), "%s/../recorder/adapters", self) < (int)sizeof(build) &&
        realpath(build, dirs[nd]))
        nd++;
    snprintf(dirs[nd++], PATH_MAX, "%s", FRD_LIBDIR);
    tried[0] = 0;
    for (int i = 0; i < nd; i++) {
        char path[PATH_MAX + 64];
        if (snprintf(path, sizeof(path), "%s/%s", dirs[i], file) >= (int)sizeof(path))
            continue;
        size_t t = strlen(tried);
        if (t + 2 < tlen)
            snprintf(tried + t, tlen - t, "%s%.*s", t ? ", " : "", (int)(tlen - t - 3), dirs[i]);
        char real[PATH_MAX];
        if (is_regular(path) && realpath(path, real) && strlen(real) < len) {
            memcpy(out, real, strlen(real) + 1);
            return 0;
        }
    }
    return -1;
}

/*
 * Find @cmd as execvp would: as given when it holds a slash, else in each
 * PATH directory. Return: 0 found (@out), 126 found but not executable,
 * 127 not found.
 */
static int find_command(const char *cmd, char *out, size_t len)
{
    if (!cmd || !*cmd)
        return 127;
    if (strchr(cmd, '/')) {
        snprintf(out, len, "%s", cmd);
        struct stat st;
        if (stat(cmd, &st) != 0)
            return 127;
        return S_ISREG(st.st_mode) && access(cmd, X_OK) == 0 ? 0 : 126;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/bin:/usr/bin";
    int denied = 0;
    for (const char *s = path;;) {
        size_t n = strcspn(s, ":");
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof(cand), "%.*s%s%s", (int)n, n ? s : ".", "/", cmd) <
            (int)sizeof(cand)) {
            if (is_regular(cand)) {
                if (access(cand, X_OK) == 0) {
                    snprintf(out, len, "%s", cand);
                    return 0;
                }
                if (!denied)
                    snprintf(out, len, "%s", cand);
                denied = 1;
            }
        }
        if (!s[n])
            break;
        s += n + 1;
    }
    return denied ? 126 : 127;
}

/* LD_PRELOAD splits on spaces and colons: such a path cannot be preloaded. */
static int preloadable(const char *path)
{
    return !strpbrk(path, ": \t\n");
}

int frd_cmd_run(int argc, char **argv)
{
    const char *dir = NULL, *stall = NULL, *sig = NULL;
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_run, stdout);
            return 0;
        }
        if (a[0] != '-')
            break; /* the command, without "--" */
        if (strcmp(a, "--dir") != 0 && strcmp(a, "--stall-ms") != 0 && strcmp(a, "--signal") != 0)
            return frd_usage_error(usage_run, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return frd_usage_error(usage_run, "option '%s' needs a value", a);
        const char *val = argv[++i];
        if (strcmp(a, "--dir") == 0) {
            dir = val;
        } else if (strcmp(a, "--stall-ms") == 0) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-' || val[0] == '+' ||
                val[0] == ' ' || n > 3600000)
                return frd_usage_error(usage_run,
                                       "bad value '%s' for --stall-ms (0 to 3600000)", val);
            stall = val;
        } else {
            int s = strcmp(val, "none") == 0 || strcmp(val, "auto") == 0 ? 0
                                                                        : frd_signal_parse(val);
            if (s < 0)
                return frd_usage_error(usage_run, "bad value '%s' for --signal", val);
            if (s > 0 && !frd_signal_dumpable(s))
                return frd_usage_error(usage_run, "--signal %s cannot be a dump signal (it "
                                       "cannot be caught, or the crash handler takes it)", val);
            sig = val;
        }
    }
    if (i >= argc)
        return frd_usage_error(usage_run, "%s", "missing CMD to run");
    char **cmd = argv + i;

    char absdir[PATH_MAX];
    if (dir) {
        struct stat st;
        if (!*dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || !realpath(dir, absdir))
            return frd_usage_error(usage_run, "--dir '%s' is not an existing directory", dir);
        if (access(absdir, W_OK | X_OK) != 0)
            return frd_usage_error(usage_run, "--dir '%s' is not writable", dir);
    }

    char exe[PATH_MAX];
    int fr = find_command(cmd[0], exe, sizeof(exe));
    if (fr) {
        fprintf(stderr, "flightrec: run: %s: %s\n", cmd[0],
                fr == 127 ? (strchr(cmd[0], '/') ? "no such file" : "command not found")
                          : "not an executable file");
        return fr;
    }

    /* which adapters */
    struct frd_deps deps;
    const char *llp = getenv("LD_LIBRARY_PATH");
    frd_elf_deps(exe, llp, &deps);
    unsigned want = deps.found;
    const char *why;
    char whybuf[128];
    int unsure = 0;
    if (deps.kind != FRD_EXE_DYNAMIC || !want) {
        unsure = 1;
        want = FRD_DEP_UV | FRD_DEP_EVENT;
        why = deps.kind == FRD_EXE_SCRIPT   ? "a script: its interpreter decides which loop"
            : deps.kind == FRD_EXE_STATIC   ? "statically linked: LD_PRELOAD cannot reach it"
            : deps.kind == FRD_EXE_FOREIGN  ? "an ELF of another class or machine"
            : deps.kind == FRD_EXE_OTHER    ? "not an ELF file"
                                            : "it links neither libuv nor libevent, it may load "
                                              "one later; if it never does (a loop of its own, "
                                              "like redis's), no task is recorded";
    } else {
        snprintf(whybuf, sizeof(whybuf), "it loads %s%s%s", want & FRD_DEP_UV ? "libuv" : "",
                 want == (FRD_DEP_UV | FRD_DEP_EVENT) ? " and " : "",
                 want & FRD_DEP_EVENT ? "libevent" : "");
        why = whybuf;
    }
    static const struct {
        unsigned dep;
        const char *file;
    } adapters[] = {{FRD_DEP_UV, "libflightrec-uv.so"}, {FRD_DEP_EVENT, "libflightrec-event.so"}};
    char paths[2][PATH_MAX], missing[64] = "", tried[4 * PATH_MAX];
    int have[2] = {0, 0}, nhave = 0;
    for (int k = 0; k < 2; k++) {
        if (!(want & adapters[k].dep))
            continue;
        if (find_adapter(adapters[k].file, paths[k], sizeof(paths[k]), tried, sizeof(tried))) {
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     missing[0] ? " and " : "", adapters[k].file);
            if (!unsure) {
                fprintf(stderr, "flightrec: run: %s not found (looked in %s): build or install "
                                "flightrec's adapters\n", adapters[k].file, tried);
                return 127;
            }
            continue;
        }
        if (!preloadable(paths[k])) {
            fprintf(stderr, "flightrec: run: %s: LD_PRELOAD cannot hold a path with a colon or "
                            "a space; set FLIGHTREC_ADAPTER_DIR to a plain one\n", paths[k]);
            return 127;
        }
        have[k] = 1;
        nhave++;
    }
    if (!nhave) {
        fprintf(stderr, "flightrec: run: %s%s%s found (looked in %s): build or install "
                        "flightrec's adapters\n", strstr(missing, " and ") ? "neither " : "",
                strstr(missing, " and ") ? "libflightrec-uv.so nor libflightrec-event.so"
                                         : missing,
                strstr(missing, " and ") ? "" : " not", tried);
        return 127;
    }
    if (missing[0])
        fprintf(stderr, "flightrec: run: %s not found (looked in %s); running without it\n",
                missing, tried);

    /* the environment CMD runs with */
    size_t cap = 3 * PATH_MAX + 2;
    const char *old = getenv("LD_PRELOAD");
    cap += old ? strlen(old) : 0;
    char *preload = malloc(cap);
    if (!preload) {
        fputs("flightrec: out of memory\n", stderr);
        return 127;
    }
    preload[0] = 0;
    for (int k = 0; k < 2; k++)
        if (have[k])
            snprintf(preload + strlen(preload), cap - strlen(preload), "%s%s",
                     preload[0] ? ":" : "", paths[k]);
    if (old && *old)
        snprintf(preload + strlen(preload), cap - strlen(preload), ":%s", old);
    const char *cur_sig = getenv("FLIGHTREC_SIGNAL");
    /* the process recorded: CMD, which keeps this pid; what it execs under
     * another pid inherits LD_PRELOAD but records only if it runs a loop the
     * adapters know (recorder/adapters/common.c, fra_start) */
    char runpid[24];
    snprintf(runpid, sizeof(runpid), "%ld", (long)getpid());
    if (setenv("LD_PRELOAD", preload, 1) || setenv("FLIGHTREC_RUN_PID", runpid, 1) ||
        (dir && setenv("FLIGHTREC_DIR", absdir, 1)) ||
        (stall && setenv("FLIGHTREC_STALL_MS", stall, 1)) ||
        setenv("FLIGHTREC_SIGNAL", sig ? sig : cur_sig && *cur_sig ? cur_sig : "auto", 1)) {
        fprintf(stderr, "flightrec: run: setting the environment: %s\n", strerror(errno));
        free(preload);
        return 127;
    }

    char where[PATH_MAX];
    const char *envdir = getenv("FLIGHTREC_DIR");
    if (envdir && *envdir)
        snprintf(where, sizeof(where), "%s", envdir);
    else if (!getcwd(where, sizeof(where)))
        snprintf(where, sizeof(where), "the current directory");
    char names[80];
    snprintf(names, sizeof(names), "%s%s%s", have[0] ? "libflightrec-uv.so" : "",
             have[0] && have[1] ? " and " : "", have[1] ? "libflightrec-event.so" : "");
    fprintf(stderr, "flightrec: recording %s (pid %ld) with %s (%s); dumps go to %s; take one "
                    "with: flightrec dump %ld\n",
            cmd[0], (long)getpid(), names, why, where, (long)getpid());
    if (deps.kind == FRD_EXE_STATIC)
        fprintf(stderr, "flightrec: run: %s is statically linked: no adapter can be loaded "
                        "into it, it runs unrecorded\n", exe);
    fflush(stderr);
    free(preload);

    execv(exe, cmd);
    int e = errno;
    if (e == ENOEXEC) {
        /* no "#!" and not ELF: a shell script, as execvp and the shell run it */
        int n = 0;
        while (cmd[n])
            n++;
        char **sh = calloc((size_t)n + 2, sizeof(*sh));
        if (sh) {
            sh[0] = "/bin/sh";
            sh[1] = exe;
            for (int k = 1; k < n; k++)
                sh[k + 1] = cmd[k];
            execv("/bin/sh", sh);
            e = errno;
            free(sh);
        }
    }
    fprintf(stderr, "flightrec: run: cannot execute %s: %s\n", exe, strerror(e));
    return e == ENOENT ? 127 : 126;
}
