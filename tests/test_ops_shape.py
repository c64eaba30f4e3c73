"""Shape ops against PyTorch (values, gradients, dtypes) and float64 finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import somanet
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import compare, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional
rng = np.random.default_rng(2)
FAST = settings(max_examples=15, deadline=None)


def r(*shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


def g64(*shape):
    return somanet.tensor(rng.standard_normal(shape), dtype=somanet.float64, requires_grad=True)


shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


@st.composite
def shape_and_dim(draw, min_dims=1, min_side=0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=min_side, max_side=4))
    nd = max(len(shape), 1)
    return shape, draw(st.integers(-nd, nd - 1))


# --------------------------------------------------------------------------- reshape family
@FAST
@given(shape=shapes, data=st.data())
def test_reshape_matches_torch(shape, data):
    a = r(*shape)
    target = list(data.draw(st.permutations(list(shape) + [1])))
    if a.size:
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    compare(lambda x: x.reshape(*target), lambda x: x.reshape(*target), a)
    compare(lambda x: somanet.reshape(x, tuple(target)), lambda x: torch.reshape(x, tuple(target)), a)


def test_reshape_view_and_copy_share_or_own_memory():
    x = somanet.tensor(r(2, 3))
    v = x.view(3, 2)
    assert np.shares_memory(v.array, x.array) and v._version is x._version
    v2 = x.view(-1)
    assert np.shares_memory(v2.array, x.array)
    # A transposed tensor cannot be viewed flat: reshape copies, and the copy has its own version counter.
    xt = x.t()
    with pytest.raises(RuntimeError, match=r"view\(\).*reshape"):
        xt.view(6)
    c = xt.reshape(6)
    assert not np.shares_memory(c.array, x.array) and c._version is not x._version
    compare(lambda a: a.t().reshape(6), lambda a: a.t().reshape(6), r(2, 3))


def test_reshape_errors_name_op_and_shapes():
    x = somanet.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"reshape\(\).*\[2, 5\].*size 6.*\(2, 3\)"):
        x.reshape(2, 5)
    with pytest.raises(RuntimeError, match=r"view\(\).*\[-1, 4\].*\(2, 3\)"):
        x.view(-1, 4)
    with pytest.raises(RuntimeError, match="at most one -1"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match="reshape"):
        somanet.zeros(0, 3).reshape(-1, 0)


def test_view_dtype_and_as():
    x = somanet.tensor(np.arange(4, dtype=np.float32))
    assert x.view(somanet.int32).dtype == np.int32
    np.testing.assert_array_equal(x.view(somanet.int32).array, np.arange(4, dtype=np.float32).view(np.int32))
    compare(lambda a, b: a.view_as(b), lambda a, b: a.view_as(b), r(2, 6), r(3, 4), requires_grad=[True, False])
    compare(lambda a, b: a.t().reshape_as(b), lambda a, b: a.t().reshape_as(b), r(2, 6), r(3, 4),
            requires_grad=[True, False])


@FAST
@given(case=shape_and_dim(min_dims=0), data=st.data())
def test_flatten_matches_torch(case, data):
    shape, _ = case
    nd = max(len(shape), 1)
    s = data.draw(st.integers(-nd, nd - 1))
    e = data.draw(st.integers(s % nd, nd - 1))
    a = r(*shape)
    compare(lambda x: x.flatten(s, e), lambda x: x.flatten(s, e), a)
    compare(lambda x: somanet.flatten(x), lambda x: torch.flatten(x), a)


def test_flatten_errors_and_unflatten():
    with pytest.raises(RuntimeError, match="flatten.*start_dim"):
        somanet.zeros(2, 3, 4).flatten(2, 1)
    with pytest.raises(IndexError, match=r"flatten\(\): dimension 3 is out of range"):
        somanet.zeros(2, 3, 4).flatten(3)
    a = r(2, 12, 3)
    compare(lambda x: x.unflatten(1, (3, -1)), lambda x: x.unflatten(1, (3, -1)), a)
    compare(lambda x: somanet.unflatten(x, -1, (1, 3)), lambda x: torch.unflatten(x, -1, (1, 3)), a)
    with pytest.raises(RuntimeError, match="unflatten"):
        somanet.zeros(2, 12).unflatten(1, (5, -1))


@FAST
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2), data=st.data())
def test_squeeze_unsqueeze_match_torch(shape, data):
    a = r(*shape)
    nd = max(len(shape), 1)
    d = data.draw(st.integers(-nd, nd - 1))
    compare(lambda x: x.squeeze(), lambda x: x.squeeze(), a)
    compare(lambda x: x.squeeze(d), lambda x: x.squeeze(d), a)
    if len(shape) >= 2:
        compare(lambda x: somanet.squeeze(x, (0, -1)), lambda x: torch.squeeze(x, (0, -1)), a)
    u = data.draw(st.integers(-len(shape) - 1, len(shape)))
    compare(lambda x: x.unsqueeze(u), lambda x: x.unsqueeze(u), a)
    with pytest.raises(IndexError, match="unsqueeze"):
        somanet.tensor(a).unsqueeze(len(shape) + 1)


# --------------------------------------------------------------------------- permutations
@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4), data=st.data())
def test_permute_transpose_movedim_match_torch(shape, data):
    a = r(*shape)
    nd = len(shape)
    perm = data.draw(st.permutations(range(nd)))
    neg = [p - nd if i % 2 else p for i, p in enumerate(perm)]
    compare(lambda x: x.permute(*neg), lambda x: x.permute(*neg), a)
    compare(lambda x: somanet.permute(x, neg), lambda x: torch.permute(x, neg), a)
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    compare(lambda x: x.transpose(d0, d1), lambda x: x.transpose(d0, d1), a)
    compare(lambda x: somanet.swapaxes(x, d0, d1), lambda x: torch.swapaxes(x, d0, d1), a)
    compare(lambda x: x.movedim(d0, d1), lambda x: x.movedim(d0, d1), a)
    if nd >= 2:
        compare(lambda x: x.mT, lambda x: x.mT, a)
        compare(lambda x: somanet.movedim(x, (0, 1), (-1, 0)), lambda x: torch.movedim(x, (0, 1), (-1, 0)), a)


def test_t_and_T_and_errors():
    for shape in [(), (3,), (2, 3)]:
        compare(lambda x: x.t(), lambda x: x.t(), r(*shape))
        compare(lambda x: somanet.t(x), lambda x: torch.t(x), r(*shape))
    compare(lambda x: x.T, lambda x: x.T, r(2, 3))
    assert somanet.zeros(2, 3, 4).T.shape == (4, 3, 2)
    with pytest.raises(RuntimeError, match=r"t\(\).*3-D"):
        somanet.zeros(2, 3, 4).t()
    with pytest.raises(RuntimeError, match="mT"):
        somanet.zeros(3).mT
    with pytest.raises(RuntimeError, match="permute.*3 dims"):
        somanet.zeros(2, 3).permute(0, 1, 2)
    with pytest.raises(RuntimeError, match="permute.*repeat"):
        somanet.zeros(2, 3).permute(0, 0)
    with pytest.raises(IndexError, match=r"transpose\(\): dimension 2"):
        somanet.zeros(2, 3).transpose(0, 2)
    x = somanet.tensor(r(2, 3))
    assert np.shares_memory(x.t().array, x.array) and x.permute(1, 0)._version is x._version


# --------------------------------------------------------------------------- broadcasting and repetition
def test_expand_matches_torch():
    a = r(3, 1, 2)
    compare(lambda x: x.expand(4, 3, 5, 2), lambda x: x.expand(4, 3, 5, 2), a)
    compare(lambda x: x.expand(-1, 6, -1), lambda x: x.expand(-1, 6, -1), a)
    compare(lambda x: x.expand((2, 3, 1, 2)), lambda x: x.expand((2, 3, 1, 2)), a)
    compare(lambda x: somanet.broadcast_to(x, (3, 4, 2)), lambda x: torch.broadcast_to(x, (3, 4, 2)), a)
    compare(lambda x, y: x.expand_as(y), lambda x, y: x.expand_as(y), a, r(2, 3, 4, 2), requires_grad=[True, False])
    compare(lambda x: x.expand(2, 3), lambda x: x.expand(2, 3), r())
    with pytest.raises(RuntimeError, match=r"expand\(\).*\(4\).*existing size \(3\).*dimension 0"):
        somanet.tensor(a).expand(4, 1, 2)
    with pytest.raises(RuntimeError, match="expand.*number of sizes"):
        somanet.tensor(a).expand(3, 2)


@FAST
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3), data=st.data())
def test_repeat_and_tile_match_torch(shape, data):
    a = r(*shape)
    extra = data.draw(st.integers(0, 2))
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape) + extra, max_size=len(shape) + extra))
    if not reps:
        reps = [2]
    compare(lambda x: x.repeat(*reps), lambda x: x.repeat(*reps), a)
    short = reps[:max(len(reps) - 2, 1)]
    compare(lambda x: x.tile(short), lambda x: x.tile(short), a)
    compare(lambda x: somanet.tile(x, tuple(short)), lambda x: torch.tile(x, tuple(short)), a)


def test_repeat_error():
    with pytest.raises(RuntimeError, match=r"repeat\(\).*\(1\).*\(2"):
        somanet.zeros(2, 3).repeat(2)


# --------------------------------------------------------------------------- flip and roll
@FAST
@given(shape=shapes, data=st.data())
def test_flip_and_roll_match_torch(shape, data):
    a = r(*shape)
    nd = max(len(shape), 1)
    dims = data.draw(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd))
    dims = [d - nd if i % 2 else d for i, d in enumerate(dims)]
    compare(lambda x: x.flip(dims), lambda x: x.flip(dims), a)
    compare(lambda x: somanet.flip(x, dims), lambda x: torch.flip(x, dims), a)
    shift = data.draw(st.integers(-5, 5))
    compare(lambda x: x.roll(shift), lambda x: x.roll(shift), a)
    if len(shape):
        shifts = [data.draw(st.integers(-5, 5)) for _ in dims]
        if dims:
            compare(lambda x: somanet.roll(x, shifts, dims), lambda x: torch.roll(x, shifts, dims), a)
        compare(lambda x: x.roll(shift, -1), lambda x: x.roll(shift, -1), a)


def test_flip_copies_and_fliplr_flipud():
    x = somanet.tensor(r(3, 4))
    assert not np.shares_memory(x.flip(0).array, x.array)
    compare(lambda x: x.fliplr(), lambda x: x.fliplr(), r(3, 4))
    compare(lambda x: somanet.flipud(x), lambda x: torch.flipud(x), r(3, 4))
    with pytest.raises(RuntimeError, match="roll.*same length"):
        somanet.roll(x, (1, 2), 0)


# --------------------------------------------------------------------------- joining
@FAST
@given(case=shape_and_dim(min_dims=1), sizes=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_cat_matches_torch(case, sizes):
    shape, dim = case
    arrays = []
    for n in sizes:
        s = list(shape)
        s[dim] = n
        arrays.append(r(*s))
    k = len(arrays)
    for name in ["cat", "concat", "concatenate"]:
        compare(lambda *xs: getattr(somanet, name)(list(xs), dim), lambda *xs: getattr(torch, name)(list(xs), dim),
                *arrays)
    compare(lambda *xs: somanet.cat(xs, dim=dim), lambda *xs: torch.cat(xs, dim=dim), *arrays,
            requires_grad=[i % 2 == 0 for i in range(k)])


@FAST
@given(shape=shapes, n=st.integers(1, 3), data=st.data())
def test_stack_matches_torch(shape, n, data):
    arrays = [r(*shape) for _ in range(n)]
    d = data.draw(st.integers(-len(shape) - 1, len(shape)))
    compare(lambda *xs: somanet.stack(xs, d), lambda *xs: torch.stack(xs, d), *arrays)


def test_hstack_vstack_and_promotion():
    compare(lambda a, b: somanet.hstack([a, b]), lambda a, b: torch.hstack([a, b]), r(2, 3), r(2, 1))
    compare(lambda a, b: somanet.vstack([a, b]), lambda a, b: torch.vstack([a, b]), r(3), r(2, 3))
    compare(lambda a, b: somanet.hstack([a, b]), lambda a, b: torch.hstack([a, b]), r(3), r(2))
    # int64 with float32 gives float32 (NumPy alone would give float64), and the float input keeps its gradient.
    ints = np.arange(6).reshape(2, 3)
    compare(lambda a, b: somanet.cat([a, b]), lambda a, b: torch.cat([a, b]), ints, r(2, 3))
    compare(lambda a, b: somanet.stack([a, b], 1), lambda a, b: torch.stack([a, b], 1), r(2, 3), ints)
    d = somanet.cat([somanet.zeros(2, dtype=somanet.float64), somanet.zeros(2)])
    assert d.dtype == np.float64
    # PyTorch's legacy rule: 1-d empty tensors are skipped.
    compare(lambda a, b: somanet.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1), r(0), r(2, 3))


def test_cat_and_stack_errors():
    with pytest.raises(RuntimeError, match=r"cat\(\).*dimension 0.*\(2, 3\).*\(2, 4\)"):
        somanet.cat([somanet.zeros(2, 3), somanet.zeros(2, 4)])
    with pytest.raises(RuntimeError, match=r"cat\(\).*number of dimensions"):
        somanet.cat([somanet.zeros(2, 3), somanet.zeros(3)])
    with pytest.raises(RuntimeError, match=r"cat\(\).*non-empty"):
        somanet.cat([])
    with pytest.raises(RuntimeError, match="zero-dimensional"):
        somanet.cat([somanet.zeros(()), somanet.zeros(())])
    with pytest.raises(IndexError, match=r"cat\(\): dimension 2 is out of range"):
        somanet.cat([somanet.zeros(2, 3)], dim=2)
    with pytest.raises(TypeError, match="cat"):
        somanet.cat(somanet.zeros(2, 3))
    with pytest.raises(RuntimeError, match=r"stack\(\).*\(2, 3\) at entry 0 and \(2, 4\) at entry 1"):
        somanet.stack([somanet.zeros(2, 3), somanet.zeros(2, 4)])
    with pytest.raises(IndexError, match="stack"):
        somanet.stack([somanet.zeros(2, 3)], 3)


# --------------------------------------------------------------------------- splitting
@FAST
@given(case=shape_and_dim(min_dims=1), data=st.data())
def test_split_chunk_unbind_match_torch(case, data):
    shape, dim = case
    a = r(*shape)
    n = shape[dim]
    size = data.draw(st.integers(1, 4))
    compare(lambda x: x.split(size, dim), lambda x: x.split(size, dim), a)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    sections = [b - a_ for a_, b in zip([0] + cuts, cuts + [n])]
    compare(lambda x: somanet.split(x, sections, dim), lambda x: torch.split(x, sections, dim), a)
    chunks = data.draw(st.integers(1, 5))
    compare(lambda x: x.chunk(chunks, dim), lambda x: x.chunk(chunks, dim), a)
    compare(lambda x: somanet.unbind(x, dim), lambda x: torch.unbind(x, dim), a)


def test_chunk_sizes_and_unused_outputs():
    assert [c.shape[0] for c in somanet.zeros(5).chunk(4)] == [2, 2, 1]
    assert [c.shape[0] for c in somanet.zeros(6).chunk(4)] == [2, 2, 2]
    assert [c.shape[0] for c in somanet.zeros(0).chunk(3)] == [0, 0, 0]
    # Only some pieces reach the loss: the others get zero gradient.
    compare(lambda x: x.chunk(3, 1)[1] * 2, lambda x: x.chunk(3, 1)[1] * 2, r(2, 7))
    compare(lambda x: x.unbind(1)[2], lambda x: x.unbind(1)[2], r(2, 4, 3))
    compare(lambda x: x.split([1, 3], -1)[0].exp(), lambda x: x.split([1, 3], -1)[0].exp(), r(2, 4))


def test_split_views_share_version_and_errors():
    x = somanet.tensor(r(4, 3))
    parts = x.split(2)
    assert all(p._version is x._version and np.shares_memory(p.array, x.array) for p in parts)
    assert all(u._version is x._version for u in x.unbind(1))
    with pytest.raises(RuntimeError, match=r"split\(\).*sum exactly to 4"):
        x.split([1, 2])
    with pytest.raises(RuntimeError, match=r"chunk\(\).*greater than 0"):
        x.chunk(0)
    with pytest.raises(IndexError, match=r"unbind\(\): dimension 2"):
        x.unbind(2)


def test_narrow_matches_torch():
    a = r(3, 6)
    compare(lambda x: x.narrow(1, 2, 3), lambda x: x.narrow(1, 2, 3), a)
    compare(lambda x: somanet.narrow(x, -1, -4, 2), lambda x: torch.narrow(x, -1, -4, 2), a)
    compare(lambda x: x.narrow(0, 3, 0), lambda x: x.narrow(0, 3, 0), a)
    x = somanet.tensor(a)
    assert np.shares_memory(x.narrow(1, 1, 2).array, x.array)
    with pytest.raises(RuntimeError, match=r"narrow\(\).*exceeds"):
        x.narrow(1, 4, 3)


def test_clone_contiguous():
    compare(lambda x: x.clone(), lambda x: x.clone(), r(2, 3))
    compare(lambda x: x.t().contiguous(), lambda x: x.t().contiguous(), r(2, 3))
    x = somanet.tensor(r(2, 3))
    assert x.contiguous() is x and x.is_contiguous() and not x.t().is_contiguous()
    assert x.t().contiguous().is_contiguous()
    c = somanet.clone(x)
    assert not np.shares_memory(c.array, x.array)


# --------------------------------------------------------------------------- padding
PADS = [(1, 2), (0, 0, 2, 1), (1, 1, 1, 0, 0, 2), (2, 1, 0, 1)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", PADS)
def test_pad_matches_torch(mode, pad):
    # PyTorch's non-constant modes want 1 or 2 leading dims beyond the padded ones.
    a = r(2, 3, 5) if len(pad) == 2 else r(2, 3, 4, 5)
    compare(lambda x: F.pad(x, pad, mode=mode), lambda x: TF.pad(x, pad, mode=mode), a)


def test_pad_negative_and_value():
    a = r(2, 3, 5)
    compare(lambda x: F.pad(x, (-1, 2, 1, -2)), lambda x: TF.pad(x, (-1, 2, 1, -2)), a)
    compare(lambda x: F.pad(x, (-2, -3)), lambda x: TF.pad(x, (-2, -3)), a)
    compare(lambda x: F.pad(x, (1, 1), value=-2.5), lambda x: TF.pad(x, (1, 1), value=-2.5), a)
    compare(lambda x: F.pad(x, (-1, 2, 2, -1), mode="circular"), lambda x: TF.pad(x, (-1, 2, 2, -1), mode="circular"), a)
    compare(lambda x: F.pad(x, (3, 2), mode="replicate"), lambda x: TF.pad(x, (3, 2), mode="replicate"), r(1, 2, 1))
    ints = somanet.pad(somanet.arange(3).reshape(1, 3), (1, 1), value=7)
    assert ints.dtype == np.int64 and ints.tolist() == [[7, 0, 1, 2, 7]]
    assert somanet.pad(somanet.zeros(2, 3, dtype=somanet.float64), (1, 1)).dtype == np.float64


def test_pad_errors():
    x = somanet.zeros(1, 2, 3)
    with pytest.raises(RuntimeError, match=r"pad\(\).*divisible by 2"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(RuntimeError, match=r"pad\(\).*two times"):
        F.pad(x, (1,) * 8)
    with pytest.raises(RuntimeError, match=r"pad\(\).*reflect.*less than its size 3"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(RuntimeError, match=r"pad\(\).*circular.*more than once"):
        F.pad(x, (4, 0), mode="circular")
    with pytest.raises(RuntimeError, match=r"pad\(\).*negative output size"):
        F.pad(x, (-2, -2))
    with pytest.raises(ValueError, match=r"pad\(\): mode must be one of"):
        F.pad(x, (1, 1), mode="mirror")


# --------------------------------------------------------------------------- finite differences and dtypes
GRADCHECKS = {
    "reshape": (lambda x: x.reshape(3, -1), (2, 3)),
    "reshape_copy": (lambda x: x.t().reshape(-1), (2, 3)),
    "flatten": (lambda x: x.flatten(1), (2, 2, 2)),
    "squeeze": (lambda x: x.squeeze(1), (2, 1, 2)),
    "unsqueeze": (lambda x: x.unsqueeze(-1), (2, 3)),
    "permute": (lambda x: x.permute(2, 0, 1), (2, 1, 3)),
    "transpose": (lambda x: x.transpose(0, -1), (2, 3)),
    "expand": (lambda x: x.expand(2, 3, 2), (3, 1)),
    "repeat": (lambda x: x.repeat(2, 1, 3), (2, 2)),
    "flip": (lambda x: x.flip(0, 1), (2, 3)),
    "roll": (lambda x: x.roll((1, -1), (0, 1)), (2, 3)),
    "cat": (lambda x: somanet.cat([x, x * 2], 1), (2, 2)),
    "stack": (lambda x: somanet.stack([x, x.exp()], -1), (2, 2)),
    "split": (lambda x: x.split([1, 2], 1)[1], (2, 3)),
    "chunk": (lambda x: x.chunk(2)[0] * x.chunk(2)[1], (4, 1)),
    "unbind": (lambda x: x.unbind(1)[0] + x.unbind(1)[2], (2, 3)),
    "narrow": (lambda x: x.narrow(1, 1, 2), (2, 3)),
    "clone": (lambda x: x.clone(), (2, 2)),
    "pad_constant": (lambda x: somanet.pad(x, (1, -1, 2, 0), value=3.0), (2, 3)),
    "pad_reflect": (lambda x: somanet.pad(x, (2, 1, 1, 1), mode="reflect"), (1, 3, 3)),
    "pad_replicate": (lambda x: somanet.pad(x, (2, 1), mode="replicate"), (1, 2, 3)),
    "pad_circular": (lambda x: somanet.pad(x, (-1, 2, 1, 0), mode="circular"), (1, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    fn, shape = GRADCHECKS[name]
    assert gradcheck(fn, [g64(*shape)])


def test_float32_stays_float32_through_graph():
    x = somanet.tensor(r(2, 3, 4), requires_grad=True)
    outs = [x.reshape(6, 4), x.permute(2, 0, 1), x.expand(2, 2, 3, 4), x.repeat(1, 2, 1), x.flip(0), x.roll(1),
            somanet.cat([x, x]), somanet.stack([x, x]), x.split(1)[0], x.unbind(2)[1], F.pad(x, (1, 1), mode="reflect"),
            F.pad(x, (1, 1))]
    total = sum((o.sum() for o in outs), somanet.tensor(0.0))
    total.backward()
    assert all(o.dtype == np.float32 for o in outs) and x.grad.dtype == np.float32


def test_in_place_through_view_is_seen_by_graph():
    # exp saves its output; changing it through a view must stop backward instead of giving a wrong gradient.
    x = somanet.tensor(r(2, 3), requires_grad=True)
    y = x.exp()
    with somanet.no_grad():
        y.view(-1).add_(1.0)
    with pytest.raises(RuntimeError, match="Exp"):
        y.sum().backward()
