"""Elementwise ops against PyTorch (forward and gradients) and float64 finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import somanet
from somanet.autograd import gradcheck
from reference import compare, torch_or_skip, assert_close

torch = torch_or_skip()
rng = np.random.default_rng(0)


def r(*shape, low=-2.0, high=2.0):
    return np.asarray(rng.uniform(low, high, size=shape), dtype=np.float32)


def pos(*shape):
    return np.asarray(rng.uniform(0.2, 3.0, size=shape), dtype=np.float32)


BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("maximum", lambda a, b: a.maximum(b) if hasattr(a, "maximum") else np.maximum(a, b)),
    ("minimum", lambda a, b: a.minimum(b) if hasattr(a, "minimum") else np.minimum(a, b)),
]


@pytest.mark.parametrize("name,fn", BINARY)
@settings(max_examples=12, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4))
def test_binary_broadcasting_matches_torch(name, fn, shapes):
    a = r(*shapes.input_shapes[0])
    b = np.asarray(pos(*shapes.input_shapes[1]) * np.where(rng.random(shapes.input_shapes[1]) < 0.5, -1, 1), dtype=np.float32)
    compare(fn, fn, a, b)


def test_pow_variants():
    a, b = pos(3, 4), r(3, 4)
    compare(lambda x, y: x ** y, lambda x, y: x ** y, a, b)
    compare(lambda x: x ** 3, lambda x: x ** 3, r(3, 4))
    compare(lambda x: x ** 0.5, lambda x: x ** 0.5, pos(5))
    compare(lambda x: 2.0 ** x, lambda x: 2.0 ** x, r(5))
    compare(lambda x: x ** 0, lambda x: x ** 0, r(4))


def test_reflected_and_scalar_ops():
    a = r(2, 3)
    compare(lambda x: 1.5 - x, lambda x: 1.5 - x, a)
    compare(lambda x: 2 / (x.abs() + 1), lambda x: 2 / (x.abs() + 1), a)
    compare(lambda x: 3 * x + 1, lambda x: 3 * x + 1, a)
    compare(lambda x: -x, lambda x: -x, a)
    s = somanet.tensor(a)
    assert (s + np.float64(2.0)).dtype == np.float32  # NumPy scalars do not widen float32
    assert (np.ones(3, dtype=np.float32) + somanet.ones(3)).dtype == np.float32


def test_floor_divide_and_remainder_have_no_grad():
    a, b = r(4) * 5, pos(4)
    x = somanet.tensor(a, requires_grad=True)
    for out, ref in ((x // b, torch.tensor(a) // torch.tensor(b)), (x % b, torch.tensor(a) % torch.tensor(b))):
        assert not out.requires_grad
        assert_close(out, ref)


UNARY = [
    ("exp", None, r),
    ("log", None, pos),
    ("log1p", None, pos),
    ("expm1", None, r),
    ("sqrt", None, pos),
    ("rsqrt", None, pos),
    ("sin", None, r),
    ("cos", None, r),
    ("tanh", None, r),
    ("sigmoid", None, r),
    ("abs", None, r),
    ("relu", None, r),
    ("square", None, r),
    ("reciprocal", None, pos),
    ("log2", None, pos),
    ("log10", None, pos),
    ("erf", None, r),
]


@pytest.mark.parametrize("name,_,gen", UNARY)
def test_unary_matches_torch(name, _, gen):
    a = gen(4, 5)
    compare(lambda x: getattr(somanet, name)(x), lambda x: getattr(torch, name)(x), a)
    compare(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), gen(3))


@pytest.mark.parametrize("name,_,gen", [u for u in UNARY if u[0] not in ("abs", "relu")])
def test_unary_gradcheck(name, _, gen):
    x = somanet.tensor(gen(3, 2).astype(np.float64), requires_grad=True)
    assert gradcheck(getattr(somanet, name), (x,))


ACTIVATIONS = [
    ("leaky_relu", dict(negative_slope=0.1)),
    ("gelu", dict()),
    ("gelu", dict(approximate="tanh")),
    ("silu", dict()),
    ("elu", dict(alpha=0.7)),
    ("selu", dict()),
    ("softplus", dict()),
    ("softplus", dict(beta=2.0, threshold=3.0)),
    ("hardtanh", dict(min_val=-0.5, max_val=0.8)),
    ("relu6", dict()),
]


@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activations_match_torch(name, kw):
    from somanet.nn import functional as F

    a = r(6, 7, low=-4, high=4)
    tF = torch.nn.functional
    compare(lambda x: getattr(F, name)(x, **kw), lambda x: getattr(tF, name)(x, **kw), a)
    x = somanet.tensor(r(3, 3, low=-3, high=3).astype(np.float64), requires_grad=True)
    assert gradcheck(lambda t: getattr(F, name)(t, **kw), (x,))


def test_clamp_and_where():
    a = r(4, 5)
    compare(lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5), a)
    compare(lambda x: somanet.clamp(x, min=0.1), lambda x: torch.clamp(x, min=0.1), a)
    compare(lambda x: somanet.clip(x, max=0.3), lambda x: torch.clip(x, max=0.3), a)
    lo, hi = r(4, 5) - 1, r(4, 5) + 1
    compare(lambda x, l_, h: somanet.clamp(x, l_, h), lambda x, l_, h: torch.clamp(x, l_, h), a, lo, hi)
    cond = rng.random((4, 5)) > 0.5
    b = r(4, 5)
    compare(lambda x, y: somanet.where(somanet.tensor(cond), x, y), lambda x, y: torch.where(torch.tensor(cond), x, y), a, b)
    compare(lambda x: somanet.where(somanet.tensor(cond), x, 0.0), lambda x: torch.where(torch.tensor(cond), x, 0.0), a)
    xg = somanet.tensor(r(3, 2).astype(np.float64), requires_grad=True)
    yg = somanet.tensor(r(3, 2).astype(np.float64), requires_grad=True)
    assert gradcheck(lambda u, v: somanet.where(somanet.tensor(cond[:3, :2]), u, v), (xg, yg))


def test_maximum_ties_share_gradient_like_torch():
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    b = np.array([1.0, 5.0, 0.0], dtype=np.float32)
    compare(lambda x, y: somanet.maximum(x, y), lambda x, y: torch.maximum(x, y), a, b)
    compare(lambda x, y: somanet.minimum(x, y), lambda x, y: torch.minimum(x, y), a, b)


def test_binary_gradcheck():
    a = somanet.tensor(rng.uniform(0.5, 2, (3, 1)), requires_grad=True)
    b = somanet.tensor(rng.uniform(0.5, 2, (1, 4)), requires_grad=True)
    for fn in (lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x * y, lambda x, y: x / y,
               lambda x, y: x ** y, somanet.maximum, somanet.minimum):
        assert gradcheck(fn, (a, b))


def test_comparisons_are_bool_without_grad():
    a, b = r(3, 4), r(3, 4)
    x = somanet.tensor(a, requires_grad=True)
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        out = getattr(x, op)(b)
        assert out.dtype == np.bool_ and not out.requires_grad
        assert_close(out, getattr(torch.tensor(a), op)(torch.tensor(b)))
    m = x > 0
    assert_close(m & (x < 1), (torch.tensor(a) > 0) & (torch.tensor(a) < 1))
    assert_close(m | (x < -1), (torch.tensor(a) > 0) | (torch.tensor(a) < -1))
    assert_close(~m, ~(torch.tensor(a) > 0))
    assert_close(somanet.logical_not(m), torch.logical_not(torch.tensor(a) > 0))


def test_dtype_promotion_follows_torch():
    i = somanet.tensor([1, 2, 3])
    assert i.dtype == np.int64
    assert (i * 1.5).dtype == np.float32
    assert (i / 2).dtype == np.float32
    assert (i + 1).dtype == np.int64
    f = somanet.ones(3)
    assert (f + i).dtype == np.float32
    assert (f + somanet.tensor(2.0, dtype=somanet.float64)).dtype == np.float32  # 0-d does not widen
    assert (f.double() + f).dtype == np.float64
    assert somanet.exp(i).dtype == np.float32


def test_extreme_values_stay_finite():
    a = np.array([-1e4, 0.0, 1e4], dtype=np.float32)
    compare(somanet.sigmoid, torch.sigmoid, a)
    from somanet.nn import functional as F

    compare(F.softplus, torch.nn.functional.softplus, a)
    compare(F.silu, torch.nn.functional.silu, a)
    compare(F.elu, torch.nn.functional.elu, a)


def test_shape_mismatch_error_names_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"add.*\(2, 3\).*\(4,\)"):
        somanet.ones(2, 3) + somanet.ones(4)
    with pytest.raises(RuntimeError, match=r"mul.*\(2, 3\).*\(2,\)"):
        somanet.ones(2, 3) * somanet.ones(2)


def test_float32_never_drifts():
    x = somanet.randn(3, 3, requires_grad=True)
    y = (x.exp() + 1.0).log() * 0.5 / 3 - x.sigmoid() ** 2 + somanet.gelu(x) if hasattr(somanet, "gelu") else x
    from somanet.nn import functional as F

    y = (x.exp() + 1.0).log() * 0.5 / 3 - x.sigmoid() ** 2 + F.gelu(x) + F.silu(x).tanh()
    assert y.dtype == np.float32
    y.backward(somanet.ones(3, 3))
    assert x.grad.dtype == np.float32


def test_exact_gelu_float32_over_a_dense_range_matches_torch():
    # float32 GELU uses its own normal CDF (Abramowitz & Stegun 7.1.26, 1/sqrt(2) folded in); check it
    # everywhere it matters, the tails and special values included, against float64 PyTorch.
    from somanet.nn import functional as F

    # Beyond |x| = 13.2 the Gaussian factor's exp2 argument is clipped (NumPy's exp2 is slow on subnormal
    # results): the band up to 20 checks that this changes nothing visible.
    x = np.concatenate([np.linspace(-12, 12, 200001), np.linspace(-20, -12, 8001), np.linspace(12, 20, 8001),
                        [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4, -1e4]]).astype(np.float32)
    t = somanet.tensor(x, requires_grad=True)
    out = F.gelu(t)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    out.backward(somanet.tensor(g))
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    tout = torch.nn.functional.gelu(tx)
    tout.backward(torch.tensor(g.astype(np.float64)))
    assert out.dtype == np.float32 and t.grad.dtype == np.float32
    ref = tout.detach().numpy()
    assert np.abs(out.array - ref).max() <= 4e-7 * 12
    np.testing.assert_allclose(out.array, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad.array, tx.grad.numpy(), rtol=1e-5, atol=2e-6)
    assert np.isnan(F.gelu(somanet.tensor(np.array([np.nan], np.float32))).array).all()


def test_tanh_gelu_float32_over_a_dense_range_matches_torch_with_and_without_grad():
    # The tanh formula runs as a / (1 + 2^(-2 log2(e) y)) (a sigmoid), and without grad as one division;
    # both must equal PyTorch's 0.5 a (1 + tanh(y)), the far tails included, without overflow warnings.
    import warnings

    from somanet.nn import functional as F

    x = np.concatenate([np.linspace(-40, 40, 200001), [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    tout = torch.nn.functional.gelu(tx, approximate="tanh")
    tout.backward(torch.tensor(g.astype(np.float64)))
    ref = tout.detach().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = somanet.tensor(x, requires_grad=True)
        out = F.gelu(t, approximate="tanh")
        out.backward(somanet.tensor(g))
        with somanet.no_grad():
            plain = F.gelu(somanet.tensor(x), approximate="tanh")
    for y in (out, plain):
        assert y.dtype == np.float32
        np.testing.assert_allclose(y.array, ref, rtol=1e-5, atol=1e-6)
    assert t.grad.dtype == np.float32
    np.testing.assert_allclose(t.grad.array, tx.grad.numpy(), rtol=1e-5, atol=4e-6)
    # PyTorch gives inf at +inf and NaN at -inf and NaN; so does somanet.
    special = torch.nn.functional.gelu(torch.tensor([np.inf, -np.inf, np.nan]), approximate="tanh").numpy()
    with np.errstate(invalid="ignore"):
        got = F.gelu(somanet.tensor(np.array([np.inf, -np.inf, np.nan], np.float32)), approximate="tanh").array
    np.testing.assert_array_equal(got, special)


def test_relu_matches_numpy_maximum_at_every_size_and_layout():
    # Float arrays take clip(x, 0, inf), NumPy's vector loop: the values must be np.maximum's (NaN kept) at
    # every length, dtype and layout, and -0.0 stays -0.0 as in PyTorch's relu.
    from somanet.ops.elementwise import positive_part

    for n in (0, 1, 4095, 4096, 16385, 3 * 16384 + 77):
        for dtype in (np.float32, np.float64, np.float16, np.int32):
            a = (np.random.default_rng(n).standard_normal(n) * 5).astype(dtype)
            if dtype != np.int32 and n:
                a[::5] = -0.0
                a[::7] = np.nan
            got, want = positive_part(a), np.maximum(a, 0)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            if dtype != np.int32:
                np.testing.assert_array_equal(np.signbit(got), np.signbit(a) & (a == 0))
    a = np.random.default_rng(0).standard_normal((3 * 16384, 4)).astype(np.float32)
    np.testing.assert_array_equal(positive_part(a.T), np.maximum(a.T, 0))  # not C-contiguous
    np.testing.assert_array_equal(positive_part(a[:, 1:]), np.maximum(a[:, 1:], 0))
    x = somanet.tensor(a, requires_grad=True)
    y = somanet.nn.functional.relu(x)
    y.backward(somanet.ones_like(y))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.array, (a > 0).astype(np.float32))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_in_float16_is_computed_in_float32_like_torch(approximate):
    from somanet.nn import functional as F

    x = np.linspace(-6, 6, 241).astype(np.float16)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float16)
    t = somanet.tensor(x, requires_grad=True)
    out = F.gelu(t, approximate=approximate)
    out.backward(somanet.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.gelu(tx, approximate=approximate)
    tout.backward(torch.tensor(g))
    assert out.dtype == np.float16 and t.grad.dtype == np.float16
    np.testing.assert_allclose(out.array.astype(np.float32), tout.detach().numpy().astype(np.float32), rtol=2e-3,
                               atol=1e-4)
    np.testing.assert_allclose(t.grad.array.astype(np.float32), tx.grad.numpy().astype(np.float32), rtol=4e-3,
                               atol=1e-3)


def test_exp2_clips_only_below_its_fast_range():
    from somanet.ops._util import exp2_

    t = np.array([-np.inf, -1e4, -150.0, -130.0, -126.0, 0.0, 5.0, 126.0, np.nan], np.float32)
    got = exp2_(t.copy())
    want = np.exp2(np.maximum(t, -126.0))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert got[0] == 2.0 ** -126 and np.isnan(got[-1])
    with np.errstate(over="ignore"):
        assert exp2_(np.array([200.0, np.inf], np.float32)).tolist() == [np.inf, np.inf]


def test_select_is_where_bit_for_bit():
    # The branch-free where: every value (NaN, infinities, signed zeros, subnormals), broadcasting, scalars
    # on either side (+0.0 takes a shortcut), float64, and small or integer arrays through NumPy's where.
    from somanet.ops._util import select

    rng = np.random.default_rng(0)
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5, 1e-40], np.float32)
    a, b = rng.choice(values, (64, 100)), rng.choice(values, (64, 100))
    cond = rng.random((64, 100)) > 0.5
    cases = [(cond, a, b), (cond, a, 0.0), (cond, 0.0, b), (cond, a, -0.0), (cond, -0.0, b), (cond, a, 2.0),
             (cond[:, :1], a, b), (cond, a[:1], b[:, :1]), (cond, 0.0, b[:1]), (cond[:1], a, 0.0),
             (cond, a.astype(np.float64), b.astype(np.float64)), (cond[:3, :3], a[:3, :3], b[:3, :3]),
             (cond, np.full((64, 100), 3, np.int32), 7)]
    for c, x, y in cases:
        with np.errstate(invalid="ignore"):
            want = np.where(c, x, y)
        got = select(c, x, y)
        assert got.dtype == want.dtype and got.shape == want.shape
        kind = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
        np.testing.assert_array_equal(got.view(kind), want.view(kind))
