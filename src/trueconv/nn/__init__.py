"""``torch.nn`` and ``torch.nn.functional`` convolutions that convolve (the kernel flipped).

``trueconv.nn.Conv2d`` and friends subclass their ``torch.nn`` namesakes and run
:mod:`trueconv.nn.functional`, whose functions are also ``trueconv.conv2d`` etc.
"""

from trueconv.nn import functional
from trueconv.nn.modules import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "functional",
]
