"""Shared test configuration: hypothesis profiles and the error measure used everywhere.

Profiles: ``ci`` (deterministic, modest example counts; the default under ``CI=true``) and
``dev`` (more examples, random seeds). Choose one with ``--hypothesis-profile=dev``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

# the shipped cost constants, whatever `trueconv calibrate` stored on this machine
# (tests/test_calibration.py turns this off where it tests the stored ones)
os.environ["TRUECONV_NO_CALIBRATION"] = "1"

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests are not benchmarks: one thread per (xdist) worker avoids oversubscribing the cores,
# which makes tiny convolutions 50-500x slower.
torch.set_num_threads(1)

#: Largest accepted scale-free error ||out - ref|| / ||ref|| per computation dtype.
REL_TOL = {
    torch.float64: 1e-12,
    torch.complex128: 1e-12,
    torch.float32: 1e-5,
    torch.complex64: 1e-5,
    torch.float16: 2e-2,
    torch.bfloat16: 5e-2,
}


def console_script() -> list[str]:
    """The command that runs trueconv's console script for the interpreter running the tests:
    the ``trueconv`` script installed beside it, else ``python -m trueconv``. Not the first
    ``trueconv`` on ``PATH``: a suite run as ``/path/to/venv/bin/python -m pytest`` without
    activating the environment found another installation's script (a pyenv shim, with
    another torch) and 28 CLI tests failed for it."""
    script = Path(sysconfig.get_path("scripts")) / "trueconv"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "trueconv"]


#: Runs a command and reports its peak RSS: a small process of its own starts it. A child
#: started by this (possibly large) test process reports this one's peak too: Linux carries
#: the parent's high-water mark into a vfork'ed child's rusage at exec (a refused CLI job
#: "peaked" at 1.3 GB, the pytest worker's own peak after compiling the numba loops).
_MEASURE = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    child = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def peak_of(
    argv: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    logs: Path | None = None,
) -> tuple[int, str, str, int]:
    """Run ``argv`` in ``cwd``: its peak resident memory (bytes; Linux), stdout, stderr and
    exit status (kept in ``logs``, default ``cwd``, as stdout.txt and stderr.txt)."""
    import subprocess

    out, err = (logs or cwd) / "stdout.txt", (logs or cwd) / "stderr.txt"
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), str(err), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    peak, status = map(int, done.stdout.split())
    return peak, out.read_text(), err.read_text(), status


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().resolve_conj()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16; float64 holds it exactly
        t = t.double()
    return t.numpy()


def assert_same_nonfinite(out, ref, tol: float) -> None:
    """NaN, +Inf and -Inf exactly where ``ref`` has them; the finite rest within ``tol``
    (:func:`rel_err`)."""
    out, ref = np.asarray(out), np.asarray(ref)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))
    finite = np.isfinite(ref)
    assert rel_err(out[finite], ref[finite]) < tol


def rel_err(out, ref) -> float:
    """Scale-free error ``||out - ref|| / ||ref||`` (absolute when ``ref`` is all zero)."""
    out = to_numpy(out) if isinstance(out, torch.Tensor) else np.asarray(out)
    ref = to_numpy(ref) if isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert out.shape == ref.shape, f"shape {out.shape} != reference shape {ref.shape}"
    out = out.astype(np.complex128 if np.iscomplexobj(out) else np.float64)
    ref = ref.astype(np.complex128 if np.iscomplexobj(ref) else np.float64)
    denom = np.linalg.norm(ref.ravel())
    num = np.linalg.norm((out - ref).ravel())
    return float(num / denom) if denom > 0 else float(num)


@pytest.fixture
def no_fused_loop(monkeypatch):
    """The separable plans without the fused loop (its private switch, as without numba or
    on an accelerator), plans dropped around it."""
    from trueconv import _plan, _separable

    monkeypatch.setattr(_separable, "_FUSE", False)
    _plan.forget()
    yield
    monkeypatch.undo()
    _plan.forget()
