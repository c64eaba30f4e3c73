"""Importing this module loads Numba's runtime the way somanet's compiled kernels do on first use.

The memory benchmark imports it before taking its baseline in a somanet child, so the runtime's
libraries (Numba, llvmlite's LLVM) count as libraries, like PyTorch's at ``import torch``; the step's
peak then covers what the step itself makes resident, compiled kernels loaded from the cache included.
``LOADED`` says whether the runtime was loaded (False without Numba or with ``SOMANET_NUMBA=0``).
"""
from somanet.kernels import _jit

LOADED = False
if _jit.enabled():
    try:
        _jit.load_numba()
        LOADED = True
    except ImportError:
        pass
