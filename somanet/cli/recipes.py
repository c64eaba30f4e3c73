"""The recipe registry of the ``somanet`` command, and the model and dataset builders recipes name.

Adding a recipe is one call::

    from somanet.cli.recipes import register_recipe
    from somanet.train import Recipe

    register_recipe(Recipe("iris-mlp", "a small MLP on the iris flowers",
                           model={"name": "mlp", "hidden_sizes": [16]}, data={"name": "iris"}))

New model families register a builder with ``@register_model("name")`` (a function
``(kwargs, info) -> Module``, where ``info`` describes the data: input shape, number of classes), and
new datasets a ``DatasetSpec`` with ``register_dataset``: ``info(options)`` says what the data looks
like without loading it (enough to build the model, print a summary or prepare an input for
``predict``), ``load(options)`` returns the train / validation / test datasets.
"""
import dataclasses
import math
import os

import numpy as np

from ..train.recipe import ConfigError, Recipe

__all__ = ["DataInfo", "DatasetSpec", "register_model", "register_dataset", "register_recipe", "get_recipe",
           "recipe_names", "build_model", "data_info", "load_data", "DEFAULT_RECIPE", "UnknownRecipeError"]

DEFAULT_RECIPE = "digits-mlp"


class UnknownRecipeError(ConfigError):
    """The named recipe is not registered; the message lists the known ones."""


@dataclasses.dataclass
class DataInfo:
    """What a dataset's samples look like.

    ``input_shape``: one model input, without the batch; ``num_classes`` / ``classes`` (names) for
    classification; ``image_size`` ``(H, W)`` if the inputs are single-channel images that an image
    file can be turned into, with ``mean`` / ``std`` the normalisation applied after scaling pixels
    to [0, 1] (ink bright on dark, as in MNIST and the digits data).
    """

    input_shape: tuple
    num_classes: int = None
    classes: list = None
    image_size: tuple = None
    mean: float = 0.0
    std: float = 1.0
    task: str = "classification"


@dataclasses.dataclass
class DatasetSpec:
    """A registered dataset: ``info(options) -> DataInfo`` and ``load(options) -> (train, val, test)``
    (``test`` may be None). ``options`` is the run config's ``data`` table."""

    info: callable
    load: callable
    description: str = ""


_MODELS = {}
_DATASETS = {}
_RECIPES = {}


def register_model(name):
    """Decorator: register ``fn(kwargs, info) -> Module`` as the model builder called ``name``."""
    def deco(fn):
        _MODELS[name] = fn
        return fn
    return deco


def register_dataset(name, spec):
    """Register a ``DatasetSpec`` under ``name``."""
    _DATASETS[name] = spec
    return spec


def register_recipe(recipe):
    """Add a ``Recipe`` to the registry (replacing one of the same name)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe(): expected a Recipe, got {type(recipe).__name__}")
    _RECIPES[recipe.name] = recipe
    return recipe


def recipe_names():
    """The registered recipe names, sorted."""
    return sorted(_RECIPES)


def get_recipe(name):
    """The registered ``Recipe`` called ``name``; an unknown name lists the known ones."""
    if name not in _RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; known recipes: {', '.join(recipe_names())} "
                                 f"(see 'somanet recipes')")
    return _RECIPES[name]


def _spec(cfg):
    name = cfg["data"]["name"]
    if name not in _DATASETS:
        raise ConfigError(f"config 'data.name': unknown dataset {name!r}; known: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def _options(cfg):
    return {k: v for k, v in cfg["data"].items() if k != "name"}


def data_info(cfg):
    """The ``DataInfo`` of a run config's data (nothing is loaded)."""
    return _spec(cfg).info(_options(cfg))


def load_data(cfg):
    """``(train, val, test)`` datasets of a run config (``test`` may be None)."""
    return _spec(cfg).load(_options(cfg))


def build_model(cfg, info=None):
    """The model of a run config, shaped for its data."""
    name = cfg["model"]["name"]
    if name not in _MODELS:
        raise ConfigError(f"config 'model.name': unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    info = info or data_info(cfg)
    kwargs = {k: v for k, v in cfg["model"].items() if k != "name"}
    try:
        return _MODELS[name](kwargs, info)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config 'model' ({name}): {exc}") from None


# --------------------------------------------------------------------------- models
@register_model("mlp")
def _mlp(kwargs, info):
    from ..models import MLP
    kwargs.setdefault("in_features", int(math.prod(info.input_shape)))
    kwargs.setdefault("out_features", info.num_classes or 1)
    kwargs.setdefault("hidden_sizes", [128])
    return MLP(**kwargs)


@register_model("lenet")
def _lenet(kwargs, info):
    from .. import models
    cls = next((getattr(models, n) for n in ("LeNet5", "LeNet") if hasattr(models, n)), None)
    if cls is None:
        raise ValueError("the LeNet model is not available in somanet.models in this version")
    if info.num_classes is not None:
        kwargs.setdefault("num_classes", info.num_classes)
    return cls(**kwargs)


# --------------------------------------------------------------------------- datasets
def _check_fraction(options, key, default, owner):
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"config 'data.{key}' ({owner}) must be a number in (0, 1), got {value!r}")
    return float(value)


def _unknown(options, allowed, owner):
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ConfigError(f"config 'data' ({owner}): unknown option(s) {', '.join(extra)}; known: "
                          f"{', '.join(allowed) or 'none'}")


_DIGITS_OPTIONS = ("val_fraction", "flatten", "split_seed")


def _digits_info(options):
    _unknown(options, _DIGITS_OPTIONS, "digits")
    shape = (64,) if options.get("flatten", True) else (1, 8, 8)
    return DataInfo(shape, 10, [str(i) for i in range(10)], image_size=(8, 8))


def _digits_load(options):
    from ..data.datasets import Digits
    _digits_info(options)
    frac = _check_fraction(options, "val_fraction", 0.2, "digits")
    kw = dict(test_fraction=frac, seed=options.get("split_seed", 0), flatten=options.get("flatten", True))
    return Digits(train=True, **kw), Digits(train=False, **kw), None


register_dataset("digits", DatasetSpec(_digits_info, _digits_load,
                                       "scikit-learn's 1,797 8x8 handwritten digits (bundled, offline)"))

_SPIRALS_OPTIONS = ("n_per_class", "noise", "turns", "val_fraction", "split_seed")


def _spirals_info(options):
    _unknown(options, _SPIRALS_OPTIONS, "spirals")
    return DataInfo((2,), 2, ["0", "1"])


def _spirals_load(options):
    from ..data import Subset
    from ..data.datasets import Spirals, train_test_indices
    _spirals_info(options)
    frac = _check_fraction(options, "val_fraction", 0.2, "spirals")
    full = Spirals(n_per_class=options.get("n_per_class", 500), noise=options.get("noise", 0.1),
                   turns=options.get("turns", 1.5), seed=options.get("split_seed", 0))
    train_idx, val_idx = train_test_indices(len(full), frac, options.get("split_seed", 0), stratify=full.targets)
    return Subset(full, train_idx.tolist()), Subset(full, val_idx.tolist()), None


register_dataset("spirals", DatasetSpec(_spirals_info, _spirals_load,
                                        "two interleaved spirals in the plane (generated)"))

_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081
_MNIST_OPTIONS = ("data_dir", "limit", "val_size")


def _mnist_info(options):
    _unknown(options, _MNIST_OPTIONS, "mnist")
    return DataInfo((1, 28, 28), 10, [str(i) for i in range(10)], image_size=(28, 28), mean=_MNIST_MEAN,
                    std=_MNIST_STD)


def _mnist_arrays(data_dir, train):
    from ..data.datasets import MNIST
    ds = MNIST(root=data_dir, train=train)
    x = (ds.data.astype(np.float32) / np.float32(255.0) - np.float32(_MNIST_MEAN)) / np.float32(_MNIST_STD)
    return x[:, None, :, :], ds.targets


def _mnist_load(options):
    from ..data import TensorDataset
    _mnist_info(options)
    data_dir = options.get("data_dir")
    if not data_dir:
        raise ConfigError("the MNIST data needs a folder: pass --data-dir DIR (holding t10k-images-idx3-ubyte.gz "
                          "and t10k-labels-idx1-ubyte.gz, and optionally the train-* files)")
    if not os.path.isdir(data_dir):
        raise ConfigError(f"--data-dir {data_dir} does not exist or is not a folder")
    try:
        test_x, test_y = _mnist_arrays(data_dir, train=False)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read MNIST from {data_dir}: {exc}") from None
    val_size = int(options.get("val_size", 1000))
    try:
        train_x, train_y = _mnist_arrays(data_dir, train=True)
    except (FileNotFoundError, OSError, ValueError):
        # Only the official test set is there: images 0-7,999 train and validate, 8,000-9,999 test.
        train_x, train_y = test_x[:8000], test_y[:8000]
        test_x, test_y = test_x[8000:], test_y[8000:]
    val_x, val_y = train_x[-val_size:], train_y[-val_size:]
    train_x, train_y = train_x[:-val_size], train_y[:-val_size]
    limit = options.get("limit")
    if limit:
        train_x, train_y = train_x[:limit], train_y[:limit]
    return TensorDataset(train_x, train_y), TensorDataset(val_x, val_y), TensorDataset(test_x, test_y)


register_dataset("mnist", DatasetSpec(_mnist_info, _mnist_load, "MNIST handwritten digits read from --data-dir"))


# --------------------------------------------------------------------------- recipes
register_recipe(Recipe(
    "digits-mlp", "MLP (64-256-10, batch norm, dropout) on the bundled 8x8 digits; ~98 % validation accuracy "
                  "in seconds, offline",
    model={"name": "mlp", "hidden_sizes": [256], "dropout": 0.2, "batch_norm": True},
    data={"name": "digits", "val_fraction": 0.2},
    optimizer={"name": "adam", "lr": 2e-3},
    scheduler={"name": "cosine"},
    loss={"name": "cross_entropy", "label_smoothing": 0.1},
    epochs=20, batch_size=32, seed=0, metrics=("accuracy",),
    checkpoint={"monitor": "val_accuracy"}))

register_recipe(Recipe(
    "spirals-mlp", "MLP (2-64-64-2) separating two interleaved spirals (generated data)",
    model={"name": "mlp", "hidden_sizes": [64, 64], "activation": "tanh"},
    data={"name": "spirals", "n_per_class": 500, "noise": 0.1},
    optimizer={"name": "adam", "lr": 1e-2},
    scheduler={"name": "cosine"},
    epochs=60, batch_size=32, seed=0, metrics=("accuracy",),
    checkpoint={"monitor": "val_accuracy"}))

register_recipe(Recipe(
    "mnist-lenet", "LeNet-5 on MNIST read from --data-dir (official train set if present, else the test-set "
                   "split 0-7999 / 8000-9999)",
    model={"name": "lenet"},
    data={"name": "mnist", "val_size": 1000},
    optimizer={"name": "adam", "lr": 1e-3},
    scheduler=None,
    epochs=5, batch_size=64, seed=0, metrics=("accuracy",),
    checkpoint={"monitor": "val_accuracy"}))


# --------------------------------------------------------------------------- generative models
# The generative recipes train a model with its own training_step (see somanet.models.vae / gan): the
# run config's 'loss' and 'metrics' are not used by them. They log the model's objective as 'loss' (the
# negative ELBO of a VAE, the discriminator's loss of a GAN) and, through the GenerativeReport that
# build_callbacks adds, write samples/epoch-NNN.png, samples.png, quality.json and a quality section
# in summary.txt.
def _image_shape(info, owner):
    if info.image_size is None:
        raise ValueError(f"{owner} models images; this dataset's samples have shape {tuple(info.input_shape)}")
    channels = info.input_shape[0] if len(info.input_shape) == 3 else 1
    return (channels, *info.image_size)


@register_model("vae")
def _vae(kwargs, info):
    from ..models import conv_vae, mlp_vae
    architecture = kwargs.pop("architecture", "mlp")
    builders = {"mlp": mlp_vae, "conv": conv_vae}
    if architecture not in builders:
        raise ValueError(f"architecture must be 'mlp' or 'conv', got {architecture!r}")
    if kwargs.pop("conditional", False):
        kwargs["num_classes"] = info.num_classes
    kwargs.setdefault("input_shape", _image_shape(info, "the VAE"))
    kwargs.setdefault("input_mean", info.mean)
    kwargs.setdefault("input_std", info.std)
    return builders[architecture](**kwargs)


@register_model("gan")
def _gan(kwargs, info):
    from ..models import GAN, DCGANDiscriminator, DCGANGenerator, WGANCritic
    channels, height, width = _image_shape(info, "the GAN")
    if height != width:
        raise ValueError(f"the GAN models square images, got {height}x{width}")
    latent_dim = kwargs.pop("latent_dim", 100)
    base = kwargs.pop("base_channels", 64)
    num_classes = info.num_classes if kwargs.pop("conditional", False) else None
    critic = kwargs.pop("critic", "dcgan")
    spectral = kwargs.pop("spectral_norm", False)
    critic_norm = kwargs.pop("critic_norm", "layer")
    generator = DCGANGenerator(latent_dim, channels, height, base, num_classes)
    if critic == "dcgan":
        discriminator = DCGANDiscriminator(channels, height, base, num_classes, spectral_norm=spectral)
    elif critic == "wgan":
        discriminator = WGANCritic(channels, height, base, num_classes, norm=critic_norm)
    else:
        raise ValueError(f"critic must be 'dcgan' or 'wgan', got {critic!r}")
    kwargs.setdefault("input_mean", info.mean)
    kwargs.setdefault("input_std", info.std)
    return GAN(generator, discriminator, data_shape=(channels, height, width), **kwargs)


register_recipe(Recipe(
    "vae-digits", "VAE (MLP 64-256-8 latent, Bernoulli likelihood) on the bundled 8x8 digits; half a minute, "
                  "offline",
    model={"name": "vae", "architecture": "mlp", "latent_dim": 8, "hidden_sizes": [256]},
    data={"name": "digits", "val_fraction": 0.2, "flatten": False},
    optimizer={"name": "adam", "lr": 2e-3},
    loss="bce_with_logits", metrics=(), task="regression",
    epochs=30, batch_size=64, seed=0,
    checkpoint={"monitor": "val_loss"}))

register_recipe(Recipe(
    "vae-mnist", "convolutional VAE (16-d latent, Bernoulli likelihood) on MNIST from --data-dir; reports the "
                 "test negative ELBO (nats) and the MNIST-FID of its samples",
    model={"name": "vae", "architecture": "conv", "latent_dim": 16, "channels": [32, 64], "hidden": 256},
    data={"name": "mnist", "val_size": 1000},
    optimizer={"name": "adam", "lr": 1e-3},
    loss="bce_with_logits", metrics=(), task="regression",
    epochs=30, batch_size=128, seed=0,
    checkpoint={"monitor": "val_loss"}))

# What the MNIST GAN recipes share: the data, DCGAN's Adam settings, batch 64, no best-checkpoint monitor.
_MNIST_GAN = dict(data={"name": "mnist", "val_size": 1000},
                  optimizer={"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}, loss="bce_with_logits", metrics=(), task="regression", epochs=20, batch_size=64, seed=0,
                  checkpoint={"monitor": None})

register_recipe(Recipe(
    "dcgan-mnist", "DCGAN (non-saturating loss, averaged generator) on MNIST from --data-dir; reports the MNIST-FID "
                   "of its samples",
    model={"name": "gan", "latent_dim": 64, "base_channels": 32, "loss": "nonsaturating", "ema_decay": 0.999},
    **{**_MNIST_GAN, "epochs": 60}))

register_recipe(Recipe(
    "cgan-mnist", "class-conditional DCGAN on MNIST from --data-dir; one column of samples per class, MNIST-FID "
                  "and how often the classifier agrees with the requested class",
    model={"name": "gan", "latent_dim": 64, "base_channels": 32, "loss": "nonsaturating", "conditional": True},
    **_MNIST_GAN))

register_recipe(Recipe(
    "wgan-gp-mnist", "WGAN-GP (layer-norm critic, gradient penalty 10, 5 critic steps per generator step) on MNIST "
                     "from --data-dir; reports the MNIST-FID of its samples",
    model={"name": "gan", "latent_dim": 64, "base_channels": 32, "loss": "wasserstein", "critic": "wgan",
           "gp_weight": 10.0, "n_critic": 5},
    # The paper's Adam: lr 1e-4, betas (0, 0.9).
    **{**{k: v for k, v in _MNIST_GAN.items() if k != "loss"}, "optimizer": {"name": "adam", "lr": 1e-4,
                                                                              "betas": [0.0, 0.9]}, "epochs": 40}))


# --------------------------------------------------------------------------- transfer learning
# The MNIST-pretrained SmallCNN (somanet.models.small_cnn) fine-tuned to the bundled 8x8 digits, enlarged to
# MNIST's 28x28 layout. docs/transfer.md compares it with training from scratch and with a frozen body.
@register_model("mnist-cnn")
def _mnist_cnn(kwargs, info):
    from ..models.small_cnn import mnist_cnn
    from ..nn.utils.transfer import freeze
    pretrained = kwargs.pop("pretrained", True)
    freeze_up_to = kwargs.pop("freeze_up_to", None)
    if kwargs:
        raise ValueError(f"unknown option(s) {', '.join(sorted(kwargs))}; known: pretrained, freeze_up_to")
    # A new head for the new task: even with ten digit classes the MNIST head is not reused.
    model = mnist_cnn(pretrained=bool(pretrained), num_classes=info.num_classes or 10)
    if pretrained:
        model.fc.reset_parameters()
    if freeze_up_to:
        freeze(model, up_to=freeze_up_to)
    return model


_DIGITS28_OPTIONS = ("per_class", "split_seed")


def _digits28_info(options):
    from ..models.small_cnn import MNIST_MEAN, MNIST_STD
    _unknown(options, _DIGITS28_OPTIONS, "digits28")
    return DataInfo((1, 28, 28), 10, [str(i) for i in range(10)], image_size=(28, 28), mean=MNIST_MEAN,
                    std=MNIST_STD)


def _digits28_load(options):
    from ..data import TensorDataset
    from ..data.datasets.tabular import _sklearn_datasets
    from ..models.small_cnn import digits_to_mnist
    _digits28_info(options)
    per_class = options.get("per_class", 10)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or not 1 <= per_class <= 150:
        raise ConfigError(f"config 'data.per_class' (digits28) must be an integer in [1, 150], got {per_class!r}")
    digits = _sklearn_datasets("the digits28 dataset").load_digits()
    rng = np.random.default_rng(options.get("split_seed", 0))
    train = np.concatenate([rng.choice(np.flatnonzero(digits.target == c), per_class, replace=False)
                            for c in range(10)])
    rest = np.setdiff1d(np.arange(len(digits.target)), train)
    x, y = digits_to_mnist(digits.images), digits.target.astype(np.int64)
    return TensorDataset(x[train], y[train]), TensorDataset(x[rest], y[rest]), None


register_dataset("digits28", DatasetSpec(_digits28_info, _digits28_load,
                                         "the bundled 8x8 digits as MNIST-style 28x28 images, per_class labelled "
                                         "training digits per class, the rest for validation"))

register_recipe(Recipe(
    "transfer-digits", "CNN pretrained on MNIST (shipped) fine-tuned to the 8x8 digits with 10 labels per class; "
                       "95 % on the other 1,697 digits (--set model.pretrained=false, from scratch: 93 %)",
    model={"name": "mnist-cnn", "pretrained": True},
    data={"name": "digits28", "per_class": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    scheduler=None,
    epochs=60, batch_size=20, seed=0, metrics=("accuracy",),
    checkpoint={"monitor": "val_accuracy"}))


# --------------------------------------------------------------------------- diffusion models
# A DDPM (somanet.models.diffusion) with a class-conditional U-Net, trained with classifier-free guidance
# (10 % of the labels dropped) and an EMA of its weights; its own training_step runs the optimizer. The
# model table's 'report' options go to the DiffusionReport that build_callbacks adds (sample grids with
# DDIM and ancestral sampling, MNIST-FID for 28x28 images, in quality.json and summary.txt).
_UNET_KEYS = ("base_channels", "channel_mults", "num_res_blocks", "attention_levels", "num_heads", "groups", "dropout",
              "time_embed_dim")


@register_model("ddpm")
def _ddpm(kwargs, info):
    from ..models.diffusion import DDPM
    from ..models.unet import DiffusionUNet
    kwargs.pop("report", None)
    shape = _image_shape(info, "the DDPM")
    unet_kwargs = {k: kwargs.pop(k) for k in _UNET_KEYS if k in kwargs}
    num_classes = info.num_classes if kwargs.pop("conditional", True) else None
    unet = DiffusionUNet(shape[0], num_classes=num_classes, **unet_kwargs)
    kwargs.setdefault("input_mean", info.mean)
    kwargs.setdefault("input_std", info.std)
    return DDPM(unet, image_shape=shape, num_classes=num_classes, **kwargs)


register_recipe(Recipe(
    "ddpm-digits", "class-conditional DDPM (small U-Net, 1,000 steps) on the bundled 8x8 digits; DDIM and ancestral "
                   "sample grids in minutes, offline",
    model={"name": "ddpm", "base_channels": 32, "channel_mults": [1, 2], "attention_levels": [1],
           "num_timesteps": 1000, "schedule": "linear", "ema_decay": 0.995, "label_dropout": 0.1,
           "report": {"every_n_epochs": 10, "epoch_samples": 100, "grid_samples": 100, "ancestral_samples": 100}},
    data={"name": "digits", "val_fraction": 0.2, "flatten": False},
    optimizer={"name": "adam", "lr": 1e-3},
    loss="mse", metrics=(), task="regression",
    epochs=40, batch_size=64, seed=0,
    checkpoint={"monitor": None}))

register_recipe(Recipe(
    "ddpm-mnist", "class-conditional DDPM (U-Net 32-64-64 channels, attention at 7x7, 1,000 steps, EMA) on MNIST from "
                  "--data-dir; DDIM-50 and ancestral sample grids, MNIST-FID of 1,000 DDIM samples",
    model={"name": "ddpm", "base_channels": 32, "channel_mults": [1, 2, 2], "attention_levels": [2],
           "num_timesteps": 1000, "schedule": "linear", "ema_decay": 0.995, "label_dropout": 0.1,
           "report": {"every_n_epochs": 4, "epoch_samples": 40, "grid_samples": 100, "ancestral_samples": 40,
                      "fid_samples": 1000}},
    data={"name": "mnist", "val_size": 1000},
    optimizer={"name": "adam", "lr": 1e-3},
    scheduler={"name": "cosine"},
    loss="mse", metrics=(), task="regression",
    epochs=20, batch_size=64, seed=0,
    checkpoint={"monitor": None}))
from . import recipes_detection  # noqa: E402,F401  (object detection: shapes-detection)
from . import recipes_seq  # noqa: E402,F401  (translation and forecasting: translate-dates, sines-forecast)
from . import recipes_lm  # noqa: E402,F401  (language models: shakespeare-char)
from . import recipes_apps  # noqa: E402,F401  (segmentation and recommendation: shapes-segmentation, recsys-ncf)
