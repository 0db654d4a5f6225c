/*
 * decoder/summary.c - findings across many dumps, grouped (summary.h).
 *
 * Groups are found by a linear search: a fleet's dumps carry a handful of
 * distinct bugs, and the decoding of each dump dwarfs this.
 */
#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static char *copy(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        if (len)
            memcpy(c, s, len);
        c[len] = 0;
    }
    return c;
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static struct frd_group *group_for(struct frd_summary *s, int kind, const char *name,
                                   size_t nlen, const char *await, size_t alen)
{
    for (size_t i = 0; i < s->n; i++) {
        struct frd_group *g = &s->v[i];
        if (g->kind == kind && same(g->name, g->name_len, name, nlen) &&
            same(g->await, g->await_len, await, alen))
            return g;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct frd_group *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    struct frd_group *g = &s->v[s->n];
    memset(g, 0, sizeof(*g));
    g->kind = kind;
    g->name = copy(name, nlen);
    g->name_len = nlen;
    g->await = copy(await, alen);
    g->await_len = alen;
    if (!g->name || !g->await) {
        free(g->name);
        free(g->await);
        return NULL;
    }
    s->n++;
    return g;
}

int frd_summary_add(struct frd_summary *s, size_t index, const char *file,
                    const struct frd_model *m, const struct frd_findings *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct frd_finding *x = &f->v[i];
        const char *name = NULL, *await = NULL;
        size_t nlen = 0, alen = 0;
        if (x->task != FRD_NONE) {
            const struct frd_task *t = &m->tasks[x->task];
            name = frd_string(m->dump, t->name, &nlen);
            await = frd_string(m->dump, t->await_str, &alen);
        }
        struct frd_group *g =
            group_for(s, x->kind, name ? name : "", name ? nlen : 0, await ? await : "",
                      await ? alen : 0);
        if (!g)
            return -ENOMEM;
        if (!g->file) {
            g->file = copy(file, strlen(file));
            g->message = copy(x->message, strlen(x->message));
            if (!g->file || !g->message)
                return -ENOMEM;
        }
        g->count++;
        if (g->last_dump != index + 1) {
            g->last_dump = index + 1;
            g->dumps++;
        }
        s->nfindings++;
    }
    return 0;
}

static int by_weight(const void *pa, const void *pb)
{
    const struct frd_group *a = pa, *b = pb;
    if (a->dumps != b->dumps)
        return a->dumps > b->dumps ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = n ? memcmp(a->name, b->name, n) : 0;
    if (c || a->name_len != b->name_len)
        return c ? c : a->name_len < b->name_len ? -1 : 1;
    n = a->await_len < b->await_len ? a->await_len : b->await_len;
    c = n ? memcmp(a->await, b->await, n) : 0;
    return c ? c : a->await_len < b->await_len ? -1 : a->await_len > b->await_len;
}

void frd_summary_sort(struct frd_summary *s)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), by_weight);
}

int frd_summary_text(FILE *out, const struct frd_summary *s)
{
    fprintf(out, "summary: %zu dump%s", s->ndumps, s->ndumps == 1 ? "" : "s");
    if (s->nfailed)
        fprintf(out, " (%zu unreadable)", s->nfailed);
    if (s->ndamaged)
        fprintf(out, " (%zu damaged, read in part)", s->ndamaged);
    fprintf(out, ", %zu finding%s in %zu group%s\n", s->nfindings,
            s->nfindings == 1 ? "" : "s", s->n, s->n == 1 ? "" : "s");
    if (!s->n)
        return ferror(out) ? -EIO : 0;
    fprintf(out, "\n%5s %5s  %-12s  %s\n", "dumps", "count", "kind", "task, await");
    for (size_t i = 0; i < s->n; i++) {
        const struct frd_group *g = &s->v[i];
        fprintf(out, "%5zu %5zu  %-12s  ", g->dumps, g->count, frd_kind_name(g->kind));
        if (g->name_len)
            frd_text_str(out, g->name, g->name_len);
        else
            fputs("-", out);
        if (g->await_len) {
            fputs(" at ", out);
            frd_text_str(out, g->await, g->await_len);
        }
        fputs("\n              first in ", out);
        frd_text_str(out, g->file, strlen(g->file));
        fputs(": ", out);
        frd_text_str(out, g->message, strlen(g->message));
        putc('\n', out);
    }
    return ferror(out) ? -EIO : 0;
}

int frd_summary_json(FILE *out, const struct frd_summary *s)
{
    fprintf(out, "{\"dumps\": %zu, \"unreadable\": %zu, \"damaged\": %zu, \"findings\": %zu, "
            "\"groups\": [",
            s->ndumps, s->nfailed, s->ndamaged, s->nfindings);
    for (size_t i = 0; i < s->n; i++) {
        const struct frd_group *g = &s->v[i];
        fprintf(out, "%s\n {\"kind\": \"%s\", \"name\": ", i ? "," : "", frd_kind_name(g->kind));
        if (g->name_len)
            frd_json_str(out, g->name, g->name_len);
        else
            fputs("null", out);
        fputs(", \"await\": ", out);
        if (g->await_len)
            frd_json_str(out, g->await, g->await_len);
        else
            fputs("null", out);
        fprintf(out, ", \"count\": %zu, \"dumps\": %zu, \"first_file\": ", g->count, g->dumps);
        frd_json_cstr(out, g->file);
        fputs(", \"message\": ", out);
        frd_json_cstr(out, g->message);
        putc('}', out);
    }
    fputs(s->n ? "\n]}" : "]}", out);
    return ferror(out) ? -EIO : 0;
}

void frd_summary_free(struct frd_summary *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].await);
        free(s->v[i].file);
        free(s->v[i].message);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}
