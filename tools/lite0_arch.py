"""EfficientNet-Lite0 architecture table shared by export_backbone.py and finetune_backbone.py
(no onnx or torch import, so both environments can use it)."""
from __future__ import annotations

from dataclasses import dataclass

BN_EPS = 1e-3

# efficientnet_lite_pytorch/utils.py: efficientnet_lite() block strings; lite0 has width and
# depth multipliers 1.0, so these are used as they are.
LITE0_STAGES = [
    # repeats, kernel, stride, expand, in, out
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


@dataclass
class Block:
    index: int
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int

    @property
    def skip(self) -> bool:
        return self.stride == 1 and self.cin == self.cout


def lite0_blocks() -> list[Block]:
    blocks = []
    for repeats, k, s, e, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            blocks.append(Block(len(blocks), k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return blocks


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (begin, end) for one spatial axis, as Conv2dStaticSamePadding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
