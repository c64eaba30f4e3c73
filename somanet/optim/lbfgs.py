"""L-BFGS: a limited-memory quasi-Newton method, optionally with a strong-Wolfe line search.

All parameters are handled as one flat vector. The scalars of the algorithm (step length, directional
derivatives, curvature pairs' ``1 / (y . s)``) are NumPy scalars of the parameters' dtype wherever
PyTorch keeps them as 0-d tensors, and Python floats where PyTorch uses Python floats (the loss), so
that every comparison that steers the iteration rounds the same way.
"""
import numpy as np

from ..backend import array_module
from ..autograd.grad_mode import enable_grad
from .optimizer import Optimizer, _bump_version, as_scalar, check_hyper

__all__ = ["LBFGS"]

_LINE_SEARCHES = (None, "strong_wolfe")


def _div(num, den):
    """``num / den`` rounded as PyTorch rounds it: a Python number over a 0-d tensor is computed as the
    tensor's reciprocal times the number."""
    if isinstance(den, np.generic) and not isinstance(num, np.generic):
        return np.reciprocal(den) * num
    return num / den


def _cubic_min(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through ``(x1, f1)`` and ``(x2, f2)`` with slopes ``g1`` and ``g2``,
    clamped to ``bounds`` (default: between the two points); the bounds' midpoint when the cubic has
    no real minimiser."""
    if bounds is None:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    else:
        lo, hi = bounds
    d1 = g1 + g2 - _div(3 * (f1 - f2), x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc >= 0:
        d2 = np.sqrt(disc)
        if x1 <= x2:
            t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(t, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Find a step ``t`` along ``d`` meeting the strong Wolfe conditions (sufficient decrease with
    constant ``c1``, curvature with ``c2``): bracket an acceptable interval by extrapolation, then
    shrink it by cubic interpolation.

    ``evaluate(t)`` returns the loss and flat gradient at ``x + t d``. Returns ``(loss, grad, t,
    evaluations)``.
    """
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = g_new.dot(d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    # Phase 1: step forward until the interval [t_prev, t] must contain an acceptable point.
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        # extrapolate, at least 1 % further and at most ten times as far
        lower = t + 0.01 * (t - t_prev)
        upper = t * 10
        previous = t
        t = _cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(lower, upper))
        t_prev, f_prev, g_prev, gtd_prev = previous, f_new, g_new.copy(), gtd_new
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Phase 2 ("zoom"): shrink the bracket until a point meets both conditions.
    insufficient = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_min(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # A trial too close to an end of the bracket makes little progress: move it a tenth of the
        # bracket inside when that happens twice in a row or when it lands on (or past) an end.
        b_max, b_min = max(bracket), min(bracket)
        margin = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < margin:
            if insufficient or t >= b_max or t <= b_min:
                t = b_max - margin if abs(t - b_max) < abs(t - b_min) else b_min + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False

        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            # not a sufficient decrease, or not below the best point: the trial becomes the high end
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new.copy(), gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # the slope points past the low end: the old low becomes the high end
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new.copy(), gtd_new

    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGS(Optimizer):
    """L-BFGS, PyTorch's ``torch.optim.LBFGS``.

    Each ``step(closure)`` runs up to ``max_iter`` iterations, each moving along the direction
    ``d = -H g``, where ``H`` (the inverse-Hessian estimate) is built from the last ``history_size``
    pairs of parameter and gradient changes. Without a line search the step length is ``lr`` (and
    ``min(1, 1 / sum|g|) * lr`` on the very first iteration); with ``line_search_fn="strong_wolfe"`` it
    is searched for from there. The closure re-evaluates the model: it must zero the gradients, compute
    the loss, call ``backward()`` and return the loss. It runs with gradient recording on.

    Iterations stop early when the largest gradient element is at most ``tolerance_grad``, when the
    step or the loss change is below ``tolerance_change``, or after ``max_eval`` closure evaluations.

    Args:
        params: the parameters (one group only: per-group options are not supported).
        lr: learning rate (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: first-order optimality tolerance (default 1e-7).
        tolerance_change: tolerance on parameter and loss changes (default 1e-9).
        history_size: number of curvature pairs kept (default 100).
        line_search_fn: ``None`` (fixed step) or ``"strong_wolfe"``.

    Example::

        opt = somanet.optim.LBFGS(model.parameters(), lr=1, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)

    Memory: about ``history_size * 2 + 3`` copies of the parameters. The state (one entry, on the first
    parameter, as in PyTorch) holds ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``,
    ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss`` and ``al``.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        lr = as_scalar("LBFGS", "lr", lr)
        check_hyper("LBFGS", lr >= 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        check_hyper("LBFGS", line_search_fn in _LINE_SEARCHES, f"Invalid line_search_fn: {line_search_fn!r}",
                    "None or 'strong_wolfe'")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr, "max_iter": max_iter, "max_eval": max_eval, "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change, "history_size": history_size, "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups); pass the "
                             "parameters as one list")

    @property
    def _params(self):
        return self.param_groups[0]["params"]

    # ------------------------------------------------------------------ flat-vector helpers
    def _gather_flat_grad(self):
        parts = []
        for p in self._params:
            parr = p.array
            if p.grad is None:
                parts.append(array_module(parr).zeros(parr.size, dtype=parr.dtype))
            else:
                parts.append(p.grad.array.reshape(-1))
        return array_module(parts[0]).concatenate(parts)

    def _add_grad(self, step_size, update):
        """Parameters += step_size * update (``update`` flat)."""
        offset = 0
        for p in self._params:
            parr = p.array
            n = parr.size
            view = update[offset:offset + n].reshape(parr.shape)
            parr += (view * step_size).astype(parr.dtype, copy=False)
            _bump_version(p)
            offset += n

    def _clone_params(self):
        return [p.array.copy() for p in self._params]

    def _set_params(self, arrays):
        for p, a in zip(self._params, arrays):
            array_module(a).copyto(p.array, a)
            _bump_version(p)

    def _evaluate_at(self, closure, x, t, d):
        """Loss and flat gradient at ``x + t d``; the parameters are restored to ``x`` afterwards."""
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_params(x)
        return loss, flat_grad

    # ------------------------------------------------------------------ step
    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations; returns the loss of the first closure call.

        ``closure`` is required: it re-evaluates the model, backpropagates and returns the loss.
        """
        args, kwargs = (closure,), {}
        for hook in list(self._step_pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"LBFGS: a step pre-hook must return None or a tuple of new (args, kwargs), "
                                       f"but got {result!r}")
                args, kwargs = result
        closure = args[0] if args else kwargs.get("closure")
        if not callable(closure):
            raise TypeError("LBFGS.step() needs a closure that re-evaluates the model and returns the loss, got "
                            f"{type(closure).__name__}")
        self._opt_called = True
        loss = self._iterate(closure)
        for hook in list(self._step_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _iterate(self, user_closure):
        if len(self.param_groups) != 1:
            raise RuntimeError(f"LBFGS: expected exactly one param_group, but got {len(self.param_groups)}")

        def closure():
            with enable_grad():
                return user_closure()

        group = self.param_groups[0]
        lr = as_scalar("LBFGS", "lr", group["lr"])
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]
        if line_search_fn not in _LINE_SEARCHES:
            raise RuntimeError(f"LBFGS: only 'strong_wolfe' is supported as line_search_fn, got {line_search_fn!r}")

        # The algorithm's state is global; it lives on the first parameter, as in PyTorch.
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # ---- direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(_div(1.0, ys))
                    H_diag = ys / y.dot(y)

                # two-loop recursion: d = -H g with H from the stored pairs
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q += old_dirs[i] * -al[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += old_stps[i] * (al[i] - be_i)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                array_module(prev_flat_grad).copyto(prev_flat_grad, flat_grad)
            prev_loss = loss

            # ---- step length
            if state["n_iter"] == 1:
                t = min(1.0, _div(1.0, np.abs(flat_grad).sum())) * lr
            else:
                t = lr

            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break  # not a descent direction (any more)

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_params()
                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    lambda step: self._evaluate_at(closure, x_init, step, d), t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    # the last iteration's loss would not be used: skip that evaluation
                    loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # ---- stopping tests
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss
