"""Dropout layers: active in training mode, the identity in evaluation mode.

Masks are drawn from somanet's default generator, so ``somanet.manual_seed`` makes them reproducible.
"""
from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p`` and scale the kept ones by ``1 / (1 - p)`` during
    training; any shape ``(*)``.

    >>> drop = Dropout(0.2); drop.eval(); drop(x) is x
    True
    """

    def forward(self, input):
        return F.dropout(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    """Zero whole channels of ``(N, C, L)`` or ``(C, L)`` inputs with probability ``p`` during training."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zero whole feature maps of ``(N, C, H, W)`` inputs with probability ``p`` during training (a 3-D
    input is treated as ``(N, C, L)``, as in PyTorch)."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)


class Dropout3d(_DropoutNd):
    """Zero whole volumes of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs with probability ``p``."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training)


class AlphaDropout(_DropoutNd):
    """Dropout for SELU networks: keeps a standardised input's mean and variance; any shape ``(*)``."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels of ``(N, C, *)`` inputs."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
