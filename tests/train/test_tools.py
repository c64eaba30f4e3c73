"""summary(), the LR finder on digits, and the plots (non-empty PNG files)."""
import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.models import MLP
from somanet.train import Trainer, lr_find, plots, summary


# ----------------------------------------------------------------------------- summary
def test_summary_counts_shapes_and_memory():
    model = MLP(6, [5], 3, batch_norm=True)
    model[0].requires_grad_(False)
    s = summary(model, (6,), batch_size=4)
    assert (s.total_params, s.trainable_params, s.frozen_params) == (63, 28, 35)
    rows = {r["name"]: r for r in s.rows}
    assert rows["0"]["output_shapes"] == [(4, 5)] and rows["3"]["output_shapes"] == [(4, 3)]
    assert rows["0"]["params"] == 35 and rows["0"]["trainable"] == 0 and rows["1"]["trainable"] == 10
    # Leaf outputs, float32: Linear, BatchNorm and ReLU (4, 5) each, the last Linear (4, 3).
    assert s.activation_bytes == (3 * 20 + 12) * 4
    text = str(s)
    for line in ("Total params: 63", "Trainable params: 28", "Frozen params: 35", "Input shape: [4, 6]",
                 "Estimated activation memory (batch 4): 288 B"):
        assert line in text
    assert model.training and model[0].weight.grad is None


def test_summary_nested_modules_and_bad_shapes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    s = summary(model, (3,))
    assert [r["name"] for r in s.rows] == ["0", "1", "1.0", "1.1"]
    assert [r["depth"] for r in s.rows] == [1, 1, 2, 2]
    assert s.activation_bytes == (4 + 4 + 2) * 4  # the container's output is not counted twice
    with pytest.raises(ValueError, match="one sample, without the batch"):
        summary(model, (0, 3))


# ----------------------------------------------------------------------------- LR finder
@pytest.fixture(scope="module")
def digits():
    from somanet.data.datasets import Digits
    return Digits(train=True, flatten=True), Digits(train=False, flatten=True)


def test_lr_finder_suggests_a_sane_lr_on_digits(digits):
    train, val = digits
    somanet.manual_seed(0)
    model = MLP(64, [64], 10)
    before = {k: v.array.copy() for k, v in model.state_dict().items()}
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng_before = somanet.random.get_rng_state()
    result = lr_find(model, train, loss="cross_entropy", optimizer=opt, num_steps=80)
    # The test leaves no trace: weights, optimizer and random state are as before.
    assert all(np.array_equal(v, model.state_dict()[k].array) for k, v in before.items())
    assert opt.state_dict()["state"] == {} and opt.param_groups[0]["lr"] == 1e-3
    assert somanet.random.get_rng_state() == rng_before
    assert len(result.lrs) == len(result.losses) > 20
    assert np.all(np.diff(result.lrs) > 0)
    assert 1e-4 <= result.suggestion <= 0.1
    # Sane means usable: three epochs at the suggested rate learn the digits.
    history = Trainer(enable_progress_bar=False).fit(
        model, train, val, epochs=3, loss="cross_entropy", metrics=["accuracy"],
        optimizer=optim.Adam(model.parameters(), lr=result.suggestion))
    assert history["val_accuracy"][-1] >= 0.9


def test_lr_finder_stops_when_the_loss_diverges(digits):
    train, _ = digits
    result = lr_find(MLP(64, [32], 10), train, loss="cross_entropy", optimizer="sgd", min_lr=1e-2, max_lr=1e4,
                     num_steps=60)
    assert result.stopped_early and len(result.lrs) < 60
    with pytest.raises(ValueError, match="expected 0 < min_lr < max_lr"):
        lr_find(MLP(64, [32], 10), train, loss="cross_entropy", min_lr=1.0, max_lr=0.1)


# ----------------------------------------------------------------------------- plots
PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path, min_size=(100, 100)):
    mpimg = pytest.importorskip("matplotlib.image")
    data = open(path, "rb").read()
    assert data[:8] == PNG and len(data) > 1000
    img = mpimg.imread(path)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1]
    assert img[..., :3].std() > 0.01  # something is drawn, not a blank canvas


def test_every_plot_is_a_non_empty_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.7, 0.8], "lr": [0.1] * 3}
    images = rng.random((20, 64)).astype(np.float32)
    y_true, y_pred = rng.integers(0, 10, 20), rng.integers(0, 10, 20)
    paths = [
        plots.plot_history(history, tmp_path / "history.png"),
        plots.plot_lr(list(range(10)), [0.1 * 0.9 ** i for i in range(10)], tmp_path / "lr.png"),
        plots.plot_lr_find([1e-4, 1e-3, 1e-2, 1e-1], [2.3, 2.2, 1.5, 3.0], tmp_path / "find.png", suggestion=1e-2),
        plots.plot_confusion_matrix(np.arange(9).reshape(3, 3), tmp_path / "cm.png", ["a", "b", "c"]),
        plots.plot_predictions(images, y_true, y_pred, tmp_path / "pred.png"),
        plots.plot_top_losses(images.reshape(20, 1, 8, 8), y_true, y_pred, rng.random(20), tmp_path / "top.png", k=9),
    ]
    for path in paths:
        _is_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "find.png", "history.png", "lr.png", "pred.png",
                                                          "top.png"]  # no temporary files left behind


def test_plot_errors_are_clear(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="the history is empty"):
        plots.plot_history({}, tmp_path / "h.png")
    with pytest.raises(ValueError, match=r"expected a square matrix, got shape \(2, 3\)"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "cm.png")
    with pytest.raises(ValueError, match="cannot show samples of 10 features as images"):
        plots.plot_predictions(np.zeros((4, 10)), [0] * 4, [0] * 4, tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []
