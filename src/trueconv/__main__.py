"""``python -m trueconv`` / ``trueconv``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F

import trueconv


def _seed() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(5, 7, dtype=torch.int64)
    image[1:4, 2:5] = 1
    return image, torch.tensor([[-1, 1]])


def demo() -> int:
    """Print the seed example: correlation (``F.conv2d``) versus true convolution."""
    image, kernel = _seed()
    corr = F.conv2d(image[None, None].double(), kernel[None, None].double())[0, 0].long()
    conv = trueconv.convolve(image, kernel, mode="valid")
    print("image (5x7 square):")
    print(image)
    print("kernel:", kernel.tolist())
    print("\nF.conv2d(image, kernel)  -- cross-correlation, the kernel is not flipped:")
    print(corr)
    print("\ntrueconv.convolve(image, kernel, mode='valid')  -- convolution, kernel flipped:")
    print(conv)
    try:
        from scipy.signal import convolve2d
    except ImportError:
        print("\n(scipy is not installed: no cross-check with scipy.signal.convolve2d)")
    else:
        ref = convolve2d(image.numpy(), kernel.numpy(), mode="valid")
        same = bool((conv.numpy() == ref).all())
        print(f"\nequal to scipy.signal.convolve2d(image, kernel, 'valid'): {same}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trueconv", description="True convolution for PyTorch tensors."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="show convolution vs cross-correlation on the seed example")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        return demo()
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
