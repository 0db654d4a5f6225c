/*
 * decoder/elfdeps.c - the libraries a program will load, found the way the
 * dynamic loader finds them, without running the program.
 *
 * `flightrec run` preloads the adapter of each event loop the command uses.
 * Running `ldd` would execute the command's loader with its environment (and
 * an untrusted binary's loader is the binary's choice), so this file reads
 * the ELF with elfutils' libelf: the program headers, PT_DYNAMIC, its
 * DT_NEEDED, DT_RPATH and DT_RUNPATH strings, and then each needed library in turn, breadth
 * first, searched in the loader's order (see elfdeps.h). Only files of the
 * program's own class, byte order and machine are accepted as a match, as
 * the loader skips the others. Every read is bounded: the command may be any
 * file the user names.
 */
#include "elfdeps.h"

#include <elf.h>
#include <gelf.h>
#include <libelf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PHDRS 4096
#define MAX_DYN_BYTES (1u << 20)
#define MAX_STR 8192 /* longest DT_NEEDED / RPATH / RUNPATH string read */
#define MAX_CONF_DIRS 256


struct object {
    char *path;    /* as resolved (realpath) */
    char *rpath;   /* DT_RPATH, $ORIGIN expanded, or NULL */
    char *runpath; /* DT_RUNPATH, $ORIGIN expanded, or NULL */
    int parent;    /* index of the object that needed it, -1 for the program */
    char **needed; /* DT_NEEDED names */
    size_t nneeded;
};

struct walk {
    struct object *obj;
    size_t n, cap;
    char **names; /* needed names already resolved (the loader loads each once) */
    size_t nnames, capnames;
    char *conf[MAX_CONF_DIRS]; /* /etc/ld.so.conf directories, then the system's */
    size_t nconf;
    const char *llp;
    Elf64_Half machine;
};

/* "$ORIGIN" and "${ORIGIN}" replaced by @origin; NULL (entry unusable) on any
 * other dynamic-string token, as on a failed allocation. */
static char *expand_origin(const char *s, size_t len, const char *origin)
{
    size_t cap = len + 1, n = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '$')
            cap += strlen(origin);
    char *o = malloc(cap);
    if (!o)
        return NULL;
    for (size_t i = 0; i < len;) {
        if (s[i] != '$') {
            o[n++] = s[i++];
            continue;
        }
        size_t k = 0;
        if (strncmp(s + i, "$ORIGIN", 7) == 0 && !(i + 7 < len && (s[i + 7] == '_' ||
            (s[i + 7] >= 'A' && s[i + 7] <= 'Z') || (s[i + 7] >= 'a' && s[i + 7] <= 'z'))))
            k = 7;
        else if (strncmp(s + i, "${ORIGIN}", 9) == 0)
            k = 9;
        if (!k || i + k > len) {
            free(o);
            return NULL;
        }
        memcpy(o + n, origin, strlen(origin));
        n += strlen(origin);
        i += k;
    }
    o[n] = 0;
    return o;
}

/* A colon-separated search list with each entry $ORIGIN-expanded; entries
 * with other tokens are dropped. */
static char *expand_list(const char *s, const char *origin)
{
    size_t len = strlen(s), cap = 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && s[j] != ':')
            j++;
        char *e = j > i ? expand_origin(s + i, j - i, origin) : NULL;
        if (e) {
            size_t el = strlen(e);
            char *bigger = realloc(out, cap + el + 1);
            if (!bigger) {
                free(e);
                break;
            }
            out = bigger;
            cap += el + 1;
            if (n)
                out[n++] = ':';
            memcpy(out + n, e, el + 1);
            n += el;
            free(e);
        }
        i = j + 1;
    }
    return out;
}

/*
 * Read the ELF at @fd with elfutils' libelf (the file is mapped, not read:
 * only the pages of the dynamic segment and the few strings named there are
 * touched, though a large program's string table can be megabytes).
 * Return: 0 dynamic (needed/rpath/runpath filled), 1 static, 2 foreign
 * (class, byte order or machine), 3 not ELF or damaged.
 * @machine: the machine to match, 0 to accept any (and report it there).
 * The loader's view is followed: PT_DYNAMIC, DT_STRTAB mapped through the
 * PT_LOAD segments, so a binary without section headers reads the same.
 */
static int read_elf(int fd, Elf64_Half *machine, struct object *o, const char *origin)
{
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    GElf_Ehdr eh;
    size_t nph;
    int r = 3;
    if (!e || elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh) || elf_getphdrnum(e, &nph) != 0)
        goto out;
    r = 2;
    if (gelf_getclass(e) != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB
                                                                          : ELFDATA2MSB) ||
        (*machine && eh.e_machine != *machine))
        goto out;
    *machine = eh.e_machine;
    r = 3;
    if (nph == 0 || nph > MAX_PHDRS)
        goto out;
    GElf_Phdr dp = {0}, ph;
    int have_dyn = 0;
    for (size_t i = 0; i < nph; i++)
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_DYNAMIC) {
            dp = ph;
            have_dyn = 1;
        }
    if (!have_dyn) {
        r = 1; /* static */
        goto out;
    }
    if (dp.p_filesz > MAX_DYN_BYTES || dp.p_filesz == 0)
        goto out;
    Elf_Data *dyn = elf_getdata_rawchunk(e, (int64_t)dp.p_offset, dp.p_filesz, ELF_T_DYN);
    if (!dyn)
        goto out;
    size_t ndyn = dp.p_filesz / gelf_fsize(e, ELF_T_DYN, 1, EV_CURRENT);
    uint64_t strtab = 0, strsz = 0, stroff = 0;
    size_t nneeded = 0;
    GElf_Dyn d;
    for (size_t i = 0; i < ndyn && gelf_getdyn(dyn, (int)i, &d) && d.d_tag != DT_NULL; i++) {
        if (d.d_tag == DT_STRTAB)
            strtab = d.d_un.d_ptr;
        else if (d.d_tag == DT_STRSZ)
            strsz = d.d_un.d_val;
        else if (d.d_tag == DT_NEEDED)
            nneeded++;
    }
    int mapped = 0; /* DT_STRTAB is an address: find it in a PT_LOAD segment */
    for (size_t i = 0; i < nph && !mapped; i++)
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && strtab >= ph.p_vaddr &&
            strtab - ph.p_vaddr < ph.p_filesz) {
            stroff = ph.p_offset + (strtab - ph.p_vaddr);
            mapped = 1;
        }
    if (!strtab || !strsz || !mapped || !(o->needed = calloc(nneeded ? nneeded : 1, sizeof(char *))))
        goto out;
    for (size_t i = 0; i < ndyn && gelf_getdyn(dyn, (int)i, &d) && d.d_tag != DT_NULL; i++) {
        int64_t tag = d.d_tag;
        uint64_t v = d.d_un.d_val;
        if ((tag != DT_NEEDED && tag != DT_RPATH && tag != DT_RUNPATH) || v >= strsz)
            continue;
        size_t want = strsz - v < MAX_STR ? (size_t)(strsz - v) : MAX_STR;
        Elf_Data *sd = elf_getdata_rawchunk(e, (int64_t)(stroff + v), want, ELF_T_BYTE);
        const char *str = sd ? sd->d_buf : NULL;
        if (!str || !memchr(str, 0, sd->d_size))
            continue; /* unterminated within the bound: not a name the loader could use */
        if (tag == DT_NEEDED && o->nneeded < nneeded) {
            if ((o->needed[o->nneeded] = strdup(str)))
                o->nneeded++;
        } else if (tag == DT_RPATH && !o->rpath) {
            o->rpath = expand_list(str, origin);
        } else if (tag == DT_RUNPATH && !o->runpath) {
            o->runpath = expand_list(str, origin);
        }
    }
    r = 0;
out:
    if (e)
        elf_end(e);
    return r;
}

static void add_conf_dir(struct walk *w, const char *dir)
{
    if (w->nconf >= MAX_CONF_DIRS || dir[0] != '/')
        return;
    for (size_t i = 0; i < w->nconf; i++)
        if (strcmp(w->conf[i], dir) == 0)
            return;
    char *d = strdup(dir);
    if (d)
        w->conf[w->nconf++] = d;
}

/* /etc/ld.so.conf and its "include" globs (relative to /etc), depth-bounded. */
static void read_conf(struct walk *w, const char *path, int depth)
{
    if (depth > 8)
        return;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[PATH_MAX];
    while (fgets(line, sizeof(line), f)) {
        char *s = line, *hash = strchr(s, '#');
        if (hash)
            *hash = 0;
        s += strspn(s, " \t");
        s[strcspn(s, "\r\n")] = 0;
        for (size_t n = strlen(s); n && (s[n - 1] == ' ' || s[n - 1] == '\t');)
            s[--n] = 0;
        if (!*s)
            continue;
        if (strncmp(s, "include", 7) == 0 && (s[7] == ' ' || s[7] == '\t')) {
            char pat[PATH_MAX];
            s += 8 + strspn(s + 8, " \t");
            snprintf(pat, sizeof(pat), "%s%s", s[0] == '/' ? "" : "/etc/", s);
            glob_t g;
            if (glob(pat, 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++)
                    read_conf(w, g.gl_pathv[i], depth + 1);
            globfree(&g);
        } else {
            add_conf_dir(w, s);
        }
    }
    fclose(f);
}

/* The directory this process's libc came from (the multiarch system
 * directory, e.g. /lib/x86_64-linux-gnu) and its /usr twin. */
static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    const char *name = info->dlpi_name, *slash = name ? strrchr(name, '/') : NULL;
    if (slash && strncmp(slash + 1, "libc.so.", 8) == 0) {
        snprintf(arg, PATH_MAX, "%.*s", (int)(slash - name), name);
        return 1;
    }
    return 0;
}

static void system_dirs(struct walk *w)
{
    char libc_dir[PATH_MAX] = "";
    dl_iterate_phdr(find_libc, libc_dir);
    if (libc_dir[0] == '/') {
        char twin[PATH_MAX];
        add_conf_dir(w, libc_dir);
        if (strncmp(libc_dir, "/usr/", 5) == 0)
            snprintf(twin, sizeof(twin), "%s", libc_dir + 4);
        else
            snprintf(twin, sizeof(twin), "/usr%s", libc_dir);
        add_conf_dir(w, twin);
    }
    const char *fixed[] = {"/lib", "/usr/lib", "/lib64", "/usr/lib64"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
        add_conf_dir(w, fixed[i]);
}

static int names_seen(struct walk *w, const char *name)
{
    for (size_t i = 0; i < w->nnames; i++)
        if (strcmp(w->names[i], name) == 0)
            return 1;
    if (w->nnames == w->capnames) {
        size_t cap = w->capnames ? 2 * w->capnames : 32;
        char **v = realloc(w->names, cap * sizeof(*v));
        if (!v)
            return 1;
        w->names = v;
        w->capnames = cap;
    }
    char *d = strdup(name);
    if (d)
        w->names[w->nnames++] = d;
    return 0;
}

/* Open @path if it is a regular file; on a match of this machine's ELF, read
 * it into a new object. Return: 1 taken, 0 try the next candidate. */
static int try_file(struct walk *w, const char *path, int parent)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return 0;
    struct stat st;
    char real[PATH_MAX];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !realpath(path, real)) {
        close(fd);
        return 0;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct object *v = realloc(w->obj, cap * sizeof(*v));
        if (!v) {
            close(fd);
            return 0;
        }
        w->obj = v;
        w->cap = cap;
    }
    struct object *o = &w->obj[w->n];
    memset(o, 0, sizeof(*o));
    o->parent = parent;
    char origin[PATH_MAX];
    snprintf(origin, sizeof(origin), "%s", real);
    char *slash = strrchr(origin, '/');
    if (slash)
        *(slash == origin ? slash + 1 : slash) = 0;
    Elf64_Half m = w->machine;
    int r = read_elf(fd, &m, o, origin);
    close(fd);
    if (r == 2 || r == 3) { /* not a match: the loader goes on searching */
        free(o->rpath);
        free(o->runpath);
        for (size_t i = 0; i < o->nneeded; i++)
            free(o->needed[i]);
        free(o->needed);
        return 0;
    }
    o->path = strdup(real);
    w->n++;
    return 1;
}

static int search_list(struct walk *w, const char *list, const char *name, int parent)
{
    if (!list)
        return 0;
    for (const char *s = list; *s;) {
        size_t n = strcspn(s, ":;");
        char path[PATH_MAX];
        /* an empty entry in LD_LIBRARY_PATH means the current directory */
        if (snprintf(path, sizeof(path), "%.*s%s%s", (int)n, n ? s : ".",
                     n && s[n - 1] == '/' ? "" : "/", name) < (int)sizeof(path) &&
            try_file(w, path, parent))
            return 1;
        s += n;
        if (*s)
            s++;
    }
    return 0;
}

/* Find @name needed by object @from, the loader's way. Return: 1 found. */
static int resolve(struct walk *w, size_t from, const char *name)
{
    int p = (int)from;
    if (strchr(name, '/'))
        return try_file(w, name, p);
    if (!w->obj[from].runpath)
        for (int i = p; i >= 0; i = w->obj[i].parent)
            if (search_list(w, w->obj[i].rpath, name, p))
                return 1;
    if (search_list(w, w->llp, name, p) || search_list(w, w->obj[from].runpath, name, p))
        return 1;
    for (size_t i = 0; i < w->nconf; i++)
        if (search_list(w, w->conf[i], name, p))
            return 1;
    return 0;
}

static unsigned classify(const char *name)
{
    if (strcmp(name, "libuv.so.1") == 0)
        return FRD_DEP_UV;
    if (strcmp(name, "libevent-2.1.so.7") == 0 || strcmp(name, "libevent_core-2.1.so.7") == 0)
        return FRD_DEP_EVENT;
    return 0;
}

int frd_elf_deps(const char *path, const char *ld_library_path, struct frd_deps *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = FRD_EXE_OTHER;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return 0;
    char head[2] = {0, 0};
    ssize_t k = read(fd, head, 2);
    close(fd);
    if (k == 2 && head[0] == '#' && head[1] == '!') {
        out->kind = FRD_EXE_SCRIPT;
        return 0;
    }

    struct walk w = {.llp = ld_library_path && *ld_library_path ? ld_library_path : NULL};
    /* the machine of this process: a program of another one gets no adapter */
    elf_version(EV_CURRENT);
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    Elf *se = self >= 0 ? elf_begin(self, ELF_C_READ_MMAP, NULL) : NULL;
    GElf_Ehdr eh;
    if (se && gelf_getehdr(se, &eh))
        w.machine = eh.e_machine;
    if (se)
        elf_end(se);
    if (self >= 0)
        close(self);

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    struct object prog = {.parent = -1};
    char real[PATH_MAX], origin[PATH_MAX];
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !realpath(path, real)) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    snprintf(origin, sizeof(origin), "%s", real);
    char *slash = strrchr(origin, '/');
    if (slash)
        *(slash == origin ? slash + 1 : slash) = 0;
    Elf64_Half m = w.machine;
    int r = read_elf(fd, &m, &prog, origin);
    close(fd);
    out->kind = r == 0 ? FRD_EXE_DYNAMIC : r == 1 ? FRD_EXE_STATIC
              : r == 2 ? FRD_EXE_FOREIGN : FRD_EXE_OTHER;
    if (r != 0)
        goto done;
    prog.path = strdup(real);
    if (!(w.obj = malloc(16 * sizeof(*w.obj))))
        goto done;
    w.cap = 16;
    w.obj[w.n++] = prog;
    memset(&prog, 0, sizeof(prog));
    read_conf(&w, "/etc/ld.so.conf", 0);
    system_dirs(&w);

    /* breadth first, like the loader's load order */
    for (size_t i = 0; i < w.n; i++) {
        for (size_t j = 0; j < w.obj[i].nneeded; j++) {
            const char *name = w.obj[i].needed[j];
            out->found |= classify(name);
            if (names_seen(&w, name))
                continue;
            if (w.n >= FRD_DEPS_MAX) {
                out->truncated = 1;
                continue;
            }
            if (!resolve(&w, i, name))
                out->unfound++;
        }
    }
    out->objects = (unsigned)w.n;

done:
    free(prog.path);
    free(prog.rpath);
    free(prog.runpath);
    for (size_t i = 0; i < prog.nneeded; i++)
        free(prog.needed[i]);
    free(prog.needed);
    for (size_t i = 0; i < w.n; i++) {
        struct object *o = &w.obj[i];
        free(o->path);
        free(o->rpath);
        free(o->runpath);
        for (size_t j = 0; j < o->nneeded; j++)
            free(o->needed[j]);
        free(o->needed);
    }
    free(w.obj);
    for (size_t i = 0; i < w.nnames; i++)
        free(w.names[i]);
    free(w.names);
    for (size_t i = 0; i < w.nconf; i++)
        free(w.conf[i]);
    return 0;
}
