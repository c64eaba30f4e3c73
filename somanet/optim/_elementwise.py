"""Elementwise pieces shared by the update rules of several optimizers (in place, on raw arrays).

Each helper reproduces the rounding order of the matching PyTorch CPU kernel for the parameter's
dtype: a Python float coefficient is rounded to that dtype before it is used, as PyTorch does with a
scalar argument.
"""
from .optimizer import is_small_weight


def effective_grad(xp, grad, param, weight_decay, maximize, out, scratch):
    """The gradient the rule sees: ``-grad`` when maximizing, plus ``weight_decay * param`` (L2).

    Returns ``grad`` itself when neither applies, else ``out`` (``scratch`` is overwritten).
    """
    g = grad
    if maximize:
        xp.negative(grad, out=out)
        g = out
    if weight_decay != 0:
        xp.multiply(param, weight_decay, out=scratch)
        xp.add(g, scratch, out=out)
        g = out
    return g


def lerp_(xp, avg, target, weight, scratch):
    """``avg = lerp(avg, target, weight)`` in place, with the two formulas PyTorch's lerp switches
    between at ``|weight| = 0.5`` (the weight is taken in ``avg``'s dtype)."""
    w = avg.dtype.type(weight)
    xp.subtract(target, avg, out=scratch)
    if is_small_weight(float(w)):
        scratch *= w
        avg += scratch
    else:
        scratch *= avg.dtype.type(1) - w
        xp.subtract(target, scratch, out=avg)


def decay_average_(xp, avg, value, decay, scratch):
    """``avg = decay * avg + (1 - decay) * value * value`` in place (PyTorch's ``mul_``, ``addcmul_``)."""
    avg *= decay
    xp.multiply(value, 1.0 - decay, out=scratch)
    scratch *= value
    avg += scratch
