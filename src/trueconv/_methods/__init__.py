"""The convolution methods: one module each, all solving the same canonical problem.

Canonical problem (see :mod:`trueconv._spec`): operands ``a`` of shape ``(*batch_a, *A)`` and
``b`` of shape ``(*batch_b, *B)``, the last ``nd`` dims convolved, batch dims broadcastable.
``pads[i] = (before, after)`` zero-pads ``a`` implicitly. The result is the *valid* convolution
of the padded ``a`` with ``b``: shape ``(*broadcast(batch_a, batch_b), *(A + before + after -
B + 1))``.

Each method module exposes ``compute_dtype(dtype)`` (the dtype it runs in for a result dtype)
and ``run(a, b, pads)``.
"""

from trueconv._methods import direct, fft, overlap_add

REGISTRY = {"direct": direct, "fft": fft, "overlap_add": overlap_add}

__all__ = ["REGISTRY"]
