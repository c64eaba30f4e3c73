"""``somanet.utils.data``: the same objects as ``somanet.data``, under PyTorch's import path.

>>> from somanet.utils.data import DataLoader, TensorDataset
"""
from ..data import *  # noqa: F401,F403
from ..data import __all__  # noqa: F401
from ..data import distributed, sampler, dataset, dataloader  # noqa: F401
