"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``.

Signatures, parameter names and layouts, defaults and initialisation are PyTorch's: ``weight`` is
``(out_channels, in_channels / groups, *kernel_size)`` for a convolution and
``(in_channels, out_channels / groups, *kernel_size)`` for a transposed one, and both weight and bias are
drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``kaiming_uniform_`` with ``a = sqrt(5)``).
"""
import math

import numpy as np

from ... import backend
from .. import functional as F
from .. import init
from ...ops.conv import _tuple, conv_padding, output_padding_for
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared constructor, initialisation, input checks and ``extra_repr`` of the convolution layers."""

    _spatial = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._spatial
        if not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", name)
        self.stride = _tuple(stride, n, "stride", name)
        self.dilation = _tuple(dilation, n, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n, "padding", name)
        self.output_padding = _tuple(output_padding, n, "output_padding", name)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.transposed = self._transposed
        # F.pad's order: last dimension first, (left, right) pairs.
        pads = conv_padding(self.padding, self.kernel_size, self.dilation, (1,) * n, name)
        self._reversed_padding_repeated_twice = [p for pair in reversed(pads) for p in pair]
        dt = backend.to_dtype(dtype) or backend.default_float
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: ``kaiming_uniform_(a=sqrt(5))`` for the weight, ``U(+-1/sqrt(fan_in))`` for the bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check_input(self, input):
        n = self._spatial
        shape = tuple(getattr(input, "shape", ()))
        dims = "(N, C, L)" if n == 1 else "(N, C, H, W)"
        if len(shape) not in (n + 1, n + 2):
            raise ValueError(f"{self._get_name()}({self.extra_repr()}): expected a {n + 1}-D (unbatched) or "
                             f"{n + 2}-D (batched) input of shape {dims}, got shape {shape}")
        channels = shape[-n - 1]
        if channels != self.in_channels:
            hint = ""
            if len(shape) == n + 1:
                hint = (f"; a {n + 1}-D input is one unbatched sample {dims[:1] + dims[4:]}, so a batch needs its "
                        f"channel dimension, e.g. x.unsqueeze(1)")
            raise ValueError(f"{self._get_name()}({self.extra_repr()}): expected input with {self.in_channels} "
                             f"channels (dimension {len(shape) - n - 1}), got {channels} in input of shape {shape}"
                             f"{hint}")

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._spatial:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._spatial:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._spatial:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def _conv_forward(self, input, weight, bias):
        conv = F.conv1d if self._spatial == 1 else F.conv2d
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        self._check_input(input)
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_Conv):
    """1-d convolution over ``(N, C_in, L) -> (N, C_out, L_out)`` with
    ``L_out = (L + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1``.

    ``padding`` is an int, a 1-tuple, 'valid' or 'same'; ``padding_mode`` is 'zeros', 'reflect',
    'replicate' or 'circular'. ``weight``: ``(out_channels, in_channels/groups, kernel_size)``.
    """

    _spatial = 1


class Conv2d(_Conv):
    """2-d convolution over ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)`` with
    ``H_out = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1``.

    ``padding`` is an int, a pair, 'valid' or 'same' (stride 1); ``padding_mode`` is 'zeros', 'reflect',
    'replicate' or 'circular'; ``groups=in_channels`` makes it depthwise. ``weight``:
    ``(out_channels, in_channels/groups, kh, kw)``, ``bias``: ``(out_channels,)``.

    >>> conv = Conv2d(3, 16, 3, padding=1)
    >>> conv(somanet.randn(8, 3, 32, 32)).shape
    (8, 16, 32, 32)
    """

    _spatial = 2


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}, got {padding_mode!r}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, input, output_size=None):
        self._check_input(input)
        output_padding = self.output_padding
        if output_size is not None:
            in_size = tuple(input.shape[-self._spatial:])
            output_padding = output_padding_for(output_size, in_size, self.kernel_size, self.stride, self.padding,
                                                self.dilation, self._get_name())
        fn = F.conv_transpose1d if self._spatial == 1 else F.conv_transpose2d
        return fn(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                  self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution over ``(N, C_in, L) -> (N, C_out, L_out)`` with
    ``L_out = (L-1)*stride - 2*padding + dilation*(kernel_size-1) + output_padding + 1``.

    ``weight``: ``(in_channels, out_channels/groups, kernel_size)``. ``forward(input, output_size=None)``
    picks ``output_padding`` to reach ``output_size`` when given.
    """

    _spatial = 1


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution over ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)`` with
    ``H_out = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1``; the up-sampling layer of
    GAN generators and U-Net decoders.

    ``weight``: ``(in_channels, out_channels/groups, kh, kw)``. ``forward(input, output_size=None)`` picks
    ``output_padding`` to reach ``output_size`` when given.

    >>> up = ConvTranspose2d(64, 32, kernel_size=2, stride=2)
    >>> up(somanet.randn(1, 64, 16, 16)).shape
    (1, 32, 32, 32)
    """

    _spatial = 2
