/*
 * consumer.c - a program that knows nothing of flightrec but its public
 * header and shared library, as a user's would. It records a steady stream of
 * task events until SIGUSR2 asks it to crash inside a poll.
 * Usage: consumer DUMP_DIR
 */
#include <flightrec.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t crash_now;
static volatile int *volatile nowhere;

static void on_usr2(int sig)
{
    (void)sig;
    crash_now = 1;
}

/* The crash is the point: keep UBSan from reporting it first. */
__attribute__((noinline, no_sanitize("undefined"))) static void poll_that_crashes(void)
{
    *nowhere = 1;
}

int main(int argc, char **argv)
{
    struct fr_config cfg = { .dump_dir = argc > 1 ? argv[1] : NULL };
    if (fr_init(&cfg) != 0)
        return 2;
    signal(SIGUSR2, on_usr2);
    fr_thread_name("main-loop");
    puts("ready");
    fflush(stdout);
    for (uint64_t task = 1;; task++) {
        fr_spawn(task, 0, "request");
        fr_poll_begin(task);
        if (crash_now)
            poll_that_crashes();
        fr_poll_end(task, FR_READY);
        fr_drop(task);
        struct timespec ts = { 0, 100 * 1000 };
        nanosleep(&ts, NULL);
    }
}
