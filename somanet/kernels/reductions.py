"""Fast reductions: the per-channel and per-row sums of the normalisation ops (``ops/norm.py``) and the row
sums of softmax, cross-entropy and attention (``ops/reduce.py``'s ``sums_along``), written as BLAS
matrix-vector products and SIMD dot products.

NumPy's ``sum`` along a short axis, or over axis 0 of a 2-D array, pays a loop start per output and
walks memory with a stride; a matrix-vector product with a vector of ones (or of ``1 / D`` for means)
runs the same reduction in BLAS's vectorised kernels, and ``vecdot`` along a contiguous last axis is one
SIMD dot product per output. Below ``VECDOT_MIN`` elements per dot product the per-call overhead wins and
``einsum`` over the whole array is faster. Registered as the ``"blas"`` kernel of ``norm_reductions``
(chosen for every NumPy array); the plain reductions in ``ops/norm.py`` are its reference. ``row_sums``
is the ``"blas"`` kernel of op ``row_sums`` (chosen for C-contiguous NumPy float32/float64 arrays summed
along their last axis); ``xp.sum`` in ``ops/reduce.py`` is its reference.
"""
import numpy as np

from .. import backend
from . import _select

__all__ = ["VECDOT_MIN", "per_channel_sums", "per_channel_total", "row_dots", "row_means", "column_sums",
           "row_sums", "choose_row_sums"]

#: Fewest elements per dot product for which ``vecdot`` beats ``einsum``.
VECDOT_MIN = 16


def per_channel_sums(a, b):
    """``sum(a * b)`` over every axis but 1 of two ``(N, C)`` or ``(N, C, S)`` arrays, without a
    full-size temporary."""
    if a.ndim == 2:
        return np.einsum("nc,nc->c", a, b)
    if a.shape[2] >= VECDOT_MIN:
        return np.vecdot(a, b).sum(axis=0)
    return np.einsum("ncs,ncs->c", a, b)


def per_channel_total(a):
    """``sum(a)`` over every axis but 1 of an ``(N, C)`` or ``(N, C, S)`` array (column sums of a 2-D one
    as a matrix-vector product)."""
    if a.ndim == 2:
        return np.ones(a.shape[0], dtype=a.dtype) @ a
    if a.shape[2] >= VECDOT_MIN:
        return a.sum(axis=2).sum(axis=0)
    return a.sum(axis=(0, 2))


def row_dots(a, b):
    """``sum(a * b, axis=-1)`` without a full-size temporary."""
    if a.shape[-1] >= VECDOT_MIN:
        return np.vecdot(a, b)
    return np.einsum("...d,...d->...", a, b)


def row_means(a):
    """Row means of a 2-D ``(rows, D)`` array as a ``(rows, 1)`` column: the product with ``1 / D``."""
    d = a.shape[1]
    return (a @ np.full(d, 1.0 / d, dtype=a.dtype))[:, None]


def column_sums(a):
    """Column sums of a 2-D array: the product of a row of ones with it."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def row_sums(a):
    """``a.sum(axis=-1, keepdims=True)``; for a C-contiguous float32/float64 array one matrix-vector product
    with a vector of ones, since NumPy's reduction pays a loop start per row."""
    if not _row_sums_fit(a):
        return a.sum(axis=-1, keepdims=True)
    n = a.shape[-1]
    return (a.reshape(-1, n) @ np.ones(n, a.dtype)).reshape(a.shape[:-1] + (1,))


_ROW_SUM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _row_sums_fit(a):
    return a.ndim > 0 and a.size > 0 and a.flags.c_contiguous and a.dtype in _ROW_SUM_DTYPES


def choose_row_sums(a, dim):
    """The chooser of ``row_sums`` (``a.sum(axis=dim, keepdims=True)``): ``"blas"`` for a C-contiguous
    NumPy float32/float64 array summed along its last axis, else ``"reference"``."""
    if type(a) is np.ndarray and dim in (-1, a.ndim - 1) and _row_sums_fit(a):
        return "blas"
    return "reference"


class _Blas:
    """The ``"blas"`` kernel of ``norm_reductions``: the five reductions above."""

    per_channel_sums = staticmethod(per_channel_sums)
    per_channel_total = staticmethod(per_channel_total)
    row_dots = staticmethod(row_dots)
    row_means = staticmethod(row_means)
    column_sums = staticmethod(column_sums)


def choose(a):
    """The chooser of ``norm_reductions``: ``"blas"`` for NumPy arrays, ``"reference"`` otherwise."""
    return "blas" if backend.array_module(a) is np else "reference"


_select.register("norm_reductions", "blas", _Blas, chooser=choose, supports=lambda a: choose(a) == "blas")
_select.register("row_sums", "blas", lambda a, dim: row_sums(a), chooser=choose_row_sums,
                 supports=lambda a, dim: choose_row_sums(a, dim) == "blas")
