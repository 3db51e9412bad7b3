#!/usr/bin/env python3
"""Comparisons for scripts/check-arm.sh (standard library only).

  arm_compare.py reference CACHE_DIR REFERENCE_JSON VARIANT
      backbone features of the drawn fixture (the only record in the
      feature cache CACHE_DIR, written by `marquee eval`) against
      tests/fixtures/reference-outputs.json, with its tolerance_hint for
      VARIANT: the same checks as tests/backbone_reference.rs (first 16
      features absolute, L2 relative).
  arm_compare.py features CACHE_DIR_A CACHE_DIR_B
      every poster's features in A against B: max |a-b|, max relative L2
      difference, min cosine.
  arm_compare.py genres JSONL_A JSONL_B [MAX_ABS]
      `marquee classify --format jsonl` outputs: max |score_a - score_b|,
      same top-1, same top-3 set, same tags; fails over MAX_ABS.

Exit 0 when within tolerance, 1 otherwise; one summary line on stdout
(`key=value ...`) for the caller to collect.
"""

import glob
import json
import math
import struct
import sys

MAGIC = b"MQFEAT01"


def read_cache(directory):
    files = glob.glob(f"{directory}/*.bin")
    if len(files) != 1:
        sys.exit(f"expected one feature cache file in {directory}, found {files}")
    path = files[0]
    dim = int(path.rsplit("-", 1)[1].split(".")[0])
    out = {}
    with open(path, "rb") as f:
        if f.read(8) != MAGIC:
            sys.exit(f"{path}: not a Marquee feature cache")
        size = 32 + 4 * dim
        while True:
            rec = f.read(size)
            if len(rec) < size:
                break
            out[rec[:32].hex()] = struct.unpack(f"<{dim}f", rec[32:])
    return out


def l2(v):
    return math.sqrt(sum(x * x for x in v))


def reference(cache_dir, ref_path, variant):
    feats = read_cache(cache_dir)
    if len(feats) != 1:
        sys.exit(f"expected one poster in {cache_dir}, found {len(feats)}")
    (f,) = feats.values()
    ref = json.load(open(ref_path))
    r = ref["variants"][variant]
    tol = ref["tolerance_hint"][variant]
    first = r["features_first16"]
    worst = max(abs(a - b) for a, b in zip(f, first))
    rel = abs(l2(f) - r["features_l2"]) / r["features_l2"]
    ok = worst <= tol["features_abs"] and rel <= tol["features_l2_rel"]
    print(
        f"variant={variant} first16_max_abs={worst:.3g} (tol {tol['features_abs']}) "
        f"l2={l2(f):.6f} ref_l2={r['features_l2']} l2_rel={rel:.3g} (tol {tol['features_l2_rel']}) "
        f"{'ok' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


def features(dir_a, dir_b):
    a, b = read_cache(dir_a), read_cache(dir_b)
    common = sorted(set(a) & set(b))
    if not common:
        sys.exit("no poster in common")
    max_abs = max_rel = 0.0
    min_cos = 1.0
    exact = 0
    for k in common:
        x, y = a[k], b[k]
        d = [abs(p - q) for p, q in zip(x, y)]
        max_abs = max(max_abs, max(d))
        max_rel = max(max_rel, l2([p - q for p, q in zip(x, y)]) / max(l2(y), 1e-12))
        dot = sum(p * q for p, q in zip(x, y))
        min_cos = min(min_cos, dot / max(l2(x) * l2(y), 1e-12))
        exact += x == y
    print(
        f"posters={len(common)} bit_identical={exact} max_abs={max_abs:.3g} "
        f"max_rel_l2={max_rel:.3g} min_cosine={min_cos:.9f}"
    )
    return 0


def genres(path_a, path_b, max_abs_allowed=None):
    def load(p):
        rows = {}
        for line in open(p):
            line = line.strip()
            if line:
                r = json.loads(line)
                if "error" in r:
                    sys.exit(f"{p}: {r['file']}: {r['error']}")
                rows[r["id"]] = r
        return rows

    a, b = load(path_a), load(path_b)
    common = sorted(set(a) & set(b))
    if not common or len(common) != len(a) or len(common) != len(b):
        sys.exit(f"poster sets differ: {len(a)} vs {len(b)}, {len(common)} in common")
    worst = 0.0
    top1 = top3 = tags = 0
    for k in common:
        sa = {g["label"]: g["score"] for g in a[k]["genres"]}
        sb = {g["label"]: g["score"] for g in b[k]["genres"]}
        worst = max(worst, max(abs(sa[g] - sb[g]) for g in sa))
        top1 += a[k]["top3"][0]["label"] == b[k]["top3"][0]["label"]
        top3 += {g["label"] for g in a[k]["top3"]} == {g["label"] for g in b[k]["top3"]}
        tags += sorted(a[k]["tags"]) == sorted(b[k]["tags"])
    n = len(common)
    ok = max_abs_allowed is None or worst <= float(max_abs_allowed)
    print(
        f"posters={n} max_abs_score_diff={worst:.3g} same_top1={top1}/{n} "
        f"same_top3={top3}/{n} same_tags={tags}/{n}"
        + ("" if max_abs_allowed is None else f" (tol {max_abs_allowed}) {'ok' if ok else 'FAIL'}")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"reference": reference, "features": features, "genres": genres}[cmd](*args))
