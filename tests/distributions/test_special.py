"""Special functions (somanet.ops.special) against PyTorch in float64 and float32, with gradients, and
against mpmath at high precision where PyTorch's own error is the larger one."""
import numpy as np
import pytest

import somanet
from somanet.ops.special import digamma, lgamma, ndtr, ndtri, polygamma
from reference import assert_close, compare, torch_or_skip

torch = torch_or_skip()
rng = np.random.default_rng(0)


def _grid():
    """Positive arguments from 1e-8 to 1e8, the region around 1 and 2, and negative non-integers."""
    x = np.concatenate([rng.uniform(0, 5, 400), 10 ** rng.uniform(-8, 8, 300), rng.uniform(-12, 0, 300),
                        np.linspace(0.9, 2.1, 101), [0.5, 1.5, 2.5, 3.5, 10.0, 1e-300]])
    return x[x != np.round(x)]


def test_lgamma_float64_matches_torch():
    x = _grid()
    # torch calls the C library's lgamma; both are within a few units in the last place.
    assert_close(lgamma(somanet.tensor(x)), torch.lgamma(torch.tensor(x)), rtol=1e-13, atol=1e-15)


def test_digamma_float64_matches_torch():
    x = _grid()
    # torch's own sum loses relative accuracy next to the root at 1.4616 (about 1e-10 there); the
    # absolute tolerance covers it (mpmath checks the root region below).
    assert_close(digamma(somanet.tensor(x)), torch.digamma(torch.tensor(x)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_polygamma_float64_matches_torch(n):
    x = _grid()
    x = x[np.abs(x) < 1e6]
    # torch's trigamma is good to about 5e-10 relative; higher orders to 1e-13.
    rtol = 1e-9 if n == 1 else 1e-12
    assert_close(polygamma(n, somanet.tensor(x)), torch.polygamma(n, torch.tensor(x)), rtol=rtol, atol=1e-300)


def test_ndtr_and_ndtri_float64_match_torch():
    x = np.concatenate([rng.uniform(-37, 8, 2000), [0.0, -1e-10, 1e-10]])
    assert_close(ndtr(somanet.tensor(x)), torch.special.ndtr(torch.tensor(x)), rtol=1e-13, atol=1e-16)
    p = np.concatenate([rng.uniform(0, 1, 2000), 10 ** rng.uniform(-300, -1, 200), 1 - 10 ** rng.uniform(-15, -1, 200)])
    assert_close(ndtri(somanet.tensor(p)), torch.special.ndtri(torch.tensor(p)), rtol=1e-12, atol=1e-15)


def test_float32_results_are_float32_and_match_torch():
    x = np.concatenate([rng.uniform(0.05, 20, 500), rng.uniform(-6, 0, 200)]).astype(np.float32)
    x = x[np.abs(x - np.round(x)) > 0.1]  # float32 torch loses digits next to the poles
    sx, tx = somanet.tensor(x), torch.tensor(x)
    assert_close(lgamma(sx), torch.lgamma(tx), rtol=2e-6, atol=1e-6)
    assert_close(digamma(sx), torch.digamma(tx), rtol=2e-6, atol=2e-6)
    assert_close(polygamma(1, sx), torch.polygamma(1, tx), rtol=1e-5, atol=1e-6)
    z = rng.uniform(-6, 6, 300).astype(np.float32)
    assert_close(ndtr(somanet.tensor(z)), torch.special.ndtr(torch.tensor(z)), rtol=1e-6, atol=1e-7)
    p = rng.uniform(0.001, 0.999, 300).astype(np.float32)
    assert_close(ndtri(somanet.tensor(p)), torch.special.ndtri(torch.tensor(p)), rtol=1e-5, atol=1e-6)


def test_integer_inputs_give_float32():
    out = lgamma(somanet.tensor([1, 2, 5]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.array, [0.0, 0.0, np.log(24.0)], rtol=1e-7, atol=1e-7)


def test_gradients_match_torch():
    x = rng.uniform(0.2, 6, (3, 4))
    for dtype, rtol in ((np.float64, 1e-9), (np.float32, 1e-4)):
        a = x.astype(dtype)
        compare(lgamma, torch.lgamma, a, rtol=rtol)
        compare(digamma, torch.digamma, a, rtol=rtol)
        compare(lambda t: polygamma(1, t), lambda t: torch.polygamma(1, t), a, rtol=rtol)
        compare(ndtr, torch.special.ndtr, (a - 3).astype(dtype), rtol=rtol)
        compare(ndtri, torch.special.ndtri, (a / 7).astype(dtype), rtol=rtol)


def test_gradients_by_finite_differences():
    x = np.array([0.3, 1.0, 1.4616, 2.0, 7.5, -0.5, -2.3])
    h = 1e-6
    for f in (lgamma, digamma, lambda t: polygamma(1, t), lambda t: polygamma(2, t)):
        t = somanet.tensor(x, requires_grad=True)
        f(t).sum().backward()
        fd = (f(somanet.tensor(x + h)).array - f(somanet.tensor(x - h)).array) / (2 * h)
        np.testing.assert_allclose(t.grad.array, fd, rtol=1e-6)


def test_special_values():
    inf, nan = np.inf, np.nan
    out = lgamma(somanet.tensor([0.0, -1.0, -2.0, inf, -inf, nan], dtype=somanet.float64)).array
    np.testing.assert_array_equal(out, [inf, inf, inf, inf, inf, nan])
    out = digamma(somanet.tensor([0.0, -0.0, -1.0, inf, -inf, nan], dtype=somanet.float64)).array
    np.testing.assert_array_equal(out, [-inf, inf, nan, inf, nan, nan])
    out = ndtri(somanet.tensor([0.0, 1.0, -0.1, 1.5, 0.5], dtype=somanet.float64)).array
    np.testing.assert_array_equal(out, [-inf, inf, nan, nan, 0.0])
    assert polygamma(1, somanet.tensor([np.inf], dtype=somanet.float64)).array[0] == 0.0
    with pytest.raises(ValueError, match="polygamma"):
        polygamma(-1, somanet.tensor([1.0]))


def test_relative_accuracy_at_the_zeros_against_mpmath():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    x = np.array([1 - 1e-9, 1 + 1e-7, 2 - 1e-8, 2 + 1e-12, 1.4616321449683622, 1.46163214496, 1.5, 0.7, 3.3])
    got_l = lgamma(somanet.tensor(x)).array
    got_d = digamma(somanet.tensor(x)).array
    ref_l = np.array([float(mp.loggamma(mp.mpf(v))) for v in x])
    ref_d = np.array([float(mp.digamma(mp.mpf(v))) for v in x])
    np.testing.assert_allclose(got_l, ref_l, rtol=4e-15)
    np.testing.assert_allclose(got_d, ref_d, rtol=4e-15, atol=1e-300)
    mp.mp.dps = 260  # 2p - 1 for p = 1e-200
    p = np.array([0.5 + 1e-12, 0.5 - 3e-9, 0.3, 1e-200, 1 - 1e-12])
    ref_p = np.array([float(mp.sqrt(2) * mp.erfinv(2 * mp.mpf(v) - 1)) for v in p])
    np.testing.assert_allclose(ndtri(somanet.tensor(p)).array, ref_p, rtol=1e-13)


def test_torch_special_names():
    torch = pytest.importorskip("torch")
    x = np.array([0.5, 1.5, 4.0], dtype=np.float64)
    for name in ("gammaln", "digamma", "psi", "ndtr", "erf", "expit"):
        got = getattr(somanet.special, name)(somanet.tensor(x)).array
        want = getattr(torch.special, name)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=name)
