/*
 * bench_lttng_tp.h - the LTTng-UST tracepoint provider bench-lttng compares
 * with: one event carrying the fields of a flightrec record (type, task,
 * parent, name or label; LTTng adds the timestamp itself).
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER flightrec_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./bench_lttng_tp.h"

#if !defined(FR_BENCH_LTTNG_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define FR_BENCH_LTTNG_TP_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(flightrec_bench, event,
    LTTNG_UST_TP_ARGS(uint8_t, type, uint64_t, task, uint64_t, parent, const char *, label),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint8_t, type, type)
        lttng_ust_field_integer(uint64_t, task, task)
        lttng_ust_field_integer(uint64_t, parent, parent)
        lttng_ust_field_string(label, label)))

#endif /* FR_BENCH_LTTNG_TP_H */

#include <lttng/tracepoint-event.h>
