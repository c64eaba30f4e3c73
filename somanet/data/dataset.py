"""Datasets: the map-style ``Dataset`` and the stream-style ``IterableDataset``, and the ways to
combine and split them (``TensorDataset``, ``Subset``, ``ConcatDataset``, ``ChainDataset``,
``random_split``), with PyTorch's names and behaviour.
"""
import bisect
import math
import warnings

import numpy as np

from ..autograd.tensor import Tensor
from ..ops.creation import from_numpy
from ..random import numpy_rng

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "random_split"]


class Dataset:
    """A map-style dataset: ``dataset[i]`` returns sample ``i`` and ``len(dataset)`` says how many.

    Subclasses implement ``__getitem__`` (and usually ``__len__``, which samplers need). A subclass
    may also implement ``__getitems__(indices)`` that returns the list of samples for a whole batch
    at once; the DataLoader then calls it instead of ``__getitem__`` per index.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return i * i
    >>> Squares()[3]
    9
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: iterate it with ``__iter__`` instead of indexing it.

    In DataLoader worker processes each worker iterates its own copy, so a dataset that must not
    repeat samples splits the work with ``somanet.data.get_worker_info()`` inside ``__iter__``.
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


def _as_array(t, cls, position):
    if isinstance(t, Tensor):
        return t.array
    if isinstance(t, np.ndarray):
        return t
    raise TypeError(f"{cls}(): argument {position} must be a somanet Tensor or NumPy array, "
                    f"got {type(t).__name__}")


def _index_array(arr, index):
    item = arr[index]
    # Indexing a 1-D array gives a NumPy scalar; keep it a 0-d array so it keeps its dtype.
    return from_numpy(item if isinstance(item, np.ndarray) else np.asarray(item))


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors: ``dataset[i] == (t0[i], t1[i], ...)``.

    Args:
        *tensors: somanet Tensors (or NumPy arrays) that share their first dimension ``N``.

    >>> import somanet
    >>> ds = TensorDataset(somanet.zeros(5, 3), somanet.arange(5))
    >>> x, y = ds[2]; x.shape, y.shape
    ((3,), ())
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset(): needs at least one tensor")
        arrays = [_as_array(t, "TensorDataset", i) for i, t in enumerate(tensors)]
        sizes = [a.shape[0] if a.ndim else None for a in arrays]
        if any(s is None for s in sizes) or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset(): size mismatch between tensors: first dimensions "
                             f"{[a.shape[:1] for a in arrays]}; all must have the same length")
        self.tensors = tuple(t if isinstance(t, Tensor) else from_numpy(t) for t in tensors)
        self._arrays = arrays

    def __getitem__(self, index):
        return tuple(_index_array(a, index) for a in self._arrays)

    def __len__(self):
        return self._arrays[0].shape[0]

    def _fetch_batch(self, indices):
        # Used by the DataLoader with the default collate: one fancy index per tensor gives the same
        # batch as collating the samples one by one, without the per-sample Python work.
        idx = np.asarray(indices, dtype=np.int64)
        return [from_numpy(a[idx]) for a in self._arrays]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: a map-style dataset.
        indices: a sequence of indices into ``dataset``.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after another.

    Args:
        datasets: a non-empty iterable of map-style datasets.

    ``cumulative_sizes[k]`` is the number of samples in the first ``k + 1`` datasets.
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset(): datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset(): does not support IterableDataset; use ChainDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise IndexError(f"ConcatDataset: index {idx} out of range for length {n}")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {n}")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Several iterable datasets streamed one after another.

    Args:
        datasets: iterable datasets to chain.
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset: only supports IterableDataset, got {type(d).__name__}")
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    Args:
        dataset: a map-style dataset of length ``N``.
        lengths: integer lengths that sum to ``N``, or fractions that sum to 1 (each split gets
            ``floor(fraction * N)`` samples; the remainder is dealt out one by one, round-robin,
            from the first split on, as PyTorch does).
        generator: a ``somanet.Generator`` for the permutation; the default generator if ``None``.

    Returns:
        a list of ``Subset``.

    >>> import somanet
    >>> train, val = random_split(range(10), [0.8, 0.2], generator=somanet.Generator(0))
    >>> len(train), len(val)
    (8, 2)
    """
    lengths = list(lengths)
    n = len(dataset)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"random_split(): fraction at index {i} is {frac}; expected a value in [0, 1]")
        sizes = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"random_split(): length of split at index {i} is 0; this split will be empty",
                              stacklevel=2)
        lengths = sizes
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split(): lengths must be non-negative integers or fractions summing to 1, "
                         f"got {lengths}")
    lengths = [int(x) for x in lengths]
    if sum(lengths) != n:
        raise ValueError(f"random_split(): sum of input lengths ({sum(lengths)}) does not equal the length "
                         f"of the input dataset ({n})")
    perm = numpy_rng(generator).permutation(n).tolist()
    out, offset = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[offset:offset + length]))
        offset += length
    return out
