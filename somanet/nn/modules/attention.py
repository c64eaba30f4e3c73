"""Attention layers: ``MultiheadAttention`` (PyTorch's layout and masks), and the additive (Bahdanau)
and multiplicative (Luong) attention used by RNN encoder-decoders.

``MultiheadAttention`` runs as four fused ops: one GEMM that projects and splits q, k and v into heads,
scaled dot-product attention over all heads at once, and one op that merges heads and applies the
output projection.
"""
import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from ...ops import attention as A
from ...ops.elementwise import add, tanh
from ...ops.linalg import linear, matmul
from ...ops.shape import squeeze, unsqueeze
from .. import init
from .linear import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention", "BahdanauAttention", "LuongAttention"]


def _float_dtype(dtype):
    dtype = backend.default_float if dtype is None else backend.to_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"attention layers need a floating dtype, got {dtype}")
    return dtype


def _mask_array(mask, name, dtype):
    """A mask as a raw array: bool stays bool, anything else becomes ``dtype``."""
    if mask is None:
        return None
    arr = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"MultiheadAttention: {name} must be bool or floating point, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def _combine_masks(attn_mask, key_padding_mask):
    """One mask for scaled dot-product attention from PyTorch's two (True = NOT allowed in both).

    Two bool masks combine into a bool "take part" mask (the cheap path); any float mask makes the
    result additive, with bool masks turned into -inf.
    """
    masks = [m for m in (attn_mask, key_padding_mask) if m is not None]
    if not masks:
        return None
    if all(m.dtype == np.bool_ for m in masks):
        blocked = masks[0] if len(masks) == 1 else (masks[0] | masks[1])
        return ~blocked
    out = None
    for m in masks:
        if m.dtype == np.bool_:
            add_m = backend.array_module(m).where(m, -np.inf, 0.0)
        else:
            add_m = m
        out = add_m if out is None else out + add_m
    dtype = next(m.dtype for m in masks if m.dtype != np.bool_)
    return out.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """Multi-head attention ``MultiHead(Q, K, V) = Concat(head_1..head_h) W_O``, with
    ``head_i = softmax(Q W_Q^i (K W_K^i)^T / sqrt(hd) + mask) V W_V^i``.

    ``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
    add_zero_attn=False, kdim=None, vdim=None, batch_first=False)``. Parameters as in PyTorch:
    ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,) (or ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when kdim/vdim differ from E),
    ``out_proj`` a ``Linear(E, E)``, and ``bias_k``/``bias_v`` (1, 1, E) with ``add_bias_kv``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)``: query (L, N, E), key (S, N, kdim), value
    (S, N, vdim) ((N, L, E) ... with ``batch_first``; unbatched (L, E) ...). ``key_padding_mask``
    (N, S) and ``attn_mask`` (L, S) or (N*num_heads, L, S): bool with True = not allowed to attend, or
    float added to the scores. ``is_causal`` is a hint that ``attn_mask`` is the causal mask (it must be
    given, as in PyTorch). Returns ``(attn_output, attn_weights)``: (L, N, E) and, with
    ``need_weights``, (N, L, S) averaged over heads or (N, num_heads, L, S); else None.

    Masks are constants (no gradient flows into a float mask). A query row whose keys are all masked
    gets zero weights and output bias only, as PyTorch's fused path does (PyTorch's
    ``need_weights=True`` path gives NaN there).

    >>> mha = MultiheadAttention(16, 4, batch_first=True)
    >>> x = somanet.randn(2, 5, 16)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((2, 5, 16), (2, 5, 5))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got embed_dim={embed_dim} "
                             f"and num_heads={num_heads}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        dt = _float_dtype(dtype)
        E = embed_dim
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dt)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dt))
            self.bias_v = Parameter(np.empty((1, 1, E), dt))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    # ----------------------------------------------------------------- checks
    def _check_inputs(self, query, key, value):
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got {type(t).__name__}")
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise RuntimeError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                               f"(unbatched), got shapes {tuple(query.shape)}, {tuple(key.shape)} and "
                               f"{tuple(value.shape)}")
        for name, t, dim in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != dim:
                raise RuntimeError(f"MultiheadAttention: expected {name} with last dim {dim} (embed_dim="
                                   f"{self.embed_dim}, kdim={self.kdim}, vdim={self.vdim}), got shape {tuple(t.shape)}")
            if t.dtype != self.out_proj.weight.dtype and not backend.autocasting():
                raise RuntimeError(f"MultiheadAttention: {name} dtype {t.dtype} does not match the parameters' dtype "
                                   f"{self.out_proj.weight.dtype}")
        if key.shape[:-1] != value.shape[:-1]:
            raise RuntimeError(f"MultiheadAttention: key shape {tuple(key.shape)} does not match value shape "
                               f"{tuple(value.shape)}")
        if batched:
            bdim = 0 if self.batch_first else 1
            if query.shape[bdim] != key.shape[bdim]:
                raise RuntimeError(f"MultiheadAttention: query {tuple(query.shape)} and key {tuple(key.shape)} have "
                                   f"different batch sizes (batch_first={self.batch_first})")
        return batched

    # ----------------------------------------------------------------- forward
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """See the class docstring for shapes. Returns ``(attn_output, attn_weights or None)``."""
        batched = self._check_inputs(query, key, value)
        batch_first = self.batch_first and batched
        if not batched:
            # Unbatched inputs are (L, E): a batch of one in the time-major layout.
            query, key, value = unsqueeze(query, 1), unsqueeze(key, 1), unsqueeze(value, 1)
        if batch_first:
            N, L = query.shape[0], query.shape[1]
            S = key.shape[1]
        else:
            L, N = query.shape[0], query.shape[1]
            S = key.shape[0]
        E, h, hd = self.embed_dim, self.num_heads, self.head_dim
        dtype = query.dtype
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: Need attn_mask if specifying the is_causal hint. You may use "
                               "the Transformer module method `generate_square_subsequent_mask` to create this mask.")

        # Projections straight into heads (N, h, *, hd): one GEMM for self-attention.
        w, b = self.in_proj_weight, self.in_proj_bias
        proj = dict(num_heads=h, batch_first=batch_first)
        if self._qkv_same_embed_dim and query is key and key is value:
            q, k, v = A.HeadProjection.apply(query, w, b, chunks=3, **proj)
        elif self._qkv_same_embed_dim and key is value:
            q = A.HeadProjection.apply(query, w, b, rows=(0, E), **proj)
            k, v = A.HeadProjection.apply(key, w, b, rows=(E, 3 * E), chunks=2, **proj)
        elif self._qkv_same_embed_dim:
            q = A.HeadProjection.apply(query, w, b, rows=(0, E), **proj)
            k = A.HeadProjection.apply(key, w, b, rows=(E, 2 * E), **proj)
            v = A.HeadProjection.apply(value, w, b, rows=(2 * E, 3 * E), **proj)
        else:
            q = A.HeadProjection.apply(query, self.q_proj_weight, b, bias_rows=(0, E), **proj)
            k = A.HeadProjection.apply(key, self.k_proj_weight, b, bias_rows=(E, 2 * E), **proj)
            v = A.HeadProjection.apply(value, self.v_proj_weight, b, bias_rows=(2 * E, 3 * E), **proj)

        attn = self._attn_mask(attn_mask, N, L, S, dtype)
        kpm = self._key_padding_mask(key_padding_mask, N, S, dtype)
        extra = 0
        if self.bias_k is not None:
            k = A.AppendKeyValue.apply(k, self.bias_k)
            v = A.AppendKeyValue.apply(v, self.bias_v)
            extra += 1
        if self.add_zero_attn:
            k = A.AppendKeyValue.apply(k, None)
            v = A.AppendKeyValue.apply(v, None)
            extra += 1
        if extra:
            # The appended positions are always visible: pad the masks with "allowed" columns.
            attn = None if attn is None else _pad_last(attn, extra)
            kpm = None if kpm is None else _pad_last(kpm, extra)
        causal = is_causal and kpm is None and not extra and L == S
        if causal:
            # The hint promises attn_mask is the causal mask: let the fused op build it (no mask to add).
            mask = None
        else:
            mask = _combine_masks(attn, kpm)

        p = self.dropout if self.training else 0.0
        res = A.ScaledDotProductAttention.apply(q, k, v, mask, dropout_p=p, is_causal=causal,
                                                need_weights=need_weights, average_weights=average_attn_weights)
        out, weights = (res if need_weights else (res, None))
        out = A.MergeHeadsProjection.apply(out, self.out_proj.weight, self.out_proj.bias, batch_first=batch_first)
        if not batched:
            out = squeeze(out, 1)
            if weights is not None:
                weights = squeeze(weights, 0)
        return out, weights

    def _attn_mask(self, attn_mask, N, L, S, dtype):
        m = _mask_array(attn_mask, "attn_mask", dtype)
        if m is None:
            return None
        if m.ndim == 2:
            if m.shape != (L, S):
                raise RuntimeError(f"MultiheadAttention: The shape of the 2D attn_mask is {tuple(m.shape)}, but "
                                   f"should be {(L, S)}.")
            return m.reshape(1, 1, L, S)
        if m.ndim == 3:
            if m.shape != (N * self.num_heads, L, S):
                raise RuntimeError(f"MultiheadAttention: The shape of the 3D attn_mask is {tuple(m.shape)}, but "
                                   f"should be {(N * self.num_heads, L, S)}.")
            return m.reshape(N, self.num_heads, L, S)
        raise RuntimeError(f"MultiheadAttention: attn_mask's dimension {m.ndim} is not supported (expected 2-D "
                           f"(L, S) or 3-D (N*num_heads, L, S))")

    def _key_padding_mask(self, key_padding_mask, N, S, dtype):
        m = _mask_array(key_padding_mask, "key_padding_mask", dtype)
        if m is None:
            return None
        if m.ndim == 1 and N == 1:
            m = m[None]
        if m.shape != (N, S):
            raise RuntimeError(f"MultiheadAttention: expecting key_padding_mask shape of {(N, S)}, but got "
                               f"{tuple(m.shape)}")
        return m.reshape(N, 1, 1, S)


def _pad_last(m, n):
    xp = backend.array_module(m)
    pad = xp.zeros(m.shape[:-1] + (n,), dtype=m.dtype)  # False / 0.0: allowed
    return xp.concatenate([m, pad], axis=-1)


# --------------------------------------------------------------------------- RNN encoder-decoder attention
def _keys_and_mask(module, query, keys, values, key_padding_mask):
    name = type(module).__name__
    if query.ndim not in (2, 3):
        raise ValueError(f"{name}: query must be (N, L, D_q) or (N, D_q), got shape {tuple(query.shape)}")
    if keys.ndim != 3:
        raise ValueError(f"{name}: keys must be (N, S, D_k), got shape {tuple(keys.shape)}")
    single = query.ndim == 2
    if single:
        query = unsqueeze(query, 1)
    if values is None:
        values = keys
    if values.ndim != 3 or values.shape[:2] != keys.shape[:2]:
        raise ValueError(f"{name}: values must be (N, S, D_v) with the keys' N and S, got keys "
                         f"{tuple(keys.shape)} and values {tuple(values.shape)}")
    if query.shape[0] != keys.shape[0]:
        raise ValueError(f"{name}: query {tuple(query.shape)} and keys {tuple(keys.shape)} have different batch sizes")
    keep = None
    if key_padding_mask is not None:
        m = key_padding_mask.array if isinstance(key_padding_mask, Tensor) else np.asarray(key_padding_mask)
        if m.dtype != np.bool_ or m.shape != tuple(keys.shape[:2]):
            raise ValueError(f"{name}: key_padding_mask must be bool (N, S) = {tuple(keys.shape[:2])} with True "
                             f"at padding, got {m.dtype} {tuple(m.shape)}")
        keep = ~m[:, None, :]
    return query, values, keep, single


def _finish(context, weights, single):
    if single:
        return squeeze(context, 1), squeeze(weights, 1)
    return context, weights


class BahdanauAttention(Module):
    """Additive attention (Bahdanau et al., 2015) for RNN encoder-decoders.

    For a decoder query ``q_l`` and encoder keys ``k_s``::

        score(l, s) = v^T tanh(W_q q_l + W_k k_s + b)
        a(l, :)     = softmax_s(score(l, :))        (padded positions excluded)
        context_l   = sum_s a(l, s) value_s

    ``W_q`` is ``query_proj`` (Linear(query_size, hidden_size, bias=False)), ``W_k``/``b`` is
    ``key_proj`` (Linear(key_size, hidden_size)) and ``v`` is ``score_proj`` (Linear(hidden_size, 1,
    bias=False)). ``forward(query, keys, values=None, key_padding_mask=None)``: query (N, L, D_q) or one
    step (N, D_q), keys (N, S, D_k), values (N, S, D_v) (default: keys), key_padding_mask (N, S) bool with
    True at padding. Returns ``(context, weights)``: (N, L, D_v) and (N, L, S) (no L for a one-step query).
    """

    def __init__(self, query_size, key_size, hidden_size, device=None, dtype=None):
        super().__init__()
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        self.query_proj = Linear(query_size, hidden_size, bias=False, dtype=dtype)
        self.key_proj = Linear(key_size, hidden_size, dtype=dtype)
        self.score_proj = Linear(hidden_size, 1, bias=False, dtype=dtype)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        query, values, keep, single = _keys_and_mask(self, query, keys, values, key_padding_mask)
        qp = unsqueeze(self.query_proj(query), 2)           # (N, L, 1, H)
        kp = unsqueeze(self.key_proj(keys), 1)              # (N, 1, S, H)
        scores = squeeze(self.score_proj(tanh(add(qp, kp))), -1)  # (N, L, S)
        context, weights = A.attention_pool(scores, values, keep)
        return _finish(context, weights, single)

    def extra_repr(self):
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"


class LuongAttention(Module):
    """Multiplicative attention (Luong et al., 2015) with the paper's three scores.

    ::

        dot:     score(l, s) = q_l . k_s                       (query_size == key_size)
        general: score(l, s) = q_l . (W_a k_s)                 W_a: key_proj, Linear(key_size, query_size, bias=False)
        concat:  score(l, s) = v_a^T tanh(W_a [q_l; k_s])      W_a: concat_proj, Linear(query_size + key_size,
                                                               hidden_size, bias=False); v_a: score_proj
        a(l, :) = softmax_s(score(l, :)),   context_l = sum_s a(l, s) value_s

    ``LuongAttention(query_size, key_size=None, method='general', hidden_size=None)``;
    ``forward(query, keys, values=None, key_padding_mask=None)`` with the shapes of
    ``BahdanauAttention``. Returns ``(context, weights)``.
    """

    def __init__(self, query_size, key_size=None, method="general", hidden_size=None, device=None, dtype=None):
        super().__init__()
        if method not in ("dot", "general", "concat"):
            raise ValueError(f"LuongAttention: method must be 'dot', 'general' or 'concat', got {method!r}")
        key_size = query_size if key_size is None else key_size
        if method == "dot" and key_size != query_size:
            raise ValueError(f"LuongAttention: the 'dot' score needs query_size == key_size, got {query_size} and "
                             f"{key_size}")
        self.query_size, self.key_size, self.method = query_size, key_size, method
        self.hidden_size = hidden_size or query_size
        if method == "general":
            self.key_proj = Linear(key_size, query_size, bias=False, dtype=dtype)
        elif method == "concat":
            self.concat_proj = Linear(query_size + key_size, self.hidden_size, bias=False, dtype=dtype)
            self.score_proj = Linear(self.hidden_size, 1, bias=False, dtype=dtype)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        query, values, keep, single = _keys_and_mask(self, query, keys, values, key_padding_mask)
        if self.method == "dot":
            scores = matmul(query, keys.transpose(1, 2))
        elif self.method == "general":
            scores = matmul(query, self.key_proj(keys).transpose(1, 2))
        else:
            w = self.concat_proj.weight
            # W_a [q; k] = W_q q + W_k k: project each side once instead of every (l, s) pair.
            qp = unsqueeze(linear(query, w[:, :self.query_size]), 2)
            kp = unsqueeze(linear(keys, w[:, self.query_size:]), 1)
            scores = squeeze(self.score_proj(tanh(add(qp, kp))), -1)
        context, weights = A.attention_pool(scores, values, keep)
        return _finish(context, weights, single)

    def extra_repr(self):
        return f"query_size={self.query_size}, key_size={self.key_size}, method={self.method!r}"
