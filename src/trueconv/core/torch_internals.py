"""Everything trueconv uses of torch beyond its public API, in one place, each with its reason,
and the process-global torch state it must switch (cuDNN's float32 precision).

torch offers no public way to ask these questions; each use reads as little as it can, and
falls back to the answer that keeps results right when a torch version lacks it (tested
versions: see the README). A new private use goes here, not into the module that needs it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.nn.modules.conv import _ConvNd

#: The base class of ``torch.nn.Conv1d/2d/3d`` and their transposed twins. ``trueconv.nn``'s
#: modules subclass torch's own so that they keep its parameters, ``state_dict`` keys,
#: initialisation and ``isinstance`` checks; the shared base is what their common helpers
#: accept. (Present under this name since torch 1.0.)
ConvNd = _ConvNd

#: Whether a ``torch.func`` transform (vmap, grad, jvp, ...) is running: then operands are
#: wrapped tensors whose data must not be inspected, and in-place tricks would escape the
#: transform. No public API answers this; absent, it reads as "no transform".
_TRANSFORMS_ACTIVE: Callable[[], bool] = getattr(
    torch._C, "_are_functorch_transforms_active", lambda: False
)
#: Whether one tensor is a ``torch.func`` wrapper (present from torch 2.0).
_WRAPPED: Callable[[torch.Tensor], bool] = getattr(
    getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", lambda t: False
)


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform is running."""
    return bool(_TRANSFORMS_ACTIVE())


def functorch_wrapped(t: torch.Tensor) -> bool:
    """Whether ``t`` is a ``torch.func`` wrapper (its data cannot be read)."""
    return bool(_WRAPPED(t))


def forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level`` is open: then operands may carry
    tangents that no ``requires_grad`` flag shows, and a path that reads raw data must go
    through a Function with a ``jvp``. torch exposes no public query; its module-level level
    counter is read, and where a torch lacks it the answer is "yes" (the safe side: the
    differentiable path runs)."""
    level = getattr(torch.autograd.forward_ad, "_current_level", None)
    return not isinstance(level, int) or level >= 0


#: Whether an autocast is enabled on any device type (one call; torch 2.13 answers in
#: 0.17 us where ``torch.is_autocast_enabled(device)`` and reading the operand's device took
#: 0.7). No public API answers it for every device; absent, the answer is "maybe".
_ANY_AUTOCAST: Callable[[], bool] = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def any_autocast() -> bool:
    """Whether ``torch.autocast`` may be enabled on some device (``False``: on none, so
    :func:`autocast_dtype` need not be asked). Eager calls only: not for ``torch.compile``
    to trace."""
    return bool(_ANY_AUTOCAST())


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` casts eligible operands to on ``device_type``, or ``None``
    when autocast is off there. ``torch.is_autocast_enabled(device_type)`` and
    ``torch.get_autocast_dtype`` are public from torch 2.4; older torches answer through
    their per-device functions (CPU and CUDA only)."""
    try:
        if not torch.is_autocast_enabled(device_type):  # type: ignore[call-arg]
            return None
        return torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4
        if device_type == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        if device_type == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        return None


def untraced_shape(t: torch.Tensor) -> tuple[int, ...]:
    """``t.shape`` as Python ints, also under ``torch.jit.trace``.

    The tracer hands out sizes as 0-d tensors so that it can record shape arithmetic; our
    shape arithmetic is planning, not computation, and must see plain ints. The tracer is
    paused (its private state getter and setter) for the one read.
    """
    if not torch.jit.is_tracing():
        return tuple(t.shape)
    state: Any = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)  # type: ignore[attr-defined]
    try:
        return tuple(t.shape)
    finally:
        torch._C._set_tracing_state(state)  # type: ignore[attr-defined]


# -- cuDNN's float32 precision: a process-global flag, switched safely --------------------------

_TF32_LOCK = threading.Lock()
_TF32_USERS = 0
_TF32_SAVED: Any = None


@contextlib.contextmanager
def cudnn_ieee_float32() -> Iterator[None]:
    """cuDNN's float32 (and complex64) convolutions in full precision inside, the user's
    setting restored once the last such block on any thread has left.

    cuDNN runs float32 convolutions in TF32 by default: 10 mantissa bits, a relative error near
    1e-3 where the signal API promises float32 results (about 1e-7, as scipy). torch has no
    per-call switch, only the process-global ``cudnn.conv.fp32_precision`` (torch >= 2.9) or
    ``cudnn.allow_tf32`` (older; only the one a torch has is touched, as torch refuses mixing
    the two APIs). Threads (Dask's threaded scheduler with ``device='cuda'``) share it: a
    counter under a lock makes the first thread in save the user's value and set full
    precision, and the last thread out restore it, so overlapping calls can neither see TF32
    nor leave the user's setting changed. A convolution the user runs on another thread while
    one of ours is inside sees full precision too: global state allows no better.
    """
    global _TF32_USERS, _TF32_SAVED
    conv: Any = getattr(torch.backends.cudnn, "conv", None)
    new_api = conv is not None and hasattr(conv, "fp32_precision")
    with _TF32_LOCK:
        if _TF32_USERS == 0:
            if new_api:
                _TF32_SAVED = conv.fp32_precision
                conv.fp32_precision = "ieee"
            else:
                _TF32_SAVED = torch.backends.cudnn.allow_tf32
                torch.backends.cudnn.allow_tf32 = False
        _TF32_USERS += 1
    try:
        yield
    finally:
        with _TF32_LOCK:
            _TF32_USERS -= 1
            if _TF32_USERS == 0:
                if new_api:
                    conv.fp32_precision = _TF32_SAVED
                else:
                    torch.backends.cudnn.allow_tf32 = _TF32_SAVED
