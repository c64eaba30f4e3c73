"""somanet.nn.init against PyTorch: gains and fans exactly, deterministic fills exactly, random fills by
their distribution (bounds, mean, std), in place, float32, unrecorded, and seeded by manual_seed."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.nn import init
from reference import torch_or_skip

torch = torch_or_skip()
tinit = torch.nn.init


def _pair(*shape):
    return somanet.empty(*shape), torch.empty(*shape)


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv_transpose3d", None)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(tinit.calculate_gain(nonlinearity, param))


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(3, 4), (8, 4, 3, 3), (5, 2, 7), (2, 3, 2, 2, 2)])
def test_fan_in_and_fan_out_match_torch(shape):
    s, t = _pair(*shape)
    assert init._calculate_fan_in_and_fan_out(s) == tinit._calculate_fan_in_and_fan_out(t)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(somanet.empty(3))


def _check_in_place(fn, *args, **kwargs):
    w = nn.Parameter(somanet.zeros(64, 32))
    array = w.array
    out = fn(w, *args, **kwargs)
    assert out is w and w.array is array, "init must fill in place and return the tensor"
    assert w.dtype == np.float32 and w.grad_fn is None and w.requires_grad
    return w.array


# (name, args, expected mean, expected std, bounds) of each random init on a (512, 256) tensor.
FAN_IN, FAN_OUT = 256, 512
RANDOM_INITS = [
    ("uniform_", (-0.5, 2.0), {}, 0.75, 2.5 / math.sqrt(12), (-0.5, 2.0)),
    ("normal_", (1.0, 0.3), {}, 1.0, 0.3, None),
    ("trunc_normal_", (0.0, 1.0, -2.0, 2.0), {}, 0.0, 0.8796, (-2.0, 2.0)),
    ("trunc_normal_", (0.5, 0.02), {"a": 0.48, "b": 0.56}, None, None, (0.48, 0.56)),
    ("xavier_uniform_", (), {"gain": 2.0}, 0.0, 2.0 * math.sqrt(2 / (FAN_IN + FAN_OUT)),
     (-2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT)), 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    ("xavier_normal_", (), {}, 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ("kaiming_uniform_", (), {"a": math.sqrt(5)}, 0.0, 1 / math.sqrt(3 * FAN_IN), (-1 / 16, 1 / 16)),
    ("kaiming_uniform_", (), {"mode": "fan_out", "nonlinearity": "relu"}, 0.0, math.sqrt(2 / FAN_OUT),
     (-math.sqrt(6 / FAN_OUT), math.sqrt(6 / FAN_OUT))),
    ("kaiming_normal_", (), {"nonlinearity": "relu"}, 0.0, math.sqrt(2 / FAN_IN), None),
    ("kaiming_normal_", (), {"a": 0.1, "mode": "fan_out"}, 0.0, math.sqrt(2 / 1.01 / FAN_OUT), None),
]


@pytest.mark.parametrize("name,args,kwargs,mean,std,bounds", RANDOM_INITS, ids=[r[0] for r in RANDOM_INITS])
def test_random_init_distribution_matches_torch(name, args, kwargs, mean, std, bounds):
    s, t = _pair(FAN_OUT, FAN_IN)
    getattr(init, name)(s, *args, **kwargs)
    getattr(tinit, name)(t, *args, **kwargs)
    a, ref = s.array, t.numpy()
    n = a.size
    assert a.dtype == np.float32
    # Sample std of 131,072 draws is within ~0.5 % of the truth; the torch sample is the same size.
    assert abs(a.std() - ref.std()) <= 0.02 * ref.std()
    assert abs(a.mean() - ref.mean()) <= 6 * ref.std() / math.sqrt(n)
    if std is not None:
        assert abs(a.std() - std) <= 0.01 * std
    if mean is not None:
        assert abs(a.mean() - mean) <= 5 * (std or ref.std()) / math.sqrt(n)
    if bounds is not None:
        lo, hi = bounds
        span = hi - lo
        assert a.min() >= lo and a.max() <= hi
        assert a.min() < lo + 0.01 * span and a.max() > hi - 0.01 * span
    # Distribution shape: the deciles agree with torch's to a small fraction of the spread.
    q = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(np.quantile(a, q), np.quantile(ref, q), atol=0.03 * ref.std())


def test_inits_fill_in_place_without_recording():
    for fn, args in [(init.uniform_, ()), (init.normal_, ()), (init.trunc_normal_, ()), (init.xavier_uniform_, ()),
                     (init.xavier_normal_, ()), (init.kaiming_uniform_, ()), (init.kaiming_normal_, ()),
                     (init.orthogonal_, ()), (init.constant_, (0.3,)), (init.ones_, ()), (init.zeros_, ()),
                     (init.eye_, ()), (init.sparse_, (0.5,))]:
        _check_in_place(fn, *args)


def test_inits_are_seeded_by_manual_seed_and_generators():
    for fn in (init.uniform_, init.normal_, init.trunc_normal_, init.kaiming_uniform_, init.orthogonal_):
        somanet.manual_seed(3)
        a = fn(somanet.empty(20, 10)).array.copy()
        somanet.manual_seed(3)
        np.testing.assert_array_equal(fn(somanet.empty(20, 10)).array, a)
        assert not np.array_equal(fn(somanet.empty(20, 10)).array, a)
        g1, g2 = somanet.Generator(9), somanet.Generator(9)
        np.testing.assert_array_equal(fn(somanet.empty(5, 4), generator=g1).array,
                                      fn(somanet.empty(5, 4), generator=g2).array)


def test_deterministic_inits_equal_torch():
    for shape, fn, args in [((3, 5), "constant_", (0.25,)), ((3, 5), "ones_", ()), ((3, 5), "zeros_", ()),
                            ((3, 5), "eye_", ()), ((5, 3), "eye_", ()), ((4, 2, 3), "dirac_", ()),
                            ((6, 3, 3, 3), "dirac_", ()), ((6, 2, 3, 3, 3), "dirac_", (2,)), ((4, 4, 5), "dirac_", (2,))]:
        s, t = _pair(*shape)
        getattr(init, fn)(s, *args)
        getattr(tinit, fn)(t, *args)
        np.testing.assert_array_equal(s.array, t.numpy(), err_msg=f"{fn}{shape}")
        assert s.dtype == np.float32


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (4, 3, 2, 2)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    w = init.orthogonal_(somanet.empty(*shape), gain=1.5).array
    flat = w.reshape(shape[0], -1)
    small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(small, 2.25 * np.eye(small.shape[0]), atol=1e-5)
    assert w.dtype == np.float32


def test_sparse_zeroes_the_requested_fraction_of_each_column():
    w = init.sparse_(somanet.empty(10, 50), sparsity=0.3, std=0.5).array
    assert np.all((w == 0).sum(axis=0) == 3)
    assert 0.3 < w[w != 0].std() < 0.7


def test_errors():
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(somanet.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="2-D"):
        init.eye_(somanet.empty(3))
    with pytest.raises(TypeError, match="Tensor"):
        init.normal_(np.zeros(3))


@pytest.mark.parametrize("make", [
    lambda m: m.Linear(300, 200), lambda m: m.Bilinear(40, 30, 50), lambda m: m.Embedding(500, 40),
    lambda m: m.PReLU(7, init=0.3), lambda m: m.LayerNorm(30), lambda m: m.BatchNorm2d(6), lambda m: m.GroupNorm(2, 6),
    lambda m: m.RMSNorm(8), lambda m: m.Embedding(300, 20, padding_idx=4)])
def test_default_layer_init_matches_torch(make):
    s_mod, t_mod = make(nn), make(torch.nn)
    s_state, t_state = s_mod.state_dict(), t_mod.state_dict()
    assert list(s_state) == list(t_state)
    for key, tv in t_state.items():
        a, ref = s_state[key].array, tv.numpy()
        assert a.shape == ref.shape and a.dtype == ref.dtype, key
        if ref.dtype.kind != "f" or ref.std() == 0:
            np.testing.assert_array_equal(a, ref, err_msg=key)
            continue
        tol = 0.05 if a.size > 5000 else 0.25
        assert abs(a.std() - ref.std()) <= tol * ref.std(), key
        assert abs(a.mean() - ref.mean()) <= 6 * ref.std() / math.sqrt(a.size), key
        q = np.linspace(0.1, 0.9, 9)
        # A decile's standard error is below 1.5 std / sqrt(n) for these distributions; two samples, 4 errors.
        np.testing.assert_allclose(np.quantile(a, q), np.quantile(ref, q), atol=8.5 * ref.std() / math.sqrt(a.size),
                                   err_msg=key)
