"""Compile the CPU loops ahead of their first call (:func:`compile_loops`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trueconv._methods import rows, rows_separable
from trueconv.signal import convolve, convolve_separable

__all__ = ["compile_loops"]

#: What :func:`compile_loops` compiles when no dtypes are named: the dtypes most calls compute in.
DEFAULT_DTYPES = ("float32", "float64")

#: The dtypes the compiled loops compute in, by name (``rows.DTYPES``; the fused separable
#: loop takes the floating ones): inputs of other dtypes are computed in one of these.
LOOP_DTYPES = {str(d).removeprefix("torch."): d for d in rows.DTYPES}


def compile_loops(
    dtypes: Sequence[str | torch.dtype] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Compile trueconv's CPU loops for ``dtypes`` now, instead of at their first call.

    The direct method's loop over output rows and the fused separable loop are compiled by
    numba (the ``fast`` extra) the first time a process calls them with a dtype, and kept on
    disk: later processes load them in milliseconds. A first compile takes about a minute per
    dtype and loop on a 2-core machine (the direct loop 59-66 s for float32, the fused loop
    about as long: 2026-12-06). Call this once where that wait should not fall on a user's
    first call: in a container's build, a deployment, a notebook's first cell. One process
    at a time: numba reads, updates and writes back its cache index at each compile, so two
    processes compiling one loop at once can each drop the other's entry.

    Parameters
    ----------
    dtypes : sequence of str or torch.dtype, optional
        The compute dtypes: ``'float32'``, ``'float64'``, ``'complex64'``, ``'complex128'``,
        ``'int64'`` (integer and bool inputs compute in int64, half precision in float32).
        Default: ``('float32', 'float64')``.
    progress : callable, optional
        Called with one line per dtype as it is done.

    Returns
    -------
    dict of str to float
        Seconds each dtype took (loaded from numba's cache: milliseconds); empty where numba
        is not installed (``pip install "trueconv[fast]"``) or its loops are off, as the
        direct method then adds one scaled copy per tap and compiles nothing.

    Raises
    ------
    ValueError
        A dtype the loops do not compute in.
    TypeError
        ``dtypes`` is not a sequence of dtypes or dtype names.

    Examples
    --------
    >>> import trueconv
    >>> seconds = trueconv.compile_loops(["float32"])
    >>> sorted(seconds) in (["float32"], [])   # [] without numba
    True
    """
    names = _names(dtypes)
    if not rows.AVAILABLE:
        return {}
    done: dict[str, float] = {}
    for name in names:
        dtype = LOOP_DTYPES[name]
        start = time.perf_counter()
        x = torch.ones(8, 8, dtype=dtype)
        convolve(x, torch.ones(3, 3, dtype=dtype), "same", method="direct")
        if dtype in rows_separable.DTYPES:
            f = torch.ones(3, dtype=dtype)
            convolve_separable(x, [f, f], "same", method="direct")
        if not rows.AVAILABLE:  # numba installed but failed to load (the call warned)
            return {}
        done[name] = time.perf_counter() - start
        if progress is not None:
            progress(f"{name}: ready in {done[name]:.1f} s")
    return done


def _names(dtypes: Any) -> tuple[str, ...]:
    if dtypes is None:
        return DEFAULT_DTYPES
    if isinstance(dtypes, (str, torch.dtype)) or not isinstance(dtypes, Sequence):
        raise TypeError(
            "compile_loops(): dtypes must be a sequence of dtypes or dtype names, e.g. "
            f"['float32', 'float64']; got {dtypes!r} of type {type(dtypes).__name__}."
        )
    names = []
    for d in dtypes:
        name = str(d).removeprefix("torch.") if isinstance(d, torch.dtype) else d
        if not isinstance(name, str) or name not in LOOP_DTYPES:
            raise ValueError(
                f"compile_loops(): dtypes may hold {', '.join(sorted(LOOP_DTYPES))}; got {d!r}."
            )
        if name not in names:
            names.append(name)
    return tuple(names)
