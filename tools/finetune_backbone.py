#!/usr/bin/env python3
"""Fine-tune the last stages of EfficientNet-Lite0 on the labelled posters (experiment; needs torch).

The network is the one of export_backbone.py (ReLU6, BN eps 1e-3, TF SAME padding, no SE),
built in torch from the PyPI .pth with BatchNorm kept as BatchNorm (frozen statistics, eval
mode); its features match the f32 ONNX export within 1e-5. The stem and blocks 0..C-1
(C = --cache-at, default 11) are frozen: `--cache` computes their output for every poster and
its mirror image once with onnxruntime (the export_backbone.py graph; run it with the
tools/requirements.txt venv) into --cache-dir (default /tmp/mqexp, never the repo). Blocks
--train-from..15 (default 11) and the head conv (+ their BN scale/shift) are then trained with
a new 19-way linear layer on the 1712-wide `features` (pooled head | block15 project | block10
project, standardised with fixed train-split statistics): multi-label BCE with positive weights
clamp(neg // pos, 1, 8) and the L2 of the Rust head (--alpha 3000, scaled to the mean loss).
Training posters: the train split of --split-seed only (src/dataset.rs hash); the calibration
split picks the best epoch (mean ROC-AUC of the linear layer); the validation split is never
read.

Schedule (LP-FT): first the linear layer alone on the frozen features (--lp-epochs full-batch
Adam steps), then backbone + layer with AdamW (--lr backbone, --lr-head layer), cosine decay
over --epochs, mirror image chosen at random per poster and epoch.

Writes --out (default tools/cache/finetuned-lite0.npz, git-ignored): the changed checkpoint
tensors under their .pth names (float32) plus `genre_fc.*` and a JSON `meta` string, which
`export_backbone.py --weights FILE` reads. --features-out also writes the 1712-wide features of
every poster (extract.py's npz format: ids, avg[, avg_flip], plus genre_logits) for
tools/experiments/eval_heads.py. Commands: tools/README.md, "Fine-tuning the last stages".
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

try:   # `cache` runs in the tools/requirements.txt venv (onnxruntime, no torch); training needs torch
    import torch
    import torch.nn.functional as F
    _Module = torch.nn.Module
except ImportError:   # pragma: no cover
    torch = F = None
    _Module = object

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from lite0_arch import BN_EPS, lite0_blocks, same_pads  # noqa: E402

BLOCKS = lite0_blocks()


def key(name: str) -> str:
    return name.replace(".", "__")


class Lite0(_Module):
    """EfficientNet-Lite0 from the checkpoint state dict; BN in inference form (running stats)."""

    def __init__(self, sd: dict):
        super().__init__()
        self.params = torch.nn.ParameterDict()
        self.stats = {}
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                continue
            t = torch.from_numpy(np.array(v, np.float32))
            if k.endswith(("running_mean", "running_var")):
                self.register_buffer(key(k), t)
                self.stats[k] = key(k)
            else:
                self.params[key(k)] = torch.nn.Parameter(t)

    def p(self, name):
        return self.params[key(name)]

    def conv_bn(self, x, conv, bn, stride=1, groups=1, act=True):
        w = self.p(f"{conv}.weight")
        k = w.shape[-1]
        if k > 1:
            (pt, pb), (pl, pr) = same_pads(x.shape[2], k, stride), same_pads(x.shape[3], k, stride)
            x = F.pad(x, (pl, pr, pt, pb))
        x = F.conv2d(x, w, None, stride, 0, 1, groups)
        x = F.batch_norm(x, getattr(self, key(f"{bn}.running_mean")), getattr(self, key(f"{bn}.running_var")),
                         self.p(f"{bn}.weight"), self.p(f"{bn}.bias"), False, 0.0, BN_EPS)
        return F.hardtanh(x, 0.0, 6.0) if act else x

    def block(self, i, x, taps):
        blk = BLOCKS[i]
        p = f"_blocks.{i}"
        inp = x
        if blk.expand != 1:
            x = self.conv_bn(x, f"{p}._expand_conv", f"{p}._bn0")
        x = self.conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", blk.stride, x.shape[1])
        x = self.conv_bn(x, f"{p}._project_conv", f"{p}._bn2", act=False)
        if i == 10:
            taps["block10"] = x.mean((2, 3))
        if blk.skip:
            x = x + inp
        return x

    def prefix(self, image, upto):
        """Stem and blocks 0..upto-1 -> (activation, pooled block10 project if upto > 10)."""
        taps = {}
        x = self.conv_bn(image, "_conv_stem", "_bn0", 2)
        for i in range(upto):
            x = self.block(i, x, taps)
        return x, taps.get("block10")

    def suffix(self, x, start, block10=None):
        """Blocks start..15 and the head -> the 1712-wide features."""
        taps = {}
        for i in range(start, len(BLOCKS)):
            x = self.block(i, x, taps)
        b15 = x.mean((2, 3))
        head = self.conv_bn(x, "_conv_head", "_bn1").mean((2, 3))
        return torch.cat([head, b15, taps["block10"] if block10 is None else block10], 1)


def trainable_names(sd: dict, start: int) -> list[str]:
    pre = tuple(f"_blocks.{i}." for i in range(start, len(BLOCKS))) + ("_conv_head.", "_bn1.")
    return [k for k in sd if k.startswith(pre) and not k.endswith(("running_mean", "running_var",
                                                                    "num_batches_tracked"))]


def poster_table():
    with open(common.DATA / "posters.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    g = {r["id"]: [x.strip() for x in r["genres"].split("|") if x.strip() and x.strip() != "N/A"] for r in rows}
    counts = Counter(x for i in ids for x in g[i])
    labels = [k for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= 100]
    y = np.array([[l in g[i] for l in labels] for i in ids], np.float32)
    return ids, labels, y


def split_masks(ids, seed):
    b = np.array([int.from_bytes(hashlib.sha256(f"marquee-split-v1:{seed}:{i}".encode()).digest()[:2], "big") % 100
                  for i in ids])
    return b < 70, (b >= 70) & (b < 85), b >= 85


def mean_auc(scores: np.ndarray, y: np.ndarray) -> float:
    aucs = []
    for j in range(y.shape[1]):
        pos = y[:, j] > 0.5
        n_pos, n_neg = pos.sum(), (~pos).sum()
        if n_pos == 0 or n_neg == 0:
            continue
        order = np.argsort(scores[:, j], kind="mergesort")
        ranks = np.empty(len(order))
        ranks[order] = np.arange(1, len(order) + 1)
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def load_sd():
    pth = common.weights_path()
    digest = common.sha256_file(pth)
    if digest != common.WEIGHTS_SHA256:
        raise SystemExit(f"{pth}: sha256 {digest} is not the expected {common.WEIGHTS_SHA256}")
    sd = torch.load(str(pth), map_location="cpu")
    return {k: v.numpy() for k, v in sd.items()}, digest


def cache_path(cache_dir: Path, hw, start) -> Path:
    return cache_dir / f"lite0-{hw[1]}x{hw[0]}-prefix{start}.npz"


def make_cache(a) -> int:
    """Frozen part with onnxruntime (the export_backbone.py graph, about 7x faster than torch on CPU):
    the input of block --cache-at for every poster and its mirror image -> cache_path()."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from export_backbone import build_model, check_all_weights_used
    from pth_reader import load_legacy_state_dict

    pth = common.weights_path()
    if common.sha256_file(pth) != common.WEIGHTS_SHA256:
        raise SystemExit(f"{pth}: unexpected sha256")
    sd = load_legacy_state_dict(str(pth))
    check_all_weights_used(sd)
    hw = (common.INPUT_HEIGHT, common.INPUT_WIDTH)
    model = build_model(sd, *hw)
    last = BLOCKS[a.cache_at - 1]
    name = f"block{last.index:02d}." + ("add" if last.skip else "project.out")
    outs = [name] + (["features"] if a.cache_at > 10 else [])
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ids, _, _ = poster_table()
    res = {"act": [], "act_flip": [], "b10": [], "b10_flip": []}
    t0 = time.time()
    for n, i in enumerate(ids):
        x = common.load_image(common.DATA / "posters" / f"{i}.jpg", hw)
        for suffix, inp in (("", x), ("_flip", np.ascontiguousarray(x[..., ::-1]))):
            r = sess.run(outs, {"image": inp})
            res["act" + suffix].append(r[0][0])
            if a.cache_at > 10:
                res["b10" + suffix].append(r[1][0, 1600:1712])
        if n % 500 == 0:
            print(f"  {n}/{len(ids)} {time.time() - t0:.0f}s", flush=True)
    path = cache_path(a.cache_dir, hw, a.cache_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), **{k: np.stack(v) for k, v in res.items() if v})
    print(f"wrote {path}: {name} of {len(ids)} posters x2 in {time.time() - t0:.0f}s")
    return 0


def cached_prefix(net, ids, start, hw, cache_dir, batch=32):
    """Frozen stem + blocks 0..start-1 for each poster and its mirror image: (act, act_flip, b10, b10_flip)."""
    path = cache_path(cache_dir, hw, start) if cache_dir else None
    if path and path.is_file():
        z = np.load(path)
        if list(z["ids"]) == ids:
            print(f"prefix activations from {path}", flush=True)
            return {k: torch.from_numpy(z[k]) for k in z.files if k != "ids"}
    out = {"act": [], "act_flip": [], "b10": [], "b10_flip": []}
    print("computing the frozen prefix in torch (slow; `finetune_backbone.py --cache` does it with onnxruntime)")
    t0 = time.time()
    img_dir = common.DATA / "posters"
    for s in range(0, len(ids), batch):
        x = np.concatenate([common.load_image(img_dir / f"{i}.jpg", hw) for i in ids[s:s + batch]])
        x = torch.from_numpy(x)
        for suffix, inp in (("", x), ("_flip", torch.flip(x, [3]))):
            with torch.no_grad():
                a, b10 = net.prefix(inp, start)
            out["act" + suffix].append(a)
            if b10 is not None:
                out["b10" + suffix].append(b10)
        if s % 640 == 0:
            print(f"  prefix {s}/{len(ids)} {time.time() - t0:.0f}s", flush=True)  # noqa
    res = {k: torch.cat(v) for k, v in out.items() if v}
    print(f"prefix of {len(ids)} posters x2 in {time.time() - t0:.0f}s", flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=np.array(ids), **{k: v.numpy() for k, v in res.items()})
    return res


def all_features(net, cache, start, rows=None, flip=False, batch=128):
    with torch.no_grad():
        return _all_features(net, cache, start, rows, flip, batch)


def _all_features(net, cache, start, rows, flip, batch):
    act = cache["act_flip" if flip else "act"]
    b10 = cache.get("b10_flip" if flip else "b10")
    idx = np.arange(len(act)) if rows is None else rows
    out = []
    for s in range(0, len(idx), batch):
        r = torch.from_numpy(idx[s:s + batch])
        out.append(net.suffix(act[r], start, None if b10 is None else b10[r]))
    return torch.cat(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split-seed", type=int, default=0, help="train on this seed's train split (default 0, shipped)")
    ap.add_argument("--seed", type=int, default=0, help="torch / shuffling seed")
    ap.add_argument("--train-from", type=int, default=11, help="first trained block (default 11); earlier ones frozen")
    ap.add_argument("--cache-at", type=int, default=11,
                    help="block whose input is cached (default 11, <= --train-from); blocks in between run frozen")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lp-epochs", type=int, default=200, help="full-batch epochs of the linear layer alone first")
    ap.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate of the backbone")
    ap.add_argument("--lr-head", type=float, default=1e-3, help="AdamW learning rate of the 19-way layer")
    ap.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay of the backbone")
    ap.add_argument("--alpha", type=float, default=3000.0,
                    help="L2 of the 19-way layer, as the Rust head's alpha (TrainConfig, default 3000)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout on the features while fine-tuning")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/mqexp"),
                    help="where the frozen prefix activations are cached ('' to keep them in memory only)")
    ap.add_argument("--out", type=Path, default=common.ROOT / "tools" / "cache" / "finetuned-lite0.npz")
    ap.add_argument("--features-out", type=Path, help="also write extract.py-style features of all posters here")
    ap.add_argument("--features-flip", action="store_true", help="--features-out also for the mirror images")
    ap.add_argument("--max-batches", type=int, default=0, help="stop each epoch after this many batches (timing)")
    ap.add_argument("--cache", action="store_true",
                    help="only compute the frozen-part cache with onnxruntime (run with the tools/requirements.txt venv)")
    a = ap.parse_args(argv)
    if a.cache:
        return make_cache(a)
    if torch is None:
        raise SystemExit("torch is not installed (see tools/README.md, fine-tuning)")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    hw = (common.INPUT_HEIGHT, common.INPUT_WIDTH)
    sd, digest = load_sd()
    net = Lite0(sd).eval()
    start = a.cache_at
    if a.train_from < start:
        raise SystemExit("--train-from must be >= --cache-at")
    ids, labels, y = poster_table()
    tr, ca, _ = split_masks(ids, a.split_seed)
    tr_rows, ca_rows = np.where(tr)[0], np.where(ca)[0]
    print(f"{len(ids)} posters, {len(labels)} genres; split seed {a.split_seed}: train {len(tr_rows)}, "
          f"calibration {len(ca_rows)} (validation not read)", flush=True)
    cache = cached_prefix(net, ids, start, hw, a.cache_dir if str(a.cache_dir) else None)

    names = trainable_names(sd, a.train_from)
    for n, p in net.params.items():
        p.requires_grad = n in {key(k) for k in names}
    backbone = [net.params[key(k)] for k in names]

    # fixed standardisation of the features (train split, plain posters, ImageNet weights)
    f0 = all_features(net, cache, start, tr_rows)
    mu, sd_ = f0.mean(0), f0.std(0).clamp_min(1e-6)
    ytr = torch.from_numpy(y[tr_rows])
    npos = ytr.sum(0)
    pos_weight = ((len(ytr) - npos) // npos).clamp(1, 8)
    fc = torch.nn.Linear(f0.shape[1], len(labels))
    torch.nn.init.zeros_(fc.weight)
    torch.nn.init.zeros_(fc.bias)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def head(f, train=False):
        z = (f - mu) / sd_
        if train and a.dropout:
            z = F.dropout(z, a.dropout, True)
        return fc(z)

    # the Rust head's L2 (alpha per genre on a sum of per-poster losses), on BCE's mean over posters x genres
    l2 = a.alpha / (2 * len(labels) * len(tr_rows))

    def objective(logits, target):
        return loss_fn(logits, target) + l2 * fc.weight.pow(2).sum()

    def cal_auc():
        with torch.no_grad():
            return mean_auc(head(all_features(net, cache, start, ca_rows)).numpy(), y[ca_rows])

    # 1) linear probe on the frozen features (full batch)
    t0 = time.time()
    xlp, ylp = f0, ytr
    opt = torch.optim.Adam(fc.parameters(), lr=1e-2)
    for _ in range(a.lp_epochs):
        opt.zero_grad()
        loss = objective(head(xlp), ylp)
        loss.backward()
        opt.step()
    auc = cal_auc()
    print(f"linear probe: {a.lp_epochs} epochs, loss {loss.item():.4f}, calibration mean AUC {auc:.4f} "
          f"({time.time() - t0:.0f}s)", flush=True)
    history = [{"epoch": 0, "cal_auc": auc}]
    best = (auc, 0, {k: v.detach().clone() for k, v in net.params.items()}, fc.state_dict())

    # 2) fine-tune blocks start..15 + head conv + the layer
    opt = torch.optim.AdamW([{"params": backbone, "lr": a.lr, "weight_decay": a.wd},
                             {"params": fc.parameters(), "lr": a.lr_head, "weight_decay": 0.0}])
    steps_per_epoch = -(-len(tr_rows) // a.batch)
    if a.max_batches:
        steps_per_epoch = min(steps_per_epoch, a.max_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / (a.epochs * steps_per_epoch)))))
    for ep in range(1, a.epochs + 1):
        t0 = time.time()
        perm = rng.permutation(tr_rows)
        flips = rng.random(len(perm)) < 0.5
        tot = 0.0
        for bi in range(steps_per_epoch):
            rows = perm[bi * a.batch:(bi + 1) * a.batch]
            fl = torch.from_numpy(flips[bi * a.batch:(bi + 1) * a.batch])
            r = torch.from_numpy(rows)
            x = torch.where(fl[:, None, None, None], cache["act_flip"][r], cache["act"][r])
            b10 = None
            if "b10" in cache:
                b10 = torch.where(fl[:, None], cache["b10_flip"][r], cache["b10"][r])
            loss = objective(head(net.suffix(x, start, b10), True), torch.from_numpy(y[rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        dt = time.time() - t0
        auc = cal_auc()
        history.append({"epoch": ep, "cal_auc": auc, "train_loss": tot / steps_per_epoch, "seconds": round(dt)})
        print(f"epoch {ep}: train loss {tot / steps_per_epoch:.4f}, calibration mean AUC {auc:.4f} "
              f"({dt:.0f}s train, {time.time() - t0 - dt:.0f}s eval)", flush=True)
        if auc > best[0]:
            best = (auc, ep, {k: v.detach().clone() for k, v in net.params.items()}, fc.state_dict())
    auc, ep, params, fc_state = best
    print(f"best: epoch {ep}, calibration mean AUC {auc:.4f}", flush=True)
    with torch.no_grad():
        for k, v in params.items():
            net.params[k].copy_(v)
    fc.load_state_dict(fc_state)

    meta = {"tool": "tools/finetune_backbone.py", "command": " ".join(["tools/finetune_backbone.py"] + sys.argv[1:]),
            "args": {k: str(v) for k, v in vars(a).items()},
            "weights_sha256": digest, "train_from": a.train_from, "best_epoch": ep, "cal_auc": auc,
            "history": history, "labels": labels, "torch": torch.__version__}
    out = {k: net.params[key(k)].detach().numpy().astype(np.float32) for k in names}
    out.update({"genre_fc.weight": fc.weight.detach().numpy(), "genre_fc.bias": fc.bias.detach().numpy(),
                "genre_fc.mean": mu.numpy(), "genre_fc.std": sd_.numpy()})
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, meta=np.array(json.dumps(meta)), **out)
    print(f"wrote {a.out} ({len(names)} tensors)", flush=True)
    if a.features_out:
        avg = all_features(net, cache, start).numpy()
        extra = {"avg_flip": all_features(net, cache, start, flip=True).numpy()} if a.features_flip else {}
        with torch.no_grad():
            extra["genre_logits"] = head(torch.from_numpy(avg)).numpy()
        np.savez(a.features_out, ids=np.array(ids), avg=avg, **extra)
        print(f"wrote {a.features_out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
