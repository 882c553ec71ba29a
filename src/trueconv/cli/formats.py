"""Readers and writers of ``trueconv apply``, in one registry keyed by file suffix.

A :class:`Format` opens a file into a :class:`Source` — its shapes and metadata, read from the
header without decoding the samples, so that ``apply`` can estimate the output size before it
reads anything — checks that it can hold a result before anything is computed, and writes a
:class:`Signal`. Adding a format is one :func:`register` call. A store that is a directory
(``.zarr``) sets ``directory=True``: :func:`write_atomically` then hands its ``write`` an empty
temporary directory beside the target and moves it into place (an existing target is moved
aside first and restored if the move fails), and inputs may be directories::

    register(Format("Zarr array", (".zarr",), open_zarr, check_zarr, write_zarr, directory=True))

Layout: every array is held as ``(*channels, *spatial)`` — image colour channels and audio
channels first, never convolved; the spatial dims (``H, W`` of an image, ``Z, H, W`` of a TIFF
stack, time of audio, every dim of a plain array) last, where a kernel aligns with them. Image
alpha is kept aside in ``meta['alpha']`` and written back unfiltered.

Optional dependencies (Pillow, tifffile, soundfile) are imported only when a file needs them;
a missing one is an :class:`~trueconv.cli._errors.MissingExtra` naming the ``cli`` extra. Zarr
(``.zarr`` directory stores, zarr v2 and v3) comes with the ``dask`` extra, and so does the
error (:class:`MissingDaskExtra`). A ``.zarr`` *input* of ``apply`` is never loaded here: it is
convolved lazily, chunk by chunk (:mod:`trueconv.cli.zarr_apply`); this registry only reads
one as a kernel (in memory) and writes an in-memory result as a ``.zarr`` store.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import math
import os
import re
import secrets
import shutil
import socket
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Literal

import numpy as np

from trueconv.cli import zarr_store
from trueconv.cli._errors import CliError, InputError, MissingExtra, raise_if_terminated

Kind = Literal["array", "image", "audio"]


@dataclass
class Signal:
    """Loaded data: named arrays in ``(*channels, *spatial)`` layout, and their metadata.

    ``meta`` keys used by the built-in formats: ``dtype`` (sample type on disk, for writing
    back), ``full_scale`` (the largest sample value: 1.0 for float audio, 255 for 8-bit
    images), ``alpha`` (image alpha, spatial shape), ``samplerate`` and ``subtype`` (audio).
    """

    kind: Kind
    arrays: dict[str, np.ndarray]
    channel_dims: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    """An opened input: what its header says, and how to read the samples."""

    path: Path
    kind: Kind
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype]
    channel_dims: int
    meta: dict[str, Any]
    load: Callable[[], Signal]

    def spatial(self, name: str) -> int:
        """Number of spatial (convolvable) dims of one array."""
        return len(self.shapes[name]) - self.channel_dims


@dataclass(frozen=True)
class Layout:
    """What a writer must know before any compute: kind, array shapes, metadata."""

    kind: Kind
    shapes: dict[str, tuple[int, ...]]
    meta: dict[str, Any]
    float_output: bool


@dataclass(frozen=True)
class Format:
    """A file type: its suffixes, how to open, check and write it.

    ``check(path, layout)`` raises an :class:`InputError` when the format cannot hold the data
    (or its library is missing); ``apply`` calls it before reading the input, so nothing is
    computed for an output that cannot be written. ``write(path, signal, float_output)`` checks
    again, writes, and returns warnings (clipped samples) to show the user.
    """

    name: str
    suffixes: tuple[str, ...]
    open: Callable[[Path], Source]
    check: Callable[[Path, Layout], None]
    write: Callable[[Path, Signal, bool], list[str]]
    directory: bool = False


#: suffix (lower case, with the dot) -> format
FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Make ``fmt`` the format of its suffixes (replacing any earlier one)."""
    for suffix in fmt.suffixes:
        FORMATS[suffix.lower()] = fmt
    return fmt


def format_of(path: Path) -> Format | None:
    """The format of ``path``: by its suffix; a path inside a ``.zarr`` store
    (``data.zarr/raw``: an array of a group, :func:`trueconv.cli.zarr_store.split_member`) is
    a zarr array whatever its own suffix, unless it is a file of a known type."""
    fmt = FORMATS.get(path.suffix.lower())
    if zarr_store.split_member(path) is not None and (fmt is None or fmt is ZARR or path.is_dir()):
        return ZARR
    return fmt


def lookup(path: Path, role: str = "input") -> Format:
    """The format of ``path`` (:func:`format_of`), or an :class:`InputError` listing the known
    ones."""
    fmt = format_of(path)
    if fmt is None:
        known = " ".join(sorted(FORMATS))
        got = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise InputError(f"unknown {role} file type ({got}); known: {known}")
    return fmt


def layout(signal: Signal, float_output: bool) -> Layout:
    """The :class:`Layout` of loaded data."""
    shapes = {name: a.shape for name, a in signal.arrays.items()}
    return Layout(signal.kind, shapes, signal.meta, float_output)


def check_writable(path: Path, source: Source, float_output: bool) -> Format:
    """The output format of ``path``, after checking it can hold what ``source`` will give."""
    fmt = lookup(path, "output")
    lay = Layout(source.kind, source.shapes, source.meta, float_output)
    _guarded(fmt, "write", lambda: fmt.check(path, lay))
    return fmt


def open_source(path: Path, role: str = "input") -> Source:
    """Open ``path`` with its format; unreadable files become one-line :class:`InputError`\\ s."""
    fmt = lookup(path, role)
    if fmt is ZARR:
        zarr_store.check_member(path, role)
    if not path.exists():
        raise InputError("no such file")
    if path.is_dir() and not fmt.directory:
        raise InputError("is a directory")
    return _guarded(fmt, "read", lambda: fmt.open(path))


def read(source: Source, fmt: Format | None = None) -> Signal:
    """Read the samples of an opened source (of format ``fmt``; default: by its suffix)."""
    return _guarded(fmt or lookup(source.path), "read", source.load)


def _guarded(fmt: Format, verb: str, call: Callable[[], Any], where: Path | None = None) -> Any:
    try:
        return call()
    except CliError:
        raise
    except Exception as exc:
        raise_if_terminated()  # a signal the library lost: not this input's failure
        if isinstance(exc, MemoryError):
            raise InputError(f"out of memory: cannot {verb} it") from None
        if isinstance(exc, OSError):
            raise InputError(f"cannot {verb} as {fmt.name}: {os_reason(exc, where)}") from None
        # third-party readers raise anything: report it as one line
        raise InputError(f"cannot {verb} as {fmt.name}: {_reason(exc)}") from None


#: Free bytes below which a failed write is reported as a full disk.
_FULL_BELOW = 1024**2


def os_reason(exc: OSError, folder: Path | None = None) -> str:
    """One line for a failed read or write: the system's words, with the free space of
    ``folder`` when the disk is full; also when the writer lost the system's words (numpy's
    ``tofile`` says only "1440000 requested and 654832 written") and ``folder``'s file system
    has (almost) nothing left."""
    text = exc.strerror or _reason(exc)
    if folder is None or exc.errno not in (None, errno.ENOSPC, errno.EDQUOT):
        return text
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return text
    if exc.errno is not None:  # strerror already says "No space left on device"
        return f"{text} ({human_bytes(free)} free in {folder})"
    if free >= _FULL_BELOW:
        return text
    return f"no space left on device ({text}; {human_bytes(free)} free in {folder})"


def approx(n: int) -> str:
    """A count of any size: exact below a million, else three digits (``2.50e+09``,
    ``3.60e+601``; from the decimal digits, as counts can be past a float's range)."""
    digits = str(n)
    return digits if n < 10**6 else f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1:02d}"


def shape_text(sizes: tuple[int, ...]) -> str:
    """Sizes for messages: ``130 x 258``; a size past 10^12 in three digits (``6.00e+300``)."""
    return " x ".join(str(n) if n < 10**12 else approx(n) for n in sizes)


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, for messages: ``512 B``, ``1.5 KiB``, ``18.6 GiB``."""
    if n >= 1024**6:  # beyond any machine: a count, not a unit (also past float's range)
        return f"{approx(int(n))} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class MissingDaskExtra(MissingExtra):
    """Zarr, Dask or distributed is not installed: they come with the ``dask`` extra."""

    def __init__(self, suffix: str, module: str, purpose: str = "reading") -> None:
        InputError.__init__(
            self, f'{purpose} {suffix} files needs {module}: pip install "trueconv[dask]"'
        )


def _need(
    module: str,
    dist: str,
    suffix: str,
    purpose: str,
    error: type[MissingExtra] = MissingExtra,
) -> ModuleType:
    try:
        return importlib.import_module(module)
    except (ImportError, OSError):  # soundfile raises OSError when libsndfile is missing
        raise error(suffix, dist, purpose) from None


def need_dask(module: str, suffix: str = ".zarr", purpose: str = "reading") -> ModuleType:
    """Import ``module`` (``zarr``, ``dask.array``, ``distributed``, ...) or raise a
    :class:`MissingDaskExtra` naming its distribution and the ``dask`` extra."""
    return _need(module, module.split(".")[0], suffix, purpose, MissingDaskExtra)


# -- writing safely ---------------------------------------------------------------------------


def resolve_path(path: Path) -> Path:
    """The absolute path that ``path`` names, as every check and every write of ``apply`` sees
    it: relative to this process's working folder, symlinks followed, ``..`` applied to what
    precedes it (``new/../data.npy`` is ``data.npy`` whether or not ``new`` exists).

    One resolution for the existence check, the same-file check and the rename, so that they
    cannot disagree; and absolute, so that a Dask worker with another working folder reads and
    writes the same files as this process.

    An array inside a zarr store (``data.zarr/raw``) keeps the store's name and the path
    inside it as typed: only the folder holding the store is resolved, so that
    :func:`trueconv.cli.zarr_store.check_member` sees (and refuses) a ``..`` or a symlink
    leading out of the store.
    """
    member = zarr_store.split_member(path)
    if member is not None and format_of(path) is ZARR:
        root, inner = member
        return Path(os.path.realpath(root.parent)) / root.name / inner
    return Path(os.path.realpath(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(target: Path, fmt: Format, signal: Signal, float_output: bool) -> list[str]:
    """Write to a temporary sibling of ``target`` and rename it into place.

    A failure at any point removes the temporary file and leaves ``target`` as it was (absent,
    or the old file): no partial output is ever visible under the target's name.
    """

    def write(tmp: Path) -> list[str]:
        return list(
            _guarded(fmt, "write", lambda: fmt.write(tmp, signal, float_output), tmp.parent)
        )

    return replace_atomically(target, fmt.directory, write)


def replace_atomically(
    target: Path, directory: bool, write: Callable[[Path], list[str]]
) -> list[str]:
    """Call ``write`` on a new temporary sibling of ``target``, then rename it into place.

    Parameters
    ----------
    target : Path
        The output's name. An existing one (the caller checked ``--force``) is replaced only
        after ``write`` returned: a directory is moved aside first, and moved back if the new
        one cannot be moved into place.
    directory : bool
        Whether ``write`` gets an empty temporary directory (a ``.zarr`` store) or an empty
        temporary file.
    write : callable
        Writes the output at the path it is given; returns warnings to show the user.

    Returns
    -------
    list of str
        What ``write`` returned.

    Raises
    ------
    InputError
        For an ``OSError`` (a full disk, a folder without write permission), as one line.
        Any other exception of ``write`` propagates as it is; the temporary output is removed
        in every case, so no partial output is ever visible under the target's name.
    """
    prefix = _temporary_prefix(target, os.getpid())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    # Every name is chosen before its file exists, so that the cleanup below knows it whenever
    # an exception (Ctrl-C, SIGTERM: see trueconv.cli.main) arrives, even in the middle of
    # creating it; tempfile's functions name the file only once they return.
    token = secrets.token_hex(4)
    tmp = target.parent / f"{prefix}{token}{target.suffix}"
    old = target.parent / f"{prefix}old-{token}"  # an existing directory output, moved aside
    aside = old / target.name
    try:
        if directory:
            os.mkdir(tmp, 0o700)
        else:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        warnings = write(tmp)
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        if directory and target.exists():  # a directory cannot be replaced in one step
            os.mkdir(old, 0o700)
            os.replace(target, aside)
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.lexists(aside) and not os.path.lexists(target):
            os.replace(aside, target)  # the old output back where it was
        for leftover in (tmp, old):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    leftover.unlink()
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {target}: {os_reason(exc, target.parent)}") from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    return list(warnings)


def _temporary_prefix(target: Path, pid: int) -> str:
    """How the temporaries of a write to ``target`` by process ``pid`` of this host start.

    The host and the process are in the name so that a later write to the same target can
    tell the leftovers of a killed process (SIGKILL, a power cut: nothing could clean up) from
    those of a write still running, here or on another host sharing the folder.
    """
    return f".{target.name}.trueconv-{socket.gethostname()}-{pid}-"


def sweep_leftovers(target: Path) -> None:
    """Remove what killed writes to ``target`` on this host left beside it (``apply`` calls
    this before it looks at the target).

    A temporary output is deleted. An old directory output that was moved aside to be replaced
    (``<prefix>old-*``) is moved back when nothing took its place, else deleted. Leftovers of
    live processes, of other hosts and of other targets are not touched.
    """
    pattern = re.compile(re.escape(_temporary_prefix(target, 0)[:-2]) + r"(\d+)-(old-)?")
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        with contextlib.suppress(OSError):
            kept = entry / target.name
            if match[2] and kept.is_dir() and not os.path.lexists(target):
                os.replace(kept, target)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# -- sample conversion shared by the writers ------------------------------------------------------


def to_integer(y: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, tuple[int, int]]:
    """Round to nearest (half to even) and clip to ``dtype``'s range; also the clipped counts
    (below the minimum, above the maximum)."""
    info = np.iinfo(dtype)
    y = np.rint(y)
    clipped = (int(np.count_nonzero(y < info.min)), int(np.count_nonzero(y > info.max)))
    return np.clip(y, info.min, info.max).astype(dtype), clipped


def natural(signal: Signal, name: str) -> np.ndarray:
    """One array in the layout its file type uses: channels last for images (alpha appended,
    grey squeezed), ``(frames, channels)`` for audio (mono squeezed), as is for arrays."""
    y = signal.arrays[name]
    if signal.kind == "image":
        y = np.moveaxis(y, 0, -1)
        alpha = signal.meta.get("alpha")
        if alpha is not None:
            y = np.concatenate([y, alpha[..., None].astype(y.dtype)], axis=-1)
        return y[..., 0] if y.shape[-1] == 1 else y
    if signal.kind == "audio":
        return y[0] if y.shape[0] == 1 else y.T
    return y


def _clip_note(clipped: tuple[int, int], lo: float, hi: float) -> list[str]:
    """The warning for ``(below, above)`` clipped samples. ``--normalize`` scales the peak
    magnitude to full scale, which brings every sample into a symmetric range but cannot make
    a negative sample fit an unsigned one (an edge filter's negative responses in an 8-bit
    image): it is suggested only where it helps."""
    below, above = clipped
    if not below + above:
        return []
    helps = not below or lo < 0
    hint = "--normalize scales the output to fit; " if helps else ""
    why = "" if helps else f"; {below} are negative, which unsigned samples cannot hold"
    return [
        f"{below + above} samples clipped to the range {lo:g}..{hi:g}{why} "
        f"({hint}--float keeps every value)"
    ]


def _one_array(path: Path, lay: Layout) -> str:
    if len(lay.shapes) != 1:
        raise InputError(f"{path.suffix} holds one array; there are {len(lay.shapes)}: write .npz")
    return next(iter(lay.shapes))


def work_dtype(dtype: np.dtype) -> type[np.floating]:
    """The float type samples are computed in: float32 holds 8-/16-bit integers exactly."""
    wide = (dtype.kind in "iu" and dtype.itemsize >= 4) or dtype == np.float64
    return np.float64 if wide else np.float32


# -- NumPy ------------------------------------------------------------------------------------


def _numeric(dtype: np.dtype, what: str) -> None:
    if dtype.kind not in "biufc":
        raise InputError(f"{what} has dtype {dtype}, not numbers")


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a ``.npy`` stream, which is left at the data."""
    version = np.lib.format.read_magic(f)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read(f)
    return tuple(shape), np.dtype(dtype)


def _open_npy(path: Path) -> Source:
    with open(path, "rb") as f:
        shape, dtype = _npy_header(f)
        start, size = f.tell(), os.fstat(f.fileno()).st_size
    _numeric(dtype, "the array")
    announced = math.prod(shape) * dtype.itemsize
    if size - start < announced:
        raise InputError(
            f"truncated: the header announces {announced} bytes of data, the file has "
            f"{size - start}"
        )

    def load() -> Signal:
        return Signal("array", {"": np.load(path, allow_pickle=False)})

    return Source(path, "array", {"": shape}, {"": dtype}, 0, {}, load)


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    out = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            with zf.open(member) as f:
                out[member.removesuffix(".npy")] = _npy_header(f)
    return out


def _open_npz(path: Path) -> Source:
    headers = _npz_headers(path)
    if not headers:
        raise InputError("the .npz file holds no arrays")
    for name, (_, dtype) in headers.items():
        _numeric(dtype, f"array {name!r}")

    def load() -> Signal:
        with np.load(path, allow_pickle=False) as z:
            return Signal("array", {name: z[name] for name in headers})

    shapes = {n: s for n, (s, _) in headers.items()}
    dtypes = {n: d for n, (_, d) in headers.items()}
    return Source(path, "array", shapes, dtypes, 0, {}, load)


def _check_npy(path: Path, lay: Layout) -> None:
    _one_array(path, lay)


def _write_npy(path: Path, signal: Signal, float_output: bool) -> list[str]:
    name = _one_array(path, layout(signal, float_output))
    with open(path, "wb") as f:
        np.save(f, natural(signal, name))
    return []


def _write_npz(path: Path, signal: Signal, float_output: bool) -> list[str]:
    arrays = {name or "arr_0": natural(signal, name) for name in signal.arrays}
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return []


# -- images: Pillow ---------------------------------------------------------------------------

#: Pillow mode -> (mode to convert to, or None to keep; colour channels; has alpha; sample type)
_PIL_MODES: dict[str, tuple[str | None, int, bool, str]] = {
    "1": ("L", 1, False, "uint8"),
    "L": (None, 1, False, "uint8"),
    "LA": (None, 1, True, "uint8"),
    "La": ("LA", 1, True, "uint8"),
    "P": ("RGB", 3, False, "uint8"),
    "PA": ("RGBA", 3, True, "uint8"),
    "RGB": (None, 3, False, "uint8"),
    "RGBX": ("RGB", 3, False, "uint8"),
    "RGBA": (None, 3, True, "uint8"),
    "RGBa": ("RGBA", 3, True, "uint8"),
    "CMYK": ("RGB", 3, False, "uint8"),
    "YCbCr": ("RGB", 3, False, "uint8"),
    "LAB": ("RGB", 3, False, "uint8"),
    "HSV": ("RGB", 3, False, "uint8"),
    "I;16": (None, 1, False, "uint16"),
    "I;16L": (None, 1, False, "uint16"),
    "I;16B": (None, 1, False, "uint16"),
    "I;16N": (None, 1, False, "uint16"),
    "I": (None, 1, False, "int32"),
    "F": (None, 1, False, "float32"),
}


def _pil(suffix: str, purpose: str = "reading") -> ModuleType:
    return _need("PIL.Image", "Pillow", suffix, purpose)


def _image_meta(dtype: np.dtype, has_alpha: bool) -> dict[str, Any]:
    full_scale = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    return {"dtype": dtype, "full_scale": full_scale, "has_alpha": has_alpha, "alpha": None}


def _split_alpha(a: np.ndarray, colour: int, meta: dict[str, Any]) -> Signal:
    """``a`` channels last -> a Signal with the colour channels first and alpha aside."""
    meta = dict(meta, alpha=a[..., colour] if meta["has_alpha"] else None)
    planes = np.ascontiguousarray(np.moveaxis(a[..., :colour], -1, 0))
    return Signal("image", {"": planes}, 1, meta)


# -- 16-bit colour PNG: imagecodecs ----------------------------------------------------------
#
# Pillow reads a 16-bit RGB(A) or grey+alpha PNG with 8 bits per sample and cannot write one.
# These go through imagecodecs (libpng): lossless both ways, every uint16 value kept. Chosen
# over pypng (pure Python, last release 2022) and OpenCV (too heavy for the cli extra): it is
# released every few months by the author of tifffile, ships wheels for every platform (26 MB),
# and on a 2048 x 2048 x 3 uint16 picture (a smooth gradient with noise, 20 MB as PNG; AMD
# EPYC, 2 shared cores, best of 3) it read in 0.16-0.30 s and wrote in 1.9 s (zlib's default
# level), where pypng 0.20220715 took 2.9 s to read and 2.7 s to write the same file.

#: PNG colour types that Pillow reads with 8 bits per sample at bit depth 16:
#: colour type -> (colour channels, has alpha).
_DEEP_PNG = {2: (3, False), 4: (1, True), 6: (3, True)}


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(width, height, bit depth, colour type)`` from a PNG's IHDR, or ``None``."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]


def _imagecodecs(suffix: str, purpose: str) -> ModuleType:
    return _need("imagecodecs", "imagecodecs", suffix, f"{purpose} 16-bit colour")


def _open_png16(path: Path, width: int, height: int, colour_type: int) -> Source:
    """A 16-bit colour (or grey + alpha) PNG, decoded by imagecodecs: every value kept."""
    imagecodecs = _imagecodecs(path.suffix, "reading")
    colour, has_alpha = _DEEP_PNG[colour_type]
    dtype = np.dtype(np.uint16)
    meta = _image_meta(dtype, has_alpha)

    def load() -> Signal:
        a = np.asarray(imagecodecs.png_decode(path.read_bytes()))
        if a.dtype != dtype or a.size != height * width * (colour + has_alpha):
            raise InputError(
                f"decoded as {a.dtype} {' x '.join(map(str, a.shape))}, not the "
                f"{height} x {width} x {colour + has_alpha} uint16 its header announces"
            )
        a = a.reshape(height, width, -1).astype(work_dtype(dtype))
        return _split_alpha(a, colour, meta)

    return Source(path, "image", {"": (colour, height, width)}, {"": dtype}, 1, meta, load)


def _open_pillow(path: Path) -> Source:
    Image = _pil(path.suffix)
    header = _png_header(path) if path.suffix.lower() == ".png" else None
    if header is not None and header[2] == 16 and header[3] in _DEEP_PNG:
        width, height, _, colour_type = header
        return _open_png16(path, width, height, colour_type)
    with Image.open(path) as im:
        width, height = im.size
        mode = im.mode
        if mode == "P" and "transparency" in im.info:
            mode = "PA"
    if mode not in _PIL_MODES:
        raise InputError(f"unsupported image mode {mode!r}")
    convert, colour, has_alpha, sample = _PIL_MODES[mode]
    dtype = np.dtype(sample)
    meta = _image_meta(dtype, has_alpha)

    def load() -> Signal:
        with Image.open(path) as im:
            im.load()  # a truncated or corrupt file fails here
            a = np.asarray(im.convert(convert) if convert else im)
        a = a.reshape(height, width, -1).astype(work_dtype(dtype))
        return _split_alpha(a, colour, meta)

    return Source(path, "image", {"": (colour, height, width)}, {"": dtype}, 1, meta, load)


def _check_pillow(path: Path, lay: Layout) -> None:
    suffix = path.suffix.lower()
    Image = _pil(suffix, "writing")
    if lay.kind != "image":
        raise InputError(f"cannot write {lay.kind} data as a {suffix} image: write .npy")
    name = _one_array(path, lay)
    dtype = np.dtype(lay.meta["dtype"])
    if lay.float_output or dtype.kind == "f":
        raise InputError(f"{suffix} holds integer samples, not floats: write .tif or .npy")
    if len(lay.shapes[name]) != 3:
        raise InputError(f"a stack of images cannot be written as {suffix}: write .tif")
    fmt = Image.registered_extensions().get(suffix)
    colour, alpha = lay.shapes[name][0], lay.meta["has_alpha"]
    if _deep_png(fmt, dtype, colour, alpha):
        _imagecodecs(suffix, "writing")
    elif dtype != np.uint8 and (colour > 1 or alpha or fmt != "PNG"):
        bits = dtype.itemsize * 8
        where = "grey PNG, or 16-bit colour PNG" if dtype == np.uint16 else "grey PNG"
        raise InputError(f"{bits}-bit images are written here only as {where}: write .tif")
    if alpha and fmt == "JPEG":
        raise InputError("JPEG has no alpha channel: write .png")


def _deep_png(fmt: str | None, dtype: np.dtype, colour: int, alpha: bool) -> bool:
    """Whether an image is written as a 16-bit colour (or grey + alpha) PNG by imagecodecs."""
    return fmt == "PNG" and dtype == np.uint16 and (colour > 1 or alpha)


def _write_pillow(path: Path, signal: Signal, float_output: bool) -> list[str]:
    lay = layout(signal, float_output)
    _check_pillow(path, lay)
    Image = _pil(path.suffix, "writing")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    dtype = np.dtype(signal.meta["dtype"])
    y, clipped = to_integer(natural(signal, _one_array(path, lay)), dtype)
    colour = signal.arrays[_one_array(path, lay)].shape[0]
    if _deep_png(fmt, dtype, colour, signal.meta["has_alpha"]):
        imagecodecs = _imagecodecs(path.suffix, "writing")
        path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(y)))
        info = np.iinfo(dtype)
        return _clip_note(clipped, info.min, info.max)
    options = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(y)).save(path, format=fmt, **options)
    info = np.iinfo(dtype)
    return _clip_note(clipped, info.min, info.max)


# -- images: tifffile (16-bit colour, float, stacks) ------------------------------------------


def _tifffile(suffix: str, purpose: str = "reading") -> ModuleType:
    return _need("tifffile", "tifffile", suffix, purpose)


def _open_tiff(path: Path) -> Source:
    tifffile = _tifffile(path.suffix)
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, axes, dtype = tuple(series.shape), series.axes, np.dtype(series.dtype)
        extrasamples = tuple(getattr(series.keyframe, "extrasamples", ()) or ())
        for page in series.pages:
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)] if page else []
            if ends and max(ends) > size:
                raise InputError(
                    f"truncated: the samples end at byte {max(ends)}, the file has {size}"
                )
    if dtype.kind not in "iuf":
        raise InputError(f"unsupported TIFF sample type {dtype}")
    s_axis = axes.find("S")
    samples = shape[s_axis] if s_axis >= 0 else 1
    has_alpha = samples in (2, 4) and bool(extrasamples)
    colour = samples - has_alpha
    spatial = tuple(n for i, n in enumerate(shape) if i != s_axis)
    meta = _image_meta(dtype, has_alpha)

    def load() -> Signal:
        a = tifffile.imread(path, series=0)
        a = np.moveaxis(a, s_axis, -1) if s_axis >= 0 else a[..., None]
        return _split_alpha(a.astype(work_dtype(dtype)), colour, meta)

    return Source(path, "image", {"": (colour, *spatial)}, {"": dtype}, 1, meta, load)


def _check_tiff(path: Path, lay: Layout) -> None:
    _tifffile(path.suffix, "writing")
    name = _one_array(path, lay)
    if lay.kind == "audio":
        raise InputError("cannot write audio as a TIFF image: write .npy or an audio file")
    if lay.kind == "array" and len(lay.shapes[name]) < 2:
        raise InputError("a TIFF image needs at least 2 dims: write .npy")


def _write_tiff(path: Path, signal: Signal, float_output: bool) -> list[str]:
    lay = layout(signal, float_output)
    _check_tiff(path, lay)
    tifffile = _tifffile(path.suffix, "writing")
    name = _one_array(path, lay)
    y = natural(signal, name)
    notes: list[str] = []
    dtype = np.dtype(signal.meta.get("dtype", y.dtype))
    if float_output or dtype.kind not in "iu":
        y = y.astype(np.float64 if dtype == np.float64 else np.float32)
    else:
        y, clipped = to_integer(y, dtype)
        info = np.iinfo(dtype)
        notes = _clip_note(clipped, info.min, info.max)
    options: dict[str, Any] = {"photometric": "minisblack"}
    if signal.kind == "image":
        if signal.arrays[name].shape[0] == 3:
            options["photometric"] = "rgb"
        if signal.meta["has_alpha"]:
            options["extrasamples"] = ["unassalpha"]
            options["planarconfig"] = "contig"
    tifffile.imwrite(path, y, **options)
    return notes


# -- audio: soundfile ---------------------------------------------------------------------------

_SOUND_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}


def _soundfile(suffix: str, purpose: str = "reading") -> ModuleType:
    return _need("soundfile", "soundfile", suffix, purpose)


def _wav_truncation(path: Path) -> str | None:
    """A WAV's announced sample bytes against what the file holds: libsndfile silently reads
    what is there, so a cut-off download would pass unnoticed."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if tag == b"data":
                held = os.fstat(f.fileno()).st_size - f.tell()
                if size not in (0, 0xFFFFFFFF) and held < size:
                    return (
                        f"truncated: the header announces {size} bytes of samples, "
                        f"the file has {held}"
                    )
                return None
            f.seek(size + (size & 1), os.SEEK_CUR)
    return None


def _open_sound(path: Path) -> Source:
    sf = _soundfile(path.suffix)
    if path.suffix.lower() == ".wav" and (problem := _wav_truncation(path)):
        raise InputError(problem)
    info = sf.info(str(path))
    precise = info.subtype in ("PCM_32", "DOUBLE")
    dtype = np.dtype(np.float64 if precise else np.float32)
    meta = {
        "dtype": dtype,
        "full_scale": 1.0,
        "samplerate": int(info.samplerate),
        "subtype": info.subtype,
    }

    def load() -> Signal:
        data, _ = sf.read(str(path), dtype=dtype.name, always_2d=True)
        return Signal("audio", {"": np.ascontiguousarray(data.T)}, 1, dict(meta))

    shape = (int(info.channels), int(info.frames))
    return Source(path, "audio", {"": shape}, {"": dtype}, 1, dict(meta), load)


def _subtype(path: Path, lay: Layout) -> str:
    suffix = path.suffix.lower()
    sf = _soundfile(suffix, "writing")
    container = _SOUND_FORMATS[suffix]
    subtype = "FLOAT" if lay.float_output else lay.meta.get("subtype")
    if subtype and sf.check_format(container, subtype):
        return str(subtype)
    if lay.float_output:
        raise InputError(f"{suffix} cannot hold float samples: write .wav")
    return str(sf.default_subtype(container))


def _check_sound(path: Path, lay: Layout) -> None:
    if lay.kind != "audio":
        raise InputError(f"cannot write {lay.kind} data as {path.suffix} audio: write .npy")
    _one_array(path, lay)
    _subtype(path, lay)


def _write_sound(path: Path, signal: Signal, float_output: bool) -> list[str]:
    lay = layout(signal, float_output)
    _check_sound(path, lay)
    sf = _soundfile(path.suffix, "writing")
    subtype = _subtype(path, lay)
    y = signal.arrays[_one_array(path, lay)]
    notes: list[str] = []
    # libsndfile does not clip out-of-range samples for integer subtypes: clip here, and say so
    clipped = (0, 0)
    if subtype not in ("FLOAT", "DOUBLE"):
        clipped = (int(np.count_nonzero(y < -1.0)), int(np.count_nonzero(y > 1.0)))
    if any(clipped):
        y = np.clip(y, -1.0, 1.0)
        notes = _clip_note(clipped, -1.0, 1.0)
    container = _SOUND_FORMATS[path.suffix.lower()]
    sf.write(
        str(path),
        _quantized(y, subtype).T,
        signal.meta["samplerate"],
        subtype=subtype,
        format=container,
    )
    return notes


#: Integer subtypes: (bits stored, numpy dtype handed to libsndfile, that dtype's bits).
_PCM = {
    "PCM_S8": (8, np.int16, 16),
    "PCM_U8": (8, np.int16, 16),
    "PCM_16": (16, np.int16, 16),
    "PCM_24": (24, np.int32, 32),
    "PCM_32": (32, np.int32, 32),
}


def _quantized(y: np.ndarray, subtype: str) -> np.ndarray:
    """Samples in ``[-1, 1]`` as the integers an integer subtype stores, rounded to nearest.

    libsndfile 1.2 converts floats to integer samples rounding down, not to nearest (16-bit:
    16847.99 steps became 16847, -16847.99 became -16848), so a written result was up to one
    step off, 1.02 steps in a stereo reverb test. Integers are written unscaled (8- and 24-bit
    subtypes keep the top bits of int16/int32), so rounding here gives the nearest step:
    within half a step of the exact result.
    """
    if subtype not in _PCM:
        return y
    bits, dtype, container_bits = _PCM[subtype]
    top = 2.0 ** (bits - 1)
    q = np.clip(np.rint(np.asarray(y, dtype=np.float64) * top), -top, top - 1)
    return (q.astype(np.int64) << (container_bits - bits)).astype(dtype)


# -- Zarr: directory stores, v2 (.zarray) and v3 (zarr.json) ----------------------------------

#: The files that make a directory a zarr store (v2 array, v2 group, v3 node).
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")


def zarr_major() -> int:
    """The major version of the installed zarr library (2 or 3)."""
    zarr = need_dask("zarr")
    return int(str(zarr.__version__).split(".")[0])


def open_zarr_array(path: Path) -> tuple[Any, zarr_store.StoreMeta]:
    """The ``zarr.Array`` stored at ``path``, opened read-only (metadata only), and its
    metadata as checked before zarr read it (:func:`trueconv.cli.zarr_store.check_store`:
    numeric dtype, sane shape and chunks, allowed codecs only).

    Raises
    ------
    MissingDaskExtra
        zarr is not installed.
    InputError
        ``path`` is not a directory holding a zarr store, its metadata is refused (a codec that
        could run code or does not give numbers, a bogus shape or chunks), or the store is a
        group (named with the arrays it holds, to name one: ``STORE.zarr/path/to/array``).
        A path inside a store is checked first (:func:`trueconv.cli.zarr_store.check_member`:
        no ``..``, no symlink out of the store); the array's own directory is then opened as
        its store, so that zarr reads the metadata checked here and never a group's
        consolidated copy of it.
    """
    zarr = need_dask("zarr", path.suffix or ".zarr")
    zarr_store.check_member(path)  # an array inside a group: no '..', no way out of the store
    if not path.is_dir():
        raise InputError("not a zarr store: a .zarr store is a directory")
    if not any((path / name).exists() for name in _ZARR_MARKERS):
        raise InputError("not a zarr store: it has no .zarray or zarr.json")
    named = path.name
    path = resolve_path(path)  # absolute: the graph carries it to workers in other folders
    # the array's own directory is opened as its store: what zarr reads is the metadata
    # checked here (never a group's consolidated copy of it)
    store = zarr_store.check_store(path, zarr_major())
    node = zarr.open(str(path), mode="r")
    if not isinstance(node, zarr.Array):
        names = sorted(node.array_keys())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        holds = f"arrays {shown}" if names else "no arrays"
        hint = f"name one of them: {named}/{names[0]}" if names else "give an array"
        raise InputError(f"a zarr group (it holds {holds}), not an array; {hint}")
    seen = (tuple(node.shape), tuple(node.chunks), np.dtype(node.dtype))
    if store is None or seen != (store.shape, store.chunks, store.dtype):
        raise InputError("zarr read other metadata than was checked; was the store changed?")
    return node, store


def zarr_format_of(array: Any) -> int:
    """The zarr format (2 or 3) of an opened array, whatever the library version."""
    metadata = getattr(array, "metadata", None)
    return int(getattr(metadata, "zarr_format", 2))


def _open_zarr(path: Path) -> Source:
    array, store = open_zarr_array(path)
    dtype = store.dtype
    meta = {
        "zarr_format": zarr_format_of(array),
        "chunks": store.chunks,
        "attrs": dict(array.attrs),
        "store": store,  # the checked metadata: what zarr_apply plans from
        "array": array,
    }

    def load() -> Signal:  # a kernel, or a small array: in memory
        return Signal("array", {"": np.asarray(array[...])})

    return Source(path, "array", {"": tuple(array.shape)}, {"": dtype}, 0, meta, load)


def _check_zarr(path: Path, lay: Layout) -> None:
    need_dask("zarr", ".zarr", "writing")
    zarr_store.check_member(path, "output")
    if len(lay.shapes) != 1:
        raise InputError(f"a zarr array holds one array; there are {len(lay.shapes)}: write .npz")


def _write_zarr(path: Path, signal: Signal, float_output: bool) -> list[str]:
    if len(signal.arrays) != 1:
        raise InputError(f"a zarr array holds one array; there are {len(signal.arrays)}")
    zarr = need_dask("zarr", ".zarr", "writing")
    # written beside its target: inside a group, in the group's zarr format
    group = zarr_store.group_format(path.parent)
    extra = {} if group is None or zarr_major() < 3 else {"zarr_format": group}
    y = np.ascontiguousarray(natural(signal, next(iter(signal.arrays))))
    zarr.save_array(str(path), y, **extra)
    return []


register(Format("NumPy array", (".npy",), _open_npy, _check_npy, _write_npy))
register(Format("NumPy archive", (".npz",), _open_npz, lambda path, lay: None, _write_npz))
register(
    Format(
        "image",
        (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pnm"),
        _open_pillow,
        _check_pillow,
        _write_pillow,
    )
)
register(Format("TIFF image", (".tif", ".tiff"), _open_tiff, _check_tiff, _write_tiff))
register(Format("audio", tuple(_SOUND_FORMATS), _open_sound, _check_sound, _write_sound))
#: Convolved lazily by ``apply`` when it is the input (:mod:`trueconv.cli.zarr_apply`).
ZARR = register(
    Format("Zarr array", (".zarr",), _open_zarr, _check_zarr, _write_zarr, directory=True)
)
