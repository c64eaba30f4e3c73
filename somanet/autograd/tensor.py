"""``Tensor``: one array, the node that made it, and its gradient.

Methods (``x.exp()``, ``x.sum(dim=1)``, ``x @ w``) delegate to the op library; they are installed on
the class by ``somanet.ops`` so that this file only holds what every tensor needs.

Methods and operators attached at import
------------------------------------------
The op families in ``somanet/ops/`` attach their methods with ``install(...)`` (``somanet/ops/_util.py``)
when ``somanet`` is imported:

- ``autograd/engine.py``: backward (``x.backward()`` runs the engine, which sits above this file)
- ``ops/elementwise.py``: arithmetic and comparison operators, unary math, ``clamp``, ``where``: add, sub,
  subtract, mul, multiply, div, divide, true_divide, pow, neg, negative, abs, exp, expm1, log, log2, log10,
  log1p, sqrt, rsqrt, reciprocal, square, sin, cos, tan, tanh, sigmoid, relu, erf, clamp, clip, maximum,
  minimum, sign, floor, ceil, round, trunc, floor_divide, remainder, fmod, eq, ne, lt, le, gt, ge,
  logical_and, logical_or, logical_not, logical_xor, isnan, isinf, isfinite, lerp, nan_to_num, where;
  operators __add__, __radd__, __sub__, __rsub__, __mul__, __rmul__, __truediv__, __rtruediv__, __pow__,
  __rpow__, __neg__, __abs__, __floordiv__, __rfloordiv__, __mod__, __rmod__, __eq__, __ne__, __lt__,
  __le__, __gt__, __ge__, __and__, __rand__, __or__, __ror__, __xor__, __invert__
- ``ops/index.py``: indexing (``x[i]``, ``x[i] = v``), gather/scatter, masking, sorting and the basic
  in-place ops: index_select, index_add, index_copy, index_fill, gather, scatter, scatter_add, masked_fill,
  masked_select, take_along_dim, tril, triu, outer, ger, nonzero, argwhere, topk, sort, argsort, unique,
  add_, sub_, mul_, div_, clamp_, clip_, zero_, fill_, copy_, masked_fill_, scatter_, scatter_add_;
  operators __getitem__, __setitem__, __iter__
- ``ops/inplace.py``: the augmented assignments (``+=``, ``*=``, ...) and the remaining ``name_`` in-place
  methods
- ``ops/layout.py``: splitting, ``take``, ``index_put``, ``as_strided``, ``unfold``: tensor_split, hsplit,
  vsplit, dsplit, rot90, select, take, repeat_interleave, scatter_reduce, scatter_reduce_, index_put,
  index_put_, put_, put, as_strided, unfold
- ``ops/linalg.py``: matrix products: matmul, mm, bmm, mv, dot; operators __matmul__, __rmatmul__
- ``ops/matrix.py``: diagonals, determinants, decompositions, ``addmm`` and relatives: diag, diag_embed,
  diagonal, diagflat, trace, kron, cross, det, logdet, slogdet, inverse, pinverse, cholesky, matrix_power,
  matrix_exp, addmm, addbmm, baddbmm, addmv, addr, vdot, inner, cov, corrcoef, fill_diagonal_,
  cholesky_solve, cholesky_inverse, triangular_solve, tril_, triu_
- ``ops/pointwise.py``: more unary/binary math, bitwise ops, comparisons by name; plus the in-place
  ``name_`` form of most of them: exp2, float_power, asin, acos, atan, arcsin, arccos, arctan, atan2,
  arctan2, sinh, cosh, asinh, acosh, atanh, arcsinh, arccosh, arctanh, erfc, erfinv, fix, frac, sgn,
  signbit, absolute, positive, conj, clamp_min, clamp_max, logaddexp, logaddexp2, hypot, logit, xlogy, fmax,
  fmin, copysign, deg2rad, rad2deg, sinc, heaviside, gcd, lcm, addcmul, addcdiv, greater, less,
  greater_equal, less_equal, not_equal, equal, isclose, allclose, isposinf, isneginf, isreal, bitwise_and,
  bitwise_or, bitwise_xor, bitwise_not, bitwise_left_shift, bitwise_right_shift, lgamma, digamma, polygamma,
  mvlgamma, angle, real; operators __lshift__, __rshift__, __pos__
- ``ops/reduce.py``: reductions and ``softmax``: sum, mean, prod, var, std, max, min, amax, amin, argmax,
  argmin, logsumexp, softmax, log_softmax, cumsum, cumprod, norm, all, any, count_nonzero
- ``ops/shape.py``: dtype/device casts, views and reshapes: to, type, float, double, half, long, int, bool,
  cpu, cuda, reshape, view, view_as, reshape_as, flatten, unflatten, squeeze, unsqueeze, permute, transpose,
  swapaxes, swapdims, t, T, mT, H, mH, movedim, moveaxis, expand, expand_as, broadcast_to, repeat, tile,
  flip, fliplr, flipud, roll, split, chunk, unbind, narrow, clone, contiguous, is_contiguous
- ``ops/sparse.py``: conversion to and from sparse COO: to_sparse, to_sparse_coo, is_sparse, layout,
  to_dense
- ``ops/statistics.py``: NaN-aware reductions, order statistics, histograms: nansum, nanmean, median,
  nanmedian, mode, kthvalue, quantile, nanquantile, cummax, cummin, logcumsumexp, histc, histogram,
  bincount, diff, unique_consecutive, dist, msort
- ``ops/tensor_api.py``: constructors like ``new_zeros``, storage queries, sampling; PyTorch methods somanet
  does not implement raise a clear error: coalesce, indices, values, _indices, _values, _nnz, aminmax,
  new_zeros, new_ones, new_empty, new_full, new_tensor, stride, storage_offset, data_ptr, ndimension,
  type_as, byte, char, short, is_nonzero, is_complex, apply_, map_, pin_memory, is_pinned, share_memory_,
  is_shared, resize_, resize_as_, masked_scatter, masked_scatter_, bernoulli, multinomial, poisson,
  dim_order, type; also the ``nbytes`` property
"""
import operator

import numpy as np

from .. import backend, devices
from . import grad_mode

#: The default of ``Tensor()``'s data argument: no data at all (an empty tensor), as opposed to ``None``.
_NO_DATA = object()


def _is_size(x):
    return type(x) is int or isinstance(x, np.integer)


class Tensor:
    """A multi-dimensional array that can record the ops applied to it for reverse-mode autograd.

    ``Tensor(data, requires_grad=False)`` behaves like ``somanet.tensor`` but never copies an ndarray.
    """

    __slots__ = ("array", "grad", "requires_grad", "grad_fn", "_out_index", "_version", "_hooks", "_retains", "__weakref__")
    # ndarray <op> Tensor defers to Tensor's reflected operators instead of making an object array.
    __array_ufunc__ = None

    def __init__(self, data=_NO_DATA, *sizes, requires_grad=False, dtype=None):
        if sizes and not _is_size(data):
            # Tensor(data, requires_grad, dtype): the keywords given by position.
            if len(sizes) > 2:
                raise TypeError(f"Tensor(): takes data and at most requires_grad and dtype, got {len(sizes) + 1} "
                                f"positional arguments")
            requires_grad = sizes[0]
            dtype = sizes[1] if len(sizes) == 2 else dtype
        elif data is _NO_DATA or type(data) is int or sizes:
            # PyTorch's Tensor(*sizes): uninitialised memory of the default float dtype; Tensor() is empty.
            try:
                shape = (0,) if data is _NO_DATA else tuple(operator.index(s) for s in (data,) + sizes)
            except TypeError:
                raise TypeError(f"Tensor(*sizes): sizes must be ints, got {(data,) + sizes}") from None
            data = np.empty(shape, backend.to_dtype(dtype) or backend.default_float)
        if isinstance(data, Tensor):
            data = data.array
        arr = backend.as_array(data, backend.to_dtype(dtype))
        self.array = arr
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._version = [0]
        self._hooks = None
        self._retains = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----------------------------------------------------------------- basic attributes
    @property
    def data(self):
        """This tensor's values as a new tensor that shares its memory and is cut from the graph.

        As in PyTorch, changes made through ``.data`` (``p.data.add_(u)``) are not seen by autograd:
        use it to update parameters by hand. Assigning ``p.data = t`` swaps the values. The raw
        NumPy array is ``.array``.
        """
        return _wrap(self.array, False, None, 0)

    @data.setter
    def data(self, value):
        arr = value.array if isinstance(value, Tensor) else backend.as_array(value)
        self.array = arr

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    def dim(self):
        return self.array.ndim

    def size(self, dim=None):
        if dim is None:
            return self.array.shape
        return self.array.shape[dim]

    def numel(self):
        return self.array.size

    def nelement(self):
        return self.array.size

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def device(self):
        """The device that holds this tensor (its array's): ``device(type='cpu')`` for a NumPy array."""
        if type(self.array) is np.ndarray:
            return devices.CPU
        return devices.of_array(self.array)

    @property
    def is_cuda(self):
        """Whether this tensor is on a CUDA device."""
        return type(self.array) is not np.ndarray and self.device.type == "cuda"

    @property
    def is_cpu(self):
        """Whether this tensor is on the CPU."""
        return type(self.array) is np.ndarray or self.device.type == "cpu"

    def get_device(self):
        """The device index, -1 for the CPU (as in PyTorch)."""
        d = self.device
        return -1 if d.type == "cpu" else d.index

    def _host_only(self, op):
        if type(self.array) is not np.ndarray and self.device.type != "cpu":
            raise TypeError(f"{op}(): can't convert a tensor on device '{self.device}' to a NumPy array; use "
                            f"Tensor.cpu() to copy it to host memory first")

    def is_floating_point(self):
        return self.array.dtype.kind == "f"

    def element_size(self):
        return self.array.itemsize

    @property
    def itemsize(self):
        return self.array.itemsize

    # ----------------------------------------------------------------- conversion
    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item(): only a one-element tensor can be converted to a Python scalar, got shape {tuple(self.array.shape)}")
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def numpy(self):
        self._host_only("numpy")
        if self.requires_grad and grad_mode._state.enabled:
            raise RuntimeError("numpy(): can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()")
        return self.array

    def __array__(self, dtype=None, copy=None):
        self._host_only("__array__")
        if dtype is not None:
            return self.array.astype(dtype)
        return self.array

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.array.size} elements is ambiguous")
        return bool(self.array.item())

    def __index__(self):
        if self.array.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.array.item())

    def __hash__(self):
        return id(self)

    def __format__(self, format_spec):
        """``f"{loss:.4f}"``: a 0-d tensor formats as its Python number; other tensors accept only an empty
        spec (their ``str``), as in PyTorch."""
        if self.array.ndim == 0:
            return self.array.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    # ----------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(
                f"requires_grad_(): only floating point tensors can require gradients, got dtype {self.array.dtype}"
            )
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False): can only change requires_grad of leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A new tensor sharing this one's data, cut from the graph."""
        t = _wrap(self.array, False, None, 0)
        t._version = self._version
        return t

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): can't retain_grad on a tensor that doesn't require grad")
        if self.grad_fn is None or self._retains:
            return
        self._retains = True
        import weakref

        ref = weakref.ref(self)

        def _retain(grad):
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = _wrap(grad.copy(), False, None, 0)
                else:
                    t.grad.array = t.grad.array + grad
            return None

        def _retain_tensor(grad):
            # create_graph=True: the gradient is a tensor of the graph and is kept as such.
            t = ref()
            if t is not None:
                t.grad = grad if t.grad is None else t.grad + grad
            return None

        _retain.retains_grad = True
        _retain.tensor_hook = _retain_tensor
        self._add_node_hook(_retain)

    @property
    def retains_grad(self):
        return self._retains

    def register_hook(self, hook):
        """Call ``hook(grad) -> Tensor or None`` with this tensor's gradient during backward.

        Returning a tensor replaces the gradient. Returns a handle with ``remove()``.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook(): cannot register a hook on a tensor that doesn't require gradient")

        def array_hook(grad):
            out = hook(_wrap(grad, False, None, 0))
            if out is None:
                return None
            return out.array if isinstance(out, Tensor) else np.asarray(out, dtype=grad.dtype)

        array_hook.tensor_hook = hook  # create_graph=True hands the hook the gradient tensor itself
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(array_hook)
            return _HookHandle(self._hooks, array_hook)
        return self._add_node_hook(array_hook)

    def _add_node_hook(self, fn):
        node = self.grad_fn
        if node.out_hooks is None:
            node.out_hooks = {}
        hooks = node.out_hooks.setdefault(self._out_index, [])
        # retain_grad's hook always runs last, so .grad holds the gradient after every user hook (as in PyTorch).
        if hooks and getattr(hooks[-1], "retains_grad", False):
            hooks.insert(len(hooks) - 1, fn)
        else:
            hooks.append(fn)
        return _HookHandle(hooks, fn)

    # ----------------------------------------------------------------- printing
    def __repr__(self):
        on_host = type(self.array) is np.ndarray or self.device.type == "cpu"
        body = np.array2string(
            self.array if on_host else devices.move(self.array, devices.CPU), separator=", ", prefix="tensor(",
            precision=4, threshold=1000, edgeitems=3, floatmode="maxprec",
        )
        extras = [] if on_host else [f"device='{self.device}'"]
        if self.array.dtype != backend.default_float and not (self.array.dtype == np.int64) and not self.array.dtype == np.bool_:
            extras.append(f"dtype=somanet.{self.array.dtype}")
        if self.array.size == 0 and self.array.ndim != 1:
            extras.append(f"size={tuple(self.array.shape)}")
        if self.grad_fn is not None:
            name = self.grad_fn.name
            extras.append(f"grad_fn=<{name if name.endswith('Backward') else name + 'Backward'}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__


class _HookHandle:
    def __init__(self, hooks, fn):
        self._hooks = hooks
        self._fn = fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


_new = object.__new__


def _wrap(data, requires_grad, grad_fn, index, version=None):
    """Make a Tensor around ``data`` without any checks: the fast path used by every op."""
    t = _new(Tensor)
    t.array = data
    t.grad = None
    t.requires_grad = requires_grad
    t.grad_fn = grad_fn
    t._out_index = index
    t._version = [0] if version is None else version
    t._hooks = None
    t._retains = False
    return t
