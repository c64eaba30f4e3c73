"""Dropout: mask statistics, 1/(1-p) scaling, eval identity, gradient = mask * scale, channel-wise
variants, alpha dropout and reproducibility under manual_seed."""
import math
import warnings

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from reference import compare_modules, torch_or_skip


def _ones_input(*shape):
    return somanet.tensor(np.random.default_rng(0).uniform(0.5, 1.5, shape).astype(np.float32), requires_grad=True)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_dropout_mask_statistics_and_scaling(p):
    x = _ones_input(400, 250)
    y = nn.Dropout(p)(x)
    dropped = y.array == 0
    n = dropped.size
    # Binomial(n, p): 5 standard deviations.
    assert abs(dropped.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.array[~dropped], x.array[~dropped] / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32


def test_dropout_gradient_is_mask_times_scale():
    p = 0.4
    x = _ones_input(50, 40)
    y = F.dropout(x, p)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(somanet.tensor(g))
    kept = y.array != 0
    np.testing.assert_allclose(x.grad.array, g * kept / (1 - p), rtol=1e-6)


def test_dropout_is_identity_in_eval_mode_and_without_training():
    x = _ones_input(10, 10)
    mod = nn.Dropout(0.5)
    mod.eval()
    assert mod(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    for cls in (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout):
        m = cls(0.5).eval()
        z = _ones_input(2, 3, 4, 5, 6) if cls in (nn.Dropout3d, nn.Dropout2d) else _ones_input(2, 3, 4)
        z = z[0] if cls is nn.Dropout2d else z
        assert m(z) is z


def test_dropout_matches_torch_where_deterministic():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    compare_modules(nn.Dropout(0.3).eval(), torch.nn.Dropout(0.3).eval(), x)
    compare_modules(nn.Dropout(0.0), torch.nn.Dropout(0.0), x)
    for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        assert repr(getattr(nn, name)(0.25)) == repr(getattr(torch.nn, name)(0.25))


def test_dropout_edge_probabilities_and_errors():
    x = _ones_input(6, 7)
    y = F.dropout(x, 1.0)
    assert not y.array.any()
    y.sum().backward()
    assert not x.grad.array.any()
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, -0.1)


def test_dropout_reproducible_under_manual_seed_and_generator():
    x = _ones_input(30, 30)
    somanet.manual_seed(11)
    a = F.dropout(x, 0.5).array
    somanet.manual_seed(11)
    np.testing.assert_array_equal(F.dropout(x, 0.5).array, a)
    assert not np.array_equal(F.dropout(x, 0.5).array, a)
    g1, g2 = somanet.Generator(5), somanet.Generator(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=g1).array, F.dropout(x, 0.5, generator=g2).array)


@pytest.mark.parametrize("cls,shape,channel_axes", [
    (nn.Dropout1d, (40, 30, 7), (0, 1)),
    (nn.Dropout1d, (30, 7), (0,)),
    (nn.Dropout2d, (40, 30, 3, 4), (0, 1)),
    (nn.Dropout3d, (40, 30, 2, 3, 2), (0, 1)),
    (nn.Dropout3d, (30, 2, 3, 2), (0,)),
])
def test_channel_dropout_zeroes_whole_channels(cls, shape, channel_axes):
    p = 0.3
    x = _ones_input(*shape)
    y = cls(p)(x)
    spatial = tuple(i for i in range(len(shape)) if i not in channel_axes)
    zero = (y.array == 0).all(axis=spatial)
    nonzero = (y.array != 0).all(axis=spatial)
    assert np.all(zero | nonzero), "a channel was partly dropped"
    assert abs(zero.mean() - p) < 5 * math.sqrt(p * (1 - p) / zero.size)
    np.testing.assert_allclose(y.array[y.array != 0], x.array[y.array != 0] / (1 - p), rtol=1e-6)
    y.backward(somanet.ones(*shape))
    np.testing.assert_allclose(x.grad.array, (y.array != 0) / (1 - p), rtol=1e-6)


def test_dropout2d_on_3d_input_is_channelwise_per_sample_with_a_warning():
    x = _ones_input(50, 20, 6)
    with pytest.warns(UserWarning, match="3-D input"):
        y = F.dropout2d(x, 0.5)
    zero = (y.array == 0).all(axis=2)
    assert np.all(zero | (y.array != 0).all(axis=2))


def test_dropout1d_rejects_wrong_rank():
    with pytest.raises(RuntimeError, match=r"dropout1d.*\(N, C, L\).*\(2, 3, 4, 5\)"):
        F.dropout1d(somanet.randn(2, 3, 4, 5))


def test_alpha_dropout_keeps_mean_and_variance_of_standard_input():
    data = np.random.default_rng(0).standard_normal((500, 400)).astype(np.float32)
    # A kept unit equal to SELU's saturation value would look dropped; move the few such inputs.
    data[np.abs(data + 1.7580993) < 1e-3] = 0.0
    x = somanet.tensor(data, requires_grad=True)
    p = 0.2
    y = nn.AlphaDropout(p)(x)
    assert abs(float(y.array.mean())) < 0.02
    assert abs(float(y.array.std()) - 1) < 0.02
    # Dropped units all take one value: a * (-alpha') + alpha' * a * p.
    alpha = 1.7580993408473766
    a = 1 / math.sqrt((alpha ** 2 * p + 1) * (1 - p))
    dropped_value = -alpha * a + alpha * a * p
    dropped = np.isclose(y.array, dropped_value, atol=1e-6)
    assert abs(dropped.mean() - p) < 0.01
    kept = ~dropped
    np.testing.assert_allclose(y.array[kept], a * x.array[kept] + alpha * a * p, rtol=1e-5, atol=1e-6)
    y.backward(somanet.ones(*y.shape))
    np.testing.assert_allclose(x.grad.array, kept * a, rtol=1e-6)


def test_feature_alpha_dropout_drops_whole_channels():
    x = _ones_input(20, 10, 6)
    y = nn.FeatureAlphaDropout(0.5)(x)
    first = y.array[..., :1]
    p = 0.5
    alpha = 1.7580993408473766
    a = 1 / math.sqrt((alpha ** 2 * p + 1) * (1 - p))
    dropped = np.isclose(first, -alpha * a + alpha * a * p).all(axis=2)
    chan_dropped = np.isclose(y.array, -alpha * a + alpha * a * p).all(axis=2)
    np.testing.assert_array_equal(dropped, chan_dropped)
    assert 0.3 < chan_dropped.mean() < 0.7


def test_dropout_rejects_integer_input():
    with pytest.raises(TypeError, match="floating"):
        F.dropout(somanet.tensor([1, 2, 3]), 0.5)


def test_dropout_in_sequential_follows_train_and_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9))
    x = somanet.randn(64, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_zeros = (model(x).array == 0).mean()
    model.eval()
    assert (model(x).array == 0).mean() == 0
    assert train_zeros > 0.8


@pytest.mark.parametrize("fn", [
    lambda x: F.dropout(x, 0.3, generator=somanet.Generator(0)),
    lambda x: F.dropout2d(x, 0.5, generator=somanet.Generator(1)),
    lambda x: F.alpha_dropout(x, 0.2, training=True, generator=somanet.Generator(2)),
    lambda x: F.feature_alpha_dropout(x, 0.4, training=True, generator=somanet.Generator(3)),
])
def test_dropout_gradcheck_with_a_fixed_mask(fn):
    # A fresh generator with a fixed seed gives the same mask on every call, so finite differences apply.
    from somanet.autograd import gradcheck

    x = somanet.tensor(np.random.default_rng(0).standard_normal((3, 4, 2, 2)), requires_grad=True)
    assert gradcheck(fn, [x])
