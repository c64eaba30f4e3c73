"""In-place Tensor methods (``x.exp_()``, ``x += y``, ``x.unsqueeze_(0)``, ``x.uniform_()``) with PyTorch's rules.

Every method here goes through ``index._inplace``, which holds the autograd rules: a leaf that requires
grad cannot change while grad mode is on; without a graph to record the array changes in place and the
version counter moves on; with one, the op runs out of place and the tensor takes over the result.

PyTorch's casting rule for in-place ops holds too: the result may narrow within its kind (float64 into
float32, int64 into uint8, wrapping) but never move down a kind (a float result into an integer tensor,
an integer result into a bool tensor), which raises instead of truncating silently.
"""
import numpy as np

from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from ..random import numpy_rng
from . import elementwise as E
from . import shape as S
from .index import CopyFrom, _inplace, _raw_keep, index_add, index_copy, index_fill
from ._util import as_operand, install

# Kind order of PyTorch's promotion: bool < integer < floating < complex.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _check_cast(op, result_dtype, self_dtype):
    if _KIND_RANK[np.dtype(result_dtype).kind] > _KIND_RANK[np.dtype(self_dtype).kind]:
        raise RuntimeError(f"{op}(): result type {np.dtype(result_dtype)} can't be cast to the desired output type "
                           f"{np.dtype(self_dtype)} of the tensor it writes into")


def _operand_kind(x):
    """The dtype PyTorch's promotion would see for an operand, for the cast check only."""
    if isinstance(x, Tensor):
        return x.array.dtype
    if isinstance(x, bool):
        return np.dtype(np.bool_)
    if isinstance(x, int):
        return np.dtype(np.int64)
    if isinstance(x, float):
        return np.dtype(np.float32)
    return np.asarray(x).dtype


def _wrap_int(value, dtype):
    """A Python int brought into an integer dtype with wrap-around, as PyTorch does for ``uint8 += 300``."""
    if isinstance(value, int) and not isinstance(value, bool) and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            return np.array(value).astype(dtype)
    return value


def _from_op(name, fn, *, float_result=False):
    """An in-place method ``name`` that writes ``fn(self, *args, **kwargs)`` back into ``self``."""

    def method(self, *args, **kwargs):
        dtype = self.array.dtype
        if float_result and dtype.kind not in "fc":
            _check_cast(name, np.float32, dtype)
        for a in args:
            if isinstance(a, (Tensor, bool, int, float)):
                result_kind = _operand_kind(a)
                if _KIND_RANK[result_kind.kind] > _KIND_RANK[dtype.kind]:
                    _check_cast(name, result_kind, dtype)
        args = tuple(_wrap_int(a, dtype) for a in args)
        grad_other = next((a for a in list(args) + list(kwargs.values())
                           if isinstance(a, Tensor) and a.requires_grad), None)

        def array_op(data):
            res = fn(_wrap(data, False, None, 0), *(_raw_keep(a) for a in args),
                     **{k: _raw_keep(v) for k, v in kwargs.items()}).array
            _check_cast(name, res.dtype, data.dtype)
            if res.shape != data.shape:
                raise RuntimeError(f"{name}(): output with shape {tuple(data.shape)} doesn't match the broadcast "
                                   f"shape {tuple(res.shape)}")
            array_module(data).copyto(data, res, casting="unsafe")

        return _inplace(self, name, array_op, lambda old: fn(old, *args, **kwargs), grad_other)

    method.__name__ = name
    method.__doc__ = f"In-place version of ``{name[:-1]}``: writes the result into this tensor and returns it."
    return method


# --------------------------------------------------------------------------- Python's augmented assignment
def _augmented(name, method_name, float_result=False):
    """``__iadd__`` and friends: the in-place method, with PyTorch's cast check first."""

    def method(self, other):
        o = as_operand(other)
        _check_cast(name, _result_kind(self, o, float_result), self.array.dtype)
        return getattr(self, method_name)(_wrap_int(o, self.array.dtype))

    method.__name__ = name
    return method


def _result_kind(self, other, float_result):
    kind = _operand_kind(other)
    if _KIND_RANK[kind.kind] < _KIND_RANK[self.array.dtype.kind]:
        kind = self.array.dtype
    if float_result and kind.kind not in "fc":
        return np.dtype(np.float32)
    return kind


# --------------------------------------------------------------------------- shape changes in place
def _reshaping(name, fn):
    """An in-place view op (``unsqueeze_``, ``t_``): ``self`` takes the new shape and stays the same object."""

    def method(self, *args, **kwargs):
        from ..autograd import grad_mode

        if grad_mode._state.enabled and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"a leaf tensor that requires grad is being used in an in-place operation ({name}); "
                               f"wrap it in somanet.no_grad() or clone() it first")
        source = _wrap(self.array, self.requires_grad, self.grad_fn, self._out_index, self._version)
        result = fn(source, *args, **kwargs)
        self.array = result.array
        if result.grad_fn is not None:
            self.grad_fn = result.grad_fn
            self._out_index = result._out_index
        return self

    method.__name__ = name
    method.__doc__ = f"In-place version of ``{name[:-1]}``: changes this tensor's shape and returns it."
    return method


# --------------------------------------------------------------------------- random fills
def _random_fill(name, draw):
    """``uniform_``-style fills: values drawn by ``draw(rng, shape, dtype, *args)``; not differentiable."""

    def method(self, *args, generator=None, **kwargs):
        dtype = self.array.dtype
        values = draw(numpy_rng(generator), self.array.shape, dtype, *args, **kwargs)
        values = np.asarray(values).astype(dtype, copy=False)
        return _inplace(self, name, lambda data: array_module(data).copyto(data, values),
                        lambda old: CopyFrom.apply(old, values))

    method.__name__ = name
    return method


def _float_draw_dtype(dtype, op):
    if dtype.kind != "f":
        raise RuntimeError(f"{op}(): expects a floating point tensor, got dtype {dtype}")
    return np.float64 if dtype == np.float64 else np.float32


def _uniform(rng, shape, dtype, a=0.0, b=1.0):
    u = rng.random(shape, dtype=_float_draw_dtype(dtype, "uniform_"))
    return u * (b - a) + a


def _normal(rng, shape, dtype, mean=0.0, std=1.0):
    return rng.standard_normal(shape, dtype=_float_draw_dtype(dtype, "normal_")) * std + mean


def _log_normal(rng, shape, dtype, mean=1.0, std=2.0):
    return np.exp(_normal(rng, shape, dtype, mean, std))


def _exponential(rng, shape, dtype, lambd=1.0):
    if lambd <= 0:
        raise RuntimeError(f"exponential_(): expects lambd > 0, got {lambd}")
    return rng.standard_exponential(shape, dtype=_float_draw_dtype(dtype, "exponential_")) / lambd


def _cauchy(rng, shape, dtype, median=0.0, sigma=1.0):
    _float_draw_dtype(dtype, "cauchy_")
    return median + sigma * rng.standard_cauchy(shape)


def _geometric(rng, shape, dtype, p):
    if not 0 < p <= 1:
        raise RuntimeError(f"geometric_(): expects p in (0, 1], got {p}")
    return rng.geometric(p, shape)


def _bernoulli(rng, shape, dtype, p=0.5):
    probs = p.array if isinstance(p, Tensor) else np.asarray(p, dtype=np.float64)
    if np.any((probs < 0) | (probs > 1)):
        raise RuntimeError("bernoulli_(): expects probabilities in [0, 1]")
    return rng.random(shape) < probs


def _random(rng, shape, dtype, from_=0, to=None):
    if to is None:
        if dtype.kind == "f":
            to = 2 ** np.finfo(dtype).nmant + 1
        elif dtype.kind == "b":
            to = 2
        else:
            to = int(np.iinfo(dtype).max) + 1
        if from_ != 0 and to <= from_:
            raise RuntimeError(f"random_(): from={from_} is not below the dtype's range")
    if to <= from_:
        raise RuntimeError(f"random_(): expects from < to, got from={from_} and to={to}")
    return rng.integers(from_, to, size=shape)


# --------------------------------------------------------------------------- the method table
_UNARY = ("abs", "neg", "negative", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "sigmoid",
          "tanh", "relu", "sin", "cos", "tan", "floor", "ceil", "trunc", "reciprocal", "square", "sign", "erf")
_FLOAT_RESULT = {"exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "sigmoid", "tanh", "sin", "cos",
                 "tan", "reciprocal", "erf"}


def _methods():
    table = {}
    for name in _UNARY:
        fn = getattr(Tensor, name, None)
        if fn is not None:
            table[name + "_"] = _from_op(name + "_", fn, float_result=name in _FLOAT_RESULT)
    table.update(
        round_=_from_op("round_", E.round),
        clamp_min_=_from_op("clamp_min_", lambda x, min: E.clamp(x, min, None)),  # noqa: A006
        clamp_max_=_from_op("clamp_max_", lambda x, max: E.clamp(x, None, max)),  # noqa: A006
        nan_to_num_=_from_op("nan_to_num_", E.nan_to_num),
        pow_=_from_op("pow_", E.pow),
        floor_divide_=_from_op("floor_divide_", E.floor_divide),
        remainder_=_from_op("remainder_", E.remainder),
        fmod_=_from_op("fmod_", E.fmod),
        lerp_=_from_op("lerp_", E.lerp),
        addcmul_=_from_op("addcmul_", lambda x, t1, t2, value=1: E.add(x, E.mul(t1, t2), alpha=value)),
        addcdiv_=_from_op("addcdiv_", lambda x, t1, t2, value=1: E.add(x, E.div(t1, t2), alpha=value),
                          float_result=True),
        logical_not_=_from_op("logical_not_", E.logical_not),
        bitwise_and_=_from_op("bitwise_and_", lambda x, o: x & o),
        bitwise_or_=_from_op("bitwise_or_", lambda x, o: x | o),
        bitwise_xor_=_from_op("bitwise_xor_", lambda x, o: x ^ o),
        index_add_=_from_op("index_add_", index_add),
        index_copy_=_from_op("index_copy_", index_copy),
        index_fill_=_from_op("index_fill_", index_fill),
        unsqueeze_=_reshaping("unsqueeze_", S.unsqueeze),
        squeeze_=_reshaping("squeeze_", S.squeeze),
        t_=_reshaping("t_", S.t),
        transpose_=_reshaping("transpose_", S.transpose),
        swapdims_=_reshaping("swapdims_", S.swapdims),
        swapaxes_=_reshaping("swapaxes_", S.swapdims),
        uniform_=_random_fill("uniform_", _uniform),
        normal_=_random_fill("normal_", _normal),
        log_normal_=_random_fill("log_normal_", _log_normal),
        exponential_=_random_fill("exponential_", _exponential),
        cauchy_=_random_fill("cauchy_", _cauchy),
        geometric_=_random_fill("geometric_", _geometric),
        bernoulli_=_random_fill("bernoulli_", _bernoulli),
        random_=_random_fill("random_", _random),
        __iadd__=_augmented("__iadd__", "add_"),
        __isub__=_augmented("__isub__", "sub_"),
        __imul__=_augmented("__imul__", "mul_"),
        __itruediv__=_augmented("__itruediv__", "div_", float_result=True),
        __ifloordiv__=_augmented("__ifloordiv__", "floor_divide_"),
        __imod__=_augmented("__imod__", "remainder_"),
        __ipow__=_augmented("__ipow__", "pow_"),
        __iand__=_augmented("__iand__", "bitwise_and_"),
        __ior__=_augmented("__ior__", "bitwise_or_"),
        __ixor__=_augmented("__ixor__", "bitwise_xor_"),
    )
    return table


install(**_methods())
