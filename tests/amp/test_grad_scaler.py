"""``GradScaler`` against ``torch.amp.GradScaler``: the same gradients (some of them infinite or NaN) give the
same sequence of scales, the same skipped steps and the same parameters; its state round-trips."""
import math

import numpy as np
import pytest

import somanet
from somanet import optim
from somanet.amp import GradScaler

torch = pytest.importorskip("torch")

# Overflowing float16 values and infinite gradients are what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _grad_sequence(steps, bad_steps, size=5):
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(steps)]
    for i, what in bad_steps.items():
        grads[i][i % size] = what
    return grads


def _run_somanet(grads, unscale_first=False, **kwargs):
    p = somanet.tensor(np.linspace(-1, 1, grads[0].size).astype(np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scaler = GradScaler("cpu", **kwargs)
    scales, stepped = [], []
    for g in grads:
        opt.zero_grad()
        # d(scaled loss)/dp = g * scale: the loss is linear in p with the step's gradient as coefficients.
        scaler.scale((p * somanet.tensor(g)).sum()).backward()
        before = p.detach().clone()
        if unscale_first:
            scaler.unscale_(opt)
        scaler.step(opt)
        stepped.append(not np.array_equal(before.array, p.array))
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, stepped, p.detach().array.copy(), scaler


def _run_torch(grads, unscale_first=False, **kwargs):
    p = torch.tensor(np.linspace(-1, 1, grads[0].size).astype(np.float32), requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kwargs)
    scales, stepped = [], []
    for g in grads:
        opt.zero_grad()
        scaler.scale((p * torch.tensor(g)).sum()).backward()
        before = p.detach().clone()
        if unscale_first:
            scaler.unscale_(opt)
        scaler.step(opt)
        stepped.append(not torch.equal(before, p.detach()))
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, stepped, p.detach().numpy().copy(), scaler


@pytest.mark.parametrize("unscale_first", [False, True])
@pytest.mark.parametrize("settings", [
    {"init_scale": 2.0 ** 16, "growth_interval": 3},
    {"init_scale": 1024.0, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 2},
    {"init_scale": 3.0e38, "growth_interval": 1},  # growth would overflow float32: the scale stays
])
def test_same_scales_and_skipped_steps_as_torch(settings, unscale_first):
    bad = {1: math.inf, 2: math.nan, 7: -math.inf, 8: math.inf, 15: math.nan}
    grads = _grad_sequence(24, bad)
    ours = _run_somanet(grads, unscale_first, **settings)
    ref = _run_torch(grads, unscale_first, **settings)
    assert ours[0] == ref[0]
    assert ours[1] == ref[1]
    assert not any(ours[1][i] for i in bad)
    np.testing.assert_allclose(ours[2], ref[2], rtol=1e-6)  # SGD itself may round its last bit differently
    assert ours[3].state_dict() == ref[3].state_dict()


def test_overflow_from_a_large_scale_is_skipped():
    # No injected inf: the gradient times the scale overflows float32 until the scale has backed off.
    grads = [np.full(3, 1e34, np.float32)] * 8
    ours = _run_somanet(grads, init_scale=2.0 ** 20, growth_interval=100)
    ref = _run_torch(grads, init_scale=2.0 ** 20, growth_interval=100)
    assert ours[0] == ref[0] and ours[1] == ref[1]
    assert ours[1][0] is False and ours[1][-1] is True


def test_state_dict_round_trip_and_torch_compatibility():
    grads = _grad_sequence(5, {2: math.inf})
    _, _, _, scaler = _run_somanet(grads, growth_interval=3)
    state = scaler.state_dict()
    assert set(state) == {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    fresh = GradScaler("cpu")
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state and fresh.get_scale() == scaler.get_scale()
    reference = torch.amp.GradScaler("cpu")
    reference.load_state_dict(state)
    assert reference.state_dict() == state
    # Continuing from the loaded state gives the same scales as continuing the original.
    more = _grad_sequence(6, {4: math.nan})
    p = somanet.tensor(np.zeros(5, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    seq = {}
    for name, s in (("original", scaler), ("loaded", fresh)):
        seq[name] = []
        for g in more:
            opt.zero_grad()
            s.scale((p * somanet.tensor(g)).sum()).backward()
            s.step(opt)
            s.update()
            seq[name].append(s.get_scale())
    assert seq["original"] == seq["loaded"]


def test_disabled_scaler_passes_through():
    scaler = GradScaler(enabled=False)
    loss = somanet.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {} and not scaler.is_enabled()
    with pytest.raises(RuntimeError, match="empty"):
        GradScaler().load_state_dict({})


def test_misuse_is_reported_as_in_torch():
    p = somanet.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scaler = GradScaler()
    with pytest.raises(RuntimeError, match="did not use scaler.scale"):
        scaler.step(opt)
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    scaler.update()
    scaled = scaler.scale([p.sum(), (p * 2).sum()])
    assert isinstance(scaled, list) and len(scaled) == 2
    with pytest.raises(ValueError):
        GradScaler(growth_factor=1.0)


def test_cuda_scaler_is_disabled_with_a_warning():
    with pytest.warns(UserWarning, match="not available"):
        scaler = somanet.cuda.amp.GradScaler()
    assert not scaler.is_enabled()
