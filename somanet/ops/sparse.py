"""Sparse COO tensors: ``sparse_coo_tensor``, ``Tensor.to_sparse()``, ``to_dense()``, ``coalesce()`` and the
sparse-dense matrix product used by graph networks (``somanet.sparse.mm``, ``somanet.spmm``, ``mm`` and
``@`` with a sparse first operand).

A ``SparseTensor`` is its own small class beside ``Tensor`` (the dense hot path knows nothing of it): int64
``indices`` of shape ``(sparse_dim, nnz)``, a values ``Tensor`` of shape ``(nnz, *dense_shape)`` and the
full ``shape``. Gradients reach the values (``S.grad`` is a sparse tensor with the same pattern, as in
PyTorch) and the dense operands. The product is computed row by row with ``add.reduceat`` over the
products of the stored values, so its cost is proportional to the number of stored elements.
"""
import builtins

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from . import linalg as _L
from . import shape as S
from ._util import ensure_tensor, install

__all__ = ["sparse_coo_tensor", "spmm", "mm", "matmul", "SparseTensor", "strided", "sparse_coo", "layout"]


class layout:  # noqa: N801 - PyTorch's spelling
    """A memory layout: ``somanet.strided`` (dense tensors) or ``somanet.sparse_coo``."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"somanet.{self.name}"

    def __reduce__(self):
        return (_layout_named, (self.name,))


def _layout_named(name):
    return {"strided": strided, "sparse_coo": sparse_coo}[name]


strided = layout("strided")
sparse_coo = layout("sparse_coo")


def _linear(indices, shape):
    """One int64 position per stored element (row-major over the sparse dims)."""
    if indices.shape[0] == 0:
        return np.zeros(indices.shape[1], np.int64)
    return np.ravel_multi_index(tuple(indices), shape) if indices.shape[1] else np.zeros(0, np.int64)


class SparseTensor:
    """A sparse tensor in COO form (see the module docstring). Build one with ``sparse_coo_tensor`` or
    ``Tensor.to_sparse()``."""

    is_sparse = True
    layout = sparse_coo
    is_cuda = False
    is_cpu = True

    def __init__(self, indices, values, shape, coalesced=False):
        self._idx = indices
        self._vals = values
        self._shape = tuple(builtins.int(s) for s in shape)
        self._coalesced = coalesced

    # ----------------------------------------------------------------- attributes
    @property
    def shape(self):
        return self._shape

    def size(self, dim=None):
        return self._shape if dim is None else self._shape[dim]

    def dim(self):
        return len(self._shape)

    @property
    def ndim(self):
        return len(self._shape)

    def numel(self):
        return builtins.int(np.prod(self._shape))

    @property
    def dtype(self):
        return self._vals.array.dtype

    @property
    def device(self):
        from .. import devices

        return devices.CPU

    def sparse_dim(self):
        return self._idx.shape[0]

    def dense_dim(self):
        return len(self._shape) - self._idx.shape[0]

    def _nnz(self):
        return self._idx.shape[1]

    def is_coalesced(self):
        return self._coalesced

    def _indices(self):
        """The stored indices, ``(sparse_dim, nnz)`` int64, whether coalesced or not."""
        return _wrap(self._idx, False, None, 0)

    def _values(self):
        """The stored values, ``(nnz, *dense_shape)``; differentiable."""
        return self._vals

    def indices(self):
        """The indices of a coalesced tensor (call ``coalesce()`` first otherwise)."""
        if not self._coalesced:
            raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call .coalesce() first")
        return self._indices()

    def values(self):
        """The values of a coalesced tensor (call ``coalesce()`` first otherwise); differentiable."""
        if not self._coalesced:
            raise RuntimeError("Cannot get values on an uncoalesced tensor, please call .coalesce() first")
        return self._vals

    # ----------------------------------------------------------------- autograd
    @property
    def requires_grad(self):
        return self._vals.requires_grad

    def requires_grad_(self, requires_grad=True):
        self._vals.requires_grad_(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self._vals.grad_fn is None

    @property
    def grad(self):
        """The gradient as a sparse tensor with this tensor's pattern (None before backward)."""
        g = self._vals.grad
        return None if g is None else SparseTensor(self._idx, g, self._shape, self._coalesced)

    @grad.setter
    def grad(self, value):
        self._vals.grad = None if value is None else value._values() if isinstance(value, SparseTensor) else value

    def detach(self):
        return SparseTensor(self._idx, self._vals.detach(), self._shape, self._coalesced)

    # ----------------------------------------------------------------- conversions
    def coalesce(self):
        """The same tensor with sorted, unique indices (values at repeated indices added); differentiable."""
        if self._coalesced:
            return self
        from .index import index_add

        lin = _linear(self._idx, self._shape[:self.sparse_dim()])
        uniq, inverse = np.unique(lin, return_inverse=True)
        idx = np.stack(np.unravel_index(uniq, self._shape[:self.sparse_dim()])).astype(np.int64).reshape(
            self.sparse_dim(), -1)
        vals = self._vals
        zeros = _wrap(np.zeros((uniq.size,) + tuple(vals.array.shape[1:]), vals.array.dtype), False, None, 0)
        summed = index_add(zeros, 0, Tensor(inverse.reshape(-1).astype(np.int64)), vals)
        return SparseTensor(idx, summed, self._shape, True)

    def to_dense(self, dtype=None, *, masked_grad=None):
        """The dense tensor; differentiable in the values."""
        from .layout import index_put

        zeros = _wrap(np.zeros(self._shape, self._vals.array.dtype), False, None, 0)
        key = tuple(Tensor(row) for row in self._idx)
        out = index_put(zeros, key, self._vals, accumulate=True)
        return out if dtype is None else out.to(dtype)

    def to_sparse(self, *args, **kwargs):
        return self

    def to(self, dtype=None, *args, **kwargs):
        if dtype is None or isinstance(dtype, str) and dtype in ("cpu",):
            return self
        from .. import devices

        if isinstance(dtype, (str, devices.device)):
            devices.resolve(dtype, "to")
            return self
        return SparseTensor(self._idx, self._vals.to(dtype), self._shape, self._coalesced)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        return self

    def clone(self):
        return SparseTensor(self._idx.copy(), S.clone(self._vals), self._shape, self._coalesced)

    # ----------------------------------------------------------------- arithmetic
    def t(self):
        """The transpose of a 2-d sparse tensor."""
        if self.sparse_dim() != 2 or self.dense_dim():
            raise RuntimeError("t(): expects a 2-d sparse tensor")
        return SparseTensor(self._idx[::-1].copy(), self._vals, self._shape[::-1], False)

    def transpose(self, dim0, dim1):
        if sorted((dim0 % self.ndim, dim1 % self.ndim)) != [0, 1] or self.ndim != 2:
            raise RuntimeError("transpose(): somanet transposes 2-d sparse tensors only")
        return self.t()

    def __mul__(self, other):
        if isinstance(other, (builtins.int, builtins.float, np.generic)) or (isinstance(other, Tensor) and
                                                                            other.array.ndim == 0):
            return SparseTensor(self._idx, self._vals * other, self._shape, self._coalesced)
        raise NotImplementedError("somanet multiplies sparse tensors by scalars only")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (1.0 / other)

    def __neg__(self):
        return self * -1

    def __add__(self, other):
        if isinstance(other, SparseTensor):
            if other.shape != self.shape:
                raise RuntimeError(f"add(): sparse shapes {self.shape} and {other.shape} differ")
            idx = np.concatenate([self._idx, other._idx], 1)
            vals = S.cat([self._vals, other._vals.to(self.dtype)], 0)
            return SparseTensor(idx, vals, self._shape, False)
        return self.to_dense() + other

    __radd__ = __add__

    def sub(self, other):
        return self + (-other)

    __sub__ = sub

    def mm(self, mat2):
        return spmm(self, mat2)

    def matmul(self, other):
        return matmul(self, other)

    def __matmul__(self, other):
        return matmul(self, other)

    def sum(self, dim=None, keepdim=False, dtype=None):
        """``somanet.sparse.sum``: all elements (dense 0-d) or over ``dim``; differentiable."""
        from .. import sparse as _sparse_mod

        return _sparse_mod.sum(self, dim)

    def __len__(self):
        return self._shape[0]

    def __repr__(self):
        idx = np.array2string(self._idx, separator=", ", prefix="       indices=tensor(")
        vals = np.array2string(self._vals.array, separator=", ", precision=4, prefix="       values=tensor(")
        extra = ""
        if self._vals.grad_fn is not None:
            extra = ",\n       grad_fn=<SparseBackward>"
        elif self._vals.requires_grad:
            extra = ",\n       requires_grad=True"
        return (f"tensor(indices=tensor({idx}),\n       values=tensor({vals}),\n       size={self._shape}, "
                f"nnz={self._nnz()}, layout=somanet.sparse_coo{extra})")

    __str__ = __repr__


# --------------------------------------------------------------------------- construction
def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, requires_grad=False,
                      check_invariants=None, is_coalesced=None):
    """A sparse COO tensor with ``values[k]`` at ``indices[:, k]`` (repeats add up when used);
    ``size`` defaults to the smallest shape holding every index. ``values`` keeps its graph, so gradients
    reach it."""
    if device is not None:
        from .. import devices

        devices.resolve(device, "sparse_coo_tensor")
    idx = np.asarray(indices.array if isinstance(indices, Tensor) else indices)
    if idx.size == 0:
        idx = idx.reshape(idx.shape[0] if idx.ndim == 2 else (len(size) if size is not None else 1), 0)
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise RuntimeError(f"sparse_coo_tensor(): indices must be a 2-d integer tensor (sparse_dim, nnz), got shape "
                           f"{idx.shape} and dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=True)
    vals = values if isinstance(values, Tensor) else Tensor(backend.as_array(values))
    if dtype is not None:
        vals = vals.to(dtype)
    if vals.array.ndim == 0 or vals.array.shape[0] != idx.shape[1]:
        raise RuntimeError(f"sparse_coo_tensor(): {idx.shape[1]} indices but values of shape {tuple(vals.array.shape)}")
    if (idx < 0).any():
        raise RuntimeError("sparse_coo_tensor(): indices must be non-negative")
    if size is None:
        sparse_shape = tuple(builtins.int(m) + 1 for m in idx.max(1)) if idx.shape[1] else (0,) * idx.shape[0]
        size = sparse_shape + tuple(vals.array.shape[1:])
    size = tuple(builtins.int(s) for s in size)
    if len(size) != idx.shape[0] + vals.array.ndim - 1:
        raise RuntimeError(f"sparse_coo_tensor(): size {size} does not have sparse_dim ({idx.shape[0]}) + dense_dim "
                           f"({vals.array.ndim - 1}) dimensions")
    if idx.shape[1] and (idx.max(1) >= np.asarray(size[:idx.shape[0]])).any():
        raise RuntimeError(f"sparse_coo_tensor(): an index is out of bounds for size {size}")
    if requires_grad:
        if vals.grad_fn is not None or vals.requires_grad:
            vals = vals.detach()
        vals = _wrap(vals.array, False, None, 0).requires_grad_(True)
    coalesced = builtins.bool(is_coalesced) if is_coalesced is not None else idx.shape[1] <= 1
    return SparseTensor(idx, vals, size, coalesced)


def _to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """This tensor in sparse COO form (coalesced: sorted indices of the nonzero elements, or of the nonzero
    slices over the first ``sparse_dim`` dims); differentiable."""
    if layout is not None and layout is not sparse_coo:
        raise NotImplementedError(f"somanet does not implement torch.Tensor.to_sparse with layout={layout} yet")
    a = self.array
    sd = a.ndim if sparse_dim is None else builtins.int(sparse_dim)
    lead = a.reshape(a.shape[:sd] + (-1,)) if sd < a.ndim else a[..., None]
    nz = np.nonzero((lead != 0).any(-1))
    idx = np.stack(nz).astype(np.int64).reshape(sd, -1) if sd else np.zeros((0, 1 if a.size else 0), np.int64)
    vals = self[tuple(Tensor(i) for i in nz)] if sd else S.unsqueeze(self, 0)
    return SparseTensor(idx, vals, a.shape, True)


# --------------------------------------------------------------------------- products
def _row_sums(rows, products, n_rows, order=None):
    """``out[r] = sum of products[k] with rows[k] == r`` for a 2-d ``products``, by sorted segments."""
    xp = array_module(products)
    out = xp.zeros((n_rows,) + products.shape[1:], products.dtype)
    if rows.size == 0:
        return out
    if order is not None:
        rows = rows[order]
        products = products[order]
    starts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
    out[rows[starts]] = xp.add.reduceat(products, starts, axis=0)
    return out


class SpMM(Function):
    """``A @ B`` for a sparse 2-d ``A`` (values, rows, cols) and a dense ``B``; gradients to the values
    and to ``B``."""

    def forward(ctx, values, dense, rows, cols, n_rows, row_order, col_order):
        ctx.save_for_backward(values, dense)
        ctx.rows, ctx.cols, ctx.col_order, ctx.n_cols = rows, cols, col_order, dense.shape[0]
        ctx.n_rows, ctx.row_order = n_rows, row_order
        products = values.reshape(-1, *([1] * (dense.ndim - 1))) * dense[cols]
        return _row_sums(rows, products, n_rows, row_order).astype(np.result_type(values, dense), copy=False)

    def backward(ctx, grad):
        values, dense = ctx.saved
        g_values = g_dense = None
        picked = grad[ctx.rows]
        if ctx.needs(0):
            g_values = (picked * dense[ctx.cols]).reshape(picked.shape[0], -1).sum(-1).astype(values.dtype, copy=False)
        if ctx.needs(1):
            products = values.reshape(-1, *([1] * (grad.ndim - 1))) * picked
            g_dense = _row_sums(ctx.cols, products, ctx.n_cols, ctx.col_order).astype(dense.dtype, copy=False)
        return g_values, g_dense

    def grad_graph(ctx, grad):
        values, dense = (ctx.graph_input(i, v) for i, v in enumerate(ctx.saved))
        g_values = g_dense = None
        if ctx.graph_needs(0):
            picked = grad[Tensor(ctx.rows)] * dense[Tensor(ctx.cols)]
            g_values = picked.reshape(picked.shape[0], -1).sum(-1)
        if ctx.graph_needs(1):
            # The transposed sparse matrix times the gradient: the same op with rows and columns swapped.
            g_dense = SpMM.apply(values, grad, ctx.cols, ctx.rows, ctx.n_cols, ctx.col_order, ctx.row_order)
        return g_values, g_dense


def _orders(sp):
    rows, cols = sp._idx[0], sp._idx[1]
    row_order = None if sp._coalesced else np.argsort(rows, kind="stable")
    col_order = np.argsort(cols, kind="stable")
    return rows, cols, row_order, col_order


def spmm(input, mat2):
    """The product of a 2-d sparse tensor and a dense matrix (or vector): a dense tensor; differentiable in
    both (the sparse gradient keeps the sparse pattern)."""
    if not isinstance(input, SparseTensor):
        raise TypeError("spmm(): the first operand must be a sparse tensor")
    if input.sparse_dim() != 2 or input.dense_dim():
        raise RuntimeError("spmm(): the sparse operand must be a 2-d matrix with scalar values")
    d = ensure_tensor(mat2)
    vector = d.array.ndim == 1
    if vector:
        d = S.unsqueeze(d, 1)
    if d.array.ndim != 2 or d.array.shape[0] != input.shape[1]:
        raise RuntimeError(f"spmm(): shapes {input.shape} and {tuple(ensure_tensor(mat2).array.shape)} cannot be multiplied")
    vals = input._vals
    if vals.array.dtype != d.array.dtype:
        dtype = backend.promote_types(vals.array.dtype, d.array.dtype)
        vals, d = vals.to(dtype), d.to(dtype)
    rows, cols, row_order, col_order = _orders(input)
    out = SpMM.apply(vals, d, rows=rows, cols=cols, n_rows=input.shape[0], row_order=row_order,
                     col_order=col_order)
    return S.squeeze(out, 1) if vector else out


def mm(input, mat2):
    """``input @ mat2`` for matrices; ``input`` may be a sparse tensor (then the product is dense)."""
    if isinstance(input, SparseTensor):
        return spmm(input, mat2)
    if isinstance(mat2, SparseTensor):
        return S.transpose(spmm(mat2.t(), S.transpose(ensure_tensor(input), 0, 1)), 0, 1)
    return _L.mm(input, mat2)


def matmul(input, other):
    """``input @ other`` (PyTorch's matmul); a sparse 2-d operand is multiplied by ``spmm``."""
    if isinstance(input, SparseTensor) or isinstance(other, SparseTensor):
        return mm(input, other)
    return _L.matmul(input, other)


def _is_sparse(self):
    return False


def _layout(self):
    return strided


def _dense_to_dense(self, dtype=None, *, masked_grad=None):
    """A dense tensor is already dense: itself (cast to ``dtype`` if given)."""
    return self if dtype is None else self.to(dtype)


install(to_sparse=_to_sparse, to_sparse_coo=_to_sparse, is_sparse=property(_is_sparse), layout=property(_layout),
        to_dense=_dense_to_dense)
