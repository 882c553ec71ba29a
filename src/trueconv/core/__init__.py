"""The layer both engines stand on: the signal API's methods (:mod:`trueconv._methods`) and the
NN API's (:mod:`trueconv.nn`) import these modules' public names, and nothing private of each
other.

- :mod:`~trueconv.core.dtypes`: which dtype a computation runs in, dtype classes, shapes.
- :mod:`~trueconv.core.transforms`: fast FFT lengths, the aliasing rule, N-D transforms,
  DFT matrices, crops.
- :mod:`~trueconv.core.boundary`: boundary extension with ``numpy.pad`` semantics.
- :mod:`~trueconv.core.cost`: the cost model's constants, transform model and margins.
- :mod:`~trueconv.core.torch_internals`: every use of torch beyond its public API, and the
  process-global torch state switched safely.

Not public API: trueconv's own building blocks, free to change between releases.
"""
