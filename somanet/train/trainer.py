"""``Trainer``: ``fit``, ``evaluate`` and ``predict`` for somanet models (Keras and Lightning names).

>>> trainer = Trainer()                                                   # doctest: +SKIP
>>> history = trainer.fit(model, (X_train, y_train), (X_val, y_val), epochs=10,
...                       optimizer=optim.Adam(model.parameters(), lr=1e-3),
...                       loss=nn.CrossEntropyLoss(), metrics=["accuracy"])  # doctest: +SKIP
>>> history.history["val_accuracy"][-1]                                 # doctest: +SKIP

One optimizer step per ``accumulate_grad_batches`` batches. Within such a window every batch's mean
loss is weighted by its share of the window's samples, so the accumulated gradient is exactly the
gradient of the mean loss over the whole window (for losses with mean reduction), however uneven the
batches. Everything that a continuation depends on (weights, optimizer and scheduler states, every
random state, counters, callback and metric states) goes into checkpoints, so ``fit(resume=dir)``
continues an interrupted run bit for bit, including from the middle of an epoch.
"""
import copy
import json
import os
import sys
import warnings

import numpy as np

from .. import devices
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from .callbacks import (Callback, CSVLogger, History, LearningRateMonitor, LearningRateScheduler, ModelCheckpoint,
                        TerminateOnNaN)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import as_loader, batch_size_of, loader_generators, split_batch
from .doctor import Doctor
from .metrics import MeanMetric, get_metric
from .progress import ProgressBar
from .seed import get_rng_state, seed_everything, set_rng_state

__all__ = ["Trainer", "get_loss", "get_optimizer"]

_LOSSES = {
    "cross_entropy": "CrossEntropyLoss", "crossentropy": "CrossEntropyLoss", "nll": "NLLLoss",
    "mse": "MSELoss", "l1": "L1Loss", "mae": "L1Loss", "smooth_l1": "SmoothL1Loss", "huber": "HuberLoss",
    "bce": "BCELoss", "bce_with_logits": "BCEWithLogitsLoss",
}
_OPTIMIZERS = {"sgd": ("SGD", 0.01), "adam": ("Adam", 1e-3), "adamw": ("AdamW", 1e-3),
               "rmsprop": ("RMSprop", 1e-2), "adagrad": ("Adagrad", 1e-2), "adadelta": ("Adadelta", 1.0),
               "adamax": ("Adamax", 2e-3), "nadam": ("NAdam", 2e-3), "radam": ("RAdam", 1e-3),
               "asgd": ("ASGD", 1e-2)}


def get_loss(spec):
    """A loss callable from a name (``"cross_entropy"``, ``"mse"``, ...), a dict
    ``{"name": "cross_entropy", "label_smoothing": 0.1}`` (name plus the loss module's arguments), a
    module or a function."""
    if spec is None or callable(spec):
        return spec
    kwargs = {}
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        spec = spec.get("name")
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key not in _LOSSES:
            raise ValueError(f"unknown loss {spec!r}; known losses: {', '.join(sorted(_LOSSES))}")
        from .. import nn
        return getattr(nn, _LOSSES[key])(**kwargs)
    raise TypeError(f"loss must be a name, a dict with a 'name', a loss module or a function "
                    f"(output, target) -> Tensor; got {type(spec).__name__}")


def get_optimizer(spec, params, **kwargs):
    """An optimizer from a name (``"adam"``, ``"sgd"``, ...) with keyword hyperparameters."""
    key = spec.lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; known optimizers: {', '.join(sorted(_OPTIMIZERS))}")
    from .. import optim
    name, lr = _OPTIMIZERS[key]
    kwargs.setdefault("lr", lr)
    return getattr(optim, name)(params, **kwargs)


def _scalar(value):
    if isinstance(value, Tensor):
        return float(value.array) if value.array.size == 1 else None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    return None


def _array(x):
    return x.array if isinstance(x, Tensor) else x


def _host_array(x):
    """``x``'s values as a host array (metrics and predictions are computed and returned on the CPU)."""
    return devices.to_host(_array(x))


def to_device(data, device):
    """``data`` with every Tensor in it (nested in tuples, lists and dicts) moved to ``device``; other
    values are left as they are (Lightning's ``move_data_to_device``)."""
    if isinstance(data, Tensor):
        return data.to(device)
    if isinstance(data, tuple):
        moved = [to_device(v, device) for v in data]
        return type(data)(*moved) if hasattr(data, "_fields") else tuple(moved)
    if isinstance(data, list):
        return [to_device(v, device) for v in data]
    if isinstance(data, dict):
        return type(data)((k, to_device(v, device)) for k, v in data.items())
    return data


def _distributed_context():
    """The job's ranks, when fit() runs in a somanet.distributed job of several (None otherwise)."""
    if "somanet.distributed" not in sys.modules:
        return None
    from ..distributed.training import context
    return context()


def _unwrap(model):
    if "somanet.nn.parallel.distributed" not in sys.modules:
        return model
    from ..distributed.training import unwrap
    return unwrap(model)


def _resumed_batch_idx(state, batch_idx, world):
    if world == 1 and not state.get("distributed"):
        return batch_idx
    from ..distributed.training import resumed_batch_idx
    return resumed_batch_idx(state, batch_idx, world)


def _data_loader_type():
    from ..data import DataLoader
    return DataLoader


_PRECISIONS = {"32": "32", "32-true": "32", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed",
               "16-mixed": "16-mixed", "16": "16-mixed"}


def _precision(value):
    key = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if key not in _PRECISIONS:
        raise ValueError(f"Trainer: precision must be '32', 'bf16-mixed' or '16-mixed', got {value!r}")
    return _PRECISIONS[key]


def _amp_dtype(precision):
    if precision == "32":
        return None
    from .. import amp  # noqa: F401  (fails here, not mid-fit, when bfloat16 is unavailable)
    from ..amp._lowp import F16, require_bfloat16
    return F16 if precision == "16-mixed" else require_bfloat16("Trainer(precision='bf16-mixed')")


def _doctor(value):
    if value is True:
        return Doctor()
    if value is False or value is None:
        return None
    if isinstance(value, Doctor):
        return value
    raise TypeError(f"Trainer: doctor must be True, False or a Doctor(...), got {type(value).__name__}")


class _NoAutocast:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_AUTOCAST = _NoAutocast()


_NO_EXTRAS = {}
_LOSS_TYPE_ERROR = ("training_step must return a loss Tensor that requires grad (or set automatic_optimization = "
                    "False for a step that optimizes by itself); got ")


class Trainer:
    """Runs training, evaluation and prediction loops with callbacks, metrics and checkpoints.

    Args:
        accumulate_grad_batches: batches per optimizer step (gradient accumulation).
        gradient_clip_val: clip gradients before each step: the total norm (``"norm"``) or each value
            (``"value"``) to at most this; ``None`` does not clip.
        gradient_clip_algorithm: ``"norm"`` or ``"value"``.
        run_dir: a directory gathering ``metrics.csv``, ``checkpoints/`` (best and last),
            ``summary.txt`` and ``plots/``; ``None`` writes nothing unless callbacks do.
        enable_progress_bar: add a ``ProgressBar`` (a live bar on a terminal, one line per epoch
            otherwise) unless one is given.
        terminate_on_nan: add a ``TerminateOnNaN`` unless one is given.
        seed: if given, ``fit`` calls ``seed_everything(seed)`` first (not when resuming).
        progress_stream: where the progress goes (``sys.stdout`` by default).
        plots: with a ``run_dir``, draw the loss/metric and learning-rate curves at the end of ``fit``
            (needs matplotlib: ``pip install 'somanet[plot]'``).
        precision: ``"32"`` (float32 throughout), ``"bf16-mixed"`` (forward pass and loss under
            ``autocast`` with bfloat16; needs ml_dtypes) or ``"16-mixed"`` (autocast with float16 and a
            ``GradScaler``, whose state goes into checkpoints). Parameters and optimizer states stay
            float32 in every mode; see docs/amp.md.
        doctor: ``True`` (default) adds a ``Doctor`` that diagnoses failing training (vanishing or exploding
            gradients, dead units, a learning rate too high, overfitting, NaN) and writes ``doctor.md`` to the
            ``run_dir``; a ``Doctor(...)`` instance sets its options; ``False`` turns it off. See docs/doctor.md.
        device: where to train (``"cuda"``, ``"cuda:1"``, a ``somanet.device``; PyTorch Lightning's
            ``accelerator``/``devices`` as one PyTorch device). ``fit`` moves the model there (in place,
            before the optimizer's first step, so its state is made there too) and every batch's tensors;
            the loss is computed there, metrics and ``predict``'s outputs are read back to the CPU, and
            checkpoints hold CPU arrays (they load on a machine without the device). ``None`` (default)
            leaves the model and the data where they are. See docs/gpu.md.

    Override ``training_step``, ``validation_step`` or ``predict_step`` in a subclass for models
    with unusual steps; a model that defines ``training_step(batch, batch_idx)`` (Lightning style)
    is called directly. Set ``automatic_optimization = False`` (on the trainer or the model) for a
    step that calls ``backward`` and the optimizers itself (several optimizers, GANs); during ``fit``,
    ``manual_optimization`` tells which mode is in use.
    """

    automatic_optimization = True

    def __init__(self, *, accumulate_grad_batches=1, gradient_clip_val=None, gradient_clip_algorithm="norm",
                 run_dir=None, enable_progress_bar=True, terminate_on_nan=True, seed=None, progress_stream=None,
                 plots=True, precision="32", doctor=True, device=None):
        if isinstance(accumulate_grad_batches, bool) or not isinstance(accumulate_grad_batches, int) \
                or accumulate_grad_batches < 1:
            raise ValueError(f"Trainer: accumulate_grad_batches must be an int >= 1, got {accumulate_grad_batches!r}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(f"Trainer: gradient_clip_algorithm must be 'norm' or 'value', "
                             f"got {gradient_clip_algorithm!r}")
        if gradient_clip_val is not None and not gradient_clip_val > 0:
            raise ValueError(f"Trainer: gradient_clip_val must be positive or None, got {gradient_clip_val!r}")
        self.accumulate_grad_batches = accumulate_grad_batches
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.run_dir = None if run_dir is None else os.fspath(run_dir)
        self.enable_progress_bar = enable_progress_bar
        self.terminate_on_nan = terminate_on_nan
        self.seed = seed
        self.device = None if device is None else devices.require(device, "Trainer")
        self.progress_stream = progress_stream
        self.plots = plots
        self.precision = _precision(precision)
        self.doctor = _doctor(doctor)
        self._amp_dtype = _amp_dtype(self.precision)
        #: The ``GradScaler`` of a "16-mixed" fit (None otherwise): a step that optimizes by itself uses it.
        self.scaler = None
        self.model = None
        self.optimizers = []
        self.lr_schedulers = []
        self.callbacks = []
        self.loss_fn = None
        self.metrics = []
        self.history = None
        self.callback_metrics = {}
        self.current_epoch = 0
        self.global_step = 0
        self.batch_idx = 0
        self.max_epochs = 0
        self.max_steps = None
        self.epoch_done = False
        self.should_stop = False
        self.stop_reason = None
        self.skip_optimizer_step = False
        self.at_step_boundary = True
        self.resumed = False
        self.interrupted = False
        self.last_loss = None
        self.last_batch_size = 0
        self.last_grad_norm = None
        self.num_training_batches = None
        self.named_parameters = []
        self.manual_optimization = False
        self.config = {}
        self.train_loader = None
        self.val_loader = None
        self._dist = None  # a somanet.distributed.training.DistributedContext during fit() in a job of several ranks

    # ================================================================== public API
    @property
    def is_global_zero(self):
        """Whether this process writes (logs, checkpoints, plots): rank 0 of a distributed job, or the
        only process."""
        return self._dist is None or self._dist.is_writer

    @property
    def optimizer(self):
        """The first (usually only) optimizer of the current fit."""
        return self.optimizers[0] if self.optimizers else None

    @property
    def current_lr(self):
        """The learning rate of the first param group of the first optimizer."""
        return float(self.optimizers[0].param_groups[0]["lr"]) if self.optimizers else float("nan")

    def fit(self, model, train_data, val_data=None, *, epochs=1, optimizer=None, loss=None, metrics=None,
            callbacks=None, scheduler=None, batch_size=32, shuffle=True, max_steps=None, resume=None, config=None):
        """Train ``model``; returns the ``History`` (``history.history`` is a dict of lists).

        Args:
            model: a ``Module``.
            train_data: a DataLoader, a Dataset, or arrays ``(X, y)``.
            val_data: the same kinds, evaluated at the end of every epoch (logged as ``val_*``).
            epochs: the total number of epochs (a resumed run continues up to it).
            optimizer: an optimizer over ``model.parameters()``, a name (``"adam"``, ``"sgd"``), or a
                list of optimizers for a step with ``automatic_optimization = False``; Adam by default.
            loss: a loss module or function ``(output, target) -> Tensor``, or a name
                (``"cross_entropy"``, ``"mse"``, ...).
            metrics: names (``"accuracy"``, ``"top5_accuracy"``, ``"f1"``, ``"r2"``, ...) or ``Metric``
                objects, computed on training and validation data.
            callbacks: a list of ``Callback``.
            scheduler: a learning-rate scheduler stepped once per epoch, or a dict
                ``{"scheduler": s, "interval": "epoch" | "step", "frequency": 1, "monitor": "val_loss"}``
                (``ReduceLROnPlateau`` is stepped with the monitored value), or a list of these.
            batch_size: the batch size when the data is a Dataset or arrays.
            shuffle: shuffle the training data every epoch when it is a Dataset or arrays.
            max_steps: stop after this many optimizer steps (possibly mid-epoch).
            resume: a checkpoint directory, or a run directory (its ``checkpoints/last``), to continue.
            config: the run config (JSON-friendly dict) stored with checkpoints.
        """
        from ..nn.modules.module import Module
        if not isinstance(model, Module):
            raise TypeError(f"fit(): model must be a somanet nn.Module, got {type(model).__name__}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit(): epochs must be a non-negative int, got {epochs!r}")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 0):
            raise ValueError(f"fit(): max_steps must be a non-negative int or None, got {max_steps!r}")
        checkpoint = load_checkpoint(resume) if resume is not None else None
        if self.seed is not None and checkpoint is None:
            seed_everything(self.seed)

        self.model = model
        if self.device is not None:
            model.to(self.device)  # in place: an optimizer over its parameters keeps them
        self.max_epochs = epochs
        self.max_steps = max_steps
        self.loss_fn = get_loss(loss)
        self.metrics = [get_metric(m) for m in (metrics or [])]
        self._check_metric_names()
        self.val_metrics = [copy.deepcopy(m) for m in self.metrics]
        dtype = self._model_dtype(model)
        self._dist = _distributed_context()
        if self._dist is not None and not isinstance(train_data, _data_loader_type()):
            # Each rank trains on its share of every epoch (a DistributedSampler).
            self.train_loader = self._dist.loader(train_data, batch_size=batch_size, shuffle=shuffle, dtype=dtype,
                                                  what="fit(): train_data", checkpoint=checkpoint)
        else:
            self.train_loader = as_loader(train_data, batch_size=batch_size, shuffle=shuffle, dtype=dtype,
                                          what="fit(): train_data")
        self.val_loader = None if val_data is None else as_loader(val_data, batch_size=batch_size, shuffle=False,
                                                                 dtype=dtype, what="fit(): val_data")
        try:
            self.num_training_batches = len(self.train_loader)
        except TypeError:
            self.num_training_batches = None
        if self.num_training_batches == 0:
            raise ValueError(f"fit(): train_data gives no batches ({len(self.train_loader.dataset)} samples, "
                             f"batch_size {self.train_loader.batch_size}, drop_last {self.train_loader.drop_last})")
        self._generators = loader_generators(self.train_loader) + (
            loader_generators(self.val_loader) if self.val_loader is not None else [])
        self.optimizers = self._optimizers(optimizer, model)
        if self.precision == "16-mixed":
            from ..amp import GradScaler
            self.scaler = GradScaler("cpu")
        else:
            self.scaler = None
        scheduler_callbacks = self._scheduler_callbacks(scheduler)
        self.named_parameters = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.manual_optimization = not (self.automatic_optimization
                                        and getattr(model, "automatic_optimization", True))
        if self.manual_optimization and self.accumulate_grad_batches > 1:
            raise ValueError("fit(): accumulate_grad_batches > 1 needs automatic optimization; a step that "
                             "optimizes by itself accumulates as it likes")
        if self.manual_optimization and self.gradient_clip_val is not None:
            raise ValueError("fit(): gradient_clip_val needs automatic optimization; clip inside the step")
        if callable(getattr(model, "training_step", None)):
            object.__setattr__(model, "trainer", self)
        if config is not None:
            # Stored as JSON with every checkpoint: anything JSON cannot hold is kept as its repr.
            self.config = json.loads(json.dumps(dict(config), default=repr))
        elif checkpoint is not None:
            self.config = dict(checkpoint.config)
        else:
            self.config = self._default_config(model, epochs, batch_size)
        self.callbacks = self._assemble_callbacks(callbacks, scheduler_callbacks)
        self.lr_schedulers = [cb for cb in self.callbacks if isinstance(cb, LearningRateScheduler)]
        self._hook_cache = {}
        self._default_step = (type(self).training_step is Trainer.training_step
                              and not callable(getattr(model, "training_step", None)))
        self._first_batch_pending = True
        self.history = next(cb for cb in self.callbacks if isinstance(cb, History))

        self.current_epoch = 0
        self.global_step = 0
        self.batch_idx = 0
        self.epoch_done = False
        self.should_stop = False
        self.stop_reason = None
        self.interrupted = False
        self.resumed = checkpoint is not None
        self.callback_metrics = {}
        self._reset_running()
        resume_rng = None
        if checkpoint is not None:
            resume_rng = self._restore(checkpoint)
        if self.run_dir is not None and self.is_global_zero:
            os.makedirs(self.run_dir, exist_ok=True)
            self._write_config()
            if not os.path.exists(os.path.join(self.run_dir, "summary.txt")):
                self._write_summary()

        try:
            self._fit_loop(resume_rng)
        except KeyboardInterrupt as exc:
            self.interrupted = True
            self._call("on_exception", exc)
            raise
        except BaseException as exc:
            self._call("on_exception", exc)
            raise
        if self.run_dir is not None and self.plots and self.is_global_zero:
            self._write_plots()
        return self.history

    def evaluate(self, model, data, *, loss=None, metrics=None, batch_size=32):
        """Loss and metrics of ``model`` on ``data``; returns a dict like ``{"loss": ..., "accuracy": ...}``.

        ``loss`` and ``metrics`` default to those of the last ``fit``. Per-class metrics and the
        confusion matrix come back as arrays.
        """
        loss_fn = get_loss(loss) if loss is not None else self.loss_fn
        metric_objs = ([get_metric(m) for m in metrics] if metrics is not None
                       else [copy.deepcopy(m) for m in self.metrics])
        if self.device is not None:
            model.to(self.device)
        loader = as_loader(data, batch_size=batch_size, shuffle=False, dtype=self._model_dtype(model),
                           what="evaluate(): data")
        saved_loss, saved_model = self.loss_fn, self.model
        self.loss_fn, self.model = loss_fn, model
        try:
            return self._evaluate_loop(model, loader, metric_objs, prefix="")
        finally:
            self.loss_fn, self.model = saved_loss, saved_model

    def predict(self, model, data, *, batch_size=32):
        """``model``'s outputs on ``data`` (inputs only, or ``(X, y)`` whose targets are ignored),
        concatenated over batches as a NumPy array (a tuple of arrays for several outputs)."""
        if self.device is not None:
            model.to(self.device)
        loader = as_loader(data, batch_size=batch_size, shuffle=False, dtype=self._model_dtype(model),
                           what="predict(): data")
        was_training = model.training
        model.eval()
        outputs = []
        try:
            with grad_mode.no_grad():
                for i, batch in enumerate(loader):
                    if self.device is not None:
                        batch = to_device(batch, self.device)
                    with self._autocast():
                        out = self.predict_step(model, batch, i)
                    outputs.append(tuple(_host_array(o) for o in out) if isinstance(out, tuple) else _host_array(out))
        finally:
            model.train(was_training)
        if not outputs:
            return np.empty((0,), dtype=self._model_dtype(model))
        if isinstance(outputs[0], tuple):
            return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs))
        return np.concatenate(outputs, axis=0)

    # ------------------------------------------------------------------ overridable steps
    def training_step(self, model, batch, batch_idx):
        """One training batch: returns the loss Tensor, or a dict with ``loss`` and optionally
        ``output`` and ``target`` (for metrics) and extra scalars to log.

        The default runs ``model(inputs)`` and the loss on ``(output, target)``; a model with its own
        ``training_step(batch, batch_idx)`` is called instead.
        """
        if callable(getattr(model, "training_step", None)):
            return model.training_step(batch, batch_idx)
        return self._supervised_step(model, batch, "training_step")

    def validation_step(self, model, batch, batch_idx):
        """One validation batch; same contract as ``training_step`` (runs under ``no_grad``)."""
        if callable(getattr(model, "validation_step", None)):
            return model.validation_step(batch, batch_idx)
        return self._supervised_step(model, batch, "validation_step")

    def predict_step(self, model, batch, batch_idx):
        """One prediction batch: the model's output on the batch's inputs."""
        if callable(getattr(model, "predict_step", None)):
            return model.predict_step(batch, batch_idx)
        x, _ = split_batch(batch, "predict_step")
        return model(x)

    def _supervised_step(self, model, batch, owner):
        loss, output, target = self._supervised_parts(model, batch, owner)
        if loss is None:
            return {"output": output, "target": target}
        return {"loss": loss, "output": output, "target": target}

    def _supervised_parts(self, model, batch, owner):
        if type(batch) in (list, tuple) and len(batch) == 2:
            x, y = batch
        else:
            x, y = split_batch(batch, owner)
        output = model(x)
        if self.loss_fn is None:
            if owner == "validation_step":
                return None, output, y
            raise ValueError(f"{owner}: no loss was given; pass loss= to fit()/evaluate() or override {owner}")
        if y is None:
            raise ValueError(f"{owner}: the batch has no targets; supervised training needs (inputs, targets) "
                             f"batches")
        return self.loss_fn(output, y), output, y

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path):
        """Write the full training state to the checkpoint directory ``path``.

        Valid between optimizer steps (callbacks are called there); ``fit(resume=path)`` continues
        from it exactly.
        """
        if not self.at_step_boundary:
            raise RuntimeError("save_checkpoint(): called in the middle of a gradient-accumulation window; "
                               "checkpoints are only consistent between optimizer steps")
        if not self.is_global_zero:
            return path  # in a distributed job only rank 0 writes; the ranks' states are the same
        # A DistributedDataParallel model is saved unwrapped: the checkpoint loads into the plain model.
        return save_checkpoint(path, _unwrap(self.model), self._state_dict(), self.config)

    def _state_dict(self):
        mid_epoch = not self.epoch_done and self.batch_idx > 0
        state = {
            "epoch": self.current_epoch,
            "epoch_done": self.epoch_done,
            "batch_idx": self.batch_idx,
            "global_step": self.global_step,
            "max_epochs": self.max_epochs,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_keys().items()},
            "rng": get_rng_state(self._generators),
            "epoch_start_rng": self._epoch_start_rng if mid_epoch else None,
            "running": self._running_state() if mid_epoch else None,
            "callback_metrics": {k: v for k, v in self.callback_metrics.items() if np.ndim(v) == 0},
        }
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        if self._dist is not None:
            state["distributed"] = self._dist.state()
        return state

    def _restore(self, ckpt):
        state = ckpt.trainer_state
        where = ckpt.path
        try:
            ckpt.load_model(_unwrap(self.model))
            if len(state["optimizers"]) != len(self.optimizers):
                raise CheckpointError(f"{where}: holds {len(state['optimizers'])} optimizer state(s) but fit() "
                                      f"was given {len(self.optimizers)} optimizer(s)")
            for opt, s in zip(self.optimizers, state["optimizers"]):
                opt.load_state_dict(s)
            if self.scaler is not None and state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
            saved = state["callbacks"]
            for key, cb in self._callback_keys().items():
                if key in saved:
                    cb.load_state_dict(saved[key])
                elif isinstance(cb, LearningRateScheduler):
                    kept = ", ".join(k for k in saved if k.startswith("LearningRateScheduler")) or "none"
                    raise CheckpointError(f"{where}: holds no state for the scheduler {key}; resume with the "
                                          f"schedulers of the interrupted run (saved: {kept})")
                elif type(cb).state_dict is not Callback.state_dict:
                    warnings.warn(f"fit(resume=...): the checkpoint {where} has no state for the callback {key}; "
                                  f"it starts fresh", stacklevel=3)
            self.current_epoch = state["epoch"]
            self.global_step = state["global_step"]
            # Saved on another number of ranks: continue from the same share of the epoch.
            world = 1 if self._dist is None else self._dist.world
            self.batch_idx = _resumed_batch_idx(state, state["batch_idx"], world)
            self.epoch_done = state["epoch_done"]
            self.callback_metrics = dict(state.get("callback_metrics") or {})
            if state.get("running") is not None:
                self._load_running_state(state["running"])
        except KeyError as exc:
            raise CheckpointError(f"{where}/checkpoint.json is corrupt: its training state lacks {exc}") from None
        if self.epoch_done:
            self.current_epoch += 1
            self.batch_idx = 0
            self.epoch_done = False
        if len(state["rng"].get("generators", [])) != len(self._generators):
            raise CheckpointError(f"{where}: the data order was saved for {len(state['rng']['generators'])} "
                                  f"generator(s) but the data given to fit() uses {len(self._generators)}; "
                                  f"resume with data built the same way (same loaders, same generators)")
        return state

    # ================================================================== the loop
    def _fit_loop(self, resume_state):
        self._call("on_fit_start")
        # Per-batch hooks are looked up once, after on_fit_start (where a callback may declare, in
        # _skip_hooks, the hooks it does not need in this run), so each batch pays only for real work.
        self._hook_cache = {}
        self._batch_start_hooks = self._hooks("on_train_batch_start")
        self._batch_end_hooks = self._hooks("on_train_batch_end")
        self._before_step_hooks = self._hooks("on_before_optimizer_step")
        if resume_state is not None and not (self.batch_idx > 0):
            set_rng_state(resume_state["rng"], self._generators)
        while self.current_epoch < self.max_epochs and not self.should_stop:
            mid = resume_state if (resume_state is not None and self.batch_idx > 0) else None
            resume_state = None
            if self.max_steps is not None and self.global_step >= self.max_steps:
                self._stop_for_max_steps()
                break
            self._train_epoch(mid)
            if not self.epoch_done:
                break
            self.current_epoch += 1
            self.epoch_done = False
            self.batch_idx = 0
        self._call("on_train_end")
        self._call("on_fit_end")

    def _stop_for_max_steps(self):
        self.should_stop = True
        self.stop_reason = f"max_steps={self.max_steps} reached"

    def _train_epoch(self, resume_state):
        model = self.model
        gens = self._generators
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler: this epoch's permutation, the same on every rank
            sampler.set_epoch(self.current_epoch)
        self._call("on_train_epoch_start")
        if resume_state is not None:
            # Rebuild this epoch's data order from the random state it started with, skip the
            # batches already trained on, then continue from the saved random state.
            self._epoch_start_rng = resume_state["epoch_start_rng"]
            set_rng_state(self._epoch_start_rng, gens)
            iterator = iter(self.train_loader)
            for _ in range(self.batch_idx):
                next(iterator)
            set_rng_state(resume_state["rng"], gens)
        else:
            self.batch_idx = 0
            self._reset_running()
            self._epoch_start_rng = get_rng_state(gens)
            iterator = iter(self.train_loader)
        model.train()
        k = self.accumulate_grad_batches
        n_batches = self.num_training_batches
        exhausted = False
        while True:
            if n_batches is not None and self.batch_idx >= n_batches:
                exhausted = True
                break
            if self.max_steps is not None and self.global_step >= self.max_steps:
                self._stop_for_max_steps()
                break
            window = []
            for _ in range(k):
                try:
                    window.append(next(iterator))
                except StopIteration:
                    exhausted = True
                    break
            if window:
                self._train_window(window)
            if exhausted or self.should_stop:
                break
        if exhausted:
            self._end_epoch()

    def _train_window(self, window):
        """Train on ``window``: the ``accumulate_grad_batches`` batches of one optimizer step."""
        model = self.model
        sizes = [batch_size_of(b) for b in window] if len(window) > 1 else (batch_size_of(window[0]),)
        total = sum(sizes)
        last = len(window) - 1
        window_loss = 0.0
        manual = self.manual_optimization
        batch_start, batch_end = self._batch_start_hooks, self._batch_end_hooks
        metrics = self.metrics
        for j, batch in enumerate(window):
            batch_idx = self.batch_idx
            if self.device is not None:
                batch = to_device(batch, self.device)
            if batch_start:
                self.at_step_boundary = j == 0
                for hook in batch_start:
                    hook(self, model, batch, batch_idx)
            self.at_step_boundary = False
            if self._dist is not None:  # reduce gradients once per optimizer step (no_sync before the last batch)
                self._dist.sync_gradients(model, j == last)
            if self._first_batch_pending:
                self._first_batch_pending = False
                self._check_first_batch(batch)
            with self._autocast():
                if self._default_step:
                    # The common case, without building and unpacking a dict per batch.
                    loss, output, target = self._supervised_parts(model, batch, "training_step")
                    extras = _NO_EXTRAS
                else:
                    loss, output, target, extras = self._unpack(self.training_step(model, batch, batch_idx),
                                                                "training_step")
            n = sizes[j]
            if manual:
                value = _scalar(loss) if loss is not None else float("nan")
            else:
                if not isinstance(loss, Tensor) or not loss.requires_grad:
                    raise TypeError(_LOSS_TYPE_ERROR + type(loss).__name__
                                    + (" without grad" if isinstance(loss, Tensor) else ""))
                weighted = loss if last == 0 else loss * (n / total)
                (weighted if self.scaler is None else self.scaler.scale(weighted)).backward()
                value = float(loss.array)
            window_loss += value * n
            self._loss_sum += value * n
            self._loss_count += n
            if metrics and output is not None and target is not None:
                out_arr, tgt_arr = _host_array(output), _host_array(target)
                for m in metrics:
                    m.update(out_arr, tgt_arr)
            if extras:
                for key, v in extras.items():
                    self._extras.setdefault(key, MeanMetric(key)).update(v, n)
            self.last_batch_size = n
            if j == last:
                self.last_loss = window_loss / total if total else value
                if manual:
                    self.global_step += 1
                else:
                    self._optimizer_step()
                self.at_step_boundary = True
            self.batch_idx = batch_idx + 1
            if batch_end:
                outputs = {"loss": value, **extras} if extras else {"loss": value}
                for hook in batch_end:
                    hook(self, model, outputs, batch, batch_idx)

    def _optimizer_step(self):
        self.skip_optimizer_step = False
        optimizer = self.optimizers[0]
        scaler = self.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)  # hooks and clipping see the true gradients
        for hook in self._before_step_hooks:
            hook(self, self.model, optimizer)
        if not self.skip_optimizer_step:
            if self.gradient_clip_val is not None:
                self._clip_gradients()
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)  # skipped when a gradient overflowed float16
            self.global_step += 1
        if scaler is not None:
            scaler.update()
        optimizer.zero_grad()

    def _autocast(self):
        """The autocast region of a forward pass and its loss under ``precision`` (none for "32")."""
        if self._amp_dtype is None:
            return _NO_AUTOCAST
        from ..amp import autocast
        return autocast("cpu", dtype=self._amp_dtype)

    def _clip_gradients(self):
        from ..nn.utils import clip_grad_norm_, clip_grad_value_
        params = [p for _, p in self.named_parameters]
        if self.gradient_clip_algorithm == "norm":
            norm = clip_grad_norm_(params, self.gradient_clip_val)
            self.last_grad_norm = _scalar(norm)
        else:
            clip_grad_value_(params, self.gradient_clip_val)

    def _end_epoch(self):
        logs = self.running_logs(include_arrays=True)
        if self._dist is not None:  # every rank decides (early stopping, plateaus) on the same numbers
            logs = self._dist.average_logs(logs, self._loss_count)
        lr = self.current_lr
        if self.val_loader is not None:
            self.callback_metrics = logs
            self._call("on_validation_start")
            val = self._evaluate_loop(self.model, self.val_loader, self.val_metrics, prefix="val_")
            if self._dist is not None:
                val = self._dist.average_logs(val, 1)
            logs.update(val)
            self.callback_metrics = logs
            self._call("on_validation_end")
            self.model.train()
        logs["lr"] = lr
        for opt_i, opt in enumerate(self.optimizers):
            if len(opt.param_groups) > 1 or opt_i > 0:
                for g_i, group in enumerate(opt.param_groups):
                    logs[f"lr-opt{opt_i}-group{g_i}" if opt_i else f"lr-group{g_i}"] = float(group["lr"])
        self.callback_metrics = logs
        self.epoch_done = True
        self._call("on_train_epoch_end")

    def _evaluate_loop(self, model, loader, metrics, prefix):
        for m in metrics:
            m.reset()
        loss_sum, count = 0.0, 0
        extras = {}
        was_training = model.training
        model.eval()
        try:
            with grad_mode.no_grad():
                for i, batch in enumerate(loader):
                    if self.device is not None:
                        batch = to_device(batch, self.device)
                    with self._autocast():
                        out = self.validation_step(model, batch, i)
                    loss, output, target, more = self._unpack(out, "validation_step")
                    n = batch_size_of(batch)
                    if loss is not None:
                        loss_sum += _scalar(loss) * n
                        count += n
                    if output is not None and target is not None:
                        out_arr, tgt_arr = _host_array(output), _host_array(target)
                        for m in metrics:
                            m.update(out_arr, tgt_arr)
                    for key, v in more.items():
                        extras.setdefault(key, MeanMetric(key)).update(v, n)
        finally:
            model.train(was_training)
        logs = {}
        if count:
            logs[prefix + "loss"] = loss_sum / count
        for m in metrics:
            logs[prefix + m.name] = m.compute()
        for key, m in extras.items():
            logs[prefix + key] = m.compute()
        return logs

    # ------------------------------------------------------------------ running epoch values
    def _reset_running(self):
        self._loss_sum = 0.0
        self._loss_count = 0
        self._extras = {}
        self._epoch_start_rng = None
        for m in self.metrics:
            m.reset()

    @property
    def epoch_samples(self):
        """Samples trained on so far in the current epoch."""
        return self._loss_count

    def running_logs(self, include_arrays=False):
        """The current epoch's training logs so far: ``loss``, metrics and extra step outputs."""
        logs = {"loss": self._loss_sum / self._loss_count if self._loss_count else float("nan")}
        for m in self.metrics:
            value = m.compute()
            if include_arrays or np.ndim(value) == 0:
                logs[m.name] = value
        for key, m in self._extras.items():
            logs[key] = m.compute()
        return logs

    def _running_state(self):
        return {"loss_sum": self._loss_sum, "loss_count": self._loss_count,
                "metrics": [m.state_dict() for m in self.metrics],
                "extras": {k: m.state_dict() for k, m in self._extras.items()}}

    def _load_running_state(self, state):
        self._loss_sum = state["loss_sum"]
        self._loss_count = state["loss_count"]
        if len(state["metrics"]) != len(self.metrics):
            raise CheckpointError(f"the checkpoint holds {len(state['metrics'])} metric state(s) but fit() was "
                                  f"given {len(self.metrics)} metric(s); resume with the same metrics")
        for m, s in zip(self.metrics, state["metrics"]):
            m.load_state_dict(s)
        self._extras = {}
        for k, s in state["extras"].items():
            self._extras[k] = MeanMetric(k)
            self._extras[k].load_state_dict(s)

    # ------------------------------------------------------------------ helpers
    def _unpack(self, out, owner):
        if isinstance(out, Tensor):
            return out, None, None, {}
        if isinstance(out, dict):
            if "loss" not in out and owner == "training_step":
                raise ValueError(f"{owner} returned a dict without 'loss' (keys: {sorted(out)})")
            extras = {}
            for key, v in out.items():
                if key in ("loss", "output", "target", "preds"):
                    continue
                s = _scalar(v)
                if s is not None:
                    extras[key] = s
            return out.get("loss"), out.get("output", out.get("preds")), out.get("target"), extras
        if out is None and owner != "training_step":
            return None, None, None, {}
        raise TypeError(f"{owner} must return a loss Tensor or a dict with 'loss'; got {type(out).__name__}")

    def _check_metric_names(self):
        names = [m.name for m in self.metrics]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"fit(): two metrics log under the same name {dup}; give one a name=")
        if "loss" in names or "lr" in names:
            raise ValueError("fit(): a metric cannot be named 'loss' or 'lr' (those keys are the trainer's)")

    @staticmethod
    def _model_dtype(model):
        for p in model.parameters():
            if p.array.dtype.kind == "f":
                return p.array.dtype
        return np.dtype(np.float32)

    def _check_first_batch(self, batch):
        x = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
        arr = _array(x)
        want = self._model_dtype(self.model)
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.dtype != want:
            raise TypeError(f"fit(): the training inputs are {arr.dtype} but the model's parameters are {want}; "
                            f"convert the data (e.g. X.astype(np.{want})) or the model (model.to({want.name})) "
                            f"so that no silent {arr.dtype} computation happens")

    def _optimizers(self, optimizer, model):
        if optimizer is None:
            optimizer = "adam"
        if isinstance(optimizer, str):
            optimizer = get_optimizer(optimizer, model.parameters())
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        for opt in optimizers:
            if not (hasattr(opt, "step") and hasattr(opt, "zero_grad") and hasattr(opt, "param_groups")):
                raise TypeError(f"fit(): optimizer must be a somanet optimizer (with step, zero_grad and "
                                f"param_groups), got {type(opt).__name__}")
        if len(optimizers) > 1 and self.automatic_optimization and getattr(model, "automatic_optimization", True):
            raise ValueError(f"fit(): {len(optimizers)} optimizers need a step that optimizes by itself; set "
                             f"automatic_optimization = False and override training_step")
        return optimizers

    def _scheduler_callbacks(self, scheduler):
        if scheduler is None:
            return []
        items = scheduler if isinstance(scheduler, (list, tuple)) else [scheduler]
        out = []
        for item in items:
            if isinstance(item, LearningRateScheduler):
                out.append(item)
                continue
            cfg = dict(item) if isinstance(item, dict) else {"scheduler": item}
            unknown = set(cfg) - {"scheduler", "interval", "frequency", "monitor"}
            if unknown or "scheduler" not in cfg:
                raise ValueError(f"fit(): a scheduler config has the keys scheduler, interval, frequency and "
                                 f"monitor; got {sorted(cfg)}")
            if cfg.get("interval", "epoch") not in ("epoch", "step"):
                raise ValueError(f"fit(): scheduler interval must be 'epoch' or 'step', got {cfg['interval']!r}")
            out.append(LearningRateScheduler(**cfg))
        return out

    def _assemble_callbacks(self, callbacks, schedulers=()):
        given = list(callbacks or [])
        for cb in given:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit(): callbacks must be Callback instances, got {type(cb).__name__}")
        history = next((cb for cb in given if isinstance(cb, History)), None) or History()
        others = [cb for cb in given if not isinstance(cb, (History, ModelCheckpoint))] + list(schedulers)
        checkpoints = [cb for cb in given if isinstance(cb, ModelCheckpoint)]
        if self.terminate_on_nan and not any(isinstance(cb, TerminateOnNaN) for cb in given):
            others.append(TerminateOnNaN())
        if self.doctor is not None and not any(isinstance(cb, Doctor) for cb in given):
            others.append(self.doctor)
        if self.run_dir is not None:
            if not any(isinstance(cb, LearningRateMonitor) for cb in given):
                others.append(LearningRateMonitor())
            if not any(isinstance(cb, CSVLogger) for cb in given):
                others.append(CSVLogger())
            if not checkpoints:
                checkpoints.append(ModelCheckpoint(monitor="val_loss" if self.val_loader is not None else "loss"))
        if self.enable_progress_bar and not any(isinstance(cb, ProgressBar) for cb in given):
            others.append(ProgressBar(stream=self.progress_stream))
        if not self.is_global_zero:
            # Only rank 0 writes: checkpoints, CSV logs and the progress bar stay there.
            others = [cb for cb in others if not isinstance(cb, (CSVLogger, ProgressBar))
                      and not getattr(cb, "rank_zero_only", False)]
            checkpoints = []
        # Checkpoints go last so that what they save includes every other callback's epoch update.
        return [history] + others + checkpoints

    def _callback_keys(self):
        keys = {}
        for cb in self.callbacks:
            key = cb.state_key
            n = 2
            while key in keys:
                key = f"{cb.state_key}#{n}"
                n += 1
            keys[key] = cb
        return keys

    def _hooks(self, name):
        hooks = self._hook_cache.get(name)
        if hooks is None:
            base = getattr(Callback, name)
            hooks = [getattr(cb, name) for cb in self.callbacks
                     if (name in vars(cb) or getattr(type(cb), name) is not base)
                     and name not in getattr(cb, "_skip_hooks", ())]
            self._hook_cache[name] = hooks
        return hooks

    def _call(self, name, *args):
        for hook in self._hooks(name):
            hook(self, self.model, *args)

    def _default_config(self, model, epochs, batch_size):
        config = {"model": type(model).__name__, "epochs": epochs, "batch_size": batch_size,
                  "optimizers": [type(o).__name__ for o in getattr(self, "optimizers", [])]}
        if self.precision != "32":
            config["precision"] = self.precision
        return config

    # ------------------------------------------------------------------ run directory
    def _write_config(self):
        from ._io import atomic_write_text
        atomic_write_text(os.path.join(self.run_dir, "config.json"),
                          json.dumps(self.config, indent=2, sort_keys=False) + "\n")

    def _sample_shape(self):
        dataset = getattr(self.train_loader, "dataset", None)
        if dataset is None:
            return None, None
        state = get_rng_state(self._generators)
        try:
            sample = dataset[0]
        except Exception:
            return None, None
        finally:
            # Reading a sample may draw augmentation randomness; the run must not see it.
            set_rng_state(state, self._generators)
        x = sample[0] if isinstance(sample, (list, tuple)) else sample
        arr = _array(x)
        if not isinstance(arr, np.ndarray):
            return None, None
        return tuple(arr.shape), arr.dtype

    def _write_summary(self):
        from ._io import atomic_write_text
        from .summary import summary
        shape, dtype = self._sample_shape()
        if shape is None:
            return
        state = get_rng_state(self._generators)
        try:
            text = str(summary(_unwrap(self.model), shape, dtype=dtype))
        except Exception as exc:  # a summary must never stop training
            text = f"summary unavailable: {type(exc).__name__}: {exc}\n"
        finally:
            set_rng_state(state, self._generators)
        atomic_write_text(os.path.join(self.run_dir, "summary.txt"), text + "\n")

    def _write_plots(self):
        try:
            from .plots import plot_history, plot_lr
        except ImportError as exc:
            print(f"plots skipped: {exc}", file=sys.stderr)
            return
        plots = os.path.join(self.run_dir, "plots")
        try:
            if self.history.history:
                plot_history(self.history.history, os.path.join(plots, "history.png"))
            monitor = next((cb for cb in self.callbacks if isinstance(cb, LearningRateMonitor)), None)
            if monitor is not None and monitor.lrs:
                plot_lr(monitor.steps, monitor.lrs, os.path.join(plots, "lr.png"))
        except ImportError as exc:
            print(f"plots skipped: {exc}", file=sys.stderr)
