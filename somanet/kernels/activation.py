"""Compiled GELU (exact and tanh) and SiLU: one fused loop for the value and its derivative (Numba, the
``fast`` extra).

The references (``ops/elementwise.py``) are already written for NumPy's speed (exp2 instead of tanh,
in-place buffers), but still make eight to twelve passes over the activations, each a NumPy call. Here
each block of 1,024 elements is read once for the exponential (the vectorisable float32 ``exp`` of
``kernels/_loops.py``: ``exp(-2y)`` for tanh-GELU, ``exp(-x^2 / 2)`` for the Abramowitz & Stegun
``Phi`` the reference uses, ``exp(-x)`` for SiLU) and once for the value and the derivative, which is
saved for backward (a single product with the gradient, as the reference's GELU does). A scalar
``tanh`` in the loop would not be vectorised and gained nothing over NumPy's SIMD ``tanh``. Float32 only.
Registered as the ``"numba"`` kernel of ``gelu`` and ``silu``.
"""
import numpy as np

from .. import backend
from . import _jit, _select
from .softmax import loops

__all__ = ["choose", "fits"]

#: Fewest elements for which the compiled loops are chosen.
MIN_ELEMENTS = 1 << 12


class _Activation:
    """A ``"numba"`` kernel: ``forward(x, need_deriv) -> (out, deriv or None)`` on any C-contiguous float32
    array."""

    def __init__(self, loop):
        self.loop = loop

    def forward(self, x, need_deriv):
        flat = x.reshape(-1)
        out = np.empty_like(flat)
        deriv = np.empty_like(flat) if need_deriv else out
        getattr(loops(), self.loop)(flat, out, deriv, bool(need_deriv), np.empty(1024, np.int32))
        return out.reshape(x.shape), (deriv.reshape(x.shape) if need_deriv else None)


def fits(x, *args):
    """Whether the compiled loops take ``x``: a non-empty C-contiguous NumPy float32 array, and Numba
    installed and enabled."""
    if backend.array_module(x) is not np or x.dtype != np.float32 or x.size == 0 or not x.flags.c_contiguous:
        return False
    return _select.numba_available() and _jit.enabled()


def choose(x, *args):
    """The chooser of ``gelu`` and ``silu``: ``"numba"`` for at least ``MIN_ELEMENTS`` elements that ``fits``,
    else ``"reference"``."""
    return "numba" if x.size >= MIN_ELEMENTS and fits(x) else "reference"


class _Gelu:
    """The ``"numba"`` kernel of ``gelu``: ``forward(x, approximate, need_deriv)``."""

    _tanh = _Activation("gelu_tanh_forward")
    _erf = _Activation("gelu_erf_forward")

    @classmethod
    def forward(cls, x, approximate, need_deriv):
        return (cls._tanh if approximate == "tanh" else cls._erf).forward(x, need_deriv)


_select.register("gelu", "numba", _Gelu, chooser=choose, supports=fits, requires="numba")
_select.register("silu", "numba", _Activation("silu_forward"), chooser=choose, supports=fits, requires="numba")
