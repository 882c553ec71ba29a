"""Direct convolution: ``F.conv1d/2d/3d`` with the kernel flipped.

* One kernel for every signal: the batch is folded into the conv's batch dim (``C = 1``).
* One signal, many kernels: the kernels become output channels.
* Per-signal kernels: the grouped-convolution trick, batch folded into channels with
  ``groups = B``.
* More than three convolved dims: ``y[i0, ...] = sum_m y_m[i0, ...]``, where ``y_m`` is the
  (nd - 1)-dim valid convolution of the slab ``a[i0 + B0 - 1 - m]`` with ``b[m]``; this recurses
  down to three dims.
* Integers are exact: they run in int64 (wrapping like numpy) where the device's conv has an
  integer kernel; elsewhere an exact shift-and-add runs in int64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from trueconv._spec import compute_dtype_for

#: Device types whose ``F.convNd`` implements integer dtypes (checked for torch >= 2.1 on CPU).
NATIVE_INTEGER_CONV_DEVICES = frozenset({"cpu"})

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return compute_dtype_for(dtype)


def _is_integer(t: torch.Tensor) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex)


def run(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    if _is_integer(a) and a.device.type not in NATIVE_INTEGER_CONV_DEVICES:
        return shift_add(a, b, pads)
    if nd <= 3:
        return _conv(a, b, pads)
    return _valid_nd(_zero_pad(a, pads), b, nd)


def _zero_pad(a: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    flat: list[int] = []
    for before, after in reversed(pads):  # F.pad lists the last dim first
        flat += [before, after]
    return F.pad(a, flat) if any(flat) else a


def _valid_nd(a: torch.Tensor, b: torch.Tensor, nd: int) -> torch.Tensor:
    if nd <= 3:
        return _conv(a, b, [(0, 0)] * nd)
    k0 = b.shape[-nd]
    o0 = a.shape[-nd] - k0 + 1
    out = None
    for m in range(k0):
        # dim -nd becomes a batch dim: the slab of a against the m-th kernel slice
        term = _valid_nd(a.narrow(-nd, k0 - 1 - m, o0), b.narrow(-nd, m, 1), nd - 1)
        out = term if out is None else out + term
    assert out is not None
    return out


def _conv(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    nb = a.ndim - nd
    ba, bb = a.shape[:nb], b.shape[:nb]
    sa, sb = a.shape[nb:], b.shape[nb:]
    batch = torch.broadcast_shapes(ba, bb)
    w = b.flip(list(range(-nd, 0)))
    if math.prod(bb) == 1:  # one kernel for all signals
        y = _CONV[nd](a.reshape(-1, 1, *sa), w.reshape(1, 1, *sb), padding=_sym(pads))
        y = y.reshape(*ba, *y.shape[2:])
    elif math.prod(ba) == 1:  # one signal, kernels as output channels
        y = _CONV[nd](a.reshape(1, 1, *sa), w.reshape(-1, 1, *sb), padding=_sym(pads))
        y = y.reshape(*bb, *y.shape[2:])
    else:  # per-signal kernels: grouped convolution
        g = math.prod(batch)
        y = _CONV[nd](
            a.expand(*batch, *sa).reshape(1, g, *sa),
            w.expand(*batch, *sb).reshape(g, 1, *sb),
            padding=_sym(pads),
            groups=g,
        )
        y = y.reshape(*batch, *y.shape[2:])
    return _crop(y, pads, sa, sb)


def _sym(pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """F.convNd pads symmetrically: take the larger side and crop the surplus afterwards."""
    return tuple(max(p) for p in pads)


def _crop(
    y: torch.Tensor, pads: Sequence[tuple[int, int]], sa: Sequence[int], sb: Sequence[int]
) -> torch.Tensor:
    nd = len(pads)
    for i, ((before, after), n, k) in enumerate(zip(pads, sa, sb)):
        start = max(before, after) - before
        length = n + before + after - k + 1
        if start or y.shape[i - nd] != length:
            y = y.narrow(i - nd, start, length)
    return y


def shift_add(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Exact direct convolution by one scaled, shifted add per kernel tap.

    Works for every dtype on every device (integers wrap like numpy's); its cost is one
    elementwise pass over the output per tap, with no im2col buffer and no channel padding.
    Accumulates in place unless autograd has to see each step.
    """
    nd = len(pads)
    nb = a.ndim - nd
    a = _zero_pad(a, pads)
    sa, sb = a.shape[nb:], b.shape[nb:]
    out_sz = [n - k + 1 for n, k in zip(sa, sb)]
    batch = torch.broadcast_shapes(a.shape[:nb], b.shape[:nb])
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.zeros(*batch, *out_sz, dtype=dtype, device=a.device)
    in_place = not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    for tap in itertools.product(*(range(k) for k in sb)):
        window, coef = a, b
        for i, (m, k, o) in enumerate(zip(tap, sb, out_sz)):
            window = window.narrow(nb + i, k - 1 - m, o)
            coef = coef.narrow(nb + i, m, 1)  # keeps the dim: broadcasts against the window
        if in_place:
            out.addcmul_(window, coef)
        else:
            out = torch.addcmul(out, window, coef)
    return out
