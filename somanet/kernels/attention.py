"""Fast kernels of scaled dot-product attention's softmax (``ops/attention.py``), registered as op
``"attention"``.

The reference shifts every row of the scores by its own maximum and exponentiates with ``exp``. The
kernels compute the same weights faster on NumPy:

- ``"blocked"``: the scores are shifted by the maximum of each (L, S) block rather than of each row
  (NumPy reduces a contiguous block many times faster than many short rows), the row sums are BLAS
  matrix-vector products (``reductions.row_sums``), and without a mask the scores arrive multiplied by
  log2(e) and are exponentiated with ``exp2``, which NumPy runs in half the time of ``exp`` (the op
  folds the factor into its scaling; masked positions are -inf, on which ``exp2`` leaves its vector loop,
  so masked attention keeps ``exp``). Rows whose exponentials sum below ``ROW_SUM_FLOOR`` (far below the
  block's maximum, or fully masked) are redone with their own maximum, and when some block's maximum is
  not finite every row takes the per-row path, so the result is the per-row softmax to float32
  precision.

The chooser takes ``"blocked"`` for NumPy arrays and ``"reference"`` for other array libraries (CuPy).
"""
import numpy as np

from .. import backend
from . import _select
from .reductions import row_sums

__all__ = ["ROW_SUM_FLOOR", "softmax_", "choose"]

#: Row sums of exp(scores - block maximum) below this are recomputed with the row's own maximum: above it
#: the row's largest terms are normal float32 numbers, so the shared shift loses no precision.
ROW_SUM_FLOOR = 1e-15


def _rows_(scores, masked, base2):
    """Softmax over the last axis, in place, each row shifted by its own maximum; rows with nothing to
    attend to give zeros."""
    row_max = scores.max(axis=-1, keepdims=True)
    masked = masked or not np.isfinite(row_max).all()
    if masked:
        row_max[~np.isfinite(row_max)] = 0
    scores -= row_max
    (np.exp2 if base2 else np.exp)(scores, out=scores)
    denom = row_sums(scores)
    if masked:
        denom[denom == 0] = 1
    scores /= denom
    return scores


def softmax_(scores, keep, base2=False):
    """Softmax over the last axis with positions where ``keep`` is False excluded (``keep``: a bool array
    broadcasting against ``scores``, or None); ``scores`` is overwritten (masked positions set to -inf)
    and the result may share its memory. With ``base2`` the scores are taken as already multiplied by
    log2(e). A row with nothing to attend to gives all-zero weights."""
    if keep is not None:
        np.copyto(scores, -np.inf, where=~keep)
    if scores.ndim < 2 or scores.size == 0:
        return _rows_(scores, keep is not None, base2)
    shift = scores.max(axis=(-2, -1), keepdims=True)
    if not np.isfinite(shift).all():
        return _rows_(scores, keep is not None, base2)
    p = np.subtract(scores, shift)
    (np.exp2 if base2 else np.exp)(p, out=p)
    denom = row_sums(p)
    low = denom[..., 0] < ROW_SUM_FLOOR
    if low.any():
        p[low] = _rows_(scores[low], True, base2)
        denom[low] = 1
    p /= denom
    return p


class _Blocked:
    """The ``"blocked"`` kernel: ``softmax_`` (``base2``: it takes log2(e)-scaled scores without a mask)."""

    base2 = True
    softmax_ = staticmethod(softmax_)


def choose(scores):
    """The chooser of ``"attention"`` for the raw scores ``q @ k^T``."""
    return "blocked" if backend.array_module(scores) is np else "reference"


def _numpy(scores):
    return backend.array_module(scores) is np


_select.register("attention", "blocked", _Blocked, chooser=choose, supports=_numpy)
