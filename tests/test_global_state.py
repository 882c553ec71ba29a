"""Process-global state: switched safely across threads, caches bounded, torch's private API
used in one module only."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from trueconv.core import torch_internals

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trueconv"


@pytest.fixture
def user_precision():
    """The user's own cuDNN float32 setting, TF32, restored after the test; yields a function
    that reads the setting as 'tf32' or 'ieee' through the API this torch has
    (``cudnn.conv.fp32_precision`` from torch 2.9, ``cudnn.allow_tf32`` before: the one
    :func:`~trueconv.core.torch_internals.cudnn_ieee_float32` switches)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        before = conv.fp32_precision
        conv.fp32_precision = "tf32"
        yield lambda: conv.fp32_precision
        conv.fp32_precision = before
    else:
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = True
        yield lambda: "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
        torch.backends.cudnn.allow_tf32 = before


def test_overlapping_calls_on_threads_never_see_tf32_and_restore_the_users_setting(
    user_precision,
):
    """Dask's threaded scheduler runs blocks with device='cuda' on several threads at once:
    none may run in TF32, and the user's setting must be back when the last one leaves (a
    save/restore per call lets a thread restore 'ieee' saved from another's block)."""
    seen: list[str] = []
    errors: list[BaseException] = []
    rng = random.Random(0)
    delays = [[rng.random() * 2e-3 for _ in range(3)] for _ in range(16)]

    def worker(pause: list[float]) -> None:
        try:
            for p in pause:
                with torch_internals.cudnn_ieee_float32():
                    seen.append(user_precision())
                    time.sleep(p)
                    seen.append(user_precision())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(d,)) for d in delays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 16 * 3 * 2
    assert set(seen) == {"ieee"}
    assert user_precision() == "tf32"


def test_nested_and_failing_blocks_restore_the_users_setting(user_precision):
    inside = []

    def failing_convolution() -> None:
        with torch_internals.cudnn_ieee_float32():
            with torch_internals.cudnn_ieee_float32():
                inside.append(user_precision())
            inside.append(user_precision())
            raise RuntimeError("a failing convolution")

    with pytest.raises(RuntimeError, match="a failing convolution"):
        failing_convolution()
    assert inside == ["ieee", "ieee"]
    assert user_precision() == "tf32"


def _private_torch_uses(tree: ast.AST) -> list[str]:
    """``torch._x`` attribute reads and imports of ``torch...._x`` names in a module."""
    found = []
    for node in ast.walk(tree):
        private = (
            node.attr.startswith("_") and not node.attr.startswith("__")
            if isinstance(node, ast.Attribute)
            else False
        )
        if private:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id == "torch":
                found.append(ast.unparse(node))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch"):
            parts = (node.module or "").split(".")
            names = [a.name for a in node.names]
            if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
                found.append(f"from {node.module} import {', '.join(names)}")
    return found


def test_torch_private_api_is_used_in_one_module_only():
    uses = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = _private_torch_uses(ast.parse(path.read_text()))
        if found:
            uses[str(path.relative_to(PACKAGE))] = found
    assert set(uses) == {"core/torch_internals.py"}, uses


_THREADS = """
import torch, trueconv
torch.set_num_threads({n})
x, k = torch.rand(64, 64, dtype=torch.float64), torch.rand(5, 5, dtype=torch.float64)
trueconv.convolve(x, k, method="direct")
trueconv.convolve(x, k[:, :1] * k[:1], method="direct")
print(torch.get_num_threads())
"""


@pytest.mark.parametrize("n", [1, 3])
def test_the_compiled_loop_leaves_torchs_thread_count_alone(n):
    """numba's first parallel call starts an OpenMP pool that reset the OpenMP thread count
    torch reads: a user's ``torch.set_num_threads(1)`` read 2 after one convolution. A fresh
    process, as the pool starts once per process."""
    run = subprocess.run(
        [sys.executable, "-c", _THREADS.format(n=n)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(n)]
