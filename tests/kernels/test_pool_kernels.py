"""The ``max_pool2d`` and ``avg_pool2d`` kernels on overlapping and padded windows (ResNet's 3x3 stride 2)
against PyTorch and the reference: values, indices, gradients, NaN and -inf windows; the choosers."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from reference import compare, torch_or_skip

torch = torch_or_skip()
needs_numba = pytest.mark.skipif(not _select.numba_available(), reason="Numba is not installed")
GEOMETRIES = [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1),
              dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 1)),
              dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2)]


def _x(shape=(3, 5, 13, 11), seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", ["reference", "tiled", "numba"])
@pytest.mark.parametrize("kw", GEOMETRIES)
def test_max_pool_kernels_match_torch(name, kw):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    with cpu.kernel("max_pool2d", name):
        compare(lambda t: F.max_pool2d(t, return_indices=True, **kw),
                lambda t: torch.nn.functional.max_pool2d(t, return_indices=True, **kw), _x())
        compare(lambda t: F.max_pool1d(t, 3, 2, 1), lambda t: torch.nn.functional.max_pool1d(t, 3, 2, 1),
                _x((2, 3, 17)))


@needs_numba
@pytest.mark.parametrize("kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_max_pool_matches_the_reference_on_nan_and_minus_inf_windows(kw, dtype):
    x = _x(dtype=dtype)
    x[0, 0, 3, 3] = x[0, 0, 3, 5] = np.nan      # the last NaN of a window takes the index
    x[1, 1, :5, :5] = -np.inf                 # windows of -inf (and padding)
    x[2, 2, 4:9, 4:9] = 1.0                   # ties: the first maximum in scan order
    g = _x((3, 5) + F.max_pool2d(somanet.tensor(x), **kw).shape[2:], seed=1, dtype=dtype)
    results = []
    for name in ("numba", "reference"):
        with cpu.kernel("max_pool2d", name):
            xs = somanet.tensor(x, requires_grad=True)
            y, i = F.max_pool2d(xs, return_indices=True, **kw)
            y.backward(somanet.tensor(g))
            with somanet.no_grad():
                values = F.max_pool2d(xs, **kw)
        results.append((y.array, i.array, xs.grad.array, values.array))
    (y, i, gx, v), (ry, ri, rgx, rv) = results
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(v, ry)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(gx, rgx, rtol=1e-6, atol=1e-6)   # overlapping windows add in another order


@pytest.mark.parametrize("name", ["reference", "numba"])
@pytest.mark.parametrize("kw", GEOMETRIES[:2] + [dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                                 dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
                                                 dict(kernel_size=3, stride=2, ceil_mode=True, padding=1)])
def test_avg_pool_kernels_match_torch(name, kw):
    if name == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    kw = {k: v for k, v in kw.items() if k != "dilation"}
    with cpu.kernel("avg_pool2d", name):
        compare(lambda t: F.avg_pool2d(t, **kw), lambda t: torch.nn.functional.avg_pool2d(t, **kw), _x())
        compare(lambda t: F.avg_pool2d(t, **kw), lambda t: torch.nn.functional.avg_pool2d(t, **kw),
                _x(dtype=np.float64), rtol=1e-12, atol=1e-12)


def test_non_contiguous_inputs_take_the_reference():
    x4 = np.zeros((2, 3, 12, 12), np.float32)[..., ::2].reshape(1, 6, 12, 6)
    assert not x4.flags.c_contiguous
    assert _select.choose("max_pool2d", x4, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)) == "reference"
    assert _select.choose("avg_pool2d", x4, (3, 3), (2, 2), ((1, 1), (1, 1))) == "reference"
    with cpu.kernel("max_pool2d", "numba" if _select.numba_available() else "reference"):
        compare(lambda t: F.max_pool2d(t[..., ::2], 3, 2, 1),
                lambda t: torch.nn.functional.max_pool2d(t[..., ::2], 3, 2, 1), _x((2, 3, 12, 12)))


def test_choosers():
    x4 = np.zeros((1, 64, 32, 32), np.float32)
    fast = "numba" if _select.numba_available() else "reference"
    resnet = ((3, 3), (2, 2), ((1, 1), (1, 1)))
    assert _select.choose("max_pool2d", x4, *resnet, (1, 1)) == fast
    assert _select.choose("max_pool2d", x4, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1)) == "tiled"
    assert _select.choose("max_pool2d", x4.astype(np.int32), *resnet, (1, 1)) == "reference"
    assert _select.choose("avg_pool2d", x4, *resnet) == fast
    assert _select.choose("avg_pool2d", x4, (3, 3), (1, 1), ((1, 1), (1, 1))) == "reference"   # stride 1
    assert _select.choose("avg_pool2d", x4, (2, 2), (2, 2), ((0, 0), (0, 0))) == "reference"   # tiling windows
    assert cpu.kernel_names("max_pool2d") == ("reference", "tiled", "numba")
    assert cpu.kernel_names("avg_pool2d") == ("reference", "numba")
