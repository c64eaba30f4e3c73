"""``FakeData``: random images with random labels, the same on every run."""
import numpy as np

from .vision import VisionDataset, to_image

__all__ = ["FakeData"]


class FakeData(VisionDataset):
    """``size`` random images ``image_size = (C, H, W)`` with labels in ``[0, num_classes)``.

    Sample ``i`` is drawn from its own NumPy generator seeded with ``i + random_offset``, so it is the
    same on every call, every run and in every DataLoader worker. Images are uniform uint8 noise, given
    as PIL images (mode ``"L"`` for one channel, ``"RGB"`` for three) as in torchvision, or as uint8
    ``(H, W, C)`` arrays without Pillow. The values are not torchvision's, which draws from PyTorch's
    generator.

    Args:
        size: the number of samples.
        image_size: ``(C, H, W)`` with C 1, 3 or 4.
        num_classes: the number of classes.
        transform: applied to each image.
        target_transform: applied to each label.
        random_offset: added to the index to seed each sample (another offset gives another dataset).
    """

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, target_transform=None,
                 random_offset=0):
        super().__init__(None, transform=transform, target_transform=target_transform)
        image_size = tuple(int(s) for s in image_size)
        if len(image_size) != 3 or image_size[0] not in (1, 3, 4) or min(image_size) < 1:
            raise ValueError(f"FakeData: image_size should be (C, H, W) with C 1, 3 or 4, got {image_size}")
        if num_classes < 1:
            raise ValueError(f"FakeData: num_classes should be at least 1, got {num_classes}")
        self.size = int(size)
        self.image_size = image_size
        self.num_classes = int(num_classes)
        self.random_offset = int(random_offset)

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"FakeData: index {index} is out of range for {len(self)} samples")
        rng = np.random.default_rng(index + self.random_offset)
        c, h, w = self.image_size
        pixels = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        target = int(rng.integers(0, self.num_classes))
        return self._transformed(to_image(pixels[:, :, 0] if c == 1 else pixels), target)

    def __len__(self):
        return self.size
