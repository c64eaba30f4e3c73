"""Image datasets read from their original files: MNIST and Fashion-MNIST (IDX), CIFAR-10 (binary).

Samples follow torchvision: ``(image, target)`` with ``image`` a uint8 NumPy array (``(28, 28)`` for
MNIST, ``(32, 32, 3)`` for CIFAR-10, where torchvision gives a PIL image) and ``target`` an int;
``transform`` / ``target_transform`` are applied to them. ``data`` and ``targets`` hold the whole
split as NumPy arrays (uint8 images, int64 labels). Nothing here unpickles: IDX and the CIFAR
binary version are read with NumPy.
"""
import gzip
import os
import tarfile

import numpy as np

from ._arrays import ArraysDataset
from ._download import atomic_write_bytes, dataset_root, download_file, missing_file_error

__all__ = ["read_idx", "read_cifar_binary", "MNIST", "FashionMNIST", "CIFAR10"]

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (``.gz`` or raw) into a NumPy array with the dtype and shape its header gives.

    The IDX header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, and one big-endian int32 per dimension.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (header bytes {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"read_idx: {path} holds {len(raw) - offset} data bytes but its header {shape} "
                         f"({dtype}) needs {expected}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


class _IDXImages(ArraysDataset):
    """Shared reader for MNIST-format datasets (four IDX files: train/test images and labels)."""

    folder = None
    mirrors = ()
    resources = {}  # file name -> sha256
    classes = []

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.root = dataset_root(root, self.folder)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        prefix = "train" if train else "t10k"
        images = self._locate(f"{prefix}-images-idx3-ubyte", download)
        labels = self._locate(f"{prefix}-labels-idx1-ubyte", download)
        self.data = read_idx(images)
        self.targets = read_idx(labels).astype(np.int64)
        name = type(self).__name__
        if self.data.ndim != 3 or self.data.dtype != np.uint8:
            raise ValueError(f"{name}: {images} holds {self.data.dtype} data of shape {self.data.shape}; "
                             f"expected uint8 images (N, 28, 28)")
        if self.targets.shape != (self.data.shape[0],):
            raise ValueError(f"{name}: {labels} has {self.targets.shape[0]} labels for {self.data.shape[0]} images")

    def _search_dirs(self):
        # The root itself, and torchvision's layout (root/<Name>/raw) for files downloaded by it.
        return [self.root, os.path.join(self.root, self.folder, "raw")]

    def _locate(self, base, download):
        for folder in self._search_dirs():
            for name in (base, base + ".gz"):
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    return path
        if not download:
            raise missing_file_error(type(self).__name__, [base + ".gz"], self.root)
        gz = base + ".gz"
        return download_file([m + gz for m in self.mirrors], os.path.join(self.root, gz), self.resources[gz],
                             type(self).__name__)

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split}, samples={len(self)}, root={self.root})"


class MNIST(_IDXImages):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 28 x 28 uint8, labels 0-9.

    Args:
        root: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (also found under
            torchvision's ``root/MNIST/raw``); by default ``data_home()/MNIST``.
        train: the training split (else the test split).
        transform: applied to each uint8 image ``(28, 28)``, e.g. ``transforms.ToTensor()``.
        target_transform: applied to each int label.
        download: fetch missing files (sha256-checked) into ``root``.
    """

    folder = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")
    resources = {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]


class FashionMNIST(_IDXImages):
    """Fashion-MNIST: Zalando's 28 x 28 grey clothing images, 60,000 train / 10,000 test, 10 classes.

    Same arguments as ``MNIST``; the default folder is ``data_home()/FashionMNIST``.
    """

    folder = "FashionMNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    resources = {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


_CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_binary(path):
    """Read one CIFAR-10 binary batch: ``(images (N, 32, 32, 3) uint8, labels (N,) int64)``.

    Each record is one label byte followed by the red, green and blue 32 x 32 planes.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"read_cifar_binary: {path} has {raw.size} bytes, not a multiple of the "
                         f"{_CIFAR_RECORD}-byte CIFAR-10 record; the file is truncated or not CIFAR-10 binary")
    records = raw.reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"read_cifar_binary: {path} has label {labels.max()}; CIFAR-10 labels are 0-9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


class CIFAR10(ArraysDataset):
    """CIFAR-10: 32 x 32 colour images in 10 classes, 50,000 train / 10,000 test, from the binary version.

    Args:
        root: folder holding ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ... ``test_batch.bin``)
            or the archive ``cifar-10-binary.tar.gz``; by default ``data_home()/CIFAR10``.
        train: the training split (else the test split).
        transform: applied to each uint8 image ``(32, 32, 3)``, e.g. ``transforms.ToTensor()``.
        target_transform: applied to each int label.
        download: fetch the archive (sha256-checked) into ``root`` and unpack its batch files.
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive = "cifar-10-binary.tar.gz"
    archive_sha256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    base_folder = "cifar-10-batches-bin"
    train_list = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_list = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.root = dataset_root(root, "CIFAR10")
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        files = self.train_list if train else self.test_list
        folder = os.path.join(self.root, self.base_folder)
        if not all(os.path.isfile(os.path.join(folder, f)) for f in files):
            archive = os.path.join(self.root, self.archive)
            if not os.path.isfile(archive):
                if not download:
                    raise missing_file_error("CIFAR10", [f"{self.base_folder}/{files[0]}", self.archive], self.root)
                download_file(self.url, archive, self.archive_sha256, "CIFAR10")
            self._unpack(archive, folder)
        parts = [read_cifar_binary(os.path.join(folder, f)) for f in files]
        self.data = np.concatenate([p[0] for p in parts])
        self.targets = np.concatenate([p[1] for p in parts])

    def _unpack(self, archive, folder):
        # Only the known batch files are copied out, each written atomically; nothing else in the
        # archive is extracted, so its paths can never point outside ``folder``.
        wanted = set(self.train_list + self.test_list + ["batches.meta.txt"])
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted:
                    atomic_write_bytes(os.path.join(folder, name), tar.extractfile(member).read())

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split}, samples={len(self)}, root={self.root})"
