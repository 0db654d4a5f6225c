/*
 * hello.c - the smallest program a user would write against an installed
 * flightrec: built with nothing but `pkg-config --cflags --libs flightrec`.
 * Records one task and dumps into argv[1]; prints the dump's path.
 */
#include <flightrec.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    struct fr_config cfg = {.dump_dir = argc > 1 ? argv[1] : NULL, .dump_signal = -1};
    if (fr_init(&cfg) != 0)
        return 2;
    fr_thread_name("hello-worker");
    fr_spawn(1, 0, "hello_task");
    fr_poll_begin(1);
    FR_AWAIT(1, "nothing");
    fr_poll_end(1, FR_READY);
    fr_drop(1);
    char path[512];
    if (fr_dump("installed", path, sizeof(path)) != 0)
        return 3;
    puts(path);
    fr_shutdown();
    return 0;
}
