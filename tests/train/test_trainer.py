"""Trainer: data handling, steps, accumulation, clipping, schedulers, callbacks, NaN guard, progress."""
import csv
import io
import math
import os

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.models import MLP
from somanet.nn import functional as F
from somanet.train import (CSVLogger, EarlyStopping, LambdaCallback, LearningRateMonitor, LearningRateScheduler,
                           ModelCheckpoint, ProgressBar, TerminateOnNaN, Trainer, load_checkpoint, seed_everything)


def blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = (rng.standard_normal((n, d)) + 3.0 * y[:, None]).astype(np.float32)
    return x, y


def quiet(**kwargs):
    return Trainer(enable_progress_bar=False, **kwargs)


def weights(model):
    return {k: v.array.copy() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class Scripted(Trainer):
    """A trainer whose validation loss follows a script, one value per epoch."""

    def __init__(self, script, **kwargs):
        super().__init__(enable_progress_bar=False, **kwargs)
        self.script = script

    def validation_step(self, model, batch, batch_idx):
        return {"loss": somanet.tensor(self.script[self.current_epoch])}


def snapshotter(store):
    return LambdaCallback(on_train_epoch_end=lambda trainer, model: store.__setitem__(trainer.current_epoch,
                                                                                      weights(model)))


# ----------------------------------------------------------------------------- data and basics
def test_fit_on_arrays_learns_and_returns_history():
    x, y = blobs(120)
    model = MLP(4, [16], 3)
    history = quiet().fit(model, (x[:90], y[:90]), (x[90:], y[90:]), epochs=15, batch_size=16,
                          optimizer=optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy",
                          metrics=["accuracy", "f1"])
    assert set(history.history) == {"loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1", "lr"}
    assert all(len(v) == 15 for v in history.history.values()) and history.epoch == list(range(15))
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9


def test_float64_arrays_are_cast_to_the_model_dtype():
    x, y = blobs()
    seen = []
    quiet().fit(MLP(4, [8], 3), (x.astype(np.float64), y), epochs=1, loss="cross_entropy",
                callbacks=[LambdaCallback(on_train_batch_start=lambda t, m, b, i: seen.append(b[0].dtype))])
    assert set(seen) == {np.dtype(np.float32)}


def test_a_float64_loader_for_a_float32_model_is_refused():
    x, y = blobs()
    loader = somanet.data.DataLoader(somanet.data.TensorDataset(x.astype(np.float64), y), batch_size=8)
    with pytest.raises(TypeError, match="inputs are float64 but the model's parameters are float32"):
        quiet().fit(MLP(4, [8], 3), loader, epochs=1, loss="cross_entropy")


def test_bad_data_and_arguments_are_reported():
    x, y = blobs()
    model = MLP(4, [8], 3)
    with pytest.raises(TypeError, match="train_data: expected a DataLoader, a Dataset, or arrays .* got str"):
        quiet().fit(model, "data.csv", loss="cross_entropy")
    with pytest.raises(ValueError, match=r"share their first .* got shapes \[\(60, 4\), \(59,\)\]"):
        quiet().fit(model, (x, y[:-1]), loss="cross_entropy")
    with pytest.raises(ValueError, match="epochs must be a non-negative int, got -1"):
        quiet().fit(model, (x, y), epochs=-1, loss="cross_entropy")
    with pytest.raises(ValueError, match="unknown loss 'cross_entrophy'"):
        quiet().fit(model, (x, y), loss="cross_entrophy")
    with pytest.raises(ValueError, match="no loss was given"):
        quiet().fit(model, (x, y))
    with pytest.raises(ValueError, match="accumulate_grad_batches must be an int >= 1, got 0"):
        Trainer(accumulate_grad_batches=0)
    with pytest.raises(ValueError, match="scheduler interval must be 'epoch' or 'step', got 'batch'"):
        opt = optim.SGD(model.parameters(), lr=0.1)
        quiet().fit(model, (x, y), loss="cross_entropy", optimizer=opt,
                    scheduler={"scheduler": optim.lr_scheduler.StepLR(opt, 1), "interval": "batch"})


def test_evaluate_and_predict():
    x, y = blobs()
    model = MLP(4, [8], 3)
    trainer = quiet()
    result = trainer.evaluate(model, (x, y), loss="cross_entropy", metrics=["accuracy", "confusion_matrix"],
                              batch_size=7)
    model.eval()
    with somanet.no_grad():
        logits = model(somanet.tensor(x))
        expected = F.cross_entropy(logits, somanet.tensor(y)).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((logits.array.argmax(1) == y).mean()))
    assert result["confusion_matrix"].sum() == len(y)
    out = trainer.predict(model, x, batch_size=7)
    assert out.shape == (60, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, logits.array, rtol=1e-5, atol=1e-6)
    assert model.training is False  # predict restores the mode it found


# ----------------------------------------------------------------------------- steps
def test_overridden_training_step_logs_extra_values():
    class AuxTrainer(Trainer):
        def training_step(self, model, batch, batch_idx):
            out = super().training_step(model, batch, batch_idx)
            out["aux"] = 2.0 * (batch_idx + 1)
            return out

    x, y = blobs()
    history = AuxTrainer(enable_progress_bar=False).fit(MLP(4, [8], 3), (x, y), epochs=2, batch_size=20,
                                                        shuffle=False, loss="cross_entropy")
    # Batch-size-weighted mean of 2, 4, 6 over three equal batches.
    assert history["aux"] == [4.0, 4.0]


def test_a_model_with_its_own_training_step_needs_no_loss():
    class Lit(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = MLP(4, [8], 3)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

    x, y = blobs()
    model = Lit()
    history = quiet().fit(model, (x, y), epochs=3, optimizer=optim.Adam(model.parameters(), lr=1e-2))
    assert history["loss"][-1] < history["loss"][0]
    assert model.trainer is not None


def test_manual_optimization_with_two_optimizers():
    class TwoOptimizers(Trainer):
        automatic_optimization = False

        def training_step(self, model, batch, batch_idx):
            x, y = batch
            for opt in self.optimizers:
                opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            for opt in self.optimizers:
                opt.step()
            return {"loss": loss.item()}

    x, y = blobs()
    model = MLP(4, [8], 3)
    before = weights(model)
    first, last = model[0], model[2]
    opts = [optim.SGD(first.parameters(), lr=0.1), optim.SGD(last.parameters(), lr=0.1)]
    trainer = TwoOptimizers(enable_progress_bar=False)
    history = trainer.fit(model, (x, y), epochs=2, batch_size=20, optimizer=opts)
    assert trainer.global_step == 6 and len(history["loss"]) == 2
    after = weights(model)
    assert all(not np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="2 optimizers need a step that optimizes by itself"):
        quiet().fit(model, (x, y), optimizer=opts, loss="cross_entropy")


# ----------------------------------------------------------------------------- accumulation and clipping
def _train_sgd(x, y, batch_size, accumulate, dtype=np.float32, epochs=2):
    somanet.manual_seed(0)
    model = MLP(4, [8], 3)
    if dtype == np.float64:
        model.double()
    trainer = quiet(accumulate_grad_batches=accumulate)
    trainer.fit(model, (x, y), epochs=epochs, batch_size=batch_size, shuffle=False, loss="cross_entropy",
                optimizer=optim.SGD(model.parameters(), lr=0.5))
    return weights(model), trainer


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_gradient_accumulation_equals_the_full_batch(dtype, tol):
    x, y = blobs(10)
    # Batches of 3 accumulated by 2 form the windows [0..5] and [6..9]: the same as batches of 6,
    # including the short last window (a batch of 3 and a batch of 1).
    accumulated, trainer = _train_sgd(x, y, batch_size=3, accumulate=2, dtype=dtype)
    full, _ = _train_sgd(x, y, batch_size=6, accumulate=1, dtype=dtype)
    assert trainer.global_step == 4
    for k in full:
        assert full[k].dtype == dtype
        np.testing.assert_allclose(accumulated[k], full[k], rtol=0, atol=tol, err_msg=k)
    # Stepping after every small batch gives clearly different weights, so the comparison has teeth.
    unaccumulated, _ = _train_sgd(x, y, batch_size=3, accumulate=1, dtype=dtype)
    assert max(np.abs(unaccumulated[k] - full[k]).max() for k in full) > 1e3 * tol


def _one_step_change(algorithm, clip):
    x, y = blobs(32)
    somanet.manual_seed(0)
    model = MLP(4, [8], 3)
    before = weights(model)
    quiet(gradient_clip_val=clip, gradient_clip_algorithm=algorithm).fit(
        model, (x * 10, y), epochs=1, max_steps=1, batch_size=32, loss="cross_entropy",
        optimizer=optim.SGD(model.parameters(), lr=1.0))
    after = weights(model)
    return np.concatenate([(after[k] - before[k]).ravel() for k in before])


def test_gradient_clipping_by_norm_and_value():
    # Unclipped, the first step of this model on inputs scaled by 10 moves the weights a lot.
    assert np.linalg.norm(_one_step_change("norm", None)) > 0.1
    # With lr = 1 the update is minus the clipped gradient, whose total norm is the clip value
    # (to float32 rounding of weights near 1).
    change = _one_step_change("norm", 1e-3)
    assert np.linalg.norm(change) == pytest.approx(1e-3, rel=1e-3)
    change = _one_step_change("value", 1e-4)
    assert np.abs(change).max() == pytest.approx(1e-4, rel=1e-3)


# ----------------------------------------------------------------------------- schedulers
@pytest.mark.parametrize("interval, steps", [("step", 6), ("epoch", 2)])
def test_scheduler_steps_per_batch_or_per_epoch(interval, steps):
    x, y = blobs()
    model = MLP(4, [8], 3)
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = quiet().fit(model, (x, y), epochs=2, batch_size=20, loss="cross_entropy", optimizer=opt,
                          scheduler={"scheduler": sched, "interval": interval})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 ** steps)
    # "lr" is the optimizer's rate at the end of the epoch, before an epoch-level scheduler steps.
    assert history["lr"] == pytest.approx([1.0, 0.5] if interval == "epoch" else [0.5 ** 3, 0.5 ** 6])


def test_scheduler_callback_with_a_frequency_and_a_skipped_step():
    x, y = blobs(40)
    x[25] = np.nan  # the fourth batch of 8: its step is skipped and must not advance the schedule
    model = MLP(4, [8], 3)
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = LearningRateScheduler(optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), interval="step",
                                  frequency=2)
    trainer = quiet()
    trainer.fit(model, (x, y), epochs=1, batch_size=8, shuffle=False, loss="cross_entropy", optimizer=opt,
                callbacks=[sched])
    assert trainer.global_step == 3 and trainer.lr_schedulers == [sched]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)  # stepped after step 2 only
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs interval='epoch'"):
        LearningRateScheduler(optim.lr_scheduler.ReduceLROnPlateau(opt), interval="step")


def test_reduce_lr_on_plateau_follows_the_monitored_metric():
    x, y = blobs()
    model = MLP(4, [8], 3)
    opt = optim.SGD(model.parameters(), lr=1.0)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0)
    history = Scripted([1.0, 2.0, 3.0]).fit(model, (x, y), (x, y), epochs=3, loss="cross_entropy", optimizer=opt,
                                            scheduler=plateau)
    assert history["lr"] == pytest.approx([1.0, 1.0, 0.1])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    with pytest.raises(KeyError, match="ReduceLROnPlateau monitors 'val_acc'"):
        quiet().fit(model, (x, y), epochs=1, loss="cross_entropy", optimizer=opt,
                    scheduler={"scheduler": plateau, "monitor": "val_acc"})


def test_learning_rate_monitor_records_every_step():
    x, y = blobs()
    model = MLP(4, [8], 3)
    opt = optim.SGD(model.parameters(), lr=1.0)
    monitor = LearningRateMonitor()
    quiet().fit(model, (x, y), epochs=2, batch_size=20, loss="cross_entropy", optimizer=opt, callbacks=[monitor],
                scheduler={"scheduler": optim.lr_scheduler.StepLR(opt, 1, gamma=0.5), "interval": "step"})
    assert monitor.steps == list(range(6))
    assert monitor.lrs == pytest.approx([0.5 ** i for i in range(6)])


# ----------------------------------------------------------------------------- early stopping and checkpoints
def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = blobs()
    snaps = {}
    model = MLP(4, [8], 3)
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    trainer = Scripted([1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.1])
    history = trainer.fit(model, (x, y), (x, y), epochs=8, loss="cross_entropy",
                          callbacks=[stopper, snapshotter(snaps)])
    assert len(history["val_loss"]) == 4 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    assert "val_loss did not improve for 2 epoch(s)" in trainer.stop_reason
    assert same(weights(model), snaps[1]) and not same(snaps[1], snaps[3])


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restores_when_training_ends_without_stopping(restore):
    x, y = blobs()
    snaps = {}
    model = MLP(4, [8], 3)
    stopper = EarlyStopping(patience=10, restore_best_weights=restore)
    Scripted([1.0, 0.5, 0.7, 0.8]).fit(model, (x, y), (x, y), epochs=4, loss="cross_entropy",
                                       callbacks=[stopper, snapshotter(snaps)])
    assert stopper.stopped_epoch is None
    assert same(weights(model), snaps[1] if restore else snaps[3])


def test_model_checkpoint_best_last_and_top_k(tmp_path):
    x, y = blobs()
    snaps = {}
    model = MLP(4, [8], 3)
    ckpt = ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", save_top_k=2)
    Scripted([0.9, 0.4, 0.6, 0.3, 0.8]).fit(model, (x, y), (x, y), epochs=5, loss="cross_entropy",
                                            callbacks=[ckpt, snapshotter(snaps)])
    assert ckpt.best_model_score == pytest.approx(0.3)
    assert sorted(os.listdir(tmp_path)) == ["best", "epoch=002-val_loss=0.4000", "epoch=004-val_loss=0.3000", "last"]
    for name, epoch in (("best", 3), ("epoch=002-val_loss=0.4000", 1), ("last", 4)):
        restored = MLP(4, [8], 3)
        loaded = load_checkpoint(tmp_path / name)
        loaded.load_model(restored)
        assert same(weights(restored), snaps[epoch]), name
        assert loaded.trainer_state["epoch"] == epoch


def test_run_directory_gathers_metrics_checkpoints_summary_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs()
    trainer = quiet(run_dir=tmp_path / "run")
    history = trainer.fit(MLP(4, [8], 3), (x, y), (x, y), epochs=3, loss="cross_entropy", metrics=["accuracy"])
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["checkpoints", "config.json", "doctor.json", "doctor.md", "metrics.csv", "plots",
                                       "summary.txt"]
    assert sorted(os.listdir(run / "checkpoints")) == ["best", "last"]
    assert sorted(os.listdir(run / "plots")) == ["history.png", "lr.png"]
    assert "Total params: 67" in (run / "summary.txt").read_text()
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    # Every digit of the History is in the CSV.
    assert [float(r["val_loss"]) for r in rows] == history["val_loss"]


def test_csv_logger_append_keeps_previous_rows(tmp_path):
    x, y = blobs()
    path = tmp_path / "log.csv"
    quiet().fit(MLP(4, [8], 3), (x, y), epochs=2, loss="cross_entropy", callbacks=[CSVLogger(path)])
    quiet().fit(MLP(4, [8], 3), (x, y), epochs=1, loss="cross_entropy", callbacks=[CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,lr" and len(lines) == 4 and lines[3].startswith("1,")


# ----------------------------------------------------------------------------- NaN guard
def test_nan_in_the_loss_stops_with_a_report(capsys):
    x, y = blobs(40)
    x[20] = np.nan  # in the third batch of 8
    model = MLP(4, [8], 3)
    after_step_2 = {}
    keep = LambdaCallback(on_train_batch_end=lambda t, m, o, b, i: after_step_2.update(weights(m)) if i == 1 else None)
    guard = TerminateOnNaN()
    trainer = quiet()
    history = trainer.fit(model, (x, y), epochs=3, batch_size=8, shuffle=False, loss="cross_entropy",
                          optimizer=optim.SGD(model.parameters(), lr=0.1), callbacks=[guard, keep])
    assert guard.report["step"] == 3 and guard.report["epoch"] == 1 and guard.report["batch"] == 3
    assert math.isnan(guard.report["loss"]) and guard.report["parameter"] == "0.weight"
    assert "step 3 (batch 3 of the epoch): loss = nan" in trainer.stop_reason
    assert "first parameter with non-finite gradients: '0.weight'" in trainer.stop_reason
    assert trainer.stop_reason in capsys.readouterr().err
    assert history.history == {} and trainer.global_step == 2
    assert same(weights(model), after_step_2)  # the bad update was not applied


def test_non_finite_gradient_with_a_finite_loss_is_caught():
    x, y = blobs(40)
    model = MLP(4, [8], 3)
    poisoned = {"on": False}
    model[2].bias.register_hook(lambda g: g * np.float32("nan") if poisoned["on"] else g)
    arm = LambdaCallback(on_train_batch_start=lambda t, m, b, i: poisoned.update(on=(t.global_step == 3)))
    guard = TerminateOnNaN()
    quiet().fit(model, (x, y), epochs=2, batch_size=8, loss="cross_entropy", callbacks=[arm, guard])
    assert guard.report["step"] == 4 and math.isfinite(guard.report["loss"])
    assert guard.report["parameter"] == "2.bias" and guard.report["non_finite_values"] == 3
    assert all(np.isfinite(v).all() for v in weights(model).values())


def test_terminate_on_nan_can_be_turned_off():
    x, y = blobs(16)
    x[0] = np.nan
    model = MLP(4, [8], 3)
    history = quiet(terminate_on_nan=False).fit(model, (x, y), epochs=2, batch_size=8, loss="cross_entropy")
    assert len(history["loss"]) == 2 and math.isnan(history["loss"][0])


# ----------------------------------------------------------------------------- progress
def test_non_tty_progress_is_one_line_per_epoch():
    x, y = blobs()
    stream = io.StringIO()
    Trainer(progress_stream=stream).fit(MLP(4, [8], 3), (x, y), (x, y), epochs=3, batch_size=16,
                                        loss="cross_entropy", metrics=["accuracy"])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"Epoch {i}/3 - 4/4 - ") and "samples/s - loss: " in line
        assert "accuracy: " in line and "val_loss: " in line and "val_accuracy: " in line


def test_non_tty_progress_marks_a_partial_last_epoch():
    x, y = blobs()
    stream = io.StringIO()
    Trainer(progress_stream=stream).fit(MLP(4, [8], 3), (x, y), epochs=3, batch_size=20, max_steps=4,
                                        loss="cross_entropy")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/3 - 3/3 - ") and lines[1].startswith("Epoch 2/3 - 1/3 - ")
    assert lines[1].endswith(" - stopped")


def test_terminal_progress_uses_a_live_bar():
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    Trainer(progress_stream=stream).fit(MLP(4, [8], 3), (*blobs(),), (*blobs(),), epochs=2, batch_size=16,
                                        loss="cross_entropy")
    out = stream.getvalue()
    assert "\r" in out and "Epoch 1/2" in out and "Epoch 2/2" in out and "val_loss" in out
    assert ProgressBar(mode="lines")._resolve_mode() == "lines"


# ----------------------------------------------------------------------------- seeding
def test_seed_everything_reseeds_every_generator():
    import random

    def draws():
        return (somanet.rand(3).array.tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])

    assert seed_everything(123) == 123
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first
    with pytest.raises(ValueError, match="non-negative int seed, got -1"):
        seed_everything(-1)
