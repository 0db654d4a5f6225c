/* tests/run/chain.c - a library that needs libuv, so that a program linking
 * only this library loads libuv one step down its dependency chain (found
 * through the program's RUNPATH, $ORIGIN-relative in the build tree). */
#include <uv.h>

unsigned chain_version(void);

unsigned chain_version(void)
{
    return uv_version();
}
