"""Reusable scratch memory for the big temporaries of one kernel call (window buffers, padded inputs).

A fresh multi-megabyte NumPy array is new pages from the operating system, and faulting them in costs
more than the copy that fills them; a buffer that was used before is already mapped. Buffers are kept
per thread and per named slot, up to ``LIMIT`` bytes each; the arrays handed out are views that must not
outlive the kernel call that asked for them.
"""
import threading

import numpy as np

__all__ = ["scratch", "allocator", "release_workspace"]


class _Workspace(threading.local):
    """This thread's buffers, one per ``(slot, dtype)``."""

    LIMIT = 64 * 2 ** 20

    def __init__(self):
        self.buffers = {}

    def get(self, slot, shape, dtype):
        """An uninitialised ``shape`` array from ``slot``'s buffer (grown as needed)."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        if size * dtype.itemsize > self.LIMIT:
            return np.empty(shape, dtype)
        key = (slot, dtype)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype)
            self.buffers[key] = buf
        return buf[:size].reshape(shape)

    def clear(self):
        self.buffers.clear()


_workspace = _Workspace()


def scratch(slot, shape, dtype, xp=np):
    """A temporary, uninitialised array of ``shape`` from this thread's buffer ``slot`` (a fresh array off
    NumPy)."""
    if xp is not np:
        return xp.empty(shape, dtype)
    return _workspace.get(slot, shape, dtype)


def allocator(slot, xp=np):
    """``scratch`` of ``slot`` as the ``(shape, dtype) -> array`` allocator that ``ops._windows`` takes."""
    return lambda shape, dtype: scratch(slot, shape, dtype, xp)


def release_workspace():
    """Free the scratch buffers that convolution and pooling kernels keep between calls (this thread's)."""
    _workspace.clear()
