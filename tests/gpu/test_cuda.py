"""The CuPy backend on a real GPU: ops and modules against the CPU's results, a training run, the
``somanet.cuda`` queries and checkpoints. Skipped (the ``gpu`` marker) where CUDA is not available."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from devices.test_standin_modules import KNOWN_HOST_FALLBACKS as MODULE_FALLBACKS
from devices.test_standin_modules import MODULES, _module_run
from devices.test_standin_ops import (ELEMENTWISE, EXTRA_OPS, KNOWN_HOST_FALLBACKS, LOSSES, MATMUL, MORE_OPS,
                                      NETWORK_OPS, REDUCTIONS, SHAPE, _check)

pytestmark = pytest.mark.gpu
CPU = somanet.device("cpu")
OPS = {f"{table}:{name}": case for table, cases in (
    ("elementwise", ELEMENTWISE), ("reduce", REDUCTIONS), ("matmul", MATMUL), ("shape", SHAPE), ("loss", LOSSES),
    ("network", NETWORK_OPS), ("more", MORE_OPS), ("extra", EXTRA_OPS)) for name, case in cases.items()}


def _params(names, fallbacks):
    """Known host fallbacks fail on the GPU as on the stand-in (strict: they flip when fixed)."""
    return [pytest.param(n, marks=[pytest.mark.xfail(reason=fallbacks[n.partition(":")[2] or n],
                                                     raises=(TypeError, ValueError), strict=True)]
                         if (n.partition(":")[2] or n) in fallbacks else []) for n in names]


@pytest.mark.parametrize("name", _params(sorted(OPS), KNOWN_HOST_FALLBACKS))
def test_ops_match_the_cpu(cuda, name):
    fn, shapes = OPS[name]
    # GPU kernels sum in another order than NumPy: float32 rounding differs.
    _check(fn, shapes, cuda, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", _params(sorted(MODULES), MODULE_FALLBACKS))
def test_modules_match_the_cpu(cuda, name):
    make, shape = MODULES[name]
    expected = _module_run(make, shape, CPU)
    for a, b in zip(_module_run(make, shape, cuda), expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def _blobs(n=512, classes=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)).astype(np.float32) * 2
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, dim)).astype(np.float32)), y


def _training_run(dev, steps=60):
    x, y = _blobs()
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4)).to(dev)
    opt = somanet.optim.AdamW(model.parameters(), lr=3e-3)
    xt, yt = somanet.tensor(x, device=dev), somanet.tensor(y, device=dev)
    losses = []
    for i in range(steps):
        batch = slice((i * 64) % 512, (i * 64) % 512 + 64)
        opt.zero_grad()
        loss = F.cross_entropy(model(xt[batch]), yt[batch])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with somanet.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    return np.array(losses), accuracy, model


def test_a_training_run_matches_the_cpu_and_learns(cuda):
    cpu_losses, cpu_accuracy, _ = _training_run(CPU)
    losses, accuracy, model = _training_run(cuda)
    assert all(p.device == cuda for p in model.parameters())
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-3, atol=1e-4)
    assert losses[-10:].mean() < 0.5 * losses[:5].mean() and abs(accuracy - cpu_accuracy) <= 0.01


def test_cuda_queries(cuda):
    assert somanet.cuda.is_available() and somanet.cuda.device_count() >= 1 and somanet.accelerator.is_available()
    assert isinstance(somanet.cuda.get_device_name(), str) and somanet.cuda.current_device() == 0
    before = somanet.cuda.memory_allocated()
    x = somanet.ones(1024, 1024, device=cuda)
    somanet.cuda.synchronize()
    assert somanet.cuda.memory_allocated() - before >= 4 * 1024 * 1024
    assert somanet.cuda.memory_reserved() >= somanet.cuda.memory_allocated()
    assert x.is_cuda and x.get_device() == 0 and str(x.device) == "cuda:0" and x.sum().item() == 1024 * 1024
    with pytest.raises(TypeError, match="cpu\\(\\)"):
        x.numpy()


def test_same_seed_same_values_on_both_devices(cuda):
    somanet.manual_seed(7)
    a = somanet.randn(100, device=cuda)
    somanet.manual_seed(7)
    np.testing.assert_array_equal(a.cpu().numpy(), somanet.randn(100).numpy())


def test_checkpoint_saved_from_the_gpu_loads_on_the_cpu(cuda, tmp_path):
    _, _, model = _training_run(cuda, steps=3)
    path = tmp_path / "gpu.pt"
    somanet.save(model.state_dict(), path)
    loaded = somanet.load(path, map_location="cpu")
    back = somanet.load(path, map_location="cuda")
    for name, p in model.state_dict().items():
        assert loaded[name].device == CPU and back[name].device == cuda
        np.testing.assert_array_equal(loaded[name].numpy(), p.cpu().numpy())


def test_mixing_host_and_gpu_is_a_clear_error(cuda):
    with pytest.raises(RuntimeError, match="same device.*cpu and cuda:0"):
        somanet.ones(2) + somanet.ones(2, device=cuda)
