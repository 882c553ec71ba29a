"""Every bad argument raises ``ValueError``/``TypeError`` before any compute, with a message that
names the function, the argument, what was given and what is allowed; inputs stay unmodified.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import trueconv
from trueconv import _plan, signal
from trueconv._methods import REGISTRY

FUNCS = ("convolve", "correlate")
ALL_FUNCS = (*FUNCS, "choose_method")
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symmetric", "reflect", "replicate")


@pytest.fixture(autouse=True)
def no_compute(monkeypatch):
    """Reaching the planner, a method or the executor means validation came too late."""

    def reached(*args, **kwargs):
        raise AssertionError("compute was reached before the argument error was raised")

    monkeypatch.setattr(signal, "_execute", reached)
    monkeypatch.setattr(_plan, "choose", reached)
    for module in REGISTRY.values():
        monkeypatch.setattr(module, "run", reached)


def _snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return None


def raises(exc_type, fname, *args, match, **kwargs):
    """Call ``trueconv.<fname>`` expecting ``exc_type`` matching ``match``; inputs unchanged."""
    before = [(a, _snapshot(a)) for a in args]
    with pytest.raises(exc_type, match=match) as info:
        getattr(trueconv, fname)(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{fname}(): "), message
    for value, snap in before:
        if isinstance(value, torch.Tensor) and value.device.type != "meta":  # meta has no data
            assert torch.equal(value, snap)
            assert value.dtype == snap.dtype
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, snap)
    return message


def _x():
    return torch.arange(12.0).reshape(3, 4)


def _k():
    return torch.tensor([[1.0, -2.0], [0.5, 3.0]])


# --------------------------------------------------------------------------------------------
# mode / method / boundary: the message lists every choice and repeats what was given
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("mode", ["sme", "FULL", "Same", "", None, 1])
def test_unknown_mode(fname, mode):
    allowed = ", ".join(repr(m) for m in MODES)
    match = re.escape(f"mode must be one of {allowed}; got {mode!r}")
    raises(ValueError, fname, _x(), _k(), mode, match=match)


@pytest.mark.parametrize("fname", FUNCS)
@pytest.mark.parametrize("method", ["fourier", "Direct", "FFT", "", None, "overlap-add"])
def test_unknown_method(fname, method):
    message = raises(ValueError, fname, _x(), _k(), method=method, match=r"method must be one of")
    assert f"got {method!r}" in message
    for name in ("auto", *sorted(REGISTRY)):  # every registered method, however many there are
        assert repr(name) in message, f"{name!r} missing from: {message}"


def test_choose_method_takes_no_method_argument():
    with pytest.raises(TypeError, match="method"):
        trueconv.choose_method(_x(), _k(), method="direct")


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(
    "boundary",
    [
        "mirror",  # scipy.ndimage names are rejected on purpose (its 'reflect' is our 'symmetric')
        "nearest",
        "periodic",
        "Reflect",
        "zero",
        "",
        None,
        0,
    ],
)
def test_unknown_boundary(fname, boundary):
    message = raises(
        ValueError, fname, _x(), _k(), boundary=boundary, match=r"boundary must be one of"
    )
    assert message.rstrip(".").endswith(f"got {boundary!r}"), message
    for name in BOUNDARIES:
        assert repr(name) in message, f"{name!r} missing from: {message}"
    for alias in ("constant", "zeros", "circular", "symm", "edge"):
        assert repr(alias) in message, f"alias {alias!r} missing from: {message}"


# --------------------------------------------------------------------------------------------
# dims
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("dims", [(0, 0), (1, -1), [0, 1, 0], (-2, 0)])
def test_duplicate_dims(fname, dims):
    match = re.escape(f"dims must not repeat a dimension; got dims={dims!r}")
    raises(ValueError, fname, _x(), _k(), dims=dims, match=match)


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(("dims", "bad"), [(2, 2), (-3, -3), ((0, 5), 5), ([-1, 7], 7)])
def test_out_of_range_dims(fname, dims, bad):
    match = re.escape(f"dims entry {bad} is out of range for 2-dimensional operands")
    message = raises(ValueError, fname, _x(), _k(), dims=dims, match=match)
    assert "-2 to 1" in message  # what is allowed
    assert f"dims={dims!r}" in message  # what was given


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("dims", [1.0, "0", "-1", [0, 1.5], True, (True,), (0, None), {0: 1}])
def test_non_integer_dims(fname, dims):
    message = raises(TypeError, fname, _x(), _k(), dims=dims, match=r"dims must be")
    assert "int" in message
    assert repr(dims) in message


@pytest.mark.parametrize(("good", "bad"), [(1, True), ((1,), (True,)), ([0, 1], [False, 1])])
def test_bool_dims_refused_after_the_int_call_ran(monkeypatch, good, bad):
    """The spec cache keys ``dims`` with its types: ``True == 1`` in Python, but ``dims=True``
    stays refused after ``dims=1`` was described and stored."""
    monkeypatch.undo()  # the valid call computes
    trueconv.convolve(torch.ones(2, 4), torch.ones(2, 3), dims=good)
    with pytest.raises(TypeError, match="dims must be"):
        trueconv.convolve(torch.ones(2, 4), torch.ones(2, 3), dims=bad)


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(("x_shape", "k_shape"), [((5,), (2, 3)), ((), (3,)), ((4, 4), (1, 2, 2))])
def test_kernel_with_more_dims_and_no_dims(fname, x_shape, k_shape):
    x, k = torch.ones(x_shape), torch.ones(k_shape)
    message = raises(ValueError, fname, x, k, match=r"kernel has more dims")
    assert str(tuple(k_shape)) in message
    assert str(tuple(x_shape)) in message
    assert "dims=" in message  # the way out


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(
    ("x_shape", "k_shape", "dims"),
    [
        ((2, 5), (3, 4), -1),
        ((2, 5), (3, 4), (1,)),
        ((4, 2, 6, 6), (3, 3, 3), (-2, -1)),
        ((2, 3, 8), (3, 2, 3), (2,)),
    ],
)
def test_batch_dims_that_do_not_broadcast(fname, x_shape, k_shape, dims):
    x, k = torch.ones(x_shape), torch.ones(k_shape)
    message = raises(ValueError, fname, x, k, dims=dims, match=r"do not broadcast")
    assert str(tuple(x_shape)) in message
    assert str(tuple(k_shape)) in message


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(
    ("x_shape", "k_shape"), [((5, 3), (3, 5)), ((2, 6), (3, 2)), ((4, 4, 4), (2, 5, 4))]
)
def test_mixed_dominance_in_valid(fname, x_shape, k_shape):
    x, k = torch.ones(x_shape), torch.ones(k_shape)
    message = raises(ValueError, fname, x, k, "valid", match=r"mode='valid'")
    assert f"input sizes {tuple(x_shape)}" in message
    assert f"kernel sizes {tuple(k_shape)}" in message


# --------------------------------------------------------------------------------------------
# operands: non-numeric data and unsupported dtypes
# --------------------------------------------------------------------------------------------

NON_NUMERIC = [
    pytest.param("abc", id="str"),
    pytest.param(b"abc", id="bytes"),
    pytest.param(None, id="None"),
    pytest.param(np.array(["a", "b"]), id="str-array"),
    pytest.param(np.array([1, "a"], dtype=object), id="mixed-object-array"),
    pytest.param(np.array([1.0, 2.0], dtype=object), id="numeric-object-array"),
    pytest.param([object(), object()], id="list-of-objects"),
    pytest.param({"a": 1}, id="dict"),
    pytest.param([[1, 2], [3]], id="ragged-list"),
]


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("which", ["input", "kernel"])
@pytest.mark.parametrize("bad", NON_NUMERIC)
def test_non_numeric_operand(fname, which, bad):
    good = torch.tensor([1.0, 2.0, 3.0])
    args = (bad, good) if which == "input" else (good, bad)
    message = raises(TypeError, fname, *args, match=rf"{which} must be a tensor, array")
    assert type(bad).__name__ in message  # what was given


def _optional_dtype(name):
    dtype = getattr(torch, name, None)
    return pytest.param(
        dtype,
        id=name,
        marks=pytest.mark.skipif(dtype is None, reason=f"torch {torch.__version__} has no {name}"),
    )


UNSUPPORTED = [
    _optional_dtype(name) for name in ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2")
]


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("which", ["input", "kernel"])
@pytest.mark.parametrize("dtype", UNSUPPORTED)
def test_unsupported_dtype(fname, which, dtype):
    bad = torch.zeros(4, dtype=dtype)
    good = torch.ones(2)
    args = (bad, good) if which == "input" else (good, bad)
    message = raises(TypeError, fname, *args, match=rf"{which} has dtype {re.escape(str(dtype))}")
    for name in ("float32", "float64", "complex128", "int64", "bool"):  # what is allowed
        assert name in message


# --------------------------------------------------------------------------------------------
# fill_value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(
    ("dtype", "fill", "why"),
    [
        (torch.int64, 0.5, "not an integer"),
        (torch.int32, float("nan"), "not an integer"),
        (torch.int8, 300, "range"),
        (torch.int8, -129, "range"),
        (torch.uint8, -1, "range"),
        (torch.bool, 2, "bool"),
        (torch.float32, 1j, "imaginary"),
        (torch.float64, 2 - 3j, "imaginary"),
        (torch.int64, 1 + 1j, "imaginary"),
        (torch.float32, 1e39, "overflows"),
        (torch.float16, 1e5, "overflows"),
        (torch.bfloat16, 1e39, "overflows"),
    ],
)
def test_fill_value_the_dtype_cannot_hold(fname, dtype, fill, why):
    x = torch.ones(5, dtype=dtype)
    k = torch.ones(3, dtype=dtype)
    message = raises(ValueError, fname, x, k, match=rf"fill_value .*{why}", fill_value=fill)
    assert repr(fill) in message  # what was given
    assert str(dtype).removeprefix("torch.") in message  # the dtype it must fit


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("fill", ["0", None, [0], object()], ids=["str", "None", "list", "object"])
def test_fill_value_not_a_number(fname, fill):
    message = raises(
        TypeError, fname, _x(), _k(), match=r"fill_value must be a number", fill_value=fill
    )
    assert type(fill).__name__ in message


@pytest.mark.parametrize("fname", ALL_FUNCS)
def test_fill_value_tensor_with_several_elements(fname):
    message = raises(
        ValueError,
        fname,
        _x(),
        _k(),
        match=r"fill_value must be a single number",
        fill_value=torch.zeros(2),
    )
    assert "(2,)" in message


# --------------------------------------------------------------------------------------------
# devices: 'meta' stands in for a second device
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize("meta_operand", ["input", "kernel"])
def test_operands_on_different_devices(fname, meta_operand):
    cpu = torch.ones(6)
    meta = torch.ones(3, device="meta")
    args = (meta, cpu) if meta_operand == "input" else (cpu, meta)
    message = raises(ValueError, fname, *args, match=r"must be on the same device")
    if meta_operand == "input":
        assert "input on meta" in message
        assert "kernel on cpu" in message
    else:
        assert "input on cpu" in message
        assert "kernel on meta" in message


# --------------------------------------------------------------------------------------------
# choose_method(measure=...): a bool, and data to time
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("measure", ["yes", "False", 1, 0, None, 1.0, np.int64(1), [True]])
def test_choose_method_measure_must_be_a_bool(measure):
    match = re.escape(f"measure must be a bool (True or False); got {measure!r}")
    message = raises(TypeError, "choose_method", _x(), _k(), match=match, measure=measure)
    assert type(measure).__name__ in message


@pytest.mark.parametrize("measure", [True, False, np.bool_(True), np.bool_(False)])
def test_choose_method_measure_accepts_bools(measure):
    """Validation passes: the call goes on to plan or time (which the fixture stops)."""
    with pytest.raises(AssertionError, match="compute was reached"):
        trueconv.choose_method(_x(), _k(), measure=measure)


@pytest.mark.parametrize("mode", MODES)
def test_choose_method_measure_needs_data(mode):
    x, k = _x().to("meta"), _k().to("meta")
    match = re.escape(
        "choose_method(): measure=True times the methods on the operands' data; meta tensors "
        "have none"
    )
    message = raises(ValueError, "choose_method", x, k, mode, match=match, measure=True)
    assert "measure=False" in message  # the way out


# --------------------------------------------------------------------------------------------
# sizes past what one tensor can hold: a clear error, not torch's from deep inside a method
# --------------------------------------------------------------------------------------------

LIMIT = "at most 2**63 - 1 bytes"


@pytest.mark.parametrize("fname", ALL_FUNCS)
@pytest.mark.parametrize(
    ("x_shape", "k_shape", "dtype", "mode", "kwargs", "what", "shape", "per"),
    [
        # output: 2**62 + 2 elements
        ((2**62,), (3,), torch.int8, "full", {}, "the output", (2**62 + 2,), 8),
        ((2**60,), (3,), torch.float32, "full", {}, "the output", (2**60 + 2,), 8),
        ((3,), (2**60,), torch.float32, "full", {}, "the output", (2**60 + 2,), 8),
        ((2**59 - 1,), (3,), torch.complex128, "full", {}, "the output", (2**59 + 1,), 16),
        ((2**30, 2**30), (3, 3), torch.float32, "full", {}, "the output", (2**30 + 2,) * 2, 8),
        # the output fits, the input extended by the boundary rule does not
        (
            (2**60 - 1,),
            (3,),
            torch.float64,
            "same",
            {"boundary": "wrap"},
            "the input padded for mode='same'",
            (2**60 + 1,),
            8,
        ),
        # the kernel plays the signal, zero-padded by n - 1 on both sides
        (
            (2**39,),
            (2**60 - 2**39,),
            torch.float32,
            "full",
            {},
            "the kernel padded for mode='full'",
            (2**60 + 2**39 - 2,),
            8,
        ),
    ],
)
def test_too_large_for_one_tensor(fname, x_shape, k_shape, dtype, mode, kwargs, what, shape, per):
    """Meta operands: their shapes are real, their data absent (nothing is allocated)."""
    x = torch.empty(x_shape, dtype=dtype, device="meta")
    k = torch.empty(k_shape, dtype=dtype, device="meta")
    elements = int(np.prod(shape, dtype=object))
    match = re.escape(f"{what} must fit in one tensor, {LIMIT} at {per} bytes per element")
    message = raises(ValueError, fname, x, k, mode, match=match, **kwargs)
    assert f"got shape {shape}, {elements} elements ({elements * per} bytes)" in message
    assert str(dtype).removeprefix("torch.") in message


@pytest.mark.parametrize("fname", ALL_FUNCS)
def test_too_large_stride_zero_operand(fname):
    """A stride-0 view holds one element however large its shape; its output cannot."""
    x = torch.zeros(()).expand(2**62)  # not snapshotted: a clone would allocate 2**64 bytes
    with pytest.raises(ValueError, match=re.escape(f"the output must fit in one tensor, {LIMIT}")):
        getattr(trueconv, fname)(x, torch.ones(3))
    with pytest.raises(ValueError, match=re.escape(f"{fname}(): the output must fit")):
        getattr(trueconv, fname)(torch.ones(3), x, "valid")


# --------------------------------------------------------------------------------------------
# inputs stay unmodified when an error is raised (numpy operands too)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname", FUNCS)
def test_numpy_inputs_unmodified_on_error(fname):
    x = np.arange(15.0).reshape(3, 5)
    k = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])  # wider than x, shorter: mixed dominance
    raises(ValueError, fname, x, k, "valid", match=r"mode='valid'")
    raises(ValueError, fname, x, k, boundary="mirror", match=r"boundary must be")
    x_int = np.arange(5, dtype=np.int8)
    raises(ValueError, fname, x_int, x_int, match=r"fill_value", fill_value=0.5)
