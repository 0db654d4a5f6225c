/*
 * event.c - waiting for something other than time: intrusive FIFO queues of
 * waiters, and one-shot events built on them. A waiter holds a cloned waker
 * while it is queued; the waking side hands it back through rt_waker_wake(),
 * the cancelling side through rt_waker_drop(). These are the two ways a
 * waker's story may end, and getting the second one wrong on a timeout path
 * is the lost wakeup the demo plants (workload.c, cache_refresh).
 */
#include "runtime.h"

static void unlink_waiter(struct rt_waitq *q, struct rt_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
}

void rt_waitq_push(struct rt_waitq *q, struct rt_waiter *w, struct rt_task *self)
{
    w->waker = rt_waker_clone(self);
    w->value = NULL;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

bool rt_waitq_remove(struct rt_waitq *q, struct rt_waiter *w)
{
    struct rt_task *waker = w->waker;

    if (!waker)
        return false;
    unlink_waiter(q, w);
    w->waker = NULL;
    rt_waker_drop(waker);
    return true;
}

bool rt_waitq_wake_one(struct rt_waitq *q, void *value)
{
    struct rt_waiter *w = q->head;
    struct rt_task *waker;

    if (!w)
        return false;
    unlink_waiter(q, w);
    waker = w->waker;
    w->value = value;
    w->waker = NULL;
    /* @w may be freed from here on: the wake can let its task finish. */
    rt_waker_wake(waker);
    return true;
}

void rt_event_init(struct rt_event *ev)
{
    pthread_mutex_init(&ev->lock, NULL);
    ev->set = false;
    ev->waiters.head = ev->waiters.tail = NULL;
}

void rt_event_destroy(struct rt_event *ev)
{
    pthread_mutex_destroy(&ev->lock);
}

bool rt_event_wait(struct rt_event *ev, struct rt_waiter *w, struct rt_task *self)
{
    bool set;

    pthread_mutex_lock(&ev->lock);
    set = ev->set;
    if (!set && !w->waker)
        rt_waitq_push(&ev->waiters, w, self);
    pthread_mutex_unlock(&ev->lock);
    return set;
}

bool rt_event_cancel(struct rt_event *ev, struct rt_waiter *w)
{
    bool was;

    pthread_mutex_lock(&ev->lock);
    was = rt_waitq_remove(&ev->waiters, w);
    pthread_mutex_unlock(&ev->lock);
    return was;
}

void rt_event_set(struct rt_event *ev)
{
    pthread_mutex_lock(&ev->lock);
    ev->set = true;
    while (rt_waitq_wake_one(&ev->waiters, NULL))
        ;
    pthread_mutex_unlock(&ev->lock);
}
