"""Progress display for ``fit``: a live tqdm bar on a terminal, one line per epoch otherwise.

On a terminal the bar shows the running loss, the training metrics and samples per second, and at
the end of the epoch the validation metrics. When the output is not a terminal (a log file, a pipe,
a CI job) exactly one line is printed per epoch, Keras style::

    Epoch 3/20 - 45/45 - 0.41s - 3490 samples/s - loss: 0.1532 - accuracy: 0.9576 - val_loss: 0.1311 - ...
"""
import sys
import time
import warnings

import numpy as np

from .callbacks import Callback

__all__ = ["ProgressBar", "format_logs"]


def _fmt(value):
    if isinstance(value, float) or isinstance(value, np.floating):
        a = abs(float(value))
        return f"{float(value):.4e}" if (a != 0 and (a < 1e-3 or a >= 1e5)) else f"{float(value):.4f}"
    return str(value)


def format_logs(logs, skip=()):
    """``"loss: 0.1234 - accuracy: 0.9600"`` from a dict of scalar logs (arrays are left out)."""
    return " - ".join(f"{k}: {_fmt(v)}" for k, v in logs.items() if k not in skip and np.ndim(v) == 0)


class ProgressBar(Callback):
    """Show training progress; ``Trainer`` adds one unless ``enable_progress_bar=False``.

    Args:
        stream: where to write; ``sys.stdout`` by default.
        refresh_interval: seconds between updates of the bar's numbers (the bar itself is tqdm's).
        mode: ``"auto"`` (a bar if ``stream`` is a terminal and tqdm is installed, else lines),
            ``"bar"`` or ``"lines"``.
    """

    def __init__(self, stream=None, refresh_interval=0.2, mode="auto"):
        if mode not in ("auto", "bar", "lines"):
            raise ValueError(f"ProgressBar: mode must be 'auto', 'bar' or 'lines', got {mode!r}")
        self.stream = stream
        self.refresh_interval = refresh_interval
        self.mode = mode
        self._bar = None
        self._epoch_open = False

    # ------------------------------------------------------------------ setup
    def _resolve_mode(self):
        stream = self.stream or sys.stdout
        if self.mode != "auto":
            wanted = self.mode
        else:
            isatty = getattr(stream, "isatty", None)
            wanted = "bar" if (isatty is not None and isatty()) else "lines"
        if wanted == "bar":
            try:
                import tqdm  # noqa: F401
            except ImportError:
                warnings.warn("the progress bar needs tqdm (pip install 'somanet[train]'); printing one line "
                              "per epoch instead", stacklevel=2)
                wanted = "lines"
        return wanted

    def on_fit_start(self, trainer, model):
        self._active_mode = self._resolve_mode()
        # Printing lines needs nothing per batch; the trainer then skips this hook entirely.
        self._skip_hooks = {"on_train_batch_end"} if self._active_mode == "lines" else set()

    def on_train_epoch_start(self, trainer, model):
        self._t0 = time.perf_counter()
        self._samples0 = trainer.epoch_samples if trainer.batch_idx else 0
        self._next_refresh = self._t0 + self.refresh_interval
        self._epoch_open = True
        if self._active_mode == "bar":
            from tqdm.auto import tqdm
            self._bar = tqdm(total=trainer.num_training_batches, initial=trainer.batch_idx,
                             desc=f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                             file=self.stream or sys.stdout, leave=True, dynamic_ncols=True, unit="batch")

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if now >= self._next_refresh:
            self._next_refresh = now + self.refresh_interval
            logs = trainer.running_logs()
            samples = trainer.epoch_samples - self._samples0
            logs["samples/s"] = f"{samples / max(now - self._t0, 1e-9):.0f}"
            self._bar.set_postfix_str(format_logs(logs), refresh=False)

    def _summary(self, trainer, stopped=False):
        elapsed = time.perf_counter() - self._t0
        samples = trainer.epoch_samples - self._samples0
        speed = samples / elapsed if elapsed > 0 else 0.0
        done = trainer.batch_idx
        total = trainer.num_training_batches
        logs = trainer.callback_metrics if not stopped else trainer.running_logs()
        parts = [f"{done}/{total if total is not None else '?'}", f"{elapsed:.2f}s", f"{speed:.0f} samples/s"]
        body = format_logs(logs)
        if body:
            parts.append(body)
        if stopped:
            parts.append("stopped")
        return parts

    def on_train_epoch_end(self, trainer, model):
        self._finish(trainer, stopped=False)

    def on_train_end(self, trainer, model):
        if self._epoch_open:
            self._finish(trainer, stopped=True)

    def _finish(self, trainer, stopped):
        parts = self._summary(trainer, stopped)
        self._epoch_open = False
        if self._bar is not None:
            self._bar.set_postfix_str(" - ".join(parts[2:]), refresh=False)
            self._bar.close()
            self._bar = None
            return
        stream = self.stream or sys.stdout
        stream.write(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs} - " + " - ".join(parts) + "\n")
        stream.flush()

    def on_exception(self, trainer, model, exception):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._epoch_open = False
