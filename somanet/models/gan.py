"""Generative adversarial networks: DCGAN (Radford et al., 2016) generator and discriminator, class
conditioning, a WGAN-GP critic (Gulrajani et al., 2017), the usual adversarial losses, the gradient
penalty, and ``GAN``, which trains a generator against a discriminator with ``somanet.train.Trainer``
or a plain loop.

Sizes: the networks take ``image_size`` divisible by 4 (28x28 MNIST, 32x32 padded MNIST, 8x8 digits):
the generator projects the noise to an ``image_size/4`` square and doubles it twice; the
discriminator halves the image twice and a last convolution over the remaining ``image_size/4``
square gives one logit per image. Generated images are in [-1, 1] (``Tanh``).

Conditioning (``num_classes``): the generator appends the label's one-hot vector to the noise, the
discriminator appends one constant plane per class (the one-hot vector spread over the image) to
its input channels.

Losses, on discriminator outputs (logits / critic scores) ``real`` and ``fake``:

============== ==================================================== ===========================
kind           discriminator                                        generator
============== ==================================================== ===========================
nonsaturating  ``softplus(-real).mean() + softplus(fake).mean()``   ``softplus(-fake).mean()``
hinge          ``relu(1 - real).mean() + relu(1 + fake).mean()``    ``-fake.mean()``
wasserstein    ``fake.mean() - real.mean()``                        ``-fake.mean()``
============== ==================================================== ===========================

(``nonsaturating`` is the binary cross-entropy of the original GAN with the generator maximising
``log D(G(z))``.)
"""
import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..ops.creation import arange, ones_like, rand, randint, randn, tensor
from ..ops.shape import cat

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "WGANCritic", "GAN", "dcgan_weights_init", "discriminator_loss",
           "generator_loss", "gradient_penalty", "GAN_LOSSES", "translate", "cutout", "diff_augment"]

GAN_LOSSES = ("nonsaturating", "hinge", "wasserstein")


def dcgan_weights_init(module):
    """The DCGAN paper's initialisation, for ``model.apply``: convolution weights ~ N(0, 0.02),
    batch-norm weights ~ N(1, 0.02), biases 0."""
    from ..nn.modules.conv import _ConvNd
    from ..nn.modules.norm import _BatchNorm
    if isinstance(module, _ConvNd):
        weight = module._parameters.get("weight", None)
        if weight is None:  # spectral norm keeps the tensor as weight_orig, or as a parametrization's original
            weight = module._parameters.get("weight_orig")
        if weight is None and "parametrizations" in module._modules:
            weight = module.parametrizations["weight"].original
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, _BatchNorm) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _check_size(image_size, owner):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4 or image_size % 4:
        raise ValueError(f"{owner}: image_size must be a multiple of 4 (28, 32, 8, ...), got {image_size!r}")
    return image_size


def _one_hot(labels, num_classes, like):
    if not isinstance(labels, Tensor):
        labels = tensor(np.asarray(labels))
    return F.one_hot(labels.long(), num_classes).to(like.dtype)


def _label_planes(x, labels, num_classes, owner):
    """``x`` ``(N, C, H, W)`` with ``num_classes`` planes appended: plane ``k`` is 1 where the label is ``k``."""
    if not num_classes:
        return x
    if labels is None:
        raise ValueError(f"{owner}: a conditional model needs the class labels (num_classes={num_classes})")
    onehot = _one_hot(labels, num_classes, x).reshape(x.shape[0], num_classes, 1, 1)
    return cat([x, onehot * ones_like(x[:, :1])], dim=1)


class DCGANGenerator(nn.Module):
    """DCGAN generator: noise ``(N, latent_dim)`` (and labels) -> images ``(N, channels, S, S)`` in [-1, 1].

    ``ConvTranspose2d(latent_dim [+ num_classes], 2g, S/4, 1, 0) -> BatchNorm2d -> ReLU``
    ``-> ConvTranspose2d(2g, g, 4, 2, 1) -> BatchNorm2d -> ReLU -> ConvTranspose2d(g, channels, 4, 2, 1) -> Tanh``
    with ``g = base_channels`` and ``S = image_size``; the convolutions have no bias (batch norm follows)
    and the weights get ``dcgan_weights_init``.

    >>> g = DCGANGenerator(latent_dim=64, image_size=28)
    >>> g(somanet.randn(16, 64)).shape
    (16, 1, 28, 28)
    """

    def __init__(self, latent_dim=100, channels=1, image_size=28, base_channels=64, num_classes=None):
        super().__init__()
        size = _check_size(image_size, type(self).__name__)
        self.latent_dim = int(latent_dim)
        self.channels = int(channels)
        self.image_size = size
        self.num_classes = num_classes or None
        g = int(base_channels)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(self.latent_dim + (num_classes or 0), 2 * g, size // 4, 1, 0, bias=False),
            nn.BatchNorm2d(2 * g), nn.ReLU(),
            nn.ConvTranspose2d(2 * g, g, 4, 2, 1, bias=False), nn.BatchNorm2d(g), nn.ReLU(),
            nn.ConvTranspose2d(g, self.channels, 4, 2, 1, bias=False), nn.Tanh())
        self.apply(dcgan_weights_init)

    def forward(self, z, labels=None):
        z = z.reshape(z.shape[0], -1)
        if self.num_classes:
            if labels is None:
                raise ValueError(f"{type(self).__name__}: a conditional generator needs the class labels")
            z = cat([z, _one_hot(labels, self.num_classes, z)], dim=1)
        return self.main(z.reshape(z.shape[0], z.shape[1], 1, 1))


def _maybe_sn(layer, use):
    if use:
        from ..nn.utils.spectral_norm import spectral_norm
        return spectral_norm(layer)
    return layer


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: images ``(N, channels, S, S)`` (and labels) -> one logit per image ``(N,)``.

    ``Conv2d(channels [+ num_classes], d, 4, 2, 1) -> LeakyReLU(0.2) -> Conv2d(d, 2d, 4, 2, 1) ->
    BatchNorm2d -> LeakyReLU(0.2) -> Conv2d(2d, 1, S/4)`` with ``d = base_channels``; no batch norm on
    the first layer (as in the paper), no bias before batch norm, ``dcgan_weights_init``. It returns
    logits (no sigmoid): the losses take logits, which is the numerically stable form.

    ``spectral_norm=True`` wraps every convolution in ``nn.utils.spectral_norm`` and drops the batch
    norm (an SN-GAN style discriminator).
    """

    def __init__(self, channels=1, image_size=28, base_channels=64, num_classes=None, spectral_norm=False):
        super().__init__()
        size = _check_size(image_size, type(self).__name__)
        self.channels = int(channels)
        self.image_size = size
        self.num_classes = num_classes or None
        d = int(base_channels)
        sn = bool(spectral_norm)
        layers = [_maybe_sn(nn.Conv2d(self.channels + (num_classes or 0), d, 4, 2, 1, bias=sn), sn), nn.LeakyReLU(0.2),
                  _maybe_sn(nn.Conv2d(d, 2 * d, 4, 2, 1, bias=sn), sn)]
        if not sn:
            layers.append(nn.BatchNorm2d(2 * d))
        layers += [nn.LeakyReLU(0.2), _maybe_sn(nn.Conv2d(2 * d, 1, size // 4, 1, 0, bias=sn), sn)]
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_weights_init)

    def forward(self, x, labels=None):
        x = _label_planes(x, labels, self.num_classes, type(self).__name__)
        return self.main(x).reshape(x.shape[0])


class WGANCritic(nn.Module):
    """WGAN-GP critic: images (and labels) -> one unbounded score per image ``(N,)``.

    ``Conv2d(channels [+ num_classes], d, 4, 2, 1) -> LeakyReLU(0.2) -> Conv2d(d, 2d, 4, 2, 1) ->
    [LayerNorm] -> LeakyReLU(0.2) -> Conv2d(2d, 1, S/4)``. No batch norm: the gradient penalty is taken
    per example, which batch statistics would mix; ``norm="layer"`` normalises each example's feature
    map (``LayerNorm((2d, S/4, S/4))``), ``norm=None`` uses none. PyTorch's default initialisation.
    """

    def __init__(self, channels=1, image_size=28, base_channels=64, num_classes=None, norm="layer"):
        super().__init__()
        size = _check_size(image_size, type(self).__name__)
        if norm not in ("layer", None, "none"):
            raise ValueError(f"WGANCritic: norm must be 'layer' or None, got {norm!r}")
        self.channels = int(channels)
        self.image_size = size
        self.num_classes = num_classes or None
        d = int(base_channels)
        layers = [nn.Conv2d(self.channels + (num_classes or 0), d, 4, 2, 1), nn.LeakyReLU(0.2),
                  nn.Conv2d(d, 2 * d, 4, 2, 1)]
        if norm == "layer":
            layers.append(nn.LayerNorm((2 * d, size // 4, size // 4)))
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(2 * d, 1, size // 4, 1, 0)]
        self.main = nn.Sequential(*layers)

    def forward(self, x, labels=None):
        x = _label_planes(x, labels, self.num_classes, type(self).__name__)
        return self.main(x).reshape(x.shape[0])


# --------------------------------------------------------------------------- losses
def _check_kind(kind):
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(GAN_LOSSES)}")


def discriminator_loss(real, fake, kind="nonsaturating"):
    """The discriminator's (critic's) loss from its outputs on real and generated examples."""
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return fake.mean() - real.mean()


def generator_loss(fake, kind="nonsaturating"):
    """The generator's loss from the discriminator's outputs on generated examples."""
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    return -fake.mean()


def _call(net, x, labels):
    return net(x) if labels is None else net(x, labels)


def _double_backward_norms(critic, x, labels, n):
    from ..autograd import grad
    out = _call(critic, x, labels)
    g, = grad(out, x, grad_outputs=ones_like(out), create_graph=True)
    return g.reshape(n, -1).norm(2, dim=1)


def gradient_penalty(critic, real, fake, labels=None, *, alpha=None, target=1.0, method="auto", fd_step=1e-3):
    """WGAN-GP's penalty ``mean((||grad_x critic(x_hat)||_2 - target)^2)`` at random interpolates
    ``x_hat = alpha * real + (1 - alpha) * fake`` (one ``alpha ~ U(0, 1)`` per example).

    Args:
        critic: the critic module (called as ``critic(x)``, or ``critic(x, labels)`` with labels).
        real, fake: batches of the same shape (both are detached here).
        labels: the class labels of a conditional critic.
        alpha: the interpolation weights, ``(N,)`` or broadcastable to the batch (drawn if None).
        target: the gradient norm aimed at (1 in the paper).
        method: ``"double_backward"`` differentiates the gradient norm itself (second-order autograd,
            ``autograd.grad(..., create_graph=True)``); ``"finite_difference"`` computes the gradient
            norms with first-order autograd and gives the penalty the parameter gradient of the exact
            formula up to an O(fd_step^2) central difference: for the unit direction ``u`` of each
            example's input gradient, ``d ||g|| / d theta = d (u . g) / d theta`` and ``u . g`` is the
            critic's slope along ``u``, ``(critic(x_hat + h u) - critic(x_hat - h u)) / 2h``;
            ``"auto"`` uses double backward when the autograd engine supports it, else finite differences.
        fd_step: ``h`` of the finite differences, in the units of the data.

    Returns a scalar Tensor whose value is the exact penalty and whose gradient reaches the critic's
    parameters.
    """
    if method not in ("auto", "double_backward", "finite_difference"):
        raise ValueError(f"gradient_penalty(): method must be 'auto', 'double_backward' or 'finite_difference', "
                         f"got {method!r}")
    real, fake = real.detach(), fake.detach()
    n = real.shape[0]
    if alpha is None:
        alpha = rand(n, generator=None, dtype=real.dtype)
    if not isinstance(alpha, Tensor):
        alpha = tensor(np.asarray(alpha, dtype=real.dtype))
    if alpha.ndim == 1:
        alpha = alpha.reshape(n, *([1] * (real.ndim - 1)))
    x = (alpha * real + (1.0 - alpha) * fake).detach().requires_grad_(True)
    if method != "finite_difference":
        try:
            norms = _double_backward_norms(critic, x, labels, n)
            return ((norms - target) ** 2).mean()
        except (NotImplementedError, RuntimeError) as exc:
            # An engine without second-order gradients for some operation of the critic says so with
            # NotImplementedError, or a RuntimeError naming create_graph.
            if method == "double_backward" or (isinstance(exc, RuntimeError) and "create_graph" not in str(exc)):
                raise
    return _finite_difference_penalty(critic, x, labels, n, target, fd_step)


def _finite_difference_penalty(critic, x, labels, n, target, h):
    from ..autograd import grad
    out = _call(critic, x, labels)
    g, = grad(out, x, grad_outputs=ones_like(out))
    flat = g.array.reshape(n, -1).astype(np.float64)
    norms = np.sqrt((flat * flat).sum(axis=1))
    unit = (flat / np.maximum(norms, 1e-12)[:, None]).reshape(x.shape).astype(x.array.dtype)
    base = x.detach()
    step = tensor(unit * np.asarray(h, dtype=unit.dtype))
    both = _call(critic, cat([base + step, base - step], dim=0),
                 None if labels is None else cat([labels, labels], dim=0))
    slope = (both[:n] - both[n:]) * (1.0 / (2.0 * h))
    coef = tensor((2.0 * (norms - target) / n).astype(x.array.dtype))
    surrogate = (coef * slope).sum()
    value = float(((norms - target) ** 2).mean())
    # The value of the exact penalty, the parameter gradient of the surrogate.
    return surrogate - surrogate.detach() + value


# --------------------------------------------------------------------------- differentiable augmentation
def translate(x, shifts, fill=0.0):
    """Images ``x`` ``(N, C, H, W)`` shifted by whole pixels, each by its own ``shifts[i] = (dy, dx)``
    (an ``(N, 2)`` integer array or tensor; positive moves content down / right), the uncovered border
    filled with ``fill``. Differentiable in ``x`` (a gather from the padded images)."""
    shifts = np.asarray(shifts.array if isinstance(shifts, Tensor) else shifts)
    n, _, h, w = x.shape
    if shifts.shape != (n, 2) or shifts.dtype.kind not in "iu":
        raise ValueError(f"translate: shifts must be an integer array of shape ({n}, 2), got "
                         f"{shifts.dtype} {shifts.shape}")
    s = int(np.abs(shifts).max()) if shifts.size else 0
    if s == 0:
        return x
    padded = F.pad(x, (s, s, s, s), value=fill).permute(0, 2, 3, 1)  # (N, H + 2s, W + 2s, C)
    rows = tensor(s - shifts[:, :1] + np.arange(h))  # (N, H): source row of each output row
    cols = tensor(s - shifts[:, 1:] + np.arange(w))
    out = padded[arange(n).reshape(n, 1, 1), rows.reshape(n, h, 1), cols.reshape(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x, corners, size, fill=0.0):
    """Images ``x`` ``(N, C, H, W)`` with a ``size`` square set to ``fill`` in each, its top-left corner at
    ``corners[i] = (y, x)`` (may start above or left of the image: the square is clipped)."""
    corners = np.asarray(corners.array if isinstance(corners, Tensor) else corners)
    n, _, h, w = x.shape
    if corners.shape != (n, 2) or corners.dtype.kind not in "iu":
        raise ValueError(f"cutout: corners must be an integer array of shape ({n}, 2), got "
                         f"{corners.dtype} {corners.shape}")
    ys, xs = np.arange(h), np.arange(w)
    inside_y = (ys >= corners[:, :1]) & (ys < corners[:, :1] + size)  # (N, H)
    inside_x = (xs >= corners[:, 1:]) & (xs < corners[:, 1:] + size)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    keep = tensor(keep[:, None].astype(x.array.dtype))
    return x * keep + (1.0 - keep) * fill


def diff_augment(x, policy="translation,cutout", fill=0.0, generator=None):
    """Differentiable augmentation of real and generated images alike before the discriminator (Zhao et
    al., 2020, "DiffAugment"), which keeps a discriminator trained on few images from memorising them.

    ``policy`` is a comma-separated list: ``translation`` shifts each image by up to 1/8 of its size on
    each axis, ``cutout`` sets a random square of half its size to ``fill`` (for images in [-1, 1] with a
    black background, ``fill=-1``). The random draws come from ``generator`` (default: the global one)."""
    names = [p.strip() for p in policy.split(",") if p.strip()] if policy else []
    unknown = set(names) - {"translation", "cutout"}
    if unknown:
        raise ValueError(f"diff_augment: unknown policy {sorted(unknown)}; expected 'translation' and/or 'cutout'")
    n, _, h, w = x.shape
    for name in names:
        if name == "translation":
            sy, sx = max(1, int(h * 0.125 + 0.5)), max(1, int(w * 0.125 + 0.5))
            dy = randint(-sy, sy + 1, (n, 1), generator=generator).array
            dx = randint(-sx, sx + 1, (n, 1), generator=generator).array
            x = translate(x, np.concatenate([dy, dx], axis=1), fill)
        else:
            size = max(1, int(h * 0.5 + 0.5))
            cy = randint(0, h + (1 - size % 2), (n, 1), generator=generator).array - size // 2
            cx = randint(0, w + (1 - size % 2), (n, 1), generator=generator).array - size // 2
            x = cutout(x, np.concatenate([cy, cx], axis=1), size, fill)
    return x


# --------------------------------------------------------------------------- the training wrapper
class GAN(nn.Module):
    """A generator and a discriminator trained against each other.

    Args:
        generator: maps noise ``(N, latent_dim)`` (and labels) to examples (e.g. ``DCGANGenerator``).
        discriminator: maps examples (and labels) to one output per example ``(N,)``
            (``DCGANDiscriminator``, ``WGANCritic``).
        loss: ``"nonsaturating"``, ``"hinge"`` or ``"wasserstein"`` (see the module's table).
        latent_dim: the noise size (default: ``generator.latent_dim``).
        num_classes: condition both networks on class labels (default: ``generator.num_classes``).
        n_critic: discriminator updates per generator update (5 for WGAN-GP).
        gp_weight: the weight of ``gradient_penalty`` in the discriminator's loss (10 for WGAN-GP; 0: none).
        gp_method: ``gradient_penalty``'s ``method``.
        image_range: the examples' value range for the networks, ``(-1, 1)`` for a ``Tanh`` generator;
            data in [0, 1] is mapped onto it linearly (``None``: data used as it is, e.g. points in the plane).
        input_mean, input_std: the normalisation of the batches ``training_step`` receives (the
            data is ``batch * input_std + input_mean``).
        data_shape: reshape the batches ``training_step`` receives to ``(N, *data_shape)`` (e.g. flat
            64-pixel digits to ``(1, 8, 8)``).
        ema_decay: keep ``generator_ema = AveragedModel(generator,
            multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)``, an exponential moving
            average of the generator's weights (and batch-norm statistics) updated after every generator
            update; ``sample`` draws from it. ``None`` (default): no average.
        augment: a ``diff_augment`` policy (``"translation,cutout"``) applied to real and generated
            examples alike wherever the discriminator sees them, filled with the low end of
            ``image_range`` (the background of black-background images); ``None`` (default): none.

    ``forward(z, labels=None)`` runs the trained generator; ``sample`` uses the averaged one when
    ``ema_decay`` is set (averaging the generator over the last few thousand updates smooths the
    oscillation of adversarial training, which gives cleaner samples than the last iterate). ``optimization_step`` runs one discriminator update
    and, if asked, one generator update, with the given optimizers (a plain training loop);
    ``training_step`` does the same for ``somanet.train.Trainer`` (``automatic_optimization = False``)
    with ``fit(optimizer=[g_optimizer, d_optimizer])`` or a single optimizer over all parameters
    (each network's update then only changes that network: the other has no gradient). A generator
    update follows every ``n_critic``-th discriminator update (counted by the trainer's ``global_step``).
    The step logs ``loss`` (the discriminator's loss), ``g_loss``, ``d_real`` and ``d_fake`` (mean
    outputs) and ``gp``.
    """

    automatic_optimization = False

    def __init__(self, generator, discriminator, loss="nonsaturating", latent_dim=None, num_classes=None, n_critic=1,
                 gp_weight=0.0, gp_method="auto", image_range=(-1.0, 1.0), input_mean=0.0, input_std=1.0,
                 data_shape=None, ema_decay=None, augment=None):
        super().__init__()
        _check_kind(loss)
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(f"GAN: n_critic must be an int >= 1, got {n_critic!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.latent_dim = int(latent_dim if latent_dim is not None else generator.latent_dim)
        self.num_classes = num_classes or getattr(generator, "num_classes", None) or None
        self.n_critic = n_critic
        self.gp_weight = float(gp_weight)
        self.gp_method = gp_method
        self.image_range = None if image_range is None else tuple(float(v) for v in image_range)
        self.input_mean = float(input_mean)
        self.input_std = float(input_std)
        self.data_shape = None if data_shape is None else tuple(int(d) for d in data_shape)
        if ema_decay is not None and not (isinstance(ema_decay, (int, float)) and 0.0 < ema_decay < 1.0):
            raise ValueError(f"GAN: ema_decay must be a float in (0, 1) or None, got {ema_decay!r}")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        if augment is not None:
            diff_augment(tensor(np.zeros((1, 1, 8, 8), np.float32)), augment)  # validates the policy
        self.augment = augment or None
        if self.ema_decay is not None:
            from ..optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
            self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay),
                                               use_buffers=True)
            self.generator_ema.requires_grad_(False)
        else:
            self.generator_ema = None

    # ----------------------------------------------------------------- generation
    def forward(self, z, labels=None):
        return _call(self.generator, z, labels if self.num_classes else None)

    def _dtype(self):
        return next(iter(self.generator.parameters())).dtype

    def noise(self, n, generator=None):
        """``n`` noise vectors ``N(0, I)`` of ``latent_dim``."""
        return randn(int(n), self.latent_dim, generator=generator, dtype=self._dtype())

    def from_model_range(self, x):
        """Generator outputs mapped back to the data's range ([0, 1] for images, clipped)."""
        if self.image_range is None:
            return x
        lo, hi = self.image_range
        return ((x - lo) * (1.0 / (hi - lo))).clamp(0.0, 1.0)

    def sampling_generator(self, use_ema=True):
        """The generator that samples: the averaged copy once it has been updated, else the trained one."""
        if use_ema and self.generator_ema is not None and int(self.generator_ema.n_averaged.array) > 0:
            return self.generator_ema.module
        return self.generator

    def sample(self, n, labels=None, generator=None, use_ema=True):
        """``n`` generated examples in the data's range (images in [0, 1]), without gradient, from the
        averaged generator when there is one (``use_ema=False``: the trained one); the caller chooses
        ``train()`` / ``eval()`` (batch norm). A conditional model without ``labels`` cycles through the
        classes."""
        if self.num_classes and labels is None:
            labels = tensor(np.arange(int(n)) % self.num_classes)
        net = self.sampling_generator(use_ema)
        with grad_mode.no_grad():
            z = self.noise(n, generator)
            return self.from_model_range(_call(net, z, labels if self.num_classes else None))

    # ----------------------------------------------------------------- training
    def to_model_range(self, batch_x):
        """A dataset batch (normalised with ``input_mean`` / ``input_std``) in the networks' range."""
        x = batch_x
        if (self.input_std, self.input_mean) != (1.0, 0.0):
            x = x * self.input_std + self.input_mean
        if self.image_range is not None:
            lo, hi = self.image_range
            x = x.clamp(0.0, 1.0) * (hi - lo) + lo
        return x

    def _d(self, x, labels):
        return _call(self.discriminator, x, labels if self.num_classes else None)

    def _d_augmented(self, x, labels):
        if self.augment is not None and self.training:
            fill = self.image_range[0] if self.image_range is not None else 0.0
            x = diff_augment(x, self.augment, fill=fill)
        return self._d(x, labels)

    def optimization_step(self, real, labels=None, *, g_optimizer, d_optimizer, update_generator=True):
        """One discriminator update on ``real`` (in the networks' range) against as many generated
        examples (the same labels), then one generator update if ``update_generator``. The two
        optimizers may be the same object. Returns a dict of floats."""
        n = real.shape[0]
        if self.num_classes and labels is None:
            raise ValueError("GAN: a conditional model needs the labels of the real batch")
        labels = labels if self.num_classes else None
        z = self.noise(n)
        if update_generator:
            fake = self(z, labels)
        else:
            with grad_mode.no_grad():
                fake = self(z, labels)
        d_optimizer.zero_grad()
        d_real = self._d_augmented(real, labels)
        d_fake = self._d_augmented(fake.detach(), labels)
        d_loss = discriminator_loss(d_real, d_fake, self.loss)
        logs = {"d_real": float(d_real.array.mean()), "d_fake": float(d_fake.array.mean())}
        total = d_loss
        if self.gp_weight:
            gp = gradient_penalty(self.discriminator, real, fake.detach(), labels, method=self.gp_method)
            total = d_loss + self.gp_weight * gp
            logs["gp"] = float(gp.array)
        total.backward()
        d_optimizer.step()
        logs["loss"] = float(d_loss.array)
        if update_generator:
            g_optimizer.zero_grad()
            # The discriminator's weights get no gradient from the generator's loss.
            flags = [(p, p.requires_grad) for p in self.discriminator.parameters()]
            for p, _ in flags:
                p.requires_grad = False
            try:
                g_loss = generator_loss(self._d_augmented(fake, labels), self.loss)
                g_loss.backward()
            finally:
                for p, flag in flags:
                    p.requires_grad = flag
            g_optimizer.step()
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
            logs["g_loss"] = float(g_loss.array)
        return logs

    def _optimizers(self):
        trainer = getattr(self, "trainer", None)
        opts = list(getattr(trainer, "optimizers", None) or [])
        if len(opts) == 1:
            return opts[0], opts[0]
        if len(opts) == 2:
            return opts[0], opts[1]
        raise ValueError(f"GAN.training_step: fit() needs optimizer=[g_optimizer, d_optimizer] or one optimizer "
                         f"over all parameters, got {len(opts)}")

    def _split(self, batch):
        if isinstance(batch, (list, tuple)):
            x = batch[0]
            labels = batch[1] if len(batch) > 1 else None
        else:
            x, labels = batch, None
        if self.data_shape is not None:
            x = x.reshape(x.shape[0], *self.data_shape)
        return self.to_model_range(x), labels

    def training_step(self, batch, batch_idx):
        """One batch for ``Trainer.fit``: a discriminator update, and a generator update on every
        ``n_critic``-th step."""
        real, labels = self._split(batch)
        g_opt, d_opt = self._optimizers()
        step = getattr(self.trainer, "global_step", batch_idx)
        return self.optimization_step(real, labels, g_optimizer=g_opt, d_optimizer=d_opt,
                                      update_generator=(step + 1) % self.n_critic == 0)

    def validation_step(self, batch, batch_idx):
        """The discriminator's loss on held-out real examples against fresh generated ones (logged as
        ``val_loss``; for the Wasserstein loss, minus the critic's estimate of the distance).

        It runs in evaluation mode: a batch-norm discriminator then uses running statistics that mix
        the real and the generated batches it was trained on, so its ``val_loss`` is only a rough
        signal; judge the samples with a quality measure (``somanet.train.generative.mnist_fid``)."""
        real, labels = self._split(batch)
        labels = labels if self.num_classes else None
        fake = self(self.noise(real.shape[0]), labels)
        d_real, d_fake = self._d(real, labels), self._d(fake, labels)
        return {"loss": discriminator_loss(d_real, d_fake, self.loss), "d_real": float(d_real.array.mean()),
                "d_fake": float(d_fake.array.mean())}

    def extra_repr(self):
        return (f"loss={self.loss!r}, latent_dim={self.latent_dim}, n_critic={self.n_critic}, gp_weight={self.gp_weight}, "
                f"ema_decay={self.ema_decay}, augment={self.augment!r}")
