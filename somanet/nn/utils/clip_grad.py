"""Gradient clipping: by the total norm of all gradients, or elementwise by value.

Both work in place on ``p.grad`` arrays, record no graph, and follow PyTorch's numerics: per-tensor
norms, then the norm of those norms, a clip coefficient ``max_norm / (total_norm + 1e-6)`` capped at 1,
all in the gradients' own dtype.
"""
import math
import types
import warnings

import numpy as np

from ...autograd.tensor import Tensor, _wrap
from ...backend import array_module, default_float

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _as_list(tensors, fn):
    if isinstance(tensors, Tensor):
        return [tensors]
    is_generator = isinstance(tensors, types.GeneratorType)
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{fn}(): expected a Tensor or an iterable of Tensors, got {type(tensors).__name__}") from None
    if is_generator and not tensors:
        warnings.warn(f"{fn}(): `parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}(): expected Tensors, got an element of type {type(t).__name__}")
    return tensors


def _check_norm_type(norm_type, fn):
    try:
        return float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}(): norm_type must be a number or 'inf', got {norm_type!r}") from None


def _vector_norm(x, p):
    """The ``p``-norm of all elements of ``x``, as a scalar array in ``x``'s dtype."""
    xp = array_module(x)
    flat = x.reshape(-1)
    if flat.size == 0:
        return xp.zeros((), dtype=x.dtype)
    if p == 2.0:
        # BLAS dot accumulates in x's precision without a squared temporary.
        return xp.sqrt(xp.dot(flat, flat))
    if p == math.inf:
        return xp.maximum(flat.max(), -flat.min()).astype(x.dtype)
    if p == -math.inf:
        return xp.abs(flat).min()
    if p == 0.0:
        return xp.asarray(xp.count_nonzero(flat), dtype=x.dtype)
    if p == 1.0:
        return xp.abs(flat).sum(dtype=x.dtype)
    a = xp.abs(flat)
    return (a ** p).sum(dtype=x.dtype) ** (1.0 / p)


def _get_total_norm_array(grads, norm_type):
    xp = array_module(*grads) if grads else np
    norms = [_vector_norm(g, norm_type) for g in grads]
    dtype = np.result_type(*[g.dtype for g in grads])
    return _vector_norm(xp.stack([xp.asarray(n, dtype=dtype) for n in norms]), norm_type).astype(dtype, copy=False)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of the norms of ``tensors`` (as if all were concatenated), as a 0-d tensor.

    ``norm_type`` may be ``float('inf')``. With ``error_if_nonfinite=True`` a NaN or infinite total
    raises a RuntimeError. ``foreach`` is accepted for PyTorch compatibility and ignored.
    """
    fn = "get_total_norm"
    tensors = _as_list(tensors, fn)
    norm_type = _check_norm_type(norm_type, fn)
    if not tensors:
        return _wrap(np.zeros((), dtype=default_float), False, None, 0)
    total = _get_total_norm_array([t.array for t in tensors], norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"{fn}(): the total norm of order {norm_type} for gradients from `parameters` is non-finite "
            f"({float(total)}), so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return _wrap(total, False, None, 0)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm + 1e-6))``.

    ``total_norm`` is a number or a 0-d tensor, usually from :func:`get_total_norm`.
    """
    fn = "clip_grads_with_norm_"
    parameters = _as_list(parameters, fn)
    grads = [p.grad.array for p in parameters if p.grad is not None]
    if not grads:
        return
    _scale(grads, float(max_norm), total_norm.array if isinstance(total_norm, Tensor) else total_norm)


def _scale(grads, max_norm, total):
    dtype = total.dtype if isinstance(total, np.ndarray) else grads[0].dtype
    total = np.asarray(total, dtype=dtype)
    coef = np.asarray(max_norm, dtype=dtype) / (total + np.asarray(1e-6, dtype=dtype))
    # Scaling by exactly 1 changes nothing, so it is skipped; NaN fails the test and is applied, as in PyTorch.
    if coef >= 1.0:
        return
    # A non-finite total is already visible in the returned norm (and error_if_nonfinite exists to
    # raise on it); NumPy's generic inf * 0 warning would add nothing.
    with np.errstate(invalid="ignore"):
        for g in grads:
            g *= coef.astype(g.dtype)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients of ``parameters`` in place so that their total norm is at most ``max_norm``.

    The total norm is taken over all gradients together, as if concatenated into one vector.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is clipped.
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm; ``float('inf')`` for the max norm (default 2.0).
        error_if_nonfinite: raise a RuntimeError when the total norm is NaN or infinite.
        foreach: accepted for PyTorch compatibility (the NumPy path is used either way).

    Returns:
        The total norm of the gradients before clipping, a 0-d tensor.

    Example::

        loss.backward()
        somanet.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
    """
    fn = "clip_grad_norm_"
    parameters = _as_list(parameters, fn)
    norm_type = _check_norm_type(norm_type, fn)
    try:
        max_norm = float(max_norm)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}(): max_norm must be a number, got {type(max_norm).__name__}") from None
    grads = [p.grad.array for p in parameters if p.grad is not None]
    if not grads:
        return _wrap(np.zeros((), dtype=default_float), False, None, 0)
    total = _get_total_norm_array(grads, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"{fn}(): the total norm of order {norm_type} for gradients from `parameters` is non-finite "
            f"({float(total)}), so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    _scale(grads, max_norm, total)
    return _wrap(total, False, None, 0)


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of :func:`clip_grad_norm_` (kept for PyTorch compatibility)."""
    warnings.warn("`somanet.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`somanet.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element of ``parameters`` in place to ``[-clip_value, clip_value]``.

    Example::

        somanet.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    fn = "clip_grad_value_"
    parameters = _as_list(parameters, fn)
    try:
        clip_value = float(clip_value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}(): clip_value must be a number, got {type(clip_value).__name__}") from None
    for p in parameters:
        if p.grad is not None:
            g = p.grad.array
            xp = array_module(g)
            xp.clip(g, -clip_value, clip_value, out=g)
