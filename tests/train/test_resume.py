"""An interrupted run, resumed from its checkpoint, equals the uninterrupted run bit for bit.

The runs below draw randomness from everywhere a real run does: weight init, dropout, BatchNorm,
the shuffle order (from a loader's own generator, or from the default one), an augmentation that
uses somanet's default generator, NumPy's legacy global generator and Python's ``random``, plus a
per-step learning-rate schedule, gradient accumulation, streaming metrics and early stopping with
saved best weights. The resumed run starts from different seeds and freshly initialised objects, so
only what the checkpoint restores can make it match.
"""
import json
import os
import random

import numpy as np
import pytest

from somanet import optim
from somanet.data import DataLoader, Dataset, TensorDataset
from somanet.models import MLP
from somanet.random import Generator, numpy_rng
from somanet.train import (CheckpointError, EarlyStopping, LambdaCallback, ModelCheckpoint, Trainer,
                           seed_everything)
from somanet.train.checkpoint import encode_state


class NoisyBlobs(Dataset):
    """Samples with random augmentation from all three global generators."""

    def __init__(self, n=72, d=6, k=3, seed=0):
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, k, n)
        self.x = (rng.standard_normal((n, d)) + 2.0 * self.y[:, None]).astype(np.float32)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i] + np.float32(0.1) * numpy_rng(None).standard_normal(self.x.shape[1]).astype(np.float32)
        x = x * np.float32(1.0 + 0.05 * np.random.rand())
        if random.random() < 0.3:
            x = x[::-1].copy()
        return x.astype(np.float32), int(self.y[i])


def _setup(seed, loader_kind):
    seed_everything(seed)
    model = MLP(6, [16, 8], 3, dropout=0.3, batch_norm=True)
    opt = optim.Adam(model.parameters(), lr=5e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.8)
    train = NoisyBlobs()
    if loader_kind == "own generator":
        train = DataLoader(train, batch_size=8, shuffle=True, generator=Generator(seed + 5))
    elif loader_kind == "default generator":
        train = DataLoader(train, batch_size=8, shuffle=True)
    val = NoisyBlobs(n=24, seed=1)
    return model, opt, sched, train, val


def _run(run_dir, seed, loader_kind, accumulate, max_steps=None, resume=None, extra=(), metrics=("accuracy", "f1")):
    model, opt, sched, train, val = _setup(seed, loader_kind)
    losses = []
    record = LambdaCallback(on_train_batch_end=lambda t, m, out, b, i: losses.append((t.global_step, out["loss"])))
    trainer = Trainer(run_dir=run_dir, enable_progress_bar=False, accumulate_grad_batches=accumulate, plots=False)
    history = trainer.fit(model, train, val, epochs=3, optimizer=opt, loss="cross_entropy",
                          metrics=list(metrics), batch_size=8, max_steps=max_steps, resume=resume,
                          scheduler={"scheduler": sched, "interval": "step"},
                          callbacks=[EarlyStopping(patience=5, restore_best_weights=True), record, *extra])
    return model, opt, trainer, history, losses


def _state(obj):
    arrays = {}
    encoded = encode_state(obj, arrays)
    return json.dumps(encoded, sort_keys=True), arrays


def _assert_identical(a, b):
    model_a, opt_a, trainer_a, history_a, _ = a
    model_b, opt_b, trainer_b, history_b, _ = b
    for key, value in model_a.state_dict().items():
        assert np.array_equal(value.array, model_b.state_dict()[key].array), key
    json_a, arrays_a = _state(opt_a.state_dict())
    json_b, arrays_b = _state(opt_b.state_dict())
    assert json_a == json_b
    assert arrays_a.keys() == arrays_b.keys() and all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)
    assert history_a.history == history_b.history
    assert trainer_a.global_step == trainer_b.global_step
    with open(os.path.join(trainer_a.run_dir, "metrics.csv")) as fa, open(os.path.join(trainer_b.run_dir,
                                                                                      "metrics.csv")) as fb:
        assert fa.read() == fb.read()


@pytest.mark.parametrize("loader_kind, accumulate, stop_at, metrics", [
    ("dataset", 1, 13, ("accuracy", "f1")),  # 9 steps per epoch: stops after batch 4 of epoch 2
    ("dataset", 1, 13, ()),                   # the same through the trainer's plain-batch loop
    ("own generator", 2, 7, ("accuracy",)),   # 5 windows per epoch (the last is one batch): inside epoch 2
    ("default generator", 1, 22, ("f1",)),    # inside epoch 3
])
def test_resume_mid_epoch_is_bit_exact(tmp_path, loader_kind, accumulate, stop_at, metrics):
    full = _run(tmp_path / "full", 0, loader_kind, accumulate, metrics=metrics)
    first = _run(tmp_path / "cut", 0, loader_kind, accumulate, max_steps=stop_at, metrics=metrics)
    assert first[2].global_step == stop_at and not first[2].epoch_done
    resumed = _run(tmp_path / "cut", 1234, loader_kind, accumulate, resume=tmp_path / "cut", metrics=metrics)
    _assert_identical(full, resumed)
    # The steps after the cut saw exactly the losses of the uninterrupted run.
    tail = [entry for entry in full[4] if entry[0] > stop_at]
    assert resumed[4][-len(tail):] == tail and len(tail) > 0


def test_resume_after_keyboard_interrupt(tmp_path):
    full = _run(tmp_path / "full", 0, "own generator", 1)

    def interrupt(trainer, model, outputs, batch, batch_idx):
        if trainer.global_step == 11:
            raise KeyboardInterrupt

    every_step = ModelCheckpoint(monitor="val_loss", every_n_train_steps=1)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", 0, "own generator", 1,
             extra=[every_step, LambdaCallback(on_train_batch_end=interrupt)])
    resumed = _run(tmp_path / "cut", 99, "own generator", 1, resume=tmp_path / "cut" / "checkpoints" / "last")
    _assert_identical(full, resumed)


def test_resume_at_an_epoch_boundary(tmp_path):
    full = _run(tmp_path / "full", 0, "own generator", 1)
    first = _run(tmp_path / "cut", 0, "own generator", 1, max_steps=9)
    assert first[2].current_epoch == 1 and len(first[3].history["loss"]) == 1
    resumed = _run(tmp_path / "cut", 7, "own generator", 1, resume=tmp_path / "cut")
    _assert_identical(full, resumed)


def test_resume_needs_data_built_the_same_way(tmp_path):
    _run(tmp_path / "cut", 0, "own generator", 1, max_steps=4)
    model, opt, _, _, val = _setup(0, "dataset")
    x = np.stack([NoisyBlobs()[i][0] for i in range(72)])
    no_generator = DataLoader(TensorDataset(x, NoisyBlobs().y), batch_size=8, shuffle=False)
    with pytest.raises(CheckpointError, match=r"data order was saved for 1 generator\(s\) but the data given "
                                              r"to fit\(\) uses 0"):
        Trainer(enable_progress_bar=False).fit(model, no_generator, val, epochs=3, optimizer=opt, loss="cross_entropy",
                                               metrics=["accuracy", "f1"], resume=tmp_path / "cut",
                                               scheduler={"scheduler": optim.lr_scheduler.StepLR(opt, 3),
                                                          "interval": "step"})
    model, opt, _, train, val = _setup(0, "own generator")
    with pytest.raises(CheckpointError, match=r"no state for the scheduler LearningRateScheduler\[ExponentialLR,"
                                              r"epoch\]; .* \(saved: LearningRateScheduler\[StepLR,step\]\)"):
        Trainer(enable_progress_bar=False).fit(model, train, val, epochs=3, optimizer=opt, loss="cross_entropy",
                                               metrics=["accuracy", "f1"], resume=tmp_path / "cut",
                                               scheduler=optim.lr_scheduler.ExponentialLR(opt, 0.9))
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(enable_progress_bar=False).fit(model, no_generator, epochs=1, loss="cross_entropy",
                                               resume=tmp_path / "missing")
