"""Training plots as PNG files: curves, learning rate, confusion matrix, sample predictions, top losses.

matplotlib is an optional extra (``pip install 'somanet[plot]'``). Figures are drawn on the Agg
canvas directly (no ``pyplot``), so nothing depends on or changes the global backend, and every file is
written atomically (a temporary file in the same directory, then renamed).
"""
import math
import os

import numpy as np

from ._io import atomic_replace_file_from, temporary_sibling

__all__ = ["plot_history", "plot_lr", "plot_lr_find", "plot_confusion_matrix", "plot_predictions",
           "plot_top_losses"]


def _figure(width, height, what="plots"):
    """A matplotlib ``Figure`` on its own Agg canvas; ``what`` names the caller in the install hint."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as exc:
        raise ImportError(f"{what} need matplotlib: pip install 'somanet[plot]'") from exc
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, tight=True, **savefig_kwargs):
    """Render ``fig`` as PNG into ``path`` atomically (a reader never sees half a file); returns ``path``."""
    path = os.fspath(path)
    tmp = temporary_sibling(path, ".png")
    try:
        if tight:
            fig.tight_layout()
        fig.savefig(tmp, format="png", **savefig_kwargs)
    except BaseException:
        os.remove(tmp)
        raise
    atomic_replace_file_from(tmp, path)
    return path


def plot_history(history, path):
    """Loss and metric curves per epoch, training and validation side by side; returns ``path``.

    ``history`` is ``History.history`` (or a ``History``): a dict of lists. One panel per quantity
    (``loss``, each metric), with its ``val_`` twin in the same panel.
    """
    history = getattr(history, "history", history)
    if not history:
        raise ValueError("plot_history(): the history is empty (train at least one epoch)")
    bases = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base.startswith("lr") or base in bases:
            continue
        if all(np.ndim(v) == 0 for v in history[key]):
            bases.append(base)
    n = max(1, len(bases))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(4.5 * cols, 3.2 * rows)
    for i, base in enumerate(bases):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key, style in ((base, "-"), ("val_" + base, "--")):
            if key in history:
                values = np.asarray(history[key], dtype=float)
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3, label=key)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_lr(steps, lrs, path):
    """The learning rate against the optimizer step; returns ``path``."""
    if len(lrs) == 0:
        raise ValueError("plot_lr(): no learning rates recorded")
    fig = _figure(6, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, lrs)
    lrs = np.asarray(lrs, dtype=float)
    if lrs.min() > 0 and lrs.max() / lrs.min() > 50:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_lr_find(lrs, losses, path, suggestion=None):
    """The LR finder's smoothed loss against the learning rate (log scale), with the suggestion."""
    if len(lrs) == 0:
        raise ValueError("plot_lr_find(): no points to plot")
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    if suggestion is not None:
        i = int(np.argmin(np.abs(np.asarray(lrs) - suggestion)))
        ax.plot([lrs[i]], [losses[i]], "ro", markersize=8, label=f"suggested lr = {suggestion:.3g}")
        ax.legend()
    ax.set_title("Learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_confusion_matrix(matrix, path, class_names=None, normalize=False):
    """A confusion matrix (rows: true class, columns: predicted) with the counts written in."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix(): expected a square matrix, got shape {m.shape}")
    n = m.shape[0]
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    size = max(4.0, 0.5 * n + 2)
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=names)
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        cut = shown.max() / 2 if shown.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > cut else "black")
    ax.set_title("Confusion matrix" + (" (normalised by row)" if normalize else ""))
    return _save(fig, path)


def _as_images(images):
    x = np.asarray(getattr(images, "data", images))
    if x.ndim == 2:
        side = int(round(math.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"cannot show samples of {x.shape[1]} features as images (not a square)")
        return x.reshape(-1, side, side)
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            x = x.transpose(0, 2, 3, 1)
        return x[..., 0] if x.shape[-1] == 1 else x
    if x.ndim == 3:
        return x
    raise ValueError(f"expected images (N, H, W), (N, C, H, W), (N, H, W, C) or flat squares (N, H*W); "
                     f"got shape {x.shape}")


def _grid(images, titles, colors, path, ncols):
    images = _as_images(images)
    n = len(images)
    if n == 0:
        raise ValueError("no images to plot")
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig = _figure(1.6 * cols, 1.8 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = images[i].astype(np.float32)
        if img.ndim == 3:
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None)
        ax.set_title(titles[i], fontsize=8, color=colors[i])
        ax.axis("off")
    # A fixed layout: tight_layout measures every title and costs more than drawing the grid.
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, wspace=0.1, hspace=0.6)
    return _save(fig, path, tight=False)


def _name(names, k):
    return str(names[int(k)]) if names is not None else str(int(k))


def plot_predictions(images, y_true, y_pred, path, class_names=None, max_images=32, ncols=8):
    """A grid of samples titled ``true / predicted`` (green when right, red when wrong)."""
    k = min(max_images, len(y_true))
    y_true, y_pred = np.asarray(y_true)[:k], np.asarray(y_pred)[:k]
    titles = [f"{_name(class_names, t)} / {_name(class_names, p)}" for t, p in zip(y_true, y_pred)]
    colors = ["green" if t == p else "red" for t, p in zip(y_true, y_pred)]
    return _grid(np.asarray(getattr(images, "data", images))[:k], titles, colors, path, ncols)


def plot_top_losses(images, y_true, y_pred, losses, path, class_names=None, k=16, ncols=8):
    """The ``k`` samples with the highest loss, titled ``true / predicted`` and their loss."""
    losses = np.asarray(losses, dtype=float)
    order = np.argsort(-losses, kind="stable")[:k]
    y_true, y_pred = np.asarray(y_true)[order], np.asarray(y_pred)[order]
    titles = [f"{_name(class_names, t)} / {_name(class_names, p)}\n{losses[i]:.2f}"
              for t, p, i in zip(y_true, y_pred, order)]
    colors = ["green" if t == p else "red" for t, p in zip(y_true, y_pred)]
    return _grid(np.asarray(getattr(images, "data", images))[order], titles, colors, path, ncols)
