"""The command line as a whole: the console script run for real, the old entry point, the
progress bar (only on a terminal, never with --quiet), and no optional import for `demo`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import trueconv
import trueconv.__main__
from conftest import console_script
from trueconv.cli import formats, main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_console_script_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 40))
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [*console_script(), "apply", "x.npy", "--kernel", "sobel-y", "--boundary", "symmetric"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""  # not a terminal: no progress bar, nothing else either
    y = np.load(tmp_path / "x-sobel-y.npy")
    np.testing.assert_allclose(y, ndi.sobel(x, axis=0, mode="reflect"), rtol=0, atol=1e-12)


def test_console_script_exit_statuses(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(4))
    (tmp_path / "bad.npy").write_bytes(b"nope")
    bad = subprocess.run([*console_script(), "apply", "x.npy", "bad.npy", "-k", "box:3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith("trueconv apply: bad.npy: cannot read as NumPy array")
    assert "Traceback" not in bad.stderr
    usage = subprocess.run([*console_script(), "apply", "x.npy", "-k", "boxx"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert usage.returncode == 2
    assert "did you mean 'box'?" in usage.stderr


def test_old_entry_point_is_the_new_one():
    assert trueconv.__main__.main is main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_not_quiet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    for i in range(2):
        np.save(tmp_path / f"x{i}.npy", np.ones(8))
    argv = ["apply", str(tmp_path / "x0.npy"), str(tmp_path / "x1.npy"), "-k", "box:3"]
    assert main([*argv, "--out-dir", str(tmp_path / "a")]) == 0  # stderr is a pipe here
    assert capsys.readouterr().err == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv, "--out-dir", str(tmp_path / "b")]) == 0
    assert "2/2" in terminal.getvalue()
    assert "x1.npy" in terminal.getvalue()

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main([*argv, "--out-dir", str(tmp_path / "c"), "--quiet"]) == 0
    assert quiet.getvalue() == ""


def test_errors_print_above_the_bar(tmp_path, monkeypatch):
    pytest.importorskip("tqdm")
    np.save(tmp_path / "x.npy", np.ones(8))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["apply", str(tmp_path / "nope.npy"), str(tmp_path / "x.npy"), "-k", "box"]) == 1
    text = terminal.getvalue()
    assert f"trueconv apply: {tmp_path / 'nope.npy'}: no such file\n" in text
    assert "2/2" in text


def test_help_and_no_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "apply", "kernels", "bench"):
        assert command in out
    assert main(["apply", "--help"]) == 0
    assert "Exit status: 0 all done, 1 some inputs failed, 2 bad usage" in capsys.readouterr().out


def test_demo_and_import_need_no_optional_dependency():
    code = (
        "import sys, trueconv, trueconv.cli\n"
        "assert trueconv.cli.main(['demo']) == 0\n"
        "heavy = {'PIL', 'soundfile', 'tifffile'}\n"  # (torch itself imports tqdm)
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("ir_channels", [1, 2])
def test_hour_of_audio_plans_a_transform_not_direct(ir_channels):
    """The issue's case — one hour of stereo 48 kHz audio, a 3-second impulse response — as
    `apply` passes it: one (channels, time) call with dims=-1. Planned from shapes only
    (stride-0 views, no memory); the measurement is benchmarks/audio_reverb.py."""
    x = torch.zeros(1).expand(2, 3600 * 48_000)
    k = torch.zeros(1).expand(ir_channels, 3 * 48_000)
    for mode in ("same", "full"):
        assert trueconv.choose_method(x, k, mode, dims=-1) == "overlap_add"


@pytest.mark.skipif(not (DOCS / "shapes.png").exists(), reason="needs the repository's docs/")
def test_readme_pictures_are_what_the_command_makes(tmp_path):
    """The committed pictures are reproduced by the README's command lines."""
    Image = pytest.importorskip("PIL.Image")
    sys.path.insert(0, str(DOCS))
    try:
        import make_shapes
    finally:
        sys.path.remove(str(DOCS))
    before = np.asarray(Image.open(DOCS / "shapes.png"))
    assert np.array_equal(before, make_shapes.shapes())
    for name, extra in [("shapes-sobel-x", []), ("shapes-sobel-x-correlate", ["--correlate"])]:
        argv = ["apply", str(DOCS / "shapes.png"), "--kernel", "sobel-x", "--boundary"]
        argv += ["replicate", *extra, "-o", str(tmp_path / f"{name}.png"), "-q"]
        assert main(argv) == 0
        made = np.asarray(Image.open(tmp_path / f"{name}.png"))
        assert np.array_equal(made, np.asarray(Image.open(DOCS / f"{name}.png")))


def test_a_directory_format_is_one_registry_entry(tmp_path, monkeypatch, capsys):
    """How a .zarr store plugs in: a format with ``directory=True`` is written to a temporary
    folder and moved into place; a failed write keeps the old store."""
    fail = []

    def write(path, signal, float_output):
        np.save(path / "data.npy", formats.natural(signal, ""))
        if fail:
            raise OSError(28, "No space left on device")
        return []

    def open_(path):
        a = np.load(path / "data.npy")
        return formats.Source(
            path,
            "array",
            {"": a.shape},
            {"": a.dtype},
            0,
            {},
            lambda: formats.Signal("array", {"": a}),
        )

    fmt = formats.Format("test store", (".store",), open_, lambda p, lay: None, write, True)
    monkeypatch.setitem(formats.FORMATS, ".store", fmt)
    x, store = tmp_path / "x.npy", tmp_path / "y.store"
    np.save(x, np.arange(6.0))
    assert main(["apply", str(x), "-k", "box:3", "-o", str(store)]) == 0
    stored = np.load(store / "data.npy")
    np.testing.assert_allclose(stored, ndi.uniform_filter1d(np.arange(6.0), 3, mode="constant"))
    # a store as input, replaced in place with --force
    assert main(["apply", str(store), "-k", "identity", "-o", str(store), "--force"]) == 0
    np.testing.assert_allclose(np.load(store / "data.npy"), stored)
    fail.append(True)
    assert main(["apply", str(x), "-k", "box:5", "-o", str(store), "--force"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(store / "data.npy"), stored)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.store"]


def test_version_has_one_source():
    """`trueconv --version`, `trueconv.__version__` and the installed metadata agree (the
    version is written once, in trueconv/__init__.py; pyproject reads it)."""
    import importlib.metadata

    done = subprocess.run(
        [*console_script(), "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.startswith(f"trueconv {trueconv.__version__} (torch {torch.__version__}")
    assert importlib.metadata.version("trueconv") == trueconv.__version__
    pyproject = (DOCS.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert trueconv.__version__ not in pyproject


def test_license_file_matches_the_declared_license():
    text = (DOCS.parent / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert 'license = { text = "BSD-3-Clause" }' in (DOCS.parent / "pyproject.toml").read_text()


def test_image_default_boundary_keeps_the_borders_bright(tmp_path):
    """A blur of an image no longer darkens its borders (issue 16: a sigma-2 Gaussian took the
    top row of scikit-image's camera from 194 to 116): images in --mode same default to
    boundary 'reflect' (OpenCV's BORDER_REFLECT_101 = ndimage's 'mirror'); arrays keep zeros."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    x = (150 + 50 * rng.random((24, 30))).round().astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    np.save(tmp_path / "in.npy", x.astype(np.float64))
    spec = "gaussian:sigma=2"
    for args in (["in.png", "-o", "blur.png"], ["in.npy", "-o", "blur.npy"],
                 ["in.png", "--mode", "full", "-o", "full.png"]):  # fmt: skip
        done = subprocess.run(
            [*console_script(), "apply", *args, "-k", spec], cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    blur = np.asarray(Image.open(tmp_path / "blur.png")).astype(np.float64)
    k = trueconv.cli.kernels.parse(spec).build(ndim=2)
    r = k.shape[0] // 2
    ref = ndi.convolve(x.astype(np.float64), k, mode="mirror")
    assert np.abs(blur - ref).max() <= 0.5 + 1e-9  # rounded to uint8
    assert abs(blur[0].mean() - x[0].mean()) < 3  # the top row keeps its brightness
    arr = np.load(tmp_path / "blur.npy")  # arrays: zeros past the edges, scipy's rule
    np.testing.assert_allclose(arr, ndi.convolve(x.astype(np.float64), k, mode="constant"))
    assert arr[0].mean() < 0.8 * x[0].mean()
    full = np.asarray(Image.open(tmp_path / "full.png")).astype(np.float64)  # 'full': zeros
    assert full.shape == (24 + 2 * r, 30 + 2 * r)
    assert full[0].mean() < 0.2 * x[0].mean()
