/*
 * dumpfile.c - one dump file's life on disk, async-signal-safe throughout.
 *
 *   init      at fr_init: open and hold the dump directory (O_DIRECTORY|
 *             O_NOFOLLOW) and one spare descriptor per writer context, and
 *             draw this process's unique name component;
 *   open      create ".flightrec-<pid>-<unique>-<seq>.frd.tmp" in the held
 *             directory with O_EXCL|O_NOFOLLOW, mode 0600, and flock it (a
 *             temporary nobody holds is an interrupted dump's leftover);
 *   write     full writes, EINTR retried, the first error kept;
 *   commit    fsync, rename to "flightrec-<pid>-<UTC time>-<seq>-<unique>.frd"
 *             without ever replacing a file (RENAME_NOREPLACE, else link +
 *             unlink), fsync the directory: a final name only names a whole
 *             file, and never another process's dump;
 *   abort     close and unlink the temporary (disk full, I/O error);
 *   retain    keep at most max_dumps final dumps, removing the oldest, never
 *             the one just written; remove leftover temporaries.
 *
 * Held descriptors, and why. A process out of descriptors (EMFILE) must still
 * dump: the directory is held from fr_init and a spare is given up to create
 * the file. A process that chroots keeps writing into the real directory.
 * Every held descriptor is checked (fr__fd_ours) before use: a daemon that
 * closed it and reused the number gets its file left alone, and the directory
 * is re-opened by path (said once on stderr and in the dump).
 *
 * The unique component (8 hex digits from getrandom at fr_init, drawn again
 * in a fork child) keeps names apart across PID namespaces: two containers'
 * pid 1 writing into one shared directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat */
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static struct fr_fd dir_h = { .fd = -1 };
static _Atomic int dir_lost_reported;
static char uniq[9];

/* Leftover temporaries younger than this are left alone even when unlocked:
 * their writer may be between creating and locking them. */
#define FR_TMP_GRACE_S 600

static size_t put_str(char *dst, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(dst + at, s, n);
    return at + n;
}

/* Eight hex digits that no other process is likely to draw. getrandom is a
 * system call (async-signal-safe); if it fails, the time, pid, address and
 * PID-namespace inode are mixed instead. */
static void draw_unique(void)
{
    uint32_t v = 0;
    if (syscall(SYS_getrandom, &v, sizeof v, 1 /* GRND_NONBLOCK */) != (long)sizeof v) {
        struct stat st;
        uint64_t x = fr__realtime_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&v;
        if (stat("/proc/self/ns/pid", &st) == 0)
            x ^= (uint64_t)st.st_ino * 0x9e3779b97f4a7c15ull;
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ull;
        v = (uint32_t)(x ^ (x >> 32));
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        uniq[i] = hex[(v >> (28 - 4 * i)) & 15];
    uniq[8] = '\0';
}

static int open_dir(void)
{
    return open(fr__cfg.dump_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static void take_spare(struct fr_dumpfile *f)
{
    if (f->spare.fd >= 0 && fr__fd_ours(&f->spare))
        return;
    f->spare.fd = -1;
    fr__fd_hold(&f->spare, open("/dev/null", O_RDONLY | O_CLOEXEC));
}

/* fr_init: the directory (a missing one is tried again at each dump), a
 * spare for each writer context, a new unique name component. */
void fr__dumpfile_init(struct fr_dumpfile *const *files, int n)
{
    fr__fd_release(&dir_h);
    fr__fd_hold(&dir_h, open_dir());
    atomic_store(&dir_lost_reported, 0);
    for (int i = 0; i < n; i++) {
        files[i]->fd = files[i]->dirfd = -1;
        take_spare(files[i]); /* keeps a spare still held from an earlier fr_init */
    }
    draw_unique();
}

/* fr_shutdown: close what is still ours, nothing else. */
void fr__dumpfile_fini(struct fr_dumpfile *const *files, int n)
{
    fr__fd_release(&dir_h);
    for (int i = 0; i < n; i++)
        fr__fd_release(&files[i]->spare);
}

void fr__dumpfile_after_fork(void)
{
    draw_unique();
}

/*
 * The held directory descriptor, checked; else the directory opened again by
 * path and held from now on. Sets FR_DF_DIR_REOPENED when ours was taken.
 * Return: a descriptor, or -errno.
 */
static int dir_fd(struct fr_dumpfile *f)
{
    if (fr__fd_ours(&dir_h))
        return dir_h.fd;
    if (dir_h.fd >= 0) {
        f->flags |= FR_DF_DIR_REOPENED; /* never closed: the number is someone else's now */
        if (!atomic_exchange(&dir_lost_reported, 1))
            fr__warn("the dump directory's descriptor was closed by the program; "
                     "opening it again by path",
                     fr__cfg.dump_dir, 0);
    }
    dir_h.fd = -1;
    int fd = open_dir();
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && fr__fd_ours(&f->spare)) {
        close(f->spare.fd);
        f->spare.fd = -1;
        fd = open_dir();
    }
    if (fd < 0)
        return -errno;
    fr__fd_hold(&dir_h, fd);
    return fd;
}

static void make_final(struct fr_dumpfile *f)
{
    char pid[24], sq[24], utc[17];
    pid[fr__fmt_u64(pid, (uint64_t)getpid())] = '\0';
    sq[fr__fmt_u64(sq, f->seq)] = '\0';
    fr__fmt_utc(utc, f->real_ns);
    size_t n = put_str(f->final, 0, "flightrec-");
    n = put_str(f->final, n, pid);
    n = put_str(f->final, n, "-");
    n = put_str(f->final, n, utc);
    n = put_str(f->final, n, "-");
    n = put_str(f->final, n, sq);
    n = put_str(f->final, n, "-");
    n = put_str(f->final, n, uniq);
    n = put_str(f->final, n, ".frd");
    f->final[n] = '\0';
}

int fr__dumpfile_open(struct fr_dumpfile *f, uint64_t seq, uint64_t real_ns)
{
    f->fd = -1;
    f->flags = 0;
    f->seq = seq;
    f->real_ns = real_ns;
    f->dirfd = dir_fd(f);
    f->used_dirfd = f->dirfd;
    if (f->dirfd < 0) {
        int err = f->dirfd;
        f->dirfd = -1;
        return err;
    }

    char pid[24], sq[24];
    pid[fr__fmt_u64(pid, (uint64_t)getpid())] = '\0';
    sq[fr__fmt_u64(sq, seq)] = '\0';
    size_t n = put_str(f->tmp, 0, ".flightrec-");
    n = put_str(f->tmp, n, pid);
    n = put_str(f->tmp, n, "-");
    n = put_str(f->tmp, n, uniq);
    n = put_str(f->tmp, n, "-");
    n = put_str(f->tmp, n, sq);
    n = put_str(f->tmp, n, ".frd.tmp");
    f->tmp[n] = '\0';
    make_final(f);

    /* The name is ours alone (pid, unique, seq): never unlink what is there. */
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    f->fd = openat(f->dirfd, f->tmp, flags, 0600);
    if (f->fd < 0 && (errno == EMFILE || errno == ENFILE) && fr__fd_ours(&f->spare)) {
        close(f->spare.fd); /* out of descriptors: the spare held since fr_init */
        f->spare.fd = -1;
        f->flags |= FR_DF_SPARE_USED;
        f->fd = openat(f->dirfd, f->tmp, flags, 0600);
    }
    if (f->fd < 0) {
        int err = -errno;
        f->dirfd = -1;
        take_spare(f);
        return err;
    }
    flock(f->fd, LOCK_EX | LOCK_NB); /* released when the writer closes it, or dies */

    /* Does the directory's path still lead here (chroot, rename, mount)? */
    struct stat st;
    if (stat(fr__cfg.dump_dir, &st) != 0 || st.st_dev != dir_h.dev || st.st_ino != dir_h.ino)
        f->flags |= FR_DF_DIR_UNREACHABLE;
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

/* Rename that never replaces: RENAME_NOREPLACE, or where the file system
 * lacks it, a hard link (which fails on an existing name) and an unlink. */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (syscall(SYS_renameat2, dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    if (linkat(dirfd, from, dirfd, to, 0) != 0)
        return -errno;
    unlinkat(dirfd, from, 0);
    return 0;
}

static void retain(int dirfd, unsigned max_dumps, const char *keep);

int fr__dumpfile_commit(struct fr_dumpfile *f, unsigned max_dumps)
{
    int err = 0;
    if (fsync(f->fd) != 0 && errno != EINVAL && errno != EROFS)
        err = -errno;
    if (close(f->fd) != 0 && !err && errno != EINTR)
        err = -errno;
    f->fd = -1;
    /* A name taken already (the same pid, second, seq and unique: another
     * namespace, vanishingly rare): a later seq instead, never a replacement. */
    for (int tries = 0; !err; tries++) {
        err = rename_noreplace(f->dirfd, f->tmp, f->final);
        if (err != -EEXIST || tries == 8)
            break;
        f->seq += (uint64_t)1 << 32;
        make_final(f);
        err = 0;
    }
    if (err) {
        unlinkat(f->dirfd, f->tmp, 0);
    } else {
        fsync(f->dirfd); /* make the rename itself durable */
        if (max_dumps)
            retain(f->dirfd, max_dumps, f->final);
    }
    f->dirfd = -1; /* held, not closed */
    take_spare(f);
    return err;
}

void fr__dumpfile_abort(struct fr_dumpfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->dirfd >= 0)
        unlinkat(f->dirfd, f->tmp, 0);
    f->dirfd = -1;
    take_spare(f);
}

static int is_dump_name(const char *name)
{
    size_t n = strlen(name);
    return n > 14 && memcmp(name, "flightrec-", 10) == 0 && memcmp(name + n - 4, ".frd", 4) == 0;
}

static int is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return n > 19 && memcmp(name, ".flightrec-", 11) == 0 && memcmp(name + n - 8, ".frd.tmp", 8) == 0;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/*
 * A temporary whose writer is gone: nobody holds its flock (a writer holds it
 * until it renames or removes the file; death releases it), and it is not
 * brand new (its writer may not have locked it yet). Needs one descriptor;
 * without one, leftovers wait for the next dump.
 */
static void remove_if_orphan(int dirfd, const char *name, time_t now)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) {
        /* Size 0: created, maybe not locked yet; keep it for the grace period
         * (a clock set backwards only makes it wait longer). */
        if (st.st_size > 0 || now - st.st_mtim.tv_sec > FR_TMP_GRACE_S)
            unlinkat(dirfd, name, 0);
    }
    close(fd);
}

/*
 * One pass over the directory: count the dumps and find the oldest by
 * modification time, then name, never @keep (the dump just written: after the
 * clock was set back it has the oldest time of all). A dump dated more than a
 * minute in the future was written before the clock went back and counts as
 * older than any other. Leftover temporaries are removed on the way.
 * readdir() may allocate; getdents64 does not.
 */
static unsigned scan(int dirfd, char *oldest, size_t oldest_cap, const char *keep, int sweep)
{
    char buf[4096] __attribute__((aligned(8)));
    unsigned count = 0;
    struct timespec best = { 0, 0 };
    int best_future = 0;
    oldest[0] = '\0';
    time_t now = (time_t)(fr__realtime_ns() / 1000000000u);
    if (lseek(dirfd, 0, SEEK_SET) != 0)
        return 0;
    for (;;) {
        long n = syscall(SYS_getdents64, dirfd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (sweep && is_tmp_name(d->d_name)) {
                remove_if_orphan(dirfd, d->d_name, now);
                continue;
            }
            if (!is_dump_name(d->d_name))
                continue;
            struct stat st;
            if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
            count++;
            if (strcmp(d->d_name, keep) == 0)
                continue;
            int future = st.st_mtim.tv_sec > now + 60;
            int older = !oldest[0] || (future && !best_future) ||
                        (future == best_future &&
                         (st.st_mtim.tv_sec < best.tv_sec ||
                          (st.st_mtim.tv_sec == best.tv_sec &&
                           (st.st_mtim.tv_nsec < best.tv_nsec ||
                            (st.st_mtim.tv_nsec == best.tv_nsec &&
                             strcmp(d->d_name, oldest) < 0)))));
            if (older && strlen(d->d_name) < oldest_cap) {
                best = st.st_mtim;
                best_future = future;
                fr__strlcpy(oldest, d->d_name, oldest_cap);
            }
        }
    }
    return count;
}

/* Retention reads the directory through a descriptor of its own: two writers
 * (a crash during a signal dump) must not share one directory offset. Without
 * a free descriptor, retention waits for the next dump. */
static void retain(int dirfd, unsigned max_dumps, const char *keep)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    char oldest[256];
    for (int guard = 0; guard < 1024; guard++) {
        unsigned count = scan(fd, oldest, sizeof oldest, keep, guard == 0);
        if (count <= max_dumps || !oldest[0])
            break;
        if (unlinkat(fd, oldest, 0) != 0)
            break;
    }
    close(fd);
}
