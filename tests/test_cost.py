"""The cost model: every fitted constant is used, constants name their source, and the
block-length rule reproduces the measurements it documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trueconv import _cost
from trueconv._methods import overlap_add

VARIANTS = ("shift_add", "conv", "fft", "overlap_add")


def _row(device: str, dclass: str) -> dict:
    return _cost.constants(device)[dclass]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("dtype", "dclass"), [(torch.float32, "float32"), (torch.float64, "float64")]
)
def test_predict_uses_each_constant(variant, dtype, dclass):
    row = _row("cpu", dclass)
    if f"{variant}_call" not in row:
        pytest.skip(f"{variant} has no {dclass} constants (not eligible there)")
    unit = row[f"{variant}_{_cost.UNIT[variant]}"]
    assert _cost.predict(_cost.Counts(variant, 1, 0), dtype, "cpu") == row[f"{variant}_call"]
    assert _cost.predict(_cost.Counts(variant, 0, 1), dtype, "cpu") == unit
    assert _cost.predict(_cost.Counts(variant, 0, 0, 1), dtype, "cpu") == row.get(
        f"{variant}_pass", 0.0
    )
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    factor = _cost.COMPLEX_FACTOR[variant]
    assert _cost.predict(_cost.Counts(variant, 0, 1), complex_dtype, "cpu") == factor * unit


def test_fitted_constants_name_an_existing_source():
    recorded = json.loads(_cost.CONSTANTS_FILE.read_text())
    for device, table in recorded["devices"].items():
        source = Path(__file__).resolve().parents[1] / table["source"]
        assert source.is_file(), f"{device} constants cite {table['source']}, which is missing"
        assert recorded["sources"][device]["results"] == table["source"]


def test_devices_without_fitted_constants_are_marked_unfitted():
    assert "cuda" not in json.loads(_cost.CONSTANTS_FILE.read_text())["devices"]
    assert "unfitted" in _cost.constants("cuda")["source"]


@pytest.mark.parametrize(("k", "best_block"), [(16, 256), (256, 2048), (4096, 16384)])
def test_block_length_reproduces_the_measured_optima(k, best_block):
    # overlap_add's module docstring: the best blocks measured for 2**20 samples
    assert overlap_add.block_length(2**20, k) + k - 1 == best_block


def test_block_length_declines_when_no_block_is_shorter_than_the_signal():
    assert overlap_add.block_length(100, 99) is None
    assert overlap_add.block_length(1, 5) is None
    assert overlap_add.block_length(5, 1) is None
