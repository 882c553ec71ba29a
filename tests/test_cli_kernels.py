"""The built-in kernels of `trueconv apply`: each one against the scipy.ndimage filter that
defines it (its impulse response), the spec parser and its suggestions, `trueconv kernels`."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal

from conftest import console_script
from trueconv.cli import main
from trueconv.cli.kernels import (
    BUILTINS,
    box,
    gaussian,
    identity,
    laplacian,
    motion,
    parse,
    sharpen,
    sobel,
)


def impulse_response(filt, size: int, ndim: int) -> np.ndarray:
    """What a 'same'-aligned linear filter does to a unit impulse: its convolution kernel."""
    x = np.zeros((size,) * ndim)
    x[(size // 2,) * ndim] = 1.0
    return filt(x)


def centred(k: np.ndarray, size: int) -> np.ndarray:
    """``k`` embedded at the centre of a ``size``-cube (k odd-sized)."""
    out = np.zeros((size,) * k.ndim)
    lo = size // 2 - k.shape[0] // 2
    out[tuple(slice(lo, lo + n) for n in k.shape)] = k
    return out


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3])
def test_gaussian_is_ndimage_gaussian_filter(ndim, sigma):
    k = gaussian(sigma, ndim=ndim)
    radius = math.ceil(3 * sigma)
    assert k.shape == (2 * radius + 1,) * ndim
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    size = 2 * radius + 3
    ref = impulse_response(lambda x: ndi.gaussian_filter(x, sigma, radius=radius), size, ndim)
    np.testing.assert_allclose(centred(k, size), ref, atol=1e-15)


def test_gaussian_explicit_size():
    assert gaussian(3.0, size=5, ndim=1).shape == (5,)
    assert gaussian(3.0, size=4, ndim=2).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_box_is_uniform_filter(ndim):
    k = box(5, ndim)
    ref = impulse_response(lambda x: ndi.uniform_filter(x, 5, mode="constant"), 7, ndim)
    np.testing.assert_allclose(centred(k, 7), ref, atol=1e-15)


@pytest.mark.parametrize(("ndim", "axis"), [(2, -1), (2, -2), (3, -1), (3, -2), (3, 0)])
def test_sobel_is_ndimage_sobel(ndim, axis):
    ref = impulse_response(lambda x: ndi.sobel(x, axis=axis, mode="constant"), 3, ndim)
    assert np.array_equal(sobel(axis, ndim), ref)


def test_sobel_x_responds_positively_to_a_rising_edge():
    ramp = np.tile(np.arange(6.0), (4, 1))  # values rise to the right
    out = scipy.signal.convolve(ramp, sobel(-1), mode="valid")
    assert (out > 0).all()
    out = scipy.signal.convolve(ramp.T, sobel(-2), mode="valid")  # rising downwards
    assert (out > 0).all()


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_laplacian_and_sharpen(ndim):
    ref = impulse_response(lambda x: ndi.laplace(x, mode="constant"), 3, ndim)
    assert np.array_equal(laplacian(ndim), ref)
    assert np.array_equal(sharpen(ndim), identity(3, ndim) - ref)
    assert sharpen(ndim).sum() == 1


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_identity_is_an_identity_in_same_mode(size):
    x = np.random.default_rng(0).standard_normal((6, 7))
    assert np.array_equal(scipy.signal.convolve(x, identity(size), "same"), x)


@pytest.mark.parametrize(("length", "angle"), [(1, 0), (5, 0), (9, 30), (6, 90), (7, 135)])
def test_motion_is_a_normalised_line(length, angle):
    k = motion(length, angle)
    size = 2 * math.ceil((length - 1) / 2) + 1
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0)
    c = size // 2
    assert k[c, c] > 0  # through the centre
    assert np.array_equal(k, np.rot90(k, 2))  # symmetric about it: no shift
    if angle == 0:
        assert np.count_nonzero(k) == length
        assert (k[c] > 0).sum() == length
    if angle == 90:
        assert (k[:, c] > 0).all()


def test_parse_positional_keyword_and_ndim():
    assert np.array_equal(parse("box:5").build(2), box(5, 2))
    assert np.array_equal(parse("box:size=5").build(1), box(5, 1))
    assert np.array_equal(parse("gaussian:2,size=7").build(1), gaussian(2, 7, 1))
    assert np.array_equal(parse(" Motion:length=5, angle=30 ").build(2), motion(5, 30))
    spec = parse("laplacian:ndim=2")
    assert spec.ndim == 2
    assert spec.build(3).shape == (3, 3)  # the spec's rank wins over the input's


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gausian", "unknown kernel 'gausian'; did you mean 'gaussian'?"),
        ("blur", "unknown kernel 'blur' (trueconv kernels lists them)"),
        ("box:sise=3", "box: unknown parameter 'sise'; did you mean 'size'?"),
        ("box:3,size=4", "box: size given twice"),
        ("box:size=3,4", "box: unexpected value '4'"),
        ("motion:angle=north", "motion: angle must be a number; got 'north'"),
        ("box:0", "size must be at least 1"),
        ("sobel-x:ndim=1", "sobel-x is 2-D or more; got ndim=1"),
    ],
)
def test_parse_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(text)


def test_kernels_command_lists_every_builtin_on_one_line(capsys):
    assert main(["kernels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for b in BUILTINS.values():
        (line,) = [line for line in lines if line.strip().startswith(b.usage() + " ")]
        assert b.summary in line
        assert b.ranks() in line
    assert "gaussian:sigma=S[,size=N]" in lines[1]
    assert any("impulse-response audio file" in line for line in lines)


# -- inline kernels (issue 16 item 5) -----------------------------------------------------------


def _cli(*argv: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script(), *argv], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_inline_kernels_on_the_console_script(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 15))
    np.save(tmp_path / "x.npy", x)
    lap = "[[0,-1,0],[-1,4,-1],[0,-1,0]]"
    for text, k in (
        ("1,2,1", np.array([[1.0, 2.0, 1.0]])),
        (lap, np.array([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])),
        ("[0.25, 0.5, 0.25]", np.array([[0.25, 0.5, 0.25]])),
    ):
        done = _cli("apply", "x.npy", "-k", text, "-o", "y.npy", "--force", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        ref = scipy.signal.convolve(x, k, mode="same")
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[1,2],[3]]", "rows must have equal lengths"),
        ("1,,2", "is not numbers like 1,2,1"),
        ("[1, NaN]", "NaN is not a finite number"),
        ("[[]]", "is empty"),
        ('[1, "a"]', "numbers only"),
    ],
)
def test_inline_kernel_errors_are_one_line(tmp_path, text, message):
    np.save(tmp_path / "x.npy", np.zeros(8))
    done = _cli("apply", "x.npy", "-k", text, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_a_file_named_like_numbers_is_still_a_file(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6.0))
    np.save(tmp_path / "1.npy", np.array([0.0, 1.0]))
    done = _cli("apply", "x.npy", "-k", "1.npy", "-o", "y.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), np.convolve(np.arange(6.0), [0, 1], "same")
    )
