"""realservers.py - starting the real servers flightrec is tried on (Debian's
memcached and BIND 9 named), for the adapter tests (tests/adapters/) and the
real-runtime benchmarks (tools/benchmarks/), so both run the same servers the
same way. Every server listens on 127.0.0.1 only.

  free_port()                      a port free for TCP and UDP on 127.0.0.1
  wait_listening(port, proc)       True once a TCP connect to port succeeds
  memcached_cmd(memcached, port)   memcached's command line: -t 2, 127.0.0.1
  sanitizer_runtimes(adapter)      the sanitizer runtimes an adapter links
  flightrec_run_env(adapter, ...)  the environment for `flightrec run` with it
  NAMED, write_named_dir(d, port)  named's zone, configuration and queries
  dns_answers(port)                True when named answers www.example.test A
  cpu_seconds(pid)                 a process's user + system CPU time so far
  stats(values)                    median, min, max and spread of a series
"""
import os
import socket
import statistics
import subprocess
import time

NAMED = "/usr/sbin/named"

ZONE = """$TTL 300
@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 300
@ IN NS ns.example.test.
ns IN A 127.0.0.1
www IN A 127.0.0.2
mail IN MX 10 www.example.test.
"""

QUERIES = "www.example.test A\nns.example.test A\nexample.test NS\nmail.example.test MX\n"


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (named listens on
    both; memcached is given -U 0 and uses TCP only)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def wait_listening(port, proc, limit=10.0):
    """True once 127.0.0.1:@port accepts a TCP connection; False if @proc
    exits first or @limit seconds pass."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def memcached_cmd(memcached, port, memory_mb=64, connections=256):
    """memcached with 2 worker threads on 127.0.0.1:@port, TCP only; as
    root it runs as nobody (memcached refuses to run as root otherwise)."""
    cmd = [memcached, "-t", "2", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
           "-m", str(memory_mb), "-c", str(connections)]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    return cmd


def sanitizer_runtimes(adapter):
    """The sanitizer runtimes (libasan, libtsan, libubsan) that the adapter
    at path @adapter links, as paths: a sanitizer build's adapter needs them
    loaded before libc, so first in LD_PRELOAD. Empty for a normal build."""
    out = subprocess.run(["ldd", adapter], capture_output=True, text=True).stdout
    return [ln.split("=>")[1].split()[0] for ln in out.splitlines()
            if "=>" in ln and any(rt in ln for rt in ("libasan.so", "libtsan.so", "libubsan.so"))]


def flightrec_run_env(adapter, leak_check=True, **extra):
    """os.environ plus @extra, for `flightrec run` to find @adapter (its
    directory in FLIGHTREC_ADAPTER_DIR), without an LD_PRELOAD from outside
    (the preload is flightrec run's to set). In a sanitizer build the adapter
    links the sanitizer's runtime, which must be loaded before libc: it goes
    in LD_PRELOAD, after the adapter that `flightrec run` puts first (ASan is
    told not to insist on coming first); @leak_check False turns ASan's leak
    check off, for a program whose own allocations are not ours to judge."""
    env = dict(os.environ, FLIGHTREC_ADAPTER_DIR=os.path.dirname(os.path.abspath(adapter)),
               **extra)
    env.pop("LD_PRELOAD", None)
    rts = sanitizer_runtimes(adapter)
    if rts:
        env["LD_PRELOAD"] = ":".join(rts)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        if not leak_check:
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
    return env


def write_named_dir(d, port):
    """Writes named's files into directory @d: the example.test zone, a
    named.conf (authoritative only, 127.0.0.1:@port, no recursion, no
    controls, log in d/named.log) and dnsperf's query file d/queries (80
    queries). Returns the named.conf path."""
    with open(os.path.join(d, "example.test.zone"), "w") as f:
        f.write(ZONE)
    conf = os.path.join(d, "named.conf")
    with open(conf, "w") as f:
        f.write(f"""options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
}};
controls {{ }};
logging {{ channel f {{ file "{d}/named.log"; severity info; }}; category default {{ f; }}; }};
zone "example.test" {{ type primary; file "{d}/example.test.zone"; }};
""")
    with open(os.path.join(d, "queries"), "w") as f:
        f.write(QUERIES * 20)
    return conf


def dns_answers(port):
    """Does the server on 127.0.0.1:@port answer an A query for
    www.example.test with NOERROR and at least one answer?"""
    q = (b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
         b"\x03www\x07example\x04test\x00\x00\x01\x00\x01")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r, _ = s.recvfrom(512)
        return r[:2] == b"\x12\x34" and (r[3] & 0x0F) == 0 and r[7] > 0
    except OSError:
        return False
    finally:
        s.close()


def cpu_seconds(pid):
    """User + system CPU time, in seconds, that process @pid has used so far
    (all its threads; /proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(values):
    """{"median", "min", "max", "spread"} of @values; spread is
    (max - min) / median, None when the median is 0."""
    med = statistics.median(values)
    return {"median": round(med, 1), "min": round(min(values), 1), "max": round(max(values), 1),
            "spread": round((max(values) - min(values)) / med, 4) if med else None}
