"""L1 and L2 penalties over a model's parameters, to add to a loss.

Optimizer ``weight_decay`` shrinks every parameter of a group; a penalty in the loss is explicit,
differentiable and can leave out biases and normalisation parameters, which usually should not be
decayed. ``0.5 * wd * l2_penalty(model)`` gives the same gradient as SGD's ``weight_decay=wd``.

>>> loss = criterion(model(x), y) + 1e-4 * l2_penalty(model, skip_bias=True, skip_norm=True)
"""
from ...autograd.tensor import Tensor
from ...ops.loss import ParameterPenalty
from ..modules.module import Module

__all__ = ["regularized_parameters", "l1_penalty", "l2_penalty"]


def _is_norm(module):
    from ..modules.norm import _NormBase, GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm

    return isinstance(module, (_NormBase, GroupNorm, LayerNorm, RMSNorm, LocalResponseNorm))


def regularized_parameters(module, skip_bias=False, skip_norm=False):
    """The parameters of ``module`` that a penalty (or a weight-decay group) should cover.

    ``skip_bias`` leaves out parameters named ``bias`` (and ``*_bias`` such as ``in_proj_bias``);
    ``skip_norm`` leaves out every parameter of normalisation layers (BatchNorm, InstanceNorm,
    LayerNorm, GroupNorm, RMSNorm). Only parameters with ``requires_grad`` are returned, each once.
    """
    if not isinstance(module, Module):
        raise TypeError(f"regularized_parameters(): expected an nn.Module, got {type(module).__name__}")
    seen = set()
    out = []
    for mod_name, mod in module.named_modules():
        norm = skip_norm and _is_norm(mod)
        for name, p in mod._parameters.items():
            if p is None or id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            if norm or (skip_bias and (name == "bias" or name.endswith("_bias"))):
                continue
            out.append(p)
    return out


def _collect(params, skip_bias, skip_norm, op):
    if isinstance(params, Module):
        return regularized_parameters(params, skip_bias, skip_norm)
    if isinstance(params, Tensor):
        return [params]
    if skip_bias or skip_norm:
        raise ValueError(f"{op}(): skip_bias/skip_norm need a Module (to know which parameters are biases or "
                         f"belong to normalisation layers), got an iterable of tensors")
    out = []
    for p in params:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Tensor):
            p = p[1]  # named_parameters() pairs
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}(): expected tensors or (name, tensor) pairs, got {type(p).__name__}")
        out.append(p)
    return out


def _penalty(params, kind, skip_bias, skip_norm, op):
    tensors = _collect(params, skip_bias, skip_norm, op)
    if not tensors:
        raise ValueError(f"{op}(): no parameters to penalise")
    return ParameterPenalty.apply(*tensors, kind=kind)


def l1_penalty(parameters, skip_bias=False, skip_norm=False):
    """``sum(|p|)`` over ``parameters`` (a Module, a tensor, or an iterable of tensors or named pairs), as a
    differentiable scalar tensor; its gradient is ``sign(p)``. Promotes sparse weights."""
    return _penalty(parameters, "l1", skip_bias, skip_norm, "l1_penalty")


def l2_penalty(parameters, skip_bias=False, skip_norm=False):
    """``sum(p ** 2)`` over ``parameters`` (a Module, a tensor, or an iterable of tensors or named pairs), as
    a differentiable scalar tensor; its gradient is ``2 p``."""
    return _penalty(parameters, "l2", skip_bias, skip_norm, "l2_penalty")
