"""``trueconv.nn`` modules: drop-in subclasses of ``torch.nn`` convolutions that convolve.

Oracles: the ``torch.nn`` module itself with the weight flipped (``from_torch``/``to_torch``),
and torch's own constructor (signature, parameters, ``state_dict`` keys, initialisation). Also
``torch.compile``, ``torch.jit.trace``, ``torch.func.vmap`` and ``torch.onnx.export``.
"""

from __future__ import annotations

import copy
import inspect
import pickle
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

import trueconv
from conftest import rel_err

PAIRS = [
    (trueconv.nn.Conv1d, torch.nn.Conv1d, 1),
    (trueconv.nn.Conv2d, torch.nn.Conv2d, 2),
    (trueconv.nn.Conv3d, torch.nn.Conv3d, 3),
    (trueconv.nn.ConvTranspose1d, torch.nn.ConvTranspose1d, 1),
    (trueconv.nn.ConvTranspose2d, torch.nn.ConvTranspose2d, 2),
    (trueconv.nn.ConvTranspose3d, torch.nn.ConvTranspose3d, 3),
]
IDS = [ours.__name__ for ours, _, _ in PAIRS]
SIZES = {1: (10,), 2: (7, 6), 3: (5, 4, 6)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spatial(nd):
    return list(range(2, 2 + nd))


def _x(nd, channels=4, batch=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *SIZES[nd], generator=g, dtype=dtype)


def _kwargs(torch_cls, nd):
    """A non-trivial configuration each class accepts."""
    if torch_cls.__name__.startswith("ConvTranspose"):
        return {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "dilation": 1}
    return {"stride": 1, "padding": "same", "dilation": 2, "groups": 2, "padding_mode": "reflect"}


@pytest.mark.parametrize(("ours", "theirs", "nd"), PAIRS, ids=IDS)
def test_subclass_with_torch_constructor(ours, theirs, nd):
    """Same signature plus keyword-only ``method``; same parameters, state_dict, init."""
    assert issubclass(ours, theirs)
    sig_ours = inspect.signature(ours.__init__).parameters
    sig_theirs = inspect.signature(theirs.__init__).parameters
    assert list(sig_ours)[: len(sig_theirs)] == list(sig_theirs)
    for name, p in sig_theirs.items():
        assert sig_ours[name].default == p.default
    assert sig_ours["method"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig_ours["method"].default == "auto"

    kwargs = _kwargs(theirs, nd)
    torch.manual_seed(0)
    t = theirs(4, 6, 3, **kwargs)
    torch.manual_seed(0)
    m = ours(4, 6, 3, **kwargs)
    assert isinstance(m, theirs)
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight", "bias"]
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    for (_, a), (_, b) in zip(m.named_parameters(), t.named_parameters()):
        assert torch.equal(a, b)  # torch's initialisation, draw for draw
    assert m.method == "auto"
    assert "method='auto'" in repr(m)
    assert repr(m).startswith(f"{theirs.__name__}(")
    assert "method=" not in repr(t)


@pytest.mark.parametrize(("ours", "theirs", "nd"), PAIRS, ids=IDS)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_from_torch_keeps_outputs(ours, theirs, nd, method):
    kwargs = _kwargs(theirs, nd)
    t = theirs(4, 6, 3, **kwargs).double()
    m = ours.from_torch(t, method=method)
    assert type(m) is ours
    assert m.method == method
    assert torch.equal(m.weight, t.weight.flip(spatial(nd)))
    assert torch.equal(m.bias, t.bias)
    x = _x(nd)
    assert rel_err(m(x), t(x)) <= 1e-12
    # and back
    back = m.to_torch()
    assert type(back) is theirs
    assert torch.equal(back.weight, t.weight)
    assert rel_err(back(x), t(x)) == 0
    # gradients reach the parameters, mirrored
    m(x).square().sum().backward()
    t(x).square().sum().backward()
    assert rel_err(m.weight.grad, t.weight.grad.flip(spatial(nd))) <= 1e-11
    assert rel_err(m.bias.grad, t.bias.grad) <= 1e-11


def test_from_torch_copies_device_dtype_mode_and_grad_flags():
    t = torch.nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, bias=False).to(torch.float64).eval()
    t.weight.requires_grad_(False)
    state = torch.random.get_rng_state()
    m = trueconv.nn.Conv2d.from_torch(t)
    assert torch.equal(torch.random.get_rng_state(), state)  # no init drawn
    assert m.weight.dtype == torch.float64
    assert not m.training
    assert m.bias is None
    assert not m.weight.requires_grad
    assert (m.kernel_size, m.stride, m.padding) == ((3, 2), (2, 2), (1, 1))


def test_transposed_output_size():
    t = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1).double()
    m = trueconv.nn.ConvTranspose2d.from_torch(t)
    x = _x(2)
    for size in [(13, 11), (14, 12)]:
        out = m(x, output_size=size)
        assert out.shape[2:] == size
        assert rel_err(out, t(x, output_size=size)) <= 1e-12


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
def test_padding_modes_including_symmetric(padding_mode):
    m = trueconv.nn.Conv2d(4, 2, 3, padding=2, padding_mode=padding_mode).double()
    assert m.padding_mode == padding_mode
    x = _x(2)
    ref = trueconv.conv2d(x, m.weight, m.bias, padding=2, padding_mode=padding_mode)
    assert torch.equal(m(x), ref)
    if padding_mode == "symmetric":
        assert "padding_mode=symmetric" in repr(m)
        with pytest.raises(ValueError, match=re.escape("torch has no padding_mode='symmetric'")):
            m.to_torch()
    else:
        t = m.to_torch()
        assert t.padding_mode == padding_mode
        assert rel_err(t(x), m(x)) <= 1e-12


def test_full_and_asymmetric_padding_in_the_constructor():
    x = _x(2)
    m = trueconv.nn.Conv2d(4, 2, 3, padding="full", dilation=(1, 2)).double()
    assert m.padding == "full"
    assert m(x).shape == (2, 2, 9, 10)
    t = m.to_torch()
    assert t.padding == (2, 4)
    assert rel_err(t(x), m(x)) <= 1e-12
    a = trueconv.nn.Conv2d(4, 2, 3, padding=((0, 2), (1, 1))).double()
    assert a.padding == ((0, 2), (1, 1))
    assert a(x).shape == (2, 2, 7, 6)
    assert torch.equal(a(x), trueconv.conv2d(x, a.weight, a.bias, padding=((0, 2), (1, 1))))
    with pytest.raises(ValueError, match="pads symmetrically only"):
        a.to_torch()
    s = trueconv.nn.Conv2d(4, 2, 3, padding=((1, 1), (2, 2)))
    assert s.padding == (1, 2)  # symmetric pairs are stored as torch stores them


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "message"),
    [
        (
            trueconv.nn.Conv2d,
            {"padding_mode": "reflct"},
            ValueError,
            "Conv2d(): padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', "
            "'symmetric'; got 'reflct'.",
        ),
        (
            trueconv.nn.Conv1d,
            {"method": "fast"},
            ValueError,
            "Conv1d(): method must be one of 'auto', 'direct', 'fft'; got 'fast'.",
        ),
        (trueconv.nn.Conv3d, {"padding": "sme"}, ValueError, "Conv3d(): padding must be one of"),
        (
            trueconv.nn.Conv2d,
            {"padding": "same", "stride": 2},
            ValueError,
            "Conv2d(): padding='same' needs stride 1 (as in torch); got stride=2.",
        ),
        (
            trueconv.nn.ConvTranspose2d,
            {"padding_mode": "reflect"},
            ValueError,
            "ConvTranspose2d(): padding_mode must be one of 'zeros'; got 'reflect'.",
        ),
        (
            trueconv.nn.ConvTranspose1d,
            {"padding": "same"},
            ValueError,
            "ConvTranspose1d(): padding must be one of 'SAME', 'VALID', a non-negative int, or "
            "a tuple of 1 ints or 1 (before, after) pairs ('SAME' is TensorFlow's rule for "
            "every stride); got 'same'.",
        ),
        (
            trueconv.nn.ConvTranspose3d,
            {"method": "overlap_add"},
            ValueError,
            "ConvTranspose3d(): method must be one of 'auto', 'direct', 'fft'",
        ),
    ],
)
def test_constructor_errors(cls, kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        cls(2, 2, 3, **kwargs)


def test_from_torch_rejects_wrong_modules():
    with pytest.raises(TypeError, match=re.escape("module must be a torch.nn.Conv2d; got Conv1d")):
        trueconv.nn.Conv2d.from_torch(torch.nn.Conv1d(1, 1, 3))
    with pytest.raises(TypeError, match="already a trueconv Conv2d"):
        trueconv.nn.Conv2d.from_torch(trueconv.nn.Conv2d(1, 1, 3))
    with pytest.raises(TypeError, match=re.escape("module must be a torch.nn.ConvTranspose2d")):
        trueconv.nn.ConvTranspose2d.from_torch(torch.nn.Conv2d(1, 1, 3))


def test_state_dict_and_optimiser_interoperate_with_torch():
    t = torch.nn.Conv2d(3, 4, 3)
    m = trueconv.nn.Conv2d(3, 4, 3)
    m.load_state_dict(t.state_dict())  # same keys and shapes
    assert torch.equal(m.weight, t.weight)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = m.weight.detach().clone()
    m(torch.ones(1, 3, 5, 5)).sum().backward()
    opt.step()
    assert not torch.equal(m.weight, before)
    inits = [mod for mod in torch.nn.Sequential(m, t) if isinstance(mod, torch.nn.Conv2d)]
    assert len(inits) == 2


def test_pickle_deepcopy_and_missing_method_attribute():
    m = trueconv.nn.Conv2d(2, 2, 3, padding="full", padding_mode="symmetric", method="fft")
    x = torch.randn(1, 2, 5, 5)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.method == "fft"
        assert clone.padding == "full"
        assert torch.equal(clone(x), m(x))
    state = m.__dict__.copy()
    del state["method"]  # a module pickled before `method` existed
    old = trueconv.nn.Conv2d.__new__(trueconv.nn.Conv2d)
    old.__setstate__(state)
    assert old.method == "auto"


# -- torch.compile, torch.jit.trace, torch.func.vmap, torch.onnx.export ------------------------


def _net(method):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        trueconv.nn.Conv2d(3, 4, 3, padding="same", padding_mode="symmetric", method=method),
        torch.nn.ReLU(),
        trueconv.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, method=method),
    ).eval()


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_torch_compile_eager_backend(method):
    net = _net(method)
    x = torch.randn(2, 3, 8, 8)
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    assert rel_err(compiled(x), net(x)) <= 1e-6
    f = torch.compile(
        lambda a, w: trueconv.conv1d(a, w, padding="full", method=method), backend="eager"
    )
    a, w = torch.randn(2, 1, 9), torch.randn(3, 1, 4)
    assert rel_err(f(a, w), F.conv1d(a, w.flip(-1), padding=3)) <= 1e-6


@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*is deprecated:DeprecationWarning")
def test_torch_compile_inductor():
    """One real compile (the inductor backend, C++ codegen): a few seconds on CPU."""
    net = _net("direct")
    x = torch.randn(2, 3, 8, 8)
    torch._dynamo.reset()
    compiled = torch.compile(net)
    assert rel_err(compiled(x), net(x)) <= 1e-5


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "error::torch.jit.TracerWarning")
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_torch_jit_trace(method):
    """No TracerWarning: shape planning reads plain ints, only tensor ops are recorded."""
    net = _net(method)
    x = torch.randn(2, 3, 8, 8)
    traced = torch.jit.trace(net, x)
    assert rel_err(traced(x), net(x)) <= 1e-6
    x2 = torch.randn(2, 3, 8, 8)
    assert rel_err(traced(x2), net(x2)) <= 1e-6


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_vmap_over_inputs_weights_and_modules(method):
    x = torch.randn(5, 2, 3, 7, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64)

    def f(xi):
        return trueconv.conv2d(
            xi, w, padding=((1, 0), (1, 1)), padding_mode="reflect", stride=2, method=method
        )

    out = torch.func.vmap(f)(x)
    assert rel_err(out, torch.stack([f(xi) for xi in x])) <= 1e-12

    ws = torch.randn(5, 4, 3, 3, 2, dtype=torch.float64)  # an ensemble of weights

    def g(wi):
        return trueconv.conv_transpose2d(x[0], wi.transpose(0, 1), stride=2, method=method)

    out = torch.func.vmap(g)(ws)
    assert rel_err(out, torch.stack([g(wi) for wi in ws])) <= 1e-12

    # a module's parameters stacked and vmapped with functional_call
    models = [trueconv.nn.Conv2d(3, 4, 3, padding="full", method=method).double() for _ in range(3)]
    params, _ = torch.func.stack_module_state(models)

    def call(p, xi):
        return torch.func.functional_call(models[0], p, (xi,))

    out = torch.func.vmap(call, in_dims=(0, None))(params, x[0])
    assert rel_err(out, torch.stack([mod(x[0]) for mod in models])) <= 1e-12


@pytest.fixture(scope="module")
def onnx_export():
    """One export for the ONNX tests: a large kernel, so 'auto' would pick the FFT."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        trueconv.nn.Conv2d(3, 4, 17, padding="same", padding_mode="symmetric"),
        trueconv.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1),
    ).eval()
    x = torch.randn(1, 3, 20, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (x,), dynamo=True, verbose=False)
    return onnx, net, x, program.model_proto


def test_onnx_export(onnx_export):
    """'auto' runs 'direct' while exporting: the graph is flip + conv, which ONNX has."""
    onnx, _, _, model = onnx_export
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "ConvTranspose"} <= ops
    assert not any(op.startswith("DFT") for op in ops)


def test_onnx_runtime_matches(onnx_export):
    onnxruntime = pytest.importorskip("onnxruntime")
    _, net, x, model = onnx_export
    session = onnxruntime.InferenceSession(model.SerializeToString())
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert rel_err(torch.from_numpy(out), net(x)) <= 1e-5


def test_warnings_stay_quiet_in_forward():
    """Even kernels with 'same': no "zero-padded copy" warning from torch either."""
    m = trueconv.nn.Conv2d(2, 2, (2, 3), padding="same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(torch.randn(1, 2, 5, 5))
