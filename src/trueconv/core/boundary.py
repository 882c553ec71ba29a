"""Extend a tensor beyond its edges, with :func:`numpy.pad` semantics.

Every non-constant rule is an index map ``i -> source index`` evaluated on the extended range,
then one ``index_select`` per dim. The maps are periodic, so pads larger than the input repeat
exactly as ``np.pad`` does (which applies its reflections repeatedly):

=============  ==================  =====================================  =================
rule           numpy ``np.pad``    source of extended index ``j``          period
=============  ==================  =====================================  =================
``wrap``       ``wrap``            ``j mod n``                             ``n``
``symmetric``  ``symmetric``       ``m = j mod 2n``; ``m`` or ``2n-1-m``   ``2n``
``reflect``    ``reflect``         ``m = j mod (2n-2)``; ``m`` or          ``2n - 2``
                                   ``2n-2-m`` (``n = 1``: always 0)
``replicate``  ``edge``            ``clamp(j, 0, n-1)``                    (none)
=============  ==================  =====================================  =================

(``j`` counts from the first original sample, so the samples added before it have ``j < 0``.)
``index_select`` is differentiable, so gradients flow back into the original samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trueconv.core.dtypes import static_shape
from trueconv.core.static import static


def source_index(n: int, before: int, after: int, boundary: str) -> torch.Tensor:
    """Indices into a length-``n`` axis that build its extension by ``(before, after)``."""
    j = torch.arange(-before, n + after, dtype=torch.int64)
    if boundary == "wrap":
        return j.remainder(n)
    if boundary == "symmetric":
        m = j.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if boundary == "reflect":
        if n == 1:
            return torch.zeros_like(j)
        m = j.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if boundary == "replicate":
        return j.clamp(0, n - 1)
    raise AssertionError(f"unknown boundary {boundary!r}")  # _spec canonicalised it


def _source_list(n: int, before: int, after: int, boundary: str) -> list[int]:
    """:func:`source_index` in Python ints, for :func:`_runs`: no torch op, so that nothing of
    it is traced (``torch.export`` traces Python with fake tensors, whose values are unknown).
    Python's ``%`` is torch's ``remainder`` (the divisor's sign); equal to
    :func:`source_index` (tested)."""
    out = []
    for j in range(-before, n + after):
        if boundary == "wrap":
            out.append(j % n)
        elif boundary == "symmetric":
            m = j % (2 * n)
            out.append(m if m < n else 2 * n - 1 - m)
        elif boundary == "reflect":
            m = j % (2 * n - 2) if n > 1 else 0
            out.append(m if m < n else 2 * n - 2 - m)
        else:  # replicate
            out.append(min(max(j, 0), n - 1))
    return out


def extend(
    x: torch.Tensor,
    dims: Sequence[int],
    pads: Sequence[tuple[int, int]],
    boundary: str,
    fill_value: bool | complex = 0,
) -> torch.Tensor:
    """Return ``x`` extended along ``dims`` by ``pads[i] = (before, after)`` samples.

    ``boundary`` is a canonical name (see :mod:`trueconv.core.names`); ``'fill'`` uses
    ``fill_value``. The result is a new tensor; ``x`` is never modified.
    """
    if not any(b or a for b, a in pads):
        return x
    sizes = static_shape(x)  # plain ints, also under torch.jit.trace
    if boundary == "fill":
        shape = list(sizes)
        region = [slice(None)] * x.ndim
        for d, (b, a) in zip(dims, pads):
            shape[d] += b + a
            region[d] = slice(b, b + sizes[d])
        out = x.new_full(shape, fill_value)
        out[tuple(region)] = x
        return out
    compiling = torch.compiler.is_compiling()
    for d, (b, a) in zip(dims, pads):
        if not (b or a):
            continue
        if compiling:
            parts = [
                x.narrow(d, start, length).flip(d) if flipped else x.narrow(d, start, length)
                for start, length, flipped in _runs(sizes[d], b, a, boundary)
            ]
            x = parts[0] if len(parts) == 1 else torch.cat(parts, d)
        else:
            x = x.index_select(d, source_index(sizes[d], b, a, boundary).to(x.device))
    return x


@static
def _runs(n: int, before: int, after: int, boundary: str) -> tuple[tuple[int, int, bool], ...]:
    """:func:`source_index` as runs of consecutive indices, ``(start, length, descending)``:
    the extension as a concatenation of slices (flipped where they descend).

    What :func:`extend` builds under ``torch.compile``, at trace time from shapes: torch 2.13's
    inductor corrupts the heap on CPU when it fuses the backward of ``index_select`` along two
    dims with a convolution's backward (a compiled training step of a
    ``padding_mode='reflect'`` layer aborted with "free(): corrupted unsorted chunks", float32
    and float64, also without trueconv's flip); slices, flips and ``cat`` compile without it.
    """
    runs: list[list[int]] = []
    for i in _source_list(n, before, after, boundary):
        run = runs[-1] if runs else []
        step = run[1] - run[0] if len(run) > 1 else i - run[-1] if run else 0
        if run and abs(step) == 1 and i - run[-1] == step:
            run.append(i)
        else:
            runs.append([i])
    return tuple((min(r[0], r[-1]), len(r), len(r) > 1 and r[1] < r[0]) for r in runs)
