"""The accepted names of every choice, written once.

The ``Literal`` types, the tuples of accepted values and the error messages all come from the
definitions below, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["full", "same", "valid"]
Method = Literal["auto", "direct", "fft", "overlap_add"]
Boundary = Literal["fill", "wrap", "symmetric", "reflect", "replicate"]
BoundaryAlias = Literal["constant", "zeros", "circular", "symm", "edge"]

MODES: tuple[str, ...] = get_args(Mode)
METHODS: tuple[str, ...] = get_args(Method)
BOUNDARIES: tuple[str, ...] = get_args(Boundary)

#: Other spellings users bring from numpy, scipy and torch, mapped to the canonical name.
#: ndimage's ``mirror``/``nearest``/``reflect`` are deliberately absent: ndimage's ``reflect``
#: is our ``symmetric``, so accepting its names would make ``'reflect'`` ambiguous.
BOUNDARY_ALIASES: dict[str, str] = {
    "constant": "fill",  # numpy.pad
    "zeros": "fill",  # torch padding_mode
    "circular": "wrap",  # torch padding_mode
    "symm": "symmetric",  # scipy.signal.convolve2d
    "edge": "replicate",  # numpy.pad
}
assert set(BOUNDARY_ALIASES) == set(get_args(BoundaryAlias))
assert set(BOUNDARY_ALIASES.values()) <= set(BOUNDARIES)


def choices(values: tuple[str, ...]) -> str:
    """Format accepted values for an error message: ``'a', 'b', 'c'``."""
    return ", ".join(repr(v) for v in values)
