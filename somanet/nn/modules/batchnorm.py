"""PyTorch's ``torch.nn.modules.batchnorm`` path: the batch norms (defined in ``norm.py``)."""
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]
