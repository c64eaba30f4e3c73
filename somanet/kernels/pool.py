"""Fast max pooling: when the windows tile the input (``MaxPool2d(2)``: kernel equal to stride, no padding,
no dilation), every kernel offset's slab is a strided view of the input itself, so the reference's padded
copy and stride-phase split are skipped; 2x2 windows take the maximum of each row pair, then of the two
rows, with the first maximum's offset from strict comparisons (no per-offset masked copies).

Registered as the ``"tiled"`` kernel of ``max_pool2d``; ``choose`` picks it whenever the windows tile the
input. The reference is ``ops/pool.py``.
"""
import numpy as np

from .. import backend
from ..ops.pool import _masked
from . import _select

__all__ = ["choose", "tiles_input"]


def tiles_input(kernel, stride, pads, dilation):
    """Whether the windows tile the input: kernel equal to stride, no padding, no dilation, and at most 255
    offsets (the argmax is one byte)."""
    return (tuple(kernel) == tuple(stride) and tuple(dilation) == (1, 1) and not any(p for pair in pads for p in pair)
            and kernel[0] * kernel[1] <= 255)


def choose(x4, kernel, stride, pads, dilation):
    """The chooser of ``max_pool2d``: ``"tiled"`` for NumPy inputs whose windows tile them, else
    ``"reference"``."""
    if backend.array_module(x4) is np and tiles_input(kernel, stride, pads, dilation):
        return "tiled"
    return "reference"


def _tiles(x4, kernel, out_hw):
    (kh, kw), (ho, wo) = kernel, out_hw
    return x4[0, :, :ho * kh, :wo * kw].reshape(x4.shape[1], ho, kh, wo, kw)


def _values(x4, kernel, out_hw):
    """The window maxima alone (NaN propagates)."""
    xp = backend.array_module(x4)
    kh, kw = kernel
    tiles = _tiles(x4, kernel, out_hw)
    slabs = [tiles[:, :, i, :, j] for i in range(kh) for j in range(kw)]
    if len(slabs) == 4:
        best = xp.maximum(slabs[0], slabs[1])
        xp.maximum(best, xp.maximum(slabs[2], slabs[3]), out=best)
    else:
        best = slabs[0].copy()
        for v in slabs[1:]:
            xp.maximum(best, v, out=best)
    return best[None]


def _forward(x4, kernel, out_hw):
    """Max pooling when the windows tile the input: ``(best, arg)`` read straight from strided views of the
    input (no padded copy, no phase split), or None when a window holds NaN (left to the general path,
    which places NaN indices like PyTorch). 2x2 windows take the maximum of each row pair, then of the two
    rows; the offset of the first maximum in scan order follows from strict comparisons."""
    xp = backend.array_module(x4)
    kh, kw = kernel
    tiles = _tiles(x4, kernel, out_hw)
    if (kh, kw) == (2, 2):
        v00, v01, v10, v11 = tiles[:, :, 0, :, 0], tiles[:, :, 0, :, 1], tiles[:, :, 1, :, 0], tiles[:, :, 1, :, 1]
        top_right = xp.greater(v01, v00).view(np.uint8)
        bottom_right = xp.greater(v11, v10).view(np.uint8)
        top = xp.maximum(v00, v01)
        bottom = xp.maximum(v10, v11)
        below = xp.greater(bottom, top).view(np.uint8)
        best = xp.maximum(top, bottom, out=top)
        # arg = 2 + bottom_right below the top row's maximum, else top_right (uint8 arithmetic wraps
        # consistently: top_right + below * (2 + bottom_right - top_right)).
        arg = bottom_right - top_right
        arg += 2
        arg *= below
        arg += top_right
    else:
        best = tiles[:, :, 0, :, 0].copy()
        arg = xp.zeros(best.shape, np.uint8)
        larger = xp.empty(best.shape, bool)
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    v = tiles[:, :, i, :, j]
                    xp.greater(v, best, out=larger)
                    xp.copyto(arg, np.uint8(i * kw + j), where=larger)
                    xp.maximum(best, v, out=best)
    if best.dtype.kind == "f" and xp.isnan(best).any():
        return None
    return best[None], arg[None]


def _backward(g, arg, kernel, out_hw, padded_shape, x_shape):
    """The input gradient: each output's gradient goes to its window's maximum, written tile offset by
    tile offset straight into the (fresh) gradient image."""
    xp = backend.array_module(g)
    kh, kw = kernel
    planes, h, w = padded_shape[1:]
    ho, wo = out_hw
    gx = xp.empty((planes, h, w), g.dtype)
    if h > ho * kh:
        gx[:, ho * kh:] = 0
    if w > wo * kw:
        gx[:, :ho * kh, wo * kw:] = 0
    tiles = gx[:, :ho * kh, :wo * kw].reshape(planes, ho, kh, wo, kw)
    for i in range(kh):
        for j in range(kw):
            _masked(g[0], arg[0] == (i * kw + j), tiles[:, :, i, :, j])
    return gx.reshape(x_shape)


class _Tiled:
    """The ``"tiled"`` kernel: ``values``, ``forward`` (``(best, arg)`` or None when a window holds NaN,
    left to the reference, which places NaN indices like PyTorch) and ``backward``."""

    values = staticmethod(_values)
    forward = staticmethod(_forward)
    backward = staticmethod(_backward)


_select.register("max_pool2d", "tiled", _Tiled, chooser=choose,
                 supports=lambda x4, kernel, stride, pads, dilation: choose(x4, kernel, stride, pads, dilation)
                 == "tiled")
