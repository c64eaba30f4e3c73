"""Fast kernel of 2-D products with few rows (``ops/linalg.py``'s ``few_row_matmul``: every linear layer's
forward ``x @ W.T`` and input gradient ``g @ W``), registered as op ``"matmul"``.

OpenBLAS packs both operands of any product above ``blas.SMALL_GEMM`` multiply-adds, and on few rows that
packed path is slow for ``x @ W.T`` and ``g @ W``; its unpacked small-matrix kernels take products of at
most ``SMALL_GEMM`` multiply-adds (and, for ``x @ W.T``, at most ``SMALL_GEMM_OUT`` outputs). The
``"column_blocks"`` kernel therefore computes the output as blocks of ``rb`` columns, each one such small
product, all in one ``matmul`` call writing straight into the output's columns; each output element is
still one dot product over the whole K. The limits below are where the blocks stopped paying in
measurements (docs/benchmarks.md, "Linear layers by batch size"): ``x @ W.T`` from about 300 rows or
under ``MIN_FEATURES`` input features, ``g @ W`` with blocks under 32 columns; with several BLAS threads
OpenBLAS threads the whole product but not the blocks, which then win only below 32 rows for ``x @ W.T``
and at 8 rows for ``g @ W``.

The chooser takes ``"column_blocks"`` where ``column_block`` finds a block width (float32 NumPy operands
whose rows BLAS can read in place), else ``"reference"`` (one ``matmul``).
"""
import numpy as np

from . import _select, threads
from .blas import SMALL_GEMM, SMALL_GEMM_OUT

__all__ = ["MIN_FEATURES", "column_block", "column_blocks_matmul", "choose"]

#: Fewest input features for which ``x @ W.T`` is cut into column blocks.
MIN_FEATURES = 128
_T_MIN_BLOCK, _T_THREADED_ROWS = 4, 24
_N_MIN_BLOCK, _N_MAX_BLOCK, _N_THREADED_ROWS = 32, 128, 8


def column_block(a, b):
    """Columns per block for ``a @ b`` (``a`` (M, K), ``b`` (K, N)), or 0 to multiply whole."""
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2:
        return 0
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or m * k * n <= SMALL_GEMM or a.dtype != np.float32 or b.dtype != np.float32:
        return 0
    # BLAS reads each block in place only with unit-stride rows (of a, and of b or of b.T); NumPy would
    # otherwise copy every block.
    size = a.itemsize
    if a.strides[1] != size or a.strides[0] < k * size:
        return 0
    if b.strides[1] == size and b.strides[0] >= n * size:  # g @ W
        rb = min(_N_MAX_BLOCK, SMALL_GEMM // (m * k))
        rb = 1 << (rb.bit_length() - 1) if rb > 0 else 0
        least, threaded_rows = _N_MIN_BLOCK, _N_THREADED_ROWS
    elif b.strides[0] == size and b.strides[1] >= k * size and k >= MIN_FEATURES:  # x @ W.T
        rb = min(SMALL_GEMM_OUT // m, SMALL_GEMM // (m * k))
        rb = rb - rb % 8 if rb >= 8 else rb
        least, threaded_rows = _T_MIN_BLOCK, _T_THREADED_ROWS
    else:
        return 0
    if rb < least or (m > threaded_rows and threads.blas_threads() > 1):
        return 0
    return rb


def column_blocks_matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) in column blocks of ``column_block(a, b)`` (whole
    where that is 0); a fresh C-contiguous array, or ``out`` (C-contiguous) when given."""
    rb = column_block(a, b)
    if not rb:
        return np.matmul(a, b, out=out)
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), np.float32)
    nb = n // rb
    main = nb * rb
    strided = np.lib.stride_tricks.as_strided
    # Block ``i`` is columns ``i*rb:(i+1)*rb`` of ``b`` and of the output, each read in place.
    b_blocks = strided(b, (nb, k, rb), (rb * b.strides[1], b.strides[0], b.strides[1]), writeable=False)
    out_blocks = strided(out, (nb, m, rb), (rb * out.strides[1], out.strides[0], out.strides[1]))
    np.matmul(a, b_blocks, out=out_blocks)
    if main < n:
        np.matmul(a, b[:, main:], out=out[:, main:])
    return out


def choose(a, b):
    """The chooser of ``"matmul"``: ``"column_blocks"`` where ``column_block(a, b)`` is positive, else
    ``"reference"``."""
    return "column_blocks" if column_block(a, b) else "reference"


_select.register("matmul", "column_blocks", column_blocks_matmul, chooser=choose,
                 supports=lambda a, b: type(a) is np.ndarray and type(b) is np.ndarray)
