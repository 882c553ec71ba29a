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

Both convolutions run the call's spec, and so its plan: ``conv(v, k)`` is computed as
``sum(k) - conv(1 - v, k)`` with zero fill when the fill counts as data (in ``'full'`` and
``'same'``, ``conv`` of all ones under a fill of 1 is ``sum(k)`` everywhere), so even then the
padding stays implicit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trueconv._spec import ConvSpec, MissingSpec, check_kernel_sum
from trueconv.core.torch_internals import functorch_active

#: ``conv(a, b, fill_value)`` of the call: same shapes, dims, mode, method, boundary, origin.
Conv = Callable[[torch.Tensor, torch.Tensor, complex], torch.Tensor]


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
        top = conv(torch.where(missing, 0, x), k, fill if fill_is_data else 0)
        if fill_is_data:
            bot = ksum - conv(missing.to(x.dtype), k, 0)
        else:
            bot = conv((~missing).to(x.dtype), k, 0 if spec.boundary == "fill" else fill)
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
        y = conv(x, k, fill)
    if opts.preserve_nan:
        y = torch.where(missing, math.nan, y)
    return y
