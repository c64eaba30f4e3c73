"""Folding an evaluation-mode batch norm into the convolution or linear layer before it.

In evaluation mode a batch norm is a fixed per-channel affine map, ``y = (x - mean) * s + beta`` with
``s = gamma / sqrt(var + eps)``, so after a convolution it can be folded into the convolution's weights
(each output channel's filter times ``s``) and bias (``(b - mean) * s + beta``): one pass over the
activations fewer. ``fuse_conv_bn_eval`` / ``fuse_linear_bn_eval`` and the ``*_weights`` forms follow
``torch.nn.utils.fusion``. ``fuse_for_inference(model)`` folds every convolution/linear + batch norm
pair of a model's ``Sequential`` containers once, for evaluation. ``conv_bn`` is the folding on the fly
that somanet's model zoo uses inside its blocks: each call folds the current weights and running
statistics, so nothing goes stale.
"""
import copy
import math

import numpy as np

from ...autograd.grad_mode import is_grad_enabled
from ...autograd.tensor import Tensor
from ...backend import array_module
from .. import functional as F
from ..modules.conv import _Conv, _ConvTranspose
from ..modules.linear import Linear
from ..modules.module import Parameter
from ..modules.norm import _BatchNorm

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights", "conv_bn",
           "linear_bn", "run_folded", "fuse_for_inference"]


def _array(value, what):
    if isinstance(value, Tensor):
        return value.array
    if value is None:
        return None
    try:
        return np.asarray(value)
    except Exception:
        raise TypeError(f"fusion: {what} must be a tensor or array, got {type(value).__name__}") from None


def _fold(w, b, rm, rv, eps, gamma, beta, channel_axis, groups=1):
    """Folded ``(weight, bias)`` arrays (``w``'s dtype): the output channels of ``w`` lie along
    ``channel_axis`` (0 for a convolution or linear weight, 1 for a transposed convolution's, whose
    ``groups`` split axis 0 and number the output channels group by group)."""
    xp = array_module(w)
    out_channels = rm.shape[0]
    dtype = w.dtype
    # The per-channel factors in float64 (a handful of values), rounded once when applied.
    s = 1.0 / xp.sqrt(rv.astype(np.float64) + float(eps))
    if gamma is not None:
        s = s * gamma.astype(np.float64)
    shift = -rm.astype(np.float64) * s
    if beta is not None:
        shift = shift + beta.astype(np.float64)
    if b is not None:
        shift = shift + b.astype(np.float64) * s
    if channel_axis == 0:
        fw = w * xp.asarray(s.reshape((-1,) + (1,) * (w.ndim - 1)), dtype=dtype)
    else:
        per_group = out_channels // groups
        view = w.reshape((groups, w.shape[0] // groups, per_group) + w.shape[2:])
        fw = (view * xp.asarray(s.reshape((groups, 1, per_group) + (1,) * (w.ndim - 2)), dtype=dtype)).reshape(w.shape)
    return fw, xp.asarray(shift, dtype=b.dtype if b is not None else dtype)


def _check_bn(op, bn, channels, what):
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f"{op}(): expected a BatchNorm module, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{op}(): the batch norm keeps no running statistics (track_running_stats=False), "
                         "so evaluation mode normalises with batch statistics and cannot be folded")
    if bn.num_features != channels:
        raise ValueError(f"{op}(): the batch norm has {bn.num_features} features but the {what} has "
                         f"{channels} output channels")


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose=False):
    """``(weight, bias)`` Parameters of a convolution equal to the convolution ``conv_w``/``conv_b`` followed
    by an evaluation-mode batch norm (running mean ``bn_rm``, variance ``bn_rv``, ``bn_eps``, affine
    ``bn_w``/``bn_b``, each may be None where the layer has none). ``transpose=True`` for a transposed
    convolution's weight ``(in, out, *k)`` (one group; ``fuse_conv_bn_eval`` handles groups)."""
    w = _array(conv_w, "conv_w")
    rm, rv = _array(bn_rm, "bn_rm"), _array(bn_rv, "bn_rv")
    axis = 1 if transpose else 0
    if w is None or rm is None or rv is None:
        raise ValueError("fuse_conv_bn_weights(): conv_w, bn_rm and bn_rv are required")
    if w.ndim < 3 or rm.shape != (w.shape[axis],) or rv.shape != rm.shape:
        channels = rm.shape[0] if rm.ndim else "?"
        raise ValueError(f"fuse_conv_bn_weights(): expected a convolution weight with {channels} "
                         f"output channels in dim {axis} and running statistics of shape (C,), got weight "
                         f"{tuple(w.shape)}, running_mean {tuple(rm.shape)}, running_var {tuple(rv.shape)}")
    fw, fb = _fold(w, _array(conv_b, "conv_b"), rm, rv, bn_eps, _array(bn_w, "bn_w"), _array(bn_b, "bn_b"), axis)
    return (Parameter(fw, requires_grad=_requires_grad(conv_w)),
            Parameter(fb, requires_grad=_requires_grad(conv_b, conv_w)))


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """``(weight, bias)`` Parameters of a linear layer equal to ``linear_w``/``linear_b`` followed by an
    evaluation-mode ``BatchNorm1d`` over its outputs (arguments as in ``fuse_conv_bn_weights``)."""
    w = _array(linear_w, "linear_w")
    rm, rv = _array(bn_rm, "bn_rm"), _array(bn_rv, "bn_rv")
    if w is None or rm is None or rv is None:
        raise ValueError("fuse_linear_bn_weights(): linear_w, bn_rm and bn_rv are required")
    if w.ndim != 2 or rm.shape != (w.shape[0],) or rv.shape != rm.shape:
        raise ValueError(f"fuse_linear_bn_weights(): expected a weight (out, in) and running statistics of shape "
                         f"(out,), got weight {tuple(w.shape)}, running_mean {tuple(rm.shape)}, running_var "
                         f"{tuple(rv.shape)}")
    fw, fb = _fold(w, _array(linear_b, "linear_b"), rm, rv, bn_eps, _array(bn_w, "bn_w"), _array(bn_b, "bn_b"), 0)
    return (Parameter(fw, requires_grad=_requires_grad(linear_w)),
            Parameter(fb, requires_grad=_requires_grad(linear_b, linear_w)))


def _requires_grad(*tensors):
    for t in tensors:
        if isinstance(t, Tensor):
            return t.requires_grad
    return True


def fuse_conv_bn_eval(conv, bn, transpose=False):
    """A copy of ``conv`` (Conv1d/2d or, with ``transpose=True``, ConvTranspose1d/2d) whose weight and bias
    fold in ``bn``, both in evaluation mode: ``fused(x) == bn(conv(x))`` up to rounding. The originals are
    not changed. Raises if either module is in training mode, where batch statistics are used."""
    if conv.training or bn.training:
        raise RuntimeError("fuse_conv_bn_eval(): fusing is only for evaluation mode; call .eval() on both modules")
    kind = _ConvTranspose if transpose else _Conv
    if not isinstance(conv, kind):
        raise TypeError(f"fuse_conv_bn_eval(): expected a {'transposed ' if transpose else ''}convolution module, "
                        f"got {type(conv).__name__}")
    _check_bn("fuse_conv_bn_eval", bn, conv.out_channels, "convolution")
    fused = copy.deepcopy(conv)
    fw, fb = _folded(conv, bn, 1 if transpose else 0, conv.groups)
    fused.weight = Parameter(fw, requires_grad=conv.weight.requires_grad)
    fused.bias = Parameter(fb, requires_grad=_requires_grad(conv.bias, conv.weight))
    return fused


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` whose weight and bias fold in ``bn`` (a ``BatchNorm1d`` over its outputs), both in
    evaluation mode. The originals are not changed."""
    if linear.training or bn.training:
        raise RuntimeError("fuse_linear_bn_eval(): fusing is only for evaluation mode; call .eval() on both modules")
    if not isinstance(linear, Linear):
        raise TypeError(f"fuse_linear_bn_eval(): expected a Linear module, got {type(linear).__name__}")
    _check_bn("fuse_linear_bn_eval", bn, linear.out_features, "linear layer")
    fused = copy.deepcopy(linear)
    fw, fb = _folded(linear, bn)
    fused.weight = Parameter(fw, requires_grad=linear.weight.requires_grad)
    fused.bias = Parameter(fb, requires_grad=_requires_grad(linear.bias, linear.weight))
    return fused


def _foldable(layer, layer_forward, bn, channels, x):
    """Whether ``bn(layer(x))`` may run folded: see ``conv_bn``."""
    return (not (layer.training or bn.training or is_grad_enabled()) and isinstance(bn, _BatchNorm)
            and type(layer).forward is layer_forward and type(bn).forward is _BatchNorm.forward
            and bn.running_mean is not None and bn.running_var is not None and bn.num_features == channels
            and not (layer._forward_hooks or layer._forward_pre_hooks or bn._forward_hooks or bn._forward_pre_hooks)
            and layer.weight.array.dtype == bn.running_var.array.dtype and len(getattr(x, "shape", ())) in bn._dims)


def _pays(weight_size, output_size):
    """Folding costs a pass over the weights and saves the batch norm's two over the output (measured on
    VGG-11-BN at 32x32: its 512-channel layers on 2x2 planes, 2.4 M weights against 65 k outputs, ran
    slower folded)."""
    return weight_size <= output_size


def _folded(layer, bn, channel_axis=0, groups=1):
    """``_fold`` of a layer module's weight and bias with a batch-norm module's statistics and affine."""
    return _fold(layer.weight.array, None if layer.bias is None else layer.bias.array, bn.running_mean.array,
                 bn.running_var.array, bn.eps, None if bn.weight is None else bn.weight.array,
                 None if bn.bias is None else bn.bias.array, channel_axis, groups)


def conv_bn(conv, bn, x):
    """``bn(conv(x))``. In evaluation mode without gradient recording it runs as one convolution with ``bn``
    folded into the weights and bias of the moment (the batch norm's pass over the activations saved).

    It falls back to calling the two modules whenever folding could differ from that: either module in
    training mode, gradients being recorded, hooks on either, a batch norm without running statistics, a
    channel or dimension mismatch (so that the usual error is raised), or subclasses with their own
    ``forward``.
    """
    if not (isinstance(conv, _Conv) and _foldable(conv, _Conv.forward, bn, conv.out_channels, x)
            and _pays(conv.weight.array.size,
                      x.shape[0] * conv.out_channels * math.prod(x.shape[2:]) // math.prod(conv.stride))):
        return bn(conv(x))
    conv._check_input(x)
    fw, fb = _folded(conv, bn)
    return conv._conv_forward(x, Tensor(fw), Tensor(fb))


def linear_bn(linear, bn, x):
    """``bn(linear(x))`` for a ``BatchNorm1d`` over the linear layer's outputs, folded like ``conv_bn``. Only a
    2-D ``x`` folds: on ``(N, L, features)`` the batch norm's channels would be ``L``."""
    if not (isinstance(linear, Linear) and getattr(x, "ndim", 0) == 2
            and _foldable(linear, Linear.forward, bn, linear.out_features, x)
            and _pays(linear.weight.array.size, x.shape[0] * linear.out_features)):
        return bn(linear(x))
    if x.shape[-1] != linear.in_features:
        return linear(x)  # raises the layer's own error
    fw, fb = _folded(linear, bn)
    return F.linear(x, Tensor(fw), Tensor(fb))


def run_folded(modules, x):
    """Call ``modules`` in order on ``x``, each convolution or linear layer and the batch norm right after
    it as one call folded on the fly (``conv_bn``/``linear_bn``: unfolded wherever folding could differ)."""
    modules = list(modules)
    i, n = 0, len(modules)
    while i < n:
        m = modules[i]
        nxt = modules[i + 1] if i + 1 < n else None
        if isinstance(nxt, _BatchNorm) and isinstance(m, (_Conv, Linear)):
            x = (conv_bn if isinstance(m, _Conv) else linear_bn)(m, nxt, x)
            i += 2
        else:
            x = m(x)
            i += 1
    return x


def _fusable_pair(layer, bn):
    """Whether ``bn`` right after ``layer`` can be folded into it for good (both already in eval mode)."""
    if not isinstance(bn, _BatchNorm) or bn.running_mean is None or bn.running_var is None:
        return False
    if layer._forward_hooks or layer._forward_pre_hooks or bn._forward_hooks or bn._forward_pre_hooks:
        return False
    if type(bn).forward is not _BatchNorm.forward:
        return False
    if isinstance(layer, _Conv) and type(layer).forward is _Conv.forward:
        return bn.num_features == layer.out_channels and layer.weight.ndim in bn._dims
    if isinstance(layer, Linear) and type(layer).forward is Linear.forward:
        return bn.num_features == layer.out_features and 2 in bn._dims
    return False


def fuse_for_inference(model, inplace=False):
    """``model`` prepared for inference: in evaluation mode, with every convolution (``Conv1d``/``Conv2d``)
    or ``Linear`` directly followed by a batch norm inside a ``Sequential`` replaced by one layer whose
    weight and bias fold the batch norm in (``fuse_conv_bn_eval``), and the batch norm by ``Identity``.

    The outputs equal the unfused model's in evaluation mode up to float rounding, with one pass over each
    folded layer's activations fewer. Returns a fused copy (the model is left as it was) unless
    ``inplace=True``. Pairs with hooks, subclassed ``forward`` methods, batch norms without running
    statistics or mismatched channels are left alone. As with PyTorch's fusion, a folded ``Linear`` +
    ``BatchNorm1d`` assumes ``(N, features)`` input and a folded convolution batched input (a batch norm
    after a 3-D linear output or an unbatched 1-d convolution normalises another dimension).

    >>> fused = fuse_for_inference(model)     # model unchanged; fused.eval() already
    >>> y = fused(x)
    """
    from ..modules.container import Sequential
    from ..modules.linear import Identity
    from ..modules.module import Module

    if not isinstance(model, Module):
        raise TypeError(f"fuse_for_inference(): expected a Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for container in model.modules():
        if not isinstance(container, Sequential):
            continue
        names = list(container._modules)
        i = 0
        while i + 1 < len(names):
            layer, bn = container._modules[names[i]], container._modules[names[i + 1]]
            if isinstance(layer, (_Conv, Linear)) and _fusable_pair(layer, bn):
                fw, fb = _folded(layer, bn)
                layer.weight = Parameter(fw, requires_grad=layer.weight.requires_grad)
                layer.bias = Parameter(fb, requires_grad=_requires_grad(layer.bias, layer.weight))
                container._modules[names[i + 1]] = Identity()
                i += 2
            else:
                i += 1
    return model
