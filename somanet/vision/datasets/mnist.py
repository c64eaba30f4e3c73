"""MNIST and Fashion-MNIST with torchvision's interface, on the IDX reader of ``somanet.data``."""
import os

from ...data.datasets import vision as _data
from ...data.datasets._download import download_file
from ...ops.creation import from_numpy
from .vision import VisionDataset, as_array, to_image

__all__ = ["MNIST", "FashionMNIST"]


class _TorchvisionIDX(VisionDataset):
    """``data`` is a uint8 Tensor ``(N, 28, 28)`` and ``targets`` an int64 Tensor ``(N,)``, as in torchvision;
    a sample is ``(PIL image of mode "L", int)`` before the transforms."""

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        self._reader.__init__(self, root, train, transform, target_transform, download)
        self._set_transforms(None, transform, target_transform)
        self.data = from_numpy(self.data)
        self.targets = from_numpy(self.targets)

    def _locate(self, base, download):
        # Files already anywhere the reader looks are used; a download goes where torchvision puts it,
        # root/<Name>/raw, so that both libraries can share one folder.
        try:
            return self._reader._locate(self, base, False)
        except FileNotFoundError:
            if not download:
                raise
        gz = base + ".gz"
        return download_file([m + gz for m in self.mirrors], os.path.join(self.root, self.folder, "raw", gz),
                             self.resources[gz], type(self).__name__)

    def __getitem__(self, index):
        image = to_image(as_array(self.data)[index])
        return self._transformed(image, int(as_array(self.targets)[index]))

    def __len__(self):
        return len(self.data)

    def _fetch_batch(self, indices):
        # Samples are images, as in torchvision: the DataLoader collates them one by one.
        return None

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"


class MNIST(_TorchvisionIDX, _data.MNIST):
    """MNIST digits (torchvision.datasets.MNIST): 60,000 training and 10,000 test images, 28 x 28.

    Args:
        root: the folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, directly or in
            torchvision's ``root/MNIST/raw``.
        train: the training split (else the test split).
        transform: applied to each PIL image (mode ``"L"``; a uint8 ``(28, 28)`` array without Pillow).
        target_transform: applied to each int label.
        download: fetch missing files (sha256-checked) into ``root/MNIST/raw``; never done unless asked.
    """

    _reader = _data.MNIST


class FashionMNIST(_TorchvisionIDX, _data.FashionMNIST):
    """Fashion-MNIST (torchvision.datasets.FashionMNIST): same interface as ``MNIST``, 10 clothing classes;
    files in ``root`` or ``root/FashionMNIST/raw``."""

    _reader = _data.FashionMNIST
