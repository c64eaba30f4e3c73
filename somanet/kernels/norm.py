"""Compiled LayerNorm and RMSNorm: one fused loop per row (Numba, the ``fast`` extra).

The reference (``ops/norm.py``) makes several passes over the ``(rows, D)`` activations, each a NumPy
call with its own temporary: the mean, the centred copy, the variance, the scaling, the affine map.
Here each row is read once into registers and cache, its mean and variance are accumulated in float64
(so no overflow rescue is needed for float32 inputs near 1e20), and ``xhat`` and the output are written
in the same loop. Backward does the same for the input gradient (the two row
dot products and the update in one loop); the affine gradients are column sums over rows, left to
NumPy. Registered as the ``"numba"`` kernel of ``layer_norm`` and ``rms_norm``.

Batch norm in training mode (the ``"numba"`` kernel of ``batch_norm``, loops in ``kernels/_loops.py``) runs
one loop per channel of the ``(N, C, S)`` view: float64 mean and variance, then the output, where the
reference makes a pass each for the sums, the centred copy, its squares and the affine map; backward
forms both per-channel sums in one pass and the input gradient in a second, reading the input itself
instead of a saved centred copy (one activation-sized array less kept for backward). Group norm (the
``"numba"`` kernel of ``group_norm``) does the same per sample and group of channels, keeping ``xhat`` for
backward as the reference does.

Numba is imported, and the loops compiled (or loaded from Numba's on-disk cache), on first use, never
at ``import somanet``.
"""
import numpy as np

from .. import backend
from . import _jit, _select
from .softmax import loops

__all__ = ["choose_layer_norm", "choose_rms_norm", "choose_batch_norm", "choose_group_norm"]

#: Fewest elements of the ``(rows, D)`` input for which the compiled loops are chosen.
MIN_ELEMENTS = 1 << 14


def _build(numba):
    """The compiled loops, from the ``numba`` module."""
    njit = numba.njit
    # One thread: the loops are memory-bound, and a parallel region's start-up cost more than it saved.
    # Reassociation lets the row sums run as SIMD partial sums (float64, so the order costs nothing).
    opts = dict(cache=True, fastmath={"reassoc"}, nogil=True)

    @njit(**opts)
    def layer_norm_forward(x, w, b, eps, out, xhat, invstd):
        rows, d = x.shape
        for r in range(rows):
            s = 0.0
            for j in range(d):
                s += x[r, j]
            mean = s / d
            v = 0.0
            for j in range(d):
                c = x[r, j] - mean
                v += c * c
            inv = 1.0 / np.sqrt(v / d + eps)
            invstd[r, 0] = inv
            for j in range(d):
                h = (x[r, j] - mean) * inv
                xhat[r, j] = h
                out[r, j] = h * w[j] + b[j]

    @njit(**opts)
    def rms_norm_forward(x, w, eps, out, y, rinv):
        rows, d = x.shape
        for r in range(rows):
            v = 0.0
            for j in range(d):
                v += x[r, j] * x[r, j]
            inv = 1.0 / np.sqrt(v / d + eps)
            rinv[r, 0] = inv
            for j in range(d):
                h = x[r, j] * inv
                y[r, j] = h
                out[r, j] = h * w[j]

    @njit(**opts)
    def normalized_grad(g, xhat, invstd, w, centred, dx):
        # dx = invstd * (dxhat - xhat * mean(dxhat * xhat) - [mean(dxhat) when centred]), dxhat = g * w.
        rows, d = g.shape
        for r in range(rows):
            proj = 0.0
            total = 0.0
            for j in range(d):
                dh = g[r, j] * w[j]
                proj += dh * xhat[r, j]
                total += dh
            proj /= d
            shift = total / d if centred else 0.0
            inv = invstd[r, 0]
            for j in range(d):
                dx[r, j] = (g[r, j] * w[j] - xhat[r, j] * proj - shift) * inv

    return layer_norm_forward, rms_norm_forward, normalized_grad


def _ones(d, dtype, w):
    return np.ones(d, dtype) if w is None else w


def _outputs(x2):
    """Empty ``(out, normalized input, per-row scale)`` arrays for the forward loops on ``x2`` (rows, d)."""
    rows, d = x2.shape
    return np.empty((rows, d), x2.dtype), np.empty((rows, d), x2.dtype), np.empty((rows, 1), x2.dtype)


class _LayerNorm:
    """The ``"numba"`` kernel of ``layer_norm``: ``forward`` -> ``(out, xhat, invstd)``, ``input_grad``."""

    @staticmethod
    def forward(x2, w, b, eps):
        fwd, _, _ = _jit.compiled("norm", _build)
        d, dtype = x2.shape[1], x2.dtype
        out, xhat, invstd = _outputs(x2)
        fwd(x2, _ones(d, dtype, w), np.zeros(d, dtype) if b is None else b, float(eps), out, xhat, invstd)
        return out, xhat, invstd

    @staticmethod
    def input_grad(g2, xhat, invstd, w, dx2):
        _, _, grad = _jit.compiled("norm", _build)
        grad(np.ascontiguousarray(g2), xhat, invstd, _ones(xhat.shape[1], xhat.dtype, w), True, dx2)
        return dx2


class _RMSNorm:
    """The ``"numba"`` kernel of ``rms_norm``: ``forward`` -> ``(out, y, rinv)``, ``input_grad``."""

    @staticmethod
    def forward(x2, w, eps):
        _, fwd, _ = _jit.compiled("norm", _build)
        out, y, rinv = _outputs(x2)
        fwd(x2, _ones(x2.shape[1], x2.dtype, w), float(eps), out, y, rinv)
        return out, y, rinv

    @staticmethod
    def input_grad(g2, y, rinv, w, dx2):
        _, _, grad = _jit.compiled("norm", _build)
        grad(np.ascontiguousarray(g2), y, rinv, _ones(y.shape[1], y.dtype, w), False, dx2)
        return dx2


def _fits(x2, *params):
    """Whether the compiled loops take these arrays: NumPy float32/float64, C-contiguous, parameters of
    the input's dtype, and Numba installed."""
    if backend.array_module(x2) is not np or x2.dtype not in (np.float32, np.float64) or x2.ndim != 2:
        return False
    if not x2.flags.c_contiguous or any(p is not None and p.dtype != x2.dtype for p in params):
        return False
    return _select.numba_available() and _jit.enabled()


def choose_layer_norm(x2, w=None, b=None):
    """The chooser of ``layer_norm``: ``"numba"`` for NumPy float32/float64 inputs of at least
    ``MIN_ELEMENTS`` when Numba is installed, else ``"reference"``."""
    return "numba" if x2.size >= MIN_ELEMENTS and _fits(x2, w, b) else "reference"


def choose_rms_norm(x2, w=None):
    """The chooser of ``rms_norm``: as ``choose_layer_norm``."""
    return "numba" if x2.size >= MIN_ELEMENTS and _fits(x2, w) else "reference"


class _BatchNorm:
    """The ``"numba"`` kernel of ``batch_norm`` (training statistics) on the ``(N, C, S)`` view: one loop per
    channel computes the mean, the variance and the output; backward's per-channel sums and input
    gradient are one more. The centred input is never stored: backward reads the input itself."""

    @staticmethod
    def forward(xv, w, b, eps):
        """``(out, mean, biased var, invstd)``."""
        c, dtype = xv.shape[1], xv.dtype
        out = np.empty_like(xv)
        mean, var, invstd = np.empty(c, dtype), np.empty(c, dtype), np.empty(c, dtype)
        loops().batch_norm_forward(xv, _ones(c, dtype, w), np.zeros(c, dtype) if b is None else b, float(eps),
                                   out, mean, var, invstd)
        return out, mean, var, invstd

    @staticmethod
    def backward(gv, xv, mean, invstd, w, need_dx):
        """``(dx or None, gweight, gbias)``."""
        c, dtype = xv.shape[1], xv.dtype
        dx = np.empty_like(xv) if need_dx else np.empty((1, 1, 1), dtype)
        gweight, gbias = np.empty(c, dtype), np.empty(c, dtype)
        loops().batch_norm_backward(np.ascontiguousarray(gv, dtype), xv, mean, invstd, _ones(c, dtype, w),
                                    bool(need_dx), dx, gweight, gbias, np.empty(3, dtype))
        return (dx if need_dx else None), gweight, gbias


def fits_batch_norm(xv, w=None, b=None):
    """Whether the compiled batch norm takes these arrays: a NumPy float32/float64 C-contiguous ``(N, C, S)``
    view, parameters of its dtype, and Numba installed."""
    if backend.array_module(xv) is not np or xv.ndim != 3 or not xv.flags.c_contiguous:
        return False
    return _fits(xv.reshape(xv.shape[0], -1), w, b)


def choose_batch_norm(xv, w=None, b=None):
    """The chooser of ``batch_norm`` (training mode; ``xv`` the ``(N, C, S)`` view, ``(N, C)`` inputs are 2-D
    and stay on the reference): ``"numba"`` for at least ``MIN_ELEMENTS`` elements that ``fits_batch_norm``,
    else ``"reference"``."""
    return "numba" if xv.size >= MIN_ELEMENTS and fits_batch_norm(xv, w, b) else "reference"


class _GroupNorm:
    """The ``"numba"`` kernel of ``group_norm`` on the ``(N, C, S)`` view: one loop per sample and group for
    the statistics, ``xhat`` and the output; backward's sums and input gradient in two passes per group."""

    @staticmethod
    def forward(x3, groups, w, b, eps):
        """``(out, xhat (N, groups, C / groups * S), mean, var, invstd)``, statistics ``(N, groups)``."""
        n, c, s = x3.shape
        dtype = x3.dtype
        out, xhat = np.empty_like(x3), np.empty_like(x3)
        mean, var, invstd = (np.empty((n, groups), dtype) for _ in range(3))
        loops().group_norm_forward(x3, groups, _ones(c, dtype, w), np.zeros(c, dtype) if b is None else b,
                                   float(eps), out, xhat, mean, var, invstd)
        return out, xhat.reshape(n, groups, -1), mean, var, invstd

    @staticmethod
    def backward(g3, xhat, invstd, w, need_dx):
        """``(dx or None, gweight, gbias)`` (``g3`` the ``(N, C, S)`` gradient)."""
        n, c, s = g3.shape
        dtype, groups = xhat.dtype, xhat.shape[1]
        dx = np.empty((n, c, s), dtype) if need_dx else np.empty((1, 1, 1), dtype)
        gweight, gbias = np.zeros(c), np.zeros(c)
        loops().group_norm_backward(np.ascontiguousarray(g3, dtype), xhat.reshape(n, c, s), invstd,
                                    _ones(c, dtype, w), groups, bool(need_dx), dx, gweight, gbias,
                                    np.empty(2, dtype))
        return (dx if need_dx else None), gweight.astype(dtype), gbias.astype(dtype)


def fits_group_norm(x3, groups=1, w=None, b=None):
    """Whether the compiled group norm takes these arrays: as ``fits_batch_norm``."""
    return fits_batch_norm(x3, w, b)


def choose_group_norm(x3, groups=1, w=None, b=None):
    """The chooser of ``group_norm`` (``x3`` the ``(N, C, S)`` view): ``"numba"`` for at least
    ``MIN_ELEMENTS`` elements that ``fits_group_norm``, else ``"reference"``."""
    return "numba" if x3.size >= MIN_ELEMENTS and fits_group_norm(x3, groups, w, b) else "reference"


_select.register("layer_norm", "numba", _LayerNorm, chooser=choose_layer_norm,
                 supports=lambda x2, w=None, b=None: _fits(x2, w, b), requires="numba")
_select.register("rms_norm", "numba", _RMSNorm, chooser=choose_rms_norm,
                 supports=lambda x2, w=None: _fits(x2, w), requires="numba")
_select.register("batch_norm", "numba", _BatchNorm, chooser=choose_batch_norm, supports=fits_batch_norm,
                 requires="numba")
_select.register("group_norm", "numba", _GroupNorm, chooser=choose_group_norm, supports=fits_group_norm,
                 requires="numba")
