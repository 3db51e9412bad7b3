#!/usr/bin/env python3
"""Experiment-only: pooled features of every poster (and of its mirror image) with onnxruntime.

For an ONNX file from export_variant.py (outputs `avg`, `max`), writes OUT.npz with
ids (posters.csv order), avg, max, avg_flip, max_flip (float32). With --colour, writes the
colour statistics of each poster instead (no model): RGB mean/std, HSV histograms.
Posters are read from ../shared/data (or $MARQUEE_DATA) and never copied.

  nice -n 10 python tools/experiments/extract.py /tmp/mqexp/lite0-224x320.onnx --out /tmp/mqexp/lite0-224x320
  nice -n 10 python tools/experiments/extract.py --colour --out /tmp/mqexp/colour
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402


def rows() -> list[str]:
    with open(common.DATA / "posters.csv", newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def colour_stats(im: Image.Image) -> np.ndarray:
    im = im.resize((224, 320), Image.BILINEAR)
    rgb = np.asarray(im, np.float32) / 255.0
    hsv = np.asarray(im.convert("HSV"), np.float32) / 255.0
    h, s, v = hsv[..., 0].ravel(), hsv[..., 1].ravel(), hsv[..., 2].ravel()
    feats = [rgb.reshape(-1, 3).mean(0), rgb.reshape(-1, 3).std(0),
             np.array([s.mean(), s.std(), v.mean(), v.std()])]
    # hue histogram weighted by saturation*value (grey pixels have no meaningful hue)
    feats.append(np.histogram(h, 18, (0, 1), weights=s * v)[0] / max(1e-6, (s * v).sum()))
    feats.append(np.histogram(s, 8, (0, 1))[0] / s.size)
    feats.append(np.histogram(v, 8, (0, 1))[0] / v.size)
    joint = np.histogramdd(rgb.reshape(-1, 3), bins=(4, 4, 4), range=[(0, 1)] * 3)[0].ravel() / h.size
    feats.append(joint)
    # thirds of the poster (top, middle, bottom) brightness and saturation
    for part in np.array_split(hsv, 3, axis=0):
        feats.append(np.array([part[..., 1].mean(), part[..., 2].mean()]))
    return np.concatenate(feats).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--colour", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-flip", action="store_true", help="skip the mirror images (half the time)")
    a = ap.parse_args()
    ids = rows()
    img_dir = common.DATA / "posters"
    t0 = time.time()
    if a.colour:
        out = np.stack([colour_stats(Image.open(img_dir / f"{i}.jpg").convert("RGB")) for i in ids])
        np.savez(a.out, ids=np.array(ids), colour=out)
        print(f"colour {out.shape} in {time.time() - t0:.0f}s")
        return
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(str(a.model), so, providers=["CPUExecutionProvider"])
    hw = common.input_hw(a.model)
    keys = ("avg", "max") if a.no_flip else ("avg", "max", "avg_flip", "max_flip")
    res = {k: [] for k in keys}
    for n, i in enumerate(ids):
        x = common.load_image(img_dir / f"{i}.jpg", hw)
        views = [("", x)] if a.no_flip else [("", x), ("_flip", np.ascontiguousarray(x[..., ::-1]))]
        for suffix, inp in views:
            avg, mx = sess.run(["avg", "max"], {"image": inp})
            res["avg" + suffix].append(avg[0])
            res["max" + suffix].append(mx[0])
        if n % 1000 == 0:
            print(f"  {n}/{len(ids)} {time.time() - t0:.0f}s", flush=True)
    np.savez(a.out, ids=np.array(ids), **{k: np.stack(v) for k, v in res.items()})
    print(f"{a.model.name}: {len(ids)} posters x{len(views)} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
