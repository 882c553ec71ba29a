"""Arrays inside zarr groups, named as zarr names them: `trueconv apply STORE.zarr/path/to/array`
(issue 16). Inputs, outputs (a new array joins an existing group, in the group's zarr format)
and kernels; results compared with scipy.signal in float64. The metadata checks of
`trueconv.cli.zarr_store` run on the nested array too, and a path that leaves the store
(`..`, a symlink) is refused before anything in it is opened."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
import scipy.signal

from conftest import console_script
from trueconv.cli import main
from trueconv.cli.kernels import gaussian

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
FORMATS = [2, 3] if ZARR3 else [2]


def run(*argv) -> int:
    return main(["apply", *(str(a) for a in argv)])


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def group(path, zarr_format=3):
    if ZARR3:
        return zarr.open_group(str(path), mode="a", zarr_format=zarr_format)
    return zarr.open_group(str(path), mode="a")


def put(g, name, x, chunks):
    """Write ``x`` as the array ``name`` of group ``g`` (``raw/0``: inside subgroups)."""
    *parents, leaf = name.split("/")
    for part in parents:
        g = g.require_group(part)
    if ZARR3:
        a = g.create_array(leaf, shape=x.shape, dtype=x.dtype, chunks=chunks)
    else:
        a = g.zeros(leaf, shape=x.shape, dtype=x.dtype, chunks=chunks)
    a[...] = x
    return a


def read(path) -> tuple[np.ndarray, int]:
    z = zarr.open(str(path), mode="r")
    assert isinstance(z, zarr.Array)
    fmt = getattr(getattr(z, "metadata", None), "zarr_format", 2)
    return z[...], fmt


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 27))


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_an_array_of_a_group_is_convolved_into_a_sibling(tmp_path, picture, zarr_format):
    g = group(tmp_path / "scan.zarr", zarr_format)
    put(g, "raw/0", picture, (8, 8))
    put(g, "mask", np.ones(4), (4,))
    assert run(tmp_path / "scan.zarr/raw/0", "-k", "gaussian:sigma=1") == 0
    # the default output sits beside the input, in the same group and zarr format
    y, fmt = read(tmp_path / "scan.zarr/raw/0-gaussian")
    assert fmt == zarr_format
    ref = scipy.signal.convolve(picture, gaussian(1.0), mode="same", method="direct")
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert sorted(zarr.open_group(str(tmp_path / "scan.zarr/raw")).array_keys()) == [
        "0",
        "0-gaussian",
    ]
    assert not [p for p in (tmp_path / "scan.zarr/raw").iterdir() if p.name.startswith(".t")]


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_into_another_group_and_as_a_store_of_its_own(tmp_path, picture, zarr_format):
    put(group(tmp_path / "in.zarr"), "a/b/c", picture, (10, 10))
    out = group(tmp_path / "out.zarr", zarr_format)
    out.require_group("results")
    src = tmp_path / "in.zarr/a/b/c"
    assert run(src, "-k", "box:3", "--mode", "full", "-o", tmp_path / "out.zarr/results/box") == 0
    y, fmt = read(tmp_path / "out.zarr/results/box")
    assert fmt == zarr_format  # the group's format, not the input's
    ref = scipy.signal.convolve(picture, np.full((3, 3), 1 / 9), mode="full")
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert run(src, "-k", "box:3", "--out-dir", tmp_path / "d") == 0  # -> d/c.zarr
    np.testing.assert_allclose(
        read(tmp_path / "d/c.zarr")[0],
        scipy.signal.convolve(picture, np.full((3, 3), 1 / 9), "same"),
    )
    # an in-memory result (a .npy input) joins a group too
    np.save(tmp_path / "x.npy", picture)
    assert run(tmp_path / "x.npy", "-k", "1,1", "-o", tmp_path / "out.zarr/from-npy") == 0
    y, fmt = read(tmp_path / "out.zarr/from-npy")
    assert fmt == zarr_format
    np.testing.assert_allclose(y, scipy.signal.convolve(picture, [[1.0, 1.0]], "same"))


def test_a_kernel_from_a_group(tmp_path, picture):
    k = np.array([[1.0, 2.0], [0.5, -1.0]])
    g = group(tmp_path / "lib.zarr")
    put(g, "kernels/edge", k, (2, 2))
    np.save(tmp_path / "x.npy", picture)
    rc = run(tmp_path / "x.npy", "-k", tmp_path / "lib.zarr/kernels/edge", "-o", tmp_path / "y.npy")
    assert rc == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), scipy.signal.convolve(picture, k, "same"), atol=1e-12
    )


def test_what_is_not_an_array_of_a_group(tmp_path, capsys):
    g = group(tmp_path / "g.zarr")
    put(g, "raw/0", np.ones((3, 3)), (3, 3))
    put(g, "mask", np.ones(3), (3,))
    assert run(tmp_path / "g.zarr", "-k", "box:3") == 1
    assert one_line(capsys).endswith(
        "g.zarr: a zarr group (it holds arrays mask), not an array; name one of them: g.zarr/mask"
    )
    assert run(tmp_path / "g.zarr/raw", "-k", "box:3") == 1
    assert one_line(capsys).endswith("not an array; name one of them: raw/0")
    assert run(tmp_path / "g.zarr/nope", "-k", "box:3") == 1
    assert one_line(capsys).endswith(f"the zarr store {tmp_path / 'g.zarr'} has no array nope")
    put(group(tmp_path / "h.zarr"), "x", np.ones(3), (3,))
    single = tmp_path / "single.zarr"
    shutil.copytree(tmp_path / "h.zarr/x", single)  # an array store: nothing inside it
    assert run(single / "inner", "-k", "box:3") == 1
    assert one_line(capsys).endswith(
        "is an array, not a zarr group: there is no array inner inside it"
    )
    out = tmp_path / "g.zarr/missing/y"
    assert run(tmp_path / "g.zarr/mask", "-k", "box:3", "-o", out) == 1
    assert one_line(capsys).endswith(
        "g.zarr/missing is not a group of the zarr store "
        f"{tmp_path / 'g.zarr'}: a new array joins an existing group (create it first), or "
        "write a store of its own (-o NAME.zarr)"
    )
    assert not (tmp_path / "g.zarr/missing").exists()


@pytest.mark.parametrize(
    "name", ["g.zarr/../outside.zarr", "g.zarr/raw/../mask", "g.zarr/../outside"]
)
def test_dotdot_inside_a_store_is_refused_as_typed(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    g = group(tmp_path / "g.zarr")
    put(g, "raw/0", np.ones((3, 3)), (3, 3))
    put(g, "mask", np.ones(3), (3,))
    put(group(tmp_path / "outside.zarr"), "v", np.ones(3), (3,))
    shutil.copytree(tmp_path / "outside.zarr/v", tmp_path / "outside")  # an array, no suffix
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert run(name, "-k", "box:3", "-o", "y.zarr") == 1
    inner = name.split(".zarr/", 1)[1]
    assert one_line(capsys) == (
        f"trueconv apply: {name}: {inner}: '..' is not allowed in the path of an array inside "
        "a zarr store; name the array by its path from the store (STORE.zarr/path/to/array)"
    )
    # and as an output
    assert run("g.zarr/mask", "-k", "box:3", "-o", "g.zarr/../elsewhere.zarr") == 1
    assert "'..' is not allowed in the path of an array inside a zarr store" in one_line(capsys)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_a_symlink_out_of_the_store_is_refused(tmp_path, capsys):
    g = group(tmp_path / "g.zarr")
    put(g, "mask", np.ones(3), (3,))
    put(group(tmp_path / "elsewhere.zarr"), "secret", np.arange(3.0), (3,))
    os.symlink(tmp_path / "elsewhere.zarr/secret", tmp_path / "g.zarr/link")
    assert run(tmp_path / "g.zarr/link", "-k", "box:3", "-o", tmp_path / "y.zarr") == 1
    assert one_line(capsys).endswith(
        f"link: leads outside the zarr store {tmp_path / 'g.zarr'} (a symlink)"
    )
    os.symlink(tmp_path / "elsewhere.zarr", tmp_path / "g.zarr/out")
    assert run(tmp_path / "g.zarr/mask", "-k", "box:3", "-o", tmp_path / "g.zarr/out/y") == 1
    assert one_line(capsys).endswith(
        f"out: leads outside the zarr store {tmp_path / 'g.zarr'} (a symlink)"
    )
    assert not (tmp_path / "y.zarr").exists()
    assert not (tmp_path / "elsewhere.zarr/y").exists()


class Marker:
    """Unpickling this creates the file ``path``: proof that a pickle ran."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_filter_inside_a_group_is_refused_before_zarr_reads_it(tmp_path):
    """The metadata checks of a store hold for an array of a group: the console script never
    unpickles the chunk of a nested v2 array whose filter is ``pickle``."""
    marker = tmp_path / "pickle-ran"
    root = tmp_path / "g.zarr"
    (root / "sub/evil").mkdir(parents=True)
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    (root / "sub/.zgroup").write_text('{"zarr_format": 2}')
    zarray = {"zarr_format": 2, "shape": [3, 3], "chunks": [3, 3], "dtype": "<f8",
              "filters": [{"id": "pickle"}], "compressor": None, "fill_value": 0}  # fmt: skip
    (root / "sub/evil/.zarray").write_text(json.dumps(zarray))
    (root / "sub/evil/0.0").write_bytes(pickle.dumps(Marker(marker)))
    done = subprocess.run(
        [*console_script(), "apply", "g.zarr/sub/evil", "-k", "box:3", "-o", "y.zarr"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        'trueconv apply: g.zarr/sub/evil: .zarray filter: codec "pickle" is not allowed: '
        "decoding it unpickles the chunk's bytes"
    )
    assert not marker.exists()
    assert not (tmp_path / "y.zarr").exists()
