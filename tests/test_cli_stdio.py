"""`trueconv apply -` (standard input) and `-o -` (standard output) with `--format npy`
(issue 16): the console script run in a subprocess, fed and read through pipes, each result
compared with scipy.signal in float64; standard output carries exactly the `.npy` bytes of the
result, and every mistake is one line on stderr naming the argument and what is allowed."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

from conftest import console_script
from trueconv.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and shells")


def npy_bytes(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


def apply(*argv: object, data: bytes = b"", cwd=None) -> subprocess.CompletedProcess[bytes]:
    """``trueconv apply ARGV...`` with ``data`` on its standard input (a pipe)."""
    return subprocess.run(
        [*console_script(), "apply", *map(str, argv)],
        input=data,
        capture_output=True,
        timeout=120,
        cwd=cwd,
    )


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


LAPLACIAN = "[[0,-1,0],[-1,4,-1],[0,-1,0]]"
K_LAPLACIAN = np.array([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])


def test_stdin_to_stdout_is_the_npy_bytes_of_the_result():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 53))
    done = apply("-", "-k", LAPLACIAN, "-o", "-", "--format", "npy", "-v", data=npy_bytes(x))
    assert done.returncode == 0, done.stderr
    y = np.load(io.BytesIO(done.stdout))
    ref = scipy.signal.convolve(x, K_LAPLACIAN, mode="same", method="direct")
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert done.stdout == npy_bytes(y)  # exactly the .npy bytes, nothing before or after
    # -v and everything else go to standard error
    assert done.stderr.decode().startswith("- -> -: 40 x 53 * 3 x 3 -> 40 x 53, ")


def test_a_shell_pipeline_python_trueconv_python(tmp_path):
    """The issue's pipeline, as a shell runs it (``pipefail``: every stage must succeed)."""
    py, tc = shlex.quote(sys.executable), " ".join(map(shlex.quote, console_script()))
    make = "import numpy as np,sys; np.save(sys.stdout.buffer, np.arange(60.0).reshape(6, 10)**2)"
    # np.load needs a seekable file: a pipe is read whole first
    read = "import io,sys,numpy as np; y = np.load(io.BytesIO(sys.stdin.buffer.read())); "
    read += "np.save('y.npy', y)"
    line = (
        f"{py} -c {shlex.quote(make)} | {tc} apply - -k 1,2,1 -o - --format npy "
        f"| {py} -c {shlex.quote(read)}"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, capture_output=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    x = np.arange(60.0).reshape(6, 10) ** 2
    ref = scipy.signal.convolve(x, np.array([[1.0, 2.0, 1.0]]), mode="same", method="direct")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=0, atol=1e-9)


def test_file_to_stdout_and_stdin_to_file(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 9, 11)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = apply("x.npy", "-k", "box:3", "--mode", "full", "-o", "-", "--format", ".NPY",
                 cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    y = np.load(io.BytesIO(done.stdout))
    assert y.dtype == np.float32  # a float array keeps its precision
    ref = scipy.signal.convolve(x.astype(np.float64), np.full((3, 3, 3), 1 / 27), mode="full")
    assert np.abs(y - ref).max() < 1e-5
    # standard input in Fortran order and big-endian, written to a file
    z = np.asfortranarray(rng.integers(-100, 100, (12, 5))).astype(">i4")
    done = apply("-", "-k", "[[1,2],[3,4]]", "--format", "npy", "-o", "z.npy",
                 data=npy_bytes(z), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ref = scipy.signal.convolve(z.astype(np.float64), [[1.0, 2.0], [3.0, 4.0]], mode="same")
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), ref, rtol=0, atol=1e-9)


def test_an_image_to_stdout_as_npy(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    x = (np.arange(12 * 15) % 251).reshape(12, 15).astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    done = apply("in.png", "-k", "identity", "-o", "-", "--format", "npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    y = np.load(io.BytesIO(done.stdout))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_bad_streams_are_one_line_and_write_nothing(tmp_path):
    x = np.arange(20.0)
    cut = apply("-", "-k", "box:3", "--format", "npy", "-o", "y.npy", data=npy_bytes(x)[:150],
                cwd=tmp_path)  # fmt: skip
    assert cut.returncode == 1
    assert one_line(cut.stderr) == (
        "trueconv apply: -: truncated: the header announces 160 bytes of data, standard input "
        "ended after 22"
    )
    text = apply("-", "-k", "box:3", "--format", "npy", "-o", "-", data=b"hello, world")
    assert text.returncode == 1
    assert text.stdout == b""
    assert one_line(text.stderr).startswith(
        "trueconv apply: -: cannot read standard input as a NumPy array: "
    )
    objects = npy_bytes(np.array([1, "a"], dtype=object))
    assert one_line(apply("-", "-k", "box:3", "--format", "npy", "-o", "-", data=objects).stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_reader_that_goes_away_is_one_line(tmp_path):
    """``| head -c 10``: the write fails with EPIPE; one line, no traceback, exit 1."""
    np.save(tmp_path / "big.npy", np.zeros((2000, 2000)))
    tc = " ".join(map(shlex.quote, console_script()))
    line = f"{tc} apply big.npy -k 1,1 -o - --format npy 2>err.txt | head -c 10 >/dev/null"
    done = subprocess.run(
        ["bash", "-c", f"{line}; echo ${{PIPESTATUS[0]}}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.stdout.strip() == "1"
    err = (tmp_path / "err.txt").read_text()
    assert err == (
        "trueconv apply: big.npy: standard output was closed before the whole result was "
        "written (broken pipe)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-", "-o", "-"], "- (standard input and standard output) has no suffix to tell its "
         "format: add --format npy (the one format that streams)"),
        (["x.npy", "-o", "-"], "- (standard output) has no suffix to tell its format"),
        (["x.npy", "-o", "-", "--format", "png"], "--format png: images are decoded from files, "
         "not streams; only npy streams through - (standard input/output): give a file name "
         "ending in .png instead"),
        (["x.npy", "-o", "-", "--format", "wav"], "--format wav: audio are decoded from files"),
        (["x.npy", "-o", "-", "--format", "npz"], "--format npz: .npz is a zip archive"),
        (["x.npy", "-o", "-", "--format", "zarr"], "--format zarr: a .zarr store is a directory"),
        (["x.npy", "-o", "-", "--format", "csv"], "--format csv: unknown; - (standard "
         "input/output) streams npy only"),
        (["x.npy", "-o", "y.npy", "--format", "npy"], "--format npy names the format of - "
         "(standard input or output), and no - was given"),
        (["-", "--format", "npy"], "- (standard input) has no name to derive an output from "
         "(no -o): give -o OUTPUT, a file or - for standard output"),
        (["-", "--format", "npy", "--out-dir", "d"], "(--out-dir d): give -o OUTPUT"),
        (["-", "-", "--format", "npy", "--out-dir", "d"], "- (standard input) is given 2 times"),
    ],
)  # fmt: skip
def test_stream_usage_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.ones(5))
    assert main(["apply", *argv, "-k", "box:3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("trueconv apply: ")
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_stream_usage_error_through_the_console_script(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(5))
    done = apply("x.npy", "-k", "box:3", "-o", "-", "--format", "tif", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == b""
    assert one_line(done.stderr).startswith("trueconv apply: --format tif: images are decoded")
