"""Indexing ops: ``x[key]`` and ``x[key] = value``, gather and scatter, masks, triangles, sorting and
selection, and the in-place methods (``add_``, ``mul_``, ``fill_``, ``copy_``, ...).

Every gradient that scatters values back (indexing with arrays, ``index_select``, ``gather``) adds
rather than assigns, so repeated indices accumulate as they do in PyTorch. Every in-place method goes
through ``_inplace``, the one place that holds PyTorch's rules for in-place ops under autograd.
"""
import builtins
import collections
import math

import numpy as np

from .. import devices
from ..autograd import grad_mode
from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from . import elementwise
from ._util import as_operand, ensure_tensor, install, int_result, nonzero, normalize_dim, select
from .shape import Expand, Slice, _reshape, clone, to_dtype, unbind

__all__ = [
    "index_select", "index_add", "index_copy", "index_fill", "gather", "scatter", "scatter_add", "masked_fill", "masked_select", "take_along_dim",
    "one_hot", "tril", "triu", "outer", "ger", "nonzero", "argwhere", "topk", "sort", "argsort", "unique",
]


# --------------------------------------------------------------------------- shared helpers
def _is_array(k):
    """Whether ``k`` is an array of any array library (NumPy's scalars count as numbers, as in indexing)."""
    return hasattr(k, "__array_namespace__") and not isinstance(k, np.generic)


def _index_array(index, op, name="index", like=None):
    """The integer array behind an index argument (a tensor, array or list), with a clear dtype error. An
    array or list (not a tensor) is made on the device of the array ``like``, as a list always was."""
    arr = index.array if isinstance(index, Tensor) else array_module(index if like is None else like).asarray(index)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): {name} must be an integer tensor (int64), got dtype {arr.dtype}")
    return arr


def _check_bounds(idx, n, op, dim, allow_negative=False):
    if idx.size:
        lo, hi = builtins.int(idx.min()), builtins.int(idx.max())
        if hi >= n or lo < (-n if allow_negative else 0):
            bad = hi if hi >= n else lo
            raise IndexError(f"{op}(): index {bad} is out of bounds for dimension {dim} with size {n}")


def _index_add_rows(out, rows, values):
    """``out[rows[i]] += values[i]`` for every i, adding up repeated rows (in place on ``out``).

    ``rows`` is 1-d; ``values`` has shape ``(len(rows),) + out.shape[1:]``.
    """
    if rows.size == 0:
        return out
    xp = array_module(out)
    if out.ndim == 1:
        if out.dtype.kind == "f" and rows.size * 16 >= out.size:
            # bincount sums in float64 and is the fastest scatter-add for one index per element.
            out += xp.bincount(rows, weights=values, minlength=out.size).astype(out.dtype, copy=False)
        else:
            xp.add.at(out, rows, values)
        return out
    # Rows of several elements: sort once, sum runs of equal rows with reduceat, then add each row once.
    order = xp.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = xp.flatnonzero(xp.concatenate([[True], ordered[1:] != ordered[:-1]]))
    out[ordered[starts]] += xp.add.reduceat(values[order], starts, axis=0)
    return out


def _index_add_axis(shape, axis, idx, grad):
    """Zeros of ``shape`` with ``grad`` added at positions ``idx`` along ``axis`` (index_select's backward)."""
    xp = array_module(grad)
    moved = xp.moveaxis(grad, axis, 0)
    out = xp.zeros((shape[axis],) + moved.shape[1:], dtype=grad.dtype)
    _index_add_rows(out, idx.reshape(-1), moved.reshape((idx.size,) + moved.shape[1:]))
    return xp.moveaxis(out, 0, axis)


def _flat_positions(shape, dim, index):
    """Flat (C-order) positions in an array of ``shape`` that gather/scatter's ``index`` along ``dim`` names:
    element ``p`` of ``index`` points at ``p`` with ``p[dim]`` replaced by ``index[p]``."""
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    grids = array_module(index).indices(index.shape, sparse=True)
    flat = index.astype(np.intp) * strides[dim]
    for d, g in enumerate(grids):
        if d != dim:
            flat = flat + g * strides[d]
    return flat


def _prefix(arr, shape):
    """The leading ``shape`` block of ``arr`` (gather/scatter may use an index smaller than the tensor)."""
    if arr.shape == tuple(shape):
        return arr
    return arr[tuple(slice(0, n) for n in shape)]


# --------------------------------------------------------------------------- x[key]
def _convert_key(key, data):
    """Turn an index into array terms (tensors to arrays, lists to arrays in ``data``'s array library); say
    if it is advanced."""
    if isinstance(key, list) and len(key) < 32 and builtins.any(
            isinstance(e, (Tensor, list, tuple, range, slice)) or e is None or e is Ellipsis for e in key):
        key = tuple(key)  # PyTorch reads x[[rows, cols]] (a short list holding sequences or slices) as x[rows, cols]
    items = key if isinstance(key, tuple) else (key,)
    out = []
    advanced = False
    for k in items:
        if isinstance(k, Tensor):
            k = k.array
        elif isinstance(k, (list, range)):
            k = array_module(data).asarray([e.array if isinstance(e, Tensor) else e for e in k])
            if k.size == 0:
                k = k.astype(np.intp)
        if _is_array(k):
            if k.dtype.kind not in "biu":
                raise IndexError(f"__getitem__: tensors used as indices must be integer or bool, got dtype {k.dtype}")
            if type(k) is not type(data) and type(data) is not np.ndarray:
                # As PyTorch, a host index (tensor or NumPy array) may index a device tensor: copy it there.
                k = devices.move(k, devices.of_array(data))
            advanced = True
        elif isinstance(k, (bool, np.bool_)):
            advanced = True
        elif not (k is None or k is Ellipsis or isinstance(k, (slice, builtins.int, np.integer))):
            raise IndexError(f"__getitem__: unsupported index of type {type(k).__name__}; expected an int, slice, "
                             f"None, Ellipsis, an integer or bool tensor, or a list of ints")
        out.append(k)
    return tuple(out), advanced


def _is_int(k):
    return isinstance(k, (builtins.int, np.integer)) and not isinstance(k, (builtins.bool, np.bool_))


def _steps(key, advanced):
    """The index as a list of keys applied one after the other.

    PyTorch applies integer indices first and the arrays after, while NumPy treats an integer next to
    arrays as one more advanced index, which moves dimensions differently (``x[1, :, idx]``). Splitting
    off the integers (a view) keeps PyTorch's result.
    """
    if not advanced or not any(_is_int(k) for k in key) or any(isinstance(k, (builtins.bool, np.bool_)) for k in key):
        return [key]
    first = tuple(slice(None) if _is_array(k) else k for k in key)
    second = tuple(k if _is_array(k) or k is Ellipsis else slice(None) for k in key if not _is_int(k))
    return [first, second]


def _index_backward(shape, key, grad):
    """Zeros of ``shape`` with ``grad`` added at the positions ``key`` selected (repeats accumulate)."""
    xp = array_module(grad)
    # A bool mask is the tuple of its nonzero() index arrays, which is what NumPy does with it too.
    parts = []
    for k in key:
        if _is_array(k) and k.dtype == np.bool_ and k.ndim:
            parts.extend(k.nonzero())
        else:
            parts.append(k)
    n = 0
    while n < len(parts) and (_is_array(parts[n]) and parts[n].dtype.kind in "iu"
                              or isinstance(parts[n], (builtins.int, np.integer)) and not isinstance(parts[n], bool)):
        n += 1
    rest = parts[n:]
    if n and n <= len(shape) and all(k is Ellipsis or (isinstance(k, slice) and k == slice(None)) for k in rest):
        # Leading integer arrays over whole trailing dims (x[idx], x[mask], x[rows, cols]): one flat row
        # index per selected element, then a fast scatter-add of rows.
        lead = shape[:n]
        arrays = xp.broadcast_arrays(*[xp.asarray(k) for k in parts[:n]])
        out = xp.zeros((math.prod(lead),) + shape[n:], dtype=grad.dtype)
        if arrays[0].size:
            flat = xp.ravel_multi_index(tuple(a % s for a, s in zip(arrays, lead)), lead).reshape(-1)
            _index_add_rows(out, flat, grad.reshape((flat.size,) + shape[n:]))
        return out.reshape(shape)
    out = xp.zeros(shape, dtype=grad.dtype)
    xp.add.at(out, tuple(parts), grad)
    return out


class AdvancedIndex(Function):
    """Indexing with integer arrays or masks (NumPy's advanced indexing): the result is a copy."""

    def forward(ctx, a, key):
        ctx.key = key
        ctx.shape = a.shape
        return a[key]

    def backward(ctx, grad):
        return _index_backward(ctx.shape, ctx.key, grad)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: AdvancedIndex.apply(v, key=ctx.key))


def _getitem(self, key):
    """``x[key]``: ints, slices (any step), None, Ellipsis, integer tensors/arrays/lists (broadcast together,
    mixed with slices) and bool masks, with NumPy's (= PyTorch's) rules. Basic indexing gives a view."""
    k, advanced = _convert_key(key, self.array)
    try:
        if not advanced:
            return Slice.apply(self, k)
        steps = _steps(k, advanced)
        x = Slice.apply(self, steps[0]) if len(steps) == 2 else self
        return AdvancedIndex.apply(x, key=steps[-1])
    except IndexError as exc:
        raise IndexError(f"__getitem__: {exc} (tensor of shape {tuple(self.array.shape)})") from None


def _iter(self):
    """Iterate over dimension 0: one view per row, each linked to ``self`` in the graph."""
    if self.array.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return iter(unbind(self, 0))


# --------------------------------------------------------------------------- in-place ops
def _inplace(self, op, array_op, graph_op, other=None):
    """Apply the in-place op ``op`` to ``self`` with PyTorch's autograd rules; returns ``self``.

    ``array_op(data)`` changes ``self.array`` itself with NumPy; ``graph_op(old)`` computes the same op out
    of place, differentiably, from a tensor standing for ``self`` before the change.

    * A leaf that requires grad cannot change while grad mode is on (its gradient would lose its meaning).
    * Without a graph to record, the array changes in place and the version counter moves on, so every
      graph node that saved this array refuses to run backward with the new values.
    * With a graph to record, the op runs out of place and ``self`` takes over the result's data and
      node; the version counter still moves on, for the same reason.
    """
    recording = grad_mode._state.enabled
    if recording and self.requires_grad and self.grad_fn is None:
        raise RuntimeError(f"a leaf tensor that requires grad is being used in an in-place operation ({op}); "
                           f"wrap it in somanet.no_grad() or clone() it first")
    if not recording or not (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)):
        data = self.array
        if not data.flags.writeable:
            raise RuntimeError(f"{op}(): this tensor's memory is read-only (for example an expand()ed view, where "
                               f"several elements share one memory location); clone() it before changing it")
        try:
            array_op(data)
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"{op}(): cannot apply the in-place op to a tensor of shape {tuple(data.shape)} and "
                               f"dtype {data.dtype}: {exc}") from None
        self._version[0] += 1
        return self
    node = self.grad_fn
    if node is not None and type(node).is_view:
        raise RuntimeError(
            f"{op}(): in-place operation on a view ({node.name} output) of a tensor that requires grad is not "
            f"supported while recording gradients, because the change would not reach the base tensor; use the "
            f"out-of-place op, or clone() the view first"
        )
    old = _wrap(self.array, self.requires_grad, node, self._out_index)
    result = graph_op(old)
    if result.array.dtype != self.array.dtype:
        result = to_dtype(result, self.array.dtype)
    if result.array.shape != self.array.shape:
        raise RuntimeError(f"{op}(): output with shape {tuple(self.array.shape)} doesn't match the broadcast shape "
                           f"{tuple(result.array.shape)}")
    self._version[0] += 1
    new_node = result.grad_fn
    if new_node is not None and new_node.version_checks:
        # The node may have saved its output, which from now on is this tensor's data.
        new_node.version_checks = [(self._version, self._version[0]) if c is result._version else (c, v)
                                   for c, v in new_node.version_checks]
    self.array = result.array
    self.grad_fn = new_node
    self._out_index = result._out_index
    self.requires_grad = result.requires_grad
    return self


def _raw(x):
    return x.array if isinstance(x, Tensor) else x


def _add_(self, other, alpha=1):
    """In place ``self += alpha * other`` (other broadcasts to self's shape; self keeps its dtype)."""
    o = as_operand(other)

    def array_op(data):
        v = _raw(o)
        array_module(data).add(data, v if alpha == 1 else v * alpha, out=data)

    return _inplace(self, "add_", array_op, lambda old: elementwise.add(old, o, alpha=alpha), o)


def _sub_(self, other, alpha=1):
    """In place ``self -= alpha * other``."""
    o = as_operand(other)

    def array_op(data):
        v = _raw(o)
        array_module(data).subtract(data, v if alpha == 1 else v * alpha, out=data)

    return _inplace(self, "sub_", array_op, lambda old: elementwise.sub(old, o, alpha=alpha), o)


def _mul_(self, other):
    """In place ``self *= other``."""
    o = as_operand(other)
    return _inplace(self, "mul_", lambda data: array_module(data).multiply(data, _raw(o), out=data),
                    lambda old: elementwise.mul(old, o), o)


def _div_(self, other, rounding_mode=None):
    """In place ``self /= other`` (true division; ``rounding_mode`` 'floor' or 'trunc' as in ``div``)."""
    o = as_operand(other)

    def array_op(data):
        xp = array_module(data)
        if rounding_mode is None:
            xp.true_divide(data, _raw(o), out=data)
        else:
            res = elementwise.div(_wrap(data, False, None, 0), o, rounding_mode=rounding_mode)
            xp.copyto(data, res.array, casting="same_kind")

    return _inplace(self, "div_", array_op, lambda old: elementwise.div(old, o, rounding_mode=rounding_mode), o)


def _clamp_(self, min=None, max=None):  # noqa: A002
    """In place limit of the values to ``[min, max]`` (either bound may be None, not both)."""
    if min is None and max is None:
        raise RuntimeError("clamp_(): at least one of 'min' or 'max' must not be None")
    lo, hi = as_operand(min) if min is not None else None, as_operand(max) if max is not None else None
    grad_bound = next((b for b in (lo, hi) if isinstance(b, Tensor) and b.requires_grad), None)
    return _inplace(self, "clamp_", lambda data: array_module(data).clip(data, _raw(lo), _raw(hi), out=data),
                    lambda old: elementwise.clamp(old, lo, hi), grad_bound)


class Fill(Function):
    """Every element set to ``value`` (a scalar or a 0-d array); the old values get a zero gradient."""

    def forward(ctx, a, value):
        xp = array_module(a)
        return xp.full(a.shape, value, dtype=a.dtype)

    def backward(ctx, grad):
        xp = array_module(grad)
        return xp.zeros_like(grad), grad

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vv: vv)


def _fill_value(value, op):
    if isinstance(value, Tensor):
        if value.array.ndim:
            raise RuntimeError(f"{op}(): only supports a 0-dimensional value tensor, got shape "
                               f"{tuple(value.array.shape)}")
        return value
    return as_operand(value)


def _fill_(self, value):
    """Set every element to ``value`` in place (a number or a 0-d tensor)."""
    v = _fill_value(value, "fill_")
    return _inplace(self, "fill_", lambda data: data.fill(_raw(v)), lambda old: Fill.apply(old, v), v)


def _zero_(self):
    """Set every element to zero in place."""
    return _inplace(self, "zero_", lambda data: data.fill(0), lambda old: Fill.apply(old, 0))


class CopyFrom(Function):
    """``src`` broadcast into the shape and dtype of ``a``; the old values get a zero gradient."""

    def forward(ctx, a, src):
        xp = array_module(a)
        out = xp.empty_like(a)
        out[...] = src
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        return xp.zeros_like(grad), grad

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vs: vs)


def _copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast to self's shape, cast to self's dtype) into ``self``."""
    s = as_operand(src)
    return _inplace(self, "copy_", lambda data: array_module(data).copyto(data, _raw(s), casting="unsafe"),
                    lambda old: CopyFrom.apply(old, s), s)


def _mask_array(mask, op, like=None):
    m = mask.array if isinstance(mask, Tensor) else array_module(mask if like is None else like).asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"{op}(): only boolean masks are supported, got a mask with dtype {m.dtype}")
    return m


def _masked_fill_(self, mask, value):
    """Set the elements where ``mask`` (bool, broadcast to self's shape) is True to ``value``, in place."""
    m = _mask_array(mask, "masked_fill_", self.array)
    v = _fill_value(value, "masked_fill_")
    return _inplace(self, "masked_fill_",
                    lambda data: array_module(data).copyto(data, _raw(v), casting="unsafe", where=m),
                    lambda old: masked_fill(old, m, v), v)


def _target(data, steps):
    """The view of ``data`` that the last indexing step writes into (earlier steps are basic indexing)."""
    for k in steps[:-1]:
        data = data[k]
    return data


class SetItem(Function):
    """``a`` with ``a[key] = value`` applied, as a new array (the graph form of ``__setitem__``)."""

    def forward(ctx, a, value, steps):
        out = a.copy(order="C")
        _target(out, steps)[steps[-1]] = value
        ctx.steps = steps
        ctx.value_ndim = getattr(value, "ndim", 0)
        return out

    def backward(ctx, grad):
        steps = ctx.steps
        ga = grad.copy()
        _target(ga, steps)[steps[-1]] = 0
        gv = _target(grad, steps)[steps[-1]]
        if gv.ndim < ctx.value_ndim:
            # NumPy lets the value carry extra leading 1-dims; give them back before the engine sums.
            gv = gv.reshape((1,) * (ctx.value_ndim - gv.ndim) + gv.shape)
        return ga, gv

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vv: SetItem.apply(va, vv, steps=ctx.steps))


def _setitem(self, key, value):
    """``x[key] = value`` in place (same keys as ``x[key]``); value broadcasts and is cast to x's dtype."""
    k, advanced = _convert_key(key, self.array)
    steps = _steps(k, advanced)
    v = as_operand(value)

    def array_op(data):
        _target(data, steps)[steps[-1]] = _raw(v)

    try:
        _inplace(self, "__setitem__", array_op, lambda old: SetItem.apply(old, v, steps=steps), v)
    except IndexError as exc:
        raise IndexError(f"__setitem__: {exc} (tensor of shape {tuple(self.array.shape)})") from None


# --------------------------------------------------------------------------- index_select, gather, scatter
class IndexSelect(Function):
    def forward(ctx, a, dim, index):
        xp = array_module(a)
        ctx.dim, ctx.index, ctx.shape = dim, index, a.shape
        return xp.take(a, index, axis=dim)

    def backward(ctx, grad):
        return _index_add_axis(ctx.shape, ctx.dim, ctx.index, grad)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: IndexSelect.apply(v, ctx.dim, ctx.index))


def index_select(input, dim, index):
    """The entries of ``input`` at positions ``index`` (a 1-d integer tensor) along ``dim``; repeats allowed.

    ``(N, C) -> index_select(x, 0, idx) -> (len(idx), C)``.
    """
    x = ensure_tensor(input)
    idx = _index_array(index, "index_select", like=x.array)
    if idx.ndim > 1:
        raise RuntimeError(f"index_select(): index must be a 1-d tensor, got shape {tuple(idx.shape)}")
    if x.array.ndim == 0:
        normalize_dim(dim, 0, "index_select")
        if idx.size != 1:
            raise RuntimeError(f"index_select(): indexing a 0-d tensor takes exactly one index, got {idx.size}")
        _check_bounds(idx, 1, "index_select", 0)
        return clone(x)
    d = normalize_dim(dim, x.array.ndim, "index_select")
    _check_bounds(idx, x.array.shape[d], "index_select", d)
    return IndexSelect.apply(x, d, idx.reshape(-1))


class IndexAdd(Function):
    """``input`` with ``alpha * source`` added at positions ``index`` along ``dim``; repeats add up."""

    def forward(ctx, a, source, dim, index, alpha):
        xp = array_module(a)
        ctx.dim, ctx.index, ctx.alpha = dim, index, alpha
        added = _index_add_axis(a.shape, dim, index, source if alpha == 1 else source * alpha)
        return xp.add(a, added.astype(a.dtype, copy=False))

    def backward(ctx, grad):
        xp = array_module(grad)
        g_source = xp.take(grad, ctx.index, axis=ctx.dim) if ctx.needs(1) else None
        if g_source is not None and ctx.alpha != 1:
            g_source = g_source * ctx.alpha
        return grad, g_source

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vs: va if vs is None else IndexAdd.apply(
            va, vs, ctx.dim, ctx.index, ctx.alpha))


class IndexCopy(Function):
    """``input`` with the slices at positions ``index`` along ``dim`` replaced by ``source``'s."""

    def forward(ctx, a, source, dim, index):
        out = a.copy()
        moved = array_module(a).moveaxis(out, dim, 0)
        moved[index] = array_module(a).moveaxis(source, dim, 0)
        ctx.dim, ctx.index = dim, index
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        g_input = grad.copy()
        xp.moveaxis(g_input, ctx.dim, 0)[ctx.index] = 0
        return g_input, xp.take(grad, ctx.index, axis=ctx.dim)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vs: IndexCopy.apply(va, vs, ctx.dim, ctx.index))


class IndexFill(Function):
    """``input`` with the slices at positions ``index`` along ``dim`` set to ``value`` (a 0-d array or number)."""

    def forward(ctx, a, value, dim, index):
        out = a.copy()
        array_module(a).moveaxis(out, dim, 0)[index] = value
        ctx.dim, ctx.index = dim, index
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        g_input = grad.copy()
        xp.moveaxis(g_input, ctx.dim, 0)[ctx.index] = 0
        g_value = xp.moveaxis(grad, ctx.dim, 0)[xp.unique(ctx.index)].sum() if ctx.needs(1) else None
        return g_input, g_value

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vv: IndexFill.apply(va, 0 if vv is None else vv, ctx.dim,
                                                                        ctx.index))


def _index_args(input, dim, index, op):
    x = ensure_tensor(input)
    idx = _index_array(index, op, like=x.array)
    if idx.ndim > 1:
        raise RuntimeError(f"{op}(): index must be a 1-d tensor, got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    if x.array.ndim == 0:
        raise RuntimeError(f"{op}(): needs a tensor with at least one dimension, got a 0-d tensor")
    d = normalize_dim(dim, x.array.ndim, op)
    _check_bounds(idx, x.array.shape[d], op, d)
    return x, d, idx


def _check_source(x, src, d, idx, op):
    expected = x.array.shape[:d] + (idx.size,) + x.array.shape[d + 1:]
    if tuple(src.array.shape) != expected:
        raise RuntimeError(f"{op}(): source has shape {tuple(src.array.shape)}, expected {expected} (the input's "
                           f"shape with dimension {d} the length of index)")


def index_add(input, dim, index, source, *, alpha=1):
    """``input`` with ``alpha * source`` added at positions ``index`` along ``dim`` (repeats accumulate).

    ``source`` has ``input``'s shape except ``len(index)`` in dimension ``dim``.
    """
    x, d, idx = _index_args(input, dim, index, "index_add")
    src = ensure_tensor(source, "index_add")
    _check_source(x, src, d, idx, "index_add")
    return IndexAdd.apply(x, src, d, idx, alpha)


def index_copy(input, dim, index, source):
    """``input`` with the slices at ``index`` along ``dim`` replaced by the slices of ``source``."""
    x, d, idx = _index_args(input, dim, index, "index_copy")
    src = ensure_tensor(source, "index_copy")
    _check_source(x, src, d, idx, "index_copy")
    return IndexCopy.apply(x, src, d, idx)


def index_fill(input, dim, index, value):
    """``input`` with the slices at ``index`` along ``dim`` set to ``value`` (a number or 0-d tensor)."""
    x, d, idx = _index_args(input, dim, index, "index_fill")
    return IndexFill.apply(x, _fill_value(value, "index_fill"), d, idx)


class Gather(Function):
    def forward(ctx, a, dim, index):
        xp = array_module(a)
        ctx.dim, ctx.index, ctx.shape = dim, index, a.shape
        src = _prefix(a, tuple(n if d != dim else a.shape[d] for d, n in enumerate(index.shape)))
        return xp.take_along_axis(src, index, axis=dim)

    def backward(ctx, grad):
        xp = array_module(grad)
        out = xp.zeros(math.prod(ctx.shape), dtype=grad.dtype)
        _index_add_rows(out, _flat_positions(ctx.shape, ctx.dim, ctx.index).reshape(-1), grad.reshape(-1))
        return out.reshape(ctx.shape)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Gather.apply(v, ctx.dim, ctx.index))


def _check_gather_shapes(x_shape, idx, d, op, other=None, other_name="src"):
    if idx.ndim != len(x_shape):
        raise RuntimeError(f"{op}(): index must have the same number of dimensions as input: index has shape "
                           f"{tuple(idx.shape)}, input has shape {tuple(x_shape)}")
    for i, n in enumerate(idx.shape):
        if i != d and n > x_shape[i]:
            raise RuntimeError(f"{op}(): index has shape {tuple(idx.shape)}, larger than input shape "
                               f"{tuple(x_shape)} in dimension {i} (only dimension {d} may differ)")
        if other is not None and n > other[i]:
            raise RuntimeError(f"{op}(): index has shape {tuple(idx.shape)}, larger than {other_name} shape "
                               f"{tuple(other)} in dimension {i}")
    _check_bounds(idx, x_shape[d], op, d)


def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim=0`` (and likewise for other dims).

    ``index`` has input's number of dimensions and is no larger than input outside ``dim``; the result
    has index's shape. Repeated indices add up in the gradient.
    """
    x = ensure_tensor(input)
    idx = _index_array(index, "gather", like=x.array)
    if x.array.ndim == 0:
        normalize_dim(dim, 0, "gather")
        _check_bounds(idx, 1, "gather", 0)
        return _reshape(Gather.apply(_reshape(x, (1,)), 0, idx.reshape(-1)), idx.shape)
    d = normalize_dim(dim, x.array.ndim, "gather")
    _check_gather_shapes(x.array.shape, idx, d, "gather")
    return Gather.apply(x, d, idx)


class Scatter(Function):
    def forward(ctx, a, src, dim, index):
        out = a.copy(order="C")
        flat = _flat_positions(a.shape, dim, index).reshape(-1)
        ctx.flat, ctx.index_shape = flat, index.shape
        ctx.src_shape = src.shape if getattr(src, "ndim", 0) else None
        out.reshape(-1)[flat] = _prefix(src, index.shape).reshape(-1) if ctx.src_shape is not None else src
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        ga = grad.copy(order="C")
        ga.reshape(-1)[ctx.flat] = 0
        if ctx.src_shape is None:
            return ga, None
        gs = xp.zeros(ctx.src_shape, dtype=grad.dtype)
        gs[tuple(slice(0, n) for n in ctx.index_shape)] = grad.reshape(-1)[ctx.flat].reshape(ctx.index_shape)
        return ga, gs

    def grad_graph(ctx, grad):
        def forward(va, vs):
            flat = _reshape(va, (va.array.size,))
            value = 0 if vs is None else _reshape(vs[tuple(slice(0, n) for n in ctx.index_shape)], (ctx.flat.size,))
            return _reshape(SetItem.apply(flat, value, steps=(ctx.flat,)), va.shape)

        return ctx.graph_linear((grad,), forward)


class ScatterAdd(Function):
    def forward(ctx, a, src, dim, index):
        out = a.copy(order="C")
        flat = _flat_positions(a.shape, dim, index).reshape(-1)
        ctx.flat, ctx.index_shape, ctx.src_shape = flat, index.shape, src.shape
        _index_add_rows(out.reshape(-1), flat, _prefix(src, index.shape).reshape(-1))
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        gs = xp.zeros(ctx.src_shape, dtype=grad.dtype)
        gs[tuple(slice(0, n) for n in ctx.index_shape)] = grad.reshape(-1)[ctx.flat].reshape(ctx.index_shape)
        return grad, gs

    def grad_graph(ctx, grad):
        def forward(va, vs):
            flat = _reshape(va, (va.array.size,))
            value = _reshape(vs[tuple(slice(0, n) for n in ctx.index_shape)], (ctx.flat.size,))
            return _reshape(IndexAdd.apply(flat, value, 0, ctx.flat, 1), va.shape)

        return ctx.graph_linear((grad,), forward)


def _scatter_args(input, dim, index, src, op):
    x = ensure_tensor(input)
    idx = _index_array(index, op, like=x.array)
    if x.array.ndim == 0:
        raise RuntimeError(f"{op}(): input must have at least one dimension")
    d = normalize_dim(dim, x.array.ndim, op)
    if isinstance(src, Tensor) or isinstance(src, (np.ndarray, list)):
        s = ensure_tensor(src, op)
        if s.array.dtype != x.array.dtype:
            raise RuntimeError(f"{op}(): expected src to have the same dtype as input ({x.array.dtype}), got "
                               f"{s.array.dtype}")
        if s.array.ndim != idx.ndim:
            raise RuntimeError(f"{op}(): src must have the same number of dimensions as index: src has shape "
                               f"{tuple(s.array.shape)}, index has shape {tuple(idx.shape)}")
        _check_gather_shapes(x.array.shape, idx, d, op, s.array.shape)
        return x, s, d, idx
    _check_gather_shapes(x.array.shape, idx, d, op)
    return x, as_operand(src), d, idx


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """A copy of ``input`` with ``out[index[i][j]][j] = src[i][j]`` for ``dim=0`` (likewise for other dims).

    ``src`` is a tensor (at least index's shape) or a number (also accepted as ``value=``). Where indices
    repeat, which write wins is unspecified, as in PyTorch. Differentiable w.r.t. input and src.
    """
    if reduce is not None:
        if reduce == "add":
            return scatter_add(input, dim, index, src)
        raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported; use scatter_add for 'add'")
    if src is None:
        if value is None:
            raise TypeError("scatter(): expected src (a tensor) or value (a number)")
        src = value
    x, s, d, idx = _scatter_args(input, dim, index, src, "scatter")
    return Scatter.apply(x, s, d, idx)


def scatter_add(input, dim, index, src):
    """A copy of ``input`` with ``out[index[i][j]][j] += src[i][j]`` for ``dim=0``; repeats add up."""
    x, s, d, idx = _scatter_args(input, dim, index, src, "scatter_add")
    if not isinstance(s, Tensor):
        raise TypeError(f"scatter_add(): src must be a tensor, got {type(src).__name__}")
    return ScatterAdd.apply(x, s, d, idx)


def _scatter_(self, dim, index, src=None, value=None, *, reduce=None):
    """In-place ``scatter``."""
    s = src if src is not None else value
    return _inplace(self, "scatter_",
                    lambda data: array_module(data).copyto(data, scatter(_wrap(data, False, None, 0), dim, index,
                                                                         _raw_keep(s), reduce=reduce).array),
                    lambda old: scatter(old, dim, index, s, reduce=reduce), s)


def _scatter_add_(self, dim, index, src):
    """In-place ``scatter_add``."""
    return _inplace(self, "scatter_add_",
                    lambda data: array_module(data).copyto(data, scatter_add(_wrap(data, False, None, 0), dim,
                                                                             index, _raw_keep(src)).array),
                    lambda old: scatter_add(old, dim, index, src), src)


def _raw_keep(x):
    # A detached stand-in for a tensor operand, so the array path records nothing.
    return _wrap(x.array, False, None, 0) if isinstance(x, Tensor) else x


# --------------------------------------------------------------------------- masks
class MaskedFill(Function):
    def forward(ctx, a, value, mask):
        xp = array_module(a)
        ctx.mask = mask
        return select(mask, xp.asarray(value).astype(a.dtype), a)

    def backward(ctx, grad):
        return select(ctx.mask, 0, grad), select(ctx.mask, grad, 0)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda va, vv: MaskedFill.apply(va, 0 if vv is None else vv, mask=ctx.mask))


def masked_fill(input, mask, value):
    """``input`` with ``value`` (a number or a 0-d tensor) where the bool ``mask`` is True; mask broadcasts.

    Typical use: ``scores.masked_fill(~causal, float('-inf'))`` on ``(N, H, T, T)`` attention scores.
    """
    x = ensure_tensor(input)
    m = _mask_array(mask, "masked_fill", x.array)
    v = _fill_value(value, "masked_fill")
    try:
        np.broadcast_shapes(x.array.shape, m.shape)
    except ValueError:
        raise RuntimeError(f"masked_fill(): mask of shape {tuple(m.shape)} does not broadcast with input of shape "
                           f"{tuple(x.array.shape)}") from None
    return MaskedFill.apply(x, v, mask=m)


class MaskedSelect(Function):
    def forward(ctx, a, mask):
        xp = array_module(a)
        shape = np.broadcast_shapes(a.shape, mask.shape)
        ctx.mask = xp.broadcast_to(mask, shape)
        ctx.shape = shape
        return xp.broadcast_to(a, shape)[ctx.mask]

    def backward(ctx, grad):
        xp = array_module(grad)
        g = xp.zeros(ctx.shape, dtype=grad.dtype)
        g[ctx.mask] = grad
        return g

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: MaskedSelect.apply(v, mask=ctx.mask))


def masked_select(input, mask):
    """The 1-d tensor of ``input``'s elements where the bool ``mask`` is True (both broadcast)."""
    x = ensure_tensor(input)
    m = _mask_array(mask, "masked_select", x.array)
    try:
        np.broadcast_shapes(x.array.shape, m.shape)
    except ValueError:
        raise RuntimeError(f"masked_select(): mask of shape {tuple(m.shape)} does not broadcast with input of "
                           f"shape {tuple(x.array.shape)}") from None
    return MaskedSelect.apply(x, mask=m)


def take_along_dim(input, indices, dim=None):
    """Pick values along ``dim`` at ``indices`` (as returned by argsort/argmax with keepdim), broadcasting
    the other dimensions; with ``dim=None`` both are flattened first. Negative indices count from the end."""
    x = ensure_tensor(input)
    idx = _index_array(indices, "take_along_dim", "indices", like=x.array)
    if dim is None:
        x = _reshape(x, (x.array.size,))
        idx = idx.reshape(-1)
        d = 0
    else:
        if x.array.ndim != idx.ndim:
            raise RuntimeError(f"take_along_dim(): input and indices should have the same number of dimensions, "
                               f"got shapes {tuple(x.array.shape)} and {tuple(idx.shape)}")
        if x.array.ndim == 0:
            return gather(x, dim, idx)
        d = normalize_dim(dim, x.array.ndim, "take_along_dim")
    n = x.array.shape[d]
    _check_bounds(idx, n, "take_along_dim", d, allow_negative=True)
    xp = array_module(idx)
    if idx.size and idx.min() < 0:
        idx = xp.where(idx < 0, idx + n, idx)
    xs, js = list(x.array.shape), list(idx.shape)
    xs[d] = js[d] = 1
    try:
        common = list(np.broadcast_shapes(tuple(xs), tuple(js)))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): input of shape {tuple(x.array.shape)} and indices of shape "
                           f"{tuple(idx.shape)} do not broadcast outside dimension {d}") from None
    x_shape, i_shape = list(common), list(common)
    x_shape[d], i_shape[d] = n, idx.shape[d]
    if tuple(x_shape) != x.array.shape:
        x = Expand.apply(x, tuple(x_shape))
    return Gather.apply(x, d, xp.broadcast_to(idx, i_shape))


# --------------------------------------------------------------------------- triangles, outer, one_hot
class Triangle(Function):
    def forward(ctx, a, diagonal, upper):
        xp = array_module(a)
        ctx.diagonal, ctx.upper = diagonal, upper
        return xp.triu(a, diagonal) if upper else xp.tril(a, diagonal)

    def backward(ctx, grad):
        xp = array_module(grad)
        return xp.triu(grad, ctx.diagonal) if ctx.upper else xp.tril(grad, ctx.diagonal)

    def grad_graph(ctx, grad):
        return Triangle.apply(grad, ctx.diagonal, ctx.upper)


def tril(input, diagonal=0):
    """The lower triangle of the last two dimensions (on and below ``diagonal``); the rest is zero.

    ``(*, m, n) -> (*, m, n)``; ``diagonal > 0`` keeps more diagonals above, ``< 0`` fewer.
    """
    x = ensure_tensor(input)
    if x.array.ndim < 2:
        raise RuntimeError(f"tril(): input tensor must have at least 2 dimensions, got shape {tuple(x.array.shape)}")
    return Triangle.apply(x, builtins.int(diagonal), False)


def triu(input, diagonal=0):
    """The upper triangle of the last two dimensions (on and above ``diagonal``); the rest is zero."""
    x = ensure_tensor(input)
    if x.array.ndim < 2:
        raise RuntimeError(f"triu(): input tensor must have at least 2 dimensions, got shape {tuple(x.array.shape)}")
    return Triangle.apply(x, builtins.int(diagonal), True)


def outer(input, vec2):
    """Outer product of two 1-d tensors: ``(n,), (m,) -> (n, m)``."""
    a, b = ensure_tensor(input), ensure_tensor(vec2)
    if a.array.ndim != 1 or b.array.ndim != 1:
        raise RuntimeError(f"outer(): expected two 1-d tensors, got shapes {tuple(a.array.shape)} and "
                           f"{tuple(b.array.shape)}")
    return elementwise.mul(_reshape(a, (a.array.size, 1)), _reshape(b, (1, b.array.size)))


def ger(input, vec2):
    """Alias of ``outer``."""
    return outer(input, vec2)


def one_hot(tensor, num_classes=-1):
    """int64 one-hot encoding: ``(*) -> (*, num_classes)``; ``num_classes=-1`` uses ``max + 1``. No gradient."""
    idx = _index_array(tensor, "one_hot", "tensor")
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("one_hot(): can not infer the number of classes from an empty tensor; pass num_classes")
        num_classes = builtins.int(idx.max()) + 1
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise RuntimeError(f"one_hot(): class values must be in [0, {num_classes}), got values in "
                           f"[{builtins.int(idx.min())}, {builtins.int(idx.max())}]")
    return int_result(idx[..., None] == array_module(idx).arange(num_classes))


# --------------------------------------------------------------------------- nonzero, sorting, unique
def argwhere(input):
    """``nonzero(input)``: an ``(n, ndim)`` int64 tensor of indices."""
    return nonzero(input)


_SortResult = collections.namedtuple("sort", ["values", "indices"])
_TopkResult = collections.namedtuple("topk", ["values", "indices"])


def _argsort(a, axis, descending):
    """Stable argsort; descending keeps equal elements in their original order and puts NaN first."""
    xp = array_module(a)
    if not descending:
        return xp.argsort(a, axis=axis, kind="stable")
    # Sorting the reversed array ascending and reversing the result keeps ties in input order.
    n = a.shape[axis]
    return (n - 1) - xp.flip(xp.argsort(xp.flip(a, axis), axis=axis, kind="stable"), axis)


def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)`` of ``input`` sorted along ``dim``; values are differentiable, indices int64.

    The sort is always stable; NaN counts as larger than every number, as in PyTorch.
    """
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        normalize_dim(dim, 0, "sort")
        xp = array_module(x.array)
        return _SortResult(gather(x, 0, xp.zeros((), np.int64)), int_result(xp.zeros((), np.int64)))
    d = normalize_dim(dim, x.array.ndim, "sort")
    idx = _argsort(x.array, d, descending)
    return _SortResult(Gather.apply(x, d, idx), int_result(idx))


def argsort(input, dim=-1, descending=False, stable=False):
    """int64 indices that sort ``input`` along ``dim`` (stable)."""
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        normalize_dim(dim, 0, "argsort")
        return int_result(array_module(x.array).zeros((), np.int64))
    d = normalize_dim(dim, x.array.ndim, "argsort")
    return int_result(_argsort(x.array, d, descending))


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` as ``(values, indices)``, values sorted.

    ``(*, n, *) -> (*, k, *)``; values are differentiable, indices int64.
    """
    x = ensure_tensor(input)
    a = x.array
    k = builtins.int(k)
    if a.ndim == 0:
        normalize_dim(dim, 0, "topk")
        if k not in (0, 1):
            raise RuntimeError(f"topk(): k ({k}) is out of range for a 0-d tensor")
        return _TopkResult(*sort(x))
    d = normalize_dim(dim, a.ndim, "topk")
    n = a.shape[d]
    if not 0 <= k <= n:
        raise RuntimeError(f"topk(): k ({k}) is out of range for dimension {d} of size {n} (shape {tuple(a.shape)})")
    xp = array_module(a)
    idx = None
    if 0 < k < n:
        # Partition first so only the k candidates get sorted. When the value at the cut is tied, which of the
        # tied elements gets in is arbitrary: then the stable sort below decides (lowest index first).
        kth = n - k if largest else k - 1
        part = xp.argpartition(a, kth, axis=d)
        cut = xp.take_along_axis(a, xp.take(part, [kth], axis=d), axis=d)
        if not xp.isnan(cut).any() and ((a == cut).sum(axis=d) == 1).all():
            cand = xp.take(part, xp.arange(n - k, n) if largest else xp.arange(k), axis=d)
            order = _argsort(xp.take_along_axis(a, cand, axis=d), d, largest)
            idx = xp.take_along_axis(cand, order, axis=d)
    if idx is None:
        idx = xp.take(_argsort(a, d, largest), xp.arange(k), axis=d)
    return _TopkResult(Gather.apply(x, d, idx), int_result(idx))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The sorted distinct values of ``input`` (flattened, or distinct slices along ``dim``); optionally the
    int64 ``inverse`` (where each element went) and ``counts``. No gradient."""
    a = ensure_tensor(input).array
    xp = array_module(a)
    if dim is None:
        vals, inv, cnt = xp.unique(a.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.reshape(a.shape)
    else:
        if a.ndim == 0:
            raise IndexError("unique(): a 0-d tensor has no dimension to take unique slices along")
        d = normalize_dim(dim, a.ndim, "unique")
        vals, inv, cnt = xp.unique(a, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out = [_wrap(vals, False, None, 0)]
    if return_inverse:
        out.append(int_result(inv))
    if return_counts:
        out.append(int_result(cnt))
    return out[0] if len(out) == 1 else tuple(out)


install(
    __getitem__=_getitem, __setitem__=_setitem, __iter__=_iter,
    index_select=index_select, index_add=index_add, index_copy=index_copy, index_fill=index_fill, gather=gather,
    scatter=scatter, scatter_add=scatter_add, masked_fill=masked_fill,
    masked_select=masked_select, take_along_dim=take_along_dim, tril=tril, triu=triu, outer=outer, ger=ger,
    nonzero=nonzero, argwhere=argwhere, topk=topk, sort=sort, argsort=argsort, unique=unique,
    add_=_add_, sub_=_sub_, mul_=_mul_, div_=_div_, clamp_=_clamp_, clip_=_clamp_, zero_=_zero_, fill_=_fill_,
    copy_=_copy_, masked_fill_=_masked_fill_, scatter_=_scatter_, scatter_add_=_scatter_add_,
)
