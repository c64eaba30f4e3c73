"""Resampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear, area) and pixel (un)shuffle.

Nearest and (bi)linear interpolation are separable: along each spatial axis every output position reads
one or two input positions with fixed weights. The forward pass gathers along the last axis, then the one
before (PyTorch's order of operations for bilinear). Source positions never decrease along an axis, so
the backward pass sums each axis's gradient into its sources with ``add.reduceat`` over runs of equal
positions: no scatter loop and no float64 temporaries. Source positions and weights are computed in the
input's dtype, as PyTorch does, so float32 results round the same way.
"""
import math

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "pixel_unshuffle"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


# --------------------------------------------------------------------------- source positions
def _scale(n_in, n_out, align_corners, scale, dtype):
    """PyTorch's ratio between source and destination coordinates along one axis."""
    if align_corners:
        return dtype.type(n_in - 1) / dtype.type(n_out - 1) if n_out > 1 else dtype.type(0)
    if scale is not None and scale > 0:
        return dtype.type(1.0 / scale)
    return dtype.type(n_in) / dtype.type(n_out)


def _nearest_sources(n_in, n_out, scale, exact, dtype, xp):
    dst = xp.arange(n_out)
    if n_out == n_in and not exact:
        return dst
    if n_out == 2 * n_in and not exact:
        return dst >> 1
    ratio = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)
    if exact:
        # PyTorch forms (dst + 0.5) * scale in double and rounds it to float before the floor.
        pos = ((dst + 0.5) * np.float64(ratio)).astype(np.float32)
    else:
        pos = dst.astype(np.float32) * ratio
    return xp.minimum(xp.floor(pos).astype(np.int64), n_in - 1)


def _linear_sources(n_in, n_out, align_corners, scale, dtype, xp):
    """``(i0, i1, w0, w1)``: each output reads ``w0 * x[i0] + w1 * x[i1]``."""
    dst = xp.arange(n_out)
    if n_in == n_out:
        return dst, dst, xp.ones(n_out, dtype), xp.zeros(n_out, dtype)
    ratio = _scale(n_in, n_out, align_corners, scale, dtype)
    d = dst.astype(dtype)
    if align_corners:
        src = ratio * d
    else:
        src = xp.maximum(ratio * (d + dtype.type(0.5)) - dtype.type(0.5), dtype.type(0))
    i0 = xp.minimum(xp.floor(src).astype(np.int64), n_in - 1)
    i1 = xp.where(i0 < n_in - 1, i0 + 1, i0)
    w1 = xp.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    w0 = (dtype.type(1) - w1).astype(dtype)
    return i0, i1, w0, w1


def _segment_sum(values, positions, n, axis):
    """Sum ``values`` along ``axis`` into ``n`` slots by non-decreasing ``positions``."""
    xp = array_module(values)
    starts = xp.flatnonzero(xp.r_[True, positions[1:] != positions[:-1]])
    sums = xp.add.reduceat(values, starts, axis=axis)
    if starts.size == n:
        return sums
    shape = list(values.shape)
    shape[axis] = n
    out = xp.zeros(shape, values.dtype)
    index = [slice(None)] * values.ndim
    index[axis] = positions[starts]
    out[tuple(index)] = sums
    return out


class Resample(Function):
    """Separable resampling of the trailing spatial axes; ``plans`` holds, per axis (outermost first),
    ``("nearest", idx)`` or ``("linear", i0, i1, w0, w1)``."""

    def forward(ctx, x, plans):
        xp = array_module(x)
        ctx.plans = plans
        ctx.in_shape = x.shape
        out = x
        spatial = len(plans)
        for k in reversed(range(spatial)):
            axis = x.ndim - spatial + k
            plan = plans[k]
            if plan is None:
                continue
            if plan[0] == "nearest":
                out = xp.take(out, plan[1], axis=axis)
            else:
                _, i0, i1, w0, w1 = plan
                shape = [1] * x.ndim
                shape[axis] = -1
                out = xp.take(out, i0, axis=axis) * w0.reshape(shape) + xp.take(out, i1, axis=axis) * w1.reshape(shape)
        return out if out is not x else x.copy()

    def backward(ctx, grad):
        g = grad
        spatial = len(ctx.plans)
        nd = grad.ndim
        for k in range(spatial):
            axis = nd - spatial + k
            plan = ctx.plans[k]
            if plan is None:
                continue
            n = ctx.in_shape[axis]
            if plan[0] == "nearest":
                g = _segment_sum(g, plan[1], n, axis)
            else:
                _, i0, i1, w0, w1 = plan
                shape = [1] * nd
                shape[axis] = -1
                g = _segment_sum(g * w0.reshape(shape), i0, n, axis) + _segment_sum(g * w1.reshape(shape), i1, n, axis)
        return g

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Resample.apply(v, ctx.plans))


def _output_size(op, x, spatial, size, scale_factor, recompute_scale_factor):
    """Output sizes and the scales handed to the kernel, as ``F.interpolate`` computes them."""
    in_size = tuple(x.shape[-spatial:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size or scale_factor must be given (got size={size!r}, "
                         f"scale_factor={scale_factor!r})")
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, (int, np.integer)) else tuple(size)
        if len(sizes) != spatial:
            raise ValueError(f"{op}: size must be an int or a tuple of {spatial} ints for input of shape "
                             f"{tuple(x.shape)}, got {size!r}")
        sizes = tuple(int(s) for s in sizes)
        scales = (None,) * spatial
    else:
        scales = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(scales) != spatial:
            raise ValueError(f"{op}: scale_factor must be a number or a tuple of {spatial} for input of shape "
                             f"{tuple(x.shape)}, got {scale_factor!r}")
        scales = tuple(float(s) for s in scales)
        sizes = tuple(int(math.floor(float(n) * s)) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None,) * spatial
    if any(s <= 0 for s in sizes):
        raise ValueError(f"{op}: output size must be positive, got {sizes} for input of shape {tuple(x.shape)}")
    return in_size, sizes, scales


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` to ``size`` or by ``scale_factor``.

    ``mode``: 'nearest' (PyTorch's legacy rule ``src = floor(dst * in / out)``), 'nearest-exact',
    'linear' (3-D input), 'bilinear' (4-D input) with or without ``align_corners``, or 'area' (adaptive
    average pooling).

    >>> y = interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (N, C, H, W) -> (N, C, 2H, 2W)
    """
    op = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {_MODES}, got {mode!r}")
    if align_corners is not None and mode in ("nearest", "nearest-exact", "area"):
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes linear, bilinear, "
                         f"bicubic and trilinear (got mode={mode!r})")
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not supported")
    nd = input.array.ndim
    if nd not in (3, 4):
        raise NotImplementedError(f"{op}: supports 3-D (N, C, L) and 4-D (N, C, H, W) inputs, got shape "
                                  f"{tuple(input.shape)}")
    spatial = nd - 2
    if mode in ("bicubic", "trilinear"):
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported yet")
    if mode == "linear" and spatial != 1:
        raise ValueError(f"{op}: mode 'linear' needs a 3-D input (N, C, L), got shape {tuple(input.shape)}")
    if mode == "bilinear" and spatial != 2:
        raise ValueError(f"{op}: mode 'bilinear' needs a 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
    dtype = input.array.dtype
    if dtype.kind != "f" and mode not in ("nearest", "nearest-exact"):
        raise TypeError(f"{op}: mode {mode!r} needs a floating-point input, got dtype {dtype}")
    in_size, sizes, scales = _output_size(op, input, spatial, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        from .pool import adaptive_avg_pool1d, adaptive_avg_pool2d

        return (adaptive_avg_pool1d if spatial == 1 else adaptive_avg_pool2d)(input, sizes)
    xp = array_module(input.array)
    plans = []
    for n_in, n_out, scale in zip(in_size, sizes, scales):
        if mode in ("nearest", "nearest-exact"):
            idx = _nearest_sources(n_in, n_out, scale, mode == "nearest-exact", dtype, xp)
            plans.append(None if n_in == n_out and mode == "nearest" else ("nearest", idx))
        else:
            plans.append(("linear",) + _linear_sources(n_in, n_out, bool(align_corners), scale, dtype, xp))
    return Resample.apply(input, tuple(plans))


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of ``interpolate`` kept for PyTorch compatibility."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """``interpolate(..., mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """``interpolate(..., mode='bilinear', align_corners=True)``, as PyTorch's deprecated alias does."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# --------------------------------------------------------------------------- pixel shuffle
class PixelShuffle(Function):
    """``(*, C*r*r, H, W) <-> (*, C, H*r, W*r)`` by one reshape-transpose-reshape (a single copy)."""

    def forward(ctx, x, r, inverse):
        ctx.r, ctx.inverse, ctx.shape = r, inverse, x.shape
        return _shuffle(x, r) if not inverse else _unshuffle(x, r)

    def backward(ctx, grad):
        return _unshuffle(grad, ctx.r) if not ctx.inverse else _shuffle(grad, ctx.r)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: PixelShuffle.apply(v, ctx.r, ctx.inverse))


def _shuffle(x, r):
    lead = x.shape[:-3]
    c, h, w = x.shape[-3:]
    k = len(lead)
    v = x.reshape(lead + (c // (r * r), r, r, h, w))
    axes = tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2)
    return v.transpose(axes).reshape(lead + (c // (r * r), h * r, w * r))


def _unshuffle(x, r):
    lead = x.shape[:-3]
    c, h, w = x.shape[-3:]
    k = len(lead)
    v = x.reshape(lead + (c, h // r, r, w // r, r))
    axes = tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3)
    return v.transpose(axes).reshape(lead + (c * r * r, h // r, w // r))


def _check_shuffle(op, input, factor, name):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {factor!r}")
    if input.array.ndim < 3:
        raise ValueError(f"{op}: expected an input of shape (*, C, H, W) with at least 3 dimensions, got shape "
                         f"{tuple(input.shape)}")


def pixel_shuffle(input, upscale_factor):
    """Rearrange ``(*, C * r**2, H, W)`` into ``(*, C, H * r, W * r)`` (sub-pixel convolution's last step)."""
    op = "pixel_shuffle"
    _check_shuffle(op, input, upscale_factor, "upscale_factor")
    c = input.shape[-3]
    if c % (upscale_factor * upscale_factor):
        raise ValueError(f"{op}: the channel dimension {c} of input shape {tuple(input.shape)} must be divisible by "
                         f"upscale_factor**2 = {upscale_factor * upscale_factor}")
    return PixelShuffle.apply(input, int(upscale_factor), False)


def pixel_unshuffle(input, downscale_factor):
    """Rearrange ``(*, C, H * r, W * r)`` into ``(*, C * r**2, H, W)``, the inverse of ``pixel_shuffle``."""
    op = "pixel_unshuffle"
    _check_shuffle(op, input, downscale_factor, "downscale_factor")
    h, w = input.shape[-2:]
    if h % downscale_factor or w % downscale_factor:
        raise ValueError(f"{op}: height {h} and width {w} of input shape {tuple(input.shape)} must be divisible by "
                         f"downscale_factor {downscale_factor}")
    return PixelShuffle.apply(input, int(downscale_factor), True)
