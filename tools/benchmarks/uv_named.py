#!/usr/bin/env python3
"""uv_named.py - what the libuv adapter costs BIND 9's named under dnsperf.

    uv_named.py ADAPTER FLIGHTREC [--runs N] [--seconds S] [--clients C]

Runs Debian's named (authoritative zone on 127.0.0.1, free high port, -n 2,
no recursion, config in a temporary directory) under dnsperf for S seconds,
N times without and N times under `FLIGHTREC run` (which preloads ADAPTER,
libflightrec-uv.so, from its directory), alternated (off, on, off, on...) so both see the same machine. Each run
starts a fresh named. In each run with the adapter a dump is taken at the end
of the load (`flightrec dump PID`) and read with FLIGHTREC: events in the dump's window divided by
the replies in it ("uv udp send" tasks) gives the events per query.

Prints one JSON object on stdout: queries/s medians, min, max and relative
spread ((max - min) / median) of both arms, the ratio of the medians
(with / without), the median of the per-pair ratios, named's CPU time per
answered query (user + system, from /proc, read when dnsperf is done) in
both arms and its ratio, and events per query. On a machine shared with
other work, queries/s moves with the neighbours; CPU per query less so.
Progress goes to stderr. Needs root or a user that may run named.
"""
import argparse
import csv
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from realservers import (NAMED, cpu_seconds, dns_answers, free_port, stats,  # noqa: E402
                         write_named_dir)


def one_run(d, adapter, cli, seconds, clients):
    """qps of one fresh named under dnsperf; (qps, events, replies) with the adapter."""
    port = free_port()
    conf = write_named_dir(d, port)
    for old in glob.glob(os.path.join(d, "*.frd")):
        os.unlink(old)
    env = dict(os.environ)
    cmd = [NAMED, "-f", "-n", "2", "-c", conf]
    if adapter:
        env["FLIGHTREC_ADAPTER_DIR"] = os.path.dirname(os.path.abspath(adapter))
        cmd = [cli, "run", "--dir", d, "--"] + cmd
    named = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not dns_answers(port):
            if time.monotonic() > deadline or named.poll() is not None:
                raise RuntimeError("named did not come up")
            time.sleep(0.1)
        out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d",
                              os.path.join(d, "queries"), "-l", str(seconds), "-c", str(clients),
                              "-q", "64"], capture_output=True, text=True,
                             timeout=seconds + 60).stdout
        qps = float([ln for ln in out.splitlines() if "Queries per second" in ln][0].split()[-1])
        done = int([ln for ln in out.splitlines() if "Queries completed" in ln][0].split()[2])
        cpu_s = cpu_seconds(named.pid)
        events = replies = 0
        if adapter:
            dump = subprocess.run([cli, "dump", str(named.pid), "--dir", d], capture_output=True,
                                  text=True, check=True, timeout=60).stdout.strip()
            info = json.loads(subprocess.run([cli, "info", dump, "--json"], capture_output=True,
                                             text=True, check=True).stdout)
            events = info["events"]
            ev = os.path.join(d, "events.csv")
            subprocess.run([cli, "export", dump, "--format", "csv", "-o", ev], check=True)
            with open(ev) as f:
                replies = sum(1 for row in csv.DictReader(f)
                              if row["type"] == "spawn" and row["string"].startswith("uv udp send"))
    finally:
        named.send_signal(signal.SIGTERM)
        try:
            named.wait(timeout=30)
        except subprocess.TimeoutExpired:
            named.kill()
            named.wait()
    return qps, events, replies, (cpu_s / done if done else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("flightrec")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    if not (os.access(NAMED, os.X_OK) and shutil.which("dnsperf")):
        sys.exit("uv_named: needs /usr/sbin/named and dnsperf (tools/bootstrap installs them)")
    d = tempfile.mkdtemp(prefix="uvbench-")
    os.chmod(d, 0o755)
    off, on, ratios, epq, cpu_off, cpu_on = [], [], [], [], [], []
    try:
        for i in range(a.runs):
            q0, _, _, c0 = one_run(d, None, a.flightrec, a.seconds, a.clients)
            q1, ev, rep, c1 = one_run(d, a.adapter, a.flightrec, a.seconds, a.clients)
            cpu_off.append(c0 * 1e6)
            cpu_on.append(c1 * 1e6)
            off.append(q0)
            on.append(q1)
            ratios.append(q1 / q0)
            if rep:
                epq.append(ev / rep)
            print(f"uv_named: run {i + 1}/{a.runs}: without {q0:.0f} q/s, with {q1:.0f} q/s, "
                  f"{ev / rep if rep else 0:.2f} events/query, CPU {c0 * 1e6:.1f} / {c1 * 1e6:.1f} us/query",
                  file=sys.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps({
        "server": "named (BIND 9, libuv via libisc)", "load": "dnsperf",
        "runs": a.runs, "seconds": a.seconds, "clients": a.clients,
        "qps_without": stats(off), "qps_with": stats(on),
        "ratio": round(statistics.median(on) / statistics.median(off), 4),
        "ratio_pairs_median": round(statistics.median(ratios), 4),
        "cpu_us_per_query_without": stats(cpu_off), "cpu_us_per_query_with": stats(cpu_on),
        "cpu_ratio": round(statistics.median(cpu_on) / statistics.median(cpu_off), 4),
        "events_per_query": round(statistics.median(epq), 2) if epq else None,
    }))


if __name__ == "__main__":
    main()
