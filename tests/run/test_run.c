/*
 * tests/run/test_run.c - `flightrec run -- CMD`: the adapters it preloads
 * for a program linked against libuv (directly and one library down), one
 * against libevent, one against neither and a script (both), LD_PRELOAD
 * prepended, the recorder's environment, and CMD keeping flightrec's pid,
 * standard output and exit status (a code, a death by signal). The adapters
 * are stand-ins (probe/) found through FLIGHTREC_ADAPTER_DIR, except in the
 * last test, which uses the build tree's real ones.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "scenario.h"

struct run {
    pid_t pid;  /* flightrec's pid, so CMD's */
    int status; /* raw wait status */
    char *out, *err;
};

/*
 * Run `flightrec run OPTS... -- ARGS...` (@argv: everything after "run")
 * with @env ("NAME=value" to set, "NAME" to unset; NULL-terminated) applied
 * on top of this process's environment.
 */
/* Under ASan (tools/sanitize) a preloaded instrumented library comes before
 * the ASan runtime: allowed, it changes nothing here. */
static void allow_preload_before_asan(void)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
}

static void run_cli(struct run *r, const char *const *argv, const char *const *env)
{
    char o[600], e[600];
    snprintf(o, sizeof(o), "%s/run.out", th_tmpdir());
    snprintf(e, sizeof(e), "%s/run.err", th_tmpdir());
    const char *args[64] = {FLIGHTREC_CLI, "run"};
    int n = 2;
    for (; argv[n - 2] && n < 63; n++)
        args[n] = argv[n - 2];
    args[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        unsetenv("FLIGHTREC_DIR");
        unsetenv("FLIGHTREC_SIGNAL");
        unsetenv("FLIGHTREC_STALL_MS");
        unsetenv("LD_PRELOAD");
        setenv("FLIGHTREC_ADAPTER_DIR", PROBE_DIR, 1);
        allow_preload_before_asan();
        for (int i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq) {
                unsetenv(env[i]);
                continue;
            }
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        }
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(120);
        execv(FLIGHTREC_CLI, (char **)args);
        _exit(121);
    }
    r->pid = pid;
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
    r->out = th_read_file(o, NULL);
    r->err = th_read_file(e, NULL);
}

/* The value of "NAME=" on its own line of the program's report, or NULL. */
static char *field(const char *out, const char *name)
{
    static char buf[4096];
    size_t n = strlen(name);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, name, n) == 0 && l[n] == '=') {
            size_t len = strcspn(l + n + 1, "\n");
            snprintf(buf, sizeof(buf), "%.*s", (int)len, l + n + 1);
            return buf;
        }
    }
    return NULL;
}

static int exited(const struct run *r, int code)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

/* The program's report is all there is on stdout, and it ran as our child. */
static void check_clean(const struct run *r, const char *prog)
{
    cr_assert(exited(r, 0), "%s: status %#x, stderr: %s", prog, r->status, r->err);
    char want[64];
    snprintf(want, sizeof(want), "pid=%ld\n", (long)r->pid);
    cr_assert(strncmp(r->out, want, strlen(want)) == 0,
              "%s: stdout must start with the program's own %s, got: %s", prog, want, r->out);
    const char *keys[] = {"pid=", "LD_PRELOAD=", "FLIGHTREC_DIR=", "FLIGHTREC_STALL_MS=",
                          "FLIGHTREC_SIGNAL=", "mapped="};
    int lines = 0;
    for (const char *l = r->out; *l; l = strchr(l, '\n') + 1, lines++) {
        cr_assert_not_null(strchr(l, '\n'), "%s: unterminated line on stdout: %s", prog, l);
        cr_assert_lt(lines, 6, "%s: more on stdout than the program wrote: %s", prog, r->out);
        cr_assert(strncmp(l, keys[lines], strlen(keys[lines])) == 0,
                  "%s: line %d of stdout is not the program's: %s", prog, lines, r->out);
    }
    cr_assert_eq(lines, 6, "%s: stdout: %s", prog, r->out);
    /* one line on stderr, naming the pid to dump */
    char dump[64];
    snprintf(dump, sizeof(dump), "flightrec dump %ld", (long)r->pid);
    cr_assert_not_null(strstr(r->err, dump), "%s: stderr: %s", prog, r->err);
}

static void need(const char *prog, const char *what)
{
    if (prog[0])
        return;
    if (getenv("FLIGHTREC_TOOLS_TEST"))
        cr_assert_fail("%s is not installed: tools/bootstrap should have installed it", what);
    cr_skip_test("%s is not installed", what);
}

static void expect_choice(const char *prog, const char *preload, const char *mapped)
{
    struct run r;
    const char *argv[] = {"--", prog, NULL};
    run_cli(&r, argv, NULL);
    check_clean(&r, prog);
    char want[PATH_MAX * 2] = "";
    if (strstr(preload, "uv"))
        snprintf(want, sizeof(want), "%s/libflightrec-uv.so", PROBE_DIR);
    if (strstr(preload, "event"))
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s/libflightrec-event.so",
                 want[0] ? ":" : "", PROBE_DIR);
    cr_assert_str_eq(field(r.out, "LD_PRELOAD"), want, "%s", prog);
    cr_assert_str_eq(field(r.out, "mapped"), mapped, "%s", prog);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_SIGNAL"), "auto", "%s", prog);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_DIR"), "(unset)", "%s", prog);
    free(r.out);
    free(r.err);
}

Test(run, libuv_program_gets_the_uv_adapter_only)
{
    need(PROG_UV, "libuv (libuv1-dev)");
    expect_choice(PROG_UV, "uv", "uv,");
}

Test(run, libuv_one_library_down_gets_the_uv_adapter)
{
    need(PROG_CHAIN, "libuv (libuv1-dev)");
    expect_choice(PROG_CHAIN, "uv", "uv,");
}

Test(run, libevent_program_gets_the_event_adapter_only)
{
    need(PROG_EVENT, "libevent (libevent-dev)");
    expect_choice(PROG_EVENT, "event", "event,");
}

Test(run, program_with_neither_gets_both)
{
    expect_choice(PROG_PLAIN, "uv,event", "uv,event,");
    /* and says what a program with a loop of its own (redis) gets */
    struct run r;
    const char *argv[] = {"--", PROG_PLAIN, NULL};
    run_cli(&r, argv, NULL);
    cr_assert_not_null(strstr(r.err, "if it never does (a loop of its own, like redis's), no "
                                     "task is recorded"), "%s", r.err);
    free(r.out);
    free(r.err);
}

Test(run, static_program_gets_both_and_a_warning)
{
    if (!PROG_STATIC[0])
        cr_skip_test("no static build here (a sanitizer build, or no libc.a)");
    struct run r;
    const char *argv[] = {"--", PROG_STATIC, NULL};
    run_cli(&r, argv, NULL);
    check_clean(&r, PROG_STATIC);
    char want[PATH_MAX * 2];
    snprintf(want, sizeof(want), "%s/libflightrec-uv.so:%s/libflightrec-event.so", PROBE_DIR,
             PROBE_DIR);
    cr_assert_str_eq(field(r.out, "LD_PRELOAD"), want);
    cr_assert_str_eq(field(r.out, "mapped"), "", "nothing can be preloaded into it");
    cr_assert_not_null(strstr(r.err, "statically linked"), "%s", r.err);
}

Test(run, script_gets_both)
{
    expect_choice(PROG_SCRIPT, "uv,event", "uv,event,");
}

Test(run, found_on_path_like_a_shell)
{
    /* "sh" found on PATH is an ELF linking neither loop: both */
    struct run r;
    const char *argv[] = {"--", "sh", "-c", "echo \"LD_PRELOAD=$LD_PRELOAD\"", NULL};
    run_cli(&r, argv, NULL);
    cr_assert(exited(&r, 0), "%s", r.err);
    char want[PATH_MAX * 2];
    snprintf(want, sizeof(want), "LD_PRELOAD=%s/libflightrec-uv.so:%s/libflightrec-event.so\n",
             PROBE_DIR, PROBE_DIR);
    cr_assert_str_eq(r.out, want);
}

Test(run, ld_preload_already_set_is_kept_after_the_adapters)
{
    char old[PATH_MAX + 32];
    /* a library that exists, so the loader maps it and says nothing */
    snprintf(old, sizeof(old), "LD_PRELOAD=%s/libflightrec-event.so", PROBE_DIR);
    const char *env[] = {old, NULL};
    struct run r;
    const char *argv[] = {"--", PROG_PLAIN, NULL};
    run_cli(&r, argv, env);
    check_clean(&r, PROG_PLAIN);
    char want[PATH_MAX * 3];
    snprintf(want, sizeof(want), "%s/libflightrec-uv.so:%s/libflightrec-event.so:%s", PROBE_DIR,
             PROBE_DIR, old + strlen("LD_PRELOAD="));
    cr_assert_str_eq(field(r.out, "LD_PRELOAD"), want);
}

Test(run, options_set_the_recorder_environment)
{
    char dir[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/dumps", th_tmpdir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_not_null(realpath(dir, real));
    struct run r;
    const char *argv[] = {"--dir", dir, "--stall-ms", "250", "--signal", "RTMIN+3", "--",
                          PROG_PLAIN, NULL};
    run_cli(&r, argv, NULL);
    check_clean(&r, PROG_PLAIN);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_DIR"), real);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_STALL_MS"), "250");
    cr_assert_str_eq(field(r.out, "FLIGHTREC_SIGNAL"), "RTMIN+3");
    cr_assert_not_null(strstr(r.err, real), "stderr names the dump directory: %s", r.err);
    free(r.out);
    free(r.err);

    /* a FLIGHTREC_SIGNAL the user already set is kept; --signal overrides it */
    const char *env[] = {"FLIGHTREC_SIGNAL=USR2", NULL};
    const char *argv2[] = {"--", PROG_PLAIN, NULL};
    run_cli(&r, argv2, env);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_SIGNAL"), "USR2");
    const char *argv3[] = {"--signal", "none", PROG_PLAIN, NULL}; /* no "--" is fine too */
    run_cli(&r, argv3, env);
    check_clean(&r, PROG_PLAIN);
    cr_assert_str_eq(field(r.out, "FLIGHTREC_SIGNAL"), "none");
}

Test(run, exit_status_and_death_by_signal_pass_through)
{
    const char *progs[] = {PROG_PLAIN, PROG_SCRIPT};
    for (int i = 0; i < 2; i++) {
        struct run r;
        const char *argv[] = {"--", progs[i], "exit", "7", NULL};
        run_cli(&r, argv, NULL);
        cr_assert(exited(&r, 7), "%s: status %#x", progs[i], r.status);
        const char *argv2[] = {"--", progs[i], "kill", "15", NULL};
        run_cli(&r, argv2, NULL);
        cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGTERM, "%s: status %#x",
                  progs[i], r.status);
        char want[64];
        snprintf(want, sizeof(want), "pid=%ld\n", (long)r.pid);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
    }
}

Test(run, standard_input_passes_through)
{
    char in[PATH_MAX];
    snprintf(in, sizeof(in), "%s/stdin.txt", th_tmpdir());
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    fputs("hello from stdin\n", f);
    fclose(f);
    int fd = open(in, O_RDONLY);
    int saved = dup(0);
    cr_assert(fd >= 0 && saved >= 0 && dup2(fd, 0) == 0);
    struct run r;
    const char *argv[] = {"--", "cat", NULL};
    run_cli(&r, argv, NULL);
    dup2(saved, 0);
    cr_assert(exited(&r, 0), "%s", r.err);
    cr_assert_str_eq(r.out, "hello from stdin\n");
}

Test(run, usage_errors_and_commands_that_cannot_run)
{
    struct {
        const char *argv[8];
        int code;
        const char *says;
    } cases[] = {
        {{NULL}, 2, "missing CMD"},
        {{"--", NULL}, 2, "missing CMD"},
        {{"--bogus", "--", "true", NULL}, 2, "unknown option"},
        {{"--stall-ms", "-1", "--", "true", NULL}, 2, "--stall-ms"},
        {{"--stall-ms", "9999999", "--", "true", NULL}, 2, "--stall-ms"},
        {{"--signal", "KILL", "--", "true", NULL}, 2, "KILL"},
        {{"--signal", "SEGV", "--", "true", NULL}, 2, "SEGV"},
        {{"--signal", "RTMIN+99", "--", "true", NULL}, 2, "RTMIN+99"},
        {{"--dir", "/nonexistent/dir", "--", "true", NULL}, 2, "/nonexistent/dir"},
        {{"--dir", NULL}, 2, "needs a value"},
        {{"--", "/nonexistent/program", NULL}, 127, "/nonexistent/program"},
        {{"--", "no-such-command-flightrec", NULL}, 127, "command not found"},
        {{"--", "/", NULL}, 126, "not an executable"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct run r;
        run_cli(&r, cases[i].argv, NULL);
        cr_assert(exited(&r, cases[i].code), "case %zu: status %#x, stderr %s", i, r.status,
                  r.err);
        cr_assert_str_eq(r.out, "", "case %zu: stdout", i);
        cr_assert_not_null(strstr(r.err, cases[i].says), "case %zu: %s", i, r.err);
        free(r.out);
        free(r.err);
    }
    struct run h;
    const char *help[] = {"--help", NULL};
    run_cli(&h, help, NULL);
    cr_assert(exited(&h, 0));
    cr_assert_not_null(strstr(h.out, "usage: flightrec run"), "%s", h.out);
    /* a needed adapter missing is an error, not a silent unrecorded run */
    if (PROG_UV[0]) {
        struct run r;
        const char *env[] = {"FLIGHTREC_ADAPTER_DIR=/nonexistent", NULL};
        const char *argv[] = {"--", PROG_UV, NULL};
        /* the build tree's real adapters may exist: only the probe dir is hidden */
        run_cli(&r, argv, env);
        struct stat st;
        char real[PATH_MAX + 32];
        snprintf(real, sizeof(real), "%s/libflightrec-uv.so", REAL_ADAPTER_DIR);
        if (stat(real, &st) != 0) {
            cr_assert(exited(&r, 127), "status %#x", r.status);
            cr_assert_not_null(strstr(r.err, "libflightrec-uv.so not found"), "%s", r.err);
            cr_assert_str_eq(r.out, "");
        }
    }
}

/* The build tree's real adapters, found next to the flightrec binary. */
Test(run, real_adapters_from_the_build_tree)
{
    char uv[PATH_MAX + 32], ev[PATH_MAX + 32];
    snprintf(uv, sizeof(uv), "%s/libflightrec-uv.so", REAL_ADAPTER_DIR);
    snprintf(ev, sizeof(ev), "%s/libflightrec-event.so", REAL_ADAPTER_DIR);
    struct stat st;
    if (stat(uv, &st) != 0 || stat(ev, &st) != 0)
        cr_skip_test("the adapters are not built in %s", REAL_ADAPTER_DIR);
    const char *env[] = {"FLIGHTREC_ADAPTER_DIR", NULL};
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/real", th_tmpdir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    struct run r;
    const char *argv[] = {"--dir", dir, "--", PROG_PLAIN, NULL};
    run_cli(&r, argv, env);
    check_clean(&r, PROG_PLAIN);
    cr_assert_str_eq(field(r.out, "mapped"), "uv,event,");
}

/* Skips the test, saying why, without the build tree's libuv adapter or the
 * libuv test program. */
static void need_real_uv_adapter(void)
{
    char uv[PATH_MAX + 32];
    snprintf(uv, sizeof(uv), "%s/libflightrec-uv.so", REAL_ADAPTER_DIR);
    struct stat st;
    if (stat(uv, &st) != 0)
        cr_skip_test("the libuv adapter is not built in %s", REAL_ADAPTER_DIR);
    need(PROG_UV, "libuv (libuv1-dev)");
}

/*
 * What CMD execs inherits LD_PRELOAD, but only a process that runs a loop
 * the adapters know is recorded: /bin/sleep keeps its one thread and dies of
 * SIGUSR1 as it would; a libuv child of CMD is recorded (its threads include
 * the recorder's).
 */
Test(run, a_child_that_runs_no_loop_is_not_recorded, .timeout = 60)
{
    need_real_uv_adapter();
    const char *env[] = {"FLIGHTREC_ADAPTER_DIR", NULL};
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/children", th_tmpdir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    struct run r;
    const char *argv[] = {"--dir", dir, "--", PROG_UV, "children", NULL};
    run_cli(&r, argv, env);
    cr_assert(exited(&r, 0), "status 0x%x: %s", r.status, r.err);
    char *v = field(r.out, "plain_child_threads");
    cr_assert(v && strcmp(v, "1") == 0, "sleep's threads: %s\n%s", v ? v : "none", r.out);
    v = field(r.out, "plain_child_signal");
    cr_assert(v && atoi(v) == SIGUSR1, "sleep ended by signal %s\n%s", v ? v : "none", r.out);
    v = field(r.out, "uv_child_threads");
    cr_assert(v && atoi(v) >= 3, "the libuv child's threads: %s\n%s", v ? v : "none", r.out);
}

/*
 * The whole path with the build tree's real libuv adapter: `flightrec run`
 * a libuv program, `flightrec dump PID` (the signal learned from the
 * process), and the dump's task for its timer named after the callback.
 */
Test(run, real_uv_adapter_run_dump_and_symbols, .timeout = 60)
{
    need_real_uv_adapter();
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/uvdumps", th_tmpdir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        unsetenv("FLIGHTREC_ADAPTER_DIR");
        unsetenv("FLIGHTREC_SIGNAL");
        unsetenv("LD_PRELOAD");
        allow_preload_before_asan();
        dup2(out[1], 1);
        close(out[0]);
        execl(FLIGHTREC_CLI, FLIGHTREC_CLI, "run", "--dir", dir, "--", PROG_UV, "serve", "20",
              (char *)NULL);
        _exit(121);
    }
    close(out[1]);
    char line[64] = "";
    FILE *f = fdopen(out[0], "r");
    cr_assert_not_null(fgets(line, sizeof(line), f), "the program never served");
    cr_assert_str_eq(line, "serving\n");

    char args[PATH_MAX + 64], *dout, *derr;
    snprintf(args, sizeof(args), "dump %d --timeout 20", (int)pid);
    int st_dump = sc_cli(args, &dout, &derr);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    fclose(f);
    cr_assert_eq(st_dump, 0, "%s", derr);
    char *nl = strchr(dout, '\n');
    if (nl)
        *nl = 0;
    cr_assert_eq(strncmp(dout, dir, strlen(dir)), 0, "the dump is in --dir: %s", dout);
    snprintf(args, sizeof(args), "tasks '%s' --json", dout);
    char *tout, *terr;
    cr_assert_eq(sc_cli(args, &tout, &terr), 0, "%s", terr);
    cr_assert_not_null(strstr(tout, "on_tick"), "the timer's task names its callback: %s", tout);
    cr_assert_null(strstr(tout, "@0x"), "no address left unresolved: %s", tout);
}
