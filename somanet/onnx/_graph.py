"""Tracing a model's ops and building the ONNX graph from them.

A trace runs the model once with ``Function.apply`` swapped for a recording version (as anomaly mode
swaps it), so each op a model runs leaves a ``Record``: its ``Function`` class, its inputs (tensors,
arrays and plain values) and keyword parameters, and its outputs. Nothing changes for code that is not
exporting: the plain ``apply`` is put back afterwards.

``Lowering`` then turns the records into ONNX nodes, one op at a time (the handlers in ``_ops``), with
every value a model reads but did not compute during the trace as an initializer: parameters and
buffers under their ``state_dict`` names, anything else (masks, position indices, scalars) as a
constant.

Dynamic axes: the model is traced a second time with the dynamic dimensions of the inputs resized, and
the two traces are compared op by op. Sizes that differ between them (a reshape target, a slice end, the
shape of a constant) depend on the dynamic dimensions; the handlers compute those from the input shapes
at run time (``Op.dim``) instead of writing them down, and anything that differs and cannot be derived
is refused with an error naming the op.
"""
import inspect
import sys
import threading

import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor


class ExportError(RuntimeError):
    """The model cannot be written as an ONNX graph (the message says which op and why)."""


class UnsupportedOperatorError(ExportError):
    """An op the exporter has no ONNX translation for; ``op_name`` names it."""

    def __init__(self, message, op_name):
        super().__init__(message)
        self.op_name = op_name


# =========================================================================== tracing
class Record:
    """One op the traced model ran."""

    __slots__ = ("cls", "inputs", "params", "outputs", "single", "in_versions", "out_versions", "arrays",
                 "captured", "module")

    @property
    def name(self):
        return self.cls.__name__


def _module_path(modules):
    """The innermost module whose ``forward`` is running (its name in the exported model), or ''."""
    frame = sys._getframe(3)
    while frame is not None:
        if frame.f_code.co_name == "forward":
            owner = frame.f_locals.get("self")
            path = modules.get(id(owner))
            if path is not None:
                return path
        frame = frame.f_back
    return ""


class Trace:
    """Runs a callable with every op recorded (outermost ops only: an op that calls another op inside its
    own forward is one record), in grad mode, as training would run it."""

    def __init__(self, modules=None):
        self.records = []
        self.modules = modules or {}
        self.depth = 0

    def run(self, fn):
        original = Function.__dict__["apply"]
        plain = original.__func__
        trace = self
        owner = threading.get_ident()

        def tracing_apply(cls, *inputs, **params):
            if trace.depth or threading.get_ident() != owner:  # inner ops, and other threads' work
                return plain(cls, *inputs, **params)
            versions = tuple(x._version[0] if isinstance(x, Tensor) else None for x in inputs)
            trace.depth += 1
            try:
                out = plain(cls, *inputs, **params)
            finally:
                trace.depth -= 1
            rec = Record()
            rec.cls, rec.inputs, rec.params = cls, inputs, params
            rec.single = not isinstance(out, tuple)
            rec.outputs = (out,) if rec.single else tuple(out)
            rec.in_versions = versions
            # The arrays the op read: an in-place op may later hand a tensor another array.
            rec.captured = {id(x): x.array for x in inputs + tuple(params.values()) if isinstance(x, Tensor)}
            rec.out_versions = tuple(o._version[0] if isinstance(o, Tensor) else None for o in rec.outputs)
            # Hold the arrays too: a tensor may later take another array, and ids must stay unique.
            rec.arrays = tuple(o.array if isinstance(o, Tensor) else o for o in rec.outputs)
            rec.module = _module_path(trace.modules)
            trace.records.append(rec)
            return out

        Function.apply = classmethod(tracing_apply)
        try:
            # Grad mode stays on: with it off, some layers take inference shortcuts (a convolution with its
            # batch norm folded into new weights) that would hide the parameters behind computed constants.
            with enable_grad():
                return fn()
        finally:
            Function.apply = original


# =========================================================================== values
class Value:
    """A value of the graph: its ONNX name, dtype and shape in the first trace (``shape``) and the second
    (``shape2``, equal to ``shape`` without dynamic axes)."""

    __slots__ = ("name", "dtype", "shape", "shape2", "const", "version")

    def __init__(self, name, dtype, shape, shape2=None, const=None, version=None):
        self.name, self.dtype, self.shape = name, np.dtype(dtype), tuple(shape)
        self.shape2 = tuple(shape if shape2 is None else shape2)
        self.const, self.version = const, version

    @property
    def rank(self):
        return len(self.shape)

    def dynamic(self, axis):
        return self.shape[axis] != self.shape2[axis]


def _same(a, b):
    """Whether two op arguments of the two traces are equal (tuples, slices, arrays, scalars, dtypes)."""
    if a is b:
        return True
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, slice) and isinstance(b, slice):
        return _same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if isinstance(a, Tensor):
        a = a.array
    if isinstance(b, Tensor):
        b = b.array
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def _is_reshape_of(view, base):
    """Whether ``view`` is ``base``'s memory in another shape (both C-ordered, same start and size)."""
    return (isinstance(base, np.ndarray) and view.size == base.size and view.dtype == base.dtype
            and view.flags.c_contiguous and base.flags.c_contiguous
            and view.__array_interface__["data"][0] == base.__array_interface__["data"][0])


_SIGNATURES = {}


def _bind(cls, inputs, params):
    """``(inputs, params, names)``: every argument of ``cls.forward`` by position (defaults filled in), the
    keyword-only ones left in ``params``, and ``names`` mapping argument names to positions."""
    entry = _SIGNATURES.get(cls)
    if entry is None:
        try:
            sig = inspect.signature(cls.forward)
            entry = (sig, [p for p in list(sig.parameters.values())[1:]])
            if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in entry[1]):
                entry = (None, None)
        except (TypeError, ValueError):
            entry = (None, None)
        _SIGNATURES[cls] = entry
    sig, fields = entry
    if sig is None:
        return tuple(inputs), dict(params), {}
    try:
        bound = sig.bind(None, *inputs, **params)
    except TypeError:
        return tuple(inputs), dict(params), {}
    bound.apply_defaults()
    names = {p.name: i for i, p in enumerate(fields)}
    values = tuple(bound.arguments[p.name] for p in fields)
    return values, {}, names


def _is_array_like(x):
    return isinstance(x, (Tensor, np.ndarray))


def _raw(x):
    return x.array if isinstance(x, Tensor) else x


def _arange_pattern(arr):
    """``(axis, start, step)`` when ``arr`` is ``start + step * index`` along one axis (the same along the
    others), else None."""
    if arr.ndim == 0 or arr.size < 2 or arr.dtype.kind not in "iuf":
        return None
    axes = [a for a in range(arr.ndim) if arr.shape[a] > 1]
    for axis in axes:
        first = np.moveaxis(arr, axis, 0)[0]
        if not np.all(first == first.reshape(-1)[0]):
            continue
        row = np.moveaxis(arr, axis, -1).reshape(-1, arr.shape[axis])
        start = row[0, 0]
        step = row[0, 1] - row[0, 0]
        expect = start + step * np.arange(arr.shape[axis], dtype=arr.dtype)
        if step != 0 and np.all(row == expect):
            return axis, start.item(), step.item()
    return None


# =========================================================================== the graph
class Lowering:
    """Builds the ONNX graph from the records of one trace (and of the second one, for dynamic axes)."""

    def __init__(self, onnx, opset, params, modules):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self.used_names = set()
        self.env = {}            # id(tensor or array) -> Value, for values the trace computed
        self.params = params     # id(parameter tensor or its array) -> state_dict name
        self.param_values = {}   # state_dict name -> Value
        self.consts = {}         # id(array) -> Value
        self.cache = {}          # memoised helper values (transposed weights, shape pieces)
        self.dim_sources = []    # (Value, axis) of the inputs' dynamic axes
        self.modules = modules
        self.counter = 0

    # ------------------------------------------------------------------ names and building blocks
    def unique(self, hint):
        hint = hint.replace(" ", "_") or "v"
        name = hint
        while name in self.used_names:
            self.counter += 1
            name = f"{hint}_{self.counter}"
        self.used_names.add(name)
        return name

    def add_node(self, op_type, inputs, n_out=1, name=None, domain=None, **attrs):
        outs = [self.unique(f"{name or op_type}_out" if n_out == 1 else f"{name or op_type}_out{i}")
                for i in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = self.helper.make_node(op_type, list(inputs), outs, name=self.unique(name or op_type), **attrs)
        if domain:
            node.domain = domain
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def add_initializer(self, array, hint):
        name = self.unique(hint)
        array = np.asarray(array)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def constant(self, array, hint="const"):
        """A constant value (an initializer), shared by every use of the same array object."""
        arr = np.asarray(array)
        key = id(array) if isinstance(array, np.ndarray) else None
        if key is not None and key in self.consts:
            return self.consts[key]
        value = Value(self.add_initializer(arr, hint), arr.dtype, arr.shape, const=arr)
        if key is not None:
            self.consts[key] = value
            self.cache.setdefault("_keep", []).append(array)  # keep the id valid
        return value

    def param_value(self, name, array):
        """A parameter or buffer: an initializer under its ``state_dict`` name."""
        v = self.param_values.get(name)
        if v is None:
            self.used_names.add(name)
            self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
            v = self.param_values[name] = Value(name, array.dtype, array.shape, const=array)
        return v

    def int64(self, values, hint="shape"):
        values = tuple(int(v) for v in values)
        key = ("int64", values)
        if key not in self.cache:
            self.cache[key] = self.add_initializer(np.array(values, np.int64), hint)
        return self.cache[key]

    def scalar(self, value, dtype):
        dtype = np.dtype(dtype)
        key = ("scalar", repr(value), dtype.str)
        if key not in self.cache:
            self.cache[key] = self.add_initializer(np.array(value, dtype), "scalar")
        return self.cache[key]

    def onnx_dtype(self, dtype):
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def reduce(self, op_type, x, axes, keepdims, name=None):
        """``Reduce*`` over ``axes`` (None: all), with axes as an attribute or an input as the opset wants."""
        as_input = op_type == "ReduceSum" or self.opset >= 18
        if axes is None:
            return self.add_node(op_type, [x], name=name, keepdims=int(keepdims))
        axes = [int(a) for a in axes]
        if as_input:
            return self.add_node(op_type, [x, self.int64(axes, "axes")], name=name, keepdims=int(keepdims))
        return self.add_node(op_type, [x], name=name, axes=axes, keepdims=int(keepdims))

    def shape_of(self, value, axis):
        """The size of ``value``'s dimension ``axis`` at run time, as an int64 tensor of shape (1,)."""
        key = ("dim", value.name, axis)
        if key not in self.cache:
            shape = self.add_node("Shape", [value.name], name="Shape")
            self.cache[key] = self.add_node("Gather", [shape, self.int64([axis], "axis")], name="Gather", axis=0)
        return self.cache[key]

    def find_dim(self, v1, v2, candidates=()):
        """An int64 (1,) tensor holding a size that is ``v1`` in the first trace and ``v2`` in the second:
        an input's dynamic dimension, or an integer multiple of one plus a constant. None when nothing
        explains it."""
        sources = list(self.dim_sources)
        for value in candidates:
            sources += [(value, a) for a in range(value.rank) if value.dynamic(a)]
        for value, axis in sources:
            if (value.shape[axis], value.shape2[axis]) == (v1, v2):
                return self.shape_of(value, axis)
        for value, axis in sources:
            d1, d2 = value.shape[axis], value.shape2[axis]
            if (v1 - v2) % (d1 - d2) == 0:
                k = (v1 - v2) // (d1 - d2)
                c = v1 - k * d1
                out = self.shape_of(value, axis)
                if k != 1:
                    out = self.add_node("Mul", [out, self.int64([k], "k")], name="Mul")
                if c:
                    out = self.add_node("Add", [out, self.int64([c], "c")], name="Add")
                return out
        return None


# =========================================================================== one op
class Op:
    """What a handler sees of one recorded op: its inputs as graph values, its arguments in both traces,
    and ways to add nodes. ``emit`` returns output names; the handler returns the names of the op's
    outputs (one name, or a tuple for ops with several)."""

    def __init__(self, lowering, rec, rec2, index):
        self.g = lowering
        self.rec, self.rec2 = rec, rec2 if rec2 is not None else rec
        self.index = index
        self.checked = set()     # positional args and param names the handler took care of
        self.opset = lowering.opset
        prefix = f"/{rec.module.replace('.', '/')}" if rec.module else ""
        self.prefix = f"{prefix}/{rec.name}"
        # Arguments by position whichever way they were passed (keyword-only ones stay in ``params``).
        self.inputs, self.params, self.names = _bind(rec.cls, rec.inputs, rec.params)
        if self.rec2 is rec:
            self.inputs2, self.params2 = self.inputs, self.params
        else:
            self.inputs2, self.params2, _ = _bind(rec.cls, self.rec2.inputs, self.rec2.params)

    @property
    def name(self):
        return self.rec.name

    def where(self):
        return f" in {self.rec.module}" if self.rec.module else ""

    def fail(self, why):
        raise ExportError(f"cannot export op {self.name} (#{self.index}){self.where()}: {why}")

    # ------------------------------------------------------------------ arguments
    def _index(self, i):
        return self.names.get(i, i) if isinstance(i, str) else i

    def inp(self, i):
        i = self._index(i)
        if isinstance(i, str):
            return self.params.get(i)
        return self.inputs[i] if i < len(self.inputs) else None

    def arg(self, i, dynamic=False):
        """Argument ``i`` (a position, or a parameter name) of the first trace; ``dynamic=True`` allows it
        to differ in the second (the handler derives it at run time)."""
        if dynamic:
            self.checked.add(self._index(i))
        return self.inp(i)

    def arg2(self, i):
        i = self._index(i)
        if isinstance(i, str):
            return self.params2.get(i)
        return self.inputs2[i] if i < len(self.inputs2) else None

    def p(self, key, default=None, dynamic=False):
        """Argument ``key`` by name (None: ``default``)."""
        value = self.arg(key, dynamic)
        return default if value is None else value

    def p2(self, key, default=None):
        value = self.arg2(key)
        return default if value is None else value

    def has(self, i):
        return self.inp(i) is not None

    # ------------------------------------------------------------------ values
    def value(self, i):
        """Input ``i`` (a position or a parameter name) as a graph ``Value``."""
        i = self._index(i)
        self.checked.add(i)
        obj = self.inp(i)
        label = next((k for k, j in self.names.items() if j == i), i)
        v = self._resolve(obj, self.arg2(i), f"argument {label!r}" if isinstance(label, str) else f"argument {i}")
        if isinstance(obj, Tensor) and obj.array is not self.array_of(i):
            return v  # changed since, through autograd (the tensor took over an in-place op's result)
        if isinstance(i, str):
            return v
        seen = self.rec.in_versions[i] if i < len(self.rec.in_versions) else None
        if (seen is not None and v is not None and v.version is not None and v.version[0] is obj._version
                and v.version[1] != seen):
            self.fail(f"input {i} was changed in place after it was computed (an in-place op such as add_() or "
                      f"'+=' on a tensor outside autograd); the graph cannot express in-place updates: use the "
                      f"out-of-place op")
        return v

    def x(self, i, dtype=None):
        """Input ``i``'s ONNX name, cast to ``dtype`` when given and different."""
        i = self._index(i)
        self.checked.add(i)
        obj = self.inp(i)
        if dtype is not None and not _is_array_like(obj) and not isinstance(obj, np.generic):
            return self.g.scalar(obj, dtype)  # a Python scalar takes the op's dtype
        v = self.value(i)
        return self.cast(v, dtype)

    def cast(self, v, dtype):
        if dtype is None or np.dtype(dtype) == v.dtype:
            return v.name
        if v.const is not None:
            return self.g.constant(v.const.astype(dtype), "const").name
        return self.emit("Cast", [v.name], to=self.g.onnx_dtype(dtype))

    def shape(self, i):
        return self.value(i).shape

    def rank(self, i):
        return len(self.value(i).shape)

    def dtype(self, i):
        return self.value(i).dtype

    def array_of(self, i):
        """The array input ``i`` held when the op ran."""
        obj = self.inp(i)
        return self.rec.captured.get(id(obj), obj.array) if isinstance(obj, Tensor) else obj

    def _resolve(self, obj, obj2, what):
        g = self.g
        if obj is None:
            return None
        if isinstance(obj, Tensor):
            arr = self.rec.captured.get(id(obj), obj.array)
            v = g.env.get(id(arr))
            if v is not None:
                return v
            name = g.params.get(id(obj)) or g.params.get(id(arr))
            if name is not None:
                return self._param(name, arr)
            if isinstance(obj2, Tensor):
                obj2 = self.rec2.captured.get(id(obj2), obj2.array)
            return self._const(arr, obj2, what)
        if isinstance(obj, np.ndarray):
            v = g.env.get(id(obj))
            if v is not None:
                return v
            name = g.params.get(id(obj))
            if name is not None:
                return self._param(name, obj)
            return self._const(obj, obj2, what)
        if isinstance(obj, (bool, int, float, np.generic)):
            arr = np.asarray(obj)
            if isinstance(obj, float):
                arr = arr.astype(np.float32)
            return g.constant(arr, "scalar")
        self.fail(f"{what} is a {type(obj).__name__}, which has no ONNX form")

    def _param(self, name, array):
        return self.g.param_value(name, array)

    def _const(self, arr, obj2, what):
        g = self.g
        base = arr.base
        while base is not None:
            if id(base) in g.env:
                v = g.env[id(base)]
                if _is_reshape_of(arr, base):
                    # An op's wrapper reshaped a computed array (index.reshape(-1)): the same reshape in the graph.
                    arr2 = _raw(obj2)
                    shape2 = arr2.shape if isinstance(arr2, np.ndarray) else arr.shape
                    out = self.emit("Reshape", [v.name, self.reshape_target(v, arr.shape, shape2)])
                    return Value(out, arr.dtype, arr.shape, shape2)
                self.fail(f"{what} is a view of a value the model computed, taken outside somanet's ops (through "
                          f"'.array', '.numpy()' or NumPy); use tensor ops so that the graph can compute it")
            base = base.base if isinstance(base, np.ndarray) else None
        arr2 = _raw(obj2)
        if arr2 is None or arr2 is arr or _same(arr, arr2):
            return g.constant(arr, f"{self.name.lower()}_const")
        return self._dynamic_const(arr, np.asarray(arr2), what)

    def _dynamic_const(self, a1, a2, what):
        """A constant whose size follows the dynamic axes: a filled tensor or an index range, rebuilt at
        run time from the dynamic sizes."""
        g = self.g
        if a1.ndim == a2.ndim and a1.size and a2.size:
            flat1, flat2 = a1.reshape(-1), a2.reshape(-1)
            if np.all(flat1 == flat1[0]) and np.all(flat2 == flat2[0]) and flat1[0] == flat2[0]:
                shape = self.shape_tensor(a1.shape, a2.shape, what=what)
                if shape is not None:
                    fill = self.g.helper.make_tensor("value", g.onnx_dtype(a1.dtype), [1], [flat1[0].item()])
                    out = self.emit("ConstantOfShape", [shape], value=fill)
                    return Value(out, a1.dtype, a1.shape, a2.shape)
            p1, p2 = _arange_pattern(a1), _arange_pattern(a2)
            if p1 is not None and p1 == p2:
                axis, start, step = p1
                n = self.dim(a1.shape[axis], a2.shape[axis], what=what)
                dt = a1.dtype
                n_typed = self.emit("Cast", [n], to=g.onnx_dtype(dt)) if dt != np.int64 else n
                count = self.emit("Mul", [n_typed, self.const(np.array([step], dt), "step")])
                limit = self.emit("Add", [count, self.const(np.array([start], dt), "start")])
                limit = self.emit("Squeeze", [limit, g.int64([0], "axes")])
                rng = self.emit("Range", [g.scalar(start, dt), limit, g.scalar(step, dt)])
                lead = [1] * a1.ndim
                view = list(lead)
                view[axis] = -1
                rng = self.emit("Reshape", [rng, g.int64(view)])
                shape = self.shape_tensor(a1.shape, a2.shape, what=what, keep_ones=True)
                out = self.emit("Expand", [rng, shape])
                return Value(out, dt, a1.shape, a2.shape)
        if a1.shape == a2.shape:
            self.fail(f"{what} is a constant (not computed by somanet ops) whose values change with the input values: "
                      f"it was computed from an input outside somanet's ops (through '.array', '.numpy()' or NumPy) "
                      f"or drawn at random, and the graph would hold the values of one run; compute it with tensor "
                      f"ops")
        self.fail(f"{what} is a constant (not computed by somanet ops) whose shape or values depend on the dynamic "
                  f"axes (shape {a1.shape} in one trace, {a2.shape} in the other); compute it with tensor ops, or "
                  f"export without making these axes dynamic")

    # ------------------------------------------------------------------ outputs
    def out(self, k=0):
        return self.rec.outputs[k]

    def out_dtype(self, k=0):
        return self.rec.arrays[k].dtype

    def out_shape(self, k=0):
        return tuple(self.rec.arrays[k].shape)

    def out_shape2(self, k=0):
        return tuple(self.rec2.arrays[k].shape)

    # ------------------------------------------------------------------ building
    def emit(self, op_type, inputs, n_out=1, **attrs):
        return self.g.add_node(op_type, inputs, n_out=n_out, name=f"{self.prefix}/{op_type}", **attrs)

    def const(self, array, hint="const"):
        return self.g.constant(np.asarray(array), hint).name

    def int64(self, values):
        return self.g.int64(values)

    def scalar(self, value, dtype):
        return self.g.scalar(value, dtype)

    def reduce(self, op_type, x, axes, keepdims):
        return self.g.reduce(op_type, x, axes, keepdims, name=f"{self.prefix}/{op_type}")

    def input_dim(self, i, axis):
        """Input ``i``'s dimension ``axis`` as an int64 (1,) tensor: a constant unless it is dynamic."""
        v = self.value(i)
        axis = axis % v.rank
        if not v.dynamic(axis):
            return self.int64([v.shape[axis]])
        return self.g.shape_of(v, axis)

    def dim(self, v1, v2=None, what="a size"):
        """A size (int64, shape (1,)) that is ``v1`` in the first trace and ``v2`` in the second."""
        v2 = v1 if v2 is None else v2
        if v1 == v2:
            return self.int64([v1])
        inputs = [v for v in (self._maybe_value(i) for i in range(len(self.inputs))) if v is not None]
        out = self.g.find_dim(int(v1), int(v2), inputs)
        if out is None:
            self.fail(f"{what} is {v1} in one trace and {v2} in the other, and no dynamic input dimension explains "
                      f"it; export without making this axis dynamic")
        return out

    def _maybe_value(self, i):
        obj = self.inp(i)
        if isinstance(obj, Tensor):
            return self.g.env.get(id(obj.array)) or self.g.env.get(id(obj))
        if isinstance(obj, np.ndarray):
            return self.g.env.get(id(obj))
        return None

    def shape_tensor(self, dims1, dims2=None, what="a shape", keep_ones=False):
        """A 1-D int64 shape tensor for sizes ``dims1`` (first trace) / ``dims2`` (second)."""
        dims2 = dims1 if dims2 is None else dims2
        if tuple(dims1) == tuple(dims2):
            return self.int64(dims1)
        pieces, static = [], []
        for a, b in zip(dims1, dims2):
            if a == b:
                static.append(a)
                continue
            if static:
                pieces.append(self.int64(static))
                static = []
            pieces.append(self.dim(a, b, what=what))
        if static:
            pieces.append(self.int64(static))
        return pieces[0] if len(pieces) == 1 else self.emit("Concat", pieces, axis=0)

    def reshape_target(self, i, target1, target2=None):
        """The ONNX ``Reshape`` shape input that turns input ``i`` (or the ``Value`` ``i``) into ``target1``
        (``target2`` in the second trace): dynamic sizes copied from the input (0) where they line up, one
        inferred (-1), any others computed."""
        target2 = target1 if target2 is None else target2
        v = i if isinstance(i, Value) else self.value(i)
        if tuple(target1) == tuple(target2):
            return self.int64(target1)
        spec, need = [], []
        minus_one = False
        for j, (a, b) in enumerate(zip(target1, target2)):
            if a == b:
                spec.append(a)
            elif j < v.rank and (v.shape[j], v.shape2[j]) == (a, b):
                spec.append(0)
            elif not minus_one:
                spec.append(-1)
                minus_one = True
            else:
                spec.append(None)
                need.append(j)
        if not need:
            return self.int64(spec)
        pieces, static = [], []
        for j, s in enumerate(spec):
            if s is not None:
                static.append(s)
                continue
            if static:
                pieces.append(self.int64(static))
                static = []
            pieces.append(self.dim(target1[j], target2[j], what="a reshape target"))
        if static:
            pieces.append(self.int64(static))
        return self.emit("Concat", pieces, axis=0)

    def check_arguments(self):
        """Every argument the handler did not derive must be the same in both traces."""
        if self.rec2 is self.rec:
            return
        labels = {i: k for k, i in self.names.items()}
        for i, (a, b) in enumerate(zip(self.inputs, self.inputs2)):
            if i in self.checked or _is_array_like(a):
                continue
            if not _same(a, b):
                self.fail(f"argument {labels.get(i, i)} ({a!r}) changes with the inputs ({b!r} in the second trace, "
                          f"{self._second_run()}); this op cannot follow them")
        for key, a in self.params.items():
            if key in self.checked or _is_array_like(a):
                continue
            if not _same(a, self.params2.get(key)):
                self.fail(f"argument {key}={a!r} changes with the inputs ({self.params2.get(key)!r} in the second "
                          f"trace, {self._second_run()}); this op cannot follow them")

    def _second_run(self):
        if any(v.shape != v.shape2 for v in self.g.env.values()):
            return "run with the dynamic axes resized"
        return "run on other input values"
