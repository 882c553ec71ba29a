"""The console script on real terminals and bare installs (issue 16): the progress bar on a
pseudo-terminal that reports no size (0 x 0, as a serial console or some CI runners do),
`-o -` refused on a terminal, and `trueconv bench --quick` where scipy is not installed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import console_script

pty = pytest.importorskip("pty")
termios = pytest.importorskip("termios")


def on_a_terminal(argv: list[str], size: tuple[int, int], cwd: Path, stdout_pipe: bool = False):
    """Run ``argv`` with stdin, stderr (and stdout unless ``stdout_pipe``) on a new pty of
    ``size`` (rows, columns); returns (exit status, what the terminal received, stdout)."""
    master, slave = pty.openpty()
    if hasattr(termios, "tcsetwinsize"):
        termios.tcsetwinsize(slave, size)
    else:  # Python 3.10
        import fcntl
        import struct

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    assert tuple(os.get_terminal_size(slave)) == (size[1], size[0])
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.PIPE if stdout_pipe else slave
    child = subprocess.Popen(
        argv, cwd=cwd, stdin=slave, stdout=out, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal (EIO)
            break
        if not data:
            break
        seen += data
    piped = child.stdout.read() if stdout_pipe else b""
    status = child.wait(timeout=60)
    os.close(master)
    return status, seen.decode(errors="replace"), piped


@pytest.mark.parametrize("size", [(0, 0), (24, 0), (0, 100), (24, 80)])
def test_progress_shows_on_a_terminal_that_reports_no_size(tmp_path, size):
    pytest.importorskip("tqdm")
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", np.ones(16))
    argv = [*console_script(), "apply", "a.npy", "b.npy", "-k", "box:3", "--out-dir", "out"]
    status, seen, _ = on_a_terminal(argv, size, tmp_path)
    assert status == 0, seen
    assert "b.npy: 100%|" in seen, seen
    assert "| 2/2 [" in seen, seen
    width = size[1] or 80
    last = seen.replace("\r\n", "\r").split("\r")[-2]  # the final redraw of the bar
    assert 40 <= len(last) <= width, (last, width)
    assert (tmp_path / "out" / "b.npy").exists()


def test_binary_output_is_refused_on_a_terminal_and_flows_through_a_pipe(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(4.0))
    argv = [*console_script(), "apply", "x.npy", "-k", "1,1", "-o", "-", "--format", "npy"]
    status, seen, _ = on_a_terminal(argv, (24, 80), tmp_path)
    assert status == 2
    assert seen.strip() == (
        "trueconv apply: -o - writes .npy bytes to standard output, which is a terminal here; "
        "send them to a pipe (| python ...) or a file (> out.npy), or name a file with -o"
    )
    # stderr on the terminal (the bar is drawn there), stdout a pipe: the .npy bytes only
    status, seen, piped = on_a_terminal(argv, (24, 80), tmp_path, stdout_pipe=True)
    assert status == 0, seen
    assert piped.startswith(b"\x93NUMPY")
    assert "\x93NUMPY" not in seen
    assert "x.npy: 100%|" in seen


def test_stdin_on_a_terminal_is_refused(tmp_path):
    argv = [*console_script(), "apply", "-", "-k", "1,1", "-o", "y.npy", "--format", "npy"]
    status, seen, _ = on_a_terminal(argv, (24, 80), tmp_path)
    assert status == 2
    assert "- reads a .npy array from standard input, which is a terminal here" in seen


def test_bench_quick_without_scipy_skips_its_contenders_in_one_line(tmp_path):
    """The console script in a subprocess where ``import scipy`` fails as in a base install
    (tests/test_bench.py checks the same in-process, with every optional package hidden)."""
    hidden = tmp_path / "hidden"
    (hidden / "scipy").mkdir(parents=True)
    (hidden / "scipy" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'scipy' (hidden by the test)\")\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])
    )
    argv = [*console_script(), "bench", "--quick", "--cases", "1-D 2^16 * 16", "--no-memory"]
    argv += ["--quiet"]
    argv += ["--dtypes", "float64", "--min-run-time", "0.01", "--rounds", "1", "--busy", "1e9"]
    argv += ["--out", str(tmp_path / "out")]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    scipy_line = (
        "scipy not installed: skipping scipy convolve/fftconvolve/oaconvolve "
        '(pip install "trueconv[bench]")'
    )
    assert lines.count(scipy_line) == 1, done.stdout
    assert (tmp_path / "out" / "results.json").exists()
