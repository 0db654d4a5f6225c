"""tap.py - the TAP output the Python test scripts share (meson reads it with
protocol 'tap'). Scripts in tests/*/ import it with tests/ on sys.path."""
import sys


class Tap:
    def __init__(self, max_diag_lines=None):
        self.n = 0
        self.failed = 0
        self.max_diag_lines = max_diag_lines

    def check(self, ok, what, diag=None):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {what}")
        if not ok:
            self.failed += 1
            for line in str(diag or "").splitlines()[: self.max_diag_lines]:
                print(f"# {line}")
        sys.stdout.flush()
        return ok

    def skip(self, what, why):
        self.n += 1
        print(f"ok {self.n} - {what} # SKIP {why}")

    def bail(self, why):
        print(f"Bail out! {why}")
        sys.exit(1)
