"""Compiled cross-entropy of class indices: log-softmax and negative log-likelihood in one row loop (Numba,
the ``fast`` extra).

The reference (``ops/loss.py``'s ``CrossEntropy``) is a dozen NumPy calls per step: the row maximum, the
shifted copy, the target gather, the exponential, the sums, the log, the weights and masks, the
reduction; on a classifier's ``(batch, classes)`` logits each call costs more in dispatch than in
arithmetic. Here one loop per row computes the softmax (kept for backward, as the reference does), the
log-sum-exp, the target's term, the label-smoothing term and the row's weight, and sums the loss;
backward is one loop writing ``p * coef - soft * w`` and subtracting at the target. Handles ``(N, C)``
logits (``S = 1`` in ``ops/loss.py``'s view), class weights, ``ignore_index`` and ``label_smoothing``;
float32 only (the loops' ``exp`` is float32). Registered as the ``"numba"`` kernel of ``cross_entropy``.
"""
import numpy as np

from .. import backend
from . import _jit, _select
from .softmax import loops, scratch

__all__ = ["choose_cross_entropy", "fits"]


class _CrossEntropy:
    """The ``"numba"`` kernel of ``cross_entropy`` on ``(n, c)`` logits and ``(n,)`` int64 targets."""

    @staticmethod
    def forward(x, t, weight, ignore_index, label_smoothing):
        """``(loss per row, total, sum of target weights, p, w_t, flat, ignored rows)``."""
        n, c = x.shape
        w = np.ones(c, np.float32) if weight is None else weight
        p = np.empty_like(x)
        w_t = np.empty(n, np.float32)
        flat = np.empty(n, np.int64)
        loss = np.empty(n, np.float32)
        total, denom, ignored = loops().cross_entropy_forward(
            x, t, w, int(ignore_index), float(label_smoothing), p, w_t, flat, loss, scratch(c))
        return loss, total, denom, p, w_t, flat, ignored

    @staticmethod
    def backward(p, t, weight, ignore_index, label_smoothing, g):
        """The input gradient from ``g``, the gradient of each row's loss (0-d: the same for all rows)."""
        c = p.shape[1]
        w = np.ones(c, np.float32) if weight is None else weight
        per_row = g.ndim > 0
        g = np.ascontiguousarray(g, np.float32).reshape(-1)
        dx = np.empty_like(p)
        loops().cross_entropy_backward(p, t, w, int(ignore_index), float(label_smoothing), g, per_row, dx)
        return dx


def fits(x, t, weight=None):
    """Whether the compiled loops take these arrays: ``(n, c)`` C-contiguous NumPy float32 logits, an int64
    ``(n,)`` target, float32 weights, and Numba installed and enabled."""
    if backend.array_module(x) is not np or x.dtype != np.float32 or x.ndim != 2 or x.size == 0:
        return False
    if not x.flags.c_contiguous or t.dtype != np.int64 or t.ndim != 1 or not t.flags.c_contiguous:
        return False
    if weight is not None and (weight.dtype != np.float32 or not weight.flags.c_contiguous):
        return False
    return _select.numba_available() and _jit.enabled()


def choose_cross_entropy(x, t, weight=None):
    """The chooser of ``cross_entropy``: ``"numba"`` whenever ``fits`` (the loop wins from the smallest
    batches, where the reference pays a NumPy call per step), else ``"reference"``."""
    return "numba" if fits(x, t, weight) else "reference"


_select.register("cross_entropy", "numba", _CrossEntropy, chooser=choose_cross_entropy, supports=fits,
                 requires="numba")
