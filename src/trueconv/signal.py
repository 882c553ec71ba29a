"""The signal API: :func:`convolve`, :func:`correlate` and :func:`choose_method`.

``scipy.signal`` semantics on PyTorch tensors: N-D, chosen dims with broadcasting, boundary
rules, exact integers, autograd, any device.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trueconv import _masked, _plan, _separable
from trueconv._methods import scratch as _scratch
from trueconv._problem import Plan
from trueconv._spec import ConvSpec, missing_spec, normalize
from trueconv.core.names import (
    Align,
    AlignAlias,
    Boundary,
    BoundaryAlias,
    Method,
    Mode,
    NanPolicy,
)
from trueconv.core.static import from_plain, specialized_shape, static, to_plain
from trueconv.core.torch_internals import functorch_active

__all__ = ["choose_method", "convolve", "convolve_separable", "correlate", "method_costs"]

_NOTES = """
    The output size along each convolved dim, for input length ``n`` and kernel length ``k``:

    - ``'full'``: ``n + k - 1``, every point where the operands overlap.
    - ``'same'``: ``n``, the slice of ``'full'`` that starts at ``(k - 1) // 2``. For even ``k``
      this is numpy's and scipy's alignment; MATLAB's ``conv(..., 'same')`` and torch/TF
      ``padding='same'`` start one sample later (``k // 2``). ``trueconv.conv2d(padding='same')``
      follows torch.
    - ``'valid'``: ``max(n, k) - min(n, k) + 1``, only points computed without any boundary. If
      the kernel is at least as large as the input in every convolved dim the operands swap
      (scipy); when neither dominates in every dim a ``ValueError`` is raised.

    ``boundary`` rules (how the input is extended for ``'full'`` and ``'same'``; ``'valid'``
    never looks past the input), for input ``a b c d``:

    =============  ========================  ==============================  ============
    boundary       aliases                   extension                       numpy.pad
    =============  ========================  ==============================  ============
    ``fill``       ``constant``, ``zeros``   ``v v | a b c d | v v``         constant
    ``wrap``       ``circular``              ``c d | a b c d | a b``         wrap
    ``symmetric``  ``symm``                  ``b a | a b c d | d c``         symmetric
    ``reflect``                              ``c b | a b c d | c b``         reflect
    ``replicate``  ``edge``                  ``a a | a b c d | d d``         edge
    =============  ========================  ==============================  ============

    Pads longer than the input repeat the rule, exactly as ``numpy.pad`` does. scipy.ndimage
    names its modes differently (its ``reflect`` is our ``symmetric``, its ``mirror`` our
    ``reflect``); to avoid silently swapping them, ndimage's names are not accepted.

    Edge cases: a zero-length convolved dim in either operand gives a zero-length output dim in
    every mode (scipy returns an empty array); ``dims=()`` convolves over no dim, which is the
    broadcast product, as is a 0-d kernel.

    Dtypes: the result has ``torch.result_type(input, kernel)``. Python lists follow
    ``torch.as_tensor`` (a list of floats becomes float32, torch's default dtype); numpy arrays
    keep their dtype. Integer and bool inputs give
    exact integer results (wrapping on overflow like numpy) and ``method='auto'`` only picks
    exact paths for them; an explicit ``method='fft'`` rounds a float64 result, exact while
    ``|y| < 2**52`` (as scipy). float16 and bfloat16 accumulate in float32; float64 and
    complex128 never pass through a lower precision.

    Non-finite values: every method puts NaN and ±Inf exactly where the direct sum (that of
    ``numpy.convolve``) has them: a term ``x * k`` with a NaN, or ±Inf times 0, is NaN; an
    output with a NaN term, or with both +Inf and -Inf terms, is NaN, else one with ±Inf terms
    is ±Inf. The zero padding of ``boundary='fill'`` with ``fill_value=0`` holds no terms
    (scipy's N-D direct path multiplies it, so an infinite tap reaching it gives NaN there);
    other boundaries and fill values extend with real samples. The transforms check their
    operands (one reduction each, about 0.1 ms per million samples on one CPU core) and only
    when a value is non-finite place them by counting terms on 0/1 indicators: NaN alone
    costs about 1-3.5x the time, ±Inf 2.5-15x (the most for overlap-add, which is cheap
    itself). For complex results the transforms give those outputs the value NaN. Meta
    tensors, and calls under ``torch.compile``, ``torch.jit.trace`` or ``torch.func``
    transforms, are not checked: there the transforms spread NaN and Inf as
    ``scipy.signal.fftconvolve`` and ``oaconvolve`` do.

    Supports: CPU and CUDA tensors (the result is on the input's device), meta tensors (shape
    and dtype only), autograd for input and kernel through every method, mode and boundary
    (reverse and forward mode: ``torch.autograd.forward_ad``), ``torch.func`` (``vmap`` over
    the input, the kernel or both, nested; ``grad``, ``jacrev``, ``jvp``), and
    ``torch.compile(fullgraph=True)``: the call is planned at trace time from static shapes
    (no graph break, nothing read from data); under dynamic shapes a new shape compiles a
    graph planned for it. Argument errors then surface inside torch's compile error, with
    the same message.
"""


def _with_notes(doc: str) -> str:
    return doc.replace("    Notes\n    -----\n", "    Notes\n    -----" + _NOTES, 1)


def convolve(
    input: Any,
    kernel: Any,
    mode: Mode = "full",
    *,
    dims: int | tuple[int, ...] | None = None,
    method: Method = "auto",
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
    nan_policy: NanPolicy = "propagate",
    mask: Any = None,
    normalize_kernel: bool = False,
    preserve_nan: bool = False,
) -> torch.Tensor:
    r"""True N-D convolution of ``input`` with ``kernel`` (the kernel flipped), as scipy.

    Parameters
    ----------
    input : Tensor or array_like
        The signal. Anything ``torch.as_tensor`` accepts; never modified.
    kernel : Tensor or array_like
        The filter. Must be on the same device as ``input`` when both are tensors.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output (see Notes):

        - ``'full'`` (default): ``n + k - 1`` per convolved dim.
        - ``'same'``: ``n``, centred on ``'full'`` as in numpy/scipy.
        - ``'valid'``: ``max(n, k) - min(n, k) + 1``.
    dims : int or tuple of int, optional
        The dims to convolve over. ``None`` (default): the kernel's dims, aligned with the
        input's trailing dims (all dims when both have the same ndim, as scipy; a 1-D kernel on
        a ``(B, C, L)`` input filters every row). Given: both operands are aligned by their
        trailing dims, ``dims`` index that common layout, and every other dim broadcasts by
        PyTorch rules (scipy's ``fftconvolve(axes=...)``).
    method : {'auto', 'direct', 'fft', 'overlap_add'}, optional
        ``'direct'`` sums products (``F.conv1d/2d/3d`` on the flipped kernel); ``'fft'``
        multiplies spectra of the whole operands; ``'overlap_add'`` cuts the long operand into
        blocks and transforms them in batches (long signals, mid-size kernels). ``'auto'``
        (default) picks the cheapest by a cost model, and only exact methods for integer
        inputs; it also looks at the kernel's values: a separable kernel (a Gaussian, a box,
        Sobel) runs as one 1-D pass per dim, a floating 2-D kernel of low rank (a Laplacian
        or difference of Gaussians, a Gabor filter) as a few such pairs of passes, where
        cheaper and within the error bounds of :func:`choose_method`. :func:`choose_method`
        says which.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        How ``input`` is extended beyond its edges for ``'full'`` and ``'same'`` (see Notes).
    fill_value : number, optional
        The value ``'fill'`` extends with (default 0), and the value missing samples take
        under ``nan_policy='fill'``. Must be representable in the result dtype.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        Where the ``'same'`` window sits: it starts at ``(k - 1) // 2 + origin`` of
        ``'full'`` along each convolved dim (one int for all, or one per dim; from
        ``-((k - 1) // 2)`` to ``k // 2``). ``0`` or ``'floor'`` (aliases ``'numpy'``,
        ``'scipy'``; default) is numpy/scipy's alignment; ``'ceil'`` (alias ``'matlab'``)
        moves even-length dims one sample later, as MATLAB's ``conv``/``conv2``/``convn``
        with ``'same'`` and ``filter2``/``imfilter``. Other modes take no shift.
    nan_policy : {'propagate', 'fill', 'interpolate'}, optional
        What a missing sample (NaN, or ``mask`` true) does. ``'propagate'`` (default): NaN
        lands where the direct sum puts it (see Notes). ``'fill'``: it takes ``fill_value``.
        ``'interpolate'``: the normalized convolution over the samples that are present,
        ``conv(x * v, k) / conv(v, k) * sum(k)`` with ``v`` 1 where present — astropy's
        ``nan_treatment='interpolate'``; equal to the plain convolution where nothing is
        missing, NaN where no present sample lies under the kernel. Needs a floating or
        complex result.
    mask : Tensor or array_like of bool, optional
        Marks missing samples (``True``, as ``numpy.ma`` and astropy); broadcasts to the
        input's shape. Needs ``nan_policy`` ``'fill'`` or ``'interpolate'``.
    normalize_kernel : bool, optional
        Divide the kernel by its sum first (astropy's ``normalize_kernel``; default False).
        With ``'interpolate'`` it drops the final ``* sum(k)``.
    preserve_nan : bool, optional
        Put NaN back where a sample was missing (``mode='same'`` only; astropy's
        ``preserve_nan``).

    Returns
    -------
    Tensor
        The convolution, of dtype ``torch.result_type(input, kernel)``, on the input's device.

    Raises
    ------
    ValueError
        Unknown ``mode``/``method``/``boundary``; bad or repeated ``dims``; a kernel with more
        dims than the input and no ``dims``; batch dims that do not broadcast; ``'valid'``
        where neither operand dominates; operands on different devices; a ``fill_value`` the
        result dtype cannot hold; an output, or an input as padded or extended, too large for
        one tensor (more than ``2**63 - 1`` bytes); an ``origin`` outside the window's range,
        or non-zero for a mode other than ``'same'``; an unknown ``nan_policy``; ``mask``
        with ``'propagate'`` or of a shape that does not broadcast to the input's;
        ``'interpolate'``, ``normalize_kernel`` or ``preserve_nan`` for an integer result;
        ``preserve_nan`` outside ``'same'``; ``normalize_kernel`` for a kernel summing to 0.
    TypeError
        Non-numeric or unsupported-dtype operands, ``dims`` or ``origin`` that are not
        integers, a ``mask`` that is not boolean.

    See Also
    --------
    correlate : the same with the kernel not flipped (and conjugated).
    choose_method : which method ``'auto'`` runs.
    scipy.signal.convolve : the reference semantics.

    Notes
    -----
    For one convolved dim, ``y[j] = sum_m input[m] * kernel[j - m]`` over every ``m`` where
    both are defined (``'full'``), which is the kernel flipped and slid along the input.

    Examples
    --------
    The seed example: a horizontal edge filter on a square. Convolution flips the kernel, so
    the rising edge comes out negative (cross-correlation, ``F.conv2d``, gives the opposite):

    >>> import torch
    >>> import trueconv
    >>> image = torch.zeros(5, 7, dtype=torch.int64)
    >>> image[1:4, 2:5] = 1
    >>> trueconv.convolve(image, [[-1, 1]], mode="valid")
    tensor([[ 0,  0,  0,  0,  0,  0],
            [ 0, -1,  0,  0,  1,  0],
            [ 0, -1,  0,  0,  1,  0],
            [ 0, -1,  0,  0,  1,  0],
            [ 0,  0,  0,  0,  0,  0]])

    Sizes of the three modes, and an impulse reproducing the kernel:

    >>> x = torch.tensor([0., 1., 0., 0.])
    >>> trueconv.convolve(x, torch.tensor([1., 2., 3.]))
    tensor([0., 1., 2., 3., 0., 0.])
    >>> trueconv.convolve(x, torch.tensor([1., 2., 3.]), "same")
    tensor([1., 2., 3., 0.])
    >>> trueconv.convolve(x, torch.tensor([1., 2., 3.]), "valid")
    tensor([2., 3.])

    The even-kernel ``'same'`` rule: the output starts at ``(k - 1) // 2`` of ``'full'``:

    >>> trueconv.convolve([1, 2, 3, 4], [1, 1], "full")
    tensor([1, 3, 5, 7, 4])
    >>> trueconv.convolve([1, 2, 3, 4], [1, 1], "same")
    tensor([1, 3, 5, 7])

    MATLAB's ``conv([1 2 3 4], [1 1], 'same')`` starts one sample later:

    >>> trueconv.convolve([1, 2, 3, 4], [1, 1], "same", origin="matlab")
    tensor([3, 5, 7, 4])

    A missing sample (NaN) interpolated from its neighbours, as astropy's ``convolve``:

    >>> x = torch.tensor([1., 1., float("nan"), 1., 1.])
    >>> trueconv.convolve(x, torch.tensor([1., 2., 1.]), "same")
    tensor([3., nan, nan, nan, 3.])
    >>> trueconv.convolve(x, torch.tensor([1., 2., 1.]), "same", nan_policy="interpolate")
    tensor([3., 4., 4., 4., 3.])

    A 1-D kernel filters every row of a batch; boundary rules extend the input:

    >>> rows = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
    >>> trueconv.convolve(rows, torch.tensor([1., 1., 1.]), "same", boundary="wrap")
    tensor([[ 6.,  6.,  6.],
            [15., 15., 15.]])
    """
    return _run(
        "convolve",
        (input, kernel, mode, dims, method, boundary, fill_value, origin),
        (nan_policy, mask, normalize_kernel, preserve_nan),
    )


def correlate(
    input: Any,
    kernel: Any,
    mode: Mode = "full",
    *,
    dims: int | tuple[int, ...] | None = None,
    method: Method = "auto",
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
    nan_policy: NanPolicy = "propagate",
    mask: Any = None,
    normalize_kernel: bool = False,
    preserve_nan: bool = False,
) -> torch.Tensor:
    r"""N-D cross-correlation of ``input`` with ``kernel``, as ``scipy.signal.correlate``.

    Exactly ``convolve(input, flip(conj(kernel)))`` over the convolved dims, in every mode,
    method and boundary: one identity, one code path.

    Parameters
    ----------
    input : Tensor or array_like
        The signal. Never modified.
    kernel : Tensor or array_like
        The template; conjugated when complex.
    mode : {'full', 'same', 'valid'}, optional
        Output size, as in :func:`convolve`.
    dims : int or tuple of int, optional
        Correlated dims, as in :func:`convolve`.
    method : {'auto', 'direct', 'fft', 'overlap_add'}, optional
        As in :func:`convolve`.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        As in :func:`convolve`.
    fill_value : number, optional
        As in :func:`convolve`.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        As in :func:`convolve`: the ``'same'`` window starts at ``(k - 1) // 2 + origin`` of
        the full correlation.
    nan_policy : {'propagate', 'fill', 'interpolate'}, optional
        As in :func:`convolve`.
    mask : Tensor or array_like of bool, optional
        As in :func:`convolve`.
    normalize_kernel : bool, optional
        As in :func:`convolve`.
    preserve_nan : bool, optional
        As in :func:`convolve`.

    Returns
    -------
    Tensor
        The correlation, of dtype ``torch.result_type(input, kernel)``.

    Raises
    ------
    ValueError
        As :func:`convolve`.
    TypeError
        As :func:`convolve`.

    See Also
    --------
    convolve : the same with the kernel flipped.
    scipy.signal.correlate : the reference semantics.

    Notes
    -----
    For one dim, ``z[l] = sum_m input[m + l - (k - 1)] * conj(kernel[m])`` in ``'full'`` mode,
    ``l = 0 .. n + k - 2``.

    Examples
    --------
    >>> import trueconv
    >>> trueconv.correlate([0, 1, 0, 0], [1, 2, 3])
    tensor([0, 3, 2, 1, 0, 0])
    >>> trueconv.correlate([1, 2, 3, 4], [1, 1j], "valid")
    tensor([1.-2.j, 2.-3.j, 3.-4.j])
    """
    return _run(
        "correlate",
        (input, kernel, mode, dims, method, boundary, fill_value, origin),
        (nan_policy, mask, normalize_kernel, preserve_nan),
        flip=True,
    )


def _run(fname: str, call: tuple[Any, ...], missing: tuple[Any, ...], flip: bool = False) -> Any:
    """:func:`convolve` (or :func:`correlate`, ``flip``): the call's arguments ``(input,
    kernel, mode, dims, method, boundary, fill_value, origin)``, and its options for missing
    samples ``(nan_policy, mask, normalize_kernel, preserve_nan)``."""
    input, kernel, *options = call
    x, k, spec, planned = _normalize(fname, input, kernel, *options)
    nan_policy, mask, normalize_kernel, preserve_nan = missing
    opts = missing_spec(fname, nan_policy, mask, normalize_kernel, preserve_nan, x, spec)
    if flip:
        own = [d - (spec.ndim - k.ndim) for d in spec.dims if d >= spec.ndim - k.ndim]
        k = k.flip(own) if own else k
        if k.is_complex():
            # a copy (the compiled loop reads data); a conjugate view under torch.func, where
            # conj_physical has no batching rule
            k = k.conj() if functorch_active() else k.conj_physical()
    if opts is None:
        return _execute(x, k, spec, planned=planned)

    def conv(a: torch.Tensor, b: torch.Tensor, fill: complex, dims: Any) -> torch.Tensor:
        # the call's options with this fill value and these dims
        a, b, s, p = _normalize(fname, a, b, mode, dims, method, boundary, fill, origin)
        return _execute(a, b, s, planned=p)

    mode, _, method, boundary, _, origin = options
    return _masked.run(x, k, spec, opts, conv)


def convolve_separable(
    input: Any,
    kernels: Sequence[Any],
    mode: Mode = "full",
    *,
    dims: int | tuple[int, ...] | None = None,
    method: Method = "auto",
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
) -> torch.Tensor:
    r"""Convolution with a kernel given by its separable factors, one 1-D pass per dim.

    The same result as ``convolve(input, k, ...)`` with ``k`` the outer product of
    ``kernels`` (``k[m0, m1, ...] = kernels[0][m0] * kernels[1][m1] * ...``), computed as
    one 1-D convolution per dim: ``sum(len(f))`` multiply-adds per output instead of
    ``prod(len(f))``. This is OpenCV's ``sepFilter2D`` and scipy.ndimage's per-axis filters,
    with true convolution and every mode and boundary of :func:`convolve`. (``'auto'`` also
    finds separable kernels given whole: :func:`choose_method` then says ``'separable'``.)

    A kernel of low rank ``r`` (a difference of Gaussians, a Laplacian of Gaussian, a Gabor
    filter: ``r = 2``) is a sum of ``r`` such terms: give each factor as a 2-D array with one
    row per term, ``k = sum_q kernels[0][q] ⊗ kernels[1][q] ⊗ ...`` (the canonical polyadic
    form; for a 2-D kernel ``kernels[0].T @ kernels[1]``, as from its SVD). The terms run as
    one compiled loop over the image, ``r·(k0 + k1)`` multiply-adds per output, where it runs
    (the CPU with numba, float32/float64, the last two convolved dims the only long ones);
    elsewhere (no numba, an accelerator, more long dims) one after the other, each as a
    separable kernel, and summed. With ``method='auto'`` either runs where the cost model
    prices it below the dense kernel, with ``'direct'`` wherever it can; otherwise the dense
    kernel (the terms' sum, formed in float64, complex128 or int64 and rounded once to the
    kernels' dtype) runs by ``method``, and so does an input holding NaN or ±Inf, whose
    non-finite values it places as the direct sum does. Each term's rounding is the passes'
    own, bounded by its factors' magnitudes: terms that cancel (a large sum of ``|terms|``
    for a small kernel) cost the accuracy that cancellation costs; the terms of an SVD do
    not (within twice the direct sum's bound, :mod:`trueconv._separable`).

    Parameters
    ----------
    input : Tensor or array_like
        The signal. Never modified.
    kernels : sequence of Tensor or array_like
        One factor per convolved dim, in the order of those dims: all 1-D (a separable
        kernel), or all 2-D of shape ``(r, k_d)`` with the same ``r >= 1`` (``r`` terms).
    mode : {'full', 'same', 'valid'}, optional
        As in :func:`convolve`.
    dims : int or tuple of int, optional
        The convolved dims, one per kernel (default: the last ``len(kernels)`` dims).
    method : {'auto', 'direct', 'fft', 'overlap_add'}, optional
        The method of every pass; ``'auto'`` (default) picks each pass's cheapest.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        As in :func:`convolve`: applied once to the whole input, so results equal the dense
        call's.
    fill_value : number, optional
        As in :func:`convolve`.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        As in :func:`convolve`.

    Returns
    -------
    Tensor
        As ``convolve(input, outer product of kernels, mode, ...)``.

    Raises
    ------
    ValueError
        As :func:`convolve`; ``kernels`` empty, a factor that is neither 1-D nor 2-D, 1-D and
        2-D factors mixed, 2-D factors with different numbers of rows (or none), or a number
        of kernels that differs from the number of ``dims``.
    TypeError
        As :func:`convolve`; ``kernels`` not a sequence.

    See Also
    --------
    convolve : the same with the whole kernel.

    Examples
    --------
    A 3×3 binomial blur as two passes of ``[1, 2, 1]``:

    >>> import torch
    >>> import trueconv
    >>> image = torch.zeros(4, 5, dtype=torch.int64)
    >>> image[1, 2] = 1
    >>> trueconv.convolve_separable(image, [[1, 2, 1], [1, 2, 1]], "same")
    tensor([[0, 1, 2, 1, 0],
            [0, 2, 4, 2, 0],
            [0, 1, 2, 1, 0],
            [0, 0, 0, 0, 0]])

    A Sobel derivative (smooth down the columns, differentiate along the rows) equals the
    dense call:

    >>> x = torch.arange(20.0).reshape(4, 5) ** 2
    >>> y = trueconv.convolve_separable(x, [[1, 2, 1], [1, 0, -1]], "valid")
    >>> torch.equal(y, trueconv.convolve(x, torch.outer(torch.tensor([1., 2., 1.]),
    ...                                                  torch.tensor([1., 0., -1.])), "valid"))
    True

    A rank-2 kernel (a difference of two Gaussians) as its two terms, one row each:

    >>> g = torch.exp(-torch.linspace(-3, 3, 9, dtype=torch.float64) ** 2 / 2)
    >>> h = torch.exp(-torch.linspace(-3, 3, 9, dtype=torch.float64) ** 2 / 8)
    >>> rows, cols = torch.stack([g, h]), torch.stack([g, -h])
    >>> image = torch.rand(64, 64, dtype=torch.float64)
    >>> y = trueconv.convolve_separable(image, [rows, cols], "same")
    >>> dense = torch.outer(g, g) - torch.outer(h, h)
    >>> torch.allclose(y, trueconv.convolve(image, dense, "same", method="direct"))
    True
    """
    fname = "convolve_separable"
    if isinstance(kernels, (str, bytes)) or not isinstance(kernels, Sequence):
        raise TypeError(
            f"{fname}(): kernels must be a sequence of 1-D kernels, one per convolved dim; "
            f"got {type(kernels).__name__}."
        )
    if len(kernels) == 0:
        raise ValueError(
            f"{fname}(): kernels must hold one 1-D kernel per convolved dim; got none."
        )
    device = input.device if isinstance(input, torch.Tensor) else None
    fs = []
    for i, f in enumerate(kernels):
        t = f if isinstance(f, torch.Tensor) else torch.as_tensor(f, device=device)
        if t.ndim not in (1, 2):
            raise ValueError(
                f"{fname}(): kernels[{i}] must be 1-D (the factor of a separable kernel) or 2-D "
                f"(one row per term); got shape {tuple(t.shape)}."
            )
        fs.append(t)
    nterms = 1
    if any(f.ndim == 2 for f in fs):
        terms = {f.shape[0] if f.ndim == 2 else None for f in fs}
        if len(terms) != 1 or None in terms or 0 in terms:
            raise ValueError(
                f"{fname}(): kernels must be all 1-D (one separable term) or all 2-D with the "
                "same number of rows, at least one (one row per term); got shapes "
                f"{[tuple(f.shape) for f in fs]}."
            )
        nterms = fs[0].shape[0]
        if nterms == 1:
            fs = [f[0] for f in fs]
    shape = [f.shape[-1] for f in fs]
    if dims is not None:
        given: Any = dims
        listed: list[Any] = [given] if isinstance(given, numbers.Integral) else list(given)
        if len(listed) != len(fs):
            raise ValueError(
                f"{fname}(): one kernel per convolved dim: got {len(fs)} kernels and dims={dims!r}."
            )
        rank = input.ndim if isinstance(input, torch.Tensor) else np.ndim(input)
        if all(isinstance(d, numbers.Integral) and -rank <= int(d) < rank for d in listed):
            # the kernel stand-in holds each length at its dim; factors in increasing dims
            at = [int(d) % rank for d in listed]
            shape = [1] * rank
            for d, f in zip(at, fs):
                shape[d] = f.shape[-1]
            fs = [f for _, f in sorted(zip(at, fs), key=lambda pair: pair[0])]
        # else: normalize() below refuses the dims with its own message
    kdtype = fs[0].dtype
    for f in fs[1:]:
        kdtype = torch.promote_types(kdtype, f.dtype)
    # traced: the function without its cache (Dynamo warns about lru_cache)
    make = _kernel_standin.__wrapped__ if torch.compiler.is_compiling() else _kernel_standin
    standin = make(tuple(shape), kdtype, fs[0].device)
    x, k, spec, planned = _normalize(
        fname, input, standin, mode, dims, method, boundary, fill_value, origin, separable=True
    )
    for i, f in enumerate(fs):
        if f.device != x.device:
            raise ValueError(
                f"{fname}(): kernels[{i}] is on {f.device}, the input on {x.device}; "
                "move them to one device."
            )
    if nterms > 1:
        return _terms(x, fs, kdtype, k.shape, spec, planned)
    if spec.empty or spec.swap or sum(n > 1 for n in spec.k) < 2:
        dense = fs[0].to(kdtype)
        for f in fs[1:]:
            dense = dense[..., None] * f
        return _execute(x, dense.reshape(k.shape), spec, planned=planned)
    # a length-one kernel is a scale: folded into the first longer one (no pass for it)
    first = next(i for i, f in enumerate(fs) if f.shape[0] > 1)
    scale = [f for f in fs if f.shape[0] == 1]
    fs = [f if f.dtype == kdtype else f.to(kdtype) for f in fs]
    for f in scale:
        fs[first] = fs[first] * f
    return _execute(x, k, spec, factors=tuple(fs), planned=planned)


@functools.lru_cache(maxsize=256)
def _kernel_standin(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The dense kernel's stand-in for :func:`convolve_separable`: one zero, expanded to
    ``shape`` (its checks read shapes, dtypes and devices only), made once per shape, dtype
    and device (two torch calls, about 3 us of a 50 us call on 64² ⊛ 5 + 5 taps)."""
    return torch.zeros((), dtype=dtype, device=device).expand(shape)


def _terms(
    x: torch.Tensor,
    fs: list[torch.Tensor],
    kdtype: torch.dtype,
    kshape: tuple[int, ...],
    spec: ConvSpec,
    planned: Planned | None,
) -> torch.Tensor:
    """:func:`convolve_separable` with ``r > 1`` terms (``fs``: one ``(r, k_d)`` factor per
    convolved dim, in increasing dims): the fused loop with the ``r`` pairs of factors where
    :func:`trueconv._separable.terms_plan` says it runs, else the dense kernel (the sum of the
    terms), which is also the fused loop's fallback (a non-finite input)."""
    rank = fs[0].shape[0]
    # the dense kernel: the terms' sum in the widest dtype of their kind (exact for integers,
    # as numpy's int64 wraps), then rounded once to the kernel's dtype
    wide = (
        torch.complex128
        if kdtype.is_complex
        else torch.float64
        if kdtype.is_floating_point
        else torch.int64
    )
    term = fs[0].to(wide)
    for f in fs[1:]:
        term = term[..., None] * f.to(wide).reshape((rank,) + (1,) * (term.ndim - 1) + (-1,))
    dense = term.sum(0).to(kdtype).reshape(kshape)
    plan = None
    if (
        planned is None
        and not (spec.empty or spec.swap)
        and spec.nd >= 2
        and not (torch.is_grad_enabled() and any(f.requires_grad for f in fs))
    ):
        plan = _separable.terms_plan(_plan.plan(spec, x.device), x.device, rank, spec.method)
    if plan is None:
        return _execute(x, dense, spec, planned=planned)
    # a length-one factor is a scale per term: folded into the first longer factor
    first = next(i for i, f in enumerate(fs) if f.shape[1] > 1)
    fs = [f if f.dtype == kdtype else f.to(kdtype) for f in fs]
    for i, f in enumerate(list(fs)):
        if f.shape[1] == 1:
            fs[first] = fs[first] * f
            fs[i] = torch.ones_like(f)
    return _execute(x, dense, spec, factors=tuple(fs))


def choose_method(
    input: Any,
    kernel: Any,
    mode: Mode = "full",
    *,
    dims: int | tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
    measure: bool = False,
    shapes: bool = False,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> str:
    """The method that ``convolve``/``correlate`` with ``method='auto'`` would run.

    Plans from shapes, dtypes and the device alone and computes nothing — the plan that
    ``'auto'`` then runs — unless ``measure``: then every feasible method runs on the given
    operands (twice; the faster run counts) and the fastest is remembered for this problem
    (shapes, dtypes, dims, mode, boundary and device), so later ``'auto'`` calls on the same
    problem run it. With ``shapes=True`` the operands are only their shapes (as
    ``opt_einsum.contract_path(..., shapes=True)``): nothing of their size is allocated.

    Parameters
    ----------
    input, kernel : Tensor or array_like, or sequence of int
        The operands, as in :func:`convolve`; with ``shapes=True``, their shapes.
    mode : {'full', 'same', 'valid'}, optional
        As in :func:`convolve`.
    dims : int or tuple of int, optional
        As in :func:`convolve`.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        As in :func:`convolve` (explicit boundaries change the problem size).
    fill_value : number, optional
        As in :func:`convolve`.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        As in :func:`convolve`.
    measure : bool, optional
        Time the candidates instead of predicting them, and remember the winner. Needs
        operands with data (not on the meta device, not ``shapes=True``).
    shapes : bool, optional
        ``input`` and ``kernel`` are shapes (sequences of non-negative ints, ``torch.Size``).
    dtype : torch.dtype, optional
        With ``shapes=True``: the dtype of both operands (default
        ``torch.get_default_dtype()``).
    device : str or torch.device, optional
        With ``shapes=True``: the device planned for (default ``'cpu'``).

    Returns
    -------
    str
        ``'direct'``, ``'fft'`` or ``'overlap_add'``; or ``'separable'`` when the kernel is
        separable (rank 1, checked on its values) and one 1-D pass per dim, each by its own
        cheapest method, is predicted faster than the dense problem (see
        :func:`convolve_separable`); or ``'low_rank'`` when a floating 2-D kernel is the sum
        of ``r`` separable terms (``2 <= r <= 4``, from its SVD) and one compiled loop over
        the ``r`` pairs of factors is predicted faster (the CPU with numba, float32 and
        float64). A separable kernel is accepted where its factors rebuild every element
        ``k[m]`` within ``T·u·|k[m]|`` (``T`` taps, ``u`` the unit roundoff; exactly for
        integers); a low-rank one where ``sum|k~ - k| <= T·u·sum|k|`` and the terms do not
        cancel much, so that every output stays within twice the direct sum's a-priori bound
        ``γ_T·sum|k|·max|x|`` over its window. On a small problem (its dense plan predicted
        below 0.1 ms) :func:`convolve` looks at a kernel from its second call on (one used
        once would not win back the look); this function looks at once, and the calls after
        it run what it says. With ``shapes=True`` or ``measure=True`` the kernel's values
        are not looked at: the dense methods only.

    Raises
    ------
    ValueError
        As :func:`convolve`; ``measure=True`` with meta tensors or shapes; ``dtype`` or
        ``device`` without ``shapes=True``.
    TypeError
        As :func:`convolve`; ``measure`` or ``shapes`` not a bool; a shape that is not a
        sequence of non-negative ints; a ``dtype`` that is not a ``torch.dtype``.

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> trueconv.choose_method(torch.zeros(1000), torch.zeros(3))
    'direct'
    >>> trueconv.choose_method(torch.zeros(1_000_000), torch.zeros(4096))
    'overlap_add'
    >>> trueconv.choose_method(torch.zeros(1024, 1024), torch.zeros(127, 127))
    'fft'
    >>> ints = torch.zeros(100_000, dtype=torch.int64)
    >>> trueconv.choose_method(ints, ints[:5000])  # integers: exact paths only
    'direct'

    From shapes alone (nothing of the operands' size is allocated):

    >>> trueconv.choose_method((64, 2**20), (4096,), "same", shapes=True)
    'overlap_add'
    >>> trueconv.choose_method((1024, 1024), (3, 3), shapes=True, dtype=torch.float64)
    'direct'
    """
    if not isinstance(measure, (bool, np.bool_)):
        raise TypeError(
            f"choose_method(): measure must be a bool (True or False); got {measure!r} of type "
            f"{type(measure).__name__}."
        )
    if measure and shapes is True:
        raise ValueError(
            "choose_method(): measure=True times the methods on data; shapes=True gives "
            "none. Pass the operands themselves to time them."
        )
    x, k, spec, where = _planned(
        "choose_method",
        input,
        kernel,
        mode,
        dims,
        boundary,
        fill_value,
        shapes,
        dtype,
        device,
        origin,
    )
    if shapes:
        return _plan.choose(spec, where)
    if measure and x.device.type == "meta":
        raise ValueError(
            "choose_method(): measure=True times the methods on the operands' data; meta "
            "tensors have none. Use measure=False to plan from shapes alone, or pass tensors "
            "on the device to time."
        )
    if not measure or spec.empty or spec.nd == 0:
        return _chosen(k, spec, x.device)
    timings = {}
    with torch.no_grad():
        for method in _plan.feasible(spec):
            timings[method] = min(
                _timed(x, k, dataclasses.replace(spec, method=method)) for _ in range(2)
            )
    winner = min(timings, key=timings.__getitem__)
    _plan.remember(spec, x.device, winner)
    return winner


def method_costs(
    input: Any,
    kernel: Any,
    mode: Mode = "full",
    *,
    dims: int | tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
    shapes: bool = False,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Predicted seconds of every method ``'auto'`` chooses among, by the cost model.

    The methods that apply to the call (overlap-add only where some dim is worth cutting
    into blocks; for integer and bool operands the exact ones only), each planned and priced
    as ``'auto'`` prices it; nothing is computed. ``'auto'`` keeps the direct method unless a
    transform saves a fifth of the direct method's predicted time, at most a per-device margin
    (0.5 ms on the CPU; :func:`choose_method` says what it runs).

    Parameters
    ----------
    input, kernel, mode, dims, boundary, fill_value, origin, shapes, dtype, device
        As in :func:`choose_method`.

    Returns
    -------
    dict of str to float
        Method name to predicted seconds on the device of the operands (or ``device``).

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> costs = trueconv.method_costs((1_000_000,), (4096,), shapes=True)
    >>> sorted(costs), min(costs, key=costs.get)
    (['direct', 'fft', 'overlap_add'], 'overlap_add')
    >>> sorted(trueconv.method_costs((1000,), (3,), shapes=True, dtype=torch.int64))
    ['direct']
    """
    _, _, spec, where = _planned(
        "method_costs",
        input,
        kernel,
        mode,
        dims,
        boundary,
        fill_value,
        shapes,
        dtype,
        device,
        origin,
    )
    return _plan.costs(spec, where)


def _planned(
    fname: str,
    input: Any,
    kernel: Any,
    mode: Any,
    dims: Any,
    boundary: Any,
    fill_value: Any,
    shapes: Any,
    dtype: Any,
    device: Any,
    origin: Any = 0,
) -> tuple[torch.Tensor, torch.Tensor, ConvSpec, torch.device]:
    """Normalise a planning call: operands, or their shapes (meta stand-ins) with ``dtype``
    and ``device``; the spec and the device to plan for."""
    if not isinstance(shapes, (bool, np.bool_)):
        raise TypeError(
            f"{fname}(): shapes must be a bool (True or False); got {shapes!r} of type "
            f"{type(shapes).__name__}."
        )
    if shapes:
        input, kernel = (
            _standin(fname, arg, value, dtype)
            for arg, value in (("input", input), ("kernel", kernel))
        )
    elif dtype is not None or device is not None:
        raise ValueError(
            f"{fname}(): dtype and device describe operands given as shapes (shapes=True); "
            "tensors carry their own."
        )
    x, k, spec = normalize(
        fname, input, kernel, mode, dims, "auto", boundary, fill_value, origin=origin
    )
    return x, k, spec, _device(fname, device) if shapes else x.device


def _standin(fname: str, arg: str, shape: Any, dtype: Any) -> torch.Tensor:
    """A meta tensor of ``shape`` and ``dtype``: the operand of a plan from shapes alone."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(
            f"{fname}(): with shapes=True, {arg} must be a shape (a sequence of "
            f"non-negative ints); got {type(shape).__name__}."
        )
    if not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) >= 0 for n in shape
    ):
        raise TypeError(
            f"{fname}(): with shapes=True, {arg} must be a shape (a sequence of "
            f"non-negative ints); got {shape!r}."
        )
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fname}(): dtype must be a torch.dtype; got {dtype!r}.")
    return torch.empty(tuple(int(n) for n in shape), dtype=dtype, device="meta")


def _device(fname: str, device: Any) -> torch.device:
    """``device`` as a torch device (default the CPU), or a ValueError naming it."""
    try:
        return torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{fname}(): device must be a torch device such as 'cpu' or 'cuda'; got {device!r}."
        ) from None


def _timed(x: torch.Tensor, k: torch.Tensor, spec: ConvSpec) -> float:
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    _execute(x, k, spec)
    sync()
    return time.perf_counter() - start


convolve.__doc__ = _with_notes(convolve.__doc__ or "")
correlate.__doc__ = _with_notes(correlate.__doc__ or "")


#: Plans made before :func:`_execute` (under ``torch.compile``): the call's plan and, for
#: :func:`convolve_separable`, its separable plan.
Planned = tuple[Plan | None, _separable.SeparablePlan | None]


def _normalize(
    fname: str,
    input: Any,
    kernel: Any,
    mode: Any,
    dims: Any,
    method: Any,
    boundary: Any,
    fill_value: Any,
    origin: Any = 0,
    *,
    separable: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, ConvSpec, Planned | None]:
    """:func:`trueconv._spec.normalize`; under ``torch.compile`` also the plans, made at trace
    time from the operands' static facts (:mod:`trueconv.core.static`), else ``None``
    (:func:`_execute` plans)."""
    if not torch.compiler.is_compiling():
        return (
            *normalize(
                fname, input, kernel, mode, dims, method, boundary, fill_value, origin=origin
            ),
            None,
        )
    x = input if isinstance(input, torch.Tensor) else torch.as_tensor(input)
    k = kernel if isinstance(kernel, torch.Tensor) else torch.as_tensor(kernel, device=x.device)
    facts = (
        (specialized_shape(x), x.dtype, x.device),
        (specialized_shape(k), k.dtype, k.device),
    )
    plain = _static_plans(
        fname, *facts, mode, dims, method, boundary, fill_value, origin, separable
    )
    spec, plan, sep = from_plain(plain)
    return x, k, spec, (plan, sep)


@static
def _static_plans(
    fname: str,
    x_facts: tuple[Any, ...],
    k_facts: tuple[Any, ...],
    mode: Any,
    dims: Any,
    method: Any,
    boundary: Any,
    fill_value: Any,
    origin: Any,
    separable: bool,
) -> Any:
    """Spec, plan and separable plan of a traced call (plain tuples): validated on stand-ins
    of the operands, planned for their device. Raises as an eager call would."""
    facts = (x_facts, k_facts)
    # one element each, expanded: the eager checks (dtypes, devices, shapes) see the operands'
    # facts without their data
    x, k = (torch.zeros((), dtype=dt, device=dev).expand(shape) for shape, dt, dev in facts)
    device = x.device
    _, _, spec = normalize(fname, x, k, mode, dims, method, boundary, fill_value, origin=origin)
    plan = sep = None
    if not spec.empty and spec.nd:
        plan = _plan.plan(spec, device)
        if separable:
            sep = _separable.plan(plan.problem, device, spec.method)
    return to_plain((spec, plan, sep))


def _execute(
    x: torch.Tensor,
    k: torch.Tensor,
    spec: ConvSpec,
    factors: tuple[torch.Tensor, ...] | None = None,
    planned: Planned | None = None,
) -> torch.Tensor:
    """Run a normalised problem: choose, run (extended as planned), restore layout and dtype. With
    ``factors`` (one 1-D tensor per convolved dim) the kernel is their outer product, ``k``
    only its stand-in, and the separable plan runs; with ``r > 1`` terms (factors of shape
    ``(r, k_d)``) ``k`` is the dense kernel and the terms' plan runs. ``planned``: plans made by
    :func:`_normalize` (under ``torch.compile``), else they are made here."""
    if spec.empty:
        out = torch.zeros(spec.out_shape, dtype=spec.dtype, device=x.device)
        # keep the (empty) result in the autograd graph, as any torch op would
        for t in (x, k):
            if t.requires_grad:
                out = out + t.flatten()[:0].sum()
        return out
    # the layout changes below are skipped where they change nothing: each is a torch call
    # (a few microseconds), and small problems are made of little else
    x = x if x.ndim == spec.ndim else x.reshape(spec.x_shape)
    k = k if k.ndim == spec.ndim else k.reshape(spec.k_shape)
    if spec.nd == 0:
        return (x * k).to(spec.dtype)

    plan = _plan.plan(spec, x.device) if planned is None else planned[0]
    assert plan is not None
    trailing = tuple(range(spec.ndim - spec.nd, spec.ndim))
    moved = spec.dims != trailing
    if moved:
        x, k = x.movedim(spec.dims, trailing), k.movedim(spec.dims, trailing)
    cdtype = plan.compute_dtype
    # a large converted input goes to memory the thread keeps (trueconv._methods.scratch
    # says why), held until the plan has run
    held = False
    if x.dtype != cdtype:
        x, held = _scratch.converted(x, cdtype, k, *(factors or ()))
    k = k if k.dtype == cdtype else k.to(cdtype)
    try:
        y = _run_planned(x, k, spec, plan, factors, planned)
    finally:
        if held:
            _scratch.give_back("input")
    if held and _scratch.holds(y):  # a view of the input (not expected): copied out
        y = y.clone()
    if moved:
        y = y.movedim(trailing, spec.dims)
    return _restore_dtype(y, spec.dtype)


def _run_planned(
    x: torch.Tensor,
    k: torch.Tensor,
    spec: ConvSpec,
    plan: Plan,
    factors: tuple[torch.Tensor, ...] | None,
    planned: Planned | None,
) -> torch.Tensor:
    """:func:`_execute`'s run of ``plan`` (or of the separable plan) on operands in the
    compute dtype and layout."""
    cdtype = plan.compute_dtype
    # an explicit extension (spec.extend_explicitly) is the plan's to apply: the signal goes
    # in unextended (trueconv._plan.run)
    a, b = (k, x) if spec.swap else (x, k)
    if factors is not None:
        rank = factors[0].shape[0] if factors[0].ndim == 2 else 1
        if planned is not None:
            sep_plan = planned[1]
        elif rank == 1:
            sep_plan = _separable.plan(plan.problem, x.device, spec.method)
        else:
            sep_plan = _separable.terms_plan(plan, x.device, rank, spec.method)
        assert sep_plan is not None, "convolve_separable() checked that it applies"
        fs = tuple(f if f.dtype == cdtype else f.to(cdtype) for f in factors)
        y = sep_plan.run(a, fs, b)
    else:
        split = _separable_split(spec, plan, b, x.device)
        y = _plan.run(plan, a, b) if split is None else split[0].run(a, split[1], b)
    return y


def _chosen(k: torch.Tensor, spec: ConvSpec, device: torch.device) -> str:
    """What ``'auto'`` runs for these operands: the planned method, ``'separable'`` or
    ``'low_rank'``."""
    method = _plan.choose(spec, device)
    if spec.empty or spec.swap:
        return method
    plan = _plan.plan(spec, device)
    trailing = tuple(range(spec.ndim - spec.nd, spec.ndim))
    b = k.reshape(spec.k_shape).movedim(spec.dims, trailing).to(plan.compute_dtype)
    split = _separable_split(spec, plan, b, device, eager=True)
    return method if split is None else split[0].method


def _separable_split(
    spec: ConvSpec, plan: Plan, b: torch.Tensor, device: torch.device, eager: bool = False
) -> tuple[_separable.SeparablePlan, tuple[torch.Tensor, ...]] | None:
    """The separable or low-rank plan and the kernel's factors where ``'auto'`` runs them
    (:mod:`trueconv._separable`: the kernel ``b`` is separable or of low rank and that plan
    is cheaper), else ``None``; :func:`_execute` and :func:`choose_method` ask this one
    question (``eager``: analyse the kernel whatever the problem's size, and keep the answer
    for the calls after it; :func:`trueconv._separable.choice`)."""
    if spec.method != "auto" or spec.swap or spec.nd < 2 or plan.problem.batch_b != 1:
        return None
    return _separable.choice(plan, b, device, eager)


def _restore_dtype(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if y.dtype == dtype:
        return y
    if dtype.is_floating_point or dtype.is_complex:
        return y.to(dtype)
    if y.dtype.is_floating_point:
        y = y.round().to(torch.int64)
    if dtype == torch.bool:
        return y != 0
    return y.to(dtype)  # int64 -> narrower integers wraps, as numpy's integer arithmetic
