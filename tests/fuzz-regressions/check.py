#!/usr/bin/env python3
"""Inputs the fuzzer (tools/fuzz) once crashed the decoder on: each must now
decode through every command with exit status 0 or 1, never a signal or a
sanitizer report (UBSan with halt_on_error exits 1 too, so its "runtime
error:" on stderr counts as a failure). TAP on stdout.
usage: check.py FLIGHTREC DIR"""
import glob
import os
import subprocess
import sys

flightrec, here = sys.argv[1], sys.argv[2]
inputs = sorted(glob.glob(os.path.join(here, "*.frd")))
commands = [["info"], ["tasks"], ["timeline"], ["analyze", "--json"], ["export", "--format", "csv"],
            ["export", "--format", "chrome"], ["report", "-o", "-"], ["locks", "--json"]]
sanitizer = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")
print(f"1..{len(inputs) * len(commands)}")
n = failed = 0
for path in inputs:
    for cmd in commands:
        n += 1
        r = subprocess.run([flightrec, cmd[0], path] + cmd[1:], capture_output=True)
        name = f"{os.path.basename(path)} {' '.join(cmd)}"
        err = r.stderr.decode(errors="replace")
        if r.returncode in (0, 1) and not any(m in err for m in sanitizer):
            print(f"ok {n} - {name}")
        else:
            failed += 1
            print(f"not ok {n} - {name}: exit {r.returncode}")
            print("# " + err[-400:].replace("\n", "\n# "))
sys.exit(1 if failed else 0)
