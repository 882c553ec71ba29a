"""trueconv: true convolution (the kernel flipped) for PyTorch, with scipy.signal semantics."""

from trueconv.signal import choose_method, convolve, correlate

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "choose_method", "convolve", "correlate"]
