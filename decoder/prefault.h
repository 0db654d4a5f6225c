/*
 * decoder/prefault.h - fault in, in one system call, memory the decoder is
 * about to fill: the inflated sections and the model's tasks, polls and wakes
 * (hundreds of MiB for a dump of tens of millions of events). Taking those
 * pages one fault at a time costs as much as everything else the decoder
 * does; MADV_POPULATE_WRITE (Linux 5.14) maps them in bulk. Without it (an
 * older kernel or libc), the pages fault in as they are written, as before.
 * Only memory that will be written soon is prefaulted (at most one step of
 * each growing array ahead, with a prefaulter), so the peak RSS grows by
 * little. Not part of the decoder's API.
 */
#ifndef FRD_PREFAULT_H
#define FRD_PREFAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

/* Smallest range worth a system call. */
#define FRD_PREFAULT_MIN ((size_t)256 << 10)

/* Prefault the whole pages inside [@p, @p + @n). Return: 0 when they are
 * mapped now, -1 when the range was too small, the call failed (part of it
 * not mapped) or the system has no MADV_POPULATE_WRITE. */
static inline int frd__prefault(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (n >= FRD_PREFAULT_MIN && b > a)
        return madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0 ? 0 : -1;
#else
    (void)p;
    (void)n;
#endif
    return -1;
}

/* Huge pages' size, where the kernel has transparent huge pages (x86-64 and
 * AArch64 with 4 KiB pages). */
#define FRD_HUGE_PAGE ((size_t)2 << 20)

/*
 * frd__hugepages - ask for transparent huge pages (MADV_HUGEPAGE) for the
 * whole huge pages inside [@p, @p + @n), memory the decoder is about to
 * fill. A hint: where the system has them only on request (THP "madvise",
 * Debian's default) this gives them; where it has none, nothing happens.
 * On a VM that shadows the guest's page tables, each 4 KiB page's first
 * user access traps into the hypervisor (~8 us a page on the VM of the
 * README's cost table); a huge page takes one fault for 512 of them. What
 * it then costs is the kernel clearing it, and the host backing it when the
 * guest memory under it was not in use lately.
 */
static inline void frd__hugepages(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    uintptr_t a = ((uintptr_t)p + FRD_HUGE_PAGE - 1) & ~(uintptr_t)(FRD_HUGE_PAGE - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(FRD_HUGE_PAGE - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/*
 * A prefaulter: one helper thread that faults in, ahead of time, memory the
 * decoder will fill next (the next step of a growing array, the next chunk),
 * so that the kernel's work of mapping and clearing those pages runs on
 * another CPU while this one decodes. Requests are hints: one that finds the
 * queue full is dropped, and pages nobody faulted in ahead fault in when
 * they are written, as without a prefaulter.
 *
 * After the kernel has mapped a request's pages, the helper also loads one
 * byte of each from user space. On a virtual machine that shadows the
 * guest's page tables (this project's CI VMs), a page the kernel mapped
 * still costs the first user access to it a trap into the hypervisor,
 * 4-6 us a page there, about as much as mapping it: the load takes that
 * trap on the helper's CPU. It reads the byte and discards it (an assembly
 * load, outside the C memory model, so the owner may already be writing
 * the page), and changes nothing. Because it reads, the owner must not
 * free, move or unmap memory it asked about while a request for it may be
 * pending: frd__prefaulter_forget first. Its owner alone asks, forgets and
 * stops it.
 */
#ifndef FRD_PREFAULT_QUEUE
#define FRD_PREFAULT_QUEUE 16 /* requests waiting, at most */
#endif

/* Tests: nonzero starts a prefaulter for every file and model, however
 * small, so that the threaded path runs (under the sanitizers too). */
extern int frd__prefault_always;

struct frd_prefaulter {
    void *impl; /* NULL: not running (asking is then a no-op) */
};

/* frd__prefaulter_start - start the helper thread (nothing happens without
 * MADV_POPULATE_WRITE). Return: 0, or a negative errno (then @pf stays
 * stopped and asking does nothing). */
int frd__prefaulter_start(struct frd_prefaulter *pf);

/* frd__prefaulter_ask - queue [@p, @p + @n) to be faulted in; never waits
 * for it to be done. */
void frd__prefaulter_ask(struct frd_prefaulter *pf, void *p, size_t n);

/* frd__prefaulter_forget - drop what is queued and wait for the request
 * being served: afterwards the helper touches nothing the owner asked for
 * before, which it may then free or move. Cheap when nothing is pending;
 * a no-op on a stopped prefaulter. */
void frd__prefaulter_forget(struct frd_prefaulter *pf);

/* frd__prefaulter_stop - drop what is queued, wait for the request being
 * served, end the thread. Stopping a stopped one does nothing. */
void frd__prefaulter_stop(struct frd_prefaulter *pf);

#endif /* FRD_PREFAULT_H */
