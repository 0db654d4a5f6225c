#!/usr/bin/env python3
"""Golden-output tests for the CLI's renderers: each CASE runs `flightrec` on a
committed dump with the environment pinned (TZ=UTC, LC_ALL=C, NO_COLOR) and
compares its output with CASE.txt byte for byte.

basic.frd was written by tools/fuzzing/make_seeds (its first dump, "seed": a
12 ms poll on worker-1 with ten tasks starving behind it, then worker-2 running
them) from a copy of the program that no longer exists, so no symbolization can
depend on the machine. v1-locks.frd and v1-shapes.frd are make_seeds's
"locks" and "shapes" dumps written by the format-version-1 recorder (awaits,
waker clones and wakes inside polls, locks): the decoder must keep reading
version-1 dumps exactly as it did.

usage: check.py FLIGHTREC DIR [--update]   (TAP on stdout)"""
import os
import subprocess
import sys

CASES = {
    "basic.info": ["info", "basic.frd"],
    "basic.tasks": ["tasks", "basic.frd"],
    "basic.analyze": ["analyze", "basic.frd"],
    "basic.timeline": ["timeline", "basic.frd"],
    "basic.timeline-task": ["timeline", "basic.frd", "--task", "101"],
    "basic.analyze-json": ["analyze", "basic.frd", "--json"],
    "basic.chrome": ["export", "basic.frd", "--format", "chrome"],
    "v1-locks.analyze": ["analyze", "v1-locks.frd"],
    "v1-locks.analyze-json": ["analyze", "v1-locks.frd", "--json"],
    "v1-locks.timeline": ["timeline", "v1-locks.frd"],
    "v1-shapes.tasks": ["tasks", "v1-shapes.frd"],
    "v1-shapes.analyze-json": ["analyze", "v1-shapes.frd", "--json"],
    "v1-shapes.timeline": ["timeline", "v1-shapes.frd"],
}

def main():
    flightrec, here = os.path.abspath(sys.argv[1]), sys.argv[2]
    update = "--update" in sys.argv
    env = dict(os.environ, TZ="UTC", LC_ALL="C", NO_COLOR="1")
    print(f"1..{len(CASES)}")
    failed = 0
    for i, (name, args) in enumerate(sorted(CASES.items()), 1):
        r = subprocess.run([flightrec] + args, cwd=here, env=env, capture_output=True)
        want_path = os.path.join(here, name + ".txt")
        if update:
            open(want_path, "wb").write(r.stdout)
        want = open(want_path, "rb").read()
        if r.returncode == 0 and r.stdout == want:
            print(f"ok {i} - {name}")
            continue
        failed += 1
        print(f"not ok {i} - {name} (exit {r.returncode})")
        got, exp = r.stdout.decode(errors="replace").splitlines(), want.decode().splitlines()
        for n, (g, e) in enumerate(zip(got + [""] * len(exp), exp + [""] * len(got))):
            if g != e:
                print(f"# line {n + 1}:\n#   want: {e}\n#   got:  {g}")
                break
        if r.stderr:
            print("# stderr: " + r.stderr.decode(errors="replace").strip())
    return 1 if failed else 0

sys.exit(main())
