"""make_grid against torchvision's algorithm written in plain PyTorch; save_image through Pillow."""
import io
import math
import os

import numpy as np
import pytest

import somanet
from somanet.vision import utils

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")


def reference_make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
                        pad_value=0.0):
    """torchvision.utils.make_grid's documented behaviour, in torch."""
    if isinstance(tensor, list):
        tensor = torch.stack(tensor)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 3:
        if tensor.size(0) == 1:
            tensor = torch.cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 4 and tensor.size(1) == 1:
        tensor = torch.cat((tensor, tensor, tensor), 1)
    if normalize:
        tensor = tensor.clone()

        def rescale(img, low, high):
            img.clamp_(min=low, max=high)
            img.sub_(low).div_(max(high - low, 1e-5))

        def by_range(t):
            if value_range is not None:
                rescale(t, value_range[0], value_range[1])
            else:
                rescale(t, float(t.min()), float(t.max()))

        if scale_each:
            for t in tensor:
                by_range(t)
        else:
            by_range(tensor)
    if tensor.size(0) == 1:
        return tensor.squeeze(0)
    nmaps = tensor.size(0)
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = int(tensor.size(2) + padding), int(tensor.size(3) + padding)
    grid = tensor.new_full((tensor.size(1), height * ymaps + padding, width * xmaps + padding), pad_value)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            grid.narrow(1, y * height + padding, height - padding).narrow(
                2, x * width + padding, width - padding).copy_(tensor[k])
            k += 1
    return grid


def _batch(shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).random(shape) * scale + shift).astype(np.float32)


CASES = [
    dict(shape=(10, 3, 5, 7)),
    dict(shape=(10, 3, 5, 7), nrow=4, padding=0),
    dict(shape=(5, 1, 6, 6), nrow=3, padding=3, pad_value=0.5),
    dict(shape=(7, 3, 4, 4), normalize=True, scale=4.0, shift=-2.0),
    dict(shape=(7, 3, 4, 4), normalize=True, value_range=(-1.0, 1.0), scale=4.0, shift=-2.0),
    dict(shape=(6, 2, 4, 5), normalize=True, scale_each=True, scale=3.0),
    dict(shape=(1, 3, 4, 4)),
    dict(shape=(1, 4, 4)),
    dict(shape=(4, 4)),
    dict(shape=(3, 6, 6), padding=1),
    dict(shape=(9, 3, 2, 3), nrow=20),
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_make_grid_matches_torchvision(case):
    case = dict(case)
    x = _batch(case.pop("shape"), scale=case.pop("scale", 1.0), shift=case.pop("shift", 0.0))
    ours = utils.make_grid(somanet.tensor(x), **case)
    ref = reference_make_grid(torch.from_numpy(x.copy()), **case)
    assert isinstance(ours, somanet.Tensor)
    assert ours.shape == tuple(ref.shape) and ours.dtype == np.float32
    np.testing.assert_allclose(ours.array, ref.numpy(), rtol=1e-6, atol=1e-7)


def test_make_grid_of_a_list_and_input_untouched():
    images = [_batch((3, 4, 5), seed=s) for s in range(3)]
    before = [i.copy() for i in images]
    ours = utils.make_grid([somanet.tensor(i) for i in images], nrow=2, normalize=True)
    ref = reference_make_grid([torch.from_numpy(i) for i in images], nrow=2, normalize=True)
    np.testing.assert_allclose(ours.array, ref.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(images, before):
        np.testing.assert_array_equal(a, b)


def test_make_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        utils.make_grid(somanet.zeros(1, 1, 1, 1, 1))
    with pytest.raises(TypeError, match="value_range"):
        utils.make_grid(somanet.zeros(2, 3, 4, 4), normalize=True, value_range=1.0)


def _reference_pixels(x, **kwargs):
    grid = reference_make_grid(torch.from_numpy(x), **kwargs)
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def test_save_image_to_a_path_is_atomic_and_exact(tmp_path):
    x = _batch((6, 3, 8, 9), seed=3, scale=1.2, shift=-0.1)  # some values outside [0, 1] get clamped
    path = tmp_path / "grid.png"
    utils.save_image(somanet.tensor(x), path, nrow=3)
    assert os.listdir(tmp_path) == ["grid.png"]
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), _reference_pixels(x, nrow=3))
    utils.save_image(somanet.tensor(x[:1]), str(path))  # overwriting keeps one file
    assert os.listdir(tmp_path) == ["grid.png"]


def test_save_image_to_a_file_object_with_format():
    x = _batch((2, 1, 5, 5), seed=4)
    buf = io.BytesIO()
    utils.save_image(somanet.tensor(x), buf, format="PNG", padding=1, pad_value=1.0)
    buf.seek(0)
    with Image.open(buf) as img:
        np.testing.assert_array_equal(np.asarray(img), _reference_pixels(x, padding=1, pad_value=1.0))


def test_save_image_unknown_extension_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        utils.save_image(somanet.zeros(3, 4, 4), tmp_path / "grid.unknownext")
    assert os.listdir(tmp_path) == []
    utils.save_image(somanet.zeros(3, 4, 4), tmp_path / "grid.bin", format="PNG")
    assert os.listdir(tmp_path) == ["grid.bin"]
