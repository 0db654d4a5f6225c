/*
 * decoder/signame.c - signal names to numbers and back, for `flightrec run
 * --signal` and `flightrec dump --signal` (the recorder reads the same
 * spellings from FLIGHTREC_SIGNAL).
 */
#include "signame.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    int sig;
} names[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},   {"ABRT", SIGABRT},     {"IOT", SIGIOT},     {"BUS", SIGBUS},
    {"FPE", SIGFPE},     {"KILL", SIGKILL},     {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},
    {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH}, {"IO", SIGIO},         {"POLL", SIGPOLL},   {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

/* A decimal number with no sign, no space, at most 3 digits; -1 otherwise. */
static int small_number(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return -1;
    return atoi(s);
}

int frd_signal_parse(const char *s)
{
    if (!s)
        return -1;
    int n = small_number(s);
    if (n >= 0)
        return n >= 1 && n <= 64 && n <= SIGRTMAX ? n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    int rt = 0, sign = 0;
    if (strncasecmp(s, "RTMIN", 5) == 0)
        rt = SIGRTMIN, sign = 1;
    else if (strncasecmp(s, "RTMAX", 5) == 0)
        rt = SIGRTMAX, sign = -1;
    else
        return -1;
    s += 5;
    if (!*s)
        return rt;
    if (*s != (sign > 0 ? '+' : '-') || (n = small_number(s + 1)) < 0)
        return -1;
    rt += sign * n;
    return rt >= SIGRTMIN && rt <= SIGRTMAX ? rt : -1;
}

int frd_signal_dumpable(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE:
    case SIGABRT: case SIGTRAP: case SIGSYS:
        return 0;
    default:
        return sig >= 1 && sig <= SIGRTMAX;
    }
}

const char *frd_signal_spell(int sig, char *buf, unsigned len)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (names[i].sig == sig) { /* the first of two names: ABRT not IOT, IO not POLL */
            snprintf(buf, len, "%s", names[i].name);
            return buf;
        }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, sig == SIGRTMIN ? "RTMIN" : "RTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "%d", sig);
    return buf;
}
