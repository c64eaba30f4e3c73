"""Callbacks: code that runs at fixed points of ``Trainer.fit``.

Hook names and signatures follow Lightning (``on_train_epoch_end(trainer, model)``, ...); the epoch's
logs (``loss``, ``val_loss``, metrics, ``lr``) are in ``trainer.callback_metrics``, a dict of floats,
as Keras passes ``logs``. Each callback can save and restore its state (``state_dict`` /
``load_state_dict``) so that a resumed run behaves exactly like an uninterrupted one.

Order of the hooks in one epoch::

    on_train_epoch_start
      per batch: on_train_batch_start, [backward], on_before_optimizer_step (last batch of an
                 accumulation window), [optimizer step], on_train_batch_end
    on_validation_start, on_validation_end       (if there is validation data)
    on_train_epoch_end                           (logs complete; checkpoints run last)

and around the whole run ``on_fit_start`` ... ``on_train_end``, ``on_fit_end``, or ``on_exception``.
"""
import csv
import io
import math
import os
import sys

import numpy as np

from ._io import atomic_write_text

__all__ = ["Callback", "LambdaCallback", "History", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN",
           "CSVLogger", "LearningRateMonitor", "LearningRateScheduler", "TensorBoardLogger", "TensorBoard"]

# Metric names whose larger values are better; everything else (losses, errors, perplexity) is "min".
_MAX_HINTS = ("acc", "precision", "recall", "f1", "r2", "auc", "iou", "dice")


def _auto_mode(monitor, mode, owner):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(h in name for h in _MAX_HINTS) else "min"


def _monitored(trainer, monitor, owner):
    logs = trainer.callback_metrics
    if monitor not in logs:
        raise KeyError(f"{owner}: the monitored metric '{monitor}' is not in the logs; available: "
                       f"{', '.join(sorted(logs)) or 'none'} (validation metrics need val_data)")
    return float(logs[monitor])


class Callback:
    """Base class for callbacks; override the hooks you need (each does nothing by default).

    >>> class PrintLoss(Callback):
    ...     def on_train_epoch_end(self, trainer, model):
    ...         print(trainer.current_epoch, trainer.callback_metrics["loss"])
    """

    def on_fit_start(self, trainer, model):
        """Called once at the start of ``fit``, after a resumed state has been restored."""

    def on_train_epoch_start(self, trainer, model):
        """Called at the start of every training epoch."""

    def on_train_batch_start(self, trainer, model, batch, batch_idx):
        """Called before the training step of every batch."""

    def on_before_optimizer_step(self, trainer, model, optimizer):
        """Called when gradients are complete, before clipping and the optimizer step."""

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        """Called after every batch (after the optimizer step on the last batch of a window).

        ``outputs`` is a dict with ``loss`` (a float) and any extra values the step returned.
        """

    def on_validation_start(self, trainer, model):
        """Called before the validation loop of an epoch."""

    def on_validation_end(self, trainer, model):
        """Called after the validation loop; ``trainer.callback_metrics`` has the ``val_*`` values."""

    def on_train_epoch_end(self, trainer, model):
        """Called at the end of every epoch, with the epoch's logs in ``trainer.callback_metrics``."""

    def on_train_end(self, trainer, model):
        """Called when training stops (normally, early or at ``max_steps``), before ``on_fit_end``."""

    def on_fit_end(self, trainer, model):
        """Called once at the very end of ``fit``."""

    def on_exception(self, trainer, model, exception):
        """Called when ``fit`` is left by an exception (including KeyboardInterrupt)."""

    def state_dict(self):
        """State to save in checkpoints (nested dicts, lists, numbers, strings and arrays)."""
        return {}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned."""

    @property
    def state_key(self):
        """The key of this callback's state in a checkpoint; unique per callback of a trainer."""
        return type(self).__name__


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_train_epoch_end=lambda trainer, model: ...)``."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; hooks are "
                                f"{', '.join(n for n in dir(Callback) if n.startswith('on_'))}")
            setattr(self, name, fn)


class History(Callback):
    """Records every scalar log of every epoch: ``history.history == {"loss": [...], "val_loss": [...]}``.

    ``fit`` always adds one and returns it. ``history.epoch`` lists the epoch numbers (0-based).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_train_epoch_end(self, trainer, model):
        self.epoch.append(trainer.current_epoch)
        for key, value in trainer.callback_metrics.items():
            if np.ndim(value) != 0:
                continue
            column = self.history.setdefault(key, [float("nan")] * (len(self.epoch) - 1))
            column.append(float(value))
        # A key missing this epoch still gets a cell, so every list has one entry per epoch.
        for column in self.history.values():
            if len(column) < len(self.epoch):
                column.append(float("nan"))

    def state_dict(self):
        return {"history": self.history, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


class EarlyStopping(Callback):
    """Stop training when a monitored metric stops improving.

    Args:
        monitor: the log key to watch (``"val_loss"``, ``"val_accuracy"``, ...).
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names, min otherwise).
        baseline: stop if the metric does not beat this value within ``patience`` epochs.
        restore_best_weights: put back the weights of the best epoch when training ends, whether
            it stopped early or ran all its epochs.
        start_from_epoch: epochs to wait before monitoring starts (warm-up).
        verbose: print a line when stopping and when restoring.

    After ``fit``: ``stopped_epoch`` (or None), ``best``, ``best_epoch``.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0, verbose=False):
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.mode = _auto_mode(monitor, mode, "EarlyStopping")
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = None
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_epoch = None
        self.best_weights = None

    def _improved(self, current):
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_fit_start(self, trainer, model):
        if not trainer.resumed:
            self._reset()

    def on_train_epoch_end(self, trainer, model):
        epoch = trainer.current_epoch
        if epoch < self.start_from_epoch:
            return
        current = _monitored(trainer, self.monitor, "EarlyStopping")
        if math.isnan(current):
            current = math.inf if self.mode == "min" else -math.inf
        if self._improved(current):
            self.best = current
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = {k: np.array(v.array, copy=True) for k, v in model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True
            best = "none" if self.best_epoch is None else f"{self.best:.6g} at epoch {self.best_epoch + 1}"
            trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for {self.wait} epoch(s) "
                                   f"(best {best})")
            if self.verbose:
                print(f"EarlyStopping: stopping after epoch {epoch + 1}: {trainer.stop_reason}", file=sys.stderr)

    def on_fit_end(self, trainer, model):
        if self.restore_best_weights and self.best_weights is not None:
            model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} = {self.best:.6g})", file=sys.stderr)

    def state_dict(self):
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.best_weights = state["best_weights"]

    @property
    def state_key(self):
        return f"EarlyStopping[monitor={self.monitor},mode={self.mode}]"


class ModelCheckpoint(Callback):
    """Save full checkpoints (see ``somanet.train.checkpoint``) during training.

    Args:
        dirpath: where checkpoints go; by default ``<run_dir>/checkpoints`` of the trainer.
        monitor: the log key that ranks checkpoints; ``None`` keeps only ``last``.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_top_k: ``1``: keep ``best`` (the best epoch so far); ``k > 1`` or ``-1`` (all): also keep
            the ``k`` best epochs as ``filename`` directories; ``0``: no ranked checkpoints.
        save_last: keep ``last``, the state at the end of the latest epoch (and at the end of training,
            and every ``every_n_train_steps`` steps) from which ``fit(resume=...)`` continues.
        every_n_epochs: rank and save every this many epochs.
        every_n_train_steps: also save ``last`` every this many optimizer steps (mid-epoch).
        filename: the name of a top-k directory; formatted with ``epoch`` (1-based), ``step`` and
            every log key.

    After ``fit``: ``best_model_path``, ``best_model_score``, ``last_model_path``, ``best_k_models``.
    """

    def __init__(self, dirpath=None, monitor="val_loss", mode="auto", save_top_k=1, save_last=True,
                 every_n_epochs=1, every_n_train_steps=None, filename="epoch={epoch:03d}-{monitor}={value:.4f}"):
        if save_top_k < -1:
            raise ValueError(f"ModelCheckpoint: save_top_k must be >= -1, got {save_top_k}")
        if every_n_epochs < 1:
            raise ValueError(f"ModelCheckpoint: every_n_epochs must be >= 1, got {every_n_epochs}")
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"ModelCheckpoint: every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.dirpath = None if dirpath is None else os.fspath(dirpath)
        self.monitor = monitor
        self.mode = _auto_mode(monitor, mode, "ModelCheckpoint") if monitor else "min"
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename
        self.best_model_path = None
        self.best_model_score = None
        self.last_model_path = None
        self.best_k_models = {}
        self._last_saved_step = None

    def _dir(self, trainer):
        if self.dirpath is None:
            if trainer.run_dir is None:
                raise ValueError("ModelCheckpoint: give dirpath=, or a run_dir= to the Trainer")
            self.dirpath = os.path.join(trainer.run_dir, "checkpoints")
        return self.dirpath

    def on_fit_start(self, trainer, model):
        self._dir(trainer)
        if not trainer.resumed:
            self.best_model_path = self.best_model_score = self.last_model_path = None
            self.best_k_models = {}
            self._last_saved_step = None

    def _better(self, value, than):
        return value < than if self.mode == "min" else value > than

    def _save_last(self, trainer):
        path = os.path.join(self._dir(trainer), "last")
        trainer.save_checkpoint(path)
        self.last_model_path = path
        self._last_saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        n = self.every_n_train_steps
        if (n and self.save_last and trainer.at_step_boundary and trainer.global_step % n == 0
                and self._last_saved_step != trainer.global_step):
            self._save_last(trainer)

    def on_train_epoch_end(self, trainer, model):
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 and self.monitor and self.save_top_k != 0:
            value = _monitored(trainer, self.monitor, "ModelCheckpoint")
            if not math.isnan(value):
                self._rank(trainer, value)
        if self.save_last:
            self._save_last(trainer)

    def _rank(self, trainer, value):
        root = self._dir(trainer)
        improved = self.best_model_score is None or self._better(value, self.best_model_score)
        if improved:
            # Record first, so the checkpoint written next holds this callback's updated state.
            self.best_model_score = value
            self.best_model_path = os.path.join(root, "best")
        keep_named = self.save_top_k == -1 or self.save_top_k > 1
        named = None
        if keep_named:
            names = dict(trainer.callback_metrics)
            names.update(epoch=trainer.current_epoch + 1, step=trainer.global_step, monitor=self.monitor,
                         value=value)
            named = os.path.join(root, self.filename.format(**names))
            worst = None
            if self.save_top_k != -1 and len(self.best_k_models) >= self.save_top_k:
                worst = max(self.best_k_models, key=lambda p: self.best_k_models[p] * (1 if self.mode == "min" else -1))
                if not self._better(value, self.best_k_models[worst]):
                    named = None
                else:
                    del self.best_k_models[worst]
            if named is not None:
                self.best_k_models[named] = value
        if improved:
            trainer.save_checkpoint(self.best_model_path)
        if named is not None:
            trainer.save_checkpoint(named)
            if worst is not None and os.path.isdir(worst):
                import shutil
                shutil.rmtree(worst, ignore_errors=True)

    def on_train_end(self, trainer, model):
        # The state at the end of training (e.g. stopped at max_steps, mid-epoch) is where a later
        # fit(resume=...) must continue from.
        if self.save_last and self._last_saved_step != trainer.global_step:
            self._save_last(trainer)

    def state_dict(self):
        return {"best_model_path": self.best_model_path, "best_model_score": self.best_model_score,
                "last_model_path": self.last_model_path, "best_k_models": self.best_k_models}

    def load_state_dict(self, state):
        self.best_model_path = state["best_model_path"]
        self.best_model_score = state["best_model_score"]
        self.last_model_path = state["last_model_path"]
        self.best_k_models = dict(state["best_k_models"])

    @property
    def state_key(self):
        return f"ModelCheckpoint[monitor={self.monitor},mode={self.mode}]"


class TerminateOnNaN(Callback):
    """Stop as soon as the loss or a gradient is NaN or infinite, and say where.

    The optimizer step of the bad batch is skipped, so the model keeps the last finite weights.
    The report (also in ``trainer.stop_reason`` and ``self.report``) gives the epoch, the step, the
    loss and the first parameter (in ``named_parameters`` order) whose gradient is not finite.
    ``Trainer`` adds one unless told ``terminate_on_nan=False``.

    Args:
        check_gradients: also inspect every gradient (one vectorised check per parameter).
        verbose: print the report to stderr when stopping.
    """

    def __init__(self, check_gradients=True, verbose=True):
        self.check_gradients = check_gradients
        self.verbose = verbose
        self.report = None

    def _bad_parameter(self, trainer):
        for name, p in trainer.named_parameters:
            g = p.grad
            if g is not None and not np.isfinite(g.array).all():
                bad = int(g.array.size - np.count_nonzero(np.isfinite(g.array)))
                return name, bad, g.array.size
        return None

    def on_fit_start(self, trainer, model):
        self._params = [p for _, p in trainer.named_parameters]
        # The per-batch check is only for steps that optimize by themselves.
        self._skip_hooks = set() if trainer.manual_optimization else {"on_train_batch_end"}

    def on_before_optimizer_step(self, trainer, model, optimizer):
        loss = trainer.last_loss
        loss_ok = loss is None or math.isfinite(loss)
        if loss_ok and getattr(trainer, "scaler", None) is not None:
            return  # "16-mixed": the GradScaler skips a step whose scaled gradients overflowed, and backs off
        if loss_ok and self.check_gradients:
            # One dot product per gradient (BLAS, no temporary array): a NaN or Inf anywhere makes the
            # total non-finite. Squares of huge but finite values can overflow too; such a false
            # alarm is re-checked element by element below before anything is reported.
            total = 0.0
            vdot = np.vdot
            for p in self._params:
                g = p.grad
                if g is not None:
                    d = g.array
                    total += vdot(d, d)
            if math.isfinite(total):
                return
        bad = self._bad_parameter(trainer) if self.check_gradients else None
        if loss_ok and bad is None:
            return
        self._stop(trainer, loss, bad)

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        # Steps that optimize by themselves (automatic_optimization off) are checked afterwards.
        if trainer.manual_optimization and trainer.last_loss is not None and not math.isfinite(trainer.last_loss):
            self._stop(trainer, trainer.last_loss, None)

    def _stop(self, trainer, loss, bad):
        self.report = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step + 1,
                       "batch": trainer.batch_idx + 1, "loss": loss,
                       "parameter": None if bad is None else bad[0],
                       "non_finite_values": None if bad is None else bad[1],
                       "parameter_size": None if bad is None else bad[2]}
        where = (f"epoch {self.report['epoch']}, step {self.report['step']} (batch {self.report['batch']} of "
                 f"the epoch)")
        grads = ("no parameter has a non-finite gradient" if bad is None else
                 f"first parameter with non-finite gradients: '{bad[0]}' ({bad[1]} of {bad[2]} values)")
        trainer.should_stop = True
        trainer.skip_optimizer_step = True
        trainer.stop_reason = (f"TerminateOnNaN: non-finite training at {where}: loss = {loss}; {grads}. "
                               f"Training stopped before this step's update.")
        if self.verbose:
            print(trainer.stop_reason, file=sys.stderr)


class CSVLogger(Callback):
    """Write one row per epoch (``epoch`` then every scalar log, sorted) to a CSV file.

    The file is rewritten atomically after every epoch, so it is always complete and readable.

    Args:
        filename: the CSV path; by default ``<run_dir>/metrics.csv`` of the trainer.
        separator: the field separator.
        append: keep the rows already in the file when training starts.
    """

    def __init__(self, filename=None, separator=",", append=False):
        self.filename = None if filename is None else os.fspath(filename)
        self.separator = separator
        self.append = append
        self.rows = []
        self._prefix = ""

    def on_fit_start(self, trainer, model):
        if self.filename is None:
            if trainer.run_dir is None:
                raise ValueError("CSVLogger: give filename=, or a run_dir= to the Trainer")
            self.filename = os.path.join(trainer.run_dir, "metrics.csv")
        if not trainer.resumed:
            self.rows = []
            self._prefix = ""
            if self.append and os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self._prefix = f.read()

    def on_train_epoch_end(self, trainer, model):
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if np.ndim(v) == 0})
        self.rows.append(row)
        self._write()

    def _write(self):
        keys = ["epoch"] + sorted({k for row in self.rows for k in row if k != "epoch"})
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.separator, lineterminator="\n")
        if not self._prefix:
            writer.writerow(keys)
        for row in self.rows:
            writer.writerow([_csv_value(row.get(k, "")) for k in keys])
        atomic_write_text(self.filename, self._prefix + buf.getvalue())

    def state_dict(self):
        return {"rows": self.rows, "prefix": self._prefix}

    def load_state_dict(self, state):
        self.rows = [dict(r) for r in state["rows"]]
        self._prefix = state["prefix"]


def _csv_value(v):
    # repr keeps every digit of a float, so the CSV holds exactly what History holds.
    return repr(v) if isinstance(v, float) else v


class LearningRateMonitor(Callback):
    """Record the learning rate of every param group, per step or per epoch.

    The trainer itself logs ``lr`` (first param group) every epoch, and ``lr-group{i}`` when there are
    several groups; this callback keeps the finer record in ``lrs`` and ``steps`` (the global step at
    which each value was in use), for the learning-rate curve.

    Args:
        logging_interval: ``"step"`` (one value per optimizer step) or ``"epoch"``.
    """

    def __init__(self, logging_interval="step"):
        if logging_interval not in ("step", "epoch"):
            raise ValueError(f"LearningRateMonitor: logging_interval must be 'step' or 'epoch', "
                             f"got {logging_interval!r}")
        self.logging_interval = logging_interval
        self.lrs = []
        self.steps = []

    def on_fit_start(self, trainer, model):
        if not trainer.resumed:
            self.lrs, self.steps = [], []
        # The rate of each step is read just before the optimizer uses it; a step that optimizes by
        # itself has no such moment, so the start of its batch is used instead.
        per_step = self.logging_interval == "step"
        if per_step and trainer.manual_optimization:
            self._skip_hooks = {"on_before_optimizer_step"}
        elif per_step:
            self._skip_hooks = {"on_train_batch_start"}
        else:
            self._skip_hooks = {"on_before_optimizer_step", "on_train_batch_start"}

    def on_before_optimizer_step(self, trainer, model, optimizer):
        self.lrs.append(trainer.current_lr)
        self.steps.append(trainer.global_step)

    def on_train_batch_start(self, trainer, model, batch, batch_idx):
        self.lrs.append(trainer.current_lr)
        self.steps.append(trainer.global_step)

    def on_train_epoch_start(self, trainer, model):
        if self.logging_interval == "epoch":
            self.lrs.append(trainer.current_lr)
            self.steps.append(trainer.global_step)

    def state_dict(self):
        return {"lrs": self.lrs, "steps": self.steps}

    def load_state_dict(self, state):
        self.lrs = list(state["lrs"])
        self.steps = list(state["steps"])


def _is_plateau(scheduler):
    try:
        from ..optim.lr_scheduler import ReduceLROnPlateau
    except ImportError:  # pragma: no cover - optim always ships it
        return type(scheduler).__name__ == "ReduceLROnPlateau"
    return isinstance(scheduler, ReduceLROnPlateau)


class LearningRateScheduler(Callback):
    """Step a learning-rate scheduler once per optimizer step or once per epoch.

    ``fit(scheduler=...)`` is a shorthand that adds one of these. ``ReduceLROnPlateau`` is stepped at
    the end of each epoch with the monitored log value. A step skipped by ``TerminateOnNaN`` does not
    advance a per-step schedule. The scheduler's state is saved in checkpoints.

    Args:
        scheduler: a scheduler from ``somanet.optim.lr_scheduler``.
        interval: ``"epoch"`` or ``"step"`` (after every optimizer step).
        frequency: step the scheduler every this many epochs or optimizer steps.
        monitor: what ``ReduceLROnPlateau`` watches; ``val_loss`` (``loss`` without validation data)
            by default.
    """

    def __init__(self, scheduler, interval="epoch", frequency=1, monitor=None):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LearningRateScheduler: interval must be 'epoch' or 'step', got {interval!r}")
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"LearningRateScheduler: frequency must be an int >= 1, got {frequency!r}")
        if not hasattr(scheduler, "step") or not hasattr(scheduler, "state_dict"):
            raise TypeError(f"LearningRateScheduler: expected a learning-rate scheduler, got "
                            f"{type(scheduler).__name__}")
        self.scheduler = scheduler
        self.interval = interval
        self.frequency = frequency
        self.monitor = monitor
        self.plateau = _is_plateau(scheduler)
        if self.plateau and interval != "epoch":
            raise ValueError("LearningRateScheduler: ReduceLROnPlateau needs interval='epoch' (it watches an "
                             "epoch's metric)")
        self._seen_step = 0

    def on_fit_start(self, trainer, model):
        if self.monitor is None:
            self.monitor = "val_loss" if trainer.val_loader is not None else "loss"
        if not trainer.resumed:
            self._seen_step = trainer.global_step
        self._skip_hooks = {"on_train_batch_end"} if self.interval == "epoch" else set()

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        # Called for every batch; the optimizer stepped if (and only if) the step count moved.
        if trainer.global_step != self._seen_step:
            self._seen_step = trainer.global_step
            if trainer.global_step % self.frequency == 0:
                self.scheduler.step()

    def on_train_epoch_end(self, trainer, model):
        if self.interval != "epoch" or (trainer.current_epoch + 1) % self.frequency:
            return
        if self.plateau:
            logs = trainer.callback_metrics
            if self.monitor not in logs:
                raise KeyError(f"ReduceLROnPlateau monitors '{self.monitor}', which is not in the logs "
                               f"({', '.join(sorted(logs))}); give LearningRateScheduler(monitor=...) or "
                               f"fit(scheduler={{'scheduler': ..., 'monitor': '<key>'}})")
            self.scheduler.step(float(logs[self.monitor]))
        else:
            self.scheduler.step()

    def state_dict(self):
        return {"scheduler": self.scheduler.state_dict(), "seen_step": self._seen_step}

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state["scheduler"])
        self._seen_step = state["seen_step"]

    @property
    def state_key(self):
        return f"LearningRateScheduler[{type(self.scheduler).__name__},{self.interval}]"


class TensorBoardLogger(Callback):
    """Write the run to TensorBoard event files: scalars, weight and gradient histograms, sample images.

    Per step: the training loss (``train/loss``) and the learning rate (``train/lr``); per epoch: every
    scalar log (``epoch/loss``, ``epoch/val_loss``, metrics) against the epoch number; every
    ``histogram_every_n_steps`` optimizer steps: a histogram of each parameter (``weights/<name>``) and
    of its gradient (``grads/<name>``); with ``log_images``, the first training batch's images when the
    inputs are image batches ``(N, C, H, W)`` with 1 or 3 channels; and the model's structure as text
    (``model``). TensorBoard's graph view needs PyTorch's tracer, which somanet does not have, so no graph
    is written. The CSV log and plots of the run directory are kept as they are.

    Needs tensorboardX: ``pip install 'somanet[tensorboard]'``. ``TensorBoard`` is the same callback
    under Keras' name.

    Args:
        log_dir: where the event files go; by default ``<run_dir>/tensorboard`` of the trainer, else
            ``runs/``.
        log_every_n_steps: write the step scalars every this many optimizer steps.
        histogram_every_n_steps: write histograms every this many optimizer steps (0: never).
        log_images: write a grid of up to ``max_images`` input images once, at the start.
        max_images: how many images ``log_images`` writes.
    """

    rank_zero_only = True

    def __init__(self, log_dir=None, log_every_n_steps=1, histogram_every_n_steps=100, log_images=True,
                 max_images=16):
        for name, value, low in (("log_every_n_steps", log_every_n_steps, 1),
                                 ("histogram_every_n_steps", histogram_every_n_steps, 0),
                                 ("max_images", max_images, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TensorBoardLogger: {name} must be an int >= {low}, got {value!r}")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.log_every_n_steps = log_every_n_steps
        self.histogram_every_n_steps = histogram_every_n_steps
        self.log_images = log_images
        self.max_images = max_images
        self.writer = None
        self._images_done = False

    def on_fit_start(self, trainer, model):
        from ..utils.tensorboard import SummaryWriter
        if self.log_dir is None:
            self.log_dir = os.path.join(trainer.run_dir, "tensorboard") if trainer.run_dir else "runs"
        self.writer = SummaryWriter(self.log_dir)
        self._images_done = not self.log_images
        self._params = list(trainer.named_parameters)
        self.writer.add_text("model", "```\n" + repr(model) + "\n```", global_step=trainer.global_step)
        skip = set()
        if not self.histogram_every_n_steps or trainer.manual_optimization:
            skip.add("on_before_optimizer_step")
        self._skip_hooks = skip

    def on_before_optimizer_step(self, trainer, model, optimizer):
        step = trainer.global_step
        if step % self.histogram_every_n_steps:
            return
        for name, p in self._params:
            self.writer.add_histogram(f"weights/{name}", p.array, global_step=step)
            if p.grad is not None and np.isfinite(p.grad.array).all():
                self.writer.add_histogram(f"grads/{name}", p.grad.array, global_step=step)

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        if not self._images_done:
            self._images_done = True
            self._write_images(batch, trainer.global_step)
        if not trainer.at_step_boundary or trainer.global_step % self.log_every_n_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        if loss is not None:
            self.writer.add_scalar("train/loss", float(loss), global_step=trainer.global_step)
        self.writer.add_scalar("train/lr", trainer.current_lr, global_step=trainer.global_step)

    def _write_images(self, batch, step):
        x = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
        arr = getattr(x, "array", x)
        if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.dtype.kind != "f":
            return
        imgs = np.asarray(arr[:self.max_images], dtype=np.float32)
        lo, hi = float(imgs.min()), float(imgs.max())
        imgs = (imgs - lo) / (hi - lo) if hi > lo else np.zeros_like(imgs)
        self.writer.add_images("inputs", imgs, global_step=step, dataformats="NCHW")

    def on_train_epoch_end(self, trainer, model):
        for key, value in trainer.callback_metrics.items():
            if np.ndim(value) == 0 and math.isfinite(float(value)):
                self.writer.add_scalar(f"epoch/{key}", float(value), global_step=trainer.current_epoch + 1)
        self.writer.flush()

    def on_fit_end(self, trainer, model):
        self._close()

    def on_exception(self, trainer, model, exception):
        self._close()

    def _close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


#: Keras' name for ``TensorBoardLogger``.
TensorBoard = TensorBoardLogger
