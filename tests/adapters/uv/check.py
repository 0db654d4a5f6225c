#!/usr/bin/env python3
"""check.py - the libuv adapter on small real libuv programs (uvprog.c).

    check.py CASE UVPROG ADAPTER FLIGHTREC

Runs `flightrec run -- UVPROG CASE` (which preloads ADAPTER,
libflightrec-uv.so, from its directory), takes a dump with `flightrec dump
PID` once it printed "ready", stops it with SIGTERM (or lets it crash), and
reads the dump with the FLIGHTREC CLI's --json views:

  block         a timer callback blocks the loop 300 ms: long_poll on its task,
                starvation of the timer due in the same pass, blamed on it
  pool-stuck    a uv_queue_work item blocks on a lock: its work callback is a
                poll still running on a pool thread ("uv-pool"), for how long
  rearm-forgot  a read callback stops reading and never resumes: no finding;
                the read task is idle, stopped, after one poll
  crash         a timer callback dies: the crash names the timer's task
  churn         50 000 timers (malloc'd, closed, freed) and 5 000 work
                requests come and go: every callback the program gave runs,
                with the data it stored; no protocol, lost_wakeup or hung finding
  tcp           an echo server and its client on one loop: listen, connect,
                read, write and shutdown are tasks named after their callbacks,
                reads are woken by the poller's ready descriptors; zero findings
  *-clean       the same program without the bug: zero findings

Task names carry "@0x<callback>" (the decoder may print the function's name
instead); the program prints each callback's address so either form matches.
Output is TAP.
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", ".."), os.path.join(HERE, "..", "..", "..", "tools")]
from tap import Tap  # noqa: E402  (tests/tap.py)
from realservers import flightrec_run_env  # noqa: E402

THRESHOLDS = ["--long-poll-ms", "100", "--starvation-ms", "100"]


def run_env(adapter, d):
    """The environment for `flightrec run` with @adapter's directory. In a
    sanitizer build (tools/sanitize) the adapter links the sanitizer's
    runtime, which must be loaded before libc: it goes in LD_PRELOAD, after
    the adapter that `flightrec run` puts first."""
    env = flightrec_run_env(adapter)
    env.pop("FLIGHTREC_DIR", None)
    return env


def run_cli(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=200)
    if p.returncode != 0:
        raise RuntimeError(f"flightrec {' '.join(args)}: exit {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def named(task_name, cb, addrs):
    """Does a task name carry callback @cb (by symbol or by address)?"""
    if not task_name:
        return False
    return (re.search(r"(^|\s)" + re.escape(cb) + r"(\s|\(|\+|$)", task_name) is not None
            or f"@0x{addrs[cb]:x}" in task_name)


def main():
    case, prog, adapter, cli = sys.argv[1:5]
    t = Tap()
    d = tempfile.mkdtemp(prefix="uvadapter-")
    p = subprocess.Popen([cli, "run", "--dir", d, "--", prog, case], stdout=subprocess.PIPE,
                         text=True, env=run_env(adapter, d))
    addrs = {}
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line or line.strip() == "ready":
            break
        if line.startswith("cb "):
            _, name, addr = line.split()
            addrs[name] = int(addr, 16)
    if not t.check(line.strip() == "ready", f"{case}: the program reached its point", line):
        p.kill()
        t.bail("no ready line")

    crash = case == "crash"
    if crash:
        rc = p.wait(timeout=20)
        t.check(rc == -signal.SIGSEGV, f"{case}: died of SIGSEGV", rc)
    else:
        time.sleep(0.2)
        dumped = subprocess.run([cli, "dump", str(p.pid), "--dir", d], capture_output=True,
                                text=True, timeout=30)
        t.check(dumped.returncode == 0 and dumped.stdout.strip().endswith(".frd"),
                f"{case}: flightrec dump PID took a dump", dumped.stderr)
        p.send_signal(signal.SIGTERM)
        rest, _ = p.communicate(timeout=60)
        rc = p.returncode
        t.check(rc == 0, f"{case}: the program stopped cleanly on SIGTERM", rc)
    frd = sorted(glob.glob(os.path.join(d, "*.frd")))
    if not t.check(len(frd) == 1, f"{case}: one dump written", frd):
        t.bail("no dump")
    dump = frd[0]
    # a work item stuck in the pool is a finding once it ran past --hang-ms
    stuck = ["--hang-ms", "250"] if case == "pool-stuck" else []
    an = run_cli(cli, "analyze", dump, "--json", *THRESHOLDS, *stuck)
    tasks = run_cli(cli, "tasks", dump, "--json")["tasks"]
    info = run_cli(cli, "info", dump, "--json")
    findings = an["findings"]

    def task_of(cb):
        return [x for x in tasks if named(x["name"], cb, addrs)]

    # (a task spawned before the rings' window has no name in the dump)
    unnamed = [x for x in tasks if x["spawned_ns"] is not None
               and not (x["name"] and x["name"].startswith("uv "))]
    t.check(unnamed == [] and any(x["name"] for x in tasks),
            f"{case}: every task is a libuv handle or request, named after it", unnamed[:10])

    if case.endswith("-clean") or case in ("rearm-forgot", "tcp"):
        t.check(findings == [], f"{case}: zero findings", json.dumps(findings[:5], indent=1))

    if case == "block":
        slow, tick = task_of("slow_cb"), task_of("tick_cb")
        t.check(len(slow) == 1 and len(tick) == 1, "block: one task per timer", tasks)
        lp = [f for f in findings if f["kind"] == "long_poll"]
        t.check(len(lp) == 1 and named(lp[0]["name"], "slow_cb", addrs)
                and lp[0]["duration_ns"] >= 250e6,
                "block: long_poll names the blocking callback, ~300 ms", findings)
        st = [f for f in findings if f["kind"] == "starvation"]
        t.check(len(st) == 1 and named(st[0]["name"], "tick_cb", addrs),
                "block: starvation of the timer due behind it", findings)
        if st and slow:
            c = st[0].get("culprit") or {}
            t.check(c.get("task") == slow[0]["id"],
                    "block: the starvation blames the blocking timer's task", st[0])
        t.check(all(f["kind"] in ("long_poll", "starvation") for f in findings),
                "block: nothing else found", findings)

    if case.startswith("block"):
        # each timer's callback follows its wake, the first timer due in a
        # pass (libuv takes it off the heap before calling it) included
        timers = [x for x in tasks if x["name"] and x["name"].startswith("uv timer")
                  and x["polls"] > 0]
        t.check(len(timers) >= 3 and all(x["wakes"] >= x["polls"] for x in timers),
                f"{case}: every timer callback was woken when it fell due",
                [(x["name"], x["polls"], x["wakes"]) for x in timers])

    if case == "pool-stuck":
        w = task_of("stuck_work_cb")
        t.check(len(w) == 1 and w[0]["state"] == "running" and w[0]["busy_ns"] >= 300e6,
                "pool-stuck: the work callback is still running, for over 300 ms", w)
        lp = [f for f in findings if f["kind"] == "long_poll"]
        t.check(len(lp) == 1 and named(lp[0]["name"], "stuck_work_cb", addrs),
                "pool-stuck: long_poll names the work callback", findings)
        pool = [th["tid"] for th in info.get("threads", []) if th.get("name") == "uv-pool"]
        t.check(lp and lp[0]["thread"] in pool and lp[0]["thread"] != info.get("pid"),
                "pool-stuck: it runs on a pool thread named uv-pool", [lp, info.get("threads")])
        t.check(all(f["kind"] == "long_poll" for f in findings),
                "pool-stuck: nothing else found", findings)

    if case == "pool-clean":
        w = task_of("stuck_work_cb")
        t.check(len(w) == 1 and w[0]["state"] == "dropped" and w[0]["polls"] == 2,
                "pool-clean: work callback and after-work callback, then dropped", w)

    if case.startswith("rearm"):
        r = task_of("on_read")
        t.check(len(r) == 1, f"{case}: one task for the read handle", tasks)
        if r and case == "rearm-forgot":
            t.check(r[0]["state"] == "idle" and r[0]["wait"] == "stopped" and r[0]["polls"] == 1,
                    "rearm-forgot: the read task is idle, stopped, after its one poll", r)
        if r and case == "rearm-clean":
            t.check(r[0]["wait"] == "external" and r[0]["polls"] >= 6,
                    "rearm-clean: read again each time, waiting on the peer", r)

    if case == "tcp":
        final = [ln.split() for ln in rest.splitlines() if ln.startswith("tcp ")]
        t.check(final and final[0][1:] == ["echoed", "200", "bad", "0"],
                "tcp: every ping echoed, every write completed", rest)
        kinds = {"server_read": "uv tcp read", "client_read": "uv tcp read",
                 "on_connection": "uv tcp listen", "echo_written": "uv tcp write",
                 "on_connect": "uv tcp connect", "client_shut": "uv shutdown"}
        for cb, what in kinds.items():
            x = task_of(cb)
            t.check(x and all(y["name"].startswith(what) for y in x),
                    f"tcp: {cb} runs in a '{what}' task", x[:3])
        reads = task_of("server_read") + task_of("client_read")
        t.check(len(reads) == 2 and all(x["wakes"] >= 10 and x["polls"] >= 50 for x in reads),
                "tcp: each read handle is woken by readiness and polled per read", reads)
        writes = task_of("echo_written")
        t.check(len(writes) >= 90 and all(x["state"] == "dropped" and x["polls"] == 1
                                          for x in writes),
                "tcp: each write is a task, polled once and dropped", len(writes))

    if case == "churn":
        # timing findings depend on the machine (a sanitizer build, a busy box);
        # these would be the adapter's own mistakes
        bad = [f for f in findings if f["kind"] in ("protocol", "lost_wakeup", "hung")]
        t.check(bad == [], "churn: no protocol, lost_wakeup or hung finding",
                json.dumps(bad[:5], indent=1))
        final = [ln.split() for ln in rest.splitlines() if ln.startswith("churn ")]
        t.check(final and final[0][1:] == ["fired", "50000", "closed", "50000", "worked",
                                            "5000", "bad", "0"],
                "churn: every timer fired and closed, every work item done, all data intact",
                rest)

    if case == "crash":
        ct = info.get("crash_task")
        c = task_of("crash_cb")
        t.check(ct is not None and len(c) == 1 and ct["id"] == c[0]["id"]
                and named(ct.get("name"), "crash_cb", addrs),
                "crash: the crashing task is the timer's, named after its callback", [ct, c])

    print(f"1..{t.n}")
    sys.exit(1 if t.failed else 0)


if __name__ == "__main__":
    main()
