"""Activation functions beyond the basic ones in ``elementwise``: hard and smooth variants, shrinkage,
PReLU (learned slope), RReLU (random slope) and GLU.

ReLU, LeakyReLU, GELU, SiLU, ELU, SELU, Softplus, Hardtanh, ReLU6, sigmoid and tanh live in
``ops/elementwise.py``; softmax, log_softmax and softmin in ``ops/reduce.py``. Each class here is one fused
``Function`` working on raw arrays, with the functional wrapper under PyTorch's name beside it.
"""
import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..random import numpy_rng
from ._util import INF, ensure_tensor, normalize_dim, one_element, select
from .elementwise import _leaky, _sigmoid, log1p_exp_neg_abs, one_where_positive, softplus_values

__all__ = [
    "hardsigmoid", "hardswish", "mish", "logsigmoid", "softsign", "tanhshrink", "softshrink", "hardshrink",
    "threshold", "celu", "prelu", "rrelu", "glu",
]


class Hardsigmoid(Function):
    """``relu6(x + 3) / 6``."""

    def forward(ctx, a):
        ctx.save_for_backward(a)
        out = a + a.dtype.type(3)
        array_module(a).clip(out, 0, 6, out=out)
        out *= a.dtype.type(1 / 6)
        return out

    def backward(ctx, grad):
        (a,) = ctx.saved
        # PyTorch passes the gradient only strictly inside (-3, 3).
        return grad * ((a > -3) & (a < 3)) * grad.dtype.type(1 / 6)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad * Tensor((((a > -3) & (a < 3)) / 6).astype(a.dtype))


class Hardswish(Function):
    """``x * relu6(x + 3) / 6``; keeps the gate ``relu6(x + 3) / 6`` for backward."""

    def forward(ctx, a):
        gate = a + a.dtype.type(3)
        array_module(a).clip(gate, 0, 6, out=gate)
        gate *= a.dtype.type(1 / 6)
        ctx.save_for_backward(a, gate)
        return a * gate

    def backward(ctx, grad):
        a, gate = ctx.saved
        # gate + x * gate' with gate' = 1/6 strictly inside (-3, 3): x/3 + 1/2 there, 0 from -3 down and 1
        # from 3 up, as PyTorch's kernel has it.
        xp = array_module(a)
        g = xp.clip(a, -3, 3)  # finite, so that the mask's zeros stay zeros at +-inf
        g *= a.dtype.type(1 / 6)
        g *= xp.abs(a) < 3
        g += gate
        g *= grad
        return g

    def grad_graph(ctx, grad):
        a, gate = ctx.saved
        slope = Tensor(((array_module(a).abs(a) < 3) / 6).astype(a.dtype))  # the gate's slope
        ta = ctx.graph_input(0, a)
        gate = ctx.graph_derived(gate, [ta], lambda g, _: (g * slope,))
        return grad * (gate + ta * slope)


class Mish(Function):
    """``x * tanh(softplus(x))``; keeps ``tanh(softplus(x))`` for backward."""

    def forward(ctx, a):
        xp = array_module(a)
        t = softplus_values(a)
        xp.tanh(t, out=t)
        ctx.save_for_backward(a, t)
        return a * t

    def backward(ctx, grad):
        a, t = ctx.saved
        # t + a sigmoid(a) (1 - t^2), in place on one buffer.
        g = t * t
        array_module(g).subtract(1, g, out=g)
        g *= _sigmoid(a)
        g *= a
        g += t
        g *= grad
        return g

    def grad_graph(ctx, grad):
        from .elementwise import sigmoid

        a, t = ctx.saved
        ta = ctx.graph_input(0, a)
        s = sigmoid(ta)
        # t = tanh(softplus(a)): its slope is (1 - t^2) sigmoid(a).
        t = ctx.graph_derived(t, [ta], lambda g, t: (g * (1 - t * t) * s,))
        return grad * (t + ta * s * (1 - t * t))


class Logsigmoid(Function):
    """``-softplus(-x) = min(x, 0) - log1p(exp(-|x|))``, stable for any x and without a branch."""

    def forward(ctx, a):
        ctx.save_for_backward(a)
        out = array_module(a).clip(a, -INF, 0)
        out -= log1p_exp_neg_abs(a)
        return out

    def backward(ctx, grad):
        (a,) = ctx.saved
        # sigmoid(-x) = 1 / (1 + exp(x)); exp overflowing to inf gives the exact limit 0.
        xp = array_module(a)
        with np.errstate(over="ignore"):
            e = xp.exp(a)
        e += 1
        return xp.divide(grad, e, out=e)

    def grad_graph(ctx, grad):
        from .elementwise import sigmoid

        (a,) = ctx.saved
        return grad * sigmoid(-ctx.graph_input(0, a))


class Softsign(Function):
    """``x / (1 + |x|)``."""

    def forward(ctx, a):
        denom = 1 + array_module(a).abs(a)
        # The input too: the derivative 1 / denom^2 alone does not give the second derivative.
        ctx.save_for_backward(denom, a)
        return a / denom

    def backward(ctx, grad):
        denom = ctx.saved[0]
        return grad / (denom * denom)

    def grad_graph(ctx, grad):
        denom = 1 + ctx.graph_input(0, ctx.saved[1]).abs()
        return grad / (denom * denom)


class Tanhshrink(Function):
    """``x - tanh(x)``."""

    def forward(ctx, a):
        t = array_module(a).tanh(a)
        ctx.save_for_backward(t)
        return a - t

    def backward(ctx, grad):
        (t,) = ctx.saved
        return grad * (t * t)

    def grad_graph(ctx, grad):
        (t,) = ctx.saved
        t = ctx.graph_derived(t, [ctx.graph_parent(0)], lambda g, t: (g * (1 - t * t),))
        return grad * (t * t)


class Softshrink(Function):
    """Shrink towards 0 by ``lambd``, zero inside ``[-lambd, lambd]``: ``x - clip(x, -lambd, lambd)``."""

    def forward(ctx, a, lambd=0.5):
        xp = array_module(a)
        lam = a.dtype.type(lambd)
        keep = xp.abs(a) > lam
        ctx.save_for_backward(keep)
        return a - xp.clip(a, -lam, lam)

    def backward(ctx, grad):
        (keep,) = ctx.saved
        return grad * keep

    def grad_graph(ctx, grad):
        (keep,) = ctx.saved
        return grad * Tensor(keep)


class Hardshrink(Function):
    """``x`` where ``|x| > lambd``, else 0."""

    def forward(ctx, a, lambd=0.5):
        keep = array_module(a).abs(a) > a.dtype.type(lambd)
        ctx.save_for_backward(keep)
        return a * keep

    def backward(ctx, grad):
        (keep,) = ctx.saved
        return grad * keep

    def grad_graph(ctx, grad):
        (keep,) = ctx.saved
        return grad * Tensor(keep)


class Threshold(Function):
    """``value`` where ``x <= threshold``, else ``x`` (NaN stays NaN, as in PyTorch)."""

    def forward(ctx, a, threshold, value):
        low = a <= threshold
        ctx.save_for_backward(low)
        return select(low, a.dtype.type(value), a)

    def backward(ctx, grad):
        (low,) = ctx.saved
        return select(low, 0, grad)

    def grad_graph(ctx, grad):
        from .elementwise import where

        (low,) = ctx.saved
        return where(Tensor(low), 0, grad)


class Celu(Function):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, with no branch per element."""

    def forward(ctx, a, alpha=1.0):
        xp = array_module(a)
        em1 = xp.clip(a, -INF, 0)
        em1 *= a.dtype.type(1 / alpha)
        xp.expm1(em1, out=em1)  # exp(min(x, 0) / alpha) - 1
        ctx.save_for_backward(a, em1)
        out = em1 * a.dtype.type(alpha)
        out += xp.clip(a, 0, INF)
        return out

    def backward(ctx, grad):
        a, em1 = ctx.saved
        g = one_where_positive(a, em1 + 1)
        g *= grad
        return g

    def grad_graph(ctx, grad):
        a, em1 = ctx.saved
        below = Tensor((a <= 0).astype(a.dtype))  # "a <= 0", as backward tests it
        pos = 1 - below
        ta = ctx.graph_input(0, a)
        # em1 = expm1(min(a, 0) / alpha): its slope is (em1 + 1) / alpha below 0, 0 above. forward kept no
        # alpha: it is a / log1p(em1) at the negative input where that ratio is best conditioned.
        xp = array_module(a)
        usable = (a < 0) & (em1 > -1)
        alpha = 1.0
        if usable.any():
            logs = xp.where(usable, xp.log1p(xp.where(usable, em1, 0)), 0)
            k = int(xp.argmin(xp.where(usable, xp.abs(logs + 0.5), xp.inf)))
            alpha = float(a.reshape(-1)[k] / logs.reshape(-1)[k])
        em1 = ctx.graph_derived(em1, [ta], lambda g, em1: (g * below * (em1 + 1) * (1 / alpha),))
        return grad * (pos + below * (em1 + 1))


class Prelu(Function):
    """``x`` where positive, ``weight * x`` elsewhere; ``weight`` has one slope or one per channel (dim 1)."""

    def forward(ctx, a, weight):
        if weight.size > 1 and a.ndim >= 2:
            w = weight.reshape((1, weight.size) + (1,) * (a.ndim - 2))
        elif weight.size > 1:
            w = weight
        else:
            w = weight.reshape(())
        ctx.save_for_backward(a, w)
        ctx.wshape = weight.shape
        return _leaky(a, w)

    def backward(ctx, grad):
        a, w = ctx.saved
        xp = array_module(grad)
        gx = one_where_positive(a, w)
        gx *= grad
        # The slope's gradient: grad * x summed where x <= 0, i.e. over grad * min(x, 0).
        g_neg = xp.clip(a, -INF, 0)
        g_neg *= grad
        if w.ndim == 0:
            gw = g_neg.sum(dtype=grad.dtype).reshape(ctx.wshape)
        elif a.ndim >= 2:
            axes = (0,) + tuple(range(2, a.ndim))
            gw = g_neg.sum(axis=axes).reshape(ctx.wshape)
        else:
            gw = g_neg.reshape(ctx.wshape)
        return gx, gw.astype(grad.dtype, copy=False)

    def grad_graph(ctx, grad):
        from ..autograd.higher_order import sum_to_shape
        from .shape import reshape

        a, w = ctx.saved
        ta = ctx.graph_input(0, a)
        tw = reshape(ctx.graph_input(1, w.reshape(ctx.wshape)), w.shape)
        pos = Tensor((a > 0).astype(a.dtype))
        below = 1 - pos
        gx = grad * (pos + below * tw)
        gw = None
        if ctx.graph_needs(1):
            gw = reshape(sum_to_shape(grad * ta * below, w.shape), ctx.wshape)
        return gx, gw


class Rrelu(Function):
    """Leaky ReLU with given per-element (or one) negative slopes."""

    def forward(ctx, a, slopes):
        ctx.save_for_backward(a, slopes)
        return _leaky(a, slopes)

    def backward(ctx, grad):
        a, slopes = ctx.saved
        g = one_where_positive(a, slopes)
        g *= grad
        return g, None

    def grad_graph(ctx, grad):
        a, slopes = ctx.saved
        return grad * Tensor(one_where_positive(a, slopes)), None


class Glu(Function):
    """``a * sigmoid(b)`` for the two halves ``a, b`` of ``dim``."""

    def forward(ctx, a, dim=-1):
        first, second = array_module(a).split(a, 2, axis=dim)
        gate = _sigmoid(second)
        ctx.save_for_backward(first, gate)
        ctx.dim = dim
        return first * gate

    def backward(ctx, grad):
        first, gate = ctx.saved
        g_first = grad * gate
        g_second = g_first * first * (1 - gate)
        return array_module(grad).concatenate([g_first, g_second], axis=ctx.dim)

    def grad_graph(ctx, grad):
        from .shape import cat

        first, gate = ctx.saved
        parent = ctx.graph_parent(0)
        dim = ctx.dim
        zero = Tensor(array_module(gate).zeros_like(gate))
        first = ctx.graph_derived(first, [parent], lambda g, _: (cat([g, zero], dim),))
        gate = ctx.graph_derived(gate, [parent], lambda g, gate: (cat([zero, g * gate * (1 - gate)], dim),))
        g_first = grad * gate
        return cat([g_first, g_first * first * (1 - gate)], dim)


def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``, elementwise; any shape."""
    x = ensure_tensor(input, "hardsigmoid")
    if x.array.ndim == 0:
        return one_element(hardsigmoid, x)
    return Hardsigmoid.apply(x)


def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6``, elementwise (MobileNetV3); any shape."""
    x = ensure_tensor(input, "hardswish")
    if x.array.ndim == 0:
        return one_element(hardswish, x)
    return Hardswish.apply(x)


def mish(input, inplace=False):
    """``x * tanh(softplus(x))``, elementwise; any shape."""
    x = ensure_tensor(input, "mish")
    if x.array.ndim == 0:
        return one_element(mish, x)
    return Mish.apply(x)


def logsigmoid(input):
    """``log(sigmoid(x)) = -softplus(-x)``, stable for any x; any shape."""
    x = ensure_tensor(input, "logsigmoid")
    if x.array.ndim == 0:
        return one_element(logsigmoid, x)
    return Logsigmoid.apply(x)


def softsign(input):
    """``x / (1 + |x|)``, elementwise; any shape."""
    return Softsign.apply(ensure_tensor(input, "softsign"))


def tanhshrink(input):
    """``x - tanh(x)``, elementwise; any shape."""
    return Tanhshrink.apply(ensure_tensor(input, "tanhshrink"))


def softshrink(input, lambd=0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, 0 between; any shape."""
    if lambd < 0:
        raise ValueError(f"softshrink(): lambd must be non-negative, got {lambd}")
    x = ensure_tensor(input, "softshrink")
    if x.array.ndim == 0:
        return one_element(softshrink, x, lambd)
    return Softshrink.apply(x, lambd=lambd)


def hardshrink(input, lambd=0.5):
    """``x`` where ``|x| > lambd``, else 0; any shape."""
    x = ensure_tensor(input, "hardshrink")
    if x.array.ndim == 0:
        return one_element(hardshrink, x, lambd)
    return Hardshrink.apply(x, lambd=lambd)


def threshold(input, threshold, value, inplace=False):
    """``x`` where ``x > threshold``, else ``value``; any shape."""
    return Threshold.apply(ensure_tensor(input, "threshold"), threshold=threshold, value=value)


def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``; any shape."""
    if alpha == 0:
        raise ValueError("celu(): alpha must not be 0 (it divides x)")
    x = ensure_tensor(input, "celu")
    if x.array.ndim == 0:
        return one_element(celu, x, alpha)
    return Celu.apply(x, alpha=alpha)


def prelu(input, weight):
    """Leaky ReLU with a learned slope: ``weight`` of shape ``(1,)`` or ``(C,)`` where ``C`` is dim 1 of
    ``input`` ``(N, C, *)``."""
    input = ensure_tensor(input, "prelu")
    weight = ensure_tensor(weight, "prelu")
    n = weight.array.size
    if weight.array.ndim > 1:
        raise ValueError(f"prelu(): weight must be 1-D or a scalar, got shape {tuple(weight.shape)}")
    if n > 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim == 1 else 1)
        if channels != n:
            raise ValueError(f"prelu(): weight has {n} slopes but the input of shape {tuple(input.shape)} has "
                             f"{channels} channels (dim 1); use one slope or one per channel")
    if input.array.ndim == 0:
        return one_element(prelu, input, weight)
    return Prelu.apply(input, weight)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False, generator=None):
    """Randomized leaky ReLU: negative inputs are scaled by a slope drawn from ``U(lower, upper)`` per
    element in training, by ``(lower + upper) / 2`` in evaluation; any shape."""
    input = ensure_tensor(input, "rrelu")
    if not 0 <= lower <= upper:
        raise ValueError(f"rrelu(): expected 0 <= lower <= upper, got lower={lower}, upper={upper}")
    if input.array.ndim == 0:
        return one_element(rrelu, input, lower, upper, training, generator=generator)
    dtype = input.dtype
    if training:
        rng = numpy_rng(generator)
        slopes = rng.random(input.shape, dtype=np.float32 if dtype == np.float32 else np.float64)
        slopes = (slopes * (upper - lower) + lower).astype(dtype, copy=False)
    else:
        slopes = array_module(input.array).asarray((lower + upper) / 2, dtype=dtype)
    return Rrelu.apply(input, slopes)


def glu(input, dim=-1):
    """Gated linear unit: splits ``input`` in two halves ``a, b`` along ``dim`` and returns ``a * sigmoid(b)``.

    ``(*, 2K, *) -> (*, K, *)``.
    """
    input = ensure_tensor(input, "glu")
    if input.ndim == 0:
        raise RuntimeError("glu(): does not support scalars because halving size must be even")
    d = normalize_dim(dim, input.ndim, "glu")
    if input.shape[d] % 2:
        raise RuntimeError(f"glu(): halving dimension must be even, but dimension {dim} of shape "
                           f"{tuple(input.shape)} has size {input.shape[d]}")
    return Glu.apply(input, dim=d)
