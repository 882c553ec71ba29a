"""`trueconv apply` on real files written here — PNG, 16-bit TIFF, stereo WAV, NPY/NPZ — each
output compared with scipy.ndimage / scipy.signal run in float64 on the same samples.

The mapping of boundary names used by the oracles: ours ``fill`` is ndimage ``constant``,
``symmetric`` is ndimage ``reflect``, ``reflect`` is ndimage ``mirror``, ``replicate`` is
ndimage ``nearest``, ``wrap`` is ``wrap``; for scipy.signal the input is extended with
``np.pad`` (``constant``, ``symmetric``, ``reflect``, ``edge``, ``wrap``) and convolved
``'valid'``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal

from conftest import rel_err
from trueconv.cli import main
from trueconv.cli.kernels import gaussian, laplacian, motion, sharpen, sobel

Image = pytest.importorskip("PIL.Image")
tifffile = pytest.importorskip("tifffile")
sf = pytest.importorskip("soundfile")

NDIMAGE = {
    "fill": "constant",
    "symmetric": "reflect",
    "reflect": "mirror",
    "replicate": "nearest",
    "wrap": "wrap",
}
NP_PAD = {
    "fill": "constant",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
    "wrap": "wrap",
}


def run(*argv) -> int:
    """``trueconv apply ARGV...`` in-process; returns the exit status."""
    return main(["apply", *(str(a) for a in argv)])


def picture(rng, shape, high=256) -> np.ndarray:
    """Smooth shapes plus noise, so that filters see edges, flats and texture."""
    h, w = shape[:2]
    yy, xx = np.mgrid[:h, :w]
    base = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (h / 4) ** 2) * 0.6
    base = base + (xx > 2 * w / 3) * 0.3
    base = base.reshape(base.shape + (1,) * (len(shape) - 2))
    x = base + 0.1 * rng.random(shape)
    return np.clip(x * (high - 1), 0, high - 1)


def signal_same(x, k, boundary="fill", fill_value=0.0):
    """scipy.signal oracle for mode 'same': extend by np.pad, then 'valid'. ('same' starts
    at (m - 1) // 2 of 'full', so the input is extended by m // 2 before, (m - 1) // 2 after.)"""
    pads = [(m // 2, (m - 1) // 2) for m in k.shape]
    extra = {"constant_values": fill_value} if boundary == "fill" else {}
    xp = np.pad(x, pads, mode=NP_PAD[boundary], **extra)
    return scipy.signal.convolve(xp, k, mode="valid", method="direct")


def rounded(ref, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(ref), info.min, info.max)


def assert_rounded(out, ref, dtype):
    """``out`` is ``ref`` rounded to nearest and clipped to ``dtype``: within half a step."""
    assert out.dtype == dtype
    info = np.iinfo(dtype)
    expected = np.clip(ref, info.min, info.max)
    assert out.shape == expected.shape
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 1e-6


# -- images ---------------------------------------------------------------------------------


def test_png_grey_gaussian_matches_ndimage(tmp_path):
    rng = np.random.default_rng(0)
    x = picture(rng, (40, 56)).round().astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    rc = run(tmp_path / "in.png", "--kernel", "gaussian:sigma=1.5", "-o", tmp_path / "out.png")
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    # images default to boundary='reflect' (OpenCV's BORDER_REFLECT_101, ndimage's 'mirror')
    ref = ndi.gaussian_filter(x.astype(np.float64), 1.5, mode="mirror", radius=math.ceil(4.5))
    assert_rounded(out, ref, np.uint8)


@pytest.mark.parametrize("boundary", sorted(NDIMAGE))
def test_png_rgba_sobel_per_channel_alpha_kept(tmp_path, boundary):
    """Colour channels filtered on their own (vs ndimage.sobel); alpha written back as is;
    negative responses clipped to 0, large ones to 255."""
    rng = np.random.default_rng(1)
    rgb = picture(rng, (24, 32, 3)).round()
    alpha = rng.integers(0, 256, (24, 32))
    x = np.dstack([rgb, alpha]).astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    rc = run(tmp_path / "in.png", "-k", "sobel-x", "--boundary", boundary, "-o", tmp_path / "o.png")
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == x.shape
    assert np.array_equal(out[..., 3], x[..., 3])
    for c in range(3):
        ref = ndi.sobel(x[..., c].astype(np.float64), axis=-1, mode=NDIMAGE[boundary])
        assert np.array_equal(out[..., c], rounded(ref, np.uint8))
        assert np.array_equal(ref, signal_same(x[..., c].astype(float), sobel(-1), boundary))
    assert (out[..., :3] == 0).any()
    assert (out[..., :3] == 255).any()


def test_png_rgb_motion_blur_and_mode_full_reframes_alpha(tmp_path):
    rng = np.random.default_rng(2)
    x = np.dstack([picture(rng, (20, 30, 3)).round(), np.full((20, 30), 200)]).astype(np.uint8)
    x[:, :5, 3] = 10  # a transparent strip on the left
    Image.fromarray(x).save(tmp_path / "in.png")
    k = motion(5, 30)
    rc = run(tmp_path / "in.png", "-k", "motion:length=5,angle=30", "--mode", "full",
             "--dtype", "float64", "-o", tmp_path / "o.png")  # fmt: skip
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == (20 + 4, 30 + 4, 4)
    for c in range(3):
        ref = scipy.signal.convolve(x[..., c].astype(np.float64), k, mode="full")
        assert_rounded(out[..., c], ref, np.uint8)
    # alpha on the full grid: the input's, extended with its nearest edge value
    assert np.array_equal(out[2:-2, 2:-2, 3], x[..., 3])
    assert run(tmp_path / "in.png", "-k", "box:5", "--mode", "valid", "-o", tmp_path / "v.png") == 0
    valid = np.asarray(Image.open(tmp_path / "v.png"))
    assert valid.shape == (20 - 4, 30 - 4, 4)
    assert np.array_equal(valid[..., 3], x[2:-2, 2:-2, 3])  # alpha of the centre samples
    assert (out[:, :7, 3] == 10).all()
    assert (out[:, 7:, 3] == 200).all()


def test_tiff_16bit_sharpen_clips_to_uint16(tmp_path):
    rng = np.random.default_rng(3)
    x = picture(rng, (30, 40), high=65536).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", x)
    rc = run(
        tmp_path / "in.tif", "-k", "sharpen", "--boundary", "reflect", "-o", tmp_path / "o.tif"
    )
    assert rc == 0
    out = tifffile.imread(tmp_path / "o.tif")
    ref = ndi.convolve(x.astype(np.float64), sharpen(), mode="mirror")
    assert out.dtype == np.uint16
    assert np.array_equal(out, rounded(ref, np.uint16))
    assert (out == 65535).any()
    assert (out == 0).any()


def test_tiff_16bit_rgb_gaussian_and_float_output(tmp_path):
    rng = np.random.default_rng(4)
    x = picture(rng, (20, 24, 3), high=65536).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", x, photometric="rgb")
    assert run(tmp_path / "in.tif", "-k", "gaussian:sigma=1", "-o", tmp_path / "i.tif") == 0
    assert (
        run(tmp_path / "in.tif", "-k", "gaussian:sigma=1", "--float", "-o", tmp_path / "f.tif") == 0
    )
    as_int, as_float = tifffile.imread(tmp_path / "i.tif"), tifffile.imread(tmp_path / "f.tif")
    assert as_float.dtype == np.float32
    assert as_float.shape == x.shape
    for c in range(3):
        ref = ndi.gaussian_filter(x[..., c].astype(np.float64), 1.0, mode="mirror", radius=3)
        assert rel_err(as_float[..., c], ref) < 1e-6
        assert np.abs(as_int[..., c].astype(float) - ref).max() <= 0.5 + 0.02  # float32 work


def test_tiff_stack_3d_and_per_slice_kernels(tmp_path):
    """A multi-page TIFF is a volume: built-ins are 3-D; ``ndim=2`` filters each slice."""
    rng = np.random.default_rng(5)
    x = rng.random((6, 16, 18)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", x)
    assert run(tmp_path / "stack.tif", "-k", "laplacian", "-o", tmp_path / "l3.tif") == 0
    assert run(tmp_path / "stack.tif", "-k", "laplacian:ndim=2", "-o", tmp_path / "l2.tif") == 0
    x64 = x.astype(np.float64)
    l3 = tifffile.imread(tmp_path / "l3.tif")
    assert l3.dtype == np.float32
    assert rel_err(l3, ndi.laplace(x64, mode="mirror")) < 1e-6  # images: boundary='reflect'
    l2 = tifffile.imread(tmp_path / "l2.tif")
    ref2 = np.stack(
        [scipy.signal.convolve(np.pad(s, 1, mode="reflect"), laplacian(2), "valid") for s in x64]
    )
    assert rel_err(l2, ref2) < 1e-6


def test_image_kernel_is_a_normalised_psf(tmp_path):
    rng = np.random.default_rng(6)
    x = picture(rng, (20, 20)).round().astype(np.uint8)
    psf = np.array([[0, 50, 0], [50, 100, 50], [0, 0, 0]], np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    Image.fromarray(psf).save(tmp_path / "psf.png")
    rc = run(tmp_path / "in.png", "-k", tmp_path / "psf.png", "--dtype", "float64")
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "in-psf.png"))  # default name: <stem>-<kernel>
    padded = np.pad(x.astype(float), 1, mode="reflect")  # images: boundary='reflect'
    ref = scipy.signal.convolve(padded, psf / psf.sum(), "valid")
    assert_rounded(out, ref, np.uint8)


def test_correlate_does_not_flip(tmp_path):
    x = np.zeros((5, 7), np.uint8)
    x[2, 3] = 100
    Image.fromarray(x).save(tmp_path / "dot.png")
    k = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.25], [0.0, 0.0, 0.0]])
    np.save(tmp_path / "k.npy", k)
    assert run(tmp_path / "dot.png", "-k", tmp_path / "k.npy", "-o", tmp_path / "conv.png") == 0
    assert run(tmp_path / "dot.png", "-k", tmp_path / "k.npy", "--correlate",
               "-o", tmp_path / "corr.png") == 0  # fmt: skip
    conv = np.asarray(Image.open(tmp_path / "conv.png"))
    corr = np.asarray(Image.open(tmp_path / "corr.png"))
    assert conv[2, 4] == 25
    assert conv[2, 2] == 0
    assert corr[2, 2] == 25
    assert corr[2, 4] == 0
    assert np.array_equal(corr, scipy.signal.correlate(x.astype(float), k, "same").round())


def test_jpeg_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    x = picture(rng, (32, 32, 3)).round().astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.jpg", quality=95)
    assert run(tmp_path / "in.jpg", "-k", "box:3", "-o", tmp_path / "out.jpg") == 0
    decoded = np.asarray(Image.open(tmp_path / "in.jpg")).astype(float)
    out = np.asarray(Image.open(tmp_path / "out.jpg")).astype(float)
    ref = np.stack([ndi.uniform_filter(decoded[..., c], 3, mode="mirror") for c in range(3)], -1)
    assert np.abs(out - ref).mean() < 2.0  # JPEG is lossy; the filter is right


# -- audio ----------------------------------------------------------------------------------


def write_wav(path, data, rate=48000, subtype="PCM_16"):
    sf.write(path, data, rate, subtype=subtype)
    return sf.read(path, dtype="float64", always_2d=True)[0]  # the samples as stored


def test_stereo_wav_with_stereo_ir_full_mode(tmp_path):
    rng = np.random.default_rng(8)
    x = write_wav(tmp_path / "in.wav", 0.3 * rng.standard_normal((4000, 2)))
    decay = np.exp(-np.arange(300) / 60.0)[:, None]
    ir = write_wav(
        tmp_path / "ir.wav", 0.2 * rng.standard_normal((300, 2)) * decay, subtype="FLOAT"
    )
    rc = run(
        tmp_path / "in.wav", "-k", tmp_path / "ir.wav", "--mode", "full", "-o", tmp_path / "o.wav"
    )
    assert rc == 0
    out, rate = sf.read(tmp_path / "o.wav", dtype="float64", always_2d=True)
    info = sf.info(tmp_path / "o.wav")
    assert rate == 48000
    assert info.subtype == "PCM_16"
    assert out.shape == (4000 + 299, 2)
    for c in range(2):  # channel c with IR channel c
        ref = scipy.signal.convolve(x[:, c], ir[:, c], mode="full")
        # rounded to the nearest 16-bit step: half a step, plus float32 arithmetic
        assert np.abs(out[:, c] - np.clip(ref, -1, 1 - 1 / 32768)).max() <= 0.6 / 32768


@pytest.mark.parametrize(
    ("subtype", "bits"), [("PCM_U8", 8), ("PCM_S8", 8), ("PCM_16", 16), ("PCM_24", 24)]
)
def test_integer_audio_is_rounded_to_the_nearest_step(tmp_path, subtype, bits):
    # The identity kernel gives back every sample of a file exactly, and results between
    # two steps are rounded to the nearer (libsndfile 1.2 rounds floats down).
    step = 2.0 ** (1 - bits)
    suffix = ".wav" if subtype != "PCM_S8" else ".aiff"
    rng = np.random.default_rng(3)
    levels = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (3000, 1))
    levels[:4, 0] = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, 0, 2 ** (bits - 2)]
    x = write_wav(tmp_path / f"in{suffix}", levels * step, subtype=subtype)
    np.testing.assert_array_equal(x, levels * step)  # the file holds exactly these steps
    assert run(tmp_path / f"in{suffix}", "-k", "identity", "-o", tmp_path / f"o{suffix}") == 0
    out, _ = sf.read(tmp_path / f"o{suffix}", dtype="float64", always_2d=True)
    assert sf.info(tmp_path / f"o{suffix}").subtype == subtype
    np.testing.assert_array_equal(out, x)


def test_stereo_wav_mono_ir_normalize_and_float(tmp_path):
    rng = np.random.default_rng(9)
    x = write_wav(tmp_path / "in.wav", 0.5 * rng.standard_normal((3000, 2)).clip(-1, 1), 44100)
    ir = write_wav(tmp_path / "ir.flac", rng.standard_normal((200, 1)).clip(-1, 1) / 4, 44100)
    rc = run(tmp_path / "in.wav", "-k", tmp_path / "ir.flac", "--normalize", "--float",
             "-o", tmp_path / "o.wav")  # fmt: skip
    assert rc == 0
    out, rate = sf.read(tmp_path / "o.wav", dtype="float64", always_2d=True)
    assert rate == 44100
    assert sf.info(tmp_path / "o.wav").subtype == "FLOAT"
    ref = np.stack([signal_same(x[:, c], ir[:, 0]) for c in range(2)], -1)
    ref /= np.abs(ref).max()  # --normalize: the peak is full scale, the balance kept
    assert rel_err(out, ref) < 1e-6
    assert np.abs(out).max() == pytest.approx(1.0, abs=1e-6)


def test_wav_without_normalize_clips_and_warns(tmp_path, capsys):
    x = write_wav(tmp_path / "in.wav", np.full((100, 1), 0.9))
    assert run(tmp_path / "in.wav", "-k", "box:3", "-o", tmp_path / "o.wav") == 0
    assert run(tmp_path / "in.wav", "-k", tmp_path / "in.wav", "-o", tmp_path / "loud.wav") == 0
    err = capsys.readouterr().err
    assert "samples clipped to the range -1..1" in err
    assert "--normalize" in err
    loud = sf.read(tmp_path / "loud.wav", always_2d=True)[0]
    assert loud.max() == pytest.approx(32767 / 32768)
    assert x.max() < 1


def test_audio_auto_method_is_a_transform_for_long_signals(tmp_path, monkeypatch):
    """Ten seconds stereo x 0.25 s IR: 'auto' must not pick the direct sum (the hour-long
    case is the same decision, measured in benchmarks/audio_reverb.py)."""
    from trueconv._methods import direct

    def refuse(*args, **kwargs):
        raise AssertionError("the direct method ran on long audio")

    monkeypatch.setattr(direct, "run", refuse)
    rng = np.random.default_rng(10)
    x = write_wav(tmp_path / "in.wav", 0.1 * rng.standard_normal((480_000, 2)), subtype="FLOAT")
    ir = write_wav(tmp_path / "ir.wav", 0.01 * rng.standard_normal((12_000, 1)), subtype="FLOAT")
    rc = run(tmp_path / "in.wav", "-k", tmp_path / "ir.wav", "-o", tmp_path / "o.wav", "-v")
    assert rc == 0
    out = sf.read(tmp_path / "o.wav", dtype="float64", always_2d=True)[0]
    ref = scipy.signal.oaconvolve(x, ir, mode="full", axes=0)[(12_000 - 1) // 2 :][:480_000]
    assert rel_err(out, ref) < 1e-5


# -- arrays ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_npy_3d_gaussian_float64(tmp_path, mode):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((9, 10, 11))
    np.save(tmp_path / "x.npy", x)
    rc = run(
        tmp_path / "x.npy", "-k", "gaussian:sigma=0.7", "--mode", mode, "-o", tmp_path / "y.npy"
    )
    assert rc == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float64
    assert rel_err(y, scipy.signal.convolve(x, gaussian(0.7, ndim=3), mode)) < 1e-12


@pytest.mark.parametrize("boundary", sorted(NP_PAD))
def test_npy_boundaries_match_np_pad_then_valid(tmp_path, boundary):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((7, 12)).astype(np.float32)
    k = rng.standard_normal((3, 4))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "k.npy", k)
    rc = run(tmp_path / "x.npy", "-k", tmp_path / "k.npy", "--boundary", boundary,
             "--fill-value", "0.5", "-o", tmp_path / "y.npy")  # fmt: skip
    assert rc == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32  # a float array keeps its precision
    assert rel_err(y, signal_same(x.astype(np.float64), k, boundary, 0.5)) < 1e-5


def test_npy_dims_and_lower_rank_kernel(tmp_path):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((8, 3, 9))
    k = rng.standard_normal((3, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "k.npy", k)
    rc = run(
        tmp_path / "x.npy", "-k", tmp_path / "k.npy", "--dims", "0", "2", "-o", tmp_path / "y.npy"
    )
    assert rc == 0
    ref = np.stack([scipy.signal.convolve(x[:, j, :], k, "same") for j in range(3)], axis=1)
    assert rel_err(np.load(tmp_path / "y.npy"), ref) < 1e-12
    # no --dims: a 1-D kernel filters along the last axis of every row (trueconv's rule)
    assert run(tmp_path / "x.npy", "-k", "box:3", "--dims", "2", "-o", tmp_path / "b.npy") == 0
    assert run(tmp_path / "x.npy", "-k", "box:3,ndim=1", "-o", tmp_path / "c.npy") == 0
    ref = ndi.uniform_filter1d(x, 3, axis=-1, mode="constant")
    assert rel_err(np.load(tmp_path / "b.npy"), ref) < 1e-12
    assert rel_err(np.load(tmp_path / "c.npy"), ref) < 1e-12


def test_npy_integers_are_exact(tmp_path):
    rng = np.random.default_rng(14)
    x = rng.integers(-1000, 1000, (20, 20))
    k = rng.integers(-5, 5, (4, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "k.npy", k)
    rc = run(
        tmp_path / "x.npy", "-k", tmp_path / "k.npy", "--mode", "full", "-o", tmp_path / "y.npy"
    )
    assert rc == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int64
    assert np.array_equal(y, scipy.signal.convolve(x, k, "full", method="direct"))


def test_npz_every_array_keeps_its_name(tmp_path):
    rng = np.random.default_rng(15)
    arrays = {"a": rng.standard_normal((10, 10)), "b": rng.standard_normal((6, 8))}
    np.savez(tmp_path / "x.npz", **arrays)
    assert run(tmp_path / "x.npz", "-k", "laplacian", "--out-dir", tmp_path / "out") == 0
    with np.load(tmp_path / "out" / "x.npz") as z:
        assert sorted(z.files) == ["a", "b"]
        for name, x in arrays.items():
            assert rel_err(z[name], ndi.laplace(x, mode="constant")) < 1e-12


def test_image_to_npy_keeps_floats(tmp_path):
    x = np.zeros((6, 6, 3), np.uint8)
    x[2:4, 2:4] = 255
    Image.fromarray(x).save(tmp_path / "in.png")
    assert run(tmp_path / "in.png", "-k", "laplacian", "-o", tmp_path / "out.npy") == 0
    y = np.load(tmp_path / "out.npy")
    assert y.shape == (6, 6, 3)
    assert y.dtype == np.float32
    assert y.min() < 0  # nothing clipped
    assert np.array_equal(y[..., 0], ndi.laplace(x[..., 0].astype(float), mode="constant"))


def test_verbose_names_the_method_and_several_inputs(tmp_path, capsys):
    for i in range(3):
        np.save(tmp_path / f"x{i}.npy", np.arange(10.0 + i))
    rc = run(*(tmp_path / f"x{i}.npy" for i in range(3)), "-k", "box:3", "--method", "fft",
             "--out-dir", tmp_path / "o", "-v")  # fmt: skip
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(", fft, " in line for line in lines)
    for i in range(3):
        ref = ndi.uniform_filter1d(np.arange(10.0 + i), 3, mode="constant")
        assert rel_err(np.load(tmp_path / "o" / f"x{i}.npy"), ref) < 1e-12


def test_negative_edge_responses_in_an_8_bit_image_do_not_advise_normalize(tmp_path, capsys):
    """--normalize scales the peak magnitude: it cannot make negative samples fit uint8, so the
    clipping note for an edge filter's negative responses does not suggest it (issue 16)."""
    x = np.zeros((16, 16), np.uint8)
    x[:, :8] = 200  # a falling edge: the convolution with sobel-x is negative there
    Image.fromarray(x).save(tmp_path / "in.png")
    assert run(tmp_path / "in.png", "-k", "sobel-x", "-o", tmp_path / "o.png") == 0
    err = capsys.readouterr().err
    assert "samples clipped to the range 0..255" in err
    assert "are negative, which unsigned samples cannot hold" in err
    assert "--normalize" not in err
    assert "--float keeps every value" in err
    bright = np.full((16, 16), 250, np.uint8)
    Image.fromarray(bright).save(tmp_path / "bright.png")
    assert run(tmp_path / "bright.png", "-k", "1,1", "-o", tmp_path / "b.png") == 0
    assert "--normalize scales the output to fit" in capsys.readouterr().err  # only too bright
