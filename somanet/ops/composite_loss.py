"""Losses built from other ops: margin, ranking, embedding and likelihood losses.

These are cheap next to the network that feeds them, so each is written as a short chain of
differentiable ops (their gradients, and gradients of gradients, come from those ops) rather than as a
fused ``Function``. Formulas and defaults follow PyTorch's ``torch.nn.functional``.
"""
import numpy as np

from ..autograd.tensor import Tensor
from . import elementwise as E
from . import reduce as R
from ._util import ensure_tensor
from .matrix import cosine_similarity, pairwise_distance

__all__ = [
    "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
    "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss",
    "multilabel_margin_loss", "gaussian_nll_loss", "poisson_nll_loss", "ctc_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return R.mean(loss)
    if reduction == "sum":
        return R.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}(): reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _same_shape(a, b, op, names=("input1", "input2")):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{op}(): {names[0]} has shape {tuple(a.shape)} but {names[1]} has shape "
                         f"{tuple(b.shape)}; they must match")


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """``1 - cos(x1, x2)`` where ``target`` is 1, ``max(0, cos(x1, x2) - margin)`` where it is -1.

    ``input1``, ``input2``: ``(N, D)`` or ``(D,)``; ``target``: ``(N,)`` or ``()`` of 1 and -1.
    """
    x1, x2, y = ensure_tensor(input1), ensure_tensor(input2), ensure_tensor(target)
    _same_shape(x1, x2, "cosine_embedding_loss")
    if x1.ndim not in (1, 2):
        raise RuntimeError(f"cosine_embedding_loss(): expects 1-D or 2-D inputs, got shape {tuple(x1.shape)}")
    # PyTorch's formula: the product over the norms, each squared norm padded by a small epsilon.
    eps = 1e-12
    dot = R.sum(x1 * x2, dim=-1)
    norms = E.sqrt((R.sum(x1 * x1, dim=-1) + eps) * (R.sum(x2 * x2, dim=-1) + eps))
    cos = dot / norms
    positive = 1 - cos
    negative = E.clamp(cos - margin, min=0)
    zeros = cos * 0
    loss = E.where(y == 1, positive, zeros) + E.where(y == -1, negative, zeros)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """``max(0, -target * (input1 - input2) + margin)``: rank ``input1`` above ``input2`` where target is 1."""
    x1, x2, y = ensure_tensor(input1), ensure_tensor(input2), ensure_tensor(target)
    loss = E.clamp(-y * (x1 - x2) + margin, min=0)
    return _reduce(loss, reduction, "margin_ranking_loss")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the p-norm distance; ``swap`` uses the smaller of
    ``d(a, n)`` and ``d(p, n)`` (the distance swap of Balntas et al.). Inputs ``(N, D)`` or ``(D,)``."""
    a, pos, neg = ensure_tensor(anchor), ensure_tensor(positive), ensure_tensor(negative)
    _same_shape(a, pos, "triplet_margin_loss", ("anchor", "positive"))
    _same_shape(a, neg, "triplet_margin_loss", ("anchor", "negative"))
    d_pos = pairwise_distance(a, pos, p, eps)
    d_neg = pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = E.minimum(d_neg, pairwise_distance(pos, neg, p, eps))
    return _reduce(E.clamp(d_pos - d_neg + margin, min=0), reduction, "triplet_margin_loss")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0,
                                      swap=False, reduction="mean"):
    """``triplet_margin_loss`` with any distance (``pairwise_distance`` by default)."""
    dist = distance_function if distance_function is not None else pairwise_distance
    a, pos, neg = ensure_tensor(anchor), ensure_tensor(positive), ensure_tensor(negative)
    d_pos, d_neg = dist(a, pos), dist(a, neg)
    if swap:
        d_neg = E.minimum(d_neg, dist(pos, neg))
    return _reduce(E.clamp(d_pos - d_neg + margin, min=0), reduction, "triplet_margin_with_distance_loss")


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):  # noqa: A002
    """``x`` where target is 1, ``max(0, margin - x)`` where it is -1 (``x`` usually a distance)."""
    x, y = ensure_tensor(input), ensure_tensor(target)
    zeros = x * 0
    loss = E.where(y == 1, x, zeros) + E.where(y == -1, E.clamp(margin - x, min=0), zeros)
    return _reduce(loss, reduction, "hinge_embedding_loss")


def soft_margin_loss(input, target, reduction="mean"):  # noqa: A002
    """Two-class logistic loss ``log(1 + exp(-y * x))`` for targets of 1 and -1."""
    x, y = ensure_tensor(input), ensure_tensor(target)
    return _reduce(E.softplus(-y * x), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):  # noqa: A002
    """Per-class logistic loss averaged over the ``C`` classes: ``input`` ``(N, C)`` logits, ``target``
    ``(N, C)`` of 0 and 1; ``weight`` ``(C,)`` rescales each class."""
    x, y = ensure_tensor(input), ensure_tensor(target)
    per_class = y * E.softplus(-x) + (1 - y) * E.softplus(x)
    if weight is not None:
        per_class = per_class * weight
    loss = R.mean(per_class, dim=-1)
    return _reduce(loss, reduction, "multilabel_soft_margin_loss")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):  # noqa: A002
    """Multi-class hinge loss: ``sum_{i != y} max(0, margin - x[y] + x[i])**p / C`` per sample.

    ``input`` ``(N, C)`` or ``(C,)``; ``target`` class indices ``(N,)`` or ``()``; ``weight`` ``(C,)``
    weights the term by the true class; ``p`` is 1 or 2.
    """
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss(): only p == 1 and p == 2 are supported, got {p}")
    x, y = ensure_tensor(input), ensure_tensor(target)
    squeeze = x.ndim == 1
    if squeeze:
        x, y = x.unsqueeze(0), y.reshape(1)
    n, c = x.shape
    idx = y.array.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= c):
        raise IndexError(f"multi_margin_loss(): target values must be in [0, {c - 1}], got {idx.min()}..{idx.max()}")
    true = x.gather(1, Tensor(idx.reshape(n, 1)))
    hinge = E.clamp(margin - true + x, min=0)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * ensure_tensor(weight)[Tensor(idx)].reshape(n, 1)
    not_true = np.ones((n, c), dtype=x.dtype)
    not_true[np.arange(n), idx] = 0
    loss = R.sum(hinge * not_true, dim=1) / c
    if squeeze and reduction == "none":
        loss = loss.reshape(())
    return _reduce(loss, reduction, "multi_margin_loss")


def multilabel_margin_loss(input, target, reduction="mean"):  # noqa: A002
    """Multi-label hinge loss. ``target`` ``(N, C)`` holds each sample's label indices, ended by the first
    -1; every (label j, non-label i) pair contributes ``max(0, 1 - (x[j] - x[i])) / C``."""
    x, y = ensure_tensor(input), ensure_tensor(target)
    squeeze = x.ndim == 1
    if squeeze:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    n, c = x.shape
    labels = y.array.astype(np.int64)
    is_label = np.zeros((n, c), dtype=bool)
    for row in range(n):
        for j in labels[row]:
            if j < 0:
                break
            is_label[row, j] = True
    # pair[b, j, i] = max(0, 1 - x[b, j] + x[b, i]) for label j and non-label i.
    margins = E.clamp(1 - x.unsqueeze(2) + x.unsqueeze(1), min=0)
    mask = (is_label[:, :, None] & ~is_label[:, None, :]).astype(x.dtype)
    loss = R.sum(margins * mask, dim=(1, 2)) / c
    if squeeze and reduction == "none":
        loss = loss.reshape(())
    return _reduce(loss, reduction, "multilabel_margin_loss")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):  # noqa: A002
    """Negative log-likelihood of ``target`` under ``N(input, var)``: ``0.5 * (log(var) + (input - target)**2
    / var)`` (+ ``0.5 * log(2 pi)`` with ``full``); ``var`` is clamped to at least ``eps``.

    ``var`` has ``input``'s shape, or that shape with the last dim 1 (one variance per sample), or one
    fewer dimension (homoscedastic per sample).
    """
    x, y, v = ensure_tensor(input), ensure_tensor(target), ensure_tensor(var)
    if tuple(v.shape) != tuple(x.shape):
        if v.ndim == x.ndim and v.shape[-1] == 1 and tuple(v.shape[:-1]) == tuple(x.shape[:-1]):
            pass
        elif v.ndim == x.ndim - 1 and tuple(v.shape) == tuple(x.shape[:-1]):
            v = v.unsqueeze(-1)
        else:
            raise ValueError(f"gaussian_nll_loss(): var has shape {tuple(v.shape)}, which fits neither input's "
                             f"shape {tuple(x.shape)} nor that shape with its last dimension 1 or removed")
    if np.any(v.array < 0):
        raise ValueError("gaussian_nll_loss(): var has negative entries")
    with_eps = v.clamp(min=eps).detach()
    # The clamp is applied without cutting the gradient, as PyTorch does: var's gradient flows where var >= eps.
    v = v + (with_eps - v).detach()
    loss = 0.5 * (E.log(v) + (x - y) ** 2 / v)
    if full:
        loss = loss + 0.5 * float(np.log(2 * np.pi))
    return _reduce(loss, reduction, "gaussian_nll_loss")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,  # noqa: A002
                     reduction="mean"):
    """Negative log-likelihood of ``target`` counts under a Poisson with rate ``exp(input)`` (``log_input``)
    or ``input``; ``full`` adds Stirling's approximation of ``log(target!)`` for targets above 1."""
    x, y = ensure_tensor(input), ensure_tensor(target)
    if log_input:
        loss = E.exp(x) - y * x
    else:
        loss = x - y * E.log(x + eps)
    if full:
        yv = y.detach()
        stirling = yv * E.log(yv.clamp(min=1)) - yv + 0.5 * E.log(2 * float(np.pi) * yv.clamp(min=1))
        loss = loss + E.where(yv > 1, stirling, stirling * 0)
    return _reduce(loss, reduction, "poisson_nll_loss")


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification is not implemented in somanet yet."""
    raise NotImplementedError("somanet does not implement ctc_loss (torch.nn.functional.ctc_loss) yet")
