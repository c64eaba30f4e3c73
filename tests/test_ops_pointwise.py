"""The elementwise math of ``somanet.ops.pointwise`` against PyTorch: values, dtypes and gradients."""
import numpy as np
import pytest

import somanet
from reference import assert_close, compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(0)


def _u(lo, hi, shape=(3, 4), dtype=np.float32):
    return rng.uniform(lo, hi, shape).astype(dtype)


# name, input arrays (float inputs require grad), somanet call, torch call
UNARY = [
    ("exp2", _u(-3, 3)),
    ("asin", _u(-0.95, 0.95)),
    ("acos", _u(-0.95, 0.95)),
    ("atan", _u(-4, 4)),
    ("arcsin", _u(-0.9, 0.9)),
    ("arccos", _u(-0.9, 0.9)),
    ("arctan", _u(-3, 3)),
    ("sinh", _u(-3, 3)),
    ("cosh", _u(-3, 3)),
    ("asinh", _u(-5, 5)),
    ("acosh", _u(1.1, 5)),
    ("atanh", _u(-0.9, 0.9)),
    ("arcsinh", _u(-2, 2)),
    ("arccosh", _u(1.5, 3)),
    ("arctanh", _u(-0.5, 0.5)),
    ("erfc", _u(-4, 8)),
    ("erfinv", _u(-0.999, 0.999)),
    ("frac", _u(-5, 5)),
    ("sinc", np.array([[0.0, 0.5, -1.5, 2.25]], np.float32)),
    ("logit", _u(0.05, 0.95)),
    ("deg2rad", _u(-360, 360)),
    ("rad2deg", _u(-6, 6)),
]


@pytest.mark.parametrize("name,x", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("method", [False, True])
def test_unary(name, x, method):
    if method:
        compare(lambda a: getattr(a, name)(), lambda a: getattr(a, name)(), x)
    else:
        compare(getattr(somanet, name), getattr(torch, name), x)


@pytest.mark.parametrize("name", ["exp2", "asin", "sinh", "erfc", "erfinv", "atan", "logit"])
def test_unary_float64(name):
    x = _u(-0.9, 0.9, dtype=np.float64) if name not in ("logit",) else _u(0.1, 0.9, dtype=np.float64)
    compare(getattr(somanet, name), getattr(torch, name), x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["exp2", "sinh", "atan", "erfc", "deg2rad", "sinc"])
def test_unary_integer_input_becomes_float32(name):
    x = np.array([-2, 0, 1, 3], np.int64)
    compare(getattr(somanet, name), getattr(torch, name), x)


def test_erfinv_edges_and_tails():
    y = np.array([-1.0, 1.0, 0.0, 1e-30, -1e-8, 0.5, 0.999999, 1 - 2 ** -52, 2.0, np.nan], np.float64)
    compare(somanet.erfinv, torch.erfinv, y, rtol=1e-12, atol=0, backward=False)
    y32 = np.array([-1.0, 1.0, 0.0, 1e-30, 0.9999999, -0.99999, 1.5], np.float32)
    compare(somanet.erfinv, torch.erfinv, y32, backward=False)


def test_erfc_tail():
    x = np.array([-30.0, -5.0, -1.0, 0.0, 0.3, 1.9, 2.0, 2.1, 6.0, 20.0, 26.0, 30.0, np.inf, -np.inf], np.float64)
    compare(somanet.erfc, torch.erfc, x, rtol=1e-13, atol=0, backward=False)


def test_logit_eps():
    x = np.array([0.0, 0.01, 0.5, 0.99, 1.0], np.float32)
    compare(lambda a: somanet.logit(a, eps=0.05), lambda a: torch.logit(a, eps=0.05), x)


BINARY = [
    ("atan2", _u(-2, 2), _u(-2, 2)),
    ("arctan2", _u(-2, 2), _u(0.1, 2)),
    ("hypot", _u(-3, 3), _u(-3, 3)),
    ("logaddexp", _u(-30, 30), _u(-30, 30)),
    ("logaddexp2", _u(-5, 5), _u(-5, 5)),
    ("xlogy", np.array([[0.0, 1.0, 2.0, -1.5]], np.float32), _u(0.2, 3, (1, 4))),
    ("fmax", np.array([1.0, np.nan, 3.0, np.nan, 2.0], np.float32),
     np.array([2.0, 1.0, np.nan, np.nan, 2.0], np.float32)),
    ("fmin", np.array([1.0, np.nan, 3.0, np.nan, 2.0], np.float32),
     np.array([2.0, 1.0, np.nan, np.nan, 2.0], np.float32)),
    ("copysign", _u(-3, 3), _u(-3, 3)),
    ("float_power", _u(0.5, 2), _u(-2, 2)),
]


@pytest.mark.parametrize("name,a,b", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, a, b):
    compare(getattr(somanet, name), getattr(torch, name), a, b)
    compare(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), a, b)


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp", "xlogy", "copysign", "fmax", "float_power"])
def test_binary_broadcast_and_scalar(name):
    a = _u(0.5, 2, (3, 1))
    b = _u(0.5, 2, (1, 4))
    compare(getattr(somanet, name), getattr(torch, name), a, b)
    if name in ("xlogy", "float_power"):  # the ones PyTorch takes a Python number for
        compare(lambda x: getattr(somanet, name)(x, 1.5), lambda x: getattr(torch, name)(x, 1.5), a)
        compare(lambda x: getattr(somanet, name)(2.5, x), lambda x: getattr(torch, name)(2.5, x), a)


def test_xlogy_zero_and_nan():
    x = np.array([0.0, 0.0, 1.0], np.float32)
    y = np.array([0.0, np.nan, 0.0], np.float32)
    compare(somanet.xlogy, torch.xlogy, x, y, requires_grad=[False, False])


def test_integer_binary_float_results():
    a = np.array([1, -2, 3], np.int64)
    b = np.array([2, 2, -1], np.int64)
    for name in ("atan2", "xlogy", "copysign", "float_power"):
        compare(getattr(somanet, name), getattr(torch, name), a, b)


INT_BINARY = ["gcd", "lcm", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift"]


@pytest.mark.parametrize("name", INT_BINARY)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_binary(name, dtype):
    a = rng.integers(0, 60, (4, 5)).astype(dtype)
    b = rng.integers(1, 5, (4, 5)).astype(dtype)
    compare(getattr(somanet, name), getattr(torch, name), a, b)
    compare(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), a, b)


def test_bool_bitwise_and_shift_operators():
    a = np.array([True, False, True])
    b = np.array([True, True, False])
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        compare(getattr(somanet, name), getattr(torch, name), a, b)
    compare(somanet.bitwise_not, torch.bitwise_not, a)
    compare(somanet.bitwise_not, torch.bitwise_not, np.array([0, 5, -3], np.int64))
    x = np.array([1, 8, -16], np.int64)
    compare(lambda t: (t << 2, t >> 1), lambda t: (t << 2, t >> 1), x)
    with pytest.raises(TypeError):
        somanet.bitwise_not(somanet.tensor([1.0]))


def test_heaviside():
    x = np.array([-1.5, 0.0, 2.0, 0.0], np.float32)
    v = np.array([0.5, 0.25, 0.5, 1.0], np.float32)
    compare(somanet.heaviside, torch.heaviside, x, v, requires_grad=[False, False])


@pytest.mark.parametrize("name", ["greater", "less", "greater_equal", "less_equal", "not_equal"])
def test_comparison_aliases(name):
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([2.0, 2.0, 1.0], np.float32)
    compare(getattr(somanet, name), getattr(torch, name), a, b)
    compare(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), a, b)


def test_predicates():
    x = np.array([-np.inf, -0.0, 0.0, 1.0, np.inf, np.nan], np.float32)
    for name in ("signbit", "isposinf", "isneginf", "isreal"):
        compare(getattr(somanet, name), getattr(torch, name), x, requires_grad=[False])
    i = np.array([-1, 0, 2], np.int64)
    for name in ("signbit", "isposinf", "isneginf"):
        compare(getattr(somanet, name), getattr(torch, name), i)


def test_aliases_and_clamp_bounds():
    x = _u(-3, 3)
    for name in ("absolute", "positive"):
        compare(getattr(somanet, name), getattr(torch, name), x)
    for name in ("fix", "sgn"):
        compare(getattr(somanet, name), getattr(torch, name), x, backward=False)
    compare(lambda a: somanet.clamp_min(a, -0.5), lambda a: torch.clamp_min(a, -0.5), x)
    compare(lambda a: a.clamp_max(0.7), lambda a: a.clamp_max(0.7), x)
    compare(lambda a: +a, lambda a: +a, x)


def test_addcmul_addcdiv():
    a, b, c = _u(-1, 1), _u(-1, 1), _u(0.5, 2)
    compare(lambda x, y, z: somanet.addcmul(x, y, z, value=0.5), lambda x, y, z: torch.addcmul(x, y, z, value=0.5),
            a, b, c)
    compare(lambda x, y, z: x.addcdiv(y, z, value=-2), lambda x, y, z: x.addcdiv(y, z, value=-2), a, b, c)


def test_equal_isclose_allclose():
    a = np.array([1.0, 2.0, np.nan, np.inf], np.float32)
    b = np.array([1.0 + 1e-7, 2.1, np.nan, np.inf], np.float32)
    compare(somanet.isclose, torch.isclose, a, b, requires_grad=[False, False])
    compare(lambda x, y: somanet.isclose(x, y, equal_nan=True, rtol=0.1),
            lambda x, y: torch.isclose(x, y, equal_nan=True, rtol=0.1), a, b, requires_grad=[False, False])
    sa, sb = somanet.tensor(a), somanet.tensor(b)
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert somanet.allclose(sa[:1], sb[:1]) is torch.allclose(ta[:1], tb[:1]) is True
    assert somanet.allclose(sa, sb) is torch.allclose(ta, tb) is False
    assert sa.allclose(sb, equal_nan=True, rtol=0.1) == ta.allclose(tb, equal_nan=True, rtol=0.1)
    assert somanet.equal(sa[:2], sa[:2]) is torch.equal(ta[:2], ta[:2]) is True
    assert somanet.equal(sa[:2], sa[:1]) is torch.equal(ta[:2], ta[:1]) is False
    ia = np.array([1, 2, 3])
    compare(somanet.isclose, torch.isclose, ia, ia + np.array([0, 1, 0]))


@pytest.mark.parametrize("name", ["exp2", "asin", "atanh", "erfinv", "frac", "logit", "sinh", "deg2rad"])
def test_in_place(name):
    x = _u(0.1, 0.8)
    s, t = somanet.tensor(x), torch.tensor(x)
    out = getattr(s, name + "_")()
    getattr(t, name + "_")()
    assert out is s
    assert_close(s, t)


def test_in_place_binary_and_square():
    x, y = _u(0.1, 0.8), _u(0.1, 0.8)
    s, t = somanet.tensor(x), torch.tensor(x)
    s.atan2_(somanet.tensor(y))
    t.atan2_(torch.tensor(y))
    s.hypot_(somanet.tensor(y)).square_()
    t.hypot_(torch.tensor(y)).square_()
    assert_close(s, t)
    i = somanet.tensor([1, 2, 3])
    i.bitwise_left_shift_(1)
    assert i.tolist() == [2, 4, 6]
    with pytest.raises(RuntimeError):
        somanet.tensor([1, 2]).atan2_(somanet.tensor([1, 1]))


def test_gamma_family_in_the_namespace_and_as_methods():
    x = _u(0.5, 4)
    compare(somanet.lgamma, torch.lgamma, x)
    compare(lambda a: a.digamma(), lambda a: a.digamma(), x)
    compare(lambda a: a.polygamma(2), lambda a: a.polygamma(2), x, rtol=1e-3)
    compare(lambda a: somanet.mvlgamma(a, 3), lambda a: torch.mvlgamma(a, 3), _u(1.5, 4))
    compare(lambda a: a.mvlgamma(2), lambda a: a.mvlgamma(2), _u(1.0, 3))
    s, t = somanet.tensor(x), torch.tensor(x)
    s.lgamma_()
    t.lgamma_()
    assert_close(s, t)
