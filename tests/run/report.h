/*
 * tests/run/report.h - what the programs `flightrec run` is tested with print
 * on standard output: their pid, the flightrec environment they got, and the
 * flightrec adapters mapped into them; then they exit as argv asks
 * ("exit N" or "kill SIG"), so the test sees the status pass through.
 */
#ifndef RUN_REPORT_H
#define RUN_REPORT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run_report(int argc, char **argv)
{
    const char *vars[] = {"LD_PRELOAD", "FLIGHTREC_DIR", "FLIGHTREC_STALL_MS",
                          "FLIGHTREC_SIGNAL"};
    printf("pid=%ld\n", (long)getpid());
    for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) {
        const char *v = getenv(vars[i]);
        printf("%s=%s\n", vars[i], v ? v : "(unset)");
    }
    /* each adapter once, by file name, as the loader mapped it */
    FILE *f = fopen("/proc/self/maps", "re");
    char line[4096];
    int uv = 0, ev = 0;
    while (f && fgets(line, sizeof(line), f)) {
        uv |= strstr(line, "/libflightrec-uv.so") != NULL;
        ev |= strstr(line, "/libflightrec-event.so") != NULL;
    }
    if (f)
        fclose(f);
    printf("mapped=%s%s\n", uv ? "uv," : "", ev ? "event," : "");
    fflush(stdout);
    if (argc >= 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
        signal(atoi(argv[2]), SIG_DFL);
        raise(atoi(argv[2]));
    }
    return 0;
}

#endif
