"""Module backward hooks, tensor hooks, anomaly mode and activation checkpointing against PyTorch."""
import tracemalloc

import numpy as np
import pytest

import somanet
from reference import assert_close, torch_or_skip
from somanet.utils.checkpoint import checkpoint, checkpoint_sequential


def _hooked_run(lib, x_requires_grad):
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 5
    m = lib.nn.Sequential(lib.nn.Linear(3, 2), lib.nn.Tanh())
    with lib.no_grad():
        m[0].weight.copy_(lib.tensor(w))
        m[0].bias.fill_(0.1)
    log = []

    def pre(mod, grad_output):
        log.append(("pre", type(mod).__name__, [round(g.sum().item(), 5) for g in grad_output]))
        return (grad_output[0] * 2,)

    def full(mod, grad_input, grad_output):
        log.append(("full", type(mod).__name__, [None if g is None else round(g.sum().item(), 5) for g in grad_input],
                    [round(g.sum().item(), 5) for g in grad_output]))
        if grad_input[0] is not None:
            return (grad_input[0] + 1,)
        return None

    handles = [m[0].register_full_backward_pre_hook(pre), m[0].register_full_backward_hook(full),
               m.register_full_backward_hook(full)]
    x = lib.ones(4, 3, requires_grad=x_requires_grad)
    m(x).pow(2).sum().backward()
    log.append(("x.grad", None if x.grad is None else round(x.grad.sum().item(), 5)))
    log.append(("w.grad", round(m[0].weight.grad.sum().item(), 5)))
    for h in handles:
        h.remove()
    m.zero_grad()
    m(lib.ones(4, 3)).sum().backward()
    log.append(("after remove", round(m[0].weight.grad.sum().item(), 5)))
    return log


@pytest.mark.parametrize("x_requires_grad", [True, False])
def test_full_backward_hooks_match_torch(x_requires_grad):
    torch = torch_or_skip()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _hooked_run(torch, x_requires_grad)
    assert _hooked_run(somanet, x_requires_grad) == ref


def test_tensor_hooks_and_retain_grad_match_torch():
    torch = torch_or_skip()

    def run(lib):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * 3
        y.retain_grad()
        h = y.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
        h.remove()
        return x.grad, y.grad

    for a, b in zip(run(somanet), run(torch)):
        assert_close(a, b)


def test_forward_pre_hook_with_kwargs():
    lin = somanet.nn.Linear(2, 2)
    seen = []

    def hook(mod, args, kwargs):
        seen.append(sorted(kwargs))
        return (args[0] * 0,), kwargs

    lin.register_forward_pre_hook(hook, with_kwargs=True)
    out = lin(somanet.ones(1, 2))
    np.testing.assert_allclose(out.array, lin.bias.array[None], rtol=1e-6)
    assert seen == [[]]


def test_anomaly_mode_names_the_op_and_the_user_line():
    x = somanet.tensor([1.0, 0.0], requires_grad=True)
    with somanet.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"(?s)Log forward produced Inf.*test_hooks_anomaly_checkpoint\.py"):
            (x * 2).log()
        y = x.sqrt()
        with pytest.raises(RuntimeError, match=r"(?s)Sqrt backward returned Inf.*shapes.*test_hooks_anomaly_check"):
            y.sum().backward()
        # Values written on purpose (an attention mask) are not anomalies.
        somanet.zeros(3).masked_fill(somanet.tensor([True, False, True]), float("-inf"))
    assert not somanet.autograd.is_anomaly_enabled()
    (x * 2).log()  # off again: no check


def test_anomaly_mode_costs_nothing_when_off():
    # Whatever apply is in place (the plain one, or another mode's dispatch) comes back when anomaly mode ends.
    before = somanet.autograd.Function.__dict__["apply"]
    with somanet.autograd.set_detect_anomaly(True):
        assert somanet.autograd.is_anomaly_enabled()
    assert somanet.autograd.Function.__dict__["apply"] is before


def _deep_mlp(depth=12, width=256):
    somanet.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [somanet.nn.Linear(width, width), somanet.nn.GELU(), somanet.nn.Dropout(0.1)]
    return somanet.nn.Sequential(*layers)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_checkpoint_sequential_gives_identical_gradients_with_less_memory():
    net = _deep_mlp()
    x = somanet.randn(512, 256)

    def plain():
        somanet.manual_seed(5)
        net(x).sum().backward()

    def checkpointed():
        somanet.manual_seed(5)
        checkpoint_sequential(net, 4, x).sum().backward()

    peak_plain = _peak_bytes(plain)
    grads = [p.grad.array.copy() for p in net.parameters()]
    net.zero_grad()
    peak_ckpt = _peak_bytes(checkpointed)
    for g, p in zip(grads, net.parameters()):
        np.testing.assert_array_equal(g, p.grad.array)
    assert peak_ckpt < 0.6 * peak_plain, (peak_ckpt, peak_plain)


def test_checkpoint_passes_input_gradients_and_kwargs():
    torch = torch_or_skip()
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)

    def run(lib, ckpt):
        x = lib.tensor(w, requires_grad=True)
        s = lib.tensor(2.0, requires_grad=True)

        def block(a, scale, power=2):
            return (a * scale).tanh() ** power

        out = ckpt(block, x, s, power=3, use_reentrant=False) if ckpt else block(x, s, power=3)
        out.sum().backward()
        return out, x.grad, s.grad

    import torch.utils.checkpoint as tc

    for a, b in zip(run(somanet, checkpoint), run(torch, tc.checkpoint)):
        assert_close(a, b, rtol=1e-5, atol=1e-6)
