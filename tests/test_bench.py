"""Smoke test of the benchmark harness and `trueconv bench` (the real runs live in
benchmarks/; here only that the command works end to end on one tiny case)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

import trueconv
from trueconv.__main__ import main
from trueconv._methods import rows
from trueconv.cli import bench_harness as harness


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
            "--busy",  # no re-timing: under pytest-xdist the machine is busy by design
            "1e9",
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
    assert "over the best of scipy, numpy and flip + `F.convNd` alone" in table
    pytest.importorskip("matplotlib")
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_bench_unknown_case_is_a_usage_error(tmp_path, capsys):
    assert main(["bench", "--quick", "--cases", "nope", "--out", str(tmp_path)]) == 2
    assert "no case matches" in capsys.readouterr().out


# ------------------------------------------------------------------------ optional packages

#: what a base install (torch, numpy, platformdirs) lacks; None in sys.modules makes an import
#: of that name fail as if it were not installed
_NOT_IN_BASE = (
    "scipy",
    "scipy.signal",
    "scipy.fft",
    "cv2",
    "kornia",
    "jax",
    "astropy",
    "cupy",
    "psutil",
    "matplotlib",
    "matplotlib.pyplot",
)

#: one case, both modes, one dtype, short timings: a few seconds
_TINY = ["--quick", "--cases", "1-D 2^16 * 16", "--no-memory", "--quiet"]
#: short timings, and no re-timing on a busy machine (under pytest-xdist it is busy by design;
#: the re-timing has its own tests, with a simulated load)
_FAST = ["--min-run-time", "0.01", "--rounds", "1", "--busy", "1e9"]
_TINY_CASE = harness.Case("tiny", (512,), (5,), modes=("full",))


def test_bench_runs_in_the_base_install(tmp_path, capsys, monkeypatch):
    for name in _NOT_IN_BASE:
        monkeypatch.setitem(sys.modules, name, None)
    rc = main(["bench", *_TINY, *_FAST, "--dtypes", "float64", "--out", str(tmp_path)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    # one line per missing package, for the CPU contenders only (CuPy is a CUDA contender)
    scipy_line = (
        "scipy not installed: skipping scipy convolve/fftconvolve/oaconvolve "
        '(pip install "trueconv[bench]")'
    )
    assert scipy_line in lines
    for label in ("scipy", "opencv", "kornia", "jax", "astropy"):
        assert sum(line.startswith(f"{label} not installed: skipping ") for line in lines) == 1
    assert not any(line.startswith("cupy") for line in lines)
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["info"]["reference"] == "numpy.fft"
    if os.path.exists("/proc/stat"):  # without psutil, the load is read from /proc/stat
        assert payload["info"]["other CPU use from"] == "/proc/stat"
    records = payload["records"]
    names = {r["contender"] for r in records}
    assert {"trueconv auto", "numpy convolve", "torch rfftn", "torch flip+conv"} <= names
    assert not any(n.startswith(("scipy", "cv2", "kornia", "jax", "astropy")) for n in names)
    assert {r["mode"] for r in records} == {"full", "same"}
    for r in records:  # all checked against the numpy reference
        assert r["skipped"] is None, r
        assert r["rel_err"] < 1e-12, r
    assert not (tmp_path / "results.png").exists()  # no matplotlib: no plot, no traceback


@pytest.mark.parametrize(
    "case",
    [
        harness.Case("1-D even", (50,), (6,)),
        harness.Case("rows", (3, 40), (7,)),
        harness.Case("2-D", (2, 20, 23), (4, 5)),
        harness.Case("3-D", (9, 10, 11), (3, 2, 5)),
        harness.Case("NN", (2, 3, 12, 13), (4, 3, 3, 5), "nn", ("same",)),
    ],
    ids=lambda c: c.name,
)
def test_numpy_reference_matches_scipy(case, monkeypatch):
    pytest.importorskip("scipy")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(case.x_shape, generator=gen, dtype=torch.float64)
    k = torch.randn(case.k_shape, generator=gen, dtype=torch.float64)
    with_scipy = {mode: harness._reference(case, mode, x, k) for mode in case.modes}
    monkeypatch.setitem(sys.modules, "scipy", None)
    assert harness.reference_source() == "numpy.fft"
    for mode in case.modes:
        ref = harness._reference(case, mode, x, k)
        assert ref.shape == with_scipy[mode].shape
        np.testing.assert_allclose(ref, with_scipy[mode], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- kernels


def test_next_smooth_len_is_the_next_7_smooth_number():
    def smooth(m):
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1

    assert harness.next_smooth_len(0) == 1
    for n in range(1, 2001):
        want = next(v for v in range(n, 2 * n + 1) if smooth(v))  # a power of 2 is in there
        assert harness.next_smooth_len(n) == want, n


def test_separable_kernels():
    g = harness.gaussian_taps(7)
    assert g.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(g, g[::-1])
    sobel = np.multiply.outer(*harness.kernel_factors("sobel", (3, 3)))
    np.testing.assert_array_equal(sobel, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    box = np.multiply.outer(*harness.kernel_factors("box", (5, 3)))
    np.testing.assert_allclose(box, np.full((5, 3), 1 / 15))
    assert harness.kernel_factors("random", (3, 3)) is None
    with pytest.raises(ValueError, match="3×3"):
        harness.Case("bad", (8, 8), (5, 5), kernel="sobel")
    cv2 = pytest.importorskip("cv2")
    for k in (15, 31):  # OpenCV's default sigma (OpenCV has fixed tables for few taps)
        np.testing.assert_allclose(harness.gaussian_taps(k), cv2.getGaussianKernel(k, 0).ravel())


def test_log_kernel_is_rank_two_and_runs_as_its_terms():
    log = harness.kernel_values("log", (15, 15))
    assert np.linalg.matrix_rank(log, tol=1e-12 * np.abs(log).max()) == 2
    np.testing.assert_allclose(log, log[::-1, ::-1])
    assert log[7, 7] == log.min() < 0  # negative centre, positive ring
    assert np.abs(log).sum() == pytest.approx(1.0)
    assert harness.kernel_factors("log", (15, 15)) is None
    # anisotropic: still rank 2
    assert np.linalg.matrix_rank(harness.kernel_values("log", (9, 15)), tol=1e-12) == 2
    assert harness.kernel_values("random", (3, 3)) is None
    case = next(c for c in harness.FULL_GRID if c.kernel == "log")
    x = torch.zeros(case.x_shape)
    k = torch.from_numpy(harness.kernel_values(case.kernel, case.k_shape)).float()
    if rows.AVAILABLE:
        assert trueconv.choose_method(x, k, "same") == "low_rank"
    small = harness.Case("LoG", (40, 50), (9, 9), modes=("same",), kernel="log")
    records = harness.run(
        [small], (torch.float64,), min_run_time=0.001, rounds=1, memory=False, busy_percent=1e9
    )
    ran = [r for r in records if r.skipped is None]
    assert {"trueconv auto", "scipy convolve"} <= {r.contender for r in ran}
    for r in ran:
        assert r.rel_err < 1e-12, r


def test_bench_opencv_and_torch_fft_on_a_separable_case(tmp_path):
    pytest.importorskip("cv2")
    case = "2-D 256^2 * Gaussian 7^2"
    assert case in {c.name for c in harness.QUICK_GRID}
    argv = ["bench", "--quick", "--cases", case, "--no-memory", "--quiet", *_FAST]
    assert main([*argv, "--dtypes", "float32", "float64", "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    got = {(r["contender"], r["mode"], r["dtype"]): r for r in records}
    tol = {"float32": 1e-5, "float64": 1e-12}
    for dtype in ("float32", "float64"):
        for name in ("cv2 filter2D", "cv2 sepFilter2D", "torch rfftn"):
            r = got.get((name, "same", dtype))
            assert r is not None, (name, dtype)
            assert r["skipped"] is None, r
            assert r["ms"] > 0, r
            assert r["rel_err"] < tol[dtype], r


def test_opencv_gives_same_mode_only_and_loops_over_leading_dims():
    pytest.importorskip("cv2")
    case = harness.Case("3 x 2-D", (3, 24, 31), (3, 5), kernel="box")
    records = harness.run(
        [case], (torch.float32,), min_run_time=0.001, rounds=1, memory=False, busy_percent=1e9
    )
    cv = {(r.contender, r.mode): r for r in records if r.contender.startswith("cv2")}
    assert set(cv) == {("cv2 filter2D", "same"), ("cv2 sepFilter2D", "same")}
    for r in cv.values():  # each of the three planes filtered, in place in one output
        assert r.rel_err is not None
        assert r.rel_err < 1e-5, r


# ------------------------------------------------------------------------------ busy machine


def _load_sequence(monkeypatch, values):
    """Make the harness see other processes take ``values`` (then the last one for good)
    percent of a core in successive timing passes; returns the list of calls."""
    calls = []

    def fake(start, end):
        calls.append((start, end))
        return values[min(len(calls), len(values)) - 1]

    monkeypatch.setattr(harness, "other_cpu_percent", fake)
    return calls


def test_a_busy_cell_is_timed_again(monkeypatch):
    calls = _load_sequence(monkeypatch, [90.0, 0.0])
    timings = []
    time_ms = harness._time_ms
    monkeypatch.setattr(harness, "_time_ms", lambda fn, t: timings.append(fn) or time_ms(fn, t))
    records = harness.run(
        [_TINY_CASE], (torch.float64,), min_run_time=0.005, rounds=1, memory=False
    )
    timed = [r for r in records if r.skipped is None]
    assert len(calls) == 2  # busy, then quiet: one retry
    assert len(timings) == 2 * len(timed)  # every contender timed in both passes
    for r in timed:
        assert r.extra == {"other_cpu_percent": 0.0, "disturbed": False, "attempts": 2}
    assert harness.busy_cells(records) == (0, 1)


def test_a_cell_that_stays_busy_is_marked(tmp_path, capsys, monkeypatch):
    calls = _load_sequence(monkeypatch, [95.0])
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr(harness, "QUICK_GRID", (_TINY_CASE,))
    argv = ["bench", "--quick", "--no-memory", "--quiet", "--min-run-time", "0.01"]
    argv += ["--rounds", "1", "--dtypes", "float64", "--busy", "50"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"warning: load average 64.00 on {os.cpu_count()} cores" in out
    assert (
        "warning: 1 of 1 cells ran on a busy machine: speedups may be understated; rerun on "
        "a quiet machine or with --threads 1" in out
    )
    assert len(calls) == 3  # the one cell timed three times
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    timed = [r for r in records if r["skipped"] is None]
    assert len(timed) > 5
    for r in timed:
        assert r["extra"] == {"other_cpu_percent": 95.0, "disturbed": True, "attempts": 3}
    table = (tmp_path / "RESULTS.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tiny | full |"))
    assert row.endswith("| 95% (busy) |")  # the summary's `others` column
    assert "(busy): others took 95% of a core |" in table  # every contender's note
    assert "- 1 of 1 cells ran on a busy machine" in table


def test_cpu_counters_from_proc_stat_agree_with_psutil(monkeypatch):
    pytest.importorskip("psutil")
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat")
    with_psutil = harness._cpu_counters()
    monkeypatch.setitem(sys.modules, "psutil", None)
    assert harness.load_source() == "/proc/stat"
    from_proc = harness._cpu_counters()
    assert with_psutil is not None
    assert from_proc is not None
    # the same counters, read a moment apart: CPU seconds of all cores, and ours
    assert from_proc[1] == pytest.approx(with_psutil[1], abs=0.5)
    assert from_proc[2] == pytest.approx(with_psutil[2], abs=0.5)
    load = harness.other_cpu_percent(with_psutil, from_proc)
    assert load is not None
    assert load >= 0.0
    assert harness.other_cpu_percent(None, from_proc) is None
