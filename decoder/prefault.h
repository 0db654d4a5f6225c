/*
 * decoder/prefault.h - fault in, in one system call, memory the decoder is
 * about to fill: the inflated sections and the model's tasks, polls and wakes
 * (hundreds of MiB for a dump of tens of millions of events). Taking those
 * pages one fault at a time costs as much as everything else the decoder
 * does; MADV_POPULATE_WRITE (Linux 5.14) maps them in bulk. Without it (an
 * older kernel or libc), the pages fault in as they are written, as before.
 * Only memory that will be written soon is prefaulted, so the peak RSS does
 * not grow. Not part of the decoder's API.
 */
#ifndef FRD_PREFAULT_H
#define FRD_PREFAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

/* Smallest range worth a system call. */
#define FRD_PREFAULT_MIN ((size_t)256 << 10)

/* Prefault the whole pages inside [@p, @p + @n). */
static inline void frd__prefault(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (n >= FRD_PREFAULT_MIN && b > a)
        (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

#endif /* FRD_PREFAULT_H */
