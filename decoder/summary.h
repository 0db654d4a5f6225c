/*
 * decoder/summary.h - findings across many dumps, grouped.
 *
 * `flightrec analyze A.frd B.frd ...` (or a directory) triages a fleet's
 * dumps in one command: the same bug seen in twenty dumps is one line with a
 * count, not twenty screens. Two findings are the same when their kind, task
 * name and the task's last await label are equal; the task id and times are
 * not part of the key (they differ from process to process).
 */
#ifndef FRD_SUMMARY_H
#define FRD_SUMMARY_H

#include <stddef.h>
#include <stdio.h>

#include "analyze.h"

struct frd_group {
    int kind;         /* enum frd_kind */
    char *name;       /* task name (bytes from the dump), empty when none */
    size_t name_len;
    char *await;      /* the task's last await label, empty when none */
    size_t await_len;
    size_t count;     /* findings in the group, over all dumps */
    size_t dumps;     /* dumps with at least one */
    size_t last_dump; /* (index + 1) of the last dump counted in dumps */
    char *file;       /* the first dump it was seen in */
    char *message;    /* that first finding's message */
};

struct frd_summary {
    struct frd_group *v;
    size_t n, cap;
    size_t ndumps;   /* dumps analysed */
    size_t nfailed;  /* dumps that could not be read at all */
    size_t ndamaged; /* dumps read only in part */
    size_t nfindings;
};

/* Add the findings @f of dump number @index (0-based) at @file. 0 or -ENOMEM. */
int frd_summary_add(struct frd_summary *s, size_t index, const char *file,
                    const struct frd_model *m, const struct frd_findings *f);

/* Order the groups: most dumps first, then most findings, then severity. */
void frd_summary_sort(struct frd_summary *s);

int frd_summary_text(FILE *out, const struct frd_summary *s);

/* The "summary" member's value: {"dumps", "unreadable", "damaged", "findings",
 * "groups": [{"kind", "name", "await", "count", "dumps", "first_file", "message"}]} */
int frd_summary_json(FILE *out, const struct frd_summary *s);

void frd_summary_free(struct frd_summary *s);

#endif /* FRD_SUMMARY_H */
