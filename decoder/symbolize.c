/*
 * decoder/symbolize.c - code addresses to names, offline: crash backtraces,
 * and the "@0x<hex>" tokens that names and labels may carry (format.h "Code
 * addresses in strings").
 *
 * An address is first placed in the MODULES text (the process's maps) to get
 * a file and an offset; then, with elfutils libdwfl, a function (.symtab, else
 * .dynsym, else the build-id debug file under /usr/lib/debug that libdwfl
 * finds) and a source file:line when there is debug info. Each mapped file is
 * reported to libdwfl the first time an address falls in it (so a dump whose
 * strings name two callbacks opens two files, not the hundred the process
 * mapped), placed where the process had it: the start of its offset-0
 * mapping is the load address of a position-independent object (libdwfl
 * ignores it for ET_EXEC). The files are read from this machine's file
 * system: if they changed since the dump, or are missing, names may be wrong
 * or absent and module+offset remain. Without libdw (meson
 * -Dsymbolize=disabled) only module+offset are given.
 *
 * The dump is hostile: its module map may name any file (only regular files
 * are opened, without blocking), and its strings may be all tokens. The work
 * is bounded: FRD_SYM_MAX_MODULES files, FRD_SYM_MAX_ADDRS distinct addresses
 * looked up (each once, cached), FRD_SYM_MAX_OUT bytes of rewritten text;
 * past a bound, tokens stay as they were.
 */
#include "symbolize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader_int.h"

#ifdef FRD_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#define FRD_SYM_MAX_MODULES 256       /* files reported to libdwfl */
#define FRD_SYM_MAX_ADDRS (1u << 16)  /* distinct token addresses looked up */
#define FRD_SYM_MAX_OUT (64u << 20)   /* bytes of rewritten string text */

struct mapping {
    uint64_t start, end, off;
    const char *path; /* points into the MODULES text, NUL-terminated copy */
    int module;       /* index in reported[] once reported, -1 before, -2 failed */
};

struct symtab {
    struct mapping *v;
    size_t nm;
    char *text;
    int open_files; /* 0: module+offset only, never open a file */
    size_t nreported;
#ifdef FRD_HAVE_LIBDW
    Dwfl *dw;
#endif
};

/*
 * Parse "start-end perms offset dev inode path" lines. Lines that do not
 * match, or map no file, are skipped: the text came from a hostile file.
 */
static size_t parse_maps(const struct frd_blob *b, struct mapping **out, char **textp)
{
    *out = NULL;
    *textp = NULL;
    if (!b->len)
        return 0;
    char *text = malloc(b->len + 1);
    if (!text)
        return 0;
    memcpy(text, b->p, b->len);
    text[b->len] = 0;
    size_t cap = 64, n = 0;
    struct mapping *v = malloc(cap * sizeof(*v));
    if (!v) {
        free(text);
        return 0;
    }
    for (char *line = text; line && *line;) {
        char *nl = memchr(line, '\n', (size_t)(text + b->len - line));
        if (nl)
            *nl = 0;
        unsigned long long s, e, o;
        int pos = 0;
        char perms[8];
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &s, &e, perms, &o, &pos) == 4 &&
            pos > 0 && line[pos] == '/' && e > s) {
            if (n == cap) {
                struct mapping *nv = realloc(v, cap * 2 * sizeof(*v));
                if (!nv)
                    break;
                v = nv;
                cap *= 2;
            }
            v[n++] = (struct mapping){s, e, o, line + pos, -1};
        }
        line = nl ? nl + 1 : NULL;
    }
    *out = v;
    *textp = text;
    return n;
}

#ifdef FRD_HAVE_LIBDW
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

/* Report @m's file to libdwfl (once per path). Return: 0 reported. */
static int report(struct symtab *s, struct mapping *m)
{
    if (m->module != -1)
        return m->module >= 0 ? 0 : -1;
    /* every mapping of the same file shares the outcome */
    int outcome = -2;
    const struct mapping *base = NULL;
    for (size_t i = 0; i < s->nm; i++)
        if (s->v[i].off == 0 && strcmp(s->v[i].path, m->path) == 0) {
            base = &s->v[i];
            break;
        }
    if (base && s->nreported < FRD_SYM_MAX_MODULES &&
        (s->dw || (s->dw = dwfl_begin(&callbacks)))) {
        /* The path came from the dump: open it without blocking (a FIFO or a
         * device there must not hang or touch anything) and hand libdwfl
         * only a regular file. On success libdwfl owns the descriptor. */
        int fd = open(m->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd >= 0) {
            dwfl_report_begin_add(s->dw);
            if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                dwfl_report_elf(s->dw, m->path, m->path, fd, base->start, false))
                outcome = (int)s->nreported++;
            else
                close(fd);
            dwfl_report_end(s->dw, NULL, NULL);
        }
    }
    for (size_t i = 0; i < s->nm; i++)
        if (strcmp(s->v[i].path, m->path) == 0)
            s->v[i].module = outcome;
    return outcome >= 0 ? 0 : -1;
}

/* Function, offset into it and source line of @addr in @f; *@offset is
 * that offset (UINT64_MAX when no function is known). */
static void lookup(struct symtab *s, uint64_t addr, struct frd_frame *f, uint64_t *offset)
{
    Dwfl_Module *mod = dwfl_addrmodule(s->dw, addr);
    if (!mod)
        return;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *fn = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
    if (fn && *fn) {
        snprintf(f->function, sizeof(f->function), "%s", fn);
        *offset = off;
    }
    Dwfl_Line *ln = dwfl_module_getsrc(mod, addr);
    if (ln) {
        int line = 0;
        const char *file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);
        if (file) {
            snprintf(f->file, sizeof(f->file), "%s", file);
            f->line = line;
        }
    }
}
#endif

static void symtab_open(struct symtab *s, const struct frd_dump *d, int open_files)
{
    memset(s, 0, sizeof(*s));
    s->nm = parse_maps(&d->modules, &s->v, &s->text);
    s->open_files = open_files;
}

static void symtab_close(struct symtab *s)
{
#ifdef FRD_HAVE_LIBDW
    if (s->dw)
        dwfl_end(s->dw);
#endif
    free(s->text);
    free(s->v);
}

/* Describe @addr (already adjusted for a return address) into @f, whose ip
 * the caller set; *@offset: bytes into the function, UINT64_MAX if none. */
static void symtab_describe(struct symtab *s, uint64_t addr, uint64_t ip, struct frd_frame *f,
                            uint64_t *offset)
{
    *offset = UINT64_MAX;
    for (size_t j = 0; j < s->nm; j++) {
        struct mapping *m = &s->v[j];
        if (addr >= m->start && addr < m->end) {
            snprintf(f->module, sizeof(f->module), "%s", m->path);
            f->offset = ip - m->start + m->off;
#ifdef FRD_HAVE_LIBDW
            if (s->open_files && report(s, m) == 0)
                lookup(s, addr, f, offset);
#endif
            return;
        }
    }
}

int frd_symbolize(const struct frd_dump *d, const uint64_t *ips, size_t n,
                  struct frd_frame *out)
{
    struct symtab s;
    symtab_open(&s, d, 1);
    for (size_t i = 0; i < n; i++) {
        struct frd_frame *f = &out[i];
        memset(f, 0, sizeof(*f));
        f->ip = ips[i];
        /* a return address points after the call: look at the call itself */
        uint64_t addr = i > 0 && ips[i] ? ips[i] - 1 : ips[i], off;
        symtab_describe(&s, addr, ips[i], f, &off);
    }
    symtab_close(&s);
    return 0;
}

/* ---- "@0x<hex>" tokens in strings ---------------------------------------- */

static int is_lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A token at @p (within @n bytes): its length and address, or 0. */
static size_t token_at(const char *p, size_t n, uint64_t *addr)
{
    if (n < 4 || p[0] != '@' || p[1] != '0' || p[2] != 'x' || !is_lhex(p[3]))
        return 0;
    size_t k = 3;
    uint64_t a = 0;
    while (k < n && is_lhex(p[k])) {
        if (k - 3 >= 16)
            return 0; /* more than 64 bits: not an address */
        a = a << 4 | (uint64_t)(p[k] <= '9' ? p[k] - '0' : p[k] - 'a' + 10);
        k++;
    }
    *addr = a;
    return k;
}

/* Basename of a path. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

void frd_symbol_text(const struct frd_frame *f, uint64_t offset, char *buf, size_t len)
{
    buf[0] = 0;
    if (f->function[0] && offset == 0)
        snprintf(buf, len, "%s", f->function);
    else if (f->function[0] && f->file[0] && f->line > 0)
        snprintf(buf, len, "%s (%s:%d)", f->function, base_name(f->file), f->line);
    else if (f->function[0] && offset != UINT64_MAX)
        snprintf(buf, len, "%s+0x%llx", f->function, (unsigned long long)offset);
    else if (f->module[0])
        snprintf(buf, len, "%s+0x%llx", base_name(f->module), (unsigned long long)f->offset);
}

/* Distinct addresses and what they became; open addressing, power-of-2 size. */
struct cache {
    struct slot {
        uint64_t addr;
        char *text; /* NULL: stays raw */
        int used;
    } *v;
    size_t cap, n;
};

static struct slot *cache_find(struct cache *c, uint64_t addr)
{
    size_t i = (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 40) & (c->cap - 1);
    while (c->v[i].used && c->v[i].addr != addr)
        i = (i + 1) & (c->cap - 1);
    return &c->v[i];
}

struct out {
    char *p;
    size_t len, cap;
};

static int out_put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (o->len + n > FRD_SYM_MAX_OUT)
        return -1;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p)
            return -1;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return 0;
}

int frd_symbolize_strings(struct frd_dump *d, unsigned flags)
{
    /* most dumps have no token: find one before parsing anything */
    size_t first = d->nstrings;
    for (size_t i = 0; i < d->nstrings && first == d->nstrings; i++) {
        const char *t = d->strings[i].text;
        size_t n = d->strings[i].len;
        if (!n)
            continue;
        for (const char *p = memchr(t, '@', n); p; p = memchr(p + 1, '@', n - (size_t)(p + 1 - t))) {
            uint64_t a;
            if (token_at(p, n - (size_t)(p - t), &a)) {
                first = i;
                break;
            }
            if (p + 1 >= t + n)
                break;
        }
    }
    if (first == d->nstrings)
        return 0;

    struct symtab s;
    symtab_open(&s, d, !(flags & FRD_SYM_NO_FILES));
    struct cache c = {.cap = 1024};
    struct out o = {0};
    /* per rewritten string: its index and where its text starts in o */
    size_t *idx = NULL, *at = NULL, nre = 0, capre = 0;
    int r = 0;
    if (!(c.v = calloc(c.cap, sizeof(*c.v)))) {
        r = -ENOMEM;
        goto done;
    }
    for (size_t i = first; i < d->nstrings; i++) {
        const char *t = d->strings[i].text;
        size_t n = d->strings[i].len, start = o.len, copied = 0;
        int changed = 0;
        for (size_t k = 0; k < n;) {
            const char *p = memchr(t + k, '@', n - k);
            if (!p)
                break;
            k = (size_t)(p - t);
            uint64_t a;
            size_t tl = token_at(p, n - k, &a);
            if (!tl) {
                k++;
                continue;
            }
            struct slot *sl = cache_find(&c, a);
            if (!sl->used && c.n < FRD_SYM_MAX_ADDRS) {
                if (2 * (c.n + 1) > c.cap) { /* grow, keeping the load under half */
                    struct cache g = {.cap = 2 * c.cap};
                    if (!(g.v = calloc(g.cap, sizeof(*g.v)))) {
                        r = -ENOMEM;
                        goto done;
                    }
                    for (size_t j = 0; j < c.cap; j++)
                        if (c.v[j].used)
                            *cache_find(&g, c.v[j].addr) = c.v[j];
                    g.n = c.n;
                    free(c.v);
                    c = g;
                    sl = cache_find(&c, a);
                }
                struct frd_frame f;
                memset(&f, 0, sizeof(f));
                f.ip = a;
                uint64_t off;
                char buf[sizeof(f.function) + sizeof(f.file) + 64];
                symtab_describe(&s, a, a, &f, &off);
                frd_symbol_text(&f, off, buf, sizeof(buf));
                sl->used = 1;
                sl->addr = a;
                sl->text = buf[0] ? strdup(buf) : NULL;
                c.n++;
            }
            if (sl->used && sl->text) {
                if (out_put(&o, t + copied, k - copied) ||
                    out_put(&o, sl->text, strlen(sl->text))) {
                    o.len = start; /* over the bound: this string stays raw */
                    changed = 0;
                    break;
                }
                copied = k + tl;
                changed = 1;
            }
            k += tl;
        }
        if (!changed)
            continue;
        if (out_put(&o, t + copied, n - copied)) {
            o.len = start;
            continue;
        }
        if (nre == capre) {
            size_t cap = capre ? 2 * capre : 64;
            size_t *ni = realloc(idx, cap * sizeof(*ni)), *na = ni ? realloc(at, cap * sizeof(*na)) : NULL;
            if (ni)
                idx = ni;
            if (!ni || !na) {
                r = -ENOMEM;
                goto done;
            }
            at = na;
            capre = cap;
        }
        idx[nre] = i;
        at[nre++] = start;
    }
    /* the dump owns the rewritten text; pointers are fixed once it stops moving */
    if (nre && !frd__keep(d, o.p)) {
        o.p = NULL; /* freed by frd__keep */
        r = -ENOMEM;
    } else if (nre) {
        for (size_t j = 0; j < nre; j++) {
            size_t end = j + 1 < nre ? at[j + 1] : o.len;
            d->strings[idx[j]].text = o.p + at[j];
            d->strings[idx[j]].len = (uint32_t)(end - at[j]);
        }
        o.p = NULL;
    }
done:
    free(o.p);
    free(idx);
    free(at);
    for (size_t j = 0; c.v && j < c.cap; j++)
        free(c.v[j].text);
    free(c.v);
    symtab_close(&s);
    return r;
}
