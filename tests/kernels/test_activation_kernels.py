"""The ``gelu`` (exact and tanh) and ``silu`` kernels against PyTorch and the reference: values and
gradients over float32's range (infinities, NaN, saturation), double backward, and the choosers."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from reference import compare, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional
CASES = [("gelu", lambda t: F.gelu(t), lambda t: TF.gelu(t)),
         ("gelu", lambda t: F.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh")),
         ("silu", F.silu, TF.silu)]


def _x(shape=(64, 80), seed=0, scale=4.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("op, sf, tf", CASES)
def test_activation_kernels_match_torch(name, op, sf, tf):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    with cpu.kernel(op, name):
        compare(sf, tf, _x())
        compare(lambda t: sf(t.transpose(0, 1)), lambda t: tf(t.T), _x())     # strided: the reference
        compare(lambda t: (somanet.autograd.grad(sf(t).sum(), t, create_graph=True)[0] ** 2).sum(),
                lambda t: (torch.autograd.grad(tf(t).sum(), t, create_graph=True)[0] ** 2).sum(), _x(seed=2),
                rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op, sf, tf", CASES)
def test_numba_matches_the_reference_at_the_extremes(op, sf, tf):
    if not _select.numba_available():
        pytest.skip("Numba is not installed")
    x = _x(scale=20.0)
    x[0, :8] = [np.nan, 0.0, -0.0, 88.5, -88.5, 1e-30, 1e20, -1e20]
    g = _x(seed=1, scale=1.0)
    results = []
    for name in ("numba", "reference"):
        with cpu.kernel(op, name), np.errstate(over="ignore", invalid="ignore"):   # the reference's overflows
            xs = somanet.tensor(x, requires_grad=True)
            y = sf(xs)
            y.backward(somanet.tensor(g))
            with somanet.no_grad():
                value = sf(somanet.tensor(x))
        results.append((y.array, xs.grad.array, value.array))
    for a, b in zip(*results):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_chooser():
    big = np.zeros((1024, 512), np.float32)
    expect = "numba" if _select.numba_available() else "reference"
    for op in ("gelu", "silu"):
        assert _select.choose(op, big) == expect
        assert _select.choose(op, big[:4, :8]) == "reference"                # too small
        assert _select.choose(op, big.astype(np.float64)) == "reference"     # float32 loops only
        assert _select.choose(op, big[:, ::2]) == "reference"                # strided
        assert cpu.kernel_names(op) == ("reference", "numba")
    with cpu.kernel("gelu", "numba" if _select.numba_available() else "reference"):   # float16: the reference
        compare(lambda t: F.gelu(t), lambda t: TF.gelu(t.float()).half(), _x().astype(np.float16), rtol=1e-2,
                atol=1e-2)
