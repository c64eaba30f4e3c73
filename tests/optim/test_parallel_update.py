"""Big parameters are updated in one piece per thread (Optimizer._update_in_blocks): bit-identical to a
single pass, state created on the first step included, and equal to PyTorch."""
import numpy as np
import pytest

import somanet
import somanet.optim as optim
from somanet.optim import optimizer as optimizer_module
from reference import torch_or_skip

CONFIGS = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.5, dampening=0.3)),
    (optim.Adam, dict(lr=1e-2, weight_decay=1e-2)),
    (optim.Adam, dict(lr=1e-2, amsgrad=True, maximize=True)),
    (optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-3)),
    (optim.Adagrad, dict(lr=1e-2, lr_decay=1e-3, weight_decay=1e-3)),
]

SHAPE = (31, 33)  # 1,023 elements: uneven pieces


@pytest.fixture
def threads(request, monkeypatch):
    monkeypatch.setattr(optimizer_module, "_PARALLEL_MIN_SIZE", 64)
    previous = somanet.get_num_threads()
    yield lambda n: somanet.set_num_threads(n)
    somanet.set_num_threads(previous)


def _run(cls, kwargs, steps=3):
    rng = np.random.default_rng(0)
    params = [somanet.tensor(rng.standard_normal(SHAPE).astype(np.float32), requires_grad=True),
              somanet.tensor(rng.standard_normal(7).astype(np.float32), requires_grad=True)]
    opt = cls(params, **kwargs)
    used = []
    run_in_blocks = opt._update_in_blocks
    opt._update_in_blocks = lambda *args: used.append(run_in_blocks(*args)) or used[-1]
    for _ in range(steps):
        for p in params:
            p.grad = somanet.tensor(rng.standard_normal(p.shape).astype(np.float32))
        opt.step()
    return params, opt, used


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_pieces_on_threads_give_the_same_bits_as_one_pass(threads, cls, kwargs):
    threads(2)
    split, opt_s, used = _run(cls, kwargs)
    assert used == [True] * 3  # the big parameter went through the pieces every step
    threads(1)
    whole, opt_w, used = _run(cls, kwargs)
    assert used == []
    for a, b in zip(split, whole):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.data.dtype == np.float32
    state_s, state_w = opt_s.state[split[0]], opt_w.state[whole[0]]
    assert state_s.keys() == state_w.keys()
    for key in state_s:
        np.testing.assert_array_equal(np.asarray(state_s[key]), np.asarray(state_w[key]))
        if key != "step":
            assert state_s[key].shape == SHAPE and state_s[key].dtype == np.float32


def test_non_contiguous_state_falls_back_to_one_pass(threads):
    threads(2)
    rng = np.random.default_rng(1)
    p = somanet.tensor(rng.standard_normal(SHAPE).astype(np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = somanet.tensor(rng.standard_normal(SHAPE).astype(np.float32))
    opt.step()
    opt.state[p]["momentum_buffer"] = np.asfortranarray(opt.state[p]["momentum_buffer"])
    expected_buf = opt.state[p]["momentum_buffer"] * 0.9 + p.grad.data
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], expected_buf, rtol=1e-6)


def test_big_parameter_on_threads_matches_torch(threads):
    threads(2)
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(SHAPE).astype(np.float32)
    p = somanet.tensor(w0.copy(), requires_grad=True)
    tp = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = optim.Adam([p], lr=1e-2, weight_decay=1e-2)
    topt = torch.optim.Adam([tp], lr=1e-2, weight_decay=1e-2)
    for _ in range(5):
        g = rng.standard_normal(SHAPE).astype(np.float32)
        p.grad = somanet.tensor(g)
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
