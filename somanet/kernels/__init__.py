"""Fast implementations of somanet's heavy ops, and one chooser per op that picks among them.

Each op's math lives in ``somanet.ops`` as plain array code (its ``"reference"`` kernel); the modules
here compute the same results faster: GEMM blocking and window layouts for convolutions, Winograd,
cache blocks, batch splitting over threads, reusable workspaces, and compiled Numba kernels (with the
``fast`` extra: ``pip install somanet[fast]``). ``kernel(op, name)`` (also ``somanet.backends.cpu.kernel``)
forces a kernel; ``kernel_names(op)`` lists them. Importing this package imports no kernel module and
never Numba: each is loaded on its op's first use. ``docs/dev/kernels.md`` describes every chooser.
"""
from ._select import kernel, kernel_names, numba_available, ops  # noqa: F401

__all__ = ["kernel", "kernel_names", "numba_available", "ops"]
