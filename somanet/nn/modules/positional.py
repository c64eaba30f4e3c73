"""Positional encodings as modules: sinusoidal and learned tables added to embeddings, and rotary
position embedding (RoPE) applied to attention queries and keys.

PyTorch has no built-in positional-encoding modules; these follow the usual definitions (Vaswani et al.
2017 for the sinusoidal table, GPT-style learned tables, Su et al. 2021 for RoPE), documented per class.
"""
import math

import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from ...ops import attention as A
from ...ops.dropout import dropout as _dropout
from .. import init
from .module import Module, Parameter

__all__ = ["SinusoidalPositionalEncoding", "LearnedPositionalEncoding", "RotaryPositionalEmbedding"]


def _float_dtype(dtype):
    dtype = backend.default_float if dtype is None else backend.to_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"positional encodings need a floating dtype, got {dtype}")
    return dtype


def _check_positions(module, x, d_model, max_len, offset, time_axis):
    name = type(module).__name__
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise RuntimeError(f"{name}: expected input (L, N, {d_model}), (N, L, {d_model}) with batch_first, or "
                           f"(L, {d_model}), got shape {tuple(x.shape)}")
    L = x.shape[time_axis if x.ndim == 3 else 0]
    if offset < 0 or offset + L > max_len:
        raise ValueError(f"{name}: positions {offset}..{offset + L - 1} exceed max_len={max_len} "
                         f"(input shape {tuple(x.shape)})")


def sinusoidal_table(max_len, d_model, base=10000.0, dtype=None):
    """The (max_len, d_model) table ``pe[p, 2i] = sin(p / base^(2i/d))``, ``pe[p, 2i+1] = cos(p / base^(2i/d))``.

    Computed in float64 and rounded once to ``dtype`` (float32 by default).
    """
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    inv_freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(base) / d_model))
    angles = pos * inv_freq
    pe = np.zeros((max_len, d_model), np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, :d_model // 2])
    return pe.astype(_float_dtype(dtype))


class SinusoidalPositionalEncoding(Module):
    """Add the fixed sinusoidal table of "Attention Is All You Need" to a sequence of embeddings.

    ``PE[p, 2i] = sin(p / 10000^(2i / d_model))``, ``PE[p, 2i+1] = cos(p / 10000^(2i / d_model))``;
    ``forward(x, offset=0)`` returns ``dropout(x + PE[offset : offset + L])``.

    ``SinusoidalPositionalEncoding(d_model, max_len=5000, dropout=0.0, batch_first=False, base=10000.0)``.
    Input (L, N, d_model), (N, L, d_model) with ``batch_first``, or (L, d_model). The table is a
    non-persistent buffer ``pe`` (max_len, d_model), so state dicts do not carry it.
    """

    def __init__(self, d_model, max_len=5000, dropout=0.0, batch_first=False, base=10000.0, device=None, dtype=None):
        super().__init__()
        self.d_model, self.max_len, self.batch_first, self.base = d_model, max_len, batch_first, base
        self.dropout = dropout
        self.register_buffer("pe", Tensor(sinusoidal_table(max_len, d_model, base, dtype)), persistent=False)

    def forward(self, x, offset=0):
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        _check_positions(self, x, self.d_model, self.max_len, offset, time_axis)
        out = A.AddPositions.apply(x, self.pe.array.astype(x.dtype, copy=False), offset=offset, time_axis=time_axis)
        if self.dropout and self.training:
            out = _dropout(out, self.dropout, training=True)
        return out

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, dropout={self.dropout}, batch_first={self.batch_first}"


class LearnedPositionalEncoding(Module):
    """Add a learned table of position vectors (GPT-style) to a sequence of embeddings.

    ``forward(x, offset=0)`` returns ``dropout(x + weight[offset : offset + L])``; ``weight``
    (max_len, d_model) is a parameter initialised from N(0, ``init_std``^2) (0.02 as in GPT-2).
    ``LearnedPositionalEncoding(max_len, d_model, dropout=0.0, batch_first=False, init_std=0.02)``.
    Input (L, N, d_model), (N, L, d_model) with ``batch_first``, or (L, d_model).
    """

    def __init__(self, max_len, d_model, dropout=0.0, batch_first=False, init_std=0.02, device=None, dtype=None):
        super().__init__()
        self.max_len, self.d_model, self.batch_first, self.init_std = max_len, d_model, batch_first, init_std
        self.dropout = dropout
        self.weight = Parameter(np.empty((max_len, d_model), _float_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight, 0.0, self.init_std)

    def forward(self, x, offset=0):
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        _check_positions(self, x, self.d_model, self.max_len, offset, time_axis)
        out = A.AddPositions.apply(x, self.weight, offset=offset, time_axis=time_axis)
        if self.dropout and self.training:
            out = _dropout(out, self.dropout, training=True)
        return out

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}, dropout={self.dropout}, batch_first={self.batch_first}"


class RotaryPositionalEmbedding(Module):
    """Rotary position embedding (RoPE, Su et al. 2021) for attention queries and keys.

    Feature pairs ``(x1, x2)`` of position ``p`` are rotated by the angle ``p * theta_i`` with
    ``theta_i = base^(-2i / dim)``::

        out1 = x1 cos(p theta_i) - x2 sin(p theta_i)
        out2 = x1 sin(p theta_i) + x2 cos(p theta_i)

    so the dot product of a rotated query at position m and key at position n depends only on m - n.
    Pairs are ``(x[2i], x[2i+1])`` (``interleaved=True``, the paper's layout) or ``(x[i], x[i + dim/2])``
    (``interleaved=False``, the "rotate half" layout of GPT-NeoX/LLaMA checkpoints). Only the first
    ``dim`` features are rotated (``dim`` <= head size); the rest pass through.

    ``RotaryPositionalEmbedding(dim, max_seq_len=4096, base=10000.0, interleaved=True)``.
    ``forward(x, offset=0)``: x (..., L, head_dim), e.g. per-head queries (N, num_heads, L, head_dim);
    positions ``offset .. offset + L - 1``. Returns the same shape.

    >>> rope = RotaryPositionalEmbedding(8)
    >>> rope(somanet.randn(2, 4, 10, 8)).shape
    (2, 4, 10, 8)
    """

    def __init__(self, dim, max_seq_len=4096, base=10000.0, interleaved=True, device=None, dtype=None):
        super().__init__()
        if dim <= 0 or dim % 2:
            raise ValueError(f"RotaryPositionalEmbedding: dim must be a positive even number, got {dim}")
        self.dim, self.max_seq_len, self.base, self.interleaved = dim, max_seq_len, base, interleaved
        theta = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
        angles = np.arange(max_seq_len, dtype=np.float64)[:, None] * theta
        dt = _float_dtype(dtype)
        self.register_buffer("cos_cached", Tensor(np.cos(angles).astype(dt)), persistent=False)
        self.register_buffer("sin_cached", Tensor(np.sin(angles).astype(dt)), persistent=False)

    def forward(self, x, offset=0):
        if not isinstance(x, Tensor):
            raise TypeError(f"RotaryPositionalEmbedding: input must be a Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[-1] < self.dim:
            raise RuntimeError(f"RotaryPositionalEmbedding: expected input (..., L, D) with D >= dim={self.dim}, "
                               f"got shape {tuple(x.shape)}")
        L = x.shape[-2]
        if offset < 0 or offset + L > self.max_seq_len:
            raise ValueError(f"RotaryPositionalEmbedding: positions {offset}..{offset + L - 1} exceed max_seq_len="
                             f"{self.max_seq_len} (input shape {tuple(x.shape)})")
        cos = self.cos_cached.array[offset:offset + L]
        sin = self.sin_cached.array[offset:offset + L]
        return A.apply_rotary_emb(x, cos, sin, interleaved=self.interleaved)

    def extra_repr(self):
        return f"dim={self.dim}, max_seq_len={self.max_seq_len}, base={self.base}, interleaved={self.interleaved}"
