"""``make_grid`` and ``save_image``, as in torchvision.utils."""
import math
import os
import tempfile

import numpy as np

from ..autograd.tensor import Tensor
from ..data.transforms._pil import require_pillow
from ..ops.creation import from_numpy

__all__ = ["make_grid", "save_image"]


def _images(tensor):
    """``tensor`` (a Tensor, ndarray or list of ``(C, H, W)`` images) as a float ``(N, C, H, W)`` array copy."""
    if isinstance(tensor, (list, tuple)):
        arr = np.stack([t.detach().array if isinstance(t, Tensor) else np.asarray(t) for t in tensor])
    elif isinstance(tensor, Tensor):
        arr = tensor.detach().array
    elif isinstance(tensor, np.ndarray):
        arr = tensor
    else:
        raise TypeError(f"make_grid: expected a Tensor or a list of Tensors, got {type(tensor).__name__}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"make_grid: expected images (H, W), (C, H, W) or (N, C, H, W), got shape {arr.shape}")
    if arr.shape[1] == 1:  # one channel becomes three, so that the grid is an RGB image
        arr = np.concatenate([arr, arr, arr], axis=1)
    return arr.copy()


def _rescale(arr, low, high):
    """Clamp ``arr`` to ``[low, high]`` and map it onto ``[0, 1]``, in place."""
    np.clip(arr, low, high, out=arr)
    arr -= low
    arr /= max(high - low, 1e-5)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """Tile images into one ``(C, H', W')`` image, ``nrow`` per row, with ``padding`` pixels of ``pad_value``.

    Args:
        tensor: a batch ``(N, C, H, W)``, an image ``(C, H, W)`` / ``(H, W)``, or a list of same-sized images.
            One-channel images are repeated to three channels.
        nrow: images per row (the last row may be short).
        padding: pixels between images and around the border.
        normalize: map values onto [0, 1]: those in ``value_range`` ``(low, high)`` (clamped to it), or
            between the minimum and maximum (of the whole batch, or of each image with ``scale_each``).
        value_range: ``(low, high)`` for ``normalize``.
        scale_each: normalise each image by its own range.
        pad_value: the value of the padding pixels.

    The grid is ``(C, rows * (H + padding) + padding, cols * (W + padding) + padding)`` with
    ``cols = min(nrow, N)``, ``rows = ceil(N / cols)``; a single image is returned without padding.
    Its dtype is the input's (it holds no gradient).
    """
    if value_range is not None and not (isinstance(value_range, (tuple, list)) and len(value_range) == 2):
        raise TypeError(f"make_grid: value_range should be a (low, high) pair, got {value_range!r}")
    arr = _images(tensor)
    if normalize:
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float32)
        parts = arr if scale_each else [arr]
        for part in parts:
            low, high = value_range if value_range is not None else (float(part.min()), float(part.max()))
            _rescale(part, low, high)
    if arr.shape[0] == 1:
        return from_numpy(np.ascontiguousarray(arr[0]))
    return from_numpy(tile(arr, min(nrow, arr.shape[0]), padding, pad_value))


def tile(arr, cols, padding=2, pad_value=0.0):
    """The ``(N, C, H, W)`` array ``arr`` tiled into one ``(C, H', W')`` array of its dtype, ``cols`` images
    per row with ``padding`` pixels of ``pad_value`` between them and around the border."""
    count, channels, height, width = arr.shape
    rows = int(math.ceil(count / cols))
    cell_h, cell_w = height + padding, width + padding
    grid = np.full((channels, rows * cell_h + padding, cols * cell_w + padding), pad_value, dtype=arr.dtype)
    for k in range(count):
        y, x = divmod(k, cols)
        top, left = y * cell_h + padding, x * cell_w + padding
        grid[:, top:top + height, left:left + width] = arr[k]
    return grid


def _format_for(path, format):
    if format is not None:
        return format
    Image = require_pillow("save_image")
    Image.init()
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in Image.EXTENSION:
        raise ValueError(f"save_image: cannot tell the image format from the file name {os.fspath(path)!r}; "
                         f"use a known extension (.png, .jpg...) or pass format=")
    return Image.EXTENSION[ext]


def save_image(tensor, fp, format=None, **kwargs):
    """Save images as one picture: ``make_grid(tensor, **kwargs)`` with values in [0, 1] written as uint8.

    Args:
        tensor: what ``make_grid`` takes (float values in [0, 1]).
        fp: a file name / path (written atomically: to a temporary file beside it, then renamed) or a
            binary file object.
        format: the image format (``"PNG"``, ``"JPEG"``...); by default from the file name's extension.
        kwargs: ``make_grid``'s keywords (``nrow``, ``padding``, ``normalize``...).

    Pixels are ``clamp(x * 255 + 0.5, 0, 255)`` truncated to uint8, i.e. rounded, as torchvision does.
    """
    Image = require_pillow("save_image")
    grid = make_grid(tensor, **kwargs).array
    values = grid if grid.dtype.kind == "f" else grid.astype(np.float32)
    pixels = np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    if not isinstance(fp, (str, bytes, os.PathLike)):
        image.save(fp, format=format)
        return
    path = os.path.abspath(os.fsdecode(fp))
    fmt = _format_for(path, format)
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=fmt)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
