"""Image transforms on NumPy arrays, somanet Tensors and PIL images, with torchvision's names and semantics.

Single images are ``(C, H, W)``; batches ``(N, C, H, W)`` get an independent random draw per image.
``functional`` holds the deterministic operations (``hflip``, ``crop``, ``resize``, ``rotate``...).

>>> from somanet.data import transforms as T
>>> train_tf = T.Compose([T.ToTensor(), T.RandomCrop(28, padding=2), T.Normalize((0.1307,), (0.3081,))])
"""
from . import functional
from .functional import InterpolationMode
from .transforms import (Compose, Lambda, ToTensor, PILToTensor, ToPILImage, Normalize, Pad, RandomCrop,
                         CenterCrop, Resize, RandomResizedCrop, RandomHorizontalFlip, RandomVerticalFlip,
                         RandomRotation, RandomAffine, ColorJitter, Grayscale, GaussianNoise, RandomErasing)
from .batch import MixUp, CutMix
from .stats import compute_mean_std

__all__ = ["functional", "InterpolationMode", "Compose", "Lambda", "ToTensor", "PILToTensor", "ToPILImage",
           "Normalize", "Pad", "RandomCrop", "CenterCrop", "Resize", "RandomResizedCrop", "RandomHorizontalFlip",
           "RandomVerticalFlip", "RandomRotation", "RandomAffine", "ColorJitter", "Grayscale", "GaussianNoise",
           "RandomErasing", "MixUp", "CutMix", "compute_mean_std"]
