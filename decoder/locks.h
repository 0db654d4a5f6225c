/*
 * decoder/locks.h - the resource side of the model: who holds which lock, who
 * waits for it and since when (fr_lock_wait, fr_lock_acquire,
 * fr_lock_release).
 *
 * The model's replay (model.c) hands every lock event to frd__locks_step, in
 * time order, with the task instance it is for; nothing else in the model
 * depends on locks. What comes out, per lock: its name, acquisitions (and how
 * many had to wait for another task), wait and hold times, and the holders
 * at the end of the recording; per wait: the task, when it began and when it
 * was granted (or that it was still waiting at the end), and which holder's
 * release preceded the grant (the hand-over the Chrome export draws).
 *
 * History is finite: a lock acquired before a ring's oldest page has no
 * holder the model knows of; its waiters are then "behind an unknown holder",
 * and a release the model cannot match to an acquisition is kept as a stray
 * release, judged later (analyze_locks.c) against what the rings cover.
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef FRD_LOCKS_H
#define FRD_LOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "reader.h"

struct frd_model;

/* A task holding a lock now (at the end of the replay). */
struct frd_lock_hold {
    int32_t task;     /* task instance */
    int64_t since_ns; /* its acquisition */
};

struct frd_lock {
    uint64_t id;
    uint32_t name; /* string id from its latest fr_lock_wait, 0 unknown */
    uint64_t acquisitions;
    uint64_t contended; /* acquisitions that waited: queued behind another waiter, or
                           granted after another task's release */
    int64_t wait_total_ns, wait_max_ns;
    int64_t hold_max_ns; /* longest hold released in the recording */
    int32_t hold_max_task; /* who held it that long, FRD_NONE */
    struct frd_lock_hold *holders; /* holders at the end, in acquisition order */
    size_t nholders, cap_holders;
    size_t waiting; /* open waits now (replay state; at the end: still waiting) */
    int32_t last_release_task; /* replay state: the latest release */
    int64_t last_release_ns;
    uint32_t last_release_thread;
};

/* One fr_lock_wait. */
struct frd_lock_wait {
    int32_t task;  /* task instance */
    uint32_t lock; /* index into frd_locks.v */
    int64_t begin_ns;
    int64_t end_ns;        /* granted (acquired) at, or INT64_MIN: not granted */
    int32_t after_task;    /* the holder whose release came last before the grant, FRD_NONE */
    int64_t after_ns;      /* that release's time */
    uint32_t after_thread; /* and thread */
    uint32_t thread;       /* where the wait was recorded */
    uint32_t end_thread;   /* where the grant was recorded */
    int8_t contended;      /* another task waited for it first, or released it meanwhile */
    int8_t open;           /* still waiting at the end of the recording */
};

/* A release by a task the model does not know as a holder. */
struct frd_lock_stray {
    int32_t task;
    uint32_t lock;
    uint32_t thread;
    int64_t ns;
};

struct frd_locks {
    struct frd_lock *v; /* in order of first appearance */
    size_t n;
    struct frd_lock_wait *waits; /* in begin order */
    size_t nwaits;
    struct frd_lock_stray *strays;
    size_t nstrays;
    /* per task instance: index into waits of its open wait, FRD_NONE (-1) */
    int32_t *task_wait;
    size_t ntask_wait;
    /* internal: capacities and the id -> index map */
    size_t cap_v, cap_waits, cap_strays, cap_task_wait;
    uint32_t *map; /* index + 1, 0 empty */
    size_t map_cap;
    int nomem; /* an allocation failed: the lock model is incomplete */
};

/*
 * frd__locks_step - replay lock event @e (FR_EV_LOCK_*) of task instance
 * @task on thread @thread at @ns into @l. Called by the model in time order.
 */
void frd__locks_step(struct frd_locks *l, int32_t task, uint32_t thread,
                     const struct frd_event *e, int64_t ns);

void frd__locks_free(struct frd_locks *l);

/* frd_lock_find - the index of lock @id in @l, or -1. */
int64_t frd_lock_find(const struct frd_locks *l, uint64_t id);

/*
 * frd_lock_open_wait - the wait task instance @task was still in at the end
 * of the recording, or NULL.
 */
const struct frd_lock_wait *frd_lock_open_wait(const struct frd_locks *l, int32_t task);

#endif /* FRD_LOCKS_H */
