"""Finite-difference checks of first and second derivatives in float64: ``gradcheck`` and ``gradgradcheck``."""
import numpy as np

from .. import backend, devices
from . import grad_mode
from .engine import grad
from .tensor import Tensor, _wrap


class GradcheckError(RuntimeError, AssertionError):
    """A gradient differs from its finite-difference estimate (a RuntimeError, as in PyTorch, and an
    AssertionError, as somanet's gradcheck raised before)."""


def _flat_outputs(out):
    if isinstance(out, Tensor):
        return [out]
    return [o for o in out if isinstance(o, Tensor)]


def _unsupported(**options):
    for name, value in options.items():
        if value:
            raise NotImplementedError(f"gradcheck(): {name}=True is not supported")


def _host64(a):
    """A float64 host copy of the array ``a`` (which may live on a device): the Jacobians are built on the CPU."""
    return devices.move(a, devices.CPU).astype(np.float64)


def _as_float64(inputs):
    """Copies of the inputs in float64: the ones that require grad are checked."""
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = list(inputs)
    checked = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.array.dtype.kind == "f":
            inputs[i] = Tensor(x.array.astype(np.float64), requires_grad=x.requires_grad)
            if x.requires_grad:
                checked.append(i)
    return inputs, checked


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, *, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_batched_forward_grad=False, check_forward_ad=False, check_backward_ad=True, fast_mode=False,
              masked=None):
    """Compare the gradients of ``func`` with central finite differences, in float64.

    ``inputs`` is a tensor or a sequence of tensors (and other arguments); every floating tensor that
    requires grad is checked, on a float64 copy. The whole Jacobian of every output is compared, one
    backward pass per output element (with ``fast_mode=True``, random projections of it), element by
    element with ``|analytic - numeric| <= atol + rtol * |numeric|``. Returns True, or raises
    ``GradcheckError`` (or returns False with ``raise_exception=False``) naming the input, the output
    and the worst element. PyTorch's other options are accepted; the batched and forward-mode checks are
    not supported.
    """
    _unsupported(check_batched_grad=check_batched_grad, check_batched_forward_grad=check_batched_forward_grad,
                 check_forward_ad=check_forward_ad)
    inputs, checked = _as_float64(inputs)
    if not checked:
        raise ValueError("gradcheck(): no input requires grad")
    if not check_backward_ad:
        return True

    def evaluate():
        with grad_mode.no_grad():
            outs = _flat_outputs(func(*inputs))
        return [_host64(o.array).reshape(-1) for o in outs]

    with grad_mode.enable_grad():
        outs = _flat_outputs(func(*inputs))
    sizes = [o.array.size for o in outs]
    # Numeric Jacobians: one column per input element.
    numeric = {}
    for i in checked:
        x = inputs[i].array
        flat = x.reshape(-1)
        cols = np.zeros((sum(sizes), flat.size))
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = np.concatenate(evaluate()) if outs else np.zeros(0)
            flat[k] = orig - eps
            minus = np.concatenate(evaluate()) if outs else np.zeros(0)
            flat[k] = orig
            cols[:, k] = (plus - minus) / (2 * eps)
        numeric[i] = cols
    # Analytic Jacobians: one row per output element (or a few random projections).
    targets = [inputs[i] for i in checked]
    rng = np.random.default_rng(0)
    analytic = {i: np.zeros_like(numeric[i]) for i in checked}
    projections = None
    if fast_mode:
        projections = rng.standard_normal((4, sum(sizes)))
        analytic = {i: np.zeros((4, numeric[i].shape[1])) for i in checked}
    start = 0
    for o, n in zip(outs, sizes):
        if o.requires_grad and n:
            rows = range(4) if fast_mode else range(n)
            for r in rows:
                if fast_mode:
                    v = projections[r, start:start + n]
                else:
                    v = np.zeros(n)
                    v[r] = 1
                cot = _wrap(devices.move(v.reshape(o.shape).astype(o.array.dtype), devices.of_array(o.array)),
                            False, None, 0)
                grads = grad(o, targets, cot, retain_graph=True, allow_unused=True)
                for i, g in zip(checked, grads):
                    if g is not None:
                        row = _host64(g.array).reshape(-1)
                        if fast_mode:
                            analytic[i][r] += row
                        else:
                            analytic[i][start + r] = row
        start += n
    for i in checked:
        num = projections @ numeric[i] if fast_mode else numeric[i]
        ana = analytic[i]
        bad = np.abs(ana - num) > atol + rtol * np.abs(num)
        if bad.any() or not np.isfinite(ana).all() and np.isfinite(num).all():
            err = np.abs(ana - num)
            r, k = np.unravel_index(int(np.argmax(np.where(np.isnan(err), np.inf, err))), err.shape)
            where = f"projection {r}" if fast_mode else f"output element {r}"
            msg = (f"gradcheck(): the gradient of input {i} (shape {tuple(inputs[i].shape)}) differs from finite "
                   f"differences at {where}, input element {k}: analytic {ana[r, k]:.6g} vs numeric {num[r, k]:.6g} "
                   f"(max abs error {np.nanmax(err):.3g}, atol {atol}, rtol {rtol})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0, check_undefined_grad=True,
                  check_grad_dtypes=False, check_batched_grad=False, check_fwd_over_rev=False,
                  check_rev_over_rev=True, fast_mode=False, masked=False):
    """Check second derivatives: ``gradcheck`` of the function ``(inputs, v) -> v^T J(inputs)``, whose
    gradients are computed with ``create_graph=True``. ``grad_outputs`` (the vectors ``v``, one per output)
    default to random float64 tensors; they are checked too when they require grad."""
    _unsupported(check_batched_grad=check_batched_grad, check_fwd_over_rev=check_fwd_over_rev)
    if not check_rev_over_rev:
        return True
    inputs, checked = _as_float64(inputs)
    if not checked:
        raise ValueError("gradgradcheck(): no input requires grad")
    with grad_mode.enable_grad():
        outs = _flat_outputs(func(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = [Tensor(devices.move(rng.standard_normal(o.shape), devices.of_array(o.array)),
                               requires_grad=True) for o in outs]
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
        grad_outputs = [Tensor(g.array.astype(np.float64) if isinstance(g, Tensor) else np.asarray(g, dtype=np.float64),
                               requires_grad=isinstance(g, Tensor) and g.requires_grad) for g in grad_outputs]
    if len(grad_outputs) != len(outs):
        raise ValueError(f"gradgradcheck(): got {len(grad_outputs)} grad_outputs for {len(outs)} outputs")
    n = len(inputs)

    def first_derivatives(*args):
        xs, vs = list(args[:n]), args[n:]
        # Finite differences evaluate this under no_grad; the first derivatives need the graph anyway.
        with grad_mode.enable_grad():
            outputs = _flat_outputs(func(*xs))
            pairs = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
            wrt = [xs[i] for i in checked]
            if not pairs:
                return tuple(Tensor(backend.array_module(x.array).zeros(x.shape)) for x in wrt)
            grads = grad([o for o, _ in pairs], wrt, [v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(Tensor(backend.array_module(x.array).zeros(x.shape)) if g is None else g
                     for g, x in zip(grads, wrt))

    return gradcheck(first_derivatives, list(inputs) + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode)
