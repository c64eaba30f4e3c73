"""Why float32 master weights and loss scaling: an MLP trained in pure float16 breaks down (Adam's epsilon
of 1e-8 is 0 in float16, so its first step divides by zero), autocast(float16) with float32 weights trains,
and gradients too small for float16 survive only with a GradScaler."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.amp import GradScaler

# Overflowing float16 values and infinite gradients are what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _blobs(n=256, d=16, k=4):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((k, d)).astype(np.float32) * 1.5
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def _model():
    somanet.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def _train(mode, steps, loss_weight=1.0):
    x_all, y_all = _blobs()
    model = _model()
    if mode == "fp16":
        model.half()
    opt = somanet.optim.Adam(model.parameters(), lr=1e-2)
    scaler = GradScaler(enabled=mode == "amp+scaler")
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(y_all), 32)
        x, y = somanet.tensor(x_all[idx]), somanet.tensor(y_all[idx])
        if mode == "fp16":
            x = x.half()
        opt.zero_grad()
        with somanet.autocast("cpu", dtype=somanet.float16, enabled=mode != "fp16"):
            loss = nn.functional.cross_entropy(model(x), y) * loss_weight
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.float().item() / loss_weight)
    return model, losses


def test_pure_float16_diverges_and_autocast_with_scaler_trains():
    model, losses = _train("fp16", 3)
    assert not np.isfinite(losses[-1])
    assert not all(np.isfinite(p.array).all() for p in model.parameters())
    model, losses = _train("amp+scaler", 40)
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < 0.25 * losses[0]
    assert all(p.dtype == somanet.float32 for p in model.parameters())


def test_small_gradients_survive_only_with_loss_scaling():
    x_all, y_all = _blobs()
    x, y = somanet.tensor(x_all[:32]), somanet.tensor(y_all[:32])
    weight = 2.0 ** -24  # gradients of this loss are below float16's smallest subnormal (6e-8)
    grads = {}
    for mode in ("fp32", "amp", "amp+scaler"):
        model = _model()
        opt = somanet.optim.SGD(model.parameters(), lr=0.0)
        scaler = GradScaler(enabled=mode == "amp+scaler")
        with somanet.autocast("cpu", dtype=somanet.float16, enabled=mode != "fp32"):
            loss = nn.functional.cross_entropy(model(x), y) * weight
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        grads[mode] = model[0].weight.grad.numpy() / weight
    ref = grads["fp32"]
    assert np.count_nonzero(grads["amp"]) < 0.1 * ref.size  # underflowed to zero
    np.testing.assert_allclose(grads["amp+scaler"], ref, atol=0.01 * np.abs(ref).max())
