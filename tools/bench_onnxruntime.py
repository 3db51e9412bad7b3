#!/usr/bin/env python3
"""Time ONNX backbones in onnxruntime on real posters, to compare with tract (`marquee bench`).

Times the backbone alone (one session.run on a preprocessed 1x3xHxW tensor, H and W read from
each file's input, 320x224 for the shipped files; decode and
resize are done beforehand and not timed), single-threaded by default, on the same posters
as `marquee bench` would read from ../shared/data. Prints p50/p99 ms and posters/s per file
(and per thread count), `--json` for a machine-readable copy, and with
`--tract-json FILE` (the output of `marquee bench --json`) the tract/onnxruntime ratio of
backbone p50 per variant (< 1 means tract is faster).

Exit status 2 if the poster folder is absent.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def variant_of(path: Path) -> str:
    stem = path.stem
    for v in ("int8", "f32"):
        if stem.endswith(v):
            return v
    return stem


def bench_file(path: Path, inputs: list[np.ndarray], threads: int, iters: int, warmup: int) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads == 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    name = sess.get_inputs()[0].name
    for i in range(warmup):
        sess.run(None, {name: inputs[i % len(inputs)]})
    times = []
    t_all = time.perf_counter()
    for i in range(iters):
        x = inputs[i % len(inputs)]
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    wall = time.perf_counter() - t_all
    a = np.asarray(times)
    return {
        "file": path.name,
        "variant": variant_of(path),
        "threads": threads,
        "iters": iters,
        "load_ms": round(load_ms, 1),
        "backbone_p50_ms": round(float(np.percentile(a, 50)), 3),
        "backbone_p99_ms": round(float(np.percentile(a, 99)), 3),
        "backbone_mean_ms": round(float(a.mean()), 3),
        "posters_per_s": round(iters / wall, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="ONNX files (default: both in models/)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts to run (default 1)")
    ap.add_argument("--posters", type=int, default=50, help="how many posters (every 20th row, offset 10)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--tract-json", type=Path, help="output of `marquee bench --json`, to print tract/ort ratios")
    args = ap.parse_args(argv)

    models = args.models or [common.F32_ONNX, common.INT8_ONNX]
    for m in models:
        if not m.is_file():
            print(f"error: {m} not found", file=sys.stderr)
            return 1
    try:
        paths = common.poster_ids(20, 10, args.posters)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: no posters found under {common.DATA}", file=sys.stderr)
        return 2
    cache: dict[tuple[int, int], list[np.ndarray]] = {}
    results = []
    for m in models:
        hw = common.input_hw(m)
        if hw not in cache:
            cache[hw] = [common.load_image(p, hw) for p in paths]
        inputs = cache[hw]
        for t in args.threads:
            r = bench_file(m, inputs, t, args.iters, args.warmup)
            r["input_hw"] = list(hw)
            results.append(r)

    ratios = {}
    if args.tract_json:
        tract = json.loads(args.tract_json.read_text())
        for r in results:
            tv = tract.get("variants", {}).get(r["variant"], {})
            if r["threads"] == 1 and "backbone_p50_ms" in tv:
                ratios[r["variant"]] = {
                    "tract_p50_ms": tv["backbone_p50_ms"],
                    "onnxruntime_p50_ms": r["backbone_p50_ms"],
                    "tract_over_onnxruntime": round(tv["backbone_p50_ms"] / r["backbone_p50_ms"], 3),
                }

    doc = {
        "onnxruntime": ort.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "posters": len(inputs),
        "results": results,
    }
    if ratios:
        doc["tract_ratio"] = ratios
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"onnxruntime {ort.__version__} on {doc['cpu']}, {len(inputs)} posters, {args.iters} runs each "
          "(backbone only, preprocessed input)")
    print(f"{'file':32s} {'input HxW':>9s} {'threads':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'posters/s':>10s}")
    for r in results:
        hw = "x".join(map(str, r["input_hw"]))
        print(f"{r['file']:32s} {hw:>9s} {r['threads']:7d} {r['backbone_p50_ms']:8.2f} {r['backbone_p99_ms']:8.2f} "
              f"{r['posters_per_s']:10.1f}")
    if ratios:
        print("\ntract / onnxruntime, backbone p50, 1 thread (< 1: tract faster)")
        for v, r in ratios.items():
            print(f"  {v:5s} tract {r['tract_p50_ms']:.2f} ms / onnxruntime {r['onnxruntime_p50_ms']:.2f} ms "
                  f"= {r['tract_over_onnxruntime']:.2f}")
    elif args.tract_json:
        print(f"\n(no matching single-thread variants with backbone_p50_ms in {args.tract_json})")
    return 0


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
