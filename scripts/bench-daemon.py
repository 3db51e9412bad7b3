#!/usr/bin/env python3
"""End-to-end daemon benchmark: HTTP in, MQTT event out.

Starts a private Mosquitto on a free port and the release `marquee serve` on
127.0.0.1:0 with a temporary database, uploads N posters from ../shared/data
with T concurrent clients, and waits until a subscriber has received every
event. Prints start-to-ready, throughput, per-upload latency p50/p99 and the
daemon's peak resident memory. Standard library only; a benchmark, not a test.

    cargo build --release && python3 scripts/bench-daemon.py [--posters 5000] [--clients 2]
"""
import argparse, http.client, json, os, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, what, timeout=30.0):
    end = time.time() + timeout
    while not pred():
        if time.time() > end:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--posters", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "posters"))
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "marquee"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--backend", choices=["tract", "onnxruntime", "auto"], default=None,
                    help="[inference] backend (onnxruntime needs a build with --features onnxruntime)")
    ap.add_argument("--onnxruntime-library", default=None, help="libonnxruntime.so for --backend onnxruntime/auto")
    a = ap.parse_args()
    images = Path(a.images)
    if not images.is_dir():
        sys.exit(f"{images} is absent: the labelled posters live in ../shared/data")
    files = sorted(images.glob("*.jpg"))[: a.posters]
    tmp = Path(tempfile.mkdtemp(prefix="marquee-bench-"))
    port = free_port()
    (tmp / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "mosquitto")
    events = tmp / "events.jsonl"
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-q", "1", "-t", "marquee/bench/poster",
                            "-C", str(len(files))], stdout=open(events, "w"))
    ready = tmp / "ready"
    env = dict(os.environ, MARQUEE__DEVICE_ID="bench", MARQUEE__MQTT__URL=f"mqtt://127.0.0.1:{port}",
               MARQUEE__HTTP__MAX_UPLOAD_BYTES="20971520", RUST_LOG="warn")
    if a.backend:
        env["MARQUEE__INFERENCE__BACKEND"] = a.backend
    if a.onnxruntime_library:
        env["MARQUEE__INFERENCE__ONNXRUNTIME_LIBRARY"] = a.onnxruntime_library
    t0 = time.time()
    daemon = subprocess.Popen([a.binary, "serve", "--listen", "127.0.0.1:0", "--db", str(tmp / "bench.db"),
                               "--ready-file", str(ready)], env=env, cwd=ROOT)
    wait_for(ready.exists, "the daemon's ready file")
    start_to_ready = time.time() - t0
    host, hport = ready.read_text().strip().rsplit(":", 1)
    latencies, lock, next_i = [], threading.Lock(), [0]

    def client():
        conn = http.client.HTTPConnection(host, int(hport), timeout=60)
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(files):
                return
            body = files[i].read_bytes()
            while True:
                t = time.time()
                conn.request("POST", "/api/v1/posters", body, {"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                r.read()
                if r.status == 503:  # queue full: honour Retry-After, as a client should
                    time.sleep(0.05)
                    continue
                if r.status != 200:
                    sys.exit(f"upload {files[i].name}: HTTP {r.status}")
                with lock:
                    latencies.append(time.time() - t)
                break

    t1 = time.time()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    sub.wait(timeout=120)
    elapsed = time.time() - t1
    received = sum(1 for _ in open(events))
    status = Path(f"/proc/{daemon.pid}/status").read_text()
    hwm_kb = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM"))
    rss_kb = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS"))
    daemon.terminate(); daemon.wait(timeout=30)
    broker.terminate(); broker.wait()
    lat = sorted(latencies)
    out = {
        "posters": len(files), "clients": a.clients, "events_received": received,
        "start_to_ready_s": round(start_to_ready, 3),
        "posters_per_s": round(len(files) / elapsed, 2),
        "upload_latency_p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "upload_latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
        "daemon_peak_rss_mb": round(hwm_kb / 1024, 1), "daemon_rss_mb_at_end": round(rss_kb / 1024, 1),
    }
    print(json.dumps(out, indent=2) if a.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
