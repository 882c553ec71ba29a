"""The FFT method of the NN API: spectra multiplied and channels mixed per frequency.

A convolution layer is, per group ``g``, output channel ``o`` and input channel ``c``, a true
convolution of ``input[b, g, c]`` with ``weight[g, o, c]``, summed over ``c``. The transform is
linear, so the sum moves into the frequency domain: one forward transform per input channel and
per weight channel pair, one contraction over ``c`` at every frequency (an ``einsum``, i.e. a
batched matrix product with the frequencies as batch), and one inverse transform per output
channel -- never ``B * O * C`` spectra.

Dilation and stride become exact identities on true convolutions:

* a dilated kernel is the kernel with ``d - 1`` zeros inserted between taps, built explicitly
  before its transform;
* a strided output is every ``s``-th sample of the unit-stride one;
* a transposed convolution is the true convolution of the input with ``s - 1`` zeros inserted
  between samples (the adjoint of subsampling) and the flipped dilated kernel, cropped by
  ``padding`` at both ends (see :func:`conv_transpose`).

Transform lengths are the smallest 2·3·5·7-smooth numbers that keep the wanted samples free of
circular aliasing (the rule of :mod:`trueconv._methods.fft`: for the wanted slice ``[s, e)`` of a
full linear convolution of length ``F``, a circular one of length ``L`` is exact there when
``L >= e`` and ``s + L >= F``). For a convolution's valid samples that is just the padded
input length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from trueconv._methods.fft import compute_dtype, next_fast_len, transforms
from trueconv.nn._spec import NNSpec, Pads, is_integer, static_shape

#: Most complex output-spectrum elements held at once (2**24: 128 MiB in complex64, 256 MiB in
#: complex128). Larger problems are tiled over the batch, then over output channels, so the
#: ``B * O`` spectra of a big layer are never all materialised together.
SPECTRUM_BUDGET = 2**24


def zero_insert(t: torch.Tensor, dims: Sequence[int], factors: Sequence[int]) -> torch.Tensor:
    """Insert ``f - 1`` zeros between neighbouring samples along each dim (length ``(n-1)f+1``).

    Built from ``F.pad`` and reshapes only, so it is differentiable and works under ``vmap``.
    """
    for d, f in zip(dims, factors):
        if f == 1:
            continue
        n = static_shape(t)[d]
        t = F.pad(t.movedim(d, -1).unsqueeze(-1), (0, f - 1))
        t = t.flatten(-2).narrow(-1, 0, (n - 1) * f + 1).movedim(-1, d)
    return t


def flat_pads(pads: Sequence[tuple[int, int]]) -> list[int]:
    flat: list[int] = []
    for before, after in reversed(pads):  # F.pad lists the last dim first
        flat += [before, after]
    return flat


def _mix(
    a: torch.Tensor,
    k: torch.Tensor,
    starts: Sequence[int],
    counts: Sequence[int],
    steps: Sequence[int],
) -> torch.Tensor:
    """Samples ``starts + j * steps`` (``j < counts``) of the channel-mixing true convolution.

    ``a`` is ``(B, G * C, *A)``, ``k`` is ``(G, O, C, *K)``; the result is ``(B, G * O, *counts)``
    with ``y[b, g*O + o] = sum_c (a[b, g, c] * k[g, o, c])`` (``*``: full linear convolution).
    """
    batch = static_shape(a)[0]
    groups, out_ch, in_ch = static_shape(k)[:3]
    a = a.reshape(batch, groups, in_ch, *static_shape(a)[2:])
    sa, sk = static_shape(a)[3:], static_shape(k)[3:]

    # Dims where an operand has length one are a broadcast product, not a transform.
    dims, lens = [], []
    for i, (n, m, s, c, st) in enumerate(zip(sa, sk, starts, counts, steps)):
        if n > 1 and m > 1:
            dims.append(3 + i)
            lens.append(max(s + (c - 1) * st + 1, n + m - 1 - s, n, m))
    real = not (a.is_complex() or k.is_complex())
    # the last transformed dim is the halved one of rfftn: it must be even
    lens = [next_fast_len(m, real and i == len(lens) - 1) for i, m in enumerate(lens)]
    fwd, inv = transforms(real)

    kf = fwd(k, s=lens, dim=dims) if dims else k
    # spectrum shape: the transformed dims as in kf, the others broadcast
    fshape = [max(n, m) for n, m in zip(sa, sk)]
    for d in dims:
        fshape[d - 3] = static_shape(kf)[d]
    per_item = groups * out_ch * math.prod(fshape)
    # the input spectra of a batch tile count too (G * C per item)
    per_batch_item = groups * max(out_ch, in_ch) * math.prod(fshape)
    b_chunk = max(1, min(batch, SPECTRUM_BUDGET // max(per_batch_item, 1)))
    o_chunk = (
        out_ch if per_item <= SPECTRUM_BUDGET else max(1, SPECTRUM_BUDGET // (per_item // out_ch))
    )
    crop: Any = (
        Ellipsis,
        *(slice(s, s + (c - 1) * st + 1, st) for s, c, st in zip(starts, counts, steps)),
    )

    rows = []
    for b0 in range(0, batch, b_chunk):
        ab = a.narrow(0, b0, min(b_chunk, batch - b0))
        af = fwd(ab, s=lens, dim=dims) if dims else ab
        cols = []
        for o0 in range(0, out_ch, o_chunk):
            kb = kf.narrow(1, o0, min(o_chunk, out_ch - o0))
            yf = torch.einsum("bgc...,goc...->bgo...", af, kb)
            y = inv(yf, s=lens, dim=dims) if dims else yf
            cols.append(y[crop])
        rows.append(cols[0] if len(cols) == 1 else torch.cat(cols, dim=2))
    y = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
    return y.reshape(batch, groups * out_ch, *static_shape(y)[3:])


def _finish(
    y: torch.Tensor, bias: torch.Tensor | None, like: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    if bias is not None:
        y = y + bias.to(y.dtype).reshape(-1, *([1] * (y.ndim - 2)))
    if is_integer(dtype):
        y = y.round().to(torch.int64).to(dtype)  # narrower integers wrap, as direct's int64 does
    elif y.dtype != dtype:
        y = y.to(dtype)
    cl = torch.channels_last
    if (
        y.ndim == 4 == like.ndim
        and not like.is_contiguous()
        and like.is_contiguous(memory_format=cl)
    ):
        y = y.contiguous(memory_format=cl)  # as F.conv2d's output
    return y


def conv(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, spec: NNSpec, pads: Pads
) -> torch.Tensor:
    """``F.convNd(x, w.flip(spatial), bias, ...)`` on a batched ``x`` with zero padding ``pads``."""
    nd = spec.nd
    cdtype = compute_dtype(spec.dtype)
    spatial = range(2, 2 + nd)
    a = x.to(cdtype)
    flat = flat_pads(pads)
    if any(flat):
        a = F.pad(a, flat)
    k = zero_insert(w.to(cdtype), spatial, spec.dilation)
    out_ch, in_ch = static_shape(k)[:2]
    k = k.reshape(spec.groups, out_ch // spec.groups, in_ch, *static_shape(k)[2:])
    # valid sample j of the padded input is sample (span - 1) + j of the full convolution
    starts = [m - 1 for m in static_shape(k)[3:]]
    y = _mix(a, k, starts, spec.output_shape[2:], spec.stride)
    return _finish(y, bias, x, spec.dtype)


def conv_transpose(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, spec: NNSpec
) -> torch.Tensor:
    """``F.conv_transposeNd(x, w.flip(spatial), bias, ...)`` on a batched ``x``.

    ``F.conv_transposeNd(x, v)`` scatters ``x[j] * v[m]`` to output sample ``j s + m d - p``.
    With ``v`` the flipped ``w``, that is the true convolution of ``x`` upsampled by ``s``
    (zeros inserted) with the dilated ``v`` -- i.e. the flipped dilated ``w`` -- read from
    sample ``p`` on; the last ``output_padding - p`` samples, when positive, lie past the end
    of the full convolution and are zero.
    """
    nd = spec.nd
    cdtype = compute_dtype(spec.dtype)
    spatial = list(range(2, 2 + nd))
    a = zero_insert(x.to(cdtype), spatial, spec.stride)
    k = zero_insert(w.to(cdtype), spatial, spec.dilation).flip(spatial)
    in_ch, out_ch = static_shape(k)[:2]
    k = k.reshape(spec.groups, in_ch // spec.groups, out_ch, *static_shape(k)[2:]).transpose(1, 2)
    out = spec.output_shape[2:]
    full = [n + m - 1 for n, m in zip(static_shape(a)[2:], static_shape(k)[3:])]
    starts = [p for p, _ in spec.pads]
    counts = [max(0, min(o, f - p)) for o, f, p in zip(out, full, starts)]
    y = _mix(a, k, starts, counts, [1] * nd)
    flat = flat_pads([(0, o - c) for o, c in zip(out, counts)])
    if any(flat):
        y = F.pad(y, flat)
    return _finish(y, bias, x, spec.dtype)
