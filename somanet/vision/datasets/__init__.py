"""torchvision.datasets' names and signatures: MNIST, FashionMNIST, CIFAR10, ImageFolder, DatasetFolder,
FakeData and the ``VisionDataset`` base.

MNIST-family and CIFAR-10 read the files ``somanet.data.datasets`` reads (one reader, two interfaces);
their ``data`` and ``targets`` have torchvision's types. Nothing is downloaded unless ``download=True``.
"""
from .vision import VisionDataset, StandardTransform
from .mnist import MNIST, FashionMNIST
from .cifar import CIFAR10
from .folder import (IMG_EXTENSIONS, DatasetFolder, ImageFolder, default_loader, pil_loader, find_classes,
                     make_dataset, has_file_allowed_extension, is_image_file)
from .fakedata import FakeData

__all__ = ["VisionDataset", "StandardTransform", "MNIST", "FashionMNIST", "CIFAR10", "IMG_EXTENSIONS",
           "DatasetFolder", "ImageFolder", "default_loader", "pil_loader", "find_classes", "make_dataset",
           "has_file_allowed_extension", "is_image_file", "FakeData"]
