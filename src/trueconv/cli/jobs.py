"""What the two ways of running ``trueconv apply`` share: in memory (:mod:`trueconv.cli.apply`)
and chunk by chunk (:mod:`trueconv.cli.zarr_apply`).

The checked arguments (:class:`Options`, frozen once by :func:`trueconv.cli.apply.options_from`
and only read afterwards), the ``--kernel`` (:func:`load_kernel`, once per run) fitted to each
array (:func:`fit`: its shape and dtype; a built-in is built only once the job fits), the
compute dtype, the method planned from shapes alone (:func:`planned_method`) and the memory
estimate built on it (:func:`footprint`). Both modules import this one; it imports neither.

The estimate. ``--max-bytes`` is compared with what a job allocates beyond the idle command,
from shapes alone and before anything of the job's size exists: the input as read and its
copy in the compute dtype, the kernel as built (a built-in in float64) and its copy in the
compute dtype, the separable check of ``'auto'`` (:data:`SEPARABLE_CHECK_PER_TAP`, when it
runs: :func:`separable_check_runs`), the scratch of every method that may run
(:data:`SCRATCH`, in units of the full convolution, which a transform pads to whatever the
mode) and the result, and the reader's and writer's own buffers; the largest of the three
phases (reading, computing, writing) is the estimate (:class:`Footprint`). Measured against
the peak RSS of the command in benchmarks/RESULTS_CLI.md: an upper bound, within about 2x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import trueconv
from trueconv.cli import formats, kernels
from trueconv.cli._errors import InputError, UsageError
from trueconv.core.names import Boundary, BoundaryAlias, Method, Mode

#: Scratch of each method beyond its inputs and its output, in units of the *full*
#: convolution (every overlap, ``n + m - 1`` per convolved dim, times the batch) in the compute
#: dtype: a transform pads both operands to about that size whatever the mode ('same' of a
#: 30 x 40 array by a 3000 x 3000 kernel transforms 3000 x 3000 planes), the direct sum needs
#: nothing of that size, overlap-add blocks and their spectra (up to a full-size sum when the
#: kernel is the longer operand), the separable passes one intermediate array. Provenance:
#: benchmarks/RESULTS_CLI.md, section "Memory: the estimate against the measured peak" (peak
#: RSS beyond the same command on 5 samples, made by benchmarks/cli_memory.py); largest seen:
#: direct 0.1, fft 2.7 (10 min of stereo audio, 'full'), overlap_add 2.1 (2000 x 2000 by a
#: 121 x 121 Gaussian, 'same'), separable 1.0 (4000 x 4000 by a 7 x 7 Gaussian, passes by
#: shift-and-add without numba: the intermediate array); rounded up.
SCRATCH = {"direct": 0.25, "fft": 3.5, "overlap_add": 2.2, "separable": 1.5}

#: Overlap-add along one dim (audio: blocks of time, their spectra batched) writes each block
#: into the output: 0.1 of the full convolution measured (10 and 60 min of stereo audio by a
#: 3 s impulse response, 'full'), where boxes of 2-D blocks took up to 2.1.
SCRATCH_1D_OVERLAP_ADD = 0.5

#: Bytes per kernel tap that ``'auto'`` allocates while it checks whether a kernel is separable
#: (:func:`trueconv._separable.factors`: the kernel as float64, the rank-1 rebuild, their
#: difference, two magnitudes and a mask: 4 x 8 + 1 bytes; 33.0 measured with tracemalloc on
#: 1500 x 1500 and 3000 x 3000 kernels, separable or not; rounded up for the allocator's pages
#: and the job's small arrays, which took a box:1500 job 0.2 MB past 33). It runs before the
#: output exists.
SEPARABLE_CHECK_PER_TAP = 36

#: Not counted: what the idle command holds whatever the job (Python, torch and the command's
#: imports: 0.29-0.30 GiB here; numba's compiled loop of the direct method, once loaded: 0.11
#: GiB more). ``--max-bytes`` bounds what a job adds to that.

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
    stream_format: str | None = None  # --format: of - (standard input/output), checked

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
) -> tuple[tuple[int, ...], np.dtype, Callable[[], np.ndarray]]:
    """The kernel for one array of ``source`` with ``spatial`` convolved dims, not built yet:
    its shape, its dtype and a function that makes it; or an :class:`InputError` saying why it
    does not fit. A built-in is sized from its parameters alone (and refused above
    ``max_bytes`` on its own); the whole job is sized by :func:`job_bytes` before it is made."""
    where = f"this {source.kind} has {_dims_words(source, spatial)}"
    if kernel.spec is not None:
        spec = kernel.spec
        rank = spec.ndim or spatial
        if not spec.builtin.fits(rank) or rank > spatial:
            what = spec.builtin.ranks() if spec.ndim is None else f"{rank}-D"
            raise InputError(f"kernel {spec.builtin.name} is {what}; {where}")
        shape = spec.shape(rank)
        float64 = np.dtype(np.float64)
        nbytes = float64.itemsize * math.prod(shape)
        if why := _kernel_too_big(kernel.text, shape, nbytes, max_bytes):
            raise InputError(why)
        return shape, float64, lambda: spec.build(rank)
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
    return tuple(k.shape), k.dtype, lambda: k


# -- fitting one array --------------------------------------------------------------------------


def compute_dtype(
    options: Options, source: formats.Source, name: str, kdtype: np.dtype
) -> torch.dtype:
    """The torch dtype of the convolution (see ``--dtype``) for a kernel of ``kdtype``."""
    stored = source.dtypes[name]
    if options.dtype != "auto":
        base = np.dtype(options.dtype)
    elif source.kind != "array":
        base = np.dtype(formats.work_dtype(stored))
    elif stored.kind in "fc":
        base = stored
    elif kdtype.kind in "biu":
        return torch.int64  # integers with an integer kernel: exact
    else:
        base = np.dtype(np.float64)
    if stored.kind == "c" or kdtype.kind == "c":
        base = np.result_type(base, np.complex64)
    return getattr(torch, base.name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Fitted:
    """One array's kernel, fitted but not built: what both the in-memory and the lazy (zarr)
    paths need to size the job before anything of the kernel's size exists."""

    dims: tuple[int, ...] | None  # user --dims, as sorted non-negative axes
    kshape: tuple[int, ...]
    kdtype: np.dtype
    dtype: torch.dtype
    shape: tuple[int, ...]  # the array's shape with the --dims axes moved last
    build: Callable[[], np.ndarray]  # the kernel: a built-in is made by the call
    separable: bool | None = None  # a built-in known to be rank 1 (or not); None: unknown

    @property
    def taps(self) -> int:
        """Elements of the kernel."""
        return math.prod(self.kshape)


def fit(
    options: Options,
    kernel: Kernel,
    source: formats.Source,
    name: str,
    shape: tuple[int, ...],
) -> Fitted:
    """Resolve ``--dims``, fit the kernel (unbuilt) and choose the compute dtype for one
    array."""
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
    kshape, kdtype, build = fit_kernel(kernel, source, name, spatial, options.max_bytes)
    dtype = compute_dtype(options, source, name, kdtype)
    separable = None if kernel.spec is None else kernel.spec.builtin.separable
    return Fitted(dims, kshape, kdtype, dtype, shape, build, separable)


def out_shape(x: tuple[int, ...], k: tuple[int, ...], mode: str) -> tuple[int, ...]:
    """Output shape when ``k`` aligns with the trailing dims of ``x`` (broadcast the rest)."""
    r = len(k)
    lead = x[: len(x) - r]
    out = []
    for n, m in zip(x[len(x) - r :], k):
        if mode == "full":
            out.append(n + m - 1 if n and m else 0)
        elif mode == "same":
            out.append(n)
        else:
            out.append(max(n, m) - min(n, m) + 1 if n and m else 0)
    return (*lead, *out)


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
        return max(SCRATCH, key=SCRATCH.__getitem__)


def separable_check_runs(method: Method, kshape: tuple[int, ...], dtype: torch.dtype) -> bool:
    """Whether ``'auto'`` will read the kernel to see if it is separable (and so allocate
    :data:`SEPARABLE_CHECK_PER_TAP` bytes per tap), from shapes alone: ``'auto'`` with a real
    kernel of at least two dims longer than one (the library's further conditions, a dense plan
    slow enough and a separable plan cheap enough, are counted as met).

    Parameters
    ----------
    method : str
        ``--method``: only ``'auto'`` checks.
    kshape : tuple of int
        The kernel's shape.
    dtype : torch.dtype
        The compute dtype (complex kernels are never checked).

    Returns
    -------
    bool
        ``True`` wherever the library may run the check (the safe side of the estimate).
    """
    # The library also skips it for dense plans predicted under 0.1 ms and where the
    # separable plan is not cheaper; both are its private planner's business, and counting the
    # check there only over-estimates by the kernel's size in float64 (small then).
    return method == "auto" and not dtype.is_complex and sum(m > 1 for m in kshape) >= 2


@dataclass(frozen=True)
class Footprint:
    """The memory of one convolution, by what is alive at its peak, in bytes.

    ``read``: while the input is decoded (the format's own buffers and the samples as read).
    ``held``: the input during the convolution (as read, its copy in the compute dtype, a
    boundary's extended copy). ``kernel``: the kernel as built (a built-in in float64; 0 for a
    kernel file, counted once for the whole run) and its copy in the compute dtype. ``check``:
    the separable check of ``'auto'`` (:func:`separable_check_runs`). ``full`` and ``out``:
    the full convolution and the result in the compute dtype. ``write``: the writer's buffers
    beyond the result (integer conversion, encoders). ``methods``: every method that may run
    (the planned one, and ``'separable'`` after a check). ``rank``: the kernel's convolved dims
    longer than one (overlap-add along one needs less: :data:`SCRATCH_1D_OVERLAP_ADD`).
    """

    read: int
    held: int
    kernel: int
    check: int
    full: int
    out: int
    write: int
    methods: tuple[str, ...]
    rank: int = 2  # convolved dims longer than one in the kernel

    def scratch(self, method: str) -> float:
        """The scratch of ``method`` in units of the full convolution (:data:`SCRATCH`)."""
        if method == "overlap_add" and self.rank <= 1:
            return SCRATCH_1D_OVERLAP_ADD
        return SCRATCH[method]

    @property
    def compute(self) -> int:
        """Alive while the library runs: the input, the kernel, then the separable check
        (before the output exists) or the method's scratch and its output."""
        work = max(self.scratch(m) * self.full + self.out for m in self.methods)
        return int(self.held + self.kernel + max(self.check, work))

    @property
    def total(self) -> int:
        """The estimate: the largest of the three phases (reading, computing, writing: the
        input is gone when the result is written)."""
        writing = self.kernel + self.out + self.write
        return max(self.read, self.compute, writing)


def footprint(
    options: Options,
    fitted: Fitted,
    method: str,
    out: tuple[int, ...],
    full: tuple[int, ...],
    *,
    built: bool,
    read: int,
    held: int,
    write: int,
    dims: tuple[int, ...] | None = None,
    boundary: Boundary | BoundaryAlias = "fill",
    shape: tuple[int, ...] | None = None,
    mode: Mode | None = None,
) -> Footprint:
    """The memory of convolving one array, from shapes alone.

    Parameters
    ----------
    options : Options
        The checked arguments (``--method``, ``--mode``, ``--device``, ``--fill-value``).
    fitted : Fitted
        The array's kernel (shape and dtype; not built) and compute dtype.
    method : str
        The method planned from shapes (:func:`planned_method`).
    out, full : tuple of int
        Shapes of the result and of the full convolution (every overlap).
    built : bool
        Whether the kernel is made for this job (a built-in, in float64) rather than read
        once for the whole run (a kernel file, counted once by the caller).
    read, held, write : int
        Bytes of the reader's buffers, of the input while it is convolved (as read, and its
        copy in the compute dtype), and of the writer's buffers beyond the result.
    dims, boundary : optional
        As passed to the library (they decide the separable check and an extended copy of
        the input for a boundary other than zeros).
    shape, mode : optional
        The library call's, when not the array's and ``--mode`` (a task of a chunked job
        convolves a window ``'valid'``).

    Returns
    -------
    Footprint
        Its :attr:`~Footprint.total` is the estimate compared with ``--max-bytes``.
    """
    itemsize = torch.empty((), dtype=fitted.dtype).element_size()
    made = fitted.taps * fitted.kdtype.itemsize if built else 0
    copy = fitted.taps * itemsize if np.dtype(fitted.kdtype) != numpy_dtype(fitted.dtype) else 0
    check = 0
    methods = [method]
    if separable_check_runs(options.method, fitted.kshape, fitted.dtype):
        check = SEPARABLE_CHECK_PER_TAP * fitted.taps
        # after the check: the passes (a built-in known to be rank 1), the planned method (one
        # known not to be), or either (a kernel file)
        methods = {True: ["separable"], False: [method], None: [method, "separable"]}[
            fitted.separable
        ]
    extended = math.prod(full) * itemsize if boundary not in ("fill", "zeros", "constant") else 0
    convolved = fitted.kshape if dims is None else tuple(fitted.kshape[d] for d in dims)
    return Footprint(
        read=read,
        held=held + extended,
        kernel=made + copy,
        check=check,
        full=math.prod(full) * itemsize,
        out=math.prod(out) * itemsize,
        write=write,
        methods=tuple(methods),
        rank=sum(m > 1 for m in convolved),
    )


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch dtype (``torch.float32`` -> ``float32``)."""
    return torch.empty(0, dtype=dtype).numpy().dtype
