"""Pooling: max and average pooling (1-d and 2-d), their adaptive forms, and max-unpooling.

Fixed-window pooling loops over the ``kh * kw`` kernel offsets, never over pixels: each offset is one
slab of the padded input covering every window of every image at once. A strided pool first splits the
padded input into its stride phases (one copy), so that every slab has unit stride along rows. Max
pooling keeps, per output, the offset of its maximum (one byte when the kernel has at most 255
positions) instead of the input, so backward scatters the gradient slab by slab with a mask. Ties go to
the first maximum in scan order and NaN wins, as in PyTorch. Max pooling runs the kernel that the
``max_pool2d`` chooser names (``kernels/pool.py``), or the reference code here.
"""
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..kernels import _select
from ._windows import from_phases, pad2d, phase_shape, phase_slab, to_phases, unpad2d
from .conv import _positive, _tuple

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool1d_with_indices", "max_pool2d_with_indices", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices", "max_unpool1d", "max_unpool2d",
]


# --------------------------------------------------------------------------- geometry
def pool_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size, including the ceil-mode rule that a window may not start in the
    right padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _as_planes(x, spatial):
    """View ``(*, [H,] W)`` as ``(1, planes, H, W)``: pooling treats every leading index alike."""
    h = 1 if spatial == 1 else x.shape[-2]
    return x.reshape(1, _planes(x, 2 if spatial == 2 else 1), h, x.shape[-1])


def _planes(x, spatial):
    """The number of ``(H, W)`` planes: the product of the leading dimensions."""
    return math.prod(x.shape[:-spatial])


def _disjoint(kernel, stride, dilation):
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


def _lowest(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


# --------------------------------------------------------------------------- max pooling
class MaxPool(Function):
    """Max pooling over ``(*, [H,] W)``. Returns ``(values, indices)`` when ``with_indices``; the indices
    (flat positions in the input plane, int64) carry no gradient.

    The maximum is a running ``maximum`` over the offset slabs (NaN propagates); the offset of the first
    maximum in scan order is then found by walking the offsets backwards, and where a window holds NaN the
    last NaN wins, which is where PyTorch's kernel leaves its index.
    """

    def forward(ctx, x, kernel, stride, pads, dilation, out_hw, spatial, with_indices):
        xp = backend.array_module(x)
        x4 = _as_planes(x, spatial)
        h, w = x4.shape[2:]
        kh, kw = kernel
        arg_dtype = np.uint8 if kh * kw <= 255 else np.int32
        impl = _select.implementation("max_pool2d", _select.choose("max_pool2d", x4, kernel, stride, pads, dilation))
        if not with_indices and not is_grad_enabled():
            # Nothing will ask where the maxima were: the values alone.
            best = (impl.values(x4, kernel, stride, pads, dilation, out_hw) if impl is not None
                    else _max_values(x4, kernel, stride, pads, dilation, out_hw))
            return best.reshape(x.shape[:-spatial] + out_hw[2 - spatial:])
        # A kernel may decline (None): the reference places the indices of NaN windows.
        found = impl.forward(x4, kernel, stride, pads, dilation, out_hw) if impl is not None else None
        ctx.kernel = impl if found is not None else None
        if found is not None:
            best, arg = found
            padded_shape = x4.shape
        else:
            slabs, padded_shape = _padded_slabs(x4, kernel, stride, pads, dilation, out_hw)
            best = slabs[0].copy()
            for v in slabs[1:]:
                xp.maximum(best, v, out=best)
            arg = xp.zeros(best.shape, arg_dtype)
            for q in range(len(slabs) - 1, -1, -1):
                xp.copyto(arg, arg_dtype(q), where=slabs[q] == best)
            if x.dtype.kind == "f":
                nan = best != best
                if nan.any():
                    for q, v in enumerate(slabs):
                        xp.copyto(arg, arg_dtype(q), where=nan & (v != v))
        ctx.geometry = (kernel, stride, pads, dilation, out_hw, padded_shape, x.shape)
        ctx.save_for_backward(arg)
        lead = x.shape[:-spatial]
        values = best.reshape(lead + out_hw[2 - spatial:])
        if not with_indices:
            return values
        indices = _flat_indices(arg, kernel, stride, pads, dilation, out_hw, w)
        return values, indices.reshape(values.shape)

    def backward(ctx, grad, grad_indices=None):
        (arg,) = ctx.saved
        kernel, stride, pads, dilation, out_hw, padded_shape, x_shape = ctx.geometry
        xp = backend.array_module(grad)
        g = grad.reshape(arg.shape)
        kh, kw = kernel
        if ctx.kernel is not None:
            return ctx.kernel.backward(g, arg, kernel, stride, pads, dilation, out_hw, padded_shape, x_shape)
        hq, wq = phase_shape(padded_shape[2:], stride)
        phases = xp.zeros(stride + padded_shape[:2] + (hq, wq), grad.dtype)
        disjoint = _disjoint(kernel, stride, dilation)
        picked = None if disjoint else xp.empty(g.shape, g.dtype)
        for i in range(kh):
            for j in range(kw):
                target = phase_slab(phases, i, j, stride, dilation, out_hw)
                hit = arg == (i * kw + j)
                if disjoint:
                    _masked(g, hit, target)
                else:
                    target += _masked(g, hit, picked)
        return unpad2d(from_phases(phases, padded_shape, stride), pads).reshape(x_shape)

    def grad_graph(ctx, grad, grad_indices=None):
        from .index import Gather
        from .shape import reshape

        (arg,) = ctx.saved
        kernel, stride, pads, dilation, out_hw, padded_shape, x_shape = ctx.geometry
        planes = arg.shape[1]
        flat = _flat_indices(arg, kernel, stride, pads, dilation, out_hw, x_shape[-1]).reshape(planes, -1)
        shape = grad.shape
        # Given where the maxima are, pooling is a gather: linear in the input.
        return ctx.graph_linear((grad, grad_indices), lambda v: Gather.apply(
            reshape(v, (planes, math.prod(x_shape) // max(planes, 1))), 1, flat).reshape(shape))


def _padded_slabs(x4, kernel, stride, pads, dilation, out_hw):
    """``(slabs, padded_shape)``: one unit-stride ``(1, planes, Ho, Wo)`` view per kernel offset, in scan
    order, of the input padded with the dtype's lowest value and split into its stride phases."""
    padded = pad2d(x4, pads, value=_lowest(x4.dtype))
    phases = to_phases(padded, stride)
    kh, kw = kernel
    return [phase_slab(phases, i, j, stride, dilation, out_hw) for i in range(kh) for j in range(kw)], padded.shape


def _max_values(x4, kernel, stride, pads, dilation, out_hw):
    """The window maxima alone (NaN propagates), from the phase slabs of the padded input."""
    xp = backend.array_module(x4)
    slabs = _padded_slabs(x4, kernel, stride, pads, dilation, out_hw)[0]
    best = slabs[0].copy()
    for v in slabs[1:]:
        xp.maximum(best, v, out=best)
    return best


_SAME_SIZE_INT = {2: np.int16, 4: np.int32, 8: np.int64}


def _masked(g, hit, out):
    """``out[...] = where(hit, g, 0)``, bit for bit and fast: the gradient's bits ANDed with an all-ones or
    all-zeros mask (a multiply would turn an infinite gradient into NaN beside the maximum, and a masked
    copy is several times slower on these strided slabs)."""
    xp = backend.array_module(g)
    as_int = _SAME_SIZE_INT.get(g.dtype.itemsize)
    if as_int is None:
        xp.copyto(out, 0)
        xp.copyto(out, g, where=hit)
        return out
    mask = xp.negative(hit.view(np.int8), dtype=as_int)
    xp.bitwise_and(g.view(as_int), mask, out=out.view(as_int))
    return out


def _flat_indices(arg, kernel, stride, pads, dilation, out_hw, width):
    """Flat ``h * W + w`` input positions of the maxima, from each window's offset of its maximum."""
    xp = backend.array_module(arg)
    kw = kernel[1]
    ho, wo = out_hw
    arg = arg.astype(np.int64)
    rows = xp.arange(ho, dtype=np.int64)[:, None] * stride[0] - pads[0][0] + (arg // kw) * dilation[0]
    cols = xp.arange(wo, dtype=np.int64)[None, :] * stride[1] - pads[1][0] + (arg % kw) * dilation[1]
    return rows * width + cols


def _check_input(op, input, spatial):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    dims = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    if input.array.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input of shape "
                         f"{dims}, got shape {tuple(input.shape)}")
    if any(s == 0 for s in input.shape[-spatial - 1:]):
        raise ValueError(f"{op}: expected non-empty channel and spatial dimensions, got shape {tuple(input.shape)}")


def _pool_geometry(op, input, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """Normalise pooling arguments to 2-d tuples and compute pads (with the ceil-mode extension)."""
    kernel = _positive(_tuple(kernel_size, spatial, "kernel_size", op), "kernel_size", op)
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    stride = _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    padding = _tuple(padding, spatial, "padding", op)
    dilation = _positive(_tuple(dilation, spatial, "dilation", op), "dilation", op)
    if any(p < 0 or p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding should be at most half of the kernel size, got padding {padding} for "
                         f"kernel {kernel}")
    size = tuple(input.shape[-spatial:])
    out, pads = [], []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        o = pool_out_size(n, k, s, p, d, ceil_mode)
        if o < 1:
            raise ValueError(f"{op}: input of shape {tuple(input.shape)} is too small for kernel {kernel}, stride "
                             f"{stride}, padding {padding}, dilation {dilation}: output size would be {o}")
        needed = (o - 1) * s + d * (k - 1) + 1
        pads.append((p, max(needed - n - p, 0)))
        out.append(o)
    if spatial == 1:
        return (1,) + kernel, (1,) + stride, ((0, 0),) + tuple(pads), (1,) + dilation, (1,) + tuple(out)
    return kernel, stride, tuple(pads), dilation, tuple(out)


def _max_pool(op, spatial, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    _check_input(op, input, spatial)
    kernel, stride, pads, dilation, out_hw = _pool_geometry(op, input, spatial, kernel_size, stride, padding,
                                                            dilation, ceil_mode)
    result = MaxPool.apply(input, kernel, stride, pads, dilation, out_hw, spatial, bool(return_indices))
    if return_indices:
        values, indices = result
        return values, indices.detach()
    return result


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-d max pooling: ``(N, C, L) -> (N, C, L_out)``; ``stride`` defaults to ``kernel_size``.

    With ``return_indices`` also returns the int64 positions of the maxima in ``L`` (for ``max_unpool1d``).
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-d max pooling: ``(N, C, H, W) -> (N, C, H_out, W_out)`` with
    ``H_out = floor_or_ceil((H + 2*padding - dilation*(kh-1) - 1) / stride) + 1``; ``stride`` defaults to
    ``kernel_size``. Padding counts as ``-inf``. With ``return_indices`` also returns the int64 flat
    positions ``h * W + w`` of the maxima (for ``max_unpool2d``).

    >>> y = max_pool2d(x, 2)            # (8, 16, 32, 32) -> (8, 16, 16, 16)
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    """``max_pool1d`` returning ``(values, indices)``."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    """``max_pool2d`` returning ``(values, indices)``."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


# --------------------------------------------------------------------------- average pooling
class AvgPool(Function):
    """Average pooling over ``(*, [H,] W)`` with a per-output divisor (a scalar or an ``(Ho, Wo)`` map),
    summing the offset slabs of the stride phases."""

    def forward(ctx, x, kernel, stride, pads, out_hw, divisor, spatial):
        x4 = _as_planes(x, spatial)
        ctx.kernel = _select.implementation("avg_pool2d", _select.choose("avg_pool2d", x4, kernel, stride, pads))
        if ctx.kernel is not None:
            ctx.geometry = (kernel, stride, pads, out_hw, None, x.shape, divisor)
            ctx.planes_hw = x4.shape[1], x4.shape[2:]
            out = ctx.kernel.forward(x4, kernel, stride, pads, out_hw, divisor)
            return out.reshape(x.shape[:-spatial] + out_hw[2 - spatial:])
        padded = pad2d(x4, pads)
        phases = to_phases(padded, stride)
        acc = None
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                v = phase_slab(phases, i, j, stride, (1, 1), out_hw)
                if acc is None:
                    acc = v.copy()
                else:
                    acc += v
        acc /= divisor
        ctx.geometry = (kernel, stride, pads, out_hw, padded.shape, x.shape, divisor)
        return acc.reshape(x.shape[:-spatial] + out_hw[2 - spatial:])

    def backward(ctx, grad):
        kernel, stride, pads, out_hw, padded_shape, x_shape, divisor = ctx.geometry
        if ctx.kernel is not None:
            return ctx.kernel.backward(grad, kernel, stride, pads, out_hw, divisor, x_shape, *ctx.planes_hw)
        xp = backend.array_module(grad)
        share = grad.reshape((1, padded_shape[1]) + out_hw) / divisor
        hq, wq = phase_shape(padded_shape[2:], stride)
        phases = xp.zeros(stride + padded_shape[:2] + (hq, wq), grad.dtype)
        disjoint = _disjoint(kernel, stride, (1, 1))
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                target = phase_slab(phases, i, j, stride, (1, 1), out_hw)
                if disjoint:
                    target[...] = share
                else:
                    target += share
        return unpad2d(from_phases(phases, padded_shape, stride), pads).reshape(x_shape)

    def grad_graph(ctx, grad):
        kernel, stride, pads, out_hw, padded_shape, x_shape, divisor = ctx.geometry
        spatial = 2 if tuple(grad.shape) == tuple(x_shape[:-2]) + tuple(out_hw) else 1
        return ctx.graph_linear((grad,), lambda v: AvgPool.apply(v, kernel, stride, pads, out_hw, divisor, spatial))


def _avg_counts(n, k, s, p, o, include_pad, xp):
    """Per-output window sizes along one axis, PyTorch's rule: windows are clipped to the padded input
    (``n + p``) and, without ``count_include_pad``, to the input itself."""
    start = xp.arange(o) * s - p
    end = xp.minimum(start + k, n + p)
    if include_pad:
        return end - start
    return xp.minimum(end, n) - xp.maximum(start, 0)


def _avg_pool(op, spatial, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    _check_input(op, input, spatial)
    kernel, stride, pads, dilation, out_hw = _pool_geometry(op, input, spatial, kernel_size, stride, padding, 1,
                                                            ceil_mode)
    dtype = input.array.dtype
    if dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {dtype}")
    if divisor_override is not None:
        if int(divisor_override) == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero")
        divisor = dtype.type(int(divisor_override))
    else:
        size = (1,) * (2 - spatial) + tuple(input.shape[-spatial:])
        xp = backend.array_module(input.array)
        counts = [_avg_counts(n, k, s, p[0], o, count_include_pad, xp)
                  for n, k, s, p, o in zip(size, kernel, stride, pads, out_hw)]
        grid = counts[0][:, None] * counts[1][None, :]
        divisor = dtype.type(int(grid.min())) if int(grid.min()) == int(grid.max()) else grid.astype(dtype)
    return AvgPool.apply(input, kernel, stride, pads, out_hw, divisor, spatial)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-d average pooling: ``(N, C, L) -> (N, C, L_out)``; ``stride`` defaults to ``kernel_size``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-d average pooling: ``(N, C, H, W) -> (N, C, H_out, W_out)``; ``stride`` defaults to ``kernel_size``.

    ``count_include_pad`` counts zero padding in the divisor; ``divisor_override`` replaces the divisor.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


# --------------------------------------------------------------------------- adaptive pooling
def _adaptive_bounds(n, o, xp):
    """PyTorch's adaptive windows along one axis: ``[floor(i*n/o), ceil((i+1)*n/o))``."""
    i = xp.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _adaptive_size(op, input, spatial, output_size):
    size = tuple(input.shape[-spatial:])
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size,) * spatial
    output_size = tuple(output_size)
    if len(output_size) != spatial:
        raise ValueError(f"{op}: output_size must be an int or a tuple of {spatial}, got {output_size!r}")
    out = tuple(n if o is None else int(o) for n, o in zip(size, output_size))
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: output_size must be positive, got {output_size}")
    return out


def _averaging_matrix(n, o, dtype, xp):
    """``(o, n)`` matrix whose row ``i`` averages adaptive window ``i``."""
    start, end = _adaptive_bounds(n, o, xp)
    cols = xp.arange(n)
    inside = (cols[None, :] >= start[:, None]) & (cols[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class AdaptiveAvgPool(Function):
    """Adaptive average pooling as two small GEMMs: ``P_h @ x @ P_w^T`` with averaging matrices, whose
    transposes give the gradient; a global pool is a plain mean."""

    def forward(ctx, x, out_hw, spatial):
        xp = backend.array_module(x)
        x4 = _as_planes(x, spatial)
        planes, h, w = x4.shape[1:]
        ho, wo = out_hw
        ctx.shapes = (x.shape, (planes, h, w))
        lead = x.shape[:-spatial]
        if (ho, wo) == (1, 1):
            ctx.mode = "global"
            return x4.mean(axis=(2, 3), dtype=x.dtype).reshape(lead + (1,) * spatial)
        if h % ho == 0 and w % wo == 0:
            ctx.mode = "blocks"
            kh, kw = h // ho, w // wo
            out = x4.reshape(planes, ho, kh, wo, kw).mean(axis=(2, 4), dtype=x.dtype)
            ctx.block = (kh, kw)
            return out.reshape(lead + out_hw[2 - spatial:])
        ctx.mode = "matrix"
        ph = _averaging_matrix(h, ho, x.dtype, xp)
        pw = _averaging_matrix(w, wo, x.dtype, xp)
        ctx.mats = (xp.asarray(ph), xp.asarray(pw))
        along_w = xp.ascontiguousarray(x4).reshape(planes * h, w) @ ctx.mats[1].T
        out = xp.matmul(ctx.mats[0], along_w.reshape(planes, h, wo))
        return out.reshape(lead + out_hw[2 - spatial:])

    def backward(ctx, grad):
        xp = backend.array_module(grad)
        x_shape, (planes, h, w) = ctx.shapes
        if ctx.mode == "global":
            g = grad.reshape(planes, 1, 1) / grad.dtype.type(h * w)
            return xp.broadcast_to(g, (planes, h, w)).reshape(x_shape)
        if ctx.mode == "blocks":
            kh, kw = ctx.block
            g = grad.reshape(planes, h // kh, 1, w // kw, 1) / grad.dtype.type(kh * kw)
            return xp.broadcast_to(g, (planes, h // kh, kh, w // kw, kw)).reshape(x_shape)
        ph, pw = ctx.mats
        g = grad.reshape(planes, ph.shape[0], pw.shape[0])
        along_h = xp.matmul(ph.T, g)
        return (along_h.reshape(planes * ph.shape[1], pw.shape[0]) @ pw).reshape(x_shape)

    def grad_graph(ctx, grad):
        x_shape, (planes, h, w) = ctx.shapes
        spatial = 1 if h == 1 and planes == math.prod(x_shape[:-1]) else 2
        out_hw = (1, grad.shape[-1]) if spatial == 1 else tuple(grad.shape[-2:])
        return ctx.graph_linear((grad,), lambda v: AdaptiveAvgPool.apply(v, out_hw, spatial))


class AdaptiveMaxPool(Function):
    """Adaptive max pooling: gathers each window offset (windows shorter than the longest repeat their last
    element, which never changes a maximum) and keeps the flat argmax for backward."""

    def forward(ctx, x, out_hw, spatial, with_indices):
        xp = backend.array_module(x)
        x4 = _as_planes(x, spatial)
        planes, h, w = x4.shape[1:]
        ho, wo = out_hw
        rows = _window_positions(h, ho, xp)
        cols = _window_positions(w, wo, xp)
        is_float = x.dtype.kind == "f"
        best = arg = None
        x3 = x4[0]
        for a in range(rows.shape[1]):
            band = xp.take(x3, rows[:, a], axis=1)
            for b in range(cols.shape[1]):
                v = xp.take(band, cols[:, b], axis=2)
                pos = rows[:, a][:, None] * w + cols[:, b][None, :]
                if best is None:
                    best = v.copy()
                    arg = xp.broadcast_to(pos, v.shape).copy()
                    continue
                take = v > best
                if is_float:
                    take |= v != v
                xp.copyto(best, v, where=take)
                xp.copyto(arg, xp.broadcast_to(pos, v.shape), where=take)
        ctx.shapes = (x.shape, (planes, h * w))
        ctx.save_for_backward(arg)
        out_shape = x.shape[:-spatial] + out_hw[2 - spatial:]
        if with_indices:
            return best.reshape(out_shape), arg.reshape(out_shape)
        return best.reshape(out_shape)

    def backward(ctx, grad, grad_indices=None):
        (arg,) = ctx.saved
        x_shape, (planes, hw) = ctx.shapes
        xp = backend.array_module(grad)
        out = xp.zeros((planes, hw), grad.dtype)
        flat = arg.reshape(planes, arg.size // max(planes, 1))
        xp.add.at(out, (xp.arange(planes)[:, None], flat), grad.reshape(flat.shape))
        return out.reshape(x_shape)

    def grad_graph(ctx, grad, grad_indices=None):
        from .index import Gather
        from .shape import reshape

        (arg,) = ctx.saved
        x_shape, (planes, hw) = ctx.shapes
        flat = arg.reshape(planes, arg.size // max(planes, 1))
        shape = grad.shape
        return ctx.graph_linear((grad, grad_indices),
                                lambda v: Gather.apply(reshape(v, (planes, hw)), 1, flat).reshape(shape))


def _window_positions(n, o, xp):
    """``(o, kmax)`` input positions of each adaptive window, padded by repeating its last position."""
    start, end = _adaptive_bounds(n, o, xp)
    kmax = int((end - start).max())
    pos = start[:, None] + xp.arange(kmax)[None, :]
    return xp.minimum(pos, (end - 1)[:, None])


def adaptive_avg_pool1d(input, output_size):
    """1-d adaptive average pooling: ``(N, C, L) -> (N, C, output_size)``."""
    _check_input("adaptive_avg_pool1d", input, 1)
    out = _adaptive_size("adaptive_avg_pool1d", input, 1, output_size)
    return AdaptiveAvgPool.apply(input, (1,) + out, 1)


def adaptive_avg_pool2d(input, output_size):
    """2-d adaptive average pooling: ``(N, C, H, W) -> (N, C, *output_size)``; window ``i`` spans
    ``[floor(i*H/H_out), ceil((i+1)*H/H_out))``. ``output_size`` may hold None to keep a dimension."""
    _check_input("adaptive_avg_pool2d", input, 2)
    out = _adaptive_size("adaptive_avg_pool2d", input, 2, output_size)
    if input.array.dtype.kind != "f":
        raise TypeError(f"adaptive_avg_pool2d: expected a floating-point input, got dtype {input.array.dtype}")
    return AdaptiveAvgPool.apply(input, out, 2)


def _adaptive_max(op, spatial, input, output_size, return_indices):
    _check_input(op, input, spatial)
    out = _adaptive_size(op, input, spatial, output_size)
    hw = out if spatial == 2 else (1,) + out
    result = AdaptiveMaxPool.apply(input, hw, spatial, bool(return_indices))
    if return_indices:
        return result[0], result[1].detach()
    return result


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """1-d adaptive max pooling: ``(N, C, L) -> (N, C, output_size)``."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """2-d adaptive max pooling: ``(N, C, H, W) -> (N, C, *output_size)``; with ``return_indices`` also the
    int64 flat positions of the maxima."""
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    """``adaptive_max_pool1d`` returning ``(values, indices)``."""
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    """``adaptive_max_pool2d`` returning ``(values, indices)``."""
    return adaptive_max_pool2d(input, output_size, True)


# --------------------------------------------------------------------------- max unpooling
class MaxUnpool(Function):
    """Scatter values to the flat positions recorded by max pooling; everything else is zero."""

    def forward(ctx, x, indices, out_size):
        xp = backend.array_module(x)
        spatial = len(out_size)
        lead = x.shape[:-spatial]
        planes = math.prod(lead)
        plane = math.prod(out_size)
        flat = indices.reshape(planes, math.prod(indices.shape[len(lead):]))
        out = xp.zeros((planes, plane), x.dtype)
        xp.put_along_axis(out, flat, x.reshape(flat.shape), axis=1)
        ctx.x_shape = x.shape
        ctx.save_for_backward(flat)
        return out.reshape(lead + tuple(out_size))

    def backward(ctx, grad):
        (flat,) = ctx.saved
        xp = backend.array_module(grad)
        g = grad.reshape(flat.shape[0], grad.size // max(flat.shape[0], 1))
        return xp.take_along_axis(g, flat, axis=1).reshape(ctx.x_shape), None

    def grad_graph(ctx, grad):
        from .index import Gather
        from .shape import reshape

        (flat,) = ctx.saved
        g = reshape(grad, (flat.shape[0], grad.array.size // max(flat.shape[0], 1)))
        return reshape(Gather.apply(g, 1, flat), ctx.x_shape), None


def _max_unpool(op, spatial, input, indices, kernel_size, stride, padding, output_size):
    _check_input(op, input, spatial)
    idx = indices.array if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.shape != tuple(input.shape):
        raise ValueError(f"{op}: indices of shape {tuple(idx.shape)} must match the input shape "
                         f"{tuple(input.shape)}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers (as returned by max_pool with return_indices=True), got "
                        f"dtype {idx.dtype}")
    kernel = _positive(_tuple(kernel_size, spatial, "kernel_size", op), "kernel_size", op)
    stride = kernel if stride is None else _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    padding = _tuple(padding, spatial, "padding", op)
    size = tuple(input.shape[-spatial:])
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(size, stride, padding, kernel))
    if output_size is None:
        out = default
    else:
        out = tuple(int(s) for s in output_size)[-spatial:]
        for o, d, s in zip(out, default, stride):
            if not d - s < o < d + s:
                raise ValueError(f"{op}: output_size {tuple(output_size)} is out of range; expected sizes between "
                                 f"{tuple(d - s + 1 for d, s in zip(default, stride))} and "
                                 f"{tuple(d + s - 1 for d, s in zip(default, stride))}")
    plane = math.prod(out)
    if idx.size and (idx.min() < 0 or idx.max() >= plane):
        raise ValueError(f"{op}: found an invalid max index {int(idx.max()) if idx.max() >= plane else int(idx.min())} "
                         f"for an output of spatial size {out}")
    return MaxUnpool.apply(input, idx.astype(np.int64, copy=False), out)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool1d``: puts each value back at its index, zeros elsewhere;
    ``(N, C, L) -> (N, C, (L-1)*stride - 2*padding + kernel_size)`` unless ``output_size`` is given."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool2d``: ``(N, C, H, W) -> (N, C, H_out, W_out)`` with
    ``H_out = (H-1)*stride - 2*padding + kernel_size`` unless ``output_size`` is given."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)
