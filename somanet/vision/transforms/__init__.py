"""torchvision.transforms' names: the image transforms of ``somanet.data.transforms``.

They take PIL images, ``(C, H, W)`` Tensors and ndarrays, and batches ``(N, C, H, W)``; a PIL image
comes back as a PIL image. ``functional`` holds the deterministic operations (``resize``, ``crop``,
``to_tensor``, ``to_pil_image``...).

>>> from somanet.vision import transforms as T
>>> train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
...                       T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
"""
from . import functional
from ...data.transforms import (InterpolationMode, Compose, Lambda, ToTensor, PILToTensor, ToPILImage, Normalize,
                                Pad, RandomCrop, CenterCrop, Resize, RandomResizedCrop, RandomHorizontalFlip,
                                RandomVerticalFlip, RandomRotation, RandomAffine, ColorJitter, Grayscale,
                                GaussianNoise, RandomErasing, MixUp, CutMix)

__all__ = ["functional", "InterpolationMode", "Compose", "Lambda", "ToTensor", "PILToTensor", "ToPILImage",
           "Normalize", "Pad", "RandomCrop", "CenterCrop", "Resize", "RandomResizedCrop", "RandomHorizontalFlip",
           "RandomVerticalFlip", "RandomRotation", "RandomAffine", "ColorJitter", "Grayscale", "GaussianNoise",
           "RandomErasing", "MixUp", "CutMix"]
