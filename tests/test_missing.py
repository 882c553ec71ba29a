"""Missing samples: ``nan_policy``, ``mask``, ``normalize_kernel``, ``preserve_nan``.

Oracles: the normalized convolution ``conv(x·v, k) / conv(v, k) · sum(k)`` computed in float64
with numpy (``numpy.pad`` for the boundary, fill samples counted as data unless the fill is
NaN) and ``scipy.signal.convolve(method='direct')``; and ``astropy.convolution.convolve`` where
astropy is installed (skipped otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import assume, given
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


def _pad(a: np.ndarray, pads, boundary: str, value: float) -> np.ndarray:
    if boundary == "fill":
        return np.pad(a, pads, mode="constant", constant_values=value)
    return np.pad(a, pads, mode=NP_PAD[boundary])


def _oracle(x, k, mask, mode, boundary, fill, policy, normalize_kernel, preserve_nan):
    """The documented definition, in float64 with numpy and scipy's direct sum."""
    missing = np.isnan(x) | (np.zeros(x.shape, bool) if mask is None else mask)
    if mode == "full":
        pads = [(m - 1, m - 1) for m in k.shape]
    elif mode == "same":
        pads = [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in k.shape]
    else:
        pads = [(0, 0)] * k.ndim
    ksum = k.sum()
    if policy == "interpolate":
        data = _pad(np.where(missing, 0.0, x), pads, boundary, 0.0 if math.isnan(fill) else fill)
        valid = _pad((~missing).astype(float), pads, boundary, 0.0 if math.isnan(fill) else 1.0)
        top = scipy.signal.convolve(data, k, mode="valid", method="direct")
        bot = scipy.signal.convolve(valid, k, mode="valid", method="direct")
        with np.errstate(invalid="ignore", divide="ignore"):
            y = top / bot * (1.0 if normalize_kernel else ksum)
        y[np.abs(bot) <= 1e-9 * np.abs(k).sum()] = np.nan
    else:
        kk = k / ksum if normalize_kernel else k
        xx = np.where(missing, fill, x) if policy == "fill" else x
        y = scipy.signal.convolve(_pad(xx, pads, boundary, fill), kk, "valid", method="direct")
    if preserve_nan:
        y = np.where(missing, np.nan, y)
    return y


def _close(out: torch.Tensor, ref: np.ndarray, tol: float) -> None:
    got = out.detach().numpy()
    assert got.shape == ref.shape
    assert np.array_equal(np.isnan(got), np.isnan(ref)), (got, ref)
    fin = ~np.isnan(ref)
    if fin.any():
        assert rel_err(got[fin], ref[fin]) < tol


@st.composite
def _case(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(1, 12 if nd == 1 else 7)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal(n)
    x[rng.random(n) < draw(st.sampled_from([0.0, 0.2, 0.6]))] = np.nan
    kern = rng.random(k) + 0.1  # positive weights: the normalized convolution's setting
    mask = rng.random(n) < 0.2 if draw(st.booleans()) else None
    return x, kern, mask


@given(
    _case(),
    st.sampled_from(METHODS),
    st.sampled_from(("full", "same", "valid")),
    st.sampled_from(sorted(NP_PAD)),
    st.sampled_from([0.0, 2.5, math.nan]),
    st.booleans(),
)
def test_interpolate_is_the_normalized_convolution(case, method, mode, boundary, fill, nk):
    x, k, mask = case
    if mode == "valid":  # one operand must dominate in every dim (tested elsewhere)
        assume(
            all(a >= b for a, b in zip(x.shape, k.shape))
            or all(a <= b for a, b in zip(x.shape, k.shape))
        )
    ref = _oracle(x, k, mask, mode, boundary, fill, "interpolate", nk, False)
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        mode,
        method=method,
        boundary=boundary,
        fill_value=fill,
        nan_policy="interpolate",
        mask=None if mask is None else torch.from_numpy(mask),
        normalize_kernel=nk,
    )
    _close(out, ref, 1e-10)


@given(
    _case(),
    st.sampled_from(METHODS),
    st.sampled_from(sorted(NP_PAD)),
    st.sampled_from([0.0, -1.5]),
    st.booleans(),
    st.booleans(),
)
def test_fill_and_preserve_nan(case, method, boundary, fill, nk, preserve):
    x, k, mask = case
    ref = _oracle(x, k, mask, "same", boundary, fill, "fill", nk, preserve)
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        "same",
        method=method,
        boundary=boundary,
        fill_value=fill,
        nan_policy="fill",
        mask=mask,
        normalize_kernel=nk,
        preserve_nan=preserve,
    )
    _close(out, ref, 1e-10)


def test_nothing_missing_equals_the_plain_convolution():
    rng = np.random.default_rng(0)
    x, k = torch.from_numpy(rng.standard_normal((20, 30))), torch.from_numpy(rng.random((5, 4)))
    for boundary in ("fill", "reflect"):
        plain = trueconv.convolve(x, k, "same", boundary=boundary)
        for policy in ("fill", "interpolate"):
            out = trueconv.convolve(x, k, "same", boundary=boundary, nan_policy=policy)
            assert rel_err(out, plain) < 1e-12


def test_float32_complex_and_integer_inputs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 40))
    x[:, ::7] = np.nan
    k = rng.random(5) + 0.5
    ref = np.stack(
        [_oracle(r, k, None, "same", "fill", 0.0, "interpolate", False, False) for r in x]
    )
    out32 = trueconv.convolve(
        torch.from_numpy(x).float(), torch.from_numpy(k).float(), "same", nan_policy="interpolate"
    )
    assert out32.dtype == torch.float32
    _close(out32.double(), ref, 1e-5)
    xc = x + 1j * x[::-1]
    outc = trueconv.convolve(
        torch.from_numpy(xc), torch.from_numpy(k), "same", nan_policy="interpolate"
    )
    missing = np.isnan(xc)
    refc = np.stack(
        [
            _oracle(r.real, k, m, "same", "fill", 0.0, "interpolate", False, False)
            + 1j * _oracle(r.imag, k, m, "same", "fill", 0.0, "interpolate", False, False)
            for r, m in zip(np.where(missing, 0, xc), missing)
        ]
    )
    got = outc.numpy()
    assert np.array_equal(np.isnan(got), np.isnan(refc))
    fin = ~np.isnan(refc)
    assert rel_err(got[fin], refc[fin]) < 1e-10
    # integers hold no NaN: a mask marks the missing samples; a float kernel gives a float result
    xi = torch.arange(12).reshape(3, 4)
    mask = xi % 5 == 0
    outi = trueconv.convolve(
        xi, torch.tensor([1.0, 2.0, 1.0]), "same", nan_policy="interpolate", mask=mask
    )
    refi = np.stack(
        [
            _oracle(
                r.astype(float),
                np.array([1.0, 2.0, 1.0]),
                m,
                "same",
                "fill",
                0.0,
                "interpolate",
                False,
                False,
            )
            for r, m in zip(xi.numpy(), mask.numpy())
        ]
    )
    _close(outi, refi, 1e-6)
    filled = trueconv.convolve(
        xi, torch.tensor([1, 1]), nan_policy="fill", mask=mask, fill_value=100
    )
    # fill_value fills both the missing samples and, under boundary='fill', the padding
    ref_filled = np.stack(
        [
            np.convolve(np.pad(np.where(m, 100, r), 1, constant_values=100), [1, 1], "valid")
            for r, m in zip(xi.numpy(), mask.numpy())
        ]
    )
    assert filled.dtype == torch.int64
    assert np.array_equal(filled.numpy(), ref_filled)


def test_correlate_and_every_method_agree():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((12, 300)))
    x[x > 1.2] = math.nan
    k = torch.from_numpy(rng.random((3, 40)))
    outs = [
        trueconv.correlate(x, k, "same", method=m, nan_policy="interpolate", boundary="replicate")
        for m in METHODS
    ]
    ref = trueconv.convolve(
        x, k.flip((0, 1)), "same", method="direct", nan_policy="interpolate", boundary="replicate"
    )
    for out in outs:
        assert torch.equal(torch.isnan(out), torch.isnan(ref))
        fin = ~torch.isnan(ref)
        assert rel_err(out[fin], ref[fin]) < 1e-10


def test_gradients_are_finite_where_outputs_are_empty():
    x = torch.tensor([1.0, 2.0, math.nan, math.nan, math.nan, math.nan, 3.0], dtype=torch.float64)
    x.requires_grad_(True)
    k = torch.tensor([0.5, 1.0, 0.25], dtype=torch.float64, requires_grad=True)
    y = trueconv.convolve(x, k, "same", nan_policy="interpolate")
    assert torch.isnan(y[3])  # no present sample under the kernel
    y[~torch.isnan(y)].sum().backward()
    assert torch.isfinite(k.grad).all()
    assert torch.isfinite(x.grad[~torch.isnan(x.detach())]).all()

    xs = torch.randn(9, dtype=torch.float64)
    mask = torch.zeros(9, dtype=torch.bool)
    mask[[2, 5]] = True
    ks = torch.rand(3, dtype=torch.float64) + 0.5
    for method in ("direct", "fft"):
        assert torch.autograd.gradcheck(
            lambda a, b, method=method: trueconv.convolve(
                a, b, "same", nan_policy="interpolate", mask=mask, method=method
            ),
            (xs.requires_grad_(True), ks.requires_grad_(True)),
        )


def test_under_torch_compile():
    x = torch.randn(40, dtype=torch.float64)
    x[[3, 4, 20]] = math.nan
    k = torch.rand(5, dtype=torch.float64) + 0.1

    def f(a, b):
        return trueconv.convolve(a, b, "same", nan_policy="interpolate", preserve_nan=True)

    eager = f(x, k)
    compiled = torch.compile(f, fullgraph=True, backend="eager")(x, k)
    assert torch.equal(torch.isnan(eager), torch.isnan(compiled))
    fin = ~torch.isnan(eager)
    assert rel_err(compiled[fin], eager[fin]) < 1e-12


# ------------------------------------------------------------------------------------------
# astropy.convolution (skipped where astropy is not installed)
# ------------------------------------------------------------------------------------------

ASTROPY_BOUNDARY = {"fill": "fill", "extend": "replicate", "wrap": "wrap"}


@pytest.mark.parametrize("astropy_boundary", sorted(ASTROPY_BOUNDARY))
@pytest.mark.parametrize(
    # a NaN fill_value under nan_treatment='fill' would fill NaN with NaN: not a case
    ("treatment", "fill_value"),
    [
        ("interpolate", 0.0),
        ("interpolate", 3.0),
        ("interpolate", math.nan),
        ("fill", 0.0),
        ("fill", 3.0),
    ],
)
@pytest.mark.parametrize("normalize_kernel", [True, False])
@pytest.mark.parametrize("preserve_nan", [True, False])
@pytest.mark.parametrize("shape", [(41,), (13, 11), (7, 6, 5)])
def test_against_astropy_convolve(
    astropy_boundary, treatment, normalize_kernel, preserve_nan, fill_value, shape
):
    conv = pytest.importorskip("astropy.convolution")
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.15] = np.nan
    mask = rng.random(shape) < 0.1
    k = rng.random(tuple(3 if len(shape) == 3 else 5 for _ in shape)) + 0.05  # odd: astropy
    ref = conv.convolve(
        x,
        k,
        boundary=astropy_boundary,
        fill_value=fill_value,
        nan_treatment=treatment,
        normalize_kernel=normalize_kernel,
        preserve_nan=preserve_nan,
        mask=mask,
    )
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        "same",
        boundary=ASTROPY_BOUNDARY[astropy_boundary],
        fill_value=fill_value,
        nan_policy=treatment,
        mask=torch.from_numpy(mask),
        normalize_kernel=normalize_kernel,
        preserve_nan=preserve_nan,
    )
    _close(out, ref, 1e-10)


def test_against_astropy_convolve_fft():
    conv = pytest.importorskip("astropy.convolution")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 80))
    x[rng.random(x.shape) < 0.1] = np.nan
    k = rng.random((15, 15))
    ref = conv.convolve_fft(x, k, boundary="fill", nan_treatment="interpolate")
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        "same",
        method="fft",
        nan_policy="interpolate",
        normalize_kernel=True,
    )
    assert rel_err(out, ref) < 1e-9


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "kwargs", "exc", "words"),
    [
        (torch.ones(5), {"nan_policy": "omit"}, ValueError, "nan_policy must be one of"),
        (torch.ones(5), {"nan_policy": None}, ValueError, "nan_policy must be one of"),
        (torch.arange(5), {"nan_policy": "interpolate"}, ValueError, "floating or complex"),
        (torch.arange(5), {"normalize_kernel": True}, ValueError, "floating or complex"),
        (torch.arange(5), {"preserve_nan": True, "mode": "same"}, ValueError, "floating"),
        (torch.ones(5), {"preserve_nan": True}, ValueError, "mode='same'"),
        (torch.ones(5), {"mask": torch.zeros(5, dtype=torch.bool)}, ValueError, "propagate"),
        (torch.ones(5), {"mask": torch.zeros(5), "nan_policy": "fill"}, TypeError, "boolean"),
        (
            torch.ones(5),
            {"mask": torch.zeros(3, dtype=torch.bool), "nan_policy": "fill"},
            ValueError,
            "broadcast to the input's shape",
        ),
        (
            torch.ones(5),
            {"mask": torch.zeros(2, 5, dtype=torch.bool), "nan_policy": "fill"},
            ValueError,
            "broadcast to the input's shape",
        ),
        (torch.ones(5), {"mask": "yes", "nan_policy": "fill"}, TypeError, "mask must be"),
        (torch.ones(5), {"normalize_kernel": 1}, TypeError, "normalize_kernel must be a bool"),
        (torch.ones(5), {"preserve_nan": "no"}, TypeError, "preserve_nan must be a bool"),
    ],
)
def test_bad_combinations_are_refused(x, kwargs, exc, words):
    kernel = torch.tensor([1, 2, 1]) if not x.is_floating_point() else torch.tensor([1.0, 2, 1])
    with pytest.raises(exc) as info:
        trueconv.convolve(x, kernel, **kwargs)
    assert words in str(info.value)


def test_zero_sum_kernel_cannot_be_normalized():
    with pytest.raises(ValueError, match="sum"):
        trueconv.convolve(torch.ones(6), torch.tensor([1.0, -2.0, 1.0]), normalize_kernel=True)
    # interpolation never divides by the kernel's sum
    out = trueconv.convolve(
        torch.ones(6),
        torch.tensor([1.0, 3.0, 1.0]),
        "same",
        nan_policy="interpolate",
        normalize_kernel=True,
    )
    assert torch.allclose(out, torch.tensor([0.8, 1, 1, 1, 1, 0.8]))


def test_inputs_are_not_changed():
    x = torch.tensor([1.0, math.nan, 3.0, 4.0])
    mask = torch.tensor([False, False, True, False])
    k = torch.tensor([1.0, 1.0])
    before = (x.clone(), mask.clone(), k.clone())
    trueconv.convolve(
        x, k, "same", nan_policy="fill", mask=mask, normalize_kernel=True, preserve_nan=True
    )
    trueconv.convolve(x, k, nan_policy="interpolate", mask=mask)
    assert torch.equal(x.isnan(), before[0].isnan())
    assert torch.equal(torch.nan_to_num(x), torch.nan_to_num(before[0]))
    assert torch.equal(mask, before[1])
    assert torch.equal(k, before[2])
