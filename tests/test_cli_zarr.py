"""`trueconv apply` on `.zarr` stores: lazily, chunk by chunk, through Dask.

Every output is a real zarr store written by the command and compared with scipy.signal run in
float64 on the same numpy array (boundaries: the input extended by ``np.pad``, then
``'valid'``), never with trueconv itself. Also: the refusals (existing output, groups, bad
``--chunks``, a non-zarr output, ``--max-bytes`` per task, missing extras), each one line on
stderr with no partial output left, and a ``dask.distributed`` cluster started here.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import scipy.signal

import trueconv.dask
from conftest import rel_err
from trueconv.cli import main, zarr_apply
from trueconv.cli.kernels import gaussian

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
FORMATS = [2, 3] if ZARR3 else [2]


@pytest.fixture(autouse=True)
def no_stray_temporaries(tmp_path):
    """After every test: no temporary store (``.<name>.…``) is left anywhere."""
    yield
    stray = list(tmp_path.rglob(".*.zarr")) + list(tmp_path.glob(".*old*"))
    assert not stray, stray


def run(*argv) -> int:
    """``trueconv apply ARGV...`` in-process; returns the exit status."""
    return main(["apply", *(str(a) for a in argv)])


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def store(path, x, chunks, zarr_format=3, attrs=None):
    """Write ``x`` as a zarr array store at ``path``; returns the path."""
    if ZARR3:
        z = zarr.create_array(
            store=str(path), shape=x.shape, dtype=x.dtype, chunks=chunks, zarr_format=zarr_format
        )
    else:
        z = zarr.open_array(str(path), mode="w", shape=x.shape, dtype=x.dtype, chunks=chunks)
    z[...] = x
    z.attrs.update(attrs or {})
    return path


def load(path):
    """The stored array and its zarr node (chunks, attrs, format)."""
    z = zarr.open(str(path), mode="r")
    assert isinstance(z, zarr.Array)
    return z[...], z


def padded_valid(x, k, mode, np_mode):
    """scipy.signal oracle for 'same'/'full' with a boundary: np.pad, then 'valid'."""
    if mode == "full":
        pads = [(m - 1, m - 1) for m in k.shape]
    else:  # 'same' starts at (m - 1) // 2 of 'full'
        pads = [(m // 2, (m - 1) // 2) for m in k.shape]
    return scipy.signal.convolve(np.pad(x, pads, mode=np_mode), k, "valid", method="direct")


# -- results against scipy ------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", FORMATS)
@pytest.mark.parametrize("mode", ["same", "full", "valid"])
def test_modes_match_scipy_and_output_is_regular(tmp_path, mode, zarr_format):
    """3-D gaussian (every dim spatial, as .npy), rechunked from (8, 8, 8) to (5, 6, 7): the
    output has those chunks (full/valid too, whose last chunk differs), the input's attrs and
    zarr format."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 14, 16))
    src = store(tmp_path / "x.zarr", x, (8, 8, 8), zarr_format, {"unit": "mV", "n": [1, 2]})
    out = tmp_path / "y.zarr"
    rc = run(src, "-k", "gaussian:sigma=0.7", "--mode", mode, "--chunks", "5,6,7", "-o", out)
    assert rc == 0
    y, z = load(out)
    assert y.dtype == np.float64
    assert rel_err(y, scipy.signal.convolve(x, gaussian(0.7, ndim=3), mode)) < 1e-12
    assert z.chunks == tuple(min(c, n) for c, n in zip((5, 6, 7), y.shape))
    assert dict(z.attrs) == {"unit": "mV", "n": [1, 2]}
    if ZARR3:
        assert z.metadata.zarr_format == zarr_format


@pytest.mark.parametrize("mode", ["same", "full"])
def test_reflect_with_chunks_smaller_than_the_kernel(tmp_path, mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 23)).astype(np.float32)
    k = rng.standard_normal((7, 5))
    np.save(tmp_path / "k.npy", k)
    src = store(tmp_path / "x.zarr", x, (10, 10))
    rc = run(src, "-k", tmp_path / "k.npy", "--mode", mode, "--boundary", "reflect",
             "--chunks", "2", "-o", tmp_path / "y.zarr")  # fmt: skip
    assert rc == 0
    y, z = load(tmp_path / "y.zarr")
    assert y.dtype == np.float32  # a float array keeps its precision, as .npy
    assert z.chunks == (2, 2)
    assert rel_err(y, padded_valid(x.astype(np.float64), k, mode, "reflect")) < 1e-5


def test_dims_subset_with_default_chunks(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 3, 11))
    k = rng.standard_normal((3, 4))
    np.save(tmp_path / "k.npy", k)
    src = store(tmp_path / "x.zarr", x, (4, 2, 5))
    rc = run(src, "-k", tmp_path / "k.npy", "--dims", "0", "2", "-o", tmp_path / "y.zarr")
    assert rc == 0
    y, z = load(tmp_path / "y.zarr")
    assert z.chunks == (4, 2, 5)  # default: the input's own chunks
    ref = np.stack([scipy.signal.convolve(x[:, j, :], k, "same") for j in range(3)], axis=1)
    assert rel_err(y, ref) < 1e-12


def test_correlate_and_default_output_name(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((15, 17))
    k = rng.standard_normal((3, 4))
    np.save(tmp_path / "tpl.npy", k)
    src = store(tmp_path / "x.zarr", x, (6, 6))
    assert run(src, "-k", tmp_path / "tpl.npy", "--correlate", "--mode", "full") == 0
    y, _ = load(tmp_path / "x-tpl.zarr")  # <stem>-<kernel><suffix>, as every format
    assert rel_err(y, scipy.signal.correlate(x, k, "full")) < 1e-12


def test_integers_follow_npy(tmp_path):
    """Integers with a float kernel: float64; with an integer kernel: exact int64."""
    rng = np.random.default_rng(4)
    x = rng.integers(-1000, 1000, (13, 10)).astype(np.int16)
    src = store(tmp_path / "x.zarr", x, (5, 5))
    assert run(src, "-k", "box:3", "--out-dir", tmp_path / "f") == 0
    y, _ = load(tmp_path / "f" / "x.zarr")
    assert y.dtype == np.float64
    assert rel_err(y, scipy.signal.convolve(x.astype(float), np.ones((3, 3)) / 9, "same")) < 1e-12
    k = rng.integers(-5, 5, (4, 3))
    np.save(tmp_path / "k.npy", k)
    assert run(src, "-k", tmp_path / "k.npy", "--mode", "full", "-o", tmp_path / "i.zarr") == 0
    y, _ = load(tmp_path / "i.zarr")
    assert y.dtype == np.int64
    assert np.array_equal(y, scipy.signal.convolve(x.astype(np.int64), k, "full", "direct"))


def test_npy_to_zarr_and_zarr_kernel(tmp_path):
    """The in-memory path writes .zarr too (a non-zarr input), and a kernel may be a store."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 12))
    k = rng.standard_normal((3, 3))
    np.save(tmp_path / "x.npy", x)
    store(tmp_path / "k.zarr", k, (2, 2))
    assert run(tmp_path / "x.npy", "-k", tmp_path / "k.zarr", "-o", tmp_path / "y.zarr") == 0
    y, _ = load(tmp_path / "y.zarr")
    assert rel_err(y, scipy.signal.convolve(x, k, "same")) < 1e-12


# -- a cluster and the progress bar ---------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_scheduler_address_of_a_local_cluster(tmp_path, monkeypatch):
    """The cluster computes (its scheduler sees the tasks), distributed's bar shows on a
    terminal, and the client is closed afterwards."""
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 18))
    src = store(tmp_path / "x.zarr", x, (5, 7))
    argv = [src, "-k", "laplacian", "--boundary", "symmetric"]
    clients = []
    connect = zarr_apply.connect
    monkeypatch.setattr(
        zarr_apply, "connect", lambda address: clients.append(connect(address)) or clients[-1]
    )
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        argv += ["--scheduler", cluster.scheduler_address]
        assert run(*argv, "-o", tmp_path / "y.zarr") == 0
        assert cluster.scheduler.transition_counter > 0
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert run(*argv, "-o", tmp_path / "z.zarr") == 0
        assert "100% Completed" in terminal.getvalue()
        assert [c.status for c in clients] == ["closed", "closed"]
    k = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    for name in ("y.zarr", "z.zarr"):
        y, _ = load(tmp_path / name)
        assert rel_err(y, padded_valid(x, k, "same", "symmetric")) < 1e-12


@pytest.mark.parametrize("tqdm", [True, False])
def test_dask_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, capsys, tqdm):
    """Dask's bar: inside the file bar when tqdm draws one, else on its own; never on a pipe
    or with --quiet."""
    if tqdm:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)
    src = store(tmp_path / "x.zarr", np.ones((6, 6)), (3, 3))
    assert run(src, "-k", "box:3", "-o", tmp_path / "a.zarr") == 0  # stderr is a pipe here
    assert capsys.readouterr().err == ""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(src, "-k", "box:3", "-o", tmp_path / "b.zarr") == 0
    assert "100% Completed" in terminal.getvalue()
    assert ("1/1" in terminal.getvalue()) == tqdm
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert run(src, "-k", "box:3", "-o", tmp_path / "c.zarr", "-q") == 0
    assert quiet.getvalue() == ""


# -- refusals: one line, nothing left behind -----------------------------------------------


def test_existing_output_refused_then_forced(tmp_path, capsys):
    x = np.arange(30.0).reshape(5, 6)
    src = store(tmp_path / "x.zarr", x, (2, 3))
    old = store(tmp_path / "y.zarr", np.zeros(3), (3,))
    assert run(src, "-k", "identity", "-o", old) == 1
    assert one_line(capsys).endswith(f"{old} exists; pass --force to overwrite it")
    assert np.array_equal(load(old)[0], np.zeros(3))
    assert run(src, "-k", "identity", "-o", old, "--force") == 0
    assert np.array_equal(load(old)[0], x)
    # in place: the input is read whole before the old store goes
    assert run(src, "-k", "box:3,ndim=1", "--dims", "1", "-o", src) == 1
    assert "is an input" in one_line(capsys)
    assert run(src, "-k", "box:3,ndim=1", "--dims", "1", "-o", src, "--force") == 0
    ref = scipy.signal.convolve(x, np.ones((1, 3)) / 3, "same")
    assert rel_err(load(src)[0], ref) < 1e-12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr", "y.zarr"]


def test_failed_task_leaves_no_output_and_keeps_the_old(tmp_path, capsys, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    src = store(tmp_path / "x.zarr", np.ones((8, 8)), (4, 4))
    monkeypatch.setattr(trueconv.dask, "_block", failing)
    assert run(src, "-k", "box:3", "-o", tmp_path / "y.zarr") == 1
    assert "out of memory (about" in one_line(capsys)
    assert not (tmp_path / "y.zarr").exists()
    old = store(tmp_path / "y.zarr", np.arange(3.0), (3,))
    assert run(src, "-k", "box:3", "-o", old, "--force") == 1
    assert "use smaller --chunks" in one_line(capsys)
    assert np.array_equal(load(old)[0], np.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr", "y.zarr"]


def test_group_is_refused(tmp_path, capsys):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    for name in ("raw", "mask"):
        group.create_array(name, shape=(4,), dtype="f8") if ZARR3 else group.zeros(name, (4,))
    assert run(tmp_path / "g.zarr", "-k", "box:3") == 1
    line = one_line(capsys)
    assert line == (
        f"trueconv apply: {tmp_path / 'g.zarr'}: a zarr group (it holds arrays mask, raw), "
        "not an array; name one of them: g.zarr/mask"
    )
    (tmp_path / "empty.zarr").mkdir()
    assert run(tmp_path / "empty.zarr", "-k", "box:3") == 1
    assert one_line(capsys).endswith("not a zarr store: it has no .zarray or zarr.json")


@pytest.mark.parametrize("text", ["64,x", "0", "-4", "", "1.5", "auto"])
def test_bad_chunks_text_is_one_line(tmp_path, capsys, text):
    src = store(tmp_path / "x.zarr", np.ones((4, 4)), (2, 2))
    assert run(src, "-k", "box:3", "--chunks", text) == 2
    assert one_line(capsys) == (
        f"trueconv apply: --chunks {text!r}: not chunk sizes; give one positive integer for "
        "every dim (--chunks 256) or one per dim, separated by commas (--chunks 64,512,512)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]


def test_chunks_of_the_wrong_rank_and_other_usage(tmp_path, capsys):
    src = store(tmp_path / "x.zarr", np.ones((4, 4)), (2, 2))
    assert run(src, "-k", "box:3", "--chunks", "2,2,2") == 1
    assert one_line(capsys).endswith(
        "--chunks 2,2,2 gives 3 sizes; the array has 2 dims: give one size for every dim, or 2"
    )
    assert run(src, "-k", "box:3", "-o", tmp_path / "y.npy") == 2
    assert "a .zarr input is convolved chunk by chunk into a .zarr store" in one_line(capsys)
    np.save(tmp_path / "a.npy", np.ones(3))
    assert run(tmp_path / "a.npy", "-k", "box:3", "--chunks", "2") == 2
    assert one_line(capsys).endswith("--chunks applies to .zarr inputs; there is none")
    assert run(src, "-k", "box:3", "--normalize") == 1
    assert "--normalize is not available for .zarr inputs" in one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "x.zarr"]


def test_max_bytes_applies_per_task(tmp_path, capsys):
    """An 8 MiB array in 32 KiB chunks passes a 20 MiB limit (its task graph, 256 chunks,
    fits too); in one chunk it does not."""
    src = store(tmp_path / "x.zarr", np.ones((1024, 1024)), (64, 64))
    assert run(src, "-k", "box:3", "--max-bytes", "20M", "-o", tmp_path / "a.zarr") == 0
    assert run(src, "-k", "box:3", "--max-bytes", "20M", "--chunks", "1024",
               "-o", tmp_path / "b.zarr") == 1  # fmt: skip
    line = one_line(capsys)
    assert "one task needs about" in line
    assert "(a 1026 x 1026 window of the input" in line
    assert line.endswith(
        "more than --max-bytes 20.0 MiB; use smaller --chunks or raise --max-bytes"
    )
    assert not (tmp_path / "b.zarr").exists()


@pytest.mark.parametrize(("module", "dist"), [("zarr", "zarr"), ("dask", "dask")])
def test_missing_extra_names_it(tmp_path, capsys, monkeypatch, module, dist):
    src = store(tmp_path / "x.zarr", np.ones(5), (5,))
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    assert run(src, "-k", "box:3") == 1
    assert one_line(capsys) == (
        f'trueconv apply: {src}: reading .zarr files needs {dist}: pip install "trueconv[dask]"'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]
