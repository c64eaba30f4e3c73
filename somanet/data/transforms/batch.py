"""Batch transforms that mix pairs of samples: ``MixUp`` and ``CutMix`` (torchvision.transforms.v2).

They take a batch ``(images (N, C, H, W), labels)`` and return mixed images and soft labels
``(N, num_classes)`` float32. Each image is mixed with its neighbour in the batch (the batch rolled
by one), with one mixing weight per call, as torchvision does. Use them after collation, e.g.
``collate_fn=lambda b: cutmix(*default_collate(b))``.
"""
import math

import numpy as np

from ...autograd.tensor import Tensor
from ...random import numpy_rng
from .functional import _unwrap, _wrap

__all__ = ["MixUp", "CutMix"]


class _Mix:
    def __init__(self, *, alpha=1.0, num_classes=None, generator=None):
        if alpha <= 0:
            raise ValueError(f"{type(self).__name__}: alpha should be > 0, got {alpha}")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes should be >= 1, got {num_classes}")
        self.alpha = float(alpha)
        self.num_classes = num_classes
        self.generator = generator

    def _inputs(self, images, labels):
        name = type(self).__name__
        x, x_tensor = _unwrap(images, name)
        if x.ndim != 4:
            raise ValueError(f"{name}: expected images (N, C, H, W), got shape {x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"{name}: expected float images, got dtype {x.dtype}")
        y, y_tensor = _unwrap(labels, name)
        if y.ndim == 1:
            if self.num_classes is None:
                raise ValueError(f"{name}: num_classes is needed to one-hot encode integer labels of shape {y.shape}")
            if y.dtype.kind not in "iu" or y.min(initial=0) < 0 or y.max(initial=0) >= self.num_classes:
                raise ValueError(f"{name}: labels should be integers in [0, {self.num_classes}), got dtype {y.dtype}")
            y = np.eye(self.num_classes, dtype=np.float32)[y]
        elif y.ndim == 2:
            y = y.astype(np.float32, copy=False)
        else:
            raise ValueError(f"{name}: labels should be (N,) class indices or (N, num_classes), got shape {y.shape}")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} images but {y.shape[0]} labels")
        return x, y, x_tensor, y_tensor

    def _lam(self):
        return float(numpy_rng(self.generator).beta(self.alpha, self.alpha))

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_Mix):
    """MixUp (Zhang et al., 2018): ``lam * x + (1 - lam) * x_rolled``, labels alike, ``lam ~ Beta(alpha, alpha)``.

    Args:
        alpha: Beta distribution parameter.
        num_classes: classes for one-hot encoding (not needed when labels are already ``(N, K)``).
        generator: a ``somanet.Generator``; the default generator if ``None``.

    Call: ``images, labels = mixup(images (N, C, H, W), labels (N,) or (N, K))``.
    """

    def __call__(self, images, labels):
        x, y, x_tensor, y_tensor = self._inputs(images, labels)
        lam = self._lam()
        out = np.roll(x, 1, axis=0) * (1.0 - lam) + x * lam
        mixed = np.roll(y, 1, axis=0) * (1.0 - lam) + y * lam
        return _wrap(out.astype(x.dtype, copy=False), x_tensor), _wrap(mixed.astype(np.float32), y_tensor)


class CutMix(_Mix):
    """CutMix (Yun et al., 2019): paste a box from the neighbouring image; labels weighted by area.

    The box is centred at a uniform random pixel, with sides ``sqrt(1 - lam)`` of the image's
    (``lam ~ Beta(alpha, alpha)``), clipped to the image; the label weight is the area that stays.

    Call: ``images, labels = cutmix(images (N, C, H, W), labels (N,) or (N, K))``.
    """

    def __call__(self, images, labels):
        x, y, x_tensor, y_tensor = self._inputs(images, labels)
        lam = self._lam()
        h, w = x.shape[2:]
        rng = numpy_rng(self.generator)
        rx, ry = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = 0.5 * math.sqrt(1.0 - lam)
        rw, rh = int(r * w), int(r * h)
        x1, y1 = max(rx - rw, 0), max(ry - rh, 0)
        x2, y2 = min(rx + rw, w), min(ry + rh, h)
        out = x.copy()
        out[:, :, y1:y2, x1:x2] = np.roll(x, 1, axis=0)[:, :, y1:y2, x1:x2]
        lam_adjusted = 1.0 - (x2 - x1) * (y2 - y1) / (w * h)
        mixed = np.roll(y, 1, axis=0) * (1.0 - lam_adjusted) + y * lam_adjusted
        self.last_box = (x1, y1, x2, y2)
        return _wrap(out, x_tensor), _wrap(mixed.astype(np.float32), y_tensor)
