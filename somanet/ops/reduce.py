"""Reductions: sum, mean, prod, var/std, max/min, logsumexp, softmax, log_softmax, cumsum, norm.

Every reduction takes PyTorch's ``dim=``/``keepdim=`` and NumPy's ``axis=``/``keepdims=`` aliases.
"""
import builtins
import math
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ._util import ensure_tensor, install, normalize_dim, normalize_dims, one_element, pick_dim

__all__ = [
    "sum", "mean", "prod", "var", "std", "var_mean", "std_mean", "max", "min", "amax", "amin", "argmax",
    "argmin", "logsumexp", "softmax", "log_softmax", "softmin", "cumsum", "cumprod", "norm", "all", "any",
    "count_nonzero", "aminmax",
]

values_indices = namedtuple("values_indices", ["values", "indices"])


def _expand(grad, dims, keepdim):
    """Re-insert reduced dimensions into ``grad`` so it broadcasts against the input."""
    if keepdim or dims is None:
        return grad
    return array_module(grad).expand_dims(grad, dims)


def _keep(keepdim, keepdims):
    return bool(keepdim or keepdims)


def _reduced_dims(dim, ndim, op):
    """``dim`` as sorted non-negative axes, None for all of them: as in PyTorch an empty tuple reduces every
    dimension too, and a 0-d input (dim 0, -1 or None) is reduced whole."""
    dims = normalize_dims(dim, ndim, op)
    return None if dims == () else dims


# --------------------------------------------------------------------------- sum / mean / prod
class Sum(Function):
    def forward(ctx, a, dims, keepdim, dtype=None):
        ctx.shape = a.shape
        ctx.dims = dims
        ctx.keepdim = keepdim
        out = array_module(a).sum(a, axis=dims, keepdims=keepdim, dtype=dtype)
        return out

    def backward(ctx, grad):
        return array_module(grad).broadcast_to(_expand(grad, ctx.dims, ctx.keepdim), ctx.shape)

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import unreduce

        return unreduce(grad, ctx.shape, ctx.dims, ctx.keepdim)


class Mean(Function):
    def forward(ctx, a, dims, keepdim):
        ctx.shape = a.shape
        ctx.dims = dims
        ctx.keepdim = keepdim
        n = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        ctx.scale = a.dtype.type(1.0 / n) if n else a.dtype.type(np.nan)
        return array_module(a).mean(a, axis=dims, keepdims=keepdim)

    def backward(ctx, grad):
        return array_module(grad).broadcast_to(_expand(grad * ctx.scale, ctx.dims, ctx.keepdim), ctx.shape)

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import unreduce

        return unreduce(grad * float(ctx.scale), ctx.shape, ctx.dims, ctx.keepdim)


class Prod(Function):
    def forward(ctx, a, dims, keepdim):
        ctx.save_for_backward(a)
        ctx.dims = dims
        ctx.keepdim = keepdim
        return array_module(a).prod(a, axis=dims, keepdims=keepdim)

    def backward(ctx, grad):
        (a,) = ctx.saved
        xp = array_module(a)
        if a.size == 0:
            return xp.zeros_like(a)
        dims = tuple(range(a.ndim)) if ctx.dims is None else ctx.dims
        g = _expand(grad, ctx.dims, ctx.keepdim) if ctx.dims is not None else grad.reshape((1,) * a.ndim)
        # Product of all the other elements, computed with exclusive cumulative products so that zeros
        # in the input give the right gradient (dividing the product by x would give 0/0).
        rest = [d for d in range(a.ndim) if d not in dims]
        order = rest + list(dims)
        moved = xp.transpose(a, order)
        lead = moved.shape[:len(rest)]
        flat = moved.reshape(lead + (-1,))
        ones = xp.ones(lead + (1,), dtype=a.dtype)
        left = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = xp.cumprod(xp.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = (left * right).reshape(moved.shape)
        inverse = sorted(range(len(order)), key=order.__getitem__)  # axis bookkeeping stays on the host
        others = xp.transpose(others, inverse)
        return g * others

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import keep_all, unreduce

        (a,) = ctx.saved
        ta = ctx.graph_input(0, a)
        if a.size and not array_module(a).all(a != 0):
            return unreduce(grad, a.shape, ctx.dims, ctx.keepdim) * _product_of_others(ta, ctx.dims)
        total = prod(ta, ctx.dims, keepdim=True) if ctx.dims is not None else keep_all(prod(ta), a.ndim)
        return unreduce(grad, a.shape, ctx.dims, ctx.keepdim) * total / ta


def _product_of_others(ta, dims):
    """For each element of the tensor ``ta``, the product of the other elements of its reduced group
    (``dims``; None: all), from exclusive cumulative products as ``Prod.backward`` does, on graph ops."""
    from .shape import cat, flip, permute, reshape

    a = ta.array
    dims = tuple(range(a.ndim)) if dims is None else dims
    rest = [d for d in range(a.ndim) if d not in dims]
    order = rest + list(dims)
    moved = permute(ta, order)
    lead = tuple(moved.shape[:len(rest)])
    flat = reshape(moved, lead + (-1,))
    ones = Tensor(np.ones(lead + (1,), dtype=a.dtype))
    left = cumprod(cat([ones, flat[..., :-1]], -1), -1)
    right = flip(cumprod(cat([ones, flip(flat, (-1,))[..., :-1]], -1), -1), (-1,))
    others = reshape(left * right, tuple(moved.shape))
    return permute(others, sorted(range(len(order)), key=order.__getitem__))


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``dim`` (an int, a tuple, or None for all); bool and integer inputs sum to int64."""
    x = ensure_tensor(input, "sum")
    dims = _reduced_dims(pick_dim(dim, axis, "sum"), x.ndim, "sum")
    if dtype is None and x.array.dtype.kind in "bui":
        dtype = np.int64
    return Sum.apply(x, dims, _keep(keepdim, keepdims), backend.to_dtype(dtype))


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    """Mean over ``dim``; integer inputs need an explicit floating ``dtype`` (as in PyTorch)."""
    x = ensure_tensor(input, "mean")
    if dtype is not None:
        x = x.to(dtype)
    if x.array.dtype.kind != "f":
        raise RuntimeError(f"mean(): input dtype must be floating point, got {x.array.dtype}; pass dtype=somanet.float32")
    dims = _reduced_dims(pick_dim(dim, axis, "mean"), x.ndim, "mean")
    return Mean.apply(x, dims, _keep(keepdim, keepdims))


def prod(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    x = ensure_tensor(input, "prod")
    if dtype is not None:
        x = x.to(dtype)
    elif x.array.dtype.kind in "bui":
        x = x.to(np.int64)  # as PyTorch (NumPy would give uint64 for unsigned inputs)
    dims = _reduced_dims(pick_dim(dim, axis, "prod"), x.ndim, "prod")
    return Prod.apply(x, dims, _keep(keepdim, keepdims))


# --------------------------------------------------------------------------- variance
class Var(Function):
    def forward(ctx, a, dims, keepdim, correction, sqrt):
        xp = array_module(a)
        m = xp.mean(a, axis=dims, keepdims=True)
        centered = a - m
        n = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        denom = builtins.max(n - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = xp.sum(centered * centered, axis=dims, keepdims=keepdim) / a.dtype.type(denom)
            out = xp.sqrt(var) if sqrt else var
        ctx.save_for_backward(centered, out)
        ctx.dims, ctx.keepdim, ctx.denom, ctx.sqrt = dims, keepdim, denom, sqrt
        return out.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        centered, out = ctx.saved
        xp = array_module(grad)
        g = _expand(grad, ctx.dims, ctx.keepdim)
        scale = centered.dtype.type(2.0 / ctx.denom) if ctx.denom else centered.dtype.type(np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.sqrt:
                # d std = d var / (2 std); where the std is 0 (a constant input) the centred values are 0
                # too and PyTorch gives a zero gradient, not 0/0. The mask has the reduced (small) shape.
                s = _expand(out, ctx.dims, ctx.keepdim)
                g = xp.where(s == 0, g.dtype.type(0), g / (2 * s))
            return g * (centered * scale)

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import keep_all, unreduce

        centered, out = ctx.saved
        dims = ctx.dims
        # centered = a - mean(a): its Jacobian removes the mean of the incoming gradient.
        c = ctx.graph_derived(centered, [ctx.graph_parent(0)],
                              lambda g, _: (g - mean(g, dims, keepdim=True) if dims is not None
                                         else g - keep_all(mean(g), g.ndim),))
        g = unreduce(grad, None, dims, ctx.keepdim, centered.ndim)
        scale = 2.0 / ctx.denom if ctx.denom else math.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.sqrt:
                from .elementwise import where

                o = unreduce(ctx.graph_output(out.reshape(grad.shape)), None, dims, ctx.keepdim, centered.ndim)
                g = where(Tensor(_expand(out, dims, ctx.keepdim) == 0), 0, g / (o * 2))
            return g * (c * scale)


def _correction(correction, unbiased, op):
    if unbiased is not None:
        if correction is not None:
            raise TypeError(f"{op}(): pass either correction= or unbiased=, not both")
        return 1 if unbiased else 0
    return 1 if correction is None else correction


def _float_only(x, op):
    if x.array.dtype.kind != "f":
        raise RuntimeError(f"{op}(): expected a floating point input (as PyTorch's std and var), got dtype "
                           f"{x.array.dtype}; convert it with .float() or .double()")
    return x


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=False):
    """Variance over ``dim`` with ``correction`` (1 = unbiased, Bessel's correction; 0 = population)."""
    x = _float_only(ensure_tensor(input, "var"), "var")
    if isinstance(unbiased, (int, tuple, list)) and not isinstance(unbiased, bool):
        dim, unbiased = unbiased, None  # var(x, 1) passes dim positionally
    dims = _reduced_dims(pick_dim(dim, axis, "var"), x.ndim, "var")
    return Var.apply(x, dims, _keep(keepdim, keepdims), _correction(correction, unbiased, "var"), False)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=False):
    """Standard deviation over ``dim`` with ``correction`` (default 1)."""
    x = _float_only(ensure_tensor(input, "std"), "std")
    if isinstance(unbiased, (int, tuple, list)) and not isinstance(unbiased, bool):
        dim, unbiased = unbiased, None
    dims = _reduced_dims(pick_dim(dim, axis, "std"), x.ndim, "std")
    return Var.apply(x, dims, _keep(keepdim, keepdims), _correction(correction, unbiased, "std"), True)


def var_mean(input, dim=None, *, correction=1, keepdim=False):
    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, *, correction=1, keepdim=False):
    return std(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


# --------------------------------------------------------------------------- max / min
class Extreme(Function):
    """amax/amin (and full max/min): ties share the gradient evenly, as in PyTorch."""

    def forward(ctx, a, dims, keepdim, largest, op=None):
        if a.size == 0:
            _empty_reduction(op or ("max" if largest else "min"), a.shape, dims)
        xp = array_module(a)
        out = (xp.max if largest else xp.min)(a, axis=dims, keepdims=keepdim)
        ctx.save_for_backward(a, out)
        ctx.dims, ctx.keepdim = dims, keepdim
        ctx.whole = op is None and dims is None  # max()/min() of everything
        return out

    def backward(ctx, grad):
        a, out = ctx.saved
        if ctx.whole and out != out:
            # A NaN maximum of max()/min(): PyTorch shares the gradient among the NaNs (amax gives NaN).
            mask = array_module(a).isnan(a)
        else:
            mask = a == _expand(out, ctx.dims, ctx.keepdim)
        count = array_module(grad).sum(mask, axis=ctx.dims, keepdims=True)
        return mask * (_expand(grad, ctx.dims, ctx.keepdim) / count.astype(grad.dtype))

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import unreduce

        a, out = ctx.saved
        mask = a == _expand(out, ctx.dims, ctx.keepdim)
        share = mask / array_module(a).sum(mask, axis=ctx.dims, keepdims=True).astype(grad.dtype)
        return unreduce(grad, None, ctx.dims, ctx.keepdim, a.ndim) * Tensor(share.astype(grad.dtype))


def _empty_reduction(op, shape, dims, full_error=RuntimeError):
    """Raise PyTorch's error for a max/min/argmax-like reduction of an empty input, unless no reduced
    dimension is empty (then the result is an empty tensor, and the caller goes on)."""
    if dims is None:
        raise full_error(f"{op}(): cannot reduce an empty tensor (shape {tuple(shape)}) over all its elements; "
                         f"specify a dim whose size is not 0")
    for d in dims:
        if shape[d] == 0:
            raise IndexError(f"{op}(): expected reduction dim {d} to have non-zero size (input shape {tuple(shape)})")


class ExtremeDim(Function):
    """max/min along one dim: the gradient goes to the returned index only."""

    def forward(ctx, a, dim, keepdim, index):
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        xp = array_module(a)
        vals = xp.take_along_axis(a, index, axis=dim)
        return vals if keepdim else xp.squeeze(vals, axis=dim)

    def backward(ctx, grad):
        (index,) = ctx.saved
        xp = array_module(grad)
        g = grad if ctx.keepdim else xp.expand_dims(grad, ctx.dim)
        out = xp.zeros(ctx.shape, dtype=grad.dtype)
        xp.put_along_axis(out, index, g, axis=ctx.dim)
        return out

    def grad_graph(ctx, grad):
        (index,) = ctx.saved
        return ctx.graph_linear((grad,), lambda v: ExtremeDim.apply(v, ctx.dim, ctx.keepdim, index))


def _extreme(name, largest):
    arg = "argmax" if largest else "argmin"

    def op(input, dim=None, keepdim=False, *, axis=None, keepdims=False, out=None):
        if isinstance(dim, Tensor):
            from .elementwise import maximum, minimum

            return (maximum if largest else minimum)(input, dim)
        x = ensure_tensor(input, name)
        d = pick_dim(dim, axis, name)
        keep = _keep(keepdim, keepdims)
        if d is None:
            return Extreme.apply(x, None, False, largest)
        d = normalize_dim(d, x.ndim, name)
        xp = array_module(x.array)
        if x.array.ndim == 0:
            return values_indices(x.clone() if hasattr(x, "clone") else x, Tensor(xp.zeros((), dtype=np.int64)))
        if x.array.shape[d] == 0:
            raise IndexError(f"{name}(): cannot reduce dimension {d} of size 0 (shape {tuple(x.shape)})")
        index = xp.expand_dims(getattr(xp, arg)(x.array, axis=d), d)
        values = ExtremeDim.apply(x, d, keep, index)
        idx = index if keep else xp.squeeze(index, axis=d)
        return values_indices(values, Tensor(idx.astype(np.int64)))

    op.__name__ = name
    op.__doc__ = (f"``{name}(x)``: the {'largest' if largest else 'smallest'} value; ``{name}(x, dim)``: "
                  f"(values, indices) along ``dim``; ``{name}(x, other)``: elementwise.")
    return op


max = _extreme("max", True)  # noqa: A001
min = _extreme("min", False)  # noqa: A001


def amax(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """Largest values over ``dim`` (int or tuple); ties share the gradient evenly."""
    x = ensure_tensor(input, "amax")
    dims = _reduced_dims(pick_dim(dim, axis, "amax"), x.ndim, "amax")
    return Extreme.apply(x, dims, _keep(keepdim, keepdims), True, "amax")


def amin(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    x = ensure_tensor(input, "amin")
    dims = _reduced_dims(pick_dim(dim, axis, "amin"), x.ndim, "amin")
    return Extreme.apply(x, dims, _keep(keepdim, keepdims), False, "amin")


def aminmax(input, *, dim=None, keepdim=False):
    return namedtuple("aminmax", ["min", "max"])(amin(input, dim, keepdim), amax(input, dim, keepdim))


class _Arg(Function):
    differentiable = False

    def forward(ctx, a, dim, keepdim, largest):
        xp = array_module(a)
        fn = xp.argmax if largest else xp.argmin
        if a.size == 0:
            _empty_reduction("argmax" if largest else "argmin", a.shape, None if dim is None else (dim,), IndexError)
        if a.dtype == np.bool_:
            raise RuntimeError(f"{'argmax' if largest else 'argmin'}(): bool inputs are not supported (as in "
                               f"PyTorch); convert with .long() first")
        if dim is None:
            out = xp.asarray(fn(a), dtype=np.int64)
            return out.reshape((1,) * a.ndim) if keepdim else out
        out = fn(a, axis=dim, keepdims=keepdim)
        return out.astype(np.int64, copy=False)


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """Index of the largest value (flattened when ``dim`` is None); int64, no gradient."""
    x = ensure_tensor(input, "argmax")
    d = pick_dim(dim, axis, "argmax")
    d = None if d is None else normalize_dim(d, x.ndim, "argmax")
    return _Arg.apply(x, d, _keep(keepdim, keepdims), True)


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    x = ensure_tensor(input, "argmin")
    d = pick_dim(dim, axis, "argmin")
    d = None if d is None else normalize_dim(d, x.ndim, "argmin")
    return _Arg.apply(x, d, _keep(keepdim, keepdims), False)


class _Bool(Function):
    differentiable = False

    def forward(ctx, a, dims, keepdim, fn):
        # ``fn`` is a reduction's name ("all", "any"), so it runs in the input's own array library.
        return getattr(array_module(a), fn)(a, axis=dims, keepdims=keepdim)


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    x = ensure_tensor(input, "all")
    return _Bool.apply(x, normalize_dims(pick_dim(dim, axis, "all"), x.ndim, "all"), _keep(keepdim, keepdims), "all")


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    x = ensure_tensor(input, "any")
    return _Bool.apply(x, normalize_dims(pick_dim(dim, axis, "any"), x.ndim, "any"), _keep(keepdim, keepdims), "any")


class _CountNonzero(Function):
    differentiable = False

    def forward(ctx, a, dims):
        xp = array_module(a)
        return xp.asarray(xp.count_nonzero(a, axis=dims), dtype=np.int64)


def count_nonzero(input, dim=None):
    x = ensure_tensor(input, "count_nonzero")
    return _CountNonzero.apply(x, _reduced_dims(dim, x.ndim, "count_nonzero"))


# --------------------------------------------------------------------------- softmax family
class LogSumExp(Function):
    def forward(ctx, a, dims, keepdim):
        xp = array_module(a)
        if a.size == 0:  # log(0) = -inf over empty dims, as in PyTorch
            with np.errstate(divide="ignore"):
                out = xp.log(xp.sum(xp.exp(a), axis=dims, keepdims=True))
            ctx.save_for_backward(a, out)
            ctx.dims = dims
            return out if keepdim else (xp.squeeze(out, axis=dims) if dims is not None else out.reshape(()))
        m = xp.max(a, axis=dims, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0).astype(a.dtype, copy=False)
        with np.errstate(divide="ignore"):
            out = xp.log(xp.sum(xp.exp(a - m), axis=dims, keepdims=True)) + m
        ctx.save_for_backward(a, out)
        ctx.dims = dims
        return out if keepdim else xp.squeeze(out, axis=dims)

    def backward(ctx, grad):
        a, out = ctx.saved
        xp = array_module(grad)
        ctx_keep = grad.ndim == a.ndim
        g = grad if ctx_keep or ctx.dims is None else xp.expand_dims(grad, ctx.dims)
        with np.errstate(invalid="ignore"):
            return g * xp.exp(a - out)

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import unreduce
        from .elementwise import exp

        a, out = ctx.saved
        keep = grad.ndim == a.ndim
        o = ctx.graph_output(out if keep else out.reshape(grad.shape))
        if not keep:
            o, grad = unreduce(o, None, ctx.dims, False, a.ndim), unreduce(grad, None, ctx.dims, False, a.ndim)
        with np.errstate(invalid="ignore"):
            return grad * exp(ctx.graph_input(0, a) - o)


def sums_along(a, dim):
    """``a.sum(axis=dim, keepdims=True)``, run by the kernel of op ``"row_sums"`` that its chooser picks
    (``kernels/reductions.py``); the reference is ``xp.sum``."""
    from ..kernels import _select

    name = _select.choose("row_sums", a, dim)
    if name == "reference":
        return array_module(a).sum(a, axis=dim, keepdims=True)
    return _select.implementation("row_sums", name)(a, dim)


def _empty_softmax(ctx, a, dim):
    """Softmax and log-softmax of an input with no elements: an empty result (NumPy's max refuses it)."""
    if a.size:
        raise
    out = a.copy()
    ctx.save_for_backward(out)
    ctx.dim = dim
    return out


def _rows_kernel(op, a, dim):
    """The ``softmax``/``log_softmax`` kernel (``kernels/softmax.py``) for ``a`` along ``dim`` and its
    ``(rows, d)`` view, or ``(None, None)`` for the code below."""
    if dim != a.ndim - 1 or not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.dtype != np.float32:
        return None, None
    from ..kernels import _select

    x2 = a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a
    return _select.implementation(op, _select.choose(op, x2)), x2


class Softmax(Function):
    def forward(ctx, a, dim):
        xp = array_module(a)
        fast, x2 = _rows_kernel("softmax", a, dim)
        ctx.fast = fast
        if fast is not None:
            ctx.save_for_backward(fast.forward(x2).reshape(a.shape))
            ctx.dim = dim
            return ctx.saved[0]
        try:
            e = a - xp.max(a, axis=dim, keepdims=True)
        except ValueError:
            return _empty_softmax(ctx, a, dim)
        xp.exp(e, out=e)
        e *= 1 / sums_along(e, dim)
        ctx.save_for_backward(e)
        ctx.dim = dim
        return e

    def backward(ctx, grad):
        (s,) = ctx.saved
        if ctx.fast is not None:
            return ctx.fast.backward(grad.reshape(-1, s.shape[-1]), s.reshape(-1, s.shape[-1])).reshape(s.shape)
        # s * (g - <g, s>) with the row dot product taken without a full-size temporary.
        dot = _rowdot(grad, s, ctx.dim)
        out = grad - dot
        out *= s
        return out

    def grad_graph(ctx, grad):
        (s,) = ctx.saved
        s = ctx.graph_output(s)
        return (grad - sum(grad * s, ctx.dim, keepdim=True)) * s


def _rowdot(a, b, dim):
    """``sum(a * b, dim, keepdims=True)`` without materialising ``a * b`` when dim is the last axis."""
    xp = array_module(a)
    if dim == a.ndim - 1:
        return xp.einsum("...i,...i->...", a, b)[..., None]
    return xp.sum(a * b, axis=dim, keepdims=True)


class LogSoftmax(Function):
    def forward(ctx, a, dim):
        xp = array_module(a)
        fast, x2 = _rows_kernel("log_softmax", a, dim)
        ctx.fast = fast
        if fast is not None:
            ctx.save_for_backward(fast.forward(x2).reshape(a.shape))
            ctx.dim = dim
            return ctx.saved[0]
        try:
            shifted = a - xp.max(a, axis=dim, keepdims=True)
        except ValueError:
            return _empty_softmax(ctx, a, dim)
        shifted -= xp.log(sums_along(xp.exp(shifted), dim))
        ctx.save_for_backward(shifted)
        ctx.dim = dim
        return shifted

    def backward(ctx, grad):
        (out,) = ctx.saved
        if ctx.fast is not None:
            d = out.shape[-1]
            return ctx.fast.backward(grad.reshape(-1, d), out.reshape(-1, d)).reshape(out.shape)
        xp = array_module(grad)
        e = xp.exp(out)
        e *= xp.sum(grad, axis=ctx.dim, keepdims=True)
        return xp.subtract(grad, e, out=e)

    def grad_graph(ctx, grad):
        from .elementwise import exp

        (out,) = ctx.saved
        return grad - exp(ctx.graph_output(out)) * sum(grad, ctx.dim, keepdim=True)


def _softmax_dim(dim, ndim, op):
    if dim is None:
        # PyTorch's legacy implicit choice.
        dim = 0 if ndim in (0, 1, 3) else 1
    return normalize_dim(dim, ndim, op)


def _float_input(input, dtype, op):
    x = ensure_tensor(input, op)
    if dtype is not None:
        x = x.to(dtype)
    if x.array.dtype.kind != "f":
        raise RuntimeError(f"{op}(): expected a floating point input, got dtype {x.array.dtype}")
    return x


def logsumexp(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``dim``, computed stably (finite for inputs of +-1e4). Integer and bool
    inputs are computed in the default float dtype, as in PyTorch."""
    x = ensure_tensor(input, "logsumexp")
    if x.array.dtype.kind in "biu":
        x = x.to(backend.default_float)
    dims = _reduced_dims(pick_dim(dim, axis, "logsumexp"), x.ndim, "logsumexp")
    return LogSumExp.apply(x, dims, _keep(keepdim, keepdims))


def softmax(input, dim=None, dtype=None, *, axis=None):
    """``exp(x) / sum(exp(x))`` along ``dim``, stable for large inputs."""
    x = _float_input(input, dtype, "softmax")
    d = _softmax_dim(pick_dim(dim, axis, "softmax"), x.ndim, "softmax")
    if x.array.ndim == 0:
        return one_element(softmax, x, 0)
    return Softmax.apply(x, d)


def log_softmax(input, dim=None, dtype=None, *, axis=None):
    """``x - logsumexp(x)`` along ``dim``, stable for large inputs."""
    x = _float_input(input, dtype, "log_softmax")
    d = _softmax_dim(pick_dim(dim, axis, "log_softmax"), x.ndim, "log_softmax")
    if x.array.ndim == 0:
        return one_element(log_softmax, x, 0)
    return LogSoftmax.apply(x, d)


def softmin(input, dim=None, dtype=None):
    from .elementwise import neg

    return softmax(neg(_float_input(input, dtype, "softmin")), dim)


# --------------------------------------------------------------------------- cumulative
class CumSum(Function):
    def forward(ctx, a, dim):
        ctx.dim = dim
        return array_module(a).cumsum(a, axis=dim)

    def backward(ctx, grad):
        xp = array_module(grad)
        d = ctx.dim
        return xp.flip(xp.cumsum(xp.flip(grad, d), axis=d), d)

    def grad_graph(ctx, grad):
        from .shape import flip

        d = ctx.dim
        return flip(cumsum(flip(grad, d), d), d)


class CumProd(Function):
    def forward(ctx, a, dim):
        out = array_module(a).cumprod(a, axis=dim)
        ctx.save_for_backward(a, out)
        ctx.dim = dim
        return out

    def backward(ctx, grad):
        a, out = ctx.saved
        xp = array_module(grad)
        d = ctx.dim
        if a.shape[d] <= 1:  # the product of one element is that element (its gradient is 1, even at inf)
            return grad
        if xp.all(a != 0):
            rev = xp.flip(xp.cumsum(xp.flip(grad * out, d), axis=d), d)
            return rev / a
        # With zeros, sum_j>=i g_j * prod_{k<=j, k!=i} a_k, computed position by position along dim.
        moved = xp.moveaxis(a, d, -1)
        gmoved = xp.moveaxis(grad, d, -1)
        n = moved.shape[-1]
        result = xp.zeros_like(moved)
        for i in range(n):
            others = moved.copy()
            others[..., i] = 1
            prods = xp.cumprod(others, axis=-1)
            result[..., i] = xp.sum((gmoved * prods)[..., i:], axis=-1)
        return xp.moveaxis(result, -1, d)

    def grad_graph(ctx, grad):
        a, out = ctx.saved
        from .elementwise import where
        from .shape import flip, movedim, stack

        d = ctx.dim
        if a.shape[d] > 1 and not array_module(a).all(a != 0):
            # As in backward: sum_{j >= i} g_j prod_{k <= j, k != i} a_k, one position i at a time.
            moved = movedim(ctx.graph_input(0, a), d, -1)
            gmoved = movedim(grad, d, -1)
            n = moved.shape[-1]
            parts = []
            for i in range(n):
                at_i = np.zeros(moved.shape, bool)
                at_i[..., i] = True
                prods = cumprod(where(Tensor(at_i), 1.0, moved), -1)
                parts.append(sum((gmoved * prods)[..., i:], -1))
            return movedim(stack(parts, -1), -1, d)
        if a.shape[d] <= 1:
            return grad
        return flip(cumsum(flip(grad * ctx.graph_output(out), d), d), d) / ctx.graph_input(0, a)


def _cumulative_input(input, dim, dtype, op):
    """The input of cumsum/cumprod in its accumulation dtype (bool and integers accumulate in int64, as in
    PyTorch), and ``dim`` normalised."""
    x = ensure_tensor(input, op)
    if dtype is not None:
        x = x.to(dtype)
    elif x.array.dtype.kind in "bui":
        x = x.to(np.int64)
    return x, normalize_dim(dim, x.ndim, op)


def cumsum(input, dim, *, dtype=None):
    """Running sums along ``dim``; a 0-d input gives itself (0-d)."""
    x, d = _cumulative_input(input, dim, dtype, "cumsum")
    if x.array.ndim == 0:
        return one_element(cumsum, x, 0)
    return CumSum.apply(x, d)


def cumprod(input, dim, *, dtype=None):
    """Running products along ``dim``; a 0-d input gives itself (0-d)."""
    x, d = _cumulative_input(input, dim, dtype, "cumprod")
    if x.array.ndim == 0:
        return one_element(cumprod, x, 0)
    return CumProd.apply(x, d)


# --------------------------------------------------------------------------- norms
class Norm(Function):
    def forward(ctx, a, p, dims, keepdim):
        xp = array_module(a)
        ax = xp.abs(a)
        if p == np.inf:
            out = xp.max(ax, axis=dims, keepdims=True)
        elif p == -np.inf:
            out = xp.min(ax, axis=dims, keepdims=True)
        elif p == 0:
            out = xp.sum(ax != 0, axis=dims, keepdims=True).astype(a.dtype)
        elif p == 1:
            out = xp.sum(ax, axis=dims, keepdims=True)
        elif p == 2:
            out = xp.sqrt(xp.sum(a * a, axis=dims, keepdims=True))
        else:
            out = xp.sum(ax ** p, axis=dims, keepdims=True) ** (1.0 / p)
        out = out.astype(a.dtype, copy=False)
        ctx.save_for_backward(a, out)
        ctx.p, ctx.dims = p, dims
        return out if keepdim else (xp.squeeze(out, axis=dims) if dims is not None else out.reshape(()))

    def backward(ctx, grad):
        a, out = ctx.saved
        p = ctx.p
        xp = array_module(grad)
        g = grad.reshape(out.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                res = xp.where(out == 0, 0, g * a / out)
            elif p == 1:
                res = g * xp.sign(a)
            elif p == 0:
                res = xp.zeros_like(a)
            elif p in (np.inf, -np.inf):
                mask = xp.abs(a) == out
                res = g * xp.sign(a) * mask / xp.sum(mask, axis=ctx.dims, keepdims=True)
            else:
                res = xp.where(out == 0, 0, g * xp.sign(a) * xp.abs(a) ** (p - 1) / out ** (p - 1))
        return res.astype(a.dtype, copy=False)

    def grad_graph(ctx, grad):
        from .elementwise import abs as abs_, where

        a, out = ctx.saved
        p = ctx.p
        xp = array_module(a)
        g = grad.reshape(out.shape)
        ta = ctx.graph_input(0, a)
        o = ctx.graph_output(out.reshape(grad.shape)).reshape(out.shape)
        sign = Tensor(xp.sign(a))
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                return where(Tensor(out == 0), 0, g * ta / o)
            if p == 1:
                return g * sign
            if p == 0:
                return g * Tensor(xp.zeros_like(a))
            if p in (np.inf, -np.inf):
                mask = xp.abs(a) == out
                share = (xp.sign(a) * mask / xp.sum(mask, axis=ctx.dims, keepdims=True)).astype(a.dtype)
                return g * Tensor(share)
            return where(Tensor(out == 0), 0, g * sign * abs_(ta) ** (p - 1) / o ** (p - 1))


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over ``dim`` (all elements when None): p = 'fro'/2, 1, inf, -inf, 0 or any float."""
    x = _float_input(input, dtype, "norm")
    if p in ("fro", None):
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm(): p={p!r} is not supported; use a number, 'fro' or inf")
    dims = _reduced_dims(dim, x.ndim, "norm")
    return Norm.apply(x, float(p), dims, keepdim)


def _tensor_max(self, dim=None, keepdim=False, **kw):
    return max(self, dim, keepdim, **kw)


def _tensor_min(self, dim=None, keepdim=False, **kw):
    return min(self, dim, keepdim, **kw)


install(
    sum=sum, mean=mean, prod=prod, var=var, std=std, max=_tensor_max, min=_tensor_min, amax=amax, amin=amin,
    argmax=argmax, argmin=argmin, logsumexp=logsumexp, softmax=softmax, log_softmax=log_softmax,
    cumsum=cumsum, cumprod=cumprod, norm=norm, all=all, any=any, count_nonzero=count_nonzero,
)
