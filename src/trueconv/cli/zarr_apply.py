"""``trueconv apply`` on a ``.zarr`` input: lazily, chunk by chunk, through Dask.

A zarr array (a directory store, zarr v2 or v3: a store that is one array, or an array of a
group named ``STORE.zarr/path/to/array``) is never read whole.
:func:`process` builds a Dask graph from the store's header alone — the input, rechunked to
``--chunks`` if given, cast to the compute dtype of ``.npy`` inputs (see ``--dtype``),
convolved by :func:`trueconv.dask.convolve` (or :func:`~trueconv.dask.correlate`), rechunked to
regular chunks as zarr stores them — and has it written into a temporary store beside the
target, which is renamed into place once every chunk is written (a failure removes it; an
existing output is replaced only after the new one is complete). The input's attributes are
copied, and its zarr format kept.

Memory: ``--max-bytes`` bounds one *task* (one output chunk: its input chunk with the halo the
kernel needs, the method's working memory and the result), not the whole array; several tasks
run at once, one per thread or worker. It also bounds the Dask graph, which grows with the
number of chunks (about 4 KB per task, a dozen tasks per chunk in 2-D: :func:`graph_tasks`).
Both are planned from the store's metadata alone, checked before zarr reads it
(:mod:`trueconv.cli.zarr_store`: numeric dtypes and allowed codecs only, sane shape and chunks),
and refused before a graph exists: a 100-byte header cannot make ``apply`` build ten million
tasks.

Where it runs: threads on this machine (Dask's local threaded scheduler), or the workers of a
``dask.distributed`` scheduler given by ``--scheduler ADDRESS``; the workers then read the input
and write the output themselves, so both paths must be reachable from them, at the same
absolute path. The graph holds absolute paths only; before the job every worker reports what it
sees (the input's metadata, a token written into the temporary output), and after it the output
must hold every chunk (each one is written, also one equal to the fill value) before it is
renamed into place: a worker that sees other files fails the job instead of leaving zeros. A
chunk that cannot be decoded fails it on one line naming the chunk. The progress bar is
Dask's (:class:`dask.diagnostics.ProgressBar` on threads, :func:`distributed.progress` on a
cluster), shown where ``apply`` shows its own bar: not ``--quiet`` and stderr a terminal.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trueconv.cli import formats, zarr_store
from trueconv.cli._errors import InputError, UsageError
from trueconv.cli._progress import Progress
from trueconv.cli.jobs import (
    Fitted,
    Kernel,
    Options,
    fit,
    footprint,
    out_shape,
    planned_method,
    reason,
)

#: Width of Dask's bar: inside the file bar (when tqdm draws one), and on its own line.
BAR_WIDTH = {True: 20, False: 40}

#: Memory of the Dask graph per task (as :func:`graph_tasks` counts them), as the local
#: scheduler holds it before the first task runs: :func:`process` on metadata-only v2 stores,
#: the scheduler replaced by dask.local's own preparation (materialize the graph, ``order``,
#: ``start_state_from_dask``), nothing run. Peak traced memory (tracemalloc) per estimated task,
#: 2,000-16,000 chunks of 4 samples per dim (5,000-306,000 tasks): 1-D 2.4-2.8 KB, 2-D 2.8-3.4,
#: 3-D 3.7-3.8, 2-D 'full' 2.1-2.9, int16 (a cast) 2.8-2.9, --chunks 6 and 2 2.8-3.6,
#: 3-D --dims 1 2 2.9-3.3; peak RSS growth without tracemalloc, 3-D 64^3 and 96^3 (105,531
#: and 370,651 tasks): 3.96 and 3.79 KB (zarr 3.1.6, dask 2026.8, Python 3.11). Rounded up.
GRAPH_BYTES_PER_TASK = 4096

#: Tasks per output block besides its window's pieces: the convolution, the store, and a cast
#: or a piece of the final rechunk (see :func:`graph_tasks`).
TASKS_PER_BLOCK = 3

#: The file the client writes into the temporary output for every worker to read back.
TOKEN_FILE = ".trueconv-token"


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
        raise UsageError(f"--scheduler {address}: cannot connect: {reason(exc)}") from None


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
        from dask.system import CPU_COUNT

        bar = ProgressBar(width=BAR_WIDTH[progress.active], out=out) if show else None
        pool = ThreadPoolExecutor(CPU_COUNT)  # Dask's default number of threads
        try:
            with bar or contextlib.nullcontext():
                dask.compute(stored, scheduler="threads", pool=pool)
        finally:
            # after Ctrl-C or SIGTERM the tasks already running still write their chunks (and
            # a chunk written into a removed store recreates it): the temporary store is
            # removed only once they are done
            pool.shutdown(wait=True, cancel_futures=True)
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


def _count(n: int) -> str:
    """A count for messages: ``10,000,000``; past 10^12, three digits (``1.00e+30``)."""
    return f"{n:,}" if n < 10**12 else formats.approx(n)


def _sizes(n: int, c: int) -> tuple[int, ...]:
    """Regular chunk sizes of a dim of length ``n`` in chunks of ``c``, as Dask holds them."""
    return (c,) * (n // c) + ((n % c,) if n % c or not n else ())


def graph_tasks(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    work: tuple[int, ...],
    kernel: tuple[int, ...],
) -> int:
    """Tasks of the graph :func:`process` builds, from shapes alone (an upper estimate).

    One getter per input chunk (``chunks``); with ``--chunks`` (``work``), one piece per
    intersection of an input and a convolved chunk and one concatenation per convolved chunk;
    per convolved chunk, the pieces of its window (its own chunk and halo copies from its
    neighbours: at most 3 per dim along which the kernel is longer than 1, as
    ``trueconv.dask`` merges chunks shorter than the halo) and :data:`TASKS_PER_BLOCK`.
    Dask's per-dim chunk tuples count as one task per chunk along each dim.
    """
    grid = [-(-n // c) for n, c in zip(shape, chunks)]
    tasks = math.prod(grid)
    convolved = math.prod(-(-n // c) for n, c in zip(shape, work))
    if work != chunks:
        # boundaries of both regular chunkings, inside (0, n): multiples of c or of w
        tasks += convolved + math.prod(
            (n - 1) // c + (n - 1) // w - (n - 1) // math.lcm(c, w) + 1 if n else 0
            for n, c, w in zip(shape, chunks, work)
        )
    pieces = math.prod(3 if m > 1 else 1 for m in kernel)
    tasks += convolved * (pieces + TASKS_PER_BLOCK)
    return max(tasks, sum(grid) + sum(-(-n // w) for n, w in zip(shape, work)))


@dataclass(frozen=True)
class Plan:
    """What the graph will be, from the store's metadata and the fitted kernel alone."""

    work: tuple[int, ...]  # chunk sizes convolved (--chunks, or the input's), in stored order
    rechunk: bool  # whether they differ from the input's
    tasks: int  # upper estimate of the graph's tasks (graph_tasks)
    graph_bytes: int  # estimated memory of the graph: GRAPH_BYTES_PER_TASK each
    task_bytes: int  # estimated memory of the largest task
    window: tuple[int, ...]  # its window of the extended input
    method: str  # the method planned for it


def plan(options: Options, store: zarr_store.StoreMeta, fitted: Fitted) -> Plan:
    """Plan the job from metadata: no array, no graph. Raises :class:`InputError` for the
    library's argument errors (its own messages) and above ``--max-bytes``.

    The graph: its tasks (:func:`graph_tasks`) times :data:`GRAPH_BYTES_PER_TASK`.

    One task (one output block): its window (the input chunk and the halo, held as pieces and
    assembled: twice), the method's working memory for its output block, and the kernel. The
    blocks are those :func:`trueconv.dask.convolve` plans (:func:`trueconv.dask.blocks`: chunks
    too small for the halo merge with a neighbour; ``'full'`` grows the last one).
    """
    import trueconv.dask

    shape = store.shape

    def fitted_to_shape(sizes: tuple[int, ...]) -> tuple[int, ...]:  # as Dask clips them
        return tuple(max(1, min(c, n)) for c, n in zip(sizes, shape))

    stored = fitted_to_shape(store.chunks)
    work = stored
    if options.chunk_sizes is not None:
        assert options.chunks is not None  # the text they were parsed from (options_from)
        work = fitted_to_shape(chunks_for(options.chunk_sizes, options.chunks, len(shape)))
    tasks = graph_tasks(shape, stored, work, fitted.kshape)
    graph_bytes = GRAPH_BYTES_PER_TASK * tasks
    if graph_bytes > options.max_bytes:
        rechunked = "" if options.chunks is None else f" (rechunked to --chunks {options.chunks})"
        raise InputError(
            f"the input has {_count(store.nchunks)} chunks of {formats.shape_text(store.chunks)}"
            f"{rechunked}: its task graph, about {_count(tasks)} tasks, would need about "
            f"{formats.human_bytes(graph_bytes)}, more than --max-bytes "
            f"{formats.human_bytes(options.max_bytes)}; store it in larger chunks, use larger "
            "--chunks or raise --max-bytes"
        )

    # the convolved array as trueconv.dask sees it: --dims moved last, the compute dtype
    dims = fitted.dims or ()
    order = [d for d in range(len(shape)) if d not in dims] + list(dims)
    # the kernel's shape and dtype only (a stride-0 stand-in): it is built once the job fits
    k = torch.zeros((), dtype=fitted.dtype).expand(fitted.kshape)
    try:
        blocks = trueconv.dask.blocks(
            fitted.shape,
            [_sizes(shape[axis], work[axis]) for axis in order],
            torch.empty(0, dtype=fitted.dtype).numpy().dtype,
            k,
            options.mode,
            boundary=options.boundary_for("array"),
            fill_value=options.fill_value,
            method=options.method,
        )
    except (ValueError, TypeError) as exc:  # the library's one-line argument errors
        raise InputError(str(exc)) from None
    block, window = blocks.largest_block, blocks.largest_window
    # each block is a 'valid' convolution of its window (the boundary is applied once, before)
    device = options.device if options.device != "cuda" or torch.cuda.is_available() else "cpu"
    method = planned_method(options.method, window, fitted.kshape, fitted.dtype, device, "valid")
    itemsize = k.element_size()
    usage = footprint(
        options,
        fitted,
        method,
        tuple(block),
        out_shape(tuple(window), fitted.kshape, "full"),
        built=True,  # once per task that holds it: counted per task, to be safe
        read=0,
        held=2 * itemsize * math.prod(window),  # the window's pieces, and assembled
        write=itemsize * math.prod(block),  # the chunk as zarr encodes it
        shape=tuple(window),
        mode="valid",
    )
    plan = Plan(work, work != stored, tasks, graph_bytes, usage.total, tuple(window), method)
    if plan.task_bytes > options.max_bytes:
        raise InputError(
            f"one task needs about {formats.human_bytes(plan.task_bytes)} of memory (a "
            f"{formats.shape_text(plan.window)} window of the input, {method}), more than "
            f"--max-bytes {formats.human_bytes(options.max_bytes)}; use smaller --chunks or "
            "raise --max-bytes"
        )
    return plan


def check_workers(client: Any, store: zarr_store.StoreMeta, tmp: Path) -> None:
    """Ask every worker of ``client`` whether it sees the input ``store`` and the temporary
    output ``tmp`` as this process does (the input's metadata fingerprint; a token written
    into ``tmp`` here); an :class:`InputError` naming what some do not see."""
    token = secrets.token_hex(16)
    token_file = tmp / TOKEN_FILE
    try:
        token_file.write_text(token)
        views = client.run(zarr_store.worker_view, str(store.path), str(token_file))
    except (OSError, ImportError) as exc:  # a worker went away, or lacks trueconv
        raise InputError(
            f"cannot ask the workers what they see ({reason(exc)}); trueconv must be "
            "installed on them"
            if isinstance(exc, ImportError)
            else f"cannot ask the workers what they see: {reason(exc)}"
        ) from None
    finally:
        token_file.unlink(missing_ok=True)
    for what, path, blind in (
        ("input", store.path, [w for w, v in views.items() if v[0] != store.fingerprint]),
        ("output folder", tmp.parent, [w for w, v in views.items() if v[1] != token]),
    ):
        if blind:
            raise InputError(
                f"{len(blind)} of the {len(views)} workers ({blind[0]}"
                f"{', ...' * (len(blind) > 1)}) do not see the {what} {path} as this machine "
                f"does: {zarr_store.SHARED}"
            )


def _create_output(zarr: Any, tmp: Path, y: Any, store: zarr_store.StoreMeta, attrs: Any) -> Any:
    """The empty output array in ``tmp``, set to write every chunk: also those equal to the
    fill value, which zarr 3 skips by default (``write_empty_chunks``), so that a complete
    store is one with every chunk (:func:`check_complete`)."""
    shape = tuple(int(n) for n in y.shape)
    chunks = tuple(max(int(c[0]), 1) for c in y.chunks)  # zarr refuses 0: an empty dim
    if formats.zarr_major() >= 3:
        # inside a group (tmp lies beside the target): the group's format, else the input's
        group = zarr_store.group_format(tmp.parent)
        return zarr.create_array(
            store=str(tmp),
            shape=shape,
            chunks=chunks,
            dtype=y.dtype,
            zarr_format=store.zarr_format if group is None else group,
            attributes=dict(attrs),
            config={"write_empty_chunks": True},
        )
    out = zarr.open_array(
        str(tmp), mode="w", shape=shape, chunks=chunks, dtype=y.dtype, write_empty_chunks=True
    )
    out.attrs.update(attrs)
    return out


def check_complete(zarr: Any, tmp: Path) -> None:
    """An :class:`InputError` unless the store at ``tmp`` holds every chunk of its array."""
    out = zarr.open_array(str(tmp), mode="r")
    written, total = int(out.nchunks_initialized), int(out.nchunks)
    if written != total:
        raise InputError(
            f"only {written:,} of the {total:,} chunks of the output reached {tmp.parent}: "
            f"{zarr_store.SHARED}"
        )


def process(
    options: Options,
    kernel: Kernel,
    source: formats.Source,
    target: Path,
    progress: Progress,
    client: Any = None,
) -> list[str]:
    """Convolve the zarr array of ``source`` into the zarr store ``target``, chunk by chunk.

    Parameters
    ----------
    options : Options
        The checked ``apply`` arguments.
    kernel : Kernel
        The ``--kernel``, fitted here to the array's dims (all of them, or ``--dims``).
    source : formats.Source
        The opened input (header only; ``meta['store']``: its checked metadata).
    target : Path
        The output store (``--force`` and input/output clashes were checked by the caller).
        Resolved here to an absolute path, as the input is: the graph carries both to
        workers whose working folder is not this process's.
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
        The input cannot be convolved as asked (kernel, ``--dims``, ``--chunks``, the graph or
        one task above ``--max-bytes``, an unsupported option), some workers do not see the
        input or the output as this process does, a chunk cannot be decoded, or a task failed
        in a way that is the user's to fix (out of memory, no CUDA on a worker); nothing is
        left at ``target``.
    """
    target = formats.resolve_path(target)
    if formats.format_of(target) is not formats.ZARR:
        raise InputError(f"{target}: a .zarr input is convolved into a .zarr store only")
    zarr_store.check_member(target, "output")  # into a group: an existing one, from inside
    if options.normalize:
        raise InputError(
            "--normalize is not available for .zarr inputs: it needs the peak of the whole "
            "result before the first chunk is written"
        )
    da = formats.need_dask("dask.array", source.path.suffix)
    zarr = formats.need_dask("zarr", source.path.suffix)
    from dask.base import tokenize

    import trueconv.dask

    store: zarr_store.StoreMeta = source.meta["store"]
    fitted = fit(options, kernel, source, "", store.shape)
    planned = plan(options, store, fitted)  # refuses above --max-bytes: no graph, no kernel yet
    np_dtype = torch.empty(0, dtype=fitted.dtype).numpy().dtype
    k = torch.from_numpy(np.ascontiguousarray(fitted.build())).to(fitted.dtype)

    reader = zarr_store.ChunkReader(source.meta["array"], store)
    name = f"zarr-{tokenize(str(store.path), store.fingerprint)}"
    meta = np.empty((0,) * len(store.shape), dtype=store.dtype)
    x = da.from_array(reader, chunks=store.chunks, name=name, meta=meta)
    if planned.rechunk:
        x = x.rechunk(planned.work)
    if x.dtype != np_dtype:
        x = x.astype(np_dtype)
    dims = fitted.dims
    moved = tuple(range(-len(dims), 0)) if dims else ()
    if dims:
        x = da.moveaxis(x, dims, moved)
    fn = trueconv.dask.correlate if options.correlate else trueconv.dask.convolve
    try:
        y = fn(
            x,
            k,
            options.mode,
            boundary=options.boundary_for("array"),
            fill_value=options.fill_value,
            method=options.method,
            device=options.device,
        )
    except (ValueError, TypeError) as exc:  # the library's one-line argument errors
        raise InputError(str(exc)) from None
    if dims:
        y = da.moveaxis(y, moved, dims)
    y = y.rechunk(tuple(max(1, min(c, n)) for c, n in zip(planned.work, y.shape)))

    attrs = source.meta.get("attrs") or {}
    show = not options.quiet and sys.stderr.isatty()
    need = planned.task_bytes

    def write(tmp: Path) -> list[str]:
        if client is not None:
            check_workers(client, store, tmp)
        stored = da.store(y, _create_output(zarr, tmp, y, store, attrs), lock=False, compute=False)
        progress.stage(f"convolving {y.npartitions} chunks")
        try:
            _compute(stored, client, progress, show)
        except zarr_store.StoreError as exc:  # a chunk of the input, or a worker's view of it
            raise InputError(str(exc)) from None
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, MemoryError) or "memory" in str(exc).lower():
                raise InputError(
                    f"out of memory (about {formats.human_bytes(need)} estimated per task; use "
                    f"smaller --chunks): {reason(exc)}"
                ) from None
            if str(exc).startswith("trueconv.dask:"):  # no CUDA on a worker
                raise InputError(reason(exc)) from None
            raise
        check_complete(zarr, tmp)  # before replace_atomically renames it into place
        return []

    started = time.perf_counter()
    warnings = formats.replace_atomically(target, True, write)
    if options.verbose:
        seconds = time.perf_counter() - started
        shape = " x ".join(map(str, store.shape))
        print(
            f"{source.path} -> {target}: {shape} * {' x '.join(map(str, fitted.kshape))} "
            f"-> {' x '.join(map(str, y.shape))}, chunks {' x '.join(map(str, y.chunksize))}, "
            f"{y.npartitions} chunks, {planned.method}, {seconds:.2f} s, "
            f"memory estimate {formats.human_bytes(need)} per task",
            flush=True,
        )
    return warnings
