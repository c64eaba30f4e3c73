"""Denoising diffusion probabilistic models (DDPM) with DDIM sampling and classifier-free guidance.

**The forward process** adds Gaussian noise in ``T`` steps with variances ``beta_1 .. beta_T``:
``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with ``alpha_t = 1 - beta_t`` and
``abar_t = alpha_1 ... alpha_t``, so a noisy image at any step is drawn in one go:
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (``NoiseSchedule.q_sample``).

**Schedules.** ``linear_beta_schedule`` (Ho et al. 2020: ``beta`` from 1e-4 to 0.02 over 1,000 steps,
both ends scaled by ``1000 / T`` for other lengths) and ``cosine_beta_schedule`` (Nichol & Dhariwal
2021: ``abar_t = f(t) / f(0)``, ``f(t) = cos^2((t / T + s) / (1 + s) * pi / 2)``, ``s = 0.008``, each
``beta_t = 1 - abar_t / abar_{t-1}`` capped at 0.999).

**Training** (``DDPM.loss``): a network ``eps_theta(x_t, t, y)`` predicts the noise; the loss is the
mean squared error between ``eps`` and the prediction at a timestep drawn uniformly for each image
(the "simple" objective of Ho et al.). For classifier-free guidance the class label is replaced by the
"no label" class with probability ``label_dropout`` (Ho & Salimans 2021), so the same network learns
the conditional and the unconditional prediction.

**Ancestral sampling** (``NoiseSchedule.ddpm_step``): from ``x_T ~ N(0, I)``, for ``t = T .. 1``,
``x_{t-1} = mu + sigma_t z`` with the mean of the posterior ``q(x_{t-1} | x_t, x_0)`` at the predicted
``x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``:
``mu = (beta_t sqrt(abar_{t-1}) x_0 + (1 - abar_{t-1}) sqrt(alpha_t) x_t) / (1 - abar_t)``, which equals
``(x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)`` when ``x_0`` is not clipped; ``sigma_t^2`` is
the posterior variance ``beta_t (1 - abar_{t-1}) / (1 - abar_t)`` (``variance="posterior"``) or
``beta_t`` (``variance="beta"``); no noise is added at the last step. ``clip_sample`` clips the
predicted ``x_0`` to the data range [-1, 1] first.

**DDIM** (Song et al. 2021, ``NoiseSchedule.ddim_step``) jumps between the timesteps of a subsequence
``tau`` (``ddim_timesteps``: ``steps`` timesteps evenly spaced over ``0 .. T - 1``, ends included):
``x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z`` with
``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)`` and ``abar_prev = 1``
after the last step. ``eta = 0`` is deterministic; ``eta = 1`` with every timestep is ancestral
sampling with the posterior variance. With ``clip_sample`` the noise is re-derived from the clipped
``x_0`` (``eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)``).

**Guidance**: ``eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)`` (1: the conditional
model alone, 0: the unconditional one); both predictions come from one batch of twice the size.

``DDPM`` wraps a noise-prediction network (``somanet.models.unet.DiffusionUNet``), the schedule, an EMA
copy of the weights (``somanet.optim.swa_utils.AveragedModel``) and the samplers, and trains with
``somanet.train.Trainer`` like the other generative models (its own optimization step, exact resume).
"""
import math
import os

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..ops.creation import randint, randn, rand, tensor
from ..ops.shape import cat
from .unet import DiffusionUNet

__all__ = ["linear_beta_schedule", "cosine_beta_schedule", "NoiseSchedule", "ddim_timesteps", "ddpm_sample",
           "ddim_sample", "DDPM", "mnist_unet", "digits_unet", "DiffusionReport"]


# --------------------------------------------------------------------------- schedules
def linear_beta_schedule(num_timesteps, beta_start=None, beta_end=None):
    """``num_timesteps`` betas evenly spaced from ``beta_start`` to ``beta_end`` (float64). The defaults
    are Ho et al.'s 1e-4 and 0.02 for 1,000 steps, scaled by ``1000 / num_timesteps`` so that shorter or
    longer chains destroy the image as completely."""
    T = _check_steps(num_timesteps)
    scale = 1000.0 / T
    beta_start = 1e-4 * scale if beta_start is None else float(beta_start)
    beta_end = 0.02 * scale if beta_end is None else float(beta_end)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"linear_beta_schedule(): need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end} "
                         f"(the default ends scale with 1000 / num_timesteps: give them for chains under 21 steps)")
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def cosine_beta_schedule(num_timesteps, s=0.008, max_beta=0.999):
    """Nichol & Dhariwal's cosine schedule: ``abar(t) = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``;
    ``beta_t = min(1 - abar(t) / abar(t - 1), max_beta)`` for ``t = 1 .. T`` (float64)."""
    T = _check_steps(num_timesteps)
    t = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)


def _check_steps(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of timesteps must be a positive int, got {n!r}")
    return int(n)


def ddim_timesteps(num_timesteps, steps):
    """The DDIM subsequence: ``steps`` distinct timesteps evenly spaced over ``0 .. num_timesteps - 1``
    (both ends included), in increasing order; ``steps = num_timesteps`` gives every timestep."""
    T, S = _check_steps(num_timesteps), _check_steps(steps)
    if S > T:
        raise ValueError(f"ddim_timesteps(): {S} steps is more than the {T} timesteps of the schedule")
    return np.round(np.linspace(0, T - 1, S)).astype(np.int64)


class NoiseSchedule:
    """The quantities of a diffusion process with variances ``betas`` (index ``t = 0 .. T-1`` here is
    step ``t + 1`` of the papers), kept in float64:

    ``betas``, ``alphas = 1 - betas``, ``alphas_cumprod`` (``abar``), ``alphas_cumprod_prev``
    (``abar`` of the step before; 1 for the first), ``sqrt_alphas_cumprod``,
    ``sqrt_one_minus_alphas_cumprod``, ``sqrt_recip_alphas_cumprod``, ``sqrt_recipm1_alphas_cumprod``
    (``sqrt(1 / abar - 1)``), ``posterior_variance`` (``beta_t (1 - abar_{t-1}) / (1 - abar_t)``),
    ``posterior_log_variance_clipped`` (its log, the first entry replaced by the second's),
    ``posterior_mean_coef1`` / ``posterior_mean_coef2`` (the weights of ``x_0`` and ``x_t`` in the
    posterior mean).

    The step functions take tensors and the timestep as an int (the same for the whole batch) or a
    ``(N,)`` array/tensor of ints; they compute in the tensor's dtype.
    """

    def __init__(self, betas):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not len(betas) or (betas <= 0).any() or (betas >= 1).any():
            raise ValueError("NoiseSchedule: betas must be a non-empty 1-D array with values in (0, 1)")
        self.betas = betas
        self.num_timesteps = len(betas)
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.alphas_cumprod_prev = np.concatenate([[1.0], self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        log_var = np.log(np.append(self.posterior_variance[1:2], self.posterior_variance[1:]))
        self.posterior_log_variance_clipped = log_var if len(betas) > 1 else np.log(self.posterior_variance)
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = ((1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas)
                                     / (1.0 - self.alphas_cumprod))

    @classmethod
    def linear(cls, num_timesteps=1000, beta_start=None, beta_end=None):
        """The schedule of ``linear_beta_schedule``."""
        return cls(linear_beta_schedule(num_timesteps, beta_start, beta_end))

    @classmethod
    def cosine(cls, num_timesteps=1000, s=0.008, max_beta=0.999):
        """The schedule of ``cosine_beta_schedule``."""
        return cls(cosine_beta_schedule(num_timesteps, s, max_beta))

    @classmethod
    def named(cls, name, num_timesteps=1000, **kwargs):
        """``"linear"`` or ``"cosine"``."""
        if name == "linear":
            return cls.linear(num_timesteps, **kwargs)
        if name == "cosine":
            return cls.cosine(num_timesteps, **kwargs)
        raise ValueError(f"unknown noise schedule {name!r}; known: 'linear', 'cosine'")

    # ----------------------------------------------------------------- helpers
    def _steps(self, t):
        arr = np.asarray(t.array if isinstance(t, Tensor) else t)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"timesteps must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_timesteps):
            raise ValueError(f"timesteps must be in [0, {self.num_timesteps - 1}], got {arr.min()}..{arr.max()}")
        return arr.astype(np.int64)

    @staticmethod
    def _coef(values, like):
        """``values`` (a number or one per image) as a constant of ``like``'s dtype broadcasting over
        the image dims."""
        dtype = like.array.dtype
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 0:
            return tensor(np.asarray(v, dtype=dtype))
        return tensor(v.reshape((-1,) + (1,) * (like.ndim - 1)).astype(dtype))

    def _at(self, table, t, like):
        return self._coef(table[self._steps(t)], like)

    # ----------------------------------------------------------------- forward process
    def q_sample(self, x0, t, noise):
        """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``."""
        return (self._at(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def predict_x0(self, x_t, t, eps):
        """The ``x_0`` that ``x_t`` and the noise ``eps`` imply: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        return (self._at(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
                - self._at(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)

    def posterior_mean(self, x0, x_t, t):
        """The mean of ``q(x_{t-1} | x_t, x_0)``."""
        return self._at(self.posterior_mean_coef1, t, x_t) * x0 + self._at(self.posterior_mean_coef2, t, x_t) * x_t

    # ----------------------------------------------------------------- reverse steps
    def ddpm_step(self, eps, x_t, t, noise=None, generator=None, variance="posterior", clip_sample=True,
                  clip_range=(-1.0, 1.0)):
        """One ancestral step ``x_t -> x_{t-1}`` given the predicted noise ``eps``; ``noise`` (``z``) is
        drawn from ``generator`` when not given. No noise is added where ``t == 0``."""
        if variance not in ("posterior", "beta"):
            raise ValueError(f"ddpm_step(): variance must be 'posterior' or 'beta', got {variance!r}")
        steps = self._steps(t)
        x0 = self.predict_x0(x_t, steps, eps)
        if clip_sample:
            x0 = x0.clamp(*clip_range)
        mean = self.posterior_mean(x0, x_t, steps)
        var = self.posterior_variance if variance == "posterior" else self.betas
        sigma = np.where(steps > 0, np.sqrt(var[steps]), 0.0)
        if not np.any(sigma):
            return mean
        if noise is None:
            noise = randn(*x_t.shape, generator=generator, dtype=x_t.dtype)
        return mean + self._coef(sigma, x_t) * noise

    def ddim_step(self, eps, x_t, t, t_prev, eta=0.0, noise=None, generator=None, clip_sample=True,
                  clip_range=(-1.0, 1.0)):
        """One DDIM step from timestep ``t`` to ``t_prev`` (``-1``: to ``x_0``) given the predicted noise."""
        steps = self._steps(t)
        prev = np.asarray(t_prev.array if isinstance(t_prev, Tensor) else t_prev, dtype=np.int64)
        ab = self.alphas_cumprod[steps]
        ab_prev = np.where(prev >= 0, self.alphas_cumprod[np.maximum(prev, 0)], 1.0)
        x0 = self.predict_x0(x_t, steps, eps)
        if clip_sample:
            x0 = x0.clamp(*clip_range)
            eps = (x_t - self._coef(np.sqrt(ab), x_t) * x0) * self._coef(1.0 / np.sqrt(1.0 - ab), x_t)
        sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(1.0 - ab / ab_prev)
        direction = np.sqrt(np.clip(1.0 - ab_prev - sigma ** 2, 0.0, None))
        out = self._coef(np.sqrt(ab_prev), x_t) * x0 + self._coef(direction, x_t) * eps
        if eta == 0 or not np.any(sigma):
            return out
        if noise is None:
            noise = randn(*x_t.shape, generator=generator, dtype=x_t.dtype)
        return out + self._coef(sigma, x_t) * noise


# --------------------------------------------------------------------------- samplers
def ddpm_sample(eps_fn, shape, schedule, generator=None, variance="posterior", clip_sample=True, x_T=None,
                dtype=None, callback=None):
    """Ancestral sampling: ``x_T ~ N(0, I)`` of ``shape``, then ``schedule.num_timesteps`` steps of
    ``ddpm_step`` with ``eps = eps_fn(x_t, t)`` (``t`` an int). ``callback(i, total, x)`` after each step."""
    x = x_T if x_T is not None else randn(*shape, generator=generator, dtype=dtype)
    T = schedule.num_timesteps
    with grad_mode.no_grad():
        for i, t in enumerate(range(T - 1, -1, -1)):
            x = schedule.ddpm_step(eps_fn(x, t), x, t, generator=generator, variance=variance, clip_sample=clip_sample)
            if callback is not None:
                callback(i + 1, T, x)
    return x


def ddim_sample(eps_fn, shape, schedule, steps=50, eta=0.0, generator=None, clip_sample=True, x_T=None, dtype=None,
                callback=None):
    """DDIM sampling over ``ddim_timesteps(T, steps)`` from ``x_T ~ N(0, I)``; ``eta`` scales the noise
    (0: deterministic). ``eps_fn(x_t, t)`` as in ``ddpm_sample``."""
    taus = ddim_timesteps(schedule.num_timesteps, steps)
    x = x_T if x_T is not None else randn(*shape, generator=generator, dtype=dtype)
    with grad_mode.no_grad():
        for i in range(len(taus) - 1, -1, -1):
            t, prev = int(taus[i]), int(taus[i - 1]) if i > 0 else -1
            x = schedule.ddim_step(eps_fn(x, t), x, t, prev, eta=eta, generator=generator, clip_sample=clip_sample)
            if callback is not None:
                callback(len(taus) - i, len(taus), x)
    return x


# --------------------------------------------------------------------------- the model
class DDPM(nn.Module):
    """A denoising diffusion model: a noise-prediction network, its schedule, an EMA of its weights,
    the training objective and the samplers.

    Args:
        model: the network ``model(x_t, t, labels=None) -> eps`` (e.g. ``DiffusionUNet``).
        image_shape: ``(C, H, W)`` of the images (default: ``(model.in_channels, 28, 28)``).
        num_timesteps: ``T``.
        schedule: ``"linear"`` or ``"cosine"``, or a ``NoiseSchedule``.
        num_classes: condition on labels (default: ``model.num_classes``); label ``num_classes`` is
            "no label".
        label_dropout: during training, the share of labels replaced by "no label" (classifier-free
            guidance); 0 trains a purely conditional model.
        guidance_scale: the default guidance of conditional sampling (1: no guidance).
        ema_decay: keep ``ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
            use_buffers=True)``, updated after every optimizer step of ``training_step`` and used for
            sampling and validation; ``None``: no EMA.
        grad_clip: clip the gradient's total norm to this in ``training_step`` (``None``: no clipping).
        sampler, sample_steps, eta: the default sampler of ``sample``: ``"ddim"`` with ``sample_steps``
            steps and ``eta``, or ``"ddpm"`` (ancestral, all ``T`` steps).
        variance: the ancestral sampler's ``sigma_t^2``: ``"posterior"`` or ``"beta"``.
        clip_sample: clip the predicted ``x_0`` to [-1, 1] while sampling.
        input_mean, input_std: the normalisation of the batches ``training_step`` receives; the data
            ``batch * input_std + input_mean`` in [0, 1] is mapped to [-1, 1] for the network.

    ``training_step`` / ``validation_step`` make it a ``Trainer`` model (``automatic_optimization =
    False``: the step runs the optimizer, clips and updates the EMA itself); the validation loss is
    the objective of the EMA network at timesteps and noise fixed per batch index, so epochs compare.
    """

    automatic_optimization = False

    def __init__(self, model, image_shape=None, num_timesteps=1000, schedule="linear", num_classes=None,
                 label_dropout=0.1, guidance_scale=1.0, ema_decay=0.999, grad_clip=1.0, sampler="ddim",
                 sample_steps=50, eta=0.0, variance="posterior", clip_sample=True, input_mean=0.0, input_std=1.0):
        super().__init__()
        from ..optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        self.model = model
        if image_shape is None:
            image_shape = (getattr(model, "in_channels", 1), 28, 28)
        self.image_shape = tuple(int(d) for d in image_shape)
        if isinstance(schedule, NoiseSchedule):
            self.schedule = schedule
        else:
            self.schedule = NoiseSchedule.named(schedule, num_timesteps)
        self.schedule_name = schedule if isinstance(schedule, str) else "custom"
        self.num_timesteps = self.schedule.num_timesteps
        self.num_classes = num_classes if num_classes is not None else getattr(model, "num_classes", None)
        self.num_classes = self.num_classes or None
        if not 0.0 <= label_dropout < 1.0:
            raise ValueError(f"DDPM: label_dropout must be in [0, 1), got {label_dropout}")
        self.label_dropout = float(label_dropout) if self.num_classes else 0.0
        self.guidance_scale = float(guidance_scale)
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"DDPM: sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        if variance not in ("posterior", "beta"):
            raise ValueError(f"DDPM: variance must be 'posterior' or 'beta', got {variance!r}")
        self.sampler, self.sample_steps, self.eta = sampler, int(sample_steps), float(eta)
        self.variance, self.clip_sample = variance, bool(clip_sample)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self.ema_decay = ema_decay
        if ema_decay is not None:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)
        else:
            self.ema = None

    # ----------------------------------------------------------------- the network
    def sampling_network(self, use_ema=True):
        """The network that samples: the EMA copy once it has been updated, else the trained one."""
        if use_ema and self.ema is not None and int(self.ema.n_averaged.array) > 0:
            return self.ema.module
        return self.model

    def forward(self, x, t, labels=None):
        """The trained network's noise prediction ``eps_theta(x_t, t, labels)``."""
        return self.model(x, t, labels) if self.num_classes else self.model(x, t)

    def _null(self, n):
        return tensor(np.full(n, self.num_classes, dtype=np.int64))

    def predict_noise(self, x, t, labels=None, guidance_scale=None, network=None):
        """``eps`` for ``x_t`` at timestep(s) ``t``; with labels and ``guidance_scale != 1`` the guided
        ``eps_u + s (eps_c - eps_u)`` from one double batch."""
        net = network if network is not None else self.sampling_network()
        if not self.num_classes:
            return net(x, t)
        s = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        n = x.shape[0]
        if labels is None:
            return net(x, t, self._null(n))
        if s == 1.0:
            return net(x, t, labels)
        steps = np.asarray(t.array if isinstance(t, Tensor) else t)
        tt = np.concatenate([steps.reshape(-1)] * 2) if steps.ndim else np.full(2 * n, int(steps))
        lab = np.asarray(labels.array if isinstance(labels, Tensor) else labels, dtype=np.int64).reshape(-1)
        if lab.size == 1:
            lab = np.full(n, int(lab[0]), dtype=np.int64)
        both = net(cat([x, x], dim=0), tt, tensor(np.concatenate([lab, np.full(n, self.num_classes)])))
        cond, uncond = both[:n], both[n:]
        return uncond + (cond - uncond) * s if s != 0.0 else uncond

    # ----------------------------------------------------------------- training
    def to_model_range(self, batch_x):
        """A dataset batch (normalised with ``input_mean`` / ``input_std``) mapped to [-1, 1]."""
        x = batch_x
        if (self.input_std, self.input_mean) != (1.0, 0.0):
            x = x * self.input_std + self.input_mean
        return x.clamp(0.0, 1.0) * 2.0 - 1.0

    def loss(self, x0, labels=None, t=None, noise=None, drop_labels=True, generator=None, network=None):
        """The DDPM objective: ``mean((eps - eps_theta(q_sample(x0, t, eps), t, y))^2)`` with ``t``
        uniform in ``[0, T)`` and ``eps ~ N(0, I)`` (drawn from ``generator`` unless given), labels
        dropped to "no label" with probability ``label_dropout`` when ``drop_labels``. ``x0`` in [-1, 1]."""
        n = x0.shape[0]
        if t is None:
            t = randint(0, self.num_timesteps, (n,), generator=generator)
        if noise is None:
            noise = randn(*x0.shape, generator=generator, dtype=x0.dtype)
        x_t = self.schedule.q_sample(x0, t, noise)
        net = network if network is not None else self.model
        if self.num_classes:
            if labels is None:
                labels = self._null(n)
            elif drop_labels and self.label_dropout > 0:
                lab = np.asarray(labels.array if isinstance(labels, Tensor) else labels, dtype=np.int64).copy()
                drop = rand(n, generator=generator).array < self.label_dropout
                lab[drop] = self.num_classes
                labels = tensor(lab)
            pred = net(x_t, t, labels)
        else:
            pred = net(x_t, t)
        return F.mse_loss(pred, noise)

    def _split(self, batch):
        if isinstance(batch, (list, tuple)):
            x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            x, labels = batch, None
        x = x.reshape(x.shape[0], *self.image_shape)
        return self.to_model_range(x), (labels if self.num_classes else None)

    def _optimizer(self):
        opts = list(getattr(getattr(self, "trainer", None), "optimizers", None) or [])
        if len(opts) != 1:
            raise ValueError(f"DDPM.training_step: fit() needs one optimizer over the model's parameters, "
                             f"got {len(opts)}")
        return opts[0]

    def optimization_step(self, x0, labels, optimizer):
        """One update on a batch ``x0`` in [-1, 1]: loss, backward, gradient clipping, optimizer step,
        EMA update. Returns the loss as a float."""
        optimizer.zero_grad()
        loss = self.loss(x0, labels)
        loss.backward()
        if self.grad_clip is not None:
            from ..nn.utils import clip_grad_norm_
            clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.grad_clip)
        optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(loss.array)

    def training_step(self, batch, batch_idx):
        """One batch for ``Trainer.fit``: the DDPM loss, an optimizer step and an EMA update."""
        x0, labels = self._split(batch)
        return {"loss": self.optimization_step(x0, labels, self._optimizer())}

    def validation_step(self, batch, batch_idx):
        """The objective of the sampling network on held-out images, with timesteps and noise drawn from
        a generator seeded by the batch index (the same every epoch; the global random state is untouched)."""
        from ..random import Generator
        x0, labels = self._split(batch)
        gen = Generator().manual_seed(1_000_003 + batch_idx)
        return {"loss": float(self.loss(x0, labels, drop_labels=False, generator=gen,
                                        network=self.sampling_network()).array)}

    # ----------------------------------------------------------------- sampling
    def sample(self, n, labels=None, generator=None, sampler=None, steps=None, eta=None, guidance_scale=None,
               batch_size=256, use_ema=True, callback=None):
        """``n`` images in [0, 1], shape ``(n, *image_shape)``, without gradient.

        ``labels``: the classes of a conditional model (default: ``0, 1, ..., 9, 0, ...``); pass
        ``num_classes`` for unconditional samples. ``sampler`` ``"ddim"`` (``steps``, ``eta``) or ``"ddpm"``
        (ancestral, every timestep); defaults from the constructor. Noise comes from ``generator``
        (the global generator if None). Images are generated ``batch_size`` at a time.
        """
        sampler = sampler or self.sampler
        steps = self.sample_steps if steps is None else int(steps)
        eta = self.eta if eta is None else float(eta)
        n = int(n)
        if self.num_classes:
            if labels is None:
                labels = np.arange(n) % self.num_classes
            labels = np.asarray(labels.array if isinstance(labels, Tensor) else labels, dtype=np.int64).reshape(-1)
            if labels.size == 1:
                labels = np.full(n, int(labels[0]), dtype=np.int64)
        net = self.sampling_network(use_ema)
        dtype = next(iter(self.model.parameters())).dtype
        outs = []
        was_training = net.training
        net.eval()
        try:
            with grad_mode.no_grad():
                for start in range(0, n, batch_size):
                    m = min(batch_size, n - start)
                    lab = tensor(labels[start:start + m]) if self.num_classes else None

                    def eps_fn(x, t, lab=lab):
                        return self.predict_noise(x, t, lab, guidance_scale, network=net)

                    shape = (m,) + self.image_shape
                    if sampler == "ddpm":
                        x = ddpm_sample(eps_fn, shape, self.schedule, generator, self.variance, self.clip_sample,
                                        dtype=dtype, callback=callback)
                    elif sampler == "ddim":
                        x = ddim_sample(eps_fn, shape, self.schedule, steps, eta, generator, self.clip_sample,
                                        dtype=dtype, callback=callback)
                    else:
                        raise ValueError(f"DDPM.sample(): sampler must be 'ddpm' or 'ddim', got {sampler!r}")
                    outs.append(((x.clamp(-1.0, 1.0) + 1.0) * 0.5).array)
        finally:
            net.train(was_training)
        return tensor(np.concatenate(outs) if outs else np.zeros((0,) + self.image_shape, dtype=np.float32))

    def extra_repr(self):
        return (f"num_timesteps={self.num_timesteps}, schedule={self.schedule_name!r}, num_classes={self.num_classes}, "
                f"label_dropout={self.label_dropout}, ema_decay={self.ema_decay}, sampler={self.sampler!r}, "
                f"sample_steps={self.sample_steps}")


# --------------------------------------------------------------------------- networks of the recipes
def mnist_unet(num_classes=10, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,),
               **kwargs):
    """The U-Net of the ``ddpm-mnist`` recipe: 28 -> 14 -> 7 with self-attention at 7x7."""
    return DiffusionUNet(1, base_channels=base_channels, channel_mults=channel_mults, num_res_blocks=num_res_blocks,
                         attention_levels=attention_levels, num_classes=num_classes, **kwargs)


def digits_unet(num_classes=10, base_channels=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,),
                **kwargs):
    """The U-Net of the ``ddpm-digits`` recipe (8x8 images): 8 -> 4 with self-attention at 4x4."""
    return DiffusionUNet(1, base_channels=base_channels, channel_mults=channel_mults, num_res_blocks=num_res_blocks,
                         attention_levels=attention_levels, num_classes=num_classes, **kwargs)


# --------------------------------------------------------------------------- the recipes' report
def _report_base():
    from ..train.callbacks import Callback
    return Callback


class DiffusionReport(_report_base()):
    """Sample grids, sampling times and quality numbers for a ``DDPM`` trained by ``Trainer.fit``.

    With a ``run_dir`` on the trainer:

    * every ``every_n_epochs`` epochs, ``samples/epoch-NNN.png``: ``epoch_samples`` DDIM samples
      (``steps`` steps), one column per class for a conditional model;
    * at the end of ``fit``: ``samples.png`` (``grid_samples`` DDIM samples), ``samples_ddpm.png``
      (``ancestral_samples`` samples of ancestral sampling over all ``T`` steps), for a conditional
      model ``samples_guided.png`` (DDIM with ``guidance_scale = guided_scale``); for 28x28 images the
      MNIST-FID and the classifier's view (``somanet.train.generative.mnist_quality``) of ``fid_samples``
      DDIM samples; ``quality.json`` (with the seconds each sampling took) and a "Generative quality"
      section in ``summary.txt``.

    Samples come from the EMA network, with noise from the callback's own generator; every random
    state is restored afterwards, so a run trains the same with or without the report.
    """

    def __init__(self, steps=50, every_n_epochs=1, epoch_samples=40, grid_samples=100, ancestral_samples=50,
                 fid_samples=1000, probe_samples=500, guided_scale=3.0, seed=2024, verbose=True):
        self.steps = steps
        self.every_n_epochs = every_n_epochs
        self.epoch_samples = epoch_samples
        self.grid_samples = grid_samples
        self.ancestral_samples = ancestral_samples
        self.fid_samples = fid_samples
        self.probe_samples = probe_samples
        self.guided_scale = guided_scale
        self.seed = seed
        self.verbose = verbose
        self.results = {}

    def _draw(self, model, n, seed_offset=0, **kwargs):
        import time
        from ..random import Generator
        from ..train.seed import get_rng_state, set_rng_state
        gen = Generator().manual_seed(self.seed + seed_offset)
        state = get_rng_state()
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        try:
            images = model.sample(n, generator=gen, **kwargs).array
        finally:
            set_rng_state(state)
            model.train(was_training)
        labels = (np.arange(n) % model.num_classes) if model.num_classes else None
        return images, labels, time.perf_counter() - start

    def _save(self, model, images, path):
        from ..train.generative import save_image_grid
        try:
            return save_image_grid(images, path, nrow=model.num_classes or None,
                                   scale=4 if images.shape[-1] < 16 else 2)
        except ImportError as exc:
            print(f"sample grid skipped: {exc}")
            return None

    def on_fit_start(self, trainer, model):
        if trainer.run_dir is None:
            return
        path = os.path.join(trainer.run_dir, "summary.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if not f.read().startswith("summary unavailable"):
                    return
        from ..train._io import atomic_write_text
        from ..train.summary import summary
        shapes = [model.image_shape, ()] + ([()] if model.num_classes else [])
        text = (f"Noise-prediction network (x_t, t{', label' if model.num_classes else ''} -> eps), "
                f"{model.num_timesteps} timesteps, {model.schedule_name} schedule:\n{summary(model.model, shapes)}")
        atomic_write_text(path, text + "\n")

    def on_train_epoch_end(self, trainer, model):
        if trainer.run_dir is None or not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        images, _, _ = self._draw(model, self.epoch_samples, sampler="ddim", steps=self.steps)
        name = f"epoch-{trainer.current_epoch + 1:03d}.png"
        self._save(model, images, os.path.join(trainer.run_dir, "samples", name))

    def evaluate(self, model, run_dir=None, train_data=None, val_data=None):
        """Draw the final grids (written to ``run_dir`` if given) and score the samples; returns a dict.

        For a conditional model of images other than 28x28, with ``train_data`` / ``val_data`` (datasets of
        ``(image, label)`` normalised like the training batches) and scikit-learn installed, a
        logistic-regression probe fitted on the training images scores ``probe_samples`` DDIM samples:
        how often it predicts the class they were generated for, next to its accuracy on ``val_data``."""
        results = {"sampler": f"DDIM, {self.steps} steps, eta {model.eta}", "timesteps": model.num_timesteps,
                   "ema": model.ema is not None, "seconds": {}}
        secs = results["seconds"]
        images, _, secs["ddim_grid"] = self._draw(model, self.grid_samples, sampler="ddim", steps=self.steps)
        if run_dir:
            self._save(model, images, os.path.join(run_dir, "samples.png"))
        if self.ancestral_samples:
            images, _, secs["ddpm_grid"] = self._draw(model, self.ancestral_samples, seed_offset=1, sampler="ddpm")
            if run_dir:
                self._save(model, images, os.path.join(run_dir, "samples_ddpm.png"))
        if model.num_classes and self.guided_scale is not None:
            images, _, secs["guided_grid"] = self._draw(model, self.grid_samples, sampler="ddim", steps=self.steps,
                                                        guidance_scale=self.guided_scale)
            results["guided_scale"] = self.guided_scale
            if run_dir:
                self._save(model, images, os.path.join(run_dir, "samples_guided.png"))
        if self.fid_samples and tuple(model.image_shape) == (1, 28, 28):
            images, labels, secs["fid_samples"] = self._draw(model, self.fid_samples, seed_offset=2, sampler="ddim",
                                                             steps=self.steps)
            try:
                from ..train.generative import mnist_quality
                results.update({f"mnist_{k}" if k != "count" else "fid_samples": v
                                for k, v in mnist_quality(images, labels).items()})
            except (ImportError, FileNotFoundError) as exc:
                results["mnist_fid_error"] = str(exc)
        if (self.probe_samples and model.num_classes and tuple(model.image_shape) != (1, 28, 28)
                and train_data is not None):
            probe = self._probe(model, train_data, val_data)
            if "probe_seconds" in probe:
                secs["probe"] = probe.pop("probe_seconds")
            results.update(probe)
        results["guidance_scale"] = model.guidance_scale
        return results

    def _probe(self, model, train_data, val_data):
        try:
            from sklearn.linear_model import LogisticRegression
        except ImportError:
            return {}

        def arrays(dataset):
            xs, ys = [], []
            for i in range(len(dataset)):
                x, y = dataset[i][0], dataset[i][1]
                xs.append(np.asarray(x.array if isinstance(x, Tensor) else x, dtype=np.float64).reshape(-1))
                ys.append(int(np.asarray(y.array if isinstance(y, Tensor) else y)))
            pixels = np.clip(np.stack(xs) * model.input_std + model.input_mean, 0, 1)
            return pixels, np.asarray(ys)

        x, y = arrays(train_data)
        probe = LogisticRegression(max_iter=2000).fit(x, y)
        images, labels, secs = self._draw(model, self.probe_samples, seed_offset=3, sampler="ddim", steps=self.steps)
        flat = images.reshape(len(images), -1).astype(np.float64)
        out = {"probe_samples": self.probe_samples, "probe_seconds": secs,
               "probe_label_accuracy": float((probe.predict(flat) == labels).mean()),
               "probe_confidence": float(probe.predict_proba(flat).max(axis=1).mean())}
        if val_data is not None:
            vx, vy = arrays(val_data)
            out["probe_real_accuracy"] = float((probe.predict(vx) == vy).mean())
            out["probe_real_confidence"] = float(probe.predict_proba(vx).max(axis=1).mean())
        return out

    def on_fit_end(self, trainer, model):
        if trainer.run_dir is None:
            return
        from ..train.generative import write_report
        datasets = [getattr(loader, "dataset", None) for loader in (trainer.train_loader, trainer.val_loader)]
        self.results = self.evaluate(model, trainer.run_dir, *datasets)
        write_report(trainer.run_dir, self.results, self.headline(self.results), verbose=self.verbose)

    @staticmethod
    def headline(results):
        """The report's lines for ``results``."""
        secs = results.get("seconds", {})
        lines = ["Generative quality (end of training):"]
        if "mnist_fid" in results:
            line = (f"  MNIST-FID: {results['mnist_fid']:.2f} ({results['fid_samples']} samples, {results['sampler']}, "
                    f"guidance {results['guidance_scale']:g}, vs MNIST images 8,000-9,999); classifier confidence "
                    f"{results['mnist_confidence']:.3f}, classes predicted {round(results['mnist_coverage'] * 10)}/10, "
                    f"class entropy {results['mnist_class_entropy']:.3f}")
            if "mnist_label_accuracy" in results:
                line += f", samples classified as their class {results['mnist_label_accuracy']:.1%}"
            lines.append(line)
        if "mnist_fid_error" in results:
            lines.append(f"  MNIST-FID unavailable: {results['mnist_fid_error']}")
        if "probe_label_accuracy" in results:
            line = (f"  {results['probe_samples']} DDIM samples classified as their class by a logistic-regression "
                    f"probe fitted on the training images: {results['probe_label_accuracy']:.1%} (mean confidence "
                    f"{results['probe_confidence']:.3f})")
            if "probe_real_accuracy" in results:
                line += (f"; the probe on the real validation images: {results['probe_real_accuracy']:.1%} "
                         f"(confidence {results['probe_real_confidence']:.3f})")
            lines.append(line)
        names = {"ddim_grid": "DDIM grid (samples.png)", "ddpm_grid": f"ancestral grid, {results.get('timesteps')} "
                 f"steps (samples_ddpm.png)", "guided_grid": "guided DDIM grid (samples_guided.png)",
                 "fid_samples": "FID samples", "probe": "probe samples"}
        if secs:
            lines.append("  sampling time: " + "; ".join(f"{names.get(k, k)} {v:.0f} s" for k, v in secs.items()))
        return lines
