"""``torch.autocast`` with the NN API: the same dtypes as torch's own convolutions.

Under autocast torch casts the floating operands of ``F.convNd`` other than float64 to the
autocast dtype (also when they differ) and returns that dtype. trueconv does the same: its
direct method is ``F.convNd`` in that dtype (bit for bit), its FFT computes in float32 and
returns the autocast dtype.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trueconv

DEVICES = [
    ("cpu", torch.bfloat16),
    pytest.param(
        "cuda",
        torch.float16,
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
    pytest.param(
        "cuda",
        torch.bfloat16,
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


@pytest.mark.parametrize(("device", "dtype"), DEVICES)
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_dtypes_and_values_follow_torch(device, dtype, method):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=gen).to(device)
    w = torch.randn(4, 3, 3, 3, generator=gen).to(device)
    b = torch.randn(4, generator=gen).to(device)
    with torch.autocast(device, dtype=dtype):
        for xi, wi in ((x, w), (x.double(), w.double()), (x.to(dtype), w)):
            ref = F.conv2d(xi, wi.flip(2, 3), padding=1)
            got = trueconv.conv2d(xi, wi, padding=1, method=method)
            assert got.dtype == ref.dtype
        ref = F.conv2d(x, w.flip(2, 3), b, padding=1)
        got = trueconv.conv2d(x, w, b, padding=1, method=method)
        ref_t = F.conv_transpose2d(x, w.transpose(0, 1).flip(2, 3), b, stride=2)
        got_t = trueconv.conv_transpose2d(x, w.transpose(0, 1), b, stride=2, method=method)
    assert got.dtype == ref.dtype == got_t.dtype == ref_t.dtype == dtype
    exact = F.conv2d(x.double(), w.double().flip(2, 3), b.double(), padding=1)
    if method == "direct":  # F.convNd in the autocast dtype: torch's own result
        assert torch.equal(got, ref)
        assert torch.equal(got_t, ref_t)
    # every method within the autocast dtype's rounding of the float64 result
    eps = torch.finfo(dtype).eps
    scale = exact.abs().max().item()
    assert (got.double() - exact).abs().max().item() <= 64 * eps * scale


def test_a_module_trains_under_autocast():
    torch.manual_seed(0)
    m = trueconv.nn.Conv2d(3, 4, 3, padding="same")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        assert y.dtype == torch.bfloat16
        loss = y.float().square().mean()
    loss.backward()
    assert m.weight.grad is not None
    assert m.weight.grad.dtype == torch.float32
    before = m.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, m.weight)


def test_autocast_under_compile():
    x, w = torch.randn(1, 3, 12, 12), torch.randn(4, 3, 3, 3)

    def f(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return trueconv.conv2d(x, w, padding=1, method="direct")

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True)(x, w)
    assert got.dtype == torch.bfloat16
    ref = f(x, w)
    assert (got.float() - ref.float()).abs().max().item() <= 0.05 * ref.float().abs().max().item()
