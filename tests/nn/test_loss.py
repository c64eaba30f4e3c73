"""Losses against PyTorch: every option and reduction, values and gradients (input and, where PyTorch
has one, target), stability at logits of +-1e4, clear errors, and float64 finite differences."""
import warnings

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import compare, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tf = torch.nn.functional
REDUCTIONS = ["none", "mean", "sum"]


def _x(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _labels(shape, classes, seed=0):
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.int64)


def _gc(fn, *arrays):
    inputs = [somanet.tensor(a.astype(np.float64), requires_grad=True) if a.dtype.kind == "f" else somanet.tensor(a)
              for a in arrays]
    assert gradcheck(fn, inputs, atol=1e-5, rtol=1e-3)


# --------------------------------------------------------------------------- regression losses
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}),
                                         ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
                                         ("huber_loss", {}), ("huber_loss", {"delta": 0.3})])
def test_regression_losses_match_torch(name, kwargs, reduction):
    x, t = _x(4, 5, scale=2.0), _x(4, 5, seed=1)
    out = compare(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kwargs),
                  lambda a, b: getattr(tf, name)(a, b, reduction=reduction, **kwargs), x, t)
    assert out.dtype == np.float32


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_regression_losses_match_torch(name, reduction):
    x, t, w = _x(3, 4), _x(3, 4, seed=1), np.abs(_x(3, 4, seed=2))
    compare(lambda a, b, c: getattr(F, name)(a, b, reduction=reduction, weight=c),
            lambda a, b, c: getattr(tf, name)(a, b, reduction=reduction, weight=c), x, t, w,
            requires_grad=[True, True, False])


@pytest.mark.parametrize("name,kwargs", [("MSELoss", {}), ("L1Loss", {"reduction": "sum"}),
                                         ("SmoothL1Loss", {"beta": 0.7}), ("HuberLoss", {"delta": 2.0}),
                                         ("MSELoss", {"size_average": False})])
def test_regression_modules_match_torch(name, kwargs):
    s_mod, t_mod = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    compare_modules(s_mod, t_mod, _x(6, 2, scale=3.0), _x(6, 2, seed=1))
    assert s_mod.reduction == t_mod.reduction
    assert repr(s_mod) == repr(t_mod)


def test_regression_broadcast_target_warns_like_torch():
    x, t = _x(4, 3), _x(3, seed=1)
    with pytest.warns(UserWarning, match="target size"):
        compare(lambda a, b: F.mse_loss(a, b), lambda a, b: tf.mse_loss(a, b), x, t)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\).*cannot be broadcast"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            F.l1_loss(somanet.tensor(x), somanet.tensor(_x(5)))


def test_regression_gradchecks():
    x, t = _x(3, 4, scale=2.0), _x(3, 4, seed=1)
    for fn in (F.mse_loss, F.l1_loss, lambda a, b: F.smooth_l1_loss(a, b, beta=0.5),
               lambda a, b: F.huber_loss(a, b, reduction="sum", delta=0.8)):
        _gc(fn, x, t)


def test_invalid_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        F.mse_loss(somanet.randn(2), somanet.randn(2), reduction="avg")


# --------------------------------------------------------------------------- cross-entropy and NLL
CE_CASES = [
    {},
    {"weight": True},
    {"ignore_index": 2},
    {"weight": True, "ignore_index": 1},
    {"label_smoothing": 0.2},
    {"label_smoothing": 0.1, "weight": True},
    {"label_smoothing": 0.3, "weight": True, "ignore_index": 0},
]


def _ce_args(case, classes):
    kwargs = dict(case)
    w = _x(classes, seed=7) ** 2 + 0.1 if kwargs.pop("weight", False) else None
    return kwargs, w


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 3, 2), (5,)])
@pytest.mark.parametrize("case", CE_CASES, ids=[str(c) for c in CE_CASES])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_indices_matches_torch(shape, case, reduction):
    classes = shape[0] if len(shape) == 1 else shape[1]
    kwargs, w = _ce_args(case, classes)
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = _labels(target_shape, classes, seed=3)
    x = _x(*shape, scale=2.0)

    def s_fn(a):
        return F.cross_entropy(a, somanet.tensor(target), weight=None if w is None else somanet.tensor(w),
                               reduction=reduction, **kwargs)

    def t_fn(a):
        return tf.cross_entropy(a, torch.tensor(target), weight=None if w is None else torch.tensor(w),
                                reduction=reduction, **kwargs)

    out = compare(s_fn, t_fn, x)
    assert out.dtype == np.float32


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (5,)])
@pytest.mark.parametrize("case", [{}, {"weight": True}, {"label_smoothing": 0.25}, {"label_smoothing": 0.1, "weight": True}])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_probabilities_matches_torch(shape, case, reduction):
    classes = shape[0] if len(shape) == 1 else shape[1]
    kwargs, w = _ce_args(case, classes)
    axis = 0 if len(shape) == 1 else 1
    logits_t = _x(*shape, seed=4)
    probs = np.exp(logits_t) / np.exp(logits_t).sum(axis=axis, keepdims=True)

    def s_fn(a, p):
        return F.cross_entropy(a, p, weight=None if w is None else somanet.tensor(w), reduction=reduction, **kwargs)

    def t_fn(a, p):
        return tf.cross_entropy(a, p, weight=None if w is None else torch.tensor(w), reduction=reduction, **kwargs)

    compare(s_fn, t_fn, _x(*shape, scale=2.0), probs.astype(np.float32))


def test_cross_entropy_all_targets_ignored_gives_nan_like_torch():
    x = _x(3, 4)
    t = np.full(3, -100, dtype=np.int64)
    compare(lambda a: F.cross_entropy(a, somanet.tensor(t)), lambda a: tf.cross_entropy(a, torch.tensor(t)), x)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_is_stable_for_huge_logits(label_smoothing):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 2.0, -1e4]], dtype=np.float32)
    t = np.array([1, 1, 2], dtype=np.int64)
    for reduction in REDUCTIONS:
        out = compare(lambda a: F.cross_entropy(a, somanet.tensor(t), reduction=reduction,
                                                label_smoothing=label_smoothing),
                      lambda a: tf.cross_entropy(a, torch.tensor(t), reduction=reduction,
                                                 label_smoothing=label_smoothing), x, rtol=1e-5)
        assert np.all(np.isfinite(out.array))


def test_cross_entropy_module_matches_torch_with_weight_buffer():
    w = _x(4, seed=1) ** 2 + 0.5
    s_mod = nn.CrossEntropyLoss(weight=somanet.tensor(w), ignore_index=3, label_smoothing=0.1)
    t_mod = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=3, label_smoothing=0.1)
    assert list(s_mod.state_dict()) == list(t_mod.state_dict()) == ["weight"]
    copy_state(t_mod, s_mod)
    target = np.array([0, 3, 2, 1, 3], dtype=np.int64)
    compare_modules(s_mod, t_mod, _x(5, 4), target)
    assert repr(s_mod) == repr(t_mod)


def test_cross_entropy_errors_are_clear():
    x = somanet.randn(3, 5, requires_grad=True)
    with pytest.raises(IndexError, match=r"target value 7 is out of bounds for 5 classes"):
        F.cross_entropy(x, somanet.tensor([0, 7, 1]))
    with pytest.raises(IndexError, match=r"target value -2 is out of bounds for 5 classes"):
        F.cross_entropy(x, somanet.tensor([0, -2, 1]))
    with pytest.raises(TypeError, match=r"integer tensor.*got a float tensor of shape \(3,\)"):
        F.cross_entropy(x, somanet.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\).*got target of shape \(4,\)"):
        F.cross_entropy(x, somanet.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\).*\(3, 5\)"):
        F.cross_entropy(x, somanet.tensor(np.zeros((3, 5), dtype=np.int64)))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, somanet.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\)"):
        F.cross_entropy(x, somanet.tensor([0, 1, 2]), weight=somanet.ones(4))
    # ignore_index may lie outside [0, C).
    F.cross_entropy(x, somanet.tensor([0, -100, 1]))


def test_cross_entropy_gradchecks():
    x = _x(4, 3, 2, scale=2.0)
    t = _labels((4, 2), 3, seed=1)
    t[0, 0] = 1
    w = np.array([0.5, 2.0, 1.0])
    _gc(lambda a: F.cross_entropy(a, somanet.tensor(t), weight=somanet.tensor(w), ignore_index=1,
                                  label_smoothing=0.2), x)
    p = np.random.default_rng(2).dirichlet(np.ones(3), size=(4, 2)).transpose(0, 2, 1).copy()
    _gc(lambda a, b: F.cross_entropy(a, b, weight=somanet.tensor(w), label_smoothing=0.1), x, p)


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (5,)])
@pytest.mark.parametrize("case", [{}, {"weight": True}, {"ignore_index": 2}, {"weight": True, "ignore_index": 0}])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(shape, case, reduction):
    classes = shape[0] if len(shape) == 1 else shape[1]
    kwargs, w = _ce_args(case, classes)
    target = _labels(() if len(shape) == 1 else (shape[0],) + shape[2:], classes, seed=2)

    def s_fn(a):
        return F.nll_loss(a, somanet.tensor(target), weight=None if w is None else somanet.tensor(w),
                          reduction=reduction, **kwargs)

    def t_fn(a):
        return tf.nll_loss(a, torch.tensor(target), weight=None if w is None else torch.tensor(w),
                           reduction=reduction, **kwargs)

    compare(s_fn, t_fn, _x(*shape))


def test_nll_module_after_log_softmax_equals_cross_entropy():
    x = _x(5, 4)
    t = _labels(5, 4)
    s_mod = nn.Sequential(nn.LogSoftmax(dim=1))
    ref = torch.nn.Sequential(torch.nn.LogSoftmax(dim=1))
    compare(lambda a: nn.NLLLoss()(s_mod(a), somanet.tensor(t)),
            lambda a: torch.nn.NLLLoss()(ref(a), torch.tensor(t)), x)
    compare(lambda a: nn.NLLLoss()(s_mod(a), somanet.tensor(t)),
            lambda a: torch.nn.CrossEntropyLoss()(a, torch.tensor(t)), x)
    _gc(lambda a: F.nll_loss(a, somanet.tensor(t), weight=somanet.tensor(np.arange(1.0, 5.0))), x)
    with pytest.raises(IndexError, match="target value 4 is out of bounds for 4 classes"):
        F.nll_loss(somanet.tensor(x), somanet.tensor(np.array([0, 1, 2, 3, 4])))


# --------------------------------------------------------------------------- binary losses
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (4, 3), (3,)])
def test_bce_matches_torch(reduction, weight_shape):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, (4, 3)).astype(np.float32)
    t = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    w = None if weight_shape is None else rng.uniform(0.5, 2, weight_shape).astype(np.float32)
    compare(lambda a, b: F.binary_cross_entropy(a, b, None if w is None else somanet.tensor(w), reduction=reduction),
            lambda a, b: tf.binary_cross_entropy(a, b, None if w is None else torch.tensor(w), reduction=reduction),
            p, t)


def test_bce_clamps_log_at_minus_100_like_torch():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    out = compare(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                  lambda a, b: tf.binary_cross_entropy(a, b, reduction="none"), p, t,
                  requires_grad=[False, False], backward=False)
    np.testing.assert_allclose(out.array[:2], [100.0, 100.0])
    x = somanet.tensor(p, requires_grad=True)
    F.binary_cross_entropy(x, somanet.tensor(t)).backward()
    assert np.all(np.isfinite(x.grad.array))


def test_bce_rejects_values_outside_unit_interval_and_shape_mismatch():
    with pytest.raises(ValueError, match=r"between 0 and 1.*1.5"):
        F.binary_cross_entropy(somanet.tensor([0.5, 1.5]), somanet.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"target of shape \(3,\) must have the same shape as the input \(2,\)"):
        F.binary_cross_entropy(somanet.tensor([0.5, 0.5]), somanet.tensor([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,pos_weighted", [(False, False), (True, False), (False, True), (True, True)])
def test_bce_with_logits_matches_torch(reduction, weighted, pos_weighted):
    rng = np.random.default_rng(1)
    x = _x(5, 3, scale=3.0)
    t = rng.uniform(0, 1, (5, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, (5, 1)).astype(np.float32) if weighted else None
    pw = rng.uniform(0.5, 3, (3,)).astype(np.float32) if pos_weighted else None

    def s_fn(a, b):
        return F.binary_cross_entropy_with_logits(a, b, None if w is None else somanet.tensor(w), reduction=reduction,
                                                  pos_weight=None if pw is None else somanet.tensor(pw))

    def t_fn(a, b):
        return tf.binary_cross_entropy_with_logits(a, b, None if w is None else torch.tensor(w), reduction=reduction,
                                                   pos_weight=None if pw is None else torch.tensor(pw))

    compare(s_fn, t_fn, x, t)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0, 30.0, -30.0]], dtype=np.float32)
    t = np.array([[0.0, 1.0, 1.0, 0.5, 0.25]], dtype=np.float32)
    pw = np.array([2.0, 0.5, 1.0, 3.0, 1.5], dtype=np.float32)
    for reduction in REDUCTIONS:
        out = compare(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction,
                                                                      pos_weight=somanet.tensor(pw)),
                      lambda a, b: tf.binary_cross_entropy_with_logits(a, b, reduction=reduction,
                                                                       pos_weight=torch.tensor(pw)), x, t)
        assert np.all(np.isfinite(out.array))


def test_bce_modules_match_torch():
    w = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    pw = np.array([3.0, 1.0, 0.2], dtype=np.float32)
    s_mod = nn.BCEWithLogitsLoss(weight=somanet.tensor(w), pos_weight=somanet.tensor(pw))
    t_mod = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw))
    assert list(s_mod.state_dict()) == list(t_mod.state_dict())
    t = np.random.default_rng(0).uniform(0, 1, (4, 3)).astype(np.float32)
    compare_modules(s_mod, t_mod, _x(4, 3), t)
    p = np.random.default_rng(1).uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    compare_modules(nn.BCELoss(weight=somanet.tensor(w)), torch.nn.BCELoss(weight=torch.tensor(w)), p, t)
    with pytest.raises(ValueError, match=r"target size \(4, 2\) must be the same as input size \(4, 3\)"):
        s_mod(somanet.tensor(_x(4, 3)), somanet.tensor(_x(4, 2)))


def test_binary_gradchecks():
    rng = np.random.default_rng(3)
    x, t = _x(3, 4, scale=2.0), rng.uniform(0, 1, (3, 4))
    pw, w = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, (3, 4))
    _gc(lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, somanet.tensor(w), pos_weight=c), x, t, pw)
    _gc(lambda a, b: F.binary_cross_entropy(a, b, somanet.tensor(w)), rng.uniform(0.1, 0.9, (3, 4)), t)


# --------------------------------------------------------------------------- KL divergence
@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    logits = _x(4, 5)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    q = np.random.default_rng(1).dirichlet(np.ones(5), size=4).astype(np.float32)
    q[0, 0] = 0.0  # a zero probability contributes 0, not NaN
    target = np.log(q + 1e-3).astype(np.float32) if log_target else q

    def run(fn, a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(a, b, reduction=reduction, log_target=log_target)

    out = compare(lambda a, b: run(F.kl_div, a, b), lambda a, b: run(tf.kl_div, a, b), logp, target,
                  requires_grad=[True, log_target])
    assert np.all(np.isfinite(out.array))
    s_mod = nn.KLDivLoss(reduction=reduction, log_target=log_target)
    t_mod = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)
    assert repr(s_mod) == repr(t_mod)


def test_kl_div_mean_warns_and_gradchecks():
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(somanet.randn(2, 3), somanet.rand(2, 3))
    q = np.random.default_rng(1).dirichlet(np.ones(3), size=2)
    _gc(lambda a, b: F.kl_div(a, b, reduction="batchmean"), _x(2, 3), q)
    _gc(lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True), _x(2, 3), np.log(q))


@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("param", [None, 0.5, 2.0])
def test_branch_free_losses_match_torch_elementwise(name, param):
    # Big arrays take the branch-free forms (Huber's c (|d| - c / 2) with c = min(|d|, delta), softplus
    # from exp2 and log1p): every element and its gradient against PyTorch, edges and large logits included.
    rng = np.random.default_rng(1)
    edges = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4], np.float32)
    x = np.concatenate([np.tile(edges, 300), rng.standard_normal(2000).astype(np.float32) * 3])
    t = rng.random(x.size).astype(np.float32) if name.startswith("binary") else np.zeros_like(x)
    kwargs = {}
    if param is not None:
        if name == "binary_cross_entropy_with_logits":
            kwargs["pos_weight"] = param
        else:
            kwargs["delta" if name == "huber_loss" else "beta"] = param
    s_kwargs = dict(kwargs)
    t_kwargs = dict(kwargs)
    if "pos_weight" in kwargs:
        s_kwargs["pos_weight"] = somanet.tensor([param])
        t_kwargs["pos_weight"] = torch.tensor([param])
    for reduction in ("none", "mean"):
        compare(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **s_kwargs),
                lambda a, b: getattr(torch.nn.functional, name)(a, b, reduction=reduction, **t_kwargs),
                x, t, rtol=1e-5, atol=1e-5)
