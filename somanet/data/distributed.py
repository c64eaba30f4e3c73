"""``DistributedSampler``: each of ``num_replicas`` processes sees its own share of a dataset."""
import math
import os

import numpy as np

from ..random import Generator
from .sampler import Sampler

__all__ = ["DistributedSampler"]


def _from_env(value, names, what):
    if value is not None:
        return value
    for name in names:
        if name in os.environ:
            return int(os.environ[name])
    raise ValueError(f"DistributedSampler: {what} was not given and none of the environment variables "
                     f"{', '.join(names)} is set; pass {what}= explicitly")


class DistributedSampler(Sampler):
    """Indices for one process (``rank``) of ``num_replicas`` training processes.

    Every rank gets ``ceil(N / num_replicas)`` indices (the permutation is padded by repeating its
    start), or ``floor`` with ``drop_last=True``; ranks take interleaved positions, so together they
    cover the dataset once per epoch. With ``shuffle`` the permutation depends on ``seed + epoch``
    only, so all ranks agree on it without talking to each other: call ``set_epoch(epoch)`` at the
    start of every epoch.

    Args:
        dataset: a map-style dataset.
        num_replicas: number of processes; read from ``WORLD_SIZE`` (or MPI's
            ``OMPI_COMM_WORLD_SIZE`` / ``PMI_SIZE``) when ``None``.
        rank: this process's rank in ``[0, num_replicas)``; read from ``RANK`` (or
            ``OMPI_COMM_WORLD_RANK`` / ``PMI_RANK``) when ``None``.
        shuffle: shuffle the indices each epoch.
        seed: the shared seed; must be the same on every rank.
        drop_last: drop the tail instead of padding so ranks get equal shares.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = _from_env(num_replicas, ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"), "num_replicas")
        rank = _from_env(rank, ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), "rank")
        if int(num_replicas) < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = Generator(self.seed + self.epoch).np.permutation(n)
        else:
            indices = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                indices = np.concatenate([indices, np.resize(indices, pad)])
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Set the epoch, which (with ``seed``) picks this epoch's permutation on every rank."""
        self.epoch = epoch
