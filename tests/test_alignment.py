"""``origin=``: where the ``'same'`` window sits, and MATLAB's alignment for even kernels.

Oracles: ``scipy.signal.convolve``/``correlate`` in float64 (``'full'``, sliced by the
documented rule), ``numpy.pad`` for the boundaries, and MATLAB's documented formulas written
out as loops (``conv2(A, B, 'same')`` is the central part of the full convolution starting at
``ceil((k - 1) / 2)``; ``imfilter``/``filter2`` correlate with the kernel's centre at
``floor((k + 1) / 2)``, 1-based).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import rel_err

METHODS = ("direct", "fft", "overlap_add", "auto")
NP_PAD = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}


def _same_window(full: np.ndarray, n: tuple[int, ...], starts: tuple[int, ...]) -> np.ndarray:
    return full[tuple(slice(s, s + m) for s, m in zip(starts, n))]


@st.composite
def _problem(draw):
    nd = draw(st.integers(1, 3))
    n = tuple(draw(st.integers(1, 9 if nd < 3 else 5)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 6 if nd < 3 else 4)) for _ in range(nd))
    origin = tuple(draw(st.integers(-((m - 1) // 2), m // 2)) for m in k)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal(k), origin


@given(_problem(), st.sampled_from(METHODS), st.sampled_from(sorted(NP_PAD)))
def test_origin_moves_the_same_window(problem, method, boundary):
    """'same' with origin o = the valid convolution of the input extended by
    (k - 1 - s, s), s = (k - 1) // 2 + o (numpy.pad), for every method and boundary."""
    x, k, origin = problem
    starts = tuple((m - 1) // 2 + o for m, o in zip(k.shape, origin))
    padded = np.pad(x, [(m - 1 - s, s) for m, s in zip(k.shape, starts)], mode=NP_PAD[boundary])
    ref = scipy.signal.convolve(padded, k, mode="valid", method="direct")
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        "same",
        method=method,
        boundary=boundary,
        origin=origin,
    )
    assert rel_err(out, ref) < 1e-12
    if boundary == "fill":
        full = scipy.signal.convolve(x, k, mode="full", method="direct")
        assert rel_err(out, _same_window(full, x.shape, starts)) < 1e-12


@given(_problem(), st.sampled_from(METHODS))
def test_correlate_origin_slices_the_full_correlation(problem, method):
    x, k, origin = problem
    starts = tuple((m - 1) // 2 + o for m, o in zip(k.shape, origin))
    full = scipy.signal.correlate(x, k, mode="full", method="direct")
    out = trueconv.correlate(
        torch.from_numpy(x), torch.from_numpy(k), "same", method=method, origin=origin
    )
    assert rel_err(out, _same_window(full, x.shape, starts)) < 1e-12


def _matlab_conv2_same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MATLAB's documented ``conv2(A, B, 'same')``/``convn``: the central part of the full
    convolution, ``C(i) = sum_j A(j) B(i + ceil((k - 1) / 2) - j + 1)`` (1-based), as loops."""
    out = np.zeros(a.shape)
    shift = [-(-(m - 1) // 2) for m in b.shape]  # ceil((k - 1) / 2)
    for i in itertools.product(*(range(n) for n in a.shape)):
        total = 0.0
        for j in itertools.product(*(range(n) for n in a.shape)):
            idx = tuple(ii + s - jj for ii, s, jj in zip(i, shift, j))
            if all(0 <= t < m for t, m in zip(idx, b.shape)):
                total += a[j] * b[idx]
        out[i] = total
    return out


def _matlab_imfilter_corr(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """MATLAB's ``imfilter(A, h)`` (correlation, zero padding, 'same') and ``filter2(h, A)``:
    the kernel's centre is ``floor((size(h) + 1) / 2)`` (1-based), i.e. ``(k - 1) // 2``
    0-based: ``C(i) = sum_j h(j) A(i + j - c)``."""
    out = np.zeros(a.shape)
    centre = [(m - 1) // 2 for m in h.shape]
    for i in itertools.product(*(range(n) for n in a.shape)):
        total = 0.0
        for j in itertools.product(*(range(m) for m in h.shape)):
            idx = tuple(ii + jj - c for ii, jj, c in zip(i, j, centre))
            if all(0 <= t < n for t, n in zip(idx, a.shape)):
                total += h[j] * a[idx]
        out[i] = total
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("n", "k"), [((7,), (4,)), ((6, 5), (2, 3)), ((5, 6), (4, 4)), ((4, 3, 5), (2, 3, 2))]
)
@pytest.mark.parametrize("alias", ["matlab", "ceil"])
def test_matlab_alignment_matches_the_documented_formula(n, k, method, alias):
    rng = np.random.default_rng(sum(n) + 10 * sum(k))
    a, b = rng.standard_normal(n), rng.standard_normal(k)
    out = trueconv.convolve(
        torch.from_numpy(a), torch.from_numpy(b), "same", method=method, origin=alias
    )
    assert rel_err(out, _matlab_conv2_same(a, b)) < 1e-12
    corr = trueconv.correlate(
        torch.from_numpy(a), torch.from_numpy(b), "same", method=method, origin=alias
    )
    assert rel_err(corr, _matlab_imfilter_corr(a, b)) < 1e-12


def test_floor_is_the_default_and_odd_kernels_do_not_move():
    x = torch.arange(1.0, 8.0)
    for k in (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0, 4.0])):
        base = trueconv.convolve(x, k, "same")
        for o in ("floor", "numpy", "scipy", 0, (0,)):
            assert torch.equal(trueconv.convolve(x, k, "same", origin=o), base)
    odd = torch.tensor([1.0, 2.0, 4.0])
    assert torch.equal(
        trueconv.convolve(x, odd, "same", origin="matlab"), trueconv.convolve(x, odd, "same")
    )
    # the alignment strings describe a convention; other modes have no window to move
    assert torch.equal(
        trueconv.convolve(x, odd, "full", origin="matlab"), trueconv.convolve(x, odd)
    )


def test_separable_and_planning_take_origin():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((9, 8)))
    f0, f1 = torch.tensor([1.0, 3.0, 2.0, 1.0]), torch.tensor([1.0, -2.0])
    dense = torch.outer(f0, f1)
    for origin in ((1, 0), (-1, 1), "matlab"):
        for boundary in ("fill", "reflect"):
            sep = trueconv.convolve_separable(x, [f0, f1], "same", origin=origin, boundary=boundary)
            ref = trueconv.convolve(
                x, dense, "same", origin=origin, boundary=boundary, method="direct"
            )
            assert rel_err(sep, ref) < 1e-12
    assert trueconv.choose_method((64, 64), (4, 4), "same", origin="matlab", shapes=True) in (
        "direct",
        "fft",
        "overlap_add",
    )
    assert set(trueconv.method_costs((64,), (4,), "same", origin=2, shapes=True))


def test_origin_gradients():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    for method in ("direct", "fft"):
        assert torch.autograd.gradcheck(
            lambda a, b, method=method: trueconv.convolve(
                a, b, "same", origin=(2, -0), method=method, boundary="symmetric"
            ),
            (x, k),
        )


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"origin": 3}, ValueError, "allowed -1 to 2"),
        ({"origin": -2}, ValueError, "allowed -1 to 2"),
        ({"origin": (1, 1)}, ValueError, "one int per convolved dim"),
        ({"origin": 1, "mode": "full"}, ValueError, "mode='full' has none"),
        ({"origin": 1, "mode": "valid"}, ValueError, "mode='valid' has none"),
        ({"origin": "middle"}, ValueError, "'floor', 'ceil'"),
        ({"origin": 1.5}, TypeError, "origin must be an int"),
        ({"origin": (1.0,)}, TypeError, "origin must be an int"),
        ({"origin": True}, TypeError, "origin must be an int"),
        ({"origin": None}, TypeError, "origin must be an int"),
    ],
)
def test_bad_origin_is_refused(kwargs, exc, words):
    kwargs = {"mode": "same", **kwargs}
    with pytest.raises(exc, match="origin") as info:
        trueconv.convolve(torch.ones(8), torch.ones(4), **kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("origin", [(2, -2), "matlab", (-1, 3)])
@pytest.mark.parametrize("boundary", ["fill", "reflect", "wrap"])
def test_dask_blocks_take_origin(origin, boundary):
    da = pytest.importorskip("dask.array")
    import trueconv.dask

    rng = np.random.default_rng(5)
    x, k = rng.standard_normal((23, 19)), rng.standard_normal((4, 6))
    shifts = (1, 1) if origin == "matlab" else origin
    starts = tuple((m - 1) // 2 + o for m, o in zip(k.shape, shifts))
    padded = np.pad(x, [(m - 1 - s, s) for m, s in zip(k.shape, starts)], mode=NP_PAD[boundary])
    ref = scipy.signal.convolve(padded, k, mode="valid", method="direct")
    out = trueconv.dask.convolve(
        da.from_array(x, chunks=(7, 5)), k, "same", boundary=boundary, origin=origin
    ).compute()
    assert rel_err(out, ref) < 1e-12
