"""Learning end to end with the usual loop (zero_grad, backward, step): a perceptron separates a linearly
separable set perfectly and an MLP learns the two spirals; the zoo's MLP matches PyTorch's layout."""
import time

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet import optim
from somanet.models import MLP
from reference import compare_modules, copy_state, torch_or_skip


def two_spirals(n_per_class=200, noise=0.2, seed=0):
    """Two interleaved spirals in the plane, ``(2n, 2)`` float32 points and ``(2n,)`` int64 labels."""
    rng = np.random.default_rng(seed)
    turns = np.sqrt(rng.uniform(0, 1, n_per_class)) * 3 * np.pi
    arm = np.stack([-np.cos(turns) * turns, np.sin(turns) * turns], axis=1)
    x = np.concatenate([arm, -arm]) + rng.normal(0, noise, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    return (x / 3).astype(np.float32), y


def test_perceptron_separates_a_linearly_separable_set():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    margin = x @ np.array([1.5, -1.0], dtype=np.float32) + 0.3
    keep = np.abs(margin) > 0.1
    x, y = x[keep], (margin[keep] > 0).astype(np.float32)
    model = nn.Linear(2, 1)
    criterion = nn.BCEWithLogitsLoss()
    opt = optim.SGD(model.parameters(), lr=0.5)
    xs, ys = somanet.tensor(x), somanet.tensor(y[:, None])
    for _ in range(300):
        opt.zero_grad()
        loss = criterion(model(xs), ys)
        loss.backward()
        opt.step()
    with somanet.no_grad():
        accuracy = ((model(xs).array[:, 0] > 0) == (y > 0.5)).mean()
    assert accuracy == 1.0


def test_mlp_learns_two_spirals_quickly():
    x, y = two_spirals()
    model = MLP(2, [64, 64], 2, activation="tanh")
    criterion = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=0.01)
    xs, ys = somanet.tensor(x), somanet.tensor(y)
    start = time.perf_counter()
    for step in range(600):
        opt.zero_grad()
        loss = criterion(model(xs), ys)
        loss.backward()
        opt.step()
        if step % 50 == 49:
            with somanet.no_grad():
                accuracy = (model(xs).array.argmax(axis=1) == y).mean()
            if accuracy >= 0.98:
                break
    elapsed = time.perf_counter() - start
    with somanet.no_grad():
        accuracy = (model(xs).array.argmax(axis=1) == y).mean()
    assert accuracy >= 0.95, f"train accuracy {accuracy:.3f} after {step + 1} steps ({elapsed:.1f} s)"
    assert loss.item() < 0.3


def test_mlp_with_dropout_and_batch_norm_trains_and_evaluates():
    x, y = two_spirals(100, seed=3)
    model = MLP(2, [32, 32], 2, activation="relu", dropout=0.05, batch_norm=True)
    opt = optim.Adam(model.parameters(), lr=0.02)
    xs, ys = somanet.tensor(x), somanet.tensor(y)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xs), ys)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    model.eval()
    with somanet.no_grad():
        out1, out2 = model(xs).array, model(xs).array
    np.testing.assert_array_equal(out1, out2)  # eval: no dropout, running statistics
    assert loss.item() < 0.5 * first
    assert (out1.argmax(axis=1) == y).mean() > 0.8


def test_mlp_layout_matches_an_equivalent_torch_sequential():
    torch = torch_or_skip()
    model = MLP(6, [8, 5], 3, activation="gelu", dropout=0.1, batch_norm=True)
    ref = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.GELU(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(8, 5), torch.nn.BatchNorm1d(5), torch.nn.GELU(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(5, 3))
    assert list(model.state_dict()) == list(ref.state_dict())
    copy_state(ref, model)
    model.eval()
    ref.eval()
    compare_modules(model, ref, np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    assert repr(model).split("\n", 1)[1] == repr(ref).split("\n", 1)[1]


def test_mlp_arguments():
    assert len(MLP(3, 4, 2)) == 3
    assert isinstance(MLP(3, [], 2)[0], nn.Linear) and len(MLP(3, [], 2)) == 1
    assert isinstance(MLP(3, [4], 2, activation=nn.SiLU)[1], nn.SiLU)
    with pytest.raises(ValueError, match="unknown activation 'swoosh'"):
        MLP(3, [4], 2, activation="swoosh")
    with pytest.raises(TypeError, match="class or a factory"):
        MLP(3, [4], 2, activation=nn.ReLU())
    with pytest.raises(ValueError, match="dropout"):
        MLP(3, [4], 2, dropout=1.0)
