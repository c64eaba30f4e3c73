"""Fused CUDA kernels for CuPy arrays: the Adam/AdamW update and GELU (exact and tanh) with its derivative.

On the CPU these chains have Numba loops (``somanet/kernels/optim.py``, ``kernels/activation.py``); on a GPU
the generic array code would launch one kernel per NumPy-style call (about twenty for an Adam step, each
a pass over the parameter-sized arrays). Here each is one CuPy ``ElementwiseKernel``: every element is read
and written once, with the same float operations in the same order as the reference update rule
(coefficients rounded to the parameter's dtype first, PyTorch's switch of lerp formula at ``|w| = 0.5``).

``install(cupy)`` registers them as the ``"cuda"`` kernel of ``adam`` and ``gelu`` in the kernel registry
(``somanet.kernels._select``) and wraps those ops' choosers so that they pick ``"cuda"`` for arrays of that
module, and nothing else; ``somanet.devices`` calls it when the CUDA device is first registered. The
kernels are compiled by CuPy on first use. LayerNorm, a reduction per row, is left to the generic code.

Status: the kernel sources are compiled with ``nvcc`` in the tests where it is installed, and compared with
the reference ops in ``tests/gpu/`` where a GPU is; no run on a GPU has been made yet (docs/gpu.md).
"""
import numpy as np

__all__ = ["install", "uninstall", "operation", "adam_update", "Gelu", "ADAM_OPERATION", "GELU_OPERATIONS"]

#: The body of the Adam/AdamW kernel (CUDA C++; ``T`` is the parameter's float type). ``decay_mode``: 0 none,
#: 1 L2 (``g + p * wd``), 2 decoupled (``p * wd`` with ``wd = 1 - lr * weight_decay``). The AMSGrad lines
#: (``max_sq``) are kept only in the amsgrad variant (see ``operation``).
ADAM_OPERATION = """
T g = maximize ? -grad : grad;
T p = param;
if (decay_mode == 2) {
    p = p * wd;
} else if (decay_mode == 1) {
    g = g + p * wd;
}
T d = g - exp_avg;
T m = small ? exp_avg + d * w1 : g - d * one_minus_w1;
exp_avg = m;
T v = exp_avg_sq * beta2 + (g * one_minus_beta2) * g;
exp_avg_sq = v;
T s = v;
T prev = max_sq;  // amsgrad
if (prev != prev || prev > v) {  // amsgrad
    s = prev;  // amsgrad
}  // amsgrad
max_sq = s;  // amsgrad
T den = sqrt(s) / bc2_sqrt + eps;
param = p + (m * neg_step) / den;
"""

_ADAM_IN = ("T grad, bool maximize, int32 decay_mode, T wd, T w1, T one_minus_w1, bool small, T beta2, "
            "T one_minus_beta2, T bc2_sqrt, T eps, T neg_step")

#: GELU bodies (CUDA C++): ``y`` the value and ``d`` its derivative (kept only in the derivative variant),
#: from ``x``.
GELU_OPERATIONS = {
    "none": """
const T inv_sqrt2 = 0.70710678118654752440;
const T inv_sqrt_2pi = 0.39894228040143267794;
T cdf = (T)0.5 * ((T)1 + erf(x * inv_sqrt2));
y = x * cdf;
d = cdf + x * inv_sqrt_2pi * exp((T)-0.5 * x * x);  // deriv
""",
    "tanh": """
const T c = 0.79788456080286535588;
const T k = 0.044715;
T x2 = x * x;
T t = tanh(c * (x + k * x2 * x));
y = (T)0.5 * x * ((T)1 + t);
d = (T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * c * ((T)1 + (T)3 * k * x2);  // deriv
""",
}

_kernels = {}     # (name, variant) -> compiled ElementwiseKernel


def operation(name, variant):
    """``(in_params, out_params, body)`` of a kernel: ``("adam", amsgrad)`` or ``("gelu", (approximate,
    with_derivative))``; the lines tagged for a variant are dropped from the others."""
    if name == "adam":
        tag, keep, body = "// amsgrad", variant, ADAM_OPERATION
        ins, outs = _ADAM_IN, "T param, T exp_avg, T exp_avg_sq" + (", T max_sq" if variant else "")
    else:
        approximate, keep = variant
        tag, body = "// deriv", GELU_OPERATIONS[approximate]
        ins, outs = "T x", "T y, T d" if keep else "T y"
    lines = [line for line in body.strip().splitlines() if keep or not line.endswith(tag)]
    return ins, outs, "\n".join(lines)
_installed = {}   # op -> the chooser it had before install()


def _kernel(cupy, name, variant):
    key = (name, variant)
    kernel = _kernels.get(key)
    if kernel is None:
        ins, outs, body = operation(name, variant)
        suffix = ("_amsgrad" if variant else "") if name == "adam" else f"_{variant[0]}" + ("_d" if variant[1] else "")
        kernel = cupy.ElementwiseKernel(ins, outs, body, f"somanet_{name}{suffix}")
        _kernels[key] = kernel
    return kernel


def _module_of(a):
    import cupy

    return cupy


def adam_update(group, param, grad, state, step):
    """One Adam/AdamW step of the CuPy array ``param`` (in place) and its ``exp_avg``/``exp_avg_sq`` (and
    ``max_exp_avg_sq`` with amsgrad) state, from ``grad``; ``step`` is the already incremented count. The
    same arithmetic as the reference rule in ``somanet/optim/adam.py``, in one kernel."""
    cupy = _module_of(param)
    t = param.dtype.type
    lr = float(group["lr"])
    beta1, beta2 = (float(b) for b in group["betas"])
    w1 = t(1.0 - beta1)
    weight_decay = float(group["weight_decay"])
    if weight_decay == 0:
        mode, wd = 0, t(0)
    elif group.get("decoupled_weight_decay", False):
        mode, wd = 2, t(1.0 - lr * weight_decay)
    else:
        mode, wd = 1, t(weight_decay)
    amsgrad = bool(group["amsgrad"])
    args = (grad, np.bool_(group["maximize"]), np.int32(mode), wd, w1, t(1) - w1, np.bool_(abs(float(w1)) < 0.5),
            t(beta2), t(1.0 - beta2), t((1.0 - beta2 ** step) ** 0.5), t(float(group["eps"])),
            t(-lr / (1.0 - beta1 ** step)), param, state["exp_avg"], state["exp_avg_sq"])
    if amsgrad:
        args += (state["max_exp_avg_sq"],)
    _kernel(cupy, "adam", amsgrad)(*args)


class Gelu:
    """The ``"cuda"`` kernel of ``gelu``: ``forward(x, approximate, need_deriv) -> (out, deriv or None)``."""

    @staticmethod
    def forward(x, approximate, need_deriv):
        cupy = _module_of(x)
        kernel = _kernel(cupy, "gelu", ("tanh" if approximate == "tanh" else "none", bool(need_deriv)))
        if need_deriv:
            out, deriv = kernel(x)
            return out, deriv
        return kernel(x), None


def _float_array_of(module, a):
    return type(a) is module.ndarray and a.dtype in (np.float32, np.float64)


#: op -> (the kernel, which argument of the chooser is the array that decides, extra check).
def _specs(module):
    def adam_fits(group, param, grad, state):
        arrays = [state.get("exp_avg"), state.get("exp_avg_sq")]
        if group["amsgrad"]:
            arrays.append(state.get("max_exp_avg_sq"))
        return (_float_array_of(module, param) and type(grad) is module.ndarray and grad.dtype == param.dtype
                and all(type(a) is module.ndarray and a.dtype == param.dtype and a.shape == param.shape
                        for a in arrays))

    def gelu_fits(x, *args):
        return _float_array_of(module, x)

    return {"adam": (adam_update, adam_fits), "gelu": (Gelu, gelu_fits)}


def install(module):
    """Register the kernels for the arrays of ``module`` (CuPy) and make the ``adam`` and ``gelu`` choosers
    pick them for those arrays; other arrays keep their choice. Calling it again does nothing."""
    from ..kernels import _select

    for op, (impl, fits) in _specs(module).items():
        if op in _installed:
            continue
        _select.kernel_names(op)  # imports the op's CPU kernels, which register its chooser
        base = _select._registry[op].chooser

        def chooser(*args, _base=base, _fits=fits):
            return "cuda" if _fits(*args) else _base(*args)

        chooser.__doc__ = f"{op}'s chooser, with ``\"cuda\"`` for the arrays of {getattr(module, '__name__', module)}."
        _installed[op] = base
        _select.register(op, "cuda", impl, chooser=chooser, supports=fits)


def uninstall():
    """Undo ``install``: the choosers as they were, the ``"cuda"`` kernels unregistered."""
    from ..kernels import _select

    for op, base in list(_installed.items()):
        entry = _select._registry[op]
        entry.chooser = base
        if "cuda" in entry.names:
            entry.names.remove("cuda")
        entry.impls.pop("cuda", None)
        entry.supports.pop("cuda", None)
        if _select._forced.get(op) == "cuda":
            del _select._forced[op]
        del _installed[op]
