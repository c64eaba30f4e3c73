"""Pooling against PyTorch: max (ties, NaN, ceil mode, overlapping windows, indices), average (padding
counts, divisor override), adaptive, max-unpooling, layers, float64 finite differences and errors."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import assert_close, compare, compare_modules, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _ties(*shape, seed=0):
    """Small integers: many equal values inside each window."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float32)


POOL2D_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),                       # overlapping, padded
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),
    dict(kernel_size=3, stride=1),                                  # heavy overlap
    dict(kernel_size=2, stride=3),                                  # stride larger than kernel
    dict(kernel_size=3),                                            # windows tile the input, 3x3
    dict(kernel_size=(2, 3)),                                       # tiling, non-square
]


@pytest.mark.parametrize("kw", POOL2D_CASES)
@pytest.mark.parametrize("make", [_x, _ties], ids=["random", "ties"])
def test_max_pool2d_matches_torch(kw, make):
    x = make(2, 3, 7, 8)
    out = compare(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), x)
    assert out.dtype == np.float32
    compare(lambda t: F.max_pool2d(t, return_indices=True, **kw),
            lambda t: TF.max_pool2d(t, return_indices=True, **kw), x)


@pytest.mark.parametrize("kw", POOL2D_CASES + [dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                                                     dilation=(2, 3), ceil_mode=True)])
def test_max_pool_without_grad_computes_values_only_and_matches_torch(kw):
    # Under no_grad and without return_indices the op skips the argmax; the values must not change, NaN
    # included.
    x = _x(2, 3, 9, 10)
    x[0, 0, 1, 1] = x[1, 2, 4, 5] = np.nan
    with somanet.no_grad():
        got = F.max_pool2d(somanet.tensor(x), **kw)
        got1d = F.max_pool1d(somanet.tensor(x[:, :, 0]), 3, 2, 1)
    assert got.dtype == np.float32 and not got.requires_grad
    with torch.no_grad():
        assert_close(got, TF.max_pool2d(torch.tensor(x), **kw))
        assert_close(got1d, TF.max_pool1d(torch.tensor(x[:, :, 0]), 3, 2, 1))


@pytest.mark.parametrize("make", [_x, _ties], ids=["random", "ties"])
def test_max_pool2d_dilation_matches_torch(make):
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3), ceil_mode=True)
    compare(lambda t: F.max_pool2d(t, return_indices=True, **kw),
            lambda t: TF.max_pool2d(t, return_indices=True, **kw), make(2, 2, 9, 10))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.ones((1, 1, 4, 4), np.float32)
    t = somanet.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    expected = np.zeros((4, 4), np.float32)
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(t.grad.array[0, 0], expected)
    # Overlapping windows that share a maximum accumulate on it, as in PyTorch.
    compare(lambda a: F.max_pool2d(a, 3, 1, 1), lambda a: TF.max_pool2d(a, 3, 1, 1), x)


def test_max_pool_propagates_nan():
    x = _x(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2, 3] = np.nan
    x[0, 1, 0, 0] = x[0, 1, 1, 0] = np.nan  # two NaNs in one window
    s_val, s_idx = F.max_pool2d(somanet.tensor(x), 2, return_indices=True)
    t_val, t_idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    assert_close(s_val, t_val)
    assert_close(s_idx, t_idx)
    s_val, s_idx = F.max_pool2d(somanet.tensor(x), 3, 1, 1, return_indices=True)
    t_val, t_idx = TF.max_pool2d(torch.tensor(x), 3, 1, 1, return_indices=True)
    assert_close(s_val, t_val)
    assert_close(s_idx, t_idx)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_max_pool_routes_infinite_and_nan_gradients_like_torch(kernel_size):
    # Only the maximum receives the upstream gradient, whatever its value; the rest get exactly +0.
    x = _ties(2, 3, 6, 7)
    g = _x(2, 3, 6 // kernel_size, 7 // kernel_size, seed=1)
    g[0, 0, 0, 0], g[1, 2, 1, 1], g[0, 1, 1, 0] = np.inf, -np.inf, np.nan
    s = somanet.tensor(x, requires_grad=True)
    F.max_pool2d(s, kernel_size).backward(somanet.tensor(g))
    t = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(t, kernel_size).backward(torch.tensor(g))
    np.testing.assert_array_equal(s.grad.array, t.grad.numpy())
    assert not np.signbit(s.grad.array[t.grad.numpy() == 0]).any()


def test_max_pool1d_and_avg_pool1d_match_torch():
    for kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=2), dict(kernel_size=4, stride=1)]:
        compare(lambda t: F.max_pool1d(t, return_indices=True, **kw),
                lambda t: TF.max_pool1d(t, return_indices=True, **kw), _ties(2, 3, 11))
        for cip in (True, False):
            compare(lambda t: F.avg_pool1d(t, count_include_pad=cip, **kw),
                    lambda t: TF.avg_pool1d(t, count_include_pad=cip, **kw), _x(2, 3, 11))


@pytest.mark.parametrize("kw", [c for c in POOL2D_CASES])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(kw, count_include_pad):
    out = compare(lambda t: F.avg_pool2d(t, count_include_pad=count_include_pad, **kw),
                  lambda t: TF.avg_pool2d(t, count_include_pad=count_include_pad, **kw), _x(2, 3, 7, 8))
    assert out.dtype == np.float32


def test_avg_pool2d_divisor_override_matches_torch():
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=5)
    compare(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), _x(2, 3, 7, 8))


@pytest.mark.parametrize("output_size", [1, (1, 1), (3, 4), (2, 2), (5, 7), (None, 3), 9, (6, 8)])
def test_adaptive_pools_match_torch(output_size):
    x = _x(2, 3, 6, 8)
    compare(lambda t: F.adaptive_avg_pool2d(t, output_size), lambda t: TF.adaptive_avg_pool2d(t, output_size), x)
    compare(lambda t: F.adaptive_max_pool2d(t, output_size, return_indices=True),
            lambda t: TF.adaptive_max_pool2d(t, output_size, return_indices=True), x)
    compare(lambda t: F.adaptive_max_pool2d(t, output_size), lambda t: TF.adaptive_max_pool2d(t, output_size),
            _ties(2, 3, 6, 8))


def test_adaptive_pools_1d_match_torch():
    for size in (1, 4, 7, 13):
        compare(lambda t: F.adaptive_avg_pool1d(t, size), lambda t: TF.adaptive_avg_pool1d(t, size), _x(2, 3, 10))
        compare(lambda t: F.adaptive_max_pool1d(t, size, True), lambda t: TF.adaptive_max_pool1d(t, size, True),
                _ties(2, 3, 10))


def test_unbatched_pooling_matches_torch():
    compare(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), _x(3, 6, 6))
    compare(lambda t: F.avg_pool2d(t, 3, 2, 1), lambda t: TF.avg_pool2d(t, 3, 2, 1), _x(3, 6, 6))
    compare(lambda t: F.adaptive_avg_pool2d(t, 2), lambda t: TF.adaptive_avg_pool2d(t, 2), _x(3, 5, 7))


@pytest.mark.parametrize("size, kw", [(8, dict(kernel_size=2)), (9, dict(kernel_size=3, stride=2, padding=1)),
                                      (9, dict(kernel_size=2, stride=2, output_size=(9, 9)))])
def test_max_unpool2d_matches_torch(size, kw):
    pool_kw = {k: v for k, v in kw.items() if k != "output_size"}
    values, indices = TF.max_pool2d(torch.tensor(_x(2, 3, size, size)), return_indices=True, **pool_kw)
    s_idx = somanet.tensor(indices.numpy())
    compare(lambda v: F.max_unpool2d(v, s_idx, **kw), lambda v: TF.max_unpool2d(v, indices, **kw), values.numpy())


def test_max_unpool1d_roundtrip_with_max_pool1d():
    x = somanet.tensor(_x(2, 3, 8))
    values, indices = F.max_pool1d(x, 2, return_indices=True)
    t_vals, t_idx = TF.max_pool1d(torch.tensor(x.array), 2, return_indices=True)
    assert_close(F.max_unpool1d(values, indices, 2), TF.max_unpool1d(t_vals, t_idx, 2))


def test_gradcheck_float64():
    def x64(*s, seed=0):
        return somanet.tensor(_x(*s, seed=seed).astype(np.float64), requires_grad=True)

    assert gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), (x64(1, 2, 5, 6),))
    assert gradcheck(lambda t: F.max_pool2d(t, 2), (x64(1, 2, 5, 6),))
    assert gradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False), (x64(1, 2, 5, 6),))
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 4)), (x64(1, 2, 5, 6),))
    assert gradcheck(lambda t: F.adaptive_max_pool2d(t, (3, 4)), (x64(1, 2, 5, 6),))
    assert gradcheck(lambda t: F.avg_pool1d(t, 3, 1, 1), (x64(2, 2, 6),))


def test_pooling_modules_match_torch():
    pairs = [
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (nn.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)),
        (nn.MaxPool1d(3, 2), torch.nn.MaxPool1d(3, 2)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
        (nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3)),
        (nn.AvgPool1d(2), torch.nn.AvgPool1d(2)),
        (nn.AdaptiveAvgPool2d((1, 1)), torch.nn.AdaptiveAvgPool2d((1, 1))),
        (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
        (nn.AdaptiveMaxPool2d(3, return_indices=True), torch.nn.AdaptiveMaxPool2d(3, return_indices=True)),
        (nn.AdaptiveAvgPool1d(3), torch.nn.AdaptiveAvgPool1d(3)),
        (nn.AdaptiveMaxPool1d(3), torch.nn.AdaptiveMaxPool1d(3)),
    ]
    for s_mod, t_mod in pairs:
        assert repr(s_mod) == repr(t_mod)
        x = _x(2, 3, 7, 8) if "2d" in type(s_mod).__name__ else _x(2, 3, 9)
        compare_modules(s_mod, t_mod, x)
    unpool_s, unpool_t = nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)
    assert repr(unpool_s) == repr(unpool_t)
    values, indices = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(_x(1, 2, 6, 6)))
    assert_close(unpool_s(somanet.tensor(values.numpy()), somanet.tensor(indices.numpy())), unpool_t(values, indices))


def _raises(fn, *fragments):
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_errors_name_the_op_and_the_shapes():
    x = somanet.randn(2, 3, 4, 4)
    _raises(lambda: F.max_pool2d(somanet.randn(4, 4), 2), "max_pool2d", "(N, C, H, W)", "(4, 4)")
    _raises(lambda: F.max_pool2d(x, 2, padding=2), "padding", "half of the kernel")
    _raises(lambda: F.max_pool2d(x, 5), "max_pool2d", "too small", "(2, 3, 4, 4)")
    _raises(lambda: F.avg_pool2d(x, 0), "kernel_size", "positive")
    _raises(lambda: F.avg_pool2d(x, 2, divisor_override=0), "divisor_override")
    _raises(lambda: F.max_pool1d(x, 2), "max_pool1d", "(N, C, L)")
    _raises(lambda: F.adaptive_avg_pool2d(x, (1, 2, 3)), "adaptive_avg_pool2d", "output_size")
    values, indices = F.max_pool2d(x, 2, return_indices=True)
    _raises(lambda: F.max_unpool2d(values, indices[:1], 2), "max_unpool2d", "indices of shape")
    _raises(lambda: F.max_unpool2d(values, indices, 2, output_size=(9, 9)), "max_unpool2d", "output_size")
    _raises(lambda: F.max_unpool2d(values, indices * 100, 2), "invalid max index")


def test_empty_batch_and_non_contiguous_input():
    compare(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), _x(0, 3, 4, 4))
    compare(lambda t: F.avg_pool2d(t, 3, 2, 1), lambda t: TF.avg_pool2d(t, 3, 2, 1), _x(0, 3, 5, 5))
    compare(lambda t: F.adaptive_avg_pool2d(t, (2, 3)), lambda t: TF.adaptive_avg_pool2d(t, (2, 3)), _x(0, 3, 5, 5))
    compare(lambda t: F.max_pool2d(t.permute(0, 3, 1, 2), 2, return_indices=True),
            lambda t: TF.max_pool2d(t.permute(0, 3, 1, 2), 2, return_indices=True), _x(2, 7, 6, 3))
    compare(lambda t: F.max_pool2d(t.permute(0, 3, 1, 2), 3, 2, 1, return_indices=True),
            lambda t: TF.max_pool2d(t.permute(0, 3, 1, 2), 3, 2, 1, return_indices=True), _x(2, 7, 6, 3))
