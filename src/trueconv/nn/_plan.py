"""Choose the method of an NN-API call: the explicit one, or the cheaper by the cost model.

``'auto'`` prices both methods with the operation counts below and the per-device constants of
:mod:`trueconv.core.cost` (variants ``nn_direct`` and ``nn_fft``, fitted by
``benchmarks/fitcost.py`` from timed layers), and keeps the direct method unless the FFT saves
more than the signal API's direct margin: the direct result is the one torch's own
``F.convNd`` gives. A device type without fitted NN constants uses the threshold rule of
:data:`FFT_MIN_TAPS`.
"""

from __future__ import annotations

import functools
import math

import torch

from trueconv.core import cost
from trueconv.core.cost import DIRECT_MARGIN_S, OTHER_MARGIN_S
from trueconv.core.dtypes import is_integer
from trueconv.nn import _fft
from trueconv.nn._spec import NNSpec

VARIANTS = ("nn_direct", "nn_fft")

#: The fallback rule where no NN constants are fitted: the FFT from this many taps per output
#: sample (``taps / prod(stride)``: strides shrink only the direct method's work), per number of
#: spatial dims. Provenance: hand-set from one run of ``padding='same'`` layers on a 2-core x86
#: CPU (torch 2.13, oneDNN/MKL), batch 4, 16 -> 16 channels, inputs 4096, 64x64 and 24x24x24:
#: the FFT first won at 1-D k = 128, 2-D 19x19 and 3-D 9x9x9 (a tie), and lost at k = 100,
#: 15x15 and 7x7x7.
FFT_MIN_TAPS = {1: 128, 2: 17 * 17, 3: 9 * 9 * 9}

#: Zero padding from which the direct method pads the input itself instead of asking
#: ``F.convNd`` to. Provenance: float32 'same' layers on the 2-core CPU of
#: benchmarks/results/calibration-cpu.json (torch 2.13, oneDNN): built-in padding of 15 per
#: side took 11.9 ms against 3.2 ms padded first (8 x 16 x 4096, k = 31), 10 per side 54 ms
#: against 14.5 (4 x 16 x 64^2, 21^2), 8 per side 559 against 276 (1 x 32 x 256^2, 17^2); at
#: 7 per side and less built-in padding was as fast or 10-20% faster; float64 (no oneDNN)
#: within +-20% either way.
PREPAD_MIN = 8


def pads_first(pads: tuple[tuple[int, int], ...]) -> bool:
    """Whether the direct method pads the input itself (``F.pad``) rather than through
    ``F.convNd``'s ``padding``: torch pads symmetrically only, and oneDNN is slow with wide
    padding (:data:`PREPAD_MIN`)."""
    return not all(b == a < PREPAD_MIN for b, a in pads)


#: dtypes whose CPU ``F.convNd`` runs in oneDNN; the others go through an unfolded (im2col)
#: matrix of ``C * taps`` rows per output sample, counted as the direct method's ``aux``
_ONEDNN_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16})


def counts(spec: NNSpec, method: str, device_type: str) -> cost.Counts:
    """Operation counts of ``method`` ('direct' or 'fft') for the call, from shapes alone."""
    batch, channels = spec.input_shape[:2]
    out_elems = math.prod(spec.output_shape)
    in_elems = math.prod(spec.input_shape)
    taps = spec.taps
    if method == "direct":
        if spec.transposed:  # every input sample scatters to O/G channels x taps
            out_per_group = spec.output_shape[1] // spec.groups
            macs = in_elems * out_per_group * taps
            unfolded = batch * spec.output_shape[1] * taps * math.prod(spec.input_shape[2:])
        else:  # every output sample gathers C/G channels x taps
            macs = out_elems * (channels // spec.groups) * taps
            unfolded = batch * channels * taps * math.prod(spec.output_shape[2:])
        passes = in_elems + out_elems
        if not spec.transposed and pads_first(spec.pads):
            padded = [n + b + a for n, (b, a) in zip(spec.input_shape[2:], spec.pads)]
            passes += batch * channels * math.prod(padded)
        im2col = unfolded if device_type == "cpu" and spec.dtype not in _ONEDNN_DTYPES else 0
        return cost.Counts("nn_direct", 1, float(macs), float(passes), float(im2col))
    sa, sk, starts, cnt, steps, chans = _fft.geometry(spec)
    _, groups, out_ch, in_ch = chans
    real = not spec.dtype.is_complex
    lay = _fft.layout(sa, sk, starts, cnt, steps, chans, real)
    points = math.prod(lay.spectrum)
    b_tiles = -(-batch // lay.b_chunk)
    o_tiles = -(-out_ch // lay.o_chunk)
    kernels = groups * out_ch * in_ch
    # kernel spectra from DFT-matrix products of the taps: no transforms and no zero-filled
    # copies; each product about a pass over what it writes
    dft = _fft.dft_kernel(_fft.mixer_for(lay, sk, in_ch), sk, lay.dims)
    spectra = batch * channels + batch * groups * out_ch + (0 if dft else kernels)
    if lay.dims:
        size = math.prod(lay.lens)
        work = cost.transform_work(size, spectra, max(lay.lens))
    else:
        work = 0.0
    aux = batch * groups * out_ch * in_ch * points
    passes = spectra * points + batch * channels * math.prod(sa) + out_elems
    if dft:
        passes += kernels * _fft.dft_points(lay.spectrum, sk, lay.dims)
    # one transform of the held operand's spectra, then per outer tile the other's and per
    # tile a mixing, an inverse and a copy (see _fft._mix)
    outer, inner = (o_tiles, b_tiles) if lay.kernel_outer else (b_tiles, o_tiles)
    calls = 2 + outer * (1 + 3 * inner)
    return cost.Counts("nn_fft", calls, work, float(passes), float(aux))


def costs(spec: NNSpec, device_type: str) -> dict[str, float]:
    """Predicted seconds of both methods."""
    return {
        m: cost.predict(counts(spec, m, device_type), spec.dtype, device_type)
        for m in ("direct", "fft")
    }


def choose(spec: NNSpec, device_type: str = "cpu") -> str:
    """``'direct'`` or ``'fft'``: what the call runs."""
    if spec.empty:
        return "direct"  # nothing to compute: F.convNd makes the empty result and its graph
    if spec.method != "auto":
        return spec.method
    if is_integer(spec.dtype):
        return "direct"  # integers: exact paths only
    if torch.compiler.is_exporting():
        return "direct"  # exported graphs (ONNX has no complex contraction) stay real
    return _choose_auto(spec, device_type)


@functools.lru_cache(maxsize=4096)
def _choose_auto(spec: NNSpec, device_type: str) -> str:
    """Depends on the (frozen, hashable) spec and the device type alone: cached."""
    if not cost.has_constants(VARIANTS, device_type):
        work = spec.taps / math.prod(spec.stride)
        return "fft" if work >= FFT_MIN_TAPS[spec.nd] else "direct"
    predicted = costs(spec, device_type)
    margin = DIRECT_MARGIN_S.get(device_type, OTHER_MARGIN_S)
    return "fft" if predicted["fft"] + margin < predicted["direct"] else "direct"
