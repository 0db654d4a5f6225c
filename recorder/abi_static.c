/*
 * abi_static.c - fr_init for the static library: one definition, for the
 * struct fr_config of the header the program is built with (the shared
 * library's two versions are in abi.c).
 */
#include "internal.h"

FR_API int fr_init(const struct fr_config *cfg)
{
    return fr__init(cfg);
}
