"""A small one-stage, anchor-free object detector in the style of CenterNet (Zhou et al., 2019,
"Objects as Points"), and the report a detection recipe writes at the end of a run.

``CenterNet`` sees each object as the peak of a per-class heatmap at the centre of its box, plus a
regression of the box at that point:

* backbone: a residual CNN with stages at strides 2, 4 and 8; neck: an FPN-lite top-down merge of the
  stride-8 features into the stride-4 ones (1x1 laterals, nearest upsampling, a 3x3 smoothing conv);
* heads on the stride-4 map: ``num_classes`` heatmap logits and 4 box numbers per cell: the centre's
  offset inside the cell ``(dx, dy)`` and the log of the box size in cells ``(log w, log h)``;
* loss (``training_step``): CenterNet's penalty-reduced focal loss on the heatmap against Gaussian
  bumps at the box centres, L1 on the offset and log-size at the centre cells, and the GIoU loss of
  the decoded boxes there (``somanet.vision.ops.generalized_box_iou_loss``);
* decoding (``postprocess`` / ``predict``): local maxima of the sigmoid heatmap (a 3x3 max-pool), the
  ``max_detections`` best peaks, boxes decoded at those cells, a score threshold and class-wise
  ``batched_nms``; the result is torchvision's ``[{"boxes", "scores", "labels"}]`` per image.

Labels follow torchvision: 0 is the background, object classes are ``1 .. num_classes`` (heatmap
channel ``k`` is label ``k + 1``). Boxes are ``(x1, y1, x2, y2)`` in input pixels.

>>> import somanet
>>> model = CenterNet(num_classes=3).eval()
>>> heatmap, box = model(somanet.randn(2, 3, 32, 32))
>>> heatmap.shape, box.shape
((2, 3, 8, 8), (2, 4, 8, 8))
>>> sorted(model.predict(somanet.randn(1, 3, 32, 32))[0])
['boxes', 'labels', 'scores']
"""
import math
import os

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..ops.creation import from_numpy, tensor

__all__ = ["CenterNet", "centernet_targets", "decode_heatmap", "centernet_focal_loss", "centre_box_baseline",
           "DetectionReport", "draw_detections"]


# --------------------------------------------------------------------------- the network
class _ConvBN(nn.Sequential):
    def __init__(self, cin, cout, stride=1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _ResidualStage(nn.Module):
    """A strided 3x3 conv then one basic residual block (two 3x3 convs and a skip)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.down = _ConvBN(cin, cout, stride=2)
        self.conv1 = _ConvBN(cout, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.down(x)
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


class CenterNet(nn.Module):
    """A CenterNet-style detector for small images (see the module docstring).

    Args:
        num_classes: object classes (without the background); labels ``1 .. num_classes``.
        in_channels: image channels.
        widths: channels of the stem and of the stride-2, -4 and -8 stages.
        head_channels: channels of the FPN-lite neck and the heads.
        max_detections: peaks kept per image when decoding.
        score_threshold: detections below this score are dropped.
        nms_threshold: IoU above which ``batched_nms`` drops the lower-scoring of two same-class boxes.
        box_weight, giou_weight: weights of the L1 box loss and of the GIoU loss (the heatmap's is 1).
        image_mean, image_std: the normalisation applied to the [0, 1] images before the backbone.

    ``forward(images (N, C, H, W))`` returns the raw head outputs ``(heatmap_logits (N, K, H/4, W/4),
    box (N, 4, H/4, W/4))``; H and W must be multiples of 8.
    """

    stride = 4

    def __init__(self, num_classes=3, in_channels=3, widths=(16, 32, 48, 64), head_channels=32, max_detections=20,
                 score_threshold=0.05, nms_threshold=0.5, box_weight=1.0, giou_weight=1.0, image_mean=0.5,
                 image_std=0.25):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"CenterNet: num_classes must be a positive int, got {num_classes!r}")
        if len(widths) != 4:
            raise ValueError(f"CenterNet: widths must give 4 channel counts (stem, strides 2, 4, 8), got {widths!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.box_weight, self.giou_weight = float(box_weight), float(giou_weight)
        self.image_mean, self.image_std = float(image_mean), float(image_std)
        w0, w1, w2, w3 = widths
        self.stem = _ConvBN(in_channels, w0)
        self.stage1 = _ResidualStage(w0, w1)
        self.stage2 = _ResidualStage(w1, w2)
        self.stage3 = _ResidualStage(w2, w3)
        self.lateral2 = nn.Conv2d(w2, head_channels, 1)
        self.lateral3 = nn.Conv2d(w3, head_channels, 1)
        self.smooth = _ConvBN(head_channels, head_channels)
        self.heatmap_head = nn.Sequential(nn.Conv2d(head_channels, head_channels, 3, 1, 1), nn.ReLU(inplace=True),
                                          nn.Conv2d(head_channels, num_classes, 1))
        self.box_head = nn.Sequential(nn.Conv2d(head_channels, head_channels, 3, 1, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(head_channels, 4, 1))
        self.reset_heads()

    def reset_heads(self):
        """Start the heatmap at a 0.1 prior probability everywhere (as CenterNet and RetinaNet do), so
        that the many background cells do not swamp the first steps, and the box head at zero."""
        with grad_mode.no_grad():
            self.heatmap_head[-1].bias.fill_(-math.log((1 - 0.1) / 0.1))
            self.box_head[-1].weight.mul_(0.1)
            self.box_head[-1].bias.zero_()

    def forward(self, images):
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != self.in_channels:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"CenterNet: expected images (N, {self.in_channels}, H, W), got {got}")
        if images.shape[2] % 8 or images.shape[3] % 8:
            raise ValueError(f"CenterNet: image height and width must be multiples of 8, got "
                             f"{tuple(images.shape[2:])}")
        x = (images - self.image_mean) / self.image_std
        c2 = self.stage2(self.stage1(self.stem(x)))
        c3 = self.stage3(c2)
        p2 = self.lateral2(c2) + F.interpolate(self.lateral3(c3), scale_factor=2, mode="nearest")
        p2 = self.smooth(p2)
        return self.heatmap_head(p2), self.box_head(p2)

    # ------------------------------------------------------------------ training
    def loss(self, images, targets):
        """The loss dict (``loss``, ``heatmap``, ``box``, ``giou``) of a batch: images ``(N, C, H, W)``
        and one target dict per image with ``boxes`` ``(k, 4)`` and ``labels`` ``(k,)`` (1-based)."""
        from ..vision.ops import generalized_box_iou_loss
        heatmap, box = self(images)
        n, _, h, w = heatmap.shape
        t = centernet_targets(targets, self.num_classes, (h, w), self.stride)
        hm_loss = centernet_focal_loss(heatmap, from_numpy(t["heatmap"]))
        count = max(len(t["index"]), 1)
        if len(t["index"]):
            b, i, j = (from_numpy(a) for a in t["index"].T)
            pred = box.permute(0, 2, 3, 1)[b, i, j]  # (P, 4) at the centre cells
            reg = from_numpy(t["regression"])
            box_loss = F.l1_loss(pred, reg, reduction="sum") / count
            boxes = _decode_boxes(pred, from_numpy(t["index"][:, 1:].astype(np.float32)), self.stride)
            giou = generalized_box_iou_loss(boxes, from_numpy(t["boxes"]), reduction="mean")
        else:
            box_loss = box.sum() * 0.0
            giou = box.sum() * 0.0
        total = hm_loss + self.box_weight * box_loss + self.giou_weight * giou
        return {"loss": total, "heatmap": hm_loss.detach(), "box": box_loss.detach(), "giou": giou.detach()}

    @staticmethod
    def _split(batch):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2 or not isinstance(batch[1], (list, tuple)):
            raise TypeError("CenterNet: a batch must be (images, list of target dicts), as detection_collate gives")
        return batch

    def training_step(self, batch, batch_idx):
        """One batch for ``Trainer.fit``: ``(images, targets)`` from ``detection_collate``; returns the
        loss dict (logged as ``loss``, ``heatmap``, ``box`` and ``giou``)."""
        images, targets = self._split(batch)
        return self.loss(images, targets)

    def validation_step(self, batch, batch_idx):
        """The loss dict of a validation batch (``val_loss``, ``val_heatmap``, ...)."""
        images, targets = self._split(batch)
        return self.loss(images, targets)

    # ------------------------------------------------------------------ inference
    def postprocess(self, heatmap, box, image_size=None):
        """Decode raw head outputs into torchvision-style detections, one dict per image:
        ``boxes`` float32 ``(k, 4)``, ``scores`` ``(k,)`` and ``labels`` int64 ``(k,)`` (1-based).
        ``image_size`` ``(H, W)`` clips the boxes (default: the heatmap size times the stride)."""
        hm = heatmap.detach().array if isinstance(heatmap, Tensor) else np.asarray(heatmap)
        bx = box.detach().array if isinstance(box, Tensor) else np.asarray(box)
        size = image_size or (hm.shape[2] * self.stride, hm.shape[3] * self.stride)
        return decode_heatmap(1.0 / (1.0 + np.exp(-hm)), bx, self.stride, size, self.max_detections,
                              self.score_threshold, self.nms_threshold)

    def predict(self, images):
        """Detections for ``images`` ``(N, C, H, W)`` in [0, 1], in eval mode and without gradients."""
        was_training = self.training
        self.eval()
        try:
            with grad_mode.no_grad():
                heatmap, box = self(images)
        finally:
            self.train(was_training)
        return self.postprocess(heatmap, box, tuple(images.shape[2:]))

    def extra_repr(self):
        return f"num_classes={self.num_classes}, stride={self.stride}, max_detections={self.max_detections}"


def _decode_boxes(reg, cells, stride):
    """``(P, 4)`` ``(x1, y1, x2, y2)`` boxes from regressions ``(dx, dy, log w, log h)`` at cells ``(P, 2)``
    given as ``(row, col)``; differentiable in ``reg``."""
    from ..ops.shape import stack
    cy = (cells[:, 0] + reg[:, 1]) * stride
    cx = (cells[:, 1] + reg[:, 0]) * stride
    w = reg[:, 2].clamp(max=6.0).exp() * stride
    h = reg[:, 3].clamp(max=6.0).exp() * stride
    return stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


# --------------------------------------------------------------------------- targets and loss
def _gaussian_radius(h, w):
    # A bump that covers about a quarter of the smaller side: a box shifted that far still overlaps well.
    return max(0, int(0.25 * min(h, w)))


def centernet_targets(targets, num_classes, output_size, stride):
    """The training targets of a batch, as NumPy arrays.

    Args:
        targets: one dict per image with ``boxes`` ``(k, 4)`` ``(x1, y1, x2, y2)`` and ``labels`` (1-based).
        num_classes: heatmap channels.
        output_size: ``(H, W)`` of the heatmap.
        stride: input pixels per heatmap cell.

    Returns:
        a dict: ``heatmap`` float32 ``(N, K, H, W)`` (a Gaussian bump, peak 1, at each box centre; the
        maximum where bumps of a class overlap), ``index`` int64 ``(P, 3)`` (image, row, col of each box
        centre), ``regression`` float32 ``(P, 4)`` (``dx, dy, log w, log h`` in cells) and ``boxes``
        float32 ``(P, 4)``. Two boxes of one image whose centres fall in the same cell keep the later one.
    """
    oh, ow = output_size
    heatmap = np.zeros((len(targets), num_classes, oh, ow), np.float32)
    yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
    cells = {}
    for n, t in enumerate(targets):
        boxes = t["boxes"].array if isinstance(t["boxes"], Tensor) else np.asarray(t["boxes"])
        labels = t["labels"].array if isinstance(t["labels"], Tensor) else np.asarray(t["labels"])
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
            raise ValueError(f"CenterNet: target labels must lie in 1..{num_classes}, got {labels.tolist()}")
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            bw, bh = (x2 - x1) / stride, (y2 - y1) / stride
            if bw <= 0 or bh <= 0:
                continue
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            col, row = min(int(cx), ow - 1), min(int(cy), oh - 1)
            sigma = (2 * _gaussian_radius(bh, bw) + 1) / 6.0
            bump = np.exp(-((xx - col) ** 2 + (yy - row) ** 2) / (2 * sigma * sigma))
            np.maximum(heatmap[n, label - 1], bump, out=heatmap[n, label - 1])
            cells[(n, row, col)] = ([cx - col, cy - row, math.log(bw), math.log(bh)], [x1, y1, x2, y2])
    keys = sorted(cells)
    index = np.asarray(keys, np.int64).reshape(-1, 3)
    regression = np.asarray([cells[k][0] for k in keys], np.float32).reshape(-1, 4)
    boxes = np.asarray([cells[k][1] for k in keys], np.float32).reshape(-1, 4)
    return {"heatmap": heatmap, "index": index, "regression": regression, "boxes": boxes}


def centernet_focal_loss(logits, target, alpha=2.0, beta=4.0):
    """CenterNet's penalty-reduced pixel-wise focal loss, summed and divided by the number of peaks.

    At a peak (``target == 1``): ``-(1 - p) ** alpha * log p``; elsewhere
    ``-(1 - target) ** beta * p ** alpha * log(1 - p)``, which forgives predictions near a centre.
    ``logits`` and ``target`` are ``(N, K, H, W)``; ``p = sigmoid(logits)``.
    """
    if tuple(logits.shape) != tuple(target.shape):
        raise ValueError(f"centernet_focal_loss: logits {tuple(logits.shape)} and target {tuple(target.shape)} must "
                         f"have the same shape")
    pos = (target == 1.0).to(logits.dtype)
    neg = 1.0 - pos
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = logits.sigmoid()
    pos_loss = (pos * (1 - p) ** alpha * log_p).sum()
    neg_loss = (neg * (1 - target) ** beta * p ** alpha * log_1mp).sum()
    num_pos = max(float(pos.sum().item()), 1.0)
    return -(pos_loss + neg_loss) / num_pos


# --------------------------------------------------------------------------- decoding
def decode_heatmap(heatmap, box, stride, image_size, max_detections=20, score_threshold=0.05, nms_threshold=0.5):
    """Detections from heatmap probabilities ``(N, K, H, W)`` and box regressions ``(N, 4, H, W)`` (NumPy).

    A cell is a candidate if it is the maximum of its 3x3 neighbourhood in its class channel; the
    ``max_detections`` best candidates per image above ``score_threshold`` are decoded into boxes
    (``(col + dx, row + dy) * stride`` the centre, ``exp(log w) * stride`` the width, ...), clipped to
    ``image_size`` ``(H, W)``, and ``batched_nms`` at ``nms_threshold`` removes same-class duplicates.
    Returns one dict per image: ``boxes`` float32 ``(k, 4)``, ``scores`` float32, ``labels`` int64
    (channel + 1), by decreasing score.
    """
    from ..vision.ops import batched_nms
    heatmap = np.asarray(heatmap, np.float32)
    box = np.asarray(box, np.float32)
    if heatmap.ndim != 4 or box.ndim != 4 or box.shape[1] != 4 or box.shape[0] != heatmap.shape[0] \
            or box.shape[2:] != heatmap.shape[2:]:
        raise ValueError(f"decode_heatmap: expected heatmap (N, K, H, W) and box (N, 4, H, W), got "
                         f"{heatmap.shape} and {box.shape}")
    n, k, h, w = heatmap.shape
    padded = np.pad(heatmap, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    pooled = np.max(np.stack([padded[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]), axis=0)
    peaks = np.where(heatmap == pooled, heatmap, 0.0)
    results = []
    for i in range(n):
        flat = peaks[i].reshape(-1)
        order = np.argsort(-flat, kind="stable")[:max_detections]
        order = order[flat[order] > score_threshold]
        cls, rest = np.divmod(order, h * w)
        row, col = np.divmod(rest, w)
        reg = box[i][:, row, col].T.astype(np.float64)
        cx, cy = (col + reg[:, 0]) * stride, (row + reg[:, 1]) * stride
        bw = np.exp(np.minimum(reg[:, 2], 6.0)) * stride
        bh = np.exp(np.minimum(reg[:, 3], 6.0)) * stride
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).reshape(-1, 4)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, image_size[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, image_size[0])
        boxes = boxes.astype(np.float32)
        scores = flat[order].astype(np.float32)
        labels = (cls + 1).astype(np.int64)
        if len(order):
            keep = batched_nms(tensor(boxes), tensor(scores), tensor(labels), nms_threshold).array
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        results.append({"boxes": from_numpy(boxes), "scores": from_numpy(scores), "labels": from_numpy(labels)})
    return results


# --------------------------------------------------------------------------- pictures and the report
def draw_detections(images, detections, path, classes=None, targets=None, ncols=4, score_threshold=0.3):
    """Draw images with their detected boxes and labels (matplotlib) and save the figure to ``path``.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1] (Tensor or array).
        detections: one dict per image with ``boxes``, ``scores`` and ``labels``.
        classes: class names by label (``classes[label]``).
        targets: optional ground truth drawn as dashed white boxes.
        ncols: images per row.
        score_threshold: detections below this score are not drawn.
    """
    from ..train.plots import _figure, _save

    arr = images.detach().array if isinstance(images, Tensor) else np.asarray(images)
    n = len(arr)
    ncols = min(ncols, n)
    nrows = int(math.ceil(n / ncols))
    fig = _figure(2.4 * ncols, 2.4 * nrows, what="detection pictures")
    from matplotlib.patches import Rectangle  # after _figure: it has checked that matplotlib is there
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colours = ["tab:red", "tab:cyan", "tab:orange", "tab:green", "tab:purple", "tab:pink"]

    def np_(x):
        return x.detach().array if isinstance(x, Tensor) else np.asarray(x)

    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(np.clip(arr[i].transpose(1, 2, 0), 0, 1), interpolation="nearest")
        if targets is not None:
            for x1, y1, x2, y2 in np_(targets[i]["boxes"]).reshape(-1, 4):
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="white", lw=0.8,
                                       ls="--"))
        d = detections[i]
        for (x1, y1, x2, y2), s, lab in zip(np_(d["boxes"]), np_(d["scores"]), np_(d["labels"])):
            if s < score_threshold:
                continue
            c = colours[int(lab) % len(colours)]
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=c, lw=1.5))
            name = classes[int(lab)] if classes is not None and int(lab) < len(classes) else str(int(lab))
            ax.text(x1 - 0.5, y1 - 1.0, f"{name} {s:.2f}", color="white", fontsize=6,
                    bbox={"facecolor": c, "alpha": 0.8, "pad": 0.5, "lw": 0})
    _save(fig, path, dpi=110)
    return path


def _report_base():
    from ..train.callbacks import Callback
    return Callback


class DetectionReport(_report_base()):
    """At the end of ``fit``: COCO mAP of the detector on held-out data, a picture of its predictions,
    and the trivial baseline it should beat.

    Writes to the run folder ``detection.json`` (``map``, ``map_50``, ``map_75``, per-class AP@0.5, the
    baseline's numbers, image count), ``predictions.png`` (``num_images`` held-out images with the
    predicted boxes and labels, ground truth dashed) and a "Detection quality" section of ``summary.txt``.

    The baseline predicts, for every class present in an image, one box of that class's mean training
    size at the image centre (score 1): what knowing the labels but not the positions scores.

    Args:
        test_data: a dataset of ``(image, target dict)`` samples, a function returning one, or either
            giving ``(dataset, split_name)``.
        train_data: the training dataset (for the baseline's mean box sizes), or a function returning it.
        classes: class names by label.
        num_images: images in the picture.
    """

    def __init__(self, test_data=None, train_data=None, classes=None, num_images=12, verbose=True):
        self.test_data = test_data
        self.train_data = train_data
        self.classes = classes
        self.num_images = num_images
        self.verbose = verbose
        self.results = {}

    def evaluate(self, model, dataset):
        """``(results dict, images, detections, targets)`` of ``model`` on ``dataset``."""
        from ..vision.metrics import mean_average_precision
        images = np.stack([np.asarray(dataset[i][0], np.float32) for i in range(len(dataset))])
        targets = [dataset[i][1] for i in range(len(dataset))]
        detections = []
        for s in range(0, len(images), 100):
            detections += model.predict(tensor(images[s:s + 100]))
        res = mean_average_precision(detections, targets, class_metrics=True)
        return res, images, detections, targets

    def on_fit_end(self, trainer, model):
        if trainer.run_dir is None:
            return
        from ..train.reports import resolve_split, write_run_report
        from ..vision.metrics import mean_average_precision
        test, split = resolve_split(self.test_data)
        res, images, detections, targets = self.evaluate(model, test)
        train, _ = resolve_split(self.train_data) if self.train_data is not None else (None, None)
        base = mean_average_precision(centre_box_baseline(targets, train, images.shape[2:]), targets)
        names = self.classes
        per_class = {(names[int(c)] if names else str(int(c))): float(v)
                     for c, v in zip(res["classes"], res["map_50_per_class"])}
        self.results = {"split": split, "images": len(images), "map": res["map"], "map_50": res["map_50"],
                        "map_75": res["map_75"], "ap_50_per_class": per_class, "baseline_map": base["map"],
                        "baseline_map_50": base["map_50"],
                        "baseline": "one box per class present, of the class's mean training size, at the image centre"}
        lines = self.headline(self.results)
        k = min(self.num_images, len(images))
        write_run_report(trainer.run_dir, "detection.json", self.results, lines, "Detection quality",
                         lambda: draw_detections(images[:k], detections[:k],
                                                 os.path.join(trainer.run_dir, "predictions.png"), names, targets[:k]),
                         "prediction picture", self.verbose)

    @staticmethod
    def headline(results):
        """The report's lines for ``results``."""
        per = ", ".join(f"{k} {v:.3f}" for k, v in results["ap_50_per_class"].items())
        return [f"Detection quality ({results['images']} {results['split']} images, COCO protocol):",
                f"  mAP@0.5 {results['map_50']:.3f}, mAP@[.5:.95] {results['map']:.3f}, mAP@0.75 "
                f"{results['map_75']:.3f}; AP@0.5 per class: {per}",
                f"  baseline ({results['baseline']}): mAP@0.5 {results['baseline_map_50']:.3f}, mAP@[.5:.95] "
                f"{results['baseline_map']:.3f}"]


def centre_box_baseline(targets, train=None, image_size=(32, 32)):
    """The trivial detector: for every class present in an image, one box (score 1) of that class's
    mean size at the image centre. Sizes come from ``train`` (a dataset of ``(image, target)``) or, if
    None, from ``targets`` themselves. Returns torchvision-style detections."""
    source = [train[i][1] for i in range(len(train))] if train is not None else targets

    def arr(x):
        return x.array if isinstance(x, Tensor) else np.asarray(x)

    sizes = {}
    for t in source:
        b = arr(t["boxes"]).reshape(-1, 4)
        for (x1, y1, x2, y2), lab in zip(b, arr(t["labels"]).reshape(-1)):
            sizes.setdefault(int(lab), []).append((x2 - x1, y2 - y1))
    mean = {lab: np.mean(v, axis=0) for lab, v in sizes.items()}
    h, w = image_size
    out = []
    for t in targets:
        labels = sorted({int(v) for v in arr(t["labels"]).reshape(-1)} & set(mean))
        boxes = [[w / 2 - mean[c][0] / 2, h / 2 - mean[c][1] / 2, w / 2 + mean[c][0] / 2, h / 2 + mean[c][1] / 2]
                 for c in labels]
        out.append({"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "scores": np.ones(len(labels), np.float32),
                    "labels": np.asarray(labels, np.int64)})
    return out
