/*
 * decoder/model.h - per-task and per-thread model built from a decoded dump.
 *
 * Second stage of the decoder (reader -> model -> analyses -> renderers). The
 * model merges every thread's events into one order by time (a k-way merge of
 * thread cursors, decoding the pages as it goes) and replays them to rebuild
 * each task instance (an id reused after fr_drop() is a
 * new instance): its spawn, polls (thread, start, duration, result, await
 * label, scheduling delay), wakes (which thread, and which task was polling
 * there), waker references, and drop. Per thread it keeps the polls it ran and
 * the spans it was parked (an unpark with no park before it counts as parked
 * since the thread's oldest event only if it is the thread's first park or
 * unpark: later ones are duplicates). Hook-order violations found while replaying are
 * kept as protocol notes for the analyses. The merged timeline itself (one
 * struct frd_mev per event) is kept only when asked for (FRD_MODEL_TIMELINE):
 * the timeline and the event exports need it, the analyses do not.
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef FRD_MODEL_H
#define FRD_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "locks.h"
#include "reader.h"

#define FRD_NONE (-1)

/* One event of the merged timeline (only with FRD_MODEL_TIMELINE). */
struct frd_mev {
    const struct frd_event *e;
    int64_t ns;      /* e->ns, made non-decreasing within its thread */
    uint32_t thread; /* index into dump->threads */
    int32_t task;    /* task instance index, FRD_NONE for park/unpark/thread_name */
    int32_t ref;     /* poll index (poll events), wake index (wake), else FRD_NONE */
};

enum frd_poll_result { FRD_POLL_PENDING = 0, FRD_POLL_READY = 1, FRD_POLL_RUNNING = 2 };

/* What made a poll's task runnable before it (struct frd_poll's ready_from),
 * or a task now (struct frd_task's). */
enum frd_ready {
    FRD_READY_UNKNOWN = 0, /* not known: the ring lost it, or the task was idle */
    FRD_READY_SPAWN = 1,   /* its spawn (frd_task_spawn_ns) */
    FRD_READY_WAKE = 2,    /* wake ready_ref of the task */
    FRD_READY_SELF = 3,    /* woken while poll ready_ref of the task ran: runnable
                              from that poll's end */
};

/* Field order keeps these small: a model holds one per poll and per wake. */

/* 32 bytes: the time a poll became runnable is not kept but found where it
 * came from (frd_poll_ready_ns). */
struct frd_poll {
    int64_t begin_ns, end_ns; /* end_ns: the end of the recording if still running */
    uint32_t thread;
    uint32_t await_str;       /* last fr_await label inside this poll, 0 none */
    int32_t ready_ref;        /* the wake (FRD_READY_WAKE) or poll (FRD_READY_SELF)
                                 that made it runnable; FRD_NONE otherwise */
    int8_t result;            /* enum frd_poll_result */
    int8_t woken_during;      /* a wake for this task arrived while it ran */
    uint8_t ready_from;       /* enum frd_ready */
};

/* 16 bytes: a thread index fits in 30 bits (FRD_THREADS_MAX). */
struct frd_wake {
    int64_t ns;
    int32_t by_inst;               /* the task instance polling on the waking thread,
                                      FRD_NONE none (its id: tasks[by_inst].id) */
    uint32_t thread : 30;          /* the waking thread, an index into dump->threads */
    uint32_t during_own_poll : 1;  /* the woken task was itself being polled */
    uint32_t while_idle : 1;       /* the woken task was idle after a pending poll */
};
_Static_assert(sizeof(struct frd_wake) == 16, "struct frd_wake: 16 bytes");
_Static_assert(FRD_THREADS_MAX <= (1u << 30), "a thread index fits struct frd_wake");

enum frd_task_state {
    FRD_TASK_SPAWNED,   /* never polled */
    FRD_TASK_RUNNING,   /* inside a poll at the end */
    FRD_TASK_IDLE,      /* last poll pending, no wake since */
    FRD_TASK_RUNNABLE,  /* woken (or self-woken) after its last poll, not polled yet */
    FRD_TASK_READY,     /* last poll returned ready, not dropped */
    FRD_TASK_DROPPED,
};

/* What a task last said it waits on (its last fr_await*, fr_idle): sticky
 * until the next one, so a handle polled many times keeps its kind of wait. */
enum frd_wait {
    FRD_WAIT_UNKNOWN = 0,  /* no fr_await* or fr_idle seen */
    FRD_WAIT_INTERNAL = 1, /* fr_await: something in the program must wake it */
    FRD_WAIT_EXTERNAL = 2, /* fr_await_external: input from outside the process */
    FRD_WAIT_STOPPED = 3,  /* fr_idle: stopped, waits for nothing */
};

/* Eight-byte fields first, then four, then one: no padding inside (a model
 * holds one per task, 96 bytes). What can be found from other fields is not
 * kept: whether a poll of it runs now (its last poll's result says,
 * frd_task_open_poll), its spawn time (its first event's, frd_task_spawn_ns),
 * when it became runnable (its spawn, wake or poll that made it so says,
 * frd_task_ready_ns), its parent's id (its parent's instance has it, or the
 * model's far_parents: frd_task_parent), and when a task never polled last
 * awaited (the model's unpolled_awaits: frd_task_unpolled_await_ns). */
struct frd_task {
    uint64_t id;
    int64_t first_ns, last_ns; /* its first and last event in the recording (its
                                  spawn is its first: frd_task_spawn_ns) */

    struct frd_poll *polls;
    struct frd_wake *wakes;

    int64_t waker_zero_ns;  /* last time waker_refs fell to 0, INT64_MIN never */

    int64_t drop_ns;
    /* (when it became runnable, if it is: frd_task_ready_ns, from ready_from) */
    /* (its busy and idle time and scheduling delays: frd_task_figures,
     * computed from its polls when asked, not kept per task) */

    uint32_t name;       /* string id, 0 unknown */
    int32_t parent_inst; /* the parent's instance, FRD_NONE if it has no event in
                            the dump (or none was named) */
    uint32_t spawn_thread;
    uint32_t await_str; /* last fr_await label */
    uint32_t npolls;
    uint32_t nwakes;
    uint32_t waker_drops; /* waker_drop events seen */
    int32_t waker_refs;   /* clones minus drops seen (saturating) */
    int32_t ready_ref;   /* with ready_from: the wake or poll that made it
                            runnable (frd_task_ready_ns, frd_task_ready_wake) */

    int8_t wait;  /* enum frd_wait, as of the end of the recording */
    int8_t state; /* enum frd_task_state at the end of the recording */
    uint8_t ready_from; /* enum frd_ready: runnable, and since when;
                           FRD_READY_UNKNOWN: not runnable (or not known) */
    unsigned spawn_seen : 1;
    unsigned dropped : 1;
    unsigned waiting_unpolled : 1; /* awaited outside any poll (replay state) */
    unsigned stale_running : 1;    /* a poll began while its last one still ran:
                                      a poll before the last may be running */
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct frd_task) == 96,
               "struct frd_task: 96 bytes on a 64-bit machine, no padding");

/* When @t was spawned (its spawn event's time, its first), or INT64_MIN when
 * its spawn is not in the dump. */
static inline int64_t frd_task_spawn_ns(const struct frd_task *t)
{
    return t->spawn_seen ? t->first_ns : INT64_MIN;
}

/* When @from/@ref of task @t made it runnable: its spawn, wake @ref, or the
 * end of poll @ref (it was woken while that poll ran); INT64_MIN unknown. */
static inline int64_t frd__ready_ns(const struct frd_task *t, uint8_t from, int32_t ref)
{
    switch (from) {
    case FRD_READY_SPAWN:
        return frd_task_spawn_ns(t);
    case FRD_READY_WAKE:
        return t->wakes[ref].ns;
    case FRD_READY_SELF:
        return t->polls[ref].end_ns;
    default:
        return INT64_MIN;
    }
}

/* When @t became runnable, if it is at the end of the recording (or, while
 * the model is built, now): ns on the dump's clock, INT64_MIN if it is not
 * runnable or the recording does not tell. */
static inline int64_t frd_task_ready_ns(const struct frd_task *t)
{
    return frd__ready_ns(t, t->ready_from, t->ready_ref);
}

/* The poll of @t running now (its last, if that has not ended), or FRD_NONE.
 * After the model is built: a poll the task's thread had not ended when its
 * ring was copied. */
static inline int32_t frd_task_open_poll(const struct frd_task *t)
{
    return t->npolls && t->polls[t->npolls - 1].result == FRD_POLL_RUNNING
               ? (int32_t)t->npolls - 1
               : FRD_NONE;
}

/*
 * frd_poll_ready_ns - when poll @p of task @t became runnable, in ns on the
 * dump's clock: its task's spawn, the wake that woke it, or the end of the
 * poll during which it was woken (struct frd_poll's ready_from).
 * Return: that time, or INT64_MIN when the recording does not tell.
 */
static inline int64_t frd_poll_ready_ns(const struct frd_task *t, const struct frd_poll *p)
{
    return frd__ready_ns(t, p->ready_from, p->ready_ref);
}

/* The wake that made @t runnable since its ready_ns (an index into its
 * wakes), or FRD_NONE when it was not a wake (or it is not runnable). */
static inline int32_t frd_task_ready_wake(const struct frd_task *t)
{
    return t->ready_from == FRD_READY_WAKE ? t->ready_ref : FRD_NONE;
}

/* The wake that made poll @p runnable (an index into its task's wakes), or
 * FRD_NONE when it was not a wake. */
static inline int32_t frd_poll_ready_wake(const struct frd_poll *p)
{
    return p->ready_from == FRD_READY_WAKE ? p->ready_ref : FRD_NONE;
}

/* A task's figures from its polls (frd_task_figures). */
struct frd_task_figures {
    int64_t busy_ns; /* inside its polls, a poll running at the end counted
                        as far as its thread's ring covers */
    int64_t idle_ns; /* from each pending poll's end to its next poll's begin
                        (or to its drop, or the recording's end) */
    int64_t delay_p50_ns, delay_p99_ns; /* scheduling delay (runnable to the
                                           poll's begin) over its polls that
                                           know when they became runnable;
                                           -1 when none does */
};

struct frd_span {
    int64_t begin_ns, end_ns;
};

struct frd_poll_ref {
    int32_t task, poll;
};

struct frd_worker {
    struct frd_poll_ref *polls; /* in begin order */
    size_t npolls;
    struct frd_span *parked;    /* parked spans, in order */
    size_t nparked;
    int64_t busy_ns;
    /* The end of this thread's coverage: when the dump writer copied its
     * ring (or its newest held event, if later); events it recorded after
     * that may be missing. end_ns of the model when the dump gives no copy
     * time or the thread had exited. */
    int64_t covered_end_ns;
};

struct frd_protocol_note {
    int32_t task;
    uint32_t thread;
    int64_t ns;
    char what[96];
};

/* The parent a spawn named for task instance @task when that parent has no
 * instance in the dump (struct frd_model's far_parents). */
struct frd_far_parent {
    int32_t task;
    uint64_t parent;
};

/* When task instance @task, not polled yet, last called fr_await or
 * fr_await_external (struct frd_model's unpolled_awaits). */
struct frd_unpolled_await {
    int32_t task;
    int64_t ns;
};

struct frd_model {
    const struct frd_dump *dump;
    size_t nevents;     /* events replayed (every event the dump holds) */
    struct frd_mev *ev; /* merged timeline, time order: FRD_MODEL_TIMELINE only, else NULL */
    size_t nev;         /* entries in ev (nevents with FRD_MODEL_TIMELINE, else 0) */
    struct frd_task *tasks; /* in order of first appearance */
    size_t ntasks;
    struct frd_far_parent *far_parents; /* by task; see frd_task_parent */
    size_t nfar_parents;
    struct frd_unpolled_await *unpolled_awaits; /* by task, one each; see
                                                   frd_task_unpolled_await_ns */
    size_t nunpolled_awaits;
    struct frd_worker *workers; /* parallel to dump->threads */
    struct frd_protocol_note *notes;
    size_t nnotes;
    int64_t start_ns, end_ns; /* the recording window */
    /* Every thread's ring covers the recording up to covered_end_ns: the
     * earliest covered end of a live thread (workers[].covered_end_ns), or
     * end_ns when the dump gives no copy times (older dumps). Conclusions
     * about what did not happen by the end of the recording stop there. */
    int64_t covered_end_ns;
    int copy_times; /* the dump gave copy times for its threads */
    struct frd_model_mem *mem; /* where polls and wakes live (model.c) */
    struct frd_locks locks;    /* holders and waiters of locks (locks.h) */
};

/*
 * frd_task_parent - the id of task @t's parent (@t is one of @m's tasks), as
 * its spawn named it, or as the dump's SPAWNS section did for a task whose
 * spawn fell before the recording window.
 * Return: that id, or 0 when none was named.
 */
uint64_t frd_task_parent(const struct frd_model *m, const struct frd_task *t);

/* frd_task_far_parent - frd_task_parent when that parent has no instance in
 * the dump (no event in the window: only its id is known), else 0. */
uint64_t frd_task_far_parent(const struct frd_model *m, const struct frd_task *t);

/*
 * frd_task_unpolled_await_ns - when task @t of @m, if it was never polled in
 * the recording, last awaited (fr_await or fr_await_external outside any
 * poll: a loop's start call, uv_read_start, event_add).
 * Return: that time in ns on the dump's clock, or INT64_MIN when @t was
 * polled or awaited nothing before.
 */
int64_t frd_task_unpolled_await_ns(const struct frd_model *m, const struct frd_task *t);

/* Model internals (model.c, spawns.c): note that task @ti's parent @parent
 * has no instance in the dump (the build puts the table in task order once
 * the SPAWNS section has given its own). Return: 0 or -ENOMEM (then nothing
 * changed). */
int frd__model_far_parent(struct frd_model *m, int32_t ti, uint64_t parent);

/* frd_model_build_ex flags. */
#define FRD_MODEL_TIMELINE 1u /* keep the merged timeline in m->ev (needs a dump
                                 opened with FRD_OPEN_EVENTS) */

/*
 * frd_model_build_ex - merge the events of @d by time, straight from the
 * threads' pages, and replay them into @m. Nothing per event is kept unless
 * @flags has FRD_MODEL_TIMELINE. @d must outlive @m.
 * Return: 0, -ENOMEM, or -EINVAL for FRD_MODEL_TIMELINE on a dump opened
 * without FRD_OPEN_EVENTS.
 */
int frd_model_build_ex(const struct frd_dump *d, unsigned flags, struct frd_model *m);

/*
 * frd_model_build - frd_model_build_ex with FRD_MODEL_TIMELINE when @d was
 * opened with FRD_OPEN_EVENTS (as frd_open does), else without.
 */
int frd_model_build(const struct frd_dump *d, struct frd_model *m);

/* decoder/spawns.c: name (and give a parent to) each task whose spawn is
 * not in the dump from the SPAWNS section, where nothing contradicts it. */
void frd__model_spawn_names(struct frd_model *m);

/*
 * frd_silent_tasks - the tasks alive at the dump (the SPAWNS section) that
 * did nothing in the recording: no event of theirs in any ring, their spawn
 * older than the spawning thread's window. Oldest spawn first; *@out is a
 * malloc'ed array of pointers into the dump's entries (free it). A task is
 * listed once, by its newest entry. Return: how many, or -ENOMEM.
 */
ssize_t frd_silent_tasks(const struct frd_model *m, const struct frd_spawn ***out);

void frd_model_free(struct frd_model *m);

/*
 * frd_model_covered - true if every thread's ring holds all of its events
 * between @a_ns and @b_ns: only then may a conclusion rest on an event being
 * absent from that span. False when @b_ns passes a live thread's
 * covered_end_ns (its ring was copied before @b_ns).
 */
int frd_model_covered(const struct frd_model *m, int64_t a_ns, int64_t b_ns);

/*
 * frd_model_thread_covered - true if thread @thread's ring holds all of its
 * events between @a_ns and @b_ns (the question for that thread alone).
 */
int frd_model_thread_covered(const struct frd_model *m, uint32_t thread, int64_t a_ns,
                             int64_t b_ns);

/*
 * frd_model_parked_ns - the longest time any worker (thread that polled or
 * parked) spent parked within [@a_ns, @b_ns].
 */
int64_t frd_model_parked_ns(const struct frd_model *m, int64_t a_ns, int64_t b_ns);

/*
 * frd_model_worker_parked_ns - the time thread @thread spent parked within
 * [@a_ns, @b_ns] (a binary search over its parked spans).
 */
int64_t frd_model_worker_parked_ns(const struct frd_model *m, uint32_t thread, int64_t a_ns,
                                   int64_t b_ns);

/*
 * frd_model_task_at - the instance of task @id live at @ns (the latest one
 * that appeared at or before it), or FRD_NONE.
 */
int32_t frd_model_task_at(const struct frd_model *m, uint64_t id, int64_t ns);

/*
 * frd_task_figures - busy and idle time and the median and 99th percentile
 * scheduling delay of task instance @ti of a built model, computed from its
 * polls (nanoseconds). Return: 0, or -ENOMEM (a task with more than 16
 * polls that know their delay needs a buffer to sort them).
 */
int frd_task_figures(const struct frd_model *m, int32_t ti, struct frd_task_figures *f);

/* frd_task_state_name - "spawned", "running", "idle", "runnable", ... */
/* frd_wait_name - "internal", "external", "stopped", or NULL when unknown. */
const char *frd_wait_name(int wait);

const char *frd_task_state_name(int state);

/* frd_thread_label - the thread's name, or "tid N" when it has none, in @buf. */
const char *frd_thread_label(const struct frd_model *m, uint32_t thread, char *buf,
                             size_t len);

#endif /* FRD_MODEL_H */
