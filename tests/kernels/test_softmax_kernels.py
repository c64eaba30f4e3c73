"""The ``softmax`` and ``log_softmax`` kernels: every kernel against PyTorch and the reference (outputs and
gradients, masked rows, non-contiguous inputs), the chooser's picks, and the reference without Numba."""
import subprocess
import sys

import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from reference import compare, torch_or_skip

torch = torch_or_skip()
OPS = ["softmax", "log_softmax"]


def _x(*shape, seed=0, scale=3.0, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _run(op, name, x, g, dim=-1):
    with cpu.kernel(op, name):
        xt = somanet.tensor(x, requires_grad=True)
        y = getattr(F, op)(xt, dim)
        y.backward(somanet.tensor(g))
    return y.array, xt.grad.array


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("shape", [(64, 65), (3, 7, 300), (5, 1)])
def test_kernels_match_torch(op, name, shape):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    with cpu.kernel(op, name):
        compare(lambda t: getattr(F, op)(t, -1), lambda t: getattr(torch, op)(t, -1), _x(*shape))


@pytest.mark.parametrize("op", OPS)
def test_numba_matches_reference_with_masked_and_extreme_rows(op):
    if not _select.numba_available():
        pytest.skip("Numba is not installed")
    x, g = _x(16, 200, scale=30.0), _x(16, 200, seed=1, scale=1.0)
    x[0, :150] = -np.inf              # an attention-style mask: exact zeros (softmax), -inf (log_softmax)
    x[1, 7] = 1e30                    # one dominant logit
    x[2] = 0.0
    x[3, 5] = np.nan                  # NaN spreads over its row, as in the reference
    fast, ref = _run(op, "numba", x, g), _run(op, "reference", x, g)
    for a, b in zip(fast, ref):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
        ok = np.isfinite(b)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-4, atol=1e-5)
    if op == "softmax":
        assert (fast[0][0, :150] == 0).all() and fast[0][1, 7] == 1


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_and_other_dims_take_the_reference_with_the_same_results(op):
    x = _x(40, 70)
    xt = x.T                          # a transposed view: not C-contiguous
    assert _select.choose(op, xt) == "reference"
    with cpu.kernel(op, "numba" if _select.numba_available() else "reference"):
        compare(lambda t: getattr(F, op)(t.transpose(0, 1), -1), lambda t: getattr(torch, op)(t.T, -1), x)
        compare(lambda t: getattr(F, op)(t, 0), lambda t: getattr(torch, op)(t, 0), x)


def test_chooser():
    big = np.empty((256, 4096), np.float32)
    expect = "numba" if _select.numba_available() else "reference"
    for op in OPS:
        assert _select.choose(op, big) == expect
        assert _select.choose(op, np.empty((2, 10), np.float32)) == "reference"       # too small to pay
        assert _select.choose(op, big.astype(np.float64)) == "reference"            # float32 loops only
        assert _select.choose(op, big[:, ::2]) == "reference"                       # strided
        assert cpu.kernel_names(op) == ("reference", "numba")


def test_double_backward_through_the_numba_kernel():
    x = _x(8, 64)
    with cpu.kernel("softmax", "numba" if _select.numba_available() else "reference"):
        compare(lambda t: (somanet.autograd.grad((F.softmax(t, -1) ** 2).sum(), t, create_graph=True)[0] ** 2).sum(),
                lambda t: (torch.autograd.grad((torch.softmax(t, -1) ** 2).sum(), t, create_graph=True)[0] ** 2).sum(),
                x, rtol=1e-4, atol=1e-6)


NO_NUMBA = r"""
import sys
sys.modules["numba"] = None          # importing numba now fails
import numpy as np, somanet, somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
assert not _select.numba_available()
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 4096)).astype(np.float32)
x4 = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
t = np.zeros(256, np.int64)
choices = {
    "softmax": (x,), "log_softmax": (x,), "cross_entropy": (x, t), "gelu": (x,), "silu": (x,), "dropout": (x,),
    "batch_norm": (x4.reshape(8, 16, -1),), "group_norm": (x4.reshape(8, 16, -1), 4),
    "max_pool2d": (x4.reshape(1, 128, 32, 32), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    "avg_pool2d": (x4.reshape(1, 128, 32, 32), (3, 3), (2, 2), ((1, 1), (1, 1))),
}
for op, args in choices.items():
    assert _select.choose(op, *args) == "reference", op
    try:
        cpu.kernel(op, "numba")
    except RuntimeError as exc:
        assert "pip install somanet[fast]" in str(exc)
    else:
        raise AssertionError(op)
a = somanet.tensor(x, requires_grad=True)
b = somanet.tensor(x4, requires_grad=True)
losses = [F.softmax(a, -1).sum(), F.log_softmax(a, -1).sum(), F.cross_entropy(a, somanet.tensor(t)),
          F.gelu(a).sum(), F.silu(a).sum(), F.dropout(a, 0.2).sum(),
          F.batch_norm(b, None, None, training=True).sum(), F.group_norm(b, 4).sum(),
          F.max_pool2d(b, 3, 2, 1).sum(), F.avg_pool2d(b, 3, 2, 1).sum()]
sum(losses).backward()
assert np.isfinite(a.grad.array).all() and np.isfinite(b.grad.array).all()
assert "numba" not in sys.modules or sys.modules["numba"] is None
print("ok")
"""


def test_without_numba_every_fused_op_takes_the_reference():
    # One process for the ops of every fused kernel (softmax, loss, activation, norm, pool, dropout files).
    out = subprocess.run([sys.executable, "-c", NO_NUMBA], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_rows_split_over_two_threads_give_the_same_bits(split_always):
    if not _select.numba_available():
        pytest.skip("Numba is not installed")
    x, g = _x(64, 300), _x(64, 300, seed=1)
    for op in OPS:
        somanet.set_num_threads(2)
        split = _run(op, "numba", x, g)
        somanet.set_num_threads(1)
        whole = _run(op, "numba", x, g)
        for a, b in zip(split, whole):
            np.testing.assert_array_equal(a, b)
