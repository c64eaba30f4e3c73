"""Indexing, gather/scatter, masks, sorting and in-place ops against PyTorch and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import somanet
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from somanet.ops.index import _index_add_rows
from reference import compare, torch_or_skip, assert_close

torch = torch_or_skip()
rng = np.random.default_rng(3)
FAST = settings(max_examples=15, deadline=None)


def r(*shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


def distinct(*shape):
    """float32 values with no ties, so sorting orders agree everywhere."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float32) / 7 - 3).reshape(shape)


def g64(*shape):
    return somanet.tensor(rng.standard_normal(shape), dtype=somanet.float64, requires_grad=True)


def both(key):
    """The same index for somanet (NumPy arrays) and PyTorch (tensors)."""
    items = key if isinstance(key, tuple) else (key,)
    t = tuple(torch.from_numpy(k) if isinstance(k, np.ndarray) else k for k in items)
    return key, (t if isinstance(key, tuple) else t[0])


# --------------------------------------------------------------------------- basic indexing
@FAST
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data())
def test_basic_getitem_matches_torch(shape, data):
    key = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    items = key if isinstance(key, tuple) else (key,)
    a = r(*shape)
    if any(isinstance(k, slice) and k.step is not None and k.step < 0 for k in items):
        # PyTorch has no negative steps: check against NumPy's result and the matching scatter.
        x = somanet.tensor(a, requires_grad=True)
        y = x[key]
        np.testing.assert_array_equal(y.array, a[key])
        v = r(*y.shape)
        (y * somanet.tensor(v)).sum().backward()
        expect = np.zeros_like(a)
        expect[key] = v
        np.testing.assert_array_equal(x.grad.array, expect)
        return
    compare(lambda x: x[key], lambda x: x[key], a)


def test_basic_getitem_is_a_view():
    x = somanet.tensor(r(3, 4))
    y = x[1:, ::2]
    assert np.shares_memory(y.array, x.array) and y._version is x._version
    compare(lambda x: x[-2:, -3:-1], lambda x: x[-2:, -3:-1], r(3, 4))
    compare(lambda x: x[..., None, 1], lambda x: x[..., None, 1], r(2, 3, 4))


def test_getitem_errors():
    x = somanet.zeros(2, 3)
    with pytest.raises(IndexError, match=r"__getitem__.*\(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match=r"__getitem__.*\(2, 3\)"):
        x[somanet.tensor([0, 3])]
    with pytest.raises(IndexError, match="integer or bool.*float32"):
        x[somanet.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"__getitem__.*\(2, 3\)"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="unsupported index"):
        x["a"]


# --------------------------------------------------------------------------- advanced indexing
ADVANCED_KEYS = {
    "repeats": lambda: np.array([0, 2, 2, -1, 0]),
    "2d_index": lambda: np.array([[1, 1], [0, 3]]),
    "two_arrays": lambda: (np.array([0, 1, 1, 0]), slice(None), np.array([2, 2, 0, 4])),
    "adjacent_arrays": lambda: (slice(None), np.array([[0], [2], [2]]), np.array([1, 1, 4])),
    "array_then_slice": lambda: (np.array([3, 3, 1]), slice(1, None)),
    "slice_then_array": lambda: (slice(None, 3), np.array([2, 0, 2])),
    "with_none": lambda: (None, np.array([1, 1]), Ellipsis, np.array([0, 4])),
    "int_and_array": lambda: (1, slice(None), np.array([4, 4, 0])),
    "rows_and_cols": lambda: (np.arange(4), np.array([2, 0, 1, 2])),
    "ellipsis_last": lambda: (np.array([0, 0]), Ellipsis),
    "empty": lambda: np.array([], dtype=np.int64),
}


@pytest.mark.parametrize("name", sorted(ADVANCED_KEYS))
def test_advanced_getitem_matches_torch(name):
    s_key, t_key = both(ADVANCED_KEYS[name]())
    compare(lambda x: x[s_key], lambda x: x[t_key], r(4, 3, 5))


def test_advanced_getitem_forms():
    a = r(5, 3)
    compare(lambda x: x[[0, 0, 4]], lambda x: x[[0, 0, 4]], a)
    compare(lambda x: x[somanet.tensor([1, 1, -1])], lambda x: x[torch.tensor([1, 1, -1])], a)
    compare(lambda x: x[somanet.tensor(2)], lambda x: x[torch.tensor(2)], a)
    compare(lambda x: x[[[0, 1], [1, 1]], [2, 2]], lambda x: x[[[0, 1], [1, 1]], [2, 2]], a)
    x = somanet.tensor(a)
    assert not np.shares_memory(x[[0, 1]].array, x.array)


@pytest.mark.parametrize("size,n", [(10, 200), (1000, 3), (6, 0)])
def test_one_dim_scatter_paths_match_torch(size, n):
    # Many indices into few slots (bincount path), few into many (add.at path), none.
    idx = rng.integers(-size, size, n)
    compare(lambda x: x[idx], lambda x: x[torch.from_numpy(idx)], r(size))


def test_row_scatter_with_repeats_matches_torch():
    idx = rng.integers(0, 7, 50)
    compare(lambda x: x[idx], lambda x: x[torch.from_numpy(idx)], r(7, 4, 2))
    out = np.zeros((3, 2), np.float32)
    _index_add_rows(out, np.array([2, 0, 2, 2]), np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(out, [[1, 1], [0, 0], [3, 3]])


def test_bool_masks_match_torch():
    a = r(3, 4)
    mask = a > 0
    compare(lambda x: x[somanet.tensor(mask)], lambda x: x[torch.from_numpy(mask)], a)
    compare(lambda x: x[mask], lambda x: x[torch.from_numpy(mask)], a)
    rows = np.array([True, False, True])
    compare(lambda x: x[rows], lambda x: x[torch.from_numpy(rows)], a)
    compare(lambda x: x[rows, 1:], lambda x: x[torch.from_numpy(rows), 1:], a)
    compare(lambda x: x[:, mask[0]], lambda x: x[:, torch.from_numpy(mask[0])], a)
    compare(lambda x: x[x > 0.5], lambda x: x[x > 0.5], a)
    compare(lambda x: x[[True, False, True]], lambda x: x[[True, False, True]], a)
    with pytest.raises(IndexError, match="__getitem__"):
        somanet.tensor(a)[np.array([True, False])]


# --------------------------------------------------------------------------- setitem
SET_CASES = {
    "int": (lambda: 1, (4,)),
    "slice": (lambda: (slice(None), slice(1, 3)), (3, 2)),
    "broadcast": (lambda: (slice(None), slice(1, 3)), (2,)),
    "array": (lambda: np.array([2, 0]), (2, 4)),
    "mask": (lambda: np.array([True, False, True]), (4,)),
    "extra_leading_ones": (lambda: 0, (1, 4)),
    "none_and_ellipsis": (lambda: (None, Ellipsis, 2), (1, 3)),
}


@pytest.mark.parametrize("name", sorted(SET_CASES))
def test_setitem_with_grad_matches_torch(name):
    make_key, vshape = SET_CASES[name]
    s_key, t_key = both(make_key())

    def run(x, v, key):
        y = x * 1.0
        y[key] = v
        return y * 2

    compare(lambda x, v: run(x, v, s_key), lambda x, v: run(x, v, t_key), r(3, 4), r(*vshape))


def test_setitem_into_plain_buffer_records_graph():
    def run(lib, v):
        buf = lib.zeros(3, 4)
        buf[1] = v
        buf[:, 0] = v[:3] * 2
        return buf

    compare(lambda v: run(somanet, v), lambda v: run(torch, v), r(4))


def test_setitem_without_grad_is_in_place():
    x = somanet.zeros(3, 4)
    data = x.array
    x[1, 2] = 5
    x[0] = somanet.tensor([1.0, 2.0, 3.0, 4.0])
    x[x > 4.5] = -1
    x[[2, 2], [0, 1]] = 7
    assert x.array is data and x._version[0] == 4
    np.testing.assert_array_equal(x.array, [[1, 2, 3, 4], [0, 0, -1, 0], [7, 7, 0, 0]])
    ints = somanet.zeros(3, dtype=somanet.int64)
    ints[0] = 2.7
    assert ints.dtype == np.int64 and ints.tolist() == [2, 0, 0]


def test_setitem_rules_and_errors():
    leaf = somanet.tensor(r(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*in-place operation \(__setitem__\)"):
        leaf[0] = 1.0
    with somanet.no_grad():
        leaf[0] = 1.0
    assert leaf.array[0] == 1.0
    with pytest.raises(RuntimeError, match="__setitem__.*read-only"):
        somanet.zeros(3).expand(2, 3)[0, 0] = 1.0
    with pytest.raises(RuntimeError, match="__setitem__"):
        somanet.zeros(3, 4)[0] = somanet.zeros(3)
    with pytest.raises(IndexError, match=r"__setitem__.*\(3, 4\)"):
        somanet.zeros(3, 4)[3] = 1.0
    # Writing into a view of a tensor in the graph would not reach the base: refused, not silently wrong.
    x = somanet.tensor(r(3, 4), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="__setitem__.*view"):
        y[0][1] = 5.0


# --------------------------------------------------------------------------- index_select, gather, scatter
@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_index_select_matches_torch(shape, data):
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    idx = np.array(data.draw(st.lists(st.integers(0, shape[d] - 1), max_size=6)), dtype=np.int64)
    compare(lambda x: somanet.index_select(x, d, idx), lambda x: torch.index_select(x, d, torch.from_numpy(idx)),
            r(*shape))
    compare(lambda x: x.index_select(d, somanet.tensor(idx)), lambda x: x.index_select(d, torch.from_numpy(idx)),
            r(*shape))


def test_index_select_scalar_and_errors():
    compare(lambda x: somanet.index_select(x, 0, np.array([0])), lambda x: torch.index_select(x, 0, torch.tensor([0])),
            r())
    x = somanet.zeros(2, 3)
    with pytest.raises(IndexError, match=r"index_select\(\): index 3 is out of bounds for dimension 1 with size 3"):
        x.index_select(1, somanet.tensor([0, 3]))
    with pytest.raises(IndexError, match=r"index_select\(\): index -1"):
        x.index_select(1, somanet.tensor([-1]))
    with pytest.raises(RuntimeError, match="index_select.*integer"):
        x.index_select(0, somanet.tensor([0.0]))
    with pytest.raises(IndexError, match=r"index_select\(\): dimension 2"):
        x.index_select(2, somanet.tensor([0]))


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_gather_scatter_add_match_torch(shape, data):
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    ishape = [data.draw(st.integers(1, n)) for n in shape]
    ishape[d] = data.draw(st.integers(0, 5))
    idx = rng.integers(0, shape[d], ishape)
    t_idx = torch.from_numpy(idx)
    compare(lambda x: somanet.gather(x, d, idx), lambda x: torch.gather(x, d, t_idx), r(*shape))
    compare(lambda x: x.gather(d, somanet.tensor(idx)), lambda x: x.gather(d, t_idx), r(*shape))
    # PyTorch's scatter_add backward only supports src of index's shape.
    src = r(*ishape)
    compare(lambda x, s: somanet.scatter_add(x, d, idx, s), lambda x, s: torch.scatter_add(x, d, t_idx, s),
            r(*shape), src)


def test_scatter_matches_torch():
    # Unique targets per column: where writes collide PyTorch leaves the winner unspecified.
    idx = np.array([[2, 0, 1], [0, 2, 0]])
    t_idx = torch.from_numpy(idx)
    compare(lambda x, s: somanet.scatter(x, 0, idx, s), lambda x, s: torch.scatter(x, 0, t_idx, s), r(3, 4), r(2, 3))
    compare(lambda x, s: x.scatter(1, idx.T[:2], s), lambda x, s: x.scatter(1, t_idx.T[:2], s), r(3, 4), r(2, 2))
    # A src larger than index: PyTorch's backward refuses it, so compare values here (gradcheck covers ours).
    compare(lambda x, s: somanet.scatter(x, 0, idx, s), lambda x, s: torch.scatter(x, 0, t_idx, s), r(3, 4), r(2, 5),
            backward=False)
    compare(lambda x: x.scatter(0, idx, 2.5), lambda x: x.scatter(0, t_idx, 2.5), r(3, 4))
    compare(lambda x: somanet.scatter(x, 0, idx, value=-1.0), lambda x: torch.scatter(x, 0, t_idx, value=-1.0), r(3, 4))


def test_gather_scatter_errors():
    x = somanet.zeros(3, 4)
    with pytest.raises(IndexError, match=r"gather\(\): index 4 is out of bounds for dimension 1 with size 4"):
        x.gather(1, somanet.tensor([[4]]))
    with pytest.raises(RuntimeError, match=r"gather\(\).*same number of dimensions"):
        x.gather(1, somanet.tensor([1]))
    with pytest.raises(RuntimeError, match=r"gather\(\).*larger than input"):
        x.gather(1, somanet.zeros(4, 1, dtype=somanet.int64))
    with pytest.raises(RuntimeError, match=r"scatter_add\(\).*dtype"):
        x.scatter_add(0, somanet.tensor([[0]]), somanet.zeros(1, 1, dtype=somanet.float64))
    with pytest.raises(RuntimeError, match=r"scatter\(\).*larger than src"):
        x.scatter(0, somanet.tensor([[0, 1]]), somanet.zeros(1, 1))


def test_take_along_dim_matches_torch():
    a = distinct(3, 4)
    order = np.argsort(a, axis=1)
    compare(lambda x: somanet.take_along_dim(x, order, 1), lambda x: torch.take_along_dim(x, torch.from_numpy(order), 1),
            a)
    top = np.array([[3], [-1], [0]])
    compare(lambda x: x.take_along_dim(somanet.tensor(top), -1), lambda x: x.take_along_dim(torch.from_numpy(top), -1), a)
    bcast = np.array([[0, 2, 2, 1]])
    compare(lambda x: somanet.take_along_dim(x, bcast, 0), lambda x: torch.take_along_dim(x, torch.from_numpy(bcast), 0),
            a)
    flat = np.array([11, 0, 0])
    compare(lambda x: somanet.take_along_dim(x, flat), lambda x: torch.take_along_dim(x, torch.from_numpy(flat)), a)


# --------------------------------------------------------------------------- masks
def test_masked_fill_matches_torch():
    a = r(2, 3, 4)
    mask = r(3, 1) > 0
    t_mask = torch.from_numpy(mask)
    compare(lambda x: x.masked_fill(mask, -1e9), lambda x: x.masked_fill(t_mask, -1e9), a)
    compare(lambda x: somanet.masked_fill(x, somanet.tensor(mask), float("-inf")),
            lambda x: torch.masked_fill(x, t_mask, float("-inf")), a, backward=False)
    compare(lambda x, v: x.masked_fill(mask, v), lambda x, v: x.masked_fill(t_mask, v), a, r())
    ints = somanet.arange(4).masked_fill(somanet.tensor([True, False, True, False]), 9)
    assert ints.dtype == np.int64 and ints.tolist() == [9, 1, 9, 3]
    with pytest.raises(RuntimeError, match="masked_fill.*boolean.*int64"):
        somanet.zeros(3).masked_fill(somanet.tensor([1, 0, 1]), 1.0)
    with pytest.raises(RuntimeError, match="masked_fill.*0-dimensional"):
        somanet.zeros(3).masked_fill(somanet.tensor([True, False, True]), somanet.zeros(3))
    with pytest.raises(RuntimeError, match=r"masked_fill\(\).*\(2,\).*\(3,\)"):
        somanet.zeros(3).masked_fill(np.array([True, False]), 1.0)


def test_masked_select_matches_torch():
    a = r(3, 4)
    mask = a > 0
    compare(lambda x: somanet.masked_select(x, mask), lambda x: torch.masked_select(x, torch.from_numpy(mask)), a)
    row = mask[:1]
    compare(lambda x: x.masked_select(somanet.tensor(row)), lambda x: x.masked_select(torch.from_numpy(row)), a)


# --------------------------------------------------------------------------- triangles, outer, one_hot
@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
def test_tril_triu_match_torch(diagonal):
    for shape in [(4, 4), (2, 3, 5)]:
        compare(lambda x: somanet.tril(x, diagonal), lambda x: torch.tril(x, diagonal), r(*shape))
        compare(lambda x: x.triu(diagonal=diagonal), lambda x: x.triu(diagonal=diagonal), r(*shape))
    with pytest.raises(RuntimeError, match="tril.*at least 2"):
        somanet.tril(somanet.zeros(3))


def test_outer_matches_torch():
    compare(lambda a, b: somanet.outer(a, b), lambda a, b: torch.outer(a, b), r(3), r(4))
    compare(lambda a, b: a.ger(b), lambda a, b: a.ger(b), r(2), r(5))
    with pytest.raises(RuntimeError, match="outer.*1-d"):
        somanet.outer(somanet.zeros(2, 2), somanet.zeros(2))


def test_one_hot_matches_torch():
    idx = np.array([[0, 3], [2, 2]])
    out = F.one_hot(somanet.tensor(idx))
    assert_close(out, torch.nn.functional.one_hot(torch.from_numpy(idx)))
    assert_close(F.one_hot(somanet.tensor(idx), 6), torch.nn.functional.one_hot(torch.from_numpy(idx), 6))
    assert out.dtype == np.int64 and not out.requires_grad
    with pytest.raises(RuntimeError, match="one_hot.*\\[0, 3\\)"):
        F.one_hot(somanet.tensor([0, 3]), 3)
    with pytest.raises(RuntimeError, match="one_hot.*integer"):
        F.one_hot(somanet.tensor([0.0]))


# --------------------------------------------------------------------------- nonzero, sort, topk, unique
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 0, 3)])
def test_nonzero_argwhere_where_match_torch(shape):
    a = np.asarray((rng.standard_normal(shape) > 0) * r(*shape), dtype=np.float32)
    t = torch.from_numpy(a)
    x = somanet.tensor(a)
    assert_close(somanet.nonzero(x), torch.nonzero(t))
    assert_close(x.argwhere(), t.argwhere())
    for s, e in zip(x.nonzero(as_tuple=True), t.nonzero(as_tuple=True)):
        assert_close(s, e)
    if shape:
        for s, e in zip(somanet.where(x != 0), torch.where(t != 0)):
            assert_close(s, e)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5), data=st.data())
def test_sort_argsort_topk_match_torch(shape, data):
    a = distinct(*shape)
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    desc = data.draw(st.booleans())
    compare(lambda x: somanet.sort(x, d, desc), lambda x: torch.sort(x, d, desc), a)
    compare(lambda x: x.argsort(d, descending=desc), lambda x: x.argsort(d, descending=desc), a)
    k = data.draw(st.integers(0, shape[d]))
    largest = data.draw(st.booleans())
    compare(lambda x: somanet.topk(x, k, d, largest), lambda x: torch.topk(x, k, d, largest), a)
    compare(lambda x: x.topk(k, dim=d, largest=largest, sorted=True),
            lambda x: x.topk(k, dim=d, largest=largest, sorted=True), a)


def test_sort_ties_nan_and_scalars():
    a = np.array([[1.0, 3.0, 3.0, np.nan, 2.0, 1.0]], dtype=np.float32)
    for desc in (False, True):
        compare(lambda x: x.sort(descending=desc, stable=True), lambda x: x.sort(descending=desc, stable=True), a)
    compare(lambda x: somanet.topk(x, 2), lambda x: torch.topk(x, 2), a)
    compare(lambda x: x.sort(), lambda x: x.sort(), r())
    s = somanet.sort(somanet.tensor(a))
    assert s.values.shape == (1, 6) and s.indices.dtype == np.int64 and not s.indices.requires_grad
    with pytest.raises(RuntimeError, match=r"topk\(\): k \(7\) is out of range for dimension 1 of size 6"):
        somanet.topk(somanet.tensor(a), 7)


@pytest.mark.parametrize("dim", [None, 0, 1])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("counts", [False, True])
def test_unique_matches_torch(dim, inverse, counts):
    a = np.array([[3, 1, 3], [0, 1, 0], [3, 1, 3]])
    got = somanet.unique(somanet.tensor(a), return_inverse=inverse, return_counts=counts, dim=dim)
    want = torch.unique(torch.from_numpy(a), return_inverse=inverse, return_counts=counts, dim=dim)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for s, t in zip(got, want):
        assert_close(s, t)
    f = r(6).round()
    assert_close(somanet.tensor(f).unique(), torch.from_numpy(f).unique())


# --------------------------------------------------------------------------- in-place ops
INPLACE = {
    "add_": lambda y, o: y.add_(o, alpha=2),
    "sub_": lambda y, o: y.sub_(o),
    "mul_": lambda y, o: y.mul_(o),
    "div_": lambda y, o: y.div_(o),
    "clamp_": lambda y, o: y.clamp_(-0.5, 0.5).add_(o),
    "zero_": lambda y, o: y.zero_().add_(o),
    "fill_": lambda y, o: y.fill_(o.sum()),
    "copy_": lambda y, o: y.copy_(o),
    "masked_fill_": lambda y, o: y.masked_fill_(MASK[y.__class__ is torch.Tensor], o.sum()),
}
MASK = {False: np.array([True, False, True, True]), True: torch.tensor([True, False, True, True])}


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_on_non_leaf_matches_torch(name):
    op = INPLACE[name]

    def run(x, o):
        y = x * 1.5
        out = op(y, o)
        assert out is y
        return y * y

    compare(run, run, r(3, 4), r(4) + 3)
    compare(run, run, r(3, 4), r(4) + 3, requires_grad=[True, False])
    compare(lambda x, o: run(x.detach(), o), lambda x, o: run(x.detach(), o), r(3, 4), r(4) + 3)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_without_grad_is_truly_in_place(name):
    x = somanet.tensor(r(3, 4))
    data, before = x.array, x.array.copy()
    with somanet.no_grad():
        out = INPLACE[name](x, somanet.tensor(r(4) + 3))
    assert out is x and x.array is data and x.dtype == np.float32
    assert x._version[0] >= 1 and not np.array_equal(x.array, before)


def test_inplace_on_saved_tensor_raises_naming_the_op():
    x = somanet.tensor(r(3), requires_grad=True)
    y = x.exp()
    y.add_(1)
    with pytest.raises(RuntimeError, match="Exp backward.*in-place"):
        y.backward(somanet.ones(3))
    a = somanet.tensor(r(3), requires_grad=True) * 1
    w = somanet.tensor(r(3), requires_grad=True)
    b = a * w
    a.mul_(2)
    with pytest.raises(RuntimeError, match="Mul backward.*in-place"):
        b.sum().backward()
    z = x * 1
    s = z.sigmoid()
    with somanet.no_grad():
        s.fill_(0.0)
    with pytest.raises(RuntimeError, match="Sigmoid"):
        s.sum().backward()


def test_inplace_leaf_rules():
    x = somanet.tensor(r(3), requires_grad=True)
    for call, name in [(lambda: x.add_(1), "add_"), (lambda: x.zero_(), "zero_"), (lambda: x.mul_(2), "mul_"),
                       (lambda: x.copy_(somanet.zeros(3)), "copy_"), (lambda: x.clamp_(0, 1), "clamp_")]:
        with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*in-place operation \(" + name):
            call()
    with somanet.no_grad():
        x.mul_(0).add_(2)
    np.testing.assert_array_equal(x.array, [2, 2, 2])
    assert x.requires_grad and x.is_leaf and x._version[0] == 2
    v = x.detach()
    with pytest.raises(RuntimeError, match="add_.*view"):
        (x * 1).view(3).add_(1)
    v.add_(1)
    assert x.array[0] == 3  # detach shares memory


def test_inplace_twice_and_with_grad_operand_match_torch():
    def run(x, w):
        y = x * 2
        y.mul_(3)
        y.mul_(w)
        y.sub_(w, alpha=0.5)
        return y

    compare(run, run, r(2, 3), r(3))

    def buffer(w):
        lib = torch if isinstance(w, torch.Tensor) else somanet
        y = lib.zeros(2, 3)
        y.add_(w)
        y.copy_(w * 2)
        return y

    compare(buffer, buffer, r(3))


def test_inplace_dtype_and_shape_rules():
    x = somanet.tensor(r(3))
    x.add_(np.ones(3, dtype=np.float64))
    assert x.dtype == np.float32
    i = somanet.arange(3)
    i.mul_(2)
    assert i.dtype == np.int64 and i.tolist() == [0, 2, 4]
    with pytest.raises(RuntimeError, match="add_.*int64"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="div_.*int64"):
        i.div_(2)
    with pytest.raises(RuntimeError, match="add_.*shape"):
        somanet.zeros(3).add_(somanet.zeros(2, 3))
    y = somanet.tensor(r(3), requires_grad=True) * 1
    with pytest.raises(RuntimeError, match=r"add_\(\): output with shape \(3,\).*\(2, 3\)"):
        y.add_(somanet.tensor(r(2, 3), requires_grad=True))
    with pytest.raises(RuntimeError, match="clamp_.*min.*max"):
        somanet.zeros(3).clamp_()
    f = somanet.zeros(2, dtype=somanet.float64)
    f.fill_(somanet.tensor(1.5))
    assert f.dtype == np.float64 and f.tolist() == [1.5, 1.5]


def test_scatter_inplace_match_torch():
    idx = np.array([[1, 0, 2]])
    t_idx = torch.from_numpy(idx)

    def run(lib_idx):
        def f(x, s):
            y = x * 1
            y.scatter_(0, lib_idx, s)
            y.scatter_add_(1, lib_idx, s * 2)
            return y
        return f

    compare(run(idx), run(t_idx), r(3, 3), r(1, 3))
    x = somanet.zeros(2, 3)
    x.scatter_add_(1, np.array([[0, 0, 1]]), somanet.ones(1, 3))
    assert x.tolist() == [[2, 1, 0], [0, 0, 0]] and x._version[0] == 1


def test_iteration():
    x = somanet.tensor(r(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and rows[1].shape == (2,)
    sum(r_.sum() * (i + 1) for i, r_ in enumerate(rows)).backward()
    np.testing.assert_array_equal(x.grad.array, [[1, 1], [2, 2], [3, 3]])
    with pytest.raises(TypeError, match="0-d"):
        iter(somanet.tensor(1.0))


# --------------------------------------------------------------------------- finite differences
IDX = np.array([2, 0, 2, 1])
GRADCHECKS = {
    "getitem_basic": (lambda x: x[1:, ::-2], [(3, 4)]),
    "getitem_repeats": (lambda x: x[IDX], [(3, 2)]),
    "getitem_two_arrays": (lambda x: x[IDX, :, IDX[::-1] % 2], [(3, 2, 2)]),
    "getitem_slice_array": (lambda x: x[:, IDX], [(2, 3)]),
    "getitem_mask": (lambda x: x[np.array([[True, False], [True, True]])], [(2, 2)]),
    "setitem": (lambda x, v: _set(x, v), [(3, 4), (4,)]),
    "index_select": (lambda x: somanet.index_select(x, 1, IDX), [(2, 3)]),
    "gather": (lambda x: x.gather(0, np.array([[1, 1], [0, 1]])), [(2, 3)]),
    "scatter": (lambda x, s: x.scatter(1, np.array([[2, 0]]), s), [(2, 3), (2, 3)]),
    "scatter_add": (lambda x, s: x.scatter_add(0, np.array([[1, 1, 0]]), s), [(2, 3), (2, 4)]),
    "masked_fill": (lambda x, v: x.masked_fill(np.array([True, False]), v), [(2, 2), ()]),
    "masked_select": (lambda x: x.masked_select(np.array([True, False, True])), [(2, 3)]),
    "take_along_dim": (lambda x: somanet.take_along_dim(x, np.array([[2, 2], [0, -1]]), 1), [(2, 3)]),
    "tril": (lambda x: x.tril(-1), [(3, 3)]),
    "triu": (lambda x: somanet.triu(x, 1), [(2, 3, 3)]),
    "outer": (lambda a, b: somanet.outer(a, b), [(3,), (2,)]),
    "topk": (lambda x: x.topk(2, dim=0).values, [(4, 2)]),
    "sort": (lambda x: x.sort(descending=True)[0], [(2, 4)]),
    "inplace_graph": (lambda x, w: _inplace_chain(x, w), [(2, 3), (3,)]),
}


def _set(x, v):
    y = x * 1
    y[1] = v
    y[np.array([0, 0]), np.array([1, 3])] = v[:2] * 3
    return y


def _inplace_chain(x, w):
    y = x * 1
    y.mul_(w).add_(w, alpha=2).div_(w.abs() + 1).clamp_(-1, 1)
    y.masked_fill_(np.array([True, False, False]), w[0])
    return y


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    fn, shapes = GRADCHECKS[name]
    assert gradcheck(fn, [g64(*s) for s in shapes])
