"""``LeNet5``: the classic small convolutional network for 28x28 digit images, in its modern form."""
from .. import nn

__all__ = ["LeNet5"]


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, for ``(N, in_channels, 28, 28)`` images.

    ``features``: ``Conv2d(in_channels, 6, 5, padding=2)`` -> ReLU -> ``MaxPool2d(2)`` ->
    ``Conv2d(6, 16, 5)`` -> ReLU -> ``MaxPool2d(2)`` gives ``(N, 16, 5, 5)``; ``classifier``: ``Flatten``
    -> ``Linear(400, 120)`` -> ReLU -> ``Linear(120, 84)`` -> ReLU -> (``Dropout(dropout)`` when
    ``dropout > 0``) -> ``Linear(84, num_classes)`` gives logits ``(N, num_classes)``.
    The padding of the first convolution lets 28x28 MNIST images stand in for the original 32x32 input.

    >>> model = LeNet5(num_classes=10)
    >>> model(somanet.randn(64, 1, 28, 28)).shape
    (64, 10)
    """

    def __init__(self, num_classes=10, in_channels=1, dropout=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        )
        head = [nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(84, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4 or shape[2:] != (28, 28):
            raise ValueError(f"LeNet5: expected input of shape (N, C, 28, 28), got {shape}")
        return self.classifier(self.features(x))
