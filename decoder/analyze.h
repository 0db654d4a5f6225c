/*
 * decoder/analyze.h - the findings (DESIGN.md "Findings, defined").
 *
 * Third stage of the decoder: reads a built model and names the bugs that
 * are hard to see in a raw trace: lost_wakeup (three causes), starvation
 * (with the culprit: the task that held the victim's worker longest),
 * delayed_wakeup (a wake that reached no worker, rescued later), long_poll,
 * hung (with the last await label), never_polled and protocol. Any finding
 * that rests on an event being absent from a span is only made when every
 * thread's ring covers that span (frd_model_covered). Findings are sorted by
 * severity, then time.
 *
 * A finding is data (struct frd_finding): the analyses fill in the facts,
 * frd_finding_format writes the sentence from them, and the renderers (text,
 * JSON, chrome, report) print the facts and the sentence. A new kind adds an
 * enum frd_kind value (and, if it needs one, an enum frd_cause value), fills
 * the fields that apply and teaches frd_finding_format its sentence.
 */
#ifndef FRD_ANALYZE_H
#define FRD_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Kinds in order of severity (most severe first). */
enum frd_kind {
    FRD_DEADLOCK,
    FRD_LOST_WAKEUP,
    FRD_PROTOCOL,
    FRD_HUNG,
    FRD_DELAYED_WAKEUP,
    FRD_STARVATION,
    FRD_NEVER_POLLED,
    FRD_LONG_POLL,
    FRD_KIND_COUNT
};
_Static_assert(FRD_KIND_COUNT <= 32, "frd_task_kind_masks keeps one bit per kind");

/* Which variant of its kind a finding is: the mechanism behind it. */
enum frd_cause {
    FRD_CAUSE_NONE = 0,
    FRD_CAUSE_WAKER_DROPPED,   /* lost_wakeup (a) */
    FRD_CAUSE_WAKE_LOST,       /* lost_wakeup (b): woken while idle, never polled */
    FRD_CAUSE_WAKE_IN_POLL,    /* lost_wakeup (c): woken in its own poll, then pending */
    FRD_CAUSE_WORKER_BUSY,     /* starvation: the worker it was queued on was busy */
    FRD_CAUSE_WORKERS_BUSY,    /* starvation/never_polled: the workers were busy */
    FRD_CAUSE_WORKERS_PARKED,  /* delayed_wakeup/never_polled: a worker sat parked */
    FRD_CAUSE_NO_WAKE,         /* hung: pending with no wake since */
    FRD_CAUSE_WORKER_STUCK,    /* hung: its only worker was inside another task's poll */
    FRD_CAUSE_BLOCKING,        /* long_poll */
    FRD_CAUSE_HOOK_ORDER,      /* protocol */
    FRD_CAUSE_LOCK_CYCLE,      /* deadlock: each waits for a lock the next one holds */
    FRD_CAUSE_LOCK_HELD,       /* hung: it waits for a lock someone holds (lock_holder) */
    FRD_CAUSE_COUNT
};

/* How the victim became runnable (starvation, delayed_wakeup, never_polled). */
enum frd_how { FRD_HOW_NONE = 0, FRD_HOW_SPAWNED, FRD_HOW_WOKEN, FRD_HOW_SELF_WOKEN };

struct frd_thresholds {
    int64_t starvation_ns; /* default 10 ms */
    int64_t long_poll_ns;  /* default 10 ms */
    int64_t hang_ns;       /* default 1 s */
};

#define FRD_DEFAULT_STARVATION_NS 10000000
#define FRD_DEFAULT_LONG_POLL_NS 10000000
#define FRD_DEFAULT_HANG_NS 1000000000
/* A delayed_wakeup whose worker woke and polled the victim first needs a wait
 * this many times --starvation-ms: shorter, it is as likely a thread the OS
 * was slow to schedule on a loaded machine as a notification that was late. */
#ifndef FRD_DELAYED_NOISE_FACTOR
#define FRD_DELAYED_NOISE_FACTOR 10
#endif

/*
 * The culprit: the task whose polls held a worker longest during a wait, by
 * busy time summed over its polls (many short polls count together).
 */
struct frd_culprit {
    int32_t task;    /* instance index, FRD_NONE: no culprit */
    uint32_t thread; /* the worker it held (index into dump->threads) */
    int64_t busy_ns; /* its polls' time inside the wait, summed */
    uint32_t polls;  /* its polls that overlap the wait */
};

/* One task of a deadlock cycle: it waits for @lock, held by the next one. */
struct frd_cycle_link {
    int32_t task;       /* instance */
    uint32_t thread;    /* where its wait was recorded */
    uint64_t lock;      /* the lock it waits for */
    uint32_t lock_name; /* string id, 0 unknown */
    int32_t held_by;    /* the next task of the cycle (instance) */
    int64_t since_ns;   /* its wait began */
};

struct frd_finding {
    int kind;       /* enum frd_kind */
    int cause;      /* enum frd_cause */
    int32_t task;   /* the victim: instance index into the model, FRD_NONE if none */
    uint32_t thread; /* index into dump->threads: where the finding happened */
    int64_t at_ns;  /* absolute (CLOCK_MONOTONIC) ns */
    int64_t duration_ns;

    int how;          /* enum frd_how */
    int32_t poll;     /* index of the poll it is about (the long one, the late one, the
                         last one), FRD_NONE */
    int32_t wake;     /* index into the victim's wakes of the wake that made it
                         runnable, FRD_NONE (spawned, self-woken, or none) */
    int64_t ran_thread; /* the worker that polled it at last (starvation, delayed_wakeup),
                           -1 if none */
    uint32_t await_str; /* the await label in force, 0 none */
    struct frd_culprit culprit;
    /* the workers (threads that polled or parked) during the wait */
    uint32_t workers, workers_busy, workers_parked; /* busy/parked: for half of it or more */
    int64_t idle_thread; /* the worker parked longest during the wait, -1 none */
    int64_t idle_ns;     /* and for how long */
    char what[96];       /* protocol: which hook order was broken */
    /* locks (analyze_locks.c): the lock a hung task waits for or a protocol
     * finding is about (0 none), its name, and its holder (hung: an instance,
     * FRD_NONE when unknown or shared; meaningful only when lock != 0) */
    uint64_t lock;
    uint32_t lock_name;
    int32_t lock_holder;
    struct frd_cycle_link *cycle; /* deadlock: the cycle, malloc'ed (frd_findings_free) */
    size_t ncycle;
    char message[512];   /* the sentence, written by frd_finding_format */
};

struct frd_findings {
    struct frd_finding *v;
    size_t n, cap;
    /* Findings that rest on a duration (hung, delayed_wakeup, starvation,
     * never_polled, long_poll) left out because the dump's TSC ticks could
     * not be converted to time (no CLOCK section, or no two pairs at a
     * TSC's rate): ticks taken as ns would scale every wait by the TSC's
     * GHz. */
    size_t timing_withheld;
    /* Findings on a wait (delayed_wakeup, starvation, long_poll, a late
     * never_polled) left out because, less the time the host kept the
     * thread that ran it from running (the dump's RUN_DELAY entries: that
     * thread waiting for a CPU), the wait is within its threshold, or it
     * began before the run delays the dump still knows: a loaded machine,
     * not the program. */
    size_t host_withheld;
};

/*
 * frd_analyze - compute every finding of model @m with thresholds @th into
 * @out (which must be zeroed or freed before). Return: 0 or -ENOMEM.
 */
int frd_analyze(const struct frd_model *m, const struct frd_thresholds *th,
                struct frd_findings *out);

void frd_findings_free(struct frd_findings *f);

/*
 * frd__finding_new - append a finding with the common fields set and the rest
 * zero/none to @f. Return: it, or NULL when out of memory. (Internal: for the
 * analyses in analyze.c and analyze_locks.c.)
 */
struct frd_finding *frd__finding_new(struct frd_findings *f, int kind, int cause, int32_t task,
                                     uint32_t thread, int64_t at, int64_t dur);

/*
 * frd__analyze_locks - the lock analyses (analyze_locks.c), run by
 * frd_analyze on the findings found so far: deadlock cycles (replacing the
 * hung findings of the tasks in them), the lock and holder of each hung task
 * that waits for one, and releases of locks not held (protocol).
 * Return: 0 or -ENOMEM.
 */
int frd__analyze_locks(const struct frd_model *m, const struct frd_thresholds *th,
                       struct frd_findings *out);

/*
 * frd__lock_phrase - the lock part of finding @x's sentence into @buf (""
 * when it has none): the cycle of a deadlock, the lock and holder of a hung
 * task. Return: @buf.
 */
const char *frd__lock_phrase(const struct frd_model *m, const struct frd_finding *x, char *buf,
                             size_t len);

/* frd_kind_name - "lost_wakeup", "starvation", ... (the JSON "kind"). */
const char *frd_kind_name(int kind);
/* frd_cause_name - "worker_busy", "workers_parked", ... (the JSON "cause"). */
const char *frd_cause_name(int cause);
/* frd_how_name - "spawned", "woken", "self_woken", or NULL. */
const char *frd_how_name(int how);

/* frd_finding_format flags. */
#define FRD_FMT_NO_CULPRIT 1u /* leave the culprit out (it is said once for a group) */

/*
 * frd_finding_format - the sentence for finding @x of model @m into @buf
 * (truncated to @len). Return: @buf.
 */
const char *frd_finding_format(const struct frd_model *m, const struct frd_finding *x,
                               unsigned flags, char *buf, size_t len);

/*
 * frd_culprit_phrase - `behind task 72 "greedy": 14,200 polls, 598 ms of the
 * 600 ms on local-exec` for culprit @c of a wait of @wait_ns, or "" if none.
 */
const char *frd_culprit_phrase(const struct frd_model *m, const struct frd_culprit *c,
                               int64_t wait_ns, char *buf, size_t len);

/* frd_task_label's name: shown whole up to this many bytes; a longer one is
 * cut to fit with "..." (an adapter's names end in a module offset, which a
 * silent cut would turn into another address). A label buffer of
 * FRD_TASK_LABEL_MAX bytes holds any label whole. */
#define FRD_TASK_NAME_SHOWN 160
#define FRD_TASK_LABEL_MAX (FRD_TASK_NAME_SHOWN + 32)

/*
 * frd_task_label - `task 7 "fetch"` for task index @ti of @m into @buf (the
 * name whole up to FRD_TASK_NAME_SHOWN bytes, else cut and ended with "..."),
 * or `task 7` when the name is unknown. Return: @buf.
 */
const char *frd_task_label(const struct frd_model *m, int32_t ti, char *buf, size_t len);

/* frd_fmt_dur - format @ns as "12.345 ms", "12.3 ms" or "1.2 s" in @buf. */
const char *frd_fmt_dur(int64_t ns, char *buf, size_t len);

#endif /* FRD_ANALYZE_H */
