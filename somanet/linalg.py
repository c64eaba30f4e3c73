"""``somanet.linalg``: PyTorch's ``torch.linalg`` on NumPy's LAPACK bindings, batched over leading dims.

Norms, inverses, determinants, solves, Cholesky, symmetric eigendecomposition, SVD, pseudo-inverses,
least squares, matrix powers and exponentials. Everything here is differentiable except ``qr`` (forward
only) and the integer-valued ``matrix_rank``; eigenvector and singular-vector gradients assume distinct
eigen/singular values, as PyTorch's do. Complex-valued functions (``eig``, ``eigvals``) are not provided.
"""
import builtins
from collections import namedtuple

import numpy as np

from .autograd.function import Function
from .autograd.tensor import Tensor, _wrap
from .backend import array_module
from .ops import elementwise as E
from .ops import linalg as _L
from .ops import matrix as M
from .ops import reduce as R
from .ops import shape as S
from .ops._util import ensure_tensor, normalize_dim

__all__ = [
    "norm", "vector_norm", "matrix_norm", "inv", "inv_ex", "det", "slogdet", "solve", "cholesky", "cholesky_ex",
    "eigh", "eigvalsh", "svd", "svdvals", "qr", "pinv", "matrix_rank", "matrix_power", "matrix_exp", "multi_dot",
    "cross", "diagonal", "vecdot", "lstsq", "matmul", "vander",
]

_eigh = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
_svd = namedtuple("svd", ["U", "S", "Vh"])
_qr = namedtuple("qr", ["Q", "R"])
_slogdet = namedtuple("slogdet", ["sign", "logabsdet"])
_inv_ex = namedtuple("inv_ex", ["inverse", "info"])
_cholesky_ex = namedtuple("cholesky_ex", ["L", "info"])
_lstsq = namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])


def _mT(a):
    return array_module(a).swapaxes(a, -1, -2)


# --------------------------------------------------------------------------- norms
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """The ``ord``-norm of the elements of ``x`` over ``dim`` (all of them by default; ``inf``, ``-inf``
    and 0 included); differentiable."""
    t = ensure_tensor(x)
    if dtype is not None:
        t = t.to(dtype)
    if t.array.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm(): expected a floating point tensor, got {t.array.dtype}")
    if dim is None:
        out = R.norm(S.reshape(t, (-1,)), ord)
        if keepdim:
            out = S.reshape(out, (1,) * t.array.ndim)
        return out
    return R.norm(t, ord, dim, keepdim)


class Svdvals(Function):
    def forward(ctx, a):
        u, s, vh = array_module(a).linalg.svd(a, full_matrices=False)
        ctx.save_for_backward(u, vh, a)  # the input for create_graph's second pass
        return s.astype(a.dtype, copy=False)

    def backward(ctx, grad):
        u, vh = ctx.saved[:2]
        return (u * grad[..., None, :]) @ vh

    def grad_graph(ctx, grad):
        # U and Vh depend on the input: they come from a differentiable SVD of it, run again.
        u, _, vh = Svd.apply(ctx.graph_input(0, ctx.saved[2]), False)
        return _L.matmul(u * S.unsqueeze(grad, -2), vh)


def svdvals(A):
    """The singular values of ``A`` (or a batch), largest first; differentiable."""
    return Svdvals.apply(M._float_matrix(A, "linalg.svdvals"))


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):  # noqa: A002
    """A matrix norm over the two dims ``dim``: 'fro', 'nuc', 1, -1, 2, -2, inf or -inf; differentiable."""
    t = ensure_tensor(A)
    if dtype is not None:
        t = t.to(dtype)
    if t.array.ndim < 2:
        raise RuntimeError("linalg.matrix_norm(): expected a tensor with at least 2 dims")
    d0, d1 = (normalize_dim(d, t.array.ndim, "linalg.matrix_norm") for d in dim)
    if ord == "fro":
        out = R.norm(t, 2, (d0, d1), keepdim)
        return out
    if ord in ("nuc", 2, -2):
        moved = S.movedim(t, (d0, d1), (-2, -1))
        s = svdvals(moved)
        out = R.sum(s, -1) if ord == "nuc" else (R.amax(s, -1) if ord == 2 else R.amin(s, -1))
    elif ord in (1, -1, np.inf, -np.inf):
        inner, outer = (d0, d1) if ord in (1, -1) else (d1, d0)
        sums = R.sum(E.abs(t), inner, keepdim=True)
        out = (R.amax if ord > 0 else R.amin)(sums, outer, keepdim=True)
        out = S.squeeze(S.squeeze(out, builtins.max(d0, d1)), builtins.min(d0, d1))
    else:
        raise RuntimeError(f"linalg.matrix_norm(): order {ord!r} is not supported")
    if keepdim:
        out = S.unsqueeze(S.unsqueeze(out, builtins.min(d0, d1)), builtins.max(d0, d1))
    return out


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """A vector norm (``dim`` an int, or a 1-d input) or a matrix norm (``dim`` a pair, or a 2-d input);
    without ``ord`` and ``dim``, the 2-norm of all elements. Differentiable."""
    t = ensure_tensor(A)
    if isinstance(dim, builtins.int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(t, 2, None, keepdim, dtype=dtype)
        if t.array.ndim == 1:
            return vector_norm(t, ord, None, keepdim, dtype=dtype)
        if t.array.ndim == 2:
            return matrix_norm(t, ord, (-2, -1), keepdim, dtype=dtype)
        raise RuntimeError("linalg.norm(): with ord given, the input must be 1-d or 2-d unless dim is given")
    dim = tuple(dim)
    if len(dim) == 1:
        return vector_norm(t, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(t, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm(): dim must be an int or a pair, got {dim}")


# --------------------------------------------------------------------------- inverses and solves
def inv(A):
    """The inverse of a square matrix (or a batch); differentiable."""
    return M.inverse(A)


def inv_ex(A, *, check_errors=False):
    """``(inverse, info)``: ``info`` is 0 for every invertible matrix (singular ones raise)."""
    out = inv(A)
    return _inv_ex(out, _wrap(np.zeros(out.array.shape[:-2], np.int32), False, None, 0))


det = M.det


def slogdet(A):
    """``(sign, logabsdet)`` of a square matrix (or a batch); the log is differentiable."""
    sign, logabs = M.slogdet(A)
    return _slogdet(sign, logabs)


class Solve(Function):
    def forward(ctx, a, b):
        xp = array_module(a, b)
        try:
            x = xp.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            raise RuntimeError("linalg.solve(): the matrix is singular") from None
        ctx.save_for_backward(a, x)
        return x

    def backward(ctx, grad):
        a, x = ctx.saved
        gb = array_module(grad).linalg.solve(_mT(a), grad)
        ga = -(gb @ _mT(x)) if ctx.needs(0) else None
        return ga, gb

    def grad_graph(ctx, grad):
        a, x = ctx.saved
        gb = Solve.apply(S.transpose(ctx.graph_input(0, a), -2, -1), grad)
        ga = -_L.matmul(gb, S.transpose(ctx.graph_output(x), -2, -1)) if ctx.graph_needs(0) else None
        return ga, gb


def solve(A, B, *, left=True):
    """The solution ``X`` of ``A X = B`` (``X A = B`` with ``left=False``); ``B`` may be a batch of vectors.
    Differentiable in both."""
    a = M._square(A, "linalg.solve")
    b = ensure_tensor(B)
    if a.array.dtype != b.array.dtype:
        a, b = E._binary_operands(a, b, "linalg.solve")
    if not left:
        return S.transpose(solve(S.transpose(a, -2, -1), S.transpose(b, -2, -1)), -2, -1)
    vector = b.array.ndim == 1 or (b.array.ndim == a.array.ndim - 1 and b.array.shape == a.array.shape[:-1])
    if vector:
        b = S.unsqueeze(b, -1)
    lead = np.broadcast_shapes(a.array.shape[:-2], b.array.shape[:-2])
    if a.array.shape[:-2] != lead:
        a = S.broadcast_to(a, lead + a.array.shape[-2:])
    if b.array.shape[:-2] != lead:
        b = S.broadcast_to(b, lead + b.array.shape[-2:])
    x = Solve.apply(a, b)
    return S.squeeze(x, -1) if vector else x


def cholesky(A, *, upper=False):
    """The Cholesky factor of a symmetric positive-definite matrix (or a batch); differentiable."""
    return M.cholesky(A, upper)


def cholesky_ex(A, *, upper=False, check_errors=False):
    """``(L, info)``: ``info`` is 0 where the factorisation succeeded (a failure raises)."""
    out = cholesky(A, upper=upper)
    return _cholesky_ex(out, _wrap(np.zeros(out.array.shape[:-2], np.int32), False, None, 0))


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse; differentiable where the rank does not change."""
    t = M._float_matrix(A, "linalg.pinv")
    if rtol is None:
        rtol = 0.0 if atol is not None else builtins.max(t.array.shape[-2:]) * np.finfo(t.array.dtype).eps
    if atol is not None:
        smax = float(np.max(np.linalg.svd(t.array, compute_uv=False), initial=0.0))
        rtol = builtins.max(rtol, atol / smax) if smax else rtol
    return M.pinverse(t, rtol)


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of ``A X = B`` as ``(solution, residuals, rank, singular_values)``; the
    last three are empty, as with PyTorch's default CPU driver. Differentiable."""
    a = M._float_matrix(A, "linalg.lstsq")
    b = ensure_tensor(B)
    vector = b.array.ndim == a.array.ndim - 1
    if vector:
        b = S.unsqueeze(b, -1)
    x = _L.matmul(M.pinverse(a, 1e-15 if rcond is None else rcond), b)
    if vector:
        x = S.squeeze(x, -1)
    empty = _wrap(np.zeros((0,), a.array.dtype), False, None, 0)
    return _lstsq(x, empty, _wrap(np.zeros((0,), np.int64), False, None, 0), empty)


# --------------------------------------------------------------------------- decompositions
class Eigh(Function):
    def forward(ctx, a, uplo):
        w, v = array_module(a).linalg.eigh(a, UPLO=uplo)
        ctx.save_for_backward(w, v)
        return w.astype(a.dtype, copy=False), v.astype(a.dtype, copy=False)

    def backward(ctx, gw, gv):
        w, v = ctx.saved
        xp = array_module(w)
        inner = xp.zeros(v.shape, v.dtype)
        if gv is not None:
            vtg = _mT(v) @ gv
            diff = w[..., None, :] - w[..., :, None]  # w_j - w_i
            n = w.shape[-1]
            diff[..., range(n), range(n)] = np.inf
            inner = (vtg - _mT(vtg)) / (2 * diff)
        if gw is not None:
            n = w.shape[-1]
            inner[..., range(n), range(n)] += gw
        return v @ inner @ _mT(v)

    def grad_graph(ctx, gw, gv):
        w, v = ctx.saved
        w_t, v_t = ctx.graph_output(w, 0), ctx.graph_output(v, 1)
        v_mt = S.transpose(v_t, -2, -1)
        inner = None
        if gv is not None:
            vtg = _L.matmul(v_mt, gv)
            # w_j - w_i; 1 on the diagonal, where the antisymmetric numerator is 0 anyway.
            eye = Tensor(np.eye(w.shape[-1], dtype=bool))
            diff = E.where(eye, 1.0, S.unsqueeze(w_t, -2) - S.unsqueeze(w_t, -1))
            inner = (vtg - S.transpose(vtg, -2, -1)) / (2 * diff)
        if gw is not None:
            diag = M.diag_embed(gw)
            inner = diag if inner is None else inner + diag
        return _L.matmul(_L.matmul(v_t, inner), v_mt)


def eigh(A, UPLO="L"):
    """``(eigenvalues, eigenvectors)`` of a symmetric matrix (or a batch), eigenvalues ascending; reads the
    ``UPLO`` triangle. Differentiable (distinct eigenvalues)."""
    values, vectors = Eigh.apply(M._square(A, "linalg.eigh"), UPLO)
    return _eigh(values, vectors)


def eigvalsh(A, UPLO="L"):
    """The eigenvalues of a symmetric matrix (or a batch), ascending; differentiable."""
    return eigh(A, UPLO).eigenvalues


class Svd(Function):
    def forward(ctx, a, full_matrices):
        u, s, vh = array_module(a).linalg.svd(a, full_matrices=full_matrices)
        ctx.save_for_backward(u, s, vh)
        ctx.full = full_matrices and a.shape[-1] != a.shape[-2]
        return u.astype(a.dtype, copy=False), s.astype(a.dtype, copy=False), vh.astype(a.dtype, copy=False)

    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.saved
        xp = array_module(s)
        if ctx.full and _beyond_rank(gu, gvh, s.shape[-1]):
            raise RuntimeError("linalg.svd(): the gradient of U or Vh with full_matrices=True is not defined for "
                               "non-square inputs; use full_matrices=False")
        k = s.shape[-1]
        u, vh = u[..., :, :k], vh[..., :k, :]
        if gu is not None:
            gu = gu[..., :, :k]
        if gvh is not None:
            gvh = gvh[..., :k, :]
        inner = xp.zeros(s.shape[:-1] + (k, k), s.dtype)
        if gs is not None:
            inner[..., range(k), range(k)] = gs
        if gu is None and gvh is None:
            return u @ inner @ vh
        s2 = s * s
        e = s2[..., None, :] - s2[..., :, None]  # s_j^2 - s_i^2
        e[..., range(k), range(k)] = np.inf
        out = 0
        if gu is not None:
            utg = _mT(u) @ gu
            inner = inner + (utg - _mT(utg)) / e * s[..., None, :]
            m = u.shape[-2]
            if m > k:
                out = out + (xp.eye(m) - u @ _mT(u)) @ gu / s[..., None, :] @ vh
        if gvh is not None:
            v, gv = _mT(vh), _mT(gvh)
            vtg = _mT(v) @ gv
            inner = inner + s[..., :, None] * ((vtg - _mT(vtg)) / e)
            n = vh.shape[-1]
            if n > k:
                out = out + u @ (gvh / s[..., :, None]) @ (xp.eye(n) - v @ vh)
        return u @ inner @ vh + out

    def grad_graph(ctx, gu, gs, gvh):
        # backward's formula on tensors of the graph (U, S and Vh are this node's outputs).
        u, s, vh = ctx.saved
        if ctx.full and _beyond_rank(*(None if g is None else g.array for g in (gu, gvh)), s.shape[-1]):
            raise RuntimeError("linalg.svd(): the gradient of U or Vh with full_matrices=True is not defined for "
                               "non-square inputs; use full_matrices=False")
        mm = _L.matmul

        def tr(t):
            return S.transpose(t, -2, -1)

        def add(a, b):
            return b if a is None else a + b

        k = s.shape[-1]
        ut = ctx.graph_output(u, 0)[..., :, :k]
        st = ctx.graph_output(s, 1)
        vht = ctx.graph_output(vh, 2)[..., :k, :]
        inner = None if gs is None else M.diag_embed(gs)
        if gu is None and gvh is None:
            return mm(mm(ut, inner), vht)
        s2 = st * st
        # s_j^2 - s_i^2; 1 on the diagonal, where the antisymmetric numerators are 0 anyway.
        e = E.where(Tensor(np.eye(k, dtype=bool)), 1.0, S.unsqueeze(s2, -2) - S.unsqueeze(s2, -1))
        out = None
        if gu is not None:
            gu = gu[..., :, :k]
            utg = mm(tr(ut), gu)
            inner = add(inner, (utg - tr(utg)) / e * S.unsqueeze(st, -2))
            m = u.shape[-2]
            if m > k:
                proj = Tensor(np.eye(m, dtype=u.dtype)) - mm(ut, tr(ut))
                out = add(out, mm(mm(proj, gu) / S.unsqueeze(st, -2), vht))
        if gvh is not None:
            gvh = gvh[..., :k, :]
            vtg = mm(vht, tr(gvh))
            inner = add(inner, S.unsqueeze(st, -1) * ((vtg - tr(vtg)) / e))
            n = vh.shape[-1]
            if n > k:
                proj = Tensor(np.eye(n, dtype=vh.dtype)) - mm(tr(vht), vht)
                out = add(out, mm(mm(ut, gvh / S.unsqueeze(st, -1)), proj))
        return add(out, mm(mm(ut, inner), vht))


def _beyond_rank(gu, gvh, k):
    """Whether the gradients of U and Vh (arrays or None) reach past their first ``k`` columns (rows): the
    part ``full_matrices=True`` adds, whose gradient is not defined. Zeros there (a second-order pass through
    S only) are fine."""
    return (gu is not None and np.any(gu[..., :, k:])) or (gvh is not None and np.any(gvh[..., k:, :]))


def svd(A, full_matrices=True, *, driver=None):
    """``(U, S, Vh)`` with ``A = U diag(S) Vh``, singular values descending; differentiable (distinct
    singular values; U and Vh need ``full_matrices=False`` unless the matrix is square)."""
    u, s, vh = Svd.apply(M._float_matrix(A, "linalg.svd"), builtins.bool(full_matrices))
    return _svd(u, s, vh)


class _QR(Function):
    def forward(ctx, a, mode):
        q, r = array_module(a).linalg.qr(a, mode=mode)
        return q.astype(a.dtype, copy=False), r.astype(a.dtype, copy=False)

    def backward(ctx, gq, gr):
        raise NotImplementedError("somanet does not implement the gradient of torch.linalg.qr yet")


def qr(A, mode="reduced"):
    """``(Q, R)`` with ``A = Q R`` (``mode`` 'reduced', 'complete' or 'r', which gives an empty Q). Not
    differentiable."""
    t = M._float_matrix(A, "linalg.qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"linalg.qr(): mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    if mode == "r":
        r = np.linalg.qr(t.array, mode="r").astype(t.array.dtype, copy=False)
        return _qr(_wrap(np.zeros((0,), t.array.dtype), False, None, 0), _wrap(r, False, None, 0))
    q, r = _QR.apply(t, mode)
    return _qr(q, r)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """The number of singular values above the tolerance (``max(atol, rtol * largest)``; by default
    ``rtol = max(m, n) * eps``), as int64."""
    t = M._float_matrix(A, "linalg.matrix_rank")
    s = np.linalg.svd(t.array, compute_uv=False)
    if tol is not None:
        atol = tol
    if rtol is None:
        rtol = 0.0 if atol is not None else builtins.max(t.array.shape[-2:]) * np.finfo(t.array.dtype).eps
    smax = s.max(-1, initial=0.0) if s.size else np.zeros(s.shape[:-1])
    limit = np.maximum(0.0 if atol is None else atol, rtol * smax)
    return _wrap(np.asarray((s > np.asarray(limit)[..., None]).sum(-1), np.int64), False, None, 0)


matrix_power = M.matrix_power
matrix_exp = M.matrix_exp
matmul = _L.matmul


def multi_dot(tensors):
    """The product of a list of matrices (the first may be a vector, and the last); differentiable."""
    ts = [ensure_tensor(t) for t in tensors]
    if len(ts) < 2:
        raise RuntimeError("linalg.multi_dot(): expected at least 2 tensors")
    first_vec, last_vec = ts[0].array.ndim == 1, ts[-1].array.ndim == 1
    if first_vec:
        ts[0] = S.unsqueeze(ts[0], 0)
    if last_vec:
        ts[-1] = S.unsqueeze(ts[-1], 1)
    out = ts[0]
    for t in ts[1:]:
        out = _L.mm(out, t)
    if first_vec:
        out = S.squeeze(out, 0)
    if last_vec:
        out = S.squeeze(out, -1)
    return out


def cross(input, other, *, dim=-1):
    """The cross product along ``dim`` (the last by default); differentiable."""
    return M.cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """The diagonals of the matrices over the last two dims (a view); differentiable."""
    return M.diagonal(A, offset, dim1, dim2)


def vecdot(x, y, *, dim=-1):
    """``sum(x * y)`` along ``dim`` (inputs broadcast); differentiable."""
    return R.sum(E.mul(x, y), dim)


def vander(x, *, N=None):
    """The Vandermonde matrix with increasing powers ``x**0, x**1, ..., x**(N-1)`` (1-d ``x``);
    differentiable."""
    return M.vander(x, N, increasing=True)


#: torch.linalg functions somanet does not provide: each name resolves to a function that raises
#: NotImplementedError when called.
UNIMPLEMENTED = frozenset({
    "eig", "eigvals", "lu", "lu_factor", "lu_factor_ex", "lu_solve", "ldl_factor", "ldl_factor_ex", "ldl_solve",
    "householder_product", "solve_triangular", "tensorinv", "tensorsolve", "solve_ex", "matrix_exp_ex",
})


def __getattr__(name):
    if name in UNIMPLEMENTED:
        def refused(*args, **kwargs):
            raise NotImplementedError(f"somanet does not implement torch.linalg.{name} yet")

        refused.__name__ = name
        return refused
    raise AttributeError(f"module 'somanet.linalg' has no attribute '{name}'")


