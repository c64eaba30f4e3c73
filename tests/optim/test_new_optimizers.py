"""Adadelta, Adamax, NAdam, RAdam, ASGD and LBFGS against PyTorch, and the scheduler's order warning.

The elementwise optimizers take 25 steps on identical gradients and are compared after every step:
float32 at rtol 1e-5 / atol 1e-6 (as in test_optimizers.py: PyTorch fuses multiply-adds that NumPy
rounds twice), float64 at 1e-12. LBFGS is driven by closures that compute the loss and gradient with
the same NumPy code in both frameworks, so any difference comes from the optimizer: in float64 the
parameters agree to 1e-9 relative after every step and the closure is called the same number of
times. L-BFGS amplifies rounding differences (dot products and sums are accumulated in a different
order by PyTorch), so the float32 comparison covers the first iterations only, at 1e-4.
"""
import inspect
import pickle
import warnings
import weakref

import numpy as np
import pytest

import somanet
from somanet import optim
from somanet.optim import lr_scheduler as S
from reference import assert_close, torch_or_skip, optimizer_pair, set_grads

RTOL, ATOL = 1e-5, 1e-6
RTOL64, ATOL64 = 1e-12, 1e-12
SHAPES = [(6, 5), (5,), (3, 2, 4), (1,)]
STEPS = 25

CONFIGS = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.1, rho=0.95, maximize=True)),
    ("Adadelta", dict(lr=0.3, weight_decay=0.05, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-4, weight_decay=0.1)),
    ("Adamax", dict(lr=0.02, weight_decay=0.05, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.02, weight_decay=0.05, maximize=True)),
    ("NAdam", dict(lr=0.02, weight_decay=0.05, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    # beta2 = 0.6 makes rho_t exceed 5 from the sixth step: both branches of the rule run
    ("RAdam", dict(lr=0.01, betas=(0.5, 0.6), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.6), weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.02, betas=(0.9, 0.7), maximize=True, weight_decay=0.05)),
    ("ASGD", dict()),
    # t0 = 3: the average switches from copying the iterate to averaging after the third step
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=3, weight_decay=0.1)),
    ("ASGD", dict(lr=0.05, lambd=0.1, alpha=0.9, t0=5, maximize=True)),
    ("ASGD", dict(lr=0.02, t0=0, weight_decay=0.05, maximize=True)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]
NAMES = ["Adadelta", "Adamax", "NAdam", "RAdam", "ASGD"]


def _data(steps=STEPS, seed=0, shapes=SHAPES, dtype=np.float32):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return inits, grads


_pair = optimizer_pair
_set_grads = set_grads


def _assert_params(sp, tp, what, rtol=RTOL, atol=ATOL):
    for i, (s, t) in enumerate(zip(sp, tp)):
        assert_close(s, t, rtol, atol, what=f"{what}: parameter {i}")


def _assert_state_like_pytorch(so, to, rtol=RTOL, atol=ATOL):
    s_state, t_state = so.state_dict()["state"], to.state_dict()["state"]
    assert sorted(s_state) == sorted(t_state)
    for idx, ts in t_state.items():
        assert sorted(s_state[idx]) == sorted(ts), f"state names differ for parameter {idx}"
        for key, tv in ts.items():
            sv = s_state[idx][key]
            assert isinstance(sv, np.ndarray), f"state {key} is {type(sv).__name__}"
            if key == "step":
                assert sv.dtype == np.float32 and sv.shape == () and float(sv) == float(tv)
            else:
                assert_close(sv, tv, rtol, atol, what=f"state {key} of parameter {idx}")


# ---------------------------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("foreach", [False, True, None])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_every_step_matches_pytorch(name, kw, foreach):
    inits, grads = _data()
    sp, so, tp, to = _pair(name, kw, inits, foreach)
    for step, gs in enumerate(grads):
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
        _assert_params(sp, tp, f"{name} {kw} after step {step + 1}")
    _assert_state_like_pytorch(so, to)
    for p in sp:
        for key, value in so.state[p].items():
            assert value.dtype == np.float32, f"state {key} drifted to {value.dtype}"


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_float64_matches_pytorch_tightly(name, kw):
    inits, grads = _data(seed=7, dtype=np.float64)
    sp, so, tp, to = _pair(name, kw, inits)
    for step, gs in enumerate(grads):
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
        _assert_params(sp, tp, f"{name} {kw} (float64) after step {step + 1}", RTOL64, ATOL64)
    _assert_state_like_pytorch(so, to, RTOL64, ATOL64)
    for p in sp:
        assert p.array.dtype == np.float64
        for key, value in so.state[p].items():
            if value.shape == p.array.shape:
                assert value.dtype == np.float64, f"state {key} is {value.dtype}"


@pytest.mark.parametrize("name", NAMES)
def test_training_a_small_mlp_matches_pytorch(name):
    torch = torch_or_skip()
    kw = dict(CONFIGS[[n for n, _ in CONFIGS].index(name) + 1][1])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.standard_normal((16, 3)).astype(np.float32)
    w1 = (rng.standard_normal((8, 12)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((12, 3)) * 0.3).astype(np.float32)
    sp = [somanet.tensor(w.copy(), requires_grad=True) for w in (w1, w2)]
    tp = [torch.tensor(w.copy(), requires_grad=True) for w in (w1, w2)]
    so = getattr(optim, name)(sp, **kw)
    to = getattr(torch.optim, name)(tp, **kw)
    sx, sy, tx, ty = somanet.tensor(x), somanet.tensor(y), torch.tensor(x), torch.tensor(y)
    for step in range(15):
        so.zero_grad()
        to.zero_grad()
        (((sx @ sp[0]).tanh() @ sp[1] - sy) ** 2).mean().backward()
        (((tx @ tp[0]).tanh() @ tp[1] - ty) ** 2).mean().backward()
        so.step()
        to.step()
        # the gradients themselves agree only to the ops' float32 tolerance
        _assert_params(sp, tp, f"{name}-trained weight after step {step + 1}", 1e-4, 1e-5)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_state_dict_round_trip_mid_training(name, kw):
    inits, grads = _data(steps=16, seed=1)
    sp, so, tp, to = _pair(name, kw, inits, foreach=False)
    for gs in grads[:8]:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    saved = so.state_dict()
    snapshot = {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in saved["state"].items()}

    fresh = [somanet.tensor(p.array.copy(), requires_grad=True) for p in sp]
    resumed = getattr(optim, name)(fresh, **{**kw, "lr": kw.get("lr", 0.5) * 3}, foreach=True)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == so.param_groups[0]["lr"]
    for step, gs in enumerate(grads[8:]):
        for a, b, g in zip(sp, fresh, gs):
            a.grad = somanet.tensor(g)
            b.grad = somanet.tensor(g)
        _set_grads(sp, tp, gs)
        so.step()
        resumed.step()
        to.step()
        for a, b in zip(sp, fresh):
            np.testing.assert_array_equal(a.array, b.array, err_msg=f"{name} resumed, step {9 + step}")
        _assert_params(fresh, tp, f"{name} resumed, step {9 + step}")
    _assert_state_like_pytorch(resumed, to)
    for i, st in saved["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(v, snapshot[i][k], err_msg="a later step changed the saved dict")


@pytest.mark.parametrize("name,kw", [CONFIGS[1], CONFIGS[5], CONFIGS[8], CONFIGS[13], CONFIGS[17]],
                         ids=NAMES)
def test_pytorch_state_dict_loads_and_continues(name, kw):
    torch = torch_or_skip()
    inits, grads = _data(steps=12, seed=3)
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    to = getattr(torch.optim, name)(tp, **kw)
    for gs in grads[:6]:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        to.step()
    t_sd = to.state_dict()
    as_numpy = {
        "state": {i: {k: v.numpy().copy() for k, v in st.items()} for i, st in t_sd["state"].items()},
        "param_groups": t_sd["param_groups"],
    }
    sp = [somanet.tensor(t.detach().numpy().copy(), requires_grad=True) for t in tp]
    so = getattr(optim, name)(sp)
    so.load_state_dict(as_numpy)
    for gs in grads[6:]:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
        _assert_params(sp, tp, f"{name} resumed from a PyTorch state_dict")


@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if c[0] in ("Adadelta", "Adamax", "RAdam")],
                         ids=[i for i, c in zip(IDS, CONFIGS) if c[0] in ("Adadelta", "Adamax", "RAdam")])
def test_flat_and_per_parameter_updates_are_identical(name, kw):
    inits, grads = _data(steps=8, shapes=[(3, 4), (4,), (2, 2), (5,), (1,)])
    runs = []
    for foreach in (False, True):
        params = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
        opt = getattr(optim, name)(params, foreach=foreach, **kw)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = somanet.tensor(g)
            opt.step()
        runs.append((params, opt))
    (a_params, a_opt), (b_params, b_opt) = runs
    for a, b in zip(a_params, b_params):
        np.testing.assert_array_equal(a.array, b.array)
    assert b_opt.state[b_params[1]]["exp_avg" if name != "Adadelta" else "square_avg"].base is not None, \
        "foreach=True should update the group as one flattened array"


@pytest.mark.parametrize("name,kw", [CONFIGS[1], CONFIGS[5], CONFIGS[9], CONFIGS[13], CONFIGS[17]], ids=NAMES)
def test_large_updates_on_two_threads_are_identical(name, kw, monkeypatch):
    # Rows of a large parameter are updated on several threads; the per-parameter scalar state
    # (NAdam's mu_product, ASGD's eta and mu) must still advance once per step.
    from somanet.kernels import threads
    from somanet.optim import optimizer as optimizer_module
    n = optimizer_module._PARALLEL_MIN_ELEMENTS
    inits, grads = _data(steps=5, seed=3, shapes=[(n // 256 + 3, 257), (7,)])

    def train():
        params = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
        opt = getattr(optim, name)(params, foreach=False, **kw)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = somanet.tensor(g)
            opt.step()
        return [p.array.copy() for p in params], [{k: np.array(v) for k, v in opt.state[p].items()} for p in params]

    saved = somanet.get_num_threads()
    somanet.set_num_threads(1)
    try:
        ref_params, ref_states = train()
        somanet.set_num_threads(2)
        blocks = []
        real_split = threads.split_batch
        monkeypatch.setattr(threads, "split_batch", lambda fn, m, b: blocks.append(b) or real_split(fn, m, b))
        params, states = train()
    finally:
        somanet.set_num_threads(saved)
    assert blocks == [2] * len(grads)
    for a, b in zip(ref_params, params):
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(ref_states, states):
        assert sorted(sa) == sorted(sb)
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=f"state {key}")


def test_asgd_average_and_schedules_match_pytorch():
    torch = torch_or_skip()
    inits, grads = _data(steps=10, seed=4)
    kw = dict(lr=0.1, lambd=0.05, alpha=0.6, t0=4)
    sp, so, tp, to = _pair("ASGD", kw, inits)
    for step, gs in enumerate(grads, start=1):
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
        s, t = so.state[sp[0]], to.state[tp[0]]
        assert float(s["eta"]) == t["eta"].item() == np.float32(0.1 / (1 + 0.05 * 0.1 * step) ** 0.6)
        assert float(s["mu"]) == t["mu"].item() == np.float32(1 / max(1, step - 4))
        assert s["eta"].dtype == s["mu"].dtype == np.float32
        assert_close(s["ax"], t["ax"], RTOL, ATOL, what=f"ASGD average after step {step}")
        if step <= 5:
            np.testing.assert_array_equal(s["ax"], sp[0].array)


def test_nadam_mu_product_is_a_float32_scalar_like_pytorch():
    torch = torch_or_skip()
    inits, grads = _data(steps=6, seed=2)
    sp, so, tp, to = _pair("NAdam", dict(lr=0.01), inits)
    for gs in grads:
        _set_grads(sp, tp, gs)
        so.step()
        to.step()
    value = so.state[sp[0]]["mu_product"]
    assert value.dtype == np.float32 and value.shape == ()
    assert float(value) == to.state[tp[0]]["mu_product"].item()


@pytest.mark.parametrize("name", NAMES + ["LBFGS"])
def test_signature_and_defaults_match_pytorch(name):
    torch = torch_or_skip()
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == \
        [(p.name, p.kind, p.default) for p in theirs.values()]
    p = somanet.tensor([1.0], requires_grad=True)
    q = torch.tensor([1.0], requires_grad=True)
    assert getattr(optim, name)([p]).defaults == getattr(torch.optim, name)([q]).defaults


@pytest.mark.parametrize("build,exc,match", [
    (lambda p: optim.Adadelta(p, lr=-1.0), ValueError, r"Adadelta: Invalid learning rate: -1.0"),
    (lambda p: optim.Adadelta(p, rho=1.5), ValueError, r"Invalid rho value: 1.5"),
    (lambda p: optim.Adadelta(p, eps=-1.0), ValueError, "Invalid epsilon value"),
    (lambda p: optim.Adadelta(p, weight_decay=-1.0), ValueError, "Invalid weight_decay value"),
    (lambda p: optim.Adamax(p, betas=(1.0, 0.9)), ValueError, "Adamax: Invalid beta parameter at index 0"),
    (lambda p: optim.Adamax(p, eps=-1.0), ValueError, "Invalid epsilon value"),
    (lambda p: optim.NAdam(p, momentum_decay=-1.0), ValueError, "NAdam: Invalid momentum_decay value"),
    (lambda p: optim.NAdam(p, betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1"),
    (lambda p: optim.RAdam(p, lr=-0.1), ValueError, "RAdam: Invalid learning rate"),
    (lambda p: optim.RAdam(p, weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
    (lambda p: optim.ASGD(p, lr=-0.1), ValueError, "ASGD: Invalid learning rate"),
    (lambda p: optim.ASGD(p, weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
    (lambda p: optim.LBFGS(p, lr=-1), ValueError, "LBFGS: Invalid learning rate"),
    (lambda p: optim.LBFGS(p, line_search_fn="armijo"), ValueError, "Invalid line_search_fn.*strong_wolfe"),
    (lambda p: optim.Adadelta(p, capturable=True), ValueError, "capturable=True"),
    (lambda p: optim.Adamax(p, differentiable=True), ValueError, "differentiable=True is not supported"),
    (lambda p: optim.NAdam(p, capturable=True), ValueError, "capturable=True"),
    (lambda p: optim.RAdam(p, differentiable=True), ValueError, "differentiable=True is not supported"),
    (lambda p: optim.ASGD(p, capturable=True), ValueError, "capturable=True"),
    (lambda p: optim.LBFGS([{"params": p[:1]}, {"params": p[1:]}]), ValueError, "per-parameter options"),
])
def test_bad_arguments_raise_clear_errors(build, exc, match):
    params = [somanet.tensor([1.0], requires_grad=True), somanet.tensor([2.0], requires_grad=True)]
    with pytest.raises(exc, match=match):
        build(params)


def test_lr_may_be_a_one_element_tensor():
    p = somanet.tensor([1.0, 2.0], requires_grad=True)
    for cls in (optim.Adadelta, optim.Adamax, optim.NAdam, optim.RAdam, optim.ASGD, optim.LBFGS):
        assert cls([p], lr=somanet.tensor(0.25)).param_groups[0]["lr"] == 0.25


# ---------------------------------------------------------------------------------------------- LBFGS
def _least_squares(dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((20, 6)).astype(dtype)
    y = rng.standard_normal(20).astype(dtype)
    inits = [(rng.standard_normal((2, 2)) * 0.5).astype(dtype), (rng.standard_normal(2) * 0.5).astype(dtype)]

    def loss_and_grads(arrays):
        x = np.concatenate([v.reshape(-1) for v in arrays])
        r = a @ x - y
        loss = dtype(0.5) * (r @ r) / dtype(20) + dtype(0.01) * (x @ x)
        g = (a.T @ r) / dtype(20) + dtype(0.02) * x
        return loss, [g[:4].reshape(2, 2), g[4:]]
    return inits, loss_and_grads


def _rosenbrock(dtype, seed=0):
    inits = [np.array([-1.2, 1.0], dtype), np.array([-0.5, 0.8, 1.3], dtype)]

    def loss_and_grads(arrays):
        x = np.concatenate(arrays)
        u = x[1:] - x[:-1] ** 2
        v = 1 - x[:-1]
        loss = (100 * u * u + v * v).sum()
        g = np.zeros_like(x)
        g[1:] += 200 * u
        g[:-1] += -400 * u * x[:-1] - 2 * v
        return loss, [g[:2], g[2:]]
    return inits, loss_and_grads


def _softmax_regression(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 5)).astype(dtype)
    onehot = np.eye(3, dtype=dtype)[rng.integers(0, 3, 40)]
    inits = [(rng.standard_normal((5, 3)) * 0.1).astype(dtype), np.zeros(3, dtype)]

    def loss_and_grads(arrays):
        w, b = arrays
        z = x @ w + b
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(1, keepdims=True)
        loss = -(np.log(p) * onehot).sum() / dtype(40) + dtype(0.005) * (w * w).sum()
        gz = (p - onehot) / dtype(40)
        return loss, [x.T @ gz + dtype(0.01) * w, gz.sum(0)]
    return inits, loss_and_grads


PROBLEMS = {"least_squares": _least_squares, "rosenbrock": _rosenbrock, "softmax": _softmax_regression}

LBFGS_CONFIGS = [
    dict(),
    dict(line_search_fn="strong_wolfe"),
    dict(lr=0.5, max_iter=7, history_size=3),
    dict(max_iter=10, history_size=4, line_search_fn="strong_wolfe"),
    dict(lr=0.1, max_iter=5, max_eval=3),
    dict(max_iter=6, tolerance_change=1e-6, tolerance_grad=1e-5, line_search_fn="strong_wolfe"),
]


class _Closures:
    """A closure per framework computing the same loss and gradients (NumPy), counting its calls."""

    def __init__(self, fn, sp, tp, dtype):
        self.fn, self.sp, self.tp, self.dtype = fn, sp, tp, dtype
        self.calls = [0, 0]

    def somanet(self):
        self.calls[0] += 1
        loss, grads = self.fn([p.array.copy() for p in self.sp])
        for p, g in zip(self.sp, grads):
            p.grad = somanet.tensor(np.asarray(g, self.dtype))
        return somanet.tensor(np.asarray(loss, self.dtype))

    def torch(self):
        torch = torch_or_skip()
        self.calls[1] += 1
        loss, grads = self.fn([p.detach().numpy().copy() for p in self.tp])
        for p, g in zip(self.tp, grads):
            p.grad = torch.tensor(np.asarray(g, self.dtype))
        return torch.tensor(np.asarray(loss, self.dtype))


def _lbfgs_pair(problem, dtype, kw):
    torch = torch_or_skip()
    inits, fn = PROBLEMS[problem](dtype)
    sp = [somanet.tensor(a.copy(), requires_grad=True) for a in inits]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    return sp, optim.LBFGS(sp, **kw), tp, torch.optim.LBFGS(tp, **kw), _Closures(fn, sp, tp, dtype)


@pytest.mark.parametrize("kw", LBFGS_CONFIGS, ids=[str(k) for k in LBFGS_CONFIGS])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_lbfgs_float64_matches_pytorch_step_by_step(problem, kw):
    sp, so, tp, to, c = _lbfgs_pair(problem, np.float64, kw)
    # Full unit steps without a line search bounce around Rosenbrock's valley, which amplifies the
    # last-bit differences of the dot products; after two steps the runs drift apart (still converging).
    steps = 2 if problem == "rosenbrock" and not kw else 6
    for step in range(steps):
        s_loss = so.step(c.somanet)
        t_loss = to.step(c.torch)
        assert c.calls[0] == c.calls[1], f"closure calls after step {step + 1}: {c.calls}"
        assert float(s_loss) == pytest.approx(t_loss.item(), rel=1e-9, abs=1e-12)
        _assert_params(sp, tp, f"LBFGS {kw} on {problem}, step {step + 1}", 1e-9, 1e-9)
    s_state, t_state = so.state[sp[0]], to.state[tp[0]]
    assert s_state["func_evals"] == t_state["func_evals"] == c.calls[0]
    assert s_state["n_iter"] == t_state["n_iter"]
    assert sorted(s_state) == sorted(t_state)
    assert len(s_state["old_dirs"]) == len(t_state["old_dirs"]) <= so.param_groups[0]["history_size"]


@pytest.mark.parametrize("kw", LBFGS_CONFIGS, ids=[str(k) for k in LBFGS_CONFIGS])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_lbfgs_float32_first_iterations_match_pytorch(problem, kw):
    # Three iterations per step, two steps: before the iterates reach float32's noise floor, where the
    # stopping tests start to depend on last-bit differences.
    kw = {**kw, "max_iter": 3, "max_eval": kw.get("max_eval", 4)}
    sp, so, tp, to, c = _lbfgs_pair(problem, np.float32, kw)
    for step in range(2):
        s_loss = so.step(c.somanet)
        t_loss = to.step(c.torch)
        assert c.calls[0] == c.calls[1], f"closure calls after step {step + 1}: {c.calls}"
        assert float(s_loss) == pytest.approx(t_loss.item(), rel=1e-4)
        _assert_params(sp, tp, f"LBFGS {kw} on {problem} (float32), step {step + 1}", 1e-4, 1e-6)
        for p in sp:
            assert p.array.dtype == np.float32
    assert so.state[sp[0]]["d"].dtype == np.float32


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_with_autograd_closures_matches_pytorch(line_search_fn):
    torch = torch_or_skip()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 4))
    y = np.sin(x.sum(1, keepdims=True))
    w1, b1, w2 = rng.standard_normal((4, 8)) * 0.5, np.zeros(8), rng.standard_normal((8, 1)) * 0.5
    sp = [somanet.tensor(a.copy(), requires_grad=True) for a in (w1, b1, w2)]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in (w1, b1, w2)]
    so = optim.LBFGS(sp, max_iter=8, history_size=5, line_search_fn=line_search_fn)
    to = torch.optim.LBFGS(tp, max_iter=8, history_size=5, line_search_fn=line_search_fn)
    sx, sy, tx, ty = somanet.tensor(x), somanet.tensor(y), torch.tensor(x), torch.tensor(y)
    calls = [0, 0]

    def s_closure():
        calls[0] += 1
        so.zero_grad()
        loss = (((sx @ sp[0] + sp[1]).tanh() @ sp[2] - sy) ** 2).mean()
        loss.backward()
        return loss

    def t_closure():
        calls[1] += 1
        to.zero_grad()
        loss = (((tx @ tp[0] + tp[1]).tanh() @ tp[2] - ty) ** 2).mean()
        loss.backward()
        return loss

    first = None
    for step in range(4):
        with somanet.no_grad():
            s_loss = so.step(s_closure)
        t_loss = to.step(t_closure)
        first = float(s_loss) if first is None else first
        assert calls[0] == calls[1]
        assert float(s_loss) == pytest.approx(t_loss.item(), rel=1e-9)
        _assert_params(sp, tp, f"LBFGS ({line_search_fn}) with autograd, step {step + 1}", 1e-8, 1e-10)
    assert float(s_closure()) < 0.5 * first


@pytest.mark.parametrize("kw", [LBFGS_CONFIGS[1], LBFGS_CONFIGS[2]], ids=["strong_wolfe", "fixed_step"])
def test_lbfgs_state_dict_round_trip_mid_training(kw):
    inits, fn = _least_squares(np.float64)
    history = {**kw, "history_size": 3, "max_iter": 3}

    def closure_for(params):
        def closure():
            loss, grads = fn([p.array.copy() for p in params])
            for p, g in zip(params, grads):
                p.grad = somanet.tensor(g)
            return somanet.tensor(np.asarray(loss))
        return closure

    a = [somanet.tensor(v.copy(), requires_grad=True) for v in inits]
    oa = optim.LBFGS(a, **history)
    for _ in range(2):
        oa.step(closure_for(a))
    saved = oa.state_dict()
    assert sorted(saved["state"]) == [0]
    assert {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
            "prev_loss", "al"} == set(saved["state"][0])
    b = [somanet.tensor(p.array.copy(), requires_grad=True) for p in a]
    ob = optim.LBFGS(b, lr=0.01)
    ob.load_state_dict(pickle.loads(pickle.dumps(saved)))
    assert ob.param_groups[0]["max_iter"] == 3
    for _ in range(2):
        la = oa.step(closure_for(a))
        lb = ob.step(closure_for(b))
        assert float(la) == float(lb)
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa.array, pb.array)
    assert oa.state[a[0]]["func_evals"] == ob.state[b[0]]["func_evals"]
    assert oa.state[a[0]]["n_iter"] == ob.state[b[0]]["n_iter"]


def test_lbfgs_stops_at_once_on_a_zero_gradient_and_runs_hooks():
    p = somanet.tensor([1.0, -1.0], requires_grad=True)
    opt = optim.LBFGS([p])
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (p * 0.0).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 0.0 and len(calls) == 1 and seen == ["pre", "post"]
    np.testing.assert_array_equal(p.array, np.array([1.0, -1.0], np.float32))
    assert opt.state[p] == {"func_evals": 1, "n_iter": 0}


def test_lbfgs_closure_runs_with_grad_enabled_and_is_required():
    p = somanet.tensor([2.0, -3.0], requires_grad=True)
    opt = optim.LBFGS([p], max_iter=5, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        assert somanet.is_grad_enabled()
        loss = ((p - 1.0) ** 2).sum()
        loss.backward()
        return loss

    with somanet.no_grad():
        opt.step(closure)
    np.testing.assert_allclose(p.array, [1.0, 1.0], atol=1e-5)
    with pytest.raises(TypeError, match="LBFGS.step\\(\\) needs a closure"):
        opt.step(None)
    with pytest.raises(TypeError):
        opt.step()


# ---------------------------------------------------------------------------------------------- scheduler order
class _PlainSGD(optim.SGD):
    """An SGD whose step() is written from scratch (never calls Optimizer.step)."""

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.array[...] -= group["lr"] * p.grad.array


class _SignDescent(optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.array[...] -= group["lr"] * np.sign(p.grad.array)


@pytest.mark.parametrize("cls", [_PlainSGD, _SignDescent], ids=["SGD-subclass", "Optimizer-subclass"])
def test_overridden_step_counts_for_the_scheduler_order_check(cls):
    p = somanet.tensor([1.0, 2.0], requires_grad=True)
    opt = cls([p], lr=0.5)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            p.grad = somanet.tensor([1.0, 1.0])
            opt.step()
            sched.step()
    # the override still ran, with the scheduled learning rates 0.5, 0.25, 0.125
    np.testing.assert_allclose(p.array, [1.0 - 0.875, 2.0 - 0.875])
    assert opt.param_groups[0]["lr"] == 0.0625

    q = somanet.tensor([1.0], requires_grad=True)
    opt2 = cls([q], lr=0.5)
    sched2 = S.StepLR(opt2, step_size=1)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched2.step()


def test_order_check_with_lbfgs_and_shared_optimizer():
    p = somanet.tensor([1.0], requires_grad=True)
    opt = optim.LBFGS([p], max_iter=2)
    first = S.StepLR(opt, step_size=1)
    second = S.ExponentialLR(opt, gamma=0.9)  # wraps once: the step is not wrapped twice
    assert opt.step.__wrapped__ is optim.LBFGS.step

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step(closure)
        first.step()
        second.step()


def test_step_replaced_after_the_scheduler_warns():
    p = somanet.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    sched = S.StepLR(opt, step_size=1)
    opt.step = lambda closure=None: None
    opt.step()
    with pytest.warns(UserWarning, match="`optimizer.step` was replaced after the learning-rate scheduler"):
        sched.step()


def test_step_tracking_keeps_no_reference_and_pickles():
    p = somanet.tensor([1.0], requires_grad=True)
    opt = _PlainSGD([p], lr=0.1)
    sched = S.StepLR(opt, step_size=1)
    restored = pickle.loads(pickle.dumps(opt))
    assert restored.param_groups[0]["lr"] == 0.1
    ref = weakref.ref(opt)
    del opt, sched
    assert ref() is None, "the wrapped step must not keep the optimizer alive"
