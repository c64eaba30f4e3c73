"""Image operations on NumPy arrays, somanet Tensors and PIL images, with torchvision's names and semantics.

Images are ``(C, H, W)`` (``(H, W)`` is one channel) or batches ``(N, C, H, W)``; every function
returns the kind it was given (ndarray, Tensor or PIL image) and keeps the dtype (float images in
[0, 1], uint8 in [0, 255]). A PIL image goes through the same array code as a ``(C, H, W)`` uint8
array, so its results follow the tensor formulas below; where torchvision hands a PIL image to
Pillow's own resampling or colour conversion, results can differ from it by one grey level.

The public functions apply the same parameters to every image of a batch, as torchvision does. The
underscored ``*_batch`` helpers take one parameter per image and are what the random transforms use
to augment a whole batch in a few NumPy calls.

Geometry follows torchvision's tensor backend: pixel centres sit at half-integers, bilinear
resizing is ``align_corners=False`` (with antialiasing when shrinking), ``rotate`` turns
counter-clockwise for a positive angle and ``affine`` clockwise, as documented by torchvision.
"""
import math
import numbers

import numpy as np

from ...autograd.tensor import Tensor
from ...ops.creation import from_numpy
from . import _pil

__all__ = ["InterpolationMode", "to_tensor", "pil_to_tensor", "to_pil_image", "to_grayscale", "normalize", "hflip",
           "vflip", "pad", "crop", "center_crop", "resize", "resized_crop", "rotate", "affine", "rgb_to_grayscale",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "erase", "get_dimensions"]

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")
_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], dtype=np.float32)


class InterpolationMode:
    """Interpolation names, as in ``torchvision.transforms.InterpolationMode`` (plain strings here)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"


def _mode(interpolation, op):
    mode = getattr(interpolation, "value", interpolation)
    if mode not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
        raise ValueError(f"{op}: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    return mode


# ----------------------------------------------------------------------------- input handling
def _unwrap(img, op):
    """``img``'s array and what to turn a result back into: True for a Tensor, False for an
    ndarray, a ``PILKind`` for a PIL image (seen as its ``(C, H, W)`` array)."""
    if isinstance(img, Tensor):
        return img.array, True
    if isinstance(img, np.ndarray):
        return img, False
    if _pil.is_pil_image(img):
        return _pil.pil_to_array(img, op)
    raise TypeError(f"{op}: expected a NumPy array, somanet Tensor or PIL image, got {type(img).__name__}")


def _wrap(arr, as_tensor):
    if isinstance(as_tensor, _pil.PILKind):
        return _pil.array_to_pil(arr, as_tensor)
    return from_numpy(np.ascontiguousarray(arr)) if as_tensor else arr


def _to_batch(img, op, need_channels=False):
    """View ``img`` as ``(N, C, H, W)``; return it, the original shape and whether it was a Tensor."""
    arr, as_tensor = _unwrap(img, op)
    if arr.ndim == 2 and not need_channels:
        batch = arr[None, None]
    elif arr.ndim == 3:
        batch = arr[None]
    elif arr.ndim == 4:
        batch = arr
    else:
        want = "(C, H, W) or (N, C, H, W)" if need_channels else "(H, W), (C, H, W) or (N, C, H, W)"
        raise ValueError(f"{op}: expected an image {want}, got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{op}: expected a float or integer (uint8) image, got dtype {arr.dtype}")
    return batch, arr.shape, as_tensor


def _from_batch(batch, shape, as_tensor):
    """Undo ``_to_batch``: drop the axes it added (the spatial size may have changed)."""
    if len(shape) == 2:
        batch = batch[0, 0]
    elif len(shape) == 3:
        batch = batch[0]
    return _wrap(batch, as_tensor)


def _bound(dtype):
    return 255.0 if dtype == np.uint8 else 1.0


def _cast_like(values, dtype):
    """Float results back to the image dtype: integer images are clipped and truncated, as torchvision does."""
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(values, info.min, info.max).astype(dtype)


def get_dimensions(img):
    """``[channels, height, width]`` of an image ``(C, H, W)``/``(H, W)`` or a batch ``(N, C, H, W)``."""
    arr, _ = _unwrap(img, "get_dimensions")
    if arr.ndim == 2:
        return [1, arr.shape[0], arr.shape[1]]
    return [arr.shape[-3], arr.shape[-2], arr.shape[-1]]


def _pair(size, op, name="size"):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    size = tuple(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"{op}: {name} should be an int or a sequence of 1 or 2 ints (h, w), got {size}")
    return int(size[0]), int(size[1])


# ----------------------------------------------------------------------------- conversion, normalisation
# PIL modes whose pixels are not uint8, and the dtype torchvision reads them as.
_PIL_MODE_DTYPES = {"I": np.int32, "I;16": np.int16, "F": np.float32}


def _pil_hwc(pic, dtype=None):
    arr = np.array(pic, dtype=dtype, copy=True)
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_tensor(pic):
    """A PIL image, or a ``(H, W, C)`` / ``(H, W)`` array (or ``(N, H, W, C)`` batch), to a ``(C, H, W)`` Tensor.

    uint8 images (and PIL images of 8-bit modes) are scaled to float32 in [0, 1]; other dtypes keep
    their values and dtype, as in torchvision (PIL modes ``"I"``, ``"I;16"``, ``"F"`` become int32,
    int16 and float32; mode ``"1"`` becomes 0.0 / 1.0).
    """
    if _pil.is_pil_image(pic):
        arr = _pil_hwc(pic, _PIL_MODE_DTYPES.get(pic.mode, np.uint8))
        if pic.mode == "1":
            arr *= np.uint8(255)
    else:
        arr, _ = _unwrap(pic, "to_tensor")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim == 3:
        arr = arr.transpose(2, 0, 1)
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"to_tensor: expected an image (H, W), (H, W, C) or batch (N, H, W, C), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32)
        out /= np.float32(255.0)  # a division, as torchvision's, is exact where multiplying by 1/255 is not
    else:
        out = np.ascontiguousarray(arr)
    return from_numpy(np.ascontiguousarray(out))


def pil_to_tensor(pic):
    """A PIL image to a ``(C, H, W)`` Tensor of its own dtype, values unscaled (uint8 stays 0-255)."""
    if not _pil.is_pil_image(pic):
        raise TypeError(f"pil_to_tensor: pic should be a PIL image, got {type(pic).__name__}")
    return from_numpy(np.ascontiguousarray(_pil_hwc(pic).transpose(2, 0, 1)))


def to_pil_image(pic, mode=None):
    """A ``(C, H, W)`` Tensor or ``(H, W, C)`` ndarray (``(H, W)`` for one band) to a PIL image.

    Float values are taken as [0, 1] and become uint8 as ``(x * 255).astype(uint8)`` (truncated), as in
    torchvision, unless ``mode="F"``. The mode defaults by band count and dtype: one band is ``"L"``
    (uint8), ``"I;16"`` (int16), ``"I"`` (int32) or ``"F"`` (float32); two ``"LA"``; three ``"RGB"``;
    four ``"RGBA"``. ``mode`` may name another mode with as many bands (``"YCbCr"``, ``"CMYK"``...),
    which reinterprets the bytes.
    """
    Image = _pil.require_pillow("to_pil_image")
    if isinstance(pic, Tensor):
        arr = pic.detach().array
        if arr.ndim == 3:
            arr = arr.transpose(1, 2, 0)
    elif isinstance(pic, np.ndarray):
        arr = pic
    else:
        raise TypeError(f"to_pil_image: pic should be a Tensor or ndarray, got {type(pic).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"to_pil_image: pic should be 2 or 3 dimensional, got {arr.ndim} dimensions")
    if arr.shape[-1] > 4:
        raise ValueError(f"to_pil_image: pic should not have more than 4 channels, got {arr.shape[-1]} (a Tensor "
                         f"is read as (C, H, W), an ndarray as (H, W, C))")
    if arr.dtype.kind == "f" and mode != "F":
        arr = (arr * 255).astype(np.uint8)
    bands = arr.shape[-1]
    if bands == 1:
        arr = arr[:, :, 0]
        single = {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16", np.dtype(np.int32): "I",
                  np.dtype(np.float32): "F"}
        expected = single.get(arr.dtype)
        if mode is not None and mode != expected:
            raise ValueError(f"to_pil_image: incorrect mode ({mode}) supplied for input type {arr.dtype}; "
                             f"should be {expected}")
        mode = expected
    else:
        allowed = {2: ("LA",), 3: ("RGB", "YCbCr", "HSV"), 4: ("RGBA", "CMYK", "RGBX")}[bands]
        if mode is not None and mode not in allowed:
            raise ValueError(f"to_pil_image: only modes {list(allowed)} are supported for {bands}-channel inputs, "
                             f"got {mode}")
        if arr.dtype != np.uint8:
            raise TypeError(f"to_pil_image: {bands}-channel images must be uint8 (or float in [0, 1]), "
                            f"got {arr.dtype}")
        mode = mode or allowed[0]
    if mode is None:
        raise TypeError(f"to_pil_image: input type {arr.dtype} is not supported")
    if mode == "I;16":
        arr = arr.astype("<i2", copy=False)
    arr = np.ascontiguousarray(arr)
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), arr.tobytes())


def normalize(tensor, mean, std, inplace=False):
    """``(x - mean[c]) / std[c]`` per channel of a float image ``(C, H, W)`` or batch ``(N, C, H, W)``."""
    arr, as_tensor = _unwrap(tensor, "normalize")
    if arr.dtype.kind != "f":
        raise TypeError(f"normalize: input should be a float image, got dtype {arr.dtype}; convert it with ToTensor")
    if arr.ndim < 3:
        raise ValueError(f"normalize: expected an image (C, H, W) or batch (N, C, H, W), got shape {arr.shape}")
    mean = np.asarray(mean, dtype=arr.dtype).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=arr.dtype).reshape(-1, 1, 1)
    _check_std(std, arr.dtype)
    return _normalize_arrays(tensor, arr, as_tensor, mean, std, inplace)


def _check_std(std, dtype):
    if (std == 0).any():
        raise ValueError(f"normalize: std evaluated to zero after conversion to {dtype}, leading to division by zero")


def _normalize_arrays(tensor, arr, as_tensor, mean, std, inplace):
    if mean.shape[0] not in (1, arr.shape[-3]) or std.shape[0] not in (1, arr.shape[-3]):
        raise ValueError(f"normalize: mean/std have {mean.shape[0]}/{std.shape[0]} values for an image with "
                         f"{arr.shape[-3]} channels")
    if inplace:
        arr -= mean
        arr /= std
        return tensor
    return _wrap((arr - mean) / std, as_tensor)


# ----------------------------------------------------------------------------- flips, padding, crops
def hflip(img):
    """Mirror left-right (the last axis)."""
    arr, as_tensor = _unwrap(img, "hflip")
    return _wrap(arr[..., ::-1], as_tensor)


def vflip(img):
    """Mirror top-bottom (the second-to-last axis)."""
    arr, as_tensor = _unwrap(img, "vflip")
    return _wrap(arr[..., ::-1, :], as_tensor)


def _padding_ltrb(padding, op):
    if isinstance(padding, numbers.Number):
        padding = [padding]
    padding = [int(p) for p in padding]
    if len(padding) == 1:
        left = top = right = bottom = padding[0]
    elif len(padding) == 2:
        left = right = padding[0]
        top = bottom = padding[1]
    elif len(padding) == 4:
        left, top, right, bottom = padding
    else:
        raise ValueError(f"{op}: padding must be an int or a sequence of 2 or 4 ints, got {padding}")
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return left, top, right, bottom


def _pad_batch(batch, ltrb, fill, padding_mode, op):
    left, top, right, bottom = ltrb
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
    if not any(ltrb):
        return batch
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if padding_mode != "constant":
        if padding_mode == "reflect" and (max(top, bottom) >= batch.shape[2] or max(left, right) >= batch.shape[3]):
            raise ValueError(f"{op}: reflect padding {ltrb} must be smaller than the image size {batch.shape[2:]}")
        return np.pad(batch, widths, mode=padding_mode)
    fill = np.asarray(fill, dtype=np.float64).ravel()
    if fill.size not in (1, batch.shape[1]):
        raise ValueError(f"{op}: fill has {fill.size} values for an image with {batch.shape[1]} channels")
    # Filling a new array and copying the image in is several times faster than np.pad for small images.
    n, c, h, w = batch.shape
    out = np.empty((n, c, h + top + bottom, w + left + right), dtype=batch.dtype)
    out[...] = fill.astype(batch.dtype).reshape(1, -1, 1, 1)
    out[:, :, top:top + h, left:left + w] = batch
    return out


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad the border: ``padding`` is an int, ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.

    ``padding_mode`` is ``"constant"`` (with ``fill``: a number or one value per channel),
    ``"edge"``, ``"reflect"`` (without repeating the edge) or ``"symmetric"`` (repeating it).
    """
    batch, shape, as_tensor = _to_batch(img, "pad")
    out = _pad_batch(batch, _padding_ltrb(padding, "pad"), fill, padding_mode, "pad")
    return _from_batch(out, shape, as_tensor)


def _crop_batch(batch, tops, lefts, height, width):
    """Crop ``(height, width)`` at per-image ``tops``/``lefts`` (all inside the image) from ``(N, C, H, W)``."""
    if batch.shape[0] == 1:
        t, l0 = int(np.ravel(tops)[0]), int(np.ravel(lefts)[0])
        return batch[:, :, t:t + height, l0:l0 + width]
    tops = np.asarray(tops, dtype=np.int64)
    lefts = np.asarray(lefts, dtype=np.int64)
    if (tops == tops.flat[0]).all() and (lefts == lefts.flat[0]).all():
        t, l0 = int(tops.flat[0]), int(lefts.flat[0])
        return batch[:, :, t:t + height, l0:l0 + width]
    windows = np.lib.stride_tricks.sliding_window_view(batch, (height, width), axis=(2, 3))
    # Advanced indices split by a slice put the batch axis first: the result is (N, C, height, width).
    return windows[np.arange(batch.shape[0]), :, tops, lefts]


def crop(img, top, left, height, width):
    """The ``(height, width)`` region at ``(top, left)``; parts outside the image are zero, as in torchvision."""
    batch, shape, as_tensor = _to_batch(img, "crop")
    h, w = batch.shape[2:]
    pads = (max(-left, 0), max(-top, 0), max(left + width - w, 0), max(top + height - h, 0))
    if any(pads):
        batch = _pad_batch(batch, pads, 0, "constant", "crop")
        top, left = top + pads[1], left + pads[0]
    return _from_batch(batch[:, :, top:top + height, left:left + width], shape, as_tensor)


def center_crop(img, output_size):
    """The central ``output_size`` region (zero-padded first when the image is smaller)."""
    th, tw = _pair(output_size, "center_crop", "output_size")
    _, h, w = get_dimensions(img)
    if th > h or tw > w:
        ltrb = ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0)
        img = pad(img, ltrb, fill=0)
        _, h, w = get_dimensions(img)
        if h == th and w == tw:
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


# ----------------------------------------------------------------------------- resizing
def _resize_weights(in_size, out_size, starts, lengths, antialias):
    """Bilinear resampling matrices ``(N, out_size, in_size)`` for the spans ``[start, start + length)``.

    Each row holds triangle-filter weights centred on the output pixel's position in the input,
    widened by the scale factor when shrinking with ``antialias`` (PIL's and torchvision's
    antialiased bilinear), restricted to the span and normalised. Without antialias (or when
    enlarging) this is exactly ``align_corners=False`` bilinear interpolation with edge clamping.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 1, 1)
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1, 1, 1)
    scale = lengths / out_size
    support = np.maximum(scale, 1.0) if antialias else np.ones_like(scale)
    centres = starts + (np.arange(out_size).reshape(1, -1, 1) + 0.5) * scale
    j = np.arange(in_size).reshape(1, 1, -1)
    weights = np.maximum(0.0, 1.0 - np.abs((j + 0.5 - centres) / support))
    weights *= (j >= starts) & (j < starts + lengths)
    total = weights.sum(axis=2, keepdims=True)
    # An output pixel whose filter misses every input pixel (only possible right at a span edge)
    # takes the nearest pixel of the span instead.
    empty = total[..., 0] == 0
    if empty.any():
        nearest = np.clip(np.floor(centres), starts, starts + lengths - 1)[..., 0]
        onehot = (j[0] == nearest[..., None]).astype(np.float64)
        weights = np.where(empty[..., None], onehot, weights)
        total = weights.sum(axis=2, keepdims=True)
    return (weights / total).astype(np.float32)


def _nearest_index(in_size, out_size, starts, lengths):
    """Source indices ``(N, out_size)`` of 'nearest' resizing: ``floor(i * in / out)``, as PyTorch computes it."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, 1)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1, 1)
    scale = (lengths / out_size).astype(np.float32)
    idx = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return starts + np.minimum(idx, lengths - 1)


def _resized_crop_batch(batch, tops, lefts, heights, widths, size, mode, antialias):
    """Crop per-image boxes from ``(N, C, H, W)`` and resize each to ``size = (h, w)``: ``(N, C, h, w)``."""
    n, _, in_h, in_w = batch.shape
    out_h, out_w = size
    tops, lefts, heights, widths = (np.broadcast_to(np.asarray(v, dtype=np.int64), (n,))
                                    for v in (tops, lefts, heights, widths))
    if mode == InterpolationMode.NEAREST:
        rows = _nearest_index(in_h, out_h, tops, heights)
        cols = _nearest_index(in_w, out_w, lefts, widths)
        return batch[np.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]].transpose(0, 3, 1, 2)
    wh = _resize_weights(in_h, out_h, tops, heights, antialias)[:, None]
    ww = _resize_weights(in_w, out_w, lefts, widths, antialias)[:, None]
    x = batch if batch.dtype == np.float32 else batch.astype(np.float32)
    out = np.matmul(np.matmul(wh, x), ww.transpose(0, 1, 3, 2))
    if batch.dtype.kind != "f":
        return _cast_like(np.round(np.clip(out, 0, _bound(batch.dtype))), batch.dtype)
    return out.astype(batch.dtype, copy=False)


def _resize_output_size(h, w, size, max_size, op):
    if isinstance(size, numbers.Number) or len(size) == 1:
        short_target = int(size if isinstance(size, numbers.Number) else size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = short_target, int(short_target * long / short)
        if max_size is not None:
            if max_size <= short_target:
                raise ValueError(f"{op}: max_size = {max_size} must be strictly greater than the requested size "
                                 f"for the smaller edge, {short_target}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if max_size is not None:
        raise ValueError(f"{op}: max_size should only be passed if size is an int or a sequence of length 1, "
                         f"got size={size}")
    return _pair(size, op)


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to ``size``: ``(h, w)``, or an int for the smaller edge (keeping the aspect ratio).

    Bilinear is ``align_corners=False``; with ``antialias`` (the default, as in torchvision)
    shrinking averages over the covered pixels instead of skipping them.
    """
    mode = _mode(interpolation, "resize")
    batch, shape, as_tensor = _to_batch(img, "resize")
    h, w = batch.shape[2:]
    out_h, out_w = _resize_output_size(h, w, size, max_size, "resize")
    if (out_h, out_w) == (h, w):
        return _from_batch(batch, shape, as_tensor)
    out = _resized_crop_batch(batch, 0, 0, h, w, (out_h, out_w), mode, antialias)
    return _from_batch(out, shape, as_tensor)


def resized_crop(img, top, left, height, width, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
    """Crop ``(top, left, height, width)`` then resize to ``size``."""
    mode = _mode(interpolation, "resized_crop")
    batch, shape, as_tensor = _to_batch(img, "resized_crop")
    out = _resized_crop_batch(batch, top, left, height, width, _pair(size, "resized_crop"), mode, antialias)
    return _from_batch(out, shape, as_tensor)


# ----------------------------------------------------------------------------- rotation and affine warps
def _forward_matrices(angle_deg, translate, scale, shear_deg):
    """Per-image 2x3 forward maps ``R(angle) S(scale) ShY ShX`` plus translation, about the origin.

    Coordinates are x right, y down; a positive angle turns clockwise on screen, as in
    torchvision's ``affine``. ShX shifts x by ``-tan(shear_x) * y``, ShY shifts y by
    ``-tan(shear_y) * x``.
    """
    a = np.radians(np.asarray(angle_deg, dtype=np.float64))
    sx = np.radians(np.asarray(shear_deg[0], dtype=np.float64))
    sy = np.radians(np.asarray(shear_deg[1], dtype=np.float64))
    a, sx, sy, scale, tx, ty = np.broadcast_arrays(a, sx, sy, np.asarray(scale, np.float64),
                                                   np.asarray(translate[0], np.float64),
                                                   np.asarray(translate[1], np.float64))
    n = a.shape[0]
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    shear_y = np.zeros((n, 2, 2))
    shear_y[:, 0, 0] = shear_y[:, 1, 1] = 1.0
    shear_y[:, 1, 0] = -np.tan(sy)
    shear_x = np.zeros((n, 2, 2))
    shear_x[:, 0, 0] = shear_x[:, 1, 1] = 1.0
    shear_x[:, 0, 1] = -np.tan(sx)
    linear = scale[:, None, None] * rot @ shear_y @ shear_x
    return linear, np.stack([tx, ty], -1)


def _inverse_maps(linear, shift, centre):
    """Inverse of ``p -> linear @ (p - centre) + centre + shift`` as ``(N, 2, 2)`` and ``(N, 2)``."""
    inv = np.linalg.inv(linear)
    offset = centre - np.einsum("nij,nj->ni", inv, centre + shift)
    return inv, offset


def _warp_batch(batch, inv, offset, out_size, mode, fill):
    """Sample ``(N, C, H, W)`` at ``inv @ p + offset`` for every output pixel centre ``p``.

    Coordinates are relative to the image centre, with pixel centres at half-integers, as in
    torchvision's affine grid with ``grid_sample(align_corners=False)``. Outside the image is zero;
    with ``fill`` given, it blends in ``fill`` by how much of each sample fell outside, the way
    torchvision's tensor backend does.
    """
    n, c, h, w = batch.shape
    out_h, out_w = out_size
    ys = np.arange(out_h) + 0.5 - out_h * 0.5
    xs = np.arange(out_w) + 0.5 - out_w * 0.5
    px = (inv[:, 0, 0, None, None] * xs[None, None, :] + inv[:, 0, 1, None, None] * ys[None, :, None]
          + offset[:, 0, None, None])
    py = (inv[:, 1, 0, None, None] * xs[None, None, :] + inv[:, 1, 1, None, None] * ys[None, :, None]
          + offset[:, 1, None, None])
    # Continuous source positions in pixel-index units.
    sx = (px + w * 0.5 - 0.5).astype(np.float32)
    sy = (py + h * 0.5 - 0.5).astype(np.float32)
    nidx = np.arange(n)[:, None, None]
    fill_arr = None
    if fill is not None:
        fill_arr = np.asarray(fill, dtype=np.float32).ravel()
        if fill_arr.size not in (1, c):
            raise ValueError(f"fill has {fill_arr.size} values for an image with {c} channels")
        fill_arr = np.broadcast_to(fill_arr, (c,))
    if mode == InterpolationMode.NEAREST:
        ix = np.rint(sx).astype(np.int64)
        iy = np.rint(sy).astype(np.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        vals = batch[nidx, :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]  # (N, oh, ow, C)
        outside_val = np.zeros((c,), np.float32) if fill_arr is None else fill_arr
        out = np.where(inside[..., None], vals, outside_val.astype(batch.dtype))
        return out.transpose(0, 3, 1, 2)
    x0 = np.floor(sx)
    y0 = np.floor(sy)
    fx = sx - x0
    fy = sy - y0
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    src = batch.astype(np.float32, copy=False)
    acc = np.zeros((n, out_h, out_w, c), np.float32)
    mask = np.zeros((n, out_h, out_w), np.float32)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            valid = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            wgt = (wx * wy * valid).astype(np.float32)
            acc += wgt[..., None] * src[nidx, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            mask += wgt
    if fill_arr is not None:
        acc = acc * mask[..., None] + (1.0 - mask[..., None]) * fill_arr
    out = acc.transpose(0, 3, 1, 2)
    if batch.dtype.kind != "f":
        return _cast_like(np.round(out), batch.dtype)
    return out.astype(batch.dtype, copy=False)


def _centre_offset(center, h, w):
    if center is None:
        return np.zeros(2)
    return np.array([center[0] - w * 0.5, center[1] - h * 0.5], dtype=np.float64)


def _expanded_size(inv, h, w):
    """Output size that holds the whole turned image (torchvision's rule, 1e-4 tolerance)."""
    # float32 like torchvision: in float64, 30000 * 1e-4 rounds above 3 and the ceil adds a pixel.
    corners = np.array([[-0.5 * w, -0.5 * h], [-0.5 * w, 0.5 * h], [0.5 * w, 0.5 * h], [0.5 * w, -0.5 * h]],
                       dtype=np.float32)
    pts = corners @ inv.T.astype(np.float32)
    half = np.array([w * 0.5, h * 0.5], dtype=np.float32)
    lo = pts.min(axis=0) + half
    hi = pts.max(axis=0) + half
    tol = np.float32(1e-4)
    size = np.ceil(np.trunc(hi / tol) * tol) - np.floor(np.trunc(lo / tol) * tol)
    return int(size[1]), int(size[0])


def _rotate_batch(batch, angles, mode, expand, center, fill):
    n, _, h, w = batch.shape
    linear, shift = _forward_matrices(-np.broadcast_to(np.asarray(angles, np.float64), (n,)), (0.0, 0.0), 1.0,
                                      (0.0, 0.0))
    centre = np.broadcast_to(_centre_offset(center, h, w), (n, 2))
    inv, offset = _inverse_maps(linear, shift, centre)
    out_size = (h, w)
    if expand:
        sizes = {_expanded_size(inv[i], h, w) for i in range(n)}
        if len(sizes) > 1:
            raise ValueError("rotate: expand=True gives each image of a batch its own size; rotate images one by one")
        out_size = sizes.pop()
    return _warp_batch(batch, inv, offset, out_size, mode, fill)


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """Turn the image ``angle`` degrees counter-clockwise about its centre (or ``center=(x, y)``).

    ``expand`` enlarges the output to hold the whole turned image; ``fill`` is the value (or one per
    channel) for pixels from outside the input, zero when ``None``.
    """
    mode = _mode(interpolation, "rotate")
    batch, shape, as_tensor = _to_batch(img, "rotate")
    out = _rotate_batch(batch, angle, mode, expand, center, fill)
    return _from_batch(out, shape, as_tensor)


def _affine_batch(batch, angles, translates, scales, shears, mode, center, fill):
    n, _, h, w = batch.shape
    translates = np.broadcast_to(np.asarray(translates, np.float64), (n, 2))
    shears = np.broadcast_to(np.asarray(shears, np.float64), (n, 2))
    linear, shift = _forward_matrices(np.broadcast_to(np.asarray(angles, np.float64), (n,)),
                                      (translates[:, 0], translates[:, 1]), scales, (shears[:, 0], shears[:, 1]))
    centre = np.broadcast_to(_centre_offset(center, h, w), (n, 2))
    inv, offset = _inverse_maps(linear, shift, centre)
    return _warp_batch(batch, inv, offset, (h, w), mode, fill)


def affine(img, angle, translate, scale, shear, interpolation=InterpolationMode.NEAREST, fill=None, center=None):
    """Rotate by ``angle`` degrees (clockwise, as torchvision documents ``affine``), scale, shear
    (degrees; a number or ``(shear_x, shear_y)``) and translate ``(dx, dy)`` pixels, about the centre."""
    mode = _mode(interpolation, "affine")
    if scale <= 0:
        raise ValueError(f"affine: scale must be positive, got {scale}")
    if isinstance(shear, numbers.Number):
        shear = (shear, 0.0)
    shear = tuple(shear) + (0.0,) * (2 - len(shear))
    if len(translate) != 2:
        raise ValueError(f"affine: translate should be a sequence of length 2, got {translate}")
    batch, shape, as_tensor = _to_batch(img, "affine")
    out = _affine_batch(batch, angle, translate, scale, shear[:2], mode, center, fill)
    return _from_batch(out, shape, as_tensor)


# ----------------------------------------------------------------------------- colour
def _gray(batch_float):
    return np.einsum("nchw,c->nhw", batch_float, _GRAY_WEIGHTS)[:, None]


def rgb_to_grayscale(img, num_output_channels=1):
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` of an RGB image (a one-channel image is copied), with 1 or
    3 output channels."""
    batch, shape, as_tensor = _to_batch(img, "rgb_to_grayscale", need_channels=True)
    if batch.shape[1] not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: expected 1 or 3 channels, got {batch.shape[1]}")
    if num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: num_output_channels should be 1 or 3, got {num_output_channels}")
    if batch.shape[1] == 1:
        gray = batch.copy()
    else:
        gray = _cast_like(_gray(batch.astype(np.float32)), batch.dtype)
    if num_output_channels == 3:
        gray = np.repeat(gray, 3, axis=1)
    lead = (len(shape) == 3)
    return _wrap(gray[0] if lead else gray, as_tensor)


def to_grayscale(img, num_output_channels=1):
    """torchvision's name for ``rgb_to_grayscale`` on PIL images (here any image kind)."""
    return rgb_to_grayscale(img, num_output_channels)


def _blend(img1, img2, ratio, dtype):
    ratio = np.asarray(ratio, np.float32).reshape(-1, 1, 1, 1)
    out = ratio * img1 + (1.0 - ratio) * img2
    return np.clip(out, 0.0, _bound(dtype))


def _brightness_batch(x, factors, dtype):
    return _blend(x, 0.0, factors, dtype)


def _contrast_batch(x, factors, dtype):
    if x.shape[1] == 3:
        gray = _gray(x)
        if dtype.kind != "f":
            gray = np.trunc(gray)
        mean = gray.mean(axis=(1, 2, 3), keepdims=True)
    else:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _blend(x, mean, factors, dtype)


def _saturation_batch(x, factors, dtype):
    if x.shape[1] == 1:
        return x
    gray = _gray(x)
    if dtype.kind != "f":
        gray = np.trunc(gray)
    return _blend(x, gray, factors, dtype)


def _hue_batch(x, factors, dtype):
    if x.shape[1] == 1:
        return x
    scale = 255.0 if dtype.kind != "f" else 1.0
    rgb = x / scale
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    maxc = rgb.max(axis=1)
    minc = rgb.min(axis=1)
    delta = maxc - minc
    v = maxc
    s = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1.0), 0.0)
    safe = np.where(delta > 0, delta, 1.0)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    h = (h + np.asarray(factors, np.float32).reshape(-1, 1, 1)) % 1.0
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    i = i.astype(np.int64) % 6
    choices_r = np.stack([v, q, p, p, t, v])
    choices_g = np.stack([t, v, v, q, p, p])
    choices_b = np.stack([p, p, t, v, v, q])
    pick = i[None]
    out = np.stack([np.take_along_axis(ch, pick, 0)[0] for ch in (choices_r, choices_g, choices_b)], axis=1)
    out = np.clip(out, 0.0, 1.0)
    if dtype.kind != "f":
        # torchvision converts back with x * (255 + 1 - 1e-3), truncated.
        return np.trunc(out * (255.0 + 1.0 - 1e-3))
    return out.astype(np.float32)


def _colour_op(img, factor, fn, op, check=None):
    batch, shape, as_tensor = _to_batch(img, op, need_channels=True)
    if check is not None:
        check(factor)
    out = fn(batch.astype(np.float32), factor, batch.dtype)
    return _from_batch(_cast_like(out, batch.dtype), shape, as_tensor)


def _nonneg(name):
    def check(factor):
        if factor < 0:
            raise ValueError(f"{name}: factor ({factor}) is not non-negative")
    return check


def adjust_brightness(img, brightness_factor):
    """Scale intensities by ``brightness_factor`` (0 gives black, 1 the original), clipped to range."""
    return _colour_op(img, brightness_factor, _brightness_batch, "adjust_brightness", _nonneg("adjust_brightness"))


def adjust_contrast(img, contrast_factor):
    """Blend with the image's mean grey level: 0 gives flat grey, 1 the original."""
    return _colour_op(img, contrast_factor, _contrast_batch, "adjust_contrast", _nonneg("adjust_contrast"))


def adjust_saturation(img, saturation_factor):
    """Blend with the greyscale image: 0 gives grey, 1 the original, 2 doubles the saturation."""
    return _colour_op(img, saturation_factor, _saturation_batch, "adjust_saturation", _nonneg("adjust_saturation"))


def adjust_hue(img, hue_factor):
    """Rotate the hue by ``hue_factor`` turns, in ``[-0.5, 0.5]``."""
    def check(f):
        if not -0.5 <= f <= 0.5:
            raise ValueError(f"adjust_hue: hue_factor ({f}) is not in [-0.5, 0.5]")
    return _colour_op(img, hue_factor, _hue_batch, "adjust_hue", check)


# ----------------------------------------------------------------------------- erasing
def _erase_batch(batch, tops, lefts, heights, widths, values):
    """Set per-image boxes to ``values`` (broadcastable to ``(N, C, H, W)``); zero-size boxes are no-ops."""
    n, _, h, w = batch.shape
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    tops, lefts, heights, widths = (np.asarray(v, np.int64).reshape(-1, 1) for v in (tops, lefts, heights, widths))
    in_rows = (rows >= tops) & (rows < tops + heights)
    in_cols = (cols >= lefts) & (cols < lefts + widths)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return np.where(mask, np.asarray(values).astype(batch.dtype, copy=False), batch)


def erase(img, i, j, h, w, v, inplace=False):
    """Replace the ``h`` x ``w`` box at row ``i``, column ``j`` with ``v`` (a number or an array
    broadcastable to ``(C, h, w)``)."""
    arr, as_tensor = _unwrap(img, "erase")
    target = arr if inplace else arr.copy()
    target[..., i:i + h, j:j + w] = np.asarray(v.array if isinstance(v, Tensor) else v, dtype=arr.dtype)
    if inplace:
        return img
    return _wrap(target, as_tensor)
