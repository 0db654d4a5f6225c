#!/usr/bin/env python3
"""chrome_trace.py - `flightrec export --format chrome`, read back by Chrome DevTools' own trace parser.

    chrome_trace.py FLIGHTREC_DEMO FLIGHTREC TRACE_ENGINE_DIR

Records a real dump (flightrec-demo with a lost wakeup, a blocking poll, a hang
and a crash planted), exports it, and has TRACE_ENGINE_DIR/summarize.mjs parse
the trace with @paulirish/trace_engine (the Performance panel's parser,
installed there by tools/bootstrap). Then checks what the engine made of it
against what `flightrec info/tasks/analyze --json` say about the same dump:
no errors or warnings, the processes and threads named, one slice per poll on
the worker tracks and on the task tracks, every wake flow bound from a wake
slice to a poll of the woken task, one instant per finding, the crash.

Outside tools/test (no FLIGHTREC_TOOLS_TEST=1 in the environment) it skips,
saying why, when node or the engine is missing; under tools/test it fails.
Output is TAP.
"""
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402  (tests/tap.py)


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    demo, flightrec, engine_dir = sys.argv[1:4]
    strict = os.environ.get("FLIGHTREC_TOOLS_TEST") == "1"
    node = shutil.which("node") or shutil.which("nodejs")
    engine_pkg = os.path.join(engine_dir, "node_modules", "@paulirish", "trace_engine", "package.json")
    missing = None
    if not node:
        missing = "node is not installed"
    elif not os.path.exists(engine_pkg):
        missing = f"the trace engine is not installed in {engine_dir}/node_modules"
    if missing:
        if not strict:
            print(f"1..0 # SKIP {missing} (tools/bootstrap installs it)")
            return 0
        Tap().bail(f"{missing}: tools/bootstrap should have installed it")

    t = Tap()
    with tempfile.TemporaryDirectory(prefix="frchrome-", dir=os.environ.get("TMPDIR")) as tmp:
        # Under tools/sanitize, UBSan would stop the demo at the planted NULL
        # dereference before it faults; let it report and go on to the crash.
        env = dict(os.environ)
        if "UBSAN_OPTIONS" in env:
            env["UBSAN_OPTIONS"] += ":halt_on_error=0"
        r = subprocess.run([demo, "--bug-lost-wakeup", "--bug-blocking", "--bug-hang", "--bug-crash",
                            "--duration-ms", "2000", "--crash-after-ms", "1300",
                            "--dump-dir", tmp], capture_output=True, text=True, env=env)
        dumps = glob.glob(os.path.join(tmp, "*.frd"))
        if not t.check(r.returncode == -11 and len(dumps) == 1,
                       "flightrec-demo crashed with SIGSEGV and wrote one dump",
                       f"exit {r.returncode}, dumps {dumps}\n{r.stderr}"):
            t.bail("no dump to export")
        dump = dumps[0]
        trace_path = os.path.join(tmp, "trace.json")
        r = subprocess.run([flightrec, "export", dump, "--format", "chrome", "-o", trace_path],
                           capture_output=True, text=True)
        if not t.check(r.returncode == 0, "flightrec export --format chrome exits 0", r.stderr):
            t.bail("no trace")
        info = run_json([flightrec, "info", dump, "--json"])
        tasks = run_json([flightrec, "tasks", dump, "--json"])["tasks"]
        findings = run_json([flightrec, "analyze", dump, "--json"])["findings"]
        with open(trace_path, encoding="utf-8") as f:
            trace = json.load(f)
        events = trace["traceEvents"]
        meta = trace.get("metadata", {})
        t.check(trace.get("displayTimeUnit") == "ns" and meta.get("pid") == info["pid"]
                and meta.get("reason") == info["reason"] and meta.get("exe") == info["executable"],
                "JSON Object Format with displayTimeUnit ns and the dump's pid, reason, exe",
                json.dumps(meta))
        t.check(all(isinstance(e.get("ts", 0), (int, float)) and e.get("ts", 0) >= 0 for e in events),
                "every timestamp is a number relative to the recording start")

        r = subprocess.run([node, os.path.join(engine_dir, "summarize.mjs"), trace_path],
                           capture_output=True, text=True)
        if not t.check(r.returncode == 0, "Chrome DevTools' trace engine parses the trace without error",
                       r.stderr[-3000:]):
            t.bail("the engine failed")
        s = json.loads(r.stdout)
        print(f"# node {s['node']}, @paulirish/trace_engine {s['engine']}")
        t.check(s["warnings"] == [], "the engine reports no warnings", s["warnings"])
        t.check(s["processes"] == {"1": "workers", "2": "tasks"},
                "processes named workers (pid 1) and tasks (pid 2)", s["processes"])

        workers = {th["name"]: th for th in s["threads"] if th["pid"] == 1}
        tids = {th["name"]: th["tid"] for th in info["threads"]}
        want = ["worker-0", "worker-1", "timer"]
        t.check(all(n in workers and workers[n]["tid"] == tids.get(n) for n in want),
                "worker tracks named after their threads, with their tids: " + ", ".join(want),
                f"engine: {sorted(workers)}; dump: {tids}")

        task_tracks = {th["name"]: th for th in s["threads"] if th["pid"] == 2}
        ids = [x["id"] for x in tasks]

        def track(x):
            # a task whose name left the ring with its spawn (null in tasks --json) is "task"
            return f"{x['name'] or 'task'} #{x['id']}"

        want_names = {track(x) for x in tasks}
        t.check(len(set(ids)) == len(ids) and set(task_tracks) == want_names,
                f"a track per task instance ({len(tasks)}), named NAME #ID",
                f"missing {sorted(want_names - set(task_tracks))[:5]}, "
                f"extra {sorted(set(task_tracks) - want_names)[:5]}")

        npolls = sum(x["polls"] for x in tasks)
        worker_polls = sum(th["polls"] for th in s["threads"] if th["pid"] == 1)
        t.check(npolls > 0 and worker_polls == npolls,
                f"one slice per poll on the worker tracks ({npolls} polls)",
                f"engine {worker_polls}, tasks --json {npolls}")
        per_task = {th["name"]: th["polls"] for th in task_tracks.values()}
        bad = [x for x in tasks if per_task.get(track(x)) != x["polls"]]
        t.check(not bad, "each task track carries exactly that task's polls",
                "\n".join(f"{track(x)}: {x['polls']} polls, track has {per_task.get(track(x))}"
                          for x in bad[:5]))
        awaits = sum(th["byCat"].get("X:await", 0) for th in task_tracks.values())
        t.check(awaits > 0, f"await spans on the task tracks ({awaits})")

        nflows = sum(1 for e in events if e["ph"] == "s" and e["name"] == "wake")
        nhand = sum(1 for e in events if e["ph"] == "s" and e["name"] == "lock handover")
        nwakes = sum(x["wakes"] for x in tasks)
        t.check(0 < nflows <= nwakes and len(s["flows"]) == nflows + nhand,
                f"the engine binds every wake flow ({nflows} flows, {nwakes} wakes) "
                f"and lock hand-over ({nhand})",
                f"bound {len(s['flows'])}, s events {nflows} + {nhand}, wakes {nwakes}")
        wake_flows = [f for f in s["flows"] if f and f[0]["name"].startswith("wake ")]
        bad = [f for f in wake_flows
               if len(f) != 2 or f[1]["result"] is None
               or f[0]["name"] != "wake " + f[1]["name"] or f[0]["ts"] > f[1]["ts"]
               or f[0]["pid"] != 1 or f[1]["pid"] != 1]
        t.check(len(wake_flows) == nflows and not bad,
                "each wake flow runs from a wake slice to a later poll of the woken task",
                json.dumps(bad[:3]))
        # hand-overs: from the releasing holder's poll to a later poll of the
        # next holder, never more than the contended acquisitions
        locks = run_json([flightrec, "locks", dump, "--json"])["locks"]
        hand = [f for f in s["flows"] if f and not f[0]["name"].startswith("wake ")]
        bad = [f for f in hand
               if len(f) != 2 or f[0]["result"] is None or f[1]["result"] is None
               or f[0]["ts"] > f[1]["ts"] or f[0]["pid"] != 1 or f[1]["pid"] != 1]
        t.check(len(hand) == nhand and nhand <= sum(k["contended"] for k in locks) and not bad,
                f"each lock hand-over flow runs from a poll to a later poll ({nhand})",
                json.dumps(bad[:3]))

        inst = [e for e in events if e["ph"] == "i" and e.get("cat") == "finding"]
        t.check(len(findings) > 0 and
                collections.Counter(e["args"]["kind"] for e in inst) ==
                collections.Counter(x["kind"] for x in findings)
                and all(e.get("s") in ("g", "p") and e["args"]["message"] for e in inst),
                f"one instant per finding, with its kind and message ({len(findings)})",
                f"instants {[e['args']['kind'] for e in inst]}, findings {[x['kind'] for x in findings]}")

        crash = [e for e in events if e["ph"] == "i" and e.get("cat") == "crash"]
        ct = info.get("crash_task") or {}
        t.check(len(crash) == 1 and crash[0]["args"]["signal"] == info["signal"] == 11
                and crash[0]["args"]["thread"] == info["crash_thread"]
                and crash[0]["args"]["task"] == ct.get("id")
                and crash[0]["args"]["task_name"] == ct.get("name") == "parse_header",
                "the crash is an instant with its signal, thread and task",
                json.dumps(crash))
    print(f"1..{t.n}")
    return 1 if t.failed else 0


sys.exit(main())
