/*
 * decoder/cmd_recover.c - `flightrec recover FILE|PID [--dir DIR] [--force]`:
 * turn the shared rings a killed process left (flightrec-<pid>-<n>.rings, see
 * docs/format.md "Shared rings file") into an ordinary dump.
 *
 * The file is read as hostile input: every offset and length is checked
 * against the file's size before use. Pages are taken as the recorder's own
 * dump writer takes them: whole or not at all. A page whose sequence word is
 * zero while its header shows it was in use was being recycled when the
 * process died, and a page whose commit word does not fit is half-written:
 * both are dropped and counted as torn (RECOVERY section; `info` says so).
 * The process being dead, nothing moves under us; a process still alive is
 * refused unless --force (its rings are then a moving snapshot, read as the
 * dumper thread would read them).
 *
 * The dump is written beside the file, 0600, under a temporary name, and
 * linked to its final name "flightrec-<pid>-<UTC now>-<seq>-<unique>.frd"
 * (as the recorder names dumps) only when whole; its path is printed on stdout.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <flightrec/format.h>

#include "cmd.h"

static const char usage_recover[] =
    "usage: flightrec recover FILE|PID [--dir DIR] [--force]\n"
    "\n"
    "Turn the shared rings that a process running with FLIGHTREC_SHARED_RINGS=1\n"
    "left behind (flightrec-<pid>-<n>.rings, e.g. after SIGKILL or the OOM killer)\n"
    "into an ordinary dump (reason \"recovered\") beside the file, and print its\n"
    "path. Pages torn by the kill are dropped and counted; `flightrec info` says so.\n"
    "\n"
    "  FILE        a .rings file\n"
    "  PID         the newest flightrec-PID-*.rings in DIR\n"
    "  --dir DIR   where to look for PID's file (default: the current directory)\n"
    "  --force     read the file even though its process is still alive\n";

#define META_SIZE 4096u

struct rbuf {
    uint8_t *p;
    size_t len, cap;
};

static int rb_reserve(struct rbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void rb_put(struct rbuf *b, const void *p, size_t n)
{
    if (rb_reserve(b, n) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

static void rb_u32(struct rbuf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    rb_put(b, x, 4);
}

static void rb_u64(struct rbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    rb_put(b, x, 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

struct rec {
    const char *path;
    int fd;
    uint64_t size;
    uint8_t *meta; /* the metadata area, rings_off bytes */
    uint64_t rings_off, ring_bytes;
    uint32_t pid, page_size, flags, max_threads, nstrings;
    uint64_t proc_off, proc_cap, slots_off, strtab_off, arena_off, arena_cap, maps_off, maps_cap;
    ZSTD_CCtx *cctx;
    struct rbuf out, sec;
    uint32_t sections, threads, pages_kept, pages_torn;
};

static int fail(const struct rec *r, const char *what)
{
    fprintf(stderr, "flightrec: recover: %s: %s\n", r->path, what);
    return 1;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t n = 0;
    while (n < len) {
        ssize_t k = pread(fd, (char *)buf + n, len - n, (off_t)(off + n));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        n += (size_t)k;
    }
    return 0;
}

/* A region [off, off + len) inside the metadata area. */
static int in_meta(const struct rec *r, uint64_t off, uint64_t len)
{
    return off >= META_SIZE && off <= r->rings_off && len <= r->rings_off - off;
}

static int load(struct rec *r)
{
    uint8_t h[META_SIZE];
    if (r->size < META_SIZE || read_at(r->fd, h, sizeof h, 0) != 0)
        return fail(r, "too short for a shared rings file");
    if (memcmp(h, FR_RINGS_MAGIC, 8) != 0)
        return fail(r, "not a flightrec shared rings file (bad magic)");
    if (get32(h + 8) != (1u | 4096u << 16) || get32(h + 12) != FR_ENDIAN_MARK)
        return fail(r, "unsupported shared rings version or byte order");
    r->pid = get32(h + 16);
    r->page_size = get32(h + 24);
    r->flags = get32(h + 28);
    r->ring_bytes = get64(h + 32);
    r->max_threads = get32(h + 40);
    r->proc_off = get64(h + 136);
    r->proc_cap = get64(h + 144);
    r->slots_off = get64(h + 152);
    uint64_t nslots = get64(h + 160);
    r->strtab_off = get64(h + 168);
    uint64_t nstr = get64(h + 176);
    r->arena_off = get64(h + 184);
    r->arena_cap = get64(h + 192);
    r->maps_off = get64(h + 200);
    r->maps_cap = get64(h + 208);
    r->rings_off = get64(h + 224);
    if (r->page_size < 64 || r->page_size > (1u << 20) || (r->page_size & (r->page_size - 1)) ||
        r->ring_bytes < r->page_size || r->ring_bytes % r->page_size ||
        r->ring_bytes > (UINT64_C(1) << 32) || r->rings_off > r->size ||
        r->rings_off > (UINT64_C(1) << 30) || nslots != r->max_threads || nslots > 65536 ||
        nstr > (1u << 24))
        return fail(r, "corrupt header (sizes out of range)");
    r->nstrings = (uint32_t)nstr;
    if (!in_meta(r, r->proc_off, r->proc_cap) || !in_meta(r, r->slots_off, nslots * 64) ||
        !in_meta(r, r->strtab_off, nstr * 16) || !in_meta(r, r->arena_off, r->arena_cap) ||
        !in_meta(r, r->maps_off, 2 * r->maps_cap))
        return fail(r, "corrupt header (a region lies outside the metadata)");
    r->meta = malloc(r->rings_off);
    if (!r->meta)
        return fail(r, "out of memory");
    if (read_at(r->fd, r->meta, r->rings_off, 0) != 0)
        return fail(r, "cannot read the metadata area");
    return 0;
}

static int frame(struct rec *r, const void *src, size_t len)
{
    size_t bound = ZSTD_compressBound(len);
    if (rb_reserve(&r->out, bound) != 0)
        return -ENOMEM;
    size_t n = ZSTD_compress2(r->cctx, r->out.p + r->out.len, bound, src, len);
    if (ZSTD_isError(n))
        return -EIO;
    r->out.len += n;
    return 0;
}

static void sec_begin(struct rec *r, uint32_t kind)
{
    r->sec.len = 0;
    rb_u32(&r->sec, kind);
    rb_u32(&r->sec, 1);
}

static int sec_end(struct rec *r)
{
    r->sections++;
    return frame(r, r->sec.p, r->sec.len);
}

/* PROCESS: pid, ppid, start, then the four blobs, each checked. */
/*
 * RUN_DELAY from the run-delay sampler's entry ring in the file (header 240:
 * its offset, 248: its entries; docs/format.md): the entries whole when the
 * process died, oldest first, as a dump writes them. Only when the header
 * says the sampler ran (FR_HDR_RUN_DELAY): a file without the ring (an older
 * recorder) or with a damaged one gets no section, and the decoder then knows
 * the run delays were lost, rather than reading "none waited" into them.
 */
static void write_run_delay(struct rec *r)
{
    uint64_t off = get64(r->meta + 240), cap = get64(r->meta + 248);
    if (!(r->flags & FR_HDR_RUN_DELAY) || !off || !cap || cap > (1u << 20) ||
        !in_meta(r, off, 16 + 40 * cap))
        return;
    const uint8_t *ring = r->meta + off;
    uint64_t n = get64(ring);
    sec_begin(r, FR_SEC_RUN_DELAY);
    int first = 1;
    for (uint64_t i = n > cap ? n - cap : 0; i < n; i++) {
        const uint8_t *e = ring + 16 + 40 * (i % cap);
        if (get64(e) != i + 1)
            continue; /* being written when the process died */
        rb_u64(&r->sec, get64(e + 8));  /* from_ns */
        rb_u64(&r->sec, get64(e + 16)); /* to_ns */
        rb_u64(&r->sec, get64(e + 24)); /* delay_ns */
        rb_u32(&r->sec, get32(e + 32)); /* tid */
        rb_u32(&r->sec, first && i > 0); /* older entries were overwritten */
        first = 0;
    }
    sec_end(r);
}

static void write_process(struct rec *r)
{
    const uint8_t *p = r->meta + r->proc_off, *end = p + r->proc_cap;
    sec_begin(r, FR_SEC_PROCESS);
    rb_put(&r->sec, p, 16);
    p += 16;
    for (int i = 0; i < 4; i++) {
        uint32_t len = p + 4 <= end ? get32(p) : 0;
        if (p + 4 > end || len > (uint64_t)(end - p - 4)) {
            rb_u32(&r->sec, 0);
            continue;
        }
        rb_put(&r->sec, p, 4 + (size_t)len);
        p += 4 + len;
    }
    sec_end(r);
}

static void write_clock(struct rec *r)
{
    uint64_t n = get64(r->meta + 56);
    if (n > 2)
        n = 2;
    sec_begin(r, FR_SEC_CLOCK);
    rb_u32(&r->sec, get32(r->meta + 44));
    rb_u32(&r->sec, (uint32_t)n);
    rb_put(&r->sec, r->meta + 64, 24 * (size_t)n);
    sec_end(r);
}

static void write_strings(struct rec *r)
{
    sec_begin(r, FR_SEC_STRINGS);
    for (uint32_t i = 0; i < r->nstrings; i++) {
        const uint8_t *e = r->meta + r->strtab_off + 16 * (uint64_t)i;
        if (get64(e + 8) != 1)
            continue;
        uint32_t off = get32(e), len = get32(e + 4);
        if (off > r->arena_cap || len > r->arena_cap - off || len > 4096)
            continue;
        rb_u32(&r->sec, i + 2);
        rb_u32(&r->sec, len);
        rb_put(&r->sec, r->meta + r->arena_off + off, len);
    }
    sec_end(r);
}

static void write_modules(struct rec *r)
{
    uint64_t st = get64(r->meta + 216);
    uint32_t idx = (uint32_t)(st >> 32) & 1u, len = (uint32_t)st;
    sec_begin(r, FR_SEC_MODULES);
    if (len <= r->maps_cap)
        rb_put(&r->sec, r->meta + r->maps_off + idx * r->maps_cap, len);
    sec_end(r);
}

struct pg {
    uint64_t seq;
    uint32_t index;
};

static int cmp_pg(const void *a, const void *b)
{
    const struct pg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One THREAD section from slot @i's ring: whole pages of its generation,
 * oldest first. */
static int write_thread(struct rec *r, uint32_t i, uint8_t *ring, struct pg *order)
{
    const uint8_t *e = r->meta + r->slots_off + 64 * (uint64_t)i;
    uint32_t state = get32(e), gen = get32(e + 4), tid = get32(e + 8);
    uint64_t off = get64(e + 48);
    if ((state != 1 && state != 2) || off != r->rings_off + (uint64_t)i * r->ring_bytes)
        return 0;
    if (off + r->ring_bytes > r->size) {
        fprintf(stderr, "flightrec: recover: %s: offset %llu: the ring of thread %u lies past "
                "the end of the file (cut short); left out\n", r->path,
                (unsigned long long)off, tid);
        return 0;
    }
    if (read_at(r->fd, ring, r->ring_bytes, off) != 0)
        return -EIO;
    uint32_t npages = (uint32_t)(r->ring_bytes / r->page_size), n = 0;
    uint32_t payload = r->page_size - FR_PAGE_HEADER_SIZE;
    uint64_t last = 0;
    for (uint32_t k = 0; k < npages; k++) {
        const uint8_t *pg = ring + (uint64_t)k * r->page_size;
        uint64_t seq = get64(pg), base = get64(pg + 8), commit = get64(pg + 16);
        if (seq == 0) {
            if (base != 0 || commit != 0)
                r->pages_torn++; /* being recycled when the process died */
            continue;
        }
        if ((uint32_t)(seq >> 40) != (gen & 0xffffffu))
            continue; /* an earlier thread's page in this slot */
        if ((uint32_t)commit > payload || (commit >> 32) > payload) {
            r->pages_torn++;
            continue;
        }
        order[n].seq = seq & ((UINT64_C(1) << 40) - 1);
        order[n].index = k;
        if (order[n].seq > last)
            last = order[n].seq;
        n++;
    }
    qsort(order, n, sizeof(*order), cmp_pg);
    sec_begin(r, FR_SEC_THREAD);
    rb_u32(&r->sec, tid);
    rb_u32(&r->sec, i);
    rb_u32(&r->sec, state);
    rb_u32(&r->sec, r->page_size);
    rb_u64(&r->sec, 0); /* current task: not kept in the file */
    rb_u64(&r->sec, last);
    rb_u64(&r->sec, 0); /* overwritten: not kept in the file */
    rb_u64(&r->sec, 0); /* dropped: likewise */
    char name[FR_THREAD_NAME_MAX];
    memset(name, 0, sizeof name);
    uint32_t nl = get32(e + 12);
    if (nl < FR_THREAD_NAME_MAX)
        memcpy(name, e + 16, nl);
    rb_put(&r->sec, name, sizeof name);
    rb_u32(&r->sec, gen);
    rb_u32(&r->sec, 0);
    for (uint32_t k = 0; k < n; k++) {
        if (k && order[k].seq == order[k - 1].seq)
            continue;
        const uint8_t *pg = ring + (uint64_t)order[k].index * r->page_size;
        uint64_t commit = get64(pg + 16);
        uint32_t used = (uint32_t)commit, count = (uint32_t)(commit >> 32);
        rb_u64(&r->sec, order[k].seq);
        rb_u64(&r->sec, get64(pg + 8));
        rb_u32(&r->sec, used);
        rb_u32(&r->sec, count);
        rb_put(&r->sec, pg + FR_PAGE_HEADER_SIZE, used);
        r->pages_kept++;
    }
    r->threads++;
    return sec_end(r);
}

/* The newest flightrec-<pid>-*.rings in @dir, into @out. */
static int find_for_pid(const char *dir, const char *pid, char *out, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "flightrec-%s-", pid);
    struct dirent *e;
    time_t best = 0;
    long best_ns = -1;
    int found = -ENOENT;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || n < 6 ||
            strcmp(e->d_name + n - 6, ".rings") != 0)
            continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (found == 0 && (st.st_mtim.tv_sec < best ||
                           (st.st_mtim.tv_sec == best && st.st_mtim.tv_nsec <= best_ns)))
            continue;
        best = st.st_mtim.tv_sec;
        best_ns = st.st_mtim.tv_nsec;
        snprintf(out, len, "%s", path);
        found = 0;
    }
    closedir(d);
    return found;
}

/* Write r->out beside @path under a temporary name, then link it to a free
 * final name; prints the final path. */
static int publish(struct rec *r, uint64_t now_ns)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", r->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail(r, "cannot open its directory");
    char tmp[128], fin[160], utc[32];
    snprintf(tmp, sizeof tmp, ".flightrec-%u-recover-%ld.frd.tmp", r->pid, (long)getpid());
    time_t secs = (time_t)(now_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(utc, sizeof utc, "%Y%m%dT%H%M%SZ", &tm);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        close(dfd);
        return fail(r, strerror(errno));
    }
    size_t done = 0;
    while (done < r->out.len) {
        ssize_t k = write(fd, r->out.p + done, r->out.len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int ok = done == r->out.len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    /* named like the recorder's dumps: ...-<seq>-<8 hex digits of its own> */
    uint32_t uniq = 0;
    if (getrandom(&uniq, sizeof uniq, GRND_NONBLOCK) != (ssize_t)sizeof uniq)
        uniq = (uint32_t)(now_ns ^ (now_ns >> 32) ^ (uint64_t)getpid() << 16);
    int linked = 0;
    for (unsigned seq = 0; ok && seq < 1000 && !linked; seq++) {
        snprintf(fin, sizeof fin, "flightrec-%u-%s-%u-%08x.frd", r->pid, utc, seq, uniq);
        if (linkat(dfd, tmp, dfd, fin, 0) == 0)
            linked = 1;
        else if (errno != EEXIST)
            break;
    }
    unlinkat(dfd, tmp, 0);
    fsync(dfd);
    close(dfd);
    if (!linked)
        return fail(r, "cannot write the recovered dump beside it");
    printf("%s/%s\n", dir, fin);
    return 0;
}

static int recover(struct rec *r, int force)
{
    int rc = load(r);
    if (rc)
        return rc;
    if (r->pid > 0 && frd_process_alive((long)r->pid) && !force) {
        fprintf(stderr,
                "flightrec: recover: %s: process %u is still running; use `flightrec dump %u` "
                "(or --force to read its rings anyway)\n",
                r->path, r->pid, r->pid);
        return 1;
    }
    r->cctx = ZSTD_createCCtx();
    if (!r->cctx || ZSTD_isError(ZSTD_CCtx_setParameter(r->cctx, ZSTD_c_compressionLevel, 3)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(r->cctx, ZSTD_c_checksumFlag, 1)))
        return fail(r, "cannot set up zstd");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;

    /* frame 0: the file header, as the recorder writes it */
    uint8_t h[8 + FR_HEADER_SIZE];
    memset(h, 0, sizeof h);
    struct rbuf hb = { h, 0, sizeof h };
    rb_u32(&hb, FR_SKIPPABLE_MAGIC);
    rb_u32(&hb, FR_HEADER_SIZE);
    rb_put(&hb, FR_FILE_MAGIC, 8);
    rb_u32(&hb, FR_FORMAT_VERSION | FR_HEADER_SIZE << 16);
    rb_u32(&hb, FR_ENDIAN_MARK);
    rb_u32(&hb, FR_TRIGGER_RECOVERED);
    rb_u32(&hb, 0);
    rb_u32(&hb, r->pid);
    rb_u32(&hb, r->page_size);
    rb_u64(&hb, r->ring_bytes);
    rb_u64(&hb, now_ns);
    rb_u64(&hb, 0);
    rb_u32(&hb, r->max_threads);
    rb_u32(&hb, r->flags & (FR_HDR_TSC | FR_HDR_RUN_DELAY));
    memcpy(h + 8 + 64, "recovered", 9);
    rb_put(&r->out, h, sizeof h);

    write_process(r);
    write_clock(r);
    write_strings(r);
    write_modules(r);
    uint8_t *ring = malloc(r->ring_bytes);
    struct pg *order = malloc((r->ring_bytes / r->page_size) * sizeof(*order));
    if (!ring || !order) {
        free(ring);
        free(order);
        return fail(r, "out of memory");
    }
    int err = 0;
    for (uint32_t i = 0; i < r->max_threads && !err; i++)
        err = write_thread(r, i, ring, order);
    free(ring);
    free(order);
    if (err)
        return fail(r, "cannot read a ring (file cut short?)");
    write_run_delay(r);
    sec_begin(r, FR_SEC_RECOVERY);
    rb_u32(&r->sec, r->threads);
    rb_u32(&r->sec, r->pages_kept);
    rb_u32(&r->sec, r->pages_torn);
    rb_u32(&r->sec, 0);
    rb_u64(&r->sec, r->size);
    sec_end(r);
    uint32_t before_end = r->sections;
    sec_begin(r, FR_SEC_END);
    rb_u32(&r->sec, before_end);
    rb_u32(&r->sec, 0);
    sec_end(r);
    if (r->out.len == 0 || !r->sec.p)
        return fail(r, "out of memory");
    if (r->pages_torn)
        fprintf(stderr, "flightrec: recover: %s: %u torn pages dropped (being written when the "
                "process died)\n", r->path, r->pages_torn);
    return publish(r, now_ns);
}

int frd_cmd_recover(int argc, char **argv)
{
    const char *target = NULL, *dir = ".";
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_recover, stdout);
            return 0;
        } else if (strcmp(argv[i], "--dir") == 0) {
            if (i + 1 >= argc)
                return frd_usage_error(usage_recover, "%s needs a directory", argv[i]);
            dir = argv[++i];
        } else if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return frd_usage_error(usage_recover, "unknown option '%s'", argv[i]);
        } else if (target) {
            return frd_usage_error(usage_recover, "one FILE or PID, not also '%s'", argv[i]);
        } else {
            target = argv[i];
        }
    }
    if (!target)
        return frd_usage_error(usage_recover, "%s", "a FILE or PID is needed");
    char path[4096];
    struct stat st;
    if (strspn(target, "0123456789") == strlen(target) && stat(target, &st) != 0) {
        int e = find_for_pid(dir, target, path, sizeof path);
        if (e) {
            fprintf(stderr, "flightrec: recover: no flightrec-%s-*.rings in %s: %s\n", target,
                    dir, strerror(-e));
            return 1;
        }
    } else {
        snprintf(path, sizeof path, "%s", target);
    }
    struct rec r;
    memset(&r, 0, sizeof r);
    r.path = path;
    r.fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (r.fd < 0) {
        fprintf(stderr, "flightrec: recover: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc;
    if (fstat(r.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fail(&r, "not a regular file");
    } else {
        r.size = (uint64_t)st.st_size;
        rc = recover(&r, force);
    }
    close(r.fd);
    free(r.meta);
    free(r.out.p);
    free(r.sec.p);
    ZSTD_freeCCtx(r.cctx);
    return rc;
}
