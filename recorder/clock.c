/*
 * clock.c - event timestamps and the calibration that turns them into time.
 *
 * The record path reads the TSC (one rdtsc, ~7-20 cycles) when the CPU has an
 * invariant TSC the kernel trusts; otherwise CLOCK_MONOTONIC through the vDSO.
 * Ticks are never converted on the record path: the dump carries pairs of
 * (ticks, CLOCK_MONOTONIC, CLOCK_REALTIME) taken at fr_init, about 50 ms later
 * by the dumper thread, and at the dump itself, and the decoder derives the
 * tick rate from the widest-apart pairs.
 */
#include <cpuid.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int fr__clock_tsc;
struct fr_clock_pair fr__clock_pairs[FR_CLOCK_PAIRS];
_Atomic int fr__clock_npairs;

uint64_t fr__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t fr__realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The pair is taken as tightly as possible: ticks read between the two
 * clock reads, so a decoder's error is at most the clock_gettime cost. */
void fr__clock_pair_now(struct fr_clock_pair *p)
{
    uint64_t m0 = fr__monotonic_ns();
    p->ticks = fr__ticks();
    uint64_t m1 = fr__monotonic_ns();
    p->mono_ns = m0 + (m1 - m0) / 2;
    p->real_ns = fr__realtime_ns();
}

/* The TSC is usable when CPUID says it is invariant (constant rate, runs in
 * deep C-states) or, in VMs that hide that bit, when the kernel itself chose
 * it as its clocksource (it checks TSC sync across CPUs before doing so). */
static int tsc_usable(void)
{
#if defined(__x86_64__) || defined(__i386__)
    const char *force = secure_getenv("FLIGHTREC_CLOCK"); /* one known value */
    if (force && strcmp(force, "monotonic") == 0)
        return 0;
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)))
        return 1;
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[16] = { 0 };
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n >= 3 && memcmp(buf, "tsc", 3) == 0;
#else
    return 0;
#endif
}

void fr__clock_init(void)
{
    fr__clock_tsc = tsc_usable();
    fr__clock_pair_now(&fr__clock_pairs[0]);
    atomic_store_explicit(&fr__clock_npairs, 1, FR_RELEASE);
}
