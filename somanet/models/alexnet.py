"""AlexNet (Krizhevsky et al., 2012) in torchvision's single-tower layout, so a torchvision
``state_dict`` loads as is."""
from .. import nn
from ..ops.shape import flatten

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """AlexNet as torchvision builds it.

    ``features`` (indices as in torchvision): 0 ``Conv2d(in_channels, 64, 11, stride=4, padding=2)``,
    1 ReLU, 2 ``MaxPool2d(3, 2)``, 3 ``Conv2d(64, 192, 5, padding=2)``, 4 ReLU, 5 ``MaxPool2d(3, 2)``,
    6 ``Conv2d(192, 384, 3, padding=1)``, 7 ReLU, 8 ``Conv2d(384, 256, 3, padding=1)``, 9 ReLU,
    10 ``Conv2d(256, 256, 3, padding=1)``, 11 ReLU, 12 ``MaxPool2d(3, 2)``; ``avgpool``
    ``AdaptiveAvgPool2d((pool_size, pool_size))`` (6); flatten; ``classifier``: 0 Dropout, 1
    ``Linear(256 * 6 * 6, hidden_features)`` (4096), 2 ReLU, 3 Dropout, 4 ``Linear(hidden_features,
    hidden_features)``, 5 ReLU, 6 ``Linear(hidden_features, num_classes)``.

    ``(N, in_channels, H, W) -> (N, num_classes)``; H and W of at least 63 survive the strided stem and
    the three max pools (224 is the usual size). ``hidden_features`` and ``pool_size`` shrink the
    classifier for small experiments; the defaults are torchvision's. Weights start from PyTorch's default
    initialisation of each layer, as in torchvision.

    >>> model = AlexNet(num_classes=10)
    >>> model(somanet.randn(2, 3, 224, 224)).shape
    (2, 10)
    """

    def __init__(self, num_classes=1000, dropout=0.5, in_channels=3, hidden_features=4096, pool_size=6):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * pool_size * pool_size, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, num_classes),
        )

    def forward(self, x):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4 or min(shape[2:]) < 63:
            raise ValueError(f"AlexNet: expected input of shape (N, C, H, W) with H, W >= 63, got {shape}")
        x = self.avgpool(self.features(x))
        return self.classifier(flatten(x, 1))


def alexnet(num_classes=1000, **kwargs):
    """torchvision's ``alexnet()``: ``AlexNet(num_classes, **kwargs)`` (no pretrained weights are bundled;
    load a torchvision ``state_dict`` with ``load_state_dict``)."""
    return AlexNet(num_classes=num_classes, **kwargs)
