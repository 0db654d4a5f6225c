/*
 * abi.c - the shared library's versioned entry points (flightrec.map).
 *
 * struct fr_config grew after 0.1 (stall_ms, dump_on). A program built
 * against 0.1's <flightrec.h> passes the five fields the struct had then;
 * reading the new fields from it would read whatever follows the caller's
 * struct. So the shared library keeps two definitions of fr_init:
 *
 *   fr_init@FLIGHTREC_0.1   the 0.1 struct, copied into a zeroed current one
 *   fr_init@@FLIGHTREC_0.2  the struct as <flightrec.h> declares it now
 *
 * A program linked against 0.1 (whose references carry no version) binds to
 * the oldest definition, a program linked now to the default one, and
 * dlsym(RTLD_DEFAULT, "fr_init") returns the newest. The static library has
 * one fr_init (abi_static.c): a static link is built against one header.
 */
#include "internal.h"

/* struct fr_config as 0.1 declared it. */
struct fr_config_v01 {
    const char *dump_dir;
    size_t ring_bytes;
    int dump_signal;
    unsigned flags;
    unsigned max_dumps;
};

__attribute__((symver("fr_init@FLIGHTREC_0.1"))) FR_API int
flightrec_init_v01(const struct fr_config_v01 *old);
__attribute__((symver("fr_init@@FLIGHTREC_0.2"))) FR_API int
flightrec_init_v02(const struct fr_config *cfg);

FR_API int flightrec_init_v01(const struct fr_config_v01 *old)
{
    if (!old)
        return fr__init(NULL);
    struct fr_config cfg = {
        .dump_dir = old->dump_dir,
        .ring_bytes = old->ring_bytes,
        .dump_signal = old->dump_signal,
        .flags = old->flags,
        .max_dumps = old->max_dumps,
    };
    return fr__init(&cfg);
}

FR_API int flightrec_init_v02(const struct fr_config *cfg)
{
    return fr__init(cfg);
}
