"""trueconv.compile_loops and ``trueconv compile``: the CPU loops compiled ahead of their first
call, for the dtypes asked, with the signatures the calls then use."""

from __future__ import annotations

import pytest
import torch

import trueconv
from trueconv._methods import rows, rows_separable
from trueconv.cli import main

needs_numba = pytest.mark.skipif(not rows.AVAILABLE, reason="numba not installed")


def _compiled(kernel: object, arg: int) -> set[str]:
    """The element types of argument ``arg`` (an array: the input) over the signatures a numba
    dispatcher holds machine code for."""
    return {str(sig[arg].dtype) for sig in kernel.signatures}  # type: ignore[attr-defined]


@needs_numba
def test_the_loops_are_compiled_for_the_dtypes_asked():
    got = trueconv.compile_loops(["float32", torch.int64])
    assert list(got) == ["float32", "int64"]
    assert all(s >= 0 for s in got.values())
    assert {"float32", "int64"} <= _compiled(rows._kernel(), 0)
    assert "float32" in _compiled(rows_separable._kernel(), 1)  # integers have no fused loop


@needs_numba
def test_a_call_after_it_uses_the_signature_compiled():
    trueconv.compile_loops(["float32"])
    before = len(rows._kernel().signatures)
    x, k = torch.rand(40, 50), torch.rand(5, 5)
    y = trueconv.convolve(x, k, "same", method="direct")
    assert len(rows._kernel().signatures) == before  # nothing compiled for the real call
    ref = torch.nn.functional.conv2d(
        x[None, None].double(), k.flip(0, 1)[None, None].double(), padding=2
    )
    torch.testing.assert_close(y.double(), ref[0, 0], rtol=1e-5, atol=1e-5)


def test_without_the_loops_nothing_is_compiled(monkeypatch):
    monkeypatch.setattr(rows, "AVAILABLE", False)
    assert trueconv.compile_loops() == {}


@pytest.mark.parametrize(
    ("dtypes", "error", "message"),
    [
        (
            ["float16"],
            ValueError,
            "dtypes may hold complex128, complex64, float32, float64, int64; got 'float16'",
        ),
        ([torch.bool], ValueError, "got torch.bool"),
        ("float32", TypeError, "dtypes must be a sequence of dtypes or dtype names"),
        (torch.float32, TypeError, "got torch.float32 of type dtype"),
        ([3], ValueError, "got 3"),
    ],
)
def test_bad_dtypes_are_named(dtypes, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        trueconv.compile_loops(dtypes)


@needs_numba
def test_cli_compiles_and_says_how_long(capsys):
    assert main(["compile", "--dtypes", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("float32: ready in ")
    assert out.rstrip().endswith(" s")


def test_cli_refuses_a_dtype_in_one_line(capsys):
    assert main(["compile", "--dtypes", "float16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--dtypes may hold" in err
    assert "'float16'" in err


def test_cli_without_numba_says_so(capsys, monkeypatch):
    monkeypatch.setattr(rows, "AVAILABLE", False)
    assert main(["compile"]) == 0
    assert "nothing to compile: numba is not installed" in capsys.readouterr().out
