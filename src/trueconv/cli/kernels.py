"""Built-in kernels for ``trueconv apply --kernel NAME[:ARGS]``, in one registry.

:data:`BUILTINS` maps each name to its builder, parameters, the ranks it exists in and a
one-line description; it drives ``trueconv kernels``, the spec parser (:func:`parse`), its
typo suggestions and the README table. Every builder returns a float64 array that is a
*convolution* kernel: ``trueconv.convolve`` flips it as it slides it, so what is written here
is what the textbooks write before the ``*`` of a convolution (Sobel's ``Gx``, for example,
responds positively where the intensity rises to the right, as ``scipy.ndimage.sobel`` does).

A kernel's rank follows the input (1 for audio, 2 for an image, 3 for a TIFF stack, the number
of convolved dims for an array) unless the spec fixes it with ``ndim=``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BUILTINS",
    "Builtin",
    "KernelSpec",
    "box",
    "gaussian",
    "identity",
    "laplacian",
    "motion",
    "parse",
    "sharpen",
    "sobel",
]


def _check_ndim(ndim: int) -> None:
    if ndim < 1:
        raise ValueError(f"ndim must be at least 1; got {ndim}")


def _at_least_one(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return value


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}")
    return value


# Taps per dim of each built-in, from its parameters alone: what ``--max-bytes`` is checked
# against before a kernel is built (``box:50000`` at rank 2 would be 18.6 GiB of float64).
# Each also validates the parameters, so the builders below and the spec parser share one
# check per parameter.


def gaussian_taps(sigma: float, size: int | None = None) -> int:
    """Taps per dim of :func:`gaussian`: ``size``, or ``2 * ceil(3 * sigma) + 1``."""
    if not (_finite("sigma", sigma) > 0):
        raise ValueError(f"sigma must be positive; got {sigma}")
    return 2 * math.ceil(3 * sigma) + 1 if size is None else _at_least_one("size", size)


def motion_taps(length: int = 9, angle: float = 0.0) -> int:
    """Taps per dim of :func:`motion`: the odd size ``2 * ceil((length - 1) / 2) + 1``."""
    _at_least_one("length", length)
    _finite("angle", angle)
    return 2 * math.ceil((length - 1) / 2) + 1


def gaussian(sigma: float, size: int | None = None, ndim: int = 2) -> np.ndarray:
    """A normalised Gaussian of standard deviation ``sigma`` samples along every dim.

    Parameters
    ----------
    sigma : float
        Standard deviation in samples; positive.
    size : int, optional
        Taps per dim. Default ``2 * ceil(3 * sigma) + 1``: three standard deviations each
        side, which keeps all but 0.27 % of the weight of each 1-D factor.
    ndim : int, optional
        Rank of the kernel (default 2).

    Returns
    -------
    numpy.ndarray
        Shape ``(size,) * ndim``, float64, summing to 1. The outer product of one normalised
        1-D Gaussian per dim, as ``scipy.ndimage.gaussian_filter`` with ``radius=size // 2``.

    Examples
    --------
    >>> from trueconv.cli.kernels import gaussian
    >>> k = gaussian(2.0)
    >>> k.shape, round(float(k.sum()), 12), bool(k[6, 6] == k.max())
    ((13, 13), 1.0, True)
    >>> gaussian(1.0, size=3, ndim=1).round(4)
    array([0.2741, 0.4519, 0.2741])
    """
    _check_ndim(ndim)
    size = gaussian_taps(sigma, size)
    x = np.arange(size) - (size - 1) / 2
    with np.errstate(over="ignore"):  # a tiny sigma: exp(-inf) = 0 beside the centre tap
        g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    return _outer([g] * ndim)


def box(size: int = 3, ndim: int = 2) -> np.ndarray:
    """A normalised box (moving average) of ``size`` taps per dim.

    Parameters
    ----------
    size : int, optional
        Taps per dim (default 3).
    ndim : int, optional
        Rank of the kernel (default 2).

    Returns
    -------
    numpy.ndarray
        ``ones((size,) * ndim) / size**ndim``, float64.

    Examples
    --------
    >>> from trueconv.cli.kernels import box
    >>> box(2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    _check_ndim(ndim)
    _at_least_one("size", size)
    return np.full((size,) * ndim, 1.0 / size**ndim)


def sobel(axis: int = -1, ndim: int = 2) -> np.ndarray:
    """Sobel's derivative along ``axis``, smoothed by ``[1, 2, 1]`` along every other dim.

    As a convolution kernel: the central difference ``[1, 0, -1]`` along ``axis`` (after the
    flip, ``x[i + 1] - x[i - 1]``), so the response is positive where the values rise along
    ``axis``; ``trueconv.convolve(x, sobel(axis), 'same')`` equals
    ``scipy.ndimage.sobel(x, axis, mode='constant')``. ``sobel-x`` is ``axis=-1`` (columns,
    rising to the right) and ``sobel-y`` is ``axis=-2`` (rows, rising downwards).

    Parameters
    ----------
    axis : int, optional
        The differentiated dim (default -1, the last).
    ndim : int, optional
        Rank of the kernel, at least 2 (default 2).

    Returns
    -------
    numpy.ndarray
        Shape ``(3,) * ndim``, float64.

    Examples
    --------
    >>> from trueconv.cli.kernels import sobel
    >>> sobel(-1)
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.],
           [ 1.,  0., -1.]])
    >>> sobel(-2)
    array([[ 1.,  2.,  1.],
           [ 0.,  0.,  0.],
           [-1., -2., -1.]])
    """
    if ndim < 2:
        raise ValueError(f"a Sobel kernel has at least 2 dims; got ndim={ndim}")
    axis = range(ndim)[axis]
    factors = [
        np.array([1.0, 0.0, -1.0]) if d == axis else np.array([1.0, 2.0, 1.0]) for d in range(ndim)
    ]
    return _outer(factors)


def laplacian(ndim: int = 2) -> np.ndarray:
    """The discrete Laplacian: ``-2 * ndim`` at the centre, 1 at each of the ``2 * ndim``
    nearest neighbours (``scipy.ndimage.laplace``).

    Parameters
    ----------
    ndim : int, optional
        Rank of the kernel (default 2).

    Returns
    -------
    numpy.ndarray
        Shape ``(3,) * ndim``, float64, summing to 0.

    Examples
    --------
    >>> from trueconv.cli.kernels import laplacian
    >>> laplacian()
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]])
    >>> laplacian(1)
    array([ 1., -2.,  1.])
    """
    _check_ndim(ndim)
    k = np.zeros((3,) * ndim)
    centre = (1,) * ndim
    k[centre] = -2.0 * ndim
    for d in range(ndim):
        for side in (0, 2):
            k[(*centre[:d], side, *centre[d + 1 :])] = 1.0
    return k


def sharpen(ndim: int = 2) -> np.ndarray:
    """Unsharp sharpening: the identity minus the :func:`laplacian` (sums to 1).

    Parameters
    ----------
    ndim : int, optional
        Rank of the kernel (default 2).

    Returns
    -------
    numpy.ndarray
        Shape ``(3,) * ndim``, float64.

    Examples
    --------
    >>> from trueconv.cli.kernels import sharpen
    >>> sharpen()
    array([[ 0., -1.,  0.],
           [-1.,  5., -1.],
           [ 0., -1.,  0.]])
    """
    return identity(3, ndim) - laplacian(ndim)


def identity(size: int = 1, ndim: int = 2) -> np.ndarray:
    """A unit impulse: ``mode='same'`` returns the input unchanged.

    The 1 sits at index ``(size - 1) // 2`` per dim, where numpy's and scipy's ``'same'``
    slice starts, so even sizes are an identity too.

    Parameters
    ----------
    size : int, optional
        Taps per dim (default 1).
    ndim : int, optional
        Rank of the kernel (default 2).

    Returns
    -------
    numpy.ndarray
        Shape ``(size,) * ndim``, float64.

    Examples
    --------
    >>> from trueconv.cli.kernels import identity
    >>> identity(3, ndim=1)
    array([0., 1., 0.])
    """
    _check_ndim(ndim)
    _at_least_one("size", size)
    k = np.zeros((size,) * ndim)
    k[((size - 1) // 2,) * ndim] = 1.0
    return k


def motion(length: int = 9, angle: float = 0.0, ndim: int = 2) -> np.ndarray:
    """Linear motion blur: a line of ``length`` pixels at ``angle`` degrees, normalised.

    The segment of length ``length - 1`` centred on the kernel's centre, at ``angle`` degrees
    counter-clockwise from the +x (column) axis with rows pointing down as in an image, is
    rasterised by marking every pixel that its densely sampled points round to; the marked
    pixels share the weight equally. The kernel is square, of odd size ``2 * ceil((length -
    1) / 2) + 1``. (MATLAB's ``fspecial('motion')`` anti-aliases the line instead.)

    Parameters
    ----------
    length : int, optional
        Length of the blur in pixels (default 9).
    angle : float, optional
        Direction in degrees (default 0: horizontal).
    ndim : int, optional
        Must be 2.

    Returns
    -------
    numpy.ndarray
        Square, float64, summing to 1.

    Examples
    --------
    >>> from trueconv.cli.kernels import motion
    >>> motion(3, 0) * 3
    array([[0., 0., 0.],
           [1., 1., 1.],
           [0., 0., 0.]])
    >>> motion(3, 45) * 3
    array([[0., 0., 1.],
           [0., 1., 0.],
           [1., 0., 0.]])
    """
    if ndim != 2:
        raise ValueError(f"a motion kernel is 2-D; got ndim={ndim}")
    size = motion_taps(length, angle)
    half = size // 2
    theta = math.radians(angle)
    # 8 samples per pixel of length, endpoints included: every crossed pixel is hit
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * max(length, 1) + 1)
    cols = np.rint(half + t * math.cos(theta)).astype(int)
    rows = np.rint(half - t * math.sin(theta)).astype(int)
    k = np.zeros((size, size))
    k[rows, cols] = 1.0
    return k / k.sum()


def _outer(factors: list[np.ndarray]) -> np.ndarray:
    out = factors[0]
    for f in factors[1:]:
        out = np.multiply.outer(out, f)
    return np.ascontiguousarray(out, dtype=np.float64)


# -- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of a built-in kernel. Defaults live in the builder's signature."""

    name: str
    type: type
    metavar: str
    required: bool = False


@dataclass(frozen=True)
class Builtin:
    """A built-in kernel: ``build(ndim=..., **params)``, its taps per dim ``taps(**params)``
    (validating the parameters, building nothing), whether it is ``separable``, and what
    ``trueconv kernels`` says."""

    name: str
    build: Callable[..., np.ndarray]
    summary: str
    params: tuple[Param, ...] = ()
    min_rank: int = 1
    max_rank: int | None = None
    taps: Callable[..., int] = lambda **params: 3
    #: whether the kernel is an outer product of 1-D factors (rank 1) at every rank and for
    #: every parameter, so that ``'auto'`` runs it as one pass per dim; ``None``: it depends
    #: (a motion blur along an axis is, along a diagonal it is not)
    separable: bool | None = None

    def usage(self) -> str:
        """The spec syntax, e.g. ``gaussian:sigma=S[,size=N]`` or ``box[:size=N]``."""
        required = ",".join(f"{p.name}={p.metavar}" for p in self.params if p.required)
        optional = ",".join(f"{p.name}={p.metavar}" for p in self.params if not p.required)
        if required:
            return f"{self.name}:{required}" + (f"[,{optional}]" if optional else "")
        return f"{self.name}[:{optional}]" if optional else self.name

    def ranks(self) -> str:
        """The ranks it exists in, in words."""
        if self.max_rank == self.min_rank:
            return f"{self.min_rank}-D"
        if self.max_rank is None:
            return "any rank" if self.min_rank == 1 else f"{self.min_rank}-D or more"
        return f"{self.min_rank}-D to {self.max_rank}-D"

    def fits(self, ndim: int) -> bool:
        """Whether the kernel exists at rank ``ndim``."""
        return ndim >= self.min_rank and (self.max_rank is None or ndim <= self.max_rank)


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(
            "gaussian",
            gaussian,
            "Gaussian blur summing to 1; size 2*ceil(3*sigma)+1 unless given",
            (Param("sigma", float, "S", required=True), Param("size", int, "N")),
            taps=gaussian_taps,
            separable=True,
        ),
        Builtin(
            "box",
            box,
            "moving average of N taps per dim (default 3), summing to 1",
            (Param("size", int, "N"),),
            taps=lambda size=3: _at_least_one("size", size),
            separable=True,
        ),
        Builtin(
            "sobel-x",
            functools.partial(sobel, -1),
            "Sobel edges, positive where values rise to the right",
            min_rank=2,
            separable=True,
        ),
        Builtin(
            "sobel-y",
            functools.partial(sobel, -2),
            "Sobel edges, positive where values rise downwards",
            min_rank=2,
            separable=True,
        ),
        Builtin(
            "laplacian",
            laplacian,
            "discrete Laplacian: centre -2*ndim, nearest neighbours 1",
            separable=False,
        ),
        Builtin(
            "sharpen",
            sharpen,
            "identity minus the Laplacian (2-D: centre 5, neighbours -1)",
            separable=False,
        ),
        Builtin(
            "identity",
            identity,
            "unit impulse: mode 'same' returns the input",
            (Param("size", int, "N"),),
            taps=lambda size=1: _at_least_one("size", size),
            separable=True,
        ),
        Builtin(
            "motion",
            motion,
            "motion blur along a line of LENGTH (9) pixels at ANGLE (0) degrees",
            (Param("length", int, "LENGTH"), Param("angle", float, "ANGLE")),
            min_rank=2,
            max_rank=2,
            taps=motion_taps,
        ),
    )
}

#: The parameter every built-in accepts on top of its own: the kernel's rank.
NDIM = Param("ndim", int, "D")


@dataclass(frozen=True)
class KernelSpec:
    """A parsed ``--kernel NAME[:ARGS]``; :meth:`build` makes the array for a given rank."""

    text: str
    builtin: Builtin
    args: dict[str, float | int] = field(default_factory=dict)
    ndim: int | None = None

    def shape(self, ndim: int) -> tuple[int, ...]:
        """The shape :meth:`build` would give at ``ndim``, from the parameters alone."""
        return (self.builtin.taps(**self.args),) * (self.ndim or ndim)

    def build(self, ndim: int) -> np.ndarray:
        """The kernel at the rank the spec fixed (``ndim=``), else at ``ndim``."""
        rank = self.ndim or ndim
        if not self.builtin.fits(rank):
            raise ValueError(f"{self.builtin.name} is {self.builtin.ranks()}; asked for {rank}-D")
        return self.builtin.build(ndim=rank, **self.args)


def _suggest(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _value(p: Param, raw: str, name: str) -> float | int:
    try:
        if p.type is int:
            as_float = float(raw)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        return float(raw)
    except ValueError:
        kind = "an integer" if p.type is int else "a number"
        raise ValueError(f"{name}: {p.name} must be {kind}; got {raw!r}") from None


def parse(text: str) -> KernelSpec:
    """Parse a built-in kernel spec such as ``gaussian:sigma=2`` or ``box:5``.

    ``NAME`` alone, or ``NAME:ARGS`` with comma-separated ``key=value`` pairs, or leading bare
    values taken in the order of the parameters (``box:5`` is ``box:size=5``). Every kernel
    also takes ``ndim=D``. Errors name the closest known kernel or parameter.

    Parameters
    ----------
    text : str
        The spec as the user wrote it.

    Returns
    -------
    KernelSpec
        Validated: building it fails only at a rank the kernel does not exist in.

    Raises
    ------
    ValueError
        Unknown kernel or parameter (with a suggestion), a bad value (not a number, out of
        range, infinite), a missing parameter. Nothing is built: a valid spec may still be too
        large to build, which :meth:`KernelSpec.shape` tells first.

    Examples
    --------
    >>> from trueconv.cli.kernels import parse
    >>> parse("box:5").build(ndim=1)
    array([0.2, 0.2, 0.2, 0.2, 0.2])
    >>> parse("gausian:sigma=2")
    Traceback (most recent call last):
        ...
    ValueError: unknown kernel 'gausian'; did you mean 'gaussian'? (trueconv kernels lists them)
    """
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    builtin = BUILTINS.get(name)
    if builtin is None:
        hint = _suggest(name, list(BUILTINS))
        raise ValueError(f"unknown kernel {name!r}{hint} (trueconv kernels lists them)")
    params = {p.name: p for p in (*builtin.params, NDIM)}
    args: dict[str, float | int] = {}
    keywords_seen = False
    for i, item in enumerate(s.strip() for s in rest.split(",")) if rest.strip() else ():
        key, eq, raw = item.partition("=")
        if eq:
            keywords_seen = True
            key = key.strip().lower()
            if key not in params:
                hint = _suggest(key, list(params))
                raise ValueError(
                    f"{name}: unknown parameter {key!r}{hint} (parameters: {', '.join(params)})"
                )
            p = params[key]
        elif keywords_seen or i >= len(builtin.params):
            raise ValueError(
                f"{name}: unexpected value {item!r}; write key=value "
                f"(parameters: {', '.join(params)})"
            )
        else:
            p, raw = builtin.params[i], key
        if p.name in args:
            raise ValueError(f"{name}: {p.name} given twice")
        args[p.name] = _value(p, raw.strip(), name)
    for p in builtin.params:
        if p.required and p.name not in args:
            raise ValueError(f"{name} needs {p.name}: {builtin.usage()}")
    ndim = int(args.pop("ndim")) if "ndim" in args else None
    if ndim is not None and not builtin.fits(ndim):
        raise ValueError(f"{name} is {builtin.ranks()}; got ndim={ndim}")
    try:
        builtin.taps(**args)  # checks the values; builds nothing (box:1e10 is 80 GB)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return KernelSpec(text, builtin, args, ndim)


def is_inline(text: str) -> bool:
    """Whether ``--kernel`` text is an inline array (``1,2,1``, ``[[0,-1,0],...]``): it starts
    as a number or a bracket does, and no built-in name does."""
    head = text.strip()[:1]
    return bool(head) and (head.isdigit() or head in "[-+.")


def parse_inline(text: str) -> np.ndarray:
    """The kernel written in ``text``: comma-separated numbers (1-D, ``1,2,1``) or nested
    JSON lists (``[[0,-1,0],[-1,4,-1],[0,-1,0]]``), as float64.

    Read with :func:`json.loads` (never evaluated): rectangular, finite numbers only.

    Raises
    ------
    ValueError
        Text that is not such an array, ragged rows, non-finite or non-numeric entries.

    Examples
    --------
    >>> from trueconv.cli.kernels import parse_inline
    >>> parse_inline("1,2,1")
    array([1., 2., 1.])
    >>> parse_inline("[[0, 1], [2, 3]]").shape
    (2, 2)
    """
    body = text.strip()
    if not body.startswith("["):
        body = f"[{body}]"

    def refuse(token: str) -> None:
        raise ValueError(f"inline kernel {text!r}: {token} is not a finite number")

    try:
        data = json.loads(body, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"inline kernel {text!r} is not numbers like 1,2,1 or [[0,-1,0],[-1,4,-1],[0,-1,0]] "
            f"({exc.msg} at character {exc.pos})"
        ) from None
    try:
        arr = np.array(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"inline kernel {text!r}: rows must have equal lengths and hold numbers only"
        ) from None
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"inline kernel {text!r} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"inline kernel {text!r}: entries must be finite")
    return arr


# -- `trueconv kernels` -------------------------------------------------------------------------


def describe() -> str:
    """The text of ``trueconv kernels``: one line per built-in, then the kernel files."""
    rows = [(b.usage(), b.ranks(), b.summary) for b in BUILTINS.values()]
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = ["Built-in kernels for `trueconv apply --kernel SPEC`:"]
    lines += [f"  {u.ljust(w0)}  {r.ljust(w1)}  {s}" for u, r, s in rows]
    lines += [
        "",
        "Values may be given in order (box:5) or as key=value; every kernel also takes ndim=D",
        "(default: the input's rank, i.e. 1 for audio, 2 for an image, 3 for a TIFF stack).",
        "A kernel may also be a file: .npy/.npz (used as is), an image (greyscale, scaled to",
        "sum 1) or an impulse-response audio file (one channel, or one per input channel);",
        "or inline numbers: -k 1,2,1 (1-D) or -k '[[0,-1,0],[-1,4,-1],[0,-1,0]]' (JSON lists).",
    ]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernels", help="list the built-in kernels of `trueconv apply`")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    print(describe())
    return 0
