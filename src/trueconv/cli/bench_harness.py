"""Side-by-side benchmarks: trueconv against scipy, numpy, OpenCV and plain torch, in one process.

This is the harness behind ``trueconv bench`` and the scripts in ``benchmarks/``. For every case
of a grid (shapes × kernel × mode × dtype) it times each *contender* — trueconv's ``'auto'`` and
each of its methods, ``scipy.signal.convolve`` / ``fftconvolve`` / ``oaconvolve``,
``np.convolve``, the ``torch.fft.rfftn`` product and the flip + ``F.convNd`` a user writes by
hand, and where they apply ``cv2.filter2D`` / ``cv2.sepFilter2D``, kornia's ``filter2d``, JAX's
``jax.scipy.signal.convolve`` and astropy's ``convolve_fft`` — checks every result against a
float64 reference, and measures the peak extra memory of trueconv's transform methods. Timing
uses ``torch.utils.benchmark.Timer`` (which synchronises CUDA) and reports the best of
interleaved rounds of medians.

Only torch and numpy are needed: each other library is optional, and its contenders are left
out when it does not import (:func:`missing_optional` says which). The reference is scipy's
``fftconvolve`` when scipy is installed, else a float64 ``numpy.fft`` product
(:func:`numpy_fftconvolve`); neither is trueconv's or torch's code.

Contenders whose direct work is estimated above the time budget are skipped, and the skip is
reported with its estimate rather than hidden.

The machine may be shared: around each cell's timing rounds (one case, mode and dtype) the
harness reads how much CPU other processes took (their user and system time plus the
hypervisor's steal, in percent of one core; with psutil, else from ``/proc/stat``). A cell that
saw more than ``busy_percent`` is timed again, up to ``retries`` times, each contender keeping
its best time, and a cell that stays busy is marked ``disturbed`` in its records' ``extra``.

On a CUDA device the competitors are those a GPU user has: CuPy's ``cupyx.scipy.signal``
(``convolve``, ``fftconvolve``, ``oaconvolve``; when CuPy is installed), the same
``torch.fft.rfftn`` product, and flip + ``F.convNd`` (cuDNN, in its default TF32 precision for
float32, as a user gets it: its error column shows what that costs). Peak memory there is
``torch.cuda.max_memory_allocated`` beyond what was allocated before the call.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import importlib
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

#: the kernels a case may use: random normal entries, a separable 2-D kernel built from 1-D
#: factors (see :func:`kernel_factors`), or a Laplacian of Gaussian (rank 2:
#: :func:`kernel_values`)
KERNELS = ("random", "gaussian", "box", "sobel", "log")


@dataclass(frozen=True)
class Case:
    """One benchmark problem. ``kind='signal'``: ``convolve(x, k, mode)`` with ``k`` applied
    along the trailing dims (leading dims of ``x`` broadcast); ``kind='nn'``:
    ``conv2d(x, w, padding='same')``. ``kernel``: ``'random'`` (normal entries), a separable
    2-D kernel, ``'gaussian'``, ``'box'`` or ``'sobel'`` (3×3), whose 1-D factors are given to
    the contenders that take them (``cv2.sepFilter2D``), or ``'log'``, a 2-D Laplacian of
    Gaussian (rank 2: what 'auto' runs as two separable terms)."""

    name: str
    x_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    kind: str = "signal"
    modes: tuple[str, ...] = ("full", "same")
    kernel: str = "random"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"Case {self.name!r}: kernel must be one of {KERNELS}")
        if self.kernel != "random" and (self.kind != "signal" or len(self.k_shape) != 2):
            raise ValueError(f"Case {self.name!r}: a {self.kernel} kernel is a 2-D signal kernel")
        if self.kernel == "sobel" and self.k_shape != (3, 3):
            raise ValueError(f"Case {self.name!r}: the Sobel kernel is 3×3")

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
    Case("2-D 1024^2 * box 5^2", (1024, 1024), (5, 5), kernel="box"),
    Case("2-D 1024^2 * Sobel 3^2", (1024, 1024), (3, 3), kernel="sobel"),
    Case("2-D 2048^2 * Gaussian 7^2", (2048, 2048), (7, 7), kernel="gaussian"),
    Case("2-D 4096^2 * Gaussian 15^2", (4096, 4096), (15, 15), kernel="gaussian"),
    # a low-rank image filter (rank 2), 'same' only as the image filters give
    Case("2-D 2048^2 * LoG 15^2", (2048, 2048), (15, 15), modes=("same",), kernel="log"),
    Case("3 x 2048^2 * 3^2", (3, 2048, 2048), (3, 3)),
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
    # the image filters' case: 'same' only, as OpenCV gives
    Case("2-D 256^2 * Gaussian 7^2", (256, 256), (7, 7), modes=("same",), kernel="gaussian"),
    Case("3-D 32^3 * 5^3", (32, 32, 32), (5, 5, 5)),
    Case("NN 4x8x32^2 * 8x8x3^2", (4, 8, 32, 32), (8, 8, 3, 3), "nn", ("same",)),
)


@dataclass
class Record:
    """One contender on one case: median time, error against the float64 reference, memory.

    ``extra`` holds, for a timed contender, ``other_cpu_percent`` (other processes' CPU use
    during its cell's timing, in percent of one core; None where not measured), ``disturbed``
    (still above the busy threshold after the retries) and ``attempts`` (timing passes run)."""

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


# ---------------------------------------------------------------------------- optional packages

#: the optional libraries behind contenders: label -> (modules to import, the contenders they
#: give, how to install, the devices those contenders run on)
_OPTIONAL: dict[str, tuple[tuple[str, ...], str, str, tuple[str, ...]]] = {
    "scipy": (
        ("scipy", "scipy.signal"),
        "scipy convolve/fftconvolve/oaconvolve",
        'pip install "trueconv[bench]"',
        ("cpu",),
    ),
    "opencv": (
        ("cv2",),
        "cv2 filter2D/sepFilter2D",
        "pip install opencv-python-headless",
        ("cpu",),
    ),
    "kornia": (("kornia", "kornia.filters"), "kornia filter2d", "pip install kornia", ("cpu",)),
    "jax": (("jax", "jax.scipy.signal"), "jax convolve", "pip install jax", ("cpu",)),
    "astropy": (
        ("astropy", "astropy.convolution"),
        "astropy convolve_fft",
        "pip install astropy",
        ("cpu",),
    ),
    "cupy": (
        ("cupy", "cupyx.scipy.signal"),
        "cupyx convolve/fftconvolve/oaconvolve",
        "pip install cupy-cuda12x",
        ("cuda",),
    ),
}


def _import(*names: str) -> tuple[Any, ...] | None:
    """The modules ``names``, imported in order; None when any of them fails to import, for
    whatever reason (absent, or present but broken: a library that does not load is as good
    as not installed here)."""
    try:
        return tuple(importlib.import_module(name) for name in names)
    except Exception:
        return None


def _optional(label: str) -> tuple[Any, ...] | None:
    """The modules of the optional library ``label`` (a key of ``_OPTIONAL``), or None."""
    mods = _import(*_OPTIONAL[label][0])
    if mods is not None and label == "jax":
        try:  # float64 arrays stay float64 (JAX's default truncates them to float32)
            mods[0].config.update("jax_enable_x64", True)
        except Exception:
            return None
    return mods


def missing_optional(device: str = "cpu") -> list[str]:
    """One line per optional library that does not import, for the contenders on ``device``
    that it would have given, e.g. ``scipy not installed: skipping scipy convolve/... (pip
    install "trueconv[bench]")``."""
    dtype = torch.device(device).type
    return [
        f"{label} not installed: skipping {contenders} ({install})"
        for label, (_, contenders, install, devices) in _OPTIONAL.items()
        if dtype in devices and _optional(label) is None
    ]


# -------------------------------------------------------------------------------------- kernels


def next_smooth_len(n: int) -> int:
    """The smallest 7-smooth integer ``>= n`` (of the form ``2^a 3^b 5^c 7^d``), the rule of
    thumb a user applies to FFT lengths (pocketfft, MKL and cuFFT all have kernels for these
    radices); trueconv's own rule is :func:`trueconv.core.transforms.next_fast_len`.

    >>> [next_smooth_len(n) for n in (1, 11, 13, 17, 1031)]
    [1, 12, 14, 18, 1050]
    """
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def gaussian_taps(k: int) -> np.ndarray:
    """A normalised ``k``-tap Gaussian (float64) with OpenCV's default sigma for that size,
    ``0.3 * ((k - 1) / 2 - 1) + 0.8`` (what ``cv2.getGaussianKernel(k, 0)`` computes, beyond
    the few tap counts for which OpenCV has fixed tables)."""
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / sigma) ** 2)
    return g / g.sum()


def kernel_factors(kernel: str, k_shape: Sequence[int]) -> list[np.ndarray] | None:
    """The 1-D float64 factors of a separable 2-D kernel, one per dim: the kernel is
    ``np.multiply.outer(*factors)``; None for ``'random'`` and ``'log'`` (not separable).

    ``'gaussian'``: :func:`gaussian_taps` per dim; ``'box'``: ``ones(k) / k``; ``'sobel'``
    (3×3): ``[1, 2, 1]`` down the rows times ``[1, 0, -1]`` along them (the x derivative).
    """
    if kernel == "random":
        return None
    if kernel == "gaussian":
        return [gaussian_taps(k) for k in k_shape]
    if kernel == "box":
        return [np.full(k, 1.0 / k) for k in k_shape]
    if kernel == "sobel" and tuple(k_shape) == (3, 3):
        return [np.array([1.0, 2.0, 1.0]), np.array([1.0, 0.0, -1.0])]
    if kernel == "log":
        return None  # rank 2: no single pair of factors
    raise ValueError(f"no {kernel!r} kernel of shape {tuple(k_shape)}")


def kernel_values(kernel: str, k_shape: Sequence[int]) -> np.ndarray | None:
    """The float64 values of a case's kernel, None for ``'random'`` (drawn per dtype).

    Separable kernels: the outer product of :func:`kernel_factors`. ``'log'``: the Laplacian
    of Gaussian ``-(1 - q) exp(-q)``, ``q = sum_d t_d² / (2 σ_d²)`` with ``t_d`` the tap's
    offset from the centre and ``σ_d = k_d / 6`` (the kernel reaches three sigmas), scaled
    to unit sum of magnitudes: rank 2 (``exp(-q)`` is separable and ``1 - q`` is a sum of two
    per-dim terms)."""
    factors = kernel_factors(kernel, k_shape)
    if factors is not None:
        return np.asarray(np.multiply.outer(*factors), dtype=np.float64)
    if kernel != "log":
        return None
    offsets = [(np.arange(k) - (k - 1) / 2) / (k / 6) for k in k_shape]
    q = sum(np.meshgrid(*[t * t / 2 for t in offsets], indexing="ij"))
    values = -(1 - q) * np.exp(-q)
    return np.asarray(values / np.abs(values).sum(), dtype=np.float64)


def _mode_window(
    n_shape: Sequence[int], k_shape: Sequence[int], mode: str
) -> tuple[list[int], list[int]]:
    """Per dim, where the ``mode`` output starts in the full convolution, and its length
    (scipy's convention: ``'same'`` is centred, starting at ``(k - 1) // 2``)."""
    if mode == "full":
        return [0] * len(k_shape), [n + k - 1 for n, k in zip(n_shape, k_shape)]
    if mode == "same":
        return [(k - 1) // 2 for k in k_shape], list(n_shape)
    if mode == "valid":
        return [k - 1 for k in k_shape], [n - k + 1 for n, k in zip(n_shape, k_shape)]
    raise ValueError(f"unknown mode {mode!r}")


def numpy_fftconvolve(a: np.ndarray, b: np.ndarray, mode: str = "full", nd: int = 0) -> np.ndarray:
    """``a`` convolved with ``b`` over their trailing ``nd`` dims (all of ``b``'s by default;
    leading dims broadcast), by a float64 ``numpy.fft`` product at 7-smooth lengths and sliced
    to ``mode`` like ``scipy.signal.fftconvolve``: the reference where scipy is missing."""
    nd = nd or b.ndim
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    axes = list(range(-nd, 0))
    full = [a.shape[ax] + b.shape[ax] - 1 for ax in axes]
    lens = [next_smooth_len(m) for m in full]
    spec = np.fft.rfftn(a, lens, axes) * np.fft.rfftn(b, lens, axes)
    y = np.fft.irfftn(spec, lens, axes)
    starts, keep = _mode_window(a.shape[-nd:], b.shape[-nd:], mode)
    window: tuple[Any, ...] = (..., *(slice(s, s + n) for s, n in zip(starts, keep)))
    return y[window]


# ---------------------------------------------------------------------------------- contenders


def _torch_rfftn(x: torch.Tensor, k: torch.Tensor, mode: str) -> Callable[[], torch.Tensor]:
    """The FFT convolution a competent torch user writes by hand, on any device:
    ``torch.fft.rfftn`` of both operands at 7-smooth lengths over the kernel's dims, their
    product, ``irfftn``, and a slice to ``mode``."""
    nd = k.ndim
    dims = list(range(-nd, 0))
    lens = [next_smooth_len(n + kk - 1) for n, kk in zip(x.shape[-nd:], k.shape)]
    starts, keep = _mode_window(x.shape[-nd:], k.shape, mode)

    def torch_rfftn() -> torch.Tensor:
        spec = torch.fft.rfftn(x, s=lens, dim=dims) * torch.fft.rfftn(k, s=lens, dim=dims)
        y = torch.fft.irfftn(spec, s=lens, dim=dims)
        for d, s0, n in zip(dims, starts, keep):
            y = y.narrow(d, s0, n)
        return y

    return torch_rfftn


def _image_contenders(
    case: Case, mode: str, xn: np.ndarray, kn: np.ndarray, factors: list[np.ndarray] | None
) -> dict[str, Callable[[], Any]]:
    """The 2-D image filters, where they apply: 'same' with zero fill, odd kernels, float32 or
    float64. OpenCV and kornia correlate, so they get the flipped kernel (reversed factors for
    ``sepFilter2D``), anchored at its centre; leading dims of ``x`` are looped over (OpenCV)
    or batched (kornia)."""
    out: dict[str, Callable[[], Any]] = {}
    if (
        len(case.k_shape) != 2
        or mode != "same"
        or any(kk % 2 == 0 for kk in case.k_shape)
        or xn.dtype not in (np.float32, np.float64)
    ):
        return out
    kh, kw = case.k_shape
    flipped = np.ascontiguousarray(kn[::-1, ::-1])
    planes = xn.reshape(-1, *xn.shape[-2:])
    cv = _optional("opencv")
    if cv is not None:
        (cv2,) = cv
        anchor, border = (kw // 2, kh // 2), cv2.BORDER_CONSTANT

        def per_plane(filt: Callable[..., np.ndarray]) -> Callable[[], np.ndarray]:
            if xn.ndim == 2:
                return lambda: filt(xn)

            def looped() -> np.ndarray:
                y = np.empty_like(planes)
                for p, dst in zip(planes, y):
                    filt(p, dst)
                return y.reshape(xn.shape)

            return looped

        out["cv2 filter2D"] = per_plane(
            lambda src, dst=None: cv2.filter2D(
                src, -1, flipped, dst=dst, anchor=anchor, borderType=border
            )
        )
        if factors is not None:
            fy, fx = (np.ascontiguousarray(f[::-1], dtype=xn.dtype) for f in factors)
            out["cv2 sepFilter2D"] = per_plane(
                lambda src, dst=None: cv2.sepFilter2D(
                    src, -1, fx, fy, dst=dst, anchor=anchor, borderType=border
                )
            )
    kornia = _optional("kornia")
    if kornia is not None:
        filter2d = kornia[1].filter2d
        xt = torch.from_numpy(planes).unsqueeze(1)
        kt = torch.from_numpy(flipped).unsqueeze(0)
        out["kornia filter2d"] = lambda: filter2d(
            xt, kt, border_type="constant", normalized=False, padding="same"
        ).reshape(xn.shape)
    return out


def _cpu_library_contenders(
    case: Case, mode: Any, xn: np.ndarray, kn: np.ndarray, factors: list[np.ndarray] | None
) -> dict[str, Callable[[], Any]]:
    """The CPU libraries that are installed: scipy, numpy (1-D), OpenCV, kornia, JAX, astropy."""
    out: dict[str, Callable[[], Any]] = {}
    kfull = kn.reshape((1,) * (xn.ndim - kn.ndim) + kn.shape)  # scipy wants equal ndim
    scipy = _optional("scipy")
    if scipy is not None:
        ss = scipy[1]
        out["scipy convolve"] = lambda: ss.convolve(xn, kfull, mode)
        out["scipy fftconvolve"] = lambda: ss.fftconvolve(xn, kfull, mode)
        out["scipy oaconvolve"] = lambda: ss.oaconvolve(xn, kfull, mode)
    if xn.ndim == 1:
        out["numpy convolve"] = lambda: np.convolve(xn, kn, mode)
    out.update(_image_contenders(case, mode, xn, kn, factors))
    jax = _optional("jax")
    if jax is not None:
        jx, js = jax
        cpu = jx.devices("cpu")[0]
        xj, kj = jx.device_put(xn, cpu), jx.device_put(kfull, cpu)
        out["jax convolve"] = lambda: js.convolve(xj, kj, mode).block_until_ready()
    astropy = _optional("astropy")
    if astropy is not None and mode == "same" and all(kk % 2 for kk in case.k_shape):
        convolve_fft = astropy[1].convolve_fft
        # zero fill, the kernel as given; the inputs hold no NaN, and nan_treatment='fill'
        # spares the weight image that 'interpolate' (the default) transforms besides
        out["astropy convolve_fft"] = lambda: convolve_fft(
            xn,
            kfull,
            boundary="fill",
            fill_value=0.0,
            normalize_kernel=False,
            nan_treatment="fill",
        )
    return out


def _signal_contenders(
    case: Case,
    mode: Any,
    x: torch.Tensor,
    k: torch.Tensor,
    factors: list[np.ndarray] | None = None,
) -> dict[str, Callable[[], Any]]:
    nd = len(case.k_shape)
    out: dict[str, Callable[[], Any]] = {
        "trueconv auto": lambda: trueconv.convolve(x, k, mode),
    }
    method: Any
    for method in sorted(m for m in METHODS if m != "auto"):
        out[f"trueconv {method}"] = functools.partial(trueconv.convolve, x, k, mode, method=method)
    if x.device.type == "cpu" and x.dtype != torch.bfloat16:  # numpy has no bfloat16
        out.update(_cpu_library_contenders(case, mode, x.numpy(), k.numpy(), factors))
    if x.device.type == "cuda":
        out.update(_gpu_contenders(case, mode, x, k))
    out["torch rfftn"] = _torch_rfftn(x, k, mode)
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
    """What a GPU user has besides trueconv and torch: CuPy's scipy.signal."""
    out: dict[str, Callable[[], Any]] = {}
    mods = _optional("cupy")
    if mods is not None:
        cupy, cs = mods
        xc, kc = cupy.from_dlpack(x), cupy.from_dlpack(k)
        kc = kc.reshape((1,) * (x.ndim - k.ndim) + kc.shape)
        out["cupyx convolve"] = lambda: cs.convolve(xc, kc, mode)
        out["cupyx fftconvolve"] = lambda: cs.fftconvolve(xc, kc, mode)
        out["cupyx oaconvolve"] = lambda: cs.oaconvolve(xc, kc, mode)
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


#: contenders whose work is the direct sum (skipped above the time budget)
_DIRECT = (
    "trueconv direct",
    "torch flip+conv",
    "numpy convolve",
    "jax convolve",
    "kornia filter2d",
)

#: contenders called once before their first checked call, as on CUDA: JAX compiles each new
#: shape on its first call; trueconv's direct loop is compiled (or loaded from numba's cache:
#: 0.7 s) at its first call in a process, and a first call over the budget is the cell's time
#: (the first cell of a run once recorded 9.8 s for a 0.5 ms call)
_WARM_UP = ("jax convolve", "trueconv auto", "trueconv direct")


#: the failures a trueconv contender may meet on a case (any other exception is a bug, and
#: propagates)
_FAILURES: tuple[type[Exception], ...] = (RuntimeError, MemoryError, ValueError)


def _is_direct(name: str) -> bool:
    return name in _DIRECT


# ------------------------------------------------------------------------------------ measuring


def _time_ms(fn: Callable[[], Any], min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return float(timer.blocked_autorange(min_run_time=min_run_time).median * 1e3)


def load_source() -> str | None:
    """Where other processes' CPU use is read from: ``'psutil'``, ``'/proc/stat'`` (Linux
    without psutil), or None where it cannot be measured."""
    if _import("psutil") is not None:
        return "psutil"
    if os.path.exists("/proc/stat"):
        return "/proc/stat"
    return None


def _cpu_counters() -> tuple[float, float, float] | None:
    """``(wall seconds, CPU seconds used by all processes so far, those of this process)``.

    All processes: user (``nice`` included) and system time of every CPU, plus ``steal`` (time
    the hypervisor gave our virtual CPUs to other machines), from psutil or ``/proc/stat``.
    This process: ``os.times()``, all its threads. None where neither source exists.
    """
    mine = os.times()
    psutil = _import("psutil")
    if psutil is not None:
        t = psutil[0].cpu_times()
        taken = t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "steal", 0.0)
    else:
        try:
            with open("/proc/stat") as fh:
                fields = fh.readline().split()
            # cpu user nice system idle iowait irq softirq steal ..., in clock ticks
            ticks = [int(v) for v in fields[1:9]]
            taken = (ticks[0] + ticks[1] + ticks[2] + ticks[7]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AttributeError):
            return None
    return time.perf_counter(), float(taken), mine.user + mine.system


#: intervals shorter than this count as this long when turning CPU time into a load: CPU times
#: come in 10 ms ticks, and one stray tick over 20 ms would read as half a core
_MIN_LOAD_INTERVAL = 0.2


def other_cpu_percent(
    start: tuple[float, float, float] | None, end: tuple[float, float, float] | None
) -> float | None:
    """Percent of one core that other processes (and the hypervisor's steal) took between two
    :func:`_cpu_counters` readings; None where either is missing."""
    if start is None or end is None:
        return None
    wall = max(end[0] - start[0], _MIN_LOAD_INTERVAL)
    others = (end[1] - start[1]) - (end[2] - start[2])
    return max(0.0, 100.0 * others / wall)


def busy_cells(records: Sequence[Record]) -> tuple[int, int]:
    """``(disturbed, measured)``: how many (case, mode, dtype) cells stayed above the busy
    threshold after their retries, of those whose load was measured."""
    cells: dict[tuple[str, str, str], bool] = {}
    for r in records:
        if r.extra.get("other_cpu_percent") is not None:
            key = (r.case, r.mode, r.dtype)
            cells[key] = cells.get(key, False) or bool(r.extra.get("disturbed"))
    return sum(cells.values()), len(cells)


def busy_warning() -> str | None:
    """A warning line when the 1-minute load average is already at half the cores or more
    before the benchmark starts; None on a quiet machine or where it cannot be read."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    if load < cores / 2:
        return None
    return (
        f"warning: load average {load:.2f} on {cores} cores: the machine is already busy, "
        "timings will be noisy; rerun on a quiet machine or with --threads 1"
    )


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
    elif type(y).__module__.startswith("cupy"):
        y = y.get()
    y = np.asarray(y)
    if y.shape != ref.shape:
        return float("nan")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(y.astype(np.float64) - ref).max() / scale)


def reference_source() -> str:
    """What computes the float64 reference: scipy where it imports, else numpy's FFT."""
    return "scipy.signal.fftconvolve" if _optional("scipy") is not None else "numpy.fft"


def _reference(case: Case, mode: str, x: torch.Tensor, k: torch.Tensor) -> np.ndarray:
    """float64 reference from scipy's ``fftconvolve`` or, without scipy, from
    :func:`numpy_fftconvolve`: code that is neither trueconv's nor torch's.

    NN cases (``conv2d(x, w, padding='same')``, odd kernels): per sample, the sum over input
    channels of the full convolutions of ``x[b, c]`` with ``w[o, c]``, sliced like torch's
    'same' (from ``k // 2`` of the full convolution). One sample at a time keeps the float64
    spectra small.
    """
    scipy = _optional("scipy")
    xn = x.double().cpu().numpy()
    kn = k.double().cpu().numpy()
    if case.kind == "nn":
        kh, kw = kn.shape[-2:]
        h, w = xn.shape[-2:]
        out = np.empty((xn.shape[0], kn.shape[0], h, w))
        if scipy is None:
            lens = [next_smooth_len(h + kh - 1), next_smooth_len(w + kw - 1)]
            wspec = np.fft.rfftn(kn, lens, (-2, -1))
        for b in range(xn.shape[0]):
            if scipy is not None:
                full = scipy[1].fftconvolve(xn[b][None], kn, axes=(-2, -1)).sum(axis=1)
            else:
                xspec = np.fft.rfftn(xn[b], lens, (-2, -1))
                full = np.fft.irfftn(np.einsum("chw,ochw->ohw", xspec, wspec), lens, (-2, -1))
            out[b] = full[:, kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]
        return out
    if scipy is None:
        return numpy_fftconvolve(xn, kn, mode)
    return scipy[1].fftconvolve(xn, kn.reshape((1,) * (xn.ndim - kn.ndim) + kn.shape), mode)


def _time_rounds(
    timed: dict[str, tuple[Record, Callable[[], Any]]], rounds: int, min_run_time: float
) -> None:
    """Time each contender in interleaved rounds, so drift and allocator state hit all alike;
    each record keeps its best time (earlier passes included)."""
    for r in range(rounds):
        order = list(timed)
        order = order[r % len(order) :] + order[: r % len(order)] if order else order
        for name in order:
            rec, fn = timed[name]
            ms = _time_ms(fn, min_run_time / rounds)
            rec.ms = ms if rec.ms is None else min(rec.ms, ms)


def run(
    cases: Sequence[Case],
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: str = "cpu",
    min_run_time: float = 0.2,
    budget_s: float = 5.0,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
    rounds: int = 3,
    busy_percent: float = 50.0,
    retries: int = 2,
) -> list[Record]:
    """Time every contender on every case, mode and dtype; see the module docstring.

    Parameters
    ----------
    busy_percent
        A cell (case, mode, dtype) whose timing rounds saw other processes take more than this
        percent of one core is timed again, up to ``retries`` more times; one still above it is
        marked ``disturbed``.
    """
    records: list[Record] = []
    gen = torch.Generator().manual_seed(0)
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    rate_key = "cuda" if cuda else "cpu"
    for case in cases:
        factors = kernel_factors(case.kernel, case.k_shape)
        values = kernel_values(case.kernel, case.k_shape)
        for dtype in dtypes:
            x = torch.randn(case.x_shape, generator=gen, dtype=torch.float64).to(device, dtype)
            if values is None:
                k = torch.randn(case.k_shape, generator=gen, dtype=torch.float64)
            else:
                k = torch.from_numpy(values)
            k = k.to(device, dtype)
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
                    contenders = _signal_contenders(case, mode, x, k, factors)
                dname = str(dtype).removeprefix("torch.")
                timed: dict[str, tuple[Record, Callable[[], Any]]] = {}
                cell: list[Record] = []
                # 1. one call each: the result checked against the reference
                for name, fn in contenders.items():
                    rec = Record(case.name, mode, dname, name)
                    records.append(rec)
                    cell.append(rec)
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
                    # trueconv's own failures are the expected kinds; another library may
                    # raise anything (cv2.error, TypeError for an unsupported dtype, ...)
                    errors = _FAILURES if name.startswith("trueconv") else (Exception,)
                    try:
                        if sync is not None or name in _WARM_UP:  # kernel compilation, plans
                            warm = fn()
                            if sync is not None:
                                sync()
                            del warm
                        t0 = time.perf_counter()
                        y = fn()
                        if sync is not None:
                            sync()
                        first = time.perf_counter() - t0
                    except errors as exc:
                        rec.skipped = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
                        continue
                    rec.rel_err = _rel_err(y, ref)
                    del y
                    if first > budget_s:
                        rec.ms = first * 1e3  # too slow to repeat: one call is the time
                    else:
                        timed[name] = (rec, fn)
                # 2. timing in interleaved rounds, with other processes' CPU use read around
                # them; a busy pass is repeated, each contender keeping its best time
                if timed:
                    loads: list[float] = []
                    attempts = 0
                    while True:
                        attempts += 1
                        start = _cpu_counters()
                        _time_rounds(timed, rounds, min_run_time)
                        load = other_cpu_percent(start, _cpu_counters())
                        if load is not None:
                            loads.append(load)
                        if load is None or load <= busy_percent or attempts > retries:
                            break
                    # the quietest pass: the best times come from it or from a faster one
                    quietest = min(loads) if loads else None
                    for rec in cell:
                        if rec.skipped is None:
                            rec.extra["other_cpu_percent"] = (
                                None if quietest is None else round(quietest, 1)
                            )
                            rec.extra["disturbed"] = quietest is not None and (
                                quietest > busy_percent
                            )
                            rec.extra["attempts"] = attempts
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
    dtype = torch.device(device).type
    for label, (_, _, _, devices) in _OPTIONAL.items():
        mods = _optional(label) if dtype in devices else None
        if mods is not None:
            info[label] = getattr(mods[0], "__version__", "?")
    info["reference"] = reference_source()
    info["other CPU use from"] = load_source() or "not measured"
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


#: the tables' marker for a cell that stayed busy
BUSY_MARK = " (busy)"


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def _ratio(num: Record | None, den: Record | None) -> float | None:
    """``num.ms / den.ms``, or None where either time is missing."""
    return num.ms / den.ms if num and den and num.ms and den.ms else None


#: The contenders that are one library call each (scipy's, numpy's, and flip + ``F.convNd``):
#: what a user has without writing a transform by hand or installing an image library. The
#: summary gives the speed-up over them apart from the speed-up over every contender (the hand
#: ``torch.fft`` product and OpenCV included).
LIBRARY_CONTENDERS = ("scipy ", "numpy ", "torch flip+conv")


def _speedups(rows: Sequence[dict[str, Any]], key: str) -> dict[str, tuple[float, float, int]]:
    """Per dtype: the median and the smallest of ``row[key]`` and how many rows have it."""
    out = {}
    for dtype in sorted({r["dtype"] for r in rows}):
        vals = sorted(r[key] for r in rows if r["dtype"] == dtype and r[key])
        if vals:
            out[dtype] = (vals[len(vals) // 2], vals[0], len(vals))
    return out


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
        library = [r for r in other if r.contender.startswith(LIBRARY_CONTENDERS)]
        best_library = min(library, key=lambda r: r.ms or 0.0, default=None)
        # the quality of the pick: the picked method's time, measured as every method's was
        picked = next((r for r in own if auto and r.contender == f"trueconv {auto.chosen}"), None)
        loads = [r.extra["other_cpu_percent"] for r in recs if "other_cpu_percent" in r.extra]
        rows.append(
            {
                "case": case,
                "mode": mode,
                "dtype": dtype,
                "auto": auto,
                "best_own": best_own,
                "best_other": best_other,
                "speedup": _ratio(best_other, auto),
                "library_speedup": _ratio(best_library, auto),
                "auto_vs_own": _ratio(auto, best_own),
                "pick": _ratio(picked, best_own),
                "auto_vs_picked": _ratio(auto, picked),
                "other_cpu": loads[0] if loads else None,
                "disturbed": any(r.extra.get("disturbed") for r in recs),
            }
        )
    return rows


def to_markdown(records: Sequence[Record], info: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", ""]
    lines.append(
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + ". Times are medians in ms (`torch.utils.benchmark.Timer`); errors are "
        "max|y − ref| / max|ref| against a float64 reference ("
        + f"`{info.get('reference', 'scipy.signal.fftconvolve')}`"
        + "; for NN cases summed over input channels)."
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
        "output while the call runs; median of three calls) / (input + output bytes). "
        "`others` = percent of one core that other processes (and the hypervisor's steal) "
        f"took while the case was timed; `{BUSY_MARK.strip()}`: above the busy threshold on "
        "every try (up to three), so its times may be slow.",
        "",
        "| case | mode | dtype | auto ms (method) | best own | best competitor | speedup "
        "| pick | auto/own best | auto err | mem | others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        auto, own, other = row["auto"], row["best_own"], row["best_other"]
        lines.append(
            "| {case} | {mode} | {dtype} | {a} | {o} | {c} | {s} | {p} | {r} | {e} | {m} "
            "| {b} |".format(
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
                b="—"
                if row["other_cpu"] is None
                else f"{row['other_cpu']:.0f}%" + (BUSY_MARK if row["disturbed"] else ""),
            )
        )
    lines.append("")
    library = _speedups(rows, "library_speedup")
    for dtype, (median, worst, _) in _speedups(rows, "speedup").items():
        line = (
            f"- {dtype}: median speedup over the best competitor {median:.2f}×, worst {worst:.2f}×"
        )
        if dtype in library:
            lmed, lworst, count = library[dtype]
            line += (
                f"; over the best of scipy, numpy and flip + `F.convNd` alone (one library "
                f"call each; {count} cases) {lmed:.2f}×, worst {lworst:.2f}×"
            )
        lines.append(line + ".")
    disturbed, measured = busy_cells(records)
    if measured:
        lines.append(
            f"- {disturbed} of {measured} cells ran on a busy machine (other processes above "
            f"the threshold after the retries; marked `{BUSY_MARK.strip()}`)."
        )
    else:
        lines.append("- other processes' CPU use was not measured.")
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
        note = r.skipped or (f"ran {r.chosen}" if r.chosen else "")
        if r.extra.get("disturbed"):
            busy = f"{BUSY_MARK.strip()}: others took {r.extra['other_cpu_percent']:g}% of a core"
            note = f"{note}; {busy}" if note else busy
        lines.append(
            f"| {r.case} | {r.mode} | {r.dtype} | {r.contender} | {_fmt_ms(r.ms)} | "
            + (f"{r.rel_err:.1e}" if r.rel_err is not None else "—")
            + " | "
            + (f"{r.peak_extra:.2f}" if r.peak_extra is not None else "—")
            + f" | {note} |"
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
