"""``somanet.backends``: PyTorch's backend switches, accepted so that code setting them runs unchanged.

The flags are plain module attributes (``somanet.backends.cudnn.benchmark = True``). somanet computes on
the CPU with NumPy, so the GPU flags change nothing; its CPU results are deterministic already.
``somanet.backends.cpu.kernel`` picks the kernel of a heavy op (see that module).
"""
from . import cpu, cuda, cudnn, mkldnn, mps  # noqa: F401
