"""The ``cross_entropy`` kernels against PyTorch and the reference: weights, ``ignore_index``, label
smoothing, every reduction, outputs and gradients; the chooser's picks."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from reference import torch_or_skip

torch = torch_or_skip()
NAMES = ["reference", "numba"]
CASES = [dict(), dict(weight=True), dict(label_smoothing=0.2), dict(reduction="sum", weight=True, label_smoothing=0.1),
         dict(reduction="none", label_smoothing=0.3), dict(reduction="none", weight=True), dict(ignore_index=3)]


def _data(n, c, seed=0, ignored=(2, 5)):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    t = rng.integers(0, c, n)
    t[list(ignored)] = -100
    return x, t, rng.random(c).astype(np.float32), rng.standard_normal(n).astype(np.float32)


def _kwargs(case, lib, w):
    kw = dict(case)
    if kw.pop("weight", False):
        kw["weight"] = lib.tensor(w)
    return kw


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n, c", [(128, 10), (33, 65)])
def test_cross_entropy_kernels_match_torch_and_reference(name, case, n, c):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    x, t, w, g = _data(n, c)
    if case.get("ignore_index") == 3:
        t[t == -100] = 3
    g = g if case.get("reduction") == "none" else np.float32(1.7)
    results = {}
    for k in {name, "reference"}:
        with cpu.kernel("cross_entropy", k):
            xs = somanet.tensor(x, requires_grad=True)
            loss = F.cross_entropy(xs, somanet.tensor(t), **_kwargs(case, somanet, w))
            loss.backward(somanet.tensor(g))
        results[k] = (loss.array, xs.grad.array)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(t), **_kwargs(case, torch, w))
    tl.backward(torch.tensor(g))
    for mine, ref, theirs in zip(results[name], results["reference"], (tl.detach().numpy(), tx.grad.numpy())):
        assert mine.dtype == np.float32 and mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_all_targets_ignored_gives_nan_mean_and_zero_gradient(name):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    x = np.ones((4, 3), np.float32)
    with cpu.kernel("cross_entropy", name):
        xs = somanet.tensor(x, requires_grad=True)
        loss = F.cross_entropy(xs, somanet.tensor(np.full(4, -100)))
        loss.backward()
    assert np.isnan(loss.item()) and (xs.grad.array == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_double_backward_matches_torch(name):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    x, t, w, _ = _data(16, 7, ignored=(1,))
    with cpu.kernel("cross_entropy", name):
        xs = somanet.tensor(x, requires_grad=True)
        (gx,) = somanet.autograd.grad(F.cross_entropy(xs, somanet.tensor(t), weight=somanet.tensor(w),
                                                      label_smoothing=0.1), xs, create_graph=True)
        (gx ** 2).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    (tgx,) = torch.autograd.grad(torch.nn.functional.cross_entropy(tx, torch.tensor(t), weight=torch.tensor(w),
                                                                   label_smoothing=0.1), tx, create_graph=True)
    (tgx ** 2).sum().backward()
    np.testing.assert_allclose(xs.grad.array, tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_chooser():
    x, t = np.empty((128, 10), np.float32), np.zeros(128, np.int64)
    expect = "numba" if _select.numba_available() else "reference"
    assert _select.choose("cross_entropy", x, t) == expect
    assert _select.choose("cross_entropy", x, t, np.ones(10, np.float32)) == expect
    assert _select.choose("cross_entropy", x.astype(np.float64), t) == "reference"     # float32 loops only
    assert _select.choose("cross_entropy", x, t.astype(np.int32)) == "reference"
    assert _select.choose("cross_entropy", np.empty((10, 128), np.float32).T, t) == "reference"   # strided
    assert cpu.kernel_names("cross_entropy") == ("reference", "numba")


def test_spatial_and_float64_inputs_take_the_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)       # (N, C, H, W): S > 1
    t = rng.integers(0, 5, (2, 3, 4))
    with cpu.kernel("cross_entropy", "numba" if _select.numba_available() else "reference"):
        for arr in (x, x.astype(np.float64)):
            xs = somanet.tensor(arr, requires_grad=True)
            F.cross_entropy(xs, somanet.tensor(t)).backward()
            tx = torch.tensor(arr, requires_grad=True)
            torch.nn.functional.cross_entropy(tx, torch.tensor(t)).backward()
            np.testing.assert_allclose(xs.grad.array, tx.grad.numpy(), rtol=1e-5, atol=1e-7)
