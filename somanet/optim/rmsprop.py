"""RMSprop: divide the gradient by a running root mean square of recent gradients."""

from ..backend import array_module
from ..kernels import _select
from .optimizer import Optimizer, as_scalar, check_hyper, new_step, reject_unsupported

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, PyTorch's ``torch.optim.RMSprop``.

    With gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - m * m) + eps with m = lerp(m, g, 1 - alpha)   (centered)
        avg = sqrt(v) + eps                                           (otherwise)
        b = momentum * b + g / avg;  p = p - lr * b                   (momentum > 0)
        p = p - lr * g / avg                                          (otherwise)

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
        capturable: accepted for PyTorch compatibility; ``True`` is refused.
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        maximize: maximize the objective instead of minimizing it.
        differentiable: accepted for PyTorch compatibility; ``True`` is refused.

    Example::

        opt = somanet.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0) and ``grad_avg``
    (centered).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        lr = as_scalar("RMSprop", "lr", lr)
        check_hyper("RMSprop", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("RMSprop", eps >= 0.0, f"Invalid epsilon value: {eps}", "eps >= 0")
        check_hyper("RMSprop", momentum >= 0.0, f"Invalid momentum value: {momentum}", "momentum >= 0")
        check_hyper("RMSprop", weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}",
                    "weight_decay >= 0")
        check_hyper("RMSprop", alpha >= 0.0, f"Invalid alpha value: {alpha}", "alpha >= 0")
        reject_unsupported("RMSprop", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
            "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach, "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["square_avg"] = xp.zeros_like(param.array)
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(param.array)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(param.array)

    def _update(self, group, param, grad, state, step, tmp):
        kernel = _select.choose("rmsprop", group, param, grad, state)
        if kernel != "reference":
            return _select.implementation("rmsprop", kernel)(group, param, grad, state, step)
        xp = array_module(param)
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        momentum = float(group["momentum"])
        square_avg = state["square_avg"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)
        self._decay_average_(square_avg, g, alpha, t1)

        if group["centered"]:
            grad_avg = state["grad_avg"]
            self._lerp_(grad_avg, g, 1.0 - alpha, t1)
            # square_avg - grad_avg**2, in the order PyTorch's addcmul(value=-1) rounds it
            xp.negative(grad_avg, out=t1)
            t1 *= grad_avg
            t1 += square_avg
            xp.sqrt(t1, out=t1)
        else:
            xp.sqrt(square_avg, out=t1)
        t1 += float(group["eps"])

        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            xp.divide(g, t1, out=t1)
            buf += t1
            xp.multiply(buf, -lr, out=t1)
            param += t1
        else:
            xp.multiply(g, -lr, out=t0)
            t0 /= t1
            param += t0
