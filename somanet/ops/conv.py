"""Convolutions: conv1d/conv2d, their transposes, and unfold/fold, as GEMMs over copied windows.

Every convolution is computed in 2-d (a 1-d input is a 2-d one of height 1), on NCHW arrays, by three
kernels that the transposed convolution shares (its forward is a convolution's input gradient). Each
picks its GEMM layout by shape; ``docs/cnn.md`` has the measurements behind every choice.

- forward: ``kw_columns`` copies the ``kw`` column shifts of the padded input (not the ``kh * kw`` of
  im2col), and each image takes one GEMM per kernel row, whose partial products are summed; the GEMMs
  are small enough for OpenBLAS's unpacked kernels and write straight into ``(N, O, Ho, Wo)``. Planes of
  at most 32 pixels use one GEMM over the whole batch instead;
- weight gradient: per image, against the read-only "wide" windows of the padded input (no copy), or
  against ``kw_columns``, summed over the batch; big layers take one GEMM whose inner dimension is the
  whole batch;
- input gradient: at stride 1 the adjoint of a correlation is a correlation of the padded output
  gradient with the flipped, channel-transposed kernel, so it is the forward kernel again; at higher
  strides (or when that padding would dwarf the gradient) one GEMM per kernel row goes into column space
  and its slabs are added into the stride phases of the image, looping over kernel offsets only.

Backward rebuilds the windows instead of saving them: keeping the column buffers of every layer would
multiply a network's memory. Big temporaries live in per-thread scratch buffers that are reused from
call to call, because faulting in fresh pages costs more than the copies. A pass whose buffers would
outgrow the cache runs over consecutive blocks of images that fit it (``CACHE_BLOCK_BYTES``).
"""
import contextlib
import threading

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from . import winograd

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


# BLAS takes a GEMM's operands as one base pointer, a row pitch and unit-stride rows, so the rows of a
# matrix must sit at evenly spaced addresses. The full im2col buffer (rows ``(c, i, j)``) is the only way to
# get that for a whole window from the padded image, and it is ``kh * kw`` times the input. Copying only
# the ``kw`` column shifts gets it for a kernel *row*: in ``kw_columns``, the rows ``(c, j)`` of kernel
# row ``i`` are evenly spaced and each is one contiguous run of ``Ho * Wo`` output positions, so a
# convolution becomes ``kh`` GEMMs over a buffer ``kw`` times the input instead of ``kh * kw``. Measured on
# ResNet-20's layers that is 1.4-1.8x faster than full im2col: the buffers stay in cache and the per-image
# GEMMs (``O x C*kw x Ho*Wo``, at most about 10^6 multiply-adds) run on OpenBLAS's unpacked small-matrix
# kernels.
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
    small-matrix kernels (measured 15 % faster on a 32 x 192 x 784 product); 1 when none of at least 64
    columns does."""
    if og * k * ell <= _SMALL_GEMM:
        return 1
    for chunks in range(2, ell // 64 + 1):
        if ell % chunks == 0 and og * k * (ell // chunks) <= _SMALL_GEMM:
            return chunks
    return 1


def _gemm_blocks(og, k, ell, groups):
    """``(chunks, row_blocks)`` for ``_grouped_matmul``: column chunks when some bring the per-image GEMM
    within the unpacked kernels, else (one group) row blocks of the weight of at least 8 rows that do
    (128 x 192 x 64, a stride-2 layer's product, ran at 95 GFLOP/s whole and 112 in two row blocks)."""
    chunks = _column_chunks(og, k, ell)
    if chunks > 1 or groups > 1 or og * k * ell <= _SMALL_GEMM:
        return chunks, 1
    for blocks in range(2, og // 8 + 1):
        if og % blocks == 0 and (og // blocks) * k * ell <= _SMALL_GEMM:
            return 1, blocks
    return 1, 1


# Per-image GEMMs have only ``Ho * Wo`` columns; on planes of 4x4 or smaller (VGG's last stages) one GEMM
# over the whole batch is 1.3-2.8x faster, even with the output transposed back to NCHW after it.
_FOLD_PIXELS = 32

# A pass over the whole batch writes its window buffers for every image before the GEMMs read them back;
# past a few megabytes they no longer stay in cache between the two. Each pass therefore runs over
# consecutive blocks of images whose buffers and outputs together fit ``CACHE_BLOCK_BYTES``, one block
# after another (per thread, inside the thread blocks of ``split_batch``). Measured at one thread on
# ResNet-20's 16 -> 16 layer (64x16x32x32, 17 MB of column buffers): forward 5.5 -> 4.0 ms, input
# gradient 5.4 -> 4.2 ms; on 64x32x28x28 -> 64 forward 26.1 -> 20.1 ms, input gradient 31.3 -> 20.6 ms,
# weight gradient 29.7 -> 25.6 ms. Limits of 3 to 12 MB gave about the same; smaller blocks lose to
# per-call overhead (LeNet-5's layers, whose whole batch fits, were 1.3-3x slower in blocks of 4 images).
CACHE_BLOCK_BYTES = 6 * 2 ** 20


def _cache_ranges(xp, n, per_image):
    """Consecutive ``(lo, hi)`` batch ranges, as few as keep ``per_image`` bytes per image within
    ``CACHE_BLOCK_BYTES`` (one range for a whole batch that fits, or off NumPy); at least one image each."""
    if xp is not np:
        return [(0, n)]
    per_block = max(1, CACHE_BLOCK_BYTES // max(per_image, 1))
    return backend.batch_ranges(n, max(1, -(-n // per_block)))


#: Most bytes of transformed-weight reads per byte of activations that Winograd's cache blocks may cost.
WINOGRAD_WEIGHT_READS = 0.25


def _winograd_ranges(x4, u, pads, backward=False):
    """``_cache_ranges`` for a Winograd pass over ``x4`` with the transformed weight ``u`` (P, O, C).

    Every block reads the whole of ``u`` again, so the blocks are also kept few enough that those reads
    stay within ``WINOGRAD_WEIGHT_READS`` of the activations' bytes: VGG-11's 128 -> 256 layer (``u``
    4.7 MB) measured slower in blocks, its 64 -> 128 layer on 16x16 planes (``u`` 1.2 MB) forward
    9.6 -> 7.2 ms and backward 17.4 -> 11.0 ms.
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
        ranges = backend.batch_ranges(n, most)
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
    cols_t = im2col_t(pad2d(x4, pads, slot="pad"), (kh, kw), stride, dilation, out_hw, slot="cols")
    out_t = xp.matmul(w4.reshape(groups, o // groups, cg * kh * kw), cols_t.reshape(groups, cg * kh * kw, n * ell),
                      out=scratch("part", (groups, o // groups, n * ell), x4.dtype, xp))
    if out is None:
        out = xp.empty((n, o) + tuple(out_hw), x4.dtype)
    out.reshape(n, o, ell)[...] = out_t.reshape(o, n, ell).transpose(1, 0, 2)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def conv_forward(x4, w4, groups, pads, stride, dilation, bias=None, out=None):
    """Cross-correlation of ``x4`` (N, C, H, W) with ``w4`` (O, C/G, kh, kw), plus ``bias`` (O,) when
    given -> (N, O, Ho, Wo), a fresh array or ``out`` (C-contiguous, of that shape) when given.

    One GEMM per image and kernel row over ``kw_columns``; the ``kh`` partial products are summed. A
    bias rides in the first GEMM as an extra weight column against a row of ones (no extra pass).
    """
    xp = backend.array_module(x4)
    n, c, h, w = x4.shape
    o, cg, kh, kw = w4.shape
    (pt, pb), (pl, pr) = pads
    ho = _out_size(h, pt, pb, kh, stride[0], dilation[0])
    wo = _out_size(w, pl, pr, kw, stride[1], dilation[1])
    tile = winograd.output_tile(x4, w4, groups, pads, stride, dilation)
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


# Weight gradients of at least this many elements are computed as (O, C*kh*kw) products directly.
_TRANSPOSE_COPY_MAX = 1 << 19

# OpenBLAS multiplies without packing (its fast path for thin matrices) when a GEMM has at most 10^6
# multiply-adds and, with the right operand transposed as in a weight gradient, at most 1200 outputs.
_SMALL_GEMM = 10 ** 6
_SMALL_GEMM_OUT = 1200


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
    # summing the batch into a transposed output instead of copying after is up to 1.5x slower.
    if groups == 1:
        parts = xp.matmul(g_wide.reshape(n, 1, 1, o, ho * wp), view)  # (N, kh, kw, O, C)
        return xp.ascontiguousarray(parts.sum(axis=0).transpose(2, 3, 0, 1))
    s = view.strides
    view = _as_strided(view, (n, kh, kw, groups, ho * wp, cg), s[:3] + (cg * s[4], s[3], s[4]), writeable=False)
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
    cols_t = im2col_t(pad2d(x4, pads, slot="pad"), kernel, stride, dilation, (ho, wo), slot="cols")
    cols_t = cols_t.reshape(groups, cg * kh * kw, n * ell)
    # (N, O, L) -> (O, N, L): the one copy that lets the whole batch be a single GEMM's inner dimension.
    g_t = _copy(g4.reshape(n, o, ell).transpose(1, 0, 2), "gt").reshape(groups, og, n * ell)
    if og * cg * kh * kw >= _TRANSPOSE_COPY_MAX:
        # Transposing a big (C*kh*kw, O) product costs more than its GEMM gains: 15 ms at 4608 x 512.
        return xp.matmul(g_t, cols_t.transpose(0, 2, 1)).reshape(o, cg, kh, kw)
    # (C*kh*kw x NL) times (NL x O) is the faster orientation for OpenBLAS here (up to 10 %).
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


def conv_weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """dW (O, C/G, kh, kw) of ``conv_forward`` given the output gradient ``g4`` (N, O, Ho, Wo), a fresh
    C-contiguous array.

    Four ways, chosen by shape; each is the fastest measured on the layers where it is used. The first
    three are per-image GEMMs small enough for OpenBLAS's unpacked kernels, summed over the batch after:

    - stride 1, 16 channels or so: the gradient (junk columns zeroed) against the read-only wide windows
      of the padded input, per kernel offset, with no copy of the windows;
    - ``C/G * kw`` of 16 or more: ``kw_columns`` rows against the gradient transposed to ``(Ho*Wo, O)``;
    - few input channels (first layers): the gradient against ``kw_columns`` rows;
    - otherwise (big per-image products): one GEMM whose inner dimension is the whole batch.
    """
    n, o, ho, wo, cg, og, kh, kw = _weight_grad_dims(g4, x4, groups, kernel)
    wp = x4.shape[3] + pads[1][0] + pads[1][1]
    if stride == (1, 1) and cg >= 4 and og * cg <= 256 and og * cg * ho * wp <= _SMALL_GEMM and ho * wo >= 128:
        return _weight_grad_wide(g4, x4, groups, pads, kernel, dilation)
    ell = ho * wo
    if cg * kw >= 16 and cg * kw * og * ell <= _SMALL_GEMM:
        path, per_image = _weight_grad_rows_nn, kw_columns_size(x4, pads, kw, stride, wo) + 2 * o * ell
    elif og * cg * kw <= _SMALL_GEMM_OUT:
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
        return conv_forward(g4, flipped_transposed(w4, groups), groups, adjoint_pads, (1, 1), dilation, out=out)
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
# With several threads the batch is split into one block per thread (``backend.split_batch``): the
# per-image GEMMs and window copies of each block run at the same time, which OpenBLAS's own threading
# of these small products does not achieve. Below about 16 million multiply-adds (LeNet-5's layers) the
# halves are too small to gain.
def _blocks(x4, w_shape, out_hw):
    """Blocks for a convolution of batch ``x4`` with a weight of ``w_shape`` giving ``out_hw`` planes."""
    if backend.array_module(x4) is not np:
        return 1
    o, cg, kh, kw = w_shape
    return backend.parallel_blocks(x4.shape[0], x4.shape[0] * o * cg * kh * kw * out_hw[0] * out_hw[1])


def forward_in_blocks(x4, w4, groups, pads, stride, dilation, bias=None):
    """``conv_forward`` with the batch split over ``somanet.get_num_threads()`` threads."""
    n = x4.shape[0]
    (pt, pb), (pl, pr) = pads
    kh, kw = w4.shape[2:]
    ho = _out_size(x4.shape[2], pt, pb, kh, stride[0], dilation[0])
    wo = _out_size(x4.shape[3], pl, pr, kw, stride[1], dilation[1])
    blocks = _blocks(x4, w4.shape, (ho, wo))
    if blocks == 1:
        return conv_forward(x4, w4, groups, pads, stride, dilation, bias)
    out = backend.array_module(x4).empty((n, w4.shape[0], ho, wo), x4.dtype)
    tile = winograd.output_tile(x4, w4, groups, pads, stride, dilation)
    if tile:
        u = _weight_transform(w4, tile, blocks)  # once, shared by the blocks
        backend.split_batch(lambda lo, hi: _winograd_forward(x4[lo:hi], u, bias, pads, out[lo:hi]), n,
                            blocks)
        return out
    backend.split_batch(lambda lo, hi: conv_forward(x4[lo:hi], w4, groups, pads, stride, dilation, bias,
                                                    out=out[lo:hi]), n, blocks)
    return out


def input_grad_in_blocks(g4, w4, groups, pads, stride, dilation, in_hw):
    """``conv_input_grad`` with the batch split over ``somanet.get_num_threads()`` threads."""
    n = g4.shape[0]
    blocks = _blocks(g4, w4.shape, g4.shape[2:])
    if blocks == 1:
        return conv_input_grad(g4, w4, groups, pads, stride, dilation, in_hw)
    out = backend.array_module(g4).empty((n, w4.shape[1] * groups) + tuple(in_hw), g4.dtype)
    backend.split_batch(lambda lo, hi: conv_input_grad(g4[lo:hi], w4, groups, pads, stride, dilation, in_hw,
                                                       out=out[lo:hi]), n, blocks)
    return out


def weight_grad_in_blocks(g4, x4, groups, pads, stride, dilation, kernel):
    """``conv_weight_grad`` with the batch split over ``somanet.get_num_threads()`` threads (the blocks'
    gradients summed)."""
    blocks = _blocks(g4, (g4.shape[1], x4.shape[1] // groups) + tuple(kernel), g4.shape[2:])
    parts = backend.split_batch(lambda lo, hi: conv_weight_grad(g4[lo:hi], x4[lo:hi], groups, pads, stride,
                                                                dilation, kernel), g4.shape[0], blocks)
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

    parts = backend.split_batch(block, n, blocks)
    if not need_w:
        return gx, None
    du = _summed(parts)
    if not _split_transform(du.size, blocks):
        with _quiet_blas(blocks):
            return gx, winograd.weight_from_transform(du)
    gw = np.empty(w4.shape, w4.dtype)
    backend.split_batch(lambda lo, hi: winograd.weight_from_transform(du[:, lo:hi], out=gw[lo:hi]), w4.shape[0],
                        blocks)
    return gx, gw


#: Fewest elements of a transformed weight ((m+2)^2 * O * C) for which its transforms run as one block of
#: output channels per thread when the batch is split (below it the hand-off costs more than it saves:
#: 256 x 128 channels at F(4x4) 0.66 -> 0.50 ms, 128 x 64 0.16 -> 0.20 ms; 512 x 512 at F(2x2) 3.98 -> 2.16).
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
    backend.split_batch(lambda lo, hi: winograd.weight_transform(w4[lo:hi], tile, out=u[:, lo:hi]), o, blocks)
    return u


def _quiet_blas(blocks):
    """One BLAS thread for a Winograd weight transform (a memory-bound product of a few ms) next to
    ``blocks`` thread blocks, when there are several: on two threads OpenBLAS's second thread would go on
    spinning beside the blocks. With NumPy imported before somanet (OpenBLAS's default 0.1 s spin)
    VGG-11-BN's two-thread training step took 325 ms, and 260 ms with the transforms on one thread."""
    return backend.one_blas_thread() if blocks > 1 else contextlib.nullcontext()


def _check_dtypes(op, x, w, b):
    if (x.dtype != w.dtype or (b is not None and b.dtype != x.dtype)) and not backend.autocasting():
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
        out = forward_in_blocks(x4, w4, groups, pads, stride, dilation, bias)
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
        tile = winograd.output_tile(x4, w4, groups, pads, stride, dilation, backward=True)
        if tile:
            gx, gw = winograd_backward(g, x4, w4, pads, tile, ctx.needs(0), ctx.needs(1))
        else:
            if ctx.needs(1):
                gw = weight_grad_in_blocks(g, x4, groups, pads, stride, dilation, w4.shape[2:])
            if ctx.needs(0):
                gx = input_grad_in_blocks(g, w4, groups, pads, stride, dilation, x4.shape[2:])
        gx = None if gx is None else gx.reshape(ctx.x_shape)
        gw = None if gw is None else gw.reshape(ctx.w_shape)
        if ctx.has_bias and ctx.needs(2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        tx, tw = ctx.graph_input(0, x), ctx.graph_input(1, weight)
        x4, w4 = (tx, tw) if ctx.spatial == 2 else (reshape(tx, _as_4d(x, weight, 1)[0].shape),
                                                    reshape(tw, _as_4d(x, weight, 1)[1].shape))
        g = grad if ctx.spatial == 2 else reshape(grad, grad.shape[:2] + (1,) + grad.shape[2:])
        gx = gw = gb = None
        if ctx.graph_needs(0):
            gx = reshape(ConvTransposeNd.apply(g, w4, None, stride, pads, dilation, groups, x4.shape[2:]), ctx.x_shape)
        if ctx.graph_needs(1):
            gw = reshape(ConvNd.weight_grad_graph(g, x4, groups, pads, stride, dilation, w4.shape[2:]), ctx.w_shape)
        if ctx.has_bias and ctx.graph_needs(2):
            gb = sum_(g, (0, 2, 3))
        return gx, gw, gb

    @staticmethod
    def weight_grad_graph(g4, x4, groups, pads, stride, dilation, kernel):
        """The weight gradient of a 2-d convolution of ``x4`` with output gradient ``g4``, from differentiable
        ops (unfold and einsum), as ``grad_graph`` needs it."""
        from .linalg import einsum
        from .shape import reshape

        n, o = g4.shape[:2]
        c = x4.shape[1]
        cols = Unfold.apply(x4, tuple(kernel), tuple(stride), pads, tuple(dilation))  # (N, C*kh*kw, L)
        g3 = reshape(g4, (n, groups, o // groups, -1))
        c3 = reshape(cols, (n, groups, (c // groups) * kernel[0] * kernel[1], -1))
        return reshape(einsum("ngol,ngkl->gok", g3, c3), (o, c // groups) + tuple(kernel))


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
        out = input_grad_in_blocks(_contiguous(x4), w4, groups, pads, stride, dilation, out_hw)
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
        if ctx.needs(0):
            gx = forward_in_blocks(g, w4, groups, pads, stride, dilation).reshape(ctx.x_shape)
        if ctx.needs(1):
            # In the underlying convolution x is the output gradient and ours is its input.
            gw = weight_grad_in_blocks(_contiguous(x4), g, groups, pads, stride, dilation, w4.shape[2:])
            gw = gw.reshape(ctx.w_shape)
        if ctx.has_bias and ctx.needs(2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        tx, tw = ctx.graph_input(0, x), ctx.graph_input(1, weight)
        x4, w4 = (tx, tw) if ctx.spatial == 2 else (reshape(tx, _as_4d(x, weight, 1)[0].shape),
                                                    reshape(tw, _as_4d(x, weight, 1)[1].shape))
        g = grad if ctx.spatial == 2 else reshape(grad, grad.shape[:2] + (1,) + grad.shape[2:])
        gx = gw = gb = None
        if ctx.graph_needs(0):
            gx = reshape(ConvNd.apply(g, w4, None, stride, pads, dilation, groups), ctx.x_shape)
        if ctx.graph_needs(1):
            # In the underlying convolution x is the output gradient and ours is its input.
            gw = reshape(ConvNd.weight_grad_graph(x4, g, groups, pads, stride, dilation, w4.shape[2:]), ctx.w_shape)
        if ctx.has_bias and ctx.graph_needs(2):
            gb = sum_(g, (0, 2, 3))
        return gx, gw, gb


def _check_conv_args(op, spatial, input, weight, bias, groups, transposed=False):
    """Validate shapes for conv ops; returns (x, batched) where an unbatched input gains a batch dim."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    dims = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    x_nd = input.array.ndim
    if x_nd not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input "
                         f"of shape {dims}, got shape {tuple(input.shape)}")
    if weight.array.ndim != spatial + 2:
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
    _check_dtypes(op, input.array, weight.array, None if bias is None else bias.array)
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

    def grad_graph(ctx, grad):
        kernel, stride, pads, dilation, out_hw, padded = ctx.geometry
        return ctx.graph_linear((grad,), lambda v: Unfold.apply(v, kernel, stride, pads, dilation))


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

    def grad_graph(ctx, grad):
        kernel, stride, pads, dilation, out_hw = ctx.geometry
        size = tuple(grad.shape[-2:])
        return ctx.graph_linear((grad,), lambda v: Fold.apply(v, size, kernel, stride, pads, dilation))


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
    if not isinstance(input, Tensor) or input.array.ndim not in (3, 4):
        raise ValueError(f"unfold: expected a 3-D (unbatched) or 4-D input of shape (N, C, H, W), got "
                         f"{tuple(np.shape(input))}")
    batched = input.array.ndim == 4
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
    if not isinstance(input, Tensor) or input.array.ndim not in (2, 3):
        raise ValueError(f"fold: expected a 2-D (unbatched) or 3-D input of shape (N, C * kh * kw, L), got "
                         f"{tuple(np.shape(input))}")
    batched = input.array.ndim == 3
    kk = kernel[0] * kernel[1]
    ckk, ell = input.shape[-2:]
    blocks = 1
    for size, (lo, hi), k, d, s in zip(output_size, pads, kernel, dilation, stride):
        blocks *= _out_size(size, lo, hi, k, s, d)
    if ckk % kk or ell != blocks:
        raise ValueError(f"fold: input of shape {tuple(input.shape)} does not match kernel {kernel} and output size "
                         f"{output_size}: expected dim -2 divisible by {kk} and {blocks} blocks in dim -1")
    return _with_batch(lambda x: Fold.apply(x, output_size, kernel, stride, pads, dilation), input, batched)
