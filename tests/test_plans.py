"""One plan per call: each method plans a problem once, the plan is priced once, and what runs
is what was planned; ``choose_method`` reads the same plan, also from shapes alone."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

import trueconv
from conftest import REL_TOL, rel_err
from trueconv import _plan, _separable, _spec
from trueconv._methods import REGISTRY, direct, fft, overlap_add
from trueconv._problem import Problem

# (input, kernel, mode): 'auto' picks each method on one of these
PROBLEMS = [
    ((1000,), (3,), "full"),  # direct
    ((1024, 1024), (31, 31), "same"),  # fft
    ((2**18,), (1000,), "full"),  # overlap-add
    ((4, 20_000), (4, 2000), "same"),  # per-signal kernels
]


def _spies(monkeypatch) -> dict[str, int]:
    """Count the planning work of every method: the FFT layout, overlap-add's layout and
    boxes, the direct variant."""
    calls = {"fft.layout": 0, "overlap_add._layout": 0, "overlap_add._boxes": 0, "variant": 0}
    for module, name, key in [
        (fft, "layout", "fft.layout"),
        (overlap_add, "_layout", "overlap_add._layout"),
        (overlap_add, "_boxes", "overlap_add._boxes"),
        (direct, "variant", "variant"),
    ]:
        real = getattr(module, name)

        def spy(*args, _real=real, _key=key, **kwargs):
            calls[_key] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize(("xs", "ks", "mode"), PROBLEMS)
def test_auto_plans_each_method_once_and_runs_without_planning_again(monkeypatch, xs, ks, mode):
    x, k = torch.zeros(xs), torch.zeros(ks)
    dims = tuple(range(-len(ks), 0)) if len(xs) == len(ks) else None
    spec = _spec.normalize("convolve", x, k, mode, dims, "auto", "fill", 0)[2]
    blocked = "overlap_add" in _plan.feasible(spec)
    _plan._auto.cache_clear()
    _plan.cheapest.cache_clear()
    # the separable plan's passes are problems of their own (tests/test_separable.py)
    monkeypatch.setattr(_separable, "plan", lambda *args, **kwargs: None)
    calls = _spies(monkeypatch)
    chosen = trueconv.choose_method(x, k, mode, dims=dims)
    # every method planned once: one layout each, overlap-add's boxes only where it blocks
    assert calls["fft.layout"] == 1
    assert calls["overlap_add._layout"] == 1
    assert calls["variant"] == 1
    planned = dict(calls)
    ran = []
    for name, module in REGISTRY.items():
        real_run = module.run
        monkeypatch.setattr(
            module, "run", lambda *a, _n=name, _r=real_run: ran.append(_n) or _r(*a)
        )
    trueconv.convolve(x, k, mode, dims=dims)
    trueconv.convolve(x, k, mode, dims=dims)
    assert ran == [chosen, chosen]
    assert calls == planned  # running planned nothing again
    assert blocked == (calls["overlap_add._boxes"] == 1)


def test_choose_method_and_auto_read_one_plan():
    x, k = torch.zeros(2**20), torch.zeros(4096)
    spec = _spec.normalize("convolve", x, k, "full", None, "auto", "fill", 0)[2]
    p = _plan.plan(spec, x.device)
    assert p is _plan.plan(spec, x.device)
    assert trueconv.choose_method(x, k) == p.method == "overlap_add"


def test_a_requested_method_runs_its_own_plan_with_the_counts_it_ran():
    """Forced overlap-add: one layout and one set of boxes, made once for the plan and run (its
    counts price float64 at float32's box count: overlap_add.BOX_MAX); a repeated call with
    the same shapes reuses the plan, as 'auto' does (no boxes made again)."""
    x = torch.randn(3, 200_000, dtype=torch.float64)
    k = torch.randn(300, dtype=torch.float64)
    spec = _spec.normalize("convolve", x, k, "same", None, "overlap_add", "fill", 0)[2]
    p = _plan.plan(spec, x.device)
    assert p.method == "overlap_add"
    assert p.counts.variant == "overlap_add"
    assert len(p.boxes) > 2  # type: ignore[attr-defined]
    calls: list[int] = []
    real = overlap_add._boxes
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(overlap_add, "_boxes", lambda *a: calls.append(1) or real(*a))
        _plan.forget()  # the plan above is cached: the call makes it afresh
        out = trueconv.convolve(x, k, "same", method="overlap_add")
        assert calls == [1]
        again = trueconv.convolve(x, k, "same", method="overlap_add")
    assert calls == [1]
    assert torch.equal(again, out)
    ref = scipy.signal.fftconvolve(x.numpy(), k.numpy()[None], "same", axes=-1)
    assert rel_err(out, ref) < REL_TOL[torch.float64]


def test_overlap_add_cuts_boxes_by_bytes_for_multidim_transforms_only():
    """float64 boxes hold half float32's elements where the blocks' transforms are multi-dim
    (a batch past a few MiB slows the inverse); 1-D transforms keep float32's boxes (a box of
    one 2^17-point block ran 2^20 ⊛ 65536 float64 2.5x slower: overlap_add.BOX_MAX)."""

    def boxes(shape, kshape, dtype):
        x, k = torch.zeros(shape, dtype=dtype), torch.zeros(kshape, dtype=dtype)
        spec = _spec.normalize("convolve", x, k, "full", None, "overlap_add", "fill", 0)[2]
        return _plan.plan(spec, x.device).boxes  # type: ignore[attr-defined]

    one_d = (1 << 20,), (65536,)
    assert boxes(*one_d, torch.float64) == boxes(*one_d, torch.float32)
    assert len(boxes(*one_d, torch.float64)) < 16  # not one block per box
    two_d = (2048, 2048), (63, 63)
    assert len(boxes(*two_d, torch.float64)) > len(boxes(*two_d, torch.float32))


def test_overlap_add_declines_what_it_would_only_complicate_and_runs_fft_when_asked():
    x, k = torch.randn(256, 256, dtype=torch.float64), torch.randn(31, 31, dtype=torch.float64)
    spec = _spec.normalize("convolve", x, k, "full", None, "auto", "fill", 0)[2]
    assert "overlap_add" not in _plan.feasible(spec)
    forced = _plan.forced(spec, x.device, "overlap_add")
    assert forced.inner is not None  # type: ignore[attr-defined]
    assert forced.counts == _plan.forced(spec, x.device, "fft").counts
    out = trueconv.convolve(x, k, method="overlap_add")
    np.testing.assert_allclose(
        out.numpy(), scipy.signal.convolve2d(x.numpy(), k.numpy()), atol=1e-9
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.int32])
@pytest.mark.parametrize(("xs", "ks", "mode"), PROBLEMS)
def test_shapes_alone_give_the_same_plan(xs, ks, mode, dtype):
    dims = tuple(range(-len(ks), 0)) if len(xs) == len(ks) else None
    zero = torch.zeros((), dtype=dtype)
    from_tensors = trueconv.choose_method(zero.expand(xs), zero.expand(ks), mode, dims=dims)
    from_shapes = trueconv.choose_method(xs, ks, mode, dims=dims, shapes=True, dtype=dtype)
    assert from_shapes == from_tensors
    size = torch.Size(xs)
    assert (
        trueconv.choose_method(size, ks, mode, dims=dims, shapes=True, dtype=dtype) == from_shapes
    )


def test_shapes_default_to_the_default_dtype_and_the_cpu():
    assert trueconv.choose_method((100_000,), (5000,), shapes=True) == trueconv.choose_method(
        torch.zeros(100_000), torch.zeros(5000)
    )
    assert trueconv.choose_method((10**12,), (3,), shapes=True, device="cpu") == "direct"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shapes": True, "measure": True}, ValueError, "measure=True times the methods on data"),
        ({"dtype": torch.float32}, ValueError, "dtype and device describe operands given as"),
        ({"device": "cpu"}, ValueError, "dtype and device describe operands given as"),
        ({"shapes": 1}, TypeError, "shapes must be a bool"),
        ({"shapes": True, "dtype": "float32"}, TypeError, "dtype must be a torch.dtype"),
        ({"shapes": True, "device": "tpu7"}, ValueError, "device must be a torch device"),
    ],
)
def test_shapes_arguments_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        trueconv.choose_method((8,), (3,), **kwargs)


@pytest.mark.parametrize("shape", [(4, -1), (2.0,), "abc", 5, [True]])
def test_a_shape_must_be_non_negative_ints(shape):
    with pytest.raises(TypeError, match="input must be a shape"):
        trueconv.choose_method(shape, (3,), shapes=True)


def test_measured_winners_are_bounded(monkeypatch):
    monkeypatch.setattr(_plan, "_MEASURED", {})
    monkeypatch.setattr(_plan, "MEASURED_MAX", 8)
    x, k = torch.zeros(50), torch.zeros(3)
    specs = [
        _spec.normalize("convolve", x[:n], k, "full", None, "auto", "fill", 0)[2]
        for n in range(10, 30)
    ]
    for spec in specs:
        _plan.remember(spec, x.device, "fft")
    assert len(_plan._MEASURED) == 8
    assert (specs[-1], x.device) in _plan._MEASURED
    assert (specs[0], x.device) not in _plan._MEASURED  # the oldest forgotten first


@pytest.mark.parametrize("separable", [False, True])
def test_a_2d_kernel_whose_dense_plan_is_overlap_add(separable):
    """'auto' asks the separable plan's price cache about the dense plan, so every method's
    plan is hashable (overlap-add's layout held lists: a TypeError on 2048² ⊛ 31² float32)."""
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((64, 16384)))
    k = torch.from_numpy(rng.standard_normal((5, 127)))
    if separable:
        k = torch.outer(k[:, 0], k[0])
    spec = _spec.normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    dense = _plan.cheapest(Problem.of(spec), x.device)
    assert dense.method == "overlap_add"
    for method in REGISTRY:
        hash(_plan.forced(spec, x.device, method))
    got = trueconv.convolve(x, k, "same")
    want = scipy.signal.convolve(x.numpy(), k.numpy(), "same", method="direct")
    assert rel_err(got, want) < REL_TOL[torch.float64]


@pytest.mark.parametrize(
    ("direct_ms", "fft_ms", "picked"),
    [
        (1.0, 0.85, "direct"),  # saves 15% < 20% of the direct time
        (1.0, 0.75, "fft"),  # saves 25%
        (0.2, 0.1, "fft"),  # half the time, though only 0.1 ms (an absolute 0.5 ms kept it)
        (10.0, 9.6, "direct"),  # saves 0.4 ms < the CPU's 0.5 ms cap
        (10.0, 9.4, "fft"),
    ],
)
def test_auto_leaves_direct_when_a_transform_saves_a_fifth_or_half_a_millisecond(
    monkeypatch, direct_ms, fft_ms, picked
):
    seconds = {"direct": direct_ms * 1e-3, "fft": fft_ms * 1e-3, "overlap_add": 1.0}
    monkeypatch.setattr(_plan, "_price", lambda p, device: seconds[p.method])
    x, k = torch.randn(300, 300), torch.randn(9, 9)  # every method feasible; none run
    _, _, spec = _spec.normalize("convolve", x, k, "full", None, "auto", "fill", 0)
    _plan.forget()
    try:
        assert _plan.cheapest(Problem.of(spec), torch.device("cpu")).method == picked
    finally:
        _plan.forget()


def test_fft_counts_price_each_calls_set_up_by_its_lengths_not_its_batch():
    """torch's CPU transforms set each call up in time proportional to the transformed
    lengths, whatever the batch (one 16384-point rfft 194 us, 21 us a row in a batch of 60):
    ``aux`` counts the three calls' lengths, the work counts the batch."""
    cpu = torch.device("cpu")
    one, many = (
        _plan.forced(
            _spec.normalize("convolve", x, torch.randn(1024), "full", -1, "fft", "fill", 0)[2], cpu
        )
        for x in (torch.randn(16384), torch.randn(64, 16384))
    )
    assert one.lens == many.lens == (17496,)  # 16384 + 1023 → 8 · 3^7
    assert one.counts.aux == many.counts.aux == 3 * 17496
    # the signal and output 64 transforms each, the kernel one
    assert many.counts.units == pytest.approx((64 + 1 + 64) / 3 * one.counts.units)
