"""Convolution as im2col in cache-sized column blocks: one deep GEMM per block of output rows.

The ``"gemm"`` kernel (``kernels/conv.py``) multiplies over ``kw_columns``: ``kh`` GEMMs per image whose
inner dimension is ``C * kw``. That dimension is tiny for the layers with few input channels and big
kernels (a ResNet stem's 3 x 7 = 21, an MNIST CNN's 1 x 5 = 5), where each of the ``kh`` GEMMs streams
the whole output once for a few multiply-adds per element. Full im2col gives one GEMM of inner dimension
``C * kh * kw`` (147 and 25 there) instead, but a whole image's column matrix is ``kh * kw`` times the
input and falls out of cache before the GEMM reads it. This kernel builds the column matrix for a few
output rows at a time (``CHUNK_BYTES``), multiplies it at once, and writes the product straight into the
output (or, for the weight gradient, adds ``dY_rows @ cols^T`` into the gradient).

The work is a list of ``(image, first row)`` blocks, split over ``somanet.get_num_threads()`` threads:
a single image is split as well as a batch, so batch-1 inference uses every thread. Any stride,
padding, dilation and groups; NumPy arrays only (CuPy takes the reference). Registered as the
``"im2col"`` kernel of ``conv2d`` (forward; its gradients are the ``"gemm"`` kernel's) and of
``conv2d_weight_grad``; where the chooser takes it is in ``docs/dev/convolutions.md``.
"""
import numpy as np

from .. import backend
from ..ops._windows import out_size, pad2d, windows
from . import threads
from .workspace import allocator, scratch

__all__ = ["forward", "weight_grad", "row_blocks", "pays", "pays_weight_grad", "CHUNK_BYTES", "MAX_ROW_DEPTH",
           "MIN_PIXELS", "MIN_PIXELS_BATCH"]

#: Bytes of one block's column matrix: small enough to stay in the core's L2 cache between the copy
#: that fills it and the GEMM that reads it, big enough for a GEMM of a few hundred columns.
CHUNK_BYTES = 512 * 2 ** 10


#: At stride 1 the ``"gemm"`` kernel's GEMMs have inner dimension ``C/G * kw``; up to this depth (a
#: 3-channel 7x7 layer) they are too shallow and one deep GEMM per row block wins.
MAX_ROW_DEPTH = 21
#: Output planes of at most this many pixels take the ``"gemm"`` kernel's one GEMM over the whole batch.
MIN_PIXELS = 32
#: Fewest output pixels per plane for the full-batch rules: on smaller planes each block's GEMM and
#: copies are too short to beat the window GEMMs.
MIN_PIXELS_BATCH = 128


def _few_images(n, work):
    """Whether a batch of ``n`` images leaves threads idle under the batch split while splitting the rows
    would use them (the work is worth splitting)."""
    return n < backend.get_num_threads() and threads.parallel_blocks(2, work) > 1


def pays(x4, w4, groups, pads, stride, dilation, tile=0):
    """Whether the forward pass of this convolution is faster here than in the ``"gemm"`` kernel (or, with
    ``tile``, the Winograd kernel the chooser would take): one group, output planes of more than
    ``MIN_PIXELS`` pixels, not a 1x1 stride-1 product, and either fewer images than threads (rows split
    over the threads), or no Winograd, planes of at least ``MIN_PIXELS_BATCH`` pixels and a stride above
    1 or at most ``MAX_ROW_DEPTH`` input channels times kernel columns."""
    o, cg, kh, kw = w4.shape
    ho, wo = _geometry(x4, (kh, kw), pads, stride, dilation)
    if groups != 1 or ho * wo <= MIN_PIXELS or (kh == kw == 1 and tuple(stride) == (1, 1)):
        return False
    if _few_images(x4.shape[0], x4.shape[0] * o * cg * kh * kw * ho * wo):
        return True
    if tile or ho * wo < MIN_PIXELS_BATCH:
        return False
    return tuple(stride) != (1, 1) or cg * kw <= MAX_ROW_DEPTH


def pays_weight_grad(g4, x4, groups, kernel):
    """Whether ``weight_grad`` beats the ``"gemm"`` kernel's weight-gradient layouts: only with fewer
    images than threads (they split the batch; this splits the rows) and output planes of more than
    ``MIN_PIXELS`` pixels."""
    n, o, ho, wo = g4.shape
    work = n * o * (x4.shape[1] // groups) * kernel[0] * kernel[1] * ho * wo
    return ho * wo > MIN_PIXELS and _few_images(n, work)


def _geometry(x4, kernel, pads, stride, dilation):
    (pt, pb), (pl, pr) = pads
    ho = out_size(x4.shape[2], pt, pb, kernel[0], stride[0], dilation[0])
    wo = out_size(x4.shape[3], pl, pr, kernel[1], stride[1], dilation[1])
    return ho, wo


def row_blocks(n, depth, ho, wo, itemsize, chunk_bytes=None):
    """The ``(image, first row, last row + 1)`` blocks of a convolution whose column matrix has ``depth``
    rows (``C * kh * kw``): as many output rows per block as keep the block's columns within
    ``chunk_bytes`` (``CHUNK_BYTES``), at least one."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    rows = max(1, min(ho, chunk_bytes // max(1, depth * wo * itemsize)))
    return [(i, y0, min(ho, y0 + rows)) for i in range(n) for y0 in range(0, ho, rows)]


def _columns(view, i, y0, y1, groups, slot="cols"):
    """The column matrix of image ``i``'s output rows ``y0:y1``, ``(G, C/G * kh * kw, rows * Wo)``, in scratch
    memory (copied from ``view``, the windows ``(N, C, kh, kw, Ho, Wo)`` of the padded input)."""
    _, c, kh, kw, _, wo = view.shape
    cols = scratch(slot, (c, kh, kw, y1 - y0, wo), view.dtype)
    cols[...] = view[i, :, :, :, y0:y1]
    return cols.reshape(groups, (c // groups) * kh * kw, (y1 - y0) * wo)


def _split(blocks, work, run):
    """``run(lo, hi)`` over the ``blocks`` list, split over threads when the work is worth it; results in
    order."""
    parts = threads.parallel_blocks(len(blocks), work)
    return threads.split_batch(run, len(blocks), parts)


def forward(x4, w4, groups, pads, stride, dilation, bias=None):
    """Cross-correlation of ``x4`` (N, C, H, W) with ``w4`` (O, C/G, kh, kw), plus ``bias`` (O,) -> a fresh
    (N, O, Ho, Wo): per block of output rows one GEMM ``(O/G, C/G*kh*kw) @ (C/G*kh*kw, rows*Wo)`` per group,
    written into the output's rows."""
    n, c = x4.shape[:2]
    o, cg, kh, kw = w4.shape
    ho, wo = _geometry(x4, (kh, kw), pads, stride, dilation)
    xq = pad2d(x4, pads, empty=allocator("pad"))
    view = windows(xq, (kh, kw), stride, dilation, (ho, wo))
    w3 = w4.reshape(groups, o // groups, cg * kh * kw)
    out = np.empty((n, groups, o // groups, ho * wo), x4.dtype)
    blocks = row_blocks(n, c * kh * kw, ho, wo, x4.itemsize)
    b3 = None if bias is None else bias.reshape(groups, o // groups, 1)

    def run(lo, hi):
        for i, y0, y1 in blocks[lo:hi]:
            dst = out[i, :, :, y0 * wo:y1 * wo]
            np.matmul(w3, _columns(view, i, y0, y1, groups), out=dst)
            if b3 is not None:
                dst += b3

    _split(blocks, n * o * cg * kh * kw * ho * wo, run)
    return out.reshape(n, o, ho, wo)


def weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """dW (O, C/G, kh, kw) of ``forward`` given the output gradient ``g4`` (N, O, Ho, Wo), a fresh
    C-contiguous array: per block of output rows, the gradient's rows ``(O/G, rows*Wo)`` times the block's
    column matrix transposed, added up (one partial sum per thread, summed after)."""
    n, o, ho, wo = g4.shape
    c = x4.shape[1]
    cg, og = c // groups, o // groups
    kh, kw = kernel
    depth = cg * kh * kw
    xq = pad2d(x4, pads, empty=allocator("pad"))
    view = windows(xq, (kh, kw), stride, dilation, (ho, wo))
    g5 = g4.reshape(n, groups, og, ho * wo)
    blocks = row_blocks(n, c * kh * kw, ho, wo, x4.itemsize)

    def run(lo, hi):
        total = np.zeros((groups, og, depth), g4.dtype)
        part = scratch("part", (groups, og, depth), g4.dtype)
        for i, y0, y1 in blocks[lo:hi]:
            cols = _columns(view, i, y0, y1, groups)
            np.matmul(g5[i, :, :, y0 * wo:y1 * wo], cols.transpose(0, 2, 1), out=part)
            total += part
        return total

    parts = _split(blocks, n * o * cg * kh * kw * ho * wo, run)
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total.reshape(o, cg, kh, kw)
