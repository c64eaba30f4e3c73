"""Elementwise ops: arithmetic with broadcasting, unary math and activations, comparisons."""
import functools
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..backend import array_module
from ._util import INF, LOG2_E, as_operand, exp2_, install, select

__all__ = [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "pow", "neg", "negative", "abs",
    "exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt", "square", "sin", "cos", "tan", "tanh",
    "sigmoid", "relu", "relu6", "leaky_relu", "gelu", "silu", "elu", "selu", "softplus", "hardtanh", "clamp",
    "clip", "maximum", "minimum", "where", "sign", "reciprocal", "floor", "ceil", "round", "trunc",
    "floor_divide", "remainder", "fmod", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "logical_not", "logical_xor", "isnan", "isinf", "isfinite", "erf", "lerp", "nan_to_num",
]


# --------------------------------------------------------------------------- dtype promotion
def _binary_operands(a, b, op):
    """Convert both operands and apply PyTorch's promotion where NumPy's would differ."""
    a = as_operand(a)
    b = as_operand(b)
    ta = isinstance(a, Tensor)
    tb = isinstance(b, Tensor)
    # An integer or bool tensor meeting a Python float becomes float32 (NumPy would pick float64).
    if ta and not tb and isinstance(b, float) and a.array.dtype.kind in "biu":
        a = _cast(a, backend.default_float)
    elif tb and not ta and isinstance(a, float) and b.array.dtype.kind in "biu":
        b = _cast(b, backend.default_float)
    elif ta and tb:
        ka, kb = a.array.dtype.kind, b.array.dtype.kind
        # A 0-d tensor does not widen a dimensioned tensor of the same category (PyTorch's rule).
        if ka == "f" and kb == "f" and a.array.dtype != b.array.dtype:
            if b.array.ndim == 0 and a.array.ndim > 0:
                b = _cast(b, a.array.dtype)
            elif a.array.ndim == 0 and b.array.ndim > 0:
                a = _cast(a, b.array.dtype)
        elif ka == "f" and kb in "biu":
            b = _cast(b, a.array.dtype)
        elif kb == "f" and ka in "biu":
            a = _cast(a, b.array.dtype)
    return a, b


def _cast(t, dtype):
    from .shape import to_dtype as _to

    return _to(t, dtype)


def _float_operand(x):
    """Integer tensors used in float math (exp, sqrt, true division) become float32, like PyTorch."""
    if isinstance(x, Tensor) and x.array.dtype.kind in "biu":
        return _cast(x, backend.default_float)
    return x


def _shape_error(op, a, b):
    sa = tuple(getattr(a, "shape", ()))
    sb = tuple(getattr(b, "shape", ()))
    return RuntimeError(f"{op}: shapes {sa} and {sb} cannot be broadcast together "
                        f"(trailing dimensions must be equal or 1)")


# --------------------------------------------------------------------------- binary arithmetic
class Add(Function):
    def forward(ctx, a, b):
        try:
            return a + b
        except ValueError:
            raise _shape_error("add", a, b) from None

    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    def forward(ctx, a, b):
        try:
            return a - b
        except ValueError:
            raise _shape_error("sub", a, b) from None

    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a * b
        except ValueError:
            raise _shape_error("mul", a, b) from None

    def backward(ctx, grad):
        a, b = ctx.saved
        return grad * b, grad * a


class Div(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a / b
        except ValueError:
            raise _shape_error("div", a, b) from None

    def backward(ctx, grad):
        a, b = ctx.saved
        ga = grad / b
        return ga, (-ga * a / b) if not isinstance(b, (bool, int, float)) else None


class Pow(Function):
    def forward(ctx, a, b):
        try:
            out = a ** b
        except ValueError:
            raise _shape_error("pow", a, b) from None
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        xp = array_module(grad)
        ga = gb = None
        if not isinstance(a, (bool, int, float)):
            if isinstance(b, (int, float)):
                ga = grad * (b * a ** (b - 1)) if b != 0 else xp.zeros_like(grad * a)
            else:
                ga = grad * b * a ** (b - 1)
                ga = xp.where(b == 0, 0, ga).astype(ga.dtype, copy=False)
        if not isinstance(b, (bool, int, float)):
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = xp.log(a)
                gb = grad * out * logs
            gb = xp.where((xp.asarray(a) == 0) & (b >= 0), 0, gb).astype(gb.dtype, copy=False)
        return ga, gb


class Maximum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return array_module(a, b).maximum(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved
        # Ties share the gradient equally, as in PyTorch.
        wa = (a > b) + 0.5 * (a == b)
        return grad * wa.astype(grad.dtype), grad * (1 - wa).astype(grad.dtype)


class Minimum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return array_module(a, b).minimum(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved
        wa = (a < b) + 0.5 * (a == b)
        return grad * wa.astype(grad.dtype), grad * (1 - wa).astype(grad.dtype)


class Where(Function):
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return select(cond, a, b)

    def backward(ctx, grad):
        (cond,) = ctx.saved
        return None, select(cond, grad, 0), select(cond, grad.dtype.type(0), grad)


class Lerp(Function):
    def forward(ctx, a, b, w):
        ctx.save_for_backward(a, b, w)
        return a + w * (b - a)

    def backward(ctx, grad):
        a, b, w = ctx.saved
        gw = grad * (b - a) if not isinstance(w, (bool, int, float)) else None
        return grad * (1 - w), grad * w, gw


def add(input, other, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    a, b = _binary_operands(input, other, "add")
    if alpha != 1:
        b = mul(b, alpha)
    return Add.apply(a, b)


def sub(input, other, alpha=1):
    a, b = _binary_operands(input, other, "sub")
    if alpha != 1:
        b = mul(b, alpha)
    return Sub.apply(a, b)


def mul(input, other):
    a, b = _binary_operands(input, other, "mul")
    return Mul.apply(a, b)


def div(input, other, rounding_mode=None):
    """True division (integers become float32); ``rounding_mode`` 'floor' or 'trunc' gives no gradient."""
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        return trunc(div(input, other))
    if rounding_mode is not None:
        raise ValueError(f"div(): rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    a, b = _binary_operands(input, other, "div")
    return Div.apply(_float_operand(a), _float_operand(b))


def pow(input, exponent):
    a, b = _binary_operands(input, exponent, "pow")
    if isinstance(a, Tensor) and a.array.dtype.kind in "iu" and isinstance(b, int) and b < 0:
        raise RuntimeError("pow(): integers to negative integer powers are not allowed")
    return Pow.apply(a, b)


def maximum(input, other):
    a, b = _binary_operands(input, other, "maximum")
    return Maximum.apply(a, b)


def minimum(input, other):
    a, b = _binary_operands(input, other, "minimum")
    return Minimum.apply(a, b)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; with one argument, the nonzero indices."""
    if input is None and other is None:
        from .index import nonzero

        return nonzero(condition, as_tuple=True)
    cond = condition.array if isinstance(condition, Tensor) else array_module(condition).asarray(condition)
    if cond.dtype != np.bool_:
        cond = cond.astype(bool)
    a, b = _binary_operands(input, other, "where")
    return Where.apply(cond, a, b)


def lerp(input, end, weight):
    a, b = _binary_operands(input, end, "lerp")
    return Lerp.apply(a, b, as_operand(weight))


def subtract(input, other, alpha=1):
    return sub(input, other, alpha)


def multiply(input, other):
    return mul(input, other)


def divide(input, other, rounding_mode=None):
    return div(input, other, rounding_mode)


true_divide = divide


# --------------------------------------------------------------------------- results without gradient
class _NoGrad(Function):
    differentiable = False


class FloorDivide(_NoGrad):
    def forward(ctx, a, b):
        return array_module(a, b).floor_divide(a, b)


class Remainder(_NoGrad):
    def forward(ctx, a, b):
        return array_module(a, b).remainder(a, b)


class Fmod(_NoGrad):
    def forward(ctx, a, b):
        return array_module(a, b).fmod(a, b)


def floor_divide(input, other):
    a, b = _binary_operands(input, other, "floor_divide")
    return FloorDivide.apply(a, b)


def remainder(input, other):
    a, b = _binary_operands(input, other, "remainder")
    return Remainder.apply(a, b)


def fmod(input, other):
    a, b = _binary_operands(input, other, "fmod")
    return Fmod.apply(a, b)


def _compare(func, name):
    """A comparison op calling the array function named ``func`` (a name, not NumPy's function, so that the
    operands' own array library does the work)."""

    class Compare(_NoGrad):
        def forward(ctx, a, b):
            try:
                return getattr(array_module(a, b), func)(a, b)
            except ValueError:
                raise _shape_error(name, a, b) from None

    Compare.__name__ = Compare.__qualname__ = name.capitalize()

    def op(input, other):
        a, b = _binary_operands(input, other, name)
        return Compare.apply(a, b)

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}``: a bool tensor, no gradient."
    return op


eq = _compare("equal", "eq")
ne = _compare("not_equal", "ne")
lt = _compare("less", "lt")
le = _compare("less_equal", "le")
gt = _compare("greater", "gt")
ge = _compare("greater_equal", "ge")
logical_and = _compare("logical_and", "logical_and")
logical_or = _compare("logical_or", "logical_or")
logical_xor = _compare("logical_xor", "logical_xor")


def _unary_nograd(func, name):
    """A gradient-free unary op calling the array function named ``func`` in the input's array library."""

    class Op(_NoGrad):
        def forward(ctx, a):
            return getattr(array_module(a), func)(a)

    Op.__name__ = Op.__qualname__ = name.capitalize()

    def op(input):
        return Op.apply(as_operand(input) if not isinstance(input, Tensor) else input)

    op.__name__ = name
    return op


logical_not = _unary_nograd("logical_not", "logical_not")
isnan = _unary_nograd("isnan", "isnan")
isinf = _unary_nograd("isinf", "isinf")
isfinite = _unary_nograd("isfinite", "isfinite")
sign = _unary_nograd("sign", "sign")
floor = _unary_nograd("floor", "floor")
ceil = _unary_nograd("ceil", "ceil")
trunc = _unary_nograd("trunc", "trunc")


class Round(_NoGrad):
    def forward(ctx, a, decimals=0):
        return array_module(a).round(a, decimals)


def round(input, decimals=0):  # noqa: A001
    return Round.apply(input, decimals=decimals)


# --------------------------------------------------------------------------- unary math
class Neg(Function):
    def forward(ctx, a):
        return -a

    def backward(ctx, grad):
        return -grad


class Abs(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).abs(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * array_module(a).sign(a)


class Exp(Function):
    def forward(ctx, a):
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Expm1(Function):
    def forward(ctx, a):
        out = array_module(a).expm1(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (out + 1)


class Log(Function):
    """Natural, base-2 and base-10 logarithms: d/da log_b(a) = 1 / (a ln b)."""

    _functions = {None: "log", 2: "log2", 10: "log10"}

    def forward(ctx, a, base=None):
        ufunc = getattr(array_module(a), ctx._functions[base])
        ctx.save_for_backward(a)
        ctx.base = base
        with np.errstate(divide="ignore", invalid="ignore"):
            return ufunc(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        if ctx.base is None:
            return grad / a
        return grad / (a * a.dtype.type(math.log(ctx.base)))


class Log1p(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return array_module(a).log1p(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad / (1 + a)


class Sqrt(Function):
    def forward(ctx, a):
        xp = array_module(a)
        with np.errstate(invalid="ignore"):
            out = xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        with np.errstate(divide="ignore"):
            return grad / (2 * out)


class Rsqrt(Function):
    def forward(ctx, a):
        xp = array_module(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1 / xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (-0.5 * out * out * out)


class Reciprocal(Function):
    def forward(ctx, a):
        with np.errstate(divide="ignore"):
            out = 1 / a
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return -grad * out * out


class Square(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a * a

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * (2 * a)


class Sin(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).sin(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * array_module(a).cos(a)


class Cos(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).cos(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return -grad * array_module(a).sin(a)


class Tan(Function):
    def forward(ctx, a):
        out = array_module(a).tan(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 + out * out)


class Tanh(Function):
    def forward(ctx, a):
        out = array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 - out * out)


def _sigmoid(x):
    """``1 / (1 + exp(-x))`` in four passes with no branch: ``exp(-x)`` overflows to inf below about -88 in
    float32, which gives the exact limit 0. (``exp2`` of ``-x log2(e)`` would save a third of the time but
    costs the rounding of that product: 1e-6 relative error at |x| = 16 where this has PyTorch's 1e-7.)"""
    xp = array_module(x)
    e = xp.negative(x)
    with np.errstate(over="ignore"):
        xp.exp(e, out=e)
    e += 1
    return xp.divide(1, e, out=e)


class Sigmoid(Function):
    def forward(ctx, a):
        out = _sigmoid(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        g = array_module(out).subtract(1, out)
        g *= out
        g *= grad
        return g


def positive_part(a):
    """``max(a, 0)`` as a fresh array. Floats take ``clip(a, 0, inf)``, NumPy's vectorised loop (``maximum``
    against the scalar 0 is not: 390 against 115 us on a million float32); like PyTorch's relu it keeps
    NaN, and -0.0 as -0.0."""
    xp = array_module(a)
    if a.dtype.kind != "f":
        return xp.maximum(a, 0)
    return xp.clip(a, 0, INF)


class Relu(Function):
    def forward(ctx, a):
        out = positive_part(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        # Zero where out <= 0 (not "pass where out > 0"), so that a NaN input passes its gradient on, as in
        # PyTorch.
        xp = array_module(out)
        keep = xp.less_equal(out, 0)
        xp.logical_not(keep, out=keep)
        return grad * keep


def _leaky(a, slope):
    """``a`` where positive, ``slope * a`` elsewhere (``slope`` a scalar or an array that broadcasts
    against ``a``), without a branch per element. Slopes in (0, 1] make it ``max(a, slope * a)``, slopes of
    1 and more ``min(a, slope * a)``; 0 and negative slopes take ``select``."""
    xp = array_module(a)
    if getattr(slope, "ndim", 0):
        lo, hi = float(slope.min()), float(slope.max())
    else:
        lo = hi = float(slope)
    scaled = xp.multiply(a, slope)
    if 0 < lo and hi <= 1:
        return xp.maximum(a, scaled, out=scaled)
    if 1 <= lo:
        return xp.minimum(a, scaled, out=scaled)
    return select(a > 0, a, scaled)


def one_where_positive(a, factor):
    """1 where ``a > 0``, else ``factor`` (a finite scalar or array broadcasting against ``a``): the
    derivative of the piecewise activations. Formed as ``factor * (1 - m) + m`` from the 0/1 mask ``m``,
    which is exact since one of the two terms is always 0, and needs no branch per element."""
    xp = array_module(a)
    m = (a > 0).astype(a.dtype)
    if getattr(factor, "ndim", 0) == 0 and 0 <= factor <= 1:
        return xp.clip(m, factor, INF, out=m)  # {0, 1} -> {factor, 1} in one pass
    f = xp.subtract(1, m)
    f *= factor
    f += m
    return f


class LeakyRelu(Function):
    def forward(ctx, a, negative_slope=0.01):
        ctx.save_for_backward(a)
        ctx.slope = a.dtype.type(negative_slope)
        return _leaky(a, ctx.slope)

    def backward(ctx, grad):
        (a,) = ctx.saved
        f = one_where_positive(a, ctx.slope)
        f *= grad
        return f


class Hardtanh(Function):
    def forward(ctx, a, min_val=-1.0, max_val=1.0):
        ctx.save_for_backward(a)
        ctx.bounds = (min_val, max_val)
        return array_module(a).clip(a, min_val, max_val).astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        return grad * ((a > lo) & (a < hi))


class Clamp(Function):
    def forward(ctx, a, min=None, max=None):
        ctx.save_for_backward(a)
        xp = array_module(a)
        ctx.bounds = (min, max)
        if a.dtype.kind == "f":
            # One vectorised pass; an open side is an infinite bound (``maximum`` against a scalar is 3x
            # slower). A minimum above the maximum gives the maximum, as in PyTorch.
            return xp.clip(a, -INF if min is None else min, INF if max is None else max).astype(a.dtype, copy=False)
        out = a
        if min is not None:
            out = xp.maximum(out, min)
        if max is not None:
            out = xp.minimum(out, max)
        if out is a:
            out = a.copy()
        return out.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        mask = array_module(a).ones(a.shape, dtype=bool)
        if lo is not None:
            mask &= a >= lo
        if hi is not None:
            mask &= a <= hi
        return grad * mask


# Coefficients of the Chebyshev-fitted erfc formula used by erf_array, highest order first.
_ERFC_COEFFS = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418,
                0.37409196, 1.00002368, -1.26551223)


def erf_array(x):
    """erf(x) for an ndarray, accurate to about 1.2e-7 relative (a Chebyshev-fitted erfc formula).

    NumPy has no erf; this keeps SciPy out of the core dependencies. Evaluated in place on two buffers:
    it sits inside exact GELU, where full-size temporaries cost more than the arithmetic.
    """
    xp = array_module(x)
    z = xp.abs(x)
    t = z * 0.5
    t += 1
    xp.divide(1, t, out=t)
    poly = t * _ERFC_COEFFS[0]
    for c in _ERFC_COEFFS[1:-1]:
        poly += c
        poly *= t
    poly += _ERFC_COEFFS[-1]
    z *= z
    poly -= z
    xp.exp(poly, out=poly)
    poly *= t  # erfc(|x|)
    # erf(x) = sign(x) * (1 - erfc(|x|))
    xp.subtract(1, poly, out=poly)
    xp.copysign(poly, x, out=poly)
    return poly


# Abramowitz & Stegun 7.1.26: erfc(z) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2) + e, with
# t = 1 / (1 + p z), |e| <= 1.5e-7 for z >= 0. Used at float32 precision only.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


# NumPy's float32 exp2 runs in half the time of its exp (60 against 127 us on 278k elements), and dividing
# into a scalar in half the time of ``reciprocal`` (30 against 58 us); both are used below.
# The polynomial in t = 1 / (1 + p z / sqrt(2)) is rewritten in u = 1 / (r + z), r = sqrt(2) / p (t = r u),
# which saves the pass that scales z: the coefficients become 0.5 * a_k * r^k (0.5 turns erfc into Phi).
_AS_R = math.sqrt(2) / _AS_P
_AS_B = tuple(0.5 * a * _AS_R ** (k + 1) for k, a in enumerate(_AS_A))


def _normal_cdf_f32(x):
    """``(Phi(x), exp(-x^2 / 2))`` for a float32 array, Phi accurate to about 3e-7.

    GELU's erf with 1/sqrt(2) folded into the constants, in place on two buffers: 505 us on 278k elements,
    where the same formula through exp, reciprocal and a pass scaling |x| took 630. The Gaussian factor
    comes out too, for backward to reuse.
    """
    xp = array_module(x)
    u = xp.abs(x)
    u += x.dtype.type(_AS_R)
    xp.divide(1, u, out=u)
    q = u * _AS_B[4]
    for b in _AS_B[3::-1]:
        q += b
        q *= u
    gauss = xp.multiply(x, x, out=u)
    gauss *= -0.5 * LOG2_E
    exp2_(gauss)
    q *= gauss  # 0.5 * erfc(|x| / sqrt(2)) = Phi(-|x|)
    # Phi(x) = 0.5 + sign(x) * (0.5 - Phi(-|x|)). 0.5 - Phi(-|x|) >= 0, so giving it x's sign is an XOR of
    # the sign bits, which runs twice as fast as NumPy's copysign.
    xp.subtract(0.5, q, out=q)
    q.view(xp.uint32)[...] ^= x.view(xp.uint32) & xp.uint32(0x80000000)
    q += 0.5
    return q, gauss


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_GELU_K = 0.044715


class Gelu(Function):
    """GELU, exact (``x * Phi(x)``) or with the tanh formula. Both directions use in-place buffers: GELU
    runs on the widest activations of a Transformer, so each avoided temporary is a full pass saved.
    float16 is computed in float32 and rounded once (as PyTorch does), since the erf polynomial evaluated
    in half precision was off by up to 8 %."""

    def forward(ctx, a, approximate="none"):
        ctx.approximate = approximate
        ctx.half = a.dtype == np.float16
        if ctx.half:
            return _gelu_values(ctx, a.astype(np.float32)).astype(np.float16)
        return _gelu_values(ctx, a)

    def backward(ctx, grad):
        if ctx.half:
            return _gelu_grad(ctx, grad.astype(np.float32)).astype(np.float16)
        return _gelu_grad(ctx, grad)


def _gelu_values(ctx, a):
    """GELU of a float32 or float64 ``a``, saving what ``_gelu_grad`` needs on ``ctx``."""
    xp = array_module(a)
    if ctx.approximate == "tanh":
        # 0.5 (1 + tanh(y)) is sigmoid(2 y), so GELU = a / (1 + 2^(-2 log2(e) y)) with y = c (a + k a^3),
        # formed as a (c + c k a^2) with every constant times -2 log2(e): exp2 and one division in place
        # of tanh (100 us on 278k float32) and three passes (exp2: 60 us).
        e = a * a
        e *= -2 * LOG2_E * _SQRT_2_OVER_PI * _GELU_K
        e += -2 * LOG2_E * _SQRT_2_OVER_PI
        e *= a
        with np.errstate(over="ignore"):  # 2^big = inf gives the exact limit, a / inf = 0
            exp2_(e)
        e += 1
        if not is_grad_enabled():
            return xp.divide(a, e, out=e)
        s = xp.divide(1, e, out=e)  # sigmoid(2 y)
        # With s = sigmoid(2 y) = 0.5 (1 + tanh(y)): d/da = s + 2 s (1 - s) c a (1 + 3 k a^2), saved alone
        # (see the exact branch below).
        d = a * a
        d *= 6 * _GELU_K * _SQRT_2_OVER_PI
        d += 2 * _SQRT_2_OVER_PI
        d *= a
        w = xp.subtract(1, s)
        w *= s
        d *= w
        d += s
        ctx.save_for_backward(d)
        s *= a
        return s
    if a.dtype == np.float32:
        cdf, gauss = _normal_cdf_f32(a)
    else:
        # float64 keeps the more accurate erf (finite-difference checks run in float64).
        cdf = erf_array(a * a.dtype.type(_INV_SQRT_2))
        cdf += 1
        cdf *= 0.5
        gauss = None
    if is_grad_enabled():
        # The derivative Phi(a) + a phi(a) is formed here, while its inputs are still in cache, and saved
        # alone: backward is then one product with the gradient instead of four passes over three saved
        # arrays that a training step has long evicted, and the input and Phi are not kept alive for it.
        if gauss is None:
            gauss = a * a
            gauss *= -0.5
            xp.exp(gauss, out=gauss)
        deriv = gauss  # exp(-a^2 / 2), turned into the derivative in place
        deriv *= a
        deriv *= a.dtype.type(_INV_SQRT_2PI)
        deriv += cdf
        ctx.save_for_backward(deriv)
    cdf *= a
    return cdf


def _gelu_grad(ctx, grad):
    """The input gradient of ``Gelu``: the derivative its forward saved, times ``grad``."""
    return ctx.saved[0] * grad


class Silu(Function):
    def forward(ctx, a):
        s = _sigmoid(a)
        ctx.save_for_backward(a, s)
        return a * s

    def backward(ctx, grad):
        a, s = ctx.saved
        # s (1 + a (1 - s)), in place on one buffer.
        g = array_module(s).subtract(1, s)
        g *= a
        g += 1
        g *= s
        g *= grad
        return g


def _expm1_negative_part(a, alpha):
    """``alpha * expm1(min(a, 0))``: ELU's negative branch, 0 wherever ``a > 0``."""
    xp = array_module(a)
    neg = xp.clip(a, -INF, 0)
    xp.expm1(neg, out=neg)
    neg *= a.dtype.type(alpha)
    return neg


class Elu(Function):
    """``max(a, 0) + alpha * expm1(min(a, 0))``, times ``scale``: ``a`` for a > 0 and
    ``alpha * (exp(a) - 1)`` elsewhere, with no branch per element."""

    def forward(ctx, a, alpha=1.0, scale=1.0):
        xp = array_module(a)
        neg = _expm1_negative_part(a, alpha)
        out = xp.clip(a, 0, INF)
        out += neg
        if scale != 1.0:
            out *= a.dtype.type(scale)
        ctx.save_for_backward(a, neg)
        ctx.scale = scale
        ctx.alpha = alpha
        return out

    def backward(ctx, grad):
        a, neg = ctx.saved
        g = one_where_positive(a, neg + a.dtype.type(ctx.alpha))  # alpha * exp(a) below 0
        g *= grad
        if ctx.scale != 1.0:
            g *= grad.dtype.type(ctx.scale)
        return g


def log1p_exp_neg_abs(x):
    """``log1p(exp(-|x|))`` as a fresh array: the part of ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``
    that never overflows (log-sigmoid and the logit cross-entropy add the ``max`` side themselves)."""
    xp = array_module(x)
    t = xp.abs(x)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    return xp.log1p(t, out=t)


@functools.lru_cache(maxsize=64)
def _softplus_is_linear_above(dtype, threshold):
    """Whether, in ``dtype``, softplus and its slope have reached the identity at ``threshold``:
    ``log1p(exp(t))`` rounds to at most the next value above ``t`` and the logistic function rounds to 1
    (float32 from about 17.4, so at PyTorch's default 20; float64 needs about 37)."""
    t = np.asarray(threshold, dtype)
    return bool(np.log1p(np.exp(t)) <= np.nextafter(t, np.asarray(INF, dtype))) and bool(_sigmoid(t[None])[0] == 1)


def _softplus_below(ba, threshold):
    """``log1p(exp(min(ba, threshold)))``: finite everywhere, equal to softplus up to the threshold."""
    xp = array_module(ba)
    sp = xp.clip(ba, -INF, threshold)
    xp.exp(sp, out=sp)
    xp.log1p(sp, out=sp)
    return sp


def softplus_values(a, beta=1.0, threshold=20.0):
    """``log1p(exp(beta * a)) / beta``, and ``a`` itself where ``beta * a > threshold`` (PyTorch's rule),
    as a fresh array with no branch per element.

    With ``beta = 1`` and a threshold at which both the value and its slope have reached the identity in
    the dtype (the default 20 in float32) the switch is ``max(a, log1p(exp(min(a, 20))))``; otherwise
    ``select``.
    """
    xp = array_module(a)
    ba = a * a.dtype.type(beta) if beta != 1.0 else a
    soft = _softplus_below(ba, threshold)
    if beta == 1.0 and _softplus_is_linear_above(a.dtype, float(threshold)):
        return xp.maximum(a, soft, out=soft)
    if beta != 1.0:
        soft /= a.dtype.type(beta)
    return select(ba > a.dtype.type(threshold), a, soft)


class Softplus(Function):
    def forward(ctx, a, beta=1.0, threshold=20.0):
        ctx.save_for_backward(a)
        ctx.beta, ctx.threshold = beta, threshold
        return softplus_values(a, beta, threshold)

    def backward(ctx, grad):
        (a,) = ctx.saved
        ba = a * a.dtype.type(ctx.beta) if ctx.beta != 1.0 else a
        s = _sigmoid(ba)
        s *= grad
        if ctx.beta == 1.0 and _softplus_is_linear_above(a.dtype, float(ctx.threshold)):
            return s  # the logistic slope is exactly 1 above the threshold
        return select(ba > ba.dtype.type(ctx.threshold), grad, s)


class Erf(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return erf_array(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * (a.dtype.type(2 / math.sqrt(math.pi)) * array_module(a).exp(-a * a))


class NanToNum(Function):
    def forward(ctx, a, nan=0.0, posinf=None, neginf=None):
        ctx.save_for_backward(a)
        return array_module(a).nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * array_module(a).isfinite(a)


def _unary(cls, name, float_only=True, doc=None):
    def op(input, **kwargs):
        x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
        if float_only:
            x = _float_operand(x)
        return cls.apply(x, **kwargs)

    op.__name__ = name
    op.__doc__ = doc or f"Elementwise ``{name}``; differentiable."
    return op


neg = _unary(Neg, "neg", float_only=False)
negative = neg
exp = _unary(Exp, "exp")
expm1 = _unary(Expm1, "expm1")
log = _unary(Log, "log")


def log2(input):
    """Elementwise base-2 logarithm; differentiable."""
    return log(input, base=2)


def log10(input):
    """Elementwise base-10 logarithm; differentiable."""
    return log(input, base=10)
log1p = _unary(Log1p, "log1p")
sqrt = _unary(Sqrt, "sqrt")
rsqrt = _unary(Rsqrt, "rsqrt", doc="``1 / sqrt(x)``.")
reciprocal = _unary(Reciprocal, "reciprocal")
square = _unary(Square, "square", float_only=False)
sin = _unary(Sin, "sin")
cos = _unary(Cos, "cos")
tan = _unary(Tan, "tan")
tanh = _unary(Tanh, "tanh")
sigmoid = _unary(Sigmoid, "sigmoid", doc="Logistic function ``1 / (1 + exp(-x))``, stable for large |x|.")
erf = _unary(Erf, "erf")
abs = _unary(Abs, "abs", float_only=False)  # noqa: A001


def relu(input, inplace=False):
    """``max(x, 0)``."""
    return Relu.apply(input)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for x > 0, else ``negative_slope * x``."""
    return LeakyRelu.apply(input, negative_slope=negative_slope)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return Hardtanh.apply(input, min_val=min_val, max_val=max_val)


def gelu(input, approximate="none"):
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu(): approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate=approximate)


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (also called swish)."""
    return Silu.apply(input)


def elu(input, alpha=1.0, inplace=False):
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)``."""
    return Elu.apply(input, alpha=alpha)


def selu(input, inplace=False):
    return Elu.apply(input, alpha=1.6732632423543772, scale=1.0507009873554805)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    return Softplus.apply(input, beta=beta, threshold=threshold)


def clamp(input, min=None, max=None):  # noqa: A002
    """Limit values to ``[min, max]``; either bound may be a tensor. The gradient flows where x is inside."""
    if min is None and max is None:
        raise ValueError("clamp(): at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
    if x.array.dtype.kind in "iu" and (isinstance(min, float) or isinstance(max, float)):
        x = _float_operand(x)
    return Clamp.apply(x, min=min, max=max)


clip = clamp


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    return NanToNum.apply(input, nan=nan, posinf=posinf, neginf=neginf)


# --------------------------------------------------------------------------- Tensor operators
def _rsub(self, other):
    return sub(other, self)


def _rdiv(self, other):
    return div(other, self)


def _rpow(self, other):
    return pow(other, self)


def _rfloordiv(self, other):
    return floor_divide(other, self)


def _rmod(self, other):
    return remainder(other, self)


def _invert(self):
    if self.array.dtype != np.bool_:
        raise TypeError(f"~ (bitwise not) is only supported on bool tensors here, got dtype {self.array.dtype}")
    return logical_not(self)


def _and(self, other):
    return logical_and(self, other)


def _or(self, other):
    return logical_or(self, other)


def _xor(self, other):
    return logical_xor(self, other)


install(
    __add__=add, __radd__=add, __sub__=sub, __rsub__=_rsub, __mul__=mul, __rmul__=mul,
    __truediv__=div, __rtruediv__=_rdiv, __pow__=pow, __rpow__=_rpow, __neg__=neg, __abs__=abs,
    __floordiv__=floor_divide, __rfloordiv__=_rfloordiv, __mod__=remainder, __rmod__=_rmod,
    __eq__=eq, __ne__=ne, __lt__=lt, __le__=le, __gt__=gt, __ge__=ge,
    __and__=_and, __rand__=_and, __or__=_or, __ror__=_or, __xor__=_xor, __invert__=_invert,
    add=add, sub=sub, subtract=subtract, mul=mul, multiply=multiply, div=div, divide=divide,
    true_divide=true_divide, pow=pow, neg=neg, negative=negative, abs=abs, exp=exp, expm1=expm1, log=log,
    log2=log2, log10=log10, log1p=log1p, sqrt=sqrt, rsqrt=rsqrt, reciprocal=reciprocal, square=square,
    sin=sin, cos=cos, tan=tan, tanh=tanh, sigmoid=sigmoid, relu=relu, erf=erf, clamp=clamp, clip=clip,
    maximum=maximum, minimum=minimum, sign=sign, floor=floor, ceil=ceil, round=round, trunc=trunc,
    floor_divide=floor_divide, remainder=remainder, fmod=fmod, eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge,
    logical_and=logical_and, logical_or=logical_or, logical_not=logical_not, logical_xor=logical_xor,
    isnan=isnan, isinf=isinf, isfinite=isfinite, lerp=lerp, nan_to_num=nan_to_num,
    where=lambda self, condition, other: where(condition, self, other),
)
