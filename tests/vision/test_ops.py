"""somanet.vision.ops against torchvision's formulas, written here in PyTorch (values and gradients)."""
import math

import numpy as np
import pytest

import somanet
from somanet.vision import ops
from reference import assert_close, compare, torch_or_skip


def _random_boxes(n, rng, size=20.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(0.5, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


# --------------------------------------------------------------------------- torchvision's formulas
def _t_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _t_inter_union(b1, b2):
    torch = torch_or_skip()
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, _t_area(b1)[:, None] + _t_area(b2) - inter


def _t_iou(b1, b2):
    inter, union = _t_inter_union(b1, b2)
    return inter / union


def _t_giou(b1, b2):
    torch = torch_or_skip()
    inter, union = _t_inter_union(b1, b2)
    iou = inter / union
    lti = torch.min(b1[:, None, :2], b2[:, :2])
    rbi = torch.max(b1[:, None, 2:], b2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def _t_giou_loss(b1, b2, eps=1e-7):
    torch = torch_or_skip()
    x1, y1, x2, y2 = b1.unbind(-1)
    x1g, y1g, x2g, y2g = b2.unbind(-1)
    xk1, yk1, xk2, yk2 = torch.max(x1, x1g), torch.max(y1, y1g), torch.min(x2, x2g), torch.min(y2, y2g)
    inter = torch.zeros_like(x1)
    mask = (yk2 > yk1) & (xk2 > xk1)
    inter[mask] = (xk2[mask] - xk1[mask]) * (yk2[mask] - yk1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - (iou - (area_c - union) / (area_c + eps))


def _t_nms(boxes, scores, thr):
    """torchvision's CPU kernel: a stable descending sort, then greedy suppression (IoU > thr)."""
    torch = torch_or_skip()
    order = torch.sort(scores, stable=True, descending=True).indices.tolist()
    areas = _t_area(boxes)
    suppressed, keep = set(), []
    for pos, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            if j in suppressed:
                continue
            w = (torch.min(boxes[i, 2], boxes[j, 2]) - torch.max(boxes[i, 0], boxes[j, 0])).clamp(min=0)
            h = (torch.min(boxes[i, 3], boxes[j, 3]) - torch.max(boxes[i, 1], boxes[j, 1])).clamp(min=0)
            inter = w * h
            if inter / (areas[i] + areas[j] - inter) > thr:
                suppressed.add(j)
    return keep


def _t_bilinear(feat, y, x, height, width):
    """torchvision's bilinear_interpolate for one channel-vector feature map (C, H, W)."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feat[:, 0, 0] * 0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feat[:, y_low, x_low] + hy * lx * feat[:, y_low, x_high] + ly * hx * feat[:, y_high, x_low]
            + ly * lx * feat[:, y_high, x_high])


def _t_roi_align(inp, rois, out_h, out_w, scale, sampling_ratio, aligned):
    torch = torch_or_skip()
    _, _, height, width = inp.shape
    outs = []
    offset = 0.5 if aligned else 0.0
    for roi in rois.tolist():
        b = int(roi[0])
        x1, y1, x2, y2 = (v * scale - offset for v in roi[1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out_h, rw / out_w
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out_h)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out_w)
        count = max(gh * gw, 1)
        cells = []
        for ph in range(out_h):
            for pw in range(out_w):
                acc = inp[b, :, 0, 0] * 0
                for iy in range(gh):
                    y = y1 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = x1 + pw * bw + (ix + 0.5) * bw / gw
                        acc = acc + _t_bilinear(inp[b], y, x, height, width)
                cells.append(acc / count)
        outs.append(torch.stack(cells, dim=-1).reshape(-1, out_h, out_w))
    return torch.stack(outs)


def _t_focal(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    torch = torch_or_skip()
    p = torch.sigmoid(inputs)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


# --------------------------------------------------------------------------- box utilities
def test_box_area_iou_giou_match_torchvision_with_gradients():
    rng = np.random.default_rng(0)
    b1, b2 = _random_boxes(6, rng), _random_boxes(5, rng)
    b2[0] = b1[0]  # identical boxes: IoU 1
    b2[1] = [100, 100, 110, 110]  # disjoint from everything: negative GIoU
    compare(ops.box_area, _t_area, b1)
    compare(ops.box_iou, _t_iou, b1, b2)
    compare(ops.generalized_box_iou, _t_giou, b1, b2)
    iou = ops.box_iou(somanet.tensor(b1), somanet.tensor(b2)).array
    assert iou[0, 0] == pytest.approx(1.0) and (iou[:, 1] == 0).all()


def test_giou_loss_matches_torchvision():
    rng = np.random.default_rng(1)
    b1, b2 = _random_boxes(7, rng), _random_boxes(7, rng)
    b2[2] = [50, 50, 60, 60]  # no overlap: the masked branch of the intersection
    compare(ops.generalized_box_iou_loss, _t_giou_loss, b1, b2)
    compare(lambda a, b: ops.generalized_box_iou_loss(a, b, reduction="mean"),
            lambda a, b: _t_giou_loss(a, b).mean(), b1, b2)
    with pytest.raises(ValueError, match="generalized_box_iou_loss"):
        ops.generalized_box_iou_loss(somanet.tensor(b1), somanet.tensor(b2[:3]))


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")
def test_empty_and_zero_area_boxes():
    torch = torch_or_skip()
    empty = somanet.zeros(0, 4)
    some = somanet.tensor(_random_boxes(3, np.random.default_rng(2)))
    assert ops.box_iou(empty, some).shape == (0, 3)
    assert ops.generalized_box_iou(some, empty).shape == (3, 0)
    assert ops.box_area(empty).shape == (0,)
    flat = np.array([[1, 1, 1, 5], [2, 2, 6, 6], [3, 3, 3, 3]], np.float32)  # zero-area, normal, a point
    ours = ops.box_iou(somanet.tensor(flat), somanet.tensor(flat)).array
    ref = _t_iou(torch.tensor(flat), torch.tensor(flat)).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))  # 0 / 0 is NaN in both
    np.testing.assert_allclose(np.nan_to_num(ours), np.nan_to_num(ref))


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_round_trip_and_gradients(fmt):
    torch = torch_or_skip()
    b = _random_boxes(5, np.random.default_rng(3))

    def t_convert(x, src, dst):
        x1, y1, x2, y2 = x.unbind(-1) if src == "xyxy" else (None,) * 4
        if src == "xyxy" and dst == "xywh":
            return torch.stack([x1, y1, x2 - x1, y2 - y1], -1)
        if src == "xyxy" and dst == "cxcywh":
            return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
        a, c, w, h = x.unbind(-1)
        if src == "xywh":
            return torch.stack([a, c, a + w, c + h], -1)
        return torch.stack([a - 0.5 * w, c - 0.5 * h, a + 0.5 * w, c + 0.5 * h], -1)

    compare(lambda x: ops.box_convert(x, "xyxy", fmt), lambda x: t_convert(x, "xyxy", fmt), b)
    conv = t_convert(torch.tensor(b), "xyxy", fmt).numpy()
    compare(lambda x: ops.box_convert(x, fmt, "xyxy"), lambda x: t_convert(x, fmt, "xyxy"), conv)
    back = ops.box_convert(ops.box_convert(somanet.tensor(b), "xyxy", fmt), fmt, "xyxy")
    assert_close(back, b, atol=1e-5)
    with pytest.raises(ValueError, match="box_convert: unsupported in_fmt 'xy'"):
        ops.box_convert(somanet.tensor(b), "xy", "xyxy")


def test_shape_errors_name_the_op():
    bad = somanet.zeros(3, 5)
    with pytest.raises(ValueError, match=r"box_iou: boxes1 must have shape \(N, 4\), got \(3, 5\)"):
        ops.box_iou(bad, somanet.zeros(2, 4))
    with pytest.raises(ValueError, match="nms: scores must be a 1-D Tensor"):
        ops.nms(somanet.zeros(3, 4), somanet.zeros(2), 0.5)
    with pytest.raises(ValueError, match="batched_nms: idxs"):
        ops.batched_nms(somanet.zeros(3, 4), somanet.zeros(3), somanet.zeros(2, dtype=somanet.int64), 0.5)
    with pytest.raises(ValueError, match=r"roi_align: input must be a \(N, C, H, W\)"):
        ops.roi_align(somanet.zeros(3, 8, 8), somanet.zeros(1, 5), 2)
    with pytest.raises(ValueError, match=r"roi_align: boxes must be a \(K, 5\)"):
        ops.roi_align(somanet.zeros(1, 3, 8, 8), somanet.zeros(1, 4), 2)
    with pytest.raises(ValueError, match="roi_align: batch indices"):
        ops.roi_align(somanet.zeros(1, 3, 8, 8), somanet.tensor([[1.0, 0, 0, 4, 4]]), 2)
    with pytest.raises(ValueError, match="sigmoid_focal_loss: inputs"):
        ops.sigmoid_focal_loss(somanet.zeros(3), somanet.zeros(4))
    with pytest.raises(ValueError, match="sigmoid_focal_loss: invalid reduction 'avg'"):
        ops.sigmoid_focal_loss(somanet.zeros(3), somanet.zeros(3), reduction="avg")


# --------------------------------------------------------------------------- nms
def test_nms_matches_torchvision_on_random_boxes():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    boxes = _random_boxes(60, rng)
    scores = rng.random(60).astype(np.float32)
    for thr in (0.1, 0.3, 0.5, 0.7):
        keep = ops.nms(somanet.tensor(boxes), somanet.tensor(scores), thr)
        assert keep.dtype == np.int64
        assert keep.tolist() == _t_nms(torch.tensor(boxes), torch.tensor(scores), thr)


def test_nms_ties_threshold_and_empty():
    boxes = somanet.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30], [20, 20, 30, 30.]])
    scores = somanet.tensor([0.5, 0.9, 0.9, 0.5, 0.5])
    # Equal scores keep their order: box 1 before box 2 (which it suppresses), box 3 before box 4.
    assert ops.nms(boxes, scores, 0.5).tolist() == [1, 3]
    # IoU of boxes 1 and 2 is 100 / 105; suppression needs IoU strictly above the threshold.
    assert ops.nms(boxes, scores, 100 / 105.0).tolist() == [1, 2, 3]
    empty = ops.nms(somanet.zeros(0, 4), somanet.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    # Zero-area boxes: IoU is 0 / 0, never above the threshold, so nothing is suppressed.
    flat = somanet.tensor([[1, 1, 1, 1], [1, 1, 1, 1.]])
    assert ops.nms(flat, somanet.tensor([0.2, 0.3]), 0.5).tolist() == [1, 0]


def test_batched_nms_keeps_categories_apart():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    boxes = _random_boxes(40, rng)
    scores = rng.random(40).astype(np.float32)
    idxs = rng.integers(0, 3, 40)
    keep = ops.batched_nms(somanet.tensor(boxes), somanet.tensor(scores), somanet.tensor(idxs), 0.4).tolist()
    # torchvision's reference: nms within each category, merged by decreasing score.
    ref = []
    for c in range(3):
        sel = np.flatnonzero(idxs == c)
        ref += [int(sel[k]) for k in _t_nms(torch.tensor(boxes[sel]), torch.tensor(scores[sel]), 0.4)]
    ref.sort(key=lambda i: -scores[i])
    assert keep == ref
    same = somanet.tensor([[0, 0, 10, 10], [0, 0, 10, 10.]])
    assert ops.batched_nms(same, somanet.tensor([0.9, 0.8]), somanet.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert ops.batched_nms(same, somanet.tensor([0.9, 0.8]), somanet.tensor([1, 1]), 0.5).tolist() == [0]
    assert ops.batched_nms(somanet.zeros(0, 4), somanet.zeros(0), somanet.zeros(0, dtype=somanet.int64),
                           0.5).shape == (0,)


# --------------------------------------------------------------------------- roi_align
_ROIS = np.array([[0, 1.0, 1.5, 6.2, 5.0],     # an ordinary box
                  [1, 0.0, 0.0, 9.0, 9.0],     # covers the whole map
                  [0, 6.5, 6.0, 11.0, 12.5],   # runs off the bottom-right edge
                  [1, -2.0, -1.5, 2.0, 2.0],   # starts off the top-left edge
                  [0, 3.0, 3.0, 3.0, 3.0]],    # zero size
                 np.float32)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, scale):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    rois = _ROIS * np.array([1, 1 / scale, 1 / scale, 1 / scale, 1 / scale], np.float32)
    compare(lambda inp: ops.roi_align(inp, somanet.tensor(rois), (3, 2), scale, sampling_ratio, aligned),
            lambda inp: _t_roi_align(inp, rois, 3, 2, scale, sampling_ratio, aligned), x, atol=1e-5)


def test_roi_align_box_list_equals_rows_and_module():
    rng = np.random.default_rng(7)
    x = somanet.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))
    rows = somanet.tensor(np.array([[0, 0, 0, 3, 3], [1, 1, 1, 5, 4], [1, 2, 0, 6, 6]], np.float32))
    boxes = [somanet.tensor([[0, 0, 3, 3.]]), somanet.tensor([[1, 1, 5, 4], [2, 0, 6, 6.]])]
    a = ops.roi_align(x, rows, 2, aligned=True)
    b = ops.roi_align(x, boxes, 2, aligned=True)
    c = ops.RoIAlign((2, 2), 1.0, -1, aligned=True)(x, boxes)
    assert_close(a, b)
    assert_close(a, c)
    assert ops.roi_align(x, [somanet.zeros(0, 4), somanet.zeros(0, 4)], 2).shape == (0, 2, 2, 2)


# --------------------------------------------------------------------------- focal loss
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1, 0), (0.5, 1.5)])
def test_sigmoid_focal_loss_matches_torchvision(reduction, alpha, gamma):
    rng = np.random.default_rng(8)
    logits = (rng.standard_normal((4, 5)) * 3).astype(np.float32)
    targets = (rng.random((4, 5)) < 0.3).astype(np.float32)
    compare(lambda i, t: ops.sigmoid_focal_loss(i, t, alpha, gamma, reduction),
            lambda i, t: _t_focal(i, t, alpha, gamma, reduction), logits, targets,
            requires_grad=[True, False])
