"""Collation: turning a list of samples into one batch.

``default_collate`` follows ``torch.utils.data.default_collate``: it stacks tensors and NumPy arrays
along a new first dimension, makes numbers into 1-D tensors, and recurses into dicts, named
tuples, tuples and lists (a batch of tuples becomes a *list* of batched fields, as in PyTorch).
Strings stay lists of strings.

dtypes: NumPy arrays and NumPy scalars keep their dtype; Python ``int`` becomes int64 and ``bool``
bool, as in PyTorch; Python ``float`` becomes **float32**, somanet's default float (PyTorch gives
float64 here).
"""
import collections.abc
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..ops.creation import from_numpy

__all__ = ["default_collate", "default_convert"]

_FLOAT = np.dtype(np.float32)
_INT = np.dtype(np.int64)


def _stack(arrays, what):
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({a.shape for a in arrays})
        raise RuntimeError(f"default_collate(): cannot stack {what} of different shapes {shapes[:4]}; every "
                           f"sample in a batch must have the same shape (pad them in a custom collate_fn)") from None


def _unsupported(elem):
    return TypeError(f"default_collate(): batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                     f"found {type(elem).__name__}")


def default_collate(batch):
    """Collate a list of samples into a batch.

    Args:
        batch: a list of samples, all of the same structure.

    Returns:
        tensors ``(B, *sample_shape)`` for tensors/arrays, ``(B,)`` tensors for numbers, and the same
        container structure (dict, named tuple, list) around them.

    >>> b = default_collate([(np.zeros((2, 3), np.float32), 1), (np.ones((2, 3), np.float32), 0)])
    >>> b[0].shape, b[1].dtype
    ((2, 2, 3), dtype('int64'))
    """
    if not isinstance(batch, (list, tuple)):
        raise TypeError(f"default_collate(): expected a list of samples, got {type(batch).__name__}")
    if not batch:
        raise ValueError("default_collate(): got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return from_numpy(_stack([b.array for b in batch], "tensors"))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "USOV":
            raise _unsupported(elem)
        return from_numpy(_stack(batch, "arrays"))
    if isinstance(elem, np.generic):
        if elem.dtype.kind in "USOV":
            raise _unsupported(elem)
        return from_numpy(np.asarray(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return from_numpy(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return from_numpy(np.asarray(batch, dtype=_INT))
    if isinstance(elem, numbers.Real):
        return from_numpy(np.asarray(batch, dtype=_FLOAT))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        try:
            return type(elem)({key: default_collate([d[key] for d in batch]) for key in elem})
        except TypeError:
            return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError(f"default_collate(): each element in list of batch should be of equal size; "
                               f"got sizes {sorted({len(b) for b in batch})}")
        fields = [default_collate(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise _unsupported(elem)


def default_convert(data):
    """Convert NumPy arrays (also inside dicts, tuples and lists) to tensors; leave the rest.

    This is the DataLoader's collate function when automatic batching is off (``batch_size=None``).
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "USOV" else from_numpy(data)
    if isinstance(data, np.generic):
        return data if data.dtype.kind in "USOV" else from_numpy(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        try:
            return type(data)({k: default_convert(v) for k, v in data.items()})
        except TypeError:
            return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
