"""The matrix helpers of ``somanet.ops.matrix`` against PyTorch: values, dtypes and gradients."""
import warnings

import numpy as np
import pytest

import somanet
from reference import assert_close, compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(1)


def _n(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _spd(n, batch=()):
    a = rng.standard_normal(batch + (n, n))
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(np.float64)


@pytest.mark.parametrize("offset", [0, 1, -2])
def test_diag(offset):
    compare(lambda x: somanet.diag(x, offset), lambda x: torch.diag(x, offset), _n(4))
    compare(lambda x: somanet.diag(x, diagonal=offset), lambda x: torch.diag(x, diagonal=offset), _n(3, 5))
    compare(lambda x: x.diag(offset), lambda x: x.diag(offset), _n(5, 3))
    compare(lambda x: somanet.diagflat(x, offset), lambda x: torch.diagflat(x, offset), _n(2, 2))


def test_diag_integer_and_errors():
    compare(somanet.diag, torch.diag, np.array([1, 2, 3]))
    with pytest.raises(RuntimeError):
        somanet.diag(somanet.zeros(2, 2, 2))


@pytest.mark.parametrize("args", [(0, 0, 1), (1, 0, 1), (-1, 1, 2), (0, -1, 0), (2, 2, 0)])
def test_diagonal(args):
    compare(lambda x: somanet.diagonal(x, *args), lambda x: torch.diagonal(x, *args), _n(3, 4, 5))
    offset, d1, d2 = args
    compare(lambda x: x.diagonal(offset=offset, dim1=d1, dim2=d2),
            lambda x: x.diagonal(offset=offset, dim1=d1, dim2=d2), _n(3, 4, 5))


def test_diagonal_is_a_writable_view():
    s, t = somanet.tensor(_n(4, 4)), None
    t = torch.tensor(s.array.copy())
    s.diagonal().fill_(0.0)
    t.diagonal().fill_(0.0)
    s.diagonal(1).mul_(2)
    t.diagonal(1).mul_(2)
    assert_close(s, t)


@pytest.mark.parametrize("args", [(0, -2, -1), (1, -2, -1), (-1, 0, 2), (0, 1, 0)])
def test_diag_embed(args):
    compare(lambda x: somanet.diag_embed(x, *args), lambda x: torch.diag_embed(x, *args), _n(2, 3))


def test_trace_and_fill_diagonal():
    compare(somanet.trace, torch.trace, _n(3, 5))
    compare(lambda x: x.trace(), lambda x: x.trace(), np.arange(12).reshape(3, 4))
    for shape, wrap in [((3, 3), False), ((7, 3), False), ((7, 3), True), ((3, 5), False), ((3, 3, 3), False)]:
        s = somanet.zeros(*shape)
        t = torch.zeros(*shape)
        assert s.fill_diagonal_(2.5, wrap=wrap) is s
        t.fill_diagonal_(2.5, wrap=wrap)
        assert_close(s, t)


def test_fill_diagonal_with_grad():
    x = _n(3, 3)
    compare(lambda a: (a * 2).fill_diagonal_(1.0), lambda a: (a * 2).fill_diagonal_(1.0), x)


@pytest.mark.parametrize("name", ["tril_", "triu_"])
def test_triangle_in_place(name):
    x = _n(2, 4, 4)
    for k in (0, 1, -1):
        s, t = somanet.tensor(x), torch.tensor(x)
        getattr(s, name)(k)
        getattr(t, name)(k)
        assert_close(s, t)


@pytest.mark.parametrize("args", [(3, 3, 0), (4, 3, 1), (3, 5, -1), (0, 0, 0), (5, 2, -3)])
def test_triangle_indices(args):
    compare(lambda: somanet.tril_indices(*args), lambda: torch.tril_indices(*args))
    compare(lambda: somanet.triu_indices(*args), lambda: torch.triu_indices(*args))
    compare(lambda: somanet.tril_indices(*args, dtype=somanet.int32),
            lambda: torch.tril_indices(*args, dtype=torch.int32))


@pytest.mark.parametrize("shapes", [((2, 3), (4, 5)), ((3,), (2, 2)), ((2, 1, 3), (3, 2))])
def test_kron(shapes):
    compare(somanet.kron, torch.kron, _n(*shapes[0]), _n(*shapes[1]))


def test_cross():
    compare(lambda a, b: somanet.cross(a, b, dim=1), lambda a, b: torch.cross(a, b, dim=1), _n(4, 3), _n(4, 3))
    compare(lambda a, b: somanet.cross(a, b, -1), lambda a, b: torch.linalg.cross(a, b), _n(2, 3), _n(1, 3))
    compare(lambda a, b: a.cross(b, dim=0), lambda a, b: a.cross(b, dim=0), _n(3, 5), _n(3, 5))


def test_add_matmul_family():
    compare(lambda i, a, b: somanet.addmm(i, a, b, beta=0.5, alpha=2),
            lambda i, a, b: torch.addmm(i, a, b, beta=0.5, alpha=2), _n(3, 4), _n(3, 5), _n(5, 4))
    compare(somanet.addmm, torch.addmm, _n(4), _n(3, 5), _n(5, 4))
    compare(lambda i, a, b: i.addmm(a, b, beta=0), lambda i, a, b: i.addmm(a, b, beta=0),
            np.full((3, 4), np.nan, np.float32), _n(3, 5), _n(5, 4))
    compare(lambda i, a, b: somanet.baddbmm(i, a, b, alpha=-1),
            lambda i, a, b: torch.baddbmm(i, a, b, alpha=-1), _n(2, 3, 4), _n(2, 3, 5), _n(2, 5, 4))
    compare(somanet.addbmm, torch.addbmm, _n(3, 4), _n(2, 3, 5), _n(2, 5, 4))
    compare(lambda i, m, v: somanet.addmv(i, m, v, beta=2), lambda i, m, v: torch.addmv(i, m, v, beta=2),
            _n(3), _n(3, 4), _n(4))
    compare(somanet.addr, torch.addr, _n(3, 4), _n(3), _n(4))
    compare(lambda i, a, b: i.baddbmm(a, b), lambda i, a, b: i.baddbmm(a, b), _n(2, 3, 4), _n(2, 3, 5), _n(2, 5, 4))


def test_dot_family():
    compare(somanet.vdot, torch.vdot, _n(5), _n(5))
    compare(somanet.inner, torch.inner, _n(2, 3), _n(4, 3))
    compare(somanet.inner, torch.inner, _n(3), _n(3))
    compare(somanet.inner, torch.inner, _n(), _n(2, 3))
    for dims in (2, 1, 0, ([1, 0], [0, 1]), ([2], [0])):
        compare(lambda a, b: somanet.tensordot(a, b, dims), lambda a, b: torch.tensordot(a, b, dims),
                _n(3, 4, 2), _n(4, 3, 2) if dims == ([1, 0], [0, 1]) else (_n(2, 5) if dims == ([2], [0]) else
                                                                         (_n(4, 2, 5) if dims == 2 else
                                                                          (_n(2, 6) if dims == 1 else _n(2)))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare(lambda a, b, c: somanet.chain_matmul(a, b, c), lambda a, b, c: torch.chain_matmul(a, b, c),
                _n(2, 3), _n(3, 4), _n(4, 2))


def test_inverse_det_family():
    a = _n(3, 3) + 3 * np.eye(3, dtype=np.float32)
    compare(somanet.inverse, torch.inverse, a, rtol=1e-4, atol=1e-5)
    compare(lambda x: x.inverse(), lambda x: x.inverse(), _spd(3, (2,)), rtol=1e-10)
    compare(somanet.det, torch.det, a, rtol=1e-4)
    compare(somanet.det, torch.det, _n(2, 4, 4, dtype=np.float64), rtol=1e-10)
    compare(somanet.logdet, torch.logdet, _spd(4), rtol=1e-10)
    compare(lambda x: somanet.slogdet(x), lambda x: torch.slogdet(x), _n(2, 3, 3, dtype=np.float64), rtol=1e-10)
    sign, logabs = somanet.slogdet(somanet.tensor(a))
    assert sign.dtype == somanet.float32 and logabs.dtype == somanet.float32
    neg = np.diag([1.0, -2.0, 3.0])
    compare(somanet.logdet, torch.logdet, neg, backward=False)


def test_det_of_singular_matrix_has_a_gradient():
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, -1.0, 2.0]])
    compare(somanet.det, torch.det, a, rtol=1e-8, atol=1e-10)


def test_pinverse_and_cholesky():
    compare(somanet.pinverse, torch.pinverse, _n(4, 3, dtype=np.float64), rtol=1e-8, atol=1e-10)
    compare(somanet.pinverse, torch.pinverse, _n(2, 3, 5, dtype=np.float64), rtol=1e-8, atol=1e-10)
    compare(somanet.cholesky, lambda x: torch.linalg.cholesky(x), _spd(4), rtol=1e-8, atol=1e-10)
    compare(lambda x: somanet.cholesky(x, upper=True), lambda x: torch.linalg.cholesky(x, upper=True),
            _spd(3, (2,)), rtol=1e-8, atol=1e-10)
    with pytest.raises(RuntimeError):
        somanet.cholesky(somanet.tensor(-np.eye(2)))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2])
def test_matrix_power(n):
    a = _n(2, 3, 3, dtype=np.float64) + 2 * np.eye(3)
    compare(lambda x: somanet.matrix_power(x, n), lambda x: torch.matrix_power(x, n), a, rtol=1e-9, atol=1e-10)
    compare(lambda x: x.matrix_power(n), lambda x: x.matrix_power(n), a, rtol=1e-9, atol=1e-10)


def test_matrix_power_of_integers():
    a = np.array([[1, 1], [1, 0]])
    compare(lambda x: somanet.matrix_power(x, 10), lambda x: torch.matrix_power(x, 10), a)


def test_matrix_exp():
    compare(somanet.matrix_exp, torch.matrix_exp, _n(3, 3, dtype=np.float64), rtol=1e-9, atol=1e-10)
    compare(somanet.matrix_exp, torch.matrix_exp, 4 * _n(2, 4, 4), rtol=1e-4, atol=1e-4)


def test_block_diag():
    compare(lambda a, b, c: somanet.block_diag(a, b, c), lambda a, b, c: torch.block_diag(a, b, c),
            _n(2, 3), _n(), _n(4))
    compare(lambda a, b: somanet.block_diag(a, b), lambda a, b: torch.block_diag(a, b),
            np.array([[1, 2]]), np.array([[3], [4]]))
    compare(lambda: somanet.block_diag(), lambda: torch.block_diag())


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    compare(lambda a, b, c: somanet.meshgrid(a, b, c, indexing=indexing),
            lambda a, b, c: torch.meshgrid(a, b, c, indexing=indexing), _n(2), _n(3), _n(4))
    compare(lambda a, b: somanet.meshgrid([a, b], indexing=indexing),
            lambda a, b: torch.meshgrid([a, b], indexing=indexing), _n(2), _n(3))


def test_cartesian_prod_and_combinations():
    compare(somanet.cartesian_prod, torch.cartesian_prod, _n(2), _n(3))
    compare(somanet.cartesian_prod, torch.cartesian_prod, _n(3))
    compare(lambda a, b, c: somanet.cartesian_prod(a, b, c), lambda a, b, c: torch.cartesian_prod(a, b, c),
            np.arange(2), np.arange(3), np.arange(2))
    for r, rep in [(2, False), (3, False), (2, True), (4, False), (0, False)]:
        compare(lambda x: somanet.combinations(x, r, rep), lambda x: torch.combinations(x, r, rep), _n(3))


@pytest.mark.parametrize("n,inc", [(None, False), (3, True), (5, False), (0, False)])
def test_vander(n, inc):
    # PyTorch's own vander cannot run backward (it changes a saved tensor in place): the values are compared
    # with it, the gradient with finite differences.
    compare(lambda x: somanet.vander(x, n, inc), lambda x: torch.vander(x, n, inc), _n(4, dtype=np.float64),
            rtol=1e-10, backward=False)
    if n != 0:
        x = somanet.tensor(_n(4, dtype=np.float64), requires_grad=True)
        assert somanet.autograd.gradcheck(lambda t: somanet.vander(t, n, inc), (x,))
    compare(lambda x: somanet.vander(x, n, inc), lambda x: torch.vander(x, n, inc), np.array([1, 2, 3]))


@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, 3.0, 0.5, float("inf")])
def test_cdist(p):
    a, b = _n(2, 5, 3), _n(2, 4, 3)
    b[0, 1] = a[0, 2]  # one coincident pair: the gradient there is 0
    compare(lambda x, y: somanet.cdist(x, y, p), lambda x, y: torch.cdist(x, y, p), a, b, rtol=1e-4, atol=1e-4)


def test_cdist_large_euclidean():
    a, b = _n(40, 8), _n(30, 8)
    compare(somanet.cdist, torch.cdist, a, b, rtol=1e-4, atol=1e-4)
    compare(somanet.cdist, torch.cdist, a.astype(np.float64), a.astype(np.float64), rtol=1e-7, atol=1e-7)


def test_cosine_similarity_and_pairwise_distance():
    compare(somanet.cosine_similarity, torch.cosine_similarity, _n(4, 5), _n(4, 5))
    compare(lambda a, b: somanet.cosine_similarity(a, b, dim=-1), lambda a, b: torch.cosine_similarity(a, b, dim=-1),
            _n(3, 1, 5), _n(1, 4, 5))
    z = np.zeros((2, 3), np.float32)
    compare(somanet.cosine_similarity, torch.cosine_similarity, z, _n(2, 3))
    compare(somanet.pairwise_distance, torch.pairwise_distance, _n(4, 5), _n(4, 5))
    compare(lambda a, b: somanet.pairwise_distance(a, b, p=1, keepdim=True),
            lambda a, b: torch.pairwise_distance(a, b, p=1, keepdim=True), _n(4, 5), _n(5))


def test_cov_and_corrcoef():
    x = _n(3, 6)
    compare(somanet.cov, torch.cov, x)
    compare(lambda a: somanet.cov(a, correction=0), lambda a: torch.cov(a, correction=0), x)
    compare(somanet.cov, torch.cov, _n(6))
    fw = np.array([1, 2, 1, 3, 1, 1])
    aw = rng.uniform(0.5, 2, 6).astype(np.float32)
    compare(lambda a, f, w: somanet.cov(a, fweights=f, aweights=w),
            lambda a, f, w: torch.cov(a, fweights=f, aweights=w),
            x, fw, aw, requires_grad=[True, False, False])
    compare(lambda a, f: somanet.cov(a, fweights=f), lambda a, f: torch.cov(a, fweights=f), x, fw)
    compare(somanet.corrcoef, torch.corrcoef, x)
    compare(lambda a: a.cov(), lambda a: a.cov(), x)
    compare(somanet.cov, torch.cov, np.arange(12).reshape(3, 4))


def test_cholesky_solve_inverse_and_triangular_solve():
    a = _spd(3)
    low = np.linalg.cholesky(a)
    b = _n(3, 2, dtype=np.float64)
    compare(somanet.cholesky_solve, torch.cholesky_solve, b, low, rtol=1e-9)
    compare(lambda x, u: somanet.cholesky_solve(x, u, upper=True), lambda x, u: torch.cholesky_solve(x, u, upper=True),
            b, low.T.copy(), rtol=1e-9)
    compare(somanet.cholesky_inverse, torch.cholesky_inverse, low, rtol=1e-9)
    compare(lambda u: u.cholesky_inverse(upper=True), lambda u: u.cholesky_inverse(upper=True), low.T.copy(),
            rtol=1e-9)
    m = _n(3, 3, dtype=np.float64) + 3 * np.eye(3)
    for kw in ({}, {"upper": False}, {"transpose": True}, {"unitriangular": True}):
        compare(lambda x, y: somanet.triangular_solve(x, y, **kw), lambda x, y: torch.triangular_solve(x, y, **kw),
                b, m, rtol=1e-9)
