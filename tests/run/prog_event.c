/* tests/run/prog_event.c - a program linked against libevent 2.1. */
#include <event2/event.h>

#include "report.h"

int main(int argc, char **argv)
{
    if (!event_get_version()) /* keeps libevent needed under --as-needed */
        return 99;
    return run_report(argc, argv);
}
