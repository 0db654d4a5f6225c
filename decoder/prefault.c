/*
 * decoder/prefault.c - the prefaulter (prefault.h): a helper thread that
 * faults in memory the decoder asks for, ahead of its use, so the kernel's
 * page clearing (and, on a VM with shadow page tables, the first user
 * access's trap) overlaps with decoding instead of stalling it. The queue
 * is a small ring under a mutex; the owner asks once per megabyte or so,
 * so the lock costs nothing next to the work it moves.
 */
#include "prefault.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

int frd__prefault_always;

struct pf_impl {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a request or stop came */
    pthread_cond_t idle_cv; /* the request being served is done */
    struct {
        void *p;
        size_t n;
    } q[FRD_PREFAULT_QUEUE];
    unsigned head, tail; /* tail - head requests queued, under mu */
    int stop;            /* under mu */
    int busy;            /* a request is being served, under mu */
};

/*
 * Load one byte of every 4 KiB page in [@p, @p + @n), discarding it: the
 * first user-space access to each page, which a VM that shadows the page
 * tables traps, happens here and not in the owner's first store. The load
 * is an assembly instruction, so a store the owner makes to the same byte
 * meanwhile is no data race in the C sense (the value is never used).
 * Elsewhere than x86-64 and AArch64 nothing is loaded.
 */
static void touch(const char *p, size_t n)
{
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    for (; a < b; a += 4096) {
#if defined(__x86_64__)
        unsigned char v;
        __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
#elif defined(__aarch64__)
        unsigned v;
        __asm__ volatile("ldrb %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
#else
        break;
#endif
    }
}

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
        s->busy = 1;
        pthread_mutex_unlock(&s->mu);
        /* touch only what the kernel has just mapped: a range that is
         * partly gone (freed without asking to forget) is left alone */
        if (frd__prefault(p, n) == 0)
            touch(p, n);
        pthread_mutex_lock(&s->mu);
        s->busy = 0;
        pthread_cond_broadcast(&s->idle_cv);
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
    pthread_cond_init(&s->idle_cv, NULL);
    int rc = pthread_create(&s->thread, NULL, pf_main, s);
    if (rc) {
        pthread_cond_destroy(&s->idle_cv);
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

void frd__prefaulter_forget(struct frd_prefaulter *pf)
{
    struct pf_impl *s = pf->impl;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->head = s->tail;
    while (s->busy)
        pthread_cond_wait(&s->idle_cv, &s->mu);
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
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    pf->impl = NULL;
}
