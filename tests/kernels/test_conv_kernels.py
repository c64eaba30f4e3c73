"""The convolution kernels against PyTorch and against the reference in ``ops/conv.py``: every ``conv2d``
and ``conv2d_weight_grad`` kernel over stride, padding, dilation and groups, float32 and float64 (output
and the input, weight and bias gradients), and the chooser's pick on the layers its thresholds come from
(``docs/dev/convolutions.md``)."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select, conv_im2col
from somanet.ops import conv as ops_conv
from reference import compare, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional

# (input shape, weight shape, conv2d keywords)
CASES = [
    ((2, 3, 11, 11), (4, 3, 5, 5), dict(padding=2)),
    ((2, 4, 12, 10), (6, 4, 3, 3), dict(padding=1, stride=2)),
    ((1, 4, 9, 9), (6, 2, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((3, 2, 13, 13), (4, 2, 7, 7), dict(padding=3, stride=(2, 3))),
    ((2, 6, 6, 6), (6, 1, 3, 3), dict(padding=1, groups=6)),
    ((2, 5, 10, 10), (8, 5, 1, 1), dict(stride=2)),
    ((2, 3, 9, 11), (4, 3, 2, 4), dict(padding=(0, 2), stride=(1, 2), dilation=(2, 1))),
]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _x(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, kw", CASES)
@pytest.mark.parametrize("name", cpu.kernel_names("conv2d"))
def test_conv2d_kernel_matches_torch(name, xs, ws, kw, dtype):
    arrays = [_x(xs, dtype, 0), _x(ws, dtype, 1), _x(ws[:1], dtype, 2)]
    with cpu.kernel("conv2d", name):
        compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), *arrays,
                **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, kw", CASES[:4])
@pytest.mark.parametrize("layout", cpu.kernel_names("conv2d_weight_grad"))
def test_conv2d_weight_grad_kernel_matches_torch(layout, xs, ws, kw, dtype):
    arrays = [_x(xs, dtype, 0), _x(ws, dtype, 1)]
    with cpu.kernel("conv2d", "gemm"), cpu.kernel("conv2d_weight_grad", layout):
        compare(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), *arrays,
                requires_grad=[False, True], **TOL[dtype])


def _geometry(kw):
    def pair(v):
        return tuple(v) if isinstance(v, tuple) else (v, v)
    p = pair(kw.get("padding", 0))
    return (kw.get("groups", 1), ((p[0], p[0]), (p[1], p[1])), pair(kw.get("stride", 1)),
            pair(kw.get("dilation", 1)))


@pytest.mark.parametrize("xs, ws, kw", CASES)
def test_im2col_kernel_equals_reference_arrays(xs, ws, kw):
    x, w, b = _x(xs, np.float64, 0), _x(ws, np.float64, 1), _x(ws[:1], np.float64, 2)
    groups, pads, stride, dilation = _geometry(kw)
    want = ops_conv.reference_forward(x, w, groups, pads, stride, dilation, b)
    np.testing.assert_allclose(conv_im2col.forward(x, w, groups, pads, stride, dilation, b), want, rtol=1e-12,
                               atol=1e-12)
    g = _x(want.shape, np.float64, 3)
    np.testing.assert_allclose(conv_im2col.weight_grad(g, x, groups, pads, stride, dilation, ws[2:]),
                               ops_conv.reference_weight_grad(g, x, groups, pads, stride, dilation, ws[2:]),
                               rtol=1e-12, atol=1e-12)


def test_im2col_blocks_and_threads_give_the_same_result(monkeypatch):
    """Row blocks of one row and two threads over them (a batch of one image) change nothing."""
    x, w = _x((1, 3, 40, 40), np.float32, 0), _x((16, 3, 7, 7), np.float32, 1)
    geometry = (1, ((3, 3), (3, 3)), (2, 2), (1, 1))
    previous = somanet.get_num_threads()
    somanet.set_num_threads(1)
    try:
        one = conv_im2col.forward(x, w, *geometry)
        g = _x(one.shape, np.float32, 2)
        gw_one = conv_im2col.weight_grad(g, x, *geometry, (7, 7))
        somanet.set_num_threads(2)
        monkeypatch.setattr(conv_im2col, "CHUNK_BYTES", 1)
        monkeypatch.setattr(conv_im2col.threads, "PARALLEL_MIN_WORK", 1)
        assert len(conv_im2col.row_blocks(1, 3 * 49, 20, 20, 4)) == 20
        np.testing.assert_allclose(conv_im2col.forward(x, w, *geometry), one, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(conv_im2col.weight_grad(g, x, *geometry, (7, 7)), gw_one, rtol=1e-5, atol=1e-4)
    finally:
        somanet.set_num_threads(previous)


@pytest.mark.parametrize("stride, output_padding", [(1, 0), (2, 1)])
def test_conv_transpose_with_im2col_matches_torch(stride, output_padding):
    kw = dict(stride=stride, padding=1, output_padding=output_padding)
    with cpu.kernel("conv2d", "im2col"), cpu.kernel("conv2d_weight_grad", "im2col"):
        compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
                _x((2, 4, 5, 6), np.float32, 0), _x((4, 3, 3, 3), np.float32, 1), _x((3,), np.float32, 2),
                rtol=1e-4, atol=1e-4)


# The layers of docs/dev/convolutions.md: (input, weight, padding, stride) -> forward kernel at two threads.
NAMED = [
    ("MNIST conv1", (64, 1, 28, 28), (16, 1, 5, 5), 2, 1, "im2col"),
    ("MNIST conv2", (64, 16, 14, 14), (32, 16, 5, 5), 0, 1, "gemm"),
    ("ResNet stem", (8, 3, 224, 224), (64, 3, 7, 7), 3, 2, "im2col"),
    ("ResNet stem, one image", (1, 3, 224, 224), (64, 3, 7, 7), 3, 2, "im2col"),
    ("3x3 stride-2 downsample", (32, 64, 56, 56), (128, 64, 3, 3), 1, 2, "im2col"),
    ("1x1", (32, 64, 28, 28), (256, 64, 1, 1), 0, 1, "gemm"),
    ("1x1 stride-2 shortcut", (32, 64, 56, 56), (128, 64, 1, 1), 0, 2, "im2col"),
    ("3x3 64 -> 64, one image", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1, "im2col"),
    ("3x3 64 -> 64", (8, 64, 56, 56), (64, 64, 3, 3), 1, 1, "winograd_f4"),
    ("stride 2 on a 4x4 output", (64, 64, 8, 8), (64, 64, 3, 3), 1, 2, "gemm"),
    ("stride 2 on a 7x7 output", (128, 64, 14, 14), (128, 64, 3, 3), 1, 2, "gemm"),
    ("3 channels, 7x7 kernel", (64, 3, 14, 14), (64, 3, 7, 7), 3, 1, "im2col"),
    ("8 channels, 3x3 kernel", (32, 8, 32, 32), (16, 8, 3, 3), 1, 1, "gemm"),
]


@pytest.mark.parametrize("label, xs, ws, pad, stride, expected", NAMED, ids=[n[0] for n in NAMED])
def test_conv2d_chooser_on_named_layers(label, xs, ws, pad, stride, expected):
    x, w = np.empty(xs, np.float32), np.empty(ws, np.float32)
    geometry = (1, ((pad, pad), (pad, pad)), (stride, stride), (1, 1))
    previous = somanet.get_num_threads()
    somanet.set_num_threads(2)
    try:
        assert _select.choose("conv2d", x, w, *geometry, False) == expected
        assert _select.choose("conv2d", x, w, *geometry, True) != "im2col"  # gradients: the other kernels
        ho = (xs[2] + 2 * pad - ws[2]) // stride + 1
        g = np.empty((xs[0], ws[0], ho, ho), np.float32)
        layout = _select.choose("conv2d_weight_grad", g, x, *geometry, ws[2:])
        assert (layout == "im2col") == (xs[0] == 1)
        somanet.set_num_threads(1)  # one thread: no row split for single images
        assert _select.choose("conv2d_weight_grad", g, x, *geometry, ws[2:]) != "im2col"
        if xs[0] == 1 and ws[1] == 64:
            assert _select.choose("conv2d", x, w, *geometry, False) == "winograd_f4"
    finally:
        somanet.set_num_threads(previous)


def test_im2col_is_not_taken_off_numpy_or_for_groups():
    x, w = np.empty((8, 4, 32, 32), np.float32), np.empty((8, 2, 3, 3), np.float32)
    assert _select.choose("conv2d", x, w, 2, ((1, 1), (1, 1)), (2, 2), (1, 1), False) == "gemm"
