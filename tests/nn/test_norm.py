"""Normalisation layers against PyTorch (outputs, input and parameter gradients, running statistics after
several steps) and their functional forms against float64 finite differences."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import assert_close, compare, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn

# Normalisation sums over many elements; float32 rounding of those sums differs from PyTorch's order
# of summation, so gradients get atol 1e-4 (values are O(1)).
GRAD_ATOL = 1e-4


def _x(*shape, seed=0, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def _perturb(t_mod, s_mod, seed=1):
    """Give affine parameters non-trivial values (same in both) so their gradients are tested."""
    with torch.no_grad():
        for i, p in enumerate(t_mod.parameters()):
            p.copy_(torch.tensor(_x(*p.shape, seed=seed + i, shift=1.0, scale=0.3)))
    copy_state(t_mod, s_mod)


BATCH_NORMS = [
    ("BatchNorm1d", (8, 3)), ("BatchNorm1d", (8, 3, 5)), ("BatchNorm2d", (4, 3, 5, 6)), ("BatchNorm3d", (2, 3, 4, 3, 5)),
]


@pytest.mark.parametrize("name,shape", BATCH_NORMS)
@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"bias": False}, {"track_running_stats": False},
                                    {"momentum": None}, {"eps": 1e-3, "momentum": 0.3}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batch_norm_matches_torch(name, shape, kwargs, mode):
    t_mod = getattr(tnn, name)(shape[1], **kwargs)
    s_mod = getattr(nn, name)(shape[1], **kwargs)
    _perturb(t_mod, s_mod)
    if mode == "eval" and kwargs.get("track_running_stats", True):
        # Non-trivial running statistics so eval mode is not just the affine map.
        with torch.no_grad():
            t_mod.running_mean.copy_(torch.tensor(_x(shape[1], seed=5, scale=0.5)))
            t_mod.running_var.copy_(torch.tensor(np.abs(_x(shape[1], seed=6)) + 0.5))
        copy_state(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    out = compare_modules(s_mod, t_mod, _x(*shape, shift=2.0, scale=3.0), grad_atol=GRAD_ATOL)
    assert out.dtype == np.float32
    for key, value in t_mod.state_dict().items():
        assert_close(s_mod.state_dict()[key], value, what=key)
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("name,shape", BATCH_NORMS)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_stats_match_after_several_steps(name, shape, momentum):
    t_mod = getattr(tnn, name)(shape[1], momentum=momentum)
    s_mod = getattr(nn, name)(shape[1], momentum=momentum)
    copy_state(t_mod, s_mod)
    for step in range(5):
        x = _x(*shape, seed=step, shift=step - 2.0, scale=1 + step)
        s_mod(somanet.tensor(x))
        t_mod(torch.tensor(x))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert_close(getattr(s_mod, key), getattr(t_mod, key), rtol=1e-5, atol=1e-6, what=key)
    assert int(s_mod.num_batches_tracked.array) == 5
    s_mod.eval()
    t_mod.eval()
    x = _x(*shape, seed=9)
    assert_close(s_mod(somanet.tensor(x)), t_mod(torch.tensor(x)), what="eval output")


def test_batch_norm_updates_running_stats_under_no_grad_but_not_in_eval():
    bn = nn.BatchNorm1d(3)
    with somanet.no_grad():
        bn(somanet.tensor(_x(10, 3, shift=5.0)))
    assert bn.running_mean.array.min() > 0.3
    before = bn.running_mean.array.copy()
    bn.eval()
    bn(somanet.tensor(_x(10, 3, shift=-5.0)))
    np.testing.assert_array_equal(bn.running_mean.array, before)
    assert int(bn.num_batches_tracked.array) == 1


def test_batch_norm_errors_name_module_and_shape():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*4-D.*\(2, 3, 4\)"):
        nn.BatchNorm2d(3)(somanet.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected 3 channels.*\(2, 4\)"):
        nn.BatchNorm1d(3)(somanet.randn(2, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(somanet.randn(1, 3))


def test_batch_norm_buffers_and_defaults_match_torch():
    s, t = nn.BatchNorm2d(4), tnn.BatchNorm2d(4)
    assert list(s.state_dict()) == list(t.state_dict())
    assert s.num_batches_tracked.dtype == np.int64
    for key, value in t.state_dict().items():
        assert_close(s.state_dict()[key], value, what=key)
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("name,shape", [("InstanceNorm1d", (3, 4, 6)), ("InstanceNorm1d", (4, 6)),
                                        ("InstanceNorm2d", (2, 4, 3, 5)), ("InstanceNorm2d", (4, 3, 5)),
                                        ("InstanceNorm3d", (2, 4, 2, 3, 3))])
@pytest.mark.parametrize("kwargs", [{}, {"affine": True}, {"track_running_stats": True},
                                    {"affine": True, "track_running_stats": True, "momentum": 0.4}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_instance_norm_matches_torch(name, shape, kwargs, mode):
    t_mod = getattr(tnn, name)(4, **kwargs)
    s_mod = getattr(nn, name)(4, **kwargs)
    _perturb(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    for step in range(2):
        compare_modules(s_mod, t_mod, _x(*shape, seed=step, shift=1.0, scale=2.0), grad_atol=GRAD_ATOL)
    for key, value in t_mod.state_dict().items():
        assert_close(s_mod.state_dict()[key], value, rtol=1e-5, atol=1e-6, what=key)
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 4, 5), (4, 5)), ((3, 7), [7])])
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-2}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_layer_norm_matches_torch(shape, normalized, kwargs, mode):
    t_mod = tnn.LayerNorm(normalized, **kwargs)
    s_mod = nn.LayerNorm(normalized, **kwargs)
    _perturb(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    compare_modules(s_mod, t_mod, _x(*shape, shift=3.0, scale=2.0), grad_atol=GRAD_ATOL)
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 4, 5), (4, 5))])
@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-3}, {"elementwise_affine": False}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_rms_norm_matches_torch(shape, normalized, kwargs, mode):
    t_mod = tnn.RMSNorm(normalized, **kwargs)
    s_mod = nn.RMSNorm(normalized, **kwargs)
    _perturb(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    compare_modules(s_mod, t_mod, _x(*shape, shift=0.5), grad_atol=GRAD_ATOL)
    assert repr(s_mod) == repr(t_mod)


@pytest.mark.parametrize("groups,shape", [(2, (3, 4, 5)), (1, (2, 4, 3, 3)), (4, (2, 4, 6)), (2, (5, 4))])
@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"bias": False}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_group_norm_matches_torch(groups, shape, kwargs, mode):
    t_mod = tnn.GroupNorm(groups, 4, **kwargs)
    s_mod = nn.GroupNorm(groups, 4, **kwargs)
    _perturb(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    compare_modules(s_mod, t_mod, _x(*shape, shift=-1.0, scale=2.0), grad_atol=GRAD_ATOL)
    assert repr(s_mod) == repr(t_mod)


def test_group_norm_rejects_bad_groups_and_shapes():
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups \(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\).*\(N, 4, \*\).*\(3, 6\)"):
        nn.GroupNorm(2, 4)(somanet.randn(3, 6))


def test_layer_norm_rejects_wrong_trailing_shape():
    with pytest.raises(RuntimeError, match=r"LayerNorm\(\(5,\)\).*\(\*, 5\).*\(2, 4\)"):
        nn.LayerNorm(5)(somanet.randn(2, 4))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_norm_matches_torch(size):
    s_mod, t_mod = nn.LocalResponseNorm(size, alpha=0.1, beta=0.7, k=2.0), tnn.LocalResponseNorm(size, 0.1, 0.7, 2.0)
    compare_modules(s_mod, t_mod, _x(2, 6, 3, 4, scale=2.0))
    compare_modules(s_mod, t_mod, _x(2, 6, 5, scale=2.0))
    assert repr(s_mod) == repr(t_mod)


def test_default_norm_parameters_match_torch():
    for s, t in [(nn.LayerNorm((3, 4)), tnn.LayerNorm((3, 4))), (nn.GroupNorm(2, 6), tnn.GroupNorm(2, 6)),
                 (nn.RMSNorm(5), tnn.RMSNorm(5)), (nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                                   tnn.InstanceNorm2d(3, affine=True, track_running_stats=True))]:
        assert list(s.state_dict()) == list(t.state_dict())
        for key, value in t.state_dict().items():
            assert_close(s.state_dict()[key], value, what=key)


def _gc(fn, *arrays):
    inputs = [somanet.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    assert gradcheck(fn, inputs, atol=1e-5, rtol=1e-3)


def test_functional_gradchecks():
    x = _x(4, 3, 2, seed=1, scale=2.0)
    w, b = _x(3, seed=2), _x(3, seed=3)
    rm, rv = _x(3, seed=4), np.abs(_x(3, seed=5)) + 0.5
    _gc(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    _gc(lambda x, w, b: F.batch_norm(x, somanet.tensor(rm.astype(np.float64)), somanet.tensor(rv.astype(np.float64)),
                                     w, b, training=False), x, w, b)
    _gc(lambda x, w, b: F.group_norm(x, 3, w, b), x, w, b)
    _gc(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), x, w, b)
    _gc(lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.0), x)
    x2 = _x(3, 2, 4, seed=6)
    w2, b2 = _x(2, 4, seed=7), _x(2, 4, seed=8)
    _gc(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), x2, w2, b2)
    _gc(lambda x, w: F.rms_norm(x, (4,), w, eps=1e-6), x2, w2[0])


def test_functional_forms_match_torch():
    tf = torch.nn.functional
    x = _x(4, 3, 5, shift=1.0)
    w, b = _x(3, seed=2), _x(3, seed=3)
    compare(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
            lambda x, w, b: tf.batch_norm(x, None, None, w, b, training=True), x, w, b, grad_atol=GRAD_ATOL)
    compare(lambda x, w, b: F.group_norm(x, 1, w, b), lambda x, w, b: tf.group_norm(x, 1, w, b), x, w, b,
            grad_atol=GRAD_ATOL)
    compare(lambda x: F.layer_norm(x, (5,)), lambda x: tf.layer_norm(x, (5,)), x, grad_atol=GRAD_ATOL)
    compare(lambda x: F.rms_norm(x, (3, 5)), lambda x: tf.rms_norm(x, (3, 5)), x, grad_atol=GRAD_ATOL)


def test_norms_keep_float64_when_asked():
    bn = nn.BatchNorm1d(3, dtype=somanet.float64)
    out = bn(somanet.tensor(np.random.default_rng(0).standard_normal((5, 3))))
    assert out.dtype == np.float64 and bn.running_mean.dtype == np.float64


# --------------------------------------------------------------------------- very large and very small inputs
EXTREME_NORMS = [
    ("layer_norm", lambda f, x, w, b: f.layer_norm(x, (5,), w[:5], b[:5]), (4, 6, 5)),
    ("layer_norm_2d", lambda f, x, w, b: f.layer_norm(x, (6, 5), w.reshape(6, 5), b.reshape(6, 5)), (4, 6, 5)),
    ("group_norm", lambda f, x, w, b: f.group_norm(x, 2, w[:6], b[:6]), (4, 6, 5)),
    ("instance_norm", lambda f, x, w, b: f.instance_norm(x, weight=w[:6], bias=b[:6]), (4, 6, 5)),
    ("batch_norm", lambda f, x, w, b: f.batch_norm(x, None, None, w[:6], b[:6], training=True), (4, 6, 5)),
    ("batch_norm_2d", lambda f, x, w, b: f.batch_norm(x, None, None, w[:6], b[:6], training=True), (7, 6)),
    ("rms_norm", lambda f, x, w, b: f.rms_norm(x, (5,), w[:5], eps=1e-6), (4, 6, 5)),
]


def _extreme_case(fn, shape, scale, dtype_ref):
    """somanet in float32 and PyTorch in ``dtype_ref`` on the same inputs: (outputs, input grads, weight
    grads) of both."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    w = (1 + 0.3 * rng.standard_normal(30)).astype(np.float32)
    b = (0.1 * rng.standard_normal(30)).astype(np.float32)
    sx, sw, sb = (somanet.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a.astype(dtype_ref), requires_grad=True) for a in (x, w, b))
    s_out, t_out = fn(F, sx, sw, sb), fn(torch.nn.functional, tx, tw, tb)
    g = rng.standard_normal(s_out.shape).astype(np.float32)
    s_out.backward(somanet.tensor(g))
    t_out.backward(torch.tensor(g.astype(dtype_ref)))
    return ((s_out.array, sx.grad.array, sw.grad.array),
            (t_out.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()))


@pytest.mark.parametrize("name,fn,shape", EXTREME_NORMS)
@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_norms_of_very_large_float32_values_are_right(name, fn, shape, scale):
    # The squares of values near 1e20 overflow float32: the statistics must not (PyTorch's float32 CPU
    # kernels return 0 or NaN here). The float64 result of PyTorch is the reference.
    (out, gx, gw), (ref, ref_gx, ref_gw) = _extreme_case(fn, shape, scale, np.float64)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out).max() > 0.5  # not the zeros of an overflowed variance
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx * scale, ref_gx * scale, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,fn,shape", EXTREME_NORMS)
def test_norms_of_very_small_float32_values_match_torch(name, fn, shape):
    (out, gx, gw), (ref, ref_gx, ref_gw) = _extreme_case(fn, shape, 1e-20, np.float32)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-22)
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-4, atol=1e-4 * np.abs(ref_gx).max())
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-4, atol=1e-25)


def test_norm_modules_of_very_large_values_are_right():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 6, 5)) * 1e20).astype(np.float32)
    for s_mod, t_mod in ((nn.LayerNorm(5), tnn.LayerNorm(5)), (nn.GroupNorm(3, 6), tnn.GroupNorm(3, 6)),
                         (nn.BatchNorm1d(6), tnn.BatchNorm1d(6)), (nn.InstanceNorm1d(6), tnn.InstanceNorm1d(6))):
        ref = t_mod.double()(torch.tensor(x.astype(np.float64))).detach().numpy()
        np.testing.assert_allclose(s_mod(somanet.tensor(x)).array, ref, rtol=1e-4, atol=1e-5)
    assert np.abs(ref).max() > 1  # the true values are O(1), not 0


def test_norms_keep_nan_and_inf_inputs_non_finite():
    x = _x(2, 3, 4)
    x[0, 1, 2] = np.inf
    x[1, 0, 0] = np.nan
    for out in (F.layer_norm(somanet.tensor(x), (4,)), F.group_norm(somanet.tensor(x), 3),
                F.batch_norm(somanet.tensor(x), None, None, training=True)):
        ref_rows_bad = ~np.isfinite(out.array)
        assert ref_rows_bad[0, 1].all() and ref_rows_bad[1, 0].all()
