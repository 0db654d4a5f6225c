/*
 * decoder/reader_int.h - functions shared by the reader's own files
 * (reader.c: frames and simple sections; pages.c: THREAD sections and the
 * records inside ring pages). Not part of the decoder's API.
 */
#ifndef FRD_READER_INT_H
#define FRD_READER_INT_H

#include "bytes.h"
#include "reader.h"

/* Take ownership of malloc'ed @p (freed by frd_close). Returns @p, or NULL
 * (and frees @p) when out of memory. */
void *frd__keep(struct frd_dump *d, void *p);

/* Record one damage message "PATH: offset OFF: <fmt>" and set d->damaged. */
void frd__error(struct frd_dump *d, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append a zeroed thread to d->threads. Return: it, or NULL (no memory). */
struct frd_thread *frd__thread_new(struct frd_dump *d);

/* Tests: nonzero checks every THREAD section's pages on two threads, however
 * small, so that the split path runs (under the sanitizers too). */
extern int frd__check_split_always;

/* Decode a THREAD section body (@c at byte 8 of the section) into @t. */
void frd__sec_thread(struct frd_dump *d, uint64_t off, struct frd_cur *c, struct frd_thread *t);

/* After ns conversion: coverage window and thread name of @t. */
void frd__thread_coverage(struct frd_dump *d, struct frd_thread *t);

/* decoder/stall.c */
void frd__sec_stall(struct frd_dump *d, uint64_t off, struct frd_cur *c);
/* The frame list ending a CRASH or STALL section (reader.c). */
uint64_t *frd__read_frames(struct frd_dump *d, uint64_t off, struct frd_cur *c, const char *what,
                           unsigned count_at, uint32_t *n);
void frd__sec_recovery(struct frd_dump *d, uint64_t off, struct frd_cur *c);
void frd__stall_finish(struct frd_dump *d);
/* decoder/spawns.c */
void frd__sec_spawns(struct frd_dump *d, uint64_t off, struct frd_cur *c);

#endif /* FRD_READER_INT_H */
