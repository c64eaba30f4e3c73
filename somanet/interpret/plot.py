"""Heatmap pictures of attributions and attention, written as PNG files.

matplotlib is an optional extra (``pip install 'somanet[plot]'``), imported when a picture is drawn. The
figures are drawn on the Agg canvas (no ``pyplot``, the global backend is left alone) and every file is
written atomically.
"""
import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["heatmap_array", "plot_image_heatmap", "plot_token_heatmap"]


def _figure(width, height):
    from ..train.plots import _figure as figure  # the one Agg-canvas figure maker, imported when drawing
    return figure(width, height, what="interpretation plots")


def _save(fig, path):
    from ..train.plots import _save as save
    return save(fig, path)


def _array(x, who, name):
    arr = x.array if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{who}: {name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _as_map(arr, who, name):
    """An (H, W) map from (H, W), (1, H, W), (C, H, W) (summed over channels) or a batch of one."""
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        arr = arr.sum(axis=0)
    if arr.ndim != 2:
        raise ValueError(f"{who}: {name} must be an (H, W) map (or (C, H, W), summed over C), got shape {arr.shape}")
    return arr


def heatmap_array(attribution, sign="absolute"):
    """An attribution map (H, W) (or (C, H, W), summed over channels) scaled to [0, 1] for display.

    ``sign``: 'absolute' (|a| / max |a|), 'positive' (only a > 0) or 'all' (a / max |a|, in [-1, 1]).
    """
    a = _as_map(_array(attribution, "heatmap_array", "attribution"), "heatmap_array", "attribution")
    if sign == "absolute":
        a = np.abs(a)
    elif sign == "positive":
        a = np.maximum(a, 0)
    elif sign != "all":
        raise ValueError(f"heatmap_array(): sign must be 'absolute', 'positive' or 'all', got {sign!r}")
    peak = np.abs(a).max()
    return a / peak if peak > 0 else a


def plot_image_heatmap(attribution, path, image=None, cmap="jet", alpha=0.5, sign="absolute", title=None,
                       colorbar=True):
    """Draw ``attribution`` (H, W) over ``image`` and save it as a PNG at ``path``; returns ``path``.

    ``image``: (H, W) grey or (H, W, 3) / (3, H, W) colour, any range (scaled to [0, 1] for display); the
    heatmap, scaled by ``heatmap_array(attribution, sign)``, is laid over it with ``alpha`` in colormap
    ``cmap`` (without an image it is drawn opaque). An attribution of a different size than the image is
    stretched over it.
    """
    who = "plot_image_heatmap"
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{who}: alpha must be in [0, 1], got {alpha}")
    heat = heatmap_array(attribution, sign)
    fig = _figure(4.0, 3.6 if title else 3.3)
    ax = fig.add_subplot(1, 1, 1)
    extent = None
    if image is not None:
        img = _array(image, who, "image")
        while img.ndim > 3 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = np.moveaxis(img, 0, -1)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
            raise ValueError(f"{who}: image must be (H, W), (H, W, 3) or (3, H, W), got shape {img.shape}")
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        extent = (0, img.shape[1], img.shape[0], 0)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, extent=extent, interpolation="nearest")
    vmin = -1.0 if sign == "all" else 0.0
    shown = ax.imshow(heat, cmap=cmap, alpha=alpha if image is not None else 1.0, vmin=vmin, vmax=1.0,
                      extent=extent, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def plot_token_heatmap(weights, path, x_tokens, y_tokens=None, cmap="viridis", title=None, xlabel="key",
                       ylabel="query"):
    """Draw an (L, S) matrix, e.g. one head's attention weights, with the tokens on the axes and save it as
    a PNG at ``path``; returns ``path``. ``y_tokens`` defaults to ``x_tokens`` (self-attention). A 1-D
    ``weights`` (S,) (a per-token attribution) is drawn as one row labelled by ``x_tokens``."""
    who = "plot_token_heatmap"
    w = _array(weights, who, "weights")
    if w.ndim == 1:
        w = w[None]
        y_tokens = [""] if y_tokens is None else y_tokens
    if w.ndim != 2:
        raise ValueError(f"{who}: weights must be (L, S) (one head of one sample) or (S,), got shape {w.shape}")
    x_tokens = [str(t) for t in x_tokens]
    y_tokens = x_tokens if y_tokens is None else [str(t) for t in y_tokens]
    if len(x_tokens) != w.shape[1] or len(y_tokens) != w.shape[0]:
        raise ValueError(f"{who}: weights of shape {w.shape} need {w.shape[1]} x_tokens and {w.shape[0]} y_tokens, "
                         f"got {len(x_tokens)} and {len(y_tokens)}")
    side = 0.3
    fig = _figure(max(3.0, 1.5 + side * w.shape[1]), max(1.6, 1.2 + side * w.shape[0]))
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(w, cmap=cmap, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(w.shape[1]))
    ax.set_xticklabels(x_tokens, rotation=90)
    ax.set_yticks(range(w.shape[0]))
    ax.set_yticklabels(y_tokens)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel and w.shape[0] > 1:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.colorbar(shown, ax=ax)
    return _save(fig, path)
