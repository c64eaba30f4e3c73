"""The fused CUDA kernels (somanet/backends/cuda_kernels.py) against the reference code on the CPU, on a
real GPU. Skipped (the ``gpu`` marker) where CUDA is not available."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cuda_kernels
from somanet.kernels import _select

pytestmark = pytest.mark.gpu
CPU = somanet.device("cpu")


@pytest.mark.parametrize("kw", [
    pytest.param({}, id="adam"),
    pytest.param({"weight_decay": 0.1}, id="adam-l2"),
    pytest.param({"weight_decay": 0.1, "amsgrad": True, "maximize": True}, id="adam-amsgrad-maximize"),
    pytest.param({"weight_decay": 0.1, "decoupled_weight_decay": True}, id="adamw"),
])
def test_adam_kernel_matches_the_reference_update(cuda, kw):
    rng = np.random.default_rng(0)
    shape = (300, 70)
    start = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    results = []
    for dev in (CPU, cuda):
        p = somanet.tensor(start.copy(), requires_grad=True, device=dev)
        opt = somanet.optim.Adam([p], lr=1e-2, foreach=False, **kw)
        with _select.kernel("adam", "reference" if dev == CPU else "cuda"):
            for g in grads:
                p.grad = somanet.tensor(g, device=dev)
                opt.step()
        if dev == cuda:
            assert _select.choose("adam", opt.param_groups[0], p.array, p.grad.array, opt.state[p]) == "cuda"
        results.append([p.detach().cpu().numpy()] + [somanet.devices.to_host(v) for k, v in opt.state[p].items()
                                                     if k != "step"])
    for a, b in zip(*results):
        # The GPU may fuse a multiply and an add (one rounding less): float32 agreement, not bit equality.
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_kernel_matches_the_reference(cuda, approximate):
    x = np.random.default_rng(1).standard_normal((64, 257)).astype(np.float32) * 4
    outs = []
    for dev in (CPU, cuda):
        t = somanet.tensor(x, requires_grad=True, device=dev)
        y = F.gelu(t, approximate=approximate)
        (y * y).sum().backward()
        outs.append((y.detach().cpu().numpy(), t.grad.cpu().numpy()))
    assert _select.choose("gelu", somanet.tensor(x, device=cuda).array) == "cuda"
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    with somanet.no_grad():
        out, deriv = cuda_kernels.Gelu.forward(somanet.tensor(x, device=cuda).array, approximate, False)
    assert deriv is None
    np.testing.assert_allclose(somanet.devices.to_host(out), outs[0][0], rtol=1e-5, atol=1e-6)
