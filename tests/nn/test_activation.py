"""Activation layers and functional activations against PyTorch, plus float64 finite differences."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import compare, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn


def _input(shape=(4, 6, 5), scale=3.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale
    # Keep every value away from the kinks (0, +-0.5, +-1, +-3, 6) where one-sided derivatives differ.
    kinks = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, 0.1], dtype=np.float32)
    near = np.abs(x[..., None] - kinks).min(axis=-1) < 1e-2
    x[near] += 0.05
    return x


# (somanet module, torch module) pairs with the same constructor arguments.
MODULES = [
    ("ReLU", {}), ("ReLU6", {}), ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ELU", {}),
    ("ELU", {"alpha": 0.5}), ("SELU", {}), ("CELU", {"alpha": 1.5}), ("GELU", {}), ("GELU", {"approximate": "tanh"}),
    ("SiLU", {}), ("Mish", {}), ("Sigmoid", {}), ("Tanh", {}), ("Hardtanh", {}),
    ("Hardtanh", {"min_val": -2.0, "max_val": 0.5}), ("Hardsigmoid", {}), ("Hardswish", {}), ("Softplus", {}),
    ("Softplus", {"beta": 2.0, "threshold": 5.0}), ("Softsign", {}), ("Softshrink", {}), ("Softshrink", {"lambd": 1.0}),
    ("Hardshrink", {}), ("Tanhshrink", {}), ("Threshold", {"threshold": 0.1, "value": 20.0}), ("LogSigmoid", {}),
    ("GLU", {}), ("GLU", {"dim": 1}), ("Softmax", {"dim": 1}), ("Softmax", {"dim": -1}), ("LogSoftmax", {"dim": 1}),
    ("Softmin", {"dim": 2}), ("PReLU", {}), ("PReLU", {"num_parameters": 6, "init": 0.1}), ("RReLU", {}),
]


# RReLU draws random slopes in training, so that case is tested statistically below instead.
CASES = [(name, kwargs, mode) for name, kwargs in MODULES for mode in ("train", "eval")
         if not (name == "RReLU" and mode == "train")]


@pytest.mark.parametrize("name,kwargs,mode", CASES, ids=[f"{n}-{i}-{m}" for i, (n, _, m) in enumerate(CASES)])
def test_module_matches_torch(name, kwargs, mode):
    s_mod = getattr(nn, name)(**kwargs)
    t_mod = getattr(tnn, name)(**kwargs)
    copy_state(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    x = _input((4, 6, 4))
    compare_modules(s_mod, t_mod, x)
    assert repr(s_mod) == repr(t_mod)


def test_module_output_is_float32_and_keeps_shape():
    x = somanet.tensor(_input((4, 6, 4)))
    for name, kwargs in MODULES:
        out = getattr(nn, name)(**kwargs)(x)
        assert out.dtype == np.float32, name
        if name != "GLU":
            assert out.shape == x.shape, name


def test_extreme_inputs_stay_finite():
    x = np.array([-1e4, -50.0, -1.0, 0.5, 50.0, 1e4], dtype=np.float32)
    for fn_s, fn_t in [(F.logsigmoid, torch.nn.functional.logsigmoid), (F.mish, torch.nn.functional.mish),
                       (F.softplus, torch.nn.functional.softplus), (F.sigmoid, torch.sigmoid),
                       (F.silu, torch.nn.functional.silu), (F.celu, torch.nn.functional.celu)]:
        out = compare(fn_s, fn_t, x)
        assert np.all(np.isfinite(out.array)), fn_s.__name__


def test_inplace_flag_is_accepted_and_shown():
    assert repr(nn.ReLU(inplace=True)) == repr(tnn.ReLU(inplace=True))
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == repr(tnn.LeakyReLU(0.2, inplace=True))
    x = somanet.tensor([-1.0, 2.0])
    y = nn.ReLU(inplace=True)(x)
    np.testing.assert_array_equal(y.array, [0.0, 2.0])


def test_softmax_default_dim_follows_torch_legacy_rule():
    x = _input((2, 3, 4))
    for mod_s, mod_t in [(nn.Softmax(), tnn.Softmax()), (nn.LogSoftmax(), tnn.LogSoftmax())]:
        with pytest.warns(UserWarning):
            expected = mod_t(torch.tensor(x))
        np.testing.assert_allclose(mod_s(somanet.tensor(x)).array, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_rrelu_training_draws_slopes_within_bounds_and_backprops_them():
    x = somanet.tensor(-np.abs(_input((200, 50))) - 0.1, requires_grad=True)
    mod = nn.RReLU(0.1, 0.3)
    y = mod(x)
    slopes = y.array / x.array
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.005  # uniform mean, 10,000 draws
    y.backward(somanet.ones(*y.shape))
    np.testing.assert_allclose(x.grad.array, slopes, rtol=1e-6)
    somanet.manual_seed(3)
    a = mod(x).array
    somanet.manual_seed(3)
    np.testing.assert_array_equal(mod(x).array, a)


def test_prelu_rejects_wrong_slope_count():
    with pytest.raises(ValueError, match="3 slopes.*4 channels"):
        nn.PReLU(3)(somanet.randn(2, 4, 5))


def test_glu_rejects_odd_dimension():
    with pytest.raises(RuntimeError, match="even"):
        F.glu(somanet.randn(2, 5))


def _g(fn, *arrays):
    inputs = [somanet.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("fn", [
    F.hardsigmoid, F.hardswish, F.mish, F.logsigmoid, F.softsign, F.tanhshrink,
    lambda x: F.softshrink(x, 0.5), lambda x: F.hardshrink(x, 0.5), lambda x: F.threshold(x, 0.1, 2.0),
    lambda x: F.celu(x, 0.7), lambda x: F.glu(x, 1), lambda x: F.rrelu(x, 0.1, 0.3, training=False),
])
def test_functional_gradcheck(fn):
    _g(fn, _input((3, 4), seed=1))


def test_prelu_gradcheck_and_torch():
    x = _input((3, 4, 5))
    w = np.array([0.1, 0.2, -0.3, 0.5], dtype=np.float32)
    _g(F.prelu, x, w)
    compare(F.prelu, torch.nn.functional.prelu, x, w)
    compare(F.prelu, torch.nn.functional.prelu, x, np.array([0.25], dtype=np.float32))


# Infinities, NaN, signed zeros, subnormals, the kinks and the softplus thresholds, repeated past the size at
# which the piecewise activations switch from NumPy's ``where`` to branch-free arithmetic.
_SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 3, -3, 6, 0.5, -0.5, 1, -1, 17, 20, 21,
                     -20, -21, 88, 89, -88, -89, 100, -100, 1e4, -1e4], dtype=np.float32)

SPECIAL_CASES = [
    ("relu", F.relu, lambda t: torch.relu(t)),
    ("leaky_relu", F.leaky_relu, lambda t: torch.nn.functional.leaky_relu(t)),
    ("leaky_relu 0", lambda t: F.leaky_relu(t, 0.0), lambda t: torch.nn.functional.leaky_relu(t, 0.0)),
    ("leaky_relu 2", lambda t: F.leaky_relu(t, 2.0), lambda t: torch.nn.functional.leaky_relu(t, 2.0)),
    ("leaky_relu -0.5", lambda t: F.leaky_relu(t, -0.5), lambda t: torch.nn.functional.leaky_relu(t, -0.5)),
    ("elu", F.elu, lambda t: torch.nn.functional.elu(t)),
    ("elu 0.5", lambda t: F.elu(t, 0.5), lambda t: torch.nn.functional.elu(t, 0.5)),
    ("selu", F.selu, lambda t: torch.nn.functional.selu(t)),
    ("celu", lambda t: F.celu(t, 1.5), lambda t: torch.nn.functional.celu(t, 1.5)),
    ("silu", F.silu, lambda t: torch.nn.functional.silu(t)),
    ("sigmoid", F.sigmoid, lambda t: torch.sigmoid(t)),
    ("softplus", F.softplus, lambda t: torch.nn.functional.softplus(t)),
    ("softplus beta 2 threshold 5", lambda t: F.softplus(t, 2.0, 5.0),
     lambda t: torch.nn.functional.softplus(t, 2.0, 5.0)),
    ("softplus threshold 1", lambda t: F.softplus(t, 1.0, 1.0), lambda t: torch.nn.functional.softplus(t, 1.0, 1.0)),
    ("mish", F.mish, lambda t: torch.nn.functional.mish(t)),
    ("logsigmoid", F.logsigmoid, lambda t: torch.nn.functional.logsigmoid(t)),
    ("hardswish", F.hardswish, lambda t: torch.nn.functional.hardswish(t)),
    ("hardtanh", F.hardtanh, lambda t: torch.nn.functional.hardtanh(t)),
    ("softshrink", F.softshrink, lambda t: torch.nn.functional.softshrink(t)),
    ("threshold", lambda t: F.threshold(t, 0.1, 20.0), lambda t: torch.nn.functional.threshold(t, 0.1, 20.0)),
    ("rrelu eval", F.rrelu, lambda t: torch.nn.functional.rrelu(t)),
    ("prelu", lambda t: F.prelu(t, somanet.tensor([0.25])), lambda t: torch.nn.functional.prelu(t, torch.tensor([0.25]))),
    ("clamp", lambda t: t.clamp(-1.0, 2.0), lambda t: t.clamp(-1.0, 2.0)),
    ("where", lambda t: somanet.where(t > 0, t, t * 2), lambda t: torch.where(t > 0, t, t * 2)),
    ("masked_fill", lambda t: t.masked_fill(t > 1, -5.0), lambda t: t.masked_fill(t > 1, -5.0)),
]


@pytest.mark.parametrize("name,fn_s,fn_t", SPECIAL_CASES, ids=[c[0] for c in SPECIAL_CASES])
def test_special_values_match_torch(name, fn_s, fn_t):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.tile(_SPECIAL, 200), rng.standard_normal(3000).astype(np.float32) * 5])
    g = rng.standard_normal(x.size).astype(np.float32)
    sx, tx = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf inputs are the point here
        ys = fn_s(sx)
        ys.backward(somanet.tensor(g))
    yt = fn_t(tx)
    yt.backward(torch.tensor(g))
    for what, got, want in (("value", ys.array, yt.detach().numpy()), ("gradient", sx.grad.array, tx.grad.numpy())):
        assert got.dtype == np.float32, (name, what, got.dtype)
        bad = ~np.isclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        assert not bad.any(), f"{name} {what} differs from PyTorch at inputs {np.unique(x[bad])}"
