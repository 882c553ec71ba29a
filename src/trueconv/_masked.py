"""Missing samples: NaN-aware and masked convolution (``nan_policy``, ``mask``,
``normalize_kernel``, ``preserve_nan`` of :func:`trueconv.convolve`).

A sample is *missing* where it is NaN or where ``mask`` is true. With ``'fill'`` a missing sample
takes ``fill_value``; with ``'interpolate'`` the result is the *normalized convolution* over
the samples that are not missing (Knutsson and Westin, 1993),

    y = conv(x · v, k) / conv(v, k) · (1 if normalize_kernel else sum(k)),

``v`` being the 0/1 validity of each sample: each output is the kernel-weighted mean of the
valid samples under the kernel, rescaled by the kernel's sum, so it equals the plain
convolution wherever nothing is missing. This is astropy's ``nan_treatment='interpolate'``:
samples that ``boundary='fill'`` adds count as data when ``fill_value`` is finite and as missing
when it is NaN. An output with no valid sample under the kernel is NaN (its weight
``conv(v, k)`` within rounding of 0: ``256 · eps · sum|k|``, the direct sum's exact 0 seen
through a transform's rounding).

Both convolutions run as one call on the two stacked (one plan, the kernel transformed once):
``conv(v, k)`` is computed as ``sum(k) - conv(1 - v, k)`` with zero fill when the fill counts
as data (in ``'full'`` and ``'same'``, ``conv`` of all ones under a fill of 1 is ``sum(k)``
everywhere), so even then the padding stays implicit. Only a non-zero finite fill value needs
two calls (the data's padding holds it, the weights' does not).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trueconv._spec import ConvSpec, MissingSpec, check_kernel_sum
from trueconv.core.torch_internals import functorch_active

#: ``conv(a, b, fill_value, dims)`` with the call's mode, method, boundary and origin.
Conv = Callable[[torch.Tensor, torch.Tensor, complex, tuple[int, ...]], torch.Tensor]


def run(
    x: torch.Tensor, k: torch.Tensor, spec: ConvSpec, opts: MissingSpec, conv: Conv
) -> torch.Tensor:
    """The call's result with missing samples treated as ``opts`` says (``k`` as it is
    convolved: flipped and conjugated already for a correlation)."""
    x = x.reshape(spec.x_shape)
    k = k.reshape(spec.k_shape)
    inexact = spec.dtype.is_floating_point or spec.dtype.is_complex
    if inexact and not (k.is_floating_point() or k.is_complex()):
        k = k.to(spec.dtype)  # an integer kernel of a float result: sums and ratios in floats
    fill = spec.fill_value
    dims = tuple(d - spec.ndim for d in spec.dims)  # negative: they hold for a stacked input
    ksum = k.sum(dim=spec.dims, keepdim=True)
    if x.is_floating_point() or x.is_complex():
        missing = torch.isnan(x)
    else:
        missing = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    if opts.mask is not None:
        missing = missing | opts.mask.reshape(
            (1,) * (spec.ndim - opts.mask.ndim) + tuple(opts.mask.shape)
        )
    if opts.policy == "interpolate":
        # samples that 'fill' adds count as data, unless the fill is NaN ('valid' adds none)
        fill_is_data = spec.mode != "valid" and spec.boundary == "fill" and fill == fill
        data = torch.where(missing, 0, x)
        weights = missing if fill_is_data else ~missing
        weights = weights.to(data.dtype)
        data_fill = fill if fill_is_data else 0
        weight_fill = 0 if spec.boundary == "fill" else fill
        if data_fill == weight_fill:
            # one call on both: one plan run, the kernel transformed once
            top, bot = conv(torch.stack([data, weights]), k, weight_fill, dims).unbind(0)
        else:
            top, bot = conv(data, k, data_fill, dims), conv(weights, k, weight_fill, dims)
        if fill_is_data:
            bot = ksum - bot
        eps = torch.finfo(bot.real.dtype if bot.is_complex() else bot.dtype).eps
        tol = 256 * eps * k.abs().sum(dim=spec.dims, keepdim=True)
        empty = bot.abs() <= tol
        # the division never sees a zero: a NaN there would poison the gradient through where
        y = top / torch.where(empty, 1, bot)
        if not opts.normalize_kernel:
            y = y * ksum
        y = torch.where(empty, math.nan, y)
    else:
        if opts.normalize_kernel:
            if not (torch.compiler.is_compiling() or functorch_active()):
                check_kernel_sum(spec.fname, ksum, k.abs().sum(dim=spec.dims, keepdim=True))
            k = k / ksum
        if opts.policy == "fill":
            x = torch.where(missing, fill, x)
        y = conv(x, k, fill, dims)
    if opts.preserve_nan:
        y = torch.where(missing, math.nan, y)
    return y
