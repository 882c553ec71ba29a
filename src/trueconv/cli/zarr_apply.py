"""``trueconv apply`` on a ``.zarr`` input: lazily, chunk by chunk, through Dask.

A zarr array (a directory store, zarr v2 or v3, one array: not a group) is never read whole.
:func:`process` builds a Dask graph from the store's header alone — the input, rechunked to
``--chunks`` if given, cast to the compute dtype of ``.npy`` inputs (see ``--dtype``),
convolved by :func:`trueconv.dask.convolve` (or :func:`~trueconv.dask.correlate`), rechunked to
regular chunks as zarr stores them — and has it written into a temporary store beside the
target, which is renamed into place once every chunk is written (a failure removes it; an
existing output is replaced only after the new one is complete). The input's attributes are
copied, and its zarr format kept.

Memory: ``--max-bytes`` bounds one *task* (one output chunk: its input chunk with the halo the
kernel needs, the method's working memory and the result), not the whole array; several tasks
run at once, one per thread or worker.

Where it runs: threads on this machine (Dask's local threaded scheduler), or the workers of a
``dask.distributed`` scheduler given by ``--scheduler ADDRESS``; the workers then read the input
and write the output themselves, so both paths must be reachable from them. The progress bar is
Dask's (:class:`dask.diagnostics.ProgressBar` on threads, :func:`distributed.progress` on a
cluster), shown where ``apply`` shows its own bar: not ``--quiet`` and stderr a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import trueconv
from trueconv.cli import formats
from trueconv.cli._errors import InputError, UsageError
from trueconv.cli._progress import Progress
from trueconv.cli.apply import WORK_FACTOR, Kernel, _human, _reason, fit

#: Width of Dask's bar: inside the file bar (when tqdm draws one), and on its own line.
BAR_WIDTH = {True: 20, False: 40}


def parse_chunks(text: str) -> tuple[int, ...]:
    """``--chunks``: one positive chunk size for every dim, or one per dim, comma-separated.

    Parameters
    ----------
    text : str
        What was given, e.g. ``"256"`` or ``"64,512,512"``.

    Returns
    -------
    tuple of int
        The sizes, as given (fitted to an array's rank by :func:`chunks_for`).

    Raises
    ------
    UsageError
        Anything else, on one line naming the option, what was given and what is allowed.
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(re.fullmatch(r"[0-9]+", part) and int(part) > 0 for part in parts):
        raise UsageError(
            f"--chunks {text!r}: not chunk sizes; give one positive integer for every dim "
            "(--chunks 256) or one per dim, separated by commas (--chunks 64,512,512)"
        )
    return tuple(int(part) for part in parts)


def chunks_for(sizes: tuple[int, ...], text: str, ndim: int) -> tuple[int, ...]:
    """``--chunks`` fitted to an array with ``ndim`` dims, or an :class:`InputError`."""
    if len(sizes) == 1:
        return sizes * ndim
    if len(sizes) != ndim:
        raise InputError(
            f"--chunks {text} gives {len(sizes)} sizes; the array has {ndim} dims: "
            f"give one size for every dim, or {ndim}"
        )
    return sizes


def connect(address: str) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (close it after).

    Raises
    ------
    UsageError
        distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        distributed = importlib.import_module("distributed")
    except ImportError:
        raise UsageError('--scheduler needs distributed: pip install "trueconv[dask]"') from None
    try:
        return distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect: {_reason(exc)}") from None


class _StageWriter:
    """A file for Dask's bar that shows each redraw as the stage of the file bar."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def write(self, text: str) -> int:
        line = text.replace("\x1b[2K", "").strip("\r\n ")
        if line:
            self._progress.stage(line)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush: every write redraws the file bar."""


def _compute(stored: Any, client: Any, progress: Progress, show: bool) -> None:
    """Run the graph that writes the chunks, with Dask's progress bar when ``show``."""
    out: Any = _StageWriter(progress) if progress.active else sys.stderr
    if client is None:
        import dask
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(width=BAR_WIDTH[progress.active], out=out) if show else None
        with bar or contextlib.nullcontext():
            dask.compute(stored, scheduler="threads")
        return
    distributed = importlib.import_module("distributed")
    future = client.compute(stored)
    try:
        if show:  # distributed's console bar draws on stdout: send it where ours goes
            # (a bar the scheduler refuses, e.g. one without pickled functions allowed, is
            # no reason to fail the job: it then runs without one)
            with contextlib.redirect_stdout(out), contextlib.suppress(Exception):
                distributed.progress(
                    future, scheduler=client.scheduler.address, width=BAR_WIDTH[progress.active]
                )
        future.result()
    except BaseException:
        future.cancel()
        raise


def _task_bytes(
    args: argparse.Namespace, y: Any, k: np.ndarray, dtype: torch.dtype
) -> tuple[int, tuple[int, ...], str]:
    """Memory of the largest output task of ``y`` (a lazy convolution of trailing dims by
    ``k``): its window (the input chunk and the halo, held as pieces and assembled: twice),
    the method's working memory for its output block, and the kernel. Also the window's
    shape and the method planned for it."""
    kshape = (1,) * (y.ndim - k.ndim) + k.shape
    block = tuple(max(c, default=0) for c in y.chunks)
    window = tuple(b + m - 1 for b, m in zip(block, kshape))
    method = str(args.method)
    if method == "auto":
        device = args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu"
        zero = torch.zeros((), dtype=dtype, device=device)
        try:
            method = trueconv.choose_method(zero.expand(window), zero.expand(k.shape), "valid")
        except (ValueError, TypeError):
            method = max(WORK_FACTOR, key=WORK_FACTOR.__getitem__)
    itemsize = torch.empty((), dtype=dtype).element_size()
    need = itemsize * (2 * math.prod(window) + WORK_FACTOR[method] * math.prod(block) + k.size)
    return int(need), window, method


def process(
    args: argparse.Namespace,
    kernel: Kernel,
    source: formats.Source,
    target: Path,
    progress: Progress,
    client: Any = None,
) -> list[str]:
    """Convolve the zarr array of ``source`` into the zarr store ``target``, chunk by chunk.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``apply`` arguments (``chunk_sizes``: ``--chunks`` parsed by ``run``).
    kernel : Kernel
        The ``--kernel``, fitted here to the array's dims (all of them, or ``--dims``).
    source : formats.Source
        The opened input (header only).
    target : Path
        The output store (``--force`` and input/output clashes were checked by the caller).
    progress : Progress
        The file bar; Dask's bar draws inside it when it is shown.
    client : distributed.Client, optional
        The ``--scheduler`` connection; ``None``: threads on this machine.

    Returns
    -------
    list of str
        Warnings for the user (none so far).

    Raises
    ------
    InputError
        The input cannot be convolved as asked (kernel, ``--dims``, ``--chunks``,
        ``--max-bytes`` per task, an unsupported option), or a task failed in a way that is
        the user's to fix (out of memory, no CUDA on a worker); nothing is left at ``target``.
    """
    if formats.FORMATS.get(target.suffix.lower()) is not formats.ZARR:
        raise InputError(f"{target}: a .zarr input is convolved into a .zarr store only")
    if args.normalize:
        raise InputError(
            "--normalize is not available for .zarr inputs: it needs the peak of the whole "
            "result before the first chunk is written"
        )
    da = formats.need_dask("dask.array", source.path.suffix)
    zarr = formats.need_dask("zarr", source.path.suffix)
    import trueconv.dask

    fitted = fit(args, kernel, source, "", source.shapes[""])
    np_dtype = torch.empty(0, dtype=fitted.dtype).numpy().dtype
    k = torch.from_numpy(np.ascontiguousarray(fitted.kernel)).to(fitted.dtype)

    x = da.from_zarr(str(source.path))
    if args.chunk_sizes is not None:
        x = x.rechunk(chunks_for(args.chunk_sizes, args.chunks, x.ndim))
    work_chunks = tuple(max(c, default=0) for c in x.chunks)
    if x.dtype != np_dtype:
        x = x.astype(np_dtype)
    dims = fitted.dims
    moved = tuple(range(-len(dims), 0)) if dims else ()
    if dims:
        x = da.moveaxis(x, dims, moved)
    fn = trueconv.dask.correlate if args.correlate else trueconv.dask.convolve
    try:
        y = fn(
            x,
            k,
            args.mode,
            boundary=args.boundary,
            fill_value=args.fill_value,
            method=args.method,
            device=args.device,
        )
    except (ValueError, TypeError) as exc:  # the library's one-line argument errors
        raise InputError(str(exc)) from None
    need, window, method = _task_bytes(args, y, fitted.kernel, fitted.dtype)
    if need > args.max_bytes:
        raise InputError(
            f"one task needs about {_human(need)} of memory (a {' x '.join(map(str, window))} "
            f"window of the input, {method}), more than --max-bytes {_human(args.max_bytes)}; "
            "use smaller --chunks or raise --max-bytes"
        )
    if dims:
        y = da.moveaxis(y, moved, dims)
    y = y.rechunk(tuple(max(1, min(c, n)) for c, n in zip(work_chunks, y.shape)))

    options: dict[str, Any] = {}
    if formats.zarr_major() >= 3:
        options["zarr_format"] = source.meta.get("zarr_format", 3)
    attrs = source.meta.get("attrs") or {}
    show = not args.quiet and sys.stderr.isatty()

    def write(tmp: Path) -> list[str]:
        stored = y.to_zarr(str(tmp), compute=False, **options)
        if attrs:
            zarr.open_array(str(tmp), mode="r+").attrs.update(attrs)
        progress.stage(f"convolving {y.npartitions} chunks")
        try:
            _compute(stored, client, progress, show)
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, MemoryError) or "memory" in str(exc).lower():
                raise InputError(
                    f"out of memory (about {_human(need)} estimated per task; use smaller "
                    f"--chunks): {_reason(exc)}"
                ) from None
            if str(exc).startswith("trueconv.dask:"):  # no CUDA on a worker
                raise InputError(_reason(exc)) from None
            raise
        return []

    started = time.perf_counter()
    warnings = formats.replace_atomically(target, True, write)
    if args.verbose:
        seconds = time.perf_counter() - started
        shape = " x ".join(map(str, source.shapes[""]))
        print(
            f"{source.path} -> {target}: {shape} * {' x '.join(map(str, fitted.kernel.shape))} "
            f"-> {' x '.join(map(str, y.shape))}, chunks {' x '.join(map(str, y.chunksize))}, "
            f"{y.npartitions} chunks, {method}, {seconds:.2f} s, "
            f"memory estimate {_human(need)} per task",
            flush=True,
        )
    return warnings
