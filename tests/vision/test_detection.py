"""Detection: COCO mAP (hand-worked cases and an independent implementation), the CenterNet-style
detector (a PyTorch twin, decoding of hand-made heatmaps, a short training run) and its recipe."""
import math

import numpy as np
import pytest

import somanet
from somanet.data.datasets import Shapes, detection_collate
from somanet.models.detection import (CenterNet, centernet_targets, centre_box_baseline, decode_heatmap)
from somanet.vision.metrics import MeanAveragePrecision, mean_average_precision
from reference import compare_modules, copy_state, torch_or_skip


def _pred(boxes, scores, labels):
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "scores": np.asarray(scores, np.float32),
            "labels": np.asarray(labels, np.int64)}


def _gt(boxes, labels):
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": np.asarray(labels, np.int64)}


# --------------------------------------------------------------------------- mAP worked by hand
def test_map_hand_worked_example():
    # Two ground-truth boxes; detections by score: a perfect hit, a miss, a hit of IoU 100 / 150 = 0.667.
    preds = [_pred([[0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 35]], [0.9, 0.8, 0.7], [1, 1, 1])]
    target = [_gt([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1])]
    # IoU thresholds 0.5 .. 0.65: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1. The envelope
    # reads 1 at the 51 recall levels 0 .. 0.50 and 2/3 at the 50 levels 0.51 .. 1.
    ap_low = (51 * 1.0 + 50 * 2 / 3) / 101
    # Thresholds 0.7 .. 0.95: TP, FP, FP -> recall never passes 1/2: 1 at 51 levels, 0 above.
    ap_high = 51 / 101
    res = mean_average_precision(preds, target)
    assert res["map_50"] == pytest.approx(ap_low, abs=1e-12)
    assert res["map_75"] == pytest.approx(ap_high, abs=1e-12)
    assert res["map"] == pytest.approx((4 * ap_low + 6 * ap_high) / 10, abs=1e-12)


def test_map_classes_without_ground_truth_or_predictions():
    preds = [_pred([[0, 0, 10, 10]], [0.9], [1]),
             _pred([], [], []),                                      # an image with no predictions
             _pred([[5, 5, 9, 9]], [0.3], [3])]                      # class 3 has no ground truth
    target = [_gt([[0, 0, 10, 10]], [1]),
              _gt([[0, 0, 8, 8]], [2]),                              # class 2 is never predicted: AP 0
              _gt([], [])]                                           # an image with no ground truth
    res = mean_average_precision(preds, target, class_metrics=True)
    assert res["classes"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(res["map_50_per_class"], [1.0, 0.0, -1.0])
    np.testing.assert_allclose(res["map_per_class"], [1.0, 0.0, -1.0])
    assert res["map_50"] == pytest.approx(0.5) and res["map"] == pytest.approx(0.5)
    # No ground truth anywhere: nothing to score, COCO's -1.
    assert mean_average_precision([_pred([[0, 0, 1, 1]], [0.5], [1])], [_gt([], [])])["map"] == -1


def test_map_duplicates_wrong_class_and_accumulation():
    # A duplicate detection of a matched box is a false positive; a box of the wrong class matches nothing.
    preds = [_pred([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8, 0.95], [1, 1, 2])]
    target = [_gt([[0, 0, 10, 10]], [1])]
    assert mean_average_precision(preds, target)["map"] == pytest.approx(1.0)  # the FP ranks below the TP
    # Ranked first, a false positive halves the precision at every recall level.
    preds = [_pred([[0, 0, 10, 10], [30, 30, 40, 40]], [0.5, 0.9], [1, 1])]
    assert mean_average_precision(preds, target)["map"] == pytest.approx(0.5)
    # Batches accumulate: two updates equal one update with both images.
    rng = np.random.default_rng(0)
    p, t = _random_set(rng, 6)
    m = MeanAveragePrecision()
    m.update(p[:2], t[:2])
    m.update(p[2:], t[2:])
    assert m.compute()["map"] == pytest.approx(mean_average_precision(p, t)["map"])
    m.reset()
    m.update(p[:1], t[:1])
    assert m.compute()["map"] == pytest.approx(mean_average_precision(p[:1], t[:1])["map"])


def test_map_rejects_bad_input():
    with pytest.raises(ValueError, match="MeanAveragePrecision: preds\\[0\\] has no scores"):
        mean_average_precision([{"boxes": np.zeros((1, 4)), "labels": [1]}], [_gt([], [])])
    with pytest.raises(ValueError, match=r"must have shape \(N, 4\)"):
        mean_average_precision([_pred([], [], [])], [{"boxes": np.zeros((2, 3)), "labels": [1, 1]}])
    with pytest.raises(ValueError, match="2 predictions for 1 images"):
        MeanAveragePrecision().update([_pred([], [], [])] * 2, [_gt([], [])])


# --------------------------------------------------------------------------- mAP against a plain implementation
def _random_set(rng, n_images, n_classes=3):
    preds, target = [], []
    for _ in range(n_images):
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, 40, (k, 2))
        gt = np.concatenate([xy, xy + rng.uniform(4, 15, (k, 2))], axis=1)
        labels = rng.integers(1, n_classes + 1, k)
        target.append(_gt(gt, labels))
        # Noisy copies of some ground truth, plus random boxes, with random scores.
        keep = rng.random(k) < 0.8
        noisy = gt[keep] + rng.normal(0, 2.0, (int(keep.sum()), 4))
        extra = int(rng.integers(0, 4))
        xy = rng.uniform(0, 40, (extra, 2))
        rand = np.concatenate([xy, xy + rng.uniform(4, 15, (extra, 2))], axis=1)
        boxes = np.concatenate([noisy, rand])
        lab = np.concatenate([labels[keep], rng.integers(1, n_classes + 1, extra)])
        preds.append(_pred(boxes, rng.random(len(boxes)), lab))
    return preds, target


def _plain_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _plain_map(preds, target, thresholds):
    """COCO's AP written out directly: greedy matching per image, then the interpolated precision
    ``max{precision at recall >= r}`` averaged over r = 0, 0.01, ..., 1."""
    classes = sorted({int(c) for d in preds + target for c in d["labels"]})
    table = {}
    for c in classes:
        n_gt = sum(int((t["labels"] == c).sum()) for t in target)
        if n_gt == 0:
            continue
        for thr in thresholds:
            ranked = []  # (score, is_tp)
            for p, t in zip(preds, target):
                gts = [g for g, lab in zip(t["boxes"], t["labels"]) if lab == c]
                dets = sorted([(float(s), b) for b, s, lab in zip(p["boxes"], p["scores"], p["labels"]) if lab == c],
                              key=lambda d: -d[0])
                used = [False] * len(gts)
                for score, box in dets:
                    best, m = min(thr, 1 - 1e-10), None
                    for gi, g in enumerate(gts):
                        iou = _plain_iou(box, g)
                        if not used[gi] and iou >= best:
                            best, m = iou, gi
                    if m is not None:
                        used[m] = True
                    ranked.append((score, m is not None))
            ranked.sort(key=lambda r: -r[0])
            tp = fp = 0
            points = []
            for _, hit in ranked:
                tp, fp = tp + hit, fp + (not hit)
                points.append((tp / n_gt, tp / (tp + fp)))
            levels = [i / 100 for i in range(101)]
            table[(c, thr)] = sum(max([p for r, p in points if r >= lvl - 1e-12] or [0.0]) for lvl in levels) / 101
    values = list(table.values())
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_plain_implementation(seed):
    rng = np.random.default_rng(seed)
    preds, target = _random_set(rng, 12)
    res = mean_average_precision(preds, target)
    thresholds = [0.5 + 0.05 * i for i in range(10)]
    assert res["map"] == pytest.approx(_plain_map(preds, target, thresholds), abs=1e-9)
    assert res["map_50"] == pytest.approx(_plain_map(preds, target, [0.5]), abs=1e-9)


# --------------------------------------------------------------------------- decoding
def test_decode_hand_made_heatmap():
    hm = np.zeros((1, 2, 8, 8), np.float32)
    box = np.zeros((1, 4, 8, 8), np.float32)
    hm[0, 0, 2, 3] = 0.9          # class 1 at row 2, col 3
    hm[0, 0, 2, 4] = 0.5          # its neighbour: not a local maximum, dropped
    hm[0, 1, 6, 1] = 0.6          # class 2 at row 6, col 1
    hm[0, 1, 0, 7] = 0.04         # below the score threshold
    box[0, :, 2, 3] = [0.5, 0.25, math.log(2.0), math.log(3.0)]   # centre (3.5, 2.25) cells, 2 x 3 cells
    box[0, :, 6, 1] = [0.0, 0.0, 0.0, 0.0]                         # centre (1, 6), 1 x 1 cell
    out = decode_heatmap(hm, box, stride=4, image_size=(32, 32))
    assert len(out) == 1
    d = out[0]
    assert d["labels"].tolist() == [1, 2]
    np.testing.assert_allclose(d["scores"].array, [0.9, 0.6])
    np.testing.assert_allclose(d["boxes"].array, [[(3.5 - 1) * 4, (2.25 - 1.5) * 4, (3.5 + 1) * 4, (2.25 + 1.5) * 4],
                                                  [2, 22, 6, 26]], atol=1e-5)


def test_decode_clips_limits_and_suppresses():
    hm = np.zeros((2, 1, 4, 4), np.float32)
    box = np.zeros((2, 4, 4, 4), np.float32)
    hm[0, 0, 0, 0] = 0.8
    box[0, :, 0, 0] = [0, 0, math.log(4.0), math.log(4.0)]  # 16 px box centred at the corner: clipped
    hm[0, 0, 2, 2], hm[0, 0, 2, 3] = 0.7, 0.7                 # a tie of neighbours: both are maxima ...
    box[0, 2:, 2, 2] = box[0, 2:, 2, 3] = math.log(3.0)       # ... whose 12 px boxes overlap (IoU 0.5)
    d = decode_heatmap(hm, box, stride=4, image_size=(16, 16), nms_threshold=0.4)
    assert d[0]["boxes"].array[0].tolist() == [0, 0, 8, 8]
    assert d[0]["labels"].tolist() == [1, 1] and d[0]["scores"].array.tolist() == pytest.approx([0.8, 0.7])
    assert len(d[1]["boxes"]) == 0 and d[1]["boxes"].shape == (0, 4)  # an empty heatmap: no detections
    few = decode_heatmap(hm, box, stride=4, image_size=(16, 16), max_detections=1)
    assert len(few[0]["scores"]) == 1
    with pytest.raises(ValueError, match="decode_heatmap"):
        decode_heatmap(hm, box[:, :3], stride=4, image_size=(16, 16))


def test_targets_and_decoding_round_trip():
    targets = [{"boxes": np.array([[4, 6, 14, 20], [20, 2, 30, 9]], np.float32), "labels": np.array([2, 3])}]
    t = centernet_targets(targets, 3, (8, 8), 4)
    assert t["heatmap"].shape == (1, 3, 8, 8)
    assert t["index"].tolist() == [[0, 1, 6], [0, 3, 2]]
    assert t["heatmap"][0, 1, 3, 2] == 1.0 and t["heatmap"][0, 2, 1, 6] == 1.0
    assert int((t["heatmap"] == 1.0).sum()) == 2
    # Perfect head outputs decode back to the boxes.
    hm = t["heatmap"] * 0.99
    box = np.zeros((1, 4, 8, 8), np.float32)
    for (_, r, c), reg in zip(t["index"], t["regression"]):
        box[0, :, r, c] = reg
    d = decode_heatmap(hm, box, 4, (32, 32))[0]
    order = np.argsort(d["labels"].array)
    np.testing.assert_allclose(d["boxes"].array[order], targets[0]["boxes"], atol=1e-4)


# --------------------------------------------------------------------------- the network against a PyTorch twin
def _torch_twin(torch, num_classes, widths, head):
    nn = torch.nn

    def conv_bn(cin, cout, stride=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Stage(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.down = conv_bn(cin, cout, 2)
            self.conv1 = conv_bn(cout, cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x):
            x = self.down(x)
            return torch.relu(x + self.bn2(self.conv2(self.conv1(x))))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            w0, w1, w2, w3 = widths
            self.stem = conv_bn(3, w0)
            self.stage1, self.stage2, self.stage3 = Stage(w0, w1), Stage(w1, w2), Stage(w2, w3)
            self.lateral2, self.lateral3 = nn.Conv2d(w2, head, 1), nn.Conv2d(w3, head, 1)
            self.smooth = conv_bn(head, head)
            self.heatmap_head = nn.Sequential(nn.Conv2d(head, head, 3, 1, 1), nn.ReLU(),
                                              nn.Conv2d(head, num_classes, 1))
            self.box_head = nn.Sequential(nn.Conv2d(head, head, 3, 1, 1), nn.ReLU(), nn.Conv2d(head, 4, 1))

        def forward(self, images):
            x = (images - 0.5) / 0.25
            c2 = self.stage2(self.stage1(self.stem(x)))
            c3 = self.stage3(c2)
            p2 = self.smooth(self.lateral2(c2) + nn.functional.interpolate(self.lateral3(c3), scale_factor=2,
                                                                             mode="nearest"))
            return self.heatmap_head(p2), self.box_head(p2)

    return Twin()


def _torch_loss(torch, model, images, t):
    """CenterNet's loss written in PyTorch: penalty-reduced focal loss, L1 and torchvision's GIoU loss."""
    heatmap, box = model(images)
    target = torch.tensor(t["heatmap"])
    p = torch.sigmoid(heatmap)
    pos = (target == 1).float()
    pos_loss = (pos * (1 - p) ** 2 * torch.nn.functional.logsigmoid(heatmap)).sum()
    neg_loss = ((1 - pos) * (1 - target) ** 4 * p ** 2 * torch.nn.functional.logsigmoid(-heatmap)).sum()
    hm_loss = -(pos_loss + neg_loss) / max(pos.sum().item(), 1.0)
    idx = torch.tensor(t["index"])
    pred = box.permute(0, 2, 3, 1)[idx[:, 0], idx[:, 1], idx[:, 2]]
    l1 = (pred - torch.tensor(t["regression"])).abs().sum() / len(idx)
    cells = idx[:, 1:].float()
    cy, cx = (cells[:, 0] + pred[:, 1]) * 4, (cells[:, 1] + pred[:, 0]) * 4
    w, h = pred[:, 2].clamp(max=6).exp() * 4, pred[:, 3].clamp(max=6).exp() * 4
    b1 = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    b2 = torch.tensor(t["boxes"])
    x1, y1, x2, y2 = b1.unbind(-1)
    x1g, y1g, x2g, y2g = b2.unbind(-1)
    iw = (torch.min(x2, x2g) - torch.max(x1, x1g))
    ih = (torch.min(y2, y2g) - torch.max(y1, y1g))
    inter = torch.where((iw > 0) & (ih > 0), iw * ih, torch.zeros_like(iw))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    giou = (1 - (inter / (union + 1e-7) - (area_c - union) / (area_c + 1e-7))).mean()
    return hm_loss + l1 + giou


def test_centernet_matches_torch_twin_outputs_and_loss_gradients():
    torch = torch_or_skip()
    torch.manual_seed(0)
    widths, head = (4, 6, 8, 8), 6
    twin = _torch_twin(torch, 3, widths, head)
    model = CenterNet(3, widths=widths, head_channels=head)
    assert sorted(dict(model.named_parameters())) == sorted(dict(twin.named_parameters()))
    copy_state(twin, model)
    ds = Shapes(n=4, image_size=16, min_size=2, max_size=4, task="detection", seed=3)
    images, targets = detection_collate([ds[i] for i in range(4)])
    x = images.array
    for train in (True, False):
        model.train(train)
        twin.train(train)
        compare_modules(model, twin, x, rtol=1e-4, atol=1e-4, requires_grad=[False])
    model.train()
    twin.train()
    t = centernet_targets(targets, 3, (4, 4), 4)
    compare_modules(model, twin, x, rtol=1e-4, atol=1e-4, grad_atol=1e-4, requires_grad=[False],
                    forward=lambda m, xs: (m.loss(xs, targets)["loss"] if isinstance(m, CenterNet)
                                           else _torch_loss(torch, m, xs, t)))


def test_centernet_input_errors():
    model = CenterNet(3)
    with pytest.raises(ValueError, match=r"CenterNet: expected images \(N, 3, H, W\)"):
        model(somanet.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(somanet.zeros(1, 3, 20, 20))
    with pytest.raises(ValueError, match="labels must lie in 1..3"):
        model.loss(somanet.zeros(1, 3, 16, 16), [{"boxes": np.array([[0, 0, 4, 4.]]), "labels": np.array([0])}])
    with pytest.raises(TypeError, match="detection_collate"):
        model.training_step(somanet.zeros(1, 3, 16, 16), 0)


# --------------------------------------------------------------------------- learning
def test_short_training_lowers_the_loss_and_beats_the_baseline():
    """60 steps on 32x32 shapes: the loss falls and mAP@0.5 on unseen images beats the
    centre-box baseline (right class and mean size at the image centre) by at least 0.25."""
    somanet.manual_seed(0)
    train = Shapes(n=320, image_size=32, task="detection", seed=11)
    test = Shapes(n=100, image_size=32, task="detection", seed=12)
    model = CenterNet(3, widths=(8, 16, 24, 32), head_channels=24)
    opt = somanet.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    losses = []
    for epoch in range(6):
        order = rng.permutation(len(train))
        for s in range(0, len(order), 32):
            batch = detection_collate([train[int(i)] for i in order[s:s + 32]])
            out = model.training_step(batch, s)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(out["loss"].item())
    assert np.mean(losses[-15:]) < 0.5 * np.mean(losses[:5])
    images, targets = detection_collate([test[i] for i in range(len(test))])
    res = mean_average_precision(model.predict(images), targets)
    base = mean_average_precision(centre_box_baseline(targets, train, (32, 32)), targets)
    assert res["map_50"] > base["map_50"] + 0.25, (res, base)


# --------------------------------------------------------------------------- the recipe
def test_recipe_is_registered_and_builds():
    from somanet.cli import recipes
    cfg = recipes.get_recipe("shapes-detection").resolve({"data": {"n_train": 8, "n_val": 4, "n_test": 4}})
    info = recipes.data_info(cfg)
    assert info.num_classes == 3 and info.classes[1:] == ["circle", "square", "triangle"]
    model = recipes.build_model(cfg, info)
    train, val, test = recipes.load_data(cfg)
    assert (len(train), len(val), len(test)) == (8, 4, 4)
    loader = somanet.data.DataLoader(train, batch_size=4)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and isinstance(targets, list) and set(targets[0]) >= {"boxes", "labels"}
    assert model.training_step((images, targets), 0)["loss"].requires_grad
    from somanet.train.recipe import build_callbacks
    assert [type(cb).__name__ for cb in build_callbacks(cfg)] == ["DetectionReport"]


def test_cli_run_writes_the_detection_report(tmp_path, monkeypatch):
    import json

    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    code = main(["train", "shapes-detection", "--out", "run", "--epochs", "1", "--no-plots", "--set", "data.n_train=32",
                 "--set", "data.n_val=8", "--set", "data.n_test=8"])
    assert code == 0
    report = json.loads((tmp_path / "run" / "detection.json").read_text())
    assert report["images"] == 8 and report["split"] == "test"
    assert 0 <= report["map"] <= report["map_50"] <= 1 and -1 <= report["baseline_map_50"] <= 1
    assert (tmp_path / "run" / "predictions.png").stat().st_size > 0
    assert "Detection quality" in (tmp_path / "run" / "summary.txt").read_text()
