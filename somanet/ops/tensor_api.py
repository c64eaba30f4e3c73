"""Tensor conveniences and dtype helpers of PyTorch's API: ``x.new_zeros(...)`` and friends, strides and
storage queries, ``apply_``/``map_``, the legacy constructors ``FloatTensor(...)``, ``result_type``,
``promote_types``, ``can_cast``, ``finfo``/``iinfo``, ``compile`` (which returns its argument), and the
stubs of the Tensor methods somanet does not implement, which raise ``NotImplementedError``.
"""
import builtins

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, _wrap
from ._util import ensure_tensor, install

__all__ = [
    "is_floating_point", "is_complex", "is_nonzero", "numel", "result_type", "promote_types", "can_cast", "finfo",
    "iinfo", "set_printoptions", "get_printoptions", "compile", "poisson", "FloatTensor", "DoubleTensor",
    "HalfTensor", "LongTensor", "IntTensor", "ShortTensor", "ByteTensor", "CharTensor", "BoolTensor",
    "is_storage", "typename",
]


def _sizes(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        return tuple(builtins.int(s) for s in size)
    except TypeError:
        raise TypeError(f"{op}(): size must be ints or one tuple of ints, got {size!r}") from None


def _finish(arr, requires_grad):
    t = _wrap(arr, False, None, 0)
    if requires_grad:
        t.requires_grad_(True)
    return t


# --------------------------------------------------------------------------- x.new_*
def _new_dtype(self, dtype):
    return self.array.dtype if dtype is None else backend.to_dtype(dtype)


def new_zeros(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    """Zeros of ``size``, with this tensor's dtype unless ``dtype`` is given."""
    return _finish(np.zeros(_sizes(size, "new_zeros"), _new_dtype(self, dtype)), requires_grad)


def new_ones(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    """Ones of ``size``, with this tensor's dtype unless ``dtype`` is given."""
    return _finish(np.ones(_sizes(size, "new_ones"), _new_dtype(self, dtype)), requires_grad)


def new_empty(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    """An uninitialised tensor of ``size``, with this tensor's dtype unless ``dtype`` is given."""
    return _finish(np.empty(_sizes(size, "new_empty"), _new_dtype(self, dtype)), requires_grad)


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None,
             pin_memory=False):
    """``size`` filled with ``fill_value``, with this tensor's dtype unless ``dtype`` is given."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _finish(np.full(_sizes((size,), "new_full"), fill_value, _new_dtype(self, dtype)), requires_grad)


def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    """A copy of ``data`` as a tensor with this tensor's dtype unless ``dtype`` is given."""
    if isinstance(data, Tensor):
        data = data.array
    elif isinstance(data, (list, tuple)):
        data = [d.array if isinstance(d, Tensor) else d for d in data]
    arr = np.array(data, copy=True)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"new_tensor(): cannot make a tensor from {type(data).__name__} with dtype {arr.dtype}")
    target = _new_dtype(self, dtype)
    if target.kind in "iu" and arr.dtype.kind == "f":
        arr = np.trunc(arr)
    return _finish(arr.astype(target, copy=False), requires_grad)


# --------------------------------------------------------------------------- queries
def _stride(self, dim=None):
    """Elements to step in memory per index of each dim (NumPy's byte strides divided by the item size)."""
    item = self.array.itemsize
    strides = tuple(s // item for s in self.array.strides)
    if dim is None:
        return strides
    return strides[dim]


def _base_of(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _storage_offset(self):
    """Where this tensor's first element sits in the memory it shares with its base, in elements."""
    a = self.array
    base = _base_of(a)
    if base is a or a.size == 0:
        return 0
    return (a.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // a.itemsize


def _data_ptr(self):
    """The address of the first element."""
    return self.array.__array_interface__["data"][0]


def _ndimension(self):
    return self.array.ndim


def _type_as(self, other):
    """This tensor cast to ``other``'s dtype."""
    return self.to(other.array.dtype)


def _cast_method(name, dtype):
    def method(self, memory_format=None):
        return self.to(dtype)

    method.__name__ = name
    method.__doc__ = f"This tensor as {np.dtype(dtype)} (itself if it already is)."
    return method


def _is_nonzero_method(self):
    return is_nonzero(self)


def _is_complex_method(self):
    return self.array.dtype.kind == "c"


def _apply_(self, callable):  # noqa: A002 - PyTorch's name
    """Replace every element by ``callable(element)`` in place (slow: one Python call per element)."""
    if self.requires_grad:
        raise RuntimeError("apply_(): can't call apply_() on a tensor that requires grad")
    flat = self.array.reshape(-1)
    out = np.fromiter((callable(v) for v in flat.tolist()), dtype=self.array.dtype, count=flat.size)
    self.array[...] = out.reshape(self.array.shape)
    self._version[0] += 1
    return self


def _map_(self, tensor, callable):  # noqa: A002
    """``self[i] = callable(self[i], tensor[i])`` for every element, in place (``tensor`` broadcasts)."""
    if self.requires_grad:
        raise RuntimeError("map_(): can't call map_() on a tensor that requires grad")
    other = np.broadcast_to(ensure_tensor(tensor).array, self.array.shape)
    out = np.fromiter((callable(a, b) for a, b in zip(self.array.reshape(-1).tolist(), other.reshape(-1).tolist())),
                      dtype=self.array.dtype, count=self.array.size)
    self.array[...] = out.reshape(self.array.shape)
    self._version[0] += 1
    return self


def _pin_memory(self, device=None):
    """This tensor (CPU memory needs no pinning here)."""
    return self


def _is_pinned(self, device=None):
    return False


def _share_memory_(self):
    """This tensor (somanet's worker processes receive copies; nothing to prepare)."""
    return self


def _is_shared(self):
    return False


def _resize_(self, *sizes, memory_format=None):
    """Give this tensor the shape ``sizes``, keeping the leading elements in order (new ones are
    uninitialised)."""
    shape = _sizes(sizes, "resize_")
    if self.requires_grad:
        raise RuntimeError("resize_(): cannot resize variables that require grad")
    n = builtins.int(np.prod(shape))
    flat = self.array.reshape(-1)
    if n <= flat.size:
        new = flat[:n].copy().reshape(shape)
    else:
        new = np.empty(n, self.array.dtype)
        new[:flat.size] = flat
        new = new.reshape(shape)
    self.array = new
    self._version[0] += 1
    return self


def _resize_as_(self, other, memory_format=None):
    return _resize_(self, other.array.shape)


def _masked_scatter(self, mask, source):
    """A copy with the positions where ``mask`` is True filled, in order, from the leading elements of
    ``source``; differentiable."""
    from . import elementwise as E
    from . import shape as S

    m = np.broadcast_to(ensure_tensor(mask).array.astype(bool), np.broadcast_shapes(self.array.shape,
                                                                                ensure_tensor(mask).array.shape))
    x = self if self.array.shape == m.shape else S.broadcast_to(self, m.shape)
    n = builtins.int(m.sum())
    src = S.reshape(ensure_tensor(source), (-1,))
    if src.array.size < n:
        raise RuntimeError(f"masked_scatter(): the source has {src.array.size} elements, the mask selects {n}")
    pos = np.zeros(m.shape, np.int64)
    pos[m] = np.arange(n)
    picked = S.reshape(src[Tensor(pos.reshape(-1))], m.shape)
    return E.where(Tensor(m.copy()), picked, x)


def _masked_scatter_(self, mask, source):
    """In-place ``masked_scatter``."""
    from .index import _inplace

    def array_op(data):
        m = np.broadcast_to(ensure_tensor(mask).array.astype(bool), data.shape)
        data[m] = ensure_tensor(source).array.reshape(-1)[:builtins.int(m.sum())]

    return _inplace(self, "masked_scatter_", array_op, lambda old: _masked_scatter(old, mask, source), source)


def _bernoulli_method(self, p=None, *, generator=None):
    from .creation import bernoulli

    return bernoulli(self, p, generator=generator) if p is not None else bernoulli(self, generator=generator)


def _multinomial_method(self, num_samples, replacement=False, *, generator=None):
    from .creation import multinomial

    return multinomial(self, num_samples, replacement, generator=generator)


def _poisson_method(self, generator=None):
    return poisson(self, generator)


def _dim_order(self):
    """The dims from the outermost to the innermost in memory."""
    return tuple(builtins.sorted(range(self.array.ndim), key=lambda d: -builtins.abs(self.array.strides[d])))


def _nbytes(self):
    return self.array.nbytes


# --------------------------------------------------------------------------- module functions
def is_floating_point(input):
    """True if ``input`` has a floating dtype."""
    return ensure_tensor(input).array.dtype.kind == "f"


def is_complex(input):
    """True if ``input`` has a complex dtype (never, for somanet's tensors)."""
    return ensure_tensor(input).array.dtype.kind == "c"


def is_nonzero(input):
    """The truth of a one-element tensor (an error for other sizes, as in PyTorch)."""
    t = ensure_tensor(input)
    if t.array.size != 1:
        if t.array.size == 0:
            raise RuntimeError("is_nonzero(): boolean value of a tensor with no values is ambiguous")
        raise RuntimeError(f"is_nonzero(): boolean value of a tensor with {t.array.size} values is ambiguous")
    return builtins.bool(t.array.reshape(-1)[0])


def numel(input):
    """The number of elements of ``input``."""
    return ensure_tensor(input).array.size


def is_storage(obj):
    """False: somanet tensors have no separate storage objects."""
    return False


def typename(obj):
    """The legacy type name of a tensor (``'somanet.FloatTensor'``), or the Python type's name."""
    if isinstance(obj, Tensor):
        return f"somanet.{_LEGACY_NAMES.get(obj.array.dtype, str(obj.array.dtype))}"
    return type(obj).__module__ + "." + type(obj).__qualname__


def _operand_array(x):
    if isinstance(x, Tensor):
        return x.array
    if isinstance(x, (builtins.bool, builtins.int, builtins.float)):
        return x
    return backend.as_array(x)


def result_type(tensor1, tensor2):
    """The dtype an arithmetic op on the two operands (tensors or numbers) gives, by PyTorch's rules."""
    return backend.result_type(_operand_array(tensor1), _operand_array(tensor2))


def promote_types(type1, type2):
    """The smallest dtype both dtypes convert to without losing their category (``int32, float16 ->
    float16``)."""
    return backend.promote_types(backend.to_dtype(type1), backend.to_dtype(type2))


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def can_cast(from_, to):
    """Whether PyTorch's casting rules allow ``from_`` to become ``to`` in an op's output: never down a
    category (float to integer, integer to bool)."""
    return _KIND_RANK[backend.to_dtype(from_).kind] <= _KIND_RANK[backend.to_dtype(to).kind]


class _FloatInfo:
    """The limits of a floating dtype as Python floats (PyTorch's ``finfo``)."""

    def __init__(self, dtype):
        info = np.finfo(dtype)
        self.dtype = str(np.dtype(dtype))
        self.bits = builtins.int(info.bits)
        self.eps = builtins.float(info.eps)
        self.max = builtins.float(info.max)
        self.min = builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.smallest_normal)
        self.resolution = 10.0 ** -builtins.int(info.precision)

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


def finfo(type=None):  # noqa: A002
    """Limits of a floating dtype (``eps``, ``max``, ``min``, ``tiny``, ``smallest_normal``,
    ``resolution``, ``bits``); the default float dtype when none is given."""
    d = backend.default_float if type is None else backend.to_dtype(type)
    if d.kind != "f":
        raise TypeError(f"finfo(): expected a floating point dtype, got {d}")
    return _FloatInfo(d)


def iinfo(type):  # noqa: A002
    """Limits of an integer dtype (``min``, ``max``, ``bits``)."""
    d = backend.to_dtype(type)
    if d.kind not in "iub":
        raise TypeError(f"iinfo(): expected an integer dtype, got {d}")
    if d.kind == "b":
        raise TypeError("iinfo(): bool is not an integer dtype")
    return np.iinfo(d)


_PRINT_OPTIONS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "profile": "default",
                  "sci_mode": None}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Record PyTorch's print options (accepted so that programs run; somanet prints tensors with 4
    digits whatever they say). ``get_printoptions()`` returns them."""
    for key, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                       ("linewidth", linewidth), ("profile", profile)):
        if value is not None:
            _PRINT_OPTIONS[key] = value
    _PRINT_OPTIONS["sci_mode"] = sci_mode


def get_printoptions():
    """The print options last given to ``set_printoptions``."""
    return dict(_PRINT_OPTIONS)


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,  # noqa: A001
            disable=False):
    """``model`` itself: somanet runs eagerly and has no compiler, so compiling changes nothing. Works as a
    decorator too, with or without arguments."""
    if model is None:
        return lambda fn: fn
    return model


def poisson(input, generator=None):
    """Draws from Poisson distributions with the rates in ``input`` (same shape and dtype)."""
    from ..random import numpy_rng

    rates = ensure_tensor(input).array
    rng = numpy_rng(generator)
    return _wrap(rng.poisson(rates).astype(rates.dtype), False, None, 0)


# --------------------------------------------------------------------------- legacy constructors
_LEGACY_NAMES = {np.dtype(np.float32): "FloatTensor", np.dtype(np.float64): "DoubleTensor",
                 np.dtype(np.float16): "HalfTensor", np.dtype(np.int64): "LongTensor",
                 np.dtype(np.int32): "IntTensor", np.dtype(np.int16): "ShortTensor",
                 np.dtype(np.uint8): "ByteTensor", np.dtype(np.int8): "CharTensor", np.dtype(np.bool_): "BoolTensor"}


class _LegacyConstructor:
    """PyTorch's typed constructors: ``FloatTensor(2, 3)`` is uninitialised memory of that shape,
    ``FloatTensor([1, 2])`` a copy of the data in the type's dtype. ``.dtype`` names the dtype, so
    ``x.type(somanet.FloatTensor)`` and ``x.to(somanet.LongTensor.dtype)`` work."""

    def __init__(self, name, dtype):
        self.__name__ = self.__qualname__ = name
        self.dtype = np.dtype(dtype)

    def __call__(self, *args, device=None):
        if not args:
            return _wrap(np.empty((0,), self.dtype), False, None, 0)
        first = args[0]
        if len(args) > 1 or (type(first) is builtins.int) or isinstance(first, np.integer):
            return _wrap(np.empty(_sizes(args, self.__name__), self.dtype), False, None, 0)
        if isinstance(first, Tensor):
            first = first.array
        elif isinstance(first, (list, tuple)):
            first = [d.array if isinstance(d, Tensor) else d for d in first]
        arr = np.array(first, copy=True)
        if arr.dtype.kind == "f" and self.dtype.kind in "iu":
            arr = np.trunc(arr)
        return _wrap(arr.astype(self.dtype, copy=False), False, None, 0)

    def __repr__(self):
        return f"<class 'somanet.{self.__name__}'>"


FloatTensor = _LegacyConstructor("FloatTensor", np.float32)
DoubleTensor = _LegacyConstructor("DoubleTensor", np.float64)
HalfTensor = _LegacyConstructor("HalfTensor", np.float16)
LongTensor = _LegacyConstructor("LongTensor", np.int64)
IntTensor = _LegacyConstructor("IntTensor", np.int32)
ShortTensor = _LegacyConstructor("ShortTensor", np.int16)
ByteTensor = _LegacyConstructor("ByteTensor", np.uint8)
CharTensor = _LegacyConstructor("CharTensor", np.int8)
BoolTensor = _LegacyConstructor("BoolTensor", np.bool_)
_LEGACY = {c.__name__: c for c in (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor, ShortTensor,
                                   ByteTensor, CharTensor, BoolTensor)}


def _type(self, dtype=None, non_blocking=False, **kwargs):
    """Without an argument, the legacy type name (``'somanet.FloatTensor'``); with a dtype, a legacy
    constructor or its name (``'torch.LongTensor'`` works too), this tensor cast to it."""
    if dtype is None:
        return typename(self)
    if isinstance(dtype, str) and dtype.rsplit(".", 1)[-1] in _LEGACY:
        dtype = _LEGACY[dtype.rsplit(".", 1)[-1]].dtype
    return self.to(backend.to_dtype(dtype))


# --------------------------------------------------------------------------- unimplemented Tensor methods
#: Tensor methods of PyTorch that somanet refuses: calling one raises NotImplementedError naming it.
UNIMPLEMENTED_METHODS = (
    "stft", "istft", "lu", "lu_solve", "geqrf", "ormqr", "nonzero_static", "to_sparse_csr", "to_sparse_csc",
    "to_sparse_bsr", "to_mkldnn", "record_stream", "storage", "untyped_storage", "set_", "q_scale", "q_zero_point",
    "int_repr", "dequantize", "align_to", "refine_names", "rename", "imag",
)


def _refuse(name):
    def method(self, *args, **kwargs):
        raise NotImplementedError(f"somanet does not implement torch.Tensor.{name} yet")

    method.__name__ = name
    method.__doc__ = f"Not implemented in somanet: raises NotImplementedError (PyTorch's ``Tensor.{name}``)."
    return method


def _sparse_only(name):
    def method(self, *args, **kwargs):
        raise RuntimeError(f"{name}(): expected a sparse tensor (from sparse_coo_tensor() or to_sparse()), got a "
                           f"dense one")

    method.__name__ = name
    method.__doc__ = f"Sparse tensors only (``SparseTensor.{name}``): a dense tensor raises RuntimeError."
    return method


def _aminmax_method(self, *, dim=None, keepdim=False):
    from .reduce import aminmax

    return aminmax(self, dim=dim, keepdim=keepdim)


install(
    coalesce=_sparse_only("coalesce"), indices=_sparse_only("indices"), values=_sparse_only("values"),
    _indices=_sparse_only("_indices"), _values=_sparse_only("_values"), _nnz=_sparse_only("_nnz"),
    aminmax=_aminmax_method,
)
install(
    new_zeros=new_zeros, new_ones=new_ones, new_empty=new_empty, new_full=new_full, new_tensor=new_tensor,
    stride=_stride, storage_offset=_storage_offset, data_ptr=_data_ptr, ndimension=_ndimension, type_as=_type_as,
    byte=_cast_method("byte", np.uint8), char=_cast_method("char", np.int8), short=_cast_method("short", np.int16),
    is_nonzero=_is_nonzero_method, is_complex=_is_complex_method, apply_=_apply_, map_=_map_,
    pin_memory=_pin_memory, is_pinned=_is_pinned, share_memory_=_share_memory_, is_shared=_is_shared,
    resize_=_resize_, resize_as_=_resize_as_, masked_scatter=_masked_scatter, masked_scatter_=_masked_scatter_,
    bernoulli=_bernoulli_method, multinomial=_multinomial_method, poisson=_poisson_method, dim_order=_dim_order,
    type=_type,
)
install(**{name: _refuse(name) for name in UNIMPLEMENTED_METHODS if not hasattr(Tensor, name)})
Tensor.nbytes = property(_nbytes)
