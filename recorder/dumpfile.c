/*
 * dumpfile.c - one dump file's life on disk, async-signal-safe throughout.
 *
 *   open      re-open the dump directory (O_DIRECTORY|O_NOFOLLOW: a directory
 *             swapped for a symlink is refused, never written through), then
 *             create ".flightrec-<pid>-<seq>.frd.tmp" with O_EXCL|O_NOFOLLOW,
 *             mode 0600;
 *   write     full writes, EINTR retried, the first error kept;
 *   commit    fsync, rename to "flightrec-<pid>-<UTC time>-<seq>.frd", fsync
 *             the directory: the final name only ever names a whole file;
 *   abort     close and unlink the temporary (disk full, I/O error);
 *   retain    keep at most max_dumps final dumps, removing the oldest.
 *
 * Only open/openat/write/fsync/renameat/unlinkat/fstatat/getdents64 are used:
 * all of them are system calls a signal handler may make.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat */
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static size_t put_str(char *dst, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(dst + at, s, n);
    return at + n;
}

int fr__dumpfile_open(struct fr_dumpfile *f, uint64_t seq, uint64_t real_ns)
{
    f->fd = -1;
    f->dirfd = open(fr__cfg.dump_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (f->dirfd < 0)
        return -errno;

    char pid[24], sq[24], utc[17];
    pid[fr__fmt_u64(pid, (uint64_t)getpid())] = '\0';
    sq[fr__fmt_u64(sq, seq)] = '\0';
    fr__fmt_utc(utc, real_ns);

    size_t n = put_str(f->tmp, 0, ".flightrec-");
    n = put_str(f->tmp, n, pid);
    n = put_str(f->tmp, n, "-");
    n = put_str(f->tmp, n, sq);
    n = put_str(f->tmp, n, ".frd.tmp");
    f->tmp[n] = '\0';

    n = put_str(f->final, 0, "flightrec-");
    n = put_str(f->final, n, pid);
    n = put_str(f->final, n, "-");
    n = put_str(f->final, n, utc);
    n = put_str(f->final, n, "-");
    n = put_str(f->final, n, sq);
    n = put_str(f->final, n, ".frd");
    f->final[n] = '\0';

    /* A stale temporary of a recycled pid may exist: it was never whole. */
    unlinkat(f->dirfd, f->tmp, 0);
    f->fd = openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        int err = -errno;
        close(f->dirfd);
        f->dirfd = -1;
        return err;
    }
    return 0;
}

int fr__dumpfile_write(struct fr_dumpfile *f, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void retain(int dirfd, unsigned max_dumps);

int fr__dumpfile_commit(struct fr_dumpfile *f, unsigned max_dumps)
{
    int err = 0;
    if (fsync(f->fd) != 0 && errno != EINVAL && errno != EROFS)
        err = -errno;
    if (close(f->fd) != 0 && !err && errno != EINTR)
        err = -errno;
    f->fd = -1;
    if (!err && renameat(f->dirfd, f->tmp, f->dirfd, f->final) != 0)
        err = -errno;
    if (err) {
        unlinkat(f->dirfd, f->tmp, 0);
    } else {
        fsync(f->dirfd); /* make the rename itself durable */
        if (max_dumps)
            retain(f->dirfd, max_dumps);
    }
    close(f->dirfd);
    f->dirfd = -1;
    return err;
}

void fr__dumpfile_abort(struct fr_dumpfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->dirfd >= 0) {
        unlinkat(f->dirfd, f->tmp, 0);
        close(f->dirfd);
    }
    f->dirfd = -1;
}

static int is_dump_name(const char *name)
{
    size_t n = strlen(name);
    return n > 14 && memcmp(name, "flightrec-", 10) == 0 && memcmp(name + n - 4, ".frd", 4) == 0;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/*
 * One pass over the directory: count the dumps and find the oldest (by
 * modification time, then name). readdir() may allocate; getdents64 does not.
 */
static unsigned scan(int dirfd, char *oldest, size_t oldest_cap)
{
    char buf[4096] __attribute__((aligned(8)));
    unsigned count = 0;
    struct timespec best = { 0, 0 };
    oldest[0] = '\0';
    if (lseek(dirfd, 0, SEEK_SET) != 0)
        return 0;
    for (;;) {
        long n = syscall(SYS_getdents64, dirfd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (!is_dump_name(d->d_name))
                continue;
            struct stat st;
            if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
            count++;
            int older = !oldest[0] || st.st_mtim.tv_sec < best.tv_sec ||
                        (st.st_mtim.tv_sec == best.tv_sec &&
                         (st.st_mtim.tv_nsec < best.tv_nsec ||
                          (st.st_mtim.tv_nsec == best.tv_nsec && strcmp(d->d_name, oldest) < 0)));
            if (older && strlen(d->d_name) < oldest_cap) {
                best = st.st_mtim;
                fr__strlcpy(oldest, d->d_name, oldest_cap);
            }
        }
    }
    return count;
}

static void retain(int dirfd, unsigned max_dumps)
{
    char oldest[256];
    for (int guard = 0; guard < 1024; guard++) {
        unsigned count = scan(dirfd, oldest, sizeof oldest);
        if (count <= max_dumps || !oldest[0])
            return;
        if (unlinkat(dirfd, oldest, 0) != 0)
            return;
    }
}
