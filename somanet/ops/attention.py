"""Attention ops: fused scaled dot-product attention, the multi-head projections around it, rotary
position embedding, and masked attention pooling for additive/multiplicative (Bahdanau/Luong) attention.

Every op is one ``Function`` with a hand-written backward. Heads live in an array dimension, never in a
Python loop. Shapes: ``N`` batch, ``h`` heads, ``L`` target (query) length, ``S`` source (key) length,
``E`` embedding, ``hd = E / h`` head size.
"""
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..kernels import _select
from ..random import numpy_rng
from ._util import LOG2_E
from .linalg import few_row_matmul, times_weight_t

__all__ = ["scaled_dot_product_attention", "apply_rotary_emb", "attention_pool"]


def _needs(ctx, i):
    edges = getattr(ctx, "edges", None)
    return edges is not None and edges[i] is not None


def _swap(a):
    return a.swapaxes(-1, -2)


# --------------------------------------------------------------------------- masked softmax, shared
def _softmax_rows_(scores, masked, xp):
    """Softmax over the last axis, in place, each row shifted by its own maximum; ``masked``: positions
    may be -inf. A row with nothing to attend to (every position masked) gives all-zero weights, as
    PyTorch's fused attention does, instead of NaN."""
    row_max = scores.max(axis=-1, keepdims=True)
    masked = masked or not xp.isfinite(row_max).all()
    if masked:
        row_max[~xp.isfinite(row_max)] = 0
    scores -= row_max
    xp.exp(scores, out=scores)
    denom = xp.sum(scores, axis=-1, keepdims=True)
    if masked:
        denom[denom == 0] = 1
    scores /= denom
    return scores


def _masked_softmax_(scores, keep, xp):
    """``_softmax_rows_`` with positions where ``keep`` (a bool array broadcasting against ``scores``, or
    None) is False excluded; ``scores`` is overwritten."""
    if keep is not None:
        xp.copyto(scores, -np.inf, where=~keep)
    return _softmax_rows_(scores, keep is not None, xp)


def _softmax(scores, keep, xp, base2=False):
    """``_masked_softmax_``, run by the kernel of op ``"attention"`` that its chooser picks
    (``kernels/attention.py``); ``base2``: the scores are times log2(e), for a kernel whose ``base2`` is set."""
    kern = _select.implementation("attention", _select.choose("attention", scores))
    if kern is None:
        return _masked_softmax_(scores, keep, xp)
    return kern.softmax_(scores, keep, base2)


def _base2(scores):
    """Whether the softmax kernel that will run on ``scores`` takes unmasked scores in base 2 (times
    log2(e), folded into their scaling)."""
    kern = _select.implementation("attention", _select.choose("attention", scores))
    return kern is not None and kern.base2


def _softmax_backward(p, dp, xp):
    """Gradient of the softmax input from the gradient ``dp`` of its output ``p`` (overwrites ``dp``)."""
    dot = xp.einsum("...i,...i->...", dp, p)[..., None]
    dp -= dot
    dp *= p
    return dp


def _contiguous(a, xp):
    """A C-ordered copy of a transposed view: ``copyto`` into a fresh buffer is several times faster than
    ``ascontiguousarray`` for these many-axis transposes."""
    out = xp.empty(a.shape, a.dtype)
    xp.copyto(out, a)
    return out


def _expand_to(a, shape, xp):
    return a if a.shape == tuple(shape) else xp.broadcast_to(a, shape).copy()


# --------------------------------------------------------------------------- scaled dot-product attention
class ScaledDotProductAttention(Function):
    """``softmax(q k^T * scale + mask) @ v`` in one op, with dropout on the weights.

    ``q`` (..., L, E), ``k`` (..., S, E), ``v`` (..., S, Ev); leading dims broadcast. ``mask`` None, bool
    (True = take part in attention) or float (added to the scores), broadcasting to (..., L, S).
    With ``need_weights`` it also returns the attention weights (after dropout, as PyTorch's
    ``MultiheadAttention`` does), averaged over the head axis (-3) when ``average_weights``.
    ``kv_repeat`` > 1 shares each key/value head among that many query heads (grouped-query attention).
    """

    def forward(ctx, q, k, v, mask, scale=None, dropout_p=0.0, is_causal=False, need_weights=False,
                average_weights=False, kv_repeat=1, generator=None):
        xp = array_module(q)
        L, S = q.shape[-2], k.shape[-2]
        if kv_repeat > 1:
            k = xp.repeat(k, kv_repeat, axis=-3)
            v = xp.repeat(v, kv_repeat, axis=-3)
        sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        scores = xp.matmul(q, _swap(k))
        keep = None
        base2 = mask is None and not is_causal and _base2(scores)
        scores *= sc * LOG2_E if base2 else sc
        if mask is not None:
            if mask.dtype == np.bool_:
                keep = mask
            else:
                full = np.broadcast_shapes(scores.shape, mask.shape)
                scores = _expand_to(scores, full, xp)
                scores += mask
        if is_causal:
            causal = xp.tril(xp.ones((L, S), dtype=bool))
            keep = causal if keep is None else (keep & causal)
        if keep is not None:
            scores = _expand_to(scores, np.broadcast_shapes(scores.shape, keep.shape), xp)
        p = _softmax(scores, keep, xp, base2)
        drop = None
        if dropout_p > 0:
            rng = numpy_rng(generator)
            draw = np.float32 if p.dtype == np.float32 else np.float64
            drop = (rng.random(p.shape, dtype=draw) >= dropout_p).astype(p.dtype)
            drop *= 1.0 / (1.0 - dropout_p) if dropout_p < 1 else 0.0
            weights = p * drop
        else:
            weights = p
        out = xp.matmul(weights, v)
        ctx.save_for_backward(q, k, v, p, drop)
        ctx.scale, ctx.kv_repeat, ctx.average = sc, kv_repeat, average_weights
        if not need_weights:
            return out
        ctx.heads = weights.shape[-3] if weights.ndim >= 3 else 1
        if average_weights and weights.ndim >= 3:
            return out, weights.mean(axis=-3)
        return out, weights

    def backward(ctx, grad_out, grad_weights=None):
        q, k, v, p, drop = ctx.saved
        xp = array_module(p)
        weights = p if drop is None else p * drop
        if grad_out is None:
            dv = None
            dw = xp.zeros_like(p)
        else:
            dv = xp.matmul(_swap(weights), grad_out)
            dw = xp.matmul(grad_out, _swap(v))
            dw = _expand_to(dw, p.shape, xp)
        if grad_weights is not None:
            if ctx.average and p.ndim >= 3:
                dw += xp.expand_dims(grad_weights, -3) * (1.0 / ctx.heads)
            else:
                dw += grad_weights
        if drop is not None:
            dw *= drop
        ds = _softmax_backward(p, dw, xp)
        dmask = ds.copy() if _needs(ctx, 3) else None
        ds *= ctx.scale
        dq = xp.matmul(ds, k)
        dk = xp.matmul(_swap(ds), q)
        if ctx.kv_repeat > 1:
            r = ctx.kv_repeat
            dk = dk.reshape(dk.shape[:-3] + (dk.shape[-3] // r, r) + dk.shape[-2:]).sum(-3)
            if dv is not None:
                dv = dv.reshape(dv.shape[:-3] + (dv.shape[-3] // r, r) + dv.shape[-2:]).sum(-3)
        return dq, dk, dv, dmask

    def grad_graph(ctx, grad_out, grad_weights=None):
        from .linalg import matmul
        from .reduce import sum as sum_
        from .shape import reshape, transpose

        q, k, v, p, drop = ctx.saved
        r = ctx.kv_repeat
        tq = ctx.graph_input(0, q)
        if r > 1:
            def repeated(i, value):
                # forward saved the repeated heads; each input head gets the sum over its copies.
                lead, hk = value.shape[:-3], value.shape[-3] // r
                return ctx.graph_derived(value, [ctx.graph_parent(i)], lambda g, _: (
                    sum_(reshape(g, lead + (hk, r) + value.shape[-2:]), -3),))

            tk, tv = repeated(1, k), repeated(2, v)
        else:
            tk, tv = ctx.graph_input(1, k), ctx.graph_input(2, v)
        # p = softmax(q k^T * scale + mask) (masked positions 0): tied to the scores by the softmax Jacobian.
        scores = matmul(tq, transpose(tk, -1, -2)) * ctx.scale
        mask = ctx.graph_parent(3)  # a float mask that needs a gradient (only its place in the graph is used)
        if mask is not None:
            scores = scores + mask
        p_t = ctx.graph_derived(p, [scores], lambda g, p_t: (p_t * (g - sum_(p_t * g, -1, keepdim=True)),))
        drop_t = None if drop is None else Tensor(drop)
        weights = p_t if drop_t is None else p_t * drop_t
        dv = dw = None
        if grad_out is not None:
            dv = matmul(transpose(weights, -1, -2), grad_out)
            dw = matmul(grad_out, transpose(tv, -1, -2))
        if grad_weights is not None:
            if ctx.average and p.ndim >= 3:
                extra = reshape(grad_weights, grad_weights.shape[:-2] + (1,) + grad_weights.shape[-2:]) * (1.0 / ctx.heads)
            else:
                extra = grad_weights
            dw = extra if dw is None else dw + extra
        if drop_t is not None:
            dw = dw * drop_t
        ds = p_t * (dw - sum_(dw * p_t, -1, keepdim=True))
        dmask = ds if ctx.graph_needs(3) else None
        ds = ds * ctx.scale
        dq = matmul(ds, tk)
        dk = matmul(transpose(ds, -1, -2), tq)
        if r > 1:
            dk = sum_(reshape(dk, dk.shape[:-3] + (dk.shape[-3] // r, r) + dk.shape[-2:]), -3)
            if dv is not None:
                dv = sum_(reshape(dv, dv.shape[:-3] + (dv.shape[-3] // r, r) + dv.shape[-2:]), -3)
        return dq, dk, dv, dmask


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """Attention ``softmax(Q K^T * scale + mask) V`` as one fused op.

    ``query`` (N, ..., L, E), ``key`` (N, ..., S, E), ``value`` (N, ..., S, Ev) -> (N, ..., L, Ev).
    ``attn_mask``: bool (True = take part in attention) or float (added to the scores), broadcasting to
    (N, ..., L, S). ``is_causal`` masks the upper triangle (top-left aligned).
    ``attn_mask`` and ``is_causal`` are exclusive, as in PyTorch. ``scale`` defaults to 1/sqrt(E).
    ``dropout_p`` drops attention weights. ``enable_gqa`` lets
    ``key``/``value`` have fewer heads (dim -3) than ``query``, each shared by a group of query heads.
    Rows where every position is masked give zeros, as in PyTorch.

    >>> q = somanet.randn(2, 4, 8, 16)
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 8, 16)
    """
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}(): {name} must have at least 2 dims (..., seq, features), "
                             f"got shape {tuple(t.shape)}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}(): {name} must be floating point, got dtype {t.dtype}")
    if not (query.dtype == key.dtype == value.dtype) and not backend.autocasting():
        raise RuntimeError(f"{op}(): query, key and value must have the same dtype, got {query.dtype}, "
                           f"{key.dtype} and {value.dtype}")
    q_shape, k_shape, v_shape = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    if q_shape[-1] != k_shape[-1]:
        raise RuntimeError(f"{op}(): query and key must have the same feature size, got query {q_shape} "
                           f"and key {k_shape}")
    if k_shape[-2] != v_shape[-2]:
        raise RuntimeError(f"{op}(): key and value must have the same sequence length, got key {k_shape} "
                           f"and value {v_shape}")
    repeat = 1
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3 and k_shape[-3] != q_shape[-3]:
        if q_shape[-3] % k_shape[-3] or k_shape[-3] != v_shape[-3]:
            raise RuntimeError(f"{op}(): with enable_gqa the query heads ({q_shape[-3]}) must be a multiple of the "
                               f"key/value heads ({k_shape[-3]}, {v_shape[-3]})")
        repeat = q_shape[-3] // k_shape[-3]
    L, S = q_shape[-2], k_shape[-2]
    try:
        np.broadcast_shapes(q_shape[:-2], k_shape[:-2] if repeat == 1 else k_shape[:-3] + (q_shape[-3],),
                            v_shape[:-2] if repeat == 1 else v_shape[:-3] + (q_shape[-3],))
    except ValueError:
        raise RuntimeError(f"{op}(): batch dims of query {q_shape}, key {k_shape} and value {v_shape} do not "
                           f"broadcast") from None
    mask = attn_mask
    if mask is not None and is_causal:
        raise RuntimeError(f"{op}(): Explicit attn_mask should not be set when is_causal=True (combine the causal "
                           f"mask into attn_mask instead)")
    if mask is not None:
        if not isinstance(mask, Tensor):
            mask = Tensor(backend.as_array(mask))
        m_shape = tuple(mask.shape)
        try:
            np.broadcast_shapes(m_shape, q_shape[:-2] + (L, S))
        except ValueError:
            raise RuntimeError(f"{op}(): attn_mask of shape {m_shape} does not broadcast to the attention weights' "
                               f"shape {q_shape[:-2] + (L, S)}") from None
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise TypeError(f"{op}(): attn_mask must be bool or floating point, got dtype {mask.dtype}")
        if mask.dtype.kind == "f" and mask.dtype != query.dtype:
            mask = mask.to(query.dtype)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}(): dropout_p must be in [0, 1], got {dropout_p}")
    return ScaledDotProductAttention.apply(query, key, value, mask, scale=scale, dropout_p=dropout_p,
                                           is_causal=is_causal, kv_repeat=repeat)


# --------------------------------------------------------------------------- multi-head projections
class HeadProjection(Function):
    """Project a sequence with rows ``rows`` of a packed weight and split the result into heads.

    ``x`` (L, N, E_in), or (N, L, E_in) with ``batch_first``; ``weight`` (R, E_in) of which rows
    ``rows = (lo, hi)`` are used, ``hi - lo = chunks * E``; ``bias`` or None, of which rows ``bias_rows``
    (default ``rows``) are used. Returns ``chunks``
    arrays (N, h, L, hd) (one array when ``chunks == 1``): q, k, v of ``MultiheadAttention`` in one GEMM.
    """

    def forward(ctx, x, weight, bias, rows=None, bias_rows=None, chunks=1, num_heads=1, batch_first=False):
        lo, hi = rows if rows is not None else (0, weight.shape[0])
        blo, bhi = bias_rows if bias_rows is not None else (lo, hi)
        E = (hi - lo) // chunks
        hd = E // num_heads
        a, b = (x.shape[0], x.shape[1])
        x2d = x.reshape(a * b, x.shape[-1])
        y = times_weight_t(x2d, weight[lo:hi])
        if bias is not None:
            y += bias[blo:bhi]
        y = y.reshape(a, b, chunks, num_heads, hd)
        # (C, N, h, L, hd) views: batch is axis 0 of x with batch_first, else axis 1. Every (L, hd) matrix of
        # a view has unit-stride rows, so matmul takes the heads as they are, without copying them apart.
        y = y.transpose(2, 0, 3, 1, 4) if batch_first else y.transpose(2, 1, 3, 0, 4)
        ctx.save_for_backward(x2d, weight)
        ctx.lo, ctx.hi, ctx.chunks, ctx.batch_first = lo, hi, chunks, batch_first
        ctx.bias_rows = (blo, bhi)
        ctx.x_shape, ctx.bias_len = x.shape, (None if bias is None else bias.shape[0])
        return tuple(y[c] for c in range(chunks)) if chunks > 1 else y[0]

    def backward(ctx, *grads):
        x2d, weight = ctx.saved
        xp = array_module(x2d)
        ref = next(g for g in grads if g is not None)
        N, h, L, hd = ref.shape
        C = ctx.chunks
        # Straight back into the row layout of the GEMM: (N, L, C, h, hd) or (L, N, C, h, hd).
        dy2d = xp.empty((x2d.shape[0], C * h * hd), ref.dtype)
        dy5 = dy2d.reshape((N, L, C, h, hd) if ctx.batch_first else (L, N, C, h, hd))
        for c, g in enumerate(grads):
            if g is None:
                dy5[:, :, c] = 0
            else:
                dy5[:, :, c] = g.transpose(0, 2, 1, 3) if ctx.batch_first else g.transpose(2, 0, 1, 3)
        lo, hi = ctx.lo, ctx.hi
        dx = few_row_matmul(dy2d, weight[lo:hi]).reshape(ctx.x_shape) if _needs(ctx, 0) else None
        dw = db = None
        if _needs(ctx, 1):
            dw_rows = dy2d.T @ x2d
            if (lo, hi) == (0, weight.shape[0]):
                dw = dw_rows
            else:
                dw = xp.zeros_like(weight)
                dw[lo:hi] = dw_rows
        if ctx.bias_len is not None and _needs(ctx, 2):
            blo, bhi = ctx.bias_rows
            db = xp.zeros(ctx.bias_len, dy2d.dtype)
            db[blo:bhi] = dy2d.sum(0)
        return dx, dw, db

    def grad_graph(ctx, *grads):
        from ..autograd.higher_order import zeros
        from .linalg import matmul
        from .reduce import sum as sum_
        from .shape import ConstantPad, permute, reshape, stack, transpose

        x2d, weight = ctx.saved
        ref = next(g for g in grads if g is not None)
        N, h, L, hd = ref.shape
        parts = []
        for g in grads:
            g = zeros(ref.shape, ref.dtype) if g is None else g
            parts.append(permute(g, (0, 2, 1, 3) if ctx.batch_first else (2, 0, 1, 3)))
        dy2d = reshape(stack(parts, 2), (x2d.shape[0], -1))
        lo, hi = ctx.lo, ctx.hi
        tw = ctx.graph_input(1, weight)
        dx = dw = db = None
        if ctx.graph_needs(0):
            dx = reshape(matmul(dy2d, tw[lo:hi]), ctx.x_shape)
        if ctx.graph_needs(1):
            tx = reshape(ctx.graph_input(0, x2d.reshape(ctx.x_shape)), x2d.shape)
            dw = matmul(transpose(dy2d, 0, 1), tx)
            if (lo, hi) != (0, weight.shape[0]):
                dw = ConstantPad.apply(dw, ((lo, weight.shape[0] - hi), (0, 0)), 0)
        if ctx.bias_len is not None and ctx.graph_needs(2):
            blo, bhi = ctx.bias_rows
            db = sum_(dy2d, 0)
            if (blo, bhi) != (0, ctx.bias_len):
                db = ConstantPad.apply(db, ((blo, ctx.bias_len - bhi),), 0)
        return dx, dw, db


class MergeHeadsProjection(Function):
    """Merge heads (N, h, L, hd) back to (L, N, E) (or (N, L, E) with ``batch_first``) and apply the
    output projection ``weight`` (E_out, E), ``bias`` (E_out,) in the same op."""

    def forward(ctx, a, weight, bias, batch_first=False):
        N, h, L, hd = a.shape
        xp = array_module(a)
        merged = a.transpose(0, 2, 1, 3) if batch_first else a.transpose(2, 0, 1, 3)
        a2d = _contiguous(merged, xp).reshape(N * L, h * hd)
        y = times_weight_t(a2d, weight)
        if bias is not None:
            y += bias
        ctx.save_for_backward(a2d, weight)
        ctx.a_shape, ctx.batch_first, ctx.has_bias = a.shape, batch_first, bias is not None
        return y.reshape((N, L, -1) if batch_first else (L, N, -1))

    def backward(ctx, grad):
        a2d, weight = ctx.saved
        N, h, L, hd = ctx.a_shape
        g2d = grad.reshape(N * L, grad.shape[-1])
        da = None
        if _needs(ctx, 0):
            da = few_row_matmul(g2d, weight).reshape((N, L, h, hd) if ctx.batch_first else (L, N, h, hd))
            da = da.transpose(0, 2, 1, 3) if ctx.batch_first else da.transpose(1, 2, 0, 3)
        dw = g2d.T @ a2d if _needs(ctx, 1) else None
        db = g2d.sum(0) if ctx.has_bias and _needs(ctx, 2) else None
        return da, dw, db

    def grad_graph(ctx, grad):
        from .linalg import matmul
        from .reduce import sum as sum_
        from .shape import permute, reshape, transpose

        a2d, weight = ctx.saved
        N, h, L, hd = ctx.a_shape
        g2d = reshape(grad, (N * L, grad.shape[-1]))
        da = dw = db = None
        if ctx.graph_needs(0):
            da = reshape(matmul(g2d, ctx.graph_input(1, weight)), (N, L, h, hd) if ctx.batch_first else (L, N, h, hd))
            da = permute(da, (0, 2, 1, 3) if ctx.batch_first else (1, 2, 0, 3))
        if ctx.graph_needs(1):
            merged = a2d.reshape((N, L, h, hd) if ctx.batch_first else (L, N, h, hd))
            a = merged.transpose(0, 2, 1, 3) if ctx.batch_first else merged.transpose(1, 2, 0, 3)
            ta = permute(ctx.graph_input(0, a), (0, 2, 1, 3) if ctx.batch_first else (2, 0, 1, 3))
            dw = matmul(transpose(g2d, 0, 1), reshape(ta, (N * L, h * hd)))
        if ctx.has_bias and ctx.graph_needs(2):
            db = sum_(g2d, 0)
        return da, dw, db


class AppendKeyValue(Function):
    """Append one extra source position to per-head keys or values (N, h, S, hd) -> (N, h, S+1, hd).

    The new position is ``bias`` (1, 1, E) split into heads (``add_bias_kv``), or zeros when ``bias``
    is None (``add_zero_attn``).
    """

    def forward(ctx, x, bias):
        N, h, S, hd = x.shape
        out = array_module(x).zeros((N, h, S + 1, hd), x.dtype)
        out[:, :, :S] = x
        if bias is not None:
            out[:, :, S] = bias.reshape(h, hd)
            ctx.bias_shape = bias.shape
        return out

    def backward(ctx, grad):
        S = grad.shape[2] - 1
        db = grad[:, :, S].sum(0).reshape(ctx.bias_shape) if _needs(ctx, 1) else None
        return grad[:, :, :S], db

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda vx, vb: AppendKeyValue.apply(vx, vb))


# --------------------------------------------------------------------------- rotary position embedding
class RotaryEmbedding(Function):
    """Rotate feature pairs of ``x`` (..., L, D) by position-dependent angles.

    ``cos``/``sin`` (L, R/2) for the first R <= D features (the rest pass through). Pairs are
    ``(x[2i], x[2i+1])`` when ``interleaved``, else ``(x[i], x[i + R/2])`` (the "rotate half" layout).
    ``out1 = x1 cos - x2 sin``, ``out2 = x1 sin + x2 cos``.
    """

    def forward(ctx, x, cos, sin, interleaved=True):
        ctx.save_for_backward(cos, sin)
        ctx.interleaved = interleaved
        return _rotate(x, cos, sin, interleaved, 1.0, array_module(x))

    def backward(ctx, grad):
        cos, sin = ctx.saved
        # The transpose of a rotation is the rotation by the opposite angle.
        return _rotate(grad, cos, sin, ctx.interleaved, -1.0, array_module(grad)), None, None

    def grad_graph(ctx, grad):
        cos, sin = ctx.saved
        return ctx.graph_linear((grad,), lambda v, *_: RotaryEmbedding.apply(v, cos, sin, interleaved=ctx.interleaved))


def _rotate(x, cos, sin, interleaved, sign, xp):
    half = cos.shape[-1]
    rot = 2 * half
    out = x.copy()
    src = x[..., :rot]
    dst = out[..., :rot]
    if interleaved:
        x1, x2, o1, o2 = src[..., 0::2], src[..., 1::2], dst[..., 0::2], dst[..., 1::2]
    else:
        x1, x2, o1, o2 = src[..., :half], src[..., half:], dst[..., :half], dst[..., half:]
    s = sin if sign > 0 else -sin
    xp.multiply(x1, cos, out=o1)
    o1 -= x2 * s
    xp.multiply(x2, cos, out=o2)
    o2 += x1 * s
    return out


def apply_rotary_emb(x, cos, sin, interleaved=True):
    """Rotary position embedding (RoPE): rotate feature pairs of ``x`` (..., L, D) by angles whose
    ``cos``/``sin`` (L, R/2) are given per position; the first R features are rotated."""
    c = cos.array if isinstance(cos, Tensor) else backend.as_array(cos)
    s = sin.array if isinstance(sin, Tensor) else backend.as_array(sin)
    if c.shape != s.shape or c.shape[-1] * 2 > x.shape[-1]:
        raise ValueError(f"apply_rotary_emb(): cos {tuple(c.shape)} and sin {tuple(s.shape)} must have the same shape "
                         f"(L, R/2) with R <= x's last dim ({tuple(x.shape)})")
    if c.shape[-2] != x.shape[-2]:
        raise ValueError(f"apply_rotary_emb(): cos/sin cover {c.shape[-2]} positions but x has {x.shape[-2]} "
                         f"(x shape {tuple(x.shape)}, expected (..., L, D))")
    if c.dtype != x.dtype:
        c, s = c.astype(x.dtype), s.astype(x.dtype)
    return RotaryEmbedding.apply(x, c, s, interleaved=interleaved)


# --------------------------------------------------------------------------- additive position tables
class AddPositions(Function):
    """``x + table[offset : offset + L]``, the table broadcast over the batch.

    ``x`` (L, N, D) (``time_axis=0``) or (N, L, D) (``time_axis=1``) or unbatched (L, D); ``table``
    (max_len, D). The table's gradient is the batch sum of ``grad`` in the rows used.
    """

    def forward(ctx, x, table, offset=0, time_axis=0):
        L = x.shape[time_axis]
        rows = table[offset:offset + L]
        if time_axis == 0 and x.ndim == 3:
            rows = rows[:, None, :]
        ctx.offset, ctx.time_axis, ctx.table_shape = offset, time_axis, table.shape
        return x + rows

    def backward(ctx, grad):
        dtable = None
        if _needs(ctx, 1):
            xp = array_module(grad)
            dtable = xp.zeros(ctx.table_shape, grad.dtype)
            if grad.ndim == 3:
                g = grad.sum(axis=1 - ctx.time_axis)
            else:
                g = grad
            dtable[ctx.offset:ctx.offset + g.shape[0]] = g
        return grad, dtable

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda vx, vt: vx if vt is None else AddPositions.apply(
            vx, vt, offset=ctx.offset, time_axis=ctx.time_axis))


# --------------------------------------------------------------------------- attention pooling
class AttentionPool(Function):
    """Masked softmax of ``scores`` (N, L, S) over S, then the weighted sum of ``values`` (N, S, Dv).

    ``keep`` is a bool array broadcasting to (N, L, S) (True = attend) or None. Returns
    ``(context (N, L, Dv), weights (N, L, S))``.
    """

    def forward(ctx, scores, values, keep=None):
        xp = array_module(scores)
        p = _softmax(scores.copy(), keep, xp)
        ctx.save_for_backward(p, values)
        return xp.matmul(p, values), p

    def backward(ctx, grad_ctx, grad_w):
        p, values = ctx.saved
        xp = array_module(p)
        dp = xp.zeros_like(p) if grad_ctx is None else xp.matmul(grad_ctx, _swap(values))
        if grad_w is not None:
            dp += grad_w
        dvalues = xp.matmul(_swap(p), grad_ctx) if grad_ctx is not None else None
        return _softmax_backward(p, dp, xp), dvalues, None

    def grad_graph(ctx, grad_ctx, grad_w):
        from .linalg import matmul
        from .reduce import sum as sum_
        from .shape import transpose

        p, values = ctx.saved
        p_t = ctx.graph_output(p, 1)  # the weights are this node's second output
        tv = ctx.graph_input(1, values)
        dp = None if grad_ctx is None else matmul(grad_ctx, transpose(tv, -1, -2))
        if grad_w is not None:
            dp = grad_w if dp is None else dp + grad_w
        dvalues = matmul(transpose(p_t, -1, -2), grad_ctx) if grad_ctx is not None else None
        return p_t * (dp - sum_(dp * p_t, -1, keepdim=True)), dvalues, None


def attention_pool(scores, values, mask=None):
    """Softmax ``scores`` (N, L, S) over the source axis and pool ``values`` (N, S, Dv) with the weights.

    ``mask`` (bool, broadcasting to (N, L, S), True = attend) excludes positions. Returns
    ``(context, weights)``: (N, L, Dv) and (N, L, S).
    """
    keep = None
    if mask is not None:
        keep = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
        if keep.dtype != np.bool_:
            raise TypeError(f"attention_pool(): mask must be bool (True = attend), got dtype {keep.dtype}")
    return AttentionPool.apply(scores, values, keep)
