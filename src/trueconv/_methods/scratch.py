"""Memory one thread keeps from call to call for intermediate results (issue 14).

A plan whose steps hand each other a full-size array (the separable plan of a 3-D kernel: the
fused loop's result over the last two dims, then a pass along the first; the passes of an
integer or complex kernel; an operand converted to the compute dtype) frees that array at the
end of the call, and its caller frees the output a moment later. glibc returns the free
top of its heap to the OS once it exceeds the trim threshold (twice the mmap threshold as glibc
adjusts it: 16 MB once an 8 MB block was freed) and maps blocks above the mmap threshold (at
most 32 MB) afresh, so the next call faults both arrays in again, the kernel zeroing every
page. Measured (2026-12-05, 2 threads, ``benchmarks/sep3d_scratch.py``): 128³ float32 ⊛ 3×3×3
Gaussian by the separable plan 4.3 ms a call with 966 page faults, where the dense loop (one
output, no intermediate) took 1.8 ms with 32; ``benchmarks/malloc_env.py`` shows the same
mechanism on the transforms' spectra, which torch allocates itself.

The remedy here is the smallest that measured: such an array goes to memory the thread keeps
(:func:`array`, between :func:`take` and :func:`give_back`), one array per slot (``'pass'``: a
separable plan's intermediate, the fused loop's result or, through :func:`redirect`, the direct
loop's; ``'input'``: an operand converted to the compute dtype, :func:`converted`), at most
:data:`SCRATCH_BYTES` a slot; the memory goes when the thread ends. glibc's thresholds are left
alone (they are the process's, not a library's to set). Nothing autograd may keep past the call
goes there (:func:`recorded`), and a result found there is copied out (:func:`holds`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from trueconv import _nonfinite
from trueconv._methods import rows
from trueconv.core.torch_internals import forward_ad_active

#: The largest scratch array kept per slot and thread (bytes, 256³ float32); a larger
#: intermediate is allocated for its call alone. Above glibc's largest mmap threshold (32 MiB)
#: the output is mapped afresh each call whatever is kept, so the scratch saves one of two
#: arrays' faults there: 256³ float32 ⊛ 3³ 1.19x / 1.20x faster at 1 / 2 threads (1.3x and
#: more at 96³-192³): kept as the bound on memory held after a call.
SCRATCH_BYTES = 1 << 26

#: The smallest intermediate put in scratch memory (bytes). Smaller ones come from the heap
#: without faults (glibc's trim threshold is twice the largest block it has mapped and freed),
#: and fresh memory was faster there than the scratch (2026-12-05, 2 threads, ⊛ 5×5×5
#: Gaussian float32, separate processes alternating; ms a call, fresh / scratch): 48³ (0.42
#: MiB) 0.19 / 0.21, 64³ 0.27 / 0.29-0.30, 72³ (1.42 MiB) 0.35-0.38 / 0.39-0.49; from 80³
#: (1.95 MiB) the fresh arrays faulted: 1.6-1.9 / 0.42-0.46, 64³ float64 (2 MiB) 1.7-1.8 /
#: 0.39-0.43.
SCRATCH_MIN = 3 << 19


class _Scratch(threading.local):
    """This thread's scratch memory: per slot a flat numpy array of bytes, and the slots a
    caller holds."""

    def __init__(self) -> None:
        self.bufs: dict[str, Any] = {}
        self.busy: set[str] = set()


_STATE = _Scratch()

_NUMPY: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype("float32"),
    torch.float64: np.dtype("float64"),
    torch.complex64: np.dtype("complex64"),
    torch.complex128: np.dtype("complex128"),
    torch.int64: np.dtype("int64"),
}


def take(slot: str) -> bool:
    """Hold this thread's scratch memory ``slot``: True where this caller now holds it (it
    may then call :func:`array`, and must call :func:`give_back`), False where a caller holds
    it already."""
    st = _STATE
    if slot in st.busy:
        return False
    st.busy.add(slot)
    return True


def give_back(slot: str) -> None:
    """Hand back this thread's scratch memory ``slot`` (taken by :func:`take`): the next
    caller that takes it overwrites what it holds."""
    _STATE.busy.discard(slot)


def array(slot: str, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, Any] | None:
    """An uninitialised C-contiguous CPU tensor of ``shape`` and ``dtype`` in this thread's
    scratch memory ``slot``, and the same memory as a numpy array, for a caller that took the
    slot (:func:`take`; the memory is overwritten by the next caller that takes it). ``None``
    for a dtype numpy does not share with torch (half, bool, narrow integers) or an array
    outside [:data:`SCRATCH_MIN`, :data:`SCRATCH_BYTES`] (the caller then allocates as
    usual)."""
    bufs = _STATE.bufs
    dt = _NUMPY.get(dtype)
    if dt is None:
        return None
    nbytes = math.prod(shape) * dt.itemsize
    if not SCRATCH_MIN <= nbytes <= SCRATCH_BYTES:
        return None
    buf = bufs.get(slot)
    if buf is None or buf.nbytes < nbytes:
        bufs.pop(slot, None)  # the old one first: the two need not coexist
        # numpy's allocator, as rows._empty: huge pages where the kernel grants them
        buf = np.empty(nbytes, dtype=np.uint8)
        buf[:: rows.HUGE_PAGE] = 0  # faulted in by this thread, not the loop's
        bufs[slot] = buf
    arr = buf[:nbytes].view(dt).reshape(shape)
    return torch.from_numpy(arr), arr


@contextlib.contextmanager
def redirect(slot: str) -> Iterator[None]:
    """Within the block, the next output of the direct method's compiled loop
    (:func:`trueconv._methods.rows._run`) goes to ``slot`` where :func:`array` gives one; the
    caller holds the slot (:func:`take`). Cleared on leaving, whether or not a loop ran."""
    rows.REDIRECT.to = functools.partial(array, slot)
    try:
        yield
    finally:
        rows.REDIRECT.to = None


def holds(t: torch.Tensor) -> bool:
    """Whether ``t`` lies in this thread's scratch memory (a result that must be copied out
    before the memory is handed back)."""
    if not _STATE.bufs or t.device.type != "cpu":
        return False
    ptr = t.untyped_storage().data_ptr()
    for buf in _STATE.bufs.values():
        start = buf.ctypes.data
        if start <= ptr < start + buf.nbytes:
            return True
    return False


def recorded(*tensors: torch.Tensor) -> bool:
    """Whether autograd may keep an array computed from ``tensors`` past the call (one of them
    needs a gradient, or forward-mode AD is on): then no such array may lie in kept memory,
    which the next call overwrites behind the graph's back (a tensor made anew over the same
    memory has a version counter of its own)."""
    if forward_ad_active():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def converted(
    x: torch.Tensor, dtype: torch.dtype, *others: torch.Tensor
) -> tuple[torch.Tensor, bool]:
    """``x.to(dtype)``, and whether it lies in the scratch slot ``'input'``, which the caller
    then holds until it no longer reads the result (:func:`give_back`): on the CPU, where
    ``x`` can be read and autograd records nothing of ``x`` and the ``others`` operands
    (:func:`recorded`), a C-contiguous copy in that slot where :func:`array` gives one.

    Why. A call converts its operands to the compute dtype (an image of ``uint8`` to
    ``int64`` for an integer kernel, to ``float32`` for a floating one): a new array as large
    as the output or larger, freed at the end of the call, which glibc faults in afresh the
    next call (the module's docstring). Measured (2026-12-05, 2 threads, the conversion alone,
    median of 15): 2048² ``uint8`` to ``int64`` 7.86 ms with 8193 faults a call, into memory
    kept 0.42 ms; 4096² to ``float32`` 16.1 / 1.48 ms. Into fresh memory from numpy's
    allocator (huge pages) 3.16 / 4.75 ms alone, but inside whole calls the freed input and
    output then made glibc trim its heap and fault both in again (2048² ``uint8`` ⊛ 3×3
    Gaussian: 1006 faults a call, 5.4-5.7 ms where a call without faults takes 1.0)."""
    if (
        x.device.type != "cpu"
        or dtype not in _NUMPY
        or recorded(x, *others)
        or type(x) is not torch.Tensor
        or not _nonfinite.checkable(x)
        or not take("input")
    ):
        return x.to(dtype), False
    got = array("input", tuple(x.shape), dtype)
    if got is None:
        give_back("input")
        return x.to(dtype), False
    return got[0].copy_(x), True
