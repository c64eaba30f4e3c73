"""More elementwise math: inverse and hyperbolic trigonometry, erfc/erfinv, logaddexp, hypot, xlogy,
logit, copysign, fmax/fmin, bit operations, closeness tests and PyTorch's alias names.

Each differentiable op is a ``Function`` with its derivative written out; integer inputs of the float
functions become the default float first, as in PyTorch. erfc and erfinv are evaluated in float64 and
rounded once to the input's dtype (NumPy has neither).
"""
import builtins
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from . import elementwise as E
from ._util import ensure_tensor, install
from .special import digamma, lgamma, polygamma

__all__ = [
    "exp2", "float_power", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "atan2", "arctan2", "sinh",
    "cosh", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "erfc", "erfinv", "fix", "frac", "sgn",
    "signbit", "absolute", "clamp_min", "clamp_max", "logaddexp", "logaddexp2", "hypot", "logit", "xlogy",
    "fmax", "fmin", "copysign", "deg2rad", "rad2deg", "sinc", "heaviside", "gcd", "lcm", "addcmul", "addcdiv",
    "greater", "less", "greater_equal", "less_equal", "not_equal", "equal", "isclose", "allclose", "isposinf",
    "isneginf", "isreal", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
    "bitwise_right_shift", "positive", "conj", "real", "angle", "lgamma", "digamma", "polygamma", "mvlgamma",
]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2.0
_LN2 = math.log(2.0)


def _float_tensor(x):
    """``x`` as a floating tensor: integer and bool tensors become the default float dtype."""
    return E._float_operand(ensure_tensor(x))


def _float_pair(a, b, op):
    """Two operands promoted as PyTorch does for a binary float function (integers become float32)."""
    a, b = E._binary_operands(a, b, op)
    if isinstance(a, Tensor) and a.array.dtype.kind != "f":
        a = E._float_operand(a)
    if isinstance(b, Tensor) and b.array.dtype.kind != "f":
        b = E._float_operand(b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(np.asarray(a, backend.default_float))
    # A Python scalar operand becomes a 0-d array of the result dtype (NumPy's log(2.0) is float64), on
    # the other operand's device.
    if not isinstance(a, Tensor):
        a = array_module(b.array).asarray(a, b.array.dtype)
    if not isinstance(b, Tensor):
        b = array_module(a.array).asarray(b, a.array.dtype)
    return a, b


def _graph_math():
    """The array functions the derivative formulas of ``_unary_op`` call, as differentiable tensor ops."""
    from types import SimpleNamespace

    return SimpleNamespace(sqrt=E.sqrt, cos=E.cos, where=E.where, sinh=sinh, cosh=cosh)


def _unary_op(name, forward, derivative, doc):
    """A differentiable float unary op: ``forward(xp, a)`` gives the result, ``derivative(xp, a, out)`` the
    elementwise derivative that multiplies the incoming gradient."""

    class Op(Function):
        def forward(ctx, a):
            xp = array_module(a)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = xp.asarray(forward(xp, a), dtype=a.dtype)
            ctx.save_for_backward(a, out)
            return out

        def backward(ctx, grad):
            a, out = ctx.saved
            xp = array_module(grad)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return (grad * derivative(xp, a, out)).astype(grad.dtype, copy=False)

        def grad_graph(ctx, grad):
            # The same derivative formula, on tensors of the graph (``_graph_math`` stands in for ``xp``).
            a, out = ctx.saved
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return grad * derivative(_graph_math(), ctx.graph_input(0, a), ctx.graph_output(out))

    Op.__name__ = Op.__qualname__ = name.capitalize()

    def op(input):
        return Op.apply(_float_tensor(input))

    op.__name__ = name
    op.__doc__ = doc
    return op


exp2 = _unary_op("exp2", lambda xp, a: xp.exp2(a), lambda xp, a, out: out * _LN2,
                 "``2 ** x`` elementwise; differentiable.")
asin = _unary_op("asin", lambda xp, a: xp.arcsin(a), lambda xp, a, out: 1 / xp.sqrt(1 - a * a),
                 "Elementwise arcsine (NaN outside [-1, 1]); differentiable.")
acos = _unary_op("acos", lambda xp, a: xp.arccos(a), lambda xp, a, out: -1 / xp.sqrt(1 - a * a),
                 "Elementwise arccosine (NaN outside [-1, 1]); differentiable.")
atan = _unary_op("atan", lambda xp, a: xp.arctan(a), lambda xp, a, out: 1 / (1 + a * a),
                 "Elementwise arctangent; differentiable.")
sinh = _unary_op("sinh", lambda xp, a: xp.sinh(a), lambda xp, a, out: xp.cosh(a),
                 "Elementwise hyperbolic sine; differentiable.")
cosh = _unary_op("cosh", lambda xp, a: xp.cosh(a), lambda xp, a, out: xp.sinh(a),
                 "Elementwise hyperbolic cosine; differentiable.")
asinh = _unary_op("asinh", lambda xp, a: xp.arcsinh(a), lambda xp, a, out: 1 / xp.sqrt(a * a + 1),
                  "Elementwise inverse hyperbolic sine; differentiable.")
acosh = _unary_op("acosh", lambda xp, a: xp.arccosh(a), lambda xp, a, out: 1 / xp.sqrt(a * a - 1),
                  "Elementwise inverse hyperbolic cosine (NaN below 1); differentiable.")
atanh = _unary_op("atanh", lambda xp, a: xp.arctanh(a), lambda xp, a, out: 1 / (1 - a * a),
                  "Elementwise inverse hyperbolic tangent (infinite at +-1); differentiable.")
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def _sinc(xp, a):
    x = a * math.pi
    safe = xp.where(a == 0, 1.0, x)
    return xp.where(a == 0, 1.0, xp.sin(safe) / safe)


def _sinc_derivative(xp, a, out):
    safe = xp.where(a == 0, 1.0, a)
    return xp.where(a == 0, 0.0, (xp.cos(math.pi * a) - out) / safe)


sinc = _unary_op("sinc", _sinc, _sinc_derivative,
                 "Normalised sinc ``sin(pi x) / (pi x)`` (1 at 0); differentiable.")


# --------------------------------------------------------------------------- erfc and erfinv
def _erf_series(z):
    """erf(z) for |z| < 2 in float64 from the series ``2/sqrt(pi) e^{-z^2} sum z (2 z^2)^n / (2n+1)!!``,
    whose terms share one sign."""
    xp = array_module(z)
    two_z2 = 2.0 * z * z
    term = z.copy()
    acc = z.copy()
    for n in range(1, 64):
        term *= two_z2
        term /= 2 * n + 1
        acc += term
    return _TWO_OVER_SQRT_PI * xp.exp(-z * z) * acc


def _erfc_fraction(z):
    """erfc(z) for z >= 2 in float64 from Laplace's continued fraction, evaluated bottom up."""
    xp = array_module(z)
    f = z.copy()
    for k in range(64, 0, -1):
        f = z + (k / 2.0) / f
    with np.errstate(under="ignore"):
        return xp.exp(-z * z) / (math.sqrt(math.pi) * f)


def _erf_erfc64(x):
    """(erf(x), erfc(x)) of a float64 array, each relatively accurate (erfc also in its far tail)."""
    xp = array_module(x)
    erf = xp.empty_like(x)
    erfc = xp.empty_like(x)
    ax = xp.abs(x)
    small = ax < 2.0
    if small.any():
        e = _erf_series(x[small])
        erf[small] = e
        erfc[small] = 1.0 - e
    big = ~small & ~xp.isnan(x)
    if big.any():
        tail = _erfc_fraction(ax[big])
        sign = xp.sign(x[big])
        erf[big] = sign * (1.0 - tail)
        erfc[big] = xp.where(sign > 0, tail, 2.0 - tail)
    nan = xp.isnan(x)
    erf[nan] = np.nan
    erfc[nan] = np.nan
    return erf, erfc


def _erfinv64(y):
    """The inverse of erf on a float64 array: a rational first guess refined by Halley's method."""
    xp = array_module(y)
    out = xp.full(y.shape, np.nan)
    out[y == 1] = np.inf
    out[y == -1] = -np.inf
    inside = xp.abs(y) < 1
    if not inside.any():
        return out
    v = y[inside]
    s = xp.where(v < 0, -1.0, 1.0)
    av = xp.abs(v)
    q = (1.0 - av) / 2.0  # erf(x) = av  <=>  Phi(-x sqrt 2) = q; exact for av >= 1/2
    # Abramowitz & Stegun 26.2.23 for the normal quantile (absolute error below 4.5e-4).
    t = xp.sqrt(-2.0 * xp.log(q))
    z = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))
    x = z / math.sqrt(2.0)
    x = xp.where(av < 1e-3, av * _SQRT_PI_OVER_TWO, x)
    upper = av > 0.5
    for _ in range(4):
        erf, erfc = _erf_erfc64(x)
        # Halley on erf(x) - av (or erfc(x) - (1 - av) where that keeps the digits); both have
        # f'' / f' = -2x, so the step is u / (1 + x u) with u = f / f'.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            f = xp.where(upper, (1.0 - av) - erfc, erf - av)
            u = f / (_TWO_OVER_SQRT_PI * xp.exp(-x * x))
            step = u / (1.0 + x * u)
        x = x - xp.where(xp.isfinite(step), step, 0.0)
    out[inside] = s * x
    return out


class Erfc(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf_erfc64(a.astype(np.float64))[1].astype(a.dtype)

    def backward(ctx, grad):
        (a,) = ctx.saved
        xp = array_module(grad)
        return (grad * (-_TWO_OVER_SQRT_PI) * xp.exp(-(a * a))).astype(grad.dtype, copy=False)

    def grad_graph(ctx, grad):
        a = ctx.graph_input(0, ctx.saved[0])
        return grad * (E.exp(-(a * a)) * -_TWO_OVER_SQRT_PI)


class Erfinv(Function):
    def forward(ctx, a):
        out = _erfinv64(a.astype(np.float64)).astype(a.dtype)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        xp = array_module(grad)
        with np.errstate(over="ignore"):
            return (grad * _SQRT_PI_OVER_TWO * xp.exp(out.astype(np.float64) ** 2)).astype(grad.dtype)

    def grad_graph(ctx, grad):
        out = ctx.graph_output(ctx.saved[0])
        return grad * (E.exp(out * out) * _SQRT_PI_OVER_TWO)


def erfc(input):
    """Complementary error function ``1 - erf(x)``, relatively accurate in its tail; differentiable."""
    return Erfc.apply(_float_tensor(input))


def erfinv(input):
    """Inverse error function on (-1, 1) (+-inf at +-1, NaN outside); differentiable."""
    return Erfinv.apply(_float_tensor(input))


# --------------------------------------------------------------------------- other unary ops
class Frac(Function):
    def forward(ctx, a):
        return a - array_module(a).trunc(a)

    def backward(ctx, grad):
        return grad

    def grad_graph(ctx, grad):
        return grad


def frac(input):
    """The fractional part ``x - trunc(x)`` (keeps the sign); the gradient passes through unchanged."""
    return Frac.apply(ensure_tensor(input))


def fix(input):
    """Round toward zero (PyTorch's alias of ``trunc``)."""
    return E.trunc(input)


def sgn(input):
    """The sign of each element (``sign`` for real tensors)."""
    return E.sign(input)


def absolute(input):
    """Alias of ``abs``."""
    return E.abs(input)


def positive(input):
    """``input`` itself (unary plus); bool tensors are refused, as in PyTorch."""
    x = ensure_tensor(input)
    if x.array.dtype == np.bool_:
        raise TypeError("positive(): the unary + operator does not support bool tensors")
    return x


def conj(input):
    """The complex conjugate: for somanet's real tensors, ``input`` itself."""
    return ensure_tensor(input)


def angle(input):
    """The argument of each element: 0 for non-negative numbers, pi for negative ones (NaN stays NaN); a
    float tensor with a zero gradient."""
    x = _float_tensor(input)
    return E.add(E.mul(x, 0), E.where(E.lt(x, 0), math.pi, 0.0))


def real(input):
    """The real part: for somanet's real tensors, ``input`` itself."""
    return ensure_tensor(input)


class _Predicate(Function):
    differentiable = False

    def forward(ctx, a, fn):
        return fn(array_module(a), a)


def signbit(input):
    """True where the sign bit is set (negative numbers and -0.0); a bool tensor."""
    return _Predicate.apply(ensure_tensor(input), fn=lambda xp, a: xp.signbit(a))


def isposinf(input):
    """True where an element is +inf; a bool tensor."""
    return _Predicate.apply(ensure_tensor(input), fn=lambda xp, a: xp.isposinf(a) if a.dtype.kind == "f"
                            else xp.zeros(a.shape, bool))


def isneginf(input):
    """True where an element is -inf; a bool tensor."""
    return _Predicate.apply(ensure_tensor(input), fn=lambda xp, a: xp.isneginf(a) if a.dtype.kind == "f"
                            else xp.zeros(a.shape, bool))


def isreal(input):
    """True everywhere for somanet's real tensors (a bool tensor of the input's shape)."""
    return _Predicate.apply(ensure_tensor(input), fn=lambda xp, a: xp.ones(a.shape, bool))


def clamp_min(input, min):  # noqa: A002
    """``clamp(input, min=min)``."""
    return E.clamp(input, min, None)


def clamp_max(input, max):  # noqa: A002
    """``clamp(input, max=max)``."""
    return E.clamp(input, None, max)


def deg2rad(input):
    """Degrees to radians; differentiable."""
    return E.mul(_float_tensor(input), math.pi / 180.0)


def rad2deg(input):
    """Radians to degrees; differentiable."""
    return E.mul(_float_tensor(input), 180.0 / math.pi)


class Logit(Function):
    def forward(ctx, a, eps):
        xp = array_module(a)
        z = a if eps is None else xp.clip(a, eps, 1.0 - eps)
        ctx.save_for_backward(a)
        ctx.eps = eps
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.log(z / (1 - z)).astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        xp = array_module(grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = grad / (a * (1 - a))
        if ctx.eps is not None:
            g = xp.where((a < ctx.eps) | (a > 1 - ctx.eps), 0, g)
        return g.astype(grad.dtype, copy=False)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        t = ctx.graph_input(0, a)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = grad / (t * (1 - t))
        if ctx.eps is not None:
            g = E.where(Tensor((a < ctx.eps) | (a > 1 - ctx.eps)), 0.0, g)
        return g


def logit(input, eps=None):
    """``log(p / (1 - p))``; with ``eps``, ``p`` is first clamped to ``[eps, 1 - eps]`` (the gradient is 0
    where it was clamped, as in PyTorch); differentiable."""
    return Logit.apply(_float_tensor(input), eps=eps)


# --------------------------------------------------------------------------- binary float ops
class Atan2(Function):
    def forward(ctx, y, x):
        ctx.save_for_backward(y, x)
        return array_module(y, x).arctan2(y, x)

    def backward(ctx, grad):
        y, x = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            r = grad / (x * x + y * y)
        return (r * x if ctx.needs(0) else None), (-r * y if ctx.needs(1) else None)

    def grad_graph(ctx, grad):
        y, x = (ctx.graph_input(i, v) for i, v in enumerate(ctx.saved))
        r = grad / (x * x + y * y)
        return (r * x if ctx.graph_needs(0) else None), (-r * y if ctx.graph_needs(1) else None)


def atan2(input, other):
    """Elementwise ``atan(input / other)`` in the right quadrant; differentiable in both arguments."""
    a, b = _float_pair(input, other, "atan2")
    return Atan2.apply(a, b)


arctan2 = atan2


class Hypot(Function):
    def forward(ctx, a, b):
        out = array_module(a, b).hypot(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            r = grad / out
        return (r * a if ctx.needs(0) else None), (r * b if ctx.needs(1) else None)

    def grad_graph(ctx, grad):
        a, b, out = ctx.saved
        r = grad / ctx.graph_output(out)
        return ((r * ctx.graph_input(0, a) if ctx.graph_needs(0) else None),
                (r * ctx.graph_input(1, b) if ctx.graph_needs(1) else None))


def hypot(input, other):
    """``sqrt(input**2 + other**2)`` without overflow in the squares; differentiable."""
    a, b = _float_pair(input, other, "hypot")
    return Hypot.apply(a, b)


class LogAddExp(Function):
    def forward(ctx, a, b, base2):
        xp = array_module(a, b)
        out = (xp.logaddexp2 if base2 else xp.logaddexp)(a, b)
        ctx.save_for_backward(a, b, out)
        ctx.base2 = base2
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        xp = array_module(grad)
        power = xp.exp2 if ctx.base2 else xp.exp
        with np.errstate(invalid="ignore", over="ignore"):
            ga = grad * power(a - out) if ctx.needs(0) else None
            gb = grad * power(b - out) if ctx.needs(1) else None
        return ga, gb

    def grad_graph(ctx, grad):
        a, b, out = ctx.saved
        power = exp2 if ctx.base2 else E.exp
        out = ctx.graph_output(out)
        ga = grad * power(ctx.graph_input(0, a) - out) if ctx.graph_needs(0) else None
        gb = grad * power(ctx.graph_input(1, b) - out) if ctx.graph_needs(1) else None
        return ga, gb


def logaddexp(input, other):
    """``log(exp(input) + exp(other))`` without overflow; differentiable."""
    a, b = _float_pair(input, other, "logaddexp")
    return LogAddExp.apply(a, b, base2=False)


def logaddexp2(input, other):
    """``log2(2**input + 2**other)`` without overflow; differentiable."""
    a, b = _float_pair(input, other, "logaddexp2")
    return LogAddExp.apply(a, b, base2=True)


class Xlogy(Function):
    def forward(ctx, x, y):
        xp = array_module(x, y)
        ctx.save_for_backward(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = x * xp.log(y)
        return xp.where((x == 0) & ~xp.isnan(y), 0, out).astype(out.dtype, copy=False)

    def backward(ctx, grad):
        x, y = ctx.saved
        xp = array_module(grad)
        gx = gy = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs(0):  # xlogy(grad, y), with 0 where x is 0 and y is not positive (PyTorch's rule)
                gx = xp.where(((grad == 0) & ~xp.isnan(y)) | ((x == 0) & (y <= 0)), 0, grad * xp.log(y))
            if ctx.needs(1):
                gy = grad * x / y
        return gx, gy

    def grad_graph(ctx, grad):
        x, y = ctx.saved
        xt, yt = ctx.graph_input(0, x), ctx.graph_input(1, y)
        gx = gy = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.graph_needs(0):
                g = grad.array
                zero = ((g == 0) & ~np.isnan(y)) | ((x == 0) & (y <= 0))
                gx = E.where(Tensor(zero), 0.0, grad * E.log(yt))
            if ctx.graph_needs(1):
                gy = grad * xt / yt
        return gx, gy


def xlogy(input, other):
    """``input * log(other)``, 0 where ``input`` is 0 (unless ``other`` is NaN); differentiable."""
    a, b = _float_pair(input, other, "xlogy")
    return Xlogy.apply(a, b)


class FMaxMin(Function):
    def forward(ctx, a, b, largest):
        xp = array_module(a, b)
        ctx.save_for_backward(a, b)
        ctx.largest = largest
        return (xp.fmax if largest else xp.fmin)(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved
        xp = array_module(grad)
        # The first operand takes the gradient on ties and where the other is NaN, as in PyTorch.
        first = ((a >= b) if ctx.largest else (a <= b)) | xp.isnan(b)
        ga = xp.where(first, grad, 0) if ctx.needs(0) else None
        gb = xp.where(first, 0, grad) if ctx.needs(1) else None
        return ga, gb

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        first = Tensor(((a >= b) if ctx.largest else (a <= b)) | np.isnan(b))
        ga = E.where(first, grad, 0.0) if ctx.graph_needs(0) else None
        gb = E.where(first, 0.0, grad) if ctx.graph_needs(1) else None
        return ga, gb


def fmax(input, other):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN); differentiable."""
    a, b = E._binary_operands(input, other, "fmax")
    return FMaxMin.apply(a, b, largest=True)


def fmin(input, other):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN); differentiable."""
    a, b = E._binary_operands(input, other, "fmin")
    return FMaxMin.apply(a, b, largest=False)


class Copysign(Function):
    def forward(ctx, a, b):
        out = array_module(a, b).copysign(a, b)
        ctx.save_for_backward(a, out)
        return out

    def backward(ctx, grad):
        a, out = ctx.saved
        xp = array_module(grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = grad * xp.where(a == 0, 0, out / xp.where(a == 0, 1, a))
        return ga.astype(grad.dtype, copy=False), (xp.zeros_like(grad) if ctx.needs(1) else None)

    def grad_graph(ctx, grad):
        # The derivative in ``input`` is a piecewise-constant sign ratio: zero second derivative.
        a, out = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(a == 0, 0, out / np.where(a == 0, 1, a)).astype(a.dtype, copy=False)
        return grad * Tensor(ratio), (grad * 0 if ctx.graph_needs(1) else None)


def copysign(input, other):
    """``|input|`` with the sign of ``other`` (float result); differentiable in ``input``."""
    a, b = _float_pair(input, other, "copysign")
    return Copysign.apply(a, b)


class FloatPower(Function):
    def forward(ctx, a, b):
        out = array_module(a, b).power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        xp = array_module(grad)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs(0):
                ga = xp.where(b == 0, 0.0, grad * b * xp.power(a, b - 1))
            if ctx.needs(1):
                gb = xp.where((a == 0) & (b >= 0), 0.0, grad * out * xp.log(a))
        return ga, gb

    def grad_graph(ctx, grad):
        a, b, out = ctx.saved
        at, bt = ctx.graph_input(0, a), ctx.graph_input(1, b)
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.graph_needs(0):
                ga = E.where(Tensor(b_arr == 0), 0.0, grad * bt * at ** (bt - 1))
            if ctx.graph_needs(1):
                gb = E.where(Tensor((a_arr == 0) & (b_arr >= 0)), 0.0, grad * ctx.graph_output(out) * E.log(at))
        return ga, gb


def float_power(input, exponent):
    """``input ** exponent`` computed in float64 (the result is float64, as in PyTorch); differentiable."""
    def f64(x):
        if isinstance(x, Tensor):
            return x if x.array.dtype == np.float64 else x.to(np.float64)
        if isinstance(x, (builtins.int, builtins.float)):
            return builtins.float(x)
        return Tensor(np.asarray(x, np.float64))

    a, b = f64(input), f64(exponent)
    if not isinstance(a, Tensor):
        a = Tensor(array_module(b.array).asarray(a, np.float64) if isinstance(b, Tensor) else np.asarray(a, np.float64))
    return FloatPower.apply(a, b)


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``; differentiable."""
    prod = E.mul(tensor1, tensor2)
    return E.add(input, prod if value == 1 else E.mul(prod, value))


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``; differentiable."""
    quot = E.div(tensor1, tensor2)
    return E.add(input, quot if value == 1 else E.mul(quot, value))


# --------------------------------------------------------------------------- no-gradient binary ops
class _Binary(Function):
    differentiable = False

    def forward(ctx, a, b, fn):
        return fn(array_module(a, b), a, b)


def _binary(name, fn, doc, kinds=None):
    def op(input, other):
        a, b = E._binary_operands(input, other, name)
        if kinds is not None:
            for x in (a, b):
                kind = x.array.dtype.kind if isinstance(x, Tensor) else np.asarray(x).dtype.kind
                if kind not in kinds:
                    raise TypeError(f"{name}(): not implemented for dtype "
                                    f"{x.array.dtype if isinstance(x, Tensor) else type(x).__name__}")
        if not isinstance(a, Tensor):
            a = Tensor(np.asarray(a))
        return _Binary.apply(a, b, fn=fn)

    op.__name__ = name
    op.__doc__ = doc
    return op


heaviside = _binary("heaviside", lambda xp, a, b: xp.heaviside(a, b).astype(xp.result_type(a, b), copy=False),
                    "The Heaviside step: 0 below zero, 1 above, ``values`` at zero; no gradient.")
gcd = _binary("gcd", lambda xp, a, b: xp.gcd(a, b), "Elementwise greatest common divisor of integers.", "iu")
lcm = _binary("lcm", lambda xp, a, b: xp.lcm(a, b), "Elementwise least common multiple of integers.", "iu")
bitwise_and = _binary("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b),
                      "Elementwise bit AND of integer or bool tensors.", "biu")
bitwise_or = _binary("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b),
                     "Elementwise bit OR of integer or bool tensors.", "biu")
bitwise_xor = _binary("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b),
                      "Elementwise bit XOR of integer or bool tensors.", "biu")
bitwise_left_shift = _binary("bitwise_left_shift", lambda xp, a, b: xp.left_shift(a, b),
                             "Elementwise ``input << other`` on integers.", "iu")
bitwise_right_shift = _binary("bitwise_right_shift", lambda xp, a, b: xp.right_shift(a, b),
                              "Elementwise arithmetic ``input >> other`` on integers.", "iu")


def bitwise_not(input):
    """Elementwise bit NOT of an integer tensor (logical NOT of a bool tensor)."""
    x = ensure_tensor(input)
    if x.array.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not(): not implemented for dtype {x.array.dtype}")
    return _Predicate.apply(x, fn=lambda xp, a: xp.invert(a))


greater, less, greater_equal, less_equal, not_equal = E.gt, E.lt, E.ge, E.le, E.ne


def equal(input, other):
    """True if both tensors have the same shape and the same elements (a Python bool)."""
    a, b = ensure_tensor(input).array, ensure_tensor(other).array
    return a.shape == b.shape and bool(array_module(a, b).array_equal(a, b))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True where ``|input - other| <= atol + rtol * |other|`` (a bool tensor); infinities match
    themselves."""
    a, b = ensure_tensor(input), ensure_tensor(other)
    if a.array.dtype != b.array.dtype:
        raise RuntimeError(f"isclose(): {a.array.dtype} did not match {b.array.dtype}")
    if a.array.dtype.kind in "biu":
        return E.eq(a, b) if rtol == 0 and atol == 0 else _Binary.apply(
            a, b, fn=lambda xp, x, y: xp.abs(x.astype(np.float64) - y) <= atol + rtol * xp.abs(y.astype(np.float64)))
    return _Binary.apply(a, b, fn=lambda xp, x, y: xp.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True if every element of ``input`` is close to the matching element of ``other`` (a Python bool)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def mvlgamma(input, p):
    """The log of the multivariate gamma function of dimension ``p``:
    ``p (p - 1) / 4 log(pi) + sum_{j < p} lgamma(x - j / 2)``; differentiable."""
    x = _float_tensor(input)
    if p < 1:
        raise RuntimeError(f"mvlgamma(): p must be at least 1, got {p}")
    if bool((x.array <= (p - 1) / 2).any()):
        raise RuntimeError(f"mvlgamma(): all elements must be greater than (p-1)/2 = {(p - 1) / 2}")
    total = lgamma(x)
    for j in range(1, p):
        total = E.add(total, lgamma(E.sub(x, j / 2)))
    return E.add(total, p * (p - 1) / 4 * math.log(math.pi))


def _polygamma_method(self, n):
    return polygamma(n, self)


# --------------------------------------------------------------------------- Tensor methods
def _method_binary(fn):
    def method(self, other):
        return fn(self, other)

    method.__name__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


install(
    exp2=exp2, float_power=float_power, asin=asin, acos=acos, atan=atan, arcsin=arcsin, arccos=arccos,
    arctan=arctan, atan2=atan2, arctan2=arctan2, sinh=sinh, cosh=cosh, asinh=asinh, acosh=acosh, atanh=atanh,
    arcsinh=arcsinh, arccosh=arccosh, arctanh=arctanh, erfc=erfc, erfinv=erfinv, fix=fix, frac=frac, sgn=sgn,
    signbit=signbit, absolute=absolute, positive=positive, conj=conj, clamp_min=clamp_min, clamp_max=clamp_max,
    logaddexp=logaddexp, logaddexp2=logaddexp2, hypot=hypot, logit=logit, xlogy=xlogy, fmax=fmax, fmin=fmin,
    copysign=copysign, deg2rad=deg2rad, rad2deg=rad2deg, sinc=sinc, heaviside=heaviside, gcd=gcd, lcm=lcm,
    addcmul=addcmul, addcdiv=addcdiv, greater=greater, less=less, greater_equal=greater_equal,
    less_equal=less_equal, not_equal=not_equal, equal=equal, isclose=isclose, allclose=allclose,
    isposinf=isposinf, isneginf=isneginf, isreal=isreal, bitwise_and=bitwise_and, bitwise_or=bitwise_or,
    bitwise_xor=bitwise_xor, bitwise_not=bitwise_not, bitwise_left_shift=bitwise_left_shift,
    bitwise_right_shift=bitwise_right_shift, lgamma=lgamma, digamma=digamma, polygamma=_polygamma_method,
    mvlgamma=mvlgamma, angle=angle, real=property(real), __lshift__=_method_binary(bitwise_left_shift),
    __rshift__=_method_binary(bitwise_right_shift), __pos__=positive,
)


def _inplace_methods():
    from .inplace import _from_op

    table = {}
    for name in ("exp2", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "sinh", "cosh", "asinh", "acosh",
                 "atanh", "arcsinh", "arccosh", "arctanh", "erfc", "erfinv", "frac", "fix", "sgn", "deg2rad",
                 "rad2deg", "sinc", "logit", "xlogy", "hypot", "atan2", "arctan2", "copysign", "fmax", "fmin",
                 "logaddexp", "logaddexp2", "float_power", "gcd", "lcm", "heaviside", "bitwise_not",
                 "bitwise_left_shift", "bitwise_right_shift", "greater", "less", "greater_equal", "less_equal",
                 "not_equal", "lgamma", "digamma"):
        fn = getattr(Tensor, name)
        float_result = name not in ("fix", "sgn", "frac", "fmax", "fmin", "gcd", "lcm", "heaviside", "bitwise_not",
                                    "bitwise_left_shift", "bitwise_right_shift", "greater", "less",
                                    "greater_equal", "less_equal", "not_equal")
        table[name + "_"] = _from_op(name + "_", fn, float_result=float_result)
    return table


install(**_inplace_methods())
