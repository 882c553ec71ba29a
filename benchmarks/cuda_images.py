"""trueconv on 2-D images on a CUDA device: ``'auto'`` against its own methods and a GPU user's
alternatives, side by side in one process.

    python benchmarks/cuda_images.py [--quick] [--out DIR]

Cells: 1024² and 4096² images, 1 and 3 channels (channel-first), kernels 3..63, random and
Gaussian, float32 and float64, ``'same'`` with zero fill. Contenders, each timed with the device
synchronised around every call (median of interleaved rounds, each in a new random order):

- ``trueconv.convolve`` with ``'auto'`` and with every method it can force
  (:func:`trueconv.method_costs`);
- ``trueconv.convolve_separable`` with the two 1-D factors (Gaussian kernels);
- the flipped kernel through ``F.conv2d`` (cuDNN) in IEEE float32, the precision the signal
  API promises (cuDNN's TF32 default is ~1e-3 off);
- CuPy's ``cupyx.scipy.ndimage.convolve`` and ``cupyx.scipy.signal.fftconvolve`` where CuPy
  is installed.

Printed: per cell the time of 'auto', auto / fastest own method, auto / the fastest
alternative, and 'auto''s pick; then the medians. Every cell checks 'auto' against the flipped
``F.conv2d`` in float64 (relative error). Writes ``cuda_images.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import trueconv
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma
from trueconv.core.torch_internals import cudnn_ieee_float32

try:
    import cupy
    import cupyx.scipy.ndimage as cndi
    import cupyx.scipy.signal as csig
except ImportError:  # pragma: no cover - optional contender
    cupy = None


def timed(fns: dict[str, Any], rounds: int, limit_s: float) -> dict[str, float]:
    """Median seconds per contender over ``rounds`` interleaved rounds; a contender whose
    first call takes over ``limit_s`` is timed once."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    first: dict[str, float] = {}
    for name, fn in fns.items():
        fn()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {n: [first[n]] for n in fns}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for name in order.permutation(list(fns)):
            if first[name] > limit_s:
                continue
            sync()
            t0 = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {n: float(np.median(v)) for n, v in times.items()}


def ieee(fn):
    """``fn`` with cuDNN's float32 convolutions in IEEE precision (the signal API's own
    switch, :func:`trueconv.core.torch_internals.cudnn_ieee_float32`)."""

    @functools.wraps(fn)
    def run():
        with cudnn_ieee_float32():
            return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    dev = torch.device(args.device)
    sizes = [1024] if args.quick else [1024, 4096]
    ks = [3, 7, 31] if args.quick else [3, 5, 7, 11, 15, 31, 63]
    big_ks = [3, 7, 31] if args.quick else [3, 7, 15, 31, 63]
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"{name}; torch {torch.__version__}; trueconv {trueconv.__version__}")
    print(
        "| image | kernel | dtype | auto ms | pick | auto / own best | own best | "
        "auto / best other | best other | err |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for ch in (1, 3):
            for dtype in (torch.float32, torch.float64):
                x64 = torch.from_numpy(rng.standard_normal((ch, n, n)))
                x = x64.to(dev, dtype)
                for k in ks if n <= 1024 else big_ks:
                    for kind in ("gaussian", "random"):
                        g = gaussian(k)
                        kn = np.outer(g, g) if kind == "gaussian" else rng.standard_normal((k, k))
                        kt = torch.from_numpy(kn).to(dev, dtype)
                        w = kt.flip((0, 1))[None, None]
                        pad = k // 2
                        fns: dict[str, Any] = {
                            "auto": functools.partial(trueconv.convolve, x, kt, "same")
                        }
                        methods = [*trueconv.method_costs(x, kt, "same")]
                        for m in methods:
                            fns[m] = functools.partial(trueconv.convolve, x, kt, "same", method=m)
                        if kind == "gaussian":
                            gt = torch.from_numpy(g).to(dev, dtype)
                            fns["separable"] = functools.partial(
                                trueconv.convolve_separable, x, [gt, gt], "same"
                            )
                        fns["cudnn F.conv2d"] = ieee(
                            functools.partial(F.conv2d, x[:, None], w, padding=pad)
                        )
                        if cupy is not None:
                            xc = cupy.from_dlpack(x)
                            kc = cupy.from_dlpack(kt)[None]
                            fns["cupyx ndimage.convolve"] = functools.partial(
                                cndi.convolve, xc, kc, mode="constant"
                            )
                            fns["cupyx fftconvolve"] = functools.partial(
                                csig.fftconvolve, xc, kc, "same"
                            )
                        t = timed(fns, 3 if args.quick else args.rounds, 0.2)
                        own = {m: v for m, v in t.items() if m in [*methods, "separable"]}
                        other = {m: v for m, v in t.items() if m not in own and m != "auto"}
                        best_own = min(own, key=own.__getitem__)
                        best_other = min(other, key=other.__getitem__)
                        ref = F.conv2d(
                            x64.to(dev)[:, None],
                            torch.from_numpy(kn).to(dev).flip((0, 1))[None, None],
                            padding=pad,
                        )[:, 0]
                        out = trueconv.convolve(x, kt, "same").double()
                        err = float((out - ref).abs().max() / ref.abs().max())
                        pick = trueconv.choose_method(x, kt, "same")
                        row = {
                            "auto_own": t["auto"] / own[best_own],
                            "auto_other": t["auto"] / other[best_other],
                            "n": n,
                            "channels": ch,
                            "k": k,
                            "kind": kind,
                            "dtype": str(dtype)[6:],
                            "pick": pick,
                            "times": t,
                            "err": err,
                        }
                        rows.append(row)
                        print(
                            f"| {ch}×{n}² | {kind} {k}² | {row['dtype']} | {t['auto'] * 1e3:.3f} | "
                            f"{pick} | {row['auto_own']:.2f} | {best_own} | "
                            f"{row['auto_other']:.2f} | {best_other} | {err:.1e} |",
                            flush=True,
                        )
    own_r = [r["auto_own"] for r in rows]
    oth_r = [r["auto_other"] for r in rows]
    print(
        f"\nauto / own best: median {np.median(own_r):.2f}, worst {max(own_r):.2f}, "
        f"within 1.10x on {sum(r <= 1.10 for r in own_r)} of {len(own_r)}"
    )
    print(
        f"auto / best alternative (cuDNN, CuPy): median {np.median(oth_r):.2f}, "
        f"worst {max(oth_r):.2f}, at most 1.0x on {sum(r <= 1.0 for r in oth_r)} of {len(oth_r)}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_images.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
