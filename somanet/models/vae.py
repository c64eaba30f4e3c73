"""Variational autoencoders (Kingma & Welling, 2014): ``VAE``, ``ConditionalVAE`` and their encoders
and decoders (fully connected or convolutional).

The encoder maps an input ``x`` (and, for a conditional model, its class ``y``) to the mean ``mu`` and
log-variance ``logvar`` of a diagonal Gaussian posterior ``q(z | x) = N(mu, exp(logvar))``; a latent
``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` is drawn (the reparameterisation trick:
the sample is a differentiable function of ``mu`` and ``logvar``), and the decoder maps ``z`` (and
``y``) to the parameters of ``p(x | z)``:

* ``likelihood="bernoulli"``: the decoder gives logits, ``-log p(x | z)`` is the binary cross-entropy
  with logits summed over pixels (for grey levels in [0, 1], the usual "BCE-sum");
* ``likelihood="gaussian"``: the decoder gives the mean, with one standard deviation shared by all
  pixels, learned (``gaussian_std=None``, stored as the parameter ``log_std``) or fixed.

The training objective is the negative evidence lower bound (ELBO) per example, in nats:
``recon + beta * kl`` with ``recon = -log p(x | z)`` summed over the data dimensions and
``kl = KL(q(z | x) || N(0, I))`` summed over the latent dimensions; ``beta = 1`` is the plain VAE,
``beta > 1`` the beta-VAE.

``forward``, ``loss`` and ``sample`` work on the data the decoder models (pixel intensities in [0, 1]
for the Bernoulli likelihood). ``training_step`` / ``validation_step`` (used by ``somanet.train.Trainer``)
take the batches of a dataset that was normalised as ``(pixels - input_mean) / input_std`` and undo
that first.
"""
import math

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..ops.creation import arange, randn, tensor, zeros
from ..ops.shape import cat

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "VAE", "ConditionalVAE", "mlp_vae",
           "conv_vae", "gaussian_kl", "reparameterize"]


def _as_shape(shape):
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _one_hot(labels, num_classes, like):
    """Float one-hot rows ``(N, num_classes)`` of ``labels``, in the dtype of the tensor ``like``."""
    if not isinstance(labels, Tensor):
        labels = tensor(labels)
    return F.one_hot(labels.long(), num_classes).to(like.dtype)


def _with_labels(h, labels, num_classes, owner):
    """``h`` with the labels' one-hot rows appended (unchanged for an unconditional model)."""
    if not num_classes:
        return h
    if labels is None:
        raise ValueError(f"{owner}: a conditional model needs the class labels (num_classes={num_classes})")
    return cat([h, _one_hot(labels, num_classes, h)], dim=1)


def reparameterize(mu, logvar, generator=None):
    """``mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``: a posterior sample through which gradients
    reach ``mu`` and ``logvar``."""
    eps = randn(*mu.shape, generator=generator, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


def gaussian_kl(mu, logvar):
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the last dimension:
    ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)``."""
    return 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=-1)


# --------------------------------------------------------------------------- encoders and decoders
class MLPEncoder(nn.Module):
    """Fully connected encoder: ``(N, *input_shape)`` -> ``(mu, logvar)``, each ``(N, latent_dim)``.

    The input is flattened (and, with ``num_classes``, the label's one-hot vector appended), then
    passes ``Linear -> ReLU`` for each of ``hidden_sizes``; one last ``Linear`` gives ``2 * latent_dim``
    numbers, split into ``mu`` and ``logvar``.
    """

    def __init__(self, input_shape=(1, 28, 28), latent_dim=16, hidden_sizes=(512, 256), num_classes=None):
        super().__init__()
        self.input_shape = _as_shape(input_shape)
        self.latent_dim = int(latent_dim)
        self.num_classes = num_classes or None
        width = math.prod(self.input_shape) + (num_classes or 0)
        layers = []
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * self.latent_dim)

    def forward(self, x, labels=None):
        h = _with_labels(x.reshape(x.shape[0], -1), labels, self.num_classes, type(self).__name__)
        out = self.head(self.body(h))
        return out[:, :self.latent_dim], out[:, self.latent_dim:]


class MLPDecoder(nn.Module):
    """Fully connected decoder: ``(N, latent_dim)`` -> ``(N, *output_shape)`` likelihood parameters
    (logits or means). ``z`` (with the label's one-hot vector appended) passes ``Linear -> ReLU`` for
    each of ``hidden_sizes``, then a ``Linear`` to ``prod(output_shape)`` outputs."""

    def __init__(self, latent_dim=16, output_shape=(1, 28, 28), hidden_sizes=(256, 512), num_classes=None):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.output_shape = _as_shape(output_shape)
        self.num_classes = num_classes or None
        width = self.latent_dim + (num_classes or 0)
        layers = []
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, math.prod(self.output_shape)))
        self.body = nn.Sequential(*layers)

    def forward(self, z, labels=None):
        h = _with_labels(z, labels, self.num_classes, type(self).__name__)
        return self.body(h).reshape(z.shape[0], *self.output_shape)


def _conv_sizes(input_shape, owner):
    shape = _as_shape(input_shape)
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ValueError(f"{owner}: input_shape must be (C, H, W) with H and W divisible by 4, got {shape}")
    return shape


class ConvEncoder(nn.Module):
    """Convolutional encoder for ``(N, C, H, W)`` images (``H``, ``W`` divisible by 4; 28x28 MNIST,
    8x8 digits): ``Conv2d(C, c1, 4, 2, 1) -> ReLU -> Conv2d(c1, c2, 4, 2, 1) -> ReLU`` halves the size
    twice, then ``Flatten`` (plus the label's one-hot vector) ``-> Linear(hidden) -> ReLU ->
    Linear(2 * latent_dim)`` gives ``(mu, logvar)``."""

    def __init__(self, input_shape=(1, 28, 28), latent_dim=16, channels=(32, 64), hidden=256, num_classes=None):
        super().__init__()
        self.input_shape = _conv_sizes(input_shape, type(self).__name__)
        self.latent_dim = int(latent_dim)
        self.num_classes = num_classes or None
        c, h, w = self.input_shape
        c1, c2 = channels
        self.features = nn.Sequential(nn.Conv2d(c, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
                                      nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c2 * (h // 4) * (w // 4) + (num_classes or 0), hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 2 * self.latent_dim)

    def forward(self, x, labels=None):
        x = x.reshape(x.shape[0], *self.input_shape)
        h = _with_labels(self.features(x), labels, self.num_classes, type(self).__name__)
        out = self.head(self.fc(h))
        return out[:, :self.latent_dim], out[:, self.latent_dim:]


class ConvDecoder(nn.Module):
    """Convolutional decoder, the mirror of ``ConvEncoder``: ``z`` (plus the label's one-hot vector)
    ``-> Linear(hidden) -> ReLU -> Linear(c1 * H/4 * W/4) -> ReLU``, reshaped to ``(c1, H/4, W/4)``, then
    ``ConvTranspose2d(c1, c2, 4, 2, 1) -> ReLU -> ConvTranspose2d(c2, C, 4, 2, 1)`` gives
    ``(N, C, H, W)`` likelihood parameters."""

    def __init__(self, latent_dim=16, output_shape=(1, 28, 28), channels=(64, 32), hidden=256, num_classes=None):
        super().__init__()
        self.output_shape = _conv_sizes(output_shape, type(self).__name__)
        self.latent_dim = int(latent_dim)
        self.num_classes = num_classes or None
        c, h, w = self.output_shape
        c1, c2 = channels
        self.fc = nn.Sequential(nn.Linear(self.latent_dim + (num_classes or 0), hidden), nn.ReLU(),
                                nn.Linear(hidden, c1 * (h // 4) * (w // 4)), nn.ReLU(),
                                nn.Unflatten(1, (c1, h // 4, w // 4)))
        self.deconv = nn.Sequential(nn.ConvTranspose2d(c1, c2, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c2, c, 4, 2, 1))

    def forward(self, z, labels=None):
        return self.deconv(self.fc(_with_labels(z, labels, self.num_classes, type(self).__name__)))


# --------------------------------------------------------------------------- the model
class VAE(nn.Module):
    """A variational autoencoder made of an ``encoder`` (``(x[, labels]) -> (mu, logvar)``) and a
    ``decoder`` (``(z[, labels]) -> likelihood parameters``); see the module's documentation.

    Args:
        encoder, decoder: the two networks (``MLPEncoder`` / ``ConvEncoder`` and ``MLPDecoder`` /
            ``ConvDecoder``, or any modules with the same contract and ``latent_dim`` /
            ``output_shape`` attributes).
        likelihood: ``"bernoulli"`` (decoder logits; data in [0, 1]) or ``"gaussian"`` (decoder means).
        beta: the weight of the KL term in the training objective.
        gaussian_std: the Gaussian likelihood's standard deviation; ``None`` learns it (``log_std``).
        input_mean, input_std: the normalisation of the batches ``training_step`` receives (the
            data the decoder models is ``batch * input_std + input_mean``).

    ``forward(x, labels=None)`` returns ``(decoder_output, mu, logvar)``.

    >>> vae = mlp_vae((1, 28, 28), latent_dim=8)
    >>> out, mu, logvar = vae(somanet.rand(4, 1, 28, 28))
    >>> out.shape, mu.shape
    ((4, 1, 28, 28), (4, 8))
    """

    def __init__(self, encoder, decoder, likelihood="bernoulli", beta=1.0, gaussian_std=None, input_mean=0.0,
                 input_std=1.0):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"VAE: likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        if not beta >= 0:
            raise ValueError(f"VAE: beta must be >= 0, got {beta!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(encoder.latent_dim)
        self.num_classes = getattr(encoder, "num_classes", None) or getattr(decoder, "num_classes", None)
        self.output_shape = tuple(decoder.output_shape)
        self.likelihood = likelihood
        self.beta = float(beta)
        self.gaussian_std = gaussian_std
        if likelihood == "gaussian" and gaussian_std is None:
            self.log_std = nn.Parameter(zeros(1))
        self.input_mean = float(input_mean)
        self.input_std = float(input_std)

    # ----------------------------------------------------------------- the parts
    def encode(self, x, labels=None):
        """``(mu, logvar)`` of the posterior ``q(z | x)``."""
        return self.encoder(x, labels) if self.num_classes else self.encoder(x)

    def posterior(self, x, labels=None):
        """``q(z | x)`` as a ``somanet.distributions.Normal`` (batch shape ``(N, latent_dim)``)."""
        from ..distributions import Normal
        mu, logvar = self.encode(x, labels)
        return Normal(mu, (0.5 * logvar).exp(), validate_args=False)

    def decode(self, z, labels=None):
        """The decoder's output for latents ``z``: logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(z, labels) if self.num_classes else self.decoder(z)

    def forward(self, x, labels=None):
        mu, logvar = self.encode(x, labels)
        z = reparameterize(mu, logvar)
        return self.decode(z, labels), mu, logvar

    def _std(self, like):
        if self.likelihood != "gaussian":
            return None
        if self.gaussian_std is None:
            return self.log_std.exp()
        return float(self.gaussian_std)

    def reconstruction_nll(self, output, x):
        """``-log p(x | z)`` per example, summed over the data dimensions (nats)."""
        n = x.shape[0]
        x = x.reshape(output.shape)
        if self.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(output, x, reduction="none")
        else:
            std = self._std(output)
            z = (x - output) / std
            log_std = std.log() if isinstance(std, Tensor) else math.log(std)
            nll = 0.5 * z * z + log_std + 0.5 * math.log(2 * math.pi)
        return nll.reshape(n, -1).sum(dim=1)

    def loss_terms(self, x, labels=None):
        """``(recon, kl)`` per example (each ``(N,)``) for one posterior sample each."""
        output, mu, logvar = self(x, labels)
        return self.reconstruction_nll(output, x), gaussian_kl(mu, logvar)

    def negative_elbo(self, x, labels=None):
        """The negative ELBO of each example, ``recon + kl`` (``(N,)``, nats; one posterior sample)."""
        recon, kl = self.loss_terms(x, labels)
        return recon + kl

    def loss(self, x, labels=None):
        """The training objective and its parts, averaged over the batch: a dict with ``loss``
        (``recon + beta * kl``, a Tensor to backpropagate) and the floats ``recon``, ``kl`` and ``nelbo``
        (``recon + kl``)."""
        recon, kl = self.loss_terms(x, labels)
        recon_m, kl_m = recon.mean(), kl.mean()
        loss = recon_m + self.beta * kl_m if self.beta != 1.0 else recon_m + kl_m
        r, k = float(recon_m.array), float(kl_m.array)
        return {"loss": loss, "recon": r, "kl": k, "nelbo": r + k}

    # ----------------------------------------------------------------- generation
    def _mean(self, output):
        return output.sigmoid() if self.likelihood == "bernoulli" else output

    def sample(self, n, labels=None, generator=None):
        """``n`` new examples: the decoder's mean for latents drawn from the prior ``N(0, I)`` (pixel
        probabilities for the Bernoulli likelihood); ``labels`` pick the classes of a conditional model."""
        with grad_mode.no_grad():
            dtype = next(iter(self.parameters())).dtype
            z = randn(int(n), self.latent_dim, generator=generator, dtype=dtype)
            return self._mean(self.decode(z, labels))

    def reconstruct(self, x, labels=None):
        """The decoder's mean at the posterior mean of each example."""
        with grad_mode.no_grad():
            mu, _ = self.encode(x, labels)
            return self._mean(self.decode(mu, labels))

    # ----------------------------------------------------------------- Trainer steps
    def to_data(self, batch_x):
        """A dataset batch (normalised with ``input_mean`` / ``input_std``) as the data the decoder
        models, shaped ``(N, *output_shape)``."""
        x = batch_x * self.input_std + self.input_mean if (self.input_std, self.input_mean) != (1.0, 0.0) else batch_x
        if self.likelihood == "bernoulli":
            x = x.clamp(0.0, 1.0)
        return x.reshape(x.shape[0], *self.output_shape)

    def _split(self, batch):
        if isinstance(batch, (list, tuple)):
            x = batch[0]
            labels = batch[1] if len(batch) > 1 else None
        else:
            x, labels = batch, None
        if self.num_classes and labels is None:
            raise ValueError("VAE: a conditional model needs (inputs, labels) batches")
        return self.to_data(x), (labels if self.num_classes else None)

    def training_step(self, batch, batch_idx):
        """One batch for ``Trainer.fit``: the loss dict of ``loss`` (logged as ``loss``, ``recon``,
        ``kl`` and ``nelbo``)."""
        x, labels = self._split(batch)
        return self.loss(x, labels)

    def validation_step(self, batch, batch_idx):
        x, labels = self._split(batch)
        return self.loss(x, labels)

    def predict_step(self, batch, batch_idx):
        x, labels = self._split(batch)
        return self.reconstruct(x, labels)

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, likelihood={self.likelihood!r}, beta={self.beta}"


class ConditionalVAE(VAE):
    """A VAE conditioned on a class label: the encoder and decoder both see the label's one-hot
    vector (build them with ``num_classes``); ``forward``, ``loss`` and ``sample`` take ``labels``.
    Batches for the Trainer are ``(inputs, labels)``."""

    def __init__(self, encoder, decoder, **kwargs):
        if not (getattr(encoder, "num_classes", None) and getattr(decoder, "num_classes", None)):
            raise ValueError("ConditionalVAE: build the encoder and the decoder with num_classes")
        super().__init__(encoder, decoder, **kwargs)

    def sample(self, n, labels=None, generator=None):
        if labels is None:
            labels = arange(int(n)) % self.num_classes
        return super().sample(n, labels, generator)


def _build(encoder_cls, decoder_cls, input_shape, latent_dim, num_classes, enc_kw, dec_kw, vae_kw):
    shape = _as_shape(input_shape)
    encoder = encoder_cls(shape, latent_dim, num_classes=num_classes, **enc_kw)
    decoder = decoder_cls(latent_dim, shape, num_classes=num_classes, **dec_kw)
    cls = ConditionalVAE if num_classes else VAE
    return cls(encoder, decoder, **vae_kw)


def mlp_vae(input_shape=(1, 28, 28), latent_dim=16, hidden_sizes=(512, 256), num_classes=None, **kwargs):
    """A VAE with ``MLPEncoder(hidden_sizes)`` and ``MLPDecoder(reversed(hidden_sizes))``; a
    ``ConditionalVAE`` when ``num_classes`` is given. Other keyword arguments go to ``VAE``."""
    hidden = list(hidden_sizes)
    return _build(MLPEncoder, MLPDecoder, input_shape, latent_dim, num_classes, {"hidden_sizes": hidden},
                  {"hidden_sizes": hidden[::-1]}, kwargs)


def conv_vae(input_shape=(1, 28, 28), latent_dim=16, channels=(32, 64), hidden=256, num_classes=None, **kwargs):
    """A VAE with ``ConvEncoder(channels)`` and ``ConvDecoder(reversed(channels))``; a ``ConditionalVAE``
    when ``num_classes`` is given. Other keyword arguments go to ``VAE``."""
    c = list(channels)
    return _build(ConvEncoder, ConvDecoder, input_shape, latent_dim, num_classes, {"channels": c, "hidden": hidden},
                  {"channels": c[::-1], "hidden": hidden}, kwargs)
