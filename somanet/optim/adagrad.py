"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""
from ..backend import array_module
from ..kernels import _select
from .optimizer import Optimizer, as_scalar, check_hyper, new_step, reject_unsupported

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, PyTorch's ``torch.optim.Adagrad``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``::

        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        initial_accumulator_value: starting value of the sum of squares (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        maximize: maximize the objective instead of minimizing it.
        differentiable: accepted for PyTorch compatibility; ``True`` is refused.
        fused: ``True`` means the flattened update.

    Example::

        opt = somanet.optim.Adagrad(model.parameters(), lr=0.05, lr_decay=1e-4)

    State per parameter (created in the constructor, as in PyTorch): ``step`` and ``sum``.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        lr = as_scalar("Adagrad", "lr", lr)
        check_hyper("Adagrad", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("Adagrad", lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}", "lr_decay >= 0")
        check_hyper("Adagrad", weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}",
                    "weight_decay >= 0")
        check_hyper("Adagrad", initial_accumulator_value >= 0.0,
                    f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
                    "initial_accumulator_value >= 0")
        check_hyper("Adagrad", eps >= 0.0, f"Invalid epsilon value: {eps}", "eps >= 0")
        reject_unsupported("Adagrad", differentiable=differentiable, foreach=foreach, fused=fused)
        defaults = {
            "lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "foreach": foreach, "maximize": maximize,
            "differentiable": differentiable, "fused": fused,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(group, p, self.state[p])

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["sum"] = xp.full_like(param.array, group["initial_accumulator_value"])

    def _update(self, group, param, grad, state, step, tmp):
        kernel = _select.choose("adagrad", group, param, grad, state)
        if kernel != "reference":
            return _select.implementation("adagrad", kernel)(group, param, grad, state, step)
        xp = array_module(param)
        state_sum = state["sum"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)

        clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
        xp.multiply(g, g, out=t1)
        state_sum += t1
        xp.sqrt(state_sum, out=t1)
        t1 += float(group["eps"])
        xp.multiply(g, -clr, out=t0)
        t0 /= t1
        param += t0
