"""torchvision.models' builders on the somanet model zoo: ``resnet18`` ... ``resnet152``, ``vgg11`` ...
``vgg19_bn`` (module and parameter names are torchvision's), and ``lenet5``.

Each builder takes torchvision's keywords: ``weights`` (``None`` for a random initialisation),
``progress``, the older ``pretrained`` flag, and the model's own (``num_classes``...). somanet ships no
pretrained weights and downloads none, so asking for any gives an error that says how to load a state
dict you have instead (``somanet.load`` reads files written by ``torch.save``)::

    model = models.resnet18(weights=None)
    model.load_state_dict(somanet.load("resnet18.pth"))
"""
import enum

from ...models import lenet as _lenet
from ...models import resnet as _resnet
from ...models import vgg as _vgg
from ...models.lenet import LeNet5
from ...models.resnet import BasicBlock, Bottleneck, ResNet
from ...models.vgg import VGG

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "VGG", "LeNet5", "WeightsEnum", "ResNet18_Weights",
           "ResNet34_Weights", "ResNet50_Weights", "ResNet101_Weights", "ResNet152_Weights", "VGG11_Weights",
           "VGG11_BN_Weights", "VGG13_Weights", "VGG13_BN_Weights", "VGG16_Weights", "VGG16_BN_Weights",
           "VGG19_Weights", "VGG19_BN_Weights", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "lenet5",
           "list_models", "get_model", "get_model_weights", "get_weight"]


class WeightsEnum(enum.Enum):
    """torchvision's names of pretrained weights. somanet has none of them: a builder given one raises
    an error saying how to load a state dict instead."""

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"

    __str__ = __repr__


# DEFAULT has the value of another member, which makes it an alias of that member, as in torchvision.
class ResNet18_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class ResNet34_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class ResNet50_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    IMAGENET1K_V2 = "IMAGENET1K_V2"
    DEFAULT = "IMAGENET1K_V2"


class ResNet101_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    IMAGENET1K_V2 = "IMAGENET1K_V2"
    DEFAULT = "IMAGENET1K_V2"


class ResNet152_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    IMAGENET1K_V2 = "IMAGENET1K_V2"
    DEFAULT = "IMAGENET1K_V2"


class VGG11_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG11_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG13_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG13_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG16_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG16_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG19_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


class VGG19_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "IMAGENET1K_V1"


def _build(build, name, weights_enum, weights, kwargs):
    """``build(**kwargs)`` once ``weights`` (and the older ``pretrained`` flag) are known to ask for none."""
    if "pretrained" in kwargs:
        pretrained = kwargs.pop("pretrained")
        if weights is not None and pretrained:
            raise ValueError(f"{name}: pass weights= or the older pretrained=, not both")
        if pretrained:  # torchvision maps the old flag to the first ImageNet weights
            weights = "IMAGENET1K_V1"
    if weights is not None:
        if isinstance(weights, str) and weights_enum is not None:
            if weights not in weights_enum.__members__:
                raise ValueError(f"{name}: unknown weights {weights!r}; torchvision's names for this model are "
                                 f"{list(weights_enum.__members__)}, and somanet ships none of them")
            weights = weights_enum[weights]
        shown = weights if isinstance(weights, WeightsEnum) else repr(weights)
        raise RuntimeError(
            f"{name}: weights={shown} cannot be loaded: somanet ships no pretrained weights and downloads none. "
            f"Build the model with weights=None and load a state dict you have, e.g. "
            f"model = {name}(weights=None); model.load_state_dict(somanet.load('{name}.pth')) (somanet.load "
            f"reads files written by torch.save, and the parameter names are torchvision's; "
            f"somanet.models.load_weights(model, path) also maps Hugging Face names).")
    return build(**kwargs)


def resnet18(*, weights=None, progress=True, **kwargs):
    """ResNet-18; ``weights`` must be ``None``; other keywords (``num_classes``...) go to ``ResNet``."""
    return _build(_resnet.resnet18, "resnet18", ResNet18_Weights, weights, kwargs)


def resnet34(*, weights=None, progress=True, **kwargs):
    """ResNet-34; ``weights`` must be ``None``; other keywords (``num_classes``...) go to ``ResNet``."""
    return _build(_resnet.resnet34, "resnet34", ResNet34_Weights, weights, kwargs)


def resnet50(*, weights=None, progress=True, **kwargs):
    """ResNet-50; ``weights`` must be ``None``; other keywords (``num_classes``...) go to ``ResNet``."""
    return _build(_resnet.resnet50, "resnet50", ResNet50_Weights, weights, kwargs)


def resnet101(*, weights=None, progress=True, **kwargs):
    """ResNet-101; ``weights`` must be ``None``; other keywords (``num_classes``...) go to ``ResNet``."""
    return _build(_resnet.resnet101, "resnet101", ResNet101_Weights, weights, kwargs)


def resnet152(*, weights=None, progress=True, **kwargs):
    """ResNet-152; ``weights`` must be ``None``; other keywords (``num_classes``...) go to ``ResNet``."""
    return _build(_resnet.resnet152, "resnet152", ResNet152_Weights, weights, kwargs)


def vgg11(*, weights=None, progress=True, **kwargs):
    """VGG-11; ``weights`` must be ``None``; other keywords (``num_classes``, ``dropout``...) go to ``VGG``."""
    return _build(_vgg.vgg11, "vgg11", VGG11_Weights, weights, kwargs)


def vgg11_bn(*, weights=None, progress=True, **kwargs):
    """VGG-11 with batch norm; ``weights`` must be ``None``; other keywords go to ``VGG``."""
    return _build(_vgg.vgg11_bn, "vgg11_bn", VGG11_BN_Weights, weights, kwargs)


def vgg13(*, weights=None, progress=True, **kwargs):
    """VGG-13; ``weights`` must be ``None``; other keywords (``num_classes``, ``dropout``...) go to ``VGG``."""
    return _build(_vgg.vgg13, "vgg13", VGG13_Weights, weights, kwargs)


def vgg13_bn(*, weights=None, progress=True, **kwargs):
    """VGG-13 with batch norm; ``weights`` must be ``None``; other keywords go to ``VGG``."""
    return _build(_vgg.vgg13_bn, "vgg13_bn", VGG13_BN_Weights, weights, kwargs)


def vgg16(*, weights=None, progress=True, **kwargs):
    """VGG-16; ``weights`` must be ``None``; other keywords (``num_classes``, ``dropout``...) go to ``VGG``."""
    return _build(_vgg.vgg16, "vgg16", VGG16_Weights, weights, kwargs)


def vgg16_bn(*, weights=None, progress=True, **kwargs):
    """VGG-16 with batch norm; ``weights`` must be ``None``; other keywords go to ``VGG``."""
    return _build(_vgg.vgg16_bn, "vgg16_bn", VGG16_BN_Weights, weights, kwargs)


def vgg19(*, weights=None, progress=True, **kwargs):
    """VGG-19; ``weights`` must be ``None``; other keywords (``num_classes``, ``dropout``...) go to ``VGG``."""
    return _build(_vgg.vgg19, "vgg19", VGG19_Weights, weights, kwargs)


def vgg19_bn(*, weights=None, progress=True, **kwargs):
    """VGG-19 with batch norm; ``weights`` must be ``None``; other keywords go to ``VGG``."""
    return _build(_vgg.vgg19_bn, "vgg19_bn", VGG19_BN_Weights, weights, kwargs)


def lenet5(*, weights=None, progress=True, **kwargs):
    """``LeNet5`` for 28 x 28 images (somanet's; torchvision has none); ``weights`` must be ``None``."""
    return _build(_lenet.LeNet5, "lenet5", None, weights, kwargs)


_BUILDERS = {f.__name__: f for f in (resnet18, resnet34, resnet50, resnet101, resnet152, vgg11, vgg11_bn, vgg13,
                                     vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, lenet5)}
_WEIGHTS = {"resnet18": ResNet18_Weights, "resnet34": ResNet34_Weights, "resnet50": ResNet50_Weights,
            "resnet101": ResNet101_Weights, "resnet152": ResNet152_Weights, "vgg11": VGG11_Weights,
            "vgg11_bn": VGG11_BN_Weights, "vgg13": VGG13_Weights, "vgg13_bn": VGG13_BN_Weights,
            "vgg16": VGG16_Weights, "vgg16_bn": VGG16_BN_Weights, "vgg19": VGG19_Weights,
            "vgg19_bn": VGG19_BN_Weights}


def list_models():
    """The names of the builders here, sorted."""
    return sorted(_BUILDERS)


def get_model(name, **config):
    """Build the model called ``name`` (see ``list_models``) with the builder's keywords."""
    try:
        builder = _BUILDERS[name.lower()]
    except KeyError:
        raise ValueError(f"get_model: unknown model {name!r}; available: {list_models()}") from None
    return builder(**config)


def get_model_weights(name):
    """The weights enum of model ``name`` (a builder or its name)."""
    name = getattr(name, "__name__", name)
    if name not in _WEIGHTS:
        raise ValueError(f"get_model_weights: no weights enum for {name!r}")
    return _WEIGHTS[name]


def get_weight(name):
    """A weights member by its full name, e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``."""
    enum_name, _, member = name.partition(".")
    for weights_enum in _WEIGHTS.values():
        if weights_enum.__name__ == enum_name and member in weights_enum.__members__:
            return weights_enum[member]
    raise ValueError(f"get_weight: unknown weights {name!r}")
