#!/usr/bin/env python3
"""planted_bugs.py - each bug flightrec-demo can plant is found, and a clean run is clean.

    planted_bugs.py CASE FLIGHTREC_DEMO FLIGHTREC

CASE is one of: clean, lost_wakeup, blocking, hang, deadlock, crash. The script runs the
demo workload (tools/runtime/workload.c) with that one bug planted, into a
fresh dump directory, then reads the dump with `flightrec analyze --json` (and
`flightrec info --json` for the crash) and checks that the decoder names the
right kind of finding on the right task, and nothing it should not. Output is
TAP. It is Python rather than shell because it reads the CLI's JSON.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402  (tests/tap.py)

# args: flags for flightrec-demo; exit: expected status (negative: killed by
# that signal); expect: (kind, task name) findings that must be present;
# allowed: predicate every finding must satisfy (no false positives).
CASES = {
    "clean": dict(
        args=["--duration-ms", "1500"],
        exit=0,
        expect=[],
        allowed=lambda f: False,
    ),
    "lost_wakeup": dict(
        args=["--bug-lost-wakeup", "--duration-ms", "1500"],
        exit=0,
        expect=[("lost_wakeup", "cache_refresh")],
        # The unwakeable task may also be reported as hung; nothing else may.
        allowed=lambda f: f.get("name") == "cache_refresh" and f["kind"] in ("lost_wakeup", "hung"),
    ),
    "blocking": dict(
        args=["--bug-blocking", "--duration-ms", "1500"],
        exit=0,
        # report_render spawns its chunks onto its worker's queue, then blocks
        # that worker for 200 ms: the chunks (and anything else queued there) starve.
        expect=[("long_poll", "report_render"), ("starvation", "report_chunk")],
        allowed=lambda f: (f["kind"] == "long_poll" and f.get("name") == "report_render")
        or f["kind"] == "starvation",
    ),
    "hang": dict(
        # db_migrate starts waiting at 0.1 s: hung for ~1.9 s at the end (threshold 1 s).
        args=["--bug-hang", "--duration-ms", "2000"],
        exit=0,
        expect=[("hung", "db_migrate")],
        allowed=lambda f: f.get("name") == "db_migrate" and f["kind"] == "hung",
    ),
    "deadlock": dict(
        # transfer_out and transfer_in lock each other out at ~0.3 s: the cycle
        # has waited ~1.7 s at the end (threshold 1 s).
        args=["--bug-deadlock", "--duration-ms", "2000"],
        exit=0,
        expect=[("deadlock", "transfer_out")],
        allowed=lambda f: f["kind"] == "deadlock",
    ),
    "crash": dict(
        args=["--bug-crash", "--duration-ms", "3000", "--crash-after-ms", "800"],
        exit=-11,
        expect=[],
        allowed=lambda f: f.get("name") == "parse_header",
    ),
}


TIMING_KINDS = ("long_poll", "starvation", "delayed_wakeup")
PLANTED_NS = 200_000_000  # the shortest planted bug: report_render blocks 200 ms


def sanitized(program):
    """Is @program built with a sanitizer (does it link libasan or libtsan)?"""
    out = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
    return "libasan.so" in out or "libtsan.so" in out


def cli_json(flightrec, *args):
    r = subprocess.run([flightrec, *args, "--json"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"flightrec {' '.join(args)} --json: exit {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


def describe(findings):
    return "\n".join(
        f"{f['kind']} task {f.get('task')} ({f.get('name')}): {f.get('message', '')}" for f in findings
    ) or "(no findings)"


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in CASES:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    case, demo, flightrec = sys.argv[1], sys.argv[2], sys.argv[3]
    spec = CASES[case]
    tap = Tap()
    extra = {"crash": 3, "deadlock": 2, "clean": 1}.get(case, 0)
    print("1..%d" % (4 + len(spec["expect"]) + extra))

    with tempfile.TemporaryDirectory(prefix="flightrec-demo-test-") as d:
        cmd = [demo, *spec["args"], "--dump-dir", d]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        tap.check(r.returncode == spec["exit"],
                  f"flightrec-demo {' '.join(spec['args'])} exits with {spec['exit']}",
                  f"got {r.returncode}\n{r.stderr}")
        dumps = sorted(glob.glob(os.path.join(d, "*.frd")))
        if not tap.check(len(dumps) == 1, "it writes exactly one dump", f"found {dumps}\n{r.stderr}"):
            tap.bail("no dump to analyze")
        dump = dumps[0]

        try:
            # 50 ms thresholds, not the default 10: a 2-vCPU machine running
            # two test suites at once can hold a thread off its CPU for 10-20
            # ms, which is a real long poll but not the demo's planted bug
            # (those are 200 ms and more).
            report = cli_json(flightrec, "analyze", dump, "--starvation-ms", "50",
                              "--long-poll-ms", "50")
        except (RuntimeError, ValueError) as e:
            tap.bail(str(e))
        findings = report.get("findings", [])
        tap.check(report.get("tasks", 0) > 0 and report.get("events", 0) > 0,
                  "analyze sees tasks and events", json.dumps(report)[:2000])

        for kind, name in spec["expect"]:
            tap.check(any(f["kind"] == kind and f.get("name") == name for f in findings),
                      f"analyze finds {kind} on {name}", describe(findings))
        unexpected = [f for f in findings if not spec["allowed"](f)]
        # In a sanitizer build (tools/sanitize: every allocation goes through
        # the sanitizer's allocator, the demo runs 2-3 times slower, and the
        # machine runs two suites at once) a worker held off its CPU mid-poll
        # for 60-140 ms was seen: a real long poll, made by the machine. Such
        # timing findings, shorter than the planted 200 ms, are listed there,
        # not failed; every other kind still fails, and the normal build
        # allows none.
        if sanitized(demo):
            timing = [f for f in unexpected if f["kind"] in TIMING_KINDS
                      and f.get("duration_ns", 0) < PLANTED_NS]
            for f in timing:
                print(f"# a sanitizer build, timing: {f['kind']} {f.get('name')} "
                      f"{f.get('duration_ns', 0) / 1e6:.1f} ms")
            unexpected = [f for f in unexpected if f not in timing]
        tap.check(not unexpected,
                  "no other findings" if spec["expect"] or case == "crash" else "no findings at all",
                  describe(unexpected))

        if case == "deadlock":
            dl = [f for f in findings if f["kind"] == "deadlock"]
            cycle = dl[0].get("cycle", []) if dl else []
            got = sorted((c.get("name"), c.get("lock_name")) for c in cycle)
            tap.check(got == [("transfer_in", "accounts"), ("transfer_out", "ledger")],
                      "the cycle: transfer_out waits for ledger, transfer_in for accounts",
                      json.dumps(dl, indent=1)[:3000])
            locks = {k["name"]: k for k in cli_json(flightrec, "locks", dump)["locks"]}
            ids = {c.get("task"): c.get("name") for c in cycle}
            tap.check(all(n in locks and ids.get(locks[n]["holder"]) and locks[n]["waiting"] == 1
                          for n in ("accounts", "ledger")),
                      "locks: accounts and ledger each held by one transfer, one waiting",
                      json.dumps(locks, indent=1)[:3000])
        if case == "clean":
            locks = {k["name"]: k for k in cli_json(flightrec, "locks", dump)["locks"]}
            tap.check(all(n in locks and locks[n]["acquisitions"] == 2 and locks[n]["holder"] is None
                          and locks[n]["waiting"] == 0 for n in ("accounts", "ledger"))
                      and locks.get("conn_pool", {}).get("acquisitions", 0) > 0,
                      "locks: both transfers took accounts and ledger and let them go",
                      json.dumps(locks, indent=1)[:3000])

        if case == "crash":
            info = cli_json(flightrec, "info", dump)
            tap.check(info.get("signal") == 11, "info names the crash signal (SIGSEGV)",
                      json.dumps(info)[:2000])
            task = info.get("crash_task") or {}
            tap.check(task.get("name") == "parse_header", "info names the crashing task (parse_header)",
                      json.dumps(info.get("crash_task")))
            frames = info.get("backtrace") or []
            tap.check(any("parse_header_poll" in (fr.get("function") or "") for fr in frames),
                      "the backtrace names the crashing function (parse_header_poll)",
                      json.dumps(frames, indent=1)[:3000])
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
