"""NaN and ±Inf where the direct sum puts them, whatever the method.

The result of every method is defined by the direct sum ``y[j] = sum_m a[m] · b[j - m]`` over
the ``m`` where both operands are defined: samples of the implicit zero padding (``'full'`` and
``'same'`` with zero fill) are not terms, as in ``numpy.convolve`` and the direct method's
shift-and-add; an explicit boundary extension makes its samples real terms. A transform (FFT,
overlap-add) instead mixes every sample of a block into every output of it, so one NaN or Inf
would spoil the whole output (the FFT) or its blocks (overlap-add), and how far it spreads
would depend on the method, the block length and, for :mod:`trueconv.dask`, the chunks.

The rule, for real dtypes. IEEE arithmetic makes a term ``x · k``

* NaN if ``x`` or ``k`` is NaN, or one is ±Inf and the other zero;
* ±Inf if one is ±Inf and the other non-zero and not NaN, with the sign of the product;
* finite otherwise.

A sum is NaN if a term is NaN or a +Inf term meets a −Inf one; otherwise ±Inf if a term is;
otherwise finite (finite terms may still overflow to ±Inf, in every method alike). No order of
the additions changes this, so every summation order (numpy's, scipy's, ours) agrees.

How it is computed (:func:`run`). A term of ``y[j]`` with a non-finite factor is never finite,
so the outputs whose terms are all finite are exactly those that no non-finite sample reaches:
the method runs on the operands with their non-finite samples set to zero, which changes no
term of those outputs. The others are found by counting terms: for 0/1 indicators ``u`` of
``a`` and ``v`` of ``b``, ``(u ⊛ v)[j]`` is the number of terms of ``y[j]`` whose factors have
both properties. Convolving the indicators with the same ``pads`` counts only the defined
terms (the padding is zero in ``u`` as well). With per-operand indicators ``N``
(NaN), ``I`` (±Inf), ``S`` (the infinity's sign: +1, −1 or 0), ``Z`` (zero), ``P``/``M``
(positive/negative, infinities included) and ``1`` (present, ones over the operand):

* NaN terms: ``N_a ⊛ 1_b + 1_a ⊛ N_b + I_a ⊛ Z_b + Z_a ⊛ I_b``;
* ±Inf terms with an infinite ``a`` factor: ``T = I_a ⊛ (P_b + M_b)`` counts them and
  ``D = S_a ⊛ (P_b − M_b)`` counts the +Inf ones minus the −Inf ones, so there are
  ``(T + D) / 2`` +Inf and ``(T − D) / 2`` −Inf terms (two convolutions where pairing the
  signs takes four); likewise with the roles of ``a`` and ``b`` exchanged. A term with two
  infinite factors is counted twice, which is harmless: only whether a count is zero matters.

Only the pairs that can be non-zero are counted (a finite kernel has no ``I``: its terms are
skipped), one at a time, so at most two indicators and two counts exist at once. A pair with
``1`` (or ``P_b + M_b`` and ``P_b − M_b`` when they are ``1`` or ``−1`` everywhere, as for a
kernel with no zero, of one sign) is a sum over a box, separable: cumulative sums along each
dim give it exactly in int64 at a few passes' cost (:meth:`_Counts._box`), so NaN alone (the
common case: missing samples) and complex operands need no second run of the method. The
other pairs run the method on float64 indicators: their counts are integers, and the method's
rounding error stays far below ``1/2``, so thresholds at ``1/2`` recover them exactly.

Complex dtypes: each component of one factor multiplies both components of the other, so a
term with a non-finite factor is non-finite whatever the other factor (``Inf · 0`` is NaN), and
a sum with a non-finite term is non-finite. The non-finite outputs are therefore
``NF_a ⊛ 1_b + 1_a ⊛ NF_b > 0`` (``NF``: either component NaN or ±Inf), exactly placed; their
value is complex NaN, where the direct sum's may be NaN or Inf per component.

Checks on the data need the data: meta tensors have none, and while ``torch.compile``,
``torch.jit.trace`` or a ``torch.func`` transform records a call, an inspection would be
refused or would bake one call's data into the recording (:func:`checkable`). There the
transforms run unguarded and spread non-finite values over what they transform together, as
``scipy.signal.fftconvolve`` (the whole output) and ``oaconvolve`` (blocks) do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from trueconv.core.torch_internals import functorch_active, functorch_wrapped

Pads = Sequence[tuple[int, int]]
#: A planned method: the valid convolution of its operands, padded by the plan's pads.
Run = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def checkable(*tensors: torch.Tensor) -> bool:
    """Whether the values of ``tensors`` may be inspected (see the module docstring)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or functorch_active():
        return False
    # is_meta, not device.type: an attribute read against a device object made (0.05 against
    # 0.29 us a tensor, asked on every call of 'auto')
    return not any(t.is_meta or functorch_wrapped(t) for t in tensors)


def all_finite(*tensors: torch.Tensor) -> bool:
    """Whether every element of every one of ``tensors`` is finite, in one reduction each and
    one read of the result when they are.

    A NaN or ±Inf element makes a sum NaN or ±Inf in every order of summation, so a finite
    sum of the tensors' sums proves every element finite; this costs one read of each tensor
    and no temporary (``isfinite(t).all()`` writes a mask first and is ~30x slower on the CPU:
    3 ms against 0.1 ms for 1024² float32, one thread), and one host read of a device's
    result however many tensors are checked (on a GPU each read waits for the device). A
    non-finite sum may also be the overflow of finite elements: then each tensor is checked
    on its own, and the extremes decide (NaN propagates through ``aminmax``, which does not
    overflow).
    """
    total = None
    for t in tensors:
        s = t.detach().sum()
        total = s if total is None else total + s
    if total is None or bool(torch.isfinite(total)):
        return True
    if len(tensors) > 1:
        return all(all_finite(t) for t in tensors)
    t = tensors[0].detach()
    if t.is_complex():
        return bool(torch.isfinite(t).all())
    return all(bool(torch.isfinite(v)) for v in torch.aminmax(t))


def run(method: Run, a: torch.Tensor, b: torch.Tensor, pads: Pads) -> torch.Tensor:
    """``method(a, b)`` (a plan run, padding by ``pads``) with NaN and ±Inf placed as the
    direct sum places them.

    The operands must be :func:`checkable` and of a floating or complex dtype. When both are
    finite this is ``method(a, b)`` after one reduction per operand. Otherwise the method
    runs on the finite part, and the non-finite outputs are found by counting terms (module
    docstring). Gradients of the finite outputs are those of the finite part; the non-finite
    outputs are constants.
    """
    if all_finite(a, b):
        return method(a, b)
    fin_a, fin_b = all_finite(a), all_finite(b)
    y = method(_finite_part(a, fin_a), _finite_part(b, fin_b))
    with torch.no_grad():
        counts = _Counts(method, a.detach(), b.detach(), pads)
        if y.is_complex():
            return torch.where(counts.nonfinite(), complex(_NAN, _NAN), y)
        nan, plus, minus = counts.real()
    if plus is not None:
        y = torch.where(plus, _INF, y)
    if minus is not None:
        y = torch.where(minus, -_INF, y)
    return y if nan is None else torch.where(nan, _NAN, y)


_NAN = float("nan")
_INF = float("inf")


def _finite_part(t: torch.Tensor, finite: bool) -> torch.Tensor:
    return t if finite else torch.where(torch.isfinite(t), t, 0)


def _window_sums(t: torch.Tensor, d: int, start: int, window: int, length: int) -> torch.Tensor:
    """``y[j] = sum(t[j + start : j + start + window])`` along dim ``d`` for ``j < length``,
    samples outside ``t`` counting zero.

    Only the stretch of ``t`` between its first and last non-zero index along ``d`` is summed
    (non-finite samples are usually few, so after the first dim little is left), by the
    differences of one cumulative sum along the last dim (along another, ``cumsum`` is several
    times slower); the outputs it cannot reach stay zero.
    """
    size = t.shape[d]
    out = t.new_zeros((*t.shape[:d], length, *t.shape[d + 1 :]))
    hit = torch.ne(t, 0).movedim(d, 0).reshape(size, -1).any(1).nonzero()
    if hit.numel() == 0:
        return out
    first, last = int(hit[0]), int(hit[-1])
    # outputs whose window meets [first, last]
    j0, j1 = max(0, first - start - window + 1), min(length, last - start + 1)
    if j1 <= j0:
        return out
    t = t.narrow(d, first, last - first + 1).movedim(d, -1)
    lo = j0 + start - first  # the window of output j0, in the narrowed t
    hi = lo + (j1 - j0) + window - 1
    a0, a1 = max(lo, 0), min(hi, t.shape[-1])
    rows = tuple(t.shape[:-1])
    parts = [t.new_zeros((*rows, 1 + a0 - lo)), t[..., a0:a1], t.new_zeros((*rows, hi - a1))]
    cum = torch.cat(parts, -1).cumsum(-1)
    out.narrow(d, j0, j1 - j0).copy_((cum[..., window:] - cum[..., :-window]).movedim(-1, d))
    return out


def _or(acc: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    return mask if acc is None else acc | mask


class _Counts:
    """Term counts of one problem from indicator pairs (see the module docstring).

    In :meth:`count`, an indicator ``None`` stands for ``1``, every sample of its operand.
    """

    def __init__(self, method: Run, a: torch.Tensor, b: torch.Tensor, pads: Pads) -> None:
        self.method, self.a, self.b, self.pads = method, a, b, pads

    def count(self, u: torch.Tensor | None, v: torch.Tensor | None) -> torch.Tensor:
        """Per output, the number of terms whose ``a`` factor has ``u`` and ``b`` factor
        ``v``."""
        if v is None:
            assert u is not None
            return self._box(u, self.b, u_is_a=True)
        if u is None:
            return self._box(v, self.a, u_is_a=False)
        return self.method(u.to(torch.float64), v.to(torch.float64))

    def _pair(self, u: torch.Tensor, v: torch.Tensor | None, u_is_a: bool) -> torch.Tensor:
        """:meth:`count` with ``u`` the indicator of ``a`` (``u_is_a``) or of ``b``."""
        return self.count(u, v) if u_is_a else self.count(v, u)

    def _box(self, u: torch.Tensor, other: torch.Tensor, u_is_a: bool) -> torch.Tensor:
        """``u ⊛ 1_b`` (``u_is_a``) or ``1_a ⊛ u``: the box of ones is separable, so one
        window sum per convolved dim (:func:`_window_sums`), exact in integers.

        Along one dim, with ``before`` padding samples, the valid convolution
        ``y[j] = sum_t apad[j + k - 1 - t] · b[t]`` of an ``a`` of length ``n`` and a ``b`` of
        length ``k`` sums the ``k`` samples of ``u`` from ``j - before`` when ``b`` is the box,
        and the ``n`` samples of ``u`` from ``j + k - before - n`` when ``a`` is.
        """
        nd = len(self.pads)
        lead = u.ndim - nd
        y = u.to(torch.int64)  # (torch's int64 cumsum is faster than its int32 one)
        for i, (before, after) in enumerate(self.pads):
            d = lead + i
            size, length = y.shape[d], other.shape[d]
            n, k = (size, length) if u_is_a else (length, size)
            start, window = (-before, k) if u_is_a else (k - before - n, n)
            y = _window_sums(y, d, start, window, n + before + after - k + 1)
        return y

    def nonfinite(self) -> torch.Tensor:
        """Complex operands: the outputs with a non-finite term."""
        bad_a, bad_b = ~torch.isfinite(self.a), ~torch.isfinite(self.b)
        count = None
        if bool(bad_a.any()):
            count = self.count(bad_a, None)
        if bool(bad_b.any()):
            more = self.count(None, bad_b)
            count = more if count is None else count + more
        assert count is not None, "run() counts only when an operand is non-finite"
        return count > 0.5

    def real(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Real operands: masks of the NaN, +Inf and −Inf outputs (``None``: none)."""
        a, b = self.a, self.b
        nan: torch.Tensor | None = None
        plus: torch.Tensor | None = None
        minus: torch.Tensor | None = None
        # NaN factors: NaN whatever the other factor
        if bool((nan_a := torch.isnan(a)).any()):
            nan = _or(nan, self.count(nan_a, None) > 0.5)
        del nan_a
        if bool((nan_b := torch.isnan(b)).any()):
            nan = _or(nan, self.count(None, nan_b) > 0.5)
        del nan_b
        # infinite factors: NaN against a zero, else infinities of the product's sign
        for inf_in_a in (True, False):
            t, other = (a, b) if inf_in_a else (b, a)
            inf = torch.isinf(t)
            if not bool(inf.any()):
                continue
            zero = other == 0
            if bool(zero.any()):
                nan = _or(nan, self._pair(inf, zero, inf_in_a) > 0.5)
            nonzero = ~zero & ~torch.isnan(other)
            del zero
            # T: the infinite terms
            count = self._pair(inf, None if bool(nonzero.all()) else nonzero, inf_in_a)
            del inf, nonzero
            # D: the +Inf terms minus the -Inf terms
            sign = (t == _INF).to(torch.int8) - (t == -_INF).to(torch.int8)
            other_sign = (other > 0).to(torch.int8) - (other < 0).to(torch.int8)
            if bool((other_sign == 1).all()):
                diff = self._pair(sign, None, inf_in_a)
            elif bool((other_sign == -1).all()):
                diff = -self._pair(sign, None, inf_in_a)
            else:
                diff = self._pair(sign, other_sign, inf_in_a)
            del sign, other_sign
            plus = _or(plus, count + diff > 1)  # T + D: twice the +Inf terms, an even integer
            minus = _or(minus, count - diff > 1)
            del count, diff
        if plus is not None and minus is not None:
            nan = _or(nan, plus & minus)  # +Inf meets -Inf
        return nan, plus, minus
