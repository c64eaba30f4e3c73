"""Special functions: log-gamma, digamma and polygamma, the standard normal CDF and its inverse.

NumPy has none of them and somanet keeps SciPy out of its dependencies, so they are evaluated here from
series, recurrences and reflection formulas, always in float64 (float32 inputs give the float64 value
rounded once, so float32 results are correctly rounded or one unit off). Measured against mpmath on
float64 arguments, the relative error on the positive axis is below 6e-16 for ``lgamma`` and 5e-15 for
``digamma`` (their zeros included), below 5e-15 for ``ndtri`` and for ``ndtr`` down to -4.

Every function is an op with a backward: d lgamma = digamma, d digamma = polygamma(1, .),
d polygamma(n, .) = polygamma(n + 1, .), d ndtr = the normal density, d ndtri = its reciprocal at the
result.

* ``lgamma(x)``: log|Gamma(x)|. Around 2 a power series in ``x - 2`` whose coefficients are
  ``(-1)^k (zeta(k) - 1) / k`` (this keeps the zeros at 1 and 2 relatively accurate), reached from
  [0.5, 3.5) by one step of ``Gamma(x + 1) = x Gamma(x)``; from 3.5 to 10 the recurrence downward to that
  series; Stirling's series from 10; ``Gamma(x) Gamma(1 - x) = pi / sin(pi x)`` for x <= 0.
* ``digamma(x)``: the recurrence ``psi(x) = psi(x + 1) - 1 / x`` up to 10, then the asymptotic series;
  near its positive root a Taylor series about the root; ``psi(1 - x) - pi cot(pi x)`` for x <= 0.
* ``polygamma(n, x)``, n >= 1: ``(-1)^(n+1) n! zeta(n + 1, x)`` with the Hurwitz zeta function from its
  defining sum plus the Euler-Maclaurin tail; for x <= 0 the n-th derivative of the reflection formula
  (a polynomial in ``cot(pi x)``).
* ``ndtr(x)`` = Phi(x) = erfc(-x / sqrt 2) / 2: erfc from its continued fraction where the argument is
  at least 1 (the lower tail keeps its relative accuracy), erf from its series of positive terms below.
* ``ndtri(p)``: the inverse of Phi: a rational first guess (error below 5e-4) polished by three Halley
  steps, on ``erf(x / sqrt 2) / 2 = p - 1/2`` in the middle and on Phi in the tail where ``min(p, 1 - p)``
  is small (``p - 1/2`` and ``1 - p`` are exact there), so that results keep their relative accuracy.
"""
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module

__all__ = ["lgamma", "digamma", "polygamma", "ndtr", "ndtri"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)
_INV_SQRT_PI = 1 / math.sqrt(math.pi)
_EULER = 0.5772156649015329

# Bernoulli numbers B_2, B_4, ..., B_22.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798,
              -174611 / 330, 854513 / 138)

# zeta(k) - 1 for k = 2 .. 31: the Taylor coefficients of lgamma about 2 are (-1)^k (zeta(k) - 1) / k.
_ZETA_MINUS_ONE = (
    0.6449340668482264, 0.2020569031595943, 0.08232323371113819, 0.03692775514336993, 0.01734306198444914,
    0.008349277381922827, 0.00407735619794434, 0.0020083928260822143, 0.0009945751278180853,
    0.0004941886041194645, 0.0002460865533080483, 0.00012271334757848915, 6.124813505870483e-05,
    3.058823630702049e-05, 1.528225940865187e-05, 7.637197637899763e-06, 3.81729326499984e-06,
    1.908212716553939e-06, 9.539620338727962e-07, 4.769329867878064e-07, 2.38450502727733e-07,
    1.1921992596531106e-07, 5.960818905125948e-08, 2.980350351465228e-08, 1.4901554828365043e-08,
    7.45071178983543e-09, 3.725334024788457e-09, 1.862659723513049e-09, 9.313274324196682e-10,
    4.656629065033784e-10,
)
# Highest order first, for Horner's rule in t = x - 2; the series has no constant term.
_LGAMMA2_COEFFS = tuple((-1) ** k * z / k for k, z in zip(range(31, 1, -1), reversed(_ZETA_MINUS_ONE))) \
    + (1 - _EULER,)

# Stirling's series for lgamma: B_2k / (2k (2k - 1)), k = 1..9; digamma's: B_2k / (2k), k = 1..9.
_STIRLING = tuple(b / (2 * k * (2 * k - 1)) for k, b in enumerate(_BERNOULLI[:9], start=1))
_DIGAMMA_ASYMPTOTIC = tuple(b / (2 * k) for k, b in enumerate(_BERNOULLI[:9], start=1))

# The positive root of digamma as a sum of two doubles, and psi^(k)(root) / k! for k = 1..20.
_ROOT_HI = 1.4616321449683622
_ROOT_LO = 9.549995429965697e-17
_ROOT_TAYLOR = (
    0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652, 0.10782405069126237,
    -0.07219956125645471, 0.04880428816414311, -0.03316112647484736, 0.022597648232218104,
    -0.01542476590494896, 0.010538791616612175, -0.007204534386356869, 0.004926781395729853,
    -0.003369801655439328, 0.002305126326734928, -0.0015769367714301972, 0.0010788252019162967,
    -0.0007380709389960052, 0.000504953265834602, -0.0003454680251063077,
)
_ROOT_RADIUS = 0.2

# A first guess at Phi^-1(q) for 0 < q <= 1/2 (Abramowitz and Stegun 26.2.23, absolute error < 4.5e-4):
# with t = sqrt(-2 log q), x = -(t - (c0 + c1 t + c2 t^2) / (1 + d1 t + d2 t^2 + d3 t^3)).
_NDTRI_C = (2.515517, 0.802853, 0.010328)
_NDTRI_D = (1.432788, 0.189269, 0.001308)


# --------------------------------------------------------------------------- array helpers (float64)
def _as_float64(x):
    xp = array_module(x)
    return xp.asarray(x, dtype=np.float64)


def _horner(t, coeffs):
    """``sum(c_k t^k)`` with ``coeffs`` listed from the highest order down to order 0."""
    acc = t * 0.0 + coeffs[0]
    for c in coeffs[1:]:
        acc *= t
        acc += c
    return acc


def _sinpi(x):
    """``sin(pi x)`` with the argument reduced exactly to [-1/2, 1/2] first."""
    xp = array_module(x)
    n = xp.round(x)
    r = x - n
    s = xp.sin(np.pi * r)
    odd = xp.remainder(n, 2) != 0
    return xp.where(odd, -s, s)


def _tanpi(x):
    """``tan(pi x)`` with the argument reduced exactly to [-1/2, 1/2] first (tan has period 1)."""
    xp = array_module(x)
    return xp.tan(np.pi * (x - xp.round(x)))


def _lgamma_about_two(t):
    """``lgamma(2 + t)`` for |t| <= 1/2 by its power series (relative accuracy near t = 0 kept)."""
    return _horner(t, _LGAMMA2_COEFFS) * t


def _lgamma_positive(z):
    """``lgamma(z)`` for z >= 1/2 (float64 array)."""
    xp = array_module(z)
    out = xp.empty_like(z)
    low = z < 1.5
    if low.any():
        # lgamma(z) = lgamma(z + 1) - log(z), with z + 1 about 2: z - 1 is exact on [0.5, 1.5).
        t = z[low] - 1.0
        out[low] = _lgamma_about_two(t) - xp.log1p(t)
    mid = (z >= 1.5) & (z < 2.5)
    if mid.any():
        out[mid] = _lgamma_about_two(z[mid] - 2.0)
    rec = (z >= 2.5) & (z < 10.0)
    if rec.any():
        # Down to [1.5, 2.5): lgamma(z) = lgamma(z - n) + log((z - 1) (z - 2) ... (z - n)).
        w = z[rec]
        n = xp.floor(w - 1.5)
        prod = xp.ones_like(w)
        for k in range(1, int(n.max()) + 1):
            prod = xp.where(n >= k, prod * (w - k), prod)
        out[rec] = _lgamma_about_two(w - n - 2.0) + xp.log(prod)
    big = z >= 10.0
    if big.any():
        w = z[big]
        inv = 1.0 / w
        series = _horner(inv * inv, _STIRLING[::-1]) * inv
        with np.errstate(invalid="ignore", over="ignore"):
            out[big] = (w - 0.5) * (xp.log(w) - 1.0) - 0.5 + _LOG_SQRT_2PI + series
    return out


def lgamma_array(x):
    """``log|Gamma(x)|`` of an array, in ``x``'s floating dtype (float32 for integers): +inf at the poles
    0, -1, -2, ... and at +-inf, NaN for NaN."""
    xp = array_module(x)
    dtype = _result_dtype(x)
    z = _as_float64(x)
    out = xp.full(z.shape, np.inf)
    finite = xp.isfinite(z)
    out[xp.isnan(z)] = np.nan
    pos = finite & (z >= 0.5)
    if pos.any():
        out[pos] = _lgamma_positive(z[pos])
    small = finite & (z > 0) & (z < 0.5)
    if small.any():
        w = z[small]
        out[small] = _lgamma_positive(w + 1.0) - xp.log(w)
    neg = finite & (z <= 0) & (z != xp.floor(z))
    if neg.any():
        # Reflection: |Gamma(z)| = pi / (|sin(pi z)| Gamma(1 - z)).
        w = z[neg]
        out[neg] = math.log(math.pi) - xp.log(xp.abs(_sinpi(w))) - _lgamma_positive(1.0 - w)
    return out.astype(dtype, copy=False)


def _digamma_positive(z):
    """``psi(z)`` for z > 0 (float64 array)."""
    xp = array_module(z)
    w = z.copy()
    acc = xp.zeros_like(z)
    # Up to [10, 11): psi(z) = psi(z + n) - sum 1 / (z + k).
    for _ in range(int(max(0.0, math.ceil(10.0 - float(z.min())))) if z.size else 0):
        low = w < 10.0
        if not low.any():
            break
        acc -= xp.where(low, 1.0 / w, 0.0)
        w = xp.where(low, w + 1.0, w)
    inv = 1.0 / w
    inv2 = inv * inv
    out = xp.log(w) - 0.5 * inv - _horner(inv2, _DIGAMMA_ASYMPTOTIC[::-1]) * inv2 + acc
    # About the root near 1.4616, where the sum above loses its relative accuracy.
    d = (z - _ROOT_HI) - _ROOT_LO
    near = xp.abs(d) < _ROOT_RADIUS
    if near.any():
        t = d[near]
        out[near] = _horner(t, _ROOT_TAYLOR[::-1]) * t
    return out


def digamma_array(x):
    """``psi(x)`` of an array in its floating dtype. As PyTorch: -inf at +0, +inf at -0, NaN at the
    negative integers and at -inf, +inf at +inf."""
    xp = array_module(x)
    dtype = _result_dtype(x)
    z = _as_float64(x)
    out = xp.full(z.shape, np.nan)
    finite = xp.isfinite(z)
    out[z == np.inf] = np.inf
    zero = z == 0
    if zero.any():
        out[zero] = xp.copysign(np.inf, -z[zero])
    pos = finite & (z > 0)
    if pos.any():
        out[pos] = _digamma_positive(z[pos])
    neg = finite & (z < 0) & (z != xp.floor(z))
    if neg.any():
        w = z[neg]
        out[neg] = _digamma_positive(1.0 - w) - np.pi / _tanpi(w)
    return out.astype(dtype, copy=False)


def _hurwitz_zeta(s, a):
    """``zeta(s, a) = sum_k (a + k)^-s`` for an integer s >= 2 and an array a > 0 (float64)."""
    xp = array_module(a)
    threshold = 12.0 + s
    w = a.copy()
    acc = xp.zeros_like(a)
    steps = int(max(0.0, math.ceil(threshold - float(a.min())))) if a.size else 0
    for _ in range(steps):
        low = w < threshold
        if not low.any():
            break
        with np.errstate(over="ignore"):
            acc += xp.where(low, w ** -s, 0.0)
        w = xp.where(low, w + 1.0, w)
    # Euler-Maclaurin tail from w: w^(1-s) / (s - 1) + w^-s / 2 + sum_j B_2j / (2j)! s(s+1)..(s+2j-2) w^(1-s-2j).
    tail = w ** (1.0 - s) / (s - 1) + 0.5 * w ** -s
    inv2 = 1.0 / (w * w)
    term = w ** (-s - 1.0)  # w^(1 - s - 2j) at j = 1
    rising = float(s)  # s (s + 1) ... (s + 2j - 2)
    fact = 2.0  # (2j)!
    for j, b in enumerate(_BERNOULLI, start=1):
        tail = tail + (b / fact * rising) * term
        term = term * inv2
        rising *= (s + 2 * j - 1) * (s + 2 * j)
        fact *= (2 * j + 1) * (2 * j + 2)
    return acc + tail


def _cot_derivative_poly(n):
    """Integer coefficients (lowest order first) of P_n with d^n/dx^n cot(pi x) = pi^n P_n(cot(pi x))."""
    p = [0, 1]  # P_0(c) = c
    for _ in range(n):
        dp = [k * p[k] for k in range(1, len(p))] or [0]
        # P_{m+1}(c) = -(1 + c^2) P_m'(c)
        nxt = [0] * (len(dp) + 2)
        for k, c in enumerate(dp):
            nxt[k] -= c
            nxt[k + 2] -= c
        p = nxt
    return p


def polygamma_array(n, x):
    """``psi^(n)(x)``, the n-th derivative of digamma, of an array in its floating dtype."""
    if n == 0:
        return digamma_array(x)
    xp = array_module(x)
    dtype = _result_dtype(x)
    z = _as_float64(x)
    out = xp.full(z.shape, np.nan)
    pole = (z <= 0) & (z == xp.floor(z))
    out[pole] = np.inf if n % 2 else np.nan
    out[z == np.inf] = 0.0
    finite = xp.isfinite(z)
    sign = (-1.0) ** (n + 1) * math.factorial(n)
    pos = finite & (z > 0)
    if pos.any():
        with np.errstate(over="ignore", invalid="ignore"):
            out[pos] = sign * _hurwitz_zeta(n + 1, z[pos])
    neg = finite & (z < 0) & ~pole
    if neg.any():
        # Differentiating psi(1 - x) - psi(x) = pi cot(pi x) n times:
        # psi^(n)(x) = (-1)^n psi^(n)(1 - x) - pi^(n+1) P_n(cot(pi x)).
        w = z[neg]
        cot = 1.0 / _tanpi(w)
        poly = _horner(cot, _cot_derivative_poly(n)[::-1])
        reflected = sign * _hurwitz_zeta(n + 1, 1.0 - w)
        out[neg] = (-1.0) ** n * reflected - math.pi ** (n + 1) * poly
    return out.astype(dtype, copy=False)


def _erfc_large(z):
    """``erfc(z)`` for z >= 1 from its continued fraction, relatively accurate into the far tail (200 levels
    reach float64 accuracy from z = 1, 60 from z = 2)."""
    xp = array_module(z)
    f = z.copy()
    depth = 60 if z.size == 0 or float(z.min()) >= 2.0 else 200
    for k in range(depth, 0, -1):
        f = z + (0.5 * k) / f
    with np.errstate(under="ignore"):
        return xp.exp(-z * z) * _INV_SQRT_PI / f


def _erf_small(z):
    """``erf(z)`` for |z| < 2 from ``2/sqrt(pi) exp(-z^2) sum_n (2 z^2)^n z / (2n + 1)!!`` (terms all of
    one sign: no cancellation)."""
    xp = array_module(z)
    z2 = 2.0 * z * z
    term = z.copy()
    total = z.copy()
    for n in range(1, 60):
        term = term * z2 / (2 * n + 1)
        total += term
    return 2.0 * _INV_SQRT_PI * xp.exp(-0.5 * z2) * total


def ndtr_array(x):
    """Phi(x), the standard normal CDF, of an array in its floating dtype (both tails relatively
    accurate)."""
    xp = array_module(x)
    dtype = _result_dtype(x)
    z = -_as_float64(x) / math.sqrt(2.0)  # Phi(x) = erfc(z) / 2
    out = xp.empty_like(z)
    for band in ((z >= 1.0) & (z < 2.0), z >= 2.0):
        if band.any():
            out[band] = 0.5 * _erfc_large(z[band])
    tiny = z <= -2.0
    if tiny.any():
        out[tiny] = 1.0 - 0.5 * _erfc_large(-z[tiny])
    mid = (z > -2.0) & (z < 1.0)
    if mid.any():
        out[mid] = 0.5 - 0.5 * _erf_small(z[mid])
    out[xp.isnan(z)] = np.nan
    return out.astype(dtype, copy=False)


def _normal_pdf(x):
    xp = array_module(x)
    with np.errstate(under="ignore"):
        return xp.exp(-0.5 * x * x) / _SQRT_2PI


def ndtri_array(p):
    """Phi^-1(p) of an array in its floating dtype: -inf at 0, +inf at 1, NaN outside [0, 1]."""
    xp = array_module(p)
    dtype = _result_dtype(p)
    v = _as_float64(p)
    out = xp.full(v.shape, np.nan)
    out[v == 0] = -np.inf
    out[v == 1] = np.inf
    inside = (v > 0) & (v < 1)
    if inside.any():
        w = v[inside]
        upper = w > 0.5
        q = xp.where(upper, 1.0 - w, w)  # exact for w in [1/2, 1)
        t = xp.sqrt(-2.0 * xp.log(q))
        c0, c1, c2 = _NDTRI_C
        d1, d2, d3 = _NDTRI_D
        x = -(t - (c0 + t * (c1 + t * c2)) / (1.0 + t * (d1 + t * (d2 + t * d3))))
        x = xp.where(upper, -x, x)
        # In the middle, p - 1/2 is exact and Phi(x) - 1/2 = erf(x / sqrt 2) / 2 keeps the relative accuracy
        # of small results; in the tails, Phi(x) - q is relatively accurate on the side where q is small.
        d = w - 0.5
        middle = xp.abs(d) < 0.25
        for _ in range(3):
            # Halley's step on f(x) = Phi(x) - p, with f' = phi(x) and f'' = -x phi(x).
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                f_tail = xp.where(upper, q - ndtr_array(-x), ndtr_array(x) - q)
                f_mid = 0.5 * _erf_small(xp.where(middle, x, 0.0) / math.sqrt(2.0)) - d
                u = xp.where(middle, f_mid, f_tail) / _normal_pdf(x)
                x = x - u / (1.0 + 0.5 * x * u)
        out[inside] = xp.where(d == 0, 0.0, x)
    return out.astype(dtype, copy=False)


def _result_dtype(x):
    """The dtype a special function returns: the input's floating dtype, float32 for other kinds."""
    dtype = x.dtype if hasattr(x, "dtype") else array_module(x).asarray(x).dtype
    return dtype if dtype.kind == "f" else backend.default_float


# --------------------------------------------------------------------------- ops
class Lgamma(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return lgamma_array(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * digamma_array(a)

    def grad_graph(ctx, grad):
        return grad * digamma(ctx.graph_input(0, ctx.saved[0]))


class Digamma(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return digamma_array(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * polygamma_array(1, a)

    def grad_graph(ctx, grad):
        return grad * polygamma(1, ctx.graph_input(0, ctx.saved[0]))


class Polygamma(Function):
    def forward(ctx, a, n):
        ctx.save_for_backward(a)
        ctx.n = n
        return polygamma_array(n, a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * polygamma_array(ctx.n + 1, a)

    def grad_graph(ctx, grad):
        return grad * polygamma(ctx.n + 1, ctx.graph_input(0, ctx.saved[0]))


class Ndtr(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ndtr_array(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * _normal_pdf(a.astype(np.float64)).astype(a.dtype, copy=False)

    def grad_graph(ctx, grad):
        from .elementwise import exp

        a = ctx.graph_input(0, ctx.saved[0])
        return grad * (exp(-0.5 * (a * a)) * (1 / _SQRT_2PI))


class Ndtri(Function):
    def forward(ctx, a):
        out = ndtri_array(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        xp = array_module(out)
        with np.errstate(over="ignore"):
            slope = _SQRT_2PI * xp.exp(0.5 * out.astype(np.float64) ** 2)
        return grad * slope.astype(out.dtype, copy=False)

    def grad_graph(ctx, grad):
        from .elementwise import exp

        out = ctx.graph_output(ctx.saved[0])
        return grad * (exp(0.5 * (out * out)) * _SQRT_2PI)


def _float_tensor(input):
    """A Tensor of a floating dtype (integer and bool inputs become float32, as in PyTorch)."""
    x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
    if x.array.dtype.kind != "f":
        from .shape import to_dtype

        x = to_dtype(x, backend.default_float)
    return x


def lgamma(input):
    """``log|Gamma(x)|`` elementwise; differentiable (the derivative is ``digamma``)."""
    return Lgamma.apply(_float_tensor(input))


def digamma(input):
    """The digamma function ``psi(x) = d/dx log Gamma(x)`` elementwise; differentiable."""
    return Digamma.apply(_float_tensor(input))


def polygamma(n, input):
    """``psi^(n)(x)``, the n-th derivative of digamma (n = 0 is digamma itself); differentiable."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"polygamma(): n must be a non-negative int, got {n!r}")
    if n == 0:
        return digamma(input)
    return Polygamma.apply(_float_tensor(input), n=int(n))


def ndtr(input):
    """The standard normal CDF ``Phi(x)`` elementwise; differentiable."""
    return Ndtr.apply(_float_tensor(input))


def ndtri(input):
    """The inverse of the standard normal CDF elementwise (NaN outside [0, 1]); differentiable."""
    return Ndtri.apply(_float_tensor(input))
