"""Helpers shared by the distributions: parameter broadcasting, probability <-> logit conversion, lazily
computed attributes and the random draws (from somanet's global generator, so ``manual_seed`` makes
sampling reproducible)."""
import math
import numbers

import numpy as np

from .. import backend
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..ops.creation import tensor as _tensor
from ..ops.elementwise import softplus as _softplus_op
from ..ops.shape import broadcast_to
from ..random import numpy_rng

__all__ = ["broadcast_all", "logits_to_probs", "probs_to_logits", "clamp_probs", "lazy_property", "finfo"]


class finfo:
    """Machine limits of a floating dtype: ``eps``, ``tiny`` (smallest normal), ``min`` and ``max``."""

    def __init__(self, dtype):
        info = np.finfo(np.dtype(dtype))
        self.eps = float(info.eps)
        self.tiny = float(info.tiny)
        self.min = float(info.min)
        self.max = float(info.max)


def is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))


def broadcast_all(*values):
    """The values as tensors of one shape.

    Numbers become tensors of the first tensor's dtype (float32 when every value is a number);
    tensors broadcast as in arithmetic, through ``expand`` so that gradients flow back to them.
    """
    dtype = backend.default_float
    for v in values:
        if isinstance(v, Tensor):
            if v.dtype.kind == "f":
                dtype = v.dtype
            break
    tensors = []
    for v in values:
        if isinstance(v, Tensor):
            tensors.append(v)
        elif is_number(v):
            tensors.append(_tensor(v, dtype=dtype))
        else:
            raise ValueError(f"broadcast_all: expected tensors or numbers, got {type(v).__name__}")
    try:
        shape = np.broadcast_shapes(*(t.shape for t in tensors))
    except ValueError:
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(f"broadcast_all: shapes {shapes} cannot be broadcast together") from None
    return tuple(t if t.shape == shape else broadcast_to(t, shape) for t in tensors)


def as_float_tensor(value, like=None):
    """``value`` as a floating tensor; a number takes ``like``'s dtype (float32 without one)."""
    if isinstance(value, Tensor):
        return value
    dtype = like.dtype if isinstance(like, Tensor) else backend.default_float
    return _tensor(value, dtype=dtype)


def sum_rightmost(value, dim):
    """Sum out the ``dim`` rightmost dimensions of ``value``."""
    if dim == 0:
        return value
    return value.reshape(tuple(value.shape[:value.ndim - dim]) + (-1,)).sum(-1)


def softplus(x):
    """``log(1 + exp(x))`` with its exact slope ``sigmoid(x)``; linear only where that is exact in the
    dtype (above 20 in float32, 40 in float64)."""
    return _softplus_op(x, threshold=40.0 if x.dtype == np.float64 else 20.0)


def clamp_probs(probs):
    """Probabilities clamped to ``[eps, 1 - eps]`` of their dtype."""
    eps = finfo(probs.dtype).eps
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    """Log-odds (``is_binary``) or log-probabilities of (clamped) probabilities."""
    ps = clamp_probs(probs)
    if is_binary:
        return ps.log() - (-ps).log1p()
    return ps.log()


def logits_to_probs(logits, is_binary=False):
    """Probabilities from log-odds (``is_binary``: the logistic function) or from unnormalised
    log-probabilities along the last dimension (softmax)."""
    if is_binary:
        return logits.sigmoid()
    return logits.softmax(-1)


class lazy_property:
    """An attribute computed on first access (with gradient recording on) and then stored on the
    instance, like ``probs`` of a distribution built from ``logits``."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.__doc__ = wrapped.__doc__
        self.__name__ = wrapped.__name__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with enable_grad():
            value = self.wrapped(instance)
        instance.__dict__[self.__name__] = value
        return value


def size_tuple(shape):
    """A shape argument (an int, a tuple or list of ints, or a torch-style Size) as a tuple."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


# --------------------------------------------------------------------------- random draws
def _float(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def standard_normal(shape, dtype):
    """N(0, 1) draws of ``shape`` in ``dtype`` from the global generator, as a tensor."""
    arr = numpy_rng().standard_normal(shape, dtype=_float(dtype))
    return Tensor(arr.astype(dtype, copy=False))


def uniform(shape, dtype, low=0.0, high=1.0):
    """Uniform draws in ``[low, high)`` of ``shape`` in ``dtype`` from the global generator, as a tensor."""
    arr = numpy_rng().random(shape, dtype=_float(dtype))
    if low != 0.0 or high != 1.0:
        arr = (arr * (high - low) + low).astype(arr.dtype, copy=False)
    return Tensor(arr.astype(dtype, copy=False))


def standard_gamma_array(concentration):
    """Gamma(concentration, 1) draws (one per entry of the array ``concentration``), floored at the
    dtype's smallest normal number so that logarithms of them stay finite."""
    dtype = concentration.dtype
    draws = numpy_rng().standard_gamma(concentration.astype(np.float64))
    draws = np.asarray(draws, dtype=np.float64).astype(dtype)
    return np.maximum(draws, dtype.type(finfo(dtype).tiny))


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
