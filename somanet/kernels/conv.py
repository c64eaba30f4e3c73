"""Fast convolution kernels: window GEMMs sized for OpenBLAS, Winograd, cache blocks and batch threads.

The math of a convolution (and the plain im2col reference) is in ``ops/conv.py``; this module computes
the same results faster and registers three kernels of ``conv2d`` with the chooser:

- ``"gemm"``: ``kw_columns`` copies the ``kw`` column shifts of the padded input (not im2col's ``kh * kw``)
  and each image takes one GEMM per kernel row, small enough for OpenBLAS's unpacked kernels, written
  straight into ``(N, O, Ho, Wo)``; 1x1 kernels are one GEMM on the input itself and planes of at most
  32 pixels take one GEMM over the whole batch. Its input gradient is, at stride 1, the forward kernel
  again (the adjoint of a correlation is a correlation with the flipped, channel-transposed weight), else
  one GEMM per kernel row into column space added into the image's stride phases. Its weight gradient
  has four layouts, the ``conv2d_weight_grad`` kernels (``choose_weight_grad``).
- ``"winograd_f2"``, ``"winograd_f4"``: Winograd F(2x2, 3x3) and F(4x4, 3x3) (``kernels/winograd.py``)
  for 3x3 stride-1 convolutions with many channels: fewer multiplications per output.

Every pass runs over blocks of images whose buffers fit in cache (``CACHE_BLOCK_BYTES``), and with
several threads the batch is split into one block per thread (``threads.split_batch``). Big temporaries
live in per-thread scratch buffers (``kernels/workspace.py``). Backward rebuilds the windows instead of
saving them: keeping every layer's column buffers would multiply a network's memory.
"""
import contextlib

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import backend
from ..ops._windows import contiguous_copy, out_size, pad2d, phase_shape, unpad2d, windows, from_phases
from . import _select, conv_im2col, threads, winograd
from .blas import SMALL_GEMM, SMALL_GEMM_OUT
from .workspace import allocator, scratch

__all__ = ["conv_forward", "conv_input_grad", "conv_weight_grad", "choose", "choose_weight_grad",
           "forward_in_blocks", "input_grad_in_blocks", "weight_grad_in_blocks", "winograd_backward"]


def im2col_t(xp, kernel, stride, dilation, out_hw, slot=None):
    """The im2col buffer laid out ``(C * kh * kw, N * Ho * Wo)``: the batch joins the GEMM's inner dimension."""
    n, c, hp, wp = xp.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    view = windows(xp, kernel, stride, dilation, out_hw, order="ckn")
    return contiguous_copy(view, allocator(slot) if slot else None).reshape(c * kh * kw, n * ho * wo)


def phases_to_image(phases, pads, in_hw, stride):
    """The (fresh) unpadded image ``(N, C, H, W)`` from the stride phases of its padded form: the same as
    ``unpad2d(from_phases(...), pads)`` without building the padded image first."""
    if min(p for pair in pads for p in pair) < 0:
        padded = tuple(phases.shape[2:4]) + (in_hw[0] + sum(pads[0]), in_hw[1] + sum(pads[1]))
        return unpad2d(from_phases(phases, padded, stride), pads)
    xp = backend.array_module(phases)
    (pt, _), (pl, _) = pads
    (sh, sw), (h, w) = stride, in_hw
    out = xp.empty(phases.shape[2:4] + (h, w), phases.dtype)
    for a in range(sh):
        y0 = (a - pt) % sh
        q0, ny = (y0 + pt) // sh, len(range(y0, h, sh))
        for b in range(sw):
            x0 = (b - pl) % sw
            r0, nx = (x0 + pl) // sw, len(range(x0, w, sw))
            out[:, :, y0::sh, x0::sw] = phases[a, b, :, :, q0:q0 + ny, r0:r0 + nx]
    return out


# A GEMM needs rows at evenly spaced addresses. Copying only the ``kw`` column shifts of the input gives
# that for one kernel *row*, so a convolution is ``kh`` GEMMs over a buffer ``kw`` times the input instead
# of im2col's ``kh * kw``; the buffers stay in cache and the per-image GEMMs stay under ``SMALL_GEMM``.
def kw_columns(x4, pads, kernel, stride, dilation, out_hw, slot="cols", ones=False):
    """The ``kw`` column-shifted copies of the padded input, in scratch memory: an array ``rows`` of shape
    ``(N, C * kw [+ 1], sh * Hq * Wo)`` with ``rows[n, c * kw + j].reshape(sh, Hq, Wo)[a, q, w] ==
    padded[n, c, q * sh + a, w * sw + j * dw]`` (the rows of the padded image split into their ``sh``
    stride phases). Kernel row ``i`` reads ``rows[:, :, off:off + Ho * Wo]`` with ``off =
    kernel_row_offset(i, ...)``. With ``ones`` a last row of ones is added (a fused bias). Padding is
    written as zeros here; the padded image itself is never built. Returns ``(rows, Hq)``.
    """
    xp = backend.array_module(x4)
    n, c, h, w = x4.shape
    (pt, pb), (pl, pr) = pads
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    hq = -(-(h + pt + pb) // sh)
    rows = scratch(slot, (n, c * kw + (1 if ones else 0), sh * hq * wo), x4.dtype, xp)
    # Splitting axes of a slice never copies, so writes through ``planes`` land in ``rows``.
    planes = rows[:, :c * kw].reshape(n, c, kw, sh, hq, wo)
    if (sh, sw) == (1, 1) and w == wo and pt >= 0 and pb >= 0:
        _shifted_planes(x4, rows[:, :c * kw].reshape(n, c, kw, hq * wo), planes, pt, pl, dw)
    else:
        for j in range(kw):
            w_lo = max(0, -(-(pl - j * dw) // sw))
            w_hi = min(wo, (w - 1 + pl - j * dw) // sw + 1)
            for a in range(sh):
                dst = planes[:, :, j, a]
                q_lo = max(0, -(-(pt - a) // sh))
                q_hi = min(hq, (h - 1 + pt - a) // sh + 1)
                if q_lo >= q_hi or w_lo >= w_hi:
                    dst[...] = 0
                    continue
                if q_lo:
                    dst[:, :, :q_lo] = 0
                if q_hi < hq:
                    dst[:, :, q_hi:] = 0
                if w_lo:
                    dst[:, :, q_lo:q_hi, :w_lo] = 0
                if w_hi < wo:
                    dst[:, :, q_lo:q_hi, w_hi:] = 0
                h0, w0 = q_lo * sh + a - pt, w_lo * sw + j * dw - pl
                dst[:, :, q_lo:q_hi, w_lo:w_hi] = x4[:, :, h0:h0 + (q_hi - q_lo - 1) * sh + 1:sh,
                                                     w0:w0 + (w_hi - w_lo - 1) * sw + 1:sw]
    if ones:
        rows[:, c * kw] = 1
    return rows, hq


def _shifted_planes(x4, flat_rows, planes, pt, pl, dw):
    """``kw_columns`` of a stride-1 convolution that keeps the width: each column shift of a plane is the
    flat plane moved by ``j * dw - pl`` elements (one long contiguous copy per plane rather than one
    short copy per image row), with the rows above and below and the columns that slid in zeroed."""
    n, c, h, w = x4.shape
    flat = x4.reshape(n, c, h * w)
    hw, top = h * w, pt * w
    for j in range(flat_rows.shape[2]):
        dst = flat_rows[:, :, j]
        shift = j * dw - pl
        if abs(shift) >= w:
            dst[...] = 0
            continue
        dst[:, :, :top] = 0
        dst[:, :, top + hw:] = 0
        if shift >= 0:
            dst[:, :, top:top + hw - shift] = flat[:, :, shift:]
            if shift:
                planes[:, :, j, 0, pt:pt + h, w - shift:] = 0
        else:
            dst[:, :, top - shift:top + hw] = flat[:, :, :hw + shift]
            planes[:, :, j, 0, pt:pt + h, :-shift] = 0


def kw_columns_size(x4, pads, kw, stride, wo):
    """Elements per image of the ``kw_columns`` buffer (without the row of ones)."""
    hq = -(-(x4.shape[2] + pads[0][0] + pads[0][1]) // stride[0])
    return x4.shape[1] * kw * stride[0] * hq * wo


def kernel_row_offset(i, stride, dilation, hq, wo):
    """Where kernel row ``i``'s first output row starts inside a ``kw_columns`` row (phase, then row)."""
    r = i * dilation[0]
    return ((r % stride[0]) * hq + r // stride[0]) * wo


def _kernel_rows(w4, groups):
    """The weight split by kernel row: (O, C/G, kh, kw) -> (kh, G, O/G, C/G * kw), matching the rows
    ``(c, j)`` of ``kw_columns``."""
    o, cg, kh, kw = w4.shape
    w6 = w4.reshape(groups, o // groups, cg, kh, kw).transpose(3, 0, 1, 2, 4)
    return backend.array_module(w4).ascontiguousarray(w6).reshape(kh, groups, o // groups, cg * kw)


def _grouped_matmul(w, cols, groups, out=None, chunks=1, row_blocks=1):
    """``w`` (G, O/G, K) times ``cols`` (N, G*K, L) -> (N, O, L): per image, per group, one GEMM, or per
    ``chunks`` equal column blocks of it, or (one group) per ``row_blocks`` equal row blocks of the weight
    (still one ``matmul`` call)."""
    xp = backend.array_module(cols)
    n, _, ell = cols.shape
    og, k = w.shape[1], w.shape[2]
    if row_blocks > 1:
        if out is None:
            out = xp.empty((n, og, ell), cols.dtype)
        rb = og // row_blocks
        xp.matmul(w[0].reshape(row_blocks, rb, k), cols[:, None], out=out.reshape(n, row_blocks, rb, ell))
        return out
    if chunks == 1:
        if groups == 1:
            return xp.matmul(w[0], cols, out=out)
        res = xp.matmul(w, cols.reshape(n, groups, k, ell),
                        out=None if out is None else out.reshape(n, groups, og, ell))
        return res.reshape(n, groups * og, ell)
    if out is None:
        out = xp.empty((n, groups * og, ell), cols.dtype)
    lq = ell // chunks
    xp.matmul(w[:, None], cols.reshape(n, groups, k, chunks, lq).transpose(0, 1, 3, 2, 4),
              out=out.reshape(n, groups, og, chunks, lq).transpose(0, 1, 3, 2, 4))
    return out


def _column_chunks(og, k, ell):
    """How many equal column blocks bring a per-image GEMM (``og x k x ell``) within OpenBLAS's unpacked
    small-matrix kernels; 1 when none of at least 64
    columns does."""
    if og * k * ell <= SMALL_GEMM:
        return 1
    for chunks in range(2, ell // 64 + 1):
        if ell % chunks == 0 and og * k * (ell // chunks) <= SMALL_GEMM:
            return chunks
    return 1


def _gemm_blocks(og, k, ell, groups):
    """``(chunks, row_blocks)`` for ``_grouped_matmul``: column chunks when some bring the per-image GEMM
    within the unpacked kernels, else (one group) row blocks of the weight of at least 8 rows that do
    (a stride-2 layer's 128 x 192 x 64 product is faster in two row blocks)."""
    chunks = _column_chunks(og, k, ell)
    if chunks > 1 or groups > 1 or og * k * ell <= SMALL_GEMM:
        return chunks, 1
    for blocks in range(2, og // 8 + 1):
        if og % blocks == 0 and (og // blocks) * k * ell <= SMALL_GEMM:
            return 1, blocks
    return 1, 1


# Planes this small make per-image GEMMs too thin: one GEMM over the whole batch instead.
_FOLD_PIXELS = 32

# Window buffers written for a whole batch fall out of cache before the GEMMs read them: run passes over
# blocks of images whose buffers fit this many bytes.
CACHE_BLOCK_BYTES = 6 * 2 ** 20


def _cache_ranges(xp, n, per_image):
    """Consecutive ``(lo, hi)`` batch ranges, as few as keep ``per_image`` bytes per image within
    ``CACHE_BLOCK_BYTES`` (one range for a whole batch that fits, or off NumPy); at least one image each."""
    if xp is not np:
        return [(0, n)]
    per_block = max(1, CACHE_BLOCK_BYTES // max(per_image, 1))
    return threads.batch_ranges(n, max(1, -(-n // per_block)))


#: Most bytes of transformed-weight reads per byte of activations that Winograd's cache blocks may cost.
WINOGRAD_WEIGHT_READS = 0.25


def _winograd_ranges(x4, u, pads, backward=False):
    """``_cache_ranges`` for a Winograd pass over ``x4`` with the transformed weight ``u`` (P, O, C).

    Every block reads the whole of ``u`` again, so the blocks are also kept few enough that those reads
    stay within ``WINOGRAD_WEIGHT_READS`` of the activations' bytes (a big transformed weight re-read per
    block costs more than the blocks save).
    """
    n, c, h, w = x4.shape
    p, o = u.shape[:2]
    m = int(round(p ** 0.5)) - 2
    th, tw = winograd.tiles((h, w), pads, m)
    ho, wo = h + sum(pads[0]) - 2, w + sum(pads[1]) - 2
    # Forward: the input and its transform, the product and the output; backward adds the transform's
    # gradient and the input gradient.
    elems = p * th * tw * (c + o) + c * h * w + o * ho * wo
    if backward:
        elems += p * th * tw * c + c * h * w
    per_image = x4.itemsize * elems
    ranges = _cache_ranges(np, n, per_image)
    most = max(1, int(n * per_image * WINOGRAD_WEIGHT_READS // u.nbytes))
    if len(ranges) > most:
        ranges = threads.batch_ranges(n, most)
    return ranges


def _winograd_forward(x4, u, bias, pads, out):
    """``winograd.forward`` over the cache blocks of the batch."""
    for lo, hi in _winograd_ranges(x4, u, pads):
        winograd.forward(x4[lo:hi], u, bias, pads, out[lo:hi])
    return out


def _winograd_backward(g4, x4, u, pads, gx, need_w):
    """``winograd.backward`` over the cache blocks of the batch (their weight-transform gradients summed)."""
    parts = [winograd.backward(g4[lo:hi], x4[lo:hi], u, pads, None if gx is None else gx[lo:hi], need_w)
             for lo, hi in _winograd_ranges(x4, u, pads, backward=True)]
    return _summed(parts) if need_w else None


def _conv_forward_folded(x4, w4, groups, pads, stride, dilation, bias, out_hw, out=None):
    """``conv_forward`` for small output planes: the windows copied ``(C*kh*kw, N*Ho*Wo)`` (the batch inside
    the GEMM's columns), one GEMM per group, and the ``(O, N, Ho*Wo)`` result transposed into a fresh
    ``(N, O, Ho, Wo)``."""
    xp = backend.array_module(x4)
    n = x4.shape[0]
    o, cg, kh, kw = w4.shape
    ell = out_hw[0] * out_hw[1]
    cols_t = im2col_t(pad2d(x4, pads, empty=allocator("pad")), (kh, kw), stride, dilation, out_hw, slot="cols")
    out_t = xp.matmul(w4.reshape(groups, o // groups, cg * kh * kw), cols_t.reshape(groups, cg * kh * kw, n * ell),
                      out=scratch("part", (groups, o // groups, n * ell), x4.dtype, xp))
    if out is None:
        out = xp.empty((n, o) + tuple(out_hw), x4.dtype)
    out.reshape(n, o, ell)[...] = out_t.reshape(o, n, ell).transpose(1, 0, 2)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def conv_forward(x4, w4, groups, pads, stride, dilation, bias=None, out=None, tile=0):
    """Cross-correlation of ``x4`` (N, C, H, W) with ``w4`` (O, C/G, kh, kw), plus ``bias`` (O,) when
    given -> (N, O, Ho, Wo), a fresh array or ``out`` (C-contiguous, of that shape) when given. With
    ``tile`` (2 or 4) it runs Winograd F(tile x tile, 3x3) instead.

    One GEMM per image and kernel row over ``kw_columns``; the ``kh`` partial products are summed. A
    bias rides in the first GEMM as an extra weight column against a row of ones (no extra pass).
    """
    xp = backend.array_module(x4)
    n, c, h, w = x4.shape
    o, cg, kh, kw = w4.shape
    (pt, pb), (pl, pr) = pads
    ho = out_size(h, pt, pb, kh, stride[0], dilation[0])
    wo = out_size(w, pl, pr, kw, stride[1], dilation[1])
    if tile:
        out = xp.empty((n, o, ho, wo), x4.dtype) if out is None else out
        return _winograd_forward(x4, winograd.weight_transform(w4, tile), bias, pads, out)
    ell = ho * wo
    out3 = None if out is None else out.reshape(n, o, ell)
    if kh == kw == 1 and stride == (1, 1) and pads == ((0, 0), (0, 0)):
        out3 = _grouped_matmul(w4.reshape(groups, o // groups, cg), x4.reshape(n, c, ell), groups, out=out3)
        if bias is not None:
            out3 += bias.reshape(1, o, 1)
        return out3.reshape(n, o, ho, wo)
    if ell <= _FOLD_PIXELS:
        return _conv_forward_folded(x4, w4, groups, pads, stride, dilation, bias, (ho, wo), out=out)
    ranges = _cache_ranges(xp, n, x4.itemsize * (kw_columns_size(x4, pads, kw, stride, wo) + 2 * o * ell))
    if len(ranges) > 1:
        out = xp.empty((n, o, ho, wo), x4.dtype) if out is None else out
        for lo, hi in ranges:
            conv_forward(x4[lo:hi], w4, groups, pads, stride, dilation, bias, out=out[lo:hi])
        return out
    fuse = bias is not None and groups == 1
    rows, hq = kw_columns(x4, pads, (kh, kw), stride, dilation, (ho, wo), ones=fuse)
    w3 = _kernel_rows(w4, groups)
    k = c * kw
    chunks, row_blocks = _gemm_blocks(o // groups, cg * kw, ell, groups)
    out = None
    for i in range(kh):
        off = kernel_row_offset(i, stride, dilation, hq, wo)
        if out is None and fuse:
            w_first = xp.concatenate([w3[0, 0], bias.reshape(o, 1)], axis=1)
            out = _grouped_matmul(w_first[None], rows[:, :, off:off + ell], 1, out=out3, chunks=chunks,
                                  row_blocks=row_blocks)
        elif out is None:
            out = _grouped_matmul(w3[0], rows[:, :k, off:off + ell], groups, out=out3, chunks=chunks,
                                  row_blocks=row_blocks)
        else:
            part = _grouped_matmul(w3[i], rows[:, :k, off:off + ell], groups,
                                   out=scratch("part", (n, o, ell), x4.dtype, xp), chunks=chunks,
                                   row_blocks=row_blocks)
            out += part
    if bias is not None and not fuse:
        out += bias.reshape(1, o, 1)
    return out.reshape(n, o, ho, wo)


def _wide_padded(x4, pads, kernel):
    """``x4`` padded (in scratch memory), plus one spare bottom row when ``kw > 1``: the last wide window
    of a plane runs ``dw * (kw - 1)`` elements past the padded plane, and must stay inside it."""
    (pt, pb), (pl, pr) = pads
    return pad2d(x4, ((pt, pb + (1 if kernel[1] > 1 else 0)), (pl, pr)), empty=allocator("pad"))


def _wide_view(xq, kernel, dilation, ho, wp):
    """Stride-1 windows of the padded planes read as flat rows of length ``wp``, shaped
    ``(N, kh, kw, ho*wp, C)`` for multiplying on the right: window ``(i, j)`` of plane ``(n, c)`` is the
    contiguous run ``flat[n, c, i*dh*wp + j*dw : ... + ho*wp]``. Columns ``w >= wo`` of each row are
    junk, cancelled by zeros in the other operand."""
    n, c = xq.shape[:2]
    (kh, kw), (dh, dw) = kernel, dilation
    flat = xq.reshape(n, c, xq.shape[2] * xq.shape[3])
    s_n, s_c, s_e = flat.strides
    return as_strided(flat, (n, kh, kw, ho * wp, c), (s_n, dh * wp * s_e, dw * s_e, s_e, s_c), writeable=False)


#: Weight gradients of at least this many elements are computed as (O, C*kh*kw) products directly.
_TRANSPOSE_COPY_MAX = 1 << 19


def _weight_grad_dims(g4, x4, groups, kernel):
    """``(N, O, Ho, Wo, C/G, O/G, kh, kw)`` of a weight gradient from output gradient ``g4`` and input
    ``x4``."""
    n, o, ho, wo = g4.shape
    kh, kw = kernel
    return n, o, ho, wo, x4.shape[1] // groups, o // groups, kh, kw


def _weight_grad_wide(g4, x4, groups, pads, kernel, dilation):
    """Stride-1 dW from the read-only wide windows of the padded input: per image and kernel offset, the
    gradient (junk columns zeroed) times the window rows; the batch is summed after."""
    xp = backend.array_module(g4)
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    (pt, pb), (pl, pr) = pads
    wp = x4.shape[3] + pl + pr
    xq = _wide_padded(x4, pads, kernel)
    if wp == wo:
        g_wide = g4
    else:
        g_wide = scratch("wide", (n, o, ho, wp), g4.dtype, xp)
        g_wide[:, :, :, wo:] = 0
        g_wide[:, :, :, :wo] = g4
    view = _wide_view(xq, kernel, dilation, ho, wp)  # (N, kh, kw, L, C)
    # The gradient is returned C-contiguous (optimizers run several times slower on a transposed one);
    # summing the batch into a transposed output instead of copying after is slower.
    if groups == 1:
        parts = xp.matmul(g_wide.reshape(n, 1, 1, o, ho * wp), view)  # (N, kh, kw, O, C)
        return xp.ascontiguousarray(parts.sum(axis=0).transpose(2, 3, 0, 1))
    s = view.strides
    view = as_strided(view, (n, kh, kw, groups, ho * wp, cg), s[:3] + (cg * s[4], s[3], s[4]), writeable=False)
    parts = xp.matmul(g_wide.reshape(n, 1, 1, groups, og, ho * wp), view)  # (N, kh, kw, G, O/G, C/G)
    return xp.ascontiguousarray(parts.sum(axis=0).transpose(2, 3, 4, 0, 1)).reshape(o, cg, kh, kw)


def _weight_grad_rows(g4, x4, groups, pads, stride, dilation, kernel):
    """dW from ``kw_columns``: per image and kernel row, the gradient times the rows' transpose
    (``O/G x C/G*kw`` products); the batch is summed after."""
    xp = backend.array_module(g4)
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    ell = ho * wo
    rows, hq = kw_columns(x4, pads, kernel, stride, dilation, (ho, wo))
    g3 = g4.reshape(n, groups, og, ell)
    parts = scratch("part", (n, kh, groups, og, cg * kw), g4.dtype, xp)
    for i in range(kh):
        off = kernel_row_offset(i, stride, dilation, hq, wo)
        cols = rows[:, :, off:off + ell].reshape(n, groups, cg * kw, ell)
        xp.matmul(g3, cols.transpose(0, 1, 3, 2), out=parts[:, i])
    gw = parts.sum(axis=0).reshape(kh, groups, og, cg, kw)
    return xp.ascontiguousarray(gw.transpose(1, 2, 3, 0, 4)).reshape(o, cg, kh, kw)


def _weight_grad_batch(g4, x4, groups, pads, stride, dilation, kernel):
    """dW as one GEMM per kernel row whose inner dimension is the whole batch: the windows are copied as
    ``(C*kh*kw, N*Ho*Wo)`` (the batch inside) and the gradient transposed to match."""
    xp = backend.array_module(g4)
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    ell = ho * wo
    cols_t = im2col_t(pad2d(x4, pads, empty=allocator("pad")), kernel, stride, dilation, (ho, wo), slot="cols")
    cols_t = cols_t.reshape(groups, cg * kh * kw, n * ell)
    # (N, O, L) -> (O, N, L): the one copy that lets the whole batch be a single GEMM's inner dimension.
    g_t = contiguous_copy(g4.reshape(n, o, ell).transpose(1, 0, 2), allocator("gt")).reshape(groups, og, n * ell)
    if og * cg * kh * kw >= _TRANSPOSE_COPY_MAX:
        # Transposing a big (C*kh*kw, O) product costs more than its GEMM gains.
        return xp.matmul(g_t, cols_t.transpose(0, 2, 1)).reshape(o, cg, kh, kw)
    # (C*kh*kw x NL) times (NL x O) is the faster orientation for OpenBLAS here.
    gw = xp.matmul(cols_t, g_t.transpose(0, 2, 1))  # (G, C/G*kh*kw, O/G)
    return xp.ascontiguousarray(gw.transpose(0, 2, 1)).reshape(o, cg, kh, kw)


def _weight_grad_rows_nn(g4, x4, groups, pads, stride, dilation, kernel):
    """dW from ``kw_columns`` with the gradient transposed per image to ``(Ho*Wo, O)``: per image and
    kernel row, the rows times that (``C/G*kw x O/G`` products, both operands in the layout OpenBLAS's
    unpacked kernels take); the batch is summed after."""
    xp = backend.array_module(g4)
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    ell = ho * wo
    rows, hq = kw_columns(x4, pads, kernel, stride, dilation, (ho, wo))
    g_t = scratch("gt", (n, groups, ell, og), g4.dtype, xp)
    g_t[...] = g4.reshape(n, groups, og, ell).transpose(0, 1, 3, 2)
    parts = scratch("part", (n, kh, groups, cg * kw, og), g4.dtype, xp)
    for i in range(kh):
        off = kernel_row_offset(i, stride, dilation, hq, wo)
        xp.matmul(rows[:, :, off:off + ell].reshape(n, groups, cg * kw, ell), g_t, out=parts[:, i])
    gw = parts.sum(axis=0).reshape(kh, groups, cg, kw, og)
    return xp.ascontiguousarray(gw.transpose(1, 4, 2, 0, 3)).reshape(o, cg, kh, kw)


def choose_weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """The chooser of ``conv2d_weight_grad``: the weight-gradient layout for these shapes.

    The first three are per-image GEMMs small enough for OpenBLAS's unpacked kernels, summed over the
    batch after; each is the fastest on the layers where it is picked:

    - ``"wide"``: stride 1, about 16 channels: the gradient (junk columns zeroed) against the read-only
      wide windows of the padded input, per kernel offset, with no copy of the windows;
    - ``"rows_nn"``: ``C/G * kw`` of 16 or more: ``kw_columns`` rows against the gradient transposed to
      ``(Ho*Wo, O)``;
    - ``"rows"``: few input channels (first layers): the gradient against ``kw_columns`` rows;
    - ``"batch"``: otherwise (big per-image products): one GEMM whose inner dimension is the whole batch;
    - ``"im2col"`` (``kernels/conv_im2col.py``) before all of them when fewer images than threads leave
      the batch split short of threads: column blocks of output rows, split over the threads.
    """
    if backend.array_module(g4) is not np:
        return "reference"
    if conv_im2col.pays_weight_grad(g4, x4, groups, kernel):
        return "im2col"
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    wp = x4.shape[3] + pads[1][0] + pads[1][1]
    if stride == (1, 1) and cg >= 4 and og * cg <= 256 and og * cg * ho * wp <= SMALL_GEMM and ho * wo >= 128:
        return "wide"
    ell = ho * wo
    if cg * kw >= 16 and cg * kw * og * ell <= SMALL_GEMM:
        return "rows_nn"
    if og * cg * kw <= SMALL_GEMM_OUT:
        return "rows"
    return "batch"


def conv_weight_grad(g4, x4, groups, pads, stride, dilation, kernel, layout=None):
    """dW (O, C/G, kh, kw) of ``conv_forward`` given the output gradient ``g4`` (N, O, Ho, Wo), a fresh
    C-contiguous array, by ``layout`` (a name from ``choose_weight_grad``, which picks it when None); the
    batch runs in cache blocks."""
    if layout is None:
        layout = choose_weight_grad(g4, x4, groups, pads, stride, dilation, kernel)
    if layout == "wide":
        return _weight_grad_wide(g4, x4, groups, pads, kernel, dilation)
    n, o, ho, wo = g4.shape
    kh, kw = kernel
    ell = ho * wo
    if layout == "rows_nn":
        path, per_image = _weight_grad_rows_nn, kw_columns_size(x4, pads, kw, stride, wo) + 2 * o * ell
    elif layout == "rows":
        path, per_image = _weight_grad_rows, kw_columns_size(x4, pads, kw, stride, wo) + o * ell
    else:
        path, per_image = _weight_grad_batch, x4.shape[1] * kh * kw * ell + o * ell
    ranges = _cache_ranges(backend.array_module(g4), n, g4.itemsize * per_image)
    return _summed([path(g4[lo:hi], x4[lo:hi], groups, pads, stride, dilation, kernel) for lo, hi in ranges])


def flipped_transposed(w4, groups):
    """The weight of the adjoint correlation: (O, C/G, kh, kw) -> (C, O/G, kh, kw), each group's channel
    roles swapped and the kernel rotated by 180 degrees."""
    o, cg, kh, kw = w4.shape
    w5 = w4.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return backend.array_module(w4).ascontiguousarray(w5).reshape(groups * cg, o // groups, kh, kw)


def conv_input_grad(g4, w4, groups, pads, stride, dilation, in_hw, out=None):
    """dX (N, C, H, W) of ``conv_forward`` given the output gradient ``g4`` (N, O, Ho, Wo); written into
    ``out`` (C-contiguous) when given.

    Stride 1: the adjoint is itself a stride-1 correlation of the gradient, padded by
    ``dilation * (k - 1) - pad`` (negative crops), with the flipped, channel-transposed kernel, so it is
    ``conv_forward`` again. Otherwise (or when that padding would dwarf the gradient), per kernel row one
    GEMM into column space (``C*kw`` rows) whose ``kw`` slabs are added into the stride phases of the
    padded image (col2im by kernel offset).
    """
    xp = backend.array_module(g4)
    n, o, ho, wo = g4.shape
    kh, kw = w4.shape[2:]
    (pt, pb), (pl, pr) = pads
    eh, ew = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    # The adjoint reads the gradient padded by about the kernel size: cheap for "same" convolutions, but
    # mostly zeros for a valid convolution of a small plane (LeNet's 5x5 on 14x14), where column space wins,
    # unless the plane is small enough for the adjoint to be one GEMM over the whole batch.
    small = in_hw[0] * in_hw[1] <= _FOLD_PIXELS
    if stride == (1, 1) and (small or (ho + 2 * eh - pt - pb) * (wo + 2 * ew - pl - pr) <= 2 * ho * wo):
        adjoint_pads = ((eh - pt, eh - pb), (ew - pl, ew - pr))
        flipped = flipped_transposed(w4, groups)
        tile = _TILES.get(_select.choose("conv2d", g4, flipped, groups, adjoint_pads, (1, 1), dilation, False), 0)
        return conv_forward(g4, flipped, groups, adjoint_pads, (1, 1), dilation, out=out, tile=tile)
    cg, og = w4.shape[1], o // groups
    c = cg * groups
    hq, wq = phase_shape((in_hw[0] + pt + pb, in_hw[1] + pl + pr), stride)
    per_image = c * kw * ho * wq + stride[0] * stride[1] * c * (hq + 1) * wq + o * ho * wq
    ranges = _cache_ranges(xp, n, g4.itemsize * per_image)
    if len(ranges) > 1:
        out = xp.empty((n, c) + tuple(in_hw), g4.dtype) if out is None else out
        for lo, hi in ranges:
            conv_input_grad(g4[lo:hi], w4, groups, pads, stride, dilation, in_hw, out=out[lo:hi])
        return out
    # The gradient widened to the phase planes' row pitch (zero columns past Wo): each kernel offset then
    # adds one contiguous run per plane instead of Ho short rows. One spare row holds the last runs' tails.
    if wq == wo:
        g_wide = g4
    else:
        g_wide = scratch("wide", (n, o, ho, wq), g4.dtype, xp)
        g_wide[:, :, :, wo:] = 0
        g_wide[:, :, :, :wo] = g4
    span = ho * wq
    # (kh, G, C/G * kw, O/G): kernel row i's weight, transposed for the column-space GEMM.
    wt = xp.ascontiguousarray(w4.reshape(groups, og, cg, kh, kw).transpose(3, 0, 2, 4, 1))
    wt = wt.reshape(kh, groups, cg * kw, og)
    g3 = g_wide.reshape(n, groups, og, span)
    _, row_blocks = _gemm_blocks(cg * kw, og, span, groups)
    phases = xp.zeros(tuple(stride) + (n, c, (hq + 1) * wq), g4.dtype)
    for i in range(kh):
        cols = scratch("part", (n, groups, cg * kw, span), g4.dtype, xp)
        if row_blocks > 1:
            _grouped_matmul(wt[i], g3[:, 0], 1, out=cols[:, 0], row_blocks=row_blocks)
        else:
            xp.matmul(wt[i], g3, out=cols)
        cols = cols.reshape(n, c, kw, span)
        r = i * dilation[0]
        for j in range(kw):
            q = j * dilation[1]
            start = (r // stride[0]) * wq + q // stride[1]
            phases[r % stride[0], q % stride[1], :, :, start:start + span] += cols[:, :, j]
    phases = phases.reshape(tuple(stride) + (n, c, hq + 1, wq))[:, :, :, :, :hq]
    image = phases_to_image(phases, pads, in_hw, stride)
    if out is None:
        return image
    out[...] = image
    return out


# --------------------------------------------------------------------------- batch blocks on threads
# OpenBLAS does not thread these small products; one batch block per thread runs them side by side.
def _blocks(x4, w_shape, out_hw):
    """Blocks for a convolution of batch ``x4`` with a weight of ``w_shape`` giving ``out_hw`` planes."""
    if backend.array_module(x4) is not np:
        return 1
    o, cg, kh, kw = w_shape
    return threads.parallel_blocks(x4.shape[0], x4.shape[0] * o * cg * kh * kw * out_hw[0] * out_hw[1])


def forward_in_blocks(x4, w4, groups, pads, stride, dilation, bias=None, tile=0):
    """``conv_forward`` with the batch split over ``somanet.get_num_threads()`` threads."""
    n = x4.shape[0]
    (pt, pb), (pl, pr) = pads
    kh, kw = w4.shape[2:]
    ho = out_size(x4.shape[2], pt, pb, kh, stride[0], dilation[0])
    wo = out_size(x4.shape[3], pl, pr, kw, stride[1], dilation[1])
    blocks = _blocks(x4, w4.shape, (ho, wo))
    if blocks == 1:
        return conv_forward(x4, w4, groups, pads, stride, dilation, bias, tile=tile)
    out = backend.array_module(x4).empty((n, w4.shape[0], ho, wo), x4.dtype)
    if tile:
        u = _weight_transform(w4, tile, blocks)  # once, shared by the blocks
        threads.split_batch(lambda lo, hi: _winograd_forward(x4[lo:hi], u, bias, pads, out[lo:hi]), n,
                            blocks)
        return out
    threads.split_batch(lambda lo, hi: conv_forward(x4[lo:hi], w4, groups, pads, stride, dilation, bias,
                                                    out=out[lo:hi]), n, blocks)
    return out


def input_grad_in_blocks(g4, w4, groups, pads, stride, dilation, in_hw):
    """``conv_input_grad`` with the batch split over ``somanet.get_num_threads()`` threads."""
    n = g4.shape[0]
    blocks = _blocks(g4, w4.shape, g4.shape[2:])
    if blocks == 1:
        return conv_input_grad(g4, w4, groups, pads, stride, dilation, in_hw)
    out = backend.array_module(g4).empty((n, w4.shape[1] * groups) + tuple(in_hw), g4.dtype)
    threads.split_batch(lambda lo, hi: conv_input_grad(g4[lo:hi], w4, groups, pads, stride, dilation, in_hw,
                                                       out=out[lo:hi]), n, blocks)
    return out


def weight_grad_in_blocks(g4, x4, groups, pads, stride, dilation, kernel, layout=None):
    """``conv_weight_grad`` with the batch split over ``somanet.get_num_threads()`` threads (the blocks'
    gradients summed)."""
    if layout is None:
        layout = choose_weight_grad(g4, x4, groups, pads, stride, dilation, kernel)
    blocks = _blocks(g4, (g4.shape[1], x4.shape[1] // groups) + tuple(kernel), g4.shape[2:])
    parts = threads.split_batch(lambda lo, hi: conv_weight_grad(g4[lo:hi], x4[lo:hi], groups, pads, stride,
                                                                dilation, kernel, layout), g4.shape[0], blocks)
    return _summed(parts)


def _summed(parts):
    """The blocks' partial weight gradients added into the first."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def winograd_backward(g4, x4, w4, pads, tile, need_x, need_w):
    """``(dX, dW)`` of a convolution that takes the Winograd path with ``tile x tile`` output tiles, from one
    shared transform of the output gradient (either may be None when not needed), with the batch split over
    threads like the forward."""
    blocks = _blocks(x4, w4.shape, g4.shape[2:])
    u = _weight_transform(w4, tile, blocks)
    n = x4.shape[0]
    gx = np.empty(x4.shape, x4.dtype) if need_x else None

    def block(lo, hi):
        return _winograd_backward(g4[lo:hi], x4[lo:hi], u, pads, None if gx is None else gx[lo:hi], need_w)

    parts = threads.split_batch(block, n, blocks)
    if not need_w:
        return gx, None
    du = _summed(parts)
    if not _split_transform(du.size, blocks):
        with _quiet_blas(blocks):
            return gx, winograd.weight_from_transform(du)
    gw = np.empty(w4.shape, w4.dtype)
    threads.split_batch(lambda lo, hi: winograd.weight_from_transform(du[:, lo:hi], out=gw[lo:hi]), w4.shape[0],
                        blocks)
    return gx, gw


#: Fewest elements of a transformed weight ((m+2)^2 * O * C) whose transforms are split by output channels
#: over the threads (below it the hand-off costs more than it saves).
SPLIT_TRANSFORM = 1 << 20


def _split_transform(size, blocks):
    return blocks > 1 and size >= SPLIT_TRANSFORM


def _weight_transform(w4, tile, blocks):
    """``winograd.weight_transform`` of ``w4``, split by output channels over ``blocks`` threads when it is
    big, else on one BLAS thread (``_quiet_blas``)."""
    p, o = (tile + 2) ** 2, w4.shape[0]
    if not _split_transform(p * o * w4.shape[1], blocks):
        with _quiet_blas(blocks):
            return winograd.weight_transform(w4, tile)
    u = np.empty((p,) + w4.shape[:2], w4.dtype)
    threads.split_batch(lambda lo, hi: winograd.weight_transform(w4[lo:hi], tile, out=u[:, lo:hi]), o, blocks)
    return u


def _quiet_blas(blocks):
    """One BLAS thread for a Winograd weight transform next to ``blocks`` thread blocks, when there are
    several: a second OpenBLAS thread would go on spinning beside the blocks."""
    return threads.one_blas_thread() if blocks > 1 else contextlib.nullcontext()



# --------------------------------------------------------------------------- the registered kernels
_TILES = {"winograd_f2": 2, "winograd_f4": 4}


def choose(x4, w4, groups, pads, stride, dilation, backward=False):
    """The chooser of ``conv2d``: ``"winograd_f4"`` or ``"winograd_f2"`` where that tile size beats the
    window GEMMs (``winograd.output_tile``: 3x3 stride-1 layers with many channels), else ``"gemm"``;
    ``"reference"`` off NumPy (CuPy arrays). The forward pass takes ``"im2col"`` where
    ``conv_im2col.pays`` (few input channels with big kernels, strides above 1, fewer images than threads)."""
    if backend.array_module(x4) is not np:
        return "reference"
    tile = winograd.output_tile(x4, w4, groups, pads, stride, dilation, backward)
    if not backward and conv_im2col.pays(x4, w4, groups, pads, stride, dilation, tile):
        return "im2col"
    return {4: "winograd_f4", 2: "winograd_f2"}.get(tile, "gemm")


class _Gemm:
    """The ``"gemm"`` kernel of ``conv2d``: window GEMMs (see the module docstring)."""

    name = "gemm"

    @staticmethod
    def forward(x4, w4, groups, pads, stride, dilation, bias):
        return forward_in_blocks(x4, w4, groups, pads, stride, dilation, bias)

    @staticmethod
    def input_grad(g4, w4, groups, pads, stride, dilation, in_hw):
        return input_grad_in_blocks(g4, w4, groups, pads, stride, dilation, in_hw)

    @staticmethod
    def backward(g4, x4, w4, groups, pads, stride, dilation, need_x, need_w, weight_grad):
        """``(dX, dW)``; ``weight_grad(g4, x4)`` computes dW (the ``conv2d_weight_grad`` op's choice)."""
        gw = weight_grad(g4, x4) if need_w else None
        gx = input_grad_in_blocks(g4, w4, groups, pads, stride, dilation, x4.shape[2:]) if need_x else None
        return gx, gw


class _Im2col:
    """The ``"im2col"`` kernel of ``conv2d``: the forward pass by ``conv_im2col.forward`` (deep GEMMs over
    cache-sized column blocks); its gradients are the ``"gemm"`` kernel's."""

    name = "im2col"
    forward = staticmethod(conv_im2col.forward)
    input_grad = staticmethod(_Gemm.input_grad)
    backward = staticmethod(_Gemm.backward)


class _Winograd:
    """The ``"winograd_f2"``/``"winograd_f4"`` kernels of ``conv2d``: both gradients from one shared
    transform of the output gradient."""

    def __init__(self, tile):
        self.tile = tile
        self.name = f"winograd_f{tile}"

    def forward(self, x4, w4, groups, pads, stride, dilation, bias):
        return forward_in_blocks(x4, w4, groups, pads, stride, dilation, bias, tile=self.tile)

    @staticmethod
    def input_grad(g4, w4, groups, pads, stride, dilation, in_hw):
        # A transposed convolution's forward: the adjoint path asks the chooser for its own tile.
        return input_grad_in_blocks(g4, w4, groups, pads, stride, dilation, in_hw)

    def backward(self, g4, x4, w4, groups, pads, stride, dilation, need_x, need_w, weight_grad):
        return winograd_backward(g4, x4, w4, pads, self.tile, need_x, need_w)


def _numpy_only(x4, *args):
    return backend.array_module(x4) is np


def _stride_one(g4, x4, groups, pads, stride, dilation, kernel):
    return backend.array_module(g4) is np and tuple(stride) == (1, 1)


def _weight_layout(layout):
    def run(g4, x4, groups, pads, stride, dilation, kernel):
        return weight_grad_in_blocks(g4, x4, groups, pads, stride, dilation, kernel, layout)
    run.__doc__ = f"dW by the {layout!r} layout of ``conv_weight_grad``, split over threads."
    return run


_select.register("conv2d", "gemm", _Gemm, chooser=choose, supports=_numpy_only)
for _tile in (2, 4):
    _select.register("conv2d", f"winograd_f{_tile}", _Winograd(_tile),
                     supports=lambda x4, w4, groups, pads, stride, dilation, backward=False:
                     winograd.supported(x4, w4, groups, pads, stride, dilation))
_select.register("conv2d_weight_grad", "wide", _weight_layout("wide"), chooser=choose_weight_grad,
                 supports=_stride_one)
_select.register("conv2d", "im2col", _Im2col, supports=_numpy_only)
_select.register("conv2d_weight_grad", "im2col", conv_im2col.weight_grad,
                 supports=lambda g4, *args: backend.array_module(g4) is np)
for _layout in ("rows_nn", "rows", "batch"):
    _select.register("conv2d_weight_grad", _layout, _weight_layout(_layout),
                     supports=lambda g4, *args: backend.array_module(g4) is np)
