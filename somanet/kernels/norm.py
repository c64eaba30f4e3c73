"""Compiled LayerNorm and RMSNorm: one fused loop per row (Numba, the ``fast`` extra).

The reference (``ops/norm.py``) makes several passes over the ``(rows, D)`` activations, each a NumPy
call with its own temporary: the mean, the centred copy, the variance, the scaling, the affine map.
Here each row is read once into registers and cache, its mean and variance are accumulated in float64
(so no overflow rescue is needed for float32 inputs near 1e20), and ``xhat`` and the output are written
in the same loop. Backward does the same for the input gradient (the two row
dot products and the update in one loop); the affine gradients are column sums over rows, left to
NumPy. Registered as the ``"numba"`` kernel of ``layer_norm`` and ``rms_norm``.

Numba is imported, and the loops compiled (or loaded from Numba's on-disk cache), on first use, never
at ``import somanet``.
"""
import numpy as np

from .. import backend
from . import _jit, _select

__all__ = ["choose_layer_norm", "choose_rms_norm"]

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


_select.register("layer_norm", "numba", _LayerNorm, chooser=choose_layer_norm,
                 supports=lambda x2, w=None, b=None: _fits(x2, w, b), requires="numba")
_select.register("rms_norm", "numba", _RMSNorm, chooser=choose_rms_norm,
                 supports=lambda x2, w=None: _fits(x2, w), requires="numba")
