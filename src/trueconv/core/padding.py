"""TensorFlow's ``'SAME'`` padding rule, written once for the NN API and the porting helpers."""

from __future__ import annotations

from collections.abc import Sequence


def tf_same_pads(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per dim: TF pads ``max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n,
    0)`` samples in all, the odd one after, so that the output has ``ceil(n / s)`` samples."""
    pads = []
    for n, k, s, d in zip(input_size, kernel_size, stride, dilation):
        total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def tf_transpose_pads(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    padding: str,
    output_size: Sequence[int] | None = None,
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """TF's transposed convolution (the gradient of its forward convolution, output size
    ``output_size``) as crops of the full transposed output: ``(before, after)`` per dim and
    the zeros past its end (``output_padding``).

    The default output size is Keras' (``output_padding=None``): ``n * s`` for ``'SAME'``,
    ``(n - 1) * s + max(d * (k - 1) + 1, s)`` for ``'VALID'``. The full transposed output has
    ``(n - 1) * s + d * (k - 1) + 1`` samples; TF's output starts at the forward padding's
    ``before`` (``'SAME'`` of the output size) or at 0 (``'VALID'``)."""
    pads, extra = [], []
    for i, (n, k, s, d) in enumerate(zip(input_size, kernel_size, stride, dilation)):
        span = d * (k - 1) + 1
        if output_size is not None:
            m = output_size[i]
        else:
            m = n * s if padding == "SAME" else (n - 1) * s + max(span, s)
        before = tf_same_pads((m,), (k,), (s,), (d,))[0][0] if padding == "SAME" else 0
        end = (n - 1) * s + span - before - m
        pads.append((before, max(end, 0)))
        extra.append(max(-end, 0))
    return tuple(pads), tuple(extra)
