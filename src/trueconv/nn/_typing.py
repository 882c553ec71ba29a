"""The accepted names of every NN-API choice, written once (as :mod:`trueconv._typing`).

``padding_mode`` speaks torch's language (``'zeros'``, ``'circular'``) plus ``'symmetric'``;
each name maps onto one boundary rule of the signal API through the shared alias table, so the
NN API extends its input with exactly the same code.
"""

from __future__ import annotations

from typing import Literal, get_args

from trueconv.core.names import BOUNDARIES, BOUNDARY_ALIASES

PaddingMode = Literal["zeros", "reflect", "replicate", "circular", "symmetric"]
PaddingString = Literal["valid", "same", "full", "SAME", "VALID"]
#: TensorFlow's spellings, with TensorFlow's semantics for every stride (also transposed)
TFPadding = Literal["SAME", "VALID"]
NNMethod = Literal["auto", "direct", "fft"]

PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)
PADDING_STRINGS: tuple[str, ...] = get_args(PaddingString)
TF_PADDINGS: tuple[str, ...] = get_args(TFPadding)
NN_METHODS: tuple[str, ...] = get_args(NNMethod)

#: ``padding_mode`` -> canonical boundary rule of :mod:`trueconv.core.boundary`.
PADDING_MODE_BOUNDARY: dict[str, str] = {
    mode: BOUNDARY_ALIASES.get(mode, mode) for mode in PADDING_MODES
}
assert set(PADDING_MODE_BOUNDARY.values()) <= set(BOUNDARIES)
