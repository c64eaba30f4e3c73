"""Loss modules: thin wrappers holding the options of the functional losses in ``ops/loss.py``.

Every loss takes ``reduction`` ('none', 'mean' or 'sum'; ``KLDivLoss`` also 'batchmean') and PyTorch's
deprecated ``size_average``/``reduce`` flags in the same positions. Class weights are registered as
buffers named ``weight`` (and ``pos_weight``), as in PyTorch.
"""
from ...autograd.tensor import Tensor
from ... import backend
from .. import functional as F
from .module import Module

__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss"]


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _as_buffer(value):
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(backend.as_array(value))


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = _legacy(size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight))


class L1Loss(_Loss):
    """Mean absolute error between ``input`` and ``target`` of the same shape ``(*)``; a scalar, or
    ``(*)`` with ``reduction='none'``."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error between ``input`` and ``target`` of the same shape ``(*)``; a scalar, or ``(*)``
    with ``reduction='none'``."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Squared error below ``beta``, absolute error above it (continuous at ``beta``); shapes as in
    ``MSELoss``."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """``0.5 * d**2`` below ``delta``, ``delta * (|d| - 0.5 * delta)`` above; shapes as in ``MSELoss``."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy for classification, fused into one op.

    ``input``: logits ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``. ``target``: class indices ``(N,)``,
    ``(N, d1, ...)`` or ``()`` (int64), or class probabilities shaped like ``input``. ``weight`` ``(C,)``
    weights classes, targets equal to ``ignore_index`` are skipped, ``label_smoothing`` mixes in the
    uniform distribution.

    >>> CrossEntropyLoss()(somanet.randn(3, 5, requires_grad=True), somanet.tensor([1, 0, 4]))
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices under log-probabilities (e.g. from ``LogSoftmax``):
    ``input`` ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``, ``target`` ``(N,)``, ``(N, d1, ...)`` or ``()``."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy between probabilities ``input`` in [0, 1] and ``target`` of the same shape;
    ``weight`` broadcasts against them. Logs are clamped at -100, as in PyTorch."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid plus binary cross-entropy in one numerically stable op, for logits ``input`` and ``target``
    of the same shape. ``weight`` broadcasts against the input; ``pos_weight`` (e.g. ``(C,)``) weights the
    positive term of each class."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight))
        self.register_buffer("pos_weight", _as_buffer(pos_weight))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence ``KL(target || exp(input))`` for log-probabilities ``input`` and
    probabilities ``target`` (log-probabilities with ``log_target=True``); use ``reduction='batchmean'``
    for the mathematically correct per-sample value."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
