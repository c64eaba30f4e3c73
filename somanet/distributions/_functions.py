"""Ops the distributions need that somanet's op library does not have: Gamma and Dirichlet draws with
implicit reparameterisation gradients, and the small pieces of linear algebra behind the multivariate
normal (Cholesky factor, triangular solve, matrix diagonal), each with its backward.

Implicit reparameterisation: a draw ``x`` of a continuous distribution with CDF ``F(x; a)`` moves with
the parameter along ``dx/da = -(dF/da) / (dF/dx)``, which keeps ``F(x; a)`` (the underlying uniform
noise) fixed. The derivatives of the incomplete gamma and beta functions come from their power series,
all of whose terms have one sign, summed until the terms are negligible; the results are float64-accurate
(PyTorch uses fitted approximations with errors of about 1e-4 to 1e-3 here).
"""
import numpy as np

from ..autograd.function import Function
from ..backend import array_module
from ..ops.special import digamma_array
from .utils import standard_gamma_array

_SERIES_EPS = 1e-18
_MAX_TERMS = 1_000_000


# --------------------------------------------------------------------------- implicit gradients
def standard_gamma_grad_array(alpha, x):
    """``dx/dalpha`` for a draw ``x`` of Gamma(alpha, 1), in ``x``'s dtype.

    With ``P(a, x) = x^a e^-x / Gamma(a + 1) * S``, ``S = sum_n x^n / ((a+1)...(a+n))``, the implicit
    derivative simplifies to ``-(x / a) (S (log x - digamma(a + 1)) + dS/da)``.
    """
    xp = array_module(alpha, x)
    a, z = xp.broadcast_arrays(xp.asarray(alpha, dtype=np.float64), xp.asarray(x, dtype=np.float64))
    shape = a.shape
    a = a.ravel()
    z = z.ravel()
    out = xp.zeros(a.shape)
    ok = (z > 0) & xp.isfinite(z) & (a > 0)
    if ok.any():
        a1, z1 = a[ok], z[ok]
        s, ds = _gamma_series(a1, z1)
        with np.errstate(invalid="ignore", over="ignore"):
            res = -(z1 / a1) * (s * (xp.log(z1) - digamma_array(a1 + 1.0)) + ds)
        out[ok] = xp.where(xp.isnan(res), 0.0, res)
    return out.reshape(shape).astype(x.dtype, copy=False)


def _gamma_series(a, z):
    """``S`` and ``dS/da`` for ``S = sum_n t_n``, ``t_n = z^n / ((a+1)...(a+n))``.

    The loop works on compact arrays of the entries still summing; finished ones are written out.
    """
    xp = array_module(a, z)
    s_out = xp.empty_like(a)
    ds_out = xp.empty_like(a)
    idx = xp.arange(a.size)
    s = xp.ones_like(a)
    ds = xp.zeros_like(a)
    t = xp.ones_like(a)
    h = xp.zeros_like(a)  # sum_{k<=n} 1 / (a + k): dt_n/da = -t_n h_n
    ak = a.copy()
    for n in range(1, _MAX_TERMS):
        ak += 1.0
        t *= z
        t /= ak
        h += 1.0 / ak
        s += t
        ds -= t * h
        if n % 4:
            continue  # extra terms are harmless; checking every fourth one saves a third of the work
        done = (z < ak) & (t <= _SERIES_EPS * s) & (t * h <= -_SERIES_EPS * ds)
        if done.any():
            s_out[idx[done]] = s[done]
            ds_out[idx[done]] = ds[done]
            keep = ~done
            if not keep.any():
                break
            idx, s, ds, t, h, ak, z = idx[keep], s[keep], ds[keep], t[keep], h[keep], ak[keep], z[keep]
    return s_out, ds_out


def dirichlet_grad_array(x, alpha, total):
    """For a Dirichlet draw ``x`` with concentration ``alpha`` summing to ``total``: ``g = (dx/dalpha) /
    (1 - x)`` where ``dx/dalpha`` is the implicit derivative of the Beta(alpha, total - alpha) marginal
    (the other concentrations fixed). PyTorch's ``_dirichlet_grad`` computes the same quantity; the full
    gradient is ``dL/dalpha_j = g_j (dL/dx_j - sum_i x_i dL/dx_i)``.

    With ``a = alpha``, ``b = total - alpha`` and ``I_x(a, b)`` the regularised incomplete beta function,
    ``I_x = x^a (1-x)^b / (a B(a, b)) * F`` with ``F = sum_n prod_{k<n} (a+b+k)/(a+1+k) x^n``; or, through
    ``I_x(a, b) = 1 - I_{1-x}(b, a)``, a series in ``1 - x``. Whichever converges faster is summed.
    """
    xp = array_module(x, alpha, total)
    arrs = xp.broadcast_arrays(xp.asarray(x, dtype=np.float64), xp.asarray(alpha, dtype=np.float64),
                               xp.asarray(total, dtype=np.float64))
    shape = arrs[0].shape
    z, a, tot = (v.ravel() for v in arrs)
    b = tot - a
    y = 1.0 - z
    out = xp.zeros(z.shape)
    ok = (z >= 0) & (z <= 1) & (a > 0) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho_a = xp.maximum(z * (a + b) / (a + 1.0), z)
        rho_b = xp.maximum(y * (a + b) / (b + 1.0), y)
    use_a = ok & (rho_a <= rho_b) & (z > 0)
    use_b = ok & ~use_a & (z > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if use_a.any():
            za, aa, ba = z[use_a], a[use_a], b[use_a]
            f, df = _beta_series(za, aa, ba, shifted=True)
            res = -(za / aa) * (f * (xp.log(za) - digamma_array(aa + 1.0) + digamma_array(aa + ba)) + df)
            out[use_a] = res
        if use_b.any():
            zb, ab, bb = z[use_b], a[use_b], b[use_b]
            g, dg = _beta_series(1.0 - zb, bb, ab, shifted=False)
            res = (zb / bb) * (g * (xp.log1p(-(1.0 - zb)) - digamma_array(ab) + digamma_array(ab + bb)) + dg)
            out[use_b] = res
    out = xp.where(xp.isnan(out), 0.0, out)
    return out.reshape(shape).astype(x.dtype, copy=False)


def _beta_series(x, p, q, shifted):
    """``F = sum_n t_n`` with ``t_n = prod_{k<n} (p+q+k)/(p+1+k) * x^n`` and the derivative of ``F``:
    with respect to ``p`` if ``shifted`` (then ``d log t_n/dp = sum_k (1-q)/((p+q+k)(p+1+k))``), else with
    respect to ``q`` (``sum_k 1/(p+q+k)``). Loops on compact arrays of the entries still summing."""
    xp = array_module(x, p, q)
    f_out = xp.empty_like(x)
    df_out = xp.empty_like(x)
    idx = xp.arange(x.size)
    f = xp.ones_like(x)
    df = xp.zeros_like(x)
    t = xp.ones_like(x)
    acc = xp.zeros_like(x)  # d log t_n
    pq = p + q
    p1 = p + 1.0
    one_minus_q = 1.0 - q
    for n in range(1, _MAX_TERMS):
        dk = one_minus_q / (pq * p1) if shifted else 1.0 / pq
        ratio = x * pq / p1
        t *= ratio
        acc += dk
        f += t
        df += t * acc
        pq = pq + 1.0
        p1 = p1 + 1.0
        if n % 4:
            continue
        done = ((ratio < 1.0) & (t <= _SERIES_EPS * f) & (xp.abs(t * acc) <= _SERIES_EPS * xp.abs(df))) | (t == 0)
        if done.any():
            f_out[idx[done]] = f[done]
            df_out[idx[done]] = df[done]
            keep = ~done
            if not keep.any():
                break
            idx, f, df, t, acc = idx[keep], f[keep], df[keep], t[keep], acc[keep]
            x, pq, p1, one_minus_q = x[keep], pq[keep], p1[keep], one_minus_q[keep]
    return f_out, df_out


class StandardGamma(Function):
    """Draws of Gamma(alpha, 1), one per entry of ``alpha``; differentiable by implicit reparameterisation."""

    def forward(ctx, alpha):
        x = standard_gamma_array(alpha)
        ctx.save_for_backward(alpha, x)
        return x

    def backward(ctx, grad):
        alpha, x = ctx.saved
        return grad * standard_gamma_grad_array(alpha, x)


class DirichletSample(Function):
    """Draws of Dirichlet(alpha) along the last dimension (normalised Gamma draws); differentiable by
    implicit reparameterisation through the Beta marginals, as in PyTorch."""

    def forward(ctx, alpha):
        xp = array_module(alpha)
        g = standard_gamma_array(alpha.astype(np.float64))
        g = xp.maximum(g, xp.finfo(alpha.dtype).tiny)
        x = (g / g.sum(-1, keepdims=True)).astype(alpha.dtype)
        ctx.save_for_backward(alpha, x)
        return x

    def backward(ctx, grad):
        alpha, x = ctx.saved
        xp = array_module(alpha)
        total = xp.broadcast_to(alpha.sum(-1, keepdims=True), alpha.shape)
        g = dirichlet_grad_array(x, alpha, total)
        return g * (grad - (x * grad).sum(-1, keepdims=True))


# --------------------------------------------------------------------------- linear algebra
def _mT(a):
    return array_module(a).swapaxes(a, -1, -2)


class SolveTriangular(Function):
    """``X = A^-1 B`` for a lower (or ``upper``) triangular ``A``; batch dimensions broadcast."""

    def forward(ctx, a, b, upper=False):
        xp = array_module(a, b)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = xp.linalg.solve(xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:]))
        ctx.save_for_backward(a, out)
        ctx.upper = upper
        return out

    def backward(ctx, grad):
        a, out = ctx.saved
        xp = array_module(a)
        batch = grad.shape[:-2]
        gb = xp.linalg.solve(xp.broadcast_to(_mT(a), batch + a.shape[-2:]), grad)
        ga = -(gb @ _mT(out))
        ga = xp.triu(ga) if ctx.upper else xp.tril(ga)
        return ga, gb

    def grad_graph(ctx, grad):
        from ..ops.index import tril, triu
        from ..ops.linalg import matmul
        from ..ops.shape import transpose

        a, out = ctx.saved
        # The transpose of a lower triangle is an upper one.
        gb = SolveTriangular.apply(transpose(ctx.graph_input(0, a), -2, -1), grad, upper=not ctx.upper)
        ga = -matmul(gb, transpose(ctx.graph_output(out), -2, -1))
        return (triu(ga) if ctx.upper else tril(ga)), gb


class Diagonal(Function):
    """The diagonal of the last two dimensions: ``(*, n, n) -> (*, n)``."""

    def forward(ctx, a):
        ctx.shape = a.shape
        return array_module(a).diagonal(a, axis1=-2, axis2=-1).copy()

    def backward(ctx, grad):
        xp = array_module(grad)
        out = xp.zeros(ctx.shape, dtype=grad.dtype)
        n = ctx.shape[-1]
        idx = xp.arange(n)
        out[..., idx, idx] = grad
        return out

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Diagonal.apply(v))


def solve_triangular(a, b, upper=False):
    """``a^-1 b`` for triangular ``a`` of shape ``(*, n, n)`` and ``b`` of shape ``(*, n, k)``."""
    return SolveTriangular.apply(a, b, upper=upper)


def diagonal(a):
    return Diagonal.apply(a)


def standard_gamma(alpha):
    return StandardGamma.apply(alpha)


def dirichlet_sample(alpha):
    return DirichletSample.apply(alpha)


__all__ = ["cholesky", "solve_triangular", "diagonal", "standard_gamma", "dirichlet_sample",
           "standard_gamma_grad_array", "dirichlet_grad_array"]
