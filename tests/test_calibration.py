"""`trueconv calibrate`: timings on this machine, fitted and stored with their provenance,
used by 'auto' on the same machine only; the exact non-negative least squares."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.optimize
import torch

import trueconv
from trueconv import _plan, calibration
from trueconv._methods import rows
from trueconv.cli import main
from trueconv.core import cost


@pytest.fixture
def stored(monkeypatch, tmp_path):
    """Calibrations go to (and are read from) a temporary folder, and count."""
    monkeypatch.delenv("TRUECONV_NO_CALIBRATION")
    monkeypatch.setattr(calibration, "_cache_dir", lambda: tmp_path)
    calibration._stored.cache_clear()
    cost.use_calibration(calibration._calibrated_table)
    _plan.forget()
    yield tmp_path
    calibration._stored.cache_clear()
    cost.use_calibration(calibration._calibrated_table)
    _plan.forget()


@pytest.fixture(scope="module")
def quick_record(tmp_path_factory):
    """One quick calibration for the module (it takes a few seconds)."""
    where = tmp_path_factory.mktemp("calibration")
    record = calibration.calibrate(quick=True, where=where, min_time=0.0)
    calibration._stored.cache_clear()
    _plan.forget()
    return where, record


def test_record_holds_its_provenance_and_a_fit_of_every_variant(quick_record):
    where, record = quick_record
    path = calibration.stored_path(where)
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert record["machine"] == calibration.machine()
    assert record["machine"]["threads"] == torch.get_num_threads()
    assert record["machine"]["torch"] == torch.__version__
    variants = {r["variant"] for r in record["rows"]}
    assert {"fft", "overlap_add"} <= variants
    assert variants & {"rows", "shift_add"}
    # with numba, the separable kernel's fused loop too (issue 14: the grid covers it)
    assert ("fused" in variants) == rows.AVAILABLE
    for dclass in ("float32", "float64"):
        for variant in variants:
            table = record["constants"][dclass]
            assert table[f"{variant}_call"] >= 0
            assert table[f"{variant}_{cost.UNIT[variant]}"] >= 0
            assert f"{dclass} {variant}" in record["fit"]


def test_auto_uses_a_calibration_of_this_machine_only(stored, quick_record, monkeypatch):
    where, record = quick_record
    (stored / calibration.stored_path(where).name).write_text(
        calibration.stored_path(where).read_text()
    )
    calibration._stored.cache_clear()
    cost.use_calibration(calibration._calibrated_table)
    assert calibration.in_use()["source"] == "calibrated"
    table = cost.constants("cpu")
    assert "calibrated" in table["source"]
    for dclass, values in record["constants"].items():
        for name, value in values.items():
            assert table[dclass][name] == value
    # another thread count is another machine: its file does not exist, the shipped ones hold
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        assert calibration.in_use()["source"] == "shipped"
        assert cost.constants("cpu")["source"].startswith("benchmarks/results/")
    finally:
        torch.set_num_threads(before)
    # a record that claims another machine, or was fitted to another cost model's counts, is
    # not used, even under this machine's name
    for key, value in (("cpu", "some other CPU"), ("cost_model", calibration.COST_MODEL - 1)):
        other = dict(record, machine=dict(record["machine"], **{key: value}))
        calibration.stored_path().write_text(json.dumps(other))
        calibration._stored.cache_clear()
        cost.use_calibration(calibration._calibrated_table)
        assert calibration.in_use()["source"] == "shipped"
    monkeypatch.setenv("TRUECONV_NO_CALIBRATION", "1")


def test_a_calibration_changes_what_auto_picks(stored):
    # constants under which a direct call costs a second: 'auto' must leave the direct method
    x, k = torch.zeros(2000), torch.zeros(3)
    assert trueconv.choose_method(x, k) == "direct"
    slow = {dclass: {"rows_call": 1.0, "shift_add_call": 1.0} for dclass in ("float32", "float64")}
    record = {"machine": calibration.machine(), "date": "now", "constants": slow}
    calibration.stored_path().write_text(json.dumps(record))
    calibration._stored.cache_clear()
    cost.use_calibration(calibration._calibrated_table)
    _plan.forget()
    assert trueconv.choose_method(x, k) in ("fft", "overlap_add")
    assert trueconv.choose_method(x.double(), k.double()) in ("fft", "overlap_add")


def test_each_problem_keeps_its_fastest_pass(stored, monkeypatch):
    # a slow phase during one pass (here: the second pass of every other problem, and the
    # first of the rest) does not reach the stored seconds: each problem keeps its fastest
    timed: list[tuple[float, bool]] = []

    def fake(fn, min_time, warm=True):
        i = len(timed)
        seconds = 2.0 if (i % 2 == 0) == warm else 1.0
        timed.append((min_time, warm))
        return seconds * (1 + i % 7) * 1e-3

    monkeypatch.setattr(calibration, "_fastest", fake)
    lines: list[str] = []
    record = calibration.calibrate(quick=True, min_time=0.2, passes=2, progress=lines.append)
    n = len(record["rows"])
    assert len(timed) == 2 * n
    assert all(m == pytest.approx(0.1) for m, _ in timed)  # min_time shared out over the passes
    assert [w for _, w in timed] == [True] * n + [False] * n  # warm-up calls in pass 1 only
    got = [r["seconds"] for r in record["rows"]]
    first = [(2.0 if i % 2 == 0 else 1.0) * (1 + i % 7) * 1e-3 for i in range(n)]
    second = [(1.0 if (n + i) % 2 == 0 else 2.0) * (1 + (n + i) % 7) * 1e-3 for i in range(n)]
    assert got == [min(a, b) for a, b in zip(first, second)]
    assert lines[0] == "pass 1 of 2"
    assert lines[1] == "pass 2 of 2"
    assert len(lines) == 2 + n  # one line per problem, of the last pass
    with pytest.raises(ValueError, match="passes must be at least 1; got 0"):
        calibration.calibrate(quick=True, passes=0)


@pytest.mark.parametrize("seed", range(5))
def test_nnls_is_scipys(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, 4))
    b = rng.standard_normal(12)
    want, _ = scipy.optimize.nnls(a, b)
    got = calibration._nnls(a, b)
    assert (got >= 0).all()
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_cli_show_and_quick(stored, capsys):
    assert main(["calibrate", "--show"]) == 0
    assert "shipped" in capsys.readouterr().out
    assert main(["calibrate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "fit float32" in out
    assert "calibrated" in out
    assert calibration.stored_path().exists()
    assert main(["calibrate", "--threads", "0"]) == 2


def test_cli_warns_when_other_processes_took_the_cores(stored, capsys, monkeypatch):
    # the share of a core other processes took while the grid was timed is printed, with a
    # warning above BUSY_PERCENT (the timings are not re-timed: the constants may mis-rank)
    from trueconv.cli import bench_harness, calibrate

    share = [3.0]
    monkeypatch.setattr(bench_harness, "other_cpu_percent", lambda start, end: share[0])
    monkeypatch.setattr(bench_harness, "busy_warning", lambda: None)
    assert main(["calibrate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "other processes took 3% of a core" in out
    assert "warning" not in out
    share[0] = calibrate.BUSY_PERCENT + 60
    assert main(["calibrate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert f"other processes took {share[0]:.0f}% of a core" in out
    assert f"warning: more than {calibrate.BUSY_PERCENT:g}% of a core" in out
    assert calibration.stored_path().exists()  # stored all the same: a warning, not a refusal
    # and where it cannot be measured, nothing is claimed
    share[0] = None
    assert main(["calibrate", "--quick"]) == 0
    assert "other processes took" not in capsys.readouterr().out
