"""The ``dropout`` kernel: the same mask, outputs and gradients as the reference, bit for bit, for a
seed (so ``manual_seed`` reproducibility does not depend on the kernel); the chooser."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select


@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_kernels_give_the_references_bits(name, dtype, p):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 300)).astype(dtype)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for k in (name, "reference"):
        with cpu.kernel("dropout", k), np.errstate(invalid="ignore"):
            somanet.manual_seed(7)
            xs = somanet.tensor(x, requires_grad=True)
            y = F.dropout(xs, p)
            y2 = F.dropout(xs, p)            # the generator moves on alike
            (y + y2).backward(somanet.tensor(g))
        results.append((y.array, y2.array, xs.grad.array))
    for a, b in zip(*results):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    kept = results[0][0] != 0
    assert abs(kept.mean() - (1 - p)) < 0.05


def test_strided_inputs_draw_the_same_mask():
    x = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    results = []
    for k in ("numba" if _select.numba_available() else "reference", "reference"):
        with cpu.kernel("dropout", k):
            somanet.manual_seed(3)
            results.append(F.dropout(somanet.tensor(x).transpose(0, 1), 0.5).array)
    np.testing.assert_array_equal(*results)


def test_double_backward_and_modules():
    with cpu.kernel("dropout", "numba" if _select.numba_available() else "reference"):
        somanet.manual_seed(0)
        x = somanet.tensor(np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32), requires_grad=True)
        y = F.dropout(x, 0.3)
        (gx,) = somanet.autograd.grad((y ** 2).sum(), x, create_graph=True)
        mask = (y.array != 0) / np.float32(0.7)
        np.testing.assert_allclose(gx.array, 2 * x.array * mask * mask, rtol=1e-6)
        gx.sum().backward()
        np.testing.assert_allclose(x.grad.array, 2 * mask * mask, rtol=1e-6)
        drop = somanet.nn.Dropout(0.5)
        drop.eval()
        assert drop(x) is x or np.array_equal(drop(x).array, x.array)


def test_chooser_and_the_variants_left_to_the_reference():
    x = np.zeros((64, 1024), np.float32)
    expect = "numba" if _select.numba_available() else "reference"
    assert _select.choose("dropout", x) == expect
    assert _select.choose("dropout", x.astype(np.float64)) == expect
    assert _select.choose("dropout", x[:2, :4]) == "reference"
    assert _select.choose("dropout", x.astype(np.float16)) == "reference"
    assert _select.choose("dropout", x[:, ::2]) == "reference"
    assert cpu.kernel_names("dropout") == ("reference", "numba")
    with cpu.kernel("dropout", expect):   # channel-wise and alpha dropout: the reference, same seeds
        somanet.manual_seed(1)
        a = F.dropout2d(somanet.tensor(np.ones((8, 16, 4, 4), np.float32)), 0.5).array
        b = F.alpha_dropout(somanet.tensor(np.ones((64, 64), np.float32)), 0.2, training=True).array
    somanet.manual_seed(1)
    with cpu.kernel("dropout", "reference"):
        np.testing.assert_array_equal(a, F.dropout2d(somanet.tensor(np.ones((8, 16, 4, 4), np.float32)), 0.5).array)
        np.testing.assert_array_equal(b, F.alpha_dropout(somanet.tensor(np.ones((64, 64), np.float32)), 0.2,
                                                         training=True).array)
