"""Vision Transformer (Dosovitskiy et al., 2020): non-overlapping patches, a class token, learned positions
and a stack of pre-norm Transformer encoder layers."""
import math

import numpy as np

from .. import nn
from ..nn import init
from ..ops.shape import cat

__all__ = ["VisionTransformer", "vit_tiny", "vit_small", "vit_base"]


class VisionTransformer(nn.Module):
    """Vision Transformer classifier for ``(N, in_channels, image_size, image_size)`` images.

    ``conv_proj`` (``Conv2d(in_channels, d_model, patch_size, stride=patch_size)``) cuts the image into
    ``(image_size / patch_size) ** 2`` patches and embeds each; ``class_token`` (1, 1, d_model) is put in
    front and ``pos_embedding`` (1, 1 + patches, d_model) added; ``dropout``; ``encoder`` (a
    ``TransformerEncoder`` of ``num_layers`` pre-norm ``TransformerEncoderLayer`` with ``num_heads``
    heads, feed-forward ``mlp_dim``, exact GELU, then a final ``LayerNorm``); ``head`` (``Linear(d_model,
    num_classes)``) reads the class token. Output ``(N, num_classes)``.

    Initialisation follows the reference implementation: truncated normal patch embedding (std
    ``sqrt(1 / fan_in)``), zero class token, N(0, 0.02) positions, zero head.

    >>> model = VisionTransformer(28, 7, in_channels=1, num_classes=10, d_model=64, num_layers=4,
    ...                           num_heads=4, mlp_dim=256)
    >>> model(somanet.randn(8, 1, 28, 28)).shape
    (8, 10)
    """

    def __init__(self, image_size=224, patch_size=16, in_channels=3, num_classes=1000, d_model=768, num_layers=12,
                 num_heads=12, mlp_dim=3072, dropout=0.0, layer_norm_eps=1e-6):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"VisionTransformer: image_size {image_size} is not a multiple of patch_size "
                             f"{patch_size}")
        if d_model % num_heads:
            raise ValueError(f"VisionTransformer: d_model {d_model} is not divisible by num_heads {num_heads}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.d_model, self.num_classes = d_model, num_classes
        self.num_patches = (image_size // patch_size) ** 2
        self.conv_proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(np.zeros((1, 1, d_model), np.float32))
        self.pos_embedding = nn.Parameter(np.zeros((1, self.num_patches + 1, d_model), np.float32))
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, mlp_dim, dropout, activation="gelu",
                                           layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model, eps=layer_norm_eps))
        self.head = nn.Linear(d_model, num_classes)
        self.reset_parameters()

    def reset_parameters(self):
        """Patch embedding, class token, positions and head as in the class docstring (the encoder keeps
        its layers' own initialisation)."""
        fan_in = self.in_channels * self.patch_size * self.patch_size
        init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1.0 / fan_in))
        init.zeros_(self.conv_proj.bias)
        init.zeros_(self.class_token)
        init.normal_(self.pos_embedding, std=0.02)
        init.zeros_(self.head.weight)
        init.zeros_(self.head.bias)

    def forward(self, x):
        shape = tuple(getattr(x, "shape", ()))
        expected = (self.in_channels, self.image_size, self.image_size)
        if len(shape) != 4 or shape[1:] != expected:
            raise ValueError(f"VisionTransformer: expected input of shape (N, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}), got {shape}")
        n = shape[0]
        patches = self.conv_proj(x).flatten(2).transpose(1, 2)  # (N, patches, d_model)
        tokens = cat([self.class_token.expand(n, -1, -1), patches], dim=1)
        tokens = self.dropout(tokens + self.pos_embedding)
        return self.head(self.encoder(tokens)[:, 0])

    def extra_repr(self):
        return f"image_size={self.image_size}, patch_size={self.patch_size}, num_patches={self.num_patches}"


def vit_tiny(image_size=224, patch_size=16, num_classes=1000, **kwargs):
    """ViT-Ti: d_model 192, 12 layers, 3 heads, feed-forward 768 (override any of them by keyword)."""
    cfg = dict(d_model=192, num_layers=12, num_heads=3, mlp_dim=768)
    cfg.update(kwargs)
    return VisionTransformer(image_size, patch_size, num_classes=num_classes, **cfg)


def vit_small(image_size=224, patch_size=16, num_classes=1000, **kwargs):
    """ViT-S: d_model 384, 12 layers, 6 heads, feed-forward 1536."""
    cfg = dict(d_model=384, num_layers=12, num_heads=6, mlp_dim=1536)
    cfg.update(kwargs)
    return VisionTransformer(image_size, patch_size, num_classes=num_classes, **cfg)


def vit_base(image_size=224, patch_size=16, num_classes=1000, **kwargs):
    """ViT-B: d_model 768, 12 layers, 12 heads, feed-forward 3072."""
    cfg = dict(d_model=768, num_layers=12, num_heads=12, mlp_dim=3072)
    cfg.update(kwargs)
    return VisionTransformer(image_size, patch_size, num_classes=num_classes, **cfg)
