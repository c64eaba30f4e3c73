"""Fast reductions for the normalisation ops: the per-channel and per-row sums of ``ops/norm.py`` written
as BLAS matrix-vector products and SIMD dot products.

NumPy's ``sum`` along a short axis, or over axis 0 of a 2-D array, pays a loop start per output and
walks memory with a stride; a matrix-vector product with a vector of ones (or of ``1 / D`` for means)
runs the same reduction in BLAS's vectorised kernels, and ``vecdot`` along a contiguous last axis is one
SIMD dot product per output. Below ``VECDOT_MIN`` elements per dot product the per-call overhead wins and
``einsum`` over the whole array is faster. Registered as the ``"blas"`` kernel of ``norm_reductions``
(chosen for every NumPy array); the plain reductions in ``ops/norm.py`` are its reference.
"""
import numpy as np

from .. import backend
from . import _select

__all__ = ["VECDOT_MIN", "per_channel_sums", "per_channel_total", "row_dots", "row_means", "column_sums"]

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
