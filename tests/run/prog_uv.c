/*
 * tests/run/prog_uv.c - a program linked against libuv (DT_NEEDED
 * libuv.so.1). Without arguments it reports (report.h); with "serve S" it
 * runs a libuv loop with a 10 ms timer for S seconds, having printed
 * "serving" once the loop is set up, so that a dump can be asked for.
 */
#include <stdlib.h>
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

int main(int argc, char **argv)
{
    if (uv_version() == 0) /* keeps libuv needed under --as-needed */
        return 99;
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    return run_report(argc, argv);
}
