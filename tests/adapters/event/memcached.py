#!/usr/bin/env python3
"""memcached.py FLIGHTREC ADAPTER - Debian's memcached (libevent, 2 worker
threads) under memcaslap, run by `flightrec run` (which preloads the libevent
adapter found beside ADAPTER), dumped mid-load with `flightrec dump PID`,
decoded (TAP on stdout).

Checks: a listener task on the main thread and connection tasks on every
worker thread, each polled only on the thread that spawned it (one base per
worker); polls that add up (the tasks' counts equal the poll events, every
poll follows a wake); zero findings on the healthy server; memcached's own
SIGUSR1 graceful stop still ends it with the status it gives without
flightrec.

Thresholds: 250 ms. memcaslap and memcached share this machine's cores, so
the scheduler can stop a worker in the middle of a callback for tens of
milliseconds; that is not a blocking callback, and 250 ms stays far above it.

Skips (with the reason) only outside tools/test when memcached or memcaslap
is missing; under tools/test (FLIGHTREC_TOOLS_TEST=1) a missing program fails.
"""
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
from realservers import (flightrec_run_env, free_port, memcached_cmd,  # noqa: E402
                         wait_listening)

THRESHOLDS = ["--long-poll-ms", "250", "--starvation-ms", "250"]
LOAD_S = 4
DUMP_AFTER_S = 2.0
CONCURRENCY = 16


def stop(proc, timeout=10):
    """memcached's own graceful stop (SIGUSR1); its exit status, or None."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def main():
    cli, adapter = sys.argv[1:3]
    t = Tap(max_diag_lines=40)
    memcached = shutil.which("memcached")
    memcaslap = shutil.which("memcaslap") or shutil.which("memaslap")
    if not memcached or not memcaslap:
        why = "memcached and memcaslap (apt-get install memcached libmemcached-tools)"
        if os.environ.get("FLIGHTREC_TOOLS_TEST"):
            t.check(False, "memcached and memcaslap are installed", "missing: " + why)
            print(f"1..{t.n}")
            return 1
        t.skip("memcached under memcaslap", "not run by tools/test and missing " + why)
        print(f"1..{t.n}")
        return 0

    # What memcached's graceful stop gives without flightrec.
    port = free_port()
    bare = subprocess.Popen(memcached_cmd(memcached, port), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        up = wait_listening(port, bare)
    finally:
        bare_status = stop(bare)
    t.check(up and bare_status is not None, "memcached alone starts and stops on SIGUSR1",
            f"listening {up}, status {bare_status}")

    tmp = tempfile.mkdtemp(prefix="event-memcached-", dir=os.environ.get("TMPDIR"))
    os.chmod(tmp, 0o777)  # memcached writes its dump after dropping to nobody
    # flightrec run finds the adapter (this build's) and picks the dump
    # signal: memcached takes SIGUSR1 for itself, so the default moves.
    # Rings large enough to keep the whole run, connections' spawns included,
    # on a machine much faster than this one.
    # memcached is not ours to check for leaks: its exit status must stay its own.
    env = flightrec_run_env(adapter, leak_check=False, FLIGHTREC_RING_KB="32768")
    env.pop("FLIGHTREC_SIGNAL", None)
    port = free_port()
    mc = subprocess.Popen([cli, "run", "--dir", tmp, "--", *memcached_cmd(memcached, port)],
                          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    load = None
    dump = None
    try:
        if not t.check(wait_listening(port, mc), "memcached starts under flightrec run",
                       mc.stderr.read() if mc.poll() is not None else ""):
            t.bail("memcached did not start")
        load = subprocess.Popen([memcaslap, "-s", f"127.0.0.1:{port}", "-T", "2", "-c",
                                 str(CONCURRENCY), "-t", f"{LOAD_S}s"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        time.sleep(DUMP_AFTER_S)
        d = subprocess.run([cli, "dump", str(mc.pid), "--dir", tmp, "--timeout", "30"],
                           capture_output=True, text=True, timeout=60)
        t.check(d.returncode == 0 and d.stdout.strip().endswith(".frd"),
                "flightrec dump PID took a dump mid-load", d.stdout + d.stderr)
        dump = d.stdout.strip() if d.returncode == 0 else None
        loadout, _ = load.communicate(timeout=LOAD_S + 30)
        t.check(load.returncode == 0 and "TPS" in loadout, "memcaslap ran its load", loadout)
        status = stop(mc)
        t.check(status == bare_status,
                "SIGUSR1 still stops memcached gracefully, with the same exit status",
                f"with flightrec {status}, without {bare_status}\n{mc.stderr.read()}")
    finally:
        if load and load.poll() is None:
            load.kill()
            load.wait()
        if mc.poll() is None:
            mc.kill()
            mc.wait()
    if dump is None or not os.path.exists(dump):
        t.bail("no dump")

    def cli_json(*args):
        r = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            t.bail(f"flightrec {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return json.loads(r.stdout)

    info = cli_json("info", "--json", dump)
    tasks = cli_json("tasks", "--json", dump)["tasks"]
    events = cli_json("export", dump, "--format", "json")["events"]
    analysis = cli_json("analyze", "--json", *THRESHOLDS, dump)

    lost = sum(th["overwritten"] + th["dropped"] for th in info["threads"])
    t.check(lost == 0, "the dump holds the whole run (nothing overwritten or dropped)",
            json.dumps(info["threads"]))
    main_tid = info["pid"]
    workers = [th["tid"] for th in info["threads"] if th["tid"] != main_tid and
               any(e["tid"] == th["tid"] and e["type"] == "poll_begin" for e in events)]
    # A struct event re-assigned for a new connection (memcached reuses its
    # conn objects, by descriptor, on whichever worker takes the connection)
    # is a new instance of the same task id: count per (id, spawn number).
    spawns = {}
    spawned_on = {}
    polls_on = {}
    wakes = {}
    npoll_events = 0
    for e in events:
        key = (e.get("task"), spawns.get(e.get("task"), 0))
        if e["type"] == "spawn":
            spawns[e["task"]] = spawns.get(e["task"], 0) + 1
            key = (e["task"], spawns[e["task"]])
            spawned_on[key] = e["tid"]
        elif e["type"] == "poll_begin":
            npoll_events += 1
            polls_on.setdefault(key, []).append(e["tid"])
        elif e["type"] == "wake":
            wakes[key] = wakes.get(key, 0) + 1
    types = sorted({e["type"] for e in events})

    main_spawned = {k[0] for k, tid in spawned_on.items() if tid == main_tid}
    listeners = [x for x in tasks if x["id"] in main_spawned and x["wait"] == "external" and
                 x["polls"] > 0 and "read" in x["name"]]
    t.check(len(listeners) >= 1, "a listener task on the main thread, waiting on the outside world, "
            "polled",
            json.dumps([x for x in tasks if x["id"] in main_spawned]))
    conns = [k for k, tid in spawned_on.items() if tid in workers and polls_on.get(k)]
    per_worker = {w: sum(1 for k in conns if spawned_on[k] == w) for w in workers}
    t.check(len(workers) == 2 and all(n > 0 for n in per_worker.values()) and
            len(conns) >= CONCURRENCY,
            f"connection tasks on every worker thread ({CONCURRENCY} connections)",
            f"workers {workers}, per worker {per_worker}, event types {types}")
    t.check(all(set(polls_on[k]) == {spawned_on[k]} for k in conns),
            "each connection is polled only on the worker thread that runs its base",
            json.dumps({f"{k[0]}#{k[1]}": sorted(set(polls_on[k])) for k in conns}))
    total = sum(x["polls"] for x in tasks)
    t.check(total == npoll_events and total > 1000,
            "polls add up: the tasks' counts are the poll events of the dump",
            f"tasks {total}, poll events {npoll_events}")
    t.check(all(wakes.get(k, 0) >= len(polls_on[k]) for k in conns),
            "every poll of a connection follows a wake (the poller saw it ready)",
            json.dumps([(k, len(polls_on[k]), wakes.get(k, 0)) for k in conns]))
    t.check(analysis["findings"] == [], "zero findings on the healthy server",
            json.dumps(analysis["findings"][:5], indent=1))
    print(f"1..{t.n}")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
