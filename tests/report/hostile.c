/*
 * hostile.c - writes one dump whose every string is HTML that would run a
 * script if a page pasted it as markup: the task names, the await label, the
 * thread name and the dump reason. One task is left pending with no wake, so
 * that `--hang-ms 5` makes a finding whose message repeats the name and label.
 * Usage: hostile DUMP_DIR (prints the dump's path)
 */
#include <flightrec.h>
#include <stdio.h>
#include <time.h>

#define HOSTILE "</script><script>alert(1)</script>"

int main(int argc, char **argv)
{
    struct fr_config cfg = { .dump_dir = argc > 1 ? argv[1] : NULL, .dump_signal = -1,
                             .flags = FR_NO_CRASH_HANDLERS };
    if (fr_init(&cfg) != 0)
        return 2;
    fr_thread_name("<img src=x onerror=alert(2)>");
    fr_spawn(1, 0, HOSTILE);
    fr_poll_begin(1);
    fr_await(1, "<!-- " HOSTILE);
    fr_poll_end(1, FR_PENDING);
    fr_spawn(2, 1, "\"&amp;<b>bold</b>\\u003c");
    fr_poll_begin(2);
    fr_wake(2);
    fr_poll_end(2, FR_PENDING);
    fr_poll_begin(2);
    fr_poll_end(2, FR_READY);
    fr_drop(2);
    struct timespec ts = { 0, 30 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    char path[512];
    if (fr_dump(HOSTILE, path, sizeof(path)) != 0)
        return 1;
    puts(path);
    fr_shutdown();
    return 0;
}
