/*
 * test_hosts.c - the recorder inside real hosts: a crash on any thread is
 * dumped, and nothing of the host is disturbed. One group per kind of host
 * behaviour (issue 16):
 *
 *   1 stacks       a thread's own 8 KiB alternate stack; a thread that never
 *                  called a hook
 *   2 signals      an earlier SIGSEGV handler that resolves faults (a GC
 *                  barrier); a plugin dlclose()d with the recorder inside
 *   3 waits        the loader's lock held while the crash is unwound
 *   4 resources    no free descriptors; a chroot to a tree of the same path
 *   5 descriptors  a daemon that closes every descriptor >= 3 after fr_init
 *   6 files        two pid 1s in one directory, retention, leftovers
 *   8 output       a sent signal shows its sender; info says what it knows
 *
 * Each case runs in its own forked child (core dumps off); the test checks
 * the child's exact end (exit status or signal), the host's own handlers and
 * files, and the dump.
 */

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"

#define TASK 0x7a5c
static const char *dump_dir;

static int init_rec(unsigned flags)
{
    struct fr_config cfg = { .dump_dir = dump_dir, .flags = flags };
    return fr_init(&cfg);
}

static struct frd_dump *the_crash_dump(int signo)
{
    return th_the_crash_dump(dump_dir, signo);
}

static void assert_died_of(int st, int signo, const char *what)
{
    cr_assert(WIFSIGNALED(st), "%s: exited with %d instead of dying of %d", what,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, signo);
    cr_assert_eq(WTERMSIG(st), signo, "%s: died of %d, want %d", what, WTERMSIG(st), signo);
}

static void assert_backtrace_reaches(const struct frd_dump *d, void *fnp)
{
    uintptr_t fn = (uintptr_t)fnp;
    int found = 0;
    for (uint32_t i = 0; i < d->crash.nframes; i++)
        if (d->crash.frames[i] >= fn && d->crash.frames[i] < fn + 4096)
            found = 1;
    cr_assert(found, "no frame in the crashing function %p (%u frames)", (void *)fn,
              d->crash.nframes);
}

static const char *notes(const struct frd_dump *d, char *buf, size_t cap)
{
    size_t n = d->notes.p ? d->notes.len : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, d->notes.p ? d->notes.p : "", n);
    buf[n] = '\0';
    return buf;
}

/* `flightrec ARGS DUMP` with stderr, in a malloc'ed string. */
static char *cli(const char *args, const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' 2>&1", FLIGHTREC_CLI, args, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += r;
    out[len] = '\0';
    pclose(p);
    return out;
}

/* ==== 1. the crash handler's stack ======================================= */

/* 8 KiB with a guard page below it, as a runtime maps its signal stacks:
 * a handler that needs more faults instead of scribbling on memory. */
static char *small_stack;

static void *small_altstack_thread(void *arg)
{
    int overflow = (int)(intptr_t)arg;
    char *m = mmap(NULL, 4096 + 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE) != 0)
        _exit(19);
    small_stack = m + 4096;
    stack_t ss = { .ss_sp = small_stack, .ss_size = 8192, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        _exit(20);
    fr_spawn(TASK, 0, "small-altstack");
    fr_poll_begin(TASK);
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || cur.ss_sp != small_stack)
        _exit(21); /* the program's own stack must be left in place */
    if (overflow)
        th_crash_recurse(0);
    else
        th_crash_null();
    return NULL;
}

static int run_small_altstack(void *arg)
{
    if (init_rec(0) != 0)
        return 10;
    pthread_t t;
    pthread_create(&t, NULL, small_altstack_thread, arg);
    pthread_join(t, NULL);
    return 11;
}

Test(stacks, thread_with_its_own_8k_altstack_null_deref, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_small_altstack, (void *)0);
    assert_died_of(st, SIGSEGV, "null dereference on an 8 KiB altstack");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_eq(d->crash.task, TASK);
    cr_assert_eq(d->crash.frames[0], d->crash.ip);
    assert_backtrace_reaches(d, (void *)th_crash_null);
    frd_close(d);
}

Test(stacks, thread_with_its_own_8k_altstack_stack_overflow, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_small_altstack, (void *)1);
    assert_died_of(st, SIGSEGV, "stack overflow on an 8 KiB altstack");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_eq(d->crash.task, TASK);
    assert_backtrace_reaches(d, (void *)th_crash_recurse);
    frd_close(d);
}

static void *hookless_thread(void *arg)
{
    (void)arg;
    th_crash_null(); /* never called a hook: no ring, no altstack of ours */
    return NULL;
}

static int run_hookless(void *arg)
{
    (void)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "main");
    pthread_t t;
    pthread_create(&t, NULL, hookless_thread, NULL);
    pthread_join(t, NULL);
    return 11;
}

Test(stacks, thread_that_never_called_a_hook, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_hookless, NULL);
    assert_died_of(st, SIGSEGV, "null dereference on a thread without hooks");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_null(th_thread(d, d->crash.tid), "a ring for a thread that never recorded");
    cr_assert_eq(d->crash.task, 0);
    assert_backtrace_reaches(d, (void *)th_crash_null);
    char paths[1][512];
    th_list_dumps(dump_dir, paths, 1);
    frd_close(d);
    /* info says what it does not know rather than "no task was polled" */
    char *out = cli("info", paths[0]);
    cr_assert_not_null(strstr(out, "no ring in the dump"), "%s", out);
    cr_assert_not_null(strstr(out, "task      unknown"), "%s", out);
    free(out);
}

/* ==== 2. other users of signals ========================================== */

/* A garbage collector's write barrier: faults on its protected page are
 * resolved by unprotecting it; any other fault is not its business, and it
 * gives the signal up as such handlers do (SIG_DFL, or abort()). */
static char *gc_page;
static volatile int gc_resolved, gc_gave_up, gc_abort_on_unknown;

static void gc_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char *a = si->si_addr;
    if (a >= gc_page && a < gc_page + 4096) {
        mprotect(gc_page, 4096, PROT_READ | PROT_WRITE);
        gc_resolved++;
        return;
    }
    gc_gave_up++;
    if (gc_abort_on_unknown)
        abort();
    signal(sig, SIG_DFL);
}

static int run_gc(void *arg)
{
    unsigned flags = (unsigned)(uintptr_t)arg;
    gc_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = gc_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (init_rec(flags) != 0)
        return 10;
    fr_spawn(TASK, 0, "mutator");
    fr_poll_begin(TASK);
    for (int i = 0; i < 100; i++) {
        mprotect(gc_page, 4096, PROT_READ);
        ((volatile char *)gc_page)[i] = (char)i; /* the barrier: resolved */
    }
    if (gc_resolved != 100)
        return 12;
    char paths[1][512];
    if (th_list_dumps(dump_dir, paths, 1) != 0)
        return 13; /* a false crash dump for a resolved fault */
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction == gc_handler)
        return 14; /* flightrec uninstalled itself */
    th_crash_null(); /* the real crash */
    return 11;
}

Test(signals, earlier_handler_first_resolves_gc_faults_then_real_crash_dumps, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_gc, (void *)(uintptr_t)FR_CHAIN_FIRST);
    cr_assert_not(WIFEXITED(st), "the program exited with %d (12: barrier broken, 13: a false "
                  "dump, 14: uninstalled)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    assert_died_of(st, SIGSEGV, "GC program's real crash");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_eq(d->crash.fault_addr, 0, "the dump is of the real crash (address 0)");
    cr_assert_eq(d->crash.task, TASK);
    assert_backtrace_reaches(d, (void *)th_crash_null);
    frd_close(d);
}

static int run_gc_env(void *arg)
{
    (void)arg;
    setenv("FLIGHTREC_CHAIN_FIRST", "1", 1);
    return run_gc((void *)0);
}

Test(signals, earlier_handler_first_from_the_environment, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_gc_env, NULL);
    assert_died_of(st, SIGSEGV, "GC program, FLIGHTREC_CHAIN_FIRST=1");
    frd_close(the_crash_dump(SIGSEGV));
}

static int run_gc_abort(void *arg)
{
    (void)arg;
    gc_abort_on_unknown = 1;
    return run_gc((void *)(uintptr_t)FR_CHAIN_FIRST);
}

Test(signals, earlier_handler_that_aborts_on_a_real_fault, .timeout = 60)
{
    /* Without flightrec this program dies of SIGABRT from its own handler;
     * with it, too, and the abort is dumped. */
    dump_dir = th_tmpdir();
    int st = th_run_child(run_gc_abort, NULL);
    assert_died_of(st, SIGABRT, "GC handler aborting");
    frd_close(the_crash_dump(SIGABRT));
}

/* A plugin with the recorder inside, dlclose()d: nothing of ours may point
 * into unmapped code afterwards. */
struct plugin_case {
    int shutdown_first;
};

static int run_plugin(void *arg)
{
    const struct plugin_case *c = arg;
    char marker[600];
    snprintf(marker, sizeof marker, "%s/../host-usr1-ran", dump_dir);
    execl(PLUGIN_HOST, PLUGIN_HOST, PLUGIN, dump_dir, c->shutdown_first ? "shutdown" : "noshutdown",
          marker, (char *)NULL);
    return 99;
}

static const char *plugin_setup(char *marker, size_t cap)
{
    const char *base = th_tmpdir();
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/dumps", base);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(marker, cap, "%s/host-usr1-ran", base);
    return dir;
}

Test(signals, plugin_shut_down_and_dlclosed_leaves_the_host_alone, .timeout = 60)
{
    char marker[600];
    dump_dir = plugin_setup(marker, sizeof marker);
    struct plugin_case c = { 1 };
    int st = th_run_child(run_plugin, &c);
    /* the recording thread exited after dlclose, SIGUSR1 reached the host's
     * own handler, abort() died of SIGABRT (not SIGSEGV in unmapped code) */
    cr_assert_not(WIFEXITED(st), "plugin host exited with %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    assert_died_of(st, SIGABRT, "abort() after the plugin was dlclosed");
    cr_assert_eq(access(marker, F_OK), 0, "the host's own SIGUSR1 handler did not run");
    char paths[2][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 2), 0, "a dump after fr_shutdown");
}

Test(signals, plugin_dlclosed_while_recording_keeps_working, .timeout = 60)
{
    char marker[600];
    dump_dir = plugin_setup(marker, sizeof marker);
    struct plugin_case c = { 0 };
    int st = th_run_child(run_plugin, &c);
    cr_assert_not(WIFEXITED(st), "plugin host exited with %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    assert_died_of(st, SIGABRT, "abort() after the plugin was dlclosed while recording");
    cr_assert_eq(access(marker, F_OK), 0, "the host's own SIGUSR1 handler did not run");
    /* the recorder stayed mapped (pinned): the dump signal dumped, the abort too */
    char paths[4][512];
    int n = th_list_dumps(dump_dir, paths, 4);
    cr_assert_eq(n, 2, "%d dumps, want the signal's and the crash's", n);
    int crash = 0, signal_dump = 0;
    for (int i = 0; i < n; i++) {
        struct frd_dump *d = th_open(paths[i]);
        cr_assert(d->have_end);
        crash += d->hdr.trigger == FR_TRIGGER_CRASH && d->crash.signo == SIGABRT;
        signal_dump += d->hdr.trigger == FR_TRIGGER_SIGNAL;
        frd_close(d);
    }
    cr_assert(crash == 1 && signal_dump == 1, "crash %d, signal %d", crash, signal_dump);
}

/* ==== 3. nothing in the handler waits without bound ====================== */

static _Atomic int loader_held;

static int hold_loader_lock(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info, (void)size, (void)arg;
    atomic_store(&loader_held, 1);
    for (;;)
        pause(); /* inside dl_iterate_phdr: the loader's lock is held */
    return 0;
}

static void *loader_holder(void *arg)
{
    (void)arg;
    dl_iterate_phdr(hold_loader_lock, NULL);
    return NULL;
}

static int run_loader_lock(void *arg)
{
    (void)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "crasher");
    fr_poll_begin(TASK);
    pthread_t t;
    pthread_create(&t, NULL, loader_holder, NULL);
    while (!atomic_load(&loader_held))
        sched_yield();
    th_crash_null();
    return 11;
}

Test(waits, crash_while_another_thread_holds_the_loader_lock, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_loader_lock, NULL);
    assert_died_of(st, SIGSEGV, "crash with the loader's lock held");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_eq(d->crash.task, TASK);
    cr_assert_geq(d->crash.nframes, 1);
    cr_assert_eq(d->crash.frames[0], d->crash.ip, "at least the faulting instruction");
    char buf[2048];
    cr_assert_not_null(strstr(notes(d, buf, sizeof buf), "backtrace cut short"),
                       "the dump does not say the backtrace was cut short: '%s'", buf);
    cr_assert_not_null(th_thread(d, d->crash.tid), "the crashing thread's ring");
    frd_close(d);
}

/* ==== 4. resources at crash time ========================================= */

static void fill_descriptors(int leave_free)
{
    struct rlimit rl = { 64, 64 };
    setrlimit(RLIMIT_NOFILE, &rl);
    int fds[64], n = 0;
    for (int fd; n < 64 && (fd = open("/dev/null", O_RDONLY)) >= 0;)
        fds[n++] = fd;
    for (int i = 0; i < leave_free && n > 0; i++)
        close(fds[--n]);
}

static int run_emfile(void *arg)
{
    int leave_free = (int)(intptr_t)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "crasher");
    fr_poll_begin(TASK);
    fill_descriptors(leave_free);
    if (leave_free == 0 && open("/dev/null", O_RDONLY) >= 0)
        return 12; /* not out of descriptors after all */
    th_crash_null();
    return 11;
}

ParameterizedTestParameters(resources, crash_out_of_descriptors)
{
    static int free_fds[] = { 0, 2, 4 };
    return cr_make_param_array(int, free_fds, 3);
}

ParameterizedTest(int *free_fds, resources, crash_out_of_descriptors, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_emfile, (void *)(intptr_t)*free_fds);
    assert_died_of(st, SIGSEGV, "crash out of descriptors");
    struct frd_dump *d = the_crash_dump(SIGSEGV);
    cr_assert_gt(d->modules.len, 0, "%d free: module map missing", *free_fds);
    assert_backtrace_reaches(d, (void *)th_crash_null);
    cr_assert_gt(d->crash.nframes, 1, "%d free: backtrace of %u frames", *free_fds,
                 d->crash.nframes);
    char buf[2048];
    notes(d, buf, sizeof buf);
    cr_assert_null(strstr(buf, "module map unavailable"), "%s", buf);
    if (*free_fds == 0)
        cr_assert_not_null(strstr(buf, "out of file descriptors"), "notes: '%s'", buf);
    frd_close(d);
}

static int run_emfile_api(void *arg)
{
    (void)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "t");
    fill_descriptors(0);
    char path[1024];
    int rc = fr_dump("emfile", path, sizeof path);
    if (rc != 0)
        return 20 + (-rc % 100);
    rc = fr_dump("emfile again", path, sizeof path); /* the spare was taken back */
    return rc == 0 ? 0 : 30;
}

Test(resources, fr_dump_out_of_descriptors, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_emfile_api, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    char paths[4][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 4), 2);
}

/* A chroot into a tree that has the same path as the dump directory. */
struct chroot_result {
    int rc, step, err;
    char path[1024];
};

static const char *jail;

static int run_chroot(void *arg)
{
    struct chroot_result *r = arg;
    if (geteuid() != 0 && unshare(CLONE_NEWUSER) != 0) {
        r->step = 1, r->err = errno;
        return 0;
    }
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "t");
    if (chroot(jail) != 0 || chdir("/") != 0) {
        r->step = 2, r->err = errno;
        return 0;
    }
    r->step = 3;
    r->rc = fr_dump("in the jail", r->path, sizeof r->path);
    return 0;
}

Test(resources, chroot_to_a_tree_with_the_same_path, .timeout = 60)
{
    const char *base = th_tmpdir();
    static char real[600], jailed[1400], jail_root[600];
    snprintf(real, sizeof real, "%s/dumps", base);
    snprintf(jail_root, sizeof jail_root, "%s/jail", base);
    snprintf(jailed, sizeof jailed, "%s%s", jail_root, real);
    cr_assert_eq(mkdir(real, 0700), 0);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", jailed);
    cr_assert_eq(system(cmd), 0);
    dump_dir = real;
    jail = jail_root;
    struct chroot_result *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int st = th_run_child(run_chroot, r);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    if (r->step < 3)
        cr_skip_test("cannot chroot here (step %d: %s)", r->step, strerror(r->err));
    cr_assert_eq(r->rc, 0, "fr_dump in the jail returned %d", r->rc);
    char paths[2][512];
    cr_assert_eq(th_list_dumps(jailed, paths, 2), 0, "the dump went into the jail");
    cr_assert_eq(th_list_dumps(real, paths, 2), 1, "the dump is not in the real directory");
    /* the path fr_dump gave names that file (seen from outside the jail) */
    cr_assert_str_eq(r->path, paths[0]);
    struct frd_dump *d = th_open(paths[0]);
    char buf[2048];
    cr_assert_not_null(strstr(notes(d, buf, sizeof buf), "no longer leads to it"), "%s", buf);
    frd_close(d);
}

/* ==== 5. descriptors that are no longer ours ============================= */

#define NLOGS 48 /* more than the descriptors flightrec and the test harness hold */
static char log_dir[600];

/* The daemon: closes every descriptor >= 3 after fr_init, opens its own log
 * files (they get the numbers flightrec had) and writes a line to each. */
static int daemonize_and_open_logs(int *fds)
{
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    for (int i = 0; i < NLOGS; i++) {
        char p[700], line[32];
        snprintf(p, sizeof p, "%s/log-%d", log_dir, i);
        fds[i] = open(p, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
        if (fds[i] < 0)
            return -1;
        int n = snprintf(line, sizeof line, "hello %d\n", i);
        if (write(fds[i], line, (size_t)n) != n)
            return -1;
    }
    return 0;
}

/* In the daemon: wait (up to 5 s) until the dump signal's dumps are written:
 * at least one complete dump, no temporary, the count steady for 100 ms. */
static int signal_dumps_settled(void)
{
    int last = -1, steady = 0;
    for (int i = 0; i < 500; i++) {
        DIR *dir = opendir(dump_dir);
        if (!dir)
            return 0;
        int n = 0, tmp = 0;
        struct dirent *e;
        while ((e = readdir(dir))) {
            const char *x = strstr(e->d_name, ".frd");
            n += x && x[4] == '\0';
            tmp += x && x[4] != '\0';
        }
        closedir(dir);
        steady = n >= 1 && tmp == 0 && n == last ? steady + 1 : 0;
        if (steady >= 10)
            return 1;
        last = n;
        usleep(10000);
    }
    return 0;
}

static int run_daemon(void *arg)
{
    int crash = (int)(intptr_t)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "daemon");
    fr_poll_begin(TASK);
    int fds[NLOGS];
    if (daemonize_and_open_logs(fds) != 0)
        return 12;
    for (int i = 0; i < 3; i++) {
        kill(getpid(), SIGUSR1); /* the dump signal holds no descriptor: it still dumps */
        usleep(20000);
    }
    if (!signal_dumps_settled())
        return 16;
    if (crash)
        th_crash_null();
    char path[1024];
    if (fr_dump("after the daemon closed everything", path, sizeof path) != 0)
        return 13;
    fr_shutdown();
    for (int i = 0; i < NLOGS; i++) {
        if (fcntl(fds[i], F_GETFD) < 0)
            return 14; /* fr_shutdown closed one of the program's files */
        if (write(fds[i], "bye\n", 4) != 4)
            return 15;
    }
    return 0;
}

static void assert_logs_untouched(int bye)
{
    for (int i = 0; i < NLOGS; i++) {
        char p[700], want[64];
        snprintf(p, sizeof p, "%s/log-%d", log_dir, i);
        snprintf(want, sizeof want, "hello %d\n%s", i, bye ? "bye\n" : "");
        char *got = th_read_file(p, NULL);
        cr_assert_str_eq(got, want, "the program's log file %d was written into", i);
        free(got);
    }
}

static void daemon_setup(void)
{
    const char *base = th_tmpdir();
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/dumps", base);
    snprintf(log_dir, sizeof log_dir, "%s/logs", base);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(mkdir(log_dir, 0700), 0);
    dump_dir = dir;
}

Test(descriptors, daemon_closes_everything_and_opens_its_logs, .timeout = 60)
{
    daemon_setup();
    int st = th_run_child(run_daemon, (void *)0);
    cr_assert(WIFEXITED(st), "the daemon died (%#x)", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "daemon exit %d (13: fr_dump failed, 14: its file closed, "
                 "15: its file unwritable, 16: no dump from the dump signal)", WEXITSTATUS(st));
    assert_logs_untouched(1);
    char paths[8][512];
    int n = th_list_dumps(dump_dir, paths, 8), api = 0, sig = 0, reopened = 0;
    cr_assert_geq(n, 2, "want the dump signal's dumps and the fr_dump");
    for (int i = 0; i < n; i++) {
        struct frd_dump *d = th_open(paths[i]);
        cr_assert(d->have_end);
        cr_assert_gt(d->modules.len, 0);
        char buf[2048];
        reopened += strstr(notes(d, buf, sizeof buf), "opened again by path") != NULL;
        api += d->hdr.trigger == FR_TRIGGER_API;
        sig += d->hdr.trigger == FR_TRIGGER_SIGNAL;
        frd_close(d);
    }
    cr_assert_eq(api, 1, "fr_dump's dump");
    cr_assert_eq(sig, n - 1, "the others are the dump signal's");
    cr_assert_geq(reopened, 1, "no dump says the directory was opened again by path");
}

Test(descriptors, daemon_closes_everything_then_crashes, .timeout = 60)
{
    daemon_setup();
    int st = th_run_child(run_daemon, (void *)1);
    assert_died_of(st, SIGSEGV, "daemon crash");
    assert_logs_untouched(0);
    char paths[8][512];
    int n = th_list_dumps(dump_dir, paths, 8), crashes = 0;
    cr_assert_geq(n, 2, "want the dump signal's dumps and the crash dump");
    cr_assert_eq(th_count_temporaries(dump_dir), 0);
    for (int i = 0; i < n; i++) {
        struct frd_dump *d = th_open(paths[i]);
        cr_assert(d->have_end, "%s cut short", paths[i]);
        if (d->hdr.trigger == FR_TRIGGER_CRASH) {
            crashes++;
            cr_assert_eq(d->crash.signo, SIGSEGV);
            cr_assert_eq(d->crash.frames[0], d->crash.ip);
            cr_assert_eq(d->crash.task, TASK);
        } else {
            cr_assert_eq(d->hdr.trigger, FR_TRIGGER_SIGNAL);
        }
        frd_close(d);
    }
    cr_assert_eq(crashes, 1);
}

/* ==== 6. dump files: names, retention, leftovers ========================= */

/* Two processes that are both pid 1 (each in its own PID namespace) dump into
 * one directory at the same moment. */
struct pid1_result {
    int step, err;
    int rc[2];
    char path[2][1024];
};

static int pid1_main(struct pid1_result *r, int idx, int go)
{
    if (getpid() != 1)
        return 20;
    if (init_rec(0) != 0)
        return 21;
    fr_spawn(TASK + (uint64_t)idx, 0, idx ? "B" : "A");
    char c;
    if (read(go, &c, 1) != 1)
        return 22;
    r->rc[idx] = fr_dump(idx ? "B" : "A", r->path[idx], sizeof r->path[idx]);
    return 0;
}

static pid_t spawn_pid1(struct pid1_result *r, int idx, int go)
{
    pid_t outer = fork();
    if (outer != 0)
        return outer;
    int flags = CLONE_NEWPID | (geteuid() != 0 ? CLONE_NEWUSER : 0);
    if (unshare(flags) != 0) {
        r->step = 1, r->err = errno;
        _exit(0);
    }
    pid_t inner = fork();
    if (inner == 0)
        _exit(pid1_main(r, idx, go));
    int st = 0;
    while (waitpid(inner, &st, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 30);
}

Test(files, two_pid_1s_in_one_directory, .timeout = 60)
{
    dump_dir = th_tmpdir();
    struct pid1_result *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    fflush(NULL);
    pid_t a = spawn_pid1(r, 0, go[0]), b = spawn_pid1(r, 1, go[0]);
    usleep(100000); /* both are most likely waiting; if not, they dump a little apart */
    cr_assert_eq(write(go[1], "gg", 2), 2);
    int sa = 0, sb = 0;
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    if (r->step == 1)
        cr_skip_test("no PID namespaces here: %s", strerror(r->err));
    cr_assert(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "A: %#x", sa);
    cr_assert(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "B: %#x", sb);
    cr_assert_eq(r->rc[0], 0);
    cr_assert_eq(r->rc[1], 0);
    cr_assert_str_neq(r->path[0], r->path[1], "both were told the same path");
    char paths[4][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 4), 2, "one dump replaced the other");
    for (int i = 0; i < 2; i++) {
        struct frd_dump *d = th_open(r->path[i]);
        cr_assert_eq(d->hdr.pid, 1u);
        cr_assert_str_eq(d->hdr.reason, i ? "B" : "A", "%s holds the other's dump", r->path[i]);
        frd_close(d);
    }
}

static void touch_at(const char *dir, const char *name, time_t when, const char *content)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    if (content)
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    struct timespec ts[2] = { { when, 0 }, { when, 0 } };
    cr_assert_eq(futimens(fd, ts), 0);
    close(fd);
}

static int exists(const char *dir, const char *name)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

Test(files, retention_after_the_clock_was_set_back, .timeout = 60)
{
    /* Three dumps written before the clock went back a day: their times are
     * in the future. The new dump must survive retention; they go first. */
    dump_dir = th_tmpdir();
    time_t now = time(NULL);
    touch_at(dump_dir, "flightrec-7-20990101T000000Z-0-aaaaaaaa.frd", now + 86400, "x");
    touch_at(dump_dir, "flightrec-7-20990101T000001Z-1-aaaaaaaa.frd", now + 86401, "x");
    touch_at(dump_dir, "flightrec-8-20200101T000000Z-0-bbbbbbbb.frd", now - 3600, "x");
    struct fr_config cfg = { .dump_dir = dump_dir, .max_dumps = 2 };
    cr_assert_eq(fr_init(&cfg), 0);
    char path[1024];
    cr_assert_eq(fr_dump("new", path, sizeof path), 0);
    fr_shutdown();
    cr_assert_eq(access(path, F_OK), 0, "retention removed the dump just written");
    char paths[8][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 8), 2);
    cr_assert(exists(dump_dir, "flightrec-8-20200101T000000Z-0-bbbbbbbb.frd"),
              "a dump of the right time was removed before future-dated ones");
}

Test(files, leftover_temporaries_are_removed_live_ones_kept, .timeout = 60)
{
    dump_dir = th_tmpdir();
    time_t now = time(NULL);
    /* an interrupted dump (its writer gone), a recent empty one (maybe being
     * created), and one whose writer holds it */
    touch_at(dump_dir, ".flightrec-9-cccccccc-0.frd.tmp", now - 30, "partial");
    touch_at(dump_dir, ".flightrec-9-cccccccc-1.frd.tmp", now, NULL);
    touch_at(dump_dir, ".flightrec-10-dddddddd-0.frd.tmp", now, "being written");
    char held[800];
    snprintf(held, sizeof held, "%s/.flightrec-10-dddddddd-0.frd.tmp", dump_dir);
    pid_t writer = fork();
    if (writer == 0) {
        int fd = open(held, O_RDONLY);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(1);
        pause();
        _exit(0);
    }
    for (int i = 0; i < 500; i++) { /* until the writer holds its lock */
        int fd = open(held, O_RDONLY);
        int busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
        close(fd);
        if (busy)
            break;
        usleep(2000);
    }
    struct fr_config cfg = { .dump_dir = dump_dir };
    cr_assert_eq(fr_init(&cfg), 0);
    cr_assert_eq(fr_dump("sweep", NULL, 0), 0);
    fr_shutdown();
    kill(writer, SIGKILL);
    waitpid(writer, NULL, 0);
    cr_assert_not(exists(dump_dir, ".flightrec-9-cccccccc-0.frd.tmp"), "an orphan was kept");
    cr_assert(exists(dump_dir, ".flightrec-9-cccccccc-1.frd.tmp"), "a new empty one was removed");
    cr_assert(exists(dump_dir, ".flightrec-10-dddddddd-0.frd.tmp"), "a live writer's was removed");
}

/* ==== 8. what the output states is true =================================== */

static int run_wait_for_abort(void *arg)
{
    int ready = (int)(intptr_t)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "waiting");
    fr_poll_begin(TASK);
    if (write(ready, "r", 1) != 1)
        return 12;
    for (;;)
        pause();
}

Test(output, sent_sigabrt_names_its_sender, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        _exit(run_wait_for_abort((void *)(intptr_t)ready[1]));
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(kill(pid, SIGABRT), 0);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_died_of(st, SIGABRT, "a sent SIGABRT");
    struct frd_dump *d = the_crash_dump(SIGABRT);
    cr_assert_eq(d->crash.code, 0, "si_code %d, want SI_USER", d->crash.code);
    char paths[1][512];
    th_list_dumps(dump_dir, paths, 1);
    frd_close(d);

    char want[128];
    snprintf(want, sizeof want, "sent by pid %d (uid %u) with kill", (int)getpid(),
             (unsigned)getuid());
    char *text = cli("info", paths[0]);
    cr_assert_not_null(strstr(text, want), "info does not say '%s':\n%s", want, text);
    cr_assert_null(strstr(text, "fault address"), "info calls the sender an address:\n%s", text);
    free(text);
    char *json = cli("info --json", paths[0]);
    snprintf(want, sizeof want, "\"sender\": {\"pid\": %d, \"uid\": %u}", (int)getpid(),
             (unsigned)getuid());
    cr_assert_not_null(strstr(json, want), "%s", json);
    cr_assert_not_null(strstr(json, "\"fault_addr\": null"), "%s", json);
    free(json);
}

static int run_null(void *arg)
{
    (void)arg;
    if (init_rec(0) != 0)
        return 10;
    fr_spawn(TASK, 0, "t");
    fr_poll_begin(TASK);
    th_crash_null();
    return 11;
}

Test(output, a_fault_shows_its_address_and_no_sender, .timeout = 60)
{
    dump_dir = th_tmpdir();
    int st = th_run_child(run_null, NULL);
    assert_died_of(st, SIGSEGV, "null dereference");
    char paths[1][512];
    cr_assert_eq(th_list_dumps(dump_dir, paths, 1), 1);
    char *text = cli("info", paths[0]);
    cr_assert_not_null(strstr(text, "fault address 0x0,"), "%s", text);
    cr_assert_null(strstr(text, "sent by"), "%s", text);
    cr_assert_null(strstr(text, "\nnotes\n"), "a whole crash dump with notes:\n%s", text);
    free(text);
    char *json = cli("info --json", paths[0]);
    cr_assert_not_null(strstr(json, "\"fault_addr\": \"0x0\", \"sender\": null"), "%s", json);
    cr_assert_not_null(strstr(json, "\"notes\": []"), "%s", json);
    free(json);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the directory's own */
}

Test(descriptors, init_shutdown_cycles_leave_no_descriptor_behind, .timeout = 60)
{
    dump_dir = th_tmpdir();
    /* The first fr_init sets libunwind up, which keeps a pipe of its own. */
    cr_assert_eq(init_rec(0), 0);
    fr_shutdown();
    int before = count_fds();
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(init_rec(0), 0);
        fr_spawn(TASK, 0, "cycle");
        cr_assert_eq(fr_dump("cycle", NULL, 0), 0);
        fr_shutdown();
        cr_assert_eq(count_fds(), before, "cycle %d: %d descriptors open, %d before", i,
                     count_fds(), before);
    }
}
