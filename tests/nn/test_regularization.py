"""L1/L2 penalties over a model's parameters: values, gradients, parameter selection, and equivalence of
0.5 * wd * l2_penalty with SGD weight decay in PyTorch."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet import optim
from somanet.autograd import gradcheck
from somanet.nn.utils import l1_penalty, l2_penalty, regularized_parameters
from reference import copy_state, torch_or_skip


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.LayerNorm(2))


def test_penalty_values_and_gradients():
    model = _model()
    params = list(model.parameters())
    l2 = l2_penalty(model)
    l1 = l1_penalty(model)
    assert l2.shape == () and l2.dtype == np.float32 and l2.requires_grad
    np.testing.assert_allclose(l2.item(), sum(float((p.array.astype(np.float64) ** 2).sum()) for p in params), rtol=1e-6)
    np.testing.assert_allclose(l1.item(), sum(float(np.abs(p.array.astype(np.float64)).sum()) for p in params), rtol=1e-6)
    (l2 + 3 * l1).backward()
    for p in params:
        np.testing.assert_allclose(p.grad.array, 2 * p.array + 3 * np.sign(p.array), rtol=1e-6, atol=1e-7)


def test_penalties_gradcheck():
    a = somanet.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    b = somanet.tensor(np.random.default_rng(1).standard_normal(5) + 0.5, requires_grad=True)
    assert gradcheck(lambda x, y: l2_penalty([x, y]), [a, b])
    assert gradcheck(lambda x, y: l1_penalty([x, y]), [a, b])


def test_skip_bias_and_norm_parameters():
    model = _model()
    names = {id(p): n for n, p in model.named_parameters()}
    chosen = [names[id(p)] for p in regularized_parameters(model, skip_bias=True)]
    assert chosen == ["0.weight", "1.weight", "3.weight", "4.weight"]
    chosen = [names[id(p)] for p in regularized_parameters(model, skip_bias=True, skip_norm=True)]
    assert chosen == ["0.weight", "3.weight"]
    expected = float((model[0].weight.array ** 2).sum() + (model[3].weight.array ** 2).sum())
    np.testing.assert_allclose(l2_penalty(model, skip_bias=True, skip_norm=True).item(), expected, rtol=1e-6)
    l2_penalty(model, skip_bias=True, skip_norm=True).backward()
    assert model[0].bias.grad is None and model[1].weight.grad is None
    model[0].weight.requires_grad_(False)
    assert [names[id(p)] for p in regularized_parameters(model, True, True)] == ["3.weight"]


def test_accepts_tensors_and_named_parameters_and_rejects_bad_input():
    model = nn.Linear(2, 2)
    a = l2_penalty(model.named_parameters()).item()
    b = l2_penalty(model.parameters()).item()
    c = l2_penalty(model.weight).item() + l2_penalty([model.bias]).item()
    np.testing.assert_allclose([a, b], [c, c], rtol=1e-6)
    with pytest.raises(ValueError, match="need a Module"):
        l1_penalty(model.parameters(), skip_bias=True)
    with pytest.raises(ValueError, match="no parameters"):
        l2_penalty([])
    with pytest.raises(TypeError, match="expected tensors"):
        l2_penalty([1.0])


def test_half_wd_l2_penalty_equals_torch_sgd_weight_decay():
    torch = torch_or_skip()
    wd, lr = 0.1, 0.05
    t_model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    s_model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    copy_state(t_model, s_model)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=lr, weight_decay=wd)
    s_opt = optim.SGD(s_model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 3)).astype(np.float32)
        y = rng.standard_normal((8, 1)).astype(np.float32)
        t_opt.zero_grad()
        torch.nn.functional.mse_loss(t_model(torch.tensor(x)), torch.tensor(y)).backward()
        t_opt.step()
        s_opt.zero_grad()
        loss = nn.functional.mse_loss(s_model(somanet.tensor(x)), somanet.tensor(y)) + 0.5 * wd * l2_penalty(s_model)
        loss.backward()
        s_opt.step()
    for (name, tp), sp in zip(t_model.named_parameters(), s_model.parameters()):
        np.testing.assert_allclose(sp.array, tp.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
