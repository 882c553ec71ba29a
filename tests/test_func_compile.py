"""Composition with PyTorch's machinery: ``torch.func`` (vmap, grad, jacrev, jvp), forward-mode
AD and ``torch.compile(fullgraph=True)``, each compared with the eager, unbatched call (itself
checked against scipy elsewhere) and, for derivatives, with finite differences or the
reverse-mode gradient.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jacrev, jvp, vmap

import trueconv

METHODS = ("auto", "direct", "fft", "overlap_add")
CASES = [  # (mode, boundary)
    ("full", "fill"),
    ("same", "fill"),
    ("same", "reflect"),
    ("same", "wrap"),
    ("valid", "fill"),
]
SHAPES = [((20,), (3,)), ((20,), (4,)), ((9, 10), (3, 2))]


def _ops(fname, method, mode, boundary):
    fn = getattr(trueconv, fname)
    return lambda x, k: fn(x, k, mode, method=method, boundary=boundary)


def _close(a, b, tol=1e-10):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


GRID = list(itertools.product(("convolve", "correlate"), METHODS, CASES, SHAPES))


@pytest.mark.parametrize(("fname", "method", "case", "shapes"), GRID)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.filterwarnings("error:There is a performance drop")  # a missing batching rule
def test_vmap_matches_the_loop(fname, method, case, shapes, dtype):
    f = _ops(fname, method, *case)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, *shapes[0], dtype=dtype, generator=gen)
    k = torch.randn(3, *shapes[1], dtype=dtype, generator=gen)
    # over both operands, the input only, the kernel only, and nested
    _close(vmap(f)(x, k), torch.stack([f(x[i], k[i]) for i in range(3)]))
    _close(vmap(f, in_dims=(0, None))(x, k[0]), torch.stack([f(x[i], k[0]) for i in range(3)]))
    _close(vmap(f, in_dims=(None, 0))(x[0], k), torch.stack([f(x[0], k[i]) for i in range(3)]))
    nested = vmap(vmap(f, in_dims=(None, 0)), in_dims=(0, None))(x, k)
    _close(nested, torch.stack([torch.stack([f(x[i], k[j]) for j in range(3)]) for i in range(3)]))


@pytest.mark.parametrize(("fname", "method", "case", "shapes"), GRID)
def test_grad_jacrev_jvp_and_forward_ad(fname, method, case, shapes):
    f = _ops(fname, method, *case)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shapes[0], dtype=torch.float64, generator=gen)
    k = torch.randn(*shapes[1], dtype=torch.float64, generator=gen)
    tx, tk = torch.randn_like(x), torch.randn_like(k)

    # torch.func.grad against autograd's reverse mode
    gx, gk = grad(lambda a, b: f(a, b).square().sum(), argnums=(0, 1))(x, k)
    xr, kr = x.clone().requires_grad_(), k.clone().requires_grad_()
    f(xr, kr).square().sum().backward()
    _close(gx, xr.grad)
    _close(gk, kr.grad)

    # jacrev: the Jacobian applied to a direction is the directional derivative, which for a
    # bilinear map is exact: f(tx, k) + f(x, tk)
    exact = f(tx, k) + f(x, tk)
    jx, jk = jacrev(f, argnums=(0, 1))(x, k)
    nd = x.ndim
    lin = (jx * tx).flatten(-nd).sum(-1) + (jk * tk).flatten(-k.ndim).sum(-1)
    _close(lin, exact)

    # forward mode: torch.func.jvp and torch.autograd.forward_ad
    _, t = jvp(f, (x, k), (tx, tk))
    _close(t, exact)
    with fwAD.dual_level():
        y = f(fwAD.make_dual(x, tx), fwAD.make_dual(k, tk))
        tangent = fwAD.unpack_dual(y).tangent
    assert tangent is not None, "forward-mode tangent dropped"
    _close(tangent, exact)
    eps = 1e-6  # and finite differences, independent of any AD
    fd = (f(x + eps * tx, k + eps * tk) - f(x - eps * tx, k - eps * tk)) / (2 * eps)
    _close(t, fd, tol=1e-6)


@pytest.mark.filterwarnings("error:There is a performance drop")
def test_vmap_convolve_separable_and_nn():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 12, 14, dtype=torch.float64, generator=gen)
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    f = lambda x, a, b: trueconv.convolve_separable(x, [a, b], "same")  # noqa: E731
    _close(vmap(f)(x, a, b), torch.stack([f(x[i], a[i], b[i]) for i in range(4)]))
    # terms: factors of shape (r, k) per sample
    ta, tb = torch.randn(4, 2, 3, dtype=torch.float64), torch.randn(4, 2, 5, dtype=torch.float64)
    _close(vmap(f)(x, ta, tb), torch.stack([f(x[i], ta[i], tb[i]) for i in range(4)]))
    xs = torch.randn(4, 2, 3, 9, 9, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 5, 3, 3, 3, dtype=torch.float64, generator=gen)
    for fn in (
        lambda x, w: trueconv.conv2d(x, w, padding="same", method="direct"),
        lambda x, w: trueconv.conv2d(x, w, padding=1, method="fft"),
        lambda x, w: trueconv.conv_transpose2d(x[:, :3], w[:3], stride=2),
    ):
        _close(vmap(fn)(xs, w), torch.stack([fn(xs[i], w[i]) for i in range(4)]))


def _compiled(fn):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fname", ["convolve", "correlate"])
def test_compile_fullgraph_signal(fname, method, recwarn):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 40, generator=gen)
    k = torch.randn(5, generator=gen)
    for mode, boundary in (("same", "reflect"), ("full", "fill")):
        f = _ops(fname, method, mode, boundary)
        _close(_compiled(f)(x, k), f(x, k), tol=1e-6)
    # no warnings from trueconv or from Dynamo about it (cached functions traced, graph
    # breaks) in normal use; torch's notes about itself (deprecations, inductor's complex
    # kernels) are not ours to silence
    ours = [
        w
        for w in recwarn
        if "trueconv" in w.filename or any(s in str(w.message) for s in ("Dynamo", "lru_cache"))
    ]
    assert not ours, [str(w.message)[:200] for w in ours]


def test_compile_fullgraph_new_shapes_replan():
    """Default dynamic shapes: a new shape compiles a graph planned for it (a long kernel
    goes to the transforms, a short one stays direct), results equal to eager."""
    torch._dynamo.reset()
    f = torch.compile(lambda x, k: trueconv.convolve(x, k, "same"), fullgraph=True)
    gen = torch.Generator().manual_seed(4)
    for n, m in ((64, 3), (80, 3), (4096, 1025), (96, 5)):
        x, k = torch.randn(n, generator=gen), torch.randn(m, generator=gen)
        _close(f(x, k), trueconv.convolve(x, k, "same"), tol=1e-5)


def test_compile_fullgraph_convolve_separable_with_terms():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 30, 34, dtype=torch.float64, generator=gen)
    f0, f1 = (torch.randn(2, n, dtype=torch.float64, generator=gen) for n in (5, 7))

    def f(x, f0, f1):
        return trueconv.convolve_separable(x, [f0, f1], "same", boundary="reflect")

    oracle = trueconv.convolve(x, f0.T @ f1, "same", dims=(-2, -1), boundary="reflect")
    _close(_compiled(f)(x, f0, f1), oracle)


def test_compile_errors_name_the_argument():
    f = _compiled(lambda x, k: trueconv.convolve(x, k, "middle"))
    with pytest.raises(Exception, match=r"convolve\(\): mode must be one of"):
        f(torch.ones(5), torch.ones(2))


def test_compiled_nn_model_trains_like_eager():
    torch.manual_seed(0)

    def model():
        return torch.nn.Sequential(
            trueconv.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            trueconv.nn.Conv2d(8, 8, 3, padding="same", padding_mode="reflect"),
            torch.nn.ReLU(),
            trueconv.nn.ConvTranspose2d(8, 2, 3, stride=2),
        )

    eager = model().double()
    compiled = model().double()
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    step_model = torch.compile(compiled, fullgraph=True)
    opts = [torch.optim.SGD(m.parameters(), lr=1e-2) for m in (eager, compiled)]
    gen = torch.Generator().manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for shape in ((4, 3, 16, 16), (2, 3, 20, 12), (4, 3, 16, 16)):  # new shapes recompile
            x = torch.randn(shape, dtype=torch.float64, generator=gen)
            losses = []
            for m, opt in zip((eager, step_model), opts):
                opt.zero_grad()
                loss = m(x).square().mean()
                loss.backward()
                opt.step()
                losses.append(loss.detach())
            _close(losses[1], losses[0], tol=1e-9)
    for p, q in zip(eager.parameters(), compiled.parameters()):
        _close(q.detach(), p.detach(), tol=1e-9)
    ours = [  # nothing printed in normal use (torch's notes about itself aside)
        w
        for w in caught
        if "trueconv" in w.filename or any(s in str(w.message) for s in ("Dynamo", "lru_cache"))
    ]
    assert not ours, [str(w.message)[:200] for w in ours]


@pytest.mark.parametrize("boundary", ["wrap", "symmetric", "reflect", "replicate"])
def test_compiled_boundary_extension_equals_eager(boundary):
    """Under compile the extension is built from slices (a torch inductor bug with
    index_select's backward, see trueconv.core.boundary); equal to the eager call (tested
    against numpy.pad and scipy elsewhere), pads longer than the input included."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen)
    for k in ((5, 3), (11, 9), (1, 4)):
        kernel = torch.randn(k, dtype=torch.float64, generator=gen)
        f = lambda t, kk=kernel: trueconv.convolve(t, kk, "same", boundary=boundary)  # noqa: E731
        _close(_compiled(f)(x), f(x))


@pytest.mark.parametrize("strict", [False, True])
def test_torch_export_of_nn_modules(strict):
    """torch.export (both modes) of a model with every kind of trueconv layer: TF padding,
    a transposed FFT layer, a reflect border, a large kernel ('auto' runs direct while
    exporting)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        trueconv.nn.Conv2d(3, 8, 3, stride=2, padding="SAME"),
        torch.nn.ReLU(),
        trueconv.nn.ConvTranspose2d(8, 3, 3, stride=2, padding="SAME", method="fft"),
        trueconv.nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"),
        trueconv.nn.Conv2d(3, 3, 31, padding="same"),
    )
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program = torch.export.export(model, (x,), strict=strict)
    _close(program.module()(x), model(x), tol=1e-5)
    ours = [w for w in caught if "trueconv" in w.filename or "lru_cache" in str(w.message)]
    assert not ours, [str(w.message)[:200] for w in ours]


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_nn_forward_mode(method):
    """jvp and forward_ad through the NN API equal the product rule (each layer is bilinear in
    input and weight): f(tx, w) + f(x, tw)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=gen)
    tx, tw = torch.randn_like(x), torch.randn_like(w)
    layers = [
        lambda x, w: trueconv.conv2d(x, w, padding="SAME", stride=2, method=method),
        lambda x, w: trueconv.conv2d(x, w, padding=2, padding_mode="reflect", method=method),
        lambda x, w: trueconv.conv_transpose2d(
            x[:, :3], w[:, :3].transpose(0, 1), stride=2, padding="SAME", method=method
        ),
    ]
    for f in layers:
        exact = f(tx, w) + f(x, tw)
        _close(jvp(f, (x, w), (tx, tw))[1], exact)
        with fwAD.dual_level():
            tangent = fwAD.unpack_dual(f(fwAD.make_dual(x, tx), fwAD.make_dual(w, tw))).tangent
        assert tangent is not None
        _close(tangent, exact)
