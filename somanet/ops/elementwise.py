"""Elementwise ops: arithmetic with broadcasting, unary math and activations, comparisons."""
import functools
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..backend import array_module
from ._util import INF, LOG2_E, as_operand, exp2_, install, nonzero, one_element, select

__all__ = [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "pow", "neg", "negative", "abs",
    "exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt", "square", "sin", "cos", "tan", "tanh",
    "sigmoid", "relu", "relu6", "leaky_relu", "gelu", "silu", "elu", "selu", "softplus", "hardtanh", "clamp",
    "clip", "maximum", "minimum", "where", "sign", "reciprocal", "floor", "ceil", "round", "trunc",
    "floor_divide", "remainder", "fmod", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "logical_not", "logical_xor", "isnan", "isinf", "isfinite", "erf", "lerp", "nan_to_num",
]


# --------------------------------------------------------------------------- dtype promotion
def _binary_operands(a, b, op, floating=False):
    """Both operands of a binary op, converted to the dtype PyTorch's promotion gives them
    (``backend.result_type``); with ``floating`` an integer or bool result becomes the default float (true
    division). Python scalars stay Python scalars (NumPy treats them as weakly typed, as PyTorch does)
    unless an integer must wrap into a narrower dtype.

    Tensors of one dtype, and a floating tensor with a Python int or float, are returned at once: these
    are the calls of a training step.
    """
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.array.dtype is b.array.dtype and (not floating or a.array.dtype.kind == "f"):
                return a, b
        elif (b.__class__ is float or b.__class__ is int) and a.array.dtype.kind == "f":
            return a, b
    elif isinstance(b, Tensor) and (a.__class__ is float or a.__class__ is int) and b.array.dtype.kind == "f":
        return a, b
    a = as_operand(a)
    b = as_operand(b)
    ta = isinstance(a, Tensor)
    tb = isinstance(b, Tensor)
    xa = a.array if ta else a
    xb = b.array if tb else b
    dtype = backend.result_type(xa, xb)
    if floating and dtype.kind != "f":
        dtype = backend.default_float
    if op == "sub" and (_is_bool(xa) or _is_bool(xb)):
        raise RuntimeError("sub(): subtraction (the `-` operator) with a bool tensor or Python bool is not "
                           f"supported (got {_describe(xa)} and {_describe(xb)}); use `^` or logical_xor() "
                           "for bools, or `~` / logical_not() to invert a mask")
    if not ta and not tb:  # two scalars (``where(cond, 2, 5.0)``): the first becomes a 0-d tensor
        return Tensor(np.asarray(a, dtype)), _promoted(b, tb, dtype, op)
    return _promoted(a, ta, dtype, op), _promoted(b, tb, dtype, op)


_BOOL = np.dtype(np.bool_)


def _is_bool(x):
    return x.__class__ is bool or getattr(x, "dtype", None) == np.bool_


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"a tensor of dtype {x.dtype} and shape {x.shape}"
    return f"the Python {type(x).__name__} {x!r}"


def _promoted(x, is_tensor, dtype, op):
    """One operand in the result dtype: a tensor cast, a Python scalar left to NumPy (wrapped when an
    integer falls outside an integer dtype)."""
    if is_tensor:
        return x if x.array.dtype == dtype else _cast(x, dtype)
    if dtype.kind in "iu" and x.__class__ is int:
        value = backend.scalar_operand(x, dtype, op)
        # PyTorch wraps elsewhere but refuses here (an unsigned dtype takes negatives down to -max).
        if value is not x and op in ("where", "pow") and not (dtype.kind == "u" and 0 < -x <= np.iinfo(dtype).max):
            raise RuntimeError(f"{op}(): the value {x} cannot be converted to {dtype} without overflow")
        return value
    return x


def _cast(t, dtype):
    from .shape import to_dtype as _to

    return _to(t, dtype)


def _float_operand(x):
    """Integer tensors used in float math (exp, sqrt, true division) become float32, like PyTorch."""
    if isinstance(x, Tensor) and x.array.dtype.kind in "biu":
        return _cast(x, backend.default_float)
    return x


def _shape_error(op, a, b):
    sa = tuple(getattr(a, "shape", ()))
    sb = tuple(getattr(b, "shape", ()))
    return RuntimeError(f"{op}: shapes {sa} and {sb} cannot be broadcast together "
                        f"(trailing dimensions must be equal or 1)")


# --------------------------------------------------------------------------- binary arithmetic
class Add(Function):
    def forward(ctx, a, b):
        try:
            return a + b
        except ValueError:
            raise _shape_error("add", a, b) from None

    def backward(ctx, grad):
        return grad, grad

    def grad_graph(ctx, grad):
        return grad, grad


class Sub(Function):
    def forward(ctx, a, b):
        try:
            return a - b
        except ValueError:
            raise _shape_error("sub", a, b) from None
        except TypeError:  # NumPy refuses to subtract bools; so does PyTorch
            if _is_bool(a) or _is_bool(b):
                raise RuntimeError("sub(): subtraction (the `-` operator) with bool tensors is not supported; use "
                                   "`^` or logical_xor() instead") from None
            raise

    def backward(ctx, grad):
        return grad, -grad

    def grad_graph(ctx, grad):
        return grad, -grad


class Mul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a * b
        except ValueError:
            raise _shape_error("mul", a, b) from None

    def backward(ctx, grad):
        a, b = ctx.saved
        return grad * b, grad * a

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        a, b = ctx.graph_input(0, a), ctx.graph_input(1, b)
        return (grad * b if ctx.graph_needs(0) else None), (grad * a if ctx.graph_needs(1) else None)


class Div(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a / b
        except ValueError:
            raise _shape_error("div", a, b) from None

    def backward(ctx, grad):
        a, b = ctx.saved
        ga = grad / b
        return ga, (-ga * a / b) if not isinstance(b, (bool, int, float)) else None

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        a, b = ctx.graph_input(0, a), ctx.graph_input(1, b)
        ga = grad / b
        return ga, (-ga * a / b) if ctx.graph_needs(1) else None


class Pow(Function):
    def forward(ctx, a, b):
        try:
            out = a ** b
        except ValueError:
            raise _shape_error("pow", a, b) from None
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        xp = array_module(grad)
        ga = gb = None
        if not isinstance(a, (bool, int, float)):
            if isinstance(b, (int, float)):
                ga = grad * (b * a ** (b - 1)) if b != 0 else xp.zeros_like(grad * a)
            else:
                ga = grad * b * a ** (b - 1)
                ga = xp.where(b == 0, 0, ga).astype(ga.dtype, copy=False)
        if not isinstance(b, (bool, int, float)):
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = xp.log(a)
                gb = grad * out * logs
            gb = xp.where((xp.asarray(a) == 0) & (b >= 0), 0, gb).astype(gb.dtype, copy=False)
        return ga, gb

    def grad_graph(ctx, grad):
        a, b, out = ctx.saved
        ta, tb = ctx.graph_input(0, a), ctx.graph_input(1, b)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.graph_needs(0):
                if isinstance(b, (int, float)):
                    ga = grad * (b * ta ** (b - 1)) if b != 0 else grad * 0
                else:
                    ga = where(Tensor(b == 0), 0, grad * tb * ta ** (tb - 1))
            if ctx.graph_needs(1):
                gb = grad * ctx.graph_output(out) * log(ta)
                gb = where(Tensor((np.asarray(a) == 0) & (b >= 0)), 0, gb)
        return ga, gb


class Maximum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return array_module(a, b).maximum(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved
        # Ties share the gradient equally, as in PyTorch.
        wa = (a > b) + 0.5 * (a == b)
        return grad * wa.astype(grad.dtype), grad * (1 - wa).astype(grad.dtype)

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        wa = ((a > b) + 0.5 * (a == b)).astype(grad.dtype)
        return grad * Tensor(wa), grad * Tensor(1 - wa)


class Minimum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return array_module(a, b).minimum(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved
        wa = (a < b) + 0.5 * (a == b)
        return grad * wa.astype(grad.dtype), grad * (1 - wa).astype(grad.dtype)

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        wa = ((a < b) + 0.5 * (a == b)).astype(grad.dtype)
        return grad * Tensor(wa), grad * Tensor(1 - wa)


class Where(Function):
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return select(cond, a, b)

    def backward(ctx, grad):
        (cond,) = ctx.saved
        return None, select(cond, grad, 0), select(cond, grad.dtype.type(0), grad)

    def grad_graph(ctx, grad):
        (cond,) = ctx.saved
        cond = Tensor(cond)
        return None, where(cond, grad, 0), where(cond, 0, grad)


class Lerp(Function):
    def forward(ctx, a, b, w):
        ctx.save_for_backward(a, b, w)
        return a + w * (b - a)

    def backward(ctx, grad):
        a, b, w = ctx.saved
        gw = grad * (b - a) if not isinstance(w, (bool, int, float)) else None
        return grad * (1 - w), grad * w, gw

    def grad_graph(ctx, grad):
        a, b, w = ctx.saved
        a, b, w = ctx.graph_input(0, a), ctx.graph_input(1, b), ctx.graph_input(2, w)
        gw = grad * (b - a) if ctx.graph_needs(2) else None
        return grad * (1 - w), grad * w, gw


def _scaled(a, b, alpha, op):
    """``alpha * b`` for add/sub: an integer result refuses a float ``alpha``, as in PyTorch."""
    dtype = a.array.dtype if isinstance(a, Tensor) else b.array.dtype
    if dtype.kind != "f" and isinstance(alpha, float):
        raise RuntimeError(f"{op}(): alpha must not be a floating point number for integral inputs (dtype {dtype}), "
                           f"got alpha={alpha}")
    if not isinstance(b, Tensor):
        return backend.scalar_operand(b * alpha, dtype, op) if isinstance(b, (bool, int, float)) else b * alpha
    return mul(b, alpha)


def add(input, other, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    a, b = _binary_operands(input, other, "add")
    if alpha != 1:
        b = _scaled(a, b, alpha, "add")
    return Add.apply(a, b)


def sub(input, other, alpha=1):
    a, b = _binary_operands(input, other, "sub")
    if alpha != 1:
        b = _scaled(a, b, alpha, "sub")
    return Sub.apply(a, b)


def mul(input, other):
    a, b = _binary_operands(input, other, "mul")
    return Mul.apply(a, b)


def div(input, other, rounding_mode=None):
    """True division (integers become float32); ``rounding_mode`` 'floor' or 'trunc' rounds the quotient
    (integers stay integers and raise on a zero divisor, as in PyTorch) and gives no gradient."""
    if rounding_mode is None:
        a, b = _binary_operands(input, other, "div", floating=True)
        return Div.apply(a, b)
    if rounding_mode == "floor":
        a, b = _binary_operands(input, other, "div")
        return FloorDivide.apply(a, b, op="div")
    if rounding_mode == "trunc":
        a, b = _binary_operands(input, other, "div")
        if _operand_dtype(a, b).kind == "f":
            return trunc(Div.apply(a, b))
        return TruncDivide.apply(a, b)
    raise ValueError(f"div(): rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


def _operand_dtype(a, b):
    """The dtype of promoted operands (at least one is a tensor or array)."""
    x = b if hasattr(b, "dtype") else a
    return x.dtype


def pow(input, exponent):
    a, b = _binary_operands(input, exponent, "pow")
    kind = _operand_dtype(a, b).kind
    if kind in "biu":
        if kind == "b":
            raise NotImplementedError(f"pow(): not implemented for bool tensors (got {_describe(_raw(a))} and "
                                      f"{_describe(_raw(b))}); convert them to an integer or float dtype first")
        if isinstance(b, int) and b < 0:
            raise RuntimeError(f"pow(): integers to negative integer powers are not allowed (got the exponent {b} "
                               f"for a base of dtype {_operand_dtype(a, b)}); use a float base")
        return IntPow.apply(a, b)
    return Pow.apply(a, b)


def _raw(x):
    return x.array if isinstance(x, Tensor) else x


def maximum(input, other):
    a, b = _binary_operands(input, other, "maximum")
    return Maximum.apply(a, b)


def minimum(input, other):
    a, b = _binary_operands(input, other, "minimum")
    return Minimum.apply(a, b)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; with one argument, the nonzero indices."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    cond = condition.array if isinstance(condition, Tensor) else array_module(condition).asarray(condition)
    if cond.dtype != np.bool_:
        cond = cond.astype(bool)
    a, b = _binary_operands(input, other, "where")
    return Where.apply(cond, a, b)


def lerp(input, end, weight):
    """``input + weight * (end - input)``. As in PyTorch, ``input`` and ``end`` must be floating tensors of
    one dtype; a Python or 0-d ``weight`` is used in that dtype, a ``weight`` with dimensions must match it."""
    a = as_operand(input)
    b = as_operand(end)
    w = as_operand(weight)
    dtype = a.array.dtype if isinstance(a, Tensor) else None
    if dtype is None or dtype.kind != "f":
        raise NotImplementedError(f"lerp(): expected a floating point input tensor, got {_describe(_raw(a))}")
    for name, x in (("end", b), ("weight", w)):
        if isinstance(x, Tensor) and x.array.dtype != dtype:
            if name == "weight" and x.array.ndim == 0:
                w = _cast(x, dtype)
            else:
                raise RuntimeError(f"lerp(): expected {name} of dtype {dtype} (the input's), got "
                                   f"{_describe(x.array)}")
    return Lerp.apply(a, b, w)


def subtract(input, other, alpha=1):
    return sub(input, other, alpha)


def multiply(input, other):
    return mul(input, other)


def divide(input, other, rounding_mode=None):
    return div(input, other, rounding_mode)


true_divide = divide


# --------------------------------------------------------------------------- results without gradient
class _NoGrad(Function):
    differentiable = False


class _ZeroGrad(Function):
    """Piecewise-constant ops (floor, sign, round, floor_divide): their outputs stay in the graph, as in
    PyTorch, with a zero gradient for every input."""

    def backward(ctx, grad):
        xp = array_module(grad)
        zeros = xp.zeros_like(grad)
        return (zeros,) * len(ctx.edges) if len(ctx.edges) > 1 else zeros

    def grad_graph(ctx, grad):
        zeros = grad * 0
        return (zeros,) * len(ctx.edges) if len(ctx.edges) > 1 else zeros


class _RemainderGrad(Function):
    """``a - b * q`` with a piecewise-constant quotient ``q``: gradient ``grad`` for ``a``, ``-grad * q`` for ``b``."""

    quotient = "floor"

    def backward(ctx, grad):
        a, b = ctx.saved
        xp = array_module(grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = getattr(xp, ctx.quotient)(xp.true_divide(a, b))
        return grad, -grad * q

    def grad_graph(ctx, grad):
        a, b = ctx.saved
        xp = array_module(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = getattr(xp, ctx.quotient)(xp.true_divide(a, b))
        return grad, -grad * q


class IntegerDivisionByZero(ZeroDivisionError, RuntimeError):
    """Integer division or remainder by zero. PyTorch raises a RuntimeError here; this is also Python's
    ZeroDivisionError, so either ``except`` catches it."""


def _rounded_division(op, func, a, b):
    """``func`` (a NumPy function name: floor_divide, remainder, fmod) of promoted operands. Floats give
    inf or NaN at a zero divisor; integers raise, and bools are refused, as in PyTorch."""
    xp = array_module(a, b)
    fn = getattr(xp, func)
    dtype = _operand_dtype(a, b)
    if dtype.kind == "f":
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(a, b)
    if dtype.kind == "b":
        raise NotImplementedError(f"{op}(): not implemented for bool tensors (got {_describe(a)} and {_describe(b)}); "
                                  f"convert them to an integer dtype first")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fn(a, b)
    if getattr(out, "size", 1) and not xp.all(b):
        raise IntegerDivisionByZero(f"{op}(): integer division by zero (the divisor of dtype {dtype} has a zero); "
                                    f"use a float dtype to get inf/nan instead")
    return out


class FloorDivide(_NoGrad):  # PyTorch defines no derivative for floor_divide
    def forward(ctx, a, b, op="floor_divide"):
        return _rounded_division(op, "floor_divide", a, b)


class Remainder(_RemainderGrad):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _rounded_division("remainder", "remainder", a, b)


class Fmod(_RemainderGrad):
    quotient = "trunc"

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _rounded_division("fmod", "fmod", a, b)


class IntPow(_NoGrad):
    """Integer powers. A negative exponent in a tensor gives PyTorch's integer results (1 for a base of 1,
    +-1 for -1, else 0) where NumPy would raise."""

    def forward(ctx, a, b):
        xp = array_module(a, b)
        negative = xp.less(b, 0)
        if not xp.any(negative):
            return xp.power(a, b)
        out = xp.power(a, xp.where(negative, 0, b).astype(xp.result_type(b), copy=False))
        odd = xp.remainder(b, 2) != 0
        at_negative = xp.where(xp.equal(a, 1), 1, xp.where(xp.equal(a, -1), xp.where(odd, -1, 1), 0))
        return xp.where(negative, at_negative, out).astype(out.dtype, copy=False)


class TruncDivide(_NoGrad):
    """Integer division rounding towards zero: ``(a - fmod(a, b)) // b``, exact in integers."""

    def forward(ctx, a, b):
        rem = _rounded_division("div", "fmod", a, b)
        return array_module(a, b).floor_divide(a - rem, b)


def floor_divide(input, other):
    a, b = _binary_operands(input, other, "floor_divide")
    return FloorDivide.apply(a, b)


def remainder(input, other):
    a, b = _binary_operands(input, other, "remainder")
    return Remainder.apply(a, b)


def fmod(input, other):
    a, b = _binary_operands(input, other, "fmod")
    return Fmod.apply(a, b)


def _compare(func, name):
    """A comparison op calling the array function named ``func`` (a name, not NumPy's function, so that the
    operands' own array library does the work)."""

    class Compare(_NoGrad):
        def forward(ctx, a, b):
            try:
                return getattr(array_module(a, b), func)(a, b)
            except ValueError:
                raise _shape_error(name, a, b) from None

    Compare.__name__ = Compare.__qualname__ = name.capitalize()

    def op(input, other):
        a, b = _binary_operands(input, other, name)
        return Compare.apply(a, b)

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}``: a bool tensor, no gradient."
    return op


eq = _compare("equal", "eq")
ne = _compare("not_equal", "ne")
lt = _compare("less", "lt")
le = _compare("less_equal", "le")
gt = _compare("greater", "gt")
ge = _compare("greater_equal", "ge")
logical_and = _compare("logical_and", "logical_and")
logical_or = _compare("logical_or", "logical_or")
logical_xor = _compare("logical_xor", "logical_xor")


def _unary_nograd(func, name, rounding=False, zero_grad=False):
    """A gradient-free unary op calling the array function named ``func`` in the input's array library.

    ``rounding`` (floor, ceil, trunc): integers are returned unchanged in their dtype and bools refused,
    as in PyTorch (NumPy would return float64). ``sign`` of a bool is the bool itself, of NaN 0.
    """

    class Op(_ZeroGrad if zero_grad else _NoGrad):
        def forward(ctx, a):
            if rounding and a.dtype.kind in "biu":
                if a.dtype.kind == "b":
                    raise NotImplementedError(f"{name}(): not implemented for bool tensors (as in PyTorch)")
                return a.copy()
            xp = array_module(a)
            try:
                out = getattr(xp, func)(a)
            except TypeError:  # NumPy's sign has no bool loop
                if func != "sign" or a.dtype.kind != "b":
                    raise
                return a.copy()
            if func == "sign" and a.dtype.kind == "f":
                out = xp.nan_to_num(out, copy=out.ndim == 0)  # PyTorch's sign of NaN is 0
            return out

    Op.__name__ = Op.__qualname__ = name.capitalize()

    def op(input):
        return Op.apply(as_operand(input) if not isinstance(input, Tensor) else input)

    op.__name__ = name
    return op


logical_not = _unary_nograd("logical_not", "logical_not")
isnan = _unary_nograd("isnan", "isnan")
isinf = _unary_nograd("isinf", "isinf")
isfinite = _unary_nograd("isfinite", "isfinite")
sign = _unary_nograd("sign", "sign", zero_grad=True)
floor = _unary_nograd("floor", "floor", rounding=True, zero_grad=True)
ceil = _unary_nograd("ceil", "ceil", rounding=True, zero_grad=True)
trunc = _unary_nograd("trunc", "trunc", rounding=True, zero_grad=True)


class Round(_ZeroGrad):
    def forward(ctx, a, decimals=0):
        if a.dtype is _BOOL:
            raise NotImplementedError("round(): not implemented for bool tensors (as in PyTorch)")
        return array_module(a).round(a, decimals)


def round(input, decimals=0):  # noqa: A001
    return Round.apply(input, decimals=decimals)


# --------------------------------------------------------------------------- unary math
class Neg(Function):
    def forward(ctx, a):
        try:
            return -a
        except TypeError:  # NumPy refuses to negate bools; so does PyTorch
            if a.dtype != np.bool_:
                raise
            raise RuntimeError("neg(): negation (the `-` operator) of a bool tensor is not supported; use `~` or "
                               "logical_not() to invert a mask") from None

    def backward(ctx, grad):
        return -grad

    def grad_graph(ctx, grad):
        return -grad


class Abs(Function):
    def forward(ctx, a):
        if a.dtype is _BOOL:
            raise NotImplementedError("abs(): not implemented for bool tensors (as in PyTorch)")
        ctx.save_for_backward(a)
        return array_module(a).abs(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        xp = array_module(a)
        s = xp.sign(a)
        if a.dtype.kind == "f":
            s = xp.nan_to_num(s, copy=s.ndim == 0)  # PyTorch's sign-of-NaN here is 0 (NaN gradients stay NaN)
        return grad * s

    def grad_graph(ctx, grad):
        # sign is a graph op with a zero derivative (and 0 at NaN), so the second derivative is 0 everywhere,
        # as in PyTorch, and the gradient stays in the graph even when only ``a`` requires grad.
        (a,) = ctx.saved
        return grad * sign(ctx.graph_input(0, a))


class Exp(Function):
    def forward(ctx, a):
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        return grad * ctx.graph_output(out)


class Expm1(Function):
    def forward(ctx, a):
        out = array_module(a).expm1(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (out + 1)

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        return grad * (ctx.graph_output(out) + 1)


class Log(Function):
    """Natural, base-2 and base-10 logarithms: d/da log_b(a) = 1 / (a ln b)."""

    _functions = {None: "log", 2: "log2", 10: "log10"}

    def forward(ctx, a, base=None):
        ufunc = getattr(array_module(a), ctx._functions[base])
        ctx.save_for_backward(a)
        ctx.base = base
        with np.errstate(divide="ignore", invalid="ignore"):
            return ufunc(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        if ctx.base is None:
            return grad / a
        return grad / (a * a.dtype.type(math.log(ctx.base)))

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        ta = ctx.graph_input(0, a)
        if ctx.base is None:
            return grad / ta
        return grad / (ta * math.log(ctx.base))


class Log1p(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return array_module(a).log1p(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad / (1 + a)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad / (ctx.graph_input(0, a) + 1)


class Sqrt(Function):
    def forward(ctx, a):
        xp = array_module(a)
        with np.errstate(invalid="ignore"):
            out = xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        with np.errstate(divide="ignore"):
            return grad / (2 * out)

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        with np.errstate(divide="ignore"):
            return grad / (ctx.graph_output(out) * 2)


class Rsqrt(Function):
    def forward(ctx, a):
        xp = array_module(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1 / xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (-0.5 * out * out * out)

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        out = ctx.graph_output(out)
        return grad * (out * out * out * -0.5)


class Reciprocal(Function):
    def forward(ctx, a):
        with np.errstate(divide="ignore"):
            out = 1 / a
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return -grad * out * out

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        out = ctx.graph_output(out)
        return -grad * out * out


class Square(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        if a.dtype is _BOOL:  # PyTorch's square is pow(a, 2): bools become int64
            a = a.astype(np.int64)
        return a * a

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * (2 * a)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad * (ctx.graph_input(0, a) * 2)


class Sin(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).sin(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * array_module(a).cos(a)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad * cos(ctx.graph_input(0, a))


class Cos(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).cos(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return -grad * array_module(a).sin(a)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return -grad * sin(ctx.graph_input(0, a))


class Tan(Function):
    def forward(ctx, a):
        out = array_module(a).tan(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 + out * out)

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        out = ctx.graph_output(out)
        return grad * (out * out + 1)


class Tanh(Function):
    def forward(ctx, a):
        out = array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 - out * out)

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        out = ctx.graph_output(out)
        return grad * (1 - out * out)


def _sigmoid(x):
    """``1 / (1 + exp(-x))`` in four passes with no branch: ``exp(-x)`` overflows to inf below about -88 in
    float32, which gives the exact limit 0. (``exp2`` of ``-x log2(e)`` would save a third of the time but
    costs the rounding of that product: 1e-6 relative error at |x| = 16 where this has PyTorch's 1e-7.)"""
    xp = array_module(x)
    e = xp.negative(x)
    with np.errstate(over="ignore"):
        xp.exp(e, out=e)
    e += 1
    return xp.divide(1, e, out=e)


class Sigmoid(Function):
    def forward(ctx, a):
        out = _sigmoid(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        g = array_module(out).subtract(1, out)
        g *= out
        g *= grad
        return g

    def grad_graph(ctx, grad):
        (out,) = ctx.saved
        out = ctx.graph_output(out)
        return grad * (out * (1 - out))


def positive_part(a):
    """``max(a, 0)`` as a fresh array. Floats take ``clip(a, 0, inf)``, NumPy's vectorised loop (``maximum``
    against the scalar 0 is not); like PyTorch's relu it keeps
    NaN, and -0.0 as -0.0."""
    xp = array_module(a)
    if a.dtype.kind != "f":
        if a.dtype.kind == "b":
            raise RuntimeError("relu(): bool inputs are not supported (as in PyTorch); convert the mask with "
                               ".float() or .long() first")
        return xp.maximum(a, 0)
    return xp.clip(a, 0, INF)


class Relu(Function):
    def forward(ctx, a):
        out = positive_part(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved
        # Zero where out <= 0 (not "pass where out > 0"), so that a NaN input passes its gradient on, as in
        # PyTorch.
        xp = array_module(out)
        keep = xp.less_equal(out, 0)
        xp.logical_not(keep, out=keep)
        return grad * keep

    def grad_graph(ctx, grad):
        # The slope is piecewise constant: the mask carries no gradient.
        (out,) = ctx.saved
        return grad * Tensor(~(out <= 0))


def _leaky(a, slope):
    """``a`` where positive, ``slope * a`` elsewhere (``slope`` a scalar or an array that broadcasts
    against ``a``), without a branch per element. Slopes in (0, 1] make it ``max(a, slope * a)``, slopes of
    1 and more ``min(a, slope * a)``; 0 and negative slopes take ``select``."""
    xp = array_module(a)
    if getattr(slope, "ndim", 0):
        lo, hi = float(slope.min()), float(slope.max())
    else:
        lo = hi = float(slope)
    scaled = xp.multiply(a, slope)
    if 0 < lo and hi <= 1:
        return xp.maximum(a, scaled, out=scaled)
    if 1 <= lo:
        return xp.minimum(a, scaled, out=scaled)
    return select(a > 0, a, scaled)


def one_where_positive(a, factor):
    """1 where ``a > 0``, else ``factor`` (a finite scalar or array broadcasting against ``a``): the
    derivative of the piecewise activations. Formed as ``factor * (1 - m) + m`` from the 0/1 mask ``m``,
    which is exact since one of the two terms is always 0, and needs no branch per element."""
    xp = array_module(a)
    m = (a > 0).astype(a.dtype)
    if getattr(factor, "ndim", 0) == 0 and 0 <= factor <= 1:
        return xp.clip(m, factor, INF, out=m)  # {0, 1} -> {factor, 1} in one pass
    f = xp.subtract(1, m)
    f *= factor
    f += m
    return f


class LeakyRelu(Function):
    def forward(ctx, a, negative_slope=0.01):
        ctx.save_for_backward(a)
        ctx.slope = a.dtype.type(negative_slope)
        return _leaky(a, ctx.slope)

    def backward(ctx, grad):
        (a,) = ctx.saved
        f = one_where_positive(a, ctx.slope)
        f *= grad
        return f

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad * Tensor(one_where_positive(a, ctx.slope))


class Hardtanh(Function):
    def forward(ctx, a, min_val=-1.0, max_val=1.0):
        ctx.save_for_backward(a)
        ctx.bounds = (min_val, max_val)
        return array_module(a).clip(a, min_val, max_val).astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        return grad * ((a > lo) & (a < hi))

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        return grad * Tensor((a > lo) & (a < hi))


class Clamp(Function):
    def forward(ctx, a, min=None, max=None):
        ctx.save_for_backward(a)
        xp = array_module(a)
        ctx.bounds = (min, max)
        if a.dtype.kind == "f":
            # One vectorised pass; an open side is an infinite bound (``maximum`` against a scalar is 3x
            # slower). A minimum above the maximum gives the maximum, as in PyTorch.
            return xp.clip(a, -INF if min is None else min, INF if max is None else max).astype(a.dtype, copy=False)
        out = a
        if min is not None:
            out = xp.maximum(out, min)
        if max is not None:
            out = xp.minimum(out, max)
        if out is a:
            out = a.copy()
        return out.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        mask = array_module(a).ones(a.shape, dtype=bool)
        if lo is not None:
            mask &= a >= lo
        if hi is not None:
            mask &= a <= hi
        return grad * mask

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        mask = array_module(a).ones(a.shape, dtype=bool)
        if lo is not None:
            mask &= a >= lo
        if hi is not None:
            mask &= a <= hi
        return grad * Tensor(mask)


# --------------------------------------------------------------------------- erf
# ``erf`` runs SciPy's ``special.erf`` when SciPy is installed (imported on the first call, not with
# somanet, to keep ``import somanet`` fast). Without SciPy, float64 takes the NumPy evaluation below, accurate
# to a few units in the last place; float32 keeps a fast formula accurate to about 1.2e-7.
_special = None


def _scipy_special():
    """``scipy.special``, or False when SciPy is not installed (looked up once)."""
    global _special
    if _special is None:
        try:
            from scipy import special
        except ImportError:
            special = False
        _special = special
    return _special


def erf_array(x):
    """erf(x) for a float ndarray, in its dtype: SciPy's when SciPy is installed, else ``erf_float64``
    for float64 and ``erf_float32`` for float32 (float16 is computed in float32 and rounded once)."""
    xp = array_module(x)
    half = x.dtype == np.float16
    if half:
        x = x.astype(np.float32)
    special = _scipy_special() if xp is np else False
    if special:
        out = special.erf(x)
    elif x.dtype == np.float32:
        out = erf_float32(x)
    else:
        out = erf_float64(x)
    return out.astype(np.float16) if half else out


# Coefficients of the Chebyshev-fitted erfc formula used by erf_float32, highest order first.
_ERFC_COEFFS = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418,
                0.37409196, 1.00002368, -1.26551223)


def erf_float32(x):
    """erf(x) for a float32 ndarray, accurate to about 1.2e-7 relative (a Chebyshev-fitted erfc formula).

    Evaluated in place on two buffers: full-size temporaries cost more than the arithmetic here.
    """
    xp = array_module(x)
    z = xp.abs(x)
    t = z * 0.5
    t += 1
    xp.divide(1, t, out=t)
    poly = t * _ERFC_COEFFS[0]
    for c in _ERFC_COEFFS[1:-1]:
        poly += c
        poly *= t
    poly += _ERFC_COEFFS[-1]
    z *= z
    poly -= z
    xp.exp(poly, out=poly)
    poly *= t  # erfc(|x|)
    # erf(x) = sign(x) * (1 - erfc(|x|))
    xp.subtract(1, poly, out=poly)
    xp.copysign(poly, x, out=poly)
    return poly


# float64 erf in NumPy, in three ranges of z = |x| (the sign is copied back at the end):
# * z < 1/2: erf(z) = z P(z^2) with P the Maclaurin series of erf(z) / z, (2 / sqrt(pi)) sum (-z^2)^n /
#   (n! (2n + 1)), cut where its terms fall below 1e-17. Exact at 0 and relatively accurate for tiny z.
# * 1/2 <= z < 6: a Taylor polynomial about the centre c of the z's interval of width 1/32 (|h| = |z - c|
#   <= 1/64). Its coefficients follow from erf'(z) = (2 / sqrt(pi)) exp(-z^2) and the Hermite polynomials:
#   erf^(n)(c) = (2 / sqrt(pi)) (-1)^(n-1) H_(n-1)(c) exp(-c^2), H_(m+1) = 2c H_m - 2m H_(m-1); the
#   constant term is math.erf(c). Relative to the Gaussian factor the terms shrink like (2 c h)^n / n!, so
#   degree 12 is below 1e-19 up to c = 6. The table (coefficient-major, so that each Horner step gathers
#   from one contiguous row) is built on the first call. Against mpmath: at most 1 unit in the last
#   place, as PyTorch's.
# Each range is computed on its own elements only (boolean masks), NaN is passed through at the end.
# * z >= 6 (and inf): 1, which erf rounds to in float64 from about 5.92 on.
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_ERF_SERIES = tuple(_TWO_OVER_SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(13))
_ERF_SMALL, _ERF_ONE, _ERF_STEP, _ERF_DEGREE = 0.5, 6.0, 0.03125, 12


@functools.lru_cache(maxsize=None)
def _erf_taylor_table():
    """``(centres, coeffs)``: the interval centres on [1/2, 6) and ``coeffs[n, k]``, the n-th Taylor
    coefficient of erf about centre k."""
    count = int((_ERF_ONE - _ERF_SMALL) / _ERF_STEP + 0.5)  # (the builtin round is shadowed here)
    centres = _ERF_SMALL + _ERF_STEP * (np.arange(count) + 0.5)
    coeffs = np.empty((_ERF_DEGREE + 1, count))
    for k, c in enumerate(centres.tolist()):
        gauss = _TWO_OVER_SQRT_PI * math.exp(-c * c)
        coeffs[0, k] = math.erf(c)
        h_prev, h = 0.0, 1.0  # H_(n-2)(c), H_(n-1)(c)
        for n in range(1, _ERF_DEGREE + 1):
            coeffs[n, k] = (-1) ** (n - 1) * h * gauss / math.factorial(n)
            h_prev, h = h, 2 * c * h - 2 * (n - 1) * h_prev
    return centres, coeffs


def erf_float64(x):
    """erf(x) for a float64 ndarray with NumPy alone, within a few units in the last place (see above)."""
    xp = array_module(x)
    z = xp.abs(x)
    out = xp.ones_like(z)  # z >= 6 and inf
    small = z < _ERF_SMALL
    if small.any():
        zs = z[small]
        t = zs * zs
        p = t * _ERF_SERIES[-1]
        for c in _ERF_SERIES[-2:0:-1]:
            p += c
            p *= t
        p += _ERF_SERIES[0]
        p *= zs
        out[small] = p
    mid = z < _ERF_ONE
    mid ^= small
    if mid.any():
        centres, coeffs = _erf_taylor_table()
        if xp is not np:  # the tables are indexed by device arrays: copy them to the device
            centres, coeffs = xp.asarray(centres), xp.asarray(coeffs)
        zm = z[mid]
        idx = ((zm - _ERF_SMALL) * (1 / _ERF_STEP)).astype(np.intp)
        h = zm - centres[idx]
        p = coeffs[_ERF_DEGREE][idx]
        for n in range(_ERF_DEGREE - 1, -1, -1):
            p *= h
            p += coeffs[n][idx]
        out[mid] = p
    nan = xp.isnan(z)
    if nan.any():
        out[nan] = np.nan
    return xp.copysign(out, x, out=out)


# Abramowitz & Stegun 7.1.26: erfc(z) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2) + e, with
# t = 1 / (1 + p z), |e| <= 1.5e-7 for z >= 0. Used at float32 precision only.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


# NumPy's float32 exp2 is faster than its exp, and dividing into a scalar faster than ``reciprocal``; both
# are used below.
# The polynomial in t = 1 / (1 + p z / sqrt(2)) is rewritten in u = 1 / (r + z), r = sqrt(2) / p (t = r u),
# which saves the pass that scales z: the coefficients become 0.5 * a_k * r^k (0.5 turns erfc into Phi).
_AS_R = math.sqrt(2) / _AS_P
_AS_B = tuple(0.5 * a * _AS_R ** (k + 1) for k, a in enumerate(_AS_A))


def _normal_cdf_f32(x):
    """``(Phi(x), exp(-x^2 / 2))`` for a float32 array, Phi accurate to about 3e-7.

    GELU's erf with 1/sqrt(2) folded into the constants, in place on two buffers (fewer passes than the
    same formula through exp, reciprocal and a pass scaling |x|). The Gaussian factor comes out too, for
    backward to reuse.
    """
    xp = array_module(x)
    u = xp.abs(x)
    u += x.dtype.type(_AS_R)
    xp.divide(1, u, out=u)
    q = u * _AS_B[4]
    for b in _AS_B[3::-1]:
        q += b
        q *= u
    gauss = xp.multiply(x, x, out=u)
    gauss *= -0.5 * LOG2_E
    exp2_(gauss)
    q *= gauss  # 0.5 * erfc(|x| / sqrt(2)) = Phi(-|x|)
    # Phi(x) = 0.5 + sign(x) * (0.5 - Phi(-|x|)). 0.5 - Phi(-|x|) >= 0, so giving it x's sign is an XOR of
    # the sign bits, which runs twice as fast as NumPy's copysign.
    xp.subtract(0.5, q, out=q)
    q.view(xp.uint32)[...] ^= x.view(xp.uint32) & xp.uint32(0x80000000)
    q += 0.5
    return q, gauss


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_GELU_K = 0.044715


class Gelu(Function):
    """GELU, exact (``x * Phi(x)``) or with the tanh formula. Both directions use in-place buffers: GELU
    runs on the widest activations of a Transformer, so each avoided temporary is a full pass saved.
    float16 is computed in float32 and rounded once (as PyTorch does), since the erf polynomial evaluated
    in half precision was off by up to 8 %."""

    def forward(ctx, a, approximate="none"):
        ctx.approximate = approximate
        ctx.half = a.dtype == np.float16
        fast = _activation_kernel("gelu", a)
        if fast is not None:
            out, deriv = fast.forward(a, approximate, is_grad_enabled())
            if deriv is not None:
                ctx.save_for_backward(deriv, a)
            return out
        out = _gelu_values(ctx, a.astype(np.float32)).astype(np.float16) if ctx.half else _gelu_values(ctx, a)
        if ctx.saved:
            # The input as well: create_graph's second derivative needs it, the saved derivative alone not.
            ctx.saved = (ctx.saved[0], a)
        return out

    def backward(ctx, grad):
        if ctx.half:
            return _gelu_grad(ctx, grad.astype(np.float32)).astype(np.float16)
        return _gelu_grad(ctx, grad)

    def grad_graph(ctx, grad):
        from .shape import to_dtype

        a = ctx.graph_input(0, ctx.saved[1])
        if ctx.half:
            a = to_dtype(a, np.float32)
        if ctx.approximate == "tanh":
            # With y = c (a + k a^3) and t = tanh(y): d/da = (1 + t) / 2 + a (1 - t^2) c (1 + 3 k a^2) / 2.
            a2 = a * a
            t = tanh(a * (_SQRT_2_OVER_PI + _SQRT_2_OVER_PI * _GELU_K * a2))
            deriv = 0.5 + 0.5 * t + (0.5 * _SQRT_2_OVER_PI) * a * (1 - t * t) * (1 + 3 * _GELU_K * a2)
        else:
            # Phi(a) + a phi(a).
            deriv = 0.5 + 0.5 * erf(a * _INV_SQRT_2) + _INV_SQRT_2PI * a * exp(-0.5 * (a * a))
        if ctx.half:
            deriv = to_dtype(deriv, np.float16)
        return grad * deriv


def _gelu_values(ctx, a):
    """GELU of a float32 or float64 ``a``, saving what ``_gelu_grad`` needs on ``ctx``."""
    xp = array_module(a)
    if ctx.approximate == "tanh":
        # 0.5 (1 + tanh(y)) is sigmoid(2 y), so GELU = a / (1 + 2^(-2 log2(e) y)) with y = c (a + k a^3),
        # formed as a (c + c k a^2) with every constant times -2 log2(e): exp2 and one division are
        # cheaper than tanh.
        e = a * a
        e *= -2 * LOG2_E * _SQRT_2_OVER_PI * _GELU_K
        e += -2 * LOG2_E * _SQRT_2_OVER_PI
        e *= a
        with np.errstate(over="ignore"):  # 2^big = inf gives the exact limit, a / inf = 0
            exp2_(e)
        e += 1
        if not is_grad_enabled():
            return xp.divide(a, e, out=e)
        s = xp.divide(1, e, out=e)  # sigmoid(2 y)
        # With s = sigmoid(2 y) = 0.5 (1 + tanh(y)): d/da = s + 2 s (1 - s) c a (1 + 3 k a^2), saved alone
        # (see the exact branch below).
        d = a * a
        d *= 6 * _GELU_K * _SQRT_2_OVER_PI
        d += 2 * _SQRT_2_OVER_PI
        d *= a
        w = xp.subtract(1, s)
        w *= s
        d *= w
        d += s
        ctx.save_for_backward(d)
        s *= a
        return s
    if a.dtype == np.float32:
        cdf, gauss = _normal_cdf_f32(a)
    else:
        # float64: 0.5 (1 + erf(x / sqrt(2))) with an erf accurate to float64 (PyTorch's formula).
        cdf = erf_array(a * a.dtype.type(_INV_SQRT_2))
        cdf += 1
        cdf *= 0.5
        gauss = None
    if is_grad_enabled():
        # The derivative Phi(a) + a phi(a) is formed here, from the arrays forward already has, and saved
        # alone: backward is then one product with the gradient instead of four passes over three saved
        # arrays that a training step has long evicted, and the input and Phi are not kept alive for it.
        if gauss is None:
            gauss = a * a
            gauss *= -0.5
            xp.exp(gauss, out=gauss)
        deriv = gauss  # exp(-a^2 / 2), turned into the derivative in place
        # exp2_ stops at 2^-126 instead of underflowing: beyond |a| = 16, where a phi(a) is 0 in float32,
        # the clipped factor keeps that floor times a from growing into the result.
        deriv *= xp.clip(a, -16, 16) if a.dtype == np.float32 else a
        deriv *= a.dtype.type(_INV_SQRT_2PI)
        deriv += cdf
        ctx.save_for_backward(deriv)
    cdf *= a
    return cdf


def _gelu_grad(ctx, grad):
    """The input gradient of ``Gelu``: the derivative its forward saved, times ``grad``."""
    return ctx.saved[0] * grad


def _activation_kernel(op, a):
    """The ``gelu``/``silu`` kernel for ``a`` (``kernels/activation.py``; for CuPy arrays
    ``backends/cuda_kernels.py``), or None for the code here."""
    if a.dtype != np.float32 or (type(a) is not np.ndarray and type(a).__module__.partition(".")[0] != "cupy"):
        return None
    from ..kernels import _select

    return _select.implementation(op, _select.choose(op, a))


class Silu(Function):
    def forward(ctx, a):
        fast = _activation_kernel("silu", a)
        if fast is not None:
            out, ctx.deriv = fast.forward(a, is_grad_enabled())
            ctx.save_for_backward(a, None)   # the sigmoid is recomputed only for double backward
            return out
        s = _sigmoid(a)
        ctx.save_for_backward(a, s)
        return a * s

    def backward(ctx, grad):
        a, s = ctx.saved
        if s is None:
            return ctx.deriv * grad
        # s (1 + a (1 - s)), in place on one buffer.
        g = array_module(s).subtract(1, s)
        g *= a
        g += 1
        g *= s
        g *= grad
        return g

    def grad_graph(ctx, grad):
        a, s = ctx.saved
        if s is None:
            s = _sigmoid(a)
        a = ctx.graph_input(0, a)
        s = ctx.graph_derived(s, [a], lambda g, s: (g * (s * (1 - s)),))
        return grad * (s * (a * (1 - s) + 1))


def _expm1_negative_part(a, alpha):
    """``alpha * expm1(min(a, 0))``: ELU's negative branch, 0 wherever ``a > 0``."""
    xp = array_module(a)
    neg = xp.clip(a, -INF, 0)
    xp.expm1(neg, out=neg)
    neg *= a.dtype.type(alpha)
    return neg


class Elu(Function):
    """``max(a, 0) + alpha * expm1(min(a, 0))``, times ``scale``: ``a`` for a > 0 and
    ``alpha * (exp(a) - 1)`` elsewhere, with no branch per element."""

    def forward(ctx, a, alpha=1.0, scale=1.0):
        xp = array_module(a)
        neg = _expm1_negative_part(a, alpha)
        out = xp.clip(a, 0, INF)
        out += neg
        if scale != 1.0:
            out *= a.dtype.type(scale)
        ctx.save_for_backward(a, neg)
        ctx.scale = scale
        ctx.alpha = alpha
        return out

    def backward(ctx, grad):
        a, neg = ctx.saved
        g = one_where_positive(a, neg + a.dtype.type(ctx.alpha))  # alpha * exp(a) below 0
        g *= grad
        if ctx.scale != 1.0:
            g *= grad.dtype.type(ctx.scale)
        return g

    def grad_graph(ctx, grad):
        a, neg = ctx.saved
        below = Tensor((a <= 0).astype(a.dtype))  # "a <= 0", as backward tests it
        pos = 1 - below
        ta = ctx.graph_input(0, a)
        # neg = alpha * expm1(min(a, 0)): its slope is neg + alpha below 0, 0 above.
        neg = ctx.graph_derived(neg, [ta], lambda g, neg: (g * below * (neg + ctx.alpha),))
        g = grad * (pos + below * (neg + ctx.alpha))
        return g * ctx.scale if ctx.scale != 1.0 else g


def log1p_exp_neg_abs(x):
    """``log1p(exp(-|x|))`` as a fresh array: the part of ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``
    that never overflows (log-sigmoid and the logit cross-entropy add the ``max`` side themselves)."""
    xp = array_module(x)
    t = xp.abs(x)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    return xp.log1p(t, out=t)


@functools.lru_cache(maxsize=64)
def _softplus_is_linear_above(dtype, threshold):
    """Whether, in ``dtype``, softplus and its slope have reached the identity at ``threshold``:
    ``log1p(exp(t))`` rounds to at most the next value above ``t`` and the logistic function rounds to 1
    (float32 from about 17.4, so at PyTorch's default 20; float64 needs about 37)."""
    t = np.asarray(threshold, dtype)
    return bool(np.log1p(np.exp(t)) <= np.nextafter(t, np.asarray(INF, dtype))) and bool(_sigmoid(t[None])[0] == 1)


def _softplus_below(ba, threshold):
    """``log1p(exp(min(ba, threshold)))``: finite everywhere, equal to softplus up to the threshold."""
    xp = array_module(ba)
    sp = xp.clip(ba, -INF, threshold)
    xp.exp(sp, out=sp)
    xp.log1p(sp, out=sp)
    return sp


def softplus_values(a, beta=1.0, threshold=20.0):
    """``log1p(exp(beta * a)) / beta``, and ``a`` itself where ``beta * a > threshold`` (PyTorch's rule),
    as a fresh array with no branch per element.

    With ``beta = 1`` and a threshold at which both the value and its slope have reached the identity in
    the dtype (the default 20 in float32) the switch is ``max(a, log1p(exp(min(a, 20))))``; otherwise
    ``select``.
    """
    xp = array_module(a)
    ba = a * a.dtype.type(beta) if beta != 1.0 else a
    soft = _softplus_below(ba, threshold)
    if beta == 1.0 and _softplus_is_linear_above(a.dtype, float(threshold)):
        return xp.maximum(a, soft, out=soft)
    if beta != 1.0:
        soft /= a.dtype.type(beta)
    return select(ba > a.dtype.type(threshold), a, soft)


class Softplus(Function):
    def forward(ctx, a, beta=1.0, threshold=20.0):
        ctx.save_for_backward(a)
        ctx.beta, ctx.threshold = beta, threshold
        return softplus_values(a, beta, threshold)

    def backward(ctx, grad):
        (a,) = ctx.saved
        ba = a * a.dtype.type(ctx.beta) if ctx.beta != 1.0 else a
        s = _sigmoid(ba)
        s *= grad
        if ctx.beta == 1.0 and _softplus_is_linear_above(a.dtype, float(ctx.threshold)):
            return s  # the logistic slope is exactly 1 above the threshold
        return select(ba > ba.dtype.type(ctx.threshold), grad, s)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        ta = ctx.graph_input(0, a)
        s = grad * sigmoid(ta * ctx.beta if ctx.beta != 1.0 else ta)
        if ctx.beta == 1.0 and _softplus_is_linear_above(a.dtype, float(ctx.threshold)):
            return s
        ba = a * a.dtype.type(ctx.beta) if ctx.beta != 1.0 else a
        return where(Tensor(ba > ba.dtype.type(ctx.threshold)), grad, s)


class Erf(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return erf_array(a)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * (a.dtype.type(2 / math.sqrt(math.pi)) * array_module(a).exp(-a * a))

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        ta = ctx.graph_input(0, a)
        return grad * (exp(-ta * ta) * (2 / math.sqrt(math.pi)))


class NanToNum(Function):
    def forward(ctx, a, nan=0.0, posinf=None, neginf=None):
        ctx.save_for_backward(a)
        return array_module(a).nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * array_module(a).isfinite(a)

    def grad_graph(ctx, grad):
        (a,) = ctx.saved
        return grad * Tensor(array_module(a).isfinite(a))


def _unary(cls, name, float_only=True, doc=None, in_place=False):
    """The functional form of the unary op ``cls``. ``in_place``: ``cls`` works in place on NumPy results,
    so a 0-d input goes through ``one_element``."""
    if in_place:
        def op(input, **kwargs):
            x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
            if float_only:
                x = _float_operand(x)
            if x.array.ndim == 0:
                return one_element(op, x, **kwargs)
            return cls.apply(x, **kwargs)
    else:
        def op(input, **kwargs):
            x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
            if float_only:
                x = _float_operand(x)
            return cls.apply(x, **kwargs)

    op.__name__ = name
    op.__doc__ = doc or f"Elementwise ``{name}``; differentiable."
    return op


neg = _unary(Neg, "neg", float_only=False)
negative = neg
exp = _unary(Exp, "exp")
expm1 = _unary(Expm1, "expm1")
log = _unary(Log, "log")


def log2(input):
    """Elementwise base-2 logarithm; differentiable."""
    return log(input, base=2)


def log10(input):
    """Elementwise base-10 logarithm; differentiable."""
    return log(input, base=10)
log1p = _unary(Log1p, "log1p")
sqrt = _unary(Sqrt, "sqrt")
rsqrt = _unary(Rsqrt, "rsqrt", doc="``1 / sqrt(x)``.")
reciprocal = _unary(Reciprocal, "reciprocal")
square = _unary(Square, "square", float_only=False)
sin = _unary(Sin, "sin")
cos = _unary(Cos, "cos")
tan = _unary(Tan, "tan")
tanh = _unary(Tanh, "tanh")
sigmoid = _unary(Sigmoid, "sigmoid", doc="Logistic function ``1 / (1 + exp(-x))``, stable for large |x|.",
                 in_place=True)
erf = _unary(Erf, "erf", in_place=True)
abs = _unary(Abs, "abs", float_only=False)  # noqa: A001


def relu(input, inplace=False):
    """``max(x, 0)``."""
    if input.array.ndim == 0:
        return one_element(relu, input)
    return Relu.apply(input)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for x > 0, else ``negative_slope * x``."""
    if input.array.ndim == 0:
        return one_element(leaky_relu, input, negative_slope)
    return LeakyRelu.apply(input, negative_slope=negative_slope)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return Hardtanh.apply(input, min_val=min_val, max_val=max_val)


def gelu(input, approximate="none"):
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu(): approximate must be 'none' or 'tanh', got {approximate!r}")
    if input.array.ndim == 0:
        return one_element(gelu, input, approximate)
    return Gelu.apply(input, approximate=approximate)


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (also called swish)."""
    if input.array.ndim == 0:
        return one_element(silu, input)
    return Silu.apply(input)


def elu(input, alpha=1.0, inplace=False):
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)``."""
    if input.array.ndim == 0:
        return one_element(elu, input, alpha)
    return Elu.apply(input, alpha=alpha)


def selu(input, inplace=False):
    if input.array.ndim == 0:
        return one_element(selu, input)
    return Elu.apply(input, alpha=1.6732632423543772, scale=1.0507009873554805)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    if input.array.ndim == 0:
        return one_element(softplus, input, beta, threshold)
    return Softplus.apply(input, beta=beta, threshold=threshold)


def clamp(input, min=None, max=None):  # noqa: A002
    """Limit values to ``[min, max]``; either bound may be a tensor. The gradient flows where x is inside."""
    if min is None and max is None:
        raise ValueError("clamp(): at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    x = input if isinstance(input, Tensor) else Tensor(backend.as_array(input))
    if x.array.dtype.kind in "iu" and (isinstance(min, float) or isinstance(max, float)):
        x = _float_operand(x)
    return Clamp.apply(x, min=min, max=max)


clip = clamp


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    return NanToNum.apply(input, nan=nan, posinf=posinf, neginf=neginf)


# --------------------------------------------------------------------------- Tensor operators
def _rsub(self, other):
    return sub(other, self)


def _rdiv(self, other):
    return div(other, self)


def _rpow(self, other):
    return pow(other, self)


def _rfloordiv(self, other):
    return floor_divide(other, self)


def _rmod(self, other):
    return remainder(other, self)


def _invert(self):
    if self.array.dtype != np.bool_:
        raise TypeError(f"~ (bitwise not) is only supported on bool tensors here, got dtype {self.array.dtype}")
    return logical_not(self)


def _and(self, other):
    return logical_and(self, other)


def _or(self, other):
    return logical_or(self, other)


def _xor(self, other):
    return logical_xor(self, other)


install(
    __add__=add, __radd__=add, __sub__=sub, __rsub__=_rsub, __mul__=mul, __rmul__=mul,
    __truediv__=div, __rtruediv__=_rdiv, __pow__=pow, __rpow__=_rpow, __neg__=neg, __abs__=abs,
    __floordiv__=floor_divide, __rfloordiv__=_rfloordiv, __mod__=remainder, __rmod__=_rmod,
    __eq__=eq, __ne__=ne, __lt__=lt, __le__=le, __gt__=gt, __ge__=ge,
    __and__=_and, __rand__=_and, __or__=_or, __ror__=_or, __xor__=_xor, __invert__=_invert,
    add=add, sub=sub, subtract=subtract, mul=mul, multiply=multiply, div=div, divide=divide,
    true_divide=true_divide, pow=pow, neg=neg, negative=negative, abs=abs, exp=exp, expm1=expm1, log=log,
    log2=log2, log10=log10, log1p=log1p, sqrt=sqrt, rsqrt=rsqrt, reciprocal=reciprocal, square=square,
    sin=sin, cos=cos, tan=tan, tanh=tanh, sigmoid=sigmoid, relu=relu, erf=erf, clamp=clamp, clip=clip,
    maximum=maximum, minimum=minimum, sign=sign, floor=floor, ceil=ceil, round=round, trunc=trunc,
    floor_divide=floor_divide, remainder=remainder, fmod=fmod, eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge,
    logical_and=logical_and, logical_or=logical_or, logical_not=logical_not, logical_xor=logical_xor,
    isnan=isnan, isinf=isinf, isfinite=isfinite, lerp=lerp, nan_to_num=nan_to_num,
    where=lambda self, condition, other: where(condition, self, other),
)
