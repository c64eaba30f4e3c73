"""Optimizers against PyTorch: 25 steps on identical gradients, state_dict round trips, groups, errors.

Tolerance: rtol 1e-5 with atol 1e-6. PyTorch's CPU kernels fuse multiply-adds (one rounding where
NumPy rounds twice) and its float32 sqrt is not correctly rounded, so results differ by a few ulps per
step; the atol only matters for elements that pass near zero, where a relative bound means nothing.
"""
import math

import numpy as np
import pytest

import somanet
from somanet import optim
from reference import assert_close, torch_or_skip, optimizer_pair, set_grads

RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(6, 5), (5,), (3, 2, 4), (1,)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, amsgrad=True, maximize=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.3, amsgrad=True, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, eps=1e-4)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1, maximize=True)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]


def _data(steps=25, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    return inits, grads


_pair = optimizer_pair
_set_grads = set_grads


def _assert_params(sp, tp, what):
    for i, (s, t) in enumerate(zip(sp, tp)):
        assert_close(s, t, RTOL, ATOL, what=f"{what}: parameter {i}")


def _assert_state_float32(opt):
    for p, state in opt.state.items():
        assert p.array.dtype == np.float32
        for key, value in state.items():
            assert isinstance(value, np.ndarray), f"state {key} is {type(value).__name__}"
            assert value.dtype == np.float32, f"state {key} drifted to {value.dtype}"


@pytest.mark.parametrize("foreach", [False, True, None])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_25_steps_match_pytorch(name, kw, foreach):
    inits, grads = _data()
    sp, so, tp, to = _pair(name, kw, inits, foreach)
    for step, gs in enumerate(grads):
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    _assert_params(sp, tp, f"{name} after {len(grads)} steps")
    _assert_state_float32(so)
    t_state = to.state_dict()["state"]
    s_state = so.state_dict()["state"]
    assert sorted(s_state) == sorted(t_state)
    for idx, ts in t_state.items():
        assert sorted(s_state[idx]) == sorted(ts), f"state names differ for parameter {idx}"
        for key, tv in ts.items():
            if key == "step":
                assert float(s_state[idx][key]) == float(tv)
            else:
                assert_close(s_state[idx][key], tv, RTOL, ATOL, what=f"state {key} of parameter {idx}")


def _train(name, kw, foreach, inits, grads):
    """Params and state (copies) after one optimizer has stepped through ``grads``."""
    params = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
    opt = getattr(optim, name)(params, foreach=foreach, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = somanet.tensor(g)
        opt.step()
    states = [{k: np.array(v, copy=True) for k, v in opt.state[p].items()} for p in params]
    return [p.array.copy() for p in params], states


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_flat_and_per_parameter_updates_are_identical(name, kw):
    inits, grads = _data(steps=6, shapes=[(3, 4), (4,), (2, 2), (5,), (1,)])
    runs = [_train(name, kw, foreach, inits, grads)[0] for foreach in (False, True)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,kw", [CONFIGS[2], CONFIGS[6], CONFIGS[11]], ids=["SGD", "Adam", "RMSprop"])
def test_automatic_choice_flattens_small_parameters_only(name, kw):
    torch = torch_or_skip()
    # one parameter above every optimizer's flattening limit, five below it
    shapes = [(140, 130), (3, 4), (4,), (2, 2), (5,), (1,)]
    inits, grads = _data(steps=25, seed=2, shapes=shapes)
    sp, so, tp, to = _pair(name, kw, inits, foreach=None)
    per = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
    po = getattr(optim, name)(per, foreach=False, **kw)
    for gs in grads:
        _set_grads(sp, tp, gs)
        for p, g in zip(per, gs):
            p.grad = somanet.tensor(g)
        so.step()
        to.step()
        po.step()
    big_state = so.state[sp[0]]
    small_state = so.state[sp[1]]
    key = next(k for k in small_state if k != "step")
    assert small_state[key].base is not None, "small parameters should share one flattened state buffer"
    assert big_state[key].base is None, "a large parameter should keep its own state array"
    for a, b in zip(sp, per):
        np.testing.assert_array_equal(a.array, b.array)
    _assert_params(sp, tp, f"{name} with automatic flattening")


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_large_updates_on_two_threads_are_identical(name, kw, foreach, monkeypatch):
    from somanet.kernels import threads
    from somanet.optim import optimizer as optimizer_module
    # One parameter at the threading threshold and an odd-sized one above it (uneven row blocks), plus
    # a small one; with foreach=True all three run as one flat array, which is split too.
    n = optimizer_module._PARALLEL_MIN_ELEMENTS
    inits, grads = _data(steps=3, seed=3, shapes=[(n // 256, 256), (n // 256 + 3, 257), (7,)])
    saved = somanet.get_num_threads()
    somanet.set_num_threads(1)
    try:
        ref_params, ref_states = _train(name, kw, foreach, inits, grads)
        somanet.set_num_threads(2)
        blocks = []
        real_split = threads.split_batch
        monkeypatch.setattr(threads, "split_batch", lambda fn, n, b: blocks.append(b) or real_split(fn, n, b))
        params, states = _train(name, kw, foreach, inits, grads)
    finally:
        somanet.set_num_threads(saved)
    # SGD with momentum makes its buffer on the first step, which therefore runs whole.
    first_whole = name == "SGD" and kw.get("momentum", 0) > 0
    expected = (len(grads) - first_whole) * (1 if foreach else 2)
    assert blocks == [2] * expected
    for a, b in zip(ref_params, params):
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(ref_states, states):
        assert sorted(sa) == sorted(sb)
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=f"state {key}")


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_state_dict_round_trip_mid_training(name, kw):
    inits, grads = _data(steps=20, seed=1)
    sp, so, tp, to = _pair(name, kw, inits, foreach=False)
    for gs in grads[:8]:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    saved = so.state_dict()
    snapshot = {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in saved["state"].items()}

    fresh = [somanet.tensor(p.array.copy(), requires_grad=True) for p in sp]
    lr = kw.get("lr", 0.5) * 3  # a different lr must be overwritten by the loaded groups
    resumed = getattr(optim, name)(fresh, **{**kw, "lr": lr}, foreach=True)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == so.param_groups[0]["lr"]
    for gs in grads[8:]:
        for a, b, g in zip(sp, fresh, gs):
            a.grad = somanet.tensor(g)
            b.grad = somanet.tensor(g)
        _set_grads(sp, tp, gs)
        so.step()
        resumed.step()
        to.step()
    for a, b in zip(sp, fresh):
        np.testing.assert_array_equal(a.array, b.array)
    _assert_params(fresh, tp, f"{name} resumed")
    _assert_state_float32(resumed)
    # later steps must not have changed the saved dict
    for i, st in saved["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(v, snapshot[i][k])


def test_state_dict_layout_matches_pytorch():
    torch = torch_or_skip()
    inits, grads = _data(steps=3)
    sp = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    so = optim.Adam([{"params": sp[:2]}, {"params": sp[2:], "lr": 0.1, "amsgrad": True}], lr=0.01)
    to = torch.optim.Adam([{"params": tp[:2]}, {"params": tp[2:], "lr": 0.1, "amsgrad": True}], lr=0.01)
    for gs in grads:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    s, t = so.state_dict(), to.state_dict()
    assert list(s) == ["state", "param_groups"]
    assert [g["params"] for g in s["param_groups"]] == [g["params"] for g in t["param_groups"]] == [[0, 1], [2, 3]]
    assert set(s["param_groups"][1]) == set(t["param_groups"][1])
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert s["param_groups"][1][key] == t["param_groups"][1][key]
    assert set(s["state"][3]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert s["state"][0]["step"].dtype == np.float32 and s["state"][0]["step"].shape == ()


def test_pytorch_state_dict_loads_and_continues():
    torch = torch_or_skip()
    inits, grads = _data(steps=12, seed=3)
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    to = torch.optim.RMSprop(tp, lr=0.01, momentum=0.9, centered=True)
    for gs in grads[:5]:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        to.step()
    t_sd = to.state_dict()
    as_numpy = {
        "state": {i: {k: v.numpy().copy() for k, v in st.items()} for i, st in t_sd["state"].items()},
        "param_groups": t_sd["param_groups"],
    }
    sp = [somanet.tensor(t.detach().numpy().copy(), requires_grad=True) for t in tp]
    so = optim.RMSprop(sp)
    so.load_state_dict(as_numpy)
    assert so.param_groups[0]["centered"] is True
    for gs in grads[5:]:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    _assert_params(sp, tp, "RMSprop resumed from a PyTorch state_dict")


def test_param_groups_add_param_group_and_lr_mutation():
    torch = torch_or_skip()
    inits, grads = _data(steps=12, seed=4)
    sp, tp = ([mk(a.copy(), requires_grad=True) for a in inits] for mk in (somanet.tensor, torch.tensor))
    so = optim.SGD([{"params": sp[:1]}, {"params": sp[1:2], "lr": 0.01, "momentum": 0.5}], lr=0.1, momentum=0.9)
    to = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:2], "lr": 0.01, "momentum": 0.5}], lr=0.1, momentum=0.9)
    assert so.param_groups[1]["dampening"] == 0 and so.param_groups[1]["momentum"] == 0.5
    for step, gs in enumerate(grads):
        if step == 4:
            so.add_param_group({"params": sp[2:], "nesterov": True, "lr": 0.02})
            to.add_param_group({"params": tp[2:], "nesterov": True, "lr": 0.02})
        if step == 7:
            for o in (so, to):
                o.param_groups[0]["lr"] = 0.03
                o.param_groups[2]["momentum"] = 0.7
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    _assert_params(sp, tp, "SGD with three groups")


def test_params_without_grad_are_skipped_and_get_no_state():
    torch = torch_or_skip()
    inits, grads = _data(steps=5)
    sp, so, tp, to = _pair("Adam", dict(lr=0.1), inits)
    for gs in grads:
        _set_grads(sp[:2], tp[:2], gs[:2])
        so.step()
        to.step()
    _assert_params(sp, tp, "Adam with parameters lacking gradients")
    assert sorted(so.state_dict()["state"]) == sorted(to.state_dict()["state"]) == [0, 1]
    np.testing.assert_array_equal(sp[3].array, inits[3])


def test_sgd_without_momentum_keeps_no_state():
    p = somanet.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    p.grad = somanet.tensor([1.0, -1.0])
    opt.step()
    np.testing.assert_array_equal(p.array, np.array([0.5, 2.5], np.float32))
    assert opt.state_dict()["state"] == {}


def test_loss_gradients_match_pytorch_for_a_small_mlp():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.standard_normal((16, 3)).astype(np.float32)
    w1 = (rng.standard_normal((8, 12)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((12, 3)) * 0.3).astype(np.float32)
    sp = [somanet.tensor(w.copy(), requires_grad=True) for w in (w1, w2)]
    tp = [torch.tensor(w.copy(), requires_grad=True) for w in (w1, w2)]
    so = optim.AdamW(sp, lr=0.01)
    to = torch.optim.AdamW(tp, lr=0.01)
    sx, sy, tx, ty = somanet.tensor(x), somanet.tensor(y), torch.tensor(x), torch.tensor(y)
    for _ in range(25):
        so.zero_grad()
        to.zero_grad()
        s_loss = (((sx @ sp[0]).tanh() @ sp[1] - sy) ** 2).mean()
        t_loss = (((tx @ tp[0]).tanh() @ tp[1] - ty) ** 2).mean()
        s_loss.backward()
        t_loss.backward()
        so.step()
        to.step()
    # gradients themselves agree only to the ops' float32 tolerance, so this run is looser
    for s, t in zip(sp, tp):
        assert_close(s, t, 1e-4, 1e-5, what="AdamW-trained weight")
    assert float(s_loss) < 0.9 * float((((sx @ somanet.tensor(w1)).tanh() @ somanet.tensor(w2) - sy) ** 2).mean())


def test_step_closure_reevaluates_under_enable_grad():
    torch = torch_or_skip()
    w0 = np.array([1.5, -0.5, 2.0], np.float32)
    sw = somanet.tensor(w0.copy(), requires_grad=True)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    so = optim.SGD([sw], lr=0.1, momentum=0.9)
    to = torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    calls = []

    def s_closure():
        so.zero_grad()
        loss = (sw * sw * sw).sum()
        loss.backward()
        calls.append(float(loss))
        return loss

    def t_closure():
        to.zero_grad()
        loss = (tw * tw * tw).sum()
        loss.backward()
        return loss

    for _ in range(5):
        with somanet.no_grad():
            s_loss = so.step(s_closure)
        t_loss = to.step(t_closure)
        assert math.isclose(float(s_loss), t_loss.item(), rel_tol=1e-5)
    assert len(calls) == 5
    assert_close(sw, tw, RTOL, ATOL, what="parameter after closure steps")


def test_step_records_no_graph_and_bumps_the_version():
    w = somanet.tensor([1.0, 2.0], requires_grad=True)
    x = somanet.tensor([3.0, 4.0])
    y = (w * x).sum()
    opt = optim.Adam([w], lr=0.1)
    w.grad = somanet.tensor([1.0, 1.0])
    opt.step()
    assert w.grad_fn is None and w.requires_grad and w.is_leaf
    # y's graph saved w before the in-place update: backward must refuse, as PyTorch does
    with pytest.raises(RuntimeError, match="modified by an in-place"):
        y.backward()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    a = somanet.tensor([1.0, 2.0], requires_grad=True)
    b = somanet.tensor([3.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1)
    a.grad = somanet.tensor([5.0, 6.0])
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert a.grad is None
    else:
        np.testing.assert_array_equal(a.grad.array, np.zeros(2, np.float32))
        assert a.grad.array.dtype == np.float32
    assert b.grad is None


def test_adagrad_creates_state_in_constructor_like_pytorch():
    torch = torch_or_skip()
    sp = [somanet.tensor([1.0, 2.0], requires_grad=True)]
    tp = [torch.tensor([1.0, 2.0], requires_grad=True)]
    s = optim.Adagrad(sp, initial_accumulator_value=0.5).state_dict()["state"]
    t = torch.optim.Adagrad(tp, initial_accumulator_value=0.5).state_dict()["state"]
    assert sorted(s[0]) == sorted(t[0]) == ["step", "sum"]
    assert_close(s[0]["sum"], t[0]["sum"])


def test_defaults_and_repr():
    p = somanet.tensor([1.0], requires_grad=True)
    opt = optim.AdamW([p])
    assert opt.defaults["weight_decay"] == 1e-2 and opt.defaults["decoupled_weight_decay"] is True
    assert optim.SGD([p]).defaults["lr"] == 1e-3
    assert optim.RMSprop([p]).defaults["alpha"] == 0.99
    assert "Parameter Group 0" in repr(opt) and "AdamW" in repr(opt)


def test_named_parameters_are_accepted():
    a = somanet.tensor([1.0], requires_grad=True)
    opt = optim.SGD([("weight", a)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight"]


@pytest.mark.parametrize("build,match", [
    (lambda p: optim.SGD(p, lr=-1.0), r"SGD: Invalid learning rate: -1.0"),
    (lambda p: optim.SGD(p, momentum=-0.1), "Invalid momentum value"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires a momentum"),
    (lambda p: optim.Adam(p, lr=-1.0), r"Adam: Invalid learning rate: -1.0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value"),
    (lambda p: optim.AdamW(p, weight_decay=-1), "AdamW: Invalid weight_decay value"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    (lambda p: optim.Adam(p, differentiable=True), "differentiable=True is not supported"),
    (lambda p: optim.Adam(p, capturable=True), "capturable=True"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1), "more than one parameter group"),
])
def test_bad_hyperparameters_raise_value_error(build, match):
    params = [somanet.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        build(params)


def test_bad_params_raise_type_error():
    p = somanet.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors.*ndarray"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_bad_gradient_and_state_dict_raise_clear_errors():
    p = somanet.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([p])
    p.grad = somanet.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"Adam.step\(\).*shape \(2,\).*shape \(3,\)"):
        opt.step()
    p.grad = somanet.tensor(np.array([1.0, 2.0]))  # float64
    with pytest.raises(TypeError, match="float32 parameter has a float64 gradient"):
        opt.step()
    other = optim.Adam([{"params": [p]}, {"params": [somanet.tensor([1.0], requires_grad=True)]}])
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(other.state_dict())
    bigger = optim.Adam([p, somanet.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(bigger.state_dict())
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"lr": 0.1})


def test_float64_parameters_stay_float64():
    p = somanet.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    for _ in range(3):
        p.grad = somanet.tensor(np.array([0.5, -0.5]))
        opt.step()
    assert p.array.dtype == np.float64
    assert opt.state[p]["exp_avg"].dtype == np.float64


def test_step_hooks_run_in_order_and_can_be_removed():
    p = somanet.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    seen = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(("pre", float(p.array[0]))))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append(("post", float(p.array[0]))))
    p.grad = somanet.tensor([1.0])
    opt.step()
    pre.remove()
    opt.step()
    assert seen == [("pre", 1.0), ("post", 0.5), ("post", 0.0)]
