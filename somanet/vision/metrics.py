"""Detection metrics: COCO-style mean average precision over boxes.

``MeanAveragePrecision`` accumulates predictions and ground truth over batches (``update(preds,
target)``, ``compute()``, ``reset()``, as the streaming metrics of ``somanet.train.metrics`` and
torchmetrics' class of the same name); ``mean_average_precision(preds, target)`` scores a whole set at
once. Both take torchvision's detection format: one dict per image, predictions with ``boxes``
``(N, 4)`` ``(x1, y1, x2, y2)``, ``scores`` ``(N,)`` and ``labels`` ``(N,)``; ground truth with
``boxes`` and ``labels``.

The evaluation follows the COCO protocol (pycocotools' ``COCOeval`` for boxes, area range "all"):

* per image and class, detections are taken by decreasing score (at most ``max_detections`` per image)
  and each is matched to the unmatched ground-truth box of the same class with the highest IoU, if
  that IoU is at least the threshold; a matched detection is a true positive, the others false positives;
* per class, the detections of all images are ranked by score; precision is made non-increasing in
  recall (each precision replaced by the best precision at any higher recall) and read at the 101
  recall levels 0, 0.01, ..., 1 (0 beyond the highest recall reached); AP is their mean;
* a class with no ground-truth box has no AP (reported as -1 and left out of the mean); mAP is the mean
  AP over the classes that have ground truth, ``map`` averaged over the IoU thresholds 0.5, 0.55, ...,
  0.95 and ``map_50`` / ``map_75`` at one threshold. With no ground truth at all, every value is -1.
"""
import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["MeanAveragePrecision", "mean_average_precision", "COCO_IOU_THRESHOLDS", "COCO_RECALL_THRESHOLDS"]

#: IoU thresholds of COCO's mAP: 0.5, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
#: The 101 recall levels at which COCO reads the precision: 0, 0.01, ..., 1.
COCO_RECALL_THRESHOLDS = tuple(np.round(np.linspace(0.0, 1.0, 101), 2).tolist())


def _arr(x, what, dtype):
    if isinstance(x, Tensor):
        x = x.detach().array
    return np.asarray(x, dtype=dtype)


def _check_image(d, keys, i, what):
    if not isinstance(d, dict):
        raise TypeError(f"MeanAveragePrecision: {what}[{i}] must be a dict with {', '.join(keys)}, got "
                        f"{type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"MeanAveragePrecision: {what}[{i}] has no {', '.join(missing)} (keys: {sorted(d)})")
    boxes = _arr(d["boxes"], "boxes", np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"MeanAveragePrecision: {what}[{i}]['boxes'] must have shape (N, 4), got {boxes.shape}")
    out = {"boxes": boxes, "labels": _arr(d["labels"], "labels", np.int64).reshape(-1)}
    if "scores" in keys:
        out["scores"] = _arr(d["scores"], "scores", np.float64).reshape(-1)
    for k, v in out.items():
        if len(v) != len(boxes):
            raise ValueError(f"MeanAveragePrecision: {what}[{i}] has {len(boxes)} boxes but {len(v)} {k}")
    return out


def _iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ious, thresholds):
    """``(T, D)`` true-positive flags of ``D`` score-ordered detections against ``G`` ground truths."""
    tp = np.zeros((len(thresholds), ious.shape[0]), dtype=bool)
    for t, thr in enumerate(thresholds):
        taken = np.zeros(ious.shape[1], dtype=bool)
        for d in range(ious.shape[0]):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(ious.shape[1]):
                if not taken[g] and ious[d, g] >= best:
                    best, m = ious[d, g], g
            if m >= 0:
                taken[m] = True
                tp[t, d] = True
    return tp


def _average_precision(tp, scores, n_gt, recall_thresholds):
    """COCO's interpolated AP of one class at one threshold: ``tp`` flags, ``scores`` of all detections."""
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[order])
    fps = np.cumsum(~tp[order])
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    # The precision envelope: the best precision reachable at this recall or beyond.
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, recall_thresholds, side="left")
    q = np.zeros(len(recall_thresholds))
    ok = idx < len(precision)
    q[ok] = precision[idx[ok]]
    return float(q.mean())


class MeanAveragePrecision:
    """COCO-style mAP over boxes, accumulated over batches (see the module docstring).

    Args:
        iou_thresholds: the IoU thresholds (default COCO's 0.5:0.05:0.95).
        rec_thresholds: the recall levels the precision is read at (default COCO's 101).
        max_detection_thresholds: detections kept per image, by score (COCO's 100); one int.
        class_metrics: also return ``map_per_class`` and ``map_50_per_class``.

    ``compute()`` returns a dict: ``map`` (mAP@[.5:.95]), ``map_50``, ``map_75`` (when 0.75 is one of the
    thresholds), ``classes`` (the labels seen, int64 array) and with ``class_metrics`` the per-class
    values (-1 for a class with no ground truth).

    >>> m = MeanAveragePrecision()
    >>> m.update([{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}],
    ...          [{"boxes": [[0, 0, 10, 10]], "labels": [1]}])
    >>> m.compute()["map"]
    1.0
    """

    def __init__(self, iou_thresholds=None, rec_thresholds=None, max_detection_thresholds=100, class_metrics=False):
        self.iou_thresholds = tuple(float(t) for t in (iou_thresholds or COCO_IOU_THRESHOLDS))
        self.rec_thresholds = np.asarray(rec_thresholds or COCO_RECALL_THRESHOLDS, dtype=np.float64)
        if any(not 0 <= t <= 1 for t in self.iou_thresholds):
            raise ValueError(f"MeanAveragePrecision: iou_thresholds must lie in [0, 1], got {self.iou_thresholds}")
        if isinstance(max_detection_thresholds, (list, tuple)):
            max_detection_thresholds = max(max_detection_thresholds)
        if int(max_detection_thresholds) < 1:
            raise ValueError(f"MeanAveragePrecision: max_detection_thresholds must be >= 1, got "
                             f"{max_detection_thresholds!r}")
        self.max_detections = int(max_detection_thresholds)
        self.class_metrics = bool(class_metrics)
        self.name = "map"
        self.reset()

    def reset(self):
        """Forget every image seen so far."""
        self._preds, self._targets = [], []

    def update(self, preds, target):
        """Add a batch: ``preds`` and ``target`` are lists with one dict per image (module docstring)."""
        if not isinstance(preds, (list, tuple)) or not isinstance(target, (list, tuple)):
            raise TypeError(f"MeanAveragePrecision.update: preds and target must be lists of dicts, got "
                            f"{type(preds).__name__} and {type(target).__name__}")
        if len(preds) != len(target):
            raise ValueError(f"MeanAveragePrecision.update: {len(preds)} predictions for {len(target)} images")
        self._preds += [_check_image(p, ("boxes", "scores", "labels"), i, "preds") for i, p in enumerate(preds)]
        self._targets += [_check_image(t, ("boxes", "labels"), i, "target") for i, t in enumerate(target)]

    def _per_class(self):
        """``(classes, ap)`` with ``ap`` of shape ``(T, K)``; -1 where a class has no ground truth."""
        labels = [p["labels"] for p in self._preds] + [t["labels"] for t in self._targets]
        classes = np.unique(np.concatenate(labels)) if labels else np.zeros(0, np.int64)
        thresholds = self.iou_thresholds
        ap = np.full((len(thresholds), len(classes)), -1.0)
        for k, c in enumerate(classes):
            flags, scores, n_gt = [], [], 0
            for p, t in zip(self._preds, self._targets):
                gt = t["boxes"][t["labels"] == c]
                sel = np.flatnonzero(p["labels"] == c)
                sel = sel[np.argsort(-p["scores"][sel], kind="mergesort")][:self.max_detections]
                n_gt += len(gt)
                if len(sel) == 0:
                    continue
                flags.append(_match(_iou(p["boxes"][sel], gt), thresholds))
                scores.append(p["scores"][sel])
            if n_gt == 0:
                continue
            tp = np.concatenate(flags, axis=1) if flags else np.zeros((len(thresholds), 0), bool)
            sc = np.concatenate(scores) if scores else np.zeros(0)
            for t in range(len(thresholds)):
                ap[t, k] = _average_precision(tp[t], sc, n_gt, self.rec_thresholds)
        return classes, ap

    def compute(self):
        """The metric values over every image added since the last ``reset`` (see the class docstring)."""
        classes, ap = self._per_class()

        def mean(rows):
            valid = rows[rows > -1]
            return float(valid.mean()) if valid.size else -1.0

        out = {"map": mean(ap)}
        for name, thr in (("map_50", 0.5), ("map_75", 0.75)):
            if any(abs(t - thr) < 1e-9 for t in self.iou_thresholds):
                t = [abs(t - thr) < 1e-9 for t in self.iou_thresholds].index(True)
                out[name] = mean(ap[t])
        out["classes"] = classes
        if self.class_metrics:
            # a class without ground truth is -1 at every threshold, so its mean stays -1
            out["map_per_class"] = ap.mean(axis=0)
            if "map_50" in out:
                out["map_50_per_class"] = ap[[abs(t - 0.5) < 1e-9 for t in self.iou_thresholds].index(True)]
        return out

    def __repr__(self):
        return f"MeanAveragePrecision(iou_thresholds={self.iou_thresholds}, max_detections={self.max_detections})"


def mean_average_precision(preds, target, iou_thresholds=None, max_detections=100, class_metrics=False):
    """COCO-style mAP of a whole set in one call: ``MeanAveragePrecision`` updated once and computed.

    Args:
        preds: one dict per image with ``boxes`` ``(N, 4)`` ``(x1, y1, x2, y2)``, ``scores``, ``labels``.
        target: one dict per image with ``boxes`` and ``labels``.
        iou_thresholds, max_detections, class_metrics: as ``MeanAveragePrecision``.

    Returns:
        the dict of ``MeanAveragePrecision.compute``: ``map`` (mAP@[.5:.95]), ``map_50``, ``map_75``, ...
    """
    metric = MeanAveragePrecision(iou_thresholds, max_detection_thresholds=max_detections,
                                  class_metrics=class_metrics)
    metric.update(preds, target)
    return metric.compute()
