"""RAdam: Adam whose adaptive step is switched on gradually, as the variance estimate becomes reliable."""
import math

from ..backend import array_module
from .adam import check_adam_hypers
from .optimizer import Optimizer, new_step, reject_unsupported

__all__ = ["RAdam"]


class RAdam(Optimizer):
    """RAdam (rectified Adam), PyTorch's ``torch.optim.RAdam``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``, ``rho_inf = 2 / (1 - beta2) - 1``
    and ``rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)``::

        g = g + weight_decay * p            (or p = p * (1 - lr * weight_decay) when decoupled)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        if rho_t > 5:
            r = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
            p = p - lr * m_hat * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
        else:
            p = p - lr * m_hat                (plain momentum while the variance is untrustworthy)

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        decoupled_weight_decay: decay the weights directly (as AdamW does) instead of through the gradient.
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: accepted for PyTorch compatibility; ``True`` is refused.

    Example::

        opt = somanet.optim.RAdam(model.parameters(), lr=1e-3, weight_decay=1e-2, decoupled_weight_decay=True)

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        lr, betas = check_adam_hypers("RAdam", lr, betas, eps, weight_decay)
        reject_unsupported("RAdam", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
            "foreach": foreach, "capturable": capturable, "decoupled_weight_decay": decoupled_weight_decay,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["exp_avg"] = xp.zeros_like(param.array)
        state["exp_avg_sq"] = xp.zeros_like(param.array)

    def _update(self, group, param, grad, state, step, tmp):
        xp = array_module(param)
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        exp_avg = state["exp_avg"]
        exp_avg_sq = state["exp_avg_sq"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)

        self._lerp_(exp_avg, g, 1.0 - beta1, t1)
        self._decay_average_(exp_avg_sq, g, beta2, t1)

        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2 = 1.0 - beta2 ** step
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta2 ** step / bias_correction2

        # PyTorch's order: ((m / bc1) * lr) * (sqrt(bc2) * (1 / (sqrt(v) + eps))) * r
        xp.divide(exp_avg, bias_correction1, out=t0)
        t0 *= lr
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            xp.sqrt(exp_avg_sq, out=t1)
            t1 += float(group["eps"])
            xp.reciprocal(t1, out=t1)
            t1 *= bias_correction2 ** 0.5
            t0 *= t1
            t0 *= rect
        param -= t0
