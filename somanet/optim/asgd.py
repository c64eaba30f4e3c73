"""ASGD: stochastic gradient descent with a decaying step and a running (Polyak) average of the iterates."""
import numpy as np

from ..backend import array_module
from .optimizer import Optimizer, as_scalar, check_hyper, new_step, reject_unsupported

__all__ = ["ASGD"]


class ASGD(Optimizer):
    """Averaged SGD, PyTorch's ``torch.optim.ASGD``.

    With gradient ``g`` (negated when ``maximize``) at step ``t``, using the ``eta`` and ``mu`` left by
    the previous step (``eta = lr`` and ``mu = 1`` at first)::

        g = g + weight_decay * p
        p = p * (1 - lambd * eta) - eta * g
        ax = p                              (while mu == 1)
        ax = ax + mu * (p - ax)             (afterwards: the average of the iterates since step t0)
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)

    The parameters follow the SGD iterates; ``state[p]['ax']`` holds the average, which is usually
    what is evaluated (copy it into the model after training).

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power of the step-size decay (default 0.75).
        t0: step at which averaging starts (default 1e6).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach: accepted for PyTorch compatibility; the update always runs per parameter (the
            per-parameter ``eta`` and ``mu`` state does not flatten).
        maximize: maximize the objective instead of minimizing it.
        differentiable, capturable: accepted for PyTorch compatibility; ``True`` is refused.

    Example::

        opt = somanet.optim.ASGD(model.parameters(), lr=0.01, t0=1000)

    State per parameter: ``step``, ``eta`` and ``mu`` (float32 scalar arrays, like ``step``) and ``ax``.
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        lr = as_scalar("ASGD", "lr", lr)
        check_hyper("ASGD", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("ASGD", weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}", "weight_decay >= 0")
        reject_unsupported("ASGD", capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0, "weight_decay": weight_decay, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable, "capturable": capturable,
        }
        super().__init__(params, defaults)

    def _flat_members(self, group, params):
        return ()

    _host_state = ("step", "eta", "mu")  # scalars the update reads as floats

    def _init_state(self, group, param, state):
        xp = array_module(param.array)
        state["step"] = new_step()
        state["eta"] = np.array(float(group["lr"]), dtype=np.float32)
        state["mu"] = np.ones((), dtype=np.float32)
        state["ax"] = xp.zeros_like(param.array)

    def _run_update(self, group, param, grad, state, step, tmp):
        # The (possibly row-split) elementwise update reads this step's eta and mu; the values for the
        # next step are written once it is done. They are rounded to float32 first, as PyTorch's are.
        super()._run_update(group, param, grad, state, step, tmp)
        lr = float(group["lr"])
        lambd = float(group["lambd"])
        state["eta"][...] = np.float32(lr / ((1.0 + lambd * lr * step) ** float(group["alpha"])))
        state["mu"][...] = np.float32(1.0 / max(1.0, step - float(group["t0"])))

    def _update(self, group, param, grad, state, step, tmp):
        xp = array_module(param)
        eta = float(state["eta"])
        mu = float(state["mu"])
        ax = state["ax"]
        t0, t1 = tmp

        g = self._effective_grad(group, param, grad, t0, t1)
        param *= 1.0 - float(group["lambd"]) * eta
        xp.multiply(g, -eta, out=t1)
        param += t1
        if mu != 1.0:
            xp.subtract(param, ax, out=t1)
            t1 *= param.dtype.type(float(mu))
            ax += t1
        else:
            xp.copyto(ax, param)
