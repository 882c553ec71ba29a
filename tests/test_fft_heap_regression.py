"""torch 2.13.0+cpu corrupts the heap in multi-dim FFTs of some 3-D shapes (the process aborts).
trueconv composes its transforms from 1-D ones; this runs the shapes that crashed, in a
subprocess so a regression fails this test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import torch, trueconv, scipy.signal as ss
x = torch.randn(20, 512, 512, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
k = torch.ones(5, 5, 5)
for method in ("fft", "overlap_add"):
    for _ in range(3):
        y = trueconv.convolve(x, k, "same", method=method)
ref = ss.fftconvolve(x[:6].double().numpy(), k.double().numpy(), "same")
# 'same' slices 0..3 along dim 0 read input slices 0..5 only
print(float(abs(y[:4].double().numpy() - ref[:4]).max() / abs(ref[:4]).max()))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_3d_transforms_do_not_corrupt_the_heap(threads):
    env_script = f"import torch; torch.set_num_threads({threads})\n" + SCRIPT
    run = subprocess.run(
        [sys.executable, "-c", env_script], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) < 1e-5
