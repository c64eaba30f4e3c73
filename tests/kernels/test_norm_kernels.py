"""The ``batch_norm`` (training statistics) and ``group_norm`` kernels against PyTorch and the reference:
outputs, input and affine gradients, running statistics, float32 and float64, and the choosers' picks."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _jit, _select
from reference import torch_or_skip


def _numba():
    """Whether the compiled kernels can be chosen: Numba installed and not switched off (SOMANET_NUMBA=0)."""
    return _select.numba_available() and _jit.enabled()


torch = torch_or_skip()


def _run(lib, x, w, b, g, affine=True):
    c = x.shape[1]
    xs = lib.tensor(x, requires_grad=True)
    ws, bs = (lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)) if affine else (None, None)
    rm, rv = lib.zeros(c, dtype=xs.dtype), lib.ones(c, dtype=xs.dtype)
    fn = F.batch_norm if lib is somanet else torch.nn.functional.batch_norm
    y = fn(xs, rm, rv, ws, bs, training=True)
    y.backward(lib.tensor(g))
    grads = [xs.grad] + ([ws.grad, bs.grad] if affine else [])
    return [np.asarray(a.detach().numpy() if lib is torch else a.array) for a in [y, rm, rv] + grads]


def _check_kernel(op, name, dtype, run):
    """``run(framework)``'s outputs with kernel ``name`` of ``op`` against the reference kernel and PyTorch."""
    with cpu.kernel(op, name):
        mine = run(somanet)
    with cpu.kernel(op, "reference"):
        ref = run(somanet)
    theirs = run(torch)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for a, r, t in zip(mine, ref, theirs):
        assert a.dtype == dtype
        scale = max(1.0, np.abs(t).max())
        np.testing.assert_allclose(a, t, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, affine", [((8, 16, 12, 12), True), ((4, 8, 1000), True), ((2, 3, 5, 7), False)])
def test_batch_norm_kernels_match_torch(name, dtype, shape, affine):
    if name == "numba" and not _numba():
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(0)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    _check_kernel("batch_norm", name, dtype, lambda fw: _run(fw, x, w, b, g, affine))


def test_numba_batch_norm_saves_the_input_and_refuses_in_place_changes():
    if not _numba():
        pytest.skip("Numba is not installed")
    x = somanet.tensor(np.random.default_rng(0).standard_normal((4, 8, 64)).astype(np.float32), requires_grad=True)
    h = x * 1.0
    with cpu.kernel("batch_norm", "numba"):
        y = F.batch_norm(h, None, None, training=True)
    h.add_(1.0)
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_double_backward_after_the_numba_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 30)).astype(np.float32)
    w = rng.standard_normal(3).astype(np.float32)
    results = []
    for lib, fn in ((somanet, F.batch_norm), (torch, torch.nn.functional.batch_norm)):
        xs, ws = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        with cpu.kernel("batch_norm", "numba" if _numba() else "reference"):
            y = fn(xs, None, None, ws, None, training=True)
            (gx,) = lib.autograd.grad((y ** 3).sum(), xs, create_graph=True)
        (gx ** 2).sum().backward()
        results.append([np.asarray(xs.grad.numpy() if lib is torch else xs.grad.array),
                        np.asarray(ws.grad.numpy() if lib is torch else ws.grad.array)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_chooser():
    big = np.zeros((64, 16, 1024), np.float32)
    expect = "numba" if _numba() else "reference"
    assert _select.choose("batch_norm", big) == expect
    assert _select.choose("batch_norm", big.astype(np.float64)) == expect
    assert _select.choose("batch_norm", np.empty((2, 3, 4), np.float32)) == "reference"          # too small
    assert _select.choose("batch_norm", big.astype(np.float16)) == "reference"
    assert _select.choose("batch_norm", big[:, :, ::2]) == "reference"                          # strided
    assert _select.choose("batch_norm", big, np.ones(16, np.float64)) == "reference"           # mixed dtypes
    assert cpu.kernel_names("batch_norm") == ("reference", "numba")


def _run_group(lib, x, groups, w, b, g):
    xs = lib.tensor(x, requires_grad=True)
    ws, bs = (lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)) if w is not None else (None, None)
    fn = F.group_norm if lib is somanet else torch.nn.functional.group_norm
    y = fn(xs, groups, ws, bs)
    y.backward(lib.tensor(g))
    out = [y, xs.grad] + ([ws.grad, bs.grad] if w is not None else [])
    return [np.asarray(a.detach().numpy() if lib is torch else a.array) for a in out]


@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, groups, affine", [((4, 16, 12, 12), 4, True), ((4, 8, 600), 8, True),
                                                   ((3, 6, 7), 1, False)])
def test_group_norm_kernels_match_torch(name, dtype, shape, groups, affine):
    if name == "numba" and not _numba():
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(0)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)
    w, b = (rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)) if affine else (None, None)
    g = rng.standard_normal(shape).astype(dtype)
    _check_kernel("group_norm", name, dtype, lambda fw: _run_group(fw, x, groups, w, b, g))


def test_instance_norm_running_stats_on_the_group_norm_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 40, 40)).astype(np.float32)
    rm, rv = somanet.zeros(8), somanet.ones(8)
    trm, trv = torch.zeros(8), torch.ones(8)
    with cpu.kernel("group_norm", "numba" if _numba() else "reference"):
        y = F.instance_norm(somanet.tensor(x), rm, rv, use_input_stats=True)
    ty = torch.nn.functional.instance_norm(torch.tensor(x), trm, trv, use_input_stats=True)
    np.testing.assert_allclose(y.array, ty.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm.array, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.array, trv.numpy(), rtol=1e-5, atol=1e-6)


def test_group_norm_chooser():
    x3 = np.zeros((32, 64, 256), np.float32)
    expect = "numba" if _numba() else "reference"
    assert _select.choose("group_norm", x3, 8) == expect
    assert _select.choose("group_norm", np.zeros((2, 4, 3), np.float32), 2) == "reference"      # too small
    assert _select.choose("group_norm", x3[:, :, ::2], 8) == "reference"                        # strided
    assert cpu.kernel_names("group_norm") == ("reference", "numba")
