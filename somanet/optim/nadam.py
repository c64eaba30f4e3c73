"""NAdam: Adam with Nesterov momentum and a warming-up momentum schedule."""
import numpy as np

from ..backend import array_module
from .adam import check_adam_hypers
from .optimizer import Optimizer, check_hyper, new_step, reject_unsupported

__all__ = ["NAdam"]


def _momentum(beta1, momentum_decay, step):
    """The momentum coefficient ``mu_t`` of step ``t`` (it rises towards ``beta1`` as ``t`` grows)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


class NAdam(Optimizer):
    """NAdam, PyTorch's ``torch.optim.NAdam``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``, ``mu_t = beta1 * (1 - 0.5 *
    0.96**(t * momentum_decay))`` and ``P_t = mu_1 * ... * mu_t``::

        g = g + weight_decay * p            (or p = p * (1 - lr * weight_decay) when decoupled)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
        p = p - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / denom

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running averages of the gradient and its square (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        momentum_decay: how fast ``mu_t`` approaches ``beta1`` (default 4e-3).
        decoupled_weight_decay: decay the weights directly (NAdamW) instead of through the gradient.
        foreach: accepted for PyTorch compatibility; the update always runs per parameter (the
            per-parameter ``mu_product`` state does not flatten).
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: accepted for PyTorch compatibility; ``True`` is refused.

    Example::

        opt = somanet.optim.NAdam(model.parameters(), lr=2e-3, momentum_decay=4e-3)

    State per parameter: ``step``, ``mu_product`` (``P_t``, a float32 scalar array like ``step``),
    ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        lr, betas = check_adam_hypers("NAdam", lr, betas, eps, weight_decay)
        check_hyper("NAdam", momentum_decay >= 0.0, f"Invalid momentum_decay value: {momentum_decay}",
                    "momentum_decay >= 0")
        reject_unsupported("NAdam", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize, "foreach": foreach,
            "capturable": capturable, "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _flat_members(self, group, params):
        return ()

    _host_state = ("step", "mu_product")  # scalars the update reads as floats

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["mu_product"] = np.ones((), dtype=np.float32)
        state["exp_avg"] = xp.zeros_like(param.array)
        state["exp_avg_sq"] = xp.zeros_like(param.array)

    def _run_update(self, group, param, grad, state, step, tmp):
        # The running product advances once per parameter and step, before the (possibly row-split)
        # elementwise update reads it.
        beta1 = float(group["betas"][0])
        state["mu_product"] *= _momentum(beta1, float(group["momentum_decay"]), step)
        super()._run_update(group, param, grad, state, step, tmp)

    def _update(self, group, param, grad, state, step, tmp):
        xp = array_module(param)
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        momentum_decay = float(group["momentum_decay"])
        exp_avg = state["exp_avg"]
        exp_avg_sq = state["exp_avg_sq"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)

        mu = _momentum(beta1, momentum_decay, step)
        mu_next = _momentum(beta1, momentum_decay, step + 1.0)
        mu_product = float(state["mu_product"])
        mu_product_next = mu_product * mu_next

        self._lerp_(exp_avg, g, 1.0 - beta1, t1)
        self._decay_average_(exp_avg_sq, g, beta2, t1)

        # denom = sqrt(v / (1 - beta2**t)) + eps, kept in t1
        xp.divide(exp_avg_sq, 1.0 - beta2 ** step, out=t1)
        xp.sqrt(t1, out=t1)
        t1 += float(group["eps"])
        if g is grad:
            # t0 is free: take the gradient's term there
            xp.multiply(grad, -lr * (1.0 - mu) / (1.0 - mu_product), out=t0)
        else:
            t0 *= -lr * (1.0 - mu) / (1.0 - mu_product)
        t0 /= t1
        param += t0
        xp.multiply(exp_avg, (-lr * mu_next) / (1.0 - mu_product_next), out=t0)
        t0 /= t1
        param += t0
