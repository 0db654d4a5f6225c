/* tests/run/prog_chain.c - needs libchain.so only; libchain needs libuv. */
#include "report.h"

unsigned chain_version(void);

int main(int argc, char **argv)
{
    if (chain_version() == 0)
        return 99;
    return run_report(argc, argv);
}
