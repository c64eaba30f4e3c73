"""Attention maps: record every attention layer's weights during a forward pass, and attention rollout.

``record_attention(model)`` is a context manager. Inside it, each ``nn.MultiheadAttention`` of the model
(and so ``TransformerEncoderLayer``/``TransformerEncoder``/``TransformerDecoderLayer``, ``GPT``,
``VisionTransformer``) and each attention block that offers a recorder slot (GPT-2's ``GPT2Attention``)
stores its per-head weights (N, heads, L, S) as it runs. Outside it nothing is hooked: the ordinary
forward pass is untouched and runs at its usual speed.

>>> with record_attention(model) as maps:
...     logits = model(images)
>>> maps.names            # ['encoder.layers.0.self_attn', ...]
>>> maps[0].shape         # (N, heads, L, S)
>>> rollout = vit_attention_rollout(model, images)   # (N, grid, grid)
"""
import contextlib
import inspect

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn.modules.attention import MultiheadAttention
from ..nn.modules.module import Module

__all__ = ["AttentionMaps", "record_attention", "attention_rollout", "vit_attention_rollout"]

_MHA_FORWARD = inspect.signature(MultiheadAttention.forward)


class AttentionMaps:
    """The attention weights recorded by ``record_attention``, in the order the layers ran.

    ``maps[i]`` is the i-th recorded weights tensor (N, heads, L, S) (part of the graph when gradients
    were enabled, so attention times gradient can be computed); ``maps.names[i]`` its module's name
    in ``model.named_modules()``; ``len(maps)``; ``maps.numpy()`` stacks them into one array
    (layers, N, heads, L, S) when the shapes agree; ``maps.clear()`` forgets them (each forward inside
    the context appends its layers).
    """

    def __init__(self):
        self.names, self.weights = [], []

    def _add(self, name, weights):
        self.names.append(name)
        self.weights.append(weights)

    def __len__(self):
        return len(self.weights)

    def __getitem__(self, i):
        return self.weights[i]

    def __iter__(self):
        return iter(self.weights)

    def clear(self):
        """Forget the recorded maps."""
        self.names.clear()
        self.weights.clear()

    def numpy(self):
        """All maps as one array (layers, N, heads, L, S); an error if the layers' shapes differ."""
        if not self.weights:
            raise ValueError("AttentionMaps.numpy(): nothing was recorded (no attention layer ran inside "
                             "record_attention)")
        shapes = {tuple(w.shape) for w in self.weights}
        if len(shapes) > 1:
            raise ValueError(f"AttentionMaps.numpy(): the layers' maps have different shapes {sorted(shapes)}; "
                             f"index them one by one")
        return np.stack([w.array for w in self.weights])

    def __repr__(self):
        return f"AttentionMaps({len(self)} layers: {', '.join(self.names)})"


def _mha_hooks(module, name, maps):
    """Forward hooks that ask ``module`` for per-head weights, keep them, and give the caller what it asked."""
    asked = []

    def before(mod, args, kwargs):
        bound = _MHA_FORWARD.bind(mod, *args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        del call["self"]
        asked.append((call["need_weights"], call["average_attn_weights"], call["query"].ndim == 3))
        call["need_weights"], call["average_attn_weights"] = True, False
        return (), call

    def after(mod, args, kwargs, out):
        need, average, batched = asked.pop()
        output, weights = out
        maps._add(name, weights if batched else weights.unsqueeze(0))
        if not need:
            return output, None
        return output, (weights.mean(dim=-3) if average else weights)

    return [module.register_forward_pre_hook(before, with_kwargs=True),
            module.register_forward_hook(after, with_kwargs=True)]


@contextlib.contextmanager
def record_attention(model):
    """Record the attention weights of every attention layer in ``model`` while the context is open.

    Yields an ``AttentionMaps``; each forward pass inside the context appends one (N, heads, L, S)
    tensor per attention layer call, in call order. ``nn.MultiheadAttention`` is asked for its per-head
    weights through forward hooks (its output is unchanged, and the weights the caller asked for, if
    any, are still returned); other attention blocks take part when they have an
    ``_attention_recorder`` slot. Everything is removed on exit, also after an error.
    """
    if not isinstance(model, Module):
        raise TypeError(f"record_attention(): model must be a Module, got {type(model).__name__}")
    maps = AttentionMaps()
    handles, slots = [], []
    try:
        for name, module in model.named_modules():
            if isinstance(module, MultiheadAttention):
                handles += _mha_hooks(module, name, maps)
            elif hasattr(type(module), "_attention_recorder"):
                def recorder(mod, weights, _name=name):
                    maps._add(_name, weights)
                module._attention_recorder = recorder
                slots.append(module)
        if not handles and not slots:
            raise ValueError(f"record_attention(): {type(model).__name__} has no attention layer to record "
                             f"(nn.MultiheadAttention or a block with an attention recorder)")
        yield maps
    finally:
        for h in handles:
            h.remove()
        for module in slots:
            del module._attention_recorder


def _as_layers(attentions):
    if isinstance(attentions, AttentionMaps):
        attentions = attentions.weights
    layers = [w.array if isinstance(w, Tensor) else np.asarray(w) for w in attentions]
    if not layers:
        raise ValueError("attention_rollout(): no attention maps given")
    first = layers[0].shape
    for i, a in enumerate(layers):
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"attention_rollout(): expected self-attention maps (N, heads, L, L), got shape "
                             f"{a.shape} at layer {i}")
        if a.shape[0] != first[0] or a.shape[-1] != first[-1]:
            raise ValueError(f"attention_rollout(): layer {i} has shape {a.shape}, layer 0 {first}; all layers must "
                             f"share N and L")
    return layers


def attention_rollout(attentions, head_fusion="mean", discard_ratio=0.0):
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each input token
    through all layers, the residual connections counted.

    ``attentions``: an ``AttentionMaps`` or a list of (N, heads, L, L) self-attention maps, first layer
    first. Per layer the heads are fused (``head_fusion`` 'mean', 'max' or 'min'), optionally the
    smallest ``discard_ratio`` of each row's weights set to zero, the identity added (the residual path)
    and the rows renormalised to sum to 1; the layers' matrices are multiplied, last layer on the left.
    Returns a float64 ndarray (N, L, L).
    """
    if head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"attention_rollout(): head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"attention_rollout(): discard_ratio must be in [0, 1), got {discard_ratio}")
    layers = _as_layers(attentions)
    n, L = layers[0].shape[0], layers[0].shape[-1]
    eye = np.eye(L)
    result = np.broadcast_to(eye, (n, L, L)).copy()
    for a in layers:
        a = a.astype(np.float64)
        fused = {"mean": a.mean, "max": a.max, "min": a.min}[head_fusion](axis=1)
        if discard_ratio > 0:
            k = int(L * discard_ratio)
            if k:
                # the weakest links are noise: drop them, but never a token's attention to itself
                order = np.argsort(fused, axis=-1, kind="stable")[..., :k]
                low = np.zeros_like(fused, dtype=bool)
                np.put_along_axis(low, order, True, axis=-1)
                fused = np.where(low & ~eye.astype(bool), 0.0, fused)
        joint = fused + eye
        joint /= joint.sum(axis=-1, keepdims=True)
        result = joint @ result
    return result


def vit_attention_rollout(model, images, head_fusion="mean", discard_ratio=0.0):
    """Attention rollout of a ``VisionTransformer`` on ``images`` (N, C, H, W): the class token's row of
    the rolled-out attention, without the class token itself, on the patch grid. Returns a float64
    ndarray (N, H / patch_size, W / patch_size) whose rows sum (with the class token's own share) to 1.
    """
    for attr in ("num_patches", "patch_size", "image_size"):
        if not hasattr(model, attr):
            raise TypeError(f"vit_attention_rollout(): expected a VisionTransformer, got {type(model).__name__} "
                            f"(no {attr!r})")
    with no_grad(), record_attention(model) as maps:
        model(images if isinstance(images, Tensor) else Tensor(np.asarray(images)))
    joint = attention_rollout(maps, head_fusion=head_fusion, discard_ratio=discard_ratio)
    grid = model.image_size // model.patch_size
    return joint[:, 0, 1:].reshape(joint.shape[0], grid, grid)
