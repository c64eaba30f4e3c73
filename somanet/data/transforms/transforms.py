"""Transform classes with torchvision's names, arguments and defaults.

Each works on one image ``(C, H, W)`` (or ``(H, W)``) and on a batch ``(N, C, H, W)``, NumPy array or
somanet Tensor, and on a PIL image, and returns the same kind. Random transforms draw from their ``generator`` (a
``somanet.Generator``, a somanet extension) or, by default, from somanet's default generator, so
``somanet.manual_seed`` makes them reproducible; in DataLoader workers the default generator is
seeded per worker.

One deliberate difference from torchvision: on a batch, a random transform draws **separate
parameters for every image** (its own crop, flip, angle, jitter...), exactly as if it had been
applied to each image in turn, but in a few vectorised NumPy calls. torchvision applies one draw
to the whole batch. ``MixUp`` and ``CutMix`` are batch transforms by nature and draw once per batch.
"""
import math
import numbers

import numpy as np

from ...autograd.tensor import Tensor
from ...random import numpy_rng
from . import functional as F
from .functional import InterpolationMode

__all__ = ["Compose", "Lambda", "ToTensor", "PILToTensor", "ToPILImage", "Normalize", "Pad", "RandomCrop",
           "CenterCrop", "Resize", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
           "RandomRotation", "RandomAffine", "ColorJitter", "Grayscale", "GaussianNoise", "RandomErasing"]


def _check_p(p, cls):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{cls}: probability p should be between 0 and 1, got {p}")
    return float(p)


def _range(value, name, cls, center=1.0, bound=(0.0, float("inf")), clip_first=True):
    """A number ``v`` becomes ``[center - v, center + v]``; a pair is taken as ``(min, max)``."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"{cls}: if {name} is a single number, it must be non-negative, got {value}")
        value = [center - float(value), center + float(value)]
        if clip_first:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
        if not bound[0] <= value[0] <= value[1] <= bound[1]:
            raise ValueError(f"{cls}: {name} values should be between {bound} with min <= max, got {value}")
    else:
        raise TypeError(f"{cls}: {name} should be a single number or a list/tuple of length 2, got {value!r}")
    return None if value[0] == value[1] == center else value


class Compose:
    """Apply ``transforms`` one after another.

    >>> t = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        body = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class Lambda:
    """Apply a user function ``lambd(img)``."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToTensor:
    """PIL image or uint8 ``(H, W, C)`` (or ``(H, W)``) array to a float32 ``(C, H, W)`` Tensor in [0, 1].

    A ``(N, H, W, C)`` batch becomes ``(N, C, H, W)``. Other dtypes keep their values, as in torchvision.
    """

    def __call__(self, pic):
        return F.to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class PILToTensor:
    """PIL image to a ``(C, H, W)`` Tensor of the image's own dtype (uint8 stays 0-255)."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToPILImage:
    """``(C, H, W)`` Tensor or ``(H, W, C)`` ndarray to a PIL image (see ``functional.to_pil_image``)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)

    def __repr__(self):
        return f"{type(self).__name__}(mode={self.mode})" if self.mode is not None else f"{type(self).__name__}()"


class Normalize:
    """``(x - mean[c]) / std[c]`` for each channel ``c`` of a float image or batch.

    Args:
        mean: per-channel means (a sequence of C numbers).
        std: per-channel standard deviations.
        inplace: modify the input array.
    """

    def __init__(self, mean, std, inplace=False):
        self.mean = mean
        self.std = std
        self.inplace = inplace
        self._cache = {}

    def __call__(self, tensor):
        arr = tensor.array if isinstance(tensor, Tensor) else tensor
        dtype = getattr(arr, "dtype", None)
        if not isinstance(arr, np.ndarray) or dtype.kind != "f" or arr.ndim < 3:
            return F.normalize(tensor, self.mean, self.std, self.inplace)
        # The per-channel constants are converted once per dtype, not on every image.
        consts = self._cache.get(dtype)
        if consts is None:
            consts = (np.asarray(self.mean, dtype=dtype).reshape(-1, 1, 1),
                      np.asarray(self.std, dtype=dtype).reshape(-1, 1, 1))
            F._check_std(consts[1], dtype)
            self._cache[dtype] = consts
        return F._normalize_arrays(tensor, arr, isinstance(tensor, Tensor), consts[0], consts[1], self.inplace)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Pad:
    """Pad the border (see ``functional.pad`` for the forms of ``padding`` and the modes)."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self.padding = F._padding_ltrb(padding, "Pad")
        if padding_mode not in F._PAD_MODES:
            raise ValueError(f"Pad: padding_mode should be one of {F._PAD_MODES}, got {padding_mode!r}")
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self):
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class RandomCrop:
    """Crop a random ``size`` region, after optional padding.

    Args:
        size: ``(h, w)`` or an int for a square.
        padding: padding added first: an int, ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.
        pad_if_needed: pad images smaller than ``size`` so a crop fits.
        fill: constant padding value (a number or one per channel).
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.
        generator: a ``somanet.Generator``; the default generator if ``None``.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant", *, generator=None):
        self.size = F._pair(size, "RandomCrop")
        self.padding = None if padding is None else F._padding_ltrb(padding, "RandomCrop")
        if padding_mode not in F._PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode should be one of {F._PAD_MODES}, got {padding_mode!r}")
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, "RandomCrop")
        if self.padding is not None:
            batch = F._pad_batch(batch, self.padding, self.fill, self.padding_mode, "RandomCrop")
        th, tw = self.size
        if self.pad_if_needed and batch.shape[3] < tw:
            d = tw - batch.shape[3]
            batch = F._pad_batch(batch, (d, 0, d, 0), self.fill, self.padding_mode, "RandomCrop")
        if self.pad_if_needed and batch.shape[2] < th:
            d = th - batch.shape[2]
            batch = F._pad_batch(batch, (0, d, 0, d), self.fill, self.padding_mode, "RandomCrop")
        n, _, h, w = batch.shape
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the (padded) input image "
                             f"size {(h, w)}")
        # floor(u * k) is uniform on 0..k-1 and, for a few draws, much cheaper than Generator.integers.
        u = numpy_rng(self.generator).random((2, n))
        tops = (u[0] * (h - th + 1)).astype(np.int64)
        lefts = (u[1] * (w - tw + 1)).astype(np.int64)
        return F._from_batch(F._crop_batch(batch, tops, lefts, th, tw), shape, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Crop the central ``size`` region (zero-padding images that are smaller)."""

    def __init__(self, size):
        self.size = F._pair(size, "CenterCrop")

    def __call__(self, img):
        return F.center_crop(img, self.size)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


class Resize:
    """Resize to ``size`` (``(h, w)``, or an int for the smaller edge); see ``functional.resize``."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        if not isinstance(size, (numbers.Number, tuple, list)):
            raise TypeError(f"Resize: size should be an int or a sequence, got {type(size).__name__}")
        self.size = size
        self.interpolation = F._mode(interpolation, "Resize")
        self.max_size = max_size
        self.antialias = antialias

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation})"


class RandomResizedCrop:
    """Crop a random region of random area and aspect ratio, then resize it to ``size``.

    Args:
        size: output ``(h, w)`` or an int.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        antialias: antialias when shrinking (bilinear only).
        generator: a ``somanet.Generator``; the default generator if ``None``.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=InterpolationMode.BILINEAR,
                 antialias=True, *, generator=None):
        self.size = F._pair(size, "RandomResizedCrop")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio should be of kind (min, max), got {scale}, {ratio}")
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = F._mode(interpolation, "RandomResizedCrop")
        self.antialias = antialias
        self.generator = generator

    def _params(self, n, h, w, rng):
        area = h * w
        log_ratio = np.log(self.ratio)
        target = area * rng.uniform(self.scale[0], self.scale[1], size=(n, 10))
        aspect = np.exp(rng.uniform(log_ratio[0], log_ratio[1], size=(n, 10)))
        cw = np.rint(np.sqrt(target * aspect)).astype(np.int64)
        ch = np.rint(np.sqrt(target / aspect)).astype(np.int64)
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = ok.argmax(axis=1)
        rows = np.arange(n)
        cw, ch = cw[rows, first], ch[rows, first]
        # Fallback when ten tries fail: the largest central crop within the ratio range.
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            fw, fh = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            fw, fh = int(round(h * max(self.ratio))), h
        else:
            fw, fh = w, h
        found = ok.any(axis=1)
        cw = np.where(found, cw, fw)
        ch = np.where(found, ch, fh)
        tops = np.where(found, np.floor(rng.random(n) * (h - ch + 1)).astype(np.int64), (h - fh) // 2)
        lefts = np.where(found, np.floor(rng.random(n) * (w - cw + 1)).astype(np.int64), (w - fw) // 2)
        return tops, lefts, ch, cw

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, "RandomResizedCrop")
        n, _, h, w = batch.shape
        tops, lefts, ch, cw = self._params(n, h, w, numpy_rng(self.generator))
        out = F._resized_crop_batch(batch, tops, lefts, ch, cw, self.size, self.interpolation, self.antialias)
        return F._from_batch(out, shape, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class _RandomFlip:
    _axis = -1

    def __init__(self, p=0.5, *, generator=None):
        self.p = _check_p(p, type(self).__name__)
        self.generator = generator

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, type(self).__name__)
        flip = numpy_rng(self.generator).random(batch.shape[0]) < self.p
        flipped = np.flip(batch, axis=self._axis)
        if flip.all():
            out = flipped
        elif not flip.any():
            return img
        else:
            out = np.where(flip[:, None, None, None], flipped, batch)
        return F._from_batch(out, shape, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability ``p`` (each image of a batch on its own)."""

    _axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability ``p`` (each image of a batch on its own)."""

    _axis = -2


def _fill_list(fill, channels, cls):
    if fill is None:
        return None
    if isinstance(fill, numbers.Number):
        return [float(fill)] * channels
    fill = [float(f) for f in fill]
    if len(fill) not in (1, channels):
        raise ValueError(f"{cls}: fill has {len(fill)} values for an image with {channels} channels")
    return fill


class RandomRotation:
    """Turn by a random angle in ``degrees`` (counter-clockwise for positive angles).

    Args:
        degrees: a number ``d`` for ``(-d, d)``, or ``(min, max)``.
        interpolation: ``"nearest"`` (default) or ``"bilinear"``.
        expand: enlarge the output to hold the whole turned image (single images only).
        center: ``(x, y)`` pixel to turn about; the image centre by default.
        fill: value for pixels from outside the image (a number or one per channel).
        generator: a ``somanet.Generator``; the default generator if ``None``.
    """

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0, *,
                 generator=None):
        self.degrees = _range(degrees, "degrees", "RandomRotation", center=0.0, bound=(-math.inf, math.inf),
                              clip_first=False) or [0.0, 0.0]
        self.interpolation = F._mode(interpolation, "RandomRotation")
        self.expand = expand
        if center is not None and len(center) != 2:
            raise ValueError(f"RandomRotation: center should be a sequence of length 2, got {center}")
        self.center = center
        self.fill = fill
        self.generator = generator

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, "RandomRotation")
        angles = numpy_rng(self.generator).uniform(self.degrees[0], self.degrees[1], size=batch.shape[0])
        fill = _fill_list(self.fill, batch.shape[1], "RandomRotation")
        out = F._rotate_batch(batch, angles, self.interpolation, self.expand, self.center, fill)
        return F._from_batch(out, shape, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation})"


class RandomAffine:
    """Random rotation, translation, scaling and shear, keeping the centre fixed.

    Args:
        degrees: rotation range: ``d`` for ``(-d, d)`` or ``(min, max)`` (0 for none).
        translate: ``(a, b)``: horizontal shift up to ``a * width`` and vertical up to ``b * height``
            pixels either way (rounded to whole pixels).
        scale: ``(min, max)`` scale factor range.
        shear: ``s`` for an x-shear in ``(-s, s)`` degrees, ``(min, max)`` for x, or
            ``(xmin, xmax, ymin, ymax)`` for both.
        interpolation: ``"nearest"`` (default) or ``"bilinear"``.
        fill: value for pixels from outside the image.
        center: ``(x, y)`` pixel kept fixed; the image centre by default.
        generator: a ``somanet.Generator``; the default generator if ``None``.
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None, interpolation=InterpolationMode.NEAREST,
                 fill=0, center=None, *, generator=None):
        self.degrees = _range(degrees, "degrees", "RandomAffine", center=0.0, bound=(-math.inf, math.inf),
                              clip_first=False) or [0.0, 0.0]
        if translate is not None:
            if len(translate) != 2 or not all(0.0 <= t <= 1.0 for t in translate):
                raise ValueError(f"RandomAffine: translate should be a pair of fractions in [0, 1], got {translate}")
        self.translate = translate
        if scale is not None:
            if len(scale) != 2 or not all(s > 0 for s in scale) or scale[0] > scale[1]:
                raise ValueError(f"RandomAffine: scale should be a (min, max) pair of positive numbers, got {scale}")
        self.scale = scale
        if shear is None:
            self.shear = None
        elif isinstance(shear, numbers.Number):
            if shear < 0:
                raise ValueError(f"RandomAffine: if shear is a single number, it must be non-negative, got {shear}")
            self.shear = [-float(shear), float(shear), 0.0, 0.0]
        elif len(shear) == 2:
            self.shear = [float(shear[0]), float(shear[1]), 0.0, 0.0]
        elif len(shear) == 4:
            self.shear = [float(s) for s in shear]
        else:
            raise ValueError(f"RandomAffine: shear should be a number or a sequence of 2 or 4 numbers, got {shear}")
        self.interpolation = F._mode(interpolation, "RandomAffine")
        self.fill = fill
        if center is not None and len(center) != 2:
            raise ValueError(f"RandomAffine: center should be a sequence of length 2, got {center}")
        self.center = center
        self.generator = generator

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, "RandomAffine")
        n, c, h, w = batch.shape
        rng = numpy_rng(self.generator)
        angles = rng.uniform(self.degrees[0], self.degrees[1], size=n)
        translates = np.zeros((n, 2))
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * w, self.translate[1] * h
            translates[:, 0] = np.rint(rng.uniform(-max_dx, max_dx, size=n))
            translates[:, 1] = np.rint(rng.uniform(-max_dy, max_dy, size=n))
        scales = rng.uniform(self.scale[0], self.scale[1], size=n) if self.scale is not None else np.ones(n)
        shears = np.zeros((n, 2))
        if self.shear is not None:
            shears[:, 0] = rng.uniform(self.shear[0], self.shear[1], size=n)
            shears[:, 1] = rng.uniform(self.shear[2], self.shear[3], size=n)
        fill = _fill_list(self.fill, c, "RandomAffine")
        out = F._affine_batch(batch, angles, translates, scales, shears, self.interpolation, self.center, fill)
        return F._from_batch(out, shape, as_tensor)

    def __repr__(self):
        return (f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"shear={self.shear})")


class ColorJitter:
    """Randomly change brightness, contrast, saturation and hue, in a random order.

    Args:
        brightness, contrast, saturation: ``v`` for a factor in ``[max(0, 1 - v), 1 + v]``, or ``(min, max)``.
        hue: ``h`` for a hue shift in ``[-h, h]`` turns (``h <= 0.5``), or ``(min, max)``.
        generator: a ``somanet.Generator``; the default generator if ``None``.

    Each image of a batch gets its own factors and its own order of the four adjustments.
    """

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, *, generator=None):
        self.brightness = _range(brightness, "brightness", "ColorJitter")
        self.contrast = _range(contrast, "contrast", "ColorJitter")
        self.saturation = _range(saturation, "saturation", "ColorJitter")
        self.hue = _range(hue, "hue", "ColorJitter", center=0.0, bound=(-0.5, 0.5), clip_first=False)
        if self.hue is not None and not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"ColorJitter: hue values should be between (-0.5, 0.5), got {hue}")
        self.generator = generator

    def __call__(self, img):
        batch, shape, as_tensor = F._to_batch(img, "ColorJitter", need_channels=True)
        dtype = batch.dtype
        n = batch.shape[0]
        rng = numpy_rng(self.generator)
        order = np.argsort(rng.random((n, 4)), axis=1)
        ops = [(self.brightness, F._brightness_batch), (self.contrast, F._contrast_batch),
               (self.saturation, F._saturation_batch), (self.hue, F._hue_batch)]
        factors = [rng.uniform(r[0], r[1], size=n) if r is not None else None for r, _ in ops]
        x = batch.astype(np.float32)
        for stage in range(4):
            for j, (r, fn) in enumerate(ops):
                if r is None:
                    continue
                sel = order[:, stage] == j
                if not sel.any():
                    continue
                part = fn(x[sel], factors[j][sel], dtype)
                # Integer images are truncated after every step, as torchvision casts back each time.
                x[sel] = np.trunc(part) if dtype.kind != "f" else part
        return F._from_batch(F._cast_like(x, dtype), shape, as_tensor)

    def __repr__(self):
        return (f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class Grayscale:
    """RGB to grey with ``num_output_channels`` 1 or 3."""

    def __init__(self, num_output_channels=1):
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)

    def __repr__(self):
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"


class GaussianNoise:
    """Add Gaussian noise ``N(mean, sigma^2)`` to a float image, clipped to [0, 1] when ``clip``
    (torchvision.transforms.v2.GaussianNoise)."""

    def __init__(self, mean=0.0, sigma=0.1, clip=True, *, generator=None):
        if sigma < 0:
            raise ValueError(f"GaussianNoise: sigma shouldn't be negative, got {sigma}")
        self.mean = float(mean)
        self.sigma = float(sigma)
        self.clip = clip
        self.generator = generator

    def __call__(self, img):
        arr, as_tensor = F._unwrap(img, "GaussianNoise")
        if arr.dtype.kind != "f":
            raise TypeError(f"GaussianNoise: input should be a float image, got dtype {arr.dtype}")
        noise = numpy_rng(self.generator).standard_normal(arr.shape, dtype=np.float32)
        out = arr + (noise * self.sigma + self.mean).astype(arr.dtype, copy=False)
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return F._wrap(out, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, sigma={self.sigma}, clip={self.clip})"


class RandomErasing:
    """With probability ``p``, erase a random box of a float image (Zhong et al., 2017).

    Args:
        p: probability of erasing (each image of a batch on its own).
        scale: range of the box's area as a fraction of the image's.
        ratio: range of the box's aspect ratio (height / width), sampled log-uniformly.
        value: fill: a number, one value per channel, or ``"random"`` for standard normal noise.
        inplace: modify the input array.
        generator: a ``somanet.Generator``; the default generator if ``None``.
    """

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False, *, generator=None):
        if not isinstance(value, (numbers.Number, str, tuple, list)):
            raise TypeError(f"RandomErasing: argument value should be a number, str, tuple or list, got {value!r}")
        if isinstance(value, str) and value != "random":
            raise ValueError(f"RandomErasing: if value is a str, it should be 'random', got {value!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomErasing: scale and ratio should be of kind (min, max), got {scale}, {ratio}")
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"RandomErasing: scale should be between 0 and 1, got {scale}")
        self.p = _check_p(p, "RandomErasing")
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.value = value
        self.inplace = inplace
        self.generator = generator

    def __call__(self, img):
        if not isinstance(img, (Tensor, np.ndarray)):
            raise TypeError(f"RandomErasing: img should be a Tensor or ndarray image, got {type(img).__name__}; "
                            f"apply it after ToTensor")
        batch, shape, as_tensor = F._to_batch(img, "RandomErasing", need_channels=True)
        n, c, h, w = batch.shape
        rng = numpy_rng(self.generator)
        apply = rng.random(n) < self.p
        area = h * w
        log_ratio = np.log(self.ratio)
        erase_area = area * rng.uniform(self.scale[0], self.scale[1], size=(n, 10))
        aspect = np.exp(rng.uniform(log_ratio[0], log_ratio[1], size=(n, 10)))
        eh = np.rint(np.sqrt(erase_area * aspect)).astype(np.int64)
        ew = np.rint(np.sqrt(erase_area / aspect)).astype(np.int64)
        ok = (eh < h) & (ew < w)
        first = ok.argmax(axis=1)
        rows = np.arange(n)
        eh, ew = eh[rows, first], ew[rows, first]
        apply &= ok.any(axis=1)
        eh, ew = np.where(apply, eh, 0), np.where(apply, ew, 0)
        tops = np.floor(rng.random(n) * (h - eh + 1)).astype(np.int64)
        lefts = np.floor(rng.random(n) * (w - ew + 1)).astype(np.int64)
        if isinstance(self.value, str):
            values = rng.standard_normal(batch.shape, dtype=np.float32)
        else:
            values = np.asarray(self.value, dtype=np.float32).reshape(-1)
            if values.size not in (1, c):
                raise ValueError(f"RandomErasing: value has {values.size} entries for an image with {c} channels")
            values = values.reshape(1, -1, 1, 1)
        out = F._erase_batch(batch, tops, lefts, eh, ew, values)
        if self.inplace:
            batch[...] = out
            return img
        return F._from_batch(out, shape, as_tensor)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"
