/*
 * decoder/symbolize.c - map crash addresses to module+offset through the
 * MODULES text, then to function and file:line with elfutils libdwfl.
 *
 * Each mapped file is reported to libdwfl once, placed where the crashed
 * process had it: the start of its offset-0 mapping is the load address of a
 * position-independent object (libdwfl ignores it for ET_EXEC). The files are
 * read from this machine's file system: if they changed since the crash, or
 * are missing, names may be wrong or absent and module+offset remain.
 * Without libdw (meson -Dsymbolize=disabled) only module+offset are given.
 */
#include "symbolize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FRD_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

struct mapping {
    uint64_t start, end, off;
    const char *path; /* points into the MODULES text, NUL-terminated copy */
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
            v[n++] = (struct mapping){s, e, o, line + pos};
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

static void report_all(Dwfl *dw, const struct mapping *v, size_t n)
{
    dwfl_report_begin(dw);
    for (size_t i = 0; i < n; i++) {
        if (v[i].off != 0)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            if (v[j].off == 0 && strcmp(v[j].path, v[i].path) == 0)
                seen = 1;
        if (seen || v[i].path[0] != '/')
            continue;
        /* The path came from the dump: open it without blocking (a FIFO or a
         * device there must not hang or touch anything) and hand libdwfl
         * only a regular file. On success libdwfl owns the descriptor. */
        int fd = open(v[i].path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0)
            continue;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
            !dwfl_report_elf(dw, v[i].path, v[i].path, fd, v[i].start, false))
            close(fd);
    }
    dwfl_report_end(dw, NULL, NULL);
}

static void lookup(Dwfl *dw, uint64_t addr, struct frd_frame *f)
{
    Dwfl_Module *mod = dwfl_addrmodule(dw, addr);
    if (!mod)
        return;
    const char *fn = dwfl_module_addrname(mod, addr);
    if (fn)
        snprintf(f->function, sizeof(f->function), "%s", fn);
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

int frd_symbolize(const struct frd_dump *d, const uint64_t *ips, size_t n,
                  struct frd_frame *out)
{
    struct mapping *v;
    char *text;
    size_t nm = parse_maps(&d->modules, &v, &text);
#ifdef FRD_HAVE_LIBDW
    Dwfl *dw = nm ? dwfl_begin(&callbacks) : NULL;
    if (dw)
        report_all(dw, v, nm);
#endif
    for (size_t i = 0; i < n; i++) {
        struct frd_frame *f = &out[i];
        memset(f, 0, sizeof(*f));
        f->ip = ips[i];
        /* a return address points after the call: look at the call itself */
        uint64_t addr = i > 0 && ips[i] ? ips[i] - 1 : ips[i];
        for (size_t j = 0; j < nm; j++)
            if (addr >= v[j].start && addr < v[j].end) {
                snprintf(f->module, sizeof(f->module), "%s", v[j].path);
                f->offset = ips[i] - v[j].start + v[j].off;
                break;
            }
#ifdef FRD_HAVE_LIBDW
        if (dw && f->module[0])
            lookup(dw, addr, f);
#endif
    }
#ifdef FRD_HAVE_LIBDW
    if (dw)
        dwfl_end(dw);
#endif
    free(text);
    free(v);
    return 0;
}
