"""PIL images in the array transforms: Pillow loaded on first use, and the two conversions.

A PIL image enters an operation as a ``(C, H, W)`` array (``(1, H, W)`` for one band) and the result
goes back to a PIL image, keeping the input's mode when the band count and dtype are unchanged. No
module here imports Pillow at import time: an object can only be a PIL image if ``PIL.Image`` has
already been imported by whoever made it.
"""
import sys

import numpy as np

__all__ = ["require_pillow", "is_pil_image", "PILKind", "pil_to_array", "array_to_pil"]

_INSTALL_HINT = "install it with: pip install 'somanet[vision]' (or pip install Pillow)"

# Band count -> mode for a uint8 result whose band count differs from its input's.
_DEFAULT_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def require_pillow(what):
    """``PIL.Image``, or an ImportError saying that ``what`` needs Pillow and how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"{what} needs Pillow, which is not installed; {_INSTALL_HINT}") from None
    return Image


def is_pil_image(obj):
    """Whether ``obj`` is a PIL image (without importing Pillow)."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


class PILKind:
    """What ``array_to_pil`` needs to turn a result back into an image like the input."""

    __slots__ = ("mode", "channels", "dtype")

    def __init__(self, mode, channels, dtype):
        self.mode = mode
        self.channels = channels
        self.dtype = dtype


def pil_to_array(img, op):
    """A PIL image as a ``(C, H, W)`` array (mode ``"1"`` as uint8 0/255) and its ``PILKind``."""
    if img.mode == "P":
        raise TypeError(f"{op}: palette ('P' mode) images hold colour indices, not intensities; convert the image "
                        f"first, e.g. img.convert('RGB')")
    arr = np.asarray(img)
    if img.mode == "1":
        arr = arr.astype(np.uint8) * np.uint8(255)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return arr, PILKind(img.mode, arr.shape[0], arr.dtype)


def array_to_pil(arr, kind):
    """The ``(C, H, W)`` result ``arr`` of an operation on a PIL image as a PIL image again."""
    Image = require_pillow("returning a PIL image")
    channels, height, width = arr.shape
    hwc = arr[0] if channels == 1 else arr.transpose(1, 2, 0)
    hwc = np.ascontiguousarray(hwc)
    if channels == kind.channels and arr.dtype == kind.dtype:
        if kind.mode == "1":
            return Image.fromarray(hwc >= 128)
        return Image.frombytes(kind.mode, (width, height), hwc.tobytes())
    mode = _DEFAULT_MODES.get(channels)
    if arr.dtype != np.uint8 or mode is None:
        raise TypeError(f"cannot make a PIL image from a result with {channels} channels of dtype {arr.dtype}")
    return Image.frombytes(mode, (width, height), hwc.tobytes())
