"""Order statistics and counting: medians, modes, k-th values, quantiles, running extremes, NaN-ignoring
sums and means, histograms, bucketing and sorted search, differences and consecutive runs.

Values that select an element (median along a dim, mode, kthvalue, cummax) are gathered from the input,
so the gradient goes to the element the index names, as in PyTorch; quantiles interpolate between
gathered values; the whole-tensor median shares its gradient among the elements equal to it.
"""
import builtins
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from . import elementwise as E
from . import reduce as R
from . import shape as S
from ._util import ensure_tensor, install, normalize_dim
from .index import gather, sort

__all__ = [
    "nansum", "nanmean", "median", "nanmedian", "mode", "kthvalue", "quantile", "nanquantile", "cummax", "cummin",
    "logcumsumexp", "histc", "histogram", "bincount", "bucketize", "searchsorted", "diff", "unique_consecutive",
    "dist", "msort",
]

_median = namedtuple("median", ["values", "indices"])
_nanmedian = namedtuple("nanmedian", ["values", "indices"])
_mode = namedtuple("mode", ["values", "indices"])
_kthvalue = namedtuple("kthvalue", ["values", "indices"])
_cummax = namedtuple("cummax", ["values", "indices"])
_cummin = namedtuple("cummin", ["values", "indices"])
_histogram = namedtuple("histogram", ["hist", "bin_edges"])


def _int64(arr):
    return _wrap(array_module(arr).asarray(arr, dtype=np.int64), False, None, 0)


# --------------------------------------------------------------------------- NaN-ignoring reductions
class _ZeroNaN(Function):
    """NaN replaced by 0; the gradient is multiplied by 0 there (so an infinite gradient gives NaN, as in
    PyTorch)."""

    def forward(ctx, a):
        xp = array_module(a)
        keep = ~xp.isnan(a)
        ctx.save_for_backward(keep)
        return xp.where(keep, a, 0).astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (keep,) = ctx.saved
        with np.errstate(invalid="ignore"):
            return grad * keep

    def grad_graph(ctx, grad):
        with np.errstate(invalid="ignore"):
            return grad * Tensor(ctx.saved[0].astype(grad.dtype))


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """The sum with NaN counted as 0; differentiable (NaN positions get no gradient)."""
    x = ensure_tensor(input)
    if x.array.dtype.kind == "f":
        x = _ZeroNaN.apply(x)
    return R.sum(x, dim, keepdim, dtype=dtype)


def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean of the non-NaN elements (NaN where there are none); differentiable."""
    x = ensure_tensor(input)
    if x.array.dtype.kind != "f":
        raise RuntimeError(f"nanmean(): expected a floating point tensor, got {x.array.dtype}")
    if dtype is not None:
        x = x.to(dtype)
    count = R.sum(E.logical_not(E.isnan(x)), dim, keepdim)
    with np.errstate(invalid="ignore", divide="ignore"):
        return E.div(nansum(x, dim, keepdim), count.to(x.dtype))


# --------------------------------------------------------------------------- selections
class _EvenlyShared(Function):
    """A value taken from the input; its gradient is shared among the elements equal to it."""

    def forward(ctx, a, value):
        ctx.save_for_backward(a, value)
        return value

    def backward(ctx, grad):
        a, value = ctx.saved
        xp = array_module(grad)
        mask = a == value
        n = mask.sum()
        return xp.where(mask, grad / builtins.max(builtins.int(n), 1), 0).astype(grad.dtype)

    def grad_graph(ctx, grad):
        a, value = ctx.saved
        mask = a == value
        return E.where(Tensor(mask), grad * (1.0 / builtins.max(builtins.int(mask.sum()), 1)), 0.0)


def _moved_rows(a, d):
    """``a`` with dim ``d`` last."""
    return array_module(a).moveaxis(a, d, -1)


def _select_along(x, d, idx_last, keepdim):
    """Gather ``x`` at ``idx_last`` (indices with dim ``d`` removed) along ``d``: (values, int64 indices)."""
    xp = array_module(x.array)
    idx = xp.expand_dims(idx_last.astype(np.int64), d)
    values = gather(x, d, Tensor(idx))
    if not keepdim:
        values = S.squeeze(values, d)
        idx = xp.squeeze(idx, d)
    return values, _int64(idx)


def _median_all(x, ignore_nan):
    a = x.array.reshape(-1)
    xp = array_module(a)
    if a.size == 0:
        return _wrap(xp.asarray(np.nan, a.dtype), False, None, 0) if a.dtype.kind == "f" else x.reshape(())
    nan = xp.isnan(a) if a.dtype.kind == "f" else xp.zeros(a.shape, bool)
    if nan.any() and not ignore_nan:
        value = xp.asarray(np.nan, a.dtype)
    else:
        valid = a[~nan]
        if valid.size == 0:
            value = xp.asarray(np.nan, a.dtype)
        else:
            value = xp.partition(valid, (valid.size - 1) // 2)[(valid.size - 1) // 2]
    return _EvenlyShared.apply(x, xp.asarray(value, a.dtype))


def _median_dim(x, dim, keepdim, ignore_nan):
    a = x.array
    if a.ndim == 0:
        return x, _int64(np.zeros((), np.int64))
    d = normalize_dim(dim, a.ndim, "median")
    xp = array_module(a)
    m = _moved_rows(a, d)
    order = xp.argsort(m, axis=-1, kind="stable")  # NaN sorts last
    n = m.shape[-1]
    if n == 0:
        raise IndexError(f"median(): cannot take the median of an empty dimension {d}")
    if a.dtype.kind == "f":
        nan = xp.isnan(m)
        count = n - nan.sum(-1)
    else:
        nan = None
        count = xp.full(m.shape[:-1], n)
    if ignore_nan:
        k = xp.maximum((count - 1) // 2, 0)
    else:
        k = xp.full(m.shape[:-1], (n - 1) // 2)
    pick = xp.take_along_axis(order, k[..., None], -1)[..., 0]
    if nan is not None and not ignore_nan:
        has = nan.any(-1)
        pick = xp.where(has, xp.argmax(nan, -1), pick)
    return _select_along(x, d, pick, keepdim)


def median(input, dim=None, keepdim=False):
    """The lower median of all elements (NaN if any is NaN), or ``(values, indices)`` along ``dim``;
    differentiable."""
    x = ensure_tensor(input)
    if dim is None:
        return _median_all(x, False)
    return _median(*_median_dim(x, dim, keepdim, False))


def nanmedian(input, dim=None, keepdim=False):
    """``median`` ignoring NaN (NaN only where every element is NaN); differentiable."""
    x = ensure_tensor(input)
    if dim is None:
        return _median_all(x, True)
    return _nanmedian(*_median_dim(x, dim, keepdim, True))


def kthvalue(input, k, dim=-1, keepdim=False):
    """``(values, indices)`` of the ``k``-th smallest element (1-based) along ``dim``; differentiable."""
    x = ensure_tensor(input)
    a = x.array
    if a.ndim == 0:
        if k != 1:
            raise RuntimeError(f"kthvalue(): k ({k}) is out of range for a 0-d tensor")
        return _kthvalue(x, _int64(np.zeros((), np.int64)))
    d = normalize_dim(dim, a.ndim, "kthvalue")
    n = a.shape[d]
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): k ({k}) is out of range for dimension {d} of size {n}")
    xp = array_module(a)
    order = xp.argsort(_moved_rows(a, d), axis=-1, kind="stable")
    return _kthvalue(*_select_along(x, d, order[..., k - 1], keepdim))


def mode(input, dim=-1, keepdim=False):
    """``(values, indices)``: the most frequent value along ``dim`` (the smallest among equally frequent
    ones) and the last position where it occurs; differentiable."""
    x = ensure_tensor(input)
    a = x.array
    if a.ndim == 0:
        return _mode(x, _int64(np.zeros((), np.int64)))
    d = normalize_dim(dim, a.ndim, "mode")
    xp = array_module(a)
    m = _moved_rows(a, d)
    lead, n = m.shape[:-1], m.shape[-1]
    rows = m.reshape(-1, n)
    r = rows.shape[0]
    s = xp.sort(rows, axis=-1)
    new = xp.ones(s.shape, bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    run = xp.cumsum(new, axis=-1) - 1
    counts = xp.bincount((xp.arange(r)[:, None] * n + run).reshape(-1), minlength=r * n).reshape(r, n)
    best = xp.argmax(counts, axis=-1)
    first = xp.argmax(run == best[:, None], axis=-1)
    value = s[xp.arange(r), first]
    last = n - 1 - xp.argmax((rows == value[:, None])[:, ::-1], axis=-1)
    return _mode(*_select_along(x, d, last.reshape(lead), keepdim))


def msort(input):
    """``input`` sorted along dim 0 (the values of ``sort(input, 0)``)."""
    return sort(input, 0).values


# --------------------------------------------------------------------------- quantiles
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(input, q, dim, keepdim, interpolation, ignore_nan, op):
    x = ensure_tensor(input)
    if x.array.dtype.kind != "f":
        raise RuntimeError(f"{op}(): input must be a float tensor, got {x.array.dtype}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{op}(): interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    scalar_q = not isinstance(q, Tensor)
    qa = array_module(q.array).asarray(q.array, np.float64) if isinstance(q, Tensor) else np.asarray(q, np.float64)
    if qa.ndim > 1:
        raise RuntimeError(f"{op}(): q must be a scalar or a 1-d tensor, got {qa.ndim} dimensions")
    if ((qa < 0) | (qa > 1)).any():
        raise RuntimeError(f"{op}(): q values must be in the range [0, 1]")
    if dim is None:
        src = S.reshape(x, (-1,))
        d = 0
    else:
        d = normalize_dim(dim, x.array.ndim, op)
        src = x if x.array.ndim else S.reshape(x, (1,))
    if src.array.shape[d] == 0:
        raise IndexError(f"{op}(): cannot compute quantiles of an empty dimension")
    xs = S.movedim(sort(src, d).values, d, -1)  # NaN last
    a = xs.array
    xp = array_module(a)
    n = a.shape[-1]
    nan = xp.isnan(a)
    count = (n - nan.sum(-1)) if ignore_nan else xp.full(a.shape[:-1], n)
    qv = xp.asarray(qa.reshape(-1))  # a Python q goes to the input's device
    nq = qv.size
    pos = qv.reshape((nq,) + (1,) * (a.ndim - 1)) * (xp.maximum(count, 1) - 1)  # (nq, *lead)
    lo = xp.floor(pos)
    hi = xp.ceil(pos)
    if interpolation == "nearest":
        lo = hi = xp.round(pos)
    elif interpolation == "lower":
        hi = lo
    elif interpolation == "higher":
        lo = hi
    big = S.broadcast_to(S.unsqueeze(xs, 0), (nq,) + a.shape)
    v_lo = S.squeeze(gather(big, -1, Tensor(lo.astype(np.int64)[..., None])), -1)
    v_hi = S.squeeze(gather(big, -1, Tensor(hi.astype(np.int64)[..., None])), -1)
    if interpolation == "linear":
        w = (pos - lo).astype(a.dtype)
        out = E.add(v_lo, E.mul(E.sub(v_hi, v_lo), Tensor(w)))
    elif interpolation == "midpoint":
        out = E.mul(E.add(v_lo, v_hi), 0.5)
    else:
        out = v_lo
    bad = (count == 0) if ignore_nan else nan.any(-1)
    if bad.any():
        out = E.where(Tensor(xp.broadcast_to(bad, out.array.shape)), Tensor(xp.asarray(np.nan, a.dtype)), out)
    if keepdim:
        if dim is None:
            out = S.reshape(out, (nq,) + (1,) * x.array.ndim)
        else:
            out = S.unsqueeze(out, d + 1)
    if scalar_q or qa.ndim == 0:
        out = S.squeeze(out, 0)
    return out


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The ``q``-quantiles (a number or a 1-d tensor in [0, 1]) of all elements or along ``dim``, with
    ``interpolation`` 'linear', 'lower', 'higher', 'midpoint' or 'nearest'; NaN where a row holds a NaN.
    A tensor ``q`` puts its values in a new first dim. Differentiable."""
    return _quantile(input, q, dim, keepdim, interpolation, False, "quantile")


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """``quantile`` ignoring NaN (NaN only where a row is all NaN); differentiable."""
    return _quantile(input, q, dim, keepdim, interpolation, True, "nanquantile")


# --------------------------------------------------------------------------- running values
class _Scatter(Function):
    """Values gathered at ``index`` along the last dim; the gradient is scattered back with repeats added."""

    def forward(ctx, a, index):
        xp = array_module(a)
        ctx.save_for_backward(index)
        ctx.shape = a.shape
        return xp.take_along_axis(a, index, -1)

    def backward(ctx, grad):
        (index,) = ctx.saved
        xp = array_module(grad)
        n = ctx.shape[-1]
        rows = xp.arange(index.size // builtins.max(n, 1)).reshape(index.shape[:-1] + (1,)) * n
        out = xp.zeros(int(np.prod(ctx.shape)), grad.dtype)
        xp.add.at(out, (rows + index).reshape(-1), grad.reshape(-1))
        return out.reshape(ctx.shape)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v, *_: _Scatter.apply(v, ctx.saved[0]))


def _cumulative_extreme(input, dim, largest, result):
    x = ensure_tensor(input)
    a = x.array
    if a.ndim == 0:
        return result(x.clone(), _int64(np.zeros((), np.int64)))
    d = normalize_dim(dim, a.ndim, "cummax" if largest else "cummin")
    xp = array_module(a)
    m = _moved_rows(a, d)
    n = m.shape[-1]
    if n == 0:
        return result(x.clone(), _int64(np.zeros(a.shape, np.int64)))
    acc = (xp.maximum if largest else xp.minimum).accumulate(m, axis=-1)
    update = m == acc
    if a.dtype.kind == "f":  # a NaN takes over, and each later NaN moves the index on (as in PyTorch)
        update |= xp.isnan(m)
    idx = xp.maximum.accumulate(xp.where(update, xp.arange(n), 0), axis=-1)
    moved = S.movedim(x, d, -1)
    values = _Scatter.apply(moved, idx)
    return result(S.movedim(values, -1, d), _int64(xp.moveaxis(idx, -1, d)))


def cummax(input, dim):
    """Running maxima along ``dim`` and where each was found (the latest position on ties); the values are
    differentiable."""
    return _cumulative_extreme(input, dim, True, _cummax)


def cummin(input, dim):
    """Running minima along ``dim`` and where each was found (the latest position on ties); the values are
    differentiable."""
    return _cumulative_extreme(input, dim, False, _cummin)


def _reverse_logcumsumexp(v, xp):
    """``log(sum_{j >= i} exp(v_j))`` along the last dim."""
    return xp.flip(xp.logaddexp.accumulate(xp.flip(v, -1), axis=-1), -1)


class LogCumSumExp(Function):
    def forward(ctx, a, dim):
        xp = array_module(a)
        out = xp.logaddexp.accumulate(a, axis=dim)
        ctx.save_for_backward(a, out)
        ctx.dim = dim
        return out

    def backward(ctx, grad):
        a, out = ctx.saved
        xp = array_module(grad)
        d = ctx.dim
        # d out_i / d a_j = exp(a_j - out_i) for j <= i: sum_{i >= j} g_i exp(a_j - out_i), with the positive
        # and negative parts of g accumulated in log space.
        am, om, gm = (xp.moveaxis(t, d, -1) for t in (a, out, grad))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pos = _reverse_logcumsumexp(xp.log(xp.where(gm > 0, gm, 0)) - om, xp)
            neg = _reverse_logcumsumexp(xp.log(xp.where(gm < 0, -gm, 0)) - om, xp)
            g = xp.exp(am + pos) - xp.exp(am + neg)
        g = xp.where(xp.isnan(g) & ~xp.isnan(am), 0, g)
        return xp.moveaxis(g, -1, d).astype(grad.dtype, copy=False)

    def grad_graph(ctx, grad):
        # exp(a_j - c) * sum_{i >= j} g_i exp(c - out_i), shifted by the largest finite result c of each row.
        a, out = ctx.saved
        d = ctx.dim
        with np.errstate(invalid="ignore"):
            c = np.nan_to_num(np.max(np.where(np.isfinite(out), out, -np.inf), axis=d, keepdims=True),
                              neginf=0.0).astype(out.dtype)
        c = Tensor(c)
        tail = S.flip(R.cumsum(S.flip(grad * E.exp(c - ctx.graph_output(out)), (d,)), d), (d,))
        return E.exp(ctx.graph_input(0, a) - c) * tail


def logcumsumexp(input, dim):
    """``log(cumsum(exp(input)))`` along ``dim`` without overflow or underflow; differentiable."""
    x = ensure_tensor(input)
    if x.array.dtype.kind != "f":
        x = x.to(backend.default_float)
    if x.array.ndim == 0:
        return x.clone()
    return LogCumSumExp.apply(x, normalize_dim(dim, x.array.ndim, "logcumsumexp"))


# --------------------------------------------------------------------------- counting
def histc(input, bins=100, min=0, max=0):  # noqa: A002
    """Counts of the elements in ``bins`` equal-width bins over ``[min, max]`` (the data's range when they
    are equal); elements outside are ignored. A float tensor of the input's dtype, no gradient."""
    a = ensure_tensor(input).array
    if a.dtype.kind != "f":
        raise RuntimeError(f"histc(): expected a floating point tensor, got {a.dtype}")
    xp = array_module(a)
    lo, hi = builtins.float(min), builtins.float(max)
    if lo == hi and a.size:
        lo, hi = builtins.float(xp.min(a)), builtins.float(xp.max(a))
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise RuntimeError(f"histc(): max ({hi}) must be larger than min ({lo})")
    counts, _ = xp.histogram(a[~xp.isnan(a)], bins=builtins.int(bins), range=(lo, hi))
    return _wrap(counts.astype(a.dtype), False, None, 0)


def histogram(input, bins, *, range=None, weight=None, density=False):  # noqa: A002
    """``(hist, bin_edges)``: the (optionally weighted or normalised) histogram of ``input`` over ``bins``
    (a count, or a 1-d tensor of edges) and its edges, both of the input's dtype."""
    a = ensure_tensor(input).array
    xp = array_module(a)
    b = bins.array if isinstance(bins, Tensor) else builtins.int(bins)
    w = None if weight is None else ensure_tensor(weight).array
    hist, edges = xp.histogram(a, bins=b, range=range, weights=w, density=density)
    return _histogram(_wrap(hist.astype(a.dtype), False, None, 0), _wrap(edges.astype(a.dtype), False, None, 0))


def bincount(input, weights=None, minlength=0):
    """How often each value occurs in a 1-d tensor of non-negative integers (int64), or the sums of
    ``weights`` per value (float32 weights stay float32, others give float64)."""
    a = ensure_tensor(input).array
    if a.ndim != 1 or a.dtype.kind not in "iub":
        raise RuntimeError(f"bincount(): expected a 1-d integer tensor, got shape {tuple(a.shape)} and dtype {a.dtype}")
    xp = array_module(a)
    if a.size and xp.min(a) < 0:
        raise RuntimeError("bincount(): the input must hold non-negative values")
    if weights is None:
        return _int64(xp.bincount(a, minlength=minlength))
    w = ensure_tensor(weights).array
    out = xp.bincount(a, weights=w, minlength=minlength)
    return _wrap(out.astype(w.dtype if w.dtype in (np.float32, np.float64) else np.float64), False, None, 0)


def _search(sequence, values, right, out_int32, sorter=None):
    xp = array_module(sequence)
    side = "right" if right else "left"
    dtype = np.int32 if out_int32 else np.int64
    if sequence.ndim <= 1:
        return xp.searchsorted(sequence, values, side=side, sorter=sorter).astype(dtype)
    if sequence.shape[:-1] != values.shape[:-1]:
        raise RuntimeError(f"searchsorted(): the leading dims of the sorted sequence {tuple(sequence.shape)} and of "
                           f"the values {tuple(values.shape)} must match")
    seq = sequence.reshape(-1, sequence.shape[-1])
    vals = values.reshape(-1, values.shape[-1])
    srt = None if sorter is None else sorter.reshape(seq.shape)
    out = xp.empty(vals.shape, dtype)
    for i in builtins.range(seq.shape[0]):
        out[i] = xp.searchsorted(seq[i], vals[i], side=side, sorter=None if srt is None else srt[i])
    return out.reshape(values.shape)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The index of the bucket of each element among sorted 1-d ``boundaries``: ``boundaries[i-1] < x <=
    boundaries[i]`` (``<`` on the right with ``right=True``). int64 (int32 with ``out_int32``)."""
    b = ensure_tensor(boundaries).array
    if b.ndim != 1:
        raise RuntimeError(f"bucketize(): boundaries must be a 1-d tensor, got {b.ndim} dimensions")
    xp = array_module(b)
    v = input.array if isinstance(input, Tensor) else xp.asarray(input)
    return _wrap(xp.asarray(_search(b, v, right, out_int32)), False, None, 0)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    """Where each value would be inserted in ``sorted_sequence`` (searched along its last dim, one row per
    row of ``input``) to keep it sorted; ``right``/``side='right'`` puts it after equal elements."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"searchsorted(): side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise RuntimeError("searchsorted(): side='left' and right=True contradict each other")
        right = side == "right"
    seq = ensure_tensor(sorted_sequence).array
    xp = array_module(seq)
    v = input.array if isinstance(input, Tensor) else xp.asarray(input)
    srt = None if sorter is None else ensure_tensor(sorter).array
    return _wrap(xp.asarray(_search(seq, v, right, out_int32, srt)), False, None, 0)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``prepend``/``append`` joined first; bools give
    XOR); differentiable."""
    x = ensure_tensor(input)
    if x.array.ndim == 0:
        raise RuntimeError("diff(): expected at least a 1-d tensor")
    d = normalize_dim(dim, x.array.ndim, "diff")
    parts = []
    for extra in (prepend, x, append):
        if extra is None:
            continue
        t = ensure_tensor(extra)
        if t.array.ndim == 0:
            shape = list(x.array.shape)
            shape[d] = 1
            t = S.broadcast_to(S.reshape(t, (1,) * x.array.ndim), tuple(shape))
        parts.append(t)
    if len(parts) > 1:
        x = S.cat(parts, d)
    for _ in builtins.range(builtins.int(n)):
        m = x.array.shape[d]
        if m == 0:
            break
        hi = S.narrow(x, d, 1, m - 1)
        lo = S.narrow(x, d, 0, m - 1)
        x = E.logical_xor(hi, lo) if x.array.dtype == np.bool_ else E.sub(hi, lo)
    return x


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """The input with each run of equal consecutive elements (or slices along ``dim``) kept once; optionally
    the int64 ``inverse`` (the run of each element) and ``counts`` (run lengths). No gradient."""
    a = ensure_tensor(input).array
    xp = array_module(a)
    if dim is None:
        flat = a.reshape(-1)
        new = xp.ones(flat.shape, bool)
        new[1:] = flat[1:] != flat[:-1]
        values = flat[new]
        inv_shape = a.shape
    else:
        d = normalize_dim(dim, a.ndim, "unique_consecutive")
        m = xp.moveaxis(a, d, 0).reshape(a.shape[d], -1)
        new = xp.ones(m.shape[0], bool)
        new[1:] = (m[1:] != m[:-1]).any(-1) if m.shape[1] else False
        values = xp.compress(new, a, axis=d)
        inv_shape = (a.shape[d],)
    out = [_wrap(values, False, None, 0)]
    if return_inverse:
        out.append(_int64((xp.cumsum(new) - 1).reshape(inv_shape)))
    if return_counts:
        starts = xp.flatnonzero(new)
        out.append(_int64(xp.diff(xp.append(starts, new.size))))
    return out[0] if len(out) == 1 else tuple(out)


def dist(input, other, p=2):
    """The ``p``-norm of ``input - other`` (broadcast); differentiable."""
    d = E.sub(input, other)
    return R.norm(S.reshape(d, (-1,)), p)


def _nansum_method(self, dim=None, keepdim=False, *, dtype=None):
    return nansum(self, dim, keepdim, dtype=dtype)


install(
    nansum=_nansum_method, nanmean=nanmean, median=median, nanmedian=nanmedian, mode=mode, kthvalue=kthvalue,
    quantile=quantile, nanquantile=nanquantile, cummax=cummax, cummin=cummin, logcumsumexp=logcumsumexp,
    histc=histc, histogram=histogram, bincount=bincount, diff=diff, unique_consecutive=unique_consecutive,
    dist=dist, msort=msort,
)
