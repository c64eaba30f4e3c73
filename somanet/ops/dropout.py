"""Dropout: elementwise, channel-wise (1d/2d/3d) and alpha dropout, all drawing their masks from
somanet's default generator so that ``manual_seed`` makes a run reproducible.

Every variant is the same fused op ``out = x * mask (+ shift)`` with ``backward = grad * mask``; they
differ only in the mask's shape and values. ``inplace=True`` is accepted for PyTorch compatibility but
the result is always a new tensor (the autograd engine would otherwise have to version-check every
dropout input).
"""
import math
import warnings

import numpy as np

from .. import backend, devices
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..random import numpy_rng

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "feature_dropout", "alpha_dropout",
           "feature_alpha_dropout"]

# The negative saturation of SELU, -scale * alpha, that alpha dropout drops values to.
_SELU_ALPHA_PRIME = 1.7580993408473766


class Dropout(Function):
    """``x * mask + shift`` where ``mask`` (already scaled) broadcasts against ``x``."""

    def forward(ctx, a, mask, shift=None):
        ctx.save_for_backward(mask)
        out = a * mask
        if shift is not None:
            out += shift
        return out

    def backward(ctx, grad):
        (mask,) = ctx.saved
        return grad * mask, None, None

    def grad_graph(ctx, grad):
        (mask,) = ctx.saved
        return grad * Tensor(mask), None, None


class FusedDropout(Function):
    """Elementwise dropout on the ``dropout`` kernel: ``u`` the uniform draws (made as the reference makes
    them), kept where ``u >= p`` and scaled by ``scale``; the one-byte keep flags are saved."""

    def forward(ctx, a, u, p=0.5, scale=1.0, kernel=None):
        out, keep = kernel.forward(a, u, p, scale)
        ctx.kernel, ctx.scale = kernel, scale
        ctx.save_for_backward(keep)
        return out

    def backward(ctx, grad):
        (keep,) = ctx.saved
        return ctx.kernel.backward(grad, keep, ctx.scale), None

    def grad_graph(ctx, grad):
        (keep,) = ctx.saved
        mask = keep.astype(grad.dtype)
        mask *= grad.dtype.type(ctx.scale)
        return grad * Tensor(mask), None


def _dropout_kernel(x):
    """The ``dropout`` kernel for the array ``x`` (``kernels/dropout.py``), or None for the code here."""
    from ..kernels import _select

    return _select.implementation("dropout", _select.choose("dropout", x))


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}(): dropout probability has to be between 0 and 1, but got {p}")


def _as_float_tensor(x, op):
    if not isinstance(x, Tensor):
        x = Tensor(backend.as_array(x))
    if x.dtype.kind != "f":
        raise TypeError(f"{op}(): expected a floating point input, got dtype {x.dtype}")
    return x


def _keep_mask(shape, p, dtype, generator):
    """A ``dtype`` array of 0s and 1s, each 1 with probability ``1 - p``."""
    rng = numpy_rng(generator)
    draw_dtype = np.float32 if dtype == np.float32 else np.float64
    keep = rng.random(shape, dtype=draw_dtype) >= p
    return keep.astype(dtype)


def _apply(input, p, training, mask_shape, generator, op, alpha=False):
    _check_p(p, op)
    input = _as_float_tensor(input, op)
    if not training or p == 0.0 or input.array.size == 0:
        return input
    dtype = input.dtype
    fast = None
    if not alpha and p < 1.0 and tuple(mask_shape) == tuple(input.shape):
        fast = _dropout_kernel(input.array)
    if fast is not None:
        # The same draws as ``_keep_mask``: a seed gives the same mask with either kernel.
        u = numpy_rng(generator).random(mask_shape, dtype=np.float32 if dtype == np.float32 else np.float64)
        return FusedDropout.apply(input, u, p=p, scale=float(dtype.type(1.0 / (1.0 - p))), kernel=fast)
    if p < 1.0:
        # Drawn on the host from somanet's generator, so a seed gives the same mask on every device.
        keep = devices.move(_keep_mask(mask_shape, p, dtype, generator), input.device)
    else:
        keep = array_module(input.array).zeros(mask_shape, dtype=dtype)
    if not alpha:
        if p < 1.0:
            keep *= dtype.type(1.0 / (1.0 - p))
        return Dropout.apply(input, keep)
    if p == 1.0:
        return Dropout.apply(input, keep)
    # Alpha dropout sets dropped units to SELU's saturation value and rescales so that mean and
    # variance of a standardised input are kept: out = a * (x * keep + alpha' * (keep - 1)) + alpha' a p.
    a = 1.0 / math.sqrt((_SELU_ALPHA_PRIME ** 2 * p + 1) * (1 - p))
    shift = (keep - 1) * dtype.type(_SELU_ALPHA_PRIME * a) + dtype.type(_SELU_ALPHA_PRIME * a * p)
    keep *= dtype.type(a)
    return Dropout.apply(input, keep, shift)


def _feature_shape(shape):
    """Mask shape for channel-wise dropout of ``(N, C, *)``: one draw per (sample, channel)."""
    return shape[:2] + (1,) * (len(shape) - 2)


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``; identity when not
    ``training``. Any shape.

    >>> y = dropout(x, 0.2, training=model.training)
    """
    input = _as_float_tensor(input, "dropout")
    return _apply(input, p, training, input.shape, generator, "dropout")


def feature_dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Channel-wise dropout of ``(N, C, *)``: zero whole channels with probability ``p``, scale the rest
    by ``1 / (1 - p)``."""
    input = _as_float_tensor(input, "feature_dropout")
    if input.ndim < 2:
        raise RuntimeError(f"feature_dropout(): expected an input of shape (N, C, *), got shape {tuple(input.shape)}")
    return _apply(input, p, training, _feature_shape(input.shape), generator, "feature_dropout")


def _unbatched_feature(input, p, training, generator, op):
    # Unbatched (C, *) input: the mask has one entry per channel.
    shape = (input.shape[0],) + (1,) * (input.ndim - 1)
    return _apply(input, p, training, shape, generator, op)


def dropout1d(input, p=0.5, training=True, inplace=False, generator=None):
    """Channel-wise dropout of ``(N, C, L)`` or unbatched ``(C, L)`` inputs (whole channels are zeroed)."""
    _check_p(p, "dropout1d")
    input = _as_float_tensor(input, "dropout1d")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d(): expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {tuple(input.shape)}")
    if input.ndim == 2:
        return _unbatched_feature(input, p, training, generator, "dropout1d")
    return _apply(input, p, training, _feature_shape(input.shape), generator, "dropout1d")


def dropout2d(input, p=0.5, training=True, inplace=False, generator=None):
    """Channel-wise dropout of ``(N, C, H, W)`` inputs (whole feature maps are zeroed).

    As in PyTorch, a 3-D input is treated as ``(N, C, L)`` (1-D channel-wise dropout, with a warning).
    """
    _check_p(p, "dropout2d")
    input = _as_float_tensor(input, "dropout2d")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: received a {input.ndim}-D input of shape {tuple(input.shape)}; dropout2d "
                      f"expects (N, C, H, W) or (C, H, W). Use dropout for other shapes.", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: received a 3-D input; as in PyTorch it is treated as (N, C, L) and whole "
                      "channels are dropped per sample. Use dropout1d to make this explicit.", stacklevel=2)
    if input.ndim < 2:
        raise RuntimeError(f"dropout2d(): expected an input of shape (N, C, H, W), got shape {tuple(input.shape)}")
    return _apply(input, p, training, _feature_shape(input.shape), generator, "dropout2d")


def dropout3d(input, p=0.5, training=True, inplace=False, generator=None):
    """Channel-wise dropout of ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` inputs."""
    _check_p(p, "dropout3d")
    input = _as_float_tensor(input, "dropout3d")
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: received a {input.ndim}-D input of shape {tuple(input.shape)}; dropout3d "
                      f"expects (N, C, D, H, W) or (C, D, H, W). Use dropout for other shapes.", stacklevel=2)
    if input.ndim != 5:
        return _unbatched_feature(input, p, training, generator, "dropout3d")
    return _apply(input, p, training, _feature_shape(input.shape), generator, "dropout3d")


def alpha_dropout(input, p=0.5, training=False, inplace=False, generator=None):
    """Dropout for self-normalising (SELU) networks: dropped units take SELU's negative saturation value
    and the result is affinely rescaled to keep zero mean and unit variance. Any shape."""
    input = _as_float_tensor(input, "alpha_dropout")
    return _apply(input, p, training, input.shape, generator, "alpha_dropout", alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False, generator=None):
    """Alpha dropout of whole channels of ``(N, C, *)`` inputs."""
    input = _as_float_tensor(input, "feature_alpha_dropout")
    if input.ndim < 2:
        raise RuntimeError(f"feature_alpha_dropout(): expected an input of shape (N, C, *), got shape "
                           f"{tuple(input.shape)}")
    return _apply(input, p, training, _feature_shape(input.shape), generator, "feature_alpha_dropout", alpha=True)
