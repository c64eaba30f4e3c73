"""PyTorch's ``torch.nn.modules.flatten`` path: ``Flatten`` and ``Unflatten`` (defined in ``linear.py``)."""
from .linear import Flatten, Unflatten

__all__ = ["Flatten", "Unflatten"]
