"""The memory guard of `trueconv apply` (issue 16): a job is sized from shapes alone, its
kernel included, and refused over `--max-bytes` before anything of its size exists; and the
estimate bounds the peak memory the command really reaches (measured in a fresh interpreter
when the command returns, beyond the same command on 5 samples)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import console_script, peak_of
from trueconv.cli import formats, main
from trueconv.cli.kernels import KernelSpec, parse

MEASURABLE = hasattr(os, "wait4") and sys.platform.startswith("linux")  # ru_maxrss in KiB


#: Runs the console script's ``main`` with the given arguments and reports the process's peak
#: resident memory when ``main`` returns (``VmHWM``), then leaves without the interpreter's
#: teardown. The peak a parent sees through ``wait4`` includes that teardown: with torch
#: 2.11's CUDA build it adds ~124 MiB to any trueconv command (``import torch`` alone peaks
#: at 485 MiB, 609 with a normal exit), so the 5-sample baseline peaked above a 2500² FFT
#: job's working set and the estimate looked 3-6x too large.
_JOB = """
import os, re, sys
from trueconv.cli import main
sys.argv[0] = "trueconv"
rc = main(sys.argv[2:])
sys.stdout.flush()
sys.stderr.flush()
with open(sys.argv[1], "w") as f:
    f.write(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1])
os._exit(rc)
"""


def job_peak(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str, int]:
    """``trueconv *argv`` in a fresh interpreter: its peak resident memory (bytes) while the
    command ran, stdout, stderr and exit status."""
    done = subprocess.run(
        [sys.executable, "-c", _JOB, str(cwd / "peak.txt"), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    peak = int((cwd / "peak.txt").read_text()) * 1024 if done.returncode == 0 else 0
    return peak, done.stdout, done.stderr, done.returncode


def never(*args, **kwargs):
    raise AssertionError("built or read before the job was sized")


def test_a_job_over_max_bytes_is_refused_before_its_kernel_is_built(tmp_path, capsys, monkeypatch):
    """The issue's job: ``box:30000 --mode full`` on a small array. Its kernel alone (6.7 GiB
    of float64) passes an 8 GiB limit; the job (kernel, output, scratch) does not, and is
    refused from shapes: no kernel built, no input read, milliseconds of planning."""
    np.save(tmp_path / "x.npy", np.ones((30, 40)))
    monkeypatch.setattr(KernelSpec, "build", never)
    monkeypatch.setattr(formats, "read", never)
    argv = ["apply", str(tmp_path / "x.npy"), "-k", "box:30000", "--mode", "full"]
    argv += ["--max-bytes", "8G", "-o", str(tmp_path / "y.npy")]
    main(argv)  # once for the imports and caches of a first call
    capsys.readouterr()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        rc = main(argv)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    m = re.search(
        r"needs about ([0-9.]+) GiB of memory \(output 30029 x 30039, kernel 30000 x 30000, "
        r"\w+\), more than --max-bytes 8\.0 GiB; raise --max-bytes or split the input",
        err,
    )
    assert m, err
    assert float(m[1]) > 2 * 6.7  # the kernel and the output at least, in float64
    assert seconds < 1.0
    assert peak < 16 * 1024**2
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.skipif(not MEASURABLE, reason="needs os.wait4 and Linux's ru_maxrss")
def test_the_console_script_refuses_it_without_a_big_allocation(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((30, 40)))
    argv = [*console_script(), "apply", "x.npy", "-k", "box:30000", "--mode", "full", "-o", "y.npy"]
    peak, out, err, status = peak_of([*argv, "--max-bytes", "8G"], tmp_path)
    assert status == 1
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "needs about" in err
    assert "more than --max-bytes 8.0 GiB" in err
    assert peak < 900 * 1024**2  # the interpreter with torch: about 0.3 GiB
    assert not (tmp_path / "y.npy").exists()


def _bytes(text: str) -> int:
    number, unit = text.split()
    return int(float(number) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit])


@pytest.mark.skipif(not MEASURABLE, reason="needs os.wait4 and Linux's ru_maxrss")
@pytest.mark.parametrize(
    ("make", "args"),
    [
        # the FFT's padded operands and spectra
        ("big", ["-k", "gaussian:sigma=3", "--method", "fft"]),
        # a large kernel: 'auto' checks whether it is separable (33-36 bytes per tap) before
        # running one pass per dim; the float64 kernel itself is counted
        ("small", ["-k", "box:1500"]),
    ],
)
def test_the_estimate_bounds_the_measured_peak(tmp_path, make, args):
    rng = np.random.default_rng(0)
    shape = (2500, 2500) if make == "big" else (30, 40)
    np.save(tmp_path / "x.npy", rng.standard_normal(shape))
    np.save(tmp_path / "tiny.npy", np.ones(5))
    # numba's compiled loop (about 0.1 GiB once loaded, like torch part of the idle command,
    # which --max-bytes does not count) is kept out of both runs
    env = dict(os.environ, TRUECONV_NO_JIT="1")
    argv = ["apply", "x.npy", *args, "-o", "y.npy", "-v"]
    peak, out, err, status = job_peak(argv, tmp_path, env)
    assert status == 0, err
    m = re.search(r", (\w+), [0-9.]+ s, memory estimate ([0-9.]+ \w+)", out)
    assert m, out
    method, estimate = m[1], _bytes(m[2])
    # the baseline: the same command on 5 samples
    idle = ["apply", "tiny.npy", "-k", "box:3", "-o", "t.npy"]
    baseline, _, err, status = job_peak(idle, tmp_path, env)
    assert status == 0, err
    added = peak - baseline
    assert added <= estimate, (method, added, estimate)
    assert estimate <= 3 * max(added, 16 * 1024**2), (method, added, estimate)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "spec",
    ["gaussian:sigma=1.5", "gaussian:sigma=4,size=7", "box:5", "sobel-x", "sobel-y",
     "identity:size=4", "laplacian", "sharpen"],
)  # fmt: skip
def test_builtins_said_to_be_separable_are_so_for_the_library(spec, dtype):
    """The estimate counts only the passes after the separable check for a built-in marked
    separable (and only the dense method for one marked not): the library must agree."""
    from trueconv import _separable

    parsed = parse(spec)
    for ndim in (2, 3):
        k = torch.from_numpy(parsed.build(ndim)).to(dtype)
        found = _separable.factors(k, ndim) is not None
        assert found is parsed.builtin.separable, (spec, ndim, dtype)
