"""Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and weight decay."""
from ..backend import array_module
from ..kernels import _select
from .optimizer import Optimizer, as_scalar, check_hyper, reject_unsupported

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), PyTorch's ``torch.optim.SGD``.

    With gradient ``g`` (negated when ``maximize``), each step does::

        g = g + weight_decay * p
        b = g                                   (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        g = g + momentum * b if nesterov else b
        p = p - lr * g

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` updates each group as one flattened array, ``False`` one parameter at a time,
            ``None`` picks by parameter count and size. Results are identical.
        differentiable, fused: accepted for PyTorch compatibility; ``differentiable=True`` is refused,
            ``fused=True`` means the flattened update.

    Example::

        opt = somanet.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

    State per parameter: ``momentum_buffer`` (only when momentum is not 0).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        lr = as_scalar("SGD", "lr", lr)
        check_hyper("SGD", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("SGD", momentum >= 0.0, f"Invalid momentum value: {momentum}", "momentum >= 0")
        check_hyper("SGD", weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}", "weight_decay >= 0")
        reject_unsupported("SGD", differentiable=differentiable, foreach=foreach, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening (got momentum={momentum}, "
                             f"dampening={dampening}; expected momentum > 0 and dampening = 0)")
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "maximize": maximize, "foreach": foreach, "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    # Few passes over memory per update, so the flattened path stops paying off earlier than Adam's.
    flat_max_size = 4096

    def _needs_state(self, group):
        return group["momentum"] != 0

    def _state_complete(self, group, state):
        # The momentum buffer is made from the first step's gradient.
        return group["momentum"] == 0 or "momentum_buffer" in state

    def _update(self, group, param, grad, state, step, tmp):
        kernel = _select.choose("sgd", group, param, grad, state)
        if kernel != "reference":
            return _select.implementation("sgd", kernel)(group, param, grad, state, step)
        xp = array_module(param)
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        t0, t1 = tmp
        d_p = self._effective_grad(group, param, grad, t0, t1)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = d_p.copy()
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                damp = 1.0 - float(group["dampening"])
                if damp == 1.0:
                    buf += d_p
                else:
                    xp.multiply(d_p, damp, out=t1)
                    buf += t1
            if group["nesterov"]:
                xp.multiply(buf, momentum, out=t1)
                xp.add(d_p, t1, out=t1)
                d_p = t1
            else:
                d_p = buf
        xp.multiply(d_p, -lr, out=t1)
        param += t1
