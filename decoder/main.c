/*
 * decoder/main.c - the `flightrec` command: argument parsing and the glue
 * from reader to model, analyses and renderers (DESIGN.md "CLI").
 *
 * Exit status: 0 success; 1 unreadable or corrupt input (the message names
 * what and where; whatever was whole is still printed); 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze.h"
#include "cmd.h"
#include "json.h"
#include "model.h"
#include "progress.h"
#include "reader.h"
#include "render.h"
#include "summary.h"
#include "symbolize.h"

#ifndef FRD_VERSION
#define FRD_VERSION "unknown"
#endif

static const char usage_main[] =
    "usage: flightrec COMMAND DUMP [options]\n"
    "\n"
    "Decode a flightrec dump (.frd; '-' reads standard input), or ask a running\n"
    "process for one.\n"
    "\n"
    "commands:\n"
    "  info DUMP [--json]          process, dump reason, crash signal and symbolized\n"
    "                              backtrace, the crashing task, threads, coverage, loss\n"
    "  tasks DUMP [--json]         one row per task instance\n"
    "  timeline DUMP [--task ID] [--thread TID]\n"
    "                              per-task (or per-thread) history in time order\n"
    "  analyze DUMP... [--json] [--starvation-ms N] [--long-poll-ms N] [--hang-ms N]\n"
    "                              findings: deadlock, lost_wakeup, delayed_wakeup,\n"
    "                              starvation, long_poll, hung, never_polled, protocol;\n"
    "                              several dumps or a\n"
    "                              directory: each one's findings and a summary\n"
    "  export DUMP --format chrome|json|csv [-o FILE]\n"
    "                              every event as JSON or CSV, or a trace for\n"
    "                              Perfetto and chrome://tracing\n"
    "  report DUMP [-o FILE]       one self-contained HTML page: crash summary,\n"
    "                              findings, zoomable timeline of workers and tasks\n"
    "  locks DUMP [--json]         per lock: acquisitions, contended ones, total and\n"
    "                              longest wait, longest hold, holder, top waiters\n"
    "  dump PID [--dir DIR] [--timeout S] [--signal SIG]\n"
    "                              ask a running process for a dump, print its path\n"
    "  recover FILE|PID [--dir DIR] [--force]\n"
    "                              turn the shared rings a killed process left\n"
    "                              (FLIGHTREC_SHARED_RINGS=1) into a dump, print its path\n"
    "  run [--dir DIR] [--stall-ms N] [--signal SIG] -- CMD [ARGS...]\n"
    "                              run CMD recorded, with the adapter of its event\n"
    "                              loop (libuv, libevent) preloaded\n"
    "\n"
    "Code addresses recorded in names and labels (@0x...) are shown as the\n"
    "functions and source lines they point to; --raw-addresses (any command that\n"
    "reads a dump) keeps them as recorded.\n"
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
    "For a stall dump (the watchdog, FLIGHTREC_STALL_MS): the stuck thread, its\n"
    "task, how long the poll had run and its stack, taken on that thread. For a\n"
    "recovered dump: how many torn pages were dropped.\n"
    "\n"
    "  --json   one JSON object (reason, signal, signal_name, crash_thread,\n"
    "           crash_task, backtrace, stall, recovery, threads, ...)\n";

static const char usage_tasks[] =
    "usage: flightrec tasks DUMP [--json]\n"
    "\n"
    "One row per task instance (an id reused after drop is a new instance): id,\n"
    "name, parent, state at the end, polls, busy time, idle time, scheduling delay\n"
    "p50/p99 and the kinds of findings about it. Then the tasks alive at the dump\n"
    "that did nothing in the recording, from the recorder's spawn table: id, name,\n"
    "parent, how long before the window they were spawned and on which thread.\n"
    "\n"
    "  --json   {\"tasks\": [...], \"silent\": [{\"id\", \"name\", \"parent\",\n"
    "           \"spawned_ns\" (from the window's start, negative), \"thread\"}]}\n";

static const char usage_locks[] =
    "usage: flightrec locks DUMP [--json]\n"
    "\n"
    "One row per lock the program recorded (fr_lock_wait, fr_lock_acquire,\n"
    "fr_lock_release), most waited-for first: its name and id, acquisitions and\n"
    "how many had to wait behind another task, total and longest wait (a wait\n"
    "still going at the end counts up to the end), the longest hold, who holds it\n"
    "at the end and who is still waiting, and the tasks that waited longest.\n"
    "\n"
    "  --json   {\"locks\": [{\"lock\", \"name\", \"acquisitions\", \"contended\",\n"
    "           \"wait_total_ns\", \"wait_max_ns\", \"hold_max_ns\" (null: no hold\n"
    "           released), \"holder\" (task id or null), \"holders\", \"waiting\",\n"
    "           \"top_waiters\": [{\"task\", \"name\",\n"
    "           \"wait_total_ns\"}]}]}, sorted by wait_total_ns\n";

static const char usage_timeline[] =
    "usage: flightrec timeline DUMP [--task ID] [--thread TID]\n"
    "\n"
    "Every task's history in time order, times relative to its first event: spawn,\n"
    "polls (thread, duration, result, await label, starvation), wakes (by which\n"
    "thread and task), waker references, marks, lock waits, acquisitions and\n"
    "releases, drop.\n"
    "\n"
    "  --task ID     only task ID (all its instances)\n"
    "  --thread TID  the thread's history instead: polls, park/unpark, wakes it sent\n";

static const char usage_analyze[] =
    "usage: flightrec analyze DUMP... [--json] [--starvation-ms N] [--long-poll-ms N]\n"
    "                            [--hang-ms N]\n"
    "\n"
    "Name the bugs in the recording, most severe first:\n"
    "  deadlock      a cycle of tasks, each waiting (fr_lock_wait) for longer than\n"
    "                --hang-ms for a lock the next one holds; the cycle is drawn\n"
    "  lost_wakeup   a task can no longer progress because a wake went missing\n"
    "                (waker dropped; notification lost while workers parked; wake\n"
    "                during its own poll lost)\n"
    "  protocol      hooks out of order (wake or poll after drop, a poll after\n"
    "                READY, overlapping polls, poll end without begin, a lock\n"
    "                released by a task that does not hold it)\n"
    "  hung          pending with no wake for longer than --hang-ms, with its\n"
    "                last await label (never a task waiting on outside input); a\n"
    "                task waiting for a lock names the holder and what it does\n"
    "  delayed_wakeup  polled only after more than --starvation-ms while a worker\n"
    "                sat parked for most of the wait: the wake reached no worker\n"
    "  starvation    runnable but not polled for longer than --starvation-ms while\n"
    "                its worker was busy; the culprit is the task that held that\n"
    "                worker longest (busy time summed over its polls)\n"
    "  never_polled  spawned and never polled within --starvation-ms (busy or\n"
    "                parked workers, who spawned it)\n"
    "  long_poll     one poll held its worker longer than --long-poll-ms\n"
    "No finding rests on the absence of an event in a span some ring lost.\n"
    "\n"
    "Several dumps, or a directory (its *.frd files in name order): each dump's\n"
    "findings, then a summary that groups the same finding (kind, task name, last\n"
    "await label) across dumps, most widespread first, with counts.\n"
    "\n"
    "  --json              one object: events, tasks, threads, window_ns,\n"
    "                      silent_tasks (alive at the dump, no event: tasks lists\n"
    "                      them), timing_withheld (findings on a duration left\n"
    "                      out: the clock could not be calibrated), host_withheld\n"
    "                      (findings on a wait left out: the host kept the thread\n"
    "                      from running for all but the threshold of it, or the\n"
    "                      dump lost its run delays), run_delay_lost, crash (null,\n"
    "                      or the signal, thread and task of a crash), findings;\n"
    "                      for several dumps {\"dumps\": [{\"file\", \"damaged\",\n"
    "                      \"analysis\"} or {\"file\", \"error\"}], \"summary\": {...}}\n"
    "  --starvation-ms N   default 10\n"
    "  --long-poll-ms N    default 10\n"
    "  --hang-ms N         default 1000\n";

static const char usage_export[] =
    "usage: flightrec export DUMP --format chrome|json|csv [-o FILE]\n"
    "\n"
    "Write the recording in another format.\n"
    "  --format json    every event: {\"threads\", \"strings\", \"events\": [{ns, ticks,\n"
    "                   tid, type, ...}]}\n"
    "  --format csv     every event: ns,abs_ns,ticks,tid,thread,type,task,parent,string\n"
    "  --format chrome  a trace for ui.perfetto.dev (Open trace file), chrome://tracing\n"
    "                   (Load) or Chrome DevTools' Performance panel: process\n"
    "                   \"workers\" has a track per thread (polls named after their\n"
    "                   task, parked spans, wakes); process \"tasks\" a track per task\n"
    "                   instance (polls, await labels, runnable spans); arrows from\n"
    "                   each wake to the poll it caused; findings and the crash as\n"
    "                   instants. Times in microseconds from the recording start.\n"
    "  -o FILE          write to FILE instead of standard output\n";

static const char usage_report[] =
    "usage: flightrec report DUMP [-o FILE] [--max-polls N] [--max-tasks N]\n"
    "                        [--starvation-ms N] [--long-poll-ms N] [--hang-ms N]\n"
    "\n"
    "Write one self-contained HTML page (inline script and style, nothing loaded\n"
    "from the network) to open in a browser: the process and the crash (signal,\n"
    "thread, task chain, symbolized backtrace), the findings, and a timeline with\n"
    "a lane per worker thread (polls coloured by task name, parked spans, wake\n"
    "arrows from the waking thread to the poll the wake caused, findings marked)\n"
    "and a row per task instance. Click a finding to zoom the timeline to it;\n"
    "wheel zooms, drag pans.\n"
    "\n"
    "  -o FILE           write to FILE ('-': standard output); default: the dump's\n"
    "                    name with .html for .frd, beside it (standard output when\n"
    "                    the dump is read from standard input)\n"
    "  --max-polls N     polls (and parked spans) kept per worker lane, default 20000:\n"
    "                    the polls findings are about, long polls and the crashing\n"
    "                    task's first, then the latest; the page says what it left out\n"
    "  --max-tasks N     task rows kept, default 20000: tasks with findings and the\n"
    "                    crashing task's chain first, then the latest\n"
    "  --starvation-ms N, --long-poll-ms N, --hang-ms N   as for analyze\n";

enum cmd { C_INFO, C_TASKS, C_TIMELINE, C_ANALYZE, C_EXPORT, C_REPORT, C_LOCKS };

struct opts {
    enum cmd cmd;
    const char **dumps; /* argc entries: several only for analyze */
    size_t ndumps;
    int json;
    struct frd_filter flt;
    struct frd_thresholds th;
    const char *format;
    const char *output;
    struct frd_report_limits lim;
    int raw_addresses; /* keep "@0x..." tokens in strings as recorded */
};

int frd_usage_error(const char *usage, const char *fmt, const char *arg)
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
            if (o->ndumps && o->cmd != C_ANALYZE)
                return frd_usage_error(usage, "unexpected argument '%s'", a);
            o->dumps[o->ndumps++] = a;
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
                    strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0 ||
                    strcmp(name, "--max-polls") == 0 || strcmp(name, "--max-tasks") == 0;
        if (takes && !val) {
            if (i + 1 >= argc)
                return frd_usage_error(usage, "option '%s' needs a value", name);
            val = argv[++i];
        }
        int ok = 0;
        uint64_t u = 0;
        int analyzes = o->cmd == C_ANALYZE || o->cmd == C_REPORT;
        if (strcmp(name, "--raw-addresses") == 0 && !val) {
            o->raw_addresses = 1;
            ok = 1;
        } else if (strcmp(name, "--json") == 0 && !val &&
                   (o->cmd == C_INFO || o->cmd == C_TASKS || o->cmd == C_ANALYZE ||
                    o->cmd == C_LOCKS)) {
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
        } else if (analyzes && strcmp(name, "--starvation-ms") == 0) {
            ok = parse_ms(val, &o->th.starvation_ns) == 0;
        } else if (analyzes && strcmp(name, "--long-poll-ms") == 0) {
            ok = parse_ms(val, &o->th.long_poll_ns) == 0;
        } else if (analyzes && strcmp(name, "--hang-ms") == 0) {
            ok = parse_ms(val, &o->th.hang_ns) == 0;
        } else if (o->cmd == C_EXPORT && strcmp(name, "--format") == 0) {
            ok = strcmp(val, "json") == 0 || strcmp(val, "csv") == 0 ||
                 strcmp(val, "chrome") == 0;
            o->format = val;
        } else if ((o->cmd == C_EXPORT || o->cmd == C_REPORT) &&
                   (strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0)) {
            ok = 1;
            o->output = val;
        } else if (o->cmd == C_REPORT && strcmp(name, "--max-polls") == 0) {
            ok = parse_u64(val, &u) == 0 && u > 0 && u <= 100000000;
            o->lim.max_polls = (size_t)u;
        } else if (o->cmd == C_REPORT && strcmp(name, "--max-tasks") == 0) {
            ok = parse_u64(val, &u) == 0 && u > 0 && u <= 100000000;
            o->lim.max_tasks = (size_t)u;
        } else {
            return frd_usage_error(usage, "unknown option '%s'", a);
        }
        if (!ok)
            return frd_usage_error(usage, "bad value '%s'", val ? val : "");
    }
    if (!o->ndumps)
        return frd_usage_error(usage, "%s", "missing DUMP argument");
    if (o->cmd == C_EXPORT && !o->format)
        return frd_usage_error(usage, "%s", "export needs --format chrome|json|csv");
    return 0;
}

/* One decoded dump: the reader's view of it, the model and the findings. */
struct decoded {
    struct frd_dump *d;
    struct frd_model m;
    struct frd_findings f;
    int have_model;
};

/*
 * decode - read @path, build its model and analyse it. On failure @err holds
 * a message naming the file (and the offset, for bad input). With @timeline
 * the merged timeline and the per-thread event arrays are kept too; without,
 * events are read once, straight from the ring pages (far less memory).
 * Return: 0, or 1 if nothing could be decoded.
 */
static int decode(struct decoded *x, const char *path, const struct opts *o, int timeline,
                  size_t index, char *err, size_t errlen)
{
    const struct frd_thresholds *th = &o->th;
    memset(x, 0, sizeof(*x));
    frd_progress_stage(index, path, "reading");
    if (frd_open_ex(path, timeline ? FRD_OPEN_EVENTS : 0, &x->d, err, errlen) < 0)
        return 1;
    /* once, before anything reads a name: every view shows symbols */
    if (!o->raw_addresses && frd_symbolize_strings(x->d, 0) < 0) {
        snprintf(err, errlen, "%s: out of memory symbolizing code addresses", path);
        return 1;
    }
    frd_progress_stage(index, path, "building the model");
    if (frd_model_build_ex(x->d, timeline ? FRD_MODEL_TIMELINE : 0, &x->m) < 0) {
        snprintf(err, errlen, "%s: out of memory building the model", path);
        return 1;
    }
    x->have_model = 1;
    frd_progress_stage(index, path, "analysing");
    if (frd_analyze(&x->m, th, &x->f) < 0) {
        snprintf(err, errlen, "%s: out of memory analysing", path);
        return 1;
    }
    return 0;
}

/* Damage is reported after the output, which shows everything that was whole. */
static void report_damage(const struct frd_dump *d)
{
    for (size_t i = 0; i < d->nerrors; i++)
        fprintf(stderr, "flightrec: %s\n", d->errors[i]);
    if (d->errors_all > d->nerrors)
        fprintf(stderr, "flightrec: ... and %zu more problems\n", d->errors_all - d->nerrors);
}

static void decoded_free(struct decoded *x)
{
    frd_findings_free(&x->f);
    if (x->have_model)
        frd_model_free(&x->m);
    frd_close(x->d);
    memset(x, 0, sizeof(*x));
}

/* Colour: only on a terminal, and never when NO_COLOR is set (no-color.org). */
static int use_color(FILE *out)
{
    const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
    return isatty(fileno(out)) && !(no && *no) && !(term && strcmp(term, "dumb") == 0);
}

struct paths {
    char **v;
    size_t n, cap;
};

static int paths_add(struct paths *p, const char *dir, const char *name)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        char **v = realloc(p->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        p->v = v;
        p->cap = cap;
    }
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    if (!(p->v[p->n] = malloc(len)))
        return -ENOMEM;
    if (dir)
        snprintf(p->v[p->n], len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    else
        snprintf(p->v[p->n], len, "%s", name);
    p->n++;
    return 0;
}

static void paths_free(struct paths *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
}

/* Final dump names: "*.frd", not the recorder's ".flightrec-*.tmp" temporaries. */
static int is_dump_name(const struct dirent *de)
{
    size_t len = strlen(de->d_name);
    return de->d_name[0] != '.' && len > 4 && strcmp(de->d_name + len - 4, ".frd") == 0;
}

/*
 * expand - the dumps named on the command line, each directory replaced by
 * the dumps in it in name order (which is time order for one process).
 * *@many is set when the result is to be read as a fleet (several dumps, or a
 * directory). Return: 0, or 1 with the reason on stderr.
 */
static int expand(const char **args, size_t n, struct paths *out, int *many)
{
    *many = n > 1;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(args[i], "-") == 0 || stat(args[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (paths_add(out, NULL, args[i]) < 0)
                goto nomem;
            continue;
        }
        *many = 1;
        struct dirent **names;
        int k = scandir(args[i], &names, is_dump_name, alphasort);
        if (k < 0) {
            fprintf(stderr, "flightrec: %s: %s\n", args[i], strerror(errno));
            return 1;
        }
        if (k == 0)
            fprintf(stderr, "flightrec: %s: no dumps (*.frd) in this directory\n", args[i]);
        int r = 0;
        for (int j = 0; j < k; j++) {
            if (r == 0)
                r = paths_add(out, args[i], names[j]->d_name);
            free(names[j]);
        }
        free(names);
        if (r < 0)
            goto nomem;
        if (k == 0)
            return 1;
    }
    return 0;
nomem:
    fprintf(stderr, "flightrec: out of memory\n");
    return 1;
}

/* analyze over many dumps: each one's findings, then the grouped summary. */
static int analyze_many(const struct opts *o, const struct paths *p, FILE *out)
{
    struct frd_summary sum = {0};
    int status = 0, color = use_color(out);
    if (o->json)
        fputs("{\"dumps\": [", out);
    for (size_t i = 0; i < p->n; i++) {
        const char *path = p->v[i];
        struct decoded x;
        char err[512];
        int bad = decode(&x, path, o, 0, i, err, sizeof(err));
        frd_progress_hold();
        sum.ndumps++;
        if (o->json) {
            fputs(i ? ",\n{\"file\": " : "\n{\"file\": ", out);
            frd_json_cstr(out, path);
        } else {
            fprintf(out, "%s== %s ==\n", i ? "\n" : "", path);
        }
        if (bad || !x.d) {
            sum.nfailed++;
            status = 1;
            fprintf(stderr, "flightrec: %s\n", err);
            if (o->json) {
                fputs(", \"error\": ", out);
                frd_json_cstr(out, err);
                fputs("}", out);
            } else {
                fprintf(out, "unreadable: %s\n", err);
            }
        } else {
            struct frd_view v = {.d = x.d, .m = &x.m, .f = &x.f, .th = &o->th, .color = color};
            if (o->json) {
                fprintf(out, ", \"damaged\": %s, \"analysis\": ", x.d->damaged ? "true" : "false");
                frd_json_findings(out, &v);
                fputs("}", out);
            } else {
                frd_text_findings(out, &v);
            }
            if (x.d->damaged) {
                sum.ndamaged++;
                status = 1;
                fflush(out);
                report_damage(x.d);
            }
            if (frd_summary_add(&sum, i, path, &x.m, &x.f) < 0) {
                fprintf(stderr, "flightrec: out of memory\n");
                status = 1;
            }
        }
        fflush(out);
        frd_progress_release();
        decoded_free(&x);
    }
    frd_progress_stop();
    frd_summary_sort(&sum);
    if (o->json) {
        fputs("],\n\"summary\": ", out);
        frd_summary_json(out, &sum);
        fputs("}\n", out);
    } else {
        putc('\n', out);
        frd_summary_text(out, &sum);
    }
    frd_summary_free(&sum);
    if (fflush(out) != 0) {
        fprintf(stderr, "flightrec: writing output: %s\n", strerror(errno));
        status = 1;
    }
    return status;
}

/* Every command on one dump. */
static int run_one(const struct opts *o, const char *path)
{
    struct decoded x;
    char err[512];
    /* only the timeline and the event exports walk every event after the
     * model is built; the rest read events once, straight from the pages */
    int timeline = o->cmd == C_TIMELINE || (o->cmd == C_EXPORT && strcmp(o->format, "chrome") != 0);
    if (decode(&x, path, o, timeline, 0, err, sizeof(err))) {
        frd_progress_stop();
        fprintf(stderr, "flightrec: %s\n", err);
        decoded_free(&x);
        return 1;
    }
    frd_progress_stage(0, path, "writing");
    struct frd_dump *d = x.d;
    struct frd_view v = {.d = d, .m = &x.m, .f = &x.f, .th = &o->th};
    struct frd_frame *frames = NULL;
    if ((o->cmd == C_INFO || o->cmd == C_REPORT) && d->crash.present && d->crash.nframes) {
        frames = calloc(d->crash.nframes, sizeof(*frames));
        if (frames && frd_symbolize(d, d->crash.frames, d->crash.nframes, frames) == 0) {
            v.frames = frames;
            v.nframes = d->crash.nframes;
        }
    }
    frd_progress_stop();

    int r = 0;
    /* report: beside the dump by default, named after it */
    const char *output = o->output;
    char *report_path = NULL;
    if (o->cmd == C_REPORT && !output && strcmp(path, "-") != 0) {
        size_t n = strlen(path);
        if (n > 4 && strcmp(path + n - 4, ".frd") == 0)
            n -= 4;
        report_path = malloc(n + 6);
        if (report_path) {
            memcpy(report_path, path, n);
            memcpy(report_path + n, ".html", 6);
        }
        output = report_path;
    }
    FILE *out = stdout;
    if (output && strcmp(output, "-") != 0) {
        out = fopen(output, "w");
        if (!out) {
            fprintf(stderr, "flightrec: %s: %s\n", output, strerror(errno));
            r = -errno;
            goto done;
        }
    }
    v.color = !o->json && o->cmd != C_EXPORT && o->cmd != C_REPORT && use_color(out);
    switch (o->cmd) {
    case C_INFO: r = o->json ? frd_json_info(out, &v) : frd_text_info(out, &v); break;
    case C_TASKS: r = o->json ? frd_json_tasks(out, &v) : frd_text_tasks(out, &v); break;
    case C_TIMELINE: r = frd_text_timeline(out, &v, &o->flt); break;
    case C_ANALYZE: r = o->json ? frd_json_findings(out, &v) : frd_text_findings(out, &v); break;
    case C_EXPORT:
        r = strcmp(o->format, "csv") == 0      ? frd_csv_export(out, &v)
            : strcmp(o->format, "chrome") == 0 ? frd_chrome_export(out, &v)
                                               : frd_json_export(out, &v);
        break;
    case C_REPORT: r = frd_html_report(out, &v, &o->lim); break;
    case C_LOCKS: r = o->json ? frd_json_locks(out, &v) : frd_text_locks(out, &v); break;
    }
    if (fflush(out) != 0 && r == 0)
        r = -EIO;
    if (out != stdout && fclose(out) != 0 && r == 0)
        r = -EIO;
    if (r == -ENOENT)
        fprintf(stderr, "flightrec: %s: no such %s in the dump\n", path,
                o->flt.by_thread ? "thread" : "task");
    else if (r < 0)
        fprintf(stderr, "flightrec: writing output: %s\n", strerror(-r));
    else if (o->cmd == C_REPORT && out != stdout)
        fprintf(stderr, "flightrec: wrote %s\n", output);
done:
    report_damage(d);
    int status = d->damaged ? 1 : r == -ENOENT ? 2 : r < 0 ? 1 : 0;
    free(frames);
    free(report_path);
    decoded_free(&x);
    return status;
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
        return frd_usage_error(usage_main, "%s", "missing command");
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(c, "--version") == 0) {
        printf("flightrec %s (dump format %u)\n", FRD_VERSION, FR_FORMAT_VERSION);
        return 0;
    }
    if (strcmp(c, "dump") == 0)
        return frd_cmd_dump(argc - 2, argv + 2);
    if (strcmp(c, "run") == 0)
        return frd_cmd_run(argc - 2, argv + 2);
    if (strcmp(c, "recover") == 0)
        return frd_cmd_recover(argc - 2, argv + 2);
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.th.starvation_ns = FRD_DEFAULT_STARVATION_NS;
    o.th.long_poll_ns = FRD_DEFAULT_LONG_POLL_NS;
    o.th.hang_ns = FRD_DEFAULT_HANG_NS;
    o.lim.max_polls = FRD_REPORT_MAX_POLLS;
    o.lim.max_tasks = FRD_REPORT_MAX_TASKS;
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
    } else if (strcmp(c, "report") == 0) {
        o.cmd = C_REPORT;
        usage = usage_report;
    } else if (strcmp(c, "locks") == 0) {
        o.cmd = C_LOCKS;
        usage = usage_locks;
    } else {
        return frd_usage_error(usage_main, "unknown command '%s'", c);
    }
    const char **dumps = calloc((size_t)argc, sizeof(*dumps));
    if (!dumps) {
        fputs("flightrec: out of memory\n", stderr);
        return 1;
    }
    o.dumps = dumps;
    int r = parse(argc - 2, argv + 2, &o, usage);
    if (r) {
        free(dumps);
        return r == 3 ? 0 : r;
    }

    struct paths p = {0};
    int many = 0;
    int status = expand(o.dumps, o.ndumps, &p, &many);
    if (status == 0 && o.cmd != C_ANALYZE && many)
        status = frd_usage_error(usage, "%s", "this command reads one dump, not a directory");
    if (status == 0) {
        frd_progress_start(p.n);
        status = many ? analyze_many(&o, &p, stdout) : run_one(&o, p.v[0]);
        frd_progress_stop();
    }
    paths_free(&p);
    free(dumps);
    return status;
}
