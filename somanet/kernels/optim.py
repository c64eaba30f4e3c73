"""Compiled optimizer updates: Adam/AdamW, SGD with momentum, RMSprop and Adagrad as one loop over the
parameters (Numba, the ``fast`` extra).

The reference update rules (``somanet/optim``) are a dozen NumPy calls per step, each a pass over the
parameter-sized arrays through scratch buffers: for Adam about eleven reads and eight writes of every
element. Here one loop reads the parameter, its gradient and state once and writes them back once, in
registers. Each element goes through the same float operations in the same order as the reference
(scalars rounded to the parameter's dtype first, no fused multiply-adds), so the results are bit for bit
the reference's. Registered as the ``"numba"`` kernel of ``adam`` (also AdamW), ``sgd``, ``rmsprop`` and
``adagrad``; the loops
take flat, C-contiguous arrays of one float dtype and run on the calling thread (the optimizers' own row
blocks still split big parameters across threads: the loops release the GIL).
"""
import numpy as np

from .. import backend
from . import _jit, _select

__all__ = ["choose_adam", "choose_sgd", "choose_rmsprop", "choose_adagrad", "adam_update", "sgd_update",
           "rmsprop_update", "adagrad_update"]

#: Fewest elements of a parameter for which the compiled loops are chosen.
MIN_ELEMENTS = 1 << 12


def _build(numba):
    """The compiled loops, from the ``numba`` module."""
    njit = numba.njit
    opts = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

    # Inlined into each loop at compile time (no call inside the loop, no dispatch).
    @njit(inline="always", **opts)
    def decayed(g, p, maximize, decay_mode, wd):
        """The gradient (negated with ``maximize``) and parameter after weight decay. ``decay_mode``: 0
        none, 1 L2 (g + wd * p), 2 decoupled (p * wd, wd = 1 - lr * weight_decay)."""
        if maximize:
            g = -g
        if decay_mode == 2:
            p = p * wd
        elif decay_mode == 1:
            g = g + p * wd
        return g, p

    @njit(inline="always", **opts)
    def lerp(a, g, w, one_minus_w, small):
        """``a + (g - a) * w`` with PyTorch's switch of formula at ``|w| = 0.5`` (``small``: ``|w| < 0.5``)."""
        d = g - a
        if small:
            return a + d * w
        return g - d * one_minus_w

    @njit(**opts)
    def adam(param, grad, exp_avg, exp_avg_sq, max_sq, maximize, decay_mode, wd, w1, one_minus_w1, small,
             beta2, one_minus_beta2, bc2_sqrt, eps, neg_step, amsgrad):
        for i in range(param.shape[0]):
            g, p = decayed(grad[i], param[i], maximize, decay_mode, wd)
            m = lerp(exp_avg[i], g, w1, one_minus_w1, small)
            exp_avg[i] = m
            v = exp_avg_sq[i] * beta2 + (g * one_minus_beta2) * g
            exp_avg_sq[i] = v
            s = v
            if amsgrad:
                prev = max_sq[i]
                if prev != prev or prev > v:  # np.maximum: NaN wins
                    s = prev
                max_sq[i] = s
            den = np.sqrt(s) / bc2_sqrt + eps
            param[i] = p + (m * neg_step) / den

    @njit(**opts)
    def sgd(param, grad, buf, maximize, decay_mode, wd, momentum, damp, nesterov, first, neg_lr):
        for i in range(param.shape[0]):
            g, p = decayed(grad[i], param[i], maximize, decay_mode, wd)
            step = g
            if buf.shape[0]:
                if first:
                    b = g
                elif damp == 1:
                    b = buf[i] * momentum + g
                else:
                    b = buf[i] * momentum + g * damp
                buf[i] = b
                step = g + b * momentum if nesterov else b
            param[i] = p + step * neg_lr

    @njit(**opts)
    def rmsprop(param, grad, square_avg, grad_avg, buf, maximize, decay_mode, wd, alpha, one_minus_alpha, w,
                one_minus_w, small, centered, eps, momentum, neg_lr):
        for i in range(param.shape[0]):
            g, p = decayed(grad[i], param[i], maximize, decay_mode, wd)
            v = square_avg[i] * alpha + (g * one_minus_alpha) * g
            square_avg[i] = v
            if centered:
                a = lerp(grad_avg[i], g, w, one_minus_w, small)
                grad_avg[i] = a
                den = np.sqrt((-a) * a + v) + eps
            else:
                den = np.sqrt(v) + eps
            if buf.shape[0]:
                b = buf[i] * momentum + g / den
                buf[i] = b
                param[i] = p + b * neg_lr
            else:
                param[i] = p + (g * neg_lr) / den

    @njit(**opts)
    def adagrad(param, grad, state_sum, maximize, decay_mode, wd, eps, neg_clr):
        for i in range(param.shape[0]):
            g, p = decayed(grad[i], param[i], maximize, decay_mode, wd)
            total = state_sum[i] + g * g
            state_sum[i] = total
            param[i] = p + (g * neg_clr) / (np.sqrt(total) + eps)

    return adam, sgd, rmsprop, adagrad


# The lerp of a moving average switches formula at |weight| = 0.5, as PyTorch's lerp does (and the
# reference update through ``Optimizer._lerp_``).


def _flat(a):
    return a.reshape(-1)


def _decay(group, t):
    """``(mode, factor)`` of the group's weight decay, the factor rounded to the parameter dtype ``t``."""
    weight_decay = float(group["weight_decay"])
    if weight_decay == 0:
        return 0, t(0)
    if group.get("decoupled_weight_decay", False):
        return 2, t(1.0 - float(group["lr"]) * weight_decay)
    return 1, t(weight_decay)


def adam_update(group, param, grad, state, step):
    """One Adam/AdamW step of ``param`` (in place) and its ``exp_avg``/``exp_avg_sq`` (and
    ``max_exp_avg_sq`` with amsgrad) state, from ``grad``; ``step`` is the already incremented count."""
    adam = _jit.compiled("optim", _build)[0]
    t = param.dtype.type
    lr = float(group["lr"])
    beta1, beta2 = (float(b) for b in group["betas"])
    w1 = t(1.0 - beta1)
    mode, wd = _decay(group, t)
    bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
    step_size = lr / (1.0 - beta1 ** step)
    amsgrad = bool(group["amsgrad"])
    max_sq = _flat(state["max_exp_avg_sq"]) if amsgrad else _flat(state["exp_avg_sq"])[:0]
    adam(_flat(param), _flat(grad), _flat(state["exp_avg"]), _flat(state["exp_avg_sq"]), max_sq,
         bool(group["maximize"]), mode, wd, w1, t(1) - w1, abs(float(w1)) < 0.5, t(beta2), t(1.0 - beta2),
         t(bias_correction2_sqrt), t(float(group["eps"])), t(-step_size), amsgrad)


def sgd_update(group, param, grad, state, step):
    """One SGD step of ``param`` (in place), with momentum (``state["momentum_buffer"]``, made from this
    step's gradient when missing), dampening, Nesterov, weight decay and maximize as in ``optim.SGD``."""
    sgd = _jit.compiled("optim", _build)[1]
    t = param.dtype.type
    mode, wd = _decay(group, t)
    momentum = float(group["momentum"])
    flat = _flat(param)
    first = False
    buf = flat[:0]
    if momentum != 0:
        if state.get("momentum_buffer") is None:
            state["momentum_buffer"] = np.empty_like(param)
            first = True
        buf = _flat(state["momentum_buffer"])
    damp = 1.0 - float(group["dampening"])
    sgd(flat, _flat(grad), buf, bool(group["maximize"]), mode, wd, t(momentum), t(damp), bool(group["nesterov"]),
        first, t(-float(group["lr"])))


def rmsprop_update(group, param, grad, state, step):
    """One RMSprop step of ``param`` (in place) and its ``square_avg`` (``grad_avg`` when centered,
    ``momentum_buffer`` with momentum) state, as ``optim.RMSprop``."""
    rmsprop = _jit.compiled("optim", _build)[2]
    t = param.dtype.type
    mode, wd = _decay(group, t)
    alpha = float(group["alpha"])
    w = t(1.0 - alpha)
    momentum = float(group["momentum"])
    flat = _flat(param)
    centered = bool(group["centered"])
    grad_avg = _flat(state["grad_avg"]) if centered else flat[:0]
    buf = _flat(state["momentum_buffer"]) if momentum > 0 else flat[:0]
    rmsprop(flat, _flat(grad), _flat(state["square_avg"]), grad_avg, buf, bool(group["maximize"]), mode, wd,
            t(alpha), t(1.0 - alpha), w, t(1) - w, abs(float(w)) < 0.5, centered, t(float(group["eps"])),
            t(momentum), t(-float(group["lr"])))


def adagrad_update(group, param, grad, state, step):
    """One Adagrad step of ``param`` (in place) and its ``sum`` state, as ``optim.Adagrad``."""
    adagrad = _jit.compiled("optim", _build)[3]
    t = param.dtype.type
    mode, wd = _decay(group, t)
    clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
    adagrad(_flat(param), _flat(grad), _flat(state["sum"]), bool(group["maximize"]), mode, wd,
            t(float(group["eps"])), t(-clr))


def _fits(param, grad, state_arrays):
    if backend.array_module(param) is not np or param.dtype not in (np.float32, np.float64):
        return False
    if grad.dtype != param.dtype or not param.flags.c_contiguous or not grad.flags.c_contiguous:
        return False
    for a in state_arrays:
        if a is not None and (a.dtype != param.dtype or not a.flags.c_contiguous or a.shape != param.shape):
            return False
    return _select.numba_available() and _jit.enabled()


def _adam_fits(group, param, grad, state):
    arrays = [state.get("exp_avg"), state.get("exp_avg_sq")] + ([state.get("max_exp_avg_sq")]
                                                                  if group["amsgrad"] else [])
    return all(a is not None for a in arrays) and _fits(param, grad, arrays)


def _sgd_fits(group, param, grad, state):
    return _fits(param, grad, [state.get("momentum_buffer")] if state else [])


def _rmsprop_fits(group, param, grad, state):
    arrays = [state.get("square_avg")]
    if group["centered"]:
        arrays.append(state.get("grad_avg"))
    if float(group["momentum"]) > 0:
        arrays.append(state.get("momentum_buffer"))
    return all(a is not None for a in arrays) and _fits(param, grad, arrays)


def _adagrad_fits(group, param, grad, state):
    return state.get("sum") is not None and _fits(param, grad, [state["sum"]])


def _chooser(fits):
    def choose(group, param, grad, state):
        return "numba" if param.size >= MIN_ELEMENTS and fits(group, param, grad, state) else "reference"
    return choose


choose_rmsprop = _chooser(_rmsprop_fits)
choose_rmsprop.__doc__ = "The chooser of ``rmsprop``: as ``choose_adam``."
choose_adagrad = _chooser(_adagrad_fits)
choose_adagrad.__doc__ = "The chooser of ``adagrad``: as ``choose_adam``."


def choose_adam(group, param, grad, state):
    """The chooser of ``adam`` (Adam and AdamW): ``"numba"`` for NumPy float32/float64 parameters of at
    least ``MIN_ELEMENTS`` with contiguous gradient and state when Numba is installed, else
    ``"reference"``."""
    return "numba" if param.size >= MIN_ELEMENTS and _adam_fits(group, param, grad, state) else "reference"


def choose_sgd(group, param, grad, state):
    """The chooser of ``sgd``: as ``choose_adam``."""
    return "numba" if param.size >= MIN_ELEMENTS and _sgd_fits(group, param, grad, state) else "reference"


_select.register("adam", "numba", adam_update, chooser=choose_adam, supports=_adam_fits, requires="numba")
_select.register("sgd", "numba", sgd_update, chooser=choose_sgd, supports=_sgd_fits, requires="numba")
_select.register("rmsprop", "numba", rmsprop_update, chooser=choose_rmsprop, supports=_rmsprop_fits,
                 requires="numba")
_select.register("adagrad", "numba", adagrad_update, chooser=choose_adagrad, supports=_adagrad_fits,
                 requires="numba")
