"""Tensor conveniences against PyTorch: ``new_*``, ``__format__``, ``Tensor(*sizes)`` and the legacy typed
constructors, indexing with ranges and lists of lists, strides, ``apply_``/``map_``/``resize_``,
``masked_scatter``, and the dtype helpers."""
import warnings

import numpy as np
import pytest

import somanet
from reference import assert_close, compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_new_methods_follow_self_dtype(dtype):
    base = np.ones(2, dtype)
    s, t = somanet.tensor(base), torch.tensor(base)
    for name, args in [("new_zeros", (2, 3)), ("new_ones", ((3,),)), ("new_empty", ([2, 2],))]:
        out_s, out_t = getattr(s, name)(*args), getattr(t, name)(*args)
        assert out_s.shape == tuple(out_t.shape) and out_s.dtype == to_np(out_t.dtype)
        if name != "new_empty":
            assert_close(out_s, out_t)
    assert_close(s.new_full((2, 2), 3), t.new_full((2, 2), 3))
    assert_close(s.new_tensor([1, 0, 2]), t.new_tensor([1, 0, 2]))
    assert_close(s.new_zeros(2, dtype=somanet.int32), t.new_zeros(2, dtype=torch.int32))


def to_np(torch_dtype):
    return torch.empty(0, dtype=torch_dtype).numpy().dtype


def test_new_methods_requires_grad_and_casts():
    s = somanet.ones(2, dtype=somanet.float64)
    out = s.new_ones(2, requires_grad=True)
    assert out.requires_grad and out.is_leaf and out.dtype == somanet.float64
    i, ti = somanet.ones(2, dtype=somanet.int32), torch.ones(2, dtype=torch.int32)
    assert_close(i.new_tensor([1.5, -2.7]), ti.new_tensor([1.5, -2.7]))
    assert_close(i.new_full((2,), 2.7), ti.new_full((2,), 2.7))
    assert_close(s.new_tensor(somanet.tensor([1, 2])), torch.ones(2, dtype=torch.float64).new_tensor(
        torch.tensor([1, 2])))


def test_format():
    for value in (1.23456, -0.5, 3):
        s, t = somanet.tensor(value), torch.tensor(value)
        for spec in (".4f", ".2e", "", "8.3f") if isinstance(value, float) else ("d", "04d", ""):
            assert f"{s:{spec}}" == f"{t:{spec}}"
    loss = somanet.tensor(0.123456, requires_grad=True) * 2
    assert f"loss {loss:.4f}" == "loss 0.2469"
    assert f"{somanet.tensor(True)}" == f"{torch.tensor(True)}"
    v = somanet.tensor([1.0, 2.0])
    assert f"{v}" == str(v)
    with pytest.raises(TypeError):
        f"{v:.2f}"
    with pytest.raises(TypeError):
        f"{torch.tensor([1.0, 2.0]):.2f}"


def test_tensor_constructor_with_sizes():
    for args in [(2, 3), (4,), (), (0, 2), (np.int64(2), 3)]:
        s, t = somanet.Tensor(*args), torch.Tensor(*args)
        assert s.shape == tuple(t.shape) and s.dtype == somanet.float32
    assert_close(somanet.Tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert somanet.Tensor([1, 2]).dtype == somanet.int64  # data keeps somanet's dtype rules
    assert somanet.Tensor(np.zeros(2), True).requires_grad
    assert somanet.Tensor(np.zeros(2), requires_grad=True, dtype=somanet.float32).dtype == somanet.float32
    with pytest.raises(TypeError):
        somanet.Tensor(2, "a")


LEGACY = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ShortTensor", "ByteTensor",
          "CharTensor", "BoolTensor"]


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_constructors(name):
    s_cls, t_cls = getattr(somanet, name), getattr(torch, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for args in [(2, 3), (4,), ()]:
            s, t = s_cls(*args), t_cls(*args)
            assert s.shape == tuple(t.shape) and s.dtype == to_np(t.dtype)
        data = [1.7, 0.0, -2.2] if name != "ByteTensor" else [1.7, 0.0, 2.2]
        assert_close(s_cls(data), t_cls(data))
        assert_close(s_cls(np.array([[1, 0]])), t_cls(np.array([[1, 0]])))
    x = somanet.tensor([1.5, 2.5])
    assert x.type(s_cls).dtype == s_cls.dtype
    assert x.type(f"torch.{name}").dtype == s_cls.dtype


def test_type_names_and_casts():
    x = somanet.ones(2)
    assert x.type() == "somanet.FloatTensor" and torch.ones(2).type() == "torch.FloatTensor"
    assert somanet.typename(x) == "somanet.FloatTensor"
    assert x.type(somanet.float64).dtype == somanet.float64
    for name in ("byte", "char", "short"):
        assert getattr(x, name)().dtype == to_np(getattr(torch.ones(2), name)().dtype)
    other_s, other_t = somanet.tensor([1], dtype=somanet.int16), torch.tensor([1], dtype=torch.int16)
    assert_close(x.type_as(other_s), torch.ones(2).type_as(other_t))


INDEX_KEYS = [range(2), [0, 1], ([0, 1], [1, 2]), (range(2), 1), (slice(None), range(1, 3)), [range(2)],
              (Ellipsis, [0, 2]), [0, slice(1, 3)], [None, 0], range(0), (range(1, 3), range(0, 2)), [[0, 1], [1, 2]]]


@pytest.mark.parametrize("key", INDEX_KEYS, ids=[repr(k) for k in INDEX_KEYS])
def test_indexing_with_ranges_and_lists(key):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare(lambda a: a[key], lambda a: a[key], x)
        s, t = somanet.tensor(x), torch.tensor(x)
        s[key] = 7.0
        t[key] = 7.0
    assert_close(s, t)


def test_indexing_with_a_list_of_tensors():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out_s = somanet.tensor(x)[[somanet.tensor([0, 2]), somanet.tensor([1, 3])]]
        out_t = torch.tensor(x)[[torch.tensor([0, 2]), torch.tensor([1, 3])]]
    assert_close(out_s, out_t)


def test_strides_offsets_and_pointers():
    s, t = somanet.ones(2, 3), torch.ones(2, 3)
    assert s.stride() == t.stride() and s.stride(1) == t.stride(1)
    assert s.t().stride() == t.t().stride()
    assert s[:, 1:].storage_offset() == t[:, 1:].storage_offset() == 1
    assert s[1].storage_offset() == t[1].storage_offset()
    assert s.ndimension() == 2 and s.nbytes == t.nbytes
    assert s[1].data_ptr() - s.data_ptr() == 3 * 4
    assert s.pin_memory() is s and not s.is_pinned() and s.share_memory_() is s and not s.is_shared()
    assert s.dim_order() == t.dim_order() and s.t().dim_order() == t.t().dim_order()


def test_apply_map_resize():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    s, t = somanet.tensor(x), torch.tensor(x)
    s.apply_(lambda v: v * 2 + 1)
    t.apply_(lambda v: v * 2 + 1)
    assert_close(s, t)
    s.map_(somanet.tensor([1.0, 2.0, 3.0]), lambda a, b: a - b)
    t.map_(torch.tensor([1.0, 2.0, 3.0]), lambda a, b: a - b)
    assert_close(s, t)
    s.resize_(3, 2)
    t.resize_(3, 2)
    assert_close(s, t)
    s.resize_(4)
    t.resize_(4)
    assert_close(s, t)
    with pytest.raises(RuntimeError):
        somanet.ones(2, requires_grad=True).apply_(lambda v: v)


def test_masked_scatter():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    mask = np.array([[True, False, True], [False, True, False]])
    src = rng.standard_normal(5).astype(np.float32)
    compare(lambda a, m, b: a.masked_scatter(m, b), lambda a, m, b: a.masked_scatter(m, b), x, mask, src)
    compare(lambda a, m, b: a.masked_scatter(m, b), lambda a, m, b: a.masked_scatter(m, b), x, mask[0], src)
    s, t = somanet.tensor(x), torch.tensor(x)
    s.masked_scatter_(somanet.tensor(mask), somanet.tensor(src))
    t.masked_scatter_(torch.tensor(mask), torch.tensor(src))
    assert_close(s, t)


DTYPES = [("float32", "float32"), ("float64", "float64"), ("float16", "float16"), ("int64", "int64"),
          ("int32", "int32"), ("int8", "int8"), ("uint8", "uint8"), ("bool", "bool")]


@pytest.mark.parametrize("a", DTYPES, ids=[d[0] for d in DTYPES])
@pytest.mark.parametrize("b", DTYPES, ids=[d[0] for d in DTYPES])
def test_promote_types_and_can_cast(a, b):
    sa, sb = getattr(somanet, a[0]), getattr(somanet, b[0])
    ta, tb = getattr(torch, a[1]), getattr(torch, b[1])
    assert somanet.promote_types(sa, sb) == to_np(torch.promote_types(ta, tb))
    assert somanet.can_cast(sa, sb) == torch.can_cast(ta, tb)


def test_result_type():
    cases = [(np.array([1, 2]), 1.0), (np.array([1, 2], np.int32), np.array(5)), (np.array([1.0], np.float16), 2),
             (np.array([True]), np.array([1], np.uint8)), (2, 3.0), (np.array([1], np.int8), True)]
    for a, b in cases:
        sa = somanet.tensor(a) if isinstance(a, np.ndarray) else a
        sb = somanet.tensor(b) if isinstance(b, np.ndarray) else b
        ta = torch.tensor(a) if isinstance(a, np.ndarray) else a
        tb = torch.tensor(b) if isinstance(b, np.ndarray) else b
        assert somanet.result_type(sa, sb) == to_np(torch.result_type(ta, tb)), (a, b)


def test_finfo_iinfo():
    for name in ("float32", "float64", "float16"):
        f, tf = somanet.finfo(getattr(somanet, name)), torch.finfo(getattr(torch, name))
        for attr in ("eps", "max", "min", "tiny", "resolution", "bits", "smallest_normal"):
            assert float(getattr(f, attr)) == pytest.approx(float(getattr(tf, attr)), rel=1e-6), (name, attr)
    assert somanet.finfo().eps == torch.finfo().eps
    for name in ("int8", "int16", "int32", "int64", "uint8"):
        i, ti = somanet.iinfo(getattr(somanet, name)), torch.iinfo(getattr(torch, name))
        assert (i.min, i.max, i.bits) == (ti.min, ti.max, ti.bits)
    with pytest.raises(TypeError):
        somanet.finfo(somanet.int32)
    with pytest.raises(TypeError):
        somanet.iinfo(somanet.float32)


def test_small_predicates_and_counts():
    for fn in ("is_floating_point", "is_complex", "numel"):
        for a in (np.ones((2, 3), np.float32), np.ones(3, np.int64)):
            assert getattr(somanet, fn)(somanet.tensor(a)) == getattr(torch, fn)(torch.tensor(a))
    assert somanet.is_nonzero(somanet.tensor([0.5])) is torch.is_nonzero(torch.tensor([0.5])) is True
    assert somanet.tensor(0).is_nonzero() is False
    with pytest.raises(RuntimeError):
        somanet.is_nonzero(somanet.ones(2))
    assert not somanet.is_storage(somanet.ones(1))


def test_compile_returns_its_argument():
    def f(x):
        return x * 2

    assert somanet.compile(f) is f
    assert somanet.compile(mode="reduce-overhead")(f) is f
    net = somanet.nn.Linear(2, 2)
    assert somanet.compile(net) is net


def test_poisson_and_random_methods():
    somanet.manual_seed(0)
    rates = somanet.full((1000,), 3.0)
    draws = somanet.poisson(rates)
    assert draws.dtype == somanet.float32 and abs(draws.mean().item() - 3.0) < 0.3
    assert rates.poisson().shape == (1000,)
    probs = somanet.full((2000,), 0.25)
    assert abs(probs.bernoulli().mean().item() - 0.25) < 0.05
    assert somanet.tensor([0.0, 1.0, 0.0]).multinomial(2, replacement=True).tolist() == [1, 1]
    g1, g2 = somanet.Generator().manual_seed(3), somanet.Generator().manual_seed(3)
    assert somanet.poisson(rates, g1).tolist() == somanet.poisson(rates, g2).tolist()


def test_print_options_are_accepted():
    before = somanet.get_printoptions()
    somanet.set_printoptions(precision=2, sci_mode=False)
    assert somanet.get_printoptions()["precision"] == 2
    somanet.set_printoptions(**{k: v for k, v in before.items() if k != "profile"})


def test_sparse_only_methods_refuse_dense_tensors():
    for name in ("coalesce", "indices", "values"):
        with pytest.raises(RuntimeError, match="sparse"):
            getattr(somanet.ones(2), name)()
    assert somanet.ones(2).to_dense() is not None and not somanet.ones(2).is_sparse


def test_refused_method_stubs():
    from somanet.ops.tensor_api import UNIMPLEMENTED_METHODS

    for name in UNIMPLEMENTED_METHODS:
        with pytest.raises(NotImplementedError, match=f"torch.Tensor.{name} yet"):
            getattr(somanet.ones(2), name)()


def test_real_and_angle():
    x = np.array([-1.5, 0.0, 2.0, np.nan], np.float32)
    compare(somanet.angle, torch.angle, x)
    s = somanet.tensor(x)
    assert s.real is s
