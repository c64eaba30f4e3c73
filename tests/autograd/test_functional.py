"""create_graph=True end to end (WGAN-GP, Hessians of small networks), somanet.autograd.functional against
PyTorch, the engine's create_graph/retain_graph behaviour, and the clear errors of ops without second
derivatives."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as SF
from somanet.autograd import functional as AF

torch = pytest.importorskip("torch")
TAF = torch.autograd.functional


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.array


def _close(a, b, rtol=1e-6, atol=1e-9, what="value"):
    if isinstance(b, (tuple, list)):
        assert isinstance(a, (tuple, list)) and len(a) == len(b), f"{what}: structure differs"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, rtol, atol, f"{what}[{i}]")
        return
    assert isinstance(a, somanet.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert tuple(a.shape) == tuple(b.shape), f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, err_msg=what)


def _pair(*arrays):
    return ([somanet.tensor(a) for a in arrays], [torch.tensor(a) for a in arrays])


# --------------------------------------------------------------------------- WGAN-GP on a conv critic
def _critic(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1))


def _wgan_gp_step(lib, critic, real, fake, alpha):
    x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    out = critic(x_hat)
    (grads,) = lib.autograd.grad(out, x_hat, grad_outputs=lib.ones_like(out), create_graph=True)
    penalty = ((grads.reshape(grads.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()
    loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
    loss.backward()
    return penalty, loss


def test_wgan_gp_gradient_penalty_matches_torch():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    fake = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    alpha = rng.random((3, 1, 1, 1)).astype(np.float32)
    c_s, c_t = _critic(somanet), _critic(torch)
    with torch.no_grad():
        for (name, p_s), (_, p_t) in zip(c_s.named_parameters(), c_t.named_parameters()):
            p_t.copy_(torch.tensor(rng.standard_normal(tuple(p_t.shape)).astype(np.float32) * 0.3))
            p_s.data = somanet.tensor(p_t.detach().numpy().copy())
    gp_s, loss_s = _wgan_gp_step(somanet, c_s, *_pair(real, fake, alpha)[0])
    gp_t, loss_t = _wgan_gp_step(torch, c_t, *_pair(real, fake, alpha)[1])
    np.testing.assert_allclose(gp_s.item(), gp_t.item(), rtol=1e-5)
    np.testing.assert_allclose(loss_s.item(), loss_t.item(), rtol=1e-5)
    for (name, p_s), (_, p_t) in zip(c_s.named_parameters(), c_t.named_parameters()):
        assert p_s.grad is not None, name
        np.testing.assert_allclose(p_s.grad.array, p_t.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


# --------------------------------------------------------------------------- Hessians of small networks
def test_hessian_of_small_mlp_loss():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    params = [rng.standard_normal((4, 3)) * 0.5, rng.standard_normal(4) * 0.1, rng.standard_normal((2, 4)) * 0.5]

    def loss(lib, F, xt, yt):
        def f(w1, b1, w2):
            return F.mse_loss(F.linear(F.linear(xt, w1, b1).tanh(), w2), yt)
        return f

    h_s = AF.hessian(loss(somanet, SF, *_pair(x, y)[0]), tuple(somanet.tensor(p) for p in params))
    h_t = TAF.hessian(loss(torch, torch.nn.functional, *_pair(x, y)[1]), tuple(torch.tensor(p) for p in params))
    _close(h_s, h_t, what="hessian")


def test_hvp_of_small_conv_net():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 5, 5))
    w, v = rng.standard_normal((3, 2, 3, 3)) * 0.4, rng.standard_normal((3, 2, 3, 3))
    target = rng.integers(0, 3, size=2)

    def make(lib, F):
        xt, tt = lib.tensor(x), lib.tensor(target)

        def f(weight):
            h = F.max_pool2d(F.conv2d(xt, weight, padding=1).tanh(), 2)
            return F.cross_entropy(F.adaptive_avg_pool2d(h, 1).flatten(1), tt)
        return f

    out_s, hv_s = AF.hvp(make(somanet, SF), somanet.tensor(w), somanet.tensor(v))
    out_t, hv_t = TAF.hvp(make(torch, torch.nn.functional), torch.tensor(w), torch.tensor(v))
    _close(out_s, out_t)
    _close(hv_s, hv_t, what="hvp")


# --------------------------------------------------------------------------- the functional API
def _f_single(lib):
    return lambda x: (x.exp() * x).sum(1) ** 2


def _f_multi(lib):
    return lambda x, y: ((x @ y).tanh(), (x * x).sum() * y)


def test_vjp_jvp_against_torch():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    u = rng.standard_normal(2)
    _close(AF.vjp(_f_single(somanet), somanet.tensor(x), somanet.tensor(u)),
           TAF.vjp(_f_single(torch), torch.tensor(x), torch.tensor(u)), what="vjp")
    us = (rng.standard_normal((2, 3)), rng.standard_normal((3, 3)))
    _close(AF.vjp(_f_multi(somanet), (somanet.tensor(x), somanet.tensor(y)), tuple(somanet.tensor(a) for a in us)),
           TAF.vjp(_f_multi(torch), (torch.tensor(x), torch.tensor(y)), tuple(torch.tensor(a) for a in us)), what="vjp2")
    vx = rng.standard_normal((2, 3))
    _close(AF.jvp(_f_single(somanet), somanet.tensor(x), somanet.tensor(vx)),
           TAF.jvp(_f_single(torch), torch.tensor(x), torch.tensor(vx)), what="jvp")
    vs = (vx, rng.standard_normal((3, 3)))
    _close(AF.jvp(_f_multi(somanet), (somanet.tensor(x), somanet.tensor(y)), tuple(somanet.tensor(a) for a in vs)),
           TAF.jvp(_f_multi(torch), (torch.tensor(x), torch.tensor(y)), tuple(torch.tensor(a) for a in vs)), what="jvp2")
    # A scalar function needs no v.
    _close(AF.vjp(lambda x: (x * x).sum(), somanet.tensor(x)), TAF.vjp(lambda x: (x * x).sum(), torch.tensor(x)))


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_against_torch(strategy):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    vec = strategy == "forward-mode"
    _close(AF.jacobian(_f_single(somanet), somanet.tensor(x), vectorize=vec, strategy=strategy),
           TAF.jacobian(_f_single(torch), torch.tensor(x), vectorize=vec, strategy=strategy), what="jacobian")
    _close(AF.jacobian(_f_multi(somanet), (somanet.tensor(x), somanet.tensor(y)), vectorize=vec, strategy=strategy),
           TAF.jacobian(_f_multi(torch), (torch.tensor(x), torch.tensor(y)), vectorize=vec, strategy=strategy),
           what="jacobian tuple")


def test_hessian_vhp_hvp_against_torch():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(3), rng.standard_normal((2, 3))

    def f(lib):
        return lambda a, b: ((b @ a).sin() * a.sum()).sum() + (b * b * a).sum()

    xs_s, xs_t = (somanet.tensor(x), somanet.tensor(y)), (torch.tensor(x), torch.tensor(y))
    _close(AF.hessian(f(somanet), xs_s), TAF.hessian(f(torch), xs_t), what="hessian")
    _close(AF.hessian(lambda a: (a.exp() * a).sum(), xs_s[0]), TAF.hessian(lambda a: (a.exp() * a).sum(), xs_t[0]))
    vs = (rng.standard_normal(3), rng.standard_normal((2, 3)))
    v_s, v_t = tuple(somanet.tensor(a) for a in vs), tuple(torch.tensor(a) for a in vs)
    _close(AF.vhp(f(somanet), xs_s, v_s), TAF.vhp(f(torch), xs_t, v_t), what="vhp")
    _close(AF.hvp(f(somanet), xs_s, v_s), TAF.hvp(f(torch), xs_t, v_t), what="hvp")


def test_functional_create_graph_and_strict():
    x = somanet.tensor([0.5, -1.0, 2.0], dtype=somanet.float64, requires_grad=True)
    _, g = AF.vjp(lambda a: (a ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    (h,) = somanet.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.array, 6 * x.array)
    _, g = AF.vjp(lambda a: (a ** 3).sum(), x)
    assert not g.requires_grad
    # An output independent of an input: zeros, or an error in strict mode (as in PyTorch).
    _, (ga, gb) = AF.vjp(lambda a, b: a.sum(), (x, x * 1))
    assert not gb.array.any()
    with pytest.raises(RuntimeError, match="independent"):
        AF.vjp(lambda a, b: a.sum(), (x, x * 1), strict=True)
    with pytest.raises(RuntimeError, match="single-element"):
        AF.hvp(lambda a: a * 2, x, x)
    with pytest.raises(NotImplementedError, match="vectorize"):
        AF.jacobian(lambda a: a * 2, x, strategy="forward-mode")


# --------------------------------------------------------------------------- the engine
def test_backward_create_graph_keeps_first_order_values_and_retains_graph():
    rng = np.random.default_rng(6)
    w = somanet.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    x = somanet.tensor(rng.standard_normal((2, 4)))
    loss = SF.softmax(SF.linear(x, w).tanh(), 1)[:, 0].sum()
    loss.backward(retain_graph=True)
    plain = w.grad.array.copy()
    assert w.grad.grad_fn is None and not w.grad.requires_grad
    w.grad = None
    loss.backward(create_graph=True)  # retain_graph defaults to create_graph
    assert w.grad.requires_grad
    np.testing.assert_allclose(w.grad.array, plain, rtol=1e-12)
    grad_norm = (w.grad * w.grad).sum()
    w.grad = None
    grad_norm.backward()  # through the retained first graph
    wt = torch.tensor(w.array, requires_grad=True)
    lt = torch.softmax(torch.nn.functional.linear(torch.tensor(x.array), wt).tanh(), 1)[:, 0].sum()
    (gt,) = torch.autograd.grad(lt, wt, create_graph=True)
    (ht,) = torch.autograd.grad((gt * gt).sum(), wt)
    np.testing.assert_allclose(w.grad.array, ht.numpy(), rtol=1e-8)


def test_create_graph_hooks_and_retain_grad():
    x = somanet.tensor([1.0, 2.0, 3.0], dtype=somanet.float64, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.requires_grad))
    h = x * x
    h.retain_grad()
    h.register_hook(lambda g: g * 2)
    (h * x).sum().backward(create_graph=True)
    assert seen == [True]  # once, with the total over x's uses
    assert h.grad.requires_grad
    np.testing.assert_allclose(h.grad.array, 2 * x.array)  # retain_grad sees the hook's result
    # d/dx of x^3 with h's gradient doubled by the hook: 2 * x * 2x + x^2
    np.testing.assert_allclose(x.grad.array, 5 * x.array ** 2)
    (gx,) = somanet.autograd.grad(x.grad.sum(), x)
    # h's hook doubles the gradient flowing through h in this pass too (PyTorch gives the same 12 x).
    np.testing.assert_allclose(gx.array, 12 * x.array)


def test_grad_of_intermediate_and_unused_inputs():
    x = somanet.tensor([1.0, 2.0], dtype=somanet.float64, requires_grad=True)
    unused = somanet.tensor([1.0], dtype=somanet.float64, requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    gh, gx, gu = somanet.autograd.grad(y, (h, x, unused), create_graph=True, allow_unused=True)
    np.testing.assert_allclose(gh.array, 2 * h.array)
    np.testing.assert_allclose(gx.array, 2 * np.exp(2 * x.array))
    assert gu is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        somanet.autograd.grad(y, (x, unused), create_graph=True)
    (g2,) = somanet.autograd.grad(gx.sum(), x)
    np.testing.assert_allclose(g2.array, 4 * np.exp(2 * x.array))


def test_pytorch_style_function_double_backward():
    class Exp(somanet.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            out = a.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return grad * out

    x = somanet.tensor([0.1, 0.7], dtype=somanet.float64, requires_grad=True)
    (g,) = somanet.autograd.grad(Exp.apply(x * 2).sum(), x, create_graph=True)
    (h,) = somanet.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.array, 2 * np.exp(2 * x.array))
    np.testing.assert_allclose(h.array, 4 * np.exp(2 * x.array))


def test_third_derivative():
    x = somanet.tensor([0.3, -0.4], dtype=somanet.float64, requires_grad=True)
    y = (x.sin() * x.exp()).sum()
    (g1,) = somanet.autograd.grad(y, x, create_graph=True)
    (g2,) = somanet.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = somanet.autograd.grad(g2.sum(), x)
    # (sin x e^x)''' = 2 e^x (cos x - sin x)
    np.testing.assert_allclose(g3.array, 2 * np.exp(x.array) * (np.cos(x.array) - np.sin(x.array)))


def test_ops_without_second_derivatives_raise_naming_the_op():
    a = somanet.tensor([[1.0, 2.0], [2.0, 4.0]], requires_grad=True)  # singular
    d = somanet.det(a * 1.0)
    with pytest.raises(RuntimeError, match=r"create_graph=True: Det's backward is not differentiable"):
        somanet.autograd.grad(d, a, create_graph=True)
    d.backward()  # the first-order path is unaffected
    np.testing.assert_allclose(a.grad.array, [[4.0, -2.0], [-2.0, 1.0]], atol=1e-6)


def test_leaf_gradient_array_shared_with_a_pending_node():
    # add hands one gradient array to both its inputs: the leaf x takes it as its .grad while x * 1.0 still
    # waits for it; a later contribution to x.grad must not change it under that node.
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    c = somanet.tensor([2.0, 2.0])
    b = (x * 3 * c).sum()
    y = x * 1.0 + x
    ((y * c).sum() + b).backward()
    np.testing.assert_allclose(x.grad.array, [10.0, 10.0])
