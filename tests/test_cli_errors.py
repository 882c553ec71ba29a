"""Every way `trueconv apply` refuses: one clear line on stderr (no traceback), the right exit
status (1: some inputs failed, the others done; 2: bad usage), and no partial output left —
not under the output's name, not as a stray temporary file."""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np
import pytest

import trueconv
from trueconv.cli import formats, main

Image = pytest.importorskip("PIL.Image")
sf = pytest.importorskip("soundfile")


@pytest.fixture(autouse=True)
def no_stray_temporaries(tmp_path):
    """After every test: no temporary file of a safe write is left anywhere."""
    yield
    stray = [p for p in tmp_path.rglob(".*") if p.is_file() or p.is_dir()]
    assert not stray, stray


def run(*argv) -> int:
    """``trueconv apply ARGV...`` in-process; returns the exit status."""
    return main(["apply", *(str(a) for a in argv)])


def files(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.fixture
def npy(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(3, 4))
    return tmp_path / "x.npy"


@pytest.fixture
def png(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "p.png")
    return tmp_path / "p.png"


@pytest.fixture
def wav(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((100, 2)), 48000)
    return tmp_path / "a.wav"


# -- unreadable inputs: exit 1, the others still done -----------------------------------------


def test_one_bad_input_of_many(tmp_path, npy, capsys):
    bad = tmp_path / "bad.png"
    good = tmp_path / "y.npy"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    np.save(good, np.ones(5))
    rc = run(npy, bad, good, "-k", "box:3", "--out-dir", tmp_path / "out")
    assert rc == 1
    line = one_line(capsys)
    assert line.startswith(f"trueconv apply: {bad}: cannot read as image:")
    assert files(tmp_path / "out") == {"x.npy", "y.npy"}


def test_truncated_png(tmp_path, png, capsys):
    data = png.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    assert run(cut, "-k", "box:3", "-o", tmp_path / "o.png") == 1
    assert f"trueconv apply: {cut}: cannot read as image:" in one_line(capsys)
    assert "o.png" not in files(tmp_path)
    assert not any(n.startswith(".") for n in files(tmp_path))


def test_truncated_npy(tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((100, 100)))
    data = (tmp_path / "big.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:5000])
    assert run(tmp_path / "cut.npy", "-k", "box:3") == 1
    line = one_line(capsys)
    assert "truncated: the header announces 80000 bytes of data, the file has 4872" in line
    assert not (tmp_path / "cut-box.npy").exists()
    (tmp_path / "cut.npy").write_bytes(data[:40])
    assert run(tmp_path / "cut.npy", "-k", "box:3") == 1
    assert "cannot read as NumPy array: EOF" in one_line(capsys)


def test_truncated_wav(tmp_path, wav, capsys):
    data = wav.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:200])
    assert run(tmp_path / "cut.wav", "-k", "box:3") == 1
    assert "truncated: the header announces 400 bytes of samples, the file has" in one_line(capsys)
    assert not (tmp_path / "cut-box.wav").exists()


def test_truncated_tiff(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "t.tif", np.ones((64, 64), np.uint16))
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    assert run(tmp_path / "cut.tif", "-k", "box:3") == 1
    assert "cut.tif: " in one_line(capsys)
    assert not (tmp_path / "cut-box.tif").exists()


def test_16bit_colour_png_is_read_with_every_bit_and_a_cut_one_is_one_line(tmp_path, capsys):
    """Pillow reads 16-bit colour PNGs with 8 bits per sample: they are read by imagecodecs
    instead, every value kept (they used to be refused); a truncated one is one line."""
    pytest.importorskip("imagecodecs")
    rgb = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)  # filter type 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", 5, 4, 16, 2, 0, 0, 0)  # 16 bits, colour type 2 (RGB)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    (tmp_path / "deep.png").write_bytes(png + chunk(b"IEND", b""))
    assert Image.open(tmp_path / "deep.png").mode == "RGB"  # what Pillow would silently do
    assert run(tmp_path / "deep.png", "-k", "identity", "-o", tmp_path / "deep.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "deep.npy"), rgb.astype(np.float32))
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 40])
    assert run(tmp_path / "cut.png", "-k", "box:3") == 1
    assert "cut.png: cannot read as image: " in one_line(capsys)
    assert files(tmp_path) == {"deep.png", "deep.npy", "cut.png"}


def test_unknown_suffix_and_missing_file(tmp_path, npy, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    rc = run(tmp_path / "notes.txt", tmp_path / "nope.npy", npy, "-k", "box:3")
    assert rc == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"trueconv apply: {tmp_path / 'notes.txt'}: unknown input file type")
    assert "known: .aif .aiff .bmp" in err[0]
    assert err[1] == f"trueconv apply: {tmp_path / 'nope.npy'}: no such file"
    assert (tmp_path / "x-box.npy").exists()


def test_unknown_output_suffix(tmp_path, npy, capsys):
    assert run(npy, "-k", "box:3", "-o", tmp_path / "y.xyz") == 1
    assert "unknown output file type (suffix '.xyz')" in one_line(capsys)
    assert files(tmp_path) == {"x.npy"}


# -- kernels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gausian:sigma=2", "unknown kernel 'gausian'; did you mean 'gaussian'?"),
        ("sobelx", "did you mean 'sobel-x'?"),
        ("gaussian:sigam=2", "gaussian: unknown parameter 'sigam'; did you mean 'sigma'?"),
        ("gaussian", "gaussian needs sigma: gaussian:sigma=S[,size=N]"),
        ("box:2.5", "box: size must be an integer; got '2.5'"),
        ("gaussian:sigma=-1", "sigma must be positive"),
        ("box:3,4", "box: unexpected value '4'"),
        ("motion:ndim=3", "motion is 2-D; got ndim=3"),
    ],
)
def test_kernel_spec_typos_are_usage_errors(npy, capsys, spec, message):
    assert run(npy, "-k", spec) == 2
    line = one_line(capsys)
    assert line.startswith("trueconv apply: --kernel: ")
    assert message in line
    assert not (npy.parent / "x-box.npy").exists()


def test_kernel_file_problems_are_usage_errors(tmp_path, npy, capsys):
    assert run(npy, "-k", tmp_path / "missing.wav") == 2
    assert one_line(capsys) == f"trueconv apply: --kernel {tmp_path / 'missing.wav'}: no such file"
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "black.png")
    assert run(npy, "-k", tmp_path / "black.png") == 2
    assert "the image is black" in one_line(capsys)


def test_kernel_rank_does_not_fit(tmp_path, wav, png, capsys):
    assert run(wav, "-k", "sobel-x") == 1
    assert one_line(capsys) == (
        f"trueconv apply: {wav}: kernel sobel-x is 2-D or more; "
        "this audio has 1 dim to convolve (time)"
    )
    np.save(tmp_path / "k3.npy", np.ones((2, 2, 2)))
    assert run(png, "-k", tmp_path / "k3.npy") == 1
    assert one_line(capsys).endswith("is 3-D; this image has 2 dims to convolve (height, width)")
    assert files(tmp_path) == {"a.wav", "p.png", "k3.npy"}


def test_impulse_response_sample_rate_and_channels(tmp_path, wav, capsys):
    sf.write(tmp_path / "ir44.wav", np.ones((10, 1)) / 10, 44100)
    assert run(wav, "-k", tmp_path / "ir44.wav") == 1
    assert one_line(capsys).endswith(
        "has sample rate 44100 Hz, the input 48000 Hz; resample one of them "
        "(trueconv does not resample)"
    )
    sf.write(tmp_path / "ir3.wav", np.ones((10, 3)) / 10, 48000)
    assert run(wav, "-k", tmp_path / "ir3.wav") == 1
    assert "has 3 channels, the input has 2" in one_line(capsys)
    assert not (tmp_path / "a-ir44.wav").exists()
    assert not (tmp_path / "a-ir3.wav").exists()


def test_dims_only_for_arrays(tmp_path, png, capsys):
    assert run(png, "-k", "box:3", "--dims", "0") == 1
    assert "--dims applies to arrays (.npy/.npz)" in one_line(capsys)
    assert files(tmp_path) == {"p.png"}


def test_zero_dim_array(tmp_path, capsys):
    np.save(tmp_path / "s.npy", np.float64(3.0))
    assert run(tmp_path / "s.npy", "-k", "box:3") == 1
    assert "nothing to convolve: array '0' is 0-D" in one_line(capsys)
    assert files(tmp_path) == {"s.npy"}


def test_unwritable_folder(tmp_path, npy, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert run(npy, "-k", "box:3", "-o", tmp_path / "file" / "y.npy") == 1
    assert f"cannot write in {tmp_path / 'file'}: " in one_line(capsys)
    (tmp_path / "y.npy").mkdir()
    assert run(npy, "-k", "box:3", "-o", tmp_path / "y.npy", "--force") == 1
    assert f"cannot write {tmp_path / 'y.npy'}: Is a directory" in one_line(capsys)


def test_library_error_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones((3, 10)))
    np.save(tmp_path / "k.npy", np.ones((5, 2)))
    assert run(tmp_path / "x.npy", "-k", tmp_path / "k.npy", "--mode", "valid") == 1
    line = one_line(capsys)
    assert "convolve(): " in line
    assert "valid" in line
    assert not (tmp_path / "x-k.npy").exists()


# -- memory -------------------------------------------------------------------------------------


def test_max_bytes_refuses_before_reading(tmp_path, npy, capsys, monkeypatch):
    def no_read(source):
        raise AssertionError("the input was read before the size check")

    monkeypatch.setattr(formats, "read", no_read)
    assert run(npy, "-k", "box:3", "--max-bytes", "100") == 1
    line = one_line(capsys)
    assert "needs about" in line
    assert "(output 3 x 4, kernel 3 x 3, direct)" in line
    assert "more than --max-bytes 100 B; raise --max-bytes or split the input" in line
    assert not (tmp_path / "x-box.npy").exists()


def test_bad_max_bytes_is_a_usage_error(npy, capsys):
    assert run(npy, "-k", "box:3", "--max-bytes", "lots") == 2
    assert "not a size: 'lots'" in capsys.readouterr().err


# -- never overwrite without --force ------------------------------------------------------------


def test_existing_output_refused_then_forced(tmp_path, npy, capsys):
    target = tmp_path / "y.npy"
    target.write_bytes(b"precious")
    assert run(npy, "-k", "box:3", "-o", target) == 1
    assert one_line(capsys).endswith(f"{target} exists; pass --force to overwrite it")
    assert target.read_bytes() == b"precious"
    assert run(npy, "-k", "box:3", "-o", target, "--force") == 0
    assert np.load(target).shape == (3, 4)


def test_input_never_overwritten_without_force(tmp_path, npy, capsys):
    before = npy.read_bytes()
    assert run(npy, "-k", "box:3", "-o", npy) == 1
    assert "is an input; pass --force to replace it" in one_line(capsys)
    assert run(npy, "-k", "box:3", "--out-dir", tmp_path) == 1  # same folder, same name
    assert "is an input" in one_line(capsys)
    assert npy.read_bytes() == before
    assert run(npy, "-k", "identity", "-o", npy, "--force") == 0
    assert np.array_equal(np.load(npy), np.arange(12.0).reshape(3, 4))
    assert files(tmp_path) == {"x.npy"}


def test_failed_write_leaves_nothing(tmp_path, npy, capsys, monkeypatch):
    def half_then_fail(f, arr, *args, **kwargs):
        f.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", half_then_fail)
    target = tmp_path / "y.npy"
    assert run(npy, "-k", "box:3", "-o", target) == 1
    assert "cannot write as NumPy array: No space left on device (" in one_line(capsys)
    assert files(tmp_path) == {"x.npy"}


def test_failed_write_keeps_the_old_output(tmp_path, npy, capsys, monkeypatch):
    target = tmp_path / "y.npy"
    target.write_bytes(b"old")
    monkeypatch.setattr(np, "save", lambda f, a: (_ for _ in ()).throw(OSError("boom")))
    assert run(npy, "-k", "box:3", "-o", target, "--force") == 1
    assert target.read_bytes() == b"old"
    assert files(tmp_path) == {"x.npy", "y.npy"}


def test_unwritable_output_refused_before_computing(tmp_path, png, capsys, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("computed for an output that cannot be written")

    monkeypatch.setattr(trueconv, "convolve", no_compute)
    assert run(png, "-k", "box:3", "--float", "-o", tmp_path / "o.png") == 1
    assert ".png holds integer samples, not floats: write .tif or .npy" in one_line(capsys)
    sf.write(tmp_path / "a.wav", np.zeros((10, 1)), 8000)
    assert run(tmp_path / "a.wav", "-k", "box:3", "--float", "-o", tmp_path / "o.flac") == 1
    assert ".flac cannot hold float samples: write .wav" in one_line(capsys)
    assert run(png, "-k", "box:3", "-o", tmp_path / "o.wav") == 1
    assert "cannot write image data as .wav audio" in one_line(capsys)
    assert files(tmp_path) == {"p.png", "a.wav"}


# -- usage: exit 2, nothing done ----------------------------------------------------------------


def test_output_with_several_inputs(tmp_path, npy, png, capsys):
    assert run(npy, png, "-k", "box:3", "-o", tmp_path / "o.npy") == 2
    assert "with several inputs use --out-dir" in one_line(capsys)
    assert files(tmp_path) == {"x.npy", "p.png"}


def test_two_inputs_one_output(tmp_path, npy, capsys):
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", np.ones(3))
    assert run(npy, tmp_path / "sub" / "x.npy", "-k", "box:3", "--out-dir", tmp_path / "o") == 2
    assert "would both write" in one_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["x.npy", "-k", "box", "--mode", "sme"],
        ["x.npy", "-k", "box", "--boundary", "mirror"],
        ["x.npy"],
        ["-k", "box"],
        ["x.npy", "-k", "box", "-o", "a.npy", "--out-dir", "d"],
    ],
)
def test_argparse_usage_errors(argv, capsys):
    assert main(["apply", *argv]) == 2
    err = capsys.readouterr().err
    assert "usage: trueconv apply" in err
    assert "Traceback" not in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_device(npy, capsys):
    assert run(npy, "-k", "box:3", "--device", "cuda") == 2
    assert one_line(capsys) == "trueconv apply: --device cuda: no CUDA device is available"


# -- the optional dependencies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "suffix", "dist"),
    [
        ("PIL", ".png", "Pillow"),
        ("soundfile", ".wav", "soundfile"),
        ("tifffile", ".tif", "tifffile"),
    ],
)
def test_missing_extra_names_it(tmp_path, npy, capsys, monkeypatch, module, suffix, dist):
    path = tmp_path / f"in{suffix}"
    path.write_bytes(b"whatever")
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    assert run(path, npy, "-k", "box:3") == 1
    assert one_line(capsys) == (
        f'trueconv apply: {path}: reading {suffix} files needs {dist}: pip install "trueconv[cli]"'
    )
    assert (tmp_path / "x-box.npy").exists()  # .npy needs no extra
