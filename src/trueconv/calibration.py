"""Cost constants measured on the running machine: :func:`calibrate`, :func:`in_use`.

``method='auto'`` prices every method with operation counts times per-device constants. The
constants shipped in ``trueconv/core/cost_constants.json`` were fitted on one machine (see its
``sources``); another CPU, core count or thread count moves the crossovers between methods.
:func:`calibrate` times a small grid of problems with every method on this machine (under a
minute by default), fits the CPU constants of the signal API's methods (the separable
kernel's fused loop among them), and stores them with
their provenance in the user's cache directory (``platformdirs.user_cache_dir('trueconv')``).
From then on ``'auto'`` uses them on this machine — same CPU model, same number of torch
threads, same torch version, same state of the compiled loop (numba), same cost model
(:data:`COST_MODEL`) — and the shipped
constants elsewhere (:func:`in_use` says which). Set ``TRUECONV_NO_CALIBRATION=1`` to ignore
stored calibrations. The NN API's constants are not calibrated here.

The fit, per dtype class (float32; float64, which also prices integers) and method variant:
non-negative coefficients ``c`` of ``seconds = calls·c_call + units·c_unit + passes·c_pass +
aux·c_aux + memory·c_memory`` minimising the squared *relative* error over the measured
problems. It has at most five unknowns, so every subset of them is solved by least squares
and the best solution with no negative coefficient is kept: that is the exact non-negative
least-squares solution, with numpy alone (scipy is optional for trueconv).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trueconv import _plan, _separable
from trueconv._methods import rows
from trueconv._problem import Problem
from trueconv._spec import normalize
from trueconv.core import cost

__all__ = ["calibrate", "in_use", "machine", "stored_path"]

#: (input shape, kernel shape) per method; 'same' and 'full' each. Spans both sides of each
#: crossover at sizes that time in milliseconds (the whole grid runs in 20-40 s on 2 cores).
GRID: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "direct": [
        ((2**14,), (3,)),
        ((2**18,), (16,)),
        ((8000,), (1000,)),
        ((256, 256), (3, 3)),
        ((512, 512), (7, 7)),
        ((512, 512), (15, 15)),
        ((48, 48, 48), (5, 5, 5)),
        ((2048, 2048), (15, 15)),
        # 3×3 in and out of the cache: where the fused separable loop meets the dense one
        ((1024, 1024), (3, 3)),
        ((2048, 2048), (3, 3)),
    ],
    # the separable kernel's fused loop (factors of these lengths, convolve_separable): its
    # crossovers with the dense loop (3-5 taps) and the transforms (31 taps), in and out of
    # the cache
    "fused": [
        ((256, 256), (3, 3)),
        ((512, 512), (5, 5)),
        ((1024, 1024), (3, 3)),
        ((1024, 1024), (9, 9)),
        ((2048, 2048), (3, 3)),
        ((1024, 1024), (31, 31)),
        ((3, 1024, 1024), (7, 7)),
        ((2048, 2048), (15, 15)),
    ],
    "fft": [
        ((2**12,), (64,)),
        ((2**16,), (1024,)),
        ((2**18,), (4096,)),
        ((256, 256), (31, 31)),
        ((512, 512), (15, 15)),
        ((512, 512), (63, 63)),
        ((48, 48, 48), (9, 9, 9)),
        ((2048, 2048), (31, 31)),
        # three channels: transforms far past the caches (without it, a 1-thread calibration
        # priced the FFT of 3 × 2048² float32 ⊛ 31² below overlap-add, which ran 1.46x faster)
        ((3, 2048, 2048), (31, 31)),
    ],
    "overlap_add": [
        ((2**16,), (256,)),
        ((2**18,), (1024,)),
        ((2**18,), (4096,)),
        ((16, 16384), (129,)),
        ((1024, 1024), (15, 15)),
        ((2048, 2048), (31, 31)),
        ((3, 2048, 2048), (31, 31)),
    ],
}
QUICK = {name: shapes[:3] for name, shapes in GRID.items()}
MODES = ("same", "full")
DTYPES = (torch.float32, torch.float64)


#: The cost model's revision, part of what a calibration is valid for (:func:`machine`):
#: raised when the counts or the grid change, so that constants fitted to other counts are
#: not used. 2: the fused separable loop has constants of its own ('fused'), and memory
#: counts from :data:`trueconv.core.cost.CACHE_BYTES` on, inclusive (2026-12-05). 3: the
#: dense loop's counts where it computes output rows in pairs
#: (:func:`trueconv._methods.direct.rows_counts`, 2026-12-05). 4: 3×3 kernels' rows in
#: pairs, one pass a pair (2026-12-05, evening). 5: the fused separable loop's vertical sums
#: in pairs of rows (:func:`trueconv._separable.fused_counts`, 2026-12-05). 6: the FFT's
#: per-call set-up (``aux``: :func:`trueconv._methods.fft.plan`) and transform lengths that
#: are multiples of 4 (2026-12-05). 7: the dense loop's short rows as strips over bands of
#: copied rows (``rows.band_rows``, 2026-12-05). 8: overlap-add's blocks of multi-dim
#: transforms at every FFT length, counted over the output they make
#: (:func:`trueconv._methods.overlap_add.blocked_dims`, 2026-12-06). 9: overlap-add's
#: multi-dim inverse copies as a count of their own (``aux``: ``overlap_add.plan``,
#: 2026-12-06).
COST_MODEL = 9


def machine() -> dict[str, Any]:
    """What a calibration is valid for: CPU model, torch threads, torch version, whether the
    compiled direct loop runs, the cost model's revision (:data:`COST_MODEL`)."""
    return {
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "compiled_loop": rows.AVAILABLE,
        "cost_model": COST_MODEL,
    }


def stored_path(where: Path | None = None) -> Path:
    """The file a calibration of this machine is stored in (it may not exist)."""
    folder = where if where is not None else _cache_dir()
    key = hashlib.sha256(json.dumps(machine(), sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"cost-constants-{key}.json"


def in_use(where: Path | None = None) -> dict[str, Any]:
    """Which CPU constants ``'auto'`` prices with now: ``{'source': 'calibrated' or
    'shipped', 'path': ..., 'machine': ..., 'date': ...}``."""
    stored = _stored(stored_path(where))
    if stored is None:
        return {"source": "shipped", "path": str(cost.CONSTANTS_FILE), "machine": machine()}
    return {
        "source": "calibrated",
        "path": str(stored_path(where)),
        "machine": stored["machine"],
        "date": stored["date"],
    }


def calibrate(
    *,
    quick: bool = False,
    where: Path | None = None,
    min_time: float = 0.05,
    passes: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time the grid on this machine, fit the CPU constants, store them, and return the record.

    Parameters
    ----------
    quick : bool, optional
        Three problems per method instead of the whole grid (for tests and a first look).
    where : Path, optional
        The folder to store in (default: the user's cache directory for trueconv).
    min_time : float, optional
        Seconds of repeated calls per problem, shared out over the passes (the fastest call
        counts).
    passes : int, optional
        Passes over the grid, each timing every problem for ``min_time / passes`` seconds
        (at least two calls): a problem's time is its fastest call of all passes, so a slow
        phase of the machine during one pass (seconds long on a shared host) does not reach
        the constants unless it returns at the same problem in the next. One pass took a
        2048² float64 ⊛ 15² separable problem at 12.9 ms 'same' against 8.9 'full', and the
        fit then mis-ranked 512² ⊛ 5×5 Gaussians by 1.33-1.55x (2026-12-05).
    progress : callable, optional
        Called with a line as each pass starts and one per problem of the last pass (its
        fastest time of all passes).

    Returns
    -------
    dict
        ``machine`` (:func:`machine`), ``date``, ``constants`` (per dtype class), ``fit``
        (per dtype class and variant: points and the median and worst relative error) and
        ``rows`` (every timed problem with its counts and seconds).
    """
    if passes < 1:
        raise ValueError(f"passes must be at least 1; got {passes}")
    rows_: list[dict[str, Any]] = []
    for round_ in range(passes):
        if progress is not None:
            progress(f"pass {round_ + 1} of {passes}")
        for index, (row, call) in enumerate(_problems(quick)):
            seconds = _fastest(call, min_time / passes, warm=round_ == 0)
            if round_ == 0:
                rows_.append({**row, "seconds": seconds})
            else:
                rows_[index]["seconds"] = min(rows_[index]["seconds"], seconds)
            if progress is not None and round_ == passes - 1:
                r = rows_[index]
                progress(
                    f"{r['variant']:12s} {r['mode']:4s} torch.{r['dtype']} "
                    f"{tuple(r['x_shape'])}*{tuple(r['k_shape'])}: {r['seconds'] * 1e3:.3f} ms"
                )
    constants, quality = fit(rows_)
    record = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trueconv": _version(),
        "constants": constants,
        "fit": quality,
        "rows": rows_,
    }
    path = stored_path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    _stored.cache_clear()
    cost.use_calibration(_calibrated_table)  # drops the cost model's cached tables
    _plan.forget()  # and the plans priced with the old constants
    return record


def _problems(quick: bool) -> Iterator[tuple[dict[str, Any], Callable[[], None]]]:
    """The grid's problems in order, each its row (counts and provenance, no time) and the
    call to time; the same data every time (the inputs are made again for each pass: the
    grid's would take about a gigabyte held together)."""
    gen = torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")
    for method, shapes in (QUICK if quick else GRID).items():
        for (xs, ks), mode, dtype in itertools.product(shapes, MODES, DTYPES):
            x = torch.randn(xs, generator=gen, dtype=torch.float64).to(dtype)
            k = torch.randn(ks, generator=gen, dtype=torch.float64).to(dtype)
            if method == "fused":
                found = fused_counts(xs, ks, mode, dtype)
                if found is None:  # no numba: the separable plan runs passes
                    continue
                counts, call = found, fused_call(x, k, mode)
            else:
                spec = normalize("calibrate", x, k, mode, None, "auto", "fill", 0)[2]
                plan = _plan.plans(spec, cpu).get(method)
                if plan is None:  # overlap-add with no dim worth blocking: it runs the FFT
                    continue
                counts, call = plan.counts, functools.partial(_run, x, k, mode, method)
            row = {
                "variant": counts.variant,
                "dtype": str(dtype).removeprefix("torch."),
                "x_shape": list(xs),
                "k_shape": list(ks),
                "mode": mode,
                "calls": counts.calls,
                "units": counts.units,
                "passes": counts.passes,
                "aux": counts.aux,
                "memory": counts.memory,
            }
            yield row, call


#: The counts after ``calls`` and ``units``, as the rows of a calibration name them (rows
#: recorded before a count existed have none: zero).
_COUNTS = ("passes", "aux", "memory")


def fit(rows_: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The constants per dtype class and variant (module docstring), and the fit's quality."""
    constants: dict[str, dict[str, float]] = {}
    quality: dict[str, Any] = {}
    for dclass in sorted({r["dtype"] for r in rows_}):
        constants[dclass] = {}
        for variant in sorted({r["variant"] for r in rows_}):
            sel = [r for r in rows_ if r["dtype"] == dclass and r["variant"] == variant]
            if not sel:
                continue
            t = np.array([r["seconds"] for r in sel])
            a = np.array([[r["calls"], r["units"], *(r.get(k, 0.0) for k in _COUNTS)] for r in sel])
            coef = _nnls(a / t[:, None], np.ones(len(sel)))
            unit = cost.UNIT[variant]
            for name, c, column in zip(("call", unit, "pass", "aux", "memory"), coef, a.T):
                if name in ("call", unit) or column.any():
                    constants[dclass][f"{variant}_{name}"] = float(c)
            ratio = (a @ coef) / t
            quality[f"{dclass} {variant}"] = {
                "points": len(sel),
                "median |log2(pred/measured)|": float(np.median(np.abs(np.log2(ratio)))),
                "worst pred/measured": [float(ratio.min()), float(ratio.max())],
            }
    return constants, quality


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact non-negative least squares for a handful of unknowns: the best least-squares
    solution over every subset of the columns that has no negative coefficient (module
    docstring: at most 31 subsets here)."""
    n = a.shape[1]
    best, best_err = np.zeros(n), float(np.sum(b**2))
    for size in range(1, n + 1):
        for cols in itertools.combinations(range(n), size):
            sub = a[:, cols]
            if not sub.any():
                continue
            sol, *_ = np.linalg.lstsq(sub, b, rcond=None)
            if (sol < 0).any():
                continue
            err = float(np.sum((sub @ sol - b) ** 2))
            if err < best_err:
                best_err = err
                best = np.zeros(n)
                best[list(cols)] = sol
    return best


def _version() -> str:
    import trueconv

    return str(trueconv.__version__)


def fused_counts(
    x_shape: Sequence[int], k_shape: Sequence[int], mode: str, dtype: torch.dtype
) -> cost.Counts | None:
    """The counts of the fused separable loop (:func:`trueconv._separable.fused_counts`) for
    an input of ``x_shape`` and factors of the lengths of ``k_shape``'s last two dims, on the
    CPU; ``None`` where the separable plan does not run it (no numba)."""
    x = torch.zeros((), dtype=dtype).expand(tuple(x_shape))
    k = torch.zeros((), dtype=dtype).expand(tuple(k_shape))
    problem = Problem.of(normalize("calibrate", x, k, mode, None, "direct", "fill", 0)[2])
    sep = _separable.plan(problem, torch.device("cpu"), "direct")
    if sep is None or not sep.fused:
        return None
    return _separable.fused_counts(problem)


def fused_call(x: torch.Tensor, k: torch.Tensor, mode: str) -> Callable[[], None]:
    """A call of the fused separable loop on ``x`` with factors as long as ``k``'s last two
    dims (``k``'s first column and row: the time depends on the lengths alone)."""
    from trueconv.signal import convolve_separable

    flat = k.reshape(-1, k.shape[-1])  # the last two dims' (rows, columns), batch merged
    factors = [flat[: k.shape[-2], 0], flat[0]]

    def call() -> None:
        with torch.no_grad():
            convolve_separable(x, factors, mode, method="direct")  # type: ignore[arg-type]

    return call


def _run(x: torch.Tensor, k: torch.Tensor, mode: str, method: str) -> None:
    from trueconv.signal import convolve

    with torch.no_grad():
        convolve(x, k, mode, method=method)  # type: ignore[arg-type]


def _fastest(fn: Callable[[], None], min_time: float, warm: bool = True) -> float:
    """The fastest of at least two calls of ``fn`` (and at most 50) over ``min_time`` seconds,
    after a warm-up call (plans, the compiled loop, the allocator) when ``warm``."""
    if warm:
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < min_time and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("trueconv"))


@functools.lru_cache(maxsize=8)
def _stored(path: Path) -> dict[str, Any] | None:
    """The calibration at ``path`` when it exists, parses, and was made on this machine."""
    if os.environ.get("TRUECONV_NO_CALIBRATION"):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("machine") != machine():
        return None
    constants = record.get("constants")
    if not isinstance(constants, dict):
        return None
    return record


def _calibrated_table() -> dict[str, Any] | None:
    """The stored CPU constants of this machine at the current torch thread count, or
    ``None``; :mod:`trueconv.core.cost` calls it once per thread count and merges them over
    the shipped ones."""
    try:
        record = _stored(stored_path())
    except Exception:  # no cache directory, no platformdirs: the shipped constants
        return None
    return None if record is None else record["constants"]


cost.use_calibration(_calibrated_table)
