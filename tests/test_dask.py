"""``trueconv.dask`` equals the in-memory result, and scipy in float64, for every mode, boundary,
dims choice and chunking; its errors are trueconv's; its chunks are what the docs say.

Oracles: ``trueconv.convolve``/``correlate`` on the whole numpy array, and an independent one
built from numpy and scipy only (``np.pad`` with the matching mode, then
``scipy.signal.fftconvolve(..., 'valid', axes=...)`` in float64). Every result is computed
block by block (:func:`computed`), so a block whose shape differs from its declared chunk fails
even where concatenation would hide it.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
import trueconv.dask
from conftest import REL_TOL, rel_err
from trueconv import signal
from trueconv.core.boundary import source_index

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
Callback = pytest.importorskip("dask.callbacks").Callback

MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symmetric", "reflect", "replicate")
NP_PAD = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}
TOL = {"float32": REL_TOL[torch.float32], "float64": REL_TOL[torch.float64], "int64": 0.0}


@pytest.fixture(autouse=True)
def synchronous():
    """In-process, deterministic scheduling (one test below uses threads explicitly)."""
    with dask.config.set(scheduler="synchronous"):
        yield


def computed(out: da.Array) -> np.ndarray:
    """Compute every block separately, check it has its declared chunk shape, assemble."""
    blocks = out.to_delayed()
    values = dask.compute(*blocks.ravel().tolist())
    grid = np.empty(blocks.shape, dtype=object)
    for flat, idx in enumerate(np.ndindex(blocks.shape)):
        expected = tuple(out.chunks[d][i] for d, i in enumerate(idx))
        assert values[flat].shape == expected, f"block {idx}: {values[flat].shape} != {expected}"
        assert values[flat].dtype == out.dtype
        grid[idx] = values[flat]
    if out.ndim == 0:
        return grid[()]
    return np.block(grid.tolist())


# ------------------------------------------------------------------------------------------------
# the independent oracle: numpy pads, scipy convolves, float64
# ------------------------------------------------------------------------------------------------


def conv_axes(x_ndim: int, k_ndim: int, dims) -> tuple[int, tuple[int, ...]]:
    """Aligned ndim and convolved axes, by trueconv's documented rule."""
    if dims is None:
        return x_ndim, tuple(range(x_ndim - k_ndim, x_ndim))
    ndim = max(x_ndim, k_ndim)
    dims = (dims,) if isinstance(dims, int) else dims
    return ndim, tuple(sorted(d % ndim for d in dims))


def scipy_reference(x, k, mode, dims=None, boundary="fill", fill_value=0, correlate=False):
    ndim, axes = conv_axes(x.ndim, k.ndim, dims)
    x = np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)
    k = np.asarray(k, dtype=np.complex128 if np.iscomplexobj(k) else np.float64)
    x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    k = k.reshape((1,) * (ndim - k.ndim) + k.shape)
    if not axes:  # no convolved dim: the broadcast product (scipy refuses empty axes)
        return x * k
    if correlate:
        k = np.flip(k, axis=axes).conj()
    if mode != "valid":
        pads = [(0, 0)] * ndim
        for d in axes:
            kk = k.shape[d]  # trueconv's documented pads: full (k-1, k-1), same centred
            pads[d] = (kk - 1, kk - 1) if mode == "full" else (kk // 2, (kk - 1) // 2)
        extra = {"constant_values": fill_value} if boundary == "fill" else {}
        x = np.pad(x, pads, mode=NP_PAD[boundary], **extra)
    return scipy.signal.fftconvolve(x, k, mode="valid", axes=axes)


def check(x_np, chunks, k, mode, dims=None, boundary="fill", fill_value=0, dtype="float64"):
    """dask result == trueconv in memory (exact for integers) and == scipy (float64)."""
    x = da.from_array(x_np, chunks=chunks)
    out = trueconv.dask.convolve(x, k, mode, dims=dims, boundary=boundary, fill_value=fill_value)
    ref = trueconv.convolve(x_np, k, mode, dims=dims, boundary=boundary, fill_value=fill_value)
    assert out.shape == tuple(ref.shape)
    got = computed(out)
    assert got.dtype == ref.numpy().dtype
    if dtype == "int64":
        np.testing.assert_array_equal(got, ref.numpy())
    else:
        assert rel_err(got, ref) <= TOL[dtype]
    oracle = scipy_reference(x_np, np.asarray(k), mode, dims, boundary, fill_value)
    assert rel_err(got, oracle) <= max(TOL[dtype], 1e-12)
    return out


# ------------------------------------------------------------------------------------------------
# hypothesis: shapes, chunkings, kernels, modes, boundaries, dims, dtypes
# ------------------------------------------------------------------------------------------------


@st.composite
def chunking(draw, n: int) -> tuple[int, ...]:
    """Any partition of ``n`` into chunks: size-1 chunks and uneven ones included."""
    cuts = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    bounds = [0, *sorted(cuts), n]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


@st.composite
def problems(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    chunks = tuple(draw(chunking(n)) for n in shape)
    mode = draw(st.sampled_from(MODES))
    if draw(st.booleans()):  # explicit dims: per-signal kernels along the others
        conv = sorted(draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
        kshape = [
            draw(st.integers(1, 7)) if d in conv else draw(st.sampled_from([1, shape[d]]))
            for d in range(ndim)
        ]
        dims = tuple(draw(st.sampled_from([d, d - ndim])) for d in conv)
    else:  # trailing alignment
        kshape = [draw(st.integers(1, 7)) for _ in range(draw(st.integers(1, ndim)))]
        conv = list(range(ndim - len(kshape), ndim))
        dims = None
    if mode == "valid":  # one operand must dominate in every convolved dim
        offset = ndim - len(kshape)
        big_kernel = draw(st.booleans())
        for d in conv:
            n, kk = shape[d], kshape[d - offset]
            kshape[d - offset] = max(kk, n) if big_kernel else min(kk, n)
    return {
        "shape": shape,
        "chunks": chunks,
        "kshape": tuple(kshape),
        "mode": mode,
        "dims": dims,
        "boundary": draw(st.sampled_from(BOUNDARIES)),
        "fill_value": draw(st.sampled_from([0, 3])),
        "dtype": draw(st.sampled_from(["float32", "float64", "int64"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def data(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    if dtype == "int64":
        return rng.integers(-5, 6, size=shape).astype(np.int64)
    return rng.standard_normal(shape).astype(dtype)


@given(problems())
def test_chunked_equals_in_memory_and_scipy(p):
    rng = np.random.default_rng(p["seed"])
    x = data(rng, p["shape"], p["dtype"])
    k = data(rng, p["kshape"], p["dtype"])
    check(x, p["chunks"], k, p["mode"], p["dims"], p["boundary"], p["fill_value"], p["dtype"])


@given(problems())
def test_correlate_equals_in_memory_and_scipy(p):
    rng = np.random.default_rng(p["seed"])
    x_np = data(rng, p["shape"], "float64")
    k = data(rng, p["kshape"], "float64")
    kw = {"dims": p["dims"], "boundary": p["boundary"], "fill_value": p["fill_value"]}
    out = trueconv.dask.correlate(da.from_array(x_np, chunks=p["chunks"]), k, p["mode"], **kw)
    got = computed(out)
    assert rel_err(got, trueconv.correlate(x_np, k, p["mode"], **kw)) <= TOL["float64"]
    oracle = scipy_reference(x_np, k, p["mode"], correlate=True, **kw)
    assert rel_err(got, oracle) <= TOL["float64"]


# ------------------------------------------------------------------------------------------------
# chosen cases: chunk structure, big kernels and pads, broadcasting, dtypes, methods, devices
# ------------------------------------------------------------------------------------------------


def test_output_chunks_follow_the_input_chunks():
    x = da.from_array(np.arange(15.0), chunks=(4, 4, 4, 3))
    k = np.array([1.0, 2.0, 3.0])
    assert trueconv.dask.convolve(x, k, "same").chunks == ((4, 4, 4, 3),)
    assert trueconv.dask.convolve(x, k, "full").chunks == ((4, 4, 4, 5),)
    assert trueconv.dask.convolve(x, k, "valid").chunks == ((4, 4, 4, 1),)
    # batch dims keep their chunks and get no halo
    x2 = da.from_array(np.ones((6, 15)), chunks=((1, 2, 3), (4, 4, 4, 3)))
    assert trueconv.dask.convolve(x2, k).chunks == ((1, 2, 3), (4, 4, 4, 3))


@pytest.mark.parametrize(
    ("mode", "chunks"),
    [
        ("same", (1, *(2,) * 9, 1)),  # halo 2 + 2; pads of 2 complete the edge chunks
        ("full", (1, 4, 4, 4, 4, 3)),  # halo 4 + 0; the pad of 4 completes the first chunk
        ("valid", (4, 4, 4, 8)),  # halo 0 + 4, and the last chunk must give an output
    ],
)
def test_chunks_smaller_than_the_kernel_merge_but_never_into_one_block(mode, chunks):
    x_np = np.arange(40.0).reshape(2, 20)
    k = np.arange(1.0, 6.0)  # 5 taps along the last dim, chunks of 1
    out = check(x_np, 1, k, mode)
    assert out.chunks[0] == (1, 1)
    grown = {"same": 0, "full": 4, "valid": -4}[mode]
    assert out.chunks[1] == (*chunks[:-1], chunks[-1] + grown)


def test_same_keeps_a_regular_zarr_chunking():
    x = da.from_array(np.ones((10, 11)), chunks=(3, 4))  # (3, 3, 3, 1) and (4, 4, 3)
    assert trueconv.dask.convolve(x, np.ones((5, 7))).chunks == x.chunks


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same"])
def test_pads_longer_than_the_array_repeat_like_np_pad(boundary, mode):
    # n = 3 and k = 11: every boundary rule wraps or reflects several times
    x_np = np.array([[1.0, -2.0, 5.0], [0.5, 3.0, -1.0]])
    k = np.arange(1.0, 12.0)
    check(x_np, (1, (2, 1)), k, mode, boundary=boundary, fill_value=2.5)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kernel_larger_than_every_chunk_3d(boundary):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((9, 10, 11))
    k = rng.standard_normal((4, 5, 6))
    check(x_np, ((2, 3, 4), (1, 9), 3), k, "same", boundary=boundary)
    check(x_np, ((2, 3, 4), (1, 9), 3), k, "full", boundary=boundary, fill_value=-1.0)


def test_valid_with_the_kernel_larger_than_the_array_swaps_like_scipy():
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((40, 3, 4))  # 40 signals of 3x4, in chunks of 7
    k = rng.standard_normal((6, 5))
    out = check(x_np, (7, 1, 2), k, "valid")
    assert out.shape == (40, 4, 2)
    assert out.chunks[0] == x_np.shape[0] // 7 * (7,) + (5,)  # batch chunks kept


def test_per_signal_kernels_chunked_along_the_batch_dim():
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((6, 13))
    k = rng.standard_normal((6, 4))  # one kernel per row
    out = check(x_np, ((2, 1, 3), 5), k, "full", dims=-1)
    assert out.chunks[0] == (2, 1, 3)


def test_input_broadcast_against_a_kernel_with_more_dims():
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal(11)  # one signal, three kernels: three outputs
    k = rng.standard_normal((3, 4))
    out = check(x_np, 4, k, "same", dims=-1, boundary="reflect")
    assert out.shape == (3, 11)
    x3 = rng.standard_normal((2, 1, 9))  # size-1 batch dim broadcast to the kernel's 4
    check(x3, (1, 1, 3), rng.standard_normal((1, 4, 3)), "full", dims=2, boundary="wrap")


def test_broadcast_product_with_no_convolved_dims():
    x_np = np.arange(12).reshape(3, 4)
    check(x_np, 2, np.array(3), "same", dtype="int64")  # 0-d kernel
    check(x_np, 2, np.array([[1], [2], [3]]), "full", dims=(), dtype="int64")


@pytest.mark.parametrize("mode", MODES)
def test_integers_are_exact_also_when_wrapping(mode):
    x_np = np.full((5, 8), 2**62, dtype=np.int64)
    x_np[::2] = -3
    k = np.array([[1, 2], [3, 4]], dtype=np.int64)
    out = trueconv.dask.convolve(da.from_array(x_np, chunks=2), k, mode, boundary="symmetric")
    ref = trueconv.convolve(x_np, k, mode, boundary="symmetric").numpy()
    np.testing.assert_array_equal(computed(out), ref)  # wraps exactly as numpy and trueconv


def test_dtypes_follow_torch_result_type():
    x = da.from_array(np.arange(6, dtype=np.int64), chunks=2)
    assert trueconv.dask.convolve(x, torch.tensor([1.0, 2.0])).dtype == np.float32
    assert trueconv.dask.convolve(x, np.array([1.0, 2.0])).dtype == np.float64
    assert trueconv.dask.convolve(x, [1, 2]).dtype == np.int64
    xc = da.from_array(np.arange(6.0, dtype=np.float32), chunks=4)
    kc = np.array([1 + 2j, 3j], dtype=np.complex128)
    got = computed(trueconv.dask.convolve(xc, kc, "full"))
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, np.convolve(np.arange(6.0), kc), rtol=1e-12)
    # a fill value the integer input cannot hold, but the float result can
    check(np.arange(7, dtype=np.int64), 3, np.array([1.0, 1.0]), "full", fill_value=0.5)


@pytest.mark.parametrize("method", ["direct", "fft", "overlap_add"])
def test_every_method_per_block(method):
    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((3, 200))
    k = rng.standard_normal(31)
    x = da.from_array(x_np, chunks=(2, 64))
    out = trueconv.dask.convolve(x, k, "full", method=method, boundary="symmetric")
    ref = scipy_reference(x_np, k, "full", boundary="symmetric")
    assert rel_err(computed(out), ref) <= TOL["float64"]


def test_each_block_is_one_valid_trueconv_convolve(monkeypatch):
    calls = []
    original = signal.convolve

    def spy(x, k, mode, **kwargs):
        calls.append((mode, kwargs["method"], tuple(x.shape)))
        return original(x, k, mode, **kwargs)

    monkeypatch.setattr(signal, "convolve", spy)
    x = da.from_array(np.arange(20.0), chunks=5)
    out = trueconv.dask.convolve(x, np.ones(3), "same", method="fft")
    computed(out)
    # 5 samples + a halo of k - 1; at the two edges, the zero padding is left implicit (as in
    # memory: it holds no terms) by a 'full' convolution of the data (5 + 1 samples)
    assert sorted(calls) == [("full", "fft", (6,))] * 2 + [("valid", "fft", (7,))] * 2


@pytest.mark.parametrize("boundary", ["wrap", "symmetric", "reflect", "replicate"])
def test_window_index_maps_are_trueconvs(boundary):
    # trueconv.dask evaluates the boundary rule only at the positions a window needs
    for n in range(1, 8):
        for before, after in [(0, 0), (1, 0), (0, 3), (5, 2), (17, 23)]:
            ref = source_index(n, before, after, boundary).numpy()
            got = trueconv.dask._source_of(np.arange(-before, n + after), n, boundary)
            np.testing.assert_array_equal(got, ref)


def test_halo_pieces_are_copies():
    chunk = np.arange(24.0).reshape(4, 6)
    piece = trueconv.dask._extract(chunk, (slice(3, 1, -1), slice(0, 6)))
    np.testing.assert_array_equal(piece, chunk[[3, 2]])
    assert not np.shares_memory(piece, chunk)  # a view would keep the whole chunk alive


class _HeldChunks(Callback):
    """Peak bytes of distinct arrays held by the (synchronous) scheduler."""

    def __init__(self):
        super().__init__()
        self.peak = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        bases = {}
        for value in state["cache"].values():
            if isinstance(value, np.ndarray):
                while isinstance(value.base, np.ndarray):
                    value = value.base
                bases[id(value)] = value.nbytes
        self.peak = max(self.peak, sum(bases.values()))


class _Discard:
    def __setitem__(self, index, value):
        pass


def _peak_held(y: da.Array) -> float:
    held = _HeldChunks()
    with held:
        da.store(y, _Discard(), lock=False)
    return held.peak


@pytest.mark.parametrize("boundary", ["fill", "reflect"])
def test_memory_is_a_fraction_of_the_array(boundary):
    # 40 x 10 chunks, written block by block: the scheduler holds a few rows of chunks, no more
    # than for dask's own map_overlap with the same halo (without any boundary extension)
    x = da.random.default_rng(0).standard_normal((400, 100), chunks=10)
    peak = _peak_held(trueconv.dask.convolve(x, np.ones((5, 5)), "same", boundary=boundary))
    baseline = _peak_held(da.map_overlap(lambda b: b, x, depth=2, boundary="none"))
    assert peak <= 1.1 * baseline, (peak, baseline)
    assert peak < 0.2 * x.nbytes, (peak, x.nbytes)


def _explode(block):
    raise RuntimeError("computed too early")


def test_lazy_until_computed():
    x = da.ones((10, 10), chunks=5).map_blocks(_explode, dtype=float)
    out = trueconv.dask.convolve(x, np.ones((3, 3)), "full", boundary="reflect")
    assert out.shape == (12, 12)
    with pytest.raises(RuntimeError, match="computed too early"):
        out.compute()


def test_threaded_scheduler_and_a_deterministic_graph():
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((30, 30))
    x = da.from_array(x_np, chunks=7)
    k = rng.standard_normal((5, 3))
    out = trueconv.dask.convolve(x, k, "same", boundary="wrap")
    assert out.name == trueconv.dask.convolve(x, k, "same", boundary="wrap").name
    assert out.name != trueconv.dask.convolve(x, k, "same", boundary="reflect").name
    with dask.config.set(scheduler="threads", num_workers=2):
        got = out.compute()
    assert rel_err(got, scipy_reference(x_np, k, "same", boundary="wrap")) <= TOL["float64"]


def test_empty_operands():
    x = da.from_array(np.zeros((0, 5)), chunks=2)
    out = trueconv.dask.convolve(x, np.ones(3), "full")
    assert out.shape == (0, 7)
    assert out.compute().shape == (0, 7)
    x = da.from_array(np.ones((4, 5)), chunks=2)
    expected = tuple(trueconv.convolve(np.ones((4, 5)), np.ones(0), "same").shape)
    assert trueconv.dask.convolve(x, np.ones(0), "same").compute().shape == expected == (4, 0)


def test_zarr_round_trip(tmp_path):
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(6)
    x_np = rng.standard_normal((12, 10, 9)).astype(np.float32)
    da.from_array(x_np, chunks=(4, 5, 3)).to_zarr(str(tmp_path / "in.zarr"))
    x = da.from_zarr(str(tmp_path / "in.zarr"))
    k = rng.standard_normal((3, 4, 5)).astype(np.float32)
    out = trueconv.dask.convolve(x, k, "same", boundary="reflect")
    out.to_zarr(str(tmp_path / "out.zarr"))  # 'same' keeps the regular chunks zarr needs
    back = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert back.shape == x_np.shape
    assert tuple(back.chunks) == (4, 5, 3)
    ref = trueconv.convolve(x_np, k, "same", boundary="reflect")
    assert rel_err(back[...], ref) <= TOL["float32"]
    assert rel_err(back[...], scipy_reference(x_np, k, "same", boundary="reflect")) <= 1e-5


def test_kernel_tensor_with_grad_on_any_device_is_taken_from_the_host():
    x_np = np.arange(8.0)
    k = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    out = trueconv.dask.convolve(da.from_array(x_np, chunks=3), k, "full", device="cpu")
    np.testing.assert_array_equal(computed(out), np.convolve(x_np, [1.0, -1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_blocks_on_the_gpu(monkeypatch):
    devices = []
    original = signal.convolve

    def spy(x, k, mode, **kwargs):
        devices.append(x.device.type)
        return original(x, k, mode, **kwargs)

    monkeypatch.setattr(signal, "convolve", spy)
    rng = np.random.default_rng(7)
    x_np = rng.standard_normal((20, 30, 40)).astype(np.float32)
    k = rng.standard_normal((3, 5, 7)).astype(np.float32)
    x = da.from_array(x_np, chunks=(7, 16, 9))
    out = trueconv.dask.convolve(x, k, "same", boundary="symmetric", device="cuda")
    got = computed(out)
    assert set(devices) == {"cuda"}
    assert isinstance(got, np.ndarray)
    ref = scipy_reference(x_np, k, "same", boundary="symmetric")
    assert rel_err(got, ref) <= 1e-5


def test_cuda_requested_on_a_worker_without_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = trueconv.dask.convolve(da.ones(6, chunks=3), [1.0, 1.0], device="cuda")
    with pytest.raises(RuntimeError, match="this worker has no CUDA device"):
        out.compute()


# ------------------------------------------------------------------------------------------------
# errors: trueconv's own messages, before anything is scheduled
# ------------------------------------------------------------------------------------------------


BAD = [
    ({"mode": "sme"}, ValueError),
    ({"mode": None}, ValueError),
    ({"method": "fastest"}, ValueError),
    ({"boundary": "mirror"}, ValueError),
    ({"dims": 5}, ValueError),
    ({"dims": (1, -1)}, ValueError),
    ({"dims": 1.5}, TypeError),
    ({"fill_value": 0.5}, ValueError),  # int64 result
    ({"fill_value": "x"}, TypeError),
    ({"kernel": np.ones((2, 2, 2), dtype=np.int64)}, ValueError),  # more dims than input
    ({"kernel": np.ones((2, 9), dtype=np.int64), "mode": "valid"}, ValueError),  # mixed
    ({"kernel": "abc"}, TypeError),
    ({"kernel": np.ones(2, dtype=np.uint16)}, TypeError),
    ({"kernel": np.ones((4, 2), dtype=np.int64), "dims": -1}, ValueError),  # batch 4 vs 3
]


@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize(("bad", "exc"), BAD, ids=lambda v: repr(v)[:40])
def test_argument_errors_are_trueconvs(fname, bad, exc):
    x_np = np.arange(12, dtype=np.int64).reshape(3, 4)
    kwargs = {"kernel": np.array([[1, 2]]), "mode": "same", **bad}
    kernel, mode = kwargs.pop("kernel"), kwargs.pop("mode")
    with pytest.raises(exc) as expected:
        getattr(trueconv, fname)(x_np, kernel, mode, **kwargs)
    with pytest.raises(exc) as got:
        getattr(trueconv.dask, fname)(da.from_array(x_np, chunks=2), kernel, mode, **kwargs)
    assert str(got.value) == str(expected.value)
    assert str(got.value).startswith(f"{fname}(): ")


def test_unsupported_array_dtype_is_trueconvs_error():
    x_np = np.array(["a", "b"])
    with pytest.raises(TypeError) as expected:
        trueconv.convolve(x_np, [1])
    with pytest.raises(TypeError) as got:
        trueconv.dask.convolve(da.from_array(x_np), [1])
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("array", [np.ones(4), torch.ones(4), [1.0, 2.0]])
def test_non_dask_input(array):
    match = rf"convolve\(\): array must be a dask.array.Array; got {type(array).__name__}"
    with pytest.raises(TypeError, match=match):
        trueconv.dask.convolve(array, [1.0])


def test_bad_device_and_unknown_chunks():
    x = da.ones(5, chunks=2)
    with pytest.raises(ValueError, match=r"device must be None or a torch device .*'gpu0'"):
        trueconv.dask.convolve(x, [1.0], device="gpu0")
    unknown = x[x > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        trueconv.dask.convolve(unknown, [1.0])


def test_result_dtype_without_numpy_equivalent():
    x = da.from_array(np.array([True, False]), chunks=1)
    with pytest.raises(TypeError, match="bfloat16 has no numpy equivalent"):
        trueconv.dask.convolve(x, torch.ones(1, dtype=torch.bfloat16))


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'trueconv[dask]'")):
        trueconv.dask.convolve(np.ones(3), [1.0])
    with pytest.raises(ImportError, match=r"trueconv\.dask\.correlate\(\) needs Dask"):
        trueconv.dask.correlate(np.ones(3), [1.0])


def test_import_trueconv_needs_no_dask():
    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"  # any import of dask now fails
        "import trueconv, trueconv.dask\n"
        "print(trueconv.convolve([1, 2], [1, 1]).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 3, 2]"


@pytest.fixture
def two_torch_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    ("scheduler", "workers", "expected"),
    [("threads", 2, "share"), ("threads", 1, "all"), ("synchronous", None, "all")],
)
def test_tasks_on_pool_threads_take_their_share_of_torch_threads(
    monkeypatch, two_torch_threads, scheduler, workers, expected
):
    if not trueconv.dask._PER_THREAD_TORCH_THREADS:
        pytest.skip("torch's thread count is process-wide in this build (not OpenMP)")
    seen = []
    real = trueconv.dask.signal.convolve

    def spy(*args, **kwargs):
        seen.append(
            (threading.current_thread() is threading.main_thread(), torch.get_num_threads())
        )
        return real(*args, **kwargs)

    monkeypatch.setattr(trueconv.dask.signal, "convolve", spy)
    x = np.arange(64.0).reshape(8, 8)
    config = {"scheduler": scheduler}
    if workers is not None:
        config["num_workers"] = workers
    with dask.config.set(config):
        y = trueconv.dask.convolve(da.from_array(x, chunks=4), [[1.0, 2.0], [3.0, 4.0]]).compute()
    np.testing.assert_array_equal(y, trueconv.convolve(x, [[1.0, 2.0], [3.0, 4.0]], "same").numpy())
    assert len(seen) == 4
    want = 1 if expected == "share" else 2
    assert {threads for _, threads in seen} == {want}
    assert torch.get_num_threads() == 2  # the caller's setting is untouched
