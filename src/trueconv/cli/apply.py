"""``trueconv apply``: convolve images, audio and arrays in files with a kernel.

A thin shell over :func:`trueconv.convolve`: for each input it opens the file's header
(:mod:`trueconv.cli.formats`), fits the kernel to the data's spatial dims, estimates the memory
the job needs from shapes alone (:func:`trueconv.cli.jobs.footprint`) and refuses above
``--max-bytes`` before the kernel is built or the samples read, reads them, runs **one**
library call on the whole ``(*channels, *spatial)`` array (so audio channels ride along as a
batch and ``'auto'`` sees the real problem: overlap-add for an hour of audio and a 3-second
impulse response), and writes the result to a temporary file that is renamed into place.

``-`` is standard input (as an INPUT) or standard output (``-o -``), for ``.npy`` bytes named by
``--format npy`` (:mod:`trueconv.cli.streams`).

A ``.zarr`` input (a store that is one array, or ``STORE.zarr/path/to/array``: an array of a
group, whose default output joins that group) is never read whole: it takes a lazy path
(:mod:`trueconv.cli.zarr_apply`) right after its header is opened, convolved chunk by chunk
through Dask (``--chunks``, ``--scheduler``) into a ``.zarr`` output, and ``--max-bytes`` then
bounds the memory of one chunk's task. What both paths share (the checked :class:`Options`, the
kernel, the compute dtype, the planned method and the memory estimate) is in
:mod:`trueconv.cli.jobs`.

Nothing is lost: an existing output is refused without ``--force`` (and so is an output that
is one of the inputs); a failure leaves no partial file; one failing input of many is reported
on one line and the others still complete. Exit status 0: all done; 1: some inputs failed;
2: bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

import trueconv
from trueconv.cli import formats, streams, zarr_apply, zarr_store
from trueconv.cli._errors import OK, SOME_FAILED, InputError, UsageError, raise_if_terminated
from trueconv.cli._progress import Progress
from trueconv.cli.jobs import (
    Fitted,
    Footprint,
    Kernel,
    Options,
    fit,
    footprint,
    load_kernel,
    numpy_dtype,
    out_shape,
    planned_method,
    reason,
)
from trueconv.core.names import BOUNDARIES, BOUNDARY_ALIASES, METHODS, MODES

#: Default ``--max-bytes``: this share of the machine's physical memory.
RAM_SHARE = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "apply",
        help="convolve images, audio and arrays in files with a kernel",
        description="Convolve each INPUT with a kernel (kernel flipped, as scipy.signal) "
        "along its spatial dims: height and width of an image (each colour channel on its "
        "own, alpha kept), time of audio (each channel on its own, sample rate kept), every "
        "dim of an array (or --dims). Outputs are written safely: to a temporary file renamed "
        "into place; existing files only with --force.",
        epilog="Exit status: 0 all done, 1 some inputs failed, 2 bad usage. "
        "`trueconv kernels` lists the built-in kernels.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        type=Path,
        help="files to convolve (a zarr array: a .zarr store, or an array of a group as "
        "STORE.zarr/path/to/array, whose default output joins the group); - reads one .npy "
        "array from standard input (needs --format npy and -o)",
    )
    p.add_argument(
        "-k",
        "--kernel",
        required=True,
        metavar="SPEC",
        help="a built-in kernel (gaussian:sigma=2, box:5, sobel-x, ...; see `trueconv "
        "kernels`) or a file: .npy/.npz, an image (greyscale, scaled to sum 1), an "
        "impulse-response audio file",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file (one input only); - writes the result to standard output as .npy "
        "bytes (needs --format npy; -v and messages go to standard error)",
    )
    out.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write each output as DIR/<input name> (an array of a zarr group: "
        "DIR/<array name>.zarr; default: next to the input, as <stem>-<kernel><suffix>)",
    )
    p.add_argument("--mode", default="same", choices=MODES, help="output size (default: same)")
    p.add_argument(
        "--boundary",
        default=None,
        choices=(*BOUNDARIES, *BOUNDARY_ALIASES),
        metavar="NAME",
        help="how the input is extended past its edges: "
        + ", ".join(BOUNDARIES)
        + " (numpy.pad's constant, wrap, symmetric, reflect, edge; default: reflect for "
        "images with --mode same, as OpenCV, so that a blur does not darken the borders; "
        "fill (zeros) for arrays, audio and the other modes)",
    )
    p.add_argument("--fill-value", type=float, default=0.0, help="value of --boundary fill")
    p.add_argument(
        "--method", default="auto", choices=METHODS, help="how to compute (default: auto)"
    )
    p.add_argument("--correlate", action="store_true", help="correlate (do not flip the kernel)")
    p.add_argument(
        "--dims",
        type=int,
        nargs="+",
        metavar="DIM",
        help="arrays only: the axes to convolve (default: all)",
    )
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default: cpu)"
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "float64"],
        help="compute precision (default: float32 for images and audio, the array's own "
        "for float arrays, float64 for integer arrays with a float kernel, exact integers "
        "for integer arrays with an integer kernel)",
    )
    p.add_argument(
        "--normalize",
        action="store_true",
        help="scale each output so that its peak is full scale (1.0 for audio, 255 for "
        "8-bit images): no clipping at the top",
    )
    p.add_argument(
        "--float",
        dest="float_output",
        action="store_true",
        help="write float samples (float TIFF, float WAV) instead of the input's integers",
    )
    p.add_argument(
        "--max-bytes",
        type=_parse_bytes,
        default=None,
        metavar="SIZE",
        help="refuse jobs estimated to need more memory (e.g. 8G; default: half the RAM)",
    )
    p.add_argument(
        "--chunks",
        metavar="SIZES",
        help=".zarr inputs: rechunk before convolving, one size for every dim (256) or one "
        "per dim (64,512,512); the output store gets these chunks (default: the input's)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=".zarr inputs: compute on this dask.distributed scheduler "
        "(tcp://host:8786; default: threads on this machine)",
    )
    p.add_argument(
        "--format",
        metavar="FORMAT",
        help="the format of - (standard input and standard output alike), which has no suffix "
        "to tell it: npy, the one format that streams (images, audio, .npz and .zarr need a "
        "file name); files keep the format of their suffix",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs and inputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no warnings")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="one line per output: shapes, method, time"
    )
    p.set_defaults(run=run)


def _parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(i?b?)\s*", text.lower())
    value = float(match[1]) * 1024 ** " kmgt".index(match[2] or " ") if match else math.nan
    if not 1 <= value < 2**63:  # NaN, 1e400 (inf) and sizes no machine has fail here
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (a number of bytes from 1 to 8E, with an optional unit: "
            "500M, 8G, 1e9)"
        )
    return int(value)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def options_from(args: argparse.Namespace) -> Options:
    """The parsed arguments, checked and frozen into the :class:`Options` every step reads.

    Refuses (:class:`UsageError`, exit 2) what is wrong before any input is looked at: ``-o``
    with several inputs, ``--device cuda`` without one (unless ``--scheduler``'s workers
    compute), a malformed ``--chunks``; fills in the default ``--max-bytes`` (:data:`RAM_SHARE`
    of the physical memory). What needs the kernel or the inputs (the outputs they name, the
    ``.zarr`` options) is checked by :func:`run`.
    """
    inputs = tuple(args.inputs)
    if args.output is not None and len(inputs) > 1:
        raise UsageError("-o/--output names one output; with several inputs use --out-dir")
    stdin = sum(streams.is_stdio(path) for path in inputs)
    stdout = streams.is_stdio(args.output)
    if stdin > 1:
        raise UsageError(f"- (standard input) is given {stdin} times; it can be read once")
    stream_format = streams.check_format(args.format, bool(stdin), stdout)
    if stdin and args.output is None:
        where = f"--out-dir {args.out_dir}" if args.out_dir is not None else "no -o"
        raise UsageError(
            f"- (standard input) has no name to derive an output from ({where}): give -o "
            "OUTPUT, a file or - for standard output"
        )
    if stdin:
        streams.check_stdin()
    if stdout:
        streams.check_stdout()
    # with --scheduler the cluster's workers compute: their GPUs count, not this machine's
    if args.device == "cuda" and args.scheduler is None and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    max_bytes = args.max_bytes
    if max_bytes is None:
        max_bytes = int(RAM_SHARE * _physical_memory())
    chunk_sizes = None if args.chunks is None else zarr_apply.parse_chunks(args.chunks)
    return Options(
        inputs=inputs,
        kernel=args.kernel,
        output=args.output,
        out_dir=args.out_dir,
        mode=args.mode,
        boundary=args.boundary,
        fill_value=args.fill_value,
        method=args.method,
        correlate=args.correlate,
        dims=None if args.dims is None else tuple(args.dims),
        device=args.device,
        dtype=args.dtype,
        normalize=args.normalize,
        float_output=args.float_output,
        max_bytes=max_bytes,
        chunks=args.chunks,
        chunk_sizes=chunk_sizes,
        scheduler=args.scheduler,
        force=args.force,
        quiet=args.quiet,
        verbose=args.verbose,
        stream_format=stream_format,
    )


# -- planning one job ---------------------------------------------------------------------------


@dataclass
class Job:
    """One array of one input, planned: its kernel (not built yet), the method and the
    memory estimate."""

    name: str
    fitted: Fitted
    out_shape: tuple[int, ...]
    method: str  # planned from shapes ('auto' may still run 'separable')
    footprint: Footprint

    @property
    def bytes(self) -> int:
        """The memory estimate of the job."""
        return self.footprint.total


def _convolved_dims(ndim: int, per_channel: bool) -> tuple[int, ...] | None:
    """``dims`` of the library call for a kernel of ``ndim`` dims: a per-channel impulse
    response convolves all but its first (channel) dim; any other kernel aligns with the
    trailing dims (``None``)."""
    return tuple(range(-(ndim - 1), 0)) if per_channel else None


def _read_bytes(source: formats.Source, name: str, samples: int) -> tuple[int, np.dtype]:
    """Bytes alive while one array of ``source`` is read, and the dtype of the samples as
    read (what the convolution starts from): an image is decoded, turned into its float
    working type and laid out channels first (two copies of that size beside the decoded
    samples, which are twice in memory while Pillow hands them over); audio is read in its
    float type and transposed; an array is read as stored."""
    stored = source.dtypes[name]
    if source.kind == "array":
        return stored.itemsize * samples, stored
    if source.kind == "audio":
        return 2 * stored.itemsize * samples, stored
    work = np.dtype(formats.work_dtype(stored))
    return 2 * (stored.itemsize + work.itemsize) * samples, work


def _write_bytes(
    options: Options,
    fmt: formats.Format,
    source: formats.Source,
    target: Path,
    out: int,
    samples: int,
) -> int:
    """Bytes the writer of ``fmt`` allocates beside a result of ``out`` bytes (``samples``
    samples) written to ``target``: integer samples are rounded and clipped in float copies
    before the encoder gets its own copy (images: three of each); integer audio goes through
    float64 and int64 (:func:`trueconv.cli.formats._quantized`: up to three 8-byte arrays),
    float audio through one contiguous copy; a ``.zarr`` store is written from a contiguous
    copy. ``--normalize`` scales a copy."""
    extra = out if options.normalize else 0
    if fmt.name.startswith("NumPy"):
        return extra
    if fmt is formats.ZARR or options.float_output:
        return extra + out
    if source.kind == "audio":
        floats = source.meta.get("subtype") in ("FLOAT", "DOUBLE")
        kept = floats and target.suffix.lower() in (".wav", ".aiff", ".aif")
        return extra + out + (0 if kept else 24 * samples)
    stored = np.dtype(source.meta.get("dtype", np.float64))
    if stored.kind == "f":
        return extra + out
    return extra + 3 * out + 3 * stored.itemsize * samples


def plan(
    options: Options,
    kernel: Kernel,
    source: formats.Source,
    fmt: formats.Format,
    target: Path = streams.STDIO,
) -> list[Job]:
    """Fit the kernel to every array of ``source`` (written as ``fmt`` to ``target``), plan
    the method and estimate the memory, from shapes alone: nothing is read and no kernel is
    built."""
    if options.dims is not None and source.kind != "array":
        raise InputError(
            f"--dims applies to arrays (.npy/.npz); a {source.kind} convolves its own "
            "spatial dims (fix a built-in kernel's rank with ndim=)"
        )
    jobs = []
    for name, stored_shape in source.shapes.items():
        fitted = fit(options, kernel, source, name, stored_shape)
        shape, kshape = fitted.shape, fitted.kshape
        spatial = kshape[1:] if kernel.per_channel else kshape
        out = out_shape(shape, spatial, options.mode)
        full = out_shape(shape, spatial, "full")
        if kernel.per_channel:
            out = (max(out[0], kshape[0]), *out[1:])
            full = (max(full[0], kshape[0]), *full[1:])
        dims = _convolved_dims(len(kshape), kernel.per_channel)
        boundary = options.boundary_for(source.kind)
        method = planned_method(
            options.method,
            shape,
            kshape,
            fitted.dtype,
            options.device,
            options.mode,
            dims=dims,
            boundary=boundary,
            fill_value=options.fill_value,
        )
        samples = math.prod(shape)
        read, as_read = _read_bytes(source, name, samples)
        itemsize = torch.empty((), dtype=fitted.dtype).element_size()
        # the samples as read, and their copy where the compute dtype differs or --dims moves
        # the axes (np.ascontiguousarray)
        copied = fitted.dims is not None or as_read != numpy_dtype(fitted.dtype)
        held = (as_read.itemsize + (itemsize if copied else 0)) * samples
        result = itemsize * math.prod(out)
        write = _write_bytes(options, fmt, source, target, result, math.prod(out))
        usage = footprint(
            options,
            fitted,
            method,
            out,
            full,
            built=kernel.spec is not None,
            read=read,
            held=held,
            write=write,
            dims=dims,
            boundary=boundary,
        )
        jobs.append(Job(name, fitted, out, method, usage))
    return jobs


# -- running one job ----------------------------------------------------------------------------


def _native(a: np.ndarray) -> np.ndarray:
    """``a`` contiguous and in this machine's byte order, as torch takes arrays (a big-endian
    ``.npy`` is swapped here, in the copy that a contiguous layout may need anyway)."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def _convolve(
    options: Options, x_np: np.ndarray, job: Job, per_channel: bool, kind: str
) -> tuple[np.ndarray, str]:
    """One library call on the whole array; returns the result and the method that ran (for
    ``--verbose``; ``'auto'`` when not asked). The kernel is built here, after the job's
    memory was checked."""
    dims = job.fitted.dims
    x_np = np.moveaxis(x_np, dims, range(-len(dims), 0)) if dims else x_np
    device = torch.device(options.device)
    x = torch.from_numpy(_native(x_np)).to(device=device, dtype=job.fitted.dtype)
    del x_np
    k_np = job.fitted.build()
    k = torch.from_numpy(_native(k_np)).to(device=device, dtype=job.fitted.dtype)
    del k_np
    how: dict[str, Any] = {
        "dims": _convolved_dims(k.ndim, per_channel),
        "boundary": options.boundary_for(kind),
        "fill_value": options.fill_value,
    }
    method: str = options.method
    if method == "auto" and options.verbose:  # what 'auto' runs: planning only, no output yet
        method = trueconv.choose_method(x, k, options.mode, **how)
    fn = trueconv.correlate if options.correlate else trueconv.convolve
    with torch.no_grad():
        y = fn(x, k, options.mode, method=options.method, **how)
    del x, k
    y_np = y.cpu().numpy()
    if dims:
        y_np = np.moveaxis(y_np, range(-len(dims), 0), dims)
    return y_np, method


def _reframe(alpha: np.ndarray, kshape: tuple[int, ...], mode: str) -> np.ndarray:
    """Alpha on the output's grid: unchanged for 'same'; for 'full'/'valid' each output
    sample takes the alpha of the input sample it is centred on (the nearest edge outside)."""
    if mode == "same":
        return alpha
    for i, k in enumerate(kshape):
        d = alpha.ndim - len(kshape) + i
        n = alpha.shape[d]
        start, length = (0, n + k - 1) if mode == "full" else (min(n, k) - 1, abs(n - k) + 1)
        index = np.arange(length) + start - (k - 1) // 2  # 'same' starts at (k - 1) // 2
        alpha = np.take(alpha, index, axis=d, mode="clip")
    return alpha


@dataclass(frozen=True)
class Task:
    """One input and its output: as typed (for messages) and resolved (for every check and
    every read and write: :func:`formats.resolve_path`)."""

    input: Path
    output: Path
    source: Path
    target: Path


def _output_name(options: Options, path: Path, kernel: Kernel) -> Path:
    if options.output is not None:
        return Path(options.output)
    if options.out_dir is not None:
        if zarr_store.split_member(path) is not None and path.suffix.lower() != ".zarr":
            return Path(options.out_dir) / f"{path.name}.zarr"  # an array of a group: a store
        return Path(options.out_dir) / path.name
    # beside the input: an array of a group gets a sibling in that group (data.zarr/raw-box)
    return path.with_name(f"{path.stem}-{kernel.tag}{path.suffix}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two resolved paths name one file (also through a hard link); never a stream
    (``-``: standard input or output)."""
    if streams.is_stdio(a) or streams.is_stdio(b):
        return False
    try:
        return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _resolved(path: Path) -> Path:
    """:func:`formats.resolve_path`, except for ``-`` (a stream, not a file)."""
    return path if streams.is_stdio(path) else formats.resolve_path(path)


def tasks(options: Options, kernel: Kernel) -> list[Task]:
    """Every input with its output, resolved once, in an order that reads each input before
    any other input's output replaces it (``apply p.npy p-box.npy --force`` convolves
    ``p-box.npy`` before ``p.npy``'s result is written over it); a :class:`UsageError` when
    two inputs would write one output, or when outputs replace inputs in a cycle."""
    todo = []
    for path in options.inputs:
        output = _output_name(options, path, kernel)
        todo.append(Task(path, output, _resolved(path), _resolved(output)))
    seen: dict[Path, Path] = {}
    for t in todo:
        if t.target in seen:
            raise UsageError(f"{seen[t.target]} and {t.input} would both write {t.output}")
        seen[t.target] = t.input
    # task i must wait for every task j whose input i's output replaces (Kahn's algorithm,
    # keeping the given order among the tasks that are ready)
    waits = {
        i: {j for j, u in enumerate(todo) if j != i and _same_file(t.target, u.source)}
        for i, t in enumerate(todo)
    }
    order: list[int] = []
    while len(order) < len(todo):
        ready = [i for i in range(len(todo)) if i not in order and waits[i] <= set(order)]
        if not ready:
            stuck = [todo[i].input for i in range(len(todo)) if i not in order]
            raise UsageError(
                f"the outputs of {', '.join(map(str, stuck))} would replace each other's "
                "inputs before they are read; write them elsewhere (--out-dir)"
            )
        order.append(ready[0])
    return [todo[i] for i in order]


def check_target(task: Task, todo: list[Task], force: bool) -> None:
    """Refuse, without ``--force``, an output that exists (a dangling symlink too) or that is
    one of the inputs."""
    if force or streams.is_stdio(task.target):
        return
    if any(_same_file(task.target, t.source) for t in todo):
        raise InputError(f"the output {task.output} is an input; pass --force to replace it")
    if os.path.lexists(task.output) or os.path.lexists(task.target):
        raise InputError(f"{task.output} exists; pass --force to overwrite it")


def process(
    options: Options,
    kernel: Kernel,
    task: Task,
    todo: list[Task],
    progress: Progress,
    client: Any = None,
    stdout: BinaryIO | None = None,
) -> list[str]:
    """Convolve one input into its output; returns warnings; raises :class:`InputError`.

    A ``.zarr`` input goes to the lazy path once its header is open, before anything is
    planned for memory or read (``client``: the ``--scheduler`` connection, or ``None``).
    ``-`` reads standard input and writes ``stdout`` (standard output's bytes), as
    ``.npy`` (:mod:`trueconv.cli.streams`)."""
    to_stdout = streams.is_stdio(task.target)
    if not to_stdout:
        with contextlib.suppress(OSError):  # a folder that does not exist yet has none
            formats.sweep_leftovers(task.target)
    check_target(task, todo, options.force)
    if streams.is_stdio(task.source):
        source, in_format = streams.open_stdin(), formats.FORMATS[".npy"]
    else:
        source, in_format = formats.open_source(task.source), formats.lookup(task.source)
    target = task.target
    if in_format is formats.ZARR:
        return zarr_apply.process(options, kernel, source, target, progress, client)
    if to_stdout:
        out_format = formats.FORMATS[".npy"]
        if len(source.shapes) != 1:
            raise InputError(
                f"standard output takes one array; the input holds {len(source.shapes)}: "
                "write a .npz file"
            )
    else:
        out_format = formats.check_writable(target, source, options.float_output)
    jobs = plan(options, kernel, source, out_format, target)
    need = kernel.resident + sum(j.bytes for j in jobs)
    if need > options.max_bytes:
        what = "; ".join(
            f"output {formats.shape_text(j.out_shape)}, kernel "
            f"{formats.shape_text(j.fitted.kshape)}, {j.method}"
            for j in jobs
        )
        raise InputError(
            f"needs about {formats.human_bytes(need)} of memory ({what}), more than "
            f"--max-bytes {formats.human_bytes(options.max_bytes)}; raise --max-bytes or split "
            "the input"
        )

    progress.stage("reading")
    signal = formats.read(source, in_format)
    results: dict[str, np.ndarray] = {}
    methods = []
    started = time.perf_counter()
    for job in jobs:
        progress.stage(f"convolving {' x '.join(map(str, signal.arrays[job.name].shape))}")
        try:
            y, method = _convolve(
                options, signal.arrays.pop(job.name), job, kernel.per_channel, signal.kind
            )
        except (ValueError, TypeError) as exc:  # the library's one-line argument errors
            raise InputError(str(exc)) from None
        except (MemoryError, RuntimeError) as exc:
            if not isinstance(exc, MemoryError) and "memory" not in str(exc).lower():
                raise
            raise InputError(
                f"out of memory (about {formats.human_bytes(job.bytes)} estimated; lower "
                f"--max-bytes to refuse such jobs early): {reason(exc)}"
            ) from None
        results[job.name] = y
        methods.append(method)
    seconds = time.perf_counter() - started

    meta = dict(signal.meta)
    if options.normalize:
        peak = max((float(np.abs(y).max()) for y in results.values() if y.size), default=0.0)
        if peak > 0:
            scale = meta.get("full_scale", 1.0) / peak
            for name, y in results.items():
                results[name] = y * scale
    if meta.get("alpha") is not None:
        kshape = jobs[0].fitted.kshape
        kshape = kshape[1:] if kernel.per_channel else kshape
        meta["alpha"] = _reframe(meta["alpha"], kshape, options.mode)
    out = formats.Signal(signal.kind, results, signal.channel_dims, meta)
    progress.stage("writing")
    if to_stdout:
        assert stdout is not None, "run() hands standard output over"
        warnings = streams.write_stdout(out, options.float_output, stdout)
    else:
        warnings = formats.write_atomically(target, out_format, out, options.float_output)
    if options.verbose:
        shapes = "; ".join(
            f"{' x '.join(map(str, source.shapes[j.name]))} * "
            f"{' x '.join(map(str, j.fitted.kshape))} -> {' x '.join(map(str, j.out_shape))}"
            for j in jobs
        )
        method = ", ".join(sorted(set(methods)))
        print(
            f"{task.input} -> {task.output}: {shapes}, {method}, {seconds:.2f} s, "
            f"memory estimate {formats.human_bytes(need)}",
            flush=True,
        )
    return warnings


def run(args: argparse.Namespace) -> int:
    """``trueconv apply``: check the arguments (exit 2 on a mistake), then every input."""
    options = options_from(args)
    kernel = load_kernel(options.kernel, options.max_bytes)
    todo = tasks(options, kernel)
    lazy = [t for t in todo if formats.format_of(t.source) is formats.ZARR]
    for option, value in (("chunks", options.chunks), ("scheduler", options.scheduler)):
        if value is not None and not lazy:
            raise UsageError(f"--{option} applies to .zarr inputs; there is none")
    for t in lazy:
        if formats.format_of(t.target) is not formats.ZARR:
            raise UsageError(
                f"-o {t.output}: a .zarr input is convolved chunk by chunk into a .zarr "
                "store; name the output DIR.zarr"
            )
    if options.out_dir is not None:
        try:
            options.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out-dir {options.out_dir}: {exc.strerror or exc}") from None

    with contextlib.ExitStack() as stack:
        # with -o -, standard output carries the result's bytes only: text goes to stderr
        stdout = stack.enter_context(streams.binary_stdout(streams.is_stdio(options.output)))
        client = None
        if options.scheduler is not None:
            client = stack.enter_context(zarr_apply.connect(options.scheduler))
        return _run_all(options, kernel, todo, client, stdout)


def _run_all(
    options: Options, kernel: Kernel, todo: list[Task], client: Any, stdout: BinaryIO | None
) -> int:
    """Process every input, each failure reported on one line; the exit status."""
    failed = 0
    with Progress(len(todo), enabled=not options.quiet) as progress:
        for task in todo:
            path = task.input
            progress.file(path.name)
            try:
                for note in process(options, kernel, task, todo, progress, client, stdout):
                    if not options.quiet:
                        progress.write(f"trueconv apply: {path}: warning: {note}")
            except InputError as exc:
                raise_if_terminated()  # a signal some library lost is not a failed input
                failed += 1
                progress.write(f"trueconv apply: {path}: {exc}")
            except MemoryError:
                raise_if_terminated()
                failed += 1
                progress.write(
                    f"trueconv apply: {path}: out of memory; lower --max-bytes to refuse such "
                    "jobs before they start"
                )
            except Exception as exc:  # a bug of ours: say so, show where, go on
                raise_if_terminated()  # or a signal some library turned into an error
                failed += 1
                progress.write(
                    f"trueconv apply: {path}: internal error, please report: "
                    f"{type(exc).__name__}: {exc}"
                )
                traceback.print_exc(file=sys.stderr)
            progress.advance()
    return SOME_FAILED if failed else OK
