"""Linear layers and shape adapters: ``Identity``, ``Linear``, ``Bilinear``, ``Flatten``, ``Unflatten``."""
import math

import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from .. import functional as F
from .. import init
from .module import Module, Parameter

__all__ = ["Identity", "Linear", "Bilinear", "Flatten", "Unflatten"]


def _empty(*shape, dtype=None):
    return Parameter(np.empty(shape, dtype=backend.to_dtype(dtype) or backend.default_float))


def _last_dim_error(module, input, expected, what="input"):
    shape = tuple(input.shape) if hasattr(input, "shape") else None
    return RuntimeError(f"{module}: expected {what} with last dimension {expected} (shape (*, {expected})), "
                      f"got shape {shape}")


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments. Any shape."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias``: ``(*, in_features) -> (*, out_features)``.

    ``weight`` is ``(out_features, in_features)`` and ``bias`` ``(out_features,)``, both initialised from
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` as in PyTorch. The forward is one fused op.

    >>> Linear(20, 30)(somanet.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = _empty(out_features, in_features, dtype=dtype)
        if bias:
            self.bias = _empty(out_features, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # kaiming_uniform_ with a=sqrt(5) gives bound 1/sqrt(fan_in), PyTorch's default.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        shape = getattr(input, "shape", None)
        if not shape or shape[-1] != self.in_features:
            raise _last_dim_error(f"Linear(in_features={self.in_features}, out_features={self.out_features})",
                                  input, self.in_features)
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """``y_k = x1 @ weight[k] @ x2 + bias[k]``: ``(*, in1_features), (*, in2_features) -> (*, out_features)``.

    ``weight`` is ``(out_features, in1_features, in2_features)``; weight and bias are initialised from
    ``U(-1/sqrt(in1_features), 1/sqrt(in1_features))``.
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        self.weight = _empty(out_features, in1_features, in2_features, dtype=dtype)
        if bias:
            self.bias = _empty(out_features, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        name = f"Bilinear(in1_features={self.in1_features}, in2_features={self.in2_features})"
        if input1.shape[-1] != self.in1_features:
            raise _last_dim_error(name, input1, self.in1_features, "input1")
        if input2.shape[-1] != self.in2_features:
            raise _last_dim_error(name, input2, self.in2_features, "input2")
        if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
            raise RuntimeError(f"{name}: input1 {tuple(input1.shape)} and input2 {tuple(input2.shape)} must have the "
                             f"same leading (batch) dimensions")
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size``: ``Unflatten(1, (C, H, W))`` maps
    ``(N, C*H*W) -> (N, C, H, W)``."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(unflattened_size, (list, tuple)):
            if not all(isinstance(s, (int, np.integer)) for s in unflattened_size):
                raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got {unflattened_size!r}")
            unflattened_size = tuple(int(s) for s in unflattened_size)
        else:
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{type(unflattened_size).__name__}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input):
        if not isinstance(input, Tensor):
            input = Tensor(backend.as_array(input))
        return F.unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
