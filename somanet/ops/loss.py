"""Loss functions as fused ops: one ``Function`` per loss computing the elementwise loss and its
reduction, with a hand-written backward to both prediction and (where meaningful) target.

Classification losses take class indices with PyTorch's layout: ``input (N, C)`` or ``(N, C, d1, ...)``
(or unbatched ``(C,)``) and ``target (N,)`` / ``(N, d1, ...)`` (or ``()``); internally they work on the
3-D view ``(N, C, S)`` and the target ``(N, S)``. ``cross_entropy`` computes a stable log-softmax and the
loss in one op and keeps the softmax it made for backward.
"""
import warnings

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ._util import INF, ensure_tensor
from .elementwise import _sigmoid, log1p_exp_neg_abs
from .reduce import sums_along

__all__ = ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]


# --------------------------------------------------------------------------- shared helpers
def _reduction(reduction, size_average, reduce, op, extra=()):
    """Resolve PyTorch's deprecated ``size_average``/``reduce`` flags and validate ``reduction``."""
    if size_average is not None or reduce is not None:
        warnings.warn(f"{op}(): size_average and reduce are deprecated, use reduction= instead", stacklevel=3)
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    allowed = ("none", "mean", "sum") + tuple(extra)
    if reduction not in allowed:
        raise ValueError(f"{op}(): reduction must be one of {', '.join(repr(r) for r in allowed)}, got {reduction!r}")
    return reduction


def _float_input(x, op, what="input"):
    x = ensure_tensor(x, op, what)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}(): {what} must be a floating point tensor, got dtype {x.dtype}")
    return x


def _match_float(t, dtype, op, what):
    """Cast a float ``what`` (target, weight) to the input's dtype; refuse integer data."""
    if t is None:
        return None
    if t.dtype.kind not in "fbiu":
        raise TypeError(f"{op}(): {what} has unsupported dtype {t.dtype}")
    if t.dtype != dtype:
        from .shape import to_dtype

        return to_dtype(t, dtype)
    return t


def _reduce(loss, reduction, xp, denom=None):
    """Reduce an elementwise loss array; ``denom`` replaces the element count for 'mean'."""
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    if reduction == "sum":
        return xp.asarray(total, dtype=loss.dtype)
    n = loss.size if denom is None else denom
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.asarray(total / loss.dtype.type(n), dtype=loss.dtype)


def _grad_scale(grad, reduction, count, denom=None):
    """The upstream gradient spread over the elementwise losses: an array or a 0-d scalar."""
    if reduction == "none":
        return grad
    if reduction == "sum":
        return grad
    n = count if denom is None else denom
    with np.errstate(invalid="ignore", divide="ignore"):
        return grad / grad.dtype.type(n)


def _broadcast_pair(input, target, op):
    if input.shape != target.shape:
        warnings.warn(f"{op}(): using a target size {tuple(target.shape)} that is different to the input size "
                      f"{tuple(input.shape)}; they will be broadcast, which is likely wrong. Make them the same "
                      f"size.", stacklevel=3)
        try:
            np.broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise ValueError(f"{op}(): input of shape {tuple(input.shape)} and target of shape "
                             f"{tuple(target.shape)} cannot be broadcast together") from None


def _check_weight(weight, input, op):
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"{op}(): weight must have the same size as input {tuple(input.shape)}, got "
                         f"{tuple(weight.shape)}")


# --------------------------------------------------------------------------- regression losses
class _Pointwise(Function):
    """Base of the regression losses: ``loss = w * f(input - target)``, reduced.

    Subclasses define ``elementwise(diff, xp) -> loss`` and ``derivative(diff) -> d loss / d diff``;
    ``derivative`` asks for the array module itself, so backward pays for the lookup only where it is used.
    ``mean_by_weight`` divides a weighted mean by ``sum(w)`` instead of the element count.
    """

    mean_by_weight = True

    def forward(ctx, x, t, w=None, reduction="mean", param=None):
        xp = array_module(x)
        diff = x - t
        ctx.param = param
        loss = ctx.elementwise(diff, xp)
        if w is not None:
            loss *= w
        ctx.save_for_backward(diff, w)
        ctx.reduction = reduction
        ctx.denom = None
        if w is not None and reduction == "mean" and ctx.mean_by_weight:
            ctx.denom = float(xp.sum(xp.broadcast_to(w, diff.shape), dtype=np.float64))
        return _reduce(loss, reduction, xp, ctx.denom)

    def backward(ctx, grad):
        diff, w = ctx.saved
        g = _grad_scale(grad, ctx.reduction, diff.size, ctx.denom)
        d = ctx.derivative(diff)
        if w is not None:
            g = g * w
        d *= g
        return d, (-d if ctx.needs(1) else None), None

    def grad_graph(ctx, grad):
        diff, w = ctx.saved
        # diff = input - target
        diff_t = ctx.graph_derived(diff, [ctx.graph_parent(0), ctx.graph_parent(1)], lambda g, _: (g, -g))
        g = _grad_scale(grad, ctx.reduction, diff.size, ctx.denom)
        if w is not None:
            g = g * ctx.graph_input(2, w)
        d = ctx.derivative_graph(diff_t) * g
        return d, (-d if ctx.graph_needs(1) else None), None


class MSELoss(_Pointwise):
    """``(input - target) ** 2``."""

    def elementwise(ctx, diff, xp):
        return diff * diff

    def derivative(ctx, diff):
        return diff * diff.dtype.type(2)

    def derivative_graph(ctx, diff):
        return diff * 2


class L1Loss(_Pointwise):
    """``|input - target|``."""

    def elementwise(ctx, diff, xp):
        return xp.abs(diff)

    def derivative(ctx, diff):
        return array_module(diff).sign(diff)

    def derivative_graph(ctx, diff):
        return Tensor(array_module(diff.array).sign(diff.array))


def _huber(diff, delta, xp):
    """Huber's ``0.5 d^2`` below ``delta`` and ``delta (|d| - 0.5 delta)`` above, as ``c (|d| - 0.5 c)`` with
    ``c = min(|d|, delta)``: both of PyTorch's branches exactly, with no branch per element."""
    a = xp.abs(diff)
    c = xp.clip(a, -INF, delta)
    out = c * diff.dtype.type(0.5)
    xp.subtract(a, out, out=out)
    out *= c
    return out


class SmoothL1Loss(_Pointwise):
    """Quadratic below ``beta``, linear above."""

    def elementwise(ctx, diff, xp):
        beta = diff.dtype.type(ctx.param)
        out = _huber(diff, beta, xp)
        if beta != 1:
            out /= beta
        return out

    def derivative(ctx, diff):
        beta = diff.dtype.type(ctx.param)
        return array_module(diff).clip(diff / beta, -1, 1).astype(diff.dtype, copy=False)

    def derivative_graph(ctx, diff):
        from .elementwise import clamp

        return clamp(diff / float(ctx.param), -1.0, 1.0)


class HuberLoss(_Pointwise):
    """Quadratic below ``delta``, linear above (``smooth_l1 * delta``)."""

    mean_by_weight = False  # PyTorch's weighted Huber mean divides by the element count

    def elementwise(ctx, diff, xp):
        return _huber(diff, diff.dtype.type(ctx.param), xp)

    def derivative(ctx, diff):
        delta = diff.dtype.type(ctx.param)
        return array_module(diff).clip(diff, -delta, delta).astype(diff.dtype, copy=False)

    def derivative_graph(ctx, diff):
        from .elementwise import clamp

        return clamp(diff, -float(ctx.param), float(ctx.param))


def _pointwise(cls, op, input, target, reduction, weight=None, param=None):
    input = _float_input(input, op)
    target = _match_float(ensure_tensor(target, op, "target"), input.dtype, op, "target")
    _broadcast_pair(input, target, op)
    weight = _match_float((None if weight is None else ensure_tensor(weight, op, "weight")), input.dtype, op, "weight")
    _check_weight(weight, input, op)
    return cls.apply(input, target, weight, reduction=reduction, param=param)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target) ** 2``, reduced. ``input`` and ``target`` have the same shape
    ``(*)``; ``weight`` (same shape) weights each element, and a weighted mean divides by ``sum(weight)``.

    Returns a scalar, or a tensor shaped like ``input`` for ``reduction='none'``.
    """
    reduction = _reduction(reduction, size_average, reduce, "mse_loss")
    return _pointwise(MSELoss, "mse_loss", input, target, reduction, weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``, reduced; shapes as in ``mse_loss``."""
    reduction = _reduction(reduction, size_average, reduce, "l1_loss")
    return _pointwise(L1Loss, "l1_loss", input, target, reduction, weight)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta`` (``d = input - target``);
    ``beta=0`` is the L1 loss. Shapes as in ``mse_loss``."""
    reduction = _reduction(reduction, size_average, reduce, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss(): beta must be non-negative, got {beta}")
    if beta == 0:
        return _pointwise(L1Loss, "smooth_l1_loss", input, target, reduction)
    return _pointwise(SmoothL1Loss, "smooth_l1_loss", input, target, reduction, param=beta)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)`` (``d = input - target``).
    Shapes as in ``mse_loss``; a weighted mean divides by the element count, as in PyTorch."""
    reduction = _reduction(reduction, None, None, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss(): delta must be positive, got {delta}")
    return _pointwise(HuberLoss, "huber_loss", input, target, reduction, weight, param=delta)


# --------------------------------------------------------------------------- class-index losses
def _class_layout(input, target, op):
    """Validate ``input``/``target`` and return ``(N, C, S)``, the target's shape, and whether unbatched."""
    shape = tuple(input.shape)
    if input.ndim == 0:
        raise ValueError(f"{op}(): input must have at least 1 dimension (C,) or (N, C, ...), got a scalar")
    unbatched = input.ndim == 1
    if unbatched:
        n, c, s = 1, shape[0], 1
        index_shape = ()
    else:
        n, c = shape[0], shape[1]
        s = int(np.prod(shape[2:], dtype=np.int64)) if input.ndim > 2 else 1
        index_shape = (n,) + shape[2:]
    return n, c, s, index_shape, unbatched


def _class_sums(p):
    """Sums over the class axis 1 of ``(N, C, S)`` probabilities, keepdims (for the common S = 1, row sums
    run by the ``row_sums`` kernel: ``reduce.sums_along``)."""
    if p.shape[2] == 1:
        return sums_along(p.reshape(p.shape[0], p.shape[1]), -1).reshape(p.shape[0], 1, 1)
    return p.sum(axis=1, keepdims=True)


def _class_indices(input, target, op, ignore_index, index_shape, c):
    """Check an index target: integer dtype, right shape, every value a class or ``ignore_index``."""
    t = target.array if isinstance(target, Tensor) else array_module(target).asarray(target)
    if t.dtype.kind not in "iu":
        if t.dtype.kind == "f":
            raise TypeError(f"{op}(): expected class indices as an integer tensor (dtype int64) of shape "
                            f"{index_shape}, got a float tensor of shape {tuple(t.shape)}. Class probabilities "
                            f"must have the same shape as the input {tuple(input.shape)}")
        raise TypeError(f"{op}(): expected class indices as an integer tensor (dtype int64), got dtype {t.dtype}")
    if tuple(t.shape) != index_shape:
        raise ValueError(f"{op}(): expected target of shape {index_shape} (class indices) for input of shape "
                         f"{tuple(input.shape)}, got target of shape {tuple(t.shape)}")
    if t.size and (t.min() < 0 or t.max() >= c):
        bad = (t != ignore_index) & ((t < 0) | (t >= c))
        if bad.any():
            value = int(t[bad].flat[0])
            raise IndexError(f"{op}(): target value {value} is out of bounds for {c} classes (expected class "
                             f"indices in [0, {c - 1}] or ignore_index={ignore_index})")
    return t


def _class_weight(weight, c, dtype, op):
    if weight is None:
        return None
    w = weight.array if isinstance(weight, Tensor) else array_module(weight).asarray(weight)
    if w.shape != (c,):
        raise ValueError(f"{op}(): weight must have shape ({c},), one value per class, got {tuple(w.shape)}")
    return w.astype(dtype, copy=False)


class CrossEntropy(Function):
    """Fused log-softmax over axis 1 and negative log-likelihood of class indices, with class weights,
    ``ignore_index`` and label smoothing, on the view ``x (N, C, S)``, ``t (N, S)``.

    Backward reuses the softmax computed here: ``dx = g * (w_t * softmax - w_t * onehot)`` (plus the
    smoothing term). The target entries are addressed by flat indices into the contiguous ``(N, C, S)``
    arrays, which is cheaper than ``take_along_axis`` for the usual small batches.
    """

    def forward(ctx, x, t, weight, view=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        xp = array_module(x)
        ctx.in_shape, ctx.out_shape = x.shape, t.shape
        n, c, s = view
        ctx.fast = None
        if s == 1:
            from ..kernels import _select

            x2, t1 = x.reshape(n, c), t.reshape(n)
            ctx.fast = _select.implementation("cross_entropy", _select.choose("cross_entropy", x2, t1, weight))
            if ctx.fast is not None:
                return _fused_cross_entropy(ctx, x2, t1, weight, ignore_index, reduction, label_smoothing)
        x = x.reshape(view)
        t = t.reshape(n, s)
        dtype = x.dtype
        valid = t != ignore_index
        all_valid = bool(valid.all())
        tt = t if all_valid else xp.where(valid, t, 0)
        flat = xp.arange(n)[:, None] * c + tt
        if s != 1:
            flat = flat * s + xp.arange(s)
        eps = label_smoothing
        z = x - x.max(axis=1, keepdims=True)
        # Everything needed from the shifted logits is read before exp overwrites them in place.
        z_target = z.reshape(-1)[flat]
        if eps > 0:
            z_sum = xp.einsum("ncs,c->ns", z, weight) if weight is not None else z.sum(axis=1)
        p = xp.exp(z, out=z)
        total = _class_sums(p)
        p /= total
        lse = xp.log(total).reshape(n, s)
        loss = lse - z_target
        if weight is not None:
            w_t = weight[tt]
            if not all_valid:
                w_t *= valid
        else:
            w_t = None if all_valid else valid.astype(dtype)
        if w_t is not None:
            loss *= w_t
        if eps > 0:
            loss *= dtype.type(1 - eps)
            # -sum_c w_c log p_c = lse * sum_c w_c - sum_c w_c z_c, zero where ignored.
            smooth = lse * (weight.sum() if weight is not None else dtype.type(c)) - z_sum
            if not all_valid:
                smooth *= valid
            smooth *= dtype.type(eps / c)
            loss += smooth
        ctx.denom = None
        if reduction == "mean":
            ctx.denom = float(n * s) if w_t is None else float(w_t.sum(dtype=np.float64))
        ctx.save_for_backward(p, flat, w_t, None if all_valid else valid, weight)
        ctx.reduction = reduction
        ctx.eps = eps
        return _reduce(loss, reduction, xp, ctx.denom).reshape(ctx.out_shape if reduction == "none" else ())

    def backward(ctx, grad):
        p, flat, w_t, valid, weight = ctx.saved
        n, c, s = p.shape
        dtype = p.dtype
        eps = ctx.eps
        if ctx.denom == 0:
            # Every target ignored: the mean is NaN but, as in PyTorch, no gradient flows.
            return array_module(p).zeros(ctx.in_shape, dtype=dtype), None, None
        g = _grad_scale(grad, ctx.reduction, None, ctx.denom)
        if ctx.fast is not None:
            dx = ctx.fast.backward(p.reshape(n, c), ctx.target, weight, ctx.ignore_index, eps, g)
            return dx.reshape(ctx.in_shape), None, None
        if ctx.reduction == "none":
            g = g.reshape(n, s)
        if eps == 0 and w_t is None and g.ndim == 0:
            # The common case: no weights, nothing ignored, a mean or sum.
            dx = p * g
            dx.reshape(-1)[flat] -= g
            return dx.reshape(ctx.in_shape), None, None
        xp = array_module(p)
        hard = g * w_t if w_t is not None else xp.broadcast_to(g, (n, s))
        if eps > 0:
            hard = hard * dtype.type(1 - eps)
            total_w = weight.sum() if weight is not None else dtype.type(c)
            soft = g * dtype.type(eps / c)
            if valid is not None:
                soft = soft * valid
            soft = xp.broadcast_to(soft, (n, s))
            dx = p * (hard + soft * total_w)[:, None, :]
            dx -= soft[:, None, :] * (weight[None, :, None] if weight is not None else dtype.type(1))
        else:
            dx = p * hard[:, None, :]
        dx.reshape(-1)[flat] -= hard
        return dx.reshape(ctx.in_shape), None, None

    def grad_graph(ctx, grad):
        from .shape import broadcast_to, reshape

        p, flat, w_t, valid, weight = ctx.saved
        n, c, s = p.shape
        xp = array_module(p)
        if ctx.denom == 0:
            return Tensor(xp.zeros(ctx.in_shape, dtype=p.dtype)), None, None
        from ..autograd.higher_order import softmax_graph

        p_t = softmax_graph(ctx, p, 1, ctx.in_shape)
        g = _grad_scale(grad, ctx.reduction, None, ctx.denom)
        if ctx.reduction == "none":
            g = reshape(g, (n, s))

        def column(t):  # (n, s) or a scalar -> broadcast against (n, c, s)
            return t if t.ndim == 0 else reshape(broadcast_to(t, (n, s)), (n, 1, s))

        hard = g * Tensor(w_t) if w_t is not None else g
        onehot = xp.zeros(n * c * s, dtype=p.dtype)
        onehot[flat.reshape(-1)] = 1
        onehot = Tensor(onehot.reshape(n, c, s))
        if ctx.eps > 0:
            hard = hard * (1 - ctx.eps)
            total_w = float(weight.sum()) if weight is not None else float(c)
            soft = g * (ctx.eps / c)
            if valid is not None:
                soft = soft * Tensor(valid.astype(p.dtype))
            dx = p_t * column(hard + soft * total_w)
            dx = dx - column(soft) * (Tensor(weight[None, :, None]) if weight is not None else 1)
        else:
            dx = p_t * column(hard)
        dx = dx - onehot * column(hard)
        return reshape(dx, ctx.in_shape), None, None


def _fused_cross_entropy(ctx, x2, t1, weight, ignore_index, reduction, label_smoothing):
    """``CrossEntropy.forward`` on the ``cross_entropy`` kernel ``ctx.fast`` (``(n, c)`` logits, ``(n,)``
    targets), saving what the reference saves so that backward and double backward read the same."""
    n, c = x2.shape
    loss, total, denom, p, w_t, flat, ignored = ctx.fast.forward(x2, t1, weight, ignore_index, label_smoothing)
    all_valid = ignored == 0
    keep_w = weight is not None or not all_valid
    ctx.denom = None
    if reduction == "mean":
        ctx.denom = float(n) if not keep_w else float(denom)
    ctx.target, ctx.ignore_index = t1, ignore_index
    ctx.save_for_backward(p.reshape(n, c, 1), flat.reshape(n, 1), w_t.reshape(n, 1) if keep_w else None,
                          None if all_valid else (t1 != ignore_index).reshape(n, 1), weight)
    ctx.reduction = reduction
    ctx.eps = label_smoothing
    if reduction == "none":
        return loss.reshape(ctx.out_shape)
    if reduction == "sum":
        return np.asarray(total, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.float32(total) / np.float32(ctx.denom), dtype=np.float32)


class SoftCrossEntropy(Function):
    """Cross-entropy against class probabilities ``t`` shaped like ``x (N, C, S)``; the mean divides by
    ``N * S`` (not by weights), as in PyTorch."""

    def forward(ctx, x, t, weight, view=None, out_shape=None, reduction="mean", label_smoothing=0.0,
                target_grad=False):
        xp = array_module(x)
        ctx.in_shape, ctx.out_shape = x.shape, out_shape
        x = x.reshape(view)
        t = t.reshape(view)
        c = x.shape[1]
        dtype = x.dtype
        z = x - x.max(axis=1, keepdims=True)
        p = xp.exp(z)
        s = _class_sums(p)
        p /= s
        logp = z - xp.log(s)
        eps = label_smoothing
        if eps > 0:
            t = t * dtype.type(1 - eps) + dtype.type(eps / c)
        tw = t * weight[None, :, None] if weight is not None else t
        loss = -xp.einsum("ncs,ncs->ns", logp, tw)
        ctx.save_for_backward(p, tw, logp if target_grad else None, weight)
        ctx.reduction = reduction
        ctx.eps = eps
        return _reduce(loss, reduction, xp).reshape(out_shape if reduction == "none" else ())

    def backward(ctx, grad):
        p, tw, logp, weight = ctx.saved
        n, c, s = p.shape
        g = _grad_scale(grad, ctx.reduction, n * s)
        g3 = g.reshape(n, 1, s) if ctx.reduction == "none" else g
        dx = p * tw.sum(axis=1, keepdims=True)
        dx -= tw
        dx *= g3
        dt = None
        if logp is not None and ctx.needs(1):
            dt = -logp * g3
            if weight is not None:
                dt *= weight[None, :, None]
            if ctx.eps > 0:
                dt *= p.dtype.type(1 - ctx.eps)
            dt = dt.reshape(ctx.in_shape)
        return dx.reshape(ctx.in_shape), dt, None

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        p, tw, logp, weight = ctx.saved
        n, c, s = p.shape
        from ..autograd.higher_order import softmax_graph

        p_t = softmax_graph(ctx, p, 1, ctx.in_shape)
        scale = (1 - ctx.eps) * (weight[None, :, None] if weight is not None else 1)
        scale = Tensor(np.asarray(scale, dtype=p.dtype))
        # tw = (target (1 - eps) + eps / c) * weight
        tw_t = ctx.graph_derived(tw, [ctx.graph_parent(1)], lambda g, _: (reshape(g * scale, ctx.in_shape),))
        g = _grad_scale(grad, ctx.reduction, n * s)
        g3 = reshape(g, (n, 1, s)) if ctx.reduction == "none" else g
        dx = (p_t * sum_(tw_t, 1, keepdim=True) - tw_t) * g3
        dt = None
        if logp is not None and ctx.graph_needs(1):
            # logp = log_softmax(input): its Jacobian is g - p sum(g).
            logp_t = ctx.graph_derived(logp, [ctx.graph_parent(0)],
                                       lambda g, _: (reshape(g - p_t * sum_(g, 1, keepdim=True), ctx.in_shape),))
            dt = reshape(-logp_t * g3 * scale, ctx.in_shape)
        return reshape(dx, ctx.in_shape), dt, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets: ``log_softmax`` over the class dimension and the negative
    log-likelihood, in one fused op.

    ``input``: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``. ``target``: class indices
    (int64) ``(N,)``, ``(N, d1, ...)`` or ``()``, or class probabilities shaped like ``input`` (float).
    ``weight`` ``(C,)`` rescales each class; targets equal to ``ignore_index`` contribute nothing and the
    weighted mean divides by the sum of the weights of the counted targets. ``label_smoothing`` in
    [0, 1] mixes the target with the uniform distribution. Returns a scalar, or per-sample losses shaped
    like the index target for ``reduction='none'``.

    >>> loss = cross_entropy(logits, labels)            # logits (N, C), labels (N,)
    """
    op = "cross_entropy"
    reduction = _reduction(reduction, size_average, reduce, op)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}(): label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    input = _float_input(input, op)
    target = ensure_tensor(target, op, "target")
    n, c, s, index_shape, unbatched = _class_layout(input, target, op)
    w = _class_weight(weight, c, input.dtype, op)
    if target.dtype.kind == "f" and tuple(target.shape) == tuple(input.shape):
        target = _match_float(target, input.dtype, op, "target")
        return SoftCrossEntropy.apply(input, target, w, view=(n, c, s), out_shape=index_shape, reduction=reduction,
                                      label_smoothing=label_smoothing, target_grad=target.requires_grad)
    t = _class_indices(input, target, op, ignore_index, index_shape, c)
    return CrossEntropy.apply(input, t, w, view=(n, c, s), ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=label_smoothing)


class NLLLoss(Function):
    """Negative log-likelihood of class indices ``t (N, S)`` under log-probabilities ``x (N, C, S)``."""

    def forward(ctx, x, t, weight, view=None, ignore_index=-100, reduction="mean"):
        xp = array_module(x)
        ctx.in_shape, out_shape = x.shape, t.shape
        x = x.reshape(view)
        t = t.reshape(view[0], view[2])
        valid = t != ignore_index
        tt = xp.where(valid, t, 0)[:, None, :]
        w_t = weight[tt[:, 0, :]] * valid if weight is not None else valid.astype(x.dtype)
        loss = -xp.take_along_axis(x, tt, axis=1)[:, 0, :] * w_t
        ctx.denom = float(w_t.sum(dtype=np.float64)) if reduction == "mean" else None
        ctx.save_for_backward(tt, w_t)
        ctx.shape = x.shape
        ctx.reduction = reduction
        return _reduce(loss, reduction, xp, ctx.denom).reshape(out_shape if reduction == "none" else ())

    def backward(ctx, grad):
        tt, w_t = ctx.saved
        xp = array_module(grad)
        if ctx.denom == 0:
            return xp.zeros(ctx.in_shape, dtype=grad.dtype), None, None
        g = _grad_scale(grad, ctx.reduction, None, ctx.denom)
        g = g.reshape(w_t.shape) if ctx.reduction == "none" else g
        dx = xp.zeros(ctx.shape, dtype=grad.dtype)
        xp.put_along_axis(dx, tt, (-(g * w_t))[:, None, :], axis=1)
        return dx.reshape(ctx.in_shape), None, None

    def grad_graph(ctx, grad):
        from .index import Gather
        from .reduce import sum as sum_
        from .shape import reshape

        tt, w_t = ctx.saved
        if ctx.denom == 0:
            return Tensor(array_module(w_t).zeros(ctx.in_shape, dtype=grad.dtype)), None, None
        out_shape = grad.shape

        def forward(v, vt, vw):  # the loss is linear in the input
            picked = reshape(Gather.apply(reshape(v, ctx.shape), 1, tt), w_t.shape) * Tensor(-w_t)
            if ctx.reduction == "none":
                return reshape(picked, out_shape)
            total = sum_(picked)
            return total / ctx.denom if ctx.reduction == "mean" else total

        gx = ctx.graph_linear((grad,), forward)[0]
        return gx, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood: ``-weight[t] * input[n, t]`` for log-probabilities ``input`` ``(N, C)``,
    ``(N, C, d1, ...)`` or ``(C,)`` and class indices ``target`` ``(N,)``, ``(N, d1, ...)`` or ``()``.
    Targets equal to ``ignore_index`` are skipped; the mean divides by the sum of the counted weights."""
    op = "nll_loss"
    reduction = _reduction(reduction, size_average, reduce, op)
    input = _float_input(input, op)
    target = ensure_tensor(target, op, "target")
    n, c, s, index_shape, unbatched = _class_layout(input, target, op)
    w = _class_weight(weight, c, input.dtype, op)
    t = _class_indices(input, target, op, ignore_index, index_shape, c)
    return NLLLoss.apply(input, t, w, view=(n, c, s), ignore_index=ignore_index, reduction=reduction)


# --------------------------------------------------------------------------- binary losses
class BinaryCrossEntropy(Function):
    """``-w * (t * log(x) + (1 - t) * log(1 - x))`` with each log clamped at -100, as PyTorch does."""

    def forward(ctx, x, t, w=None, reduction="mean"):
        xp = array_module(x)
        with np.errstate(divide="ignore"):
            log_x = xp.clip(xp.log(x), -100, INF)
            log_1mx = xp.clip(xp.log1p(-x), -100, INF)
        loss = -(t * (log_x - log_1mx) + log_1mx)
        if w is not None:
            loss = loss * w
        ctx.save_for_backward(x, t, w, log_x, log_1mx)
        ctx.reduction = reduction
        return _reduce(loss, reduction, xp)

    def backward(ctx, grad):
        x, t, w, log_x, log_1mx = ctx.saved
        g = _grad_scale(grad, ctx.reduction, x.size)
        if w is not None:
            g = g * w
        # PyTorch bounds the denominator x(1 - x) below by 1e-12.
        dx = (x - t) / array_module(x).maximum((1 - x) * x, x.dtype.type(1e-12)) * g
        dt = (log_1mx - log_x) * g if ctx.needs(1) else None
        return dx, dt, None

    def grad_graph(ctx, grad):
        from .elementwise import clamp, log, log1p

        x, t, w, log_x, log_1mx = ctx.saved
        tx, tt = ctx.graph_input(0, x), ctx.graph_input(1, t)
        g = _grad_scale(grad, ctx.reduction, x.size)
        if w is not None:
            g = g * ctx.graph_input(2, w)
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = (tx - tt) / clamp((1 - tx) * tx, 1e-12) * g
            dt = None
            if ctx.graph_needs(1):
                dt = (clamp(log1p(-tx), -100.0) - clamp(log(tx), -100.0)) * g
        return dx, dt, None


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy between probabilities ``input`` in [0, 1] and ``target`` of the same shape
    ``(*)``; ``weight`` broadcasts against them. Logs are clamped at -100 so a probability of exactly
    0 or 1 gives a finite loss."""
    op = "binary_cross_entropy"
    reduction = _reduction(reduction, size_average, reduce, op)
    input = _float_input(input, op)
    target = _match_float(ensure_tensor(target, op, "target"), input.dtype, op, "target")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}(): target of shape {tuple(target.shape)} must have the same shape as the input "
                         f"{tuple(input.shape)}")
    x = input.array
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise ValueError(f"{op}(): all elements of input should be probabilities between 0 and 1 (got values in "
                         f"[{np.nanmin(x):g}, {np.nanmax(x):g}]); for logits use binary_cross_entropy_with_logits")
    weight = _match_float((None if weight is None else ensure_tensor(weight, op, "weight")), input.dtype, op, "weight")
    if weight is not None:
        try:
            np.broadcast_shapes(tuple(weight.shape), tuple(input.shape))
        except ValueError:
            raise ValueError(f"{op}(): weight of shape {tuple(weight.shape)} cannot be broadcast to the input "
                             f"shape {tuple(input.shape)}") from None
    return BinaryCrossEntropy.apply(input, target, weight, reduction=reduction)


class BinaryCrossEntropyWithLogits(Function):
    """``(1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)``, times ``w``: stable for any logit."""

    def forward(ctx, x, t, w=None, pw=None, reduction="mean"):
        # softplus(-x) = max(-x, 0) + log1p(exp(-|x|)) never overflows.
        xp = array_module(x)
        sp = log1p_exp_neg_abs(x)
        sp -= xp.clip(x, -INF, 0)
        loss = xp.subtract(1, t, dtype=x.dtype)
        loss *= x
        if pw is not None:
            lw = (pw - 1) * t + 1
            loss += lw * sp
        else:
            lw = None
            loss += sp
        if w is not None:
            loss *= w
        ctx.save_for_backward(x, t, w, pw, lw, sp)
        ctx.reduction = reduction
        return _reduce(loss, reduction, xp)

    def backward(ctx, grad):
        x, t, w, pw, lw, sp = ctx.saved
        g = _grad_scale(grad, ctx.reduction, x.size)
        if w is not None:
            g = g * w
        xp = array_module(x)
        # d/dx = sigmoid(x) - t, or lw * sigmoid(x) - pw * t with a positive weight (PyTorch's forms).
        dx = _sigmoid(x)
        if lw is not None:
            dx *= lw
            dx -= pw * t
        else:
            dx -= t
        dx *= g
        dt = None
        if ctx.needs(1):
            dt = -x + (pw - 1) * sp if pw is not None else -x
            dt = dt * g
        dpw = None
        if pw is not None and ctx.needs(3):
            dpw = t * sp * g
        return dx, dt, None, dpw

    def grad_graph(ctx, grad):
        from .elementwise import sigmoid

        x, t, w, pw, lw, sp = ctx.saved
        tx, tt = ctx.graph_input(0, x), ctx.graph_input(1, t)
        g = _grad_scale(grad, ctx.reduction, x.size)
        if w is not None:
            g = g * ctx.graph_input(2, w)
        sig = sigmoid(tx)
        # sp = softplus(-x): its slope is -sigmoid(-x) = sig - 1.
        sp_t = ctx.graph_derived(sp, [tx], lambda gs, _: (gs * (sig - 1),))
        if pw is not None:
            tpw = ctx.graph_input(3, pw)
            dx = ((tpw - 1) * tt + 1) * sig - tpw * tt
        else:
            dx = sig - tt
        dx = dx * g
        dt = None
        if ctx.graph_needs(1):
            dt = (-tx + (tpw - 1) * sp_t if pw is not None else -tx) * g
        dpw = tt * sp_t * g if pw is not None and ctx.graph_needs(3) else None
        return dx, dt, None, dpw


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid and binary cross-entropy in one stable op, for logits ``input`` and ``target`` of the same
    shape ``(*)``. ``weight`` broadcasts against the input; ``pos_weight`` (e.g. ``(C,)`` for the last
    dimension) weights the positive term, trading recall against precision."""
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(reduction, size_average, reduce, op)
    input = _float_input(input, op)
    target = _match_float(ensure_tensor(target, op, "target"), input.dtype, op, "target")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}(): target size {tuple(target.shape)} must be the same as input size "
                         f"{tuple(input.shape)}")
    weight = _match_float((None if weight is None else ensure_tensor(weight, op, "weight")), input.dtype, op, "weight")
    pos_weight = _match_float((None if pos_weight is None else ensure_tensor(pos_weight, op, "pos_weight")), input.dtype, op, "pos_weight")
    for what, extra in (("weight", weight), ("pos_weight", pos_weight)):
        if extra is not None:
            try:
                np.broadcast_shapes(tuple(extra.shape), tuple(input.shape))
            except ValueError:
                raise ValueError(f"{op}(): {what} of shape {tuple(extra.shape)} cannot be broadcast to the input "
                                 f"shape {tuple(input.shape)}") from None
    return BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction=reduction)


# --------------------------------------------------------------------------- KL divergence
class KLDiv(Function):
    """``t * (log t - x)`` (0 where ``t == 0``), or ``exp(t) * (t - x)`` for a log-space target."""

    def forward(ctx, x, t, reduction="mean", log_target=False):
        xp = array_module(x)
        if log_target:
            et = xp.exp(t)
            loss = et * (t - x)
            ctx.save_for_backward(x, t, et)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_t = xp.log(t)
            tlogt = xp.where(t == 0, 0, t * log_t).astype(x.dtype, copy=False)
            loss = tlogt - t * x
            ctx.save_for_backward(x, t, log_t)
        ctx.reduction = reduction
        ctx.log_target = log_target
        if reduction == "batchmean":
            total = loss.sum(dtype=loss.dtype)
            ctx.denom = x.shape[0] if x.ndim else 1
            return xp.asarray(total / x.dtype.type(ctx.denom), dtype=x.dtype)
        ctx.denom = None
        return _reduce(loss, reduction, xp)

    def backward(ctx, grad):
        x, t, extra = ctx.saved
        reduction = "mean" if ctx.reduction == "batchmean" else ctx.reduction
        g = _grad_scale(grad, reduction, x.size, ctx.denom)
        dt = None
        if ctx.log_target:
            dx = -extra * g
            if ctx.needs(1):
                dt = extra * (t - x + 1) * g
        else:
            dx = -t * g
            if ctx.needs(1):
                dt = (extra + 1 - x) * g
        return dx, dt

    def grad_graph(ctx, grad):
        from .elementwise import exp, log

        x, t, extra = ctx.saved
        reduction = "mean" if ctx.reduction == "batchmean" else ctx.reduction
        g = _grad_scale(grad, reduction, x.size, ctx.denom)
        tx, tt = ctx.graph_input(0, x), ctx.graph_input(1, t)
        dt = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.log_target:
                et = exp(tt)
                dx = -et * g
                if ctx.graph_needs(1):
                    dt = et * (tt - tx + 1) * g
            else:
                dx = -tt * g
                if ctx.graph_needs(1):
                    dt = (log(tt) + 1 - tx) * g
        return dx, dt


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``KL(target || exp(input))`` for log-probabilities ``input`` and
    probabilities ``target`` (log-probabilities with ``log_target=True``) of the same shape ``(N, *)``.

    ``reduction='batchmean'`` divides the sum by ``N`` (the true KL divergence per sample); ``'mean'``
    divides by the number of elements, as PyTorch does (it warns that this is rarely wanted).
    """
    op = "kl_div"
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn("kl_div(): reduction='mean' divides the total loss by both the batch size and the support "
                      "size; 'batchmean' divides only by the batch size and matches the definition of KL "
                      "divergence.", stacklevel=2)
    reduction = _reduction(reduction, size_average, reduce, op, extra=("batchmean",))
    input = _float_input(input, op)
    target = _match_float(ensure_tensor(target, op, "target"), input.dtype, op, "target")
    _broadcast_pair(input, target, op)
    return KLDiv.apply(input, target, reduction=reduction, log_target=log_target)


# --------------------------------------------------------------------------- parameter penalties
class ParameterPenalty(Function):
    """``sum |p|`` (``kind='l1'``) or ``sum p**2`` (``kind='l2'``) over every input array, as one scalar.

    One node for all of a model's parameters keeps the graph small; used by ``nn.utils.regularization``.
    """

    def forward(ctx, *params, kind="l2"):
        ctx.save_for_backward(*params)
        ctx.kind = kind
        xp = array_module(params[0])
        dtype = params[0].dtype
        total = 0.0
        for p in params:
            flat = p.reshape(-1)
            total += float(xp.abs(flat).sum(dtype=np.float64)) if kind == "l1" else float(xp.dot(flat, flat))
        return xp.asarray(total, dtype=dtype)

    def backward(ctx, grad):
        xp = array_module(grad)
        out = []
        for i, p in enumerate(ctx.saved):
            if not ctx.needs(i):
                out.append(None)
            elif ctx.kind == "l1":
                out.append(xp.sign(p) * grad)
            else:
                out.append(p * (2 * grad))
        return tuple(out)

    def grad_graph(ctx, grad):
        out = []
        for i, p in enumerate(ctx.saved):
            if not ctx.graph_needs(i):
                out.append(None)
            elif ctx.kind == "l1":
                out.append(Tensor(array_module(p).sign(p)) * grad)
            else:
                out.append(ctx.graph_input(i, p) * (grad * 2))
        return tuple(out)
