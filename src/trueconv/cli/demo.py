"""``trueconv demo``: the seed example, cross-correlation beside true convolution.

Needs nothing beyond trueconv's own dependencies (scipy, when present, adds a cross-check).
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


def demo() -> int:
    """Print the seed example: cross-correlation (``F.conv2d``) versus true convolution."""
    image, kernel = _seed()
    x, w = image[None, None], kernel[None, None]  # (N, C, H, W) and (O, I, kH, kW)
    corr = F.conv2d(x, w)[0, 0]
    conv = trueconv.conv2d(x, w)[0, 0]
    print("The seed example: a 5x7 image with a 3x3 square, and the edge filter [[-1, 1]].")
    print()
    print(_side_by_side([("image", image), ("kernel", kernel)]))
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
        print("(scipy is not installed: no cross-check with scipy.signal.convolve2d)")
    else:
        ref = convolve2d(image.numpy(), kernel.numpy(), mode="valid")
        same = bool((conv.numpy() == ref).all())
        print(f"trueconv.conv2d(x, w) == scipy.signal.convolve2d(image, kernel, 'valid'): {same}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="show convolution vs cross-correlation on the seed example")
    p.set_defaults(run=lambda args: demo())
