"""Choose the method of an NN-API call: the explicit one, or the provisional ``'auto'`` rule.

PROVISIONAL: issue #4 replaces this rule with the calibrated cost model of
:mod:`trueconv._cost` once it counts channel-mixing FFTs. Until then ``'auto'`` takes the FFT
when a kernel has many taps per output sample: the direct method's work per output sample and
channel pair is ``taps / prod(stride)`` multiply-adds, the FFT's is a few ``log L`` per
sample whatever the kernel, and strides shrink only the direct method's work.
"""

from __future__ import annotations

import math

import torch

from trueconv.nn._spec import NNSpec, is_integer

#: Taps per output sample from which ``'auto'`` takes the FFT, per number of spatial dims.
#: Provenance: provisional, hand-set from one noisy run of ``padding='same'`` layers on a shared
#: 2-core x86 CPU (torch 2.13, oneDNN/MKL), batch 4, 16 -> 16 channels, inputs 4096, 64x64 and
#: 24x24x24: the FFT first won at 1-D k = 128, 2-D 19x19 and 3-D 9x9x9 (a tie), and lost at
#: k = 100, 15x15 and 7x7x7.
FFT_MIN_TAPS = {1: 128, 2: 17 * 17, 3: 9 * 9 * 9}


def choose(spec: NNSpec) -> str:
    """``'direct'`` or ``'fft'``: what the call runs."""
    if spec.empty:
        return "direct"  # nothing to compute: F.convNd makes the empty result and its graph
    if spec.method != "auto":
        return spec.method
    if is_integer(spec.dtype):
        return "direct"  # integers: exact paths only
    if torch.compiler.is_exporting():
        return "direct"  # exported graphs (ONNX has no complex contraction) stay real
    work = spec.taps / math.prod(spec.stride)
    return "fft" if work >= FFT_MIN_TAPS[spec.nd] else "direct"
