"""The base of the torchvision-style datasets, and how their samples become images."""
import importlib.util
import os

import numpy as np

from ...autograd.tensor import Tensor
from ...data.dataset import Dataset
from ...data.transforms._pil import require_pillow

__all__ = ["VisionDataset", "StandardTransform"]

_HAVE_PILLOW = None


def have_pillow():
    """Whether Pillow can be imported (looked up once)."""
    global _HAVE_PILLOW
    if _HAVE_PILLOW is None:
        _HAVE_PILLOW = importlib.util.find_spec("PIL") is not None
    return _HAVE_PILLOW


def to_image(arr):
    """A uint8 ``(H, W)`` or ``(H, W, C)`` array as a PIL image when Pillow is installed, else the array."""
    if not have_pillow():
        return arr
    Image = require_pillow("returning PIL images from a dataset")
    arr = np.ascontiguousarray(arr)
    mode = "L" if arr.ndim == 2 else {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), arr.tobytes())


def as_array(x):
    """The NumPy array behind ``x`` (a somanet Tensor, an ndarray or anything ``np.asarray`` takes)."""
    return x.array if isinstance(x, Tensor) else np.asarray(x)


class StandardTransform:
    """Applies ``transform`` to the input and ``target_transform`` to the target of a sample."""

    def __init__(self, transform=None, target_transform=None):
        self.transform = transform
        self.target_transform = target_transform

    def __call__(self, input, target):
        if self.transform is not None:
            input = self.transform(input)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return input, target

    def __repr__(self):
        lines = [type(self).__name__]
        if self.transform is not None:
            lines.append(f"Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"Target transform: {self.target_transform!r}")
        return "\n".join(lines)


class VisionDataset(Dataset):
    """Base class of image datasets, with torchvision's arguments.

    Args:
        root: the dataset's folder.
        transforms: a function of ``(image, target)`` returning both (instead of the two below).
        transform: applied to each image.
        target_transform: applied to each target.

    Subclasses implement ``__getitem__`` and ``__len__`` and may add lines to the repr with ``extra_repr``.
    """

    def __init__(self, root=None, transforms=None, transform=None, target_transform=None):
        self._set_transforms(transforms, transform, target_transform)
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else None

    def _set_transforms(self, transforms, transform, target_transform):
        separate = transform is not None or target_transform is not None
        if transforms is not None and separate:
            raise ValueError(f"{type(self).__name__}: pass either transforms or transform/target_transform, not both")
        self.transform = transform
        self.target_transform = target_transform
        self.transforms = StandardTransform(transform, target_transform) if separate else transforms

    def _transformed(self, image, target):
        # ``transform`` and ``target_transform`` are read here, not when the dataset was built, so
        # assigning ``dataset.transform = ...`` later takes effect, as in torchvision.
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"Number of datapoints: {len(self)}"]
        if getattr(self, "root", None) is not None:
            lines.append(f"Root location: {self.root}")
        lines += [line for line in self.extra_repr().splitlines() if line]
        if getattr(self, "transforms", None) is not None:
            lines += repr(self.transforms).splitlines()
        return "\n".join([f"Dataset {type(self).__name__}"] + ["    " + line for line in lines])
