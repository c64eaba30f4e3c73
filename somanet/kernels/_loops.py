"""The Numba loops of the softmax, cross-entropy, activation, batch/group-norm, pooling and dropout kernels.

This module imports Numba, so it is imported only by the kernels' builders (``_jit.compiled``), never at
``import somanet``. The loops live at module level (not in a builder's closure) because they call shared
helpers, and Numba's on-disk cache keeps only functions that reach other compiled functions as globals.

``_expf`` is the float32 exponential the loops share: NumPy's SIMD ``exp`` is fast on its own, but a fused
row loop calling a scalar ``exp`` is not vectorised by LLVM, so the loops use a Cody-Waite reduction and a
degree-7 polynomial (at most 4.5 ulp, 3e-7 relative, from the exact value over float32's normal range;
NumPy's float32 ``exp``: 2.4 ulp) whose ``2^n`` factor is built from its exponent bits in an int32
scratch row; both halves vectorise.
"""
import numpy as np
import numba

__all__ = []

_FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}   # no "nnan"/"ninf": masks are -inf, NaN must propagate
_OPTS = dict(cache=True, fastmath=_FAST, nogil=True, error_model="numpy")
njit = numba.njit

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)
_LN2_LO = np.float32(1.428606765330187e-06)
_LOW = np.float32(-87.0)    # exp below this is under float32's smallest normal: taken as 0
_HIGH = np.float32(88.0)


@njit(**_OPTS)
def _expf_parts(t):
    """``exp(t) = p * 2^n`` for float32 ``t``: ``p`` and the float32 bits of ``2^n`` (t clamped to the
    normal range)."""
    t = min(max(t, _LOW), _HIGH)
    n = np.floor(t * _LOG2E + np.float32(0.5))
    f = t - n * _LN2_HI - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * f + np.float32(1.3981999507e-3)
    p = p * f + np.float32(8.3334519073e-3)
    p = p * f + np.float32(4.1665795894e-2)
    p = p * f + np.float32(1.6666665459e-1)
    p = p * f + np.float32(5.0000001201e-1)
    p = p * f * f + f + np.float32(1.0)
    return p, (np.int32(n) + np.int32(127)) << np.int32(23)


@njit(**_OPTS)
def _exp_row(src, shift, dst, bits):
    """``dst = exp(src - shift)`` (0 below float32's normal range, NaN for a NaN difference); returns the
    float32 sum of ``dst``."""
    d = src.shape[0]
    for j in range(d):
        t = src[j] - shift
        p, b = _expf_parts(t)
        dst[j] = p if t >= _LOW else (np.float32(0.0) if t < _LOW else t)
        bits[j] = b
    scale = bits.view(np.float32)
    s = np.float32(0.0)
    for j in range(d):
        e = dst[j] * scale[j]
        dst[j] = e
        s += e
    return s


@njit(**_OPTS)
def _row_max(row):
    m = row[0]
    for j in range(1, row.shape[0]):
        m = max(m, row[j])
    return m


# --------------------------------------------------------------------------- softmax and log-softmax
@njit(**_OPTS)
def softmax_forward(x, mx, out, bits):
    """Softmax of each row of the float32 ``(rows, d)`` ``x`` into ``out``; ``mx`` the row maxima (NumPy's
    ``max`` is a SIMD reduction that also carries NaN; a compiled ``max`` loop is not vectorised)."""
    for r in range(x.shape[0]):
        o = out[r]
        inv = np.float32(1.0) / _exp_row(x[r], mx[r], o, bits)
        for j in range(o.shape[0]):
            o[j] *= inv


@njit(**_OPTS)
def log_softmax_forward(x, mx, out, bits):
    """Log-softmax of each row of ``x`` into ``out`` (``out`` holds the exponentials on the way); ``mx`` as
    in ``softmax_forward``."""
    for r in range(x.shape[0]):
        xr, o = x[r], out[r]
        m = mx[r]
        shift = m + np.float32(np.log(_exp_row(xr, m, o, bits)))
        for j in range(o.shape[0]):
            o[j] = xr[j] - shift


@njit(**_OPTS)
def softmax_backward(g, s, dx):
    """``dx = s * (g - <g, s>)`` per row."""
    for r in range(g.shape[0]):
        gr, sr, o = g[r], s[r], dx[r]
        dot = np.float32(0.0)
        for j in range(gr.shape[0]):
            dot += gr[j] * sr[j]
        for j in range(gr.shape[0]):
            o[j] = (gr[j] - dot) * sr[j]


@njit(**_OPTS)
def log_softmax_backward(g, y, dx, bits):
    """``dx = g - exp(y) * sum(g)`` per row (``y`` the log-softmax)."""
    for r in range(g.shape[0]):
        gr, o = g[r], dx[r]
        total = np.float32(0.0)
        for j in range(gr.shape[0]):
            total += gr[j]
        _exp_row(y[r], np.float32(0.0), o, bits)
        for j in range(gr.shape[0]):
            o[j] = gr[j] - o[j] * total


# --------------------------------------------------------------------------- cross-entropy
@njit(**_OPTS)
def cross_entropy_forward(x, t, w, ignore_index, eps, p, w_t, flat, loss, bits):
    """Softmax ``p``, per-row loss, target weight ``w_t`` and flat target index of float32 logits ``x``
    ``(n, c)`` and int64 targets ``t``; ``w`` the class weights (ones for none). Returns the float64 loss
    sum, the float64 sum of ``w_t`` and the number of ignored rows."""
    n, c = x.shape
    w_all = np.float32(0.0)
    for j in range(c):
        w_all += w[j]
    hard = np.float32(1.0 - eps)
    soft = np.float32(eps / c)
    total = 0.0
    denom = 0.0
    ignored = 0
    for r in range(n):
        xr, pr = x[r], p[r]
        m = _row_max(xr)
        s = _exp_row(xr, m, pr, bits)
        inv = np.float32(1.0) / s
        for j in range(c):
            pr[j] *= inv
        k = t[r]
        if k == ignore_index:
            w_t[r] = np.float32(0.0)
            flat[r] = r * c
            loss[r] = np.float32(0.0)
            ignored += 1
            continue
        lse = np.float32(np.log(s))
        wk = w[k]
        w_t[r] = wk
        flat[r] = r * c + k
        value = (lse - (xr[k] - m)) * wk
        if eps > 0.0:
            zs = np.float32(0.0)
            for j in range(c):
                zs += w[j] * (xr[j] - m)
            value = value * hard + (lse * w_all - zs) * soft
        loss[r] = value
        total += value
        denom += wk
    return total, denom, ignored


@njit(**_OPTS)
def cross_entropy_backward(p, t, w, ignore_index, eps, g, per_row, dx):
    """Input gradient of ``cross_entropy_forward``'s loss: ``g`` the gradient of each row's loss (one
    value for all rows unless ``per_row``)."""
    n, c = p.shape
    w_all = np.float32(0.0)
    for j in range(c):
        w_all += w[j]
    for r in range(n):
        o = dx[r]
        k = t[r]
        if k == ignore_index:
            for j in range(c):
                o[j] = np.float32(0.0)
            continue
        gr = g[r] if per_row else g[0]
        pr = p[r]
        hard = gr * w[k] * np.float32(1.0 - eps)
        if eps > 0.0:
            soft = gr * np.float32(eps / c)
            coef = hard + soft * w_all
            for j in range(c):
                o[j] = pr[j] * coef - soft * w[j]
        else:
            for j in range(c):
                o[j] = pr[j] * hard
        o[k] -= hard


# --------------------------------------------------------------------------- batch norm
@njit(**_OPTS)
def batch_norm_forward(x, w, b, eps, out, mean, var, invstd):
    """Training batch norm of ``x (N, C, S)``: per channel the float64 mean and biased variance (two
    passes, so no cancellation), then ``out = (x - mean) * invstd * w + b``; ``mean``, ``var``, ``invstd``
    ``(C,)`` are written."""
    n, c, s = x.shape
    m = n * s
    for ch in range(c):
        acc = 0.0
        for i in range(n):
            row = x[i, ch]
            for j in range(s):
                acc += row[j]
        mu = acc / m
        sq = 0.0
        for i in range(n):
            row = x[i, ch]
            for j in range(s):
                dv = row[j] - mu
                sq += dv * dv
        v = sq / m
        mean[ch] = mu
        var[ch] = v
        invstd[ch] = 1.0 / np.sqrt(v + eps)
        mu_x = mean[ch]                 # the mean and factors in the input's dtype
        k = invstd[ch] * w[ch]
        sh = b[ch]
        for i in range(n):
            row, o = x[i, ch], out[i, ch]
            for j in range(s):
                o[j] = (row[j] - mu_x) * k + sh


@njit(**_OPTS)
def batch_norm_backward(g, x, mean, invstd, w, need_dx, dx, gweight, gbias, fac):
    """Gradients of ``batch_norm_forward``: per channel ``gbias = sum(g)``, ``gweight = sum(g * xhat)``
    (one pass, float64 sums), then ``dx = (g - gbias / M - xhat * gweight / M) * invstd * w``."""
    n, c, s = g.shape
    m = n * s
    for ch in range(c):
        mu = mean[ch]
        sg = 0.0
        sgx = 0.0
        for i in range(n):
            gr, row = g[i, ch], x[i, ch]
            for j in range(s):
                sg += gr[j]
                sgx += gr[j] * (row[j] - mu)
        inv = invstd[ch]
        gbias[ch] = sg
        gweight[ch] = sgx * inv
        if need_dx:
            fac[0] = sg / m             # the factors in the input's dtype (``fac``: a scratch of 3)
            fac[1] = gweight[ch] * inv / m
            fac[2] = inv * w[ch]
            c0, c1, k = fac[0], fac[1], fac[2]
            for i in range(n):
                gr, row, o = g[i, ch], x[i, ch], dx[i, ch]
                for j in range(s):
                    o[j] = (gr[j] - c0 - (row[j] - mu) * c1) * k


# --------------------------------------------------------------------------- pooling
@njit(**_OPTS)
def max_pool_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, best, arg):
    """Max pooling of the ``(planes, H, W)`` ``x`` into ``best`` ``(planes, Ho, Wo)`` and ``arg``, the offset
    ``i * kw + j`` of each window's first maximum in scan order (of its last NaN where it holds one, as
    the reference places it); positions in the padding count as -inf."""
    planes, h, w = x.shape
    ho, wo = best.shape[1], best.shape[2]
    for p in range(planes):
        xp_ = x[p]
        for oh in range(ho):
            r0 = oh * sh - ph
            for ow in range(wo):
                c0 = ow * sw - pw
                b = -np.inf
                a = 0
                for i in range(kh):
                    r = r0 + i * dh
                    if r < 0 or r >= h:
                        continue
                    for j in range(kw):
                        c = c0 + j * dw
                        if c < 0 or c >= w:
                            continue
                        v = xp_[r, c]
                        if b != b:              # a NaN maximum: later NaNs take the index
                            if v != v:
                                a = i * kw + j
                        elif v > b or v != v:
                            b = v
                            a = i * kw + j
                if b == -np.inf:
                    a = _first_lowest(xp_, r0, c0, kh, kw, dh, dw, h, w)
                best[p, oh, ow] = b
                arg[p, oh, ow] = a


@njit(**_OPTS)
def _first_lowest(plane, r0, c0, kh, kw, dh, dw, h, w):
    """The first offset of a window whose values are all -inf: padding counts, as in the reference."""
    for i in range(kh):
        for j in range(kw):
            r, c = r0 + i * dh, c0 + j * dw
            if r < 0 or r >= h or c < 0 or c >= w or plane[r, c] == -np.inf:
                return i * kw + j
    return 0


@njit(**_OPTS)
def max_pool_backward(g, arg, kw, sh, sw, ph, pw, dh, dw, gx):
    """Each output's gradient added at its window's maximum in the zeroed ``(planes, H, W)`` ``gx``
    (maxima in the padding take none)."""
    planes, h, w = gx.shape
    ho, wo = g.shape[1], g.shape[2]
    for p in range(planes):
        gp = gx[p]
        for oh in range(ho):
            for ow in range(wo):
                q = arg[p, oh, ow]
                r = oh * sh - ph + (q // kw) * dh
                c = ow * sw - pw + (q % kw) * dw
                if 0 <= r < h and 0 <= c < w:
                    gp[r, c] += g[p, oh, ow]


@njit(**_OPTS)
def avg_pool_forward(x, kh, kw, sh, sw, ph, pw, inv, out):
    """Window sums of the zero-padded ``(planes, H, W)`` ``x`` times ``inv`` ``(Ho, Wo)`` (1 / divisor)."""
    planes, h, w = x.shape
    ho, wo = out.shape[1], out.shape[2]
    for p in range(planes):
        xp_ = x[p]
        for oh in range(ho):
            r0 = oh * sh - ph
            for ow in range(wo):
                c0 = ow * sw - pw
                s = 0.0
                for i in range(max(0, -r0), min(kh, h - r0)):
                    for j in range(max(0, -c0), min(kw, w - c0)):
                        s += xp_[r0 + i, c0 + j]
                out[p, oh, ow] = s * inv[oh, ow]


@njit(**_OPTS)
def avg_pool_backward(g, kh, kw, sh, sw, ph, pw, inv, gx):
    """Each output's gradient times ``inv`` spread over its window in the zeroed ``gx``."""
    planes, h, w = gx.shape
    ho, wo = g.shape[1], g.shape[2]
    for p in range(planes):
        gp = gx[p]
        for oh in range(ho):
            r0 = oh * sh - ph
            for ow in range(wo):
                c0 = ow * sw - pw
                share = g[p, oh, ow] * inv[oh, ow]
                for i in range(max(0, -r0), min(kh, h - r0)):
                    for j in range(max(0, -c0), min(kw, w - c0)):
                        gp[r0 + i, c0 + j] += share


# --------------------------------------------------------------------------- GELU and SiLU
_BLOCK = 1024                     # elements per block: the exponent scratch stays in L1
_S2PI = 0.7978845608028654        # sqrt(2 / pi)
_GK = 0.044715
_T1 = np.float32(-2 * _S2PI)      # tanh GELU: 0.5 (1 + tanh(y)) = 1 / (1 + exp(-2 y)), y = c (x + k x^3)
_T3 = np.float32(-2 * _S2PI * _GK)
_D1 = np.float32(2 * _S2PI)
_D3 = np.float32(6 * _S2PI * _GK)
_AS_R = np.float32(np.sqrt(2.0) / 0.3275911)    # Abramowitz & Stegun 7.1.26, as the reference's erf GELU
_AS_B0 = np.float32(0.5 * 0.254829592 * (np.sqrt(2.0) / 0.3275911))
_AS_B1 = np.float32(0.5 * -0.284496736 * (np.sqrt(2.0) / 0.3275911) ** 2)
_AS_B2 = np.float32(0.5 * 1.421413741 * (np.sqrt(2.0) / 0.3275911) ** 3)
_AS_B3 = np.float32(0.5 * -1.453152027 * (np.sqrt(2.0) / 0.3275911) ** 4)
_AS_B4 = np.float32(0.5 * 1.061405429 * (np.sqrt(2.0) / 0.3275911) ** 5)
_INV_S2PI = np.float32(1 / np.sqrt(2 * np.pi))


@njit(**_OPTS)
def gelu_tanh_forward(x, out, deriv, need_deriv, bits):
    """tanh-GELU of the flat float32 ``x`` as ``x s`` with ``s = 1 / (1 + exp(-2 y))``, and (with
    ``need_deriv``) its derivative ``s + 2 s (1 - s) c x (1 + 3 k x^2)`` into ``deriv``. Blocks of
    ``_BLOCK`` elements, each a local view indexed from 0 (which is what lets LLVM vectorise the loops)."""
    n = x.shape[0]
    scale = bits.view(np.float32)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        xs, os_, ds = x[start:stop], out[start:stop], deriv[start:stop]
        for j in range(stop - start):
            a = xs[j]
            p, b = _expf_parts(a * (_T1 + _T3 * a * a))
            os_[j] = p
            bits[j] = b
        for j in range(stop - start):
            a = xs[j]
            s = np.float32(1.0) / (np.float32(1.0) + os_[j] * scale[j])
            # exp overflowing: the exact limit, as the reference
            s = s if a * (_T1 + _T3 * a * a) <= _HIGH else np.float32(0.0)
            if need_deriv:
                ds[j] = s + s * (np.float32(1.0) - s) * a * (_D1 + _D3 * a * a)
            os_[j] = a * s


@njit(**_OPTS)
def gelu_erf_forward(x, out, deriv, need_deriv, bits):
    """Exact GELU ``x Phi(x)`` of the flat float32 ``x`` (``Phi`` from A&S 7.1.26, within 3e-7), and its
    derivative ``Phi(x) + x exp(-x^2 / 2) / sqrt(2 pi)``; blocks as ``gelu_tanh_forward``."""
    n = x.shape[0]
    scale = bits.view(np.float32)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        xs, os_, ds = x[start:stop], out[start:stop], deriv[start:stop]
        for j in range(stop - start):
            a = xs[j]
            p, b = _expf_parts(np.float32(-0.5) * a * a)
            os_[j] = p
            bits[j] = b
        for j in range(stop - start):
            a = xs[j]
            gauss = os_[j] * scale[j] if np.float32(-0.5) * a * a >= _LOW else np.float32(0.0)
            u = np.float32(1.0) / (abs(a) + _AS_R)
            q = (((((_AS_B4 * u + _AS_B3) * u + _AS_B2) * u + _AS_B1) * u + _AS_B0) * u) * gauss   # Phi(-|x|)
            cdf = np.float32(1.0) - q if a >= 0 else q
            cdf = a if a != a else cdf
            if need_deriv:
                ds[j] = cdf + a * gauss * _INV_S2PI
            os_[j] = a * cdf


@njit(**_OPTS)
def silu_forward(x, out, deriv, need_deriv, bits):
    """SiLU ``x s``, ``s = 1 / (1 + exp(-x))``, of the flat float32 ``x``, and its derivative
    ``s (1 + x (1 - s))``; blocks as ``gelu_tanh_forward``."""
    n = x.shape[0]
    scale = bits.view(np.float32)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        xs, os_, ds = x[start:stop], out[start:stop], deriv[start:stop]
        for j in range(stop - start):
            p, b = _expf_parts(-xs[j])
            os_[j] = p
            bits[j] = b
        for j in range(stop - start):
            a = xs[j]
            s = np.float32(1.0) / (np.float32(1.0) + os_[j] * scale[j])
            s = s if -a <= _HIGH else np.float32(0.0)
            if need_deriv:
                ds[j] = s * (np.float32(1.0) + a * (np.float32(1.0) - s))
            os_[j] = a * s


# --------------------------------------------------------------------------- dropout
@njit(**_OPTS)
def dropout_forward(a, u, p, scale, out, keep):
    """``out = a * (scale if u >= p else 0)`` and the kept flags, on flat arrays: the product the reference
    forms with its mask, so the bits are the same."""
    zero = scale * 0
    for j in range(a.shape[0]):
        k = u[j] >= p
        keep[j] = k
        out[j] = a[j] * (scale if k else zero)


@njit(**_OPTS)
def dropout_backward(g, keep, scale, dx):
    """``dx = g * (scale if kept else 0)`` on flat arrays."""
    zero = scale * 0
    for j in range(g.shape[0]):
        dx[j] = g[j] * (scale if keep[j] else zero)


# --------------------------------------------------------------------------- group norm
@njit(**_OPTS)
def group_norm_forward(x, groups, w, b, eps, out, xhat, mean, var, invstd):
    """Group norm of ``x (N, C, S)``: per sample and group of ``C / groups`` channels the float64 mean and
    biased variance, then ``xhat`` and ``out = xhat * w + b`` per channel; ``(N, groups)`` statistics."""
    n, c, s = x.shape
    cg = c // groups
    d = cg * s
    for i in range(n):
        for gi in range(groups):
            acc = 0.0
            for ch in range(gi * cg, (gi + 1) * cg):
                row = x[i, ch]
                for j in range(s):
                    acc += row[j]
            mu = acc / d
            sq = 0.0
            for ch in range(gi * cg, (gi + 1) * cg):
                row = x[i, ch]
                for j in range(s):
                    dv = row[j] - mu
                    sq += dv * dv
            mean[i, gi] = mu
            var[i, gi] = sq / d
            invstd[i, gi] = 1.0 / np.sqrt(sq / d + eps)
            mu_x, inv = mean[i, gi], invstd[i, gi]
            for ch in range(gi * cg, (gi + 1) * cg):
                row, h, o = x[i, ch], xhat[i, ch], out[i, ch]
                k, sh = w[ch], b[ch]
                for j in range(s):
                    v = (row[j] - mu_x) * inv
                    h[j] = v
                    o[j] = v * k + sh


@njit(**_OPTS)
def group_norm_backward(g, xhat, invstd, w, groups, need_dx, dx, gweight, gbias, fac):
    """Gradients of ``group_norm_forward``: float64 per-channel ``gweight`` and ``gbias`` (zeroed by the
    caller) and ``dx = (dxhat - xhat * mean(dxhat * xhat) - mean(dxhat)) * invstd``, ``dxhat = g * w``."""
    n, c, s = g.shape
    cg = c // groups
    d = cg * s
    for i in range(n):
        for gi in range(groups):
            proj = 0.0
            total = 0.0
            for ch in range(gi * cg, (gi + 1) * cg):
                gr, h = g[i, ch], xhat[i, ch]
                sgx = 0.0
                sg = 0.0
                for j in range(s):
                    sgx += gr[j] * h[j]
                    sg += gr[j]
                gweight[ch] += sgx
                gbias[ch] += sg
                proj += sgx * w[ch]
                total += sg * w[ch]
            if need_dx:
                fac[0] = proj / d           # the factors in the input's dtype (``fac``: a scratch of 2)
                fac[1] = total / d
                p, t, inv = fac[0], fac[1], invstd[i, gi]
                for ch in range(gi * cg, (gi + 1) * cg):
                    gr, h, o = g[i, ch], xhat[i, ch], dx[i, ch]
                    k = w[ch]
                    for j in range(s):
                        o[j] = (gr[j] * k - h[j] * p - t) * inv
