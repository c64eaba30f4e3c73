"""Transforms: torchvision semantics on hand-computed cases and against torch's own resampling
primitives (interpolate, grid_sample, pad), reproducibility under seeds, per-image batch draws."""
import math

import numpy as np
import pytest

import somanet
from somanet.data import TensorDataset, compute_mean_std
from somanet.data import transforms as T
from somanet.data.transforms import functional as F
from reference import torch_or_skip


def _img(c=1, h=4, w=4, dtype=np.float32):
    return np.arange(c * h * w, dtype=dtype).reshape(c, h, w)


# ----------------------------------------------------------------------------- hand-computed semantics
def test_to_tensor_and_normalize():
    hwc = np.array([[[0, 255, 51]], [[102, 204, 0]]], dtype=np.uint8)  # (2, 1, 3)
    t = T.ToTensor()(hwc)
    assert isinstance(t, somanet.Tensor) and t.shape == (3, 2, 1) and t.dtype == np.float32
    np.testing.assert_allclose(t.array[:, 0, 0], [0.0, 1.0, 0.2], atol=1e-7)
    np.testing.assert_allclose(t.array[:, 1, 0], [0.4, 0.8, 0.0], atol=1e-7)
    assert T.ToTensor()(np.zeros((5, 6), np.uint8)).shape == (1, 5, 6)
    n = T.Normalize((0.5, 0.0, 1.0), (0.5, 2.0, 1.0))(t)
    np.testing.assert_allclose(n.array[:, 0, 0], [-1.0, 0.5, -0.8], atol=1e-6)
    batch = np.ones((2, 3, 2, 2), np.float32)
    np.testing.assert_allclose(T.Normalize((1, 0, 0), (1, 1, 0.5))(batch)[:, 2], 2.0)
    with pytest.raises(TypeError, match="float"):
        T.Normalize((0.5,), (0.5,))(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="zero"):
        T.Normalize((0.5,), (0.0,))(np.zeros((1, 2, 2), np.float32))


def test_flips():
    img = _img(1, 2, 3)
    np.testing.assert_array_equal(F.hflip(img)[0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(F.vflip(img)[0], [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(img), F.hflip(img))
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(img), F.vflip(img))
    assert T.RandomHorizontalFlip(p=0.0)(img) is img


@pytest.mark.parametrize("mode,expected", [
    ("constant", [9, 9, 1, 2, 3, 9, 9]),
    ("edge", [1, 1, 1, 2, 3, 3, 3]),
    ("reflect", [3, 2, 1, 2, 3, 2, 1]),
    ("symmetric", [2, 1, 1, 2, 3, 3, 2]),
])
def test_padding_modes_hand_computed(mode, expected):
    row = np.array([[[1, 2, 3]]], dtype=np.float32)
    out = F.pad(row, (2, 0), fill=9, padding_mode=mode)
    np.testing.assert_array_equal(out[0, 0], expected)


def test_padding_matches_torch_pad():
    torch = torch_or_skip()
    img = np.random.default_rng(0).random((2, 5, 6)).astype(np.float32)
    for ours, theirs in [("reflect", "reflect"), ("edge", "replicate"), ("constant", "constant")]:
        got = F.pad(img, (1, 2, 3, 0), padding_mode=ours)
        ref = torch.nn.functional.pad(torch.tensor(img)[None], (1, 3, 2, 0), mode=theirs)[0].numpy()
        np.testing.assert_array_equal(got, ref)


def test_random_crop_with_padding_gives_every_window():
    img = _img(1, 4, 4) + 1
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    crop = T.RandomCrop(4, padding=1, generator=somanet.Generator(0))
    seen = set()
    for _ in range(120):
        out = crop(img)
        hits = [(i, j) for i in range(3) for j in range(3) if np.array_equal(out, padded[:, i:i + 4, j:j + 4])]
        assert len(hits) == 1
        seen.add(hits[0])
    assert seen == {(i, j) for i in range(3) for j in range(3)}
    np.testing.assert_array_equal(T.RandomCrop(4)(img), img)
    small = T.RandomCrop((5, 6), pad_if_needed=True, fill=7)(np.zeros((1, 3, 3), np.float32))
    assert small.shape == (1, 5, 6) and (small == 7).any()
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(5)(img)


def test_center_crop_hand_computed():
    img = _img(1, 5, 5)
    np.testing.assert_array_equal(F.center_crop(img, 3)[0], img[0, 1:4, 1:4])
    np.testing.assert_array_equal(F.center_crop(img, (2, 4))[0], img[0, 2:4, 0:4])  # round(1.5) = 2
    big = F.center_crop(_img(1, 2, 2) + 1, 4)
    np.testing.assert_array_equal(big[0], [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_multiples_of_90(k):
    img = np.random.default_rng(k).random((2, 5, 5)).astype(np.float32)
    # torchvision's rotate turns counter-clockwise, like np.rot90 with k > 0.
    for interpolation in ("nearest", "bilinear"):
        np.testing.assert_allclose(F.rotate(img, 90 * k, interpolation=interpolation),
                                   np.rot90(img, k, axes=(1, 2)), atol=1e-5)
    np.testing.assert_array_equal(T.RandomRotation((90 * k, 90 * k))(img), np.rot90(img, k, axes=(1, 2)))
    wide = _img(1, 2, 4)
    assert F.rotate(wide, 90, expand=True).shape == (1, 4, 2)
    np.testing.assert_array_equal(F.rotate(wide, 90 * k, expand=True)[0], np.rot90(wide[0], k))


def test_affine_translation_and_centre_scale_hand_computed():
    img = _img(1, 4, 4) + 1
    shifted = F.affine(img, angle=0, translate=(1, 2), scale=1.0, shear=0)
    expected = np.zeros_like(img)
    expected[0, 2:, 1:] = img[0, :2, :3]
    np.testing.assert_array_equal(shifted, expected)
    ones = np.ones((1, 6, 6), np.float32)
    half = F.affine(ones, angle=0, translate=(0, 0), scale=0.5, shear=0)
    # Halving about the centre keeps a 3x3 block (pixel centres within the shrunken image).
    assert half[0].sum() == 9 and half[0, 2:4, 2:4].all() and not half[0, 0].any()
    np.testing.assert_array_equal(F.affine(img, angle=-90, translate=(0, 0), scale=1.0, shear=0),
                                  np.rot90(img, 1, axes=(1, 2)))  # affine's angle turns clockwise


def _torch_rotation(torch, img, angle, mode):
    """Rotate with torch's grid_sample over the inverse map, derived by hand: output pixel p (relative
    to the centre, y down) samples input R p with R = [[cos, -sin], [sin, cos]] for a counter-clockwise
    turn on screen; for a square image normalised coordinates scale equally, so theta is R itself."""
    a = math.radians(angle)
    theta = torch.tensor([[[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]], dtype=torch.float64)
    x = torch.tensor(img, dtype=torch.float64)[None]
    grid = torch.nn.functional.affine_grid(theta, x.shape, align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)[0].numpy()


@pytest.mark.parametrize("angle", [17.0, -40.0, 135.0])
def test_rotation_matches_grid_sample(angle):
    torch = torch_or_skip()
    img = np.random.default_rng(0).random((3, 9, 9)).astype(np.float32)
    got = F.rotate(img, angle, interpolation="bilinear")
    np.testing.assert_allclose(got, _torch_rotation(torch, img, angle, "bilinear"), atol=1e-5)
    got = F.rotate(img, angle, interpolation="nearest")
    ref = _torch_rotation(torch, img, angle, "nearest")
    assert np.mean(np.isclose(got, ref, atol=1e-6)) > 0.98  # ties at exact half-pixels may round differently


@pytest.mark.parametrize("size,antialias", [((5, 7), True), ((5, 7), False), ((13, 11), True), ((8, 3), True)])
def test_resize_matches_torch_interpolate(size, antialias):
    torch = torch_or_skip()
    img = np.random.default_rng(1).random((2, 3, 9, 10)).astype(np.float32)
    got = F.resize(img, size, antialias=antialias)
    ref = torch.nn.functional.interpolate(torch.tensor(img), size=size, mode="bilinear", align_corners=False,
                                          antialias=antialias).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-6)
    near = F.resize(img, size, interpolation="nearest")
    np.testing.assert_array_equal(near, torch.nn.functional.interpolate(torch.tensor(img), size=size).numpy())


def test_resize_smaller_edge_and_uint8():
    assert F.resize(np.zeros((1, 10, 20), np.float32), 5).shape == (1, 5, 10)
    assert F.resize(np.zeros((1, 30, 20), np.float32), 10).shape == (1, 15, 10)
    assert F.resize(np.zeros((1, 10, 40), np.float32), 5, max_size=12).shape == (1, 3, 12)
    u8 = np.full((1, 4, 4), 200, np.uint8)
    out = T.Resize((2, 2))(u8)
    assert out.dtype == np.uint8 and (out == 200).all()


def test_color_jitter_fixed_factors():
    rng = np.random.default_rng(0)
    img = rng.random((3, 4, 4)).astype(np.float32) * 0.8
    np.testing.assert_allclose(T.ColorJitter(brightness=(0.5, 0.5))(img), img * 0.5, atol=1e-6)
    gray = 0.2989 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    np.testing.assert_allclose(T.ColorJitter(saturation=(0.0, 0.0))(img), np.broadcast_to(gray, img.shape), atol=1e-6)
    np.testing.assert_allclose(T.ColorJitter(contrast=(0.0, 0.0))(img), np.full_like(img, gray.mean()), atol=1e-6)
    red = np.zeros((3, 1, 1), np.float32)
    red[0] = 1.0
    np.testing.assert_allclose(F.adjust_hue(red, 0.5)[:, 0, 0], [0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(F.adjust_hue(red, 1 / 3)[:, 0, 0], [0, 1, 0], atol=1e-5)
    np.testing.assert_allclose(F.adjust_hue(img, 0.0), img, atol=1e-6)
    u8 = np.full((3, 2, 2), 100, np.uint8)
    assert F.adjust_brightness(u8, 3.0).max() == 255 and F.adjust_brightness(u8, 3.0).dtype == np.uint8


def test_random_erasing_and_gaussian_noise():
    img = np.ones((3, 20, 20), np.float32)
    out = T.RandomErasing(p=1.0, value=0, generator=somanet.Generator(0))(img)
    zeros = (out == 0).all(axis=0)
    rows, cols = np.flatnonzero(zeros.any(1)), np.flatnonzero(zeros.any(0))
    area = len(rows) * len(cols)
    assert zeros.sum() == area and 0.02 * 400 * 0.5 <= area <= 0.33 * 400 * 1.5
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(img), img)
    per_channel = T.RandomErasing(p=1.0, value=(0.1, 0.2, 0.3), generator=somanet.Generator(1))(img)
    assert set(np.unique(per_channel[1])) == {0.2, 1.0} or set(np.unique(per_channel[1])) == {np.float32(0.2), 1.0}
    noisy = T.GaussianNoise(mean=0.0, sigma=0.1, clip=False, generator=somanet.Generator(0))(
        np.full((1, 100, 100), 0.5, np.float32))
    assert abs(noisy.mean() - 0.5) < 0.01 and abs(noisy.std() - 0.1) < 0.01 and noisy.dtype == np.float32
    assert T.GaussianNoise(sigma=1.0)(np.full((1, 10, 10), 0.5, np.float32)).max() <= 1.0
    with pytest.raises(TypeError, match="float"):
        T.GaussianNoise()(np.zeros((1, 2, 2), np.uint8))


def test_mixup_and_cutmix():
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    mx, my = T.MixUp(alpha=1.0, num_classes=3, generator=somanet.Generator(0))(x, y)
    assert my.shape == (4, 3) and my.dtype == np.float32
    np.testing.assert_allclose(my.sum(axis=1), 1.0, atol=1e-6)
    lam = my[0, 0]  # sample 0 (class 0) is mixed with sample 3 (class 1)
    np.testing.assert_allclose(mx, lam * x + (1 - lam) * np.roll(x, 1, axis=0), atol=1e-6)
    cut = T.CutMix(alpha=1.0, num_classes=3, generator=somanet.Generator(2))
    cx, cy = cut(somanet.tensor(x), somanet.tensor(y))
    assert isinstance(cx, somanet.Tensor)
    x1, y1, x2, y2 = cut.last_box
    inside = np.zeros((8, 8), bool)
    inside[y1:y2, x1:x2] = True
    np.testing.assert_array_equal(cx.array[:, :, inside], np.roll(x, 1, axis=0)[:, :, inside])
    np.testing.assert_array_equal(cx.array[:, :, ~inside], x[:, :, ~inside])
    np.testing.assert_allclose(cy.array[0, 0], 1 - inside.mean(), atol=1e-6)
    with pytest.raises(ValueError, match="num_classes"):
        T.MixUp()(x, y)


# ----------------------------------------------------------------------------- seeds and batches
RANDOM_TRANSFORMS = [
    lambda g: T.RandomCrop(6, padding=2, padding_mode="reflect", generator=g),
    lambda g: T.RandomResizedCrop(6, generator=g),
    lambda g: T.RandomHorizontalFlip(generator=g),
    lambda g: T.RandomVerticalFlip(generator=g),
    lambda g: T.RandomRotation(45, interpolation="bilinear", generator=g),
    lambda g: T.RandomAffine(20, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=(-10, 10, -5, 5), generator=g),
    lambda g: T.ColorJitter(0.5, 0.5, 0.5, 0.2, generator=g),
    lambda g: T.GaussianNoise(generator=g),
    lambda g: T.RandomErasing(p=1.0, value="random", generator=g),
]


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS)
def test_random_transforms_reproducible_and_seed_dependent(make):
    batch = np.random.default_rng(0).random((6, 3, 8, 8)).astype(np.float32)

    def run(seed):
        return make(somanet.Generator(seed))(batch)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    somanet.manual_seed(4)
    a = make(None)(batch)
    somanet.manual_seed(4)
    np.testing.assert_array_equal(a, make(None)(batch))


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS)
def test_batches_draw_per_image_and_keep_types(make):
    same = np.repeat(np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32), 8, axis=0)
    out = make(somanet.Generator(0))(somanet.tensor(same))
    assert isinstance(out, somanet.Tensor) and out.dtype == np.float32 and out.shape[:2] == (8, 3)
    assert len({out.array[i].tobytes() for i in range(8)}) > 1
    single = make(somanet.Generator(0))(same[0])
    assert isinstance(single, np.ndarray) and single.ndim == 3


def test_uint8_geometry_keeps_dtype():
    img = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    for t in (T.RandomCrop(6, padding=1), T.RandomRotation(30), T.RandomAffine(10, scale=(0.9, 1.1)),
              T.RandomResizedCrop(5), T.ColorJitter(0.3, 0.3, 0.3, 0.1)):
        assert t(img).dtype == np.uint8


def test_compute_mean_std():
    rng = np.random.default_rng(0)
    images = rng.random((50, 3, 5, 5)).astype(np.float32) * [[[2.0]], [[1.0]], [[0.5]]]
    ds = TensorDataset(somanet.tensor(images), somanet.zeros(50))
    mean, std = compute_mean_std(ds, batch_size=16)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, images.std(axis=(0, 2, 3)), rtol=1e-4)
    assert mean.dtype == np.float32 and mean.shape == (3,)
