"""The FFT method of the NN API: spectra multiplied and channels mixed per frequency.

A convolution layer is, per group ``g``, output channel ``o`` and input channel ``c``, a true
convolution of ``input[b, g, c]`` with ``weight[g, o, c]``, summed over ``c``. The transform is
linear, so the sum moves into the frequency domain: one forward transform per input channel and
per weight channel pair, one contraction over ``c`` at every frequency (a batched matrix
product with the frequencies as batch, see :class:`_Mixer`), and one inverse transform per
output channel -- never ``B * O * C`` spectra.

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
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trueconv.core.dtypes import transform_dtype
from trueconv.core.torch_internals import functorch_active
from trueconv.core.transforms import dft_matrix, next_fast_len, traced, transforms
from trueconv.nn._spec import NNSpec, Pads, is_integer, static_shape

#: Most complex output-spectrum elements held at once (2**24: 128 MiB in complex64, 256 MiB in
#: complex128), and at most one :data:`SPECTRUM_FRACTION` of the layer's input and output
#: elements (but at least :data:`SPECTRUM_MIN`). Larger problems are tiled over the batch, then
#: over output channels, so the ``B * O`` spectra of a big layer are never all materialised
#: together; a tile's spectrum and its inverse transform's output are held at once, so with
#: the fraction's eighth (a quarter of the bytes, complex) the tiles' temporaries stay within
#: about half the layer's input + output bytes.
SPECTRUM_BUDGET = 2**24
SPECTRUM_FRACTION = 8
SPECTRUM_MIN = 2**18


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


@dataclass(frozen=True)
class Layout:
    """How :func:`_mix` transforms and tiles one problem (shapes only)."""

    dims: tuple[int, ...]  # transformed spatial dims (0-based), where both operands are > 1
    lens: tuple[int, ...]  # their transform lengths
    spectrum: tuple[int, ...]  # spatial shape of a spectrum (half the last transformed dim)
    input: tuple[int, ...]  # spatial shape of the input
    b_chunk: int  # batch items per tile
    o_chunk: int  # output channels (per group) per tile
    #: tiles over output channels outside those over the batch: all input spectra are made
    #: first and the kernel spectra one output-channel tile at a time (where they outnumber
    #: the input's, ``O > B``); else the kernel spectra first and the input's per batch tile
    kernel_outer: bool = False


def layout(
    sa: Sequence[int],
    sk: Sequence[int],
    starts: Sequence[int],
    counts: Sequence[int],
    steps: Sequence[int],
    channels: tuple[int, int, int, int],
    real: bool,
) -> Layout:
    """The transform lengths and tiles of the channel mixing of spatial shapes ``sa``/``sk``
    (``channels`` = batch, groups, output and input channels per group)."""
    batch, groups, out_ch, in_ch = channels
    dims, lens = [], []
    for i, (n, m, s, c, st) in enumerate(zip(sa, sk, starts, counts, steps)):
        if n > 1 and m > 1:  # else a broadcast product, not a transform
            dims.append(i)
            lens.append(max(s + (c - 1) * st + 1, n + m - 1 - s, n, m))
    lens = [next_fast_len(m) for m in lens]  # even: rfftn halves the last
    spectrum = [max(n, m) for n, m in zip(sa, sk)]
    for d, m in zip(dims, lens):
        spectrum[d] = m
    if real and dims:
        spectrum[dims[-1]] = lens[-1] // 2 + 1
    points = math.prod(spectrum)
    per_item = groups * out_ch * points
    # the input spectra of a batch tile count too (G * C per item)
    per_batch_item = groups * max(out_ch, in_ch) * points
    data = batch * groups * (in_ch * math.prod(sa) + out_ch * math.prod(counts))
    budget = min(SPECTRUM_BUDGET, max(SPECTRUM_MIN, data // SPECTRUM_FRACTION))
    if out_ch > batch:  # kernel spectra (O C per group) outnumber the input's (B C)
        # a tile of kernel spectra and a tile of output spectra each within the budget
        o_chunk = max(1, min(out_ch, budget // max(groups * in_ch * points, 1)))
        b_chunk = max(1, min(batch, budget // max(groups * o_chunk * points, 1)))
        return Layout(tuple(dims), tuple(lens), tuple(spectrum), tuple(sa), b_chunk, o_chunk, True)
    b_chunk = max(1, min(batch, budget // max(per_batch_item, 1)))
    o_chunk = out_ch if per_item <= budget else max(1, budget // (per_item // out_ch))
    return Layout(tuple(dims), tuple(lens), tuple(spectrum), tuple(sa), b_chunk, o_chunk)


def geometry(
    spec: NNSpec,
) -> tuple[list[int], list[int], list[int], list[int], list[int], tuple[int, int, int, int]]:
    """What :func:`conv` / :func:`conv_transpose` hand to :func:`_mix`, from the spec alone:
    the spatial shapes of the (padded or zero-inserted) input and the dilated kernel, the
    wanted samples' ``starts``/``counts``/``steps``, and ``(batch, groups, out, in)``
    channels per group."""
    batch, channels = spec.input_shape[:2]
    n, kk = spec.input_shape[2:], spec.kernel_size
    sk = [(m - 1) * d + 1 for m, d in zip(kk, spec.dilation)]
    out_ch = spec.output_shape[1] // spec.groups
    in_ch = channels // spec.groups
    if spec.transposed:
        sa = [(m - 1) * s + 1 for m, s in zip(n, spec.stride)]
        starts = [p for p, _ in spec.pads]
        counts = [
            max(0, min(o, a + m - 1 - p))
            for o, a, m, p in zip(spec.output_shape[2:], sa, sk, starts)
        ]
        steps = [1] * spec.nd
    else:
        sa = [m + b + a for m, (b, a) in zip(n, spec.pads)]
        starts = [m - 1 for m in sk]  # valid sample j is sample (span - 1) + j of the full one
        counts = list(spec.output_shape[2:])
        steps = list(spec.stride)
    return sa, sk, starts, counts, steps, (batch, spec.groups, out_ch, in_ch)


#: Channel products per frequency (``B * C * O`` of one tile and group) up to which
#: :class:`_Mixer` sums broadcast products over ``c`` instead of calling ``bmm``. Provenance:
#: complex64 on the 2-core CPU of benchmarks/results/calibration-cpu.json, ``(B, C, O,
#: frequencies)``: (1, 3, 16, 34060) 0.73 vs 1.63 ms, (8, 3, 16, 34060) 17.6 vs 35.1,
#: (1, 16, 16, 34060) 5.6 vs 14.1, (2, 8, 8, 14000) 1.25 vs 2.40 for the sum; (4, 16, 16, 2520)
#: 1.22 vs 0.53 and (8, 16, 16, 2059) 2.67 vs 0.81 for ``bmm``: torch's batched product costs
#: ~0.4 us per frequency however small the matrices.
SUM_MAX_PRODUCTS = 512


class _Mixer:
    """The per-frequency channel contraction ``y[b, g, o, *F] = sum_c a[b, g, c, *F] *
    k[g, o, c, *F]``, broadcasting over ``F``.

    Few channel products: a sum over ``c`` of broadcast products (``C`` passes over the
    output). Otherwise one contiguous batched matrix product with the frequencies as batch:
    ``torch.einsum`` reaches the same ``bmm`` but with a strided batch, for which torch's CPU
    complex ``bmm`` copies every batch entry apart (8 x 16 x 16 channels at 2059 frequencies:
    15 ms against 1.2 ms contiguous). Spectrum dims where one operand has length 1 (a
    broadcast, not a transform) become matrix rows (``a`` only) or columns (``k`` only), so
    nothing is expanded.
    """

    def __init__(
        self, fa: Sequence[int], fk: Sequence[int], batch: int, in_ch: int, out_ch: int
    ) -> None:
        nf = len(fa)
        self.summed = batch * in_ch * out_ch <= SUM_MAX_PRODUCTS
        self.shared = [i for i in range(nf) if fa[i] == fk[i]]
        self.rows = [i for i in range(nf) if fa[i] != fk[i] and fk[i] == 1]
        self.cols = [i for i in range(nf) if fa[i] != fk[i] and fa[i] == 1]
        self.fshape = [max(n, m) for n, m in zip(fa, fk)]
        self.batch = math.prod([self.fshape[i] for i in self.shared])
        #: where the output channels are in :meth:`kernel`'s layout
        self.o_dim = 1 if self.summed else 2 + len(self.shared)

    def kernel(self, kf: torch.Tensor) -> torch.Tensor:
        """The kernel spectra ``(G, O, C, *F)`` in the layout :meth:`__call__` takes: as they
        are (sums), or contiguous ``(G, *shared, C, O, *cols)`` (``bmm``; rows dims dropped)."""
        if self.summed:
            return kf
        f = [3 + i for i in self.shared]
        c = [3 + i for i in self.cols]
        r = [3 + i for i in self.rows]
        t = kf.permute(0, *f, 2, 1, *c, *r)
        return t.reshape(static_shape(t)[: len(static_shape(t)) - len(self.rows)]).contiguous()

    def inputs(self, af: torch.Tensor) -> torch.Tensor:
        """The input spectra ``(B, G, C, *F)`` in the layout :meth:`__call__` takes: as they
        are (sums), or contiguous ``(G * shared, B, rows, C)`` (``bmm``; the size-1 column
        dims dropped). Any slice over the batch (dim :attr:`b_dim`) serves a tile."""
        if self.summed:
            return af
        batch, groups, in_ch = static_shape(af)[:3]
        f = [3 + i for i in self.shared]
        r = [3 + i for i in self.rows]
        cc = [3 + i for i in self.cols]
        a = af.permute(1, *f, 0, *r, *cc, 2)
        n_rows = math.prod([self.fshape[i] for i in self.rows])
        return a.reshape(groups * self.batch, batch, n_rows, in_ch).contiguous()

    @property
    def b_dim(self) -> int:
        """Where the batch is in :meth:`inputs`' layout."""
        return 0 if self.summed else 1

    def __call__(self, ap: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
        """``ap`` from :meth:`inputs` with ``kp`` from :meth:`kernel` (any slices of ``B`` and
        ``O``): ``(B, G, O, *F)``."""
        if self.summed:
            in_ch = static_shape(ap)[2]
            y = ap[:, :, 0].unsqueeze(2) * kp[:, :, 0].unsqueeze(0)
            # out of place under torch.func: vmap has no batching rule for addcmul_
            add = torch.addcmul if functorch_active() else torch.Tensor.addcmul_
            for c in range(1, in_ch):
                y = add(y, ap[:, :, c].unsqueeze(2), kp[:, :, c].unsqueeze(0))
            return y
        gf, batch, n_rows, in_ch = static_shape(ap)
        groups = gf // self.batch
        out_ch = static_shape(kp)[self.o_dim]
        n_cols = out_ch * math.prod([self.fshape[i] for i in self.cols])
        a = ap.reshape(gf, batch * n_rows, in_ch)  # a view: only the batch may be a slice
        kp = kp.reshape(gf, in_ch, n_cols).contiguous()
        y = torch.bmm(a, kp)
        # y's dims, labelled: G, *shared, B, *rows, O, *cols -> (B, G, O, *F in order)
        labels: list[int | str] = ["g", *self.shared, "b", *self.rows, "o", *self.cols]
        sizes: dict[int | str, int] = {"g": groups, "b": batch, "o": out_ch}
        sizes.update(enumerate(self.fshape))
        y = y.reshape([sizes[d] for d in labels])
        wanted: list[int | str] = ["b", "g", "o", *range(len(self.fshape))]
        return y.permute([labels.index(d) for d in wanted])


#: Kernels with at most this many taps along every transformed dim (by number of spatial
#: dims) get their spectra from products with DFT matrices (:func:`_dft_spectra`) instead of
#: zero-padded transforms. Provenance: ``method='fft'`` layers on the 2-core CPU, 'same'
#: padding, DFT / FFT time (float32, float64): 1-D 8x16x4096 * 32x16 at 15 taps 0.71, 0.65;
#: 31 taps 0.76, 0.91; 63 taps 0.90, 0.75. 2-D 16x32x128^2 * 64x32 at 3^2 1.01, 0.64; 7^2
#: 0.61, 0.75; 4x16x64^2 * 32x16 at 9^2 1.00, 0.71; 13^2 0.93, 1.03; 2x16x256^2 * 32x16 at
#: 21^2 1.14, 1.14. 3-D 2x8x24^3 * 8x8 at 5^3 0.98, 0.97; 9^3 1.25, 0.99.
KERNEL_DFT_MAX_TAPS = {1: 63, 2: 13, 3: 5}


def mixer_for(lay: Layout, sk: Sequence[int], in_ch: int) -> _Mixer:
    """The channel mixing :func:`_mix` runs for a layout, kernels of spatial shape ``sk``."""
    fa = [lay.spectrum[i] if i in lay.dims else n for i, n in enumerate(lay.input)]
    fk = [lay.spectrum[i] if i in lay.dims else n for i, n in enumerate(sk)]
    return _Mixer(fa, fk, lay.b_chunk, in_ch, lay.o_chunk)


def dft_kernel(mixer: _Mixer, taps: Sequence[int], dims: Sequence[int]) -> bool:
    """Whether :func:`_mix` makes the kernel spectra with :func:`_dft_spectra`: a matrix-product
    mixing (not a sum) and short kernels along every transformed dim."""
    limit = KERNEL_DFT_MAX_TAPS.get(len(taps), 0)
    return bool(dims) and not mixer.summed and all(taps[d] <= limit for d in dims)


def dft_points(spectrum: Sequence[int], taps: Sequence[int], dims: Sequence[int]) -> int:
    """Spectrum samples per kernel that :func:`_dft_spectra` writes: the transformed dims from
    the last to the first, each step's product (its taps are few, so each step costs about a
    pass over what it writes)."""
    sizes = list(taps)
    points = 0
    for d in reversed(dims):
        sizes[d] = spectrum[d]
        points += math.prod(sizes)
    return points


def _dft_spectra(
    mixer: _Mixer, k: torch.Tensor, dims: Sequence[int], lens: Sequence[int], real: bool
) -> torch.Tensor:
    """``mixer.kernel(rfftn(k, s=lens, dim=dims))`` (``fftn`` for complex data) for kernels
    ``k`` ``(G, O, C, *K)`` short along the transformed spatial dims ``dims``.

    The kernels are permuted to the mixer's layout while still tap-sized, then transformed
    one dim at a time, last first, by a product with the ``L x m`` DFT matrix (half of its
    rows for the halved last dim of a real transform): the last product (the first dim)
    writes the whole spectra once, contiguous in the mixer's layout. A zero-padded transform
    fills and transforms ``L / m`` times more samples per dim and then permutes the spectra;
    for 64 x 32 kernels of 3 x 3 taps at 135 x 140 points, the three cost 106, 42 and 112 ms
    (complex128) against ~55 ms here.
    """
    f = [3 + i for i in mixer.shared]
    c = [3 + i for i in mixer.cols]
    r = [3 + i for i in mixer.rows]
    t = k.permute(0, *f, 2, 1, *c, *r)
    t = t.reshape(static_shape(t)[: len(static_shape(t)) - len(r)])
    cdtype = t.dtype if t.is_complex() else t.dtype.to_complex()
    t = t.to(cdtype)
    last = dims[-1]
    for d, n in reversed(list(zip(dims, lens))):
        pos = 1 + mixer.shared.index(d)
        shape = static_shape(t)
        m = shape[pos]
        w = dft_matrix(n, m, cdtype, t.device)
        if real and d == last:
            w = w[: n // 2 + 1]
        pre, post = math.prod(shape[:pos]), math.prod(shape[pos + 1 :])
        t = torch.matmul(w, t.reshape(pre, m, post))
        t = t.reshape(*shape[:pos], static_shape(w)[0], *shape[pos + 1 :])
    return t


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
    real = not (a.is_complex() or k.is_complex())
    lay = layout(
        static_shape(a)[3:],
        static_shape(k)[3:],
        starts,
        counts,
        steps,
        (batch, groups, out_ch, in_ch),
        real,
    )
    dims, lens, b_chunk, o_chunk = [3 + d for d in lay.dims], lay.lens, lay.b_chunk, lay.o_chunk
    fwd, inv = transforms(real)
    crop: Any = (
        Ellipsis,
        *(slice(s, s + (c - 1) * st + 1, st) for s, c, st in zip(starts, counts, steps)),
    )
    mixer = mixer_for(lay, static_shape(k)[3:], in_ch)

    def spectra(t: torch.Tensor) -> torch.Tensor:
        return fwd(t, s=lens, dim=dims) if dims else t

    taps = static_shape(k)[3:]
    if dft_kernel(mixer, taps, lay.dims):

        def kernels(t: torch.Tensor) -> torch.Tensor:
            return _dft_spectra(mixer, t, lay.dims, lens, real)
    else:

        def kernels(t: torch.Tensor) -> torch.Tensor:
            return mixer.kernel(spectra(t))

    b_tiles = [(b0, min(b_chunk, batch - b0)) for b0 in range(0, batch, b_chunk)]
    o_tiles = [(o0, min(o_chunk, out_ch - o0)) for o0 in range(0, out_ch, o_chunk)]
    if lay.kernel_outer:
        held = mixer.inputs(spectra(a))  # every input spectrum; kernels' per channel tile
        tiles = [(ot, bt) for ot in o_tiles for bt in b_tiles]
    else:
        held = kernels(k)  # every kernel spectrum; input's per batch tile
        tiles = [(ot, bt) for bt in b_tiles for ot in o_tiles]
    # A call that records no graph writes each tile into one output, in place; a recorded
    # one (not every tracer understands that) concatenates the tiles.
    out = None
    if not traced(a, k):
        odtype = torch.promote_types(a.dtype, k.dtype)
        out = a.new_empty((batch, groups, out_ch, *counts), dtype=odtype)
    pieces: dict[tuple[int, int], torch.Tensor] = {}
    af = kp = None
    for (o0, on), (b0, bn) in tiles:
        if lay.kernel_outer:
            if b0 == 0:
                kp = None
                kp = kernels(k.narrow(1, o0, on))
            af = held.narrow(mixer.b_dim, b0, bn)
        else:
            if o0 == 0:
                af = None
                af = mixer.inputs(spectra(a.narrow(0, b0, bn)))
            kp = held.narrow(mixer.o_dim, o0, on)
        assert af is not None
        assert kp is not None
        yf = mixer(af, kp)
        y = inv(yf, s=lens, dim=dims) if dims else yf
        del yf
        if out is not None:
            out.narrow(0, b0, bn).narrow(2, o0, on).copy_(y[crop])
        else:
            pieces[b0, o0] = y[crop]
        del y
    if out is None:
        rows = [torch.cat([pieces[b0, o0] for o0, _ in o_tiles], dim=2) for b0, _ in b_tiles]
        out = torch.cat(rows, dim=0)
    return out.reshape(batch, groups * out_ch, *static_shape(out)[3:])


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
    cdtype = transform_dtype(spec.dtype)
    spatial = range(2, 2 + nd)
    a = x.to(cdtype)
    flat = flat_pads(pads)
    if any(flat):
        a = F.pad(a, flat)
    k = zero_insert(w.to(cdtype), spatial, spec.dilation)
    out_ch, in_ch = static_shape(k)[:2]
    k = k.reshape(spec.groups, out_ch // spec.groups, in_ch, *static_shape(k)[2:])
    _, _, starts, counts, steps, _ = geometry(spec)
    y = _mix(a, k, starts, counts, steps)
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
    cdtype = transform_dtype(spec.dtype)
    spatial = list(range(2, 2 + nd))
    a = zero_insert(x.to(cdtype), spatial, spec.stride)
    k = zero_insert(w.to(cdtype), spatial, spec.dilation).flip(spatial)
    in_ch, out_ch = static_shape(k)[:2]
    k = k.reshape(spec.groups, in_ch // spec.groups, out_ch, *static_shape(k)[2:]).transpose(1, 2)
    out = spec.output_shape[2:]
    _, _, starts, counts, steps, _ = geometry(spec)
    y = _mix(a, k, starts, counts, steps)
    flat = flat_pads([(0, o - c) for o, c in zip(out, counts)])
    if any(flat):
        y = F.pad(y, flat)
    return _finish(y, bias, x, spec.dtype)
