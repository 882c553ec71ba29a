"""`trueconv apply` on crafted and broken `.zarr` stores: refused on one line, nothing run.

A store's metadata is checked before zarr reads it (:mod:`trueconv.cli.zarr_store`): a codec
that unpickles (or any codec not on the allow-list), a non-numeric dtype, bogus shapes and
chunks are refused, and a chunk that cannot be decoded fails the job on one line naming it. The
Dask graph's size and one task's memory are held to ``--max-bytes`` from the metadata alone,
before a graph exists; every output chunk is written and the output is renamed into place only
when complete. The command runs in a subprocess where a traceback or a hang would show, with
``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE=1``: numcodecs then unpickles as every version before
0.15.2 did, so a pickle that got through would create its marker file.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest
import scipy.signal

from conftest import rel_err
from trueconv.cli import main, zarr_apply, zarr_store
from trueconv.cli._errors import InputError

zarr = pytest.importorskip("zarr")
dask = pytest.importorskip("dask")
pytest.importorskip("dask.array")

ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
BOX3 = np.ones((3, 3)) / 9


@pytest.fixture(autouse=True)
def no_stray_temporaries(tmp_path):
    """After every test: no temporary store (``.<name>.…``) is left anywhere."""
    yield
    stray = [p for p in tmp_path.rglob(".*") if p.name.startswith(".") and ".zarr." in p.name]
    assert not stray, stray


def cli(*argv, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m trueconv apply ARGV...`` in a subprocess, pickles decoded when reached."""
    env = dict(os.environ, NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE="1")
    command = [sys.executable, "-m", "trueconv", "apply", *map(str, argv)]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def run(*argv) -> int:
    """``trueconv apply ARGV...`` in-process; returns the exit status."""
    return main(["apply", *(str(a) for a in argv)])


def lines(result: subprocess.CompletedProcess) -> list[str]:
    """The stderr lines of a run; never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()


class Marker:
    """Unpickling this creates the file ``path``: proof that a pickle ran."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_json(path, name, doc):
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(json.dumps(doc))
    return path


def zarray(shape, chunks, dtype="<f8", compressor=None, filters=None, **extra):
    return {"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
            "compressor": compressor, "filters": filters, "fill_value": 0, "order": "C",
            **extra}  # fmt: skip


def zarr_json(shape, chunks, codecs, data_type="float64", **extra):
    return {"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0.0, "codecs": codecs, **extra}  # fmt: skip


BYTES = {"name": "bytes", "configuration": {"endian": "little"}}


def raw_v2(path, x, chunks, compressor=None, encode=lambda b: b):
    """A v2 store written by hand: little-endian C-order chunks (shape divisible by chunks)."""
    write_json(path, ".zarray", zarray(list(x.shape), list(chunks), x.dtype.str, compressor))
    for index in np.ndindex(*(n // c for n, c in zip(x.shape, chunks))):
        block = x[tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))]
        (path / ".".join(map(str, index))).write_bytes(encode(block.tobytes()))
    return path


# -- codecs that run code, or do not give numbers --------------------------------------------


def pickle_store(path, marker):
    """A v2 store whose ``pickle`` filter would unpickle a chunk that creates ``marker``."""
    write_json(path, ".zarray", zarray([3, 3], [3, 3], filters=[{"id": "pickle"}]))
    (path / "0.0").write_bytes(pickle.dumps(Marker(marker)))
    return path


def test_the_marker_works(tmp_path):
    """The payload does what the tests below prove never happens: unpickled, it writes."""
    pickle.loads(pickle.dumps(Marker(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()
    (tmp_path / "ran").unlink()


@pytest.mark.parametrize("role", ["input", "kernel"])
def test_pickle_filter_is_refused_before_zarr_reads_the_store(tmp_path, role):
    marker = tmp_path / "pickle-ran"
    store = pickle_store(tmp_path / "p.zarr", marker)
    np.save(tmp_path / "x.npy", np.ones((4, 4)))
    if role == "input":
        result, status, what = cli(store, "-k", "box:3", "-o", tmp_path / "y.zarr"), 1, store
    else:
        result = cli(tmp_path / "x.npy", "-k", store, "-o", tmp_path / "y.npy")
        status, what = 2, f"--kernel {store}"
    assert result.returncode == status
    assert lines(result) == [
        f'trueconv apply: {what}: .zarray filter: codec "pickle" is not allowed: decoding it '
        "unpickles the chunk's bytes, which can run any code put in the file; allowed: "
        + ", ".join(sorted(zarr_store.V2_CODECS))
    ]
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr", "x.npy"]


def v3_stores(tmp_path, marker):
    """v3 stores with a refused codec, each with a chunk that is the marker's pickle."""
    payload = pickle.dumps(Marker(marker))
    sharded = {"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 2], "codecs": [BYTES, {"name": "imagecodecs_jpeg2k"}],
        "index_codecs": [BYTES, {"name": "crc32c"}], "index_location": "end"}}  # fmt: skip
    stores = {
        "numcodecs.pickle": [BYTES, {"name": "numcodecs.pickle"}],
        "imagecodecs_jpeg2k": [sharded],
        "vlen-utf8": [{"name": "vlen-utf8"}],
    }
    paths = []
    for n, (name, codecs) in enumerate(stores.items()):
        path = write_json(tmp_path / f"v3-{n}.zarr", "zarr.json", zarr_json([4, 4], [4, 4], codecs))
        (path / "c" / "0").mkdir(parents=True)
        (path / "c" / "0" / "0").write_bytes(payload)
        paths.append((path, name))
    return paths


@pytest.mark.skipif(not ZARR3, reason="zarr 2 does not read zarr.json")
def test_v3_codecs_not_allowed_top_level_and_inside_shards(tmp_path):
    marker = tmp_path / "pickle-ran"
    stores = v3_stores(tmp_path, marker)
    result = cli(*(p for p, _ in stores), "-k", "box:3", "--out-dir", tmp_path / "out")
    assert result.returncode == 1
    got = lines(result)
    assert len(got) == len(stores)
    for line, (path, name) in zip(got, stores):
        assert line.startswith(f"trueconv apply: {path}: zarr.json codecs")
        assert f'codec "{name}" is not allowed: ' in line
    assert "trueconv lets zarr decode only codecs known to give numbers" in got[1]
    assert "it decodes to strings, not numbers" in got[2]
    # as a kernel: the same refusal, as bad usage
    np.save(tmp_path / "x.npy", np.ones((4, 4)))
    result = cli(tmp_path / "x.npy", "-k", stores[0][0], "-o", tmp_path / "y.npy")
    assert result.returncode == 2
    assert 'codec "numcodecs.pickle" is not allowed' in lines(result)[0]
    assert len(lines(result)) == 1
    assert not marker.exists()
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "y.npy").exists()


CODEC = {"id": "zlib", "level": 1}


def v2(**fields):
    """A 1-D ``.zarray`` with ``fields`` replaced."""
    return {**zarray([4], [2]), **fields}


def v3(**fields):
    """A 1-D ``zarr.json`` with ``fields`` replaced."""
    return {**zarr_json([4], [2], [BYTES]), **fields}


def shards(inner):
    """Codecs of 4-sample shards of ``inner`` chunks."""
    return [
        {"name": "sharding_indexed", "configuration": {"chunk_shape": inner, "codecs": [BYTES]}}
    ]


REFUSED = {
    "object": (v2(dtype="|O", filters=[{"id": "vlen-utf8"}]), 'dtype "|O" is not numbers'),
    "struct": (v2(dtype=[["a", "<f8"]]), 'dtype [["a", "<f8"]] is not numbers'),
    "datetime": (v2(dtype="<M8[ns]"), 'dtype "<M8[ns]" is not numbers'),
    "json2": (
        v2(filters=[{"id": "json2"}]),
        '"json2" is not allowed: it decodes to Python objects',
    ),
    "msgpack2": (v2(filters=[{"id": "msgpack2"}]), 'codec "msgpack2" is not allowed'),
    "categorize": (
        v2(filters=[{"id": "categorize", "labels": ["a"], "dtype": "|O"}]),
        'codec "categorize" is not allowed: it decodes to string labels',
    ),
    "entry point": (
        v2(compressor={"id": "imagecodecs_jpeg"}),
        '.zarray compressor: codec "imagecodecs_jpeg" is not allowed: trueconv lets zarr decode',
    ),
    "string codec": (v2(compressor="zlib"), '.zarray compressor: "zlib" is not a codec'),
    "object astype": (
        v2(filters=[{"id": "delta", "dtype": "<f8", "astype": "|O"}]),
        '.zarray filter delta astype: dtype "|O" is not numbers',
    ),
    "pickle second": (v2(filters=[CODEC, {"id": "pickle"}]), '.zarray filter: codec "pickle"'),
    "filters dict": (v2(filters=CODEC), "filters must be a list"),
    "format": (v2(zarr_format=3), "zarr_format must be 2"),
    "negative": (v2(shape=[4, -1], chunks=[2, 2]), "non-negative integers; got [4, -1]"),
    "zero": (v2(chunks=[0]), "chunks must be positive integers, one per dim of the shape [4]"),
    "bool": (v2(chunks=[True]), "got [True]"),
    "text": (v2(chunks="2"), "got 2"),
    "scalar": (v2(shape=4), "shape must be a list"),
    "v3 string": (v3(data_type="string"), 'data_type "string" is not numbers'),
    "v3 extension": (v3(data_type={"name": "numpy.datetime64"}), "is not numbers"),
    "transformers": (v3(storage_transformers=[{"name": "x"}]), "transformers are not supported"),
    "grid": (v3(chunk_grid={"name": "rectilinear"}), "only a regular chunk_grid"),
    "codecs dict": (v3(codecs=BYTES), "codecs must be a list"),
    "configuration": (
        v3(codecs=[BYTES, {"name": "zstd", "configuration": 5}]),
        "configuration that is not an object",
    ),
    "zero shards": (
        v3(chunk_grid=zarr_json([4], [4], [])["chunk_grid"], codecs=shards([0])),
        "zarr.json sharding_indexed: chunks must be positive integers",
    ),
    "uneven shards": (
        v3(chunk_grid=zarr_json([4], [4], [])["chunk_grid"], codecs=shards([3])),
        "chunks [4] are not a whole number of chunks [3]",
    ),
    "node type": (v3(node_type="other"), "node_type must be array or group"),
}


@pytest.mark.parametrize(("doc", "fragment"), REFUSED.values(), ids=REFUSED)
def test_metadata_refused(tmp_path, doc, fragment):
    """Each one line naming the file and the field."""
    name = ".zarray" if "dtype" in doc else "zarr.json"
    path = write_json(tmp_path / "s.zarr", name, doc)
    with pytest.raises(InputError) as info:
        zarr_store.check_store(path, 3)
    assert str(info.value).startswith(name)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_not_json_and_too_deep(tmp_path):
    path = tmp_path / "s.zarr"
    path.mkdir()
    for text in ("{", "[" * 100_000 + "]" * 100_000, "[1, 2]"):
        (path / ".zarray").write_text(text)
        with pytest.raises(InputError, match=r"^\.zarray: not valid zarr metadata \("):
            zarr_store.check_store(path, 3)


def test_both_metadata_files_are_checked(tmp_path):
    """zarr 2 reads .zarray, zarr 3 prefers zarr.json: a refused one fails either way."""
    path = write_json(tmp_path / "s.zarr", "zarr.json", zarr_json([4], [2], [BYTES]))
    write_json(path, ".zarray", zarray([4], [2], filters=[{"id": "pickle"}]))
    for major in (2, 3):
        with pytest.raises(InputError, match='codec "pickle" is not allowed'):
            zarr_store.check_store(path, major)


def make_array(path, x, chunks, zarr_format, **codecs):
    if ZARR3:
        z = zarr.create_array(store=str(path), shape=x.shape, dtype=x.dtype, chunks=chunks,
                              zarr_format=zarr_format, **codecs)  # fmt: skip
    else:
        z = zarr.open_array(str(path), mode="w", shape=x.shape, dtype=x.dtype, chunks=chunks,
                            **codecs)  # fmt: skip
    z[...] = x
    return z


def allowed_cases():
    """Stores zarr writes with allowed codecs: (zarr_format, codec arguments)."""
    import numcodecs

    if not ZARR3:
        return [
            (2, {"compressor": numcodecs.Zlib(1)}),
            (2, {"compressor": numcodecs.Blosc(), "filters": [numcodecs.Delta("<f8")]}),
            (2, {"compressor": None, "filters": [numcodecs.Quantize(6, "<f8")]}),
        ]
    from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, TransposeCodec

    return [
        (2, {"compressors": numcodecs.Zlib(1)}),
        (2, {"compressors": numcodecs.Blosc(), "filters": [numcodecs.Delta("<f8")]}),
        (2, {"compressors": None, "filters": [numcodecs.Quantize(6, "<f8")]}),
        (3, {}),
        (3, {"compressors": [GzipCodec(), Crc32cCodec()], "filters": TransposeCodec(order=(1, 0))}),
        (3, {"compressors": BloscCodec(), "shards": (4, 6)}),
    ]


@pytest.mark.parametrize(("zarr_format", "codecs"), allowed_cases())
def test_allowed_codecs_pass_and_convolve(tmp_path, zarr_format, codecs):
    """What zarr writes with allowed codecs passes the check as zarr reads it (a sharded
    array: its inner chunks), and convolves as scipy does."""
    import warnings

    x = np.random.default_rng(0).standard_normal((8, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numcodecs' "not in the zarr v3 specification"
        z = make_array(tmp_path / "x.zarr", x, (2, 3), zarr_format, **codecs)
    x = z[...]  # as stored (quantize rounds)
    meta = zarr_store.check_store(tmp_path / "x.zarr", 3 if ZARR3 else 2)
    assert meta is not None
    assert (meta.shape, meta.chunks, meta.dtype) == (x.shape, tuple(z.chunks), x.dtype)
    assert run(tmp_path / "x.zarr", "-k", "box:3", "-o", tmp_path / "y.zarr") == 0
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")[...]
    assert rel_err(y, scipy.signal.convolve(x, BOX3, "same")) < 1e-12


# -- broken stores: one line, nothing left ----------------------------------------------------


def test_bogus_metadata_through_the_command(tmp_path):
    """Zero chunk size (was a ZeroDivisionError), negative shape, fractional chunks, chunks
    of another rank: one line per input, exit status 1, no output, no temporary."""
    chunks = "chunks must be positive integers, one per dim of the shape [4, 4]; got"
    stores = {
        "zero": (zarray([4, 4], [0, 2]), f"{chunks} [0, 2]"),
        "negative": (
            zarray([-4, 4], [2, 2]),
            "must be a list of non-negative integers; got [-4, 4]",
        ),
        "fraction": (zarray([4, 4], [2.5, 2]), f"{chunks} [2.5, 2]"),
        "rank": (zarray([4, 4], [2]), f"{chunks} [2]"),
    }
    paths = [write_json(tmp_path / f"{n}.zarr", ".zarray", doc) for n, (doc, _) in stores.items()]
    result = cli(*paths, "-k", "box:3", "--out-dir", tmp_path / "out")
    assert result.returncode == 1
    got = lines(result)
    assert len(got) == len(stores)
    for line, path, (_, message) in zip(got, paths, stores.values()):
        assert line.startswith(f"trueconv apply: {path}: .zarray: ")
        assert line.endswith(message)
    assert list((tmp_path / "out").iterdir()) == []


def test_chunks_that_cannot_be_decoded(tmp_path):
    """Corrupt bytes, a chunk that is not zlib in a zlib store (was zlib.error), a gzip v3
    chunk that is not gzip: one line naming the store and the chunk, nothing left."""
    x = np.arange(48.0).reshape(6, 8)
    short = raw_v2(tmp_path / "short.zarr", x, (3, 4))
    (short / "1.0").write_bytes(b"abc")
    squeezed = raw_v2(tmp_path / "zlib.zarr", x, (3, 4), CODEC, lambda b: zlib.compress(b, 1))
    (squeezed / "0.1").write_bytes(b"not zlib at all")
    stores = [(short, "(1, 0)"), (squeezed, "(0, 1)")]
    if ZARR3:
        codecs = [BYTES, {"name": "gzip", "configuration": {"level": 1}}]
        gz = write_json(tmp_path / "gzip.zarr", "zarr.json", zarr_json([6, 8], [3, 4], codecs))
        for i, j in np.ndindex(2, 2):
            (gz / "c" / str(i)).mkdir(parents=True, exist_ok=True)
            block = gzip.compress(x[3 * i : 3 * i + 3, 4 * j : 4 * j + 4].tobytes())
            (gz / "c" / str(i) / str(j)).write_bytes(block if (i, j) != (1, 1) else b"\x1f\x8b?")
        stores.append((gz, "(1, 1)"))
    result = cli(*(p for p, _ in stores), "-k", "box:3", "--out-dir", tmp_path / "out")
    assert result.returncode == 1
    got = lines(result)
    assert len(got) == len(stores)
    for line, (path, chunk) in zip(got, stores):
        where = os.path.realpath(path)
        assert line.startswith(f"trueconv apply: {path}: cannot read chunk {chunk} of {where}: ")
    assert "(zlib.error)" in got[1]
    assert list((tmp_path / "out").iterdir()) == []
    # the same stores, intact chunks: the reader itself is right
    good = raw_v2(tmp_path / "good.zarr", x, (3, 4), CODEC, lambda b: zlib.compress(b, 1))
    assert run(good, "-k", "box:3", "-o", tmp_path / "y.zarr") == 0
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")[...]
    assert rel_err(y, scipy.signal.convolve(x, BOX3, "same")) < 1e-12


# -- sizes, from the metadata, before a graph ---------------------------------------------------


def test_ten_million_chunks_refused_before_the_graph(tmp_path):
    """A 100-byte header claiming 10^7 chunks: refused at once (the graph used to take 49 s
    and 3.3 GB before a MemoryError); the timeout fails the old behaviour."""
    path = write_json(tmp_path / "huge.zarr", ".zarray", zarray([10**7], [1]))
    result = cli(path, "-k", "box:3", "--max-bytes", "2G", "-o", tmp_path / "y.zarr", timeout=60)
    assert result.returncode == 1
    (line,) = lines(result)
    assert line.startswith(f"trueconv apply: {path}: the input has 10,000,000 chunks of 1: ")
    assert re.search(r"its task graph, about [0-9,]{10} tasks, would need about [0-9.]+ GiB", line)
    assert line.endswith(
        "more than --max-bytes 2.0 GiB; store it in larger chunks, use larger --chunks or "
        "raise --max-bytes"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.zarr"]


def no_graph(*args, **kwargs):
    raise AssertionError("a Dask array was built before the --max-bytes checks")


def test_graph_limit_counts_rechunked_chunks_and_builds_nothing(tmp_path, capsys, monkeypatch):
    """100 chunks of 4 x 4 run under a limit that their graph fits; rechunked to 400 chunks
    of 2 x 2 they do not, and are refused before Dask builds any array."""
    x = np.random.default_rng(1).standard_normal((40, 40))
    raw_v2(tmp_path / "x.zarr", x, (4, 4))
    limit = zarr_apply.graph_tasks((40, 40), (4, 4), (4, 4), (3, 3))
    limit *= zarr_apply.GRAPH_BYTES_PER_TASK
    argv = [tmp_path / "x.zarr", "-k", "box:3", "--max-bytes", str(limit)]
    assert run(*argv, "-o", tmp_path / "y.zarr") == 0
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")[...]
    assert rel_err(y, scipy.signal.convolve(x, BOX3, "same")) < 1e-12
    monkeypatch.setattr(dask.array, "from_array", no_graph)
    monkeypatch.setattr(dask.array, "from_zarr", no_graph)
    assert run(*argv, "--chunks", "2", "-o", tmp_path / "z.zarr") == 1
    line = capsys.readouterr().err.strip()
    assert "the input has 100 chunks of 4 x 4 (rechunked to --chunks 2): its task graph" in line
    assert not (tmp_path / "z.zarr").exists()


def test_task_limit_from_the_metadata_builds_nothing(tmp_path, capsys, monkeypatch):
    """One 128 x 128 chunk and a 3 x 3 kernel: a 130 x 130 window, refused under a limit its
    graph fits, before any array (it used to be estimated from the built graph)."""
    raw_v2(tmp_path / "x.zarr", np.ones((256, 256)), (128, 128))
    limit = zarr_apply.GRAPH_BYTES_PER_TASK * zarr_apply.graph_tasks(
        (256, 256), (128, 128), (128, 128), (3, 3)
    )
    assert limit < 2 * 130 * 130 * 8  # the window alone, held twice, is more
    monkeypatch.setattr(dask.array, "from_array", no_graph)
    monkeypatch.setattr(dask.array, "from_zarr", no_graph)
    argv = [tmp_path / "x.zarr", "-k", "box:3", "--max-bytes", str(limit), "--method", "direct"]
    assert run(*argv, "-o", tmp_path / "y.zarr") == 1
    line = capsys.readouterr().err.strip()
    assert "one task needs about" in line
    assert "(a 130 x 130 window of the input, direct), more than --max-bytes" in line
    assert not (tmp_path / "y.zarr").exists()


def test_every_chunk_is_written_and_an_incomplete_output_is_not_renamed(
    tmp_path, capsys, monkeypatch
):
    """An all-zero result still writes all its chunks (zarr 3 skips chunks equal to the fill
    value by default), so that a missing chunk means a write that went elsewhere: then the
    job fails and the temporary store is removed, not renamed into place."""
    raw_v2(tmp_path / "x.zarr", np.zeros((8, 8)), (4, 4))
    assert run(tmp_path / "x.zarr", "-k", "box:3", "-o", tmp_path / "y.zarr") == 0
    z = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")
    assert z.nchunks_initialized == z.nchunks == 4
    assert not z[...].any()
    monkeypatch.setattr(zarr_apply, "_compute", lambda *args: None)  # the chunks went elsewhere
    assert run(tmp_path / "x.zarr", "-k", "box:3", "-o", tmp_path / "w.zarr") == 1
    line = capsys.readouterr().err.strip()
    assert line == (
        f"trueconv apply: {tmp_path / 'x.zarr'}: only 0 of the 4 chunks of the output reached "
        f"{os.path.realpath(tmp_path)}: the input and the output must be on a filesystem the "
        "workers share, at the same absolute path"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr", "y.zarr"]
