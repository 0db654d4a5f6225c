/*
 * runtime.h - a small multi-threaded task runtime, instrumented with flightrec.
 *
 * This is the reference integration: a real (if small) executor whose every
 * scheduling decision is reported through the public hooks of <flightrec.h>.
 * Tasks are state machines: a poll function runs one step and returns
 * RT_READY (finished) or RT_PENDING (waiting; something holding a waker will
 * wake it). N worker threads poll tasks from their own local run queue and
 * from a shared injector queue, and park on a condition variable when there is
 * nothing to do. A timer thread fires deadlines. Wakers are reference-counted
 * handles to a task; waiter queues and one-shot events are built on them. The
 * demo workload (workload.c), the integration tests and the benchmarks use it.
 * Functions here abort on allocation failure: it is a demo runtime, not a
 * library with recoverable errors.
 */
#ifndef FLIGHTREC_DEMO_RUNTIME_H
#define FLIGHTREC_DEMO_RUNTIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct rt_runtime;
struct rt_task;

enum rt_poll { RT_PENDING = 0, RT_READY = 1 };

/*
 * A task's body. Called by a worker each time the task is scheduled, with the
 * task itself (for wakers and ids) and the state pointer given to rt_spawn().
 * Before returning RT_PENDING the function must have handed a waker to
 * whatever it waits for (a timer, a waiter queue, a child), or the task is
 * never polled again: that is precisely a lost wakeup.
 */
typedef enum rt_poll (*rt_poll_fn)(struct rt_task *self, void *state);

/* ---- runtime lifecycle ---------------------------------------------------- */

/*
 * rt_create - start a runtime with @workers worker threads (at least 1) and
 * one timer thread, and return once every worker runs. Worker threads name
 * themselves "worker-N" in dumps.
 *
 * Return: the runtime (never NULL; aborts if threads cannot be started).
 */
struct rt_runtime *rt_create(unsigned workers);

/*
 * rt_destroy - stop the workers and the timer thread and free the runtime.
 * Tasks still pending (waiting on something that will never come, for
 * instance) and timers not yet fired are abandoned, not freed: this is meant
 * for the end of a process. Must not be called from a task.
 */
void rt_destroy(struct rt_runtime *rt);

/* rt_live_tasks - tasks spawned and not yet finished. */
long rt_live_tasks(const struct rt_runtime *rt);

/* rt_now_ns - CLOCK_MONOTONIC in nanoseconds; the clock of all deadlines. */
uint64_t rt_now_ns(void);

/* ---- tasks ---------------------------------------------------------------- */

/*
 * rt_spawn - create a task and schedule its first poll.
 * @rt: the runtime.
 * @name: a static or long-lived string naming the kind of task ("request").
 * @poll: the task's body.
 * @state: passed to every poll; owned by the task from now on.
 * @free_state: called with @state once the task has finished and the last
 *              waker is gone (NULL: nothing to free).
 *
 * Called from a task, the new task is a child of it (for flightrec) and goes
 * to the calling worker's local queue; from any other thread it goes to the
 * injector queue and an idle worker is woken.
 *
 * Return: the task id (nonzero, unique for the life of the runtime).
 */
uint64_t rt_spawn(struct rt_runtime *rt, const char *name, rt_poll_fn poll, void *state,
                  void (*free_state)(void *));

/* rt_task_id - the id flightrec knows @task by. */
uint64_t rt_task_id(const struct rt_task *task);

/* rt_task_runtime - the runtime @task runs on. */
struct rt_runtime *rt_task_runtime(const struct rt_task *task);

/* rt_current - the task being polled on the calling thread, or NULL. */
struct rt_task *rt_current(void);

/* ---- wakers --------------------------------------------------------------- */
/*
 * A waker is a counted reference to a task, represented by the task pointer
 * itself. Whoever will wake a task later holds one: take it with
 * rt_waker_clone() during the task's poll, then either wake through it
 * (rt_waker_wake, which consumes it) or give it up (rt_waker_drop). The task's
 * memory lives until it has finished and every waker is gone, so a waker may
 * safely outlive the task: waking a finished task does nothing.
 */

/* rt_waker_clone - one more waker for @task. Return: @task. */
struct rt_task *rt_waker_clone(struct rt_task *task);

/* rt_waker_drop - give up a waker without waking. @waker is invalid afterwards. */
void rt_waker_drop(struct rt_task *waker);

/*
 * rt_waker_wake - wake the task and give up the waker. An idle task is
 * scheduled exactly once however many wakes arrive; a task woken while it is
 * being polled is polled again as soon as that poll returns pending.
 */
void rt_waker_wake(struct rt_task *waker);

/* rt_waker_wake_by_ref - wake the task and keep the waker. */
void rt_waker_wake_by_ref(struct rt_task *waker);

/* ---- timers --------------------------------------------------------------- */

/*
 * A timer is owned by its user (usually embedded in a task's state) and fired
 * on the runtime's timer thread. `index` is the timer's slot in the heap while
 * armed and -1 otherwise; only the runtime touches the fields after
 * rt_timer_init().
 */
struct rt_timer {
    uint64_t deadline_ns;
    void (*fn)(void *arg); /* runs on the timer thread, without runtime locks held */
    void *arg;
    long index;
};

/* rt_timer_init - prepare @timer to call @fn(@arg) when it fires. */
void rt_timer_init(struct rt_timer *timer, void (*fn)(void *arg), void *arg);

/* rt_timer_start - arm @timer (not already armed) for @deadline_ns (rt_now_ns() clock). */
void rt_timer_start(struct rt_runtime *rt, struct rt_timer *timer, uint64_t deadline_ns);

/*
 * rt_timer_cancel - disarm @timer.
 * Return: true if it was armed and now will not fire (the caller undoes what
 * the callback would have undone, e.g. drops the waker in @arg); false if it
 * has already fired or is firing right now, or was never armed.
 */
bool rt_timer_cancel(struct rt_runtime *rt, struct rt_timer *timer);

/*
 * rt_sleep_until - wake the calling task @self at @deadline_ns. Uses a timer
 * inside the task, so a task has at most one sleep armed at a time; the timer
 * holds a waker until it fires. The task checks rt_now_ns() >= deadline when
 * it is polled again.
 */
void rt_sleep_until(struct rt_task *self, uint64_t deadline_ns);

/* ---- waiter queues and events --------------------------------------------- */

/*
 * A waiter is the node a task puts into a queue of waiters (embedded in the
 * task's state). It is registered exactly when `waker` is not NULL. `value`
 * carries a hand-off from the waking side (a pool connection, say).
 */
struct rt_waiter {
    struct rt_waiter *prev, *next;
    struct rt_task *waker;
    void *value;
};

/* A FIFO of waiters; the user serialises access with a lock of its own. */
struct rt_waitq {
    struct rt_waiter *head, *tail;
};

/* rt_waitq_push - register @w for @self at the tail (clones @self's waker). */
void rt_waitq_push(struct rt_waitq *q, struct rt_waiter *w, struct rt_task *self);

/* rt_waitq_remove - unregister @w if registered. Return: true if it was. */
bool rt_waitq_remove(struct rt_waitq *q, struct rt_waiter *w);

/*
 * rt_waitq_wake_one - unregister the head waiter, store @value in it and wake
 * its task. Return: true if there was a waiter.
 */
bool rt_waitq_wake_one(struct rt_waitq *q, void *value);

/*
 * A one-shot event: waiters wait until it is set; once set it stays set.
 * Used for "the reply has arrived" or "the lock was released".
 */
struct rt_event {
    pthread_mutex_t lock;
    bool set;
    struct rt_waitq waiters;
};

void rt_event_init(struct rt_event *ev);
void rt_event_destroy(struct rt_event *ev);

/*
 * rt_event_wait - from a poll of @self: has @ev been set? If not, make sure
 * @w is registered so that rt_event_set() wakes @self.
 * Return: true if set (and @w is not registered); false if the caller should
 * return RT_PENDING.
 */
bool rt_event_wait(struct rt_event *ev, struct rt_waiter *w, struct rt_task *self);

/* rt_event_cancel - stop waiting: unregister @w. Return: true if it was registered. */
bool rt_event_cancel(struct rt_event *ev, struct rt_waiter *w);

/* rt_event_set - set @ev and wake every waiter. */
void rt_event_set(struct rt_event *ev);

/* ---- async mutex (mutex.c) ------------------------------------------------ */

/*
 * An async mutex: a task waits for it by returning pending, never by blocking
 * its worker. Unlock hands it to the first waiter (FIFO). It records
 * fr_lock_wait/acquire/release under @name, so `flightrec locks` shows it and
 * `flightrec analyze` finds deadlocks on it.
 */
struct rt_mutex {
    pthread_mutex_t lock;
    const char *name;
    uint64_t holder; /* task id, 0: free */
    struct rt_waitq waiters;
};

void rt_mutex_init(struct rt_mutex *m, const char *name);
void rt_mutex_destroy(struct rt_mutex *m);

/*
 * rt_mutex_lock - from a poll of @self: take @m. Return: true if @self holds
 * it now (call again after being woken: true once it was handed over); false
 * after queueing @w, and the caller returns RT_PENDING.
 */
bool rt_mutex_lock(struct rt_mutex *m, struct rt_waiter *w, struct rt_task *self);

/* rt_mutex_unlock - let @m go (@self holds it); the first waiter gets it and is woken. */
void rt_mutex_unlock(struct rt_mutex *m, struct rt_task *self);

#endif /* FLIGHTREC_DEMO_RUNTIME_H */
