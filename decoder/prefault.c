/*
 * decoder/prefault.c - the prefaulter (prefault.h): a helper thread that
 * faults in memory the decoder asks for, ahead of its use, so the kernel's
 * page clearing overlaps with decoding instead of stalling it. The queue is
 * a small ring under a mutex; the owner asks once per megabyte or so, so
 * the lock costs nothing next to the work it moves.
 */
#include "prefault.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

int frd__prefault_always;

struct pf_impl {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct {
        void *p;
        size_t n;
    } q[FRD_PREFAULT_QUEUE];
    unsigned head, tail; /* tail - head requests queued, under mu */
    int stop;            /* under mu */
};

static void *pf_main(void *arg)
{
    struct pf_impl *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->head == s->tail)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop)
            break;
        void *p = s->q[s->head % FRD_PREFAULT_QUEUE].p;
        size_t n = s->q[s->head % FRD_PREFAULT_QUEUE].n;
        s->head++;
        pthread_mutex_unlock(&s->mu);
        frd__prefault(p, n);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int frd__prefaulter_start(struct frd_prefaulter *pf)
{
    pf->impl = NULL;
#ifdef MADV_POPULATE_WRITE
    struct pf_impl *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = pthread_create(&s->thread, NULL, pf_main, s);
    if (rc) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -rc;
    }
    pf->impl = s;
    return 0;
#else
    return -ENOSYS;
#endif
}

void frd__prefaulter_ask(struct frd_prefaulter *pf, void *p, size_t n)
{
    struct pf_impl *s = pf->impl;
    if (!s || n < FRD_PREFAULT_MIN)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->tail - s->head < FRD_PREFAULT_QUEUE) {
        s->q[s->tail % FRD_PREFAULT_QUEUE].p = p;
        s->q[s->tail % FRD_PREFAULT_QUEUE].n = n;
        s->tail++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void frd__prefaulter_stop(struct frd_prefaulter *pf)
{
    struct pf_impl *s = pf->impl;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    pf->impl = NULL;
}
