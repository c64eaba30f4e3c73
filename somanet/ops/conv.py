"""Convolutions: conv1d/conv2d, their transposes, and unfold/fold, as GEMMs over im2col buffers.

Every convolution is computed in 2-d (a 1-d input is a 2-d one of height 1), on NCHW arrays, by three
kernels that the transposed convolution shares (its forward is a convolution's input gradient):

- forward: the read-only strided windows of the padded input are copied once into an im2col buffer
  ``(N, C * kh * kw, Ho * Wo)`` and multiplied by the weight viewed as ``(O, C * kh * kw)``, one GEMM per
  image (``matmul`` over the batch): an image's columns stay in cache while BLAS packs them, and BLAS
  writes straight into ``(N, O, Ho, Wo)`` order, so no output transpose is needed;
- weight gradient: at stride 1, the output gradient is multiplied straight against the windows of the
  padded input, read without a copy as "wide" rows (each window is one contiguous run of the flattened
  plane; the few columns that wrap around are cancelled by zeros in the gradient); otherwise the windows
  are copied ``(C * kh * kw, N * Ho * Wo)`` and the whole batch is one GEMM's inner dimension;
- input gradient: at stride 1 the adjoint of a correlation is a correlation of the padded output
  gradient with the flipped, channel-transposed kernel, so it is the forward kernel again; when that
  GEMM would be much thinner than the alternative (outputs with 2x the input's channels) or the stride
  is above 1, one GEMM goes into column space and col2im adds it back, looping over the kernel offsets
  only (each offset one slab of every image).

Backward rebuilds the windows instead of saving them: an im2col buffer is ``kh * kw`` times the input,
and keeping one per layer would multiply a network's memory. Big temporaries live in per-thread scratch
buffers that are reused from call to call, because faulting in fresh pages costs more than the copies.
"""
import threading

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]

_as_strided = np.lib.stride_tricks.as_strided


# --------------------------------------------------------------------------- argument normalisation
def _tuple(value, n, name, op):
    """An int or a length-``n`` sequence of ints as an ``n``-tuple, with a clear error otherwise."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) == 1:
        return out * n
    if len(out) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return out


def _positive(values, name, op):
    if any(v <= 0 for v in values):
        raise ValueError(f"{op}: {name} must be positive, got {values}")
    return values


def needs_grad(ctx, i):
    """Whether input ``i`` of the node ``ctx`` receives a gradient (so backward can skip work)."""
    edges = getattr(ctx, "edges", None)
    return edges is None or edges[i] is not None


# --------------------------------------------------------------------------- scratch buffers
class _Workspace(threading.local):
    """Reusable scratch memory for the big temporaries of one op call (im2col buffers, padded inputs).

    A fresh multi-megabyte NumPy array is new pages from the kernel, and faulting them in costs more than
    the copy that fills them (an im2col copy runs about 3x faster into memory that was used before).
    Buffers are kept per thread and per named slot, only up to ``LIMIT`` bytes each; the arrays handed
    out are views that must not outlive the op that asked for them.
    """

    LIMIT = 64 * 2 ** 20

    def __init__(self):
        self.buffers = {}

    def get(self, slot, shape, dtype):
        """An uninitialised ``shape`` array from ``slot``'s buffer (grown as needed)."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        if size * dtype.itemsize > self.LIMIT:
            return np.empty(shape, dtype)
        key = (slot, dtype)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype)
            self.buffers[key] = buf
        return buf[:size].reshape(shape)

    def clear(self):
        """Drop every buffer of this thread."""
        self.buffers.clear()


_workspace = _Workspace()


def scratch(slot, shape, dtype, xp=np):
    """A temporary array of ``shape`` from the per-thread workspace (uninitialised)."""
    if xp is not np:
        return xp.empty(shape, dtype)
    return _workspace.get(slot, shape, dtype)


def release_workspace():
    """Free the scratch buffers that convolutions and pooling keep between calls (this thread's)."""
    _workspace.clear()


# --------------------------------------------------------------------------- shared array kernels
def pad2d(x, pads, value=0, slot=None):
    """``x`` (N, C, H, W) padded by ``((top, bottom), (left, right))``; negative amounts crop.

    With ``slot`` the result lives in scratch memory and is only valid until the op returns.
    """
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    if min(pt, pb, pl, pr) < 0:
        n_h, n_w = x.shape[2], x.shape[3]
        x = x[:, :, max(-pt, 0):n_h - max(-pb, 0), max(-pl, 0):n_w - max(-pr, 0)]
        pt, pb, pl, pr = max(pt, 0), max(pb, 0), max(pl, 0), max(pr, 0)
        if pt == pb == pl == pr == 0:
            return x
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    shape = (n, c, h + pt + pb, w + pl + pr)
    if slot is None:
        out = xp.zeros(shape, x.dtype) if value == 0 else xp.full(shape, value, x.dtype)
    else:
        # Reused memory: write the borders as well as the interior.
        out = scratch(slot, shape, x.dtype, xp)
        out[:, :, :pt] = value
        out[:, :, pt + h:] = value
        out[:, :, pt:pt + h, :pl] = value
        out[:, :, pt:pt + h, pl + w:] = value
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def unpad2d(x, pads):
    """The inverse of ``pad2d`` for gradients: the interior of ``x``, zero-extended where ``pad2d`` cropped."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    h, w = x.shape[2], x.shape[3]
    inner = x[:, :, max(pt, 0):h - max(pb, 0), max(pl, 0):w - max(pr, 0)]
    if min(pt, pb, pl, pr) < 0:
        inner = pad2d(inner, ((max(-pt, 0), max(-pb, 0)), (max(-pl, 0), max(-pr, 0))))
    return inner


def windows(xp, kernel, stride, dilation, out_hw, order="nckl"):
    """Read-only strided view of every kernel window of the padded input ``xp`` (N, C, Hp, Wp).

    ``order='nckl'`` gives ``(N, C, kh, kw, Ho, Wo)``, ``order='ckn'`` gives ``(C, kh, kw, N, Ho, Wo)``.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    if order == "nckl":
        return _as_strided(xp, (n, c, kh, kw, ho, wo), (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
                           writeable=False)
    return _as_strided(xp, (c, kh, kw, n, ho, wo), (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw),
                       writeable=False)


def _copy(view, slot):
    """A C-contiguous copy of ``view``, in scratch memory when ``slot`` is given."""
    xp = backend.array_module(view)
    if slot is None:
        return xp.ascontiguousarray(view)
    out = scratch(slot, view.shape, view.dtype, xp)
    out[...] = view
    return out


def im2col(xp, kernel, stride, dilation, out_hw, slot=None):
    """The im2col buffer ``(N, C * kh * kw, Ho * Wo)`` of the padded input (a view when nothing moves)."""
    n, c, hp, wp = xp.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    if kh == kw == 1 and stride == (1, 1) and (hp, wp) == (ho, wo):
        return xp.reshape(n, c, ho * wo)
    view = windows(xp, kernel, stride, dilation, out_hw)
    return _copy(view, slot).reshape(n, c * kh * kw, ho * wo)


def im2col_t(xp, kernel, stride, dilation, out_hw, slot=None):
    """The im2col buffer laid out ``(C * kh * kw, N * Ho * Wo)``: the batch joins the GEMM's inner dimension."""
    n, c, hp, wp = xp.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    view = windows(xp, kernel, stride, dilation, out_hw, order="ckn")
    return _copy(view, slot).reshape(c * kh * kw, n * ho * wo)


def phase_shape(padded_hw, stride):
    """``(Hq, Wq)``: the size of each stride phase of a ``padded_hw`` plane."""
    return tuple(-(-n // st) for n, st in zip(padded_hw, stride))


def to_phases(padded, stride, slot=None):
    """Deinterleave ``padded`` (N, C, Hp, Wp) into its stride phases ``(sh, sw, N, C, Hq, Wq)`` with
    ``phases[a, b] = padded[:, :, a::sh, b::sw]`` (one copy). Every kernel offset's slab then has unit
    stride along rows, which NumPy's elementwise loops run several times faster than strided slabs."""
    sh, sw = stride
    if (sh, sw) == (1, 1):
        return padded[None, None]
    xp = backend.array_module(padded)
    shape = (sh, sw) + padded.shape[:2] + phase_shape(padded.shape[2:], stride)
    out = scratch(slot, shape, padded.dtype, xp) if slot else xp.empty(shape, padded.dtype)
    for a in range(sh):
        for b in range(sw):
            part = padded[:, :, a::sh, b::sw]
            out[a, b, :, :, :part.shape[2], :part.shape[3]] = part
    return out


def from_phases(phases, padded_shape, stride):
    """Interleave phase planes back into a (fresh) padded image; the inverse of ``to_phases``."""
    sh, sw = stride
    if (sh, sw) == (1, 1):
        return phases[0, 0]
    xp = backend.array_module(phases)
    out = xp.empty(padded_shape, phases.dtype)
    for a in range(sh):
        for b in range(sw):
            target = out[:, :, a::sh, b::sw]
            target[...] = phases[a, b, :, :, :target.shape[2], :target.shape[3]]
    return out


def phase_slab(phases, i, j, stride, dilation, out_hw):
    """The slab of kernel offset ``(i, j)`` in phase planes: every window's element at that offset."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    a, b = i * dh, j * dw
    return phases[a % sh, b % sw, :, :, a // sh:a // sh + ho, b // sw:b // sw + wo]


def col2im(cols, padded_hw, kernel, stride, dilation, out_hw):
    """Sum the column buffer ``(N, C * kh * kw, Ho * Wo)`` back onto the padded image ``(N, C, Hp, Wp)``.

    The loop runs over kernel offsets only; each offset adds one slab of every image at once, into the
    stride phases of the image when the stride is above 1 (unit-stride rows), interleaved at the end.
    """
    xp = backend.array_module(cols)
    (kh, kw), (ho, wo) = kernel, out_hw
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    hp, wp = padded_hw
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    if kh == kw == 1 and stride == (1, 1) and (hp, wp) == (ho, wo):
        return cols.reshape(n, c, ho, wo)
    phases = xp.zeros(tuple(stride) + (n, c) + phase_shape((hp, wp), stride), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            phase_slab(phases, i, j, stride, dilation, out_hw)[...] += cols[:, :, i, j]
    return from_phases(phases, (n, c, hp, wp), stride)


def _out_size(size, pad_lo, pad_hi, k, s, d):
    return (size + pad_lo + pad_hi - d * (k - 1) - 1) // s + 1


def _wide_padded(x4, pads, kernel):
    """``x4`` padded (in scratch memory), plus one spare bottom row when ``kw > 1``: the last wide window
    of a plane runs ``dw * (kw - 1)`` elements past the padded plane, and must stay inside it."""
    (pt, pb), (pl, pr) = pads
    return pad2d(x4, ((pt, pb + (1 if kernel[1] > 1 else 0)), (pl, pr)), slot="pad")


def _wide_view(xq, kernel, dilation, ho, wp):
    """Stride-1 windows of the padded planes read as flat rows of length ``wp``, shaped
    ``(N, kh, kw, ho*wp, C)`` for multiplying on the right: window ``(i, j)`` of plane ``(n, c)`` is the
    contiguous run ``flat[n, c, i*dh*wp + j*dw : ... + ho*wp]``. Columns ``w >= wo`` of each row are
    junk, cancelled by zeros in the other operand."""
    n, c = xq.shape[:2]
    (kh, kw), (dh, dw) = kernel, dilation
    flat = xq.reshape(n, c, xq.shape[2] * xq.shape[3])
    s_n, s_c, s_e = flat.strides
    return _as_strided(flat, (n, kh, kw, ho * wp, c), (s_n, dh * wp * s_e, dw * s_e, s_e, s_c), writeable=False)


def _gemm_forward(cols, w2, groups, n, o, out_hw):
    """``w2`` (G, O/G, K) times ``cols`` (N, G*K, L) -> (N, O, Ho, Wo), one GEMM per image (an image's
    columns stay in cache while BLAS packs them)."""
    xp = backend.array_module(cols)
    ell = cols.shape[-1]
    if groups == 1:
        out = xp.matmul(w2[0], cols)
    else:
        out = xp.matmul(w2, cols.reshape(n, groups, cols.shape[1] // groups, ell))
    return out.reshape(n, o, out_hw[0], out_hw[1])


def conv_forward(x4, w4, groups, pads, stride, dilation):
    """Cross-correlation of ``x4`` (N, C, H, W) with ``w4`` (O, C/G, kh, kw) -> (N, O, Ho, Wo): the strided
    windows of the padded input copied once into a (reused) im2col buffer, then one GEMM per image."""
    n, c, h, w = x4.shape
    o, cg, kh, kw = w4.shape
    (pt, pb), (pl, pr) = pads
    ho = _out_size(h, pt, pb, kh, stride[0], dilation[0])
    wo = _out_size(w, pl, pr, kw, stride[1], dilation[1])
    w2 = w4.reshape(groups, o // groups, cg * kh * kw)
    cols = im2col(pad2d(x4, pads, slot="pad"), (kh, kw), stride, dilation, (ho, wo), slot="cols")
    return _gemm_forward(cols, w2, groups, n, o, (ho, wo))


def conv_weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """dW (O, C/G, kh, kw) of ``conv_forward`` given the output gradient ``g4`` (N, O, Ho, Wo).

    When the per-image partial products are no bigger than an im2col buffer, stride 1 multiplies the
    gradient (junk columns zeroed) straight against the read-only wide windows of the padded input: one
    batched matmul, no copy of the windows, each image's data reused from cache for all ``kh * kw``
    offsets; the batch is summed after. Otherwise the windows are copied ``(C*kh*kw, N*Ho*Wo)`` and the
    whole batch is one GEMM's inner dimension.
    """
    xp = backend.array_module(g4)
    n, o, ho, wo = g4.shape
    c = x4.shape[1]
    cg, og = c // groups, o // groups
    kh, kw = kernel
    (pt, pb), (pl, pr) = pads
    if stride == (1, 1) and cg >= 4 and o * cg <= c * ho * wo and ho * wo >= 128:
        wp = x4.shape[3] + pl + pr
        xq = _wide_padded(x4, pads, kernel)
        if wp == wo:
            g_wide = g4
        else:
            g_wide = scratch("wide", (n, o, ho, wp), g4.dtype, xp)
            g_wide[:, :, :, wo:] = 0
            g_wide[:, :, :, :wo] = g4
        view = _wide_view(xq, kernel, dilation, ho, wp)  # (N, kh, kw, L, C)
        if groups == 1:
            parts = xp.matmul(g_wide.reshape(n, 1, 1, o, ho * wp), view)  # (N, kh, kw, O, C)
            return parts.sum(axis=0).transpose(2, 3, 0, 1)
        s = view.strides
        view = _as_strided(view, (n, kh, kw, groups, ho * wp, cg), s[:3] + (cg * s[4], s[3], s[4]), writeable=False)
        parts = xp.matmul(g_wide.reshape(n, 1, 1, groups, og, ho * wp), view)  # (N, kh, kw, G, O/G, C/G)
        return parts.sum(axis=0).transpose(2, 3, 4, 0, 1).reshape(o, cg, kh, kw)
    ell = ho * wo
    cols_t = im2col_t(pad2d(x4, pads, slot="pad"), kernel, stride, dilation, (ho, wo), slot="cols")
    cols_t = cols_t.reshape(groups, cg * kh * kw, n * ell)
    # (N, O, L) -> (O, N, L): the one copy that lets the whole batch be a single GEMM's inner dimension.
    g_t = _copy(g4.reshape(n, o, ell).transpose(1, 0, 2), "gt").reshape(groups, og, n * ell)
    if groups == 1:
        gw = xp.matmul(g_t[0], cols_t[0].T)
    else:
        gw = xp.matmul(g_t, cols_t.transpose(0, 2, 1))
    return gw.reshape(o, cg, kh, kw)


def flipped_transposed(w4, groups):
    """The weight of the adjoint correlation: (O, C/G, kh, kw) -> (C, O/G, kh, kw), each group's channel
    roles swapped and the kernel rotated by 180 degrees."""
    o, cg, kh, kw = w4.shape
    w5 = w4.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return backend.array_module(w4).ascontiguousarray(w5).reshape(groups * cg, o // groups, kh, kw)


def conv_input_grad(g4, w4, groups, pads, stride, dilation, in_hw):
    """dX (N, C, H, W) of ``conv_forward`` given the output gradient ``g4`` (N, O, Ho, Wo).

    Stride 1 (unless the output has many more channels than the input): the adjoint is itself a stride-1
    correlation of the gradient, padded by ``dilation * (k - 1) - pad`` (negative crops), with the
    flipped, channel-transposed kernel, so it reuses ``conv_forward``. Otherwise: one GEMM into column
    space, then col2im over kernel offsets.
    """
    n, o, ho, wo = g4.shape
    kh, kw = w4.shape[2:]
    (pt, pb), (pl, pr) = pads
    # The adjoint correlation's GEMM has only C_in rows; when the output has at least twice the channels
    # the column-space GEMM (9x more rows) plus col2im is the faster of the two.
    if stride == (1, 1) and o < 2 * w4.shape[1] * groups:
        eh, ew = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        adjoint_pads = ((eh - pt, eh - pb), (ew - pl, ew - pr))
        return conv_forward(g4, flipped_transposed(w4, groups), groups, adjoint_pads, (1, 1), dilation)
    w2 = w4.reshape(groups, o // groups, w4.shape[1] * kh * kw)
    hp, wp = in_hw[0] + pt + pb, in_hw[1] + pl + pr
    if stride == (1, 1):
        # Column space in wide rows: the gradient's junk columns are zero, so each kernel offset adds one
        # contiguous run per plane instead of ``Ho`` short rows.
        xp = backend.array_module(g4)
        if wp == wo:
            g_wide = g4
        else:
            g_wide = scratch("wide", (n, o, ho, wp), g4.dtype, xp)
            g_wide[:, :, :, wo:] = 0
            g_wide[:, :, :, :wo] = g4
        cols = _gemm_input_cols(g_wide, w2, groups)
        c = cols.shape[1] // (kh * kw)
        cols = cols.reshape(n, c, kh, kw, ho * wp)
        extra = 1 if kw > 1 else 0
        flat = xp.zeros((n, c, (hp + extra) * wp), g4.dtype)
        for i in range(kh):
            for j in range(kw):
                start = i * dilation[0] * wp + j * dilation[1]
                flat[:, :, start:start + ho * wp] += cols[:, :, i, j]
        return unpad2d(flat.reshape(n, c, hp + extra, wp)[:, :, :hp], pads)
    cols = _gemm_input_cols(g4, w2, groups)
    return unpad2d(col2im(cols, (hp, wp), (kh, kw), stride, dilation, (ho, wo)), pads)


def _gemm_input_cols(g, w2, groups):
    """Column-space gradient (N, G*K, L): the transposed weight (G, K, O/G) times the output gradient."""
    xp = backend.array_module(g)
    n, o = g.shape[:2]
    ell = g.shape[2] * g.shape[3]
    g3 = g.reshape(n, o, ell)
    if groups == 1:
        return xp.matmul(w2[0].T, g3)
    cols = xp.matmul(w2.transpose(0, 2, 1), g3.reshape(n, groups, o // groups, ell))
    return cols.reshape(n, groups * w2.shape[2], ell)


def _check_dtypes(op, x, w, b):
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        got = f"input {x.dtype}, weight {w.dtype}" + ("" if b is None else f", bias {b.dtype}")
        raise TypeError(f"{op}: input, weight and bias must have the same floating dtype, got {got}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


def _as_4d(x, w, spatial):
    """Views of a 1-d problem as 2-d: (N, C, L) -> (N, C, 1, L) and (O, C, k) -> (O, C, 1, k)."""
    if spatial == 1:
        return x[:, :, None, :], w[:, :, None, :]
    return x, w


def _contiguous(a):
    return a if a.flags.c_contiguous else backend.array_module(a).ascontiguousarray(a)


# --------------------------------------------------------------------------- convolution
class ConvNd(Function):
    """Cross-correlation of ``x`` (N, C, [H,] W) with ``weight`` (O, C/groups, [kh,] kw), plus bias.

    ``stride``/``dilation`` are 2-tuples and ``pads`` is ``((top, bottom), (left, right))`` in 2-d terms.
    Only the input and weight are saved; backward rebuilds the windows it needs.
    """

    def forward(ctx, x, weight, bias, stride, pads, dilation, groups):
        spatial = x.ndim - 2
        ctx.x_shape, ctx.w_shape, ctx.spatial = x.shape, weight.shape, spatial
        x4, w4 = _as_4d(x, weight, spatial)
        out = conv_forward(x4, w4, groups, pads, stride, dilation)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        ctx.geometry = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return out if spatial == 2 else out.reshape(out.shape[0], out.shape[1], out.shape[3])

    def backward(ctx, grad):
        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        x4, w4 = _as_4d(x, weight, ctx.spatial)
        g = _contiguous(grad if ctx.spatial == 2 else grad[:, :, None, :])
        gx = gw = gb = None
        if needs_grad(ctx, 1):
            gw = conv_weight_grad(g, x4, groups, pads, stride, dilation, w4.shape[2:]).reshape(ctx.w_shape)
        if needs_grad(ctx, 0):
            gx = conv_input_grad(g, w4, groups, pads, stride, dilation, x4.shape[2:]).reshape(ctx.x_shape)
        if ctx.has_bias and needs_grad(ctx, 2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb


class ConvTransposeNd(Function):
    """Transposed convolution: the input gradient of the convolution that maps its output back to ``x``.

    ``x`` (N, C_in, [H,] W), ``weight`` (C_in, C_out/groups, [kh,] kw). ``pads`` are that convolution's
    ``((top, bottom), (left, right))`` padding: ``padding`` on top/left and ``padding - output_padding``
    on bottom/right (negative when the output is longer than the padded input).
    """

    def forward(ctx, x, weight, bias, stride, pads, dilation, groups, out_hw):
        spatial = x.ndim - 2
        ctx.x_shape, ctx.w_shape, ctx.spatial = x.shape, weight.shape, spatial
        x4, w4 = _as_4d(x, weight, spatial)
        out = conv_input_grad(_contiguous(x4), w4, groups, pads, stride, dilation, out_hw)
        out = _contiguous(out)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        ctx.geometry = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return out if spatial == 2 else out.reshape(out.shape[0], out.shape[1], out.shape[3])

    def backward(ctx, grad):
        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        x4, w4 = _as_4d(x, weight, ctx.spatial)
        g = grad if ctx.spatial == 2 else grad[:, :, None, :]
        gx = gw = gb = None
        if needs_grad(ctx, 0):
            gx = conv_forward(g, w4, groups, pads, stride, dilation).reshape(ctx.x_shape)
        if needs_grad(ctx, 1):
            # In the underlying convolution x is the output gradient and ours is its input.
            gw = conv_weight_grad(_contiguous(x4), g, groups, pads, stride, dilation, w4.shape[2:])
            gw = gw.reshape(ctx.w_shape)
        if ctx.has_bias and needs_grad(ctx, 2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _check_conv_args(op, spatial, input, weight, bias, groups, transposed=False):
    """Validate shapes for conv ops; returns (x, batched) where an unbatched input gains a batch dim."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    dims = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    x_nd = input.data.ndim
    if x_nd not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input "
                         f"of shape {dims}, got shape {tuple(input.shape)}")
    if weight.data.ndim != spatial + 2:
        kdims = "(O, C/groups, k)" if spatial == 1 else "(O, C/groups, kh, kw)"
        if transposed:
            kdims = "(C_in, C_out/groups, k)" if spatial == 1 else "(C_in, C_out/groups, kh, kw)"
        raise ValueError(f"{op}: expected a {spatial + 2}-D weight of shape {kdims}, got shape {tuple(weight.shape)}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c = input.shape[0] if x_nd == spatial + 1 else input.shape[1]
    if transposed:
        if weight.shape[0] != c:
            raise ValueError(f"{op}: input has {c} channels (shape {tuple(input.shape)}) but the weight of shape "
                             f"{tuple(weight.shape)} expects {weight.shape[0]} (weight.shape[0])")
        if c % groups:
            raise ValueError(f"{op}: input channels {c} are not divisible by groups={groups}")
        n_out = weight.shape[1] * groups
    else:
        if weight.shape[1] * groups != c:
            raise ValueError(f"{op}: input has {c} channels (shape {tuple(input.shape)}) but the weight of shape "
                             f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups} "
                             f"(weight.shape[1] * groups)")
        if weight.shape[0] % groups:
            raise ValueError(f"{op}: out channels {weight.shape[0]} (weight shape {tuple(weight.shape)}) are not "
                             f"divisible by groups={groups}")
        n_out = weight.shape[0]
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{op}: bias must be a Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (n_out,):
            raise ValueError(f"{op}: bias must have shape ({n_out},) to match {n_out} output channels, got "
                             f"{tuple(bias.shape)}")
    _check_dtypes(op, input.data, weight.data, None if bias is None else bias.data)
    return x_nd == spatial + 2


def _with_batch(fn, input, batched):
    """Run ``fn`` on ``input``, giving an unbatched input a batch dimension of 1 and removing it after."""
    if batched:
        return fn(input)
    return fn(input.unsqueeze(0)).squeeze(0)


def conv_padding(padding, kernel, dilation, stride, op):
    """PyTorch's ``padding`` (int, tuple, 'same' or 'valid') as ``((lo, hi), ...)`` per spatial dim."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in range(n))
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    p = _tuple(padding, n, "padding", op)
    if any(v < 0 for v in p):
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    return tuple((v, v) for v in p)


def _to_2d(values, spatial, fill):
    return values if spatial == 2 else (fill,) + tuple(values)


def _conv(op, spatial, input, weight, bias, stride, padding, dilation, groups):
    batched = _check_conv_args(op, spatial, input, weight, bias, groups)
    kernel = tuple(weight.shape[2:])
    stride = _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, spatial, "dilation", op), "dilation", op)
    pads = conv_padding(padding, kernel, dilation, stride, op)
    in_size = input.shape[-spatial:]
    for size, (lo, hi), k, d in zip(in_size, pads, kernel, dilation):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"{op}: the (dilated) kernel of size {d * (k - 1) + 1} is larger than the padded input "
                             f"of size {size + lo + hi} (input shape {tuple(input.shape)}, weight shape "
                             f"{tuple(weight.shape)}, padding {pads})")
    args = (_to_2d(stride, spatial, 1), _to_2d(pads, spatial, (0, 0)), _to_2d(dilation, spatial, 1), int(groups))
    return _with_batch(lambda x: ConvNd.apply(x, weight, bias, *args), input, batched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d cross-correlation: ``(N, C_in, L)`` with weight ``(C_out, C_in/groups, k)`` -> ``(N, C_out, L_out)``.

    ``padding`` is an int, a 1-tuple, 'valid' or 'same' (stride 1 only). An unbatched ``(C_in, L)`` input
    gives ``(C_out, L_out)``.
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d cross-correlation: ``(N, C_in, H, W)`` with weight ``(C_out, C_in/groups, kh, kw)`` ->
    ``(N, C_out, H_out, W_out)`` where ``H_out = (H + 2*pad - dilation*(kh-1) - 1) // stride + 1``.

    ``padding`` is an int, a pair, 'valid' or 'same' (stride 1 only; extra padding goes bottom/right as in
    PyTorch). ``groups=C_in`` is a depthwise convolution. An unbatched ``(C_in, H, W)`` input is accepted.

    >>> y = conv2d(x, w, b, stride=2, padding=1)   # x (8, 3, 32, 32), w (16, 3, 3, 3) -> y (8, 16, 16, 16)
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def transposed_padding(in_size, kernel, stride, padding, output_padding, dilation, op):
    """Per-dim ``(lo, hi)`` crop of the full transposed-conv output and the resulting output size."""
    pads, sizes = [], []
    for n, k, s, p, op_, d in zip(in_size, kernel, stride, padding, output_padding, dilation):
        if op_ >= max(s, d) or op_ < 0:
            raise ValueError(f"{op}: output_padding {op_} must be non-negative and smaller than either stride {s} "
                             f"or dilation {d}")
        full = (n - 1) * s + d * (k - 1) + 1
        out = full - 2 * p + op_
        if out <= 0:
            raise ValueError(f"{op}: input size {n} with kernel {k}, stride {s}, padding {p} and dilation {d} gives a "
                             f"non-positive output size {out}")
        pads.append((p, p - op_))
        sizes.append(out)
    return tuple(pads), tuple(sizes)


def _conv_transpose(op, spatial, input, weight, bias, stride, padding, output_padding, groups, dilation,
                    output_size=None):
    batched = _check_conv_args(op, spatial, input, weight, bias, groups, transposed=True)
    kernel = tuple(weight.shape[2:])
    stride = _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, spatial, "dilation", op), "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (strings are not supported for "
                         f"transposed convolutions), got {padding!r}")
    padding = _tuple(padding, spatial, "padding", op)
    if any(v < 0 for v in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    in_size = tuple(input.shape[-spatial:])
    if output_size is not None:
        output_padding = output_padding_for(output_size, in_size, kernel, stride, padding, dilation, op)
    output_padding = _tuple(output_padding, spatial, "output_padding", op)
    pads, out_size = transposed_padding(in_size, kernel, stride, padding, output_padding, dilation, op)
    args = (_to_2d(stride, spatial, 1), _to_2d(pads, spatial, (0, 0)), _to_2d(dilation, spatial, 1), int(groups),
            _to_2d(out_size, spatial, 1))
    return _with_batch(lambda x: ConvTransposeNd.apply(x, weight, bias, *args), input, batched)


def output_padding_for(output_size, in_size, kernel, stride, padding, dilation, op):
    """The ``output_padding`` that makes a transposed convolution produce ``output_size`` (PyTorch's rule)."""
    spatial = len(in_size)
    size = tuple(int(s) for s in output_size)
    if len(size) == spatial + 2:
        size = size[2:]
    elif len(size) == spatial + 1:
        size = size[1:]
    if len(size) != spatial:
        raise ValueError(f"{op}: output_size must have {spatial} or {spatial + 2} elements, got {tuple(output_size)}")
    result = []
    for want, n, k, s, p, d in zip(size, in_size, kernel, stride, padding, dilation):
        smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
        if not smallest <= want < smallest + s:
            raise ValueError(f"{op}: requested output size {want} is not reachable from input size {n}; valid sizes "
                             f"are {smallest} to {smallest + s - 1}")
        result.append(want - smallest)
    return tuple(result)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-d transposed convolution: ``(N, C_in, L)`` with weight ``(C_in, C_out/groups, k)`` ->
    ``(N, C_out, (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1)``."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution ("deconvolution"), the gradient of ``conv2d`` with respect to its input:
    ``(N, C_in, H, W)`` with weight ``(C_in, C_out/groups, kh, kw)`` -> ``(N, C_out, H_out, W_out)`` where
    ``H_out = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1``.

    >>> y = conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)  # (4, 16, 8, 8) -> (4, C_out, 16, 16)
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# --------------------------------------------------------------------------- unfold / fold
class Unfold(Function):
    """im2col as an op: (N, C, H, W) -> (N, C * kh * kw, L)."""

    def forward(ctx, x, kernel, stride, pads, dilation):
        n, c, h, w = x.shape
        (pt, pb), (pl, pr) = pads
        out_hw = (_out_size(h, pt, pb, kernel[0], stride[0], dilation[0]),
                  _out_size(w, pl, pr, kernel[1], stride[1], dilation[1]))
        ctx.geometry = (kernel, stride, pads, dilation, out_hw, (h + pt + pb, w + pl + pr))
        cols = im2col(pad2d(x, pads), kernel, stride, dilation, out_hw)
        # The 1x1 case is a view of the input; an op's result must own its memory.
        return cols.copy() if backend.array_module(x).shares_memory(cols, x) else cols

    def backward(ctx, grad):
        kernel, stride, pads, dilation, out_hw, padded = ctx.geometry
        return unpad2d(col2im(grad, padded, kernel, stride, dilation, out_hw), pads)


class Fold(Function):
    """col2im as an op: (N, C * kh * kw, L) -> (N, C, H, W), summing overlapping values."""

    def forward(ctx, cols, output_size, kernel, stride, pads, dilation):
        (pt, pb), (pl, pr) = pads
        h, w = output_size
        out_hw = (_out_size(h, pt, pb, kernel[0], stride[0], dilation[0]),
                  _out_size(w, pl, pr, kernel[1], stride[1], dilation[1]))
        ctx.geometry = (kernel, stride, pads, dilation, out_hw)
        out = col2im(cols, (h + pt + pb, w + pl + pr), kernel, stride, dilation, out_hw)
        out = unpad2d(out, pads)
        return backend.array_module(out).ascontiguousarray(out)

    def backward(ctx, grad):
        kernel, stride, pads, dilation, out_hw = ctx.geometry
        return im2col(pad2d(grad, pads), kernel, stride, dilation, out_hw)


def _fold_args(op, kernel_size, dilation, padding, stride):
    kernel = _positive(_tuple(kernel_size, 2, "kernel_size", op), "kernel_size", op)
    dilation = _positive(_tuple(dilation, 2, "dilation", op), "dilation", op)
    stride = _positive(_tuple(stride, 2, "stride", op), "stride", op)
    padding = _tuple(padding, 2, "padding", op)
    if any(v < 0 for v in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return kernel, dilation, tuple((p, p) for p in padding), stride


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding local blocks: ``(N, C, H, W) -> (N, C * kh * kw, L)`` with ``L`` the number of blocks
    (PyTorch's ``F.unfold``, also known as im2col)."""
    kernel, dilation, pads, stride = _fold_args("unfold", kernel_size, dilation, padding, stride)
    if not isinstance(input, Tensor) or input.data.ndim not in (3, 4):
        raise ValueError(f"unfold: expected a 3-D (unbatched) or 4-D input of shape (N, C, H, W), got "
                         f"{tuple(np.shape(input))}")
    batched = input.data.ndim == 4
    for size, (lo, hi), k, d in zip(input.shape[-2:], pads, kernel, dilation):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"unfold: the (dilated) kernel {kernel} does not fit the padded input (input shape "
                             f"{tuple(input.shape)}, padding {padding})")
    return _with_batch(lambda x: Unfold.apply(x, kernel, stride, pads, dilation), input, batched)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding local blocks into an image, summing overlaps: ``(N, C * kh * kw, L) ->
    (N, C, *output_size)`` (PyTorch's ``F.fold``, col2im; the adjoint of ``unfold``)."""
    kernel, dilation, pads, stride = _fold_args("fold", kernel_size, dilation, padding, stride)
    output_size = _tuple(output_size, 2, "output_size", "fold")
    if not isinstance(input, Tensor) or input.data.ndim not in (2, 3):
        raise ValueError(f"fold: expected a 2-D (unbatched) or 3-D input of shape (N, C * kh * kw, L), got "
                         f"{tuple(np.shape(input))}")
    batched = input.data.ndim == 3
    kk = kernel[0] * kernel[1]
    ckk, ell = input.shape[-2:]
    blocks = 1
    for size, (lo, hi), k, d, s in zip(output_size, pads, kernel, dilation, stride):
        blocks *= _out_size(size, lo, hi, k, s, d)
    if ckk % kk or ell != blocks:
        raise ValueError(f"fold: input of shape {tuple(input.shape)} does not match kernel {kernel} and output size "
                         f"{output_size}: expected dim -2 divisible by {kk} and {blocks} blocks in dim -1")
    return _with_batch(lambda x: Fold.apply(x, output_size, kernel, stride, pads, dilation), input, batched)
