"""CIFAR-10 with torchvision's interface: ``data`` a uint8 ndarray ``(N, 32, 32, 3)``, ``targets`` a list.

Two layouts are read: the binary version that ``somanet.data.datasets.CIFAR10`` reads and downloads,
and the Python version torchvision downloads (``root/cifar-10-batches-py``). The latter's batches are
pickles; they are read with an unpickler that admits NumPy's array reconstruction and nothing else,
so a tampered file cannot run code.
"""
import codecs
import os
import pickle

import numpy as np

from ...data.datasets import vision as _data
from ...data.datasets._download import dataset_root
from .vision import VisionDataset, to_image

__all__ = ["CIFAR10"]

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # NumPy's array reconstructor, wherever this version keeps it
_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module in _MULTIARRAY_MODULES and name == "_reconstruct":
            return _RECONSTRUCT
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":  # how Python 3 pickles bytes at protocol 2
            return codecs.encode
        raise pickle.UnpicklingError(f"CIFAR10: a batch file refers to {module}.{name}; only NumPy arrays are "
                                     f"accepted, so the file is not a CIFAR-10 batch")


def _read_python_batch(path):
    with open(path, "rb") as f:
        entry = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    if not isinstance(entry, dict):
        raise ValueError(f"CIFAR10: {path} does not hold a CIFAR-10 batch (a dict)")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data = np.asarray(entry.get("data"))
    labels = entry.get("labels", entry.get("fine_labels"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None:
        raise ValueError(f"CIFAR10: {path} holds data {data.dtype} {data.shape}; expected uint8 (N, 3072) "
                         f"and a list of labels")
    labels = [int(v) for v in labels]
    if len(labels) != data.shape[0]:
        raise ValueError(f"CIFAR10: {path} has {len(labels)} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class CIFAR10(VisionDataset, _data.CIFAR10):
    """CIFAR-10 (torchvision.datasets.CIFAR10): 32 x 32 colour images in 10 classes, 50,000 / 10,000.

    Args:
        root: the folder holding torchvision's ``cifar-10-batches-py/``, or the binary version's
            ``cifar-10-batches-bin/`` or ``cifar-10-binary.tar.gz``.
        train: the training split (else the test split).
        transform: applied to each PIL image (mode ``"RGB"``; a uint8 ``(32, 32, 3)`` array without Pillow).
        target_transform: applied to each int label.
        download: fetch the binary version (sha256-checked) into ``root``; never done unless asked.
    """

    python_folder = "cifar-10-batches-py"
    python_train_list = [f"data_batch_{i}" for i in range(1, 6)]
    python_test_list = ["test_batch"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        root = dataset_root(root, "CIFAR10")
        names = self.python_train_list if train else self.python_test_list
        paths = [os.path.join(root, self.python_folder, n) for n in names]
        if all(os.path.isfile(p) for p in paths):
            self.root, self.train = root, train
            parts = [_read_python_batch(p) for p in paths]
            self.data = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
            self.targets = [label for p in parts for label in p[1]]
        else:
            _data.CIFAR10.__init__(self, root, train, transform, target_transform, download)
            self.targets = [int(v) for v in self.targets]
        self._set_transforms(None, transform, target_transform)

    def __getitem__(self, index):
        return self._transformed(to_image(self.data[index]), int(self.targets[index]))

    def __len__(self):
        return len(self.data)

    def _fetch_batch(self, indices):
        return None

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"
