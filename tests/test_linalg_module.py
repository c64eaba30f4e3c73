"""``somanet.linalg`` against ``torch.linalg``: values and gradients (sign-free quantities where the
decomposition fixes vectors only up to sign)."""
import numpy as np
import pytest

import somanet
from reference import compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(4)


def _n(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _sym(n, batch=()):
    a = rng.standard_normal(batch + (n, n))
    return a + np.swapaxes(a, -1, -2)


def _spd(n, batch=()):
    a = rng.standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("ord", [2, 1, 3.5, float("inf"), -float("inf"), 0])
def test_vector_norm(ord):
    x = _n(3, 4, dtype=np.float32)
    compare(lambda a: somanet.linalg.vector_norm(a, ord), lambda a: torch.linalg.vector_norm(a, ord), x,
            backward=ord != 0)
    compare(lambda a: somanet.linalg.vector_norm(a, ord, dim=1, keepdim=True),
            lambda a: torch.linalg.vector_norm(a, ord, dim=1, keepdim=True), x, backward=ord != 0)
    compare(lambda a: somanet.linalg.vector_norm(a, ord, dim=(0, 1)),
            lambda a: torch.linalg.vector_norm(a, ord, dim=(0, 1)), x, backward=ord != 0)


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, float("inf"), -float("inf")])
def test_matrix_norm(ord):
    x = _n(2, 3, 4)
    compare(lambda a: somanet.linalg.matrix_norm(a, ord), lambda a: torch.linalg.matrix_norm(a, ord), x, rtol=1e-8)
    compare(lambda a: somanet.linalg.matrix_norm(a, ord, dim=(0, 2), keepdim=True),
            lambda a: torch.linalg.matrix_norm(a, ord, dim=(0, 2), keepdim=True), x, rtol=1e-8)


def test_norm_dispatch():
    x = _n(3, 4, dtype=np.float32)
    compare(somanet.linalg.norm, torch.linalg.norm, x)
    compare(lambda a: somanet.linalg.norm(a, 1), lambda a: torch.linalg.norm(a, 1), x)
    compare(lambda a: somanet.linalg.norm(a, dim=1), lambda a: torch.linalg.norm(a, dim=1), x)
    compare(lambda a: somanet.linalg.norm(a, "fro", dim=(0, 1)), lambda a: torch.linalg.norm(a, "fro", dim=(0, 1)), x)
    compare(lambda a: somanet.linalg.norm(a, 3), lambda a: torch.linalg.norm(a, 3), _n(5, dtype=np.float32))
    compare(lambda a: somanet.linalg.norm(a, keepdim=True), lambda a: torch.linalg.norm(a, keepdim=True), _n(2, 3, 2))


def test_inverses_determinants_and_solves():
    a = _spd(3, (2,))
    compare(somanet.linalg.inv, torch.linalg.inv, a, rtol=1e-9)
    compare(lambda x: somanet.linalg.inv_ex(x).inverse, lambda x: torch.linalg.inv_ex(x).inverse, a, rtol=1e-9)
    compare(somanet.linalg.det, torch.linalg.det, _n(2, 3, 3), rtol=1e-9)
    compare(somanet.linalg.slogdet, torch.linalg.slogdet, _n(3, 3), rtol=1e-9)
    b = _n(2, 3, 2)
    compare(somanet.linalg.solve, torch.linalg.solve, a, b, rtol=1e-9)
    compare(somanet.linalg.solve, torch.linalg.solve, a, _n(2, 3), rtol=1e-9)
    compare(somanet.linalg.solve, torch.linalg.solve, a[0], _n(3), rtol=1e-9)
    compare(lambda x, y: somanet.linalg.solve(x, y, left=False), lambda x, y: torch.linalg.solve(x, y, left=False),
            a, _n(2, 4, 3), rtol=1e-9)
    compare(somanet.linalg.solve, torch.linalg.solve, a, _n(3, 1), rtol=1e-9)


def test_cholesky_pinv_lstsq():
    compare(somanet.linalg.cholesky, torch.linalg.cholesky, _spd(4), rtol=1e-9)
    compare(lambda x: somanet.linalg.cholesky_ex(x, upper=True).L, lambda x: torch.linalg.cholesky_ex(x, upper=True).L,
            _spd(3), rtol=1e-9)
    compare(somanet.linalg.pinv, torch.linalg.pinv, _n(4, 3), rtol=1e-8, atol=1e-10)
    compare(somanet.linalg.pinv, torch.linalg.pinv, _n(2, 3, 5), rtol=1e-8, atol=1e-10)
    a, b = _n(5, 3), _n(5, 2)
    compare(lambda x, y: somanet.linalg.lstsq(x, y).solution, lambda x, y: torch.linalg.lstsq(x, y).solution, a, b,
            rtol=1e-8, atol=1e-10)


def test_eigh():
    a = _sym(4, (2,))

    def invariant(lib):
        def fn(x):
            w, v = lib.linalg.eigh(x)
            return w, v @ lib.diag_embed(w * w) @ v.transpose(-1, -2), (v[..., :, :1] * v[..., :, :1])
        return fn

    compare(invariant(somanet), invariant(torch), a, rtol=1e-8, atol=1e-10)
    compare(somanet.linalg.eigvalsh, torch.linalg.eigvalsh, a, rtol=1e-9)
    compare(lambda x: somanet.linalg.eigvalsh(x, UPLO="U"), lambda x: torch.linalg.eigvalsh(x, UPLO="U"),
            _n(3, 3), rtol=1e-9)


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 4, 4)])
def test_svd(shape):
    a = _n(*shape)

    def invariant(lib):
        def fn(x):
            u, s, vh = lib.linalg.svd(x, full_matrices=False)
            # Sign-free: singular values, the reconstruction with squared values, and u_1 v_1^T.
            return s, u @ lib.diag_embed(s * s) @ vh, u[..., :, :1] @ vh[..., :1, :]
        return fn

    compare(invariant(somanet), invariant(torch), a, rtol=1e-7, atol=1e-9)
    compare(somanet.linalg.svdvals, torch.linalg.svdvals, a, rtol=1e-9)
    u, s, vh = somanet.linalg.svd(somanet.tensor(a))
    assert u.shape == torch.linalg.svd(torch.tensor(a)).U.shape


def test_qr_rank_power_exp_and_small_helpers():
    a = _n(5, 3)
    for mode in ("reduced", "complete"):
        q, r = somanet.linalg.qr(somanet.tensor(a), mode=mode)
        tq, tr = torch.linalg.qr(torch.tensor(a), mode=mode)
        np.testing.assert_allclose(np.abs(r.array), np.abs(tr.numpy()), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose((q @ r).array, a, rtol=1e-9, atol=1e-12)
        assert q.shape == tuple(tq.shape)
    low = np.diag([1.0, 2.0, 0.0]) @ _n(3, 4)
    compare(somanet.linalg.matrix_rank, torch.linalg.matrix_rank, low)
    compare(lambda x: somanet.linalg.matrix_rank(x, atol=1.5), lambda x: torch.linalg.matrix_rank(x, atol=1.5), low)
    compare(lambda x: somanet.linalg.matrix_power(x, 3), lambda x: torch.linalg.matrix_power(x, 3), _n(3, 3), rtol=1e-9)
    compare(somanet.linalg.matrix_exp, torch.linalg.matrix_exp, _n(3, 3), rtol=1e-9, atol=1e-10)
    compare(lambda x, y, z: somanet.linalg.multi_dot([x, y, z]), lambda x, y, z: torch.linalg.multi_dot([x, y, z]),
            _n(3), _n(3, 4), _n(4))
    compare(somanet.linalg.cross, torch.linalg.cross, _n(2, 3), _n(2, 3))
    compare(lambda x: somanet.linalg.diagonal(x, offset=1), lambda x: torch.linalg.diagonal(x, offset=1), _n(2, 3, 4))
    compare(somanet.linalg.vecdot, torch.linalg.vecdot, _n(2, 3), _n(3))
    compare(lambda x: somanet.linalg.vander(x, N=4), lambda x: torch.linalg.vander(x, N=4), _n(3), backward=False)
    compare(somanet.linalg.matmul, torch.linalg.matmul, _n(2, 3), _n(3, 2))


def test_refused_linalg_functions_raise_not_implemented():
    for name in ("eig", "eigvals", "lu_factor", "solve_triangular"):
        assert hasattr(torch.linalg, name)
        with pytest.raises(NotImplementedError, match=f"somanet does not implement torch.linalg.{name} yet"):
            getattr(somanet.linalg, name)(somanet.eye(2))
    with pytest.raises(NotImplementedError):
        somanet.linalg.qr(somanet.tensor(_n(3, 3), requires_grad=True)).Q.sum().backward()
