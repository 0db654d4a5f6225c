#!/usr/bin/env python3
"""named.py - BIND 9's named (libuv through libisc) recorded under dnsperf.

    named.py ADAPTER FLIGHTREC

Starts Debian's /usr/sbin/named in the foreground under `flightrec run`
(which preloads ADAPTER, libflightrec-uv.so, from its directory), serving a small authoritative zone on 127.0.0.1 on a
free high port (no recursion, -n 2), from a config in a temporary directory.
dnsperf (16 sockets, so the kernel spreads them over named's loops) loads it for 4 s; 2 s in, the test takes a dump with `flightrec dump PID`;
named is then stopped with SIGTERM. The dump, read with the FLIGHTREC CLI
(--json and the CSV export), must show: zero findings on the healthy server,
named's network threads running the tasks (each thread that answered has
polls), UDP receive handles polled and each reply a "uv udp send" task polled
once and dropped (or, when not yet polled at the copy, sent in its loop's
last turn), busy time that fits in each thread's window; and named must
exit 0. Skips when named or dnsperf is missing, except under tools/test
(FLIGHTREC_TOOLS_TEST set), where bootstrap installed them. Output is TAP.
"""
import collections
import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", ".."), os.path.join(HERE, "..", "..", "..", "tools")]
from tap import Tap  # noqa: E402  (tests/tap.py)
from realservers import (NAMED, dns_answers, flightrec_run_env, free_port,  # noqa: E402
                         write_named_dir)


def run_env(adapter):
    """The environment for `flightrec run` with @adapter's directory. In a
    sanitizer build (tools/sanitize) the adapter links the sanitizer's
    runtime, which must be loaded before libc: it goes in LD_PRELOAD, after
    the adapter that `flightrec run` puts first; named's own allocations are
    not ours to judge (no leak check)."""
    env = flightrec_run_env(adapter, leak_check=False)
    env.pop("FLIGHTREC_DIR", None)
    return env


def run_cli(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"flightrec {' '.join(args)}: exit {p.returncode}: {p.stderr}")
    return p.stdout


def main():
    adapter, cli = sys.argv[1:3]
    t = Tap()
    dnsperf = shutil.which("dnsperf")
    if not (os.access(NAMED, os.X_OK) and dnsperf):
        if os.environ.get("FLIGHTREC_TOOLS_TEST"):
            t.bail("named or dnsperf missing under tools/test (tools/bootstrap installs "
                   "bind9 and dnsperf)")
        t.skip("named under dnsperf", "named (bind9) or dnsperf not installed")
        print(f"1..{t.n}")
        return

    d = tempfile.mkdtemp(prefix="uvnamed-")
    os.chmod(d, 0o755)
    port = free_port()
    conf = write_named_dir(d, port)

    env = run_env(adapter)
    cmd = [cli, "run", "--dir", d, "--", NAMED, "-f", "-n", "2", "-c", conf]
    named = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 20
        up = False
        while time.monotonic() < deadline and named.poll() is None:
            if dns_answers(port):
                up = True
                break
            time.sleep(0.1)
        if not t.check(up, "named answers on 127.0.0.1 with the adapter preloaded",
                       named.stderr.read() if named.poll() is not None else "no answer"):
            t.bail("named did not come up")

        perf = subprocess.Popen([dnsperf, "-s", "127.0.0.1", "-p", str(port), "-d",
                                 os.path.join(d, "queries"), "-l", "4", "-c", "16", "-q", "64"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)
        dumped = subprocess.run([cli, "dump", str(named.pid), "--dir", d], capture_output=True,
                                text=True, timeout=60)
        t.check(dumped.returncode == 0 and dumped.stdout.strip().endswith(".frd"),
                "flightrec dump PID took a dump mid-load", dumped.stderr)
        out, _ = perf.communicate(timeout=30)
        done = [ln for ln in out.splitlines() if "Queries completed" in ln]
        t.check(perf.returncode == 0 and done and int(done[0].split()[2]) > 1000,
                "dnsperf got answers for 4 s", out)
    finally:
        if named.poll() is None:
            named.send_signal(signal.SIGTERM)
        try:
            rc = named.wait(timeout=30)
        except subprocess.TimeoutExpired:
            named.kill()
            rc = named.wait()
    t.check(rc == 0, "named stops cleanly on SIGTERM (exit 0)", rc)
    frd = sorted(glob.glob(os.path.join(d, "*.frd")))
    if not t.check(len(frd) == 1, "one dump in the directory", frd):
        t.bail("no dump")
    dump = frd[0]

    info = json.loads(run_cli(cli, "info", dump, "--json"))
    tasks = json.loads(run_cli(cli, "tasks", dump, "--json"))["tasks"]
    run_cli(cli, "export", dump, "--format", "csv", "-o", os.path.join(d, "events.csv"))

    polls = collections.Counter()      # thread name -> poll begins
    sends = collections.Counter()      # thread name -> udp send spawns
    tids = {}
    names = {x["id"]: x["name"] for x in tasks if x["name"]}
    recv_polls = collections.Counter()
    first_reply = 1 << 62
    last_park = {}                     # thread name -> ns of its loop's last park
    send_spawn = {}                    # send task id -> (thread name, ns)
    with open(os.path.join(d, "events.csv")) as f:
        for row in csv.DictReader(f):
            th = row["thread"]
            tids[th] = row["tid"]
            if row["type"] == "park":
                last_park[th] = int(row["ns"])
            elif row["type"] == "poll_begin":
                polls[th] += 1
                if int(row["task"]) not in names:  # spawned before the window: the handles
                    recv_polls[th] += 1
            elif row["type"] == "spawn" and row["string"].startswith("uv udp send"):
                sends[th] += 1
                first_reply = min(first_reply, int(row["ns"]))
                send_spawn[int(row["task"])] = (th, int(row["ns"]))
    net = [th["name"] for th in info["threads"] if th["name"].startswith("isc-net")]
    t.check(len(net) >= 2, "named's network threads are in the dump", info["threads"])
    # the loops dnsperf's sockets hash to (named's main thread runs one too);
    # the others polled only their async handles
    busy = [th for th in polls if polls[th] > 100]
    t.check(len(busy) >= 2 and all(sends[th] > 0 for th in busy),
            "every thread that polls under load answers queries there (at least two)",
            {"polls": dict(polls), "sends": dict(sends)})
    # every reply a query asked for: each send task's spawn follows a receive poll
    t.check(all(sends[th] <= polls[th] for th in busy),
            "replies sent on each thread never outnumber its polls",
            {"polls": dict(polls), "sends": dict(sends)})
    send_tasks = [x for x in tasks if x["name"] and x["name"].startswith("uv udp send")]
    finished = [x for x in send_tasks if x["state"] == "dropped"]
    t.check(len(send_tasks) > 1000 and all(x["polls"] == 1 for x in finished),
            "each reply is a 'uv udp send' task, polled once and dropped",
            collections.Counter((x["state"], x["polls"]) for x in send_tasks))
    # A send's callback runs in the next turn of its loop, before the loop
    # parks again: a reply not yet polled when its thread's ring was copied was
    # sent in the turn under way then, after that thread's last park.
    unfinished = [x["id"] for x in send_tasks if x["state"] != "dropped"]
    print(f"# {len(unfinished)} of {len(send_tasks)} replies not yet polled at the copy, "
          f"{sum(i in send_spawn for i in unfinished)} of them with their spawn in the ring")
    late = [i for i in unfinished if i in send_spawn
            and send_spawn[i][1] < last_park.get(send_spawn[i][0], 0)]
    t.check(not late and len(unfinished) * 20 < len(send_tasks),
            "replies not yet polled were sent in their loop's last turn before the copy",
            {"unfinished": len(unfinished), "sent before a later park": late[:10]})
    # dnsperf, named's threads and other tests share two cores here: a thread
    # preempted for 10-20 ms inside a callback is the machine, not named, so
    # the thresholds are 100 ms; and named's start-up (loading its zone in a
    # loop's async callback) is not the load: findings that ended before the
    # first reply in the dump are listed, not failed.
    an = json.loads(run_cli(cli, "analyze", dump, "--json", "--long-poll-ms", "100",
                            "--starvation-ms", "100"))
    startup = [f for f in an["findings"] if f["at_ns"] + f["duration_ns"] < first_reply]
    for f in startup:
        print(f"# before the load: {f['kind']} {f['name']} {f['duration_ns'] / 1e6:.1f} ms")
    under_load = [f for f in an["findings"] if f not in startup]
    # Timing findings are named's only on a machine that had the CPUs to run
    # it: not in a sanitizer build (every allocation goes through the
    # sanitizer's allocator), not when other work kept the run queue longer
    # than the CPUs (a thread descheduled 150 ms mid-callback is a long poll
    # the machine made). They are then listed, not failed; the others fail.
    load = os.getloadavg()[0]
    why = ("a sanitizer build" if "LD_PRELOAD" in env
           else f"load average {load:.1f} on {os.cpu_count()} CPUs"
           if load > os.cpu_count() else None)
    if why:
        timing = [f for f in under_load if f["kind"] in ("long_poll", "starvation",
                                                          "delayed_wakeup")]
        for f in timing:
            print(f"# {why}, timing: {f['kind']} {f['name']} {f['duration_ns'] / 1e6:.1f} ms")
        under_load = [f for f in under_load if f not in timing]
    t.check(under_load == [], "zero findings on the healthy server under load (100 ms thresholds)",
            json.dumps(under_load[:5], indent=1))
    window = an["window_ns"]
    per_thread_busy = sum(x["busy_ns"] for x in tasks)
    t.check(0 < per_thread_busy <= window * len(info["threads"]),
            "busy time fits in the recorded window", (per_thread_busy, window))
    print(f"1..{t.n}")
    shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if t.failed else 0)


if __name__ == "__main__":
    main()
