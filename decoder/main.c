/*
 * decoder/main.c - the `flightrec` command: argument parsing and the glue
 * from reader to model, analyses and renderers (DESIGN.md "CLI").
 *
 * Exit status: 0 success; 1 unreadable or corrupt input (the message names
 * what and where; whatever was whole is still printed); 2 usage error.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "model.h"
#include "reader.h"
#include "render.h"
#include "symbolize.h"

#ifndef FRD_VERSION
#define FRD_VERSION "unknown"
#endif

static const char usage_main[] =
    "usage: flightrec COMMAND DUMP [options]\n"
    "\n"
    "Decode a flightrec dump (.frd; '-' reads standard input).\n"
    "\n"
    "commands:\n"
    "  info DUMP [--json]          process, dump reason, crash signal and symbolized\n"
    "                              backtrace, the crashing task, threads, coverage, loss\n"
    "  tasks DUMP [--json]         one row per task instance\n"
    "  timeline DUMP [--task ID] [--thread TID]\n"
    "                              per-task (or per-thread) history in time order\n"
    "  analyze DUMP [--json] [--starvation-ms N] [--long-poll-ms N] [--hang-ms N]\n"
    "                              findings: lost_wakeup, starvation, long_poll, hung,\n"
    "                              never_polled, protocol\n"
    "  export DUMP --format chrome|json|csv [-o FILE]\n"
    "                              every event, machine-readable\n"
    "\n"
    "  flightrec COMMAND --help    help on one command\n"
    "  flightrec --version\n"
    "\n"
    "exit status: 0 success, 1 unreadable or corrupt input, 2 usage error\n";

static const char usage_info[] =
    "usage: flightrec info DUMP [--json]\n"
    "\n"
    "Show the process (pid, executable, command line, host), the dump reason and\n"
    "time, the clock, and every thread with its name, event count, the window its\n"
    "ring still holds and what was lost. For a crash: signal, code, fault address,\n"
    "the crashing thread, the task it was polling with its parent chain, and the\n"
    "backtrace symbolized offline (function, file:line; module+offset otherwise).\n"
    "\n"
    "  --json   one JSON object (reason, signal, signal_name, crash_thread,\n"
    "           crash_task, backtrace, threads, ...)\n";

static const char usage_tasks[] =
    "usage: flightrec tasks DUMP [--json]\n"
    "\n"
    "One row per task instance (an id reused after drop is a new instance): id,\n"
    "name, parent, state at the end, polls, busy time, idle time, scheduling delay\n"
    "p50/p99 and the kinds of findings about it.\n"
    "\n"
    "  --json   {\"tasks\": [...]}\n";

static const char usage_timeline[] =
    "usage: flightrec timeline DUMP [--task ID] [--thread TID]\n"
    "\n"
    "Every task's history in time order, times relative to its first event: spawn,\n"
    "polls (thread, duration, result, await label, starvation), wakes (by which\n"
    "thread and task), waker references, marks, drop.\n"
    "\n"
    "  --task ID     only task ID (all its instances)\n"
    "  --thread TID  the thread's history instead: polls, park/unpark, wakes it sent\n";

static const char usage_analyze[] =
    "usage: flightrec analyze DUMP [--json] [--starvation-ms N] [--long-poll-ms N]\n"
    "                         [--hang-ms N]\n"
    "\n"
    "Name the bugs in the recording, most severe first:\n"
    "  lost_wakeup   a task can no longer progress because a wake went missing\n"
    "                (waker dropped; notification lost while workers parked; wake\n"
    "                during its own poll lost)\n"
    "  protocol      hooks out of order (wake or poll after drop, overlapping polls,\n"
    "                poll end without begin)\n"
    "  hung          pending with no wake for longer than --hang-ms, with its\n"
    "                last await label\n"
    "  starvation    runnable but not polled for longer than --starvation-ms while\n"
    "                the workers were busy, naming what kept them busy\n"
    "  never_polled  spawned and never polled within --starvation-ms\n"
    "  long_poll     one poll held its worker longer than --long-poll-ms\n"
    "No finding rests on the absence of an event in a span some ring lost.\n"
    "\n"
    "  --json              one object: events, tasks, threads, window_ns, findings\n"
    "  --starvation-ms N   default 10\n"
    "  --long-poll-ms N    default 10\n"
    "  --hang-ms N         default 1000\n";

static const char usage_export[] =
    "usage: flightrec export DUMP --format chrome|json|csv [-o FILE]\n"
    "\n"
    "Write every event of the merged timeline.\n"
    "  --format json    {\"threads\", \"strings\", \"events\": [{ns, ticks, tid, type, ...}]}\n"
    "  --format csv     ns,abs_ns,ticks,tid,thread,type,task,parent,string\n"
    "  --format chrome  Trace Event JSON (chrome://tracing, Perfetto): polls as\n"
    "                   slices per thread, parked spans, wakes as instants\n"
    "  -o FILE          write to FILE instead of standard output\n";

enum cmd { C_INFO, C_TASKS, C_TIMELINE, C_ANALYZE, C_EXPORT };

struct opts {
    enum cmd cmd;
    const char *dump;
    int json;
    struct frd_filter flt;
    struct frd_thresholds th;
    const char *format;
    const char *output;
};

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fputs("flightrec: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    fputs(usage, stderr);
    return 2;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -EINVAL;
    unsigned long long x = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *v = x;
    return 0;
}

static int parse_ms(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    double ms = strtod(s, &end);
    if (errno || *end || end == s || !(ms >= 0) || ms > 1e12)
        return -EINVAL;
    *ns = (int64_t)(ms * 1e6);
    return 0;
}

/* Parse argv after the command. Return: 0, 2 (usage error), or 3 (help shown). */
static int parse(int argc, char **argv, struct opts *o, const char *usage)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 3;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->dump)
                return usage_error(usage, "unexpected argument '%s'", a);
            o->dump = a;
            continue;
        }
        /* --opt=value or --opt value */
        const char *eq = strchr(a, '=');
        if (eq && (size_t)(eq - a) < sizeof(name)) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a);
        }
        int takes = strcmp(name, "--task") == 0 || strcmp(name, "--thread") == 0 ||
                    strcmp(name, "--starvation-ms") == 0 || strcmp(name, "--long-poll-ms") == 0 ||
                    strcmp(name, "--hang-ms") == 0 || strcmp(name, "--format") == 0 ||
                    strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0;
        if (takes && !val) {
            if (i + 1 >= argc)
                return usage_error(usage, "option '%s' needs a value", name);
            val = argv[++i];
        }
        int ok = 0;
        uint64_t u;
        if (strcmp(name, "--json") == 0 && !val &&
            (o->cmd == C_INFO || o->cmd == C_TASKS || o->cmd == C_ANALYZE)) {
            o->json = 1;
            ok = 1;
        } else if (o->cmd == C_TIMELINE && strcmp(name, "--task") == 0) {
            ok = parse_u64(val, &u) == 0;
            o->flt.by_task = 1;
            o->flt.task = u;
        } else if (o->cmd == C_TIMELINE && strcmp(name, "--thread") == 0) {
            ok = parse_u64(val, &u) == 0 && u <= UINT32_MAX;
            o->flt.by_thread = 1;
            o->flt.tid = (uint32_t)u;
        } else if (o->cmd == C_ANALYZE && strcmp(name, "--starvation-ms") == 0) {
            ok = parse_ms(val, &o->th.starvation_ns) == 0;
        } else if (o->cmd == C_ANALYZE && strcmp(name, "--long-poll-ms") == 0) {
            ok = parse_ms(val, &o->th.long_poll_ns) == 0;
        } else if (o->cmd == C_ANALYZE && strcmp(name, "--hang-ms") == 0) {
            ok = parse_ms(val, &o->th.hang_ns) == 0;
        } else if (o->cmd == C_EXPORT && strcmp(name, "--format") == 0) {
            ok = strcmp(val, "json") == 0 || strcmp(val, "csv") == 0 ||
                 strcmp(val, "chrome") == 0;
            o->format = val;
        } else if (o->cmd == C_EXPORT && (strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0)) {
            ok = 1;
            o->output = val;
        } else {
            return usage_error(usage, "unknown option '%s'", a);
        }
        if (!ok)
            return usage_error(usage, "bad value '%s'", val ? val : "");
    }
    if (!o->dump)
        return usage_error(usage, "%s", "missing DUMP argument");
    if (o->cmd == C_EXPORT && !o->format)
        return usage_error(usage, "%s", "export needs --format chrome|json|csv");
    return 0;
}

int main(int argc, char **argv)
{
    /*
     * A fixed mmap threshold: the model's arrays (hundreds of MiB on a large
     * dump) then grow by mremap instead of by copying, which glibc's moving
     * threshold would make them do after the first large free.
     */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    if (argc < 2)
        return usage_error(usage_main, "%s", "missing command");
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(c, "--version") == 0) {
        printf("flightrec %s (dump format %u)\n", FRD_VERSION, FR_FORMAT_VERSION);
        return 0;
    }
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.th.starvation_ns = FRD_DEFAULT_STARVATION_NS;
    o.th.long_poll_ns = FRD_DEFAULT_LONG_POLL_NS;
    o.th.hang_ns = FRD_DEFAULT_HANG_NS;
    const char *usage;
    if (strcmp(c, "info") == 0) {
        o.cmd = C_INFO;
        usage = usage_info;
    } else if (strcmp(c, "tasks") == 0) {
        o.cmd = C_TASKS;
        usage = usage_tasks;
    } else if (strcmp(c, "timeline") == 0) {
        o.cmd = C_TIMELINE;
        usage = usage_timeline;
    } else if (strcmp(c, "analyze") == 0) {
        o.cmd = C_ANALYZE;
        usage = usage_analyze;
    } else if (strcmp(c, "export") == 0) {
        o.cmd = C_EXPORT;
        usage = usage_export;
    } else {
        return usage_error(usage_main, "unknown command '%s'", c);
    }
    int r = parse(argc - 2, argv + 2, &o, usage);
    if (r == 3)
        return 0;
    if (r)
        return r;

    /* only the timeline and the event exports walk every event after the
     * model is built; the rest read events once, straight from the pages */
    int timeline = o.cmd == C_TIMELINE || (o.cmd == C_EXPORT && strcmp(o.format, "chrome") != 0);
    struct frd_dump *d = NULL;
    char err[512];
    r = frd_open_ex(o.dump, timeline ? FRD_OPEN_EVENTS : 0, &d, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "flightrec: %s\n", err);
        return 1;
    }
    struct frd_model m;
    if (frd_model_build_ex(d, timeline ? FRD_MODEL_TIMELINE : 0, &m) < 0) {
        fprintf(stderr, "flightrec: %s: out of memory building the model\n", o.dump);
        frd_close(d);
        return 1;
    }
    struct frd_findings f = {0};
    if (frd_analyze(&m, &o.th, &f) < 0) {
        fprintf(stderr, "flightrec: %s: out of memory analysing\n", o.dump);
        frd_model_free(&m);
        frd_close(d);
        return 1;
    }
    struct frd_view v = {.d = d, .m = &m, .f = &f, .th = &o.th};
    struct frd_frame *frames = NULL;
    if (o.cmd == C_INFO && d->crash.present && d->crash.nframes) {
        frames = calloc(d->crash.nframes, sizeof(*frames));
        if (frames && frd_symbolize(d, d->crash.frames, d->crash.nframes, frames) == 0) {
            v.frames = frames;
            v.nframes = d->crash.nframes;
        }
    }

    FILE *out = stdout;
    if (o.output && strcmp(o.output, "-") != 0) {
        out = fopen(o.output, "w");
        if (!out) {
            fprintf(stderr, "flightrec: %s: %s\n", o.output, strerror(errno));
            r = -errno;
            goto done;
        }
    }
    switch (o.cmd) {
    case C_INFO: r = o.json ? frd_json_info(out, &v) : frd_text_info(out, &v); break;
    case C_TASKS: r = o.json ? frd_json_tasks(out, &v) : frd_text_tasks(out, &v); break;
    case C_TIMELINE: r = frd_text_timeline(out, &v, &o.flt); break;
    case C_ANALYZE: r = o.json ? frd_json_findings(out, &v) : frd_text_findings(out, &v); break;
    case C_EXPORT:
        r = strcmp(o.format, "csv") == 0      ? frd_csv_export(out, &v)
            : strcmp(o.format, "chrome") == 0 ? frd_chrome_export(out, &v)
                                              : frd_json_export(out, &v);
        break;
    }
    if (fflush(out) != 0 && r == 0)
        r = -EIO;
    if (out != stdout && fclose(out) != 0 && r == 0)
        r = -EIO;
    if (r == -ENOENT)
        fprintf(stderr, "flightrec: %s: no such %s in the dump\n", o.dump,
                o.flt.by_thread ? "thread" : "task");
    else if (r < 0)
        fprintf(stderr, "flightrec: writing output: %s\n", strerror(-r));
done:
    /* damage is reported after the output, which shows everything that was whole */
    for (size_t i = 0; i < d->nerrors; i++)
        fprintf(stderr, "flightrec: %s\n", d->errors[i]);
    if (d->errors_all > d->nerrors)
        fprintf(stderr, "flightrec: ... and %zu more problems\n", d->errors_all - d->nerrors);
    int status = d->damaged ? 1 : r == -ENOENT ? 2 : r < 0 ? 1 : 0;
    free(frames);
    frd_findings_free(&f);
    frd_model_free(&m);
    frd_close(d);
    return status;
}
