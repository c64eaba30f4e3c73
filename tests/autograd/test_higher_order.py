"""Second derivatives (backward with create_graph=True) of every op family against PyTorch, in float64.

Each case runs the same function in somanet and PyTorch on the same inputs, takes the gradient of its
outputs against a random cotangent with ``create_graph=True``, then differentiates a random projection of
those gradients again, and compares both levels. ``gradgradcheck`` checks a sample against finite
differences.
"""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as SF
from reference import lib_tensor, to_numpy, torch_or_skip
from somanet.autograd import gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RTOL, ATOL = 1e-6, 1e-9


def _lib(lib):
    return (somanet, SF) if lib is somanet else (torch, TF)




def _grad(lib, outputs, inputs, grad_outputs, create_graph):
    grads = lib.autograd.grad(outputs, inputs, grad_outputs, create_graph=create_graph, allow_unused=True)
    return grads


def _two_levels(lib, fn, arrays, cot_seed=1):
    """First and second derivatives of ``fn(lib, *tensors)``: ``g = J^T u`` and ``d/dx <g, w>``."""
    xs = [lib_tensor(lib, a) for a in arrays]
    out = fn(_lib(lib), *xs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    outs = [o for o in outs if o.requires_grad]
    rng = np.random.default_rng(cot_seed)
    us = [lib_tensor(lib, rng.standard_normal(tuple(o.shape)), requires_grad=False) for o in outs]
    g = _grad(lib, outs, xs, us, True)
    ws = [rng.standard_normal(a.shape) for a in arrays]
    terms = [(gi * lib_tensor(lib, w, requires_grad=False)).sum() for gi, w in zip(g, ws)
             if gi is not None and gi.requires_grad]
    if not terms:
        return [to_numpy(gi) for gi in g], [None] * len(xs)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    h = _grad(lib, [total], xs, None, False)
    return [to_numpy(gi) for gi in g], [to_numpy(hi) for hi in h]


def check_second_order(fn, *arrays, rtol=RTOL, atol=ATOL):
    torch_or_skip()
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    g_s, h_s = _two_levels(somanet, fn, arrays)
    g_t, h_t = _two_levels(torch, fn, arrays)
    for level, (got, want) in (("first", (g_s, g_t)), ("second", (h_s, h_t))):
        for i, (a, b) in enumerate(zip(got, want)):
            if b is None:
                assert a is None or not np.any(a), f"{level} derivative of input {i}: expected none, got {a}"
                continue
            a = np.zeros_like(b) if a is None else a
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{level} derivative of input {i}")


def rand(*shape, seed=0, low=None):
    a = np.random.default_rng(seed + sum(shape)).standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    return a


# --------------------------------------------------------------------------- elementwise
ELEMENTWISE = {
    "add_sub_mul_div": (lambda L, x, y: x * y + x / (y * y + 1) - 2.5 * x + y - x * 3, (rand(3, 4), rand(3, 4, seed=1))),
    "broadcast": (lambda L, x, y: x * y / (y * y + 1), (rand(3, 4), rand(4, seed=2))),
    "pow": (lambda L, x, y: x ** 3 + x ** y + 2.0 ** y, (rand(3, 4, low=0.5), rand(3, 4, seed=1))),
    "exp_log": (lambda L, x: x.exp() * (x * x + 1).log() + (x.abs() + 1).log2() + (x.abs() + 1).log10(),
                (rand(3, 4),)),
    "sqrt_rsqrt_reciprocal": (lambda L, x: x.sqrt() + x.rsqrt() + x.reciprocal(), (rand(3, 4, low=0.5),)),
    "trig": (lambda L, x: x.sin() * x.cos() + (x * 0.3).tan() + x.tanh() + L[0].sigmoid(x), (rand(3, 4),)),
    "expm1_log1p_square_abs": (lambda L, x: x.expm1() * x.square() + (x.abs() + 0.1).log1p() + x.abs() * x,
                               (rand(3, 4),)),
    "max_min_where_clamp": (lambda L, x, y: L[0].maximum(x, y) * L[0].minimum(x, y) + L[0].where(x > 0, x * y, y * y)
                            + x.clamp(-0.5, 0.7) * x, (rand(3, 4), rand(3, 4, seed=5))),
    "lerp_erf": (lambda L, x, y, w: L[0].lerp(x, y, w) * L[0].erf(x), (rand(5), rand(5, seed=1), rand(5, seed=2))),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise(name):
    fn, arrays = ELEMENTWISE[name]
    check_second_order(fn, *arrays, rtol=1e-5 if "erf" in name else RTOL)


# --------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "relu": lambda L, x: L[1].relu(x) * x,
    "leaky_relu": lambda L, x: L[1].leaky_relu(x, 0.2) * x,
    "elu": lambda L, x: L[1].elu(x, 1.3),
    "selu": lambda L, x: L[1].selu(x) * x,
    "celu": lambda L, x: L[1].celu(x, 0.7),
    "softplus": lambda L, x: L[1].softplus(x, beta=2.0) + L[1].softplus(x),
    "silu": lambda L, x: L[1].silu(x),
    "mish": lambda L, x: L[1].mish(x),
    "hardswish": lambda L, x: L[1].hardswish(x * 4),
    "logsigmoid": lambda L, x: L[1].logsigmoid(x),
    "tanhshrink": lambda L, x: L[1].tanhshrink(x),
    "shrink_threshold": lambda L, x: (L[1].softshrink(x, 0.3) + L[1].hardshrink(x, 0.3) + L[1].threshold(x, 0.1, 2.0)) * x,
    "hardtanh_relu6": lambda L, x: (L[1].hardtanh(x) + L[1].relu6(x * 5)) * x,
    "glu": lambda L, x: L[1].glu(x, 1),
    "softmax": lambda L, x: L[1].softmax(x, 1) * x,
    "log_softmax": lambda L, x: L[1].log_softmax(x, 0) * x,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name):
    check_second_order(ACTIVATIONS[name], rand(3, 6))


def test_prelu():
    check_second_order(lambda L, x, w: L[1].prelu(x, w), rand(2, 3, 4), rand(3, seed=3))


# --------------------------------------------------------------------------- reductions
REDUCTIONS = {
    "sum_mean": lambda L, x: (x.sum(1) * x.mean(0).sum(), x.sum((0, 2), keepdim=True) * x.mean(), x.sum() * x),
    "prod": lambda L, x: x.prod(1) + x.prod(),
    "var_std": lambda L, x: x.var(1) * x.std(2).sum() + x.std(unbiased=False) + x.var((0, 1), keepdim=True).sum(),
    "amax_max": lambda L, x: (x.amax(1) * x.amax(1), x.max(2)[0] * x.amin(), x.amax((0, 2)) * x.max()),
    "logsumexp": lambda L, x: x.logsumexp(2) * x.logsumexp(1, keepdim=True).sum(),
    "cumsum_cumprod": lambda L, x: x.cumsum(1) * x.cumprod(2),
    "norm": lambda L, x: x.norm() + x.norm(p=1, dim=1).sum() * x.norm(p=3, dim=2).sum() + x.norm(p=float("inf")),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction(name):
    check_second_order(REDUCTIONS[name], rand(2, 3, 4, seed=7))


# --------------------------------------------------------------------------- shape and index ops
SHAPES = {
    "reshape_permute_expand": lambda L, x: (x.reshape(4, 6).t() * 2).permute(1, 0).reshape(2, 3, 4).expand(2, 2, 3, 4)
    * x.unsqueeze(0),
    "repeat_flip_roll": lambda L, x: x.repeat(1, 2, 1) * L[0].flip(x, (1,)).repeat(1, 2, 1) + L[0].roll(x, 1, 2).repeat(1, 2, 1),
    "cat_stack_split": lambda L, x: L[0].cat([x, x * x], 1) * L[0].stack(list(L[0].split(x, 1, 2)), 0).sum(0).repeat(1, 2, 4),
    "unbind_chunk_narrow": lambda L, x: (L[0].unbind(x, 1)[0] * L[0].unbind(x, 1)[2], L[0].chunk(x, 2, 2)[1] * L[0].chunk(x, 2, 2)[0],
                                         x.narrow(2, 1, 2) * x[:, :, :2]),
    "slice_index": lambda L, x: x[:, 1:, ::2] * x[:, :2, 1::2] + x[[1, 0, 1]][:, [0, 2], 1:3].sum(0),
    "gather_scatter": lambda L, x: L[0].gather(x, 2, L[0].tensor([[[0, 3], [1, 1], [2, 0]]] * 2)) * x[:, :, :2]
    + L[0].scatter_add(x, 2, L[0].tensor([[[0, 3], [1, 1], [2, 0]]] * 2), x[:, :, :2] * x[:, :, 2:])[:, :, :2],
    "index_select_add": lambda L, x: L[0].index_select(x, 1, L[0].tensor([2, 0, 2])) * x
    + L[0].index_add(x, 2, L[0].tensor([0, 0]), x[:, :, 1:3] * x[:, :, 2:]),
    "masked_tril": lambda L, x: x.masked_fill(L[0].tensor(np.eye(3, 4, dtype=bool)), 2.0) * x
    + L[0].tril(x) * L[0].triu(x, 1) + L[0].masked_select(x, x > 0).sum(),
    "pad": lambda L, x: L[1].pad(x, (1, 2, 0, 1)) * L[1].pad(x * x, (1, 2, 0, 1), mode="reflect")
    + L[1].pad(x, (1, 2, 0, 1), mode="replicate") + L[1].pad(x, (1, 2, 0, 1), mode="circular"),
    "scatter": lambda L, x: L[0].scatter(x * x, 2, L[0].tensor([[[0], [3], [2]]] * 2), x[:, :, :1] * 3) * x,
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_and_index(name):
    check_second_order(SHAPES[name], rand(2, 3, 4, seed=11))


# --------------------------------------------------------------------------- linear algebra
def test_matmul_shapes():
    def fn(L, a, b, v, c):
        return ((a @ b).tanh() @ v).sum() + (v @ v) * (a @ b).sum() + (c @ b).sum(0).sum() + ((c @ b) * (c @ b)).sum()

    check_second_order(fn, rand(3, 4), rand(4, 5, seed=1), rand(5, seed=2), rand(2, 3, 4, seed=3))


def test_linear_bilinear_einsum():
    def fn(L, x, w, b, x2, wb):
        y = L[1].linear(x, w, b).tanh()
        z = L[1].bilinear(x, x2, wb)
        return L[0].einsum("bti,btj->ij", y, z) * L[0].einsum("ij->j", w)[:2].sum()

    check_second_order(fn, rand(2, 3, 4), rand(5, 4, seed=1), rand(5, seed=2), rand(2, 3, 2, seed=3),
                       rand(3, 4, 2, seed=4))


# --------------------------------------------------------------------------- convolutions and pooling
CONV = {
    "conv2d": (lambda L, x, w, b: L[1].conv2d(x, w, b, stride=2, padding=1).tanh(), (rand(2, 2, 6, 5), rand(3, 2, 3, 3, seed=1), rand(3, seed=2))),
    "conv2d_groups_dilation": (lambda L, x, w: L[1].conv2d(x, w, padding=(2, 1), dilation=(2, 1), groups=2) ** 2,
                               (rand(1, 4, 5, 5), rand(4, 2, 2, 3, seed=1))),
    "conv1d": (lambda L, x, w, b: L[1].conv1d(x, w, b, stride=2, padding=1) ** 2, (rand(2, 3, 7), rand(4, 3, 3, seed=1), rand(4, seed=2))),
    "conv_transpose2d": (lambda L, x, w, b: L[1].conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1).tanh(),
                         (rand(2, 3, 3, 4), rand(3, 2, 3, 3, seed=1), rand(2, seed=2))),
    "conv_transpose2d_groups": (lambda L, x, w: L[1].conv_transpose2d(x, w, groups=2, dilation=2) ** 2,
                                (rand(1, 4, 3, 3), rand(4, 1, 2, 2, seed=1))),
    "conv_transpose1d": (lambda L, x, w: L[1].conv_transpose1d(x, w, stride=2) ** 2, (rand(2, 3, 4), rand(3, 2, 3, seed=1))),
    "max_pool": (lambda L, x: L[1].max_pool2d(x * x, 2) * L[1].max_pool2d(x, 3, 2, 1)[..., :2, :2] + L[1].max_pool1d(x[0], 2).sum(),
                 (rand(2, 2, 4, 4),)),
    "avg_pool": (lambda L, x: L[1].avg_pool2d(x * x, 3, 2, 1, count_include_pad=False) * L[1].avg_pool2d(x, 2)[..., :2, :2]
                 + L[1].avg_pool1d(x[0] * x[0], 2).sum(), (rand(2, 2, 4, 4),)),
    "adaptive_pool": (lambda L, x: L[1].adaptive_avg_pool2d(x * x, (2, 3)) * L[1].adaptive_max_pool2d(x, (2, 3))
                      + L[1].adaptive_avg_pool2d(x, 1).sum(), (rand(2, 2, 5, 4),)),
    "interpolate_shuffle": (lambda L, x: L[1].interpolate(x * x, scale_factor=2, mode="bilinear", align_corners=False)
                            * L[1].pixel_shuffle(L[0].cat([x, x, x, x], 1), 2)
                            + L[1].interpolate(x, scale_factor=2, mode="nearest") * x.sum(), (rand(1, 2, 3, 3),)),
    "unfold_fold": (lambda L, x: L[1].fold(L[1].unfold(x * x, 2, padding=1) * L[1].unfold(x, 2, padding=1), (3, 3), 2, padding=1),
                    (rand(1, 2, 3, 3),)),
}


@pytest.mark.parametrize("name", sorted(CONV))
def test_conv_and_pool(name):
    fn, arrays = CONV[name]
    check_second_order(fn, *arrays)


# --------------------------------------------------------------------------- normalisation
NORMS = {
    "layer_norm": (lambda L, x, w, b: L[1].layer_norm(x, (4,), w, b) ** 2, (rand(2, 3, 4), rand(4, seed=1), rand(4, seed=2))),
    "layer_norm_2d": (lambda L, x: L[1].layer_norm(x, (3, 4)) * x, (rand(2, 3, 4),)),
    "batch_norm_train": (lambda L, x, w, b: L[1].batch_norm(x, None, None, w, b, training=True) ** 2,
                         (rand(4, 3, 2, 2), rand(3, seed=1), rand(3, seed=2))),
    "batch_norm_1d": (lambda L, x: L[1].batch_norm(x, None, None, training=True) * x, (rand(5, 3),)),
    "batch_norm_eval": (lambda L, x, w, b: L[1].batch_norm(x, L[0].tensor(np.arange(3.0)), L[0].tensor(np.arange(1.0, 4.0)),
                                                           w, b, training=False) ** 2,
                        (rand(4, 3, 2), rand(3, seed=1), rand(3, seed=2))),
    "group_norm": (lambda L, x, w, b: L[1].group_norm(x, 2, w, b) ** 2, (rand(2, 4, 3), rand(4, seed=1), rand(4, seed=2))),
    "instance_norm": (lambda L, x: L[1].instance_norm(x) * x, (rand(2, 3, 5),)),
    "rms_norm": (lambda L, x, w: L[1].rms_norm(x, (4,), w) ** 2, (rand(2, 3, 4), rand(4, seed=1))),
}


@pytest.mark.parametrize("name", sorted(NORMS))
def test_norm(name):
    fn, arrays = NORMS[name]
    check_second_order(fn, *arrays, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- losses
LOSSES = {
    "mse": (lambda L, x, t: L[1].mse_loss(x * x, t) + L[1].mse_loss(x, t, reduction="sum"), (rand(3, 4), rand(3, 4, seed=1))),
    "l1_smooth_huber": (lambda L, x, t: L[1].l1_loss(x * x, t) + L[1].smooth_l1_loss(x * x, t, beta=0.5)
                        + L[1].huber_loss(x * x, t, delta=0.7, reduction="sum"), (rand(3, 4), rand(3, 4, seed=1))),
    "cross_entropy": (lambda L, x: L[1].cross_entropy(x * x, L[0].tensor([0, 3, 1])), (rand(3, 5),)),
    "cross_entropy_options": (lambda L, x, w: L[1].cross_entropy(x * x, L[0].tensor([0, 3, -100, 2]), weight=w.detach(),
                                                                 ignore_index=-100, label_smoothing=0.1)
                              + L[1].cross_entropy(x, L[0].tensor([1, 1, 2, 0]), reduction="none").sum(),
                              (rand(4, 5), rand(5, low=0.5, seed=3))),
    "cross_entropy_spatial": (lambda L, x: L[1].cross_entropy(x, L[0].tensor([[[0, 1], [2, 0]]]), reduction="sum") * x.sum(),
                              (rand(1, 3, 2, 2),)),
    "cross_entropy_probs": (lambda L, x, t: L[1].cross_entropy(x * x, L[1].softmax(t, 1), label_smoothing=0.2),
                            (rand(3, 5), rand(3, 5, seed=1))),
    "nll": (lambda L, x: L[1].nll_loss(L[1].log_softmax(x * x, 1), L[0].tensor([0, 3, 1])), (rand(3, 5),)),
    "bce": (lambda L, x, t: L[1].binary_cross_entropy(L[0].sigmoid(x), L[0].sigmoid(t)), (rand(3, 4), rand(3, 4, seed=1))),
    "bce_logits": (lambda L, x, t, p: L[1].binary_cross_entropy_with_logits(x * x, L[0].sigmoid(t), pos_weight=p.detach())
                   + L[1].binary_cross_entropy_with_logits(x, L[0].sigmoid(t * x), reduction="sum"),
                   (rand(3, 4), rand(3, 4, seed=1), rand(4, low=0.5, seed=2))),
    "kl_div": (lambda L, x, t: L[1].kl_div(L[1].log_softmax(x, 1), L[1].softmax(t, 1), reduction="batchmean")
               + L[1].kl_div(L[1].log_softmax(x * x, 1), L[1].log_softmax(t, 1), reduction="sum", log_target=True),
               (rand(3, 4), rand(3, 4, seed=1))),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss(name):
    fn, arrays = LOSSES[name]
    check_second_order(fn, *arrays)


# --------------------------------------------------------------------------- embeddings and attention
def test_embedding():
    idx = np.array([[0, 2, 1], [2, 2, 3]])

    def fn(L, w):
        return L[1].embedding(L[0].tensor(idx), w * w, padding_idx=1) ** 2

    check_second_order(fn, rand(4, 3))


@pytest.mark.parametrize("kind", ["plain", "causal", "float_mask"])
def test_scaled_dot_product_attention(kind):
    mask = rand(3, 4, seed=9) * 0.5

    def fn(L, q, k, v, m):
        if kind == "causal":
            out = L[1].scaled_dot_product_attention(q, k, v[..., :3, :] if False else v, is_causal=True)
        elif kind == "float_mask":
            out = L[1].scaled_dot_product_attention(q, k, v, attn_mask=m)
        else:
            out = L[1].scaled_dot_product_attention(q, k, v)
        return out ** 2

    check_second_order(fn, rand(2, 3, 2), rand(2, 4, 2, seed=1), rand(2, 4, 3, seed=2), mask)


def test_multihead_attention_module():
    torch_or_skip()
    e, heads = 4, 2
    rng = np.random.default_rng(3)
    params = {"in_proj_weight": rng.standard_normal((3 * e, e)) * 0.5, "in_proj_bias": rng.standard_normal(3 * e) * 0.1,
              "out_proj.weight": rng.standard_normal((e, e)) * 0.5, "out_proj.bias": rng.standard_normal(e) * 0.1}

    def fn(L, x):
        m = L[0].nn.MultiheadAttention(e, heads, batch_first=True).double()
        with L[0].no_grad():
            for name, p in m.named_parameters():
                p.copy_(L[0].tensor(params[name]))
        out, _ = m(x, x, x)
        return out ** 2

    check_second_order(fn, rand(2, 3, e), rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- gradgradcheck in float64
GRADGRAD = [
    lambda x: (x * x.exp()).sum(1).tanh(),
    lambda x: SF.softmax(x, 1) * x,
    lambda x: SF.layer_norm(x, (4,)) ** 2,
    lambda x: (x @ x.t()).sigmoid(),
    lambda x: SF.conv2d(x.reshape(1, 1, 3, 4), x[:2, :2].reshape(1, 1, 2, 2), padding=1) ** 2,
    lambda x: SF.cross_entropy(x, somanet.tensor([0, 3, 1])),
    lambda x: x.std(1) * x.logsumexp(0).sum(),
    lambda x: SF.max_pool2d((x * x).reshape(1, 1, 3, 4), 2, 1),
    lambda x: SF.hardsigmoid(x * 2) * x + SF.hardswish(x * 2) * x,
    lambda x: SF.silu(x) * SF.mish(x),
    lambda x: _seeded_dropout(x * x) * x,
]


def _seeded_dropout(x):
    somanet.manual_seed(0)  # the same mask at every evaluation
    return SF.dropout(x, 0.5)


@pytest.mark.parametrize("k", range(len(GRADGRAD)))
def test_gradgradcheck(k):
    x = somanet.tensor(rand(3, 4, seed=k) * 0.7, dtype=somanet.float64, requires_grad=True)
    assert gradgradcheck(GRADGRAD[k], [x])


def test_gradcheck_catches_a_wrong_second_derivative():
    from somanet.autograd import Function, GradcheckError, gradcheck

    class BadSquare(Function):
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        def backward(ctx, grad):
            (a,) = ctx.saved
            return grad * 2 * a

        def grad_graph(ctx, grad):
            (a,) = ctx.saved
            return grad * 2 * a.copy()  # a constant: the second derivative is lost

    x = somanet.tensor([0.5, -1.0, 2.0], dtype=somanet.float64, requires_grad=True)
    assert gradcheck(BadSquare.apply, [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(BadSquare.apply, [x])
    assert gradgradcheck(BadSquare.apply, [x], raise_exception=False) is False


# --------------------------------------------------------------------------- more index, in-place and attention ops
MORE = {
    "setitem_index_copy_fill": (lambda L, x, y: _setitem(L, x, y) * x
                                + L[0].index_copy(x, 1, L[0].tensor([2, 0]), y[:, :2] * y[:, 1:]) * x
                                + L[0].index_fill(x * x, 0, L[0].tensor([1]), 0.5) * x,
                                (rand(3, 3), rand(3, 3, seed=1))),
    "scatter_value_masked_tensor": (lambda L, x, v: L[0].scatter(x * x, 1, L[0].tensor([[0], [2], [1]]), 2.0) * x
                                    + x.masked_fill(L[0].tensor(np.eye(3, dtype=bool)), (v * v).sum()) * x,
                                    (rand(3, 3), rand(2, seed=4))),
    "max_unpool": (lambda L, x: _unpool(L, x), (rand(1, 2, 4, 4),)),
    "cast": (lambda L, x: (x * x).float().double() * x, (rand(3, 4),)),
}


def _setitem(L, x, y):
    z = x * 1.0
    z[1:, :2] = y[:2, 1:] * y[:2, 1:]
    z[0] = y[2]
    return z


def _unpool(L, x):
    out, idx = L[1].max_pool2d(x * x, 2, return_indices=True)
    return L[1].max_unpool2d(out * out, idx, 2) * x


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_ops(name):
    fn, arrays = MORE[name]
    check_second_order(fn, *arrays)


def test_embedding_scaled_by_frequency():
    idx = np.array([0, 2, 2, 3, 2])
    check_second_order(lambda L, w: L[1].embedding(L[0].tensor(idx), w * w, scale_grad_by_freq=True) ** 2, rand(4, 3))


def test_multihead_attention_with_bias_kv_and_kdim():
    torch_or_skip()
    e, heads, kd = 4, 2, 3

    def fn(L, q, k):
        m = L[0].nn.MultiheadAttention(e, heads, add_bias_kv=True, add_zero_attn=True, kdim=kd, vdim=kd).double()
        with L[0].no_grad():
            for name, p in m.named_parameters():
                seed = sum(map(ord, name))
                p.copy_(L[0].tensor(np.random.default_rng(seed).standard_normal(tuple(p.shape)) * 0.4))
        out, w = m(q, k, k)
        return out ** 2, w

    check_second_order(fn, rand(3, 2, e), rand(5, 2, kd, seed=1), rtol=1e-5, atol=1e-8)


SOMANET_ONLY = [
    lambda x: _rotary(x),
    lambda x: _attention_pool(x),
]


def _rotary(x):
    from somanet.ops.attention import apply_rotary_emb

    angles = np.arange(3.0)[:, None] * np.array([0.3, 0.7])
    return apply_rotary_emb(x * x, np.cos(angles), np.sin(angles)) * x


def _attention_pool(x):
    from somanet.ops.attention import attention_pool

    context, weights = attention_pool(x.reshape(1, 3, 4) * 2, x.reshape(1, 4, 3) * x.reshape(1, 4, 3))
    return context * weights[..., :3]


@pytest.mark.parametrize("k", range(len(SOMANET_ONLY)))
def test_gradgradcheck_ops_without_torch_counterpart(k):
    x = somanet.tensor(rand(3, 4, seed=k) * 0.7, dtype=somanet.float64, requires_grad=True)
    assert gradgradcheck(SOMANET_ONLY[k], [x])
