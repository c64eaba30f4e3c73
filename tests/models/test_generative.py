"""Generative models: VAEs, DCGAN / conditional GAN / WGAN-GP networks, their losses, spectral
normalisation, the GAN training loop (including exact resume), and the MNIST quality measures.

Every network is compared with a PyTorch twin holding the same weights (outputs, input gradients and
every parameter gradient); the learning tests run for a few seconds.
"""
import json
import os

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.data import TensorDataset
from somanet.models import (GAN, VAE, ConditionalVAE, ConvDecoder, ConvEncoder, DCGANDiscriminator, DCGANGenerator,
                            MLPDecoder, MLPEncoder, WGANCritic, conv_vae, discriminator_loss, generator_loss,
                            gaussian_kl, gradient_penalty, mlp_vae)
from somanet.models import vae as vae_module
from somanet.train import Trainer, seed_everything
from somanet.train import generative as gen

from reference import assert_close, copy_state

torch = pytest.importorskip("torch")
tnn = torch.nn


def _load_into_torch(t_mod, s_mod):
    """Copy a somanet module's state_dict into a PyTorch module with the same layout."""
    state = {k: torch.tensor(np.array(v.array)) for k, v in s_mod.state_dict().items()}
    t_mod.load_state_dict(state)


def _compare_grads(s_mod, t_mod, rtol=1e-4, atol=1e-5):
    s_params = dict(s_mod.named_parameters())
    t_params = dict(t_mod.named_parameters())
    assert sorted(s_params) == sorted(t_params)
    for name, tp in t_params.items():
        sp = s_params[name]
        # No gradient and a zero gradient mean the same (a parameter the loss does not depend on).
        expected = tp.grad.numpy() if tp.grad is not None else np.zeros(tuple(tp.shape), tp.detach().numpy().dtype)
        actual = sp.grad.array if sp.grad is not None else np.zeros_like(expected)
        assert_close(actual, expected, rtol, atol, what=f"gradient of {name}")


# =========================================================================== spectral norm
def _sn_layers(kind):
    if kind == "linear":
        return tnn.Linear(5, 7), nn.Linear(5, 7), (4, 5)
    if kind == "conv":
        return tnn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3), (2, 3, 6, 6)
    return tnn.ConvTranspose2d(3, 4, 3, 2, 1), nn.ConvTranspose2d(3, 4, 3, 2, 1), (2, 3, 5, 5)


@pytest.mark.parametrize("style", ["hook", "parametrization"])
@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_spectral_norm_matches_pytorch(style, kind):
    torch.manual_seed(0)
    t_mod, s_mod, shape = _sn_layers(kind)
    if style == "hook":
        t_mod = tnn.utils.spectral_norm(t_mod, n_power_iterations=2)
        s_mod = nn.utils.spectral_norm(s_mod, n_power_iterations=2)
        expected_keys = ["bias", "weight_orig", "weight_u", "weight_v"]
    else:
        t_mod = tnn.utils.parametrizations.spectral_norm(t_mod)
        s_mod = nn.utils.parametrizations.spectral_norm(s_mod)
        expected_keys = ["bias", "parametrizations.weight.0._u", "parametrizations.weight.0._v",
                         "parametrizations.weight.original"]
    assert sorted(s_mod.state_dict()) == sorted(t_mod.state_dict()) == expected_keys
    copy_state(t_mod, s_mod)
    rng = np.random.default_rng(1)
    for _ in range(3):  # training mode: every forward pass advances the power iteration
        x = rng.standard_normal(shape).astype(np.float32)
        xs, xt = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ys, yt = s_mod(xs), t_mod(xt)
        assert_close(ys, yt, what="output")
        cot = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        ys.backward(somanet.tensor(cot))
        yt.backward(torch.tensor(cot))
        assert_close(xs.grad, xt.grad, what="input gradient")
        _compare_grads(s_mod, t_mod)
        for key, value in t_mod.state_dict().items():
            assert_close(s_mod.state_dict()[key], value, what=key)
        s_mod.zero_grad()
        t_mod.zero_grad()
    u_before = {k: v.array.copy() for k, v in s_mod.state_dict().items() if k.endswith("u")}
    s_mod.eval()
    t_mod.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    assert_close(s_mod(somanet.tensor(x)), t_mod(torch.tensor(x)), what="eval output")
    # Evaluation uses the stored vectors without updating them.
    for k, v in u_before.items():
        np.testing.assert_array_equal(s_mod.state_dict()[k].array, v)


def test_spectral_norm_bounds_the_largest_singular_value_and_can_be_removed():
    layer = nn.utils.spectral_norm(nn.Linear(30, 20), n_power_iterations=1)
    with somanet.no_grad():
        for _ in range(30):
            layer(somanet.randn(2, 30))
    sigma = np.linalg.svd(layer.weight.array, compute_uv=False)[0]
    assert abs(sigma - 1.0) < 1e-3
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        nn.utils.spectral_norm(layer)
    nn.utils.remove_spectral_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    assert isinstance(layer.weight, nn.Parameter)
    assert abs(np.linalg.svd(layer.weight.array, compute_uv=False)[0] - 1.0) < 1e-3


# =========================================================================== VAE
class _TorchMLPEncoder(tnn.Module):
    def __init__(self, in_features, hidden, latent, num_classes=0):
        super().__init__()
        layers, width = [], in_features + num_classes
        for h in hidden:
            layers += [tnn.Linear(width, h), tnn.ReLU()]
            width = h
        self.body, self.head, self.latent, self.k = tnn.Sequential(*layers), tnn.Linear(width, 2 * latent), latent, \
            num_classes

    def forward(self, x, labels=None):
        h = x.flatten(1)
        if self.k:
            h = torch.cat([h, tnn.functional.one_hot(labels, self.k).float()], 1)
        out = self.head(self.body(h))
        return out[:, :self.latent], out[:, self.latent:]


class _TorchMLPDecoder(tnn.Module):
    def __init__(self, latent, shape, hidden, num_classes=0):
        super().__init__()
        layers, width = [], latent + num_classes
        for h in hidden:
            layers += [tnn.Linear(width, h), tnn.ReLU()]
            width = h
        layers.append(tnn.Linear(width, int(np.prod(shape))))
        self.body, self.shape, self.k = tnn.Sequential(*layers), shape, num_classes

    def forward(self, z, labels=None):
        if self.k:
            z = torch.cat([z, tnn.functional.one_hot(labels, self.k).float()], 1)
        return self.body(z).reshape(z.shape[0], *self.shape)


class _TorchConvEncoder(tnn.Module):
    def __init__(self, shape, latent, channels, hidden, num_classes=0):
        super().__init__()
        c, h, w = shape
        self.features = tnn.Sequential(tnn.Conv2d(c, channels[0], 4, 2, 1), tnn.ReLU(),
                                       tnn.Conv2d(channels[0], channels[1], 4, 2, 1), tnn.ReLU(), tnn.Flatten())
        self.fc = tnn.Sequential(tnn.Linear(channels[1] * (h // 4) * (w // 4) + num_classes, hidden), tnn.ReLU())
        self.head, self.latent, self.k = tnn.Linear(hidden, 2 * latent), latent, num_classes

    def forward(self, x, labels=None):
        h = self.features(x)
        if self.k:
            h = torch.cat([h, tnn.functional.one_hot(labels, self.k).float()], 1)
        out = self.head(self.fc(h))
        return out[:, :self.latent], out[:, self.latent:]


class _TorchConvDecoder(tnn.Module):
    def __init__(self, latent, shape, channels, hidden, num_classes=0):
        super().__init__()
        c, h, w = shape
        self.fc = tnn.Sequential(tnn.Linear(latent + num_classes, hidden), tnn.ReLU(),
                                 tnn.Linear(hidden, channels[0] * (h // 4) * (w // 4)), tnn.ReLU(),
                                 tnn.Unflatten(1, (channels[0], h // 4, w // 4)))
        self.deconv = tnn.Sequential(tnn.ConvTranspose2d(channels[0], channels[1], 4, 2, 1), tnn.ReLU(),
                                     tnn.ConvTranspose2d(channels[1], c, 4, 2, 1))
        self.k = num_classes

    def forward(self, z, labels=None):
        if self.k:
            z = torch.cat([z, tnn.functional.one_hot(labels, self.k).float()], 1)
        return self.deconv(self.fc(z))


class _TorchVAE(tnn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def loss(self, x, eps, labels=None, beta=1.0):
        mu, logvar = self.encoder(x, labels)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.decoder(z, labels)
        recon = tnn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        kl = torch.distributions.kl_divergence(posterior, prior).sum(1)
        return (recon + beta * kl).mean(), recon.mean(), kl.mean()


def _fixed_eps(monkeypatch, eps):
    monkeypatch.setattr(vae_module, "reparameterize",
                        lambda mu, logvar, generator=None: mu + (0.5 * logvar).exp() * somanet.tensor(eps))


@pytest.mark.parametrize("arch, conditional", [("mlp", False), ("conv", False), ("mlp", True), ("conv", True)])
def test_vae_matches_pytorch(monkeypatch, arch, conditional):
    shape, latent, k = (1, 8, 8), 3, (10 if conditional else 0)
    rng = np.random.default_rng(0)
    if arch == "mlp":
        s_vae = mlp_vae(shape, latent, hidden_sizes=[16, 12], num_classes=k or None, beta=0.7)
        t_vae = _TorchVAE(_TorchMLPEncoder(64, [16, 12], latent, k), _TorchMLPDecoder(latent, shape, [12, 16], k))
    else:
        s_vae = conv_vae(shape, latent, channels=(4, 6), hidden=16, num_classes=k or None, beta=0.7)
        t_vae = _TorchVAE(_TorchConvEncoder(shape, latent, (4, 6), 16, k),
                          _TorchConvDecoder(latent, shape, (6, 4), 16, k))
    _load_into_torch(t_vae, s_vae)
    x = rng.random((5, *shape)).astype(np.float32)
    eps = rng.standard_normal((5, latent)).astype(np.float32)
    labels = rng.integers(0, 10, 5)
    _fixed_eps(monkeypatch, eps)
    out = s_vae.loss(somanet.tensor(x), somanet.tensor(labels) if k else None)
    t_loss, t_recon, t_kl = t_vae.loss(torch.tensor(x), torch.tensor(eps), torch.tensor(labels) if k else None,
                                       beta=0.7)
    assert_close(out["loss"], t_loss, what="loss")
    assert abs(out["recon"] - t_recon.item()) < 1e-4 * abs(t_recon.item())
    assert abs(out["kl"] - t_kl.item()) < 1e-4 * abs(t_kl.item()) + 1e-5
    out["loss"].backward()
    t_loss.backward()
    _compare_grads(s_vae, t_vae, rtol=1e-4, atol=2e-5)


def test_vae_gaussian_likelihood_posterior_and_kl_match_pytorch():
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    kl = gaussian_kl(somanet.tensor(mu), somanet.tensor(logvar))
    q = torch.distributions.Normal(torch.tensor(mu), torch.exp(0.5 * torch.tensor(logvar)))
    assert_close(kl, torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1), what="kl")

    vae = mlp_vae((1, 4, 4), 2, hidden_sizes=[8], likelihood="gaussian")
    assert sorted(n for n, _ in vae.named_parameters())[-1] == "log_std"
    with somanet.no_grad():
        vae.log_std.array[...] = -0.3
    out = somanet.tensor(rng.standard_normal((3, 1, 4, 4)).astype(np.float32))
    x = rng.random((3, 1, 4, 4)).astype(np.float32)
    nll = vae.reconstruction_nll(out, somanet.tensor(x))
    likelihood = torch.distributions.Normal(torch.tensor(out.array), float(np.exp(-0.3)))
    ref = -likelihood.log_prob(torch.tensor(x)).flatten(1).sum(1)
    assert_close(nll, ref, what="gaussian nll")
    posterior = vae.posterior(somanet.tensor(x))
    assert posterior.loc.shape == (3, 2)
    fixed = mlp_vae((1, 4, 4), 2, hidden_sizes=[8], likelihood="gaussian", gaussian_std=0.5)
    assert "log_std" not in dict(fixed.named_parameters())
    assert fixed.sample(7).shape == (7, 1, 4, 4)
    # Encoders and decoders of either kind combine; a wrong label setup is refused.
    mixed = VAE(ConvEncoder((1, 8, 8), 2, channels=(4, 4), hidden=8), MLPDecoder(2, (1, 8, 8), [8]))
    assert mixed(somanet.rand(3, 1, 8, 8))[0].shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalVAE(MLPEncoder((1, 8, 8), 2), ConvDecoder(2, (1, 8, 8)))
    with pytest.raises(ValueError, match="needs the class labels"):
        mlp_vae((1, 4, 4), 2, num_classes=3).loss(somanet.rand(2, 1, 4, 4))


def test_vae_learns_digits_in_seconds():
    from somanet.data.datasets import Digits
    seed_everything(0)
    data = Digits(train=True)
    x = np.stack([data[i][0] for i in range(len(data))]).astype(np.float32)
    vae = mlp_vae((1, 8, 8), 8, hidden_sizes=[128])
    opt = optim.Adam(vae.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)

    def nelbo():
        with somanet.no_grad():
            return float(vae.negative_elbo(somanet.tensor(x)).array.mean())

    before = nelbo()
    for epoch in range(3):
        for idx in np.array_split(rng.permutation(len(x)), len(x) // 64):
            opt.zero_grad()
            vae.loss(somanet.tensor(x[idx]))["loss"].backward()
            opt.step()
    after = nelbo()
    # The 64 pixels start near 64 * log 2 = 44 nats; three epochs reach about 27.
    assert before > 40 and after < 29.5, (before, after)
    assert vae.sample(10).shape == (10, 1, 8, 8)
    recon = vae.reconstruct(somanet.tensor(x[:4])).array
    assert recon.shape == (4, 1, 8, 8) and 0 <= recon.min() and recon.max() <= 1


# =========================================================================== GAN networks
def _torch_one_hot_planes(x, labels, k):
    planes = tnn.functional.one_hot(labels, k).float()[:, :, None, None] * torch.ones_like(x[:, :1])
    return torch.cat([x, planes], 1)


class _TorchGenerator(tnn.Module):
    def __init__(self, latent, channels, size, g, k=0):
        super().__init__()
        self.k = k
        self.main = tnn.Sequential(
            tnn.ConvTranspose2d(latent + k, 2 * g, size // 4, 1, 0, bias=False), tnn.BatchNorm2d(2 * g), tnn.ReLU(True),
            tnn.ConvTranspose2d(2 * g, g, 4, 2, 1, bias=False), tnn.BatchNorm2d(g), tnn.ReLU(True),
            tnn.ConvTranspose2d(g, channels, 4, 2, 1, bias=False), tnn.Tanh())

    def forward(self, z, labels=None):
        if self.k:
            z = torch.cat([z, tnn.functional.one_hot(labels, self.k).float()], 1)
        return self.main(z[:, :, None, None])


class _TorchDiscriminator(tnn.Module):
    def __init__(self, channels, size, d, k=0, sn=False, critic=False):
        super().__init__()
        self.k = k
        wrap = tnn.utils.spectral_norm if sn else (lambda m: m)
        bias = sn or critic
        layers = [wrap(tnn.Conv2d(channels + k, d, 4, 2, 1, bias=bias)), tnn.LeakyReLU(0.2),
                  wrap(tnn.Conv2d(d, 2 * d, 4, 2, 1, bias=bias))]
        if critic:
            layers.append(tnn.LayerNorm((2 * d, size // 4, size // 4)))
        elif not sn:
            layers.append(tnn.BatchNorm2d(2 * d))
        layers += [tnn.LeakyReLU(0.2), wrap(tnn.Conv2d(2 * d, 1, size // 4, 1, 0, bias=bias))]
        self.main = tnn.Sequential(*layers)

    def forward(self, x, labels=None):
        if self.k:
            x = _torch_one_hot_planes(x, labels, self.k)
        return self.main(x).reshape(-1)


def _run_both(s_mod, t_mod, x, labels, seed):
    rng = np.random.default_rng(seed)
    xs, xt = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ls = None if labels is None else somanet.tensor(labels)
    lt = None if labels is None else torch.tensor(labels)
    ys, yt = s_mod(xs, ls), t_mod(xt, lt)
    assert_close(ys, yt, what="output", atol=2e-5)
    cot = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    ys.backward(somanet.tensor(cot))
    yt.backward(torch.tensor(cot))
    assert_close(xs.grad, xt.grad, what="input gradient", atol=2e-5)
    _compare_grads(s_mod, t_mod, atol=2e-5)


@pytest.mark.parametrize("size, conditional", [(28, False), (8, True), (32, False)])
def test_dcgan_generator_matches_pytorch(size, conditional):
    k = 10 if conditional else 0
    s_g = DCGANGenerator(latent_dim=6, channels=1, image_size=size, base_channels=4, num_classes=k or None)
    t_g = _TorchGenerator(6, 1, size, 4, k)
    _load_into_torch(t_g, s_g)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 6)).astype(np.float32)
    labels = rng.integers(0, 10, 5) if k else None
    _run_both(s_g, t_g, z, labels, 0)
    assert tuple(s_g.main[-2].weight.shape) == (4, 1, 4, 4)
    # Batch norm's running statistics moved the same way.
    for key, value in t_g.state_dict().items():
        assert_close(s_g.state_dict()[key], value, what=key, check_dtype=False)


@pytest.mark.parametrize("kind", ["dcgan", "dcgan-conditional", "spectral", "wgan", "wgan-conditional"])
def test_discriminators_match_pytorch(kind):
    k = 10 if kind.endswith("conditional") else 0
    size = 8
    if kind.startswith("wgan"):
        s_d = WGANCritic(channels=1, image_size=size, base_channels=4, num_classes=k or None)
        t_d = _TorchDiscriminator(1, size, 4, k, critic=True)
    else:
        s_d = DCGANDiscriminator(channels=1, image_size=size, base_channels=4, num_classes=k or None,
                                 spectral_norm=kind == "spectral")
        t_d = _TorchDiscriminator(1, size, 4, k, sn=kind == "spectral")
    assert sorted(s_d.state_dict()) == sorted(t_d.state_dict())
    _load_into_torch(t_d, s_d)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (6, 1, size, size)).astype(np.float32)
    _run_both(s_d, t_d, x, rng.integers(0, 10, 6) if k else None, 1)


def test_dcgan_initialisation_follows_the_paper():
    somanet.manual_seed(0)
    g = DCGANGenerator(latent_dim=100, image_size=28, base_channels=64)
    d = DCGANDiscriminator(image_size=28, base_channels=64)
    for name, p in list(g.named_parameters()) + list(d.named_parameters()):
        a = p.array
        if a.ndim == 4:
            assert abs(a.mean()) < 2e-3 and abs(a.std() - 0.02) < 2e-3, name
        elif name.endswith("weight"):  # batch norm
            assert abs(a.mean() - 1.0) < 0.01 and abs(a.std() - 0.02) < 0.01, name
        else:
            assert not np.any(a), name


def test_gan_losses_match_pytorch():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal(7).astype(np.float32) * 2, rng.standard_normal(7).astype(np.float32) * 2
    F = tnn.functional

    def torch_losses(r, f):
        ones, zeros = torch.ones_like(r), torch.zeros_like(f)
        return {
            "nonsaturating": (F.binary_cross_entropy_with_logits(r, ones)
                              + F.binary_cross_entropy_with_logits(f, zeros),
                              F.binary_cross_entropy_with_logits(f, torch.ones_like(f))),
            "hinge": (F.relu(1 - r).mean() + F.relu(1 + f).mean(), -f.mean()),
            "wasserstein": (f.mean() - r.mean(), -f.mean()),
        }

    for kind in ("nonsaturating", "hinge", "wasserstein"):
        rs, fs = somanet.tensor(real, requires_grad=True), somanet.tensor(fake, requires_grad=True)
        rt, ft = torch.tensor(real, requires_grad=True), torch.tensor(fake, requires_grad=True)
        d_ref, g_ref = torch_losses(rt, ft)[kind]
        d = discriminator_loss(rs, fs, kind)
        g = generator_loss(fs, kind)
        assert_close(d, d_ref, what=f"{kind} d")
        assert_close(g, g_ref, what=f"{kind} g")
        (d + 0.5 * g).backward()
        (d_ref + 0.5 * g_ref).backward()
        assert_close(rs.grad, rt.grad, what=f"{kind} real grad")
        assert_close(fs.grad, ft.grad, what=f"{kind} fake grad")
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(somanet.tensor(fake), "minimax")


# =========================================================================== gradient penalty
def _torch_penalty(t_critic, real, fake, alpha, labels=None):
    a = torch.tensor(alpha).reshape(-1, *([1] * (real.ndim - 1)))
    x = (a * torch.tensor(real) + (1 - a) * torch.tensor(fake)).requires_grad_(True)
    out = t_critic(x) if labels is None else t_critic(x, torch.tensor(labels))
    g, = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True, retain_graph=True)
    return ((g.reshape(len(real), -1).norm(2, dim=1) - 1) ** 2).mean()


def test_gradient_penalty_double_backward_matches_pytorch_on_an_mlp_critic():
    torch.manual_seed(0)
    t_critic = tnn.Sequential(tnn.Linear(3, 16), tnn.LeakyReLU(0.2), tnn.Linear(16, 16), tnn.LeakyReLU(0.2),
                              tnn.Linear(16, 1))
    s_critic = nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2),
                             nn.Linear(16, 1))
    copy_state(t_critic, s_critic)
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    alpha = rng.random(8).astype(np.float32)
    try:
        gp = gradient_penalty(s_critic, somanet.tensor(real), somanet.tensor(fake), alpha=alpha,
                              method="double_backward")
    except (NotImplementedError, RuntimeError) as exc:
        pytest.skip(f"autograd.grad(create_graph=True) is not available for this critic yet: {exc}")
    ref = _torch_penalty(t_critic, real, fake, alpha)
    assert_close(gp, ref, what="penalty")
    gp.backward()
    ref.backward()
    _compare_grads(s_critic, t_critic)


def _conv_critic_pair(dtype):
    s_critic = WGANCritic(channels=1, image_size=8, base_channels=4)
    t_critic = _TorchDiscriminator(1, 8, 4, critic=True)
    _load_into_torch(t_critic, s_critic)
    if dtype == np.float64:
        s_critic.double()
        t_critic.double()
    return s_critic, t_critic


def test_gradient_penalty_double_backward_matches_pytorch_on_the_wgan_critic():
    s_critic, t_critic = _conv_critic_pair(np.float32)
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (5, 1, 8, 8)).astype(np.float32)
    fake = rng.uniform(-1, 1, (5, 1, 8, 8)).astype(np.float32)
    alpha = rng.random(5).astype(np.float32)
    try:
        gp = gradient_penalty(s_critic, somanet.tensor(real), somanet.tensor(fake), alpha=alpha,
                              method="double_backward")
    except (NotImplementedError, RuntimeError) as exc:
        pytest.skip("second-order gradients (autograd.grad(create_graph=True)) through convolution and layer norm "
                    f"are not in the autograd engine yet: {exc}")
    ref = _torch_penalty(t_critic, real, fake, alpha)
    assert_close(gp, ref, what="penalty")
    gp.backward()
    ref.backward()
    _compare_grads(s_critic, t_critic, rtol=1e-3, atol=1e-5)


def test_gradient_penalty_by_finite_differences_matches_pytorch_double_backward():
    s_critic, t_critic = _conv_critic_pair(np.float64)
    rng = np.random.default_rng(1)
    real, fake = rng.uniform(-1, 1, (5, 1, 8, 8)), rng.uniform(-1, 1, (5, 1, 8, 8))
    alpha = rng.random(5)
    gp = gradient_penalty(s_critic, somanet.tensor(real), somanet.tensor(fake), alpha=alpha,
                          method="finite_difference")
    ref = _torch_penalty(t_critic, real, fake, alpha)
    assert_close(gp, ref, rtol=1e-10, atol=1e-12, what="penalty value")
    gp.backward()
    ref.backward()
    # Central differences with h = 1e-3: the error is O(h^2) between the critic's kinks.
    _compare_grads(s_critic, t_critic, rtol=1e-4, atol=1e-6)


# =========================================================================== GAN training
def _gan(seed, sn=False):
    somanet.manual_seed(seed)
    g = DCGANGenerator(latent_dim=4, image_size=8, base_channels=4)
    d = DCGANDiscriminator(image_size=8, base_channels=4, spectral_norm=sn)
    return GAN(g, d)


def test_gan_with_one_optimizer_equals_two_optimizers():
    rng = np.random.default_rng(0)
    batches = [somanet.tensor(rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)) for _ in range(3)]
    results = []
    for shared in (True, False):
        gan = _gan(0)
        somanet.manual_seed(5)
        if shared:
            opt = optim.Adam(gan.parameters(), lr=1e-3, betas=(0.5, 0.999))
            g_opt = d_opt = opt
        else:
            g_opt = optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
            d_opt = optim.Adam(gan.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        logs = [gan.optimization_step(b, g_optimizer=g_opt, d_optimizer=d_opt) for b in batches]
        results.append(({k: v.array.copy() for k, v in gan.state_dict().items()}, logs))
    (a, logs_a), (b, logs_b) = results
    assert logs_a == logs_b
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_tiny_gan_matches_a_2d_gaussian():
    seed_everything(0)
    target_mean, target_std = np.array([2.0, -1.0]), np.array([0.5, 1.5])
    g = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    d = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Flatten(0))
    gan = GAN(g, d, latent_dim=2, image_range=None)
    g_opt = optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    d_opt = optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    for _ in range(600):
        real = (rng.standard_normal((64, 2)) * target_std + target_mean).astype(np.float32)
        gan.optimization_step(somanet.tensor(real), g_optimizer=g_opt, d_optimizer=d_opt)
    samples = gan.sample(4000).array
    np.testing.assert_allclose(samples.mean(0), target_mean, atol=0.3)
    np.testing.assert_allclose(samples.std(0), target_std, rtol=0.3)


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    # Normalised like the recipes' data: pixels in [0, 1] mapped with a mean and a std.
    pixels = rng.random((n, 1, 8, 8)).astype(np.float32) ** 3
    return (pixels - np.float32(0.2)) / np.float32(0.3), rng.integers(0, 10, n)


def test_gan_generator_ema_follows_pytorchs_averaging_and_samples_from_the_average():
    rng = np.random.default_rng(0)
    batches = [somanet.tensor(rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)) for _ in range(4)]
    somanet.manual_seed(0)
    g = DCGANGenerator(latent_dim=4, image_size=8, base_channels=4)
    gan = GAN(g, DCGANDiscriminator(image_size=8, base_channels=4), ema_decay=0.8)
    assert gan.sampling_generator() is g  # nothing averaged yet
    opt = optim.Adam(gan.parameters(), lr=1e-2, betas=(0.5, 0.999))
    expected = None
    for b in batches:
        gan.optimization_step(b, g_optimizer=opt, d_optimizer=opt)
        # AveragedModel(use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(0.8)): the first update copies,
        # later ones move 20 % of the way to the current weights and batch-norm statistics.
        current = {k: v.array.astype(np.float64) for k, v in g.state_dict().items()
                   if v.array.dtype.kind == "f"}
        expected = current if expected is None else {k: 0.8 * expected[k] + 0.2 * current[k] for k in current}
    averaged = gan.generator_ema.module.state_dict()
    for key, value in expected.items():
        np.testing.assert_allclose(averaged[key].array, value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert int(gan.generator_ema.n_averaged.array) == 4
    assert not any(p.requires_grad for p in gan.generator_ema.parameters())
    gan.eval()
    z = gan.noise(5, somanet.Generator().manual_seed(3))
    with somanet.no_grad():
        from_average = gan.from_model_range(gan.generator_ema.module(z)).array
        from_trained = gan.from_model_range(g(z)).array
    np.testing.assert_array_equal(gan.sample(5, generator=somanet.Generator().manual_seed(3)).array, from_average)
    np.testing.assert_array_equal(gan.sample(5, generator=somanet.Generator().manual_seed(3), use_ema=False).array,
                                  from_trained)
    assert not np.allclose(from_average, from_trained)
    with pytest.raises(ValueError, match="GAN: ema_decay"):
        GAN(g, DCGANDiscriminator(image_size=8, base_channels=4), ema_decay=1.5)


def test_translate_and_cutout_match_pytorch_with_gradients():
    from somanet.models.gan import cutout, translate
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 6, 5)).astype(np.float32)
    shifts = np.array([[0, 0], [1, -2], [-1, 1], [2, 0]])
    corners = np.array([[-1, -1], [2, 3], [0, 4], [5, 0]])
    grad_out = rng.standard_normal(x.shape).astype(np.float32)

    def torch_translate(t, fill):
        s = int(np.abs(shifts).max())
        p = torch.nn.functional.pad(t, (s, s, s, s), value=fill)
        # Output pixel (i, j) of image k reads padded pixel (s - dy + i, s - dx + j).
        return torch.stack([p[k, :, s - dy:s - dy + 6, s - dx:s - dx + 5] for k, (dy, dx) in enumerate(shifts)])

    def torch_cutout(t, fill):
        mask = torch.ones_like(t)
        for k, (cy, cx) in enumerate(corners):
            mask[k, :, max(cy, 0):cy + 3, max(cx, 0):cx + 3] = 0
        return t * mask + (1 - mask) * fill

    for ours, theirs in ((lambda t: translate(t, shifts, -1.0), lambda t: torch_translate(t, -1.0)),
                         (lambda t: cutout(t, corners, 3, -1.0), lambda t: torch_cutout(t, -1.0))):
        a = somanet.tensor(x, requires_grad=True)
        b = torch.tensor(x, requires_grad=True)
        ya, yb = ours(a), theirs(b)
        np.testing.assert_array_equal(ya.detach().numpy(), yb.detach().numpy())
        ya.backward(somanet.tensor(grad_out))
        yb.backward(torch.tensor(grad_out))
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    with pytest.raises(ValueError, match="translate: shifts"):
        translate(somanet.tensor(x), shifts[:2])
    with pytest.raises(ValueError, match="diff_augment: unknown policy"):
        GAN(DCGANGenerator(latent_dim=4, image_size=8, base_channels=4),
            DCGANDiscriminator(image_size=8, base_channels=4), augment="color")


def test_diff_augment_keeps_shapes_and_background_and_draws_from_the_generator():
    from somanet.models.gan import diff_augment
    x = somanet.full((8, 1, 28, 28), -1.0)
    x[:, :, 10:18, 10:18] = 1.0
    out = diff_augment(x, "translation,cutout", fill=-1.0, generator=somanet.Generator().manual_seed(1))
    again = diff_augment(x, "translation,cutout", fill=-1.0, generator=somanet.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == somanet.float32
    np.testing.assert_array_equal(out.numpy(), again.numpy())
    values = set(np.unique(out.numpy()).tolist())
    assert values <= {-1.0, 1.0}  # shifted and cut, never a new value
    # The bright square moved or lost pixels in some images, never gained any.
    bright = (out.numpy() == 1.0).sum(axis=(1, 2, 3))
    assert bright.max() <= 64 and not np.all(bright == 64)


def _fit_gan(run_dir, seed, max_steps=None, resume=None, two_optimizers=True, conditional=False, n_critic=1):
    seed_everything(seed)
    k = 10 if conditional else None
    g = DCGANGenerator(latent_dim=4, image_size=8, base_channels=4, num_classes=k)
    d = DCGANDiscriminator(image_size=8, base_channels=4, num_classes=k, spectral_norm=True)
    # The one-optimizer runs also keep an average of the generator, which must resume exactly too.
    gan = GAN(g, d, n_critic=n_critic, input_mean=0.2, input_std=0.3, ema_decay=None if two_optimizers else 0.9,
              augment=None if two_optimizers else "translation,cutout")
    if two_optimizers:
        opts = [optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999)),
                optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))]
    else:
        opts = optim.Adam(gan.parameters(), lr=2e-3, betas=(0.5, 0.999))
    x, y = _images()
    val_x, val_y = _images(12, seed=1)
    trainer = Trainer(run_dir=run_dir, enable_progress_bar=False, plots=False)
    trainer.fit(gan, TensorDataset(x, y), TensorDataset(val_x, val_y), epochs=3, optimizer=opts, batch_size=8,
                max_steps=max_steps, resume=resume)
    return gan, trainer


@pytest.mark.parametrize("two_optimizers, conditional, n_critic", [(True, False, 1), (False, True, 2)])
def test_gan_run_resumed_midway_is_bit_identical(tmp_path, two_optimizers, conditional, n_critic):
    full, full_trainer = _fit_gan(tmp_path / "full", 0, two_optimizers=two_optimizers, conditional=conditional,
                                  n_critic=n_critic)
    cut, cut_trainer = _fit_gan(tmp_path / "cut", 0, max_steps=7, two_optimizers=two_optimizers,
                                conditional=conditional, n_critic=n_critic)
    assert cut_trainer.global_step == 7 and cut_trainer.current_epoch == 1  # 5 steps per epoch: mid-epoch 2
    resumed, resumed_trainer = _fit_gan(tmp_path / "cut", 99, resume=tmp_path / "cut", two_optimizers=two_optimizers,
                                        conditional=conditional, n_critic=n_critic)
    assert resumed_trainer.global_step == full_trainer.global_step == 15
    for key, value in full.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key].array, value.array, err_msg=key)
    assert resumed_trainer.history.history == full_trainer.history.history
    assert {"loss", "g_loss", "d_real", "d_fake", "val_loss"} <= set(full_trainer.history.history)


def test_generative_report_writes_samples_and_does_not_change_training(tmp_path):
    def run(run_dir, report):
        seed_everything(0)
        vae = mlp_vae((1, 8, 8), 2, hidden_sizes=[16], input_mean=0.2, input_std=0.3)
        x, y = _images(24)
        callbacks = [gen.GenerativeReport(num_samples=9, fid_samples=20, test_data=TensorDataset(x[:8], y[:8]),
                                          verbose=False)] if report else []
        Trainer(run_dir=run_dir, enable_progress_bar=False, plots=False).fit(
            vae, TensorDataset(x, y), epochs=2, batch_size=8, optimizer=optim.Adam(vae.parameters(), lr=1e-3),
            callbacks=callbacks)
        return {k: v.array.copy() for k, v in vae.state_dict().items()}

    with_report = run(tmp_path / "a", True)
    without = run(tmp_path / "b", False)
    for key in with_report:
        np.testing.assert_array_equal(with_report[key], without[key], err_msg=key)
    assert (tmp_path / "a" / "samples" / "epoch-002.png").exists() and (tmp_path / "a" / "samples.png").exists()
    quality = json.loads((tmp_path / "a" / "quality.json").read_text())
    assert quality["test_images"] == 8 and quality["test_nelbo"] > 0
    summary = (tmp_path / "a" / "summary.txt").read_text()
    assert summary.count("Generative quality") == 1 and "test negative ELBO" in summary


# =========================================================================== MNIST quality measures
def test_frechet_distance_matches_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)

    def reference(mu1, s1, mu2, s2):
        covmean = scipy_linalg.sqrtm(s1 @ s2)
        covmean = covmean.real if np.iscomplexobj(covmean) else covmean
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    for d, rank in ((5, 5), (20, 20), (12, 9)):
        a = rng.standard_normal((d, rank))
        b = rng.standard_normal((d, d))
        s1, s2 = a @ a.T / rank, b @ b.T / d + 0.1 * np.eye(d)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        expected = reference(mu1, s1, mu2, s2)
        assert abs(gen.frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-6 * max(1.0, abs(expected))
    # Identical Gaussians are at distance 0, and the distance is symmetric.
    feats = rng.standard_normal((300, 6))
    mu, s = gen.gaussian_stats(feats)
    assert abs(gen.frechet_distance(mu, s, mu, s)) < 1e-9
    mu2, s2 = gen.gaussian_stats(feats[:, ::-1] * 2)
    assert abs(gen.frechet_distance(mu, s, mu2, s2) - gen.frechet_distance(mu2, s2, mu, s)) < 1e-9


def _mnist(data_dir):
    from somanet.data.datasets import MNIST
    ds = MNIST(root=os.path.join(data_dir, "mnist"), train=False)
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)


def test_mnist_fid_of_real_and_of_poor_images(data_dir):
    images, labels = _mnist(data_dir)
    model = gen.mnist_classifier()
    feats, probs = gen.classifier_outputs(images[8000:], model)
    assert feats.shape == (2000, 84)
    assert (probs.argmax(1) == labels[8000:]).mean() > 0.985
    mu, sigma, count = gen.reference_stats()
    assert count == 2000
    np.testing.assert_allclose(gen.gaussian_stats(feats)[0], mu, rtol=1e-4, atol=1e-4)
    floor = gen.frechet_distance(*gen.gaussian_stats(feats[:1000]), *gen.gaussian_stats(feats[1000:]))
    real = gen.mnist_quality(images[7000:8000], labels[7000:8000])
    noise = gen.mnist_fid(np.random.default_rng(0).random((1000, 28, 28)))
    ones = gen.mnist_quality(images[:8000][labels[:8000] == 1][:500])
    assert floor < 40 and real["fid"] < 40 and noise > 20 * floor and ones["fid"] > 20 * floor
    assert real["coverage"] == 1.0 and real["class_entropy"] > 0.98 and real["label_accuracy"] > 0.97
    assert ones["coverage"] <= 0.3 and ones["class_entropy"] < 0.2
    with pytest.raises(ValueError, match="pixel values"):
        gen.mnist_fid(images[:10].astype(np.float32) * 2 - 1)


# =========================================================================== the recipes
def test_recipes_are_registered_and_vae_digits_runs(tmp_path, capsys):
    from somanet.cli.main import main as cli_main
    assert cli_main(["recipes"]) == 0
    listed = capsys.readouterr().out
    for name in ("vae-digits", "vae-mnist", "dcgan-mnist", "cgan-mnist", "wgan-gp-mnist"):
        assert name in listed
    out = tmp_path / "run"
    assert cli_main(["train", "vae-digits", "--epochs", "1", "--out", str(out), "--no-plots"]) == 0
    assert (out / "samples.png").exists() and (out / "samples" / "epoch-001.png").exists()
    summary = (out / "summary.txt").read_text()
    assert "validation negative ELBO" in summary
    assert json.loads((out / "quality.json").read_text())["test_nelbo"] < 44.4  # below the untrained ~64 log 2
