"""Convolutions against PyTorch (outputs, input, weight and bias gradients), float64 finite differences,
layer construction, initialisation and error messages; norm layers and Dropout2d inside a small CNN."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import compare, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional

# Convolutions sum up to a few hundred float32 products in another order than PyTorch's kernels.
TOL = dict(rtol=1e-4, atol=1e-4)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONV2D_CASES = [
    # (input shape, weight shape, keyword arguments)
    ((2, 3, 7, 9), (4, 3, 3, 3), dict(padding=1)),                                  # odd sizes
    ((2, 5, 6, 7), (3, 5, 1, 1), dict()),                                           # 1x1 kernel
    ((2, 3, 11, 10), (4, 3, 5, 5), dict(stride=2, padding=2)),                      # kernel larger than stride
    ((2, 3, 10, 11), (4, 3, 2, 2), dict(stride=3)),                                 # stride larger than kernel
    ((1, 2, 9, 9), (3, 2, 3, 3), dict(dilation=2, padding=2)),                      # dilation with padding
    ((2, 4, 6, 6), (4, 1, 3, 3), dict(groups=4, padding=1)),                        # depthwise
    ((2, 4, 6, 6), (8, 1, 3, 3), dict(groups=4, stride=2)),                         # depthwise, multiplier 2
    ((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=(0, 1))),                   # grouped
    ((1, 3, 5, 12), (2, 3, 2, 4), dict(stride=(1, 2), padding=(0, 3))),             # batch 1, non-square
    ((2, 2, 8, 9), (3, 2, 3, 2), dict(stride=(2, 1), dilation=(1, 3), padding=(1, 2))),
    ((2, 3, 8, 8), (5, 3, 4, 4), dict(padding="same")),                             # even kernel: extra pad after
    ((2, 3, 8, 7), (5, 3, 3, 2), dict(padding="same", dilation=(2, 3))),
    ((2, 3, 6, 6), (2, 3, 3, 3), dict(padding="valid")),
    ((2, 3, 5, 5), (2, 3, 5, 5), dict()),                                           # kernel covers the input
    ((2, 8, 6, 7), (6, 4, 3, 3), dict(groups=2, padding=1, dilation=(1, 2))),      # grouped, channels >= 4
    ((1, 4, 5, 6), (3, 4, 3, 3), dict(padding=3)),                                  # padding beyond the kernel
    ((2, 4, 1, 9), (5, 4, 1, 3), dict(padding=(0, 1))),                             # height 1
    ((3, 16, 9, 8), (8, 16, 3, 3), dict(padding=1)),                                # more channels
    ((2, 2, 6, 7), (6, 2, 3, 3), dict(padding=1)),                                  # output channels >= 2x input
    ((2, 4, 7, 6), (12, 2, 3, 2), dict(groups=2, dilation=(2, 1), padding=(2, 0))),
]


@pytest.mark.parametrize("xs, ws, kw", CONV2D_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(xs, ws, kw, bias):
    arrays = [_x(*xs), _x(*ws, seed=1)] + ([_x(ws[0], seed=2)] if bias else [])
    out = compare(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **kw),
                  lambda x, w, *b: TF.conv2d(x, w, b[0] if b else None, **kw), *arrays, **TOL)
    assert out.dtype == np.float32


# The kernels pick a GEMM layout by shape (conv_weight_grad, conv_input_grad); these shapes reach each one.
KERNEL_CHOICE_CASES = [
    ((2, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),                    # dW from wide windows
    ((2, 8, 6, 6), (12, 8, 3, 3), dict(padding=1)),                      # dW from kw_columns x gradient^T
    ((2, 8, 10, 10), (12, 8, 3, 3), dict(padding=1, stride=2)),          # the same, strided
    ((2, 4, 9, 9), (120, 4, 3, 3), dict(stride=2, padding=1)),           # dW over the whole batch
    ((2, 8, 9, 9), (220, 4, 3, 3), dict(groups=2, padding=1)),           # the same, grouped
    ((1, 16, 30, 30), (64, 16, 3, 3), dict(padding=1)),                  # per-image products too big
    ((2, 3, 6, 6), (4, 3, 5, 5), dict()),                                # dX in column space at stride 1
    ((2, 6, 9, 9), (4, 6, 3, 3), dict(padding=1, dilation=(2, 1), stride=(1, 2))),
    ((2, 6, 8, 8), (4, 6, 3, 3), dict(padding=(2, 1), dilation=(2, 1))),  # same width, taller output
    ((3, 6, 4, 4), (5, 6, 3, 3), dict(padding=1)),                        # small planes: whole-batch GEMMs
    ((2, 8, 3, 5), (6, 4, 3, 3), dict(groups=2, padding=1)),
    ((2, 64, 16, 16), (128, 64, 3, 3), dict(stride=2, padding=1)),       # forward and dX in weight row blocks
]


def test_gemm_blocks_split_columns_then_rows():
    from somanet.kernels.conv import _gemm_blocks

    assert _gemm_blocks(32, 96, 784, 1) == (4, 1)      # column chunks of 196 when some fit
    assert _gemm_blocks(128, 192, 64, 1) == (1, 2)     # too few columns to chunk: two row blocks of 64
    assert _gemm_blocks(128, 192, 64, 2) == (1, 1)     # grouped: whole
    assert _gemm_blocks(16, 48, 1024, 1) == (1, 1)     # already small


@pytest.mark.parametrize("xs, ws, kw", KERNEL_CHOICE_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_kernel_choices_match_torch(xs, ws, kw, bias):
    arrays = [_x(*xs), _x(*ws, seed=1)] + ([_x(ws[0], seed=2)] if bias else [])
    compare(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **kw),
            lambda x, w, *b: TF.conv2d(x, w, b[0] if b else None, **kw), *arrays, **TOL)


@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 3, 11), (4, 3, 3), dict(padding=1)),
    ((1, 4, 10), (4, 1, 3), dict(groups=4, stride=2)),
    ((2, 3, 9), (2, 3, 4), dict(padding="same", dilation=2)),
    ((2, 3, 12), (5, 3, 1), dict(stride=3)),
])
def test_conv1d_matches_torch(xs, ws, kw):
    compare(lambda x, w, b: F.conv1d(x, w, b, **kw), lambda x, w, b: TF.conv1d(x, w, b, **kw),
            _x(*xs), _x(*ws, seed=1), _x(ws[0], seed=2), **TOL)


def test_unbatched_input_matches_torch():
    compare(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1), _x(3, 5, 6),
            _x(2, 3, 3, 3, seed=1), **TOL)
    compare(lambda x, w: F.conv_transpose1d(x, w, stride=2), lambda x, w: TF.conv_transpose1d(x, w, stride=2),
            _x(3, 5), _x(3, 2, 3, seed=1), **TOL)


@pytest.mark.parametrize("output_padding", [0, 1, 2])
@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=3, padding=1)),
    ((1, 4, 4, 5), (4, 2, 2, 3), dict(stride=(3, 4), padding=(0, 1), groups=2)),
    ((2, 2, 4, 4), (2, 3, 3, 3), dict(stride=3, padding=2, dilation=2)),
    ((2, 4, 5, 6), (4, 3, 3, 2), dict(stride=1, padding=1, dilation=3)),            # stride 1
    ((2, 8, 5, 4), (8, 3, 2, 3), dict(stride=1, padding=(0, 2), dilation=(3, 4), groups=2)),
])
def test_conv_transpose2d_matches_torch(xs, ws, kw, output_padding):
    groups = kw.get("groups", 1)
    compare(lambda x, w, b: F.conv_transpose2d(x, w, b, output_padding=output_padding, **kw),
            lambda x, w, b: TF.conv_transpose2d(x, w, b, output_padding=output_padding, **kw),
            _x(*xs), _x(*ws, seed=1), _x(ws[1] * groups, seed=2), **TOL)


@pytest.mark.parametrize("output_padding", [0, 1])
def test_conv_transpose1d_matches_torch(output_padding):
    compare(lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=output_padding),
            lambda x, w, b: TF.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=output_padding),
            _x(2, 3, 7), _x(3, 4, 3, seed=1), _x(4, seed=2), **TOL)


def test_unfold_and_fold_match_torch():
    kw = dict(kernel_size=(2, 3), padding=1, stride=2, dilation=(1, 2))
    compare(lambda x: F.unfold(x, **kw), lambda x: TF.unfold(x, **kw), _x(2, 3, 6, 7))
    compare(lambda x: F.fold(x, (6, 7), **kw), lambda x: TF.fold(x, (6, 7), **kw), _x(2, 18, 12))


def test_gradcheck_float64():
    def x64(*s, seed=0):
        return somanet.tensor(_x(*s, seed=seed).astype(np.float64), requires_grad=True)

    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
                     (x64(2, 2, 5, 6), x64(3, 2, 3, 2, seed=1), x64(3, seed=2)))
    assert gradcheck(lambda x, w: F.conv2d(x, w, groups=2, padding="same"), (x64(1, 4, 4, 4), x64(4, 2, 2, 2, seed=1)))
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), (x64(2, 2, 7), x64(3, 2, 3, seed=1),
                                                                            x64(3, seed=2)))
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
                     (x64(1, 4, 3, 3), x64(4, 1, 3, 3, seed=1), x64(2, seed=2)))
    assert gradcheck(lambda x: F.unfold(x, 2, padding=1, stride=2), (x64(1, 2, 4, 5),))


def test_dtypes_do_not_drift():
    x = somanet.randn(2, 3, 6, 6)
    w = somanet.randn(4, 3, 3, 3)
    assert F.conv2d(x, w).dtype == np.float32
    x64 = somanet.tensor(x.array.astype(np.float64), requires_grad=True)
    w64 = somanet.tensor(w.array.astype(np.float64), requires_grad=True)
    y = F.conv2d(x64, w64, padding=1)
    y.sum().backward()
    assert y.dtype == np.float64 and x64.grad.dtype == np.float64 and w64.grad.dtype == np.float64
    conv = nn.Conv2d(3, 4, 3)
    assert conv.weight.dtype == np.float32 and conv.bias.dtype == np.float32
    xt = somanet.randn(2, 3, 6, 6, requires_grad=True)
    conv(xt).sum().backward()
    assert xt.grad.dtype == np.float32 and conv.weight.grad.dtype == np.float32


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, dilation", [(1, 1), ((2, 1), 1), ("same", (1, 2))])
def test_conv2d_module_padding_modes(padding_mode, padding, dilation):
    t_mod = torch.nn.Conv2d(4, 6, (3, 2), padding=padding, dilation=dilation, padding_mode=padding_mode)
    s_mod = nn.Conv2d(4, 6, (3, 2), padding=padding, dilation=dilation, padding_mode=padding_mode)
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, _x(2, 4, 7, 8), **TOL)
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_conv1d_module(padding_mode):
    t_mod = torch.nn.Conv1d(3, 4, 3, stride=2, padding=1, padding_mode=padding_mode, bias=False)
    s_mod = nn.Conv1d(3, 4, 3, stride=2, padding=1, padding_mode=padding_mode, bias=False)
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, _x(2, 3, 9), **TOL)
    assert repr(s_mod) == repr(t_mod)


def test_conv_transpose_modules():
    t_mod = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    s_mod = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, _x(2, 4, 5, 5), **TOL)
    assert repr(s_mod) == repr(t_mod)
    t_mod = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1)
    s_mod = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1)
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, _x(1, 4, 5, 5), forward=lambda m, x: m(x, output_size=(10, 10)), **TOL)
    assert s_mod(somanet.randn(1, 4, 5, 5), output_size=[1, 3, 10, 10]).shape == (1, 3, 10, 10)
    t1 = torch.nn.ConvTranspose1d(2, 3, 4, stride=2)
    s1 = nn.ConvTranspose1d(2, 3, 4, stride=2)
    copy_state(t1, s1)
    compare_modules(s1, t1, _x(2, 2, 6), **TOL)


def test_parameter_layout_and_default_init():
    for s_mod, t_mod in [(nn.Conv2d(6, 8, (3, 5), groups=2), torch.nn.Conv2d(6, 8, (3, 5), groups=2)),
                         (nn.Conv1d(4, 2, 3, bias=False), torch.nn.Conv1d(4, 2, 3, bias=False)),
                         (nn.ConvTranspose2d(6, 9, 3, groups=3), torch.nn.ConvTranspose2d(6, 9, 3, groups=3))]:
        s_state, t_state = s_mod.state_dict(), t_mod.state_dict()
        assert list(s_state) == list(t_state)
        for k in t_state:
            assert tuple(s_state[k].shape) == tuple(t_state[k].shape), k
    conv = nn.Conv2d(64, 128, 3)
    bound = 1 / math.sqrt(64 * 9)
    w, b = conv.weight.array, conv.bias.array
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # U(-a, a) has std a / sqrt(3)
    assert np.abs(b).max() <= bound
    # A transposed convolution's fan-in is weight.size(1) * kernel area, as in PyTorch.
    tconv = nn.ConvTranspose2d(64, 16, 3)
    assert np.abs(tconv.weight.array).max() <= 1 / math.sqrt(16 * 9)
    assert np.abs(tconv.weight.array).max() > 0.9 / math.sqrt(16 * 9)


def test_torch_state_dict_loads_and_matches():
    t_mod = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, groups=8, padding=1, padding_mode="reflect"),
                                torch.nn.ConvTranspose2d(8, 4, 2, stride=2))
    s_mod = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, groups=8, padding=1, padding_mode="reflect"),
                          nn.ConvTranspose2d(8, 4, 2, stride=2))
    result = copy_state(t_mod, s_mod)
    assert not result.missing_keys and not result.unexpected_keys
    compare_modules(s_mod, t_mod, _x(2, 3, 16, 16), **TOL)


# --------------------------------------------------------------------------- errors
def _raises(fn, *fragments):
    with pytest.raises((ValueError, TypeError, RuntimeError)) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_errors_name_the_op_and_the_shapes():
    conv = nn.Conv2d(3, 8, 3)
    _raises(lambda: conv(somanet.randn(2, 4, 8, 8)), "Conv2d(3, 8", "3 channels", "(2, 4, 8, 8)")
    _raises(lambda: conv(somanet.randn(8, 8)), "Conv2d(3, 8", "4-D", "(8, 8)")
    # A 3-D input is an unbatched (C, H, W) image, as in PyTorch; a batch missing its channel dimension says so.
    _raises(lambda: conv(somanet.randn(16, 8, 8)), "3 channels", "(16, 8, 8)", "unbatched", "unsqueeze(1)")
    assert conv(somanet.randn(3, 8, 8)).shape == (8, 6, 6)
    _raises(lambda: conv(somanet.randn(1, 2, 3, 8, 8)), "Conv2d", "(1, 2, 3, 8, 8)")
    _raises(lambda: nn.Conv1d(3, 4, 3)(somanet.randn(2, 3, 4, 4)), "Conv1d", "(N, C, L)", "(2, 3, 4, 4)")
    x, w = somanet.randn(2, 3, 8, 8), somanet.randn(4, 3, 3, 3)
    _raises(lambda: F.conv2d(x, somanet.randn(4, 2, 3, 3)), "conv2d", "3 channels", "(4, 2, 3, 3)")
    _raises(lambda: F.conv2d(x, somanet.randn(4, 3, 3)), "conv2d", "4-D weight", "(4, 3, 3)")
    _raises(lambda: F.conv2d(x, w, somanet.randn(5)), "conv2d", "bias", "(4,)", "(5,)")
    _raises(lambda: F.conv2d(x, w, stride=2, padding="same"), "padding='same'", "strided")
    _raises(lambda: F.conv2d(somanet.randn(1, 3, 2, 2), w), "conv2d", "larger than the padded input")
    _raises(lambda: F.conv2d(x, somanet.tensor(w.array.astype(np.float64))), "conv2d", "float32", "float64")
    _raises(lambda: F.conv2d(x, w, stride=0), "stride", "positive")
    _raises(lambda: F.conv2d(somanet.randn(2, 4, 8, 8), somanet.randn(3, 2, 3, 3), groups=2), "divisible by groups")
    _raises(lambda: nn.Conv2d(3, 8, 3, groups=2), "in_channels (3)", "groups (2)")
    _raises(lambda: nn.Conv2d(3, 8, 3, padding_mode="mirror"), "padding_mode", "mirror")
    _raises(lambda: nn.Conv2d(3, 8, 3, stride=2, padding="same"), "padding='same'", "strided")
    _raises(lambda: nn.ConvTranspose2d(3, 8, 3, padding_mode="reflect"), "zeros", "ConvTranspose2d")
    _raises(lambda: F.conv_transpose2d(x, somanet.randn(3, 2, 3, 3), stride=2, output_padding=2),
            "output_padding 2", "stride 2")
    _raises(lambda: nn.ConvTranspose2d(3, 2, 3, stride=2)(x, output_size=(40, 40)), "output size 40")


# --------------------------------------------------------------------------- norm layers and Dropout2d in a CNN
def _small_cnn(lib):
    return lib.Sequential(
        lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8), lib.ReLU(),
        lib.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), lib.GroupNorm(2, 8), lib.ReLU(),
        lib.Dropout2d(0.25),
        lib.Conv2d(8, 6, 1), lib.InstanceNorm2d(6, affine=True, track_running_stats=True), lib.ReLU(),
        lib.MaxPool2d(2), lib.AdaptiveAvgPool2d(1), lib.Flatten(), lib.Linear(6, 4),
    )


def test_small_cnn_with_norm_layers_train_and_eval():
    t_mod, s_mod = _small_cnn(torch.nn), _small_cnn(nn)
    with torch.no_grad():  # non-trivial affine parameters
        for m in t_mod.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.InstanceNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    copy_state(t_mod, s_mod)
    # Dropout2d is random in training; its own test lives with the dropout layers, so switch it off here.
    t_mod[6].p = 0.0
    s_mod[6].p = 0.0
    for step in range(2):
        compare_modules(s_mod, t_mod, _x(4, 3, 10, 10, seed=step), rtol=1e-4, atol=2e-4, seed=step)
    t_state = t_mod.state_dict()
    for name, value in s_mod.state_dict().items():
        np.testing.assert_allclose(value.data if hasattr(value, "data") else value, t_state[name].numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    assert int(s_mod[1].num_batches_tracked.array) == 2
    s_mod.eval()
    t_mod.eval()
    compare_modules(s_mod, t_mod, _x(3, 3, 10, 10, seed=5), rtol=1e-4, atol=2e-4)


def test_dropout2d_zeroes_whole_channels_in_a_cnn():
    conv = nn.Conv2d(4, 32, 3, padding=1)
    drop = nn.Dropout2d(0.5)
    x = somanet.randn(8, 4, 6, 6, requires_grad=True)
    y = conv(x)
    z = drop(y)
    planes = z.array.reshape(8, 32, -1)
    dropped = np.all(planes == 0, axis=2)
    kept = ~dropped
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(planes[kept], 2 * y.array.reshape(8, 32, -1)[kept], rtol=1e-6)
    z.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    drop.eval()
    np.testing.assert_array_equal(drop(y).array, y.array)


def test_empty_batch_and_non_contiguous_input():
    compare(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
            _x(0, 3, 5, 5), _x(4, 3, 3, 3, seed=1), _x(4, seed=2))
    # A channels-last view (NCHW shape, NHWC memory) goes through the same kernels.
    x_nhwc = _x(2, 6, 7, 5)
    compare(lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w, padding=1, stride=(2, 1)),
            lambda x, w: TF.conv2d(x.permute(0, 3, 1, 2), w, padding=1, stride=(2, 1)),
            x_nhwc, _x(4, 5, 3, 3, seed=1), **TOL)


# ------------------------------------------------------------------ the batch split across threads
@pytest.fixture
def threaded(monkeypatch, split_always):
    """Two threads and no minimum size, so every convolution below splits its batch; returns the list
    of block counts the split ran with."""
    from somanet.kernels import threads

    calls = []
    split = threads.split_batch

    def spy(fn, n, blocks):
        calls.append(blocks)
        return split(fn, n, blocks)

    monkeypatch.setattr(threads, "split_batch", spy)
    return calls


THREADED_CASES = [
    ((5, 3, 7, 9), (4, 3, 3, 3), dict(padding=1)),                      # uneven blocks (2 and 3 images)
    ((4, 3, 11, 10), (4, 3, 5, 5), dict(stride=2, padding=2)),           # strided: dX in column space
    ((3, 4, 6, 6), (8, 1, 3, 3), dict(groups=4, stride=2)),              # depthwise
    ((3, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),                     # dW from wide windows
    ((4, 4, 9, 9), (120, 4, 3, 3), dict(stride=2, padding=1)),           # dW over the whole batch
    ((3, 6, 4, 4), (5, 6, 3, 3), dict(padding=1)),                       # small planes: folded GEMMs
    ((3, 5, 6, 7), (3, 5, 1, 1), dict()),                                # 1x1
]


@pytest.mark.parametrize("xs, ws, kw", THREADED_CASES)
def test_conv2d_split_across_threads_matches_torch(threaded, xs, ws, kw):
    arrays = [_x(*xs), _x(*ws, seed=1), _x(ws[0], seed=2)]
    compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), *arrays, **TOL)
    assert threaded.count(2) >= 3  # forward, input gradient and weight gradient each split in two


@pytest.mark.parametrize("stride, output_padding", [(1, 0), (2, 1)])
def test_conv_transpose_and_conv1d_split_across_threads_match_torch(threaded, stride, output_padding):
    kw = dict(stride=stride, padding=1, output_padding=output_padding)
    compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
            _x(3, 4, 5, 6), _x(4, 3, 3, 3, seed=1), _x(3, seed=2), **TOL)
    compare(lambda x, w, b: F.conv1d(x, w, b, stride=stride, padding=1),
            lambda x, w, b: TF.conv1d(x, w, b, stride=stride, padding=1),
            _x(5, 4, 11), _x(6, 4, 3, seed=1), _x(6, seed=2), **TOL)
    assert threaded.count(2) >= 6


def test_split_gives_the_same_bits_as_one_thread(threaded):
    # Each image's products are the same GEMMs either way; only the weight gradient's batch sum is
    # grouped differently.
    x = somanet.tensor(_x(6, 8, 10, 10), requires_grad=True)
    w = somanet.tensor(_x(16, 8, 3, 3, seed=1), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    out.backward(somanet.tensor(_x(6, 16, 10, 10, seed=3)))
    assert threaded
    somanet.set_num_threads(1)
    x1 = somanet.tensor(x.array, requires_grad=True)
    w1 = somanet.tensor(w.array, requires_grad=True)
    out1 = F.conv2d(x1, w1, padding=1)
    out1.backward(somanet.tensor(_x(6, 16, 10, 10, seed=3)))
    np.testing.assert_array_equal(out.array, out1.array)
    np.testing.assert_array_equal(x.grad.array, x1.grad.array)
    np.testing.assert_allclose(w.grad.array, w1.grad.array, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xs, ws, kw", KERNEL_CHOICE_CASES[:6])
def test_weight_gradients_are_c_contiguous(xs, ws, kw):
    # Optimizers run several times slower on a transposed gradient than on one laid out like the weight.
    x = somanet.tensor(_x(*xs))
    w = somanet.tensor(_x(*ws, seed=1), requires_grad=True)
    g = F.conv2d(x, w, **kw)
    g.sum().backward()
    assert w.grad.array.flags.c_contiguous
    from somanet.kernels.conv import conv_weight_grad

    gw = conv_weight_grad(np.ones(g.shape, np.float32), x.array, kw.get("groups", 1),
                          ((kw.get("padding", 0),) * 2,) * 2, (kw.get("stride", 1),) * 2, (1, 1), ws[2:])
    assert gw.flags.c_contiguous
    np.testing.assert_allclose(gw, w.grad.array, rtol=1e-5, atol=1e-5)


@pytest.fixture
def cache_blocks(monkeypatch):
    """Convolution passes cut into cache blocks far smaller than real ones: ``images`` per block (a
    fraction makes uneven blocks). Returns the list of range counts every split was asked for."""
    from somanet.kernels import conv

    seen = []
    original = conv._cache_ranges

    def limit(images):
        def spy(xp, n, per_image):
            monkeypatch.setattr(conv, "CACHE_BLOCK_BYTES", int(images * per_image))
            ranges = original(xp, n, per_image)
            seen.append(len(ranges))
            return ranges

        monkeypatch.setattr(conv, "_cache_ranges", spy)
        return seen

    return limit


BLOCKED_CASES = [  # batch 5: blocks of one image, or of one, two and two; the passes that block
    ((5, 8, 12, 12), (8, 8, 3, 3), dict(padding=1), 2),                  # forward, dX by the adjoint (dW wide)
    ((5, 8, 14, 14), (12, 8, 3, 3), dict(padding=1, stride=2), 3),       # dX in column space, dW from rows
    ((5, 2, 9, 9), (6, 2, 3, 3), dict(padding=1), 3),                    # dW from rows x gradient
    ((5, 4, 15, 15), (120, 4, 3, 3), dict(stride=2, padding=1), 3),      # dW over the whole batch
    ((5, 8, 9, 9), (220, 4, 3, 3), dict(groups=2, padding=1), 3),        # the same, grouped
    ((5, 6, 9, 9), (4, 6, 3, 3), dict(padding=1, dilation=(2, 1), stride=(1, 2)), 3),
]


@pytest.mark.parametrize("images, blocks", [(1, 5), (2.5, 3)])
@pytest.mark.parametrize("xs, ws, kw, passes", BLOCKED_CASES)
def test_cache_blocks_match_torch(cache_blocks, images, blocks, xs, ws, kw, passes):
    seen = cache_blocks(images)
    arrays = [_x(*xs), _x(*ws, seed=1), _x(ws[0], seed=2)]
    with somanet.backends.cpu.kernel("conv2d", "gemm"):  # the window GEMMs' blocks (im2col has row blocks)
        compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), *arrays, **TOL)
    # A block's own pass then runs whole.
    assert seen.count(blocks) == passes and set(seen) <= {blocks, 1}


def test_cache_blocks_in_transposed_convolutions_threads_and_float64(cache_blocks, threaded):
    seen = cache_blocks(1)
    kw = dict(stride=2, padding=1, output_padding=1)
    compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
            _x(5, 4, 5, 6), _x(4, 3, 3, 3, seed=1), _x(3, seed=2), **TOL)
    compare(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
            _x(5, 3, 7, 9), _x(4, 3, 3, 3, seed=1), _x(4, seed=2), **TOL)
    assert threaded.count(2) >= 6 and seen.count(2) + seen.count(3) >= 6  # each thread's block of 2 or 3 images
    somanet.set_num_threads(1)

    def x64(*s, seed=0):
        return somanet.tensor(_x(*s, seed=seed).astype(np.float64), requires_grad=True)

    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1), (x64(3, 2, 5, 6),
                     x64(3, 2, 3, 3, seed=1), x64(3, seed=2)))
