#!/usr/bin/env python3
"""autodump.py - the demo service dumps by itself: a stall caught by the watchdog
with no signal sent, and a `kill -9` recovered with `flightrec recover`.

    autodump.py CASE FLIGHTREC_DEMO FLIGHTREC

CASE is one of:
  stall    FLIGHTREC_STALL_MS=100 and --bug-blocking (report_render sleeps 200 ms
           inside its poll): a stall dump appears while the service runs, nobody
           signals it; `info` shows the stuck thread's stack with the blocking
           function, and `analyze` quotes it in the long_poll finding.
  sigkill  FLIGHTREC_SHARED_RINGS=1, the service killed with SIGKILL mid-run:
           `flightrec recover PID --dir DIR` turns the .rings file it left into a
           dump that passes `zstd -t` and decodes into tasks; a run that ends
           normally leaves no .rings file.
Output is TAP.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402  (tests/tap.py)


def cli(flightrec, *args):
    r = subprocess.run([flightrec, *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def cli_json(flightrec, *args):
    rc, out, err = cli(flightrec, *args, "--json")
    if rc != 0:
        raise RuntimeError(f"flightrec {' '.join(args)} --json: exit {rc}: {err}")
    return json.loads(out)


def env_with(**kv):
    env = dict(os.environ)
    for k in ("FLIGHTREC_STALL_MS", "FLIGHTREC_SHARED_RINGS", "FLIGHTREC_DUMP_ON"):
        env.pop(k, None)
    env.update(kv)
    return env


def stall(tap, demo, flightrec, d):
    print("1..6")
    r = subprocess.run([demo, "--bug-blocking", "--duration-ms", "1500", "--dump-dir", d],
                       capture_output=True, text=True, timeout=60,
                       env=env_with(FLIGHTREC_STALL_MS="100"))
    tap.check(r.returncode == 0, "flightrec-demo --bug-blocking runs to its end", r.stderr)
    stalls = []
    for f in sorted(glob.glob(os.path.join(d, "*.frd"))):
        info = cli_json(flightrec, "info", f)
        if info.get("reason") == "stall":
            stalls.append((f, info))
    if not tap.check(1 <= len(stalls) <= 3, "the watchdog wrote 1 to 3 stall dumps (rate-limited)",
                     f"found {len(stalls)}\n{r.stderr}"):
        tap.bail("no stall dump")
    f, info = stalls[0]
    st = info.get("stall") or {}
    tap.check(st.get("held_ns", 0) >= 100_000_000 and st.get("held_ns", 0) < 200_000_000,
              "it came while the 200 ms poll was still running, past 100 ms", json.dumps(st))
    funcs = [fr.get("function") or "" for fr in st.get("stack", [])]
    tap.check("render_report_blocking" in funcs,
              "the stuck thread's stack names the blocking function", json.dumps(funcs))
    rc, text, err = cli(flightrec, "info", f)
    tap.check(rc == 0 and "stall" in text and "render_report_blocking" in text,
              "flightrec info shows the stall and its stack", text + err)
    findings = cli_json(flightrec, "analyze", f).get("findings", [])
    tap.check(any(x["kind"] == "long_poll" and x.get("name") == "report_render"
                  and "it was in" in x.get("message", "")
                  and "render_report_blocking" in x.get("message", "") for x in findings),
              "the long_poll finding quotes where the poll was stuck",
              "\n".join(x.get("message", "") for x in findings))


def sigkill(tap, demo, flightrec, d):
    print("1..7")
    p = subprocess.Popen([demo, "--duration-ms", "20000", "--dump-dir", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env_with(FLIGHTREC_SHARED_RINGS="1"))
    time.sleep(1.0)
    rings = glob.glob(os.path.join(d, f"flightrec-{p.pid}-*.rings"))
    tap.check(len(rings) == 1 and (os.stat(rings[0]).st_mode & 0o777) == 0o600,
              "the running service keeps one .rings file, mode 0600", repr(rings))
    rc, out, err = cli(flightrec, "recover", str(p.pid), "--dir", d)
    tap.check(rc == 1 and out == "", "recover refuses a process that is still alive", out + err)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    tap.check(p.returncode == -signal.SIGKILL, "kill -9 ends it", str(p.returncode))
    rc, out, err = cli(flightrec, "recover", str(p.pid), "--dir", d)
    path = out.strip()
    if not tap.check(rc == 0 and path.endswith(".frd") and os.path.exists(path),
                     "flightrec recover PID --dir DIR prints the recovered dump's path", out + err):
        tap.bail("nothing recovered")
    z = subprocess.run([shutil.which("zstd") or "zstd", "-tq", path], capture_output=True, text=True)
    tap.check(z.returncode == 0, "the recovered dump passes zstd -t", z.stderr)
    info = cli_json(flightrec, "info", path)
    report = cli_json(flightrec, "analyze", path)
    tap.check(info.get("reason") == "recovered" and info.get("recovery") is not None
              and report.get("tasks", 0) > 0 and report.get("events", 0) > 0,
              "it decodes: reason recovered, tasks and events",
              json.dumps(info)[:1500] + json.dumps(report)[:500])
    r = subprocess.run([demo, "--duration-ms", "300", "--dump-dir", d], capture_output=True,
                       text=True, timeout=60, env=env_with(FLIGHTREC_SHARED_RINGS="1"))
    left = glob.glob(os.path.join(d, "*.rings"))
    tap.check(r.returncode == 0 and left == rings,
              "a run that ends normally removes its .rings file", repr(left) + r.stderr)


def main():
    cases = {"stall": stall, "sigkill": sigkill}
    if len(sys.argv) != 4 or sys.argv[1] not in cases:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tap = Tap()
    with tempfile.TemporaryDirectory(prefix="flightrec-autodump-") as d:
        cases[sys.argv[1]](tap, sys.argv[2], sys.argv[3], d)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
