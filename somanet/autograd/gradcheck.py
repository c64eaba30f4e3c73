"""Finite-difference gradient checking in float64."""
import numpy as np

from .tensor import Tensor
from . import grad_mode


def _flat_outputs(out):
    if isinstance(out, Tensor):
        return [out]
    return [o for o in out if isinstance(o, Tensor)]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare ``fn``'s analytic gradients with central finite differences in float64.

    ``inputs`` is a tensor or a sequence of tensors (and other arguments); every floating tensor
    that requires grad is checked, after being cast to float64. For each output, a random projection
    ``sum(out * v)`` is differentiated, so multi-element and multi-output functions are covered.
    Returns True, or raises ``AssertionError`` naming the input and the worst element.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = list(inputs)
    checked = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad:
            t = Tensor(x.array.astype(np.float64), requires_grad=True)
            inputs[i] = t
            checked.append(i)
        elif isinstance(x, Tensor) and x.array.dtype.kind == "f":
            inputs[i] = Tensor(x.array.astype(np.float64))
    if not checked:
        raise ValueError("gradcheck(): no input requires grad")
    rng = np.random.default_rng(0)
    with grad_mode.enable_grad():
        outs = _flat_outputs(fn(*inputs))
    projections = [rng.standard_normal(o.shape) for o in outs]

    def scalar():
        with grad_mode.no_grad():
            os_ = _flat_outputs(fn(*inputs))
        return sum(float(np.sum(o.array.astype(np.float64) * v)) for o, v in zip(os_, projections))

    for i in checked:
        inputs[i].grad = None
    with grad_mode.enable_grad():
        outs = _flat_outputs(fn(*inputs))
        total = None
        for o, v in zip(outs, projections):
            if not o.requires_grad:
                continue
            term = (o * Tensor(v.astype(o.array.dtype))).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    for i in checked:
        x = inputs[i]
        analytic = np.zeros_like(x.array) if x.grad is None else x.grad.array
        numeric = np.zeros_like(x.array)
        flat = x.array.reshape(-1)
        num_flat = numeric.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = scalar()
            flat[k] = orig - eps
            minus = scalar()
            flat[k] = orig
            num_flat[k] = (plus - minus) / (2 * eps)
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            err = np.abs(analytic - numeric)
            k = int(np.argmax(err))
            msg = (f"gradcheck(): gradient of input {i} (shape {tuple(x.shape)}) differs from finite differences: "
                   f"at flat index {k} analytic {analytic.reshape(-1)[k]:.6g} vs numeric {numeric.reshape(-1)[k]:.6g} "
                   f"(max abs error {err.max():.3g}, atol {atol}, rtol {rtol})")
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
