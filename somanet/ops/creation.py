"""Tensor creation: from data, constant fills, ranges and random draws (seeded by ``manual_seed``)."""
import builtins

import numpy as np

from .. import backend, devices
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from ..random import numpy_rng

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
    "full_like", "empty_like", "arange", "linspace", "logspace", "eye", "rand", "randn", "randint", "randperm",
    "rand_like", "randn_like", "randint_like", "normal", "bernoulli", "multinomial", "is_tensor",
]


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        size = tuple(builtins.int(s) for s in size)
    except TypeError:
        raise TypeError(f"{op}(): size must be ints or one tuple of ints, got {size!r}") from None
    if any(s < 0 for s in size):
        raise ValueError(f"{op}(): negative dimension in size {size}")
    return size


def _finish(arr, requires_grad, device=None, op="tensor"):
    # Values are made on the host (random draws too, so a seed gives the same numbers on every device),
    # then copied to the device asked for, or the default device.
    if device is not None or devices._default is not devices.CPU:
        arr = devices.move(arr, devices.resolve(device, op))
    if arr.dtype.name == "bfloat16":  # held as float32 arrays of bfloat16 values (see somanet.amp)
        from ..amp._lowp import bfloat16_tensor
        t = bfloat16_tensor(arr)
    else:
        t = _wrap(arr, False, None, 0)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """Make a new tensor, copying ``data`` (a number, nested sequence, ndarray or Tensor).

    Python floats give float32, Python ints int64 and bools bool; an ndarray keeps its dtype.

    >>> tensor([[1.0, 2.0]]).shape
    (1, 2)
    """
    if isinstance(data, Tensor):
        data = data.array
    if isinstance(data, (list, tuple)) and data and any(isinstance(d, Tensor) for d in data):
        data = [d.array if isinstance(d, Tensor) else d for d in data]
    arr = backend.as_array(data, backend.to_dtype(dtype), copy=True)
    if arr is data:
        arr = arr.copy()
    return _finish(arr, requires_grad, device)


def as_tensor(data, dtype=None, device=None):
    """Make a tensor sharing memory with ``data`` where possible (an ndarray of the right dtype)."""
    if isinstance(data, Tensor):
        if device is not None:
            data = data.to(device)
        if dtype is None or data.array.dtype == backend.to_dtype(dtype):
            return data
        return data.to(dtype)
    return _finish(backend.as_array(data, backend.to_dtype(dtype)), False, device, "as_tensor")


def from_numpy(array):
    """A tensor sharing memory with a NumPy array, keeping its dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy(): expected an np.ndarray, got {type(array).__name__}")
    return _finish(array, False, devices.CPU)  # always on the CPU, whatever the default device


def is_tensor(obj):
    return isinstance(obj, Tensor)


def _float_dtype(dtype):
    return backend.default_float if dtype is None else backend.to_dtype(dtype)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.zeros(_size(size, "zeros"), dtype=_float_dtype(dtype)), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.ones(_size(size, "ones"), dtype=_float_dtype(dtype)), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.empty(_size(size, "empty"), dtype=_float_dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``size`` filled with ``fill_value``; the dtype follows the value (float32 for floats)."""
    if dtype is None:
        dtype = backend.as_array(fill_value).dtype
    return _finish(np.full(_size((size,), "full"), fill_value, dtype=backend.to_dtype(dtype)), requires_grad, device)


def _like(input, dtype):
    """The array behind ``input`` (its library makes the ``*_like`` fills) and the dtype they take."""
    arr = input.array if isinstance(input, Tensor) else array_module(input).asarray(input)
    return arr, (arr.dtype if dtype is None else backend.to_dtype(dtype))


def _like_device(arr, device):
    """A ``*_like`` result stays on its input's device unless ``device`` says otherwise."""
    return devices.of_array(arr) if device is None else device


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    arr, dt = _like(input, dtype)
    return _finish(array_module(arr).zeros(arr.shape, dtype=dt), requires_grad, _like_device(arr, device))


def ones_like(input, dtype=None, device=None, requires_grad=False):
    arr, dt = _like(input, dtype)
    return _finish(array_module(arr).ones(arr.shape, dtype=dt), requires_grad, _like_device(arr, device))


def empty_like(input, dtype=None, device=None, requires_grad=False):
    arr, dt = _like(input, dtype)
    return _finish(array_module(arr).empty(arr.shape, dtype=dt), requires_grad, _like_device(arr, device))


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    arr, dt = _like(input, dtype)
    return _finish(array_module(arr).full(arr.shape, fill_value, dtype=dt), requires_grad, _like_device(arr, device))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``: int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange(): step must be nonzero")
    if dtype is None:
        ints = all(isinstance(v, (builtins.int, np.integer)) for v in (start, end, step))
        dtype = backend.default_int if ints else backend.default_float
    dtype = backend.to_dtype(dtype)
    if dtype.kind == "f":
        # Compute in float64 so the length and the values match PyTorch's, then store in dtype.
        n = builtins.max(builtins.int(np.ceil((end - start) / step)), 0)
        arr = (start + step * np.arange(n, dtype=np.float64)).astype(dtype)
    else:
        arr = np.arange(start, end, step, dtype=dtype)
    return _finish(arr, requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(start, end, steps, dtype=np.float64).astype(_float_dtype(dtype)), requires_grad, device)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    return _finish(np.logspace(start, end, steps, base=base).astype(_float_dtype(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad, device)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    dt = _float_dtype(dtype)
    arr = numpy_rng(generator).random(_size(size, "rand"), dtype=np.float64 if dt == np.float64 else np.float32)
    return _finish(arr.astype(dt, copy=False), requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    dt = _float_dtype(dtype)
    arr = numpy_rng(generator).standard_normal(_size(size, "randn"),
                                               dtype=np.float64 if dt == np.float64 else np.float32)
    return _finish(arr.astype(dt, copy=False), requires_grad, device)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform in ``[low, high)``; ``randint(high, size)`` also works, as in PyTorch."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint(): size must be given, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint(): high ({high}) must be greater than low ({low})")
    dt = backend.default_int if dtype is None else backend.to_dtype(dtype)
    arr = numpy_rng(generator).integers(low, high, size=_size((size,), "randint"), dtype=np.int64)
    return _finish(arr.astype(dt, copy=False), requires_grad, device)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of ``0 .. n-1`` (int64)."""
    dt = backend.default_int if dtype is None else backend.to_dtype(dtype)
    return _finish(numpy_rng(generator).permutation(n).astype(dt), requires_grad, device)


def rand_like(input, dtype=None, generator=None):
    arr, dt = _like(input, dtype)
    return rand(arr.shape, dtype=dt, generator=generator, device=devices.of_array(arr))


def randn_like(input, dtype=None, generator=None):
    arr, dt = _like(input, dtype)
    return randn(arr.shape, dtype=dt, generator=generator, device=devices.of_array(arr))


def randint_like(input, low, high=None, dtype=None, generator=None):
    arr, dt = _like(input, dtype)
    return randint(low, high, arr.shape, dtype=dt, generator=generator, device=devices.of_array(arr))


def normal(mean=0.0, std=1.0, size=None, generator=None, dtype=None):
    """Normal samples with the given mean and std (numbers or tensors, broadcast)."""
    m = mean.array if isinstance(mean, Tensor) else mean
    s = std.array if isinstance(std, Tensor) else std
    if size is None:
        size = np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = _float_dtype(dtype)
    z = numpy_rng(generator).standard_normal(_size((size,), "normal"), dtype=np.float32)
    return _finish((z * s + m).astype(dt, copy=False), False)


def bernoulli(input, p=None, generator=None):
    """Draw 0/1 with probability ``input`` (or ``p``), same dtype as ``input``."""
    probs = input.array if isinstance(input, Tensor) else array_module(input).asarray(input, dtype=np.float32)
    if p is not None:
        probs = array_module(probs).full(probs.shape, p, dtype=probs.dtype)
    where = devices.of_array(probs)
    draws = devices.move(numpy_rng(generator).random(probs.shape, dtype=np.float32), where) < probs
    return _finish(draws.astype(probs.dtype), False, where)


def multinomial(input, num_samples, replacement=False, generator=None):
    """Sample category indices from rows of non-negative weights ``(C,)`` or ``(N, C)``."""
    w = input.array if isinstance(input, Tensor) else array_module(input).asarray(input)
    xp = array_module(w)
    w2 = xp.atleast_2d(w).astype(np.float64)
    if (w2 < 0).any() or not xp.isfinite(w2).all():
        raise ValueError("multinomial(): weights must be finite and non-negative")
    sums = w2.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError("multinomial(): every row of weights must have a positive sum")
    if not replacement and num_samples > w2.shape[1]:
        raise ValueError(f"multinomial(): cannot draw {num_samples} samples without replacement from {w2.shape[1]} categories")
    rng = numpy_rng(generator)
    if replacement:
        cdf = xp.cumsum(w2 / sums, axis=1)
        u = rng.random((w2.shape[0], num_samples))
        out = xp.minimum((u[:, :, None] > cdf[:, None, :]).sum(axis=2), w2.shape[1] - 1)
    else:
        # Gumbel top-k: sampling without replacement proportional to the weights.
        with np.errstate(divide="ignore"):
            keys = xp.log(w2) - xp.log(-xp.log(rng.random(w2.shape)))
        out = xp.argsort(-keys, axis=1)[:, :num_samples]
    out = out.astype(np.int64)
    return _finish(out if w.ndim == 2 else out[0], False)
