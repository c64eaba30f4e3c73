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


def test_floor_divide_has_no_grad_and_remainder_has_torchs():
    a, b = r(4) * 5, pos(4)
    x = somanet.tensor(a, requires_grad=True)
    out = x // b
    assert not out.requires_grad
    assert_close(out, torch.tensor(a) // torch.tensor(b))
    for name in ("remainder", "fmod"):
        compare(lambda u, v: getattr(somanet, name)(u, v), lambda u, v: getattr(torch, name)(u, v), a, b)


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


@pytest.mark.parametrize("kernel", ["reference", "numba"])
def test_exact_gelu_float32_over_a_dense_range_matches_torch(kernel):
    # float32 GELU uses its own normal CDF (Abramowitz & Stegun 7.1.26, 1/sqrt(2) folded in); check it
    # everywhere it matters, the tails and special values included, against float64 PyTorch, in the
    # reference code and in the compiled kernel.
    from somanet.nn import functional as F
    from somanet.kernels import _select
    if kernel == "numba" and not _select.numba_available():
        pytest.skip("Numba is not installed")
    with somanet.backends.cpu.kernel("gelu", kernel):
        _check_exact_gelu(F)


def _check_exact_gelu(F):

    # Beyond |x| = 13.2 the Gaussian factor's exp2 argument is clipped (NumPy's exp2 is slow on subnormal
    # results): the band up to 20 checks that this changes nothing visible.
    x = np.concatenate([np.linspace(-12, 12, 200001), np.linspace(-20, -12, 8001), np.linspace(12, 20, 8001),
                        [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4, -1e4, 1e20, -1e20, 3e38, -3e38]]
                       ).astype(np.float32)
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


# --------------------------------------------------------------------------- 0-d tensors
ZERO_DIM_OPS = [(name, {}) for name, _, _ in UNARY] + ACTIVATIONS + [
    ("hardsigmoid", {}), ("hardswish", {}), ("mish", {}), ("logsigmoid", {}), ("softsign", {}),
    ("tanhshrink", {}), ("softshrink", {}), ("hardshrink", {}), ("celu", {}), ("rrelu", {}), ("tanh", {}),
    ("softmax", dict(dim=0)), ("log_softmax", dict(dim=0)), ("softmin", dict(dim=-1)),
    ("threshold", dict(threshold=0.1, value=2.0)),
]


@pytest.mark.parametrize("name,kw", ZERO_DIM_OPS)
@pytest.mark.parametrize("value", [0.7, -0.7])
def test_every_unary_op_works_on_0d_tensors_with_gradients(name, kw, value):
    # NumPy returns scalars from ops on 0-d arrays; ops that work in place on them must still return 0-d
    # tensors and 0-d gradients, as PyTorch does.
    from somanet.nn import functional as F

    tF = torch.nn.functional
    s_fn = getattr(F, name, None) or getattr(somanet, name)
    t_fn = getattr(tF, name, None) or getattr(torch, name)
    a = np.array(abs(value) + 0.2 if name in ("log", "log1p", "sqrt", "rsqrt", "log2", "log10") else value,
                 dtype=np.float32)
    out = compare(lambda x: s_fn(x, **kw), lambda x: t_fn(x, **kw), a)
    assert out.shape == ()
    x = somanet.tensor(np.float64(a), requires_grad=True)
    if name not in ("abs", "relu", "hardshrink", "softshrink", "threshold", "rrelu", "hardtanh", "relu6"):
        assert gradcheck(lambda t: s_fn(t, **kw), (x,))


def test_prelu_works_on_0d_tensors():
    from somanet.nn import functional as F

    compare(lambda x, w: F.prelu(x, w), lambda x, w: torch.nn.functional.prelu(x, w), np.array(-0.7, np.float32),
            np.array([0.25], np.float32))


def test_relu_refuses_bool_like_torch():
    from somanet.nn import functional as F

    with pytest.raises(RuntimeError, match="relu.*bool"):
        F.relu(somanet.tensor([True, False]))
    assert_close(F.relu(somanet.tensor([3, -2])), torch.relu(torch.tensor([3, -2])))


# --------------------------------------------------------------------------- erf accuracy
def _erf_inputs():
    return np.concatenate([
        np.linspace(-7, 7, 140001), np.geomspace(1e-300, 8, 3000), -np.geomspace(1e-300, 8, 3000),
        [0.0, -0.0, 5e-324, 1e-20, 0.5, np.nextafter(0.5, 0), 5.9, 5.95, 6.0, 30.0, -30.0, 1e300, -1e300,
         np.inf, -np.inf, np.nan]])


@pytest.mark.parametrize("path", ["default", "numpy"])
def test_erf_float64_is_accurate_to_float64_like_torch(path, monkeypatch):
    # Both evaluations: SciPy's when installed (the default path) and the NumPy one used without SciPy.
    from somanet.ops import elementwise as E

    if path == "numpy":
        monkeypatch.setattr(E, "_special", False)
    x = _erf_inputs()
    got = somanet.erf(somanet.tensor(x)).array
    want = torch.erf(torch.tensor(x)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
    zeros = np.where(x == 0)[0]
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(x[zeros]))  # erf(-0.0) = -0.0
    assert not got[zeros].any()
    if path == "numpy":
        np.testing.assert_array_equal(E.erf_float64(x), got)
    # The gradient, 2/sqrt(pi) exp(-x^2), in float64.
    compare(somanet.erf, torch.erf, np.linspace(-6, 6, 1001), rtol=1e-14, atol=1e-300)


def test_erf_float32_and_float16_match_torch():
    x = np.concatenate([np.linspace(-6, 6, 20001), [0.0, -0.0, 1e-30, np.inf, -np.inf]]).astype(np.float32)
    compare(somanet.erf, torch.erf, x, rtol=1e-6, atol=5e-7)
    h = np.linspace(-4, 4, 801).astype(np.float16)
    compare(somanet.erf, torch.erf, h, rtol=1e-3, atol=1e-3)


def test_exact_gelu_float64_matches_torch_to_float64_accuracy():
    from somanet.nn import functional as F

    x = np.concatenate([np.linspace(-12, 12, 48001), [0.0, -0.0, 1e-300, -1e-300, 40.0, -40.0]])
    compare(F.gelu, torch.nn.functional.gelu, x, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------- integer division
INT_DIVISIONS = [
    ("floor_divide", lambda a, b: a // b),
    ("remainder", lambda a, b: a % b),
    ("fmod", lambda a, b: a.fmod(b)),
    ("div", lambda a, b: a.div(b, rounding_mode="floor")),
    ("div", lambda a, b: a.div(b, rounding_mode="trunc")),
]


@pytest.mark.parametrize("name,fn", INT_DIVISIONS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int8])
def test_integer_division_by_zero_raises_like_torch(name, fn, dtype):
    a = np.array([5, 7, 3], dtype=dtype)
    for divisor in (np.array([0, 1, 2], dtype=dtype), np.array(0, dtype=dtype)):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn(torch.tensor(a), torch.tensor(divisor))
        with pytest.raises(ZeroDivisionError, match=rf"{name}\(\): integer division by zero.*{np.dtype(dtype)}"):
            fn(somanet.tensor(a), somanet.tensor(divisor))
        with pytest.raises(RuntimeError, match="division by zero"):  # also a RuntimeError, as PyTorch's
            fn(somanet.tensor(a), somanet.tensor(divisor))
    with pytest.raises(ZeroDivisionError):
        fn(somanet.tensor(a), 0)
    # Nothing to divide: no error, as in PyTorch.
    assert fn(somanet.tensor(np.zeros(0, dtype)), 0).shape == (0,)
    # Non-zero divisors of either sign give PyTorch's values and dtype.
    b = np.array([2, 3, 1], dtype=dtype)
    assert_close(fn(somanet.tensor(a), somanet.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))


def test_float_division_by_zero_gives_inf_and_nan_like_torch():
    a = np.array([5.0, -7.0, 0.0], dtype=np.float32)
    for _, fn in INT_DIVISIONS:
        assert_close(fn(somanet.tensor(a), 0.0), fn(torch.tensor(a), 0.0))
    assert_close(somanet.tensor([5, -7]) / 0, torch.tensor([5, -7]) / 0)


def test_signed_integer_rounding_modes_match_torch():
    a = np.array([-7, 7, -7, 7, 0, -1], dtype=np.int64)
    b = np.array([2, -2, -2, 2, 3, 5], dtype=np.int64)
    for _, fn in INT_DIVISIONS:
        assert_close(fn(somanet.tensor(a), somanet.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
        assert_close(fn(somanet.tensor(a), 2), fn(torch.tensor(a), 2))
