"""Data loading: datasets, samplers, the DataLoader, image transforms and bundled/real datasets.

PyTorch users may also import this package as ``somanet.utils.data``.

>>> import somanet
>>> from somanet.data import TensorDataset, DataLoader
>>> ds = TensorDataset(somanet.zeros(10, 3), somanet.arange(10))
>>> [tuple(x.shape) for x, y in DataLoader(ds, batch_size=4)]
[(4, 3), (4, 3), (2, 3)]
"""
from .dataset import (Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, ChainDataset,
                      random_split)
from .sampler import (Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler,
                      BatchSampler)
from .distributed import DistributedSampler
from .collate import default_collate, default_convert
from .dataloader import DataLoader, get_worker_info
from ._worker import WorkerInfo
from . import transforms
from . import datasets
from .transforms import compute_mean_std

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "random_split",
           "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler", "DistributedSampler", "default_collate", "default_convert", "DataLoader",
           "get_worker_info", "WorkerInfo", "transforms", "datasets", "compute_mean_std"]
