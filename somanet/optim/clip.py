"""Gradient clipping, also reachable from ``somanet.optim`` (the implementation lives in
``somanet.nn.utils.clip_grad``, where PyTorch users look for it)."""
from ..nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm, clip_grads_with_norm_  # noqa: F401

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]
