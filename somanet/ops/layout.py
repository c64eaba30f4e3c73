"""More ways to arrange tensors: depth and column stacking, index-based splits, quarter turns, selecting
one index, flat takes and puts, repeating elements, at-least-n-d views, broadcasting several tensors,
sliding windows and strided views, and scatter with a reduction.

All are differentiable where PyTorch's are; most are compositions of the shape and index ops.
"""
import builtins

import numpy as np

from .. import devices
from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from . import shape as S
from ._util import ensure_tensor, install, normalize_dim

__all__ = [
    "dstack", "column_stack", "row_stack", "tensor_split", "hsplit", "vsplit", "dsplit", "rot90", "select", "take",
    "repeat_interleave", "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_tensors", "broadcast_shapes",
    "scatter_reduce", "index_put", "as_strided",
]


def _seq(tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(tensors[0])
    return tuple(tensors)


# --------------------------------------------------------------------------- at least n-d
def _atleast(t, n):
    t = ensure_tensor(t)
    shape = t.array.shape
    if len(shape) >= n:
        return t
    if n == 1:
        return S.reshape(t, (1,))
    if n == 2:
        return S.reshape(t, (1,) * (2 - len(shape)) + shape)
    if len(shape) == 0:
        return S.reshape(t, (1, 1, 1))
    if len(shape) == 1:
        return S.reshape(t, (1,) + shape + (1,))
    return S.reshape(t, shape + (1,))


def _atleast_fn(n):
    def fn(*tensors):
        ts = _seq(tensors)
        if len(tensors) == 1 and not isinstance(tensors[0], (list, tuple)):
            return _atleast(ts[0], n)
        return tuple(_atleast(t, n) for t in ts)

    fn.__name__ = f"atleast_{n}d"
    fn.__doc__ = (f"Each tensor viewed with at least {n} dims ({'(n,) -> (1, n, 1)' if n == 3 else 'leading 1s'}); "
                  f"one tensor in, one out; several (or a list) in, a tuple out.")
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast_fn(1), _atleast_fn(2), _atleast_fn(3)


def dstack(tensors):
    """Join along dim 2 after making every tensor at least 3-d."""
    return S.cat([_atleast(t, 3) for t in tensors], 2)


def column_stack(tensors):
    """Join as columns: 0-d and 1-d tensors become ``(n, 1)`` columns, then everything joins along dim 1."""
    cols = []
    for t in tensors:
        t = ensure_tensor(t)
        cols.append(S.reshape(t, (-1, 1)) if t.array.ndim < 2 else t)
    return S.cat(cols, 1)


def row_stack(tensors):
    """Alias of ``vstack``."""
    return S.vstack(tensors)


# --------------------------------------------------------------------------- splitting
def tensor_split(input, indices_or_sections, dim=0):
    """Split into views along ``dim``: into ``n`` near-equal parts (the first ``size % n`` one longer) for an
    int, or at the given indices for a list or 1-d tensor."""
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        raise RuntimeError("tensor_split(): expected at least a 1-dimensional tensor")
    d = normalize_dim(dim, x.array.ndim, "tensor_split")
    n = x.array.shape[d]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        ios = ios.tolist() if ios.array.ndim else builtins.int(ios.item())
    if isinstance(ios, (builtins.int, np.integer)):
        k = builtins.int(ios)
        if k <= 0:
            raise RuntimeError(f"tensor_split(): number of sections must be larger than 0, got {k}")
        base, extra = divmod(n, k)
        sizes = [base + 1] * extra + [base] * (k - extra)
    else:
        # Each piece is x[prev:i] with Python's slice rules, so pieces may be empty or overlap (as in PyTorch).
        bounds = [builtins.min(builtins.max(builtins.int(i) + n if builtins.int(i) < 0 else builtins.int(i), 0), n)
                  for i in ios]
        pieces, prev = [], 0
        for b in bounds + [n]:
            pieces.append(S.narrow(x, d, prev, builtins.max(b - prev, 0)))
            prev = b
        return tuple(pieces)
    return tuple(S.split(x, sizes, d))


def _split_along(name, dim_for):
    def fn(input, indices_or_sections):
        x = ensure_tensor(input)
        d = dim_for(x.array.ndim)
        if isinstance(indices_or_sections, (builtins.int, np.integer)):
            size = x.array.shape[d]
            if size % indices_or_sections:
                raise RuntimeError(f"{name}(): dimension {d} of size {size} does not split into "
                                   f"{indices_or_sections} equal parts")
        return tensor_split(x, indices_or_sections, d)

    fn.__name__ = name
    fn.__doc__ = f"``tensor_split`` along the dim PyTorch's ``{name}`` uses; an int must divide it evenly."
    return fn


def _hdim(nd):
    if nd == 0:
        raise RuntimeError("hsplit(): expected at least a 1-dimensional tensor")
    return 0 if nd == 1 else 1


def _vdim(nd):
    if nd < 2:
        raise RuntimeError(f"vsplit(): expected at least a 2-dimensional tensor, got {nd}")
    return 0


def _ddim(nd):
    if nd < 3:
        raise RuntimeError(f"dsplit(): expected at least a 3-dimensional tensor, got {nd}")
    return 2


hsplit = _split_along("hsplit", _hdim)
vsplit = _split_along("vsplit", _vdim)
dsplit = _split_along("dsplit", _ddim)


# --------------------------------------------------------------------------- arranging
def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``dims`` (from the first toward the second);
    differentiable."""
    x = ensure_tensor(input)
    if len(dims) != 2:
        raise RuntimeError(f"rot90(): expected two dims, got {len(dims)}")
    d0, d1 = (normalize_dim(d, x.array.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise RuntimeError(f"rot90(): the rotation dims must differ, both are {d0}")
    k = builtins.int(k) % 4
    if k == 0:
        return S.clone(x)
    if k == 2:
        return S.flip(x, (d0, d1))
    if k == 1:
        return S.transpose(S.flip(x, (d1,)), d0, d1)
    return S.flip(S.transpose(x, d0, d1), (d1,))


def select(input, dim, index):
    """The view ``input[..., index, ...]`` at ``dim`` (that dim removed); differentiable."""
    x = ensure_tensor(input)
    d = normalize_dim(dim, x.array.ndim, "select")
    n = x.array.shape[d]
    i = builtins.int(index)
    if not -n <= i < n:
        raise IndexError(f"select(): index {i} out of range for dimension {d} of size {n}")
    return x[(slice(None),) * d + (i,)]


def take(input, index):
    """Elements of the flattened input at ``index`` (an integer tensor; the result has its shape);
    differentiable."""
    x = ensure_tensor(input)
    idx = ensure_tensor(index)
    n = x.array.size
    a = idx.array
    if a.size and (a.max() >= n or a.min() < -n):
        raise IndexError(f"take(): index out of range for a tensor of {n} elements")
    return S.reshape(x, (-1,))[idx]


class RepeatInterleave(Function):
    def forward(ctx, a, repeats, dim):
        xp = array_module(a)
        ctx.repeats, ctx.dim, ctx.n = repeats, dim, a.shape[dim]
        return xp.repeat(a, repeats if xp is np or isinstance(repeats, builtins.int) else repeats.tolist(), axis=dim)

    def backward(ctx, grad):
        xp = array_module(grad)
        reps = np.broadcast_to(np.asarray(ctx.repeats), (ctx.n,))
        out_shape = list(grad.shape)
        out_shape[ctx.dim] = ctx.n
        if grad.shape[ctx.dim] == 0:
            return xp.zeros(out_shape, grad.dtype)
        starts = np.concatenate([[0], np.cumsum(reps)[:-1]])
        sums = xp.add.reduceat(grad, xp.asarray(np.minimum(starts, grad.shape[ctx.dim] - 1)), axis=ctx.dim)
        zero = reps == 0
        if zero.any():
            key = [slice(None)] * grad.ndim
            key[ctx.dim] = xp.asarray(np.flatnonzero(zero))
            sums[tuple(key)] = 0
        return sums

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: RepeatInterleave.apply(v, ctx.repeats, ctx.dim))


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element (or each slice along ``dim``) ``repeats`` times (an int, or one count per
    element); ``repeat_interleave(counts)`` alone gives ``[0]*counts[0] + [1]*counts[1] + ...``.
    Differentiable."""
    if repeats is None:
        counts = ensure_tensor(input).array
        if counts.ndim > 1:
            raise RuntimeError("repeat_interleave(): the repeats tensor must be 0-d or 1-d")
        xp = array_module(counts)
        reps = counts.reshape(-1) if xp is np else devices.to_host(counts).reshape(-1).tolist()
        return _wrap(xp.repeat(xp.arange(counts.size, dtype=np.int64), reps), False, None, 0)
    x = ensure_tensor(input)
    if dim is None:
        x = S.reshape(x, (-1,))
        d = 0
    else:
        d = normalize_dim(dim, x.array.ndim, "repeat_interleave")
        if x.array.ndim == 0:
            x = S.reshape(x, (1,))
    if isinstance(repeats, Tensor):
        # The counts set the output's size: read on the host (CuPy's repeat takes them as a list too).
        r = devices.to_host(repeats.array).astype(np.int64)
        if r.ndim == 0 or r.size == 1:
            r = builtins.int(r.reshape(-1)[0])
        elif r.shape != (x.array.shape[d],):
            raise RuntimeError(f"repeat_interleave(): repeats must have the same size as input along dim, got "
                               f"{r.shape[0]} and {x.array.shape[d]}")
    else:
        r = builtins.int(repeats)
    if builtins.bool((r < 0).any()) if not isinstance(r, builtins.int) else r < 0:
        raise RuntimeError("repeat_interleave(): repeats can not be negative")
    return RepeatInterleave.apply(x, r, d)


def broadcast_shapes(*shapes):
    """The shape that tensors of the given shapes broadcast to."""
    norm = [(s,) if isinstance(s, (builtins.int, np.integer)) else tuple(s) for s in shapes]
    try:
        return np.broadcast_shapes(*norm)
    except ValueError:
        raise RuntimeError(f"broadcast_shapes(): shapes {norm} cannot be broadcast together") from None


def broadcast_tensors(*tensors):
    """The tensors expanded to their common broadcast shape (views); differentiable."""
    ts = [ensure_tensor(t) for t in _seq(tensors)]
    shape = broadcast_shapes(*[t.array.shape for t in ts])
    return tuple(t if t.array.shape == shape else S.broadcast_to(t, shape) for t in ts)


# --------------------------------------------------------------------------- scatter with a reduction
class ScatterReduce(Function):
    def forward(ctx, a, index, src, reduce, include_self, dim):
        xp = array_module(a)
        d = dim
        out = a.copy()
        full = [xp.broadcast_to(xp.arange(n).reshape([-1 if k == i else 1 for k in range(index.ndim)]), index.shape)
                for i, n in enumerate(index.shape)]
        full[d] = index
        pos = tuple(full)
        vals = src[tuple(slice(0, n) for n in index.shape)]
        hit = xp.zeros(a.shape, bool)
        hit[pos] = True
        counts = xp.zeros(a.shape, np.int64)
        xp.add.at(counts, pos, 1)
        if not include_self:
            fill = {"sum": 0, "mean": 0, "prod": 1,
                    "amax": -np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min,
                    "amin": np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).max}[reduce]
            out[hit] = fill
        if reduce in ("sum", "mean"):
            xp.add.at(out, pos, vals)
            if reduce == "mean":
                n = counts + (1 if include_self else 0)
                n = xp.maximum(n, 1)
                if a.dtype.kind == "f":
                    out = xp.where(hit, out / n, out).astype(a.dtype)
                else:
                    out = xp.where(hit, xp.floor_divide(out, n), out).astype(a.dtype)
        elif reduce == "prod":
            xp.multiply.at(out, pos, vals)
        elif reduce == "amax":
            xp.maximum.at(out, pos, vals)
        else:
            xp.minimum.at(out, pos, vals)
        ctx.save_for_backward(a, src, out)
        ctx.pos, ctx.hit, ctx.counts = pos, hit, counts
        ctx.reduce, ctx.include_self = reduce, include_self
        ctx.vshape = index.shape
        return out

    def backward(ctx, grad):
        a, src, out = ctx.saved
        xp = array_module(grad)
        pos, hit, reduce = ctx.pos, ctx.hit, ctx.reduce
        g_src = xp.zeros(src.shape, grad.dtype)
        sub = tuple(slice(0, n) for n in ctx.vshape)
        vals = src[sub]
        if reduce == "sum":
            g_self = grad.copy() if ctx.include_self else xp.where(hit, 0, grad)
            g_src[sub] = grad[pos]
        elif reduce == "mean":
            n = xp.maximum(ctx.counts + (1 if ctx.include_self else 0), 1)
            scaled = grad / n
            g_self = xp.where(hit, scaled if ctx.include_self else 0, grad)
            g_src[sub] = scaled[pos]
        elif reduce == "prod":
            with np.errstate(divide="ignore", invalid="ignore"):
                g_self = xp.where(hit, grad * out / a if ctx.include_self else 0, grad)
                g_src[sub] = (grad * out)[pos] / vals
        else:
            # amax/amin: the gradient is shared evenly among the values equal to the result.
            winners_self = (a == out) & ctx.include_self
            eq_src = vals == out[pos]
            n = winners_self.astype(np.int64)
            xp.add.at(n, pos, eq_src.astype(np.int64))
            n = xp.maximum(n, 1)
            share = grad / n
            g_self = xp.where(hit, xp.where(winners_self, share, 0), grad)
            g_src[sub] = xp.where(eq_src, share[pos], 0)
        return g_self.astype(grad.dtype, copy=False), None, g_src

    def grad_graph(ctx, grad):
        # backward's formulas on tensors: every reduction but prod scales the gradient by constant factors.
        from .elementwise import where
        from .shape import pad

        a, src, out = ctx.saved
        pos, hit, reduce = ctx.pos, ctx.hit, ctx.reduce
        dt = grad.dtype
        sub = tuple(slice(0, n) for n in ctx.vshape)
        key = tuple(Tensor(np.asarray(p)) for p in pos)
        if reduce == "sum":
            g_self = grad if ctx.include_self else grad * Tensor((~hit).astype(dt))
            g_src = grad[key]
        elif reduce == "mean":
            n = np.maximum(ctx.counts + (1 if ctx.include_self else 0), 1)
            scale = Tensor((1 / n).astype(dt))
            g_self = grad * Tensor(np.where(hit, (1 / n) if ctx.include_self else 0, 1).astype(dt))
            g_src = (grad * scale)[key]
        elif reduce == "prod":
            grad_out = grad * ctx.graph_output(out)
            with np.errstate(divide="ignore", invalid="ignore"):
                g_self = where(Tensor(hit), grad_out / ctx.graph_input(0, a) if ctx.include_self else 0.0, grad)
                g_src = grad_out[key] / ctx.graph_input(2, src)[sub]
        else:
            winners_self = (a == out) & ctx.include_self
            eq_src = src[sub] == out[pos]
            n = winners_self.astype(np.int64)
            np.add.at(n, pos, eq_src.astype(np.int64))
            share = 1 / np.maximum(n, 1)
            g_self = grad * Tensor(np.where(hit, np.where(winners_self, share, 0), 1).astype(dt))
            g_src = grad[key] * Tensor(np.where(eq_src, share[pos], 0).astype(dt))
        widths = tuple(w for k in reversed(range(src.ndim)) for w in (0, src.shape[k] - ctx.vshape[k]))
        if any(widths):
            g_src = pad(g_src, widths)
        return g_self, None, g_src


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """``input`` with ``src`` combined into it at ``index`` along ``dim`` by ``reduce`` ('sum', 'prod',
    'mean', 'amax' or 'amin'); ``include_self=False`` leaves the old values of the targets out.
    Differentiable in ``input`` and ``src`` (amax/amin share the gradient among ties)."""
    x, s = ensure_tensor(input), ensure_tensor(src)
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(f"scatter_reduce(): reduce must be one of sum, prod, mean, amax, amin, got {reduce!r}")
    idx = ensure_tensor(index).array
    if idx.dtype != np.int64:
        raise RuntimeError(f"scatter_reduce(): expected an int64 index, got {idx.dtype}")
    d = normalize_dim(dim, builtins.max(x.array.ndim, 1), "scatter_reduce")
    if idx.ndim != x.array.ndim or s.array.ndim != x.array.ndim:
        raise RuntimeError("scatter_reduce(): index, src and input must have the same number of dimensions")
    if s.array.dtype != x.array.dtype:
        raise RuntimeError(f"scatter_reduce(): expected src of dtype {x.array.dtype}, got {s.array.dtype}")
    n = x.array.shape[d]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise RuntimeError(f"scatter_reduce(): index out of range for dimension {d} of size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    return ScatterReduce.apply(x, idx, s, reduce=reduce, include_self=include_self, dim=d)


# --------------------------------------------------------------------------- index_put, put, as_strided
def _index_key(indices):
    return tuple(i if isinstance(i, Tensor) or i is None else ensure_tensor(i) for i in indices)


def index_put(input, indices, values, accumulate=False):
    """A copy of ``input`` with ``values`` written (or added, with ``accumulate``) at ``input[indices]``
    (a tuple of index tensors); differentiable."""
    out = S.clone(ensure_tensor(input))
    return _index_put_(out, indices, values, accumulate)


def _index_put_(self, indices, values, accumulate=False):
    """Write ``values`` at ``self[indices]`` in place (add them, repeats included, with ``accumulate``)."""
    key = _index_key(indices)
    if not accumulate:
        self[key] = values
        return self
    from .index import _inplace

    v = values if isinstance(values, Tensor) else Tensor(np.asarray(values, self.array.dtype))

    def array_op(data):
        k = tuple(t.array if isinstance(t, Tensor) else t for t in key)
        xp = array_module(data)
        xp.add.at(data, k, xp.broadcast_to(v.array, data[k].shape).astype(data.dtype, copy=False))

    def graph_op(old):
        from .index import index_add

        k = tuple(t.array if isinstance(t, Tensor) else t for t in key)
        xp = array_module(old.array)
        pos = xp.ravel_multi_index(tuple(xp.broadcast_arrays(*[xp.asarray(i) % n for i, n in
                                                              zip(k, old.array.shape)])), old.array.shape[:len(k)])
        flat = S.reshape(old, (-1,) + old.array.shape[len(k):])
        vals = S.broadcast_to(v, pos.shape + old.array.shape[len(k):])
        added = index_add(flat, 0, Tensor(pos.reshape(-1).astype(np.int64)),
                          S.reshape(vals, (-1,) + old.array.shape[len(k):]))
        return S.reshape(added, old.array.shape)

    return _inplace(self, "index_put_", array_op, graph_op, v)


def _put_(self, index, source, accumulate=False):
    """Write ``source`` at the flat positions ``index`` in place (add with ``accumulate``)."""
    idx = ensure_tensor(index)
    n = self.array.size
    from .index import _inplace

    src = source if isinstance(source, Tensor) else Tensor(np.asarray(source, self.array.dtype))
    i = idx.array.reshape(-1) % builtins.max(n, 1)

    def array_op(data):
        flat = data.reshape(-1) if data.flags.c_contiguous else None
        if flat is None:
            raise RuntimeError("put_(): needs a contiguous tensor")
        if accumulate:
            array_module(data).add.at(flat, i, src.array.reshape(-1).astype(data.dtype, copy=False))
        else:
            flat[i] = src.array.reshape(-1)

    def graph_op(old):
        from .index import index_add, index_copy

        flat = S.reshape(old, (-1,))
        fn = index_add if accumulate else index_copy
        return S.reshape(fn(flat, 0, Tensor(i.astype(np.int64)), S.reshape(src, (-1,))), old.array.shape)

    return _inplace(self, "put_", array_op, graph_op, src)


def put(input, index, source, accumulate=False):
    """A copy of ``input`` with ``source`` written (or added) at the flat positions ``index``."""
    return _put_(S.clone(ensure_tensor(input)), index, source, accumulate)


class AsStrided(Function):
    is_view = True

    def forward(ctx, a, size, stride, offset):
        xp = array_module(a)
        if not a.flags.c_contiguous:
            raise RuntimeError("as_strided(): somanet supports it on contiguous tensors only")
        item = a.itemsize
        base = a.reshape(-1)[offset:]
        ctx.shape, ctx.args = a.shape, (size, stride, offset)
        return xp.lib.stride_tricks.as_strided(base, size, tuple(s * item for s in stride))

    def backward(ctx, grad):
        xp = array_module(grad)
        size, stride, offset = ctx.args
        out = xp.zeros(int(np.prod(ctx.shape)), grad.dtype)
        pos = np.full(size, offset, dtype=np.int64)
        for d, (n, s) in enumerate(zip(size, stride)):
            pos = pos + (np.arange(n) * s).reshape([-1 if k == d else 1 for k in range(len(size))])
        xp.add.at(out, xp.asarray(pos.reshape(-1)), grad.reshape(-1))
        return out.reshape(ctx.shape)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: AsStrided.apply(v.contiguous(), *ctx.args))


def as_strided(input, size, stride, storage_offset=0):
    """A view of a contiguous tensor's elements with the given ``size`` and ``stride`` (in elements)
    starting at ``storage_offset``; differentiable (overlapping elements add their gradients)."""
    x = ensure_tensor(input)
    size = tuple(builtins.int(s) for s in size)
    stride = tuple(builtins.int(s) for s in stride)
    if len(size) != len(stride):
        raise RuntimeError(f"as_strided(): size {size} and stride {stride} must have the same length")
    last = builtins.int(storage_offset) + builtins.sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if builtins.min(size, default=1) > 0 and last >= x.array.size:
        raise RuntimeError(f"as_strided(): size {size} and stride {stride} reach past the {x.array.size} elements")
    return AsStrided.apply(x, size, stride, builtins.int(storage_offset))


class Unfold(Function):
    """``Tensor.unfold``: sliding windows of ``size`` elements every ``step`` along ``dim``, as a new last dim."""

    is_view = True

    def forward(ctx, a, dim, size, step):
        xp = array_module(a)
        # Writable where the input is, so that writes into the windows reach it, as in PyTorch.
        win = xp.lib.stride_tricks.sliding_window_view(a, size, axis=dim, writeable=a.flags.writeable)
        key = [slice(None)] * win.ndim
        key[dim] = slice(None, None, step)
        ctx.shape, ctx.args = a.shape, (dim, size, step)
        return win[tuple(key)]

    def backward(ctx, grad):
        xp = array_module(grad)
        dim, size, step = ctx.args
        out = xp.zeros(ctx.shape, grad.dtype)
        n = grad.shape[dim]
        # Windows overlap when step < size: add them one offset within the window at a time.
        for j in range(size):
            dst = [slice(None)] * out.ndim
            dst[dim] = slice(j, j + (n - 1) * step + 1, step)
            out[tuple(dst)] += grad[..., j]
        return out

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Unfold.apply(v, *ctx.args))


def _unfold_method(self, dimension, size, step):
    """Sliding windows of ``size`` elements every ``step`` along ``dimension``, as a new last dim (a view);
    differentiable."""
    nd = builtins.max(self.array.ndim, 1)
    x = self if self.array.ndim else S.reshape(self, (1,))
    d = normalize_dim(dimension, nd, "unfold")
    n = x.array.shape[d]
    if size > n:
        raise RuntimeError(f"unfold(): maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"unfold(): step is {step} but must be > 0")
    return Unfold.apply(x, d, builtins.int(size), builtins.int(step))


def _as_strided_method(self, size, stride, storage_offset=0):
    return as_strided(self, size, stride, storage_offset)


def _scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
    """In-place ``scatter_reduce``."""
    from .index import _inplace

    def array_op(data):
        data[...] = scatter_reduce(_wrap(data.copy(), False, None, 0), dim, index, src, reduce,
                                   include_self=include_self).array

    return _inplace(self, "scatter_reduce_", array_op,
                    lambda old: scatter_reduce(old, dim, index, src, reduce, include_self=include_self), src)


def _select_method(self, dim, index):
    return select(self, dim, index)


install(
    tensor_split=tensor_split, hsplit=hsplit, vsplit=vsplit, dsplit=dsplit, rot90=rot90, select=_select_method,
    take=take, repeat_interleave=repeat_interleave, scatter_reduce=scatter_reduce,
    scatter_reduce_=_scatter_reduce_, index_put=index_put, index_put_=_index_put_, put_=_put_, put=put,
    as_strided=_as_strided_method, unfold=_unfold_method,
)
