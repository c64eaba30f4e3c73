"""Second derivatives of the ops of ``pointwise``, ``special``, ``matrix``, ``layout``, ``statistics`` and
``sparse``, of ``prod``/``cumprod`` over zeros and of einsum with a repeated subscript, against PyTorch on
identical float64 inputs (first and second level), and against finite differences where PyTorch has no
double backward (cdist) or gives none (the sparse product's values).
"""
import numpy as np
import pytest

import somanet
from reference import to_numpy, torch_or_skip
from somanet.autograd import gradgradcheck

torch = pytest.importorskip("torch")
RTOL, ATOL = 1e-7, 1e-10



def _levels(lib, fn, arrays):
    """``g = J^T u`` and ``d/dx <g, w>`` of ``fn(lib, *xs)`` (zeros for an unused input)."""
    xs = [lib.tensor(a, requires_grad=True) for a in arrays]
    out = fn(lib, *xs)
    rng = np.random.default_rng(1)
    g = lib.autograd.grad([out], xs, [lib.tensor(rng.standard_normal(tuple(out.shape)))], create_graph=True,
                          allow_unused=True, materialize_grads=True)
    terms = [(gi * lib.tensor(rng.standard_normal(a.shape))).sum() for gi, a in zip(g, arrays) if gi.requires_grad]
    assert terms, "the gradient carries no graph"
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    h = lib.autograd.grad([total], xs, allow_unused=True, materialize_grads=True)
    return [to_numpy(x) for x in g] + [to_numpy(x) for x in h]


def check(fn, *arrays, torch_fn=None, rtol=RTOL, atol=ATOL):
    torch_or_skip()
    arrays = [np.asarray(a, np.float64) for a in arrays]
    got = _levels(somanet, fn, arrays)
    want = _levels(torch, torch_fn or fn, arrays)
    for k, (a, b) in enumerate(zip(got, want)):
        level = "first" if k < len(arrays) else "second"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{level} derivative of input {k % len(arrays)}")


rng = np.random.default_rng(0)
X = rng.uniform(-0.9, 0.9, (3, 4))
Y = rng.uniform(0.2, 2.0, (3, 4))
Z = rng.uniform(1.2, 3.0, (3, 4))
WITH_ZEROS = rng.standard_normal((3, 4))
WITH_ZEROS[0, 1] = WITH_ZEROS[1, 2] = WITH_ZEROS[1, 3] = 0
WITH_NAN = rng.standard_normal((3, 4))
WITH_NAN[0, 1] = WITH_NAN[2, 3] = np.nan
SQUARE = rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)

POINTWISE = {
    "exp2_sinh_cosh": (lambda L, a: L.exp2(a) * L.sinh(a) + L.cosh(a), [X]),
    "inverse_trig": (lambda L, a: L.asin(a) * L.acos(a) + L.atan(a * 3) + L.asinh(a * 2) + L.atanh(a), [X]),
    "acosh": (lambda L, a: L.acosh(a), [Z]),
    "sinc_frac": (lambda L, a: L.sinc(a * 2) + L.frac(a * 3) * a, [X]),
    "erfc_erfinv": (lambda L, a: L.erfc(a) * L.erfinv(a), [X]),
    "logit": (lambda L, a: L.logit(a.abs()) + L.logit(a.abs(), eps=0.3) * a, [X]),
    "atan2_hypot": (lambda L, a, b: L.atan2(a, b) * L.hypot(a, b), [X, Y]),
    "logaddexp": (lambda L, a, b: L.logaddexp(a, b) * L.logaddexp2(a, b), [X, Y]),
    "xlogy": (lambda L, a, b: L.xlogy(a * a, b), [X, Y]),
    "fmax_fmin": (lambda L, a, b: L.fmax(a, b) * a + L.fmin(a, b) * b, [X, Y * 0.5]),
    "copysign": (lambda L, a, b: L.copysign(a, b) * a + L.copysign(a * b, b), [X, Y - 1]),
    "float_power": (lambda L, a, b: L.float_power(a, b) + L.float_power(a, 2.5), [Y, X]),
    "gamma_family": (lambda L, a: L.lgamma(a) * L.digamma(a) + L.polygamma(2, a), [Y]),
    "ndtr_ndtri": (lambda L, a: L.special.ndtr(a) * L.special.ndtri(a.abs()), [X]),
}


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_and_special(name):
    fn, arrays = POINTWISE[name]
    check(fn, *arrays, rtol=1e-7 if name != "gamma_family" else 1e-8, atol=1e-9)


MATRIX = {
    "diagonal_diag_embed": (lambda L, a: L.diag_embed(L.diagonal(a * a, 1, 0, 1), 1) * 2, [Y]),
    "cross": (lambda L, a, b: L.cross(a * a, b, dim=1), [X[:, :3], Y[:, :3]]),
    "inverse_det": (lambda L, a: L.inverse(a) * L.det(a)[:, None, None], [SQUARE]),
    "slogdet_logdet": (lambda L, a: L.slogdet(a)[1] * L.logdet(a @ a.transpose(-1, -2)), [SQUARE]),
    "pinverse": (lambda L, a: L.pinverse(a), [Y]),
    "cholesky": (lambda L, a: L.linalg.cholesky(a @ a.transpose(-1, -2) + L.eye(3, dtype=L.float64))
                 + L.linalg.cholesky(a @ a.transpose(-1, -2) + L.eye(3, dtype=L.float64), upper=True) * 0.5,
                 [SQUARE[0]]),
    "matrix_exp": (lambda L, a: L.matrix_exp(a * 0.3), [SQUARE]),
    "block_diag_matrix_power": (lambda L, a, b: L.block_diag(a * a, b).sum(0) + (L.linalg.matrix_power(b, 0) * b).sum()
                                + L.linalg.matrix_power(b, -2).sum(), [Y, SQUARE[0]]),
}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix(name):
    fn, arrays = MATRIX[name]
    check(fn, *arrays, rtol=1e-7, atol=1e-9)


def _cdist_reference(L, a, b, p):
    d = (a[:, None, :] - b[None, :, :]).abs()
    if p == float("inf"):
        return d.amax(-1)
    return (d ** p).sum(-1) ** (1.0 / p)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, float("inf")])
def test_cdist(p):
    """PyTorch's cdist has no double backward: its formula written out is the reference."""
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    check(lambda L, x, y: L.cdist(x * 1.0, y, p=p), a, b, torch_fn=lambda L, x, y: _cdist_reference(L, x, y, p))
    assert gradgradcheck(lambda x, y: somanet.cdist(x, y, p=p), [somanet.tensor(a, requires_grad=True),
                                                                somanet.tensor(b, requires_grad=True)])


INDEX = np.array([[0, 1, 0], [2, 0, 1]])
LAYOUT_STATS = {
    "repeat_interleave": (lambda L, a: L.repeat_interleave(a * a, L.tensor([1, 0, 2]), dim=0)
                          + (a * a).repeat_interleave(2, dim=1).sum(), [X]),
    "as_strided_unfold": (lambda L, a: L.as_strided(a * a, (2, 3), (1, 2), 1) * (a * a).unfold(1, 2, 2)[:2, :, 0].sum(),
                          [X]),
    "nansum_nanmean": (lambda L, a: L.nansum(a * a, 1) * L.nanmean(a * a, 1), [WITH_NAN]),
    "median_quantile": (lambda L, a: L.median(a * a) + L.median(a * a, 1).values * L.quantile(a * a, 0.3, dim=1)
                        + L.nanmedian(a * a), [X]),
    "cummax": (lambda L, a: L.cummax(a * a, 1).values * a, [X]),
    "logcumsumexp": (lambda L, a: L.logcumsumexp(a * 3, 1), [X]),
    "prod_with_zeros": (lambda L, a: L.prod(a) + L.prod(a, 1).sum() + L.prod(a, 0, keepdim=True).sum(), [WITH_ZEROS]),
    "cumprod_with_zeros": (lambda L, a: L.cumprod(a, 1) * a + L.cumprod(a, 0), [WITH_ZEROS]),
    "einsum_repeated_subscript": (lambda L, a, b: L.einsum("ii,ij->j", a, b) + L.einsum("ii", a * a)
                                  + L.einsum("iij,k->jk", b[:2].reshape(2, 2, 2), b[0]).sum(),
                                  [WITH_ZEROS[:3, :3], WITH_ZEROS]),
}


@pytest.mark.parametrize("name", sorted(LAYOUT_STATS))
def test_layout_statistics_and_reductions(name):
    fn, arrays = LAYOUT_STATS[name]
    check(fn, *arrays)


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin", "prod"])
def test_scatter_reduce(reduce):
    for include_self in (True, False):
        check(lambda L, a, s: L.scatter_reduce(a * a, 0, L.tensor(INDEX), s * 1.0, reduce, include_self=include_self),
              rng.standard_normal((3, 3)), rng.standard_normal((2, 3)))


def test_sparse_dense_product():
    """PyTorch's sparse mm gives no second derivative through the values: finite differences check it."""
    idx = somanet.tensor(np.array([[0, 1, 1, 2], [2, 0, 2, 1]]))
    values = somanet.tensor(rng.standard_normal(4), requires_grad=True)
    dense = somanet.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert gradgradcheck(lambda v, d: somanet.sparse.mm(somanet.sparse_coo_tensor(idx, v, (3, 3)), d), [values, dense])


TALL = rng.standard_normal((4, 3))


def _svd_sum(L, a, full):
    """A function of U, S and Vh that does not depend on the signs of the singular vectors (which differ
    between LAPACK builds)."""
    u, s, vh = L.linalg.svd(a, full_matrices=full)
    u, vh = u[..., :, :3], vh[..., :3, :]

    def weights(t):
        return L.tensor(np.arange(1.0, 1.0 + np.prod(t.shape)).reshape(tuple(t.shape)))

    return (u ** 2 * weights(u)).sum() + 2 * (s ** 2).sum() + (vh ** 2 * weights(vh)).sum()


LINALG = {
    "solve": (lambda L, a, b: L.linalg.solve(a, b) + L.linalg.solve(a, b[:, 0])[:, None], [SQUARE[0], TALL[:3, :2]]),
    "eigh": (lambda L, a: L.linalg.eigh(a + a.T)[0] * (L.linalg.eigh(a + a.T)[1] ** 2), [SQUARE[0]]),
    "svdvals_nuclear_norm": (lambda L, a: L.linalg.svdvals(a) * L.linalg.matrix_norm(a, "nuc"), [TALL]),
    "svd_tall": (lambda L, a: _svd_sum(L, a, False), [TALL]),
    "svd_wide": (lambda L, a: _svd_sum(L, a.T, False), [TALL]),
    "svd_square": (lambda L, a: _svd_sum(L, a, True), [SQUARE[1]]),
    "svd_values_of_full": (lambda L, a: L.linalg.svd(a)[1], [TALL]),
}


@pytest.mark.parametrize("name", sorted(LINALG))
def test_linalg_decompositions(name):
    fn, arrays = LINALG[name]
    check(fn, *arrays, rtol=1e-7, atol=1e-9)


def test_parameters_to_vector():
    from somanet.nn.utils import parameters_to_vector

    a, b = (somanet.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3), (4,)))
    assert gradgradcheck(lambda a, b: parameters_to_vector([a * a, b]) ** 2, [a, b])


def test_gradient_penalty_under_bfloat16_autocast():
    """The bfloat16 casts of autocast are differentiable twice: the penalty's weight gradient is close to the
    float32 one (bfloat16 keeps 8 bits)."""
    x_np = rng.standard_normal((5, 4)).astype(np.float32)

    def penalty_grad(autocast):
        somanet.manual_seed(0)
        lin = somanet.nn.Linear(4, 3)
        x = somanet.tensor(x_np, requires_grad=True)
        with somanet.autocast("cpu", dtype=somanet.bfloat16, enabled=autocast):
            out = lin(x).tanh().sum()
        (g,) = somanet.autograd.grad(out, x, create_graph=True)
        g.float().pow(2).sum().backward()
        return lin.weight.grad.array

    low, full = penalty_grad(True), penalty_grad(False)
    assert np.abs(full).max() > 0.1
    np.testing.assert_allclose(low, full, rtol=0.05, atol=0.05 * np.abs(full).max())


def test_checkpoint_refuses_create_graph_instead_of_detaching():
    from somanet.utils.checkpoint import checkpoint

    lin = somanet.nn.Linear(3, 3).double()
    x = somanet.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = checkpoint(lambda t: lin(t).tanh(), x)
    with pytest.raises(RuntimeError, match="create_graph=True: checkpoint's backward is not differentiable"):
        somanet.autograd.grad(y.sum(), x, create_graph=True)
    y.sum().backward()  # the first-order path is unaffected
    assert x.grad is not None


def test_multivariate_normal_log_prob():
    """log_prob's triangular solve and diagonal (distributions) are differentiable twice."""
    def fn(L, x, loc, m):
        scale = L.tril(m) * 0.5 + L.eye(3, dtype=L.float64) * 2
        return L.distributions.MultivariateNormal(loc, scale_tril=scale).log_prob(x)

    check(fn, rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((3, 3)))


def test_module_full_backward_hooks_in_a_gradient_penalty():
    """Full backward hooks and pre-hooks run in create_graph's pass on tensors of the graph, and what they
    return stays differentiable, as in PyTorch."""
    torch_or_skip()
    x_np = rng.standard_normal((5, 4))

    def run(lib):
        lib.manual_seed(0)
        net = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh(), lib.nn.Linear(6, 2)).double()
        with lib.no_grad():
            for k, p in enumerate(net.parameters()):
                p.copy_(lib.tensor(np.random.default_rng(k).standard_normal(tuple(p.shape)) * 0.5))
        seen = []
        net[0].register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))
        net[2].register_full_backward_pre_hook(lambda m, go: (go[0] * go[0],))
        net[1].register_full_backward_hook(lambda m, gi, go: seen.append(gi[0].requires_grad))
        x = lib.tensor(x_np, requires_grad=True)
        out = net(x).sum()
        (g,) = lib.autograd.grad(out, x, create_graph=True)
        (g ** 2).sum().backward()
        assert seen == [True]
        return [to_numpy(g)] + [None if p.grad is None else to_numpy(p.grad) for p in net.parameters()]

    for a, b in zip(run(somanet), run(torch)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_roi_align():
    """Linear in the features (torchvision is not available here: finite differences check it)."""
    from somanet.vision.ops import roi_align

    x = somanet.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    boxes = somanet.tensor([[0, 0.5, 0.5, 3.2, 4.1], [0, 1.0, 0.2, 4.0, 2.5]], dtype=somanet.float64)
    assert gradgradcheck(lambda x: roi_align(x * x, boxes, (2, 2), sampling_ratio=2), [x])
