"""Denoising diffusion: the U-Net against a PyTorch twin, the noise schedules against their formulas, the
forward process and the DDPM / DDIM update steps against hand-written PyTorch references, classifier-free
guidance, a short learning test on the 8x8 digits, exact resume of a DDPM run and the recipes.
"""
import json
import math
import os
import sys

import numpy as np
import pytest

import somanet
from somanet import optim
from somanet.data import TensorDataset
from somanet.models.diffusion import (DDPM, DiffusionReport, NoiseSchedule, cosine_beta_schedule, ddim_sample,
                                      ddim_timesteps, ddpm_sample, digits_unet, linear_beta_schedule)
from somanet.models.unet import DiffusionUNet, timestep_embedding
from somanet.train import Trainer, seed_everything

from reference import assert_close

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks.diffusion_vs_pytorch import torch_unet  # noqa: E402


# =========================================================================== the U-Net
@pytest.mark.parametrize("size, kwargs", [
    (8, dict(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_heads=2, num_classes=10)),
    (10, dict(base_channels=8, channel_mults=(1, 2, 2), attention_levels=(0, 2), num_res_blocks=2, groups=4)),
    (7, dict(base_channels=12, channel_mults=(1, 2), attention_levels=(), num_classes=3, time_embed_dim=20)),
])
def test_unet_matches_pytorch_forward_and_gradients(size, kwargs):
    s_net = DiffusionUNet(1, **kwargs)
    t_net = torch_unet(torch, s_net)
    rng = np.random.default_rng(0)
    n = 3
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    t = np.array([0, 517, 999])
    k = kwargs.get("num_classes")
    labels = None if not k else np.array([0, k - 1, k])   # the last: "no label"
    cot = rng.standard_normal((n, 1, size, size)).astype(np.float32)

    xs = somanet.tensor(x, requires_grad=True)
    out_s = s_net(xs, somanet.tensor(t), None if labels is None else somanet.tensor(labels))
    (out_s * somanet.tensor(cot)).sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    out_t = t_net(xt, torch.tensor(t), None if labels is None else torch.tensor(labels))
    (out_t * torch.tensor(cot)).sum().backward()

    assert_close(out_s, out_t, rtol=1e-4, atol=2e-5, what="output")
    assert_close(xs.grad, xt.grad, rtol=1e-4, atol=2e-5, what="input gradient")
    s_params, t_params = dict(s_net.named_parameters()), dict(t_net.named_parameters())
    assert sorted(s_params) == sorted(t_params)
    for name, tp in t_params.items():
        expected = tp.grad.numpy() if tp.grad is not None else np.zeros(tuple(tp.shape), np.float32)
        actual = s_params[name].grad.array if s_params[name].grad is not None else np.zeros_like(expected)
        assert_close(actual, expected, rtol=2e-4, atol=3e-5, what=f"gradient of {name}")


def test_unet_labels_and_timestep_forms():
    net = DiffusionUNet(1, base_channels=8, channel_mults=(1,), attention_levels=(), num_classes=4)
    x = somanet.randn(2, 1, 6, 6)
    with somanet.no_grad():
        a = net(x, 5, None).array                                  # no labels = the "no label" class
        b = net(x, somanet.tensor([5, 5]), somanet.tensor([4, 4])).array
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="labels must be in"):
        net(x, 5, somanet.tensor([0, 5]))
    with pytest.raises(ValueError, match="without num_classes"):
        DiffusionUNet(1, base_channels=8, channel_mults=(1,), attention_levels=())(x, 5, somanet.tensor([0, 1]))
    with pytest.raises(ValueError, match="attention_levels"):
        DiffusionUNet(1, channel_mults=(1, 2), attention_levels=(2,))


def test_timestep_embedding_matches_formula():
    t = np.array([0, 1, 10, 999])
    emb = timestep_embedding(t, 6).array
    freqs = np.exp(-math.log(10000.0) * np.arange(3) / 3)
    expected = np.concatenate([np.cos(t[:, None] * freqs), np.sin(t[:, None] * freqs)], axis=1)
    np.testing.assert_allclose(emb, expected, rtol=1e-6, atol=1e-7)
    assert timestep_embedding(t, 7).shape == (4, 7)


# =========================================================================== schedules
def test_linear_schedule_matches_ho_et_al():
    betas = linear_beta_schedule(1000)
    np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-12)
    np.testing.assert_allclose(linear_beta_schedule(250), np.linspace(4e-4, 0.08, 250), rtol=1e-12)
    s = NoiseSchedule(betas)
    tb = torch.tensor(betas, dtype=torch.float64)
    abar = torch.cumprod(1 - tb, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    expected = {
        "alphas": 1 - tb, "alphas_cumprod": abar, "alphas_cumprod_prev": abar_prev,
        "sqrt_alphas_cumprod": abar.sqrt(), "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
        "sqrt_recip_alphas_cumprod": (1 / abar).sqrt(), "sqrt_recipm1_alphas_cumprod": (1 / abar - 1).sqrt(),
        "posterior_variance": tb * (1 - abar_prev) / (1 - abar),
        "posterior_mean_coef1": tb * abar_prev.sqrt() / (1 - abar),
        "posterior_mean_coef2": (1 - abar_prev) * (1 - tb).sqrt() / (1 - abar),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(s, name), value.numpy(), rtol=1e-10, atol=1e-15, err_msg=name)
    post = expected["posterior_variance"].numpy()
    np.testing.assert_allclose(s.posterior_log_variance_clipped, np.log(np.append(post[1], post[1:])), rtol=1e-12)
    assert s.alphas_cumprod[-1] < 1e-4   # the chain ends close to pure noise


def test_cosine_schedule_matches_nichol_dhariwal():
    T, s_ = 1000, 0.008
    s = NoiseSchedule.cosine(T)
    f = np.cos((np.arange(T + 1) / T + s_) / (1 + s_) * np.pi / 2) ** 2
    abar = f / f[0]
    betas = np.minimum(1 - abar[1:] / abar[:-1], 0.999)
    np.testing.assert_allclose(s.betas, betas, rtol=1e-10)
    assert s.betas.max() == 0.999                               # the cap acts at the very end
    unclipped = betas < 0.999
    np.testing.assert_allclose(s.alphas_cumprod[unclipped], abar[1:][unclipped], rtol=1e-9)
    np.testing.assert_allclose(cosine_beta_schedule(T), s.betas)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        NoiseSchedule.named("quadratic")
    with pytest.raises(ValueError):
        NoiseSchedule([0.1, 1.0])


def test_ddim_timesteps():
    np.testing.assert_array_equal(ddim_timesteps(1000, 1000), np.arange(1000))
    taus = ddim_timesteps(1000, 50)
    assert len(taus) == 50 and taus[0] == 0 and taus[-1] == 999 and (np.diff(taus) > 0).all()
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


# =========================================================================== the process and the update steps
def _fixed(shape=(4, 1, 5, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]


def _col(v):
    return torch.tensor(np.asarray(v, np.float64), dtype=torch.float32).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_q_sample_matches_reference(name):
    sched = NoiseSchedule.named(name, 1000)
    x0, noise, _ = _fixed()
    t = np.array([0, 10, 500, 999])
    out = sched.q_sample(somanet.tensor(x0), somanet.tensor(t), somanet.tensor(noise))
    abar = torch.tensor(sched.alphas_cumprod)[torch.tensor(t)]
    ref = _col(abar.sqrt()) * torch.tensor(x0) + _col((1 - abar).sqrt()) * torch.tensor(noise)
    assert_close(out, ref, rtol=1e-6, atol=1e-6, what="q_sample")


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ddpm_step_matches_algorithm_2(variance):
    """Ho et al.'s Algorithm 2: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z."""
    sched = NoiseSchedule.linear(1000)
    x, eps, z = _fixed()
    t = np.array([0, 1, 400, 999])
    out = sched.ddpm_step(somanet.tensor(eps), somanet.tensor(x), t, noise=somanet.tensor(z), variance=variance,
                          clip_sample=False)
    b = torch.tensor(sched.betas)[torch.tensor(t)]
    abar = torch.tensor(sched.alphas_cumprod)[torch.tensor(t)]
    abar_prev = torch.tensor(sched.alphas_cumprod_prev)[torch.tensor(t)]
    var = b * (1 - abar_prev) / (1 - abar) if variance == "posterior" else b
    sigma = torch.where(torch.tensor(t) > 0, var.sqrt(), torch.zeros_like(var))
    ref = (torch.tensor(x) - _col(b / (1 - abar).sqrt()) * torch.tensor(eps)) / _col((1 - b).sqrt()) \
        + _col(sigma) * torch.tensor(z)
    assert_close(out, ref, rtol=1e-5, atol=2e-5, what="ddpm step")
    # the first image (t = 0) gets no noise
    no_noise = sched.ddpm_step(somanet.tensor(eps), somanet.tensor(x), t, noise=somanet.tensor(np.zeros_like(z)),
                               variance=variance, clip_sample=False)
    np.testing.assert_allclose(out.array[0], no_noise.array[0], rtol=0, atol=0)


def test_ddpm_step_with_clipping_uses_the_posterior_of_the_clipped_x0():
    sched = NoiseSchedule.cosine(1000)
    x, eps, z = _fixed(seed=1)
    x = x * 3
    t = 700
    out = sched.ddpm_step(somanet.tensor(eps), somanet.tensor(x), t, noise=somanet.tensor(z))
    abar, abar_prev, b = sched.alphas_cumprod[t], sched.alphas_cumprod_prev[t], sched.betas[t]
    tx, te = torch.tensor(x), torch.tensor(eps)
    x0 = ((tx - math.sqrt(1 - abar) * te) / math.sqrt(abar)).clamp(-1, 1)
    mean = (b * math.sqrt(abar_prev) / (1 - abar)) * x0 + ((1 - abar_prev) * math.sqrt(1 - b) / (1 - abar)) * tx
    ref = mean + math.sqrt(b * (1 - abar_prev) / (1 - abar)) * torch.tensor(z)
    assert_close(out, ref, rtol=1e-5, atol=2e-5, what="clipped ddpm step")


@pytest.mark.parametrize("eta, t, t_prev, clip", [(0.0, 999, 979, False), (0.5, 500, 480, False), (1.0, 20, 0, False),
                                                  (0.0, 19, -1, False), (0.3, 999, 959, True)])
def test_ddim_step_matches_reference(eta, t, t_prev, clip):
    sched = NoiseSchedule.linear(1000)
    x, eps, z = _fixed(seed=2)
    out = sched.ddim_step(somanet.tensor(eps), somanet.tensor(x), t, t_prev, eta=eta, noise=somanet.tensor(z),
                          clip_sample=clip)
    a = sched.alphas_cumprod[t]
    ap = sched.alphas_cumprod[t_prev] if t_prev >= 0 else 1.0
    tx, te, tz = torch.tensor(x), torch.tensor(eps), torch.tensor(z)
    x0 = (tx - math.sqrt(1 - a) * te) / math.sqrt(a)
    if clip:
        x0 = x0.clamp(-1, 1)
        te = (tx - math.sqrt(a) * x0) / math.sqrt(1 - a)
    sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
    ref = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma ** 2) * te + sigma * tz
    assert_close(out, ref, rtol=1e-5, atol=3e-5, what="ddim step")


def test_ddim_with_eta_one_over_every_step_is_ancestral_sampling():
    sched = NoiseSchedule.linear(50)
    x, eps, z = _fixed(seed=3)
    for t in (49, 10, 1):
        a = sched.ddim_step(somanet.tensor(eps), somanet.tensor(x), t, t - 1, eta=1.0, noise=somanet.tensor(z),
                            clip_sample=False)
        b = sched.ddpm_step(somanet.tensor(eps), somanet.tensor(x), t, noise=somanet.tensor(z), clip_sample=False)
        np.testing.assert_allclose(a.array, b.array, rtol=1e-5, atol=2e-5)


def test_samplers_with_a_perfect_noise_predictor_recover_a_point_mass():
    """If every image is the same x0, the true noise is (x_t - sqrt(abar) x0) / sqrt(1 - abar): both samplers
    then land on x0."""
    sched = NoiseSchedule.linear(100)
    target = np.linspace(-0.8, 0.8, 9, dtype=np.float32).reshape(1, 1, 3, 3)

    def eps_fn(x, t):
        return (x - float(sched.sqrt_alphas_cumprod[t]) * somanet.tensor(target)) * \
            float(1 / sched.sqrt_one_minus_alphas_cumprod[t])

    gen = somanet.Generator().manual_seed(0)
    a = ddpm_sample(eps_fn, (5, 1, 3, 3), sched, generator=gen)
    b = ddim_sample(eps_fn, (5, 1, 3, 3), sched, steps=10, generator=gen)
    np.testing.assert_allclose(a.array, np.broadcast_to(target, (5, 1, 3, 3)), atol=1e-5)
    np.testing.assert_allclose(b.array, np.broadcast_to(target, (5, 1, 3, 3)), atol=1e-5)


# =========================================================================== the model
def _tiny(num_classes=10, **kw):
    net = DiffusionUNet(1, base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_classes=num_classes)
    return DDPM(net, image_shape=(1, 8, 8), **kw)


def test_guidance_combines_conditional_and_unconditional_predictions():
    ddpm = _tiny(ema_decay=None)
    x = somanet.randn(3, 1, 8, 8)
    labels = somanet.tensor([1, 2, 3])
    with somanet.no_grad():
        cond = ddpm.model(x, 300, labels).array
        uncond = ddpm.model(x, 300, somanet.tensor([10, 10, 10])).array
        guided = ddpm.predict_noise(x, 300, labels, guidance_scale=2.5).array
        plain = ddpm.predict_noise(x, 300, labels, guidance_scale=1.0).array
        no_label = ddpm.predict_noise(x, 300, None).array
    np.testing.assert_allclose(guided, uncond + 2.5 * (cond - uncond), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(plain, cond)
    np.testing.assert_array_equal(no_label, uncond)


def test_loss_is_the_noise_mse_and_drops_labels():
    ddpm = _tiny(ema_decay=None, label_dropout=0.5)
    rng = np.random.default_rng(0)
    x0 = somanet.tensor(rng.uniform(-1, 1, (64, 1, 8, 8)).astype(np.float32))
    t = somanet.tensor(rng.integers(0, 1000, 64))
    noise = somanet.tensor(rng.standard_normal((64, 1, 8, 8)).astype(np.float32))
    labels = somanet.tensor(rng.integers(0, 10, 64))
    loss = ddpm.loss(x0, labels, t=t, noise=noise, drop_labels=False)
    with somanet.no_grad():
        pred = ddpm.model(ddpm.schedule.q_sample(x0, t, noise), t, labels)
    np.testing.assert_allclose(float(loss.array), float(((pred.array - noise.array) ** 2).mean()), rtol=1e-5)
    seen = []
    orig = ddpm.model.forward

    def spy(x, t_, lab=None):
        seen.append(lab.array.copy())
        return orig(x, t_, lab)

    ddpm.model.forward = spy
    ddpm.loss(x0, labels, t=t, noise=noise)
    dropped = seen[0] == 10
    assert 15 < dropped.sum() < 49                                  # about half of 64
    np.testing.assert_array_equal(seen[0][~dropped], labels.array[~dropped])


def test_ddpm_on_digits_lowers_its_loss_and_samples(one_thread):
    from somanet.data.datasets import Digits
    seed_everything(0)
    ds = Digits(train=True)
    x = somanet.tensor(np.asarray(ds.data, dtype=np.float32).reshape(-1, 1, 8, 8))
    y = np.asarray(ds.targets)
    net = DiffusionUNet(1, base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_classes=10)
    ddpm = DDPM(net, image_shape=(1, 8, 8), ema_decay=0.9)
    opt = optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(1)
    probe = rng.choice(len(y), 256, replace=False)
    gen = somanet.Generator().manual_seed(5)
    t_probe = somanet.randint(0, 1000, (256,), generator=gen)
    n_probe = somanet.randn(256, 1, 8, 8, generator=gen)
    x_all = ddpm.to_model_range(x)

    def probe_loss(network):
        with somanet.no_grad():
            return float(ddpm.loss(x_all[probe], somanet.tensor(y[probe]), t=t_probe, noise=n_probe,
                                   drop_labels=False, network=network).array)

    before = probe_loss(net)
    for step in range(30):
        idx = rng.choice(len(y), 32, replace=False)
        ddpm.optimization_step(x_all[idx], somanet.tensor(y[idx]), opt)
    after, after_ema = probe_loss(net), probe_loss(ddpm.ema.module)
    assert after < 0.4 * before and after_ema < 0.45 * before, (before, after, after_ema)   # 1.13 -> 0.27, 0.30
    assert int(ddpm.ema.n_averaged.array) == 30

    images = ddpm.sample(10, sampler="ddim", steps=5, generator=somanet.Generator().manual_seed(0))
    assert images.shape == (10, 1, 8, 8) and 0 <= images.array.min() and images.array.max() <= 1
    short = DDPM(net, image_shape=(1, 8, 8), num_timesteps=25, ema_decay=None)
    images = short.sample(4, labels=3, sampler="ddpm", guidance_scale=2.0)
    assert images.shape == (4, 1, 8, 8) and np.isfinite(images.array).all()
    unconditional = short.sample(3, labels=10, sampler="ddim", steps=4)
    assert unconditional.shape == (3, 1, 8, 8)


def _digit_like(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8)).astype(np.float32) ** 3, rng.integers(0, 10, n)


def _fit_ddpm(run_dir, seed, max_steps=None, resume=None, callbacks=None):
    seed_everything(seed)
    ddpm = _tiny(ema_decay=0.9)
    x, y = _digit_like()
    vx, vy = _digit_like(12, seed=1)
    trainer = Trainer(run_dir=run_dir, enable_progress_bar=False, plots=False)
    trainer.fit(ddpm, TensorDataset(x, y), TensorDataset(vx, vy), epochs=3, batch_size=8, max_steps=max_steps,
                optimizer=optim.Adam(ddpm.model.parameters(), lr=1e-3), resume=resume, callbacks=callbacks)
    return ddpm, trainer


def test_ddpm_run_resumed_midway_is_bit_identical(tmp_path, one_thread):
    full, full_trainer = _fit_ddpm(tmp_path / "full", 0)
    cut, cut_trainer = _fit_ddpm(tmp_path / "cut", 0, max_steps=7)
    assert cut_trainer.global_step == 7 and cut_trainer.current_epoch == 1
    resumed, resumed_trainer = _fit_ddpm(tmp_path / "cut", 99, resume=tmp_path / "cut")
    assert resumed_trainer.global_step == full_trainer.global_step == 15
    state = full.state_dict()
    assert "ema.n_averaged" in state and any(k.startswith("ema.module.") for k in state)
    for key, value in state.items():
        np.testing.assert_array_equal(resumed.state_dict()[key].array, value.array, err_msg=key)
    assert resumed_trainer.history.history == full_trainer.history.history
    assert int(full.ema.n_averaged.array) == 15


def test_diffusion_report_writes_grids_and_does_not_change_training(tmp_path, one_thread):
    report = DiffusionReport(steps=3, epoch_samples=10, grid_samples=10, ancestral_samples=0, fid_samples=0,
                             probe_samples=20, guided_scale=2.0, verbose=False)
    with_report, _ = _fit_ddpm(tmp_path / "a", 0, callbacks=[report])
    without, _ = _fit_ddpm(tmp_path / "b", 0)
    for key, value in without.state_dict().items():
        np.testing.assert_array_equal(with_report.state_dict()[key].array, value.array, err_msg=key)
    for name in ("samples/epoch-003.png", "samples.png", "samples_guided.png", "quality.json"):
        assert (tmp_path / "a" / name).exists(), name
    summary = (tmp_path / "a" / "summary.txt").read_text()
    assert summary.startswith("Noise-prediction network") and summary.count("Generative quality") == 1
    quality = json.loads((tmp_path / "a" / "quality.json").read_text())
    assert set(quality["seconds"]) == {"ddim_grid", "guided_grid", "probe"}
    assert 0 <= quality["probe_label_accuracy"] <= 1 and "probe_real_accuracy" in quality
    assert "logistic-regression probe" in summary


def test_recipes_are_registered_and_build(tmp_path):
    from somanet.cli import recipes
    from somanet.train.recipe import build_callbacks
    for name in ("ddpm-digits", "ddpm-mnist"):
        cfg = recipes.get_recipe(name).resolve()
        assert isinstance(build_callbacks(cfg)[-1], DiffusionReport)
    cfg = recipes.get_recipe("ddpm-digits").resolve()
    model = recipes.build_model(cfg)
    assert isinstance(model, DDPM) and model.image_shape == (1, 8, 8) and model.num_classes == 10
    assert model.ema is not None and not any(p.requires_grad for p in model.ema.parameters())
    info = recipes.DataInfo((1, 28, 28), 10, image_size=(28, 28), mean=0.1307, std=0.3081)
    mnist = recipes.build_model(recipes.get_recipe("ddpm-mnist").resolve(), info)
    assert mnist.image_shape == (1, 28, 28) and mnist.input_std == 0.3081
    assert digits_unet().channel_mults == (1, 2)


def test_diffusion_report_scores_28x28_samples_with_the_mnist_classifier(one_thread):
    pytest.importorskip("safetensors")
    net = DiffusionUNet(1, base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=10)
    ddpm = DDPM(net, image_shape=(1, 28, 28), ema_decay=None)
    report = DiffusionReport(steps=2, grid_samples=10, ancestral_samples=0, fid_samples=20, guided_scale=None,
                             verbose=False)
    results = report.evaluate(ddpm)
    assert results["fid_samples"] == 20 and results["mnist_fid"] > 0 and 0 <= results["mnist_label_accuracy"] <= 1
    lines = DiffusionReport.headline(results)
    assert "MNIST-FID" in lines[1] and "20 samples" in lines[1]
