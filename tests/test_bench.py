"""Smoke test of the benchmark harness and `trueconv bench` (the real runs live in
benchmarks/; here only that the command works end to end on one tiny case)."""

from __future__ import annotations

import json

import pytest

from trueconv.__main__ import main


def test_bench_quick_writes_results(tmp_path, capsys):
    rc = main(
        [
            "bench",
            "--quick",
            "--cases",
            "1-D 2^16 * 16",
            "--dtypes",
            "float64",
            "--no-memory",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    payload = json.loads((tmp_path / "results.json").read_text())
    records = payload["records"]
    names = {r["contender"] for r in records}
    assert {"trueconv auto", "scipy fftconvolve", "numpy convolve", "torch flip+conv"} <= names
    for r in records:  # every contender was checked against the float64 reference
        assert r["skipped"] is None, r
        assert r["ms"] > 0
        assert r["rel_err"] < 1e-12, r
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| 1-D 2^16 * 16 | full | float64 |" in table
    assert "median speedup" in table
    pytest.importorskip("matplotlib")
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_bench_unknown_case_is_a_usage_error(tmp_path, capsys):
    assert main(["bench", "--quick", "--cases", "nope", "--out", str(tmp_path)]) == 2
    assert "no case matches" in capsys.readouterr().out
