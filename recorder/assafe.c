/*
 * assafe.c - small helpers that a crash handler may call: number and time
 * formatting, string copy, a warning line, a sleep. Everything here is
 * async-signal-safe: no locale, no stdio, no malloc, only write(2),
 * nanosleep(2), gettid(2), and open/read/close for a small file.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

size_t fr__fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

size_t fr__strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return len;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), since
 * gmtime_r is not on the async-signal-safe list. */
void fr__fmt_utc(char *buf, uint64_t real_ns)
{
    int64_t secs = (int64_t)(real_ns / 1000000000u);
    int64_t days = secs / 86400, rem = secs % 86400;
    days += 719468;
    int64_t era = days / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    put2(buf, (unsigned)(y / 100));
    put2(buf + 2, (unsigned)(y % 100));
    put2(buf + 4, m);
    put2(buf + 6, d);
    buf[8] = 'T';
    put2(buf + 9, (unsigned)(rem / 3600));
    put2(buf + 11, (unsigned)(rem / 60 % 60));
    put2(buf + 13, (unsigned)(rem % 60));
    buf[15] = 'Z';
    buf[16] = '\0';
}

void fr__warn(const char *a, const char *b, int err)
{
    char line[512];
    size_t n = 0;
    const char *parts[] = { "flightrec: ", a, b ? ": " : NULL, b };
    for (size_t i = 0; i < 4; i++) {
        if (!parts[i])
            continue;
        size_t l = strlen(parts[i]);
        if (l > sizeof line - n - 64)
            l = sizeof line - n - 64;
        memcpy(line + n, parts[i], l);
        n += l;
    }
    if (err) {
        /* strerror is not async-signal-safe; errno names for the usual suspects */
        static const struct { int e; const char *s; } names[] = {
            { ENOENT, "no such file or directory" }, { EACCES, "permission denied" },
            { ENOSPC, "no space left on device" }, { EROFS, "read-only file system" },
            { ELOOP, "is a symbolic link" }, { ENOTDIR, "not a directory" },
            { EDQUOT, "disk quota exceeded" }, { EIO, "input/output error" },
            { EEXIST, "file exists" }, { ENOMEM, "out of memory" },
            { EMFILE, "too many open files" }, { ENFILE, "too many open files in system" },
            { EBADF, "bad file descriptor" },
        };
        const char *s = NULL;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (names[i].e == err)
                s = names[i].s;
        memcpy(line + n, " (", 2);
        n += 2;
        if (s) {
            size_t l = strlen(s);
            memcpy(line + n, s, l);
            n += l;
        } else {
            memcpy(line + n, "errno ", 6);
            n += 6;
            n += fr__fmt_u64(line + n, (uint64_t)err);
        }
        line[n++] = ')';
    }
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}

void fr__sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

pid_t fr__gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/*
 * Descriptors the recorder holds across a host's life (the dump directory, a
 * spare, the module map, pipes) are checked before every use: a daemon may
 * close every descriptor >= 3 and open its own files under the same numbers.
 * fstat(2) is async-signal-safe.
 */
int fr__fd_hold(struct fr_fd *h, int fd)
{
    struct stat st;
    h->fd = -1;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    h->fd = fd;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    return 0;
}

int fr__fd_ours(const struct fr_fd *h)
{
    struct stat st;
    return h->fd >= 0 && fstat(h->fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

void fr__fd_release(struct fr_fd *h)
{
    if (fr__fd_ours(h))
        close(h->fd);
    h->fd = -1;
}

size_t fr__read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return n;
}
