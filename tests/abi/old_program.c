/*
 * old_program.c - a program built against 0.1's <flightrec.h>, whose struct
 * fr_config had five fields, calling fr_init with that struct; the bytes
 * after it in memory are not zero (they are 0xff, as a caller's other locals
 * could be). Run against the current library, it must get 0.1's meaning:
 * every field past max_dumps is taken as 0. Reading 0xff bytes as dump_on
 * would ask for a dump on SIGKILL and every other signal, which fr_init
 * refuses with -EINVAL; as stall_ms, a watchdog.
 *
 * Exit status: 0 when fr_init returned 0 and recording works (fr_dump wrote
 * a dump); 1 otherwise, with the reason on stderr.
 *
 *   old_program DUMP_DIR
 */
#include <stdio.h>
#include <string.h>

struct fr_config_v01 { /* 0.1's struct fr_config */
    const char *dump_dir;
    unsigned long ring_bytes;
    int dump_signal;
    unsigned flags;
    unsigned max_dumps;
};

int fr_init(const struct fr_config_v01 *cfg);
int fr_dump(const char *reason, char *path, unsigned long path_size);
void fr_shutdown(void);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: old_program DUMP_DIR\n");
        return 2;
    }
    struct {
        struct fr_config_v01 cfg;
        unsigned char after[64];
    } frame;
    memset(&frame, 0xff, sizeof frame);
    frame.cfg = (struct fr_config_v01){ .dump_dir = argv[1], .dump_signal = -1 };
    int rc = fr_init(&frame.cfg);
    if (rc != 0) {
        fprintf(stderr, "fr_init with 0.1's struct returned %d, expected 0\n", rc);
        return 1;
    }
    char path[4096];
    rc = fr_dump("abi", path, sizeof path);
    fr_shutdown();
    if (rc != 0) {
        fprintf(stderr, "fr_dump returned %d after fr_init\n", rc);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}
