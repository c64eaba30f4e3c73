"""Normalisation layers: batch norm (1d/2d/3d), instance norm (1d/2d/3d), layer norm, RMS norm,
group norm and local response norm, each calling one fused op.

Parameter and buffer names, shapes and initial values are PyTorch's: ``weight`` (ones), ``bias``
(zeros), ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (an int64 0).
"""
import numbers

import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from .. import functional as F
from .. import init
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "RMSNorm", "GroupNorm", "LocalResponseNorm"]


def _float_dtype(dtype):
    return backend.to_dtype(dtype) or backend.default_float



def _affine_parameters(module, shape, affine, bias, dtype):
    """Give a norm layer its ``weight`` and ``bias`` of ``shape`` (or register them as None when off)."""
    if affine:
        module.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            module.bias = Parameter(np.empty(shape, dtype=dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module):
    """PyTorch's initialisation of a norm layer's affine parameters: weight ones, bias zeros."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)

class _NormBase(Module):
    """Shared state of batch and instance norm: affine parameters and running statistics over ``C``."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        dt = _float_dtype(dtype)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.empty(num_features, dtype=dt))
            if bias:
                self.bias = Parameter(np.empty(num_features, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        """Zero ``running_mean`` and ``num_batches_tracked``, set ``running_var`` to one."""
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _describe(self):
        return f"{type(self).__name__}({self.num_features})"

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _dims = ()
    _layout = ""

    def forward(self, input):
        shape = tuple(getattr(input, "shape", ()))
        if len(shape) not in self._dims:
            raise ValueError(f"{self._describe()}: expected a {' or '.join(f'{d}-D' for d in self._dims)} input "
                             f"{self._layout}, got shape {shape}")
        if shape[1] != self.num_features:
            raise ValueError(f"{self._describe()}: expected {self.num_features} channels in dim 1 of the input "
                             f"{self._layout}, got shape {shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.array += 1
            if self.momentum is None:
                # momentum=None: a cumulative moving average over every batch seen.
                factor = 1.0 / float(self.num_batches_tracked.array)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)``: per channel, normalise with the batch's mean
    and biased variance in training (and blend them into ``running_mean``/``running_var`` with ``momentum``;
    ``momentum=None`` keeps a cumulative average), with the running statistics in evaluation.

    >>> BatchNorm1d(100)(somanet.randn(20, 100)).shape
    (20, 100)
    """

    _dims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)``; see ``BatchNorm1d``."""

    _dims = (4,)
    _layout = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over ``(N, C, D, H, W)``; see ``BatchNorm1d``."""

    _dims = (5,)
    _layout = "(N, C, D, H, W)"


class _InstanceNorm(_NormBase):
    _batched = 3
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        shape = tuple(getattr(input, "shape", ()))
        if len(shape) not in (self._batched - 1, self._batched):
            raise ValueError(f"{self._describe()}: expected a {self._batched - 1}-D or {self._batched}-D input "
                             f"{self._layout}, got shape {shape}")
        unbatched = len(shape) == self._batched - 1
        channels = shape[0] if unbatched else shape[1]
        if channels != self.num_features and self.affine:
            raise ValueError(f"{self._describe()}: expected {self.num_features} channels in dim "
                             f"{0 if unbatched else 1} of the input {self._layout}, got shape {shape}")
        if unbatched:
            input = F.unsqueeze(input, 0)
        out = F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              self.momentum if self.momentum is not None else 0.0, self.eps)
        return F.squeeze(out, 0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of ``(N, C, L)`` or ``(C, L)``: each channel of each sample is normalised
    over its positions. No affine parameters and no running statistics unless asked for."""

    _batched = 3
    _layout = "(N, C, L) or (C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of ``(N, C, H, W)`` or ``(C, H, W)``; see ``InstanceNorm1d``."""

    _batched = 4
    _layout = "(N, C, H, W) or (C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of ``(N, C, D, H, W)`` or ``(C, D, H, W)``; see ``InstanceNorm1d``."""

    _batched = 5
    _layout = "(N, C, D, H, W) or (C, D, H, W)"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dimensions of ``(*, *normalized_shape)`` to zero
    mean and unit variance, then apply the elementwise ``weight`` (ones) and ``bias`` (zeros).

    >>> LayerNorm(512)(somanet.randn(8, 10, 512)).shape
    (8, 10, 512)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dt = _float_dtype(dtype)
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dt)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        k = len(self.normalized_shape)
        shape = tuple(getattr(input, "shape", ()))
        if shape[len(shape) - k:] != self.normalized_shape or len(shape) < k:
            raise RuntimeError(f"LayerNorm({self.normalized_shape}): expected an input of shape "
                               f"(*, {', '.join(map(str, self.normalized_shape))}), got shape {shape}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalisation over the trailing ``normalized_shape`` dimensions:
    ``x / sqrt(mean(x**2) + eps) * weight`` (``weight`` ones). ``eps=None`` uses the dtype's machine
    epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.empty(self.normalized_shape, dtype=_float_dtype(dtype)))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, input):
        k = len(self.normalized_shape)
        shape = tuple(getattr(input, "shape", ()))
        if shape[len(shape) - k:] != self.normalized_shape or len(shape) < k:
            raise RuntimeError(f"RMSNorm({self.normalized_shape}): expected an input of shape "
                               f"(*, {', '.join(map(str, self.normalized_shape))}), got shape {shape}")
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Group normalisation of ``(N, C, *)``: the ``num_channels`` channels form ``num_groups`` groups, each
    normalised per sample over its channels and positions, then a per-channel ``weight``/``bias``."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        dt = _float_dtype(dtype)
        _affine_parameters(self, (num_channels,), affine, bias, dt)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        shape = tuple(getattr(input, "shape", ()))
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected an input of shape "
                             f"(N, {self.num_channels}, *), got shape {shape}")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Local response normalisation across channels of ``(N, C, *)`` (AlexNet):
    ``x / (k + alpha / size * sum of x**2 over size neighbouring channels) ** beta``."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
