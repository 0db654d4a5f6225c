/*
 * bench.h - what the benchmark drivers share: a monotonic clock, medians, and
 * the mixed hook sequence every per-event figure is measured on.
 *
 * The sequence is one task's life in a runtime, 12 events: spawned, polled,
 * registers a waker and an await point, returns pending, is woken (the waker
 * consumed), polled to completion, dropped, and the worker parks and resumes.
 * BENCH_SEQUENCE(P, id) expands to calls P##spawn(...), P##poll_begin(...),
 * so flightrec, the floor and LTTng run exactly the same loop shape.
 */
#ifndef FR_BENCH_H
#define FR_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_EVENTS_PER_SEQ 12u
#define BENCH_NAME "request"
#define BENCH_LABEL "db_query (src/db.c:89)"

#define BENCH_SEQUENCE(P, id)                                                                      \
    do {                                                                                           \
        P##spawn((id), (id) - 1, BENCH_NAME);                                                      \
        P##poll_begin(id);                                                                         \
        P##waker_clone(id);                                                                        \
        P##await((id), BENCH_LABEL);                                                               \
        P##poll_end((id), FR_PENDING);                                                             \
        P##wake(id);                                                                               \
        P##waker_drop(id);                                                                         \
        P##poll_begin(id);                                                                         \
        P##poll_end((id), FR_READY);                                                               \
        P##drop(id);                                                                               \
        P##park();                                                                                 \
        P##unpark();                                                                               \
    } while (0)

/*
 * A task's whole life as a new user writes it against <flightrec.h>, 10
 * events: spawned with a name, polled, awaits with a label and clones its
 * waker inside the poll, returns pending, is woken from outside the poll (the
 * waker consumed), polled to completion and dropped.
 */
#define BENCH_LIFE_EVENTS 10u
#define BENCH_LIFE(P, id)                                                                          \
    do {                                                                                           \
        P##spawn((id), (id) - 1, BENCH_NAME);                                                      \
        P##poll_begin(id);                                                                         \
        P##await((id), BENCH_LABEL);                                                               \
        P##waker_clone(id);                                                                        \
        P##poll_end((id), FR_PENDING);                                                             \
        P##wake(id);                                                                               \
        P##waker_drop(id);                                                                         \
        P##poll_begin(id);                                                                         \
        P##poll_end((id), FR_READY);                                                               \
        P##drop(id);                                                                               \
    } while (0)

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of @n values (sorts @v in place). */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Relative spread of @n sorted values: (max - min) / median, in percent. */
static inline double bench_spread_pct(const double *sorted, size_t n, double median)
{
    return median > 0 ? (sorted[n - 1] - sorted[0]) / median * 100.0 : 0;
}

static inline int bench_arg_int(int argc, char **argv, const char *name, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoi(argv[i + 1]);
    return def;
}

static inline const char *bench_arg_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

#endif /* FR_BENCH_H */
