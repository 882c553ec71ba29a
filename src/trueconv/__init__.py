"""trueconv: true convolution (the kernel flipped) for PyTorch, with scipy.signal semantics."""

from trueconv import calibration, ndimage, nn
from trueconv._compile import compile_loops
from trueconv.nn.functional import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from trueconv.porting import (
    flip_kernel,
    from_keras,
    tf_kernel_to_torch,
    tf_same_padding,
    tf_transpose_padding,
    torch_kernel_to_tf,
)
from trueconv.signal import (
    choose_method,
    convolve,
    convolve_separable,
    correlate,
    method_costs,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "calibration",
    "choose_method",
    "compile_loops",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convolve",
    "convolve_separable",
    "correlate",
    "flip_kernel",
    "from_keras",
    "method_costs",
    "ndimage",
    "nn",
    "tf_kernel_to_torch",
    "tf_same_padding",
    "tf_transpose_padding",
    "torch_kernel_to_tf",
]
