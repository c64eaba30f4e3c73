"""``autocast`` as a mode: nesting and disabling, decorator use, threads, the weight-cast cache, float32
master weights and their gradients, whole models against ``torch.autocast``, the bfloat16 dtype, and
``Function.apply`` left alone when no low precision is in use."""
import threading

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.amp import autocast_mode
from somanet.autograd import anomaly
from somanet.autograd.function import Function

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

BF16 = somanet.bfloat16


def _linear_inputs():
    x = somanet.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    w = somanet.tensor(np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    return x, w


def test_nested_disabled_region_runs_float32():
    x, w = _linear_inputs()
    with somanet.autocast("cpu", dtype=BF16):
        assert somanet.is_autocast_enabled() and somanet.get_autocast_dtype("cpu") == BF16
        assert F.linear(x, w).dtype == BF16
        with somanet.autocast("cpu", enabled=False):
            assert not somanet.is_autocast_enabled()
            assert F.linear(x, w).dtype == somanet.float32
            with somanet.autocast("cpu", dtype=somanet.float16):
                assert F.linear(x, w).dtype == somanet.float16
            assert F.linear(x, w).dtype == somanet.float32
        assert F.linear(x, w).dtype == BF16
    assert not somanet.is_autocast_enabled()
    assert F.linear(x, w).dtype == somanet.float32


def test_region_is_left_on_exceptions_and_works_as_decorator():
    x, w = _linear_inputs()
    with pytest.raises(ValueError):
        with somanet.autocast("cpu", dtype=BF16):
            raise ValueError
    assert not somanet.is_autocast_enabled()

    @somanet.autocast("cpu", dtype=somanet.float16)
    def forward(a):
        return F.linear(a, w)

    assert forward(x).dtype == somanet.float16
    assert F.linear(x, w).dtype == somanet.float32


def test_autocast_is_per_thread():
    x, w = _linear_inputs()
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait()
        seen["other"] = F.linear(x, w).dtype
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with somanet.autocast("cpu", dtype=BF16):
        inside.set()
        done.wait()
        seen["main"] = F.linear(x, w).dtype
    t.join()
    assert seen == {"main": BF16, "other": somanet.float32}


def test_cuda_autocast_warns_and_is_disabled():
    x, w = _linear_inputs()
    with pytest.warns(UserWarning, match="not available"):
        region = somanet.autocast("cuda")
    with region:
        assert F.linear(x, w).dtype == somanet.float32
    with pytest.warns(UserWarning):
        with somanet.cuda.amp.autocast():
            assert F.linear(x, w).dtype == somanet.float32
    with somanet.cpu.amp.autocast(dtype=somanet.float16):
        assert F.linear(x, w).dtype == somanet.float16


def test_weights_are_cast_once_per_region(monkeypatch):
    x, w = _linear_inputs()
    casts = []
    real = autocast_mode.convert

    def counting(t, dtype, **kwargs):
        casts.append(t)
        return real(t, dtype, **kwargs)

    monkeypatch.setattr(autocast_mode, "convert", counting)
    with somanet.autocast("cpu", dtype=BF16):
        a = F.linear(x, w)
        b = F.linear(x * 2, w)
    assert sum(c is w for c in casts) == 1
    with somanet.autocast("cpu", dtype=BF16):
        F.linear(x, w)
        with somanet.no_grad():
            w.mul_(0.5)  # an in-place update makes the cached copy stale
        c = F.linear(x, w)
    assert sum(c is w for c in casts) == 3
    np.testing.assert_allclose(c.float().detach().numpy(), 0.5 * a.float().detach().numpy(), rtol=2 ** -7)
    casts.clear()
    with somanet.autocast("cpu", dtype=BF16, cache_enabled=False):
        F.linear(x, w)
        F.linear(x, w)
    assert sum(c is w for c in casts) == 2
    (a.float().sum() + b.float().sum()).backward()
    assert w.grad.dtype == somanet.float32


def test_float32_master_weights_get_float32_gradients_like_torch():
    rng = np.random.default_rng(2)
    xs, ws, bs = (rng.standard_normal(s).astype(np.float32) for s in ((8, 5), (4, 5), (4,)))
    for s_dtype, t_dtype in ((BF16, torch.bfloat16), (somanet.float16, torch.float16)):
        w, b = somanet.tensor(ws, requires_grad=True), somanet.tensor(bs, requires_grad=True)
        tw, tb = torch.tensor(ws, requires_grad=True), torch.tensor(bs, requires_grad=True)
        with somanet.autocast("cpu", dtype=s_dtype):
            loss = F.mse_loss(F.linear(somanet.tensor(xs), w, b), somanet.zeros(8, 4))
        with torch.autocast("cpu", dtype=t_dtype):
            tloss = torch.nn.functional.mse_loss(torch.nn.functional.linear(torch.tensor(xs), tw, tb),
                                                 torch.zeros(8, 4))
        assert loss.dtype == somanet.float32 and w.dtype == somanet.float32
        loss.backward()
        tloss.backward()
        assert w.grad.dtype == b.grad.dtype == somanet.float32
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=2 ** -6, atol=2 ** -6)
        np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=2 ** -6, atol=2 ** -6)


def _build(lib):
    net = lib.ModuleDict({"conv1": lib.Conv2d(3, 8, 3, padding=1), "bn": lib.BatchNorm2d(8),
                          "conv2": lib.Conv2d(8, 8, 3, stride=2), "fc1": lib.Linear(32, 16),
                          "ln": lib.LayerNorm(16), "fc2": lib.Linear(16, 5)})
    return net


def _forward(net, x, Fn, trace):
    h = Fn.relu(net["bn"](net["conv1"](x)))
    trace.append(("conv1+bn+relu", h.dtype))
    h = Fn.max_pool2d(Fn.relu(net["conv2"](h)), 1)
    trace.append(("conv2+relu+maxpool", h.dtype))
    h = Fn.adaptive_avg_pool2d(h, 2).flatten(1)
    trace.append(("avgpool", h.dtype))
    h = net["ln"](Fn.gelu(net["fc1"](h)))
    trace.append(("fc1+gelu+layernorm", h.dtype))
    logits = net["fc2"](h)
    trace.append(("fc2", logits.dtype))
    p = Fn.softmax(logits, -1)
    trace.append(("softmax", p.dtype))
    return logits


@pytest.mark.parametrize("kind", ["bf16", "fp16"])
def test_cnn_matches_torch_autocast_layer_by_layer(kind):
    s_dtype, t_dtype, ulp = {"bf16": (BF16, torch.bfloat16, 2 ** -8), "fp16": (somanet.float16, torch.float16,
                                                                              2 ** -11)}[kind]
    torch.manual_seed(0)
    tnet = _build(torch.nn)
    snet = _build(nn)
    snet.load_state_dict({k: somanet.tensor(v.detach().numpy()) for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3, 9, 9)).astype(np.float32)
    target = np.array([0, 3, 1, 4])
    s_trace, t_trace = [], []
    with somanet.autocast("cpu", dtype=s_dtype):
        s_logits = _forward(snet, somanet.tensor(x), F, s_trace)
        s_loss = F.cross_entropy(s_logits, somanet.tensor(target))
    with torch.autocast("cpu", dtype=t_dtype):
        t_logits = _forward(tnet, torch.tensor(x), torch.nn.functional, t_trace)
        t_loss = torch.nn.functional.cross_entropy(t_logits, torch.tensor(target))
    assert [(n, str(d)) for n, d in s_trace] == [(n, str(d).replace("torch.", "")) for n, d in t_trace]
    scale = float(t_logits.detach().abs().max())
    np.testing.assert_allclose(s_logits.float().detach().numpy(), t_logits.float().detach().numpy(),
                               atol=16 * ulp * scale)
    assert abs(s_loss.item() - t_loss.item()) < 16 * ulp * t_loss.item()
    s_loss.backward()
    t_loss.backward()
    refs = {name: p.grad.numpy() for name, p in tnet.named_parameters()}
    scale = max(float(np.abs(g).max()) for g in refs.values())
    for name, p in snet.named_parameters():
        assert p.grad.dtype == somanet.float32
        np.testing.assert_allclose(p.grad.numpy(), refs[name], atol=64 * ulp * scale, err_msg=name)


@pytest.mark.parametrize("low_input", [False, True])
@pytest.mark.parametrize("name", ["mha", "lstm", "rnn", "gru", "lstm_cell", "gru_cell", "transformer_layer", "conv"])
def test_modules_match_torch_autocast_dtypes(name, low_input):
    builders = {
        "mha": lambda lib: lib.MultiheadAttention(8, 2), "lstm": lambda lib: lib.LSTM(8, 4),
        "rnn": lambda lib: lib.RNN(8, 4), "gru": lambda lib: lib.GRU(8, 4),
        "lstm_cell": lambda lib: lib.LSTMCell(8, 4), "gru_cell": lambda lib: lib.GRUCell(8, 4),
        "transformer_layer": lambda lib: lib.TransformerEncoderLayer(8, 2, 16, dropout=0.0),
        "conv": lambda lib: lib.Conv1d(3, 4, 3),
    }
    torch.manual_seed(0)
    tm, sm = builders[name](torch.nn), builders[name](nn)
    sm.load_state_dict({k: somanet.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 8) if "cell" in name else (5, 3, 8)).astype(np.float32)
    args = (lambda t: (t, t, t)) if name == "mha" else (lambda t: (t,))
    sx, tx = somanet.tensor(x), torch.tensor(x)
    if low_input:  # the input comes from an earlier low-precision layer
        sx, tx = sx.to(BF16), tx.to(torch.bfloat16)
    with somanet.autocast("cpu", dtype=BF16):
        ours = sm(*args(sx))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = tm(*args(tx))

    def flat(o):
        return [z for i in o for z in flat(i)] if isinstance(o, (tuple, list)) else [o]

    for a, b in zip(flat(ours), flat(ref)):
        assert str(a.dtype) == str(b.dtype).replace("torch.", "")
        np.testing.assert_allclose(np.asarray(a.detach().array, np.float32), b.detach().float().numpy(),
                                   atol=0.02 * float(b.detach().abs().max()))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # exp of the infinities and NaN below
def test_bfloat16_dtype_conversion_and_rounding():
    values = np.array([1.0, 1.00390625, 1.01171875, -3.14159, 1e-3, 65280.0, 3.4e38, np.inf, -np.inf, np.nan,
                       1e-39, 0.0], np.float32)
    x = somanet.tensor(values, requires_grad=True)
    b = x.to(BF16)
    assert b.dtype == BF16 and b.dtype == np.dtype(ml_dtypes.bfloat16) and b.is_floating_point()
    assert np.dtype(BF16) == np.dtype(ml_dtypes.bfloat16) and BF16.itemsize == 2 and b.element_size() == 2
    ref = torch.tensor(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(b.float().numpy() if not b.requires_grad else b.detach().float().numpy(), ref)
    back = b.float()
    assert back.dtype == somanet.float32 and type(back) is somanet.Tensor
    assert b.half().dtype == somanet.float16 and b.double().dtype == somanet.float64
    assert b.to(somanet.float32).dtype == somanet.float32 and b.to("cpu").dtype == BF16
    (back * somanet.tensor(np.arange(12, dtype=np.float32))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(12, dtype=np.float32))  # bf16 holds 0..11 exactly
    assert "dtype=somanet.bfloat16" in repr(somanet.tensor([1.5]).to(BF16))
    # Ops on bfloat16 tensors outside autocast stay bfloat16, rounded as PyTorch rounds them.
    y = somanet.tensor(values[:6]).to(BF16)
    ty = torch.tensor(values[:6]).to(torch.bfloat16)
    for op in (lambda t: t * 3.1, lambda t: t.exp() if isinstance(t, torch.Tensor) else t.exp(), lambda t: t + t,
               lambda t: t.reshape(2, 3).sum(0), lambda t: t[1:4]):
        ours, theirs = op(y), op(ty)
        assert ours.dtype == BF16 and theirs.dtype == torch.bfloat16
        np.testing.assert_array_equal(ours.float().numpy(), theirs.float().numpy())
    created = somanet.zeros(3, dtype=BF16) + 1.5
    assert created.dtype == BF16 and created.tolist() == [1.5, 1.5, 1.5]


def test_apply_is_untouched_without_low_precision():
    x, w = _linear_inputs()
    plain = anomaly._plain_apply
    if autocast_mode._sticky:  # bfloat16 was used earlier in this process: the dispatch stays on for it
        assert Function.__dict__["apply"] is anomaly._outer_apply[0]
        return
    assert Function.__dict__["apply"] is plain
    with somanet.autocast("cpu", dtype=somanet.float16):
        assert Function.__dict__["apply"] is not plain
        y = F.linear(x, w)
    assert Function.__dict__["apply"] is plain
    assert y.dtype == somanet.float16


def test_anomaly_mode_inside_autocast():
    x, w = _linear_inputs()
    with somanet.autocast("cpu", dtype=somanet.float16):
        with somanet.autograd.detect_anomaly():
            assert F.linear(x, w).dtype == somanet.float16
            with pytest.raises(RuntimeError, match="anomaly detected: Log"):
                somanet.log(F.linear(x, w) - 100.0)
        assert F.linear(x, w).dtype == somanet.float16
    assert F.linear(x, w).dtype == somanet.float32


def test_custom_fwd_casts_inputs_and_runs_without_autocast():
    from somanet.amp import custom_bwd, custom_fwd

    seen = {}

    class Square(somanet.autograd.Function):
        @staticmethod
        @custom_fwd(device_type="cpu", cast_inputs=somanet.float32)
        def forward(ctx, x):
            seen["autocast"], seen["dtype"] = somanet.is_autocast_enabled(), x.dtype
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @custom_bwd(device_type="cpu")
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x, w = _linear_inputs()
    with somanet.autocast("cpu", dtype=BF16):
        y = Square.apply(F.linear(x, w))
    assert seen == {"autocast": False, "dtype": somanet.float32} and y.dtype == somanet.float32
    y.sum().backward()
    assert w.grad.dtype == somanet.float32
