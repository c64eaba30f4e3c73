"""matmul, einsum and the fused linear op against PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import somanet
from somanet.autograd import gradcheck
from reference import compare, torch_or_skip

torch = torch_or_skip()
rng = np.random.default_rng(2)


def r(*shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)), ((1, 0, 3), (3, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_shapes(sa, sb):
    compare(lambda a, b: a @ b, lambda a, b: a @ b, r(*sa), r(*sb), rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(1, 4), m=st.integers(1, 4), p=st.integers(1, 4), batch_b=st.booleans())
def test_matmul_batched_broadcast(b, n, m, p, batch_b):
    sa = (b, n, m)
    sb = (b, m, p) if batch_b else (m, p)
    compare(lambda x, y: somanet.matmul(x, y), lambda x, y: torch.matmul(x, y), r(*sa), r(*sb), atol=1e-4)


def test_matmul_gradcheck():
    a = somanet.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    b = somanet.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    assert gradcheck(somanet.matmul, (a, b))
    v = somanet.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(somanet.matmul, (a, v))
    assert gradcheck(lambda x, y: x @ y, (v, b))


def test_matmul_shape_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        somanet.ones(2, 3) @ somanet.ones(4, 5)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
])
def test_einsum(eq, shapes):
    arrays = [r(*s) for s in shapes]
    compare(lambda *xs: somanet.einsum(eq, *xs), lambda *xs: torch.einsum(eq, *xs), *arrays, atol=1e-4)
    ts = [somanet.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    assert gradcheck(lambda *xs: somanet.einsum(eq, *xs), ts)


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (3,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, bias):
    w, b = r(6, 3), r(6)
    args = (r(*shape), w, b) if bias else (r(*shape), w)
    compare(lambda *xs: somanet.linear(*xs), lambda *xs: torch.nn.functional.linear(*xs), *args, atol=1e-4)
    ts = [somanet.tensor(a.astype(np.float64), requires_grad=True) for a in args]
    assert gradcheck(somanet.linear, ts)


def test_linear_feature_mismatch_error():
    with pytest.raises(RuntimeError, match=r"linear: input has 4 features.*expects 3"):
        somanet.linear(somanet.ones(2, 4), somanet.ones(5, 3))


# Few-row products run as column blocks (the "column_blocks" kernel of op "matmul", kernels/matmul.py).
@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("m, k, n", [(8, 784, 512), (16, 300, 1003), (128, 784, 512), (300, 784, 500),
                                     (2, 2000, 700), (8, 512, 784)])
def test_few_row_product_in_column_blocks_equals_the_whole_product(one_thread, transposed, m, k, n):
    from somanet.kernels.matmul import column_block as _column_block
    from somanet.ops.linalg import few_row_matmul
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k)).astype(np.float32)
    # A linear layer's forward multiplies by a transposed C-ordered weight, its input gradient by the weight.
    b = rng.standard_normal((n, k)).astype(np.float32).T if transposed else rng.standard_normal((k, n)).astype(np.float32)
    rb = _column_block(a, b)
    out = few_row_matmul(a, b)
    into = np.full((m, n), np.nan, np.float32)
    few_row_matmul(a, b, out=into)
    # Blocked except g @ W on 128 rows or more; (16, 300, 1003) and (8, 512, 784) end in a narrower block.
    assert (rb > 0) == (transposed or m < 128)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for res in (out, into):
        assert res.dtype == np.float32 and res.shape == (m, n) and res.flags.c_contiguous
        np.testing.assert_allclose(res, ref, rtol=0, atol=2e-6 * np.abs(ref).max())


def test_few_row_product_stays_whole_where_blocks_do_not_pay(one_thread):
    from somanet.kernels.matmul import column_block as _column_block
    rng = np.random.default_rng(0)
    w = rng.standard_normal((512, 784)).astype(np.float32)
    x = np.ones((8, 784), np.float32)
    assert _column_block(np.ones((1024, 784), np.float32), w.T) == 0  # many rows: the packed path is fast
    assert _column_block(np.ones((4, 784), np.float32), w[:100].T) == 0  # small enough already
    assert _column_block(x.astype(np.float64), w.T.astype(np.float64)) == 0  # float64
    assert _column_block(np.ones((8, 1568), np.float32)[:, ::2], w.T) == 0  # strided rows
    assert _column_block(x, w[:, ::2].T[::2]) == 0  # neither rows nor columns in place
    assert _column_block(x, w.T) > 0
    assert _column_block(np.ones((8, 512), np.float32), w) > 0  # g @ W
    assert _column_block(np.ones((64, 512), np.float32), w) == 0
    somanet.set_num_threads(2)
    # With BLAS threads the whole product is threaded, and wins from 32 rows on (16 for g @ W).
    assert _column_block(np.ones((64, 784), np.float32), w.T) == 0
    assert _column_block(x, w.T) > 0
    assert _column_block(np.ones((16, 512), np.float32), w) == 0
    assert _column_block(np.ones((8, 512), np.float32), w) > 0


@pytest.mark.parametrize("rows", [8, 128])
@pytest.mark.parametrize("kernel", ["reference", "column_blocks"])
def test_linear_on_few_rows_matches_torch_with_gradients(one_thread, rows, kernel):
    # Products large enough for the blocked path, in the layer op and both gradients, by every kernel.
    rng = np.random.default_rng(rows)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((rows, 784), (520, 784), (520,)))
    with somanet.backends.cpu.kernel("matmul", kernel):
        compare(lambda *xs: somanet.linear(*xs), lambda *xs: torch.nn.functional.linear(*xs), x, w, b,
                atol=1e-4, rtol=1e-5)


def test_few_row_matmul_in_either_orientation_matches_torch_with_gradients(one_thread):
    x, w, v = r(8, 784), r(512, 784), r(784, 512)
    compare(lambda a, b: a @ b.T, lambda a, b: a @ b.T, x, w, atol=1e-4, rtol=1e-5)
    compare(lambda a, b: a @ b, lambda a, b: a @ b, x, v, atol=1e-4, rtol=1e-5)


def test_matmul_errors_name_what_does_not_fit():
    # Batch dimensions that do not broadcast are named as such (the inner dims 4 and 4 agree here) ...
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3, 4\).*\(3, 4, 5\).*batch dimensions \(2,\) and \(3,\)"
                                           r".*is 2.*is 3"):
        somanet.randn(2, 3, 4) @ somanet.randn(3, 4, 5)
    with pytest.raises(RuntimeError, match=r"batch dimensions \(5, 1\) and \(2, 2\)"):
        somanet.randn(5, 1, 3, 4) @ somanet.randn(2, 2, 4, 5)
    # ... and inner dimensions that differ are named with their sizes.
    with pytest.raises(RuntimeError, match=r"matmul.*last dimension of the first \(4\).*second-to-last.*\(6\)"):
        somanet.randn(7, 3, 4) @ somanet.randn(4, 6, 5)
    with pytest.raises(RuntimeError, match=r"last dimension of the first \(3\).*only dimension of the second \(4\)"):
        somanet.randn(2, 3) @ somanet.randn(4)
    with pytest.raises(RuntimeError, match=r"bmm: batch sizes differ: 2 .*\(2, 3, 4\).* 3 .*\(3, 4, 5\)"):
        somanet.bmm(somanet.randn(2, 3, 4), somanet.randn(3, 4, 5))
    with pytest.raises(RuntimeError, match=r"bmm.*last dimension of the first \(4\).*\(5\)"):
        somanet.bmm(somanet.randn(2, 3, 4), somanet.randn(2, 5, 5))


def test_linear_refuses_mixed_dtypes_like_torch():
    w = somanet.randn(2, 3)
    for x in (somanet.ones(4, 3, dtype=somanet.float64), somanet.ones(4, 3, dtype=somanet.int64)):
        with pytest.raises(RuntimeError, match=rf"linear.*same dtype.*input {x.dtype}, weight float32"):
            somanet.nn.functional.linear(x, w)
        with pytest.raises(RuntimeError):
            torch.nn.functional.linear(torch.from_numpy(x.array), torch.from_numpy(w.array))
    with pytest.raises(RuntimeError, match="bias float64"):
        somanet.nn.functional.linear(somanet.ones(4, 3), w, somanet.zeros(2, dtype=somanet.float64))
