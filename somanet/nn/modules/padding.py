"""Padding layers: zero, constant, reflection, replication and circular padding in 1, 2 and 3 dimensions.

Each is ``F.pad`` with a fixed mode. ``padding`` is an int (the same on every side) or a tuple in F.pad's
order: ``(left, right)`` for 1-d, ``(left, right, top, bottom)`` for 2-d, then ``(front, back)`` for 3-d.
"""
import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
           "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
           "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]


def _padding(padding, n, name):
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * (2 * n)
    padding = tuple(int(p) for p in padding)
    if len(padding) != 2 * n:
        raise ValueError(f"{name}: padding must be an int or a tuple of {2 * n} ints, got {padding}")
    return padding


class _PadNd(Module):
    _dims = 2
    _mode = "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = _padding(padding, self._dims, type(self).__name__)
        if self._mode == "constant":
            self.value = value

    def _check(self, input):
        shape = tuple(getattr(input, "shape", ()))
        n = self._dims
        if len(shape) not in (n + 1, n + 2):
            dims = {1: "(N, C, W)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[n]
            raise ValueError(f"{self._get_name()}({self.extra_repr()}): expected a {n + 1}-D (unbatched) or "
                             f"{n + 2}-D (batched) input of shape {dims}, got shape {shape}")

    def forward(self, input):
        self._check(input)
        if self._mode == "constant":
            return F.pad(input, self.padding, "constant", self.value)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self):
        if self._mode == "constant" and not isinstance(self, (ZeroPad1d, ZeroPad2d, ZeroPad3d)):
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"


class ConstantPad1d(_PadNd):
    """Pad the last dimension of ``(N, C, W)`` with ``value``: ``(N, C, W + left + right)``."""

    _dims = 1

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad2d(_PadNd):
    """Pad ``(N, C, H, W)`` with ``value``: ``(N, C, H + top + bottom, W + left + right)``."""

    _dims = 2

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad3d(_PadNd):
    """Pad ``(N, C, D, H, W)`` with ``value`` on the three trailing dimensions."""

    _dims = 3

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ZeroPad1d(ConstantPad1d):
    """Pad the last dimension of ``(N, C, W)`` with zeros."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad2d(ConstantPad2d):
    """Pad ``(N, C, H, W)`` with zeros: ``ZeroPad2d((left, right, top, bottom))`` or one int for all sides.

    >>> ZeroPad2d((1, 1, 2, 0))(somanet.randn(1, 1, 3, 3)).shape
    (1, 1, 5, 5)
    """

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad3d(ConstantPad3d):
    """Pad ``(N, C, D, H, W)`` with zeros on the three trailing dimensions."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ReflectionPad1d(_PadNd):
    """Mirror ``(N, C, W)`` at its edges without repeating the edge value (pads must be smaller than W)."""

    _dims = 1
    _mode = "reflect"


class ReflectionPad2d(_PadNd):
    """Mirror ``(N, C, H, W)`` at its edges without repeating the edge values."""

    _dims = 2
    _mode = "reflect"


class ReflectionPad3d(_PadNd):
    """Mirror ``(N, C, D, H, W)`` at its edges without repeating the edge values."""

    _dims = 3
    _mode = "reflect"


class ReplicationPad1d(_PadNd):
    """Repeat the edge values of ``(N, C, W)``."""

    _dims = 1
    _mode = "replicate"


class ReplicationPad2d(_PadNd):
    """Repeat the edge values of ``(N, C, H, W)``."""

    _dims = 2
    _mode = "replicate"


class ReplicationPad3d(_PadNd):
    """Repeat the edge values of ``(N, C, D, H, W)``."""

    _dims = 3
    _mode = "replicate"


class CircularPad1d(_PadNd):
    """Wrap ``(N, C, W)`` around: the left pad copies the right end and vice versa."""

    _dims = 1
    _mode = "circular"


class CircularPad2d(_PadNd):
    """Wrap ``(N, C, H, W)`` around in both spatial dimensions."""

    _dims = 2
    _mode = "circular"


class CircularPad3d(_PadNd):
    """Wrap ``(N, C, D, H, W)`` around in the three trailing dimensions."""

    _dims = 3
    _mode = "circular"
