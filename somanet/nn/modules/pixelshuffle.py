"""PyTorch's ``torch.nn.modules.pixelshuffle`` path: ``PixelShuffle`` and ``PixelUnshuffle`` (defined in
``upsampling.py``)."""
from .upsampling import PixelShuffle, PixelUnshuffle

__all__ = ["PixelShuffle", "PixelUnshuffle"]
