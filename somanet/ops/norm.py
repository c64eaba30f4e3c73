"""Normalisation layers as fused ops: batch norm (any ``(N, C, *)``), layer norm, RMS norm, group norm,
instance norm and local response norm.

Each op is one ``Function`` whose backward is written out by hand: with ``xhat`` the normalised input,
``invstd = 1 / sqrt(var + eps)`` and ``dxhat`` the gradient reaching ``xhat``, every mean/variance
normalisation over a set ``R`` of ``M`` elements has the input gradient

    dx = invstd * (dxhat - mean_R(dxhat) - xhat * mean_R(dxhat * xhat)),

so backward needs only ``xhat`` and ``invstd`` from forward, and the affine gradients
(``sum(grad * xhat)``, ``sum(grad)``) are reused inside it. Batch norm keeps the centred input
``xhat / invstd`` instead: its ``invstd`` is per channel, so it folds into the per-channel factors of
forward's affine pass and of backward, and the normalised input is never written out. Arrays are
reshaped to a 3-D view ``(N, C, S)`` or 2-D ``(rows, D)`` so every reduction is one NumPy call over
contiguous memory.
"""
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..kernels import _select

__all__ = ["batch_norm", "layer_norm", "rms_norm", "group_norm", "instance_norm", "local_response_norm"]


def _data(t):
    return None if t is None else (t.array if isinstance(t, Tensor) else t)


def _channel_layout(shape):
    """The view ``batch_norm`` computes on and the shape per-channel vectors broadcast as.

    ``(N, C)`` stays 2-D with ``(C,)`` vectors (a trailing length-1 axis would make every NumPy inner
    loop one element long); anything longer becomes ``(N, C, S)`` with ``(C, 1)`` vectors.
    """
    n, c = shape[0], shape[1]
    s = 1
    for d in shape[2:]:
        s *= d
    if s == 1:
        return (n, c), (c,)
    return (n, c, s), (c, 1)


def _reductions(a):
    """The ``norm_reductions`` kernel for arrays like ``a`` (None: the plain reductions below)."""
    return _select.implementation("norm_reductions", _select.choose("norm_reductions", a))


def _per_channel_sums(a, b, xp):
    """``sum(a * b)`` over every axis but 1 of two ``(N, C)`` or ``(N, C, S)`` arrays."""
    fast = _reductions(a)
    if fast is not None:
        return fast.per_channel_sums(a, b)
    return xp.einsum("nc,nc->c" if a.ndim == 2 else "ncs,ncs->c", a, b)


def _per_channel_total(a, xp):
    """``sum(a)`` over every axis but 1 of an ``(N, C)`` or ``(N, C, S)`` array."""
    fast = _reductions(a)
    if fast is not None:
        return fast.per_channel_total(a)
    return a.sum(axis=0) if a.ndim == 2 else a.sum(axis=(0, 2))


def _row_dots(a, b, xp):
    """``sum(a * b, axis=-1)``."""
    fast = _reductions(a)
    if fast is not None:
        return fast.row_dots(a, b)
    return xp.einsum("...d,...d->...", a, b)


def _row_means(a, xp):
    """Row means of a 2-D ``(rows, D)`` array as a ``(rows, 1)`` column."""
    fast = _reductions(a)
    if fast is not None:
        return fast.row_means(a)
    return xp.mean(a, axis=1, keepdims=True)


def _column_sums(a, xp):
    """Column sums of a 2-D array."""
    fast = _reductions(a)
    if fast is not None:
        return fast.column_sums(a)
    return a.sum(axis=0)


def _rescued_invstd(a, axis, var, invstd, eps, xp):
    """``invstd`` with the groups whose variance overflowed recomputed.

    ``a`` holds the centred values (the raw ones for RMS norm), reduced over ``axis`` into ``var`` (the
    mean of squares) and ``invstd = 1 / sqrt(var + eps)``, both with the reduced axes kept or dropped alike.
    Values near 1e20 have squares beyond float32's range, so ``var`` is inf and ``invstd`` 0, which would
    zero the output. Dividing each group by its largest magnitude ``s`` first keeps the squares in range:
    ``invstd = 1 / (s sqrt(mean((a / s)^2) + eps / s^2))``. Only called when a variance is not finite, so
    the usual path pays one check on the small ``var`` array; infinite or NaN inputs stay NaN/0 as before.
    """
    scale = xp.max(xp.abs(a), axis=axis, keepdims=True)
    scale = xp.where(xp.isfinite(scale) & (scale > 0), scale, 1).astype(a.dtype, copy=False)
    scaled = a / scale
    m = a.dtype.type(a.size // scale.size)
    ms = xp.sum(scaled * scaled, axis=axis, keepdims=True) / m
    alt = 1 / (scale * xp.sqrt(ms + a.dtype.type(eps) / scale / scale))
    return xp.where(xp.isfinite(var), invstd, alt.reshape(invstd.shape)).astype(invstd.dtype, copy=False)


def _owned(shape, dtype, rows_shape, xp):
    """A new ``xp`` array of ``shape`` and a view of it as ``rows_shape`` to compute into.

    Gradients are returned as the base array: the engine must copy a view before storing it as a
    leaf's ``.grad``, so handing it the owner saves a full copy.
    """
    full = xp.empty(shape, dtype=dtype)
    return full, full.reshape(rows_shape)


# --------------------------------------------------------------------------- batch norm
class BatchNorm(Function):
    """Batch normalisation of ``(N, C, *)`` over every axis but the channel axis 1.

    With ``training`` the batch statistics normalise the input and, when running buffers are given,
    are blended into them in place (``momentum`` is the blending factor: PyTorch's exponential average
    factor). Otherwise the running statistics normalise it.
    """

    def forward(ctx, x, weight, bias, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
        xp = array_module(x)
        view, vec = _channel_layout(x.shape)
        xv = x.reshape(view)
        dtype = x.dtype
        ctx.shape, ctx.view, ctx.vec = x.shape, view, vec
        ctx.training = training
        ctx.has_weight = weight is not None
        ctx.has_bias = bias is not None
        ctx.kernel = None
        if training and xv.ndim == 3:
            ctx.kernel = _select.implementation("batch_norm", _select.choose("batch_norm", xv, weight, bias))
        if ctx.kernel is not None:
            m = x.size // view[1]
            out, mean, var, invstd = ctx.kernel.forward(xv, weight, bias, eps)
            if running_mean is not None:
                _update_running(running_mean, running_var, mean, var, momentum, m)
            # The input itself is kept (it is alive anyway as the previous layer's output), not a centred copy.
            ctx.save_for_backward(x, mean, invstd, weight)
            ctx.m = m
            return out.reshape(x.shape)
        if training:
            m = x.size // view[1]
            mean = _per_channel_total(xv, xp) / dtype.type(m)
            # Backward gets the centred input and folds invstd into per-channel factors, so that the
            # normalised input is never formed as an array of its own (one pass fewer).
            centred = xv - mean.reshape(vec)
            var = _per_channel_sums(centred, centred, xp) / dtype.type(m)
            invstd = 1 / xp.sqrt(var + dtype.type(eps))
            if not math.isfinite(var.sum()):
                invstd = _rescued_invstd(centred, (0,) if centred.ndim == 2 else (0, 2), var, invstd, eps, xp)
            if running_mean is not None:
                _update_running(running_mean, running_var, mean, var, momentum, m)
            out = centred * (invstd * weight if weight is not None else invstd).reshape(vec)
            if bias is not None:
                out += bias.reshape(vec)
            ctx.save_for_backward(centred, invstd, weight)
            ctx.m = m
            return out.reshape(x.shape)
        invstd = (1 / xp.sqrt(running_var + eps)).astype(dtype, copy=False)
        scale = invstd * weight if weight is not None else invstd
        shift = -running_mean.astype(dtype, copy=False) * scale
        if bias is not None:
            shift = shift + bias
        out = xv * scale.reshape(vec)
        out += shift.reshape(vec)
        # Copies: the running buffers may be updated in place before backward runs.
        ctx.save_for_backward(xv, invstd, scale, running_mean.astype(dtype, copy=True))
        return out.reshape(x.shape)

    def backward(ctx, grad):
        xp = array_module(grad)
        vec = ctx.vec
        gv = grad.reshape(ctx.view)
        need_w = ctx.has_weight and ctx.needs(1)
        need_b = ctx.has_bias and ctx.needs(2)
        if ctx.kernel is not None:
            x, mean, invstd, weight = ctx.saved
            dv, gweight, gbias = ctx.kernel.backward(gv, x.reshape(ctx.view), mean, invstd, weight, ctx.needs(0))
            dx = None if dv is None else dv.reshape(ctx.shape)
            return dx, gweight if need_w else None, gbias if need_b else None, None, None
        if ctx.training:
            centred, invstd, weight = ctx.saved
            gbias = _per_channel_total(gv, xp)
            gweight = _per_channel_sums(gv, centred, xp) * invstd  # sum of g * xhat
            dx = None
            if ctx.needs(0):
                m = gv.dtype.type(ctx.m)
                dx, dv = _owned(ctx.shape, grad.dtype, ctx.view, xp)
                xp.multiply(centred, (-gweight * invstd / m).reshape(vec), out=dv)
                dv += gv
                dv -= (gbias / m).reshape(vec)
                k = invstd * weight if weight is not None else invstd
                dv *= k.reshape(vec)
            return dx, gweight if need_w else None, gbias if need_b else None, None, None
        xv, invstd, scale, running_mean = ctx.saved
        dx = None
        if ctx.needs(0):
            dx, dv = _owned(ctx.shape, grad.dtype, ctx.view, xp)
            xp.multiply(gv, scale.reshape(vec), out=dv)
        gweight = gbias = None
        if need_w:
            gweight = _per_channel_sums(gv, xv - running_mean.reshape(vec), xp) * invstd
        if need_b:
            gbias = _per_channel_total(gv, xp)
        return dx, gweight, gbias, None, None

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import normalized_graph
        from .reduce import sum as sum_
        from .shape import reshape

        vec, view = ctx.vec, ctx.view
        axes = (0,) if len(view) == 2 else (0, 2)
        gv = reshape(grad, view)
        if ctx.kernel is not None:
            x, mean, invstd, weight = ctx.saved
            ctx.saved = (x.reshape(view) - mean.reshape(vec), invstd, weight)   # the reference's saved arrays
            ctx.kernel = None
        if ctx.training:
            centred, invstd, weight = ctx.saved
            xhat = (centred * invstd.reshape(vec)).astype(centred.dtype, copy=False)
            xhat_t, inv_t = normalized_graph(ctx, xhat, invstd, axes, ctx.shape)
            w_t = ctx.graph_input(1, weight) if weight is not None else None
            gbias = sum_(gv, axes)
            gweight = sum_(gv * xhat_t, axes)
            dx = None
            if ctx.graph_needs(0):
                m = float(ctx.m)
                dxhat = gv - reshape(gbias / m, vec) - xhat_t * reshape(gweight / m, vec)
                dx = reshape(dxhat * (inv_t * reshape(w_t, vec) if w_t is not None else inv_t), ctx.shape)
            return (dx, gweight if ctx.has_weight and ctx.graph_needs(1) else None,
                    gbias if ctx.has_bias and ctx.graph_needs(2) else None, None, None)
        xv, invstd, scale, running_mean = ctx.saved
        inv = Tensor(invstd.reshape(vec))
        dx = gweight = gbias = None
        if ctx.graph_needs(0):
            # scale = invstd * weight
            scale_t = ctx.graph_derived(scale, [ctx.graph_parent(1) if ctx.has_weight else None],
                                        lambda g, _: (g * Tensor(invstd),))
            dx = reshape(gv * reshape(scale_t, vec), ctx.shape)
        if ctx.has_weight and ctx.graph_needs(1):
            x_t = reshape(ctx.graph_input(0, xv.reshape(ctx.shape)), view)
            gweight = sum_(gv * (x_t - Tensor(running_mean.reshape(vec))) * inv, axes)
        if ctx.has_bias and ctx.graph_needs(2):
            gbias = sum_(gv, axes)
        return dx, gweight, gbias, None, None


def _update_running(running_mean, running_var, mean, var, momentum, m):
    """Blend the batch statistics into the running buffers in place; the running variance is the
    unbiased estimate, as in PyTorch."""
    running_mean *= 1 - momentum
    running_mean += (momentum * mean).astype(running_mean.dtype, copy=False)
    running_var *= 1 - momentum
    running_var += (momentum * m / max(m - 1, 1) * var).astype(running_var.dtype, copy=False)


def _check_channels(op, x, c, what, arr):
    if arr is not None and arr.shape != (c,):
        raise RuntimeError(f"{op}(): {what} must have shape ({c},) to match the {c} channels (dim 1) of the "
                           f"input of shape {tuple(x.shape)}, got {tuple(arr.shape)}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation of ``input`` ``(N, C, *)`` (``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)``, ...).

    ``training=True`` normalises with the batch's mean and (biased) variance per channel and, when
    ``running_mean``/``running_var`` (``(C,)`` tensors) are given, updates them in place:
    ``running = (1 - momentum) * running + momentum * batch`` with the unbiased batch variance.
    ``training=False`` normalises with the running statistics. ``weight``/``bias`` ``(C,)`` are the affine
    transform. Returns a tensor shaped like ``input``.
    """
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    if input.ndim < 2:
        raise ValueError(f"batch_norm(): expected an input of shape (N, C, *) with at least 2 dimensions, "
                         f"got shape {tuple(input.shape)}")
    c = input.shape[1]
    rm, rv = _data(running_mean), _data(running_var)
    for what, arr in (("running_mean", rm), ("running_var", rv), ("weight", _data(weight)), ("bias", _data(bias))):
        _check_channels("batch_norm", input, c, what, arr)
    if training:
        per_channel = input.array.size // max(c, 1)
        if per_channel <= 1:
            raise ValueError(f"batch_norm(): expected more than 1 value per channel when training, got input of "
                             f"shape {tuple(input.shape)}")
    elif rm is None or rv is None:
        raise ValueError("batch_norm(): running_mean and running_var are required when training=False")
    out = BatchNorm.apply(input, weight, bias, rm, rv, training=training, momentum=momentum, eps=eps)
    if training and rm is not None:
        for t in (running_mean, running_var):
            if isinstance(t, Tensor):
                t._version[0] += 1
    return out


# --------------------------------------------------------------------------- layer norm and RMS norm
class LayerNorm(Function):
    """Normalise each row of the ``(rows, D)`` view over its ``D`` trailing elements, then ``* w + b``."""

    def forward(ctx, x, weight, bias, d, eps):
        xp = array_module(x)
        x2 = x.reshape(-1, d)
        dtype = x.dtype
        w = None if weight is None else weight.reshape(d)
        b = None if bias is None else bias.reshape(d)
        ctx.shapes = (x.shape, None if weight is None else weight.shape, None if bias is None else bias.shape)
        ctx.kernel = _select.implementation("layer_norm", _select.choose("layer_norm", x2, w, b))
        if ctx.kernel is not None:
            out, xhat, invstd = ctx.kernel.forward(x2, w, b, eps)
            ctx.save_for_backward(xhat, invstd, w)
            return out.reshape(x.shape)
        xhat = x2 - _row_means(x2, xp)
        var = _row_dots(xhat, xhat, xp)[:, None] / dtype.type(d)
        invstd = 1 / xp.sqrt(var + dtype.type(eps))
        if not math.isfinite(var.sum()):
            invstd = _rescued_invstd(xhat, 1, var, invstd, eps, xp)
        xhat *= invstd
        out = xhat * w if w is not None else xhat.copy()
        if b is not None:
            out += b
        ctx.save_for_backward(xhat, invstd, w)
        return out.reshape(x.shape)

    def backward(ctx, grad):
        xhat, invstd, w = ctx.saved
        xshape, wshape, bshape = ctx.shapes
        xp = array_module(grad)
        g2 = grad.reshape(xhat.shape)
        gw = gb = dx = None
        if wshape is not None and ctx.needs(1):
            gw = xp.einsum("rd,rd->d", g2, xhat).reshape(wshape)
        if bshape is not None and ctx.needs(2):
            gb = _column_sums(g2, xp).reshape(bshape)
        if ctx.needs(0) and ctx.kernel is not None and grad.dtype == xhat.dtype:
            dx, d2 = _owned(xshape, grad.dtype, xhat.shape, xp)
            ctx.kernel.input_grad(g2, xhat, invstd, w, d2)
        elif ctx.needs(0):
            dxhat = g2 * w if w is not None else g2
            d = g2.dtype.type(xhat.shape[1])
            proj = _row_dots(dxhat, xhat, xp)[:, None] / d
            dx, d2 = _owned(xshape, grad.dtype, xhat.shape, xp)
            xp.multiply(xhat, -proj, out=d2)
            d2 += dxhat
            d2 -= _row_means(dxhat, xp)
            d2 *= invstd
        return dx, gw, gb

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import normalized_graph
        from .reduce import mean, sum as sum_
        from .shape import reshape

        xhat, invstd, w = ctx.saved
        xshape, wshape, bshape = ctx.shapes
        xhat_t, inv_t = normalized_graph(ctx, xhat, invstd, (1,), xshape)
        g2 = reshape(grad, xhat.shape)
        gw = gb = dx = None
        if wshape is not None and ctx.graph_needs(1):
            gw = reshape(sum_(g2 * xhat_t, 0), wshape)
        if bshape is not None and ctx.graph_needs(2):
            gb = reshape(sum_(g2, 0), bshape)
        if ctx.graph_needs(0):
            dxhat = g2 * reshape(ctx.graph_input(1, w.reshape(wshape)), w.shape) if w is not None else g2
            proj = mean(dxhat * xhat_t, 1, keepdim=True)
            dx = reshape((dxhat - xhat_t * proj - mean(dxhat, 1, keepdim=True)) * inv_t, xshape)
        return dx, gw, gb


def _normalized_shape(normalized_shape):
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def _check_trailing(op, x, shape, what_shape="normalized_shape"):
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise RuntimeError(f"{op}(): expected an input whose trailing dimensions are {what_shape}={list(shape)} "
                           f"(shape [*, {', '.join(str(s) for s in shape)}]), got input of shape {tuple(x.shape)}")


def _check_param(op, what, arr, shape):
    if arr is not None and tuple(arr.shape) != shape:
        raise RuntimeError(f"{op}(): {what} must have shape {shape} (normalized_shape), got {tuple(arr.shape)}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing dimensions ``normalized_shape`` of ``input`` ``(*, *normalized_shape)``
    to zero mean and unit (biased) variance, then scale by ``weight`` and shift by ``bias`` (both shaped
    ``normalized_shape``). Returns a tensor shaped like ``input``."""
    shape = _normalized_shape(normalized_shape)
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    _check_trailing("layer_norm", input, shape)
    _check_param("layer_norm", "weight", _data(weight), shape)
    _check_param("layer_norm", "bias", _data(bias), shape)
    return LayerNorm.apply(input, weight, bias, d=math.prod(shape), eps=eps)


class RMSNorm(Function):
    """``x / sqrt(mean(x**2) + eps) * w`` over the ``D`` trailing elements of each row."""

    def forward(ctx, x, weight, d, eps):
        xp = array_module(x)
        x2 = x.reshape(-1, d)
        dtype = x.dtype
        w = None if weight is None else weight.reshape(d)
        ctx.shapes = (x.shape, None if weight is None else weight.shape)
        ctx.kernel = _select.implementation("rms_norm", _select.choose("rms_norm", x2, w))
        if ctx.kernel is not None:
            out, y, rinv = ctx.kernel.forward(x2, w, eps)
            ctx.save_for_backward(y, rinv, w)
            return out.reshape(x.shape)
        ms = _row_dots(x2, x2, xp)[:, None] / dtype.type(d)
        rinv = 1 / xp.sqrt(ms + dtype.type(eps))
        if not math.isfinite(ms.sum()):
            rinv = _rescued_invstd(x2, 1, ms, rinv, eps, xp)
        y = x2 * rinv
        ctx.save_for_backward(y, rinv, w)
        return (y * w if w is not None else y).reshape(x.shape)

    def backward(ctx, grad):
        y, rinv, w = ctx.saved
        xshape, wshape = ctx.shapes
        xp = array_module(grad)
        g2 = grad.reshape(y.shape)
        gw = dx = None
        if wshape is not None and ctx.needs(1):
            gw = xp.einsum("rd,rd->d", g2, y).reshape(wshape)
        if ctx.needs(0) and ctx.kernel is not None and grad.dtype == y.dtype:
            dx, d2 = _owned(xshape, grad.dtype, y.shape, xp)
            ctx.kernel.input_grad(g2, y, rinv, w, d2)
        elif ctx.needs(0):
            dy = g2 * w if w is not None else g2
            proj = _row_dots(dy, y, xp)[:, None] / g2.dtype.type(y.shape[1])
            dx, d2 = _owned(xshape, grad.dtype, y.shape, xp)
            xp.multiply(y, -proj, out=d2)
            d2 += dy
            d2 *= rinv
        return dx, gw

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import rms_graph
        from .reduce import mean, sum as sum_
        from .shape import reshape

        y, rinv, w = ctx.saved
        xshape, wshape = ctx.shapes
        y_t, rinv_t = rms_graph(ctx, y, rinv, (1,), xshape)
        g2 = reshape(grad, y.shape)
        gw = dx = None
        if wshape is not None and ctx.graph_needs(1):
            gw = reshape(sum_(g2 * y_t, 0), wshape)
        if ctx.graph_needs(0):
            dy = g2 * reshape(ctx.graph_input(1, w.reshape(wshape)), w.shape) if w is not None else g2
            dx = reshape((dy - y_t * mean(dy * y_t, 1, keepdim=True)) * rinv_t, xshape)
        return dx, gw


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Root-mean-square normalisation over the trailing ``normalized_shape`` dimensions:
    ``x / sqrt(mean(x**2) + eps) * weight``. ``eps=None`` uses the machine epsilon of the input's dtype,
    as PyTorch does. Returns a tensor shaped like ``input``."""
    shape = _normalized_shape(normalized_shape)
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    _check_trailing("rms_norm", input, shape)
    _check_param("rms_norm", "weight", _data(weight), shape)
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    return RMSNorm.apply(input, weight, d=int(np.prod(shape)), eps=eps)


# --------------------------------------------------------------------------- group norm and instance norm
class GroupNorm(Function):
    """Normalise ``(N, C, *)`` over each group of ``C // G`` channels and all positions, per sample; then a
    per-channel affine transform. With ``G == C`` this is instance normalisation.

    ``stats`` (a list) receives the per-(sample, group) mean and biased variance when given, for
    instance norm's running statistics.
    """

    def forward(ctx, x, weight, bias, groups, eps, stats=None):
        xp = array_module(x)
        n, c = x.shape[0], x.shape[1]
        dtype = x.dtype
        ctx.kernel = None
        if x.size:
            x3 = x.reshape(n, c, -1)
            ctx.kernel = _select.implementation("group_norm", _select.choose("group_norm", x3, groups, weight, bias))
        if ctx.kernel is not None:
            out, xhat, mean, var, invstd = ctx.kernel.forward(x3, groups, weight, bias, eps)
            if stats is not None:
                stats.extend((mean, var, xhat.shape[2]))
            ctx.save_for_backward(xhat, invstd, weight)
            ctx.shape = x.shape
            ctx.has = (weight is not None, bias is not None)
            return out.reshape(x.shape)
        xg = x.reshape(n, groups, -1)
        d = xg.shape[2]
        mean = xg.mean(axis=2)
        xhat = xg - mean[:, :, None]
        var = _row_dots(xhat, xhat, xp) / dtype.type(d)
        invstd = 1 / xp.sqrt(var + dtype.type(eps))
        if not math.isfinite(var.sum()):
            invstd = _rescued_invstd(xhat, 2, var, invstd, eps, xp)
        xhat *= invstd[:, :, None]
        if stats is not None:
            stats.extend((mean, var, d))
        x3 = xhat.reshape(n, c, -1)
        out = x3 * weight[:, None] if weight is not None else x3.copy()
        if bias is not None:
            out += bias[:, None]
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.shape = x.shape
        ctx.has = (weight is not None, bias is not None)
        return out.reshape(x.shape)

    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved
        xp = array_module(grad)
        n, c = ctx.shape[0], ctx.shape[1]
        g3 = grad.reshape(n, c, -1)
        if ctx.kernel is not None:
            dv, gw, gb = ctx.kernel.backward(g3, xhat, invstd, weight, ctx.needs(0))
            return (None if dv is None else dv.reshape(ctx.shape), gw if ctx.has[0] and ctx.needs(1) else None,
                    gb if ctx.has[1] and ctx.needs(2) else None)
        x3 = xhat.reshape(n, c, -1)
        gw = gb = dx = None
        if ctx.has[0] and ctx.needs(1):
            gw = _per_channel_sums(g3, x3, xp)
        if ctx.has[1] and ctx.needs(2):
            gb = _per_channel_total(g3, xp)
        if ctx.needs(0):
            dxhat = (g3 * weight[:, None] if weight is not None else g3).reshape(xhat.shape)
            d = grad.dtype.type(xhat.shape[2])
            proj = _row_dots(dxhat, xhat, xp) / d
            dx, dg = _owned(ctx.shape, grad.dtype, xhat.shape, xp)
            xp.multiply(xhat, -proj[:, :, None], out=dg)
            dg += dxhat
            dg -= dxhat.mean(axis=2, keepdims=True)
            dg *= invstd[:, :, None]
        return dx, gw, gb

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import normalized_graph
        from .reduce import mean, sum as sum_
        from .shape import reshape

        xhat, invstd, weight = ctx.saved
        n, c = ctx.shape[0], ctx.shape[1]
        xhat_t, inv_t = normalized_graph(ctx, xhat, invstd, (2,), ctx.shape)
        g3 = reshape(grad, (n, c, -1))
        x3 = reshape(xhat_t, (n, c, -1))
        gw = gb = dx = None
        if ctx.has[0] and ctx.graph_needs(1):
            gw = sum_(g3 * x3, (0, 2))
        if ctx.has[1] and ctx.graph_needs(2):
            gb = sum_(g3, (0, 2))
        if ctx.graph_needs(0):
            w_t = reshape(ctx.graph_input(1, weight), (c, 1)) if weight is not None else None
            dxhat = reshape(g3 * w_t if w_t is not None else g3, xhat.shape)
            proj = mean(dxhat * xhat_t, 2, keepdim=True)
            dx = reshape((dxhat - xhat_t * proj - mean(dxhat, 2, keepdim=True)) * inv_t, ctx.shape)
        return dx, gw, gb


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation of ``input`` ``(N, C, *)``: the ``C`` channels are split into ``num_groups``
    groups, each normalised per sample over its channels and positions; ``weight``/``bias`` are ``(C,)``."""
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    if input.ndim < 2:
        raise RuntimeError(f"group_norm(): expected an input of shape (N, C, *), got shape {tuple(input.shape)}")
    c = input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"group_norm(): the {c} channels of the input of shape {tuple(input.shape)} cannot be "
                           f"split into num_groups={num_groups} equal groups")
    for what, arr in (("weight", _data(weight)), ("bias", _data(bias))):
        _check_channels("group_norm", input, c, what, arr)
    return GroupNorm.apply(input, weight, bias, groups=num_groups, eps=eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Instance normalisation of ``input`` ``(N, C, *)``: each channel of each sample is normalised over its
    positions. With ``use_input_stats`` and running buffers ``(C,)`` given, these are updated with the
    statistics averaged over the batch; with ``use_input_stats=False`` the running statistics normalise."""
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    if input.ndim < 3:
        raise ValueError(f"instance_norm(): expected an input of shape (N, C, *) with at least one spatial "
                         f"dimension, got shape {tuple(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    rm, rv = _data(running_mean), _data(running_var)
    for what, arr in (("running_mean", rm), ("running_var", rv), ("weight", _data(weight)), ("bias", _data(bias))):
        _check_channels("instance_norm", input, c, what, arr)
    if not use_input_stats:
        if rm is None or rv is None:
            raise ValueError("instance_norm(): running_mean and running_var are required when use_input_stats=False")
        # Normalising by fixed per-channel statistics is batch norm's evaluation path.
        return BatchNorm.apply(input, weight, bias, rm, rv, training=False, momentum=momentum, eps=eps)
    spatial = input.array.size // max(n * c, 1)
    if spatial <= 1:
        raise ValueError(f"instance_norm(): expected more than 1 spatial element when training, got input of "
                         f"shape {tuple(input.shape)}")
    stats = [] if rm is not None else None
    out = GroupNorm.apply(input, weight, bias, groups=c, eps=eps, stats=stats)
    if rm is not None:
        mean, var, d = stats
        rm *= 1 - momentum
        rm += (momentum * mean.mean(axis=0)).astype(rm.dtype, copy=False)
        rv *= 1 - momentum
        rv += (momentum * d / max(d - 1, 1) * var.mean(axis=0)).astype(rv.dtype, copy=False)
        for t in (running_mean, running_var):
            if isinstance(t, Tensor):
                t._version[0] += 1
    return out


# --------------------------------------------------------------------------- local response norm
def _window_sum(a, before, after):
    """``out[:, c] = sum(a[:, c - before : c + after + 1])`` along axis 1, clipped at the edges.

    A loop over the (small) window offsets, each one whole-array add.
    """
    c = a.shape[1]
    out = a.copy()
    for k in range(1, before + 1):
        if k < c:
            out[:, k:] += a[:, :c - k]
    for k in range(1, after + 1):
        if k < c:
            out[:, :c - k] += a[:, k:]
    return out


class LocalResponseNorm(Function):
    """``x / (k + alpha / size * sum of x**2 over neighbouring channels) ** beta`` on ``(N, C, *)``."""

    def forward(ctx, x, size, alpha, beta, k):
        dtype = x.dtype
        before, after = size // 2, (size - 1) // 2
        denom = _window_sum(x * x, before, after)
        denom *= dtype.type(alpha / size)
        denom += dtype.type(k)
        scale = denom ** dtype.type(-beta)
        ctx.save_for_backward(x, denom, scale)
        ctx.params = (size, alpha, beta)
        ctx.k = k
        return x * scale

    def backward(ctx, grad):
        x, denom, scale = ctx.saved
        size, alpha, beta = ctx.params
        # Channel i feeds the windows of channels i - after .. i + before: the transposed window.
        t = grad * x * scale / denom
        spread = _window_sum(t, (size - 1) // 2, size // 2)
        dx = grad * scale
        dx -= spread * x * grad.dtype.type(2 * alpha * beta / size)
        return dx

    def grad_graph(ctx, grad):
        from ..autograd.recompute import recompute_grad

        return recompute_grad(ctx, ctx.saved[:1], lambda x: _lrn_on_tensors(x, *ctx.params, ctx.k), (grad,))


def _lrn_on_tensors(x, size, alpha, beta, k):
    """``LocalResponseNorm`` on differentiable tensor ops, for create_graph's second derivatives."""
    from .shape import narrow, pad

    c = x.shape[1]
    sq = pad(x * x, (0, 0) * (x.ndim - 2) + (size // 2, (size - 1) // 2))
    window = narrow(sq, 1, 0, c)
    for j in range(1, size):
        window = window + narrow(sq, 1, j, c)
    return x * (window * (alpha / size) + k) ** -beta


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels of ``input`` ``(N, C, *)`` (AlexNet): each value is
    divided by ``(k + alpha / size * sum of squares over `size` neighbouring channels) ** beta``."""
    if not isinstance(input, Tensor):
        input = Tensor(backend.as_array(input))
    if input.ndim < 3:
        raise ValueError(f"local_response_norm(): expected a 3-D or higher input (N, C, *), got shape "
                         f"{tuple(input.shape)}")
    if size < 1:
        raise ValueError(f"local_response_norm(): size must be at least 1, got {size}")
    return LocalResponseNorm.apply(input, size=int(size), alpha=alpha, beta=beta, k=k)
