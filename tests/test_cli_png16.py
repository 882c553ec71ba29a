"""16-bit colour PNG in and out of `trueconv apply` (issue 16): read and written by imagecodecs
(Pillow reads them with 8 bits per sample), every uint16 value kept; convolutions compared
with scipy.ndimage in float64."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.ndimage as ndi

from trueconv.cli import main

imagecodecs = pytest.importorskip("imagecodecs")
pytest.importorskip("PIL.Image")


def run(*argv) -> int:
    return main(["apply", *(str(a) for a in argv)])


def save(path, a):
    path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(a)))
    return path


def load(path) -> np.ndarray:
    return np.asarray(imagecodecs.png_decode(path.read_bytes()))


def values(shape, seed=0) -> np.ndarray:
    """Random uint16 samples with the extremes and an odd value in the first pixels."""
    a = np.random.default_rng(seed).integers(0, 65536, shape).astype(np.uint16)
    a.reshape(-1)[:3] = [0, 65535, 12345]
    return a


@pytest.mark.parametrize("channels", [2, 3, 4])  # grey + alpha, RGB, RGBA
def test_identity_round_trip_keeps_every_value(tmp_path, channels):
    x = values((17, 23, channels))
    save(tmp_path / "in.png", x)
    assert run(tmp_path / "in.png", "-k", "identity", "-o", tmp_path / "out.png") == 0
    out = load(tmp_path / "out.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, x)  # 0, 65535 and 12345 included
    assert {0, 65535, 12345} <= set(out.reshape(-1)[:3].tolist())


def test_rgb_gaussian_matches_ndimage(tmp_path):
    yy, xx = np.mgrid[:40, :48]
    smooth = 30000 + 20000 * np.sin(yy / 7.0)[..., None] * np.cos(xx / 5.0)[..., None]
    x = np.clip(smooth + np.random.default_rng(1).normal(0, 500, (40, 48, 3)), 0, 65535)
    x = x.round().astype(np.uint16)
    save(tmp_path / "in.png", x)
    assert run(tmp_path / "in.png", "-k", "gaussian:sigma=1.5", "-o", tmp_path / "o.png") == 0
    out = load(tmp_path / "o.png")
    assert out.shape == x.shape
    assert out.dtype == np.uint16
    for c in range(3):  # images default to boundary 'reflect' (ndimage's 'mirror')
        ref = ndi.gaussian_filter(x[..., c].astype(np.float64), 1.5, mode="mirror", radius=5)
        # rounded to the nearest step, computed in float32: half a step, and a little
        assert np.abs(out[..., c] - np.clip(ref, 0, 65535)).max() <= 0.5 + 0.02


def test_rgba_sobel_clips_and_keeps_alpha(tmp_path, capsys):
    x = values((12, 14, 4), seed=2)
    save(tmp_path / "in.png", x)
    assert run(tmp_path / "in.png", "-k", "sobel-x", "-o", tmp_path / "o.png") == 0
    out = load(tmp_path / "o.png")
    np.testing.assert_array_equal(out[..., 3], x[..., 3])  # alpha written back as it was
    for c in range(3):
        ref = ndi.sobel(x[..., c].astype(np.float64), axis=-1, mode="mirror")
        np.testing.assert_array_equal(out[..., c], np.clip(np.rint(ref), 0, 65535))
    assert "samples clipped to the range 0..65535" in capsys.readouterr().err


def test_a_16bit_colour_result_as_tiff_and_refusals(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    x = values((9, 11, 3), seed=3)
    save(tmp_path / "in.png", x)
    assert run(tmp_path / "in.png", "-k", "identity", "-o", tmp_path / "o.tif") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), x)
    tifffile.imwrite(tmp_path / "in.tif", x, photometric="rgb")
    assert run(tmp_path / "in.tif", "-k", "identity", "-o", tmp_path / "back.png") == 0
    np.testing.assert_array_equal(load(tmp_path / "back.png"), x)
    assert run(tmp_path / "in.png", "-k", "identity", "-o", tmp_path / "o.jpg") == 1
    err = capsys.readouterr().err
    assert (
        "16-bit images are written here only as grey PNG, or 16-bit colour PNG: write .tif" in err
    )
    assert run(tmp_path / "in.png", "-k", "identity", "--float", "-o", tmp_path / "f.png") == 1
    assert ".png holds integer samples, not floats: write .tif or .npy" in capsys.readouterr().err


def test_without_imagecodecs_the_line_names_the_extra(tmp_path, capsys, monkeypatch):
    x = values((5, 6, 3))
    save(tmp_path / "in.png", x)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    assert run(tmp_path / "in.png", "-k", "box:3") == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith('reading 16-bit colour .png files needs imagecodecs: pip install "trueconv[cli]"')
    )
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "in.tif", x, photometric="rgb")
    assert run(tmp_path / "in.tif", "-k", "box:3", "-o", tmp_path / "o.png") == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith('writing 16-bit colour .png files needs imagecodecs: pip install "trueconv[cli]"')
    )
    assert not (tmp_path / "o.png").exists()
