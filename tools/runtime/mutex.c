/*
 * mutex.c - an async mutex for tasks: a task that finds it held queues a
 * waiter and returns pending; unlock hands the mutex straight to the first
 * waiter (FIFO) and wakes it, so a later arrival never overtakes a waiter.
 *
 * It records flightrec's lock hooks: fr_lock_wait on every request (the
 * mutex's name comes with it), fr_lock_acquire when the task has it (at once,
 * or when handed over: recorded by the releasing side, at the hand-over), and
 * fr_lock_release on unlock. `flightrec locks` and the deadlock finding read
 * them.
 */
#include <flightrec.h>

#include "runtime.h"

void rt_mutex_init(struct rt_mutex *m, const char *name)
{
    pthread_mutex_init(&m->lock, NULL);
    m->name = name;
    m->holder = 0;
    m->waiters.head = m->waiters.tail = NULL;
}

void rt_mutex_destroy(struct rt_mutex *m)
{
    pthread_mutex_destroy(&m->lock);
}

static uint64_t lock_id(const struct rt_mutex *m)
{
    return (uint64_t)(uintptr_t)m;
}

bool rt_mutex_lock(struct rt_mutex *m, struct rt_waiter *w, struct rt_task *self)
{
    uint64_t id = rt_task_id(self);
    bool got = false;

    pthread_mutex_lock(&m->lock);
    if (m->holder == id) {
        got = true; /* handed over by rt_mutex_unlock (or asked twice) */
    } else if (!w->waker) {
        fr_lock_wait(id, lock_id(m), m->name);
        if (m->holder == 0) {
            m->holder = id;
            fr_lock_acquire(id, lock_id(m));
            got = true;
        } else {
            rt_waitq_push(&m->waiters, w, self);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return got;
}

void rt_mutex_unlock(struct rt_mutex *m, struct rt_task *self)
{
    pthread_mutex_lock(&m->lock);
    fr_lock_release(rt_task_id(self), lock_id(m));
    m->holder = 0;
    if (m->waiters.head) {
        /* hand it over: the next waiter holds it from now on */
        m->holder = rt_task_id(m->waiters.head->waker);
        fr_lock_acquire(m->holder, lock_id(m));
        rt_waitq_wake_one(&m->waiters, NULL);
    }
    pthread_mutex_unlock(&m->lock);
}
