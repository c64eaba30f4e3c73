"""Compiled dropout: the threshold, scale and product in one loop (Numba, the ``fast`` extra).

The random numbers are drawn exactly as the reference (``ops/dropout.py``) draws them, one NumPy
``Generator.random`` call on somanet's generator, so a seed gives the same mask with either kernel and
``manual_seed`` reproducibility (a resumed training run) does not depend on Numba being installed. What
is fused is the rest: the reference compares the draws with ``p`` (a boolean array), converts that to a
float mask, scales it, and multiplies the input; here one loop writes the output and a one-byte keep
flag per element (a quarter of the float mask the reference keeps for backward), and backward is one
loop over the flags. The products are the reference's (``x * scale`` or ``x * 0``), so the results are
bit for bit the same. Registered as the ``"numba"`` kernel of ``dropout`` (elementwise dropout;
channel-wise and alpha dropout stay on the reference).
"""
import numpy as np

from .. import backend
from . import _jit, _select
from .softmax import loops

__all__ = ["choose", "fits"]

#: Fewest elements for which the compiled loop is chosen.
MIN_ELEMENTS = 1 << 12


class _Dropout:
    """The ``"numba"`` kernel of ``dropout``: ``forward(x, u, p, scale) -> (out, keep)``, ``backward``."""

    @staticmethod
    def forward(x, u, p, scale):
        out = np.empty_like(x)
        keep = np.empty(x.shape, np.bool_)
        loops().dropout_forward(x.reshape(-1), u.reshape(-1), u.dtype.type(p), x.dtype.type(scale),
                                out.reshape(-1), keep.reshape(-1))
        return out, keep

    @staticmethod
    def backward(g, keep, scale):
        dx = np.empty(keep.shape, g.dtype)
        loops().dropout_backward(np.ascontiguousarray(g).reshape(-1), keep.reshape(-1), g.dtype.type(scale),
                                 dx.reshape(-1))
        return dx


def fits(x, *args):
    """Whether the compiled loop takes ``x``: a non-empty C-contiguous NumPy float32/float64 array, and
    Numba installed and enabled."""
    if backend.array_module(x) is not np or x.dtype not in (np.float32, np.float64) or x.size == 0:
        return False
    return x.flags.c_contiguous and _select.numba_available() and _jit.enabled()


def choose(x, *args):
    """The chooser of ``dropout``: ``"numba"`` for at least ``MIN_ELEMENTS`` elements that ``fits``, else
    ``"reference"``."""
    return "numba" if x.size >= MIN_ELEMENTS and fits(x) else "reference"


_select.register("dropout", "numba", _Dropout, chooser=choose, supports=fits, requires="numba")
