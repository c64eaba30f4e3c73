"""Sparse COO tensors against PyTorch: construction, coalescing, conversions and the sparse-dense product
with gradients to the values and the dense operand."""
import numpy as np
import pytest

import somanet
from reference import assert_close, requires_torch, torch

pytestmark = [requires_torch, pytest.mark.filterwarnings("ignore:Sparse invariant checks")]

rng = np.random.default_rng(5)


def _random_sparse(m, n, nnz, repeats=True):
    rows = rng.integers(0, m, nnz)
    cols = rng.integers(0, n, nnz)
    if not repeats:
        lin = np.unique(rows * n + cols)
        rows, cols = lin // n, lin % n
    return np.stack([rows, cols]), rng.standard_normal(rows.size).astype(np.float32)


def test_construction_and_attributes():
    idx = np.array([[0, 1, 1, 0], [2, 0, 2, 2]])
    vals = np.array([3.0, 4.0, 5.0, 1.0], np.float32)
    s = somanet.sparse_coo_tensor(idx, vals, (2, 3))
    t = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(vals), (2, 3))
    assert s.is_sparse and t.is_sparse
    assert not somanet.ones(2).is_sparse
    assert s.layout is somanet.sparse_coo and somanet.ones(1).layout is somanet.strided
    assert tuple(s.shape) == tuple(t.shape) and s.size() == tuple(t.size()) and s.dim() == t.dim()
    assert s.is_coalesced() == t.is_coalesced() is False
    assert s._nnz() == t._nnz() and s.sparse_dim() == t.sparse_dim() and s.dense_dim() == t.dense_dim()
    assert s.dtype == somanet.float32
    assert_close(s._indices(), t._indices())
    assert_close(s._values(), t._values())
    with pytest.raises(RuntimeError, match="coalesce"):
        s.indices()
    c, tc = s.coalesce(), t.coalesce()
    assert c.is_coalesced()
    assert_close(c.indices(), tc.indices())
    assert_close(c.values(), tc.values())
    assert_close(s.to_dense(), t.to_dense())
    inferred = somanet.sparse_coo_tensor(idx, vals)
    assert inferred.shape == tuple(torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(vals)).shape)
    with pytest.raises(RuntimeError):
        somanet.sparse_coo_tensor(idx, vals, (1, 3))
    assert "sparse_coo" in repr(s)


def test_hybrid_values_and_to_sparse():
    idx = np.array([[0, 2, 0]])
    vals = rng.standard_normal((3, 2)).astype(np.float32)
    s = somanet.sparse_coo_tensor(idx, vals, (3, 2))
    t = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(vals), (3, 2))
    assert_close(s.to_dense(), t.to_dense())
    assert_close(s.coalesce().values(), t.coalesce().values())
    dense = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], np.float32)
    sd, td = somanet.tensor(dense).to_sparse(), torch.tensor(dense).to_sparse()
    assert sd.is_coalesced() and td.is_coalesced()
    assert_close(sd.indices(), td.indices())
    assert_close(sd.values(), td.values())
    rows = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    s1, t1 = somanet.tensor(rows).to_sparse(1), torch.tensor(rows).to_sparse(1)
    assert_close(s1.indices(), t1.indices())
    assert_close(s1.values(), t1.values())
    assert_close(s1.to_dense(), t1.to_dense())


@pytest.mark.parametrize("how", ["sparse.mm", "spmm", "mm", "matmul", "@", "method"])
@pytest.mark.parametrize("coalesced", [False, True])
def test_sparse_dense_product_and_gradients(how, coalesced):
    idx, vals = _random_sparse(6, 5, 14)
    d = rng.standard_normal((5, 3)).astype(np.float32)
    sv = somanet.tensor(vals, requires_grad=True)
    tv = torch.tensor(vals, requires_grad=True)
    sd = somanet.tensor(d, requires_grad=True)
    td = torch.tensor(d, requires_grad=True)
    s = somanet.sparse_coo_tensor(idx, sv, (6, 5))
    t = torch.sparse_coo_tensor(torch.tensor(idx), tv, (6, 5))
    if coalesced:
        s, t = s.coalesce(), t.coalesce()
    ops = {"sparse.mm": lambda lib, a, b: lib.sparse.mm(a, b), "spmm": lambda lib, a, b: lib.spmm(a, b),
           "mm": lambda lib, a, b: lib.mm(a, b), "matmul": lambda lib, a, b: lib.matmul(a, b),
           "@": lambda lib, a, b: a @ b, "method": lambda lib, a, b: a.mm(b)}
    out_s = ops[how](somanet, s, sd)
    out_t = ops[how](torch, t, td)
    assert_close(out_s, out_t)
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    (out_s * somanet.tensor(g)).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()
    assert_close(sd.grad, td.grad)
    assert_close(sv.grad, tv.grad)


def test_sparse_leaf_requires_grad_and_vector_product():
    idx, vals = _random_sparse(4, 4, 6, repeats=False)
    s = somanet.sparse_coo_tensor(idx, vals, (4, 4), requires_grad=True)
    t = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(vals), (4, 4), requires_grad=True)
    assert s.requires_grad and s.is_leaf
    x = rng.standard_normal(4).astype(np.float32)
    somanet.sparse.mm(s, somanet.tensor(x[:, None])).sum().backward()
    torch.sparse.mm(t, torch.tensor(x[:, None])).sum().backward()
    assert s.grad.is_sparse
    assert_close(s.grad.to_dense(), t.grad.to_dense())
    assert_close(s.detach() @ somanet.tensor(x), t.detach() @ torch.tensor(x))


def test_gcn_layer_matches():
    """One graph-convolution step, normalised adjacency times features times weights, with gradients."""
    n, f, h = 7, 4, 3
    edges = np.array([[0, 1, 1, 2, 3, 4, 5, 6, 0], [1, 0, 2, 1, 4, 3, 6, 5, 6]])
    deg = np.bincount(edges[0], minlength=n) + 1.0
    loops = np.arange(n)
    idx = np.concatenate([edges, np.stack([loops, loops])], 1)
    w = (1 / np.sqrt(deg[idx[0]] * deg[idx[1]])).astype(np.float32)
    x = rng.standard_normal((n, f)).astype(np.float32)
    weight = rng.standard_normal((f, h)).astype(np.float32)
    results = []
    for lib in (somanet, torch):
        adj = lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(w), (n, n))
        xs = lib.tensor(x, requires_grad=True)
        ws = lib.tensor(weight, requires_grad=True)
        out = lib.relu(lib.sparse.mm(adj, xs @ ws))
        out.pow(2).sum().backward()
        results.append((out, xs.grad, ws.grad))
    for a, b in zip(*results):
        assert_close(a, b)


def test_sparse_sum_addmm_and_arithmetic():
    idx = np.array([[0, 1, 1, 0], [2, 0, 2, 2]])
    vals = np.array([3.0, 4.0, 5.0, 1.0], np.float32)
    s = somanet.sparse_coo_tensor(idx, vals, (2, 3))
    t = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(vals), (2, 3))
    assert_close(somanet.sparse.sum(s), torch.sparse.sum(t))
    assert_close(somanet.sparse.sum(s, 1).to_dense(), torch.sparse.sum(t, 1).to_dense())
    assert_close(somanet.sparse.sum(s, (0, 1)), torch.sparse.sum(t, (0, 1)))
    assert_close((s * 2).to_dense(), (t * 2).to_dense())
    assert_close((s + s).to_dense(), (t + t).to_dense())
    assert_close(s.t().to_dense(), t.t().to_dense())
    m = rng.standard_normal((2, 4)).astype(np.float32)
    d = rng.standard_normal((3, 4)).astype(np.float32)
    assert_close(somanet.sparse.addmm(somanet.tensor(m), s, somanet.tensor(d), beta=0.5, alpha=2.0),
                 torch.sparse.addmm(torch.tensor(m), t, torch.tensor(d), beta=0.5, alpha=2.0))
    assert_close(s.double().to_dense(), t.double().to_dense())
