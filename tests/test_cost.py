"""The cost model: every fitted constant is used, constants name their source, and the
block-length rule reproduces the measurements it documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trueconv._methods import overlap_add
from trueconv.core import cost as _cost
from trueconv.core.transforms import next_fast_len

VARIANTS = ("shift_add", "conv", "fft", "overlap_add", "nn_direct", "nn_fft")


NN_VARIANTS = ("nn_direct", "nn_fft")


def _row(device: str, dclass: str) -> dict:
    return _cost.constants(device)[dclass]


_FITTED = [
    (variant, dtype)
    for dclass, dtype in (("float32", torch.float32), ("float64", torch.float64))
    for variant in VARIANTS
    if f"{variant}_call" in _row("cpu", dclass)
]


@pytest.mark.parametrize(("variant", "dtype"), _FITTED)
def test_predict_uses_each_constant(variant, dtype):
    row = _row("cpu", str(dtype).removeprefix("torch."))
    unit = row[f"{variant}_{_cost.UNIT[variant]}"]
    assert _cost.predict(_cost.Counts(variant, 1, 0), dtype, "cpu") == row[f"{variant}_call"]
    assert _cost.predict(_cost.Counts(variant, 0, 1), dtype, "cpu") == unit
    assert _cost.predict(_cost.Counts(variant, 0, 0, 1), dtype, "cpu") == row.get(
        f"{variant}_pass", 0.0
    )
    assert _cost.predict(_cost.Counts(variant, 0, 0, 0, 1), dtype, "cpu") == row.get(
        f"{variant}_aux", 0.0
    )
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    factor = _cost.COMPLEX_FACTOR[variant]
    assert _cost.predict(_cost.Counts(variant, 0, 1), complex_dtype, "cpu") == factor * unit


def test_every_cpu_method_has_fitted_constants():
    for dclass in ("float32", "float64"):
        for variant in ("shift_add", "fft", "overlap_add", "nn_direct", "nn_fft"):
            assert f"{variant}_call" in _row("cpu", dclass), (variant, dclass)


def test_fitted_constants_name_an_existing_source():
    recorded = json.loads(_cost.CONSTANTS_FILE.read_text())
    for device, table in recorded["devices"].items():
        source = Path(__file__).resolve().parents[1] / table["source"]
        assert source.is_file(), f"{device} constants cite {table['source']}, which is missing"
        assert recorded["sources"][device]["results"] == table["source"]


def test_devices_without_fitted_constants_are_marked_unfitted():
    assert "xpu" not in json.loads(_cost.CONSTANTS_FILE.read_text())["devices"]
    assert "unfitted" in _cost.constants("xpu")["source"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fitted_devices_have_every_constant_the_model_reads(device):
    table = _cost.constants(device)
    assert table["source"].startswith("benchmarks/results/calibration-")
    for dclass in ("float32", "float64"):
        for variant, unit in _cost.UNIT.items():
            if device == "cpu" and variant == "conv":
                continue  # never runs for signal problems on the CPU (direct.variant)
            if device != "cpu" and variant in ("rows", "fused"):
                continue  # the compiled loops run on the CPU only (direct.variant, _separable)
            if variant.startswith("nn_") and not _cost.has_constants(NN_VARIANTS, device):
                continue  # the NN API's fallback rule (trueconv.nn._plan) reads no constants
            row = table[dclass]
            assert row[f"{variant}_call"] >= 0
            assert row[f"{variant}_{unit}"] >= 0
            # the fit may put all size-dependent cost on one of the two per-element terms
            assert row[f"{variant}_{unit}"] + row.get(f"{variant}_pass", 0.0) > 0, (dclass, variant)


@pytest.mark.parametrize(("k", "best_block"), [(16, 256), (256, 2048), (4096, 16384)])
def test_block_length_reproduces_the_measured_optima(k, best_block):
    # overlap_add's module docstring: the best blocks measured for 2**20 samples
    assert overlap_add.block_length(2**20, k) + k - 1 == best_block


def test_blocks_of_multi_dim_transforms_take_every_fft_length():
    # overlap_add.blocked_dims: 2048 ⊛ 63 in 4 blocks of 514 (L = 576), not 5 of 450 (L = 512)
    assert overlap_add.blocked_dims((2048, 2048), (63, 63)) == [514, 514]
    # counted over the output the blocks make: 'full' covers 2110 samples, 5 blocks of 514
    full = overlap_add.blocked_dims((2048, 2048), (63, 63), (2110, 2110))
    assert full[0] != 514
    assert full[0] == full[1]
    # 1-D transforms keep the powers of two, a batch dim riding along or not
    for sa, sb in (((2**20,), (4096,)), ((64, 16384), (1, 129))):
        for _n, k, s in zip(sa, sb, overlap_add.blocked_dims(sa, sb)):
            if s is not None:
                length = s + k - 1
                assert length & (length - 1) == 0, (sa, sb, length)
    # whether a dim is blocked stays the powers of two's call
    assert overlap_add.blocked_dims((1024, 1024), (31, 31)) == [None, None]
    # every block's transform length is one the FFT method uses
    for sa, sb in (((2048, 2048), (31, 31)), ((4096, 4096), (63, 63)), ((1100, 1000), (3, 4))):
        for cover in (sa, [n + k - 1 for n, k in zip(sa, sb)]):
            for k, s in zip(sb, overlap_add.blocked_dims(sa, sb, cover)):
                assert s is not None
                assert next_fast_len(s + k - 1) == s + k - 1


def test_large_images_are_blocked_where_the_powers_of_two_decline():
    # overlap_add.WHOLE_SPECTRUM_BYTES: 2048² ⊛ 127² transforms 2176² whole, a spectrum of 19
    # MiB in float32 (8-byte complex elements): every FFT length may block it
    assert overlap_add.block_length(2048, 127) is None
    assert overlap_add.blocked_dims((2048, 2048), (127, 127)) == [None, None]
    blocks = overlap_add.blocked_dims((2048, 2048), (127, 127), None, 8)
    assert blocks == [1026, 1026]
    assert next_fast_len(blocks[0] + 126) == blocks[0] + 126
    # a smaller whole spectrum (1024² ⊛ 31² in float32: 4.5 MiB) keeps the powers of two's call
    assert overlap_add.blocked_dims((1024, 1024), (31, 31), None, 8) == [None, None]
    # volumes keep it at any size (192³ ⊛ 15³: 39 MiB)
    assert overlap_add.blocked_dims((192,) * 3, (15,) * 3, None, 8) == [None] * 3
    # the planner: one float32 image blocked, and a batch of three alike (in groups of images)
    x, w = torch.empty(2048, 2048), torch.empty(127, 127)
    for xs, ws in ((x, w), (x.expand(3, -1, -1), w[None])):
        plan = overlap_add.plan(_problem(xs, ws), torch.device("cpu"))
        assert plan is not None
        assert plan.layout.blocks[-2:] == (1026, 1026)
        # measured on the CPU only: a GPU's plan keeps the powers of two's call
        assert overlap_add.plan(_problem(xs, ws), torch.device("cuda")) is None
    # and its boxes keep every image (3 × 2048² ⊛ 63²: groups of one image on the CPU)
    xb, wb = torch.empty(3, 2048, 2048), torch.empty(1, 63, 63)
    on_cpu = overlap_add.plan(_problem(xb, wb), torch.device("cpu"))
    on_gpu = overlap_add.plan(_problem(xb, wb), torch.device("cuda"))
    assert on_cpu is not None
    assert on_gpu is not None
    assert (on_cpu.images, on_gpu.images) == (1, 0)


def test_overlap_add_counts_the_multi_dim_inverse_copies():
    # overlap_add.plan: aux = two copies of every output block's spectrum, multi-dim only
    cpu = torch.device("cpu")
    x, w = torch.empty(3, 1024, 1024), torch.empty(1, 15, 15)
    plan = overlap_add.plan(_problem(x, w), cpu)
    assert plan is not None
    blocks = [b for b in plan.layout.blocks if b is not None]
    lens = [t for t in plan.layout.tlens if t is not None]
    assert len(lens) == 2
    nb = 1
    for n, b in zip((1024, 1024), blocks):
        nb *= -(-n // b)
    assert plan.counts.aux == 2 * nb * 3 * lens[0] * lens[1]
    one_dim = overlap_add.plan(_problem(torch.empty(2**20), torch.empty(256)), cpu)
    assert one_dim is not None
    assert one_dim.counts.aux == 0


def _problem(x: torch.Tensor, w: torch.Tensor):
    from trueconv import _spec
    from trueconv._problem import Problem

    return Problem.of(_spec.normalize("convolve", x, w, "same", None, "auto", "fill", 0)[2])


def test_block_length_declines_when_no_block_is_shorter_than_the_signal():
    assert overlap_add.block_length(100, 99) is None
    assert overlap_add.block_length(1, 5) is None
    assert overlap_add.block_length(5, 1) is None


def test_measure_remembers_the_winner_and_auto_runs_it(monkeypatch):
    import numpy as np
    import scipy.signal

    import trueconv
    import trueconv.signal
    from trueconv import _plan
    from trueconv._methods import REGISTRY
    from trueconv._spec import normalize

    x = torch.randn(3000, dtype=torch.float64)
    k = torch.randn(200, dtype=torch.float64)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    predicted = _plan.predicted(spec, x.device)
    # make the timing crown a method the cost model would not pick
    forced = next(m for m in _plan.feasible(spec) if m != predicted)
    monkeypatch.setattr(_plan, "_MEASURED", {})
    monkeypatch.setattr(
        trueconv.signal, "_timed", lambda x, k, s: 0.0 if s.method == forced else 1.0
    )
    assert trueconv.choose_method(x, k, "same", measure=True) == forced
    assert trueconv.choose_method(x, k, "same") == forced  # remembered for this problem
    ran = []
    for name, module in REGISTRY.items():
        real = module.run
        monkeypatch.setattr(module, "run", lambda *a, _n=name, _r=real: ran.append(_n) or _r(*a))
    y = trueconv.convolve(x, k, "same")
    assert ran == [forced]
    ref = scipy.signal.convolve(x.numpy(), k.numpy(), "same")
    assert np.abs(y.numpy() - ref).max() <= 1e-12 * np.abs(ref).max()
    # another problem is not affected
    other = normalize("convolve", x[:2999], k, "same", None, "auto", "fill", 0)[2]
    assert trueconv.choose_method(x[:2999], k, "same") == _plan.predicted(other, x.device)


def test_measure_really_times_every_feasible_method():
    import trueconv
    from trueconv import _plan
    from trueconv._spec import normalize

    x = torch.randn(5000, dtype=torch.float64)
    k = torch.randn(300, dtype=torch.float64)
    winner = trueconv.choose_method(x, k, "full", measure=True)
    spec = normalize("convolve", x, k, "full", None, "auto", "fill", 0)[2]
    assert winner in _plan.feasible(spec)
    _plan._MEASURED.pop((spec, x.device))


def test_the_direct_margin_is_a_fifth_of_the_direct_time_capped_per_device():
    assert _cost.direct_margin(1e-3, "cpu") == pytest.approx(2e-4)
    assert _cost.direct_margin(1e-2, "cpu") == _cost.DIRECT_MARGIN_S["cpu"]
    assert _cost.direct_margin(1e-4, "cuda") == pytest.approx(2e-5)
    assert _cost.direct_margin(1.0, "cuda") == _cost.OTHER_MARGIN_S
