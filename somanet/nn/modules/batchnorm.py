"""PyTorch's ``torch.nn.modules.batchnorm`` path: the batch norms (defined in ``norm.py`` and
``syncbatchnorm.py``)."""
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .syncbatchnorm import SyncBatchNorm

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"]
