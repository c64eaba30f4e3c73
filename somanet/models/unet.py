"""The U-Net that denoising diffusion models use to predict the noise in an image (``DiffusionUNet``).

The network maps a noisy image ``x_t``, its timestep ``t`` and optionally a class label to an image of
the same shape (the predicted noise). Its parts:

* **time embedding**: ``t`` as sinusoids of geometrically spaced frequencies
  (``timestep_embedding``: ``[cos(t f_i), sin(t f_i)]`` with ``f_i = max_period^(-i / half)``), then an
  MLP ``Linear -> SiLU -> Linear`` to ``time_embed_dim`` (4 x ``base_channels`` by default);
* **class conditioning**: an ``Embedding`` of ``num_classes + 1`` rows added to the time embedding; the
  last row (index ``num_classes``) is the "no label" class that classifier-free guidance trains with
  and samples the unconditional prediction from;
* **residual blocks** (``ResBlock``): ``GroupNorm -> SiLU -> Conv3x3``, plus a per-channel shift
  ``Linear(SiLU(embedding))``, then ``GroupNorm -> SiLU -> Dropout -> Conv3x3``, added to the input
  (through a 1x1 convolution when the channel count changes);
* **self-attention** (``AttentionBlock``) over the positions of a feature map, at the levels listed in
  ``attention_levels`` and in the middle;
* **down/up sampling**: a stride-2 3x3 convolution down, nearest-neighbour doubling and a 3x3
  convolution up; the decoder concatenates the encoder's activation of the same resolution (skip
  connections) before each of its residual blocks.

Odd sizes work: 28 -> 14 -> 7 on the way down, and the decoder upsamples to the size of the skip
activation it joins (7 -> 14 -> 28).
"""
import math

import numpy as np

from .. import nn
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..ops.creation import tensor
from ..ops.shape import cat

__all__ = ["DiffusionUNet", "ResBlock", "AttentionBlock", "timestep_embedding"]


def timestep_embedding(t, dim, max_period=10000.0, dtype=np.float32):
    """Sinusoidal embedding of the timesteps ``t`` (``(N,)``, integers or floats): ``(N, dim)`` with
    ``[cos(t f_0), ..., cos(t f_{h-1}), sin(t f_0), ..., sin(t f_{h-1})]``, ``h = dim // 2``,
    ``f_i = max_period^(-i / h)`` (a zero column is appended when ``dim`` is odd). No gradient flows to ``t``.
    """
    steps = np.asarray(t.array if isinstance(t, Tensor) else t, dtype=np.float64).reshape(-1)
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half, dtype=np.float64) / half)
    args = steps[:, None] * freqs[None, :]
    emb = np.concatenate([np.cos(args), np.sin(args)], axis=1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros((len(steps), 1))], axis=1)
    return tensor(emb.astype(dtype))


class ResBlock(nn.Module):
    """A residual block conditioned on an embedding: ``x + conv2(drop(silu(norm2(conv1(silu(norm1(x))) +
    shift(emb)))))`` with ``shift = Linear(SiLU(emb))`` broadcast over the positions."""

    def __init__(self, in_channels, out_channels, emb_dim, groups=8, dropout=0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = nn.GroupNorm(_groups(groups, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(groups, out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        shift = self.emb_proj(F.silu(emb))
        h = h + shift.reshape(shift.shape[0], shift.shape[1], 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions of a feature map, with a residual
    connection: ``x + proj(attention(qkv(norm(x))))``; ``qkv`` and ``proj`` are 1x1 convolutions and
    the channels of ``qkv``'s output are ordered ``(q, k, v)``, then head, then channel within the head."""

    def __init__(self, channels, num_heads=1, groups=8):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"AttentionBlock: channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.channels, self.num_heads = channels, num_heads
        self.norm = nn.GroupNorm(_groups(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        heads = self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(n, 3, heads, c // heads, h * w).permute(1, 0, 2, 4, 3)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])      # (N, heads, HW, C/heads)
        out = out.permute(0, 1, 3, 2).reshape(n, c, h, w)
        return x + self.proj(out)


def _groups(groups, channels):
    """``groups`` if it divides ``channels``, else the largest divisor of ``channels`` below it."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class _Level(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, res, attn=None):
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x, emb):
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class _Down(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.conv(x)


class _Up(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size):
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class DiffusionUNet(nn.Module):
    """A U-Net for denoising diffusion: ``forward(x, t, labels=None)`` predicts the noise in ``x``.

    Args:
        in_channels: image channels.
        out_channels: output channels (default: ``in_channels``).
        base_channels: the channels of the first level; level ``i`` has ``base_channels * channel_mults[i]``.
        channel_mults: one multiplier per resolution level; each level but the last halves the size.
        num_res_blocks: residual blocks per level in the encoder (the decoder has one more, for the
            skip of the downsampling step).
        attention_levels: the levels (indices into ``channel_mults``) whose blocks are followed by
            self-attention; the middle of the network always has one.
        num_heads: attention heads.
        groups: ``GroupNorm`` groups (reduced to a divisor of the channel count where needed).
        dropout: dropout in the residual blocks.
        num_classes: condition on class labels ``0 .. num_classes - 1``; ``labels=None`` or label
            ``num_classes`` means "no label" (the unconditional prediction of classifier-free guidance).
        time_embed_dim: the size of the time (and class) embedding (default: ``4 * base_channels``).

    ``t``: ``(N,)`` timesteps (integers or floats; a Python number is used for every image).
    """

    def __init__(self, in_channels=1, out_channels=None, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                 attention_levels=(2,), num_heads=1, groups=8, dropout=0.0, num_classes=None, time_embed_dim=None):
        super().__init__()
        channel_mults = tuple(int(m) for m in channel_mults)
        if not channel_mults:
            raise ValueError("DiffusionUNet: channel_mults must name at least one level")
        attention_levels = tuple(int(a) for a in attention_levels)
        bad = [a for a in attention_levels if not 0 <= a < len(channel_mults)]
        if bad:
            raise ValueError(f"DiffusionUNet: attention_levels {bad} out of range for {len(channel_mults)} levels")
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.base_channels = base_channels
        self.channel_mults = channel_mults
        self.num_res_blocks = num_res_blocks
        self.attention_levels = attention_levels
        self.num_classes = num_classes or None
        emb_dim = time_embed_dim or 4 * base_channels
        self.time_embed_dim = emb_dim

        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(self.num_classes + 1, emb_dim) if self.num_classes else None
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def level(cin, cout, lvl):
            attn = AttentionBlock(cout, num_heads, groups) if lvl in attention_levels else None
            return _Level(ResBlock(cin, cout, emb_dim, groups, dropout), attn)

        skips = [base_channels]
        ch = base_channels
        self.down = nn.ModuleList()
        last = len(channel_mults) - 1
        for lvl, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(level(ch, base_channels * mult, lvl))
                ch = base_channels * mult
                skips.append(ch)
            if lvl != last:
                self.down.append(_Down(ch))
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, emb_dim, groups, dropout)
        self.mid_attn = AttentionBlock(ch, num_heads, groups)
        self.mid2 = ResBlock(ch, ch, emb_dim, groups, dropout)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(channel_mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(level(ch + skips.pop(), base_channels * channel_mults[lvl], lvl))
                ch = base_channels * channel_mults[lvl]
            if lvl != 0:
                self.up.append(_Up(ch))
        self.norm_out = nn.GroupNorm(_groups(groups, ch), ch)
        self.conv_out = nn.Conv2d(ch, self.out_channels, 3, padding=1)

    def embed(self, t, labels=None, batch=None):
        """The ``(N, time_embed_dim)`` embedding of timesteps ``t`` and (for a conditional model) labels."""
        dtype = self.conv_in.weight.dtype
        if not isinstance(t, Tensor) and np.ndim(t) == 0:
            t = np.full(batch, float(t))
        emb = self.time_mlp(timestep_embedding(t, self.base_channels, dtype=dtype))
        if self.label_emb is not None:
            n = emb.shape[0]
            if labels is None:
                idx = np.full(n, self.num_classes, dtype=np.int64)
            else:
                idx = np.asarray(labels.array if isinstance(labels, Tensor) else labels, dtype=np.int64).reshape(-1)
                if idx.size == 1 and n > 1:
                    idx = np.full(n, int(idx[0]), dtype=np.int64)
                if idx.min(initial=0) < 0 or idx.max(initial=0) > self.num_classes:
                    raise ValueError(f"DiffusionUNet: labels must be in [0, {self.num_classes}] "
                                     f"({self.num_classes} = no label), got {idx.min()}..{idx.max()}")
            emb = emb + self.label_emb(tensor(idx))
        elif labels is not None:
            raise ValueError("DiffusionUNet: labels given to a model built without num_classes")
        return emb

    def forward(self, x, t, labels=None):
        emb = self.embed(t, labels, batch=x.shape[0])
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, _Up):
                h = block(h, tuple(skips[-1].shape[2:]))
            else:
                h = block(cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    def extra_repr(self):
        return (f"base_channels={self.base_channels}, channel_mults={self.channel_mults}, "
                f"num_res_blocks={self.num_res_blocks}, attention_levels={self.attention_levels}, "
                f"num_classes={self.num_classes}")
