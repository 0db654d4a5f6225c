/*
 * decoder/progress.h - a progress line on stderr for long decodes.
 *
 * When stderr is a terminal and decoding has taken longer than a second, a
 * background thread redraws one line ("flightrec: [2/9] a.frd: building the
 * model... 3.1 s") every tenth of a second, and erases it when done, so the
 * output that follows is not mixed with it. Off the terminal it does nothing.
 */
#ifndef FRD_PROGRESS_H
#define FRD_PROGRESS_H

#include <stddef.h>

/* Start timing a run of @count dumps; the line appears after a second. */
void frd_progress_start(size_t count);

/* Now working on dump number @index (0-based) at @file, at @stage. Both
 * strings must stay valid until the next call or frd_progress_stop(). */
void frd_progress_stage(size_t index, const char *file, const char *stage);

/* Erase the line and keep it off the screen until frd_progress_release():
 * around output written between decodes (stdout and stderr may be one
 * terminal). The output must be flushed before the release. */
void frd_progress_hold(void);
void frd_progress_release(void);

/* Erase the line (if it was drawn) and stop the thread. */
void frd_progress_stop(void);

#endif /* FRD_PROGRESS_H */
