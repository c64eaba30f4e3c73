"""Turning what the user passes to ``fit``/``evaluate``/``predict`` into a DataLoader.

Accepted: a ``DataLoader`` (used as is), a map-style ``Dataset`` (batched here), or arrays: ``X``,
``(X, y)`` or ``(X, y, ...)`` as NumPy arrays or Tensors. Floating arrays given directly are cast to the
model's floating dtype (float32 unless the model was converted), so NumPy's float64 default never
leaks into a float32 model; data that comes as a DataLoader or Dataset is the caller's to type, and a
mismatch is reported on the first batch.
"""
import numpy as np

from ..autograd.tensor import Tensor
from ..random import Generator, numpy_rng

__all__ = ["as_loader", "batch_size_of", "split_batch", "loader_generators"]


def _data_module():
    from .. import data
    return data


def _is_array(x):
    return isinstance(x, (np.ndarray, Tensor))


def as_loader(data, *, batch_size, shuffle, dtype, what, generator=None):
    """A DataLoader for ``data`` (see the module docstring); ``what`` names the argument in errors."""
    D = _data_module()
    if isinstance(data, D.DataLoader):
        return data
    if isinstance(data, D.Dataset):
        dataset = data
    elif _is_array(data) or (isinstance(data, (tuple, list)) and data and all(_is_array(a) for a in data)):
        arrays = [data] if _is_array(data) else list(data)
        arrays = [a.array if isinstance(a, Tensor) else a for a in arrays]
        lengths = [a.shape[0] if a.ndim else None for a in arrays]
        if None in lengths or len(set(lengths)) != 1:
            raise ValueError(f"{what}: the arrays must share their first (sample) dimension; got shapes "
                             f"{[tuple(a.shape) for a in arrays]}")
        if lengths[0] == 0:
            raise ValueError(f"{what}: the arrays hold no samples (shapes {[tuple(a.shape) for a in arrays]})")
        arrays = [a.astype(dtype) if (a.dtype.kind == "f" and a.dtype != dtype) else a for a in arrays]
        dataset = D.TensorDataset(*arrays)
    else:
        raise TypeError(f"{what}: expected a DataLoader, a Dataset, or arrays X / (X, y) as NumPy arrays or "
                        f"Tensors; got {type(data).__name__}")
    if shuffle and generator is None:
        # A private generator for the data order, seeded from the default one: the order is
        # reproducible under one seed, and dropout draws do not shift it.
        generator = Generator(int(numpy_rng(None).integers(0, 2**63 - 1)))
    return D.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator if shuffle else None)


def loader_generators(loader):
    """The distinct somanet Generators a loader draws its order from (loader, sampler, batch sampler)."""
    found = []
    candidates = [getattr(loader, "generator", None)]
    sampler = getattr(loader, "sampler", None)
    candidates.append(getattr(sampler, "generator", None))
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates.append(getattr(getattr(batch_sampler, "sampler", None), "generator", None))
    for g in candidates:
        if isinstance(g, Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def batch_size_of(batch):
    """The number of samples in a batch: the length of its first array."""
    while isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    if isinstance(batch, dict) and batch:
        return batch_size_of(next(iter(batch.values())))
    if isinstance(batch, (Tensor, np.ndarray)):
        return int(batch.shape[0]) if batch.ndim else 1
    return 1


_INPUT_KEYS = ("input", "inputs", "x", "image", "images", "data")
_TARGET_KEYS = ("target", "targets", "y", "label", "labels")


def split_batch(batch, owner="training_step"):
    """``(inputs, targets)`` of a batch; targets is None for unlabelled batches."""
    if isinstance(batch, (list, tuple)):
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 1:
            return batch[0], None
        raise ValueError(f"{owner}: the default step expects batches (inputs, targets); got a batch of "
                         f"{len(batch)} items. Override {owner} to use such batches.")
    if isinstance(batch, dict):
        x = next((batch[k] for k in _INPUT_KEYS if k in batch), None)
        y = next((batch[k] for k in _TARGET_KEYS if k in batch), None)
        if x is None:
            raise ValueError(f"{owner}: a dict batch needs one of the keys {_INPUT_KEYS} for the inputs; got "
                             f"{sorted(batch)}. Override {owner} to use such batches.")
        return x, y
    if isinstance(batch, np.ndarray):
        return Tensor(batch), None
    return batch, None
