"""Small helpers shared by the op families: operand conversion, dim normalisation and shared constants."""
import math

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, _wrap

#: ``exp(x) == exp2(x * LOG2_E)``: NumPy's float32 exp2 runs in half the time of its exp, so ops that scale
#: their argument anyway fold this factor in, and call ``exp2_``.
LOG2_E = math.log2(math.e)

#: Unbounded clip limit: ``np.clip(a, lo, INF)`` takes NumPy's vectorised loop where ``np.maximum(a, lo)``
#: does not, with the same results, NaN included.
INF = math.inf

# NumPy's exp2 runs its vector loop only for arguments whose result is a normal number (within [-126, 126]
# in float32) and a far slower scalar path outside; NumPy's exp has no such cliff. ``exp2_`` clips the
# arguments at -126 first, so that a result that should underflow is 2^-126 (1.2e-38), which the formulas
# that use it (GELU's) turn into their limits within float32 rounding. The overflow side is left alone: an
# infinite result must stay infinite there (tanh-GELU at -inf is NaN, as in PyTorch), and the tanh formula
# only reaches it below x = -9.
_EXP2_LIMIT = {np.dtype(np.float32): 126.0, np.dtype(np.float64): 1021.0}


def exp2_(t):
    """``2 ** t`` in place on a float array, its arguments clipped at exp2's fast lower limit first."""
    xp = backend.array_module(t)
    limit = _EXP2_LIMIT.get(t.dtype)
    if limit is not None:
        xp.clip(t, -limit, INF, out=t)
    return xp.exp2(t, out=t)


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
    return ensure_tensor(x)


def ensure_tensor(x, op=None, what="input"):
    """``x`` as a Tensor: a Tensor is returned as is, an ndarray is wrapped without a copy, and numbers
    or nested sequences of numbers become a new tensor with somanet's dtype policy (``backend.as_array``).

    Anything else raises ``TypeError`` naming ``op`` (the op's name, for the message) and ``what``.
    """
    if isinstance(x, Tensor):
        return x
    try:
        return Tensor(backend.as_array(x))
    except (TypeError, ValueError):
        where = f"{op}(): " if op else ""
        raise TypeError(f"{where}{what} must be a Tensor (or an array, a number or a sequence of numbers), "
                        f"got {type(x).__name__}") from None


def int_result(arr):
    """A plain int64 tensor that never carries gradient (indices, counts)."""
    return _wrap(arr.astype(np.int64, copy=False), False, None, 0)


def nonzero(input, *, as_tuple=False):
    """Indices of the nonzero elements: an ``(n, ndim)`` int64 tensor, or with ``as_tuple=True`` a tuple of
    ``ndim`` 1-d tensors (a 0-d input counts as 1-d).

    Defined here, below both ``index`` and ``elementwise`` (one-argument ``where``), which use it.
    """
    a = ensure_tensor(input, "nonzero").array
    xp = backend.array_module(a)
    if as_tuple:
        return tuple(int_result(i) for i in xp.nonzero(xp.atleast_1d(a)))
    return int_result(xp.argwhere(a))


def pick_dim(dim, axis, op):
    """Resolve PyTorch's ``dim=`` and NumPy's ``axis=`` alias into one value."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}(): got both dim= and its alias axis=; pass only one")
        return axis
    return dim


def normalize_dims(dim, ndim, op):
    """Return ``dim`` as a sorted tuple of non-negative axes (None means all axes).

    A 0-d tensor accepts dim 0 and -1, as in PyTorch, and has no axis to name: its dims are ``()``.
    """
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
    if not ndim:
        return ()
    return tuple(sorted(out))


def normalize_dim(dim, ndim, op):
    """One dimension as a non-negative int, with a clear range error."""
    nd = max(ndim, 1)
    d = int(dim)
    if not -nd <= d < nd:
        raise IndexError(f"{op}(): dimension {d} is out of range for a tensor with {ndim} dimensions "
                         f"(expected a dim in [{-nd}, {nd - 1}])")
    return d % nd


def one_element(fn, x, *args, **kwargs):
    """``fn(x, ...)`` for a 0-d tensor ``x``, computed on a 1-element view of it and reshaped back to 0-d.

    NumPy returns a scalar, not an array, from an op on 0-d arrays, and a scalar cannot be written into:
    ops that work in place on their intermediate results (the activations, softmax) send 0-d inputs here,
    so that forward and backward both see 1-element arrays.
    """
    return fn(x.reshape(1), *args, **kwargs).reshape(())


def install(**methods):
    """Install functions as Tensor methods (the op families call this once at import)."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


# --------------------------------------------------------------------------- branch-free selection
# NumPy's ``where`` (and ``putmask``, ``copyto(where=)``) branches once per element, and when the condition
# flips at random, as the sign of an activation does, the branch predictor misses half the time. The
# helpers below give the same results with whole-array
# arithmetic or bit operations, which run at memory speed whatever the condition looks like.
_SELECT_MIN = 1 << 12
_INT_OF_SIZE = {2: np.int16, 4: np.int32, 8: np.int64}


def _bit_mask(cond, int_type, invert=False):
    """``cond`` (bool) as integers of ``int_type``: all bits set where True (False with ``invert``), else 0."""
    m = cond.view(np.uint8).astype(int_type)
    if invert:
        m -= 1
    else:
        np.negative(m, out=m)
    return m


def select(cond, a, b):
    """``where(cond, a, b)`` for a bool array ``cond`` and float ``a`` and ``b`` of one dtype (arrays or
    scalars; everything broadcasts), without a branch per element.

    Exact for every value, infinities, NaN and signed zeros included: the result's bits are ``b ^ ((a ^ b)
    & mask)``, at memory speed whatever the condition looks like. Small arrays and other array libraries go
    to ``where``.
    """
    xp = backend.array_module(cond, a, b)
    if xp is not np:
        return xp.where(cond, a, b)
    dtype = np.result_type(a, b)  # as ``where`` promotes; Python scalars are weak
    shape = np.broadcast_shapes(np.shape(cond), np.shape(a), np.shape(b))
    if math.prod(shape) < _SELECT_MIN or dtype.kind != "f" or dtype.itemsize not in _INT_OF_SIZE:
        return np.where(cond, a, b).astype(dtype, copy=False)
    it = _INT_OF_SIZE[dtype.itemsize]
    a_bits = np.asarray(a, dtype).view(it)
    b_bits = np.asarray(b, dtype).view(it)
    for bits, other, invert in ((b_bits, a_bits, False), (a_bits, b_bits, True)):
        if bits.ndim == 0 and not bits:  # one side is +0.0: keep the other's bits where it is chosen
            out = _bit_mask(cond, it, invert)
            if out.shape != shape:
                out = np.broadcast_to(out, shape).copy()
            out &= other
            return out.view(dtype)
    out = np.bitwise_xor(a_bits, b_bits, out=np.empty(shape, it))
    out &= _bit_mask(cond, it)
    out ^= b_bits
    return out.view(dtype)
