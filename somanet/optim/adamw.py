"""AdamW: Adam with weight decay applied to the weights directly instead of through the gradient."""
from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """AdamW, PyTorch's ``torch.optim.AdamW``: Adam with decoupled weight decay.

    Each step first shrinks the weights, ``p = p * (1 - lr * weight_decay)``, then takes Adam's step
    with the undecayed gradient, so the decay does not pass through the moment estimates.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-3).
        betas: running-average coefficients (default (0.9, 0.999)).
        eps: denominator term for numerical stability (default 1e-8).
        weight_decay: decoupled weight decay coefficient (default 1e-2).
        amsgrad: use the AMSGrad variant.
        maximize, foreach, capturable, differentiable, fused: as for :class:`Adam`.

    Example::

        opt = somanet.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
