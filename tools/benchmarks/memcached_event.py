#!/usr/bin/env python3
"""memcached_event.py - what libflightrec-event.so costs Debian's memcached
under memcaslap, measured on this machine in one run.

  memcached_event.py --adapter PATH --flightrec PATH [--pairs N] [--seconds S]

memcached (-t 2, 127.0.0.1 only, a fresh process per run) is loaded by
memcaslap (-T 2 -c 16, get 90 % / set 10 %) for S seconds (default 5), N
pairs of runs (default 5): without flightrec and under `flightrec run` (the
adapter found beside PATH given by --adapter preloaded), alternated (which goes first flips every pair), so each pair compares
neighbours in time. Prints one JSON object on stdout, progress on stderr:

  {"runtime": "memcached", "pairs": N, "seconds": S,
   "without_rps": {"median", "min", "max", "spread"},   requests/s
   "with_rps":    {"median", "min", "max", "spread"},   spread = (max-min)/median
   "ratio": median of per-pair with/without,            target >= 0.98
   "ratio_of_medians": with median / without median,
   "cpu_us_per_request_without", "cpu_us_per_request_with": memcached's
       user + system CPU time (all threads, /proc) over the load, per request,
       as {"median", "min", "max", "spread"}; "cpu_ratio": with / without
       medians, the cost in CPU whether or not the machine has cores to spare,
   "events_per_request": events recorded per memcaslap request,
   "events_run": {"events", "requests", "lost"}}

events_per_request comes from one more run with rings large enough to keep
everything (FLIGHTREC_RING_KB=262144, nothing overwritten, checked), dumped
with `flightrec dump PID` after the load ends: the dump's event count over memcaslap's request count.
memcached and memcaslap share the machine's cores; the figures say what they
say about this machine, nothing more.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from realservers import cpu_seconds, free_port, memcached_cmd, stats, wait_listening  # noqa: E402


def log(msg):
    print(f"memcached_event: {msg}", file=sys.stderr, flush=True)


class Memcached:
    def __init__(self, memcached, env, prefix=()):
        self.port = free_port()
        cmd = [*prefix, *memcached_cmd(memcached, self.port, memory_mb=256, connections=1024)]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_listening(self.port, self.proc):
            self.stop()
            raise SystemExit("memcached_event: memcached did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(memcaslap, port, seconds):
    """memcaslap's requests/s and request count."""
    r = subprocess.run([memcaslap, "-s", f"127.0.0.1:{port}", "-T", "2", "-c", "16",
                        "-t", f"{seconds}s"], capture_output=True, text=True,
                       timeout=seconds + 60)
    m = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"memcached_event: memcaslap failed: {r.stdout}{r.stderr}")
    return float(m.group(3)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--flightrec", required=True)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    if not 1 <= a.pairs <= 40 or not 1 <= a.seconds <= 120:
        ap.error("--pairs 1..40, --seconds 1..120")
    memcached = shutil.which("memcached")
    memcaslap = shutil.which("memcaslap") or shutil.which("memaslap")
    if not memcached or not memcaslap:
        raise SystemExit("memcached_event: needs memcached and memcaslap "
                         "(apt-get install memcached libmemcached-tools)")

    tmp = tempfile.mkdtemp(prefix="memcached-event-")
    os.chmod(tmp, 0o777)  # memcached drops to nobody before it dumps
    bare_env = dict(os.environ)
    bare_env.pop("LD_PRELOAD", None)
    # "with": through flightrec run, which preloads the adapter found in
    # FLIGHTREC_ADAPTER_DIR and moves the dump signal off memcached's SIGUSR1
    with_env = dict(bare_env, FLIGHTREC_ADAPTER_DIR=os.path.dirname(os.path.abspath(a.adapter)))
    with_env.pop("FLIGHTREC_SIGNAL", None)
    run = [a.flightrec, "run", "--dir", tmp, "--"]

    without, with_, ratios, cpu_without, cpu_with = [], [], [], [], []
    for i in range(a.pairs):
        order = [("without", bare_env, ()), ("with", with_env, run)]
        if i % 2:
            order.reverse()
        got, cpu = {}, {}
        for name, env, prefix in order:
            mc = Memcached(memcached, env, prefix)
            try:
                cpu0 = cpu_seconds(mc.proc.pid)
                got[name], requests = load(memcaslap, mc.port, a.seconds)
                cpu[name] = (cpu_seconds(mc.proc.pid) - cpu0) / requests * 1e6
            finally:
                mc.stop()
            log(f"pair {i + 1}/{a.pairs} {name}: {got[name]:.0f} requests/s, "
                f"{cpu[name]:.2f} us CPU per request")
        without.append(got["without"])
        with_.append(got["with"])
        ratios.append(got["with"] / got["without"])
        cpu_without.append(cpu["without"])
        cpu_with.append(cpu["with"])

    # events per request: big rings, dump after the load
    big = dict(with_env, FLIGHTREC_RING_KB="262144")
    mc = Memcached(memcached, big, run)
    try:
        _, requests = load(memcaslap, mc.port, min(a.seconds, 2))
        d = subprocess.run([a.flightrec, "dump", str(mc.proc.pid), "--dir", tmp, "--timeout",
                            "60"], capture_output=True, text=True, timeout=90)
        dump = d.stdout.strip() if d.returncode == 0 else None
    finally:
        mc.stop()
    if dump is None:
        raise SystemExit("memcached_event: no dump for the event count")
    info = json.loads(subprocess.run([a.flightrec, "info", "--json", dump], capture_output=True,
                                     text=True, check=True).stdout)
    lost = sum(th["overwritten"] + th["dropped"] for th in info["threads"])
    shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps({
        "runtime": "memcached", "pairs": a.pairs, "seconds": a.seconds,
        "without_rps": stats(without), "with_rps": stats(with_),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_of_medians": round(statistics.median(with_) / statistics.median(without), 4),
        "cpu_us_per_request_without": stats(cpu_without),
        "cpu_us_per_request_with": stats(cpu_with),
        "cpu_ratio": round(statistics.median(cpu_with) / statistics.median(cpu_without), 4),
        "events_per_request": round(info["events"] / requests, 3) if not lost else None,
        "events_run": {"events": info["events"], "requests": requests, "lost": lost},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
