"""The ONNX translation of each somanet op (``Function`` class).

A handler takes an ``Op`` (see ``_graph.py``) and returns the ONNX names of the op's outputs. Handlers are
looked up along the op class's MRO, by class or by class name; ``register_op`` adds or replaces one.
"""
import math

import numpy as np

from ..ops import (activation, attention, conv, dropout, elementwise, embedding, index, linalg, norm, pool,
                   recurrent, reduce, sampling, shape)
from ..nn.modules.module import _HookIdentity
from ._graph import Value

_BY_CLASS = {}
_BY_NAME = {}

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def register_op(op, handler=None):
    """Register ``handler(op) -> output name(s)`` for a somanet op class (or class name); usable as a
    decorator. The handler builds ONNX nodes with ``op.emit(op_type, inputs, **attributes)`` from the op's
    inputs (``op.x(i)``), plain arguments (``op.arg(i)``, ``op.p(name)``) and output metadata
    (``op.out_dtype()``, ``op.out_shape()``)."""
    def deco(fn):
        for o in (op if isinstance(op, (list, tuple)) else (op,)):
            if isinstance(o, str):
                _BY_NAME[o] = fn
            else:
                _BY_CLASS[o] = fn
        return fn

    return deco(handler) if handler is not None else deco


def handler_for(cls):
    for c in cls.__mro__:
        if c in _BY_CLASS:
            return _BY_CLASS[c]
        if c.__name__ in _BY_NAME:
            return _BY_NAME[c.__name__]
    return None


def supported_ops():
    """The names of the somanet ops ``export`` translates."""
    return sorted({c.__name__ for c in _BY_CLASS} | set(_BY_NAME))


op = register_op


# =========================================================================== elementwise
def _unary(op_type, float_out=True, **attrs):
    def fn(n):
        return n.emit(op_type, [n.x(0, n.out_dtype() if float_out else None)], **attrs)
    return fn


for _cls, _type in [(elementwise.Neg, "Neg"), (elementwise.Abs, "Abs"), (elementwise.Exp, "Exp"),
                    (elementwise.Sqrt, "Sqrt"), (elementwise.Reciprocal, "Reciprocal"), (elementwise.Sin, "Sin"),
                    (elementwise.Cos, "Cos"), (elementwise.Tan, "Tan"), (elementwise.Tanh, "Tanh"),
                    (elementwise.Sigmoid, "Sigmoid"), (elementwise.Relu, "Relu"), (elementwise.Erf, "Erf"),
                    (activation.Softsign, "Softsign"), ("Floor", "Floor"), ("Ceil", "Ceil"), ("Sign", "Sign")]:
    register_op(_cls, _unary(_type))


for _name, _type in [("Isnan", "IsNaN"), ("Isinf", "IsInf"), ("Logical_not", "Not")]:
    register_op(_name, _unary(_type, float_out=False))


@op(elementwise.Round)
def _round(n):
    if n.arg(1):
        n.fail("round() with decimals is not supported")
    return n.emit("Round", [n.x(0, n.out_dtype())])


@op(elementwise.Log)
def _log(n):
    y = n.emit("Log", [n.x(0, n.out_dtype())])
    base = n.arg(1)
    if base is None:
        return y
    return n.emit("Div", [y, n.scalar(math.log(base), n.out_dtype())])


@op(elementwise.Rsqrt)
def _rsqrt(n):
    return n.emit("Reciprocal", [n.emit("Sqrt", [n.x(0, n.out_dtype())])])


@op(elementwise.Square)
def _square(n):
    x = n.x(0, n.out_dtype())
    return n.emit("Mul", [x, x])


@op(elementwise.Expm1)
def _expm1(n):
    return n.emit("Sub", [n.emit("Exp", [n.x(0, n.out_dtype())]), n.scalar(1, n.out_dtype())])


@op(elementwise.Log1p)
def _log1p(n):
    return n.emit("Log", [n.emit("Add", [n.x(0, n.out_dtype()), n.scalar(1, n.out_dtype())])])


@op(elementwise.NanToNum)
def _nan_to_num(n):
    dt = n.out_dtype()
    x = n.x(0, dt)
    if dt.kind != "f":
        return n.emit("Identity", [x])
    info = np.finfo(dt)
    nan, posinf, neginf = n.p("nan", 0.0), n.p("posinf", info.max), n.p("neginf", info.min)
    y = n.emit("Where", [n.emit("IsNaN", [x]), n.scalar(nan, dt), x])
    y = n.emit("Where", [n.emit("IsInf", [y], detect_negative=0), n.scalar(posinf, dt), y])
    return n.emit("Where", [n.emit("IsInf", [y], detect_positive=0), n.scalar(neginf, dt), y])


def _binary(op_type):
    def fn(n):
        dt = n.out_dtype()
        return n.emit(op_type, [n.x(0, dt), n.x(1, dt)])
    return fn


for _cls, _type in [(elementwise.Add, "Add"), (elementwise.Sub, "Sub"), (elementwise.Mul, "Mul"),
                    (elementwise.Div, "Div"), (elementwise.Pow, "Pow"), (elementwise.Maximum, "Max"),
                    (elementwise.Minimum, "Min")]:
    register_op(_cls, _binary(_type))


def _operand_dtype(n, i):
    obj = n.inp(i)
    if hasattr(obj, "dtype") and not isinstance(obj, (bool, int, float)):
        return np.dtype(obj.dtype)
    return obj


def _compare(op_type, negate=False):
    def fn(n):
        dt = np.result_type(_operand_dtype(n, 0), _operand_dtype(n, 1))
        y = n.emit(op_type, [n.x(0, dt), n.x(1, dt)])
        return n.emit("Not", [y]) if negate else y
    return fn


for _name, _type, _neg in [("Eq", "Equal", False), ("Ne", "Equal", True), ("Lt", "Less", False),
                           ("Le", "LessOrEqual", False), ("Gt", "Greater", False), ("Ge", "GreaterOrEqual", False)]:
    register_op(_name, _compare(_type, _neg))


def _logical(op_type):
    def fn(n):
        return n.emit(op_type, [n.x(0, np.bool_), n.x(1, np.bool_)])
    return fn


for _name, _type in [("Logical_and", "And"), ("Logical_or", "Or"), ("Logical_xor", "Xor")]:
    register_op(_name, _logical(_type))


@op(elementwise.Where)
def _where(n):
    dt = n.out_dtype()
    return n.emit("Where", [n.x(0, np.bool_), n.x(1, dt), n.x(2, dt)])


@op(elementwise.Lerp)
def _lerp(n):
    dt = n.out_dtype()
    a, b, w = n.x(0, dt), n.x(1, dt), n.x(2, dt)
    return n.emit("Add", [a, n.emit("Mul", [w, n.emit("Sub", [b, a])])])


@op(elementwise.FloorDivide)
def _floor_divide(n):
    dt = n.out_dtype()
    if dt.kind != "f":
        n.fail("integer floor division is not supported (ONNX's integer Div truncates)")
    return n.emit("Floor", [n.emit("Div", [n.x(0, dt), n.x(1, dt)])])


@op(elementwise.Remainder)
def _remainder(n):
    dt = n.out_dtype()
    a, b = n.x(0, dt), n.x(1, dt)
    if dt.kind != "f":
        return n.emit("Mod", [a, b], fmod=0)
    q = n.emit("Floor", [n.emit("Div", [a, b])])
    return n.emit("Sub", [a, n.emit("Mul", [q, b])])


@op(elementwise.Fmod)
def _fmod(n):
    dt = n.out_dtype()
    return n.emit("Mod", [n.x(0, dt), n.x(1, dt)], fmod=1 if dt.kind == "f" else 0)


# --------------------------------------------------------------------------- activations
@op(elementwise.LeakyRelu)
def _leaky_relu(n):
    return n.emit("LeakyRelu", [n.x(0)], alpha=float(n.p("negative_slope", 0.01)))


def _clip(n, lo, hi):
    dt = n.out_dtype()
    x = n.x(0, dt)
    return n.emit("Clip", [x, "" if lo is None else n.scalar(lo, dt), "" if hi is None else n.scalar(hi, dt)])


@op(elementwise.Hardtanh)
def _hardtanh(n):
    return _clip(n, n.p("min_val", -1.0), n.p("max_val", 1.0))


@op(elementwise.Clamp)
def _clamp(n):
    lo, hi = n.arg(1), n.arg(2)
    scalar = (type(None), bool, int, float, np.generic)
    if isinstance(lo, scalar) and isinstance(hi, scalar):
        return _clip(n, lo, hi)
    dt = n.out_dtype()
    y = n.x(0, dt)
    if lo is not None:
        y = n.emit("Max", [y, n.x(1, dt)])
    if hi is not None:
        y = n.emit("Min", [y, n.x(2, dt)])
    return y


@op(elementwise.Gelu)
def _gelu(n):
    approx = n.p("approximate", "none")
    dt = n.out_dtype()
    x = n.x(0, dt)
    if n.opset >= 20:
        return n.emit("Gelu", [x], approximate="tanh" if approx == "tanh" else "none")
    half = n.emit("Mul", [x, n.scalar(0.5, dt)])
    if approx == "tanh":
        cube = n.emit("Mul", [n.emit("Mul", [x, x]), x])
        inner = n.emit("Add", [x, n.emit("Mul", [cube, n.scalar(0.044715, dt)])])
        t = n.emit("Tanh", [n.emit("Mul", [inner, n.scalar(math.sqrt(2.0 / math.pi), dt)])])
    else:
        t = n.emit("Erf", [n.emit("Mul", [x, n.scalar(1.0 / math.sqrt(2.0), dt)])])
    return n.emit("Mul", [half, n.emit("Add", [t, n.scalar(1.0, dt)])])


@op(elementwise.Silu)
def _silu(n):
    x = n.x(0, n.out_dtype())
    return n.emit("Mul", [x, n.emit("Sigmoid", [x])])


@op(elementwise.Elu)
def _elu(n):
    alpha = float(n.p("alpha", 1.0))
    scale = float(n.p("scale", 1.0))
    x = n.x(0, n.out_dtype())
    if scale == 1.0:
        return n.emit("Elu", [x], alpha=alpha)
    return n.emit("Selu", [x], alpha=alpha, gamma=scale)


@op(elementwise.Softplus)
def _softplus(n):
    beta = float(n.p("beta", 1.0))
    threshold = float(n.p("threshold", 20.0))
    dt = n.out_dtype()
    x = n.x(0, dt)
    bx = x if beta == 1.0 else n.emit("Mul", [x, n.scalar(beta, dt)])
    y = n.emit("Softplus", [bx])
    if beta != 1.0:
        y = n.emit("Div", [y, n.scalar(beta, dt)])
    return n.emit("Where", [n.emit("Greater", [bx, n.scalar(threshold, dt)]), x, y])


@op(activation.Hardsigmoid)
def _hardsigmoid(n):
    return n.emit("HardSigmoid", [n.x(0)], alpha=1.0 / 6.0, beta=0.5)


@op(activation.Hardswish)
def _hardswish(n):
    x = n.x(0)
    if n.opset >= 14:
        return n.emit("HardSwish", [x])
    return n.emit("Mul", [x, n.emit("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])


@op(activation.Mish)
def _mish(n):
    x = n.x(0)
    return n.emit("Mul", [x, n.emit("Tanh", [n.emit("Softplus", [x])])])


@op(activation.Logsigmoid)
def _logsigmoid(n):
    return n.emit("Neg", [n.emit("Softplus", [n.emit("Neg", [n.x(0)])])])


@op(activation.Tanhshrink)
def _tanhshrink(n):
    x = n.x(0)
    return n.emit("Sub", [x, n.emit("Tanh", [x])])


@op(activation.Softshrink)
def _softshrink(n):
    lam = float(n.p("lambd", 0.5))
    return n.emit("Shrink", [n.x(0)], bias=lam, lambd=lam)


@op(activation.Hardshrink)
def _hardshrink(n):
    lam = float(n.p("lambd", 0.5))
    return n.emit("Shrink", [n.x(0)], bias=0.0, lambd=lam)


@op(activation.Threshold)
def _threshold(n):
    dt = n.out_dtype()
    x = n.x(0, dt)
    return n.emit("Where", [n.emit("Greater", [x, n.scalar(n.arg(1), dt)]), x, n.scalar(n.arg(2), dt)])


@op(activation.Celu)
def _celu(n):
    return n.emit("Celu", [n.x(0)], alpha=float(n.p("alpha", 1.0)))


@op(activation.Prelu)
def _prelu(n):
    x, w = n.value(0), n.value(1)
    slope = w.name
    if w.rank == 1 and x.rank >= 2 and w.shape[0] > 1:
        slope = n.emit("Reshape", [w.name, n.int64((w.shape[0],) + (1,) * (x.rank - 2))])
    return n.emit("PRelu", [x.name, slope])


@op(activation.Glu)
def _glu(n):
    dim = n.p("dim", -1)
    a, b = n.emit("Split", [n.x(0), n.int64([n.shape(0)[dim] // 2] * 2)], n_out=2, axis=dim)
    return n.emit("Mul", [a, n.emit("Sigmoid", [b])])


@op(reduce.Softmax)
def _softmax(n):
    return n.emit("Softmax", [n.x(0, n.out_dtype())], axis=int(n.arg(1)))


@op(reduce.LogSoftmax)
def _log_softmax(n):
    return n.emit("LogSoftmax", [n.x(0, n.out_dtype())], axis=int(n.arg(1)))


# =========================================================================== reductions
def _dims(n, i):
    dims = n.arg(i)
    if dims is None:
        return None
    return [int(d) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))]


@op(reduce.Sum)
def _sum(n):
    return n.reduce("ReduceSum", n.x(0, n.out_dtype()), _dims(n, 1), n.arg(2))


@op(reduce.Mean)
def _mean(n):
    return n.reduce("ReduceMean", n.x(0, n.out_dtype()), _dims(n, 1), n.arg(2))


@op(reduce.Prod)
def _prod(n):
    return n.reduce("ReduceProd", n.x(0, n.out_dtype()), _dims(n, 1), n.arg(2))


@op(reduce.LogSumExp)
def _logsumexp(n):
    return n.reduce("ReduceLogSumExp", n.x(0, n.out_dtype()), _dims(n, 1), n.arg(2))


@op(reduce.Extreme)
def _extreme(n):
    return n.reduce("ReduceMax" if n.arg(3) else "ReduceMin", n.x(0), _dims(n, 1), n.arg(2))


@op(reduce.ExtremeDim)
def _extreme_dim(n):
    """``max(x, dim)`` / ``min(x, dim)``: the values at indices NumPy's argmax/argmin chose during the trace.
    The graph computes both again (ReduceMax/ArgMax); the indices array stands for the ArgMax output, so
    that using the returned indices (with keepdim) is exported too."""
    dim, keepdim = int(n.arg(1)), bool(n.arg(2))
    index = n.inp(3)
    n.checked.add(3)
    if id(index) in n.g.env:  # indices the graph computed: gather them
        y = n.emit("GatherElements", [n.x(0), n.x(3, np.int64)], axis=dim)
        return y if keepdim else n.emit("Squeeze", [y, n.int64([dim])])
    a = n.array_of(0)
    v = n.value(0)
    if np.array_equal(index, np.expand_dims(np.argmax(a, axis=dim), dim)):
        largest = True
    elif np.array_equal(index, np.expand_dims(np.argmin(a, axis=dim), dim)):
        largest = False
    else:
        n.fail("the indices are neither the maximum's nor the minimum's along the dim")
    idx = n.emit("ArgMax" if largest else "ArgMin", [v.name], axis=dim, keepdims=1)
    shape2 = np.shape(n.arg2(3))
    n.g.env[id(index)] = Value(idx, np.int64, index.shape, shape2)
    n.g.cache.setdefault("_keep", []).append(index)
    return n.reduce("ReduceMax" if largest else "ReduceMin", v.name, [dim], keepdim)


@op(reduce._Arg)
def _arg(n):
    x, dim, keepdim, largest = n.x(0), n.arg(1), n.arg(2), n.arg(3)
    if dim is not None:
        return n.emit("ArgMax" if largest else "ArgMin", [x], axis=int(dim), keepdims=int(bool(keepdim)))
    y = n.emit("ArgMax" if largest else "ArgMin", [n.emit("Reshape", [x, n.int64([-1])])], axis=0, keepdims=0)
    return n.emit("Reshape", [y, n.int64([1] * n.rank(0))]) if keepdim else y


@op(reduce.Var)
def _var(n):
    x = n.x(0, n.out_dtype())
    dims, keepdim, correction, take_sqrt = _dims(n, 1), n.arg(2), n.arg(3), n.arg(4)
    v = n.value(0)
    axes = range(v.rank) if dims is None else dims
    if any(v.dynamic(a) for a in axes):
        n.fail("a variance over a dynamic axis is not supported")
    count = math.prod(v.shape[a] for a in axes)
    centered = n.emit("Sub", [x, n.reduce("ReduceMean", x, dims, True)])
    total = n.reduce("ReduceSum", n.emit("Mul", [centered, centered]), dims, keepdim)
    y = n.emit("Div", [total, n.scalar(max(count - correction, 0), n.out_dtype())])
    return n.emit("Sqrt", [y]) if take_sqrt else y


@op(reduce.CumSum)
def _cumsum(n):
    return n.emit("CumSum", [n.x(0, n.out_dtype()), n.const(np.array(int(n.arg(1)), np.int64), "axis")])


@op(reduce.Norm)
def _norm(n):
    p = n.arg(1)
    kinds = {1: "ReduceL1", 2: "ReduceL2", "fro": "ReduceL2"}
    if p not in kinds:
        n.fail(f"only the 1- and 2-norms are supported, got p={p!r}")
    return n.reduce(kinds[p], n.x(0, n.out_dtype()), _dims(n, 2), n.arg(3))


# =========================================================================== shapes
@op(shape.Cast)
def _cast(n):
    return n.emit("Cast", [n.x(0)], to=n.g.onnx_dtype(n.out_dtype()))


@op(shape.Clone)
def _clone(n):
    return n.emit("Identity", [n.x(0)])


@op(_HookIdentity)
def _hook_identity(n):
    return tuple(n.emit("Identity", [n.x(i)]) for i in range(len(n.inputs)))


@op(shape.Reshape)
def _reshape(n):
    return n.emit("Reshape", [n.x(0), n.reshape_target(0, n.arg(1, dynamic=True), n.arg2(1))])


@op(shape.Permute)
def _permute(n):
    v = n.value(0)
    perm = [int(d) % v.rank for d in n.arg(1)]
    out = n.emit("Transpose", [v.name], perm=perm)
    if perm == [1, 0]:
        n.g.cache[("transposed", out)] = v.name
    return out


@op(shape.Expand)
def _expand(n):
    v = n.value(0)
    t1, t2 = tuple(n.arg(1, dynamic=True)), tuple(n.arg2(1))
    if t1 == t2:
        return n.emit("Expand", [v.name, n.int64(t1)])
    offset = len(t1) - v.rank
    dims1, dims2 = [], []
    for j, (a, b) in enumerate(zip(t1, t2)):
        k = j - offset
        if a != b and k >= 0 and (v.shape[k], v.shape2[k]) == (a, b):
            dims1.append(1)
            dims2.append(1)  # the input's own (dynamic) size comes through
        else:
            dims1.append(a)
            dims2.append(b)
    return n.emit("Expand", [v.name, n.shape_tensor(dims1, dims2, what="an expand target")])


@op(shape.Cat)
def _cat(n):
    skip = n.p("skip") or (False,) * len(n.inputs)
    dt = n.out_dtype()
    parts = [n.x(i, dt) for i, s in enumerate(skip) if not s]
    if len(parts) == 1:
        return n.emit("Identity", parts)
    return n.emit("Concat", parts, axis=int(n.p("dim")))


@op(shape.Stack)
def _stack(n):
    dim = int(n.p("dim"))
    dt = n.out_dtype()
    parts = [n.emit("Unsqueeze", [n.x(i, dt), n.int64([dim])]) for i in range(len(n.inputs))]
    return parts[0] if len(parts) == 1 else n.emit("Concat", parts, axis=dim)


@op(shape.Split)
def _split(n):
    sizes, dim = list(n.arg(1)), int(n.arg(2))
    if len(sizes) == 1:
        return (n.emit("Identity", [n.x(0)]),)
    return tuple(n.emit("Split", [n.x(0), n.int64(sizes)], n_out=len(sizes), axis=dim))


@op(shape.Unbind)
def _unbind(n):
    v = n.value(0)
    dim = int(n.arg(1)) % v.rank
    count = v.shape[dim]
    if v.dynamic(dim):
        n.fail("unbind() along a dynamic axis is not supported")
    parts = [v.name] if count == 1 else n.emit("Split", [v.name, n.int64([1] * count)], n_out=count, axis=dim)
    return tuple(n.emit("Squeeze", [p, n.int64([dim])]) for p in parts)


@op(shape.ConstantPad)
def _pad(n):
    widths, value = n.arg(1), n.arg(2)
    dt = n.out_dtype()
    lo = [int(w[0]) for w in widths]
    hi = [int(w[1]) for w in widths]
    return n.emit("Pad", [n.x(0, dt), n.int64(lo + hi), n.scalar(value, dt)], mode="constant")


@op(shape.Repeat)
def _repeat(n):
    v = n.value(0)
    reps = [int(r) for r in n.arg(1)]
    x = v.name
    if len(reps) > v.rank:
        x = n.emit("Unsqueeze", [x, n.int64(list(range(len(reps) - v.rank)))])
    return n.emit("Tile", [x, n.int64(reps)])


@op(shape.Flip)
def _flip(n):
    dims = [int(d) for d in n.arg(1)]
    k = len(dims)
    return n.emit("Slice", [n.x(0), n.int64([-1] * k), n.int64([INT64_MIN] * k), n.int64(dims), n.int64([-1] * k)])


def _expand_key(key, rank):
    key = key if isinstance(key, tuple) else (key,)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    out = []
    for k in key:
        if k is Ellipsis:
            out += [slice(None)] * (rank - n_real)
        else:
            out.append(k)
    if Ellipsis not in key:
        out += [slice(None)] * (rank - n_real)
    return out


@op(shape.Slice)
def _slice(n):
    v = n.value(0)
    k1 = _expand_key(n.arg(1, dynamic=True), v.rank)
    k2 = _expand_key(n.arg2(1), v.rank)
    if len(k1) != len(k2):
        n.fail("the index changes with the dynamic axes")
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    dynamic = False
    axis = out_pos = 0
    for a, b in zip(k1, k2):
        if a is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        if isinstance(a, slice):
            if not isinstance(b, slice):
                n.fail("the index changes with the dynamic axes")
            if a != slice(None):
                step = 1 if a.step is None else int(a.step)
                if step != (1 if b.step is None else int(b.step)):
                    n.fail("the slice step changes with the dynamic axes")
                lo_default, hi_default = (0, INT64_MAX) if step > 0 else (-1, INT64_MIN)
                pair = []
                for x1, x2, default in ((a.start, b.start, lo_default), (a.stop, b.stop, hi_default)):
                    x1 = default if x1 is None else int(x1)
                    x2 = default if x2 is None else int(x2)
                    if x1 != x2:
                        dynamic = True
                    pair.append((x1, x2))
                starts.append(pair[0])
                ends.append(pair[1])
                axes.append(axis)
                steps.append(step)
            axis += 1
            out_pos += 1
            continue
        i1, i2 = int(a), int(b)
        if i1 != i2:
            n.fail("an integer index changes with the dynamic axes")
        starts.append((i1, i1))
        ends.append((i1 + 1 if i1 != -1 else INT64_MAX,) * 2)
        axes.append(axis)
        steps.append(1)
        squeeze.append(axis)
        axis += 1
    x = v.name
    if axes:
        if dynamic:
            st = n.shape_tensor([s[0] for s in starts], [s[1] for s in starts], what="a slice start")
            en = n.shape_tensor([e[0] for e in ends], [e[1] for e in ends], what="a slice end")
        else:
            st, en = n.int64([s[0] for s in starts]), n.int64([e[0] for e in ends])
        x = n.emit("Slice", [x, st, en, n.int64(axes), n.int64(steps)])
    if squeeze:
        x = n.emit("Squeeze", [x, n.int64(squeeze)])
    if unsqueeze:
        x = n.emit("Unsqueeze", [x, n.int64(unsqueeze)])
    if x == v.name:
        x = n.emit("Identity", [x])
    return x


@op(index.AdvancedIndex)
def _advanced_index(n):
    v = n.value(0)
    key = n.arg(1, dynamic=True)
    key = key if isinstance(key, tuple) else (key,)
    key2 = n.arg2(1)
    key2 = key2 if isinstance(key2, tuple) else (key2,)
    arrays = [j for j, k in enumerate(key) if not isinstance(k, slice) and k is not Ellipsis and k is not None]
    rest_full = all(isinstance(k, slice) and k == slice(None) for j, k in enumerate(key) if j not in arrays)
    if len(arrays) != 1 or not rest_full:
        n.fail("only indexing one dimension with an integer array (x[idx], x[:, idx]) is supported")
    j = arrays[0]
    idx = key[j]
    arr = idx.array if hasattr(idx, "array") else np.asarray(idx)
    if arr.dtype == np.bool_:
        n.fail("boolean-mask indexing gives a data-dependent shape, which is not supported")
    n.params["_index"], n.params2["_index"] = idx, key2[j]
    return n.emit("Gather", [v.name, n.x("_index", np.int64)], axis=j)


@op(index.IndexSelect)
def _index_select(n):
    return n.emit("Gather", [n.x(0), n.x(2, np.int64)], axis=int(n.arg(1)))


@op(index.Gather)
def _gather(n):
    return n.emit("GatherElements", [n.x(0), n.x(2, np.int64)], axis=int(n.arg(1)))


@op(index.MaskedFill)
def _masked_fill(n):
    dt = n.out_dtype()
    return n.emit("Where", [n.x("mask", np.bool_), n.x(1, dt), n.x(0, dt)])


@op(index.Triangle)
def _triangle(n):
    if n.opset < 14:
        n.fail("triu()/tril() need opset 14 or newer (Trilu)")
    k = n.const(np.array(int(n.arg(1)), np.int64), "k")
    return n.emit("Trilu", [n.x(0), k], upper=int(bool(n.arg(2))))


# =========================================================================== linear algebra
@op(linalg.MatMul)
def _matmul(n):
    dt = n.out_dtype()
    return n.emit("MatMul", [n.x(0, dt), n.x(1, dt)])


def _weight_t(n, w):
    """``w.T`` for a (out, in) weight: the original if ``w`` itself is a transpose, else one Transpose node
    per weight (shared by every use)."""
    original = n.g.cache.get(("transposed", w.name))
    if original is not None:
        return original
    key = ("T", w.name)
    if key not in n.g.cache:
        n.g.cache[key] = n.g.add_node("Transpose", [w.name], name=f"{w.name}/Transpose", perm=[1, 0])
    return n.g.cache[key]


@op(linalg.Linear)
def _linear(n):
    x, w = n.value(0), n.value(1)
    b = n.value(2) if n.has(2) else None
    if x.rank == 2:
        original = n.g.cache.get(("transposed", w.name))
        inputs = [x.name, original if original else w.name] + ([b.name] if b is not None else [])
        return n.emit("Gemm", inputs, transB=0 if original else 1)
    y = n.emit("MatMul", [x.name, _weight_t(n, w)])
    return n.emit("Add", [y, b.name]) if b is not None else y


@op(linalg.Bilinear)
def _bilinear(n):
    y = n.emit("Einsum", [n.x(0), n.x(2), n.x(1)], equation="...i,oij,...j->...o")
    return n.emit("Add", [y, n.x(3)]) if n.has(3) else y


@op(linalg.Einsum)
def _einsum(n):
    dt = n.out_dtype()
    return n.emit("Einsum", [n.x(i, dt) for i in range(len(n.inputs))], equation=n.p("equation"))


# =========================================================================== layers
@op(embedding.Embedding)
def _embedding(n):
    return n.emit("Gather", [n.x(0), n.x(1)], axis=0)


@op(dropout.Dropout)
def _dropout(n):
    mask, shift = n.inp(1), n.inp(2)
    m = mask.array if hasattr(mask, "array") else np.asarray(mask)
    n.checked.update((1, 2))
    if shift is None and np.all(m == 1):
        return n.emit("Identity", [n.x(0)])
    n.fail("dropout is active (the model applies it outside eval mode, e.g. F.dropout(x, training=True)); "
           "exported graphs are inference graphs")


def _norm_axes(n, x, weight, d):
    if weight is not None:
        k = weight.rank
    else:
        k, size = 0, 1
        while size < d and k < x.rank:
            k += 1
            size *= x.shape[-k]
    return k


@op(norm.LayerNorm)
def _layer_norm(n):
    x = n.value(0)
    w = n.value(1) if n.has(1) else None
    b = n.value(2) if n.has(2) else None
    d, eps = n.arg(3), float(n.arg(4))
    k = _norm_axes(n, x, w, d)
    dt = x.dtype
    if n.opset >= 17:
        scale = w.name if w is not None else n.const(np.ones(x.shape[-k:], dt), "ones")
        inputs = [x.name, scale] + ([b.name] if b is not None else [])
        return n.emit("LayerNormalization", inputs, axis=-k, epsilon=eps)
    axes = list(range(-k, 0))
    centered = n.emit("Sub", [x.name, n.reduce("ReduceMean", x.name, axes, True)])
    var = n.reduce("ReduceMean", n.emit("Mul", [centered, centered]), axes, True)
    y = n.emit("Div", [centered, n.emit("Sqrt", [n.emit("Add", [var, n.scalar(eps, dt)])])])
    if w is not None:
        y = n.emit("Mul", [y, w.name])
    if b is not None:
        y = n.emit("Add", [y, b.name])
    return y


@op(norm.RMSNorm)
def _rms_norm(n):
    x = n.value(0)
    w = n.value(1) if n.has(1) else None
    d, eps = n.arg(2), float(n.arg(3))
    k = _norm_axes(n, x, w, d)
    dt = x.dtype
    ms = n.reduce("ReduceMean", n.emit("Mul", [x.name, x.name]), list(range(-k, 0)), True)
    y = n.emit("Div", [x.name, n.emit("Sqrt", [n.emit("Add", [ms, n.scalar(eps, dt)])])])
    return n.emit("Mul", [y, w.name]) if w is not None else y


@op(norm.GroupNorm)
def _group_norm(n):
    x = n.value(0)
    groups, eps = int(n.arg(3)), float(n.arg(4))
    if n.p("stats") is not None or (n.has(5) and n.arg(5) is not None):
        n.fail("group/instance norm collecting running statistics (training mode) is not supported")
    n.checked.update((5, "stats"))
    dt = x.dtype
    g = n.emit("Reshape", [x.name, n.int64([0, groups, -1])])
    centered = n.emit("Sub", [g, n.reduce("ReduceMean", g, [2], True)])
    var = n.reduce("ReduceMean", n.emit("Mul", [centered, centered]), [2], True)
    y = n.emit("Div", [centered, n.emit("Sqrt", [n.emit("Add", [var, n.scalar(eps, dt)])])])
    y = n.emit("Reshape", [y, n.emit("Shape", [x.name])])
    affine = (x.shape[1],) + (1,) * (x.rank - 2)
    if n.has(1):
        y = n.emit("Mul", [y, n.emit("Reshape", [n.x(1), n.int64(affine)])])
    if n.has(2):
        y = n.emit("Add", [y, n.emit("Reshape", [n.x(2), n.int64(affine)])])
    return y


@op(norm.BatchNorm)
def _batch_norm(n):
    x = n.value(0)
    dt = x.dtype
    c = x.shape[1]
    eps = float(n.p("eps", 1e-5))
    training = n.p("training", True)
    n.checked.update(("momentum", "training"))
    scale = n.x(1) if n.has(1) else n.const(np.ones(c, dt), "ones")
    bias = n.x(2) if n.has(2) else n.const(np.zeros(c, dt), "zeros")
    if not training and n.has(3):
        return n.emit("BatchNormalization", [x.name, scale, bias, n.x(3), n.x(4)], epsilon=eps)
    # Batch statistics (no running statistics to use): normalise over every axis but the channels.
    axes = [0] + list(range(2, x.rank))
    centered = n.emit("Sub", [x.name, n.reduce("ReduceMean", x.name, axes, True)])
    var = n.reduce("ReduceMean", n.emit("Mul", [centered, centered]), axes, True)
    y = n.emit("Div", [centered, n.emit("Sqrt", [n.emit("Add", [var, n.scalar(eps, dt)])])])
    affine = (c,) + (1,) * (x.rank - 2)
    y = n.emit("Mul", [y, n.emit("Reshape", [scale, n.int64(affine)])])
    return n.emit("Add", [y, n.emit("Reshape", [bias, n.int64(affine)])])


# --------------------------------------------------------------------------- convolution and pooling
def _spatial_pairs(pairs, spatial):
    pairs = list(pairs)[-spatial:]
    return [int(p[0]) for p in pairs] + [int(p[1]) for p in pairs]


@op(conv.ConvNd)
def _conv(n):
    x, w = n.value(0), n.value(1)
    spatial = x.rank - 2
    stride, pads, dilation, groups = n.arg(3), n.arg(4), n.arg(5), n.arg(6)
    inputs = [x.name, w.name] + ([n.x(2)] if n.has(2) else [])
    return n.emit("Conv", inputs, kernel_shape=list(w.shape[2:]), strides=[int(s) for s in stride[-spatial:]],
                  pads=_spatial_pairs(pads, spatial), dilations=[int(d) for d in dilation[-spatial:]],
                  group=int(groups))


@op(conv.ConvTransposeNd)
def _conv_transpose(n):
    x, w = n.value(0), n.value(1)
    spatial = x.rank - 2
    stride, pads, dilation, groups = n.arg(3), n.arg(4), n.arg(5), n.arg(6)
    pads = list(pads)[-spatial:]
    lo = [int(p[0]) for p in pads]
    extra = [int(p[0]) - int(p[1]) for p in pads]
    inputs = [x.name, w.name] + ([n.x(2)] if n.has(2) else [])
    return n.emit("ConvTranspose", inputs, kernel_shape=list(w.shape[2:]),
                  strides=[int(s) for s in stride[-spatial:]], pads=lo + lo,
                  dilations=[int(d) for d in dilation[-spatial:]], group=int(groups),
                  output_padding=extra if any(extra) else None)


def _batched(n, spatial):
    """Input 0 with a batch dimension (pools accept unbatched (C, *) inputs), and whether one was added."""
    v = n.value(0)
    if v.rank == spatial + 1:
        return n.emit("Unsqueeze", [v.name, n.int64([0])]), True
    return v.name, False


def _unbatch(n, y, added):
    return n.emit("Squeeze", [y, n.int64([0])]) if added else y


@op(pool.MaxPool)
def _max_pool(n):
    kernel, stride, pads, dilation, _, spatial, with_indices = (n.arg(i) for i in range(1, 8))
    if with_indices:
        n.fail("max pooling with return_indices=True is not supported")
    x, added = _batched(n, spatial)
    y = n.emit("MaxPool", [x], kernel_shape=[int(k) for k in kernel[-spatial:]],
               strides=[int(s) for s in stride[-spatial:]], pads=_spatial_pairs(pads, spatial),
               dilations=[int(d) for d in dilation[-spatial:]])
    return _unbatch(n, y, added)


@op(pool.AvgPool)
def _avg_pool(n):
    kernel, stride, pads, out_hw, divisor, spatial = (n.arg(i) for i in range(1, 7))
    n.checked.add(5)
    x, added = _batched(n, spatial)
    dt = n.out_dtype()
    pairs = _spatial_pairs(pads, spatial)
    if any(pairs):
        zeros = [0, 0]
        x = n.emit("Pad", [x, n.int64(zeros + pairs[:spatial] + zeros + pairs[spatial:]), n.scalar(0, dt)],
                   mode="constant")
    kernel = [int(k) for k in kernel[-spatial:]]
    y = n.emit("AveragePool", [x], kernel_shape=kernel, strides=[int(s) for s in stride[-spatial:]])
    window = math.prod(kernel)
    div = np.asarray(divisor)
    if div.ndim == 0:
        if float(div) != window:
            y = n.emit("Mul", [y, n.scalar(window / float(div), dt)])
    else:
        grid = div.reshape(tuple(out_hw)[-spatial:]).astype(dt)
        y = n.emit("Mul", [y, n.const((window / grid).astype(dt), "divisor")])
    return _unbatch(n, y, added)


def _adaptive_matrix(size, out, dtype):
    """(out, size) averaging matrix of adaptive pooling: row i averages ``[floor(i*n/o), ceil((i+1)*n/o))``."""
    m = np.zeros((out, size), dtype)
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


@op(pool.AdaptiveAvgPool)
def _adaptive_avg_pool(n):
    out_hw, spatial = n.arg(1), n.arg(2)
    v = n.value(0)
    sizes = list(v.shape[-spatial:])
    outs = [int(o) for o in tuple(out_hw)[-spatial:]]
    if outs != [1] * spatial and any(v.dynamic(a) for a in range(v.rank - spatial, v.rank)):
        n.fail("adaptive pooling over dynamic spatial axes is only supported to an output of size 1")
    x, added = _batched(n, spatial)
    if outs == [1] * spatial:
        y = n.emit("GlobalAveragePool", [x])
    elif all(s % o == 0 for s, o in zip(sizes, outs)):
        k = [s // o for s, o in zip(sizes, outs)]
        y = n.emit("AveragePool", [x], kernel_shape=k, strides=k)
    else:
        dt = n.out_dtype()
        y = n.emit("MatMul", [x, n.const(_adaptive_matrix(sizes[-1], outs[-1], dt).T.copy(), "pool_w")])
        if spatial == 2:
            y = n.emit("MatMul", [n.const(_adaptive_matrix(sizes[0], outs[0], dt), "pool_h"), y])
    return _unbatch(n, y, added)


@op(pool.AdaptiveMaxPool)
def _adaptive_max_pool(n):
    out_hw, spatial, with_indices = n.arg(1), n.arg(2), n.arg(3)
    if with_indices:
        n.fail("adaptive max pooling with return_indices=True is not supported")
    v = n.value(0)
    sizes = list(v.shape[-spatial:])
    outs = [int(o) for o in tuple(out_hw)[-spatial:]]
    x, added = _batched(n, spatial)
    if outs == [1] * spatial:
        y = n.emit("GlobalMaxPool", [x])
    elif all(s % o == 0 for s, o in zip(sizes, outs)) and not any(v.dynamic(a) for a in range(v.rank - spatial,
                                                                                                 v.rank)):
        k = [s // o for s, o in zip(sizes, outs)]
        y = n.emit("MaxPool", [x], kernel_shape=k, strides=k)
    else:
        n.fail(f"adaptive max pooling from {tuple(sizes)} to {tuple(outs)} (windows of unequal size) is not "
               f"supported")
    return _unbatch(n, y, added)


@op(sampling.PixelShuffle)
def _pixel_shuffle(n):
    r, inverse = int(n.arg(1)), n.arg(2)
    if inverse or n.rank(0) != 4:
        n.fail("only pixel_shuffle on (N, C, H, W) inputs is supported (not pixel_unshuffle)")
    return n.emit("DepthToSpace", [n.x(0)], blocksize=r, mode="CRD")


# =========================================================================== attention
def _swap_last(n, name, rank):
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return n.emit("Transpose", [name], perm=perm)


def _masked_softmax(n, scores, dt, keep=None, additive=None, fix_empty=True):
    """softmax over the last axis of ``scores`` with ``keep`` (bool, True = attend) and/or an additive
    mask; rows with nothing to attend to give zeros (as somanet does) instead of NaN."""
    if additive is not None:
        scores = n.emit("Add", [scores, additive])
    if keep is not None:
        scores = n.emit("Where", [keep, scores, n.scalar(-np.inf, dt)])
    p = n.emit("Softmax", [scores], axis=-1)
    if fix_empty and (keep is not None or additive is not None):
        p = n.emit("Where", [n.emit("IsNaN", [p]), n.scalar(0, dt), p])
    return p


def _causal_keep(n, q_index, k_index):
    """(L, S) bool: key j visible from query i when j <= i, from the run-time sizes."""
    length = n.emit("Squeeze", [n.input_dim(q_index, -2), n.int64([0])])
    source = n.emit("Squeeze", [n.input_dim(k_index, -2), n.int64([0])])
    zero, one = n.scalar(0, np.int64), n.scalar(1, np.int64)
    rows = n.emit("Unsqueeze", [n.emit("Range", [zero, length, one]), n.int64([1])])
    cols = n.emit("Unsqueeze", [n.emit("Range", [zero, source, one]), n.int64([0])])
    return n.emit("GreaterOrEqual", [rows, cols])


def _repeat_heads(n, i, r):
    v = n.value(i)
    x = n.emit("Unsqueeze", [v.name, n.int64([v.rank - 2])])
    reps = [1] * (v.rank + 1)
    reps[v.rank - 2] = r
    x = n.emit("Expand", [x, n.int64(reps)])
    target = [0] * (v.rank - 3) + [-1]
    pieces = [n.int64(target), n.input_dim(i, -2), n.input_dim(i, -1)]
    return n.emit("Reshape", [x, n.emit("Concat", pieces, axis=0)])


@op(attention.ScaledDotProductAttention)
def _sdpa(n):
    q, k = n.value(0), n.value(1)
    dt = q.dtype
    scale = n.p("scale")
    dropout_p = n.p("dropout_p", 0.0)
    is_causal = n.p("is_causal", False)
    need_weights = n.p("need_weights", False)
    average = n.p("average_weights", False)
    repeat = int(n.p("kv_repeat", 1))
    n.checked.update(("generator", "scale"))
    if dropout_p:
        n.fail("attention dropout is active (dropout_p > 0 outside eval mode); exported graphs are inference graphs")
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    k_name, v_name = (k.name, n.x(2)) if repeat == 1 else (_repeat_heads(n, 1, repeat), _repeat_heads(n, 2, repeat))
    scores = n.emit("MatMul", [q.name, _swap_last(n, k_name, k.rank)])
    if sc != 1.0:
        scores = n.emit("Mul", [scores, n.scalar(sc, dt)])
    keep = additive = None
    fix = True
    mask_obj = n.inp(3)
    if mask_obj is not None:
        m = n.value(3)
        if m.dtype == np.bool_:
            keep = m.name
        else:
            additive = n.cast(m, dt)
            if m.const is not None and not np.isneginf(m.const).any():
                fix = False
    if is_causal:
        causal = _causal_keep(n, 0, 1)
        keep = causal if keep is None else n.emit("And", [keep, causal])
        fix = fix and (mask_obj is not None)
    p = _masked_softmax(n, scores, dt, keep, additive, fix_empty=fix)
    out = n.emit("MatMul", [p, v_name])
    if not need_weights:
        return out
    weights = n.reduce("ReduceMean", p, [-3], False) if average and q.rank >= 3 else p
    return out, weights


@op(attention.HeadProjection)
def _head_projection(n):
    x, w = n.value(0), n.value(1)
    rows, bias_rows = n.p("rows"), n.p("bias_rows")
    chunks, heads, batch_first = int(n.p("chunks", 1)), int(n.p("num_heads", 1)), n.p("batch_first", False)
    lo, hi = rows if rows is not None else (0, w.shape[0])
    blo, bhi = bias_rows if bias_rows is not None else (lo, hi)
    e = (hi - lo) // chunks
    hd = e // heads
    weight = w.name
    if (lo, hi) != (0, w.shape[0]):
        weight = n.emit("Slice", [weight, n.int64([lo]), n.int64([hi]), n.int64([0])])
    y = n.emit("MatMul", [x.name, n.emit("Transpose", [weight], perm=[1, 0])])
    if n.has(2):
        b = n.value(2)
        bias = b.name
        if (blo, bhi) != (0, b.shape[0]):
            bias = n.emit("Slice", [bias, n.int64([blo]), n.int64([bhi]), n.int64([0])])
        y = n.emit("Add", [y, bias])
    y = n.emit("Reshape", [y, n.int64([0, 0, chunks, heads, hd])])
    y = n.emit("Transpose", [y], perm=[2, 0, 3, 1, 4] if batch_first else [2, 1, 3, 0, 4])
    if chunks == 1:
        return n.emit("Squeeze", [y, n.int64([0])])
    parts = n.emit("Split", [y, n.int64([1] * chunks)], n_out=chunks, axis=0)
    return tuple(n.emit("Squeeze", [p, n.int64([0])]) for p in parts)


@op(attention.MergeHeadsProjection)
def _merge_heads(n):
    batch_first = n.p("batch_first", False)
    a = n.emit("Transpose", [n.x(0)], perm=[0, 2, 1, 3] if batch_first else [2, 0, 1, 3])
    a = n.emit("Reshape", [a, n.int64([0, 0, -1])])
    w = n.value(1)
    y = n.emit("MatMul", [a, _weight_t(n, w)])
    return n.emit("Add", [y, n.x(2)]) if n.has(2) else y


@op(attention.AddPositions)
def _add_positions(n):
    x = n.value(0)
    offset, time_axis = int(n.p("offset", 0)), int(n.p("time_axis", 0))
    length = n.input_dim(0, time_axis)
    start = n.int64([offset])
    end = n.emit("Add", [length, start]) if offset else length
    rows = n.emit("Slice", [n.x(1), start, end, n.int64([0])])
    if time_axis == 0 and x.rank == 3:
        rows = n.emit("Unsqueeze", [rows, n.int64([1])])
    return n.emit("Add", [x.name, rows])


@op(attention.AttentionPool)
def _attention_pool(n):
    dt = n.out_dtype()
    keep = n.x(2, np.bool_) if n.has(2) else None
    p = _masked_softmax(n, n.x(0, dt), dt, keep)
    return n.emit("MatMul", [p, n.x(1, dt)]), p


# =========================================================================== recurrent layers
def _gate_blocks(n, name, gates, order, unsqueeze=True):
    """Rows of a PyTorch gate-stacked weight/bias reordered into ONNX's gate order (one Split + Concat,
    folded into a constant by the runtime when the weight is an initializer)."""
    key = ("gates", name, tuple(order))
    if key not in n.g.cache:
        if gates == 1:
            y = name
        else:
            rows = n.g.cache["_rows"][name] // gates
            parts = n.emit("Split", [name, n.int64([rows] * gates)], n_out=gates, axis=0)
            y = n.emit("Concat", [parts[i] for i in order], axis=0)
        n.g.cache[key] = n.emit("Unsqueeze", [y, n.int64([0])]) if unsqueeze else y
    return n.g.cache[key]


def _reordered(n, i, gates, order):
    v = n.value(i)
    n.g.cache.setdefault("_rows", {})[v.name] = v.shape[0]
    return _gate_blocks(n, v.name, gates, order)


def _rnn_common(n, gates, order, x_index, h_indices, w_index, emb_index):
    """The inputs of an ONNX LSTM/GRU/RNN node for a somanet sequence op."""
    if n.p("batch_sizes") is not None:
        n.fail("packed sequences (PackedSequence) are not supported; export with padded input")
    n.checked.update(("batch_sizes", "padding_idx", "reverse", "nonlinearity"))
    x = n.x(x_index)
    if n.has(emb_index):
        x = n.emit("Gather", [n.x(emb_index), x], axis=0)
    W = _reordered(n, w_index, gates, order)
    R = _reordered(n, w_index + 1, gates, order)
    B = ""
    if n.has(w_index + 2):
        b_ih, b_hh = n.value(w_index + 2), n.value(w_index + 3)
        n.g.cache.setdefault("_rows", {})[b_ih.name] = b_ih.shape[0]
        n.g.cache["_rows"][b_hh.name] = b_hh.shape[0]
        bi = _gate_blocks(n, b_ih.name, gates, order, unsqueeze=False)
        bh = _gate_blocks(n, b_hh.name, gates, order, unsqueeze=False)
        B = n.emit("Unsqueeze", [n.emit("Concat", [bi, bh], axis=0), n.int64([0])])
    states = []
    for i in h_indices:
        states.append(n.emit("Unsqueeze", [n.x(i), n.int64([0])]) if n.has(i) else "")
    hidden = n.value(w_index + 1).shape[1] if gates != 4 else n.value(w_index + 1).shape[0] // 4
    return x, W, R, B, states, hidden


def _rnn_outputs(n, outs):
    y = n.emit("Squeeze", [outs[0], n.int64([1])])
    return (y,) + tuple(n.emit("Squeeze", [o, n.int64([0])]) for o in outs[1:])


@op(recurrent.LSTMSequence)
def _lstm(n):
    if n.has(7):
        n.fail("LSTM projections (proj_size > 0) have no ONNX LSTM form")
    # PyTorch stacks the gates i, f, g, o; ONNX wants i, o, f, c (c = g).
    x, W, R, B, (h0, c0), hidden = _rnn_common(n, 4, (0, 3, 1, 2), 0, (1, 2), 3, 8)
    direction = "reverse" if n.p("reverse") else "forward"
    outs = n.emit("LSTM", [x, W, R, B, "", h0, c0], n_out=3, hidden_size=hidden, direction=direction)
    return _rnn_outputs(n, outs)


@op(recurrent.GRUSequence)
def _gru(n):
    # PyTorch stacks r, z, n; ONNX wants z, r, h, and applies r after the recurrent product as PyTorch does
    # when linear_before_reset is set.
    x, W, R, B, (h0,), hidden = _rnn_common(n, 3, (1, 0, 2), 0, (1,), 2, 6)
    direction = "reverse" if n.p("reverse") else "forward"
    outs = n.emit("GRU", [x, W, R, B, "", h0], n_out=2, hidden_size=hidden, direction=direction,
                  linear_before_reset=1)
    return _rnn_outputs(n, outs)


@op(recurrent.RNNSequence)
def _rnn(n):
    x, W, R, B, (h0,), hidden = _rnn_common(n, 1, (0,), 0, (1,), 2, 6)
    act = "Relu" if n.p("nonlinearity", "tanh") == "relu" else "Tanh"
    direction = "reverse" if n.p("reverse") else "forward"
    outs = n.emit("RNN", [x, W, R, B, "", h0], n_out=2, hidden_size=hidden, direction=direction, activations=[act])
    return _rnn_outputs(n, outs)


@op(recurrent.SplitStates)
def _split_states(n):
    if n.p("order") is not None:
        n.fail("reordered (packed) states are not supported")
    v = n.value(0)
    k = v.shape[0]
    parts = [v.name] if k == 1 else n.emit("Split", [v.name, n.int64([1] * k)], n_out=k, axis=0)
    return tuple(n.emit("Squeeze", [p, n.int64([0])]) for p in parts)


@op(recurrent.StackStates)
def _stack_states(n):
    if n.p("order") is not None:
        n.fail("reordered (packed) states are not supported")
    parts = [n.emit("Unsqueeze", [n.x(i), n.int64([0])]) for i in range(len(n.inputs))]
    return parts[0] if len(parts) == 1 else n.emit("Concat", parts, axis=0)


def _cell_gates(n, x_i, h_i, w_i):
    """``x W_ih^T + b_ih`` and ``h W_hh^T + b_hh`` of a one-step cell (None for a missing state)."""
    gx = n.emit("MatMul", [n.x(x_i), n.emit("Transpose", [n.x(w_i)], perm=[1, 0])])
    if n.has(w_i + 2):
        gx = n.emit("Add", [gx, n.x(w_i + 2)])
    gh = None
    if n.has(h_i):
        gh = n.emit("MatMul", [n.x(h_i), n.emit("Transpose", [n.x(w_i + 1)], perm=[1, 0])])
    if n.has(w_i + 3):
        gh = n.emit("Add", [gh, n.x(w_i + 3)]) if gh is not None else n.x(w_i + 3)
    return gx, gh


@op(recurrent.LSTMCellStep)
def _lstm_cell(n):
    gx, gh = _cell_gates(n, 0, 1, 3)
    gates = n.emit("Add", [gx, gh]) if gh is not None else gx
    i, f, g, o = n.emit("Split", [gates, n.int64([n.value(3).shape[0] // 4] * 4)], n_out=4, axis=-1)
    i, f, o = (n.emit("Sigmoid", [t]) for t in (i, f, o))
    c = n.emit("Mul", [i, n.emit("Tanh", [g])])
    if n.has(2):
        c = n.emit("Add", [n.emit("Mul", [f, n.x(2)]), c])
    return n.emit("Mul", [o, n.emit("Tanh", [c])]), c


@op(recurrent.GRUCellStep)
def _gru_cell(n):
    hidden = n.value(2).shape[0] // 3
    gx, gh = _cell_gates(n, 0, 1, 2)
    xr, xz, xn = n.emit("Split", [gx, n.int64([hidden] * 3)], n_out=3, axis=-1)
    if gh is None:
        r, z = n.emit("Sigmoid", [xr]), n.emit("Sigmoid", [xz])
        cand = n.emit("Tanh", [xn])
        return n.emit("Mul", [n.emit("Sub", [n.scalar(1.0, n.out_dtype()), z]), cand])
    hr, hz, hn = n.emit("Split", [gh, n.int64([hidden] * 3)], n_out=3, axis=-1)
    r = n.emit("Sigmoid", [n.emit("Add", [xr, hr])])
    z = n.emit("Sigmoid", [n.emit("Add", [xz, hz])])
    cand = n.emit("Tanh", [n.emit("Add", [xn, n.emit("Mul", [r, hn])])])
    h = n.x(1) if n.has(1) else n.scalar(0.0, n.out_dtype())
    # h' = (1 - z) * n + z * h = n + z * (h - n)
    return n.emit("Add", [cand, n.emit("Mul", [z, n.emit("Sub", [h, cand])])])


@op(recurrent.RNNCellStep)
def _rnn_cell(n):
    gx, gh = _cell_gates(n, 0, 1, 2)
    pre = n.emit("Add", [gx, gh]) if gh is not None else gx
    return n.emit("Relu" if n.p("nonlinearity", "tanh") == "relu" else "Tanh", [pre])
