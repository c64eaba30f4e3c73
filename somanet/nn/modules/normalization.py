"""PyTorch's ``torch.nn.modules.normalization`` path: layer, group, RMS and local response norms (defined in
``norm.py``)."""
from .norm import GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm

__all__ = ["LocalResponseNorm", "LayerNorm", "GroupNorm", "RMSNorm"]
