"""Datasets read from a folder of class sub-folders (torchvision.datasets.ImageFolder's layout).

::

    root/cat/001.png        -> (image, 0)
    root/cat/nested/002.jpg -> (image, 0)
    root/dog/003.png        -> (image, 1)

Classes are the sub-folder names in sorted order; each class folder is walked recursively (following
links) in sorted order, so the sample list is the same on every machine.
"""
import os

from ...data.transforms._pil import require_pillow
from .vision import VisionDataset

__all__ = ["IMG_EXTENSIONS", "has_file_allowed_extension", "is_image_file", "find_classes", "make_dataset",
           "pil_loader", "default_loader", "DatasetFolder", "ImageFolder"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def has_file_allowed_extension(filename, extensions):
    """Whether ``filename`` ends with one of ``extensions`` (a string or tuple; case-insensitive)."""
    if isinstance(extensions, str):
        extensions = (extensions,)
    return filename.lower().endswith(tuple(e.lower() for e in extensions))


def is_image_file(filename):
    """Whether ``filename`` has one of ``IMG_EXTENSIONS``."""
    return has_file_allowed_extension(filename, IMG_EXTENSIONS)


def find_classes(directory):
    """``(classes, class_to_idx)``: the sorted names of ``directory``'s sub-folders and their indices."""
    with os.scandir(directory) as entries:
        classes = sorted(entry.name for entry in entries if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"find_classes: no class folder found in {directory}; expected one sub-folder "
                                f"per class (root/<class>/<file>)")
    return classes, {name: i for i, name in enumerate(classes)}


def make_dataset(directory, class_to_idx=None, extensions=None, is_valid_file=None, allow_empty=False):
    """The ``(path, class_index)`` pairs under ``directory``'s class folders.

    Args:
        directory: the root folder.
        class_to_idx: class folder name -> index; by default from ``find_classes``.
        extensions: the file endings to keep (exactly one of ``extensions`` and ``is_valid_file``).
        is_valid_file: a function of a path saying whether to keep the file.
        allow_empty: accept class folders with no valid file (else FileNotFoundError naming them).
    """
    directory = os.path.expanduser(os.fspath(directory))
    if class_to_idx is None:
        _, class_to_idx = find_classes(directory)
    elif not class_to_idx:
        raise ValueError("make_dataset: class_to_idx must have at least one entry")
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("make_dataset: pass exactly one of extensions and is_valid_file")
    if extensions is not None:
        def is_valid_file(path):
            return has_file_allowed_extension(path, extensions)
    samples, found = [], set()
    for name in sorted(class_to_idx):
        index = class_to_idx[name]
        folder = os.path.join(directory, name)
        if not os.path.isdir(folder):
            continue
        for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                if is_valid_file(path):
                    samples.append((path, index))
                    found.add(name)
    empty = sorted(set(class_to_idx) - found)
    if empty and not allow_empty:
        allowed = f" (allowed extensions: {', '.join(extensions)})" if extensions is not None else ""
        raise FileNotFoundError(f"make_dataset: no valid file found for classes {', '.join(empty)} in "
                                f"{directory}{allowed}; pass allow_empty=True to accept empty classes")
    return samples


def pil_loader(path):
    """Open ``path`` with Pillow and convert it to RGB (the file is closed before returning)."""
    Image = require_pillow("ImageFolder's image loader")
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def default_loader(path):
    """The loader ``ImageFolder`` uses by default: ``pil_loader``."""
    return pil_loader(path)


class DatasetFolder(VisionDataset):
    """Samples ``(loader(path), class_index)`` from ``root/<class>/**/<file>``.

    Args:
        root: the root folder.
        loader: a function reading one file.
        extensions: file endings to keep (exactly one of this and ``is_valid_file``).
        transform: applied to each loaded sample.
        target_transform: applied to each class index.
        is_valid_file: a function of a path saying whether to keep the file.
        allow_empty: accept class folders without valid files.

    Attributes: ``classes`` (sorted folder names), ``class_to_idx``, ``samples`` (a list of
    ``(path, class_index)``), ``targets`` (the class indices).
    """

    def __init__(self, root, loader, extensions=None, transform=None, target_transform=None, is_valid_file=None,
                 allow_empty=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        classes, class_to_idx = self.find_classes(self.root)
        samples = self.make_dataset(self.root, class_to_idx, extensions, is_valid_file, allow_empty=allow_empty)
        self.loader = loader
        self.extensions = extensions
        self.classes = classes
        self.class_to_idx = class_to_idx
        self.samples = samples
        self.targets = [s[1] for s in samples]

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        """See the module function ``make_dataset``; override to change how samples are found."""
        if class_to_idx is None:
            raise ValueError("DatasetFolder.make_dataset: class_to_idx must be given")
        return make_dataset(directory, class_to_idx, extensions, is_valid_file, allow_empty)

    def find_classes(self, directory):
        """See the module function ``find_classes``; override to change how classes are found."""
        return find_classes(directory)

    def __getitem__(self, index):
        path, target = self.samples[index]
        return self._transformed(self.loader(path), target)

    def __len__(self):
        return len(self.samples)


class ImageFolder(DatasetFolder):
    """Images ``root/<class>/**/<image>`` as ``(PIL RGB image, class_index)`` (torchvision.datasets.ImageFolder).

    Args:
        root: the root folder.
        transform: applied to each PIL image, e.g. ``transforms.ToTensor()``.
        target_transform: applied to each class index.
        loader: reads one file; ``default_loader`` opens it with Pillow and converts it to RGB.
        is_valid_file: a function of a path saying whether to keep the file; by default files with
            one of ``IMG_EXTENSIONS``.
        allow_empty: accept class folders without images.

    ``imgs`` is ``samples`` under torchvision's older name.
    """

    def __init__(self, root, transform=None, target_transform=None, loader=default_loader, is_valid_file=None,
                 allow_empty=False):
        super().__init__(root, loader, IMG_EXTENSIONS if is_valid_file is None else None, transform=transform,
                         target_transform=target_transform, is_valid_file=is_valid_file, allow_empty=allow_empty)
        self.imgs = self.samples
