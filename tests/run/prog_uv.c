/*
 * tests/run/prog_uv.c - a program linked against libuv (DT_NEEDED
 * libuv.so.1). Without arguments it reports (report.h); with "serve S" it
 * runs a libuv loop with a 10 ms timer for S seconds, having printed
 * "serving" once the loop is set up, so that a dump can be asked for. With
 * "children" it starts two programs and reports on them: /bin/sleep (no
 * loop: its thread count, and the signal SIGUSR1 ends it by) and itself with
 * "serve" (a libuv loop: its thread count while it serves).
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "report.h"

static unsigned long ticks;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int serve(int seconds)
{
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t tick, stop;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    uv_timer_init(loop, &stop);
    uv_timer_start(&stop, on_stop, (uint64_t)seconds * 1000, 0);
    printf("serving\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return ticks ? 0 : 1;
}

static int threads_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int children(const char *self)
{
    pid_t p = fork();
    if (p == 0) {
        execl("/bin/sleep", "sleep", "5", (char *)NULL);
        _exit(127);
    }
    struct timespec wait = {0, 300 * 1000000L};
    nanosleep(&wait, NULL);
    printf("plain_child_threads=%d\n", threads_of(p));
    kill(p, SIGUSR1);
    int st;
    waitpid(p, &st, 0);
    printf("plain_child_signal=%d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    int out[2];
    if (pipe(out) != 0)
        return 1;
    p = fork();
    if (p == 0) {
        dup2(out[1], 1);
        execl(self, self, "serve", "3", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[16] = "";
    FILE *f = fdopen(out[0], "r");
    if (f && fgets(line, sizeof line, f))
        printf("uv_child_threads=%d\n", threads_of(p));
    kill(p, SIGTERM);
    waitpid(p, &st, 0);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (uv_version() == 0) /* keeps libuv needed under --as-needed */
        return 99;
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "children") == 0)
        return children(argv[0]);
    return run_report(argc, argv);
}
