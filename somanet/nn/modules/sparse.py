"""PyTorch's ``torch.nn.modules.sparse`` path: ``Embedding`` (defined in ``embedding.py``)."""
from .embedding import Embedding

__all__ = ["Embedding"]
