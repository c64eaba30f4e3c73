"""Fast max pooling: when the windows tile the input (``MaxPool2d(2)``: kernel equal to stride, no padding,
no dilation), every kernel offset's slab is a strided view of the input itself, so the reference's padded
copy and stride-phase split are skipped; 2x2 windows take the maximum of each row pair, then of the two
rows, with the first maximum's offset from strict comparisons (no per-offset masked copies).

Registered as the ``"tiled"`` kernel of ``max_pool2d``; ``choose`` picks it whenever the windows tile the
input. The reference is ``ops/pool.py``.

Windows that overlap or reach into padding (``MaxPool2d(3, 2, padding=1)`` as in ResNet's stem) take the
``"numba"`` kernel (the ``fast`` extra; loops in ``kernels/_loops.py``): one pass over the windows keeping
the running maximum and its offset, where the reference pads a copy of the input with -inf, splits it
into stride phases, takes a running ``maximum`` over every offset slab and then a second walk over the
slabs for the offsets; backward adds each gradient at its window's maximum straight into the zeroed
input gradient instead of masking one slab per offset. ``avg_pool2d`` has the same two kernels' worth of
choice: ``"numba"`` sums each window (zero padding clipped away) where the reference pads, splits and
adds slabs.
"""
import numpy as np

from .. import backend
from ..ops.pool import _masked
from . import _jit, _select

__all__ = ["choose", "choose_avg", "fits", "tiles_input"]


def tiles_input(kernel, stride, pads, dilation):
    """Whether the windows tile the input: kernel equal to stride, no padding, no dilation, and at most 255
    offsets (the argmax is one byte)."""
    return (tuple(kernel) == tuple(stride) and tuple(dilation) == (1, 1) and not any(p for pair in pads for p in pair)
            and kernel[0] * kernel[1] <= 255)


def fits(x4, kernel, *geometry):
    """Whether the compiled pooling loops take ``x4`` ``(1, planes, H, W)``: NumPy float32/float64,
    C-contiguous, at most 255 window offsets, and Numba installed and enabled."""
    if backend.array_module(x4) is not np or x4.dtype not in (np.float32, np.float64) or not x4.flags.c_contiguous:
        return False
    return kernel[0] * kernel[1] <= 255 and x4.size > 0 and _select.numba_available() and _jit.enabled()


def choose(x4, kernel, stride, pads, dilation):
    """The chooser of ``max_pool2d``: ``"tiled"`` for NumPy inputs whose windows tile them, ``"numba"`` for
    other windows when ``fits``, else ``"reference"``."""
    if backend.array_module(x4) is np and tiles_input(kernel, stride, pads, dilation):
        return "tiled"
    if fits(x4, kernel):
        return "numba"
    return "reference"


def choose_avg(x4, kernel, stride, pads):
    """The chooser of ``avg_pool2d``: ``"numba"`` for overlapping windows at a stride of at least 2 in both
    directions (``AvgPool2d(3, 2, padding=1)``) when ``fits``, else ``"reference"``: at stride 1, and for
    windows that tile the input, the reference's slab sums were as fast or faster."""
    overlapping = any(k > s for k, s in zip(kernel, stride))
    return "numba" if overlapping and min(stride) >= 2 and fits(x4, kernel) else "reference"


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

    @staticmethod
    def values(x4, kernel, stride, pads, dilation, out_hw):
        return _values(x4, kernel, out_hw)

    @staticmethod
    def forward(x4, kernel, stride, pads, dilation, out_hw):
        return _forward(x4, kernel, out_hw)

    @staticmethod
    def backward(g, arg, kernel, stride, pads, dilation, out_hw, padded_shape, x_shape):
        return _backward(g, arg, kernel, out_hw, padded_shape, x_shape)


def _loops():
    from .softmax import loops
    return loops()


class _NumbaMax:
    """The ``"numba"`` kernel of ``max_pool2d``: ``forward`` -> ``(best, arg)`` (NaN windows included),
    ``values`` and ``backward``, on ``(1, planes, H, W)`` inputs."""

    @staticmethod
    def forward(x4, kernel, stride, pads, dilation, out_hw):
        planes = x4.shape[1]
        best = np.empty((1, planes) + tuple(out_hw), x4.dtype)
        arg = np.empty((1, planes) + tuple(out_hw), np.uint8)
        _loops().max_pool_forward(x4[0], *kernel, *stride, pads[0][0], pads[1][0], *dilation, best[0], arg[0])
        return best, arg

    @staticmethod
    def values(x4, kernel, stride, pads, dilation, out_hw):
        return _NumbaMax.forward(x4, kernel, stride, pads, dilation, out_hw)[0]

    @staticmethod
    def backward(g, arg, kernel, stride, pads, dilation, out_hw, padded_shape, x_shape):
        gx = np.zeros(padded_shape[1:], g.dtype)
        _loops().max_pool_backward(np.ascontiguousarray(g[0]), arg[0], kernel[1], *stride, pads[0][0], pads[1][0],
                                   *dilation, gx)
        return gx.reshape(x_shape)


def _inverse(divisor, dtype, out_hw):
    return np.broadcast_to(np.asarray(1 / np.asarray(divisor, np.float64), dtype), tuple(out_hw))


class _NumbaAvg:
    """The ``"numba"`` kernel of ``avg_pool2d``: ``forward(x4, ...) -> (1, planes, Ho, Wo)`` and
    ``backward``; ``divisor`` a scalar or an ``(Ho, Wo)`` map."""

    @staticmethod
    def forward(x4, kernel, stride, pads, out_hw, divisor):
        out = np.empty((1, x4.shape[1]) + tuple(out_hw), x4.dtype)
        inv = np.ascontiguousarray(_inverse(divisor, x4.dtype, out_hw))
        _loops().avg_pool_forward(x4[0], *kernel, *stride, pads[0][0], pads[1][0], inv, out[0])
        return out

    @staticmethod
    def backward(g, kernel, stride, pads, out_hw, divisor, x_shape, planes, hw):
        gx = np.zeros((planes,) + tuple(hw), g.dtype)
        inv = np.ascontiguousarray(_inverse(divisor, g.dtype, out_hw))
        _loops().avg_pool_backward(np.ascontiguousarray(g).reshape((planes,) + tuple(out_hw)), *kernel, *stride,
                                   pads[0][0], pads[1][0], inv, gx)
        return gx.reshape(x_shape)


_select.register("max_pool2d", "tiled", _Tiled, chooser=choose,
                 supports=lambda x4, kernel, stride, pads, dilation: backend.array_module(x4) is np
                 and tiles_input(kernel, stride, pads, dilation))
_select.register("max_pool2d", "numba", _NumbaMax, supports=fits, requires="numba")
_select.register("avg_pool2d", "numba", _NumbaAvg, chooser=choose_avg, supports=fits, requires="numba")
