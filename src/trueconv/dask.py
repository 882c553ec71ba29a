"""Chunked and distributed true convolution of Dask arrays: :func:`convolve`, :func:`correlate`.

The functions here are shells over :func:`trueconv.convolve`: the same validation, the same
numbers, on arrays that do not fit in memory. Everything is planned on the client from shapes
alone; nothing is read or computed until the caller computes or stores the result.

How one call is built
---------------------
1. :func:`trueconv._spec.normalize` validates every argument against a *stand-in* of the array
   (a zero-strided numpy view with the array's shape and dtype, one element of memory), so the
   errors and messages are exactly those of :func:`trueconv.convolve`, raised before anything is
   scheduled, and the spec gives the output shape and dtype.
2. The array is aligned to the spec's layout (size-1 dims prepended, batch dims broadcast) and
   cast to the result dtype. The boundary rule is applied once, to the whole array: the result
   is the *valid* convolution of the array extended by the pads trueconv uses (``'full'``:
   ``(k - 1, k - 1)``; ``'same'``: ``(k - 1 - (k - 1) // 2, (k - 1) // 2)``; ``'valid'``:
   none), with ``np.pad`` semantics also for pads longer than the array. That extended array is
   never built: each output block reads its window of it (:func:`_segments`).
3. Output chunks follow the input chunks (:func:`_plan_dim`). Output block ``j`` along a
   convolved dim reads the extended window ``[P_j, P_j + o_j + k - 1)``: its own input chunk
   plus a halo of ``k - 1`` samples from the neighbouring chunks (and, at the array's edges,
   the boundary extension). Non-convolved (batch) dims keep their chunks and get no halo.
4. The graph has one task per output block (:func:`_block`). Its inputs are the whole input
   chunks it covers and small *copies* of the halo pieces it needs from the other chunks
   (:func:`_extract`); it assembles the window and runs ``trueconv.convolve(window, kernel,
   'valid', dims=...)`` on torch, on the requested device. That one call is where the math
   happens. A window that reaches into the zero fill of ``boundary='fill'`` (value 0) is
   convolved as its data in ``'full'`` mode, cut to the window's valid part: the same numbers,
   with the padding left implicit as :func:`trueconv.convolve` leaves it (it holds no terms:
   an infinite kernel tap meets no zero there, see the Notes of :func:`trueconv.convolve`), so
   the result equals the in-memory call with NaN and Inf in the data or the kernel too.

Why not ``dask.array.overlap``/``map_overlap`` with a padded array (the textbook recipe): its
halos are views that keep whole neighbour chunks alive, and together with the padding and the
rechunking that merges the pads into the edge chunks, the scheduler then held far more chunks
than needed: on a 2 GiB zarr volume in 32 MiB chunks, ``map_overlap`` of the identity peaked at
1.3 GiB resident, growing with the volume (dask issue #3671). Here a chunk is referenced only by
its own output task and by small copy tasks, so it can be released as soon as those ran.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trueconv import signal
from trueconv._spec import ConvSpec, normalize
from trueconv.core.names import Align, AlignAlias, Boundary, BoundaryAlias, Method, Mode

if TYPE_CHECKING:
    import dask.array

__all__ = ["Blocks", "blocks", "convolve", "correlate"]


def convolve(
    array: dask.array.Array,
    kernel: Any,
    mode: Mode = "same",
    *,
    dims: int | tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    method: Method = "auto",
    device: str | torch.device | None = None,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
) -> dask.array.Array:
    """True N-D convolution of a Dask array, block by block; equals :func:`trueconv.convolve`.

    Parameters
    ----------
    array : dask.array.Array
        The signal, of any chunking (chunks smaller than the kernel and uneven chunks included).
        Its chunk sizes must be known.
    kernel : Tensor or array_like
        The filter, held in memory and shipped with every task. A tensor on another device is
        brought to the host first (see ``device``).
    mode : {'same', 'full', 'valid'}, optional
        Size of the output, as in :func:`trueconv.convolve` — but the default is ``'same'``
        (the size of ``array``), the usual choice for volumes too big for memory.

        - ``'same'`` (default): ``n`` per convolved dim, centred as numpy/scipy.
        - ``'full'``: ``n + k - 1``.
        - ``'valid'``: ``max(n, k) - min(n, k) + 1``.
    dims : int or tuple of int, optional
        The convolved dims, as in :func:`trueconv.convolve`; the other dims broadcast and are
        never given halos.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        How ``array`` is extended beyond its edges for ``'same'`` and ``'full'``, with
        ``numpy.pad`` semantics, applied once to the whole array (never per block).
    fill_value : number, optional
        The value ``'fill'`` extends with (default 0).
    method : {'auto', 'direct', 'fft', 'overlap_add'}, optional
        The method each block runs, as in :func:`trueconv.convolve`; ``'auto'`` chooses per
        block shape.
    device : str or torch.device, optional
        Where each block is computed: ``None`` (default) on the CPU; ``'cuda'`` (or
        ``'cuda:1'``, ...) moves each block to that GPU of the worker running it and the result
        back to host memory. A worker without CUDA then fails that task with a
        ``RuntimeError``; blocks are never silently computed elsewhere.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        Where the ``'same'`` window sits, as in :func:`trueconv.convolve`.

    Returns
    -------
    dask.array.Array
        Lazy result of dtype ``torch.result_type(array, kernel)`` (as numpy dtype) and the
        documented shape. Its chunks are the input's: unchanged along batch dims; along each
        convolved dim the same, except that chunks too small for the halo are first merged with
        a neighbour (for ``'same'``, chunks of ``k // 2`` samples or more all stay), and that the
        last chunk grows by ``k - 1`` for ``'full'`` and shrinks by ``k - 1`` for ``'valid'``.

    Raises
    ------
    ValueError, TypeError
        Every argument error of :func:`trueconv.convolve`, with the same message, raised
        before anything is scheduled; ``TypeError`` when ``array`` is not a Dask array or the
        result dtype has no numpy equivalent (bfloat16); ``ValueError`` for unknown chunk
        sizes or a malformed ``device``.
    ImportError
        Dask is not installed: ``pip install 'trueconv[dask]'``.

    See Also
    --------
    trueconv.convolve : the in-memory function this one equals.
    correlate : the same with the kernel not flipped (and conjugated).

    Notes
    -----
    Each task holds its window (one input chunk plus a halo of ``k - 1`` samples per convolved
    dim), the method's working memory and its output block. Halo samples are copied out of the
    neighbouring chunks, so a chunk leaves memory once its own block and its copies are done.
    How many chunks are in memory at once is up to Dask's scheduling order: typically a few
    rows of chunks across the dims after the first, so for wide arrays chunk the first dim
    thinly. An 8 GiB zarr volume in 32 MiB chunks, 5 x 5 x 5 kernel, peaked at 1.49 GiB
    resident (``benchmarks/RESULTS_DASK.md``).

    ``'same'`` keeps a zarr-style chunking (equal chunks, a smaller last one) whose chunks hold
    ``k // 2`` samples or more, so the result can go straight to ``to_zarr``; the last chunk
    of ``'full'`` is larger than the others, so rechunk before writing it to zarr. ``'valid'``
    with a kernel larger than the array in every convolved dim (scipy's operand swap) keeps
    the convolved dims in one chunk: they are then no longer than the kernel, which is in
    memory anyway.

    Threads: a block that runs on a pool thread (Dask's threaded scheduler, the default for
    arrays, or a distributed worker's threads) computes with torch's threads divided by the
    tasks that run at once, one per task under the threaded scheduler's default of one task
    per core: torch's default of every core per task oversubscribed them (2 cores, 4096^2
    float32 in 1024^2 chunks, 31^2 kernel: 480-501 ms, one thread per task 365-397 ms). The
    task's thread count is its own (ATen's OpenMP backend) and restored afterwards. Several
    worker *processes* per machine still each see every core: set ``torch.set_num_threads``
    on them.

    Examples
    --------
    A derivative filter on a chunked ramp. The result is lazy, with the input's chunks:

    >>> import dask.array as da
    >>> import numpy as np
    >>> import trueconv.dask
    >>> x = da.from_array(np.arange(10), chunks=3)
    >>> y = trueconv.dask.convolve(x, [1, 0, -1])
    >>> y.chunks
    ((3, 3, 3, 1),)
    >>> y.compute()
    array([ 1,  2,  2,  2,  2,  2,  2,  2,  2, -8])

    In ``'valid'`` mode the last chunk, too short to give an output, joins its neighbour:

    >>> trueconv.dask.convolve(x, [1, 0, -1], "valid").chunks
    ((3, 3, 2),)

    Every mode and boundary gives what the in-memory function gives, whatever the chunks:

    >>> img = np.arange(12).reshape(3, 4)
    >>> chunked = da.from_array(img, chunks=(2, 1))
    >>> trueconv.dask.convolve(chunked, [[1, 1]], "full", boundary="wrap").compute()
    array([[ 3,  1,  3,  5,  3],
           [11,  9, 11, 13, 11],
           [19, 17, 19, 21, 19]])
    >>> trueconv.convolve(img, [[1, 1]], "full", boundary="wrap")
    tensor([[ 3,  1,  3,  5,  3],
            [11,  9, 11, 13, 11],
            [19, 17, 19, 21, 19]])
    """
    return _chunked(
        "convolve", array, kernel, mode, dims, boundary, fill_value, method, device, origin
    )


def correlate(
    array: dask.array.Array,
    kernel: Any,
    mode: Mode = "same",
    *,
    dims: int | tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    method: Method = "auto",
    device: str | torch.device | None = None,
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
) -> dask.array.Array:
    """N-D cross-correlation of a Dask array, block by block; equals :func:`trueconv.correlate`.

    Exactly :func:`convolve` with the kernel flipped over the correlated dims and conjugated,
    as :func:`trueconv.correlate` is :func:`trueconv.convolve`.

    Parameters
    ----------
    array : dask.array.Array
        The signal.
    kernel : Tensor or array_like
        The template; conjugated when complex.
    mode : {'same', 'full', 'valid'}, optional
        Output size, as in :func:`convolve` (default ``'same'``).
    dims : int or tuple of int, optional
        As in :func:`convolve`.
    boundary : {'fill', 'wrap', 'symmetric', 'reflect', 'replicate'}, optional
        As in :func:`convolve`.
    fill_value : number, optional
        As in :func:`convolve`.
    method : {'auto', 'direct', 'fft', 'overlap_add'}, optional
        As in :func:`convolve`.
    device : str or torch.device, optional
        As in :func:`convolve`.
    origin : int, tuple of int, or {'floor', 'ceil'}, optional
        As in :func:`convolve`.

    Returns
    -------
    dask.array.Array
        The lazy correlation.

    Raises
    ------
    ValueError, TypeError, ImportError
        As :func:`convolve`.

    See Also
    --------
    trueconv.correlate : the in-memory function this one equals.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import trueconv.dask
    >>> x = da.from_array(np.array([0, 1, 0, 0, 0]), chunks=2)
    >>> trueconv.dask.correlate(x, [1, 2, 3], "full").compute()
    array([0, 3, 2, 1, 0, 0, 0])
    """
    return _chunked(
        "correlate", array, kernel, mode, dims, boundary, fill_value, method, device, origin
    )


@dataclass(frozen=True)
class Blocks:
    """The blocks of a chunked convolution, planned from shapes alone (see :func:`blocks`).

    Per dim of the result, in the aligned layout of :func:`trueconv.convolve` (a kernel with
    more dims than the array prepends size-1 dims): ``chunks`` are the result's chunks, and
    ``windows`` the length of the input window (own chunk, halo, boundary extension) that the
    task of each chunk reads.
    """

    chunks: tuple[tuple[int, ...], ...]
    windows: tuple[tuple[int, ...], ...]

    @property
    def largest_block(self) -> tuple[int, ...]:
        """The largest result chunk per dim (0 for an empty dim)."""
        return tuple(max(c, default=0) for c in self.chunks)

    @property
    def largest_window(self) -> tuple[int, ...]:
        """The largest input window per dim: what the largest task holds."""
        return tuple(max(w, default=0) for w in self.windows)


def blocks(
    shape: Sequence[int],
    chunks: Sequence[Sequence[int]],
    dtype: Any,
    kernel: Any,
    mode: Mode = "same",
    *,
    dims: int | tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: complex = 0,
    method: Method = "auto",
    origin: int | tuple[int, ...] | Align | AlignAlias = 0,
) -> Blocks:
    """The chunks and task windows of :func:`convolve` on an array of ``shape``, ``chunks``
    and ``dtype``, planned from those alone: no array, no graph (opt_einsum's
    ``contract_path(..., shapes=True)`` in spirit).

    What a caller needs to size a job before it exists: the number of tasks, and the memory of
    the largest one. :func:`correlate` plans the same blocks.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    chunks : sequence of sequence of int
        Its chunk sizes per dim, as ``dask.array.Array.chunks``.
    dtype : numpy dtype
        Its dtype.
    kernel, mode, dims, boundary, fill_value, method, origin
        As in :func:`convolve` (validated alike, with the same messages).

    Returns
    -------
    Blocks
        The result's chunks and each task's window length, per dim.

    Examples
    --------
    >>> import numpy as np
    >>> import trueconv.dask
    >>> plan = trueconv.dask.blocks((10,), ((4, 4, 2),), np.float64, [1, 1, 1])
    >>> plan.chunks, plan.windows
    (((4, 4, 2),), ((6, 6, 4),))
    """
    if len(chunks) != len(shape) or any(sum(c) != n for c, n in zip(chunks, shape)):
        raise ValueError(f"blocks(): chunks {chunks!r} do not cover shape {tuple(shape)!r}.")
    one = np.zeros(1, dtype=dtype)
    standin = np.lib.stride_tricks.as_strided(one, tuple(shape), (0,) * len(shape))
    _, _, spec = normalize(
        "convolve", standin, kernel, mode, dims, method, boundary, fill_value, origin=origin
    )
    if spec.empty:
        return Blocks(tuple((n,) for n in spec.out_shape), tuple((0,) for _ in spec.out_shape))
    plans = _dim_plans(_aligned_chunks(tuple(tuple(c) for c in chunks), spec), spec)
    return Blocks(
        tuple(p.out_chunks for p in plans),
        tuple(tuple(length for _, length in p.windows) for p in plans),
    )


# ------------------------------------------------------------------------------------------------
# planning (client side, shapes only)
# ------------------------------------------------------------------------------------------------


def _import_dask_array(fname: str) -> Any:
    """``dask.array``, imported on first use so that ``import trueconv`` never needs Dask."""
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(
            f"trueconv.dask.{fname}() needs Dask, which is not installed ({exc}); "
            "install it with: pip install 'trueconv[dask]'"
        ) from None
    return da


@dataclass(frozen=True)
class _DimPlan:
    """Output chunks of one convolved dim and the window of the extended input each reads."""

    out_chunks: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]  # (start, length) in extended coordinates, per chunk


def _merge_small(chunks: Sequence[int], first: int, middle: int, last: int) -> tuple[int, ...]:
    """Merge neighbouring chunks until the first holds ``>= first`` samples, every middle one
    ``>= middle`` and the last ``>= last`` (a single chunk may be of any size).

    Greedy from the start; a leftover that can stand as the last chunk does, so a regular
    chunking (equal chunks, a smaller last one, as zarr stores them) stays regular whenever its
    chunks are already large enough.
    """
    groups: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= (middle if groups else first):
            groups.append(acc)
            acc = 0
    if acc:
        groups.append(acc)
    while len(groups) > 1 and groups[-1] < last:
        tail = groups.pop()
        groups[-1] += tail
    return tuple(groups)


def _plan_dim(chunks: Sequence[int], k: int, pads: tuple[int, int], swap: bool) -> _DimPlan:
    """Output chunks along one convolved dim, and the extended-input window of each.

    Output sample ``j`` of a valid convolution with a length-``k`` kernel reads extended samples
    ``j .. j + k - 1``, so output block ``[P, P + o)`` reads the extended window
    ``[P, P + o + k - 1)``: ``o`` samples plus a halo of ``k - 1``. Write the halo as ``hl``
    samples before and ``hr`` after the block's own input chunk, ``hl + hr = k - 1``, with
    ``hl = min(b, k - 1)`` for pads ``(b, a)``. With input chunks ``c_0 .. c_m``, the output
    chunks are::

        first : c_0 + b - hl       (the window: b pads, c_0, hr from c_1)
        middle: c_i                (hl from c_{i-1}, c_i, hr from c_{i+1})
        last  : c_m + a - hr       (hl from c_{m-1}, c_m, a pads)

    — the input's chunks for ``'same'`` (``hl, hr = b, a``); the last grows by ``k - 1`` for
    ``'full'`` (``hl, hr = k - 1, 0``) and shrinks by ``k - 1`` for ``'valid'``
    (``hl, hr = 0, k - 1``). Input chunks are first merged with a neighbour where a halo would
    reach past the neighbouring chunk (each chunk ``>= h = max(hl, hr)``) or an output chunk
    would be empty: ``c_0 >= max(h - b, 1 + hl - b, 1)``, ``c_i >= max(h, 1)``,
    ``c_m >= max(h - a, 1 + hr - a, 1)``. For ``'same'``, chunks of ``k // 2`` samples or more
    all stay; ``'valid'`` needs ``k - 1`` (the last chunk ``k``). Merging is not needed for
    correctness (a window may span any number of chunks); it keeps every halo in the direct
    neighbours, so each output block has at most three pieces per dim.

    ``swap`` (``'valid'`` with the kernel at least as large as the array in every convolved
    dim, scipy's operand swap): one chunk reading the whole array, ``k - n + 1`` outputs.
    """
    n = sum(chunks)
    b, a = pads
    if swap:
        return _DimPlan((k - n + 1,), ((0, n),))
    hl = min(b, k - 1)
    hr = k - 1 - hl
    h = max(hl, hr, 1)
    merged = _merge_small(chunks, max(h - b, 1 + hl - b, 1), h, max(h - a, 1 + hr - a, 1))
    if len(merged) == 1:
        out: tuple[int, ...] = (b + n + a - k + 1,)
    else:
        out = (merged[0] + b - hl, *merged[1:-1], merged[-1] + a - hr)
    starts = itertools.accumulate(out[:-1], initial=0)
    return _DimPlan(out, tuple((s, o + k - 1) for s, o in zip(starts, out)))


def _dim_plans(chunks: Sequence[Sequence[int]], spec: ConvSpec) -> list[_DimPlan]:
    """Every dim's plan, for an input of ``chunks`` in the spec's aligned layout: convolved
    dims by :func:`_plan_dim`; batch dims keep their chunks and read no halo."""
    swap = spec.mode == "valid" and spec.swap
    plans = []
    for d in range(spec.ndim):
        if d in spec.dims:
            i = spec.dims.index(d)
            plans.append(_plan_dim(chunks[d], spec.k[i], spec.pads[i], swap))
        else:
            starts = itertools.accumulate(chunks[d][:-1], initial=0)
            plans.append(_DimPlan(tuple(chunks[d]), tuple(zip(starts, chunks[d]))))
    return plans


def _aligned_chunks(
    chunks: tuple[tuple[int, ...], ...], spec: ConvSpec
) -> tuple[tuple[int, ...], ...]:
    """The input's chunks after :func:`_aligned`: size-1 dims prepended, broadcast batch dims
    in one chunk."""
    chunks = ((1,),) * (spec.ndim - len(chunks)) + chunks
    return tuple(
        c if d in spec.dims or spec.x_shape[d] == spec.out_shape[d] else (spec.out_shape[d],)
        for d, c in enumerate(chunks)
    )


def _source_of(p: np.ndarray, n: int, boundary: str) -> np.ndarray:
    """Source index of original positions ``p`` (any integers) under a boundary rule.

    The index maps of :func:`trueconv.core.boundary.source_index` (see its table), evaluated at
    given positions only: that function builds the whole extended axis, which for a long
    signal is far larger than the few pad samples needed here. A test checks that both agree.
    """
    if boundary == "wrap":
        return p % n
    if boundary == "symmetric":
        m = p % (2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if boundary == "reflect":
        if n == 1:
            return np.zeros_like(p)
        m = p % (2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    if boundary == "replicate":
        return np.clip(p, 0, n - 1)
    raise AssertionError(f"unknown boundary {boundary!r}")  # _spec canonicalised it


def _standin(array: Any) -> np.ndarray:
    """A zero-strided array with ``array``'s shape and dtype: validates like the real data
    (dtype and shape errors included) and holds a single element."""
    one = np.zeros(1, dtype=array.dtype)
    return np.lib.stride_tricks.as_strided(one, shape=array.shape, strides=(0,) * array.ndim)


def _numpy_dtype(fname: str, dtype: torch.dtype) -> np.dtype:
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        raise TypeError(
            f"{fname}(): the result dtype {str(dtype).removeprefix('torch.')} has no numpy "
            "equivalent, so a Dask array cannot hold it; cast the kernel (e.g. to float32)."
        ) from None


def _check_device(fname: str, device: Any) -> str | None:
    if device is None:
        return None
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{fname}(): device must be None or a torch device such as 'cpu', 'cuda' or "
            f"'cuda:1'; got {device!r}."
        ) from None


#: One piece of a window along one dim: ``(dest, length, block, start, step)`` — ``length``
#: samples placed at ``dest`` in the window, read from input chunk ``block`` starting at
#: ``start`` (within the chunk) forwards (``step = 1``), backwards (``-1``) or repeated (``0``);
#: ``block`` is ``None`` for a run of the fill value.
_Segment = tuple[int, int, int | None, int, int]


def _segments(
    window: tuple[int, int],
    pads_before: int,
    boundary: str,
    bounds: Sequence[int],
) -> list[_Segment]:
    """Where the samples of one extended-input window come from, along one dim.

    ``window = (start, length)`` in extended coordinates (original position + ``pads_before``);
    ``bounds`` are the input chunk boundaries along the dim (``0, c_0, c_0 + c_1, .., n``).
    Positions inside the array are one forward run; the (at most ``k - 1``) positions outside
    it follow the boundary rule. Runs are then cut at chunk boundaries.
    """
    n = bounds[-1]
    p0 = window[0] - pads_before
    p1 = p0 + window[1]
    runs: list[tuple[int, int, int | None, int]] = []  # (dest, length, first source, step)

    def outside(lo: int, hi: int) -> None:
        if hi <= lo:
            return
        if boundary == "fill":
            runs.append((lo - p0, hi - lo, None, 0))
            return
        dest = lo - p0
        for first, length, step in _runs(_source_of(np.arange(lo, hi), n, boundary).tolist()):
            runs.append((dest, length, first, step))
            dest += length

    outside(p0, min(p1, 0))
    lo, hi = max(p0, 0), min(p1, n)
    if hi > lo:
        runs.append((lo - p0, hi - lo, lo, 1))
    outside(max(p0, n), p1)

    segments: list[_Segment] = []
    for dest, length, first, step in runs:
        if first is None:
            segments.append((dest, length, None, 0, 0))
            continue
        if step == 0:
            blk = bisect.bisect_right(bounds, first) - 1
            segments.append((dest, length, blk, first - bounds[blk], 0))
            continue
        pos, left = first, length
        while left:
            blk = bisect.bisect_right(bounds, pos) - 1
            # forwards: up to the chunk's end; backwards: down to its start
            take = min(left, bounds[blk + 1] - pos if step == 1 else pos - bounds[blk] + 1)
            segments.append((dest, take, blk, pos - bounds[blk], step))
            dest, pos, left = dest + take, pos + step * take, left - take
    return segments


def _runs(index: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split a source-index sequence into ``(first, length, step)`` runs, step in -1, 0, 1."""
    runs = []
    start = 0
    while start < len(index):
        stop = start + 1
        step = index[stop] - index[start] if stop < len(index) else 1
        if step in (-1, 0, 1):
            while stop < len(index) and index[stop] - index[stop - 1] == step:
                stop += 1
        else:
            step = 1
        runs.append((index[start], stop - start, step))
        start = stop
    return runs


def _piece_index(combo: Sequence[_Segment]) -> tuple[slice, ...]:
    """Index into the source chunk for one piece (a product of one segment per dim)."""
    index = []
    for _, length, _, start, step in combo:
        if step == 1:
            index.append(slice(start, start + length))
        elif step == -1:
            index.append(slice(start, start - length if start >= length else None, -1))
        else:
            index.append(slice(start, start + 1))  # broadcast along the window when placed
    return tuple(index)


@dataclass(frozen=True)
class _Window:
    """How one output task assembles its window of the extended input (data for the graph)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    dests: tuple[tuple[slice, ...], ...]  # where each piece goes, in the window
    fill: bool | int | float | complex  # the value of pieces without data
    #: zero padding that ``trueconv.convolve`` leaves implicit (``boundary='fill'``, value 0):
    #: per dim, the fill samples before and after the data, which the block does not
    #: multiply either (an infinite kernel tap meets no padding: see trueconv._nonfinite)
    implicit: tuple[tuple[int, int], ...] | None = None


def _chunked(
    fname: str,
    array: Any,
    kernel: Any,
    mode: Any,
    dims: Any,
    boundary: Any,
    fill_value: Any,
    method: Any,
    device: Any,
    origin: Any,
) -> Any:
    da = _import_dask_array(fname)
    if not isinstance(array, da.Array):
        raise TypeError(
            f"{fname}(): array must be a dask.array.Array; got {type(array).__name__} "
            f"(trueconv.{fname} takes in-memory data)."
        )
    if any(isinstance(s, float) and math.isnan(s) for s in array.shape):
        raise ValueError(
            f"{fname}(): array has unknown chunk sizes (shape {array.shape}); call "
            "array.compute_chunk_sizes() first."
        )
    if isinstance(kernel, torch.Tensor):
        kernel = kernel.detach().cpu()  # shipped to the workers from host memory
    _, k, spec = normalize(
        fname, _standin(array), kernel, mode, dims, method, boundary, fill_value, origin=origin
    )
    dev = _check_device(fname, device)
    out_dtype = _numpy_dtype(fname, spec.dtype)

    if spec.empty:
        return da.zeros(spec.out_shape, dtype=out_dtype, chunks=-1)
    if fname == "correlate":  # correlate(x, k) == convolve(x, flip(conj(k))): one code path
        offset = spec.ndim - k.ndim
        own = [d - offset for d in spec.dims if d >= offset]
        k = k.flip(own) if own else k
        if k.is_complex():
            k = k.conj_physical()

    x = _aligned(da, array, spec)
    if x.dtype != out_dtype:
        x = x.astype(out_dtype)

    # per dim: output chunks, the window each output chunk reads, and its pieces
    swap = spec.mode == "valid" and spec.swap
    out_chunks: list[tuple[int, ...]] = []
    pieces: list[list[list[_Segment]]] = []
    for d, plan in enumerate(_dim_plans(x.chunks, spec)):
        bounds = list(itertools.accumulate(x.chunks[d], initial=0))
        before = spec.pads[spec.dims.index(d)][0] if d in spec.dims and not swap else 0
        out_chunks.append(plan.out_chunks)
        pieces.append([_segments(w, before, spec.boundary, bounds) for w in plan.windows])

    token = _tokenize(x, k, spec, dev)
    name = f"trueconv-{fname}-{token}"
    piece_name = f"trueconv-{fname}-halo-{token}"
    kernel_key = f"trueconv-{fname}-kernel-{token}"
    task = functools.partial(
        _block,
        dims=spec.dims,
        method=spec.method,
        device=dev,
        dtype=spec.dtype,
        kernel_slices=_kernel_slices(spec, k.ndim, out_chunks),
    )
    graph: dict[Any, Any] = {kernel_key: k}  # in the graph once, not once per task
    for block_id in itertools.product(*(range(len(c)) for c in out_chunks)):
        dests: list[tuple[slice, ...]] = []
        refs: list[Any] = []
        for number, combo in enumerate(
            itertools.product(*(p[i] for p, i in zip(pieces, block_id)))
        ):
            dests.append(tuple(slice(dest, dest + length) for dest, length, *_ in combo))
            if any(seg[2] is None for seg in combo):
                refs.append(None)
                continue
            source = (x.name, *(seg[2] for seg in combo))
            whole = all(
                step == 1 and start == 0 and length == x.chunks[d][blk]
                for d, (_, length, blk, start, step) in enumerate(combo)
            )
            if whole:  # a whole input chunk: used as it is
                refs.append(source)
            else:  # a halo piece: copied out, so it does not keep its chunk alive
                key = (piece_name, *block_id, number)
                graph[key] = (_extract, source, _piece_index(combo))
                refs.append(key)
        shape = tuple(p[i][-1][0] + p[i][-1][1] for p, i in zip(pieces, block_id))
        implicit = None
        if spec.boundary == "fill" and spec.fill_value == 0 and None in refs:
            implicit = tuple(_fill_runs(p[i]) for p, i in zip(pieces, block_id))
        window = _Window(shape, x.dtype, tuple(dests), spec.fill_value, implicit)
        graph[(name, *block_id)] = (task, window, refs, kernel_key, block_id)

    from dask.highlevelgraph import HighLevelGraph

    hlg = HighLevelGraph.from_collections(name, graph, dependencies=[x])
    meta = np.empty((0,) * spec.ndim, dtype=out_dtype)
    return da.Array(hlg, name, chunks=tuple(out_chunks), meta=meta)


def _aligned(da: Any, array: Any, spec: ConvSpec) -> Any:
    """``array`` with the spec's number of dims and its batch dims broadcast to the result's."""
    x = array
    if x.ndim < spec.ndim:
        x = x[(None,) * (spec.ndim - x.ndim)]
    target = tuple(
        spec.out_shape[d] if d not in spec.dims else s for d, s in enumerate(spec.x_shape)
    )
    if x.shape != target:
        x = da.broadcast_to(x, target, chunks=_aligned_chunks(x.chunks, spec))
    return x


def _kernel_slices(
    spec: ConvSpec, k_ndim: int, out_chunks: Sequence[Sequence[int]]
) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """Per-signal kernels: for each batch dim along which the kernel varies, ``(aligned dim,
    kernel dim, block starts)``, so that a block takes the kernel rows of its own signals."""
    offset = spec.ndim - k_ndim
    out = []
    for d in range(offset, spec.ndim):
        if d not in spec.dims and spec.k_shape[d] > 1:
            starts = tuple(itertools.accumulate(out_chunks[d][:-1], initial=0))
            out.append((d, d - offset, starts))
    return tuple(out)


def _tokenize(x: Any, k: torch.Tensor, spec: ConvSpec, device: str | None) -> str:
    """A deterministic graph name: the same call on the same array gives the same keys."""
    from dask.base import tokenize

    kernel_bytes = k.contiguous().reshape(-1).view(torch.uint8).numpy()
    return str(tokenize(x.name, kernel_bytes, str(k.dtype), tuple(k.shape), repr(spec), device))


# ------------------------------------------------------------------------------------------------
# execution (on the workers)
# ------------------------------------------------------------------------------------------------


def _extract(block: np.ndarray, index: tuple[slice, ...]) -> np.ndarray:
    """A copy of a halo piece: a view would keep the whole chunk in memory."""
    return np.array(np.asarray(block)[index])


def _fill_runs(segments: Sequence[_Segment]) -> tuple[int, int]:
    """The fill samples at the start and at the end of one dim of a window."""
    before = segments[0][1] if segments[0][2] is None else 0
    after = segments[-1][1] if segments[-1][2] is None and len(segments) > 1 else 0
    return before, after


#: Whether ``torch.set_num_threads`` acts on the calling thread only: so with ATen's OpenMP
#: backend (each thread has its own OpenMP thread count), not with its native thread pool.
_PER_THREAD_TORCH_THREADS = "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


@contextlib.contextmanager
def _task_threads() -> Iterator[None]:
    """A task on a pool thread computes with its share of the cores: torch's threads divided
    by the tasks that run at once (a distributed worker's threads, else the size of Dask's
    local thread pool: one per core by default, so one torch thread per task).

    Dask's threaded scheduler runs one task per core, and torch would give each of them every
    core: N tasks x N threads. Measured on 2 cores (torch 2.13), a 4096^2 float32 array in
    1024^2 chunks, ``'same'``: 31^2 kernel (FFT) 480-501 ms with torch's default threads,
    365-397 ms with one thread per task; 7^2 kernel (the direct loop) 152-191 against
    155-163 ms. The setting is the task thread's own (ATen's OpenMP backend), restored after;
    the main thread (the synchronous scheduler) and builds whose thread count is
    process-wide keep torch's setting.
    """
    if not _PER_THREAD_TORCH_THREADS or threading.current_thread() is threading.main_thread():
        yield
        return
    before = torch.get_num_threads()
    share = max(1, before // _concurrent_tasks())
    if share == before:
        yield
        return
    torch.set_num_threads(share)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _concurrent_tasks() -> int:
    """How many tasks run at once in this process: a distributed worker's threads, else the
    local threaded scheduler's pool (``num_workers``, default one per core)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        pass
    import dask

    return max(1, int(dask.config.get("num_workers", None) or os.cpu_count() or 1))


def _block(
    window: _Window,
    pieces: list[np.ndarray | None],
    kernel: torch.Tensor,
    block_id: tuple[int, ...],
    *,
    dims: tuple[int, ...],
    method: str,
    device: str | None,
    dtype: torch.dtype,
    kernel_slices: tuple[tuple[int, int, tuple[int, ...]], ...],
) -> np.ndarray:
    """One output block: assemble its window of the extended input, convolve it ('valid')."""
    x = np.empty(window.shape, dtype=window.dtype)
    for dest, piece in zip(window.dests, pieces):
        x[dest] = window.fill if piece is None else piece
    t = torch.from_numpy(x)
    k = kernel
    if kernel_slices:
        index = [slice(None)] * k.ndim
        for d, kd, starts in kernel_slices:
            start = starts[block_id[d]]
            index[kd] = slice(start, start + x.shape[d])
        k = k[tuple(index)]
    if device is not None:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"trueconv.dask: device={device!r} was requested but this worker has no CUDA "
                "device (torch.cuda.is_available() is False)."
            )
        t, k = t.to(device), k.to(device)
    if window.implicit is None:
        with _task_threads():
            y = signal.convolve(t, k, "valid", dims=dims, method=method)  # type: ignore[arg-type]
        return y.to(dtype).cpu().resolve_conj().numpy()
    # the data without its zero padding, and 'full' (which pads implicitly) cut to the valid
    # part of the padded window: along a dim with (b, a) fill samples, valid output j of the
    # padded window is full output j + K - 1 - b
    pads = window.implicit
    data = tuple(slice(b, n - a) for (b, a), n in zip(pads, t.shape))
    with _task_threads():
        y = signal.convolve(t[data], k, "full", dims=dims, method=method)  # type: ignore[arg-type]
    cut = []
    for d, ((b, _), n) in enumerate(zip(pads, t.shape)):
        # the kernel aligns with the trailing dims; a dim it lacks has one tap
        taps = k.shape[d - t.ndim] if d in dims and d - t.ndim >= -k.ndim else 1
        cut.append(slice(taps - 1 - b, n - b))
    return y[tuple(cut)].to(dtype).cpu().resolve_conj().numpy()
