"""Interpretability: what a model looks at.

Attributions in Captum's shape (build on the model, then ``attribute(inputs, target=...)``):
``Saliency``, ``SmoothGrad``, ``IntegratedGradients`` and, for convolutional networks, ``GradCAM`` and
``GradCAMPlusPlus``. Attention maps: ``record_attention(model)`` keeps every attention layer's weights
during a forward pass; ``attention_rollout`` / ``vit_attention_rollout`` follow them through the layers.
``plot_image_heatmap`` and ``plot_token_heatmap`` draw them (matplotlib). See docs/interpret.md.

>>> from somanet.interpret import IntegratedGradients
>>> attr, delta = IntegratedGradients(model.eval()).attribute(x, target=3, return_convergence_delta=True)
"""
from .attribution import GradCAM, GradCAMPlusPlus, IntegratedGradients, Saliency, SmoothGrad
from .attention import AttentionMaps, attention_rollout, record_attention, vit_attention_rollout
from .plot import heatmap_array, plot_image_heatmap, plot_token_heatmap

__all__ = ["Saliency", "SmoothGrad", "IntegratedGradients", "GradCAM", "GradCAMPlusPlus", "AttentionMaps",
           "record_attention", "attention_rollout", "vit_attention_rollout", "heatmap_array",
           "plot_image_heatmap", "plot_token_heatmap"]
