"""torchvision.transforms.functional's names: the operations of ``somanet.data.transforms.functional``.

Every function takes a PIL image, a ``(C, H, W)`` Tensor or ndarray (or a batch ``(N, C, H, W)``) and
returns the same kind; ``to_tensor`` / ``pil_to_tensor`` / ``to_pil_image`` convert between them.
"""
from ...data.transforms.functional import (InterpolationMode, to_tensor, pil_to_tensor, to_pil_image, to_grayscale,
                                           normalize, hflip, vflip, pad, crop, center_crop, resize, resized_crop,
                                           rotate, affine, rgb_to_grayscale, adjust_brightness, adjust_contrast,
                                           adjust_saturation, adjust_hue, erase, get_dimensions)

__all__ = ["InterpolationMode", "to_tensor", "pil_to_tensor", "to_pil_image", "to_grayscale", "normalize", "hflip",
           "vflip", "pad", "crop", "center_crop", "resize", "resized_crop", "rotate", "affine", "rgb_to_grayscale",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "erase", "get_dimensions",
           "get_image_size", "get_image_num_channels"]


def get_image_size(img):
    """``[width, height]`` of an image (torchvision's older helper; ``get_dimensions`` gives ``[C, H, W]``)."""
    _, height, width = get_dimensions(img)
    return [width, height]


def get_image_num_channels(img):
    """The number of channels of an image."""
    return get_dimensions(img)[0]
