"""``torch.nn`` convolution modules that convolve: thin shells over :mod:`trueconv.nn.functional`.

Each class subclasses its ``torch.nn`` namesake -- same constructor arguments (plus keyword-only
``method``), same parameters, ``state_dict`` keys and initialisation, so ``isinstance`` init
loops, checkpoints and optimisers work unchanged -- and overrides only the forward computation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch

from trueconv.core.names import canonical_method, choices
from trueconv.core.torch_internals import ConvNd
from trueconv.nn import functional as tcF
from trueconv.nn._fft import flat_pads
from trueconv.nn._spec import (
    canonical_padding_mode,
    int_tuple,
    parse_padding,
    resolve_padding,
)
from trueconv.nn._typing import NN_METHODS, NNMethod, PaddingMode
from trueconv.porting import flip_kernel

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

#: ``padding_mode`` values of the transposed modules (torch's: zeros only).
TRANSPOSED_PADDING_MODES = ("zeros",)

_M = TypeVar("_M", bound="_TrueConvNd")


def _conv_init_args(
    fname: str, nd: int, stride: Any, padding: Any, padding_mode: Any, method: Any
) -> tuple[Any, Any]:
    """Validate the trueconv-only constructor arguments.

    Returns the padding to hand torch's constructor (one it accepts) and the padding to keep:
    torch's tuple of ints when symmetric, ``'valid'``/``'same'``/``'full'``, TensorFlow's
    ``'SAME'``/``'VALID'``, or pairs.
    """
    canonical_method(fname, method, NN_METHODS)
    canonical_padding_mode(fname, padding_mode)
    parsed = parse_padding(fname, padding, nd)
    if parsed == "same" and any(s != 1 for s in int_tuple(fname, "stride", stride, nd, 1)):
        raise ValueError(
            f"{fname}(): padding='same' needs stride 1 (as in torch); got stride={stride!r}. "
            "For TensorFlow's strided 'SAME', pass padding='SAME'."
        )
    if isinstance(parsed, str):  # torch's constructor takes 'same' and 'valid' only
        return (parsed if parsed in ("same", "valid") else 0), parsed
    if all(b == a for b, a in parsed):
        ints = tuple(b for b, _ in parsed)
        return ints, ints
    return 0, parsed


class _TrueConvNd(ConvNd):
    """What the six modules share: forward through trueconv, repr, conversion to/from torch."""

    _nd: ClassVar[int]
    _torch_cls: ClassVar[type[ConvNd]]
    method: str

    def _finish_init(self, padding: Any, padding_mode: str, method: str) -> None:
        self.padding = padding  # type: ignore[assignment]
        self.padding_mode = padding_mode  # type: ignore[assignment]
        self.method = method
        pads = resolve_padding(
            parse_padding(type(self).__name__, padding, self._nd), self.kernel_size, self.dilation
        )
        self._reversed_padding_repeated_twice = flat_pads(pads)  # torch's F.pad-ordered copy

    def extra_repr(self) -> str:
        return super().extra_repr() + f", method={self.method!r}"

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if not hasattr(self, "method"):
            self.method = "auto"

    @classmethod
    def from_torch(cls: type[_M], module: torch.nn.Module, *, method: NNMethod = "auto") -> _M:
        """A trueconv module whose outputs equal ``module``'s: same arguments, weight flipped."""
        name = f"{cls.__name__}.from_torch"
        if isinstance(module, _TrueConvNd):
            raise TypeError(
                f"{name}(): module is already a trueconv {type(module).__name__} (it convolves); "
                "from_torch() converts torch's cross-correlating modules."
            )
        if not isinstance(module, cls._torch_cls):
            raise TypeError(
                f"{name}(): module must be a torch.nn.{cls._torch_cls.__name__}; got "
                f"{type(module).__name__}."
            )
        kwargs: dict[str, Any] = {
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": module.kernel_size,
            "stride": module.stride,
            "padding": module.padding,
            "dilation": module.dilation,
            "groups": module.groups,
            "bias": module.bias is not None,
            "padding_mode": module.padding_mode,
            "device": module.weight.device,
            "dtype": module.weight.dtype,
            "method": method,
        }
        if module.transposed:
            kwargs["output_padding"] = module.output_padding
        new = torch.nn.utils.skip_init(cls, **kwargs)
        _copy_flipped(module, new)
        return new

    def to_torch(self) -> ConvNd:
        """The ``torch.nn`` module whose outputs equal this one's: weight flipped back.

        Raises ``ValueError`` for what torch's modules cannot express: asymmetric padding and
        ``padding_mode='symmetric'``.
        """
        name = f"{type(self).__name__}.to_torch"
        padding: Any = self.padding
        if self.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(
                f"{name}(): torch has no padding_mode={self.padding_mode!r}; torch.nn."
                f"{self._torch_cls.__name__} takes 'zeros', 'reflect', 'replicate', 'circular'."
            )
        if padding == "VALID":
            padding = 0
        elif padding == "SAME" and not self.transposed and all(s == 1 for s in self.stride):
            padding = "same"  # at stride 1 TensorFlow's rule is torch's
        elif isinstance(padding, str) and padding not in ("same", "valid", "full"):
            raise ValueError(
                f"{name}(): torch.nn.{self._torch_cls.__name__} has no padding={padding!r} "
                f"with stride={self.stride}."
            )
        if padding == "full":
            padding = tuple(d * (k - 1) for k, d in zip(self.kernel_size, self.dilation))
        elif not isinstance(padding, str) and any(isinstance(p, tuple) for p in padding):
            raise ValueError(
                f"{name}(): torch.nn.{self._torch_cls.__name__} pads symmetrically only; got "
                f"padding={padding!r}."
            )
        kwargs: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
            "device": self.weight.device,
            "dtype": self.weight.dtype,
        }
        if self.transposed:
            kwargs["output_padding"] = self.output_padding
        new = torch.nn.utils.skip_init(self._torch_cls, **kwargs)
        _copy_flipped(self, new)
        return new


def _copy_flipped(src: ConvNd, dst: ConvNd) -> None:
    with torch.no_grad():
        dst.weight.copy_(flip_kernel(src.weight))
        dst.weight.requires_grad_(src.weight.requires_grad)
        if src.bias is not None and dst.bias is not None:
            dst.bias.copy_(src.bias)
            dst.bias.requires_grad_(src.bias.requires_grad)
    dst.train(src.training)


class _TrueConv(_TrueConvNd):
    _fn: ClassVar[Callable[..., torch.Tensor]]

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        return type(self)._fn(
            input,
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            method=self.method,
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Convolve ``input`` with ``self.weight`` (see the class docstring)."""
        return self._conv_forward(input, self.weight, self.bias)


class _TrueConvTranspose(_TrueConvNd):
    _fn: ClassVar[Callable[..., torch.Tensor]]

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """Transposed convolution of ``input``; ``output_size`` picks ``output_padding``."""
        if output_size is not None and (
            isinstance(self.padding, str) or any(isinstance(p, tuple) for p in self.padding)
        ):
            raise ValueError(
                f"{type(self).__name__}.forward(): output_size needs torch's symmetric int "
                f"padding; this module has padding={self.padding!r} (for TensorFlow's "
                "output_shape, build the module with padding=trueconv.tf_transpose_padding(...)"
                "'s pads and output_padding)."
            )
        output_padding = self._output_padding(  # type: ignore[operator]
            input,
            output_size,
            self.stride,
            self.padding,
            self.kernel_size,
            self._nd,
            self.dilation,
        )
        return type(self)._fn(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
            method=self.method,
        )


def _transposed_init_args(
    fname: str, nd: int, padding: Any, padding_mode: Any, method: Any
) -> tuple[Any, Any]:
    """Validate; return the padding for torch's constructor and the padding to keep (torch's
    ints, TensorFlow's ``'SAME'``/``'VALID'``, or ``(before, after)`` pairs)."""
    canonical_method(fname, method, NN_METHODS)
    if padding_mode not in TRANSPOSED_PADDING_MODES:
        raise ValueError(
            f"{fname}(): padding_mode must be one of {choices(TRANSPOSED_PADDING_MODES)}; "
            f"got {padding_mode!r}."
        )
    parsed = parse_padding(fname, padding, nd, transposed=True)
    if isinstance(parsed, str):
        return 0, parsed
    if all(b == a for b, a in parsed):
        ints = tuple(b for b, _ in parsed)
        return ints, ints
    return 0, parsed


class Conv1d(_TrueConv, torch.nn.Conv1d):
    """1-D convolution layer that convolves: ``torch.nn.Conv1d`` with the kernel flipped.

    Same constructor arguments, parameters, ``state_dict`` keys and initialisation as
    ``torch.nn.Conv1d``; ``forward`` runs :func:`trueconv.conv1d`. ``padding`` also takes
    ``'full'`` and ``(before, after)`` pairs, ``padding_mode`` also ``'symmetric'``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, \
padding_mode, device, dtype
        As in ``torch.nn.Conv1d`` (see :class:`Conv2d`).
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> m = trueconv.nn.Conv1d(1, 1, 3, padding="full", bias=False)
    >>> with torch.no_grad():
    ...     _ = m.weight.copy_(torch.tensor([[[1., 2., 3.]]]))
    >>> m(torch.tensor([[[1., 0., 0.]]]))
    tensor([[[1., 2., 3., 0., 0.]]], grad_fn=<ConvolutionBackward0>)
    """

    _nd = 1
    _torch_cls = torch.nn.Conv1d
    _fn = staticmethod(tcF.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: Any = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, padding = _conv_init_args("Conv1d", 1, stride, padding, padding_mode, method)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, dilation, groups,
            bias, "zeros", device, dtype,
        )  # fmt: skip
        self._finish_init(padding, padding_mode, method)


class Conv2d(_TrueConv, torch.nn.Conv2d):
    """2-D convolution layer that convolves: ``torch.nn.Conv2d`` with the kernel flipped.

    A subclass of ``torch.nn.Conv2d`` with the same constructor arguments (plus ``method``),
    parameters (``weight`` ``(out, in / groups, kH, kW)``, ``bias``), ``state_dict`` keys and
    initialisation; ``forward`` runs :func:`trueconv.conv2d`, so ``weight`` holds convolution
    kernels. :meth:`from_torch` and :meth:`to_torch` convert by flipping the weight, keeping
    outputs identical.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, divisible by ``groups``.
    kernel_size : int or tuple of int
        Spatial size of the kernel.
    stride, dilation : int or tuple of int, optional
        As in ``torch.nn.Conv2d``.
    padding : {'valid', 'same', 'full'}, int, tuple of int or of (before, after), optional
        As in :func:`trueconv.conv2d`: torch's forms plus ``'full'`` and asymmetric pairs.
    groups : int, optional
        Blocked connections, as in ``torch.nn.Conv2d``.
    bias : bool, optional
        Whether to learn a bias (default ``True``).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}, optional
        How the input is extended by ``padding``; ``'symmetric'`` is an addition to torch's.
    device, dtype : optional
        Of the parameters, as in torch.
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    See Also
    --------
    trueconv.conv2d : the function ``forward`` runs.

    Examples
    --------
    A torch layer converted keeps its outputs; the converted weight is the flipped one:

    >>> import torch
    >>> import trueconv
    >>> layer = torch.nn.Conv2d(1, 1, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[[[1., 2.], [3., 4.]]]]))
    >>> m = trueconv.nn.Conv2d.from_torch(layer)
    >>> m
    Conv2d(1, 1, kernel_size=(2, 2), stride=(1, 1), bias=False, method='auto')
    >>> m.weight.data
    tensor([[[[4., 3.],
              [2., 1.]]]])
    >>> x = torch.arange(9.).reshape(1, 1, 3, 3)
    >>> torch.equal(m(x), layer(x))
    True
    >>> isinstance(m, torch.nn.Conv2d), list(m.state_dict())
    (True, ['weight'])
    """

    _nd = 2
    _torch_cls = torch.nn.Conv2d
    _fn = staticmethod(tcF.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Any = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, padding = _conv_init_args("Conv2d", 2, stride, padding, padding_mode, method)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, dilation, groups,
            bias, "zeros", device, dtype,
        )  # fmt: skip
        self._finish_init(padding, padding_mode, method)


class Conv3d(_TrueConv, torch.nn.Conv3d):
    """3-D convolution layer that convolves: ``torch.nn.Conv3d`` with the kernel flipped.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, \
padding_mode, device, dtype
        As in ``torch.nn.Conv3d`` (see :class:`Conv2d`).
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> m = trueconv.nn.Conv3d(2, 4, 3, padding="same", padding_mode="symmetric")
    >>> m(torch.zeros(1, 2, 5, 5, 5)).shape
    torch.Size([1, 4, 5, 5, 5])
    """

    _nd = 3
    _torch_cls = torch.nn.Conv3d
    _fn = staticmethod(tcF.conv3d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: Any = 0,
        dilation: int | tuple[int, int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, padding = _conv_init_args("Conv3d", 3, stride, padding, padding_mode, method)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, dilation, groups,
            bias, "zeros", device, dtype,
        )  # fmt: skip
        self._finish_init(padding, padding_mode, method)


class ConvTranspose1d(_TrueConvTranspose, torch.nn.ConvTranspose1d):
    """1-D transposed convolution: ``torch.nn.ConvTranspose1d`` with the kernel flipped.

    The adjoint of :class:`Conv1d` with the same weight; ``forward`` runs
    :func:`trueconv.conv_transpose1d`.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, \
dilation, padding_mode, device, dtype
        As in ``torch.nn.ConvTranspose1d`` (``padding_mode`` ``'zeros'`` only).
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> m = trueconv.nn.ConvTranspose1d(1, 1, 3, stride=2, bias=False)
    >>> with torch.no_grad():
    ...     _ = m.weight.copy_(torch.tensor([[[1., 2., 3.]]]))
    >>> m(torch.tensor([[[1., 10.]]]))
    tensor([[[ 3.,  2., 31., 20., 10.]]], grad_fn=<ConvolutionBackward0>)
    """

    _nd = 1
    _torch_cls = torch.nn.ConvTranspose1d
    _fn = staticmethod(tcF.conv_transpose1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] = 0,
        output_padding: int | tuple[int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int] = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, kept = _transposed_init_args(
            "ConvTranspose1d", 1, padding, padding_mode, method
        )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, output_padding,
            groups, bias, dilation, "zeros", device, dtype,
        )  # fmt: skip
        self.padding = kept  # type: ignore[assignment]
        self.method = method


class ConvTranspose2d(_TrueConvTranspose, torch.nn.ConvTranspose2d):
    """2-D transposed convolution: ``torch.nn.ConvTranspose2d`` with the kernel flipped.

    The adjoint of :class:`Conv2d` with the same weight (``(in, out / groups, kH, kW)``, torch's
    transposed layout); ``forward(input, output_size=None)`` runs
    :func:`trueconv.conv_transpose2d`, ``output_size`` choosing ``output_padding`` as in torch.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, \
dilation, padding_mode, device, dtype
        As in ``torch.nn.ConvTranspose2d`` (``padding_mode`` ``'zeros'`` only).
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    Examples
    --------
    A strided convolution and its transpose restore the size:

    >>> import torch
    >>> import trueconv
    >>> down = trueconv.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> up = trueconv.nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1)
    >>> x = torch.zeros(1, 3, 8, 8)
    >>> up(down(x), output_size=x.shape[2:]).shape
    torch.Size([1, 3, 8, 8])
    """

    _nd = 2
    _torch_cls = torch.nn.ConvTranspose2d
    _fn = staticmethod(tcF.conv_transpose2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, kept = _transposed_init_args(
            "ConvTranspose2d", 2, padding, padding_mode, method
        )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, output_padding,
            groups, bias, dilation, "zeros", device, dtype,
        )  # fmt: skip
        self.padding = kept  # type: ignore[assignment]
        self.method = method


class ConvTranspose3d(_TrueConvTranspose, torch.nn.ConvTranspose3d):
    """3-D transposed convolution: ``torch.nn.ConvTranspose3d`` with the kernel flipped.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, \
dilation, padding_mode, device, dtype
        As in ``torch.nn.ConvTranspose3d`` (``padding_mode`` ``'zeros'`` only).
    method : {'auto', 'direct', 'fft'}, optional
        How ``forward`` computes (see :func:`trueconv.conv2d`).

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> m = trueconv.nn.ConvTranspose3d(4, 2, 2, stride=2)
    >>> m(torch.zeros(1, 4, 3, 3, 3)).shape
    torch.Size([1, 2, 6, 6, 6])
    """

    _nd = 3
    _torch_cls = torch.nn.ConvTranspose3d
    _fn = staticmethod(tcF.conv_transpose3d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        output_padding: int | tuple[int, int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int, int] = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        method: NNMethod = "auto",
    ) -> None:
        torch_padding, kept = _transposed_init_args(
            "ConvTranspose3d", 3, padding, padding_mode, method
        )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, torch_padding, output_padding,
            groups, bias, dilation, "zeros", device, dtype,
        )  # fmt: skip
        self.padding = kept  # type: ignore[assignment]
        self.method = method
