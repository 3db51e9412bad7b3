#!/usr/bin/env python3
"""Quantise models/efficientnet-lite0-f32.onnx to int8 in a form tract runs fast.

The quantised graph is written directly (no onnxruntime.quantization, no com.microsoft ops).
Two forms (--form):

mixed (default, shipped; MixedBuilder): the float graph, with only the 1x1 expand/project convs
  of blocks 9-15 (--min-block) and the head conv as QLinearConv: uint8 activations, symmetric
  int8 weights with ONE scale per tensor (tract 0.23.9 fuses only a scalar requantisation into
  its int8 matmul), each wrapped so tract runs it as a single matmul; float<->uint8 by
  Mul/Add/Clip/Cast and Cast/Sub/Mul; depthwise convs, residual Adds, pool and classifier in
  float; then the stride-2 depthwise convs are rewritten as 4 stride-1 polyphase convs
  (tools/polyphase.py, numerically the same; tract's x86 depthwise kernel needs stride 1).

full (the earlier default; QBuilder):
  image (float) -> QuantizeLinear (scale 1/128, so (p-127)/128 inputs are represented exactly)
  every Conv    -> QLinearConv: int8 weights, symmetric, per output channel (zero point 0);
                   int32 bias; uint8 (default) or int8 activations; ReLU6 folded into the
                   output range ([0, min(6, calibrated max)], zero point at 0)
  residual Add  -> DequantizeLinear x2 -> Add (float) -> QuantizeLinear   (tract has no QLinearAdd)
  head          -> DequantizeLinear -> GlobalAveragePool -> Flatten = `features` (float)
  classifier    -> Gemm in float on `features` = `logits`
  --depthwise float and --weights per-tensor|per-channel-vector-zp build the other full-form
  variants that were timed in tract (tools/README.md, "int8 in tract").

Activation ranges are calibrated with onnxruntime on the f32 graph over posters taken
deterministically from ../shared/data/posters.csv (every 20th row: ~290 posters, resized
whole to the f32 graph's input size, 224 wide x 320 high by default, bilinear, same normalisation). ReLU6 outputs use the calibrated max
(capped at 6); the other tensors (block outputs, residual sums) use the mean over the
calibration images of each image's 0.01/99.99 percentile (--calibration minmax to use the
absolute min/max instead).

Afterwards it reports int8-vs-f32 feature cosine similarity on 100 other posters
(rows 10, 30, 50, ...) and updates the int8 entry of models/manifest.json.
Deterministic: the same inputs give the same bytes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import polyphase  # noqa: E402

CALIB_STEP = 20
EVAL_OFFSET, EVAL_LIMIT = 10, 100
PCT = 99.99


# --------------------------------------------------------------------------- calibration


def calibrate(f32_path: Path, posters: list[Path], method: str) -> dict[str, tuple[float, float]]:
    model = onnx.load(str(f32_path))
    names = ["image"] + [o for n in model.graph.node for o in n.output]
    known = {o.name for o in model.graph.output}
    for n in names:
        if n not in known and n != "image":
            model.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    hw = common.input_hw(f32_path)
    out_names = [o.name for o in sess.get_outputs()]
    stats: dict[str, list] = {n: [] for n in out_names + ["image"]}
    for i, p in enumerate(posters):
        x = common.load_image(p, hw)
        outs = sess.run(out_names, {"image": x})
        for n, v in zip(["image"] + out_names, [x] + outs):
            v = v.ravel()
            lo, hi = (np.percentile(v, [100 - PCT, PCT]) if method == "percentile" else (v.min(), v.max()))
            stats[n].append((float(v.min()), float(v.max()), float(lo), float(hi)))
        if (i + 1) % 50 == 0:
            print(f"  calibrated {i + 1}/{len(posters)}", flush=True)
    ranges = {}
    for n, s in stats.items():
        a = np.asarray(s, np.float64)
        if method == "percentile":
            ranges[n] = (float(a[:, 2].mean()), float(a[:, 3].mean()))
        else:
            ranges[n] = (float(a[:, 0].min()), float(a[:, 1].max()))
        ranges[n + "#max"] = (float(a[:, 0].min()), float(a[:, 1].max()))
    return ranges


def cached_calibration(f32_path: Path, posters: list[Path], method: str, step: int, cache: Path | None):
    """Calibration ranges, cached in tools/cache/ keyed by the f32 file, method and poster list."""
    import hashlib
    import json

    if cache is None:
        return calibrate(f32_path, posters, method)
    key = hashlib.sha256((common.sha256_file(f32_path) + method + str(PCT) + "\n".join(p.name for p in posters))
                         .encode()).hexdigest()[:16]
    path = cache / f"calib-{method}-step{step}-{key}.json"
    if path.is_file():
        print(f"  using cached calibration {path}")
        return {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
    ranges = calibrate(f32_path, posters, method)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ranges, indent=0, sort_keys=True))
    return ranges


# --------------------------------------------------------------------------- graph


class QParams:
    def __init__(self, scale: float, zp: int, dtype):
        self.scale = np.float32(scale)
        self.zp = zp
        self.dtype = dtype


def act_qparams(lo: float, hi: float, dtype) -> QParams:
    """Asymmetric range including 0; uint8 [0,255] or int8 [-128,127]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmin, qmax = (0, 255) if dtype == np.uint8 else (-128, 127)
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return QParams(scale, zp, dtype)


class QBuilder:
    def __init__(self, f32: onnx.ModelProto, ranges, act_dtype, depthwise: str, weights: str = "per-channel"):
        self.weights = weights
        self.f32 = f32
        self.ranges = ranges
        self.act = act_dtype
        self.depthwise = depthwise
        self.inits = {i.name: numpy_helper.to_array(i) for i in f32.graph.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.new_inits: list[onnx.TensorProto] = []
        self.q: dict[str, QParams] = {}   # quantised tensor name -> params
        self.consts: dict[str, str] = {}

    def const(self, name, arr):
        self.new_inits.append(numpy_helper.from_array(arr, name))
        return name

    def qconsts(self, tensor: str, qp: QParams) -> tuple[str, str]:
        s = self.const(f"{tensor}.scale", np.array(qp.scale, np.float32))
        z = self.const(f"{tensor}.zp", np.array(qp.zp, qp.dtype))
        return s, z

    def quantize(self, fname: str, qname: str, qp: QParams):
        s, z = self.qconsts(qname, qp)
        self.nodes.append(helper.make_node("QuantizeLinear", [fname, s, z], [qname], name=f"{qname}.quantize"))
        self.q[qname] = qp

    def dequantize(self, qname: str, fname: str):
        s, z = f"{qname}.scale", f"{qname}.zp"
        self.nodes.append(helper.make_node("DequantizeLinear", [qname, s, z], [fname], name=f"{fname}.dequantize"))

    def out_qparams(self, tensor: str, relu6: bool) -> QParams:
        lo, hi = self.ranges[tensor]
        if relu6:
            hi_max = self.ranges[tensor + "#max"][1]
            return act_qparams(0.0, min(6.0, max(hi_max, 1e-3)), self.act)
        return act_qparams(lo, hi, self.act)

    def build(self) -> onnx.ModelProto:
        g = self.f32.graph
        consumers = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        skip = set()
        self.quantize("image", "image.q", QParams(1.0 / 128.0, 127 if self.act == np.uint8 else -1, self.act))
        qname = {"image": "image.q"}   # float tensor name in f32 graph -> quantised name here
        for n in g.node:
            if n.name in skip:
                continue
            if n.op_type == "Conv":
                nxt = consumers.get(n.output[0], [])
                relu6 = len(nxt) == 1 and nxt[0].op_type == "Clip"
                out = nxt[0].output[0] if relu6 else n.output[0]
                if relu6:
                    skip.add(nxt[0].name)
                self.conv(n, qname[n.input[0]], out, relu6)
                qname[out] = out + ".q"
            elif n.op_type == "Add":
                a, b = n.input
                self.dequantize(qname[a], f"{n.name}.a")
                self.dequantize(qname[b], f"{n.name}.b")
                self.nodes.append(helper.make_node("Add", [f"{n.name}.a", f"{n.name}.b"], [n.output[0]], name=n.name))
                self.quantize(n.output[0], n.output[0] + ".q", self.out_qparams(n.output[0], False))
                qname[n.output[0]] = n.output[0] + ".q"
            elif n.op_type == "GlobalAveragePool":
                self.dequantize(qname[n.input[0]], n.input[0])
                self.nodes.append(n)
            elif n.op_type in ("Flatten", "Concat", "Gemm"):
                self.nodes.append(n)
            else:
                raise SystemExit(f"unexpected op {n.op_type} in the f32 graph")
        used = {i for nd in self.nodes for i in nd.input}
        keep = [i for i in g.initializer if i.name in used]
        graph = helper.make_graph(self.nodes, g.name + "-int8", list(g.input), list(g.output), keep + self.new_inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="marquee-tools/quantize_backbone.py", producer_version="1")
        model.ir_version = 8
        model.doc_string = self.f32.doc_string + " Quantised: " + self.describe()
        helper.set_model_props(model, {p.key: p.value for p in self.f32.metadata_props})
        onnx.checker.check_model(model, full_check=True)
        return model

    def describe(self) -> str:
        w = "per-tensor" if self.weights == "per-tensor" else "per-output-channel"
        return (f"QLinearConv with {w} symmetric int8 weights (zero point 0) and "
                f"{np.dtype(self.act).name} activations"
                + (" (depthwise convs in float between Dequantize/Quantize)" if self.depthwise == "float" else "")
                + "; ReLU6 folded into the output range; residual Add and GlobalAveragePool in float")

    def conv(self, n: onnx.NodeProto, xq: str, out: str, relu6: bool):
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w = self.inits[n.input[1]].astype(np.float64)
        b = self.inits[n.input[2]].astype(np.float64)
        oq = self.out_qparams(out, relu6)
        if attrs.get("group", 1) > 1 and self.depthwise == "float":
            self.dequantize(xq, f"{n.name}.in")
            pre = f"{n.name}.f"
            self.nodes.append(helper.make_node("Conv", [f"{n.name}.in", n.input[1], n.input[2]], [pre], name=n.name, **attrs))
            if relu6:
                act = f"{n.name}.clip"
                self.nodes.append(helper.make_node("Clip", [pre, "relu6.min", "relu6.max"], [act], name=f"{n.name}.relu6"))
                pre = act
            self.quantize(pre, out + ".q", oq)
            return
        xqp = self.q[xq]
        absmax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        if self.weights == "per-tensor":
            absmax = np.full_like(absmax, absmax.max())
        w_scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        wq = np.clip(np.round(w / w_scale[:, None, None, None].astype(np.float64)), -127, 127).astype(np.int8)
        bias_scale = np.float64(xqp.scale) * w_scale.astype(np.float64)
        bq = np.clip(np.round(b / bias_scale), -(2**31), 2**31 - 1).astype(np.int32)
        wn = self.const(f"{n.name}.weight.q", wq)
        if self.weights == "per-tensor":
            ws = self.const(f"{n.name}.weight.scale", np.array(w_scale[0], np.float32))
        else:
            ws = self.const(f"{n.name}.weight.scale", w_scale)
        if self.weights == "per-channel-vector-zp":
            wz = self.const(f"{n.name}.weight.zp", np.zeros(w.shape[0], np.int8))
        else:
            # A scalar 0 zero point with per-channel scales: the same arithmetic, but tract then
            # skips the runtime zero-point compensation (Reduce<Sum> + Sub over the activations).
            wz = self.const(f"{n.name}.weight.zp", np.array(0, np.int8))
        bn = self.const(f"{n.name}.bias.q", bq)
        ys, yz = self.qconsts(out + ".q", oq)
        self.nodes.append(helper.make_node(
            "QLinearConv", [xq, f"{xq}.scale", f"{xq}.zp", wn, ws, wz, ys, yz, bn], [out + ".q"],
            name=n.name, **attrs))
        self.q[out + ".q"] = oq


# --------------------------------------------------------------------------- mixed form


MIXED_MIN_BLOCK = 9


class MixedBuilder:
    """The `mixed` form: a float graph in which only the 1x1 convs of the late blocks and the head
    conv are int8, shaped for what tract 0.23.9 runs fast (tools/README.md):

    - quantised input: x / s + zp + 0.5, Clip [0, 255], Cast to uint8 (tract fuses Mul/Add/Clip;
      its QuantizeLinear is a slower scalar loop);
    - QLinearConv with one symmetric int8 weight scale per tensor (zero point 0), so tract folds
      the requantisation into its int8 matmul kernel (per-channel scales become separate passes);
    - expand and head convs (ReLU6): uint8 output on [0, min(6, calibrated max)], Cast to float,
      the output scale folded into the next depthwise conv's weights (or a Mul after the pool);
      the conv is wrapped in Reshape [1,C,1,H*W] -> Pad (16 columns of the zero point) ->
      QLinearConv -> Slice -> Reshape so tract runs it as one matmul rather than H of them;
    - project convs (no activation): asymmetric uint8 output, Cast, Sub, Mul back to float;
    - depthwise convs, residual Adds, the pool and the classifier stay float;
    - then tools/polyphase.py rewrites the stride-2 depthwise convs as 4 stride-1 ones.
    """

    KINDS = ("expand", "project", "head")

    def __init__(self, f32: onnx.ModelProto, ranges, min_block: int = MIXED_MIN_BLOCK):
        self.f32 = f32
        self.ranges = ranges
        self.min_block = min_block
        self.inits = {i.name: numpy_helper.to_array(i) for i in f32.graph.initializer}
        inferred = onnx.shape_inference.infer_shapes(f32)
        self.shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
                       for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}
        self.nodes: list[onnx.NodeProto] = []
        self.new: dict[str, onnx.TensorProto] = {}
        self.quantized: dict[str, tuple[str, QParams]] = {}
        self.int8_convs: list[str] = []

    def const(self, name, arr):
        self.new[name] = numpy_helper.from_array(arr, name)
        return name

    def node(self, op, ins, outs, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=name, **attrs))

    def quant(self, x: str) -> tuple[str, QParams]:
        """float tensor -> uint8, rounded half up and saturated (Mul, Add, Clip, Cast)."""
        if x in self.quantized:
            return self.quantized[x]
        qp = act_qparams(*self.ranges[x], np.uint8)
        self.const(f"{x}.scale", np.array(qp.scale, np.float32))
        self.const(f"{x}.zp", np.array(qp.zp, np.uint8))
        inv = self.const(f"{x}.qinv", np.array(1.0 / np.float64(qp.scale), np.float32))
        off = self.const(f"{x}.qoff", np.array(qp.zp + 0.5, np.float32))
        lo = self.const("q.lo", np.array(0.0, np.float32))
        hi = self.const("q.hi", np.array(255.0, np.float32))
        self.node("Mul", [x, inv], [x + ".qm"], x + ".qmul")
        self.node("Add", [x + ".qm", off], [x + ".qa"], x + ".qadd")
        self.node("Clip", [x + ".qa", lo, hi], [x + ".qc"], x + ".qclip")
        self.node("Cast", [x + ".qc"], [x + ".q"], x + ".qcast", to=TensorProto.UINT8)
        self.quantized[x] = (x + ".q", qp)
        return self.quantized[x]

    def selected(self, n: onnx.NodeProto, attrs) -> bool:
        if n.op_type != "Conv" or attrs.get("group", 1) != 1:
            return False
        kind = n.name.split(".")[-1]
        block = int(n.name[5:7]) if n.name.startswith("block") else (99 if n.name == "head" else -1)
        return kind in self.KINDS and block >= self.min_block

    def weights(self, n, w, b, xqp: QParams):
        ws = np.float32(np.abs(w).max() / 127.0)
        wq = np.clip(np.round(w / np.float64(ws)), -127, 127).astype(np.int8)
        bq = np.round(b / (np.float64(xqp.scale) * np.float64(ws))).astype(np.int32)
        return (self.const(f"{n.name}.weight.q", wq), self.const(f"{n.name}.weight.scale", np.array(ws, np.float32)),
                self.const(f"{n.name}.weight.zp", np.array(0, np.int8)), self.const(f"{n.name}.bias.q", bq))

    def build(self) -> onnx.ModelProto:
        g = self.f32.graph
        consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        fold: dict[str, np.ndarray] = {}   # float tensor -> per-channel factor its consumer must apply
        done = set()
        for n in g.node:
            if n.name in done:
                continue
            attrs = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            if self.selected(n, attrs):
                self.int8_convs.append(n.name)
                nxt = consumers[n.output[0]]
                relu6 = len(nxt) == 1 and nxt[0].op_type == "Clip"
                xq, xqp = self.quant(n.input[0])
                w = self.inits[n.input[1]].astype(np.float64)
                b = self.inits[n.input[2]].astype(np.float64)
                if not relu6:
                    out = n.output[0]
                    oq = act_qparams(*self.ranges[out], np.uint8)
                    wn, ws, wz, bn = self.weights(n, w, b, xqp)
                    ys = self.const(f"{out}.pq.scale", np.array(oq.scale, np.float32))
                    yz = self.const(f"{out}.pq.zp", np.array(oq.zp, np.uint8))
                    self.node("QLinearConv", [xq, f"{n.input[0]}.scale", f"{n.input[0]}.zp", wn, ws, wz, ys, yz, bn],
                              [out + ".pq"], n.name, **attrs)
                    self.node("Cast", [out + ".pq"], [out + ".u"], out + ".cast", to=TensorProto.FLOAT)
                    self.node("Sub", [out + ".u", self.const(f"{out}.zpf", np.array(oq.zp, np.float32))],
                              [out + ".s"], out + ".sub")
                    self.node("Mul", [out + ".s", self.const(f"{out}.sf", np.array(oq.scale, np.float32))],
                              [out], out + ".mul")
                    continue
                done.add(nxt[0].name)
                out = nxt[0].output[0]
                hi = min(6.0, max(self.ranges[out + "#max"][1], 1e-3))
                # output in units of hi: uint8 scale 1/255, zero point 0 = ReLU6 clamp to [0, hi]
                wn, ws, wz, bn = self.weights(n, w / hi, b / hi, xqp)
                ys = self.const(f"{out}.q.scale", np.array(1 / 255, np.float32))
                yz = self.const(f"{out}.q.zp", np.array(0, np.uint8))
                _, C, H, W = self.shapes[n.input[0]]
                co = w.shape[0]
                self.node("Reshape", [xq, self.const(f"{n.name}.flat_in", np.array([1, C, 1, H * W], np.int64))],
                          [xq + ".flat"], n.name + ".flatten")
                self.node("Pad", [xq + ".flat", self.const(f"{n.name}.padv", np.array([0, 0, 0, 0, 0, 0, 0, 16], np.int64)),
                                  self.const(f"{n.name}.padc", np.array(xqp.zp, np.uint8))],
                          [xq + ".flatp"], n.name + ".blockpad")
                self.node("QLinearConv", [xq + ".flatp", f"{n.input[0]}.scale", f"{n.input[0]}.zp", wn, ws, wz, ys, yz, bn],
                          [out + ".qf"], n.name, **attrs)
                self.node("Slice", [out + ".qf", self.const(f"{n.name}.sl0", np.array([0], np.int64)),
                                    self.const(f"{n.name}.sl1", np.array([H * W], np.int64)),
                                    self.const(f"{n.name}.sla", np.array([3], np.int64))],
                          [out + ".qs"], n.name + ".blockslice")
                self.node("Reshape", [out + ".qs", self.const(f"{n.name}.flat_out", np.array([1, co, H, W], np.int64))],
                          [out + ".q"], n.name + ".unflatten")
                self.node("Cast", [out + ".q"], [out], out + ".cast", to=TensorProto.FLOAT)
                fold[out] = np.full(co, hi / 255.0)
                continue
            if n.op_type == "Conv" and n.input[0] in fold:
                assert attrs.get("group", 1) > 1, n.name
                f = fold[n.input[0]]
                wf = (self.inits[n.input[1]].astype(np.float64) * f[:, None, None, None]).astype(np.float32)
                self.node("Conv", [n.input[0], self.const(n.name + ".weight.folded", wf), n.input[2]], list(n.output),
                          n.name, **attrs)
                continue
            if n.op_type == "GlobalAveragePool" and n.input[0] in fold:
                self.node("GlobalAveragePool", [n.input[0]], [n.output[0] + ".u"], n.name)
                f = fold[n.input[0]].astype(np.float32).reshape(1, -1, 1, 1)
                self.node("Mul", [n.output[0] + ".u", self.const(n.name + ".fold.scale", f)], [n.output[0]], n.name + ".fold")
                continue
            if n.op_type not in ("Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Concat", "Gemm"):
                raise SystemExit(f"unexpected op {n.op_type} in the f32 graph")
            assert not any(i in fold for i in n.input), n.name
            self.nodes.append(n)
        used = {i for nd in self.nodes for i in nd.input}
        keep = [i for i in g.initializer if i.name in used] + list(self.new.values())
        graph = helper.make_graph(self.nodes, g.name + "-int8-mixed", list(g.input), list(g.output), keep)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="marquee-tools/quantize_backbone.py", producer_version="2")
        model.ir_version = 8
        model.doc_string = self.f32.doc_string + " Quantised: " + self.describe()
        helper.set_model_props(model, {p.key: p.value for p in self.f32.metadata_props})
        onnx.checker.check_model(model, full_check=True)
        return polyphase.rewrite(model)

    def describe(self) -> str:
        first = min(int(c[5:7]) for c in self.int8_convs if c.startswith("block")) if self.int8_convs else None
        return (f"mixed precision: float graph with {len(self.int8_convs)} int8 QLinearConv, the 1x1 expand and "
                f"project convs of blocks {first}-15 and the head conv (uint8 activations, symmetric int8 weights "
                "with one scale per tensor, zero point 0; ReLU6 folded into the output range, int8 outputs cast "
                "back to float); stem, all depthwise convs, blocks 0-"
                f"{first - 1 if first is not None else 15}, residual Adds, pool and classifier in float; "
                "the stride-2 depthwise convs rewritten as 4 stride-1 polyphase convs (tools/polyphase.py), "
                "numerically the same")


# --------------------------------------------------------------------------- evaluation


def cosine_report(f32_path: Path, int8_path: Path, posters: list[Path]) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    # Plain ONNX semantics: onnxruntime's graph optimiser rewrites Dequantize->Conv->Quantize
    # patterns (it would re-quantise a float depthwise conv), so it is disabled for the check.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s32 = ort.InferenceSession(str(f32_path), so, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(int8_path), so, providers=["CPUExecutionProvider"])
    hw = common.input_hw(f32_path)
    cos, top1 = [], []
    for p in posters:
        x = common.load_image(p, hw)
        f, l = s32.run(["features", "logits"], {"image": x})
        fq, lq = s8.run(["features", "logits"], {"image": x})
        f, fq = f[0].astype(np.float64), fq[0].astype(np.float64)
        cos.append(float(f @ fq / (np.linalg.norm(f) * np.linalg.norm(fq) + 1e-12)))
        top1.append(int(np.argmax(l) == np.argmax(lq)))
    c = np.asarray(cos)
    return {"posters": len(posters), "cosine_mean": float(c.mean()), "cosine_min": float(c.min()),
            "cosine_p05": float(np.percentile(c, 5)), "imagenet_top1_agreement": float(np.mean(top1))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--f32", type=Path, default=common.F32_ONNX)
    ap.add_argument("--out", type=Path, default=common.INT8_ONNX)
    ap.add_argument("--form", choices=["mixed", "full"], default="mixed",
                    help="mixed (default, shipped): float graph with int8 1x1 convs in the late blocks and the head, "
                         "per-tensor weight scales, polyphase stride-2 depthwise; full: every conv QLinearConv "
                         "(the options below select its variants)")
    ap.add_argument("--min-block", type=int, default=MIXED_MIN_BLOCK,
                    help=f"mixed form: first block whose 1x1 convs are int8 (default {MIXED_MIN_BLOCK})")
    ap.add_argument("--activations", choices=["uint8", "int8"], default="uint8")
    ap.add_argument("--depthwise", choices=["int8", "float"], default="int8",
                    help="quantise the depthwise convs too (default) or keep them float")
    ap.add_argument("--weights", choices=["per-channel", "per-channel-vector-zp", "per-tensor"], default="per-channel",
                    help="weight scales per output channel with a scalar zero point (default), the same with "
                         "a per-channel zero-point vector, or one scale per tensor")
    ap.add_argument("--calibration", choices=["percentile", "minmax"], default="percentile")
    ap.add_argument("--calib-step", type=int, default=CALIB_STEP, help="every N-th row of posters.csv")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "cache",
                    help="where calibration ranges are cached (default tools/cache, git-ignored)")
    ap.add_argument("--no-cache", dest="cache", action="store_const", const=None)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--variant", default=None,
                    help="manifest variant this file is recorded as (default: int8 for the default output "
                         "file; the all-QLinearConv file onnxruntime runs is int8-full)")
    ap.add_argument("--runtime", choices=["tract", "onnxruntime"], default=None,
                    help="record the variant as the one this runtime runs best (manifest runtime_variants)")
    args = ap.parse_args(argv)
    if args.variant is None and args.out.resolve() == common.INT8_ONNX.resolve():
        args.variant = "int8"

    try:
        calib = common.poster_ids(args.calib_step, 0)
        evalset = common.poster_ids(args.calib_step, EVAL_OFFSET % args.calib_step, EVAL_LIMIT)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"calibrating on {len(calib)} posters (every {args.calib_step}th row), method {args.calibration}")
    ranges = cached_calibration(args.f32, calib, args.calibration, args.calib_step, args.cache)
    f32 = onnx.load(str(args.f32))
    if args.form == "mixed":
        qb = MixedBuilder(f32, ranges, args.min_block)
    else:
        qb = QBuilder(f32, ranges, np.uint8 if args.activations == "uint8" else np.int8, args.depthwise, args.weights)
    model = qb.build()
    data = model.SerializeToString(deterministic=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, {len(model.graph.node)} nodes)")

    report = None
    if not args.no_eval:
        report = cosine_report(args.f32, args.out, evalset)
        print(f"int8 vs f32 on {report['posters']} held-out posters: feature cosine mean {report['cosine_mean']:.4f}, "
              f"p05 {report['cosine_p05']:.4f}, min {report['cosine_min']:.4f}; "
              f"ImageNet top-1 agreement {report['imagenet_top1_agreement']:.2f}")

    if not args.no_manifest and args.variant:
        desc = (qb.describe() + f"; activation ranges calibrated with onnxruntime on {len(calib)} posters "
                f"(every {args.calib_step}th row of posters.csv, {common.resize_text(*common.input_hw(args.f32))}), "
                + ("mean of per-poster 0.01/99.99 percentiles; ReLU6 outputs [0, min(6, max)]"
                   if args.calibration == "percentile" else "absolute min/max")
                + ("; chosen over the all-QLinearConv form (--form full) because tract 0.23.9 runs it faster "
                   "than the f32 file, see tools/README.md" if args.form == "mixed" else ""))

        def upd(doc):
            doc.setdefault("variants", {})
            entry = common.variant_entry(args.out)
            entry["quantisation"] = desc
            if report:
                entry["vs_f32"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}
            else:   # --no-eval: keep the figures only if they were measured on this very file
                old = doc["variants"].get(args.variant, {})
                if old.get("sha256") == entry["sha256"] and "vs_f32" in old:
                    entry["vs_f32"] = old["vs_f32"]
            if args.form == "full":
                # tract 0.23.9 cannot run this graph: its QLinearConv lowering overflows
                # (a panic in a debug build, wrapped arithmetic in a release one).
                entry["runtimes"] = ["onnxruntime"]
            doc["variants"][args.variant] = entry
            doc.setdefault("default_variant", "int8")
            if args.runtime:
                doc.setdefault("runtime_variants", {})[args.runtime] = args.variant
        common.update_manifest(upd)
        print(f"updated {common.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
