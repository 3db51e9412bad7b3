"""Polyphase rewrite of the stride-2 depthwise convs, for tract on x86 (tools/README.md).

tract 0.23.9's AVX depthwise kernel handles only input stride 1; a stride-2 depthwise conv
falls back to its scalar path. A stride-2 conv with TF SAME padding is exactly the sum of 4
stride-1 depthwise convs, one per even/odd-row x even/odd-column phase of its input, with the
kernel taps of that phase (2x2/2x1/1x2/1x1 for 3x3, 2x2/2x3/3x2/3x3 for 5x5). The bias is added
once. The phases are cut with Reshape [1,C,H/2,2,W/2,2] + Slice (no strided Slice: tract turns
that into a slow Downsample) and, where the depthwise conv's input comes from a 1x1 conv through
element-wise ops only, the cut is moved before that chain (the 1x1 conv and its chain run once
per phase on the narrow block input instead of slicing the wide expanded tensor).

Only used for the int8 `mixed` form; the f32 file stays the faithful reference export.
Deterministic: node and initializer order follow the input graph.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

# ops that act per element (or reshape / pad / slice the flattened plane, adjusted below), through
# which the phase split can be moved up
_PASS = ("Clip", "DequantizeLinear", "QuantizeLinear", "Cast", "Reshape", "Pad", "Slice")


def _attrs(nd: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in nd.attribute}


def _is_1x1(nd: onnx.NodeProto) -> bool:
    a = _attrs(nd)
    return a.get("kernel_shape") == [1, 1] and a.get("strides", [1, 1]) == [1, 1] and a.get("group", 1) == 1


def _is_dw_s2(nd: onnx.NodeProto) -> bool:
    a = _attrs(nd)
    return nd.op_type == "Conv" and a.get("group", 1) > 1 and a.get("strides", [1, 1]) == [2, 2]


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    const_names = set(inits)
    shapes = {}
    inferred = shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    producer = {o: nd for nd in g.node for o in nd.output}
    nconsumers: dict[str, int] = {}
    for nd in g.node:
        for i in nd.input:
            nconsumers[i] = nconsumers.get(i, 0) + 1

    def single_use(t):
        return t in producer and nconsumers.get(t, 0) == 1

    def only_data_input_varies(nd):
        return all(i in const_names for i in nd.input[1:])

    # For each stride-2 depthwise conv, the chain [1x1 conv ... element-wise ops] feeding it.
    moved, chains = set(), {}
    for n in g.node:
        if not _is_dw_s2(n):
            continue
        chain, t = [], n.input[0]
        while single_use(t):
            p = producer[t]
            if p.op_type in _PASS and only_data_input_varies(p):
                chain.append(p)
                t = p.input[0]
                continue
            if p.op_type in ("Conv", "QLinearConv") and _is_1x1(p):
                chain.append(p)
                t = p.input[0]
                while single_use(t) and producer[t].op_type in ("Pad", "Reshape"):
                    chain.append(producer[t])
                    t = producer[t].input[0]
            break
        if any(c.op_type in ("Conv", "QLinearConv") for c in chain):
            chains[n.name] = (t, chain[::-1])
            moved |= {c.name for c in chain}

    new_nodes, new_inits = [], []

    def const(name, arr):
        new_inits.append(numpy_helper.from_array(arr, name))
        return name

    for n in g.node:
        if n.name in moved:
            continue
        if not _is_dw_s2(n):
            new_nodes.append(n)
            continue
        a = _attrs(n)
        _, C, H, W = shapes[n.input[0]]
        src, chain = chains.get(n.name, (n.input[0], []))
        Cs = shapes[src][1]
        assert H % 2 == 0 and W % 2 == 0, n.name
        w = numpy_helper.to_array(inits[n.input[1]])
        kh, kw = w.shape[2:]
        pt, pl = a["pads"][0], a["pads"][1]
        s6 = const(f"{n.name}.shape6", np.array([1, Cs, H // 2, 2, W // 2, 2], np.int64))
        s4 = const(f"{n.name}.shape4", np.array([1, Cs, H // 2, W // 2], np.int64))
        new_nodes.append(helper.make_node("Reshape", [src, s6], [f"{n.name}.x6"], name=f"{n.name}.reshape6"))
        parts = []
        for ph in (0, 1):
            rows = [(ka, (ka - pt - ph) // 2) for ka in range(kh) if (ka - pt - ph) % 2 == 0]
            for pw in (0, 1):
                cols = [(kb, (kb - pl - pw) // 2) for kb in range(kw) if (kb - pl - pw) % 2 == 0]
                qh, qw = [q for _, q in rows], [q for _, q in cols]
                assert min(qh) <= 0 <= max(qh) and min(qw) <= 0 <= max(qw), (n.name, rows, cols)
                sub = np.zeros((C, 1, max(qh) - min(qh) + 1, max(qw) - min(qw) + 1), w.dtype)
                for ka, q in rows:
                    for kb, r in cols:
                        sub[:, :, q - min(qh), r - min(qw)] = w[:, :, ka, kb]
                base = f"{n.name}.p{ph}{pw}"
                st = const(f"{base}.starts", np.array([ph, pw], np.int64))
                en = const(f"{base}.ends", np.array([ph + 1, pw + 1], np.int64))
                ax = const(f"{base}.axes", np.array([3, 5], np.int64))
                new_nodes.append(helper.make_node("Slice", [f"{n.name}.x6", st, en, ax], [f"{base}.x6"],
                                                  name=f"{base}.slice"))
                px = f"{base}.x"
                new_nodes.append(helper.make_node("Reshape", [f"{base}.x6", s4], [px], name=f"{base}.reshape4"))
                for c in chain:   # the moved chain, once per phase, on a quarter of the positions
                    out = f"{base}.{c.name}.out"
                    nd = onnx.NodeProto()
                    nd.CopyFrom(c)
                    nd.input[0], nd.output[0], nd.name = px, out, f"{base}.{c.name}"
                    if c.op_type == "Reshape":
                        shp = numpy_helper.to_array(inits[c.input[1]]).copy()
                        if len(shp) == 4 and shp[2] == 1:      # [1,C,1,H*W]
                            shp[3] //= 4
                        elif len(shp) == 4:                     # [1,C,H,W]
                            shp[2] //= 2
                            shp[3] //= 2
                        else:
                            raise ValueError(f"unexpected Reshape {c.name} {shp}")
                        nd.input[1] = const(f"{base}.{c.name}.shape", shp)
                    elif c.op_type == "Slice":                  # [.., :H*W] of a flattened plane
                        ends = numpy_helper.to_array(inits[c.input[2]]).copy() // 4
                        nd.input[2] = const(f"{base}.{c.name}.ends", ends)
                    new_nodes.append(nd)
                    px = out
                ins = [px, const(f"{base}.weight", sub)]
                if len(n.input) > 2 and ph == 0 and pw == 0:
                    ins.append(n.input[2])
                pads = [-min(qh), -min(qw), max(qh), max(qw)]
                new_nodes.append(helper.make_node("Conv", ins, [f"{base}.y"], name=f"{base}.conv", group=C,
                                                  kernel_shape=list(sub.shape[2:]), pads=pads, strides=[1, 1]))
                parts.append(f"{base}.y")
        acc = parts[0]
        for i, p in enumerate(parts[1:]):
            out = n.output[0] if i == len(parts) - 2 else f"{n.name}.sum{i}"
            new_nodes.append(helper.make_node("Add", [acc, p], [out], name=f"{n.name}.add{i}"))
            acc = out

    used = {i for nd in new_nodes for i in nd.input}
    keep = [i for i in g.initializer if i.name in used] + new_inits
    graph = helper.make_graph(new_nodes, g.name, list(g.input), list(g.output), keep)
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name=model.producer_name,
                            producer_version=model.producer_version)
    out.ir_version = model.ir_version
    out.doc_string = model.doc_string
    helper.set_model_props(out, {p.key: p.value for p in model.metadata_props})
    onnx.checker.check_model(out, full_check=True)
    return out
