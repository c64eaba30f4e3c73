"""Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm."""
from ..backend import array_module
from .adam import check_adam_hypers
from .optimizer import Optimizer, new_step, reject_unsupported

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax, PyTorch's ``torch.optim.Adamax``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``::

        g = g + weight_decay * p
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 2e-3).
        betas: decay rates of the first moment and of the infinity norm (default (0.9, 0.999)).
        eps: added to ``|g|`` for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        maximize: maximize the objective instead of minimizing it.
        differentiable, capturable: accepted for PyTorch compatibility; ``True`` is refused.

    Example::

        opt = somanet.optim.Adamax(model.parameters(), lr=2e-3)

    State per parameter: ``step``, ``exp_avg`` (``m``) and ``exp_inf`` (``u``).
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        lr, betas = check_adam_hypers("Adamax", lr, betas, eps, weight_decay)
        reject_unsupported("Adamax", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable, "capturable": capturable,
        }
        super().__init__(params, defaults)

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["exp_avg"] = xp.zeros_like(param.array)
        state["exp_inf"] = xp.zeros_like(param.array)

    def _update(self, group, param, grad, state, step, tmp):
        xp = array_module(param)
        beta1, beta2 = (float(b) for b in group["betas"])
        exp_avg = state["exp_avg"]
        exp_inf = state["exp_inf"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)
        self._lerp_(exp_avg, g, 1.0 - beta1, t1)
        exp_inf *= beta2
        xp.abs(g, out=t1)
        t1 += float(group["eps"])
        xp.maximum(exp_inf, t1, out=exp_inf)

        clr = float(group["lr"]) / (1.0 - beta1 ** step)
        xp.multiply(exp_avg, -clr, out=t1)
        t1 /= exp_inf
        param += t1
