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

On the CPU the single-channel problems of the signal API run in a compiled loop
(:mod:`trueconv._methods.rows`, variant ``'rows'``) when numba is installed, else by
shift-and-add.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trueconv import _nonfinite
from trueconv._methods import rows
from trueconv._problem import Problem
from trueconv.core import cost
from trueconv.core.dtypes import broadcast_shape, exact_dtype
from trueconv.core.static import register
from trueconv.core.torch_internals import (
    cudnn_ieee_float32,
    forward_ad_active,
    functorch_active,
    functorch_wrapped,
)

#: Computes integer problems in integers: ``'auto'`` may pick it for them.
EXACT = True

#: Device types whose ``F.convNd`` implements integer dtypes (checked for torch >= 2.1 on CPU).
NATIVE_INTEGER_CONV_DEVICES = frozenset({"cpu"})

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


#: The dtype the direct sum computes in (:func:`trueconv.core.dtypes.exact_dtype`).
compute_dtype = exact_dtype


def variant(
    taps: int, out_elems: int, dtype: torch.dtype, device_type: str, kernel: Sequence[int] = ()
) -> str:
    """``'rows'``, ``'shift_add'`` or ``'conv'`` (``F.convNd``) for a single-channel signal
    problem.

    On CPU the compiled loop where it runs (numba installed, its dtypes, 1-3 dims:
    :mod:`trueconv._methods.rows`), else shift-and-add: on the calibration grid (benchmarks/results/
    calibration-cpu.json) oneDNN ran 1-D signals, float64 (im2col + GEMM) and 3x3 kernels
    7-40x slower, and its float32 2-D times jumped 14x between 512^2 and 1024^2 inputs with a
    7x7 kernel (2.4 to 34 ms), so no cost model describes it; the NN API, with many channels,
    keeps ``F.convNd``. Elsewhere the cost model decides (integers only by shift-and-add where
    the device's conv has no integer kernel).
    """
    integer = not (dtype.is_floating_point or dtype.is_complex)
    if (
        device_type == "cpu"
        and rows.AVAILABLE
        and exact_dtype(dtype) in rows.DTYPES
        and 1 <= len(kernel) <= 3
    ):
        return "rows"
    if device_type == "cpu" or (integer and device_type not in NATIVE_INTEGER_CONV_DEVICES):
        return "shift_add"
    by_tap = cost.predict(_counts("shift_add", taps, out_elems, len(kernel)), dtype, device_type)
    by_conv = cost.predict(_counts("conv", taps, out_elems, len(kernel)), dtype, device_type)
    return "shift_add" if by_tap <= by_conv else "conv"


def _counts(v: str, taps: int, out_elems: int, nd: int) -> cost.Counts:
    """Shift-and-add: one call per tap, ``taps · outputs`` elements. ``F.convNd``: one call
    and ``taps · outputs`` multiply-adds, counted again as ``passes`` for 2-D and 3-D kernels:
    cuDNN's single-channel 2-D/3-D kernels cost 5-20x more per multiply-add than its 1-D
    ones (benchmarks/results/calibration-cuda.json), which the fit prices as ``conv_pass``."""
    macs = float(taps) * out_elems
    if v == "shift_add":
        return cost.Counts(v, taps, macs)
    return cost.Counts(v, 1, macs, passes=macs if nd >= 2 else 0.0)


def rows_counts(
    taps: int,
    out: Sequence[int],
    batch: int,
    memory: float = 0.0,
    kernel: Sequence[int] = (),
    itemsize: int = 4,
) -> cost.Counts:
    """The compiled loop (:mod:`trueconv._methods.rows`): one call; ``taps · outputs``
    multiply-adds; the output's samples as ``passes`` (each written once, its rows' copies
    of the input read once); and as ``aux`` its passes over output rows: row tiles (of at
    most :data:`rows.TILE` samples) times ``ceil(taps / rows.GROUP)``, each pass a fixed
    cost besides its taps (the group routine's set-up, the row's ends). Fitted on the
    calibration grid (2026-12-03, 2 threads, ``benchmarks/results/calibration-cpu.json``, 46
    problems per dtype), the two terms took the median error of the loop's predictions from
    17% / 22% (float32 / float64; calls and multiply-adds alone) to 9% / 8%, the worst from
    0.23x / 0.40x of the measured time to 0.51x / 0.42x (rows of 16 taps over 16 × 16384,
    2048² ⊛ 5×5 'full', 3-D kernels had been priced far too low); with ``memory``
    (:func:`trueconv.core.cost.memory`) to 4% / 5%, worst 0.73x / 0.69x.

    ``kernel``: the kernel's convolved shape. Where the loop computes output rows in pairs
    (:func:`trueconv._methods.rows.paired`), a pair's passes are per kernel plane one of
    each row's own kernel row and those of the rows both read, and the units are the mean
    of the multiply-adds and the vector loads (a pass is bound by both; a pair loads
    ``(k1 + 1)·k2`` input vectors per plane for its ``2·k1·k2`` multiply-adds): 0.80x the
    multiply-adds for 5×5, 0.79x for 7×7, 0.77x for 11×11, where the loop measured 0.73-0.84x
    the time per tap of rows one by one (1024² float32, one thread, 2026-12-05). A 3×3 plane's
    pair is one pass (:func:`trueconv._methods.rows.paired`): 0.83x the multiply-adds, half a
    pass per row, where whole 'same' calls measured 1.01-1.25x faster than rows one by one
    at one thread (2026-12-05, 512²-4096², float32 and float64).

    Where the loop computes short rows as strips over bands of copied rows
    (:func:`trueconv._methods.rows.band_rows`, ``itemsize`` the computed samples' bytes),
    each strip of a plane's rows makes ``ceil(taps / rows.GROUP)`` passes, one set-up for
    all its rows, with no pairs; its samples are counted ``k0 + 1`` times (the bands of the
    ``k0`` kernel planes' input rows copied, the strip's rows copied out), twice where the
    bands hold whole planes (:func:`trueconv._methods.rows.whole_planes`: each input plane
    copied once).
    """
    out_elems = batch * math.prod(out)
    o1, o2 = (1, 1, *out)[-2:]
    k0, k1, k2 = (1, 1, 1, *kernel)[-3:]
    brows = rows.band_rows(o2, o1, k0, k1, k2, itemsize) if kernel else 0
    if k0 == 1 and k2 == 1 and o2 >= rows.DIRECT_MIN:
        brows = 0  # a vertical kernel's rows are read in place, as strips (rows.add_strip)
    if brows and out_elems:
        whole = rows.whole_planes(o2, o1, k0, k1, k2, itemsize)
        strips = out_elems // (o1 * o2) * -(-o1 // brows)
        return cost.Counts(
            "rows",
            1,
            float(taps) * out_elems,
            passes=float(2 if whole else k0 + 1) * out_elems,
            aux=float(strips * -(-taps // rows.GROUP)),
            memory=memory,
        )
    last = out[-1] if out else 1
    # tiles of TILE, as the constants were fitted, though the loop now runs wider ones
    # (rows.widest_tile): counted by its tiles, a 20000 ⊛ 2000 row went from 11 passes per
    # group to 1, and 'auto' took the loop at 1.5 ms over the FFT's 0.65 (2 threads); the
    # per-pass constant holds more than the tile's set-up. A refit would count them.
    tiles = out_elems // last * -(-last // rows.TILE) if last else 0
    units = float(taps) * out_elems
    groups = float(-(-taps // rows.GROUP))  # passes per row tile
    if len(kernel) >= 2 and rows.paired(kernel[-2], kernel[-1]):
        k1, k2 = kernel[-2], kernel[-1]
        planes = taps // (k1 * k2)
        loads = planes * (k1 + 1) * k2 / 2  # per output sample
        units = (taps + loads) / 2 * out_elems
        own = -(-k2 // rows.GROUP)
        groups = planes * (2 * own + -(-((k1 - 1) * k2) // rows.GROUP)) / 2
        if (k1, k2) == (3, 3):  # a pair's plane in one pass (rows.add_pair3)
            groups = planes / 2
    return cost.Counts(
        "rows",
        1,
        units,
        passes=float(out_elems),
        aux=float(tiles * groups),
        memory=memory,
    )


@dataclass(frozen=True)
class DirectPlan:
    """The direct method's plan: the variant, decided once (:func:`variant`)."""

    problem: Problem
    variant: str  # 'rows', 'shift_add' or 'conv' (F.convNd on the flipped kernel)
    counts: cost.Counts
    compute_dtype: torch.dtype
    method: str = "direct"

    @property
    def places_nonfinite(self) -> bool:
        """The compiled loop and :func:`shift_add` multiply every term (see the latter's
        zero-tap rule), so NaN and ±Inf land where the direct sum has them. ``F.convNd`` on
        an accelerator need not: cuDNN may choose Winograd or FFT algorithms, whose
        transforms mix a tile's samples, so one NaN reaches outputs whose sums do not contain
        it."""
        return self.variant in ("rows", "shift_add")

    @property
    def extends(self) -> bool:
        """The compiled loop reads every boundary (``'reflect'``, ``'wrap'``, ..., a non-zero
        fill value) through per-dim index maps as it copies its rows
        (:func:`trueconv._methods.rows.valid_conv`), so no extended array is built: 2048²
        float32 ⊛ 3×3 ``'reflect'`` spent 8-13 ms of a call on the extension, against 2.4 ms
        for the whole zero-fill call (the fresh 16.8 MB array's page faults)."""
        return self.variant == "rows" and self.problem.extension is not None

    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return run(self, a, b)


def plan(
    problem: Problem, device: torch.device, forced: bool = False, *, use: str | None = None
) -> DirectPlan:
    """The direct method always applies; ``use`` forces a variant (for calibration)."""
    v = use or variant(problem.taps, problem.out_elems, problem.dtype, device.type, problem.sb)
    if v == "rows":
        counts = rows_counts(
            problem.taps,
            problem.out,
            problem.batch,
            problem.memory,
            problem.sb,
            compute_dtype(problem.dtype).itemsize,
        )
    else:
        counts = _counts(v, problem.taps, problem.out_elems, len(problem.sb))._replace(
            memory=problem.memory
        )
    return DirectPlan(problem, v, counts, compute_dtype(problem.dtype))


def run(plan: DirectPlan, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pads = plan.problem.pads
    nd = len(pads)
    if plan.extends:  # a unextended
        ext = plan.problem.extension
        assert ext is not None
        if rows.usable(a, b, pads):
            return rows.valid_conv(a, b, ext.pads, ext.rule, ext.fill)
        a = ext.apply(a)
    if plan.variant == "rows" and rows.usable(a, b, pads):
        return rows.valid_conv(a, b, pads)
    if plan.variant in ("rows", "shift_add") or _traced_tf32(a):
        return shift_add(a, b, pads)  # rows where data cannot be read: traced, ...
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


def ieee_float32(device_type: str) -> contextlib.AbstractContextManager[None]:
    """cuDNN's float32 convolutions in full precision on CUDA (the signal API promises float32
    results; :func:`trueconv.core.torch_internals.cudnn_ieee_float32`), nothing elsewhere."""
    return cudnn_ieee_float32() if device_type == "cuda" else contextlib.nullcontext()


def _tf32_dtype(dtype: torch.dtype) -> bool:
    """The dtypes cuDNN may run in TF32 (float32 and complex64, whose parts are float32)."""
    return dtype in (torch.float32, torch.complex64)


def _traced_tf32(a: torch.Tensor) -> bool:
    """Whether ``F.convNd`` on ``a`` would run at the user's cuDNN precision because the call
    is traced (``torch.compile``, ``torch.jit.trace``, ``torch.export``): the full-precision
    switch (:func:`ieee_float32`) is process-global state that a graph does not record, and
    Dynamo refuses to trace it (torch 2.11, H200, 2026-12-04: ``Unsupported: Attempted to
    inline function marked as skipped``, ``_FP32Precision.__getattr__``). There the taps run
    by shift-and-add instead: full float32 precision, fused into one kernel by Inductor."""
    return (
        a.device.type == "cuda"
        and _tf32_dtype(a.dtype)
        and (torch.compiler.is_compiling() or torch.jit.is_tracing())
    )


def _conv(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    if not _tf32_dtype(a.dtype):  # float64 and integers never run in TF32
        return _conv_nd(a, b, pads)
    with ieee_float32(a.device.type):
        return _conv_nd(a, b, pads)


def _conv_nd(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    nb = a.ndim - nd
    ba, bb = a.shape[:nb], b.shape[:nb]
    sa, sb = a.shape[nb:], b.shape[nb:]
    batch = broadcast_shape(ba, bb)
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


def _shift_add_functional(
    a: torch.Tensor,
    b: torch.Tensor,
    table: tuple[tuple[int, tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]], ...],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    nd: int,
) -> torch.Tensor:
    """:func:`shift_add` without in-place writes, for ``torch.func`` transforms.

    Under ``vmap`` the operands carry batch dims that a fresh ``torch.zeros`` buffer lacks, so
    an in-place add into it is refused, and the taps cannot be read as numbers. Here each tap's
    product is zero-padded to the output's extent and summed out of place: the same terms in
    the same order (so the same result), one more pass per tap, and every op has the
    transforms' batching and forward-mode rules."""
    out = torch.zeros(shape, dtype=dtype, device=a.device)
    for _, dst_index, src_index, tap in table:
        flat: list[int] = []  # F.pad lists the last dim first
        for dst, n in zip(dst_index[::-1][:nd], shape[::-1]):
            flat += [dst.start, n - dst.stop]
        out = out + F.pad(a[src_index] * b[tap], flat)
    return out


def _zero_taps_skippable(a: torch.Tensor, flat: Sequence[complex]) -> bool:
    """Whether the zero taps in ``flat`` may be left out without changing the result.

    A zero tap adds ``0 · a[i]``: nothing for finite samples, but NaN for NaN and ±Inf ones, as
    in the direct sum (and numpy's). Integers are always finite. Floating and complex signals
    are checked on the CPU only (:func:`trueconv._nonfinite.all_finite`: one reduction, about
    0.1 ms for 1024² float32, one thread, against 1.5-2 ms for a Laplacian's five taps), and
    only when a tap is zero; elsewhere the check would cost a device synchronisation, so every
    tap runs.
    """
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return True
    if 0 not in flat:
        return False  # nothing to skip
    return a.device.type == "cpu" and _nonfinite.checkable(a) and _nonfinite.all_finite(a)


@functools.lru_cache(maxsize=1024)
def _tap_table(
    sa: tuple[int, ...], sb: tuple[int, ...], pads: tuple[tuple[int, int], ...], nb: int
) -> tuple[tuple[int, tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]], ...]:
    """Per kernel tap that reaches the output: its flat index, the output slice it adds to,
    the input slice it reads and its own slice of the kernel (all with ``nb`` leading batch
    dims). From shapes alone, so a repeated call does not build it again (it cost ~20 us of
    a 3-tap call's ~160 us).

    With the input zero-padded by ``before``, the valid convolution is
    ``y[j] = sum_m b[m] · a[j + k - 1 - m - before]``: tap ``m`` adds ``b[m] · a[i]`` to
    ``y[i - (k - 1 - m - before)]`` for every ``i`` that lands inside ``y``.
    """
    per_dim = []
    for k, n, (before, after) in zip(sb, sa, pads):
        o = n + before + after - k + 1
        row: list[tuple[slice, slice] | None] = []
        for m in range(k):
            shift = k - 1 - m - before  # y[j] reads a[j + shift]
            j0, j1 = max(0, -shift), min(o, n - shift)
            row.append((slice(j0, j1), slice(j0 + shift, j1 + shift)) if j1 > j0 else None)
        per_dim.append(row)
    lead = (slice(None),) * nb
    table = []
    for t, tap in enumerate(itertools.product(*(range(k) for k in sb))):
        hits = [per_dim[i][m] for i, m in enumerate(tap)]
        if all(h is not None for h in hits):
            dst = (*lead, *(h[0] for h in hits if h is not None))
            src = (*lead, *(h[1] for h in hits if h is not None))
            table.append((t, dst, src, (*lead, *(slice(m, m + 1) for m in tap))))
    return tuple(table)


def shift_add(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Exact direct convolution by one scaled, shifted add per kernel tap.

    Works for every dtype on every device (integers wrap like numpy's), meta tensors included.
    Each tap adds a slice of the input into a slice of the output, so there is no padded copy,
    no im2col buffer and no channel padding; the cost is one pass over the output per tap plus
    a Python call. Taps are Python scalars when one kernel serves every signal and autograd
    needs no graph; otherwise broadcast tensors. The adds are in place into views of a fresh
    buffer, which autograd records (their backward needs only the input slice and the tap).
    Every term is multiplied, so ``0 · NaN`` and ``0 · Inf`` are NaN as in the direct sum; zero
    taps are skipped only where that cannot change the result (:func:`_zero_taps_skippable`).
    Samples of the implicit zero padding are not terms and are never multiplied.
    """
    nd = len(pads)
    nb = a.ndim - nd
    sa, sb = tuple(a.shape[nb:]), tuple(b.shape[nb:])
    out_sz = [n + bf + af - k + 1 for n, k, (bf, af) in zip(sa, sb, pads)]
    batch = broadcast_shape(a.shape[:nb], b.shape[:nb])
    dtype = torch.promote_types(a.dtype, b.dtype)
    if torch.compiler.is_compiling():  # traced once: the cache would only draw a warning
        table = _tap_table.__wrapped__(sa, sb, tuple(pads), nb)
    else:
        table = _tap_table(sa, sb, tuple(pads), nb)
        if functorch_active() or functorch_wrapped(a) or functorch_wrapped(b):
            return _shift_add_functional(a, b, table, (*batch, *out_sz), dtype, nd)
    out = torch.zeros(*batch, *out_sz, dtype=dtype, device=a.device)
    graph = (
        torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
    ) or forward_ad_active()
    flat = None
    if (
        not graph
        and math.prod(b.shape[:nb]) == 1
        and b.device.type != "meta"
        and not torch.compiler.is_compiling()
    ):
        flat = b.reshape(-1).tolist()  # one host transfer for all taps
    skip = flat is not None and _zero_taps_skippable(a, flat)
    for t, dst_index, src_index, tap in table:
        if flat is not None:
            if skip and not flat[t]:
                continue
            out[dst_index].add_(a[src_index], alpha=flat[t])
        else:
            out[dst_index].addcmul_(a[src_index], b[tap])
    return out


register(DirectPlan)  # rebuilt from plain tuples under torch.compile


rows.outside = shift_add  # the loop's fallback for kernels with NaN or ±Inf (rows._outside)
