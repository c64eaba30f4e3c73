"""torchvision.ops on somanet: box utilities, non-maximum suppression, RoIAlign and the focal loss.

Names, signatures, defaults and box conventions are torchvision's, so detection code ports by changing
the import (``from somanet.vision import ops``). Boxes are ``(N, 4)`` Tensors; ``xyxy`` means
``(x1, y1, x2, y2)`` with ``0 <= x1 < x2`` and ``0 <= y1 < y2`` (torchvision's format), ``xywh``
``(x1, y1, w, h)`` and ``cxcywh`` ``(cx, cy, w, h)``.

Gradients flow where torchvision has them: ``box_area``, ``box_iou``, ``generalized_box_iou``,
``generalized_box_iou_loss`` and ``box_convert`` with respect to the boxes, ``roi_align`` with respect to
its input feature map, ``sigmoid_focal_loss`` with respect to its logits. ``nms`` and ``batched_nms``
return indices and have none.

>>> import somanet
>>> from somanet.vision import ops
>>> boxes = somanet.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
>>> ops.nms(boxes, somanet.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5).tolist()
[0, 2]
"""
import math

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..nn.modules.module import Module
from ..ops.creation import from_numpy

__all__ = ["box_area", "box_iou", "generalized_box_iou", "generalized_box_iou_loss", "box_convert", "nms",
           "batched_nms", "roi_align", "RoIAlign", "sigmoid_focal_loss"]


def _check_boxes(boxes, fn, name="boxes"):
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: {name} must have shape (N, 4), got {tuple(boxes.shape)}")


def _upcast(t):
    # torchvision computes areas of integer boxes in a wider type so that products cannot overflow.
    if t.dtype.kind == "f":
        return t if t.dtype.itemsize >= 4 else t.float()
    return t.long() if t.dtype.itemsize < 8 else t


# --------------------------------------------------------------------------- box utilities
def box_area(boxes):
    """The areas ``(x2 - x1) * (y2 - y1)`` of ``(N, 4)`` boxes in ``(x1, y1, x2, y2)`` format; shape ``(N,)``."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"box_area: boxes must be a Tensor, got {type(boxes).__name__}")
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"box_area: boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _box_inter_union(boxes1, boxes2):
    from ..ops.elementwise import maximum, minimum
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2[None, :] - inter
    return inter, union


def box_iou(boxes1, boxes2):
    """The ``(N, M)`` intersection over union of every pair of ``(N, 4)`` and ``(M, 4)`` boxes
    (``(x1, y1, x2, y2)`` format). Two zero-area boxes give NaN (0 / 0), as in torchvision."""
    _check_boxes(boxes1, "box_iou", "boxes1")
    _check_boxes(boxes2, "box_iou", "boxes2")
    inter, union = _box_inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1, boxes2):
    """The ``(N, M)`` generalized IoU (Rezatofighi et al., 2019) of every pair of boxes:
    ``IoU - (C - U) / C`` with ``C`` the area of the smallest box enclosing both and ``U`` the union;
    in ``[-1, 1]``. Boxes are ``(x1, y1, x2, y2)``."""
    from ..ops.elementwise import maximum, minimum
    _check_boxes(boxes1, "generalized_box_iou", "boxes1")
    _check_boxes(boxes2, "generalized_box_iou", "boxes2")
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    lti = minimum(boxes1[:, None, :2], boxes2[None, :, :2])
    rbi = maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def _reduce(loss, reduction, fn):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{fn}: invalid reduction {reduction!r}; supported: 'none', 'mean', 'sum'")


def generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    """``1 - GIoU`` of matching boxes ``boxes1[i]``, ``boxes2[i]`` (shapes ``(..., 4)``, ``(x1, y1, x2, y2)``).

    Args:
        boxes1, boxes2: predicted and target boxes of the same shape.
        reduction: ``"none"`` (one loss per pair), ``"mean"`` or ``"sum"``.
        eps: added to the denominators so that degenerate boxes give no NaN.
    """
    from ..ops.elementwise import maximum, minimum, where
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, Tensor) or b.ndim < 1 or b.shape[-1] != 4:
            got = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
            raise ValueError(f"generalized_box_iou_loss: {name} must be a (..., 4) Tensor, got {got}")
    if tuple(boxes1.shape) != tuple(boxes2.shape):
        raise ValueError(f"generalized_box_iou_loss: boxes1 {tuple(boxes1.shape)} and boxes2 "
                         f"{tuple(boxes2.shape)} must have the same shape")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    xk1, yk1 = maximum(x1, x1g), maximum(y1, y1g)
    xk2, yk2 = minimum(x2, x2g), minimum(y2, y2g)
    overlap = (yk2 > yk1) & (xk2 > xk1)
    inter = where(overlap, (xk2 - xk1) * (yk2 - yk1), 0.0 * x1)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    area_c = (maximum(x2, x2g) - minimum(x1, x1g)) * (maximum(y2, y2g) - minimum(y1, y1g))
    loss = 1 - (iou - (area_c - union) / (area_c + eps))
    return _reduce(loss, reduction, "generalized_box_iou_loss")


_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes, in_fmt, out_fmt):
    """Convert ``(N, 4)`` boxes between the ``"xyxy"``, ``"xywh"`` and ``"cxcywh"`` formats
    (see the module docstring); the same format gives a copy."""
    from ..ops.shape import stack
    if not isinstance(boxes, Tensor) or boxes.ndim < 1 or boxes.shape[-1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"box_convert: boxes must be a (N, 4) Tensor, got {got}")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(f"box_convert: unsupported {name} {fmt!r}; supported: {', '.join(_FORMATS)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return stack([a, b, c, d], dim=-1)


# --------------------------------------------------------------------------- non-maximum suppression
def _nms_numpy(boxes, scores, iou_threshold):
    # A stable descending sort: among equal scores the earlier box comes first, as in torchvision.
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for pos, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            rest = order[pos + 1:]
            w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            # NaN (two empty boxes) compares False: such a box is never suppressed, as in torchvision.
            suppressed[rest[iou > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def _nms_inputs(boxes, scores, fn):
    _check_boxes(boxes, fn)
    if not isinstance(scores, Tensor) or scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"{fn}: scores must be a 1-D Tensor with one score per box ({boxes.shape[0]}), got {got}")
    return boxes.detach().array, scores.detach().array


def nms(boxes, scores, iou_threshold):
    """Non-maximum suppression: the indices (int64, by decreasing score) of the boxes kept after
    dropping every box whose IoU with a higher-scoring kept box is greater than ``iou_threshold``.

    Args:
        boxes: ``(N, 4)`` boxes in ``(x1, y1, x2, y2)`` format.
        scores: ``(N,)`` scores; ties keep the box that comes first.
        iou_threshold: boxes overlapping a kept one by more than this are discarded.
    """
    b, s = _nms_inputs(boxes, scores, "nms")
    return from_numpy(_nms_numpy(b, s, float(iou_threshold)))


def batched_nms(boxes, scores, idxs, iou_threshold):
    """``nms`` within each category: boxes with different ``idxs`` (``(N,)`` integers, e.g. class
    labels) never suppress each other. Returns the kept indices (int64) by decreasing score."""
    b, s = _nms_inputs(boxes, scores, "batched_nms")
    if not isinstance(idxs, Tensor) or idxs.ndim != 1 or idxs.shape[0] != b.shape[0]:
        got = tuple(idxs.shape) if isinstance(idxs, Tensor) else type(idxs).__name__
        raise ValueError(f"batched_nms: idxs must be a 1-D Tensor with one index per box ({b.shape[0]}), got {got}")
    if b.shape[0] == 0:
        return from_numpy(np.zeros(0, dtype=np.int64))
    # Shift each category to its own region of the plane, so that a single nms pass handles them all.
    offsets = idxs.array.astype(b.dtype) * (b.max() + b.dtype.type(1))
    return from_numpy(_nms_numpy(b + offsets[:, None], s, float(iou_threshold)))


# --------------------------------------------------------------------------- RoIAlign
def _roi_sampling(rois, height, width, out_h, out_w, spatial_scale, sampling_ratio, aligned):
    """For each RoI, the flat input positions and weights of its bilinear samples: lists of
    ``(bins (out_h * out_w,), pixel (S, 4), weight (S, 4))`` with ``S`` samples per bin times bins."""
    plans = []
    offset = 0.5 if aligned else 0.0
    for roi in rois:
        x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in roi[1:])
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / out_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / out_w))
        count = max(grid_h * grid_w, 1)
        ph, iy = np.arange(out_h)[:, None], np.arange(grid_h)[None, :]
        ys = (y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h).reshape(out_h, 1, grid_h, 1)
        pw, ix = np.arange(out_w)[:, None], np.arange(grid_w)[None, :]
        xs = (x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w).reshape(1, out_w, 1, grid_w)
        ys, xs = np.broadcast_arrays(ys, xs)
        y, x = ys.reshape(out_h * out_w, -1).copy(), xs.reshape(out_h * out_w, -1).copy()
        outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
        y, x = np.maximum(y, 0.0), np.maximum(x, 0.0)
        y_low, x_low = y.astype(np.int64), x.astype(np.int64)
        top, right = y_low >= height - 1, x_low >= width - 1
        y_low = np.where(top, height - 1, y_low)
        x_low = np.where(right, width - 1, x_low)
        y = np.where(top, y_low, y)
        x = np.where(right, x_low, x)
        y_high = np.where(top, y_low, y_low + 1)
        x_high = np.where(right, x_low, x_low + 1)
        ly, lx = y - y_low, x - x_low
        hy, hx = 1.0 - ly, 1.0 - lx
        pix = np.stack([y_low * width + x_low, y_low * width + x_high, y_high * width + x_low,
                        y_high * width + x_high], axis=-1)
        w = np.stack([hy * hx, hy * lx, ly * hx, ly * lx], axis=-1) / count
        w[outside] = 0.0
        pix[outside] = 0
        plans.append((int(roi[0]), pix.reshape(out_h * out_w, -1), w.reshape(out_h * out_w, -1)))
    return plans


class _RoIAlign(Function):
    def forward(ctx, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
        n, c, h, w = x.shape
        out_h, out_w = output_size
        plans = _roi_sampling(rois, h, w, out_h, out_w, spatial_scale, sampling_ratio, aligned)
        flat = x.reshape(n, c, h * w)
        out = np.zeros((len(plans), c, out_h * out_w), dtype=x.dtype)
        for k, (b, pix, wt) in enumerate(plans):
            # (C, bins, samples) gathered values times their weights, summed over the samples
            out[k] = (flat[b][:, pix] * wt.astype(x.dtype)).sum(axis=-1)
        ctx.plans, ctx.in_shape = plans, x.shape
        ctx.args = (rois, output_size, spatial_scale, sampling_ratio, aligned)
        return out.reshape(len(plans), c, out_h, out_w)

    def backward(ctx, grad):
        n, c, h, w = ctx.in_shape
        k = grad.shape[0]
        g = grad.reshape(k, c, -1)
        dx = np.zeros((n, c, h * w), dtype=grad.dtype)
        for r, (b, pix, wt) in enumerate(ctx.plans):
            contrib = g[r][:, :, None] * wt.astype(grad.dtype)  # (C, bins, samples)
            for ch in range(c):
                dx[b, ch] += np.bincount(pix.ravel(), weights=contrib[ch].ravel(), minlength=h * w).astype(grad.dtype)
        return dx.reshape(n, c, h, w)

    def grad_graph(ctx, grad):
        # Linear in the features (the boxes get no gradient): the op itself is its backward's transpose.
        return ctx.graph_linear((grad,), lambda v, *_: _RoIAlign.apply(v, *ctx.args))


def _pair(v, fn, name):
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) and i > 0 for i in v)):
        raise ValueError(f"{fn}: {name} must be a positive int or a pair of them, got {v!r}")
    return tuple(v)


def _rois_array(boxes, n_images, fn):
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor) or b.ndim != 2 or b.shape[1] != 4:
                got = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
                raise ValueError(f"{fn}: boxes[{i}] must be a (K, 4) Tensor of (x1, y1, x2, y2) boxes, got {got}")
            arr = b.detach().array.astype(np.float64)
            parts.append(np.concatenate([np.full((len(arr), 1), i, np.float64), arr], axis=1))
        if len(boxes) != n_images:
            raise ValueError(f"{fn}: boxes is a list of {len(boxes)} Tensors for a batch of {n_images} images")
        return np.concatenate(parts) if parts else np.zeros((0, 5))
    if isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{fn}: boxes must be a (K, 5) Tensor of (batch_index, x1, y1, x2, y2) rows or a list "
                             f"of (K_i, 4) Tensors, got shape {tuple(boxes.shape)}")
        rois = boxes.detach().array.astype(np.float64)
        bad = (rois[:, 0] < 0) | (rois[:, 0] >= n_images) | (rois[:, 0] != np.round(rois[:, 0]))
        if bad.any():
            raise ValueError(f"{fn}: batch indices must be integers in [0, {n_images}), got {rois[bad, 0].tolist()}")
        return rois
    raise TypeError(f"{fn}: boxes must be a Tensor (K, 5) or a list of Tensors (K_i, 4), got {type(boxes).__name__}")


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoIAlign (He et al., Mask R-CNN): average of bilinearly interpolated samples in each output bin.

    Args:
        input: ``(N, C, H, W)`` feature map.
        boxes: a ``(K, 5)`` Tensor of ``(batch_index, x1, y1, x2, y2)`` rows, or a list of ``N``
            ``(K_i, 4)`` Tensors of ``(x1, y1, x2, y2)`` boxes, one per image, in input-image coordinates.
        output_size: ``(out_h, out_w)`` or one int.
        spatial_scale: maps box coordinates to the feature map (``1 / stride``).
        sampling_ratio: samples per bin along each axis; ``<= 0`` uses ``ceil(roi_size / output_size)``.
        aligned: shift the boxes by half a pixel so that pixel centres line up (``True`` is the
            correct alignment; ``False`` is the original Mask R-CNN behaviour and torchvision's default).

    Returns:
        ``(K, C, out_h, out_w)``; differentiable with respect to ``input``.
    """
    if not isinstance(input, Tensor) or input.ndim != 4:
        got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"roi_align: input must be a (N, C, H, W) Tensor, got {got}")
    out_hw = _pair(output_size, "roi_align", "output_size")
    rois = _rois_array(boxes, input.shape[0], "roi_align")
    return _RoIAlign.apply(input, rois=rois, output_size=out_hw, spatial_scale=float(spatial_scale),
                           sampling_ratio=int(sampling_ratio), aligned=bool(aligned))


class RoIAlign(Module):
    """``roi_align`` with fixed settings, as a module (torchvision's ``ops.RoIAlign``);
    ``forward(input, rois)``."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned=False):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, input, rois):
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self):
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


# --------------------------------------------------------------------------- losses
def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """The focal loss of RetinaNet (Lin et al., 2017) for binary (per-class) logits.

    ``loss = alpha_t * (1 - p_t) ** gamma * BCE(inputs, targets)`` with ``p = sigmoid(inputs)``,
    ``p_t = p`` where the target is 1 and ``1 - p`` where it is 0, and ``alpha_t`` likewise ``alpha``
    or ``1 - alpha`` (a negative ``alpha`` disables the weighting).

    Args:
        inputs: logits of any shape.
        targets: the same shape, with values in [0, 1].
        alpha, gamma: the weighting of positives and the focusing exponent.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
    """
    from ..nn.functional import binary_cross_entropy_with_logits
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise TypeError(f"sigmoid_focal_loss: inputs and targets must be Tensors, got {type(inputs).__name__} and "
                        f"{type(targets).__name__}")
    if tuple(inputs.shape) != tuple(targets.shape):
        raise ValueError(f"sigmoid_focal_loss: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must "
                         f"have the same shape")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"sigmoid_focal_loss: invalid reduction {reduction!r}; supported: 'none', 'mean', 'sum'")
    targets = targets.to(inputs.dtype)
    p = inputs.sigmoid()
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction, "sigmoid_focal_loss")
