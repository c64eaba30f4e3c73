"""Samplers: the order in which a DataLoader visits a map-style dataset.

A sampler is an iterable of indices (``BatchSampler`` of lists of indices). Random samplers draw
from their own ``generator`` or, when it is ``None``, from somanet's default generator, so
``somanet.manual_seed`` makes the order reproducible.
"""
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..random import Generator, numpy_rng

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


def _check_int(value, name, cls, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{cls}: {name} should be an integer >= {minimum}, got {value!r}")
    return int(value)


def _own_rng(generator):
    # Without a generator, draw one seed from the default generator and use a private stream, so
    # that consuming the sampler lazily does not interleave with other users of the default one.
    if generator is None:
        seed = int(numpy_rng(None).integers(0, 2**63 - 1))
        return Generator(seed).np
    return numpy_rng(generator)


class Sampler:
    """Base class: subclasses implement ``__iter__`` over indices and, usually, ``__len__``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices: a fresh permutation each epoch, or draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement (``num_samples`` independent uniform draws).
        num_samples: how many indices per epoch; ``len(data_source)`` by default. Without
            replacement and more than ``len(data_source)``, whole permutations are concatenated (as in
            PyTorch). Indices are drawn as the iteration goes (blocks of 1024 with replacement, one
            permutation at a time without), so a huge ``num_samples`` costs no memory up front.
        generator: a ``somanet.Generator``; ``None`` draws a seed from the default generator.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, got {replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _check_int(self.num_samples, "num_samples", "RandomSampler")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    #: Indices drawn at a time with replacement: memory stays small whatever ``num_samples`` is.
    _BLOCK = 1024

    def __iter__(self):
        n = len(self.data_source)
        rng = _own_rng(self.generator)
        if self.replacement:
            full, rest = divmod(self.num_samples, self._BLOCK)
            for _ in range(full):
                yield from rng.integers(0, n, size=self._BLOCK).tolist()
            yield from rng.integers(0, n, size=rest).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a new permutation each epoch).

    Args:
        indices: a sequence of indices.
        generator: a ``somanet.Generator``; ``None`` uses the default generator.
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in numpy_rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Indices ``0 .. len(weights) - 1`` drawn with probability proportional to ``weights``.

    Args:
        weights: a sequence ``(N,)`` of non-negative weights (need not sum to one).
        num_samples: how many indices per epoch.
        replacement: with replacement (default) or, without it, each index at most once.
        generator: a ``somanet.Generator``; ``None`` uses the default generator.
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        self.num_samples = _check_int(num_samples, "num_samples", "WeightedRandomSampler")
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, got {replacement!r}")
        w = np.asarray(weights.array if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1-d sequence, got shape {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                             f"from {np.count_nonzero(w)} non-zero weights")
        self.weights = w
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        rng = numpy_rng(self.generator)
        p = self.weights / self.weights.sum()
        yield from rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Args:
        sampler: an iterable of indices.
        batch_size: indices per batch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.

    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        self.batch_size = _check_int(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, got {drop_last!r}")
        self.sampler = sampler
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
