"""Reading an image file into a NumPy array a model can take: ``read_grayscale`` and ``resize_area``.

``somanet predict`` uses them to turn a photo or drawing of a digit into an MNIST-sized input; a program
can do the same::

    from somanet.vision.io import read_grayscale, resize_area
    img = resize_area(read_grayscale("digit.png"), (28, 28))   # float32, 28 x 28, values in [0, 1]

Pillow (``pip install 'somanet[vision]'``) reads every common format; without it, PNG files are read
with matplotlib (``pip install 'somanet[plot]'``).
"""
import os
import struct
import warnings

import numpy as np

__all__ = ["read_grayscale", "resize_area", "DEFAULT_MAX_PIXELS", "ImageTooLargeError"]

#: The largest image ``read_grayscale`` decodes by default, in pixels (2048 x 2048), checked from the
#: file's header before decoding: a decoded pixel costs about 50 bytes (some 230 MB at this limit).
DEFAULT_MAX_PIXELS = 2048 * 2048


class ImageTooLargeError(ValueError):
    """An image with more pixels than ``max_pixels``; ``width``, ``height`` and ``max_pixels`` say by how much."""

    def __init__(self, path, width, height, max_pixels):
        super().__init__(f"{path} is a {width} x {height} image ({width * height:,} pixels); read_grayscale reads "
                         f"images of at most {max_pixels:,} pixels: scale it down or crop it")
        self.path, self.width, self.height, self.max_pixels = path, width, height, max_pixels


def _check_size(path, width, height, max_pixels):
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(path, width, height, max_pixels)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _decode(path, max_pixels):
    """The image as float32 in [0, 1]: (H, W), (H, W, 3) or (H, W, 4)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with warnings.catch_warnings():
                # The size is checked below, against a far lower limit than Pillow's.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)  # reads the header only
        except Image.DecompressionBombError as exc:
            raise ValueError(f"{path} is too large an image: {exc}") from None
        except Exception as exc:
            raise ValueError(f"{path} cannot be read as an image: {exc}") from None
        with im:
            _check_size(path, *im.size, max_pixels)
            try:
                return np.asarray(im.convert("RGBA"), dtype=np.float32) / np.float32(255.0)
            except Exception as exc:
                raise ValueError(f"{path} cannot be read as an image: {exc}") from None
    if ext != ".png":
        raise ImportError(f"reading {ext} images needs Pillow (pip install pillow); PNG also works with matplotlib "
                          f"(pip install 'somanet[plot]')")
    try:
        import matplotlib.image as mpimg
    except ImportError:
        raise ImportError("reading PNG images needs matplotlib (pip install 'somanet[plot]') or Pillow "
                          "(pip install pillow)") from None
    try:
        size = _png_size(path)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read as an image: {exc}") from None
    if size is not None:
        _check_size(path, *size, max_pixels)
    try:
        return np.asarray(mpimg.imread(path), dtype=np.float32)
    except Exception as exc:
        raise ValueError(f"{path} cannot be read as an image: {exc}") from None


def read_grayscale(path, *, max_pixels=DEFAULT_MAX_PIXELS):
    """The image file ``path`` as a float32 (H, W) array of luminance in [0, 1].

    Colour is weighted 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as PIL's ``convert("L")``); transparent
    pixels are composited onto white, the usual background of a drawn digit.

    Args:
        path: an image file (PNG, JPEG, BMP, GIF, TIFF, WebP with Pillow; PNG only without it).
        max_pixels: refuse images with more pixels than this, read from the header before decoding
            (``None``: no limit).

    Raises:
        ValueError: the file is not a readable image (``ImageTooLargeError``: it is larger than
            ``max_pixels``).
        ImportError: neither Pillow nor (for PNG) matplotlib is installed.
    """
    img = _decode(path, max_pixels)
    if img.ndim == 3:
        if img.shape[-1] == 4:
            alpha = img[..., 3:4]
            img = img[..., :3] * alpha + (1.0 - alpha)
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return img.astype(np.float32)


def resize_area(img, size):
    """``img`` (a 2-d array) resampled to ``size`` = (H, W): each output pixel averages the input pixels
    it covers (nearest neighbour when enlarging); returns float32."""
    img = np.asarray(img)
    if img.ndim != 2 or len(size) != 2:
        raise ValueError(f"resize_area: expected a 2-d image and a (height, width) size, got an image of shape "
                         f"{img.shape} and size {tuple(size)}")
    out = img
    for axis, n in enumerate(size):
        m = out.shape[axis]
        if m == n:
            continue
        edges = np.linspace(0, m, n + 1)
        lo = np.floor(edges[:-1]).astype(int)
        hi = np.maximum(np.ceil(edges[1:]).astype(int), lo + 1)
        cs = np.cumsum(np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)), out], axis=axis), axis=axis)
        out = (np.take(cs, hi, axis=axis) - np.take(cs, lo, axis=axis)) / (hi - lo).reshape(
            [-1 if a == axis else 1 for a in range(out.ndim)])
    return out.astype(np.float32)
