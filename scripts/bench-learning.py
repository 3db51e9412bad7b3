#!/usr/bin/env python3
"""The learning loop, measured through the real daemon (issue 11's targets).

The split, and why: ../shared/data is one source, and the shipped head saw
85% of it, so there is no unseen collection of a different kind in it. This
bench makes one: an operator whose collection is dark-genre films (posters
with Horror, Thriller, Crime or Mystery; 75% of them by a hash of the id).
A "shipped-like" head is trained by `marquee train` on everything else (the
rest of the dark posters included, so it knows those genres), with its base
features file, into a private model folder. Then, through the daemon's HTTP
API only:

  1. the collection's evaluation posters (after the first --corrections) are
     uploaded and their tags kept ("before"); so are the base set's held-out
     validation posters (the "shipped kind");
  2. the first --corrections collection posters are uploaded and corrected
     with their true genres (POST /api/v1/posters/{id}/feedback);
  3. POST /api/v1/model/retrain, polled to the end, while the daemon's RSS is
     sampled and posters are classified (p99 against idle);
  4. the candidate is promoted (forced when the held-out check refuses);
  5. both poster sets are uploaded again and scored ("after").

Prints micro-F1 and hit@1 of the collection before/after, micro-F1 and mean
AUC of the shipped kind before/after, retrain seconds, the RSS increase
during the retrain, and classification p50/p99 idle vs during the retrain.
Standard library only; a benchmark, not a test.

    cargo build --release && python3 scripts/bench-learning.py [--binary target/debug/marquee]
"""
import argparse, hashlib, http.client, json, os, shutil, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DARK = {"Horror", "Thriller", "Crime", "Mystery"}


def bucket(salt, id_):
    d = hashlib.sha256(f"{salt}:{id_}".encode()).digest()
    return int.from_bytes(d[:2], "big") % 100


def shipped_split(id_):
    b = bucket("marquee-split-v1:0", id_)
    return "train" if b < 70 else "calibration" if b < 85 else "validation"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def call(self, method, path, body=b"", kind="application/octet-stream"):
        c = http.client.HTTPConnection(self.host, self.port, timeout=600)
        c.request(method, path, body=body, headers={"Content-Type": kind})
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")

    def upload(self, path):
        t = time.perf_counter()
        status, ev = self.call("POST", "/api/v1/posters", Path(path).read_bytes())
        if status != 200:
            sys.exit(f"upload of {path} failed: {status} {ev}")
        return ev, time.perf_counter() - t


def micro_f1(rows, labels):
    tp = fp = fn = 0
    for tags, truth in rows:
        t = set(truth) & set(labels)
        p = set(tags)
        tp += len(p & t); fp += len(p - t); fn += len(t - p)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def hit1(rows, labels):
    n = ok = 0
    for genres, truth in rows:
        t = set(truth) & set(labels)
        if not t:
            continue
        n += 1
        ok += genres[0]["label"] in t
    return ok / max(1, n)


def mean_auc(rows, labels):
    aucs = []
    for l in labels:
        scored = [(next(g["score"] for g in genres if g["label"] == l), l in truth) for genres, truth in rows]
        P = [s for s, y in scored if y]; N = [s for s, y in scored if not y]
        if not P or not N:
            continue
        allv = sorted(scored, key=lambda x: x[0])
        rank_sum, i = 0.0, 0
        while i < len(allv):
            j = i
            while j < len(allv) and allv[j][0] == allv[i][0]:
                j += 1
            avg = (i + j + 1) / 2
            rank_sum += avg * sum(1 for k in range(i, j) if allv[k][1])
            i = j
        aucs.append((rank_sum - len(P) * (len(P) + 1) / 2) / (len(P) * len(N)))
    return sum(aucs) / max(1, len(aucs))


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "marquee"))
    ap.add_argument("--corrections", type=int, default=600)
    ap.add_argument("--evaluate", type=int, default=1400)
    ap.add_argument("--shipped", type=int, default=400, help="held-out posters of the base set")
    ap.add_argument("--work", default=None, help="keep the work folder here")
    ap.add_argument("--base-posters", type=int, default=1500, help="training posters kept in base-features.bin")
    ap.add_argument("--no-base", action="store_true",
                    help="retrain on the corrections alone, warm-started from the head (the other way to "
                         "keep what it knew), to compare with the base features")
    a = ap.parse_args()
    a.binary = str(Path(a.binary).resolve())
    data = Path(a.data)
    if not (data / "posters.csv").is_file():
        sys.exit(f"{data}/posters.csv is absent: the labelled posters live in ../shared/data")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="marquee-learning-"))
    work.mkdir(parents=True, exist_ok=True)

    rows = [l.strip().split(",", 1) for l in (data / "posters.csv").read_text().splitlines()[1:] if l.strip()]
    rows = [(i, g.split("|")) for i, g in rows if (data / "posters" / f"{i}.jpg").is_file()]
    collection = sorted([r for r in rows if DARK & set(r[1]) and bucket("bench-learning", r[0]) < 75],
                        key=lambda r: hashlib.sha256(r[0].encode()).hexdigest())
    base = [r for r in rows if r not in collection]
    print(f"collection (dark genres): {len(collection)} posters; base set: {len(base)} posters", flush=True)
    if len(collection) < a.corrections + 100:
        sys.exit("the collection is too small for --corrections")
    (work / "base.csv").write_text("id,genres\n" + "".join(f"{i},{'|'.join(g)}\n" for i, g in base))

    models = work / "models"
    if not (models / "genre-head.json").is_file():
        models.mkdir(exist_ok=True)
        for f in (ROOT / "models").iterdir():
            if f.suffix == ".onnx":
                dst = models / f.name
                if not dst.exists():
                    os.symlink(f, dst)
        shutil.copy(ROOT / "models" / "manifest.json", models / "manifest.json")
        t = time.time()
        subprocess.run([a.binary, "train", "--model", str(models), "--data", str(work / "base.csv"),
                        "--images", str(data / "posters"), "--out", str(models / "genre-head.json"),
                        "--base-features", str(models / "base-features.bin"),
                        "--base-posters", str(a.base_posters)], check=True, cwd=ROOT)
        print(f"bench head trained in {time.time() - t:.0f} s", flush=True)

    manifest = json.loads((models / "manifest.json").read_text())
    labels = manifest["labels"]
    if a.no_base:
        models_nb = work / "models-no-base"
        models_nb.mkdir(exist_ok=True)
        for f in models.iterdir():
            dst = models_nb / f.name
            if f.name != "manifest.json" and not dst.exists():
                os.symlink(f.resolve(), dst)
        manifest.pop("base_features", None)
        (models_nb / "manifest.json").write_text(json.dumps(manifest, indent=1))
        models = models_nb
    corr = collection[: a.corrections]
    evalset = collection[a.corrections: a.corrections + a.evaluate]
    shipped = [r for r in base if shipped_split(r[0]) == "validation"][: a.shipped]
    img = lambda i: data / "posters" / f"{i}.jpg"

    ready = work / "ready"
    if ready.exists():
        ready.unlink()
    db = work / "learning.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, MARQUEE__DEVICE_ID="bench", MARQUEE__MQTT__URL=f"mqtt://127.0.0.1:{free_port()}",
               MARQUEE_MODEL_DIR=str(models), RUST_LOG="warn", MARQUEE__INFERENCE__THREADS="1")
    daemon = subprocess.Popen([a.binary, "serve", "--listen", "127.0.0.1:0", "--db", str(db),
                               "--ready-file", str(ready)], env=env, cwd=work)
    try:
        end = time.time() + 60
        while not ready.exists():
            if time.time() > end or daemon.poll() is not None:
                sys.exit("the daemon did not start")
            time.sleep(0.05)
        host, port = ready.read_text().strip().rsplit(":", 1)
        api = Api(host, int(port))

        def classify(items):
            out, times = [], []
            for i, g in items:
                ev, dt = api.upload(img(i))
                out.append((ev, g)); times.append(dt)
            return out, times

        t = time.time()
        before_eval, idle_times = classify(evalset)
        before_shipped, _ = classify(shipped)
        print(f"'before' classified in {time.time() - t:.0f} s", flush=True)
        for i, g in corr:
            ev, _ = api.upload(img(i))
            genres = [x for x in g if x in labels]
            if not genres:
                continue
            status, body = api.call("POST", f"/api/v1/posters/{ev['id']}/feedback",
                                    json.dumps({"genres": genres}).encode(), "application/json")
            if status != 201:
                sys.exit(f"correction refused: {status} {body}")

        def run_retrain(load):
            """One retrain; RSS sampled; with `load`, posters classified meanwhile."""
            rss0 = rss_kb(daemon.pid)
            status, job = api.call("POST", "/api/v1/model/retrain")
            if status != 202:
                sys.exit(f"retrain refused: {status} {job}")
            peak, times, stop = [rss0], [], threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_kb(daemon.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample); sampler.start()
            k = 0
            while True:
                _, job = api.call("GET", "/api/v1/model/retrain")
                if job["state"] != "running":
                    break
                if load:
                    _, dt = api.upload(img(evalset[k % len(evalset)][0])); times.append(dt); k += 1
                else:
                    time.sleep(0.1)
            stop.set(); sampler.join()
            if job["state"] != "done":
                sys.exit(f"retrain ended {job}")
            return job, rss0, peak[0], times

        # Idle first (time, memory), then the same retrain (same data, same
        # parent: the same head) under classification load (p99).
        job, rss0, peak_idle, _ = run_retrain(False)
        idle_seconds = job.get("seconds")
        job, rss1, peak_busy, busy_times = run_retrain(True)
        peak = [max(peak_idle - rss0, peak_busy - rss1) + rss0]
        head = job["head_id"]
        status, body = api.call("POST", f"/api/v1/model/heads/{head}/promote", b"{}", "application/json")
        forced = False
        if status == 409:
            forced = True
            status, body = api.call("POST", f"/api/v1/model/heads/{head}/promote", b'{"force": true}', "application/json")
        if status != 200:
            sys.exit(f"promote failed: {status} {body}")
        _, heads = api.call("GET", "/api/v1/model/heads")
        cand = next(h for h in heads if h["id"] == head)
        after_eval, _ = classify(evalset)
        after_shipped, _ = classify(shipped)
    finally:
        daemon.terminate(); daemon.wait(30)

    tagrows = lambda res: [(ev["tags"], g) for ev, g in res]
    genrows = lambda res: [(ev["genres"], g) for ev, g in res]
    f1b, f1a = micro_f1(tagrows(before_eval), labels), micro_f1(tagrows(after_eval), labels)
    h1b, h1a = hit1(genrows(before_eval), labels), hit1(genrows(after_eval), labels)
    sf1b, sf1a = micro_f1(tagrows(before_shipped), labels), micro_f1(tagrows(after_shipped), labels)
    aucb, auca = mean_auc(genrows(before_shipped), labels), mean_auc(genrows(after_shipped), labels)
    report = {
        "collection": {"corrections": len(corr), "evaluated": len(evalset),
                        "micro_f1": [round(f1b, 4), round(f1a, 4), round(f1a - f1b, 4)],
                        "hit_at_1": [round(h1b, 4), round(h1a, 4), round(h1a - h1b, 4)]},
        "shipped_kind": {"posters": len(shipped), "micro_f1": [round(sf1b, 4), round(sf1a, 4), round(sf1a - sf1b, 4)],
                          "mean_auc": [round(aucb, 4), round(auca, 4), round(auca - aucb, 4)]},
        "retrain": {"seconds_idle": idle_seconds, "seconds_under_load": job.get("seconds"),
                    "base_posters": job.get("base_posters"),
                    "rss_before_mb": round(rss0 / 1024, 1), "rss_peak_mb": round(peak[0] / 1024, 1),
                    "extra_mb": round((peak[0] - rss0) / 1024, 1), "forced_promotion": forced,
                    "held_out": cand["metrics"].get("posters"),
                    "held_out_candidate": cand["metrics"].get("model"), "held_out_parent": cand["metrics"].get("parent")},
        "classification_ms": {"idle_p50": round(pct(idle_times, .5) * 1000, 1), "idle_p99": round(pct(idle_times, .99) * 1000, 1),
                              "retrain_p50": round(pct(busy_times, .5) * 1000, 1), "retrain_p99": round(pct(busy_times, .99) * 1000, 1),
                              "during_retrain_samples": len(busy_times)},
        "binary": a.binary, "work": str(work),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
