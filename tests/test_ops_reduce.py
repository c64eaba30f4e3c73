"""Reductions and the softmax family against PyTorch and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import somanet
from somanet.autograd import gradcheck
from reference import compare, torch_or_skip, assert_close

torch = torch_or_skip()
rng = np.random.default_rng(1)


def r(*shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


@st.composite
def array_and_dim(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=5))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    keep = draw(st.booleans())
    return shape, dim, keep


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "logsumexp", "prod"])
@settings(max_examples=12, deadline=None)
@given(case=array_and_dim())
def test_reduce_over_one_dim(name, case):
    shape, dim, keep = case
    a = r(*shape)
    compare(lambda x: getattr(x, name)(dim, keep), lambda x: getattr(x, name)(dim, keep), a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["sum", "mean", "amax"])
def test_reduce_over_tuple_and_all(name):
    a = r(2, 3, 4)
    compare(lambda x: getattr(x, name)((0, 2)), lambda x: getattr(x, name)((0, 2)), a)
    compare(lambda x: getattr(x, name)((-1, 1), keepdim=True), lambda x: getattr(x, name)((-1, 1), keepdim=True), a)
    if name != "amax":
        compare(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), a)


def test_numpy_aliases():
    a = r(3, 4)
    x = somanet.tensor(a)
    assert_close(x.sum(axis=1, keepdims=True), torch.tensor(a).sum(dim=1, keepdim=True))
    assert_close(somanet.mean(x, axis=0), torch.tensor(a).mean(0))
    with pytest.raises(TypeError, match="both dim= and its alias axis="):
        x.sum(dim=0, axis=1)


def test_empty_and_zero_dim():
    compare(lambda x: x.sum(), lambda x: x.sum(), np.zeros((0, 3), dtype=np.float32))
    compare(lambda x: x.sum(0), lambda x: x.sum(0), np.zeros((0, 3), dtype=np.float32))
    compare(lambda x: x.sum(), lambda x: x.sum(), np.array(2.5, dtype=np.float32))
    compare(lambda x: x.mean(), lambda x: x.mean(), np.array(2.5, dtype=np.float32))
    compare(lambda x: x.exp() * 2, lambda x: x.exp() * 2, np.array(0.5, dtype=np.float32))
    compare(lambda x: x * 2, lambda x: x * 2, np.zeros((2, 0), dtype=np.float32))


def test_sum_dtypes():
    assert somanet.tensor([True, False, True]).sum().dtype == np.int64
    assert somanet.tensor([1, 2], dtype=somanet.int32).sum().dtype == np.int64
    assert somanet.ones(3).sum().dtype == np.float32
    with pytest.raises(RuntimeError, match="mean.*floating"):
        somanet.tensor([1, 2]).mean()


def test_prod_with_zeros():
    a = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 2.0], [2.0, 3.0, 4.0]], dtype=np.float32)
    compare(lambda x: x.prod(1), lambda x: x.prod(1), a)
    compare(lambda x: x.prod(), lambda x: x.prod(), a[2:])
    assert gradcheck(lambda x: x.prod(0), (somanet.tensor(a.astype(np.float64), requires_grad=True),))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std(correction):
    a = r(4, 5)
    compare(lambda x: x.var(1, correction=correction), lambda x: x.var(1, correction=correction), a)
    compare(lambda x: x.std(0, keepdim=True, correction=correction), lambda x: x.std(0, keepdim=True, correction=correction), a)
    compare(lambda x: x.var(), lambda x: x.var(), a)
    compare(lambda x: somanet.std(x, unbiased=False), lambda x: torch.std(x, unbiased=False), a)


def test_max_min_with_dim_return_values_and_indices():
    a = r(3, 5)
    out = compare(lambda x: x.max(1), lambda x: x.max(1), a)
    assert out.indices.dtype == np.int64 and not out.indices.requires_grad
    compare(lambda x: x.min(0, keepdim=True), lambda x: x.min(0, keepdim=True), a)
    compare(lambda x: x.max(), lambda x: x.max(), a)
    compare(lambda x, y: somanet.max(x, y), lambda x, y: torch.max(x, y), a, r(3, 5))


def test_amax_ties_share_gradient():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    compare(lambda x: x.amax(1), lambda x: x.amax(1), a)
    compare(lambda x: x.amax(), lambda x: x.amax(), a)
    compare(lambda x: x.max(), lambda x: x.max(), a)


def test_argmax_argmin():
    a = r(4, 6)
    x = somanet.tensor(a)
    for fn in ("argmax", "argmin"):
        assert_close(getattr(x, fn)(), getattr(torch.tensor(a), fn)())
        assert_close(getattr(x, fn)(1), getattr(torch.tensor(a), fn)(1))
        assert_close(getattr(x, fn)(0, keepdim=True), getattr(torch.tensor(a), fn)(0, keepdim=True))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family(fn, dim):
    a = r(4, 6)
    compare(lambda x: getattr(x, fn)(dim), lambda x: getattr(x, fn)(dim), a)
    x = somanet.tensor(r(3, 4).astype(np.float64), requires_grad=True)
    assert gradcheck(lambda t: getattr(t, fn)(dim), (x,))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_finite_at_extremes(fn):
    a = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4]], dtype=np.float32)
    out = compare(lambda x: getattr(x, fn)(1), lambda x: getattr(x, fn)(1), a)
    assert np.all(np.isfinite(out.array))


def test_logsumexp_gradcheck_and_all_dims():
    x = somanet.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: t.logsumexp((0, 1)), (x,))
    assert gradcheck(lambda t: t.logsumexp(1, keepdim=True), (x,))


def test_cumsum_cumprod():
    a = r(3, 4)
    compare(lambda x: x.cumsum(1), lambda x: x.cumsum(1), a)
    compare(lambda x: x.cumsum(0), lambda x: x.cumsum(0), a)
    compare(lambda x: x.cumprod(1), lambda x: x.cumprod(1), a)
    z = a.copy()
    z[1, 2] = 0
    compare(lambda x: x.cumprod(1), lambda x: x.cumprod(1), z)


@pytest.mark.parametrize("p", [2, 1, float("inf"), 3.0, "fro"])
def test_norm(p):
    a = r(3, 4)
    compare(lambda x: x.norm(p), lambda x: x.norm(p), a)
    if p != "fro":
        compare(lambda x: somanet.norm(x, p, dim=1), lambda x: torch.norm(x, p, dim=1), a)
        x = somanet.tensor(rng.standard_normal((3, 3)), requires_grad=True)
        assert gradcheck(lambda t: t.norm(p, dim=0), (x,))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var", "std", "prod"])
def test_reductions_gradcheck(name):
    x = somanet.tensor(rng.uniform(0.5, 1.5, (2, 3, 2)), requires_grad=True)
    assert gradcheck(lambda t: getattr(t, name)(1), (x,))
    assert gradcheck(lambda t: getattr(t, name)(), (x,))


def test_all_any_count():
    a = rng.random((3, 4)) > 0.5
    x = somanet.tensor(a)
    assert_close(x.all(1), torch.tensor(a).all(1))
    assert_close(x.any(0), torch.tensor(a).any(0))
    assert_close(x.any(), torch.tensor(a).any())
    assert_close(somanet.count_nonzero(x, 1), torch.count_nonzero(torch.tensor(a), 1))


def test_dim_out_of_range_error():
    with pytest.raises(IndexError, match=r"sum\(\): dimension 3 is out of range"):
        somanet.ones(2, 3).sum(3)


def test_sums_along_the_last_axis_match_numpy():
    # Softmax, log_softmax, cross-entropy and attention take their row sums as a BLAS matrix-vector
    # product; it must agree with NumPy's sum on every layout and dtype it may meet.
    from somanet.ops.reduce import sums_along

    g = np.random.default_rng(0)
    cases = [g.standard_normal((5, 7)).astype(np.float32), g.standard_normal((2, 3, 4, 17)),
             g.standard_normal((6, 9)).astype(np.float32).T, g.standard_normal((3, 4)).astype(np.float16),
             np.zeros((0, 5), np.float32), np.array([[1.0, np.inf, 2.0], [np.nan, 1.0, 0.0], [-np.inf, np.inf, 0.0]],
                                                    np.float32)]
    for a in cases:
        with np.errstate(invalid="ignore"):  # inf + -inf in the last case, for both
            got = sums_along(a, -1)
            ref = a.sum(axis=-1, keepdims=True)
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=2e-3 if a.dtype == np.float16 else 1e-6, atol=1e-6)
    b = g.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(sums_along(b, 0), b.sum(axis=0, keepdims=True))


# --------------------------------------------------------------------------- regressions
@pytest.mark.parametrize("fn", ["std", "var"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_std_and_var_of_a_constant_input_have_zero_gradient_like_torch(fn, dtype):
    # d std = d var / (2 std) is 0/0 where the input is constant; PyTorch (and now somanet) give 0.
    const = np.full((3, 4), -2.0, dtype=dtype)
    mixed = const.copy()
    mixed[1] = [1.0, -3.0, 0.5, 2.0]  # one row varies, the others are constant
    cases = [dict(), dict(dim=1), dict(dim=0, keepdim=True), dict(dim=(0, 1)), dict(dim=1, correction=0),
             dict(dim=1, unbiased=False), dict(dim=-1, keepdim=True, correction=2)]
    for a in (const, mixed, np.array([-2.0, -2.0], dtype=dtype)):
        for kw in cases:
            if a.ndim == 1 and "dim" in kw and kw["dim"] not in (-1, 0):
                continue
            out = compare(lambda x: getattr(x, fn)(**kw), lambda x: getattr(x, fn)(**kw), a)
            assert out.dtype == dtype
    x = somanet.tensor([-2.0, -2.0], requires_grad=True)
    somanet.std(x).backward()
    assert x.grad.tolist() == [0.0, 0.0]


ZERO_DIM_REDUCTIONS = ["sum", "mean", "prod", "var", "std", "amax", "amin", "logsumexp", "norm", "all", "any",
                       "count_nonzero", "argmax", "argmin", "max", "min", "var_mean", "std_mean"]


@pytest.mark.parametrize("name", ZERO_DIM_REDUCTIONS)
def test_reductions_of_a_0d_tensor_take_dim_0_and_minus_1_like_torch(name):
    a = np.array(1.5, dtype=np.float32)
    dims = [None, 0, -1]
    for dim in dims:
        for keep in (False, True):
            if dim is None and (keep or name in ("var_mean", "std_mean")):
                continue
            if name in ("count_nonzero",) and keep:
                continue
            kw = {} if dim is None else ({"dim": dim} if name == "count_nonzero" else {"dim": dim, "keepdim": keep})
            if name == "logsumexp" and dim is None:
                continue  # PyTorch requires a dim
            check_dtype = name not in ("all", "any")  # PyTorch keeps uint8 for uint8 inputs only
            rg = name not in ("all", "any", "count_nonzero", "argmax", "argmin")
            compare(lambda x: getattr(somanet, name)(x, **kw), lambda x: getattr(torch, name)(x, **kw), a,
                    requires_grad=[rg], check_dtype=check_dtype)


def test_cumulative_ops_keep_0d_and_accumulate_integers_in_int64():
    for name in ("cumsum", "cumprod"):
        for dim in (0, -1):
            compare(lambda x: getattr(somanet, name)(x, dim), lambda x: getattr(torch, name)(x, dim),
                    np.array(1.5, dtype=np.float32))
        for dtype in (np.bool_, np.uint8, np.int8, np.int32, np.int64):
            a = np.array([1, 0, 1, 1], dtype=dtype)
            got = getattr(somanet, name)(somanet.tensor(a), 0)
            assert_close(got, getattr(torch, name)(torch.tensor(a), 0))
    assert_close(somanet.prod(somanet.tensor(np.array([200, 2], np.uint8))),
                 torch.prod(torch.tensor(np.array([200, 2], np.uint8))))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "norm", "count_nonzero"])
def test_an_empty_dim_tuple_reduces_every_dim_like_torch(name):
    a = r(2, 3)
    kw = {"dim": ()}
    rg = name != "count_nonzero"
    # PyTorch's var/std backward for dim=() divides by 0 (inf gradients); compare their values only.
    compare(lambda x: getattr(somanet, name)(x, **kw), lambda x: getattr(torch, name)(x, **kw), a, requires_grad=[rg],
            backward=name not in ("var", "std"))


def test_empty_reductions_name_the_op():
    for name in ("argmax", "argmin"):
        with pytest.raises(IndexError, match=rf"{name}\(\).*empty.*\(0,\).*dim"):
            getattr(somanet, name)(somanet.tensor([]))
        with pytest.raises(IndexError, match=rf"{name}\(\): expected reduction dim 0 to have non-zero size"):
            getattr(somanet, name)(somanet.zeros(0, 3), 0)
        assert_close(getattr(somanet, name)(somanet.zeros(0, 3), 1), getattr(torch, name)(torch.zeros(0, 3), 1))
    with pytest.raises(IndexError, match=r"amax\(\): expected reduction dim 0 to have non-zero size"):
        somanet.amax(somanet.zeros(0, 3), 0)
    assert_close(somanet.amax(somanet.zeros(0, 3), 1), torch.amax(torch.zeros(0, 3), 1))
    with pytest.raises(RuntimeError, match=r"max\(\).*empty"):
        somanet.zeros(0, 3).max()


def test_std_and_var_refuse_integer_inputs_like_torch():
    for name in ("std", "var"):
        with pytest.raises(RuntimeError, match=rf"{name}\(\).*floating.*int64"):
            getattr(somanet, name)(somanet.tensor([1, 2, 3]))
