"""The training system: ``Trainer`` (fit / evaluate / predict), callbacks, metrics, checkpoints with
exact resume, model summary, learning-rate finder and plots.

>>> from somanet.train import Trainer, EarlyStopping
>>> trainer = Trainer(run_dir="runs/digits")                              # doctest: +SKIP
>>> stop = EarlyStopping("val_loss", patience=3, restore_best_weights=True)  # doctest: +SKIP
>>> history = trainer.fit(model, train_set, val_set, epochs=20, optimizer=opt,
...                       loss="cross_entropy", metrics=["accuracy"], callbacks=[stop])  # doctest: +SKIP

tqdm (progress bars) and safetensors (checkpoints) come with ``pip install 'somanet[train]'``;
matplotlib (plots) with ``somanet[plot]``. They are imported only when used.
"""
from .trainer import Trainer, get_loss, get_optimizer
from .callbacks import (Callback, LambdaCallback, History, EarlyStopping, ModelCheckpoint, TerminateOnNaN,
                        CSVLogger, LearningRateMonitor, LearningRateScheduler, TensorBoardLogger, TensorBoard)
from .doctor import Doctor, Finding
from .progress import ProgressBar
from .metrics import (Metric, Accuracy, Precision, Recall, F1Score, ConfusionMatrix, MeanSquaredError,
                      MeanAbsoluteError, R2Score, Perplexity, MeanMetric, get_metric)
from .checkpoint import (CheckpointError, Checkpoint, save_checkpoint, load_checkpoint, save_weights,
                         load_weights)
from .seed import seed_everything, get_rng_state, set_rng_state
from .summary import summary, ModelSummary
from .lr_finder import lr_find, LRFinderResult
from .recipe import Recipe, ConfigError
from . import plots

__all__ = ["Trainer", "get_loss", "get_optimizer", "Callback", "LambdaCallback", "History", "EarlyStopping",
           "ModelCheckpoint", "TerminateOnNaN", "CSVLogger", "LearningRateMonitor", "LearningRateScheduler",
           "ProgressBar", "Metric", "Accuracy", "Precision", "Recall", "F1Score", "ConfusionMatrix",
           "MeanSquaredError", "MeanAbsoluteError", "R2Score", "Perplexity", "MeanMetric", "get_metric",
           "CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "save_weights", "load_weights",
           "seed_everything", "get_rng_state", "set_rng_state", "summary", "ModelSummary", "lr_find",
           "LRFinderResult", "Recipe", "ConfigError", "plots", "TensorBoardLogger", "TensorBoard", "Doctor", "Finding"]
