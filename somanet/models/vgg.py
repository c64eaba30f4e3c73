"""VGG networks (Simonyan and Zisserman, 2014): configurations A, B, D and E (VGG-11/13/16/19), with or
without batch norm, with torchvision's module names so a torchvision ``state_dict`` loads as is.

The same classes serve small images: ``pool_size=1`` and ``hidden_features=512`` give the usual CIFAR
variant (five 2x2 max pools take 32x32 to 1x1, then a 512-wide classifier).
"""
from .. import nn
from ..nn import init

__all__ = ["VGG", "make_vgg_layers", "VGG_CONFIGS", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
           "vgg16_bn", "vgg19", "vgg19_bn"]

#: Output channels of each 3x3 convolution, "M" for a 2x2 max pool (the paper's columns A, B, D, E).
VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_vgg_layers(cfg, batch_norm=False, in_channels=3):
    """The ``features`` stack for a VGG configuration: 3x3 convolutions (padding 1), each followed by
    ``BatchNorm2d`` when ``batch_norm`` and a ReLU, with 2x2 max pools where ``cfg`` says ``"M"``.

    >>> make_vgg_layers([64, "M"], batch_norm=True)  # Conv2d, BatchNorm2d, ReLU, MaxPool2d
    """
    layers = []
    channels = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"make_vgg_layers: expected a positive channel count or 'M', got {v!r}")
        layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``features`` (convolutions and max pools) -> ``avgpool`` (adaptive, to ``pool_size`` squared)
    -> flatten -> ``classifier``: ``Linear(C * pool_size**2, hidden_features)`` -> ReLU -> Dropout ->
    ``Linear(hidden_features, hidden_features)`` -> ReLU -> Dropout -> ``Linear(hidden_features,
    num_classes)``. ``(N, in_channels, H, W) -> (N, num_classes)``; H and W must survive the max pools
    (at least 32 for the standard configurations).

    Weights are initialised as torchvision does: He-normal (fan_out) convolutions with zero bias,
    unit/zero batch norm, N(0, 0.01) linear layers with zero bias.

    >>> model = vgg11_bn(num_classes=10, pool_size=1, hidden_features=512)  # CIFAR-10 variant
    >>> model(somanet.randn(8, 3, 32, 32)).shape
    (8, 10)
    """

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5, pool_size=7,
                 hidden_features=4096):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"VGG: dropout must be in [0, 1), got {dropout}")
        channels = _last_channels(features)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden_features), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden_features, num_classes),
        )
        self.num_classes = num_classes
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self):
        """torchvision's initialisation (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0, 0.01)
                init.constant_(m.bias, 0)

    def forward(self, x):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4:
            raise ValueError(f"VGG: expected input of shape (N, C, H, W), got {shape}")
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _last_channels(features):
    for m in reversed(list(features.modules())):
        if isinstance(m, nn.Conv2d):
            return m.out_channels
    raise ValueError("VGG: features contain no Conv2d, so the classifier's input width is unknown")


def _vgg(depth, batch_norm, num_classes, in_channels, **kwargs):
    return VGG(make_vgg_layers(VGG_CONFIGS[depth], batch_norm, in_channels), num_classes=num_classes, **kwargs)


def vgg11(num_classes=1000, in_channels=3, **kwargs):
    """VGG-11 (configuration A) without batch norm; ``kwargs`` go to ``VGG`` (``dropout``, ``pool_size``,
    ``hidden_features``, ``init_weights``)."""
    return _vgg(11, False, num_classes, in_channels, **kwargs)


def vgg11_bn(num_classes=1000, in_channels=3, **kwargs):
    """VGG-11 with batch norm after every convolution."""
    return _vgg(11, True, num_classes, in_channels, **kwargs)


def vgg13(num_classes=1000, in_channels=3, **kwargs):
    """VGG-13 (configuration B) without batch norm."""
    return _vgg(13, False, num_classes, in_channels, **kwargs)


def vgg13_bn(num_classes=1000, in_channels=3, **kwargs):
    """VGG-13 with batch norm."""
    return _vgg(13, True, num_classes, in_channels, **kwargs)


def vgg16(num_classes=1000, in_channels=3, **kwargs):
    """VGG-16 (configuration D) without batch norm."""
    return _vgg(16, False, num_classes, in_channels, **kwargs)


def vgg16_bn(num_classes=1000, in_channels=3, **kwargs):
    """VGG-16 with batch norm."""
    return _vgg(16, True, num_classes, in_channels, **kwargs)


def vgg19(num_classes=1000, in_channels=3, **kwargs):
    """VGG-19 (configuration E) without batch norm."""
    return _vgg(19, False, num_classes, in_channels, **kwargs)


def vgg19_bn(num_classes=1000, in_channels=3, **kwargs):
    """VGG-19 with batch norm."""
    return _vgg(19, True, num_classes, in_channels, **kwargs)
