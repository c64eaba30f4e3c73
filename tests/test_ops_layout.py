"""Stacking, splitting, rotating, selecting, repeating, scatter-reduce and strided views against PyTorch."""
import numpy as np
import pytest

import somanet
from reference import assert_close, compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(3)


def _n(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", ["atleast_1d", "atleast_2d", "atleast_3d"])
def test_atleast(name):
    for shape in [(), (3,), (2, 3), (2, 3, 4)]:
        compare(getattr(somanet, name), getattr(torch, name), _n(*shape))
    compare(lambda a, b: getattr(somanet, name)(a, b), lambda a, b: getattr(torch, name)(a, b), _n(), _n(3))
    compare(lambda a, b: getattr(somanet, name)([a, b]), lambda a, b: getattr(torch, name)([a, b]), _n(2), _n(3))


def test_stacks():
    compare(lambda a, b: somanet.dstack([a, b]), lambda a, b: torch.dstack([a, b]), _n(3), _n(3))
    compare(lambda a, b: somanet.dstack((a, b)), lambda a, b: torch.dstack((a, b)), _n(2, 3), _n(2, 3, 2))
    compare(lambda a, b, c: somanet.column_stack([a, b, c]), lambda a, b, c: torch.column_stack([a, b, c]),
            _n(4), _n(4, 2), _n(4))
    compare(lambda a, b: somanet.row_stack([a, b]), lambda a, b: torch.row_stack([a, b]), _n(3), _n(2, 3))


@pytest.mark.parametrize("arg", [3, 4, 1, [1, 4], [-2, 1, 10], [3, 1]])
def test_tensor_split(arg):
    compare(lambda a: somanet.tensor_split(a, arg, 1), lambda a: torch.tensor_split(a, arg, 1), _n(2, 7))
    compare(lambda a: a.tensor_split(arg), lambda a: a.tensor_split(arg), _n(7))


def test_tensor_split_with_a_tensor_and_the_hvd_splits():
    compare(lambda a, i: somanet.tensor_split(a, i, 0), lambda a, i: torch.tensor_split(a, i, 0), _n(6, 2),
            np.array([1, 3]))
    compare(lambda a: somanet.hsplit(a, 2), lambda a: torch.hsplit(a, 2), _n(3, 4))
    compare(lambda a: somanet.hsplit(a, [1, 3]), lambda a: torch.hsplit(a, [1, 3]), _n(6))
    compare(lambda a: somanet.vsplit(a, 3), lambda a: torch.vsplit(a, 3), _n(6, 2))
    compare(lambda a: a.dsplit([1]), lambda a: a.dsplit([1]), _n(2, 2, 3))
    with pytest.raises(RuntimeError):
        somanet.hsplit(somanet.zeros(3, 5), 2)


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 5])
@pytest.mark.parametrize("dims", [(0, 1), (1, 0), (2, 0)])
def test_rot90(k, dims):
    compare(lambda a: somanet.rot90(a, k, dims), lambda a: torch.rot90(a, k, dims), _n(2, 3, 4))
    compare(lambda a: a.rot90(k, list(dims)), lambda a: a.rot90(k, list(dims)), _n(2, 3, 4))


def test_select_and_take():
    compare(lambda a: somanet.select(a, 1, -1), lambda a: torch.select(a, 1, -1), _n(2, 3, 4))
    compare(lambda a: a.select(0, 1), lambda a: a.select(0, 1), _n(2, 3))
    idx = np.array([[0, 5], [11, -1]])
    compare(lambda a, i: somanet.take(a, i), lambda a, i: torch.take(a, i), _n(3, 4), idx)
    compare(lambda a, i: a.take(i), lambda a, i: a.take(i), _n(3, 4), np.array([1, 1, 2]))
    with pytest.raises(IndexError):
        somanet.take(somanet.zeros(3), somanet.tensor([3]))


def test_repeat_interleave():
    compare(lambda a: somanet.repeat_interleave(a, 2), lambda a: torch.repeat_interleave(a, 2), _n(2, 3))
    compare(lambda a: a.repeat_interleave(3, dim=1), lambda a: a.repeat_interleave(3, dim=1), _n(2, 3))
    r = np.array([1, 0, 3])
    compare(lambda a, rr: somanet.repeat_interleave(a, rr, dim=1), lambda a, rr: torch.repeat_interleave(a, rr, dim=1),
            _n(2, 3), r)
    compare(lambda a, rr: somanet.repeat_interleave(a, rr, 0), lambda a, rr: torch.repeat_interleave(a, rr, 0),
            _n(3), np.array([0, 0, 2]))
    compare(somanet.repeat_interleave, torch.repeat_interleave, np.array([2, 0, 1]))
    compare(lambda a: somanet.repeat_interleave(a, somanet.tensor(2)),
            lambda a: torch.repeat_interleave(a, torch.tensor(2)), np.arange(3))


def test_broadcast_tensors_and_shapes():
    compare(lambda a, b, c: somanet.broadcast_tensors(a, b, c), lambda a, b, c: torch.broadcast_tensors(a, b, c),
            _n(3, 1), _n(4), _n())
    assert tuple(somanet.broadcast_shapes((2, 1), (3,), 1)) == tuple(torch.broadcast_shapes((2, 1), (3,), 1))
    with pytest.raises(RuntimeError):
        somanet.broadcast_shapes((2,), (3,))


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self):
    x = _n(3, 5)
    src = _n(3, 4)
    idx = np.array([[0, 1, 0, 4], [2, 2, 2, 1], [3, 0, 4, 4]])
    compare(lambda a, i, s: somanet.scatter_reduce(a, 1, i, s, reduce, include_self=include_self),
            lambda a, i, s: torch.scatter_reduce(a, 1, i, s, reduce, include_self=include_self), x, idx, src,
            requires_grad=[True, False, True])
    compare(lambda a, i, s: a.scatter_reduce(0, i, s, reduce, include_self=include_self),
            lambda a, i, s: a.scatter_reduce(0, i, s, reduce, include_self=include_self), _n(4, 4),
            np.array([[0, 1, 0, 3], [3, 1, 0, 0]]), _n(2, 4), requires_grad=[True, False, True])


def test_scatter_reduce_integers_and_in_place():
    x = np.arange(6).reshape(2, 3)
    idx = np.array([[0, 0, 2], [1, 1, 1]])
    src = np.array([[5, 7, 1], [2, 9, 3]])
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        compare(lambda a, i, s: somanet.scatter_reduce(a, 1, i, s, reduce),
                lambda a, i, s: torch.scatter_reduce(a, 1, i, s, reduce), x, idx, src)
    s, t = somanet.tensor(x), torch.tensor(x)
    s.scatter_reduce_(1, somanet.tensor(idx), somanet.tensor(src), "amax", include_self=False)
    t.scatter_reduce_(1, torch.tensor(idx), torch.tensor(src), "amax", include_self=False)
    assert_close(s, t)


def test_index_put_and_put():
    x = _n(4, 3)
    rows, cols = np.array([0, 2, 0]), np.array([1, 1, 1])
    v = _n(3)
    compare(lambda a, i, j, vv: a.index_put((i, j), vv, accumulate=True),
            lambda a, i, j, vv: a.index_put((i, j), vv, accumulate=True), x, rows, cols, v)
    compare(lambda a, i, vv: somanet.index_put(a, (i,), vv), lambda a, i, vv: torch.index_put(a, (i,), vv), x,
            np.array([3, 1]), _n(3))
    s, t = somanet.tensor(x), torch.tensor(x)
    s.index_put_((somanet.tensor(rows), somanet.tensor(cols)), somanet.tensor(v), accumulate=True)
    t.index_put_((torch.tensor(rows), torch.tensor(cols)), torch.tensor(v), accumulate=True)
    assert_close(s, t)
    s.put_(somanet.tensor([0, 5, 5]), somanet.tensor([1.0, 2.0, 3.0]), accumulate=True)
    t.put_(torch.tensor([0, 5, 5]), torch.tensor([1.0, 2.0, 3.0]), accumulate=True)
    assert_close(s, t)
    s.put_(somanet.tensor([-1]), somanet.tensor([9.0]))
    t.put_(torch.tensor([-1]), torch.tensor([9.0]))
    assert_close(s, t)
    compare(lambda a, i, vv: a.put(i, vv), lambda a, i, vv: a.put(i, vv), x, np.array([1, 4]), _n(2))


def test_as_strided_and_unfold():
    x = _n(3, 4)
    compare(lambda a: somanet.as_strided(a, (2, 2), (1, 2)), lambda a: torch.as_strided(a, (2, 2), (1, 2)), x)
    compare(lambda a: a.as_strided((3, 3), (3, 1), 1), lambda a: a.as_strided((3, 3), (3, 1), 1), x)
    for dim, size, step in [(0, 2, 1), (1, 2, 2), (1, 3, 1), (-1, 4, 4), (1, 1, 3)]:
        compare(lambda a: a.unfold(dim, size, step), lambda a: a.unfold(dim, size, step), x)
    compare(lambda a: a.unfold(0, 3, 2), lambda a: a.unfold(0, 3, 2), _n(7))
    s = somanet.zeros(6)
    s.unfold(0, 2, 2)[:, 0] = 1.0
    assert s.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
