"""``trueconv demo``: the seed's TensorFlow line ported in one call, then cross-correlation
beside true convolution.

Checks itself against the same computation written out in plain torch; needs nothing beyond
trueconv's own dependencies (scipy, when present, adds a cross-check).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
import torch.nn.functional as F

import trueconv


def _seed() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(5, 7, dtype=torch.int64)
    image[1:4, 2:5] = 1
    return image, torch.tensor([[-1, 1]])


def _rows(t: torch.Tensor) -> list[str]:
    return [" ".join(f"{int(v):2d}" for v in row) for row in t.tolist()]


def _side_by_side(blocks: Sequence[tuple[str, torch.Tensor]], gap: int = 4) -> str:
    """Titled integer matrices printed next to each other."""
    columns = [[title, *_rows(t)] for title, t in blocks]
    widths = [max(len(line) for line in col) for col in columns]
    height = max(len(col) for col in columns)
    lines = []
    for i in range(height):
        cells = [(col[i] if i < len(col) else "").ljust(w) for col, w in zip(columns, widths)]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


def _tf_port(image: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's TensorFlow line ported in one call, and the same computed by hand in plain
    torch (flip, TF's 'SAME' zero padding, F.conv2d) as the independent check."""
    x_nhwc = image[None, :, :, None]  # TF's layouts: NHWC input, HWIO kernel
    k_hwio = kernel[:, :, None, None]
    y = trueconv.conv2d(
        x_nhwc.permute(0, 3, 1, 2), trueconv.tf_kernel_to_torch(k_hwio), padding="SAME"
    ).permute(0, 2, 3, 1)[0, :, :, 0]
    # by hand: TF pads (k - 1) in all per dim, the odd sample after; the kernel flipped
    (kh, kw), flat = kernel.shape, []
    for k in (kw, kh):  # F.pad lists the last dim first
        flat += [(k - 1) // 2, k - 1 - (k - 1) // 2]
    hand = F.conv2d(F.pad(image[None, None], flat), kernel.flip(0, 1)[None, None])[0, 0]
    return y, hand


def demo() -> int:
    """Print the seed example: its TensorFlow line ported, then cross-correlation
    (``F.conv2d``) versus true convolution."""
    image, kernel = _seed()
    print("The seed: TensorFlow code that convolves by flipping its kernel by hand,")
    print("    y = tf.nn.conv2d(x, flipkernel(k), strides=1, padding='SAME')   # x NHWC, k HWIO")
    print("on a 5x7 image with a 3x3 square and the edge filter k = [[-1, 1]]. In trueconv:")
    print("    y = trueconv.conv2d(x.permute(0, 3, 1, 2), trueconv.tf_kernel_to_torch(k),")
    print("                        padding='SAME').permute(0, 2, 3, 1)")
    print()
    y, hand = _tf_port(image, kernel)
    print(_side_by_side([("image", image), ("k", kernel), ("y  (NHWC, one channel shown)", y)]))
    print()
    same = bool(torch.equal(y, hand))
    print(f"check: y == the same by hand in plain torch (flip k, pad as TF, F.conv2d): {same}")
    print()
    x, w = image[None, None], kernel[None, None]  # (N, C, H, W) and (O, I, kH, kW)
    corr = F.conv2d(x, w)[0, 0]
    conv = trueconv.conv2d(x, w)[0, 0]
    print("Why the flip matters, on the valid part:")
    print()
    print(
        _side_by_side(
            [
                ("F.conv2d(x, w)  (cross-correlation)", corr),
                ("trueconv.conv2d(x, w)  (convolution)", conv),
            ]
        )
    )
    print()
    print("F.conv2d slides the kernel as it is: it correlates, and the rising edge comes out +1.")
    print("trueconv.conv2d flips it first: it convolves, as the math, numpy and scipy do.")
    try:
        from scipy.signal import convolve2d
    except ImportError:
        print("(scipy is not installed: the check above is plain torch's only)")
    else:
        ref = convolve2d(image.numpy(), kernel.numpy(), mode="valid")
        same = bool((conv.numpy() == ref).all())
        print(f"trueconv.conv2d(x, w) == scipy.signal.convolve2d(image, kernel, 'valid'): {same}")
    return 0 if bool(torch.equal(y, hand)) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="show convolution vs cross-correlation on the seed example")
    p.set_defaults(run=lambda args: demo())
