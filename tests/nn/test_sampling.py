"""interpolate / Upsample and PixelShuffle / PixelUnshuffle against PyTorch, float64 finite differences and
error messages."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import compare, compare_modules, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


MODES_2D = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True), ("area", None)]
SIZES_2D = [dict(scale_factor=2), dict(scale_factor=3), dict(size=(9, 4)), dict(size=(13, 21)),
            dict(scale_factor=(1.7, 0.6)), dict(size=(5, 7))]


@pytest.mark.parametrize("mode, align_corners", MODES_2D)
@pytest.mark.parametrize("kw", SIZES_2D)
def test_interpolate_2d_matches_torch(mode, align_corners, kw):
    x = _x(2, 3, 5, 7)
    out = compare(lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw),
                  lambda t: TF.interpolate(t, mode=mode, align_corners=align_corners, **kw), x)
    assert out.dtype == np.float32


@pytest.mark.parametrize("mode, align_corners", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_interpolate_recompute_scale_factor_matches_torch(mode, align_corners):
    kw = dict(scale_factor=(1.7, 0.6), mode=mode, align_corners=align_corners, recompute_scale_factor=True)
    compare(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), _x(2, 3, 5, 7))


@pytest.mark.parametrize("mode, align_corners", [("nearest", None), ("nearest-exact", None), ("linear", False),
                                                 ("linear", True), ("area", None)])
@pytest.mark.parametrize("kw", [dict(scale_factor=2.5), dict(size=4), dict(size=16)])
def test_interpolate_1d_matches_torch(mode, align_corners, kw):
    compare(lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw),
            lambda t: TF.interpolate(t, mode=mode, align_corners=align_corners, **kw), _x(2, 3, 9))


def test_upsample_modules_match_torch():
    pairs = [
        (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
        (nn.Upsample(size=(6, 9), mode="bilinear"), torch.nn.Upsample(size=(6, 9), mode="bilinear")),
        (nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True),
         torch.nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True)),
        (nn.UpsamplingNearest2d(scale_factor=3), torch.nn.UpsamplingNearest2d(scale_factor=3)),
        (nn.UpsamplingBilinear2d(size=(8, 8)), torch.nn.UpsamplingBilinear2d(size=(8, 8))),
        (nn.PixelShuffle(2), torch.nn.PixelShuffle(2)),
        (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2)),
    ]
    for s_mod, t_mod in pairs:
        assert repr(s_mod) == repr(t_mod)
        x = _x(2, 8, 4, 6)
        compare_modules(s_mod, t_mod, x)


def test_pixel_shuffle_matches_torch():
    compare(lambda t: F.pixel_shuffle(t, 3), lambda t: TF.pixel_shuffle(t, 3), _x(2, 18, 3, 4))
    compare(lambda t: F.pixel_shuffle(t, 2), lambda t: TF.pixel_shuffle(t, 2), _x(8, 2, 5))            # unbatched
    compare(lambda t: F.pixel_unshuffle(t, 3), lambda t: TF.pixel_unshuffle(t, 3), _x(2, 2, 6, 9))
    compare(lambda t: F.pixel_shuffle(t, 2), lambda t: TF.pixel_shuffle(t, 2), _x(2, 3, 4, 2, 2))     # extra batch dims
    x = somanet.randn(2, 12, 3, 5)
    np.testing.assert_array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).array, x.array)


def test_gradcheck_float64():
    def x64(*s):
        return somanet.tensor(_x(*s).astype(np.float64), requires_grad=True)

    assert gradcheck(lambda t: F.interpolate(t, size=(5, 7), mode="bilinear"), (x64(1, 2, 3, 4),))
    assert gradcheck(lambda t: F.interpolate(t, scale_factor=0.6, mode="bilinear", align_corners=True),
                     (x64(1, 2, 5, 5),))
    assert gradcheck(lambda t: F.interpolate(t, size=(7, 3), mode="nearest"), (x64(1, 2, 3, 4),))
    assert gradcheck(lambda t: F.interpolate(t, size=6, mode="linear"), (x64(2, 2, 4),))
    assert gradcheck(lambda t: F.pixel_shuffle(t, 2), (x64(1, 8, 2, 3),))


def _raises(fn, *fragments, exc=(ValueError, TypeError, NotImplementedError)):
    with pytest.raises(exc) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_errors():
    x = somanet.randn(1, 2, 4, 4)
    _raises(lambda: F.interpolate(x), "exactly one of size or scale_factor")
    _raises(lambda: F.interpolate(x, size=8, scale_factor=2), "exactly one of size or scale_factor")
    _raises(lambda: F.interpolate(x, scale_factor=2, mode="cubic"), "mode must be one of")
    _raises(lambda: F.interpolate(x, scale_factor=2, align_corners=True), "align_corners", "nearest")
    _raises(lambda: F.interpolate(x, scale_factor=2, mode="linear"), "'linear' needs a 3-D input", "(1, 2, 4, 4)")
    _raises(lambda: F.interpolate(x, size=(2, 3, 4)), "size must be", "(1, 2, 4, 4)")
    _raises(lambda: F.interpolate(x, scale_factor=2, mode="bicubic"), "bicubic", "not supported")
    _raises(lambda: F.pixel_shuffle(somanet.randn(1, 6, 2, 2), 2), "pixel_shuffle", "divisible by", "(1, 6, 2, 2)")
    _raises(lambda: F.pixel_unshuffle(somanet.randn(1, 1, 3, 4), 2), "pixel_unshuffle", "divisible")
