"""Adadelta: step sizes from running averages of squared gradients and of squared updates."""
from ..backend import array_module
from .optimizer import Optimizer, as_scalar, check_hyper, new_step, reject_unsupported

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, PyTorch's ``torch.optim.Adadelta``.

    With gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    Args:
        params: parameters or param-group dicts.
        lr: scale applied to the update before it reaches the parameters (default 1.0).
        rho: smoothing constant of both running averages (default 0.9).
        eps: added inside both square roots for numerical stability (default 1e-6).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        capturable, differentiable: accepted for PyTorch compatibility; ``True`` is refused.
        maximize: maximize the objective instead of minimizing it.

    Example::

        opt = somanet.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95)

    State per parameter: ``step``, ``square_avg`` (``v``) and ``acc_delta`` (``u``).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        lr = as_scalar("Adadelta", "lr", lr)
        check_hyper("Adadelta", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("Adadelta", 0.0 <= rho <= 1.0, f"Invalid rho value: {rho}", "0 <= rho <= 1")
        check_hyper("Adadelta", eps >= 0.0, f"Invalid epsilon value: {eps}", "eps >= 0")
        check_hyper("Adadelta", weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}",
                    "weight_decay >= 0")
        reject_unsupported("Adadelta", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
            "capturable": capturable, "foreach": foreach, "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _temps(self, like, count=3):
        # The rule holds the gradient, the denominator and the update at once.
        return super()._temps(like, 3)

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["square_avg"] = xp.zeros_like(param.array)
        state["acc_delta"] = xp.zeros_like(param.array)

    def _update(self, group, param, grad, state, step, tmp):
        xp = array_module(param)
        rho = float(group["rho"])
        eps = float(group["eps"])
        square_avg = state["square_avg"]
        acc_delta = state["acc_delta"]
        t0, t1, t2 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)
        self._decay_average_(square_avg, g, rho, t1)
        xp.add(square_avg, eps, out=t1)
        xp.sqrt(t1, out=t1)
        xp.add(acc_delta, eps, out=t2)
        xp.sqrt(t2, out=t2)
        t2 /= t1
        t2 *= g
        self._decay_average_(acc_delta, t2, rho, t1)
        t2 *= -float(group["lr"])
        param += t2
