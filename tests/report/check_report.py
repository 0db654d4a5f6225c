#!/usr/bin/env python3
"""check_report.py - `flightrec report` pages, checked in headless Chromium.

    check_report.py demo FLIGHTREC FLIGHTREC_DEMO
    check_report.py hostile FLIGHTREC HOSTILE

demo: runs the demo service with every bug planted until its planted crash,
renders the crash dump's report, and checks the file (self-contained, one JSON
object that agrees with `analyze --json` and `info --json`), then the page in
Chromium: the script ran with no console message and set its sentinel, the DOM
holds a row per thread lane, an entry per finding and the symbolized
backtrace, #finding=0 selects the first finding, and a screenshot shows the
timeline (task colours from the page's palette), not a blank page.

hostile: a dump whose task names, await label, thread name and reason are
HTML (tests/report/hostile.c); the page must carry them only as escaped data
and show them only as text.

Output is TAP. Chromium comes from tools/bootstrap; without it the browser
checks are skipped, except under tools/test (FLIGHTREC_TOOLS_TEST set), where
a missing browser is a failure.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402  (tests/tap.py)

HOSTILE = "</script><script>alert(1)</script>"


def run(cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class Browser:
    """Headless Chromium with a private profile; console messages collected."""

    def __init__(self, tmp):
        self.exe = shutil.which("chromium") or shutil.which("chromium-browser")
        self.tmp = tmp
        self.runs = 0

    def run(self, url, *args):
        self.runs += 1
        profile = os.path.join(self.tmp, f"profile-{self.runs}")
        cmd = [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--window-size=1400,1150", *args, url]
        r = run(cmd)
        console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        return r, console


def data_of(html):
    m = re.search(r'<script type="application/json" id="frd-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1)) if m else None


def png_pixels(path):
    """(width, height, set of distinct RGBA colours) of an 8-bit RGB(A) PNG."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos < len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "big")
        kind, body = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = int.from_bytes(hdr[0:4], "big"), int.from_bytes(hdr[4:8], "big")
    depth, ctype, interlace = hdr[8], hdr[9], hdr[12]
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 4 if ctype == 6 else 3
    stride = w * bpp
    data = zlib.decompress(idat)
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        ft = data[y * (stride + 1)]
        line = bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ft == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ft == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ft == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return w, h, colours


def check_demo(tap, flightrec, demo, browser, tmp):
    dumps = os.path.join(tmp, "dumps")
    os.mkdir(dumps)
    r = run([demo, "--all-bugs", "--workers", "2", "--duration-ms", "3000", "--crash-after-ms", "1700",
             "--dump-dir", dumps], timeout=60)
    found = sorted(glob.glob(os.path.join(dumps, "*.frd")))
    if not tap.check(r.returncode == -11 and len(found) == 1,
                     "flightrec-demo --all-bugs crashes and writes one dump",
                     f"exit {r.returncode}, dumps {found}\n{r.stderr}"):
        tap.bail("no crash dump")
    dump = found[0]

    # default output: beside the dump, named after it
    r = run([flightrec, "report", dump])
    page = dump[:-4] + ".html"
    tap.check(r.returncode == 0 and os.path.exists(page) and "wrote " + page in r.stderr,
              "report without -o writes DUMP.html beside the dump", f"exit {r.returncode}\n{r.stderr}")
    if not os.path.exists(page):
        tap.bail("no report")
    with open(page, encoding="utf-8") as f:
        html = f.read()
    tap.check(not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc\s*=|@import|url\(|https?://", html),
              "the page is self-contained (no link, src, import, url or address)",
              "\n".join(m.group(0) for m in re.finditer(r".{0,40}(<link|<img|src\s*=|@import|url\(|https?://).{0,40}", html))[:2000])
    tap.check(html.count('<script type="application/json"') == 1 and html.lower().count("<script") == 2,
              "one JSON data block and one script")
    data = data_of(html)
    if not tap.check(data is not None, "the data block is JSON"):
        tap.bail("no data")

    analyze = json.loads(run([flightrec, "analyze", dump, "--json"]).stdout)
    info = json.loads(run([flightrec, "info", dump, "--json"]).stdout)
    kinds = sorted(f["kind"] for f in analyze["findings"])
    tap.check(sorted(f["kind"] for f in data["findings"]) == kinds and len(kinds) >= 3,
              "the page carries the findings analyze --json finds",
              f"page {sorted(f['kind'] for f in data['findings'])}\nanalyze {kinds}")
    workers = [lane for lane in data["lanes"] if lane["polls_total"] > 0]
    tap.check(len(workers) == 2 and all(lane["polls_shown"] == lane["polls_total"] > 0 for lane in workers),
              "two worker lanes with all their polls", json.dumps([{k: v for k, v in lane.items() if k not in ("polls", "parks")} for lane in data["lanes"]]))
    crash = data.get("crash") or {}
    tap.check(crash.get("signal_name") == "SIGSEGV" and crash["chain"] and crash["chain"][0]["name"] == "parse_header"
              and any("parse_header_poll" in (fr["function"] or "") for fr in crash["backtrace"]),
              "the crash: SIGSEGV in parse_header, backtrace symbolized",
              json.dumps(crash)[:2000])
    tap.check(len(data["tasks"]) == info["tasks"] == data["dump"]["tasks"], "a row per task instance",
              f"rows {len(data['tasks'])}, info {info['tasks']}")
    # the planted deadlock: its whole cycle has rows, each with its lock wait
    dl = [f for f in data["findings"] if f["kind"] == "deadlock"]
    rows = dl[0].get("cycle_rows", []) if dl else []
    lw = data.get("lock_waits", [])
    waiting_rows = {lw[i] for i in range(0, len(lw), 4)}
    names = sorted(data["names"][data["tasks"][r][1]] for r in rows if r >= 0)
    tap.check(names == ["transfer_in", "transfer_out"] and all(r in waiting_rows for r in rows),
              "the deadlock's cycle: both transfers' rows, each with a lock wait",
              json.dumps({"deadlock": dl, "rows": rows, "names": names})[:2000])
    wakes = sum(1 for lane in workers for i in range(0, len(lane["polls"]), 7) if lane["polls"][i + 6] >= 0)
    tap.check(wakes > 0, f"polls know the wake that caused them ({wakes})")

    # the caps: a small --max-polls keeps the findings' polls and says so
    r = run([flightrec, "report", dump, "--max-polls", "50", "--max-tasks", "40", "-o", "-"])
    small = data_of(r.stdout) if r.returncode == 0 else None
    ok = small is not None and all(lane["polls_shown"] <= 50 for lane in small["lanes"]) and \
        len(small["tasks"]) == 40 and small["tasks_total"] == data["dump"]["tasks"]
    if ok:
        rows = {f["row"] for f in small["findings"] if f["row"] >= 0}
        ok = len(rows) == len({f["task"]["id"] for f in small["findings"] if f["task"]}) and \
            all(any(lane["polls"][i] == row for lane in small["lanes"] for i in range(0, len(lane["polls"]), 7))
                for row in rows if small["tasks"][row][8] > 0)
    tap.check(ok, "--max-polls 50 --max-tasks 40: capped, tasks with findings and their polls kept",
              r.stderr if r.returncode else "")

    if not browser.exe:
        for what in ("renders", "DOM", "selection", "screenshot"):
            tap.skip(f"Chromium: {what}", "chromium is not installed (tools/bootstrap installs it)")
        return
    url = "file://" + os.path.abspath(page)
    r, console = browser.run(url, "--dump-dom")
    dom = r.stdout
    tap.check(r.returncode == 0 and 'data-rendered="ok"' in dom and not console,
              "Chromium runs the page's script without a console message and it finishes",
              f"exit {r.returncode}\n" + "\n".join(console) + "\n" + dom[-1500:])
    lanes, entries = dom.count('<tr class="lane"'), dom.count('<li class="finding')
    tap.check(lanes == len(data["lanes"]) and "worker-0" in dom and "worker-1" in dom
              and entries == len(analyze["findings"])
              and re.search(r'id="backtrace".*parse_header_poll', dom, re.S) is not None,
              "the DOM holds a row per lane, an entry per finding and the backtrace",
              f"lanes {lanes} of {len(data['lanes'])}, findings {entries} of {len(analyze['findings'])}")
    r, console = browser.run(url + "#finding=0", "--dump-dom")
    tap.check('data-selected="0"' in r.stdout and re.search(r'<li class="finding [^"]*selected" data-index="0"', r.stdout)
              and not console, "#finding=0 selects the first finding as a click does", "\n".join(console))
    shot = os.path.join(tmp, "report.png")
    r, console = browser.run(url, f"--screenshot={shot}")
    try:
        w, h, colours = png_pixels(shot)
        palette = {bytes.fromhex(c) for c in re.findall(r"'#([0-9a-f]{6})'", html.split("const PALETTE", 1)[1].split("]", 1)[0])}
        drawn = palette & colours
        tap.check(w == 1400 and h == 1150 and len(colours) > 100 and len(drawn) >= 3,
                  f"the screenshot shows the timeline ({len(colours)} colours, {len(drawn)} task colours)",
                  f"{w}x{h}, {len(colours)} colours, palette colours seen {len(drawn)}")
    except (OSError, ValueError, IndexError) as e:
        tap.check(False, "the screenshot shows the timeline", f"{e}\n{r.stderr[-1500:]}")


def check_hostile(tap, flightrec, hostile, browser, tmp):
    r = run([hostile, tmp])
    dump = r.stdout.strip()
    if not tap.check(r.returncode == 0 and os.path.exists(dump), "hostile writes its dump", r.stderr):
        tap.bail("no dump")
    page = os.path.join(tmp, "hostile.html")
    r = run([flightrec, "report", dump, "--hang-ms", "5", "-o", page])
    if not tap.check(r.returncode == 0, "report renders it", r.stderr):
        tap.bail("no report")
    with open(page, encoding="utf-8") as f:
        html = f.read()
    tap.check(html.lower().count("</script") == 2 and html.count("<!--") == 1 and "<script>alert" not in html
              and "<img" not in html and "<b>" not in html,
              "no name from the dump appears as markup in the file")
    data = data_of(html)
    names = data["names"] if data else []
    hung = [f for f in (data or {}).get("findings", []) if f["kind"] == "hung"]
    tap.check(HOSTILE in names and data["dump"]["reason"] == HOSTILE
              and data["lanes"][0]["name"] == "<img src=x onerror=alert(2)>"
              and hung and hung[0]["task"]["name"] == HOSTILE and "<!-- " + HOSTILE in hung[0]["message"],
              "the data block gives the names back exactly (JSON.parse sees the same strings)",
              json.dumps(data)[:2000])
    if not browser.exe:
        tap.skip("Chromium: hostile names shown as text", "chromium is not installed (tools/bootstrap installs it)")
        return
    r, console = browser.run("file://" + os.path.abspath(page), "--dump-dom")
    dom = r.stdout
    shown = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    tap.check('data-rendered="ok"' in dom and not console and dom.lower().count("<script") == 2
              and "<img" not in dom and "<b>" not in dom and dom.count(shown) >= 3,
              "in Chromium the names are text: no script, image or element from them, no console message",
              f"scripts {dom.lower().count('<script')}, shown as text {dom.count(shown)}\n" + "\n".join(console))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("demo", "hostile"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tap = Tap(max_diag_lines=40)
    with tempfile.TemporaryDirectory(prefix="flightrec-report-test-") as tmp:
        browser = Browser(tmp)
        if not browser.exe and os.environ.get("FLIGHTREC_TOOLS_TEST"):
            tap.bail("chromium is missing; tools/bootstrap installs it")
        if sys.argv[1] == "demo":
            print("1..16")
            check_demo(tap, sys.argv[2], sys.argv[3], browser, tmp)
        else:
            print("1..5")
            check_hostile(tap, sys.argv[2], sys.argv[3], browser, tmp)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
