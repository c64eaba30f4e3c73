"""somanet.optim.swa_utils against torch.optim.swa_utils: AveragedModel (EMA and SWA, with and without
buffers, multi-tensor and per-tensor averaging functions), update_bn and SWALR.

The averaged models are fed the same sequence of weights in both frameworks (random weights copied
into both models before every update, as an optimizer would produce them) and compared after each update.
"""
import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.optim import lr_scheduler
from somanet.optim.swa_utils import (SWALR, AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn, get_swa_avg_fn,
                                     get_swa_multi_avg_fn, update_bn)

from reference import copy_state

torch = pytest.importorskip("torch")
tsw = torch.optim.swa_utils


def _pair():
    t_net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    s_net = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3))
    copy_state(t_net, s_net)
    return s_net, t_net


def _new_weights(s_net, t_net, rng, step):
    """Give both models the same new parameters and buffers (as after an optimizer step and a forward pass)."""
    state = {}
    for name, value in t_net.state_dict().items():
        if value.dtype == torch.int64:
            state[name] = torch.tensor(step * 3 + 1)
        else:
            draw = rng.standard_normal(tuple(value.shape)).astype(np.float32)
            state[name] = torch.tensor(np.abs(draw) if "running_var" in name else draw)
    t_net.load_state_dict(state)
    copy_state(t_net, s_net)


def _assert_same(s_avg, t_avg, what):
    t_state = t_avg.state_dict()
    s_state = s_avg.state_dict()
    assert list(s_state) == list(t_state), what
    for name, value in t_state.items():
        # bit-identical on an FMA machine; one float32 rounding step allowed elsewhere
        np.testing.assert_allclose(s_state[name].array, value.numpy(), rtol=3e-7, atol=0, err_msg=f"{what}: {name}")
        assert s_state[name].array.dtype == value.numpy().dtype, name


@pytest.mark.parametrize("kind", ["ema_multi", "ema_single", "swa_default", "swa_multi", "swa_single"])
@pytest.mark.parametrize("use_buffers", [False, True])
def test_averaged_model_follows_pytorch_step_by_step(kind, use_buffers):
    s_net, t_net = _pair()
    fns = {"ema_multi": (dict(multi_avg_fn=get_ema_multi_avg_fn(0.9)),
                         dict(multi_avg_fn=tsw.get_ema_multi_avg_fn(0.9))),
           "ema_single": (dict(avg_fn=get_ema_avg_fn(0.8)), dict(avg_fn=tsw.get_ema_avg_fn(0.8))),
           "swa_default": ({}, {}),
           "swa_multi": (dict(multi_avg_fn=get_swa_multi_avg_fn()), dict(multi_avg_fn=tsw.get_swa_multi_avg_fn())),
           "swa_single": (dict(avg_fn=get_swa_avg_fn()), dict(avg_fn=tsw.get_swa_avg_fn()))}[kind]
    s_avg = AveragedModel(s_net, use_buffers=use_buffers, **fns[0])
    t_avg = tsw.AveragedModel(t_net, use_buffers=use_buffers, **fns[1])
    _assert_same(s_avg, t_avg, "at construction")
    rng = np.random.default_rng(0)
    if kind == "swa_multi" and use_buffers:
        # the integer buffer (num_batches_tracked): PyTorch refuses the integer division, and so does somanet
        for avg, net in ((t_avg, t_net), (s_avg, s_net)):
            avg.update_parameters(net)
            with pytest.raises(RuntimeError, match="nteger"):
                avg.update_parameters(net)
        return
    for step in range(6):
        _new_weights(s_net, t_net, rng, step)
        s_avg.update_parameters(s_net)
        t_avg.update_parameters(t_net)
        _assert_same(s_avg, t_avg, f"{kind}, update {step + 1}")
    assert int(s_avg.n_averaged.array) == 6
    x = rng.standard_normal((4, 5)).astype(np.float32)
    s_avg.eval()
    t_avg.eval()
    with torch.no_grad():
        expected = t_avg(torch.tensor(x)).numpy()
    np.testing.assert_allclose(s_avg(somanet.tensor(x)).array, expected, rtol=1e-5, atol=1e-6)


def test_ema_of_a_trained_model_matches_pytorch():
    """The EMA of a model trained by SGD in both frameworks from the same start (the training itself agrees
    to float32 rounding, so the comparison allows that)."""
    s_net, t_net = _pair()
    s_ema = AveragedModel(s_net, multi_avg_fn=get_ema_multi_avg_fn(0.95), use_buffers=True)
    t_ema = tsw.AveragedModel(t_net, multi_avg_fn=tsw.get_ema_multi_avg_fn(0.95), use_buffers=True)
    s_opt = optim.SGD(s_net.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_net.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    for _ in range(8):
        x = rng.standard_normal((16, 5)).astype(np.float32)
        y = rng.standard_normal((16, 3)).astype(np.float32)
        s_opt.zero_grad()
        ((s_net(somanet.tensor(x)) - somanet.tensor(y)) ** 2).mean().backward()
        s_opt.step()
        s_ema.update_parameters(s_net)
        t_opt.zero_grad()
        ((t_net(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        t_opt.step()
        t_ema.update_parameters(t_net)
    for name, value in t_ema.state_dict().items():
        np.testing.assert_allclose(s_ema.state_dict()[name].array, value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_averaged_model_state_dict_round_trip_and_checks():
    s_net, t_net = _pair()
    s_avg = AveragedModel(s_net, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    s_avg.update_parameters(s_net)
    state = {k: v.array.copy() for k, v in s_avg.state_dict().items()}
    other = AveragedModel(nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3)))
    other.load_state_dict(state)
    assert int(other.n_averaged.array) == 1
    np.testing.assert_array_equal(other.module[0].weight.array, s_net[0].weight.array)
    assert s_avg.module[0].weight is not s_net[0].weight                         # a deep copy
    with pytest.raises(AssertionError):
        AveragedModel(s_net, avg_fn=get_ema_avg_fn(), multi_avg_fn=get_ema_multi_avg_fn())
    with pytest.raises(ValueError, match="decay"):
        get_ema_multi_avg_fn(1.5)


def test_update_bn_matches_pytorch():
    s_net, t_net = _pair()
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((n, 5)).astype(np.float32) * 2 + 1 for n in (8, 5, 11)]
    t_net[1].momentum = 0.3
    s_net[1].momentum = 0.3
    t_net.eval()
    s_net.eval()
    tsw.update_bn([(torch.tensor(b), torch.zeros(len(b))) for b in batches], t_net)
    update_bn([(somanet.tensor(b), somanet.zeros(len(b))) for b in batches], s_net)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(s_net[1], name).array, getattr(t_net[1], name).numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    assert not s_net.training and s_net[1].momentum == 0.3
    update_bn([somanet.tensor(b) for b in batches], s_net)                       # plain tensors work too
    np.testing.assert_allclose(s_net[1].running_mean.array, t_net[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
    update_bn([somanet.tensor(batches[0])], nn.Linear(5, 2))                     # no batch norm: nothing to do


def _lr_sequences(make_s, make_t, steps=12, groups=2):
    s_params = [somanet.zeros(2, requires_grad=True) for _ in range(groups)]
    t_params = [torch.zeros(2, requires_grad=True) for _ in range(groups)]
    s_opt = optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(s_params)], lr=0.1)
    t_opt = torch.optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(t_params)], lr=0.1)
    s_sched, t_sched = make_s(s_opt), make_t(t_opt)
    s_seq, t_seq = [], []
    for _ in range(steps):
        s_opt.step()
        t_opt.step()
        for sched in (s_sched if isinstance(s_sched, list) else [s_sched]):
            sched.step()
        for sched in (t_sched if isinstance(t_sched, list) else [t_sched]):
            sched.step()
        s_seq.append([g["lr"] for g in s_opt.param_groups])
        t_seq.append([g["lr"] for g in t_opt.param_groups])
    return s_seq, t_seq, s_sched, t_sched


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 5])
@pytest.mark.parametrize("swa_lr", [0.05, [0.01, 0.5]])
def test_swalr_matches_pytorch(strategy, anneal_epochs, swa_lr):
    s_seq, t_seq, s_sched, t_sched = _lr_sequences(
        lambda o: SWALR(o, swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy),
        lambda o: tsw.SWALR(o, swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy))
    np.testing.assert_allclose(s_seq, t_seq, rtol=1e-12, atol=0)
    np.testing.assert_allclose(s_sched.get_last_lr(), t_sched.get_last_lr(), rtol=1e-12)


def test_swalr_after_another_scheduler_and_state_dict():
    """SWALR starts from whatever rate another scheduler left (the usual SWA recipe), and resumes from a
    state dict with its annealing function."""
    def run(mod, sw, steps_before=4, steps_swa=6):
        params = [mod.zeros(2, requires_grad=True)]
        opt = (optim if mod is somanet else torch.optim).SGD(params, lr=0.2)
        base = (lr_scheduler if mod is somanet else torch.optim.lr_scheduler).ExponentialLR(opt, gamma=0.7)
        swa = sw.SWALR(opt, swa_lr=0.03, anneal_epochs=3, anneal_strategy="cos")
        seq = []
        for i in range(steps_before + steps_swa):
            opt.step()
            (base if i < steps_before else swa).step()
            seq.append(opt.param_groups[0]["lr"])
        return seq, swa, opt

    import somanet.optim.swa_utils as ssw
    s_seq, s_swa, s_opt = run(somanet, ssw)
    t_seq, _, _ = run(torch, tsw)
    np.testing.assert_allclose(s_seq, t_seq, rtol=1e-12)
    state = s_swa.state_dict()
    assert "anneal_func" not in state and "optimizer" not in state and state["_anneal_strategy"] == "cos"
    fresh = SWALR(optim.SGD([somanet.zeros(2, requires_grad=True)], lr=0.2), swa_lr=0.5, anneal_strategy="linear")
    fresh.load_state_dict(state)
    assert fresh.anneal_func(0.5) == pytest.approx(0.5) and fresh._anneal_strategy == "cos"
    assert fresh.anneal_func(1 / 3) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="anneal_strategy"):
        SWALR(s_opt, 0.1, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs"):
        SWALR(s_opt, 0.1, anneal_epochs=-1)
