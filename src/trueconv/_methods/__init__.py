"""The convolution methods: one module each, all solving the same canonical problem.

Canonical problem (:class:`trueconv._problem.Problem`): operands ``a`` of shape
``(*batch_a, *A)`` and ``b`` of shape ``(*batch_b, *B)``, the last ``nd`` dims convolved, batch
dims broadcastable. ``pads[i] = (before, after)`` zero-pads ``a`` implicitly. The result is the
*valid* convolution of the padded ``a`` with ``b``: shape ``(*broadcast(batch_a, batch_b),
*(A + before + after - B + 1))``.

Each method module is a :class:`trueconv._problem.Method`: ``EXACT`` (integers computed
exactly), ``compute_dtype(dtype)`` and ``plan(problem, device, forced)``, whose plan holds
every decision and its operation counts and runs as ``plan.run(a, b)``.
"""

from trueconv._methods import direct, fft, overlap_add
from trueconv._problem import Method

REGISTRY: dict[str, Method] = {"direct": direct, "fft": fft, "overlap_add": overlap_add}

__all__ = ["REGISTRY"]
