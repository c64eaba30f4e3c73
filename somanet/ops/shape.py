"""Shape ops: reshape and views, permutations, broadcasting, joining and splitting, padding, dtype casts.

Ops that PyTorch implements as views (reshape where possible, view, squeeze, permute, transpose,
expand, narrow, split, unbind, ...) return NumPy views here too and set ``is_view``, so the result
shares its input's version counter: an in-place change through either tensor is seen by the graph's
saved-tensor checks. Ops that PyTorch copies (flip, roll, repeat, cat, clone) copy.
"""
import builtins
import math
from itertools import accumulate

import numpy as np

from .. import backend, devices
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ._util import ensure_tensor, install, normalize_dim, normalize_dims

__all__ = [
    "to_dtype", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
    "swapaxes", "swapdims", "t", "broadcast_to", "tile", "flip", "fliplr", "flipud", "roll", "cat", "concat",
    "concatenate", "stack", "hstack", "vstack", "split", "chunk", "unbind", "narrow", "movedim", "moveaxis",
    "clone", "pad",
]


# --------------------------------------------------------------------------- dtype casts
class Cast(Function):
    def forward(ctx, a, dtype):
        ctx.src = a.dtype
        return a.astype(dtype)

    def backward(ctx, grad):
        return grad.astype(ctx.src) if ctx.src.kind == "f" else None

    def grad_graph(ctx, grad):
        return to_dtype(grad, ctx.src) if ctx.src.kind == "f" else None


def to_dtype(input, dtype):
    """``input`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = backend.to_dtype(dtype)
    if input.array.dtype == dtype:
        return input
    # bfloat16 (an ml_dtypes dtype, of kind "V") is floating too: somanet.amp makes that conversion.
    if dtype.kind != "f" and dtype.name != "bfloat16" and input.requires_grad:
        from ..autograd import grad_mode

        with grad_mode.no_grad():
            return Cast.apply(input, dtype)
    return Cast.apply(input, dtype)


def to_args(args, dtype=None, device=None):
    """``(dtype, device)`` from ``to``'s positional arguments, as PyTorch reads them: a Tensor gives its
    dtype and device, a device (or device string) the device, anything else the dtype. Shared by
    ``Tensor.to`` and ``Module.to``."""
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif devices.is_device_like(a):
            device = a
        else:
            dtype = a
    return dtype, device


class ToDevice(Function):
    """A copy of the input on another device; its gradient goes back to the input's device."""

    def forward(ctx, a, device):
        ctx.src = devices.of_array(a)
        return devices.move(a, device)

    def backward(ctx, grad):
        return devices.move(grad, ctx.src)

    def grad_graph(ctx, grad):
        return to_device(grad, ctx.src)


def to_device(input, device, op="to"):
    """``input`` on ``device`` (differentiable): itself when it is there already, else a copy."""
    d = devices.resolve(device, op)
    if input.device == d:
        return input
    return ToDevice.apply(input, d)


def _to(self, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
    """``x.to(dtype)``, ``x.to(device)``, ``x.to(device, dtype)``, ``x.to(other)`` (other's dtype and device)."""
    dtype, device = to_args(args, dtype, device)
    if device is not None:
        moved = to_device(self, device)
        if moved is not self:
            return moved if dtype is None else to_dtype(moved, dtype)
    if dtype is None:
        return self.clone() if copy else self
    out = to_dtype(self, dtype)
    if copy and out is self:
        return self.clone()
    return out


def _cuda(self, device=None, non_blocking=False):
    return _to(self, "cuda" if device is None else device)


# --------------------------------------------------------------------------- argument helpers
def _size_args(args, op):
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all mean the sizes ``(2, 3)``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    try:
        return tuple(builtins.int(s) for s in args)
    except TypeError:
        raise TypeError(f"{op}(): sizes must be ints or one sequence of ints, got {args!r}") from None


def _infer_shape(shape, numel, in_shape, op):
    """Resolve one ``-1`` in ``shape`` and check that it holds exactly ``numel`` elements."""
    if min(shape, default=0) >= 0 and math.prod(shape) == numel:
        return shape
    holes = [i for i, s in enumerate(shape) if s == -1]
    if len(holes) > 1 or any(s < -1 for s in shape):
        raise RuntimeError(f"{op}(): invalid shape {list(shape)}: sizes must be non-negative, with at most one -1")
    known = math.prod(s for s in shape if s != -1)
    if holes:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}(): shape {list(shape)} is invalid for input of size {numel} "
                               f"(input shape {tuple(in_shape)})")
        shape = shape[:holes[0]] + (numel // known,) + shape[holes[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"{op}(): shape {list(shape)} is invalid for input of size {numel} "
                           f"(input shape {tuple(in_shape)})")
    return shape


def _new_dim(dim, ndim, op):
    """A position for a new dimension: in ``[-ndim - 1, ndim]``, like ``unsqueeze`` and ``stack``."""
    d = builtins.int(dim)
    if not -ndim - 1 <= d <= ndim:
        raise IndexError(f"{op}(): dimension {d} is out of range for a result with {ndim + 1} dimensions "
                         f"(expected a dim in [{-ndim - 1}, {ndim}])")
    return d % (ndim + 1)


# --------------------------------------------------------------------------- reshape and views
class Reshape(Function):
    """Reshape that NumPy can do without copying: the result is a view of the input."""

    is_view = True

    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return a.reshape(shape)

    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape)

    def grad_graph(ctx, grad):
        return reshape(grad, ctx.in_shape)


class ReshapeCopy(Reshape):
    """Reshape of a non-contiguous input that needs a copy: the result owns its memory."""

    is_view = False


def _reshape(x, shape):
    """Apply the reshape Function that matches what NumPy will do (view or copy)."""
    if x.array.flags.c_contiguous:
        return Reshape.apply(x, shape)
    try:
        array_module(x.array).reshape(x.array, shape, copy=False)
    except ValueError:
        return ReshapeCopy.apply(x, shape)
    return Reshape.apply(x, shape)


def reshape(input, shape):
    """``input`` with the same elements in a new ``shape`` (one size may be -1); a view when possible.

    ``(2, 3, 4) -> reshape(input, (6, -1)) -> (6, 4)``.
    """
    x = ensure_tensor(input)
    shape = _infer_shape(_size_args((shape,), "reshape"), x.array.size, x.array.shape, "reshape")
    return _reshape(x, shape)


def _reshape_method(self, *shape):
    """``x.reshape(*shape)`` or ``x.reshape(shape)``; see ``reshape``."""
    shape = _infer_shape(_size_args(shape, "reshape"), self.array.size, self.array.shape, "reshape")
    return _reshape(self, shape)


class ViewDtype(Function):
    differentiable = False
    is_view = True

    def forward(ctx, a, dtype):
        return a.view(dtype)


def _view(self, *shape):
    """``x.view(*shape)``: a view with a new shape; fails when the strides do not allow one.

    ``x.view(dtype)`` reinterprets the bytes as another dtype (no gradient).
    """
    if len(shape) == 1 and not isinstance(shape[0], (builtins.int, np.integer, tuple, list, Tensor)):
        return ViewDtype.apply(self, backend.to_dtype(shape[0]))
    shape = _infer_shape(_size_args(shape, "view"), self.array.size, self.array.shape, "view")
    if self.array.flags.c_contiguous:
        return Reshape.apply(self, shape)
    try:
        array_module(self.array).reshape(self.array, shape, copy=False)
    except ValueError:
        raise RuntimeError(
            f"view(): the view shape {list(shape)} is not compatible with the input's shape "
            f"{tuple(self.array.shape)} and strides {self.array.strides} (at least one dimension spans "
            f"non-contiguous memory); use .reshape(...) instead"
        ) from None
    return Reshape.apply(self, shape)


def _view_as(self, other):
    """``self.view(other.shape)``."""
    return _view(self, tuple(other.shape))


def _reshape_as(self, other):
    """``self.reshape(other.shape)``."""
    return _reshape(self, tuple(other.shape))


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim..end_dim`` into one; a 0-d tensor becomes shape ``(1,)``.

    ``(N, C, H, W) -> flatten(x, 1) -> (N, C*H*W)``.
    """
    x = ensure_tensor(input)
    shape = x.array.shape
    if x.array.ndim == 0:
        return _reshape(x, (1,))
    s = normalize_dim(start_dim, len(shape), "flatten")
    e = normalize_dim(end_dim, len(shape), "flatten")
    if s > e:
        raise RuntimeError(f"flatten(): start_dim ({start_dim}) cannot come after end_dim ({end_dim}) "
                           f"for a tensor of shape {tuple(shape)}")
    if s == e:
        return x
    return _reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def unflatten(input, dim, sizes):
    """Split dimension ``dim`` into ``sizes`` (one may be -1): ``(N, 12) -> unflatten(x, 1, (3, 4)) -> (N, 3, 4)``."""
    x = ensure_tensor(input)
    shape = x.array.shape
    d = normalize_dim(dim, len(shape), "unflatten")
    if x.array.ndim == 0:
        raise RuntimeError("unflatten(): cannot unflatten a 0-d tensor")
    sizes = _size_args((sizes,), "unflatten")
    if not sizes:
        raise RuntimeError("unflatten(): sizes must be non-empty")
    sizes = _infer_shape(sizes, shape[d], (shape[d],), "unflatten")
    return _reshape(x, shape[:d] + sizes + shape[d + 1:])


def squeeze(input, dim=None):
    """Remove dimensions of size 1: all of them, or only those in ``dim`` (an int or a tuple).

    Naming a dimension whose size is not 1 leaves it in place, as in PyTorch.
    """
    x = ensure_tensor(input)
    shape = x.array.shape
    if dim is None:
        dims = range(len(shape))
    else:
        dims = normalize_dims(dim, len(shape), "squeeze")
        if x.array.ndim == 0:
            dims = ()
    drop = {d for d in dims if shape[d] == 1}
    return _reshape(x, tuple(n for i, n in enumerate(shape) if i not in drop))


def _squeeze_method(self, dim=None, *more):
    """``x.squeeze(dim=None)``; see ``squeeze``."""
    return squeeze(self, (dim,) + more if more else dim)


def unsqueeze(input, dim):
    """Insert a dimension of size 1 at ``dim`` (in ``[-ndim - 1, ndim]``): ``(3,) -> unsqueeze(x, 0) -> (1, 3)``."""
    x = ensure_tensor(input)
    shape = x.array.shape
    d = _new_dim(dim, len(shape), "unsqueeze")
    return _reshape(x, shape[:d] + (1,) + shape[d:])


class Permute(Function):
    is_view = True

    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    def backward(ctx, grad):
        dims = ctx.dims
        # The inverse permutation, worked out on Python ints: axis bookkeeping needs no array library.
        return grad.transpose(sorted(range(len(dims)), key=dims.__getitem__))

    def grad_graph(ctx, grad):
        dims = ctx.dims
        return Permute.apply(grad, tuple(sorted(range(len(dims)), key=dims.__getitem__)))


def permute(input, dims):
    """Reorder dimensions: ``(N, H, W, C) -> permute(x, (0, 3, 1, 2)) -> (N, C, H, W)``; a view."""
    x = ensure_tensor(input)
    nd = x.array.ndim
    dims = _size_args((dims,), "permute")
    if len(dims) != nd:
        raise RuntimeError(f"permute(): got {len(dims)} dims {list(dims)} for a tensor with {nd} dimensions "
                           f"(shape {tuple(x.array.shape)})")
    norm = tuple(normalize_dim(d, nd, "permute") for d in dims) if nd else ()
    if len(set(norm)) != len(norm):
        raise RuntimeError(f"permute(): dims {list(dims)} repeat a dimension")
    return Permute.apply(x, norm)


def _permute_method(self, *dims):
    """``x.permute(*dims)`` or ``x.permute(dims)``; see ``permute``."""
    return permute(self, dims)


def transpose(input, dim0, dim1):
    """Swap dimensions ``dim0`` and ``dim1``; a view. ``(N, T, C) -> transpose(x, 1, 2) -> (N, C, T)``."""
    x = ensure_tensor(input)
    nd = x.array.ndim
    a = normalize_dim(dim0, nd, "transpose")
    b = normalize_dim(dim1, nd, "transpose")
    if nd == 0:
        return Permute.apply(x, ())
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return Permute.apply(x, tuple(perm))


def swapaxes(input, axis0, axis1):
    """Alias of ``transpose``."""
    return transpose(input, axis0, axis1)


def swapdims(input, dim0, dim1):
    """Alias of ``transpose``."""
    return transpose(input, dim0, dim1)


def t(input):
    """Transpose a matrix ``(m, n) -> (n, m)``; 0-d and 1-d tensors come back unchanged (as views)."""
    x = ensure_tensor(input)
    if x.array.ndim > 2:
        raise RuntimeError(f"t(): expects a tensor with <= 2 dimensions, but got a {x.array.ndim}-D tensor "
                           f"of shape {tuple(x.array.shape)}; use transpose(dim0, dim1) or mT")
    return Permute.apply(x, tuple(range(x.array.ndim))[::-1])


def _T(self):
    """``x.T``: all dimensions reversed (a view)."""
    return Permute.apply(self, tuple(range(self.array.ndim))[::-1])


def _mT(self):
    """``x.mT``: the last two dimensions swapped, for batches of matrices (a view)."""
    if self.array.ndim < 2:
        raise RuntimeError(f"mT: only supported on matrices or batches of matrices, got a {self.array.ndim}-D "
                           f"tensor of shape {tuple(self.array.shape)}")
    return transpose(self, -2, -1)


def movedim(input, source, destination):
    """Move dimension(s) ``source`` to position(s) ``destination``, keeping the others in order; a view."""
    x = ensure_tensor(input)
    nd = x.array.ndim
    src = (source,) if isinstance(source, (builtins.int, np.integer)) else tuple(source)
    dst = (destination,) if isinstance(destination, (builtins.int, np.integer)) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim(): source {list(src)} and destination {list(dst)} must have the same "
                           f"number of dimensions")
    if nd == 0:
        for d in src + dst:
            normalize_dim(d, nd, "movedim")
        return Permute.apply(x, ())
    src = [normalize_dim(d, nd, "movedim") for d in src]
    dst = [normalize_dim(d, nd, "movedim") for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim(): repeated dim in source {list(source)} or destination {list(destination)}")
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return Permute.apply(x, tuple(order))


moveaxis = movedim


# --------------------------------------------------------------------------- broadcasting and repetition
class Expand(Function):
    is_view = True

    def forward(ctx, a, shape):
        xp = array_module(a)
        return xp.broadcast_to(a, shape)

    def backward(ctx, grad):
        # The engine sums the stretched and added dimensions back to the input's shape.
        return grad

    def grad_graph(ctx, grad):
        return grad


def _expand_shape(shape, sizes, op):
    sizes = _size_args(sizes, op)
    if len(sizes) < len(shape):
        raise RuntimeError(f"{op}(): the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({len(shape)}); shape {tuple(shape)}")
    lead = len(sizes) - len(shape)
    out = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"{op}(): the expanded size {s} is not allowed in a leading, non-existing "
                                   f"dimension {i}")
            out.append(s)
            continue
        n = shape[i - lead]
        if s == -1:
            out.append(n)
        elif s == n or n == 1:
            if s < 0:
                raise RuntimeError(f"{op}(): invalid size {s} at dimension {i}")
            out.append(s)
        else:
            raise RuntimeError(f"{op}(): the expanded size of the tensor ({s}) must match the existing size ({n}) "
                               f"at non-singleton dimension {i}; target sizes {list(sizes)}, tensor shape "
                               f"{tuple(shape)}")
    return tuple(out)


def _expand_method(self, *sizes):
    """``x.expand(*sizes)``: a broadcast view (-1 keeps a size); size-1 dims stretch, new dims lead."""
    return Expand.apply(self, _expand_shape(self.array.shape, sizes, "expand"))


def broadcast_to(input, size):
    """``input`` broadcast to ``size`` as a read-only view (like ``expand``)."""
    x = ensure_tensor(input)
    return Expand.apply(x, _expand_shape(x.array.shape, (size,), "broadcast_to"))


def _expand_as(self, other):
    """``self.expand(other.shape)``."""
    return Expand.apply(self, _expand_shape(self.array.shape, (tuple(other.shape),), "expand_as"))


class Repeat(Function):
    def forward(ctx, a, repeats):
        xp = array_module(a)
        padded = (1,) * (len(repeats) - a.ndim) + a.shape
        ctx.in_shape = a.shape
        ctx.padded = padded
        ctx.repeats = repeats
        return xp.tile(a.reshape(padded), repeats)

    def backward(ctx, grad):
        # The output is blocks of the input: view it as (r0, s0, r1, s1, ...) and sum the r axes.
        pairs = []
        for r, s in zip(ctx.repeats, ctx.padded):
            pairs += [r, s]
        g = grad.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2)))
        return g.reshape(ctx.in_shape)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Repeat.apply(v, ctx.repeats))


def _repeat_method(self, *sizes):
    """``x.repeat(*sizes)``: tile the tensor ``sizes[i]`` times along each dimension (PyTorch's repeat,
    NumPy's tile); ``len(sizes)`` must be at least ``x.ndim``. ``(2, 3).repeat(2, 1, 2) -> (2, 2, 6)``."""
    sizes = _size_args(sizes, "repeat")
    if len(sizes) < self.array.ndim:
        raise RuntimeError(f"repeat(): the number of repeat dims ({len(sizes)}) can not be smaller than the "
                           f"number of dimensions of the tensor ({self.array.ndim}, shape {tuple(self.array.shape)})")
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"repeat(): repeats must be non-negative, got {list(sizes)}")
    return Repeat.apply(self, sizes)


def tile(input, dims):
    """Repeat ``input`` along each dimension; ``dims`` shorter than ``input.ndim`` is padded with leading 1s."""
    x = ensure_tensor(input)
    dims = _size_args((dims,), "tile")
    dims = (1,) * (x.array.ndim - len(dims)) + dims
    return _repeat_method(x, *dims)


def _tile_method(self, *dims):
    """``x.tile(*dims)``; see ``tile``."""
    return tile(self, _size_args(dims, "tile"))


# --------------------------------------------------------------------------- flip and roll
class Flip(Function):
    def forward(ctx, a, dims):
        xp = array_module(a)
        ctx.dims = dims
        # PyTorch's flip copies; a NumPy view would let later in-place edits of the input leak through.
        return xp.flip(a, dims).copy()

    def backward(ctx, grad):
        xp = array_module(grad)
        return xp.flip(grad, ctx.dims)

    def grad_graph(ctx, grad):
        return Flip.apply(grad, ctx.dims)


def flip(input, dims):
    """Reverse the order of elements along ``dims`` (an int or a sequence); a copy."""
    x = ensure_tensor(input)
    dims = normalize_dims(dims, x.array.ndim, "flip")
    if x.array.ndim == 0:
        return Flip.apply(x, None)
    return Flip.apply(x, dims)


def _flip_method(self, *dims):
    """``x.flip(*dims)`` or ``x.flip(dims)``; see ``flip``."""
    return flip(self, dims[0] if len(dims) == 1 else dims)


def fliplr(input):
    """Flip a tensor of at least 2 dimensions left to right (dimension 1)."""
    x = ensure_tensor(input)
    if x.array.ndim < 2:
        raise RuntimeError(f"fliplr(): input must be >= 2-d, got shape {tuple(x.array.shape)}")
    return flip(x, 1)


def flipud(input):
    """Flip a tensor of at least 1 dimension up to down (dimension 0)."""
    x = ensure_tensor(input)
    if x.array.ndim < 1:
        raise RuntimeError("flipud(): input must be >= 1-d, got a 0-d tensor")
    return flip(x, 0)


class Roll(Function):
    def forward(ctx, a, shifts, dims):
        xp = array_module(a)
        ctx.shifts = shifts
        ctx.dims = dims
        return xp.roll(a, shifts, dims)

    def backward(ctx, grad):
        xp = array_module(grad)
        back = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return xp.roll(grad, back, ctx.dims)

    def grad_graph(ctx, grad):
        back = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return Roll.apply(grad, back, ctx.dims)


def roll(input, shifts, dims=None):
    """Shift elements circularly by ``shifts`` along ``dims``; with ``dims=None`` the flattened tensor rolls.

    ``shifts`` and ``dims`` are ints or equal-length sequences.
    """
    x = ensure_tensor(input)
    if dims is None:
        if not isinstance(shifts, (builtins.int, np.integer)):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise RuntimeError(f"roll(): with dims=None, shifts must be a single int, got {list(shifts)}")
            shifts = shifts[0]
        return Roll.apply(x, builtins.int(shifts), None)
    one = isinstance(dims, (builtins.int, np.integer))
    dims_t = (dims,) if one else tuple(dims)
    shifts_t = (shifts,) if isinstance(shifts, (builtins.int, np.integer)) else tuple(shifts)
    if len(shifts_t) != len(dims_t):
        raise RuntimeError(f"roll(): shifts {list(shifts_t)} and dims {list(dims_t)} must have the same length")
    nd = x.array.ndim
    dims_t = tuple(normalize_dim(d, nd, "roll") for d in dims_t)
    if nd == 0:
        return Roll.apply(x, 0, None)
    return Roll.apply(x, tuple(builtins.int(s) for s in shifts_t), dims_t)


# --------------------------------------------------------------------------- joining
def _promote(tensors, op):
    """Cast a list of tensors to their common dtype, PyTorch's way: any float wins over integers
    (int64 with float32 gives float32, where NumPy would give float64)."""
    dtypes = [t.array.dtype for t in tensors]
    if all(d == dtypes[0] for d in dtypes):
        return tensors
    floats = [d for d in dtypes if d.kind == "f"]
    target = np.result_type(*floats) if floats else np.result_type(*dtypes)
    return [to_dtype(t, target) for t in tensors]


def _tensor_list(tensors, op):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise RuntimeError(f"{op}(): expected a non-empty list of tensors")
    return [ensure_tensor(t, op) for t in tensors]


class Cat(Function):
    def forward(ctx, *arrays, dim, skip):
        xp = array_module(*arrays)
        ctx.dim = dim
        ctx.skip = skip
        ctx.sizes = [a.shape[dim] for a, s in zip(arrays, skip) if not s]
        return xp.concatenate([a for a, s in zip(arrays, skip) if not s], axis=dim)

    def backward(ctx, grad):
        xp = array_module(grad)
        parts = iter(xp.split(grad, list(accumulate(ctx.sizes))[:-1], axis=ctx.dim))
        return tuple(xp.zeros((0,), grad.dtype) if s else next(parts) for s in ctx.skip)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda *parts: Cat.apply(*parts, dim=ctx.dim, skip=ctx.skip))


def cat(tensors, dim=0):
    """Join tensors along an existing dimension ``dim``; all other sizes must match.

    ``[(2, 3), (4, 3)] -> cat(ts, 0) -> (6, 3)``. Mixed dtypes are promoted as in PyTorch, and 1-d empty
    tensors are skipped (PyTorch's legacy rule).
    """
    ts = _promote(_tensor_list(tensors, "cat"), "cat")
    # PyTorch still accepts shape (0,) tensors next to tensors of any rank, and ignores them.
    skip = tuple(t.array.shape == (0,) for t in ts)
    if all(skip):
        skip = (False,) * len(ts)
    kept = [t for t, s in zip(ts, skip) if not s]
    ref = kept[0].array.shape
    if len(ref) == 0:
        raise RuntimeError("cat(): zero-dimensional tensor (at position 0) cannot be concatenated")
    d = normalize_dim(dim, len(ref), "cat")
    for i, t in enumerate(ts):
        if skip[i]:
            continue
        s = t.array.shape
        if len(s) != len(ref):
            raise RuntimeError(f"cat(): tensors must have the same number of dimensions: got {len(ref)} and "
                               f"{len(s)} (tensor 0 has shape {tuple(ref)}, tensor {i} has shape {tuple(s)})")
        if s[:d] != ref[:d] or s[d + 1:] != ref[d + 1:]:
            raise RuntimeError(f"cat(): sizes of tensors must match except in dimension {d}: tensor 0 has shape "
                               f"{tuple(ref)} but tensor {i} has shape {tuple(s)}")
    return Cat.apply(*ts, dim=d, skip=skip)


def concat(tensors, dim=0):
    """Alias of ``cat``."""
    return cat(tensors, dim)


def concatenate(tensors, dim=0):
    """Alias of ``cat``."""
    return cat(tensors, dim)


class Stack(Function):
    def forward(ctx, *arrays, dim):
        xp = array_module(*arrays)
        ctx.dim = dim
        return xp.stack(arrays, axis=dim)

    def backward(ctx, grad):
        lead = (slice(None),) * ctx.dim
        return tuple(grad[lead + (i,)] for i in range(grad.shape[ctx.dim]))

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda *parts: Stack.apply(*parts, dim=ctx.dim))


def stack(tensors, dim=0):
    """Join equal-shape tensors along a new dimension ``dim``: ``3 x (2, 4) -> stack(ts, 1) -> (2, 3, 4)``."""
    ts = _promote(_tensor_list(tensors, "stack"), "stack")
    ref = ts[0].array.shape
    for i, t in enumerate(ts):
        if t.array.shape != ref:
            raise RuntimeError(f"stack(): expects each tensor to be equal size, but got {tuple(ref)} at entry 0 "
                               f"and {tuple(t.array.shape)} at entry {i}")
    return Stack.apply(*ts, dim=_new_dim(dim, len(ref), "stack"))


def hstack(tensors):
    """Join along dimension 1 (dimension 0 for 1-d tensors)."""
    ts = [_atleast_1d(t) for t in _tensor_list(tensors, "hstack")]
    return cat(ts, 0 if ts[0].array.ndim == 1 else 1)


def vstack(tensors):
    """Join along dimension 0 after making every tensor at least 2-d (``(n,) -> (1, n)``)."""
    ts = []
    for t in _tensor_list(tensors, "vstack"):
        t = _atleast_1d(t)
        ts.append(_reshape(t, (1,) + t.array.shape) if t.array.ndim == 1 else t)
    return cat(ts, 0)


def _atleast_1d(x):
    return _reshape(x, (1,)) if x.array.ndim == 0 else x


# --------------------------------------------------------------------------- splitting
class Slice(Function):
    """Basic indexing (ints, slices, None, Ellipsis): the result is a view of the input."""

    is_view = True

    def forward(ctx, a, key):
        ctx.key = key
        ctx.shape = a.shape
        return a[key]

    def backward(ctx, grad):
        xp = array_module(grad)
        g = xp.zeros(ctx.shape, dtype=grad.dtype)
        g[ctx.key] = grad
        return g

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Slice.apply(v, ctx.key))


class Split(Function):
    """Several consecutive slices of one dimension at once: one node, one concatenate in backward."""

    is_view = True

    def forward(ctx, a, sizes, dim):
        xp = array_module(a)
        ctx.sizes = sizes
        ctx.dim = dim
        ctx.shape = a.shape
        return tuple(xp.split(a, list(accumulate(sizes))[:-1], axis=dim))

    def backward(ctx, *grads):
        xp = array_module(*[g for g in grads if g is not None])
        dtype = next(g.dtype for g in grads if g is not None)
        parts = []
        for g, n in zip(grads, ctx.sizes):
            if g is None:
                shape = list(ctx.shape)
                shape[ctx.dim] = n
                g = xp.zeros(shape, dtype=dtype)
            parts.append(g)
        return xp.concatenate(parts, axis=ctx.dim)

    def grad_graph(ctx, *grads):
        return ctx.graph_linear(grads, lambda v: Split.apply(v, ctx.sizes, ctx.dim))


def _share_version(outs, x):
    # Multi-output Functions do not link their outputs to the input's version counter; these are views.
    for o in outs:
        o._version = x._version
    return outs


def _split_sizes(x, sizes, dim, op):
    outs = Split.apply(x, tuple(sizes), dim)
    return _share_version(outs, x)


def split(tensor, split_size_or_sections, dim=0):
    """Split ``tensor`` into views along ``dim``: chunks of ``split_size_or_sections`` elements (the last may
    be smaller) when it is an int, or pieces of exactly the listed sizes (which must sum to the dim's size)."""
    x = ensure_tensor(tensor)
    if x.array.ndim == 0:
        raise RuntimeError("split(): cannot split a 0-d tensor")
    d = normalize_dim(dim, x.array.ndim, "split")
    n = x.array.shape[d]
    if isinstance(split_size_or_sections, (builtins.int, np.integer)):
        size = builtins.int(split_size_or_sections)
        if size < 0 or (size == 0 and n != 0):
            raise RuntimeError(f"split(): split_size must be a positive integer for a dimension of size {n}, "
                               f"got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
        if not sizes:
            sizes = [0]
    else:
        sizes = [builtins.int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise RuntimeError(f"split(): split sizes {sizes} must be non-negative and sum exactly to {n}, the size "
                               f"of dimension {d} of the tensor with shape {tuple(x.array.shape)}")
    return _split_sizes(x, sizes, d, "split")


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` views of ``ceil(n / chunks)`` elements along ``dim`` (PyTorch's sizes: fewer
    chunks may come back, e.g. 5 elements in 4 chunks gives sizes 2, 2, 1)."""
    x = ensure_tensor(input)
    chunks = builtins.int(chunks)
    if chunks <= 0:
        raise RuntimeError(f"chunk(): chunks must be greater than 0, got {chunks}")
    if x.array.ndim == 0:
        raise RuntimeError("chunk(): cannot chunk a 0-d tensor")
    d = normalize_dim(dim, x.array.ndim, "chunk")
    n = x.array.shape[d]
    if n == 0:
        return _split_sizes(x, [0] * chunks, d, "chunk")
    return split(x, -(-n // chunks), d)


class Unbind(Function):
    is_view = True

    def forward(ctx, a, dim):
        xp = array_module(a)
        ctx.dim = dim
        ctx.shape = a.shape
        return tuple(xp.moveaxis(a, dim, 0))

    def backward(ctx, *grads):
        xp = array_module(*[g for g in grads if g is not None])
        dtype = next(g.dtype for g in grads if g is not None)
        inner = ctx.shape[:ctx.dim] + ctx.shape[ctx.dim + 1:]
        zero = None
        parts = []
        for g in grads:
            if g is None:
                if zero is None:
                    zero = xp.zeros(inner, dtype=dtype)
                g = zero
            parts.append(g)
        return xp.stack(parts, axis=ctx.dim)

    def grad_graph(ctx, *grads):
        return ctx.graph_linear(grads, lambda v: Unbind.apply(v, ctx.dim))


def unbind(input, dim=0):
    """A tuple of views, one per index along ``dim``, with that dimension removed."""
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        raise IndexError("unbind(): dimension specified as 0 but the tensor has no dimensions")
    d = normalize_dim(dim, x.array.ndim, "unbind")
    return _share_version(Unbind.apply(x, d), x)


def narrow(input, dim, start, length):
    """The view ``input[..., start:start + length, ...]`` along ``dim``; ``start`` may be negative."""
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        raise RuntimeError("narrow(): cannot be applied to a 0-d tensor")
    d = normalize_dim(dim, x.array.ndim, "narrow")
    n = x.array.shape[d]
    start = builtins.int(start)
    length = builtins.int(length)
    if not -n <= start <= n:
        raise IndexError(f"narrow(): start ({start}) is out of range for dimension {d} of size {n} "
                         f"(expected a start in [{-n}, {n}])")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError(f"narrow(): length must be non-negative, got {length}")
    if start + length > n:
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({n}) "
                           f"of dimension {d}")
    return Slice.apply(x, (slice(None),) * d + (slice(start, start + length),))


# --------------------------------------------------------------------------- copies
class Clone(Function):
    def forward(ctx, a):
        xp = array_module(a)
        return xp.array(a, copy=True, order="C")

    def backward(ctx, grad):
        return grad

    def grad_graph(ctx, grad):
        return grad


def clone(input, memory_format=None):
    """A copy of ``input`` with its own memory; gradients flow back unchanged."""
    return Clone.apply(ensure_tensor(input))


def _contiguous(self, memory_format=None):
    """``self`` when its memory is already C-contiguous, else a contiguous copy."""
    if self.array.flags.c_contiguous:
        return self
    return Clone.apply(self)


def _is_contiguous(self, memory_format=None):
    """Whether the data is laid out in C order without gaps."""
    return bool(self.array.flags.c_contiguous)


# --------------------------------------------------------------------------- padding
class ConstantPad(Function):
    def forward(ctx, a, widths, value):
        xp = array_module(a)
        src, dst, out_shape = [], [], []
        for n, (lo, hi) in zip(a.shape, widths):
            keep = n - max(-lo, 0) - max(-hi, 0)
            src.append(slice(max(-lo, 0), max(-lo, 0) + max(keep, 0)))
            dst.append(slice(max(lo, 0), max(lo, 0) + max(keep, 0)))
            out_shape.append(n + lo + hi)
        ctx.src, ctx.dst, ctx.shape = tuple(src), tuple(dst), a.shape
        out = xp.full(out_shape, value, dtype=a.dtype)
        out[ctx.dst] = a[ctx.src]
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        g = xp.zeros(ctx.shape, dtype=grad.dtype)
        g[ctx.src] = grad[ctx.dst]
        return g

    def grad_graph(ctx, grad):
        # The pad widths, (lo, hi) per dimension, from the copied ranges and the output's shape.
        widths = []
        for n, out, src, dst in zip(ctx.shape, grad.shape, ctx.src, ctx.dst):
            lo = dst.start - src.start
            widths.append((lo, out - n - lo))
        return ctx.graph_linear((grad,), lambda v: ConstantPad.apply(v, tuple(widths), 0))


def _pad_index(n, lo, hi, mode, xp):
    """Input positions that feed each output position of one padded dimension (an ``xp`` array), where
    the unpadded core starts in the output, and the core's first input position and length as ints."""
    core = xp.arange(max(-lo, 0), n - max(-hi, 0))
    if mode == "reflect":
        left, right = xp.arange(lo, 0, -1), xp.arange(n - 2, n - 2 - hi, -1)
    elif mode == "replicate":
        left, right = xp.zeros(max(lo, 0), np.int64), xp.full(max(hi, 0), n - 1)
    else:  # circular: PyTorch crops first, then wraps around what is left
        left, right = core[core.size - lo:] if lo > 0 else core[:0], core[:max(hi, 0)]
    return xp.concatenate([left, core, right]).astype(np.intp), max(lo, 0), (max(-lo, 0), core.size)


class IndexPad(Function):
    """Reflect, replicate and circular padding: each padded dimension gathers from an index map."""

    def forward(ctx, a, axes, maps):
        xp = array_module(a)
        ctx.axes, ctx.maps, ctx.shape = axes, maps, a.shape
        out = a
        for axis, (idx, _, _) in zip(axes, maps):
            out = xp.take(out, idx, axis=axis)
        return out

    def backward(ctx, grad):
        xp = array_module(grad)
        g = grad
        for axis, (idx, start, (first, size)) in reversed(list(zip(ctx.axes, ctx.maps))):
            lead = (slice(None),) * axis
            shape = list(g.shape)
            shape[axis] = ctx.shape[axis]
            out = xp.zeros(shape, dtype=g.dtype)
            # The core is a plain shifted copy; only the thin pad borders can map several outputs to one input.
            stop = start + size
            if size:
                out[lead + (slice(first, first + size),)] = g[lead + (slice(start, stop),)]
            edges = xp.concatenate((xp.arange(start), xp.arange(stop, idx.size)))
            if edges.size:
                xp.add.at(out, lead + (idx[edges],), g[lead + (edges,)])
            g = out
        return g

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: IndexPad.apply(v, ctx.axes, ctx.maps))


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dimensions of ``input``, PyTorch's order: ``(left, right)`` for the
    last dimension first, then ``(top, bottom)`` for the one before, and so on.

    ``mode`` is 'constant' (fill with ``value``; negative pads crop), 'reflect' (mirror without repeating
    the edge; pads must be smaller than the size), 'replicate' (repeat the edge) or 'circular' (wrap
    around; pads at most the size, negative pads crop). ``(N, C, H, W) -> pad(x, (1, 1, 2, 2)) ->
    (N, C, H + 4, W + 2)``.
    """
    x = ensure_tensor(input)
    if mode not in _PAD_MODES:
        raise ValueError(f"pad(): mode must be one of {_PAD_MODES}, got {mode!r}")
    pad = _size_args((pad,), "pad")
    nd = x.array.ndim
    if len(pad) % 2:
        raise RuntimeError(f"pad(): padding length must be divisible by 2, got {len(pad)} values {list(pad)}")
    if len(pad) // 2 > nd:
        raise RuntimeError(f"pad(): padding length {len(pad)} is more than two times the number of dimensions "
                           f"of the input (shape {tuple(x.array.shape)})")
    widths = [(0, 0)] * nd
    for k in range(len(pad) // 2):
        widths[nd - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    shape = x.array.shape
    for d, (lo, hi) in enumerate(widths):
        if shape[d] + lo + hi < 0:
            raise RuntimeError(f"pad(): the input size {shape[d]} of dimension {d}, plus padding {lo} and {hi}, "
                               f"gives a negative output size")
    if mode == "constant":
        return ConstantPad.apply(x, widths, 0 if value is None else value)
    if value not in (None, 0):
        raise RuntimeError(f"pad(): padding mode {mode!r} does not take a value argument, got value={value}")
    xp = array_module(x.array)
    axes, maps = [], []
    for d, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        n = shape[d]
        if mode == "reflect":
            if min(lo, hi) < 0 or max(lo, hi) >= n:
                raise RuntimeError(f"pad(): reflect padding ({lo}, {hi}) of dimension {d} must be non-negative and "
                                   f"less than its size {n} (input shape {tuple(shape)})")
        elif mode == "replicate":
            if min(lo, hi) < 0 or n == 0:
                raise RuntimeError(f"pad(): replicate padding ({lo}, {hi}) of dimension {d} must be non-negative, "
                                   f"on a non-empty dimension (input shape {tuple(shape)})")
        elif max(lo, hi) > n - max(-lo, 0) - max(-hi, 0):
            raise RuntimeError(f"pad(): circular padding ({lo}, {hi}) of dimension {d} wraps around more than once "
                               f"(size {n}, input shape {tuple(shape)})")
        axes.append(d)
        maps.append(_pad_index(n, lo, hi, mode, xp))
    if not axes:
        return Clone.apply(x)
    return IndexPad.apply(x, tuple(axes), tuple(maps))


install(
    to=_to, type=lambda self, dtype=None: str(self.dtype) if dtype is None else to_dtype(self, dtype),
    float=lambda self: to_dtype(self, np.float32), double=lambda self: to_dtype(self, np.float64),
    half=lambda self: to_dtype(self, np.float16), long=lambda self: to_dtype(self, np.int64),
    int=lambda self: to_dtype(self, np.int32), bool=lambda self: to_dtype(self, np.bool_),
    cpu=lambda self, memory_format=None: to_device(self, "cpu", "cpu"), cuda=_cuda,
    reshape=_reshape_method, view=_view, view_as=_view_as, reshape_as=_reshape_as, flatten=flatten,
    unflatten=unflatten, squeeze=_squeeze_method, unsqueeze=unsqueeze, permute=_permute_method,
    transpose=transpose, swapaxes=swapaxes, swapdims=swapdims, t=t, T=property(_T), mT=property(_mT),
    H=property(_T), mH=property(_mT), movedim=movedim, moveaxis=moveaxis, expand=_expand_method,
    expand_as=_expand_as, broadcast_to=broadcast_to, repeat=_repeat_method, tile=_tile_method, flip=_flip_method,
    fliplr=fliplr, flipud=flipud, roll=roll, split=split, chunk=chunk, unbind=unbind, narrow=narrow,
    clone=clone, contiguous=_contiguous, is_contiguous=_is_contiguous,
)
