"""Weight initialisation, with PyTorch's functions, arguments and formulas.

Every function fills a tensor in place (its ``.data`` array keeps its identity, so an optimizer holding
it sees the new values), records nothing in the autograd graph, keeps the tensor's dtype (float32 by
default) and returns the tensor. Random draws come from ``somanet.random.numpy_rng(generator)``: the
default generator unless one is passed, so ``somanet.manual_seed`` makes initialisation reproducible.

>>> w = somanet.empty(256, 128)
>>> nn.init.kaiming_uniform_(w, a=math.sqrt(5))   # nn.Linear's default
"""
import math
import warnings

import numpy as np

from ..autograd.tensor import Tensor
from ..random import numpy_rng

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
]

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain (std multiplier) for a nonlinearity: 1 for linear/conv/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (``param`` is the slope, 0.01 by default)
    and 3/4 for selu."""
    if nonlinearity in _LINEAR_LIKE:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"calculate_gain(): negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain(): unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _check(tensor, op):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{op}(): expected a Tensor or Parameter, got {type(tensor).__name__}")
    return tensor


def _fill(tensor, values):
    """Write ``values`` into the tensor's own array (no new array, no graph) and bump its version."""
    tensor.array[...] = values
    tensor._version[0] += 1
    return tensor


def _draw_dtype(tensor):
    return np.float64 if tensor.dtype == np.float64 else np.float32


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight: ``size(1) * receptive`` and ``size(0) * receptive`` where
    ``receptive`` is the product of the dimensions after the first two (1 for a Linear weight)."""
    dims = tensor.ndim
    if dims < 2:
        raise ValueError(f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(got shape {tuple(tensor.shape)})")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with draws from ``U(a, b)``."""
    _check(tensor, "uniform_")
    rng = numpy_rng(generator)
    u = rng.random(tensor.shape, dtype=_draw_dtype(tensor))
    return _fill(tensor, u * (b - a) + a)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with draws from ``N(mean, std**2)``."""
    _check(tensor, "normal_")
    rng = numpy_rng(generator)
    z = rng.standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    return _fill(tensor, z * std + mean)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with draws from ``N(mean, std**2)`` restricted to ``[a, b]`` (absolute bounds, not in stds).

    Draws outside the bounds are redrawn until every value fits, which samples exactly the truncated
    normal distribution.
    """
    _check(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_(): expected a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values "
                      "may be incorrect.", stacklevel=2)
    rng = numpy_rng(generator)
    dtype = _draw_dtype(tensor)
    out = np.empty(tensor.array.size, dtype=dtype)
    if std <= 0:
        out[:] = min(max(mean, a), b)
        return _fill(tensor, out.reshape(tensor.shape))
    lo_z, hi_z = (a - mean) / std, (b - mean) / std
    mass = 0.5 * (math.erf(hi_z / math.sqrt(2)) - math.erf(lo_z / math.sqrt(2)))
    filled = 0
    # Rejection keeps the exact distribution. Each round oversamples by the expected acceptance rate so
    # one or two rounds usually suffice; bounds deep in a tail propose uniformly on [a, b] instead and
    # accept by the density ratio to its maximum on [a, b].
    peak = min(max(mean, a), b)
    lo, hi = max(a, mean - 40 * std), min(b, mean + 40 * std)
    while filled < out.size:
        need = out.size - filled
        if mass > 1e-3:
            draw = rng.standard_normal(min(int(need / mass * 1.1) + 16, 1 << 24), dtype=dtype) * std + mean
            draw = draw[(draw >= a) & (draw <= b)]
        else:
            draw = rng.random(min(need * 4 + 16, 1 << 24), dtype=dtype) * (hi - lo) + lo
            ratio = np.exp(-0.5 * (((draw - mean) / std) ** 2 - ((peak - mean) / std) ** 2))
            draw = draw[rng.random(draw.size, dtype=dtype) < ratio]
        take = min(need, draw.size)
        out[filled:filled + take] = draw[:take]
        filled += take
    return _fill(tensor, out.reshape(tensor.shape))


def constant_(tensor, val):
    """Fill with the value ``val``."""
    _check(tensor, "constant_")
    return _fill(tensor, val)


def ones_(tensor):
    """Fill with 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fill with 0."""
    return constant_(tensor, 0.0)


def eye_(tensor):
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal, zeros elsewhere)."""
    _check(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError(f"init.eye_(): only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape, dtype=tensor.dtype))


def dirac_(tensor, groups=1):
    """Fill a ``(out, in, *k)`` convolution weight so the convolution is the identity (per group): the
    centre tap of channel ``i`` to channel ``i`` is 1, everything else 0."""
    _check(tensor, "dirac_")
    dims = tensor.ndim
    if dims not in (3, 4, 5):
        raise ValueError(f"init.dirac_(): only 3-, 4- and 5-D tensors are supported, got shape {tuple(tensor.shape)}")
    out_ch = tensor.shape[0]
    if out_ch % groups:
        raise ValueError(f"init.dirac_(): dim 0 ({out_ch}) must be divisible by groups ({groups})")
    per_group = out_ch // groups
    n = min(per_group, tensor.shape[1])
    values = np.zeros(tensor.shape, dtype=tensor.dtype)
    centre = tuple(s // 2 for s in tensor.shape[2:])
    g = np.repeat(np.arange(groups), n)
    d = np.tile(np.arange(n), groups)
    values[(g * per_group + d, d) + centre] = 1
    return _fill(tensor, values)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_uniform_"))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_normal_"))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: ``U(-bound, bound)`` with ``bound = gain * sqrt(3 / fan)``, ``gain`` from
    ``calculate_gain(nonlinearity, a)`` and ``fan`` the fan-in or fan-out (``mode``)."""
    _check(tensor, "kaiming_uniform_")
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: ``N(0, std**2)`` with ``std = gain / sqrt(fan)``."""
    _check(tensor, "kaiming_normal_")
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix times ``gain``: the tensor viewed as ``(size(0), -1)`` has
    orthonormal rows or columns, whichever are fewer. Uses the QR decomposition of a Gaussian matrix with
    the signs fixed so the result is uniformly distributed."""
    _check(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"init.orthogonal_(): only tensors with 2 or more dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.array.size == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.array.size // rows
    rng = numpy_rng(generator)
    flat = rng.standard_normal((rows, cols), dtype=_draw_dtype(tensor))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (q * gain).reshape(tensor.shape))


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Fill a 2-D tensor from ``N(0, std**2)`` and zero a fraction ``sparsity`` of each column."""
    _check(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError(f"init.sparse_(): only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    num_zeros = int(math.ceil(sparsity * rows))
    rng = numpy_rng(generator)
    values = rng.standard_normal((rows, cols), dtype=_draw_dtype(tensor)) * std
    if num_zeros:
        order = np.argsort(rng.random((rows, cols)), axis=0)[:num_zeros]
        values[order, np.arange(cols)] = 0
    return _fill(tensor, values)
