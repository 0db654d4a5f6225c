/*
 * decoder/render_csv.c - `export --format csv`: every event of the merged
 * timeline as one CSV row (RFC 4180 quoting), for spreadsheets and pandas.
 */
#include <errno.h>
#include <string.h>

#include "render.h"

static void csv_field(FILE *out, const char *s, size_t n)
{
    putc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            putc('"', out);
        /* a NUL or control byte would confuse line-based tools */
        putc((unsigned char)s[i] < 0x20 ? '?' : s[i], out);
    }
    putc('"', out);
}

int frd_csv_export(FILE *out, const struct frd_view *v)
{
    const struct frd_model *m = v->m;
    const struct frd_dump *d = v->d;
    fputs("ns,abs_ns,ticks,tid,thread,type,task,parent,string\n", out);
    for (size_t i = 0; i < m->nev; i++) {
        const struct frd_mev *me = &m->ev[i];
        const struct frd_event *e = me->e;
        const struct frd_thread *t = &d->threads[me->thread];
        fprintf(out, "%lld,%lld,%llu,%u,", (long long)(me->ns - m->start_ns), (long long)e->ns,
                (unsigned long long)e->ticks, t->tid);
        csv_field(out, t->name, strlen(t->name));
        fprintf(out, ",%s,", frd_event_name(e->type));
        if (e->task)
            fprintf(out, "%llu", (unsigned long long)e->task);
        putc(',', out);
        if (e->type == FR_EV_SPAWN && e->parent)
            fprintf(out, "%llu", (unsigned long long)e->parent);
        putc(',', out);
        size_t n = 0;
        const char *s = frd_string(d, e->str, &n);
        if (s)
            csv_field(out, s, n);
        putc('\n', out);
    }
    return ferror(out) ? -EIO : 0;
}
