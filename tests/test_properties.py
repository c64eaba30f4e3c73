"""Property-based comparison with PyTorch over random dtypes, shapes and arguments.

Elementwise ops, broadcasting binary ops with type promotion (tensors with dimensions, 0-d tensors and
Python scalars of every dtype), reductions over random dims and basic/advanced indexing run on random
shapes (0-d and empty included) in somanet and in PyTorch: the results must have PyTorch's dtype, shape
and values, floating inputs PyTorch's gradients, and where PyTorch raises somanet must raise too.

The examples are derandomized (no example database), so CI runs the same cases every time, in well under
a minute. ``SOMANET_PROPERTY_EXAMPLES=20000`` runs that many examples per test instead, for a long local
search.
"""
import math
import os
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import somanet
from reference import torch_or_skip

torch = torch_or_skip()

EXAMPLES = int(os.environ.get("SOMANET_PROPERTY_EXAMPLES", "0")) or None
PROPERTY = settings(max_examples=EXAMPLES or 300, deadline=None, derandomize=EXAMPLES is None, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
FLOATS = ["float16", "float32", "float64"]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


# --------------------------------------------------------------------------- helpers
def _array(draw, shape, dtype, nonzero=False, low=None, high=None, special=False):
    """A random array of ``dtype``: small values (so sums and products stay exact enough in every dtype),
    with repeats (ties for max/argmax) and signed zeros for floats; ``special`` adds infinities and NaN."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        elements = st.just(True) if nonzero else st.booleans()
    elif dtype.kind in "iu":
        lo = max(-20 if low is None else low, int(np.iinfo(dtype).min))
        hi = 20 if high is None else high
        elements = st.integers(lo, hi).filter(lambda v: v != 0) if nonzero else st.integers(lo, hi)
    else:
        width = 16 if dtype == np.float16 else 32
        narrow = np.float16 if width == 16 else np.float32  # bounds must be representable at the width
        lo = float(narrow(-8.0 if low is None else low))
        hi = float(narrow(8.0 if high is None else high))
        # Magnitudes below 1e-3 become 0: PyTorch and somanet order some products differently (x / y / y
        # against x / (y * y)), which under- or overflows differently for tiny operands.
        tiny = float(narrow(1e-3))
        elements = st.one_of(st.sampled_from([v for v in (0.0, -0.0, 1.0, -1.5, 2.0) if lo <= v <= hi]),
                             st.floats(lo, hi, width=width).map(lambda v: v if abs(v) >= tiny else 0.0 * v)
                             .filter(lambda v: lo <= v <= hi))
        if special:
            elements = st.one_of(elements, st.sampled_from([math.inf, -math.inf, math.nan]))
        if nonzero:
            elements = elements.filter(lambda v: v != 0)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _run(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                return fn(*args), None
            except Exception as exc:  # noqa: BLE001 - compared below
                return None, exc


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _flat(item)]
    return [out]


def _tolerance(dtype):
    # float64 gets 1e-7: a few PyTorch float64 kernels use float32 constants (hardsigmoid's 1/6).
    return {np.dtype(np.float16): (1e-2, 1e-2), np.dtype(np.float32): (1e-4, 1e-4),
            np.dtype(np.float64): (1e-7, 1e-9)}.get(np.dtype(dtype), (0, 0))


def _assert_same(s_out, t_out, what, tol_dtype=None):
    for i, (s, t) in enumerate(zip(_flat(s_out), _flat(t_out))):
        got = s.array if isinstance(s, somanet.Tensor) else np.asarray(s)
        want = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        assert got.dtype == want.dtype, f"{what} output {i}: dtype {got.dtype}, PyTorch {want.dtype}"
        assert got.shape == want.shape, f"{what} output {i}: shape {got.shape}, PyTorch {want.shape}"
        rtol, atol = _tolerance(want.dtype if tol_dtype is None else tol_dtype)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                                       atol=atol, equal_nan=True, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{what} output {i}")


def check(what, s_fn, t_fn, s_args, t_args, grad_inputs=(), grad_tol_dtype=None):
    """Run both; compare outcomes. ``grad_inputs``: (somanet tensor, torch tensor) pairs whose gradients
    are compared after backpropagating the same cotangent through the first floating output, with the
    tolerance of ``grad_tol_dtype`` when given (PyTorch computes some gradient terms in the dtype of a
    lower-precision operand)."""
    __tracebackhide__ = True
    t_out, t_exc = _run(t_fn, *t_args)
    s_out, s_exc = _run(s_fn, *s_args)
    if t_exc is not None:
        assert s_exc is not None, f"{what}: PyTorch raises {type(t_exc).__name__}: {t_exc}; somanet does not"
        return
    assert s_exc is None, f"{what}: somanet raises {type(s_exc).__name__}: {s_exc}; PyTorch does not"
    assert len(_flat(s_out)) == len(_flat(t_out)), what
    _assert_same(s_out, t_out, what)
    if not grad_inputs:
        return
    s_first, t_first = _flat(s_out)[0], _flat(t_out)[0]
    if not (isinstance(t_first, torch.Tensor) and t_first.requires_grad):
        return
    cot = np.random.default_rng(0).standard_normal(tuple(t_first.shape)).astype(t_first.detach().numpy().dtype)
    _, t_exc = _run(lambda: t_first.backward(torch.tensor(cot)))
    if t_exc is not None:
        return
    _, s_exc = _run(lambda: s_first.backward(somanet.tensor(cot)))
    assert s_exc is None, f"{what}: somanet backward raises {type(s_exc).__name__}: {s_exc}"
    for k, (s_in, t_in) in enumerate(grad_inputs):
        if t_in.grad is None:
            assert s_in.grad is None or not np.any(s_in.grad.array), f"{what}: somanet has a gradient for input {k}"
            continue
        assert s_in.grad is not None, f"{what}: somanet has no gradient for input {k}"
        _assert_same(s_in.grad, t_in.grad, f"{what} gradient of input {k}", grad_tol_dtype)


def _pair(arr, requires_grad=False):
    rg = requires_grad and arr.dtype.kind == "f" and arr.dtype != np.float16
    return somanet.tensor(arr.copy(), requires_grad=rg), torch.tensor(arr.copy(), requires_grad=rg)


# --------------------------------------------------------------------------- elementwise unary ops
F = somanet.nn.functional
TF = torch.nn.functional
UNARY = {
    "expm1": (torch.expm1, somanet.expm1, None), "log1p": (torch.log1p, somanet.log1p, (0.0, 8.0)),
    "rsqrt": (torch.rsqrt, somanet.rsqrt, (0.05, 8.0)), "reciprocal": (torch.reciprocal, somanet.reciprocal, None),
    "cos": (torch.cos, somanet.cos, None), "ceil": (torch.ceil, somanet.ceil, None),
    "trunc": (torch.trunc, somanet.trunc, None), "round": (torch.round, somanet.round, None),
    "isinf": (torch.isinf, somanet.isinf, None), "isfinite": (torch.isfinite, somanet.isfinite, None),
    "logsigmoid": (TF.logsigmoid, F.logsigmoid, None), "hardswish": (TF.hardswish, F.hardswish, None),
    "hardsigmoid": (TF.hardsigmoid, F.hardsigmoid, None), "mish": (TF.mish, F.mish, None),
    "selu": (TF.selu, F.selu, None), "celu": (TF.celu, F.celu, None), "softsign": (TF.softsign, F.softsign, None),
    "hardtanh": (TF.hardtanh, F.hardtanh, None), "relu6": (TF.relu6, F.relu6, None),
    "tanhshrink": (TF.tanhshrink, F.tanhshrink, None), "softshrink": (TF.softshrink, F.softshrink, None),
    "hardshrink": (TF.hardshrink, F.hardshrink, None),
    "gelu_tanh": (lambda x: TF.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), None),
    "exp": (torch.exp, somanet.exp, None), "tanh": (torch.tanh, somanet.tanh, None),
    "sigmoid": (torch.sigmoid, somanet.sigmoid, None), "abs": (torch.abs, somanet.abs, None),
    "neg": (torch.neg, somanet.neg, None), "sin": (torch.sin, somanet.sin, None),
    "erf": (torch.erf, somanet.erf, None), "square": (torch.square, somanet.square, None),
    "log": (torch.log, somanet.log, (0.05, 8.0)), "sqrt": (torch.sqrt, somanet.sqrt, (0.05, 8.0)),
    "relu": (torch.nn.functional.relu, somanet.nn.functional.relu, None),
    "gelu": (torch.nn.functional.gelu, somanet.nn.functional.gelu, None),
    "silu": (torch.nn.functional.silu, somanet.nn.functional.silu, None),
    "elu": (torch.nn.functional.elu, somanet.nn.functional.elu, None),
    "softplus": (torch.nn.functional.softplus, somanet.nn.functional.softplus, None),
    "leaky_relu": (torch.nn.functional.leaky_relu, somanet.nn.functional.leaky_relu, None),
    "floor": (torch.floor, somanet.floor, None), "sign": (torch.sign, somanet.sign, None),
    "logical_not": (torch.logical_not, somanet.logical_not, None), "isnan": (torch.isnan, somanet.isnan, None),
}
# somanet gives floor, ceil, trunc, round and sign no gradient at all, where PyTorch gives a zero one: their
# values are compared.
NO_GRAD = {"floor", "ceil", "trunc", "round", "sign", "logical_not", "isnan", "isinf", "isfinite"}
FLOAT_KERNELS_ONLY = {"gelu", "gelu_tanh", "silu", "elu", "softplus", "leaky_relu", "logsigmoid", "hardswish",
                      "hardsigmoid", "mish", "selu", "celu", "softsign", "hardtanh", "relu6", "tanhshrink",
                      "softshrink", "hardshrink"}


@PROPERTY
@given(data=st.data(), name=st.sampled_from(sorted(UNARY)), dtype=st.sampled_from(DTYPES), shape=SHAPES,
       special=st.booleans())
def test_unary_ops_match_torch(data, name, dtype, shape, special):
    t_fn, s_fn, domain = UNARY[name]
    low, high = domain if domain else (None, None)
    arr = _array(data.draw, shape, dtype, low=low if np.dtype(dtype).kind == "f" else (1 if domain else None),
                 high=high, special=special and not domain)
    s, t = _pair(arr, requires_grad=name not in NO_GRAD)
    if np.dtype(dtype).kind != "f" and name in FLOAT_KERNELS_ONLY:
        return  # PyTorch has no integer kernels for these
    if special and name in ("softsign", "hardswish", "elu", "selu", "celu", "hardshrink", "softshrink", "hardtanh",
                            "relu6"):
        # PyTorch's gradients at +-inf or NaN are conventions here: softsign's is NaN at inf, and the others
        # send NaN to one branch in their vectorised loop and to the other in their scalar one, so that the
        # gradient at a NaN depends on the tensor's size and the NaN's position. Values are compared.
        s, t = _pair(arr)
    if special and name == "gelu" and dtype != "float64":
        return  # PyTorch's float32 exact GELU gives NaN at +inf (somanet: inf, the limit)
    check(f"{name}({dtype}{shape})", s_fn, t_fn, (s,), (t,), grad_inputs=[(s, t)] if s.requires_grad else ())


# --------------------------------------------------------------------------- binary ops and promotion
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "pow": lambda a, b: a ** b, "eq": lambda a, b: a == b, "lt": lambda a, b: a < b, "ge": lambda a, b: a >= b,
}


@st.composite
def operand(draw, shape, divisor=False, exponent=False):
    """('tensor', array) with the given shape or a 0-d one, or ('scalar', Python bool/int/float)."""
    kind = draw(st.sampled_from(["tensor", "tensor", "zero_dim", "scalar"]))
    if kind == "scalar":
        if exponent:
            return "scalar", draw(st.one_of(st.integers(0, 3), st.sampled_from([0.5, 2.0, 3.0])))
        value = draw(st.one_of(st.booleans(), st.integers(-300, 300), st.floats(-8, 8, width=32)))
        if divisor and value == 0:
            value = 3
        return "scalar", value
    dtype = draw(st.sampled_from(DTYPES))
    if exponent:
        arr = _array(draw, shape if kind == "tensor" else (), dtype, low=0, high=3)
    else:
        arr = _array(draw, shape if kind == "tensor" else (), dtype, nonzero=divisor)
    return "tensor", arr


def _operands(item, requires_grad):
    kind, value = item
    if kind == "scalar":
        return value, value, None
    s, t = _pair(value, requires_grad)
    return s, t, (s, t) if s.requires_grad else None


@PROPERTY
@given(data=st.data(), name=st.sampled_from(sorted(BINARY)),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3))
def test_binary_ops_promote_and_broadcast_like_torch(data, name, shapes):
    fn = BINARY[name]
    lhs = data.draw(operand(shapes.input_shapes[0]))
    rhs = data.draw(operand(shapes.input_shapes[1], divisor=name in ("floordiv", "mod", "truediv"),
                            exponent=name == "pow"))
    if lhs[0] == "scalar" and rhs[0] == "scalar":
        lhs = ("tensor", np.asarray(np.float32(lhs[1]) if isinstance(lhs[1], float) else lhs[1]).reshape(()))
    if name == "pow" and lhs[0] == "scalar" and isinstance(lhs[1], int) and not isinstance(lhs[1], bool):
        lhs = ("scalar", abs(lhs[1]) % 5)  # an integer base to tensor exponents: no negative bases
    if name == "pow" and lhs[0] == "tensor" and lhs[1].dtype.kind == "f":
        # PyTorch takes x ** 0.5 as sqrt(x), whose gradient at -0.0 is -inf (pow's is +inf): no -0.0 bases.
        lhs = ("tensor", lhs[1] + np.zeros((), lhs[1].dtype))
    if name in ("floordiv", "mod") and any(k == "scalar" and isinstance(v, float) for k, v in (lhs, rhs)) and any(
            k == "tensor" and v.dtype == np.float16 for k, v in (lhs, rhs)):
        return  # PyTorch's float16 kernels keep a Python float unrounded in some ops (floor_divide) only
    grad = name not in ("floordiv", "mod", "eq", "lt", "ge")
    sa, ta, ga = _operands(lhs, grad)
    sb, tb, gb = _operands(rhs, grad)
    if name == "pow" and isinstance(ta, torch.Tensor) and ta.dtype.is_floating_point:
        # Negative bases to fractional powers give NaN in both; keep the gradient comparison meaningful.
        pass
    half = any(kind == "tensor" and value.dtype == np.float16 for kind, value in (lhs, rhs))
    check(f"{name}({lhs}, {rhs})", fn, fn, (sa, sb), (ta, tb), grad_inputs=[g for g in (ga, gb) if g],
          grad_tol_dtype=np.float16 if half else None)


@PROPERTY
@given(data=st.data(),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=3),
       name=st.sampled_from(["where", "maximum", "minimum"]))
def test_where_maximum_minimum_promote_like_torch(data, shapes, name):
    a = data.draw(operand(shapes.input_shapes[1]))
    b = data.draw(operand(shapes.input_shapes[2]))
    if name != "where":  # PyTorch's maximum/minimum take tensors only
        a = a if a[0] == "tensor" else ("tensor", np.asarray(a[1]))
        b = b if b[0] == "tensor" else ("tensor", np.asarray(b[1]))
        if isinstance(a[1], np.ndarray) and a[1].dtype == np.float64 and a[1].ndim == 0:
            pass
    sa, ta, ga = _operands(a, True)
    sb, tb, gb = _operands(b, True)
    grads = [g for g in (ga, gb) if g]
    if name == "where":
        cond = data.draw(hnp.arrays(np.bool_, shapes.input_shapes[0]))
        check(f"where({cond.shape}, {a}, {b})", somanet.where, torch.where, (somanet.tensor(cond), sa, sb),
              (torch.tensor(cond), ta, tb), grad_inputs=grads)
    else:
        check(f"{name}({a}, {b})", getattr(somanet, name), getattr(torch, name), (sa, sb), (ta, tb),
              grad_inputs=grads)


# --------------------------------------------------------------------------- reductions
REDUCTIONS = ["sum", "mean", "prod", "amax", "amin", "var", "std", "logsumexp", "argmax", "argmin", "all", "any",
              "max", "min", "softmax", "log_softmax", "cumsum", "cumprod", "count_nonzero", "norm"]
ONE_DIM = {"prod", "argmax", "argmin", "max", "min", "softmax", "log_softmax", "cumsum", "cumprod"}
NEEDS_DIM = {"softmax", "log_softmax", "cumsum", "cumprod", "logsumexp"}
NO_KEEPDIM = {"softmax", "log_softmax", "cumsum", "cumprod", "count_nonzero"}


@st.composite
def reduction_args(draw, name, ndim):
    nd = max(ndim, 1)
    one = st.integers(-nd, nd - 1)
    if name in ONE_DIM:
        dim = draw(one) if name in NEEDS_DIM else draw(st.one_of(st.none(), one))
    else:
        # torch.norm takes a 3-tuple dim for its matrix norms only (and refuses it): at most two dims there.
        most = min(nd, 2) if name == "norm" else nd
        several = st.lists(st.integers(0, nd - 1), min_size=1, max_size=most, unique=True).map(tuple)
        choices = [one, several] if name in NEEDS_DIM else [st.none(), one, several]
        dim = draw(st.one_of(*choices))
        if ndim == 0 and isinstance(dim, tuple):
            dim = dim[0]
    kwargs = {}
    if dim is not None:
        kwargs["dim"] = dim
        if name not in NO_KEEPDIM:
            kwargs["keepdim"] = draw(st.booleans())
    return kwargs


@PROPERTY
@given(data=st.data(), name=st.sampled_from(REDUCTIONS), dtype=st.sampled_from(DTYPES), shape=SHAPES,
       special=st.booleans())
def test_reductions_match_torch(data, name, dtype, shape, special):
    arr = _array(data.draw, shape, dtype, special=special)
    kwargs = data.draw(reduction_args(name, len(shape)))
    # Gradients through infinities and NaN are conventions (inf * 0, 0 / 0) for these; compare values there.
    conventional = special and name in ("var", "std", "prod", "cumprod", "norm", "logsumexp", "softmax",
                                        "log_softmax")
    s, t = _pair(arr, requires_grad=name not in ("argmax", "argmin", "all", "any", "count_nonzero")
                 and not conventional)
    s_fn, t_fn = getattr(somanet, name), getattr(torch, name)
    if name in ("all", "any") and dtype == "uint8":
        return  # PyTorch keeps uint8 for all/any of uint8 (a legacy rule); somanet returns bool
    if name == "norm" and np.dtype(dtype).kind != "f":
        return
    if name in ("softmax", "log_softmax") and np.dtype(dtype).kind != "f" and arr.size == 0:
        return  # PyTorch skips its dtype check for empty inputs
    check(f"{name}({dtype}{shape}, {kwargs})", lambda x: s_fn(x, **kwargs), lambda x: t_fn(x, **kwargs), (s,), (t,),
          grad_inputs=[(s, t)] if s.requires_grad else ())


# --------------------------------------------------------------------------- indexing
@st.composite
def basic_index(draw, shape):
    """A tuple of ints, positive-step slices, None and at most one Ellipsis that is valid for ``shape``."""
    items = []
    dim = 0
    used_ellipsis = False
    while dim < len(shape) and draw(st.booleans()):
        kind = draw(st.sampled_from(["int", "slice", "none", "ellipsis"]))
        if kind == "int" and shape[dim] > 0:
            items.append(draw(st.integers(-shape[dim], shape[dim] - 1)))
            dim += 1
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-5, 5)))
            stop = draw(st.one_of(st.none(), st.integers(-5, 5)))
            step = draw(st.one_of(st.none(), st.integers(1, 3)))
            items.append(slice(start, stop, step))
            dim += 1
        elif kind == "none":
            items.append(None)
        elif kind == "ellipsis" and not used_ellipsis:
            items.append(Ellipsis)
            used_ellipsis = True
            dim = len(shape)  # the ellipsis takes the dims not named after it; stop here
    return tuple(items)


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(["float32", "float64", "int64", "bool"]), shape=SHAPES)
def test_indexing_matches_torch(data, dtype, shape):
    arr = _array(data.draw, shape, dtype)
    s, t = _pair(arr, requires_grad=True)
    kind = data.draw(st.sampled_from(["basic", "mask", "ints"]))
    if kind == "basic":
        idx = data.draw(basic_index(shape))
        s_idx = t_idx = idx
    elif kind == "mask":
        mask = data.draw(hnp.arrays(np.bool_, shape))
        s_idx, t_idx = somanet.tensor(mask), torch.tensor(mask)
    else:
        if not shape or shape[0] == 0:
            return
        ints = data.draw(hnp.arrays(np.int64, data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0,
                                                                           max_side=4)),
                                    elements=st.integers(-shape[0], shape[0] - 1)))
        s_idx, t_idx = somanet.tensor(ints), torch.tensor(ints)
    check(f"index {dtype}{shape}[{kind}]", lambda x: x[s_idx], lambda x: x[t_idx], (s,), (t,),
          grad_inputs=[(s, t)] if s.requires_grad else ())


def test_property_settings_are_ci_sized():
    # CI runs the derandomized default; a long search sets SOMANET_PROPERTY_EXAMPLES.
    assert EXAMPLES is None or EXAMPLES > 0
    assert math.isfinite(PROPERTY.max_examples)
