"""torchvision.models' builders on the somanet model zoo: ``alexnet``, ``resnet18`` ... ``resnet152``, ``vgg11``
... ``vgg19_bn`` (module and parameter names are torchvision's), and ``lenet5``.

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
from ...models.alexnet import AlexNet
from ...models.alexnet import alexnet as _alexnet
from ...models.lenet import LeNet5
from ...models.resnet import BasicBlock, Bottleneck, ResNet
from ...models.vgg import VGG

__all__ = ["AlexNet", "AlexNet_Weights", "alexnet",
           "ResNet", "BasicBlock", "Bottleneck", "VGG", "LeNet5", "WeightsEnum", "ResNet18_Weights",
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


def _weights_enum(name, *versions):
    """A ``WeightsEnum`` subclass called ``name`` with torchvision's ``versions`` and ``DEFAULT``, the last
    of them (a member with another's value is an alias of it, as in torchvision)."""
    members = {v: v for v in versions}
    members["DEFAULT"] = versions[-1]
    return WeightsEnum(name, members, module=__name__, qualname=name)


V1, V2 = "IMAGENET1K_V1", "IMAGENET1K_V2"
AlexNet_Weights = _weights_enum("AlexNet_Weights", V1)
ResNet18_Weights = _weights_enum("ResNet18_Weights", V1)
ResNet34_Weights = _weights_enum("ResNet34_Weights", V1)
ResNet50_Weights = _weights_enum("ResNet50_Weights", V1, V2)
ResNet101_Weights = _weights_enum("ResNet101_Weights", V1, V2)
ResNet152_Weights = _weights_enum("ResNet152_Weights", V1, V2)
VGG11_Weights = _weights_enum("VGG11_Weights", V1)
VGG11_BN_Weights = _weights_enum("VGG11_BN_Weights", V1)
VGG13_Weights = _weights_enum("VGG13_Weights", V1)
VGG13_BN_Weights = _weights_enum("VGG13_BN_Weights", V1)
VGG16_Weights = _weights_enum("VGG16_Weights", V1)
VGG16_BN_Weights = _weights_enum("VGG16_BN_Weights", V1)
VGG19_Weights = _weights_enum("VGG19_Weights", V1)
VGG19_BN_Weights = _weights_enum("VGG19_BN_Weights", V1)
del V1, V2


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


def _builder(name, build, weights_enum, doc):
    """A torchvision-style builder ``name(*, weights=None, progress=True, **kwargs)`` around ``build``."""
    def builder(*, weights=None, progress=True, **kwargs):
        return _build(build, name, weights_enum, weights, kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return builder


_NO_WEIGHTS = "``weights`` must be ``None``"
_RESNET = _NO_WEIGHTS + "; other keywords (``num_classes``...) go to ``ResNet``."
_VGG = _NO_WEIGHTS + "; other keywords (``num_classes``, ``dropout``...) go to ``VGG``."
_VGG_BN = _NO_WEIGHTS + "; other keywords go to ``VGG``."
alexnet = _builder("alexnet", _alexnet, AlexNet_Weights,
                   "AlexNet; " + _NO_WEIGHTS + "; other keywords (``num_classes``, ``dropout``) go to ``AlexNet``.")
resnet18 = _builder("resnet18", _resnet.resnet18, ResNet18_Weights, "ResNet-18; " + _RESNET)
resnet34 = _builder("resnet34", _resnet.resnet34, ResNet34_Weights, "ResNet-34; " + _RESNET)
resnet50 = _builder("resnet50", _resnet.resnet50, ResNet50_Weights, "ResNet-50; " + _RESNET)
resnet101 = _builder("resnet101", _resnet.resnet101, ResNet101_Weights, "ResNet-101; " + _RESNET)
resnet152 = _builder("resnet152", _resnet.resnet152, ResNet152_Weights, "ResNet-152; " + _RESNET)
vgg11 = _builder("vgg11", _vgg.vgg11, VGG11_Weights, "VGG-11; " + _VGG)
vgg11_bn = _builder("vgg11_bn", _vgg.vgg11_bn, VGG11_BN_Weights, "VGG-11 with batch norm; " + _VGG_BN)
vgg13 = _builder("vgg13", _vgg.vgg13, VGG13_Weights, "VGG-13; " + _VGG)
vgg13_bn = _builder("vgg13_bn", _vgg.vgg13_bn, VGG13_BN_Weights, "VGG-13 with batch norm; " + _VGG_BN)
vgg16 = _builder("vgg16", _vgg.vgg16, VGG16_Weights, "VGG-16; " + _VGG)
vgg16_bn = _builder("vgg16_bn", _vgg.vgg16_bn, VGG16_BN_Weights, "VGG-16 with batch norm; " + _VGG_BN)
vgg19 = _builder("vgg19", _vgg.vgg19, VGG19_Weights, "VGG-19; " + _VGG)
vgg19_bn = _builder("vgg19_bn", _vgg.vgg19_bn, VGG19_BN_Weights, "VGG-19 with batch norm; " + _VGG_BN)
lenet5 = _builder("lenet5", _lenet.LeNet5, None,
                  "``LeNet5`` for 28 x 28 images (somanet's; torchvision has none); " + _NO_WEIGHTS + ".")


_BUILDERS = {f.__name__: f for f in (alexnet,
                                     resnet18, resnet34, resnet50, resnet101, resnet152, vgg11, vgg11_bn, vgg13,
                                     vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, lenet5)}
_WEIGHTS = {"alexnet": AlexNet_Weights,
            "resnet18": ResNet18_Weights, "resnet34": ResNet34_Weights, "resnet50": ResNet50_Weights,
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
