"""A stand-in device for testing somanet's device plumbing on the CPU.

Its arrays (``StandinArray``) hold NumPy arrays but are a distinct type that behaves like CuPy's: NumPy
functions and operators work on them (``__array_ufunc__`` / ``__array_function__``) and give stand-in
arrays back, but an operand that is a plain NumPy array is refused, and so is any implicit conversion to
one (``np.asarray``, ``np.array``). Only ``asnumpy`` / ``.get()`` move data back to the host. An op that
quietly computes with NumPy, a missing ``.to(device)`` or a host/device mix therefore raises.

``standin`` is the array module (CuPy's interface: NumPy's functions plus ``ndarray``, ``asarray`` and
``asnumpy``), registered as device type ``standin`` with ``somanet.devices.register_device``.
"""
import types

import numpy as np


class HostDeviceMix(TypeError):
    """A NumPy (host) array met a stand-in array, or a stand-in array was converted to NumPy implicitly."""


def _describe(x):
    return f"a NumPy array of shape {x.shape} and dtype {x.dtype}"


def _unwrap(x, op):
    """``x`` with stand-in arrays replaced by their NumPy arrays; a plain NumPy array is refused."""
    kind = type(x)
    if kind is StandinArray:
        return x._a
    if isinstance(x, np.ndarray):
        raise HostDeviceMix(f"stand-in device: {op}() got {_describe(x)} (on the host) among arrays on the "
                            f"stand-in device")
    if kind is tuple or kind is list:
        return kind(_unwrap(v, op) for v in x)
    if kind is dict:
        return {k: _unwrap(v, op) for k, v in x.items()}
    return x


def _wrap(x):
    """NumPy results as stand-in arrays (0-d results too, as CuPy gives 0-d arrays, not scalars)."""
    if isinstance(x, np.ndarray):
        return StandinArray(x)
    if isinstance(x, np.generic):
        return StandinArray(np.asarray(x))
    if type(x) is tuple or type(x) is list:
        return type(x)(_wrap(v) for v in x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NumPy's linalg results (SlogdetResult, ...)
        return type(x)(*(_wrap(v) for v in x))
    return x


class _Device:
    """What ``StandinArray.device`` returns: CuPy's arrays answer ``.device.id`` too."""

    id = 0


class StandinArray(np.lib.mixins.NDArrayOperatorsMixin):
    """An array on the stand-in device (see the module docstring)."""

    __slots__ = ("_a",)
    __hash__ = None
    device = _Device()

    def __init__(self, array):
        self._a = array

    def __array_namespace__(self, api_version=None):
        return standin

    def get(self):
        """A NumPy copy on the host (CuPy's ``ndarray.get``)."""
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise HostDeviceMix(f"stand-in device: implicit conversion of a stand-in array of shape {self._a.shape} "
                            f"to a NumPy array; move it to the host explicitly")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs + tuple(kwargs.get("out", ())):
            if getattr(type(x), "__array_ufunc__", 0) is None:  # a Tensor: let its reflected operator run
                return NotImplemented
        op = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_unwrap(inputs, op), **_unwrap(kwargs, op))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args, func.__name__), **_unwrap(kwargs, func.__name__)))

    def __getattr__(self, name):
        if name.startswith("__"):  # NumPy's __array_interface__ and the like would hand out host memory
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):
            def method(*args, **kwargs):
                return _wrap(value(*_unwrap(args, name), **_unwrap(kwargs, name)))

            return method
        return _wrap(value)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "__getitem__")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "__setitem__")] = _unwrap(value, "__setitem__")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __copy__(self):
        return StandinArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StandinArray(self._a.copy())

    def __reduce__(self):
        raise HostDeviceMix("stand-in device: a stand-in array cannot be pickled; move it to the host first")

    def __repr__(self):
        return f"standin({self._a!r})"

    # Attributes NumPy keeps on the class: looked up here so that __getattr__ is not bypassed.
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StandinArray(self._a.T))


class _Function:
    """A NumPy function or ufunc working on stand-in arrays (its methods too: ``add.at``, ``maximum.reduce``)."""

    __slots__ = ("_f", "_name")

    def __init__(self, f, name):
        self._f, self._name = f, name

    def __call__(self, *args, **kwargs):
        return _wrap(self._f(*_unwrap(args, self._name), **_unwrap(kwargs, self._name)))

    def __getattr__(self, name):
        value = getattr(self._f, name)
        return _Function(value, f"{self._name}.{name}") if callable(value) else value


class _Module(types.ModuleType):
    """NumPy's namespace (or one of its submodules) on the stand-in device."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._np = numpy_module

    def __getattr__(self, name):
        value = getattr(self._np, name)
        if isinstance(value, types.ModuleType):
            value = _Module(f"{self.__name__}.{name}", value)
        elif callable(value) and not isinstance(value, type):
            value = _Function(value, name)
        setattr(self, name, value)
        return value


class _IndexBuilder:
    """``r_`` and ``c_`` (``xp.r_[True, a[1:] != a[:-1]]``) on stand-in arrays."""

    def __init__(self, builder):
        self._builder = builder

    def __getitem__(self, key):
        return _wrap(self._builder[_unwrap(key, "r_")])


def _asarray(a, dtype=None, order=None, copy=None):
    """``a`` on the stand-in device: a NumPy array or Python data is copied there (CuPy's ``asarray``)."""
    if type(a) is StandinArray:
        out = a._a if dtype is None else a._a.astype(dtype, copy=False)
        return StandinArray(out.copy() if copy else out)
    return StandinArray(np.array(a, dtype=dtype, copy=True))


def _asnumpy(a):
    """A NumPy copy of a stand-in array (CuPy's ``asnumpy``); NumPy data is returned as NumPy."""
    if type(a) is StandinArray:
        return a._a.copy()
    return np.asarray(a)


standin = _Module("standin", np)
standin.ndarray = StandinArray
standin.asarray = _asarray
standin.array = lambda a, dtype=None, copy=True, **kw: _asarray(a, dtype, copy=True)
standin.ascontiguousarray = lambda a, dtype=None: StandinArray(np.ascontiguousarray(_unwrap(a, "ascontiguousarray"), dtype))
standin.asnumpy = _asnumpy
standin.r_ = _IndexBuilder(np.r_)
standin.c_ = _IndexBuilder(np.c_)
