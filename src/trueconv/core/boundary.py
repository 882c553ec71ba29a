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
    for d, (b, a) in zip(dims, pads):
        if b or a:
            idx = source_index(sizes[d], b, a, boundary).to(x.device)
            x = x.index_select(d, idx)
    return x
