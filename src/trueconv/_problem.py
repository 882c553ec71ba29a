"""The canonical problem every signal method solves, and what planning one gives.

:class:`Problem` is worked out once per spec (:meth:`Problem.of`): the *valid* convolution of a
signal-role operand ``a`` of shape ``(*batch_a, *sa)``, zero-padded implicitly by ``pads``,
with a kernel-role operand ``b`` of shape ``(*batch_b, *sb)``, the last ``len(sa)`` dims
convolved and the batch dims broadcast. ``'full'`` and ``'same'`` are padding, ``'valid'`` with
a larger kernel is a swap of the roles (convolution commutes), and a non-zero boundary is an
explicit extension of ``a`` (:class:`Extension`): the problem's lengths are those of the
extended signal, and its pads zero. A plan whose ``extends`` is true takes the signal
unextended and applies the extension itself (the direct method's compiled loop reads the
edges through index maps, or the fill value, instead of building the extended array);
:func:`trueconv._plan.run` extends it for the others.

A method turns a problem into a :class:`Plan` (or declines it: :class:`Method`). The plan holds
every decision the run needs — the variant, transform lengths, blocks, boxes — and the
operation counts the cost model prices, so it is priced once and run as planned: nothing is
derived twice. A plan may run other plans as its passes (overlap-add with no dim worth blocking
runs the FFT method's plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from trueconv._spec import ConvSpec
from trueconv.core import cost
from trueconv.core.boundary import extend
from trueconv.core.cost import Counts
from trueconv.core.static import register

Pads = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Extension:
    """How the signal role is extended beyond its edges before the valid convolution: by
    ``pads`` (per convolved dim, the last ``len(pads)`` dims) under the canonical boundary
    ``rule``, ``'fill'`` with ``fill``."""

    rule: str
    pads: Pads
    fill: bool | int | float | complex = 0

    def apply(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` extended (a new tensor; :func:`trueconv.core.boundary.extend`)."""
        nd = len(self.pads)
        return extend(a, tuple(range(a.ndim - nd, a.ndim)), self.pads, self.rule, self.fill)


@dataclass(frozen=True)
class Problem:
    """One call in the terms of the methods (from shapes and the dtype alone)."""

    sa: tuple[int, ...]  # signal-role lengths along the convolved dims, as the method gets them
    sb: tuple[int, ...]  # kernel-role lengths
    pads: Pads  # implicit zero padding of the signal role, per convolved dim
    out: tuple[int, ...]  # output lengths along the convolved dims
    batch_a: int  # signals (product of the signal role's batch dims)
    batch_b: int  # kernels
    batch: int  # outputs (the broadcast batch)
    dtype: torch.dtype  # the result dtype
    #: the explicit extension that makes the signal role (``sa`` counts it), or None
    extension: Extension | None = None

    @classmethod
    def of(cls, spec: ConvSpec) -> Problem:
        """The problem of a (non-empty) spec."""
        xb = math.prod(s for d, s in enumerate(spec.x_shape) if d not in spec.dims)
        kb = math.prod(s for d, s in enumerate(spec.k_shape) if d not in spec.dims)
        pads = spec.method_pads
        extension = None
        if spec.swap:
            sa, sb, batch_a, batch_b = spec.k, spec.n, kb, xb
        elif spec.extend_explicitly:  # the method gets the extended input, unpadded
            sa = tuple(n + bf + af for n, (bf, af) in zip(spec.n, spec.pads))
            sb, batch_a, batch_b = spec.k, xb, kb
            extension = Extension(spec.boundary, spec.pads, spec.fill_value)
        else:
            sa, sb, batch_a, batch_b = spec.n, spec.k, xb, kb
        out = tuple(spec.out_shape[d] for d in spec.dims)
        batch = math.prod(spec.batch_shape)
        return cls(sa, sb, pads, out, batch_a, batch_b, batch, spec.dtype, extension)

    @property
    def taps(self) -> int:
        """Kernel-role samples."""
        return math.prod(self.sb)

    @property
    def out_elems(self) -> int:
        """Output samples, batch included."""
        return self.batch * math.prod(self.out)

    @property
    def memory(self) -> float:
        """Its :attr:`trueconv.core.cost.Counts.memory`: the signal role's and the output's
        samples where they spill out of the cache (:func:`trueconv.core.cost.memory`; at
        least 4 bytes a sample: integers and half precision compute wider)."""
        size = max(4, self.dtype.itemsize)
        return cost.memory(self.batch_a * math.prod(self.sa), self.out_elems, size)

    @property
    def real(self) -> bool:
        """Whether transforms of it are real (half-spectrum) ones."""
        return not self.dtype.is_complex


class Plan(Protocol):
    """What a method will do for one problem; made by :meth:`Method.plan`, run as made."""

    @property
    def method(self) -> str:
        """The registry name of the method that planned it."""
        ...

    @property
    def problem(self) -> Problem: ...

    @property
    def counts(self) -> Counts:
        """What the cost model prices (:func:`trueconv.core.cost.predict`)."""
        ...

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the operands are computed in."""
        ...

    @property
    def places_nonfinite(self) -> bool:
        """Whether NaN and ±Inf land where the direct sum puts them without help
        (:mod:`trueconv._nonfinite`)."""
        ...

    @property
    def extends(self) -> bool:
        """Whether :meth:`run` takes the signal unextended and applies the problem's
        :class:`Extension` itself (false where the problem has none). A plan that does and
        does not place NaN and ±Inf itself also takes the signal extended, told apart by its
        shape: the guard (:func:`trueconv._plan.run`) counts terms on the extended signal."""
        ...

    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The valid convolution of ``a`` (extended as the problem says where the plan
        :attr:`extends`, then padded by the problem's pads) with ``b``."""
        ...

    def __hash__(self) -> int:
        """Plans are frozen, so caches of what follows from a plan key on it."""
        ...


class Method(Protocol):
    """A convolution method: one module of :mod:`trueconv._methods`."""

    #: computes integer problems exactly (in integers), so ``'auto'`` may pick it for them
    EXACT: bool

    def compute_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype it computes a result of ``dtype`` in."""
        ...

    def plan(self, problem: Problem, device: torch.device, forced: bool = False) -> Plan | None:
        """The plan for ``problem`` on ``device``; ``None`` where the method does not apply
        (``forced``: the user asked for this method, so it must plan something)."""
        ...


register(Problem, Extension)  # rebuilt from plain tuples under torch.compile
