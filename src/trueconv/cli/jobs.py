"""What the two ways of running ``trueconv apply`` share: in memory (:mod:`trueconv.cli.apply`)
and chunk by chunk (:mod:`trueconv.cli.zarr_apply`).

The checked arguments (:class:`Options`, frozen once by :func:`trueconv.cli.apply.options_from`
and only read afterwards), the ``--kernel`` (:func:`load_kernel`, once per run) fitted to each
array (:func:`fit`), the compute dtype, the method planned from shapes alone
(:func:`planned_method`) and the memory estimate built on it (:func:`work_bytes`). Both
modules import this one; it imports neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import trueconv
from trueconv.cli import formats, kernels
from trueconv.cli._errors import InputError, UsageError
from trueconv.core.names import Boundary, BoundaryAlias, Method, Mode

#: Peak working memory of one job beyond its input, in units of the output array, per method:
#: the result itself and the method's scratch (the direct sum: little; the FFT: padded operands,
#: spectra and product; overlap-add: one box of blocks, their spectra, plus the output).
#: Provenance: benchmarks/RESULTS_CLI.md, section "Memory per method" (peak RSS beyond the idle
#: command and the input, made by benchmarks/cli_memory.py): direct 1.0, fft 3.1-4.3,
#: overlap-add 1.2-1.3 (8000^2 images, 10 min of stereo audio); rounded up, so that the
#: estimate errs on the safe side.
WORK_FACTOR = {"direct": 1.5, "fft": 5.0, "overlap_add": 2.0}

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's convert("L")


@dataclass(frozen=True)
class Options:
    """The ``apply`` arguments, checked and completed once; every step below only reads them."""

    inputs: tuple[Path, ...]
    kernel: str  # --kernel as typed: a built-in spec or a file
    output: Path | None
    out_dir: Path | None
    mode: Mode
    boundary: Boundary | BoundaryAlias | None  # --boundary; None: per kind (boundary_for)
    fill_value: float
    method: Method
    correlate: bool
    dims: tuple[int, ...] | None  # --dims as typed (arrays; each array resolves them: fit)
    device: str
    dtype: str  # --dtype: 'auto' or a float dtype's name
    normalize: bool
    float_output: bool
    max_bytes: int  # --max-bytes, or its default share of the machine's memory
    chunks: str | None  # --chunks as typed, for messages
    chunk_sizes: tuple[int, ...] | None  # --chunks parsed (zarr_apply.parse_chunks)
    scheduler: str | None
    force: bool
    quiet: bool
    verbose: bool

    def boundary_for(self, kind: str) -> Boundary | BoundaryAlias:
        """``--boundary``, or the default of a file of ``kind``: :data:`IMAGE_BOUNDARY` for
        images in ``--mode same``, ``'fill'`` (zeros) otherwise: for arrays and audio, and for
        ``'full'`` (every overlap, zero-padded as scipy's) and ``'valid'`` (no extension)."""
        if self.boundary is not None:
            return self.boundary
        return IMAGE_BOUNDARY if kind == "image" and self.mode == "same" else "fill"


#: The default boundary of images: ``'reflect'`` (OpenCV's default ``BORDER_REFLECT_101``,
#: torch's ``padding_mode='reflect'``): a blur keeps the border's brightness, where zeros
#: darken it (a sigma-2 Gaussian took the top row of scikit-image's ``camera`` from a mean of
#: 194 to 116). Arrays and audio keep ``'fill'``: zeros are silence and numpy's/scipy's rule.
IMAGE_BOUNDARY: Boundary = "reflect"


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- the kernel ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """The ``--kernel`` argument: a built-in spec (built per input at the input's rank) or
    an array read from a file."""

    text: str
    tag: str  # names default outputs: <stem>-<tag><suffix>
    spec: kernels.KernelSpec | None = None
    array: np.ndarray | None = None
    per_channel: bool = False  # an impulse response with one channel per input channel
    samplerate: int | None = None

    @property
    def resident(self) -> int:
        """Bytes a kernel read from a file holds during every job (a built-in is built per
        input and counted with its job)."""
        return 0 if self.array is None else self.array.nbytes


#: Peak bytes per sample of decoding a kernel file, beyond the samples as stored: the samples
#: in their float working type (images: float32/float64, see formats.work_dtype) and two
#: float64 planes while an image is turned grey and scaled to sum 1 (load_kernel). An upper
#: bound for every kind; what is kept afterwards (Kernel.resident) is counted per job.
_KERNEL_DECODE_EXTRA = 8 + 2 * 8


def _kernel_too_big(what: str, shape: tuple[int, ...], nbytes: int, max_bytes: int) -> str | None:
    """Why a kernel of ``shape`` needing ``nbytes`` is refused under ``--max-bytes``, or None."""
    if nbytes <= max_bytes:
        return None
    taps = formats.shape_text(shape)
    taps += f" = {formats.approx(math.prod(shape))}" if len(shape) > 1 else ""
    return (
        f"kernel {what} has {taps} taps, about {formats.human_bytes(nbytes)} of memory, more "
        f"than --max-bytes {formats.human_bytes(max_bytes)}"
    )


def load_kernel(text: str, max_bytes: int) -> Kernel:
    """Parse ``--kernel``: a file when it exists or has a known suffix, inline numbers
    (``1,2,1``, ``[[...]]``), else a built-in.

    A file's size is checked against ``max_bytes`` from its header, before it is decoded (a
    1 MB ``.npz`` can inflate to gigabytes); a built-in's when it is built for an input.
    """
    path = Path(text)
    if not path.exists() and kernels.is_inline(text):
        try:
            return Kernel(text, "inline", array=kernels.parse_inline(text))
        except ValueError as exc:
            raise UsageError(f"--kernel: {exc}") from None
    if not (path.exists() or path.suffix.lower() in formats.FORMATS):
        try:
            spec = kernels.parse(text)
        except ValueError as exc:
            raise UsageError(f"--kernel: {exc}") from None
        return Kernel(text, spec.builtin.name, spec=spec)
    try:
        source = formats.open_source(path, "kernel")
        if len(source.shapes) != 1:
            raise UsageError(f"--kernel {text}: holds {len(source.shapes)} arrays; save one")
        ((name, shape),) = source.shapes.items()
        decode = math.prod(shape) * (source.dtypes[name].itemsize + _KERNEL_DECODE_EXTRA)
        if why := _kernel_too_big(text, shape, decode, max_bytes):
            raise UsageError(f"--kernel: {why}")
        signal = formats.read(source)
    except InputError as exc:
        raise UsageError(f"--kernel {text}: {exc}") from None
    k = next(iter(signal.arrays.values()))
    if signal.kind == "image":  # a point-spread function: grey, weights summing to 1
        k = np.tensordot(_LUMA, k, axes=1) if k.shape[0] == 3 else k[0]
        total = float(k.sum())
        if total == 0:
            raise UsageError(f"--kernel {text}: the image is black; it cannot be scaled to sum 1")
        k = k / total
    per_channel, rate = False, None
    if signal.kind == "audio":
        rate = signal.meta["samplerate"]
        per_channel = k.shape[0] > 1
        k = k if per_channel else k[0]
    if k.size == 0:
        raise UsageError(f"--kernel {text}: the kernel is empty")
    return Kernel(text, path.stem, array=k, per_channel=per_channel, samplerate=rate)


def _dims_words(source: formats.Source, spatial: int) -> str:
    if source.kind == "audio":
        return "1 dim to convolve (time)"
    if source.kind == "image":
        names = {2: "height, width", 3: "depth, height, width"}.get(spatial, f"{spatial} dims")
        return f"{spatial} dims to convolve ({names})"
    return f"{spatial} dim{'s' * (spatial != 1)} to convolve"


def fit_kernel(
    kernel: Kernel, source: formats.Source, name: str, spatial: int, max_bytes: int
) -> np.ndarray:
    """The kernel for one array of ``source`` with ``spatial`` convolved dims, or an
    :class:`InputError` saying why it does not fit (a built-in is sized against
    ``max_bytes`` from its parameters before it is built)."""
    where = f"this {source.kind} has {_dims_words(source, spatial)}"
    if kernel.spec is not None:
        rank = kernel.spec.ndim or spatial
        if not kernel.spec.builtin.fits(rank) or rank > spatial:
            what = kernel.spec.builtin.ranks() if kernel.spec.ndim is None else f"{rank}-D"
            raise InputError(f"kernel {kernel.spec.builtin.name} is {what}; {where}")
        shape = kernel.spec.shape(rank)
        float64 = np.dtype(np.float64).itemsize
        if why := _kernel_too_big(kernel.text, shape, float64 * math.prod(shape), max_bytes):
            raise InputError(why)
        return kernel.spec.build(rank)
    assert kernel.array is not None
    k = kernel.array
    rank = k.ndim - kernel.per_channel
    if rank > spatial:
        raise InputError(f"kernel {kernel.text} is {rank}-D; {where}")
    if kernel.per_channel:
        if source.kind != "audio":
            raise InputError(
                f"kernel {kernel.text} is a {k.shape[0]}-channel impulse response, for audio; "
                f"{where}"
            )
        channels = source.shapes[name][0]
        if channels not in (1, k.shape[0]):
            raise InputError(
                f"kernel {kernel.text} has {k.shape[0]} channels, the input has {channels}: "
                "use a mono impulse response or one with as many channels"
            )
    rate = source.meta.get("samplerate")
    if kernel.samplerate and rate and kernel.samplerate != rate:
        raise InputError(
            f"kernel {kernel.text} has sample rate {kernel.samplerate} Hz, the input "
            f"{rate} Hz; resample one of them (trueconv does not resample)"
        )
    return k


# -- fitting one array --------------------------------------------------------------------------


def compute_dtype(
    options: Options, source: formats.Source, name: str, k: np.ndarray
) -> torch.dtype:
    """The torch dtype of the convolution (see ``--dtype``)."""
    stored = source.dtypes[name]
    if options.dtype != "auto":
        base = np.dtype(options.dtype)
    elif source.kind != "array":
        base = np.dtype(formats.work_dtype(stored))
    elif stored.kind in "fc":
        base = stored
    elif k.dtype.kind in "biu":
        return torch.int64  # integers with an integer kernel: exact
    else:
        base = np.dtype(np.float64)
    if stored.kind == "c" or k.dtype.kind == "c":
        base = np.result_type(base, np.complex64)
    return getattr(torch, base.name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Fitted:
    """One array's kernel, fitted: what both the in-memory and the lazy (zarr) paths need."""

    dims: tuple[int, ...] | None  # user --dims, as sorted non-negative axes
    kernel: np.ndarray
    dtype: torch.dtype
    shape: tuple[int, ...]  # the array's shape with the --dims axes moved last


def fit(
    options: Options,
    kernel: Kernel,
    source: formats.Source,
    name: str,
    shape: tuple[int, ...],
) -> Fitted:
    """Resolve ``--dims``, fit the kernel and choose the compute dtype for one array."""
    dims = None
    if options.dims is not None:
        try:
            dims = tuple(sorted({range(len(shape))[d] for d in options.dims}))
        except IndexError:
            raise InputError(
                f"--dims {list(options.dims)} out of range for a {len(shape)}-D array"
            ) from None
        shape = tuple(shape[d] for d in range(len(shape)) if d not in dims) + tuple(
            shape[d] for d in dims
        )
    spatial = len(dims) if dims is not None else source.spatial(name)
    if spatial == 0:
        raise InputError(f"nothing to convolve: array {name or '0'!r} is 0-D")
    k = fit_kernel(kernel, source, name, spatial, options.max_bytes)
    return Fitted(dims, k, compute_dtype(options, source, name, k), shape)


# -- planning from shapes -----------------------------------------------------------------------


def planned_method(
    method: Method,
    shape: tuple[int, ...],
    kshape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    mode: Mode,
    *,
    dims: tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    fill_value: float = 0,
) -> str:
    """The method a convolution of ``shape`` by ``kshape`` will run, planned from shapes
    alone (``choose_method(shapes=True)``: nothing allocated). A problem the library will
    refuse plans as the hungriest method; the refusal comes later, with the library's
    message."""
    if method != "auto":
        return str(method)
    try:
        return trueconv.choose_method(
            shape,
            kshape,
            mode,
            dims=dims,
            boundary=boundary,
            fill_value=fill_value,
            shapes=True,
            dtype=dtype,
            device=device,
        )
    except (ValueError, TypeError):
        return max(WORK_FACTOR, key=WORK_FACTOR.__getitem__)


def work_bytes(itemsize: int, held: int, method: str, out: int, taps: int) -> float:
    """Estimated peak memory of one convolution: ``held`` input samples, the method's working
    memory for ``out`` output samples (:data:`WORK_FACTOR`) and the kernel's ``taps``, each
    ``itemsize`` bytes."""
    return itemsize * (held + WORK_FACTOR[method] * out + taps)
