"""Saliency, SmoothGrad, Integrated Gradients, Grad-CAM and Grad-CAM++ against the same computations
written in PyTorch on a twin of the model with copied weights, plus the methods' error messages."""
import numpy as np
import pytest

import somanet
from somanet import nn
from somanet.interpret import GradCAM, GradCAMPlusPlus, IntegratedGradients, Saliency, SmoothGrad
from somanet.models.small_cnn import SmallCNN
from reference import assert_close, copy_state, torch_or_skip

torch = pytest.importorskip("torch")
tnn = torch.nn
TF = torch.nn.functional

TARGETS = np.array([3, 0, 7])


def torch_small_cnn(width=4):
    """SmallCNN's layout in PyTorch (same module names, so the state dict copies over)."""
    def block(cin, cout, pool):
        layers = [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]
        return tnn.Sequential(*(layers + [tnn.MaxPool2d(2)] if pool else layers))

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.block1, self.block2 = block(1, width, True), block(width, 2 * width, True)
            self.block3, self.pool = block(2 * width, 4 * width, False), tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(4 * width, 10)

        def forward(self, x):
            return self.fc(self.pool(self.block3(self.block2(self.block1(x)))).flatten(1))

    return Twin()


@pytest.fixture(scope="module")
def cnn_pair():
    torch_or_skip()
    torch.manual_seed(0)
    t = torch_small_cnn()
    with torch.no_grad():
        for m in t.modules():
            if isinstance(m, tnn.BatchNorm2d):  # non-trivial running statistics and affine terms
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    t.eval()
    s = SmallCNN(width=4)
    copy_state(t, s)
    s.eval()
    x = np.random.default_rng(1).standard_normal((3, 1, 12, 12)).astype(np.float32)
    return s, t, x


@pytest.fixture(scope="module")
def mlp_pair():
    """A smooth model (tanh MLP) where Integrated Gradients' completeness holds tightly."""
    torch_or_skip()
    torch.manual_seed(1)
    t = tnn.Sequential(tnn.Linear(6, 16), tnn.Tanh(), tnn.Linear(16, 4)).eval()
    s = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).eval()
    copy_state(t, s)
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    return s, t, x


def torch_input_grad(model, x, target):
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    score = out[torch.arange(len(x)), torch.as_tensor(target)].sum()
    return torch.autograd.grad(score, xt)[0]


# --------------------------------------------------------------------------- saliency
@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_is_torch_input_gradient(cnn_pair, use_abs):
    s, t, x = cnn_pair
    ref = torch_input_grad(t, x, TARGETS)
    got = Saliency(s).attribute(somanet.tensor(x), target=TARGETS.tolist(), abs=use_abs)
    assert_close(got, ref.abs() if use_abs else ref, rtol=1e-4, atol=1e-6)


def test_saliency_single_int_target_and_scalar_output(mlp_pair):
    s, t, x = mlp_pair
    assert_close(Saliency(s).attribute(x, target=2, abs=False), torch_input_grad(t, x, [2] * len(x)), atol=1e-6)
    # A model with one output per sample needs no target.
    one = nn.Sequential(s, nn.Linear(4, 1))
    tone = tnn.Sequential(t, tnn.Linear(4, 1))
    copy_state(tone, one)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.autograd.grad(tone(xt).sum(), xt)[0]
    assert_close(Saliency(one).attribute(x, abs=False), ref, atol=1e-6)


# --------------------------------------------------------------------------- SmoothGrad
@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_matches_torch_with_shared_noise(cnn_pair, nt_type):
    s, t, x = cnn_pair
    k, stdevs = 4, 0.2
    eps = np.random.default_rng(3).standard_normal((k,) + x.shape).astype(np.float32)
    got = SmoothGrad(s).attribute(x, target=TARGETS, nt_type=nt_type, nt_samples=k, stdevs=stdevs, noise=eps,
                                  nt_samples_batch_size=3)
    xt = torch.tensor(x)
    sigma = stdevs * (xt.flatten(1).max(1).values - xt.flatten(1).min(1).values)
    grads = torch.stack([torch_input_grad(t, (xt + sigma.view(-1, 1, 1, 1) * torch.tensor(e)).numpy(), TARGETS)
                         for e in eps])
    ref = {"smoothgrad": grads.mean(0), "smoothgrad_sq": (grads ** 2).mean(0),
           "vargrad": grads.var(0, unbiased=False)}[nt_type]
    assert_close(got, ref, rtol=1e-4, atol=1e-7)


def test_smoothgrad_generator_makes_it_reproducible(mlp_pair):
    s, _, x = mlp_pair
    runs = [SmoothGrad(s).attribute(x, target=1, nt_samples=3, generator=somanet.Generator().manual_seed(5)).array
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = SmoothGrad(s).attribute(x, target=1, nt_samples=3, generator=somanet.Generator().manual_seed(6)).array
    assert not np.array_equal(runs[0], other)
    # With no noise it is the plain gradient.
    zero = SmoothGrad(s).attribute(x, target=1, nt_samples=2, stdevs=0.0).array
    np.testing.assert_allclose(zero, Saliency(s).attribute(x, target=1, abs=False).array, rtol=1e-6)


# --------------------------------------------------------------------------- Integrated Gradients
def torch_integrated_gradients(model, x, baseline, target, alphas, weights):
    xt, bt = torch.tensor(x, dtype=torch.float64), torch.tensor(baseline, dtype=torch.float64)
    total = torch.zeros_like(xt)
    for a, w in zip(alphas, weights):
        point = (bt + a * (xt - bt)).float().numpy()
        total += w * torch_input_grad(model, point, target).double()
    return (total * (xt - bt)).float()


def test_integrated_gradients_trapezoid_matches_torch_riemann_sum(cnn_pair):
    s, t, x = cnn_pair
    n = 8
    baseline = np.full_like(x, -0.5)
    got = IntegratedGradients(s).attribute(x, baselines=-0.5, target=TARGETS, n_steps=n,
                                           method="riemann_trapezoid", internal_batch_size=5)
    alphas = np.linspace(0, 1, n)
    weights = np.r_[0.5, np.ones(n - 2), 0.5] / (n - 1)
    assert_close(got, torch_integrated_gradients(t, x, baseline, TARGETS, alphas, weights), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_gauss_legendre_and_completeness(mlp_pair):
    s, t, x = mlp_pair
    baseline = np.random.default_rng(4).standard_normal(x.shape[1:]).astype(np.float32)
    attr, delta = IntegratedGradients(s).attribute(somanet.tensor(x), baselines=somanet.tensor(baseline), target=2,
                                                   n_steps=32, return_convergence_delta=True)
    nodes, w = np.polynomial.legendre.leggauss(32)
    ref = torch_integrated_gradients(t, x, np.broadcast_to(baseline, x.shape), [2] * len(x), (nodes + 1) / 2, w / 2)
    assert_close(attr, ref, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        gap = (t(torch.tensor(x))[:, 2] - t(torch.tensor(baseline)[None].expand_as(torch.tensor(x)))[:, 2]).double()
    assert delta.shape == (len(x),)
    assert_close(delta, (ref.double().sum(1) - gap).float(), atol=2e-5)
    # Completeness: the attributions add up to the change in output, to quadrature accuracy.
    assert np.abs(delta.array).max() < 1e-4 * max(1.0, float(gap.abs().max()))


def test_integrated_gradients_delta_shrinks_with_steps(mlp_pair):
    s, _, x = mlp_pair
    ig = IntegratedGradients(s)
    coarse = ig.attribute(x, target=0, n_steps=3, method="riemann_right", return_convergence_delta=True)[1]
    fine = ig.attribute(x, target=0, n_steps=300, method="riemann_trapezoid", return_convergence_delta=True)[1]
    assert np.abs(fine.array).max() < np.abs(coarse.array).max() / 10


# --------------------------------------------------------------------------- Grad-CAM / Grad-CAM++
def torch_cams(model, layer, x, target):
    """Grad-CAM and Grad-CAM++ from the papers' formulas, with a forward hook and a tensor hook."""
    store = {}

    def keep(module, args, out):
        store["A"] = out
        out.register_hook(lambda g: store.__setitem__("G", g))

    h = layer.register_forward_hook(keep)
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    h.remove()
    out[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    A, G = store["A"].detach().double(), store["G"].double()
    cam = TF.relu((G.mean((2, 3), keepdim=True) * A).sum(1, keepdim=True))
    g2, g3 = G ** 2, G ** 3
    denom = 2 * g2 + A.sum((2, 3), keepdim=True) * g3
    a = torch.where((G != 0) & (denom != 0), g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                    torch.zeros_like(G))
    weights = (a * TF.relu(G)).sum((2, 3), keepdim=True)
    campp = TF.relu((weights * A).sum(1, keepdim=True))
    size = x.shape[2:]
    up = [TF.interpolate(c.float(), size=size, mode="bilinear", align_corners=False) for c in (cam, campp)]
    return cam.float(), campp.float(), up[0], up[1]


@pytest.mark.parametrize("layer_name", ["block3", "block2"])
def test_gradcam_and_gradcam_plus_plus_match_the_formulas(cnn_pair, layer_name):
    s, t, x = cnn_pair
    cam, campp, cam_up, campp_up = torch_cams(t, getattr(t, layer_name), x, TARGETS)
    layer = getattr(s, layer_name)
    got = GradCAM(s, layer).attribute(x, target=TARGETS)
    assert got.shape == (3, 1, 12, 12) and got.dtype == np.float32
    assert_close(got, cam_up, rtol=1e-4, atol=1e-6)
    assert_close(GradCAM(s, layer).attribute(x, target=TARGETS, upsample=False), cam, rtol=1e-4, atol=1e-6)
    assert_close(GradCAMPlusPlus(s, layer).attribute(x, target=TARGETS), campp_up, rtol=1e-4, atol=1e-6)
    assert_close(GradCAMPlusPlus(s, layer).attribute(x, target=TARGETS, upsample=False), campp, rtol=1e-4, atol=1e-6)
    assert float(got.array.max()) > 0  # a map that is all zeros would compare equal too easily


def test_gradcam_without_relu_keeps_negative_evidence(cnn_pair):
    s, _, x = cnn_pair
    raw = GradCAM(s, s.block3).attribute(x, target=TARGETS, relu_attributions=False, upsample=False).array
    relu = GradCAM(s, s.block3).attribute(x, target=TARGETS, upsample=False).array
    np.testing.assert_allclose(np.maximum(raw, 0), relu, rtol=1e-6)


# --------------------------------------------------------------------------- errors
def test_errors_name_the_method_and_what_was_wrong(cnn_pair, mlp_pair):
    s, _, x = cnn_pair
    with pytest.raises(IndexError, match=r"Saliency: target 10 is out of range for the model's 10 outputs"):
        Saliency(s).attribute(x, target=10)
    with pytest.raises(IndexError, match="IntegratedGradients: target -1"):
        IntegratedGradients(s).attribute(x, target=[1, -1, 2])
    with pytest.raises(ValueError, match="one class per sample"):
        Saliency(s).attribute(x, target=[1, 2])
    with pytest.raises(ValueError, match="say which to explain with target"):
        Saliency(s).attribute(x)
    with pytest.raises(TypeError, match="SmoothGrad: inputs must be floating point.*int64"):
        SmoothGrad(s).attribute(np.zeros((2, 1, 12, 12), np.int64), target=0)
    with pytest.raises(ValueError, match="NaN or infinity"):
        Saliency(s).attribute(np.full((1, 1, 12, 12), np.nan, np.float32), target=0)
    with pytest.raises(ValueError, match="GradCAM: target_layer Linear is not a submodule"):
        GradCAM(s, nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"GradCAMPlusPlus: target_layer Linear gives \(3, 10\).*feature map"):
        GradCAMPlusPlus(s, s.fc).attribute(x, target=0)
    with pytest.raises(TypeError, match="target_layer must be a module"):
        GradCAM(s, "block3")
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        IntegratedGradients(s).attribute(x, target=0, n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        IntegratedGradients(s).attribute(x, target=0, method="simpson")
    with pytest.raises(ValueError, match="baselines of shape \\(5,\\) do not broadcast"):
        IntegratedGradients(s).attribute(x, baselines=np.zeros(5, np.float32), target=0)
    with pytest.raises(ValueError, match="noise must have shape"):
        SmoothGrad(s).attribute(x, target=0, nt_samples=2, noise=np.zeros((3,) + x.shape, np.float32))
    ms, _, xm = mlp_pair

    class Detached(nn.Module):
        def forward(self, inp):
            return ms(somanet.tensor(inp.array))  # breaks the graph: not differentiable in the input

    with pytest.raises(RuntimeError, match="Saliency: .*does not depend on its input"):
        Saliency(Detached()).attribute(xm, target=0)
