"""Adam: adaptive moment estimation, with optional AMSGrad and L2 or decoupled weight decay."""

from ..backend import array_module
from ..kernels import _select
from .optimizer import Optimizer, as_scalar, check_hyper, new_step, reject_unsupported

__all__ = ["Adam"]


def check_adam_hypers(owner, lr, betas, eps, weight_decay):
    """Validate Adam-family hyperparameters with PyTorch's messages; returns ``(lr, betas)`` as floats."""
    lr = as_scalar(owner, "lr", lr)
    check_hyper(owner, lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
    check_hyper(owner, eps >= 0.0, f"Invalid epsilon value: {eps}", "eps >= 0")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    beta1 = as_scalar(owner, "betas[0]", beta1)
    beta2 = as_scalar(owner, "betas[1]", beta2)
    check_hyper(owner, 0.0 <= beta1 < 1.0, f"Invalid beta parameter at index 0: {beta1}", "0 <= beta1 < 1")
    check_hyper(owner, 0.0 <= beta2 < 1.0, f"Invalid beta parameter at index 1: {beta2}", "0 <= beta2 < 1")
    check_hyper(owner, weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}", "weight_decay >= 0")
    return lr, (beta1, beta2)


class Adam(Optimizer):
    """Adam, PyTorch's ``torch.optim.Adam``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``::

        g = g + weight_decay * p            (or p = p * (1 - lr * weight_decay) when decoupled)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v)               (amsgrad; the denominator then uses v_hat)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        amsgrad: use the AMSGrad variant (the running maximum of the second moment).
        foreach: ``True``/``False``/``None``: flattened, per-parameter or automatic update (identical results).
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: accepted for PyTorch compatibility; ``True`` is refused.
        fused: ``True`` means the flattened update.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of through the gradient.

    Example::

        opt = somanet.optim.Adam(model.parameters(), lr=1e-3)

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        owner = type(self).__name__
        lr, betas = check_adam_hypers(owner, lr, betas, eps, weight_decay)
        reject_unsupported(owner, capturable=capturable, differentiable=differentiable, foreach=foreach, fused=fused)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
            "maximize": maximize, "foreach": foreach, "capturable": capturable,
            "differentiable": differentiable, "fused": fused, "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["exp_avg"] = xp.zeros_like(param.array)
        state["exp_avg_sq"] = xp.zeros_like(param.array)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(param.array)

    def _update(self, group, param, grad, state, step, tmp):
        kernel = _select.choose("adam", group, param, grad, state)
        if kernel != "reference":
            return _select.implementation("adam", kernel)(group, param, grad, state, step)
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
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5

        second = exp_avg_sq
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]
            xp.maximum(second, exp_avg_sq, out=second)
        xp.sqrt(second, out=t1)
        t1 /= bias_correction2_sqrt
        t1 += float(group["eps"])
        xp.multiply(exp_avg, -step_size, out=t0)
        t0 /= t1
        param += t0
