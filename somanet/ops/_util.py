"""Small helpers shared by the op families: operand conversion, dim normalisation and shared constants."""
import math

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor

#: ``exp(x) == exp2(x * LOG2_E)``: NumPy's float32 exp2 runs in half the time of its exp, so ops that scale
#: their argument anyway fold this factor in.
LOG2_E = math.log2(math.e)


def as_operand(x):
    """Turn an op argument into a Tensor, or a Python scalar that NumPy treats as weakly typed.

    NumPy scalars become Python scalars so that ``float32 + np.float64(2)`` stays float32, as in PyTorch.
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.generic):  # before float: np.float64 is a subclass of float
        return x.item()
    if isinstance(x, (bool, int, float)):
        return x
    return Tensor(backend.as_array(x))


def ensure_tensor(x, name="input"):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.generic, np.ndarray, list, tuple)):
        return Tensor(backend.as_array(x))
    raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")


def pick_dim(dim, axis, op):
    """Resolve PyTorch's ``dim=`` and NumPy's ``axis=`` alias into one value."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}(): got both dim= and its alias axis=; pass only one")
        return axis
    return dim


def normalize_dims(dim, ndim, op):
    """Return ``dim`` as a sorted tuple of non-negative axes (None means all axes)."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        dims = tuple(dim)
    else:
        dims = (dim,)
    out = []
    for d in dims:
        d = int(d)
        nd = max(ndim, 1)
        if not -nd <= d < nd:
            raise IndexError(f"{op}(): dimension {d} is out of range for a tensor with {ndim} dimensions "
                             f"(expected a dim in [{-nd}, {nd - 1}])")
        out.append(d % nd)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}(): dim {dim} repeats a dimension")
    return tuple(sorted(out))


def normalize_dim(dim, ndim, op):
    """One dimension as a non-negative int, with a clear range error."""
    nd = max(ndim, 1)
    d = int(dim)
    if not -nd <= d < nd:
        raise IndexError(f"{op}(): dimension {d} is out of range for a tensor with {ndim} dimensions "
                         f"(expected a dim in [{-nd}, {nd - 1}])")
    return d % nd


def install(**methods):
    """Install functions as Tensor methods (the op families call this once at import)."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
