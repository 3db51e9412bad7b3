#!/usr/bin/env python3
"""Experiment-only: quick sklearn genre heads on cached features (from extract.py).

The head mirrors src/model/training.rs: standardise on train, one L2 logistic regression per
genre (C = 1/alpha, positives weighted clamp(neg // pos, 1, 8) like the Rust replication),
Platt scaling and an F1-best threshold per genre on the calibration split, then the joint
micro-F1 coordinate ascent of the thresholds; metrics as src/analytics/metrics.rs (mean ROC-AUC
over the 19 genres, micro-F1, hit@1, five-genre accuracy) on the validation split. Splits as
src/dataset.rs: sha256("marquee-split-v1:{seed}:{id}")[0..2] big-endian % 100: <70 train,
<85 calibration, else validation. --cv K adds K-fold CV of mean ROC-AUC on train+calibration
(folds by the same hash with salt "cv").

Feature spec: NAME[:POOLS][|MODE][+colour], NAME an npz from extract.py in --dir, POOLS
avg (default) or avg+max, MODE plain (default), tta (features averaged with the mirror image's,
train and test), aug (mirrored posters added as training rows; test on the image itself),
augtta (both).

  nice -n 10 python tools/experiments/eval_heads.py 'lite0-224x320' 'lite0-224x320|tta' --seeds 0 1 2 --cv 5
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402

FIVE = ["Action", "Comedy", "Drama", "Romance", "Thriller"]
GRID = np.arange(1, 100) / 100.0


def labels_and_truth(ids):
    with open(common.DATA / "posters.csv", newline="") as fh:
        g = {r["id"]: [x.strip() for x in r["genres"].split("|") if x.strip() and x.strip() != "N/A"]
             for r in csv.DictReader(fh)}
    counts = Counter(x for i in ids for x in g[i])
    labels = [k for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= 100]
    return labels, np.array([[l in g[i] for l in labels] for i in ids], bool)


def bucket(i: str, salt: str) -> int:
    d = hashlib.sha256(f"{salt}:{i}".encode()).digest()
    return int.from_bytes(d[:2], "big") % 100


def split(ids, seed):
    b = np.array([bucket(i, f"marquee-split-v1:{seed}") for i in ids])
    return b < 70, (b >= 70) & (b < 85), b >= 85


def load_spec(spec: str, d: Path):
    colour = spec.endswith("+colour")
    s = spec[: -len("+colour")] if colour else spec
    s, mode = s.split("|") if "|" in s else (s, "plain")
    name, pools = s.split(":") if ":" in s else (s, "avg")
    z = np.load(d / f"{name}.npz")
    x = np.concatenate([z[p] for p in pools.split("+")], 1)
    has_flip = all(p + "_flip" in z for p in pools.split("+"))
    if mode != "plain" and not has_flip:
        raise SystemExit(f"{name}.npz has no mirror features (extract.py --no-flip)")
    xf = np.concatenate([z[p + "_flip"] for p in pools.split("+")], 1) if has_flip else x
    if colour:
        c = np.load(d / "colour.npz")["colour"]
        x, xf = np.concatenate([x, c], 1), np.concatenate([xf, c], 1)   # colour stats are mirror-invariant
    return list(z["ids"]), x.astype(np.float64), xf.astype(np.float64), mode


def fit_head(xtr, ytr, alpha):
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd < 1e-6] = 1.0
    z = (xtr - mu) / sd
    models = []
    for j in range(ytr.shape[1]):
        y = ytr[:, j]
        pos = int(y.sum())
        w = np.where(y, np.clip((len(y) - pos) // pos, 1, 8), 1).astype(np.float64)
        m = LogisticRegression(C=1.0 / alpha, max_iter=300, tol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(z, y, sample_weight=w)
        models.append((m.coef_[0], m.intercept_[0]))
    W = np.stack([m[0] for m in models], 1)
    b = np.array([m[1] for m in models])
    return lambda x: ((x - mu) / sd) @ W + b


def f1_counts(pred, truth):
    tp = (pred & truth).sum()
    return 2 * tp / max(1, 2 * tp + (pred & ~truth).sum() + (~pred & truth).sum())


def calibrate(logit_cal, ycal):
    ab, th = [], []
    for j in range(ycal.shape[1]):
        m = LogisticRegression(C=1e3, max_iter=500).fit(logit_cal[:, j:j + 1], ycal[:, j])
        a, b = float(m.coef_[0, 0]), float(m.intercept_[0])
        if not (a > 0):
            a, b = 1.0, 0.0
        ab.append((a, b))
        s = 1 / (1 + np.exp(-(a * logit_cal[:, j] + b)))
        f = [f1_counts(s >= t, ycal[:, j]) for t in GRID]
        th.append(GRID[int(np.argmax(f))])
    ab = np.array(ab)
    scores = 1 / (1 + np.exp(-(ab[:, 0] * logit_cal + ab[:, 1])))
    th = np.array(th)
    for _ in range(2):   # joint micro-F1 coordinate ascent, as tune_micro_thresholds
        for j in range(len(th)):
            best = (f1_counts(scores >= th, ycal), th[j])
            for t in GRID:
                trial = th.copy()
                trial[j] = t
                f = f1_counts(scores >= trial, ycal)
                if f > best[0] + 1e-12:
                    best = (f, t)
            th[j] = best[1]
    return ab, th


def metrics(scores, y, th, labels):
    aucs = [roc_auc_score(y[:, j], scores[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    has = y.any(1)
    top = scores.argmax(1)
    hit1 = y[np.arange(len(y)), top][has].mean()
    idx = [labels.index(f) for f in FIVE]
    y5, s5 = y[:, idx], scores[:, idx]
    h5 = y5.any(1)
    five = y5[np.arange(len(y)), s5.argmax(1)][h5].mean()
    return {"auc": float(np.mean(aucs)), "micro_f1": float(f1_counts(scores >= th, y)),
            "hit1": float(hit1), "five": float(five)}


def train_rows(x, xf, mask, mode):
    if mode in ("aug", "augtta"):
        return np.concatenate([x[mask], xf[mask]]), 2
    return x[mask], 1


def run(spec, d, seeds, cv, alpha):
    ids, x, xf, mode = load_spec(spec, d)
    labels, y = labels_and_truth(ids)
    if mode in ("tta", "augtta"):
        xt = (x + xf) / 2                    # what the classifier would see at test time
        if mode == "tta":
            x = xf = xt
    else:
        xt = x
    out = {"spec": spec, "alpha": alpha, "dim": x.shape[1], "seeds": {}}
    for seed in seeds:
        tr, ca, va = split(ids, seed)
        xtr, rep = train_rows(x, xf, tr, mode)
        f = fit_head(xtr, np.tile(y[tr], (rep, 1)), alpha)
        ab, th = calibrate(f(xt[ca]), y[ca])
        s = 1 / (1 + np.exp(-(ab[:, 0] * f(xt[va]) + ab[:, 1])))
        out["seeds"][seed] = metrics(s, y[va], th, labels)
    if cv:
        tr, ca, _ = split(ids, 0)
        pool = np.where(tr | ca)[0]
        fold = np.array([bucket(ids[i], "cv") % cv for i in pool])
        aucs = []
        for k in range(cv):
            trm = np.zeros(len(ids), bool)
            trm[pool[fold != k]] = True
            xtr, rep = train_rows(x, xf, trm, mode)
            f = fit_head(xtr, np.tile(y[trm], (rep, 1)), alpha)
            te = pool[fold == k]
            lg = f(xt[te])
            aucs.append(np.mean([roc_auc_score(y[te, j], lg[:, j]) for j in range(y.shape[1])]))
        out["cv_auc"] = [float(a) for a in aucs]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/mqexp"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cv", type=int, default=0)
    ap.add_argument("--alpha", type=float, nargs="+", default=[3000.0])
    ap.add_argument("--jsonl", type=Path, help="append results here")
    a = ap.parse_args()
    for spec in a.specs:
        for alpha in a.alpha:
            t = time.time()
            r = run(spec, a.dir, a.seeds, a.cv, alpha)
            r["seconds"] = round(time.time() - t)
            ms = r["seeds"]
            mean = {k: np.mean([m[k] for m in ms.values()]) for k in ("auc", "micro_f1", "hit1", "five")}
            cvs = f" cv {np.mean(r['cv_auc']):.4f}±{np.std(r['cv_auc']):.4f}" if "cv_auc" in r else ""
            per = " ".join(f"s{s}:{m['auc']:.4f}/{m['micro_f1']:.3f}/{m['hit1']:.3f}/{m['five']:.3f}"
                           for s, m in ms.items())
            print(f"{spec:36s} a={alpha:<6g} d={r['dim']:<5d} mean auc {mean['auc']:.4f} f1 {mean['micro_f1']:.4f} "
                  f"hit1 {mean['hit1']:.4f} five {mean['five']:.4f}{cvs} | {per} ({r['seconds']}s)", flush=True)
            if a.jsonl:
                with open(a.jsonl, "a") as fh:
                    fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
