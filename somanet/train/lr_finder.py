"""The learning-rate range test: train briefly with an exponentially growing learning rate.

The loss is smoothed with an exponential moving average (bias-corrected, as in Adam), the test stops
when it diverges, and the suggested learning rate is one decade below the one with the lowest smoothed
loss (the classic rule of thumb of the range test); the point of steepest descent is reported too.
The model, the optimizer and every random state are put back afterwards, so the test leaves no trace
on a run that follows.
"""
import copy
import math

import numpy as np

from .data import as_loader
from .seed import get_rng_state, set_rng_state
from .trainer import Trainer, get_loss, get_optimizer

__all__ = ["lr_find", "LRFinderResult"]


class LRFinderResult:
    """The range test's record and advice.

    ``lrs``, ``losses`` (smoothed), ``raw_losses``; ``suggestion``: one decade below the learning rate
    with the lowest smoothed loss (None when the loss never fell); ``steepest``: where the smoothed
    loss falls fastest before its minimum (often more aggressive); ``stopped_early``: the loss
    diverged before ``max_lr``; ``plot(path)`` draws the curve.
    """

    def __init__(self, lrs, losses, raw_losses, suggestion, stopped_early, steepest=None):
        self.lrs = lrs
        self.losses = losses
        self.raw_losses = raw_losses
        self.suggestion = suggestion
        self.steepest = steepest
        self.stopped_early = stopped_early

    def plot(self, path):
        """Write the loss-vs-lr curve with the suggestion marked to a PNG; returns ``path``."""
        from .plots import plot_lr_find
        return plot_lr_find(self.lrs, self.losses, path, self.suggestion)

    def __repr__(self):
        s = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        return f"LRFinderResult(points={len(self.lrs)}, suggestion={s})"


def _steepest(lrs, losses, skip_start):
    losses = np.asarray(losses, dtype=np.float64)
    end = int(np.argmin(losses)) if len(losses) else 0
    if end - skip_start < 2:
        return None
    # Central differences, and only before the minimum: at the minimum a one-sided difference
    # would point at the edge of divergence.
    slope = np.gradient(losses, np.log10(np.asarray(lrs, dtype=np.float64)))
    return float(lrs[skip_start + int(np.argmin(slope[skip_start:end]))])


def _suggest(lrs, losses, skip_start):
    losses = np.asarray(losses, dtype=np.float64)
    if len(losses) < skip_start + 3:
        return None
    best = int(np.argmin(losses))
    if best <= skip_start or losses[best] >= losses[skip_start]:
        return None
    # One decade below the rate with the lowest smoothed loss: the loss is still falling fast there,
    # and unlike the steepest point it does not move with the lag of the moving average.
    return float(lrs[best]) / 10.0


def lr_find(model, train_data, *, loss, optimizer="sgd", min_lr=1e-7, max_lr=10.0, num_steps=100, beta=0.98,
            diverge_threshold=4.0, batch_size=32, skip_start=5, trainer=None):
    """Run the range test and return an ``LRFinderResult``.

    Args:
        model: the model (its weights are restored afterwards).
        train_data: a DataLoader, Dataset or arrays ``(X, y)``; cycled if shorter than ``num_steps``.
        loss: the loss (module, function or name).
        optimizer: an optimizer over ``model.parameters()`` or a name; its learning rate is overridden
            at every step and its state restored afterwards.
        min_lr, max_lr: the range, covered geometrically in ``num_steps`` steps.
        beta: the smoothing factor of the loss average.
        diverge_threshold: stop when the smoothed loss exceeds this times its minimum.
        skip_start: points ignored at the start when looking for the suggestion (the average warms up).
        trainer: a ``Trainer`` whose ``training_step`` to use (for models with custom steps).
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"lr_find(): expected 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if num_steps < 2:
        raise ValueError(f"lr_find(): num_steps must be at least 2, got {num_steps}")
    trainer = trainer or Trainer(enable_progress_bar=False)
    if isinstance(optimizer, str):
        optimizer = get_optimizer(optimizer, model.parameters())
    # Captured first: even building the shuffled loader draws its seed from the default generator.
    saved_rng = get_rng_state()
    dtype = Trainer._model_dtype(model)
    loader = as_loader(train_data, batch_size=batch_size, shuffle=True, dtype=dtype, what="lr_find(): train_data")
    saved_weights = {k: np.array(v.array, copy=True) for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_loss, saved_model = trainer.loss_fn, trainer.model
    trainer.loss_fn, trainer.model = get_loss(loss), model
    was_training = model.training
    factor = (max_lr / min_lr) ** (1.0 / (num_steps - 1))
    lrs, smoothed, raw = [], [], []
    avg, best = 0.0, math.inf
    stopped_early = False
    try:
        model.train()
        batches = iter(loader)
        for step in range(num_steps):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            lr = min_lr * factor ** step
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            out = trainer.training_step(model, batch, step)
            loss_t = out["loss"] if isinstance(out, dict) else out
            loss_t.backward()
            value = float(loss_t.array)
            if not math.isfinite(value):
                stopped_early = True
                break
            optimizer.step()
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** (step + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(s)
            best = min(best, s)
            if s > diverge_threshold * best:
                stopped_early = True
                break
    finally:
        optimizer.zero_grad()
        model.load_state_dict(saved_weights)
        optimizer.load_state_dict(saved_opt)
        set_rng_state(saved_rng)
        model.train(was_training)
        trainer.loss_fn, trainer.model = saved_loss, saved_model
    return LRFinderResult(lrs, smoothed, raw, _suggest(lrs, smoothed, skip_start), stopped_early,
                          _steepest(lrs, smoothed, skip_start))
