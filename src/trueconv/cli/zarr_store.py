"""What ``trueconv apply`` trusts about a ``.zarr`` store, checked before zarr opens it.

A zarr store's metadata names the codecs that decode its chunks, and zarr decodes with whatever
it names. A ``pickle`` filter unpickles the chunk's bytes, which runs any code the file's author
put there: zarr 2 did so with numcodecs up to 0.15.1 and 0.16.0-0.16.5 (GHSA-jqc8-qjfv-5m6r,
fixed in 0.15.2, 0.16.6 and 0.17.1). A codec id zarr does not know is looked up among the
``numcodecs.codecs`` entry points of every installed package and imported. trueconv convolves
numbers, so :func:`check_store` reads the metadata JSON itself, before zarr sees it, and accepts
only numeric dtypes, regular chunk grids with positive chunk sizes, and the codecs of
:data:`V2_CODECS` / :data:`V3_CODECS`: each decodes bytes into numbers in numcodecs' or zarr's own
code, without Python objects (their source was read for ``pickle``, ``object`` and ``loads``).

On a ``dask.distributed`` cluster the workers read the input and write the output themselves. A
worker that resolves a path elsewhere (another working folder, another machine) would read
missing chunks as the fill value and write into a store nobody renames: a silent all-zero
result. :func:`worker_view` is what each worker reports before the job (the fingerprint of the
input's metadata, the token the client wrote into the output); :class:`ChunkReader`, the array
the graph reads, checks the fingerprint again in every process that reads a chunk (a worker that
joined late included), and turns a chunk that cannot be decoded into a :class:`StoreError`: one
line naming the store and the chunk, raised on the workers and reported by
:mod:`trueconv.cli.zarr_apply` as an input error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trueconv.cli._errors import InputError

#: The files holding an array's metadata: zarr v2, zarr v3 (a store may hold both; each is
#: checked, since zarr 2 reads the first and zarr 3 prefers the second).
METADATA_FILES = (".zarray", "zarr.json")

#: Codecs of numcodecs that turn bytes into numbers (or bytes into bytes) in numcodecs' own
#: code: compressors, checksums, byte shuffles and the numeric filters. Read in numcodecs
#: 0.16.6: none of them unpickles, evaluates or builds object arrays (delta and
#: fixedscaleoffset refuse object dtypes themselves). Not here: ``pickle`` (unpickles),
#: ``json2``, ``msgpack2``, ``vlen-*``, ``categorize`` (Python objects or strings, not numbers),
#: and codecs of other packages (``pcodec``, ``zfpy``, imagecodecs' entry points: not reviewed).
NUMCODECS = frozenset(
    {
        "adler32",
        "astype",
        "bitround",
        "blosc",
        "bz2",
        "crc32",
        "crc32c",
        "delta",
        "fixedscaleoffset",
        "fletcher32",
        "gzip",
        "jenkins_lookup3",
        "lz4",
        "lzma",
        "packbits",
        "quantize",
        "shuffle",
        "zlib",
        "zstd",
    }
)
#: ``.zarray`` ``compressor`` and ``filters`` ids trueconv lets zarr decode.
V2_CODECS = NUMCODECS
#: ``zarr.json`` codec names trueconv lets zarr decode: the core codecs of the zarr v3 spec
#: (``sharding_indexed``'s inner codecs are checked too) and numcodecs' under ``numcodecs.``.
V3_CODECS = frozenset(
    {"bytes", "endian", "transpose", "blosc", "gzip", "zstd", "crc32c", "sharding_indexed"}
) | {f"numcodecs.{name}" for name in NUMCODECS}

#: Why a codec that is not allowed is refused, for the codecs whose danger is known.
_WHY = {
    "pickle": "decoding it unpickles the chunk's bytes, which can run any code put in the file",
    "json2": "it decodes to Python objects, not numbers",
    "msgpack2": "it decodes to Python objects, not numbers",
    "vlen-utf8": "it decodes to strings, not numbers",
    "vlen-bytes": "it decodes to byte strings, not numbers",
    "vlen-array": "it decodes to Python objects, not numbers",
    "categorize": "it decodes to string labels, not numbers",
}
_UNKNOWN = (
    "trueconv lets zarr decode only codecs known to give numbers without running code from the "
    "file (an unknown one is imported from whichever installed package names it)"
)

#: zarr v3 numeric data types.
V3_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64", "complex64", "complex128"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)

#: Keys of a codec's configuration that hold a dtype (delta, fixedscaleoffset, quantize,
#: astype): numeric too, so that no codec is configured to build objects.
_DTYPE_KEYS = ("dtype", "astype", "encode_dtype", "decode_dtype")


class StoreError(Exception):
    """A chunk of the input cannot be read, or a worker sees another store than the client.

    Raised where the chunk is read (possibly on a worker; it pickles as its one message) and
    reported by :mod:`trueconv.cli.zarr_apply` as one line.
    """


@dataclass(frozen=True)
class StoreMeta:
    """An array store's metadata, checked: what the graph is planned from."""

    path: Path  # absolute
    zarr_format: int
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # what zarr reads at once (a sharded array: the inner chunks)
    dtype: np.dtype
    fingerprint: str = ""  # of the metadata files, for workers to compare (fingerprint())

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks along each dim (0 along an empty dim)."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks))

    @property
    def nchunks(self) -> int:
        """Number of chunks of the array."""
        return math.prod(self.grid)


def fingerprint(path: Path) -> str | None:
    """SHA-256 of the metadata files of the store at ``path`` (names and bytes), or ``None``
    when it has none that can be read: what a worker must see the same as the client."""
    digest = hashlib.sha256()
    found = False
    for name in METADATA_FILES:
        try:
            data = (path / name).read_bytes()
        except OSError:
            continue
        found = True
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest() if found else None


def check_store(path: Path, zarr_major: int) -> StoreMeta | None:
    """Check the metadata of the store at ``path`` before zarr reads it.

    Parameters
    ----------
    path : Path
        A directory holding a zarr store.
    zarr_major : int
        The installed zarr's major version: zarr 3 reads ``zarr.json`` when there is one,
        zarr 2 only ``.zarray``.

    Returns
    -------
    StoreMeta or None
        The array's metadata as zarr will read it; ``None`` for a group (zarr opens it and the
        caller names its arrays: opening a group decodes no chunk).

    Raises
    ------
    InputError
        A metadata file that is not JSON, a shape or chunks that are not non-negative / positive
        integers of one rank, a dtype that is not numeric, or a codec that is not allowed (named,
        with why), on one line.
    """
    path = Path(path).absolute()
    found: dict[str, StoreMeta | None] = {}
    for name in METADATA_FILES:
        file = path / name
        if not file.is_file():
            continue
        try:
            doc = json.loads(file.read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            raise InputError(f"{name}: not valid zarr metadata ({_first_line(exc)})") from None
        if not isinstance(doc, dict):
            raise InputError(f"{name}: not valid zarr metadata (not a JSON object)")
        found[name] = _check_v2(doc, path) if name == ".zarray" else _check_v3(doc, path)
    meta = found.get("zarr.json" if zarr_major >= 3 and "zarr.json" in found else ".zarray")
    return None if meta is None else dataclasses.replace(meta, fingerprint=fingerprint(path) or "")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _meta(path: Path, fmt: int, shape: Any, chunks: Any, dtype: np.dtype, where: str) -> StoreMeta:
    """Shape and chunks checked: non-negative and positive integers, one per dim."""
    if not _ints(shape, 0):
        raise InputError(f"{where}: shape must be a list of non-negative integers; got {shape}")
    if not _ints(chunks, 1) or len(chunks) != len(shape):
        raise InputError(
            f"{where}: chunks must be positive integers, one per dim of the shape {shape}; "
            f"got {chunks}"
        )
    return StoreMeta(path, fmt, tuple(shape), tuple(chunks), dtype, "")


def _ints(value: Any, low: int) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value
    )


def _numeric_dtype(text: Any, where: str) -> np.dtype:
    """A numpy dtype written as text (``"<f8"``), refused unless it holds numbers."""
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise InputError(f"{where}: dtype {json.dumps(text)} is not numbers")
    return dtype


def _refuse(where: str, name: Any, allowed: frozenset[str]) -> InputError:
    why = _WHY.get(name, _UNKNOWN) if isinstance(name, str) else "not a codec name"
    return InputError(
        f"{where}: codec {json.dumps(name)} is not allowed: {why}; allowed: "
        + ", ".join(sorted(allowed))
    )


def _check_config(config: dict[str, Any], where: str, name: str) -> None:
    for key in _DTYPE_KEYS:
        if key in config:
            _numeric_dtype(config[key], f"{where} {name} {key}")


def _check_v2(doc: dict[str, Any], path: Path) -> StoreMeta:
    where = ".zarray"
    if doc.get("zarr_format") != 2:
        raise InputError(f"{where}: zarr_format must be 2; got {doc.get('zarr_format')}")
    dtype = _numeric_dtype(doc.get("dtype"), where)
    filters = doc.get("filters") or []
    compressor = doc.get("compressor")
    if not isinstance(filters, list):
        raise InputError(f"{where}: filters must be a list of codecs; got {json.dumps(filters)}")
    roles = [("filter", f) for f in filters] + [
        ("compressor", c) for c in [compressor] if c is not None
    ]
    for role, codec in roles:
        if not isinstance(codec, dict):
            raise InputError(f"{where} {role}: {json.dumps(codec)} is not a codec (an object)")
        name = codec.get("id")
        if name not in V2_CODECS:
            raise _refuse(f"{where} {role}", name, V2_CODECS)
        _check_config(codec, f"{where} {role}", name)
    return _meta(path, 2, doc.get("shape"), doc.get("chunks"), dtype, where)


def _codecs(codecs: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, configuration)`` of every codec of a v3 codec list, sharding's inner ones too."""
    if not isinstance(codecs, list):
        raise InputError(f"{where}: codecs must be a list; got {json.dumps(codecs)}")
    for codec in codecs:
        name: Any = codec
        config: Any = {}
        if isinstance(codec, dict):
            name, config = codec.get("name"), codec.get("configuration", {})
        if not isinstance(name, str) or name not in V3_CODECS:
            raise _refuse(where, name, V3_CODECS)
        if not isinstance(config, dict):
            raise InputError(f"{where}: codec {name} has a configuration that is not an object")
        yield name, config
        if name == "sharding_indexed":
            inner = f"{where} sharding_indexed"
            yield from _codecs(config.get("codecs"), inner)
            yield from _codecs(config.get("index_codecs", []), inner)


def _check_v3(doc: dict[str, Any], path: Path) -> StoreMeta | None:
    where = "zarr.json"
    if doc.get("zarr_format") != 3:
        raise InputError(f"{where}: zarr_format must be 3; got {doc.get('zarr_format')}")
    if doc.get("node_type") == "group":
        return None
    if doc.get("node_type") != "array":
        raise InputError(f"{where}: node_type must be array or group")
    data_type = doc.get("data_type")
    if not isinstance(data_type, str) or data_type not in V3_DTYPES:
        raise InputError(f"{where}: data_type {json.dumps(data_type)} is not numbers")
    if doc.get("storage_transformers"):
        raise InputError(f"{where}: storage transformers are not supported")
    grid = doc.get("chunk_grid")
    config = grid.get("configuration") if isinstance(grid, dict) else None
    if not isinstance(grid, dict) or not isinstance(config, dict) or grid.get("name") != "regular":
        raise InputError(f"{where}: only a regular chunk_grid is supported")
    shape = doc.get("shape")
    meta = _meta(path, 3, shape, config.get("chunk_shape"), np.dtype(data_type), where)
    outer, read = meta.chunks, None
    for name, codec_config in _codecs(doc.get("codecs"), f"{where} codecs"):
        _check_config(codec_config, where, name)
        if name == "sharding_indexed":
            what = f"{where} sharding_indexed"
            inner = _meta(path, 3, shape, codec_config.get("chunk_shape"), meta.dtype, what).chunks
            if any(c % i for c, i in zip(outer, inner)):
                raise InputError(
                    f"{what}: chunks {list(outer)} are not a whole number of chunks {list(inner)}"
                )
            outer, read = inner, read or inner  # zarr reads the first level's inner chunks
    return meta if read is None else dataclasses.replace(meta, chunks=read)


# -- arrays inside a group: STORE.zarr/path/to/array ------------------------------------------


#: What names an array inside a group, in messages.
MEMBER_SYNTAX = "STORE.zarr/path/to/array"


def split_member(path: Path) -> tuple[Path, Path] | None:
    """``(store, inner)`` when ``path`` names something inside a ``.zarr`` store: the first
    component ending in ``.zarr`` that has components after it, and the path after it
    (``data.zarr/raw/0`` -> ``(data.zarr, raw/0)``), as zarr names the arrays of a group and
    as they lie in a directory store. ``None`` for any other path (a store itself included).
    """
    parts = Path(path).parts
    for i, part in enumerate(parts[:-1]):
        if part.lower().endswith(".zarr") and part.lower() != ".zarr":
            return Path(*parts[: i + 1]), Path(*parts[i + 1 :])
    return None


def group_format(folder: Path) -> int | None:
    """The zarr format (2 or 3) of the group whose directory is ``folder``, or ``None`` when it
    is not one (no ``.zgroup``, no ``zarr.json`` saying ``group``, or unreadable metadata)."""
    try:
        doc = json.loads((folder / "zarr.json").read_bytes())
        if isinstance(doc, dict) and doc.get("node_type") == "group":
            return 3
    except (OSError, ValueError, RecursionError):
        pass
    return 2 if (folder / ".zgroup").is_file() else None


def _within(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or inside it, symlinks followed on both."""
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == top or top in real.parents


def check_member(path: Path, role: str = "input") -> None:
    """Check a path inside a store (:func:`split_member`) before anything in it is opened.

    Parameters
    ----------
    path : Path
        ``STORE.zarr/inner``.
    role : str
        ``'input'`` (or ``'kernel'``): the array must exist; ``'output'``: its parent must be
        an existing group of the store, which the new array joins.

    Raises
    ------
    InputError
        ``..`` in the inner path (it would name something outside the group: refused as typed,
        before any resolution), a store that is not a group, an inner path that leads outside
        the store through a symlink, a missing array, or (output) a parent that is no group.
    """
    member = split_member(path)
    if member is None:
        return
    root, inner = member
    if ".." in inner.parts:
        raise InputError(
            f"{inner}: '..' is not allowed in the path of an array inside a zarr store; name "
            f"the array by its path from the store ({MEMBER_SYNTAX})"
        )
    if not root.is_dir():
        raise InputError(f"no zarr store {root} (a .zarr store is a directory)")
    if group_format(root) is None:
        kind = (
            "an array"
            if (root / ".zarray").is_file() or (root / "zarr.json").is_file()
            else ("not a zarr store")
        )
        raise InputError(f"{root} is {kind}, not a zarr group: there is no array {inner} inside it")
    if role == "output":
        parent = root / inner.parent
        if not parent.is_dir() or group_format(parent) is None:
            where = f"{root.name}/{inner.parent}" if inner.parent.parts else root.name
            raise InputError(
                f"{where} is not a group of the zarr store {root}: a new array joins an "
                "existing group (create it first), or write a store of its own (-o NAME.zarr)"
            )
        if not _within(parent, root):
            raise InputError(f"{inner.parent}: leads outside the zarr store {root} (a symlink)")
        return
    if not os.path.lexists(path):
        raise InputError(f"the zarr store {root} has no array {inner}")
    if not _within(path, root):
        raise InputError(f"{inner}: leads outside the zarr store {root} (a symlink)")


# -- on the workers ---------------------------------------------------------------------------


def worker_view(store: str, token_file: str) -> tuple[str | None, str | None]:
    """Run on each worker (``client.run``): the fingerprint of the store at ``store`` and the
    text of ``token_file``, each ``None`` when it cannot be read there."""
    try:
        token: str | None = Path(token_file).read_text()
    except OSError:
        token = None
    return fingerprint(Path(store)), token


#: ``(store, fingerprint)`` pairs this process has seen as the client did.
_SEEN: set[tuple[str, str]] = set()


#: What a job on a cluster needs of the paths, ending the message when it is not so.
SHARED = (
    "the input and the output must be on a filesystem the workers share, at the same absolute path"
)


class ChunkReader:
    """The zarr array the graph reads, one chunk per call, as ``dask.array.from_array`` does.

    Picklable (module-level, holding the zarr array, which pickles as its store and metadata),
    so it runs on distributed workers too. Before the first chunk a process reads, it checks
    that the store's metadata is the one the client checked; a chunk that cannot be decoded
    (corrupt bytes, a codec error, an unreadable file) is a :class:`StoreError` naming the store
    and the chunk. ``MemoryError`` passes unchanged.
    """

    def __init__(self, array: Any, meta: StoreMeta) -> None:
        self.array = array
        self.path = str(meta.path)
        self.fingerprint = meta.fingerprint
        self.chunks = meta.chunks
        self.shape = meta.shape
        self.dtype = meta.dtype
        self.ndim = len(meta.shape)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        key = (self.path, self.fingerprint)
        if key not in _SEEN:
            if fingerprint(Path(self.path)) != self.fingerprint:
                raise StoreError(
                    f"a worker does not see the input {self.path} as this machine does: {SHARED}"
                )
            _SEEN.add(key)
        try:
            return np.asarray(self.array[index])
        except MemoryError:
            raise
        except Exception as exc:  # decoders raise anything: zlib.error, ValueError, ...
            at = tuple(
                (s.start or 0) // c for s, c in zip(index, self.chunks) if isinstance(s, slice)
            )
            chunk = ", ".join(map(str, at))
            kind = type(exc).__qualname__
            if type(exc).__module__ != "builtins":
                kind = f"{type(exc).__module__}.{kind}"
            raise StoreError(
                f"cannot read chunk ({chunk}) of {self.path}: {_first_line(exc)} ({kind})"
            ) from None
