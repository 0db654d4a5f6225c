/*
 * procinfo.c - who the process is, captured once at fr_init so that a crash
 * handler can write it without reading /proc: executable path, command line,
 * host name, start time. (The module map, which changes with dlopen, is read
 * at dump time by dump.c.)
 */
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"

static char exe[1024];
static uint32_t exe_len;
static char cmdline[4096];
static uint32_t cmdline_len;
static char host[256];
static uint32_t host_len;
static uint64_t start_real_ns;

void fr__procinfo_init(void)
{
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe);
    exe_len = n > 0 ? (uint32_t)n : 0;
    cmdline_len = (uint32_t)fr__read_file("/proc/self/cmdline", cmdline, sizeof cmdline);
    while (cmdline_len && cmdline[cmdline_len - 1] == '\0') /* drop the final NUL */
        cmdline_len--;
    struct utsname u;
    host_len = 0;
    if (uname(&u) == 0)
        host_len = (uint32_t)fr__strlcpy(host, u.nodename, sizeof host);
    if (host_len >= sizeof host)
        host_len = sizeof host - 1;
    start_real_ns = fr__realtime_ns();
}

void fr__procinfo_get(struct fr_blob *e, struct fr_blob *c, struct fr_blob *h, uint64_t *start)
{
    e->p = exe;
    e->len = exe_len;
    c->p = cmdline;
    c->len = cmdline_len;
    h->p = host;
    h->len = host_len;
    *start = start_real_ns;
}
