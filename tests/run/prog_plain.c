/* tests/run/prog_plain.c - a program that links neither libuv nor libevent. */
#include "report.h"

int main(int argc, char **argv)
{
    return run_report(argc, argv);
}
