/*
 * decoder/stall.h - the STALL and RECOVERY sections (decoder/stall.c): the
 * watchdog's stuck thread and stack, and what `flightrec recover` dropped.
 */
#ifndef FRD_STALL_H
#define FRD_STALL_H

#include <stddef.h>
#include <stdint.h>

#include "reader.h"

/*
 * frd_stall_quote - where a long poll was stuck, if the dump's STALL section
 * caught it: @task polled on thread @tid (0: any) from @begin_ns to @end_ns.
 * Writes "at 100 ms it was in nanosleep <- parse_giant_config (config.c:88)
 * <- ..." (arrows are U+2190, innermost frame first, four frames at most).
 * Return: 1 if @buf holds a quote; 0 if not (@buf is then "").
 */
int frd_stall_quote(const struct frd_dump *d, uint64_t task, uint32_t tid, int64_t begin_ns,
                    int64_t end_ns, char *buf, size_t len);

#endif /* FRD_STALL_H */
