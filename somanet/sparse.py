"""``somanet.sparse``: PyTorch's ``torch.sparse`` functions for sparse COO tensors.

>>> import somanet
>>> a = somanet.sparse_coo_tensor([[0, 1], [1, 0]], [2.0, 3.0], (2, 2))
>>> somanet.sparse.mm(a, somanet.ones(2, 1))
tensor([[2.],
        [3.]])
"""
from .ops import elementwise as _E
from .ops import reduce as _R
from .ops.sparse import SparseTensor, sparse_coo_tensor, spmm  # noqa: F401

__all__ = ["mm", "addmm", "sum", "spmm", "sparse_coo_tensor", "SparseTensor"]


def mm(mat1, mat2):
    """The product of a 2-d sparse tensor and a dense matrix, as a dense tensor; differentiable in both."""
    from .ops.sparse import mm as _mm

    return _mm(mat1, mat2)


def addmm(mat, mat1, mat2, *, beta=1.0, alpha=1.0):
    """``beta * mat + alpha * (mat1 @ mat2)`` for a sparse ``mat1`` and dense ``mat`` and ``mat2``."""
    prod = mm(mat1, mat2)
    if alpha != 1:
        prod = _E.mul(prod, alpha)
    return _E.add(mat if beta == 1 else _E.mul(mat, beta), prod)


def sum(input, dim=None, dtype=None):  # noqa: A001 - PyTorch's name
    """The sum of a sparse tensor: a dense 0-d tensor over everything, else over ``dim`` (an int or
    tuple): sparse while sparse dims remain, dense otherwise. Differentiable in the values."""
    if not isinstance(input, SparseTensor):
        return _R.sum(input, dim, dtype=dtype)
    vals = input._values() if dtype is None else input._values().to(dtype)
    if dim is None:
        return _R.sum(vals)
    nd = input.ndim
    dims = sorted({d % nd for d in ((dim,) if isinstance(dim, int) else dim)})
    sd = input.sparse_dim()
    sparse_dims = [d for d in dims if d < sd]
    dense_dims = [d - sd + 1 for d in dims if d >= sd]
    if dense_dims:
        vals = _R.sum(vals, tuple(dense_dims))
    keep = [d for d in range(sd) if d not in sparse_dims]
    shape = tuple(n for d, n in enumerate(input.shape) if d not in dims)
    if not keep:
        return _R.sum(vals, 0)
    idx = input._idx[keep]
    return SparseTensor(idx, vals, shape, False).coalesce()
