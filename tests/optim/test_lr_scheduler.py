"""Learning-rate schedulers against PyTorch: 100-step sequences (rel 1e-6), cycled momentum, plateau
detection on a synthetic metric, state_dict round trips and constructor semantics."""
import warnings

import numpy as np
import pytest

import somanet
from somanet import optim
from somanet.optim import lr_scheduler as S
from reference import torch_or_skip

RTOL = 1e-6


def _optimizer(fw, name="SGD", groups=2, **kw):
    """An optimizer with ``groups`` param groups whose lrs are 0.1, 0.2, ..."""
    if fw == "somanet":
        params = [somanet.tensor(np.ones(2, np.float32), requires_grad=True) for _ in range(groups)]
        cls = getattr(optim, name)
    else:
        torch = torch_or_skip()
        params = [torch.ones(2, requires_grad=True) for _ in range(groups)]
        cls = getattr(torch.optim, name)
    return cls([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(params)], **kw)


def _momentum(group):
    if "betas" in group:
        return group["betas"][0]
    return group.get("momentum")


def _run(sched, opt, steps, metrics=None):
    lrs = [list(sched.get_last_lr())]
    moms = [[_momentum(g) for g in opt.param_groups]]
    for i in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        lrs.append(list(sched.get_last_lr()))
        moms.append([_momentum(g) for g in opt.param_groups])
        assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    return np.array(lrs, dtype=np.float64), moms


def _compare(build, name="SGD", steps=100, metrics=None, **opt_kw):
    torch = torch_or_skip()
    s_opt = _optimizer("somanet", name, **opt_kw)
    t_opt = _optimizer("torch", name, **opt_kw)
    s_sched = build(S, s_opt)
    t_sched = build(torch.optim.lr_scheduler, t_opt)
    s_lrs, s_moms = _run(s_sched, s_opt, steps, metrics)
    t_lrs, t_moms = _run(t_sched, t_opt, steps, metrics)
    np.testing.assert_allclose(s_lrs, t_lrs, rtol=RTOL, atol=0, err_msg="learning-rate sequence")
    for i, (sm, tm) in enumerate(zip(s_moms, t_moms)):
        np.testing.assert_allclose(np.array(sm, dtype=float), np.array(tm, dtype=float), rtol=RTOL,
                                   err_msg=f"momentum at step {i}")
    for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
        assert [g.get(key) for g in s_opt.param_groups] == pytest.approx([g.get(key) for g in t_opt.param_groups])
    return s_sched, s_opt, s_lrs


SCHEDULES = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda epoch: 0.95 ** epoch),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.9 ** e]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.97),
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[10, 30, 30, 60], gamma=0.3),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=13),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=37),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.97),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=60, power=2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=30, eta_min=0.001),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
    "CosineAnnealingWarmRestarts-1": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=10), m.ExponentialLR(o, gamma=0.9),
            m.CosineAnnealingLR(o, T_max=20)], milestones=[10, 40]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.1, total_iters=5),
                                                         m.ExponentialLR(o, gamma=0.95)]),
}


@pytest.mark.parametrize("key", list(SCHEDULES))
def test_100_step_sequence_matches_pytorch(key):
    _compare(SCHEDULES[key])


CYCLIC = {
    "OneCycleLR-cos": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=100),
    "OneCycleLR-three-phase-linear": lambda m, o: m.OneCycleLR(
        o, max_lr=1.0, epochs=10, steps_per_epoch=10, three_phase=True, anneal_strategy="linear",
        pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=120, cycle_momentum=False),
    "CyclicLR-triangular": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=12),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=7,
                                                    mode="triangular2"),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=9, mode="exp_range",
                                                  gamma=0.99, base_momentum=0.7, max_momentum=0.95),
}


@pytest.mark.parametrize("name,kw", [("SGD", {"momentum": 0.9}), ("Adam", {})])
@pytest.mark.parametrize("key", list(CYCLIC))
def test_cyclic_sequences_and_momentum_match_pytorch(key, name, kw):
    _, opt, _ = _compare(CYCLIC[key], name=name, **kw)
    if name == "Adam" and "no-momentum" not in key:
        assert opt.param_groups[0]["betas"][1] == 0.999


def test_cyclic_lr_without_momentum_support_raises():
    opt = _optimizer("somanet", "Adagrad")
    with pytest.raises(ValueError, match="CyclicLR: optimizer must support momentum or beta1"):
        S.CyclicLR(opt, base_lr=0.01, max_lr=0.1)
    S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, cycle_momentum=False)


def _metric(seed=0, n=100):
    rng = np.random.default_rng(seed)
    return list(5.0 + 0.1 * np.cumsum(rng.standard_normal(n)))


@pytest.mark.parametrize("kw", [
    dict(patience=3, cooldown=2, min_lr=[0.001, 0.0]),
    dict(mode="max", factor=0.5, patience=2, threshold=0.1, threshold_mode="abs"),
    dict(mode="min", factor=0.3, patience=0, threshold=0.01, threshold_mode="abs", min_lr=0.005),
    dict(mode="max", patience=4, threshold=1e-3, eps=0.02),
])
def test_reduce_lr_on_plateau_matches_pytorch(kw):
    sched, _, lrs = _compare(lambda m, o: m.ReduceLROnPlateau(o, **kw), metrics=_metric())
    assert len(set(lrs[:, 0])) > 1, "the metric sequence must trigger at least one reduction"


def test_reduce_lr_on_plateau_accepts_a_tensor_metric_and_rejects_garbage():
    opt = _optimizer("somanet")
    sched = S.ReduceLROnPlateau(opt, patience=0)
    sched.step(somanet.tensor(1.0))
    sched.step(somanet.tensor(2.0))
    assert sched.get_last_lr() == pytest.approx([0.01, 0.02])
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step\\(\\): metrics must be a number"):
        sched.step("bad")
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        S.ReduceLROnPlateau(opt, mode="up")


ROUND_TRIP = {
    "StepLR": SCHEDULES["StepLR"],
    "LambdaLR": SCHEDULES["LambdaLR"],
    "CosineAnnealingLR": SCHEDULES["CosineAnnealingLR"],
    "CosineAnnealingWarmRestarts": SCHEDULES["CosineAnnealingWarmRestarts"],
    "SequentialLR": SCHEDULES["SequentialLR"],
    "ChainedScheduler": SCHEDULES["ChainedScheduler"],
    "OneCycleLR": CYCLIC["OneCycleLR-cos"],
    "CyclicLR": CYCLIC["CyclicLR-exp_range"],
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o, patience=2, cooldown=1),
}


@pytest.mark.parametrize("key", list(ROUND_TRIP))
def test_state_dict_round_trip_continues_identically(key):
    build = ROUND_TRIP[key]
    metrics = _metric(seed=2) if key == "ReduceLROnPlateau" else None

    def advance(sched, opt, start, stop):
        out = []
        for i in range(start, stop):
            opt.step()
            sched.step(metrics[i]) if metrics else sched.step()
            out.append(list(sched.get_last_lr()))
        return out

    opt = _optimizer("somanet", momentum=0.9)
    sched = build(S, opt)
    advance(sched, opt, 0, 40)
    opt_state = opt.state_dict()
    sched_state = sched.state_dict()
    assert "optimizer" not in sched_state
    expected = advance(sched, opt, 40, 100)

    opt2 = _optimizer("somanet", momentum=0.9)
    sched2 = build(S, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert sched2.get_last_lr() == sched_state["_last_lr"]
    got = advance(sched2, opt2, 40, 100)
    np.testing.assert_allclose(got, expected, rtol=0, atol=0)


def test_lambda_state_dict_excludes_functions_but_keeps_callable_objects():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = _optimizer("somanet")
    sched = S.LambdaLR(opt, [lambda e: 1.0, Decay(0.5)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"rate": 0.5}]
    other = S.LambdaLR(_optimizer("somanet"), [lambda e: 1.0, Decay(0.9)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].rate == 0.5


def test_constructor_semantics_match_pytorch():
    torch = torch_or_skip()
    s_opt, t_opt = _optimizer("somanet"), _optimizer("torch")
    s = S.StepLR(s_opt, step_size=2)
    t = torch.optim.lr_scheduler.StepLR(t_opt, step_size=2)
    assert s.last_epoch == t.last_epoch == 0
    assert s.base_lrs == pytest.approx(t.base_lrs)
    assert [g["initial_lr"] for g in s_opt.param_groups] == pytest.approx([0.1, 0.2])
    assert s.get_last_lr() == pytest.approx(t.get_last_lr())
    # resuming needs initial_lr; a fresh optimizer has none
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_optimizer("somanet"), step_size=2, last_epoch=5)
    resumed = S.ExponentialLR(s_opt, gamma=0.5, last_epoch=3)
    assert resumed.last_epoch == 4


def test_scheduler_errors_name_the_class():
    with pytest.raises(TypeError, match="StepLR: list is not an Optimizer"):
        S.StepLR([], step_size=1)
    opt = _optimizer("somanet")
    with pytest.raises(ValueError, match="ConstantLR.*between 0 and 1"):
        S.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="LinearLR.*greater than 0"):
        S.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="OneCycleLR.*total_steps OR"):
        S.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="SequentialLR.*number of milestones"):
        S.SequentialLR(opt, [S.ConstantLR(opt), S.ConstantLR(opt)], milestones=[])
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: Expected positive integer T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="LambdaLR: Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(opt, [lambda e: 1.0])
    one = S.OneCycleLR(opt, max_lr=0.1, total_steps=2, cycle_momentum=False)
    opt.step()
    one.step()
    one.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        one.step()


def test_step_before_optimizer_step_warns_like_pytorch():
    opt = _optimizer("somanet")
    sched = S.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt2 = _optimizer("somanet")
    sched2 = S.StepLR(opt2, step_size=2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()


def test_deprecated_epoch_argument_uses_the_closed_form():
    torch = torch_or_skip()
    s_opt, t_opt = _optimizer("somanet"), _optimizer("torch")
    s = S.CosineAnnealingLR(s_opt, T_max=10)
    t = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, T_max=10)
    s_opt.step()
    t_opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        s.step(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.step(7)
    assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=RTOL)


def test_warm_restarts_fractional_epochs_match_pytorch():
    torch = torch_or_skip()
    s_opt, t_opt = _optimizer("somanet"), _optimizer("torch")
    s = S.CosineAnnealingWarmRestarts(s_opt, T_0=3, T_mult=2)
    t = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(t_opt, T_0=3, T_mult=2)
    for epoch in np.arange(0, 20, 0.35):
        s.step(float(epoch))
        t.step(float(epoch))
        assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=RTOL)
