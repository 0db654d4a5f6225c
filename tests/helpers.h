/*
 * helpers.h - what the recorder tests share: a private dump directory per
 * test, finding the dumps in it, checking one with `zstd -t`, reading one back
 * with the decoder's reader, and running a scenario in a child process.
 */
#ifndef FR_TEST_HELPERS_H
#define FR_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "reader.h"

#define MAX_DUMPS_LISTED 64

/* A fresh directory under $TMPDIR (or /tmp), removed at exit with its files. */
const char *th_tmpdir(void);

/* Final dump files (flightrec-*.frd) in @dir, sorted by name; returns how many. */
int th_list_dumps(const char *dir, char paths[][512], int max);

/* Files whose name starts with '.flightrec-' (temporaries) in @dir. */
int th_count_temporaries(const char *dir);

/* The whole file at @path in a malloc'ed buffer with a NUL byte after it;
 * its length in *@len if @len is not NULL. Fails the test if it cannot. */
char *th_read_file(const char *path, size_t *len);

/* `zstd -q -t PATH`: 0 if zstd accepts the whole file. */
int th_zstd_test(const char *path);

/* Open a dump with the decoder's reader; fails the test if it cannot. */
struct frd_dump *th_open(const char *path);

/* The only dump in @dir, checked whole (no temporaries left, zstd accepts it,
 * END present), a crash dump of signal @signo; fails the test otherwise. */
struct frd_dump *th_the_crash_dump(const char *dir, int signo);

/* The thread section with this tid, or NULL. */
const struct frd_thread *th_thread(const struct frd_dump *d, uint32_t tid);

/* The text of string @id (NUL-terminated copy in a static buffer), or NULL. */
const char *th_string(const struct frd_dump *d, uint32_t id);

/* Wait up to @ms for a dump to appear in @dir; returns the count. */
int th_wait_for_dumps(const char *dir, int want, unsigned ms);

/* fork; the child runs @fn(@arg) and _exits with its return value.
 * Returns the raw wait status. Core dumps are disabled in the child. */
int th_run_child(int (*fn)(void *), void *arg);

pid_t th_gettid(void);

/* Call @fn(tid, comm, @arg) for each thread of this process, comm without
 * its newline, until @fn returns nonzero. Return: that value, or 0. */
int th_each_thread(int (*fn)(pid_t tid, const char *comm, void *arg), void *arg);

/* The crashes the crash tests plant, each in a frame of its own (never
 * inlined) so that a backtrace can be checked to reach it: a write through a
 * NULL pointer (SIGSEGV), endless recursion with 512-byte frames (a stack
 * overflow: SIGSEGV on the guard page) and abort() (SIGABRT). */
void th_crash_null(void);
int th_crash_recurse(int depth);
void th_crash_abort(void);

/* The shared rings files (*.rings) in @dir: their count, and the path of
 * the last one read into @path (@len bytes) unless @path is NULL. */
int th_count_rings(const char *dir, char *path, size_t len);

/* Run `@cli recover ARGS` (@args pasted into a shell command line) and
 * return its exit status (-1 if it did not exit); the first line it printed
 * goes to @out (@len bytes) unless @out is NULL. */
int th_recover(const char *cli, const char *args, char *out, size_t len);

#endif
