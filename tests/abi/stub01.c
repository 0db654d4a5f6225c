/*
 * stub01.c - stands in for libflightrec.so.0 as 0.1 built it: no symbol
 * versions. old_program.c links against this, so its reference to fr_init
 * carries no version, as a program built against 0.1 has; the test then runs
 * it with the real library first in LD_LIBRARY_PATH. If this stub is what
 * runs, fr_init returns STUB_RC and the test fails.
 */
#define STUB_RC (-424242)

struct fr_config_v01;

__attribute__((visibility("default"))) int fr_init(const struct fr_config_v01 *cfg);
__attribute__((visibility("default"))) int fr_dump(const char *reason, char *path,
                                                  unsigned long path_size);
__attribute__((visibility("default"))) void fr_shutdown(void);

int fr_init(const struct fr_config_v01 *cfg)
{
    (void)cfg;
    return STUB_RC;
}

int fr_dump(const char *reason, char *path, unsigned long path_size)
{
    (void)reason;
    (void)path;
    (void)path_size;
    return STUB_RC;
}

void fr_shutdown(void)
{
}
