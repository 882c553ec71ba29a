"""Side-by-side benchmarks: trueconv against scipy, numpy and plain torch, in one process.

This is the harness behind ``trueconv bench`` and the scripts in ``benchmarks/``. For every case
of a grid (shapes × mode × dtype) it times each *contender* — trueconv's ``'auto'`` and each of
its methods, ``scipy.signal.convolve`` / ``fftconvolve`` / ``oaconvolve``, ``np.convolve``, and
the flip + ``F.convNd`` a user writes by hand — checks every result against a float64
reference, and measures the peak extra memory of trueconv's transform methods. Timing uses
``torch.utils.benchmark.Timer`` (which synchronises CUDA) and reports the median.

Contenders whose direct work is estimated above the time budget are skipped, and the skip is
reported with its estimate rather than hidden.

On a CUDA device the competitors are those a GPU user has: CuPy's ``cupyx.scipy.signal``
(``convolve``, ``fftconvolve``, ``oaconvolve``; when CuPy is installed), a plain
``torch.fft.rfftn`` product at a fast length, and flip + ``F.convNd`` (cuDNN, in its default
TF32 precision for float32, as a user gets it: its error column shows what that costs). Peak
memory there is ``torch.cuda.max_memory_allocated`` beyond what was allocated before the call.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import trueconv
from trueconv.core.names import METHODS

#: rough direct multiply-add rates (MAC/s) used only to decide what is too slow to run, per
#: device type: single-channel signal work (oneDNN/im2col at its worst), and many-channel NN
#: layers
_DIRECT_RATE = {"cpu": {"signal": 5e8, "nn": 1e10}, "cuda": {"signal": 2e10, "nn": 1e12}}


@dataclass(frozen=True)
class Case:
    """One benchmark problem. ``kind='signal'``: ``convolve(x, k, mode)`` with ``k`` applied
    along the trailing dims; ``kind='nn'``: ``conv2d(x, w, padding='same')``."""

    name: str
    x_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    kind: str = "signal"
    modes: tuple[str, ...] = ("full", "same")

    @property
    def taps(self) -> int:
        return math.prod(self.k_shape)


FULL_GRID: tuple[Case, ...] = (
    Case("1-D 2^20 * 16", (2**20,), (16,)),
    Case("1-D 2^20 * 256", (2**20,), (256,)),
    Case("1-D 2^20 * 4096", (2**20,), (4096,)),
    Case("1-D 2^20 * 65536", (2**20,), (65536,)),
    Case("64 x 16384 rows * 129", (64, 16384), (129,)),
    *(Case(f"2-D 1024^2 * {k}^2", (1024, 1024), (k, k)) for k in (3, 7, 15, 31, 63, 127)),
    Case("3-D 96^3 * 5^3", (96, 96, 96), (5, 5, 5)),
    Case("3-D 96^3 * 17^3", (96, 96, 96), (17, 17, 17)),
    Case("NN 16x32x128^2 * 64x32x3^2", (16, 32, 128, 128), (64, 32, 3, 3), "nn", ("same",)),
    Case("NN 8x3x512^2 * 16x3x31^2", (8, 3, 512, 512), (16, 3, 31, 31), "nn", ("same",)),
)

QUICK_GRID: tuple[Case, ...] = (
    Case("1-D 2^16 * 16", (2**16,), (16,)),
    Case("1-D 2^16 * 1024", (2**16,), (1024,)),
    Case("16 x 4096 rows * 129", (16, 4096), (129,)),
    Case("2-D 256^2 * 3^2", (256, 256), (3, 3)),
    Case("2-D 256^2 * 31^2", (256, 256), (31, 31)),
    Case("3-D 32^3 * 5^3", (32, 32, 32), (5, 5, 5)),
    Case("NN 4x8x32^2 * 8x8x3^2", (4, 8, 32, 32), (8, 8, 3, 3), "nn", ("same",)),
)


@dataclass
class Record:
    """One contender on one case: median time, error against the float64 reference, memory."""

    case: str
    mode: str
    dtype: str
    contender: str
    ms: float | None = None
    rel_err: float | None = None
    chosen: str | None = None  # what 'auto' ran
    peak_extra: float | None = None  # peak extra bytes / (input + output bytes)
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- contenders


def _signal_contenders(
    case: Case, mode: Any, x: torch.Tensor, k: torch.Tensor
) -> dict[str, Callable[[], Any]]:
    xn, kn = x.cpu().numpy(), k.cpu().numpy()
    nd = len(case.k_shape)
    kfull = kn.reshape((1,) * (x.ndim - k.ndim) + kn.shape)  # scipy wants equal ndim
    out: dict[str, Callable[[], Any]] = {
        "trueconv auto": lambda: trueconv.convolve(x, k, mode),
    }
    method: Any
    for method in sorted(m for m in METHODS if m != "auto"):
        out[f"trueconv {method}"] = functools.partial(trueconv.convolve, x, k, mode, method=method)
    if x.device.type == "cpu":
        import scipy.signal as ss

        out["scipy convolve"] = lambda: ss.convolve(xn, kfull, mode)
        out["scipy fftconvolve"] = lambda: ss.fftconvolve(xn, kfull, mode)
        out["scipy oaconvolve"] = lambda: ss.oaconvolve(xn, kfull, mode)
        if x.ndim == 1:
            out["numpy convolve"] = lambda: np.convolve(xn, kn, mode)
    if x.device.type == "cuda":
        out.update(_gpu_contenders(case, mode, x, k))
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    w = k.flip(list(range(nd))).reshape(1, 1, *k.shape)
    lead = x.shape[: x.ndim - nd]
    pads: list[int] = []
    for kk in reversed(case.k_shape):  # F.pad lists the last dim first
        before = kk - 1 if mode == "full" else kk - 1 - (kk - 1) // 2
        after = kk - 1 if mode == "full" else (kk - 1) // 2
        pads += [before, after]

    def torch_flip_conv() -> torch.Tensor:
        xs = F.pad(x.reshape(-1, 1, *x.shape[x.ndim - nd :]), pads)
        y = conv(xs, w)
        return y.reshape(*lead, *y.shape[2:])

    out["torch flip+conv"] = torch_flip_conv
    return out


def _gpu_contenders(
    case: Case, mode: Any, x: torch.Tensor, k: torch.Tensor
) -> dict[str, Callable[[], Any]]:
    """What a GPU user has besides trueconv: CuPy's scipy.signal and a plain torch FFT."""
    out: dict[str, Callable[[], Any]] = {}
    nd = len(case.k_shape)
    try:
        import cupy
        import cupyx.scipy.signal as cs
    except ImportError:
        pass
    else:
        xc, kc = cupy.from_dlpack(x), cupy.from_dlpack(k)
        kc = kc.reshape((1,) * (x.ndim - k.ndim) + kc.shape)
        out["cupyx convolve"] = lambda: cs.convolve(xc, kc, mode)
        out["cupyx fftconvolve"] = lambda: cs.fftconvolve(xc, kc, mode)
        out["cupyx oaconvolve"] = lambda: cs.oaconvolve(xc, kc, mode)
    try:
        from scipy.fft import next_fast_len
    except ImportError:  # pragma: no cover - scipy is a bench dependency

        def next_fast_len(n: int, real: bool = True) -> int:
            return n

    dims = list(range(-nd, 0))
    full = [n + kk - 1 for n, kk in zip(x.shape[-nd:], case.k_shape)]
    lens = [next_fast_len(m, real=True) for m in full]
    starts = [0] * nd if mode == "full" else [(kk - 1) // 2 for kk in case.k_shape]
    keep = full if mode == "full" else list(x.shape[-nd:])

    def torch_rfftn() -> torch.Tensor:
        spec = torch.fft.rfftn(x, s=lens, dim=dims) * torch.fft.rfftn(k, s=lens, dim=dims)
        y = torch.fft.irfftn(spec, s=lens, dim=dims)
        for d, s0, n in zip(dims, starts, keep):
            y = y.narrow(d, s0, n)
        return y

    out["torch rfftn"] = torch_rfftn
    return out


def _nn_contenders(case: Case, x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {
        "trueconv auto": lambda: trueconv.conv2d(x, w, padding="same"),
    }
    for m in ("direct", "fft"):
        out[f"trueconv {m}"] = functools.partial(trueconv.conv2d, x, w, padding="same", method=m)
    wf = w.flip([-2, -1])
    out["torch flip+conv"] = lambda: F.conv2d(x, wf, padding="same")
    return out


def _chosen(case: Case, mode: Any, x: torch.Tensor, k: torch.Tensor) -> str:
    """The method ``'auto'`` runs for this case."""
    if case.kind == "signal":
        return trueconv.choose_method(x, k, mode)
    return trueconv.nn.functional.choose_method(x, k, padding="same")


def _blocks(case: Case, mode: Any, x: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether ``method='overlap_add'`` cuts some dim of this signal case into blocks (else it
    runs the fft method)."""
    return case.kind == "signal" and "overlap_add" in trueconv.method_costs(x, k, mode)


def _direct_macs(case: Case) -> float:
    out = math.prod(case.x_shape)
    if case.kind == "nn":
        n, c = case.x_shape[:2]
        o = case.k_shape[0]
        return float(n * o * c * math.prod(case.x_shape[2:]) * math.prod(case.k_shape[2:]))
    return float(out * case.taps)


def _is_direct(name: str) -> bool:
    return name in ("trueconv direct", "torch flip+conv", "numpy convolve")


# ------------------------------------------------------------------------------------ measuring


def _time_ms(fn: Callable[[], Any], min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return float(timer.blocked_autorange(min_run_time=min_run_time).median * 1e3)


def _rss_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_extra_bytes(fn: Callable[[], Any], collect: bool = True) -> float | None:
    """Peak resident memory added while ``fn`` runs (Linux; CPU tensors only).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``), hands freed heap back to
    the OS first (``malloc_trim``) so reuse of old pages does not hide new ones, and returns
    ``VmHWM - VmRSS`` measured around the call.
    """
    if collect:  # a full collection costs ~0.1 s with scipy and torch loaded
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    base = _rss_kib("VmRSS")
    result = fn()
    peak = _rss_kib("VmHWM")
    del result
    if base is None or peak is None:
        return None
    return float(max(0, peak - base) * 1024)


#: Calls per contender whose peak extra memory is measured; the median is reported.
MEMORY_CALLS = 3


def _median_or_none(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def _cuda_peak_extra_bytes(fn: Callable[[], Any]) -> float:
    """Peak CUDA memory allocated by torch while ``fn`` runs, beyond what was allocated before
    (the result included, as on the CPU)."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return float(max(0, peak - base))


def _rel_err(y: Any, ref: np.ndarray) -> float:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().double().numpy()
    elif hasattr(y, "get"):  # a CuPy array
        y = y.get()
    y = np.asarray(y)
    if y.shape != ref.shape:
        return float("nan")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(y.astype(np.float64) - ref).max() / scale)


def _reference(case: Case, mode: str, x: torch.Tensor, k: torch.Tensor) -> np.ndarray:
    """float64 reference from scipy, which we did not write.

    NN cases (``conv2d(x, w, padding='same')``, odd kernels): per sample, the sum over input
    channels of ``fftconvolve(x[b, c], w[o, c])``, sliced like torch's 'same' (from ``k // 2``
    of the full convolution). One sample at a time keeps the float64 spectra small.
    """
    import scipy.signal as ss

    xn = x.double().cpu().numpy()
    kn = k.double().cpu().numpy()
    if case.kind == "nn":
        kh, kw = kn.shape[-2:]
        h, w = xn.shape[-2:]
        out = np.empty((xn.shape[0], kn.shape[0], h, w))
        for b in range(xn.shape[0]):
            full = ss.fftconvolve(xn[b][None], kn, axes=(-2, -1)).sum(axis=1)
            out[b] = full[:, kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]
        return out
    return ss.fftconvolve(xn, kn.reshape((1,) * (xn.ndim - kn.ndim) + kn.shape), mode)


def run(
    cases: Sequence[Case],
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: str = "cpu",
    min_run_time: float = 0.2,
    budget_s: float = 5.0,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
    rounds: int = 3,
) -> list[Record]:
    """Time every contender on every case, mode and dtype; see the module docstring."""
    records: list[Record] = []
    gen = torch.Generator().manual_seed(0)
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    rate_key = "cuda" if cuda else "cpu"
    for case in cases:
        for dtype in dtypes:
            x = torch.randn(case.x_shape, generator=gen, dtype=torch.float64).to(device, dtype)
            k = torch.randn(case.k_shape, generator=gen, dtype=torch.float64).to(device, dtype)
            mode: Any
            for mode in case.modes:
                try:
                    ref = _reference(case, mode, x, k)
                except (RuntimeError, MemoryError) as exc:
                    rec = Record(case.name, mode, str(dtype).removeprefix("torch."), "reference")
                    rec.skipped = f"reference failed: {type(exc).__name__}: {str(exc)[:80]}"
                    records.append(rec)
                    continue
                io_bytes = (x.numel() + ref.size) * x.element_size()
                if case.kind == "nn":
                    contenders = _nn_contenders(case, x, k)
                else:
                    contenders = _signal_contenders(case, mode, x, k)
                dname = str(dtype).removeprefix("torch.")
                timed: dict[str, tuple[Record, Callable[[], Any]]] = {}
                # 1. one call each: the result checked against the reference
                for name, fn in contenders.items():
                    rec = Record(case.name, mode, dname, name)
                    records.append(rec)
                    if progress:
                        progress(f"{case.name} {mode} {dname}: {name}")
                    est = _direct_macs(case) / _DIRECT_RATE[rate_key][case.kind]
                    if _is_direct(name) and est > budget_s:
                        rec.skipped = f"direct work est. {est:.0f} s > budget {budget_s:g} s"
                        continue
                    if name == "trueconv overlap_add" and not _blocks(case, mode, x, k):
                        # the same computation as the fft method: timing it twice would
                        # only compare two samples of one call's noise
                        rec.skipped = "no dim is blocked: runs the fft method"
                        continue
                    if name == "trueconv auto":
                        rec.chosen = _chosen(case, mode, x, k)
                    try:
                        if sync is not None:  # a warm-up: kernel compilation, cuFFT plans
                            warm = fn()
                            sync()
                            del warm
                        t0 = time.perf_counter()
                        y = fn()
                        if sync is not None:
                            sync()
                        first = time.perf_counter() - t0
                    except (RuntimeError, MemoryError, ValueError) as exc:
                        rec.skipped = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
                        continue
                    rec.rel_err = _rel_err(y, ref)
                    del y
                    if first > budget_s:
                        rec.ms = first * 1e3  # too slow to repeat: one call is the time
                    else:
                        timed[name] = (rec, fn)
                # 2. timing in interleaved rounds, so drift and allocator state hit all alike
                for r in range(rounds):
                    order = list(timed)
                    order = order[r % len(order) :] + order[: r % len(order)] if order else order
                    for name in order:
                        rec, fn = timed[name]
                        ms = _time_ms(fn, min_run_time / rounds)
                        rec.ms = ms if rec.ms is None else min(rec.ms, ms)
                # 3. memory last: its malloc_trim must not disturb the timings. The median of
                # MEMORY_CALLS calls: the resident peak moves with the heap's state
                if memory:
                    gc.collect()  # once: the calls measured free their tensors by refcount
                    for name, (rec, fn) in timed.items():
                        if name.startswith("trueconv"):
                            extra = _median_or_none(
                                [
                                    _cuda_peak_extra_bytes(fn)
                                    if cuda
                                    else _peak_extra_bytes(fn, collect=False)
                                    for _ in range(MEMORY_CALLS)
                                ]
                            )
                            if extra is not None:
                                out_bytes = ref.size * x.element_size()
                                rec.peak_extra = max(0.0, extra - out_bytes) / io_bytes
    return records


# -------------------------------------------------------------------------------------- reports


def machine_info(device: str = "cpu") -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "device": device,
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def _ratio(num: Record | None, den: Record | None) -> float | None:
    """``num.ms / den.ms``, or None where either time is missing."""
    return num.ms / den.ms if num and den and num.ms and den.ms else None


def summarize(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per (case, mode, dtype): auto, best own method, best competitor, and the ratios."""
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.case, r.mode, r.dtype), []).append(r)
    rows = []
    for (case, mode, dtype), recs in groups.items():
        timed = [r for r in recs if r.ms is not None]
        auto = next((r for r in timed if r.contender == "trueconv auto"), None)
        own = [r for r in timed if r.contender.startswith("trueconv ") and r is not auto]
        other = [r for r in timed if not r.contender.startswith("trueconv")]
        best_own = min(own, key=lambda r: r.ms or 0.0, default=None)
        best_other = min(other, key=lambda r: r.ms or 0.0, default=None)
        # the quality of the pick: the picked method's time, measured as every method's was
        picked = next((r for r in own if auto and r.contender == f"trueconv {auto.chosen}"), None)
        rows.append(
            {
                "case": case,
                "mode": mode,
                "dtype": dtype,
                "auto": auto,
                "best_own": best_own,
                "best_other": best_other,
                "speedup": _ratio(best_other, auto),
                "auto_vs_own": _ratio(auto, best_own),
                "pick": _ratio(picked, best_own),
                "auto_vs_picked": _ratio(auto, picked),
            }
        )
    return rows


def to_markdown(records: Sequence[Record], info: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", ""]
    lines.append(
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + ". Times are medians in ms (`torch.utils.benchmark.Timer`); errors are "
        "max|y − ref| / max|ref| against a float64 reference (scipy `fftconvolve`; for NN "
        "cases summed over input channels)."
    )
    lines.append("")
    rows = summarize(records)
    lines += [
        "## Summary",
        "",
        "`speedup` = best competitor time / trueconv auto time (> 1: trueconv is faster). "
        "`pick` = time of the method auto picked / time of the fastest trueconv method, both "
        "timed as `trueconv.convolve(..., method=m)` (1.00: auto picked the best). "
        "`auto/own best` = auto's own measured time / the fastest method's (the same work "
        "as `pick` plus planning, so it differs from `pick` by that cost and by timing noise). "
        "`mem` = peak extra memory of auto (resident memory beyond the input and the returned "
        "output while the call runs; median of three calls) / (input + output bytes).",
        "",
        "| case | mode | dtype | auto ms (method) | best own | best competitor | speedup "
        "| pick | auto/own best | auto err | mem |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        auto, own, other = row["auto"], row["best_own"], row["best_other"]
        lines.append(
            "| {case} | {mode} | {dtype} | {a} | {o} | {c} | {s} | {p} | {r} | {e} | {m} |".format(
                case=row["case"],
                mode=row["mode"],
                dtype=row["dtype"],
                a=f"{_fmt_ms(auto.ms)} ({auto.chosen or '?'})" if auto else "—",
                o=f"{own.contender.removeprefix('trueconv ')} {_fmt_ms(own.ms)}" if own else "—",
                c=f"{other.contender} {_fmt_ms(other.ms)}" if other else "—",
                s=f"{row['speedup']:.2f}×" if row["speedup"] else "—",
                p=f"{row['pick']:.2f}" if row["pick"] else "—",
                r=f"{row['auto_vs_own']:.2f}" if row["auto_vs_own"] else "—",
                e=f"{auto.rel_err:.1e}" if auto and auto.rel_err is not None else "—",
                m=f"{auto.peak_extra:.2f}" if auto and auto.peak_extra is not None else "—",
            )
        )
    speedups = {}
    for dtype in sorted({r["dtype"] for r in rows}):
        vals = sorted(r["speedup"] for r in rows if r["dtype"] == dtype and r["speedup"])
        if vals:
            speedups[dtype] = (vals[len(vals) // 2], vals[0])
    if speedups:
        lines.append("")
        for dtype, (median, worst) in speedups.items():
            lines.append(
                f"- {dtype}: median speedup over the best competitor {median:.2f}×, "
                f"worst {worst:.2f}×."
            )
    picks = [r["pick"] for r in rows if r["pick"]]
    if picks and any(r["auto_vs_picked"] for r in rows):
        within = sum(p <= 1.10 for p in picks)
        overhead = sorted(r["auto_vs_picked"] for r in rows if r["auto_vs_picked"])
        lines.append(
            f"- auto's pick within 1.10× of the fastest trueconv method on {within} of "
            f"{len(picks)} cases (worst {max(picks):.2f}×); auto's own time / its method's "
            f"time: median {overhead[len(overhead) // 2]:.2f}, range "
            f"{overhead[0]:.2f}–{overhead[-1]:.2f}."
        )
    lines += ["", "## Every contender", ""]
    lines += [
        "| case | mode | dtype | contender | ms | rel err | peak extra mem | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r.case} | {r.mode} | {r.dtype} | {r.contender} | {_fmt_ms(r.ms)} | "
            + (f"{r.rel_err:.1e}" if r.rel_err is not None else "—")
            + " | "
            + (f"{r.peak_extra:.2f}" if r.peak_extra is not None else "—")
            + " | "
            + (r.skipped or (f"ran {r.chosen}" if r.chosen else ""))
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot(records: Sequence[Record], path: Path, title: str) -> bool:
    """Log-scale time per case and contender; returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    dtypes = sorted({r.dtype for r in records})
    fig, axes = plt.subplots(len(dtypes), 1, figsize=(12, 4.5 * len(dtypes)), squeeze=False)
    for ax, dtype in zip(axes[:, 0], dtypes):
        recs = [r for r in records if r.dtype == dtype and r.ms is not None]
        labels = list(dict.fromkeys(f"{r.case} [{r.mode}]" for r in recs))
        names = list(dict.fromkeys(r.contender for r in recs))
        for j, name in enumerate(names):
            xs, ys = [], []
            for r in recs:
                if r.contender == name:
                    xs.append(labels.index(f"{r.case} [{r.mode}]"))
                    ys.append(r.ms)
            style = "-o" if name == "trueconv auto" else "."
            ax.plot(xs, ys, style, label=name, markersize=8 if j else 10, linewidth=2)
        ax.set_yscale("log")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("time per call (ms, log)")
        ax.set_title(f"{title} — {dtype}")
        ax.grid(True, which="both", axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(records: Sequence[Record], out_dir: Path, info: dict[str, Any], stem: str) -> list[Path]:
    """Write ``{stem}.md``, ``{stem.lower()}.json`` and (with matplotlib) a ``.png`` plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"trueconv benchmarks ({info.get('device', 'cpu')})"
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem.lower()}.json"]
    payload = {"info": info, "records": [asdict(r) for r in records]}
    paths[0].write_text(to_markdown(records, info, title))
    paths[1].write_text(json.dumps(payload, indent=1) + "\n")
    png = out_dir / f"{stem.lower()}.png"
    if plot(records, png, title):
        paths.append(png)
    return paths
