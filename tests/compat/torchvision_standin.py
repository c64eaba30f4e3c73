"""A stand-in for the few torchvision pieces the compat programs use, in plain PyTorch, NumPy and Pillow.

torchvision cannot be installed beside the PyTorch build these tests use, so the reference run of a
program that imports torchvision gets this instead (the real torchvision is used when it is installed).
Each piece follows torchvision's documented behaviour: MNIST's ``data``/``targets`` types and PIL
samples, FakeData drawing each sample from PyTorch's generator seeded with its index, ToTensor's
division by 255, Normalize's ``(x - mean) / std``, RandomCrop's zero padding and ``torch.randint``
offsets, RandomHorizontalFlip's ``torch.rand(1) < p``, and make_grid's tiling.
"""
import gzip
import math
import os
import types

import numpy as np
import torch
from PIL import Image


# ----------------------------------------------------------------------------- transforms
class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class ToTensor:
    def __call__(self, pic):
        arr = np.array(pic, dtype=np.uint8, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous().float().div(255)


class ToPILImage:
    def __call__(self, pic):
        arr = pic.mul(255).byte() if pic.is_floating_point() else pic
        arr = arr.permute(1, 2, 0).numpy()
        return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return (tensor - mean) / std


class RandomCrop:
    def __init__(self, size, padding=None):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def __call__(self, img):
        arr = np.asarray(img)
        if self.padding:
            pad = ((self.padding, self.padding), (self.padding, self.padding)) + ((0, 0),) * (arr.ndim - 2)
            arr = np.pad(arr, pad)
        th, tw = self.size
        h, w = arr.shape[:2]
        i = torch.randint(0, h - th + 1, size=(1,)).item()
        j = torch.randint(0, w - tw + 1, size=(1,)).item()
        return Image.fromarray(np.ascontiguousarray(arr[i:i + th, j:j + tw]))


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if torch.rand(1) < self.p:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


# ----------------------------------------------------------------------------- datasets
class MNIST(torch.utils.data.Dataset):
    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        prefix = "train" if train else "t10k"
        folders = [root, os.path.join(root, "MNIST", "raw")]
        images = self._read(folders, f"{prefix}-images-idx3-ubyte.gz")
        labels = self._read(folders, f"{prefix}-labels-idx1-ubyte.gz")
        self.data = torch.from_numpy(images[16:].reshape(-1, 28, 28).copy())
        self.targets = torch.from_numpy(labels[8:].astype(np.int64))
        self.transform, self.target_transform = transform, target_transform

    @staticmethod
    def _read(folders, name):
        for folder in folders:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with gzip.open(path, "rb") as f:
                    return np.frombuffer(f.read(), dtype=np.uint8)
        raise FileNotFoundError(name)

    def __getitem__(self, index):
        img, target = Image.fromarray(self.data[index].numpy()), int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self):
        return len(self.data)


class FakeData(torch.utils.data.Dataset):
    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, target_transform=None,
                 random_offset=0):
        self.size, self.image_size, self.num_classes = size, image_size, num_classes
        self.transform, self.target_transform, self.random_offset = transform, target_transform, random_offset

    def __getitem__(self, index):
        if index >= len(self):
            raise IndexError(index)
        state = torch.get_rng_state()
        torch.manual_seed(index + self.random_offset)
        img = torch.randn(*self.image_size)
        target = torch.randint(0, self.num_classes, size=(1,), dtype=torch.long)[0]
        torch.set_rng_state(state)
        img = ToPILImage()(img)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target.item()

    def __len__(self):
        return self.size


# ----------------------------------------------------------------------------- utils
def make_grid(tensor, nrow=8, padding=2, normalize=False, pad_value=0.0):
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.size(1) == 1:
        tensor = torch.cat((tensor, tensor, tensor), 1)
    if normalize:
        low, high = float(tensor.min()), float(tensor.max())
        tensor = tensor.clone().clamp(low, high).sub(low).div(max(high - low, 1e-5))
    if tensor.size(0) == 1:
        return tensor.squeeze(0)
    count = tensor.size(0)
    cols = min(nrow, count)
    rows = int(math.ceil(count / cols))
    height, width = tensor.size(2) + padding, tensor.size(3) + padding
    grid = tensor.new_full((tensor.size(1), height * rows + padding, width * cols + padding), pad_value)
    for k in range(count):
        y, x = divmod(k, cols)
        grid[:, y * height + padding:(y + 1) * height, x * width + padding:(x + 1) * width] = tensor[k]
    return grid


def modules():
    """``sys.modules`` entries that make ``import torchvision`` (and its submodules used here) load this."""
    datasets = types.ModuleType("torchvision.datasets")
    datasets.MNIST, datasets.FakeData = MNIST, FakeData
    transforms = types.ModuleType("torchvision.transforms")
    for cls in (Compose, ToTensor, ToPILImage, Normalize, RandomCrop, RandomHorizontalFlip):
        setattr(transforms, cls.__name__, cls)
    utils = types.ModuleType("torchvision.utils")
    utils.make_grid = make_grid
    package = types.ModuleType("torchvision")
    package.__path__ = []
    package.datasets, package.transforms, package.utils = datasets, transforms, utils
    return {"torchvision": package, "torchvision.datasets": datasets, "torchvision.transforms": transforms,
            "torchvision.utils": utils}
