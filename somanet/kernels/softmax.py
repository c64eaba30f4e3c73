"""Compiled softmax and log-softmax along the last axis: one fused loop per row (Numba, the ``fast`` extra).

The reference (``ops/reduce.py``) makes four passes over the activations, each a NumPy call with its own
temporary: the row maximum, the shifted copy, the exponential, the scaling by the row sum. Here the row
maxima come from NumPy (a SIMD reduction), and one loop per row forms the exponentials and their sum
(with the vectorisable float32 ``exp`` of ``kernels/_loops.py``) and scales them while still in cache.
Backward is one loop per row as well: the row dot product (softmax) or row sum (log-softmax) and the
update. Registered as the ``"numba"`` kernel of ``softmax`` and ``log_softmax``, for float32 only: the
polynomial ``exp`` is a float32 one, and float64 rows keep NumPy's. Where the rows are many
(``kernels.threads.parallel_blocks``), blocks of rows run on somanet's threads at once; the loops release
the GIL, so no Numba threading layer is involved.

Numba is imported, and the loops compiled (or loaded from Numba's on-disk cache), on first use, never at
``import somanet``.
"""
import numpy as np

from .. import backend
from . import _jit, _select

__all__ = ["choose_softmax", "fits"]

#: Fewest elements of the ``(rows, d)`` input for which the compiled loops are chosen.
MIN_ELEMENTS = 1 << 10


def _import_loops(numba):
    from . import _loops
    return _loops


def loops():
    """The compiled loops (``kernels/_loops.py``), importing Numba on the first call."""
    return _jit.compiled("loops", _import_loops)


def scratch(d):
    """An int32 row the loops build ``2^n`` factors in."""
    return np.empty(d, np.int32)


#: Work per element the row loops are counted as, for the thread split (``threads.PARALLEL_MIN_WORK``
#: = 2^24): rows split from 2^22 elements, where two threads beat one in wall time on the benchmarks.
_WORK_PER_ELEMENT = 4


def _by_rows(loop, arrays, with_scratch):
    """Run ``loop(*arrays[, scratch])`` over blocks of rows, on ``get_num_threads()`` threads when the rows
    are many (``kernels.threads.split_batch``: the loops release the GIL), else in one call."""
    from . import threads

    rows, d = arrays[0].shape[0], arrays[-1].shape[1]
    blocks = threads.parallel_blocks(rows, rows * d * _WORK_PER_ELEMENT)

    def block(lo, hi):
        parts = [a[lo:hi] for a in arrays]
        loop(*parts, scratch(d)) if with_scratch else loop(*parts)

    if blocks == 1:
        block(0, rows)
    else:
        threads.split_batch(block, rows, blocks)


class _Softmax:
    """The ``"numba"`` kernel of ``softmax``: ``forward(x2) -> out``, ``backward(g2, out) -> dx``, on
    ``(rows, d)`` views."""

    @staticmethod
    def forward(x2):
        out = np.empty_like(x2)
        _by_rows(loops().softmax_forward, (x2, x2.max(axis=1), out), True)
        return out

    @staticmethod
    def backward(g2, s2):
        dx = np.empty(s2.shape, s2.dtype)
        _by_rows(loops().softmax_backward, (np.ascontiguousarray(g2, s2.dtype), s2, dx), False)
        return dx


class _LogSoftmax:
    """The ``"numba"`` kernel of ``log_softmax``: as ``_Softmax``, with the log-softmax saved."""

    @staticmethod
    def forward(x2):
        out = np.empty_like(x2)
        _by_rows(loops().log_softmax_forward, (x2, x2.max(axis=1), out), True)
        return out

    @staticmethod
    def backward(g2, y2):
        dx = np.empty(y2.shape, y2.dtype)
        _by_rows(loops().log_softmax_backward, (np.ascontiguousarray(g2, y2.dtype), y2, dx), True)
        return dx


def fits(x2):
    """Whether the compiled loops take ``x2``: a 2-D C-contiguous NumPy float32 array with rows, and Numba
    installed and enabled."""
    if backend.array_module(x2) is not np or x2.dtype != np.float32 or x2.ndim != 2 or x2.size == 0:
        return False
    return x2.flags.c_contiguous and _select.numba_available() and _jit.enabled()


def choose_softmax(x2):
    """The chooser of ``softmax`` and ``log_softmax`` (``x2``: the input as ``(rows, d)``, softmax along
    its last axis): ``"numba"`` for NumPy float32 C-contiguous inputs of at least ``MIN_ELEMENTS`` when
    Numba is installed, else ``"reference"``."""
    return "numba" if x2.size >= MIN_ELEMENTS and fits(x2) else "reference"


_select.register("softmax", "numba", _Softmax, chooser=choose_softmax, supports=fits, requires="numba")
_select.register("log_softmax", "numba", _LogSoftmax, chooser=choose_softmax, supports=fits, requires="numba")
