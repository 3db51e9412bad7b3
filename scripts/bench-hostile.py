#!/usr/bin/env python3
"""Hostile-load benchmark (issue 14): the attacks of the hardening issue, run against the real daemon.

Starts a private Mosquitto on a free loopback port and `marquee serve --board x86_64-generic` on
127.0.0.1:0 (a dashboard password, an API token for the script's own uploads, a watched folder and
an unreachable camera configured), then runs each attack and prints what came back: the HTTP
status codes (a Counter), whether /healthz answered 200 within 1 s while it ran (polled every
0.25 s), the daemon's RSS before, at its peak (/proc/PID/status VmRSS sampled every 50 ms) and
after, and at the end its VmHWM and whether every accepted poster (HTTP 200 with an `id`) reached
MQTT. Two phases start a second daemon of their own (`rebinding`: open mode; `mjpeg-no-boundary`:
a camera on a local stream). Each phase ends with a HELD / FAILED verdict against its target; the
figures are to be read, not asserted: the script exits non-zero only when it fails itself.

Standard library only (plus the mosquitto, mosquitto_sub and mosquitto_pub binaries); loopback
only (127.0.0.0/8, source addresses 127.N.x.y for the login floods); every loop is bounded in
count and time. A default run takes about a minute against the debug build (2 cores).

    python3 scripts/bench-hostile.py [--binary PATH] [--only NAME[,NAME...]] [--json] [knobs...]
    python3 scripts/bench-hostile.py --list            # the phases and their targets

--binary defaults to target/release/marquee if it exists, else target/debug/marquee. --json prints
one JSON document on stdout (the human report then goes to stderr). Scale knobs: see --help.
Real posters come from ../shared/data/posters when present (read, never copied); otherwise the
daemon's drawn samples are used.
"""
import argparse
import collections
import contextlib
import errno
import hashlib
import http.server
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARD = "x86_64-generic"
PASSWORD = "bench-hostile-correct-horse-battery"
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
OUT = sys.stdout

PHASES = [
    ("logins-spread", "RSS grows < 100 MB; the right password from another address gets 303 right after"),
    ("logins-one", "at most MAX_FAILURES logins from one address reach the password check (401); the rest 429/503"),
    ("locked-bodies", "every login from a locked-out address gets 429 without its body being read; RSS grows < 50 MB"),
    ("slowloris", "/healthz answers 200 within 1 s throughout; an upload succeeds; the watched folder still works"),
    ("pixel-bombs", "peak RSS under the board's memory_budget_mb; the bombs answered 422 (pixel cap) or 503"),
    ("big-uploads", "most answered 503 before the body is read; peak RSS under the board's memory_budget_mb"),
    ("retained-50mb", "each upload's MQTT event within 2 s while a 50 MB retained message sits on the ingest topic"),
    ("rebinding", "foreign Host / Origin: 421 or 403 for an upload and a correction; own Host: 200 and 201"),
    ("redirect", "login with next=/\\t/evil.example or next=/\\n: 303 with Location /, never a 500"),
    ("log-forging", "no raw ESC byte and no forged line in the daemon's stderr; a 5 MB name logged truncated"),
    ("page-overflow", "GET /api/v1/history?page=18446744073709551615: 400"),
    ("mjpeg-no-boundary", "under 1 s of daemon CPU for 16 MB of stream without a boundary"),
    ("bad-jpegs", "422 for a truncated JPEG ending in FF D9 and for one whose header claims 8000x8000; RSS grows < 32 MB"),
    ("config-check", "`marquee config check` prints no password (camera URL, MQTT URL / password, metrics token)"),
]
TARGETS = dict(PHASES)


def say(*parts):
    print(*parts, file=OUT, flush=True)


def mb(kb):
    return None if kb is None else round(kb / 1024, 1)


def errname(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    if getattr(exc, "errno", None):
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loop_addr(block, i):
    """The i-th loopback source address of a phase's block: 127.block.x.y."""
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


# --------------------------------------------------------------------------- images

def png(width, height, rows, level=6):
    """An 8-bit RGB PNG from an iterable of raw rows (width*3 bytes each), compressed as it goes."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    comp = zlib.compressobj(level)
    idat = []
    for row in rows:
        idat.append(comp.compress(b"\x00" + row))
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def noise_png(width=96, height=128):
    """A small valid PNG, different every time (so every upload is a new poster id)."""
    return png(width, height, (os.urandom(width * 3) for _ in range(height)), level=1)


def zero_png(side):
    """A side x side PNG of black rows: tiny on the wire, side*side*3 bytes decoded."""
    row = bytes(side * 3)
    return png(side, side, (row for _ in range(side)), level=9)


def patch_sof(jpeg, width, height):
    """`jpeg` with its frame header (SOFn) claiming width x height; None if it has none."""
    data = bytearray(jpeg)
    i = 2
    sof = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    for _ in range(1000):
        if i + 4 > len(data) or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in sof:
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        if marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xDA:
            return None
        i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None


# --------------------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, error=None):
        self.status = None
        self.headers = {}
        self.body = b""
        self.sent = 0          # body bytes sent before the exchange ended
        self.elapsed = 0.0
        self.error = error

    @property
    def key(self):
        """What a status Counter counts: the status code, else why there was none."""
        return self.status if self.status is not None else (self.error or "no answer")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _parse_head(buf):
    """(status, headers, body offset) once the head is complete; interim 1xx heads are dropped."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return (0, {}, end + 4)
        if 100 <= status < 200:
            del buf[: end + 4]
            continue
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return (status, headers, end + 4)


def _complete(method, parsed, buf):
    status, headers, start = parsed
    if method == "HEAD" or status in (204, 304):
        return True
    if "content-length" in headers:
        try:
            return len(buf) - start >= int(headers["content-length"])
        except ValueError:
            return False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return buf.endswith(b"0\r\n\r\n")
    return False


def _dechunk(data):
    out, i = bytearray(), 0
    while i < len(data):
        j = data.find(b"\r\n", i)
        if j < 0:
            break
        try:
            size = int(data[i:j].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[j + 2: j + 2 + size]
        i = j + 2 + size + 2
    return bytes(out)


def request(addr, method, path, body=b"", headers=None, src=None, timeout=30.0, host=None,
            content_length=None, stop_on_answer=True):
    """One HTTP/1.1 exchange on a fresh connection, sending and reading at once (poll), so an
    answer that comes before the body is sent is seen, and the rest of the body is then not sent.
    Never raises for network trouble: the Resp says what happened."""
    r = Resp()
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if src:
            sock.bind((src, 0))
        sock.settimeout(max(0.05, timeout))
        sock.connect(addr)
        sock.setblocking(False)
        h = {"Host": host or f"{addr[0]}:{addr[1]}", "Connection": "close"}
        h.update(headers or {})
        if body or content_length is not None or method in ("POST", "PUT"):
            h.setdefault("Content-Length", str(len(body) if content_length is None else content_length))
        head = (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
                + "\r\n").encode("latin-1")
        out = [memoryview(head)] + ([memoryview(body)] if body else [])
        head_left = len(head)
        poller = select.poll()
        fd = sock.fileno()
        mask = select.POLLIN | select.POLLOUT
        poller.register(fd, mask)
        buf = bytearray()
        parsed = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                r.error = r.error or "timeout"
                break
            want = select.POLLIN | (select.POLLOUT if out else 0)
            if want != mask:
                poller.modify(fd, want)
                mask = want
            events = poller.poll(min(left, 0.5) * 1000)
            if not events:
                continue
            ev = events[0][1]
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    chunk = None
                except OSError as e:
                    r.error = errname(e)
                    break
                if chunk == b"":
                    break
                if chunk:
                    buf += chunk
                    if parsed is None:
                        parsed = _parse_head(buf)
                    if parsed is not None:
                        if stop_on_answer:
                            out = []
                        if _complete(method, parsed, buf):
                            break
                    continue
            if out and ev & select.POLLOUT:
                try:
                    n = sock.send(out[0][:262144])
                except BlockingIOError:
                    continue
                except OSError as e:
                    out = []
                    r.error = errname(e)  # keep reading: the answer may be waiting
                    continue
                if head_left > 0:
                    used = min(n, head_left)
                    head_left -= used
                    r.sent += n - used
                else:
                    r.sent += n
                out[0] = out[0][n:]
                if not len(out[0]):
                    out.pop(0)
        if parsed is not None:
            r.status, r.headers, start = parsed
            data = bytes(buf[start:])
            if "chunked" in r.headers.get("transfer-encoding", "").lower():
                data = _dechunk(data)
            r.body = data
            r.error = None
        elif r.error is None:
            r.error = "closed without an answer"
    except OSError as e:
        r.error = errname(e)
    finally:
        sock.close()
        r.elapsed = time.monotonic() - t0
    return r


def concurrent(n, fn, timeout):
    """fn(i) for i in range(n), each on its own thread, released together; bounded by timeout."""
    results = [None] * n
    barrier = threading.Barrier(n, timeout=30) if n > 1 else None

    def work(i):
        if barrier:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
        try:
            results[i] = fn(i)
        except Exception as e:  # a bug of the script: count it, do not hang
            results[i] = Resp(error=f"script error {type(e).__name__}: {e}")
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return [x if x is not None else Resp(error="still running at the phase's time limit") for x in results]


def counter_text(counter, width=None):
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    text = "{" + text + "}"
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


# --------------------------------------------------------------------------- processes

class Monitor:
    """Samples a process's VmRSS every `interval` on a thread (and its open fds when asked)."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.lock = threading.Lock()
        self.peak_kb = 0
        self.fd_peak = 0
        self.count_fds = False
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _field(self, name):
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(name):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def rss_kb(self):
        return self._field(b"VmRSS:")

    def hwm_kb(self):
        return self._field(b"VmHWM:")

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def cpu_s(self):
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            return None

    def _run(self):
        tick = 0
        while not self.stopped.wait(self.interval):
            kb = self.rss_kb()
            if kb is None:
                return
            with self.lock:
                self.peak_kb = max(self.peak_kb, kb)
            if self.count_fds and tick % 4 == 0:
                n = self.fds()
                if n is not None:
                    with self.lock:
                        self.fd_peak = max(self.fd_peak, n)
            tick += 1

    def reset(self):
        kb = self.rss_kb() or 0
        with self.lock:
            self.peak_kb = kb
            self.fd_peak = self.fds() or 0
        return kb

    def stop(self):
        self.stopped.set()


class DaemonDied(Exception):
    pass


class Daemon:
    def __init__(self, ctx, label, device_id, config_text):
        self.ctx = ctx
        self.label = label
        self.device_id = device_id
        self.dir = ctx.tmp / label
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "marquee.toml"
        self.config.write_text(config_text)
        self.db = self.dir / "marquee.db"
        self.ready = self.dir / "ready"
        self.stderr_path = self.dir / "stderr.log"
        self.proc = None
        self.addr = None
        self.mon = None
        self.starts = 0
        self.start_to_ready = None

    def start(self, timeout=180):
        if self.ready.exists():
            self.ready.unlink()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARQUEE__")}
        env["RUST_LOG"] = self.ctx.args.rust_log
        env.setdefault("MARQUEE_MODEL_DIR", str(ROOT / "models"))
        err = open(self.stderr_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.ctx.binary, "serve", "--board", BOARD, "--config", str(self.config), "--listen",
             "127.0.0.1:0", "--db", str(self.db), "--ready-file", str(self.ready)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.dir, env=env,
            start_new_session=True)
        err.close()
        self.ctx.children.append(self.proc)
        self.starts += 1
        end = t0 + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise DaemonDied(f"{self.label} daemon exited with {self.proc.returncode} before it was ready:\n"
                                 + self.stderr_tail())
            if time.monotonic() > end:
                raise DaemonDied(f"{self.label} daemon not ready within {timeout} s:\n" + self.stderr_tail())
            time.sleep(0.05)
        self.start_to_ready = time.monotonic() - t0
        host, port = self.ready.read_text().strip().rsplit(":", 1)
        self.addr = (host, int(port))
        self.mon = Monitor(self.proc.pid)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, n=15):
        try:
            lines = self.stderr_path.read_bytes().splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join("    " + l.decode("utf-8", "replace")[:400] for l in lines)

    def stop(self, timeout=30):
        if self.mon:
            self.mon.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def wait_subscribed(self, timeout=30):
        """Until /metrics says the MQTT inputs' subscriptions are confirmed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = request(self.addr, "GET", "/metrics", timeout=3)
            if r.status == 200 and re.search(rb"^marquee_mqtt_inputs_subscribed 1$", r.body, re.M):
                return True
            if not self.alive():
                return False
            time.sleep(0.2)
        return False


class Events:
    """mosquitto_sub -v on every device's poster (and availability) topic; ids with arrival times."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lock = threading.Lock()
        self.seen = {}          # poster id -> monotonic time of its first event
        self.topics = collections.Counter()
        self.available = {}     # device -> last payload
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(ctx.broker_port), "-q", "1", "-v",
             "-t", "marquee/+/poster", "-t", "marquee/+/available"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        ctx.children.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            topic, _, payload = line.rstrip(b"\n").partition(b" ")
            topic = topic.decode("utf-8", "replace")
            with self.lock:
                self.topics[topic] += 1
                if topic.endswith("/available"):
                    self.available[topic.split("/")[1]] = payload.decode("utf-8", "replace")
                    continue
            try:
                pid = json.loads(payload).get("id")
            except (ValueError, AttributeError):
                continue
            if pid:
                with self.lock:
                    self.seen.setdefault(pid, now)

    def when(self, pid):
        with self.lock:
            return self.seen.get(pid)

    def wait(self, pids, timeout):
        end = time.monotonic() + timeout
        pids = set(pids)
        while True:
            with self.lock:
                missing = {p for p in pids if p not in self.seen}
            if not missing or time.monotonic() > end:
                return missing
            time.sleep(0.05)

    def wait_online(self, device, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.available.get(device) == "online":
                    return True
            time.sleep(0.05)
        return False


class HealthPoller:
    """GET /healthz every `interval` with a 1 s limit, on a thread, while a phase runs."""

    def __init__(self, addr, interval=0.25, limit=1.0):
        self.addr, self.interval, self.limit = addr, interval, limit
        self.polls = 0
        self.ok = 0
        self.worst = 0.0
        self.failures = collections.Counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            r = request(self.addr, "GET", "/healthz", timeout=self.limit)
            self.polls += 1
            self.worst = max(self.worst, r.elapsed)
            if r.status == 200 and r.elapsed <= self.limit:
                self.ok += 1
            else:
                self.failures[r.key] += 1
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.thread.join(3)
        return {"polls": self.polls, "ok": self.ok, "held": self.polls > 0 and self.ok == self.polls,
                "worst_ms": round(self.worst * 1000, 1), "failures": {str(k): v for k, v in self.failures.items()}}


def mosquitto_pub(ctx, topic, *, message=None, stdin_path=None, retain=False, null=False, timeout=120):
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(ctx.broker_port), "-q", "1", "-t", topic]
    if retain:
        cmd.append("-r")
    if null:
        cmd.append("-n")
    elif stdin_path is not None:
        cmd.append("-s")
    else:
        cmd += ["-m", message]
    stdin = open(stdin_path, "rb") if stdin_path is not None else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        ctx.children.append(p)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            return (None, "timed out")
        return (p.returncode, out.decode("utf-8", "replace").strip())
    finally:
        if stdin_path is not None:
            stdin.close()


# --------------------------------------------------------------------------- phases

class Phase:
    def __init__(self, index, name):
        self.index = index
        self.name = name
        self.target = TARGETS[name]
        self.statuses = collections.Counter()
        self.figures = collections.OrderedDict()
        self.checks = []
        self.notes = []
        self.health = None
        self.rss = None
        self.verdict = None
        self.seconds = None

    def count(self, resps):
        for r in resps:
            self.statuses[r.key] += 1

    def fig(self, key, value, show=None):
        self.figures[key] = value
        say(f"   {key}: {show if show is not None else value}")

    def check(self, ok, text):
        self.checks.append((bool(ok), text))
        return bool(ok)

    def note(self, text):
        self.notes.append(text)
        say(f"   note: {text}")

    def as_json(self):
        return {"phase": self.name, "target": self.target, "verdict": self.verdict,
                "statuses": {str(k): v for k, v in self.statuses.items()}, "healthz": self.health,
                "rss_mb": self.rss, "figures": self.figures, "seconds": self.seconds,
                "checks": [{"ok": ok, "check": text} for ok, text in self.checks], "notes": self.notes}


@contextlib.contextmanager
def measured(ctx, ph, d, fds=False):
    """RSS before / peak / after and /healthz polling around an attack on daemon `d`."""
    before = d.mon.reset()
    d.mon.count_fds = fds
    poller = HealthPoller(d.addr)
    try:
        yield
    finally:
        health = poller.stop()
        time.sleep(ctx.args.settle)
        after = d.mon.rss_kb()
        with d.mon.lock:
            peak = max(d.mon.peak_kb, before)
            fd_peak = d.mon.fd_peak
        d.mon.count_fds = False
        ph.health = health
        ph.rss = {"before": mb(before), "peak": mb(peak), "after": mb(after),
                  "growth": mb(peak - before) if before else None}
        if fds:
            ph.fig("daemon open fds at peak", fd_peak)
        if not d.alive():
            ph.check(False, f"the {d.label} daemon stayed up (it exited with {d.proc.returncode})")


def login(d, password, src=None, next_path="/", timeout=30):
    body = urllib.parse.urlencode({"password": password, "next": next_path}).encode()
    return request(d.addr, "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"},
                   src=src, timeout=timeout)


def ph_logins_spread(ctx, ph):
    a, d = ctx.args, ctx.main
    n, k = a.logins, a.addresses
    srcs = [loop_addr(1, i) for i in range(k)]
    ph.fig("sent", f"{n} concurrent wrong logins from {k} addresses ({srcs[0]} .. {srcs[-1]})")
    with measured(ctx, ph, d):
        t0 = time.monotonic()
        rs = concurrent(n, lambda i: login(d, f"wrong-{i}", src=srcs[i % k]), timeout=120)
        ph.count(rs)
        ph.fig("flood answered in", f"{time.monotonic() - t0:.2f} s")
        src = loop_addr(1, 1000)
        right = login(d, PASSWORD, src=src)
        ph.fig("right password right after", {"from": src, "status": right.key, "seconds": round(right.elapsed, 3)},
               f"from {src}: {right.key} in {right.elapsed:.2f} s")
    ph.check(right.status == 303, f"the right password got 303 (got {right.key})")
    ph.check(ph.rss["growth"] is not None and ph.rss["growth"] < 100, f"RSS grew {ph.rss['growth']} MB (< 100)")


def ph_logins_one(ctx, ph):
    a, d = ctx.args, ctx.main
    src = loop_addr(2, 0)
    ph.fig("sent", f"{a.logins} concurrent wrong logins from {src}")
    with measured(ctx, ph, d):
        rs = concurrent(a.logins, lambda i: login(d, f"wrong-{i}", src=src), timeout=120)
        ph.count(rs)
    reached = ph.statuses.get(401, 0)
    ph.fig("reached the password check (401)", reached)
    ph.fig("turned away (429 locked / 503 busy)", f"{ph.statuses.get(429, 0)} / {ph.statuses.get(503, 0)}")
    retry = collections.Counter(r.headers.get("retry-after") for r in rs if r.status in (429, 503))
    ph.fig("Retry-After seen", counter_text(retry))
    ph.check(reached <= ctx.max_failures, f"{reached} reached the check (at most MAX_FAILURES = {ctx.max_failures})")
    odd = set(ph.statuses) - {401, 429, 503}
    ph.check(not odd, f"only 401 / 429 / 503 answers (others: {sorted(map(str, odd)) or 'none'})")


def ph_locked_bodies(ctx, ph):
    a, d = ctx.args, ctx.main
    src = loop_addr(3, 0)
    seen = []
    for i in range(3 * ctx.max_failures):
        r = login(d, f"wrong-lock-{i}", src=src)
        seen.append(r.key)
        if r.status == 429:
            break
    ph.fig("locking the address out", f"{src}: {seen}")
    size = int(a.locked_body_mb * 1_000_000)
    body = b"password=" + b"x" * (size - 9)
    n, half = a.locked_logins, a.locked_logins // 2
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    ph.fig("sent", f"{n} concurrent logins from {src} declaring {size} bytes: {half} announce only, "
           f"{n - half} send the body")

    def one(i):
        if i < half:
            return request(d.addr, "POST", "/login", b"", hdrs, src=src, content_length=size, timeout=30)
        return request(d.addr, "POST", "/login", body, hdrs, src=src, timeout=60)
    with measured(ctx, ph, d):
        rs = concurrent(n, one, timeout=120)
        ph.count(rs)
    sent = [r.sent for r in rs[half:]]
    if sent:
        ph.fig("body bytes sent before the answer (senders)",
               {"median": int(statistics.median(sent)), "max": max(sent), "of": size},
               f"median {statistics.median(sent) / 1e6:.2f} MB, max {max(sent) / 1e6:.2f} MB of {size / 1e6:.1f} MB "
               "(what the kernel's socket buffers took; the daemon reads none of it if it answers first)")
    ph.fig("answer time", f"max {max(r.elapsed for r in rs):.2f} s")
    ph.check(seen and seen[-1] == 429, "the address was locked out")
    ph.check(ph.statuses.get(429, 0) == n, f"all {n} got 429 ({counter_text(ph.statuses)})")
    ph.check(ph.rss["growth"] is not None and ph.rss["growth"] < 50, f"RSS grew {ph.rss['growth']} MB (< 50)")


def ph_slowloris(ctx, ph):
    a, d = ctx.args, ctx.main
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ph.fig("this script's open-file limit", soft)
    socks, opened_at, closed_at, answered = [], {}, {}, collections.Counter()
    close_kind = collections.Counter()
    failures = collections.Counter()
    upload = {}
    watch_name = f"slowloris-{os.getpid()}.png"
    watch_bytes = noise_png()
    watch_id = hashlib.sha256(watch_bytes).hexdigest()
    watch_t = [None]

    def sweep():
        """Which of our half-requests the daemon has closed (or answered) since the last sweep."""
        poller = select.poll()
        live = {s.fileno(): s for s in socks if s.fileno() not in closed_at}
        for fd in live:
            poller.register(fd, select.POLLIN)
        for fd, ev in poller.poll(0):
            s = live[fd]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                data, why = b"", errname(e)
            else:
                why = "closed"
            if data:
                answered[data.split(b"\r\n", 1)[0].decode("latin-1")[:40]] += 1
            closed_at[fd] = time.monotonic()
            if not data:
                close_kind[why] += 1

    def trickle():
        for s in socks:
            if s.fileno() in closed_at:
                continue
            try:
                s.send(b"X-Slow: 1\r\n")
            except BlockingIOError:
                pass
            except OSError:
                closed_at[s.fileno()] = time.monotonic()

    try:
        with measured(ctx, ph, d, fds=True):
            t0 = time.monotonic()
            for i in range(a.slow_conns):
                if time.monotonic() - t0 > 30:
                    failures["not tried (30 s opening limit)"] += a.slow_conns - i
                    break
                s = socket.socket()
                s.settimeout(1.0)
                try:
                    s.connect(d.addr)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                except OSError as e:
                    failures[errname(e)] += 1
                    s.close()
                    continue
                s.setblocking(False)
                socks.append(s)
                opened_at[s.fileno()] = time.monotonic()
            opened = time.monotonic() - t0
            ph.fig("half-requests opened", f"{len(socks)} of {a.slow_conns} in {opened:.1f} s"
                   + (f"; failed: {counter_text(failures)}" if failures else ""))

            def do_upload():
                r = ctx.upload(d, noise_png(), "image/png", ph.name, timeout=a.hold + 30)
                upload["r"] = r
            up_thread = threading.Thread(target=do_upload, daemon=True)
            hold_end = time.monotonic() + a.hold
            next_trickle = time.monotonic() + 5
            started_upload = dropped_file = False
            while time.monotonic() < hold_end:
                elapsed = a.hold - (hold_end - time.monotonic())
                if not dropped_file and elapsed >= 1:
                    tmpf = ctx.tmp / (watch_name + ".part")
                    tmpf.write_bytes(watch_bytes)
                    os.rename(tmpf, ctx.inbox / watch_name)
                    watch_t[0] = time.monotonic()
                    dropped_file = True
                if not started_upload and elapsed >= 2:
                    up_thread.start()
                    started_upload = True
                if time.monotonic() >= next_trickle:
                    trickle()
                    next_trickle += 5
                sweep()
                time.sleep(0.5)
            still_open = sum(1 for s in socks if s.fileno() not in closed_at)
            if started_upload:
                up_thread.join(30)
        lifetimes = sorted(closed_at[fd] - opened_at[fd] for fd in closed_at if fd in opened_at)
        if lifetimes:
            ph.fig("closed by the daemon during the hold",
                   {"count": len(lifetimes), "within_2s": sum(1 for t in lifetimes if t < 2),
                    "median_s": round(statistics.median(lifetimes), 2), "max_s": round(lifetimes[-1], 2)},
                   f"{len(lifetimes)} (within 2 s of opening: {sum(1 for t in lifetimes if t < 2)}; "
                   f"lifetime median {statistics.median(lifetimes):.1f} s, max {lifetimes[-1]:.1f} s)")
        else:
            ph.fig("closed by the daemon during the hold", 0)
        if close_kind:
            ph.fig("how they ended", counter_text(close_kind))
        if answered:
            ph.fig("answers the half-requests got", counter_text(answered))
        ph.fig(f"still open after the {a.hold} s hold", still_open)
        r = upload.get("r")
        if r is not None:
            ph.count([r])
        ph.fig("upload during the attack",
               {"status": r.key if r else "not finished", "seconds": round(r.elapsed, 2) if r else None},
               f"{r.key} in {r.elapsed:.2f} s" if r else "did not finish")
        arrived = ctx.events.when(watch_id)
        if arrived is None:
            ctx.events.wait([watch_id], 15)
            arrived = ctx.events.when(watch_id)
        watch_s = round(arrived - watch_t[0], 2) if arrived and watch_t[0] else None
        ph.fig("watched-folder file -> MQTT event", watch_s, f"{watch_s} s" if watch_s is not None
               else "no event within 15 s after the hold")
        ctx.accepted.setdefault(watch_id, ph.name)
        ph.check(ph.health["held"], f"/healthz 200 within 1 s in {ph.health['ok']}/{ph.health['polls']} polls "
                 f"(worst {ph.health['worst_ms']} ms)")
        ph.check(r is not None and r.status == 200, f"the upload got 200 ({r.key if r else 'no answer'})")
        ph.check(watch_s is not None, "the watched folder's file reached MQTT")
    finally:
        for s in socks:
            s.close()


def ph_pixel_bombs(ctx, ph):
    a, d = ctx.args, ctx.main
    side = a.bomb_side
    bomb = zero_png(side)
    ph.fig("bomb", f"{side}x{side} RGB PNG of zero rows: {len(bomb)} bytes on the wire, "
           f"{side * side / 1e6:.1f} MP = {side * side * 3 / MIB:.0f} MiB decoded")
    budget = ctx.budget_mb
    with measured(ctx, ph, d):
        rs = concurrent(a.bombs, lambda i: ctx.upload(d, bomb, "image/png", ph.name), timeout=180)
        ph.count(rs)
        with d.mon.lock:
            peak1 = mb(d.mon.peak_kb)
        ph.fig(f"{a.bombs} concurrent bombs", counter_text(ph.statuses))
        ph.fig("peak RSS during the bombs (MB)", peak1)
        under = collections.Counter()
        if a.under_cap_side:
            s2 = a.under_cap_side
            img = zero_png(s2)
            rs2 = concurrent(a.under_cap_uploads, lambda i: ctx.upload(d, img, "image/png", ph.name), timeout=240)
            under.update(r.key for r in rs2)
            ph.fig(f"then {a.under_cap_uploads} concurrent {s2}x{s2} ({s2 * s2 / 1e6:.1f} MP, under the pixel cap)",
                   counter_text(under))
            slow = max((r.elapsed for r in rs2), default=0)
            ph.fig("slowest of those", f"{slow:.1f} s")
    ph.fig("memory budget (MB)", budget)
    ph.check(ph.rss["peak"] is not None and ph.rss["peak"] < budget,
             f"peak RSS {ph.rss['peak']} MB < memory_budget_mb {budget}")
    odd = set(ph.statuses) - {422, 503}
    ph.check(not odd, f"the bombs got only 422 / 503 ({counter_text(ph.statuses)})")
    if a.under_cap_side:
        odd2 = set(under) - {200, 422, 503}
        ph.check(not odd2, f"the under-cap images got 200 / 422 / 503 ({counter_text(under)})")
        ph.statuses.update({f"under-cap {k}": v for k, v in under.items()})


def ph_big_uploads(ctx, ph):
    a, d = ctx.args, ctx.main
    size = int(a.big_mb * 1_000_000)
    body = b"\xff\xd8" + os.urandom(size - 2)
    ph.fig("sent", f"{a.big} concurrent uploads of {size / 1e6:.1f} MB (JPEG SOI + random bytes)")
    with measured(ctx, ph, d):
        rs = concurrent(a.big, lambda i: ctx.upload(d, body, "image/jpeg", ph.name, timeout=120), timeout=180)
        ph.count(rs)
    del body
    refused = [r for r in rs if r.status == 503]
    if refused:
        ph.fig("body bytes sent before the 503 (median / max)",
               {"median": int(statistics.median(r.sent for r in refused)), "max": max(r.sent for r in refused)},
               f"{statistics.median(r.sent for r in refused) / 1e6:.2f} / {max(r.sent for r in refused) / 1e6:.2f} MB "
               f"of {size / 1e6:.1f} MB")
        ph.fig("503 answer time (max)", f"{max(r.elapsed for r in refused):.2f} s")
    read = [r for r in rs if r.status != 503]
    if read:
        ph.fig("others: answer time (max)", f"{max(r.elapsed for r in read):.2f} s")
    budget = ctx.budget_mb
    ph.check(len(refused) * 2 > len(rs), f"most got 503 ({len(refused)} of {len(rs)})")
    ph.check(ph.rss["peak"] is not None and ph.rss["peak"] < budget,
             f"peak RSS {ph.rss['peak']} MB < memory_budget_mb {budget}")


def ph_retained(ctx, ph):
    a, d = ctx.args, ctx.main
    topic = f"marquee/{d.device_id}/ingest"
    path = ctx.tmp / "retained.bin"
    size = int(a.retained_mb * MIB)
    with open(path, "wb") as f:
        f.write(b"\xff\xd8")
        left = size - 2
        while left > 0:
            f.write(os.urandom(min(MIB, left)))
            left -= MIB
    lat = []
    with measured(ctx, ph, d):
        t0 = time.monotonic()
        rc, out = mosquitto_pub(ctx, topic, stdin_path=path, retain=True)
        ph.fig("retained publish", {"bytes": size, "exit": rc, "seconds": round(time.monotonic() - t0, 2)},
               f"{size / MIB:.0f} MiB on {topic}: mosquitto_pub exit {rc} in {time.monotonic() - t0:.1f} s"
               + (f" ({out[:200]})" if out else ""))
        path.unlink()
        time.sleep(1.0)
        for i in range(a.retained_uploads):
            t = time.monotonic()
            r = ctx.upload(d, noise_png(), "image/png", ph.name)
            ph.count([r])
            pid = (r.json() or {}).get("id") if r.status == 200 else None
            if pid:
                ctx.events.wait([pid], 10)
                seen = ctx.events.when(pid)
                lat.append(round(seen - t, 3) if seen else None)
            else:
                lat.append(None)
        ph.fig("upload -> MQTT event (s)", lat)
        rc2, out2 = mosquitto_pub(ctx, topic, retain=True, null=True, timeout=30)
        ph.fig("retained message cleared", f"exit {rc2}" + (f" ({out2[:200]})" if out2 else ""))
        m = request(d.addr, "GET", "/metrics", timeout=5)
        wanted = re.compile(rb"retained|oversize|ingest_dropped|inputs_subscribed|broker_connected|"
                            rb"classify_errors_total\{")
        lines = [l.decode() for l in m.body.splitlines() if not l.startswith(b"#") and wanted.search(l)]
        ph.fig("/metrics", lines, "\n      " + "\n      ".join(lines or [f"(status {m.key})"]))
        if not any("mqtt_retained" in l or "mqtt_oversize" in l for l in lines):
            ph.note("no mqtt_retained / mqtt_oversize row in marquee_classify_errors_total: the daemon never "
                    "received the message (the broker keeps it from a client whose maximum packet size is smaller)")
    ph.check(rc == 0, "the broker took the retained message")
    ph.check(len(lat) == a.retained_uploads and all(x is not None and x <= 2.0 for x in lat),
             f"every event within 2 s ({lat})")


def ph_rebinding(ctx, ph):
    cfg = f'device_id = "bench-open"\n[mqtt]\nurl = "mqtt://127.0.0.1:{ctx.broker_port}"\n'
    d = Daemon(ctx, "open", "bench-open", cfg)
    d.start()
    ph.fig("second daemon (open mode, no password)", f"{d.addr[0]}:{d.addr[1]}, ready in {d.start_to_ready:.1f} s")
    evil = {"Origin": "http://attacker.example"}
    genre = ctx.genre
    try:
        with measured(ctx, ph, d):
            own = request(d.addr, "POST", "/api/v1/posters", noise_png(), {"Content-Type": "image/png"})
            ctx.accept(own, ph.name)
            pid = (own.json() or {}).get("id") or "0" * 64
            fb = json.dumps({"genres": [genre]}).encode()
            up_evil = request(d.addr, "POST", "/api/v1/posters", noise_png(),
                              {"Content-Type": "image/png", **evil}, host="attacker.example")
            fb_evil = request(d.addr, "POST", f"/api/v1/posters/{pid}/feedback", fb,
                              {"Content-Type": "application/json", **evil}, host="attacker.example")
            up_origin = request(d.addr, "POST", "/api/v1/posters", noise_png(), {"Content-Type": "image/png", **evil})
            fb_own = request(d.addr, "POST", f"/api/v1/posters/{pid}/feedback", fb, {"Content-Type": "application/json"})
            ctx.accept(up_origin, ph.name)
            for r in (own, up_evil, fb_evil, up_origin, fb_own):
                ph.count([r])
            rows = [("upload, own Host", own), ("upload, Host + Origin attacker.example", up_evil),
                    ("correction, Host + Origin attacker.example", fb_evil),
                    ("upload, own Host + Origin attacker.example", up_origin), ("correction, own Host", fb_own)]
            for label, r in rows:
                ph.fig(label, r.key)
            if own.status == 200:
                missing = ctx.events.wait([pid], 15)
                ph.fig("own upload's MQTT event", "arrived" if not missing else "not within 15 s")
        ph.check(own.status == 200, f"upload with its own Host: 200 ({own.key})")
        ph.check(up_evil.status in (421, 403), f"upload for attacker.example: 421/403 ({up_evil.key})")
        ph.check(fb_evil.status in (421, 403), f"correction for attacker.example: 421/403 ({fb_evil.key})")
        ph.check(up_origin.status == 403, f"own Host, foreign Origin: 403 ({up_origin.key})")
        ph.check(fb_own.status in (200, 201), f"correction with its own Host: 200/201 ({fb_own.key})")
    finally:
        hwm = d.mon.hwm_kb() if d.mon else None
        d.stop()
        ph.fig("second daemon's VmHWM (MB)", mb(hwm))


def ph_redirect(ctx, ph):
    d = ctx.main
    cases = ["/\t/evil.example", "/\n", "/\t\t/evil.example", "/history?page=2"]
    results = []
    with measured(ctx, ph, d):
        for i, nxt in enumerate(cases):
            r = login(d, PASSWORD, src=loop_addr(9, i), next_path=nxt)
            ph.count([r])
            loc = r.headers.get("location")
            results.append((nxt, r, loc))
            ph.fig(f"next={nxt!r}", {"status": r.key, "location": loc}, f"{r.key}, Location {loc!r}")
    for nxt, r, loc in results[:3]:
        ph.check(r.status == 303 and loc == "/", f"next={nxt!r}: 303 to '/' (got {r.key}, {loc!r})")
    nxt, r, loc = results[3]
    ph.check(r.status == 303 and loc == nxt, f"a plain local path still works: next={nxt!r} -> {loc!r}")


def ph_log_forging(ctx, ph):
    a, d = ctx.args, ctx.main
    marker = "FORGED-LOG-LINE"
    forged = f"door\n2030-01-01T00:00:00.000000Z  INFO marquee: {marker} camera\x1b[31m red\x1b]0;pwned\x07"
    topic = f"marquee/{d.device_id}/capture"
    big = ctx.tmp / "big-name.txt"
    big.write_bytes(b"N" * int(a.long_name_mb * 1_000_000))
    with measured(ctx, ph, d):
        rcs = [mosquitto_pub(ctx, topic, message=forged)[0],
               mosquitto_pub(ctx, topic, message=json.dumps({"camera": forged}))[0],
               mosquitto_pub(ctx, topic, stdin_path=big)[0]]
        ph.fig("capture requests published (plain, JSON, 5 MB name)", f"exit codes {rcs}")
        fname = f"poster\n2030-01-01T00:00:00.000000Z  WARN marquee: {marker} watched\x1b[31m.jpg"
        (ctx.inbox / fname).write_bytes(b"this is not an image\n")
        ph.fig("watched file dropped", repr(fname))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            data = d.stderr_path.read_bytes()
            if data.count(marker.encode()) >= 3 and b"NNNNNNNNNN" in data:
                time.sleep(0.5)
                break
            time.sleep(0.25)
    big.unlink()
    data = d.stderr_path.read_bytes()
    lines = data.split(b"\n")
    forged_lines = [l for l in lines if l.startswith(marker.encode()) or l.startswith(b"2030-01-01")]
    longest = max((len(l) for l in lines), default=0)
    ph.fig("daemon stderr", f"{len(data)} bytes, {len(lines)} lines")
    ph.fig("raw ESC bytes (0x1b)", data.count(b"\x1b"))
    ph.fig("forged lines (a line starting with the injected text)", len(forged_lines))
    ph.fig("lines naming the injected text (escaped)", sum(1 for l in lines if marker.encode() in l))
    ph.fig("longest line (bytes)", longest)
    ph.fig("5 MB name logged", "yes" if b"NNNNNNNNNN" in data else "no (not found in stderr)")
    ph.check(data.count(b"\x1b") == 0, "no raw ESC byte in stderr")
    ph.check(not forged_lines, "no forged line")
    ph.check(longest < 8192, f"the longest line is {longest} bytes (< 8192: the 5 MB name was cut)")
    ph.check(sum(1 for l in lines if marker.encode() in l) >= 1,
             "the hostile names were logged at all (escaped), so the check means something")


def ph_page_overflow(ctx, ph):
    d = ctx.main
    auth = {"Authorization": f"Bearer {ctx.token}"}
    cases = ["/api/v1/history?page=18446744073709551615", "/api/v1/history?page=18446744073709551616",
             "/api/v1/history?page=9223372036854775807", "/api/v1/history?per_page=18446744073709551615",
             "/history?page=18446744073709551615"]
    rs = []
    with measured(ctx, ph, d):
        for path in cases:
            r = request(d.addr, "GET", path, headers=auth)
            rs.append(r)
            ph.count([r])
            ph.fig(path, f"{r.key} in {r.elapsed * 1000:.0f} ms")
    ph.check(rs[0].status == 400, f"page=2^64-1: 400 ({rs[0].key})")
    bad = [c for c, r in zip(cases, rs) if r.status is None or r.status >= 500]
    ph.check(not bad, f"no 5xx / dropped connection on any variant ({bad or 'none'})")


class MjpegServer:
    """A camera that sends one good frame every 2 s until armed, then 16 MB without a boundary."""

    def __init__(self, jpeg, filler_bytes):
        self.arming = threading.Event()
        self.go = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.used = False
        self.requests = 0
        self.filler_sent = 0
        self.filler_seconds = None
        block = bytearray(os.urandom(65536))
        block = bytes(block).replace(b"-", b".").replace(b"\r", b".")
        outer = self
        part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode()
                + b"\r\n\r\n" + jpeg + b"\r\n")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.requests += 1
                    used = outer.used
                if used:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    end = time.monotonic() + 300
                    while not outer.arming.is_set():
                        if outer.stop.is_set() or time.monotonic() > end:
                            return
                        self.wfile.write(part)
                        self.wfile.flush()
                        outer.arming.wait(2.0)
                    if not outer.go.wait(60):
                        return
                    with outer.lock:
                        if outer.used:
                            return
                        outer.used = True
                    t0 = time.monotonic()
                    left = filler_bytes
                    while left > 0 and not outer.stop.is_set():
                        n = min(len(block), left)
                        self.wfile.write(block[:n])
                        outer.filler_sent += n
                        left -= n
                    self.wfile.flush()
                    outer.filler_seconds = time.monotonic() - t0
                except OSError:
                    pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def close(self):
        self.stop.set()
        self.arming.set()
        self.server.shutdown()
        self.server.server_close()


def ph_mjpeg(ctx, ph):
    a = ctx.args
    jpeg = ctx.jpeg()
    if jpeg is None:
        ph.verdict = "SKIPPED"
        ph.note("no JPEG for the camera's first frame (../shared/data/posters absent, /samples/0.jpg unanswered)")
        return
    filler = int(a.mjpeg_mb * MIB)
    cam = MjpegServer(jpeg, filler)
    d = None
    try:
        cfg = (f'device_id = "bench-cam"\n[mqtt]\nurl = "mqtt://127.0.0.1:{ctx.broker_port}"\n'
               f'[dashboard]\npassword_hash = "{ctx.pw_hash}"\napi_token_sha256 = ["{ctx.token_sha}"]\n'
               f'[[camera]]\nname = "bench"\nsource = "mjpeg+http://127.0.0.1:{cam.port}/video"\n'
               'mode = "on_demand"\n')
        d = Daemon(ctx, "camera", "bench-cam", cfg)
        d.start()
        ph.fig("second daemon with a camera on the stream",
               f"{d.addr[0]}:{d.addr[1]}, ready in {d.start_to_ready:.1f} s; camera at 127.0.0.1:{cam.port}/video")
        auth = {"Authorization": f"Bearer {ctx.token}"}
        online = False
        end = time.monotonic() + 30
        while time.monotonic() < end:
            r = request(d.addr, "GET", "/api/v1/cameras", headers=auth, timeout=3)
            cams = (r.json() or {}).get("cameras") or []
            if cams and cams[0].get("online"):
                online = True
                break
            time.sleep(0.25)
        ph.fig("camera online (first good frame)", online)
        answer = {}
        with measured(ctx, ph, d):
            cam.arming.set()
            time.sleep(0.6)

            def capture():
                r = request(d.addr, "POST", "/api/v1/capture?camera=bench", b"", auth, timeout=60)
                answer["cpu"] = d.mon.cpu_s()
                answer["t"] = time.monotonic()
                answer["r"] = r
            t = threading.Thread(target=capture, daemon=True)
            t.start()
            time.sleep(0.3)
            cpu0 = d.mon.cpu_s()
            t0 = time.monotonic()
            cam.go.set()
            t.join(70)
            time.sleep(1.0)
            cpu_later = d.mon.cpu_s()
        r = answer.get("r")
        if r is not None:
            ph.count([r])
            ctx.accept(r, ph.name)
        cpu = round(answer["cpu"] - cpu0, 3) if r is not None and cpu0 is not None else None
        wall = round(answer["t"] - t0, 3) if r is not None else None
        ph.fig("capture answer", f"{r.key}: {(r.json() or {}).get('error', r.body[:160])!r}" if r else "none in 70 s")
        ph.fig("stream sent without a boundary", f"{cam.filler_sent / MIB:.1f} MiB in "
               f"{cam.filler_seconds if cam.filler_seconds is None else round(cam.filler_seconds, 2)} s")
        ph.fig("daemon CPU from the stream's start to the capture's answer (s)", cpu)
        ph.fig("wall time to the answer (s)", wall)
        if cpu_later is not None and answer.get("cpu") is not None:
            ph.fig("daemon CPU in the second after the answer (s)", round(cpu_later - answer["cpu"], 3))
        ph.fig("requests the camera made", cam.requests)
        ph.check(online, "the camera came online on a good frame first")
        ph.check(r is not None, "the capture was answered")
        ph.check(cpu is not None and cpu < 1.0, f"daemon CPU {cpu} s for {a.mjpeg_mb:g} MiB (< 1 s)")
    finally:
        if d is not None:
            hwm = d.mon.hwm_kb() if d.mon else None
            d.stop()
            ph.fig("second daemon's VmHWM (MB)", mb(hwm))
        cam.close()


def ph_bad_jpegs(ctx, ph):
    a, d = ctx.args, ctx.main
    jpeg = ctx.jpeg()
    if jpeg is None:
        ph.verdict = "SKIPPED"
        ph.note("no JPEG to start from (../shared/data/posters absent, /samples/0.jpg unanswered)")
        return
    variants = [("truncated half + FF D9", jpeg[: len(jpeg) // 2] + b"\xff\xd9")]
    big = patch_sof(jpeg, 8000, 8000)
    if big is None:
        ph.note("the source JPEG has no frame header before its scan: the 8000x8000 variant is left out")
    else:
        variants.append(("header claims 8000x8000", big))
    under = patch_sof(jpeg, 4000, 4000)
    if under is not None:
        variants.append(("header claims 4000x4000 (under the pixel cap)", under))
    ph.fig("source JPEG", f"{len(jpeg)} bytes ({ctx.jpeg_origin})")
    per = {}
    with measured(ctx, ph, d):
        for label, body in variants:
            rs = concurrent(a.bad_jpegs, lambda i: ctx.upload(d, body, "image/jpeg", ph.name), timeout=120)
            ph.count(rs)
            c = collections.Counter(r.key for r in rs)
            per[label] = c
            msg = next(((r.json() or {}).get("error") for r in rs if r.status == 422), None)
            ph.fig(f"{a.bad_jpegs} x {label}", counter_text(c) + (f"  ({msg[:150]})" if msg else ""))
    for label, c in per.items():
        ph.check(set(c) == {422}, f"{label}: all 422 ({counter_text(c)})")
    ph.check(ph.rss["growth"] is not None and ph.rss["growth"] < 32, f"RSS grew {ph.rss['growth']} MB (< 32)")


def ph_config_check(ctx, ph):
    secrets = {"camera": "CamSecret-8231", "mqtt_url": "UrlSecret-4471", "mqtt_password": "MqttSecret-9902",
               "metrics_token": "MetricsSecret-5517"}
    base = 'device_id = "bench-check"\n'
    cam = f'[[camera]]\nname = "door"\nsource = "mjpeg+http://admin:{secrets["camera"]}@127.0.0.1:9/video"\n'
    configs = [
        ("MQTT URL with a password (refused) + camera URL with a password",
         base + f'[mqtt]\nurl = "mqtt://bench:{secrets["mqtt_url"]}@127.0.0.1:1883"\n' + cam),
        ("mqtt.password + metrics_token + camera URL with a password",
         base + f'[http]\nmetrics_token = "{secrets["metrics_token"]}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n'
         f'username = "bench"\npassword = "{secrets["mqtt_password"]}"\n' + cam),
    ]
    leaks_all = []
    for i, (label, text) in enumerate(configs):
        path = ctx.tmp / f"check-{i}.toml"
        path.write_text(text)
        p = subprocess.run([ctx.binary, "config", "check", "--board", BOARD, "--config", str(path)],
                           capture_output=True, timeout=60, cwd=ctx.tmp)
        out = p.stdout + p.stderr
        leaks = [k for k, v in secrets.items() if v.encode() in out]
        leaks_all += leaks
        ph.statuses[f"exit {p.returncode}"] += 1
        shown = [l for l in out.decode("utf-8", "replace").splitlines()
                 if re.search(r"error|url|source|password|token", l, re.I)]
        ph.fig(label, {"exit": p.returncode, "leaked": leaks, "lines": shown[:8]},
               f"exit {p.returncode}, leaked: {leaks or 'nothing'}\n      " + "\n      ".join(shown[:8]))
    ph.check(not leaks_all, f"no secret printed (leaked: {leaks_all or 'none'})")


PHASE_FUNCS = {
    "logins-spread": ph_logins_spread, "logins-one": ph_logins_one, "locked-bodies": ph_locked_bodies,
    "slowloris": ph_slowloris, "pixel-bombs": ph_pixel_bombs, "big-uploads": ph_big_uploads,
    "retained-50mb": ph_retained, "rebinding": ph_rebinding, "redirect": ph_redirect,
    "log-forging": ph_log_forging, "page-overflow": ph_page_overflow, "mjpeg-no-boundary": ph_mjpeg,
    "bad-jpegs": ph_bad_jpegs, "config-check": ph_config_check,
}
USES_MAIN = set(PHASE_FUNCS) - {"rebinding", "mjpeg-no-boundary", "config-check"}


# --------------------------------------------------------------------------- the run

class Ctx:
    def __init__(self, args):
        self.args = args
        self.binary = args.binary
        self.children = []
        self.accepted = {}      # poster id -> phase
        self.tmp = Path(tempfile.mkdtemp(prefix="marquee-hostile-"))
        self.inbox = self.tmp / "inbox"
        self.inbox.mkdir()
        self.main = None
        self._jpeg = False
        self.jpeg_origin = None
        self.genre = "Drama"
        self.max_failures = 5
        self.budget_mb = 500
        self.warmup = None

    def accept(self, r, phase):
        if r is not None and r.status == 200:
            pid = (r.json() or {}).get("id")
            if pid:
                self.accepted.setdefault(pid, phase)

    def upload(self, d, body, ctype, phase, timeout=60, src=None):
        r = request(d.addr, "POST", "/api/v1/posters", body,
                    {"Authorization": f"Bearer {self.token}", "Content-Type": ctype}, src=src, timeout=timeout)
        self.accept(r, phase)
        return r

    def jpeg(self):
        """A small valid JPEG: a real poster if ../shared/data/posters is there, else a drawn sample."""
        if self._jpeg is not False:
            return self._jpeg
        self._jpeg = None
        folder = Path(self.args.images)
        if folder.is_dir():
            for p in sorted(folder.glob("*.jpg"))[:50]:
                data = p.read_bytes()
                if 10_000 < len(data) < 400_000 and patch_sof(data, 1, 1) is not None:
                    self._jpeg, self.jpeg_origin = data, f"{p.name} from {folder}"
                    return data
        if self.main and self.main.alive():
            r = request(self.main.addr, "GET", "/samples/0.jpg", headers={"Authorization": f"Bearer {self.token}"})
            if r.status == 200 and r.body[:2] == b"\xff\xd8":
                self._jpeg, self.jpeg_origin = r.body, "the daemon's drawn sample /samples/0.jpg"
        return self._jpeg


def read_constants(ctx):
    try:
        text = (ROOT / "src/web/auth/lockout.rs").read_text()
        ctx.max_failures = int(re.search(r"MAX_FAILURES: u32 = (\d+)", text).group(1))
    except (OSError, AttributeError):
        pass
    try:
        labels = json.loads((ROOT / "models/manifest.json").read_text()).get("labels") or []
        if labels:
            ctx.genre = labels[0]
    except (OSError, ValueError):
        pass


def credentials(ctx):
    p = subprocess.run([ctx.binary, "dashboard", "hash-password"], input=(PASSWORD + "\n").encode(),
                       capture_output=True, timeout=60)
    m = re.search(rb'password_hash = "([^"]+)"', p.stdout)
    if not m:
        raise RuntimeError(f"`marquee dashboard hash-password` gave no hash: {p.stdout!r} {p.stderr!r}")
    ctx.pw_hash = m.group(1).decode()
    p = subprocess.run([ctx.binary, "dashboard", "new-token"], capture_output=True, timeout=60)
    lines = p.stdout.decode().splitlines()
    tok = [l[2:].strip() for l in lines if l.startswith("# ") and ":" not in l]
    m = re.search(r'api_token_sha256 = \["([0-9a-f]+)"\]', p.stdout.decode())
    if not tok or not m:
        raise RuntimeError(f"`marquee dashboard new-token` gave no token: {p.stdout!r}")
    ctx.token, ctx.token_sha = tok[0], m.group(1)


def budgets(ctx):
    info = {}
    try:
        m = re.search(r"^\s*memory_budget_mb\s*=\s*(\d+)", (ROOT / f"firmware-config/{BOARD}.toml").read_text(), re.M)
        info["firmware-config"] = int(m.group(1)) if m else None
    except OSError:
        info["firmware-config"] = None
    p = subprocess.run([ctx.binary, "config", "check", "--board", BOARD], capture_output=True, timeout=60,
                       cwd=ctx.tmp)
    m = re.search(rb"^\s*memory_budget_mb\s*=\s*(\d+)", p.stdout, re.M)
    info["config check"] = int(m.group(1)) if m else None
    ctx.budget_mb = info["firmware-config"] or info["config check"] or 500
    return info


def main_config(ctx):
    closed = free_port()
    return (f'device_id = "bench"\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{ctx.broker_port}"\n'
            f'[dashboard]\npassword_hash = "{ctx.pw_hash}"\napi_token_sha256 = ["{ctx.token_sha}"]\n'
            f'[watch]\ndir = "{ctx.inbox}"\nsettle_ms = 300\n'
            f'[[camera]]\nname = "door"\nsource = "http://127.0.0.1:{closed}/snapshot.jpg"\nmode = "on_demand"\n')


def daemon_plan(d):
    try:
        text = d.stderr_path.read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"(\d+) MiB worst case of a (\d+) MiB budget[^\n]*", text)
    return m.group(0) if m else None


def start_main(ctx):
    if ctx.main is None:
        ctx.main = Daemon(ctx, "main", "bench", main_config(ctx))
    ctx.main.start()
    if not ctx.main.wait_subscribed(30):
        say("   note: the main daemon's MQTT inputs did not confirm their subscriptions within 30 s")
    ctx.events.wait_online("bench", 10)
    # One poster first, so the model is loaded and no attack's RSS growth includes it.
    r = ctx.upload(ctx.main, noise_png(), "image/png", "warm-up")
    ctx.warmup = (r.key, round(r.elapsed, 2), mb(ctx.main.mon.rss_kb()))


def run_phase(ctx, index, name):
    ph = Phase(index, name)
    say(f"\n== {index}/{len(PHASES)} {name}")
    say(f"   target: {ph.target}")
    t0 = time.monotonic()
    try:
        if name in USES_MAIN and not ctx.main.alive():
            ph.note(f"the main daemon had exited ({ctx.main.proc.returncode}); restarted for this phase")
            start_main(ctx)
        PHASE_FUNCS[name](ctx, ph)
    except DaemonDied as e:
        ph.check(False, f"a daemon died: {e}")
    except Exception:
        ph.verdict = "ERROR"
        ph.note("the script failed in this phase:\n" + traceback.format_exc())
        ctx.script_failed = True
    ph.seconds = round(time.monotonic() - t0, 1)
    if ph.verdict is None:
        ph.verdict = "HELD" if ph.checks and all(ok for ok, _ in ph.checks) else "FAILED"
    if ph.statuses:
        say(f"   statuses: {counter_text(ph.statuses)}")
    if ph.health:
        h = ph.health
        say(f"   /healthz: {'held' if h['held'] else 'NOT held'} ({h['ok']}/{h['polls']} answered 200 within 1 s, "
            f"worst {h['worst_ms']} ms{', failures ' + json.dumps(h['failures']) if h['failures'] else ''})")
    if ph.rss:
        r = ph.rss
        say(f"   RSS: before {r['before']} MB, peak {r['peak']} MB (+{r['growth']}), after {r['after']} MB")
    for ok, text in ph.checks:
        say(f"   [{'ok' if ok else 'NO'}] {text}")
    say(f"   verdict: {ph.verdict} ({ph.seconds} s)")
    return ph


def summary(ctx, phases, mqtt, header):
    say("\n== summary")
    rows = [("#", "phase", "verdict", "statuses", "healthz", "RSS MB before/peak/after", "s")]
    for ph in phases:
        h = ph.health
        hz = "-" if not h else (f"held {h['ok']}/{h['polls']}" if h["held"] else f"NO {h['ok']}/{h['polls']}")
        r = ph.rss
        rss = "-" if not r else f"{r['before']}/{r['peak']}/{r['after']}"
        rows.append((str(ph.index), ph.name, ph.verdict, counter_text(ph.statuses, 44) if ph.statuses else "-",
                     hz, rss, str(ph.seconds)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    say(f"   every accepted poster reached MQTT: {'yes' if mqtt['all'] else 'no'} "
        f"({mqtt['reached']}/{mqtt['accepted']})")
    say(f"   main daemon VmHWM: {header.get('main_vmhwm_mb')} MB (memory_budget_mb {ctx.budget_mb})")
    failed = [ph.name for ph in phases if ph.verdict == "FAILED"]
    say(f"   FAILED: {', '.join(failed)}" if failed else "   every target HELD")


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    default_bin = ROOT / "target/release/marquee"
    if not default_bin.exists():
        default_bin = ROOT / "target/debug/marquee"
    ap.add_argument("--binary", default=str(default_bin), help="the marquee binary")
    ap.add_argument("--only", action="append", default=[], help="phases to run (NAME[,NAME]); repeatable")
    ap.add_argument("--list", action="store_true", help="list the phases and their targets")
    ap.add_argument("--json", action="store_true", help="JSON on stdout (the report goes to stderr)")
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "posters"))
    ap.add_argument("--rust-log", default="info", help="RUST_LOG of the daemons")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after an attack before RSS 'after'")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp folder (daemon logs, databases)")
    k = ap.add_argument_group("scale knobs")
    k.add_argument("--logins", type=int, default=200, help="logins-spread / logins-one: concurrent logins")
    k.add_argument("--addresses", type=int, default=100, help="logins-spread: source addresses")
    k.add_argument("--locked-logins", type=int, default=50, help="locked-bodies: concurrent logins")
    k.add_argument("--locked-body-mb", type=float, default=19, help="locked-bodies: declared body, MB")
    k.add_argument("--slow-conns", type=int, default=1100, help="slowloris: half-requests held")
    k.add_argument("--hold", type=int, default=15, help="slowloris: seconds they are held")
    k.add_argument("--bombs", type=int, default=20, help="pixel-bombs: concurrent uploads")
    k.add_argument("--bomb-side", type=int, default=8192, help="pixel-bombs: PNG side, pixels")
    k.add_argument("--under-cap-side", type=int, default=4096,
                   help="pixel-bombs: then a PNG under the pixel cap, side (0: skip)")
    k.add_argument("--under-cap-uploads", type=int, default=6, help="pixel-bombs: how many of those")
    k.add_argument("--big", type=int, default=60, help="big-uploads: concurrent uploads")
    k.add_argument("--big-mb", type=float, default=19.9, help="big-uploads: body, MB")
    k.add_argument("--retained-mb", type=float, default=50, help="retained-50mb: message, MiB")
    k.add_argument("--retained-uploads", type=int, default=5, help="retained-50mb: uploads timed to MQTT")
    k.add_argument("--long-name-mb", type=float, default=5, help="log-forging: long camera name, MB")
    k.add_argument("--mjpeg-mb", type=float, default=16, help="mjpeg-no-boundary: bytes without a boundary, MiB")
    k.add_argument("--bad-jpegs", type=int, default=5, help="bad-jpegs: concurrent uploads of each variant")
    a = ap.parse_args()
    if a.list:
        for i, (name, target) in enumerate(PHASES, 1):
            print(f"{i:2} {name:18} {target}")
        return 0
    if a.json:
        OUT = sys.stderr
    wanted = [n.strip() for o in a.only for n in o.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in TARGETS]
    if unknown:
        ap.error(f"unknown phase(s) {unknown}; --list shows them")
    selected = [(i, n) for i, (n, _) in enumerate(PHASES, 1) if not wanted or n in wanted]
    a.binary = str(Path(a.binary).resolve())
    if not Path(a.binary).is_file():
        sys.exit(f"no binary at {a.binary}: build it first (cargo build [--release])")
    for tool in ("mosquitto", "mosquitto_sub", "mosquitto_pub"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install mosquitto mosquitto-clients)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    threading.stack_size(512 * 1024)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ctx = Ctx(a)
    ctx.script_failed = False
    read_constants(ctx)
    profile = "release" if "/release/" in a.binary else "debug (dev profile)" if "/debug/" in a.binary else "unknown"
    phases, header = [], {}
    broker = None
    t_start = time.monotonic()
    try:
        version = subprocess.run([a.binary, "--version"], capture_output=True, timeout=30).stdout.decode().strip()
        credentials(ctx)
        plan_sources = budgets(ctx)
        ctx.broker_port = free_port()
        conf = ctx.tmp / "mosquitto.conf"
        conf.write_text(f"listener {ctx.broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=open(ctx.tmp / "mosquitto.log", "wb"), start_new_session=True)
        ctx.children.append(broker)
        end = time.monotonic() + 15
        while socket.socket().connect_ex(("127.0.0.1", ctx.broker_port)) != 0:
            if time.monotonic() > end or broker.poll() is not None:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)
        broker_version = subprocess.run(["mosquitto", "-h"], capture_output=True).stdout.decode().splitlines()[0]
        ctx.events = Events(ctx)
        if any(n in USES_MAIN for _, n in selected):
            start_main(ctx)
        header = {
            "binary": a.binary, "profile": profile, "version": version, "board": BOARD,
            "memory_budget_mb": plan_sources, "daemon_memory_plan": daemon_plan(ctx.main) if ctx.main else None,
            "main_start_to_ready_s": round(ctx.main.start_to_ready, 2) if ctx.main else None,
            "broker": f"{broker_version} on 127.0.0.1:{ctx.broker_port}", "cpus": os.cpu_count(),
            "tmp": str(ctx.tmp),
        }
        say("Marquee hostile-load benchmark (scripts/bench-hostile.py)")
        say(f"   binary: {a.binary}")
        say(f"   profile: {profile}; {version}; board {BOARD}")
        say(f"   memory_budget_mb: firmware-config/{BOARD}.toml {plan_sources['firmware-config']}, "
            f"`config check --board {BOARD}` {plan_sources['config check']}")
        if header["daemon_memory_plan"]:
            say(f"   daemon logs: {header['daemon_memory_plan']}")
        if ctx.main:
            say(f"   main daemon: {ctx.main.addr[0]}:{ctx.main.addr[1]} (pid {ctx.main.proc.pid}), ready in "
                f"{ctx.main.start_to_ready:.1f} s; password + API token, watched folder, one unreachable camera")
            say(f"   warm-up upload: {ctx.warmup[0]} in {ctx.warmup[1]} s; RSS then {ctx.warmup[2]} MB")
            header["warmup"] = {"status": str(ctx.warmup[0]), "seconds": ctx.warmup[1], "rss_mb": ctx.warmup[2]}
        say(f"   broker: {header['broker']}; {os.cpu_count()} CPUs; temp {ctx.tmp}")
        passed = {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
        if passed:
            header["daemon_env"] = passed
            say(f"   passed to the daemons from this environment: {passed}")
        for index, name in selected:
            phases.append(run_phase(ctx, index, name))
        # Every accepted poster on MQTT?
        missing = ctx.events.wait(ctx.accepted, 30)
        mqtt = {"accepted": len(ctx.accepted), "reached": len(ctx.accepted) - len(missing),
                "all": not missing, "missing": {p: ctx.accepted[p] for p in missing}}
        say(f"\n== MQTT: every accepted poster reached MQTT: {'yes' if mqtt['all'] else 'no'} "
            f"({mqtt['reached']}/{mqtt['accepted']})")
        for p, phase in mqtt["missing"].items():
            say(f"   missing: {p} (accepted in {phase})")
        if ctx.main and ctx.main.alive():
            header["main_vmhwm_mb"] = mb(ctx.main.mon.hwm_kb())
            header["main_rss_end_mb"] = mb(ctx.main.mon.rss_kb())
        header["total_s"] = round(time.monotonic() - t_start, 1)
        summary(ctx, phases, mqtt, header)
        say(f"   total {header['total_s']} s")
        if a.json:
            print(json.dumps({"header": header, "phases": [p.as_json() for p in phases], "mqtt": mqtt},
                             indent=2, default=str))
        return 1 if ctx.script_failed else 0
    except KeyboardInterrupt as e:
        say(f"\ninterrupted ({str(e) or 'Ctrl-C'}); stopping the children")
        return 130
    finally:
        if ctx.main:
            ctx.main.stop()
        for p in reversed(ctx.children):
            if p.poll() is None:
                p.terminate()
        for p in reversed(ctx.children):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if a.keep_tmp:
            say(f"   kept {ctx.tmp}")
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
