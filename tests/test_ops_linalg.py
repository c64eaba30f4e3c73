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
