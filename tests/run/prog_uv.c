/* tests/run/prog_uv.c - a program linked against libuv (DT_NEEDED libuv.so.1). */
#include <uv.h>

#include "report.h"

int main(int argc, char **argv)
{
    if (uv_version() == 0) /* keeps libuv needed under --as-needed */
        return 99;
    return run_report(argc, argv);
}
