"""Matrix helpers: diagonals, triangle indices, traces, Kronecker and cross products, determinants and
inverses, the ``add*mm`` family, tensordot, block diagonals, grids, pairwise distances and covariance.

Determinants, inverses, pseudo-inverses, Cholesky factors and matrix exponentials are computed by NumPy's
LAPACK bindings (batched over leading dimensions) and each has its derivative written out; most of the
others are compositions of differentiable ops, so their gradients come for free.
"""
import builtins
import itertools
import math
import sys

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap
from ..backend import array_module
from . import elementwise as E
from . import linalg as L
from . import reduce as R
from . import shape as S
from ._util import ensure_tensor, install, normalize_dim

__all__ = [
    "diag", "diag_embed", "diagonal", "diagflat", "trace", "tril_indices", "triu_indices", "kron", "cross",
    "det", "logdet", "slogdet", "inverse", "pinverse", "cholesky", "matrix_power", "matrix_exp", "addmm",
    "addbmm", "baddbmm", "addmv", "addr", "vdot", "inner", "tensordot", "chain_matmul", "block_diag", "cdist",
    "cosine_similarity", "pairwise_distance", "vander", "meshgrid", "cartesian_prod", "combinations", "cov",
    "corrcoef", "cholesky_solve", "cholesky_inverse", "triangular_solve",
]


def _mT(a):
    return array_module(a).swapaxes(a, -1, -2)


# --------------------------------------------------------------------------- diagonals
def _diagonal_view(a, offset, dim1, dim2):
    """A writable view of the diagonal of ``a`` over ``dim1, dim2`` (PyTorch's layout: the other dims in
    order, then the diagonal)."""
    xp = array_module(a)
    rest = [d for d in range(a.ndim) if d not in (dim1, dim2)]
    t = a.transpose(rest + [dim1, dim2])
    if offset >= 0:
        t = t[..., :, offset:]
    else:
        t = t[..., -offset:, :]
    n = builtins.max(builtins.min(t.shape[-2], t.shape[-1]), 0)
    return xp.lib.stride_tricks.as_strided(t, t.shape[:-2] + (n,), t.strides[:-2] + (t.strides[-2] + t.strides[-1],))


class Diagonal(Function):
    """``diagonal(x, offset, dim1, dim2)``: a view; writes into it reach the input."""

    is_view = True

    def forward(ctx, a, offset, dim1, dim2):
        ctx.shape, ctx.args = a.shape, (offset, dim1, dim2)
        return _diagonal_view(a, offset, dim1, dim2)

    def backward(ctx, grad):
        out = array_module(grad).zeros(ctx.shape, grad.dtype)
        _diagonal_view(out, *ctx.args)[...] = grad
        return out

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: Diagonal.apply(v, *ctx.args))


class DiagEmbed(Function):
    def forward(ctx, a, offset, dim1, dim2, shape):
        out = array_module(a).zeros(shape, a.dtype)
        _diagonal_view(out, offset, dim1, dim2)[...] = a
        ctx.args = (offset, dim1, dim2)
        ctx.out_shape = shape
        return out

    def backward(ctx, grad):
        return _diagonal_view(grad, *ctx.args).copy()

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v: DiagEmbed.apply(v, *ctx.args, ctx.out_shape))


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal of ``input`` over ``dim1, dim2`` (shifted by ``offset``), as a view appended as the last
    dim; differentiable."""
    x = ensure_tensor(input)
    nd = x.array.ndim
    if nd < 2:
        raise RuntimeError(f"diagonal(): expected a tensor with at least 2 dimensions, got {nd}")
    d1, d2 = normalize_dim(dim1, nd, "diagonal"), normalize_dim(dim2, nd, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal(): dim1 and dim2 must differ, both are {d1}")
    return Diagonal.apply(x, builtins.int(offset), d1, d2)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Tensors whose diagonals (over ``dim1, dim2`` of the result, shifted by ``offset``) are the last dim
    of ``input``, zeros elsewhere; differentiable."""
    x = ensure_tensor(input)
    nd = x.array.ndim + 1
    d1, d2 = normalize_dim(dim1, nd, "diag_embed"), normalize_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diag_embed(): dim1 and dim2 must differ, both are {d1}")
    n = x.array.shape[-1] + builtins.abs(builtins.int(offset))
    rest = iter(x.array.shape[:-1])
    shape = tuple(n if d in (d1, d2) else next(rest) for d in range(nd))
    return DiagEmbed.apply(x, builtins.int(offset), d1, d2, shape)


def diag(input, diagonal=0):  # noqa: A002 - PyTorch's keyword
    """A 1-d input becomes a square matrix with it on diagonal ``diagonal``; a 2-d input gives that
    diagonal as a 1-d tensor. Differentiable."""
    x = ensure_tensor(input)
    if x.array.ndim == 1:
        return diag_embed(x, diagonal, 0, 1)
    if x.array.ndim == 2:
        return Diagonal.apply(x, builtins.int(diagonal), 0, 1).clone()
    raise RuntimeError(f"diag(): expected a 1-d or 2-d tensor, got {x.array.ndim} dimensions")


def diagflat(input, offset=0):
    """``diag`` of the flattened input: a square matrix with it on diagonal ``offset``."""
    return diag(S.reshape(ensure_tensor(input), (-1,)), offset)


def trace(input):
    """The sum of the main diagonal of a 2-d tensor (integers sum to int64); differentiable."""
    x = ensure_tensor(input)
    if x.array.ndim != 2:
        raise RuntimeError(f"trace(): expected a matrix, got {x.array.ndim} dimensions")
    return R.sum(Diagonal.apply(x, 0, 0, 1))


def _triangle_indices(row, col, offset, dtype, upper):
    if dtype is None:
        dtype = np.int64
    m = np.ones((row, col), dtype=bool)
    mask = np.triu(m, offset) if upper else np.tril(m, offset)
    rows, cols = np.nonzero(mask)
    return _wrap(np.stack([rows, cols]).astype(backend.to_dtype(dtype)), False, None, 0)


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """The ``(2, n)`` int64 coordinates of the lower triangle of a ``row x col`` matrix (row by row)."""
    return _triangle_indices(row, col, offset, dtype, False)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """The ``(2, n)`` int64 coordinates of the upper triangle of a ``row x col`` matrix (row by row)."""
    return _triangle_indices(row, col, offset, dtype, True)


# --------------------------------------------------------------------------- products
def kron(input, other):
    """The Kronecker product (dims aligned from the right); differentiable."""
    a, b = ensure_tensor(input), ensure_tensor(other)
    nd = builtins.max(a.array.ndim, b.array.ndim)
    sa = (1,) * (nd - a.array.ndim) + a.array.shape
    sb = (1,) * (nd - b.array.ndim) + b.array.shape
    a2 = S.reshape(a, tuple(v for s in sa for v in (s, 1)))
    b2 = S.reshape(b, tuple(v for s in sb for v in (1, s)))
    return S.reshape(E.mul(a2, b2), tuple(x * y for x, y in zip(sa, sb)))


class Cross(Function):
    def forward(ctx, a, b, dim):
        xp = array_module(a, b)
        ctx.save_for_backward(a, b)
        ctx.dim = dim
        return xp.cross(a, b, axis=dim)

    def backward(ctx, grad):
        a, b = ctx.saved
        xp = array_module(grad)
        d = ctx.dim
        ga = xp.cross(b, grad, axis=d) if ctx.needs(0) else None
        gb = xp.cross(grad, a, axis=d) if ctx.needs(1) else None
        return ga, gb

    def grad_graph(ctx, grad):
        a, b = (ctx.graph_input(i, v) for i, v in enumerate(ctx.saved))
        d = ctx.dim
        return (Cross.apply(b, grad, dim=d) if ctx.graph_needs(0) else None,
                Cross.apply(grad, a, dim=d) if ctx.graph_needs(1) else None)


def cross(input, other, dim=None):
    """The cross product of 3-vectors along ``dim`` (by default the first dim of size 3); differentiable."""
    a, b = E._binary_operands(ensure_tensor(input), ensure_tensor(other), "cross")
    shape = np.broadcast_shapes(a.array.shape, b.array.shape)
    if dim is None:
        dim = next((i for i, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise RuntimeError(f"cross(): no dimension of size 3 in shape {shape}")
    d = normalize_dim(dim, len(shape), "cross")
    if shape[d] != 3:
        raise RuntimeError(f"cross(): dimension {d} must have size 3, got {shape[d]}")
    a = S.broadcast_to(a, shape) if a.array.shape != shape else a
    b = S.broadcast_to(b, shape) if b.array.shape != shape else b
    return Cross.apply(a, b, d)


def _addmm_like(input, product, beta, alpha):
    amp = sys.modules.get("somanet.amp.autocast_mode")
    if amp is not None:  # under autocast addmm and its kin run in low precision, input included
        input = amp.lowered_operand(input, product)
    scaled = product if alpha == 1 else E.mul(product, alpha)
    if beta == 0:  # input only contributes its shape (and a zero gradient); its NaN and inf are ignored
        inp = ensure_tensor(input)
        return E.add(E.mul(E.where(E.isfinite(inp), inp, 0), 0), scaled)
    return E.add(input if beta == 1 else E.mul(input, beta), scaled)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (``input`` ignored, NaN included, when beta is 0)."""
    return _addmm_like(input, L.mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    return _addmm_like(input, L.bmm(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * sum_b batch1[b] @ batch2[b]``."""
    return _addmm_like(input, R.sum(L.bmm(batch1, batch2), 0), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``."""
    return _addmm_like(input, L.mv(mat, vec), beta, alpha)


def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)``."""
    from .index import outer

    return _addmm_like(input, outer(vec1, vec2), beta, alpha)


def vdot(input, other):
    """The dot product of two 1-d tensors (real tensors: ``dot``)."""
    return L.dot(input, other)


def tensordot(a, b, dims=2):
    """Contract the last ``dims`` dims of ``a`` with the first of ``b`` (or the dim lists ``dims = (da,
    db)``); differentiable."""
    a, b = ensure_tensor(a), ensure_tensor(b)
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, builtins.int):
        da = list(range(a.array.ndim - dims, a.array.ndim))
        db = list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, builtins.int) else list(da)
        db = [db] if isinstance(db, builtins.int) else list(db)
    da = [normalize_dim(d, a.array.ndim, "tensordot") for d in da]
    db = [normalize_dim(d, b.array.ndim, "tensordot") for d in db]
    if len(da) != len(db):
        raise RuntimeError(f"tensordot(): both sides must contract the same number of dims, got {da} and {db}")
    for i, j in zip(da, db):
        if a.array.shape[i] != b.array.shape[j]:
            raise RuntimeError(f"tensordot(): contracted dims differ in size: {a.array.shape[i]} (dim {i} of a) "
                               f"and {b.array.shape[j]} (dim {j} of b)")
    fa = [d for d in range(a.array.ndim) if d not in da]
    fb = [d for d in range(b.array.ndim) if d not in db]
    k = math.prod(a.array.shape[d] for d in da)
    am = S.reshape(S.permute(a, fa + da), (math.prod(a.array.shape[d] for d in fa), k))
    bm = S.reshape(S.permute(b, db + fb), (k, math.prod(b.array.shape[d] for d in fb)))
    out = L.matmul(am, bm)
    return S.reshape(out, tuple(a.array.shape[d] for d in fa) + tuple(b.array.shape[d] for d in fb))


def inner(input, other):
    """Sum of products over the last dims of both tensors (a product when either is 0-d)."""
    a, b = ensure_tensor(input), ensure_tensor(other)
    if a.array.ndim == 0 or b.array.ndim == 0:
        return E.mul(a, b)
    return tensordot(a, b, ([-1], [-1]))


def chain_matmul(*matrices, out=None):
    """The product of the given matrices, left to right."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    if not matrices:
        raise RuntimeError("chain_matmul(): expected at least one matrix")
    result = matrices[0]
    for m in matrices[1:]:
        result = L.mm(result, m)
    return result


# --------------------------------------------------------------------------- LAPACK-backed ops
def _float_matrix(x, op):
    t = ensure_tensor(x)
    if t.array.dtype.kind not in "f":
        raise RuntimeError(f"{op}(): expected a floating point tensor, got {t.array.dtype}")
    if t.array.ndim < 2:
        raise RuntimeError(f"{op}(): expected a tensor with at least 2 dimensions, got {t.array.ndim}")
    return t


def _square(x, op):
    t = _float_matrix(x, op)
    if t.array.shape[-1] != t.array.shape[-2]:
        raise RuntimeError(f"{op}(): expected square matrices, got shape {tuple(t.array.shape)}")
    return t


class Inverse(Function):
    def forward(ctx, a):
        xp = array_module(a)
        try:
            out = xp.linalg.inv(a)
        except np.linalg.LinAlgError:
            raise RuntimeError("inverse(): the matrix is singular") from None
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (inv,) = ctx.saved
        t = _mT(inv)
        return -(t @ grad @ t)

    def grad_graph(ctx, grad):
        t = S.transpose(ctx.graph_output(ctx.saved[0]), -2, -1)
        return -L.matmul(L.matmul(t, grad), t)


class Det(Function):
    def forward(ctx, a):
        out = array_module(a).linalg.det(a)
        ctx.save_for_backward(a, out)
        return out.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        a, det = ctx.saved
        xp = array_module(grad)
        try:
            inv_t = _mT(xp.linalg.inv(a))
            return (grad * det)[..., None, None] * inv_t
        except np.linalg.LinAlgError:  # singular: d det = adj(A)^T, from the SVD (A = U S V^T)
            u, s, vt = xp.linalg.svd(a)
            n = s.shape[-1]
            prods = xp.stack([xp.prod(xp.delete(s, i, axis=-1), axis=-1) for i in range(n)], axis=-1)
            sign = xp.linalg.det(u) * xp.linalg.det(vt)
            adj_t = (u * prods[..., None, :]) @ vt * sign[..., None, None]
            return grad[..., None, None] * adj_t

    def grad_graph(ctx, grad):
        a, det_ = ctx.saved
        if np.any(det_ == 0):
            raise RuntimeError("create_graph=True: Det's backward is not differentiable in somanet yet for a "
                               "singular matrix")
        det_t = ctx.graph_output(det_)
        return _unsqueeze2(grad * det_t) * _inverse_t(ctx.graph_input(0, a))


class SlogDet(Function):
    def forward(ctx, a):
        sign, logabs = array_module(a).linalg.slogdet(a)
        ctx.save_for_backward(a)
        return sign.astype(a.dtype), logabs.astype(a.dtype)

    def backward(ctx, grad_sign, grad_log):
        (a,) = ctx.saved
        if grad_log is None:
            return None
        return grad_log[..., None, None] * _mT(array_module(a).linalg.inv(a))

    def grad_graph(ctx, grad_sign, grad_log):
        if grad_log is None:
            return (None,)
        return (_unsqueeze2(grad_log) * _inverse_t(ctx.graph_input(0, ctx.saved[0])),)


class LogDet(Function):
    def forward(ctx, a):
        xp = array_module(a)
        sign, logabs = xp.linalg.slogdet(a)
        ctx.save_for_backward(a)
        with np.errstate(invalid="ignore"):
            out = xp.where(sign < 0, np.nan, logabs)
        return out.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad[..., None, None] * _mT(array_module(a).linalg.inv(a))

    def grad_graph(ctx, grad):
        return _unsqueeze2(grad) * _inverse_t(ctx.graph_input(0, ctx.saved[0]))


def _unsqueeze2(t):
    """``t[..., None, None]`` on a tensor of the graph."""
    return S.reshape(t, tuple(t.shape) + (1, 1))


def _inverse_t(a):
    """``inverse(a)^T`` (last two dims) on a tensor of the graph."""
    return S.transpose(Inverse.apply(a), -2, -1)


def inverse(input):
    """The inverse of a square matrix (or a batch); differentiable."""
    return Inverse.apply(_square(input, "inverse"))


def det(input):
    """The determinant of a square matrix (or a batch); differentiable, singular matrices included."""
    return Det.apply(_square(input, "det"))


def slogdet(input):
    """``(sign, log|det|)`` of a square matrix (or a batch); the log is differentiable."""
    from collections import namedtuple

    sign, logabs = SlogDet.apply(_square(input, "slogdet"))
    return namedtuple("slogdet", ["sign", "logabsdet"])(sign, logabs)


def logdet(input):
    """``log(det(input))``: NaN for a negative determinant, -inf for a singular matrix; differentiable."""
    return LogDet.apply(_square(input, "logdet"))


class Pinverse(Function):
    def forward(ctx, a, rcond):
        out = array_module(a).linalg.pinv(a, rcond=rcond).astype(a.dtype, copy=False)
        ctx.save_for_backward(a, out)
        return out

    def backward(ctx, grad):
        a, x = ctx.saved
        xp = array_module(grad)
        xt, at, gt = _mT(x), _mT(a), _mT(grad)
        m, n = a.shape[-2], a.shape[-1]
        left = xp.eye(m, dtype=a.dtype) - a @ x
        right = xp.eye(n, dtype=a.dtype) - x @ a
        del at
        return -(xt @ grad @ xt) + left @ gt @ x @ xt + xt @ x @ gt @ right

    def grad_graph(ctx, grad):
        a, x = ctx.saved
        m, n = a.shape[-2], a.shape[-1]
        a, x = ctx.graph_input(0, a), ctx.graph_output(x)
        mm = L.matmul

        def tr(t):
            return S.transpose(t, -2, -1)

        xt, gt = tr(x), tr(grad)
        left = Tensor(np.eye(m, dtype=a.dtype)) - mm(a, x)
        right = Tensor(np.eye(n, dtype=a.dtype)) - mm(x, a)
        return -mm(mm(xt, grad), xt) + mm(mm(mm(left, gt), x), xt) + mm(mm(mm(xt, x), gt), right)


def pinverse(input, rcond=1e-15):
    """The Moore-Penrose pseudo-inverse (from the SVD; singular values below ``rcond`` times the largest
    count as 0); differentiable where the rank does not change."""
    return Pinverse.apply(_float_matrix(input, "pinverse"), rcond=rcond)


class Cholesky(Function):
    def forward(ctx, a, upper):
        xp = array_module(a)
        try:
            low = xp.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            raise RuntimeError("cholesky(): the input is not positive-definite") from None
        ctx.save_for_backward(low)
        ctx.upper = upper
        return _mT(low).copy() if upper else low

    def backward(ctx, grad):
        (low,) = ctx.saved
        xp = array_module(grad)
        g = _mT(grad) if ctx.upper else grad
        # For A = L L^T: with P = L^T gL, its lower triangle with the diagonal halved, the gradient is
        # L^-T P L^-1, made symmetric.
        phi = xp.tril(_mT(low) @ g)
        n = phi.shape[-1]
        phi[..., range(n), range(n)] *= 0.5
        linv = xp.linalg.inv(low)
        s = _mT(linv) @ phi @ linv
        return 0.5 * (s + _mT(s))

    def grad_graph(ctx, grad):
        from .index import tril

        (low,) = ctx.saved
        if ctx.upper:  # the output is L^T: its transpose is the factor
            low = S.transpose(ctx.graph_output(_mT(low)), -2, -1)
            grad = S.transpose(grad, -2, -1)
        else:
            low = ctx.graph_output(low)
        n = low.shape[-1]
        half = Tensor(np.where(np.eye(n, dtype=bool), 0.5, 1.0).astype(low.dtype))
        phi = tril(L.matmul(S.transpose(low, -2, -1), grad)) * half
        linv = Inverse.apply(low)
        s = L.matmul(L.matmul(S.transpose(linv, -2, -1), phi), linv)
        return 0.5 * (s + S.transpose(s, -2, -1))


def cholesky(input, upper=False):
    """The Cholesky factor ``L`` (lower; ``upper=True``: ``L^T``) of a symmetric positive-definite matrix
    (or a batch); differentiable."""
    return Cholesky.apply(_square(input, "cholesky"), builtins.bool(upper))


class _EyeLike(Function):
    """Identity matrices of the input's shape; the input gets a zero gradient."""

    def forward(ctx, a):
        xp = array_module(a)
        return xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape).copy()

    def backward(ctx, grad):
        return array_module(grad).zeros_like(grad)

    def grad_graph(ctx, grad):
        return grad * 0


def matrix_power(input, n):
    """``input`` multiplied by itself ``n`` times (the identity for 0, powers of the inverse below 0)."""
    x = _square(input, "matrix_power") if ensure_tensor(input).array.dtype.kind == "f" else ensure_tensor(input)
    n = builtins.int(n)
    if n == 0:
        return _EyeLike.apply(x)
    if n < 0:
        x, n = inverse(x), -n
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else L.matmul(result, base)
        n >>= 1
        if n:
            base = L.matmul(base, base)
    return result


def _expm(a):
    """The matrix exponential of a batch of float64 matrices: Taylor series after scaling, then squaring."""
    xp = array_module(a)
    norm = xp.abs(a).sum(axis=-2).max(axis=-1) if a.size else xp.zeros(a.shape[:-2])
    s = builtins.int(builtins.max(0, math.ceil(math.log2(builtins.max(float(xp.max(norm, initial=0.0)), 1e-300)) + 1)))
    b = a / 2.0 ** s
    n = a.shape[-1]
    out = xp.broadcast_to(xp.eye(n), a.shape).copy()
    term = out.copy()
    for k in range(1, 30):
        term = term @ b / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


class MatrixExp(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _expm(a.astype(np.float64)).astype(a.dtype)

    def backward(ctx, grad):
        (a,) = ctx.saved
        xp = array_module(grad)
        n = a.shape[-1]
        # The Frechet derivative: the top-right block of exp([[A^T, G], [0, A^T]]).
        block = xp.zeros(a.shape[:-2] + (2 * n, 2 * n))
        block[..., :n, :n] = _mT(a)
        block[..., n:, n:] = _mT(a)
        block[..., :n, n:] = grad
        return _expm(block)[..., :n, n:].astype(grad.dtype)

    def grad_graph(ctx, grad):
        # The same Frechet block, assembled from tensors, through this differentiable op again.
        a = S.transpose(ctx.graph_input(0, ctx.saved[0]), -2, -1)
        zero = Tensor(np.zeros(a.shape, a.dtype))
        block = S.cat([S.cat([a, grad], -1), S.cat([zero, a], -1)], -2)
        n = a.shape[-1]
        return MatrixExp.apply(block)[..., :n, n:]


def matrix_exp(input):
    """The matrix exponential of a square matrix (or a batch); differentiable."""
    return MatrixExp.apply(_square(input, "matrix_exp"))


def cholesky_solve(B, L, upper=False):
    """The solution ``X`` of ``A X = B`` given the Cholesky factor ``L`` of ``A`` (``A = L L^T``, or
    ``U^T U`` with ``upper``); differentiable."""
    from ..linalg import solve

    return solve(_gram(ensure_tensor(L), upper), B)


def _gram(f, upper):
    """``f f^T`` (``f^T f`` with ``upper``)."""
    t = S.transpose(f, -2, -1)
    return L.matmul(t, f) if upper else L.matmul(f, t)


def cholesky_inverse(L, upper=False):
    """The inverse of ``A`` given its Cholesky factor (``A = L L^T``, or ``U^T U`` with ``upper``);
    differentiable."""
    return inverse(_gram(ensure_tensor(L), upper))


def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    """``(X, A)`` with ``X`` solving ``op(T) X = b`` for the triangle ``T`` of ``A`` (``op`` transposes with
    ``transpose``; a unit diagonal is assumed with ``unitriangular``); differentiable."""
    from collections import namedtuple

    from ..linalg import solve
    from .index import tril, triu

    a = ensure_tensor(A)
    t = triu(a) if upper else tril(a)
    if unitriangular:
        n = a.array.shape[-1]
        eye = array_module(a.array).eye(n, dtype=a.array.dtype)
        t = E.add(E.mul(t, Tensor(1 - eye)), Tensor(eye))
    if transpose:
        t = S.transpose(t, -2, -1)
    return namedtuple("triangular_solve", ["solution", "cloned_coefficient"])(solve(t, b), S.clone(a))


# --------------------------------------------------------------------------- assembling
class BlockDiag(Function):
    def forward(ctx, *blocks):
        xp = array_module(*blocks)
        dtype = blocks[0].dtype if len(blocks) == 1 else backend.result_type(*blocks)
        rows = builtins.sum(b.shape[0] for b in blocks)
        cols = builtins.sum(b.shape[1] for b in blocks)
        out = xp.zeros((rows, cols), dtype)
        spans = []
        r = c = 0
        for b in blocks:
            out[r:r + b.shape[0], c:c + b.shape[1]] = b
            spans.append((r, r + b.shape[0], c, c + b.shape[1]))
            r, c = r + b.shape[0], c + b.shape[1]
        ctx.spans = spans
        ctx.dtypes = [b.dtype for b in blocks]
        return out

    def backward(ctx, grad):
        return tuple(grad[r0:r1, c0:c1].astype(dt, copy=False) if dt.kind == "f" else None
                     for (r0, r1, c0, c1), dt in zip(ctx.spans, ctx.dtypes))

    def grad_graph(ctx, grad):
        def forward(*blocks):
            # A block without gradient (an integer one) contributes a zero tangent.
            return BlockDiag.apply(*(Tensor(np.zeros((r1 - r0, c1 - c0), grad.dtype)) if b is None else b
                                     for b, (r0, r1, c0, c1) in zip(blocks, ctx.spans)))

        return ctx.graph_linear((grad,), forward)


def block_diag(*tensors):
    """A matrix with the given tensors (0-d, 1-d as rows, or 2-d) along its diagonal; differentiable."""
    blocks = []
    for i, t in enumerate(tensors):
        t = ensure_tensor(t)
        if t.array.ndim > 2:
            raise RuntimeError(f"block_diag(): input {i} has {t.array.ndim} dimensions; expected at most 2")
        blocks.append(S.reshape(t, (1, -1)) if t.array.ndim < 2 else t)
    if not blocks:
        return _wrap(np.zeros((1, 0), backend.default_float), False, None, 0)
    return BlockDiag.apply(*blocks)


def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-d tensors (``indexing='ij'``, the default, or ``'xy'``); differentiable."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    indexing = indexing or "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid(): indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = [ensure_tensor(t) for t in tensors]
    for t in ts:
        if t.array.ndim > 1:
            raise RuntimeError(f"meshgrid(): expected 0-d or 1-d tensors, got {t.array.ndim} dimensions")
    ts = [S.reshape(t, (-1,)) for t in ts]
    shape = [t.array.shape[0] for t in ts]
    if indexing == "xy" and len(ts) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, t in enumerate(ts):
        pos = i
        if indexing == "xy" and len(ts) >= 2 and i < 2:
            pos = 1 - i
        view = [1] * len(ts)
        view[pos] = -1
        out.append(S.broadcast_to(S.reshape(t, tuple(view)), tuple(shape)))
    return tuple(out)


def cartesian_prod(*tensors):
    """Every combination of the elements of the given 1-d tensors, one per row (a 1-d input comes back
    as it is); differentiable."""
    if len(tensors) == 1:
        return ensure_tensor(tensors[0])
    grids = meshgrid(*tensors, indexing="ij")
    return S.stack([S.reshape(g, (-1,)) for g in grids], 1)


def combinations(input, r=2, with_replacement=False):
    """The length-``r`` combinations of the elements of a 1-d tensor, one per row; differentiable."""
    x = ensure_tensor(input)
    if x.array.ndim != 1:
        raise RuntimeError(f"combinations(): expected a 1-d tensor, got {x.array.ndim} dimensions")
    n = x.array.shape[0]
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(n), r)) if r > 0 else []
    idx = np.array(rows, dtype=np.int64).reshape((len(rows), r) if r > 0 else (0,))
    return x[Tensor(idx)]


def vander(x, N=None, increasing=False):
    """The Vandermonde matrix of a 1-d tensor: columns ``x**(N-1), ..., x, 1`` (reversed with
    ``increasing``); differentiable."""
    t = ensure_tensor(x)
    if t.array.ndim != 1:
        raise RuntimeError(f"vander(): expected a 1-d tensor, got {t.array.ndim} dimensions")
    n = t.array.shape[0] if N is None else builtins.int(N)
    if t.array.dtype.kind in "bu" or t.array.dtype in (np.int8, np.int16, np.int32):
        t = t.to(np.int64)
    if n == 0:
        return _wrap(np.zeros((t.array.shape[0], 0), t.array.dtype), False, None, 0)
    cols = [E.pow(t, k) if k > 1 else (t if k == 1 else E.mul(t, 0) + 1) for k in range(n)]
    if not increasing:
        cols = cols[::-1]
    return S.stack(cols, 1)


# --------------------------------------------------------------------------- distances
class Cdist(Function):
    def forward(ctx, a, b, p):
        xp = array_module(a, b)
        ctx.p = p
        if p == 2:
            aa = (a * a).sum(-1)[..., :, None]
            bb = (b * b).sum(-1)[..., None, :]
            sq = xp.maximum(aa + bb - 2 * (a @ _mT(b)), 0)
            # The expansion loses digits when the points are close: recompute those rows directly.
            out = xp.sqrt(sq)
            close = sq < 1e-4 * xp.maximum(aa, bb)
            if close.any():
                diff = a[..., :, None, :] - b[..., None, :, :]
                exact = xp.sqrt((diff * diff).sum(-1))
                out = xp.where(close, exact, out)
            out = out.astype(a.dtype, copy=False)
        else:
            diff = xp.abs(a[..., :, None, :] - b[..., None, :, :])
            if p == 0:
                out = (diff != 0).sum(-1).astype(a.dtype)
            elif p == np.inf:
                out = diff.max(-1, initial=0)
            elif p == 1:
                out = diff.sum(-1)
            else:
                out = (diff ** p).sum(-1) ** (1.0 / p)
            out = out.astype(a.dtype, copy=False)
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved
        xp = array_module(grad)
        p = ctx.p
        if p == 0:
            return xp.zeros_like(a), xp.zeros_like(b)
        if p == 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = xp.where(out == 0, 0, grad / out)
            ga = a * w.sum(-1)[..., None] - w @ b
            gb = b * w.sum(-2)[..., None] - _mT(w) @ a
            return ga, gb
        diff = a[..., :, None, :] - b[..., None, :, :]
        if p == 1:
            term = xp.sign(diff) * grad[..., None]
        elif p == np.inf:
            ad = xp.abs(diff)
            hit = ad == out[..., None]
            term = xp.sign(diff) * hit * grad[..., None]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                term = xp.sign(diff) * xp.abs(diff) ** (p - 1) / out[..., None] ** (p - 1) * grad[..., None]
            term = xp.where(out[..., None] == 0, 0, term)
        return term.sum(-2), -term.sum(-3)

    def grad_graph(ctx, grad):
        a, b, out = ctx.saved
        p = ctx.p
        if p == 0:
            return grad.sum() * Tensor(np.zeros_like(a)), grad.sum() * Tensor(np.zeros_like(b))
        ta, tb, tout = ctx.graph_input(0, a), ctx.graph_input(1, b), ctx.graph_output(out)

        def tr(t):
            return S.transpose(t, -2, -1)

        if p == 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = E.where(Tensor(out == 0), 0.0, grad / tout)
            ga = ta * S.unsqueeze(R.sum(w, -1), -1) - L.matmul(w, tb)
            gb = tb * S.unsqueeze(R.sum(w, -2), -1) - L.matmul(tr(w), ta)
            return ga, gb
        diff = S.unsqueeze(ta, -2) - S.unsqueeze(tb, -3)
        sign = E.sign(diff)  # a zero-derivative graph op, so the gradient stays in the graph as in PyTorch
        g = S.unsqueeze(grad, -1)
        if p == 1:
            term = sign * g
        elif p == np.inf:
            hit = np.abs(a[..., :, None, :] - b[..., None, :, :]) == out[..., None]
            term = sign * Tensor(hit.astype(a.dtype)) * g
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                term = sign * E.abs(diff) ** (p - 1) / S.unsqueeze(tout, -1) ** (p - 1) * g
            term = E.where(Tensor(out[..., None] == 0), 0.0, term)
        return R.sum(term, -2), -R.sum(term, -3)


def cdist(x1, x2, p=2.0, compute_mode=None):
    """The ``p``-norm distance between each row of ``x1`` (``(*, P, M)``) and each row of ``x2``
    (``(*, R, M)``): ``(*, P, R)``; differentiable (the gradient is 0 where two points coincide)."""
    a, b = ensure_tensor(x1), ensure_tensor(x2)
    if a.array.dtype.kind != "f" or b.array.dtype.kind != "f":
        raise RuntimeError("cdist(): only floating point tensors are supported")
    if a.array.ndim < 2 or b.array.ndim < 2 or a.array.shape[-1] != b.array.shape[-1]:
        raise RuntimeError(f"cdist(): x1 {tuple(a.array.shape)} and x2 {tuple(b.array.shape)} must be at least 2-d "
                           f"with the same last dim")
    if p < 0:
        raise RuntimeError(f"cdist(): p must be non-negative, got {p}")
    lead = np.broadcast_shapes(a.array.shape[:-2], b.array.shape[:-2])
    if a.array.shape[:-2] != lead:
        a = S.broadcast_to(a, lead + a.array.shape[-2:])
    if b.array.shape[:-2] != lead:
        b = S.broadcast_to(b, lead + b.array.shape[-2:])
    if a.array.dtype != b.array.dtype:
        a, b = E._binary_operands(a, b, "cdist")
    return Cdist.apply(a, b, builtins.float(p))


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``sum(x1 / |x1| * x2 / |x2|)`` along ``dim`` (inputs broadcast), each norm raised to at least
    ``eps``; differentiable, with PyTorch's gradient (the raise to ``eps`` changes the value only, the
    gradient flows through the norm as it is)."""
    a, b = ensure_tensor(x1), ensure_tensor(x2)
    shape = np.broadcast_shapes(a.array.shape, b.array.shape)
    d = normalize_dim(dim, len(shape), "cosine_similarity")

    def unit(t):
        n = R.norm(t, 2, d, True)
        raw = n.array
        lifted = array_module(raw).maximum(raw, raw.dtype.type(eps)) - raw
        return E.div(t, E.add(n, Tensor(lifted)))

    return R.sum(E.mul(unit(a), unit(b)), d)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``norm(x1 - x2 + eps, p)`` over the last dim; differentiable."""
    diff = E.add(E.sub(x1, x2), eps)
    if diff.array.ndim == 0:
        diff = S.reshape(diff, (1,))
    return R.norm(diff, p, -1, keepdim)


# --------------------------------------------------------------------------- statistics of variables
def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance matrix of the variables in the rows of ``input`` (observations in columns), with
    optional integer frequency and float observation weights; differentiable."""
    x = ensure_tensor(input)
    if x.array.ndim > 2:
        raise RuntimeError(f"cov(): expected a tensor with at most 2 dimensions, got {x.array.ndim}")
    if x.array.dtype.kind != "f":
        x = x.to(backend.default_float)
    if x.array.ndim < 2:
        x = S.reshape(x, (1, -1))
    n = x.array.shape[1]
    w = None
    if fweights is not None:
        w = ensure_tensor(fweights)
    if aweights is not None:
        w = ensure_tensor(aweights) if w is None else E.mul(w, aweights)
    if w is None:
        mean = R.mean(x, 1, keepdim=True)
        xc = E.sub(x, mean)
        denom = n - correction
        c = E.div(L.matmul(xc, S.t(xc)), builtins.max(denom, 0))
    else:
        w = w.to(x.dtype) if w.array.dtype != x.array.dtype else w
        wsum = R.sum(w)
        mean = E.div(R.sum(E.mul(x, w), 1, keepdim=True), wsum)
        xc = E.sub(x, mean)
        if correction == 0:
            denom = wsum
        elif aweights is None:
            denom = E.sub(wsum, correction)
        else:
            denom = E.sub(wsum, E.div(E.mul(R.sum(E.mul(w, ensure_tensor(aweights).to(x.dtype))), correction), wsum))
        denom = E.clamp(denom, 0, None)
        c = E.div(L.matmul(E.mul(xc, w), S.t(xc)), denom)
    return S.reshape(c, ()) if _one_variable(ensure_tensor(input)) else c


def _one_variable(t):
    """Whether ``cov``'s input holds a single variable (its result is then 0-d, as in PyTorch)."""
    return t.array.ndim < 2 or t.array.shape[0] == 1


def corrcoef(input):
    """Pearson correlation coefficients of the variables in the rows of ``input`` (clipped to [-1, 1]);
    differentiable."""
    c = cov(input)
    if c.array.ndim == 0:
        return E.div(c, c)
    d = diag(c)
    sd = E.sqrt(d)
    c = E.div(E.div(c, S.reshape(sd, (-1, 1))), S.reshape(sd, (1, -1)))
    return E.clamp(c, -1, 1)


# --------------------------------------------------------------------------- Tensor methods
def _diagonal_method(self, offset=0, dim1=0, dim2=1):
    return diagonal(self, offset, dim1, dim2)


def _fill_diagonal_(self, fill_value, wrap=False):
    """Fill the main diagonal (all dims equal: ``x[i, i, ..., i]``) in place; ``wrap`` restarts it below
    the square part of a tall matrix, as in PyTorch."""
    from .index import _inplace

    a = self.array
    if a.ndim < 2:
        raise RuntimeError("fill_diagonal_(): dimensions must be larger than 1")
    if a.ndim > 2 and len(set(a.shape)) != 1:
        raise RuntimeError("fill_diagonal_(): all dimensions of input must be of equal length")
    value = fill_value.item() if isinstance(fill_value, Tensor) else fill_value

    def graph_op(old):
        xp = array_module(a)
        mask = xp.zeros(a.shape, bool)
        _fill_into(mask, True, wrap)
        return E.where(Tensor(mask), Tensor(xp.asarray(value, a.dtype)), old)

    return _inplace(self, "fill_diagonal_", lambda data: _fill_into(data, value, wrap), graph_op)


def _fill_into(data, value, wrap):
    if data.ndim == 2:
        rows, cols = data.shape
        n = builtins.min(rows, cols)
        xp = array_module(data)
        idx = xp.arange(n)
        data[idx, idx] = value
        if wrap and rows > cols + 1:
            start = cols + 1
            while start < rows:
                k = builtins.min(cols, rows - start)
                data[start + xp.arange(k), xp.arange(k)] = value
                start += cols + 1
    else:
        idx = array_module(data).arange(data.shape[0])
        data[(idx,) * data.ndim] = value


def _inplace_triangle(name, fn):
    def method(self, diagonal=0):  # noqa: A002
        from .index import _inplace

        def array_op(data):
            keep = fn(np.ones(data.shape[-2:], bool), diagonal)
            data[..., ~keep] = 0

        return _inplace(self, name, array_op, lambda old: getattr(old, name[:-1])(diagonal))

    method.__name__ = name
    method.__doc__ = f"In-place ``{name[:-1]}``."
    return method


install(
    diag=diag, diag_embed=diag_embed, diagonal=_diagonal_method, diagflat=diagflat, trace=trace, kron=kron,
    cross=cross, det=det, logdet=logdet, slogdet=slogdet, inverse=inverse, pinverse=pinverse, cholesky=cholesky,
    matrix_power=matrix_power, matrix_exp=matrix_exp, addmm=addmm, addbmm=addbmm, baddbmm=baddbmm, addmv=addmv,
    addr=addr, vdot=vdot, inner=inner, cov=cov, corrcoef=corrcoef, fill_diagonal_=_fill_diagonal_,
    cholesky_solve=cholesky_solve, cholesky_inverse=cholesky_inverse, triangular_solve=triangular_solve,
    tril_=_inplace_triangle("tril_", np.tril), triu_=_inplace_triangle("triu_", np.triu),
)
