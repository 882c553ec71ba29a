"""Fit the constants of trueconv's cost model from recorded calibration timings.

    python benchmarks/fit_cost.py --measure        # time the calibration grid here, then fit
    python benchmarks/fit_cost.py                  # refit from the recorded results file
    python benchmarks/fit_cost.py --device cuda --measure

``--measure`` times every method variant (direct by the compiled loop, by shift-and-add, by
``F.convNd``, FFT, overlap-add through the public ``trueconv.convolve``; the fused separable loop
through ``trueconv.convolve_separable``) on a grid of problems and records the
fastest times with each problem's operation counts in
``benchmarks/results/calibration-<device>.json``.
The fit then solves, per variant and dtype class, for the constants of ``seconds = calls ·
c_call + units · c_unit + passes · c_pass + aux · c_aux + memory · c_memory`` by non-negative
least squares on the *relative*
error (each row divided by its measured time), and writes ``src/trueconv/core/cost_constants.json``
naming the results file, the machine and the fit's residuals. The counts come from each method's
own ``counts(spec, device)``, so the script restates no formula.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

import trueconv
from trueconv import _plan, calibration
from trueconv._methods import REGISTRY, direct
from trueconv._problem import Problem
from trueconv._spec import normalize
from trueconv.cli.bench_harness import machine_info
from trueconv.core import cost as _cost

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONSTANTS = ROOT.parent / "src" / "trueconv" / "core" / "cost_constants.json"

# (input shape, kernel shape, mode) per variant; sizes span the grid of benchmarks/RESULTS.md
_DIRECT_SMALL = [
    ((2**14,), (3,)),
    ((2**18,), (8,)),
    ((2**20,), (16,)),
    ((2**20,), (48,)),
    ((16, 2**14), (16,)),
    ((256, 256), (3, 3)),
    ((1024, 1024), (3, 3)),
    ((512, 512), (7, 7)),
    ((64, 64, 64), (3, 3, 3)),
    ((48, 48, 48), (5, 5, 5)),
]
_TRANSFORM = [
    ((2**12,), (16,)),
    ((2**16,), (1024,)),
    ((2**20,), (256,)),
    ((2**20,), (4096,)),
    ((2**20,), (65536,)),
    ((64, 16384), (129,)),
    ((256, 256), (31, 31)),
    ((1024, 1024), (15, 15)),
    ((1024, 1024), (127, 127)),
    ((32, 32, 32), (5, 5, 5)),
    ((96, 96, 96), (17, 17, 17)),
    # images where the transforms' arrays leave the caches (and, float64, the heap: page faults)
    ((2048, 2048), (31, 31)),
    ((3, 1024, 1024), (31, 31)),
    ((3, 2048, 2048), (63, 63)),
    ((4096, 4096), (31, 31)),
    ((3, 512, 512), (15, 15)),
]
# F.convNd: trueconv runs it for signal problems only off the CPU (see direct.variant)
_CONV = [
    ((256, 256), (5, 5)),
    ((512, 512), (7, 7)),
    ((1024, 1024), (5, 5)),
    ((256, 256), (15, 15)),
    ((48, 48, 48), (5, 5, 5)),
    ((32, 32, 32), (9, 9, 9)),
]
# the compiled loop (direct.variant 'rows'): also where it meets the transforms
_ROWS_EXTRA = [
    ((1024, 1024), (11, 11)),
    ((1024, 1024), (21, 21)),
    ((2048, 2048), (5, 5)),
    ((4000,), (1000,)),
    ((2**16,), (256,)),
    ((2**20,), (128,)),
    ((96, 96, 96), (7, 7, 7)),
    ((2048, 2048), (15, 15)),
    ((3, 1024, 1024), (15, 15)),
    # 3×3 on both sides of the cache (the crossover with the fused separable loop)
    ((768, 768), (3, 3)),
    ((2048, 2048), (3, 3)),
    ((3, 1024, 1024), (3, 3)),
    ((4096, 4096), (3, 3)),
    # short rows as strips over bands of copied rows (rows.band_rows), 2-D and 3-D
    ((128, 128), (7, 7)),
    ((96, 96, 96), (3, 3, 3)),
    ((96, 96, 96), (5, 5, 5)),
    ((128, 128, 128), (5, 5, 5)),
    ((256, 256, 64), (3, 3, 3)),
]
#: the fused separable loop (``trueconv.convolve_separable``, random factors of these
#: lengths): its crossovers with the dense loop (3-5 taps) and the transforms (31-63 taps),
#: in and out of the cache, batched and in 3-D
_FUSED = [
    ((128, 128), (3, 3)),
    ((256, 256), (3, 3)),
    ((256, 256), (9, 9)),
    ((512, 512), (5, 5)),
    ((512, 512), (15, 15)),
    ((768, 768), (3, 3)),
    ((1024, 1024), (3, 3)),
    ((1024, 1024), (7, 7)),
    ((1024, 1024), (31, 31)),
    ((1024, 1024), (63, 63)),
    ((1024, 1024), (3, 11)),
    ((2048, 2048), (3, 3)),
    ((2048, 2048), (9, 9)),
    ((2048, 2048), (31, 31)),
    ((3, 1024, 1024), (3, 3)),
    ((3, 1024, 1024), (15, 15)),
    ((4096, 4096), (3, 3)),
    ((4096, 4096), (15, 15)),
    ((64, 128, 128), (5, 5)),
]
GRID: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "rows": _DIRECT_SMALL + _CONV + _ROWS_EXTRA,
    "fused": _FUSED,
    "shift_add": _DIRECT_SMALL + _CONV,
    "conv": _CONV,
    "fft": _TRANSFORM,
    # its crossover with the direct sum: long signals, short kernels
    "overlap_add": [
        *_TRANSFORM,
        ((2**20,), (16,)),
        ((2**20,), (48,)),
        ((1024, 1024), (7, 7)),
        ((2048, 2048), (15, 15)),
        # blocks of every FFT length (since 2026-12-06; overlap_add.blocked_dims), and their
        # crossover with the direct loop on a batch of images
        ((2048, 2048), (63, 63)),
        ((3, 1024, 1024), (15, 15)),
    ],
}
#: GPUs: the CPU grid is mostly launch-bound there, so larger problems pin the per-unit costs
_GPU_DIRECT = [
    ((2**24,), (16,)),
    ((64, 2**18), (33,)),
    ((4096, 4096), (3, 3)),
    ((4096, 4096), (7, 7)),
    ((256, 256, 256), (3, 3, 3)),
]
_GPU_CONV = [
    ((4096, 4096), (15, 15)),
    ((2048, 2048), (31, 31)),
    ((2**22,), (255,)),
    ((128, 128, 128), (9, 9, 9)),
]
_GPU_TRANSFORM = [
    ((2**24,), (4096,)),
    ((2**24,), (2**18,)),
    ((64, 2**18), (1025,)),
    ((4096, 4096), (63, 63)),
    ((2048, 2048), (255, 255)),
    ((256, 256, 256), (17, 17, 17)),
]
GPU_EXTRA: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "shift_add": _GPU_DIRECT,
    "conv": _GPU_DIRECT + _GPU_CONV,
    "fft": _GPU_TRANSFORM,
    "overlap_add": _GPU_TRANSFORM,
}
MODES = ("full", "same")
_DIRECT_VARIANTS = ("rows", "shift_add", "conv")

#: NN layers, ``(function, input shape, weight shape)``, all ``padding='same'``, both methods
#: (direct = flipped ``F.convNd``, fft = channel mixing); spans few/many channels and kernels on
#: both sides of the crossover
_NN: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
    # small layers pin the per-call costs
    ("conv1d", (1, 1, 256), (1, 1, 3)),
    ("conv1d", (1, 1, 4096), (1, 1, 31)),
    ("conv2d", (1, 1, 32, 32), (1, 1, 3, 3)),
    ("conv2d", (1, 1, 64, 64), (1, 1, 15, 15)),
    ("conv2d", (1, 4, 32, 32), (4, 4, 5, 5)),
    ("conv2d", (2, 8, 16, 16), (8, 8, 7, 7)),
    ("conv3d", (1, 2, 8, 8, 8), (2, 2, 3, 3, 3)),
    *(("conv1d", (8, 16, 4096), (16, 16, k)) for k in (15, 63, 127, 255)),
    *(("conv2d", (4, 16, 64, 64), (16, 16, k, k)) for k in (3, 7, 11, 15, 21)),
    *(("conv2d", (1, 3, 256, 256), (16, 3, k, k)) for k in (5, 11, 21, 31)),
    ("conv2d", (8, 32, 64, 64), (64, 32, 3, 3)),
    *(("conv2d", (4, 32, 96, 96), (32, 32, k, k)) for k in (3, 7, 11)),
    ("conv2d", (16, 32, 128, 128), (64, 32, 3, 3)),
    ("conv1d", (8, 64, 4096), (64, 64, 31)),
    ("conv2d", (4, 64, 32, 32), (64, 64, 5, 5)),
    ("conv2d", (2, 32, 128, 128), (32, 32, 9, 9)),
    *(("conv3d", (2, 8, 24, 24, 24), (8, 8, k, k, k)) for k in (3, 5, 7, 9)),
    ("conv_transpose2d", (4, 16, 64, 64), (16, 16, 7, 7)),
    ("conv_transpose2d", (4, 16, 64, 64), (16, 16, 15, 15)),
]
NN_GRID = {"nn_direct": _NN, "nn_fft": _NN}
#: direct NN layers slower than this (estimated from a crude rate) are not timed: far past the
#: crossover, where they add minutes and nothing to the fit
_NN_DIRECT_MAX_S = 3.0
_NN_DIRECT_RATE = {"float32": 2e10, "float64": 4e9}  # MAC/s, rough, 2-core CPU


def _nn_call(fname: str, x: torch.Tensor, w: torch.Tensor, method: str) -> Any:
    kwargs: dict[str, Any] = {"method": method}
    if not fname.startswith("conv_transpose"):
        kwargs["padding"] = "same"
    return functools.partial(getattr(trueconv, fname), x, w, **kwargs)


def _nn_spec(fname: str, x_shape: Any, w_shape: Any, dtype: torch.dtype) -> Any:
    from trueconv.nn._spec import normalize_conv, normalize_conv_transpose

    x = torch.zeros((), dtype=dtype).expand(tuple(x_shape))
    w = torch.zeros((), dtype=dtype).expand(tuple(w_shape))
    nd = len(w_shape) - 2
    if fname.startswith("conv_transpose"):
        return normalize_conv_transpose(fname, nd, x, w, None, 1, 0, 0, 1, 1, "auto")[3]
    return normalize_conv(fname, nd, x, w, None, 1, "same", 1, 1, "zeros", "auto")[3]


def _problems(
    device: str, dtypes: list[torch.dtype], variants: list[str]
) -> Iterator[tuple[str, Any]]:
    for variant, layers in NN_GRID.items():
        if variant not in variants:
            continue
        for fname, x_shape, w_shape in layers:
            for dtype in dtypes:
                if variant == "nn_direct":
                    c = count(variant, x_shape, w_shape, fname, dtype, device)
                    assert c is not None
                    rate = _NN_DIRECT_RATE[str(dtype).removeprefix("torch.")]
                    if c.units / rate > _NN_DIRECT_MAX_S:
                        continue
                yield variant, (x_shape, w_shape, fname, dtype)
    for variant, grid_shapes in GRID.items():
        if variant not in variants or (variant == "conv" and device == "cpu"):
            continue  # conv never runs for signal problems on the CPU (direct.variant)
        if variant in ("rows", "fused") and device != "cpu":
            continue  # the compiled loops are CPU-only
        shapes = grid_shapes + (GPU_EXTRA[variant] if device != "cpu" else [])
        for x_shape, k_shape in shapes:
            for mode in MODES:
                for dtype in dtypes:
                    if count(variant, x_shape, k_shape, mode, dtype, device) is not None:
                        yield variant, (x_shape, k_shape, mode, dtype)


def _time(fn: Any, min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()  # warm-up: plans, kernel selection, allocator
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    if first > 2.0:
        return first
    # the fastest block, as `trueconv calibrate` keeps the fastest call: on a shared machine
    # other tenants only ever add time (the median moved single rows by 1.4x between runs)
    return min(
        Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        .blocked_autorange(min_run_time=min_run_time)
        .times
    )


def count(
    variant: str, x_shape: Any, k_shape: Any, mode: str, dtype: torch.dtype, device: str
) -> _cost.Counts | None:
    """The operation counts of one calibration problem, from the method's own plan (shapes
    only: zero-stride operands, nothing allocated); ``None`` where the method declines the
    problem (overlap-add with no dim worth blocking runs the FFT method: its time says nothing
    about overlap-add). NN rows carry the function name in ``mode``."""
    if variant in NN_GRID:
        from trueconv.nn import _plan as nn_plan

        spec = _nn_spec(mode, x_shape, k_shape, dtype)
        return nn_plan.counts(spec, variant.removeprefix("nn_"), device)
    x = torch.zeros((), dtype=dtype).expand(tuple(x_shape))
    k = torch.zeros((), dtype=dtype).expand(tuple(k_shape))
    method = "direct" if variant in _DIRECT_VARIANTS else variant
    if variant == "fused":
        return calibration.fused_counts(x_shape, k_shape, mode, dtype)
    _, _, spec = normalize("convolve", x, k, mode, None, method, "fill", 0)
    problem, dev = Problem.of(spec), torch.device(device)
    if variant in _DIRECT_VARIANTS:
        return direct.plan(problem, dev, use=variant).counts
    planned = REGISTRY[method].plan(problem, dev)
    return None if planned is None else planned.counts


def recount(rows: list[dict[str, Any]], device: str) -> None:
    """Recompute every recorded row's counts with the current code (after a change to a
    method's counts), keeping the measured seconds; drop the rows the method now declines."""
    kept = []
    for r in rows:
        c = count(
            r["variant"], r["x_shape"], r["k_shape"], r["mode"], getattr(torch, r["dtype"]), device
        )
        if c is not None:
            r.update(calls=c.calls, units=c.units, passes=c.passes, aux=c.aux, memory=c.memory)
            kept.append(r)
    rows[:] = kept


def measure(
    device: str, dtypes: list[torch.dtype], min_run_time: float, variants: list[str]
) -> list[dict[str, Any]]:
    rows = []
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    for variant, (x_shape, k_shape, mode, dtype) in _problems(device, dtypes, variants):
        x = torch.randn(x_shape, generator=gen, dtype=torch.float64).to(dev, dtype)
        k = torch.randn(k_shape, generator=gen, dtype=torch.float64).to(dev, dtype)
        method = "direct" if variant in _DIRECT_VARIANTS else variant
        c = count(variant, x_shape, k_shape, mode, dtype, device)
        assert c is not None  # _problems yields the problems the method plans
        if variant in NN_GRID:
            forced = contextlib.nullcontext()
            call = _nn_call(mode, x, k, variant.removeprefix("nn_"))
        elif variant in _DIRECT_VARIANTS:
            forced = mock.patch.object(direct, "variant", lambda *a, v=variant: v)
        else:
            forced = mock.patch.object(direct, "variant", direct.variant)
        if variant == "fused":
            call = calibration.fused_call(x, k, mode)
        elif variant not in NN_GRID:
            call = functools.partial(trueconv.convolve, x, k, mode, method=method)
        with forced, torch.no_grad():
            _plan.forget()  # plans are cached per problem: made again under the forced variant
            seconds = _time(call, min_run_time)
        _plan.forget()
        row = {
            "variant": variant,
            "x_shape": list(x_shape),
            "k_shape": list(k_shape),
            "mode": mode,
            "dtype": str(dtype).removeprefix("torch."),
            "calls": c.calls,
            "units": c.units,
            "passes": c.passes,
            "aux": c.aux,
            "memory": c.memory,
            "seconds": seconds,
        }
        print(
            f"{variant:12s} {mode:5s} {row['dtype']:8s} {x_shape} * {k_shape}: "
            f"{seconds * 1e3:.3f} ms"
        )
        rows.append(row)
    return rows


def fit(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per (dtype class, variant): non-negative least squares on relative error, as
    ``trueconv calibrate`` fits (:func:`trueconv.calibration.fit`)."""
    return calibration.fit(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true", help="time the grid here first")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--min-run-time", type=float, default=0.1)
    parser.add_argument("--results", type=Path, help="calibration results file to fit")
    parser.add_argument(
        "--recount",
        action="store_true",
        help="recompute the recorded rows' operation counts with the current code first",
    )
    parser.add_argument("--constants", type=Path, default=CONSTANTS)
    variants = [*GRID, *NN_GRID]
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=variants,
        default=variants,
        help="with --measure: time only these, keeping the recorded rows of the others",
    )
    args = parser.parse_args()

    results = args.results or RESULTS / f"calibration-{args.device}.json"
    if args.measure:
        dtypes = [getattr(torch, d) for d in args.dtypes]
        rows = measure(args.device, dtypes, args.min_run_time, args.variants)
        if set(args.variants) != set(variants) and results.exists():
            kept = json.loads(results.read_text())["rows"]
            rows = [r for r in kept if r["variant"] not in args.variants] + rows
        RESULTS.mkdir(parents=True, exist_ok=True)
        payload = {"info": machine_info(args.device), "rows": rows}
        results.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {results}")
    recorded = json.loads(results.read_text())
    if args.recount:
        recount(recorded["rows"], args.device)
        results.write_text(json.dumps(recorded, indent=1) + "\n")
    table, quality = fit(recorded["rows"])

    current = {"devices": {}, "sources": {}}
    if args.constants.exists():
        current = json.loads(args.constants.read_text())
    try:
        source = str(results.resolve().relative_to(ROOT.parent))
    except ValueError:
        source = str(results)
    current["devices"][args.device] = {"source": source, **table}
    current["sources"][args.device] = {
        "results": source,
        "machine": recorded["info"],
        "fitted": time.strftime("%Y-%m-%d"),
        "model": "seconds = calls * <variant>_call + units * <variant>_<unit> "
        "+ passes * <variant>_pass + aux * <variant>_aux + memory * <variant>_memory; "
        "units: elem (shift_add: taps * outputs), mac (rows, fused, conv, nn_direct), work (fft, "
        "overlap_add, nn_fft: transforms * P log2 P); passes: rows' and fused's output "
        "samples, the transforms' elements moved; aux: rows' and fused's passes over output "
        "row tiles, nn_fft's "
        "complex channel-mixing multiply-adds, nn_direct's im2col elements; memory: input "
        "and output samples past core.cost.CACHE_BYTES; complex data "
        "scale units by "
        "core.cost.COMPLEX_FACTOR (unfitted)",
        "fit quality": quality,
    }
    args.constants.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.constants}")
    for name, q in quality.items():
        print(
            f"  {name:22s} median |log2 err| {q['median |log2(pred/measured)|']:.2f}, "
            "pred/measured in [{:.2f}, {:.2f}]".format(*q["worst pred/measured"])
        )


if __name__ == "__main__":
    main()
