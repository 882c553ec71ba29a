"""Memory one thread keeps from call to call for intermediate results (issue 14).

A plan whose steps hand each other a full-size array (the separable plan of a 3-D kernel: the
fused loop's result over the last two dims, then a pass along the first) frees that array at
the end of the call, and its caller frees the output a moment later. glibc returns the free
top of its heap to the OS once it exceeds the trim threshold (twice the mmap threshold as glibc
adjusts it: 16 MB once an 8 MB block was freed) and maps blocks above the mmap threshold (at
most 32 MB) afresh, so the next call faults both arrays in again, the kernel zeroing every
page. Measured (2026-12-05, 2 threads, ``benchmarks/sep3d_scratch.py``): 128³ float32 ⊛ 3×3×3
Gaussian by the separable plan 4.3 ms a call with 966 page faults, where the dense loop (one
output, no intermediate) took 1.8 ms with 32; ``benchmarks/malloc_env.py`` shows the same
mechanism on the transforms' spectra, which torch allocates itself.

The remedy here is the smallest that measured: the intermediate goes to an array the thread
keeps (:func:`array`, between :func:`take` and :func:`give_back`), at most :data:`SCRATCH_BYTES` a
thread; the memory goes when the thread ends. glibc's thresholds are left alone (they are the
process's, not a library's to set).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import torch

from trueconv._methods import rows

#: The largest scratch array kept per thread (bytes, 256³ float32); a larger intermediate is
#: allocated for its call alone. Above glibc's largest mmap threshold (32 MiB) the output is
#: mapped afresh each call whatever is kept, so the scratch saves one of two arrays' faults
#: there: 256³ float32 ⊛ 3³ 1.19x / 1.20x faster at 1 / 2 threads (17 and more at 96³-192³):
#: kept as the bound on memory held after a call.
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
    """This thread's scratch memory, as a flat numpy array of bytes, and whether a caller
    holds it."""

    buf: Any = None
    busy: bool = False


_STATE = _Scratch()

_NUMPY: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype("float32"),
    torch.float64: np.dtype("float64"),
}


def take() -> bool:
    """Hold this thread's scratch memory: True where this caller now holds it (it may then
    call :func:`array`, and must call :func:`give_back`), False where a caller holds it
    already."""
    st = _STATE
    if st.busy:
        return False
    st.busy = True
    return True


def give_back() -> None:
    """Hand back this thread's scratch memory (taken by :func:`take`): the next caller that
    takes it overwrites what it holds."""
    _STATE.busy = False


def array(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, Any] | None:
    """An uninitialised CPU tensor of ``shape`` and ``dtype`` (float32 or float64) in this
    thread's scratch memory, and the same memory as a numpy array, for a caller inside
    :func:`take` (the memory is overwritten by the next call that takes it). ``None`` for
    another dtype or an array outside [:data:`SCRATCH_MIN`, :data:`SCRATCH_BYTES`] (the caller
    then allocates as usual)."""
    st = _STATE
    dt = _NUMPY.get(dtype)
    if dt is None:
        return None
    nbytes = math.prod(shape) * dt.itemsize
    if not SCRATCH_MIN <= nbytes <= SCRATCH_BYTES:
        return None
    if st.buf is None or st.buf.nbytes < nbytes:
        st.buf = None  # the old one first: the two need not coexist
        # numpy's allocator, as rows._empty: huge pages where the kernel grants them
        buf = np.empty(nbytes, dtype=np.uint8)
        buf[:: rows.HUGE_PAGE] = 0  # faulted in by this thread, not the loop's
        st.buf = buf
    arr = st.buf[:nbytes].view(dt).reshape(shape)
    return torch.from_numpy(arr), arr


def holds(t: torch.Tensor) -> bool:
    """Whether ``t`` lies in this thread's scratch memory (a result that must be copied out
    before the memory is handed back)."""
    buf = _STATE.buf
    if buf is None or t.device.type != "cpu":
        return False
    start = buf.ctypes.data
    ptr = t.untyped_storage().data_ptr()
    return bool(start <= ptr < start + buf.nbytes)
