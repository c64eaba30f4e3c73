"""``SmallCNN``: a three-block convolutional network for small grey images, shipped pretrained on MNIST so
that transfer learning can be tried offline (``mnist_cnn(pretrained=True)``).

The weights (``weights/mnist_cnn.safetensors``, 100 KB) were trained by somanet on MNIST images 0-6,999
of the official test file (7,000-7,999 validated, 8,000-9,999 only scored); ``examples/transfer_digits.py``
remakes them. ``digits_to_mnist`` turns scikit-learn's 8x8 digits into MNIST-like 28x28 inputs.
"""
import os

import numpy as np

from .. import nn

__all__ = ["SmallCNN", "mnist_cnn", "digits_to_mnist", "MNIST_MEAN", "MNIST_STD", "MNIST_CNN_WEIGHTS"]

#: MNIST's pixel mean and standard deviation (pixels scaled to [0, 1]); the pretrained weights expect
#: inputs normalised with them.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: Where the pretrained weights live inside the package.
MNIST_CNN_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "mnist_cnn.safetensors")


def _block(cin, cout, pool):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """``block1`` (conv 3x3 to ``width``, batch norm, ReLU, 2x2 max pool) -> ``block2`` (to 2 * width, pool)
    -> ``block3`` (to 4 * width) -> ``pool`` (global average) -> ``fc``.

    ``(N, in_channels, H, W) -> (N, num_classes)``; any H, W of at least 4 (the global pool makes the head
    independent of the image size). 23 k parameters with the default width 16.

    >>> SmallCNN()(somanet.randn(2, 1, 28, 28)).shape
    (2, 10)
    """

    def __init__(self, num_classes=10, in_channels=1, width=16):
        super().__init__()
        self.block1 = _block(in_channels, width, pool=True)
        self.block2 = _block(width, 2 * width, pool=True)
        self.block3 = _block(2 * width, 4 * width, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        self.num_classes, self.in_channels, self.width = num_classes, in_channels, width

    def features(self, x):
        """The pooled features (N, 4 * width) the head reads."""
        return self.pool(self.block3(self.block2(self.block1(x)))).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def mnist_cnn(pretrained=False, num_classes=10, weights=None):
    """A ``SmallCNN`` for 28x28 MNIST-normalised images; ``pretrained=True`` loads the shipped MNIST weights.

    With ``num_classes`` other than 10 the convolutional blocks are loaded and ``fc`` keeps its fresh
    initialisation (a new head for the new task). ``weights`` names another ``.safetensors`` file.
    Reading the weights needs the safetensors package (``pip install 'somanet[text]'`` or ``[train]``).
    """
    model = SmallCNN(num_classes=num_classes)
    if pretrained or weights is not None:
        from .pretrained import read_state_dict
        path = weights or MNIST_CNN_WEIGHTS
        if not os.path.isfile(path):
            raise FileNotFoundError(f"mnist_cnn(): the weights file {path} is missing (reinstall somanet, or remake "
                                    f"it with examples/transfer_digits.py pretrain)")
        state = read_state_dict(path)
        if num_classes != 10:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("fc.") for k in missing):
                raise RuntimeError(f"mnist_cnn(): {path} does not fit SmallCNN (missing {missing}, unexpected "
                                   f"{unexpected})")
        else:
            model.load_state_dict(state)
    return model


def _resize_bilinear(images, size):
    """(N, H, W) -> (N, size, size), bilinear with half-pixel centres (PyTorch's align_corners=False)."""
    n, h, w = images.shape

    def weights(src, dst):
        pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, src - 1)
        frac = (pos - lo).astype(np.float32)
        m = np.zeros((dst, src), np.float32)
        m[np.arange(dst), lo] += 1 - frac
        m[np.arange(dst), hi] += frac
        return m

    rows, cols = weights(h, size), weights(w, size)
    return np.einsum("ih,nhw,jw->nij", rows, images.astype(np.float32), cols, optimize=True)


def digits_to_mnist(images, box=20, size=28):
    """scikit-learn's 8x8 digits (values 0-16, shape (N, 64) or (N, 8, 8)) as MNIST-style inputs
    (N, 1, 28, 28) float32: scaled to [0, 1], enlarged to a ``box`` x ``box`` digit centred in a
    ``size`` x ``size`` frame as MNIST's digits are, then normalised with MNIST's mean and std."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 64:
        arr = arr.reshape(-1, 8, 8)
    if arr.ndim != 3:
        raise ValueError(f"digits_to_mnist(): expected (N, 64) or (N, H, W) images, got shape {arr.shape}")
    if not 0 < box <= size:
        raise ValueError(f"digits_to_mnist(): need 0 < box <= size, got box={box}, size={size}")
    scaled = np.clip(arr / 16.0, 0.0, 1.0)
    big = _resize_bilinear(scaled, box)
    out = np.zeros((arr.shape[0], size, size), np.float32)
    lo = (size - box) // 2
    out[:, lo:lo + box, lo:lo + box] = big
    return ((out - MNIST_MEAN) / MNIST_STD).astype(np.float32)[:, None]
