"""``somanet.backends.cpu``: which kernel each heavy op runs on the CPU.

Like ``torch.backends``' switches, but naming somanet's own kernels. Every heavy op has a chooser that
picks a kernel from the shapes and the environment; ``kernel`` reads or overrides that choice::

    import somanet.backends.cpu as cpu

    cpu.kernel_names("conv2d")             # ('reference', 'gemm', 'winograd_f2', 'winograd_f4')
    with cpu.kernel("conv2d", "reference"):
        y = model(x)                        # the plain im2col convolution
    cpu.kernel("conv2d")                   # None again: the chooser decides

``docs/dev/kernels.md`` lists the ops and their kernels.
"""
from ..kernels._select import kernel, kernel_names, numba_available, ops

__all__ = ["kernel", "kernel_names", "numba_available", "ops"]
