"""somanet.vision.transforms on PIL images, Tensors and arrays, against torchvision's documented formulas
written here in plain PyTorch (torchvision itself is not a test dependency) and against Pillow."""
import numpy as np
import pytest

import somanet
from somanet.data import transforms as data_transforms
from somanet.vision import transforms as T
from somanet.vision.transforms import functional as TF

Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")


def _rgb(h=37, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pil(arr):
    return Image.fromarray(arr)


def _levels(a, b):
    """Largest difference between two uint8 images, in grey levels."""
    return int(np.abs(np.asarray(a).astype(np.int64) - np.asarray(b).astype(np.int64)).max())


def test_one_implementation_two_import_paths():
    for name in ("ToTensor", "Normalize", "Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop",
                 "RandomHorizontalFlip", "Compose", "Lambda", "Grayscale", "ColorJitter", "Pad", "RandomRotation",
                 "PILToTensor", "ToPILImage"):
        assert getattr(T, name) is getattr(data_transforms, name)
    for name in ("to_tensor", "pil_to_tensor", "to_pil_image", "resize", "crop", "center_crop", "normalize", "pad",
                 "hflip", "rotate", "rgb_to_grayscale", "to_grayscale", "adjust_brightness", "get_dimensions"):
        assert getattr(TF, name) is getattr(data_transforms.functional, name)


# ----------------------------------------------------------------------------- conversions
@pytest.mark.parametrize("shape", [(9, 7, 3), (9, 7), (9, 7, 4)])
def test_to_tensor_on_pil_is_chw_float_in_unit_range(shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = T.ToTensor()(_pil(arr))
    ref = torch.from_numpy(arr.reshape(shape[0], shape[1], -1)).permute(2, 0, 1).float().div(255)
    assert isinstance(out, somanet.Tensor) and out.dtype == np.float32
    np.testing.assert_array_equal(out.array, ref.numpy())


def test_to_tensor_on_hwc_array_matches_pil_path():
    arr = _rgb(5, 6)
    np.testing.assert_array_equal(T.ToTensor()(arr).array, T.ToTensor()(_pil(arr)).array)


def test_to_tensor_special_modes():
    ints = np.arange(12, dtype=np.int32).reshape(3, 4) * 1000
    out = TF.to_tensor(Image.fromarray(ints))
    assert out.dtype == np.int32 and out.shape == (1, 3, 4)
    np.testing.assert_array_equal(out.array[0], ints)
    floats = np.linspace(-2, 3, 12, dtype=np.float32).reshape(3, 4)
    out = TF.to_tensor(Image.fromarray(floats))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.array[0], floats)
    bits = Image.fromarray(np.array([[True, False], [False, True]]))
    assert bits.mode == "1"
    np.testing.assert_array_equal(TF.to_tensor(bits).array[0], [[1.0, 0.0], [0.0, 1.0]])


def test_pil_to_tensor_keeps_uint8_values():
    arr = _rgb(4, 5)
    out = T.PILToTensor()(_pil(arr))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.array, arr.transpose(2, 0, 1))
    with pytest.raises(TypeError, match="PIL image"):
        TF.pil_to_tensor(arr)


def test_to_pil_image_from_float_tensor_truncates_like_torchvision():
    x = np.random.default_rng(2).random((3, 6, 5)).astype(np.float32)
    img = T.ToPILImage()(somanet.tensor(x))
    ref = torch.from_numpy(x).mul(255).byte().permute(1, 2, 0).numpy()
    assert img.mode == "RGB" and img.size == (5, 6)
    np.testing.assert_array_equal(np.asarray(img), ref)


@pytest.mark.parametrize("dtype,mode", [(np.uint8, "L"), (np.int32, "I"), (np.float32, "F")])
def test_to_pil_image_single_band_modes(dtype, mode):
    arr = (np.arange(20).reshape(4, 5) % 7).astype(dtype)
    img = TF.to_pil_image(arr, mode="F" if dtype == np.float32 else None)
    assert img.mode == mode
    np.testing.assert_array_equal(np.asarray(img), arr)


def test_to_pil_image_ndarray_is_hwc_and_modes_are_checked():
    arr = _rgb(4, 5)
    assert TF.to_pil_image(arr).size == (5, 4)
    assert TF.to_pil_image(np.dstack([arr, arr[:, :, :1]])).mode == "RGBA"
    assert TF.to_pil_image(arr, mode="YCbCr").mode == "YCbCr"
    with pytest.raises(ValueError, match="modes"):
        TF.to_pil_image(arr, mode="RGBA")
    with pytest.raises(ValueError, match="more than 4 channels"):
        TF.to_pil_image(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(ValueError, match="incorrect mode"):
        TF.to_pil_image(arr[:, :, 0], mode="RGB")


def test_round_trip_tensor_pil_tensor():
    arr = _rgb(6, 7)
    back = TF.pil_to_tensor(TF.to_pil_image(TF.pil_to_tensor(_pil(arr))))
    np.testing.assert_array_equal(back.array, arr.transpose(2, 0, 1))


def test_palette_images_are_refused_with_a_hint():
    img = _pil(_rgb(8, 8)).convert("P")
    with pytest.raises(TypeError, match="convert"):
        T.Resize(4)(img)


# ----------------------------------------------------------------------------- geometry
def _torchvision_resize_size(h, w, size):
    """torchvision's rule for an int size: the shorter side becomes size, the longer int(size * long / short)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


@pytest.mark.parametrize("hw,size", [((37, 50), 20), ((50, 37), 20), ((37, 50), 64), ((33, 33), 10),
                                     ((37, 50), (30, 41))])
def test_resize_on_pil_size_rule_and_pillow_values(hw, size):
    arr = _rgb(*hw)
    out = T.Resize(size)(_pil(arr))
    expect = _torchvision_resize_size(*hw, size) if isinstance(size, int) else size
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert (out.height, out.width) == expect
    # torchvision hands PIL images to Pillow's antialiased bilinear; the shared array code agrees
    # with it to one grey level.
    assert _levels(out, _pil(arr).resize(out.size, Image.BILINEAR)) <= 1


def test_resize_on_tensor_matches_torch_interpolate():
    x = np.random.default_rng(3).random((3, 37, 50)).astype(np.float32)
    out = T.Resize((20, 64))(somanet.tensor(x))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(20, 64), mode="bilinear",
                                          align_corners=False, antialias=True)[0]
    np.testing.assert_allclose(out.array, ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("hw,size", [((37, 50), 20), ((37, 50), (10, 31)), ((8, 9), 4), ((7, 7), (2, 5))])
def test_center_crop_offsets_round_like_torchvision(hw, size):
    arr = _rgb(*hw)
    th, tw = (size, size) if isinstance(size, int) else size
    top, left = int(round((hw[0] - th) / 2.0)), int(round((hw[1] - tw) / 2.0))
    out = T.CenterCrop(size)(_pil(arr))
    np.testing.assert_array_equal(np.asarray(out), arr[top:top + th, left:left + tw])
    tensor_out = T.CenterCrop(size)(somanet.tensor(arr.transpose(2, 0, 1)))
    np.testing.assert_array_equal(tensor_out.array, arr[top:top + th, left:left + tw].transpose(2, 0, 1))


def test_center_crop_larger_than_image_pads_with_zeros():
    arr = _rgb(4, 5)
    out = np.asarray(T.CenterCrop((6, 9))(_pil(arr)))
    assert out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out[1:5, 2:7], arr)
    assert out[0].max() == 0 and out[:, :2].max() == 0


def test_pad_on_pil_matches_pillow_expand():
    from PIL import ImageOps

    arr = _rgb(5, 6)
    np.testing.assert_array_equal(np.asarray(T.Pad(3, fill=7)(_pil(arr))),
                                  np.asarray(ImageOps.expand(_pil(arr), border=3, fill=(7, 7, 7))))
    out = np.asarray(T.Pad((1, 2, 3, 4), padding_mode="reflect")(_pil(arr)))
    np.testing.assert_array_equal(out, np.pad(arr, ((2, 4), (1, 3), (0, 0)), mode="reflect"))


def test_random_crop_with_padding_takes_a_window_of_the_padded_image():
    arr = _rgb(28, 28)
    padded = np.pad(arr, ((4, 4), (4, 4), (0, 0)))
    somanet.manual_seed(5)
    for _ in range(5):
        out = np.asarray(T.RandomCrop(28, padding=4)(_pil(arr)))
        hits = [(i, j) for i in range(9) for j in range(9) if np.array_equal(padded[i:i + 28, j:j + 28], out)]
        assert hits


def test_random_transforms_are_reproducible_on_pil():
    img = _pil(_rgb())
    tf = T.Compose([T.RandomResizedCrop(24), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
                    T.RandomRotation(15)])
    somanet.manual_seed(11)
    a = tf(img)
    somanet.manual_seed(11)
    b = tf(img)
    assert isinstance(a, Image.Image) and a.size == (24, 24) and a.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_random_horizontal_flip_on_pil():
    arr = _rgb(5, 6)
    np.testing.assert_array_equal(np.asarray(T.RandomHorizontalFlip(p=1.0)(_pil(arr))), arr[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(_pil(arr)).size == (6, 5)


def test_random_resized_crop_on_pil_gives_the_size_asked():
    somanet.manual_seed(0)
    out = T.RandomResizedCrop((16, 20), scale=(0.3, 1.0))(_pil(_rgb()))
    assert out.size == (20, 16) and out.mode == "RGB"


def test_rotation_keeps_grey_mode_and_matches_tensor_path():
    grey = _rgb()[:, :, 0]
    out = TF.rotate(_pil(grey), 30)
    assert out.mode == "L" and out.size == (50, 37)
    np.testing.assert_array_equal(np.asarray(out), TF.rotate(somanet.tensor(grey[None]), 30).array[0])


# ----------------------------------------------------------------------------- colour, normalisation
def test_grayscale_tensor_formula_and_pil():
    arr = _rgb()
    x = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    r, g, b = x.float().unbind(0)
    ref = (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8)
    out = T.Grayscale()(somanet.tensor(arr.transpose(2, 0, 1).copy()))
    np.testing.assert_array_equal(out.array[0], ref.numpy())
    pil_out = T.Grayscale()(_pil(arr))
    assert pil_out.mode == "L"
    assert _levels(pil_out, _pil(arr).convert("L")) <= 1  # Pillow rounds its ITU-R 601-2 luma
    assert T.Grayscale(num_output_channels=3)(_pil(arr)).mode == "RGB"
    assert T.Grayscale()(_pil(arr[:, :, 0])).mode == "L"


def test_normalize_formula_and_refusal_of_uint8():
    x = np.random.default_rng(4).random((3, 4, 5)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = (torch.from_numpy(x) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    np.testing.assert_allclose(T.Normalize(mean, std)(somanet.tensor(x)).array, ref.numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize(mean, std)(_pil(_rgb(4, 5)))


def test_color_jitter_on_pil_returns_pil():
    somanet.manual_seed(0)
    out = T.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2)(_pil(_rgb()))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (50, 37)


def test_brightness_on_pil_follows_the_tensor_formula():
    arr = _rgb(4, 5)
    out = np.asarray(TF.adjust_brightness(_pil(arr), 1.5))
    ref = torch.clamp(torch.from_numpy(arr).float() * 1.5, 0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(out, ref)


def test_full_pipeline_pil_to_normalised_tensor():
    tf = T.Compose([T.Resize(32), T.CenterCrop(28), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3),
                    T.Lambda(lambda t: t * 2)])
    out = tf(_pil(_rgb()))
    assert isinstance(out, somanet.Tensor) and out.shape == (3, 28, 28) and out.dtype == np.float32
    assert -2.0 - 1e-6 <= float(out.min()) and float(out.max()) <= 2.0 + 1e-6


def test_random_erasing_refuses_pil():
    with pytest.raises(TypeError, match="ToTensor"):
        T.RandomErasing(p=1.0)(_pil(_rgb(8, 8)))


def test_get_dimensions_and_size_on_pil():
    img = _pil(_rgb(7, 9))
    assert TF.get_dimensions(img) == [3, 7, 9]
    assert TF.get_image_size(img) == [9, 7]
    assert TF.get_image_num_channels(img) == 3
