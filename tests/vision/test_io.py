"""somanet.vision.io: reading an image file as grey levels and area resampling, against Pillow and PyTorch."""
import numpy as np
import pytest

from reference import assert_close, torch_or_skip
from somanet.vision.io import ImageTooLargeError, read_grayscale, resize_area

Image = pytest.importorskip("PIL.Image")


def test_rgb_png_reads_as_luminance(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    got = read_grayscale(str(path))
    expected = (pixels.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert got.dtype == np.float32 and got.shape == (5, 7)
    assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_transparent_pixels_are_composited_onto_white(tmp_path):
    pixels = np.zeros((2, 2, 4), np.uint8)  # black ink
    pixels[0, 0, 3] = 255                   # opaque
    pixels[1, 1, 3] = 0                     # fully transparent: the white background shows
    pixels[0, 1, 3] = 51                    # 20 % opaque
    path = tmp_path / "ink.png"
    Image.fromarray(pixels, "RGBA").save(path)
    got = read_grayscale(str(path))
    assert_close(got, np.array([[0.0, 0.8], [1.0, 1.0]], np.float32), rtol=0, atol=1e-6)


def test_too_large_and_unreadable_images_are_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(path)
    with pytest.raises(ImageTooLargeError, match=r"40 x 30 image \(1,200 pixels\).*at most 1,000") as info:
        read_grayscale(str(path), max_pixels=1000)
    assert (info.value.width, info.value.height) == (40, 30)
    assert read_grayscale(str(path), max_pixels=None).shape == (30, 40)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png cannot be read as an image"):
        read_grayscale(str(broken))


@pytest.mark.parametrize("src, size", [((28, 28), (28, 28)), ((56, 84), (28, 28)), ((30, 17), (7, 5)),
                                       ((5, 6), (11, 13))])
def test_resize_area_matches_adaptive_average_pooling(src, size):
    torch = torch_or_skip()
    img = np.random.default_rng(1).random(src, dtype=np.float32)
    got = resize_area(img, size)  # enlarging: each output pixel covers one input pixel, as pooling's windows do
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(img)[None, None], size)[0, 0].numpy()
    assert got.dtype == np.float32 and got.shape == size
    assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_resize_area_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"resize_area: expected a 2-d image"):
        resize_area(np.zeros((2, 3, 4), np.float32), (2, 2))
