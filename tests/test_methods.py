"""Every method against every other and against scipy; the method asked for is the one that ran.

New methods registered in ``trueconv._methods.REGISTRY`` are picked up by every test here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv import _plan, _spec
from trueconv._methods import REGISTRY, direct, fft, overlap_add, rows
from trueconv._problem import Problem
from trueconv.core.transforms import next_fast_len

METHODS = sorted(REGISTRY)
MODES = ["full", "same", "valid"]


class WrongMethodRan(AssertionError):
    """Raised by a method that the test forbade."""


def rand(rng, shape, complex_=False):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


def valid_ok(xs, ks) -> bool:
    return all(n >= k for n, k in zip(xs, ks)) or all(k >= n for n, k in zip(xs, ks))


# A grid shared by every method: short and long signals (long ones make blocked methods block),
# even/odd and larger-than-input kernels, size-1 axes, 1-D to 4-D.
SHAPES = [
    ((10,), (3,)),
    ((10,), (4,)),
    ((4,), (9,)),
    ((1,), (3,)),
    ((300,), (7,)),
    ((301,), (40,)),
    ((6, 7), (3, 2)),
    ((3, 4), (5, 5)),
    ((1, 8), (1, 3)),
    ((48, 50), (3, 5)),
    ((5, 4, 6), (2, 3, 3)),
    ((3, 4, 3, 5), (2, 3, 2, 2)),
]
IDS = [f"{'x'.join(map(str, xs))}*{'x'.join(map(str, ks))}" for xs, ks in SHAPES]


def modes_for(xs, ks) -> list[str]:
    return MODES if valid_ok(xs, ks) else ["full", "same"]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize(("xs", "ks"), SHAPES, ids=IDS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_against_scipy(method, xs, ks, complex_):
    rng = np.random.default_rng(len(xs) * 1000 + ks[-1])
    x, k = rand(rng, xs, complex_), rand(rng, ks, complex_)
    for mode in modes_for(xs, ks):
        ref = scipy.signal.convolve(x, k, mode, method="direct")
        out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
        assert tuple(out.shape) == ref.shape, mode
        assert rel_err(out, ref) < REL_TOL[out.dtype], mode


PAIRS = list(itertools.combinations(METHODS, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64, torch.float64])
@pytest.mark.parametrize(("xs", "ks"), SHAPES, ids=IDS)
@pytest.mark.parametrize(("m1", "m2"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_methods_agree_with_each_other(m1, m2, xs, ks, dtype):
    """Pairwise agreement; each is within REL_TOL of the oracle, so pairs are within twice it."""
    g = torch.Generator().manual_seed(len(xs) * 100 + ks[0])
    x = torch.randn(xs, generator=g, dtype=dtype)
    k = torch.randn(ks, generator=g, dtype=dtype)
    xn, kn = to_numpy(x).astype(np.complex128), to_numpy(k).astype(np.complex128)
    for mode in modes_for(xs, ks):
        y1 = trueconv.convolve(x, k, mode, method=m1)
        y2 = trueconv.convolve(x, k, mode, method=m2)
        assert y1.dtype == y2.dtype == dtype
        assert rel_err(y1, y2) < 2 * REL_TOL[dtype], mode
        ref = scipy.signal.convolve(xn, kn, mode, "direct")
        assert rel_err(y1, ref) < REL_TOL[dtype], mode
        assert rel_err(y2, ref) < REL_TOL[dtype], mode


# --- prove the method you meant actually ran --------------------------------------------------


def _forbid_others(monkeypatch, allowed: str, also: tuple[str, ...] = ()) -> None:
    for name, module in REGISTRY.items():
        if name != allowed and name not in also:

            def boom(*args, _name=name, **kwargs):
                raise WrongMethodRan(f"{_name}.run ran, but method={allowed!r} was asked for")

            monkeypatch.setattr(module, "run", boom)


@pytest.mark.parametrize(
    ("xs", "ks", "mode", "boundary"),
    [
        ((300,), (7,), "full", "fill"),
        ((301,), (40,), "same", "reflect"),
        ((4,), (9,), "valid", "fill"),
        ((48, 50), (3, 5), "same", "wrap"),
        ((2, 3, 40), (5,), "full", "symmetric"),
        ((3, 4, 3, 5), (2, 3, 2, 2), "full", "replicate"),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_the_requested_method_runs(monkeypatch, method, xs, ks, mode, boundary):
    rng = np.random.default_rng(0)
    x, k = rand(rng, xs), rand(rng, ks)
    # overlap-add with a single block along every dim is the FFT method, and runs it
    _, _, spec = _spec.normalize(
        "convolve", torch.from_numpy(x), torch.from_numpy(k), mode, None, method, boundary, 0
    )
    problem = Problem.of(spec)
    unblocked = all(s is None for s in overlap_add.blocked_dims(problem.sa, problem.sb))
    also = ("fft",) if method == "overlap_add" and unblocked else ()
    _forbid_others(monkeypatch, method, also)
    out = trueconv.convolve(
        torch.from_numpy(x), torch.from_numpy(k), mode, boundary=boundary, method=method
    )
    pads = [(0, 0)] * x.ndim
    if mode != "valid":
        for d in range(x.ndim - k.ndim, x.ndim):
            kk = k.shape[d - (x.ndim - k.ndim)]
            half = (kk - 1) // 2
            pads[d] = (kk - 1, kk - 1) if mode == "full" else (kk - 1 - half, half)
    np_mode = {"fill": "constant", "replicate": "edge"}.get(boundary, boundary)
    kb = k.reshape((1,) * (x.ndim - k.ndim) + k.shape)
    ref = scipy.signal.convolve(np.pad(x, pads, np_mode), kb, "valid", "direct")
    assert rel_err(out, ref) < REL_TOL[torch.float64]
    # and the forbidden methods really are forbidden
    for other in REGISTRY:
        if other != method and not (other == "fft" and also):
            with pytest.raises(WrongMethodRan):
                trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=other)


def _record_runs(monkeypatch) -> list[str]:
    calls: list[str] = []
    for name, module in REGISTRY.items():

        def recording(*args, _name=name, _run=module.run, **kwargs):
            calls.append(_name)
            return _run(*args, **kwargs)

        monkeypatch.setattr(module, "run", recording)
    return calls


# (input, kernel, mode, boundary, dtype, dims): small problems that 'auto' runs directly and
# big ones where a transform wins; integers; explicit dims; boundaries that enlarge the problem.
CHOICE_CASES = [
    ((1000,), (3,), "full", "fill", torch.float32, None),
    ((20,), (5,), "same", "reflect", torch.float64, None),
    ((100_000,), (5000,), "full", "fill", torch.float32, None),
    ((40_000,), (3000,), "same", "wrap", torch.float64, None),
    ((5000,), (100_000,), "valid", "fill", torch.float32, None),
    ((300, 300), (41, 41), "same", "fill", torch.float32, None),
    ((8, 8), (3, 3), "full", "symmetric", torch.complex64, None),
    ((4, 20_000), (4, 2000), "full", "fill", torch.float32, -1),
    ((4000,), (1000,), "full", "fill", torch.int32, None),
    ((100, 100), (31, 31), "same", "replicate", torch.int64, None),
    ((64,), (64,), "full", "fill", torch.bool, None),
]


@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize(("xs", "ks", "mode", "boundary", "dtype", "dims"), CHOICE_CASES)
def test_choose_method_is_what_auto_runs(monkeypatch, fname, xs, ks, mode, boundary, dtype, dims):
    x = torch.zeros(xs, dtype=dtype)
    k = torch.zeros(ks, dtype=dtype)
    kwargs = {"dims": dims, "boundary": boundary}
    chosen = trueconv.choose_method(x, k, mode, **kwargs)
    assert chosen in REGISTRY
    calls = _record_runs(monkeypatch)
    out = getattr(trueconv, fname)(x, k, mode, **kwargs)
    assert calls == [chosen]
    assert out.dtype == dtype
    assert not out.any()  # zeros in, zeros out, whichever method ran


def test_choose_method_grid_is_not_trivial():
    """The choice cases above exercise more than one method, and the obvious ends hold."""
    chosen = {
        trueconv.choose_method(torch.zeros(xs, dtype=dt), torch.zeros(ks, dtype=dt), mode, dims=d)
        for xs, ks, mode, _, dt, d in CHOICE_CASES
    }
    assert "direct" in chosen
    assert len(chosen) > 1
    assert trueconv.choose_method(torch.zeros(1000), torch.zeros(3)) == "direct"
    assert trueconv.choose_method(torch.zeros(100_000), torch.zeros(5000)) != "direct"


# --- integers: only exact methods -------------------------------------------------------------


def _exact_for_integers(name: str) -> bool:
    """A method is exact on integers when it computes them in an integer dtype."""
    cd = REGISTRY[name].compute_dtype(torch.int64)
    return not (cd.is_floating_point or cd.is_complex)


INT_DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize(
    ("xs", "ks", "mode"),
    [
        ((100_000,), (5000,), "full"),
        ((20_000,), (2000,), "same"),
        ((300, 300), (41, 41), "same"),
        ((5000,), (100_000,), "valid"),
        ((10,), (3,), "full"),
    ],
)
def test_auto_never_picks_an_inexact_method_for_integers(dtype, xs, ks, mode):
    x, k = torch.zeros(xs, dtype=dtype), torch.zeros(ks, dtype=dtype)
    _, _, spec = _spec.normalize("convolve", x, k, mode, None, "auto", "fill", 0)
    feasible = _plan.feasible(spec)
    assert "fft" not in feasible
    assert all(_exact_for_integers(m) for m in feasible), feasible
    assert _exact_for_integers(trueconv.choose_method(x, k, mode))


def test_float_twins_of_the_integer_cases_do_pick_a_transform():
    """Precondition for the test above: the same shapes in float would not run direct."""
    assert not _exact_for_integers("fft")
    x, k = torch.zeros(100_000), torch.zeros(5000)
    assert trueconv.choose_method(x, k) != "direct"
    assert trueconv.choose_method(x.long(), k.long()) == "direct"


def test_integer_auto_with_transforms_forbidden(monkeypatch):
    """Sizes where float would take a transform: the integer call must not touch one."""
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, 20_000)
    k = rng.integers(-50, 50, 2000)
    assert trueconv.choose_method(torch.zeros(20_000), torch.zeros(2000)) != "direct"
    for name in METHODS:
        if not _exact_for_integers(name):

            def boom(*args, _name=name, **kwargs):
                raise WrongMethodRan(_name)

            monkeypatch.setattr(REGISTRY[name], "run", boom)
    out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k))
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(to_numpy(out), np.convolve(x, k))


# --- direct.shift_add: the exact fallback for devices without integer conv ------------------


def _shift_add_oracle(a: np.ndarray, b: np.ndarray, pads) -> np.ndarray:
    """Per broadcast batch index: np.pad with zeros, then scipy's direct 'valid' convolution."""
    nd = len(pads)
    nb = a.ndim - nd
    batch = np.broadcast_shapes(a.shape[:nb], b.shape[:nb])
    ab = np.broadcast_to(a, batch + a.shape[nb:])
    bb = np.broadcast_to(b, batch + b.shape[nb:])
    outs = [
        scipy.signal.convolve(np.pad(ab[i], pads), bb[i], "valid", method="direct")
        for i in np.ndindex(*batch)
    ]
    return np.stack(outs).reshape(*batch, *outs[0].shape)


SHIFT_ADD_CASES = [
    ((9,), (3,), ((0, 0),)),
    ((9,), (4,), ((3, 3),)),
    ((5,), (5,), ((2, 1),)),
    ((1, 3, 8), (1, 1, 3), ((2, 0),)),
    ((2, 1, 8), (1, 3, 4), ((1, 2),)),
    ((4, 7, 6), (4, 2, 3), ((1, 1), (0, 2))),
    ((5, 4, 6), (2, 3, 3), ((1, 1), (2, 2), (0, 0))),
    ((3, 4, 3, 5), (2, 3, 2, 2), ((1, 1), (2, 2), (1, 1), (1, 0))),
]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float64, torch.complex128])
@pytest.mark.parametrize(("sa", "sb", "pads"), SHIFT_ADD_CASES)
def test_shift_add_against_scipy(sa, sb, pads, dtype):
    rng = np.random.default_rng(2)
    if dtype.is_floating_point or dtype.is_complex:
        a, b = rand(rng, sa, dtype.is_complex), rand(rng, sb, dtype.is_complex)
    else:
        a, b = rng.integers(-1000, 1000, sa), rng.integers(-1000, 1000, sb)
    at = torch.tensor(a, dtype=dtype)
    bt = torch.tensor(b, dtype=dtype)
    out = direct.shift_add(at, bt, pads)
    ref = _shift_add_oracle(a, b, pads)
    assert out.dtype == dtype
    if dtype.is_floating_point or dtype.is_complex:
        assert rel_err(out, ref) < REL_TOL[dtype]
    else:
        np.testing.assert_array_equal(to_numpy(out), ref)


def test_shift_add_large_int64_is_exact():
    """Values far beyond float64's 2**53: only an integer accumulation is exact."""
    a = np.array([2**55 + 1, 3, -(2**54) + 7, 5], dtype=np.int64)
    b = np.array([3, -1, 2], dtype=np.int64)
    out = direct.shift_add(torch.from_numpy(a), torch.from_numpy(b), ((2, 2),))
    np.testing.assert_array_equal(to_numpy(out), np.convolve(a, b))


@pytest.fixture
def no_native_integer_conv(monkeypatch):
    """Pretend this device's conv has no integer kernel; record shift_add, forbid F.convNd."""
    calls = []
    original = direct.shift_add

    def recording(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    def no_conv(*args, **kwargs):
        raise WrongMethodRan("direct._conv ran on an integer tensor")

    monkeypatch.setattr(direct, "NATIVE_INTEGER_CONV_DEVICES", frozenset())
    monkeypatch.setattr(rows, "AVAILABLE", False)  # no compiled loop there either
    monkeypatch.setattr(direct, "shift_add", recording)
    monkeypatch.setattr(direct, "_conv", no_conv)
    return calls


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize(
    ("xs", "ks"), [((11,), (4,)), ((3,), (7,)), ((5, 6), (2, 3)), ((3, 4, 3, 4), (2, 2, 1, 3))]
)
def test_convolve_without_native_integer_conv(no_native_integer_conv, dtype, xs, ks):
    rng = np.random.default_rng(3)
    hi = 2 if dtype == torch.bool else 100
    lo = 0 if dtype in (torch.bool, torch.uint8) else -hi
    x = rng.integers(lo, hi, xs)
    k = rng.integers(lo, hi, ks)
    npdt = to_numpy(torch.zeros(0, dtype=dtype)).dtype
    xn, kn = x.astype(npdt), k.astype(npdt)
    for mode in MODES:
        out = trueconv.convolve(torch.from_numpy(xn), torch.from_numpy(kn), mode, method="direct")
        assert out.dtype == dtype
        # exact integer arithmetic in int64, cast back to the dtype (wrapping like numpy)
        ref = scipy.signal.convolve(x.astype(np.int64), k.astype(np.int64), mode, "direct")
        ref = (ref != 0) if dtype == torch.bool else ref.astype(npdt)
        np.testing.assert_array_equal(to_numpy(out), ref, err_msg=mode)
    assert len(no_native_integer_conv) == len(MODES), "shift_add did not run for every call"


def test_without_native_integer_conv_floats_are_unaffected(monkeypatch):
    """The integer fallback must not change how floats run: the direct method's choice between
    shift-and-add and F.convNd for a float problem is the same with or without native integer
    convolution, and the result still matches numpy."""
    shapes = [(10, 3), (4096, 16), (4096, 255), (65536, 3)]
    before = [direct.variant(k, n, torch.float64, "cpu") for n, k in shapes]
    monkeypatch.setattr(direct, "NATIVE_INTEGER_CONV_DEVICES", frozenset())
    monkeypatch.setattr(rows, "AVAILABLE", False)  # no compiled loop there either
    after = [direct.variant(k, n, torch.float64, "cpu") for n, k in shapes]
    assert before == after
    assert direct.variant(3, 10, torch.int64, "cpu") == "shift_add"
    x, k = np.arange(10.0), np.array([1.0, -2.0, 0.5])
    out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), method="direct")
    assert rel_err(out, np.convolve(x, k)) < REL_TOL[torch.float64]


def test_without_native_integer_conv_1d_matches_np_convolve(no_native_integer_conv):
    x = np.array([3, -1, 4, 1, -5, 9, 2, -6], dtype=np.int64)
    k = np.array([2, 7, -1, 8], dtype=np.int64)
    for mode in ("full", "valid"):
        out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode)
        np.testing.assert_array_equal(to_numpy(out), np.convolve(x, k, mode))
    assert len(no_native_integer_conv) == 2


# --- fft.next_fast_len -----------------------------------------------------------------------


def _is_7_smooth(m: int) -> bool:
    for p in (2, 3, 5, 7):
        while m % p == 0:
            m //= p
    return m == 1


def _brute_next_fast_len(n: int) -> int:
    """The rule, by search: ``n`` itself up to 2, else the smallest 7-smooth multiple of 4."""
    if n <= 2:
        return max(n, 1)
    m = n
    while not (m % 4 == 0 and _is_7_smooth(m)):
        m += 1
    return m


def test_next_fast_len_small_exhaustive():
    for n in range(1, 3000):
        assert next_fast_len(n) == _brute_next_fast_len(n), n


@given(st.integers(1, 2**24))
def test_next_fast_len_random(n):
    assert next_fast_len(n) == _brute_next_fast_len(n)


@pytest.mark.parametrize(
    "n", [16875, 16876, 100_003, 2**20 + 1, 3**11 + 1, 5**8 - 1, 7**7, 2 * 7**7 - 1]
)
def test_next_fast_len_known(n):
    m = next_fast_len(n)
    assert m == _brute_next_fast_len(n)
    assert m >= n
    assert m % 4 == 0  # even: a real transform halves its last dim
    assert m <= 2 ** math.ceil(math.log2(n))  # a power of two always qualifies


def test_fft_lengths_are_those_of_the_rule():
    """The FFT method pads 1024² ⊛ 31² 'same' to 1080² (1050² until the rule preferred
    multiples of 4; measured slower), and a complex problem's dims are padded alike."""
    x, k = torch.zeros(1024, 1024), torch.zeros(31, 31)
    _, _, spec = _spec.normalize("convolve", x, k, "same", None, "fft", "fill", 0)
    assert _plan.forced(spec, torch.device("cpu")).lens == (1080, 1080)
    xc = x.to(torch.complex64)
    _, _, spec = _spec.normalize("convolve", xc, k, "full", None, "fft", "fill", 0)
    assert _plan.forced(spec, torch.device("cpu")).lens == (1080, 1080)


# The FFT method in groups along an untransformed dim (fft._run_grouped), forced by a budget of
# a few spectra: batch dims, convolved dims where either operand has length one, kernels long
# (transformed once for every group) and short (finished per group by the DFT matrix), every mode.
GROUPED_CASES = [
    ((3, 50, 60), (1, 7, 5), "same"),
    ((5, 40, 40), (1, 9, 9), "full"),
    ((4, 30, 30), (1, 5, 5), "valid"),
    ((1, 30, 30), (6, 5, 5), "same"),
    ((1, 30, 30), (6, 5, 5), "full"),
    ((3, 60, 60), (1, 40, 40), "same"),
    ((2, 3, 40, 40), (3, 1, 35, 35), "full"),
    ((7, 2, 20, 24), (1, 2, 3, 3), "valid"),
]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize(("xs", "ks", "mode"), GROUPED_CASES)
def test_fft_in_groups_against_scipy(monkeypatch, xs, ks, mode, complex_):
    seen = []
    sliced = fft._run_sliced
    monkeypatch.setattr(fft, "GROUP_BYTES", 1)  # one output sample's spectra per group
    monkeypatch.setattr(fft, "_run_sliced", lambda *a: seen.append(a[0].shape) or sliced(*a))
    rng = np.random.default_rng(7)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    if complex_:
        x = x + 1j * rng.standard_normal(xs)
    got = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode=mode, method="fft")
    want = scipy.signal.convolve(x, k, mode=mode, method="direct")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    if any(n > 1 and (p == 1 or q == 1) for p, q, n in zip(xs, ks, got.shape)):
        assert len(seen) > 1  # really grouped


def test_fft_counts_transforms_along_untransformed_dims():
    """3 × 2048² ⊛ 1 × 31² transforms three images: priced as the same call with the 3 as a
    batch dim, not as one image."""
    normalize = _spec.normalize
    x, k = torch.empty(3, 2048, 2048), torch.empty(31, 31)
    as_dim = normalize("convolve", x, k[None], "same", None, "auto", "fill", 0)[2]
    as_batch = normalize("convolve", x, k, "same", (-2, -1), "auto", "fill", 0)[2]
    one = normalize("convolve", x[0], k, "same", None, "auto", "fill", 0)[2]
    cpu = torch.device("cpu")
    for method in ("fft", "overlap_add"):
        p_dim, p_batch, p_one = (_plan.costs(s, cpu)[method] for s in (as_dim, as_batch, one))
        assert p_dim == pytest.approx(p_batch, rel=0.02)
        assert p_dim > 2 * p_one  # 3 + 1 + 3 transforms against 1 + 1 + 1


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_fft_in_groups_over_broadcast_batch_dims_against_scipy(monkeypatch, mode):
    """Groups along batch dims (``dims=``) that the input and a batch of kernels broadcast."""
    monkeypatch.setattr(fft, "GROUP_BYTES", 1)
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((4, 1, 30, 33)), rng.standard_normal((1, 3, 21, 7))
    got = trueconv.convolve(
        torch.from_numpy(x), torch.from_numpy(k), mode, dims=(-2, -1), method="fft"
    )
    for i, j in itertools.product(range(4), range(3)):
        want = scipy.signal.convolve(x[i, 0], k[0, j], mode=mode, method="direct")
        np.testing.assert_allclose(got[i, j].numpy(), want, rtol=1e-10, atol=1e-10)


# Kernels too long along their first convolved dim for the DFT matrix (fft._dft_ok) but at most
# half the transform there: fft.kernel_spectrum transforms them pruned (the other dims first,
# at the kernel's own length along the first). 2-D and 3-D, a batch of kernels, every mode.
PRUNED_CASES = [
    ((70, 64), (30, 21), "same"),
    ((40, 50), (33, 9), "full"),
    ((80, 60), (36, 5), "valid"),
    ((40, 12, 12), (30, 3, 3), "full"),
    ((2, 70, 40), (2, 30, 7), "same"),
]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize(("xs", "ks", "mode"), PRUNED_CASES)
def test_fft_pruned_kernel_spectrum_against_scipy(monkeypatch, xs, ks, mode, complex_):
    calls = []
    spectrum = fft.kernel_spectrum

    def spy(b, lens, tdims, real):
        calls.append(2 * b.shape[tdims[0]] <= lens[0] and len(tdims) > 1)
        return spectrum(b, lens, tdims, real)

    monkeypatch.setattr(fft, "kernel_spectrum", spy)
    rng = np.random.default_rng(11)
    x, k = rand(rng, xs, complex_), rand(rng, ks, complex_)
    batch = xs[0] == ks[0] == 2  # a batch of kernels, one per image
    got = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        mode=mode,
        dims=(-2, -1) if batch else None,
        method="fft",
    )
    if batch:
        want = np.stack([scipy.signal.convolve(a, b, mode=mode) for a, b in zip(x, k)])
    else:
        want = scipy.signal.convolve(x, k, mode=mode, method="direct")
    assert calls == [True]  # the pruned route ran, once
    assert rel_err(got.numpy(), want) < 1e-12


@given(
    st.lists(st.integers(1, 9), min_size=2, max_size=3),
    st.lists(st.integers(0, 12), min_size=3, max_size=3),
    st.booleans(),
)
def test_kernel_spectrum_is_the_whole_transform(ks, extra, real):
    """Pruned or not, the kernel's spectrum is ``rfftn`` (``fftn``) of it zero-padded."""
    nd = len(ks)
    lens = [k + e for k, e in zip(ks, extra[:nd])]
    if real:
        lens[-1] += lens[-1] % 2
    g = torch.Generator().manual_seed(sum(ks) + sum(lens))
    dtype = torch.float64 if real else torch.complex128
    b = torch.randn((2, *ks), dtype=dtype, generator=g)  # a batch dim rides along
    tdims = list(range(1, nd + 1))
    whole = (torch.fft.rfftn if real else torch.fft.fftn)(b, s=lens, dim=tdims)
    torch.testing.assert_close(fft.kernel_spectrum(b, lens, tdims, real), whole)
