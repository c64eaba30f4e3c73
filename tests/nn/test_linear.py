"""Linear, Bilinear, Identity, Flatten and Unflatten against PyTorch; default initialisation statistics."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from reference import compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(8, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_linear_matches_torch(shape, bias, mode):
    t_mod = tnn.Linear(5, 7, bias=bias)
    s_mod = nn.Linear(5, 7, bias=bias)
    copy_state(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    out = compare_modules(s_mod, t_mod, _x(*shape))
    assert out.dtype == np.float32
    assert repr(s_mod) == repr(t_mod)


def test_linear_parameter_names_and_shapes_match_torch():
    s, t = nn.Linear(3, 4), tnn.Linear(3, 4)
    assert [(k, tuple(v.shape)) for k, v in s.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    assert s.weight.dtype == np.float32 and s.bias.dtype == np.float32
    assert nn.Linear(3, 4, bias=False).bias is None
    assert nn.Linear(3, 4, dtype=somanet.float64).weight.dtype == np.float64


def test_linear_default_init_statistics_match_torch():
    s, t = nn.Linear(256, 512), tnn.Linear(256, 512)
    bound = 1 / math.sqrt(256)
    for sp, tp in [(s.weight, t.weight), (s.bias, t.bias)]:
        a = sp.array
        ref = tp.detach().numpy()
        assert a.min() >= -bound and a.max() <= bound
        # Uniform(-b, b): std b/sqrt(3). 131,072 weight draws put the sample std within 1 % of it.
        tol = 0.01 if a.size > 10000 else 0.08
        assert abs(a.std() - ref.std()) / ref.std() < 2 * tol
        assert abs(a.std() - bound / math.sqrt(3)) / (bound / math.sqrt(3)) < tol
        assert abs(a.mean()) < 4 * bound / math.sqrt(3) / math.sqrt(a.size)
        # The draws fill the interval (not, say, a narrower one).
        assert a.max() > 0.95 * bound and a.min() < -0.95 * bound


def test_linear_init_is_reproducible_under_manual_seed():
    somanet.manual_seed(7)
    a = nn.Linear(10, 10).weight.array.copy()
    somanet.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(10, 10).weight.array, a)
    assert not np.array_equal(nn.Linear(10, 10).weight.array, a)


def test_linear_wrong_input_size_names_module_and_shapes():
    with pytest.raises(RuntimeError, match=r"Linear\(in_features=5, out_features=7\).*last dimension 5.*\(3, 4\)"):
        nn.Linear(5, 7)(somanet.randn(3, 4))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bilinear_matches_torch(mode):
    t_mod = tnn.Bilinear(3, 4, 5)
    s_mod = nn.Bilinear(3, 4, 5)
    copy_state(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    compare_modules(s_mod, t_mod, _x(6, 3), _x(6, 4, seed=1))
    assert repr(s_mod) == repr(t_mod)
    bound = 1 / math.sqrt(3)
    w = nn.Bilinear(3, 4, 500).weight.array
    assert w.min() >= -bound and w.max() <= bound and w.max() > 0.95 * bound


def test_bilinear_rejects_wrong_sizes():
    with pytest.raises(RuntimeError, match="input2.*last dimension 4"):
        nn.Bilinear(3, 4, 5)(somanet.randn(2, 3), somanet.randn(2, 5))


def test_identity_returns_input_and_ignores_arguments():
    x = somanet.randn(3, 4)
    assert nn.Identity(54, unused="x")(x) is x
    assert repr(nn.Identity()) == repr(tnn.Identity())


@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (2, 3)])
def test_flatten_matches_torch(start, end):
    s_mod, t_mod = nn.Flatten(start, end), tnn.Flatten(start, end)
    out = compare_modules(s_mod, t_mod, _x(2, 3, 4, 5))
    assert out.shape == t_mod(torch.zeros(2, 3, 4, 5)).shape
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("dim,sizes", [(1, (3, 4)), (-1, (2, -1)), (0, (2, 1))])
def test_unflatten_matches_torch(dim, sizes):
    s_mod, t_mod = nn.Unflatten(dim, sizes), tnn.Unflatten(dim, sizes)
    compare_modules(s_mod, t_mod, _x(2, 12))
    assert repr(s_mod) == repr(t_mod)


def test_unflatten_rejects_non_tuple_sizes():
    with pytest.raises(TypeError, match="tuple of ints"):
        nn.Unflatten(1, 12)


def test_linear_state_dict_from_torch_gives_same_outputs_in_a_sequential():
    t_mod = tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 8), tnn.ReLU(), tnn.Linear(8, 3))
    s_mod = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, _x(5, 3, 4))


@pytest.mark.parametrize("dtype", ["int64", "float64", "float16"])
def test_linear_module_refuses_an_input_of_another_dtype_like_torch(dtype):
    torch = torch_or_skip()
    x = np.ones((2, 3), dtype=dtype)
    with pytest.raises(RuntimeError):
        torch.nn.Linear(3, 2)(torch.from_numpy(x))
    with pytest.raises(RuntimeError, match=rf"linear.*same dtype.*input {dtype}, weight float32"):
        nn.Linear(3, 2)(somanet.tensor(x))
    layer = nn.Linear(3, 2).double()
    assert layer(somanet.tensor(np.ones((2, 3)))).dtype == np.float64
